//! One module per action of the spec; [`run`] dispatches a validated invocation to it. Each
//! action returns how the process should exit, or an error rendered once by `main`.

pub mod base;
pub mod checks;
mod init;
mod new_chain;
pub mod restore;
mod rotate;
mod start;
mod status;
mod verify;

use crate::cli::{Action, Invocation};
use crate::error::{Error, Result};
use crate::pg::conninfo::{self, Environment};
use crate::pg::session;

/// How a successful run ends (errors carry their own exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `--status` found something to warn about (exit 10).
    Warnings,
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
            Outcome::Damaged => 4,
            Outcome::Critical(code) => code,
        }
    }
}

pub async fn run(invocation: Invocation) -> Result<Outcome> {
    match invocation.action {
        Action::Start => return start::run(&invocation).await,
        Action::RotateDiff => return rotate::run(&invocation).await,
        Action::NewChain => return new_chain::run(&invocation).await,
        Action::Verify => return verify::run(&invocation).await,
        _ => {}
    }
    let env = Environment::from_process();
    let mut params = conninfo::resolve(&invocation.conn, &env)?;
    if invocation.conn.force_prompt {
        params.password = Some(conninfo::prompt_password("Password: ")?);
    }
    if invocation.action == Action::Init {
        return init::run(&invocation, &params).await;
    }
    if invocation.action == Action::Restore {
        return restore::run(&invocation, &params).await;
    }
    if invocation.action == Action::Status {
        return status::run(&invocation, &params, &env).await;
    }
    // Every action but --rotate-diff talks to the server; reaching it is their first step, so
    // a wrong host or password is reported as such before anything else happens.
    if invocation.action != Action::RotateDiff {
        let session = session::connect(&params).await?;
        tracing::debug!("connected to {}", session.target.describe());
    }
    Err(Error::not_implemented(invocation.action.flag()))
}
