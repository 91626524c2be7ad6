//! Small files in the backup directory through which the streamer and other pg_scribe
//! invocations talk, next to the pidfile:
//!
//! - `.pg_scribe.rotate-<id>`: a rotation request (`--rotate-diff` or `--new-chain` writes it,
//!   then sends SIGHUP); one file per request, so overlapping requests are all answered;
//! - `.pg_scribe.rotated-<id>`: the streamer's answer (pending, sealed, nothing to seal, failed);
//!   the requester removes it once it has the final answer;
//! - `.pg_scribe.flushed`: a position up to which every transaction is in the chain's files:
//!   the keepalive position an idle stream reported as flushed (recorded before reporting it),
//!   and the end of each sealed diff. With it `--start` can tell a slot that moved on
//!   legitimately from one consumed by someone else, and resume without reading back a sealed
//!   diff that may since have been compressed.
//!
//! All are written atomically (temp, fsync, rename), mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;
use crate::storage::durable;
use crate::storage::error::Result;

const REQUEST_PREFIX: &str = ".pg_scribe.rotate-";
const ANSWER_PREFIX: &str = ".pg_scribe.rotated-";
pub const FLUSHED: &str = ".pg_scribe.flushed";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RotateAnswer {
    /// Seen; the rotation waits for `reason` (e.g. "transaction 750 to commit").
    Pending { id: String, reason: String },
    /// `active.sql` was sealed as `sealed` (a file name in `chain`).
    Sealed {
        id: String,
        chain: String,
        sealed: String,
        size: u64,
    },
    /// `active.sql` held no transaction: nothing was sealed.
    Empty { id: String, chain: String },
    /// The rotation could not be done.
    Failed { id: String, message: String },
}

impl RotateAnswer {
    pub fn id(&self) -> &str {
        match self {
            RotateAnswer::Pending { id, .. }
            | RotateAnswer::Sealed { id, .. }
            | RotateAnswer::Empty { id, .. }
            | RotateAnswer::Failed { id, .. } => id,
        }
    }
}

fn path(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

fn read_json<T: for<'de> Deserialize<'de>>(file: &Path) -> Option<T> {
    let text = std::fs::read_to_string(file).ok()?;
    serde_json::from_str(&text).ok()
}

/// Request IDs become file names: keep them to a safe alphabet.
fn safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub fn write_request(root: &Path, request: &RotateRequest) -> Result<()> {
    debug_assert!(safe_id(&request.id));
    let json = serde_json::to_vec(request).expect("request serializes");
    durable::atomic_write(
        &path(root, &format!("{REQUEST_PREFIX}{}", request.id)),
        &json,
    )
}

/// Take every pending request, removing them so each is answered once.
pub fn take_requests(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_prefix(REQUEST_PREFIX)) else {
            continue;
        };
        // Temporary files of atomic_write end in ".tmp": not requests yet.
        if safe_id(id) {
            ids.push(id.to_string());
            let _ = std::fs::remove_file(entry.path());
        }
    }
    ids.sort();
    ids
}

pub fn write_answer(root: &Path, answer: &RotateAnswer) -> Result<()> {
    let json = serde_json::to_vec(answer).expect("answer serializes");
    durable::atomic_write(
        &path(root, &format!("{ANSWER_PREFIX}{}", answer.id())),
        &json,
    )
}

pub fn read_answer(root: &Path, id: &str) -> Option<RotateAnswer> {
    read_json(&path(root, &format!("{ANSWER_PREFIX}{id}")))
}

pub fn remove_answer(root: &Path, id: &str) {
    let _ = std::fs::remove_file(path(root, &format!("{ANSWER_PREFIX}{id}")));
}

pub fn read_flushed(root: &Path) -> Option<Lsn> {
    std::fs::read_to_string(path(root, FLUSHED))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn write_flushed(root: &Path, lsn: Lsn) -> Result<()> {
    durable::atomic_write(&path(root, FLUSHED), format!("{lsn}\n").as_bytes())
}
