/*-------------------------------------------------------------------------
 *
 * emit.c
 *		Writing SQL text: literals, WHERE clauses, rows, the transaction
 *		header, framed and one-line messages, markers, and the queue table's
 *		rows (DDL, sequence values, rewrites).  Every message goes through
 *		w2s_write_line or w2s_write_framed (see doc/security.md).
 *
 * IDENTIFICATION
 *		wal2sql/src/emit.c
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

/* Append NULL or the value as a one-line literal. */
void
w2s_append_value(StringInfo out, W2SColumn *col, Datum value, bool isnull)
{
	if (isnull)
		appendStringInfoString(out, "NULL");
	else
		w2s_append_literal(out, OutputFunctionCall(&col->out, value));
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
void
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
void
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
void
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
void
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

/* Write the marker for an UPDATE/DELETE that carries no replica identity data. */
void
w2s_write_no_identity(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					  W2SRelEntry *entry, const char *action)
{
	w2s_write_marker(ctx, txn,
					 psprintf("wal2sql: cannot replay %s on table %s in transaction %u: "
							  "the change carries no replica identity data "
							  "(give the table a primary key or REPLICA IDENTITY FULL)",
							  action, entry->qualname, txn->xid));
}

/*
 * Append "col OPERATOR(pg_catalog.=) value", IS NULL, or a ::text form;
 * for FULL identity, the text form too where equal is not identical.
 */
static void
w2s_append_condition(StringInfo out, W2SColumn *col, Datum value, bool isnull,
					 bool full)
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
	if (col->cast != NULL && col->eq_kind != W2S_EQ_TEXT)
		appendStringInfoString(out, col->cast);
	if (full && col->exact_text)
	{
		/*
		 * The identical row, not only an equal one: its text form (the
		 * output function's, as written here; bytes, whatever the column's
		 * collation) is the same.
		 */
		appendStringInfo(out, " AND pg_catalog.format('%%s', %s) COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.=) ",
						 col->qname);
		w2s_append_value(out, col, value, false);
	}
}

/*
 * Append " WHERE ..." identifying the changed row.  oldvals may be NULL
 * (no old tuple), then key columns come from newvals.  Returns false when
 * the row cannot be identified.
 */
bool
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
			w2s_append_condition(out, col, oldvals[i], oldnulls[i], true);
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
		w2s_append_condition(out, col, v, isnull, false);
	}
	return true;
}

/* Append "(v1, v2, ...)" for the writable columns. */
void
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

/* A text column of a queue row, or NULL. */
static char *
w2s_queue_text(Datum *values, bool *nulls, int attnum)
{
	if (nulls[attnum - 1])
		return NULL;
	return TextDatumGetCString(values[attnum - 1]);
}

/* Write a queue row as SQL: DDL and its settings, setval, rewrite, marker. */
void
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
	/* a consumer resets its session after DDL: pin lc_monetary again */
	data->money_set = false;
}
