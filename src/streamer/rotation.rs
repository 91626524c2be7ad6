//! Rotations and the hand-over to a new chain, inside the streamer: a rotation — asked for by
//! `--rotate-diff` or due by `--rotate-every` — waits for the sequence record and a transaction
//! boundary, then the writer seals `active.sql`; the roles are dumped beside the sealed diff; a
//! newer complete chain (`--new-chain`) is picked up and the stream moves to it at its start
//! position.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::sequences::snapshot_sequences;
use super::writer_thread::Command;
use super::{Barrier, SEQUENCE_WAIT, Streamer, Txn};
use crate::error::{Error, Result};
use crate::pg::replication::ReplicationStream;
use crate::storage::backup_dir::DiffName;
use crate::storage::compress::{Compression, Method};
use crate::storage::control::{self, RotateAnswer};
use crate::storage::durable;
use crate::ui;

/// Scheduled seals are at least this far apart: a differential's name is the second it was
/// sealed in, so faster seals would be named ever further into the future.
const MIN_SEAL_GAP: Duration = Duration::from_secs(1);

/// `--start --rotate-every`: seal after `interval` since the last seal (or the start), or once
/// `active.sql` holds `size` bytes, whichever comes first; neither set means only on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotateEvery {
    pub interval: Option<Duration>,
    pub size: Option<u64>,
}

/// When the chain was last sealed, as a point on the monotonic clock: the newest sealed
/// differential's stamp, else the chain's creation. So `--rotate-every` counts from the last
/// seal on disk, not from this start: a streamer restarted more often than the interval still
/// seals on time (right away, at the next change, when the interval has already run out).
pub(super) fn last_seal_of(chain: &crate::storage::backup_dir::Chain) -> tokio::time::Instant {
    let newest = chain
        .sealed_diffs()
        .ok()
        .and_then(|diffs| diffs.last().map(|d| d.name.stamp))
        .unwrap_or(chain.id.0);
    let age = OffsetDateTime::now_utc() - newest.to_time();
    let now = tokio::time::Instant::now();
    // A stamp in the future (a clock stepped back) counts as now.
    Duration::try_from(age)
        .ok()
        .and_then(|age| now.checked_sub(age))
        .unwrap_or(now)
}

impl Streamer {
    /// Whether a scheduled seal may be asked for now: changes to seal (more than sequence
    /// values), and no rotation or hand-over already on its way (which seals anyway, and
    /// restarts the schedule).
    fn may_seal_on_schedule(&self) -> bool {
        self.active_has_changes
            && self.rotate_wanted.is_none()
            && self.rotating.is_none()
            && self.handing_over.is_none()
            && self.next_chain.is_none()
    }

    /// When the next scheduled seal is due: at the interval after the last seal, or — once
    /// `active.sql` has reached the size — right away, but never within [`MIN_SEAL_GAP`] of the
    /// last one. None when nothing is to be sealed.
    pub(super) fn seal_due_at(&self) -> Option<tokio::time::Instant> {
        if !self.may_seal_on_schedule() {
            return None;
        }
        let every = self.cfg.rotate_every;
        let by_size = every
            .size
            .filter(|size| self.active_len >= *size)
            .map(|_| self.last_seal + MIN_SEAL_GAP);
        let by_time = every
            .interval
            .map(|interval| self.last_seal + interval.max(MIN_SEAL_GAP));
        by_size.into_iter().chain(by_time).min()
    }

    /// `--rotate-every`: once the interval has run out or `active.sql` has reached the size,
    /// rotate exactly as `--rotate-diff` asks (sequence record, transaction boundary, seal,
    /// manifest, roles), only without a requester to answer. Never for an `active.sql` without
    /// a change (empty, or sequence records only): an interval that runs out with nothing
    /// streamed seals at the next commit that changes something.
    pub(super) async fn maybe_rotate_on_schedule(
        &mut self,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        match self.seal_due_at() {
            Some(at) if tokio::time::Instant::now() >= at => {}
            _ => return Ok(()),
        }
        let every = self.cfg.rotate_every;
        let reason = match (every.size, every.interval) {
            (Some(size), _) if self.active_len >= size => {
                format!("active.sql reached {}", ui::size(self.active_len))
            }
            (_, Some(interval)) => format!("{} since the last seal", human_duration(interval)),
            (_, None) => return Ok(()),
        };
        ui::say(&format!("Rotation due ({reason})"));
        self.rotate_wanted = Some(Vec::new());
        self.record_sequences_for_rotation();
        self.maybe_rotate(stream).await
    }

    pub(super) async fn maybe_rotate(
        &mut self,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        let Some(id) = self.rotate_wanted.clone() else {
            return Ok(());
        };
        if self.rotating.is_some() {
            return Ok(());
        }
        if self.handing_over.is_some() {
            return Ok(());
        }
        if let Some((_, start)) = &self.next_chain {
            // With a new chain waiting, the rotation is the hand-over: it seals the old chain.
            let start = *start;
            self.rotate_wanted = None;
            for id in &id {
                self.answer(RotateAnswer::Pending {
                    id: id.clone(),
                    reason: format!("the stream to reach {start}, where the new chain starts"),
                });
            }
            self.handover_request.extend(id);
            return self.maybe_hand_over(stream).await;
        }
        let waiting = match self.barrier {
            Barrier::None => None,
            Barrier::Recording(_, since) | Barrier::At(_, since)
                if since.elapsed() > SEQUENCE_WAIT =>
            {
                ui::warning(&format!(
                    "the sequence values were not streamed back within {} s: sealing without them (the next differential holds them)",
                    SEQUENCE_WAIT.as_secs()
                ));
                self.barrier = Barrier::None;
                None
            }
            Barrier::Recording(..) => Some("the sequence values to be recorded".to_string()),
            Barrier::At(lsn, _)
                if self.server_end >= lsn || self.written.is_some_and(|w| w >= lsn) =>
            {
                self.barrier = Barrier::None;
                None
            }
            Barrier::At(lsn, _) => {
                // Ask the server where it is, so an idle stream learns it has passed the record.
                self.ask_position(stream).await;
                Some(format!(
                    "the stream to reach {lsn}, past the recorded sequence values"
                ))
            }
        };
        if let Some(reason) = waiting {
            for id in id {
                self.answer(RotateAnswer::Pending {
                    id,
                    reason: reason.clone(),
                });
            }
            return Ok(());
        }
        if let Txn::Writing(header) = &self.txn {
            let reason = format!(
                "transaction {} to commit (a differential holds whole transactions)",
                header.xid
            );
            for id in id {
                self.answer(RotateAnswer::Pending {
                    id,
                    reason: reason.clone(),
                });
            }
            return Ok(());
        }
        self.rotate_wanted = None;
        if !self.active_has_data {
            for id in id {
                self.answer(RotateAnswer::Empty {
                    id,
                    chain: self.cfg.chain.id.to_string(),
                });
            }
            ui::say("Rotation requested, but active.sql holds no transaction: nothing sealed");
            return Ok(());
        }
        let name = match self
            .cfg
            .chain
            .next_diff_name(OffsetDateTime::now_utc(), Compression::NONE)
        {
            Ok(name) => name,
            Err(err) => {
                for id in id {
                    self.answer(RotateAnswer::Failed {
                        id,
                        message: err.to_string(),
                    });
                }
                return Err(err.into());
            }
        };
        self.rotating = Some(id);
        // Later transactions go to the fresh active.sql: the schedule starts again here.
        self.active_len = 0;
        self.active_has_changes = false;
        self.last_seal = tokio::time::Instant::now();
        let chain = Box::new(self.cfg.chain.clone());
        self.push(Command::Rotate(chain, name), stream).await
    }

    /// Start recording sequence values ahead of a rotation (not for a hand-over, whose old
    /// chain ends where the new base begins).
    pub(super) fn record_sequences_for_rotation(&mut self) {
        // An empty active.sql seals nothing, so there is nothing to end with the values
        // (the periodic record still catches sequences that moved without any row change).
        if self.next_chain.is_some()
            || !matches!(self.barrier, Barrier::None)
            || !self.active_has_data
        {
            return;
        }
        self.barrier_generation += 1;
        self.barrier = Barrier::Recording(self.barrier_generation, Instant::now());
        snapshot_sequences(
            self.sql.clone(),
            Some((self.barrier_generation, self.barrier_tx.clone())),
        );
    }

    /// After a rotation: `pg_dumpall --globals-only` beside the sealed diff, so roles created
    /// since the base exist when the chain is restored on a fresh server.
    pub(super) fn dump_globals_for(&self, sealed: DiffName) {
        let path = self.cfg.chain.later_globals_path(sealed);
        let params = self.cfg.params.clone();
        let major = self.cfg.server_major;
        tokio::spawn(async move {
            let temp = durable::fixed_temp_path_for(&path);
            let _ = std::fs::remove_file(&temp);
            let result = async {
                crate::pg::programs::dump_globals(&params, major, &temp, Compression::NONE).await?;
                durable::rename_durable(&temp, &path)?;
                Ok::<_, Error>(())
            }
            .await;
            if let Err(err) = result {
                let _ = std::fs::remove_file(&temp);
                ui::warning(&format!(
                    "could not save the roles beside the sealed differential: {}",
                    err.message
                ));
            }
        });
    }

    /// `--start --compress`: replace a seal nobody asked for by its compressed form, as
    /// `--rotate-diff --compress` does, beside the stream. Until it is done the plain file is
    /// the differential; a stop or crash in between leaves it plain, which is still whole.
    pub(super) fn compress_in_background(&self, sealed: DiffName) {
        let Some(c) = self.cfg.compress.filter(|c| c.method != Method::None) else {
            return;
        };
        let chain = self.cfg.chain.clone();
        tokio::spawn(async move {
            let plain = sealed.to_string();
            match crate::storage::sealed::compress_sealed(&chain, &plain, c).await {
                Ok((name, size)) => {
                    ui::done(&format!("Compressed {plain}: {name} ({})", ui::size(size)))
                }
                Err(err) => ui::warning(&format!(
                    "could not compress the sealed differential {plain}: {}; it stays uncompressed",
                    err.message
                )),
            }
        });
    }

    /// Look for a complete chain newer than ours (made by `--new-chain`): the next one, not the
    /// newest, so that with two made in a row the one in between gets its differentials too.
    pub(super) fn check_new_chain(&mut self) {
        if self.next_chain.is_some() || self.handing_over.is_some() {
            return;
        }
        let ours = self.cfg.chain.id;
        let newest = match self.cfg.dir.chains() {
            Ok(chains) => match chains.into_iter().find(|c| c.complete && c.chain.id > ours) {
                Some(c) => c.chain,
                None => return,
            },
            Err(err) => {
                ui::warning(&format!("could not look for a new chain: {err}"));
                return;
            }
        };
        match newest.read_metadata() {
            Ok(meta) => {
                ui::say(&format!(
                    "New chain {} found (starts at {}); moving the stream to it",
                    newest.id, meta.start_lsn
                ));
                self.next_chain = Some((newest, meta.start_lsn));
            }
            Err(err) => ui::warning(&format!("could not read the new chain's metadata: {err}")),
        }
    }

    /// Hand over to the waiting new chain once the stream is between transactions and has
    /// reached the new chain's start (so every older transaction went to the old chain).
    pub(super) async fn maybe_hand_over(
        &mut self,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        let Some((_, start)) = &self.next_chain else {
            return Ok(());
        };
        let start = *start;
        if !matches!(self.txn, Txn::Idle) || self.rotating.is_some() || self.handing_over.is_some()
        {
            return Ok(());
        }
        let reached = self.written.is_some_and(|w| w > start) || self.server_end >= start;
        if !reached {
            // Ask the server where it is; its keepalive answer lets an idle stream switch.
            self.ask_position(stream).await;
            return Ok(());
        }
        let (new, start) = self.next_chain.take().expect("checked above");
        let old = std::mem::replace(&mut self.cfg.chain, new.clone());
        self.cfg.chain_start = start;
        // The hand-over seals the old chain; what it copies into the new one is added when done.
        self.active_len = 0;
        self.active_has_changes = false;
        self.last_seal = tokio::time::Instant::now();
        self.handing_over = Some((
            std::mem::take(&mut self.handover_request),
            old.id.to_string(),
            self.written,
        ));
        self.push(
            Command::HandOver {
                old: Box::new(old),
                new: Box::new(new),
                cut: start,
            },
            stream,
        )
        .await
    }

    /// A fatal error: every requester still waiting (or whose request was not yet taken) hears
    /// that the rotation will not happen, and why, instead of waiting for its timeout.
    pub(super) fn fail_requests(&mut self, err: &Error) {
        let mut ids = self.rotate_wanted.take().unwrap_or_default();
        ids.extend(self.rotating.take().unwrap_or_default());
        ids.extend(std::mem::take(&mut self.handover_request));
        if let Some((request, _, _)) = self.handing_over.take() {
            ids.extend(request);
        }
        ids.extend(self.answers.waiting());
        ids.extend(control::take_requests(self.cfg.dir.root()));
        ids.sort();
        ids.dedup();
        for id in ids {
            self.answer(RotateAnswer::Failed {
                id,
                message: format!("the streamer stopped: {}", err.message),
            });
        }
    }

    pub(super) fn answer(&mut self, answer: RotateAnswer) {
        if let Err(err) = self.answers.send(self.cfg.dir.root(), answer) {
            ui::warning(&format!("could not answer the rotation request: {err}"));
        }
    }
}

/// `90s`, `15min`, `1h`, `2d`, or the mixed form of odd intervals (`1h30min`).
fn human_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("min", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}
