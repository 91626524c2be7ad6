//! `--expire` (and `--new-chain --keep-chains`): retention. The rules of what may go are in
//! [`crate::storage::expire`]; this prints the plan or carries it out and says what it freed.

use std::path::Path;

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::storage::backup_dir::BackupDir;
use crate::storage::expire::{self, ChainUsage, KeepReason, Removal};
use crate::storage::pidfile::{self, Streamer};
use crate::storage::space;
use crate::ui;

use super::Outcome;

const BEING_READ: &str =
    "it is being read (a pg_scribe --restore holds it); run --expire again later";

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let root = inv
        .backup_dir
        .as_deref()
        .expect("cli requires --backup-dir");
    let keep = inv.keep_chains.expect("cli requires --keep-chains");
    expire(root, keep, inv.dry_run)?;
    Ok(Outcome::Success)
}

/// Removes the oldest complete chains beyond `keep` (or says what it would remove).
pub fn expire(root: &Path, keep: usize, dry_run: bool) -> Result<()> {
    if !root.is_dir() {
        return Err(Error::backup(format!(
            "backup directory \"{}\" does not exist or is not a directory",
            root.display()
        )));
    }
    let dir = BackupDir::new(root);
    if !dry_run {
        let freed = expire::remove_leftovers(&dir)?;
        if freed > 0 {
            ui::done(&format!(
                "Finished an interrupted removal ({} freed)",
                ui::size(freed)
            ));
        }
    }
    let (chains, streamer) = survey_beside_streamer(&dir)?;
    let plan = expire::plan(&chains, keep)?;
    for (c, reason) in &plan.keep {
        if *reason != KeepReason::Retained {
            let why = match (reason, streamer) {
                (KeepReason::HasActive, Some(pid)) => format!(
                    "it holds active.sql (the running streamer, PID {pid}, writes into it, or its hand-over to a newer chain is not finished)"
                ),
                _ => reason.describe().to_string(),
            };
            ui::say(&format!(
                "Keeping chain-{} ({}): {why}",
                c.id,
                ui::size(c.disk_bytes),
            ));
        }
    }
    let complete = chains.iter().filter(|c| c.complete).count();
    if plan.remove.is_empty() {
        ui::done(&format!(
            "Nothing to expire: {complete} complete chain{} (--keep-chains {keep})",
            if complete == 1 { "" } else { "s" }
        ));
        return Ok(());
    }
    if dry_run {
        for c in &plan.remove {
            if expire::is_being_read(c)? {
                ui::say(&format!("Would keep chain-{}: {BEING_READ}", c.id));
                continue;
            }
            ui::say(&format!(
                "Would remove chain-{} ({})",
                c.id,
                ui::size(c.disk_bytes)
            ));
        }
        ui::say(&format!(
            "Dry run: {} chain{} ({}) would be removed; nothing was changed",
            plan.remove.len(),
            if plan.remove.len() == 1 { "" } else { "s" },
            ui::size(plan.bytes_to_free())
        ));
        return Ok(());
    }
    let mut freed = 0;
    let mut removed = 0;
    let mut kept = plan.keep.len();
    // Chains are surveyed once: the streamer only ever moves to newer chains, and those stay.
    for c in &plan.remove {
        match expire::remove_chain(&dir, c)? {
            Removal::Removed(bytes) => {
                freed += bytes;
                removed += 1;
                ui::done(&format!("Removed chain-{} ({})", c.id, ui::size(bytes)));
            }
            Removal::BeingRead => {
                kept += 1;
                ui::say(&format!("Keeping chain-{}: {BEING_READ}", c.id));
            }
        }
    }
    let free = space::of(root)
        .map(|s| format!("; {} free on the file system", ui::size(s.available_bytes)))
        .unwrap_or_default();
    ui::done(&format!(
        "Expired {removed} chain{}, freed {}; {kept} chain{} kept{free}",
        if removed == 1 { "" } else { "s" },
        ui::size(freed),
        if kept == 1 { "" } else { "s" },
    ));
    Ok(())
}

/// The chains, and the PID of a running streamer. The chain a streamer writes into is the one
/// holding `active.sql`; a rotation renames that file and creates it again, so for an instant
/// no chain has it. The survey waits that instant out rather than guess which chain is live.
fn survey_beside_streamer(dir: &BackupDir) -> Result<(Vec<ChainUsage>, Option<i32>)> {
    for _ in 0..50 {
        let pid = match pidfile::probe(dir)? {
            Streamer::Running(info) => Some(info.pid),
            // Locked by something that does not check out: as careful as with a streamer.
            Streamer::Unverified { info, .. } => Some(info.map_or(0, |i| i.pid)),
            Streamer::Absent | Streamer::Stale(_) => None,
        };
        let chains = expire::survey(dir)?;
        if pid.is_none() || chains.iter().any(|c| c.has_active) {
            return Ok((chains, pid));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(Error::backup(format!(
        "a streamer is running for backup directory \"{}\", but no chain holds active.sql: cannot tell which chain it writes into",
        dir.root().display()
    ))
    .with_hint("Run pg_scribe --expire again in a moment; if this persists, look at the streamer's log."))
}
