//! `--new-chain`: a fresh base in a new chain, cut exactly at a temporary slot's exported
//! snapshot, then the stream handed over to it — by the running streamer itself (same PID, no
//! restart), or by the next `--start` when none runs. Each chain restores exactly on its own:
//! see [`crate::storage::handover`].

use crate::actions::base::{self, BaseRequest, DatabaseFacts};
use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::pg::replication::{DEFAULT_PLUGIN, ReplConn};
use crate::pg::session;
use crate::storage::backup_dir::BackupDir;
use crate::storage::compress::Compression;
use crate::storage::control::RotateAnswer;
use crate::storage::pidfile::{self, Streamer};
use crate::ui;

use super::Outcome;
use super::rotate::ask_streamer;
use super::start::{chain_params, check_same_source, latest_chain};

/// A new chain streams from the backup's slot: when that slot has lost its WAL, the chain could
/// never receive a change, so it is not created.
async fn refuse_lost_slot(client: &tokio_postgres::Client, slot: &str) -> Result<()> {
    let sql = "SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";
    let rows = client
        .query(sql, &[&slot])
        .await
        .map_err(|e| session::query_error(sql, &e))?;
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
    let root = inv
        .backup_dir
        .as_deref()
        .expect("cli requires --backup-dir");
    let dir = BackupDir::new(root);
    let (old_chain, old_meta) = latest_chain(&dir)?;
    let params = chain_params(inv, &old_meta)?;
    let session = session::connect(&params).await?;
    check_same_source(&session.client, &old_meta).await?;
    refuse_lost_slot(&session.client, &old_meta.slot).await?;
    let facts = DatabaseFacts::read(&session.client).await?;
    let narrowed = session.params(&params);

    ui::say("Taking new base backup...");
    let mut repl = ReplConn::connect(&narrowed).await?;
    let system = repl.identify_system().await?;
    // A temporary slot only lends its exported snapshot and consistent point: it disappears
    // with this connection, while streaming stays on the backup's own slot.
    let temp_slot = format!("pg_scribe_new_chain_{}", std::process::id());
    let slot = repl
        .create_logical_slot(&temp_slot, DEFAULT_PLUGIN, true, true)
        .await?;
    let snapshot = slot.snapshot_name.clone().unwrap_or_default();
    let compression = inv.compress.unwrap_or(Compression::NONE);

    let request = BaseRequest {
        params: &narrowed,
        facts: &facts,
        system: &system,
        slot: &old_meta.slot,
        snapshot: &snapshot,
        start_lsn: slot.consistent_point,
        compression,
    };
    let result = base::new_chain(&dir, &request, "new chain").await;
    repl.close().await;
    let (chain, metadata) = result?;
    let size: u64 = metadata.files.iter().map(|f| f.size).sum();
    ui::done(&format!(
        "Base backup complete: chain-{} ({}), starting at {}",
        chain.id,
        ui::size(size),
        metadata.start_lsn
    ));

    ui::say(&format!("\nTransitioning from chain-{}...", old_chain.id));
    match pidfile::probe(&dir)? {
        Streamer::Running(info) => match ask_streamer(root, info.pid).await? {
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
    Ok(Outcome::Success)
}
