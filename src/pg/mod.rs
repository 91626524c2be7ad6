//! The PostgreSQL layer: libpq-compatible connection settings, TLS, SQL sessions, the
//! in-process replication client, and the child programs (pg_dump, pg_dumpall, psql,
//! pg_restore).

pub(crate) mod attempt;
pub mod conninfo;
pub(crate) mod pg_restore;
pub(crate) mod programs;
pub(crate) mod psql;
pub(crate) mod quote;
pub mod replication;
pub mod session;
pub mod tls;
