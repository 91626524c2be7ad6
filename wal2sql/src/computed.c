/*-------------------------------------------------------------------------
 *
 * computed.c
 *		Values the source computed once and the replay would compute again,
 *		differently: a table rewrite with volatile values, an added column's
 *		stable default, a partition bound given by a function.  Replaying
 *		the statement alone would leave the target with other rows or
 *		bounds than the source, so what the source computed is queued too.
 *
 * IDENTIFICATION
 *		wal2sql/src/computed.c
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

/* Does a raw expression call a function or hold a subquery? */
static bool
w2s_raw_call_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall) || IsA(node, SubLink) || IsA(node, SQLValueFunction))
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
void
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

/*
 * ALTER TABLE ... ADD COLUMN with a stable default (now(), current_user
 * ...): the existing rows read the value computed once into
 * attmissingval, which the replay would compute again, differently.  Queue
 * a 'missing' entry per such column: the output plugin writes an UPDATE of
 * the table's rows to the stored value.  Immutable defaults are left to
 * the replay; volatile ones rewrite the table (see w2s_table_rewrite).
 */
void
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

/* The partition bound a CREATE TABLE ... PARTITION OF or ATTACH PARTITION gives, or NULL. */
PartitionBoundSpec *
w2s_partition_bound(Node *parsetree)
{
	ListCell   *lc;

	if (IsA(parsetree, CreateStmt))
		return ((CreateStmt *) parsetree)->partbound;
	if (!IsA(parsetree, AlterTableStmt))
		return NULL;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_AttachPartition && cmd->def != NULL &&
			IsA(cmd->def, PartitionCmd))
			return ((PartitionCmd *) cmd->def)->bound;
	}
	return NULL;
}

/* Does a raw partition bound call a function (now(), current_timestamp ...)? */
bool
w2s_bound_calls(PartitionBoundSpec *spec)
{
	if (spec == NULL)
		return false;
	return w2s_raw_call_walker((Node *) spec->listdatums, NULL) ||
		w2s_raw_call_walker((Node *) spec->lowerdatums, NULL) ||
		w2s_raw_call_walker((Node *) spec->upperdatums, NULL);
}

/*
 * A partition bound computed by a function (FOR VALUES FROM (now()) ...)
 * is evaluated once, by the statement: the replay would compute another.
 * After the statement, the partition is detached and attached again with
 * the bound the catalog holds (written with the session's DateStyle and
 * TimeZone, which are written with it).
 */
void
w2s_queue_source_bound(Node *parsetree)
{
	RangeVar   *rv = NULL;
	Oid			child;
	Oid			parent;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	char	   *bound;
	char	   *qchild;
	char	   *qparent;
	ListCell   *lc;

	if (IsA(parsetree, CreateStmt))
		rv = ((CreateStmt *) parsetree)->relation;
	else
	{
		foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AttachPartition && cmd->def != NULL &&
				IsA(cmd->def, PartitionCmd))
				rv = ((PartitionCmd *) cmd->def)->name;
		}
	}
	if (rv == NULL)
		return;
	child = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(child))
		return;
	parent = W2S_PARTITION_PARENT(child);
	if (!OidIsValid(parent))
		return;
	args[0] = ObjectIdGetDatum(child);
	/* not read-only: a new snapshot sees the bound this statement stored */
	if (SPI_execute_with_args("SELECT pg_catalog.pg_get_expr(relpartbound, oid) "
							  "FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "wal2sql: could not read the bound of partition %u", child);
	bound = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (bound == NULL)
		return;
	qchild = quote_qualified_identifier(get_namespace_name(get_rel_namespace(child)),
										get_rel_name(child));
	qparent = quote_qualified_identifier(get_namespace_name(get_rel_namespace(parent)),
										 get_rel_name(parent));
	w2s_queue_ddl(psprintf("ALTER TABLE %s DETACH PARTITION %s;", qparent, qchild), false);
	w2s_queue_ddl(psprintf("ALTER TABLE %s ATTACH PARTITION %s %s;", qparent, qchild, bound),
				  false);
}
