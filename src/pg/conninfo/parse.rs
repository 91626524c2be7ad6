//! The two spellings of a connection string, as libpq reads them: `key=value …` with quoting
//! and `postgresql://` URIs with percent-encoding, both into keyword/value pairs; keywords
//! pg_scribe does not honour are refused by name.

use crate::error::{Error, Result};

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

/// Keyword/value pairs in the order they were written.
pub(super) type Pairs = Vec<(String, String)>;

fn syntax_error(message: impl Into<String>) -> Error {
    Error::usage(message)
}

/// Parse a libpq `key=value …` connection string.
pub(crate) fn parse_conninfo(text: &str) -> Result<Pairs> {
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

pub(super) fn check_key(key: &str) -> Result<()> {
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
pub(crate) fn parse_uri(uri: &str) -> Result<Pairs> {
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

pub(super) fn is_conninfo_like(dbname: &str) -> bool {
    dbname.starts_with("postgresql://") || dbname.starts_with("postgres://") || dbname.contains('=')
}
