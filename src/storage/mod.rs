//! The storage layer: the backup directory and every file in it — chains and their names, the
//! differential format, durable writes, compression, metadata, the pidfile and the control files
//! beside it, the transaction-aware writer of `active.sql` and the hand-over between chains. Nothing here talks to a server.

pub mod backup_dir;
pub mod compress;
pub(crate) mod control;
pub mod diff_format;
pub(crate) mod durable;
pub(crate) mod error;
pub mod expire;
pub(crate) mod handover;
pub mod manifest;
pub mod metadata;
pub mod object;
pub mod pidfile;
pub mod sealed;
pub(crate) mod space;
pub mod verify;
pub(crate) mod writer;
