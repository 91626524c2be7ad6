//! A directory-format base (`base.dir/`, taken with `--jobs`) into the target through
//! `pg_restore`: with one job in a single transaction, like psql restores `base.sql`; with N
//! jobs in parallel, which pg_restore cannot do in one transaction (doc/restore.md). The rows
//! restored are counted from the dump's table data files — COPY text, one row per line up to
//! the `\.` line — the same count psql's run gives for a plain base. On a terminal, progress is
//! the data files of the tables pg_restore reports done plus, from PostgreSQL 14 on, the bytes
//! its COPYs in flight have sent (`pg_stat_progress_copy`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::pg::conninfo::ConnParams;
use crate::pg::programs::find_program;
use crate::pg::psql::{Run, restore_params};
use crate::replay::progress::Progress;
use crate::storage::compress::{self, Method};

/// One table's data in the dump: its TOC item and data file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableData {
    id: u32,
    path: PathBuf,
    size: u64,
}

/// The `TABLE DATA` items of `pg_restore --list`, in the order a serial restore takes them.
fn table_data_ids(listing: &str) -> Vec<u32> {
    listing
        .lines()
        .filter_map(|l| {
            let (id, rest) = l.split_once("; ")?;
            let id: u32 = id.trim().parse().ok()?;
            // "<catalog oid> <object oid> TABLE DATA <schema> <name> <owner>"
            let mut words = rest.splitn(4, ' ');
            let (_, _, desc) = (words.next()?, words.next()?, words.next()?);
            let rest = words.next()?;
            (desc == "TABLE" && rest.starts_with("DATA ")).then_some(id)
        })
        .collect()
}

/// The data file of item `id`: `<id>.dat` with pg_dump's compression extension, if any.
fn data_file(dir: &Path, id: u32) -> Option<PathBuf> {
    Method::ALL
        .into_iter()
        .map(|m| dir.join(format!("{id}.dat{}", m.extension())))
        .find(|p| p.is_file())
}

/// Counts COPY text rows: lines before the `\.` line.
#[derive(Debug, Default)]
struct RowCounter {
    rows: u64,
    line_len: usize,
    head: [u8; 2],
    done: bool,
}

impl RowCounter {
    fn feed(&mut self, chunk: &[u8]) {
        let mut start = 0;
        while !self.done && start < chunk.len() {
            let end = memchr::memchr(b'\n', &chunk[start..]).map(|i| start + i);
            let piece = &chunk[start..end.unwrap_or(chunk.len())];
            for (i, b) in piece.iter().take(2).enumerate() {
                if self.line_len + i < 2 {
                    self.head[self.line_len + i] = *b;
                }
            }
            self.line_len += piece.len();
            let Some(end) = end else { break };
            if self.line_len == 2 && self.head == *b"\\." {
                self.done = true;
            } else {
                self.rows += 1;
            }
            self.line_len = 0;
            start = end + 1;
        }
    }
}

async fn count_rows(path: &Path) -> Result<u64> {
    let mut reader = compress::open_decompressed(path).await?;
    let mut counter = RowCounter::default();
    loop {
        let buf = reader.fill_buf().await.map_err(|e| {
            Error::backup(format!(
                "could not read file \"{}\": {}",
                path.display(),
                crate::error::io_reason(&e)
            ))
        })?;
        if buf.is_empty() || counter.done {
            return Ok(counter.rows);
        }
        counter.feed(buf);
        let n = buf.len();
        reader.consume(n);
    }
}

/// The `TABLE DATA` items of the dump in `dir`, from `pg_restore --list`.
async fn tables(major: u32, dir: &Path) -> Result<Vec<TableData>> {
    let mut command = Command::new(find_program("pg_restore", major));
    command.arg("--list").arg(dir).kill_on_drop(true);
    let out = command.output().await.map_err(|e| {
        Error::backup(format!(
            "could not run pg_restore: {}",
            crate::error::io_reason(&e)
        ))
    })?;
    if !out.status.success() {
        return Err(Error::backup(format!(
            "could not read the table of contents of \"{}\"",
            dir.display()
        ))
        .with_detail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for id in table_data_ids(&listing) {
        let path = data_file(dir, id).ok_or_else(|| {
            Error::backup(format!(
                "the directory base \"{}\" has no data file for table data item {id}",
                dir.display()
            ))
        })?;
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        found.push(TableData { id, path, size });
    }
    Ok(found)
}

/// Whether a line of `pg_restore --verbose` is only news of progress (kept out of errors).
fn is_info(line: &str) -> bool {
    match line.strip_prefix("pg_restore: ") {
        Some(rest) => !["error:", "warning:", "detail:", "hint:", "from TOC entry"]
            .iter()
            .any(|p| rest.starts_with(p)),
        None => false,
    }
}

/// `conninfo` for pg_restore's `--dbname`: the name alone, quoted, so that a name with `=` is
/// not read as a connection string (everything else comes from the environment).
fn dbname_conninfo(dbname: &str) -> String {
    format!(
        "dbname='{}'",
        dbname.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// Restores the directory base `dir` into `params.dbname` with `jobs` jobs (one: in a single
/// transaction). Returns whether pg_restore succeeded, the rows of its data files and its
/// error output.
pub async fn run(params: &ConnParams, major: u32, dir: &Path, jobs: u32) -> Result<(bool, Run)> {
    let tables = tables(major, dir).await?;
    let total: u64 = tables.iter().map(|t| t.size).sum();
    let counting = {
        let paths: Vec<PathBuf> = tables.iter().map(|t| t.path.clone()).collect();
        tokio::spawn(async move {
            let mut rows = 0u64;
            for p in paths {
                rows += count_rows(&p).await?;
            }
            Ok::<u64, Error>(rows)
        })
    };

    let mut command = Command::new(find_program("pg_restore", major));
    restore_params(params).configure_command(&mut command);
    command.args([
        "--no-password",
        "--verbose",
        "--exit-on-error",
        "--format=directory",
    ]);
    if jobs > 1 {
        command.arg(format!("--jobs={jobs}"));
    } else {
        command.arg("--single-transaction");
    }
    command.arg(format!("--dbname={}", dbname_conninfo(&params.dbname)));
    command.arg(dir);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command.spawn().map_err(|e| {
        Error::backup(format!(
            "could not run pg_restore \"{program}\": {}",
            crate::error::io_reason(&e)
        ))
    })?;
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut progress = Progress::phase(
        "restoring base",
        "tables",
        Some(total),
        Some(tables.len() as u64),
    );
    // Only for the display: without it (an older server, no connection) tables count whole.
    let watcher = if progress.enabled() {
        crate::pg::session::connect(params).await.ok()
    } else {
        None
    };
    let in_flight = || async {
        let client = &watcher.as_ref()?.client;
        let sql = "SELECT coalesce(sum(bytes_processed), 0)::int8 FROM pg_catalog.pg_stat_progress_copy WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()";
        let row = tokio::time::timeout(Duration::from_millis(500), client.query_one(sql, &[]))
            .await
            .ok()?
            .ok()?;
        u64::try_from(row.get::<_, i64>(0)).ok()
    };
    let mut kept = String::new();
    let (mut done_bytes, mut done_tables, mut started) = (0u64, 0u64, 0usize);
    let size_of = |id: u32| tables.iter().find(|t| t.id == id).map_or(0, |t| t.size);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = ticker.tick() => {
                let copying = if progress.enabled() { in_flight().await.unwrap_or(0) } else { 0 };
                progress.tick((done_bytes + copying).min(total), done_tables);
                continue;
            }
        };
        let Ok(Some(line)) = line else { break };
        if let Some(rest) = line.strip_prefix("pg_restore: finished item ") {
            // Parallel: each table's data item is reported when done.
            if let Some((id, desc)) = rest.split_once(' ')
                && desc.starts_with("TABLE DATA ")
                && let Ok(id) = id.parse::<u32>()
            {
                done_bytes += size_of(id);
                done_tables += 1;
            }
        } else if jobs == 1 && line.starts_with("pg_restore: processing data for table ") {
            // Serial: tables come in the listing's order; the one before this is done.
            if started > 0
                && let Some(t) = tables.get(started - 1)
            {
                done_bytes += t.size;
                done_tables += 1;
            }
            started += 1;
        }
        if !is_info(&line) {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    progress.clear();
    let status = child
        .wait()
        .await
        .map_err(|e| Error::backup(format!("could not wait for pg_restore: {e}")))?;
    let rows = match counting.await {
        Ok(r) => r?,
        Err(e) => return Err(Error::backup(format!("counting rows failed: {e}"))),
    };
    Ok((
        status.success(),
        Run {
            rows,
            bytes: total,
            stderr: kept,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_the_lines_before_the_terminator() {
        let count = |chunks: &[&[u8]]| {
            let mut c = RowCounter::default();
            for ch in chunks {
                c.feed(ch);
            }
            c.rows
        };
        assert_eq!(count(&[b"1\tx\n2\ty\n\\.\n\n\n"]), 2);
        // Rows of a table without columns are empty lines.
        assert_eq!(count(&[b"\n\n\\.\n\n\n"]), 2);
        assert_eq!(count(&[b"\\.\n\n\n"]), 0);
        // Split anywhere, and a row that merely starts like the terminator.
        assert_eq!(count(&[b"1\n\\", b".x\n\\", b".", b"\n\n"]), 2);
        assert_eq!(count(&[b"a\\.\n", b"\\.\n"]), 1);
    }

    #[test]
    fn table_data_items_come_from_the_listing() {
        let listing = ";\n; Archive created at ...\n215; 1259 16391 TABLE public e postgres\n3349; 0 16391 TABLE DATA public e postgres\n3348; 0 16384 TABLE DATA public \"my table\" postgres\n3205; 2606 16389 CONSTRAINT public t t_pkey postgres\n3351; 0 0 BLOBS - BLOBS \n";
        assert_eq!(table_data_ids(listing), vec![3349, 3348]);
    }

    #[test]
    fn progress_lines_are_not_errors() {
        assert!(is_info("pg_restore: finished item 3349 TABLE DATA e"));
        assert!(!is_info(
            "pg_restore: error: could not execute query: ERROR:  x"
        ));
        assert!(!is_info("Command was: COPY public.t (a) FROM stdin;"));
        assert!(!is_info(
            "pg_restore: from TOC entry 3348; 0 16384 TABLE DATA t"
        ));
    }

    #[test]
    fn the_database_name_is_never_a_connection_string() {
        assert_eq!(dbname_conninfo("a=b"), "dbname='a=b'");
        assert_eq!(dbname_conninfo("it's\\"), "dbname='it\\'s\\\\'");
    }
}
