//! Cutting diffs at transaction boundaries: a torn tail off `active.sql`, the stop of
//! `--up-to`, the part of a diff that belongs to a new chain (`--new-chain`), and the last
//! trailer of a sealed diff.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use time::OffsetDateTime;

use super::scanner::{DiffScanner, READ_BUF};
use super::{MARKER_MAX, TxnHeader, parse_trailer};
use crate::lsn::Lsn;
use crate::storage::error::{ChainError, Result};

/// The outcome of `recover_torn_tail`.
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
pub(crate) fn recover_torn_tail(path: &Path) -> Result<Recovery> {
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

/// Where replay stops (`--up-to`): before the first transaction that is later than the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// First transaction with `commit_time > T`.
    Time(OffsetDateTime),
    /// First transaction with `commit_lsn > L`.
    Lsn(Lsn),
}

impl StopAt {
    pub(crate) fn is_past(&self, h: &TxnHeader) -> bool {
        match *self {
            StopAt::Time(t) => h.commit_time > t,
            StopAt::Lsn(l) => h.commit_lsn > l,
        }
    }
}

/// The first complete transaction past `stop`, or `None` when every transaction is within it.
/// Works on any reader, e.g. a decompressing one. (Replay finds its stop itself, as it reads.)
#[cfg(test)]
pub(crate) fn find_stop<R: std::io::BufRead>(
    scanner: &mut DiffScanner<R>,
    stop: StopAt,
) -> Result<Option<super::TxnBounds>> {
    while let Some(t) = scanner.next_txn()? {
        if stop.is_past(&t.header) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// What `copy_from_cut` copied.
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
pub(crate) fn copy_from_cut(src: &Path, cut: Lsn, dst: &mut impl Write) -> Result<CopySummary> {
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
pub(crate) fn last_end_lsn_of_sealed(path: &Path) -> Result<Option<Lsn>> {
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
