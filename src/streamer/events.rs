//! What the writer thread reports back to the streamer — a seal done, a hand-over finished, a
//! fatal I/O error — and what follows from it: answers to requesters, the durable position, the
//! roles saved beside a sealed differential. Kept apart from the stream's own loop so that the
//! order of these effects can be read in one place.

use super::writer_thread::Event;
use super::*;

impl Streamer {
    pub(super) async fn on_event(
        &mut self,
        event: Event,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        match event {
            Event::Durable(lsn) => {
                if lsn > self.durable {
                    self.durable = lsn;
                }
                if std::mem::take(&mut self.reply_after_fsync) {
                    self.send_status(stream, false).await;
                }
            }
            Event::Rotated(sealed) if sealed.path.as_os_str().is_empty() => {
                ui::say("active.sql had been moved away: continuing in a new active.sql");
                self.active_has_data = holds_after(self.written, sealed.last_end_lsn);
                for id in self.rotating.take().unwrap_or_default() {
                    self.answer(RotateAnswer::Failed {
                        id,
                        message: "active.sql had been moved away by hand; nothing was sealed"
                            .into(),
                    });
                }
            }
            Event::Rotated(sealed) => {
                let name = sealed
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let diff_name = name.parse::<DiffName>().ok();
                ui::done(&format!(
                    "Rotated differential: {name} ({})",
                    ui::size(sealed.size)
                ));
                if let Some(e) = &sealed.manifest_error {
                    ui::warning(&format!("could not write the manifest of {name}: {e}"));
                }
                // Transactions queued behind the rotation are in the fresh active.sql already.
                self.active_has_data = holds_after(self.written, sealed.last_end_lsn);
                if let Some(diff_name) = diff_name {
                    self.dump_globals_for(diff_name);
                    // A requester compresses what it asked for (its own --compress).
                    if self.rotating.as_ref().is_none_or(Vec::is_empty) {
                        self.compress_in_background(diff_name);
                    }
                }
                // active.sql is empty now: remember where the files end without reading the
                // sealed diff back (it may be compressed by the time we restart).
                if let Some(end) = sealed.last_end_lsn
                    && end > self.flushed_file
                {
                    match control::write_flushed(self.cfg.dir.root(), end) {
                        Ok(()) => self.flushed_file = end,
                        Err(err) => {
                            ui::warning(&format!("could not record the stream position: {err}"))
                        }
                    }
                }
                for id in self.rotating.take().unwrap_or_default() {
                    self.answer(RotateAnswer::Sealed {
                        id,
                        chain: self.cfg.chain.id.to_string(),
                        sealed: name.clone(),
                        size: sealed.size,
                    });
                }
            }
            Event::HandedOver(report) => {
                let (request, old_chain, queued_at) =
                    self.handing_over
                        .take()
                        .unwrap_or((Vec::new(), String::new(), None));
                // The old chain's tail is on disk now: positions below the new start are held.
                self.reported_floor = self.cfg.chain_start;
                self.active_has_data =
                    report.copied_txns > 0 || holds_after(self.written, queued_at);
                self.active_len += report.copied_bytes;
                self.active_has_changes |= report.copied_txns > 0;
                let sealed = report.sealed.as_ref().map(|s| {
                    s.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                if let (Some(name), Some(e)) = (
                    &sealed,
                    report
                        .sealed
                        .as_ref()
                        .and_then(|s| s.manifest_error.as_ref()),
                ) {
                    ui::warning(&format!("could not write the manifest of {name}: {e}"));
                }
                match &sealed {
                    Some(name) => ui::done(&format!("Sealed old chain {old_chain}: {name}")),
                    None => ui::done(&format!(
                        "Closed old chain {old_chain} (nothing left to seal)"
                    )),
                }
                if report.copied_txns > 0 {
                    ui::done(&format!(
                        "Copied {} transaction(s) ({}) past the new chain's start into it",
                        report.copied_txns,
                        ui::size(report.copied_bytes)
                    ));
                }
                ui::done(&format!("Streaming to new chain: {}", self.cfg.chain.id));
                // Another chain waits already: the requesters hear when the last move is done.
                self.check_new_chain();
                if self.next_chain.is_some() {
                    self.handover_request.extend(request);
                    return Ok(());
                }
                for id in request {
                    self.answer(match &sealed {
                        Some(name) => RotateAnswer::Sealed {
                            id,
                            chain: old_chain.clone(),
                            sealed: name.clone(),
                            size: report.sealed.as_ref().map(|s| s.size).unwrap_or(0),
                        },
                        None => RotateAnswer::Empty {
                            id,
                            chain: old_chain.clone(),
                        },
                    });
                }
            }
            Event::Failed(err) => {
                let disk_full = err.is_disk_full();
                let mut error = Error::from(err);
                if let Some(durable) = self.durable {
                    error = error.with_detail(format!(
                        "Everything up to {durable} is safely on disk and was the last position reported to the server; nothing after it was acknowledged."
                    ));
                }
                if disk_full {
                    error = error.with_hint("Free some space, then run pg_scribe --start again: streaming resumes where it stopped, with nothing lost.");
                }
                return Err(error);
            }
        }
        Ok(())
    }
}
