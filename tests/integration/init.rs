//! `--init` end to end on throwaway clusters: the chain it writes, each validation failure,
//! the refusals that touch nothing, cleanup after a failure or a signal, and exactness of the
//! base/stream cut while writers are running.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pg_scribe::storage::metadata::Metadata;

use crate::harness::{
    Cluster, REPLAY_OPTIONS, has_output_plugin_libraries, pg_scribe, scratch_dir, stderr,
};

fn init(cluster: &Cluster, db: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--init",
        "-d",
        db,
        "--backup-dir",
        dir.to_str().unwrap(),
        "--slot",
        "s",
    ];
    args.extend_from_slice(extra);
    pg_scribe(&args, &cluster.env(db))
}

fn app_database(cluster: &Cluster) {
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, tags text[]);
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5, ARRAY['a', 'b' || g] FROM generate_series(1, 500) g;
         CREATE TABLE \"Mixed Case\" (k text PRIMARY KEY, v jsonb);
         INSERT INTO \"Mixed Case\" VALUES ('x', '{\"a\": [1, 2]}'), ('y', 'null');",
    );
}

fn only_chain(dir: &Path) -> PathBuf {
    let chains: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .collect();
    assert_eq!(chains.len(), 1, "{chains:?}");
    chains.into_iter().next().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn slots(cluster: &Cluster) -> String {
    cluster.psql(
        "postgres",
        "SELECT string_agg(slot_name, ',') FROM pg_replication_slots",
    )
}

/// Restore a chain's base (and globals) into a new database `target`.
fn restore_base(cluster: &Cluster, chain: &Path, base: &Path, target: &str) {
    cluster.create_database(target);
    // Globals name roles that exist already (postgres): errors there are expected.
    let _ = cluster.psql_file("postgres", &chain.join("globals.sql"), None);
    let out = cluster.psql_file(target, base, Some("-c wal2sql.capture=off"));
    assert!(
        out.status.success(),
        "restoring the base failed: {}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_complete_private_restorable_chain() {
    let cluster = Cluster::start();
    app_database(&cluster);
    let dir = scratch_dir("init").join("backups");
    let out = init(&cluster, "app", &dir, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("✓ wal_level = logical"), "{err}");
    assert!(
        err.contains("✓ Replication slot 's' created at LSN "),
        "{err}"
    );
    assert!(err.contains("✓ Initial chain created: "), "{err}");
    assert!(err.contains("Next step: Start streaming with:"), "{err}");

    let chain = only_chain(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&chain), 0o700);
    for file in ["base.sql", "globals.sql", "metadata.json", "COMPLETE"] {
        assert_eq!(mode(&chain.join(file)), 0o600, "{file}");
    }
    let meta: Metadata =
        serde_json::from_str(&std::fs::read_to_string(chain.join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta.source.database, "app");
    assert_eq!(meta.slot, "s");
    assert_eq!(meta.source.encoding, "UTF8");
    assert_eq!(meta.source.server_version_num / 10000, cluster.major());
    assert_eq!(
        format!("chain-{}", meta.chain_id),
        chain.file_name().unwrap().to_string_lossy()
    );
    assert!(meta.source.extensions.iter().any(|e| e.name == "wal2sql"));
    let confirmed = cluster.psql(
        "postgres",
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's'",
    );
    assert_eq!(
        meta.start_lsn.to_string(),
        confirmed.trim(),
        "start_lsn is the slot's consistent point"
    );
    let sysid = cluster.psql(
        "postgres",
        "SELECT system_identifier FROM pg_control_system()",
    );
    assert_eq!(meta.system_identifier, sysid.trim());
    for file in &meta.files {
        let bytes = std::fs::read(chain.join(&file.name)).unwrap();
        assert_eq!(file.size, bytes.len() as u64);
    }

    restore_base(&cluster, &chain, &chain.join("base.sql"), "restored");
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
}

#[test]
fn every_compression_method_round_trips() {
    let cluster = Cluster::start();
    app_database(&cluster);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (spec, ext) in [("gzip", ".gz"), ("lz4:1", ".lz4"), ("zstd:9", ".zst")] {
        cluster.psql(
            "postgres",
            "SELECT pg_drop_replication_slot('s') FROM pg_replication_slots WHERE slot_name = 's'",
        );
        let dir = scratch_dir("compress").join("backups");
        let out = init(&cluster, "app", &dir, &["--compress", spec]);
        assert_eq!(out.status.code(), Some(0), "{spec}: {}", stderr(&out));
        let chain = only_chain(&dir);
        let base = chain.join(format!("base.sql{ext}"));
        assert!(base.exists(), "{spec}: no {}", base.display());
        let plain = rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut reader = pg_scribe::storage::compress::open_decompressed(&base)
                .await
                .unwrap();
            let mut text = Vec::new();
            reader.read_to_end(&mut text).await.unwrap();
            text
        });
        let meta: Metadata =
            serde_json::from_str(&std::fs::read_to_string(chain.join("metadata.json")).unwrap())
                .unwrap();
        let (size, sha) = rt
            .block_on(pg_scribe::storage::compress::file_digest(&base))
            .unwrap();
        let record = meta.file(&format!("base.sql{ext}")).expect("base recorded");
        assert_eq!(
            (record.size, record.sha256.as_str()),
            (size, sha.as_str()),
            "{spec}"
        );
        let unpacked = dir.join("base.sql");
        std::fs::write(&unpacked, plain).unwrap();
        let target = format!("restored_{}", &ext[1..]);
        std::fs::write(chain.join("globals.sql"), "").unwrap();
        restore_base(&cluster, &chain, &unpacked, &target);
        assert_eq!(
            cluster.table_digests("app"),
            cluster.table_digests(&target),
            "{spec}"
        );
    }
}

/// Each critical check fails with its fix, exit 5, and nothing is created.
#[test]
fn validation_failures_exit_5_with_the_fix_and_touch_nothing() {
    let mut cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["wal_level = replica"],
            "✗ wal_level = replica (must be logical)",
            "fix: ALTER SYSTEM SET wal_level = logical;",
        ),
        (
            vec!["max_replication_slots = 1"],
            "✗ max_replication_slots = 1 (1 in use, none free)",
            "fix: ALTER SYSTEM SET max_replication_slots = 2;",
        ),
        (
            vec![],
            "✗ 1 table without a usable replica identity: public.nokey",
            "fix: ALTER TABLE public.nokey REPLICA IDENTITY FULL;",
        ),
    ];
    if has_output_plugin_libraries() {
        cases.push((
            vec!["output_plugin_libraries = 'pgoutput'"],
            "✗ output_plugin_libraries = 'pgoutput' does not list wal2sql",
            "fix: ALTER SYSTEM SET output_plugin_libraries = 'pgoutput', 'wal2sql';  SELECT pg_reload_conf();",
        ));
    }
    for (conf, failure, fix) in cases {
        let cluster = Cluster::start_with(&conf);
        cluster.create_database("app");
        if conf.is_empty() {
            cluster.psql("app", "CREATE TABLE nokey (a int, b text)");
        }
        if conf == ["max_replication_slots = 1"] {
            cluster.psql(
                "postgres",
                "SELECT pg_create_physical_replication_slot('other')",
            );
        }
        let dir = scratch_dir("invalid").join("backups");
        let out = init(&cluster, "app", &dir, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{conf:?}: {err}");
        assert!(err.contains(failure), "{conf:?}: {err}");
        assert!(err.contains(fix), "{conf:?}: {err}");
        assert!(
            err.contains("pg_scribe: error: validation failed: 1 critical problem found"),
            "{err}"
        );
        assert!(!dir.exists(), "{conf:?}: backup directory created");
        assert!(
            !slots(&cluster).contains('s') || conf == ["max_replication_slots = 1"],
            "slot created"
        );
        let ext = cluster.psql(
            "app",
            "SELECT count(*) FROM pg_extension WHERE extname = 'wal2sql'",
        );
        assert_eq!(ext.trim(), "0", "{conf:?}: extension created");

        if conf.is_empty() {
            let out = init(&cluster, "app", &dir, &["--force"]);
            assert_eq!(out.status.code(), Some(0), "--force: {}", stderr(&out));
            assert!(
                stderr(&out)
                    .contains("continuing despite 1 failed check(s) because --force was given")
            );
        }
    }
}

#[test]
fn a_non_empty_directory_or_an_existing_slot_is_refused_untouched() {
    let cluster = Cluster::start();
    app_database(&cluster);
    let dir = scratch_dir("nonempty");
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let out = init(&cluster, "app", &dir, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!(
        "pg_scribe: error: backup directory \"{}\" exists and is not empty",
        dir.display()
    )));
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("precious.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(slots(&cluster).trim(), "");

    cluster.psql(
        "app",
        "SELECT pg_create_logical_replication_slot('s', 'test_decoding')",
    );
    let fresh = scratch_dir("slotexists").join("backups");
    let out = init(&cluster, "app", &fresh, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("pg_scribe: error: replication slot \"s\" already exists"),
        "{err}"
    );
    assert!(!fresh.exists());
}

/// A directory with fake `pg_dump`/`pg_dumpall` that misbehave, to fail init after the slot.
fn fake_bindir(pg_dump_script: &str) -> PathBuf {
    let dir = scratch_dir("fakebin");
    let real = crate::harness::bindir();
    std::fs::write(
        dir.join("pg_dump"),
        format!("#!/bin/sh\n{pg_dump_script}\n"),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(real.join("pg_dumpall"), dir.join("pg_dumpall")).unwrap();
    dir
}

#[test]
fn pg_dump_failing_midway_drops_the_slot_and_cleans_up() {
    let cluster = Cluster::start();
    app_database(&cluster);
    let bindir = fake_bindir(
        "echo 'CREATE TABLE half_written (a int);'\necho 'pg_dump: error: query failed: out of memory' >&2\nexit 1",
    );
    let dir = scratch_dir("dumpfail").join("backups");
    let mut env = cluster.env("app");
    env.push(("PG_BINDIR".into(), bindir.display().to_string()));
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
        &env,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("pg_scribe: error: pg_dump failed (exit status: 1)"),
        "{err}"
    );
    assert!(
        err.contains("pg_scribe: detail: pg_dump: error: query failed: out of memory"),
        "{err}"
    );
    assert!(
        err.contains("Cleaned up: dropped slot 's' and removed the partial backup"),
        "{err}"
    );
    assert!(!dir.exists(), "partial backup left behind");
    assert_eq!(slots(&cluster).trim(), "", "slot left behind");
}

#[test]
fn sigint_during_the_base_backup_cleans_up() {
    let cluster = Cluster::start();
    app_database(&cluster);
    let bindir = fake_bindir("echo '-- dump starts'\nexec sleep 60");
    let dir = scratch_dir("sigint").join("backups");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pg_scribe"));
    cmd.args([
        "--init",
        "-d",
        "app",
        "--backup-dir",
        dir.to_str().unwrap(),
        "--slot",
        "s",
    ]);
    cmd.envs(
        cluster
            .env("app")
            .into_iter()
            .chain([("PG_BINDIR".to_string(), bindir.display().to_string())]),
    );
    cmd.stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait until the base backup is under way (the chain directory exists).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(dir.exists() && std::fs::read_dir(&dir).unwrap().next().is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "init never started its base backup"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("initialization interrupted by SIGINT"),
        "{err}"
    );
    assert!(!dir.exists());
    assert_eq!(slots(&cluster).trim(), "");
}

/// Writers run through the whole init: base + stream from the slot must equal the source, with
/// no row missing and none twice.
#[test]
fn base_and_stream_meet_exactly_under_load() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE EXTENSION wal2sql;
         CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO counters SELECT g, 0 FROM generate_series(1, 50) g;
         CREATE TABLE log (id bigserial PRIMARY KEY, writer int, at timestamptz DEFAULT clock_timestamp());",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let stop = stop.clone();
            let env = cluster.env("app");
            std::thread::spawn(move || {
                let sql = format!(
                    "INSERT INTO log (writer) VALUES ({w});
                     UPDATE counters SET n = n + 1 WHERE id = (random() * 49)::int + 1;
                     DELETE FROM log WHERE id IN (SELECT id FROM log WHERE writer = {w} ORDER BY id LIMIT 1) AND random() < 0.3;"
                );
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    let status = std::process::Command::new(crate::harness::bindir().join("psql"))
                        .args(["-X", "-q", "-c", &sql])
                        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .output()
                        .unwrap();
                    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = scratch_dir("load").join("backups");
    let out = init(&cluster, "app", &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let rounds: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(rounds > 20, "writers barely ran ({rounds} rounds)");

    let chain = only_chain(&dir);
    restore_base(&cluster, &chain, &chain.join("base.sql"), "restored");
    let changes = cluster.psql(
        "app",
        "SELECT string_agg(data, E'\\n') || E'\\n' FROM pg_logical_slot_get_changes('s', NULL, NULL)",
    );
    assert!(
        changes.contains("-- wal2sql begin"),
        "no transactions streamed after the slot's point"
    );
    let file = dir.join("stream.sql");
    std::fs::write(&file, changes).unwrap();
    let out = cluster.psql_file("restored", &file, Some(REPLAY_OPTIONS));
    assert!(out.status.success(), "replay failed: {}", stderr(&out));
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored")
    );
}
