//! pg_scribe: incremental, logical (SQL-text) backups for PostgreSQL.
//!
//! The folders are the layers (doc/architecture.md); dependencies point down:
//! `actions` (one per CLI action) on top of the `streamer` and the `replay` engine, which rest on
//! `pg` (connections, replication protocol, child programs) and `storage` (the backup directory
//! and every file in it). `cli`, `error`, `ui`, `logging` and `lsn` are shared by all of them;
//! `generate` turns the CLI definition into the man page and shell completions for the build.

pub mod actions;
pub mod cli;
pub mod error;
pub mod generate;
pub mod logging;
pub mod lsn;
pub mod pg;
pub mod replay;
pub mod storage;
pub mod streamer;
pub mod ui;
