//! Rotations and the hand-over to a new chain, inside the streamer: a rotation waits for the
//! sequence record and a transaction boundary, then the writer seals `active.sql`; the roles are
//! dumped beside the sealed diff; a newer complete chain (`--new-chain`) is picked up and the
//! stream moves to it at its start position.

use time::OffsetDateTime;

use super::sequences::snapshot_sequences;
use super::writer_thread::Command;
use super::{Barrier, Streamer, Txn};
use crate::error::{Error, Result};
use crate::pg::replication::ReplicationStream;
use crate::storage::backup_dir::DiffName;
use crate::storage::compress::Compression;
use crate::storage::control::{self, RotateAnswer};
use crate::storage::durable;
use crate::ui;

impl Streamer {
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
            Barrier::Recording => Some("the sequence values to be recorded".to_string()),
            Barrier::At(lsn)
                if self.server_end >= lsn || self.written.is_some_and(|w| w >= lsn) =>
            {
                self.barrier = Barrier::None;
                None
            }
            Barrier::At(lsn) => {
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
        self.barrier = Barrier::Recording;
        snapshot_sequences(self.sql.clone(), Some(self.barrier_tx.clone()));
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

    /// Look for a complete chain newer than ours (made by `--new-chain`).
    pub(super) fn check_new_chain(&mut self) {
        if self.next_chain.is_some() || self.handing_over.is_some() {
            return;
        }
        let newest = match self.cfg.dir.latest_complete_chain() {
            Ok(Some(chain)) if chain.id > self.cfg.chain.id => chain,
            Ok(_) => return,
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
        self.handing_over = Some((
            std::mem::take(&mut self.handover_request),
            old.id.to_string(),
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

    pub(super) fn answer(&self, answer: RotateAnswer) {
        if let Err(err) = control::write_answer(self.cfg.dir.root(), &answer) {
            ui::warning(&format!("could not answer the rotation request: {err}"));
        }
    }
}
