-- Statements on roles (no event trigger fires for them) are captured in
-- order, as the role that ran them; one that fails is not.
CREATE ROLE rl_admin CREATEROLE;
CREATE TABLE rl_t (a int PRIMARY KEY);
SELECT 'init' FROM pg_create_logical_replication_slot('rl', 'wal2sql');
SET ROLE rl_admin;
CREATE ROLE rl_reader;
GRANT rl_reader TO rl_admin;
RESET ROLE;
GRANT SELECT ON rl_t TO rl_reader;
ALTER ROLE rl_reader RENAME TO rl_reader2;
ALTER ROLE rl_reader2 NOLOGIN CONNECTION LIMIT 3;
REVOKE SELECT ON rl_t FROM rl_reader2;
BEGIN;
CREATE ROLE rl_rolled_back;
ROLLBACK;
DROP ROLE rl_nosuch;
DROP ROLE rl_reader2;
SELECT * FROM changes('rl') WHERE changes !~ '^(-- wal2sql (begin|commit) |BEGIN|COMMIT|RESET ROLE|SET LOCAL search_path)';
SELECT pg_drop_replication_slot('rl');
DROP TABLE rl_t;
DROP ROLE rl_admin;
