/*-------------------------------------------------------------------------
 *
 * capture.c
 *		DDL capture for wal2sql: a ProcessUtility hook that knows the exact
 *		text of every utility statement, and the event trigger function
 *		that writes it into the queue table wal2sql.ddl_queue.
 *
 * The queue table belongs to the superuser who created the extension and
 * nobody else may write it.  The event trigger function (which cannot be
 * called directly) inserts rows with heap-level calls, so it needs no
 * privilege on the table; the output plugin recognises the table and
 * writes its rows out as SQL at their place in the transaction.  Rows of
 * rolled-back (sub)transactions vanish with them.
 *
 * Statement text: when the library was loaded before the statement ran
 * (shared_preload_libraries or session_preload_libraries), the hook gives
 * the exact text of each statement, at any nesting level.  Otherwise only
 * a query string holding exactly one statement of the same command tag is
 * trusted; anything else becomes an "unreplayable" marker.
 *
 * IDENTIFICATION
 *		wal2sql/src/capture.c
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

PG_FUNCTION_INFO_V1(wal2sql_capture_ddl);

/* The statement being executed at each utility nesting level. */
typedef struct W2SFrame
{
	const char *query;
	int			location;
	int			len;
	NodeTag		tag;			/* node type of the utility statement */
	bool		queued;			/* its text is queued already (table_rewrite) */
	int			scs;			/* standard_conforming_strings it was parsed with */
} W2SFrame;

/* W2SFrame.scs: off, on, either (no backslash in it), or unknown */
#define W2S_SCS_OFF		0
#define W2S_SCS_ON		1
#define W2S_SCS_EITHER	2
#define W2S_SCS_UNKNOWN	3

static W2SFrame *w2s_frames = NULL;
static int	w2s_depth = 0;
static int	w2s_frames_size = 0;

/* set while wal2sql itself runs DDL (auto replica identity) */
bool		w2s_internal = false;

/* set by the sql_drop firing: were all dropped objects temporary? */
static bool w2s_drop_seen = false;
static bool w2s_drop_all_temp = false;

/* the same as W2SFrame.queued, for a statement run without the hook */
static bool w2s_nohook_queued = false;

/* the same as W2SFrame.scs, for a statement run without the hook */
static int	w2s_nohook_scs = W2S_SCS_EITHER;

/* tables of the indexes a DROP INDEX drops (seen at ddl_command_start) */
static List *w2s_dropped_index_tables = NIL;

static ProcessUtility_hook_type w2s_prev_utility = NULL;

static void w2s_utility(W2S_UTILITY_ARGS_DECL);
static int	w2s_parse_time_scs(Node *parsetree, const char *query, int location,
							   int len);

/* Install the ProcessUtility hook (from _PG_init). */
void
wal2sql_capture_init(void)
{
	w2s_prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = w2s_utility;
}

/* Is DDL captured now (capture on, not our DDL nor an extension script)? */
static bool
w2s_capture_active(void)
{
	return wal2sql_capture && !w2s_internal && !creating_extension &&
		XLogLogicalInfoActive();
}

/* ---------------------------------------------------------------------
 * Queue table
 * ---------------------------------------------------------------------
 */

/* Insert a row into wal2sql.ddl_queue at heap level (needs no privilege). */
static void
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
					 scs_off ? "SET LOCAL standard_conforming_strings = off;" : NULL,
					 command);
}

/* Queue a marker that stops the replay, naming the statement and why. */
static void
w2s_queue_unreplayable(const char *tag, const char *reason, const char *text)
{
	char	   *shown = pnstrdup(text, 200);

	w2s_queue_insert("unreplayable", NULL, NULL, NULL,
					 psprintf("%s statement %s: %s%s",
							  tag, reason, shown, strlen(text) > 200 ? "..." : ""));
}

#define W2S_REASON_NO_TEXT \
	"whose exact text is unknown (load wal2sql with shared_preload_libraries " \
	"or session_preload_libraries)"

/* ---------------------------------------------------------------------
 * Statement text
 * ---------------------------------------------------------------------
 */

/* Cut one statement out of a query string, trimmed, terminated by ';'. */
static char *
w2s_statement_text(const char *query, int location, int len)
{
	const char *start;
	const char *end;
	const char *line;
	StringInfoData buf;

	if (location < 0)
	{
		location = 0;
		len = 0;
	}
	start = query + location;
	end = (len > 0) ? start + len : start + strlen(start);

	while (start < end && scanner_isspace(*start))
		start++;
	while (end > start && (scanner_isspace(end[-1]) || end[-1] == ';'))
		end--;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, start, end - start);

	/* a trailing "--" comment would swallow the terminator */
	line = strrchr(buf.data, '\n');
	if (strstr(line ? line : buf.data, "--") != NULL)
		appendStringInfoChar(&buf, '\n');
	appendStringInfoChar(&buf, ';');
	return buf.data;
}

/* Does the statement ask for CONCURRENTLY (which the replay cannot run)? */
static bool
w2s_is_concurrent(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_IndexStmt:
			return ((IndexStmt *) parsetree)->concurrent;
		case T_DropStmt:
			return ((DropStmt *) parsetree)->concurrent;
		case T_ReindexStmt:
			foreach(lc, ((ReindexStmt *) parsetree)->params)
			{
				DefElem    *opt = (DefElem *) lfirst(lc);

				if (strcmp(opt->defname, "concurrently") == 0 && defGetBoolean(opt))
					return true;
			}
			return false;
		case T_AlterTableStmt:
			foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
			{
				AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

				if (cmd->subtype == AT_DetachPartition &&
					((PartitionCmd *) cmd->def)->concurrent)
					return true;
			}
			return false;
		default:
			return false;
	}
}

/* The grammar token of a keyword (lower case), or -1. */
static int
w2s_keyword_token(const char *word)
{
	int			kwnum = ScanKeywordLookup(word, &ScanKeywords);

	return kwnum < 0 ? -1 : ScanKeywordTokens[kwnum];
}

/*
 * The statement without its CONCURRENTLY keyword (the replay runs every
 * statement inside a transaction block, where it is not allowed), or NULL
 * when it cannot be removed safely.  Only the keyword at its place in the
 * grammar goes: right after INDEX (CREATE/DROP INDEX), after the object
 * kind of REINDEX, or last in ALTER TABLE ... DETACH PARTITION; a function
 * or column named "concurrently" stays.  The result is parsed again and
 * must be one statement of the same kind, no longer concurrent.
 */
static char *
w2s_strip_concurrently(const char *text, Node *parsetree)
{
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	core_yyscan_t scanner;
	int			conc = w2s_keyword_token("concurrently");
	int			token;
	int			prev = 0;
	int			at = -1;
	char	   *result;
	List	   *raw;
	RawStmt    *rs;

	scanner = scanner_init(text, &yyextra, &ScanKeywords, ScanKeywordTokens);
	while ((token = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		if (token == conc && at < 0)
		{
			switch (nodeTag(parsetree))
			{
				case T_IndexStmt:
				case T_DropStmt:
					if (prev == w2s_keyword_token("index"))
						at = yylloc;
					break;
				case T_ReindexStmt:
					if (prev == w2s_keyword_token("index") ||
						prev == w2s_keyword_token("table") ||
						prev == w2s_keyword_token("schema") ||
						prev == w2s_keyword_token("database") ||
						prev == w2s_keyword_token("system"))
						at = yylloc;
					break;
				case T_AlterTableStmt:
					at = yylloc;	/* checked below: must be the last token */
					break;
				default:
					break;
			}
		}
		else if (at >= 0 && IsA(parsetree, AlterTableStmt) && token != ';')
			at = -1;			/* not last: an identifier, not the option */
		prev = token;
	}
	scanner_finish(scanner);
	if (at < 0)
		return NULL;

	result = psprintf("%.*s%s", at, text,
					  text + at + strlen("concurrently") +
					  (text[at + strlen("concurrently")] == ' ' ? 1 : 0));

	/* the same statement, without CONCURRENTLY, or nothing */
	raw = W2S_RAW_PARSER(result);
	if (list_length(raw) != 1)
		return NULL;
	rs = linitial_node(RawStmt, raw);
	if (nodeTag(rs->stmt) != nodeTag(parsetree) || w2s_is_concurrent(rs->stmt))
		return NULL;
	return result;
}

/*
 * The text of the statement being executed, or NULL when it is not known
 * exactly.
 */
static char *
w2s_current_statement(CommandTag tag, Node *parsetree, bool *scs_off)
{
	List	   *raw;
	RawStmt    *rs;

	*scs_off = !standard_conforming_strings;
	if (w2s_depth > 0)
	{
		W2SFrame   *f = &w2s_frames[w2s_depth - 1];

		if (f->scs == W2S_SCS_UNKNOWN)
			return NULL;
		if (f->scs != W2S_SCS_EITHER)
			*scs_off = (f->scs == W2S_SCS_OFF);
		return w2s_statement_text(f->query, f->location, f->len);
	}

	/*
	 * No hook: trust only a top-level query string that is this one
	 * statement.  The library is loaded at the latest by the
	 * ddl_command_start trigger of the first DDL a session runs, so a DDL
	 * nested in another DDL always has a hook frame; one run by a function
	 * (SECURITY DEFINER, or called from a DO block, a SELECT ...) is
	 * refused here: its query string is not its own text.
	 */
	if (debug_query_string == NULL ||
		GetUserId() != GetOuterUserId() ||
		InSecurityRestrictedOperation())
		return NULL;
	raw = W2S_RAW_PARSER(debug_query_string);
	if (list_length(raw) != 1)
		return NULL;
	rs = linitial_node(RawStmt, raw);
	if (CreateCommandTag(rs->stmt) != tag)
		return NULL;
	/*
	 * A statement prepared before a SET was parsed with the old value:
	 * checked at ddl_command_start, before the command changed its tree.
	 */
	switch (w2s_nohook_scs)
	{
		case W2S_SCS_UNKNOWN:
			return NULL;
		case W2S_SCS_OFF:
			*scs_off = true;
			break;
		case W2S_SCS_ON:
			*scs_off = false;
			break;
		default:
			break;
	}
	return w2s_statement_text(debug_query_string, rs->stmt_location,
							  rs->stmt_len);
}

/* ---------------------------------------------------------------------
 * CREATE TABLE AS / SELECT INTO
 * ---------------------------------------------------------------------
 */

/*
 * The rows of CREATE TABLE AS are decoded as INSERTs before the command
 * ends, so the table must be created first: build a plain CREATE TABLE
 * from the analysed query.  Returns NULL if that is not possible.
 */
static char *
w2s_ctas_create_table(CreateTableAsStmt *ctas)
{
	IntoClause *into = ctas->into;
	Query	   *query = (Query *) ctas->query;
	RangeVar   *rv = into->rel;
	ListCell   *lc;
	ListCell   *names;
	StringInfoData buf;
	bool		first = true;

	if (query == NULL || !IsA(query, Query) || query->commandType != CMD_SELECT)
		return NULL;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "CREATE ");
	if (rv->relpersistence == RELPERSISTENCE_UNLOGGED)
		appendStringInfoString(&buf, "UNLOGGED ");
	appendStringInfoString(&buf, "TABLE ");
	if (ctas->if_not_exists)
		appendStringInfoString(&buf, "IF NOT EXISTS ");
	if (rv->schemaname)
		appendStringInfo(&buf, "%s.", quote_identifier(rv->schemaname));
	appendStringInfo(&buf, "%s (", quote_identifier(rv->relname));

	names = list_head(into->colNames);
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Oid			typid = exprType((Node *) tle->expr);
		Oid			coll = exprCollation((Node *) tle->expr);
		const char *name = tle->resname;

		if (tle->resjunk)
			continue;
		if (names != NULL)
		{
			name = strVal(lfirst(names));
			names = lnext(into->colNames, names);
		}
		if (name == NULL)
			return NULL;
		if (!first)
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s %s", quote_identifier(name),
						 format_type_extended(typid, exprTypmod((Node *) tle->expr),
											  FORMAT_TYPE_TYPEMOD_GIVEN |
											  FORMAT_TYPE_FORCE_QUALIFY));
		if (OidIsValid(coll) && coll != get_typcollation(typid))
			appendStringInfo(&buf, " COLLATE %s", generate_collation_name(coll));
		first = false;
	}
	appendStringInfoChar(&buf, ')');
	if (into->accessMethod)
		appendStringInfo(&buf, " USING %s", quote_identifier(into->accessMethod));
	if (into->options != NIL)
	{
		bool		firstopt = true;

		appendStringInfoString(&buf, " WITH (");
		foreach(lc, into->options)
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (!firstopt)
				appendStringInfoString(&buf, ", ");
			if (def->defnamespace)
				appendStringInfo(&buf, "%s.", quote_identifier(def->defnamespace));
			appendStringInfoString(&buf, quote_identifier(def->defname));
			if (def->arg)
				appendStringInfo(&buf, " = %s",
								 quote_literal_cstr(defGetString(def)));
			firstopt = false;
		}
		appendStringInfoChar(&buf, ')');
	}
	if (into->tableSpaceName)
		appendStringInfo(&buf, " TABLESPACE %s",
						 quote_identifier(into->tableSpaceName));
	appendStringInfoChar(&buf, ';');
	return buf.data;
}

/* Is this CREATE TABLE AS / SELECT INTO creating a table (not a materialized view)? */
static bool
w2s_ctas_is_table(Node *parsetree)
{
	return parsetree != NULL && IsA(parsetree, CreateTableAsStmt) &&
		W2S_CTAS_OBJTYPE((CreateTableAsStmt *) parsetree) == OBJECT_TABLE;
}

/* Queue the CREATE TABLE a CREATE TABLE AS amounts to, or a marker. */
static void
w2s_queue_ctas(CreateTableAsStmt *ctas, const char *tag)
{
	char	   *text;

	if (ctas->into->rel->relpersistence == RELPERSISTENCE_TEMP)
		return;
	text = w2s_ctas_create_table(ctas);
	if (text != NULL)
		w2s_queue_ddl(text, false); /* generated: literals are E'' when needed */
	else
		w2s_queue_unreplayable(tag, "that cannot be turned into CREATE TABLE",
							   debug_query_string ? debug_query_string : "");
}

/* ---------------------------------------------------------------------
 * ProcessUtility hook
 * ---------------------------------------------------------------------
 */

/*
 * The standard_conforming_strings value a statement was parsed with.  The
 * current value may differ: a query string is parsed as a whole before its
 * first statement runs, so "SET standard_conforming_strings = off; CREATE
 * ..." parses the CREATE with the old value.  Only string literals with a
 * backslash read differently; for those the statement's text is parsed
 * again with each value and compared with the tree being executed (raw
 * trees; equal() ignores locations).  UNKNOWN when neither matches.
 */
static int
w2s_parse_time_scs(Node *parsetree, const char *query, int location, int len)
{
	const char *start;
	char	   *text;
	bool		saved = standard_conforming_strings;
	bool		saved_warning = escape_string_warning;
	volatile bool match[2] = {false, false};
	int			v;

	if (query == NULL)
		return W2S_SCS_EITHER;
	if (location < 0)
	{
		location = 0;
		len = 0;
	}
	start = query + location;
	text = (len > 0) ? pnstrdup(start, len) : pstrdup(start);
	if (strchr(text, '\\') == NULL)
		return W2S_SCS_EITHER;

	/* no "nonstandard use of \\" warnings from parsing it again */
	escape_string_warning = false;
	for (v = 0; v <= 1; v++)
	{
		MemoryContext cxt = CurrentMemoryContext;

		standard_conforming_strings = (v == 1);
		PG_TRY();
		{
			List	   *raw = W2S_RAW_PARSER(text);

			match[v] = list_length(raw) == 1 &&
				equal(linitial_node(RawStmt, raw)->stmt, parsetree);
		}
		PG_CATCH();
		{
			/* a syntax error under this value: not how it was parsed */
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
		}
		PG_END_TRY();
	}
	standard_conforming_strings = saved;
	escape_string_warning = saved_warning;
	if (match[0] && match[1])
		return W2S_SCS_EITHER;
	if (match[0] != match[1])
		return match[1] ? W2S_SCS_ON : W2S_SCS_OFF;
	return W2S_SCS_UNKNOWN;
}

/* ProcessUtility hook: track each statement's text and parse settings. */
static void
w2s_utility(W2S_UTILITY_ARGS_DECL)
{
	Node	   *parsetree = pstmt->utilityStmt;

	/* EXPLAIN ANALYZE CREATE TABLE AS fires no event trigger */
	if (IsA(parsetree, ExplainStmt) && w2s_capture_active())
	{
		ExplainStmt *es = (ExplainStmt *) parsetree;
		Query	   *q = (Query *) es->query;
		ListCell   *lc;
		bool		analyze = false;

		foreach(lc, es->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "analyze") == 0)
				analyze = defGetBoolean(opt);
		}
		if (analyze && q != NULL && IsA(q, Query) &&
			q->commandType == CMD_UTILITY && w2s_ctas_is_table(q->utilityStmt))
			w2s_queue_ctas((CreateTableAsStmt *) q->utilityStmt,
						   "EXPLAIN ANALYZE CREATE TABLE AS");
	}

	if (w2s_depth >= w2s_frames_size)
	{
		int			newsize = Max(16, w2s_frames_size * 2);

		if (w2s_frames == NULL)
			w2s_frames = MemoryContextAlloc(TopMemoryContext,
											sizeof(W2SFrame) * newsize);
		else
			w2s_frames = repalloc(w2s_frames, sizeof(W2SFrame) * newsize);
		w2s_frames_size = newsize;
	}
	w2s_frames[w2s_depth].query = queryString;
	w2s_frames[w2s_depth].location = pstmt->stmt_location;
	w2s_frames[w2s_depth].len = pstmt->stmt_len;
	w2s_frames[w2s_depth].tag = nodeTag(parsetree);
	w2s_frames[w2s_depth].queued = false;
	w2s_frames[w2s_depth].scs = w2s_capture_active() ?
		w2s_parse_time_scs(parsetree, queryString, pstmt->stmt_location,
						   pstmt->stmt_len) : W2S_SCS_EITHER;
	w2s_depth++;

	PG_TRY();
	{
		if (w2s_prev_utility)
			w2s_prev_utility(W2S_UTILITY_ARGS);
		else
			standard_ProcessUtility(W2S_UTILITY_ARGS);
	}
	PG_FINALLY();
	{
		w2s_depth--;
	}
	PG_END_TRY();
}

/* ---------------------------------------------------------------------
 * Event trigger function
 * ---------------------------------------------------------------------
 */

/*
 * Look at the commands of this DDL: are they all on temporary objects,
 * which tables did it create or alter, and the tables of which indexes did
 * it alter?
 */
static void
w2s_collected_commands(bool *all_temp, List **created, List **altered,
					   List **index_tables)
{
	int			ret;
	uint64		i;
	int			n = 0;
	int			ntemp = 0;

	*all_temp = false;
	*created = NIL;
	*altered = NIL;
	*index_tables = NIL;
	ret = SPI_execute("SELECT objid, object_type, command_tag, schema_name "
					  "FROM pg_catalog.pg_event_trigger_ddl_commands()",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "wal2sql: could not read pg_event_trigger_ddl_commands()");

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		objid = SPI_getbinval(tup, desc, 1, &isnull);
		char	   *objtype = SPI_getvalue(tup, desc, 2);
		char	   *cmdtag = SPI_getvalue(tup, desc, 3);
		char	   *schema = SPI_getvalue(tup, desc, 4);

		n++;
		if (schema != NULL &&
			(strcmp(schema, "pg_temp") == 0 ||
			 isAnyTempNamespace(get_namespace_oid(schema, true))))
			ntemp++;
		if (objtype != NULL && strcmp(objtype, "table") == 0 &&
			cmdtag != NULL &&
			(strcmp(cmdtag, "CREATE TABLE") == 0 ||
			 strcmp(cmdtag, "CREATE TABLE AS") == 0 ||
			 strcmp(cmdtag, "SELECT INTO") == 0))
		{
			MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

			*created = lappend_oid(*created, DatumGetObjectId(objid));
			MemoryContextSwitchTo(old);
		}
		else if (objtype != NULL && strcmp(objtype, "table") == 0 &&
				 cmdtag != NULL && strcmp(cmdtag, "ALTER TABLE") == 0 && !isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

			*altered = list_append_unique_oid(*altered, DatumGetObjectId(objid));
			MemoryContextSwitchTo(old);
		}
		else if (objtype != NULL && strcmp(objtype, "index") == 0 &&
				 cmdtag != NULL && strcmp(cmdtag, "ALTER INDEX") == 0 && !isnull)
		{
			/* ATTACH PARTITION may complete a partitioned primary key */
			Oid			relid = IndexGetRelation(DatumGetObjectId(objid), true);
			MemoryContext old;

			if (!OidIsValid(relid))
				continue;
			old = MemoryContextSwitchTo(CurTransactionContext);
			*index_tables = list_append_unique_oid(*index_tables, relid);
			MemoryContextSwitchTo(old);
		}
	}
	*all_temp = (n > 0 && ntemp == n);
}

/* Statements never written to the stream (subscriptions). */
static bool
w2s_skipped_statement(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateSubscriptionStmt:
		case T_AlterSubscriptionStmt:
		case T_DropSubscriptionStmt:
			return true;		/* replaying would connect to the publisher */
		default:
			return false;
	}
}

/* Has the statement of this DDL event been queued already? */
static bool *
w2s_queued_flag(void)
{
	if (w2s_depth > 0)
		return &w2s_frames[w2s_depth - 1].queued;
	return &w2s_nohook_queued;
}

/* Queue the text of the statement being executed, once. */
static void
w2s_queue_statement(EventTriggerData *trigdata, const char *tag)
{
	bool	   *queued = w2s_queued_flag();
	Node	   *parsetree = trigdata->parsetree;
	char	   *text;
	char	   *volatile stripped = NULL;
	volatile bool scs_off;
	bool		off;
	bool		saved = standard_conforming_strings;
	bool		saved_warning = escape_string_warning;

	if (*queued)
		return;
	*queued = true;
	if (w2s_ctas_is_table(parsetree))
		return;					/* written at ddl_command_start */
	if (IsA(parsetree, ReindexStmt))
		return;					/* 17+ report it; it changes no row, and a
								 * restore builds its indexes afresh */
	text = w2s_current_statement(trigdata->tag, parsetree, &off);
	scs_off = off;
	if (text == NULL)
	{
		w2s_queue_unreplayable(tag, W2S_REASON_NO_TEXT,
							   debug_query_string ? debug_query_string : "");
		return;
	}
	if (!w2s_is_concurrent(parsetree))
	{
		w2s_queue_ddl(text, scs_off);
		return;
	}
	/* read the text as it was parsed, without warning again */
	standard_conforming_strings = !scs_off;
	escape_string_warning = false;
	PG_TRY();
	{
		stripped = w2s_strip_concurrently(text, parsetree);
	}
	PG_FINALLY();
	{
		standard_conforming_strings = saved;
		escape_string_warning = saved_warning;
	}
	PG_END_TRY();
	if (stripped == NULL)
		w2s_queue_unreplayable(tag, "whose CONCURRENTLY cannot be removed", text);
	else
		w2s_queue_ddl(stripped, scs_off);
}

/* Does a raw expression call a function or hold a subquery? */
static bool
w2s_raw_call_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall) || IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, w2s_raw_call_walker, context);
}

/*
 * May an ALTER COLUMN ... TYPE ... USING of this statement compute
 * different values on replay?  Raw expressions count as volatile as soon
 * as they call a function.
 */
static bool
w2s_volatile_using(Node *parsetree)
{
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, AlterTableStmt))
		return true;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		ColumnDef  *def;

		if (cmd->subtype != AT_AlterColumnType || cmd->def == NULL ||
			!IsA(cmd->def, ColumnDef))
			continue;
		def = (ColumnDef *) cmd->def;
		if (def->cooked_default != NULL)
		{
			if (contain_volatile_functions(def->cooked_default))
				return true;
		}
		else if (def->raw_default != NULL &&
				 w2s_raw_call_walker(def->raw_default, NULL))
			return true;
	}
	return false;
}

/*
 * table_rewrite: an ALTER TABLE is about to fill a new copy of a table.
 * Its rows are not replayed by recomputing when the result is not
 * deterministic (volatile default, identity or serial added to existing
 * rows, ALTER TYPE USING a volatile expression) or the old rows were never
 * decoded (SET LOGGED).  Then the statement is queued now, followed by a
 * 'rewrite' entry: the output plugin writes DELETE FROM ONLY the table and
 * the rewritten rows as INSERTs, so the replay ends with the exact rows.
 */
static void
w2s_table_rewrite(EventTriggerData *trigdata, const char *tag)
{
	Oid			relid;
	int			reason;
	bool		isnull;
	Relation	rel;
	char		persistence;
	bool		rows;

	if (SPI_execute("SELECT pg_catalog.pg_event_trigger_table_rewrite_oid(), "
					"pg_catalog.pg_event_trigger_table_rewrite_reason()",
					true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "wal2sql: could not read the table_rewrite event");
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	reason = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull));

	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
		return;
	persistence = rel->rd_rel->relpersistence;
	RelationClose(rel);

	if (persistence == RELPERSISTENCE_TEMP)
		return;
	if ((reason & AT_REWRITE_ALTER_PERSISTENCE) &&
		persistence == RELPERSISTENCE_UNLOGGED)
		rows = true;			/* SET LOGGED: these rows were never decoded */
	else if (persistence != RELPERSISTENCE_PERMANENT)
		rows = false;			/* stays or becomes unlogged */
	else
		rows = (reason & AT_REWRITE_DEFAULT_VAL) != 0 ||
			((reason & AT_REWRITE_COLUMN_REWRITE) != 0 &&
			 w2s_volatile_using(trigdata->parsetree));
	if (!rows)
		return;

	w2s_queue_statement(trigdata, tag);
	w2s_queue_insert("rewrite", NULL, NULL, NULL, psprintf("%u", relid));
}

/* ddl_command_start of DROP INDEX: remember the tables of the indexes. */
static void
w2s_drop_index_start(DropStmt *stmt)
{
	ListCell   *lc;

	list_free(w2s_dropped_index_tables);
	w2s_dropped_index_tables = NIL;
	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
		Oid			indexid = RangeVarGetRelid(rv, NoLock, true);
		Oid			relid;
		MemoryContext old;

		if (!OidIsValid(indexid))
			continue;
		relid = IndexGetRelation(indexid, true);
		if (!OidIsValid(relid))
			continue;
		/* not a transaction's memory: DROP INDEX CONCURRENTLY commits */
		old = MemoryContextSwitchTo(TopMemoryContext);
		w2s_dropped_index_tables = lappend_oid(w2s_dropped_index_tables, relid);
		MemoryContextSwitchTo(old);
	}
}

/* Does this ALTER TABLE set the replica identity itself? */
static bool
w2s_sets_replica_identity(Node *parsetree)
{
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return false;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		if (lfirst_node(AlterTableCmd, lc)->subtype == AT_ReplicaIdentity)
			return true;
	}
	return false;
}

/*
 * ALTER TABLE ... ADD COLUMN with a stable default (now(), current_user
 * ...): the existing rows read the value computed once into
 * attmissingval, which the replay would compute again, differently.  Queue
 * a 'missing' entry per such column: the output plugin writes an UPDATE of
 * the table's rows to the stored value.  Immutable defaults are left to
 * the replay; volatile ones rewrite the table (see w2s_table_rewrite).
 */
static void
w2s_queue_missing_values(Node *parsetree, List *relids)
{
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		const char *colname;
		ListCell   *lr;

		if (cmd->subtype != AT_AddColumn || cmd->def == NULL ||
			!IsA(cmd->def, ColumnDef))
			continue;
		colname = ((ColumnDef *) cmd->def)->colname;
		foreach(lr, relids)
		{
			Oid			relid = lfirst_oid(lr);
			Relation	rel = RelationIdGetRelation(relid);
			TupleDesc	desc;
			AttrNumber	attnum;
			bool		queue = false;
			int			i;

			if (!RelationIsValid(rel))
				continue;
			desc = RelationGetDescr(rel);
			attnum = get_attnum(relid, colname);
			if (rel->rd_rel->relkind == RELKIND_RELATION &&
				rel->rd_rel->relpersistence == RELPERSISTENCE_PERMANENT &&
				attnum > 0 && TupleDescAttr(desc, attnum - 1)->atthasmissing &&
				desc->constr != NULL)
			{
				for (i = 0; i < desc->constr->num_defval; i++)
				{
					if (desc->constr->defval[i].adnum == attnum)
						queue = contain_mutable_functions(stringToNode(desc->constr->defval[i].adbin));
				}
			}
			RelationClose(rel);
			if (queue)
				w2s_queue_insert("missing", NULL, NULL, NULL,
								 psprintf("%u %d", relid, (int) attnum));
		}
	}
}

/* The tables and their partitions / children. */
static List *
w2s_with_inheritors(List *relids)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) == '\0')
			continue;
		result = list_concat_unique_oid(result,
										find_all_inheritors(relid, NoLock, NULL));
	}
	return result;
}

/*
 * Capture is off (restore sessions, extension scripts, wal_level below
 * logical): keep wal2sql.auto_full right all the same, so that no dropped
 * table's OID, nor a table whose identity the user set, stays in it.
 */
static void
w2s_inactive_event(EventTriggerData *trigdata)
{
	Oid			relid = InvalidOid;

	if (strcmp(trigdata->event, "sql_drop") == 0)
	{
		if (!OidIsValid(w2s_auto_full_owner(true)))
			return;				/* nothing to forget: no SPI */
	}
	else if (strcmp(trigdata->event, "ddl_command_end") == 0)
	{
		relid = w2s_replica_identity_target(trigdata->parsetree);
		if (!OidIsValid(relid) || !OidIsValid(w2s_auto_full_owner(true)))
			return;
	}
	else
		return;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "wal2sql: SPI_connect failed");
	if (strcmp(trigdata->event, "sql_drop") == 0)
		w2s_auto_full_dropped();
	else
		w2s_auto_full_forget(list_make1_oid(relid));
	SPI_finish();
}

/* Event trigger function: queue DDL, rewrites; keep identities usable. */
Datum
wal2sql_capture_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	const char *tag;
	bool		all_temp;
	List	   *created;
	List	   *altered;
	List	   *index_tables;
	List	   *dropped_index_tables;
	Oid			explicit_identity;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wal2sql.capture_ddl() may only be called as an event trigger")));

	trigdata = (EventTriggerData *) fcinfo->context;
	parsetree = trigdata->parsetree;
	tag = GetCommandTagName(trigdata->tag);

	if (parsetree == NULL || w2s_internal)
		PG_RETURN_NULL();
	if (!w2s_capture_active())
	{
		w2s_inactive_event(trigdata);
		PG_RETURN_NULL();
	}

	if (strcmp(trigdata->event, "ddl_command_start") == 0)
	{
		/* without the hook, how the statement was parsed (see above) */
		if (w2s_depth == 0)
			w2s_nohook_scs = (debug_query_string == NULL) ? W2S_SCS_EITHER :
				w2s_parse_time_scs(parsetree, debug_query_string, 0, 0);
		w2s_drop_seen = false;
		list_free(w2s_dropped_index_tables);
		w2s_dropped_index_tables = NIL;
		if (w2s_ctas_is_table(parsetree))
			w2s_queue_ctas((CreateTableAsStmt *) parsetree, tag);
		else if (IsA(parsetree, DropStmt) &&
				 ((DropStmt *) parsetree)->removeType == OBJECT_INDEX)
			w2s_drop_index_start((DropStmt *) parsetree);
		PG_RETURN_NULL();
	}

	if (strcmp(trigdata->event, "table_rewrite") == 0)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "wal2sql: SPI_connect failed");
		w2s_table_rewrite(trigdata, tag);
		SPI_finish();
		PG_RETURN_NULL();
	}

	if (strcmp(trigdata->event, "sql_drop") == 0)
	{
		bool		relations = false;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "wal2sql: SPI_connect failed");

		if (SPI_execute(psprintf("SELECT pg_catalog.bool_and(is_temporary), "
								 "pg_catalog.bool_or(classid OPERATOR(pg_catalog.=) %u"
								 " AND objsubid OPERATOR(pg_catalog.=) 0 AND NOT is_temporary) "
								 "FROM pg_catalog.pg_event_trigger_dropped_objects()",
								 RelationRelationId),
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "wal2sql: could not read pg_event_trigger_dropped_objects()");
		w2s_drop_seen = true;
		w2s_drop_all_temp = false;
		if (SPI_processed == 1)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1);
			char	   *r = SPI_getvalue(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2);

			w2s_drop_all_temp = (v != NULL && strcmp(v, "t") == 0);
			relations = (r != NULL && strcmp(r, "t") == 0);
		}
		/* dropped permanent relations: forget them */
		if (relations)
			w2s_auto_full_dropped();
		SPI_finish();
		PG_RETURN_NULL();
	}

	if (strcmp(trigdata->event, "ddl_command_end") != 0)
		PG_RETURN_NULL();

	/* tables of a DROP INDEX, noted at ddl_command_start */
	dropped_index_tables = NIL;
	if (IsA(parsetree, DropStmt) &&
		((DropStmt *) parsetree)->removeType == OBJECT_INDEX)
		dropped_index_tables = list_copy(w2s_dropped_index_tables);
	list_free(w2s_dropped_index_tables);
	w2s_dropped_index_tables = NIL;

	if (w2s_skipped_statement(parsetree))
		PG_RETURN_NULL();

	/* commands run internally by REFRESH MATERIALIZED VIEW CONCURRENTLY */
	if (w2s_depth >= 2 &&
		w2s_frames[w2s_depth - 2].tag == T_RefreshMatViewStmt)
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "wal2sql: SPI_connect failed");
	w2s_collected_commands(&all_temp, &created, &altered, &index_tables);

	if (IsA(parsetree, DropStmt) && w2s_drop_seen && w2s_drop_all_temp)
		all_temp = true;
	w2s_drop_seen = false;

	/* an identity set by the user is the user's: forget wal2sql's FULL */
	explicit_identity = w2s_replica_identity_target(parsetree);
	if (OidIsValid(explicit_identity))
		w2s_auto_full_forget(list_make1_oid(explicit_identity));

	if (!all_temp)
	{
		w2s_queue_statement(trigdata, tag);
		w2s_queue_missing_values(parsetree, w2s_with_inheritors(altered));

		if (wal2sql_auto_replica_identity)
		{
			List	   *check = created;
			List	   *keyed;

			if (!w2s_sets_replica_identity(parsetree))
			{
				check = list_concat_unique_oid(check,
											   w2s_with_inheritors(list_concat_unique_oid(altered,
																						  dropped_index_tables)));
				/* ... and those that may have got a primary key */
				keyed = w2s_with_ancestors(list_concat_unique_oid(w2s_with_inheritors(altered),
																  index_tables));
			}
			else
				keyed = NIL;
			w2s_auto_replica_identity(check);
			w2s_auto_replica_identity_default(keyed);
		}
	}
	*w2s_queued_flag() = false;

	SPI_finish();
	PG_RETURN_NULL();
}
