-- CREATE TABLE AS, materialized views, CONCURRENTLY, extensions,
-- automatic REPLICA IDENTITY FULL.
CREATE TABLE src (id int PRIMARY KEY, n numeric(10,2), s varchar(5) COLLATE "C");
INSERT INTO src VALUES (1, 1.5, 'a'), (2, 2.5, 'b');
SELECT 'init' FROM pg_create_logical_replication_slot('sp', 'wal2sql');
CREATE TABLE ctas (num, str) AS SELECT n, s FROM src WHERE id = 1;
SELECT id, n INTO sel_into FROM src WHERE id = 2;
CREATE UNLOGGED TABLE IF NOT EXISTS ctas_unlogged WITH (fillfactor = 70) AS SELECT 1 AS one;
-- (its plan output differs between versions; only the table matters)
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) CREATE TABLE ctas_explain AS SELECT 42 AS answer;
\o
PREPARE p AS SELECT 1 AS a;
CREATE TABLE ctas_exec AS EXECUTE p;
CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM src;
CREATE UNIQUE INDEX mv_id ON mv (id);
REFRESH MATERIALIZED VIEW mv;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv;
CREATE INDEX CONCURRENTLY src_n ON src (n);
DROP INDEX CONCURRENTLY src_n;
-- CONCURRENTLY goes only where it is the keyword: not a function or index
-- named "concurrently" (REINDEX is never written: it changes no row)
CREATE FUNCTION concurrently(int) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 0.5';
ALTER TABLE src ALTER COLUMN n SET DEFAULT concurrently(1);
CREATE INDEX /* concurrently */ CONCURRENTLY "concurrently" ON src (concurrently(id));
REINDEX TABLE CONCURRENTLY src;
REINDEX (CONCURRENTLY) INDEX "concurrently";
DROP INDEX CONCURRENTLY IF EXISTS "concurrently";
CREATE EXTENSION citext;
-- automatic REPLICA IDENTITY FULL only for tables without a primary key
CREATE TABLE with_pk (id int PRIMARY KEY);
CREATE TABLE without_pk (id int);
CREATE TABLE pt (id int) PARTITION BY LIST (id);
CREATE TABLE pt_1 PARTITION OF pt FOR VALUES IN (1);
SET wal2sql.auto_replica_identity = off;
CREATE TABLE manual (id int);
RESET wal2sql.auto_replica_identity;
SELECT relname, relreplident FROM pg_class
 WHERE relname IN ('with_pk', 'without_pk', 'pt', 'pt_1', 'manual', 'ctas', 'sel_into')
 ORDER BY relname;
INSERT INTO without_pk VALUES (1), (1);
DELETE FROM without_pk;
SELECT * FROM changes('sp');
SELECT pg_drop_replication_slot('sp');
