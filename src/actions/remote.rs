//! The actions on a backup directory on object storage (`--backup-dir s3://BUCKET/PREFIX`).
//! Each runs as on a local directory, over the spool (the actions that write) or over a view
//! of the store (the actions that only read), with the store's part around it: `--init` checks
//! the store is empty and uploads the chain, `--start` uploads what it seals while it streams,
//! `--new-chain` uploads the new chain, `--restore`/`--verify`/`--status` read the store in
//! place, `--expire` deletes from it. See doc/object-storage.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Action, Invocation};
use crate::error::{Error, Result};
use crate::storage::backup_dir::{BackupDir, COMPLETE_NAME, ChainId, METADATA_NAME};
use crate::storage::expire::{self, ChainUsage, KeepReason};
use crate::storage::object::lock::{self, Lock};
use crate::storage::object::spool;
use crate::storage::object::view::View;
use crate::storage::object::{self, Location, Remote};
use crate::storage::pidfile::{self, Streamer};
use crate::ui;

use super::{Outcome, dispatch};

/// Time between two looks at the spool while streaming: a seal is in the store within this.
const UPLOAD_EVERY: Duration = Duration::from_secs(2);
/// The longest wait between attempts while the store fails.
const UPLOAD_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long a stopping streamer tries to upload what it sealed last.
const FINAL_UPLOAD: Duration = Duration::from_secs(30);

/// The `s3://` URL `--backup-dir` names, if it names one.
pub(super) fn url_of(inv: &Invocation) -> Option<String> {
    let dir = inv.backup_dir.as_deref()?;
    object::is_url(dir).then(|| dir.to_string_lossy().into_owned())
}

fn spool_dir(inv: &Invocation, location: &Location) -> Result<PathBuf> {
    match &inv.spool_dir {
        Some(d) => Ok(d.clone()),
        None => spool::default_dir(&location.url()),
    }
}

/// Paths of a view stand for the URL in what the user reads.
fn in_words(mut err: Error, view: &Path, url: &str) -> Error {
    let root = view.display().to_string();
    err.message = err.message.replace(&root, url);
    err.detail = err.detail.map(|d| d.replace(&root, url));
    err.hint = err.hint.map(|h| h.replace(&root, url));
    err
}

pub(super) async fn run(mut inv: Invocation, url: String) -> Result<Outcome> {
    let location = Location::parse(&url)?;
    let remote = Remote::connect(&location)?;
    let url = location.url();
    inv.remote_url = Some(url.clone());
    match inv.action {
        Action::Init => init(inv, &remote).await,
        Action::Start => start(inv, &remote).await,
        Action::RotateDiff => {
            inv.backup_dir = Some(spool_dir(&inv, &location)?);
            dispatch(&inv).await
        }
        Action::NewChain => new_chain(inv, &remote).await,
        Action::Restore => {
            let view = View::open(&remote).await?;
            if inv.include_active {
                copy_active(&spool_dir(&inv, &location)?, view.dir());
            }
            inv.backup_dir = Some(view.dir().to_path_buf());
            dispatch(&inv)
                .await
                .map_err(|e| in_words(e, view.dir(), &url))
        }
        Action::Verify => {
            let view = View::open(&remote).await?;
            inv.backup_dir = Some(view.dir().to_path_buf());
            let out = dispatch(&inv)
                .await
                .map_err(|e| in_words(e, view.dir(), &url))?;
            for info in BackupDir::new(view.dir()).chains()? {
                view.put_back(info.chain.id, crate::storage::verify::RESULT_NAME)
                    .await?;
            }
            Ok(out)
        }
        Action::Status => {
            inv.spool_dir = Some(spool_dir(&inv, &location)?);
            // An unreachable store is reported, with the spool's backlog, not an error.
            let (view, store_error) = match View::open(&remote).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.message)),
            };
            inv.backup_dir = view.as_ref().map(|v| v.dir().to_path_buf());
            if view.is_none() && !inv.slot_explicit {
                // The slot is then known from the spool's copy of the newest metadata.json.
                let spool = BackupDir::new(inv.spool_dir.as_deref().expect("set above"));
                if let Ok(Some(chain)) = spool.latest_complete_chain()
                    && let Ok(md) = chain.read_metadata()
                {
                    inv.slot = md.slot;
                    inv.slot_explicit = true;
                }
            }
            let env = crate::pg::conninfo::Environment::from_process();
            let params = super::common::resolve_params(&inv.conn, &env)?;
            let out = super::status::run_with(&inv, &params, &env, store_error).await;
            match &view {
                Some(v) => out.map_err(|e| in_words(e, v.dir(), &url)),
                None => out,
            }
        }
        Action::Expire => {
            let keep = inv.keep_chains.expect("cli requires --keep-chains");
            let spool = spool_dir(&inv, &location).ok();
            expire_remote(&remote, spool.as_deref(), keep, inv.dry_run).await?;
            Ok(Outcome::Success)
        }
    }
}

/// `--restore --include-active`: `active.sql` is never uploaded; the spool on this machine
/// has it, if this is the machine that streams.
fn copy_active(spool: &Path, view: &Path) {
    let Ok(chains) = BackupDir::new(spool).chains() else {
        return;
    };
    for info in chains {
        let from = info.chain.active_path();
        let to = view
            .join(info.chain.id.dir_name())
            .join(from.file_name().unwrap_or_default());
        if from.is_file() && to.parent().is_some_and(Path::is_dir) {
            let _ = std::fs::copy(&from, &to);
        }
    }
}

async fn init(mut inv: Invocation, remote: &Remote) -> Result<Outcome> {
    let url = remote.url();
    if !remote.list("").await?.is_empty() {
        return Err(Error::validation(format!(
            "backup directory \"{url}\" exists and is not empty"
        ))
        .with_hint(
            "--init needs an empty prefix; use --new-chain to add a chain to an existing backup directory.",
        ));
    }
    let spool = spool_dir(&inv, remote.location())?;
    let empty = std::fs::read_dir(&spool).map_or(true, |mut rd| rd.next().is_none());
    if !empty {
        return Err(Error::validation(format!(
            "spool directory \"{}\" exists and is not empty",
            spool.display()
        ))
        .with_detail("It holds the unfinished files of an earlier backup to this URL.")
        .with_hint("Remove it if that backup is gone, or name another one with --spool-dir."));
    }
    inv.backup_dir = Some(spool.clone());
    let out = dispatch(&inv).await?;
    let dir = BackupDir::new(&spool);
    match spool::sync(remote, &dir).await {
        Ok(report) => {
            let bytes: u64 = report.uploaded.iter().map(|(_, s)| s).sum();
            ui::done(&format!(
                "Uploaded the chain to {url} ({} file(s), {})",
                report.uploaded.len(),
                ui::size(bytes)
            ));
            Ok(out)
        }
        Err(e) => Err(e
            .with_detail(format!(
                "The chain is complete in the spool \"{}\" but not yet in the store.",
                spool.display()
            ))
            .with_hint("pg_scribe --start uploads it once the store can be reached.")),
    }
}

async fn new_chain(mut inv: Invocation, remote: &Remote) -> Result<Outcome> {
    let spool = spool_dir(&inv, remote.location())?;
    inv.backup_dir = Some(spool.clone());
    let keep = inv.keep_chains.take();
    let out = dispatch(&inv).await?;
    // A running streamer uploads the chain too; both uploads are idempotent.
    let report = spool::sync(remote, &BackupDir::new(&spool)).await?;
    if !report.uploaded.is_empty() {
        ui::done(&format!(
            "Uploaded {} file(s) to {}",
            report.uploaded.len(),
            remote.url()
        ));
    }
    if let Some(keep) = keep {
        expire_remote(remote, Some(&spool), keep, false).await?;
    }
    Ok(out)
}

async fn start(mut inv: Invocation, remote: &Remote) -> Result<Outcome> {
    let spool = spool_dir(&inv, remote.location())?;
    let dir = BackupDir::new(&spool);
    let local_chain = spool.is_dir() && dir.chains()?.iter().any(|c| c.complete);
    if !local_chain {
        let in_store = remote
            .list("")
            .await?
            .iter()
            .any(|e| e.name.ends_with(COMPLETE_NAME));
        let mut err = Error::backup(format!(
            "spool directory \"{}\" holds no chain of \"{}\"",
            spool.display(),
            remote.url()
        ));
        err = if in_store {
            err.with_detail("The store holds chains, but streaming resumes only from the spool of the machine that streamed them (the transactions not yet sealed are there).")
                .with_hint("Name that spool with --spool-dir; if it is lost, start a new backup with pg_scribe --init into a new prefix.")
        } else {
            err.with_hint("Initialize the backup with pg_scribe --init.")
        };
        return Err(err);
    }
    inv.backup_dir = Some(spool.clone());
    // A streamer on this spool already: it holds the lock; --start refuses as for a local
    // directory, without touching the lock.
    if matches!(pidfile::probe(&dir)?, Streamer::Running(_)) {
        return dispatch(&inv).await;
    }
    let (lock, previous) = Lock::acquire(remote, &spool).await?;
    if let Some(h) =
        previous.filter(|h| h.host != lock.holder().host || h.spool != lock.holder().spool)
    {
        ui::warning(&format!(
            "took over the lock of \"{}\" from host \"{}\" (PID {}), whose lease ran out at {}",
            remote.url(),
            h.host,
            h.pid,
            h.expires_at
        ));
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let uploader = tokio::spawn(upload_loop(remote.clone(), dir.clone(), stopped.clone()));
    // Renewed on its own: a long upload must not let the lease run out.
    let leaser = tokio::spawn(keep_lease(lock, stopped));
    let out = dispatch(&inv).await;
    let _ = stop.send(true);
    let _ = uploader.await;
    let lock = leaser.await.ok();
    // What was sealed last, before the process ends.
    match tokio::time::timeout(FINAL_UPLOAD, spool::sync(remote, &dir)).await {
        Ok(Ok(report)) => say_uploaded(&report),
        Ok(Err(e)) => ui::warning(&format!(
            "could not upload everything before stopping: {}; the next --start uploads it",
            e.message
        )),
        Err(_) => ui::warning("gave up uploading after 30 s; the next --start uploads the rest"),
    }
    if let Some(lock) = lock
        && let Err(e) = lock.release().await
    {
        ui::warning(&format!("could not remove the lock object: {}", e.message));
    }
    out
}

fn say_uploaded(report: &spool::Report) {
    for (name, size) in &report.uploaded {
        ui::done(&format!("Uploaded {name} ({})", ui::size(*size)));
    }
}

/// Uploads what the spool holds, at start and then every few seconds, while the streamer runs.
/// Failures are retried with a growing pause, each new error said once.
async fn upload_loop(remote: Remote, dir: BackupDir, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut pause = UPLOAD_EVERY;
    let mut last_error: Option<String> = None;
    loop {
        // A stopping streamer does not wait for an upload: the last attempt comes after.
        let synced = tokio::select! {
            r = spool::sync(&remote, &dir) => r,
            _ = stop.changed() => return,
        };
        match synced {
            Ok(report) => {
                say_uploaded(&report);
                if last_error.take().is_some() {
                    ui::done(&format!("Uploads to {} resumed", remote.url()));
                }
                pause = UPLOAD_EVERY;
            }
            Err(e) => {
                if last_error.as_deref() != Some(e.message.as_str()) {
                    ui::warning(&format!(
                        "{}; will retry (the files wait in the spool \"{}\")",
                        e.message,
                        dir.root().display()
                    ));
                }
                last_error = Some(e.message);
                pause = (pause * 2).min(UPLOAD_BACKOFF_MAX);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Renews the lock's lease every minute until told to stop, then hands the lock back. A failed
/// renewal is retried a minute later: an unreachable store lets the lease run out, which is
/// what a lease is for.
async fn keep_lease(mut lock: Lock, mut stop: tokio::sync::watch::Receiver<bool>) -> Lock {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lock::RENEW_EVERY) => {}
            _ = stop.changed() => return lock,
        }
        let stopped = tokio::select! {
            r = lock.renew() => {
                if let Err(e) = r {
                    ui::error(&e);
                }
                false
            }
            _ = stop.changed() => true,
        };
        if stopped {
            return lock;
        }
    }
}

/// `--expire` on the store: the same rules as for a local directory (`storage::expire`), the
/// chain being streamed known from the spool (it holds that chain's `active.sql`).
async fn expire_remote(
    remote: &Remote,
    spool: Option<&Path>,
    keep: usize,
    dry_run: bool,
) -> Result<()> {
    let entries = remote.list("").await?;
    let mut chains: Vec<ChainUsage> = Vec::new();
    for e in &entries {
        let Some((dir, file)) = e.name.split_once('/') else {
            continue;
        };
        let Some(id) = ChainId::from_dir_name(dir) else {
            continue;
        };
        if chains.last().is_none_or(|c| c.id != id) {
            let has_active = spool.is_some_and(|s| BackupDir::new(s).chain(id).has_active());
            chains.push(ChainUsage {
                id,
                dir: PathBuf::from(dir),
                complete: false,
                restorable: false,
                has_active,
                disk_bytes: 0,
            });
        }
        let c = chains.last_mut().expect("pushed above");
        c.disk_bytes += e.size;
        if file == COMPLETE_NAME {
            c.complete = true;
        }
    }
    for c in &mut chains {
        let has = |name: &str| {
            entries
                .iter()
                .any(|e| e.name == format!("{}/{name}", c.id.dir_name()))
        };
        let base = entries
            .iter()
            .any(|e| e.name.starts_with(&format!("{}/base.sql", c.id.dir_name())));
        c.restorable = c.complete && has(METADATA_NAME) && base;
    }
    let plan = expire::plan(&chains, keep)?;
    for (c, reason) in &plan.keep {
        if *reason != KeepReason::Retained {
            ui::say(&format!(
                "Keeping chain-{} ({}): {}",
                c.id,
                ui::size(c.disk_bytes),
                reason.describe()
            ));
        }
    }
    if plan.remove.is_empty() {
        ui::done(&format!("Nothing to expire (--keep-chains {keep})"));
        return Ok(());
    }
    let mut freed = 0;
    for c in &plan.remove {
        if dry_run {
            ui::say(&format!(
                "Would remove chain-{} ({})",
                c.id,
                ui::size(c.disk_bytes)
            ));
            continue;
        }
        let prefix = format!("{}/", c.id.dir_name());
        // The marker first: from then on nothing takes the chain for a usable one.
        remote.delete(&format!("{prefix}{COMPLETE_NAME}")).await?;
        for e in entries.iter().filter(|e| e.name.starts_with(&prefix)) {
            remote.delete(&e.name).await?;
        }
        if let Some(s) = spool {
            let local = BackupDir::new(s).chain(c.id);
            if local.dir.is_dir() && !local.has_active() {
                let _ = std::fs::remove_dir_all(&local.dir);
            }
        }
        freed += c.disk_bytes;
        ui::done(&format!(
            "Removed chain-{} ({})",
            c.id,
            ui::size(c.disk_bytes)
        ));
    }
    if dry_run {
        ui::say(&format!(
            "Dry run: {} chain(s) ({}) would be removed; nothing was changed",
            plan.remove.len(),
            ui::size(plan.bytes_to_free())
        ));
    } else {
        ui::done(&format!(
            "Expired {} chain(s) from {}, freed {}",
            plan.remove.len(),
            remote.url(),
            ui::size(freed)
        ));
    }
    Ok(())
}
