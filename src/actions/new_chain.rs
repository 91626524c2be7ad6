//! `--new-chain`: a fresh base in a new chain, cut exactly at a temporary slot's exported
//! snapshot, then the stream handed over to it — by the running streamer itself (same PID, no
//! restart), or by the next `--start` when none runs. Each chain restores exactly on its own:
//! see [`crate::storage::handover`].

use crate::actions::base::{self, BaseRequest, Snapshot};
use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::storage::compress::Compression;
use crate::storage::control::RotateAnswer;
use crate::storage::pidfile::{self, Streamer};
use crate::ui;

use super::Outcome;
use super::common::{ChainSession, open_latest_chain};
use super::rotate::ask_streamer;

/// A new chain streams from the backup's slot: when that slot has lost its WAL, the chain could
/// never receive a change, so it is not created.
async fn refuse_lost_slot(client: &tokio_postgres::Client, slot: &str) -> Result<()> {
    let sql = "SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";
    let rows = client
        .query(sql, &[&slot])
        .await
        .map_err(|e| crate::pg::session::query_error(sql, &e))?;
    let Some(row) = rows.first() else {
        return Err(Error::slot(format!("replication slot \"{slot}\" does not exist"))
            .with_detail("A new chain streams from the backup's slot; without it the chain could never receive a change.")
            .with_hint("Start a new backup with pg_scribe --init into a new, empty directory."));
    };
    let status: Option<String> = row.get(0);
    if status.as_deref() == Some("lost") {
        return Err(Error::slot(format!(
            "replication slot \"{slot}\" has been invalidated (wal_status lost): a new chain could never stream"
        ))
        .with_detail("A new chain streams from the same slot, and the server removed WAL that slot still needed: its changes are gone for good. No chain was created.")
        .with_hint(format!("Drop the slot (SELECT pg_drop_replication_slot('{slot}')) and start a new backup with pg_scribe --init into a new, empty directory; the chains here stay restorable up to their last transaction.")));
    }
    Ok(())
}

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let ChainSession {
        dir,
        chain: old_chain,
        metadata: old_meta,
        params,
        session,
        ..
    } = open_latest_chain(inv).await?;
    refuse_lost_slot(&session.client, &old_meta.slot).await?;
    let source = base::read_source(&session.client).await?;
    base::check_request(
        inv.jobs,
        inv.compress.unwrap_or(Compression::NONE),
        source.server_major(),
    )?;
    let narrowed = session.params(&params);

    ui::say("Taking new base backup...");
    // A temporary slot only lends its exported snapshot and consistent point: it disappears
    // with this connection, while streaming stays on the backup's own slot.
    let temp_slot = format!("pg_scribe_new_chain_{}", std::process::id());
    let snapshot = Snapshot::create(&narrowed, &temp_slot, true).await?;
    let request = BaseRequest {
        params: &narrowed,
        source: &source,
        slot: &old_meta.slot,
        compression: inv.compress.unwrap_or(Compression::NONE),
        jobs: inv.jobs,
    };
    let (chain, metadata) = snapshot.take_chain(&dir, &request, "new chain").await?;
    let size: u64 = metadata.files.iter().map(|f| f.size).sum();
    ui::done(&format!(
        "Base backup complete: chain-{} ({}), starting at {}",
        chain.id,
        ui::size(size),
        metadata.start_lsn
    ));

    ui::say(&format!("\nTransitioning from chain-{}...", old_chain.id));
    match pidfile::probe(&dir)? {
        Streamer::Running(info) => match ask_streamer(dir.root(), info.pid).await? {
            RotateAnswer::Sealed { sealed, .. } => {
                ui::done(&format!("Sealed old chain: {sealed}"));
                ui::done("Stopped streaming to old chain");
                ui::done(&format!(
                    "Started streaming to new chain: {} (same process, PID {})",
                    chain.id, info.pid
                ));
            }
            RotateAnswer::Empty { .. } => {
                ui::done("Old chain had nothing left to seal");
                ui::done(&format!(
                    "Started streaming to new chain: {} (same process, PID {})",
                    chain.id, info.pid
                ));
            }
            RotateAnswer::Failed { message, .. } => {
                return Err(Error::backup(format!(
                    "the streamer could not move to the new chain: {message}"
                ))
                .with_hint("The new chain is complete; restart the streamer with pg_scribe --start to finish the hand-over."));
            }
            RotateAnswer::Pending { .. } => unreachable!("only final answers are returned"),
        },
        _ => {
            ui::say(&format!(
                "No streamer is running: the next pg_scribe --start streams into chain {} and seals chain {}",
                chain.id, old_chain.id
            ));
        }
    }
    if let Some(keep) = inv.keep_chains {
        ui::say("\nExpiring old chains...");
        super::expire::expire(dir.root(), keep, false)?;
    }
    Ok(Outcome::Success)
}
