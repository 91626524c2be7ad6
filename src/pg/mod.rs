//! The PostgreSQL layer: libpq-compatible connection settings, TLS, SQL sessions, the
//! in-process replication client, and the child programs (pg_dump, pg_dumpall, psql).

pub mod attempt;
pub mod conninfo;
pub mod programs;
pub mod psql;
pub mod quote;
pub mod replication;
pub mod session;
pub mod tls;
