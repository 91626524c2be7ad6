//! What the streamer tells others about its position: the flush position it may report to the
//! server (only what is durable, see doc/streaming.md), status updates, systemd's notifications
//! and the periodic progress line in the log.

use super::*;

impl Streamer {
    /// The position that may be reported as flushed now (see the module comment).
    pub(super) fn flush_position(&mut self) -> Lsn {
        let durable = self
            .durable
            .unwrap_or(Lsn::INVALID)
            .max(self.reported_floor);
        let settled = matches!(self.txn, Txn::Idle)
            && self.chunk.is_empty()
            && self.written <= self.durable
            && self.rotating.is_none()
            && self.handing_over.is_none();
        if !settled || self.server_end <= durable {
            return durable;
        }
        if self.server_end > self.flushed_file {
            // Record it before the server hears it, so a restart can check the slot.
            match control::write_flushed(self.cfg.dir.root(), self.server_end) {
                Ok(()) => self.flushed_file = self.server_end,
                Err(err) => {
                    ui::warning(&format!("could not record the flushed position: {err}"));
                    return durable;
                }
            }
        }
        self.server_end
    }

    /// Ask the server for its position (a keepalive in reply), so an idle stream learns it has
    /// passed a point it waits for. At most once a second: a busy stream learns it from the
    /// transactions themselves, and asking after each one would slow the server down.
    pub(super) async fn ask_position(&mut self, stream: &mut Option<ReplicationStream>) {
        if self
            .last_position_request
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_position_request = Some(Instant::now());
        self.send_status(stream, true).await;
    }

    /// Report positions; `reply` asks the server to answer at once with a keepalive.
    pub(super) async fn send_status(
        &mut self,
        stream: &mut Option<ReplicationStream>,
        reply: bool,
    ) {
        let flush = self.flush_position();
        if let Some(s) = stream.as_mut() {
            let write = s.last_received().max(flush);
            if let Err(err) = s.send_status(write, flush, flush, reply).await {
                tracing::debug!("status update failed: {err}");
            }
        }
    }

    /// What systemd shows as the unit's status line.
    pub(super) fn notify_text(&self, connected: bool) -> String {
        let durable = self.durable.unwrap_or(self.cfg.chain_start);
        let state = if connected {
            "streaming"
        } else {
            "reconnecting"
        };
        format!(
            "{state} into chain {}; durable up to {durable}",
            self.cfg.chain.id
        )
    }

    pub(super) fn notify_stopping(&self, notify: Option<&notify::Notifier>, signal: &str) {
        if let Some(n) = notify {
            let durable = self.durable.unwrap_or(self.cfg.chain_start);
            n.stopping(&format!("stopping on {signal}; durable up to {durable}"));
        }
    }

    pub(super) fn log_progress(&self, stream: Option<&ReplicationStream>, txns_per_sec: f64) {
        let durable = self.durable.unwrap_or(self.cfg.chain_start);
        let lag = self.server_end.0.saturating_sub(durable.0);
        ui::say(&format!(
            "progress: LSN {durable} durable, server at {}, lag {}; {:.1} transactions/s; {} transactions ({}) written since start{}",
            self.server_end,
            ui::size(lag),
            txns_per_sec,
            self.txns,
            ui::size(self.bytes),
            if stream.is_none() {
                " (reconnecting)"
            } else {
                ""
            }
        ));
    }
}
