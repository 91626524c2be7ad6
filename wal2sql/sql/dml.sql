-- Basic INSERT / UPDATE / DELETE, transaction framing and headers.
SET wal2sql.auto_replica_identity = off;
CREATE TABLE dml (id int PRIMARY KEY, a text, b int);
SELECT 'init' FROM pg_create_logical_replication_slot('dml', 'wal2sql');

INSERT INTO dml VALUES (1, 'one', 10), (2, NULL, NULL), (3, '', 30);
UPDATE dml SET a = 'uno' WHERE id = 1;       -- key unchanged: no old tuple
UPDATE dml SET id = 4 WHERE id = 3;          -- key changed: old key used
DELETE FROM dml WHERE id = 2;
BEGIN; COMMIT;                               -- empty: skipped
BEGIN; SELECT 1; COMMIT;                     -- empty: skipped
BEGIN; INSERT INTO dml VALUES (9, 'gone', 0); ROLLBACK;  -- aborted: vanishes
INSERT INTO dml VALUES (5, E'quote '' backslash \\ newline\n tab\t end', 5);
INSERT INTO dml VALUES (6, 'ünïcödé ☃', 6);
SELECT * FROM changes('dml');

-- headers: increasing commit_lsn, end_lsn > commit_lsn, UTC time
INSERT INTO dml VALUES (7, 'x', 7);
INSERT INTO dml VALUES (8, 'y', 8);
WITH h AS (
  SELECT regexp_match(data, '^-- wal2sql begin xid=(\d+) commit_lsn=(\S+) end_lsn=(\S+) commit_time=(\S+) format=2$') AS m
    FROM pg_logical_slot_peek_changes('dml', NULL, NULL)
), t AS (
  SELECT m[2]::pg_lsn AS c, m[3]::pg_lsn AS e, m[4] AS ts FROM h WHERE m IS NOT NULL
)
SELECT count(*) AS txns,
       bool_and(e > c) AS end_after_commit,
       bool_and(ts ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$') AS utc_format,
       bool_and(abs(extract(epoch FROM ts::timestamptz - now())) < 3600) AS recent
  FROM t;
SELECT count(*) FROM (SELECT data FROM pg_logical_slot_peek_changes('dml', NULL, NULL)
   WHERE data LIKE '-- wal2sql commit end_lsn=%') s;
SELECT * FROM changes('dml');

-- no replica identity: a marker that stops replay, not an error
CREATE TABLE nokey (a int, b text);
INSERT INTO nokey VALUES (1, 'x');
UPDATE nokey SET b = 'y';
DELETE FROM nokey;
ALTER TABLE nokey REPLICA IDENTITY NOTHING;
INSERT INTO nokey VALUES (2, 'z');
DELETE FROM nokey;
SELECT * FROM changes('dml');
-- the marker fails with a clear error
DO 'BEGIN RAISE EXCEPTION USING MESSAGE = ''wal2sql: cannot replay DELETE on table public.nokey in transaction X: the change carries no replica identity data (give the table a primary key or REPLICA IDENTITY FULL)''; END';

-- REPLICA IDENTITY USING INDEX, key changed and unchanged
CREATE TABLE ri (a int NOT NULL, b int NOT NULL, c text);
CREATE UNIQUE INDEX ri_ab ON ri (a, b);
ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_ab;
INSERT INTO ri VALUES (1, 2, 'c');
UPDATE ri SET c = 'd';
UPDATE ri SET b = 3;
DELETE FROM ri;
-- ON CONFLICT
INSERT INTO dml VALUES (1, 'conflict', 1) ON CONFLICT (id) DO UPDATE SET a = excluded.a;
INSERT INTO dml VALUES (1, 'ignored', 1) ON CONFLICT DO NOTHING;
SELECT * FROM changes('dml');
SELECT pg_drop_replication_slot('dml');
