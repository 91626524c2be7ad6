//! The AWS shared files for what the environment does not set: the key of profile
//! `AWS_PROFILE` (else `default`) from `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`), its
//! region and endpoint from `~/.aws/config` (`AWS_CONFIG_FILE`), as the AWS CLI reads them.
//! Only static keys are read; with none, object_store's own chain applies (instance or
//! container roles, web identity).

use std::path::PathBuf;

pub(super) struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

#[derive(Default)]
pub(super) struct Profile {
    pub key: Option<Key>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

fn file(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join(default)),
    }
}

/// The `key = value` lines of section `[name]` (or `[profile name]` in the config file).
fn section(text: &str, names: &[String]) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = names.iter().any(|n| n == head.trim());
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

fn value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

pub(super) fn parse(profile: &str, credentials: &str, config: &str) -> Profile {
    let creds = section(credentials, &[profile.to_string()]);
    let conf = section(config, &[format!("profile {profile}"), profile.to_string()]);
    let key = match (
        value(&creds, "aws_access_key_id"),
        value(&creds, "aws_secret_access_key"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Some(Key {
            access_key_id,
            secret_access_key,
            session_token: value(&creds, "aws_session_token"),
        }),
        _ => None,
    };
    Profile {
        key,
        region: value(&conf, "region"),
        endpoint: value(&conf, "endpoint_url"),
    }
}

/// The profile's settings; missing or unreadable files give nothing.
pub(super) fn from_files() -> Profile {
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    parse(
        &profile,
        &read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")),
        &read(file("AWS_CONFIG_FILE", "config")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile_from_both_files() {
        let creds = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[backup]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token = T\n";
        let config = "[default]\nregion = eu-west-1\n[profile backup]\n# comment\nregion = us-east-2\nendpoint_url = http://127.0.0.1:9000\n";
        let p = parse("backup", creds, config);
        let k = p.key.unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("C", "D")
        );
        assert_eq!(k.session_token.as_deref(), Some("T"));
        assert_eq!(p.region.as_deref(), Some("us-east-2"));
        assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let d = parse("default", creds, config);
        assert_eq!(d.key.unwrap().session_token, None);
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        assert!(parse("missing", creds, config).key.is_none());
    }
}
