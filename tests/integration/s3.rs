//! `--backup-dir s3://…` end to end against a real S3-compatible server (moto's server mode,
//! installed by scripts/install-deps.sh), reached through a proxy the tests can switch off: the
//! store refusing connections or hanging mid-request, the streamer killed with uploads pending —
//! and what is restored from the store equals the source, no transaction lost or doubled.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Cluster, Streamer, bindir, pg_scribe, scratch_dir, stderr};
use crate::s3_server::S3Server;

const FORWARD: u8 = 0;
const REFUSE: u8 = 1;
const STALL: u8 = 2;

/// A TCP proxy in front of the store: forwards, refuses (closes each connection at once and
/// cuts the open ones), or stalls (holds connections without an answer).
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (m, o) = (mode.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                match m.load(Ordering::SeqCst) {
                    REFUSE => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    STALL => {
                        o.lock().unwrap().push(client);
                        continue;
                    }
                    _ => {}
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut list = o.lock().unwrap();
                    list.push(client.try_clone().unwrap());
                    list.push(server.try_clone().unwrap());
                }
                let pipe = |mut from: TcpStream, mut to: TcpStream, m: Arc<AtomicU8>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Stalled: hold what came and send nothing on.
                            while m.load(Ordering::SeqCst) == STALL {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if m.load(Ordering::SeqCst) == REFUSE
                                || to.write_all(&buf[..n]).is_err()
                            {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    m.clone(),
                );
                pipe(server, client, m.clone());
            }
        });
        Proxy { port, mode, open }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode != STALL {
            // Open connections end: refused ones now, stalled ones too (the client retries).
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The store behind its proxy, and the environment pg_scribe reaches it with.
struct Store {
    /// Kept for its lifetime: the server stops when the store is dropped.
    server: S3Server,
    proxy: Proxy,
    url: String,
}

impl Store {
    fn new(prefix: &str) -> Store {
        let server = S3Server::start();
        let proxy = Proxy::start(server.port);
        let url = server.url(prefix);
        Store { server, proxy, url }
    }

    /// The server's environment, with the endpoint moved to the proxy.
    fn env(&self, cluster: &Cluster, db: &str) -> Vec<(String, String)> {
        let mut env = cluster.env(db);
        let proxied = format!("http://127.0.0.1:{}", self.proxy.port);
        let direct = self.server.endpoint();
        env.extend(self.server.env().into_iter().map(|(k, v)| {
            if v == direct {
                (k, proxied.clone())
            } else {
                (k, v)
            }
        }));
        env
    }
}

/// Runs pg_scribe with the store's environment, the spool `--spool-dir` where the action takes it.
fn run(store: &Store, cluster: &Cluster, args: &[&str]) -> std::process::Output {
    pg_scribe(args, &store.env(cluster, "app"))
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(out));
}

fn source(cluster: &Cluster) {
    cluster.pgbench_source();
    cluster.psql(
        "app",
        "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);
         INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 200) g;
         CREATE TABLE marker (label text PRIMARY KEY);",
    );
}

fn workload(cluster: &Cluster, round: u32) {
    let out = Command::new(bindir().join("pgbench"))
        .args(["-n", "-c", "2", "-t", "100"])
        .envs(cluster.env("app"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.psql(
        "app",
        &format!(
            "UPDATE notes SET body = body || '{round}' WHERE id % 5 = {m};
             DELETE FROM notes WHERE id % 13 = {m};
             INSERT INTO notes (body) VALUES ('round {round}');
             CREATE TABLE IF NOT EXISTS r{round} (k int PRIMARY KEY, v text);
             INSERT INTO r{round} SELECT g, md5(g::text) FROM generate_series(1, 40) g;",
            m = round % 5
        ),
    );
}

/// Writes a marker and waits until the streamer has it in the spool's `active.sql`.
fn settle(cluster: &Cluster, spool: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(spool).unwrap().any(|e| {
            let chain = e.unwrap().path();
            std::fs::read_to_string(chain.join("active.sql")).is_ok_and(|t| t.contains(label))
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{label} never reached the spool");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spool_arg(spool: &Path) -> String {
    format!("--spool-dir={}", spool.display())
}

fn rotate(store: &Store, cluster: &Cluster, spool: &Path) {
    let out = run(
        store,
        cluster,
        &[
            "--rotate-diff",
            "--backup-dir",
            &store.url,
            &spool_arg(spool),
        ],
    );
    assert_ok(&out, "rotate");
}

/// Waits until the streamer has uploaded `count` differentials in all (by its log).
fn wait_uploads(streamer: &mut Streamer, count: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = streamer.log_text();
        let n = log
            .lines()
            .filter(|l| {
                l.contains("Uploaded chain-") && l.contains("/diff-") && l.contains(".sql (")
            })
            .count();
        if n >= count {
            return;
        }
        if let Ok(Some(status)) = streamer.child.try_wait() {
            panic!("streamer exited ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{count} upload(s) of differentials never happened:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(store: &Store, cluster: &Cluster, spool: &Path, log: &Path) -> Streamer {
    let mut streamer = Streamer::start(
        &[
            "--backup-dir",
            &store.url,
            &spool_arg(spool),
            "-s",
            "1",
            "-F",
            "1",
        ],
        &store.env(cluster, "app"),
        log,
    );
    streamer.wait_log("Writing to:", 60);
    streamer
}

/// Restores the newest chain from the store into `target` and checks it equals the source.
fn assert_restores_equal(store: &Store, cluster: &Cluster, target: &str) {
    let out = run(
        store,
        cluster,
        &[
            "--restore",
            "--backup-dir",
            &store.url,
            "-d",
            target,
            "--create",
        ],
    );
    assert_ok(&out, "restore");
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests(target),
        "{target} differs from the source:\n{}",
        stderr(&out)
    );
}

fn init(store: &Store, cluster: &Cluster, spool: &Path) {
    let out = run(
        store,
        cluster,
        &[
            "--init",
            "-d",
            "app",
            "--backup-dir",
            &store.url,
            &spool_arg(spool),
            "--slot",
            "s",
        ],
    );
    assert_ok(&out, "init");
    assert!(
        stderr(&out).contains("Uploaded the chain to s3://pg-scribe-test/"),
        "{}",
        stderr(&out)
    );
}

/// Files of the spool's chains, by name (what stays local).
fn spool_files(spool: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for chain in std::fs::read_dir(spool).unwrap() {
        let chain = chain.unwrap().path();
        if chain.is_dir() {
            for f in std::fs::read_dir(&chain).unwrap() {
                out.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_stream_rotate_new_chain_restore_verify_expire_through_the_store() {
    let cluster = Cluster::start();
    source(&cluster);
    let store = Store::new("app/main");
    let scratch = scratch_dir("s3");
    let spool = scratch.join("spool");
    init(&store, &cluster, &spool);
    // Only what the streamer needs stays local; the base is in the store.
    assert_eq!(spool_files(&spool), ["COMPLETE", "metadata.json"]);
    // --init refuses a prefix that holds a backup.
    let again = run(
        &store,
        &cluster,
        &[
            "--init",
            "-d",
            "app",
            "--backup-dir",
            &store.url,
            "--spool-dir",
            scratch.join("other").to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );

    let mut streamer = start(&store, &cluster, &spool, &scratch.join("stream.log"));
    // A second streamer elsewhere (another spool, here a copy) is kept off the prefix.
    let other = scratch.join("other-spool");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&spool)
        .arg(&other)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_file(other.join(".pg_scribe.pid")).unwrap();
    let out = run(
        &store,
        &cluster,
        &["--start", "--backup-dir", &store.url, &spool_arg(&other)],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is locked by the streamer on host"),
        "{}",
        stderr(&out)
    );
    workload(&cluster, 1);
    settle(&cluster, &spool, "one");
    // A point to restore to later with --up-to, and the source as it was then.
    let lsn_one = cluster
        .psql("app", "SELECT pg_current_wal_lsn()")
        .trim()
        .to_string();
    let digests_one = cluster.table_digests("app");
    rotate(&store, &cluster, &spool);
    workload(&cluster, 2);
    settle(&cluster, &spool, "two");
    rotate(&store, &cluster, &spool);
    wait_uploads(&mut streamer, 2, 120);
    assert_restores_equal(&store, &cluster, "restored1");
    // The newest sealed differential stays in the spool (the next one is linked to it).
    let files = spool_files(&spool);
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("diff-") && f.ends_with(".sql"))
            .count(),
        1,
        "{files:?}"
    );

    let out = run(
        &store,
        &cluster,
        &[
            "--new-chain",
            "-d",
            "app",
            "--backup-dir",
            &store.url,
            &spool_arg(&spool),
        ],
    );
    assert_ok(&out, "new-chain");
    workload(&cluster, 3);
    settle(&cluster, &spool, "three");
    rotate(&store, &cluster, &spool);
    // The old chain had nothing past the new chain's start: no seal at the hand-over.
    streamer.wait_log("Streaming to new chain", 60);
    wait_uploads(&mut streamer, 3, 120);
    assert_restores_equal(&store, &cluster, "restored2");
    // --up-to a point of the first chain: that chain is chosen, and read up to there.
    let out = run(
        &store,
        &cluster,
        &[
            "--restore",
            "--backup-dir",
            &store.url,
            "-d",
            "restored_one",
            "--create",
            "--up-to",
            &lsn_one,
        ],
    );
    assert_ok(&out, "restore --up-to");
    assert_eq!(
        digests_one,
        cluster.table_digests("restored_one"),
        "{}",
        stderr(&out)
    );

    let out = run(&store, &cluster, &["--verify", "--backup-dir", &store.url]);
    assert_ok(&out, "verify");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.matches(": intact").count(), 2, "{text}");

    let out = run(
        &store,
        &cluster,
        &[
            "--status",
            "--backup-dir",
            &store.url,
            &spool_arg(&spool),
            "--slot",
            "s",
        ],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(10)),
        "{}",
        stderr(&out)
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("Upload backlog"), "{report}");

    let out = run(
        &store,
        &cluster,
        &["--expire", "--backup-dir", &store.url, "--keep-chains", "1"],
    );
    assert_ok(&out, "expire");
    assert!(stderr(&out).contains("Removed chain-"), "{}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));
    // Still restorable from the one chain left, with everything streamed.
    assert_restores_equal(&store, &cluster, "restored3");
}

#[test]
fn an_unreachable_store_and_kill_9_lose_and_double_nothing() {
    let cluster = Cluster::start();
    source(&cluster);
    let store = Store::new("app");
    let scratch = scratch_dir("s3");
    let spool = scratch.join("spool");
    init(&store, &cluster, &spool);
    let log = scratch.join("stream.log");
    let mut streamer = start(&store, &cluster, &spool, &log);
    workload(&cluster, 1);
    settle(&cluster, &spool, "one");
    rotate(&store, &cluster, &spool);
    wait_uploads(&mut streamer, 1, 120);

    // The store refuses connections during a rotation: the seal is local, the upload waits.
    store.proxy.set(REFUSE);
    workload(&cluster, 2);
    settle(&cluster, &spool, "two");
    rotate(&store, &cluster, &spool);
    streamer.wait_log("will retry", 120);
    // --status says so, and what waits in the spool, rather than failing.
    let out = run(
        &store,
        &cluster,
        &[
            "--status",
            "--backup-dir",
            &store.url,
            &spool_arg(&spool),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["upload"]["store_error"].is_string(), "{report}");
    assert!(
        report["upload"]["backlog_files"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let codes: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"store_unreachable"), "{codes:?}");
    store.proxy.set(FORWARD);
    wait_uploads(&mut streamer, 2, 180);

    // Hung mid-upload, then killed: the next start uploads it again.
    workload(&cluster, 3);
    settle(&cluster, &spool, "three");
    store.proxy.set(STALL);
    rotate(&store, &cluster, &spool);
    std::thread::sleep(Duration::from_secs(3));
    streamer.kill9();
    // Sealed, and killed with its upload pending: another seal with nobody streaming.
    store.proxy.set(FORWARD);
    let mut streamer = start(&store, &cluster, &spool, &log);
    workload(&cluster, 4);
    settle(&cluster, &spool, "four");
    rotate(&store, &cluster, &spool);
    // Uploads counted over both runs' log: 2 before, then the pending one and the new one.
    wait_uploads(&mut streamer, 4, 180);
    assert_eq!(streamer.stop(), Some(0));
    assert_restores_equal(&store, &cluster, "restored");
    // No transaction twice across the sealed differentials in the store.
    let out = run(&store, &cluster, &["--verify", "--backup-dir", &store.url]);
    assert_ok(&out, "verify");
}
