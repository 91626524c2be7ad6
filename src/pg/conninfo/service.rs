//! `pg_service.conf`: a named section of connection keywords, from `PGSERVICEFILE` or
//! `~/.pg_service.conf`, then the system-wide file, as libpq looks them up.

use super::Environment;
use super::parse::{Pairs, check_key};
use std::path::PathBuf;

use crate::error::{Error, Result};

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

pub(super) fn lookup_service(service: &str, env: &Environment) -> Result<Pairs> {
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
