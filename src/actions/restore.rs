//! `--restore`: a chain's globals and base through psql (a directory-format base through
//! pg_restore, with `--jobs` in parallel), then its differentials through the
//! in-process replay engine (`crate::replay`), then the sequences; see `doc/restore.md`.
//!
//! Order: choose the chain and check its files (before touching the server), check or create
//! the target, globals, base, sealed diffs in order (and `active.sql` with `--include-active`),
//! sequences, trigger states back. The backup directory is only ever read.

use std::path::PathBuf;
use std::time::Instant;

use tokio_postgres::Client;

use crate::actions::Outcome;
use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::pg::conninfo::ConnParams;
use crate::pg::session::{self, Session, one_text, query_error, rows_text};
use crate::storage::backup_dir::{BackupDir, BaseLocation, Chain};
use crate::storage::compress::Method;
use crate::storage::diff_format::{StopAt, format_commit_time};
use crate::storage::expire::ChainReader;
use crate::storage::metadata::{BaseFormat, Metadata};
use crate::storage::verify;
use crate::ui;

use crate::pg::quote;
use crate::pg::{pg_restore, psql};
use crate::replay::engine::{DiffFile, Engine, Limits};
use crate::replay::guard::Guard;
use crate::replay::progress::{self, Progress};
use crate::replay::{engine, sequences};

/// Everything read from the backup directory before the server is touched.
struct Plan {
    chain: Chain,
    /// What verification found in `active.sql` (to say what a restore without it leaves out).
    active: Option<verify::ActiveReport>,
    metadata: Metadata,
    base: BaseLocation,
    /// `globals.sql` of the base, then the `globals-<stamp>.sql` the streamer saved at each
    /// rotation (roles created since the base), oldest first.
    globals: Vec<PathBuf>,
    diffs: Vec<DiffFile>,
    /// Keeps `--expire` from removing the chain while it is read.
    _reading: ChainReader,
}

fn describe_chains(dir: &BackupDir) -> String {
    match dir.chains() {
        Ok(list) if list.is_empty() => "The backup directory holds no chains.".into(),
        Ok(list) => format!(
            "Chains present: {}.",
            list.iter()
                .map(|c| {
                    if c.complete {
                        c.chain.id.to_string()
                    } else {
                        format!("{} (incomplete)", c.chain.id)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("The chains could not be listed: {e}."),
    }
}

async fn plan(inv: &Invocation) -> Result<Plan> {
    let dir = super::common::existing_backup_dir(inv)?;
    let root = dir.root();
    let chain = match inv.chain_id {
        Some(id) => {
            let chain = dir.chain(id);
            if !chain.dir.is_dir() {
                return Err(Error::backup(format!(
                    "chain {id} not found in \"{}\"",
                    root.display()
                ))
                .with_detail(describe_chains(&dir)));
            }
            if !chain.is_complete() {
                return Err(Error::backup(format!(
                    "chain {id} is incomplete (it has no COMPLETE marker)"
                ))
                .with_detail(describe_chains(&dir))
                .with_hint("A chain whose base backup did not finish cannot be restored; choose a complete chain."));
            }
            chain
        }
        None => match inv.up_to {
            Some(stop) => chain_covering(&dir, stop)?,
            None => dir.latest_complete_chain()?.ok_or_else(|| {
                Error::backup(format!("no complete chain in \"{}\"", root.display()))
                    .with_detail(describe_chains(&dir))
            })?,
        },
    };
    let reading = ChainReader::hold(&chain)?;
    let metadata = chain.read_metadata()?;
    let missing = |what: &str| Error::backup(format!("chain {} has no {what}", chain.id));
    let base = chain
        .find_base()?
        .ok_or_else(|| match metadata.base_format {
            BaseFormat::Plain => missing("base.sql file"),
            BaseFormat::Directory => missing("base.dir directory"),
        })?;
    let globals = chain
        .find_globals()?
        .ok_or_else(|| missing("globals.sql file"))?;
    let report = verify::verify_chain(
        &chain,
        verify::Scope {
            stop: inv.up_to,
            read_active: inv.include_active,
        },
    )
    .await;
    refuse_damage(&chain, root, &report)?;
    // One line for the many files an older chain may hold without manifests.
    let (legacy, other): (Vec<_>, Vec<_>) = report
        .warnings
        .iter()
        .partition(|w| w.problem.starts_with("sealed before manifests existed"));
    if let Some(first) = legacy.first() {
        ui::warning(&format!(
            "{} differential(s) of chain {}, from {} on, were sealed before manifests existed: checked their structure and positions only",
            legacy.len(),
            chain.id,
            first.file
        ));
    }
    for w in other {
        ui::warning(&format!("{}: {}", w.file, w.problem));
    }
    if metadata.source.encoding != "UTF8" {
        return Err(Error::backup(format!(
            "restoring a database with encoding {} is not supported yet",
            metadata.source.encoding
        ))
        .with_detail("The differentials are replayed over a UTF8 client connection; only UTF8 sources are restored exactly for now.")
        .with_hint("Restore the base by hand with psql -f, and the differentials with PGCLIENTENCODING set to the source's encoding."));
    }
    if let Some(stop) = inv.up_to {
        match stop {
            StopAt::Lsn(l) if l < metadata.start_lsn => {
                return Err(Error::backup(format!(
                    "--up-to {l} is before chain {}'s base (its stream starts at {})",
                    chain.id, metadata.start_lsn
                ))
                .with_hint("Choose an older chain with --chain-id."));
            }
            StopAt::Time(t) if t < chain.id.0.to_time() => {
                return Err(Error::backup(format!(
                    "--up-to {} is before chain {} was created",
                    format_commit_time(t),
                    chain.id
                ))
                .with_hint("Choose an older chain with --chain-id."));
            }
            _ => {}
        }
    }
    let mut diffs: Vec<DiffFile> = chain
        .sealed_diffs()?
        .into_iter()
        .map(|d| DiffFile {
            name: d.name.to_string(),
            compressed: d.name.method != Method::None,
            path: d.path,
            active: false,
            size: d.size,
        })
        .collect();
    if inv.include_active && chain.has_active() {
        let path = chain.active_path();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        diffs.push(DiffFile {
            name: crate::storage::backup_dir::ACTIVE_NAME.into(),
            path,
            active: true,
            size,
            compressed: false,
        });
    }
    let mut globals = vec![globals];
    globals.extend(chain.later_globals()?);
    Ok(Plan {
        chain,
        active: report.active.clone(),
        metadata,
        base,
        globals,
        diffs,
        _reading: reading,
    })
}

/// `--up-to` without `--chain-id`: the newest complete chain that starts before the target (by
/// LSN its `start_lsn`, by time the end of its base backup).
fn chain_covering(dir: &BackupDir, stop: StopAt) -> Result<Chain> {
    let chains = dir.chains()?;
    let mut picked = None;
    for c in chains.iter().rev().filter(|c| c.complete) {
        // By time, the base must be finished before the target (metadata.json is written once
        // it is): a base taken later may hold transactions committed after the target.
        let covers = match stop {
            StopAt::Time(t) => c.chain.read_metadata()?.created_at <= t,
            StopAt::Lsn(l) => c.chain.read_metadata()?.start_lsn <= l,
        };
        if covers {
            picked = Some(c.chain.clone());
            break;
        }
    }
    let target = match stop {
        StopAt::Time(t) => format_commit_time(t),
        StopAt::Lsn(l) => l.to_string(),
    };
    match picked {
        Some(chain) => {
            ui::say(&format!(
                "Chose chain {} for --up-to {target}: the newest complete chain that starts before it",
                chain.id
            ));
            Ok(chain)
        }
        None => Err(Error::backup(format!(
            "no complete chain in \"{}\" covers --up-to {target}: every chain starts after it",
            dir.root().display()
        ))
        .with_detail(describe_chains(dir))
        .with_hint(
            "A chain can restore only to points after its base was taken; choose a later --up-to.",
        )),
    }
}

/// Refuses a chain whose files are not whole, before anything touches the target.
fn refuse_damage(
    chain: &Chain,
    root: &std::path::Path,
    report: &verify::ChainReport,
) -> Result<()> {
    let Some(first) = report.problems.first() else {
        return Ok(());
    };
    let all: Vec<String> = report
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.file, p.problem))
        .collect();
    Err(Error::backup(format!(
        "chain {} is damaged: {}: {}",
        chain.id, first.file, first.problem
    ))
    .with_detail(format!(
        "Nothing was restored. Problems found before touching the target:\n{}",
        all.join("\n")
    ))
    .with_hint(format!(
        "Run pg_scribe --verify --backup-dir {} --chain-id {} for a full report; restore from another chain, or with --up-to a point before the damage.",
        root.display(),
        chain.id
    )))
}

async fn connect_maintenance(params: &ConnParams) -> Result<Session> {
    match session::connect(&params.with_dbname("postgres")).await {
        Ok(s) => Ok(s),
        Err(first) => session::connect(&params.with_dbname("template1"))
            .await
            .map_err(|_| first),
    }
}

fn create_sql(target: &str, m: &Metadata, server_num: u32) -> String {
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote::ident(target),
        quote::escaped_literal(&m.source.encoding),
        quote::escaped_literal(&m.source.lc_collate),
        quote::escaped_literal(&m.source.lc_ctype)
    );
    if server_num >= 150000 {
        match m.source.locale_provider.as_deref() {
            Some("i") => {
                sql.push_str(" LOCALE_PROVIDER icu");
                if let Some(l) = &m.source.icu_locale {
                    sql.push_str(&format!(" ICU_LOCALE {}", quote::escaped_literal(l)));
                }
            }
            Some("b") => {
                sql.push_str(" LOCALE_PROVIDER builtin");
                if let Some(l) = &m.source.icu_locale {
                    sql.push_str(&format!(" BUILTIN_LOCALE {}", quote::escaped_literal(l)));
                }
            }
            Some("c") => sql.push_str(" LOCALE_PROVIDER libc"),
            _ => {}
        }
    }
    sql
}

/// What the target holds that makes it not empty (up to a few names).
async fn target_contents(client: &Client) -> Result<Vec<String>> {
    let sql = "\
SELECT kind || ' ' || name FROM (
  SELECT 'relation' AS kind, format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
  UNION ALL
  SELECT 'schema', format('%I', nspname) FROM pg_catalog.pg_namespace
   WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND nspname !~ '^pg_'
  UNION ALL
  SELECT 'extension', format('%I', extname) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'
  UNION ALL
  SELECT 'function', p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
) x ORDER BY 1 LIMIT 6";
    Ok(rows_text(client, sql)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

pub async fn run(inv: &Invocation, params: &ConnParams) -> Result<Outcome> {
    let started = Instant::now();
    let plan = plan(inv).await?;
    let target = params.dbname.clone();

    let maintenance = connect_maintenance(params).await?;
    let mclient = &maintenance.client;
    let is_super = one_text(
        mclient,
        "SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname = current_user",
    )
    .await?;
    if is_super.as_deref() != Some("true") {
        return Err(Error::backup("restore requires a superuser connection").with_detail(
            "The replay sets session_replication_role, replays DDL as the roles that ran it and restores roles; only a superuser may do all of that.",
        ));
    }
    let server_num: u32 = one_text(mclient, "SELECT current_setting('server_version_num')")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let exists_sql = format!(
        "SELECT 1 FROM pg_catalog.pg_database WHERE datname = {}",
        quote::escaped_literal(&target)
    );
    let exists = one_text(mclient, &exists_sql).await?.is_some();
    let available = rows_text(
        mclient,
        "SELECT name FROM pg_catalog.pg_available_extensions",
    )
    .await?;
    let missing: Vec<String> = plan
        .metadata
        .source
        .extensions
        .iter()
        .filter(|e| {
            !available
                .iter()
                .any(|r| r.first().and_then(|v| v.as_deref()) == Some(e.name.as_str()))
        })
        .map(|e| e.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Error::backup(format!(
            "the target server lacks extensions the source uses: {}",
            missing.join(", ")
        ))
        .with_hint("Install them on the target server first."));
    }

    ui::say(&format!("Restoring from chain: {}\n", plan.chain.id));
    if inv.create {
        if exists {
            return Err(Error::backup(format!("database \"{target}\" already exists"))
                .with_hint("Choose another name, drop it, or restore into it without --create (it must be empty)."));
        }
        let sql = create_sql(&target, &plan.metadata, server_num);
        mclient
            .batch_execute(&sql)
            .await
            .map_err(|e| query_error(&sql, &e))?;
        ui::done(&format!("Created database \"{target}\""));
    } else {
        if !exists {
            return Err(
                Error::backup(format!("database \"{target}\" does not exist"))
                    .with_hint("Use --create to create it."),
            );
        }
        let session = session::connect(&params.with_dbname(&target)).await?;
        let contents = target_contents(&session.client).await?;
        if !contents.is_empty() {
            return Err(Error::backup(format!("database \"{target}\" is not empty"))
                .with_detail(format!("It holds: {}.", contents.join(", ")))
                .with_hint("Restore into an empty database, or use --create with a new name."));
        }
    }

    let narrowed = maintenance.params(params).with_dbname(&target);
    let work = restore_into(inv, &plan, &narrowed, server_num);
    let result = tokio::select! {
        r = work => r,
        signal = crate::actions::base::interrupted() => Err(Error::backup(format!("restore interrupted by {signal}"))),
    };
    match result {
        Ok(0) => {
            ui::say(&format!(
                "Restore complete (took {})",
                ui::duration_text(started.elapsed())
            ));
            Ok(Outcome::Success)
        }
        // --keep-going: the database stays, with everything that applied.
        Ok(skipped) => Err(Error::backup(format!(
            "{skipped} transaction(s) could not be applied and were skipped"
        ))
        .with_detail("Each is listed above with its file, transaction and error; everything else was applied.")),
        Err(err) => {
            if inv.create {
                let drop = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote::ident(&target)
                );
                // The first connection may have been idle for long: use a fresh one.
                let dropped = match connect_maintenance(params).await {
                    Ok(s) => s
                        .client
                        .batch_execute(&drop)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.message),
                };
                match dropped {
                    Ok(()) => ui::say(&format!(
                        "Dropped the partially restored database \"{target}\""
                    )),
                    Err(e) => ui::warning(&format!(
                        "could not drop the partially restored database \"{target}\": {e}; drop it by hand"
                    )),
                }
            }
            Err(err)
        }
    }
}

async fn restore_globals(
    params: &ConnParams,
    major: u32,
    file: &std::path::Path,
    note_existing: bool,
) -> Result<()> {
    let (ok, run) = psql::run(params, major, file, false, false, None).await?;
    if !ok {
        // Without ON_ERROR_STOP, psql fails only when it could not run the script at all.
        return Err(
            Error::backup(format!("restoring globals \"{}\" failed", file.display()))
                .with_detail(psql::tail(&run.stderr, 20)),
        );
    }
    let errors = psql::errors(&run.stderr);
    let (existing, fatal): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| e.code == "42710");
    if note_existing {
        for e in &existing {
            crate::ui::say(&format!("{}: note: {} (kept)", ui::PROGNAME, e.message));
        }
    }
    if !fatal.is_empty() {
        return Err(
            Error::backup(format!("restoring globals failed: {}", fatal[0].message))
                .with_detail(psql::tail(&run.stderr, 20)),
        );
    }
    Ok(())
}

/// The base: psql with a plain `base.sql` (one transaction), pg_restore with `base.dir/` (one
/// transaction with one job, else `--jobs` parallel jobs that cannot share one).
async fn restore_base(
    inv: &Invocation,
    plan: &Plan,
    params: &ConnParams,
    major: u32,
) -> Result<()> {
    let base = &plan.base;
    let jobs = inv.jobs.unwrap_or(1);
    let started = Instant::now();
    if base.format == BaseFormat::Plain && jobs > 1 {
        ui::say(&format!(
            "{}: note: {} is one SQL script, restored in one stream: --jobs applies to directory-format bases (taken with --jobs)",
            ui::PROGNAME,
            base.name()
        ));
    }
    let (ok, run) = match base.format {
        BaseFormat::Plain => {
            let total = (Method::from_file_name(&base.name()) == Method::None).then(|| base.size());
            let mut progress = Progress::phase("restoring base", "rows", total, None);
            let result =
                psql::run(params, major, &base.path, true, true, Some(&mut progress)).await;
            progress.clear();
            result?
        }
        BaseFormat::Directory => pg_restore::run(params, major, &base.path, jobs).await?,
    };
    if !ok {
        let mut error = Error::backup(format!(
            "restoring the base backup \"{}\" failed",
            base.path.display()
        ))
        .with_detail(psql::tail(&run.stderr, 20));
        let mut hints = Vec::new();
        // SQL written by a newer pg_dump may use what an older server lacks (doc/restore.md).
        let source_major = plan.metadata.source.server_version_num / 10000;
        if source_major > major {
            hints.push(format!(
                "The chain was taken from PostgreSQL {source_major}; its base backup may use SQL that this PostgreSQL {major} server does not understand. Restore into PostgreSQL {source_major} or later."
            ));
        }
        if base.format == BaseFormat::Directory && jobs > 1 && !inv.create {
            // Parallel jobs commit separately: what they did stays in the target.
            hints.push(format!(
                "pg_restore ran {jobs} parallel jobs, which cannot share one transaction: database \"{}\" now holds part of the base. Drop and recreate it before restoring again, or restore with --create, which drops the database it created when the restore fails.",
                params.dbname
            ));
        }
        if !hints.is_empty() {
            error = error.with_hint(hints.join(" "));
        }
        return Err(error);
    }
    ui::done(&format!(
        "Restored base backup ({} rows)",
        ui::thousands(run.rows)
    ));
    let how = match base.format {
        BaseFormat::Plain => "psql, one transaction".to_string(),
        BaseFormat::Directory if jobs > 1 => format!("pg_restore, {jobs} parallel jobs"),
        BaseFormat::Directory => "pg_restore, one transaction".to_string(),
    };
    ui::say(&format!(
        "  - {}: {} ({how})",
        base.name(),
        progress::summary(run.bytes, started.elapsed())
    ));
    Ok(())
}

async fn restore_into(
    inv: &Invocation,
    plan: &Plan,
    params: &ConnParams,
    server_num: u32,
) -> Result<usize> {
    let major = server_num / 10000;

    // Globals: statement by statement (no ON_ERROR_STOP); an object that exists is a note.
    for (i, file) in plan.globals.iter().enumerate() {
        // Later dumps repeat every role: only the first file's "already exists" is news.
        restore_globals(params, major, file, i == 0).await?;
    }
    ui::done("Restored globals (roles and tablespaces)");

    restore_base(inv, plan, params, major).await?;

    // Differentials, in-process.
    let session = session::connect(params).await?;
    let client = &session.client;
    engine::prepare_session(client, &plan.metadata.source.encoding).await?;
    let guard = Guard::start(client).await?;
    if !guard.is_empty() {
        ui::say(&format!(
            "Disabled {} ENABLE ALWAYS/REPLICA trigger(s), rule(s) or event trigger(s) for the replay",
            guard.len()
        ));
    }
    let total = if plan.diffs.iter().all(|d| !d.compressed) {
        Some(plan.diffs.iter().map(|d| d.size).sum())
    } else {
        None
    };
    let mut engine = Engine::new(
        client,
        guard,
        plan.metadata.start_lsn,
        inv.up_to,
        Limits::default(),
        total,
        !inv.sync_sequences,
        &plan.metadata.source.encoding,
    );
    engine.keep_going = inv.keep_going;
    let apply_started = Instant::now();
    let applied = async {
        for file in &plan.diffs {
            if !engine.apply_file(file).await? {
                break;
            }
        }
        engine.drain_all().await
    }
    .await;
    engine.clear_progress();
    if let Err(err) = applied {
        engine.abort().await;
        if let Err(e) = engine.guard.finish(client).await {
            ui::warning(&e.message);
        }
        return Err(err);
    }
    let report = &engine.report;
    ui::done(&format!(
        "Applied {} differentials ({} transactions, {} in {})",
        report.files.len(),
        ui::thousands(report.txns),
        ui::size(report.bytes),
        ui::duration_text(apply_started.elapsed())
    ));
    for (name, txns) in &report.files {
        ui::say(&format!("  - {name} ({txns} transactions)"));
    }
    if let Some((bytes, xid)) = report.ignored_tail {
        ui::warning(&format!(
            "ignored the unfinished last transaction{} of active.sql ({bytes} bytes)",
            xid.map(|x| format!(" (xid {x})")).unwrap_or_default()
        ));
    }
    if let Some(stop) = inv.up_to {
        let target = match stop {
            StopAt::Time(t) => format_commit_time(t),
            StopAt::Lsn(l) => l.to_string(),
        };
        let last = match &report.last {
            Some(h) => format!(
                "last applied: xid {} committed {} (commit_lsn {})",
                h.xid,
                format_commit_time(h.commit_time),
                h.commit_lsn
            ),
            None => "no transaction of the differentials applied".into(),
        };
        match &report.stopped_before {
            Some(h) => ui::done(&format!(
                "Stopped at --up-to {target}: {last}; next would have been xid {} committed {} (commit_lsn {})",
                h.xid,
                format_commit_time(h.commit_time),
                h.commit_lsn
            )),
            None => ui::done(&format!(
                "Every transaction in the chain is within --up-to {target}; {last}"
            )),
        }
    }

    if !inv.include_active
        && report.stopped_before.is_none()
        && let Some(a) = plan.active.as_ref().filter(|a| a.txns > 0)
    {
        let last = a
            .last
            .as_ref()
            .map(|t| t.commit_time.clone())
            .unwrap_or_default();
        ui::warning_with(
            &format!(
                "active.sql holds {} committed transaction(s), up to commit time {last}, that were not applied",
                ui::thousands(a.txns)
            ),
            Some(
                "A restore applies the sealed differentials only, unless asked for the one being written.",
            ),
            Some("Restore again with --include-active to apply them too."),
        );
    }

    if inv.sync_sequences {
        match sequences::sync_owned(client).await {
            Ok((checked, advanced)) => {
                ui::done(&format!(
                    "Synchronized {checked} sequences ({} advanced to their column's maximum)",
                    advanced.len()
                ));
                for a in &advanced {
                    ui::say(&format!("  - {a}"));
                }
            }
            Err(e) => {
                if let Err(g) = engine.guard.finish(client).await {
                    ui::warning(&g.message);
                }
                return Err(e);
            }
        }
    }
    // Placeholder roles nothing depends on any more go; the others stay, reported.
    for role in &engine.report.placeholders {
        let sql = format!("DROP ROLE {}", crate::pg::quote::ident(role));
        match client.batch_execute(&sql).await {
            Ok(()) => ui::say(&format!(
                "{}: note: dropped placeholder role \"{role}\" (nothing depends on it)",
                ui::PROGNAME
            )),
            Err(e) => ui::warning_with(
                &format!("kept placeholder role \"{role}\" (NOLOGIN): objects depend on it"),
                e.as_db_error().and_then(|d| d.detail()),
                Some("Give it the source's attributes (ALTER ROLE), or replace it and drop it."),
            ),
        }
    }
    let restored = engine.guard.finish(client).await?;
    if restored > 0 {
        ui::done(&format!(
            "Re-enabled {restored} trigger(s), rule(s) or event trigger(s) in their recorded state"
        ));
    }
    // --keep-going: every skipped transaction, as the error that stopped it.
    for e in &engine.report.skipped {
        ui::warning_with(
            &format!("skipped: {}", e.message),
            e.detail.as_deref(),
            e.hint.as_deref(),
        );
    }
    Ok(engine.report.skipped.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_database_follows_metadata() {
        let m = crate::storage::metadata::tests::sample();
        assert_eq!(
            create_sql("new db", &m, 150020),
            "CREATE DATABASE \"new db\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8' LOCALE_PROVIDER libc"
        );
        assert!(!create_sql("x", &m, 140000).contains("LOCALE_PROVIDER"));
    }
}
