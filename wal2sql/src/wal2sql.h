/*-------------------------------------------------------------------------
 *
 * wal2sql.h
 *		Shared declarations of the wal2sql extension, and every
 *		PostgreSQL version difference it has to know about.
 *
 * All PG_VERSION_NUM guards of the extension live in this file, so the
 * code in the .c files reads the same on every supported major version
 * (13 to 18).  CI builds and tests each of them (doc/testing.md).
 *
 * IDENTIFICATION
 *		wal2sql/src/wal2sql.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WAL2SQL_H
#define WAL2SQL_H

#include "access/htup.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM < 130000
#error "wal2sql needs PostgreSQL 13 or later"
#endif

/*
 * Version of the output format, written in every transaction header
 * ("format=2"): 2 frames DDL by its length and keeps every other message
 * on one line (see doc/security.md).  Readers refuse other versions.
 */
#define W2S_FORMAT			2

/* Schema and queue table created by the extension script. */
#define WAL2SQL_SCHEMA		"wal2sql"
#define WAL2SQL_QUEUE		"ddl_queue"

/*
 * Tables that wal2sql itself gave REPLICA IDENTITY FULL (one column, relid
 * oid, primary key), trusted only when owned by a superuser.  Its changes
 * are never written to the stream.
 */
#define WAL2SQL_AUTO_FULL	"auto_full"

/* Columns of wal2sql.ddl_queue (1-based attribute numbers). */
#define QUEUE_ATT_KIND			1	/* 'ddl', 'sql', 'rewrite', 'missing' or 'unreplayable' */
#define QUEUE_ATT_SEARCH_PATH	2	/* SET search_path value, or NULL */
#define QUEUE_ATT_ROLE			3	/* role to run the command as, or NULL */
#define QUEUE_ATT_SETTINGS		4	/* extra "SET LOCAL ..." text, or NULL */
#define QUEUE_ATT_COMMAND		5	/* the statement text */
#define QUEUE_NATTS				5

/* GUCs (wal2sql.c) */
extern bool wal2sql_capture;
extern bool wal2sql_auto_replica_identity;

/* statement.c */
extern void wal2sql_capture_init(void);

/*
 * Version differences.
 */

/* The tuple of a decoded change: a ReorderBufferTupleBuf until 16. */
#if PG_VERSION_NUM >= 170000
#define W2S_CHANGE_TUPLE(tb)	(tb)
#else
#define W2S_CHANGE_TUPLE(tb)	((tb) ? &(tb)->tuple : NULL)
#endif

/* Commit timestamp of a decoded transaction. */
#if PG_VERSION_NUM >= 150000
#define W2S_COMMIT_TIME(txn)	((txn)->xact_time.commit_time)
#else
#define W2S_COMMIT_TIME(txn)	((txn)->commit_time)
#endif

/* Progress report for a skipped (empty) transaction. */
#if PG_VERSION_NUM >= 150000
#define W2S_UPDATE_PROGRESS(ctx, skipped)	OutputPluginUpdateProgress((ctx), (skipped))
#else
#define W2S_UPDATE_PROGRESS(ctx, skipped)	OutputPluginUpdateProgress((ctx))
#endif

/* Columns of the replica identity key, read without taking index locks. */
#if PG_VERSION_NUM >= 140000
#define W2S_IDENTITY_KEY_BITMAP(rel)	RelationGetIdentityKeyBitmap(rel)
#else
#define W2S_IDENTITY_KEY_BITMAP(rel) \
	RelationGetIndexAttrBitmap((rel), INDEX_ATTR_BITMAP_IDENTITY_KEY)
#endif

/* raw_parser() grew a mode argument in 14. */
#if PG_VERSION_NUM >= 140000
#define W2S_RAW_PARSER(str)		raw_parser((str), RAW_PARSE_DEFAULT)
#else
#define W2S_RAW_PARSER(str)		raw_parser(str)
#endif

/* ProcessUtility_hook gained readOnlyTree in 14. */
#if PG_VERSION_NUM >= 140000
#define W2S_UTILITY_ARGS_DECL \
	PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define W2S_UTILITY_ARGS \
	pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#else
#define W2S_UTILITY_ARGS_DECL \
	PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define W2S_UTILITY_ARGS \
	pstmt, queryString, context, params, queryEnv, dest, qc
#endif

/* MarkGUCPrefixReserved() is the 15 name of EmitWarningsOnPlaceholders(). */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/* CreateTableAsStmt.relkind was renamed objtype in 14. */
#if PG_VERSION_NUM >= 140000
#define W2S_CTAS_OBJTYPE(stmt)	((stmt)->objtype)
#else
#define W2S_CTAS_OBJTYPE(stmt)	((stmt)->relkind)
#endif

/* LSN_FORMAT_ARGS() came in 14: the two halves printed by "%X/%X". */
#if PG_VERSION_NUM < 140000
#define LSN_FORMAT_ARGS(lsn)	((uint32) ((lsn) >> 32)), ((uint32) (lsn))
#endif

/*
 * Multiranges came in 14.  Before, no type has this typtype, so the case
 * that follows a multirange to its range is never taken.
 */
#if PG_VERSION_NUM < 140000
#define TYPTYPE_MULTIRANGE		'm'
#define get_multirange_range(typid)	InvalidOid
#endif

/* get_partition_parent() gained even_if_detached in 14 (DETACH CONCURRENTLY). */
#if PG_VERSION_NUM >= 140000
#define W2S_PARTITION_PARENT(relid)	get_partition_parent((relid), true)
#else
#define W2S_PARTITION_PARENT(relid)	get_partition_parent(relid)
#endif

/*
 * REINDEX CONCURRENTLY: a flag of the statement until 13, a generic option
 * (DefElem list, read by w2s_options_concurrent()) from 14.
 */
#if PG_VERSION_NUM >= 140000
#define W2S_REINDEX_CONCURRENT(stmt)	w2s_options_concurrent((stmt)->params)
#else
#define W2S_REINDEX_CONCURRENT(stmt)	((stmt)->concurrent)
#endif

/* ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY came in 14. */
#if PG_VERSION_NUM >= 140000
#define W2S_DETACH_CONCURRENT(cmd)	((cmd)->concurrent)
#else
#define W2S_DETACH_CONCURRENT(cmd)	false
#endif

/* Generated columns: stored only until 17; 18 adds virtual ones. */
#define W2S_ATT_IS_GENERATED(att)	((att)->attgenerated != '\0')

#endif							/* WAL2SQL_H */
