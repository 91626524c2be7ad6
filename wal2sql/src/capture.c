/*-------------------------------------------------------------------------
 *
 * capture.c
 *		DDL capture for wal2sql: the event trigger function, which decides
 *		for each DDL event what goes into the queue table (the statement,
 *		a marker, a rewrite of it, or nothing) and keeps automatic replica
 *		identities right.
 *
 * The decision needs what each event of a statement saw (ddl_command_start
 * before the command changes anything, sql_drop while the dropped objects
 * are still known, ddl_command_end with the commands collected), so the
 * earlier events leave notes here for ddl_command_end.  The statement's
 * text comes from statement.c, the queue rows from queue.c.
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

PG_FUNCTION_INFO_V1(wal2sql_capture_ddl);

/* set while wal2sql itself runs DDL (auto replica identity) */
bool		w2s_internal = false;

/* set by the sql_drop firing: were all dropped objects temporary? */
static bool w2s_drop_seen = false;
static bool w2s_drop_all_temp = false;

/* set at ddl_command_start: CREATE TABLE (LIKE a temporary table) */
static bool w2s_like_temp_seen = false;

/* set at ddl_command_start: a partition bound calling a function (now() ...) */
static bool w2s_volatile_bound_seen = false;

/* set by the sql_drop firing: what a DROP naming temporary objects becomes */
static char *w2s_drop_rewrite = NULL;

/* tables of the indexes a DROP INDEX drops (seen at ddl_command_start) */
static List *w2s_dropped_index_tables = NIL;

/* Is DDL captured now (capture on, not our DDL nor an extension script)? */
bool
w2s_capture_active(void)
{
	return wal2sql_capture && !w2s_internal && !creating_extension &&
		XLogLogicalInfoActive();
}

/*
 * When no command was collected (statements run inside REFRESH
 * MATERIALIZED VIEW, whose commands PostgreSQL does not collect): the
 * table a CREATE TABLE made and whether an ALTER/CREATE TABLE is on a
 * temporary table, from the statement itself.
 */
static void
w2s_parsetree_targets(Node *parsetree, bool *all_temp, List **created)
{
	RangeVar   *rv = NULL;
	Oid			relid;

	if (IsA(parsetree, CreateStmt))
		rv = ((CreateStmt *) parsetree)->relation;
	else if (IsA(parsetree, AlterTableStmt))
		rv = ((AlterTableStmt *) parsetree)->relation;
	if (rv == NULL)
		return;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(relid))
		return;
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		*all_temp = true;
	else if (IsA(parsetree, CreateStmt))
	{
		MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

		*created = lappend_oid(*created, relid);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Look at the commands of this DDL: are they all on temporary objects,
 * which tables did it create or alter, and the tables of which indexes did
 * it alter?
 */
static void
w2s_collected_commands(Node *parsetree, bool *all_temp, bool *on_temp,
					   List **created, List **altered, List **index_tables)
{
	int			ret;
	uint64		i;
	int			n = 0;
	int			ntemp = 0;

	*all_temp = false;
	*on_temp = false;
	*created = NIL;
	*altered = NIL;
	*index_tables = NIL;
	/*
	 * Triggers, rules, policies, defaults and constraints have no schema of
	 * their own: their table's says whether they are temporary (column 5).
	 * Column 6: does the object depend on one of this session's temporary
	 * objects (a permanent domain over a temporary type ...)?
	 */
	ret = SPI_execute("SELECT c.objid, c.object_type, c.command_tag, c.schema_name,"
					  " (SELECT r.relnamespace FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=)"
					  "  CASE c.classid"
					  "  WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT x.tgrelid FROM pg_catalog.pg_trigger x WHERE x.oid OPERATOR(pg_catalog.=) c.objid)"
					  "  WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT x.ev_class FROM pg_catalog.pg_rewrite x WHERE x.oid OPERATOR(pg_catalog.=) c.objid)"
					  "  WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT x.polrelid FROM pg_catalog.pg_policy x WHERE x.oid OPERATOR(pg_catalog.=) c.objid)"
					  "  WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT x.adrelid FROM pg_catalog.pg_attrdef x WHERE x.oid OPERATOR(pg_catalog.=) c.objid)"
					  "  WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT x.conrelid FROM pg_catalog.pg_constraint x WHERE x.oid OPERATOR(pg_catalog.=) c.objid)"
					  "  END),"
					  " pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 AND EXISTS (SELECT FROM pg_catalog.pg_depend d"
					  "  WHERE d.classid OPERATOR(pg_catalog.=) c.classid AND d.objid OPERATOR(pg_catalog.=) c.objid"
					  "  AND d.deptype OPERATOR(pg_catalog.=) 'n' AND ("
					  "   (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass AND EXISTS (SELECT FROM pg_catalog.pg_type x"
					  "     WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid AND x.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()))"
					  "   OR (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND EXISTS (SELECT FROM pg_catalog.pg_class x"
					  "     WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid AND x.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()))"
					  "   OR (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass AND EXISTS (SELECT FROM pg_catalog.pg_proc x"
					  "     WHERE x.oid OPERATOR(pg_catalog.=) d.refobjid AND x.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()))))"
					  " FROM pg_catalog.pg_event_trigger_ddl_commands() c",
					  false, 0);	/* a new snapshot sees this statement's catalog rows */
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
		bool		relnsp_null;
		Datum		relnsp = SPI_getbinval(tup, desc, 5, &relnsp_null);
		char	   *deps = SPI_getvalue(tup, desc, 6);

		n++;
		if (!relnsp_null && isAnyTempNamespace(DatumGetObjectId(relnsp)))
			ntemp++;
		else if (schema != NULL &&
				 (strcmp(schema, "pg_temp") == 0 ||
				  isAnyTempNamespace(get_namespace_oid(schema, true))))
			ntemp++;
		else if (deps != NULL && strcmp(deps, "t") == 0)
			*on_temp = true;
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
	if (n == 0)
		w2s_parsetree_targets(parsetree, all_temp, created);
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
	bool		on_temp;
	char	   *drop_rewrite;
	bool		like_temp;
	bool		volatile_bound;
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
		w2s_drop_rewrite = NULL;
		w2s_like_temp_seen = w2s_like_temp(parsetree);
		w2s_volatile_bound_seen = w2s_bound_calls(w2s_partition_bound(parsetree));
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
		if (IsA(parsetree, DropStmt))
			w2s_drop_rewrite = w2s_drop_permanent_part((DropStmt *) parsetree);
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

	/*
	 * Commands run inside REFRESH MATERIALIZED VIEW are captured like any
	 * other: those of CONCURRENTLY work on temporary tables (not captured),
	 * those of functions the view's query calls are DDL like any.
	 */

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "wal2sql: SPI_connect failed");
	w2s_collected_commands(parsetree, &all_temp, &on_temp, &created, &altered, &index_tables);

	drop_rewrite = NULL;
	if (IsA(parsetree, DropStmt) && w2s_drop_seen)
	{
		if (w2s_drop_all_temp)
			all_temp = true;
		drop_rewrite = w2s_drop_rewrite;
		if (drop_rewrite != NULL && drop_rewrite[0] == '\0')
			all_temp = true;
	}
	w2s_drop_seen = false;
	w2s_drop_rewrite = NULL;
	like_temp = w2s_like_temp_seen && IsA(parsetree, CreateStmt);
	w2s_like_temp_seen = false;
	volatile_bound = w2s_volatile_bound_seen;
	w2s_volatile_bound_seen = false;

	/* an identity set by the user is the user's: forget wal2sql's FULL */
	explicit_identity = w2s_replica_identity_target(parsetree);
	if (OidIsValid(explicit_identity))
		w2s_auto_full_forget(list_make1_oid(explicit_identity));

	if (!all_temp)
	{
		bool	   *queued = w2s_queued_flag();

		if (*queued)
			;					/* queued already (table_rewrite) */
		else if (on_temp)
		{
			/* dropped with the session's temporary objects, and no DDL says so */
			*queued = true;
			w2s_queue_unreplayable(tag, "that makes a permanent object depend on a temporary one",
								   debug_query_string ? debug_query_string : "");
		}
		else if (drop_rewrite != NULL)
		{
			/* the permanent part of a DROP naming temporary objects too */
			*queued = true;
			w2s_queue_ddl(drop_rewrite, false);
		}
		else if (like_temp)
		{
			/* LIKE a temporary table: the replay has no such table */
			ListCell   *lc;
			List	   *stmts = NIL;

			*queued = true;
			if (list_length(created) == 1)
				stmts = w2s_table_from_catalog(linitial_oid(created));
			if (stmts == NIL)
				w2s_queue_unreplayable(tag, "that copies a temporary table",
									   debug_query_string ? debug_query_string : "");
			foreach(lc, stmts)
				w2s_queue_ddl((char *) lfirst(lc), false);	/* generated */
		}
		else
		{
			w2s_queue_statement(trigdata, tag);
			if (volatile_bound)
				w2s_queue_source_bound(parsetree);
		}
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
