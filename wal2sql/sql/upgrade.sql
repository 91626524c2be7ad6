-- 1.0 -> 1.1: the ddl_command_start trigger fires for every command.
DROP EXTENSION wal2sql;
CREATE EXTENSION wal2sql VERSION '1.0';
SELECT evtname, evttags FROM pg_event_trigger WHERE evtname = 'wal2sql_ddl_start';
ALTER EXTENSION wal2sql UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'wal2sql';
SELECT evtname, evtevent, evttags, evtenabled FROM pg_event_trigger
 WHERE evtname LIKE 'wal2sql%' ORDER BY evtname;
SELECT count(*) AS members FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND classid = 'pg_event_trigger'::regclass;
