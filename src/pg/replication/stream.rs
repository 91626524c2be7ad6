//! The CopyBoth phase after START_REPLICATION: decoded messages in, standby status updates out,
//! and the clean shutdown handshake (CopyDone, bounded drain, Terminate).
//!
//! Policy stays with the caller. In particular, when a keepalive arrives with
//! `reply_requested`, answer it at once with [`ReplicationStream::send_status`]: the server asks
//! when half of `wal_sender_timeout` has passed without news, and during its own fast shutdown,
//! which otherwise waits for the full timeout. A typical loop:
//!
//! ```ignore
//! loop {
//!     tokio::select! {
//!         biased;
//!         _ = shutdown.recv() => break,
//!         _ = status_timer.tick() => stream.send_status(written, flushed, flushed, false).await?,
//!         msg = stream.next_message() => match msg? {
//!             ReplMessage::XLogData(x) => writer.push(x).await?,
//!             ReplMessage::Keepalive(k) if k.reply_requested => {
//!                 stream.send_status(written, flushed, flushed, false).await?
//!             }
//!             ReplMessage::Keepalive(_) => {}
//!         },
//!     }
//! }
//! stream.finish(Duration::from_secs(10)).await?;
//! ```

use std::time::Duration;

use postgres_protocol::message::{backend, frontend};

use super::codec::{
    Lsn, PgTimestamp, ReplMessage, StandbyStatusUpdate, encode_standby_status_message,
    parse_copy_data,
};
use super::conn::{Frame, ReplConn, server_error};
use super::error::ReplicationError;

type Result<T> = std::result::Result<T, ReplicationError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    /// The server sent CopyDone or CommandComplete: no more data will come.
    ServerEnded,
    /// A fatal error or EOF: the connection is unusable.
    Broken,
}

/// A running logical replication stream. Obtained from [`ReplConn::start_replication`].
#[derive(Debug)]
pub struct ReplicationStream {
    conn: ReplConn,
    state: State,
    last_received: Lsn,
}

impl ReplicationStream {
    pub(crate) fn new(conn: ReplConn) -> ReplicationStream {
        ReplicationStream {
            conn,
            state: State::Streaming,
            last_received: Lsn::INVALID,
        }
    }

    /// The next XLogData or keepalive. Notices and parameter changes are handled on the way.
    ///
    /// Cancellation-safe: dropping the future (e.g. in `select!`) loses no data; the next call
    /// continues where it stopped. Each XLogData payload is handed over as it arrives, so
    /// memory use does not depend on transaction size.
    ///
    /// Errors: a server ErrorResponse ([`ReplicationError::Server`], e.g. 57P01 when the
    /// walsender is terminated), EOF, or [`ReplicationError::StreamEnded`] when the server
    /// finished the stream (it does so at shutdown once our flush position has caught up).
    pub async fn next_message(&mut self) -> Result<ReplMessage> {
        match self.state {
            State::Streaming => {}
            State::ServerEnded => return Err(ReplicationError::StreamEnded),
            State::Broken => return Err(ReplicationError::UnexpectedEof),
        }
        loop {
            let frame = match self.conn.read_frame().await {
                Ok(f) => f,
                Err(e) => {
                    self.state = State::Broken;
                    return Err(e);
                }
            };
            let Some(frame) = self.conn.handle_async(frame) else {
                continue;
            };
            match frame {
                Frame::Message(backend::Message::CopyData(body)) => {
                    let msg = parse_copy_data(body.into_bytes());
                    if msg.is_err() {
                        self.state = State::Broken;
                    }
                    let msg = msg?;
                    let pos = match &msg {
                        ReplMessage::XLogData(x) => x.wal_end.max(x.data_start),
                        ReplMessage::Keepalive(k) => k.wal_end,
                    };
                    self.last_received = self.last_received.max(pos);
                    return Ok(msg);
                }
                Frame::Message(backend::Message::ErrorResponse(body)) => {
                    self.state = State::Broken;
                    return Err(server_error(body));
                }
                Frame::Message(
                    backend::Message::CopyDone | backend::Message::CommandComplete(_),
                ) => {
                    self.state = State::ServerEnded;
                    return Err(ReplicationError::StreamEnded);
                }
                other => {
                    self.state = State::Broken;
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message in replication stream: {other:?}"
                    )));
                }
            }
        }
    }

    /// Sends a standby status update stamped with the current time. For a logical slot,
    /// `flush` becomes the slot's `confirmed_flush_lsn`: never report more than is durable.
    /// `reply_requested` asks the server for an immediate keepalive.
    ///
    /// If cancelled, the update stays buffered and is completed by the next send.
    pub async fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        apply: Lsn,
        reply_requested: bool,
    ) -> Result<()> {
        self.send_status_update(&StandbyStatusUpdate {
            write,
            flush,
            apply,
            client_time: PgTimestamp::now(),
            reply_requested,
        })
        .await
    }

    /// [`send_status`](Self::send_status) with every field chosen by the caller.
    pub(crate) async fn send_status_update(&mut self, update: &StandbyStatusUpdate) -> Result<()> {
        encode_standby_status_message(update, self.conn.write_buf());
        self.conn.flush().await
    }

    /// The highest WAL position seen in any message (XLogData or keepalive) so far.
    pub fn last_received(&self) -> Lsn {
        self.last_received
    }

    /// Bytes currently allocated for the receive buffer: bounded by the largest single message
    /// plus a read chunk, never by transaction size (for monitoring and the memory test).
    pub fn receive_buffer_capacity(&self) -> usize {
        self.conn.read_buffer_capacity()
    }

    /// The walsender's process id.
    pub fn backend_pid(&self) -> i32 {
        self.conn.backend_pid()
    }

    /// The connection underneath (server parameters, TLS, authentication method).
    pub fn connection(&self) -> &ReplConn {
        &self.conn
    }

    /// Ends the stream cleanly: CopyDone, then drain what the server still sends (CopyData,
    /// including a keepalive after the server's own CopyDone, is ignored) until ReadyForQuery
    /// or EOF, for at most `timeout`, then Terminate. Send the final status update *before*
    /// calling this. A server error met while draining is returned after the connection is
    /// closed; so is [`ReplicationError::Timeout`], which does not endanger any data.
    pub async fn finish(mut self, timeout: Duration) -> Result<()> {
        if self.state == State::Broken {
            return Ok(());
        }
        frontend::copy_done(self.conn.write_buf());
        let server_ended = self.state == State::ServerEnded;
        let conn = &mut self.conn;
        let drain = async {
            // After the server ended the stream it may already have closed the socket; then
            // there is nothing left to say goodbye to.
            if let Err(e) = conn.flush().await {
                return if server_ended { Ok(()) } else { Err(e) };
            }
            let mut error = None;
            loop {
                let frame = match conn.read_frame().await {
                    Ok(f) => f,
                    Err(ReplicationError::UnexpectedEof) => return error.map_or(Ok(()), Err),
                    Err(e) => return Err(error.unwrap_or(e)),
                };
                match conn.handle_async(frame) {
                    Some(Frame::Message(backend::Message::ReadyForQuery(_))) => {
                        return error.map_or(Ok(()), Err);
                    }
                    Some(Frame::Message(backend::Message::ErrorResponse(body))) => {
                        error = Some(server_error(body));
                    }
                    _ => {}
                }
            }
        };
        let result = match tokio::time::timeout(timeout, drain).await {
            Ok(r) => r,
            Err(_) => Err(ReplicationError::Timeout(
                "waiting for the server to end the replication stream",
            )),
        };
        self.conn.close().await;
        result
    }
}
