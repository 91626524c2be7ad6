/*-------------------------------------------------------------------------
 *
 * wal2sql.c
 *		Module entry point of wal2sql: settings and hook installation.
 *
 * The library is at the same time a logical decoding output plugin
 * (decode.c) and the DDL capture machinery of the extension (capture.c and
 * the files capture.h names).
 *
 * IDENTIFICATION
 *		wal2sql/src/wal2sql.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "wal2sql.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Capture DDL into the stream (turned off by restore sessions). */
bool		wal2sql_capture = true;

/* Give tables created without a primary key REPLICA IDENTITY FULL. */
bool		wal2sql_auto_replica_identity = true;

/* Define the settings and install the capture hook. */
void
_PG_init(void)
{
	DefineCustomBoolVariable("wal2sql.capture",
							 "Records DDL statements into the wal2sql stream.",
							 "Restore sessions turn this off so that replayed "
							 "DDL is not captured again.",
							 &wal2sql_capture,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("wal2sql.auto_replica_identity",
							 "Sets REPLICA IDENTITY FULL on new tables without a primary key.",
							 "Without it, UPDATE and DELETE on such tables cannot "
							 "be replayed.",
							 &wal2sql_auto_replica_identity,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("wal2sql");

	wal2sql_capture_init();
}
