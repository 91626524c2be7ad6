//! `--status` end to end: a healthy streaming setup (exit 0, the sections of doc/status.md, the JSON
//! checked field by field), a streamer that stopped while writes go on (exit 10: lag, inactive
//! slot, stale pidfile), a missing slot (3), an unreachable server (2), and the offline
//! directory report with an incomplete chain.
//!
//! A streamer is simulated without `--start`: the test process takes the pidfile's lock with
//! `PidFile::acquire`, and the pidfile names a `pg_recvlogical` started under the program name
//! `pg_scribe_test_streamer` (what the probe checks in `/proc/<pid>/cmdline`), which keeps the
//! slot active and confirms what it receives.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pg_scribe::storage::backup_dir::BackupDir;
use pg_scribe::storage::pidfile::PidFile;
use serde_json::Value;

use crate::harness::{Cluster, SUPERUSER, Streamer, bindir, pg_scribe, scratch_dir, stderr};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster with database `app` and a backup directory initialized with slot `s`.
fn initialized() -> (Cluster, PathBuf) {
    initialized_with(&[])
}

fn initialized_with(conf: &[&str]) -> (Cluster, PathBuf) {
    let cluster = Cluster::start_with(conf);
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;",
    );
    let dir = scratch_dir("status").join("backups");
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
    (cluster, dir)
}

fn only_chain(dir: &Path) -> PathBuf {
    let chains = BackupDir::new(dir).chains().unwrap();
    assert_eq!(chains.len(), 1);
    chains[0].chain.dir.clone()
}

/// A stand-in for `pg_scribe --start`: the pidfile lock held by this process, naming a
/// pg_recvlogical that streams slot `s` under a program name containing "pg_scribe".
struct FakeStreamer {
    child: Child,
    pidfile: Option<PidFile>,
}

impl FakeStreamer {
    fn start(cluster: &Cluster, dir: &Path) -> FakeStreamer {
        let acquired = PidFile::acquire(&BackupDir::new(dir)).unwrap();
        let child = Command::new(bindir().join("pg_recvlogical"))
            .arg0("pg_scribe_test_streamer")
            .args([
                "--start",
                "-S",
                "s",
                "-f",
                "/dev/null",
                "-s",
                "1",
                "-d",
                "app",
            ])
            .arg("-h")
            .arg(&cluster.socket_dir)
            .args(["-p", &cluster.port.to_string(), "-U", SUPERUSER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pg_recvlogical");
        let path = acquired.pidfile.path().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let rest: Vec<&str> = text.lines().skip(1).collect();
        std::fs::write(&path, format!("{}\n{}\n", child.id(), rest.join("\n"))).unwrap();
        FakeStreamer {
            child,
            pidfile: Some(acquired.pidfile),
        }
    }

    /// Dies like a crashed streamer: the process is killed, the pidfile stays, unlocked.
    fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pidfile.take();
    }
}

impl Drop for FakeStreamer {
    fn drop(&mut self) {
        self.crash();
    }
}

fn wait_for(cluster: &Cluster, what: &str, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.psql("app", sql).trim() != "t" {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The build machine's free space is not under test here (ops:: tests --free-warn): 0% never
/// warns, and an explicit `--free-warn` in `args` comes later and wins.
const NO_FREE_WARN: &str = "--free-warn=0%";

fn status(cluster: &Cluster, args: &[&str]) -> Output {
    let mut all = vec!["--status", NO_FREE_WARN];
    all.extend_from_slice(args);
    pg_scribe(&all, &cluster.env("app"))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn codes(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn healthy_streaming_reports_every_section_and_exits_0() {
    let (cluster, dir) = initialized();
    let chain = only_chain(&dir);
    let id = chain
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("chain-")
        .to_string();
    // A sealed diff from this second and an active.sql, as a streamer would leave them.
    let diff_name = format!("diff-{}.sql", pg_scribe::storage::backup_dir::Stamp::now());
    std::fs::write(chain.join(&diff_name), vec![b'x'; 3000]).unwrap();
    std::fs::write(chain.join("active.sql"), vec![b'y'; 500]).unwrap();

    let _streamer = FakeStreamer::start(&cluster, &dir);
    cluster.psql("app", "INSERT INTO t VALUES (1000, 'new')");
    let target = cluster.psql("app", "SELECT pg_current_wal_lsn()");
    wait_for(
        &cluster,
        "the slot to be active and consumed",
        &format!(
            "SELECT active AND confirmed_flush_lsn >= '{}' FROM pg_replication_slots WHERE slot_name = 's'",
            target.trim()
        ),
    );
    let d = dir.to_str().unwrap();

    // No --slot: the slot name comes from the chain's metadata.json.
    let out = status(&cluster, &["-d", "app", "--backup-dir", d]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a healthy status warns about nothing");
    for expected in [
        "Replication Slot: s\n",
        "  Plugin: wal2sql (logical, database app)\n",
        "  Status: active (PID ",
        "  Current LSN: ",
        "  Confirmed LSN: ",
        "  Restart LSN: ",
        "  Lag: ",
        "  WAL retained: ",
        "  WAL status: reserved (safe_wal_size: unlimited)\n",
        "  max_slot_wal_keep_size: unlimited (-1)\n",
        &format!(
            "Backup Directory: {}\n",
            std::fs::canonicalize(&dir).unwrap().display()
        ),
        "  Streamer: running (PID ",
        &format!("chain-{id} (ACTIVE - streaming)\n"),
        "  Base: ",
        "  Differentials: 1 file (2.9 kB total)\n",
        "  Active differential: active.sql (500 B)\n",
        "  Last activity: ",
        "\nTotal backup size: ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let out = status(&cluster, &["-d", "app", "--backup-dir", d, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["format"], 1);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["offline"], false);
    assert_eq!(r["warnings"], Value::Array(vec![]));
    assert!(r["checked_at"].as_str().unwrap().ends_with('Z'));

    let server = &r["server"];
    assert_eq!(server["database"], "app");
    assert_eq!(server["in_recovery"], false);
    assert_eq!(
        server["server_version_num"].as_i64().unwrap() / 10000,
        i64::from(cluster.major())
    );
    assert_eq!(server["max_slot_wal_keep_size_bytes"], Value::Null);
    let current: pg_scribe::lsn::Lsn = server["current_lsn"].as_str().unwrap().parse().unwrap();

    let slot = &r["slot"];
    assert_eq!(slot["name"], "s");
    assert_eq!(slot["name_source"], "metadata");
    assert_eq!(slot["plugin"], "wal2sql");
    assert_eq!(slot["slot_type"], "logical");
    assert_eq!(slot["database"], "app");
    assert_eq!(slot["temporary"], false);
    assert_eq!(slot["active"], true);
    let pid = slot["active_pid"].as_i64().unwrap();
    let walsender = cluster.psql(
        "app",
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 's'",
    );
    assert_eq!(pid.to_string(), walsender.trim());
    let confirmed: pg_scribe::lsn::Lsn = slot["confirmed_flush_lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let restart: pg_scribe::lsn::Lsn = slot["restart_lsn"].as_str().unwrap().parse().unwrap();
    assert!(confirmed >= target.trim().parse().unwrap());
    assert_eq!(
        slot["lag_bytes"].as_u64().unwrap(),
        current.0.saturating_sub(confirmed.0)
    );
    assert_eq!(
        slot["retained_bytes"].as_u64().unwrap(),
        current.0 - restart.0
    );
    assert_eq!(slot["wal_status"], "reserved");
    assert_eq!(slot["safe_wal_size_bytes"], Value::Null);

    let bd = &r["backup_dir"];
    assert_eq!(
        bd["path"].as_str().unwrap(),
        std::fs::canonicalize(&dir).unwrap().to_str().unwrap()
    );
    assert_eq!(bd["streamer"]["state"], "running");
    assert!(bd["streamer"]["pid"].as_i64().unwrap() > 0);
    assert!(
        bd["streamer"]["started_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(bd["active_chain"], id.as_str());
    let chains = bd["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    let c = &chains[0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["complete"], true);
    assert_eq!(c["active"], true);
    assert_eq!(c["streaming"], true);
    assert_eq!(c["slot"], "s");
    assert!(c["start_lsn"].as_str().unwrap().contains('/'));
    assert_eq!(c["base_file"], "base.sql");
    assert_eq!(
        c["base_bytes"].as_u64().unwrap(),
        std::fs::metadata(chain.join("base.sql")).unwrap().len()
    );
    assert_eq!(c["diff_count"], 1);
    assert_eq!(c["diff_bytes"], 3000);
    assert_eq!(c["active_sql_bytes"], 500);
    assert!(c["last_sealed_at"].as_str().unwrap().ends_with('Z'));
    assert!(c["last_activity_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c["metadata_error"], Value::Null);
    let on_disk: u64 = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(c["total_bytes"].as_u64().unwrap(), on_disk);
    assert_eq!(bd["total_bytes"].as_u64().unwrap(), on_disk);
    assert_eq!(r["thresholds"]["lag_warn_bytes"], 1u64 << 30);
    assert_eq!(r["thresholds"]["retained_warn_bytes"], 10u64 << 30);
    assert_eq!(r["thresholds"]["diff_age_warn_seconds"], 7 * 86400);

    // Without --backup-dir only the slot is checked; --slot is taken as given.
    let out = status(&cluster, &["--slot", "s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["slot"]["name_source"], "option");
    assert_eq!(r["backup_dir"], Value::Null);

    // A diff sealed long ago with a streamer running: rotation has stopped.
    std::fs::remove_file(chain.join(&diff_name)).unwrap();
    std::fs::write(chain.join("diff-20200101T000000Z.sql"), b"x").unwrap();
    let out = status(
        &cluster,
        &["--backup-dir", d, "--json", "--diff-age-warn", "1h"],
    );
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert_eq!(codes(&json(&out)), ["diff_age"]);
    assert!(
        stderr(&out).contains("pg_scribe: warning: no differential sealed in chain "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_real_streamer_is_seen_running_and_then_stopped() {
    let (cluster, dir) = initialized();
    let d = dir.to_str().unwrap();
    let log = dir.parent().unwrap().join("streamer.log");
    let mut streamer = Streamer::start(
        &["--backup-dir", d, "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &log,
    );
    streamer.wait_log("Writing to:", 30);
    cluster.psql("app", "INSERT INTO t VALUES (5000, 'streamed')");
    let target = cluster.psql("app", "SELECT pg_current_wal_lsn()");
    wait_for(
        &cluster,
        "the streamer to confirm the insert",
        &format!(
            "SELECT active AND confirmed_flush_lsn >= '{}' FROM pg_replication_slots WHERE slot_name = 's'",
            target.trim()
        ),
    );
    let out = status(&cluster, &["--backup-dir", d, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let r = json(&out);
    assert_eq!(r["slot"]["active"], true);
    assert_eq!(r["backup_dir"]["streamer"]["state"], "running");
    assert_eq!(
        r["backup_dir"]["streamer"]["pid"].as_i64().unwrap(),
        i64::from(streamer.child.id())
    );
    let c = &r["backup_dir"]["chains"][0];
    assert_eq!(c["streaming"], true);
    assert!(c["active_sql_bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(c["last_activity_at"].is_string());

    // A clean stop removes the pidfile: nothing streams any more.
    assert_eq!(streamer.stop(), Some(0));
    wait_for(
        &cluster,
        "the slot to be released",
        "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 's'",
    );
    let out = status(&cluster, &["--backup-dir", d, "--json"]);
    assert_eq!(out.status.code(), Some(10));
    let r = json(&out);
    assert_eq!(codes(&r), ["slot_inactive", "streamer_not_running"]);
    assert_eq!(r["backup_dir"]["streamer"]["state"], "not_running");
}

#[test]
fn a_stopped_streamer_with_ongoing_writes_warns_with_exit_10() {
    let (cluster, dir) = initialized();
    let mut streamer = FakeStreamer::start(&cluster, &dir);
    wait_for(
        &cluster,
        "the slot to be active",
        "SELECT active FROM pg_replication_slots WHERE slot_name = 's'",
    );
    streamer.crash();
    wait_for(
        &cluster,
        "the slot to be released",
        "SELECT NOT active FROM pg_replication_slots WHERE slot_name = 's'",
    );
    cluster.psql(
        "app",
        "INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(2000, 4000) g",
    );
    let d = dir.to_str().unwrap();
    let out = status(
        &cluster,
        &["-d", "app", "--backup-dir", d, "--lag-warn", "64kB"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(10), "{}\n{err}", stdout(&out));
    assert!(stdout(&out).contains("  Status: inactive\n"));
    assert!(stdout(&out).contains("  Streamer: not running (stale pidfile of PID "));
    assert!(stdout(&out).contains("(ACTIVE - not streaming)"));
    for expected in [
        "pg_scribe: warning: replication slot \"s\" is not active: no streamer is connected to it\n",
        "pg_scribe: warning: replication slot \"s\" lags ",
        " behind the server (threshold 64.0 kB, --lag-warn)\n",
        "pg_scribe: warning: stale pidfile in \"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    let out = status(
        &cluster,
        &[
            "-d",
            "app",
            "--backup-dir",
            d,
            "--lag-warn",
            "64kB",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(10));
    let r = json(&out);
    assert_eq!(r["exit_code"], 10);
    assert_eq!(
        codes(&r),
        ["slot_inactive", "lag", "streamer_stale"],
        "{}",
        stdout(&out)
    );
    assert!(r["slot"]["lag_bytes"].as_u64().unwrap() > 64 * 1024);
    assert_eq!(r["slot"]["active"], false);
    assert_eq!(r["slot"]["active_pid"], Value::Null);
    assert_eq!(r["backup_dir"]["streamer"]["state"], "stale");
    assert_eq!(r["backup_dir"]["chains"][0]["streaming"], false);

    // Over the default threshold (1 GB) the lag alone is no warning.
    let out = status(&cluster, &["--slot", "s", "--json"]);
    assert_eq!(codes(&json(&out)), ["slot_inactive"]);
}

#[test]
fn a_missing_slot_exits_3_naming_the_slots_that_exist() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    let out = status(&cluster, &["--slot", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out),
        "pg_scribe: error: replication slot \"nope\" does not exist\n\
         pg_scribe: hint: This server has no replication slots. Create one with pg_scribe --init (or name the right server).\n"
    );
    cluster.psql(
        "app",
        "SELECT pg_create_logical_replication_slot('other', 'test_decoding')",
    );
    let out = status(&cluster, &["--json"]);
    assert_eq!(out.status.code(), Some(3));
    // No report, but a JSON document all the same: monitors always get one.
    let e = json(&out);
    assert_eq!(e["status"], "error");
    assert_eq!(e["code"], 3);
    assert_eq!(
        e["message"],
        "replication slot \"pg_scribe\" does not exist"
    );
    assert_eq!(
        stderr(&out),
        "pg_scribe: error: replication slot \"pg_scribe\" does not exist\n\
         pg_scribe: detail: No --slot was given, so the default \"pg_scribe\" was used.\n\
         pg_scribe: hint: Existing slots: other (test_decoding). Choose one with --slot.\n"
    );
    // Read-only: nothing was created or dropped.
    assert_eq!(
        cluster.psql(
            "app",
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"
        ),
        "other\n"
    );
}

#[test]
fn an_unreachable_server_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let dir = scratch_dir("status-unreachable");
    for extra in [
        &[][..],
        &["--backup-dir", dir.to_str().unwrap(), "--json"][..],
    ] {
        let mut args = vec!["--status", "-h", "127.0.0.1", "-p", &port];
        args.extend_from_slice(extra);
        let out = pg_scribe(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        if extra.is_empty() {
            assert!(out.stdout.is_empty());
        } else {
            let e = json(&out);
            assert_eq!(
                (e["status"].as_str(), e["code"].as_u64()),
                (Some("error"), Some(2))
            );
        }
        assert!(
            stderr(&out).starts_with(&format!(
                "pg_scribe: error: connection to server at \"127.0.0.1\", port {port} failed: Connection refused\n"
            )),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_server_that_never_answers_is_a_connection_error_not_a_hang() {
    // Accepts TCP connections (the kernel does) but never speaks.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let out = pg_scribe(
        &["--status", "-h", "127.0.0.1", "-p", &port],
        &[("PGCONNECT_TIMEOUT".into(), "2".into())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        stderr(&out).starts_with(&format!(
            "pg_scribe: error: connection to server at \"127.0.0.1\", port {port} failed: timeout expired after 2 seconds\n"
        )),
        "{}",
        stderr(&out)
    );
    drop(listener);
}

#[test]
fn offline_directory_report_flags_incomplete_chains() {
    let (mut cluster, dir) = initialized();
    let chain = only_chain(&dir);
    let id = chain.file_name().unwrap().to_string_lossy().into_owned();
    cluster.stop("fast");
    // A newer chain whose base never finished.
    let broken = dir.join("chain-20991231T235959Z");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("base.sql"), b"-- partial").unwrap();
    let d = dir.to_str().unwrap();

    let out = pg_scribe(&["--status", "--backup-dir", d, NO_FREE_WARN], &[]);
    let text = stdout(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(10), "{text}\n{err}");
    assert!(
        text.starts_with("Replication Slot: not checked (offline: no server given"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{id} (ACTIVE - not streaming)\n")),
        "{text}"
    );
    assert!(
        text.contains(
            "chain-20991231T235959Z (INCOMPLETE)\n  Base: 2099-12-31 23:59:59 UTC (10 B)\n"
        ),
        "{text}"
    );
    assert!(
        err.contains(
            "pg_scribe: warning: chain 20991231T235959Z is incomplete (no COMPLETE marker)"
        ),
        "{err}"
    );
    assert!(err.contains("pg_scribe: warning: no streamer is running for backup directory"));

    let out = pg_scribe(
        &["--status", "--backup-dir", d, "--json", NO_FREE_WARN],
        &[],
    );
    let r = json(&out);
    assert_eq!(r["offline"], true);
    assert_eq!(r["server"], Value::Null);
    assert_eq!(r["slot"], Value::Null);
    assert_eq!(codes(&r), ["streamer_not_running", "incomplete_chain"]);
    let chains = r["backup_dir"]["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[0]["active"], true);
    assert_eq!(chains[1]["complete"], false);
    assert_eq!(chains[1]["active"], false);
    assert_eq!(chains[1]["slot"], Value::Null);
    assert!(
        chains[1]["metadata_error"]
            .as_str()
            .unwrap()
            .contains("metadata.json")
    );
    assert_eq!(
        r["backup_dir"]["active_chain"],
        id.trim_start_matches("chain-")
    );

    // Thresholds as given (sizes in powers of 1024, durations with a unit).
    let out = pg_scribe(
        &[
            "--status",
            "--backup-dir",
            d,
            "--json",
            "--lag-warn",
            "1.5GB",
            "--retained-warn",
            "512 mb",
            "--diff-age-warn",
            "36h",
        ],
        &[],
    );
    let t = &json(&out)["thresholds"];
    assert_eq!(t["lag_warn_bytes"], 3u64 << 29);
    assert_eq!(t["retained_warn_bytes"], 512u64 << 20);
    assert_eq!(t["diff_age_warn_seconds"], 36 * 3600);

    // Naming a server makes it required: the stopped one is a connection error, not a report.
    let out = pg_scribe(&["--status", "--backup-dir", d], &cluster.env("app"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // A directory that does not exist is an error (4), not an empty report.
    let out = pg_scribe(&["--status", "--backup-dir", "/nonexistent/backups"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn unreplayable_markers_and_a_lost_slot_are_critical() {
    let (cluster, dir) = initialized_with(&["max_slot_wal_keep_size = 1MB"]);
    let chain = only_chain(&dir);
    let d = dir.to_str().unwrap();
    // A change wal2sql cannot replay, in the stream as the streamer would write it.
    cluster.psql(
        "app",
        "CREATE TABLE nokey (a int); ALTER TABLE nokey REPLICA IDENTITY NOTHING; INSERT INTO nokey VALUES (1)",
    );
    cluster.psql("app", "DELETE FROM nokey");
    let text = cluster.psql(
        "app",
        "SELECT data FROM pg_logical_slot_get_changes('s', NULL, NULL)",
    );
    assert!(text.contains("wal2sql: cannot replay DELETE"), "{text}");
    std::fs::write(chain.join("active.sql"), &text).unwrap();

    let out = pg_scribe(&["--status", "--backup-dir", d], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("pg_scribe: error: chain ") && err.contains("holds 1 unreplayable marker(s) written since its base; the first in active.sql (xid "),
        "{err}"
    );
    assert!(
        err.contains("cannot replay DELETE on table public.nokey"),
        "{err}"
    );
    assert!(
        err.contains("pg_scribe: hint: A restore of this chain stops at that transaction."),
        "{err}"
    );
    assert!(
        stdout(&out).contains("  Unreplayable markers: 1"),
        "{}",
        stdout(&out)
    );
    let out = pg_scribe(&["--status", "--backup-dir", d, "--json"], &[]);
    let r = json(&out);
    assert_eq!(r["status"], "critical");
    assert_eq!(r["exit_code"], 4);
    assert!(
        codes(&r).contains(&"unreplayable_marker".to_string()),
        "{r}"
    );
    std::fs::remove_file(chain.join("active.sql")).unwrap();

    // The slot loses WAL it needs: nothing streams it, and the server keeps only 1MB for it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster
        .psql(
            "app",
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's'",
        )
        .trim()
        != "lost"
    {
        assert!(Instant::now() < deadline, "the slot never lost its WAL");
        cluster.psql(
            "app",
            "INSERT INTO t SELECT g, repeat('w', 200) FROM generate_series(100000 + (random() * 1e8)::int, 100000 + (random() * 1e8)::int + 5000) g ON CONFLICT DO NOTHING",
        );
        cluster.psql("app", "SELECT pg_switch_wal()");
        cluster.psql("app", "CHECKPOINT");
    }
    let out = status(&cluster, &["--backup-dir", d, "--json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let r = json(&out);
    assert_eq!(r["status"], "critical");
    let lost = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "wal_lost")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(lost["severity"], "critical");
    assert!(
        lost["hint"]
            .as_str()
            .unwrap()
            .starts_with("--new-chain does not help"),
        "{lost}"
    );
    // Distinct from a stopped streamer, which is only a warning.
    assert!(
        codes(&r).contains(&"streamer_not_running".to_string()),
        "{r}"
    );

    // --new-chain refuses instead of creating a chain that could never stream.
    let out = pg_scribe(&["--new-chain", "--backup-dir", d], &cluster.env("app"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("a new chain could never stream"), "{err}");
    assert!(err.contains("pg_drop_replication_slot('s')"), "{err}");
    assert_eq!(
        BackupDir::new(&dir).chains().unwrap().len(),
        1,
        "no chain created"
    );
}
