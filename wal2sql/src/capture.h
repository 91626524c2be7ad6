/*-------------------------------------------------------------------------
 *
 * capture.h
 *		What the DDL capture files share: capture.c (event trigger
 *		function), statement.c (ProcessUtility hook, statement text),
 *		queue.c (queue table, recorded settings), computed.c (values the
 *		source computed once), tempobj.c (temporary objects) and
 *		identity.c (automatic replica identity).
 *
 * IDENTIFICATION
 *		wal2sql/src/capture.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WAL2SQL_CAPTURE_H
#define WAL2SQL_CAPTURE_H

#include "commands/event_trigger.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

/* set while wal2sql itself runs DDL (auto replica identity) */
extern bool w2s_internal;

/* capture.c */
extern bool w2s_capture_active(void);

/* queue.c */
extern void w2s_queue_insert(const char *kind, const char *search_path, const char *role,
							 const char *settings, const char *command);
extern void w2s_queue_ddl(const char *command, bool scs_off);
extern void w2s_queue_unreplayable(const char *tag, const char *reason, const char *text);

/* statement.c */

/* W2SFrame.scs: off, on, either (no backslash in it), or unknown */
#define W2S_SCS_OFF		0
#define W2S_SCS_ON		1
#define W2S_SCS_EITHER	2
#define W2S_SCS_UNKNOWN	3

/* utility nesting level (0: the hook has not seen the statement) */
extern int	w2s_depth;
/* how a statement run without the hook was parsed (set at ddl_command_start) */
extern int	w2s_nohook_scs;
extern bool *w2s_queued_flag(void);
extern int	w2s_parse_time_scs(Node *parsetree, const char *query, int location,
							   int len);
extern void w2s_queue_statement(EventTriggerData *trigdata, const char *tag);
extern bool w2s_ctas_is_table(Node *parsetree);
extern void w2s_queue_ctas(CreateTableAsStmt *ctas, const char *tag);

/* computed.c */
extern void w2s_table_rewrite(EventTriggerData *trigdata, const char *tag);
extern void w2s_queue_missing_values(Node *parsetree, List *relids);
extern PartitionBoundSpec *w2s_partition_bound(Node *parsetree);
extern bool w2s_bound_calls(PartitionBoundSpec *spec);
extern void w2s_queue_source_bound(Node *parsetree);

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
