//! The manifest of a sealed differential, `diff-<stamp>.sql.manifest.json` beside it (see
//! doc/file-handling.md): what the file holds (SHA-256 and size of the bytes as stored and of the
//! SQL text, transaction count, first and last transaction, wal2sql's unreplayable markers) and
//! which differential precedes it, so that a chain is a linked list anyone can check.
//!
//! Also [`ContentScan`], the one pass over a differential's text that both sealing (to write a
//! manifest) and verification (to check one) make: it hashes, frames transactions with the
//! shared [`Framer`] rules and spots markers, fed chunk by chunk so that a compressed file is
//! checked as it is decompressed, in constant memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::lsn::Lsn;
use crate::storage::backup_dir::{Chain, DiffName};
use crate::storage::compress::{self, Compression, Method};
use crate::storage::diff_format::{self, Body, Framer, LineKind, StopAt, TxnHeader};
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};

/// Bumped when a field changes meaning; readers refuse a newer format.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// How wal2sql writes a change it cannot replay (wal2sql/README.md): one line, a `DO` block
/// that raises an error whose message starts with `wal2sql: `.
const MARKER_PREFIX: &[u8] = b"DO 'BEGIN RAISE EXCEPTION USING MESSAGE = ''wal2sql: ";
const MARKER_SUFFIX: &[u8] = b"''; END';";
/// Bytes of each line kept for framing and marker messages; the rest of a long line is only
/// hashed.
const HEAD_MAX: usize = 2048;

/// One transaction's identity, as its header line gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnPoint {
    pub xid: u32,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    /// As in the header line: RFC 3339, UTC, microseconds.
    pub commit_time: String,
}

impl From<&TxnHeader> for TxnPoint {
    fn from(h: &TxnHeader) -> Self {
        TxnPoint {
            xid: h.xid,
            commit_lsn: h.commit_lsn,
            end_lsn: h.end_lsn,
            commit_time: diff_format::format_commit_time(h.commit_time),
        }
    }
}

/// An unreplayable marker: the transaction that holds it and wal2sql's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub xid: u32,
    pub commit_time: String,
    pub message: String,
}

/// The differential sealed just before this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevLink {
    /// Uncompressed name, `diff-<stamp>.sql`: compressing a file does not break the link.
    pub name: String,
    /// `end_lsn` of its last transaction (none when it is unknown: a compressed file sealed
    /// before manifests existed).
    pub end_lsn: Option<Lsn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub chain_id: String,
    /// Uncompressed name, `diff-<stamp>.sql`.
    pub name: String,
    /// The file as stored: its name (with the compression extension), compression, size and
    /// SHA-256 (`sha256sum` output).
    pub file: String,
    pub compression: Compression,
    pub size: u64,
    pub sha256: String,
    /// The SQL text (decompressed): survives recompression unchanged.
    pub content_size: u64,
    pub content_sha256: String,
    pub txns: u64,
    pub first: Option<TxnPoint>,
    pub last: Option<TxnPoint>,
    /// Unreplayable markers: how many, and the first one.
    pub markers: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_marker: Option<Marker>,
    /// `None` for the chain's first differential, which follows the base.
    pub previous: Option<PrevLink>,
    /// The chain's `start_lsn` (metadata.json), so the first file can be checked against it.
    pub chain_start_lsn: Option<Lsn>,
    pub sealed_at: String,
}

/// Where the manifest of the differential stamped like `name` lives, whatever its compression.
pub fn manifest_path(chain: &Chain, name: DiffName) -> PathBuf {
    chain
        .dir
        .join(format!("{}{MANIFEST_SUFFIX}", plain_name(name)))
}

/// `diff-<stamp>.sql`.
pub fn plain_name(name: DiffName) -> String {
    DiffName {
        method: Method::None,
        ..name
    }
    .to_string()
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifests always serialize");
        s.push('\n');
        s
    }

    /// Atomically (temp + fsync + rename + directory fsync), mode 0600.
    pub fn write(&self, path: &Path) -> Result<()> {
        durable::atomic_write(path, self.to_json().as_bytes())
    }

    /// `Ok(None)` when there is no manifest.
    pub fn read(path: &Path) -> Result<Option<Manifest>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ChainError::file("read", path, e)),
        };
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| ChainError::Metadata {
            path: path.into(),
            source: e,
        })?;
        if m.format > FORMAT_VERSION {
            return Err(ChainError::Usage(format!(
                "manifest \"{}\" has format {}, but this pg_scribe reads format {FORMAT_VERSION} or older",
                path.display(),
                m.format
            )));
        }
        Ok(Some(m))
    }
}

/// What one pass over a differential's text found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub content_size: u64,
    pub content_sha256: String,
    pub txns: u64,
    pub first: Option<TxnHeader>,
    pub last: Option<TxnHeader>,
    pub markers: u64,
    pub first_marker: Option<Marker>,
    /// Bytes after the last complete transaction (0 for a whole file).
    pub tail: u64,
    /// The unfinished transaction at the end, if its header is complete.
    pub open_xid: Option<u32>,
    /// The first transaction past the `--up-to` target given to [`ContentScan::new`].
    pub first_past: Option<TxnHeader>,
}

impl Summary {
    pub fn is_whole(&self) -> bool {
        self.tail == 0
    }
}

/// Push-fed scanner of a differential's text (see the module comment).
pub struct ContentScan {
    framer: Framer,
    hasher: Sha256,
    head: Vec<u8>,
    line_len: u64,
    stop: Option<StopAt>,
    s: Summary,
}

impl ContentScan {
    /// `path` names the file in error messages; `stop` asks where `--up-to` would stop.
    pub fn new(path: impl Into<PathBuf>, stop: Option<StopAt>) -> Self {
        ContentScan {
            framer: Framer::new(path),
            hasher: Sha256::new(),
            head: Vec::with_capacity(HEAD_MAX),
            line_len: 0,
            stop,
            s: Summary::default(),
        }
    }

    /// Feeds the next bytes of text. Fails at the first framing error (garbage between
    /// transactions, a header that does not parse, positions going backwards).
    pub fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.s.content_size += data.len() as u64;
        while !data.is_empty() {
            let (take, eol) = match memchr::memchr(b'\n', data) {
                Some(i) => (i + 1, true),
                None => (data.len(), false),
            };
            let room = HEAD_MAX - self.head.len();
            self.head.extend_from_slice(&data[..take.min(room)]);
            self.line_len += take as u64;
            data = &data[take..];
            if eol {
                self.line_done()?;
            }
        }
        Ok(())
    }

    fn line_done(&mut self) -> Result<()> {
        match self.framer.line(&self.head, self.line_len)? {
            LineKind::Begin(h) => {
                if let Some(stop) = self.stop
                    && self.s.first_past.is_none()
                    && stop.is_past(&h)
                {
                    self.s.first_past = Some(h);
                }
            }
            // Only a whole line of wal2sql's own can be a marker: framed DDL text is the user's.
            LineKind::Body(Body::Line) => {
                if self.head.starts_with(MARKER_PREFIX) {
                    self.s.markers += 1;
                    if self.s.first_marker.is_none()
                        && let Some((h, _)) = self.framer.open_txn()
                    {
                        self.s.first_marker = Some(Marker {
                            xid: h.xid,
                            commit_time: diff_format::format_commit_time(h.commit_time),
                            message: marker_message(&self.head),
                        });
                    }
                }
            }
            LineKind::Body(_) => {}
            LineKind::Commit(b) => {
                self.s.txns += 1;
                if self.s.first.is_none() {
                    self.s.first = Some(b.header.clone());
                }
                self.s.last = Some(b.header);
            }
        }
        self.head.clear();
        self.line_len = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Summary {
        self.s.content_sha256 = compress::hex(&self.hasher.finalize());
        self.s.tail = self.framer.offset() + self.line_len - self.framer.valid_len();
        self.s.open_xid = self.framer.open_txn().map(|(h, _)| h.xid);
        self.s
    }
}

/// wal2sql's message out of a marker line: `wal2sql: cannot replay …`.
fn marker_message(line: &[u8]) -> String {
    let start = MARKER_PREFIX.len() - "wal2sql: ".len();
    let mut text = &line[start..];
    text = text.strip_suffix(b"\n").unwrap_or(text);
    text = text.strip_suffix(MARKER_SUFFIX).unwrap_or(text);
    // Quotes are doubled twice: once for the DO body, once for the literal inside it.
    String::from_utf8_lossy(text).replace("''''", "'")
}

/// Scans a plain (uncompressed) file.
pub fn scan_plain(path: &Path, stop: Option<StopAt>) -> Result<Summary> {
    let mut f = std::fs::File::open(path).map_err(|e| ChainError::file("open", path, e))?;
    let mut scan = ContentScan::new(path, stop);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ChainError::file("read", path, e)),
        };
        scan.feed(&buf[..n])?;
    }
    Ok(scan.finish())
}

/// The `end_lsn` of the last transaction of a sealed differential: from its manifest, else from
/// its last line when it is not compressed.
fn end_of(chain: &Chain, name: DiffName, path: &Path) -> Option<Lsn> {
    if let Ok(Some(m)) = Manifest::read(&manifest_path(chain, name)) {
        return m.last.map(|t| t.end_lsn);
    }
    if name.method == Method::None {
        return diff_format::last_end_lsn_of_sealed(path).ok().flatten();
    }
    None
}

/// Writes the manifest of `name`, just sealed (plain) in `chain`. Reads the file once: a
/// digest kept while writing would not survive `abort` (which cuts the file) or a restart (which
/// appends to an existing `active.sql`), and one read of a file just written, still in the page
/// cache, costs far less than writing it did.
pub fn write_for_sealed(chain: &Chain, name: DiffName) -> Result<Manifest> {
    let path = chain.diff_path(name);
    let s = scan_plain(&path, None)?;
    if !s.is_whole() {
        return Err(ChainError::TornDiff {
            path,
            offset: s.content_size - s.tail,
            xid: s.open_xid,
        });
    }
    let previous = chain
        .sealed_diffs()?
        .into_iter()
        .rfind(|d| d.name.stamp < name.stamp)
        .map(|d| PrevLink {
            name: plain_name(d.name),
            end_lsn: end_of(chain, d.name, &d.path),
        });
    let chain_start_lsn = if chain.metadata_path().exists() {
        Some(chain.read_metadata()?.start_lsn)
    } else {
        None
    };
    let m = Manifest {
        format: FORMAT_VERSION,
        chain_id: chain.id.to_string(),
        name: plain_name(name),
        file: name.to_string(),
        compression: Compression::NONE,
        size: s.content_size,
        sha256: s.content_sha256.clone(),
        content_size: s.content_size,
        content_sha256: s.content_sha256,
        txns: s.txns,
        first: s.first.as_ref().map(TxnPoint::from),
        last: s.last.as_ref().map(TxnPoint::from),
        markers: s.markers,
        first_marker: s.first_marker,
        previous,
        chain_start_lsn,
        sealed_at: diff_format::format_commit_time(OffsetDateTime::now_utc()),
    };
    m.write(&manifest_path(chain, name))?;
    Ok(m)
}

/// After `name` was replaced by its compressed form `stored`: the manifest now describes the
/// stored bytes (the text's digest is unchanged). No manifest (a file sealed before manifests
/// existed): nothing to do.
pub fn record_compressed(
    chain: &Chain,
    stored: DiffName,
    compression: Compression,
    size: u64,
    sha256: &str,
) -> Result<()> {
    let path = manifest_path(chain, stored);
    let Some(mut m) = Manifest::read(&path)? else {
        return Ok(());
    };
    m.file = stored.to_string();
    m.compression = compression;
    m.size = size;
    m.sha256 = sha256.to_string();
    m.write(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::diff_format::sample_header as hdr;
    use time::macros::datetime;

    fn txn(n: u64, body: &str) -> String {
        let h = hdr(n);
        format!("{}{body}{}", h.to_line(), h.trailer_line())
    }

    #[test]
    fn scan_counts_transactions_and_markers_in_any_chunking() {
        let marker = "DO 'BEGIN RAISE EXCEPTION USING MESSAGE = ''wal2sql: cannot replay DELETE on table public.''''t'''' in transaction 702''; END';\n";
        let text = format!(
            "{}{}{}",
            txn(1, "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\n"),
            txn(2, &format!("BEGIN;\n{marker}COMMIT;\n")),
            txn(3, "BEGIN;\nCOMMIT;\n")
        );
        for chunk in [1usize, 7, 4096] {
            let mut s = ContentScan::new("x", Some(StopAt::Lsn(Lsn(0x150))));
            for c in text.as_bytes().chunks(chunk) {
                s.feed(c).unwrap();
            }
            let s = s.finish();
            assert_eq!(s.txns, 3);
            assert!(s.is_whole());
            assert_eq!(s.first.unwrap().xid, 701);
            assert_eq!(s.last.unwrap().xid, 703);
            assert_eq!(s.markers, 1);
            let m = s.first_marker.unwrap();
            assert_eq!(m.xid, 702);
            assert_eq!(
                m.message,
                "wal2sql: cannot replay DELETE on table public.'t' in transaction 702"
            );
            assert_eq!(s.first_past.unwrap().xid, 702);
            assert_eq!(s.content_size, text.len() as u64);
        }
        // Cut inside the last transaction.
        let mut s = ContentScan::new("x", None);
        s.feed(&text.as_bytes()[..text.len() - 5]).unwrap();
        let s = s.finish();
        assert_eq!(s.txns, 2);
        assert_eq!(s.open_xid, Some(703));
        assert!(!s.is_whole());
    }

    #[test]
    fn manifests_link_sealed_files() {
        let t = tempfile::tempdir().unwrap();
        let bd = crate::storage::backup_dir::BackupDir::new(t.path());
        let ch = bd.create_chain(datetime!(2026-11-26 12:00:00 UTC)).unwrap();
        let a = ch
            .next_diff_name(datetime!(2026-11-26 13:00:00 UTC), Compression::NONE)
            .unwrap();
        std::fs::write(ch.diff_path(a), txn(1, "BEGIN;\nCOMMIT;\n")).unwrap();
        let ma = write_for_sealed(&ch, a).unwrap();
        assert_eq!(ma.previous, None);
        assert_eq!(ma.txns, 1);
        let b = ch
            .next_diff_name(datetime!(2026-11-26 14:00:00 UTC), Compression::NONE)
            .unwrap();
        std::fs::write(ch.diff_path(b), txn(2, "BEGIN;\nCOMMIT;\n")).unwrap();
        let mb = write_for_sealed(&ch, b).unwrap();
        assert_eq!(
            mb.previous,
            Some(PrevLink {
                name: "diff-20261126T130000Z.sql".into(),
                end_lsn: Some(hdr(1).end_lsn)
            })
        );
        let back = Manifest::read(&manifest_path(&ch, b)).unwrap().unwrap();
        assert_eq!(back, mb);
        assert_eq!(durable::mode_of(&manifest_path(&ch, b)).unwrap(), 0o600);
        // Manifests are not taken for differentials.
        assert_eq!(ch.sealed_diffs().unwrap().len(), 2);
    }
}
