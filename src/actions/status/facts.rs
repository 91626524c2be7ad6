//! What `--status` observes, as plain data: the server and the slot (one read-only SQL session),
//! and the backup directory (file names, sizes and times, and a pidfile probe). Nothing here
//! writes, creates or locks anything a streamer could be waiting for.
//!
//! These structs are also the `--json` report: field names are the documented, stable schema of
//! `doc/status.md` — rename nothing without bumping `format`.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::session::query_error;
use crate::storage::backup_dir::{BackupDir, Chain, ChainInfo};
use crate::storage::manifest::{self, Manifest};
use crate::storage::pidfile::{self, Streamer};
use crate::storage::space::{self, FsSpace};
use crate::storage::verify::{self, MarkerAt};

/// `OffsetDateTime` as RFC 3339 UTC text (`2023-12-15T12:00:00Z`), for JSON.
pub mod rfc3339 {
    use serde::Serializer;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn text(t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*t))
    }

    pub mod option {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&text(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

/// The server as seen by the status session.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    /// Where the session connected, worded like libpq (`server on socket "…"`).
    pub connection: String,
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub in_recovery: bool,
    /// `pg_current_wal_lsn()`; on a standby the last WAL received (or replayed).
    pub current_lsn: Option<Lsn>,
    /// `max_slot_wal_keep_size` in bytes; `None` when unlimited (-1).
    pub max_slot_wal_keep_size_bytes: Option<u64>,
}

/// Where the slot name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotNameSource {
    /// `--slot`.
    Option,
    /// The `slot` field of the newest chain's `metadata.json`.
    Metadata,
    /// Neither: the built-in default `pg_scribe`.
    Default,
}

/// One row of `pg_replication_slots`, plus lag and retention computed against the server LSN.
#[derive(Debug, Clone, Serialize)]
pub struct SlotFacts {
    pub name: String,
    pub name_source: SlotNameSource,
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub temporary: bool,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `current_lsn - confirmed_flush_lsn`: WAL written but not yet confirmed by the streamer.
    pub lag_bytes: Option<u64>,
    /// `current_lsn - restart_lsn`: WAL the server keeps on disk for this slot.
    pub retained_bytes: Option<u64>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Bytes that can still be written before the slot is in danger of losing WAL; `None` when
    /// `max_slot_wal_keep_size` is unlimited or the slot is lost.
    pub safe_wal_size_bytes: Option<i64>,
    /// Why the server invalidated the slot (`wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`, `idle_timeout`); PostgreSQL 17 and later, `None` while valid.
    /// An invalidated slot shows `wal_status` `lost` whatever the reason.
    pub invalidation_reason: Option<String>,
    /// Since when no streamer has used the slot (RFC 3339); PostgreSQL 17 and later.
    pub inactive_since: Option<String>,
    /// The server's `idle_replication_slot_timeout` in seconds (0: off); PostgreSQL 18 and
    /// later, `None` before.
    pub idle_timeout_secs: Option<i64>,
}

/// What the backup directory's pidfile says about a streamer.
#[derive(Debug, Clone, Serialize)]
pub struct StreamerFacts {
    /// `running`, `not_running` (no pidfile), `stale` (pidfile nobody holds) or `unverified`
    /// (the lock is held but the pidfile does not name a live pg_scribe for this directory).
    pub state: &'static str,
    pub pid: Option<i32>,
    #[serde(with = "rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    pub detail: Option<String>,
}

impl StreamerFacts {
    pub(crate) fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// One `chain-<ID>` directory.
#[derive(Debug, Clone, Serialize)]
pub struct ChainFacts {
    pub id: String,
    /// Displayed (lossy for non-UTF-8 names, so the report always serializes).
    pub path: String,
    /// Carries its `COMPLETE` marker: usable by `--start` and `--restore`.
    pub complete: bool,
    /// The chain `--start` streams into: the newest complete chain.
    pub active: bool,
    /// Active, and a streamer is running.
    pub streaming: bool,
    /// When the base was taken (`metadata.json`'s `created_at`, else the chain ID).
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// The slot named in `metadata.json`, if readable.
    pub slot: Option<String>,
    pub start_lsn: Option<Lsn>,
    pub base_file: Option<String>,
    pub base_bytes: Option<u64>,
    pub diff_count: usize,
    pub diff_bytes: u64,
    /// Stamp of the newest sealed differential.
    #[serde(with = "rfc3339::option")]
    pub last_sealed_at: Option<OffsetDateTime>,
    /// Size of `active.sql`; `None` when there is none.
    pub active_sql_bytes: Option<u64>,
    /// Newest modification time of `active.sql` and the sealed differentials.
    #[serde(with = "rfc3339::option")]
    pub last_activity_at: Option<OffsetDateTime>,
    /// Every file in the chain directory.
    pub total_bytes: u64,
    /// Why `metadata.json` could not be read (an incomplete chain may have none).
    pub metadata_error: Option<String>,
    /// wal2sql's unreplayable markers in the chain (sealed differentials' manifests, then
    /// `active.sql`): a restore stops at the first.
    pub markers: u64,
    pub first_marker: Option<MarkerAt>,
    /// What the last `--verify` found (its `verify.json`), if it ran.
    pub last_verification: Option<LastVerification>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastVerification {
    pub checked_at: String,
    pub intact: bool,
    pub problems: usize,
    pub first_problem: Option<String>,
}

/// Markers of a complete chain: counted from the manifests (cheap) and by reading `active.sql`
/// once (read only, so a live streamer's file is never touched). Differentials sealed before
/// manifests existed are not read.
fn markers(
    chain: &Chain,
    diffs: &[crate::storage::backup_dir::SealedDiff],
) -> (u64, Option<MarkerAt>) {
    let mut count = 0;
    let mut first = None;
    for d in diffs {
        if let Ok(Some(m)) = Manifest::read(&manifest::manifest_path(chain, d.name)) {
            count += m.markers;
            if first.is_none()
                && let Some(marker) = m.first_marker
            {
                first = Some(MarkerAt {
                    file: d.name.to_string(),
                    marker,
                });
            }
        }
    }
    if chain.has_active()
        && let Ok(s) = manifest::scan_plain(&chain.active_path(), None)
    {
        count += s.markers;
        if first.is_none()
            && let Some(marker) = s.first_marker
        {
            first = Some(MarkerAt {
                file: crate::storage::backup_dir::ACTIVE_NAME.into(),
                marker,
            });
        }
    }
    (count, first)
}

fn last_verification(chain: &Chain) -> Option<LastVerification> {
    let v = verify::last_result(chain)?;
    let problems = v["problems"].as_array().cloned().unwrap_or_default();
    Some(LastVerification {
        checked_at: v["checked_at"].as_str().unwrap_or_default().to_string(),
        intact: v["intact"].as_bool().unwrap_or(false),
        problems: problems.len(),
        first_problem: problems.first().map(|p| {
            format!(
                "{}: {}",
                p["file"].as_str().unwrap_or_default(),
                p["problem"].as_str().unwrap_or_default()
            )
        }),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct DirFacts {
    /// Absolute, displayed like [`ChainFacts::path`].
    pub path: String,
    pub streamer: StreamerFacts,
    /// ID of the active chain (the newest complete one), if any.
    pub active_chain: Option<String>,
    /// Oldest first.
    pub chains: Vec<ChainFacts>,
    /// Every file of every chain.
    pub total_bytes: u64,
    /// The file system holding the directory; `None` when `statvfs` failed.
    pub filesystem: Option<FsSpace>,
}

// ---------------------------------------------------------------------------------------------
// The server.

fn lsn_of(text: Option<String>) -> Result<Option<Lsn>> {
    text.map(|t| {
        t.parse::<Lsn>()
            .map_err(|e| Error::backup(format!("unexpected LSN from the server: {e}")))
    })
    .transpose()
}

pub async fn server(client: &Client, connection: String) -> Result<ServerFacts> {
    let sql = "SELECT current_database()::text, current_setting('server_version'),
                      current_setting('server_version_num')::int, pg_is_in_recovery(),
                      (CASE WHEN pg_is_in_recovery()
                            THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                            ELSE pg_current_wal_lsn() END)::text,
                      CASE WHEN current_setting('max_slot_wal_keep_size') = '-1' THEN -1
                           ELSE pg_size_bytes(current_setting('max_slot_wal_keep_size')) END";
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let keep: i64 = row.get(5);
    Ok(ServerFacts {
        connection,
        database: row.get(0),
        server_version: row.get(1),
        server_version_num: row.get(2),
        in_recovery: row.get(3),
        current_lsn: lsn_of(row.get(4))?,
        max_slot_wal_keep_size_bytes: u64::try_from(keep).ok(),
    })
}

/// The slot's row, or exit 3 naming the slots that do exist. Columns and settings that only
/// newer servers have are read through to_jsonb / pg_settings, so one query fits 13 to 18.
pub async fn slot(client: &Client, name: &str, source: SlotNameSource) -> Result<SlotFacts> {
    let sql = "SELECT plugin::text, slot_type, database::text, temporary, active, active_pid,
                      restart_lsn::text, confirmed_flush_lsn::text, wal_status, safe_wal_size,
                      to_jsonb(s) ->> 'invalidation_reason',
                      to_char((to_jsonb(s) ->> 'inactive_since')::timestamptz AT TIME ZONE 'UTC',
                              'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                      (SELECT CASE unit WHEN 'min' THEN setting::bigint * 60 ELSE setting::bigint END
                         FROM pg_settings WHERE name = 'idle_replication_slot_timeout')
                 FROM pg_replication_slots s WHERE slot_name = $1";
    let rows = client
        .query(sql, &[&name])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let Some(row) = rows.first() else {
        return Err(missing_slot(client, name, source).await);
    };
    Ok(SlotFacts {
        name: name.to_string(),
        name_source: source,
        plugin: row.get(0),
        slot_type: row.get(1),
        database: row.get(2),
        temporary: row.get(3),
        active: row.get(4),
        active_pid: row.get(5),
        restart_lsn: lsn_of(row.get(6))?,
        confirmed_flush_lsn: lsn_of(row.get(7))?,
        lag_bytes: None,
        retained_bytes: None,
        wal_status: row.get(8),
        safe_wal_size_bytes: row.get(9),
        invalidation_reason: row.get(10),
        inactive_since: row.get(11),
        idle_timeout_secs: row.get(12),
    })
}

impl SlotFacts {
    /// Fills in lag and retention against the server's WAL position `current`.
    pub(crate) fn measured_against(self, current: Option<Lsn>) -> SlotFacts {
        let behind = |lsn: Option<Lsn>| match (current, lsn) {
            (Some(c), Some(l)) => Some(c.0.saturating_sub(l.0)),
            _ => None,
        };
        SlotFacts {
            lag_bytes: behind(self.confirmed_flush_lsn),
            retained_bytes: behind(self.restart_lsn),
            ..self
        }
    }
}

async fn missing_slot(client: &Client, name: &str, source: SlotNameSource) -> Error {
    let sql = "SELECT coalesce(string_agg(slot_name::text || ' (' || coalesce(plugin::text, slot_type) || ')',
                                         ', ' ORDER BY slot_name), '')
                 FROM pg_replication_slots";
    let existing = match client.query_one(sql, &[]).await {
        Ok(row) => row.get::<_, String>(0),
        Err(e) => return query_error(sql, &e),
    };
    let mut err = Error::slot(format!("replication slot \"{name}\" does not exist"));
    err = match source {
        SlotNameSource::Metadata => err.with_detail(
            "The slot name was taken from the newest chain's metadata.json; the slot may have been dropped.",
        ),
        SlotNameSource::Default => err.with_detail(format!(
            "No --slot was given, so the default \"{name}\" was used."
        )),
        SlotNameSource::Option => err,
    };
    if existing.is_empty() {
        err.with_hint(
            "This server has no replication slots. Create one with pg_scribe --init (or name the right server).",
        )
    } else {
        err.with_hint(format!(
            "Existing slots: {existing}. Choose one with --slot."
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The backup directory.

fn time_of(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

fn mtime(path: &Path) -> Option<OffsetDateTime> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(time_of)
}

/// Sum of the files directly in `dir` (chains have no subdirectories).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn streamer(dir: &BackupDir) -> Result<StreamerFacts> {
    Ok(match pidfile::probe(dir)? {
        Streamer::Absent => StreamerFacts {
            state: "not_running",
            pid: None,
            started_at: None,
            detail: None,
        },
        Streamer::Stale(info) => StreamerFacts {
            state: "stale",
            pid: info.as_ref().map(|i| i.pid).filter(|p| *p > 0),
            started_at: info.as_ref().and_then(|i| i.started_at),
            detail: Some("the pidfile is not locked: its streamer is gone".into()),
        },
        Streamer::Running(info) => StreamerFacts {
            state: "running",
            pid: Some(info.pid),
            started_at: info.started_at,
            detail: None,
        },
        Streamer::Unverified { info, reason } => StreamerFacts {
            state: "unverified",
            pid: info.as_ref().map(|i| i.pid),
            started_at: info.as_ref().and_then(|i| i.started_at),
            detail: Some(reason),
        },
    })
}

fn chain_facts(info: &ChainInfo) -> Result<ChainFacts> {
    let chain: &Chain = &info.chain;
    let (metadata, metadata_error) = match chain.read_metadata() {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    // A chain with two base files is broken, but still worth listing.
    let base = chain.find_base().ok().flatten();
    let diffs = chain.sealed_diffs()?;
    let active_path = chain.active_path();
    let active_sql_bytes = file_size(&active_path);
    let last_activity_at = diffs
        .last()
        .and_then(|d| mtime(&d.path))
        .into_iter()
        .chain(active_sql_bytes.and_then(|_| mtime(&active_path)))
        .max();
    let (markers, first_marker) = if info.complete {
        markers(chain, &diffs)
    } else {
        (0, None)
    };
    Ok(ChainFacts {
        markers,
        first_marker,
        last_verification: last_verification(chain),
        id: chain.id.to_string(),
        path: chain.dir.display().to_string(),
        complete: info.complete,
        active: false,
        streaming: false,
        created_at: metadata
            .as_ref()
            .map(|m| m.created_at)
            .unwrap_or_else(|| chain.id.0.to_time()),
        slot: metadata.as_ref().map(|m| m.slot.clone()),
        start_lsn: metadata.as_ref().map(|m| m.start_lsn),
        base_file: base.as_ref().map(|b| b.name()),
        base_bytes: base.as_ref().map(|b| b.size()),
        diff_count: diffs.len(),
        diff_bytes: diffs.iter().map(|d| d.size).sum(),
        last_sealed_at: diffs.last().map(|d| d.name.stamp.to_time()),
        active_sql_bytes,
        last_activity_at,
        total_bytes: dir_bytes(&chain.dir),
        metadata_error,
    })
}

pub fn directory(root: &Path) -> Result<DirFacts> {
    let dir = BackupDir::new(root);
    if !root.is_dir() {
        return Err(Error::backup(format!(
            "backup directory \"{}\" does not exist or is not a directory",
            root.display()
        )));
    }
    let streamer = streamer(&dir)?;
    let mut chains = dir
        .chains()?
        .iter()
        .map(chain_facts)
        .collect::<Result<Vec<_>>>()?;
    let active_chain = chains.iter().rposition(|c| c.complete);
    if let Some(i) = active_chain {
        chains[i].active = true;
        chains[i].streaming = streamer.is_running();
    }
    Ok(DirFacts {
        path: std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .display()
            .to_string(),
        streamer,
        active_chain: active_chain.map(|i| chains[i].id.clone()),
        total_bytes: chains.iter().map(|c| c.total_bytes).sum(),
        chains,
        filesystem: space::of(root).ok(),
    })
}

/// The facts of a view of an `s3://` backup directory, made true of the backup: the store's URL
/// for paths, the streamer and `active.sql` from the spool (neither is ever in the store), the
/// spool's file system (the one that fills up while the store cannot be reached).
pub fn as_remote(mut d: DirFacts, url: &str, spool: &Path) -> Result<DirFacts> {
    let local = BackupDir::new(spool);
    d.path = url.to_string();
    if spool.is_dir() {
        d.streamer = streamer(&local)?;
        d.filesystem = space::of(spool).ok();
    } else {
        d.filesystem = None;
    }
    let running = d.streamer.is_running();
    let active = d.active_chain.clone();
    for c in &mut d.chains {
        let Ok(id) = c.id.parse::<crate::storage::backup_dir::ChainId>() else {
            continue;
        };
        let chain = local.chain(id);
        c.path = format!("{url}/{}", id.dir_name());
        c.active_sql_bytes = file_size(&chain.active_path());
        if c.active_sql_bytes.is_some() {
            c.last_activity_at = c.last_activity_at.max(mtime(&chain.active_path()));
        }
        c.streaming = running && active.as_deref() == Some(c.id.as_str());
    }
    Ok(d)
}

/// The slot the newest chain with a readable `metadata.json` streams from.
pub(crate) fn slot_from_metadata(dir: &DirFacts) -> Option<String> {
    dir.chains.iter().rev().find_map(|c| c.slot.clone())
}
