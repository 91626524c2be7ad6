//! The errors of the backup-storage layer (chain directories, diff files, compression, the
//! pidfile, the durable writer): one variant per situation, rendered the way PostgreSQL tools
//! word their messages (lowercase, no trailing period, `%m`-style OS text without the errno).
//! They become the crate-wide error here (so that `crate::error` depends on no layer):
//! [`ChainError::is_validation`] → exit 5, the rest → 4 (backup error).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Situation, io_reason};
use crate::lsn::Lsn;

#[derive(Debug)]
pub enum ChainError {
    /// An OS call failed. `action` is already worded, e.g. `could not open file "x"`.
    Io {
        action: String,
        source: io::Error,
    },
    /// A non-empty file whose start is not a wal2sql transaction header: never touched.
    NotADiff {
        path: PathBuf,
        reason: String,
    },
    /// A diff file whose structure is broken somewhere other than a torn tail.
    CorruptDiff {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A file that must be complete (a sealed diff) ends inside a transaction.
    TornDiff {
        path: PathBuf,
        offset: u64,
        xid: Option<u32>,
    },
    InvalidChainId(String),
    InvalidDiffName(String),
    /// `--compress` value not understood; the message is complete.
    InvalidCompression(String),
    /// metadata.json could not be read or written as JSON.
    Metadata {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A live streamer holds the backup directory's pidfile lock.
    StreamerRunning {
        pid: Option<i32>,
        dir: PathBuf,
    },
    /// The pidfile does not describe a live pg_scribe streamer for this directory.
    NoStreamer {
        dir: PathBuf,
        reason: String,
    },
    /// An LSN went backwards where the format promises increasing positions.
    OutOfOrder {
        path: PathBuf,
        prev: Lsn,
        next: Lsn,
    },
    /// The caller broke an API contract (e.g. appended a transaction not after the last one).
    Usage(String),
}

impl ChainError {
    pub fn io(action: impl Into<String>, source: io::Error) -> Self {
        ChainError::Io {
            action: action.into(),
            source,
        }
    }

    /// `could not <verb> file "<path>"`: the common case of [`ChainError::io`].
    pub fn file(verb: &str, path: &Path, source: io::Error) -> Self {
        Self::io(
            format!("could not {verb} file \"{}\"", path.display()),
            source,
        )
    }

    /// `could not <verb> directory "<path>"`.
    pub fn dir(verb: &str, path: &Path, source: io::Error) -> Self {
        Self::io(
            format!("could not {verb} directory \"{}\"", path.display()),
            source,
        )
    }

    /// True for errors caused by the user's input rather than by the backup (exit 5).
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            ChainError::InvalidCompression(_) | ChainError::InvalidChainId(_)
        )
    }

    /// The disk (or quota) is full: the streamer stops and must not report anything as flushed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ChainError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            _ => false,
        }
    }
}

impl From<ChainError> for Error {
    fn from(err: ChainError) -> Self {
        let situation = if err.is_validation() {
            Situation::Validation
        } else {
            Situation::Backup
        };
        Error::new(situation, err.to_string())
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Io { action, source } => write!(f, "{action}: {}", io_reason(source)),
            ChainError::NotADiff { path, reason } => write!(
                f,
                "file \"{}\" is not a wal2sql differential: {reason}",
                path.display()
            ),
            ChainError::CorruptDiff {
                path,
                offset,
                reason,
            } => write!(
                f,
                "invalid wal2sql differential \"{}\" at byte {offset}: {reason}",
                path.display()
            ),
            ChainError::TornDiff { path, offset, xid } => {
                write!(
                    f,
                    "differential \"{}\" ends inside an unfinished transaction",
                    path.display()
                )?;
                match xid {
                    Some(x) => write!(f, " (xid {x}, starting at byte {offset})"),
                    None => write!(f, " (starting at byte {offset})"),
                }
            }
            ChainError::InvalidChainId(s) => write!(
                f,
                "invalid chain ID \"{s}\": expected UTC timestamp YYYYMMDDTHHMMSSZ"
            ),
            ChainError::InvalidDiffName(s) => {
                write!(f, "invalid differential file name \"{s}\"")
            }
            ChainError::InvalidCompression(msg) => f.write_str(msg),
            ChainError::Metadata { path, source } => {
                write!(f, "invalid metadata file \"{}\": {source}", path.display())
            }
            ChainError::StreamerRunning { pid, dir } => {
                write!(f, "another pg_scribe streamer")?;
                if let Some(p) = pid {
                    write!(f, " (PID {p})")?;
                }
                write!(f, " is running for backup directory \"{}\"", dir.display())
            }
            ChainError::NoStreamer { dir, reason } => write!(
                f,
                "no pg_scribe streamer is running for backup directory \"{}\": {reason}",
                dir.display()
            ),
            ChainError::OutOfOrder { path, prev, next } => write!(
                f,
                "invalid wal2sql differential \"{}\": transaction end {next} does not follow {prev}",
                path.display()
            ),
            ChainError::Usage(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ChainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChainError::Io { source, .. } => Some(source),
            ChainError::Metadata { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = ChainError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_messages_read_like_postgres() {
        let e = ChainError::file(
            "open",
            Path::new("/x/active.sql"),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(
            e.to_string(),
            "could not open file \"/x/active.sql\": No such file or directory"
        );
        let full = ChainError::file(
            "write",
            Path::new("a"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(full.is_disk_full());
        assert!(!e.is_disk_full());
    }

    #[test]
    fn non_os_errors_keep_their_text() {
        let e = io::Error::new(io::ErrorKind::InvalidData, "bad zstd frame");
        assert_eq!(
            ChainError::io("could not read", e).to_string(),
            "could not read: bad zstd frame"
        );
    }
}
