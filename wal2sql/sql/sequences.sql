-- wal2sql.snapshot_sequences() writes setval() calls into the stream.
CREATE SEQUENCE "Seq One" START 5;
CREATE TABLE seqt (id serial PRIMARY KEY);
CREATE UNLOGGED SEQUENCE unlogged_seq;
SELECT nextval('"Seq One"'), nextval('"Seq One"');
INSERT INTO seqt DEFAULT VALUES;
SELECT 'init' FROM pg_create_logical_replication_slot('seq', 'wal2sql');
SELECT wal2sql.snapshot_sequences() > 0 AS recorded;
SELECT * FROM changes('seq') c WHERE c NOT LIKE '%setval(''pg_catalog%' AND (c NOT LIKE 'SELECT pg_catalog.setval%' OR c ~ '(Seq One|seqt|tr1)');
SELECT count(*) FROM wal2sql.ddl_queue;
SELECT pg_drop_replication_slot('seq');
