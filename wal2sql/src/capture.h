/*-------------------------------------------------------------------------
 *
 * capture.h
 *		What the DDL capture files share: capture.c (hook, event trigger
 *		function, queue) and identity.c (automatic replica identity).
 *
 * IDENTIFICATION
 *		wal2sql/src/capture.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WAL2SQL_CAPTURE_H
#define WAL2SQL_CAPTURE_H

#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

/* set while wal2sql itself runs DDL (auto replica identity) */
extern bool w2s_internal;

/* capture.c */
extern void w2s_queue_ddl(const char *command, bool scs_off);

/* tempobj.c */
extern char *w2s_drop_permanent_part(DropStmt *stmt);
extern bool w2s_like_temp(Node *parsetree);
extern List *w2s_table_from_catalog(Oid relid);

/* identity.c */
extern void w2s_auto_full_dropped(void);
extern void w2s_auto_full_forget(List *relids);
extern Oid w2s_auto_full_owner(bool if_rows);
extern void w2s_auto_replica_identity(List *relids);
extern void w2s_auto_replica_identity_default(List *relids);
extern Oid w2s_replica_identity_target(Node *parsetree);
extern List *w2s_with_ancestors(List *relids);

#endif							/* WAL2SQL_CAPTURE_H */
