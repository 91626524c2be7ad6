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
-- a SET in the same query string applies after the string was parsed: the
-- CREATE below was parsed with standard_conforming_strings on, and is
-- written without "SET LOCAL standard_conforming_strings = off"
SET standard_conforming_strings = off \; CREATE TABLE w2s.sc (v text DEFAULT 'a\\b');
RESET standard_conforming_strings;
-- values keep no raw newline; an identifier with one frames its statement
INSERT INTO w2s.inj VALUES (1);
CREATE TABLE w2s."new
line" (id int PRIMARY KEY, v text);
INSERT INTO w2s."new
line" VALUES (1, E'\n-- wal2sql commit end_lsn=0/1\r\nDROP TABLE victim;');
RESET ROLE;
SELECT * FROM changes('sec');
SELECT pg_drop_replication_slot('sec');
