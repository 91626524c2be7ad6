//! `--status`: slot health, lag and WAL retention, the backup directory's chains and streamer,
//! and warnings (exit 10) — as text for people, as one JSON object, as Prometheus metrics or
//! as a Nagios line (`doc/status.md`, `doc/operations.md`). It only reads: SELECTs on system views over one session, directory
//! listings, and a probe of the pidfile that never takes it from a streamer.
//!
//! The report is data, so it goes to stdout; warnings also go to stderr in PostgreSQL's format.
//! Errors (no server: exit 2; no slot: exit 3; unreadable directory: exit 4) print nothing on
//! stdout, except in the monitoring formats, which render a failed check as such.
//!
//! Offline rule: with `--backup-dir` and no server named anywhere — none of `-d -h -p -U -W` and
//! none of `PGDATABASE PGHOST PGHOSTADDR PGPORT PGSERVICE` — the directory is reported alone and
//! the slot section says it was not checked. This is the disaster-recovery case (doc/status.md)
//! (`pg_scribe --status --backup-dir /backups/production` while the server is gone). As soon as a
//! server is named, failing to reach it is exit 2: a monitor must not mistake a down server for
//! a healthy backup.

mod facts;
#[cfg(test)]
mod fixtures;
mod nagios;
mod prometheus;
mod render;
mod warnings;

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{DEFAULT_SLOT, Invocation, StatusFormat, StatusThresholds};
use crate::error::{Error, Result};
use crate::pg::conninfo::{ConnParams, Environment};
use crate::pg::session;
use crate::ui;

use super::Outcome;
use facts::{DirFacts, ServerFacts, SlotFacts, SlotNameSource, rfc3339};
use warnings::Warning;

/// Version of the JSON report's schema; bumped when a field changes meaning or disappears.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// How long a status check may wait for a server that accepts the TCP connection but never
/// answers; libpq's `connect_timeout` (or `PGCONNECT_TIMEOUT`) bounds the connection itself and
/// defaults to this too, because a cron job or a monitor must not hang forever.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables that name a server; see the offline rule in the module comment.
const SERVER_VARS: [&str; 5] = ["PGDATABASE", "PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE"];

#[derive(Debug, Clone, Serialize)]
pub struct ThresholdFacts {
    pub lag_warn_bytes: u64,
    pub retained_warn_bytes: u64,
    pub diff_age_warn_seconds: u64,
    /// `--free-warn` as given (`10%` or a size).
    pub free_warn: String,
    /// The same in bytes for this file system; `None` without a backup directory.
    pub free_warn_bytes: Option<u64>,
}

/// Everything `--status` found: the `--json` object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: u32,
    pub pg_scribe_version: &'static str,
    #[serde(with = "rfc3339")]
    pub checked_at: OffsetDateTime,
    /// `ok`, `warning` or `critical` (errors print `error`, see doc/status.md).
    pub status: &'static str,
    /// 0 healthy, 10 warnings, 3 or 4 critical.
    pub exit_code: u8,
    /// True when no server was named and only the directory was examined.
    pub offline: bool,
    pub server: Option<ServerFacts>,
    pub slot: Option<SlotFacts>,
    pub backup_dir: Option<DirFacts>,
    /// With an `s3://` backup directory: the store and the spool's upload backlog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadFacts>,
    pub thresholds: ThresholdFacts,
    pub warnings: Vec<Warning>,
}

/// A backup directory on object storage: what waits in the spool (sealed but not uploaded
/// files are what the machine's loss would cost; `active.sql` is never uploaded).
#[derive(Debug, Clone, Serialize)]
pub struct UploadFacts {
    pub url: String,
    pub spool: String,
    pub backlog_files: u64,
    pub backlog_bytes: u64,
    /// When the oldest file waiting was written.
    #[serde(with = "rfc3339::option")]
    pub oldest_pending_at: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option")]
    pub last_upload_at: Option<OffsetDateTime>,
    /// The streamer's last failed upload, cleared by its next success.
    pub last_error: Option<String>,
    /// Why the store could not be listed by this check, if it could not.
    pub store_error: Option<String>,
}

/// A backlog whose oldest file waits longer than this is a warning: uploads normally follow a
/// seal within seconds.
const UPLOAD_AGE_WARN: Duration = Duration::from_secs(15 * 60);

fn upload_facts(url: &str, spool: &std::path::Path, store_error: Option<String>) -> UploadFacts {
    let b = crate::storage::object::spool::backlog(spool).unwrap_or_default();
    UploadFacts {
        url: url.to_string(),
        spool: spool.display().to_string(),
        backlog_files: b.files,
        backlog_bytes: b.bytes,
        oldest_pending_at: b.oldest.map(OffsetDateTime::from),
        last_upload_at: b
            .last_upload
            .and_then(|t| crate::storage::diff_format::parse_commit_time(&t).ok()),
        last_error: b.last_error,
        store_error,
    }
}

fn upload_warnings(u: &UploadFacts, now: OffsetDateTime, out: &mut Vec<Warning>) {
    let mut warn = |code, message: String| {
        out.push(Warning {
            code,
            severity: "warning",
            message,
            hint: None,
        })
    };
    if let Some(e) = &u.store_error {
        warn(
            "store_unreachable",
            format!("the store \"{}\" could not be read: {e}", u.url),
        );
    }
    if let Some(t) = u.oldest_pending_at
        && (now - t).whole_seconds() > UPLOAD_AGE_WARN.as_secs() as i64
    {
        warn(
            "upload_backlog",
            format!(
                "{} file(s) ({}) wait in the spool \"{}\" for upload to \"{}\", the oldest since {}",
                u.backlog_files,
                ui::size(u.backlog_bytes),
                u.spool,
                u.url,
                render::when(t)
            ),
        );
    }
    if let Some(e) = u.last_error.as_ref().filter(|_| u.backlog_files > 0) {
        warn(
            "upload_failing",
            format!("uploads to \"{}\" fail: {e}", u.url),
        );
    }
}

/// Whether the command line or the environment names a server to check.
fn server_named(inv: &Invocation, env: &Environment) -> bool {
    let c = &inv.conn;
    c.dbname.is_some()
        || c.host.is_some()
        || c.port.is_some()
        || c.username.is_some()
        || c.force_prompt
        || SERVER_VARS
            .iter()
            .any(|v| env.vars.get(*v).is_some_and(|x| !x.is_empty()))
}

pub async fn run(inv: &Invocation, params: &ConnParams, env: &Environment) -> Result<Outcome> {
    run_with(inv, params, env, None).await
}

/// [`run`]; for an `s3://` backup directory (`inv.remote_url`), `inv.backup_dir` is a view of
/// the store (or `None` when it could not be listed: `store_error`) and `inv.spool_dir` the spool.
pub(crate) async fn run_with(
    inv: &Invocation,
    params: &ConnParams,
    env: &Environment,
    store_error: Option<String>,
) -> Result<Outcome> {
    let checked_at = OffsetDateTime::now_utc();
    // The monitoring formats report a failed check in their own terms (metrics, a CRITICAL
    // line) instead of only as an error on stderr.
    let monitoring = matches!(inv.format, StatusFormat::Prometheus | StatusFormat::Nagios);
    let mut failure: Option<Error> = None;
    let dir = match inv.backup_dir.as_deref().map(facts::directory).transpose() {
        Ok(dir) => dir,
        Err(err) if monitoring => {
            failure = Some(err);
            None
        }
        Err(err) => return Err(err),
    };
    let upload = inv
        .remote_url
        .as_ref()
        .zip(inv.spool_dir.as_ref())
        .map(|(url, spool)| upload_facts(url, spool, store_error));
    let dir = match (dir, &upload) {
        (Some(d), Some(u)) => Some(facts::as_remote(d, &u.url, std::path::Path::new(&u.spool))?),
        (d, _) => d,
    };
    let offline = (inv.backup_dir.is_some() || upload.is_some()) && !server_named(inv, env);
    let mut slot_name = if inv.slot_explicit {
        inv.slot.clone()
    } else {
        dir.as_ref()
            .and_then(facts::slot_from_metadata)
            .unwrap_or_default()
    };
    let (server, slot) = if offline {
        (None, None)
    } else {
        let (name, source) = if inv.slot_explicit {
            (inv.slot.clone(), SlotNameSource::Option)
        } else if let Some(name) = dir.as_ref().and_then(facts::slot_from_metadata) {
            (name, SlotNameSource::Metadata)
        } else {
            (DEFAULT_SLOT.to_string(), SlotNameSource::Default)
        };
        slot_name = name.clone();
        match check_server(params, &name, source).await {
            Ok((server, slot)) => (Some(server), Some(slot)),
            Err(err) if monitoring => {
                failure = Some(err);
                (None, None)
            }
            Err(err) => return Err(err),
        }
    };

    let limits: &StatusThresholds = &inv.thresholds;
    let mut found = warnings::evaluate(slot.as_ref(), dir.as_ref(), limits, checked_at);
    if let Some(u) = &upload {
        upload_warnings(u, checked_at, &mut found);
    }
    let outcome = match warnings::exit_code(&found) {
        0 => Outcome::Success,
        10 => Outcome::Warnings,
        code => Outcome::Critical(code),
    };
    let free_warn_bytes = dir
        .as_ref()
        .and_then(|d| d.filesystem.as_ref())
        .map(|fs| limits.free.bytes_for(fs));
    let report = Report {
        format: FORMAT_VERSION,
        pg_scribe_version: crate::cli::VERSION,
        checked_at,
        status: match outcome {
            Outcome::Success => "ok",
            Outcome::Warnings => "warning",
            _ => "critical",
        },
        exit_code: outcome.exit_code(),
        offline,
        server,
        slot,
        backup_dir: dir,
        upload,
        thresholds: ThresholdFacts {
            lag_warn_bytes: limits.lag_bytes,
            retained_warn_bytes: limits.retained_bytes,
            diff_age_warn_seconds: limits.diff_age.as_secs(),
            free_warn: limits.free.describe(),
            free_warn_bytes,
        },
        warnings: found,
    };

    if inv.format == StatusFormat::Nagios {
        let (line, state) = nagios::render(&report, failure.as_ref());
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        return Ok(Outcome::Nagios(state.exit_code()));
    }
    if inv.format == StatusFormat::Prometheus {
        let dir_label = report.backup_dir.as_ref().map_or_else(
            || {
                inv.backup_dir
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            },
            |d| d.path.clone(),
        );
        let text = prometheus::render(&report, failure.as_ref(), &slot_name, &dir_label);
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        if let Some(err) = failure {
            return Err(err);
        }
        for w in &report.warnings {
            ui::warning(&w.message);
        }
        return Ok(outcome);
    }
    let text = if inv.json {
        let mut s = serde_json::to_string_pretty(&report).expect("the report always serializes");
        s.push('\n');
        s
    } else {
        render::text(&report)
    };
    // A closed stdout (`| head`) must not hide the verdict: the exit code still tells it.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    for w in &report.warnings {
        if w.severity == "critical" {
            ui::error(
                &Error::backup(w.message.clone()).with_hint(w.hint.clone().unwrap_or_default()),
            );
        } else {
            ui::warning(&w.message);
        }
    }
    Ok(outcome)
}

/// The server part: one session, a few SELECTs, bounded in time.
async fn check_server(
    params: &ConnParams,
    slot: &str,
    source: SlotNameSource,
) -> Result<(ServerFacts, SlotFacts)> {
    let mut params = params.clone();
    // A server that accepts and never answers must not hang a cron job: without a
    // connect_timeout of the user's, bound each attempt (session::connect enforces it).
    params.connect_timeout.get_or_insert(SERVER_TIMEOUT);
    let session = session::connect(&params).await?;
    let where_ = session.target.describe();
    let work = async {
        let client = &session.client;
        // The slot first, then the server position: lag is measured against a position at
        // least as new as what the slot reported, never negative.
        let slot = facts::slot(client, slot, source).await?;
        let server = facts::server(client, where_.clone()).await?;
        let slot = slot.measured_against(server.current_lsn);
        Ok::<_, Error>((server, slot))
    };
    match tokio::time::timeout(SERVER_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::connection(format!(
            "the {where_} did not answer the status queries within {} seconds",
            SERVER_TIMEOUT.as_secs()
        ))),
    }
}
