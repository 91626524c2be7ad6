//! libpq-compatible connection resolution: `-d` (name, conninfo string or URI), `-h -p -U -w -W`,
//! `PG*` environment variables, `pg_service.conf` and `~/.pgpass`, resolved once into a
//! [`ConnParams`] that feeds tokio-postgres, the replication connection and the environment of
//! `pg_dump`/`pg_dumpall`/`psql` subprocesses (so a password never appears in an argv).
//! The precedence lives here; the strings are read in `parse.rs`, services in `service.rs`,
//! passwords in `pgpass.rs`.

mod parse;
mod pgpass;
mod service;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) use parse::{parse_conninfo, parse_uri};
pub(crate) use pgpass::{pgpass_lookup, prompt_password};

use parse::is_conninfo_like;
use service::lookup_service;

/// The connection options as typed (`-d -h -p -U -w -W`); [`resolve`] completes them from the
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnOptions {
    pub dbname: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub username: Option<String>,
    pub no_password: bool,
    pub force_prompt: bool,
}

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

impl SslMode {
    /// The conninfo spelling.
    pub fn keyword(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
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
    /// A path, or `system` for the operating system's trust store.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate and key; `None` means libpq's defaults under `~/.postgresql/`.
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    /// Certificate revocation list file / directory (`None`: `~/.postgresql/root.crl`).
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    pub application_name: Option<String>,
    /// libpq semantics: per attempt, `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// `-w`: never prompt for a password.
    pub no_password: bool,
    /// Server options (`-c name=value …`), libpq's `options` / PGOPTIONS.
    pub options: Option<String>,
}

/// Debian's compiled-in socket directory first, then upstream's (doc/connections.md): a default
/// (host-less) connection tries both.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];
pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_APPLICATION_NAME: &str = "pg_scribe";

/// The process environment as conninfo resolution sees it; tests build their own.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
    pub os_user: Option<String>,
}

impl Environment {
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let home = vars
            .get("HOME")
            .map(PathBuf::from)
            .or_else(home_from_passwd);
        Environment {
            vars,
            home,
            os_user: os_user_name(),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

fn passwd_entry() -> Option<(String, PathBuf)> {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy out at once and the
    // program has not started other threads that call getpw* yet.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned();
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir)
            .to_string_lossy()
            .into_owned();
        Some((name, PathBuf::from(dir)))
    }
}

fn os_user_name() -> Option<String> {
    passwd_entry().map(|(name, _)| name)
}

fn home_from_passwd() -> Option<PathBuf> {
    passwd_entry().map(|(_, dir)| dir)
}

/// Resolve the command line's connection options and the environment into one description.
/// Precedence is libpq's: explicit `-h/-p/-U` over the `-d` string, then the service file, then
/// `PG*` variables, then built-in defaults.
pub fn resolve(opts: &ConnOptions, env: &Environment) -> Result<ConnParams> {
    let mut set: HashMap<String, String> = HashMap::new();
    if let Some(dbname) = &opts.dbname {
        if is_conninfo_like(dbname) {
            let pairs = if dbname.contains("://")
                && !dbname.contains(' ')
                && dbname.starts_with("postgres")
            {
                parse_uri(dbname)?
            } else {
                parse_conninfo(dbname)?
            };
            set.extend(pairs);
        } else {
            set.insert("dbname".into(), dbname.clone());
        }
    }
    for (key, value) in [
        ("host", &opts.host),
        ("port", &opts.port),
        ("user", &opts.username),
    ] {
        if let Some(value) = value {
            set.insert(key.into(), value.clone());
        }
    }
    let service = set.get("service").cloned().or_else(|| env.var("PGSERVICE"));
    if let Some(service) = service {
        for (key, value) in lookup_service(&service, env)? {
            set.entry(key).or_insert(value);
        }
    }
    for (key, var) in [
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
        ("password", "PGPASSWORD"),
        ("passfile", "PGPASSFILE"),
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("sslcrl", "PGSSLCRL"),
        ("sslcrldir", "PGSSLCRLDIR"),
        ("application_name", "PGAPPNAME"),
        ("connect_timeout", "PGCONNECT_TIMEOUT"),
        ("options", "PGOPTIONS"),
        ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ] {
        if !set.contains_key(key)
            && let Some(value) = env.var(var)
        {
            set.insert(key.into(), value);
        }
    }
    let get = |key: &str| set.get(key).filter(|v| !v.is_empty()).cloned();

    let hosts: Vec<Option<String>> = match get("host") {
        None => vec![None],
        Some(list) => list
            .split(',')
            .map(|h| Some(h.trim().to_string()).filter(|h| !h.is_empty()))
            .collect(),
    };
    let ports: Vec<u16> = match get("port") {
        None => vec![DEFAULT_PORT],
        Some(list) => list
            .split(',')
            .map(|p| match p.trim() {
                "" => Ok(DEFAULT_PORT),
                p => p
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::usage(format!("invalid port number: \"{p}\""))),
            })
            .collect::<Result<_>>()?,
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(Error::usage(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            hosts.len()
        )));
    }
    let mut targets = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let port = if ports.len() == 1 { ports[0] } else { ports[i] };
        match host {
            None => {
                for dir in DEFAULT_SOCKET_DIRS {
                    targets.push(Target {
                        host: Host::Unix(PathBuf::from(dir)),
                        port,
                    });
                }
            }
            Some(h) if h.starts_with('/') => targets.push(Target {
                host: Host::Unix(PathBuf::from(h)),
                port,
            }),
            Some(h) => targets.push(Target {
                host: Host::Tcp(h.clone()),
                port,
            }),
        }
    }

    let user = get("user").or_else(|| env.os_user.clone()).ok_or_else(|| {
        Error::connection("could not look up local user name: no user given and none found")
    })?;
    let dbname = get("dbname").unwrap_or_else(|| user.clone());
    let system_roots = get("sslrootcert").as_deref() == Some("system");
    let sslmode = match get("sslmode").as_deref() {
        // As libpq (16+): trusting every public CA is only safe when the host name is checked.
        None if system_roots => SslMode::VerifyFull,
        None => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("allow") => SslMode::Allow,
        Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(Error::usage(format!("invalid sslmode value: \"{other}\"")));
        }
    };
    if system_roots && sslmode != SslMode::VerifyFull {
        return Err(Error::usage(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            sslmode.keyword()
        )));
    }
    let connect_timeout = match get("connect_timeout") {
        None => None,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n <= 0 => None,
            // libpq raises values below 2 seconds to 2.
            Ok(n) => Some(Duration::from_secs(n.max(2) as u64)),
            Err(_) => {
                return Err(Error::usage(format!(
                    "invalid integer value \"{text}\" for connection option \"connect_timeout\""
                )));
            }
        },
    };
    if let Some(attrs) = get("target_session_attrs")
        && attrs != "any"
    {
        return Err(Error::usage(format!(
            "target_session_attrs \"{attrs}\" is not supported by pg_scribe (only \"any\")"
        )));
    }
    let passfile = get("passfile")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")));
    let application_name = get("application_name")
        .or_else(|| get("fallback_application_name"))
        .or_else(|| Some(DEFAULT_APPLICATION_NAME.to_string()));

    Ok(ConnParams {
        targets,
        user,
        dbname,
        password: get("password"),
        passfile,
        sslmode,
        sslrootcert: get("sslrootcert").map(PathBuf::from),
        sslcert: get("sslcert").map(PathBuf::from),
        sslkey: get("sslkey").map(PathBuf::from),
        sslcrl: get("sslcrl").map(PathBuf::from),
        sslcrldir: get("sslcrldir").map(PathBuf::from),
        application_name,
        connect_timeout,
        no_password: opts.no_password,
        options: get("options"),
    })
}

impl Target {
    /// The host as `.pgpass` and messages name it.
    pub fn host_name(&self) -> String {
        match &self.host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        }
    }

    /// Where the server is, worded like libpq's messages.
    pub fn describe(&self) -> String {
        match &self.host {
            Host::Tcp(name) => format!("server at \"{name}\", port {}", self.port),
            Host::Unix(dir) => format!(
                "server on socket \"{}/.s.PGSQL.{}\"",
                dir.display(),
                self.port
            ),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.host, Host::Unix(_))
    }
}

impl ConnParams {
    /// The password to offer `target`: the explicit one, else the `.pgpass` match.
    pub fn password_for(&self, target: &Target) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        let file = self.passfile.as_ref()?;
        let host = match &target.host {
            Host::Unix(dir)
                if DEFAULT_SOCKET_DIRS
                    .iter()
                    .any(|d| dir == std::path::Path::new(d)) =>
            {
                "localhost".to_string()
            }
            _ => target.host_name(),
        };
        pgpass_lookup(file, &host, target.port, &self.dbname, &self.user)
    }

    /// The same description narrowed to one target and one database (for a subprocess that
    /// must reach the very server our own connection reached, e.g. to import a snapshot).
    pub fn for_target(&self, target: &Target) -> ConnParams {
        ConnParams {
            targets: vec![target.clone()],
            ..self.clone()
        }
    }

    pub fn with_dbname(&self, dbname: &str) -> ConnParams {
        ConnParams {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// Environment for `pg_dump`/`pg_dumpall`/`psql` children: every `PG*` connection variable
    /// of ours is removed first (see [`SUBPROCESS_CLEARED_VARS`]) and these set, so the child
    /// connects exactly as we did and the password travels outside any argv.
    pub fn subprocess_env(&self) -> Vec<(&'static str, String)> {
        let join = |f: &dyn Fn(&Target) -> String| {
            self.targets.iter().map(f).collect::<Vec<_>>().join(",")
        };
        let mut env = vec![
            ("PGHOST", join(&|t| t.host_name())),
            ("PGPORT", join(&|t| t.port.to_string())),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", self.sslmode.keyword().to_string()),
        ];
        let first_password = self.targets.first().and_then(|t| self.password_for(t));
        if let Some(password) = self.password.clone().or(first_password) {
            env.push(("PGPASSWORD", password));
        }
        if let Some(file) = &self.passfile {
            env.push(("PGPASSFILE", file.display().to_string()));
        }
        for (var, path) in [
            ("PGSSLROOTCERT", &self.sslrootcert),
            ("PGSSLCERT", &self.sslcert),
            ("PGSSLKEY", &self.sslkey),
            ("PGSSLCRL", &self.sslcrl),
            ("PGSSLCRLDIR", &self.sslcrldir),
        ] {
            if let Some(path) = path {
                env.push((var, path.display().to_string()));
            }
        }
        if let Some(name) = &self.application_name {
            env.push(("PGAPPNAME", name.clone()));
        }
        if let Some(timeout) = self.connect_timeout {
            env.push(("PGCONNECT_TIMEOUT", timeout.as_secs().to_string()));
        }
        if let Some(options) = &self.options {
            env.push(("PGOPTIONS", options.clone()));
        }
        env
    }

    /// Apply [`ConnParams::subprocess_env`] to a command.
    pub fn configure_command(&self, command: &mut tokio::process::Command) {
        for var in SUBPROCESS_CLEARED_VARS {
            command.env_remove(var);
        }
        command.envs(self.subprocess_env());
    }
}

/// libpq variables a child would otherwise inherit and that could point it elsewhere.
pub const SUBPROCESS_CLEARED_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
];
