//! Finding transaction boundaries: the framing state machine ([`Framer`]) and a constant-memory
//! scanner over a whole file ([`DiffScanner`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{
    DDL_FRAME_PREFIX, HEADER_PREFIX, MARKER_MAX, TEXT_FRAME_PREFIX, TRAILER_PREFIX, TxnHeader,
    marker_err, parse_trailer,
};
use crate::lsn::Lsn;
use crate::storage::error::{ChainError, Result};

pub(super) const READ_BUF: usize = 256 * 1024;

/// One complete transaction found in a file: `[start, end)` covers its header through the
/// newline of its trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnBounds {
    pub header: TxnHeader,
    pub start: u64,
    pub end: u64,
}

/// What a line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Begin(TxnHeader),
    Body(Body),
    Commit(TxnBounds),
}

/// A line inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A whole statement on one line (`BEGIN;`, a row change, a setting, …).
    Line,
    /// A frame line: the next `len` bytes (then a newline) are one statement, captured DDL when
    /// `ddl`, else one of wal2sql's own.
    Frame { ddl: bool, len: u64 },
    /// Part of a framed statement; `last`: it ends with this line.
    Framed { last: bool },
}

/// `-- wal2sql ddl bytes=N` / `-- wal2sql text bytes=N` (a trailing `\n` is allowed).
pub fn parse_frame(line: &str) -> Option<(bool, u64)> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let (ddl, n) = if let Some(n) = line.strip_prefix(DDL_FRAME_PREFIX) {
        (true, n)
    } else {
        (false, line.strip_prefix(TEXT_FRAME_PREFIX)?)
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    Some((ddl, n.parse().ok()?))
}

/// The framing state machine, independent of how lines are read, so that the sync scanner here
/// and an async replay loop elsewhere apply the same rules.
#[derive(Debug)]
pub struct Framer {
    path: PathBuf,
    offset: u64,
    open: Option<(TxnHeader, u64)>,
    last_end_lsn: Option<Lsn>,
    valid_len: u64,
    /// A well-formed trailer line with the wrong end_lsn inside the open transaction.
    stray_trailer: Option<u64>,
    /// Bytes of framed text still to come (its newline included).
    framed: u64,
}

impl Framer {
    /// `path` only names the file in error messages.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Framer {
            path: path.into(),
            offset: 0,
            open: None,
            last_end_lsn: None,
            valid_len: 0,
            stray_trailer: None,
            framed: 0,
        }
    }

    /// Feeds one whole line. `head` holds the line's first bytes, at least
    /// `min(len, MARKER_MAX + 1)` of them (all of it is fine); `len` counts the whole line with
    /// its `\n`.
    pub fn line(&mut self, head: &[u8], len: u64) -> Result<LineKind> {
        let at = self.offset;
        self.offset += len;
        let marker = if len as usize <= MARKER_MAX {
            let n = (len as usize).min(head.len());
            std::str::from_utf8(&head[..n]).ok()
        } else {
            None
        };
        match &self.open {
            None => {
                let parsed = match marker {
                    Some(s) if s.starts_with(HEADER_PREFIX) => TxnHeader::parse(s),
                    _ => Err(marker_err("expected a transaction header")),
                };
                let h = parsed.map_err(|e| self.bad(at, e.0))?;
                if let Some(prev) = self.last_end_lsn
                    && h.end_lsn <= prev
                {
                    return Err(ChainError::OutOfOrder {
                        path: self.path.clone(),
                        prev,
                        next: h.end_lsn,
                    });
                }
                self.open = Some((h.clone(), at));
                self.stray_trailer = None;
                Ok(LineKind::Begin(h))
            }
            Some(_) if self.framed > 0 => {
                if len > self.framed {
                    return Err(self.bad(
                        at,
                        "a framed statement does not end at the end of a line".into(),
                    ));
                }
                self.framed -= len;
                Ok(LineKind::Body(Body::Framed {
                    last: self.framed == 0,
                }))
            }
            Some((h, start)) => {
                // wal2sql's statements start with a keyword: a line starting with "--" is a frame
                // line or the trailer, or the file is not what wal2sql wrote.
                if !head.starts_with(b"--") {
                    return Ok(LineKind::Body(Body::Line));
                }
                let Some(s) = marker else {
                    return Err(self.bad(at, "a comment line that is not a wal2sql frame".into()));
                };
                if let Some((ddl, n)) = parse_frame(s) {
                    self.framed = n + 1;
                    return Ok(LineKind::Body(Body::Frame { ddl, len: n }));
                }
                if !s.starts_with(TRAILER_PREFIX) {
                    return Err(self.bad(at, "a comment line that is not a wal2sql frame".into()));
                }
                match parse_trailer(s) {
                    Ok(end) if end == h.end_lsn => {
                        let b = TxnBounds {
                            header: h.clone(),
                            start: *start,
                            end: self.offset,
                        };
                        self.open = None;
                        self.last_end_lsn = Some(end);
                        self.valid_len = self.offset;
                        Ok(LineKind::Commit(b))
                    }
                    Ok(_) => {
                        self.stray_trailer.get_or_insert(at);
                        Err(self.bad(
                            at,
                            format!(
                                "a trailer for another transaction (end_lsn {} expected)",
                                h.end_lsn
                            ),
                        ))
                    }
                    Err(e) => Err(self.bad(at, e.0)),
                }
            }
        }
    }

    fn bad(&self, offset: u64, reason: String) -> ChainError {
        if offset == 0 {
            ChainError::NotADiff {
                path: self.path.clone(),
                reason: format!("first line: {reason}"),
            }
        } else {
            ChainError::CorruptDiff {
                path: self.path.clone(),
                offset,
                reason,
            }
        }
    }

    /// Bytes fed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// End of the last complete transaction.
    pub(crate) fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// The unfinished transaction, if any: its header and start offset.
    pub(crate) fn open_txn(&self) -> Option<(&TxnHeader, u64)> {
        self.open.as_ref().map(|(h, s)| (h, *s))
    }
}

/// How a scanned file ends after its last complete transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    pub valid_len: u64,
    pub total_len: u64,
    pub last_end_lsn: Option<Lsn>,
    /// An unfinished transaction (header complete) from `valid_len` on.
    pub open_txn: Option<TxnHeader>,
    /// Bytes after the last `\n` (a torn line).
    pub partial_line: u64,
    /// The torn line is a prefix of a header line, or only NUL bytes (blocks a crashed filesystem
    /// allocated but never wrote).
    pub(super) partial_is_ours: bool,
    /// A well-formed trailer for another transaction inside the unfinished one.
    pub(super) stray_trailer: Option<u64>,
}

impl ScanEnd {
    pub(crate) fn is_complete(&self) -> bool {
        self.valid_len == self.total_len
    }
}

/// Iterates over the complete transactions of a diff, reading through a buffer: memory stays
/// constant whatever the size of the file, a transaction or a line.
pub struct DiffScanner<R> {
    reader: R,
    framer: Framer,
    pub(super) head: Vec<u8>,
    /// Set at end of input.
    end: Option<ScanEnd>,
}

impl DiffScanner<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| ChainError::file("open", path, e))?;
        Ok(Self::new(BufReader::with_capacity(READ_BUF, f), path))
    }
}

impl<R: BufRead> DiffScanner<R> {
    /// `path` only names the input in error messages.
    pub fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        DiffScanner {
            reader,
            framer: Framer::new(path),
            head: Vec::with_capacity(MARKER_MAX + 1),
            end: None,
        }
    }

    fn path(&self) -> &Path {
        &self.framer.path
    }

    /// The next complete transaction, or `None` at end of input (then see [`Self::end`]).
    pub fn next_txn(&mut self) -> Result<Option<TxnBounds>> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            self.head.clear();
            let mut len: u64 = 0;
            let mut all_nul = true;
            let mut complete = false;
            loop {
                let buf = match self.reader.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(ChainError::file("read", &self.framer.path, e));
                    }
                };
                if buf.is_empty() {
                    break;
                }
                let (take, found) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                let room = (MARKER_MAX + 1).saturating_sub(self.head.len());
                self.head.extend_from_slice(&buf[..take.min(room)]);
                all_nul = all_nul && buf[..take].iter().all(|&b| b == 0);
                len += take as u64;
                self.reader.consume(take);
                if found {
                    complete = true;
                    break;
                }
            }
            if !complete {
                self.end = Some(self.finish_scan(len, all_nul));
                return Ok(None);
            }
            if let LineKind::Commit(b) = self.framer.line(&self.head, len)? {
                return Ok(Some(b));
            }
        }
    }

    fn finish_scan(&self, partial: u64, all_nul: bool) -> ScanEnd {
        let partial_is_ours = partial == 0
            || all_nul
            || self.framer.open.is_some()
            || HEADER_PREFIX.as_bytes().starts_with(&self.head)
            || self.head.starts_with(HEADER_PREFIX.as_bytes());
        ScanEnd {
            valid_len: self.framer.valid_len,
            total_len: self.framer.offset + partial,
            last_end_lsn: self.framer.last_end_lsn,
            open_txn: self.framer.open.as_ref().map(|(h, _)| h.clone()),
            partial_line: partial,
            partial_is_ours,
            stray_trailer: self.framer.stray_trailer,
        }
    }

    /// How the input ended; `None` until [`Self::next_txn`] has returned `None`.
    pub fn end(&self) -> Option<&ScanEnd> {
        self.end.as_ref()
    }

    /// Reads to the end and reports how the input ends.
    pub fn finish(mut self) -> Result<ScanEnd> {
        while self.next_txn()?.is_some() {}
        Ok(self.end.take().expect("set at end of input"))
    }

    /// Reads to the end and fails unless the input holds only complete transactions, as a sealed
    /// diff must.
    pub fn finish_complete(self) -> Result<ScanEnd> {
        let path = self.path().to_path_buf();
        let end = self.finish()?;
        if !end.is_complete() {
            return Err(ChainError::TornDiff {
                path,
                offset: end.valid_len,
                xid: end.open_txn.as_ref().map(|h| h.xid),
            });
        }
        Ok(end)
    }
}

impl<R: BufRead> Iterator for DiffScanner<R> {
    type Item = Result<TxnBounds>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_txn().transpose()
    }
}
