//! Small files in the backup directory through which the streamer and other pg_scribe
//! invocations talk, next to the pidfile:
//!
//! - `.pg_scribe.rotate`: a rotation request (`--rotate-diff` writes it, then sends SIGHUP);
//! - `.pg_scribe.rotated`: the streamer's answer (pending, sealed, or nothing to seal);
//! - `.pg_scribe.flushed`: a position up to which every transaction is in the chain's files:
//!   the keepalive position an idle stream reported as flushed (recorded before reporting it),
//!   and the end of each sealed diff. With it `--start` can tell a slot that moved on
//!   legitimately from one consumed by someone else, and resume without reading back a sealed
//!   diff that may since have been compressed.
//!
//! All are written atomically (temp, fsync, rename), mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain_error::Result;
use crate::durable;
use crate::lsn::Lsn;

pub const REQUEST: &str = ".pg_scribe.rotate";
pub const ANSWER: &str = ".pg_scribe.rotated";
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

pub fn write_request(root: &Path, request: &RotateRequest) -> Result<()> {
    let json = serde_json::to_vec(request).expect("request serializes");
    durable::atomic_write(&path(root, REQUEST), &json)
}

/// Take the pending request (if any), removing it so it is answered once.
pub fn take_request(root: &Path) -> Option<RotateRequest> {
    let file = path(root, REQUEST);
    let request = read_json(&file);
    let _ = std::fs::remove_file(&file);
    request
}

pub fn write_answer(root: &Path, answer: &RotateAnswer) -> Result<()> {
    let json = serde_json::to_vec(answer).expect("answer serializes");
    durable::atomic_write(&path(root, ANSWER), &json)
}

pub fn read_answer(root: &Path) -> Option<RotateAnswer> {
    read_json(&path(root, ANSWER))
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
