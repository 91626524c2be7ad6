//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod conninfo;
pub mod replication;
pub mod tls;
