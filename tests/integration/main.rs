//! The one integration-test binary: every test that runs the built `pg_scribe` or needs a real
//! PostgreSQL cluster lives in a module here and shares the harness.

mod harness;

mod attacks;
mod cli;
mod client_cert;
mod connection;
mod corpus;
mod init;
mod install;
mod new_chain;
mod ops;
mod parallel_base;
mod replication;
mod restore;
mod roundtrip;
mod s3;
mod s3_server;
mod status;
mod stream;
mod verify;
mod versions;
