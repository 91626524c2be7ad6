-- part 2: roles made and dropped between rotations, grants, ownership, settings
CREATE ROLE corpus_admin CREATEROLE;
CREATE ROLE corpus_owner;
SET ROLE corpus_admin;
CREATE ROLE corpus_reader;
CREATE ROLE corpus_temp;
GRANT corpus_reader TO corpus_owner;
RESET ROLE;
CREATE TABLE public.owned (id int PRIMARY KEY, v text);
ALTER TABLE public.owned OWNER TO corpus_owner;
GRANT SELECT ON public.owned TO corpus_reader;
GRANT SELECT, INSERT ON public.owned TO corpus_temp;
INSERT INTO public.owned VALUES (1, 'a'), (2, 'b');
SET ROLE corpus_owner;
INSERT INTO public.owned VALUES (3, 'by owner');
CREATE TABLE public.owner_made (a int);
RESET ROLE;
REVOKE ALL ON public.owned FROM corpus_temp;
DROP ROLE corpus_temp;
ALTER ROLE corpus_reader RENAME TO corpus_reader2;
ALTER ROLE corpus_reader2 CONNECTION LIMIT 5;
CREATE ROLE corpus_gone;
GRANT SELECT ON shop.item TO corpus_gone;
REVOKE SELECT ON shop.item FROM corpus_gone;
DROP ROLE corpus_gone;
DROP ROLE nosuch_role;
-- settings that change what DDL means
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = sql_standard;
SET TimeZone = 'Asia/Tokyo';
CREATE TABLE public.dated (
  id int PRIMARY KEY,
  d date DEFAULT '03/04/05',
  i interval DEFAULT '-1 2:03:04',
  t timestamptz DEFAULT '2020-01-01 00:00');
INSERT INTO public.dated (id) VALUES (1);
CREATE TABLE public.events (at timestamptz, what text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2020 PARTITION OF public.events FOR VALUES FROM ('2020-01-01 00:00') TO ('2021-01-01 00:00');
INSERT INTO public.events VALUES ('2020-06-01 12:00', 'midsummer');
-- a bound the statement computes: the restore must get the source's value
CREATE TABLE public.events_upto_now PARTITION OF public.events FOR VALUES FROM ('2021-01-01 00:00') TO (now());
INSERT INTO public.events VALUES ('2022-02-02 02:02', 'recent');
RESET DateStyle;
RESET IntervalStyle;
RESET TimeZone;
INSERT INTO public.dated (id) VALUES (2);
SET check_function_bodies = off;
CREATE FUNCTION public.later_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.later';
RESET check_function_bodies;
CREATE TABLE public.later (a int);
INSERT INTO public.later VALUES (1), (2);
-- a materialized view and a refresh
CREATE MATERIALIZED VIEW public.item_mv AS SELECT id, name FROM shop.item;
CREATE UNIQUE INDEX ON public.item_mv (id);
INSERT INTO shop.item VALUES (7, 'clip', 0.10);
REFRESH MATERIALIZED VIEW public.item_mv;
REFRESH MATERIALIZED VIEW CONCURRENTLY public.item_mv;
-- DDL run by a function the view's query calls, during REFRESH
CREATE FUNCTION public.make_side() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE IF NOT EXISTS public.side_table (a int);
  RETURN 1;
END $$;
CREATE MATERIALIZED VIEW public.side_mv AS SELECT public.make_side() AS x WITH NO DATA;
REFRESH MATERIALIZED VIEW public.side_mv;
INSERT INTO public.side_table VALUES (1), (1);
UPDATE public.side_table SET a = 2 WHERE ctid = (SELECT min(ctid) FROM public.side_table);
