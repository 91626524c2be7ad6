//! Moving the stream from one chain to the next without a gap or an overlap (doc/file-handling.md,
//! "The cut rules").
//!
//! A new chain starts at its `start_lsn` S: exactly the transactions with `commit_lsn >= S` are
//! its differentials, all others are in its base. When streaming moves to it, the transactions
//! of that kind that were already written to the old chain (the streamer kept running while the
//! new base was taken) are copied into the new chain's `active.sql`, then the old chain's
//! `active.sql` is sealed as its final differential and removed. The old chain keeps its copies,
//! so it stays consistent on its own.
//!
//! Every step can be repeated after a crash: copies skip what the new chain already holds, and
//! an old chain still holding `active.sql` is what marks an unfinished hand-over.

use std::fs::OpenOptions;
use std::io::Write;

use time::OffsetDateTime;

use crate::lsn::Lsn;
use crate::storage::backup_dir::Chain;
use crate::storage::compress::{Compression, Method};
use crate::storage::diff_format::{self, copy_from_cut};
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};
use crate::storage::writer::{DiffWriter, Sealed};

/// What a hand-over did.
#[derive(Debug, Default)]
pub struct HandOver {
    pub copied_txns: u64,
    pub copied_bytes: u64,
    /// The old chain's final differential, if `active.sql` held anything.
    pub sealed: Option<Sealed>,
}

/// Copy the old chain's transactions from `cut` on into `new`, seal the old `active.sql` (held
/// open by `old`), and return a writer on the new chain's `active.sql`.
pub(crate) fn hand_over(
    old: &mut DiffWriter,
    old_chain: &Chain,
    new_chain: &Chain,
    cut: Lsn,
) -> Result<(DiffWriter, HandOver)> {
    old.fsync()?;
    let mut report = HandOver::default();

    // What the new chain already holds (a repeated hand-over copies only the rest).
    let (probe, _) = DiffWriter::open(new_chain)?;
    let mut held = probe.last_written_lsn();
    drop(probe);

    let new_active = new_chain.active_path();
    let mut out = OpenOptions::new()
        .append(true)
        .open(&new_active)
        .map_err(|e| ChainError::file("open", &new_active, e))?;
    let mut sources: Vec<std::path::PathBuf> = Vec::new();
    for diff in old_chain.sealed_diffs()? {
        if diff.name.method != Method::None {
            // Reading it back would need decompressing; only refuse when it may matter.
            return Err(ChainError::Usage(format!(
                "cannot hand over to chain {}: differential \"{}\" of the old chain is compressed and may hold transactions of the new chain",
                new_chain.id,
                diff.path.display()
            )));
        }
        if diff_format::last_end_lsn_of_sealed(&diff.path)?.is_some_and(|end| end > cut) {
            sources.push(diff.path);
        }
    }
    sources.push(old_chain.active_path());
    for source in &sources {
        let from = held.map_or(cut, |h| h.max(cut));
        let summary = copy_from_cut(source, from, &mut out)?;
        report.copied_txns += summary.txns;
        report.copied_bytes += summary.bytes;
        held = summary.last_end_lsn.or(held);
    }
    out.flush()
        .map_err(|e| ChainError::file("write to", &new_active, e))?;
    durable::fsync_file(&out, &new_active)?;
    drop(out);

    if !old.is_empty() {
        let name = old_chain.next_diff_name(OffsetDateTime::now_utc(), Compression::NONE)?;
        report.sealed = Some(old.rotate(old_chain, name)?);
    }
    // The old chain is finished: no active.sql stays behind in it.
    let old_active = old_chain.active_path();
    std::fs::remove_file(&old_active).map_err(|e| ChainError::file("remove", &old_active, e))?;
    durable::fsync_dir(&old_chain.dir)?;

    let (writer, _) = DiffWriter::open(new_chain)?;
    Ok((writer, report))
}
