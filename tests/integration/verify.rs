//! Backups that prove themselves: the streamer's sealed differentials carry manifests, `--verify`
//! checks them offline, and `--restore` refuses a damaged chain before touching the target. One
//! streamed source serves every case: each kind of damage is made on a copy of its backup
//! directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Cluster, Streamer, pg_scribe, scratch_dir, stderr, wait_for_text};

fn db_exists(cluster: &Cluster, db: &str) -> bool {
    cluster
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
        .trim()
        == "1"
}

fn chains(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .collect();
    v.sort();
    v
}

/// Sealed differentials of a chain (not manifests), by name.
fn diffs(chain: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(chain)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("diff-") && !n.ends_with(".manifest.json"))
        .collect();
    v.sort();
    v
}

fn id_of(chain: &Path) -> String {
    chain.file_name().unwrap().to_string_lossy()["chain-".len()..].to_string()
}

fn rotate(dir: &Path, compress: Option<&str>) {
    let mut args = vec!["--rotate-diff", "--backup-dir", dir.to_str().unwrap()];
    if let Some(c) = compress {
        args.extend(["--compress", c]);
    }
    let out = pg_scribe(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A few transactions of round `r`, then waits until the streamer wrote them.
fn round(cluster: &Cluster, chain: &Path, r: u32) {
    cluster.psql(
        "app",
        &format!(
            "INSERT INTO t SELECT 1000 * {r} + g, 'value ' || g FROM generate_series(1, 30) g"
        ),
    );
    cluster.psql(
        "app",
        &format!("UPDATE t SET v = v || ' r{r}' WHERE id % 7 = {}", r % 7),
    );
    cluster.psql("app", &format!("DELETE FROM t WHERE id = 1000 * {r} + 3"));
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('round-{r}')"));
    wait_for_text(chain, &format!("'round-{r}'"), 60);
}

fn verify(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--verify", "--backup-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    pg_scribe(&args, &[])
}

fn restore(cluster: &Cluster, dir: &Path, db: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--restore",
        "--backup-dir",
        dir.to_str().unwrap(),
        "-d",
        db,
        "--create",
    ];
    args.extend_from_slice(extra);
    pg_scribe(&args, &cluster.env("postgres"))
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Verify and restore a damaged copy of the backup: both exit 4 naming `names` (the first
/// problem); no database is left behind.
fn assert_refused(
    cluster: &Cluster,
    dir: &Path,
    chain_id: &str,
    case: &str,
    names: &str,
    what: &str,
) {
    let out = verify(dir, &["--chain-id", chain_id]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{case}: --verify: {text}");
    assert!(text.contains("DAMAGED"), "{case}: {text}");
    assert!(text.contains(names), "{case}: {names} not named: {text}");
    assert!(text.contains(what), "{case}: {what:?} not said: {text}");

    let out = verify(dir, &["--chain-id", chain_id, "--json"]);
    assert_eq!(out.status.code(), Some(4), "{case}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["status"], "damaged", "{case}");
    assert_eq!(v["chains"][0]["intact"], false, "{case}");

    let db = format!("r_{case}");
    let out = restore(cluster, dir, &db, &["--chain-id", chain_id]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{case}: --restore: {err}");
    assert!(
        err.contains(&format!("chain {chain_id} is damaged")),
        "{case}: {err}"
    );
    assert!(err.contains(names), "{case}: {err}");
    assert!(err.contains("Nothing was restored"), "{case}: {err}");
    assert!(
        !db_exists(cluster, &db),
        "{case}: a database was left behind"
    );
}

#[test]
fn damage_of_every_kind_is_found_by_verify_and_refused_by_restore() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE EXTENSION wal2sql;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE marker (label text PRIMARY KEY);
         INSERT INTO t SELECT g, 'base ' || g FROM generate_series(1, 50) g;",
    );
    let work = scratch_dir("verify");
    let dir = work.join("backups");
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let a = chains(&dir).pop().unwrap();
    let mut streamer = Streamer::start(
        &["--backup-dir", dir.to_str().unwrap(), "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &work.join("streamer.log"),
    );
    streamer.wait_log("Writing to:", 30);
    round(&cluster, &a, 1);
    rotate(&dir, None);
    round(&cluster, &a, 2);
    rotate(&dir, None);
    round(&cluster, &a, 3);
    rotate(&dir, None);
    round(&cluster, &a, 4);
    // A second chain (the hand-over seals chain A's last differential), sealed twice, the
    // second time compressed; its first differential serves as a "foreign" one for chain A.
    // (A hand-over refuses an old chain with compressed differentials, so chain A has none.)
    let out = pg_scribe(
        &["--new-chain", "--backup-dir", dir.to_str().unwrap()],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "new chain: {}", stderr(&out));
    let b = chains(&dir).pop().unwrap();
    assert_ne!(a, b);
    round(&cluster, &b, 5);
    rotate(&dir, None);
    round(&cluster, &b, 6);
    rotate(&dir, Some("zstd"));
    round(&cluster, &b, 7);
    assert_eq!(streamer.stop(), Some(0));

    let (a_id, b_id) = (id_of(&a), id_of(&b));
    let a_diffs = diffs(&a);
    assert_eq!(a_diffs.len(), 4, "{a_diffs:?}");
    let b_diffs = diffs(&b);
    assert_eq!(b_diffs.len(), 2, "{b_diffs:?}");
    assert!(b_diffs[1].ends_with(".sql.zst"), "{b_diffs:?}");
    for (chain, id, d) in a_diffs
        .iter()
        .map(|d| (&a, &a_id, d))
        .chain(b_diffs.iter().map(|d| (&b, &b_id, d)))
    {
        let plain = d.trim_end_matches(".zst");
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(chain.join(format!("{plain}.manifest.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["file"], d.as_str(), "manifest follows compression");
        assert_eq!(m["chain_id"], id.as_str());
    }

    // Intact: --verify and --restore exit 0.
    let out = verify(&dir, &[]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}{}", stderr(&out));
    assert!(
        report.contains(&format!("Chain {a_id}: intact (4 sealed differential(s)")),
        "{report}"
    );
    assert!(
        report.contains(&format!("Chain {b_id}: intact (2 sealed differential(s)")),
        "{report}"
    );
    let out = verify(&dir, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "intact");
    assert_eq!(v["chains"].as_array().unwrap().len(), 2);
    assert!(
        a.join("verify.json").exists(),
        "last result stored for --status"
    );
    let out = restore(&cluster, &dir, "whole_a", &["--chain-id", &a_id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = restore(&cluster, &dir, "whole_b", &["--include-active"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        cluster.table_digests("whole_b"),
        cluster.table_digests("app")
    );

    // Each kind of damage, on its own copy.
    let case = |name: &str| {
        let d = work.join(format!("case-{name}"));
        copy_dir(&dir, &d);
        (
            d.clone(),
            d.join(format!("chain-{a_id}")),
            d.join(format!("chain-{b_id}")),
        )
    };

    let (d, c, _) = case("missing");
    std::fs::remove_file(c.join(&a_diffs[1])).unwrap();
    assert_refused(&cluster, &d, &a_id, "missing", &a_diffs[1], "missing");

    let (d, c, _) = case("byte");
    let p = c.join(&a_diffs[0]);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"value ")
        .expect("a value in the first differential");
    bytes[at] = b'V';
    std::fs::write(&p, bytes).unwrap();
    assert_refused(&cluster, &d, &a_id, "byte", &a_diffs[0], "content changed");

    let (d, c, _) = case("cut");
    let p = c.join(&a_diffs[1]);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 20)
        .unwrap();
    assert_refused(
        &cluster,
        &d,
        &a_id,
        "cut",
        &a_diffs[1],
        "ends inside a transaction",
    );

    let (d, c, _) = case("foreign");
    let b_diff = &b_diffs[0];
    std::fs::copy(b.join(b_diff), c.join(b_diff)).unwrap();
    std::fs::copy(
        b.join(format!("{b_diff}.manifest.json")),
        c.join(format!("{b_diff}.manifest.json")),
    )
    .unwrap();
    assert_refused(
        &cluster,
        &d,
        &a_id,
        "foreign",
        b_diff,
        &format!("belongs to chain {b_id}"),
    );

    let (d, _, c) = case("zst");
    let p = c.join(&b_diffs[1]);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(&cluster, &d, &b_id, "zst", &b_diffs[1], "cut short");

    // --status shows the last verification of each chain.
    let out = pg_scribe(
        &[
            "--status",
            "--backup-dir",
            work.join("case-zst").to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let chains_json = v["backup_dir"]["chains"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let a_json = chains_json
        .iter()
        .find(|c| c["id"] == b_id.as_str())
        .unwrap_or_else(|| panic!("chain {b_id} in {v}"));
    assert_eq!(a_json["last_verification"]["intact"], false, "{v}");
}

#[test]
fn json_is_printed_for_errors_too() {
    let out = pg_scribe(
        &[
            "--verify",
            "--backup-dir",
            "/nonexistent/pg_scribe",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["status"], "error");
    assert_eq!(v["code"], 4);
    assert!(
        v["message"].as_str().unwrap().contains("does not exist"),
        "{v}"
    );
    // Misuse is exit 5, as JSON too.
    let out = pg_scribe(&["--verify", "--json"], &[]);
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["code"], 5);
}
