//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod actions;
pub mod backup_dir;
pub mod base;
pub mod chain_error;
pub mod checks;
pub mod cli;
pub mod compress;
pub mod conninfo;
pub mod diff_format;
pub mod dump;
pub mod durable;
pub mod error;
pub mod handover;
pub mod logging;
pub mod lsn;
pub mod metadata;
pub mod pidfile;
pub mod replication;
pub mod restore;
pub mod sql;
pub mod streamer;
pub mod tls;
pub mod ui;
pub mod writer;
