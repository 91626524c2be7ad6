/*-------------------------------------------------------------------------
 *
 * identity.c
 *		Automatic replica identity: tables left without a usable identity
 *		get REPLICA IDENTITY FULL, and go back to DEFAULT when they get a
 *		usable primary key (bookkeeping in wal2sql.auto_full).
 *
 * IDENTIFICATION
 *		wal2sql/src/identity.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/scansup.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "wal2sql.h"
#include "capture.h"

/* ---------------------------------------------------------------------
 * Automatic replica identity
 * ---------------------------------------------------------------------
 *
 * wal2sql.auto_full holds the tables whose REPLICA IDENTITY FULL was set
 * by the code below (not by the user).  When such a table gets a usable
 * primary key again (CREATE TABLE then ALTER TABLE ... ADD PRIMARY KEY, as
 * pg_dump and pgbench do), it goes back to REPLICA IDENTITY DEFAULT: FULL
 * logs whole old rows and replays them much more slowly.  A table whose
 * identity the user sets explicitly is forgotten (an explicit FULL stays
 * FULL), and so is a dropped one.
 *
 * The table belongs to the superuser who created the extension, and no one
 * else has any privilege on it, so its rows cannot be forged: the capture
 * code reads and writes it with SPI as that owner.  It is trusted only
 * while its owner is a superuser and its shape is as created.
 */

/*
 * The owner of wal2sql.auto_full if the table can be trusted (and, when
 * if_rows, may hold rows: it has at least one block), else InvalidOid.
 */
Oid
w2s_auto_full_owner(bool if_rows)
{
	Oid			nspid = get_namespace_oid(WAL2SQL_SCHEMA, true);
	Oid			relid;
	Oid			owner = InvalidOid;
	Relation	rel;
	TupleDesc	desc;

	if (!OidIsValid(nspid))
		return InvalidOid;
	relid = get_relname_relid(WAL2SQL_AUTO_FULL, nspid);
	if (!OidIsValid(relid))
		return InvalidOid;
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	if (rel->rd_rel->relkind == RELKIND_RELATION &&
		desc->natts == 1 && TupleDescAttr(desc, 0)->atttypid == OIDOID &&
		superuser_arg(rel->rd_rel->relowner) &&
		(!if_rows || RelationGetNumberOfBlocks(rel) > 0))
		owner = rel->rd_rel->relowner;
	table_close(rel, NoLock);
	return owner;
}

/*
 * Run a statement on wal2sql.auto_full (with at most one parameter) as its
 * owner; SPI must be connected.  Returns the number of rows processed, 0
 * when the table cannot be trusted or (if_rows) holds no row.
 */
static uint64
w2s_auto_full_run(const char *sql, Oid argtype, Datum arg, bool if_rows)
{
	Oid			owner = w2s_auto_full_owner(if_rows);
	Oid			save_userid;
	int			save_sec_context;
	int			ret;

	if (!OidIsValid(owner))
		return 0;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, OidIsValid(argtype) ? 1 : 0,
									&argtype, &arg, NULL, false, 0);
		if (ret < 0)
			elog(ERROR, "wal2sql: could not run \"%s\": %s", sql,
				 SPI_result_code_string(ret));
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	return SPI_processed;
}

/* The user set the replica identity of these tables: forget them. */
void
w2s_auto_full_forget(List *relids)
{
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	if (relids == NIL)
		return;
	elems = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	w2s_auto_full_run("DELETE FROM " WAL2SQL_SCHEMA "." WAL2SQL_AUTO_FULL
					  " WHERE relid OPERATOR(pg_catalog.=) ANY ($1)",
					  OIDARRAYOID,
					  PointerGetDatum(construct_array(elems, n, OIDOID,
													  sizeof(Oid), true,
													  TYPALIGN_INT)),
					  true);
}

/* sql_drop: forget the dropped tables; SPI must be connected. */
void
w2s_auto_full_dropped(void)
{
	w2s_auto_full_run(psprintf("DELETE FROM " WAL2SQL_SCHEMA "." WAL2SQL_AUTO_FULL
							   " WHERE relid OPERATOR(pg_catalog.=) ANY (ARRAY("
							   "SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects()"
							   " WHERE classid OPERATOR(pg_catalog.=) %u"
							   " AND objsubid OPERATOR(pg_catalog.=) 0))",
							   RelationRelationId),
					  InvalidOid, (Datum) 0, true);
}

/*
 * The table whose replica identity an ALTER TABLE ... REPLICA IDENTITY
 * sets (InvalidOid if none).
 */
Oid
w2s_replica_identity_target(Node *parsetree)
{
	AlterTableStmt *stmt;
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return InvalidOid;
	stmt = (AlterTableStmt *) parsetree;
	foreach(lc, stmt->cmds)
	{
		if (lfirst_node(AlterTableCmd, lc)->subtype == AT_ReplicaIdentity)
			return stmt->relation ?
				RangeVarGetRelid(stmt->relation, NoLock, true) : InvalidOid;
	}
	return InvalidOid;
}

/* Run one ALTER TABLE of wal2sql's own, uncaptured, and queue its text. */
static void
w2s_run_internal(const char *sql)
{
	w2s_internal = true;
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "wal2sql: could not run \"%s\"", sql);
	}
	PG_FINALLY();
	{
		w2s_internal = false;
	}
	PG_END_TRY();
	w2s_queue_ddl(sql, false);	/* generated: identifiers only */
}

/* The ALTER TABLE ... REPLICA IDENTITY statement for a table, qualified and quoted. */
static char *
w2s_alter_identity_sql(Relation rel, const char *identity)
{
	return psprintf("ALTER TABLE %s REPLICA IDENTITY %s;",
					quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel)),
					identity);
}

/*
 * Tables without a usable replica identity (created without a primary key,
 * or that lost it or their identity index) get REPLICA IDENTITY FULL, so
 * that their UPDATEs and DELETEs can be replayed.  They are noted in
 * wal2sql.auto_full.
 */
void
w2s_auto_replica_identity(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel = RelationIdGetRelation(relid);
		bool		wanted;
		char	   *sql;

		if (!RelationIsValid(rel))
			continue;
		(void) RelationGetIndexList(rel);	/* sets rd_pkindex */
		wanted = (rel->rd_rel->relkind == RELKIND_RELATION ||
				  rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) &&
			rel->rd_rel->relpersistence == RELPERSISTENCE_PERMANENT &&
			((rel->rd_rel->relreplident == REPLICA_IDENTITY_DEFAULT &&
			  !OidIsValid(rel->rd_pkindex)) ||
			 (rel->rd_rel->relreplident == REPLICA_IDENTITY_INDEX &&
			  !OidIsValid(rel->rd_replidindex)));
		sql = w2s_alter_identity_sql(rel, "FULL");
		RelationClose(rel);
		if (!wanted)
			continue;

		w2s_run_internal(sql);
		w2s_auto_full_run("INSERT INTO " WAL2SQL_SCHEMA "." WAL2SQL_AUTO_FULL
						  " (relid) VALUES ($1) ON CONFLICT DO NOTHING",
						  OIDOID, ObjectIdGetDatum(relid), false);
	}
}

/*
 * Has the table a primary key that can serve as its replica identity
 * (valid, immediate)?  Read from pg_index rather than rd_pkindex: making a
 * partitioned key valid (ALTER INDEX ... ATTACH PARTITION of the last
 * partition's key) updates the index's pg_index row without invalidating
 * the table's relcache entry.
 */
static bool
w2s_has_usable_pkey(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID,
										  ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		found = index->indisprimary && index->indisvalid &&
			index->indisunique && index->indimmediate &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		ReleaseSysCache(tup);
		if (found)
			break;
	}
	list_free(indexes);
	return found;
}

/*
 * Tables that wal2sql made FULL and that have a usable primary key now go
 * back to REPLICA IDENTITY DEFAULT (written to the stream too).
 */
void
w2s_auto_replica_identity_default(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel = RelationIdGetRelation(relid);
		bool		candidate;
		char	   *sql;

		if (!RelationIsValid(rel))
			continue;
		candidate = (rel->rd_rel->relkind == RELKIND_RELATION ||
					 rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) &&
			rel->rd_rel->relpersistence == RELPERSISTENCE_PERMANENT &&
			rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL &&
			w2s_has_usable_pkey(rel);
		sql = w2s_alter_identity_sql(rel, "DEFAULT");
		RelationClose(rel);
		if (!candidate)
			continue;

		/* was it wal2sql that made it FULL? */
		if (w2s_auto_full_run("DELETE FROM " WAL2SQL_SCHEMA "." WAL2SQL_AUTO_FULL
							  " WHERE relid OPERATOR(pg_catalog.=) $1",
							  OIDOID, ObjectIdGetDatum(relid), true) == 0)
			continue;
		w2s_run_internal(sql);
	}
}

/* The tables and their partition ancestors (whose key may be complete now). */
List *
w2s_with_ancestors(List *relids)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		result = list_append_unique_oid(result, relid);
		if (get_rel_relispartition(relid))
			result = list_concat_unique_oid(result, get_partition_ancestors(relid));
	}
	return result;
}
