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
//!
//! Sealed diffs of the old chain are read newest first, and only while they may still hold
//! transactions past the cut; a compressed one (`--rotate-diff --compress`) is read through its
//! decompressor into a temporary file beside it, removed afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    // Newest first: once a diff ends at or before the cut, so do all older ones.
    let mut temps = TempFiles(Vec::new());
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut reached_cut = false;
    let mut oldest_read = None;
    for diff in old_chain.sealed_diffs()?.into_iter().rev() {
        oldest_read = Some(diff.name);
        let plain = if diff.name.method == Method::None {
            diff.path
        } else {
            let temp = decompress_beside(&diff.path)?;
            temps.0.push(temp.clone());
            temp
        };
        if diff_format::last_end_lsn_of_sealed(&plain)?.is_none_or(|end| end <= cut) {
            reached_cut = true;
            break;
        }
        sources.push(plain);
    }
    if !reached_cut && let Some(oldest) = oldest_read {
        refuse_missing_predecessor(old_chain, oldest, cut)?;
    }
    sources.reverse();
    sources.push(old_chain.active_path());
    for source in &sources {
        let from = held.map_or(cut, |h| h.max(cut));
        let summary = copy_from_cut(source, from, &mut out)?;
        report.copied_txns += summary.txns;
        report.copied_bytes += summary.bytes;
        held = summary.last_end_lsn.or(held);
    }
    drop(temps);
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

/// With a backup directory on object storage, the spool keeps a chain's differentials once
/// uploaded only while a hand-over may read them (doc/object-storage.md). Should one that holds
/// transactions past the cut be gone all the same, the new chain would miss them: refuse.
fn refuse_missing_predecessor(
    old_chain: &Chain,
    oldest: crate::storage::backup_dir::DiffName,
    cut: Lsn,
) -> Result<()> {
    let path = crate::storage::manifest::manifest_path(old_chain, oldest);
    let Ok(Some(m)) = crate::storage::manifest::Manifest::read(&path) else {
        return Ok(());
    };
    match m.previous {
        Some(p)
            if !Method::ALL.iter().any(|m| {
                old_chain
                    .dir
                    .join(format!("{}{}", p.name, m.extension()))
                    .exists()
            }) && p.end_lsn.is_none_or(|e| e > cut) =>
        {
            Err(ChainError::Usage(format!(
                "cannot hand chain {} over: differential \"{}\", which may hold transactions past the new chain's start {cut}, is no longer in \"{}\"",
                old_chain.id,
                p.name,
                old_chain.dir.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Temporary plain copies of compressed diffs, removed however the hand-over ends.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Decompress `path` into a hidden temporary file beside it (mode 0600) and return its path.
/// The decompressors are async: they run on a thread of their own with a small runtime, so this
/// works from the writer thread and from inside the caller's runtime alike.
fn decompress_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = durable::parent_of(path).join(format!(".{name}.handover.tmp"));
    let _ = std::fs::remove_file(&temp);
    let (source, target) = (path.to_path_buf(), temp.clone());
    let copied = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChainError::io("could not start a decompression runtime", e))?;
        runtime.block_on(async {
            let mut reader = crate::storage::compress::open_decompressed(&source).await?;
            let file = durable::create_private_file(&target)?;
            let mut file = tokio::fs::File::from_std(file);
            tokio::io::copy(&mut reader, &mut file)
                .await
                .map_err(|e| ChainError::file("decompress", &source, e))?;
            Ok(())
        })
    })
    .join()
    .unwrap_or_else(|_| {
        Err(ChainError::Usage(
            "the decompression thread panicked".into(),
        ))
    });
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::backup_dir::BackupDir;
    use crate::storage::diff_format::DiffScanner;
    use crate::storage::diff_format::sample_header as hdr;
    use time::macros::datetime;

    fn compress(path: &Path, c: Compression) -> PathBuf {
        let target = PathBuf::from(format!("{}{}", path.display(), c.extension()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut input = tokio::fs::File::open(path).await.unwrap();
            crate::storage::compress::write_stream(&mut input, &target, c)
                .await
                .unwrap();
        });
        std::fs::remove_file(path).unwrap();
        target
    }

    #[test]
    fn compressed_sealed_diffs_are_read_through_the_decompressor() {
        let t = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(t.path());
        let old = dir
            .create_chain(datetime!(2026-11-26 12:00:00 UTC))
            .unwrap();
        let new = dir
            .create_chain(datetime!(2026-11-26 13:00:00 UTC))
            .unwrap();
        let (mut w, _) = DiffWriter::open(&old).unwrap();
        // Diff 1 ends long before the cut; diff 2 crosses it; active.sql is past it.
        for (range, hour) in [(1..3, 12), (3..6, 13)] {
            for n in range {
                w.append_txn(&hdr(n), b"BEGIN;\nCOMMIT;\n").unwrap();
            }
            let name = old
                .next_diff_name(
                    datetime!(2026-11-26 12:00:00 UTC) + time::Duration::hours(hour - 12),
                    Compression::NONE,
                )
                .unwrap();
            let sealed = w.rotate(&old, name).unwrap();
            let zstd = "zstd".parse::<Compression>().unwrap();
            compress(&sealed.path, zstd);
        }
        w.append_txn(&hdr(6), b"BEGIN;\nCOMMIT;\n").unwrap();
        // A hand-over killed while decompressing left its temporary file behind.
        let newest = old.sealed_diffs().unwrap().pop().unwrap();
        let stale = old.dir.join(format!(
            ".{}.handover.tmp",
            newest.path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&stale, "-- wal2sql begin torn").unwrap();
        let cut = hdr(4).commit_lsn;
        let (next, report) = hand_over(&mut w, &old, &new, cut).unwrap();
        drop(next);
        assert_eq!(report.copied_txns, 3);
        let xids: Vec<u32> = DiffScanner::open(&new.active_path())
            .unwrap()
            .map(|t| t.unwrap().header.xid)
            .collect();
        assert_eq!(xids, vec![704, 705, 706]);
        let leftovers: Vec<String> = std::fs::read_dir(&old.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
