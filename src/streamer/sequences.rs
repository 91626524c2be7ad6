//! Sequence values in the stream: wal2sql records them as a transaction of `setval` lines when
//! asked, periodically and before each rotation, over the streamer's own SQL session.

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::conninfo::ConnParams;
use crate::ui;

/// The streamer's SQL session (for recording sequence values), reopened when the server
/// restarted under it.
pub(super) struct SqlSession {
    pub(super) params: ConnParams,
    pub(super) client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl SqlSession {
    /// Record every sequence's value into the stream; the WAL position right after it.
    pub(super) async fn record_sequences(&self) -> Result<Lsn> {
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
pub(super) fn snapshot_sequences(
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
