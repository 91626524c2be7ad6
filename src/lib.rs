//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod chain_error;
pub mod conninfo;
pub mod diff_format;
pub mod lsn;
