/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The queue table wal2sql.ddl_queue: the rows the capture writes into it,
 *		and the settings recorded with each DDL statement.
 *
 * The queue table belongs to the superuser who created the extension and
 * nobody else may write it.  The event trigger function (which cannot be
 * called directly) inserts rows with heap-level calls, so it needs no
 * privilege on the table; the output plugin recognises the table and
 * writes its rows out as SQL at their place in the transaction.  Rows of
 * rolled-back (sub)transactions vanish with them.
 *
 * A DDL statement's text means what the settings it ran with make of it:
 * the search_path, the role, and the settings that change how its text
 * is read are written with it, so that the replay reads it the same way.
 *
 * IDENTIFICATION
 *		wal2sql/src/queue.c
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
#include "mb/pg_wchar.h"
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
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "wal2sql.h"
#include "capture.h"

/* Insert a row into wal2sql.ddl_queue at heap level (needs no privilege). */
void
w2s_queue_insert(const char *kind, const char *search_path, const char *role,
				 const char *settings, const char *command)
{
	Oid			nspid = get_namespace_oid(WAL2SQL_SCHEMA, true);
	Oid			relid;
	Relation	rel;
	Datum		values[QUEUE_NATTS];
	bool		nulls[QUEUE_NATTS];
	HeapTuple	tup;

	if (!OidIsValid(nspid))
		return;
	relid = get_relname_relid(WAL2SQL_QUEUE, nspid);
	if (!OidIsValid(relid))
		return;

	rel = table_open(relid, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != QUEUE_NATTS)
		elog(ERROR, "wal2sql: unexpected shape of table %s.%s",
			 WAL2SQL_SCHEMA, WAL2SQL_QUEUE);

	memset(nulls, false, sizeof(nulls));
#define SETTEXT(att, s) \
	do { \
		if ((s) == NULL) nulls[(att) - 1] = true; \
		else values[(att) - 1] = CStringGetTextDatum(s); \
	} while (0)
	SETTEXT(QUEUE_ATT_KIND, kind);
	SETTEXT(QUEUE_ATT_SEARCH_PATH, search_path);
	SETTEXT(QUEUE_ATT_ROLE, role);
	SETTEXT(QUEUE_ATT_SETTINGS, settings);
	SETTEXT(QUEUE_ATT_COMMAND, command);
#undef SETTEXT

	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	/* the table has no index, trigger or rule: nothing else to maintain */
	simple_heap_insert(rel, tup);
	table_close(rel, NoLock);
}

/* The effective search_path, as the value of a SET command. */
static char *
w2s_current_search_path(void)
{
	List	   *path = fetch_search_path(false);
	ListCell   *lc;
	StringInfoData buf;

	initStringInfo(&buf);
	foreach(lc, path)
	{
		Oid			nspid = lfirst_oid(lc);
		char	   *name;

		if (isTempNamespace(nspid))
			name = "pg_temp";
		else
		{
			name = get_namespace_name(nspid);
			if (name == NULL)
				continue;
		}
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, quote_identifier(name));
	}
	if (buf.len == 0)
		appendStringInfoString(&buf, "''");
	return buf.data;
}

/*
 * The core scanner's token for the first token of a text.  The token codes
 * come from the generated parser/gram.h, which not every installation ships
 * (PostgreSQL 18's relocatable builds do not): learning them by scanning a
 * known constant needs only scanner.h.
 */
static int
w2s_first_token(const char *text)
{
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	core_yyscan_t scanner;
	int			token;

	scanner = scanner_init(text, &yyextra, &ScanKeywords, ScanKeywordTokens);
	token = core_yylex(&yylval, &yylloc, scanner);
	scanner_finish(scanner);
	return token;
}

/*
 * Does the text hold a string constant?  Only string constants are read
 * with the date, time, interval and money input settings.
 */
static bool
w2s_has_string_constant(const char *text, bool scs_off)
{
	static int	sconst = 0;
	static int	usconst = 0;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	core_yyscan_t scanner;
	int			token;
	volatile bool found = false;
	bool		saved = standard_conforming_strings;
	bool		saved_warning = escape_string_warning;

	escape_string_warning = false;
	PG_TRY();
	{
		if (sconst == 0)
		{
			/* U&'' is an error with standard_conforming_strings off */
			standard_conforming_strings = true;
			sconst = w2s_first_token("'x'");
			usconst = w2s_first_token("U&'x'");
		}
		standard_conforming_strings = !scs_off;
		scanner = scanner_init(text, &yyextra, &ScanKeywords, ScanKeywordTokens);
		while (!found && (token = core_yylex(&yylval, &yylloc, scanner)) != 0)
			found = (token == sconst || token == usconst);
		scanner_finish(scanner);
	}
	PG_FINALLY();
	{
		standard_conforming_strings = saved;
		escape_string_warning = saved_warning;
	}
	PG_END_TRY();
	return found;
}

/*
 * Settings that change what DDL text means, with the value the replay
 * session has (see src/replay/session.rs): written before a statement when
 * the source's value differs.  The input settings matter only to
 * statements holding a string constant.
 */
static const struct
{
	const char *name;
	const char *replay_value;
	bool		input;			/* read by the input of string constants */
}			w2s_ddl_gucs[] = {
	{"DateStyle", "ISO, MDY", true},
	{"IntervalStyle", "postgres", true},
	{"TimeZone", "UTC", true},
	{"lc_monetary", "C", true},
	{"xmloption", "content", true},
	{"default_tablespace", "", false},
	{"default_table_access_method", "heap", false},
};

/* The SET LOCAL statements a DDL statement needs before it, or NULL. */
static char *
w2s_ddl_settings(const char *command, bool scs_off)
{
	StringInfoData buf;
	bool		strings = w2s_has_string_constant(command, scs_off);
	int			i;

	initStringInfo(&buf);
	if (scs_off)
		appendStringInfoString(&buf, "SET LOCAL standard_conforming_strings = off;");
	for (i = 0; i < lengthof(w2s_ddl_gucs); i++)
	{
		const char *value;

		if (w2s_ddl_gucs[i].input && !strings)
			continue;
		value = GetConfigOption(w2s_ddl_gucs[i].name, false, false);
		if (value == NULL || strcmp(value, w2s_ddl_gucs[i].replay_value) == 0)
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, ' ');
		/* E'' when needed: the replay reads this with standard strings on */
		appendStringInfo(&buf, "SET LOCAL %s = %s;", w2s_ddl_gucs[i].name,
						 quote_literal_cstr(value));
	}
	return buf.len > 0 ? buf.data : NULL;
}

/*
 * Queue a DDL statement with the settings needed to replay it: the
 * search_path and role it ran with, and standard_conforming_strings as it
 * was when the statement was parsed (scs_off).
 */
void
w2s_queue_ddl(const char *command, bool scs_off)
{
	w2s_queue_insert("ddl",
					 w2s_current_search_path(),
					 GetUserNameFromId(GetUserId(), false),
					 w2s_ddl_settings(command, scs_off),
					 command);
}

/* Queue a marker that stops the replay, naming the statement and why. */
void
w2s_queue_unreplayable(const char *tag, const char *reason, const char *text)
{
	int			len = strlen(text);
	/* cut at a character boundary: half a character is invalid text */
	int			cut = pg_mbcliplen(text, len, 200);
	char	   *shown = pnstrdup(text, cut);

	w2s_queue_insert("unreplayable", NULL, NULL, NULL,
					 psprintf("%s statement %s: %s%s",
							  tag, reason, shown, cut < len ? "..." : ""));
}
