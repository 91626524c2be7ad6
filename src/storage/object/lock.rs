//! The lock object `.pg_scribe.lock` at a store prefix's top: which streamer writes into it.
//! The local pidfile keeps two streamers off one spool; this keeps two machines (two spools)
//! off one prefix, where both would upload differentials of the same chain.
//!
//! Decisions:
//! - **Created only if absent** (`If-None-Match: *`), so two streamers starting together cannot
//!   both win. Stores that ignore the condition are not detected: see doc/object-storage.md.
//! - **A lease, renewed while streaming.** The object says who holds it (host, PID, spool) and
//!   until when; a holder that vanished without removing it (kill -9, a lost machine) blocks a
//!   new streamer only until the lease runs out. The same host and spool take it over at once:
//!   the local pidfile already proved the old process gone.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Remote;
use crate::error::{Error, Result};
use crate::storage::diff_format::{format_commit_time, parse_commit_time};

pub const LOCK_NAME: &str = ".pg_scribe.lock";

/// How long a lock holds without renewal.
pub const LEASE: Duration = Duration::from_secs(300);
/// How often a holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub spool: String,
    pub started_at: String,
    /// The holder may be taken for gone after this time.
    pub expires_at: String,
}

impl Holder {
    fn same_place(&self, other: &Holder) -> bool {
        self.host == other.host && self.spool == other.spool
    }

    fn same_holder(&self, other: &Holder) -> bool {
        self.same_place(other) && self.pid == other.pid && self.started_at == other.started_at
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        parse_commit_time(&self.expires_at).map_or(true, |t| t < now)
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we read up to the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The lock as held by this process.
pub struct Lock {
    remote: Remote,
    me: Holder,
}

fn encode(h: &Holder) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(h).unwrap_or_default())
}

impl Lock {
    /// Takes the prefix's lock for a streamer using `spool`, or says who has it.
    pub async fn acquire(
        remote: &Remote,
        spool: &std::path::Path,
    ) -> Result<(Lock, Option<Holder>)> {
        let now = OffsetDateTime::now_utc();
        let me = Holder {
            host: hostname(),
            pid: std::process::id(),
            spool: spool.display().to_string(),
            started_at: format_commit_time(now),
            expires_at: format_commit_time(now + LEASE),
        };
        let lock = Lock {
            remote: remote.clone(),
            me,
        };
        if remote.put_if_absent(LOCK_NAME, encode(&lock.me)).await? {
            return Ok((lock, None));
        }
        let other = lock.read().await?;
        match other {
            // Removed between the two requests: try once more.
            None => {
                if remote.put_if_absent(LOCK_NAME, encode(&lock.me)).await? {
                    return Ok((lock, None));
                }
                Err(lock.busy(None))
            }
            Some(h) if h.same_place(&lock.me) || h.expired(now) => {
                remote.put(LOCK_NAME, encode(&lock.me)).await?;
                Ok((lock, Some(h)))
            }
            Some(h) => Err(lock.busy(Some(&h))),
        }
    }

    pub fn holder(&self) -> &Holder {
        &self.me
    }

    async fn read(&self) -> Result<Option<Holder>> {
        Ok(self
            .remote
            .read(LOCK_NAME)
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    fn busy(&self, h: Option<&Holder>) -> Error {
        let url = self.remote.url();
        let who = h.map_or("another streamer".to_string(), |h| {
            format!(
                "the streamer on host \"{}\" (PID {}, spool \"{}\")",
                h.host, h.pid, h.spool
            )
        });
        Error::backup(format!("backup directory \"{url}\" is locked by {who}"))
            .with_detail(match h {
                Some(h) => format!("Its lease runs until {}; it renews it every {} s while it streams.", h.expires_at, RENEW_EVERY.as_secs()),
                None => "The lock object could not be read.".into(),
            })
            .with_hint(format!(
                "Only one streamer may write into a prefix. If that one is gone for good, wait for its lease to run out, or delete {url}/{LOCK_NAME}."
            ))
    }

    /// Extends the lease; an error when someone else holds the lock now.
    pub async fn renew(&mut self) -> Result<()> {
        match self.read().await? {
            Some(h) if !h.same_holder(&self.me) => {
                return Err(Error::backup(format!(
                    "the lock of \"{}\" was taken over by host \"{}\" (PID {}, spool \"{}\")",
                    self.remote.url(),
                    h.host,
                    h.pid,
                    h.spool
                ))
                .with_hint("Two streamers write into one prefix: stop one of them."));
            }
            _ => {}
        }
        self.me.expires_at = format_commit_time(OffsetDateTime::now_utc() + LEASE);
        self.remote.put(LOCK_NAME, encode(&self.me)).await
    }

    /// Removes the lock if it is still ours.
    pub async fn release(self) -> Result<()> {
        if self.read().await?.is_some_and(|h| h.same_holder(&self.me)) {
            self.remote.delete(LOCK_NAME).await?;
        }
        Ok(())
    }
}
