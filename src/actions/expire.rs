//! `--expire` (and `--new-chain --keep-chains`): retention. The rules of what may go are in
//! [`crate::storage::expire`]; this prints the plan or carries it out and says what it freed.

use std::path::Path;

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::storage::backup_dir::BackupDir;
use crate::storage::expire::{self, KeepReason};
use crate::storage::space;
use crate::ui;

use super::Outcome;

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
    let chains = expire::survey(&dir)?;
    let plan = expire::plan(&chains, keep)?;
    for (c, reason) in &plan.keep {
        if *reason != KeepReason::Retained {
            ui::say(&format!(
                "Keeping chain-{} ({}): {}",
                c.id,
                ui::size(c.disk_bytes),
                reason.describe()
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
    for c in &plan.remove {
        let bytes = expire::remove_chain(&dir, c)?;
        freed += bytes;
        ui::done(&format!("Removed chain-{} ({})", c.id, ui::size(bytes)));
    }
    let free = space::of(root)
        .map(|s| format!("; {} free on the file system", ui::size(s.available_bytes)))
        .unwrap_or_default();
    ui::done(&format!(
        "Expired {} chain{}, freed {}; {} chain{} kept{free}",
        plan.remove.len(),
        if plan.remove.len() == 1 { "" } else { "s" },
        ui::size(freed),
        plan.keep.len(),
        if plan.keep.len() == 1 { "" } else { "s" },
    ));
    Ok(())
}
