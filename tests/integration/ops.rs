//! Running unattended: `--expire` (what it removes, `--dry-run`, and every refusal), the
//! streamer under a `Type=notify` unit (READY/STATUS/WATCHDOG/STOPPING received on a socket of
//! the test's own) with timestamped logs and `--new-chain --keep-chains`, the Prometheus output
//! read back with a real parser of that format, the Nagios line and exit codes (healthy,
//! streamer stopped, slot missing), JSON logs, and the systemd units checked with
//! `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Cluster, Streamer, pg_scribe, scratch_dir, stderr};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster with database `app` and a backup directory initialized with slot `s`.
fn initialized(label: &str) -> (Cluster, PathBuf) {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;",
    );
    let dir = scratch_dir(label).join("backups");
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

fn chain_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chain-") || n.starts_with(".expired-"))
        .collect();
    names.sort();
    names
}

/// A copy of `from` named after `id`; `complete` decides whether it keeps its marker.
fn clone_chain(from: &Path, dir: &Path, id: &str, complete: bool) -> PathBuf {
    let to = dir.join(format!("chain-{id}"));
    std::fs::create_dir(&to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "COMPLETE" && !complete {
            continue;
        }
        std::fs::copy(e.path(), to.join(&name)).unwrap();
    }
    to
}

fn expire(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--expire", "--backup-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    pg_scribe(&args, &[])
}

#[test]
fn expire_removes_the_oldest_complete_chains_and_refuses_the_rest() {
    let tmp = scratch_dir("expire");
    // A real chain to copy from: metadata and a base file make chains restorable.
    let (cluster, dir) = initialized("expire-src");
    drop(cluster);
    let real = dir.join(&chain_names(&dir)[0]);
    clone_chain(&real, &dir, "20200101T000000Z", true);
    // Holds active.sql: a hand-over to a newer chain that no --start has finished yet.
    let handed = clone_chain(&real, &dir, "20200102T000000Z", true);
    std::fs::write(handed.join("active.sql"), b"").unwrap();
    // A base backup that failed (or is still running): never touched, not counted.
    clone_chain(&real, &dir, "20200103T000000Z", false);
    clone_chain(&real, &dir, "20200104T000000Z", true);
    let before = chain_names(&dir);
    assert_eq!(before.len(), 5);

    // Refusals of the command line.
    for (args, needle) in [
        (
            vec![],
            "no number of chains to keep specified (--keep-chains)",
        ),
        (
            vec!["--keep-chains", "0"],
            "invalid --keep-chains value \"0\"",
        ),
        (
            vec!["--keep-chains", "x"],
            "invalid --keep-chains value \"x\"",
        ),
        (
            vec!["--keep-chains", "1", "--slot", "s"],
            "option --slot cannot be used with --expire",
        ),
    ] {
        let out = expire(&dir, &args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    let out = expire(&tmp.join("missing"), &["--keep-chains", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // --dry-run says everything and changes nothing.
    let out = expire(&dir, &["--keep-chains", "1", "--dry-run"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for needle in [
        "Would remove chain-20200101T000000Z (",
        "Would remove chain-20200104T000000Z (",
        "Keeping chain-20200102T000000Z (",
        "): it holds active.sql",
        "Keeping chain-20200103T000000Z (",
        "): it is incomplete",
        "Dry run: 2 chains (",
        "would be removed; nothing was changed",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert_eq!(chain_names(&dir), before);

    // The real thing: the removable chains go, the newest and the protected ones stay; one
    // being read (a --restore holds it) stays until the reader is done.
    let bd = pg_scribe::storage::backup_dir::BackupDir::new(&dir);
    let reader = pg_scribe::storage::expire::ChainReader::hold(
        &bd.chain("20200101T000000Z".parse().unwrap()),
    )
    .unwrap();
    let out = expire(&dir, &["--keep-chains", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "Keeping chain-20200101T000000Z: it is being read (a pg_scribe --restore holds it)"
        ),
        "{err}"
    );
    assert!(err.contains("✓ Removed chain-20200104T000000Z ("), "{err}");
    assert!(err.contains("✓ Expired 1 chain, freed "), "{err}");
    assert!(err.contains("; 4 chains kept; "), "{err}");
    assert!(err.contains("free on the file system"), "{err}");
    drop(reader);
    let out = expire(&dir, &["--keep-chains", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("✓ Removed chain-20200101T000000Z ("), "{err}");
    let after = chain_names(&dir);
    assert_eq!(
        after,
        vec![
            "chain-20200102T000000Z".to_string(),
            "chain-20200103T000000Z".to_string(),
            before[4].clone()
        ]
    );
    // Again: nothing left to do.
    let out = expire(&dir, &["--keep-chains", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("✓ Nothing to expire: 2 complete chains (--keep-chains 1)"));

    // A removal a crash interrupted is finished by the next run.
    let left = dir.join(".expired-chain-20190101T000000Z");
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("base.sql"), vec![b'x'; 8192]).unwrap();
    let out = expire(&dir, &["--keep-chains", "5"]);
    assert!(
        stderr(&out).contains("✓ Finished an interrupted removal ("),
        "{}",
        stderr(&out)
    );
    assert!(!left.exists());

    // With the pidfile locked (a streamer, as far as --expire can tell), the chain holding
    // active.sql is the one it writes into; with none holding it, nothing is guessed.
    let lock = pg_scribe::storage::pidfile::PidFile::acquire(
        &pg_scribe::storage::backup_dir::BackupDir::new(&dir),
    )
    .unwrap();
    let out = expire(&dir, &["--keep-chains", "1", "--dry-run"]);
    assert!(
        stderr(&out).contains("): it holds active.sql (the running streamer, PID "),
        "{}",
        stderr(&out)
    );
    let active = handed.join("active.sql");
    std::fs::remove_file(&active).unwrap();
    let out = expire(&dir, &["--keep-chains", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("but no chain holds active.sql: cannot tell which chain it writes into"),
        "{}",
        stderr(&out)
    );
    assert_eq!(chain_names(&dir).len(), 3);
    std::fs::write(&active, b"").unwrap();
    drop(lock);

    // When no chain is restorable, nothing is removed.
    let broken = tmp.join("broken");
    std::fs::create_dir(&broken).unwrap();
    for id in ["20200101T000000Z", "20200102T000000Z"] {
        let c = broken.join(format!("chain-{id}"));
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("COMPLETE"), b"").unwrap();
    }
    let out = expire(&broken, &["--keep-chains", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no chain in the backup directory is restorable"),
        "{}",
        stderr(&out)
    );
    assert_eq!(chain_names(&broken).len(), 2);

    // JSON logs: one object per line, with a timestamp and a level.
    let out = expire(&dir, &["--keep-chains", "1", "--log-format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["pid"].as_u64().is_some(), "{l}");
        assert_eq!(l["level"], "LOG", "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("Nothing to expire"))
    );
}

/// Receives sd_notify datagrams on a socket of the test's own.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits until a datagram contains `text`; returns that datagram.
    fn wait(&mut self, text: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        if let Some(m) = self.seen.iter().find(|m| m.contains(text)) {
            return m.clone();
        }
        let mut buf = vec![0u8; 4096];
        loop {
            assert!(
                Instant::now() < deadline,
                "no notification containing {text:?}; got {:?}",
                self.seen
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(m.clone());
                if m.contains(text) {
                    return m;
                }
            }
        }
    }
}

/// `2026-01-01T12:00:00.123Z [42] LOG:  text`
fn is_plain_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    let stamp = b.len() > 25
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b[24] == b' ';
    let rest = &line[25.min(line.len())..];
    stamp
        && rest.starts_with('[')
        && [
            "] LOG:  ",
            "] WARNING:  ",
            "] ERROR:  ",
            "] DETAIL:  ",
            "] HINT:  ",
        ]
        .iter()
        .any(|l| rest.contains(l))
}

#[test]
fn the_streamer_notifies_systemd_logs_with_timestamps_and_new_chain_expires() {
    let (cluster, dir) = initialized("notify");
    let d = dir.to_str().unwrap();
    let first_chain = chain_names(&dir)[0].clone();
    let mut notify = NotifySocket::bind(dir.parent().unwrap());
    let mut env = cluster.env("app");
    env.push(("NOTIFY_SOCKET".into(), notify.path.display().to_string()));
    env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    env.push(("PG_SCRIBE_PROGRESS_INTERVAL".into(), "1".into()));
    let log = dir.parent().unwrap().join("streamer.log");
    let mut streamer = Streamer::start(&["--backup-dir", d, "-s", "1", "-F", "1"], &env, &log);

    let ready = notify.wait("READY=1", 60);
    assert!(ready.contains("STATUS=streaming into chain "), "{ready}");
    assert!(ready.contains("; durable up to "), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", streamer.child.id())),
        "{ready}"
    );
    notify.wait("WATCHDOG=1", 30);
    cluster.psql("app", "INSERT INTO t VALUES (5000, 'streamed')");
    streamer.wait_log("progress: LSN ", 60);
    notify.wait("STATUS=streaming into chain", 30);

    // A new chain, then retention: the old chain is sealed by the hand-over and goes.
    let mut env = cluster.env("app");
    env.push(("PG_COLOR".into(), "never".into()));
    let out = pg_scribe(
        &["--new-chain", "--backup-dir", d, "--keep-chains", "1"],
        &env,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}\n{}", streamer.log_text());
    assert!(err.contains(&format!("✓ Removed {first_chain} (")), "{err}");
    let names = chain_names(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert_ne!(names[0], first_chain);
    streamer.wait_log("Streaming to new chain", 30);
    cluster.psql("app", "INSERT INTO t VALUES (5001, 'after the new chain')");
    crate::harness::wait_for_text(&dir.join(&names[0]), "after the new chain", 60);

    // SIGTERM: STOPPING=1, and exit 0 (what Restart=on-failure needs to hear).
    let code = streamer.stop();
    assert_eq!(code, Some(0));
    let stopping = notify.wait("STOPPING=1", 10);
    assert!(stopping.contains("stopping on SIGTERM"), "{stopping}");

    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        assert!(is_plain_log_line(line), "not a log line: {line:?}\n{text}");
    }
    for needle in [
        "LOG:  ✓ Starting replication from slot 's' at ",
        "LOG:  Streaming started at ",
        "LOG:  progress: LSN ",
        " transactions/s; ",
        "LOG:  ✓ Streaming to new chain: ",
        "LOG:  Received SIGTERM: finishing",
        "LOG:  ✓ Stopped; durable up to ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// A Python with `prometheus_client` (installed by scripts/install-deps.sh).
fn prometheus_python() -> PathBuf {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p)
            .args(["-c", "import prometheus_client.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return PathBuf::from(p);
        }
    }
    panic!("no python3 with prometheus_client: run scripts/install-deps.sh");
}

/// Samples as (name, labels, value), read by prometheus_client's text-format parser.
fn parse_prometheus(text: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.documentation, fam.name
    assert fam.type == "gauge", fam.name
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(prometheus_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<(String, serde_json::Map<String, Value>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    v
}

fn value(samples: &[(String, serde_json::Map<String, Value>, f64)], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.0 == name).map(|s| s.2)
}

fn status(cluster: &Cluster, args: &[&str]) -> Output {
    // The machine's free space must not turn a healthy check into a warning; the offline part
    // below tests the threshold itself.
    let mut all = vec!["--status", "--free-warn=0%"];
    all.extend_from_slice(args);
    pg_scribe(&all, &cluster.env("app"))
}

fn wait_slot_active(cluster: &Cluster, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster
        .psql(
            "app",
            "SELECT active FROM pg_replication_slots WHERE slot_name = 's'",
        )
        .trim()
        != want
    {
        assert!(Instant::now() < deadline, "slot active never became {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prometheus_and_nagios_formats() {
    let (cluster, dir) = initialized("formats");
    let d = dir.to_str().unwrap();
    let log = dir.parent().unwrap().join("streamer.log");
    let mut streamer = Streamer::start(
        &["--backup-dir", d, "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &log,
    );
    streamer.wait_log("Streaming started", 60);
    wait_slot_active(&cluster, "t");

    // Healthy.
    let out = status(&cluster, &["--backup-dir", d, "--format=prometheus"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let samples = parse_prometheus(&text);
    let canonical = std::fs::canonicalize(&dir).unwrap();
    for (name, labels, _) in &samples {
        assert_eq!(labels["slot"], "s", "{name}");
        assert_eq!(labels["backup_dir"], canonical.to_str().unwrap(), "{name}");
    }
    for (name, expected) in [
        ("pg_scribe_status_success", 1.0),
        ("pg_scribe_status_exit_code", 0.0),
        ("pg_scribe_status_warnings", 0.0),
        ("pg_scribe_slot_exists", 1.0),
        ("pg_scribe_slot_active", 1.0),
        ("pg_scribe_slot_wal_lost", 0.0),
        ("pg_scribe_streamer_up", 1.0),
    ] {
        assert_eq!(value(&samples, name), Some(expected), "{name}:\n{text}");
    }
    for name in [
        "pg_scribe_slot_lag_bytes",
        "pg_scribe_slot_retained_wal_bytes",
        "pg_scribe_durable_lsn",
        "pg_scribe_last_sealed_diff_age_seconds",
        "pg_scribe_backup_bytes",
        "pg_scribe_chain_bytes",
        "pg_scribe_filesystem_avail_bytes",
        "pg_scribe_filesystem_size_bytes",
    ] {
        assert!(value(&samples, name).is_some(), "no {name}:\n{text}");
    }
    let confirmed = cluster.psql(
        "app",
        "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 's'",
    );
    assert!(value(&samples, "pg_scribe_durable_lsn").unwrap() <= confirmed.trim().parse().unwrap());
    assert!(
        samples
            .iter()
            .any(|s| s.0 == "pg_scribe_chains" && s.1["state"] == "complete" && s.2 == 1.0)
    );

    let out = status(&cluster, &["--backup-dir", d, "--format=nagios"]);
    let line = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{line}{}", stderr(&out));
    assert!(
        line.starts_with("PG_SCRIBE OK - slot \"s\" active, lag "),
        "{line}"
    );
    assert!(
        line.contains("streamer running, 1 complete chain | "),
        "{line}"
    );
    assert!(line.contains(" streamer_up=1;;;0;1 "), "{line}");
    assert!(line.contains(" lag="), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");

    // Streamer stopped: critical for Nagios; warnings (exit 10) for the metrics.
    assert_eq!(streamer.stop(), Some(0));
    // The walsender lets go of the slot shortly after the client has gone.
    wait_slot_active(&cluster, "f");
    let out = status(&cluster, &["--backup-dir", d, "--format=nagios"]);
    let line = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(
        line.starts_with("PG_SCRIBE CRITICAL - no streamer is running for backup directory "),
        "{line}"
    );
    assert!(line.contains("streamer_up=0;;;0;1"), "{line}");
    let out = status(&cluster, &["--backup-dir", d, "--format=prometheus"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let samples = parse_prometheus(&stdout(&out));
    assert_eq!(value(&samples, "pg_scribe_streamer_up"), Some(0.0));
    assert_eq!(value(&samples, "pg_scribe_slot_active"), Some(0.0));
    let warned: Vec<&str> = samples
        .iter()
        .filter(|s| s.0 == "pg_scribe_status_warning")
        .map(|s| s.1["code"].as_str().unwrap())
        .collect();
    assert_eq!(warned, ["slot_inactive", "streamer_not_running"]);

    // Slot missing: the metrics still come, with the failure in them; Nagios says CRITICAL.
    let out = status(
        &cluster,
        &["--backup-dir", d, "--slot", "nope", "--format=prometheus"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pg_scribe: error: replication slot \"nope\" does not exist"),
        "{}",
        stderr(&out)
    );
    let samples = parse_prometheus(&stdout(&out));
    assert_eq!(value(&samples, "pg_scribe_status_success"), Some(0.0));
    assert_eq!(value(&samples, "pg_scribe_status_exit_code"), Some(3.0));
    assert_eq!(value(&samples, "pg_scribe_slot_exists"), Some(0.0));
    assert_eq!(samples[0].1["slot"], "nope");
    let out = status(
        &cluster,
        &["--backup-dir", d, "--slot", "nope", "--format=nagios"],
    );
    let line = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(
        line.starts_with("PG_SCRIBE CRITICAL - replication slot \"nope\" does not exist"),
        "{line}"
    );

    // Unreachable server: CRITICAL, not a crash or a healthy-looking line.
    let port = cluster.port.to_string();
    drop(cluster);
    let out = pg_scribe(
        &[
            "--status",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--format=nagios",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("PG_SCRIBE CRITICAL - connection to server"));

    // Label values are escaped: a backup directory whose name has a quote and a backslash,
    // reported offline (no server named).
    let odd = dir.parent().unwrap().join("we\"ird\\dir");
    std::fs::rename(&dir, &odd).unwrap();
    let out = pg_scribe(
        &[
            "--status",
            "--backup-dir",
            odd.to_str().unwrap(),
            "--format=prometheus",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let samples = parse_prometheus(&stdout(&out));
    let want = std::fs::canonicalize(&odd).unwrap();
    assert_eq!(samples[0].1["backup_dir"], want.to_str().unwrap());
    assert_eq!(samples[0].1["slot"], "s");
    assert_eq!(value(&samples, "pg_scribe_slot_exists"), None);
    // The text report shows each chain's disk usage and the free space.
    let out = pg_scribe(&["--status", "--backup-dir", odd.to_str().unwrap()], &[]);
    let text = stdout(&out);
    assert!(text.contains("\n  Disk usage: "), "{text}");
    assert!(text.contains("\nFree space: "), "{text}");
    // A threshold above what is free warns; the warning names the option.
    let out = pg_scribe(
        &[
            "--status",
            "--backup-dir",
            odd.to_str().unwrap(),
            "--free-warn",
            "100%",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(10));
    assert!(
        stderr(&out).contains("free of ") && stderr(&out).contains("threshold 100%, --free-warn)"),
        "{}",
        stderr(&out)
    );
    // --json and --format=json are one thing; both with another format is a usage error.
    let out = pg_scribe(
        &[
            "--status",
            "--backup-dir",
            odd.to_str().unwrap(),
            "--format=json",
        ],
        &[],
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["offline"], true);
    assert!(
        r["backup_dir"]["filesystem"]["available_bytes"]
            .as_u64()
            .is_some()
    );
    let out = pg_scribe(&["--status", "--json", "--format=nagios"], &[]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn systemd_units_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!(
            "systemd-analyze not found: unit files not verified (scripts/install-deps.sh installs it)"
        );
        return;
    };
    assert!(probe.status.success());
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let tmp = scratch_dir("units");
    // verify insists that ExecStart's program exists: point it at the binary under test.
    let mut names = Vec::new();
    for e in std::fs::read_dir(&units).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/usr/local/bin/pg_scribe", env!("CARGO_BIN_EXE_pg_scribe"));
        std::fs::write(tmp.join(&name), text).unwrap();
        names.push(name.replace("@.", "@main."));
    }
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .current_dir(&tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {names:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_preload_hint_keeps_the_libraries_already_loaded() {
    let cluster = Cluster::start_with(&["shared_preload_libraries = 'pg_stat_statements'"]);
    cluster.create_database("app");
    let dir = scratch_dir("preload").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'wal2sql';  -- then restart; or: ALTER DATABASE app SET session_preload_libraries = 'wal2sql';"
        ),
        "{err}"
    );
}
