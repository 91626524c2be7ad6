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
 * the superuser-owned queue table wal2sql.ddl_queue (see queue.c); the
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
#include "decode.h"

extern void _PG_output_plugin_init(OutputPluginCallbacks *cb);


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

/* Register the callbacks (none for messages: they never become SQL). */
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
 * Callbacks
 * ---------------------------------------------------------------------
 */

/* An integer plugin option within [min, max], or ERROR. */
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

/* Read the options, pin the output settings, set up per-decoding memory. */
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

/* Restore the settings pinned at startup (SQL interface) and free the plugin memory. */
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

/* Keep changes of every replication origin. */
static bool
w2s_filter_origin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	return false;				/* a backup keeps every origin */
}

/* Reset per-transaction state; the header waits for the first statement. */
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

/* Flush the batch, write COMMIT and the trailer if anything was written. */
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

/* Write an INSERT (or add the row to the pending multi-row INSERT). */
static void
w2s_insert(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
		   W2SRelEntry *entry, Datum *values, bool *nulls)
{
	W2SData    *data = ctx->output_plugin_private;
	StringInfoData out;

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
	/* through w2s_write_line: a newline in an identifier frames it */
	initStringInfo(&out);
	appendStringInfoString(&out, entry->insert_prefix);
	if (!entry->default_values)
		w2s_append_row(&out, entry, values, nulls);
	appendStringInfoChar(&out, ';');
	w2s_write_line(ctx, out.data, out.len);
	pfree(out.data);
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

/* Write an UPDATE naming the row by its identity, or a marker when it cannot be named. */
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

/* Write a DELETE naming the row by its identity, or a marker when it cannot be named. */
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
void
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

/* Write one decoded change (a queue row, a rewritten row, a row change). */
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

/*
 * Write one TRUNCATE for the truncated tables: ONLY each table, then the
 * partitioned parents (which have no rows; ONLY is refused for them).  The
 * parents must be listed: a foreign key of a partitioned table referencing
 * a truncated table lets the TRUNCATE through only when the parent is in
 * the list too.  Their partitions are listed already, so recursing adds
 * nothing.  A TRUNCATE of only parents (no partitions) writes nothing.
 */
static void
w2s_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 int nrelations, Relation relations[],
			 ReorderBufferChange *change)
{
	W2SData    *data = ctx->output_plugin_private;
	MemoryContext oldcxt;
	StringInfoData stmt;
	StringInfoData parents;
	int			n = 0;
	int			i;

	w2s_flush_batch(ctx, txn);
	oldcxt = MemoryContextSwitchTo(data->change_cxt);

	initStringInfo(&stmt);
	initStringInfo(&parents);
	appendStringInfoString(&stmt, "TRUNCATE ");
	for (i = 0; i < nrelations; i++)
	{
		W2SRelEntry *entry = w2s_get_entry(relations[i]);

		if (entry->is_queue || entry->ignore)
			continue;
		if (entry->relkind == RELKIND_PARTITIONED_TABLE)
		{
			appendStringInfo(&parents, ", %s", entry->qualname);
			continue;
		}
		if (entry->relkind != RELKIND_RELATION)
			continue;
		if (n > 0)
			appendStringInfoString(&stmt, ", ");
		appendStringInfo(&stmt, "ONLY %s", entry->qualname);
		n++;
	}
	appendStringInfoString(&stmt, parents.data);
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
