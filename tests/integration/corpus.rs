//! Fidelity on SQL written by others (tests/corpus/): DDL mixed with rows, temporary objects,
//! roles made and dropped between rotations, odd session settings, failing statements and
//! rollbacks, run by psql as a user would; streamed across a rotation and a new chain, the
//! newest chain restored onto a fresh server equals the source (tables, schema, roles).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    Cluster, Streamer, bindir, newest_chain, pg_scribe, scratch_dir, stderr, wait_for_text,
};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

/// `--init` of database `app` into a fresh backup directory, and a streamer on it (status and
/// fsync every second) that is writing.
fn init_and_stream(cluster: &Cluster, name: &str) -> (PathBuf, Streamer) {
    let dir = scratch_dir(name).join("backups");
    let out = pg_scribe(
        &[
            "--init",
            "-d",
            "app",
            "--backup-dir",
            dir.to_str().unwrap(),
            "--slot",
            "s",
        ],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &dir.with_extension("log"),
    );
    streamer.wait_log("Writing to:", 30);
    (dir, streamer)
}

/// Runs a corpus part with psql as a user would: errors are reported and skipped.
fn run_part(cluster: &Cluster, name: &str) {
    let out = Command::new(bindir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-h"])
        .arg(&cluster.socket_dir)
        .args([
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-f",
        ])
        .arg(corpus(name))
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql -f");
    assert!(out.status.success(), "{name}: {}", stderr(&out));
}

fn settle(cluster: &Cluster, chain: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    wait_for_text(chain, label, 120);
}

/// The schema as pg_dump shows it (the database's own name left out).
fn schema(cluster: &Cluster, db: &str) -> String {
    let out = Command::new(bindir().join("pg_dump"))
        .args(["-s", "--no-comments", "-h"])
        .arg(&cluster.socket_dir)
        .args(["-p", &cluster.port.to_string(), "-U", "postgres", "-d", db])
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "pg_dump: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.contains("wal2sql")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Roles (but the bootstrap superuser), their attributes and memberships.
fn roles(cluster: &Cluster) -> String {
    cluster.psql(
        "postgres",
        "SELECT r.rolname || ' ' || r.rolcanlogin || r.rolcreaterole || r.rolconnlimit || ' ' ||
                coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                            FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                           WHERE m.member = r.oid), '')
           FROM pg_roles r WHERE r.rolname NOT LIKE 'pg\\_%' AND r.rolname <> 'postgres'
          ORDER BY 1",
    )
}

#[test]
fn corpus_streamed_across_rotations_and_a_new_chain_restores_equal() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql("app", "CREATE TABLE marker (label text PRIMARY KEY)");
    let (dir, streamer) = init_and_stream(&cluster, "corpus");

    run_part(&cluster, "part0.sql");
    run_part(&cluster, "part1.sql");
    settle(&cluster, &newest_chain(&dir), "part1-done");
    let out = pg_scribe(
        &["--rotate-diff", "--backup-dir", dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    run_part(&cluster, "part2.sql");
    settle(&cluster, &newest_chain(&dir), "part2-done");
    let out = pg_scribe(
        &["--new-chain", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    run_part(&cluster, "part3.sql");
    settle(&cluster, &newest_chain(&dir), "part3-done");
    // Sealed: a restore leaves the active differential out.
    let out = pg_scribe(
        &["--rotate-diff", "--backup-dir", dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));

    let fresh = Cluster::start();
    let out = pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            "recovered",
            "--create",
        ],
        &fresh.env("postgres"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.table_digests("app"),
        fresh.table_digests("recovered"),
        "tables differ"
    );
    assert_eq!(
        schema(&cluster, "app"),
        schema(&fresh, "recovered"),
        "schema differs"
    );
    assert_eq!(roles(&cluster), roles(&fresh), "roles differ");
}

/// `--keep-going`: a transaction the target refuses (here wal2sql's marker for a permanent
/// table over a temporary type, then the rows of that table; once small, once large enough to be
/// sent in parts) is skipped and listed, everything else applies, the exit code is 4 and the database stays. Without it, the restore stops at
/// the marker and drops the database it created.
#[test]
fn keep_going_skips_failing_transactions_and_lists_them() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE marker (label text PRIMARY KEY); CREATE TABLE kept (id int PRIMARY KEY)",
    );
    let (dir, streamer) = init_and_stream(&cluster, "keepgoing");
    cluster.psql(
        "app",
        "INSERT INTO kept VALUES (1);
         CREATE TYPE pg_temp.tt AS (a int);
         CREATE TABLE over_temp (c pg_temp.tt, id int);
         INSERT INTO over_temp VALUES (NULL, 1);
         INSERT INTO kept VALUES (2);",
    );
    cluster.psql("app", "INSERT INTO kept VALUES (3)");
    // a transaction large enough to be sent in parts, refused in its first part
    cluster.psql(
        "app",
        "CREATE TYPE pg_temp.tt AS (a int);
         CREATE TABLE big_over_temp (c pg_temp.tt, id int, pad text);
         INSERT INTO big_over_temp SELECT NULL, g, repeat('x', 100) FROM generate_series(1, 100000) g;",
    );
    cluster.psql("app", "INSERT INTO kept VALUES (4)");
    settle(&cluster, &newest_chain(&dir), "done");
    let out = pg_scribe(
        &["--rotate-diff", "--backup-dir", dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));
    let written: u64 = crate::harness::chain_diffs(&newest_chain(&dir), false)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        written > 8 << 20,
        "the large transaction must exceed the engine's 8 MB part: {written} bytes"
    );

    let fresh = Cluster::start();
    let restore = |db: &str, keep_going: bool| {
        let mut args = vec![
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            db,
            "--create",
        ];
        if keep_going {
            args.push("--keep-going");
        }
        pg_scribe(&args, &fresh.env("postgres"))
    };
    let out = restore("stopped", false);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        fresh
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'stopped'"
            )
            .trim(),
        "0"
    );

    let out = restore("kept_going", true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("warning: skipped: "), "{err}");
    assert!(err.contains("cannot replay transaction"), "{err}");
    assert!(
        err.contains("2 transaction(s) could not be applied and were skipped"),
        "{err}"
    );
    assert_eq!(
        fresh
            .psql(
                "kept_going",
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM kept"
            )
            .trim(),
        "3,4"
    );
}

/// Roles made in another database of the source after the chain's base are in neither the
/// globals nor the stream: the restore creates each as a NOLOGIN placeholder when the stream
/// first refers to it, says so, and drops it at the end when nothing depends on it.
#[test]
fn roles_made_elsewhere_get_placeholders() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE marker (label text PRIMARY KEY); CREATE TABLE t (id int PRIMARY KEY)",
    );
    let (dir, streamer) = init_and_stream(&cluster, "placeholders");
    // made in another database: not captured
    cluster.psql(
        "postgres",
        "CREATE ROLE elsewhere_kept; CREATE ROLE elsewhere_gone",
    );
    cluster.psql("app", "GRANT SELECT ON t TO elsewhere_kept");
    cluster.psql("app", "GRANT INSERT ON t TO elsewhere_gone");
    cluster.psql("app", "REVOKE INSERT ON t FROM elsewhere_gone");
    cluster.psql("app", "INSERT INTO t VALUES (1)");
    settle(&cluster, &newest_chain(&dir), "done");
    // No rotation: its globals dump would have the roles (the restore reads active.sql).
    assert_eq!(streamer.stop(), Some(0));

    let fresh = Cluster::start();
    let out = pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            "recovered",
            "--create",
            "--include-active",
        ],
        &fresh.env("postgres"),
    );
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("created placeholder role \"elsewhere_kept\""),
        "{text}"
    );
    assert!(
        text.contains("dropped placeholder role \"elsewhere_gone\""),
        "{text}"
    );
    assert!(
        text.contains("kept placeholder role \"elsewhere_kept\""),
        "{text}"
    );
    assert_eq!(
        fresh
            .psql(
                "recovered",
                "SELECT has_table_privilege('elsewhere_kept', 't', 'SELECT'),
                        (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'elsewhere_kept'),
                        (SELECT count(*) FROM pg_roles WHERE rolname = 'elsewhere_gone')"
            )
            .trim(),
        "t|f|0"
    );
    assert_eq!(
        cluster.table_digests("app"),
        fresh.table_digests("recovered")
    );
}
