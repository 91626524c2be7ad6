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
//! All are written atomically (temp, rename), mode 0600. Requests and the flushed position are
//! fsynced too; answers are not: they only matter to a requester that is waiting right now, and
//! writing them sits on the streamer's hot path while a rotation waits, so [`Answers`] writes an
//! answer only when it changed, and without an fsync.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;
use crate::storage::durable;
use crate::storage::error::Result;

const REQUEST_PREFIX: &str = ".pg_scribe.rotate-";
const ANSWER_PREFIX: &str = ".pg_scribe.rotated-";
pub(crate) const FLUSHED: &str = ".pg_scribe.flushed";

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

pub(crate) fn write_request(root: &Path, request: &RotateRequest) -> Result<()> {
    debug_assert!(safe_id(&request.id));
    let json = serde_json::to_vec(request).expect("request serializes");
    durable::atomic_write(
        &path(root, &format!("{REQUEST_PREFIX}{}", request.id)),
        &json,
    )
}

/// Take every pending request, removing them so each is answered once.
pub(crate) fn take_requests(root: &Path) -> Vec<String> {
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

/// Replace the answer file (readers see the old answer or the new, never a mix). Not fsynced:
/// after an OS crash there is no requester left waiting for it.
pub fn write_answer(root: &Path, answer: &RotateAnswer) -> Result<()> {
    let json = serde_json::to_vec(answer).expect("answer serializes");
    let target = path(root, &format!("{ANSWER_PREFIX}{}", answer.id()));
    let tmp = durable::temp_path_for(&target);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = durable::create_private_file(&tmp)?;
        f.write_all(&json)
            .map_err(|e| crate::storage::error::ChainError::file("write", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &target)
            .map_err(|e| crate::storage::error::ChainError::file("rename", &tmp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The streamer's side of the answers: remembers what each waiting requester was last told, so
/// the many calls while a rotation waits (one per transaction, keepalive and writer event)
/// write the file only when the answer changes.
#[derive(Default)]
pub struct Answers {
    pending: HashMap<String, RotateAnswer>,
    /// Files written, for tests and debugging.
    pub writes: u64,
}

impl Answers {
    /// Tell the requester `answer` unless it was told exactly that already.
    pub fn send(&mut self, root: &Path, answer: RotateAnswer) -> Result<()> {
        if self.pending.get(answer.id()) == Some(&answer) {
            return Ok(());
        }
        write_answer(root, &answer)?;
        self.writes += 1;
        let id = answer.id().to_string();
        match answer {
            RotateAnswer::Pending { .. } => {
                self.pending.insert(id, answer);
            }
            _ => {
                self.pending.remove(&id);
            }
        }
        Ok(())
    }

    /// Requests told "pending" and not yet given a final answer.
    pub fn waiting(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.pending.keys().cloned().collect();
        ids.sort();
        ids
    }
}

pub(crate) fn read_answer(root: &Path, id: &str) -> Option<RotateAnswer> {
    read_json(&path(root, &format!("{ANSWER_PREFIX}{id}")))
}

/// Withdraw a request the streamer has not taken (it died before).
pub fn remove_request(root: &Path, id: &str) {
    let _ = std::fs::remove_file(path(root, &format!("{REQUEST_PREFIX}{id}")));
}

pub fn remove_answer(root: &Path, id: &str) {
    let _ = std::fs::remove_file(path(root, &format!("{ANSWER_PREFIX}{id}")));
}

pub(crate) fn read_flushed(root: &Path) -> Option<Lsn> {
    std::fs::read_to_string(path(root, FLUSHED))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn write_flushed(root: &Path, lsn: Lsn) -> Result<()> {
    durable::atomic_write(&path(root, FLUSHED), format!("{lsn}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, reason: &str) -> RotateAnswer {
        RotateAnswer::Pending {
            id: id.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn an_unchanged_answer_is_written_once() {
        let t = tempfile::tempdir().unwrap();
        let mut answers = Answers::default();
        for _ in 0..1000 {
            answers
                .send(t.path(), pending("a", "transaction 7 to commit"))
                .unwrap();
        }
        assert_eq!(answers.writes, 1);
        assert_eq!(answers.waiting(), vec!["a".to_string()]);
        answers
            .send(t.path(), pending("a", "the sequence values to be recorded"))
            .unwrap();
        answers
            .send(t.path(), pending("b", "the sequence values to be recorded"))
            .unwrap();
        assert_eq!(answers.writes, 3);
        let done = RotateAnswer::Empty {
            id: "a".into(),
            chain: "c".into(),
        };
        answers.send(t.path(), done.clone()).unwrap();
        assert_eq!(read_answer(t.path(), "a"), Some(done));
        assert_eq!(answers.waiting(), vec!["b".to_string()]);
        assert_eq!(
            durable::mode_of(&t.path().join(".pg_scribe.rotated-a")).unwrap(),
            0o600
        );
    }
}
