//! `--new-chain` under load: the new chain restores alone to the source (no gap), the old chain
//! restores to a consistent database (no error), with the streamer running, stopped, or killed
//! during the new base.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::harness::{
    Cluster, Streamer, bindir, chain_transactions, pg_scribe, scratch_dir, stderr, wait_for_text,
};

fn source(cluster: &Cluster) {
    cluster.pgbench_source();
    cluster.psql("app", "CREATE TABLE marker (label text PRIMARY KEY)");
}

fn load(cluster: &Cluster, seconds: u32) -> Child {
    Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-T", &seconds.to_string()])
        .envs(cluster.env("app"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn chains(dir: &Path) -> Vec<PathBuf> {
    let mut chains: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .collect();
    chains.sort();
    chains
}

fn start(cluster: &Cluster, dir: &Path, log: &str) -> Streamer {
    let mut s = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &dir.with_extension(log),
    );
    s.wait_log("Writing to:", 30);
    s
}

fn new_chain(
    cluster: &Cluster,
    dir: &Path,
    env_extra: &[(String, String)],
) -> std::process::Output {
    let mut env = cluster.env("app");
    env.extend_from_slice(env_extra);
    pg_scribe(
        &["--new-chain", "--backup-dir", dir.to_str().unwrap()],
        &env,
    )
}

/// pgbench's transactions keep these four sums equal: a restore that holds a partial
/// transaction, or misses one, breaks them.
fn assert_pgbench_consistent(cluster: &Cluster, db: &str) {
    let sums = cluster.psql(
        db,
        "SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts) || ' ' ||
                (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers) || ' ' ||
                (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches) || ' ' ||
                (SELECT coalesce(sum(delta), 0) FROM pgbench_history)",
    );
    let parts: Vec<&str> = sums.split_whitespace().collect();
    assert!(
        parts.windows(2).all(|w| w[0] == w[1]),
        "{db} is inconsistent: {sums}"
    );
}

fn settle(cluster: &Cluster, chain: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    wait_for_text(chain, label, 60);
}

fn check_both_chains(cluster: &Cluster, dir: &Path) {
    let all = chains(dir);
    assert_eq!(all.len(), 2, "{all:?}");
    let (old, new) = (&all[0], &all[1]);
    assert!(
        !old.join("active.sql").exists(),
        "the old chain was not sealed"
    );
    cluster.replay_chain(new, "restored_new", true);
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored_new"),
        "the new chain alone must equal the source"
    );
    cluster.replay_chain(old, "restored_old", true);
    assert_pgbench_consistent(cluster, "restored_old");
    for chain in [old, new] {
        let txns = chain_transactions(chain);
        let mut unique = txns.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            txns.len(),
            "{}: a transaction twice",
            chain.display()
        );
    }
}

#[test]
fn new_chain_under_load_with_a_running_streamer() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("newchain").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let streamer = start(&cluster, &dir, "log");
    let mut pgbench = load(&cluster, 8);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = new_chain(&cluster, &dir, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}\n{}", streamer.log_text());
    assert!(err.contains("✓ Base backup complete: chain-"), "{err}");
    assert!(err.contains("✓ Sealed old chain: diff-"), "{err}");
    assert!(
        err.contains(&format!("same process, PID {}", streamer.child.id())),
        "{err}"
    );
    pgbench.wait().unwrap();
    let newest = chains(&dir).pop().unwrap();
    settle(&cluster, &newest, "done");
    assert_eq!(streamer.stop(), Some(0));
    assert_pgbench_consistent(&cluster, "app");
    check_both_chains(&cluster, &dir);
}

#[test]
fn new_chain_without_a_streamer_is_handed_over_by_the_next_start() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("newchain-off").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let streamer = start(&cluster, &dir, "log1");
    load(&cluster, 2).wait().unwrap();
    assert_eq!(streamer.stop(), Some(0));
    let mut pgbench = load(&cluster, 4);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = new_chain(&cluster, &dir, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("No streamer is running: the next pg_scribe --start streams into chain"),
        "{err}"
    );
    pgbench.wait().unwrap();
    let streamer = start(&cluster, &dir, "log2");
    assert!(
        streamer.log_text().contains("Sealed old chain")
            || streamer.log_text().contains("Closed old chain"),
        "{}",
        streamer.log_text()
    );
    let newest = chains(&dir).pop().unwrap();
    settle(&cluster, &newest, "done");
    assert_eq!(streamer.stop(), Some(0));
    check_both_chains(&cluster, &dir);
}

#[test]
fn streamer_killed_during_new_chain() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("newchain-kill").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let streamer = start(&cluster, &dir, "log1");
    let mut pgbench = load(&cluster, 8);
    // A pg_dump that takes its time, so the streamer can be killed during the base backup.
    let slow = scratch_dir("slowbin");
    std::fs::write(
        slow.join("pg_dump"),
        format!(
            "#!/bin/sh\nsleep 2\nexec {} \"$@\"\n",
            bindir().join("pg_dump").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(slow.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(bindir().join("pg_dumpall"), slow.join("pg_dumpall")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pg_scribe"))
        .args(["--new-chain", "--backup-dir", dir.to_str().unwrap()])
        .envs(cluster.env("app"))
        .env("PG_BINDIR", &slow)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    streamer.kill9();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("No streamer is running"), "{err}");
    pgbench.wait().unwrap();
    let streamer = start(&cluster, &dir, "log2");
    let newest = chains(&dir).pop().unwrap();
    settle(&cluster, &newest, "done");
    assert_eq!(streamer.stop(), Some(0));
    check_both_chains(&cluster, &dir);
}

#[test]
fn new_chain_in_a_directory_never_initialised() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("never");
    let out = new_chain(&cluster, &dir.join("missing"), &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hint: Initialize it with pg_scribe --init."),
        "{}",
        stderr(&out)
    );
    let out = new_chain(&cluster, &dir, &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("holds no complete chain"),
        "{}",
        stderr(&out)
    );
}

/// Replace each compressed differential of a chain by its plain form, for psql replay.
fn decompress_chain(chain: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for entry in std::fs::read_dir(chain).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy().into_owned();
        let Some(plain) = name.strip_suffix(".zst") else {
            continue;
        };
        let bytes = rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let mut r = pg_scribe::storage::compress::open_decompressed(&path)
                .await
                .unwrap();
            let mut v = Vec::new();
            r.read_to_end(&mut v).await.unwrap();
            v
        });
        std::fs::write(plain, bytes).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}

/// The spec's cron recipe: daily `--rotate-diff --compress`, monthly `--new-chain`. The
/// hand-over reads the old chain's compressed diffs through the decompressor.
#[test]
fn new_chain_after_compressed_rotations() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("newchain-zst").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let streamer = start(&cluster, &dir, "log");
    let mut pgbench = load(&cluster, 8);
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_secs(1));
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
    }
    let out = new_chain(&cluster, &dir, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}\n{}", streamer.log_text());
    assert!(err.contains("✓ Sealed old chain: diff-"), "{err}");
    pgbench.wait().unwrap();
    let newest = chains(&dir).pop().unwrap();
    settle(&cluster, &newest, "done");
    assert_eq!(streamer.stop(), Some(0));
    // A restart finds nothing to finish and streams on.
    let streamer = start(&cluster, &dir, "log2");
    settle(&cluster, &newest, "after-restart");
    assert_eq!(streamer.stop(), Some(0));
    decompress_chain(&chains(&dir)[0]);
    check_both_chains(&cluster, &dir);
}

fn chain_text(chain: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(chain).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("diff-") || name == "active.sql" {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

/// Two `--new-chain` runs before a streamer sees either: the chain in between still gets the
/// transactions up to the next chain's start, so each chain restores on its own.
#[test]
fn two_new_chains_before_the_streamer_notices() {
    let cluster = Cluster::start();
    source(&cluster);
    let dir = scratch_dir("newchain-two").join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let streamer = start(&cluster, &dir, "log1");
    load(&cluster, 2).wait().unwrap();
    settle(&cluster, &chains(&dir)[0], "in-first");
    assert_eq!(streamer.stop(), Some(0));

    cluster.psql("app", "INSERT INTO marker VALUES ('before-second')");
    let out = new_chain(&cluster, &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    cluster.psql(
        "app",
        "INSERT INTO marker VALUES ('between-second-and-third')",
    );
    load(&cluster, 1).wait().unwrap();
    let out = new_chain(&cluster, &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    cluster.psql("app", "INSERT INTO marker VALUES ('after-third')");

    let mut streamer = start(&cluster, &dir, "log2");
    let all = chains(&dir);
    assert_eq!(all.len(), 3, "{all:?}");
    settle(&cluster, &all[2], "done");
    streamer.wait_log(
        &format!(
            "Streaming to new chain: {}",
            all[2]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("chain-")
        ),
        60,
    );
    assert_eq!(streamer.stop(), Some(0));

    for old in &all[..2] {
        assert!(
            !old.join("active.sql").exists(),
            "{} was not sealed",
            old.display()
        );
    }
    let middle = chain_text(&all[1]);
    assert!(
        middle.contains("between-second-and-third"),
        "the middle chain lacks the transactions up to the third chain's start"
    );
    assert!(
        !middle.contains("before-second"),
        "in the middle chain's base already"
    );
    cluster.replay_chain(&all[2], "restored_third", true);
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored_third")
    );
    cluster.replay_chain(&all[1], "restored_second", true);
    assert_pgbench_consistent(&cluster, "restored_second");
    // It may also keep copies of what followed (an old chain stays consistent on its own).
    let labels = cluster.psql(
        "restored_second",
        "SELECT string_agg(label, ',' ORDER BY label) FROM marker",
    );
    assert!(
        labels.contains("before-second,between-second-and-third,"),
        "{labels}"
    );
}
