/*-------------------------------------------------------------------------
 *
 * decode.c
 *		The wal2sql logical decoding output plugin: turns committed
 *		transactions into replayable SQL text.
 *
 * Per committed transaction that wrote anything:
 *
 *	-- wal2sql begin xid=750 commit_lsn=0/1A2B3C4 end_lsn=0/1A2B3F8 commit_time=2026-11-26T12:00:00.123456Z
 *	BEGIN;
 *	<one statement per message>
 *	COMMIT;
 *	-- wal2sql commit end_lsn=0/1A2B3F8
 *
 * Every line above is one message (one OutputPluginWrite), without a
 * trailing newline.  DDL and sequence values reach the stream as rows of
 * the superuser-owned queue table wal2sql.ddl_queue (see capture.c); the
 * plugin recognises that table and writes its rows out as SQL.  Logical
 * decoding messages (pg_logical_emit_message) are ignored altogether, so
 * they cannot be used to inject SQL into the stream.
 *
 * IDENTIFICATION
 *		wal2sql/src/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "replication/walsender.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/array.h"
#include "utils/datum.h"

#include "wal2sql.h"

extern void _PG_output_plugin_init(OutputPluginCallbacks *cb);

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

/* Relation cache, kept for the lifetime of the backend. */
static HTAB *w2s_relcache = NULL;
static MemoryContext w2s_relcache_cxt = NULL;

static void w2s_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
						bool is_init);
static void w2s_shutdown(LogicalDecodingContext *ctx);
static void w2s_begin_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
static void w2s_commit_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						   XLogRecPtr commit_lsn);
static void w2s_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					   Relation relation, ReorderBufferChange *change);
static void w2s_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						 int nrelations, Relation relations[],
						 ReorderBufferChange *change);
static bool w2s_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id);
static void w2s_pin_money(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						  struct W2SRelEntry *entry);

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	AssertVariableIsOfType(&_PG_output_plugin_init, LogicalOutputPluginInit);

	cb->startup_cb = w2s_startup;
	cb->begin_cb = w2s_begin_txn;
	cb->change_cb = w2s_change;
	cb->truncate_cb = w2s_truncate;
	cb->commit_cb = w2s_commit_txn;
	cb->filter_by_origin_cb = w2s_filter_origin;
	cb->shutdown_cb = w2s_shutdown;
	/*
	 * No message callback: DDL travels through the queue table, and
	 * messages anyone can emit must never become SQL.  No stream or
	 * two-phase callbacks: transactions are decoded whole, at commit.
	 */
}

/* ---------------------------------------------------------------------
 * Relation cache
 * ---------------------------------------------------------------------
 */

static void
w2s_relcache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	W2SRelEntry *entry;

	if (w2s_relcache == NULL)
		return;

	if (OidIsValid(relid))
	{
		entry = hash_search(w2s_relcache, &relid, HASH_FIND, NULL);
		if (entry != NULL)
			entry->valid = false;
		return;
	}

	hash_seq_init(&status, w2s_relcache);
	while ((entry = hash_seq_search(&status)) != NULL)
		entry->valid = false;
}

static void
w2s_syscache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	/* a renamed schema does not invalidate its tables' relcache entries */
	w2s_relcache_invalidate(arg, InvalidOid);
}

static void
w2s_relcache_init(void)
{
	HASHCTL		hctl;

	if (w2s_relcache != NULL)
		return;

	w2s_relcache_cxt = AllocSetContextCreate(CacheMemoryContext,
											 "wal2sql relation cache",
											 ALLOCSET_DEFAULT_SIZES);
	hctl.keysize = sizeof(Oid);
	hctl.entrysize = sizeof(W2SRelEntry);
	hctl.hcxt = w2s_relcache_cxt;
	w2s_relcache = hash_create("wal2sql relation cache", 128, &hctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* callbacks cannot be unregistered: register once per backend */
	CacheRegisterRelcacheCallback(w2s_relcache_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, w2s_syscache_invalidate,
								  (Datum) 0);
}

static void
w2s_fill_equality(W2SColumn *col, Oid typid)
{
	TypeCacheEntry *tce = lookup_type_cache(typid, TYPECACHE_EQ_OPR);
	HeapTuple	optup;
	Form_pg_operator opform;

	col->eq_kind = W2S_EQ_TEXT;
	if (!OidIsValid(tce->eq_opr))
		return;

	optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tce->eq_opr));
	if (!HeapTupleIsValid(optup))
		return;
	opform = (Form_pg_operator) GETSTRUCT(optup);
	if (opform->oprnamespace == PG_CATALOG_NAMESPACE &&
		strcmp(NameStr(opform->oprname), "=") == 0)
		col->eq_kind = W2S_EQ_PLAIN;
	else
	{
		col->eq_kind = W2S_EQ_OPERATOR;
		col->eq_operator = psprintf("OPERATOR(%s.%s)",
									quote_identifier(get_namespace_name(opform->oprnamespace)),
									NameStr(opform->oprname));
	}
	ReleaseSysCache(optup);
}

/*
 * Does the text form of a value of this type depend on lc_monetary?  True
 * for money and anything built on it (arrays, domains, composites, ranges).
 */
static bool
w2s_type_uses_money(Oid typid, int depth)
{
	char		typtype;
	Oid			elem;

	if (depth > 32)
		return true;			/* be safe rather than sorry */
	if (typid == CASHOID)
		return true;
	if (typid < FirstGenbkiObjectId && typid != RECORDOID)
	{
		/* built-in: only arrays of money contain money */
		elem = get_element_type(typid);
		return OidIsValid(elem) && w2s_type_uses_money(elem, depth + 1);
	}
	typtype = get_typtype(typid);
	switch (typtype)
	{
		case TYPTYPE_DOMAIN:
			return w2s_type_uses_money(getBaseType(typid), depth + 1);
		case TYPTYPE_RANGE:
			return w2s_type_uses_money(get_range_subtype(typid), depth + 1);
		case TYPTYPE_MULTIRANGE:
			return w2s_type_uses_money(get_multirange_range(typid), depth + 1);
		case TYPTYPE_COMPOSITE:
			{
				TupleDesc	desc = lookup_rowtype_tupdesc(typid, -1);
				bool		found = false;
				int			i;

				for (i = 0; i < desc->natts && !found; i++)
				{
					Form_pg_attribute att = TupleDescAttr(desc, i);

					if (!att->attisdropped)
						found = w2s_type_uses_money(att->atttypid, depth + 1);
				}
				ReleaseTupleDesc(desc);
				return found;
			}
		default:
			elem = get_element_type(typid);
			return OidIsValid(elem) && w2s_type_uses_money(elem, depth + 1);
	}
}

static void
w2s_build_entry(W2SRelEntry *entry, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext oldcxt;
	char	   *nspname;
	const char *relname = RelationGetRelationName(rel);
	StringInfoData buf;
	bool		any_always = false;
	bool		first = true;
	int			i;

	if (entry->cxt != NULL)
		MemoryContextDelete(entry->cxt);
	entry->cxt = AllocSetContextCreate(w2s_relcache_cxt, "wal2sql relation",
									   ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(entry->cxt);

	nspname = get_namespace_name(RelationGetNamespace(rel));
	entry->qualname = quote_qualified_identifier(nspname, relname);
	entry->relkind = rel->rd_rel->relkind;
	entry->replident = rel->rd_rel->relreplident;
	entry->is_queue = (strcmp(nspname, WAL2SQL_SCHEMA) == 0 &&
					   strcmp(relname, WAL2SQL_QUEUE) == 0 &&
					   desc->natts == QUEUE_NATTS &&
					   superuser_arg(rel->rd_rel->relowner));
	entry->ignore = (entry->relkind != RELKIND_RELATION &&
					 entry->relkind != RELKIND_PARTITIONED_TABLE) ||
		/* the capture code's own bookkeeping (see capture.c) */
		(strcmp(nspname, WAL2SQL_SCHEMA) == 0 &&
		 strcmp(relname, WAL2SQL_AUTO_FULL) == 0 &&
		 superuser_arg(rel->rd_rel->relowner));

	entry->natts = desc->natts;
	entry->uses_money = false;
	entry->cols = palloc0(sizeof(W2SColumn) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		W2SColumn  *col = &entry->cols[i];
		Oid			outfn;

		col->skip = att->attisdropped || W2S_ATT_IS_GENERATED(att);
		if (col->skip)
			continue;
		col->qname = pstrdup(quote_identifier(NameStr(att->attname)));
		col->identity_always = (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS);
		any_always |= col->identity_always;
		getTypeOutputInfo(att->atttypid, &outfn, &col->varlena);
		fmgr_info_cxt(outfn, &col->out, entry->cxt);
		w2s_fill_equality(col, att->atttypid);
		col->byval = att->attbyval;
		col->typlen = att->attlen;
		entry->uses_money |= w2s_type_uses_money(att->atttypid, 0);
	}

	/* key columns of DEFAULT and USING INDEX identities */
	entry->nkeys = 0;
	entry->keys = NULL;
	if (entry->replident == REPLICA_IDENTITY_DEFAULT ||
		entry->replident == REPLICA_IDENTITY_INDEX)
	{
		Bitmapset  *bms = W2S_IDENTITY_KEY_BITMAP(rel);
		int			x = -1;

		entry->keys = palloc(sizeof(AttrNumber) * Max(bms_num_members(bms), 1));
		while ((x = bms_next_member(bms, x)) >= 0)
		{
			AttrNumber	attnum = x + FirstLowInvalidHeapAttributeNumber;

			if (attnum > 0 && attnum <= desc->natts &&
				!entry->cols[attnum - 1].skip)
			{
				entry->keys[entry->nkeys++] = attnum;
				entry->cols[attnum - 1].is_key = true;
			}
		}
	}

	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (", entry->qualname);
	for (i = 0; i < desc->natts; i++)
	{
		if (entry->cols[i].skip)
			continue;
		if (!first)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, entry->cols[i].qname);
		first = false;
	}
	if (first)
	{
		/* no writable column at all */
		resetStringInfo(&buf);
		appendStringInfo(&buf, "INSERT INTO %s ", entry->qualname);
	}
	else
		appendStringInfoString(&buf, ") ");
	if (any_always)
		appendStringInfoString(&buf, "OVERRIDING SYSTEM VALUE ");
	appendStringInfoString(&buf, first ? "DEFAULT VALUES" : "VALUES ");
	entry->default_values = first;
	entry->insert_prefix = buf.data;

	MemoryContextSwitchTo(oldcxt);
	entry->generation++;
	entry->valid = true;
}

static W2SRelEntry *
w2s_get_entry(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	W2SRelEntry *entry;
	bool		found;

	entry = hash_search(w2s_relcache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->cxt = NULL;
		entry->generation = 0;
		entry->valid = false;
	}
	if (!entry->valid)
		w2s_build_entry(entry, rel);
	return entry;
}

/* ---------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------
 */

/*
 * Append a value as a string literal, on one line: a value holding a
 * backslash, a newline or a carriage return is written as E'...' (those
 * escaped as \\, \n, \r), so that it reads back the same whatever
 * standard_conforming_strings is and no row change ever spans two lines
 * (see w2s_write_line); every other value is a plain '...'.
 */
static void
w2s_append_literal(StringInfo out, const char *s)
{
	const char *p;
	bool		escape = (strpbrk(s, "\\\n\r") != NULL);

	if (escape)
		appendStringInfoChar(out, 'E');
	appendStringInfoChar(out, '\'');
	p = s;
	for (;;)
	{
		size_t		n = strcspn(p, escape ? "'\\\n\r" : "'");

		appendBinaryStringInfo(out, p, n);
		p += n;
		if (*p == '\0')
			break;
		switch (*p)
		{
			case '\n':
				appendStringInfoString(out, "\\n");
				break;
			case '\r':
				appendStringInfoString(out, "\\r");
				break;
			default:
				/* double the quote or backslash */
				appendStringInfoChar(out, *p);
				appendStringInfoChar(out, *p);
				break;
		}
		p++;
	}
	appendStringInfoChar(out, '\'');
}

static void
w2s_append_value(StringInfo out, W2SColumn *col, Datum value, bool isnull)
{
	if (isnull)
		appendStringInfoString(out, "NULL");
	else
		w2s_append_literal(out, OutputFunctionCall(&col->out, value));
}

static inline bool
w2s_is_unchanged_toast(W2SColumn *col, Datum value, bool isnull)
{
	return !isnull && col->varlena &&
		VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

/* Format a commit timestamp as UTC ISO 8601 with microseconds. */
static void
w2s_append_utc(StringInfo out, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(out, "invalid");
		return;
	}
	appendStringInfo(out, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/* Write the header and BEGIN of the transaction, once. */
static void
w2s_ensure_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	W2SData    *data = ctx->output_plugin_private;

	if (data->xact_written)
		return;

	OutputPluginPrepareWrite(ctx, false);
	appendStringInfo(ctx->out,
					 "-- wal2sql begin xid=%u commit_lsn=%X/%X end_lsn=%X/%X commit_time=",
					 txn->xid,
					 LSN_FORMAT_ARGS(txn->final_lsn),
					 LSN_FORMAT_ARGS(txn->end_lsn));
	w2s_append_utc(ctx->out, W2S_COMMIT_TIME(txn));
	appendStringInfo(ctx->out, " format=%d", W2S_FORMAT);
	OutputPluginWrite(ctx, false);

	OutputPluginPrepareWrite(ctx, false);
	appendStringInfoString(ctx->out, "BEGIN;");
	OutputPluginWrite(ctx, false);

	data->xact_written = true;
}

/*
 * Write one message of "kind" ("text" or "ddl") framed by its length:
 * "-- wal2sql <kind> bytes=<N>", a newline, then exactly N bytes of text.
 * The reader skips those N bytes (and the newline the consumer appends)
 * without looking at them, so the text may hold anything.
 */
static void
w2s_write_framed(LogicalDecodingContext *ctx, const char *kind,
				 const char *text, size_t len)
{
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "-- wal2sql %s bytes=%zu\n", kind, len);
	appendBinaryStringInfo(ctx->out, text, len);
	OutputPluginWrite(ctx, true);
}

/*
 * Write one complete statement (with its ';').  Everything the plugin
 * writes goes through here or w2s_write_framed: a statement holding a
 * newline or carriage return (an identifier that contains one) is framed,
 * so every other message is exactly one line and no line of the output can
 * be mistaken for a framing line (see doc/security.md).
 */
static void
w2s_write_line(LogicalDecodingContext *ctx, const char *text, size_t len)
{
	if (memchr(text, '\n', len) != NULL || memchr(text, '\r', len) != NULL)
	{
		w2s_write_framed(ctx, "text", text, len);
		return;
	}
	OutputPluginPrepareWrite(ctx, true);
	appendBinaryStringInfo(ctx->out, text, len);
	OutputPluginWrite(ctx, true);
}

/* Write out the pending multi-row INSERT, if any. */
static void
w2s_flush_batch(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	W2SData    *data = ctx->output_plugin_private;

	if (data->batch_count == 0)
		return;
	w2s_ensure_begin(ctx, txn);
	appendStringInfoChar(&data->batch, ';');
	w2s_write_line(ctx, data->batch.data, data->batch.len);
	resetStringInfo(&data->batch);
	data->batch_count = 0;
	data->batch_relid = InvalidOid;
}

/*
 * A statement that stops the replay with a clear error: written instead of
 * a change that cannot be replayed.  The message is one line.
 */
static void
w2s_write_marker(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
				 const char *message)
{
	StringInfoData body;
	StringInfoData stmt;
	char	   *msg = pstrdup(message);
	char	   *p;

	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	initStringInfo(&body);
	appendStringInfoString(&body, "BEGIN RAISE EXCEPTION USING MESSAGE = ");
	w2s_append_literal(&body, msg);
	appendStringInfoString(&body, "; END");

	initStringInfo(&stmt);
	appendStringInfoString(&stmt, "DO ");
	w2s_append_literal(&stmt, body.data);
	appendStringInfoChar(&stmt, ';');

	w2s_ensure_begin(ctx, txn);
	w2s_write_line(ctx, stmt.data, stmt.len);
}

static void
w2s_write_no_identity(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					  W2SRelEntry *entry, const char *action)
{
	w2s_write_marker(ctx, txn,
					 psprintf("wal2sql: cannot replay %s on table %s in transaction %u: "
							  "the change carries no replica identity data "
							  "(give the table a primary key or REPLICA IDENTITY FULL)",
							  action, entry->qualname, txn->xid));
}

static void
w2s_append_condition(StringInfo out, W2SColumn *col, Datum value, bool isnull)
{
	appendStringInfoString(out, col->qname);
	if (isnull)
	{
		appendStringInfoString(out, " IS NULL");
		return;
	}
	switch (col->eq_kind)
	{
		case W2S_EQ_PLAIN:
			/* never resolved through search_path */
			appendStringInfoString(out, " OPERATOR(pg_catalog.=) ");
			break;
		case W2S_EQ_OPERATOR:
			appendStringInfoChar(out, ' ');
			appendStringInfoString(out, col->eq_operator);
			appendStringInfoChar(out, ' ');
			break;
		case W2S_EQ_TEXT:
			appendStringInfoString(out, "::pg_catalog.text OPERATOR(pg_catalog.=) ");
			break;
	}
	w2s_append_value(out, col, value, false);
}

/*
 * Append " WHERE ..." identifying the changed row.  oldvals may be NULL
 * (no old tuple), then key columns come from newvals.  Returns false when
 * the row cannot be identified.
 */
static bool
w2s_append_where(StringInfo out, W2SRelEntry *entry,
				 Datum *oldvals, bool *oldnulls,
				 Datum *newvals, bool *newnulls)
{
	int			i;

	if (entry->replident == REPLICA_IDENTITY_FULL)
	{
		bool		first = true;

		if (oldvals == NULL)
			return false;
		appendStringInfo(out, " WHERE ctid OPERATOR(pg_catalog.=) (SELECT ctid FROM ONLY %s WHERE ",
						 entry->qualname);
		for (i = 0; i < entry->natts; i++)
		{
			W2SColumn  *col = &entry->cols[i];

			if (col->skip)
				continue;
			if (!first)
				appendStringInfoString(out, " AND ");
			w2s_append_condition(out, col, oldvals[i], oldnulls[i]);
			first = false;
		}
		if (first)
			appendStringInfoString(out, "true");
		appendStringInfoString(out, " LIMIT 1)");
		return true;
	}

	if (entry->nkeys == 0)
		return false;

	appendStringInfoString(out, " WHERE ");
	for (i = 0; i < entry->nkeys; i++)
	{
		int			k = entry->keys[i] - 1;
		W2SColumn  *col = &entry->cols[k];
		Datum		v;
		bool		isnull;

		if (oldvals != NULL)
		{
			v = oldvals[k];
			isnull = oldnulls[k];
		}
		else
		{
			v = newvals[k];
			isnull = newnulls[k];
			if (w2s_is_unchanged_toast(col, v, isnull))
				return false;
		}
		if (i > 0)
			appendStringInfoString(out, " AND ");
		w2s_append_condition(out, col, v, isnull);
	}
	return true;
}

static void
w2s_append_row(StringInfo out, W2SRelEntry *entry, Datum *values, bool *nulls)
{
	bool		first = true;
	int			i;

	appendStringInfoChar(out, '(');
	for (i = 0; i < entry->natts; i++)
	{
		if (entry->cols[i].skip)
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		w2s_append_value(out, &entry->cols[i], values[i], nulls[i]);
		first = false;
	}
	appendStringInfoChar(out, ')');
}

/* ---------------------------------------------------------------------
 * Queue table rows: DDL, sequence values, unreplayable markers
 * ---------------------------------------------------------------------
 */

/*
 * A column added with a stable default: the rows that existed then hold
 * the value stored in attmissingval.  "relid attnum" comes from the queue.
 */
static void
w2s_write_missing_value(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						const char *spec)
{
	unsigned int relid;
	int			attnum;
	Relation	rel;
	W2SRelEntry *entry;
	HeapTuple	atttup;
	Form_pg_attribute att;
	Datum		missing;
	Datum		value = (Datum) 0;
	bool		isnull = true;
	StringInfoData stmt;

	if (sscanf(spec, "%u %d", &relid, &attnum) != 2 ||
		!RelationIsValid(rel = RelationIdGetRelation((Oid) relid)))
	{
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: cannot replay transaction %u: "
								  "the default of added column \"%s\" is unknown",
								  txn->xid, spec));
		return;
	}
	entry = w2s_get_entry(rel);
	atttup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	if (attnum < 1 || attnum > entry->natts || !HeapTupleIsValid(atttup))
	{
		if (HeapTupleIsValid(atttup))
			ReleaseSysCache(atttup);
		RelationClose(rel);
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: cannot replay transaction %u: "
								  "the added column %d of table %s is unknown",
								  txn->xid, attnum, entry->qualname));
		return;
	}
	att = (Form_pg_attribute) GETSTRUCT(atttup);
	if (!att->atthasmissing || entry->cols[attnum - 1].skip)
	{
		ReleaseSysCache(atttup);
		RelationClose(rel);
		return;
	}
	missing = SysCacheGetAttr(ATTNUM, atttup, Anum_pg_attribute_attmissingval, &isnull);
	if (!isnull)
	{
		int			idx = 1;

		value = array_get_element(missing, 1, &idx, -1, att->attlen,
								  att->attbyval, att->attalign, &isnull);
	}
	w2s_pin_money(ctx, txn, entry);
	initStringInfo(&stmt);
	appendStringInfo(&stmt, "UPDATE ONLY %s SET %s = ", entry->qualname,
					 entry->cols[attnum - 1].qname);
	w2s_append_value(&stmt, &entry->cols[attnum - 1], value, isnull);
	appendStringInfoChar(&stmt, ';');
	w2s_write_line(ctx, stmt.data, stmt.len);
	ReleaseSysCache(atttup);
	RelationClose(rel);
}

static char *
w2s_queue_text(Datum *values, bool *nulls, int attnum)
{
	if (nulls[attnum - 1])
		return NULL;
	return TextDatumGetCString(values[attnum - 1]);
}

static void
w2s_write_queue_row(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					Relation rel, HeapTuple tuple)
{
	W2SData    *data = ctx->output_plugin_private;
	TupleDesc	desc = RelationGetDescr(rel);
	Datum		values[QUEUE_NATTS];
	bool		nulls[QUEUE_NATTS];
	char	   *kind;
	char	   *search_path;
	char	   *role;
	char	   *settings;
	char	   *command;
	StringInfoData buf;

	heap_deform_tuple(tuple, desc, values, nulls);
	kind = w2s_queue_text(values, nulls, QUEUE_ATT_KIND);
	search_path = w2s_queue_text(values, nulls, QUEUE_ATT_SEARCH_PATH);
	role = w2s_queue_text(values, nulls, QUEUE_ATT_ROLE);
	settings = w2s_queue_text(values, nulls, QUEUE_ATT_SETTINGS);
	command = w2s_queue_text(values, nulls, QUEUE_ATT_COMMAND);
	if (kind == NULL || command == NULL)
		return;

	w2s_ensure_begin(ctx, txn);
	initStringInfo(&buf);

	if (strcmp(kind, "unreplayable") == 0)
	{
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: cannot replay transaction %u: %s",
								  txn->xid, command));
		return;
	}
	if (strcmp(kind, "sql") == 0)
	{
		w2s_write_line(ctx, command, strlen(command));
		return;
	}
	if (strcmp(kind, "missing") == 0)
	{
		w2s_write_missing_value(ctx, txn, command);
		return;
	}
	if (strcmp(kind, "rewrite") == 0)
	{
		/*
		 * The table is being rewritten with contents the replay cannot
		 * recompute (volatile default, SET LOGGED ...): its rows are
		 * replaced by the rewritten rows that follow.
		 */
		Oid			relid = atooid(command);
		Relation	target = RelationIdGetRelation(relid);
		W2SRelEntry *entry;
		MemoryContext old;

		if (!RelationIsValid(target))
		{
			w2s_write_marker(ctx, txn,
							 psprintf("wal2sql: cannot replay transaction %u: "
									  "rewritten table %u not found", txn->xid, relid));
			return;
		}
		entry = w2s_get_entry(target);
		appendStringInfo(&buf, "DELETE FROM ONLY %s;", entry->qualname);
		w2s_write_line(ctx, buf.data, buf.len);
		RelationClose(target);
		old = MemoryContextSwitchTo(data->context);
		data->rewrites = lappend_oid(data->rewrites, relid);
		MemoryContextSwitchTo(old);
		return;
	}
	if (strcmp(kind, "ddl") != 0)
	{
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: unknown queue entry \"%s\" in transaction %u",
								  kind, txn->xid));
		return;
	}

	/*
	 * The settings the statement was parsed with, each its own statement
	 * before it (a consumer sends them before the DDL, so that the server
	 * parses the DDL with them in effect), then the DDL framed, then the
	 * replay session's own settings back: row changes after it never
	 * depend on the DDL's search_path or role.
	 */
	if (search_path != NULL)
	{
		appendStringInfo(&buf, "SET LOCAL search_path = %s;", search_path);
		w2s_write_line(ctx, buf.data, buf.len);
	}
	if (settings != NULL)
		w2s_write_line(ctx, settings, strlen(settings));
	if (role != NULL)
	{
		resetStringInfo(&buf);
		appendStringInfo(&buf, "SET LOCAL ROLE %s;", quote_identifier(role));
		w2s_write_line(ctx, buf.data, buf.len);
	}
	w2s_write_framed(ctx, "ddl", command, strlen(command));
	if (role != NULL)
		w2s_write_line(ctx, "RESET ROLE;", strlen("RESET ROLE;"));
	if (search_path != NULL)
		w2s_write_line(ctx, "SET LOCAL search_path = pg_catalog, pg_temp;",
					   strlen("SET LOCAL search_path = pg_catalog, pg_temp;"));
	if (settings != NULL)
		w2s_write_line(ctx, "SET LOCAL standard_conforming_strings = on;",
					   strlen("SET LOCAL standard_conforming_strings = on;"));
}

/* ---------------------------------------------------------------------
 * Callbacks
 * ---------------------------------------------------------------------
 */

static int
w2s_parse_int_option(DefElem *elem, int min, int max)
{
	char	   *value;
	char	   *end;
	long		n;

	if (elem->arg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" of wal2sql needs a value", elem->defname)));
	value = strVal(elem->arg);
	errno = 0;
	n = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || n < min || n > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value \"%s\" for option \"%s\" of wal2sql",
						value, elem->defname),
				 errdetail("Valid values are integers from %d to %d.", min, max)));
	return (int) n;
}

/*
 * Settings that make output functions produce the same text whatever the
 * server, database or role configuration is.
 */
static const char *const w2s_pinned_settings[][2] = {
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
	{"TimeZone", "UTC"},
	{"search_path", "pg_catalog"},
	{"lc_monetary", "C"},
};

static void
w2s_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
			bool is_init)
{
	W2SData    *data;
	ListCell   *lc;
	int			i;

	data = MemoryContextAllocZero(ctx->context, sizeof(W2SData));
	data->context = AllocSetContextCreate(ctx->context, "wal2sql",
										  ALLOCSET_DEFAULT_SIZES);
	data->change_cxt = AllocSetContextCreate(ctx->context, "wal2sql change",
											 ALLOCSET_DEFAULT_SIZES);
	data->batch_rows = 0;
	data->batch_bytes = 8 * 1024 * 1024;
	data->guc_nestlevel = -1;

	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	/* rows of table rewrites: written when the capture asks for it */
	opt->receive_rewrites = true;

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		if (strcmp(elem->defname, "batch-inserts") == 0)
			data->batch_rows = w2s_parse_int_option(elem, 0, 1000000);
		else if (strcmp(elem->defname, "batch-bytes") == 0)
			data->batch_bytes = w2s_parse_int_option(elem, 1024, 512 * 1024 * 1024);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" = \"%s\" is unknown to wal2sql",
							elem->defname,
							elem->arg ? strVal(elem->arg) : "(null)"),
					 errhint("Valid options are \"batch-inserts\" and \"batch-bytes\".")));
	}

	ctx->output_plugin_private = data;
	if (is_init)
		return;

	/*
	 * Pin the settings output functions depend on.  A walsender session
	 * exists only to decode, so the settings stay for the session; in the
	 * SQL interface they are undone at shutdown (or by the abort).
	 */
	if (!am_walsender)
		data->guc_nestlevel = NewGUCNestLevel();
	for (i = 0; i < lengthof(w2s_pinned_settings); i++)
		(void) set_config_option(w2s_pinned_settings[i][0],
								 w2s_pinned_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION,
								 am_walsender ? GUC_ACTION_SET : GUC_ACTION_SAVE,
								 true, 0, false);

	MemoryContextSwitchTo(data->context);
	initStringInfo(&data->batch);
	MemoryContextSwitchTo(ctx->context);

	w2s_relcache_init();
	/* entries may have been built for another snapshot in this backend */
	w2s_relcache_invalidate((Datum) 0, InvalidOid);
}

static void
w2s_shutdown(LogicalDecodingContext *ctx)
{
	W2SData    *data = ctx->output_plugin_private;

	if (data == NULL)
		return;
	if (data->guc_nestlevel > 0)
		AtEOXact_GUC(true, data->guc_nestlevel);
	MemoryContextDelete(data->context);
	MemoryContextDelete(data->change_cxt);
}

static bool
w2s_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	return false;				/* a backup keeps every origin */
}

static void
w2s_begin_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	W2SData    *data = ctx->output_plugin_private;

	/* written lazily with the first statement: empty ones are skipped */
	data->xact_written = false;
	data->money_set = false;
	list_free(data->rewrites);
	data->rewrites = NIL;
	data->batch_count = 0;
	data->batch_relid = InvalidOid;
	resetStringInfo(&data->batch);
}

static void
w2s_commit_txn(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			   XLogRecPtr commit_lsn)
{
	W2SData    *data = ctx->output_plugin_private;

	w2s_flush_batch(ctx, txn);
	if (!data->xact_written)
	{
		W2S_UPDATE_PROGRESS(ctx, true);
		return;
	}

	OutputPluginPrepareWrite(ctx, false);
	appendStringInfoString(ctx->out, "COMMIT;");
	OutputPluginWrite(ctx, false);

	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "-- wal2sql commit end_lsn=%X/%X",
					 LSN_FORMAT_ARGS(txn->end_lsn));
	OutputPluginWrite(ctx, true);
	data->xact_written = false;
}

static void
w2s_insert(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		   W2SRelEntry *entry, Datum *values, bool *nulls)
{
	W2SData    *data = ctx->output_plugin_private;
	StringInfo	out;

	if (data->batch_rows > 0 && !entry->default_values)
	{
		if (data->batch_count > 0 &&
			(data->batch_relid != entry->relid ||
			 data->batch_generation != entry->generation))
			w2s_flush_batch(ctx, txn);

		if (data->batch_count == 0)
		{
			appendStringInfoString(&data->batch, entry->insert_prefix);
			data->batch_relid = entry->relid;
			data->batch_generation = entry->generation;
		}
		else
			appendStringInfoString(&data->batch, ", ");
		w2s_append_row(&data->batch, entry, values, nulls);
		data->batch_count++;

		if (data->batch_count >= data->batch_rows ||
			data->batch.len >= data->batch_bytes)
			w2s_flush_batch(ctx, txn);
		return;
	}

	w2s_flush_batch(ctx, txn);
	w2s_ensure_begin(ctx, txn);
	OutputPluginPrepareWrite(ctx, true);
	out = ctx->out;
	appendStringInfoString(out, entry->insert_prefix);
	if (!entry->default_values)
		w2s_append_row(out, entry, values, nulls);
	appendStringInfoChar(out, ';');
	OutputPluginWrite(ctx, true);
}

/*
 * May the value of a GENERATED ALWAYS identity column have changed in this
 * UPDATE (SET col = DEFAULT)?  Known when the old value was logged (FULL
 * identity, or a key column whose key changed); a key column without old
 * key data kept its value; any other column may have changed.
 */
static bool
w2s_identity_changed(W2SRelEntry *entry, int i, Datum *oldvals, bool *oldnulls,
					 Datum *newvals, bool *newnulls)
{
	W2SColumn  *col = &entry->cols[i];

	if (oldvals != NULL &&
		(entry->replident == REPLICA_IDENTITY_FULL || col->is_key))
	{
		if (oldnulls[i] || newnulls[i])
			return oldnulls[i] != newnulls[i];
		return !datumIsEqual(oldvals[i], newvals[i], col->byval, col->typlen);
	}
	if (col->is_key)
		return false;
	return true;
}

/* ALTER TABLE ... ALTER COLUMN ... SET GENERATED ... for every column in list */
static void
w2s_write_set_generated(LogicalDecodingContext *ctx, W2SRelEntry *entry,
						List *cols, const char *how)
{
	ListCell   *lc;

	foreach(lc, cols)
	{
		char	   *stmt = psprintf("ALTER TABLE ONLY %s ALTER COLUMN %s SET GENERATED %s;",
									entry->qualname,
									entry->cols[lfirst_int(lc)].qname, how);

		w2s_write_line(ctx, stmt, strlen(stmt));
	}
}

static void
w2s_update(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		   W2SRelEntry *entry, Datum *oldvals, bool *oldnulls,
		   Datum *newvals, bool *newnulls)
{
	StringInfoData stmt;
	bool		first = true;
	List	   *always = NIL;	/* GENERATED ALWAYS columns set */
	int			i;

	initStringInfo(&stmt);
	appendStringInfo(&stmt, "UPDATE ONLY %s SET ", entry->qualname);
	for (i = 0; i < entry->natts; i++)
	{
		W2SColumn  *col = &entry->cols[i];

		if (col->skip ||
			w2s_is_unchanged_toast(col, newvals[i], newnulls[i]))
			continue;
		if (col->identity_always)
		{
			/*
			 * UPDATE ... SET id = DEFAULT: the new value can only be set
			 * while the column is GENERATED BY DEFAULT.
			 */
			if (!w2s_identity_changed(entry, i, oldvals, oldnulls,
									  newvals, newnulls))
				continue;
			always = lappend_int(always, i);
		}
		if (!first)
			appendStringInfoString(&stmt, ", ");
		appendStringInfoString(&stmt, col->qname);
		appendStringInfoString(&stmt, " = ");
		w2s_append_value(&stmt, col, newvals[i], newnulls[i]);
		first = false;
	}
	if (first)
		return;					/* nothing to set: a no-op */

	if (!w2s_append_where(&stmt, entry, oldvals, oldnulls, newvals, newnulls))
	{
		w2s_write_no_identity(ctx, txn, entry, "UPDATE");
		return;
	}
	appendStringInfoChar(&stmt, ';');
	w2s_ensure_begin(ctx, txn);
	w2s_write_set_generated(ctx, entry, always, "BY DEFAULT");
	w2s_write_line(ctx, stmt.data, stmt.len);
	w2s_write_set_generated(ctx, entry, always, "ALWAYS");
}

static void
w2s_delete(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		   W2SRelEntry *entry, Datum *oldvals, bool *oldnulls)
{
	StringInfoData stmt;

	initStringInfo(&stmt);
	appendStringInfo(&stmt, "DELETE FROM ONLY %s", entry->qualname);
	if (oldvals == NULL ||
		!w2s_append_where(&stmt, entry, oldvals, oldnulls, NULL, NULL))
	{
		w2s_write_no_identity(ctx, txn, entry, "DELETE");
		return;
	}
	appendStringInfoChar(&stmt, ';');
	w2s_ensure_begin(ctx, txn);
	w2s_write_line(ctx, stmt.data, stmt.len);
}

/*
 * money values are written in the C locale: the replay must read them in
 * it too, whatever its lc_monetary (written once per transaction).
 */
static void
w2s_pin_money(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  W2SRelEntry *entry)
{
	W2SData    *data = ctx->output_plugin_private;
	const char *set = "SET LOCAL lc_monetary = 'C';";

	if (!entry->uses_money || data->money_set)
		return;
	w2s_ensure_begin(ctx, txn);
	w2s_write_line(ctx, set, strlen(set));
	data->money_set = true;
}

/* A row of a table rewrite the capture asked for: an INSERT into the table. */
static void
w2s_rewritten_row(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
				  Relation transient, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(transient);
	Relation	target = RelationIdGetRelation(transient->rd_rel->relrewrite);
	W2SRelEntry *entry;
	Datum	   *values;
	bool	   *nulls;

	if (!RelationIsValid(target))
	{
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: cannot replay transaction %u: "
								  "rewritten table %u not found",
								  txn->xid, transient->rd_rel->relrewrite));
		return;
	}
	entry = w2s_get_entry(target);
	if (entry->natts != desc->natts)
	{
		w2s_write_marker(ctx, txn,
						 psprintf("wal2sql: cannot replay transaction %u: "
								  "the rewritten rows of table %s do not match its columns",
								  txn->xid, entry->qualname));
		RelationClose(target);
		return;
	}
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tuple, desc, values, nulls);
	w2s_pin_money(ctx, txn, entry);
	w2s_insert(ctx, txn, entry, values, nulls);
	RelationClose(target);
}

static void
w2s_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		   Relation relation, ReorderBufferChange *change)
{
	W2SData    *data = ctx->output_plugin_private;
	MemoryContext oldcxt;
	W2SRelEntry *entry;
	TupleDesc	desc = RelationGetDescr(relation);
	HeapTuple	oldtuple;
	HeapTuple	newtuple;
	Datum	   *oldvals = NULL;
	bool	   *oldnulls = NULL;
	Datum	   *newvals = NULL;
	bool	   *newnulls = NULL;

	oldcxt = MemoryContextSwitchTo(data->change_cxt);

	oldtuple = W2S_CHANGE_TUPLE(change->data.tp.oldtuple);
	newtuple = W2S_CHANGE_TUPLE(change->data.tp.newtuple);

	/* the transient table of a rewrite (ALTER TABLE, REFRESH ...) */
	if (OidIsValid(relation->rd_rel->relrewrite))
	{
		if (change->action == REORDER_BUFFER_CHANGE_INSERT && newtuple != NULL &&
			list_member_oid(data->rewrites, relation->rd_rel->relrewrite))
			w2s_rewritten_row(ctx, txn, relation, newtuple);
		goto done;
	}

	entry = w2s_get_entry(relation);

	if (entry->is_queue)
	{
		if (change->action == REORDER_BUFFER_CHANGE_INSERT && newtuple != NULL)
		{
			w2s_flush_batch(ctx, txn);
			w2s_write_queue_row(ctx, txn, relation, newtuple);
		}
		goto done;
	}
	if (entry->ignore)
		goto done;
	w2s_pin_money(ctx, txn, entry);

	if (oldtuple != NULL)
	{
		oldvals = palloc(sizeof(Datum) * desc->natts);
		oldnulls = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(oldtuple, desc, oldvals, oldnulls);
	}
	if (newtuple != NULL)
	{
		newvals = palloc(sizeof(Datum) * desc->natts);
		newnulls = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(newtuple, desc, newvals, newnulls);
	}

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			if (newvals != NULL)
				w2s_insert(ctx, txn, entry, newvals, newnulls);
			break;
		case REORDER_BUFFER_CHANGE_UPDATE:
			w2s_flush_batch(ctx, txn);
			if (newvals != NULL)
				w2s_update(ctx, txn, entry, oldvals, oldnulls,
						   newvals, newnulls);
			break;
		case REORDER_BUFFER_CHANGE_DELETE:
			w2s_flush_batch(ctx, txn);
			w2s_delete(ctx, txn, entry, oldvals, oldnulls);
			break;
		default:
			break;
	}

done:
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->change_cxt);
}

static void
w2s_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 int nrelations, Relation relations[],
			 ReorderBufferChange *change)
{
	W2SData    *data = ctx->output_plugin_private;
	MemoryContext oldcxt;
	StringInfoData stmt;
	int			n = 0;
	int			i;

	w2s_flush_batch(ctx, txn);
	oldcxt = MemoryContextSwitchTo(data->change_cxt);

	initStringInfo(&stmt);
	appendStringInfoString(&stmt, "TRUNCATE ");
	for (i = 0; i < nrelations; i++)
	{
		W2SRelEntry *entry = w2s_get_entry(relations[i]);

		/* partitioned parents are left out: their leaves are listed */
		if (entry->is_queue || entry->ignore ||
			entry->relkind != RELKIND_RELATION)
			continue;
		if (n > 0)
			appendStringInfoString(&stmt, ", ");
		appendStringInfo(&stmt, "ONLY %s", entry->qualname);
		n++;
	}
	if (change->data.truncate.restart_seqs)
		appendStringInfoString(&stmt, " RESTART IDENTITY");
	if (change->data.truncate.cascade)
		appendStringInfoString(&stmt, " CASCADE");
	appendStringInfoChar(&stmt, ';');

	if (n > 0)
	{
		w2s_ensure_begin(ctx, txn);
		w2s_write_line(ctx, stmt.data, stmt.len);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->change_cxt);
}
