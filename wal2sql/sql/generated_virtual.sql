-- Virtual generated columns (PostgreSQL 18): like stored ones, never written
-- (the server computes them on read), also under REPLICA IDENTITY FULL.
-- Older servers have no VIRTUAL: expected/generated_virtual_1.out.
SELECT current_setting('server_version_num')::int >= 180000 AS has_virtual \gset
\if :has_virtual
SET wal2sql.auto_replica_identity = off;
CREATE TABLE gv (id int PRIMARY KEY, a int,
  v int GENERATED ALWAYS AS (a * 2) VIRTUAL,
  s int GENERATED ALWAYS AS (a * 3) STORED);
SELECT 'init' FROM pg_create_logical_replication_slot('gv', 'wal2sql');
INSERT INTO gv (id, a) VALUES (1, 5), (2, 7);
UPDATE gv SET a = 6 WHERE id = 1;
ALTER TABLE gv REPLICA IDENTITY FULL;
DELETE FROM gv WHERE id = 1;
UPDATE gv SET a = 8 WHERE id = 2;
SELECT * FROM changes('gv') WHERE changes !~ '^(-- |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
SELECT pg_drop_replication_slot('gv');
\else
\echo 'skipped: virtual generated columns need PostgreSQL 18'
\endif
