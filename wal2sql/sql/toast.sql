-- Unchanged TOASTed values are left out of SET.
SET wal2sql.auto_replica_identity = off;
CREATE TABLE toasty (id int PRIMARY KEY, small text, big text);
ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE only_big (big text);
ALTER TABLE only_big ALTER COLUMN big SET STORAGE EXTERNAL;
ALTER TABLE only_big REPLICA IDENTITY FULL;
INSERT INTO only_big VALUES (repeat('z', 5000));
SELECT 'init' FROM pg_create_logical_replication_slot('toast', 'wal2sql');
INSERT INTO toasty VALUES (1, 'a', repeat('x', 10000));
UPDATE toasty SET small = 'b' WHERE id = 1;
UPDATE toasty SET big = repeat('y', 3) WHERE id = 1;
UPDATE only_big SET big = big;
SELECT left(c, 120) AS line, length(c) AS len FROM changes('toast') c;
SELECT pg_drop_replication_slot('toast');
