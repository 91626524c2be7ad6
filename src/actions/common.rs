//! The preamble the actions share: the backup directory `--backup-dir` names, its newest complete
//! chain, the connection (the chain's database unless one is named, `-W` prompting once) and the
//! check that the server reached is the one the chain was taken from.

use crate::cli::Invocation;
use crate::error::{Error, Result};
use crate::pg::conninfo::{self, ConnOptions, ConnParams, Environment};
use crate::pg::session::{self, Session, query_error};
use crate::storage::backup_dir::{BackupDir, Chain};
use crate::storage::metadata::Metadata;

/// The backup directory of an action the command line requires `--backup-dir` for.
pub fn backup_dir(inv: &Invocation) -> BackupDir {
    BackupDir::new(
        inv.backup_dir
            .as_deref()
            .expect("cli requires --backup-dir for this action"),
    )
}

/// [`backup_dir`], which must exist already (actions that only read or signal).
pub(crate) fn existing_backup_dir(inv: &Invocation) -> Result<BackupDir> {
    let dir = backup_dir(inv);
    if !dir.root().is_dir() {
        return Err(Error::backup(format!(
            "backup directory \"{}\" does not exist",
            dir.root().display()
        )));
    }
    Ok(dir)
}

/// The connection options and the environment resolved, with the `-W` prompt.
pub(crate) fn resolve_params(conn: &ConnOptions, env: &Environment) -> Result<ConnParams> {
    let mut params = conninfo::resolve(conn, env)?;
    if conn.force_prompt {
        params.password = Some(conninfo::prompt_password("Password: ")?);
    }
    Ok(params)
}

/// The backup directory's newest complete chain, or a clear error.
pub(crate) fn latest_chain(dir: &BackupDir) -> Result<(Chain, Metadata)> {
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
pub(crate) fn chain_slot(inv: &Invocation, metadata: &Metadata) -> Result<String> {
    if inv.slot_explicit && inv.slot != metadata.slot {
        return Err(Error::slot(format!(
            "replication slot \"{}\" does not belong to this backup: its chain streams from slot \"{}\"",
            inv.slot, metadata.slot
        )));
    }
    Ok(metadata.slot.clone())
}

/// Resolve the connection, defaulting the database to the chain's when none was named.
pub(crate) fn chain_params(inv: &Invocation, metadata: &Metadata) -> Result<ConnParams> {
    let env = Environment::from_process();
    let mut opts = inv.conn.clone();
    let named =
        opts.dbname.is_some() || std::env::var_os("PGDATABASE").is_some_and(|v| !v.is_empty());
    if !named {
        opts.dbname = Some(metadata.source.database.clone());
    }
    resolve_params(&opts, &env)
}

/// The connected server must be the one the chain was taken from.
pub(crate) async fn check_same_source(
    client: &tokio_postgres::Client,
    metadata: &Metadata,
) -> Result<()> {
    let sql = "SELECT current_database()::text, (SELECT system_identifier::text FROM pg_control_system())";
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let (database, system): (String, String) = (row.get(0), row.get(1));
    if database != metadata.source.database {
        return Err(Error::validation(format!(
            "this backup directory belongs to database \"{}\", but the connection is to \"{database}\"",
            metadata.source.database
        ))
        .with_hint(format!("Connect with -d {}.", metadata.source.database)));
    }
    if system != metadata.system_identifier {
        return Err(Error::validation(format!(
            "this backup directory belongs to the cluster with system identifier {}, but the server has {system}",
            metadata.system_identifier
        )));
    }
    Ok(())
}

/// The newest complete chain and a session with its source server.
pub struct ChainSession {
    pub dir: BackupDir,
    pub chain: Chain,
    pub metadata: Metadata,
    /// The chain's slot (an explicit `--slot` agreed with it).
    pub slot: String,
    pub params: ConnParams,
    pub session: Session,
}

/// What `--start` and `--new-chain` do first, in this order so that the cheapest mistake is
/// reported first: the directory and its chain, `--slot`, the connection, the source server.
pub(crate) async fn open_latest_chain(inv: &Invocation) -> Result<ChainSession> {
    let dir = backup_dir(inv);
    let (chain, metadata) = latest_chain(&dir)?;
    let slot = chain_slot(inv, &metadata)?;
    let params = chain_params(inv, &metadata)?;
    let session = session::connect(&params).await?;
    check_same_source(&session.client, &metadata).await?;
    Ok(ChainSession {
        dir,
        chain,
        metadata,
        slot,
        params,
        session,
    })
}
