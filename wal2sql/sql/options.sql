-- Options are validated.
SELECT 'init' FROM pg_create_logical_replication_slot('opt', 'wal2sql');
SELECT * FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'no-such-option', '1');
SELECT * FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'batch-inserts', 'many');
SELECT * FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'batch-inserts', '-1');
SELECT * FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'batch-bytes', '10');
SELECT count(*) FROM pg_logical_slot_get_changes('opt', NULL, NULL, 'batch-inserts', '100', 'batch-bytes', '65536');
-- decoding settings do not leak into the session
SHOW DateStyle;
SHOW search_path;
SELECT pg_drop_replication_slot('opt');
