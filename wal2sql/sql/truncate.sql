-- TRUNCATE: ONLY per table, partitioned parents listed last (without ONLY), flags kept.
SET wal2sql.auto_replica_identity = off;
CREATE TABLE tr1 (id serial PRIMARY KEY);
CREATE TABLE tr2 (id int PRIMARY KEY, r int REFERENCES tr1);
CREATE TABLE inh_p (id int);
CREATE TABLE inh_c () INHERITS (inh_p);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10) TO (20);
SELECT 'init' FROM pg_create_logical_replication_slot('tr', 'wal2sql');
TRUNCATE tr2;
TRUNCATE tr1, tr2 RESTART IDENTITY;
TRUNCATE tr1 CASCADE;
TRUNCATE ONLY inh_p;
TRUNCATE inh_p;
TRUNCATE parted;
INSERT INTO parted VALUES (1), (15);
SELECT * FROM changes('tr');
SELECT pg_drop_replication_slot('tr');
-- a partitioned table with a foreign key to another truncated table: the
-- parent is listed too (without it, the replay's TRUNCATE is refused)
CREATE TABLE truncprim (a int PRIMARY KEY);
CREATE TABLE truncpart (a int REFERENCES truncprim) PARTITION BY RANGE (a);
CREATE TABLE truncpart_1 PARTITION OF truncpart FOR VALUES FROM (0) TO (100);
SELECT 'init' FROM pg_create_logical_replication_slot('tr2', 'wal2sql');
TRUNCATE truncprim, truncpart;
TRUNCATE truncpart;
SELECT * FROM changes('tr2') WHERE changes ~ '^TRUNCATE';
SELECT pg_drop_replication_slot('tr2');
-- and the statement replays
BEGIN;
TRUNCATE ONLY public.truncprim, ONLY public.truncpart_1, public.truncpart;
ROLLBACK;
BEGIN;
TRUNCATE ONLY public.truncprim, ONLY public.truncpart_1;
ROLLBACK;
DROP TABLE truncpart, truncprim;
