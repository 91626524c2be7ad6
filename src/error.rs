//! The crate-wide error: a situation (what kind of thing went wrong) plus a PostgreSQL-style
//! diagnostic (message, optional detail and hint). It is rendered once, at the edge, by
//! [`crate::ui`], and the situation alone decides the exit code of the spec.

use std::fmt;

/// What kind of thing went wrong; each maps to one exit code of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Situation {
    /// The command line itself is wrong (exit 5, with a `Try "pg_scribe --help"` hint).
    Usage,
    /// The server or the backup directory is not fit for the action (exit 5).
    Validation,
    /// The server could not be reached or refused us (exit 2).
    Connection,
    /// The replication slot is missing, taken, invalid or already exists (exit 3).
    Slot,
    /// Taking, writing, reading or restoring a backup failed (exit 4).
    Backup,
    /// The action exists in the CLI but is not built yet (exit 4: never a silent success).
    NotImplemented,
}

impl Situation {
    pub fn exit_code(self) -> u8 {
        match self {
            Situation::Connection => 2,
            Situation::Slot => 3,
            Situation::Backup | Situation::NotImplemented => 4,
            Situation::Usage | Situation::Validation => 5,
        }
    }
}

/// A diagnostic in PostgreSQL's style: lowercase message without a trailing period, then
/// optional `detail:` and `hint:` lines (full sentences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub situation: Situation,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(situation: Situation, message: impl Into<String>) -> Self {
        Error {
            situation,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(Situation::Usage, message)
            .with_hint("Try \"pg_scribe --help\" for more information.")
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Error::new(Situation::Validation, message)
    }

    pub fn connection(message: impl Into<String>) -> Self {
        Error::new(Situation::Connection, message)
    }

    pub fn slot(message: impl Into<String>) -> Self {
        Error::new(Situation::Slot, message)
    }

    pub fn backup(message: impl Into<String>) -> Self {
        Error::new(Situation::Backup, message)
    }

    pub fn not_implemented(action: &str) -> Self {
        Error::new(
            Situation::NotImplemented,
            format!("{action} is not implemented yet"),
        )
        .with_detail("This build of pg_scribe does not contain this action; nothing was done.")
    }

    /// An I/O failure on a named file, worded like PostgreSQL's
    /// `could not open file "x": No such file or directory`.
    pub fn io(
        situation: Situation,
        what: &str,
        path: &std::path::Path,
        err: &std::io::Error,
    ) -> Self {
        Error::new(
            situation,
            format!(
                "could not {what} \"{}\": {}",
                path.display(),
                io_reason(err)
            ),
        )
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.situation.exit_code()
    }
}

/// The OS's reason for a failure without Rust's " (os error N)" suffix, as strerror() and
/// PostgreSQL's `%m` say it ("No such file or directory"); any other error keeps its text.
pub fn io_reason(err: &dyn std::error::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(Error::connection("x").exit_code(), 2);
        assert_eq!(Error::slot("x").exit_code(), 3);
        assert_eq!(Error::backup("x").exit_code(), 4);
        assert_eq!(Error::usage("x").exit_code(), 5);
        assert_eq!(Error::validation("x").exit_code(), 5);
        assert_ne!(Error::not_implemented("--init").exit_code(), 0);
    }

    #[test]
    fn io_reason_drops_the_os_error_suffix() {
        let err = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&err), "No such file or directory");
        let other = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad zstd frame");
        assert_eq!(io_reason(&other), "bad zstd frame");
    }
}
