//! The in-process logical replication client that replaces pg_recvlogical: a pure protocol
//! codec, a connection with TLS and authentication, the replication commands, and the CopyBoth
//! stream with typed, classified errors. SQL connections go through tokio-postgres instead,
//! because a walsender speaks only the simple-query protocol.

pub mod codec;
pub mod commands;
pub mod conn;
pub mod error;
pub mod stream;

pub use codec::{Lsn, PgTimestamp, PrimaryKeepalive, ReplMessage, StandbyStatusUpdate, XLogData};
pub use commands::{CreatedSlot, QueryResult, SnapshotAction, SystemIdentification};
pub use conn::{AuthMethod, ReplConn};
pub use error::{DbError, ReplicationError};
pub use stream::ReplicationStream;

/// The output plugin pg_scribe uses unless told otherwise.
pub(crate) const DEFAULT_PLUGIN: &str = "wal2sql";
