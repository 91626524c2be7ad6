//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod backup_dir;
pub mod chain_error;
pub mod compress;
pub mod conninfo;
pub mod diff_format;
pub mod durable;
pub mod lsn;
pub mod metadata;
pub mod pidfile;
pub mod writer;
