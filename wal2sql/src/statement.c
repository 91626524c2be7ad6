/*-------------------------------------------------------------------------
 *
 * statement.c
 *		The exact text of each captured statement: the ProcessUtility hook
 *		that knows it, and what is made of it before it is queued
 *		(CONCURRENTLY removed, CREATE TABLE AS turned into a CREATE TABLE,
 *		role statements captured after they succeed).
 *
 * The replay runs what the source ran, so the text must be exactly that
 * statement's, never a guess: when the library was loaded before it ran
 * (shared_preload_libraries or session_preload_libraries), the hook gives
 * the exact text of each statement, at any nesting level.  Otherwise only
 * a query string holding exactly one statement of the same command tag is
 * trusted; anything else becomes an "unreplayable" marker.
 *
 * IDENTIFICATION
 *		wal2sql/src/statement.c
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

static W2SFrame *w2s_frames = NULL;
int			w2s_depth = 0;
static int	w2s_frames_size = 0;

/* the same as W2SFrame.queued, for a statement run without the hook */
static bool w2s_nohook_queued = false;

/* the same as W2SFrame.scs, for a statement run without the hook */
int			w2s_nohook_scs = W2S_SCS_EITHER;

static ProcessUtility_hook_type w2s_prev_utility = NULL;

static void w2s_utility(W2S_UTILITY_ARGS_DECL);

/* Install the ProcessUtility hook (from _PG_init). */
void
wal2sql_capture_init(void)
{
	w2s_prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = w2s_utility;
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

/* Does a generic option list (REINDEX's, from 14 on) ask for CONCURRENTLY? */
static inline bool
w2s_options_concurrent(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "concurrently") == 0 && defGetBoolean(opt))
			return true;
	}
	return false;
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
			return W2S_REINDEX_CONCURRENT((ReindexStmt *) parsetree);
		case T_AlterTableStmt:
			foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
			{
				AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

				if (cmd->subtype == AT_DetachPartition &&
					W2S_DETACH_CONCURRENT((PartitionCmd *) cmd->def))
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

/* Has the statement of this DDL event been queued already? */
bool *
w2s_queued_flag(void)
{
	if (w2s_depth > 0)
		return &w2s_frames[w2s_depth - 1].queued;
	return &w2s_nohook_queued;
}

/* Queue the text of the statement being executed, once. */
void
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
bool
w2s_ctas_is_table(Node *parsetree)
{
	return parsetree != NULL && IsA(parsetree, CreateTableAsStmt) &&
		W2S_CTAS_OBJTYPE((CreateTableAsStmt *) parsetree) == OBJECT_TABLE;
}

/* Queue the CREATE TABLE a CREATE TABLE AS amounts to, or a marker. */
void
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
int
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

/*
 * Statements on roles fire no event trigger (roles are shared by all
 * databases), yet the database's objects depend on them: grants, owners,
 * policies.  Run in the backed-up database, they are captured here, after
 * they succeeded, in order with the other DDL.  They replay as the role
 * that ran them (SET ROLE), so the replay checks the same rights
 * (CREATEROLE, ADMIN OPTION) the source did.
 */
static bool
w2s_is_role_statement(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateRoleStmt:
		case T_AlterRoleStmt:
		case T_AlterRoleSetStmt:
		case T_DropRoleStmt:
		case T_GrantRoleStmt:
		case T_ReassignOwnedStmt:
			return true;
		case T_RenameStmt:
			return ((RenameStmt *) parsetree)->renameType == OBJECT_ROLE;
		default:
			return false;
	}
}

/* Queue a statement on roles that just succeeded (see w2s_is_role_statement). */
static void
w2s_queue_role_statement(Node *parsetree)
{
	CommandTag	tag = CreateCommandTag(parsetree);
	bool		scs_off;
	char	   *text = w2s_current_statement(tag, parsetree, &scs_off);

	if (text == NULL)
		w2s_queue_unreplayable(GetCommandTagName(tag), W2S_REASON_NO_TEXT,
							   debug_query_string ? debug_query_string : "");
	else
		w2s_queue_ddl(text, scs_off);
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
		if (w2s_is_role_statement(parsetree) && w2s_capture_active())
			w2s_queue_role_statement(parsetree);
	}
	PG_FINALLY();
	{
		w2s_depth--;
	}
	PG_END_TRY();
}
