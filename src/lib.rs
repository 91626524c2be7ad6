//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod conninfo;
