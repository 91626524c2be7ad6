//! One module per action of the CLI (README.md); [`run`] dispatches a validated invocation to
//! it. Each action returns how the process should exit, or an error rendered once by `main`.
//! `common.rs` is the preamble several actions share, `base.rs` a chain's base (init and
//! new-chain), `checks.rs` init's validation of the server, `expire.rs` retention (also run by
//! new-chain).

mod base;
mod checks;
mod common;
mod expire;
mod init;
mod new_chain;
mod remote;
mod restore;
mod rotate;
mod start;
mod status;
mod verify;

use crate::cli::{Action, Invocation};
use crate::error::Result;
use crate::pg::conninfo::Environment;

/// How a successful run ends (errors carry their own exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `--status` found something to warn about (exit 10).
    Warnings,
    /// `--status --format=nagios`: the plugin's own exit code (0 to 3).
    Nagios(u8),
    /// `--verify` found a damaged chain (exit 4, like a backup error).
    Damaged,
    /// `--status` found a critical problem: 3 (the slot lost its WAL) or 4.
    Critical(u8),
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Warnings => 10,
            Outcome::Nagios(code) => code,
            Outcome::Damaged => 4,
            Outcome::Critical(code) => code,
        }
    }
}

pub async fn run(invocation: Invocation) -> Result<Outcome> {
    if let Some(url) = remote::url_of(&invocation) {
        return remote::run(invocation, url).await;
    }

    dispatch(&invocation).await
}

/// Runs the action on a local backup directory (for object storage: the spool or a view).
async fn dispatch(inv: &Invocation) -> Result<Outcome> {
    // Start, rotate and new-chain take the database from the chain's metadata (rotate needs no
    // server at all); the others resolve the connection first, so a bad connection string is
    // reported before anything else happens.
    let env = Environment::from_process();
    match inv.action {
        Action::Start => start::run(inv).await,
        Action::RotateDiff => rotate::run(inv).await,
        Action::NewChain => new_chain::run(inv).await,
        Action::Expire => expire::run(inv).await,
        Action::Verify => verify::run(inv).await,
        Action::Init => init::run(inv, &common::resolve_params(&inv.conn, &env)?).await,
        Action::Restore => restore::run(inv, &common::resolve_params(&inv.conn, &env)?).await,
        Action::Status => status::run(inv, &common::resolve_params(&inv.conn, &env)?, &env).await,
    }
}
