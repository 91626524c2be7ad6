//! Retention: which chains `--expire` may remove, and removing them so that a crash never leaves
//! something that looks like a usable chain (doc/operations.md).
//!
//! The plan is a pure function of what is on disk. A chain is only ever removed when all of
//! these hold; each rule that saves a chain is reported, so an operator sees why it stays:
//! - it is complete and older than the newest `keep` complete chains (the newest always stays);
//! - it has no `active.sql`: that is the chain a streamer writes into, or one whose hand-over to
//!   a newer chain is not finished (the next `--start` seals it), and either way it holds
//!   changes no other chain has;
//! - it is not the newest restorable chain (complete, readable metadata, a base file): removing
//!   it could leave nothing to restore from;
//! - incomplete chains are never touched: one may be a base backup still being taken.
//!
//! Which chain a running streamer writes into is the one with `active.sql`; the action
//! (`actions/expire.rs`) makes sure, with the pidfile, that the survey saw it.
//!
//! Removal first renames `chain-<ID>` to the hidden `.expired-chain-<ID>` and fsyncs the backup
//! directory, so the chain stops being a chain in one durable step; then the files go and the
//! directory is fsynced again. A crash in between leaves only a hidden directory, removed by the
//! next `--expire`.
//!
//! A chain being read (`--restore`) holds a shared `flock` on its directory ([`ChainReader`]);
//! removal takes the exclusive lock first, so neither pulls a chain from under the other.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::storage::backup_dir::{BackupDir, Chain, ChainId, ChainInfo};
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};
use crate::storage::pidfile::flock;

/// The hidden name a chain gets while it is being removed.
pub const EXPIRED_PREFIX: &str = ".expired-";

/// Why a chain is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// One of the newest `keep` complete chains.
    Retained,
    /// Holds `active.sql`: streamed into, or its hand-over is not finished.
    HasActive,
    /// The newest chain that can be restored, kept although beyond `keep`.
    LastRestorable,
    /// No `COMPLETE` marker: maybe a base backup being taken right now.
    Incomplete,
}

impl KeepReason {
    pub fn describe(self) -> &'static str {
        match self {
            KeepReason::Retained => "within --keep-chains",
            KeepReason::HasActive => {
                "it holds active.sql (being streamed into, or its hand-over to a newer chain is not finished)"
            }
            KeepReason::LastRestorable => {
                "it is the newest restorable chain (the newer ones lack metadata or a base file)"
            }
            KeepReason::Incomplete => {
                "it is incomplete (a base backup still running, or a failed one to inspect and remove by hand)"
            }
        }
    }
}

/// One chain as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainUsage {
    pub id: ChainId,
    pub dir: PathBuf,
    pub complete: bool,
    /// Complete, with readable metadata and a base file.
    pub restorable: bool,
    pub has_active: bool,
    /// Space the chain's files take on disk (allocated blocks, not apparent sizes).
    pub disk_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Oldest first.
    pub remove: Vec<ChainUsage>,
    /// Oldest first, with the reason each stays.
    pub keep: Vec<(ChainUsage, KeepReason)>,
}

impl Plan {
    pub fn bytes_to_free(&self) -> u64 {
        self.remove.iter().map(|c| c.disk_bytes).sum()
    }
}

/// Space a file tree takes on disk (`du`'s figure); unreadable parts count as zero.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children: u64 = std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| disk_usage(&e.path()))
                .sum()
        })
        .unwrap_or(0);
    own + children
}

fn usage(info: &ChainInfo) -> ChainUsage {
    let chain = &info.chain;
    let restorable =
        info.complete && chain.read_metadata().is_ok() && matches!(chain.find_base(), Ok(Some(_)));
    ChainUsage {
        id: chain.id,
        dir: chain.dir.clone(),
        complete: info.complete,
        restorable,
        has_active: chain.has_active(),
        disk_bytes: disk_usage(&chain.dir),
    }
}

/// Every chain of the backup directory with its disk usage, oldest first.
pub fn survey(dir: &BackupDir) -> Result<Vec<ChainUsage>> {
    Ok(dir.chains()?.iter().map(usage).collect())
}

/// Decides what goes. `keep` is at least 1 (the command line makes sure).
pub fn plan(chains: &[ChainUsage], keep: usize) -> Result<Plan> {
    let keep = keep.max(1);
    let complete: Vec<&ChainUsage> = chains.iter().filter(|c| c.complete).collect();
    let retained_from = complete.len().saturating_sub(keep);
    let retained: Vec<ChainId> = complete[retained_from..].iter().map(|c| c.id).collect();
    let last_restorable = chains.iter().rev().find(|c| c.restorable).map(|c| c.id);
    let mut out = Plan::default();
    for c in chains {
        let reason = if !c.complete {
            Some(KeepReason::Incomplete)
        } else if retained.contains(&c.id) {
            Some(KeepReason::Retained)
        } else if c.has_active {
            Some(KeepReason::HasActive)
        } else if last_restorable == Some(c.id) {
            Some(KeepReason::LastRestorable)
        } else {
            None
        };
        match reason {
            Some(r) => out.keep.push((c.clone(), r)),
            None => out.remove.push(c.clone()),
        }
    }
    if last_restorable.is_none() && !out.remove.is_empty() {
        return Err(ChainError::Usage(
            "no chain in the backup directory is restorable (complete, with metadata.json and a base file): refusing to remove any".into(),
        ));
    }
    Ok(out)
}

/// A chain held for reading: `--expire` leaves it alone while this lives.
pub struct ChainReader {
    _dir: File,
}

impl ChainReader {
    pub fn hold(chain: &Chain) -> Result<ChainReader> {
        let dir = lock_dir(&chain.dir, libc::LOCK_SH)?.ok_or_else(|| {
            ChainError::Usage(format!(
                "chain {} is being removed by pg_scribe --expire",
                chain.id
            ))
        })?;
        Ok(ChainReader { _dir: dir })
    }
}

/// The directory, locked with `op`; `None` when another process holds a conflicting lock.
fn lock_dir(path: &Path, op: libc::c_int) -> Result<Option<File>> {
    let dir = File::open(path).map_err(|e| ChainError::dir("open", path, e))?;
    match flock(&dir, op) {
        Ok(true) => Ok(Some(dir)),
        Ok(false) => Ok(None),
        Err(e) => Err(ChainError::dir("lock", path, e)),
    }
}

/// Whether a reader (`--restore`) holds the chain right now.
pub fn is_being_read(chain: &ChainUsage) -> Result<bool> {
    Ok(lock_dir(&chain.dir, libc::LOCK_EX)?.is_none())
}

/// What [`remove_chain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Gone; this much space freed.
    Removed(u64),
    /// A reader holds it: left alone.
    BeingRead,
}

/// Removes one chain durably, unless it is being read.
pub fn remove_chain(dir: &BackupDir, chain: &ChainUsage) -> Result<Removal> {
    // Held until the files are gone: a restore cannot start on a half-removed chain.
    let Some(_lock) = lock_dir(&chain.dir, libc::LOCK_EX)? else {
        return Ok(Removal::BeingRead);
    };
    let bytes = disk_usage(&chain.dir);
    let hidden = dir
        .root()
        .join(format!("{EXPIRED_PREFIX}{}", chain.id.dir_name()));
    durable::rename_durable(&chain.dir, &hidden)?;
    remove_tree(&hidden)?;
    durable::fsync_dir(dir.root())?;
    Ok(Removal::Removed(bytes))
}

fn remove_tree(path: &Path) -> Result<()> {
    std::fs::remove_dir_all(path).map_err(|e| ChainError::dir("remove", path, e))
}

/// Finishes removals a crash interrupted; returns the space freed.
pub fn remove_leftovers(dir: &BackupDir) -> Result<u64> {
    let rd = std::fs::read_dir(dir.root()).map_err(|e| ChainError::dir("open", dir.root(), e))?;
    let mut freed = 0;
    let mut any = false;
    for e in rd {
        let e = e.map_err(|e| ChainError::dir("read", dir.root(), e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(EXPIRED_PREFIX) else {
            continue;
        };
        if ChainId::from_dir_name(rest).is_none() {
            continue;
        }
        let path = e.path();
        freed += disk_usage(&path);
        remove_tree(&path)?;
        any = true;
    }
    if any {
        durable::fsync_dir(dir.root())?;
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u32, complete: bool, restorable: bool, has_active: bool) -> ChainUsage {
        let id: ChainId = format!("2024010{n}T000000Z").parse().unwrap();
        ChainUsage {
            id,
            dir: PathBuf::from(id.dir_name()),
            complete,
            restorable,
            has_active,
            disk_bytes: u64::from(n) * 100,
        }
    }

    fn ids(p: &Plan) -> (Vec<u32>, Vec<(u32, KeepReason)>) {
        let n = |c: &ChainUsage| c.id.to_string()[7..8].parse::<u32>().unwrap();
        (
            p.remove.iter().map(n).collect(),
            p.keep.iter().map(|(c, r)| (n(c), *r)).collect(),
        )
    }

    #[test]
    fn keeps_the_newest_and_removes_the_oldest() {
        let chains = [
            c(1, true, true, false),
            c(2, true, true, false),
            c(3, true, true, false),
        ];
        let p = plan(&chains, 2).unwrap();
        assert_eq!(
            ids(&p),
            (
                vec![1],
                vec![(2, KeepReason::Retained), (3, KeepReason::Retained)]
            )
        );
        assert_eq!(p.bytes_to_free(), 100);
        // keep 0 is treated as 1: the newest always stays.
        assert_eq!(ids(&plan(&chains, 0).unwrap()).0, vec![1, 2]);
        assert!(plan(&chains, 5).unwrap().remove.is_empty());
    }

    #[test]
    fn protected_chains_stay() {
        // 1 holds active.sql (unfinished hand-over), 2 is incomplete and does not count,
        // 4 is the newest but not restorable, so 3 is the last restorable one.
        let chains = [
            c(1, true, true, true),
            c(2, false, false, false),
            c(3, true, true, false),
            c(4, true, false, false),
        ];
        let p = plan(&chains, 1).unwrap();
        assert_eq!(
            ids(&p),
            (
                vec![],
                vec![
                    (1, KeepReason::HasActive),
                    (2, KeepReason::Incomplete),
                    (3, KeepReason::LastRestorable),
                    (4, KeepReason::Retained)
                ]
            )
        );
    }

    #[test]
    fn refuses_when_nothing_is_restorable() {
        let chains = [c(1, true, false, false), c(2, true, false, false)];
        let e = plan(&chains, 1).unwrap_err();
        assert!(e.to_string().contains("refusing to remove any"), "{e}");
        // Nothing to remove: no refusal needed.
        assert!(plan(&chains, 2).unwrap().remove.is_empty());
    }

    #[test]
    fn removal_is_complete_and_leftovers_go() {
        let tmp = tempfile::tempdir().unwrap();
        let bd = BackupDir::new(tmp.path());
        let t = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        let a = bd.create_chain(t).unwrap();
        std::fs::write(a.dir.join("base.sql"), vec![b'x'; 10_000]).unwrap();
        a.mark_complete().unwrap();
        let list = survey(&bd).unwrap();
        assert!(list[0].disk_bytes >= 10_000, "{list:?}");
        let reader = ChainReader::hold(&a).unwrap();
        assert!(is_being_read(&list[0]).unwrap());
        assert_eq!(remove_chain(&bd, &list[0]).unwrap(), Removal::BeingRead);
        drop(reader);
        // And the other way round: no restore starts on a chain being removed.
        let removing = lock_dir(&a.dir, libc::LOCK_EX).unwrap().unwrap();
        let e = ChainReader::hold(&a).err().unwrap();
        assert!(
            e.to_string()
                .contains("is being removed by pg_scribe --expire"),
            "{e}"
        );
        drop(removing);
        let Removal::Removed(freed) = remove_chain(&bd, &list[0]).unwrap() else {
            panic!("not removed");
        };
        assert!(freed >= 10_000);
        assert!(bd.chains().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

        let left = tmp.path().join(".expired-chain-20240101T000000Z");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join("base.sql"), b"x").unwrap();
        std::fs::create_dir(tmp.path().join(".expired-other")).unwrap();
        remove_leftovers(&bd).unwrap();
        assert!(!left.exists());
        assert!(tmp.path().join(".expired-other").exists());
    }
}
