/*-------------------------------------------------------------------------
 *
 * tempobj.c
 *		DDL that touches temporary objects: the replay never sees them (the
 *		session that made them is gone), so statements naming them cannot be
 *		written as they were run.  This file decides what is written instead:
 *		the permanent part of a DROP, a table made LIKE a temporary one from
 *		its catalog definition, and a marker for permanent objects that
 *		depend on temporary ones (they vanish with the session, without DDL).
 *
 * All functions run inside the event trigger function's SPI connection.
 *
 * IDENTIFICATION
 *		wal2sql/src/tempobj.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "wal2sql.h"
#include "capture.h"

/*
 * The permanent part of a DROP run at sql_drop: NULL when no object it
 * names is temporary (the statement is written as it was run), "" when all
 * are (nothing is written), else a DROP of the permanent ones by their
 * identity, with the statement's IF EXISTS and CASCADE.  The answer lives
 * in the transaction's memory.
 */
char *
w2s_drop_permanent_part(DropStmt *stmt)
{
	const char *kind;
	StringInfoData buf;
	uint64		i;
	bool		any_temp = false;
	bool		any_perm = false;

	if (SPI_execute("SELECT object_identity, is_temporary "
					"FROM pg_catalog.pg_event_trigger_dropped_objects() "
					"WHERE original", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "wal2sql: could not read pg_event_trigger_dropped_objects()");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (t != NULL && strcmp(t, "t") == 0)
			any_temp = true;
		else
			any_perm = true;
	}
	if (!any_temp)
		return NULL;
	if (!any_perm)
		return MemoryContextStrdup(TopTransactionContext, "");

	switch (stmt->removeType)
	{
		case OBJECT_TABLE:
			kind = "TABLE";
			break;
		case OBJECT_VIEW:
			kind = "VIEW";
			break;
		case OBJECT_MATVIEW:
			kind = "MATERIALIZED VIEW";
			break;
		case OBJECT_SEQUENCE:
			kind = "SEQUENCE";
			break;
		case OBJECT_INDEX:
			kind = "INDEX";
			break;
		case OBJECT_FOREIGN_TABLE:
			kind = "FOREIGN TABLE";
			break;
		case OBJECT_TYPE:
			kind = "TYPE";
			break;
		case OBJECT_DOMAIN:
			kind = "DOMAIN";
			break;
		case OBJECT_FUNCTION:
			kind = "FUNCTION";
			break;
		case OBJECT_PROCEDURE:
			kind = "PROCEDURE";
			break;
		case OBJECT_ROUTINE:
			kind = "ROUTINE";
			break;
		default:
			return NULL;		/* written as run: the replay will say */
	}

	initStringInfo(&buf);
	appendStringInfo(&buf, "DROP %s ", kind);
	if (stmt->missing_ok)
		appendStringInfoString(&buf, "IF EXISTS ");
	any_perm = false;
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (t != NULL && strcmp(t, "t") == 0)
			continue;
		if (any_perm)
			appendStringInfoString(&buf, ", ");
		/* identities are quoted and schema-qualified */
		appendStringInfoString(&buf, SPI_getvalue(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1));
		any_perm = true;
	}
	if (stmt->behavior == DROP_CASCADE)
		appendStringInfoString(&buf, " CASCADE");
	appendStringInfoChar(&buf, ';');
	return MemoryContextStrdup(TopTransactionContext, buf.data);
}

/*
 * Does CREATE TABLE copy columns LIKE a temporary table?  Asked at
 * ddl_command_start: by ddl_command_end, LIKE is replaced by the columns.
 */
bool
w2s_like_temp(Node *parsetree)
{
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, CreateStmt))
		return false;
	foreach(lc, ((CreateStmt *) parsetree)->tableElts)
	{
		Node	   *elt = lfirst(lc);
		Oid			relid;

		if (!IsA(elt, TableLikeClause))
			continue;
		relid = RangeVarGetRelid(((TableLikeClause *) elt)->relation, NoLock, true);
		if (OidIsValid(relid) && get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
			return true;
	}
	return false;
}

/*
 * The statements that make a table as the catalog has it (columns with
 * types, collations, defaults, generated and identity columns, NOT NULL;
 * constraints; other indexes; storage and compression; extended
 * statistics; comments), or NIL when the table is one this cannot write
 * (a child or partition).  Names are written as the current search_path
 * shows them, which is the path written with the DDL.
 */
List *
w2s_table_from_catalog(Oid relid)
{
	static const char *const query =
	"WITH t AS ("
	"  SELECT c.oid, c.relpersistence, c.relkind, c.reloptions, c.reltablespace, c.relam,"
	"    pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||)"
	"    pg_catalog.quote_ident(c.relname) AS q"
	"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
	"  WHERE c.oid OPERATOR(pg_catalog.=) $1"
	"    AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid)),"
	" a AS ("
	"  SELECT a.*, ty.typstorage, ty.typcollation,"
	"    pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def,"
	/* attcompression came in 14: read through to_jsonb, NULL before */
	"    pg_catalog.to_jsonb(a) OPERATOR(pg_catalog.->>) 'attcompression' AS compression"
	"  FROM pg_catalog.pg_attribute a"
	"  JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid"
	"  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid"
	"    AND d.adnum OPERATOR(pg_catalog.=) a.attnum"
	"  WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)"
	" SELECT 1, 0, 'CREATE ' OPERATOR(pg_catalog.||)"
	"   CASE t.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END OPERATOR(pg_catalog.||)"
	"   'TABLE ' OPERATOR(pg_catalog.||) t.q OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||)"
	"   COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname::text) OPERATOR(pg_catalog.||) ' '"
	"     OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)"
	"     OPERATOR(pg_catalog.||) CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) a.typcollation"
	"       THEN (SELECT ' COLLATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(cn.nspname) OPERATOR(pg_catalog.||) '.'"
	"             OPERATOR(pg_catalog.||) pg_catalog.quote_ident(co.collname)"
	"             FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace"
	"             WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation) ELSE '' END"
	"     OPERATOR(pg_catalog.||) CASE WHEN a.attgenerated OPERATOR(pg_catalog.=) 's'"
	"       THEN ' GENERATED ALWAYS AS (' OPERATOR(pg_catalog.||) a.def OPERATOR(pg_catalog.||) ') STORED'"
	"       ELSE COALESCE(' DEFAULT ' OPERATOR(pg_catalog.||) a.def, '') END"
	"     OPERATOR(pg_catalog.||) CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'"
	"       WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END"
	"     OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,"
	"     ', ' ORDER BY a.attnum) FROM a), '') OPERATOR(pg_catalog.||) ')'"
	"   OPERATOR(pg_catalog.||) CASE WHEN t.relkind OPERATOR(pg_catalog.=) 'p'"
	"     THEN ' PARTITION BY ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_partkeydef(t.oid) ELSE '' END"
	"   OPERATOR(pg_catalog.||) CASE WHEN t.relam OPERATOR(pg_catalog.<>) 0 AND t.relam OPERATOR(pg_catalog.<>) 2"
	"     THEN (SELECT ' USING ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(amname) FROM pg_catalog.pg_am"
	"           WHERE oid OPERATOR(pg_catalog.=) t.relam) ELSE '' END"
	"   OPERATOR(pg_catalog.||) COALESCE(' WITH (' OPERATOR(pg_catalog.||)"
	"     pg_catalog.array_to_string(t.reloptions, ', ') OPERATOR(pg_catalog.||) ')', '')"
	"   OPERATOR(pg_catalog.||) CASE WHEN t.reltablespace OPERATOR(pg_catalog.<>) 0"
	"     THEN (SELECT ' TABLESPACE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(spcname)"
	"           FROM pg_catalog.pg_tablespace WHERE oid OPERATOR(pg_catalog.=) t.reltablespace) ELSE '' END"
	"   OPERATOR(pg_catalog.||) ';'"
	" FROM t"
	" UNION ALL"
	" SELECT 2, a.attnum, 'ALTER TABLE ONLY ' OPERATOR(pg_catalog.||) t.q OPERATOR(pg_catalog.||) ' ALTER COLUMN '"
	"   OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname::text) OPERATOR(pg_catalog.||) ' SET STORAGE '"
	"   OPERATOR(pg_catalog.||) CASE a.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'"
	"     WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END OPERATOR(pg_catalog.||) ';'"
	" FROM t, a WHERE a.attstorage OPERATOR(pg_catalog.<>) a.typstorage"
	" UNION ALL"
	" SELECT 3, a.attnum, 'ALTER TABLE ONLY ' OPERATOR(pg_catalog.||) t.q OPERATOR(pg_catalog.||) ' ALTER COLUMN '"
	"   OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname::text) OPERATOR(pg_catalog.||) ' SET COMPRESSION '"
	"   OPERATOR(pg_catalog.||) CASE a.compression WHEN 'l' THEN 'lz4' ELSE 'pglz' END OPERATOR(pg_catalog.||) ';'"
	" FROM t, a WHERE a.compression OPERATOR(pg_catalog.<>) ''"
	" UNION ALL"
	" SELECT 4, c.oid::pg_catalog.int4, 'ALTER TABLE ONLY ' OPERATOR(pg_catalog.||) t.q OPERATOR(pg_catalog.||)"
	"   ' ADD CONSTRAINT ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.conname::text) OPERATOR(pg_catalog.||) ' '"
	"   OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(c.oid) OPERATOR(pg_catalog.||) ';'"
	" FROM t, pg_catalog.pg_constraint c WHERE c.conrelid OPERATOR(pg_catalog.=) t.oid"
	"   AND c.contype OPERATOR(pg_catalog.<>) 'n'"	/* 18+: already NOT NULL in the column */
	" UNION ALL"
	" SELECT 5, i.indexrelid::pg_catalog.int4, pg_catalog.pg_get_indexdef(i.indexrelid) OPERATOR(pg_catalog.||) ';'"
	" FROM t, pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) t.oid"
	"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c"
	"                   WHERE c.conindid OPERATOR(pg_catalog.=) i.indexrelid AND c.conrelid OPERATOR(pg_catalog.=) t.oid)"
	" UNION ALL"
	" SELECT 6, s.oid::pg_catalog.int4, pg_catalog.pg_get_statisticsobjdef(s.oid) OPERATOR(pg_catalog.||) ';'"
	" FROM t, pg_catalog.pg_statistic_ext s WHERE s.stxrelid OPERATOR(pg_catalog.=) t.oid"
	" UNION ALL"
	" SELECT 7, d.objsubid, 'COMMENT ON ' OPERATOR(pg_catalog.||) CASE WHEN d.objsubid OPERATOR(pg_catalog.=) 0"
	"   THEN 'TABLE ' OPERATOR(pg_catalog.||) t.q"
	"   ELSE 'COLUMN ' OPERATOR(pg_catalog.||) t.q OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||)"
	"     (SELECT pg_catalog.quote_ident(a.attname::text) FROM a WHERE a.attnum OPERATOR(pg_catalog.=) d.objsubid) END"
	"   OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal(d.description) OPERATOR(pg_catalog.||) ';'"
	" FROM t, pg_catalog.pg_description d WHERE d.objoid OPERATOR(pg_catalog.=) t.oid"
	"   AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
	" ORDER BY 1, 2";
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	List	   *result = NIL;
	uint64		i;

	args[0] = ObjectIdGetDatum(relid);
	/* not read-only: a new snapshot sees the table this statement made */
	if (SPI_execute_with_args(query, 1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "wal2sql: could not read the definition of table %u", relid);
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 3));
	return result;
}
