//! `--init`: validate the server (phase 1), then create the extension, the slot with an
//! exported snapshot and the first chain's base at exactly that snapshot (phase 2). Anything
//! that fails after the slot exists — including Ctrl-C — drops the slot and removes what was
//! written, so a failed init leaves nothing behind.

use std::path::Path;

use crate::actions::base::{self, BaseRequest, Snapshot};
use crate::actions::checks;
use crate::cli::{DEFAULT_SLOT, Invocation};
use crate::error::{Error, Result};
use crate::pg::conninfo::ConnParams;
use crate::pg::replication::ReplConn;
use crate::pg::session::{self, query_error};
use crate::storage::backup_dir::BackupDir;
use crate::storage::compress::Compression;
use crate::ui;

use super::Outcome;

pub async fn run(inv: &Invocation, params: &ConnParams) -> Result<Outcome> {
    // The directory is checked before anything else: it needs no server and touches nothing.
    let dir = super::common::backup_dir(inv);
    let root = dir.root();
    if root.exists() && !root.is_dir() {
        return Err(Error::validation(format!(
            "backup directory \"{}\" exists but is not a directory",
            root.display()
        )));
    }
    let usable = dir
        .is_missing_or_empty()
        .map_err(|e| Error::validation(e.to_string()))?;
    if !usable {
        return Err(Error::validation(format!(
            "backup directory \"{}\" exists and is not empty",
            root.display()
        ))
        .with_hint(
            "--init needs a new or empty directory; use --new-chain to add a chain to an existing backup directory.",
        ));
    }
    let session = session::connect(params).await?;
    let client = &session.client;

    ui::say("Validating server configuration");
    let results = checks::run_all(client).await?;
    let failed = checks::report(&results);
    if failed > 0 {
        if !inv.force {
            return Err(checks::failed_error(failed));
        }
        ui::warning(&format!(
            "continuing despite {failed} failed check(s) because --force was given"
        ));
    }
    ui::say("\nSetting up");

    let exists_sql = "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1";
    let existing = client
        .query(exists_sql, &[&inv.slot])
        .await
        .map_err(|e| query_error(exists_sql, &e))?;
    if !existing.is_empty() {
        return Err(slot_exists(&inv.slot));
    }

    refuse_squatted_schema(client).await?;
    // An older version gets the capture it needs for format 2 (doc/security.md).
    let create = "CREATE EXTENSION IF NOT EXISTS wal2sql; ALTER EXTENSION wal2sql UPDATE";
    client
        .batch_execute(create)
        .await
        .map_err(|e| query_error(create, &e))?;
    let version = session::query_text(
        client,
        "SELECT extversion FROM pg_extension WHERE extname = 'wal2sql'",
    )
    .await?;
    ui::done(&format!(
        "Extension wal2sql {version} ready (DDL capture on)"
    ));

    let source = base::read_source(client).await?;
    base::check_request(
        inv.jobs,
        inv.compress.unwrap_or(Compression::NONE),
        source.server_major(),
    )?;
    let narrowed = session.params(params);
    let created_root = !root.exists();
    dir.create_root()?;

    let snapshot = match Snapshot::create(&narrowed, &inv.slot, false).await {
        Ok(snapshot) => snapshot,
        Err(err) => {
            remove_root_if_ours(root, created_root);
            if err.sqlstate() == Some("42710") {
                return Err(slot_exists(&inv.slot));
            }
            return Err(err.into());
        }
    };
    ui::done(&format!(
        "Replication slot '{}' created at LSN {} (snapshot {})",
        inv.slot,
        snapshot.start_lsn(),
        snapshot.name()
    ));

    let request = BaseRequest {
        params: &narrowed,
        source: &source,
        slot: &inv.slot,
        compression: inv.compress.unwrap_or(Compression::NONE),
        jobs: inv.jobs,
    };
    let result = snapshot.take_chain(&dir, &request, "initialization").await;

    match result {
        Ok((chain, _metadata)) => {
            ui::done(&format!("Initial chain created: {}", chain.id));
            // On object storage the chain is uploaded next, from the spool `root`.
            let (location, backup_dir, spool) = match &inv.remote_url {
                Some(url) => (
                    format!("{url}/{}/", chain.id.dir_name()),
                    url.clone(),
                    inv.spool_dir.as_ref().map_or(String::new(), |d| {
                        format!(" --spool-dir {}", shell_word(&d.display().to_string()))
                    }),
                ),
                None => (
                    format!("{}/", chain.dir.display()),
                    root.display().to_string(),
                    String::new(),
                ),
            };
            ui::say(&format!("Location: {location}"));
            ui::say("\nNext step: Start streaming with:");
            ui::say(&format!(
                "pg_scribe --start -d {} --backup-dir {}{spool}{}",
                shell_word(&source.database),
                shell_word(&backup_dir),
                if inv.slot == DEFAULT_SLOT {
                    String::new()
                } else {
                    format!(" --slot {}", inv.slot)
                }
            ));
            Ok(Outcome::Success)
        }
        Err(err) => Err(cleanup(&narrowed, &inv.slot, root, created_root, err).await),
    }
}

/// The extension lives in schema `wal2sql` (not relocatable): a role that owns that schema, or
/// may create in it, could drop or shadow the extension's objects and with them all DDL capture,
/// silently. Such a schema existing before `--init` is refused, `--force` or not.
async fn refuse_squatted_schema(client: &tokio_postgres::Client) -> Result<()> {
    let sql = "SELECT r.rolname::text, r.rolsuper, \
                      EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a \
                              LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee \
                              WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' \
                                AND NOT coalesce(g.rolsuper, false)) \
               FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner \
               WHERE n.nspname OPERATOR(pg_catalog.=) 'wal2sql'";
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let (owner, superuser, grants): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if !superuser {
        return Err(Error::validation(format!(
            "schema \"wal2sql\" exists and is owned by role \"{owner}\", which is not a superuser"
        ))
        .with_detail("The wal2sql extension is installed into that schema: its owner could drop the extension's objects, and with them all DDL capture, without anyone noticing.")
        .with_hint(format!(
            "Check what the schema holds, then drop it (DROP SCHEMA wal2sql CASCADE;) or give it to a superuser (ALTER SCHEMA wal2sql OWNER TO postgres;), and run --init again. Role \"{owner}\" may have created it to take over DDL capture."
        )));
    }
    if grants {
        return Err(Error::validation(
            "schema \"wal2sql\" grants CREATE to a role that is not a superuser",
        )
        .with_detail("A role that may create objects in the extension's schema could shadow or replace what DDL capture relies on.")
        .with_hint("REVOKE CREATE ON SCHEMA wal2sql FROM PUBLIC, <role>;  -- then run --init again"));
    }
    Ok(())
}

fn slot_exists(slot: &str) -> Error {
    Error::slot(format!("replication slot \"{slot}\" already exists")).with_hint(format!(
        "Choose another --slot, or drop it if nothing uses it: SELECT pg_drop_replication_slot('{slot}');"
    ))
}

/// Undo phase 2 after the slot was created: drop the slot (waiting for our own walsender to
/// let go of it), remove every chain written, and the backup directory if we made it.
async fn cleanup(
    params: &ConnParams,
    slot: &str,
    root: &Path,
    created_root: bool,
    err: Error,
) -> Error {
    let dir = BackupDir::new(root);
    if let Ok(chains) = dir.chains() {
        for info in chains {
            let _ = std::fs::remove_dir_all(&info.chain.dir);
        }
    }
    remove_root_if_ours(root, created_root);
    let dropped = async {
        let mut conn = ReplConn::connect(params).await?;
        conn.drop_slot(slot, true).await?;
        conn.close().await;
        Ok::<_, crate::pg::replication::ReplicationError>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(30), dropped).await {
        Ok(Ok(())) => ui::say(&format!(
            "Cleaned up: dropped slot '{slot}' and removed the partial backup"
        )),
        Ok(Err(drop_err)) => ui::warning(&format!(
            "could not drop replication slot \"{slot}\": {drop_err}; drop it by hand: SELECT pg_drop_replication_slot('{slot}');"
        )),
        Err(_) => ui::warning(&format!(
            "timed out dropping replication slot \"{slot}\"; drop it by hand: SELECT pg_drop_replication_slot('{slot}');"
        )),
    }
    err
}

fn remove_root_if_ours(root: &Path, created_root: bool) {
    if created_root {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// Quote a word for a shell command line shown to the user, only when it needs it.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
