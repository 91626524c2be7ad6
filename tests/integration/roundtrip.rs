//! The wal2sql round trip: a DDL+DML torture workload runs on a source database, the slot's
//! output is replayed with `psql` onto a copy of the source made at the slot's starting point,
//! and both databases must then be equal: schema (`pg_dump --schema-only`), every table's rows
//! (count and md5 over the ordered row text) and every sequence's value.
//!
//! The copy is exact by construction: the slot is created on a database holding only the
//! extension, and the copies are `CREATE DATABASE ... TEMPLATE` of it before any user data.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{Cluster, SUPERUSER, bindir, scratch_dir, wal2sql_installed};

/// Roles are global: the workload creates objects as this role too (replayed under
/// `SET LOCAL ROLE`).
const ROLE: &str = "rt_user";

/// Everything the output must carry exactly. Statements separated by `\;` are sent by psql as
/// one multi-statement query string.
const WORKLOAD: &str = r#"
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- schemas, quoted and unicode identifiers, enums, composites, domains
CREATE SCHEMA "Sch ema";
CREATE TYPE "Sch ema"."Mood" AS ENUM ('sad', 'ok', 'happy, very');
CREATE TYPE public.pair AS (a int, "B" text);
CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
CREATE TABLE "Sch ema"."Mixed Case Tbl" ("Id" int PRIMARY KEY, "Ünïcødé" text, "select" int);
INSERT INTO "Sch ema"."Mixed Case Tbl" VALUES (1, 'ä€😀', 1), (2, 'quote '' and "dq"', NULL);
UPDATE "Sch ema"."Mixed Case Tbl" SET "select" = 7 WHERE "Id" = 2;

-- every common type, special values
CREATE TABLE public.types (
  id int PRIMARY KEY,
  b bool, i2 int2, i4 int4, i8 int8, n numeric, n2 numeric(10,3), r4 real, r8 float8,
  m money, c char(5), vc varchar(10), t text, by bytea, d date, tm time, tz timetz,
  ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb, x xml,
  ip inet, cd cidr, mac macaddr, mac8 macaddr8, bits bit(4), vb varbit,
  pt point, ln line, ls lseg, bx box, pa path, pg polygon, ci circle,
  ia int[], ta text[], ma int[][], fa float8[],
  e "Sch ema"."Mood", p pair, pp pair[], dm posint, r int4range, tr tstzrange,
  nr numrange, mr int4multirange, tsv tsvector, tsq tsquery, o oid, rc regclass,
  pl pg_lsn, ch "char", nm name, xi xid8
);
INSERT INTO public.types VALUES
 (1, true, -32768, 2147483647, -9223372036854775808, 'NaN', 1234567.891, 'NaN', 'NaN',
  '-92233720368547758.08', 'ab', 'x''y', E'tab\there\nnewline\\back', '\x00ff10',
  'infinity', '24:00', '23:59:59.999999+14', '-infinity', 'infinity', '-178000000 years',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": "\u00e9", "b": [1, 2.50]}',
  '{"k": {"z": null}, "a": 1e400}', '<r a="1">t&amp;</r>', '10.0.0.1/8', '10.0.0.0/8',
  '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010', B'101',
  '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '(1,1),(0,0)', '[(0,0),(1,1),(2,0)]',
  '((0,0),(1,1),(1,0))', '<(0,0),2>', '{1,NULL,3}', '{"a,b","c\"d",NULL,"NULL",""}',
  '{{1,2},{3,4}}', '{NaN,Infinity,-Infinity,0.1}', 'happy, very', '(1,"x y")',
  ARRAY['(1,a)'::pair, '(,)'::pair], 5, '[1,10)', '[2020-01-01 00:00+00,infinity)',
  '(,)', '{[1,3),[5,7)}', 'a:1 fat:2B cat', 'fat & !rat', 4294967295, 'pg_class',
  'FF/FFFFFFFF', 'x', 'name', '18446744073709551615'),
 (2, false, 0, 0, 0, 'Infinity', 0, 'Infinity', '-Infinity', 0, NULL, '', '', '\x',
  'epoch', '00:00', '00:00+00', 'epoch', 'epoch', '0', NULL, 'null', '[]', '<x/>',
  '::1', '::/0', NULL, NULL, B'0000', B'', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '{}', '{}', '{}', '{}', 'ok', '(,)', '{}', NULL, 'empty', 'empty', 'empty', '{}',
  '', '', 0, '-', '0/0', '', '', '0');
INSERT INTO public.types (id, n, n2, r4, r8, d, ts, iv)
  VALUES (3, '-Infinity', -0.0005, '-Infinity', 1e-320, '4713-01-01 BC',
          '294276-12-31 23:59:59.999999', '1 mon -2 days 03:04:05.678');
UPDATE public.types SET r8 = 0.1, n = n2 * 3, t = t || '''' WHERE id IN (2, 3);
DELETE FROM public.types WHERE id = 3;

-- REPLICA IDENTITY FULL (automatic): no "=" types, NULLs, duplicate rows
CREATE TABLE public.nopk (a int, j json, x xml, p point, pg polygon, t text, f float8);
INSERT INTO public.nopk VALUES
 (1, '{"a": 1}', '<x/>', '(1,2)', '((0,0),(1,1),(1,0))', NULL, 'NaN'),
 (1, '{"a": 1}', '<x/>', '(1,2)', '((0,0),(1,1),(1,0))', NULL, 'NaN'),
 (1, '{"a": 1}', '<x/>', '(1,2)', '((0,0),(1,1),(1,0))', NULL, 'NaN'),
 (2, NULL, NULL, NULL, NULL, 'x', -0.1);
UPDATE public.nopk SET t = 'one' WHERE ctid = (SELECT min(ctid) FROM public.nopk WHERE a = 1);
DELETE FROM public.nopk WHERE ctid = (SELECT max(ctid) FROM public.nopk WHERE a = 1);
UPDATE public.nopk SET f = f * 2 WHERE a = 2;

-- partitions (a row moving between partitions), inheritance, TRUNCATE ONLY
CREATE TABLE public.parted (id int, k text, v int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES IN ('a');
CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES IN ('b');
CREATE TABLE public.parted_def PARTITION OF public.parted DEFAULT;
INSERT INTO public.parted SELECT g, (ARRAY['a','b','c'])[g % 3 + 1], g FROM generate_series(1, 30) g;
UPDATE public.parted SET k = 'b' WHERE id = 3;
UPDATE public.parted SET v = -v WHERE k = 'c';
DELETE FROM public.parted WHERE id = 4;
CREATE TABLE public.parted_x (id int NOT NULL, k text NOT NULL, v int);
ALTER TABLE public.parted DETACH PARTITION public.parted_def;
ALTER TABLE public.parted ATTACH PARTITION public.parted_x FOR VALUES IN ('x');
INSERT INTO public.parted VALUES (100, 'x', 1);
CREATE TABLE public.inh_parent (id int, v text);
CREATE TABLE public.inh_child (extra int) INHERITS (public.inh_parent);
INSERT INTO public.inh_parent VALUES (1, 'p'), (2, 'p');
INSERT INTO public.inh_child VALUES (3, 'c', 1), (3, 'c', 1);
UPDATE public.inh_parent SET v = v || '!' WHERE id IN (1, 3);
TRUNCATE ONLY public.inh_parent;

-- TOAST: big values, updates that leave them alone
CREATE TABLE public.toasty (id int PRIMARY KEY, big text, other int, bb bytea);
INSERT INTO public.toasty
  SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 2000) i),
         g, decode((SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i), 'hex')
  FROM generate_series(1, 3) g;
UPDATE public.toasty SET other = other + 10;
UPDATE public.toasty SET big = big || 'x' WHERE id = 2;
CREATE TABLE public.toasty_full (id int, big text, other int);
INSERT INTO public.toasty_full
  SELECT 1, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i), 1;
UPDATE public.toasty_full SET other = 2;
DELETE FROM public.toasty_full WHERE other = 5;

-- identity, generated, serial, dropped columns
CREATE TABLE public.ident (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bd int GENERATED BY DEFAULT AS IDENTITY,
  gone int,
  v text,
  g int GENERATED ALWAYS AS (length(v)) STORED
);
ALTER TABLE public.ident DROP COLUMN gone;
INSERT INTO public.ident (v) SELECT 'v' || g FROM generate_series(1, 5) g;
UPDATE public.ident SET v = 'changed' WHERE id = 2;
CREATE TABLE public.ser (id serial PRIMARY KEY, v text);
INSERT INTO public.ser (v) VALUES ('a'), ('b');

-- savepoints, rollbacks, aborted transactions
BEGIN;
INSERT INTO public.ser (v) VALUES ('kept 1');
SAVEPOINT s1;
INSERT INTO public.ser (v) VALUES ('rolled back');
CREATE TABLE public.gone_in_savepoint (a int);
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO public.ser (v) VALUES ('kept 2');
CREATE TABLE public.made_in_savepoint (a int PRIMARY KEY);
INSERT INTO public.made_in_savepoint VALUES (1);
RELEASE SAVEPOINT s2;
COMMIT;
BEGIN;
CREATE TABLE public.aborted (a int);
INSERT INTO public.ser (v) VALUES ('aborted');
ROLLBACK;

-- multi-statement strings mixing DDL and DML
CREATE TABLE public.ms (a int PRIMARY KEY) \; INSERT INTO public.ms VALUES (1) \; ALTER TABLE public.ms ADD COLUMN b text DEFAULT 'dflt' \; INSERT INTO public.ms VALUES (2, 'two') \; UPDATE public.ms SET b = b || '+' ;

-- DDL in DO blocks and functions, search_path and role changes
DO $$
BEGIN
  CREATE TABLE public.do_t (id int PRIMARY KEY, v text);
  EXECUTE 'CREATE INDEX do_t_v ON public.do_t (v)';
  INSERT INTO public.do_t VALUES (1, 'a'), (2, 'b');
END
$$;
CREATE FUNCTION public.mk(n text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format('CREATE TABLE public.%I (id serial PRIMARY KEY, v text)', n);
  EXECUTE format('INSERT INTO public.%I (v) VALUES (%L)', n, 'x');
END
$f$;
SELECT public.mk('fn_t');
SET search_path = "Sch ema", public;
CREATE TABLE on_path (id int PRIMARY KEY, m "Mood");
INSERT INTO on_path VALUES (1, 'sad');
RESET search_path;
CREATE SCHEMA rt AUTHORIZATION rt_user;
SET ROLE rt_user;
CREATE TABLE rt.owned (id int PRIMARY KEY, v text);
INSERT INTO rt.owned VALUES (1, 'mine');
RESET ROLE;

-- CREATE TABLE AS, SELECT INTO, materialized views
CREATE TABLE public.ctas_t AS
  SELECT g AS id, md5(g::text) AS h, g::numeric(10,2) AS n, 'x'::varchar(3) AS vc
  FROM generate_series(1, 50) g;
SELECT * INTO public.selinto FROM public.ctas_t WHERE id < 10;
CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) AS n, sum(id) AS s FROM public.ctas_t;
DELETE FROM public.ctas_t WHERE id > 40;
REFRESH MATERIALIZED VIEW public.mv;
CREATE UNIQUE INDEX mv_n ON public.mv (n);
INSERT INTO public.ctas_t VALUES (99, 'h', 1, 'y');
REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv;
CREATE INDEX CONCURRENTLY ctas_t_h ON public.ctas_t (h);

-- ALTER TABLE variants with deterministic results, DROP
CREATE TABLE public.alt (id int PRIMARY KEY, a int, b text, c text);
INSERT INTO public.alt SELECT g, g, 'b' || g, g::text FROM generate_series(1, 20) g;
ALTER TABLE public.alt ADD COLUMN d int DEFAULT 42, ADD COLUMN e text NOT NULL DEFAULT 'e';
ALTER TABLE public.alt ALTER COLUMN a TYPE bigint;
ALTER TABLE public.alt ALTER COLUMN c TYPE int USING c::int * 2;
ALTER TABLE public.alt RENAME COLUMN b TO "B col";
ALTER TABLE public.alt DROP COLUMN d;
ALTER TABLE public.alt ALTER COLUMN e SET DEFAULT 'new', ADD CONSTRAINT alt_c CHECK (c > 0);
ALTER TABLE public.alt RENAME TO "Alt Renamed";
ALTER TABLE public."Alt Renamed" SET SCHEMA "Sch ema";
UPDATE "Sch ema"."Alt Renamed" SET e = 'upd', a = a * 1000000000 WHERE id % 3 = 0;
CREATE TABLE public.fk_child (id int PRIMARY KEY, alt_id int REFERENCES "Sch ema"."Alt Renamed" (id) ON DELETE CASCADE);
INSERT INTO public.fk_child VALUES (1, 1), (2, 2);
DELETE FROM "Sch ema"."Alt Renamed" WHERE id = 1;
CREATE TABLE public.dropme (a int);
INSERT INTO public.dropme VALUES (1);
DROP TABLE public.dropme;
CREATE TABLE public.later_pk (a int, b text);
INSERT INTO public.later_pk VALUES (1, 'x'), (1, 'x');
DELETE FROM public.later_pk WHERE ctid = (SELECT min(ctid) FROM public.later_pk);
ALTER TABLE public.later_pk ADD PRIMARY KEY (a);
UPDATE public.later_pk SET b = 'y';

-- TRUNCATE ... RESTART IDENTITY, tables without a primary key with duplicates
INSERT INTO public.ser (v) VALUES ('before truncate');
TRUNCATE public.ser RESTART IDENTITY;
INSERT INTO public.ser (v) VALUES ('after truncate');
CREATE TABLE public.dups (a int, b text);
INSERT INTO public.dups SELECT 1, 'same' FROM generate_series(1, 5);
INSERT INTO public.dups VALUES (NULL, NULL), (NULL, NULL);
UPDATE public.dups SET b = 'changed' WHERE ctid IN (SELECT ctid FROM public.dups WHERE a = 1 LIMIT 2);
DELETE FROM public.dups WHERE ctid = (SELECT ctid FROM public.dups WHERE a IS NULL LIMIT 1);

-- money
CREATE TABLE public.cash (id int PRIMARY KEY, m money, ma money[]);
INSERT INTO public.cash VALUES (1, 1234567.89, '{1.5,-2}'), (2, -0.01, NULL);
UPDATE public.cash SET m = m * 2 WHERE id = 1;
"#;

/// The silent-divergence holes: identity updated to DEFAULT, rewrites with volatile results,
/// SET LOGGED, a table losing its primary key.
const WORKLOAD_HOLES: &str = r#"
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- UPDATE ... SET id = DEFAULT on GENERATED ALWAYS identity columns (key and non-key)
UPDATE public.ident SET id = DEFAULT WHERE id = 3;
CREATE TABLE public.ident_nk (k int PRIMARY KEY, a int GENERATED ALWAYS AS IDENTITY, v text);
INSERT INTO public.ident_nk (k, v) VALUES (1, 'a'), (2, 'b');
UPDATE public.ident_nk SET a = DEFAULT WHERE k = 1;
UPDATE public.ident_nk SET v = 'bb' WHERE k = 2;
CREATE TABLE public.ident_full (a int GENERATED ALWAYS AS IDENTITY, v text);
INSERT INTO public.ident_full (v) VALUES ('a'), ('a');
UPDATE public.ident_full SET a = DEFAULT WHERE a = 1;

-- table rewrites with volatile results
CREATE TABLE public.vol (id int PRIMARY KEY, v int);
INSERT INTO public.vol SELECT g, g FROM generate_series(1, 20) g;
ALTER TABLE public.vol ADD COLUMN r float8 DEFAULT random();
ALTER TABLE public.vol ADD COLUMN ts timestamptz DEFAULT clock_timestamp();
ALTER TABLE public.vol ADD COLUMN s serial;
ALTER TABLE public.vol ADD COLUMN idc int GENERATED ALWAYS AS IDENTITY;
ALTER TABLE public.vol ALTER COLUMN v TYPE bigint USING (v + (random() * 1000)::int);
UPDATE public.vol SET v = 0 WHERE id = 1;
CREATE TABLE public.vol_nopk (a int);
INSERT INTO public.vol_nopk SELECT 1 FROM generate_series(1, 5);
ALTER TABLE public.vol_nopk ADD COLUMN r float8 DEFAULT random();
UPDATE public.vol_nopk SET a = 2 WHERE ctid = (SELECT min(ctid) FROM public.vol_nopk);
CREATE TABLE public.vol_parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE public.vol_parted_1 PARTITION OF public.vol_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.vol_parted_2 PARTITION OF public.vol_parted FOR VALUES FROM (10) TO (20);
INSERT INTO public.vol_parted SELECT g, g FROM generate_series(0, 19) g;
ALTER TABLE public.vol_parted ADD COLUMN r float8 DEFAULT random();
CREATE UNLOGGED TABLE public.unl (id int PRIMARY KEY, r float8, big text);
INSERT INTO public.unl SELECT g, random(), CASE WHEN g = 1 THEN (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i) END FROM generate_series(1, 10) g;
ALTER TABLE public.unl SET LOGGED;
UPDATE public.unl SET r = 0 WHERE id = 2;
BEGIN;
CREATE TABLE public.vol_txn (id int PRIMARY KEY);
INSERT INTO public.vol_txn SELECT generate_series(1, 5);
SAVEPOINT a;
ALTER TABLE public.vol_txn ADD COLUMN r float8 DEFAULT random();
ROLLBACK TO SAVEPOINT a;
ALTER TABLE public.vol_txn ADD COLUMN r2 float8 DEFAULT random();
DELETE FROM public.vol_txn WHERE id = 5;
COMMIT;

-- columns added with a stable default: existing rows keep the value of the ALTER's time
CREATE TABLE public.stable_def (id int PRIMARY KEY);
INSERT INTO public.stable_def SELECT generate_series(1, 3);
SET my.setting = 'from the source session';
ALTER TABLE public.stable_def ADD COLUMN at timestamptz DEFAULT now(),
  ADD COLUMN s text DEFAULT current_setting('my.setting', true), ADD COLUMN k int DEFAULT 5;
INSERT INTO public.stable_def (id) VALUES (4);
ALTER TABLE public.parted ADD COLUMN added_at timestamptz DEFAULT now();

-- a table that loses its primary key, or its replica identity index
CREATE TABLE public.losepk (id int PRIMARY KEY, v text);
INSERT INTO public.losepk VALUES (1, 'a'), (2, 'b');
ALTER TABLE public.losepk DROP CONSTRAINT losepk_pkey;
UPDATE public.losepk SET v = 'aa' WHERE id = 1;
DELETE FROM public.losepk WHERE id = 2;
CREATE TABLE public.loseidx (id int NOT NULL, v text);
CREATE UNIQUE INDEX loseidx_id ON public.loseidx (id);
ALTER TABLE public.loseidx REPLICA IDENTITY USING INDEX loseidx_id;
INSERT INTO public.loseidx VALUES (1, 'a'), (2, 'b');
DROP INDEX public.loseidx_id;
UPDATE public.loseidx SET v = 'aa' WHERE id = 1;
DELETE FROM public.loseidx WHERE id = 2;
"#;

/// Tables created without a primary key that get one afterwards (pgbench -i, pg_dump): wal2sql
/// makes them REPLICA IDENTITY FULL at creation, then DEFAULT again once they have the key, in
/// the source and, through the stream, in the replay. A FULL set by the user stays.
const WORKLOAD_AUTOFULL: &str = r#"
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE TABLE public.pgbench_branches (bid int NOT NULL, bbalance int, filler char(88)) WITH (fillfactor = 100);
CREATE TABLE public.pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84)) WITH (fillfactor = 100);
CREATE TABLE public.pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
INSERT INTO public.pgbench_branches SELECT g, 0 FROM generate_series(1, 2) g;
INSERT INTO public.pgbench_accounts SELECT g, (g - 1) / 50 + 1, 0, '' FROM generate_series(1, 100) g;
ALTER TABLE public.pgbench_branches ADD PRIMARY KEY (bid);
ALTER TABLE public.pgbench_accounts ADD CONSTRAINT pgbench_accounts_pkey PRIMARY KEY (aid);
UPDATE public.pgbench_accounts SET abalance = abalance + 10 WHERE aid % 7 = 0;
DELETE FROM public.pgbench_accounts WHERE aid % 11 = 0;
UPDATE public.pgbench_branches SET bbalance = bbalance - 3;
INSERT INTO public.pgbench_history VALUES (1, 1, 1, 5, '2020-01-01', NULL), (1, 1, 1, 5, '2020-01-01', NULL);
UPDATE public.pgbench_history SET delta = 6 WHERE ctid = (SELECT min(ctid) FROM public.pgbench_history);

-- the same transaction creates the table, adds the key and changes rows
BEGIN;
CREATE TABLE public.same_tx (id int, v text);
INSERT INTO public.same_tx VALUES (1, 'a'), (2, 'b'), (3, 'c');
ALTER TABLE public.same_tx ADD PRIMARY KEY (id);
UPDATE public.same_tx SET v = 'bb' WHERE id = 2;
DELETE FROM public.same_tx WHERE id = 3;
COMMIT;

-- USING INDEX
CREATE TABLE public.ui (id int NOT NULL, v text);
INSERT INTO public.ui VALUES (1, 'a'), (2, 'b');
CREATE UNIQUE INDEX ui_id ON public.ui (id);
ALTER TABLE public.ui ADD CONSTRAINT ui_pkey PRIMARY KEY USING INDEX ui_id;
UPDATE public.ui SET v = 'x' WHERE id = 1;

-- an explicit FULL is kept
CREATE TABLE public.mine (id int, v text);
ALTER TABLE public.mine REPLICA IDENTITY FULL;
ALTER TABLE public.mine ADD PRIMARY KEY (id);
INSERT INTO public.mine VALUES (1, 'a'), (2, 'b');
UPDATE public.mine SET v = 'aa' WHERE id = 1;
DELETE FROM public.mine WHERE id = 2;

-- partitioned, as pg_dump writes it
CREATE TABLE public.pq (id int NOT NULL, v text) PARTITION BY LIST (id);
CREATE TABLE public.pq1 PARTITION OF public.pq FOR VALUES IN (1, 2);
CREATE TABLE public.pq2 PARTITION OF public.pq FOR VALUES IN (3, 4);
INSERT INTO public.pq VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
ALTER TABLE ONLY public.pq ADD CONSTRAINT pq_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.pq1 ADD CONSTRAINT pq1_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.pq2 ADD CONSTRAINT pq2_pkey PRIMARY KEY (id);
ALTER INDEX public.pq_pkey ATTACH PARTITION public.pq1_pkey;
ALTER INDEX public.pq_pkey ATTACH PARTITION public.pq2_pkey;
UPDATE public.pq SET v = v || '!' WHERE id IN (1, 3);
DELETE FROM public.pq WHERE id = 4;
-- a key added on the parent reaches the partitions
CREATE TABLE public.pr (id int NOT NULL, v text) PARTITION BY RANGE (id);
CREATE TABLE public.pr1 PARTITION OF public.pr FOR VALUES FROM (0) TO (10);
INSERT INTO public.pr VALUES (1, 'a'), (2, 'b');
ALTER TABLE public.pr ADD PRIMARY KEY (id);
UPDATE public.pr SET v = 'z' WHERE id = 2;
"#;

fn psql_cmd(cluster: &Cluster, dbname: &str) -> Command {
    let mut cmd = Command::new(bindir().join("psql"));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&cluster.socket_dir)
        .args([
            "-p",
            &cluster.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            dbname,
        ])
        .env("PGCLIENTENCODING", "UTF8")
        .env_remove("PGOPTIONS")
        .env_remove("PGPASSWORD");
    cmd
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn run_file(cluster: &Cluster, dbname: &str, file: &Path, pgoptions: Option<&str>) -> Output {
    let mut cmd = psql_cmd(cluster, dbname);
    if let Some(opts) = pgoptions {
        cmd.env("PGOPTIONS", opts);
    }
    cmd.arg("-f").arg(file).output().expect("psql -f")
}

/// The slot's output, each message followed by a newline.
fn slot_output(cluster: &Cluster, dbname: &str, function: &str, options: &str) -> String {
    let sql = format!("SELECT data FROM {function}('rt', NULL, NULL{options})");
    let out = psql_cmd(cluster, dbname)
        .args(["-A", "-t", "-c", &sql])
        .output()
        .expect("psql");
    ok(out, "reading the slot")
}

/// `pg_dump --schema-only`, without comments and blank lines.
fn schema(cluster: &Cluster, dbname: &str) -> String {
    let out = Command::new(bindir().join("pg_dump"))
        .args(["--schema-only", "--no-sync", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", SUPERUSER, dbname])
        .output()
        .expect("pg_dump");
    ok(out, "pg_dump")
        .lines()
        // \restrict carries a random key (pg_dump 15.14+)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("--")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per permanent table or materialized view: name, row count, md5 of the ordered row
/// texts; then one line per sequence with its state.
fn contents(cluster: &Cluster, dbname: &str) -> Vec<String> {
    let tables = cluster.psql(
        dbname,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'wal2sql') \
           AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    let mut lines: Vec<String> = Vec::new();
    let parts: Vec<String> = tables
        .lines()
        .map(|t| {
            let lit = t.replace('\'', "''");
            format!(
                "SELECT '{lit}' || ' ' || count(*) || ' ' || \
                 md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM ONLY {t} r"
            )
        })
        .collect();
    if !parts.is_empty() {
        lines.extend(
            cluster
                .psql(dbname, &(parts.join(" UNION ALL ") + " ORDER BY 1"))
                .lines()
                .map(String::from),
        );
    }
    lines.extend(
        cluster
            .psql(
                dbname,
                "SELECT format('sequence %I.%I %s', schemaname, sequencename, last_value) \
                 FROM pg_sequences ORDER BY 1",
            )
            .lines()
            .map(String::from),
    );
    lines
}

fn diff(a: &str, b: &str) -> String {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    let mut out = String::new();
    for l in &al {
        if !bl.contains(l) {
            out.push_str(&format!("- {l}\n"));
        }
    }
    for l in &bl {
        if !al.contains(l) {
            out.push_str(&format!("+ {l}\n"));
        }
    }
    out
}

fn assert_same(cluster: &Cluster, source: &str, target: &str, label: &str) {
    let (s, t) = (schema(cluster, source), schema(cluster, target));
    assert!(
        s == t,
        "{label}: schemas differ (- source, + target):\n{}",
        diff(&s, &t)
    );
    let (s, t) = (contents(cluster, source), contents(cluster, target));
    assert!(
        s == t,
        "{label}: contents differ (- source, + target):\n{}",
        diff(&s.join("\n"), &t.join("\n"))
    );
}

/// Replay `output` into `target` as a restore session does; returns psql's result.
fn replay(cluster: &Cluster, target: &str, output: &str, label: &str) -> Output {
    let dir = scratch_dir("roundtrip");
    let file = dir.join(format!("{label}.sql"));
    std::fs::write(&file, output).expect("write output");
    let out = run_file(
        cluster,
        target,
        &file,
        Some("-c session_replication_role=replica -c wal2sql.capture=off"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Source `src` with the extension and slot `rt`, and copies of it as of the slot's start.
fn setup(cluster: &Cluster, copies: &[&str]) {
    cluster.psql("postgres", &format!("CREATE ROLE {ROLE} LOGIN"));
    cluster.create_database("src");
    cluster.psql("src", "CREATE EXTENSION wal2sql");
    cluster.psql(
        "src",
        "SELECT pg_create_logical_replication_slot('rt', 'wal2sql')",
    );
    for copy in copies {
        cluster.psql("postgres", &format!("CREATE DATABASE {copy} TEMPLATE src"));
    }
}

fn run_workload(cluster: &Cluster, sql: &str) {
    let dir = scratch_dir("workload");
    let file = dir.join("workload.sql");
    std::fs::write(&file, crate::harness::without_missing_xml(sql)).expect("write workload");
    ok(run_file(cluster, "src", &file, None), "the workload");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the round trip; returns the cluster (still running) and the unbatched output.
fn round_trip(workload: &[&str]) -> Option<(Cluster, String)> {
    if !wal2sql_installed() {
        eprintln!("wal2sql is not installed (make -C wal2sql install): skipped");
        return None;
    }
    let cluster = Cluster::start();
    setup(&cluster, &["target_plain", "target_batch"]);
    for sql in workload {
        run_workload(&cluster, sql);
    }
    cluster.psql("src", "SELECT wal2sql.snapshot_sequences()");

    let plain = slot_output(&cluster, "src", "pg_logical_slot_peek_changes", "");
    let batched = slot_output(
        &cluster,
        "src",
        "pg_logical_slot_get_changes",
        ", 'batch-inserts', '100'",
    );
    // WAL2SQL_ROUNDTRIP_KEEP=dir keeps the outputs for a look
    if let Ok(dir) = std::env::var("WAL2SQL_ROUNDTRIP_KEEP") {
        let n = workload.len();
        std::fs::write(format!("{dir}/plain-{n}.sql"), &plain).expect("keep output");
        std::fs::write(format!("{dir}/batched-{n}.sql"), &batched).expect("keep output");
    }
    assert!(
        !plain.contains("wal2sql: cannot replay"),
        "the output holds an unreplayable marker:\n{}",
        plain
            .lines()
            .filter(|l| l.contains("cannot replay"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        batched.lines().count() < plain.lines().count(),
        "batching merged no INSERT"
    );
    for (target, output) in [("target_plain", &plain), ("target_batch", &batched)] {
        ok(replay(&cluster, target, output, target), "the replay");
        assert_same(&cluster, "src", target, target);
    }
    Some((cluster, plain))
}

#[test]
fn roundtrip_torture_workload() {
    round_trip(&[WORKLOAD]);
}

#[test]
fn roundtrip_silent_divergence_holes() {
    round_trip(&[WORKLOAD, WORKLOAD_HOLES]);
}

/// CREATE TABLE then ADD PRIMARY KEY: back to REPLICA IDENTITY DEFAULT in the source and the
/// replay (pg_dump --schema-only compared by the round trip), each switch written once.
#[test]
fn roundtrip_auto_full_back_to_default() {
    let Some((cluster, plain)) = round_trip(&[WORKLOAD_AUTOFULL]) else {
        return;
    };
    let ident = "SELECT string_agg(relname || '=' || relreplident::text, ' ' ORDER BY relname) \
                 FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')";
    let expected = "mine=f pgbench_accounts=d pgbench_branches=d pgbench_history=f pq=d pq1=d \
                    pq2=d pr=d pr1=d same_tx=d ui=d\n";
    assert_eq!(cluster.psql("src", ident), expected);
    assert_eq!(cluster.psql("target_plain", ident), expected);
    for table in [
        "pgbench_accounts",
        "pgbench_branches",
        "same_tx",
        "ui",
        "pq",
        "pq1",
        "pq2",
        "pr",
        "pr1",
    ] {
        let alter = format!("ALTER TABLE public.{table} REPLICA IDENTITY DEFAULT;");
        assert_eq!(plain.lines().filter(|l| *l == alter).count(), 1, "{alter}");
    }
    assert!(!plain.contains("public.mine REPLICA IDENTITY DEFAULT"));
    // UPDATE/DELETE after the key use it, not the whole old row
    assert!(plain.contains(
        "DELETE FROM ONLY public.pgbench_accounts WHERE aid OPERATOR(pg_catalog.=) '11';"
    ));
    // nothing was noted in the replayed databases
    assert_eq!(
        cluster.psql("target_plain", "SELECT count(*) FROM wal2sql.auto_full"),
        "0\n"
    );
}

/// The replay must stop, not continue, at an unreplayable marker.
#[test]
fn roundtrip_replay_stops_at_a_marker() {
    if !wal2sql_installed() {
        eprintln!("wal2sql is not installed (make -C wal2sql install): skipped");
        return;
    }
    let cluster = Cluster::start();
    setup(&cluster, &["target"]);
    run_workload(
        &cluster,
        "CREATE TABLE public.n (a int);\n\
         ALTER TABLE public.n REPLICA IDENTITY NOTHING;\n\
         INSERT INTO public.n VALUES (1);\n\
         DELETE FROM public.n;\n\
         INSERT INTO public.n VALUES (2);\n",
    );
    let output = slot_output(&cluster, "src", "pg_logical_slot_get_changes", "");
    let out = replay(&cluster, "target", &output, "marker");
    assert!(!out.status.success(), "the replay went on past the marker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wal2sql: cannot replay DELETE on table public.n in transaction"),
        "{err}"
    );
    assert_eq!(
        cluster.psql("target", "SELECT count(*) FROM public.n"),
        "1\n"
    );
}
