//! Globals and base through `psql`, fed on its standard input from the (decompressing) file:
//! nothing is unpacked to disk, no password is ever in argv (see `ConnParams::configure_command`).

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::pg::conninfo::ConnParams;
use crate::pg::programs::find_program;
use crate::replay::progress::Progress;
use crate::storage::compress;

/// Session settings for psql children: DDL is not captured again by wal2sql in the target.
/// A custom setting with a prefix is accepted by any server as a placeholder (and adopted by
/// wal2sql when it loads), so this is safe whether or not the target has wal2sql.
pub(crate) const PSQL_OPTIONS: &str = "-c wal2sql.capture=off -c client_min_messages=warning";

pub struct Run {
    /// Rows in the COPY blocks sent (pg_dump's plain format: one row per line).
    pub rows: u64,
    /// Bytes of SQL sent (decompressed).
    pub bytes: u64,
    pub stderr: String,
}

fn command(params: &ConnParams, major: u32, stop_on_error: bool, single: bool) -> Command {
    let p = restore_params(params);
    let mut cmd = Command::new(find_program("psql", major));
    p.configure_command(&mut cmd);
    cmd.args(["-X", "-q", "-w", "-v", "VERBOSITY=verbose", "-v"]);
    cmd.arg(if stop_on_error {
        "ON_ERROR_STOP=1"
    } else {
        "ON_ERROR_STOP=0"
    });
    if single {
        cmd.arg("--single-transaction");
    }
    cmd.args(["-f", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The settings every restoring child gets on top of the user's `options`.
pub(crate) fn restore_params(params: &ConnParams) -> ConnParams {
    let mut p = params.clone();
    p.options = Some(match &params.options {
        Some(o) if !o.trim().is_empty() => format!("{o} {PSQL_OPTIONS}"),
        _ => PSQL_OPTIONS.to_string(),
    });
    p
}

/// Feeds `file` (decompressed) to psql. Returns psql's stderr and whether it succeeded.
/// `progress` is told the bytes fed and the rows counted so far.
pub async fn run(
    params: &ConnParams,
    major: u32,
    file: &Path,
    stop_on_error: bool,
    single: bool,
    mut progress: Option<&mut Progress>,
) -> Result<(bool, Run)> {
    let mut cmd = command(params, major, stop_on_error, single);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| {
        Error::backup(format!(
            "could not run psql \"{program}\": {}",
            crate::error::io_reason(&e)
        ))
    })?;
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut reader = compress::open_decompressed(file).await?;
    let mut out = BufWriter::with_capacity(256 * 1024, stdin);
    let mut line = Vec::with_capacity(64 * 1024);
    let (mut rows, mut in_copy) = (0u64, false);
    let mut broken_pipe = false;
    let mut fed = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await.map_err(|e| {
            Error::backup(format!(
                "could not read file \"{}\": {}",
                file.display(),
                crate::error::io_reason(&e)
            ))
        })?;
        if n == 0 {
            break;
        }
        fed += n as u64;
        // Once per MiB fed: a clock read per line would cost more than the line.
        if (fed >> 20) != ((fed - n as u64) >> 20)
            && let Some(p) = progress.as_deref_mut()
        {
            p.tick(fed, rows);
        }
        if in_copy {
            if line == b"\\.\n" {
                in_copy = false;
            } else {
                rows += 1;
            }
        } else if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;\n") {
            in_copy = true;
        }
        if out.write_all(&line).await.is_err() {
            // psql stopped reading: it failed; its stderr says why.
            broken_pipe = true;
            break;
        }
    }
    if !broken_pipe {
        let _ = out.flush().await;
    }
    drop(out);
    let status = child
        .wait()
        .await
        .map_err(|e| Error::backup(format!("could not wait for psql: {e}")))?;
    let stderr = errors.await.unwrap_or_default();
    Ok((
        status.success() && !broken_pipe,
        Run {
            rows,
            bytes: fed,
            stderr,
        },
    ))
}

/// One `ERROR:` of psql's verbose output: its SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsqlError {
    pub code: String,
    pub message: String,
}

/// `psql:<stdin>:12: ERROR:  42710: role "x" already exists` lines.
pub fn errors(stderr: &str) -> Vec<PsqlError> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("ERROR:")? + "ERROR:".len()..];
            let rest = rest.trim_start();
            let (code, message) = match rest.split_once(": ") {
                Some((c, m)) if c.len() == 5 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                    (c.to_string(), m.to_string())
                }
                _ => (String::new(), rest.to_string()),
            };
            Some(PsqlError { code, message })
        })
        .collect()
}

/// The last lines of psql's stderr, for an error's detail.
pub(crate) fn tail(stderr: &str, lines: usize) -> String {
    let all: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_errors_are_parsed() {
        let text = "psql:<stdin>:14: ERROR:  42710: role \"postgres\" already exists\nLOCATION:  CreateRole, user.c:312\npsql:<stdin>:20: ERROR:  42P01: relation \"x\" does not exist\n";
        let e = errors(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].code, "42710");
        assert_eq!(e[0].message, "role \"postgres\" already exists");
        assert_eq!(e[1].code, "42P01");
        assert_eq!(
            tail(text, 1),
            "psql:<stdin>:20: ERROR:  42P01: relation \"x\" does not exist"
        );
    }
}
