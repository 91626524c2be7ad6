//! `--start`: find the latest complete chain, check the slot and the connection against it,
//! take the backup directory's pidfile, recover `active.sql`, then run the streamer until told
//! to stop.

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::conninfo::{ConnParams, Environment};
use crate::pg::session::{self, query_error};
use crate::storage::backup_dir::{BackupDir, Chain};
use crate::storage::control;
use crate::storage::handover;
use crate::storage::metadata::Metadata;
use crate::storage::pidfile::PidFile;
use crate::storage::writer::DiffWriter;
use crate::streamer;
use crate::ui;

use super::Outcome;

/// wal2sql options for the stream: consecutive INSERTs into one table become one multi-row
/// INSERT (smaller files, several times faster replay), bounded so memory stays flat.
const PLUGIN_OPTIONS: &[(&str, &str)] = &[("batch-inserts", "1000"), ("batch-bytes", "1048576")];

/// The backup directory and its newest complete chain, or a clear error.
pub fn latest_chain(dir: &BackupDir) -> Result<(Chain, Metadata)> {
    if !dir.root().is_dir() {
        return Err(Error::backup(format!(
            "backup directory \"{}\" does not exist",
            dir.root().display()
        ))
        .with_hint("Initialize it with pg_scribe --init."));
    }
    let chain = dir.latest_complete_chain()?.ok_or_else(|| {
        Error::backup(format!(
            "backup directory \"{}\" holds no complete chain",
            dir.root().display()
        ))
        .with_hint("Initialize it with pg_scribe --init (an unfinished chain is never used).")
    })?;
    let metadata = chain.read_metadata()?;
    Ok((chain, metadata))
}

/// The slot to use: the chain's own, and an explicit `--slot` must agree with it.
pub fn chain_slot(inv: &Invocation, metadata: &Metadata) -> Result<String> {
    if inv.slot_explicit && inv.slot != metadata.slot {
        return Err(Error::slot(format!(
            "replication slot \"{}\" does not belong to this backup: its chain streams from slot \"{}\"",
            inv.slot, metadata.slot
        )));
    }
    Ok(metadata.slot.clone())
}

/// Resolve the connection, defaulting the database to the chain's when none was named.
pub fn chain_params(inv: &Invocation, metadata: &Metadata) -> Result<ConnParams> {
    let env = Environment::from_process();
    let mut opts = inv.conn.clone();
    let named =
        opts.dbname.is_some() || std::env::var_os("PGDATABASE").is_some_and(|v| !v.is_empty());
    if !named {
        opts.dbname = Some(metadata.database.clone());
    }
    let mut params = crate::pg::conninfo::resolve(&opts, &env)?;
    if inv.conn.force_prompt {
        params.password = Some(crate::pg::conninfo::prompt_password("Password: ")?);
    }
    Ok(params)
}

/// The connected server must be the one the chain was taken from.
pub async fn check_same_source(client: &tokio_postgres::Client, metadata: &Metadata) -> Result<()> {
    let sql = "SELECT current_database()::text, (SELECT system_identifier::text FROM pg_control_system())";
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let (database, system): (String, String) = (row.get(0), row.get(1));
    if database != metadata.database {
        return Err(Error::validation(format!(
            "this backup directory belongs to database \"{}\", but the connection is to \"{database}\"",
            metadata.database
        ))
        .with_hint(format!("Connect with -d {}.", metadata.database)));
    }
    if system != metadata.system_identifier {
        return Err(Error::validation(format!(
            "this backup directory belongs to the cluster with system identifier {}, but the server has {system}",
            metadata.system_identifier
        )));
    }
    Ok(())
}

struct SlotState {
    confirmed_flush: Option<Lsn>,
}

async fn check_slot(client: &tokio_postgres::Client, slot: &str) -> Result<SlotState> {
    let sql =
        "SELECT plugin::text, slot_type, database::text, confirmed_flush_lsn::text, wal_status
                 FROM pg_replication_slots WHERE slot_name = $1";
    let rows = client
        .query(sql, &[&slot])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let Some(row) = rows.first() else {
        return Err(Error::slot(format!("replication slot \"{slot}\" does not exist"))
            .with_hint("It is created by pg_scribe --init; if it was dropped, start a new backup directory with --init."));
    };
    let plugin: Option<String> = row.get(0);
    let slot_type: String = row.get(1);
    let wal_status: Option<String> = row.get(4);
    if slot_type != "logical" || plugin.as_deref() != Some("wal2sql") {
        return Err(Error::slot(format!(
            "replication slot \"{slot}\" is not a logical slot of the wal2sql plugin (type {slot_type}, plugin {})",
            plugin.unwrap_or_else(|| "none".into())
        )));
    }
    if wal_status.as_deref() == Some("lost") {
        return Err(Error::slot(format!(
            "replication slot \"{slot}\" has been invalidated: the WAL it needs was removed"
        ))
        .with_detail("Changes since the last durable position can no longer be streamed.")
        .with_hint(
            "Take a new backup with pg_scribe --init into a new directory (with a new slot).",
        ));
    }
    let confirmed: Option<String> = row.get(3);
    Ok(SlotState {
        confirmed_flush: confirmed.and_then(|c| c.parse().ok()),
    })
}

/// Where the chain's files end: the last transaction of `active.sql` (a torn tail is cut
/// first), else of the newest sealed diff, else what `.pg_scribe.flushed` records.
fn resume_position(dir: &BackupDir, chain: &Chain) -> Result<Option<Lsn>> {
    let recorded = control::read_flushed(dir.root());
    match crate::storage::writer::chain_resume_lsn(chain) {
        Ok(found) => Ok(found.max(recorded)),
        // A compressed newest diff cannot be read cheaply; the recorded position covers it.
        Err(_) if recorded.is_some() => Ok(recorded),
        Err(err) => Err(err.into()),
    }
}

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let root = inv
        .backup_dir
        .as_deref()
        .expect("cli requires --backup-dir");
    let dir = BackupDir::new(root);
    let (chain, metadata) = latest_chain(&dir)?;
    let slot = chain_slot(inv, &metadata)?;
    let params = chain_params(inv, &metadata)?;
    let session = session::connect(&params).await?;
    check_same_source(&session.client, &metadata).await?;
    let slot_state = check_slot(&session.client, &slot).await?;
    ui::done(&format!("Found latest chain: {}", chain.id));

    let acquired = PidFile::acquire(&dir)?;
    if let Some(stale) = &acquired.stale {
        ui::warning(&format!(
            "took over a stale pidfile (process {} is gone)",
            stale.pid
        ));
    }
    let pidfile = acquired.pidfile;
    let result = stream(
        inv, &dir, chain, &metadata, slot, params, session, slot_state,
    )
    .await;
    if let Err(err) = pidfile.remove() {
        ui::warning(&format!("could not remove the pidfile: {err}"));
    }
    result
}

/// A `--new-chain` made while no streamer ran (or one that died mid-way) leaves the older
/// chain with its `active.sql`: move its transactions past the new start over and seal it.
fn finish_hand_over(dir: &BackupDir, chain: &Chain, metadata: &Metadata) -> Result<()> {
    let chains = dir.chains()?;
    let Some(old) = chains
        .iter()
        .rev()
        .map(|info| &info.chain)
        .find(|c| c.id < chain.id && c.active_path().exists())
    else {
        return Ok(());
    };
    let (mut old_writer, _) = DiffWriter::open(old)?;
    let (_, report) = handover::hand_over(&mut old_writer, old, chain, metadata.start_lsn)?;
    match &report.sealed {
        Some(sealed) => ui::done(&format!(
            "Sealed old chain {}: {}",
            old.id,
            sealed
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        )),
        None => ui::done(&format!(
            "Closed old chain {} (nothing left to seal)",
            old.id
        )),
    }
    if report.copied_txns > 0 {
        ui::done(&format!(
            "Copied {} transaction(s) ({}) past chain {}'s start into it",
            report.copied_txns,
            ui::size(report.copied_bytes),
            chain.id
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    inv: &Invocation,
    dir: &BackupDir,
    chain: Chain,
    metadata: &Metadata,
    slot: String,
    params: ConnParams,
    session: session::Session,
    slot_state: SlotState,
) -> Result<Outcome> {
    finish_hand_over(dir, &chain, metadata)?;
    let resume = resume_position(dir, &chain)?;
    let (writer, recovery) = DiffWriter::open(&chain)?;
    if recovery.cut_bytes > 0 {
        ui::warning(&format!(
            "cut {} of an unfinished transaction off {} (it will be streamed again)",
            ui::size(recovery.cut_bytes),
            chain.active_path().display()
        ));
    }
    let holds = resume.unwrap_or(metadata.start_lsn).max(metadata.start_lsn);
    if let Some(confirmed) = slot_state.confirmed_flush
        && confirmed > holds
    {
        return Err(Error::slot(format!(
            "replication slot \"{slot}\" was consumed past what this backup holds"
        ))
        .with_detail(format!(
            "The slot has confirmed changes up to {confirmed}, but the chain's files end at {holds}; the changes in between were taken by another consumer and are lost to this backup."
        ))
        .with_hint("Start a new chain with pg_scribe --new-chain (or a new backup with --init), and make sure nothing else reads this slot."));
    }

    ui::done(&format!(
        "Starting replication from slot '{slot}' at {holds}"
    ));
    ui::done(&format!("Writing to: {}", chain.active_path().display()));
    let config = streamer::Config {
        params: session.params(&params),
        slot,
        dir: BackupDir::new(dir.root()),
        chain_start: metadata.start_lsn,
        resume,
        active_has_data: recovery.valid_len > 0,
        chain,
        status_interval: inv.status_interval,
        fsync_interval: inv.fsync_interval,
        server_major: metadata.server_version_num / 10000,
        plugin_options: PLUGIN_OPTIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    streamer::run(config, writer, Some(session.client)).await?;
    Ok(Outcome::Success)
}
