//! `--jobs`: a base taken in pg_dump's directory format (`base.dir/`) by `--init` and
//! `--new-chain`, streamed and rotated on as any chain, restored with pg_restore in parallel and
//! in one transaction to a copy equal to the source; `--verify` and `--restore` find a damaged,
//! missing or stray file inside it; its files are private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Cluster, Streamer, pg_scribe, scratch_dir, stderr, wait_for_text};

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

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A directory base: no base.sql beside it, 0700 and every file 0600, each file recorded in
/// metadata.json (format 2); returns the names of its files.
fn assert_directory_base(chain: &Path) -> Vec<String> {
    let base = chain.join("base.dir");
    assert!(base.is_dir(), "{}: no base.dir", chain.display());
    assert!(!chain.join("base.sql").exists());
    assert_eq!(mode(&base), 0o700, "base.dir");
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(md["format"], 2, "{md}");
    assert_eq!(md["base_format"], "directory", "{md}");
    let recorded: Vec<String> = md["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let mut names = Vec::new();
    for e in std::fs::read_dir(&base).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(mode(&e.path()), 0o600, "base.dir/{name}");
        assert!(
            recorded.contains(&format!("base.dir/{name}")),
            "base.dir/{name} not in metadata.json: {recorded:?}"
        );
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "toc.dat"), "{names:?}");
    names
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

fn source(cluster: &Cluster) {
    cluster.pgbench_source();
    cluster.psql(
        "app",
        "CREATE TABLE marker (label text PRIMARY KEY);
         CREATE TABLE wide (id int PRIMARY KEY, a text, b bytea, c jsonb);
         INSERT INTO wide SELECT g, repeat('x', g % 50), decode(md5(g::text), 'hex'),
                                 jsonb_build_object('g', g, 'tab', E'a\\tb\\nc')
           FROM generate_series(1, 2000) g;",
    );
}

fn settle(cluster: &Cluster, chain: &Path, label: &str) {
    cluster.psql("app", &format!("INSERT INTO marker VALUES ('{label}')"));
    wait_for_text(chain, label, 60);
}

fn work(cluster: &Cluster, round: u32) {
    cluster.psql(
        "app",
        &format!(
            "UPDATE pgbench_accounts SET abalance = abalance + {round} WHERE aid % 97 = {round};
             INSERT INTO wide SELECT 10000 * {round} + g, 'r', NULL, NULL FROM generate_series(1, 50) g;
             DELETE FROM wide WHERE id % 101 = {round};"
        ),
    );
}

#[test]
fn init_with_jobs_streams_rotates_and_restores_in_parallel_to_the_source() {
    let cluster = Cluster::start();
    source(&cluster);
    let w = scratch_dir("parallel-base");
    let dir = w.join("backups");
    let d = dir.to_str().unwrap();
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", d, "--jobs", "2"],
        &cluster.env("app"),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "init: {err}");
    assert!(err.contains("2 parallel jobs"), "{err}");
    let chain = chains(&dir).pop().unwrap();
    assert_directory_base(&chain);
    // pgbench's 100,000 + 10 + 1 rows and wide's 2,000.
    let base_rows = "100,000 + 10 + 1 + 2,000";

    let mut streamer = Streamer::start(
        &["--backup-dir", d, "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &w.join("streamer.log"),
    );
    streamer.wait_log("Writing to:", 30);
    work(&cluster, 1);
    settle(&cluster, &chain, "one");
    let out = pg_scribe(&["--rotate-diff", "--backup-dir", d], &[]);
    assert_eq!(out.status.code(), Some(0), "rotate: {}", stderr(&out));
    work(&cluster, 2);
    settle(&cluster, &chain, "two");
    let out = pg_scribe(&["--rotate-diff", "--backup-dir", d], &[]);
    assert_eq!(out.status.code(), Some(0), "rotate: {}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));

    let out = pg_scribe(&["--verify", "--backup-dir", d], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let out = pg_scribe(
        &["--status", "--backup-dir", d, "-d", "app"],
        &cluster.env("app"),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(text.contains("directory format"), "status: {text}");

    let source = cluster.table_digests("app");
    for (db, extra) in [
        ("restored_parallel", &["--jobs", "2"][..]),
        ("restored_serial", &[][..]),
    ] {
        let out = restore(&cluster, &dir, db, extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{db}: {err}");
        assert!(
            err.contains("✓ Restored base backup (102,011 rows)"),
            "{db}: expected {base_rows} rows: {err}"
        );
        assert!(err.contains("✓ Applied 2 differentials"), "{db}: {err}");
        assert!(err.contains("base.dir: "), "{db}: {err}");
        assert_eq!(
            source,
            cluster.table_digests(db),
            "{db} differs from the source"
        );
    }
}

#[test]
fn a_damaged_missing_or_stray_file_of_a_directory_base_is_found() {
    let cluster = Cluster::start();
    cluster.create_database("app");
    cluster.psql(
        "app",
        "CREATE EXTENSION wal2sql;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE u (id int PRIMARY KEY);
         INSERT INTO t SELECT g, 'base ' || g FROM generate_series(1, 500) g;
         INSERT INTO u SELECT g FROM generate_series(1, 10) g;",
    );
    let dir = scratch_dir("parallel-damage").join("backups");
    let d = dir.to_str().unwrap();
    if cluster.major() < 16 {
        // pg_dump before 16 compresses a directory base with gzip only: refused before the
        // slot or the directory exist.
        let out = pg_scribe(
            &[
                "--init",
                "-d",
                "app",
                "--backup-dir",
                d,
                "-j",
                "2",
                "--compress",
                "zstd",
            ],
            &cluster.env("app"),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(
            err.contains("cannot compress a directory-format base with zstd"),
            "{err}"
        );
        assert!(!dir.exists(), "{err}");
        let slots = cluster.psql("app", "SELECT count(*) FROM pg_replication_slots");
        assert_eq!(slots.trim(), "0");
    }
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", d, "-j", "2"],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let chain = chains(&dir).pop().unwrap();
    let names = assert_directory_base(&chain);
    let data = names
        .iter()
        .filter(|n| n.ends_with(".dat") && *n != "toc.dat")
        .map(|n| chain.join("base.dir").join(n))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a table data file");
    let data_name = format!("base.dir/{}", data.file_name().unwrap().to_string_lossy());
    let original = std::fs::read(&data).unwrap();

    let check = |case: &str, named: &str, said: &str| {
        let out = pg_scribe(&["--verify", "--backup-dir", d], &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{case}: {text}");
        assert!(
            text.contains(named) && text.contains(said),
            "{case}: {text}"
        );
        let db = format!("r_{case}");
        let out = restore(&cluster, &dir, &db, &["--jobs", "2"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{case}: {err}");
        assert!(
            err.contains("is damaged") && err.contains(named),
            "{case}: {err}"
        );
    };

    // One byte changed, same size.
    let mut changed = original.clone();
    changed[0] ^= 0x01;
    std::fs::write(&data, &changed).unwrap();
    check("changed", &data_name, "content changed");
    // Cut short.
    std::fs::write(&data, &original[..original.len() / 2]).unwrap();
    check("short", &data_name, "cut short");
    // Gone.
    std::fs::remove_file(&data).unwrap();
    check("missing", &data_name, "missing");
    std::fs::write(&data, &original).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A file pg_restore would read that the base never had.
    let stray = chain.join("base.dir").join("9999.dat");
    std::fs::write(&stray, b"1\n\\.\n").unwrap();
    check(
        "stray",
        "base.dir/9999.dat",
        "not described in metadata.json",
    );
    std::fs::remove_file(&stray).unwrap();
    // The table of contents gone.
    let toc = chain.join("base.dir/toc.dat");
    let toc_bytes = std::fs::read(&toc).unwrap();
    std::fs::remove_file(&toc).unwrap();
    check("toc", "base.dir/toc.dat", "missing");
    std::fs::write(&toc, toc_bytes).unwrap();

    let out = pg_scribe(&["--verify", "--backup-dir", d], &[]);
    assert_eq!(out.status.code(), Some(0), "repaired: {}", stderr(&out));

    // A base that is whole but that the server refuses (a row that is not an integer, with
    // metadata.json rewritten to match): pg_restore fails, exit 4, and the parallel restore's
    // partial work is dropped with --create, or named in the hint without it.
    let mut bad = b"not a number\tx\n".to_vec();
    bad.extend_from_slice(&original);
    std::fs::write(&data, &bad).unwrap();
    let md_path = chain.join("metadata.json");
    let mut md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&md_path).unwrap()).unwrap();
    for f in md["files"].as_array_mut().unwrap() {
        if f["name"] == data_name.as_str() {
            f["size"] = bad.len().into();
            f["sha256"] =
                pg_scribe::storage::compress::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bad))
                    .into();
        }
    }
    std::fs::write(&md_path, md.to_string()).unwrap();
    let out = restore(&cluster, &dir, "r_refused", &["--jobs", "2"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("restoring the base backup"), "{err}");
    assert!(
        err.contains("invalid input syntax for type integer"),
        "{err}"
    );
    assert!(
        err.contains("Dropped the partially restored database \"r_refused\""),
        "{err}"
    );
    cluster.create_database("r_existing");
    let out = pg_scribe(
        &[
            "--restore",
            "--backup-dir",
            d,
            "-d",
            "r_existing",
            "--jobs",
            "2",
        ],
        &cluster.env("postgres"),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("now holds part of the base"), "{err}");
}

#[test]
fn new_chain_with_jobs_and_compression_restores_alone_to_the_source() {
    let cluster = Cluster::start();
    source(&cluster);
    let w = scratch_dir("parallel-newchain");
    let dir = w.join("backups");
    let d = dir.to_str().unwrap();
    let out = pg_scribe(
        &["--init", "-d", "app", "--backup-dir", d],
        &cluster.env("app"),
    );
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let first = chains(&dir).pop().unwrap();
    assert!(first.join("base.sql").is_file());
    work(&cluster, 1);

    let out = pg_scribe(
        &[
            "--new-chain",
            "--backup-dir",
            d,
            "--jobs",
            "2",
            "--compress",
            "gzip:1",
        ],
        &cluster.env("app"),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "new chain: {err}");
    let chain = chains(&dir).pop().unwrap();
    assert_ne!(chain, first);
    let names = assert_directory_base(&chain);
    assert!(
        names.iter().any(|n| n.ends_with(".dat.gz")),
        "pg_dump did not compress: {names:?}"
    );
    assert!(chain.join("globals.sql.gz").is_file());

    // The next --start hands over to the new chain; changes after its base land there.
    let mut streamer = Streamer::start(
        &["--backup-dir", d, "-s", "1", "-F", "1"],
        &cluster.env("app"),
        &w.join("streamer.log"),
    );
    streamer.wait_log("Writing to:", 30);
    work(&cluster, 2);
    settle(&cluster, &chain, "after");
    let out = pg_scribe(&["--rotate-diff", "--backup-dir", d], &[]);
    assert_eq!(out.status.code(), Some(0), "rotate: {}", stderr(&out));
    assert_eq!(streamer.stop(), Some(0));

    let out = restore(&cluster, &dir, "restored", &["--jobs", "3"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("pg_restore, 3 parallel jobs"), "{err}");
    assert_eq!(
        cluster.table_digests("app"),
        cluster.table_digests("restored"),
        "the directory chain differs from the source"
    );
    // A plain base with --jobs: one stream, said so.
    let id = first.file_name().unwrap().to_string_lossy()["chain-".len()..].to_string();
    let out = restore(
        &cluster,
        &dir,
        "restored_plain",
        &["--jobs", "2", "--chain-id", &id],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("--jobs applies to directory-format bases"),
        "{err}"
    );

    // Retention counts and removes a directory base with its chain.
    let out = pg_scribe(&["--expire", "--backup-dir", d, "--keep-chains", "1"], &[]);
    assert_eq!(out.status.code(), Some(0), "expire: {}", stderr(&out));
    assert_eq!(chains(&dir), vec![chain.clone()]);
    let out = pg_scribe(&["--verify", "--backup-dir", d], &[]);
    assert_eq!(out.status.code(), Some(0), "verify: {}", stderr(&out));
}
