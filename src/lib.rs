//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.

pub mod actions;
pub mod checks;
pub mod cli;
pub mod conninfo;
pub mod error;
pub mod logging;
pub mod sql;
pub mod ui;
