//! `--start` and `--rotate-diff` end to end: what the streamer writes replays to a database
//! equal to the source — after rotations, during large transactions, across `kill -9` of the
//! streamer and restarts of the server — and the rotation and pidfile refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    Cluster, Streamer, bindir, chain_transactions, newest_chain, pg_scribe, scratch_dir, stderr,
    wait_for_text,
};

/// A database with the extension (so new tables get a replica identity) and pgbench's tables.
fn source(cluster: &Cluster) {
    cluster.pgbench_source();
    cluster.psql(
        "app",
        "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, tags text[], price numeric, at timestamptz DEFAULT now());
         INSERT INTO notes (body, tags, price) SELECT 'note ' || g, ARRAY['x', 'y''' || g], g / 7.0 FROM generate_series(1, 300) g;",
    );
}

fn init(cluster: &Cluster, dir: &Path) {
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
}

fn start(cluster: &Cluster, dir: &Path, log: &Path) -> Streamer {
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        log,
    );
    streamer.wait_log("Writing to:", 30);
    streamer
}

fn pgbench(cluster: &Cluster, transactions: u32) {
    let out = Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-t", &transactions.to_string()])
        .envs(cluster.env("app"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ddl_and_dml(cluster: &Cluster, round: u32) {
    cluster.psql(
        "app",
        &format!(
            "ALTER TABLE notes ADD COLUMN IF NOT EXISTS rating int DEFAULT 3;
             UPDATE notes SET rating = id % 5, body = body || '!' WHERE id % 7 = {m};
             DELETE FROM notes WHERE id % 11 = {m};
             INSERT INTO notes (body, price) VALUES ('round {round}', 'NaN');
             CREATE TABLE IF NOT EXISTS r{round} (k int PRIMARY KEY, v text);
             INSERT INTO r{round} SELECT g, md5(g::text) FROM generate_series(1, 50) g;",
            m = round % 7
        ),
    );
    // On its own: a BEGIN inside one multi-statement query takes the statements before it into
    // its block, and the ROLLBACK would undo them all.
    cluster.psql(
        "app",
        &format!("BEGIN; INSERT INTO r{round} VALUES (1000, 'rolled back'); ROLLBACK;"),
    );
}

/// Write a marker row and wait until the streamer has it on disk.
fn settle(cluster: &Cluster, chain: &Path, label: &str) {
    cluster.psql(
        "app",
        "CREATE TABLE IF NOT EXISTS marker (label text PRIMARY KEY)",
    );
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    wait_for_text(chain, label, 60);
}

fn assert_replays_equal(cluster: &Cluster, chain: &Path, target: &str) {
    cluster.replay_chain(chain, target, true);
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests(target),
        "{target} differs from the source"
    );
    let txns = chain_transactions(chain);
    let mut unique = txns.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), txns.len(), "a transaction was written twice");
}

fn rotate(dir: &Path) -> std::process::Output {
    pg_scribe(
        &["--rotate-diff", "--backup-dir", dir.to_str().unwrap()],
        &[],
    )
}

#[test]
fn streamed_chain_with_rotations_replays_to_the_source() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("stream").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let streamer = start(&cluster, &dir, &dir.with_extension("log"));

    pgbench(&cluster, 200);
    ddl_and_dml(&cluster, 1);
    settle(&cluster, &chain, "first");
    let out = rotate(&dir);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("✓ Found active chain: "), "{err}");
    assert!(err.contains("✓ Rotated differential: diff-"), "{err}");
    assert!(err.contains("✓ New differential started"), "{err}");

    pgbench(&cluster, 100);
    ddl_and_dml(&cluster, 2);
    settle(&cluster, &chain, "second");
    let out = pg_scribe(
        &[
            "--rotate-diff",
            "--backup-dir",
            dir.to_str().unwrap(),
            "--compress",
            "zstd",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(".sql.zst ("), "{}", stderr(&out));
    // Nothing new since: a rotation seals nothing and says so.
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Nothing to rotate"),
        "{}",
        stderr(&out)
    );

    ddl_and_dml(&cluster, 3);
    settle(&cluster, &chain, "third");
    // Two rotations at once (overlapping cron jobs): both are answered.
    let spawn_rotate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pg_scribe"))
            .args(["--rotate-diff", "--backup-dir", dir.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn_rotate(), spawn_rotate());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    ddl_and_dml(&cluster, 5);
    settle(&cluster, &chain, "fifth");
    assert_eq!(
        streamer.stop(),
        Some(0),
        "SIGTERM must end the streamer with exit 0"
    );
    assert!(
        !dir.join(".pg_scribe.pid").exists(),
        "pidfile left after a clean stop"
    );

    for file in std::fs::read_dir(&chain).unwrap() {
        let path = file.unwrap().path();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    // Unpack the compressed diff for the psql replay.
    let packed: Vec<PathBuf> = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sql.zst"))
        .collect();
    assert_eq!(packed.len(), 1);
    let plain = PathBuf::from(
        packed[0]
            .to_string_lossy()
            .trim_end_matches(".zst")
            .to_string(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut r = pg_scribe::storage::compress::open_decompressed(&packed[0])
            .await
            .unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).await.unwrap();
        v
    });
    std::fs::write(&plain, bytes).unwrap();
    std::fs::remove_file(&packed[0]).unwrap();
    assert_replays_equal(&cluster, &chain, "restored");

    // A restart after SIGTERM writes nothing twice.
    let streamer = start(&cluster, &dir, &dir.with_extension("log2"));
    ddl_and_dml(&cluster, 4);
    settle(&cluster, &chain, "fourth");
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored2");
}

#[test]
fn a_rotation_during_a_large_transaction_keeps_it_whole() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("bigtxn").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let streamer = start(&cluster, &dir, &dir.with_extension("log"));
    cluster.psql("app", "CREATE TABLE big (id int PRIMARY KEY, payload text)");
    cluster.psql(
        "app",
        "INSERT INTO big SELECT g, repeat('x', 100) || g FROM generate_series(1, 400000) g",
    );
    // The commit is decoded and streamed now; rotate while it is under way.
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    settle(&cluster, &chain, "after-big");
    assert_eq!(streamer.stop(), Some(0));
    for diff in crate::harness::chain_diffs(&chain, true) {
        let mut scanner = pg_scribe::storage::diff_format::DiffScanner::open(&diff).unwrap();
        while scanner.next_txn().unwrap().is_some() {}
        scanner
            .finish_complete()
            .unwrap_or_else(|e| panic!("{}: {e}", diff.display()));
    }
    assert_replays_equal(&cluster, &chain, "restored");
}

#[test]
fn rotation_refusals_and_a_second_streamer() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("refuse").join("backups");
    init(&cluster, &dir);

    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("no streamer is running for backup directory"),
        "{}",
        stderr(&out)
    );

    // A pidfile nobody holds.
    std::fs::write(
        dir.join(".pg_scribe.pid"),
        format!(
            "999999\n{}\n2026-01-01T00:00:00Z\npg_scribe\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("is stale: process 999999 is not running"),
        "{}",
        stderr(&out)
    );

    // A pidfile locked by something that is not pg_scribe.
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(dir.join(".pg_scribe.pid"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("is not a pg_scribe streamer for this directory"),
        "{}",
        stderr(&out)
    );
    let _ = holder.kill();
    let _ = holder.wait();

    // The stale pidfile is taken over with a warning; a second streamer is refused.
    let first = start(&cluster, &dir, &dir.with_extension("log1"));
    assert!(
        first.log_text().contains("took over a stale pidfile"),
        "{}",
        first.log_text()
    );
    let second = pg_scribe(
        &["--start", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another pg_scribe streamer (PID "),
        "{}",
        stderr(&second)
    );
    assert_eq!(first.stop(), Some(0));
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("crash").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let seed = std::process::id() as u64;
    let mut rng = Lcg(seed);
    let mut load = Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-T", "60"])
        .envs(cluster.env("app"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for round in 0..20 {
        let streamer = Streamer::start(
            &[
                "--backup-dir",
                dir.to_str().unwrap(),
                "-s",
                "1",
                "-F",
                if round % 2 == 0 { "0" } else { "1" },
            ],
            &cluster.env("app"),
            &dir.with_extension(format!("log{round}")),
        );
        std::thread::sleep(std::time::Duration::from_millis(200 + rng.next(900)));
        if round % 5 == 4 {
            ddl_and_dml(&cluster, round);
        }
        streamer.kill9();
    }
    let _ = load.kill();
    let _ = load.wait();
    let streamer = start(&cluster, &dir, &dir.with_extension("final"));
    settle(&cluster, &chain, "after-crashes");
    assert_eq!(streamer.stop(), Some(0));
    assert!(
        chain_transactions(&chain).len() > 50,
        "the load barely reached the chain (seed {seed})"
    );
    assert_replays_equal(&cluster, &chain, "restored");
}

#[test]
fn server_restarts_mid_stream_are_survived() {
    let mut cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("restart").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = start(&cluster, &dir, &dir.with_extension("log"));
    pgbench(&cluster, 100);
    cluster.restart();
    pgbench(&cluster, 100);
    ddl_and_dml(&cluster, 1);
    cluster.stop("immediate");
    cluster.restart();
    pgbench(&cluster, 100);
    settle(&cluster, &chain, "after-restarts");
    streamer.wait_log("Reconnected", 30);
    // The streamer's own SQL session died with the server: recording sequences reconnects it.
    cluster.psql(
        "app",
        "CREATE SEQUENCE counter; SELECT nextval('counter') FROM generate_series(1, 7)",
    );
    settle(&cluster, &chain, "sequence-made");
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sealed = crate::harness::chain_diffs(&chain, false);
    let text = std::fs::read_to_string(sealed.last().unwrap()).unwrap();
    assert!(
        text.contains("setval('public.counter', 7, true)"),
        "no sequence record after the restarts:\n{}",
        streamer.log_text()
    );
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// Runs only as root (it mounts a small tmpfs): a full disk stops the streamer with exit 4 and
/// nothing reported that is not on disk; with space freed, a restart resumes and loses nothing.
#[test]
fn a_full_disk_stops_the_streamer_and_a_restart_loses_nothing() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let cluster = Cluster::start();
    source(&cluster);
    let mount = scratch_dir("diskfull");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let dir = mount.join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &scratch_dir("diskfull-log").join("log"),
    );
    streamer.wait_log("Writing to:", 30);
    cluster.psql(
        "app",
        "CREATE TABLE filler (id int PRIMARY KEY, payload text)",
    );
    cluster.psql(
        "app",
        "INSERT INTO filler SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 100000) g",
    );
    // Generous: on a busy machine the server decodes the load slowly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let code = loop {
        if let Some(status) = streamer.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the streamer did not stop on a full disk:\n{}",
            streamer.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let log = streamer.log_text();
    assert_eq!(code, Some(4), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("HINT:  Free some space"), "{log}"); // stderr is a file: timestamped lines
    // What the server holds as confirmed must be in the files.
    let confirmed = cluster.psql(
        "postgres",
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's'",
    );
    let held: Vec<String> = chain_transactions(&chain);
    let confirmed: pg_scribe::lsn::Lsn = confirmed.trim().parse().unwrap();
    let last_end = held
        .last()
        .and_then(|h| h.split("end_lsn=").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .map(|l| l.parse::<pg_scribe::lsn::Lsn>().unwrap());
    // An idle stream may confirm its keepalive position, recorded first in .pg_scribe.flushed.
    let recorded = std::fs::read_to_string(dir.join(".pg_scribe.flushed"))
        .ok()
        .and_then(|t| t.trim().parse::<pg_scribe::lsn::Lsn>().ok());
    let holds = last_end.max(recorded).expect("something was streamed");
    assert!(
        confirmed <= holds,
        "the server confirmed {confirmed}, past what the files hold ({holds})"
    );

    let status = Command::new("mount")
        .args(["-o", "remount,size=400m"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success());
    let streamer = start(&cluster, &dir, &scratch_dir("diskfull-log2").join("log"));
    settle(&cluster, &chain, "after-disk-full");
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// Disaster recovery: a fresh server that never saw the source gets the roles created after the
/// base (saved at rotation), their ownerships and grants, and the sequence values recorded
/// before the seal.
#[test]
fn restore_on_a_fresh_server_has_later_roles_and_sequences() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("disaster").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let streamer = start(&cluster, &dir, &dir.with_extension("log"));
    cluster.psql(
        "app",
        "CREATE ROLE late_owner LOGIN;
         CREATE ROLE late_reader;
         CREATE TABLE owned (id serial PRIMARY KEY, v text);
         ALTER TABLE owned OWNER TO late_owner;
         GRANT SELECT ON owned TO late_reader;
         INSERT INTO owned (v) SELECT 'v' || g FROM generate_series(1, 20) g;
         SELECT nextval('owned_id_seq') FROM generate_series(1, 5);",
    );
    settle(&cluster, &chain, "before-rotation");
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The role dump is written in the background right after the seal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_dir(&chain).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("globals-")
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no globals-<stamp>.sql after rotation"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let sealed = crate::harness::chain_diffs(&chain, false);
    let text = std::fs::read_to_string(sealed.last().unwrap()).unwrap();
    assert!(
        text.contains("setval('public.owned_id_seq', 25, true)"),
        "the sealed diff lacks the sequence record"
    );
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
    let facts = fresh.psql(
        "recovered",
        "SELECT pg_get_userbyid(relowner) || ' ' || has_table_privilege('late_reader', 'owned', 'SELECT')
           FROM pg_class WHERE relname = 'owned'",
    );
    assert_eq!(facts.trim(), "late_owner true");
    assert_eq!(
        fresh
            .psql("recovered", "SELECT last_value FROM owned_id_seq")
            .trim(),
        "25"
    );
    assert_eq!(
        cluster.table_digests("app"),
        fresh.table_digests("recovered")
    );
}

/// The log-rotation recipe of doc/streaming.md: rename active.sql by hand, then SIGHUP. The streamer finishes
/// the transaction in the renamed file and continues in a new active.sql.
#[test]
fn renaming_active_sql_by_hand_then_sighup_keeps_whole_transactions() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("manual").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = start(&cluster, &dir, &dir.with_extension("log"));
    pgbench(&cluster, 100);
    settle(&cluster, &chain, "before-rename");
    std::fs::rename(
        chain.join("active.sql"),
        chain.join("diff-20000101T000000Z.sql"),
    )
    .unwrap();
    streamer.signal(libc::SIGHUP);
    streamer.wait_log("active.sql had been moved away", 30);
    pgbench(&cluster, 100);
    settle(&cluster, &chain, "after-rename");
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// Rotations while pgbench runs: each is answered (sequence record, then the seal at a boundary)
/// and the chain still replays to the source. How prompt they are is a benchmark's business
/// (bench/rotation_latency.sh): here the requester's own limits are the only clock.
#[test]
fn rotations_under_load_are_prompt() {
    let cluster = Cluster::start();
    source(&cluster);
    cluster.psql(
        "app",
        "CREATE TABLE counters (id serial PRIMARY KEY, n int); INSERT INTO counters (n) VALUES (1)",
    );
    let dir = scratch_dir("rotload").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &dir.with_extension("log"),
    );
    streamer.wait_log("Writing to:", 30);
    let mut load = Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-T", "15"])
        .envs(cluster.env("app"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let out = rotate(&dir);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stderr(&out),
            streamer.log_text()
        );
        cluster.psql("app", "INSERT INTO counters (n) VALUES (2)");
    }
    load.wait().unwrap();
    settle(&cluster, &chain, "after-rotations");
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// A SIGHUP (a cron `--rotate-diff`) that arrives while the streamer is still starting up —
/// pidfile taken, `active.sql` being scanned — is served as a rotation, never a kill.
#[test]
fn sighup_during_start_up_is_a_rotation_not_a_kill() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("earlyhup").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    // A large active.sql makes the start-up scans take a while.
    let streamer = start(&cluster, &dir, &dir.with_extension("log1"));
    cluster.psql(
        "app",
        "CREATE TABLE bulk (id int PRIMARY KEY, payload text);
         INSERT INTO bulk SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g",
    );
    settle(&cluster, &chain, "bulk-done");
    assert_eq!(streamer.stop(), Some(0));

    let pidfile = dir.join(".pg_scribe.pid");
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &dir.with_extension("log2"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pidfile.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no pidfile:\n{}",
            streamer.log_text()
        );
        assert!(
            streamer.child.try_wait().unwrap().is_none(),
            "{}",
            streamer.log_text()
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    streamer.signal(libc::SIGHUP);
    streamer.wait_log("Writing to:", 60);
    streamer.wait_log("Rotated differential: diff-", 60);
    settle(&cluster, &chain, "after-early-hup");
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

fn spawn_rotate(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pg_scribe"))
        .args(["--rotate-diff", "--backup-dir", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until a `--rotate-diff` has left its request in the directory.
fn wait_for_request(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_dir(dir).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".pg_scribe.rotate-")
    }) {
        assert!(std::time::Instant::now() < deadline, "no rotation request");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Wait until a stopped process has SIGHUP pending: the requester has signalled it (it writes
/// its request file first, so the file alone does not say the signal was sent).
fn wait_for_pending_sighup(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let pending = status
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .fold(0, |a, b| a | b);
        if pending & (1 << (libc::SIGHUP - 1)) != 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "SIGHUP never sent");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A streamer killed (kill -9, OOM) while a `--rotate-diff` waits: the requester notices that it
/// is gone and says so, instead of waiting for its timeout.
#[test]
fn a_requester_learns_that_the_streamer_was_killed() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("reqkill").join("backups");
    init(&cluster, &dir);
    let streamer = start(&cluster, &dir, &dir.with_extension("log"));
    // Stopped, it cannot answer; killed, it never will.
    streamer.signal(libc::SIGSTOP);
    let requester = spawn_rotate(&dir);
    wait_for_request(&dir);
    wait_for_pending_sighup(streamer.child.id());
    streamer.kill9();
    let out = requester.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("stopped before answering the rotation request"),
        "{err}"
    );
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".pg_scribe.rotate")),
        "the request or its answer was left behind"
    );
}

/// A fatal error (here: the slot dropped behind the streamer's back) while a rotation waits:
/// the requester is answered with the cause.
#[test]
fn a_fatal_error_answers_the_waiting_rotation() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("reqfatal").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = start(&cluster, &dir, &dir.with_extension("log"));
    settle(&cluster, &chain, "something-to-seal");
    streamer.signal(libc::SIGSTOP);
    let requester = spawn_rotate(&dir);
    wait_for_request(&dir);
    // Cut the streamer's connection and drop its slot while it cannot react.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = cluster.try_psql(
            "app",
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 's' AND active_pid IS NOT NULL;
             SELECT pg_drop_replication_slot('s');",
        );
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    streamer.signal(libc::SIGCONT);
    let out = requester.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}\n{}", streamer.log_text());
    assert!(
        err.contains("the streamer could not rotate: the streamer stopped: replication slot \"s\""),
        "{err}\n{}",
        streamer.log_text()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while streamer.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            streamer.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Peak resident memory of a process, in kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A row whose text value is 200 MB is one wal2sql message: it streams through in pieces, so
/// the streamer's memory stays bounded (target: peak RSS < 64 MB), and the chain still replays
/// to the source.
#[test]
fn a_200_mb_value_streams_in_bounded_memory() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("hugevalue").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let streamer = start(&cluster, &dir, &dir.with_extension("log"));
    cluster.psql("app", "CREATE TABLE huge (id int PRIMARY KEY, body text)");
    // 200 MB once decoded; the repeated pattern keeps WAL and TOAST small.
    cluster.psql(
        "app",
        "INSERT INTO huge SELECT g, repeat(md5(g::text), 200 * 1024 * 1024 / 32) FROM generate_series(1, 2) g",
    );
    cluster.psql("app", "UPDATE huge SET body = body || 'tail' WHERE id = 2");
    settle(&cluster, &chain, "after-huge");
    let peak_kb = peak_rss_kb(streamer.child.id());
    eprintln!(
        "streamer peak RSS with 200 MB values: {:.1} MB",
        peak_kb as f64 / 1024.0
    );
    assert!(
        peak_kb < 64 * 1024,
        "peak RSS {peak_kb} kB while 200 MB values streamed"
    );
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// iptables rules added for a test, removed however it ends.
struct Firewall(Vec<Vec<String>>);

impl Firewall {
    fn drop(&mut self, rule: &[&str]) {
        let rule: Vec<String> = rule.iter().map(|s| s.to_string()).collect();
        let status = Command::new("iptables")
            .args(["-I", "INPUT"])
            .args(&rule)
            .args(["-j", "DROP"])
            .status()
            .unwrap();
        assert!(status.success(), "iptables -I INPUT {rule:?}");
        self.0.push(rule);
    }

    fn clear(&mut self) {
        for rule in self.0.drain(..) {
            let _ = Command::new("iptables")
                .args(["-D", "INPUT"])
                .args(&rule)
                .args(["-j", "DROP"])
                .status();
        }
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A network path that silently drops packets (no reset: a firewall or NAT that forgot the
/// connection) is noticed by the receive timeout, and the streamer reconnects once new
/// connections get through, with nothing lost or doubled. Runs only as root with iptables.
#[test]
fn a_silent_network_cut_is_noticed_and_survived() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: dropping packets with iptables needs root");
        return;
    }
    if Command::new("iptables")
        .arg("-L")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        eprintln!(
            "skipped: iptables is not installed or not usable here (scripts/install-deps.sh)"
        );
        return;
    }
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("netcut").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    // The streamer over TCP on 127.0.0.1; the test's own SQL goes over the Unix socket.
    let env: Vec<(String, String)> = cluster
        .env("app")
        .into_iter()
        .map(|(k, v)| {
            if k == "PGHOST" {
                (k, "127.0.0.1".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &env,
        &dir.with_extension("log"),
    );
    streamer.wait_log("Writing to:", 30);
    pgbench(&cluster, 50);
    settle(&cluster, &chain, "before-cut");
    let client_port = cluster
        .psql(
            "postgres",
            "SELECT client_port FROM pg_stat_replication WHERE client_addr IS NOT NULL",
        )
        .trim()
        .to_string();
    assert!(!client_port.is_empty(), "the streamer is not on TCP");
    let port = cluster.port.to_string();

    // The path goes silent: nothing in or out, no reset.
    let mut firewall = Firewall(Vec::new());
    firewall.drop(&["-p", "tcp", "--dport", &port]);
    firewall.drop(&["-p", "tcp", "--sport", &port]);
    pgbench(&cluster, 50);
    cluster.psql("app", "INSERT INTO marker VALUES ('during-cut')");
    streamer.wait_log("no message from the server for", 120);
    // The path returns, but the old connection stays forgotten: its packets still vanish.
    firewall.clear();
    firewall.drop(&["-p", "tcp", "--dport", &client_port]);
    firewall.drop(&["-p", "tcp", "--sport", &client_port]);
    streamer.wait_log("Reconnected", 180);
    wait_for_text(&chain, "during-cut", 120);
    pgbench(&cluster, 50);
    settle(&cluster, &chain, "after-cut");
    firewall.clear();
    assert_eq!(streamer.stop(), Some(0));
    assert_replays_equal(&cluster, &chain, "restored");
}

/// The sealed differentials of a chain, by name (not their manifests or saved roles).
fn sealed_diffs(chain: &Path) -> Vec<PathBuf> {
    crate::harness::chain_diffs(chain, false)
}

/// Wait until `text` is in a sealed differential of `chain`.
fn wait_sealed(chain: &Path, text: &str, streamer: &Streamer) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sealed_diffs(chain)
        .iter()
        .any(|d| std::fs::read_to_string(d).is_ok_and(|t| t.contains(text)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} was never sealed:\n{}",
            streamer.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `--start --rotate-every`: the streamer seals on its own — at the size right after the
/// transaction that reached it, at the interval under load — each seal a `--rotate-diff` seal
/// (manifest, sequence values), never a differential without a change, and an idle database
/// gets none. The chain restores equal to the source, nothing written twice.
#[test]
fn rotate_every_seals_on_its_own_by_size_and_by_time() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("rotevery").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = Streamer::start(
        &[
            "--backup-dir",
            dir.to_str().unwrap(),
            "-s",
            "1",
            "-F",
            "1",
            "--rotate-every=3s,16kB",
        ],
        &cluster.env("app"),
        &dir.with_extension("log"),
    );
    streamer.wait_log("Writing to:", 30);
    let rotations = |s: &Streamer| s.log_text().matches("Rotated differential: diff-").count();

    // One transaction past the size: sealed for it.
    cluster.psql(
        "app",
        "INSERT INTO notes (body, price) SELECT repeat('size ', 20) || g, g FROM generate_series(1, 400) g",
    );
    streamer.wait_log("Rotation due (active.sql reached", 60);
    streamer.wait_log("Rotated differential: diff-", 60);

    // Under load: several more seals.
    let before = rotations(&streamer);
    let mut load = Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-T", "8"])
        .envs(cluster.env("app"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while rotations(&streamer) < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled seals under load:\n{}",
            streamer.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(load.wait().unwrap().success());
    ddl_and_dml(&cluster, 1);
    settle(&cluster, &chain, "after-load");
    wait_sealed(&chain, "after-load", &streamer);

    // A small change (far below the size) is sealed by the interval alone, with nothing
    // streaming after it.
    let log_before = streamer.log_text().len();
    settle(&cluster, &chain, "last-change");
    wait_sealed(&chain, "last-change", &streamer);
    let log = streamer.log_text();
    assert!(
        log[log_before..].contains("Rotation due (3s since the last seal)"),
        "{log}"
    );
    assert!(!log.contains("nothing sealed"), "{log}");

    // Idle: more than two intervals pass without a seal.
    let sealed = sealed_diffs(&chain);
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert_eq!(
        sealed_diffs(&chain),
        sealed,
        "sealed while idle:\n{}",
        streamer.log_text()
    );
    assert!(sealed.len() >= 4, "{sealed:?}");
    // Every differential has a change (not only the sequence record) and a manifest.
    for diff in &sealed {
        let text = std::fs::read_to_string(diff).unwrap();
        assert!(
            text.lines()
                .any(|l| !l.starts_with("--") && !l.starts_with("SELECT pg_catalog.setval(")),
            "{} holds no change:\n{text}",
            diff.display()
        );
        let manifest = PathBuf::from(format!("{}.manifest.json", diff.display()));
        assert!(manifest.exists(), "{} has no manifest", diff.display());
    }
    let out = pg_scribe(&["--verify", "--backup-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));

    // Restored from the sealed differentials alone: equal to the source.
    let out = pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            "restored",
            "--create",
        ],
        &cluster.env("postgres"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
    let txns = chain_transactions(&chain);
    let mut unique = txns.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), txns.len(), "a transaction was written twice");
}

/// `--start --rotate-every … --compress`: the seals the streamer makes on its own are
/// compressed like `--rotate-diff --compress` does it (manifest pointing at the compressed file);
/// a `--rotate-diff` without `--compress` keeps its seal plain. Verify and restore read both.
#[test]
fn rotate_every_with_compress_compresses_its_own_seals() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("rotzst").join("backups");
    init(&cluster, &dir);
    let chain = newest_chain(&dir);
    let mut streamer = Streamer::start(
        &[
            "--backup-dir",
            dir.to_str().unwrap(),
            "-s",
            "1",
            "--rotate-every=2s",
            "--compress=zstd",
        ],
        &cluster.env("app"),
        &dir.with_extension("log"),
    );
    streamer.wait_log("Writing to:", 30);
    let compressed = |s: &Streamer| s.log_text().matches("✓ Compressed diff-").count();
    for round in 1..=2 {
        cluster.psql(
            "app",
            &format!("INSERT INTO notes (body, price) SELECT 'round {round} ' || g, g FROM generate_series(1, 100) g"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while compressed(&streamer) < round as usize {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round} was never compressed:\n{}",
                streamer.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // Asked for by --rotate-diff without --compress: kept plain (the requester decides). The
    // schedule made long, so that the requested seal is the one that takes the marker.
    assert_eq!(streamer.stop(), Some(0));
    let streamer = Streamer::start(
        &[
            "--backup-dir",
            dir.to_str().unwrap(),
            "-s",
            "1",
            "--rotate-every=1h",
            "--compress=zstd",
        ],
        &cluster.env("app"),
        &dir.with_extension("log2"),
    );
    settle(&cluster, &chain, "asked-for");
    let out = rotate(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let requested = err
        .split("Rotated differential: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{err}"))
        .to_string();
    // Give a wrong background compression the time to show up, then stop.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(streamer.stop(), Some(0));
    assert!(
        chain.join(&requested).exists(),
        "{requested} was compressed"
    );

    let names: Vec<String> = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let zst: Vec<&String> = names.iter().filter(|n| n.ends_with(".sql.zst")).collect();
    assert!(zst.len() >= 2, "{names:?}");
    for z in &zst {
        let plain = z.trim_end_matches(".zst");
        assert!(!names.iter().any(|n| n == plain), "{plain} left beside {z}");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(chain.join(format!("{plain}.manifest.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["file"], z.as_str());
    }
    let out = pg_scribe(&["--verify", "--backup-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            dir.to_str().unwrap(),
            "-d",
            "restored",
            "--create",
        ],
        &cluster.env("postgres"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
}
