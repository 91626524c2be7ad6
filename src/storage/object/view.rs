//! A local view of a backup directory on object storage, for the actions that only read it
//! (`--restore`, `--verify`, `--status`, `--expire`'s choice): a private temporary directory
//! with the store's layout, the small files (`metadata.json`, manifests, `COMPLETE`,
//! `verify.json`) downloaded, every other file a sparse stand-in of the object's size and time.
//! Reading a stand-in through `compress::open_decompressed` or `compress::file_digest` streams
//! the object from the store as it is read: nothing large is copied to disk first, and the
//! checks and the replay, written for local files, run unchanged.
//!
//! Any other read of a stand-in would see zeros; [`lookup`] is the one door, used by every
//! reader of a differential, base or globals file.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use futures::StreamExt;

use super::{Entry, Remote};
use crate::error::{Error, Result};
use crate::storage::backup_dir::{COMPLETE_NAME, ChainId};
use crate::storage::durable;

static STAND_INS: LazyLock<Mutex<HashMap<PathBuf, (Remote, String)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The object a stand-in file of a [`View`] reads from.
pub fn lookup(path: &Path) -> Option<(Remote, String)> {
    STAND_INS.lock().ok()?.get(path).cloned()
}

/// Small files are downloaded whole; everything else is read in place.
fn downloaded(file: &str) -> bool {
    file.ends_with(".json") || file == COMPLETE_NAME
}

/// A view of the store, removed when dropped.
pub struct View {
    dir: PathBuf,
    remote: Remote,
}

impl View {
    /// Lists the store once and lays its chains out in a private temporary directory.
    pub async fn open(remote: &Remote) -> Result<View> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // A name nobody else can have taken first: another user of the machine may create
        // `pg_scribe-view-<pid>-…` in the shared temporary directory ahead of us; `mkdir`
        // refuses an existing path, and a taken name is skipped for the next.
        let mut attempt = 0;
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "pg_scribe-view-{}-{}-{nanos:09}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            attempt += 1;
            match durable::create_private_dir(&dir) {
                Ok(()) => break dir,
                Err(_) if attempt < 20 && dir.symlink_metadata().is_ok() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let view = View {
            dir,
            remote: remote.clone(),
        };
        let entries = remote.list("").await?;
        let mut small = Vec::new();
        for e in &entries {
            if let Some(path) = view.place(e)? {
                small.push((path, e));
            }
        }
        // A year of hourly seals is thousands of manifests: fetched several at a time.
        let remote = &view.remote;
        let mut fetches = futures::stream::iter(small)
            .map(|(path, e)| async move { fill(remote, &path, e).await })
            .buffer_unordered(FETCHES_IN_FLIGHT);
        while let Some(done) = fetches.next().await {
            done?;
        }
        drop(fetches);
        Ok(view)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `e`'s file in the view: a registered stand-in, or an empty file whose path is
    /// returned for [`fill`] to download into.
    fn place(&self, e: &Entry) -> Result<Option<PathBuf>> {
        // Only `chain-<ID>/<file>`: the lock and anything else at the top are not chains.
        let Some((chain, file)) = e.name.split_once('/') else {
            return Ok(None);
        };
        if ChainId::from_dir_name(chain).is_none() || file.contains('/') || file.starts_with('.') {
            return Ok(None);
        }
        let cdir = self.dir.join(chain);
        if !cdir.is_dir() {
            durable::create_private_dir(&cdir)?;
        }
        let path = cdir.join(file);
        let f: File = durable::create_private_file(&path)?;
        if downloaded(file) {
            return Ok(Some(path));
        }
        f.set_len(e.size).map_err(|err| write_error(&path, err))?;
        f.set_modified(e.modified)
            .map_err(|err| write_error(&path, err))?;
        STAND_INS
            .lock()
            .map_err(|_| Error::backup("object view registry poisoned"))?
            .insert(path, (self.remote.clone(), e.name.clone()));
        Ok(None)
    }

    /// Uploads a small file the action wrote into the view (`verify.json`) to the store.
    pub async fn put_back(&self, chain: ChainId, file: &str) -> Result<()> {
        let path = self.dir.join(chain.dir_name()).join(file);
        if let Ok(data) = std::fs::read(&path) {
            self.remote
                .put(
                    &format!("{}/{file}", chain.dir_name()),
                    bytes::Bytes::from(data),
                )
                .await?;
        }
        Ok(())
    }
}

/// Concurrent downloads of small files while a view is laid out.
const FETCHES_IN_FLIGHT: usize = 16;

fn write_error(path: &Path, e: std::io::Error) -> Error {
    Error::backup(format!(
        "could not write file \"{}\": {}",
        path.display(),
        crate::error::io_reason(&e)
    ))
}

/// Downloads the small object `e` into `path` (created by `View::place`).
async fn fill(remote: &Remote, path: &Path, e: &Entry) -> Result<()> {
    let data = remote.read(&e.name).await?.unwrap_or_default();
    std::fs::write(path, &data).map_err(|err| write_error(path, err))?;
    let f = File::options()
        .write(true)
        .open(path)
        .map_err(|err| write_error(path, err))?;
    f.set_modified(e.modified)
        .map_err(|err| write_error(path, err))
}

impl Drop for View {
    fn drop(&mut self) {
        if let Ok(mut map) = STAND_INS.lock() {
            map.retain(|p, _| !p.starts_with(&self.dir));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
