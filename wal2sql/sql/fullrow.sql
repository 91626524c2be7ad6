-- REPLICA IDENTITY FULL names the identical row, not an equal one (the text
-- form is compared too where equal is not identical), and a literal compared
-- with a domain over a composite type is cast to the domain.
CREATE TYPE fr_pair AS (a int, b int);
CREATE DOMAIN fr_dom AS fr_pair;
CREATE TABLE fr_full (n numeric, i interval, f float8, d fr_dom, j jsonb, t text COLLATE "C");
ALTER TABLE fr_full REPLICA IDENTITY FULL;
INSERT INTO fr_full VALUES (1.0, '1 day', 0, '(1,2)', '{"a": 1.0}', 'x'),
                           (1.00, '24 hours', '-0', '(1,2)', '{"a": 1.00}', 'x');
CREATE TABLE fr_before AS SELECT * FROM fr_full;
SELECT 'init' FROM pg_create_logical_replication_slot('fr', 'wal2sql');
UPDATE fr_full SET t = 'changed' WHERE n::text = '1.00';
DELETE FROM fr_full WHERE n::text = '1.0';
CREATE TEMP TABLE fr_out AS SELECT * FROM changes('fr') WHERE changes ~ '^(UPDATE|DELETE)';
SELECT * FROM fr_out;
-- replayed onto the copy (with the replay session's output settings), the
-- same rows change
SET IntervalStyle = postgres; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 3;
DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT changes FROM fr_out LOOP
    EXECUTE replace(s, 'public.fr_full', 'public.fr_before');
  END LOOP;
END $$;
RESET IntervalStyle; RESET DateStyle; RESET extra_float_digits;
SELECT n, i, f, d, j, t FROM fr_before ORDER BY n::text;
SELECT n, i, f, d, j, t FROM fr_full ORDER BY n::text;
SELECT pg_drop_replication_slot('fr');
DROP TABLE fr_full, fr_before;
DROP DOMAIN fr_dom;
DROP TYPE fr_pair;
