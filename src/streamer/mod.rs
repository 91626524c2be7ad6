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
//! - rotation (SIGHUP, `--rotate-diff`, `--rotate-every`) happens between transactions only;
//! - retryable failures (network, server restart, slot briefly held by a dead walsender)
//!   reconnect with backoff; anything else stops with the spec's exit code.
//!
//! One task runs the protocol; one OS thread ([`writer_thread`]) does the disk I/O.

mod events;
mod notify;
mod report;
mod rotation;
mod sequences;
pub mod writer_thread;

pub use rotation::RotateEvery;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{MissedTickBehavior, interval_at};

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::conninfo::ConnParams;
use crate::pg::replication::{ReplConn, ReplMessage, ReplicationError, ReplicationStream};
use crate::storage::backup_dir::{BackupDir, Chain, DiffName};
use crate::storage::compress::Compression;
use crate::storage::diff_format::{
    MessageCheck, TRAILER_PREFIX, TxnHeader, check_message, parse_trailer,
};
use crate::storage::writer::DiffWriter;
use crate::ui;

use crate::storage::control::{self, RotateAnswer};
use sequences::{SqlSession, snapshot_sequences};
use writer_thread::{Command, Event, WriterHandle};

/// How each statement of a sequence record (`wal2sql.snapshot_sequences()`) starts: a transaction
/// of only these changes no row. Roles without the right to that function cannot make one.
const SEQUENCE_RECORD: &[u8] = b"SELECT pg_catalog.setval(";
/// Statement text is handed to the writer in chunks of about this size.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How often the sequence values are recorded into the stream.
const SEQUENCE_SNAPSHOT_EVERY: Duration = Duration::from_secs(300);
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// How long a rotation waits for the sequence values to be recorded and streamed back before it
/// seals without them (they then open the next differential). A busy stream can lag far behind
/// the server; a requester should not wait on that.
const SEQUENCE_WAIT: Duration = Duration::from_secs(10);

/// How long the stream may stay silent before the connection is given up for dead (a path that
/// drops packets without a reset never fails a read): six status intervals, within 10–60 s, like
/// the server's `wal_receiver_timeout`. After a third of it the server is asked for a keepalive,
/// which a live server sends at once.
fn receive_timeout(status_interval: Duration) -> Duration {
    (status_interval * 6).clamp(Duration::from_secs(10), Duration::from_secs(60))
}
/// Seconds between progress lines instead of [`PROGRESS_EVERY`]; undocumented, for tests.
const PROGRESS_ENV: &str = "PG_SCRIBE_PROGRESS_INTERVAL";

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
    /// `--rotate-every`: seal on a schedule or at a size, besides on request.
    pub rotate_every: RotateEvery,
    /// `--compress`: how the seals nobody asked for (`--rotate-every`, a bare SIGHUP) are
    /// compressed; a `--rotate-diff` requester compresses its own.
    pub compress: Option<Compression>,
    /// The size of `active.sql` when streaming starts (counts toward `--rotate-every`'s size).
    pub active_len: u64,
    pub plugin_options: Vec<(String, String)>,
    /// For `pg_dumpall` of the right version at each rotation.
    pub server_major: u32,
}

/// Sequence values are recorded into the stream just before a rotation, so every sealed diff
/// ends with them; the rotation waits until the stream has passed that record.
enum Barrier {
    None,
    /// The recording query is running (its generation, and since when).
    Recording(u64, Instant),
    /// Rotate once the stream has reached this position (recording started at the instant).
    At(Lsn, Instant),
}

/// A sequence record's outcome, tagged with the generation of the barrier that asked for it (an
/// abandoned barrier's late answer must not satisfy a newer one).
type Recorded = (u64, Option<Lsn>);

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
    /// The framing check of a message arriving in pieces, between its pieces.
    piece_check: Option<MessageCheck>,
    /// `end_lsn` of the last transaction handed to the writer (in the file, maybe not durable).
    written: Option<Lsn>,
    /// `end_lsn` of the last transaction known to be on disk.
    durable: Option<Lsn>,
    /// The server's WAL end as last told by a keepalive.
    server_end: Lsn,
    /// What `.pg_scribe.flushed` holds.
    flushed_file: Lsn,
    /// When the server was last heard from, or when we last stopped reading for our own
    /// reasons (a full writer queue): the receive timeout counts only the server's silence.
    last_heard: tokio::time::Instant,
    /// The start of the chain whose files are complete below it: the flush position is never
    /// below it. Moves to a new chain's start only once the hand-over is done (the old chain's
    /// tail fsynced), not when it is queued.
    reported_floor: Lsn,
    active_has_data: bool,
    /// A rotation asked for (request id if from `--rotate-diff`) and not yet done.
    rotate_wanted: Option<Vec<String>>,
    /// A rotation handed to the writer, waiting for its event.
    rotating: Option<Vec<String>>,
    barrier: Barrier,
    barrier_generation: u64,
    barrier_tx: tokio::sync::mpsc::UnboundedSender<Recorded>,
    answers: control::Answers,
    sql: std::sync::Arc<SqlSession>,
    reply_after_fsync: bool,
    last_position_request: Option<Instant>,
    /// A newer complete chain to move to, and where it starts.
    next_chain: Option<(Chain, Lsn)>,
    /// The rotation request the hand-over will answer.
    handover_request: Vec<String>,
    /// A hand-over handed to the writer: (request ids, old chain ID, `written` when it was
    /// queued: later transactions went to the new chain).
    handing_over: Option<(Vec<String>, String, Option<Lsn>)>,
    txns: u64,
    bytes: u64,
    /// `bytes` when the open transaction began (what it adds to `active.sql` at its commit).
    txn_start_bytes: u64,
    /// Bytes in `active.sql`: those at start plus each committed transaction's, back to zero when
    /// a seal is queued (transactions after it go to the fresh file). For `--rotate-every`.
    active_len: u64,
    /// When the last seal (or hand-over) was queued, or streaming started.
    last_seal: tokio::time::Instant,
    /// Whether the open transaction has more than sequence values (see [`SEQUENCE_RECORD`]).
    txn_changes: bool,
    /// Whether `active.sql` holds a transaction with more than sequence values: `--rotate-every`
    /// seals only then, so an idle database gets no diffs of the periodic sequence record alone.
    active_has_changes: bool,
}

/// The streamer's signals. Installed before the pidfile is taken: from then on `--rotate-diff`
/// may send SIGHUP, whose default action would kill a daemon still starting up; caught early, a
/// signal waits until the main loop serves it.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        Ok(Signals {
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            hup: sig(SignalKind::hangup())?,
        })
    }
}

/// Run until SIGTERM/SIGINT (Ok) or a fatal error.
pub async fn run(
    cfg: Config,
    writer: DiffWriter,
    sql: Option<tokio_postgres::Client>,
    signals: Signals,
) -> Result<()> {
    let (mut streamer, barrier_rx) = Streamer::new(cfg, writer, sql);
    let result = streamer.main_loop(barrier_rx, signals).await;
    if let Err(err) = &result {
        streamer.fail_requests(err);
    }
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
    fn new(
        cfg: Config,
        writer: DiffWriter,
        sql: Option<tokio_postgres::Client>,
    ) -> (Streamer, tokio::sync::mpsc::UnboundedReceiver<Recorded>) {
        let flushed_file = control::read_flushed(cfg.dir.root()).unwrap_or(Lsn::INVALID);
        let (barrier_tx, barrier_rx) = tokio::sync::mpsc::unbounded_channel();
        let streamer = Streamer {
            writer: WriterHandle::spawn(writer),
            txn: Txn::Idle,
            chunk: BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024),
            piece_check: None,
            written: cfg.resume,
            durable: cfg.resume,
            server_end: Lsn::INVALID,
            flushed_file,
            reported_floor: cfg.chain_start,
            last_heard: tokio::time::Instant::now(),
            active_has_data: cfg.active_has_data,
            rotate_wanted: None,
            rotating: None,
            barrier: Barrier::None,
            barrier_generation: 0,
            barrier_tx,
            answers: control::Answers::default(),
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
            txn_start_bytes: 0,
            active_len: cfg.active_len,
            last_seal: rotation::last_seal_of(&cfg.chain),
            txn_changes: false,
            // What a previous run left is not read back; if anything, count it as changes.
            active_has_changes: cfg.active_has_data,
            cfg,
        };
        (streamer, barrier_rx)
    }

    async fn main_loop(
        &mut self,
        mut barrier_rx: tokio::sync::mpsc::UnboundedReceiver<Recorded>,
        signals: Signals,
    ) -> Result<()> {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
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
        let progress_every = std::env::var(PROGRESS_ENV)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(PROGRESS_EVERY, Duration::from_secs);
        let mut progress_tick = every(progress_every);
        let notify = notify::Notifier::from_env();
        let mut watchdog_tick = every(
            notify
                .as_ref()
                .and_then(|n| n.watchdog_every())
                .unwrap_or(Duration::ZERO),
        );
        let mut ready = false;

        let mut stream: Option<ReplicationStream> = None;
        let mut backoff = Duration::from_secs(1);
        let mut reconnect_at = tokio::time::Instant::now();
        let mut attempts = 0u32;
        let mut lost = false;
        let mut last_progress = (self.written, Instant::now(), self.txns);
        let timeout = receive_timeout(self.cfg.status_interval);
        self.last_heard = tokio::time::Instant::now();
        let mut liveness_tick = tokio::time::interval(timeout / 6);
        liveness_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A chain made by --new-chain while no streamer ran: move on as soon as the stream
        // reaches it.
        self.check_new_chain();

        loop {
            // Read before the select, which borrows `self` for its branches.
            let seal_at = self.seal_due_at();
            tokio::select! {
                biased;
                _ = term.recv() => {
                    self.notify_stopping(notify.as_ref(), "SIGTERM");
                    return self.shutdown(stream, "SIGTERM", &mut int).await;
                }
                _ = int.recv() => {
                    self.notify_stopping(notify.as_ref(), "SIGINT");
                    return self.shutdown(stream, "SIGINT", &mut int).await;
                }
                _ = hup.recv() => {
                    // Every waiting request is answered by the next rotation (several
                    // --rotate-diff may overlap, e.g. from cron).
                    let ids = control::take_requests(self.cfg.dir.root());
                    self.check_new_chain();
                    self.rotate_wanted.get_or_insert_with(Vec::new).extend(ids);
                    self.record_sequences_for_rotation();
                    self.maybe_rotate(&mut stream).await?;
                }
                Some((generation, recorded)) = barrier_rx.recv() => {
                    tracing::debug!("sequence values recorded up to {recorded:?}");
                    if let Barrier::Recording(current, since) = self.barrier
                        && current == generation
                    {
                        self.barrier = match recorded {
                            Some(lsn) => Barrier::At(lsn, since),
                            None => Barrier::None,
                        };
                        self.maybe_rotate(&mut stream).await?;
                    }
                }
                event = self.writer.events.recv() => {
                    let Some(event) = event else {
                        return Err(self.writer_stopped().await);
                    };
                    self.on_event(event, &mut stream).await?;
                    // Requests that came during a rotation are served by the next one.
                    self.maybe_rotate(&mut stream).await?;
                }
                // Timers before the stream: a stream that always has data must not starve them.
                _ = tokio::time::sleep_until(seal_at.unwrap_or_else(far_future)), if seal_at.is_some() => {
                    self.maybe_rotate_on_schedule(&mut stream).await?;
                }
                _ = status_tick.tick() => {
                    self.check_new_chain();
                    self.maybe_hand_over(&mut stream).await?;
                    // An idle stream still needs the sequence wait bounded.
                    self.maybe_rotate(&mut stream).await?;
                    self.send_status(&mut stream, false).await;
                    if let Some(n) = &notify {
                        n.status(&self.notify_text(stream.is_some()));
                    }
                }
                _ = watchdog_tick.tick(), if notify.is_some() => {
                    if let Some(n) = &notify {
                        n.watchdog();
                    }
                }
                _ = liveness_tick.tick(), if stream.is_some() => {
                    let silent = self.last_heard.elapsed();
                    if silent >= timeout {
                        ui::warning(&format!(
                            "no message from the server for {} s: the connection is dead; reconnecting",
                            silent.as_secs()
                        ));
                        stream = None;
                        lost = true;
                        self.drop_open_transaction(&mut stream).await?;
                        reconnect_at = tokio::time::Instant::now();
                    } else if silent >= timeout / 3 {
                        // Bounded by the socket: a dead path fills the send buffer, then blocks.
                        let _ = tokio::time::timeout(Duration::from_secs(1), self.send_status(&mut stream, true)).await;
                    }
                }
                _ = fsync_tick.tick() => {
                    if self.written > self.durable {
                        self.push(Command::Fsync, &mut stream).await?;
                    }
                }
                _ = sequence_tick.tick() => snapshot_sequences(self.sql.clone(), None),
                _ = progress_tick.tick() => {
                    if last_progress.0 != self.written || last_progress.1.elapsed() > Duration::from_secs(3600) {
                        let secs = last_progress.1.elapsed().as_secs_f64().max(0.001);
                        let rate = (self.txns - last_progress.2) as f64 / secs;
                        self.log_progress(stream.as_ref(), rate);
                        last_progress = (self.written, Instant::now(), self.txns);
                    }
                }
                _ = tokio::time::sleep_until(reconnect_at), if stream.is_none() => {
                    attempts += 1;
                    // A path that drops packets makes a connection attempt hang: bound it.
                    let attempt = match tokio::time::timeout(timeout, self.connect()).await {
                        Ok(r) => r,
                        Err(_) => Err(ReplicationError::Timeout("connecting to the server")),
                    };
                    match attempt {
                        Ok(s) => {
                            self.last_heard = tokio::time::Instant::now();
                            if std::mem::take(&mut lost) {
                                ui::say(&format!("Reconnected; streaming from {}", self.start_lsn()));
                            } else if !ready {
                                ui::say(&format!("Streaming started at {}", self.start_lsn()));
                            }
                            if let Some(n) = &notify {
                                if ready {
                                    n.status(&self.notify_text(true));
                                } else {
                                    n.ready(&self.notify_text(true));
                                }
                            }
                            ready = true;
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
                    if msg.is_ok() {
                        self.last_heard = tokio::time::Instant::now();
                    }
                    match msg {
                        Ok(ReplMessage::XLogData(x)) if x.continued || x.continues => {
                            self.on_piece(x.data, x.continues, &mut stream).await?
                        }
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
        let mut stream = conn
            .start_replication(&self.cfg.slot, self.start_lsn(), &options)
            .await?;
        // A row with a value of hundreds of megabytes is one message: take it in pieces.
        stream.split_messages_over(CHUNK_BYTES);
        Ok(stream)
    }

    /// A piece of one large wal2sql message (a statement with a huge value): statement text,
    /// handed on as it arrives so memory does not grow with the value.
    async fn on_piece(
        &mut self,
        data: Bytes,
        more: bool,
        stream: &mut Option<ReplicationStream>,
    ) -> Result<()> {
        match &self.txn {
            Txn::Idle => Err(Error::backup(format!(
                "unexpected message from wal2sql outside a transaction: a statement piece of {} bytes",
                data.len()
            ))),
            Txn::Skipping(_) => Ok(()),
            Txn::Writing(header) => {
                let xid = header.xid;
                let check = self.piece_check.get_or_insert_with(MessageCheck::default);
                let checked = check.feed(&data);
                let checked = match checked {
                    Ok(()) if !more => self.piece_check.take().map_or(Ok(()), MessageCheck::finish),
                    other => other,
                };
                checked.map_err(|e| framing_error(xid, &e, &data))?;
                self.txn_changes = true;
                self.bytes += data.len() as u64;
                self.chunk.extend_from_slice(&data);
                if !more {
                    self.bytes += 1;
                    self.chunk.extend_from_slice(b"\n");
                }
                if self.chunk.len() >= CHUNK_BYTES {
                    self.flush_chunk(stream).await?;
                }
                Ok(())
            }
        }
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
                    self.txn_start_bytes = self.bytes;
                    self.txn_changes = false;
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
                    // The header and trailer lines are not in `bytes`: about 2 × 100 bytes.
                    self.active_len += self.bytes - self.txn_start_bytes + 200;
                    self.active_has_changes |= self.txn_changes;
                    if self.cfg.fsync_interval.is_zero() {
                        self.push(Command::Fsync, stream).await?;
                    }
                    self.maybe_rotate(stream).await?;
                    self.maybe_rotate_on_schedule(stream).await?;
                    self.maybe_hand_over(stream).await?;
                } else {
                    check_message(&data).map_err(|e| framing_error(header.xid, &e, &data))?;
                    self.txn_changes |= !data.starts_with(SEQUENCE_RECORD);
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

    /// Hand the collected statement text to the writer in commands of at most [`CHUNK_BYTES`],
    /// so the writer's queue is bounded in bytes, not only in commands.
    async fn flush_chunk(&mut self, stream: &mut Option<ReplicationStream>) -> Result<()> {
        while !self.chunk.is_empty() {
            let n = self.chunk.len().min(CHUNK_BYTES);
            let piece = self.chunk.split_to(n).freeze();
            self.push(Command::Body(piece), stream).await?;
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
                    let Ok(permit) = permit else {
                        // The thread stopped: it said why in its last event.
                        return Err(self.writer_stopped().await);
                    };
                    permit.send(command.take().expect("sent once"));
                    return Ok(());
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    // The stream is not being read meanwhile: not the server's silence.
                    self.last_heard = tokio::time::Instant::now();
                    // Drain events so a failure is seen and durable positions advance.
                    while let Ok(event) = self.writer.events.try_recv() {
                        Box::pin(self.on_event(event, stream)).await?;
                    }
                    self.send_status(stream, false).await;
                }
            }
        }
    }

    /// The writer thread is gone: its first error (with detail and hint), from the events it
    /// left, whichever path noticed that it stopped.
    async fn writer_stopped(&mut self) -> Error {
        let mut none = None;
        while let Some(event) = self.writer.events.recv().await {
            if let Err(err) = Box::pin(self.on_event(event, &mut none)).await {
                return err;
            }
        }
        Error::backup("the writer thread stopped unexpectedly")
    }

    fn writer_sender(&self) -> tokio::sync::mpsc::Sender<Command> {
        self.writer.sender()
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

/// Whether `active.sql` holds a transaction after a seal (or switch) that covered everything
/// up to `sealed`: decided by position, since transactions queued behind the seal are written
/// to the fresh file before the streamer hears the seal is done.
fn holds_after(written: Option<Lsn>, sealed: Option<Lsn>) -> bool {
    written > sealed
}

fn is_trailer(data: &[u8], end_lsn: Lsn) -> bool {
    data.starts_with(TRAILER_PREFIX.as_bytes())
        && data.len() < 128
        && std::str::from_utf8(data)
            .ok()
            .and_then(|line| parse_trailer(line).ok())
            == Some(end_lsn)
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600 * 24 * 365)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// A wal2sql message that breaks the framing rules (doc/security.md): never written.
fn framing_error(xid: u32, err: &crate::storage::diff_format::MarkerError, data: &[u8]) -> Error {
    Error::backup(format!(
        "unexpected message from wal2sql in transaction {xid}: {err}"
    ))
    .with_detail(format!(
        "Message: {}",
        truncate(&String::from_utf8_lossy(&data[..data.len().min(400)]), 200)
    ))
    .with_hint("The wal2sql on the server must be the version this pg_scribe was built with.")
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
