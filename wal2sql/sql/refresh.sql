-- DDL run inside REFRESH MATERIALIZED VIEW (by a function the view's query
-- calls) is captured, and its tables get REPLICA IDENTITY FULL; the
-- temporary tables of CONCURRENTLY are not captured.
CREATE FUNCTION rf_make() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE IF NOT EXISTS public.rf_made (a int);
  RETURN 1;
END $$;
CREATE MATERIALIZED VIEW rf_mv AS SELECT rf_make() AS x WITH NO DATA;
CREATE UNIQUE INDEX ON rf_mv (x);
SELECT 'init' FROM pg_create_logical_replication_slot('rf', 'wal2sql');
REFRESH MATERIALIZED VIEW rf_mv;
DROP TABLE rf_made;
REFRESH MATERIALIZED VIEW CONCURRENTLY rf_mv;
SELECT * FROM changes('rf') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
SELECT pg_drop_replication_slot('rf');
DROP MATERIALIZED VIEW rf_mv;
DROP TABLE rf_made;
DROP FUNCTION rf_make();
-- a partition bound computed by a function: detached and attached again with
-- the bound the source computed (from the catalog)
CREATE TABLE rf_parted (at timestamptz) PARTITION BY RANGE (at);
SELECT 'init' FROM pg_create_logical_replication_slot('rf2', 'wal2sql');
CREATE TABLE rf_past PARTITION OF rf_parted FOR VALUES FROM ('2000-01-01 00:00+00') TO (current_timestamp);
CREATE TABLE rf_future (at timestamptz);
ALTER TABLE rf_parted ATTACH PARTITION rf_future FOR VALUES FROM (now()) TO ('3000-01-01 00:00+00');
CREATE TABLE rf_fixed PARTITION OF rf_parted FOR VALUES FROM ('1900-01-01 00:00+00') TO ('1901-01-01 00:00+00');
SELECT regexp_replace(regexp_replace(changes, '[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d(\.\d+)? \d{4} P[SD]T', 'NOW', 'g'), 'bytes=\d+', 'bytes=N')
  FROM changes('rf2') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
SELECT pg_drop_replication_slot('rf2');
DROP TABLE rf_parted;
