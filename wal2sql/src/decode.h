/*-------------------------------------------------------------------------
 *
 * decode.h
 *		What the output plugin's files share: the relation cache entries
 *		(relcache.c), the plugin's per-decoding state, and the functions
 *		that write SQL text (emit.c) used by the callbacks (decode.c).
 *
 * IDENTIFICATION
 *		wal2sql/src/decode.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WAL2SQL_DECODE_H
#define WAL2SQL_DECODE_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "replication/logical.h"
#include "utils/rel.h"

/* How a column is compared in a WHERE clause. */
typedef enum W2SEqKind
{
	W2S_EQ_PLAIN,				/* col = 'v' (pg_catalog operator) */
	W2S_EQ_OPERATOR,			/* col OPERATOR(nsp.=) 'v' */
	W2S_EQ_TEXT					/* col::text = 'v' (type has no equality) */
} W2SEqKind;

typedef struct W2SColumn
{
	char	   *qname;			/* quoted column name */
	bool		skip;			/* dropped or generated: never written */
	bool		identity_always;	/* GENERATED ALWAYS AS IDENTITY */
	bool		is_key;			/* column of the DEFAULT/INDEX identity key */
	bool		varlena;
	bool		byval;
	int16		typlen;
	FmgrInfo	out;			/* type output function */
	W2SEqKind	eq_kind;
	char	   *eq_operator;	/* "OPERATOR(nsp.=)" for W2S_EQ_OPERATOR */
	char	   *cast;			/* "::type" after a literal compared with it, or NULL */
	bool		exact_text;		/* equal is not identical: compare the text form too */
} W2SColumn;

typedef struct W2SRelEntry
{
	Oid			relid;			/* hash key */
	bool		valid;
	uint32		generation;		/* bumped on every rebuild */
	MemoryContext cxt;			/* holds everything below */
	bool		is_queue;		/* wal2sql.ddl_queue */
	bool		ignore;			/* no rows to write (materialized view ...) */
	char		relkind;
	char		replident;
	char	   *qualname;		/* quoted, schema-qualified name */
	int			natts;
	W2SColumn  *cols;
	int			nkeys;			/* key columns of DEFAULT/INDEX identity */
	AttrNumber *keys;
	char	   *insert_prefix;	/* "INSERT INTO t (a, b) [OVERRIDING ...] VALUES " */
	bool		uses_money;		/* a column's output depends on lc_monetary */
	bool		default_values; /* no writable column: "... DEFAULT VALUES" */
} W2SRelEntry;

typedef struct W2SData
{
	MemoryContext context;		/* long-lived plugin memory */
	MemoryContext change_cxt;	/* reset after every change */
	int			guc_nestlevel;	/* SQL interface: settings to restore */

	/* options */
	int			batch_rows;		/* 0: no multi-row INSERT */
	int			batch_bytes;

	/* per transaction */
	bool		xact_written;	/* header and BEGIN already written */
	bool		money_set;		/* SET LOCAL lc_monetary written */
	List	   *rewrites;		/* tables whose rewritten rows are written */

	/* pending multi-row INSERT */
	StringInfoData batch;
	Oid			batch_relid;
	uint32		batch_generation;
	int			batch_count;
} W2SData;

/* The text of an unchanged TOASTed value is not in the change: never written. */
static inline bool
w2s_is_unchanged_toast(W2SColumn *col, Datum value, bool isnull)
{
	return !isnull && col->varlena &&
		VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

/* relcache.c */
extern W2SRelEntry *w2s_get_entry(Relation rel);
extern void w2s_relcache_init(void);
extern void w2s_relcache_invalidate(Datum arg, Oid relid);

/* emit.c */
extern void w2s_append_row(StringInfo out, W2SRelEntry *entry, Datum *values, bool *nulls);
extern void w2s_append_value(StringInfo out, W2SColumn *col, Datum value, bool isnull);
extern bool w2s_append_where(StringInfo out, W2SRelEntry *entry, Datum *oldvals, bool *oldnulls, Datum *newvals, bool *newnulls);
extern void w2s_ensure_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
extern void w2s_flush_batch(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
extern void w2s_write_line(LogicalDecodingContext *ctx, const char *text, size_t len);
extern void w2s_write_marker(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, const char *message);
extern void w2s_write_no_identity(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, W2SRelEntry *entry, const char *action);
extern void w2s_write_queue_row(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, Relation rel, HeapTuple tuple);

/* decode.c */
extern void w2s_pin_money(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, W2SRelEntry *entry);

#endif							/* WAL2SQL_DECODE_H */
