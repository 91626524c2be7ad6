-- Values of built-in and user-defined types, written so they read back exactly.
SET wal2sql.auto_replica_identity = off;
-- settings of the decoding session must not matter
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SET TimeZone = 'America/New_York';
CREATE SCHEMA "My Schema";
CREATE TYPE "My Schema".mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE "My Schema".pair AS (x int, y text);
CREATE DOMAIN "My Schema".posint AS int CHECK (VALUE > 0);
SELECT xml_type() AS xml_type \gset
SELECT multirange_type() AS multirange_type \gset
SELECT numeric_type() AS numeric_type \gset
CREATE TABLE "My Schema"."Types Table" (
  id int PRIMARY KEY,
  f4 real, f8 double precision, num :numeric_type,
  b bool, by bytea, bi bit(4), vb varbit,
  d date, ts timestamp, tstz timestamptz, iv interval, t time, ttz timetz,
  arr int[], arr2 text[], mood "My Schema".mood, pair "My Schema".pair,
  dom "My Schema".posint, rng int4range, mrng :multirange_type,
  js json, jsb jsonb, x :xml_type, pt point, poly polygon, tsv tsvector,
  u uuid, inet inet, m money, rc regclass, "Mixed Case" text, "select" int
);
SELECT 'init' FROM pg_create_logical_replication_slot('types', 'wal2sql');
INSERT INTO "My Schema"."Types Table" VALUES
 (1, 'NaN', 'Infinity', 'NaN', true, '\x00ff27', B'1010', B'101',
  '2024-02-29', '2024-01-01 12:34:56.789', '2024-01-01 12:34:56.789+02', '1 year 2 mons 3 days 04:05:06.7', '23:59:59', '12:00+05',
  '{{1,2},{3,NULL}}', '{"a b","c''d","e\\f",NULL}', 'happy', '(1,"x y")',
  5, '[1,10)', '{[1,3),[5,8)}',
  '{"k": [1, 2]}', '{"k": [1, 2]}', '<a>x</a>', '(1.5,2)', '((0,0),(1,1),(1,0))', 'a:1 b:2',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/8', '12.34', 'pg_class', 'MiXeD', 1),
 (2, '-Infinity', '-0', 'Infinity', false, '', B'0000', B'',
  'infinity', '-infinity', 'infinity', '-178000000 years', '00:00', '00:00+00',
  '[0:1]={7,8}', '{}', 'sad', '(,)',
  1, 'empty', '{}',
  'null', '[]', '', '(0,0)', '((0,0))', '',
  '00000000-0000-0000-0000-000000000000', '::1', '-0.01', '"My Schema"."Types Table"', NULL, NULL),
 (3, 3.4028235e38, 1.7976931348623157e308, '-Infinity', NULL, NULL, NULL, NULL,
  '4713-01-01 BC', '0001-01-01 00:00:00 BC', '2000-01-01 00:00:00.000001+00', '-1 day -00:00:01', NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 1.17549435e-38, 4.9e-324, 0.000000000000000000001, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT data FROM pg_logical_slot_peek_changes('types', NULL, NULL) WHERE data NOT LIKE '-- wal2sql %';

-- the written values read back to identical values
CREATE TABLE types_copy (LIKE "My Schema"."Types Table");
INSERT INTO "My Schema"."Types Table" (id, f8) VALUES (5, 0.1);
CREATE TEMP TABLE replay AS
  SELECT replace(data, 'INSERT INTO "My Schema"."Types Table"', 'INSERT INTO public.types_copy') AS stmt
    FROM pg_logical_slot_get_changes('types', NULL, NULL) WHERE data LIKE 'INSERT%';
RESET ALL;
DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT stmt FROM replay LOOP EXECUTE s; END LOOP;
END $$;
-- compare everything as text (json, xml, point have no equality)
SELECT count(*) AS differing_rows FROM (
  SELECT id, r::text FROM "My Schema"."Types Table" r
  EXCEPT
  SELECT id, r::text FROM types_copy r) d;
SELECT count(*) FROM types_copy;
SELECT pg_drop_replication_slot('types');
