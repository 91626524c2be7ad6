//! `--start`: find the latest complete chain, check the slot and the connection against it,
//! take the backup directory's pidfile, recover `active.sql`, then run the streamer until told
//! to stop.

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::session::query_error;
use crate::storage::backup_dir::{BackupDir, Chain};
use crate::storage::control;
use crate::storage::handover;
use crate::storage::metadata::Metadata;
use crate::storage::pidfile::PidFile;
use crate::storage::writer::DiffWriter;
use crate::streamer;
use crate::ui;

use super::Outcome;
use super::common::{ChainSession, open_latest_chain};

/// wal2sql options for the stream: consecutive INSERTs into one table become one multi-row
/// INSERT (smaller files, several times faster replay), bounded so memory stays flat.
const PLUGIN_OPTIONS: &[(&str, &str)] = &[("batch-inserts", "1000"), ("batch-bytes", "1048576")];

struct SlotState {
    confirmed_flush: Option<Lsn>,
}

async fn check_slot(client: &tokio_postgres::Client, slot: &str) -> Result<SlotState> {
    // invalidation_reason exists from PostgreSQL 17 on; to_jsonb reads it where it does.
    let sql =
        "SELECT plugin::text, slot_type, database::text, confirmed_flush_lsn::text, wal_status,
                      to_jsonb(s) ->> 'invalidation_reason'
                 FROM pg_replication_slots s WHERE slot_name = $1";
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
    let reason: Option<String> = row.get(5);
    if wal_status.as_deref() == Some("lost") {
        let why = match reason.as_deref() {
            None | Some("wal_removed") => "the WAL it needs was removed".to_string(),
            Some("idle_timeout") => {
                "it was inactive longer than idle_replication_slot_timeout".to_string()
            }
            Some(other) => format!("reason \"{other}\""),
        };
        return Err(Error::slot(format!(
            "replication slot \"{slot}\" has been invalidated: {why}"
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
/// first), else of the newest sealed diff, and at least what `.pg_scribe.flushed` records. A
/// sealed diff that cannot be read (torn by a crash after a rename by hand, say) is an error,
/// never replaced by the recorded position: resuming too early would duplicate transactions.
fn resume_position(dir: &BackupDir, chain: &Chain) -> Result<Option<Lsn>> {
    let recorded = control::read_flushed(dir.root());
    let found = crate::storage::writer::chain_resume_lsn(chain, recorded)?;
    Ok(found.max(recorded))
}

pub async fn run(inv: &Invocation) -> Result<Outcome> {
    let opened = open_latest_chain(inv).await?;
    let slot_state = check_slot(&opened.session.client, &opened.slot).await?;
    ui::done(&format!("Found latest chain: {}", opened.chain.id));

    // Before the pidfile names us: a SIGHUP from then on is a request, never a kill.
    let signals = streamer::Signals::install()?;
    let acquired = PidFile::acquire(&opened.dir)?;
    if let Some(stale) = &acquired.stale {
        ui::warning(&format!(
            "took over a stale pidfile (process {} is gone)",
            stale.pid
        ));
    }
    let pidfile = acquired.pidfile;
    let result = stream(inv, opened, slot_state, signals).await;
    if let Err(err) = pidfile.remove() {
        ui::warning(&format!("could not remove the pidfile: {err}"));
    }
    result
}

/// The chain to stream into. A `--new-chain` made while no streamer ran (or one that died
/// mid-way) leaves the older chain with its `active.sql`: its transactions past the next
/// chain's start are moved over and it is sealed. The stream then goes to that next chain, not
/// to the newest: when several `--new-chain` ran meanwhile, each chain in between gets the
/// transactions up to the following chain's start, and the streamer moves on to the following
/// chain once the stream reaches it, as it does for a `--new-chain` made while it runs.
fn stream_target(
    dir: &BackupDir,
    latest: Chain,
    latest_meta: Metadata,
) -> Result<(Chain, Metadata)> {
    loop {
        let complete: Vec<Chain> = dir
            .chains()?
            .into_iter()
            .filter(|c| c.complete && c.chain.id <= latest.id)
            .map(|c| c.chain)
            .collect();
        let Some(i) = complete.iter().position(|c| c.active_path().exists()) else {
            // First start after --init: nothing streamed yet.
            return Ok((latest, latest_meta));
        };
        let Some(new) = complete.get(i + 1) else {
            let meta = complete[i].read_metadata()?;
            return Ok((complete[i].clone(), meta));
        };
        let old = &complete[i];
        let meta = new.read_metadata()?;
        hand_over_at_start(old, new, &meta)?;
        // A later chain with active.sql is an unfinished hand-over of its own: finish it too.
        if !complete[i + 2..].iter().any(|c| c.active_path().exists()) {
            return Ok((new.clone(), meta));
        }
    }
}

fn hand_over_at_start(old: &Chain, new: &Chain, meta: &Metadata) -> Result<()> {
    let (mut old_writer, _) = DiffWriter::open(old)?;
    let (_, report) = handover::hand_over(&mut old_writer, old, new, meta.start_lsn)?;
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
            new.id
        ));
    }
    Ok(())
}

async fn stream(
    inv: &Invocation,
    opened: ChainSession,
    slot_state: SlotState,
    signals: streamer::Signals,
) -> Result<Outcome> {
    let dir = &opened.dir;
    let (slot, session) = (opened.slot, opened.session);
    let (chain, metadata) = stream_target(dir, opened.chain, opened.metadata)?;
    let metadata = &metadata;
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
        params: session.params(&opened.params),
        slot,
        dir: BackupDir::new(dir.root()),
        chain_start: metadata.start_lsn,
        resume,
        active_has_data: recovery.valid_len > 0,
        chain,
        status_interval: inv.status_interval,
        fsync_interval: inv.fsync_interval,
        rotate_every: inv.rotate_every,
        compress: inv.compress,
        active_len: recovery.valid_len,
        server_major: metadata.source.server_major(),
        plugin_options: PLUGIN_OPTIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    streamer::run(config, writer, Some(session.client), signals).await?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_unreadable_sealed_diff_is_an_error_even_with_a_recorded_position() {
        let t = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(t.path());
        let chain = dir
            .create_chain(datetime!(2026-11-26 12:00:00 UTC))
            .unwrap();
        // Renamed by hand mid-transaction, then a crash: the sealed diff ends torn.
        std::fs::write(
            chain.dir.join("diff-20261126T130000Z.sql"),
            "-- wal2sql begin xid=700 commit_lsn=0/100 end_lsn=0/138 commit_time=2026-11-26T12:00:00.000000Z\nBEGIN;\nINSERT",
        )
        .unwrap();
        control::write_flushed(t.path(), Lsn(0x100)).unwrap();
        assert!(resume_position(&dir, &chain).is_err());
        // The recorded position still raises what the files say, never lowers it.
        std::fs::remove_file(chain.dir.join("diff-20261126T130000Z.sql")).unwrap();
        assert_eq!(resume_position(&dir, &chain).unwrap(), Some(Lsn(0x100)));
    }
}
