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

use std::collections::HashMap;

use crate::cli::ConnOptions;
use crate::error::{Error, Result};
use crate::ui;
use std::os::unix::fs::PermissionsExt;

/// Debian's compiled-in socket directory first, then upstream's, as the issue asks: a default
/// (host-less) connection tries both.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];
pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_APPLICATION_NAME: &str = "pg_scribe";

/// Connection keywords pg_scribe honours. Any other keyword libpq knows is refused by name rather
/// than silently ignored, since e.g. an ignored `require_auth` would weaken what the user asked for.
const SUPPORTED_KEYS: &[&str] = &[
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "service",
    "options",
    "client_encoding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "target_session_attrs",
];

const KNOWN_UNSUPPORTED_KEYS: &[&str] = &[
    "hostaddr",
    "sslpassword",
    "sslsni",
    "sslcompression",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requirepeer",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "channel_binding",
    "require_auth",
    "replication",
    "load_balance_hosts",
    "tcp_user_timeout",
];

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

/// Keyword/value pairs in the order they were written.
type Pairs = Vec<(String, String)>;

fn syntax_error(message: impl Into<String>) -> Error {
    Error::usage(message)
}

/// Parse a libpq `key=value …` connection string.
pub fn parse_conninfo(text: &str) -> Result<Pairs> {
    let mut pairs = Pairs::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(syntax_error(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(syntax_error(
                            "unterminated quoted string in connection info string",
                        ));
                    }
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        check_key(&key)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn check_key(key: &str) -> Result<()> {
    if SUPPORTED_KEYS.contains(&key) {
        Ok(())
    } else if KNOWN_UNSUPPORTED_KEYS.contains(&key) {
        Err(syntax_error(format!(
            "connection option \"{key}\" is not supported by pg_scribe"
        )))
    } else {
        Err(syntax_error(format!("invalid connection option \"{key}\"")))
    }
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(0) | None => {
                    return Err(syntax_error(format!(
                        "invalid percent-encoded token: \"{text}\""
                    )));
                }
                Some(b) => out.push(b),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| syntax_error(format!("invalid percent-encoded token: \"{text}\"")))
}

/// Parse a `postgresql://` or `postgres://` URI into keyword/value pairs.
pub fn parse_uri(uri: &str) -> Result<Pairs> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or_else(|| syntax_error(format!("invalid URI \"{uri}\"")))?;
    let mut pairs = Pairs::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(pos) => (&before_query[..pos], Some(&before_query[pos + 1..])),
        None => (before_query, None),
    };
    let hostspec = match authority.rfind('@') {
        Some(pos) => {
            let userinfo = &authority[..pos];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".into(), percent_decode(user)?));
            }
            if let Some(p) = password {
                pairs.push(("password".into(), percent_decode(p)?));
            }
            &authority[pos + 1..]
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostspec.split(',') {
            let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
                let end = v6.find(']').ok_or_else(|| {
                    syntax_error(format!(
                        "missing \"]\" in IPv6 host address in URI: \"{uri}\""
                    ))
                })?;
                let after = &v6[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(syntax_error(format!(
                            "unexpected character \"{}\" after IPv6 host address in URI: \"{uri}\"",
                            &after[..1]
                        )));
                    }
                };
                (v6[..end].to_string(), port)
            } else {
                match spec.rsplit_once(':') {
                    Some((h, p)) => (percent_decode(h)?, p),
                    None => (percent_decode(spec)?, ""),
                }
            };
            hosts.push(host);
            ports.push(port.to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            pairs.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            pairs.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(path) = path
        && !path.is_empty()
    {
        pairs.push(("dbname".into(), percent_decode(path)?));
    }
    if let Some(query) = query {
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').ok_or_else(|| {
                syntax_error(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{param}\""
                ))
            })?;
            let key = percent_decode(key)?;
            // libpq accepts JDBC's ssl=true as sslmode=require.
            let (key, value) = if key == "ssl" && value == "true" {
                ("sslmode".to_string(), "require".to_string())
            } else {
                (key, percent_decode(value)?)
            };
            check_key(&key)?;
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

fn is_conninfo_like(dbname: &str) -> bool {
    dbname.starts_with("postgresql://") || dbname.starts_with("postgres://") || dbname.contains('=')
}

/// Read one `[service]` section of a `pg_service.conf`.
fn service_section(path: &std::path::Path, service: &str) -> Result<Option<Pairs>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::io(
                crate::error::Situation::Connection,
                "read service file",
                path,
                &err,
            ));
        }
    };
    let mut in_section = false;
    let mut found = false;
    let mut pairs = Pairs::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found && in_section {
                break;
            }
            in_section = name == service;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::connection(format!(
                "syntax error in service file \"{}\", line {}",
                path.display(),
                number + 1
            ))
        })?;
        let key = key.trim().to_string();
        if key == "service" {
            return Err(Error::connection(format!(
                "nested service specifications not supported in service file \"{}\", line {}",
                path.display(),
                number + 1
            )));
        }
        check_key(&key).map_err(|e| Error::connection(e.message))?;
        pairs.push((key, value.trim().to_string()));
    }
    Ok(found.then_some(pairs))
}

fn lookup_service(service: &str, env: &Environment) -> Result<Pairs> {
    let mut files = Vec::new();
    match env.var("PGSERVICEFILE") {
        Some(file) => files.push(PathBuf::from(file)),
        None => {
            if let Some(home) = &env.home {
                files.push(home.join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env
        .var("PGSYSCONFDIR")
        .unwrap_or_else(|| "/etc/postgresql-common".to_string());
    files.push(PathBuf::from(sysconf).join("pg_service.conf"));
    for file in &files {
        if let Some(pairs) = service_section(file, service)? {
            return Ok(pairs);
        }
    }
    Err(Error::connection(format!(
        "definition of service \"{service}\" not found"
    )))
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

/// Split one `.pgpass` line into its five fields, undoing `\\` escapes; the password is the
/// fifth field up to the next unescaped colon.
fn pgpass_fields(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            ':' => break,
            c => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

/// libpq's `.pgpass` rules: first matching line wins, `*` matches anything, `localhost` stands
/// for the default socket directory, and a file open to group or others is ignored (with a
/// warning, once).
pub fn pgpass_lookup(
    file: &std::path::Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        warn_once(
            file,
            &format!("password file \"{}\" is not a plain file", file.display()),
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        warn_once(
            file,
            &format!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                file.display()
            ),
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(pgpass_fields)
        .find(|[h, p, d, u, _]| {
            let matches = |field: &str, value: &str| field == "*" || field == value;
            matches(h, host) && matches(p, &port) && matches(d, dbname) && matches(u, user)
        })
        .map(|[_, _, _, _, password]| password)
        .filter(|password| !password.is_empty())
}

fn warn_once(file: &std::path::Path, message: &str) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|p| p == file) {
        warned.push(file.to_path_buf());
        ui::warning(message);
    }
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

/// Ask for a password on the terminal without echo, as libpq's `-W` does.
pub fn prompt_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            Error::connection(format!(
                "could not prompt for a password: {}",
                crate::error::io_reason(&e)
            ))
            .with_hint("Use ~/.pgpass or PGPASSWORD when no terminal is available.")
        })?;
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&tty);
    // SAFETY: plain termios calls on a descriptor we own for the duration of the prompt.
    let saved = unsafe {
        let mut term: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut term) != 0 {
            None
        } else {
            let saved = term;
            term.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSAFLUSH, &term);
            Some(saved)
        }
    };
    let mut writer = &tty;
    let _ = write!(writer, "{prompt}");
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(saved) = saved {
        // SAFETY: restores the settings read above.
        unsafe {
            libc::tcsetattr(fd, libc::TCSAFLUSH, &saved);
        }
    }
    let _ = writeln!(writer);
    read.map_err(|e| {
        Error::connection(format!(
            "could not read password: {}",
            crate::error::io_reason(&e)
        ))
    })?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: None,
            os_user: Some("osuser".into()),
        }
    }

    fn opts(dbname: Option<&str>) -> ConnOptions {
        ConnOptions {
            dbname: dbname.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn conninfo_strings_follow_libpq_quoting() {
        assert_eq!(
            parse_conninfo(" host=h  port = 5433 dbname='my db' password='it\\'s' user=a\\ b")
                .unwrap(),
            pairs(&[
                ("host", "h"),
                ("port", "5433"),
                ("dbname", "my db"),
                ("password", "it's"),
                ("user", "a b")
            ])
        );
        assert_eq!(
            parse_conninfo("dbname=''").unwrap(),
            pairs(&[("dbname", "")])
        );
        assert!(
            parse_conninfo("host")
                .unwrap_err()
                .message
                .contains("missing \"=\" after \"host\"")
        );
        assert!(parse_conninfo("host='x").is_err());
        assert_eq!(
            parse_conninfo("bogus=1").unwrap_err().message,
            "invalid connection option \"bogus\""
        );
    }

    #[test]
    fn uris_decode_every_part() {
        assert_eq!(
            parse_uri("postgresql://us%40er:p%3Ass@h1:5433,[::1]:5434,h3/my%20db?sslmode=require&application_name=a%26b").unwrap(),
            pairs(&[
                ("user", "us@er"),
                ("password", "p:ss"),
                ("host", "h1,::1,h3"),
                ("port", "5433,5434,"),
                ("dbname", "my db"),
                ("sslmode", "require"),
                ("application_name", "a&b"),
            ])
        );
        assert_eq!(
            parse_uri("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(parse_uri("postgresql://").unwrap(), Pairs::new());
        assert_eq!(
            parse_uri("postgresql:///db?host=/tmp&ssl=true").unwrap(),
            pairs(&[("dbname", "db"), ("host", "/tmp"), ("sslmode", "require")])
        );
        assert!(parse_uri("postgresql://h/db?x").is_err());
        assert!(parse_uri("postgresql://h/%zz").is_err());
        assert!(parse_uri("postgresql://[::1/db").is_err());
    }

    #[test]
    fn defaults_are_libpqs() {
        let p = resolve(&opts(None), &env(&[])).unwrap();
        assert_eq!(p.user, "osuser");
        assert_eq!(p.dbname, "osuser");
        assert_eq!(
            p.targets,
            vec![
                Target {
                    host: Host::Unix("/var/run/postgresql".into()),
                    port: 5432
                },
                Target {
                    host: Host::Unix("/tmp".into()),
                    port: 5432
                },
            ]
        );
        assert_eq!(p.sslmode, SslMode::Prefer);
        assert_eq!(p.application_name.as_deref(), Some("pg_scribe"));
        assert_eq!(p.connect_timeout, None);
    }

    #[test]
    fn precedence_is_explicit_then_conninfo_then_env_then_default() {
        let e = env(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "1"),
        ]);
        let p = resolve(&opts(None), &e).unwrap();
        assert_eq!(
            p.targets,
            vec![Target {
                host: Host::Tcp("envhost".into()),
                port: 6000
            }]
        );
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("envuser", "envdb"));
        assert_eq!(p.sslmode, SslMode::Require);
        assert_eq!(
            p.connect_timeout,
            Some(Duration::from_secs(2)),
            "libpq raises 1 to 2"
        );

        let p = resolve(&opts(Some("host=cihost dbname=cidb sslmode=disable")), &e).unwrap();
        assert_eq!(p.targets[0].host, Host::Tcp("cihost".into()));
        assert_eq!(p.targets[0].port, 6000);
        assert_eq!(p.dbname, "cidb");
        assert_eq!(p.sslmode, SslMode::Disable);

        let mut o = opts(Some("postgresql://uriuser@urihost:7000/uridb"));
        o.host = Some("/sockets".into());
        o.username = Some("cliuser".into());
        let p = resolve(&o, &e).unwrap();
        assert_eq!(
            p.targets,
            vec![Target {
                host: Host::Unix("/sockets".into()),
                port: 7000
            }]
        );
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("cliuser", "uridb"));

        let p = resolve(&opts(Some("plaindb")), &e).unwrap();
        assert_eq!(p.dbname, "plaindb");
    }

    #[test]
    fn multiple_hosts_pair_with_ports() {
        let p = resolve(&opts(Some("host=a,b,/s port=1,2,3")), &env(&[])).unwrap();
        let ports: Vec<u16> = p.targets.iter().map(|t| t.port).collect();
        assert_eq!(ports, vec![1, 2, 3]);
        assert_eq!(p.targets[2].host, Host::Unix("/s".into()));
        assert!(resolve(&opts(Some("host=a,b port=1,2,3")), &env(&[])).is_err());
        assert!(resolve(&opts(Some("port=x")), &env(&[])).is_err());
    }

    #[test]
    fn service_file_fills_between_conninfo_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(
            &file,
            "# test\n[other]\nhost=nothere\n[svc]\nhost=svchost\nport = 6543\ndbname=svcdb\n",
        )
        .unwrap();
        let e = env(&[
            ("PGSERVICEFILE", file.to_str().unwrap()),
            ("PGHOST", "envhost"),
            ("PGUSER", "envuser"),
        ]);
        let p = resolve(&opts(Some("service=svc dbname=explicit")), &e).unwrap();
        assert_eq!(
            p.targets,
            vec![Target {
                host: Host::Tcp("svchost".into()),
                port: 6543
            }]
        );
        assert_eq!(p.dbname, "explicit");
        assert_eq!(p.user, "envuser");
        let missing = resolve(&opts(Some("service=nope")), &e).unwrap_err();
        assert_eq!(missing.message, "definition of service \"nope\" not found");
    }

    fn write_pgpass(dir: &std::path::Path, text: &str, mode: u32) -> PathBuf {
        let file = dir.join("pgpass");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn pgpass_matching_wildcards_escapes_and_first_match() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_pgpass(
            dir.path(),
            "# comment\nh1:5432:db:u:first\nh1:5432:db:u:second\n*:*:*:u2:wild\nh\\:x:*:*:*:esc\\:aped\\\\pw:ignored\nlocalhost:*:*:lu:local\n/sock:*:*:su:sock\n",
            0o600,
        );
        assert_eq!(
            pgpass_lookup(&file, "h1", 5432, "db", "u").as_deref(),
            Some("first")
        );
        assert_eq!(pgpass_lookup(&file, "h1", 5433, "db", "u"), None);
        assert_eq!(
            pgpass_lookup(&file, "any", 1, "x", "u2").as_deref(),
            Some("wild")
        );
        assert_eq!(
            pgpass_lookup(&file, "h:x", 1, "x", "y").as_deref(),
            Some("esc:aped\\pw")
        );

        let base = ConnParams {
            targets: vec![],
            user: "lu".into(),
            dbname: "d".into(),
            password: None,
            passfile: Some(file.clone()),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            sslcrl: None,
            sslcrldir: None,
            application_name: None,
            connect_timeout: None,
            no_password: false,
            options: None,
        };
        let default_socket = Target {
            host: Host::Unix("/var/run/postgresql".into()),
            port: 5432,
        };
        let other_socket = Target {
            host: Host::Unix("/sock".into()),
            port: 5432,
        };
        assert_eq!(base.password_for(&default_socket).as_deref(), Some("local"));
        assert_eq!(base.password_for(&other_socket), None);
        let su = ConnParams {
            user: "su".into(),
            ..base.clone()
        };
        assert_eq!(su.password_for(&other_socket).as_deref(), Some("sock"));
        let explicit = ConnParams {
            password: Some("given".into()),
            ..base
        };
        assert_eq!(
            explicit.password_for(&other_socket).as_deref(),
            Some("given")
        );
    }

    #[test]
    fn pgpass_open_to_group_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_pgpass(dir.path(), "*:*:*:*:secret\n", 0o640);
        assert_eq!(pgpass_lookup(&file, "h", 5432, "d", "u"), None);
        let file = write_pgpass(dir.path(), "*:*:*:*:secret\n", 0o400);
        assert_eq!(
            pgpass_lookup(&file, "h", 5432, "d", "u").as_deref(),
            Some("secret")
        );
        assert_eq!(
            pgpass_lookup(&dir.path().join("missing"), "h", 5432, "d", "u"),
            None
        );
        assert_eq!(
            pgpass_lookup(dir.path(), "h", 5432, "d", "u"),
            None,
            "a directory is not a password file"
        );
    }

    #[test]
    fn subprocess_env_names_the_resolved_server() {
        let p = resolve(
            &opts(Some(
                "host=h1,h2 port=1,2 user=u dbname=d password=pw sslmode=verify-full",
            )),
            &env(&[]),
        )
        .unwrap();
        let vars: HashMap<&str, String> = p.subprocess_env().into_iter().collect();
        assert_eq!(vars["PGHOST"], "h1,h2");
        assert_eq!(vars["PGPORT"], "1,2");
        assert_eq!(vars["PGPASSWORD"], "pw");
        assert_eq!(vars["PGSSLMODE"], "verify-full");
        let one = p.for_target(&p.targets[1]);
        let vars: HashMap<&str, String> = one.subprocess_env().into_iter().collect();
        assert_eq!(
            (vars["PGHOST"].as_str(), vars["PGPORT"].as_str()),
            ("h2", "2")
        );
    }

    #[test]
    fn client_certificates_crls_and_system_roots() {
        let e = env(&[
            ("PGSSLCERT", "/env/c.crt"),
            ("PGSSLKEY", "/env/c.key"),
            ("PGSSLCRL", "/env/root.crl"),
        ]);
        let p = resolve(&opts(Some("host=h sslkey=/conninfo/c.key")), &e).unwrap();
        assert_eq!(
            p.sslcert.as_deref(),
            Some(std::path::Path::new("/env/c.crt"))
        );
        assert_eq!(
            p.sslkey.as_deref(),
            Some(std::path::Path::new("/conninfo/c.key"))
        );
        assert_eq!(
            p.sslcrl.as_deref(),
            Some(std::path::Path::new("/env/root.crl"))
        );
        let vars: HashMap<&str, String> = p.subprocess_env().into_iter().collect();
        assert_eq!(vars["PGSSLCERT"], "/env/c.crt");
        assert_eq!(vars["PGSSLKEY"], "/conninfo/c.key");

        // sslrootcert=system implies verify-full and refuses anything weaker, as libpq 16+.
        let p = resolve(&opts(Some("host=h sslrootcert=system")), &env(&[])).unwrap();
        assert_eq!(p.sslmode, SslMode::VerifyFull);
        let err = resolve(
            &opts(Some("host=h sslrootcert=system sslmode=verify-ca")),
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "weak sslmode \"verify-ca\" may not be used with sslrootcert=system (use \"verify-full\")"
        );
    }
}
