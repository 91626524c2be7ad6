//! The differential file format: the per-transaction boundary lines that wal2sql writes around
//! each transaction (design §3), a constant-memory scanner that finds transaction boundaries in
//! files of any size, torn-tail recovery for `active.sql`, and the cuts used by `--new-chain`
//! routing and `--up-to`.
//!
//! ```text
//! -- wal2sql begin xid=750 commit_lsn=0/1A2B3C4 end_lsn=0/1A2B3F8 commit_time=2026-11-26T12:00:00.123456Z format=2
//! BEGIN;
//! INSERT INTO public.t (id, a) VALUES ('1', E'two\nlines');
//! SET LOCAL ROLE alice;
//! -- wal2sql ddl bytes=30
//! CREATE TABLE public.u (a int);
//! RESET ROLE;
//! COMMIT;
//! -- wal2sql commit end_lsn=0/1A2B3F8
//! ```
//!
//! Framing rules (format 2), chosen so that nothing a user of the source database writes can
//! fake a boundary (the argument is in doc/security.md):
//! - Every message of wal2sql is one line, except a *framed* one: a frame line
//!   `-- wal2sql ddl bytes=N` (captured DDL) or `-- wal2sql text bytes=N` (a statement of
//!   wal2sql's holding a newline, from an identifier) followed by exactly N bytes and a newline.
//!   The N bytes are skipped unread: they may hold anything, markers included.
//! - Outside a transaction the only legal line is a header. The first line of a non-empty file
//!   must be a header, which is how a file that is not ours is recognised (and never truncated).
//! - Inside a transaction, outside framed text, each line is one statement (values escape their
//!   newlines), and a line starting with `-- ` is a frame line or the trailer, whose `end_lsn`
//!   must equal the header's; any other such line makes the file corrupt.
//! - A header without `format=2` (an older wal2sql, whose DDL was not framed) is refused.
//! - Marker lines are short; a line longer than [`MARKER_MAX`] is body without being looked at,
//!   so a multi-gigabyte line costs no memory.
//! - `end_lsn` strictly increases from one transaction to the next within a file (wal2sql
//!   delivers in commit order and the streamer drops duplicates), so a concatenation or replayed
//!   stretch is reported instead of being replayed twice.
//! - Header fields other than the known ones are ignored, so a later wal2sql may add some.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::lsn::Lsn;
use crate::storage::error::{ChainError, Result};

pub const HEADER_PREFIX: &str = "-- wal2sql begin ";
pub const TRAILER_PREFIX: &str = "-- wal2sql commit ";
/// The frame line of captured DDL: `-- wal2sql ddl bytes=N`.
pub const DDL_FRAME_PREFIX: &str = "-- wal2sql ddl bytes=";
/// The frame line of one of wal2sql's own statements that holds a newline.
pub const TEXT_FRAME_PREFIX: &str = "-- wal2sql text bytes=";
/// The output format this build reads and expects wal2sql to write.
pub const FORMAT: u32 = 2;

/// No marker line is longer than this (a full header is about 110 bytes); longer lines are body.
pub const MARKER_MAX: usize = 512;

const READ_BUF: usize = 256 * 1024;

/// The fields of a transaction's `-- wal2sql begin` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnHeader {
    pub xid: u32,
    /// LSN of the commit record: decides which chain a transaction belongs to.
    pub commit_lsn: Lsn,
    /// End of the commit record: the position to confirm once the transaction is durable.
    pub end_lsn: Lsn,
    /// Always UTC.
    pub commit_time: OffsetDateTime,
}

/// Why a marker line did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerError(pub String);

impl std::fmt::Display for MarkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MarkerError {}

fn marker_err(msg: impl Into<String>) -> MarkerError {
    MarkerError(msg.into())
}

/// `2026-11-26T12:00:00.123456Z`: microseconds, PostgreSQL's timestamp precision.
pub fn format_commit_time(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("a UTC timestamp with a 4-digit year always formats")
}

/// RFC 3339 with a literal `Z`; any number of fractional digits.
pub fn parse_commit_time(s: &str) -> std::result::Result<OffsetDateTime, MarkerError> {
    if !s.ends_with('Z') {
        return Err(marker_err(format!("commit_time \"{s}\" is not in UTC")));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| marker_err(format!("invalid commit_time \"{s}\"")))
}

impl TxnHeader {
    /// The header line, with its newline.
    pub fn to_line(&self) -> String {
        format!(
            "{HEADER_PREFIX}xid={} commit_lsn={} end_lsn={} commit_time={} format={FORMAT}\n",
            self.xid,
            self.commit_lsn,
            self.end_lsn,
            format_commit_time(self.commit_time)
        )
    }

    /// Parses a header line (a trailing `\n` is allowed).
    pub fn parse(line: &str) -> std::result::Result<Self, MarkerError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line
            .strip_prefix(HEADER_PREFIX)
            .ok_or_else(|| marker_err("not a transaction header"))?;
        let (mut xid, mut commit_lsn, mut end_lsn, mut commit_time) = (None, None, None, None);
        let mut format = None;
        for tok in rest.split(' ') {
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| marker_err(format!("malformed header field \"{tok}\"")))?;
            let lsn = |v: &str| {
                v.parse::<Lsn>()
                    .map_err(|e| marker_err(format!("header field \"{k}\": {e}")))
            };
            match k {
                "xid" => set_once(&mut xid, k, || {
                    v.parse::<u32>()
                        .map_err(|_| marker_err(format!("invalid xid \"{v}\"")))
                })?,
                "commit_lsn" => set_once(&mut commit_lsn, k, || lsn(v))?,
                "end_lsn" => set_once(&mut end_lsn, k, || lsn(v))?,
                "commit_time" => set_once(&mut commit_time, k, || parse_commit_time(v))?,
                "format" => set_once(&mut format, k, || {
                    v.parse::<u32>()
                        .map_err(|_| marker_err(format!("invalid format \"{v}\"")))
                })?,
                _ => {}
            }
        }
        match format {
            Some(FORMAT) => {}
            None => {
                return Err(marker_err(
                    "written by an older wal2sql (format 1, no \"format=2\"), whose DDL is not framed: \
                     it cannot be read safely (see doc/security.md); update wal2sql and start a new chain",
                ));
            }
            Some(v) => {
                return Err(marker_err(format!(
                    "output format {v} is not the one this pg_scribe reads ({FORMAT})"
                )));
            }
        }
        let missing = |f: &str| marker_err(format!("header field \"{f}\" is missing"));
        let h = TxnHeader {
            xid: xid.ok_or_else(|| missing("xid"))?,
            commit_lsn: commit_lsn.ok_or_else(|| missing("commit_lsn"))?,
            end_lsn: end_lsn.ok_or_else(|| missing("end_lsn"))?,
            commit_time: commit_time.ok_or_else(|| missing("commit_time"))?,
        };
        if h.end_lsn <= h.commit_lsn {
            return Err(marker_err(format!(
                "end_lsn {} is not after commit_lsn {}",
                h.end_lsn, h.commit_lsn
            )));
        }
        Ok(h)
    }

    /// The matching `-- wal2sql commit` line.
    pub fn trailer_line(&self) -> String {
        trailer_line(self.end_lsn)
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    key: &str,
    parse: impl FnOnce() -> std::result::Result<T, MarkerError>,
) -> std::result::Result<(), MarkerError> {
    if slot.is_some() {
        return Err(marker_err(format!("header field \"{key}\" appears twice")));
    }
    *slot = Some(parse()?);
    Ok(())
}

/// Checks that one message of wal2sql inside a transaction (not its trailer) keeps the framing
/// rules: one line not starting with `--`, or a frame line and exactly the bytes it announces.
/// The streamer refuses anything else rather than write a file whose lines could be misread.
pub fn check_message(data: &[u8]) -> std::result::Result<(), MarkerError> {
    match memchr::memchr(b'\n', data) {
        None if data.starts_with(b"--") => Err(marker_err("a comment that is not a wal2sql frame")),
        None if data.is_empty() => Err(marker_err("an empty message")),
        None => Ok(()),
        Some(i) => {
            let frame = std::str::from_utf8(&data[..i])
                .ok()
                .and_then(parse_frame)
                .ok_or_else(|| marker_err("a message on several lines without a frame line"))?;
            if frame.1 != (data.len() - i - 1) as u64 {
                return Err(marker_err(format!(
                    "a framed message of {} bytes announced as {}",
                    data.len() - i - 1,
                    frame.1
                )));
            }
            Ok(())
        }
    }
}

/// The trailer line for a transaction ending at `end_lsn`, with its newline.
pub fn trailer_line(end_lsn: Lsn) -> String {
    format!("{TRAILER_PREFIX}end_lsn={end_lsn}\n")
}

/// Parses a trailer line (a trailing `\n` is allowed) into its `end_lsn`.
pub fn parse_trailer(line: &str) -> std::result::Result<Lsn, MarkerError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let v = line
        .strip_prefix(TRAILER_PREFIX)
        .and_then(|r| r.strip_prefix("end_lsn="))
        .ok_or_else(|| marker_err("not a transaction trailer"))?;
    v.parse::<Lsn>()
        .map_err(|e| marker_err(format!("trailer: {e}")))
}

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
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// End of the last complete transaction.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    pub fn last_end_lsn(&self) -> Option<Lsn> {
        self.last_end_lsn
    }

    /// The unfinished transaction, if any: its header and start offset.
    pub fn open_txn(&self) -> Option<(&TxnHeader, u64)> {
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
    partial_is_ours: bool,
    /// A well-formed trailer for another transaction inside the unfinished one.
    stray_trailer: Option<u64>,
}

impl ScanEnd {
    pub fn is_complete(&self) -> bool {
        self.valid_len == self.total_len
    }
}

/// Iterates over the complete transactions of a diff, reading through a buffer: memory stays
/// constant whatever the size of the file, a transaction or a line.
pub struct DiffScanner<R> {
    reader: R,
    framer: Framer,
    head: Vec<u8>,
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

/// The outcome of [`recover_torn_tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// `end_lsn` of the last complete transaction in the file.
    pub last_end_lsn: Option<Lsn>,
    /// The file's length now.
    pub valid_len: u64,
    /// Bytes cut off the end.
    pub cut_bytes: u64,
}

/// Cuts an unfinished transaction (left by a crash mid-write) off the end of `path` and fsyncs
/// the file, so that appending can resume at a transaction boundary.
///
/// Refuses (and changes nothing) when the file does not look like a torn diff: a first line that
/// is not a wal2sql header, garbage between transactions, or a cut that would remove a
/// well-formed trailer of another transaction (a sign that valid data follows a tear, which only
/// a human should throw away).
pub fn recover_torn_tail(path: &Path) -> Result<Recovery> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| ChainError::file("open", path, e))?;
    let end = DiffScanner::new(BufReader::with_capacity(READ_BUF, &file), path).finish()?;
    let cut = end.total_len - end.valid_len;
    if cut > 0 {
        if !end.partial_is_ours {
            let reason = "unexpected bytes after the last complete transaction".to_string();
            return Err(if end.valid_len == 0 {
                ChainError::NotADiff {
                    path: path.into(),
                    reason,
                }
            } else {
                ChainError::CorruptDiff {
                    path: path.into(),
                    offset: end.valid_len,
                    reason,
                }
            });
        }
        if let Some(at) = end.stray_trailer {
            return Err(ChainError::CorruptDiff {
                path: path.into(),
                offset: at,
                reason: "a transaction trailer inside an unfinished transaction; \
                         refusing to cut what may be valid data"
                    .into(),
            });
        }
        file.set_len(end.valid_len)
            .map_err(|e| ChainError::file("truncate", path, e))?;
        file.sync_all()
            .map_err(|e| ChainError::file("fsync", path, e))?;
    }
    Ok(Recovery {
        last_end_lsn: end.last_end_lsn,
        valid_len: end.valid_len,
        cut_bytes: cut,
    })
}

/// Where [`find_stop`] stops replay: before the first transaction that is later than the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// First transaction with `commit_time > T`.
    Time(OffsetDateTime),
    /// First transaction with `commit_lsn > L`.
    Lsn(Lsn),
}

impl StopAt {
    pub fn is_past(&self, h: &TxnHeader) -> bool {
        match *self {
            StopAt::Time(t) => h.commit_time > t,
            StopAt::Lsn(l) => h.commit_lsn > l,
        }
    }
}

/// The first complete transaction past `stop`, or `None` when every transaction is within it.
/// Works on any reader, e.g. a decompressing one.
pub fn find_stop<R: BufRead>(
    scanner: &mut DiffScanner<R>,
    stop: StopAt,
) -> Result<Option<TxnBounds>> {
    while let Some(t) = scanner.next_txn()? {
        if stop.is_past(&t.header) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// What [`copy_from_cut`] copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySummary {
    /// Offset in the source of the first copied transaction (= its length before the cut).
    pub from: Option<u64>,
    pub bytes: u64,
    pub txns: u64,
    pub last_end_lsn: Option<Lsn>,
}

/// Appends to `dst` every complete transaction of `src` whose `commit_lsn >= cut` (the
/// transactions that belong to a chain starting at `cut`), byte for byte. A torn tail in `src`
/// is not copied. The caller makes `dst` durable.
pub fn copy_from_cut(src: &Path, cut: Lsn, dst: &mut impl Write) -> Result<CopySummary> {
    let mut scanner = DiffScanner::open(src)?;
    let mut s = CopySummary::default();
    while let Some(t) = scanner.next_txn()? {
        if t.header.commit_lsn >= cut {
            s.from.get_or_insert(t.start);
            s.txns += 1;
            s.last_end_lsn = Some(t.header.end_lsn);
        }
    }
    let Some(from) = s.from else {
        return Ok(s);
    };
    let end = scanner.end().expect("scanned to the end").valid_len;
    let mut f = File::open(src).map_err(|e| ChainError::file("open", src, e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| ChainError::file("seek in", src, e))?;
    let mut limited = BufReader::with_capacity(READ_BUF, f).take(end - from);
    s.bytes = copy_checked(&mut limited, dst, src)?;
    if s.bytes != end - from {
        return Err(ChainError::file(
            "read",
            src,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being copied",
            ),
        ));
    }
    Ok(s)
}

/// io::copy, with read and write errors told apart.
fn copy_checked(r: &mut impl Read, w: &mut impl Write, src: &Path) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ChainError::file("read", src, e)),
        };
        w.write_all(&buf[..k])
            .map_err(|e| ChainError::io("could not write copied transactions", e))?;
        n += k as u64;
    }
}

/// The `end_lsn` of the last transaction of a *sealed, uncompressed* diff, read from its final
/// line without scanning the file. Fails if the file does not end with a trailer.
pub fn last_end_lsn_of_sealed(path: &Path) -> Result<Option<Lsn>> {
    let mut f = File::open(path).map_err(|e| ChainError::file("open", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| ChainError::file("stat", path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    let take = len.min(MARKER_MAX as u64 + 1);
    f.seek(SeekFrom::Start(len - take))
        .map_err(|e| ChainError::file("seek in", path, e))?;
    let mut buf = Vec::with_capacity(take as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| ChainError::file("read", path, e))?;
    let torn = || ChainError::TornDiff {
        path: path.into(),
        offset: len,
        xid: None,
    };
    let body = buf.strip_suffix(b"\n").ok_or_else(torn)?;
    let line = match memchr::memrchr(b'\n', body) {
        Some(i) => &body[i + 1..],
        None if take == len => body,
        None => return Err(torn()),
    };
    let line = std::str::from_utf8(line).map_err(|_| torn())?;
    parse_trailer(line).map(Some).map_err(|_| torn())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use time::macros::datetime;

    fn hdr(xid: u32, commit: u64, end: u64) -> TxnHeader {
        TxnHeader {
            xid,
            commit_lsn: Lsn(commit),
            end_lsn: Lsn(end),
            commit_time: datetime!(2026-11-26 12:00:00.123456 UTC)
                + time::Duration::seconds(xid as i64),
        }
    }

    fn txn(h: &TxnHeader, body: &str) -> String {
        format!("{}BEGIN;\n{body}COMMIT;\n{}", h.to_line(), h.trailer_line())
    }

    fn sample() -> (Vec<TxnHeader>, String) {
        let hs = vec![
            hdr(750, 0x100, 0x138),
            hdr(751, 0x200, 0x238),
            hdr(752, 0x300, 0x338),
        ];
        let s = hs
            .iter()
            .map(|h| txn(h, "INSERT INTO public.t (id) VALUES ('1');\n"))
            .collect();
        (hs, s)
    }

    fn scan(s: &[u8]) -> Result<(Vec<TxnBounds>, ScanEnd)> {
        let mut sc = DiffScanner::new(Cursor::new(s.to_vec()), "mem");
        let mut v = vec![];
        while let Some(t) = sc.next_txn()? {
            v.push(t);
        }
        Ok((v, sc.end().unwrap().clone()))
    }

    #[test]
    fn header_matches_design_exactly() {
        let h = TxnHeader {
            xid: 750,
            commit_lsn: "0/1A2B3C4".parse().unwrap(),
            end_lsn: "0/1A2B3F8".parse().unwrap(),
            commit_time: datetime!(2026-11-26 12:00:00.123456 UTC),
        };
        let line = "-- wal2sql begin xid=750 commit_lsn=0/1A2B3C4 end_lsn=0/1A2B3F8 commit_time=2026-11-26T12:00:00.123456Z format=2\n";
        assert_eq!(h.to_line(), line);
        assert_eq!(TxnHeader::parse(line).unwrap(), h);
        assert_eq!(h.trailer_line(), "-- wal2sql commit end_lsn=0/1A2B3F8\n");
        assert_eq!(
            parse_trailer("-- wal2sql commit end_lsn=0/1A2B3F8").unwrap(),
            h.end_lsn
        );
    }

    #[test]
    fn header_time_is_utc_with_microseconds() {
        let t = datetime!(2026-11-26 13:00:00 +01:00);
        assert_eq!(format_commit_time(t), "2026-11-26T12:00:00.000000Z");
        let h = TxnHeader::parse(
            "-- wal2sql begin commit_time=2026-11-26T12:00:00Z end_lsn=0/20 format=2 xid=1 commit_lsn=0/10 future=x",
        )
        .unwrap();
        assert_eq!(h.commit_time, datetime!(2026-11-26 12:00:00 UTC));
    }

    #[test]
    fn header_rejects_bad_fields() {
        for bad in [
            "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20",
            "-- wal2sql begin xid=1 xid=2 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
            "-- wal2sql begin xid=-1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
            "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/10 commit_time=2026-11-26T12:00:00Z",
            "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00+01:00",
            "-- wal2sql begin xid=1  commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
            "-- wal2sql commit end_lsn=0/20",
        ] {
            assert!(TxnHeader::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_trailer("-- wal2sql commit end_lsn=0/2 0").is_err());
        assert!(parse_trailer("-- wal2sql commit lsn=0/20").is_err());
    }

    #[test]
    fn scanner_finds_boundaries() {
        let (hs, s) = sample();
        let (v, end) = scan(s.as_bytes()).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].start, 0);
        for (i, t) in v.iter().enumerate() {
            assert_eq!(t.header, hs[i]);
            assert!(s[t.start as usize..].starts_with(HEADER_PREFIX));
            assert!(s[..t.end as usize].ends_with(&hs[i].trailer_line()));
            if i > 0 {
                assert_eq!(t.start, v[i - 1].end);
            }
        }
        assert!(end.is_complete());
        assert_eq!(end.last_end_lsn, Some(Lsn(0x338)));
    }

    #[test]
    fn framed_text_is_skipped_unread() {
        let h = hdr(9, 0x1000, 0x1040);
        let ddl = format!(
            "CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$SELECT '\n{}{}-- wal2sql commit end_lsn=0/1040\n-- wal2sql ddl bytes=1\n'$$;",
            hdr(10, 0x2000, 0x2040).to_line(),
            trailer_line(Lsn(0x999)),
        );
        let body = format!("-- wal2sql ddl bytes={}\n{ddl}\n", ddl.len());
        let s = txn(&h, &body);
        let (v, end) = scan(s.as_bytes()).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].end as usize, s.len());
        assert!(end.is_complete());
        // A wrong length makes the file corrupt, whichever way it is wrong.
        for n in [ddl.len() - 1, ddl.len() + 1, ddl.len() + 2] {
            let body = format!("-- wal2sql ddl bytes={n}\n{ddl}\n");
            assert!(scan(txn(&h, &body).as_bytes()).is_err(), "{n}");
        }
        // Outside framed text, only a frame line or the right trailer may start with "--".
        for line in [
            "-- a comment\n".to_string(),
            "--\n".to_string(),
            trailer_line(Lsn(0x999)),
            "-- wal2sql ddl bytes=01\nx\n".to_string(),
        ] {
            assert!(scan(txn(&h, &line).as_bytes()).is_err(), "{line}");
        }
    }

    #[test]
    fn old_format_is_refused() {
        let e = TxnHeader::parse(
            "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z",
        )
        .unwrap_err();
        assert!(e.0.contains("older wal2sql"), "{e}");
        assert!(TxnHeader::parse(
            "-- wal2sql begin xid=1 commit_lsn=0/10 end_lsn=0/20 commit_time=2026-11-26T12:00:00Z format=3"
        )
        .is_err());
    }

    #[test]
    fn messages_keep_the_framing_rules() {
        assert!(check_message(b"INSERT INTO public.t (a) VALUES (E'a\\nb');").is_ok());
        assert!(check_message(b"-- wal2sql ddl bytes=3\nx\ny").is_ok());
        for bad in [
            &b"-- wal2sql commit end_lsn=0/10"[..],
            b"INSERT INTO t VALUES ('a\nb');",
            b"-- wal2sql ddl bytes=4\nx\ny",
            b"-- x\ny",
            b"",
        ] {
            assert!(
                check_message(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn garbage_first_line_is_not_ours() {
        let e = scan(b"hello\n").unwrap_err();
        assert!(matches!(e, ChainError::NotADiff { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "file \"mem\" is not a wal2sql differential: first line: expected a transaction header"
        );
        let (_, s) = sample();
        let bad = format!("{s}SELECT 1;\n");
        match scan(bad.as_bytes()).unwrap_err() {
            ChainError::CorruptDiff { offset, .. } => assert_eq!(offset as usize, s.len()),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn out_of_order_is_reported() {
        let s = txn(&hdr(2, 0x200, 0x238), "") + &txn(&hdr(1, 0x100, 0x138), "");
        assert!(matches!(
            scan(s.as_bytes()).unwrap_err(),
            ChainError::OutOfOrder { .. }
        ));
    }

    #[test]
    fn long_lines_are_body_and_cost_no_memory() {
        let h = hdr(1, 0x10, 0x20);
        let mut big = String::from("INSERT INTO t VALUES ('");
        big.push_str(&"x".repeat(3 * READ_BUF + 17));
        big.push_str(&trailer_line(Lsn(0x20)));
        big.push('\n');
        let s = txn(&h, &big);
        let mut sc = DiffScanner::new(BufReader::with_capacity(4096, Cursor::new(s.clone())), "m");
        let t = sc.next_txn().unwrap().unwrap();
        assert_eq!(t.end as usize, s.len());
        assert!(sc.head.capacity() <= 2 * (MARKER_MAX + 1));
    }

    fn write_tmp(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn recovery_cuts_every_kind_of_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (_, good) = sample();
        let next = txn(&hdr(800, 0x900, 0x938), "UPDATE t SET a = '1';\n");
        // Every proper prefix of the next transaction is a possible crash point.
        for cut in 0..next.len() {
            let data = format!("{good}{}", &next[..cut]);
            let p = write_tmp(&dir, "active.sql", data.as_bytes());
            let r = recover_torn_tail(&p).unwrap();
            assert_eq!(r.valid_len as usize, good.len(), "cut {cut}");
            assert_eq!(r.cut_bytes as usize, cut);
            assert_eq!(r.last_end_lsn, Some(Lsn(0x338)));
            assert_eq!(std::fs::read(&p).unwrap(), good.as_bytes());
        }
        // And of the very first transaction.
        for cut in 0..good.len() {
            let p = write_tmp(&dir, "first.sql", &good.as_bytes()[..cut]);
            let r = recover_torn_tail(&p).unwrap();
            assert!(r.valid_len as usize <= cut);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), r.valid_len);
        }
        let full = format!("{good}{next}");
        let p = write_tmp(&dir, "whole.sql", full.as_bytes());
        let r = recover_torn_tail(&p).unwrap();
        assert_eq!((r.cut_bytes, r.last_end_lsn), (0, Some(Lsn(0x938))));
    }

    #[test]
    fn recovery_handles_empty_and_nul_tails() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_tmp(&dir, "empty.sql", b"");
        let r = recover_torn_tail(&p).unwrap();
        assert_eq!(
            r,
            Recovery {
                last_end_lsn: None,
                valid_len: 0,
                cut_bytes: 0
            }
        );
        let (_, good) = sample();
        let mut data = good.clone().into_bytes();
        data.extend_from_slice(&[0u8; 4096]);
        let p = write_tmp(&dir, "nul.sql", &data);
        assert_eq!(recover_torn_tail(&p).unwrap().cut_bytes, 4096);
        let p = write_tmp(&dir, "allnul.sql", &[0u8; 100]);
        assert_eq!(recover_torn_tail(&p).unwrap().valid_len, 0);
    }

    #[test]
    fn recovery_refuses_files_that_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (_, good) = sample();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", b"\x7fELF\x02\x01\x01 binary".to_vec()),
            ("text", b"SELECT 1;\nSELECT 2;\n".to_vec()),
            ("midgarbage", format!("{good}oops").into_bytes()),
            ("badheader", b"-- wal2sql begin xid=zz\nBEGIN;\n".to_vec()),
        ];
        for (name, data) in cases {
            let p = write_tmp(&dir, name, &data);
            assert!(recover_torn_tail(&p).is_err(), "{name}");
            assert_eq!(std::fs::read(&p).unwrap(), data, "{name} untouched");
        }
        // A torn transaction followed by a complete one: only a human may cut that.
        let torn = format!(
            "{good}{}BEGIN;\n{}",
            hdr(900, 0x1000, 0x1038).to_line(),
            txn(&hdr(901, 0x2000, 0x2038), "")
        );
        let p = write_tmp(&dir, "stray", torn.as_bytes());
        assert!(matches!(
            recover_torn_tail(&p).unwrap_err(),
            ChainError::CorruptDiff { .. }
        ));
        assert_eq!(std::fs::read(&p).unwrap(), torn.as_bytes());
        let e = recover_torn_tail(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().starts_with("could not open file"), "{e}");
    }

    #[test]
    fn sealed_diffs_must_be_complete() {
        let (_, good) = sample();
        let sc = DiffScanner::new(Cursor::new(good.clone()), "d");
        assert!(sc.finish_complete().is_ok());
        let torn = &good[..good.len() - 1];
        let sc = DiffScanner::new(Cursor::new(torn.to_string()), "d");
        let e = sc.finish_complete().unwrap_err();
        assert!(
            matches!(e, ChainError::TornDiff { xid: Some(752), .. }),
            "{e}"
        );
    }

    #[test]
    fn copies_transactions_past_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (hs, good) = sample();
        let torn = format!("{good}{}BEGIN;\n", hdr(999, 0x5000, 0x5038).to_line());
        let p = write_tmp(&dir, "active.sql", torn.as_bytes());
        for (cut, expect_from) in [
            (0x0, 0usize),
            (0x101, 1),
            (0x200, 1),
            (0x300, 2),
            (0x301, 3),
        ] {
            let mut out = Vec::new();
            let s = copy_from_cut(&p, Lsn(cut), &mut out).unwrap();
            let (v, _) = scan(good.as_bytes()).unwrap();
            if expect_from == 3 {
                assert_eq!(s, CopySummary::default());
                assert!(out.is_empty());
                continue;
            }
            let from = v[expect_from].start as usize;
            assert_eq!(out, good.as_bytes()[from..]);
            assert_eq!(s.from, Some(from as u64));
            assert_eq!(s.txns as usize, 3 - expect_from);
            assert_eq!(s.last_end_lsn, Some(hs[2].end_lsn));
        }
    }

    #[test]
    fn finds_where_up_to_stops() {
        let (hs, good) = sample();
        let mut sc = DiffScanner::new(Cursor::new(good.clone()), "d");
        let t = find_stop(&mut sc, StopAt::Time(hs[0].commit_time))
            .unwrap()
            .unwrap();
        assert_eq!(t.header.xid, 751);
        let mut sc = DiffScanner::new(Cursor::new(good.clone()), "d");
        let t = find_stop(&mut sc, StopAt::Lsn(Lsn(0x200)))
            .unwrap()
            .unwrap();
        assert_eq!(t.header.xid, 752);
        let mut sc = DiffScanner::new(Cursor::new(good), "d");
        assert!(
            find_stop(&mut sc, StopAt::Lsn(Lsn(0x300)))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reads_last_end_lsn_from_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (_, good) = sample();
        let p = write_tmp(&dir, "d.sql", good.as_bytes());
        assert_eq!(last_end_lsn_of_sealed(&p).unwrap(), Some(Lsn(0x338)));
        let p = write_tmp(&dir, "e.sql", b"");
        assert_eq!(last_end_lsn_of_sealed(&p).unwrap(), None);
        let p = write_tmp(&dir, "t.sql", &good.as_bytes()[..good.len() - 3]);
        assert!(last_end_lsn_of_sealed(&p).is_err());
    }
}
