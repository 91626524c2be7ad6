//! The streamer's disk side: one OS thread owns the chain's [`DiffWriter`] and does every write,
//! fsync and rotation, so the async side keeps answering the server while the disk is slow.
//! Commands arrive in order on a bounded channel (its bound is the streamer's memory bound:
//! [`QUEUE`] commands, each body at most [`super::CHUNK_BYTES`], so about 4 MB); results come
//! back as events.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::lsn::Lsn;
use crate::storage::backup_dir::{Chain, DiffName};
use crate::storage::diff_format::TxnHeader;
use crate::storage::error::ChainError;
use crate::storage::handover::{HandOver, hand_over};
use crate::storage::writer::{DiffWriter, Sealed};

/// Queue depth in commands; body chunks are at most [`super::CHUNK_BYTES`] (the streamer splits
/// larger ones, and the stream hands a large message over in pieces of that size), so this
/// bounds the bytes in flight.
pub const QUEUE: usize = 16;

#[derive(Debug)]
pub enum Command {
    Begin(TxnHeader),
    Body(Bytes),
    Commit,
    /// Cut the open transaction (the connection dropped; the server will send it again).
    Abort,
    Fsync,
    /// Seal `active.sql` under this name and continue in a fresh one.
    Rotate(Box<Chain>, DiffName),
    /// Move to a new chain starting at `cut` (see [`crate::storage::handover`]).
    HandOver {
        old: Box<Chain>,
        new: Box<Chain>,
        cut: Lsn,
    },
}

#[derive(Debug)]
pub enum Event {
    /// Everything committed up to this `end_lsn` is on disk.
    Durable(Option<Lsn>),
    Rotated(Sealed),
    HandedOver(HandOver),
    /// The writer stopped; nothing after the last `Durable` is on disk.
    Failed(ChainError),
}

pub struct WriterHandle {
    commands: mpsc::Sender<Command>,
    pub events: mpsc::UnboundedReceiver<Event>,
    thread: Option<std::thread::JoinHandle<Option<Lsn>>>,
}

impl WriterHandle {
    pub fn spawn(writer: DiffWriter) -> WriterHandle {
        let (commands, rx) = mpsc::channel(QUEUE);
        let (events_tx, events) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("pg_scribe-writer".into())
            .spawn(move || run(writer, rx, events_tx))
            .expect("spawn writer thread");
        WriterHandle {
            commands,
            events,
            thread: Some(thread),
        }
    }

    /// The queue; reserve a place before sending so waiting for one can race timers.
    pub fn sender(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// Stop the thread after it has done everything queued; returns the durable `end_lsn`.
    pub async fn close(mut self) -> Option<Lsn> {
        drop(self.commands);
        let thread = self.thread.take()?;
        tokio::task::spawn_blocking(move || thread.join().ok().flatten())
            .await
            .ok()
            .flatten()
    }
}

/// The next command; when none is waiting, first hand the buffer to the OS, so what was
/// received is in the file (page cache) promptly instead of waiting for the next fsync. A
/// failure there (a full disk) is the writer's first error and ends it like any other.
fn next(
    writer: &mut DiffWriter,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<Option<Command>, ChainError> {
    match commands.try_recv() {
        Ok(command) => Ok(Some(command)),
        Err(mpsc::error::TryRecvError::Disconnected) => Ok(None),
        Err(mpsc::error::TryRecvError::Empty) => {
            writer.flush_to_os()?;
            Ok(commands.blocking_recv())
        }
    }
}

fn run(
    mut writer: DiffWriter,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) -> Option<Lsn> {
    loop {
        let command = match next(&mut writer, &mut commands) {
            Ok(Some(command)) => command,
            Ok(None) => break,
            Err(err) => {
                let _ = events.send(Event::Failed(err));
                return writer.durable_lsn();
            }
        };
        let result = match command {
            Command::Begin(header) => writer.begin(&header),
            Command::Body(bytes) => writer.write_body(&bytes),
            Command::Commit => writer.commit().map(|_| ()),
            Command::Abort => writer.abort(),
            Command::Fsync => writer.fsync().map(|lsn| {
                let _ = events.send(Event::Durable(lsn));
            }),
            Command::Rotate(chain, name) => writer.rotate(&chain, name).map(|sealed| {
                let _ = events.send(Event::Rotated(sealed));
            }),
            Command::HandOver { old, new, cut } => {
                hand_over(&mut writer, &old, &new, cut).map(|(next, report)| {
                    writer = next;
                    let _ = events.send(Event::HandedOver(report));
                })
            }
        };
        if let Err(err) = result {
            let _ = events.send(Event::Failed(err));
            return writer.durable_lsn();
        }
    }
    // Closing: make what was committed durable, drop an unfinished transaction.
    match writer.close() {
        Ok(lsn) => {
            let _ = events.send(Event::Durable(lsn));
            lsn
        }
        Err(err) => {
            let _ = events.send(Event::Failed(err));
            None
        }
    }
}
