//! The one integration-test binary: every test that runs the built `pg_scribe` or needs a real
//! PostgreSQL cluster lives in a module here and shares the harness.

mod harness;

mod attacks;
mod cli;
mod connection;
mod corpus;
mod init;
mod new_chain;
mod replication;
mod restore;
mod roundtrip;
mod status;
mod stream;
