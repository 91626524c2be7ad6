//! The replication client's error type: one variant per situation, server errors keeping their
//! SQLSTATE, severity, message, detail and hint, and the retryable/fatal split the `--start`
//! reconnect loop is built on.

use std::fmt;
use std::io;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

use crate::error::io_reason;

/// The fields of an ErrorResponse or NoticeResponse that we keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbError {
    /// Localized severity (`S`), e.g. `FATAL` or a translation of it.
    pub severity: String,
    /// Non-localized severity (`V`, PostgreSQL 9.6+); prefer it over `severity` for decisions.
    pub severity_nonlocalized: Option<String>,
    /// The SQLSTATE (`C`).
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl DbError {
    /// Builds from the fields of an ErrorResponse/NoticeResponse body.
    pub(crate) fn from_fields(mut fields: ErrorFields<'_>) -> io::Result<DbError> {
        let mut e = DbError::default();
        while let Some(f) = fields.next()? {
            let v = || String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'S' => e.severity = v(),
                b'V' => e.severity_nonlocalized = Some(v()),
                b'C' => e.code = v(),
                b'M' => e.message = v(),
                b'D' => e.detail = Some(v()),
                b'H' => e.hint = Some(v()),
                _ => {}
            }
        }
        Ok(e)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:  {}", self.severity, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL:  {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT:  {h}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong on a replication connection.
#[derive(Debug)]
pub enum ReplicationError {
    /// The parameters cannot work (no targets, a certificate file that cannot be read, a name
    /// that cannot be quoted). Retrying will not help.
    Config(String),
    /// Opening the socket to one target failed (refused, unreachable, name resolution).
    Connect { target: String, source: io::Error },
    /// A connection attempt (socket, TLS and authentication) exceeded `connect_timeout`.
    ConnectTimeout { target: String },
    /// `sslmode` requires TLS but the server refused the SSLRequest.
    TlsRefused { target: String },
    /// The TLS handshake failed: an untrusted certificate, a name mismatch or a broken handshake.
    Tls { target: String, source: io::Error },
    /// The server asked for a password and none is known (none given, none in `.pgpass`).
    PasswordRequired { user: String },
    /// The server asked for an authentication method we do not implement (GSS, SSPI, ...).
    UnsupportedAuth(String),
    /// The SCRAM exchange failed on the client side (bad server signature, malformed message).
    Scram(io::Error),
    /// The server reported an error; its SQLSTATE decides what it means.
    Server(Box<DbError>),
    /// Reading or writing the socket failed after the connection was established.
    Io(io::Error),
    /// The server closed the connection without an error message.
    UnexpectedEof,
    /// The server ended the replication stream (CopyDone or CommandComplete), e.g. at shutdown.
    StreamEnded,
    /// The server sent something the protocol does not allow at this point.
    Protocol(String),
    /// A bounded wait (shutdown drain) ran out.
    Timeout(&'static str),
}

impl ReplicationError {
    /// The server's SQLSTATE, if the server reported this error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ReplicationError::Server(e) => Some(&e.code),
            _ => None,
        }
    }

    /// Whether reconnecting later can succeed without anyone changing anything: network
    /// trouble, server restarts and shutdowns, a slot still held by a dead predecessor, too many
    /// connections. Authentication, a missing or invalidated slot, missing privileges or a
    /// missing database are fatal.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplicationError::Connect { .. }
            | ReplicationError::ConnectTimeout { .. }
            | ReplicationError::Io(_)
            | ReplicationError::UnexpectedEof
            | ReplicationError::StreamEnded
            | ReplicationError::Timeout(_) => true,
            ReplicationError::Tls { source, .. } => is_network_error(source),
            ReplicationError::Server(e) => sqlstate_is_retryable(&e.code),
            ReplicationError::Config(_)
            | ReplicationError::TlsRefused { .. }
            | ReplicationError::PasswordRequired { .. }
            | ReplicationError::UnsupportedAuth(_)
            | ReplicationError::Scram(_)
            | ReplicationError::Protocol(_) => false,
        }
    }

    /// The error concerns the replication slot itself (missing, invalidated, in use): the CLI
    /// reports these with its slot exit code.
    pub fn is_slot_error(&self) -> bool {
        matches!(self.sqlstate(), Some("42704" | "55000" | "55006" | "42710"))
    }

    /// The error is about reaching or logging in to the server.
    pub fn is_connection_error(&self) -> bool {
        match self {
            ReplicationError::Connect { .. }
            | ReplicationError::ConnectTimeout { .. }
            | ReplicationError::TlsRefused { .. }
            | ReplicationError::Tls { .. }
            | ReplicationError::PasswordRequired { .. }
            | ReplicationError::UnsupportedAuth(_)
            | ReplicationError::Scram(_)
            | ReplicationError::Io(_)
            | ReplicationError::UnexpectedEof => true,
            ReplicationError::Server(e) => {
                e.code.starts_with("08")
                    || e.code.starts_with("28")
                    || e.code.starts_with("57P")
                    || matches!(e.code.as_str(), "53300" | "3D000")
            }
            _ => false,
        }
    }
}

/// Retryable SQLSTATEs: connection exceptions (08), admin/crash shutdown and "cannot connect
/// now" (57P01-57P03), too many connections (53300), and an active slot (55006: the previous
/// walsender of a client that died has not noticed yet).
pub(crate) fn sqlstate_is_retryable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55006")
}

fn is_network_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut | Interrupted
    )
}

impl fmt::Display for ReplicationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicationError::Config(m) => f.write_str(m),
            ReplicationError::Connect { target, source } => {
                write!(
                    f,
                    "connection to server {target} failed: {}",
                    io_reason(source)
                )
            }
            ReplicationError::ConnectTimeout { target } => {
                write!(f, "connection to server {target} failed: timeout expired")
            }
            ReplicationError::TlsRefused { target } => {
                write!(
                    f,
                    "connection to server {target} failed: server does not support SSL, but SSL was required"
                )
            }
            ReplicationError::Tls { target, source } => {
                write!(
                    f,
                    "SSL connection to server {target} failed: {}",
                    io_reason(source)
                )
            }
            ReplicationError::PasswordRequired { user } => write!(
                f,
                "password authentication failed for user \"{user}\": no password supplied"
            ),
            ReplicationError::UnsupportedAuth(m) => {
                write!(f, "unsupported authentication method: {m}")
            }
            ReplicationError::Scram(e) => write!(f, "SCRAM authentication failed: {e}"),
            ReplicationError::Server(e) => e.fmt(f),
            ReplicationError::Io(e) => {
                write!(f, "could not communicate with the server: {}", io_reason(e))
            }
            ReplicationError::UnexpectedEof => {
                f.write_str("server closed the connection unexpectedly")
            }
            ReplicationError::StreamEnded => f.write_str("server ended the replication stream"),
            ReplicationError::Protocol(m) => write!(f, "protocol error: {m}"),
            ReplicationError::Timeout(what) => write!(f, "timed out {what}"),
        }
    }
}

impl std::error::Error for ReplicationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplicationError::Connect { source, .. } | ReplicationError::Tls { source, .. } => {
                Some(source)
            }
            ReplicationError::Scram(e) | ReplicationError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<super::codec::CodecError> for ReplicationError {
    fn from(e: super::codec::CodecError) -> Self {
        ReplicationError::Protocol(e.0)
    }
}

/// How the CLI reports a replication failure: the slot's exit code for slot trouble, the
/// connection's for reaching the server, a backup error otherwise; server errors keep their
/// DETAIL and HINT as separate lines.
impl From<ReplicationError> for crate::error::Error {
    fn from(err: ReplicationError) -> Self {
        use crate::error::{Error, Situation};
        let situation = if err.is_slot_error() {
            Situation::Slot
        } else if err.is_connection_error() {
            Situation::Connection
        } else {
            Situation::Backup
        };
        match &err {
            ReplicationError::Server(db) => {
                let mut out = Error::new(situation, db.message.clone());
                if let Some(detail) = &db.detail {
                    out = out.with_detail(detail.clone());
                }
                if let Some(hint) = &db.hint {
                    out = out.with_hint(hint.clone());
                }
                out
            }
            _ => Error::new(situation, err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> ReplicationError {
        ReplicationError::Server(Box::new(DbError {
            severity: "FATAL".into(),
            code: code.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn classification() {
        for code in ["55006", "57P01", "57P03", "53300", "08006", "08P01"] {
            assert!(server(code).is_retryable(), "{code} should be retryable");
        }
        for code in [
            "28P01", "28000", "42704", "55000", "42501", "3D000", "42601",
        ] {
            assert!(!server(code).is_retryable(), "{code} should be fatal");
        }
        assert!(ReplicationError::UnexpectedEof.is_retryable());
        assert!(ReplicationError::Io(io::ErrorKind::ConnectionReset.into()).is_retryable());
        assert!(!ReplicationError::PasswordRequired { user: "u".into() }.is_retryable());
        assert!(server("42704").is_slot_error());
        assert!(server("55000").is_slot_error());
        assert!(!server("28P01").is_slot_error());
        assert!(server("28P01").is_connection_error());
        assert_eq!(server("42704").sqlstate(), Some("42704"));
    }

    #[test]
    fn os_errors_read_like_strerror() {
        let e = ReplicationError::Connect {
            target: "at \"h\", port 1".into(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(
            e.to_string(),
            "connection to server at \"h\", port 1 failed: Connection refused"
        );
        let e = ReplicationError::Io(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert_eq!(
            e.to_string(),
            "could not communicate with the server: Connection reset by peer"
        );
    }

    #[test]
    fn display_like_psql() {
        let e = DbError {
            severity: "ERROR".into(),
            code: "42704".into(),
            message: "replication slot \"x\" does not exist".into(),
            hint: Some("Create it.".into()),
            ..Default::default()
        };
        assert_eq!(
            e.to_string(),
            "ERROR:  replication slot \"x\" does not exist\nHINT:  Create it."
        );
    }
}
