-- DDL run inside REFRESH MATERIALIZED VIEW (by a function the view's query
-- calls) is captured, and its tables get REPLICA IDENTITY FULL; the
-- temporary tables of CONCURRENTLY are not captured.
CREATE FUNCTION rf_make() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE IF NOT EXISTS rf_made (a int);
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
