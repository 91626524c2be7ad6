//! The spool: the local directory that stands in for a backup directory on object storage
//! while files are written (object stores cannot append or fsync), and the upload of what it
//! holds. Its layout is a backup directory's; `--init`, `--start`, `--rotate-diff` and
//! `--new-chain` work in it exactly as in a local backup directory, and [`sync`] moves every
//! finished file into the store.
//!
//! Decisions:
//! - **Upload, check, then delete.** A chain's base and globals go up first, then
//!   `metadata.json`, then `COMPLETE`; a sealed differential goes up with the roles dumped at its
//!   seal and then its manifest (a differential in the store without its manifest is one whose
//!   upload was interrupted). The digest of what was sent must be the one `metadata.json` or the
//!   manifest records; only then is the local copy removed.
//! - **The newest sealed differential of a chain stays.** The streamer names the next one after
//!   it, links the next manifest to it and finds its resume position in it; it goes once it is
//!   no longer the newest. A chain's differentials all stay while a newer chain exists and the
//!   chain still has `active.sql`: the hand-over to the newer chain reads them back.
//! - **Restart, not resume.** An interrupted upload starts again from the file's first byte
//!   (the store drops the parts of an unfinished multipart upload: set a lifecycle rule for
//!   incomplete multipart uploads). `.pg_scribe.uploads` records which kept files are already
//!   in the store, so `--status` can tell the backlog.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Remote;
use crate::error::{Error, Result};
use crate::storage::backup_dir::{BackupDir, COMPLETE_NAME, Chain, METADATA_NAME, SealedDiff};
use crate::storage::compress::{Method, hex};
use crate::storage::durable;
use crate::storage::manifest::{self, Manifest};

/// In the spool's root: which kept files are already in the store, and the last upload error.
pub const STATE_NAME: &str = ".pg_scribe.uploads";

/// The spool for `url` when `--spool-dir` is not given: under `$XDG_STATE_HOME` (else
/// `~/.local/state`), named after the URL, so every invocation for one URL finds the same one.
pub fn default_dir(url: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local").join("state"),
            None => {
                return Err(Error::usage(
                    "no spool directory: HOME and XDG_STATE_HOME are not set",
                )
                .with_hint("Name one with --spool-dir."));
            }
        },
    };
    let digest = hex(&Sha256::digest(url.as_bytes()));
    Ok(base
        .join("pg_scribe")
        .join(format!("spool-{}", &digest[..16])))
}

/// The uploader's notes in the spool ([`STATE_NAME`]).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    /// Kept local files (`chain-…/diff-….sql`) already uploaded and checked.
    pub uploaded: BTreeSet<String>,
    /// When the last file went up (RFC 3339).
    pub last_upload: Option<String>,
    /// The error of the last failed upload, cleared by the next success.
    pub last_error: Option<String>,
}

impl State {
    pub fn read(spool: &Path) -> State {
        std::fs::read(spool.join(STATE_NAME))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default()
    }

    fn write(&self, spool: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        durable::atomic_write(&spool.join(STATE_NAME), &text).map_err(Error::from)
    }
}

fn now_text() -> String {
    crate::storage::diff_format::format_commit_time(time::OffsetDateTime::now_utc())
}

/// `chain-…/name`.
fn rel(chain: &Chain, name: &str) -> String {
    format!("{}/{name}", chain.id.dir_name())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::backup(format!(
            "could not remove file \"{}\": {}",
            path.display(),
            crate::error::io_reason(&e)
        ))),
    }
}

/// What one [`sync`] did.
#[derive(Debug, Default)]
pub struct Report {
    /// Files uploaded (relative names) and their sizes.
    pub uploaded: Vec<(String, u64)>,
}

/// Uploads `path` as `name` and checks the digest of what was sent against `size`/`sha256`.
async fn upload_checked(
    remote: &Remote,
    path: &Path,
    name: &str,
    size: u64,
    sha256: &str,
) -> Result<()> {
    let (sent, digest) = remote.upload(path, name).await?;
    if sent != size || digest != sha256 {
        // Not left in the store for a restore to find.
        let _ = remote.delete(name).await;
        return Err(Error::backup(format!(
            "file \"{}\" changed since it was written: {sent} byte(s) with SHA-256 {digest} uploaded, {size} byte(s) with SHA-256 {sha256} recorded",
            path.display()
        ))
        .with_hint("The local copy was kept; check the spool directory's disk."));
    }
    Ok(())
}

/// The base, globals, metadata and completion marker of a complete chain, once.
async fn sync_base(remote: &Remote, chain: &Chain, report: &mut Report) -> Result<()> {
    let md = chain.read_metadata()?;
    let local: Vec<_> = md
        .files
        .iter()
        .filter(|f| chain.dir.join(&f.name).exists())
        .collect();
    if local.is_empty() {
        // Uploaded before (only metadata.json and COMPLETE stay in the spool).
        return Ok(());
    }
    for f in &local {
        let name = rel(chain, &f.name);
        let stored = remote.head(&name).await?;
        if stored.is_none_or(|s| s.size != f.size) {
            upload_checked(remote, &chain.dir.join(&f.name), &name, f.size, &f.sha256).await?;
            report.uploaded.push((name, f.size));
        }
    }
    for f in md
        .files
        .iter()
        .filter(|f| !local.iter().any(|l| l.name == f.name))
    {
        let name = rel(chain, &f.name);
        if remote.head(&name).await?.is_none_or(|s| s.size != f.size) {
            return Err(Error::backup(format!(
                "chain {}: \"{}\" is neither in the spool nor in the store",
                chain.id, f.name
            )));
        }
    }
    let md_path = chain.metadata_path();
    let md_bytes = std::fs::read(&md_path).map_err(|e| {
        Error::backup(format!(
            "could not read file \"{}\": {}",
            md_path.display(),
            crate::error::io_reason(&e)
        ))
    })?;
    remote
        .put(&rel(chain, METADATA_NAME), Bytes::from(md_bytes))
        .await?;
    let marker = std::fs::read(chain.complete_marker_path()).unwrap_or_default();
    // Last: the chain is usable in the store from here on.
    remote
        .put(&rel(chain, COMPLETE_NAME), Bytes::from(marker))
        .await?;
    for f in local {
        remove(&chain.dir.join(&f.name))?;
    }
    Ok(())
}

/// Whether the hand-over to a newer chain may still read this chain's differentials.
fn hand_over_pending(spool: &BackupDir, chain: &Chain) -> Result<bool> {
    if !chain.has_active() {
        return Ok(false);
    }
    Ok(spool.chains()?.iter().any(|c| c.chain.id > chain.id))
}

/// The sealed differentials of a chain, each with its roles and manifest.
async fn sync_diffs(
    remote: &Remote,
    spool: &BackupDir,
    chain: &Chain,
    state: &mut State,
    report: &mut Report,
) -> Result<()> {
    let diffs: Vec<SealedDiff> = chain.sealed_diffs()?;
    let finished = !chain.has_active()
        && spool
            .chains()?
            .iter()
            .any(|c| c.chain.id > chain.id && c.complete);
    let keep_all = hand_over_pending(spool, chain)?;
    for (i, d) in diffs.iter().enumerate() {
        let name = rel(chain, &d.name.to_string());
        let mpath = manifest::manifest_path(chain, d.name);
        if !state.uploaded.contains(&name) {
            // The streamer writes the manifest right after the seal: until then, wait.
            let Some(m): Option<Manifest> = Manifest::read(&mpath)? else {
                continue;
            };
            if m.file != d.name.to_string() {
                // Being compressed by --rotate-diff --compress right now: next time.
                continue;
            }
            let globals = chain.later_globals_path(d.name);
            if globals.exists() {
                let gname = rel(chain, &file_name(&globals));
                let (size, _) = remote.upload(&globals, &gname).await?;
                report.uploaded.push((gname, size));
            }
            upload_checked(remote, &d.path, &name, m.size, &m.sha256).await?;
            report.uploaded.push((name.clone(), m.size));
            let mname = rel(chain, &file_name(&mpath));
            let (msize, _) = remote.upload(&mpath, &mname).await?;
            report.uploaded.push((mname, msize));
            if d.name.method != Method::None {
                // The plain object of a stamp wins over the compressed one: drop it.
                let plain = crate::storage::backup_dir::DiffName {
                    method: Method::None,
                    ..d.name
                };
                remote.delete(&rel(chain, &plain.to_string())).await?;
            }
            state.uploaded.insert(name.clone());
            state.last_upload = Some(now_text());
            state.write(spool.root())?;
        }
        let newest = i + 1 == diffs.len();
        if keep_all || (newest && !finished) {
            continue;
        }
        remove(&chain.later_globals_path(d.name))?;
        remove(&d.path)?;
        remove(&mpath)?;
        state.uploaded.remove(&name);
        state.write(spool.root())?;
    }
    Ok(())
}

/// Uploads everything finished in the spool: complete chains' bases, sealed differentials.
/// Safe to run concurrently with the streamer and with another `sync` of the same spool (every
/// step is idempotent); the error of a failed upload is recorded in [`STATE_NAME`].
pub async fn sync(remote: &Remote, spool: &BackupDir) -> Result<Report> {
    let mut report = Report::default();
    let mut state = State::read(spool.root());
    let result: Result<()> = async {
        for info in spool.chains()? {
            if !info.complete {
                continue;
            }
            sync_base(remote, &info.chain, &mut report).await?;
            sync_diffs(remote, spool, &info.chain, &mut state, &mut report).await?;
        }
        Ok(())
    }
    .await;
    let error = result.as_ref().err().map(|e| e.message.clone());
    if error != state.last_error {
        state.last_error = error;
        let _ = state.write(spool.root());
    }
    result.map(|()| report)
}

/// Files in the spool not yet in the store (what a lost machine would lose).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub files: u64,
    pub bytes: u64,
    /// When the oldest of them was last written.
    pub oldest: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_upload: Option<String>,
}

/// The spool's upload backlog: chain files and sealed differentials not yet uploaded.
pub fn backlog(spool: &Path) -> Result<Backlog> {
    let dir = BackupDir::new(spool);
    let state = State::read(spool);
    let mut b = Backlog {
        last_error: state.last_error.clone(),
        last_upload: state.last_upload.clone(),
        ..Backlog::default()
    };
    if !spool.is_dir() {
        return Ok(b);
    }
    let mut count = |path: &Path| {
        if let Ok(meta) = std::fs::metadata(path) {
            b.files += 1;
            b.bytes += meta.len();
            if let Ok(t) = meta.modified() {
                b.oldest = Some(b.oldest.map_or(t, |o: SystemTime| o.min(t)));
            }
        }
    };
    for info in dir.chains()? {
        let chain = &info.chain;
        if let Ok(md) = chain.read_metadata() {
            for f in &md.files {
                count(&chain.dir.join(&f.name));
            }
        }
        for d in chain.sealed_diffs()? {
            if !state.uploaded.contains(&rel(chain, &d.name.to_string())) {
                count(&d.path);
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::object::Location;
    use crate::storage::object::view::View;
    use crate::storage::verify::tests::{chain, seal, txn};

    fn remote() -> Remote {
        let location = Location::parse("s3://b/app").unwrap();
        Remote::over(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            &location,
        )
    }

    async fn names(r: &Remote) -> Vec<String> {
        r.list("")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    #[tokio::test]
    async fn sync_uploads_checks_and_keeps_only_what_the_streamer_needs() {
        let (t, ch) = chain(true);
        let spool = BackupDir::new(t.path());
        let r = remote();
        let a = seal(&ch, 13, &txn(1), true);
        let b = seal(&ch, 14, &txn(2), true);
        std::fs::write(ch.active_path(), txn(3)).unwrap();
        let report = sync(&r, &spool).await.unwrap();
        let id = ch.id.dir_name();
        let stored = names(&r).await;
        for f in ["base.sql", "globals.sql", "metadata.json", "COMPLETE"] {
            assert!(stored.contains(&format!("{id}/{f}")), "{f}: {stored:?}");
        }
        for d in [a, b] {
            assert!(stored.contains(&format!("{id}/{d}")));
            assert!(stored.contains(&format!("{id}/{d}.manifest.json")));
        }
        assert!(!stored.iter().any(|n| n.ends_with("active.sql")));
        assert_eq!(report.uploaded.len(), 6);
        // Local: the base went, the older diff went, the newest diff and active.sql stay.
        assert!(!ch.dir.join("base.sql").exists() && ch.metadata_path().exists());
        assert!(!ch.diff_path(a).exists() && ch.diff_path(b).exists());
        assert!(ch.active_path().exists());
        assert_eq!(backlog(t.path()).unwrap().files, 0);
        // Nothing new: no upload.
        assert!(sync(&r, &spool).await.unwrap().uploaded.is_empty());

        // A file changed after its manifest was written is refused, and kept.
        let c = seal(&ch, 15, &txn(4), true);
        std::fs::write(ch.diff_path(c), txn(5)).unwrap();
        let err = sync(&r, &spool).await.unwrap_err();
        assert!(
            err.message.contains("changed since it was written"),
            "{}",
            err.message
        );
        // b is safe in the store and no longer the newest: it went; c waits.
        assert!(ch.diff_path(c).exists() && !ch.diff_path(b).exists());
        assert!(!names(&r).await.contains(&format!("{id}/{c}")));
        let b_log = backlog(t.path()).unwrap();
        assert_eq!(b_log.files, 1);
        assert!(b_log.last_error.is_some());

        // The view reads the store's files in place, digests and all.
        std::fs::write(ch.diff_path(c), txn(4)).unwrap();
        sync(&r, &spool).await.unwrap();
        let view = View::open(&r).await.unwrap();
        let vdir = BackupDir::new(view.dir());
        let vchain = vdir.latest_complete_chain().unwrap().unwrap();
        assert_eq!(vchain.sealed_diffs().unwrap().len(), 3);
        let report = crate::storage::verify::verify_chain(
            &vchain,
            crate::storage::verify::Scope {
                stop: None,
                read_active: false,
            },
        )
        .await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let dir = view.dir().to_path_buf();
        drop(view);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn a_hand_over_keeps_every_differential_of_the_old_chain() {
        let (t, ch) = chain(true);
        let spool = BackupDir::new(t.path());
        let r = remote();
        let a = seal(&ch, 13, &txn(1), true);
        let _b = seal(&ch, 14, &txn(2), true);
        std::fs::write(ch.active_path(), txn(3)).unwrap();
        // A newer chain exists (a --new-chain): the hand-over may read them all back.
        spool
            .create_chain(time::macros::datetime!(2026-11-27 12:00:00 UTC))
            .unwrap();
        sync(&r, &spool).await.unwrap();
        assert!(ch.diff_path(a).exists());
        assert!(
            names(&r)
                .await
                .contains(&format!("{}/{a}", ch.id.dir_name()))
        );
    }

    #[tokio::test]
    async fn a_large_file_goes_up_in_parts_and_streams_back_whole() {
        use tokio::io::AsyncReadExt;
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("big");
        // Not a multiple of the part size, with content that shows a misplaced part.
        let data: Vec<u8> = (0..(2 * super::super::PART_SIZE + 12345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let r = remote();
        let (size, digest) = r.upload(&path, "x/big").await.unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, hex(&Sha256::digest(&data)));
        let mut back = Vec::new();
        r.reader("x/big")
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert!(back == data);
    }

    #[tokio::test]
    async fn the_lock_keeps_a_second_spool_out() {
        use crate::storage::object::lock::Lock;
        let r = remote();
        let (mine, _) = Lock::acquire(&r, Path::new("/spool/a")).await.unwrap();
        let err = Lock::acquire(&r, Path::new("/spool/b"))
            .await
            .err()
            .unwrap();
        assert!(
            err.message.contains("is locked by the streamer on host"),
            "{}",
            err.message
        );
        // The same place takes it over (a restart after a crash).
        let (again, previous) = Lock::acquire(&r, Path::new("/spool/a")).await.unwrap();
        assert!(previous.is_some());
        again.release().await.unwrap();
        assert!(
            r.head(super::super::lock::LOCK_NAME)
                .await
                .unwrap()
                .is_none()
        );
        drop(mine);
    }
}
