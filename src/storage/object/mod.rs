//! A backup directory on S3-compatible object storage (`--backup-dir s3://BUCKET/PREFIX`): the
//! location, the client (`object_store`, credentials from the AWS environment and files) and the
//! few operations the actions need — list, stream a file down, upload a file and check it, put
//! a small object only if absent, delete. `spool.rs` moves what the local spool directory
//! holds into the store, `view.rs` lets the reading actions read the store's files in place;
//! see doc/object-storage.md.
//!
//! Decisions:
//! - **One name per object, the local layout kept.** An object's key is the prefix plus the
//!   path the file has in a local backup directory (`chain-…/diff-….sql`), so the rules of
//!   doc/file-handling.md hold unchanged and a store can be copied to a disk and back.
//! - **Checked uploads.** Every part is sent with its SHA-256 (`x-amz-checksum-sha256`), which
//!   the store checks on receipt; the digest of the whole file as sent is compared with the one
//!   its manifest or `metadata.json` records; the stored size is read back (HEAD) before the
//!   local copy may go.
//! - **Plain HTTP** only when asked (`AWS_ALLOW_HTTP=true`) or when the endpoint is this
//!   machine's loopback (a local MinIO or test server): nothing then leaves the host.

mod credentials;
pub mod lock;
pub mod spool;
pub mod view;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path as Key;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncReadExt};

use crate::error::{Error, Result};
use crate::storage::compress::hex;

/// The URL scheme of a backup directory on object storage.
pub const SCHEME: &str = "s3://";

/// Files up to this size go up in one request; larger ones in parts of this size.
pub(crate) const PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts in flight at once per upload.
const PARTS_IN_FLIGHT: usize = 4;

/// Whether `--backup-dir` names object storage rather than a local directory.
pub fn is_url(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

/// `s3://BUCKET/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Without leading or trailing slash; empty for the bucket's root.
    pub prefix: String,
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| Error::usage(format!("invalid object storage URL \"{url}\": {why}"));
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if bucket.contains(['@', ':', '?', '#']) {
            return Err(bad("credentials or options do not belong in the URL"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") && !prefix.is_empty() {
            return Err(bad("\".\" and \"..\" are not allowed in the prefix"));
        }
        if prefix.contains("//") {
            return Err(bad("empty path segment in the prefix"));
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The URL as the user sees it (normalised).
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("{SCHEME}{}", self.bucket)
        } else {
            format!("{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

/// An object's metadata, with its name relative to the backup directory's prefix.
#[derive(Debug, Clone)]
pub struct Entry {
    /// e.g. `chain-20231215T120000Z/base.sql`.
    pub name: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// A connected backup directory on object storage.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    location: Location,
}

/// The URL only: the client's own `Debug` may show its credentials.
impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.location.url())
            .finish()
    }
}

/// An object storage error as the user sees it: what was done, on which object, and why.
fn store_error(what: &str, key: &str, e: object_store::Error) -> Error {
    Error::backup(format!("could not {what} object \"{key}\": {}", reason(&e)))
}

/// The error's own words, without the crate's wrapping: short and free of request details.
fn reason(e: &object_store::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Loopback endpoints are allowed over plain HTTP (see the module comment).
fn loopback_endpoint(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Remote {
    /// A client for `location`, configured from the AWS environment variables and, when they
    /// name no key, the shared credentials and config files (`AWS_PROFILE`).
    pub fn connect(location: &Location) -> Result<Remote> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_checksum_algorithm(Checksum::SHA256);
        let profile = credentials::from_files();
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some(key) = &profile.key
        {
            builder = builder
                .with_access_key_id(&key.access_key_id)
                .with_secret_access_key(&key.secret_access_key);
            if let Some(token) = &key.session_token {
                builder = builder.with_token(token);
            }
        }
        let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !region_set && let Some(region) = &profile.region {
            builder = builder.with_region(region);
        }
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|x| !x.is_empty()))
            .or(profile.endpoint.clone());
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
            // Path-style addressing unless the user asked for virtual hosts: MinIO, Ceph and
            // most other endpoints want it.
            if std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_none() {
                builder = builder.with_virtual_hosted_style_request(false);
            }
            if loopback_endpoint(endpoint) {
                builder = builder.with_allow_http(true);
            }
        }
        let store = builder.build().map_err(|e| {
            Error::usage(format!(
                "could not set up object storage for \"{}\": {}",
                location.url(),
                reason(&e)
            ))
            .with_hint("Set AWS_REGION, and AWS_ENDPOINT_URL for a store other than AWS S3.")
        })?;
        Ok(Remote {
            store: Arc::new(store),
            location: location.clone(),
        })
    }

    /// A store given directly (object_store's in-memory one, in tests).
    #[cfg(test)]
    pub(crate) fn over(store: Arc<dyn ObjectStore>, location: &Location) -> Remote {
        Remote {
            store,
            location: location.clone(),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn url(&self) -> String {
        self.location.url()
    }

    /// The full key of `name` (relative to the prefix).
    fn key(&self, name: &str) -> Key {
        if self.location.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.location.prefix))
        }
    }

    /// `s3://bucket/prefix/name`, for messages.
    pub fn display(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }

    fn relative(&self, key: &Key) -> Option<String> {
        let full = key.as_ref();
        if self.location.prefix.is_empty() {
            return Some(full.to_string());
        }
        full.strip_prefix(&self.location.prefix)?
            .strip_prefix('/')
            .map(str::to_string)
    }

    fn entry(&self, meta: ObjectMeta) -> Option<Entry> {
        Some(Entry {
            name: self.relative(&meta.location)?,
            size: meta.size,
            modified: meta.last_modified.into(),
        })
    }

    /// Every object under `sub` (a folder name relative to the prefix, or "" for all).
    pub async fn list(&self, sub: &str) -> Result<Vec<Entry>> {
        let prefix = if sub.is_empty() {
            (!self.location.prefix.is_empty()).then(|| Key::from(self.location.prefix.as_str()))
        } else {
            Some(self.key(sub))
        };
        let mut stream = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| store_error("list", &self.display(sub), e))?;
            if let Some(e) = self.entry(meta) {
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The object's size and time, or `None` when it does not exist.
    pub async fn head(&self, name: &str) -> Result<Option<Entry>> {
        match self.store.head(&self.key(name)).await {
            Ok(meta) => Ok(self.entry(meta)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_error("stat", &self.display(name), e)),
        }
    }

    /// A reader streaming the object down as it is read: nothing is stored locally.
    pub async fn reader(&self, name: &str) -> std::io::Result<impl AsyncBufRead + Send + use<>> {
        let got = self.store.get(&self.key(name)).await.map_err(|e| {
            std::io::Error::other(format!("{}: {}", self.display(name), reason(&e)))
        })?;
        let stream = got
            .into_stream()
            .map(|r| r.map_err(|e| std::io::Error::other(reason(&e))));
        Ok(tokio_util::io::StreamReader::new(stream))
    }

    /// The whole (small) object.
    pub async fn read(&self, name: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.key(name)).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|e| store_error("read", &self.display(name), e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_error("read", &self.display(name), e)),
        }
    }

    /// Puts a small object, replacing any. Object puts are atomic: readers see the old object
    /// or the new one, never a part.
    pub async fn put(&self, name: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.key(name), PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| store_error("write", &self.display(name), e))
    }

    /// Puts a small object only if none exists under the name (`If-None-Match: *`). `Ok(false)`
    /// when one does.
    pub async fn put_if_absent(&self, name: &str, data: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(name), PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(store_error("create", &self.display(name), e)),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&self.key(name)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(store_error("delete", &self.display(name), e)),
        }
    }

    /// Uploads the local file `path` as `name` (in parts when large) and checks it arrived
    /// whole: the store verified each part's SHA-256, the size is read back. Returns the size
    /// and the SHA-256 of the bytes sent, for the caller to compare with what it expects.
    pub async fn upload(&self, path: &Path, name: &str) -> Result<(u64, String)> {
        let key = self.key(name);
        let io_err = |e: std::io::Error| {
            Error::backup(format!(
                "could not read file \"{}\": {}",
                path.display(),
                crate::error::io_reason(&e)
            ))
        };
        let mut f = tokio::fs::File::open(path).await.map_err(io_err)?;
        let len = f.metadata().await.map_err(io_err)?.len();
        let mut h = Sha256::new();
        let mut sent = 0u64;
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf).await.map_err(io_err)?;
            h.update(&buf);
            sent = buf.len() as u64;
            self.store
                .put(&key, PutPayload::from(buf))
                .await
                .map_err(|e| store_error("upload", &self.display(name), e))?;
        } else {
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(|e| store_error("upload", &self.display(name), e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = match f.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(io_err(e));
                    }
                };
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                sent += n as u64;
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(store_error("upload", &self.display(name), e));
                }
                w.write(&buf[..n]);
            }
            w.finish()
                .await
                .map_err(|e| store_error("upload", &self.display(name), e))?;
        }
        let stored = self.head(name).await?.map(|e| e.size);
        if stored != Some(sent) {
            return Err(Error::backup(format!(
                "object \"{}\" does not hold what was uploaded: {} byte(s) sent, {} stored",
                self.display(name),
                sent,
                stored.map_or("none".to_string(), |s| s.to_string())
            )));
        }
        Ok((sent, hex(&h.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let l = Location::parse("s3://b/some/prefix/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("b", "some/prefix"));
        assert_eq!(l.url(), "s3://b/some/prefix");
        assert_eq!(Location::parse("s3://b").unwrap().prefix, "");
        for bad in [
            "s3://",
            "s3:///x",
            "s3://k:s@b/x",
            "s3://b/../x",
            "s3://b/a//c",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(is_url(Path::new("s3://b/x")) && !is_url(Path::new("/b/s3://")));
    }

    #[test]
    fn only_loopback_endpoints_get_plain_http_by_themselves() {
        for ok in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(loopback_endpoint(ok), "{ok}");
        }
        for no in [
            "https://127.0.0.1:9000",
            "http://minio.internal:9000",
            "http://127.0.0.1.evil.example",
        ] {
            assert!(!loopback_endpoint(no), "{no}");
        }
    }
}
