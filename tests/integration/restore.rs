//! `--restore` end to end: `--init` takes the base, a workload runs, the slot's output is written
//! as the chain's differentials (split at transaction boundaries into several files, as the
//! streamer would seal them), and the restored database is compared with the source.

use std::path::{Path, PathBuf};
use std::process::Output;

use pg_scribe::storage::backup_dir::{BackupDir, ChainId};
use pg_scribe::storage::diff_format::{DiffScanner, TxnBounds};
use pg_scribe::storage::manifest;

use crate::harness::{
    Background, Cluster, Streamer, bindir, pg_scribe, scratch_dir, stderr, wait_for_text,
};

/// `--init` of `db` into a new backup directory; returns (backup dir, chain dir).
fn init_chain(cluster: &Cluster, db: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir("restore").join("backups");
    let out = pg_scribe(
        &[
            "--init",
            "-d",
            db,
            "--backup-dir",
            dir.to_str().unwrap(),
            "--slot",
            "s",
        ],
        &cluster.env(db),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let chain = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .expect("a chain");
    (dir, chain)
}

/// What the slot has decoded since the last call, one message per line as the streamer writes.
fn changes(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT data FROM pg_logical_slot_get_changes('s', NULL, NULL)",
    )
}

fn transactions(text: &str) -> Vec<TxnBounds> {
    DiffScanner::new(std::io::Cursor::new(text.as_bytes().to_vec()), "mem")
        .map(|t| t.unwrap())
        .collect()
}

fn write_private(path: &Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes a sealed differential as the streamer would: the file, then its manifest.
fn write_sealed(chain: &Path, name: &str, data: &[u8]) {
    write_private(&chain.join(name), data);
    let id = chain.file_name().unwrap().to_str().unwrap();
    let chain = BackupDir::new(chain.parent().unwrap())
        .chain(ChainId::from_dir_name(id).expect("a chain directory"));
    manifest::write_for_sealed(&chain, name.parse().unwrap()).unwrap();
}

/// Writes `text` as `parts` sealed diffs (split between transactions), named after `first`+i s.
fn write_diffs(chain: &Path, text: &str, parts: usize, first: u32) -> Vec<String> {
    let txns = transactions(text);
    assert!(!txns.is_empty(), "no transactions in:\n{text}");
    let per = txns.len().div_ceil(parts);
    let mut names = Vec::new();
    for (i, group) in txns.chunks(per).enumerate() {
        let from = group.first().unwrap().start as usize;
        let to = group.last().unwrap().end as usize;
        let name = format!("diff-20300101T{:06}Z.sql", first as usize + i);
        write_sealed(chain, &name, &text.as_bytes()[from..to]);
        names.push(name);
    }
    names
}

fn restore(cluster: &Cluster, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--restore", "--backup-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    pg_scribe(&args, &cluster.env("postgres"))
}

fn sequences(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT string_agg(format('%s %s %s', schemaname || '.' || sequencename, last_value, start_value), E'\\n' ORDER BY schemaname, sequencename) FROM pg_sequences",
    )
}

fn schema(cluster: &Cluster, db: &str) -> String {
    let out = std::process::Command::new(crate::harness::bindir().join("pg_dump"))
        .args(["--schema-only", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", "postgres", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn db_exists(cluster: &Cluster, db: &str) -> bool {
    cluster
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
        .trim()
        == "1"
}

const TYPES_SETUP: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric, tags text[], created timestamptz DEFAULT now());
CREATE TABLE torture (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  t text, b bytea, j jsonb, f float8, n numeric, m mood, d posint, p pair,
  r int4range, ts timestamp, iv interval, u uuid, arr int[][], bits bit varying(8), x xml);
INSERT INTO items (name, price, tags) SELECT 'item ' || g, g * 1.5, ARRAY['a', 'b' || g] FROM generate_series(1, 200) g;
";

const TORTURE_ROWS: &str = "
INSERT INTO torture (t, b, j, f, n, m, d, p, r, ts, iv, u, arr, bits, x) VALUES
 (E'line1\\nline2; INSERT INTO items VALUES (1);\\n', '\\x00ff10', '{\"a\": [1, \"x''y\"]}', 'NaN', 'NaN', 'happy', 5, ROW(1, 'q''uote'), '[1,5)', '2024-02-29 12:34:56.789', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{1,2},{3,4}}', B'1011', '<a>x</a>'),
 (E'back\\\\slash ''quote'' $$dollar$$ -- not a comment', NULL, 'null', '-Infinity', '1e-30', 'sad', 1, NULL, 'empty', '-infinity', '-1 mon', NULL, '{}', B'', NULL),
 ('ünïcødé ✓ 日本', '\\x', '[]', 1.0000000000000002, '123456789012345678901234567890.123', 'ok', 2147483647, ROW(NULL, NULL), '(,)', 'infinity', '0', NULL, NULL, NULL, '<b/>');
";

#[test]
fn full_restore_equals_the_source() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql("app", &crate::harness::without_missing_xml(TYPES_SETUP));
    let (dir, chain) = init_chain(&cluster, "app");

    // Workload: DML, DDL (a new table, a new column, an index, a function), TRUNCATE, sequences.
    cluster.psql("app", TORTURE_ROWS);
    cluster.psql("app", "UPDATE items SET price = price * 2, tags = tags || 'upd'::text WHERE id % 3 = 0; DELETE FROM items WHERE id % 7 = 0;");
    cluster.psql(
        "app",
        "CREATE TABLE later (k text PRIMARY KEY, v int DEFAULT 7);
         ALTER TABLE items ADD COLUMN note text DEFAULT 'n/a';
         CREATE INDEX items_name ON items (name);
         CREATE FUNCTION add1(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x + 1; END;
         CREATE FUNCTION f_plpgsql() RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
           RETURN 'semi; colon';
         END $f$;",
    );
    cluster.psql(
        "app",
        "INSERT INTO later SELECT 'k' || g, add1(g) FROM generate_series(1, 50) g;",
    );
    cluster.psql("app", "BEGIN; INSERT INTO items (name) VALUES ('in txn'); UPDATE later SET v = v + 100 WHERE k = 'k1'; COMMIT;");
    cluster.psql(
        "app",
        "TRUNCATE later; INSERT INTO later VALUES ('after truncate', 1);",
    );
    cluster.psql("app", "UPDATE torture SET t = t || ' updated', j = '{\"b\": 2}' WHERE id = 1; DELETE FROM torture WHERE id = 2;");
    cluster.psql(
        "app",
        "INSERT INTO items (name) SELECT 'more ' || g FROM generate_series(1, 300) g;",
    );
    cluster.psql("app", "SELECT wal2sql.snapshot_sequences();");
    let text = changes(&cluster, "app");
    let names = write_diffs(&chain, &text, 3, 0);
    assert_eq!(names.len(), 3);

    let out = restore(&cluster, &dir, &["-d", "restored", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("Restoring from chain: "), "{err}");
    assert!(err.contains("✓ Restored base backup (200 rows)"), "{err}");
    assert!(err.contains("✓ Applied 3 differentials"), "{err}");
    for name in &names {
        assert!(err.contains(&format!("  - {name}")), "{err}");
    }
    assert!(err.contains("✓ Synchronized "), "{err}");
    assert!(err.contains("Restore complete (took "), "{err}");

    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
    assert_eq!(sequences(&cluster, "app"), sequences(&cluster, "restored"));
    assert_eq!(schema(&cluster, "app"), schema(&cluster, "restored"));
    assert_eq!(
        cluster.psql("restored", "SELECT add1(41), f_plpgsql()"),
        "42|semi; colon\n"
    );
    // The backup directory was only read.
    for name in &names {
        assert_eq!(
            std::fs::read(chain.join(name)).unwrap().len(),
            std::fs::metadata(chain.join(name)).unwrap().len() as usize
        );
    }

    // Into an existing empty database (no --create): same result.
    cluster.create_database("empty");
    let out = restore(&cluster, &dir, &["-d", "empty"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(cluster.table_digests("app"), cluster.table_digests("empty"));
}

#[test]
fn chain_and_target_refusals_exit_4() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    let id = chain.file_name().unwrap().to_string_lossy()["chain-".len()..].to_string();

    let out = restore(
        &cluster,
        &dir,
        &["-d", "x", "--create", "--chain-id", "20010101T000000Z"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("chain 20010101T000000Z not found"), "{err}");
    assert!(err.contains(&format!("Chains present: {id}.")), "{err}");
    assert!(!db_exists(&cluster, "x"));

    // An incomplete chain is named as such.
    let partial = dir.join("chain-20300101T000000Z");
    std::fs::create_dir(&partial).unwrap();
    let out = restore(
        &cluster,
        &dir,
        &["-d", "x", "--create", "--chain-id", "20300101T000000Z"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("chain 20300101T000000Z is incomplete"),
        "{err}"
    );
    assert!(err.contains("20300101T000000Z (incomplete)"), "{err}");
    // ... and the latest *complete* chain is the default.
    let out = restore(&cluster, &dir, &["-d", "ok", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("Restoring from chain: {id}")));
    std::fs::remove_dir(&partial).unwrap();

    // --create onto an existing database.
    let out = restore(&cluster, &dir, &["-d", "app", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("database \"app\" already exists"), "{err}");
    assert_eq!(cluster.psql("app", "SELECT count(*) FROM t"), "1\n");

    // Without --create: a missing target, a non-empty target.
    let out = restore(&cluster, &dir, &["-d", "nosuch"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("database \"nosuch\" does not exist"), "{err}");
    assert!(err.contains("--create"), "{err}");
    cluster.create_database("busy");
    cluster.psql("busy", "CREATE TABLE keep (a int)");
    let out = restore(&cluster, &dir, &["-d", "busy"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("database \"busy\" is not empty"), "{err}");
    assert!(err.contains("relation public.keep"), "{err}");
    assert!(
        db_exists(&cluster, "busy"),
        "a target we did not create is never dropped"
    );

    // A base that does not match metadata.json is refused before anything is done.
    let base = chain.join("base.sql");
    let original = std::fs::read(&base).unwrap();
    let mut tampered = original.clone();
    tampered.extend_from_slice(b"\n-- extra\n");
    write_private(&base, &tampered);
    let out = restore(&cluster, &dir, &["-d", "y", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("base.sql: is "), "{err}");
    assert!(err.contains("metadata.json records"), "{err}");
    assert!(!db_exists(&cluster, "y"));
    write_private(&base, &original);
}

/// One row per transaction, so row counts tell exactly where a restore stopped.
fn numbered_workload(cluster: &Cluster) -> (PathBuf, PathBuf, String) {
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE n (i int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())",
    );
    let (dir, chain) = init_chain(cluster, "app");
    for i in 1..=12 {
        cluster.psql("app", &format!("INSERT INTO n (i) VALUES ({i})"));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = changes(cluster, "app");
    (dir, chain, text)
}

#[test]
fn up_to_stops_at_the_right_transaction() {
    let cluster = Cluster::start();
    let (dir, chain, text) = numbered_workload(&cluster);
    write_diffs(&chain, &text, 3, 0);
    let txns = transactions(&text);
    assert_eq!(txns.len(), 12);

    // By LSN: up to the 5th transaction's commit.
    let fifth = &txns[4].header;
    let lsn = fifth.commit_lsn.to_string();
    let out = restore(
        &cluster,
        &dir,
        &["-d", "by_lsn", "--create", "--up-to", &lsn],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Chose chain")
            && err.contains("the newest complete chain that starts before it"),
        "{err}"
    );
    assert_eq!(
        cluster.psql("by_lsn", "SELECT count(*), max(i) FROM n"),
        "5|5\n"
    );
    assert!(
        err.contains(&format!("last applied: xid {}", fifth.xid)),
        "{err}"
    );
    assert!(
        err.contains(&format!("next would have been xid {}", txns[5].header.xid)),
        "{err}"
    );

    // By time: the 8th transaction's commit time (inclusive).
    let eighth = pg_scribe::storage::diff_format::format_commit_time(txns[7].header.commit_time);
    let out = restore(
        &cluster,
        &dir,
        &["-d", "by_time", "--create", "--up-to", &eighth],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.psql("by_time", "SELECT count(*), max(i) FROM n"),
        "8|8\n"
    );

    // Before the chain's base: refused.
    let out = restore(
        &cluster,
        &dir,
        &["-d", "early", "--create", "--up-to", "0/10"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("covers --up-to 0/10"), "{err}");
    assert!(!db_exists(&cluster, "early"));
    // ... and with the chain named, the chain's own start is the limit.
    let id = &chain.file_name().unwrap().to_string_lossy()["chain-".len()..];
    let out = restore(
        &cluster,
        &dir,
        &[
            "-d",
            "early",
            "--create",
            "--up-to",
            "0/10",
            "--chain-id",
            id,
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("is before chain"), "{err}");
    assert!(!db_exists(&cluster, "early"));
}

#[test]
fn include_active_ignores_a_torn_tail_and_changes_no_file() {
    let cluster = Cluster::start();
    let (dir, chain, text) = numbered_workload(&cluster);
    let txns = transactions(&text);
    // Transactions 1-6 sealed, 7-9 complete in active.sql, the 10th torn mid-way.
    let sealed_end = txns[5].end as usize;
    write_sealed(
        &chain,
        "diff-20300101T000000Z.sql",
        &text.as_bytes()[..sealed_end],
    );
    let torn_at = txns[9].start as usize + (txns[9].end - txns[9].start) as usize / 2;
    let active = &text.as_bytes()[sealed_end..torn_at];
    write_private(&chain.join("active.sql"), active);

    let out = restore(&cluster, &dir, &["-d", "sealed_only", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(cluster.psql("sealed_only", "SELECT count(*) FROM n"), "6\n");
    // Nothing is left out silently.
    let last = pg_scribe::storage::diff_format::format_commit_time(txns[8].header.commit_time);
    assert!(
        err.contains(&format!(
            "warning: active.sql holds 3 committed transaction(s), up to commit time {last}, that were not applied"
        )),
        "{err}"
    );
    assert!(err.contains("--include-active"), "{err}");

    let out = restore(
        &cluster,
        &dir,
        &["-d", "with_active", "--create", "--include-active"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        cluster.psql("with_active", "SELECT count(*), max(i) FROM n"),
        "9|9\n"
    );
    let ignored = torn_at - txns[9].start as usize;
    assert!(
        err.contains(&format!(
            "ignored the unfinished last transaction (xid {}) of active.sql ({ignored} bytes)",
            txns[9].header.xid
        )),
        "{err}"
    );
    assert!(err.contains("  - active.sql (3 transactions)"), "{err}");
    assert_eq!(
        std::fs::read(chain.join("active.sql")).unwrap(),
        active,
        "active.sql untouched"
    );

    // A sealed diff that is torn is an error, not a silent cut.
    write_private(
        &chain.join("diff-20300101T000001Z.sql"),
        &text.as_bytes()[sealed_end..torn_at],
    );
    let out = restore(&cluster, &dir, &["-d", "torn_sealed", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("diff-20300101T000001Z.sql"), "{err}");
    assert!(!db_exists(&cluster, "torn_sealed"));
}

#[test]
fn a_marker_or_a_failing_statement_stops_the_restore_and_drops_the_new_database() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text)");
    let (dir, chain) = init_chain(&cluster, "app");
    cluster.psql("app", "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    cluster.psql(
        "app",
        "CREATE TABLE nokey (a int); ALTER TABLE nokey REPLICA IDENTITY NOTHING; INSERT INTO nokey VALUES (1)",
    );
    cluster.psql("app", "DELETE FROM nokey");
    cluster.psql("app", "INSERT INTO t VALUES (3, 'c')");
    let text = changes(&cluster, "app");
    let txns = transactions(&text);
    let marker = txns
        .iter()
        .find(|t| text[t.start as usize..t.end as usize].contains("wal2sql: cannot replay"))
        .expect("a marker in the stream")
        .header
        .clone();
    let names = write_diffs(&chain, &text, 2, 0);

    let out = restore(&cluster, &dir, &["-d", "restored", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", marker.xid)), "{err}");
    assert!(
        err.contains("cannot be replayed: wal2sql: cannot replay DELETE"),
        "{err}"
    );
    assert!(names.iter().any(|n| err.contains(n.as_str())), "{err}");
    assert!(
        err.contains("Dropped the partially restored database \"restored\""),
        "{err}"
    );
    assert!(!db_exists(&cluster, "restored"));

    // Up to the transaction before the marker, the same chain restores.
    let before = pg_scribe::lsn::Lsn(marker.commit_lsn.0 - 1).to_string();
    let out = restore(
        &cluster,
        &dir,
        &["-d", "partial", "--create", "--up-to", &before],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(cluster.psql("partial", "SELECT count(*) FROM t"), "2\n");

    // A statement the server rejects: named with the file, xid and statement; nothing after it.
    for name in &names {
        std::fs::remove_file(chain.join(name)).unwrap();
        std::fs::remove_file(chain.join(format!("{name}.manifest.json"))).unwrap();
    }
    let good: Vec<&TxnBounds> = txns.iter().filter(|t| t.header.xid != marker.xid).collect();
    let mut body = String::new();
    for t in &good {
        body.push_str(&text[t.start as usize..t.end as usize]);
    }
    let broken = body.replacen(
        "INSERT INTO public.t (id, v) VALUES ('2', 'b')",
        "INSERT INTO public.t (id, v) VALUES ('1', 'dup')",
        1,
    );
    assert_ne!(broken, body);
    write_sealed(&chain, "diff-20300101T000000Z.sql", broken.as_bytes());
    cluster.create_database("target");
    let out = restore(&cluster, &dir, &["-d", "target"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("duplicate key value violates unique constraint"),
        "{err}"
    );
    assert!(err.contains("diff-20300101T000000Z.sql"), "{err}");
    assert!(
        err.contains(
            "Statements 2 to 3 of the transaction (row inserts merged into one statement): INSERT INTO public.t (id, v) VALUES ('1', 'a'), ('1', 'dup');"
        ),
        "{err}"
    );
    assert!(
        db_exists(&cluster, "target"),
        "a database we did not create is kept"
    );
    assert_eq!(
        cluster.psql("target", "SELECT count(*) FROM t"),
        "0\n",
        "nothing after the failure committed"
    );
}

#[test]
fn always_triggers_and_rules_do_not_fire_twice_and_keep_their_state() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE t2 (id int PRIMARY KEY);
         CREATE TABLE audit (n serial PRIMARY KEY, what text);
         CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO audit (what) VALUES (TG_NAME || ' ' || NEW.id); RETURN NEW; END $$;
         CREATE TRIGGER always_log AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION log_it();
         ALTER TABLE t ENABLE ALWAYS TRIGGER always_log;
         CREATE TRIGGER replica_log AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION log_it();
         ALTER TABLE t ENABLE REPLICA TRIGGER replica_log;
         CREATE TRIGGER to_disable AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION log_it();
         ALTER TABLE t ENABLE ALWAYS TRIGGER to_disable;
         CREATE RULE also_log AS ON INSERT TO t2 DO ALSO INSERT INTO audit (what) VALUES ('rule ' || NEW.id);
         ALTER TABLE t2 ENABLE ALWAYS RULE also_log;",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    cluster.psql(
        "app",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b'); INSERT INTO t2 VALUES (1);",
    );
    // DDL in the stream: a new ALWAYS trigger, one switched off, then more rows.
    cluster.psql(
        "app",
        "CREATE TRIGGER new_always AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION log_it();
         ALTER TABLE t ENABLE ALWAYS TRIGGER new_always;",
    );
    cluster.psql("app", "BEGIN; INSERT INTO t VALUES (3, 'c'); ALTER TABLE t DISABLE TRIGGER to_disable; INSERT INTO t VALUES (4, 'd'); COMMIT;");
    cluster.psql(
        "app",
        "INSERT INTO t VALUES (5, 'e'); INSERT INTO t2 VALUES (2);",
    );
    let text = changes(&cluster, "app");
    write_diffs(&chain, &text, 2, 0);

    let out = restore(&cluster, &dir, &["-d", "restored", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("Disabled 4 ENABLE ALWAYS/REPLICA"), "{err}");
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
    let states = "SELECT string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal";
    assert_eq!(
        cluster.psql("app", states),
        cluster.psql("restored", states)
    );
    assert_eq!(
        cluster.psql("restored", states),
        "always_log=A,new_always=A,replica_log=R,to_disable=D\n"
    );
    let rules = "SELECT string_agg(rulename || '=' || ev_enabled::text, ',') FROM pg_rewrite WHERE rulename = 'also_log'";
    assert_eq!(cluster.psql("restored", rules), "also_log=A\n");
    // And they still work after the restore.
    cluster.psql("restored", "INSERT INTO t VALUES (6, 'f')");
    assert_eq!(
        cluster.psql(
            "restored",
            "SELECT string_agg(what, ',' ORDER BY what) FROM audit WHERE what LIKE '% 6'"
        ),
        "always_log 6,new_always 6\n"
    );
}

#[test]
fn owned_sequences_are_never_left_behind() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE s (id serial PRIMARY KEY, v text);
         CREATE TABLE g (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);
         INSERT INTO s (v) VALUES ('a'), ('b');",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    // No snapshot_sequences() after these: only the rows are in the stream.
    cluster.psql("app", "INSERT INTO s (v) SELECT 'x' FROM generate_series(1, 40); INSERT INTO g DEFAULT VALUES; INSERT INTO g DEFAULT VALUES;");
    let text = changes(&cluster, "app");
    write_diffs(&chain, &text, 1, 0);

    let out = restore(&cluster, &dir, &["-d", "synced", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("✓ Synchronized 2 sequences (2 advanced to their column's maximum)"),
        "{err}"
    );
    assert_eq!(sequences(&cluster, "app"), sequences(&cluster, "synced"));
    assert_eq!(
        cluster.psql("synced", "INSERT INTO s (v) VALUES ('new') RETURNING id"),
        "43\n"
    );

    let out = restore(
        &cluster,
        &dir,
        &["-d", "unsynced", "--create", "--no-sync-sequences"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Synchronized"), "{err}");
    assert_eq!(
        cluster.psql("unsynced", "SELECT last_value FROM s_id_seq"),
        "2\n",
        "left as the base had it"
    );
}

// ---------------------------------------------------------------------------------------------
// From the real streamer's output: `--start` (wal2sql with batch-inserts), `--rotate-diff`.

/// A source `app` with the extension (tables get a replica identity), pgbench's tables and
/// `notes`; `--init` into a new backup directory and `--start` streaming it.
fn streamed_source(cluster: &Cluster, label: &str) -> (PathBuf, PathBuf, Streamer) {
    cluster.pgbench_source();
    cluster.psql(
        "app",
        "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k int UNIQUE, body text, tags text[], price numeric);
         INSERT INTO notes (k, body, tags, price) SELECT g, 'note ' || g, ARRAY['x', 'y''' || g], g / 7.0 FROM generate_series(1, 300) g;
         CREATE TABLE marker (label text PRIMARY KEY);",
    );
    let (dir, chain) = init_chain(cluster, "app");
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &scratch_dir(label).join("streamer.log"),
    );
    streamer.wait_log("Writing to:", 30);
    (dir, chain, streamer)
}

/// Waits until the streamer has written everything committed so far.
fn settle(cluster: &Cluster, chain: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    wait_for_text(chain, &format!("'{label}'"), 60);
}

fn rotate(dir: &Path, compress: Option<&str>) {
    let mut args = vec!["--rotate-diff", "--backup-dir", dir.to_str().unwrap()];
    if let Some(c) = compress {
        args.extend(["--compress", c]);
    }
    let out = pg_scribe(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Row changes of several kinds, in several transactions (round `r`).
fn mixed_dml(cluster: &Cluster, r: u32) {
    cluster.psql(
        "app",
        &format!(
            "INSERT INTO notes (k, body, price) SELECT 1000 * {r} + g, 'round {r} ' || g, g FROM generate_series(1, 40) g;
             UPDATE notes SET body = body || ' u{r}', price = price + 1 WHERE id % 5 = {m};
             DELETE FROM notes WHERE id % 13 = {m};
             BEGIN; UPDATE notes SET k = -k WHERE id % 17 = {m}; INSERT INTO notes (k, body) VALUES (-1000 * {r}, E'tab\\there'); COMMIT;
             UPDATE pgbench_accounts SET abalance = abalance + {r} WHERE aid % 97 = {m};",
            m = r % 5
        ),
    );
    for i in 0..20 {
        cluster.psql(
            "app",
            &format!("UPDATE notes SET price = {i} WHERE id = {}", 7 * i + r),
        );
    }
}

/// A point of the source: its tables' digests, then (right after) the WAL insert position and
/// the clock. No client commits between the three: pgbench is stopped and no backend is active.
struct Instant {
    digests: String,
    lsn: String,
    time: String,
}

fn quiesce_and_snapshot(cluster: &Cluster, load: &Background) -> Instant {
    load.pause();
    // A COMMIT pgbench sent before it stopped may still be running in its backend; a backend
    // waiting for a lock held by a stopped client's open transaction commits nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cluster
        .psql(
            "app",
            // A COMMIT still on its way through the socket is not visible as 'active' yet:
            // also ask for every pgbench backend to have been still for a while.
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND ((state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock')
                     OR (application_name = 'pgbench' AND state_change > clock_timestamp() - interval '300 ms'))",
        )
        .trim()
        != "0"
    {
        assert!(std::time::Instant::now() < deadline, "pgbench never paused");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let digests = cluster.table_digests("app");
    let at = cluster.psql(
        "app",
        // --up-to LSN is inclusive (like recovery_target_lsn): a commit record starting exactly
        // at the insert position is the next one, so the instant is one byte before it.
        "SELECT pg_current_wal_insert_lsn() - 1, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    let (lsn, time) = at.trim().split_once('|').unwrap();
    let instant = Instant {
        digests,
        lsn: lsn.to_string(),
        time: time.to_string(),
    };
    load.resume();
    instant
}

#[test]
fn up_to_restores_the_source_state_at_each_instant() {
    let cluster = Cluster::start();
    let (dir, chain, streamer) = streamed_source(&cluster, "upto-stream");
    let load = Background(
        std::process::Command::new(bindir().join("pgbench"))
            .args(["-n", "-c", "2", "-T", "120"])
            .envs(cluster.env("app"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut instants = Vec::new();
    for r in 1..=4 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        mixed_dml(&cluster, r);
        instants.push(quiesce_and_snapshot(&cluster, &load));
        if r == 2 {
            settle(&cluster, &chain, "rotation-2");
            rotate(&dir, None);
        }
        if r == 3 {
            settle(&cluster, &chain, "rotation-3");
            rotate(&dir, Some("zstd"));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(load);
    settle(&cluster, &chain, "end");
    rotate(&dir, None);
    assert_eq!(streamer.stop(), Some(0));
    let final_digests = cluster.table_digests("app");
    for pair in instants.windows(2) {
        assert_ne!(
            pair[0].digests, pair[1].digests,
            "the workload changed nothing"
        );
    }

    for (i, at) in instants.iter().enumerate() {
        for (form, value) in [("lsn", &at.lsn), ("time", &at.time)] {
            let db = format!("at{i}_{form}");
            let out = restore(&cluster, &dir, &["-d", &db, "--create", "--up-to", value]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(0), "--up-to {value}: {err}");
            assert!(err.contains("next would have been xid"), "{err}");
            assert_eq!(
                cluster.table_digests(&db),
                at.digests,
                "--up-to {value} (instant {i}) differs from the source at that instant"
            );
        }
    }
    // Everything: the source as it is now.
    let out = restore(&cluster, &dir, &["-d", "all", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(cluster.table_digests("all"), final_digests);
}

#[test]
fn compressed_diffs_from_the_streamer_restore_to_the_source() {
    let cluster = Cluster::start();
    let (dir, chain, streamer) = streamed_source(&cluster, "zstd-stream");
    for (r, compress) in [
        (1, Some("zstd")),
        (2, Some("gzip")),
        (3, Some("lz4")),
        (4, None),
    ] {
        mixed_dml(&cluster, r);
        cluster.psql(
            "app",
            &format!("INSERT INTO notes (k, body) SELECT 100000 * {r} + g, repeat('z', g % 50) FROM generate_series(1, 5000) g"),
        );
        settle(&cluster, &chain, &format!("round-{r}"));
        rotate(&dir, compress);
    }
    // The last changes stay in active.sql.
    mixed_dml(&cluster, 5);
    settle(&cluster, &chain, "active");
    assert_eq!(streamer.stop(), Some(0));
    let names: Vec<String> = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("diff-"))
        .collect();
    for ext in [".sql.zst", ".sql.gz", ".sql.lz4", ".sql"] {
        assert!(
            names.iter().any(|n| n.ends_with(ext)),
            "no {ext} diff: {names:?}"
        );
    }

    let out = restore(
        &cluster,
        &dir,
        &["-d", "restored", "--create", "--include-active"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("✓ Applied 5 differentials"), "{err}");
    assert_eq!(
        cluster.table_digests("restored"),
        cluster.table_digests("app")
    );
    assert_eq!(sequences(&cluster, "restored"), sequences(&cluster, "app"));
}

/// Transactions without DDL are applied together (one transaction of the target for many of
/// the source). When such a group fails, its transactions are replayed one by one: the error
/// names the exact transaction and statement, and every transaction before it is committed.
#[test]
fn a_failure_inside_a_group_is_reported_exactly_and_nothing_after_it_commits() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text)");
    let (dir, chain) = init_chain(&cluster, "app");
    for i in 1..=30 {
        cluster.psql("app", &format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    cluster.psql("app", "DELETE FROM t WHERE id <= 10");
    let text = changes(&cluster, "app");
    let txns = transactions(&text);
    assert_eq!(txns.len(), 31);
    let bad = &txns[19];
    let piece = &text[bad.start as usize..bad.end as usize];
    let broken = text.replacen(
        piece,
        &piece.replace("VALUES ('20', 'v20')", "VALUES ('5', 'dup')"),
        1,
    );
    assert_ne!(broken, text);
    write_sealed(&chain, "diff-20300101T000000Z.sql", broken.as_bytes());

    cluster.create_database("target");
    let out = restore(&cluster, &dir, &["-d", "target"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", bad.header.xid)), "{err}");
    assert!(
        err.contains(
            "Statement 2 of the transaction: INSERT INTO public.t (id, v) VALUES ('5', 'dup');"
        ),
        "{err}"
    );
    assert!(err.contains("duplicate key value"), "{err}");
    assert_eq!(
        cluster.psql("target", "SELECT count(*), max(id) FROM t"),
        "19|19\n",
        "the 19 transactions before the failing one are committed, nothing after it"
    );

    // Unbroken, the same transactions (inserts, then deletes merged by key) restore exactly.
    write_sealed(&chain, "diff-20300101T000000Z.sql", text.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "whole", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(cluster.table_digests("whole"), cluster.table_digests("app"));
}

/// `text` with `stmt` added to the transaction `t` (before its COMMIT): a write the source never
/// made, as if the target had been changed after its base.
fn with_extra_statement(text: &str, t: &TxnBounds, stmt: &str) -> String {
    let piece = &text[t.start as usize..t.end as usize];
    let at = piece.rfind("COMMIT;").expect("a COMMIT");
    let changed = format!("{}{stmt}\n{}", &piece[..at], &piece[at..]);
    text.replacen(piece, &changed, 1)
}

#[test]
fn a_row_change_that_matches_no_row_on_the_target_stops_the_restore() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 40) g;
         CREATE TABLE f (a int, b text);
         ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO f VALUES (1, 'x'), (1, 'x'), (2, 'y');",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    for i in 41..=60 {
        cluster.psql("app", &format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    cluster.psql("app", "UPDATE t SET v = 'changed' WHERE id = 5");
    for i in 61..=70 {
        cluster.psql("app", &format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    cluster.psql("app", "DELETE FROM t WHERE id BETWEEN 10 AND 20");
    cluster.psql("app", "DELETE FROM f WHERE a = 1");
    cluster.psql("app", "INSERT INTO t VALUES (71, 'last')");
    let text = changes(&cluster, "app");
    let txns = transactions(&text);
    assert_eq!(txns.len(), 34, "{text}");
    let first = &txns[0];
    let (update, delete, full) = (&txns[20], &txns[31], &txns[32]);
    assert!(text[update.start as usize..update.end as usize].contains("'changed'"));
    assert!(
        text[delete.start as usize..delete.end as usize]
            .contains("WHERE id OPERATOR(pg_catalog.=) '15'")
    );
    assert!(
        text[full.start as usize..full.end as usize]
            .contains("ctid OPERATOR(pg_catalog.=) (SELECT ctid")
    );
    let file = "diff-20300101T000000Z.sql";

    // The row the UPDATE changes is gone from the target: exit 4, the transaction and the
    // statement named, the ones before it committed, nothing after it.
    let tampered = with_extra_statement(
        &text,
        first,
        "DELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '5';",
    );
    write_sealed(&chain, file, tampered.as_bytes());
    cluster.create_database("target");
    let out = restore(&cluster, &dir, &["-d", "target"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(&format!(
            "transaction xid={} commit_lsn={}",
            update.header.xid, update.header.commit_lsn
        )),
        "{err}"
    );
    assert!(err.contains(file), "{err}");
    assert!(
        err.contains("the statement affected 0 rows on the target, 1 row in the source"),
        "{err}"
    );
    assert!(
        err.contains(
            "Statement 2 of the transaction: UPDATE ONLY public.t SET id = '5', v = 'changed' WHERE id OPERATOR(pg_catalog.=) '5';"
        ),
        "{err}"
    );
    assert!(
        err.contains("The target differs from the source at this point"),
        "{err}"
    );
    assert_eq!(
        cluster.psql("target", "SELECT count(*), max(id) FROM t"),
        "59|60\n",
        "the transactions before the UPDATE are committed (row 5 deleted), nothing after it"
    );

    // A DELETE merged by key (11 keys in one `IN`) of which one row is missing: the group is
    // replayed one by one and the exact statement named; with --create the database goes.
    let tampered = with_extra_statement(
        &text,
        first,
        "DELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '15';",
    );
    write_sealed(&chain, file, tampered.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "created", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", delete.header.xid)), "{err}");
    assert!(
        err.contains("Statement 7 of the transaction: DELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '15';"),
        "{err}"
    );
    assert!(
        err.contains("affected 0 rows on the target, 1 row in the source"),
        "{err}"
    );
    assert!(
        err.contains("Dropped the partially restored database \"created\""),
        "{err}"
    );
    assert!(!db_exists(&cluster, "created"));

    // REPLICA IDENTITY FULL: one of two identical rows already gone, the second DELETE finds
    // none.
    let tampered = with_extra_statement(
        &text,
        first,
        "DELETE FROM ONLY public.f WHERE ctid = (SELECT ctid FROM ONLY public.f WHERE a = '1' LIMIT 1);",
    );
    write_sealed(&chain, file, tampered.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "created", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", full.header.xid)), "{err}");
    assert!(
        err.contains("Statement 3 of the transaction: DELETE FROM ONLY public.f WHERE ctid"),
        "{err}"
    );

    // Untouched, the same chain restores to the source.
    write_sealed(&chain, file, text.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "whole", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(cluster.table_digests("whole"), cluster.table_digests("app"));
}

#[test]
fn no_sync_sequences_leaves_out_the_recorded_sequence_values() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE EXTENSION wal2sql;
         CREATE TABLE s (id serial PRIMARY KEY, v text);
         CREATE SEQUENCE free;",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    cluster.psql(
        "app",
        "INSERT INTO s (v) VALUES ('a'), ('b'); SELECT nextval('free') FROM generate_series(1, 10);",
    );
    cluster.psql("app", "SELECT wal2sql.snapshot_sequences()");
    cluster.psql("app", "INSERT INTO s (v) VALUES ('c')");
    let text = changes(&cluster, "app");
    assert!(
        text.contains("SELECT pg_catalog.setval('public.free', 10, true);"),
        "{text}"
    );
    write_diffs(&chain, &text, 1, 0);

    let out = restore(&cluster, &dir, &["-d", "synced", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.psql("synced", "SELECT last_value, is_called FROM free"),
        "10|t\n"
    );
    assert_eq!(
        cluster.psql("synced", "SELECT last_value FROM s_id_seq"),
        "3\n"
    );

    // Neither the recorded values nor the max(column) fix: the sequences stay as in the base.
    let out = restore(
        &cluster,
        &dir,
        &["-d", "unsynced", "--create", "--no-sync-sequences"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Synchronized"), "{err}");
    assert_eq!(
        cluster.psql("unsynced", "SELECT last_value, is_called FROM free"),
        "1|f\n"
    );
    assert_eq!(
        cluster.psql("unsynced", "SELECT last_value, is_called FROM s_id_seq"),
        "1|f\n"
    );
    assert_eq!(
        cluster.table_digests("unsynced"),
        cluster.table_digests("app")
    );
}

/// Consecutive UPDATEs of a table by key are applied as one `UPDATE … FROM (VALUES …)`: with
/// values of every kind of type (typmods, domains, composites, arrays, NULLs), with keys that
/// repeat (the batch closes) and keys that change (never merged: a later UPDATE may name the
/// row by its new key), with two-column keys, and inside a transaction with DDL (merged in a
/// savepoint). The restore equals the source; a merged UPDATE that misses its row is reported
/// exactly (the statement as written) after the group is replayed one by one.
#[test]
fn merged_updates_restore_to_the_source_and_misses_are_reported_exactly() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TYPE pair AS (a int, b text);
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE w (id int PRIMARY KEY, v varchar(12), n numeric(8,2), iv interval minute to second,
                         d posint, p pair, arr int[], m mood, c char(4), ts timestamp(0), note text);
         INSERT INTO w SELECT g, 'v' || g, g / 3.0, make_interval(mins => g % 50, secs => g / 7.0),
                              g, ROW(g, 'p' || g)::pair, ARRAY[g, -g], 'ok', 'c', '2024-01-01', NULL
           FROM generate_series(1, 200) g;
         CREATE TABLE k2 (a int, b text, v text, PRIMARY KEY (a, b));
         INSERT INTO k2 SELECT g % 10, 'b' || g, 'x' FROM generate_series(1, 100) g;",
    );
    let (dir, chain) = init_chain(&cluster, "app");
    // Single-row UPDATE transactions (applied together, consecutive), keys repeating.
    for i in 0..120 {
        let id = 1 + (i * 37) % 90;
        cluster.psql(
            "app",
            &format!(
                "UPDATE w SET v = 'u{i}', n = n + 0.005, iv = iv + interval '1.5 seconds', d = d + 1,
                              p = ROW({i}, E'q''\\\\{i}')::pair, arr = arr || {i}, m = 'happy', c = 'ab',
                              ts = '2024-02-29 12:34:56.6', note = CASE WHEN {i} % 3 = 0 THEN NULL ELSE 'n{i}' END
                  WHERE id = {id}"
            ),
        );
    }
    cluster.psql(
        "app",
        // One transaction: many rows, then keys moved and rows named by their new keys (and a
        // key reused by another row), then two-column keys.
        "BEGIN;
         UPDATE w SET note = 'many' || id WHERE id BETWEEN 100 AND 160;
         UPDATE w SET id = id + 1000 WHERE id BETWEEN 161 AND 170;
         UPDATE w SET note = 'moved' WHERE id BETWEEN 1161 AND 1170;
         UPDATE w SET id = 2000 WHERE id = 171;
         UPDATE w SET id = 171 WHERE id = 172;
         UPDATE w SET note = 'was 172' WHERE id = 171;
         UPDATE w SET note = 'was 171' WHERE id = 2000;
         UPDATE k2 SET v = 'y' || a || b WHERE a < 5;
         COMMIT;",
    );
    cluster.psql(
        "app",
        // DDL and row changes in one transaction: sent in segments, merged in a savepoint.
        "BEGIN;
         ALTER TABLE w ADD COLUMN extra text;
         UPDATE w SET extra = 'e' || id, note = NULL WHERE id BETWEEN 173 AND 200;
         COMMIT;",
    );
    cluster.psql(
        "app",
        // Keys moved after rows of the same shape, in a group of its own (a wrong merge would
        // keep the old keys with every row count right).
        "BEGIN;
         UPDATE w SET note = 'last' WHERE id BETWEEN 1 AND 5;
         UPDATE w SET id = id + 3000 WHERE id BETWEEN 6 AND 8;
         COMMIT;",
    );
    let text = changes(&cluster, "app");
    let txns = transactions(&text);
    assert_eq!(txns.len(), 123, "{text}");
    let file = "diff-20300101T000000Z.sql";
    write_sealed(&chain, file, text.as_bytes());

    // Every statement the replay sends is in the target's server log: the merged forms are used.
    cluster.create_database("target");
    cluster.psql(
        "postgres",
        "ALTER DATABASE target SET log_min_duration_statement = 0",
    );
    let out = restore(&cluster, &dir, &["-d", "target"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    cluster.psql("postgres", "ALTER DATABASE target RESET ALL");
    assert_eq!(
        cluster.table_digests("target"),
        cluster.table_digests("app")
    );
    let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap();
    for merged in [
        "UPDATE ONLY public.w AS pg_scribe_t SET ",
        "UPDATE ONLY public.k2 AS pg_scribe_t SET a = pg_scribe_v.k1, b = pg_scribe_v.k2, v = pg_scribe_v.s3 FROM (VALUES ((NULL::public.k2).a, (NULL::public.k2).b, (NULL::public.k2).v), ",
        "SAVEPOINT pg_scribe_merge;",
    ] {
        assert!(log.contains(merged), "not sent: {merged}");
    }

    // The row of the 50th UPDATE (a merged one) is gone from the target: the group is replayed
    // one by one and the UPDATE named as written.
    let victim = &txns[49];
    let update = text[victim.start as usize..victim.end as usize]
        .lines()
        .find(|l| l.starts_with("UPDATE ONLY public.w SET"))
        .unwrap()
        .to_string();
    let key = update
        .rsplit_once(" WHERE ")
        .unwrap()
        .1
        .trim_end_matches(';');
    let tampered = with_extra_statement(
        &text,
        &txns[0],
        &format!("DELETE FROM ONLY public.w WHERE {key};"),
    );
    write_sealed(&chain, file, tampered.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "missing", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", victim.header.xid)), "{err}");
    assert!(
        err.contains(&format!(
            "Statement 2 of the transaction: {}",
            &update[..150]
        )),
        "{err}"
    );
    assert!(
        err.contains("the statement affected 0 rows on the target, 1 row in the source"),
        "{err}"
    );

    // The same in the transaction with DDL (merged inside a savepoint, sent again as written).
    let ddl = &txns[121];
    let tampered = with_extra_statement(
        &text,
        &txns[0],
        "DELETE FROM ONLY public.w WHERE id OPERATOR(pg_catalog.=) '190';",
    );
    write_sealed(&chain, file, tampered.as_bytes());
    let out = restore(&cluster, &dir, &["-d", "missing", "--create"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!("xid={}", ddl.header.xid)), "{err}");
    assert!(
        err.contains("of the transaction: UPDATE ONLY public.w SET id = '190', "),
        "{err}"
    );
    assert!(
        err.contains("the statement affected 0 rows on the target, 1 row in the source"),
        "{err}"
    );
}
