-- Tables made REPLICA IDENTITY FULL automatically go back to DEFAULT when
-- they get a usable primary key (CREATE TABLE, then ADD PRIMARY KEY, as
-- pg_dump and pgbench do); a FULL set by the user stays.
CREATE SCHEMA af;
SET search_path = af, public;
CREATE VIEW ident AS
  SELECT c.relname, c.relreplident,
         EXISTS (SELECT FROM wal2sql.auto_full a WHERE a.relid = c.oid) AS marked
    FROM pg_class c WHERE c.relnamespace = 'af'::regnamespace AND c.relkind IN ('r', 'p')
   ORDER BY c.relname;
-- the mark table is the superuser's: nobody else can read or write it
SELECT relowner::regrole,
       (SELECT string_agg(DISTINCT grantee::regrole::text, ', ') FROM aclexplode(relacl)) AS grantees
  FROM pg_class WHERE oid = 'wal2sql.auto_full'::regclass;
SET ROLE w2s_user;
INSERT INTO wal2sql.auto_full VALUES ('af.ident'::regclass);
RESET ROLE;
SELECT 'init' FROM pg_create_logical_replication_slot('af', 'wal2sql');
-- pgbench / pg_dump style
CREATE TABLE acc (aid int NOT NULL, bid int, abalance int, filler char(10));
CREATE TABLE br (bid int NOT NULL, bbalance int);
CREATE TABLE hist (tid int, delta int);
INSERT INTO acc VALUES (1, 1, 0, 'a'), (2, 1, 0, 'b');
INSERT INTO br VALUES (1, 0);
SELECT * FROM ident;
ALTER TABLE acc ADD PRIMARY KEY (aid);
ALTER TABLE ONLY br ADD CONSTRAINT br_pkey PRIMARY KEY (bid);
UPDATE acc SET abalance = abalance + 5 WHERE aid = 1;
DELETE FROM acc WHERE aid = 2;
UPDATE br SET bbalance = 7;
SELECT * FROM ident;
SELECT * FROM changes('af') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
-- USING INDEX; a DEFERRABLE key is no replica identity: FULL stays
CREATE TABLE ui (id int NOT NULL);
CREATE UNIQUE INDEX ui_id ON ui (id);
ALTER TABLE ui ADD CONSTRAINT ui_pkey PRIMARY KEY USING INDEX ui_id;
CREATE TABLE defer (id int);
ALTER TABLE defer ADD PRIMARY KEY (id) DEFERRABLE;
-- the same transaction creates the table and adds the key
BEGIN;
CREATE TABLE same (id int, v text);
INSERT INTO same VALUES (1, 'a');
ALTER TABLE same ADD PRIMARY KEY (id);
UPDATE same SET v = 'b';
COMMIT;
-- a rolled-back key leaves the table FULL and marked
BEGIN;
CREATE TABLE rb (id int);
SAVEPOINT s;
ALTER TABLE rb ADD PRIMARY KEY (id);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM ident;
SELECT * FROM changes('af') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
-- an explicit FULL is the user's: kept, and the mark is forgotten
CREATE TABLE mine (id int);
ALTER TABLE mine REPLICA IDENTITY FULL;
ALTER TABLE mine ADD PRIMARY KEY (id);
CREATE TABLE mine2 (id int PRIMARY KEY);
ALTER TABLE mine2 REPLICA IDENTITY FULL;
ALTER TABLE mine2 DROP CONSTRAINT mine2_pkey;
ALTER TABLE mine2 ADD PRIMARY KEY (id);
-- a table that lost its key and gets one again
CREATE TABLE lost (id int PRIMARY KEY);
ALTER TABLE lost DROP CONSTRAINT lost_pkey;
ALTER TABLE lost ADD PRIMARY KEY (id);
-- the settings: no automatic change when off
CREATE TABLE off1 (id int);
SET wal2sql.auto_replica_identity = off;
ALTER TABLE off1 ADD PRIMARY KEY (id);
RESET wal2sql.auto_replica_identity;
CREATE TABLE off2 (id int);
SET wal2sql.capture = off;
ALTER TABLE off2 ADD PRIMARY KEY (id);
CREATE TABLE off3 (id int);
RESET wal2sql.capture;
SELECT * FROM ident;
SELECT * FROM changes('af') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
-- partitions: the key added on the parent reaches them
CREATE TABLE p (id int) PARTITION BY RANGE (id);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);
CREATE TABLE p2 (id int NOT NULL);
ALTER TABLE p ADD PRIMARY KEY (id);
ALTER TABLE p ATTACH PARTITION p2 FOR VALUES FROM (10) TO (20);
-- pg_dump: the parent's key is complete once every partition's is attached
CREATE TABLE q (id int NOT NULL) PARTITION BY LIST (id);
CREATE TABLE q1 PARTITION OF q FOR VALUES IN (1);
CREATE TABLE q2 PARTITION OF q FOR VALUES IN (2);
ALTER TABLE ONLY q ADD CONSTRAINT q_pkey PRIMARY KEY (id);
ALTER TABLE ONLY q1 ADD CONSTRAINT q1_pkey PRIMARY KEY (id);
ALTER TABLE ONLY q2 ADD CONSTRAINT q2_pkey PRIMARY KEY (id);
ALTER INDEX q_pkey ATTACH PARTITION q1_pkey;
SELECT * FROM ident WHERE relname ~ '^q';
ALTER INDEX q_pkey ATTACH PARTITION q2_pkey;
SELECT * FROM ident WHERE relname ~ '^[pq]';
SELECT * FROM changes('af') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|SET LOCAL|RESET ROLE)';
-- dropped tables are forgotten (also with capture off)
SELECT count(*) FROM wal2sql.auto_full a JOIN pg_class c ON c.oid = a.relid
 WHERE c.relnamespace = 'af'::regnamespace;
DROP TABLE rb;
SET wal2sql.capture = off;
DROP TABLE off2, off3;
RESET wal2sql.capture;
SELECT count(*) FROM wal2sql.auto_full a WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = a.relid);
SELECT count(*) FROM wal2sql.auto_full a JOIN pg_class c ON c.oid = a.relid
 WHERE c.relnamespace = 'af'::regnamespace;
DROP SCHEMA af CASCADE;
SELECT count(*) FROM wal2sql.auto_full a WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = a.relid);
RESET search_path;
SELECT pg_drop_replication_slot('af');
