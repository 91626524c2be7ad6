//! The replay engine: differentials read back and applied to a target database, transaction by
//! transaction, with statement batching, row-count checks, trigger neutralisation and sequences.

pub mod engine;
pub mod failure;
pub mod guard;
pub mod progress;
pub mod sequences;
pub mod session;
pub mod statements;
