//! The `--start` daemon: streams wal2sql's output from the slot into the chain's `active.sql`,
//! whole transactions at a time, and tells the server only what is durable.
//!
//! The rules it keeps (design §4):
//! - the flush position reported is the `end_lsn` of the last fsynced transaction, or — when no
//!   transaction is open and everything is on disk — the server's keepalive position, which is
//!   first recorded in `.pg_scribe.flushed`;
//! - a transaction at or below what the files already hold is skipped, so a restart after any
//!   crash duplicates nothing, and the server resends whatever was not confirmed, so nothing is
//!   lost;
//! - rotation (SIGHUP, `--rotate-diff`) happens between transactions only;
//! - retryable failures (network, server restart, slot briefly held by a dead walsender)
//!   reconnect with backoff; anything else stops with the spec's exit code.
//!
//! One task runs the protocol; one OS thread ([`writer_thread`]) does the disk I/O.

pub mod writer_thread;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use time::OffsetDateTime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{MissedTickBehavior, interval_at};

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::conninfo::ConnParams;
use crate::pg::replication::{ReplConn, ReplMessage, ReplicationError, ReplicationStream};
use crate::storage::backup_dir::{BackupDir, Chain, DiffName};
use crate::storage::compress::Compression;
use crate::storage::diff_format::{TRAILER_PREFIX, TxnHeader, parse_trailer};
use crate::storage::durable;
use crate::storage::writer::DiffWriter;
use crate::ui;

use crate::storage::control::{self, RotateAnswer};
use writer_thread::{Command, Event, WriterHandle};

/// Statement text is handed to the writer in chunks of about this size.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How often the sequence values are recorded into the stream.
const SEQUENCE_SNAPSHOT_EVERY: Duration = Duration::from_secs(300);
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

pub struct Config {
    pub params: ConnParams,
    pub slot: String,
    pub dir: BackupDir,
    pub chain: Chain,
    /// The chain's `start_lsn`: transactions committed before it are in the base.
    pub chain_start: Lsn,
    /// Everything up to this `end_lsn` is already in the chain's files.
    pub resume: Option<Lsn>,
    /// Whether `active.sql` already holds transactions (decides whether a rotation seals).
    pub active_has_data: bool,
    pub status_interval: Duration,
    pub fsync_interval: Duration,
    pub plugin_options: Vec<(String, String)>,
    /// For `pg_dumpall` of the right version at each rotation.
    pub server_major: u32,
}

/// Sequence values are recorded into the stream just before a rotation, so every sealed diff
/// ends with them; the rotation waits until the stream has passed that record.
enum Barrier {
    None,
    /// The recording query is running.
    Recording,
    /// Rotate once the stream has reached this position.
    At(Lsn),
}

enum Txn {
    Idle,
    Writing(TxnHeader),
    /// Already in our files (a resend after reconnect or restart): dropped.
    Skipping(TxnHeader),
}

struct Streamer {
    cfg: Config,
    writer: WriterHandle,
    txn: Txn,
    chunk: BytesMut,
    /// `end_lsn` of the last transaction handed to the writer (in the file, maybe not durable).
    written: Option<Lsn>,
    /// `end_lsn` of the last transaction known to be on disk.
    durable: Option<Lsn>,
    /// The server's WAL end as last told by a keepalive.
    server_end: Lsn,
    /// What `.pg_scribe.flushed` holds.
    flushed_file: Lsn,
    active_has_data: bool,
    /// A rotation asked for (request id if from `--rotate-diff`) and not yet done.
    rotate_wanted: Option<Vec<String>>,
    /// A rotation handed to the writer, waiting for its event.
    rotating: Option<Vec<String>>,
    barrier: Barrier,
    barrier_tx: tokio::sync::mpsc::UnboundedSender<Option<Lsn>>,
    sql: std::sync::Arc<SqlSession>,
    reply_after_fsync: bool,
    last_position_request: Option<Instant>,
    /// A newer complete chain to move to, and where it starts.
    next_chain: Option<(Chain, Lsn)>,
    /// The rotation request the hand-over will answer.
    handover_request: Vec<String>,
    /// A hand-over handed to the writer: (request id, old chain ID).
    handing_over: Option<(Vec<String>, String)>,
    txns: u64,
    bytes: u64,
}

/// Run until SIGTERM/SIGINT (Ok) or a fatal error.
pub async fn run(
    cfg: Config,
    writer: DiffWriter,
    sql: Option<tokio_postgres::Client>,
) -> Result<()> {
    let flushed_file = control::read_flushed(cfg.dir.root()).unwrap_or(Lsn::INVALID);
    let (barrier_tx, barrier_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut streamer = Streamer {
        writer: WriterHandle::spawn(writer),
        txn: Txn::Idle,
        chunk: BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024),
        written: cfg.resume,
        durable: cfg.resume,
        server_end: Lsn::INVALID,
        flushed_file,
        active_has_data: cfg.active_has_data,
        rotate_wanted: None,
        rotating: None,
        barrier: Barrier::None,
        barrier_tx,
        sql: std::sync::Arc::new(SqlSession {
            params: cfg.params.clone(),
            client: tokio::sync::Mutex::new(sql),
        }),
        reply_after_fsync: false,
        last_position_request: None,
        next_chain: None,
        handover_request: Vec::new(),
        handing_over: None,
        txns: 0,
        bytes: 0,
        cfg,
    };
    let result = streamer.main_loop(barrier_rx).await;
    let durable = streamer.writer.close().await;
    if let (Ok(()), Some(lsn)) = (&result, durable) {
        tracing::debug!("writer closed; durable up to {lsn}");
    }
    result
}

fn sig(kind: SignalKind) -> Result<tokio::signal::unix::Signal> {
    signal(kind).map_err(|e| Error::backup(format!("could not install signal handler: {e}")))
}

impl Streamer {
    async fn main_loop(
        &mut self,
        mut barrier_rx: tokio::sync::mpsc::UnboundedReceiver<Option<Lsn>>,
    ) -> Result<()> {
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;
        let mut hup = sig(SignalKind::hangup())?;
        let start = tokio::time::Instant::now();
        let every = |d: Duration| {
            let d = if d.is_zero() {
                Duration::from_secs(3600 * 24 * 365)
            } else {
                d
            };
            let mut i = interval_at(start + d, d);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        };
        let mut status_tick = every(self.cfg.status_interval);
        let mut fsync_tick = every(self.cfg.fsync_interval);
        let mut sequence_tick = every(SEQUENCE_SNAPSHOT_EVERY);
        let mut progress_tick = every(PROGRESS_EVERY);

        let mut stream: Option<ReplicationStream> = None;
        let mut backoff = Duration::from_secs(1);
        let mut reconnect_at = tokio::time::Instant::now();
        let mut attempts = 0u32;
        let mut lost = false;
        let mut last_progress = (self.written, Instant::now());

        loop {
            tokio::select! {
                biased;
                _ = term.recv() => return self.shutdown(stream, "SIGTERM", &mut int).await,
                _ = int.recv() => return self.shutdown(stream, "SIGINT", &mut int).await,
                _ = hup.recv() => {
                    // Every waiting request is answered by the next rotation (several
                    // --rotate-diff may overlap, e.g. from cron).
                    let ids = control::take_requests(self.cfg.dir.root());
                    self.check_new_chain();
                    self.rotate_wanted.get_or_insert_with(Vec::new).extend(ids);
                    self.record_sequences_for_rotation();
                    self.maybe_rotate(&mut stream).await?;
                }
                Some(recorded) = barrier_rx.recv() => {
                    tracing::debug!("sequence values recorded up to {recorded:?}");
                    self.barrier = match recorded {
                        Some(lsn) => Barrier::At(lsn),
                        None => Barrier::None,
                    };
                    self.maybe_rotate(&mut stream).await?;
                }
                event = self.writer.events.recv() => {
                    let Some(event) = event else {
                        return Err(Error::backup("the writer thread stopped unexpectedly"));
                    };
                    self.on_event(event, &mut stream).await?;
                    // Requests that came during a rotation are served by the next one.
                    self.maybe_rotate(&mut stream).await?;
                }
                // Timers before the stream: a stream that always has data must not starve them.
                _ = status_tick.tick() => {
                    self.check_new_chain();
                    self.maybe_hand_over(&mut stream).await?;
                    self.send_status(&mut stream, false).await;
                }
                _ = fsync_tick.tick() => {
                    if self.written > self.durable {
                        self.push(Command::Fsync, &mut stream).await?;
                    }
                }
                _ = sequence_tick.tick() => snapshot_sequences(self.sql.clone(), None),
                _ = progress_tick.tick() => {
                    if last_progress.0 != self.written || last_progress.1.elapsed() > Duration::from_secs(3600) {
                        self.log_progress(stream.as_ref());
                        last_progress = (self.written, Instant::now());
                    }
                }
                _ = tokio::time::sleep_until(reconnect_at), if stream.is_none() => {
                    attempts += 1;
                    match self.connect().await {
                        Ok(s) => {
                            if std::mem::take(&mut lost) {
                                ui::say(&format!("Reconnected; streaming from {}", self.start_lsn()));
                            }
                            stream = Some(s);
                            backoff = Duration::from_secs(1);
                            attempts = 0;
                        }
                        Err(err) if err.is_retryable() => {
                            lost = true;
                            ui::warning(&format!(
                                "could not start streaming (attempt {attempts}): {}; retrying in {} s",
                                first_line(&err.to_string()),
                                backoff.as_secs()
                            ));
                            reconnect_at = tokio::time::Instant::now() + backoff;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                msg = next_message(&mut stream), if stream.is_some() => {
                    match msg {
                        Ok(ReplMessage::XLogData(x)) => self.on_data(x.data, &mut stream).await?,
                        Ok(ReplMessage::Keepalive(k)) => {
                            self.server_end = self.server_end.max(k.wal_end);
                            self.maybe_hand_over(&mut stream).await?;
                            self.maybe_rotate(&mut stream).await?;
                            if k.reply_requested {
                                if self.written > self.durable {
                                    self.reply_after_fsync = true;
                                    self.push(Command::Fsync, &mut stream).await?;
                                }
                                self.send_status(&mut stream, false).await;
                            }
                        }
                        Err(err) if err.is_retryable() => {
                            ui::warning(&format!(
                                "lost the replication connection: {}; reconnecting",
                                first_line(&err.to_string())
                            ));
                            stream = None;
                            lost = true;
                            self.drop_open_transaction(&mut stream).await?;
                            reconnect_at = tokio::time::Instant::now() + backoff;
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
            }
        }
    }

    fn start_lsn(&self) -> Lsn {
        self.written
            .unwrap_or(self.cfg.chain_start)
            .max(self.cfg.chain_start)
    }

    async fn connect(&mut self) -> std::result::Result<ReplicationStream, ReplicationError> {
        let conn = ReplConn::connect(&self.cfg.params).await?;
        let options: Vec<(&str, &str)> = self
            .cfg
            .plugin_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        conn.start_replication(&self.cfg.slot, self.start_lsn(), &options)
            .await
    }

    /// One wal2sql message: a transaction's header, one of its statements, or its trailer.
    async fn on_data(&mut self, data: Bytes, stream: &mut Option<ReplicationStream>) -> Result<()> {
        match &self.txn {
            Txn::Idle => {
                let line = std::str::from_utf8(&data).unwrap_or("");
                let header = TxnHeader::parse(line).map_err(|e| {
                    Error::backup(format!(
                        "unexpected message from wal2sql outside a transaction: {e}"
                    ))
                    .with_detail(format!("Message: {}", truncate(line, 200)))
                })?;
                // The server has reached this commit: the hand-over may need to happen first.
                self.server_end = self.server_end.max(header.commit_lsn);
                if self.next_chain.is_some() {
                    self.maybe_hand_over(stream).await?;
                }
                let already_have = self.written.is_some_and(|w| header.end_lsn <= w);
                if already_have || header.commit_lsn < self.cfg.chain_start {
                    self.txn = Txn::Skipping(header);
                } else {
                    self.push(Command::Begin(header.clone()), stream).await?;
                    self.txn = Txn::Writing(header);
                }
            }
            Txn::Skipping(header) => {
                if is_trailer(&data, header.end_lsn) {
                    self.txn = Txn::Idle;
                }
            }
            Txn::Writing(header) => {
                if is_trailer(&data, header.end_lsn) {
                    let end = header.end_lsn;
                    self.flush_chunk(stream).await?;
                    self.push(Command::Commit, stream).await?;
                    self.txn = Txn::Idle;
                    self.written = Some(end);
                    self.active_has_data = true;
                    self.txns += 1;
                    if self.cfg.fsync_interval.is_zero() {
                        self.push(Command::Fsync, stream).await?;
                    }
                    self.maybe_rotate(stream).await?;
                    self.maybe_hand_over(stream).await?;
                } else {
                    self.bytes += data.len() as u64 + 1;
                    self.chunk.extend_from_slice(&data);
                    self.chunk.extend_from_slice(b"\n");
                    if self.chunk.len() >= CHUNK_BYTES {
                        self.flush_chunk(stream).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn flush_chunk(&mut self, stream: &mut Option<ReplicationStream>) -> Result<()> {
        if !self.chunk.is_empty() {
            let chunk = self.chunk.split().freeze();
            self.push(Command::Body(chunk), stream).await?;
        }
        Ok(())
    }

    /// Hand a command to the writer; while its queue is full keep the server informed, so a
    /// slow disk never looks like a dead client.
    async fn push(
        &mut self,
        command: Command,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        let mut command = Some(command);
        loop {
            let sender = self.writer_sender();
            tokio::select! {
                permit = sender.reserve() => {
                    let permit = permit.map_err(|_| Error::backup("the writer thread has stopped"))?;
                    permit.send(command.take().expect("sent once"));
                    return Ok(());
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    // Drain events so a failure is seen and durable positions advance.
                    while let Ok(event) = self.writer.events.try_recv() {
                        Box::pin(self.on_event(event, stream)).await?;
                    }
                    self.send_status(stream, false).await;
                }
            }
        }
    }

    fn writer_sender(&self) -> tokio::sync::mpsc::Sender<Command> {
        self.writer.sender()
    }

    async fn on_event(
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
                self.active_has_data = false;
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
                self.active_has_data = false;
                if let Some(diff_name) = diff_name {
                    self.dump_globals_for(diff_name);
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
                let (request, old_chain) = self
                    .handing_over
                    .take()
                    .unwrap_or((Vec::new(), String::new()));
                self.active_has_data = report.copied_txns > 0;
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

    async fn maybe_rotate(&mut self, stream: &mut Option<ReplicationStream>) -> Result<()> {
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
    fn record_sequences_for_rotation(&mut self) {
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
    fn dump_globals_for(&self, sealed: DiffName) {
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
    fn check_new_chain(&mut self) {
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
    async fn maybe_hand_over(&mut self, stream: &mut Option<ReplicationStream>) -> Result<()> {
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

    fn answer(&self, answer: RotateAnswer) {
        if let Err(err) = control::write_answer(self.cfg.dir.root(), &answer) {
            ui::warning(&format!("could not answer the rotation request: {err}"));
        }
    }

    /// The connection is gone: an unfinished transaction will be sent again whole.
    async fn drop_open_transaction(
        &mut self,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        self.chunk.clear();
        if matches!(self.txn, Txn::Writing(_)) {
            self.push(Command::Abort, stream).await?;
        }
        self.txn = Txn::Idle;
        Ok(())
    }

    /// The position that may be reported as flushed now (see the module comment).
    fn flush_position(&mut self) -> Lsn {
        let durable = self
            .durable
            .unwrap_or(Lsn::INVALID)
            .max(self.cfg.chain_start);
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
    async fn ask_position(&mut self, stream: &mut Option<ReplicationStream>) {
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
    async fn send_status(&mut self, stream: &mut Option<ReplicationStream>, reply: bool) {
        let flush = self.flush_position();
        if let Some(s) = stream.as_mut() {
            let write = s.last_received().max(flush);
            if let Err(err) = s.send_status(write, flush, flush, reply).await {
                tracing::debug!("status update failed: {err}");
            }
        }
    }

    fn log_progress(&self, stream: Option<&ReplicationStream>) {
        let durable = self.durable.unwrap_or(self.cfg.chain_start);
        let lag = self.server_end.0.saturating_sub(durable.0);
        ui::say(&format!(
            "LSN {durable} durable, server at {}, lag {}; {} transactions ({}) written since start{}",
            self.server_end,
            ui::size(lag),
            self.txns,
            ui::size(self.bytes),
            if stream.is_none() {
                " (reconnecting)"
            } else {
                ""
            }
        ));
    }

    /// SIGTERM/SIGINT: abandon an unfinished transaction (the server resends it), make the
    /// rest durable, tell the server, end the stream cleanly. A second SIGINT exits at once;
    /// the next start cuts and skips whatever that leaves, so nothing is duplicated.
    async fn shutdown(
        &mut self,
        mut stream: Option<ReplicationStream>,
        signal: &str,
        int: &mut tokio::signal::unix::Signal,
    ) -> Result<()> {
        ui::say(&format!("Received {signal}: finishing"));
        let graceful = async {
            self.drop_open_transaction(&mut stream).await?;
            self.push(Command::Fsync, &mut stream).await?;
            // Wait for the fsync to land, then report it.
            while let Some(event) = self.writer.events.recv().await {
                let done = matches!(event, Event::Durable(_));
                self.on_event(event, &mut stream).await?;
                if done {
                    break;
                }
            }
            self.send_status(&mut stream, false).await;
            if let Some(s) = stream.take()
                && let Err(err) = s.finish(Duration::from_secs(5)).await
            {
                tracing::debug!("ending the stream: {err}");
            }
            Ok::<_, Error>(())
        };
        tokio::select! {
            r = graceful => r?,
            _ = int.recv() => {
                ui::warning("second interrupt: exiting at once (the next start resumes safely)");
                std::process::exit(4);
            }
        }
        ui::done(&format!(
            "Stopped; durable up to {}",
            self.durable.unwrap_or(self.cfg.chain_start)
        ));
        Ok(())
    }
}

async fn next_message(
    stream: &mut Option<ReplicationStream>,
) -> std::result::Result<ReplMessage, ReplicationError> {
    match stream.as_mut() {
        Some(s) => s.next_message().await,
        None => std::future::pending().await,
    }
}

fn is_trailer(data: &[u8], end_lsn: Lsn) -> bool {
    data.starts_with(TRAILER_PREFIX.as_bytes())
        && data.len() < 128
        && std::str::from_utf8(data)
            .ok()
            .and_then(|line| parse_trailer(line).ok())
            == Some(end_lsn)
}

/// The streamer's SQL session (for recording sequence values), reopened when the server
/// restarted under it.
struct SqlSession {
    params: ConnParams,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl SqlSession {
    /// Record every sequence's value into the stream; the WAL position right after it.
    async fn record_sequences(&self) -> Result<Lsn> {
        tracing::debug!("recording sequence values");
        let mut client = self.client.lock().await;
        for attempt in 0..2 {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                *client = Some(crate::pg::session::connect(&self.params).await?.client);
            }
            let c = client.as_ref().expect("connected above");
            let recorded = async {
                c.simple_query("SELECT wal2sql.snapshot_sequences()")
                    .await?;
                let row = c
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?;
                Ok::<_, tokio_postgres::Error>(row.get::<_, String>(0))
            }
            .await;
            match recorded {
                Ok(text) => {
                    return text
                        .parse::<Lsn>()
                        .map_err(|e| Error::backup(e.to_string()));
                }
                // A closed connection (server restart) is reopened once; anything else is real.
                Err(err) if attempt == 0 && c.is_closed() => {
                    tracing::debug!("sequence recording: {err}; reconnecting");
                    *client = None;
                }
                Err(err) => {
                    return Err(crate::pg::session::query_error(
                        "wal2sql.snapshot_sequences()",
                        &err,
                    ));
                }
            }
        }
        Err(Error::connection(
            "could not reach the server to record sequence values",
        ))
    }
}

/// Record every sequence's value into the stream (as its own transaction), in the background;
/// `done` hears the WAL position after the record (or `None` if recording failed).
fn snapshot_sequences(
    sql: std::sync::Arc<SqlSession>,
    done: Option<tokio::sync::mpsc::UnboundedSender<Option<Lsn>>>,
) {
    tokio::spawn(async move {
        let lsn = match sql.record_sequences().await {
            Ok(lsn) => Some(lsn),
            Err(err) => {
                ui::warning(&format!(
                    "could not record sequence values: {}",
                    err.message
                ));
                None
            }
        };
        if let Some(done) = done {
            let _ = done.send(lsn);
        }
    });
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
