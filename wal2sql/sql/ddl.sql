-- DDL capture: exact statement text at its place in the transaction.
CREATE TABLE victim (id int PRIMARY KEY);
SELECT 'init' FROM pg_create_logical_replication_slot('ddl', 'wal2sql');
-- a multi-statement string mixing DDL and DML
CREATE TABLE ms (x int PRIMARY KEY) \; INSERT INTO ms VALUES (1) \; ALTER TABLE ms ADD COLUMN y text DEFAULT 'd' \; INSERT INTO ms VALUES (2, 'two');
-- DDL inside DO blocks, static and dynamic, with a trailing comment
DO $$
BEGIN
  CREATE TABLE in_do (a int PRIMARY KEY);
  INSERT INTO in_do VALUES (1);
  EXECUTE 'ALTER TABLE in_do ADD COLUMN b int -- trailing comment';
  INSERT INTO in_do VALUES (2, 3);
END $$;
-- DDL inside a function, called by SELECT
CREATE FUNCTION make_tab(n text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, note text)', n);
END $$;
SELECT make_tab('From Func');
-- search_path changes inside one string; quoted and unicode names
SET search_path = w2s, public \; CREATE TABLE "Mixed ☃ Name" (id int PRIMARY KEY) \; SET search_path = public \; CREATE TABLE plain_after (id int PRIMARY KEY);
RESET search_path;
-- several subcommands, schema with elements, rename, comment, drop cascade
ALTER TABLE ms ADD COLUMN z int, ALTER COLUMN y SET NOT NULL, ADD CONSTRAINT z_pos CHECK (z > 0);
CREATE SCHEMA "Sch ema" CREATE TABLE st (id serial PRIMARY KEY) CREATE VIEW sv AS SELECT id FROM st;
ALTER TABLE ms RENAME TO ms2;
COMMENT ON TABLE ms2 IS 'it''s a table';
DROP SCHEMA "Sch ema" CASCADE;
-- role: objects created under SET ROLE keep their owner
SET ROLE w2s_user;
CREATE TABLE w2s.owned (id int PRIMARY KEY);
RESET ROLE;
-- captured also under session_replication_role = replica
SET session_replication_role = replica;
CREATE TABLE replica_made (id int PRIMARY KEY);
RESET session_replication_role;
-- not captured: capture turned off, temporary objects
SET wal2sql.capture = off;
CREATE TABLE not_captured (id int);
RESET wal2sql.capture;
CREATE TEMP TABLE tmp (id int);
CREATE INDEX tmp_i ON tmp (id);
INSERT INTO tmp VALUES (1);
DROP TABLE tmp;
-- a rolled-back savepoint takes its DDL with it
BEGIN;
CREATE TABLE sp_kept (id int PRIMARY KEY);
SAVEPOINT a;
CREATE TABLE sp_gone (id int PRIMARY KEY);
ROLLBACK TO a;
COMMIT;
SELECT * FROM changes('ddl');
SELECT pg_drop_replication_slot('ddl');
