//! The differential file format (doc/file-handling.md): the per-transaction boundary lines that
//! wal2sql writes around each transaction, here; a constant-memory scanner that finds
//! transaction boundaries in files of any size (`scanner.rs`); torn-tail recovery for
//! `active.sql` and the cuts used by `--new-chain` routing and `--up-to` (`cut.rs`).
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

mod cut;
mod scanner;
#[cfg(test)]
mod tests;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::lsn::Lsn;

#[cfg(test)]
pub(crate) use cut::find_stop;
pub use cut::{CopySummary, Recovery, StopAt};
pub(crate) use cut::{copy_from_cut, last_end_lsn_of_sealed, recover_torn_tail};
pub use scanner::{Body, DiffScanner, Framer, LineKind, ScanEnd, TxnBounds, parse_frame};

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

pub(super) fn marker_err(msg: impl Into<String>) -> MarkerError {
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
    let mut check = MessageCheck::default();
    check.feed(data)?;
    check.finish()
}

/// [`check_message`] for a message that arrives in pieces (a statement with a huge value), in
/// constant memory: only the first line is kept, and only up to [`MARKER_MAX`] bytes of it.
#[derive(Debug, Default)]
pub struct MessageCheck {
    /// The first line so far (at most `MARKER_MAX + 1` bytes: longer cannot be a frame line).
    first: Vec<u8>,
    /// Bytes announced by the frame line, once the first newline was seen.
    announced: Option<u64>,
    /// Bytes after the frame line's newline.
    after: u64,
}

impl MessageCheck {
    pub fn feed(&mut self, piece: &[u8]) -> std::result::Result<(), MarkerError> {
        if self.announced.is_some() {
            self.after += piece.len() as u64;
            return Ok(());
        }
        let (line, rest) = match memchr::memchr(b'\n', piece) {
            Some(i) => (&piece[..i], Some(&piece[i + 1..])),
            None => (piece, None),
        };
        let room = (MARKER_MAX + 1).saturating_sub(self.first.len());
        self.first.extend_from_slice(&line[..line.len().min(room)]);
        if let Some(rest) = rest {
            let frame = std::str::from_utf8(&self.first)
                .ok()
                .filter(|_| self.first.len() <= MARKER_MAX)
                .and_then(parse_frame)
                .ok_or_else(|| marker_err("a message on several lines without a frame line"))?;
            self.announced = Some(frame.1);
            self.after = rest.len() as u64;
        }
        Ok(())
    }

    pub fn finish(self) -> std::result::Result<(), MarkerError> {
        match self.announced {
            None if self.first.starts_with(b"--") => {
                Err(marker_err("a comment that is not a wal2sql frame"))
            }
            None if self.first.is_empty() => Err(marker_err("an empty message")),
            None => Ok(()),
            Some(n) if n != self.after => Err(marker_err(format!(
                "a framed message of {} bytes announced as {n}",
                self.after
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// A header for unit tests: transaction `n` at `n * 0x100`, 0x38 bytes long.
#[cfg(test)]
pub(crate) fn sample_header(n: u64) -> TxnHeader {
    TxnHeader {
        xid: 700 + n as u32,
        commit_lsn: Lsn(n * 0x100),
        end_lsn: Lsn(n * 0x100 + 0x38),
        commit_time: time::macros::datetime!(2026-11-26 12:00:00 UTC),
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
