//! `--rotate-diff`: ask the running streamer to seal `active.sql` at the next transaction
//! boundary, wait for its answer, and optionally compress the sealed file. The streamer does the
//! sealing itself (fsync, rename, directory fsync, fresh `active.sql`), so a sealed diff always
//! holds whole transactions.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::storage::backup_dir::{BackupDir, ChainId};
use crate::storage::compress::Method;
use crate::storage::control::{self, RotateAnswer, RotateRequest};
use crate::storage::pidfile::{self, Streamer};
use crate::storage::sealed;
use crate::ui;

use super::Outcome;

/// How long to wait for the streamer to acknowledge the request.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for an acknowledged rotation that waits for a transaction to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a waiting requester checks that the streamer still runs.
const LIVENESS_EVERY: Duration = Duration::from_secs(1);

/// Whether the pidfile still names a live streamer with this PID.
fn streamer_alive(root: &Path, pid: i32) -> bool {
    match pidfile::probe(&BackupDir::new(root)) {
        Ok(Streamer::Running(info)) => info.pid == pid,
        // Unreadable for a moment: do not give up on it.
        Err(_) => true,
        Ok(_) => false,
    }
}

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let dir = super::common::existing_backup_dir(inv)?;
    let root = dir.root();
    let info = match pidfile::probe(&dir)? {
        Streamer::Running(info) => info,
        Streamer::Absent => {
            return Err(Error::backup(format!(
                "no streamer is running for backup directory \"{}\"",
                root.display()
            ))
            .with_hint("Start one with pg_scribe --start; rotation happens inside the streamer."));
        }
        Streamer::Stale(info) => {
            let pid = info
                .map(|i| i.pid.to_string())
                .unwrap_or_else(|| "?".into());
            return Err(Error::backup(format!(
                "pidfile \"{}\" is stale: process {pid} is not running",
                dir.pidfile_path().display()
            ))
            .with_hint("The streamer stopped; start it again with pg_scribe --start."));
        }
        Streamer::Unverified { info, reason } => {
            let pid = info
                .map(|i| i.pid.to_string())
                .unwrap_or_else(|| "?".into());
            return Err(Error::backup(format!(
                "process {pid} named in \"{}\" is not a pg_scribe streamer for this directory: {reason}",
                dir.pidfile_path().display()
            ))
            .with_hint("Nothing was signalled. Check the process and the pidfile by hand."));
        }
    };

    let answer = ask_streamer(root, info.pid).await?;

    match answer {
        RotateAnswer::Sealed {
            chain,
            sealed,
            size,
            ..
        } => {
            ui::done(&format!("Found active chain: {chain}"));
            let chain = match chain.parse::<ChainId>() {
                Ok(id) => dir.chain(id),
                Err(_) => {
                    return Err(Error::backup(format!(
                        "the streamer named an invalid chain \"{chain}\""
                    )));
                }
            };
            let (name, size) = match inv.compress {
                Some(c) if c.method != Method::None => {
                    sealed::compress_sealed(&chain, &sealed, c).await?
                }
                _ => (sealed, size),
            };
            ui::done(&format!(
                "Rotated differential: {name} ({})",
                ui::size(size)
            ));
            ui::done("New differential started");
            Ok(Outcome::Success)
        }
        RotateAnswer::Empty { chain, .. } => {
            ui::done(&format!("Found active chain: {chain}"));
            ui::say("Nothing to rotate: active.sql holds no transaction since the last rotation");
            Ok(Outcome::Success)
        }
        RotateAnswer::Failed { message, .. } => Err(Error::backup(format!(
            "the streamer could not rotate: {message}"
        ))),
        RotateAnswer::Pending { .. } => unreachable!("pending answers keep the loop waiting"),
    }
}

/// Ask the streamer (verified by the caller) to rotate, and wait for its final answer. With a
/// new chain waiting, the streamer answers with the hand-over's seal of the old chain.
pub(crate) async fn ask_streamer(root: &Path, pid: i32) -> Result<RotateAnswer> {
    let id = format!(
        "{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    control::write_request(root, &RotateRequest { id: id.clone() })?;
    // SAFETY: kill(2) with a PID the pidfile probe verified to be our streamer.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::backup(format!(
            "could not signal the streamer (process {}): {}",
            pid,
            crate::error::io_reason(&err)
        )));
    }

    let mut deadline = Instant::now() + ACK_TIMEOUT;
    let mut told_pending = false;
    let mut checked = Instant::now();
    let answer = loop {
        // Check the streamer still lives about once a second (it answers a fatal error itself,
        // but kill -9 or an OOM kill leave no answer).
        let gone = checked.elapsed() >= LIVENESS_EVERY && {
            checked = Instant::now();
            !streamer_alive(root, pid)
        };
        match control::read_answer(root, &id) {
            Some(RotateAnswer::Pending { reason, .. }) if !told_pending => {
                ui::say(&format!("Waiting for {reason}"));
                told_pending = true;
                deadline = Instant::now() + COMMIT_TIMEOUT;
            }
            Some(RotateAnswer::Pending { .. }) => {}
            Some(done) => break done,
            None => {}
        }
        if gone {
            control::remove_answer(root, &id);
            control::remove_request(root, &id);
            return Err(Error::backup(format!(
                "the streamer (process {pid}) stopped before answering the rotation request"
            ))
            .with_hint(
                "Look at the streamer's log for the cause, then start it again with pg_scribe --start.",
            ));
        }
        if Instant::now() > deadline {
            return Err(Error::backup(if told_pending {
                "timed out waiting for the streamer to reach a transaction boundary".to_string()
            } else {
                format!(
                    "timed out waiting for the streamer (process {}) to rotate",
                    pid
                )
            })
            .with_hint(
                "The rotation stays requested and happens at the next transaction boundary.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    control::remove_answer(root, &id);
    Ok(answer)
}
