-- No unprivileged role can inject SQL into the stream.
SELECT 'init' FROM pg_create_logical_replication_slot('sec', 'wal2sql');
SET ROLE w2s_user;
-- logical decoding messages are never turned into SQL
SELECT pg_logical_emit_message(true, 'wal2sql', 'DROP TABLE victim;') IS NOT NULL AS emitted;
SELECT pg_logical_emit_message(false, 'wal2sql', 'DROP TABLE victim;') IS NOT NULL AS emitted;
-- the queue table, the trigger function and the settings are out of reach
INSERT INTO wal2sql.ddl_queue (kind, command) VALUES ('sql', 'DROP TABLE victim;');
SELECT wal2sql.capture_ddl();
SELECT wal2sql.snapshot_sequences();
SET wal2sql.capture = off;
-- DDL text is written exactly as run, so quotes cannot break out
CREATE TABLE w2s.inj (id int PRIMARY KEY);
COMMENT ON TABLE w2s.inj IS $$x'; DROP TABLE victim; --$$;
RESET ROLE;
SELECT * FROM changes('sec');
SELECT pg_drop_replication_slot('sec');
