-- TRUNCATE: ONLY per table, partitioned parents left out, flags kept.
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
