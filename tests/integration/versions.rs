//! Across major versions, the promise of SQL-text backups: a chain taken from a PostgreSQL 15
//! server restores into an 18 one and compares equal; the other way round the restore either
//! compares equal too or fails naming what the older server does not understand. Both versions
//! must be installed (scripts/install-deps.sh) with wal2sql in each; otherwise the tests say why
//! they skip.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Cluster, Streamer, pg_scribe, scratch_dir, stderr, wait_for_text};

/// The connection environment of `cluster`, and its own client programs for pg_scribe
/// (`make test` exports the default server's PG_BINDIR, which would be the other version's).
fn env(cluster: &Cluster, db: &str) -> Vec<(String, String)> {
    let mut env = cluster.env(db);
    env.push(("PG_BINDIR".into(), cluster.bindir.display().to_string()));
    env
}

/// Clusters of both versions with wal2sql in each, or None after saying why the test skips.
fn clusters(source: u32, target: u32, test: &str) -> Option<(Cluster, Cluster)> {
    let src = Cluster::start_version(source, test)?;
    let dst = Cluster::start_version(target, test)?;
    for c in [&src, &dst] {
        if !wal2sql_loaded(c) {
            eprintln!(
                "skipped {test}: wal2sql is not installed for PostgreSQL {} (make test-extension PG_VERSION={})",
                c.major(),
                c.major()
            );
            return None;
        }
    }
    Some((src, dst))
}

fn wal2sql_loaded(cluster: &Cluster) -> bool {
    cluster
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'wal2sql'",
        )
        .trim()
        == "1"
}

/// Types both versions have (no xml: the PostgreSQL 18 of install-pg18.sh has no libxml).
const SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE notes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  body text, tags text[], at timestamptz DEFAULT now(), price numeric, m mood, d posint,
  r int4range, mr int4multirange, j jsonb, u uuid, b bytea, iv interval, bits bit varying(8));
INSERT INTO notes (body, tags, price, m, d, r, mr, j, u, b, iv, bits)
  SELECT 'note ' || g || E'\\n''quoted''', ARRAY['a', 'b' || g], g / 7.0, 'happy', g, int4range(g, g + 5),
         int4multirange(int4range(1, g + 1)), jsonb_build_object('g', g, 'x', ARRAY[g, NULL]),
         md5(g::text)::uuid, decode(md5(g::text), 'hex'), make_interval(days => g), B'1011'
    FROM generate_series(1, 300) g;
";

fn pgbench(cluster: &Cluster, args: &[&str]) {
    let out = std::process::Command::new(cluster.bindir.join("pgbench"))
        .args(args)
        .envs(cluster.env("app"))
        .output()
        .expect("pgbench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A chain of `app` on `src`: --init, --start, pgbench and DDL with a --rotate-diff between
/// them, a marker streamed, the streamer stopped. Returns the backup directory.
fn take_chain(src: &Cluster) -> PathBuf {
    src.pgbench_source();
    src.psql("app", SCHEMA);
    let dir = scratch_dir("versions").join("backups");
    let d = dir.to_str().unwrap();
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", d, "--slot", "s"],
        &env(src, "app"),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let log = dir.parent().unwrap().join("streamer.log");
    let mut streamer = Streamer::start(
        &["--backup-dir", d, "-s", "1", "-F", "1"],
        &env(src, "app"),
        &log,
    );
    streamer.wait_log("Writing to:", 60);
    pgbench(src, &["-n", "-c", "2", "-t", "200"]);
    src.psql(
        "app",
        "ALTER TABLE notes ADD COLUMN rating int DEFAULT 3;
         UPDATE notes SET rating = id % 5, body = body || '!' WHERE id % 3 = 0;
         DELETE FROM notes WHERE id % 10 = 0;
         CREATE TABLE later (k int PRIMARY KEY, v text);
         INSERT INTO later SELECT g, md5(g::text) FROM generate_series(1, 100) g;",
    );
    let out = pg_scribe(&["--rotate-diff", "--backup-dir", d], &env(src, "app"));
    assert_eq!(out.status.code(), Some(0), "rotate: {}", stderr(&out));
    pgbench(src, &["-n", "-c", "2", "-t", "100"]);
    src.psql("app", "INSERT INTO later VALUES (0, 'the end')");
    wait_for_text(&crate::harness::newest_chain(&dir), "the end", 60);
    assert_eq!(
        streamer.stop(),
        Some(0),
        "streamer: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    dir
}

fn restore(dst: &Cluster, dir: &Path) -> Output {
    pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            "restored",
            "--create",
            "--include-active",
        ],
        &env(dst, "postgres"),
    )
}

#[test]
fn a_chain_from_15_restores_into_18_and_compares_equal() {
    let Some((src, dst)) = clusters(
        15,
        18,
        "a_chain_from_15_restores_into_18_and_compares_equal",
    ) else {
        return;
    };
    let dir = take_chain(&src);
    let out = restore(&dst, &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "restore 15 → 18: {}",
        stderr(&out)
    );
    let source = src.table_digests("app");
    assert_eq!(source.lines().count(), 6, "{source}");
    assert_eq!(source, dst.table_digests("restored"));
}

/// What a PostgreSQL 18 chain holds that 15 does not understand makes the restore fail with
/// psql's own error naming it (exit 4), never a partial database reported as restored.
#[test]
fn a_chain_from_18_into_15_restores_equal_or_names_what_15_lacks() {
    let Some((src, dst)) = clusters(
        18,
        15,
        "a_chain_from_18_into_15_restores_equal_or_names_what_15_lacks",
    ) else {
        return;
    };
    let dir = take_chain(&src);
    let out = restore(&dst, &dir);
    let err = stderr(&out);
    if out.status.code() == Some(0) {
        assert_eq!(src.table_digests("app"), dst.table_digests("restored"));
        eprintln!("18 → 15: restored and compared equal");
    } else {
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("pg_scribe: error: "), "{err}");
        assert!(
            err.contains("hint: The chain was taken from PostgreSQL 18;"),
            "{err}"
        );
        eprintln!("18 → 15: refused as expected:\n{err}");
    }
}

/// PostgreSQL 18 invalidates a slot left idle longer than `idle_replication_slot_timeout`:
/// `--init` warns about the setting, `--status` warns while the slot is idle, then names the
/// reason (not "lost WAL"; exit 3 all the same), and `--start` refuses with exit 3 saying why.
#[test]
fn idle_replication_slot_timeout_of_18_is_reported_by_status_and_start() {
    let test = "idle_replication_slot_timeout_of_18_is_reported_by_status_and_start";
    let Some(pg) = Cluster::start_version(18, test) else {
        return;
    };
    if !wal2sql_loaded(&pg) {
        eprintln!("skipped {test}: wal2sql is not installed for PostgreSQL 18");
        return;
    }
    pg.create_database("app");
    pg.psql("app", "CREATE TABLE t (id int PRIMARY KEY)");
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET idle_replication_slot_timeout = '1h'",
    );
    pg.reload();
    let dir = scratch_dir("idle").join("backups");
    let d = dir.to_str().unwrap();
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", d, "--slot", "s"],
        &env(&pg, "app"),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "! idle_replication_slot_timeout = 1h: a streamer outage that long invalidates the slot"
        ),
        "{}",
        stderr(&out)
    );
    let status = || {
        let out = pg_scribe(&["--status", "--backup-dir", d, "--json"], &env(&pg, "app"));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
        (out.status.code(), report)
    };
    let codes = |r: &serde_json::Value| -> Vec<String> {
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap().to_string())
            .collect()
    };

    let (code, report) = status();
    assert_eq!(code, Some(10));
    assert!(
        codes(&report).contains(&"idle_timeout".to_string()),
        "{report}"
    );
    assert_eq!(report["slot"]["idle_timeout_secs"], 3600);
    assert!(
        report["slot"]["inactive_since"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    pg.psql(
        "postgres",
        "ALTER SYSTEM SET idle_replication_slot_timeout = '1s'",
    );
    pg.reload();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg
        .psql(
            "postgres",
            "CHECKPOINT; SELECT invalidation_reason FROM pg_replication_slots",
        )
        .trim()
        != "idle_timeout"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never invalidated"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, report) = status();
    assert_eq!(code, Some(3), "an invalidated slot is critical");
    assert_eq!(report["slot"]["invalidation_reason"], "idle_timeout");
    assert_eq!(report["slot"]["wal_status"], "lost");
    let codes = codes(&report);
    assert!(codes.contains(&"slot_invalidated".to_string()), "{report}");
    assert!(!codes.contains(&"wal_lost".to_string()), "{report}");

    let out = pg_scribe(&["--start", "--backup-dir", d], &env(&pg, "app"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "replication slot \"s\" has been invalidated: it was inactive longer than idle_replication_slot_timeout\n"
        ),
        "{}",
        stderr(&out)
    );
}
