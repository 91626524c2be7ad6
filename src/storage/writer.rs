//! The durable, transaction-aware writer of a chain's `active.sql`: appends transactions framed
//! by wal2sql markers, tells which `end_lsn` is durable after each fsync (the only position the
//! streamer may report as flushed), and rotates at transaction boundaries.
//!
//! A transaction is streamed (`begin`, `write_body`…, `commit`), not held in memory, so a
//! transaction of millions of rows costs a buffer. Its bytes may reach the disk before its
//! trailer; that is safe because only committed-and-fsynced transactions are reported durable,
//! and a crash leaves a torn tail that [`crate::storage::diff_format::recover_torn_tail`] cuts on the
//! next open. `abort` cuts an unfinished transaction at once (e.g. when the connection drops and
//! the server will resend it whole).
//!
//! Blocking: calls do file I/O and fsync on the calling thread. The streamer should own the
//! writer on a dedicated thread (or `spawn_blocking`) so keepalives are answered while the disk
//! is slow.
//!
//! After any I/O error the writer refuses further use: after a failed fsync the kernel may have
//! dropped the dirty pages, so retrying could report as durable data that is not on disk. Every
//! later call repeats the first error (e.g. "No space left on device"), so whoever notices it
//! first — a background flush, a write, an fsync — reports the real cause.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::lsn::Lsn;
use crate::storage::backup_dir::{Chain, DiffName};
use crate::storage::diff_format::{self, Recovery, TxnHeader};
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};
use crate::storage::manifest;

const WRITE_BUF: usize = 256 * 1024;

pub struct DiffWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// File length including what is still buffered.
    len: u64,
    /// The transaction being written and where it starts.
    open: Option<(TxnHeader, u64)>,
    /// end_lsn of the last committed transaction (written, perhaps not yet durable).
    written: Option<Lsn>,
    /// end_lsn of the last transaction known to be on disk.
    durable: Option<Lsn>,
    /// Whether the last byte written is a newline (true for an empty file).
    last_byte_nl: bool,
    /// The first error, repeated by every later call.
    failed: Option<FirstError>,
}

/// Enough of an error to raise it again (I/O errors are not `Clone`).
#[derive(Debug, Clone)]
struct FirstError {
    action: String,
    os_error: Option<i32>,
    kind: std::io::ErrorKind,
    text: String,
}

impl FirstError {
    fn of(e: &ChainError) -> FirstError {
        match e {
            ChainError::Io { action, source } => FirstError {
                action: action.clone(),
                os_error: source.raw_os_error(),
                kind: source.kind(),
                text: source.to_string(),
            },
            other => FirstError {
                action: String::new(),
                os_error: None,
                kind: std::io::ErrorKind::Other,
                text: other.to_string(),
            },
        }
    }

    fn raise(&self) -> ChainError {
        if self.action.is_empty() {
            return ChainError::Usage(self.text.clone());
        }
        let source = match self.os_error {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.text.clone()),
        };
        ChainError::io(self.action.clone(), source)
    }
}

/// A sealed differential made by [`DiffWriter::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Empty when the user had already moved `active.sql` away (nothing renamed by us).
    pub path: PathBuf,
    pub size: u64,
    pub last_end_lsn: Option<Lsn>,
    /// Why the manifest could not be written (the file itself is sealed and durable; verifying
    /// the chain will report the missing manifest).
    pub manifest_error: Option<String>,
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| ChainError::file("open", path, e))
}

/// Creates an empty `active.sql` (0600) and makes its name durable.
fn create_active(path: &Path) -> Result<File> {
    let f = durable::create_private_file(path)?;
    durable::fsync_file(&f, path)?;
    durable::fsync_dir(durable::parent_of(path))?;
    drop(f);
    open_append(path)
}

impl DiffWriter {
    /// Opens `active.sql` of `chain` for appending, first cutting a torn tail; creates it if
    /// missing. `Recovery::last_end_lsn` is `None` for an empty file: the resume point is then
    /// in the sealed diffs (see [`chain_resume_lsn`]).
    pub fn open(chain: &Chain) -> Result<(DiffWriter, Recovery)> {
        Self::open_path(&chain.active_path())
    }

    pub(crate) fn open_path(path: &Path) -> Result<(DiffWriter, Recovery)> {
        let (file, rec) = match diff_format::recover_torn_tail(path) {
            Ok(rec) => {
                // After kill -9, an OOM kill or a panic, what the file holds may still be only
                // in the page cache: make it (and its name) durable before its last transaction
                // becomes the position reported to the server.
                let file = open_append(path)?;
                durable::fsync_file(&file, path)?;
                durable::fsync_dir(durable::parent_of(path))?;
                (file, rec)
            }
            Err(ChainError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let rec = Recovery {
                    last_end_lsn: None,
                    valid_len: 0,
                    cut_bytes: 0,
                };
                (create_active(path)?, rec)
            }
            Err(e) => return Err(e),
        };
        let w = DiffWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(WRITE_BUF, file),
            len: rec.valid_len,
            open: None,
            written: rec.last_end_lsn,
            durable: rec.last_end_lsn,
            last_byte_nl: true,
            failed: None,
        };
        Ok((w, rec))
    }

    /// Bytes in the file, counting buffered ones.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// end_lsn of the last committed transaction, durable or not.
    pub(crate) fn last_written_lsn(&self) -> Option<Lsn> {
        self.written
    }

    /// end_lsn of the last transaction known to be on disk: the flush position to report.
    pub(crate) fn durable_lsn(&self) -> Option<Lsn> {
        self.durable
    }

    /// True if no committed transaction awaits an fsync.
    #[cfg(test)]
    pub(crate) fn is_synced(&self) -> bool {
        self.written == self.durable
    }

    fn usable(&self) -> Result<()> {
        match &self.failed {
            Some(first) => Err(first.raise()),
            None => Ok(()),
        }
    }

    fn io<T>(&mut self, verb: &str, r: std::io::Result<T>) -> Result<T> {
        r.map_err(|e| {
            let e = ChainError::file(verb, &self.path, e);
            self.failed.get_or_insert_with(|| FirstError::of(&e));
            e
        })
    }

    fn put(&mut self, data: &[u8]) -> Result<()> {
        let r = self.out.write_all(data);
        self.io("write to", r)?;
        self.len += data.len() as u64;
        if let Some(&b) = data.last() {
            self.last_byte_nl = b == b'\n';
        }
        Ok(())
    }

    /// Starts a transaction. Its `end_lsn` must be past the last one written: the streamer
    /// skips transactions at or below [`Self::last_written_lsn`] before calling this.
    pub fn begin(&mut self, h: &TxnHeader) -> Result<()> {
        self.usable()?;
        if self.open.is_some() {
            return Err(ChainError::Usage(
                "a transaction was begun while another is open".into(),
            ));
        }
        if let Some(prev) = self.written
            && h.end_lsn <= prev
        {
            return Err(ChainError::OutOfOrder {
                path: self.path.clone(),
                prev,
                next: h.end_lsn,
            });
        }
        let start = self.len;
        self.put(h.to_line().as_bytes())?;
        self.open = Some((h.clone(), start));
        Ok(())
    }

    /// Appends statement text to the open transaction.
    pub(crate) fn write_body(&mut self, data: &[u8]) -> Result<()> {
        self.usable()?;
        if self.open.is_none() {
            return Err(ChainError::Usage(
                "statement text outside a transaction".into(),
            ));
        }
        self.put(data)
    }

    /// Ends the open transaction with its trailer and returns its `end_lsn` (written, not yet
    /// durable).
    pub fn commit(&mut self) -> Result<Lsn> {
        self.usable()?;
        let Some((h, _)) = self.open.take() else {
            return Err(ChainError::Usage("commit without a transaction".into()));
        };
        // A body that forgot its last newline would glue the trailer to a statement.
        let trailer = h.trailer_line();
        if !self.last_byte_nl {
            self.put(b"\n")?;
        }
        self.put(trailer.as_bytes())?;
        self.written = Some(h.end_lsn);
        Ok(h.end_lsn)
    }

    /// One whole transaction, as the tests write them.
    #[cfg(test)]
    pub(crate) fn append_txn(&mut self, h: &TxnHeader, body: &[u8]) -> Result<Lsn> {
        self.begin(h)?;
        self.write_body(body)?;
        self.commit()
    }

    /// Drops the open transaction, cutting the file back to where it began.
    pub(crate) fn abort(&mut self) -> Result<()> {
        self.usable()?;
        let Some((_, start)) = self.open.take() else {
            return Ok(());
        };
        let r = self.out.flush();
        self.io("write to", r)?;
        let r = self.out.get_ref().set_len(start);
        self.io("truncate", r)?;
        self.len = start;
        self.last_byte_nl = true;
        Ok(())
    }

    /// Hands buffered bytes to the OS without fsyncing: a crash of this process then loses
    /// nothing written so far (only a crash of the machine can, until the next fsync).
    pub(crate) fn flush_to_os(&mut self) -> Result<()> {
        self.usable()?;
        let r = self.out.flush();
        self.io("write to", r)
    }

    /// Writes out the buffer and fsyncs; returns the `end_lsn` that is now durable. Bytes of an
    /// open transaction are written too but do not count.
    pub fn fsync(&mut self) -> Result<Option<Lsn>> {
        self.usable()?;
        let committed = self.written;
        let r = self.out.flush();
        self.io("write to", r)?;
        let r = self.out.get_ref().sync_data();
        self.io("fsync", r)?;
        self.durable = committed;
        Ok(committed)
    }

    /// Seals `active.sql` as `sealed` in the same chain directory and continues in a fresh
    /// `active.sql`. Only between transactions. The sealed file is complete and durable (data,
    /// name and directory fsynced) when this returns.
    pub fn rotate(&mut self, chain: &Chain, sealed: DiffName) -> Result<Sealed> {
        self.usable()?;
        if self.open.is_some() {
            return Err(ChainError::Usage(
                "cannot rotate inside a transaction".into(),
            ));
        }
        self.fsync()?;
        // Someone may have renamed active.sql themselves (log-rotation style) before SIGHUP:
        // the file they took holds whole transactions, since we only switch between them, and
        // there is nothing left for us to rename (the sealed path is then empty).
        let target = if self.moved_away()? {
            PathBuf::new()
        } else {
            let target = chain.diff_path(sealed);
            if target.exists() {
                return Err(ChainError::Usage(format!(
                    "differential \"{}\" already exists",
                    target.display()
                )));
            }
            target
        };
        let size = self.len;
        let renamed = if target.as_os_str().is_empty() {
            Ok(())
        } else {
            durable::rename_durable(&self.path, &target)
        };
        let file = match renamed.and_then(|()| create_active(&self.path)) {
            Ok(f) => f,
            Err(e) => {
                self.failed.get_or_insert_with(|| FirstError::of(&e));
                return Err(e);
            }
        };
        // The old descriptor now names the sealed file; dropping it flushes nothing (synced).
        self.out = BufWriter::with_capacity(WRITE_BUF, file);
        self.len = 0;
        self.last_byte_nl = true;
        let manifest_error = if target.as_os_str().is_empty() {
            None
        } else {
            manifest::write_for_sealed(chain, sealed)
                .err()
                .map(|e| e.to_string())
        };
        Ok(Sealed {
            path: target,
            size,
            last_end_lsn: self.written,
            manifest_error,
        })
    }

    /// Whether `active.sql` no longer names the file we write (renamed or removed by hand).
    fn moved_away(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let ours = self
            .out
            .get_ref()
            .metadata()
            .map_err(|e| ChainError::file("stat", &self.path, e))?;
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok(now.ino() != ours.ino() || now.dev() != ours.dev()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(ChainError::file("stat", &self.path, e)),
        }
    }

    /// Fsyncs and closes; returns the durable `end_lsn`.
    pub fn close(mut self) -> Result<Option<Lsn>> {
        if self.open.is_some() {
            self.abort()?;
        }
        self.fsync()
    }
}

/// The `end_lsn` up to which `chain` holds transactions, to resume streaming after: the last
/// transaction of `active.sql` (after cutting a torn tail), else of the newest sealed diff, else
/// `None` (nothing streamed yet: resume at the chain's `start_lsn`).
///
/// A compressed newest diff is not read back (that would mean decompressing it whole):
/// `recorded` is where the streamer recorded the stream's end when it sealed it, before anyone
/// could compress it (`.pg_scribe.flushed`); without it, that is an error. Every other failure
/// is an error too: a guess could resume too early and duplicate transactions.
///
/// Cuts a torn tail off `active.sql`: call it only while holding the pidfile (`--start`), never
/// from a reader such as `--status`, which would cut a live streamer's transaction in progress.
pub fn chain_resume_lsn(chain: &Chain, recorded: Option<Lsn>) -> Result<Option<Lsn>> {
    let active = chain.active_path();
    if active.exists()
        && let Some(l) = diff_format::recover_torn_tail(&active)?.last_end_lsn
    {
        return Ok(Some(l));
    }
    for d in chain.sealed_diffs()?.iter().rev() {
        if d.name.method != crate::storage::compress::Method::None {
            if recorded.is_some() {
                return Ok(recorded);
            }
            return Err(ChainError::Usage(format!(
                "reading the last position of compressed differential \"{}\" is not supported yet",
                d.path.display()
            )));
        }
        if let Some(l) = diff_format::last_end_lsn_of_sealed(&d.path)? {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::backup_dir::BackupDir;
    use crate::storage::compress::Compression;
    use crate::storage::diff_format::DiffScanner;
    use crate::storage::diff_format::sample_header as hdr;
    use time::macros::datetime;

    fn chain() -> (tempfile::TempDir, Chain) {
        let t = tempfile::tempdir().unwrap();
        let c = BackupDir::new(t.path())
            .create_chain(datetime!(2026-11-26 12:00:00 UTC))
            .unwrap();
        (t, c)
    }

    fn txns(path: &Path) -> Vec<u32> {
        let sc = DiffScanner::open(path).unwrap();
        let v: Vec<u32> = sc.map(|t| t.unwrap().header.xid).collect();
        v
    }

    #[test]
    fn durable_position_follows_fsync() {
        let (_t, ch) = chain();
        let (mut w, rec) = DiffWriter::open(&ch).unwrap();
        assert_eq!(rec.last_end_lsn, None);
        assert_eq!(durable::mode_of(&ch.active_path()).unwrap(), 0o600);
        let l1 = w
            .append_txn(&hdr(1), b"BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\n")
            .unwrap();
        assert_eq!(w.durable_lsn(), None);
        assert!(!w.is_synced());
        assert_eq!(w.fsync().unwrap(), Some(l1));
        assert_eq!(w.durable_lsn(), Some(l1));
        // An open transaction's bytes are flushed but never counted durable.
        w.begin(&hdr(2)).unwrap();
        w.write_body(b"BEGIN;\n").unwrap();
        assert_eq!(w.fsync().unwrap(), Some(l1));
        let l2 = w.commit().unwrap();
        assert_eq!(w.close().unwrap(), Some(l2));
        assert_eq!(txns(&ch.active_path()), vec![701, 702]);
        assert_eq!(chain_resume_lsn(&ch, None).unwrap(), Some(l2));
    }

    #[test]
    fn reopening_makes_the_file_durable_before_trusting_it() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.append_txn(&hdr(1), b"BEGIN;\nCOMMIT;\n").unwrap();
        w.flush_to_os().unwrap();
        std::mem::forget(w); // kill -9: in the page cache, never fsynced
        durable::fsynced::take();
        let (w, rec) = DiffWriter::open(&ch).unwrap();
        assert_eq!(rec.last_end_lsn, Some(hdr(1).end_lsn));
        assert_eq!(w.durable_lsn(), Some(hdr(1).end_lsn));
        let synced = durable::fsynced::take();
        assert!(synced.contains(&ch.active_path()), "{synced:?}");
        assert!(synced.contains(&ch.dir), "{synced:?}");
    }

    #[test]
    fn reopening_cuts_a_crashed_transaction() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.append_txn(&hdr(1), b"BEGIN;\nCOMMIT;\n").unwrap();
        w.begin(&hdr(2)).unwrap();
        w.write_body(b"BEGIN;\nINSERT INTO t VALUES (").unwrap();
        w.fsync().unwrap();
        std::mem::forget(w); // a crash: no close, no abort
        let (mut w, rec) = DiffWriter::open(&ch).unwrap();
        assert_eq!(rec.last_end_lsn, Some(hdr(1).end_lsn));
        assert!(rec.cut_bytes > 0);
        assert!(matches!(
            w.begin(&hdr(1)),
            Err(ChainError::OutOfOrder { .. })
        ));
        w.append_txn(&hdr(2), b"BEGIN;\nCOMMIT;\n").unwrap();
        w.close().unwrap();
        assert_eq!(txns(&ch.active_path()), vec![701, 702]);
    }

    #[test]
    fn abort_cuts_back_to_the_boundary() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.append_txn(&hdr(1), b"BEGIN;\nCOMMIT;\n").unwrap();
        let len = w.len();
        w.begin(&hdr(2)).unwrap();
        w.write_body(&vec![b'x'; 3 * WRITE_BUF]).unwrap();
        w.abort().unwrap();
        assert_eq!(w.len(), len);
        w.append_txn(&hdr(2), b"BEGIN;\nCOMMIT;\n").unwrap();
        w.fsync().unwrap();
        assert_eq!(txns(&ch.active_path()), vec![701, 702]);
        let end = DiffScanner::open(&ch.active_path())
            .unwrap()
            .finish_complete()
            .unwrap();
        assert_eq!(end.total_len, w.len());
    }

    #[test]
    fn body_without_final_newline_still_frames() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.append_txn(&hdr(1), b"BEGIN;\nCOMMIT;").unwrap();
        w.close().unwrap();
        assert_eq!(txns(&ch.active_path()), vec![701]);
    }

    #[test]
    fn rotation_seals_whole_transactions() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.append_txn(&hdr(1), b"BEGIN;\nCOMMIT;\n").unwrap();
        w.begin(&hdr(2)).unwrap();
        let name = ch
            .next_diff_name(datetime!(2026-11-26 13:00:00 UTC), Compression::NONE)
            .unwrap();
        assert!(matches!(w.rotate(&ch, name), Err(ChainError::Usage(_))));
        w.write_body(b"BEGIN;\nCOMMIT;\n").unwrap();
        w.commit().unwrap();
        let s = w.rotate(&ch, name).unwrap();
        assert_eq!(s.path, ch.dir.join("diff-20261126T130000Z.sql"));
        assert_eq!(s.last_end_lsn, Some(hdr(2).end_lsn));
        assert_eq!(s.size, std::fs::metadata(&s.path).unwrap().len());
        assert_eq!(txns(&s.path), vec![701, 702]);
        assert_eq!(w.durable_lsn(), Some(hdr(2).end_lsn));
        // Fresh active.sql; the resume point now comes from the sealed diff.
        assert_eq!(std::fs::metadata(ch.active_path()).unwrap().len(), 0);
        assert_eq!(chain_resume_lsn(&ch, None).unwrap(), Some(hdr(2).end_lsn));
        w.append_txn(&hdr(3), b"BEGIN;\nCOMMIT;\n").unwrap();
        assert!(
            w.rotate(&ch, name).is_err(),
            "never overwrites a sealed diff"
        );
    }

    #[test]
    fn write_errors_poison_the_writer() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        // /dev/full fails every write with ENOSPC, like a full disk.
        w.out = BufWriter::with_capacity(
            128,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        w.begin(&hdr(1)).unwrap();
        let e = w.write_body(&[b'x'; 64]).unwrap_err();
        assert!(e.is_disk_full(), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "could not write to file \"{}\": No space left on device",
                ch.active_path().display()
            )
        );
        // Every later call repeats the cause, not a generic "unusable".
        let again = w.fsync().unwrap_err();
        assert!(again.is_disk_full(), "{again}");
        assert_eq!(again.to_string(), e.to_string());
        assert_eq!(w.durable_lsn(), None);
    }

    #[test]
    fn a_failed_background_flush_is_reported_by_the_next_call() {
        let (_t, ch) = chain();
        let (mut w, _) = DiffWriter::open(&ch).unwrap();
        w.out = BufWriter::with_capacity(
            1024,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        w.begin(&hdr(1)).unwrap();
        assert!(w.flush_to_os().unwrap_err().is_disk_full());
        let e = w.write_body(b"x").unwrap_err();
        assert!(e.is_disk_full(), "{e}");
    }
}
