-- part 3 (on a new chain): more of the same, mixed DROPs, odd names
CREATE TEMP TABLE t3 (a int);
CREATE TABLE public."odd name; --" ("col ""q""" text);
INSERT INTO public."odd name; --" VALUES (E'line\nbreak'), ('quote''s');
DROP TABLE t3, public.later;
DROP FUNCTION public.later_count();
CREATE ROLE corpus_late;
GRANT SELECT ON public.owned TO corpus_late;
GRANT corpus_reader2 TO corpus_late;
UPDATE public.owned SET v = 'late' WHERE id = 1;
ALTER TABLE shop.loose ADD COLUMN extra int DEFAULT 7;
UPDATE shop.loose SET extra = 8 WHERE note = 'third';
BEGIN;
DROP ROLE corpus_late;
ROLLBACK;
DELETE FROM shop.loose WHERE note = 'second, changed';
TRUNCATE shop.truncpart;
INSERT INTO shop.truncpart VALUES (8, 'eight');
