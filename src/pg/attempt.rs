//! How both kinds of connection (SQL sessions and the replication connection) walk the targets
//! of a [`ConnParams`] the way libpq does: hosts in order, the first that accepts us wins, and
//! `connect_timeout` bounds each attempt as a whole (socket, TLS and authentication), not only
//! the TCP connect.

use std::future::Future;
use std::time::Duration;

use crate::pg::conninfo::{ConnParams, Target};

/// Runs `attempt` on each target in turn until one succeeds. On failure, every target's error
/// in order (none when there is no target).
pub async fn first_target<'a, T, E, F, Fut>(
    params: &'a ConnParams,
    mut attempt: F,
) -> Result<T, Vec<E>>
where
    F: FnMut(&'a Target) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = Vec::new();
    for target in &params.targets {
        match attempt(target).await {
            Ok(connected) => return Ok(connected),
            Err(err) => failures.push(err),
        }
    }
    Err(failures)
}

/// `attempt`'s outcome, or the `connect_timeout` it ran out of (when one is set).
pub async fn within_timeout<R>(
    params: &ConnParams,
    attempt: impl Future<Output = R>,
) -> Result<R, Duration> {
    match params.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| limit),
        None => Ok(attempt.await),
    }
}
