/*-------------------------------------------------------------------------
 *
 * relcache.c
 *		The output plugin's relation cache: per table, its quoted names, how
 *		each column is written and compared, its key columns and INSERT
 *		prefix; invalidated by relcache and schema changes.
 *
 * IDENTIFICATION
 *		wal2sql/src/relcache.c
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

/* Relation cache, kept for the lifetime of the backend. */
static HTAB *w2s_relcache = NULL;
static MemoryContext w2s_relcache_cxt = NULL;

/*
 * Entries invalidated since the last sweep.  Invalidated entries are freed
 * (not only marked) so that dropped tables do not pile up: any role can
 * create and drop tables without end.  Freeing waits for w2s_get_entry,
 * because invalidation callbacks can run while an entry is being built or
 * used (catalog access accepts invalidations).
 */
static int	w2s_relcache_ninvalid = 0;

/*
 * Generations are unique across entries: an evicted and re-created entry
 * must not reuse one a pending multi-row INSERT still names.
 */
static uint32 w2s_relcache_generation = 0;
/* ---------------------------------------------------------------------
 * Relation cache
 * ---------------------------------------------------------------------
 */

/* Relcache callback: mark one entry (or all) for rebuild. */
void
w2s_relcache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	W2SRelEntry *entry;

	if (w2s_relcache == NULL)
		return;

	if (OidIsValid(relid))
	{
		entry = hash_search(w2s_relcache, &relid, HASH_FIND, NULL);
		if (entry != NULL && entry->valid)
		{
			entry->valid = false;
			w2s_relcache_ninvalid++;
		}
		return;
	}

	hash_seq_init(&status, w2s_relcache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->valid)
			w2s_relcache_ninvalid++;
		entry->valid = false;
	}
}

/*
 * Free the invalidated entries.  Called only where no entry pointer is
 * held: an entry of a live table is simply built again when next used.
 */
static void
w2s_relcache_sweep(void)
{
	HASH_SEQ_STATUS status;
	W2SRelEntry *entry;

	if (w2s_relcache_ninvalid == 0)
		return;
	w2s_relcache_ninvalid = 0;
	hash_seq_init(&status, w2s_relcache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->valid)
			continue;
		if (entry->cxt != NULL)
			MemoryContextDelete(entry->cxt);
		/* removing the current element keeps the scan valid */
		hash_search(w2s_relcache, &entry->relid, HASH_REMOVE, NULL);
	}
}

/* Schema change callback: a renamed schema changes every qualified name, rebuild all. */
static void
w2s_syscache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	/* a renamed schema does not invalidate its tables' relcache entries */
	w2s_relcache_invalidate(arg, InvalidOid);
}

/* Create the relation cache and register its invalidation callbacks, once per backend. */
void
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

/* How a column of this type is compared in WHERE clauses. */
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
 * Is "=" of this type identity (equal values have the same text form)?
 * Only for the built-in types known to be so, and text types under a
 * deterministic collation; not numeric (1.0 = 1.00), float (0 = -0),
 * interval ('1 day' = '24 hours'), jsonb, arrays, composites, ranges,
 * geometric types (box "=" compares areas), or types made by users.
 */
static bool
w2s_equality_is_identity(Oid typid, Oid collation)
{
	typid = getBaseType(typid);
	switch (typid)
	{
		case BOOLOID:
		case CHAROID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NAMEOID:
		case BYTEAOID:
		case UUIDOID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case CASHOID:
			return true;
		case TEXTOID:
		case VARCHAROID:
			return !OidIsValid(collation) || get_collation_isdeterministic(collation);
		default:
			return get_typtype(typid) == TYPTYPE_ENUM;
	}
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

/* (Re)build a table's cache entry from its relation descriptor. */
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
		col->exact_text = col->eq_kind != W2S_EQ_TEXT &&
			!w2s_equality_is_identity(att->atttypid, att->attcollation);
		/* a literal compared with a domain is not typed by the operator */
		col->cast = get_typtype(att->atttypid) == TYPTYPE_DOMAIN ?
			psprintf("::%s", format_type_extended(att->atttypid, att->atttypmod,
												  FORMAT_TYPE_TYPEMOD_GIVEN |
												  FORMAT_TYPE_FORCE_QUALIFY)) : NULL;
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
	entry->generation = ++w2s_relcache_generation;
	entry->valid = true;
}

W2SRelEntry *
w2s_get_entry(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	W2SRelEntry *entry;
	bool		found;

	w2s_relcache_sweep();
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
