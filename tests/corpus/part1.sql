-- part 1: tables, FULL identity rows that are equal but not identical, domains, temp objects
CREATE SCHEMA shop;
SET search_path = shop, public;
CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
CREATE TABLE loose (n numeric, i interval, f float8, j jsonb, note text);
INSERT INTO item VALUES (1, 'pen', 1.50), (2, 'ink', 3.25), (3, 'pad', 2.00);
INSERT INTO loose VALUES (1.0, '1 day', 0, '{"a": 1.0}', 'first'),
                         (1.00, '24 hours', '-0', '{"a": 1.00}', 'second'),
                         (2, '1 mon', 1.5, '[]', 'third');
UPDATE loose SET note = 'second, changed' WHERE n::text = '1.00';
DELETE FROM loose WHERE n::text = '1.0';
UPDATE item SET price = price * 1.1 WHERE id = 2;
-- an error, then a rolled-back transaction
INSERT INTO item VALUES (1, 'dup', 0);
BEGIN;
INSERT INTO item VALUES (4, 'gone', 9);
CREATE TABLE never (a int);
ROLLBACK;
BEGIN;
INSERT INTO item VALUES (5, 'kept', 5);
SAVEPOINT s1;
INSERT INTO item VALUES (6, 'undone', 6);
ALTER TABLE item ADD COLUMN undone int;
ROLLBACK TO SAVEPOINT s1;
UPDATE item SET name = 'kept!' WHERE id = 5;
COMMIT;
-- composite types and a domain over one, under FULL identity
CREATE TYPE pair AS (a int, b int);
CREATE DOMAIN pos_pair AS pair CHECK ((VALUE).a >= 0);
CREATE TABLE pairs (p pos_pair, label text);
INSERT INTO pairs VALUES ('(1,2)', 'one'), ('(3,4)', 'two');
UPDATE pairs SET label = 'ONE' WHERE label = 'one';
DELETE FROM pairs WHERE label = 'two';
INSERT INTO pairs VALUES ('(-1,2)', 'bad');
-- temporary objects, with triggers, rules, policies, indexes
CREATE TEMP TABLE scratch (id int PRIMARY KEY, v text DEFAULT 'x' CHECK (v <> ''));
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := upper(NEW.v); RETURN NEW; END$$;
CREATE TRIGGER scratch_touch BEFORE INSERT ON scratch FOR EACH ROW EXECUTE FUNCTION shop.touch();
CREATE RULE scratch_rule AS ON DELETE TO scratch DO INSTEAD NOTHING;
ALTER TABLE scratch ENABLE ROW LEVEL SECURITY;
CREATE POLICY scratch_pol ON scratch USING (true);
CREATE INDEX ON scratch (v);
ALTER TABLE scratch ADD COLUMN w int;
COMMENT ON TABLE scratch IS 'temporary';
INSERT INTO scratch VALUES (1, 'a'), (2, 'b');
CREATE TABLE from_scratch (LIKE scratch INCLUDING ALL);
INSERT INTO from_scratch SELECT * FROM scratch;
CREATE TABLE scratch_copy AS SELECT id, v FROM scratch;
CREATE TEMP TABLE scratch2 (a int);
DROP TABLE scratch2, scratch_copy;
CREATE TEMP VIEW scratch_v AS SELECT * FROM scratch;
DROP VIEW scratch_v;
CREATE TEMP SEQUENCE tseq;
SELECT nextval('tseq');
-- errors in DDL
CREATE TABLE item (id int);
ALTER TABLE nosuch ADD COLUMN x int;
DROP TABLE nosuch;
DROP TABLE IF EXISTS nosuch;
-- TRUNCATE of a partitioned table with a foreign key
CREATE TABLE truncprim (a int PRIMARY KEY);
CREATE TABLE truncpart (a int REFERENCES truncprim, b text) PARTITION BY RANGE (a);
CREATE TABLE truncpart_1 PARTITION OF truncpart FOR VALUES FROM (0) TO (100);
CREATE TABLE truncpart_2 PARTITION OF truncpart FOR VALUES FROM (100) TO (200);
INSERT INTO truncprim SELECT g FROM generate_series(1, 150) g;
INSERT INTO truncpart SELECT g, 'b' || g FROM generate_series(1, 150) g;
TRUNCATE truncprim, truncpart;
INSERT INTO truncprim VALUES (7), (107);
INSERT INTO truncpart VALUES (7, 'seven'), (107, 'hundred and seven');
RESET search_path;
