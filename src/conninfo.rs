//! libpq-compatible connection resolution: `-d` (name, conninfo string or URI), `-h -p -U -w -W`,
//! `PG*` environment variables, `pg_service.conf` and `~/.pgpass`, resolved once into a
//! [`ConnParams`] that feeds tokio-postgres, the replication connection and the environment of
//! `pg_dump`/`pg_dumpall`/`psql` subprocesses (so a password never appears in an argv).

use std::path::PathBuf;
use std::time::Duration;

/// Where one server can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address, reached over TCP.
    Tcp(String),
    /// A Unix-socket directory; the socket file is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

/// One (host, port) pair to try, in order, as libpq does with multi-host connection strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A fully resolved connection description. Every field already holds its final value (explicit
/// option, then service file, then environment, then built-in default), so consumers never look
/// at the environment themselves.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Tried in order until one accepts the connection.
    pub targets: Vec<Target>,
    pub user: String,
    pub dbname: String,
    /// An explicit password (conninfo, PGPASSWORD or the -W prompt); `.pgpass` is consulted per
    /// target by [`ConnParams::password_for`] only when this is `None`.
    pub password: Option<String>,
    /// The password file to consult (PGPASSFILE or `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    /// libpq semantics: per attempt, `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// `-w`: never prompt for a password.
    pub no_password: bool,
}
