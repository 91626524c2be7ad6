//! A chain's base, taken at an exported snapshot: `pg_dump` into `base.sql` (or, with
//! `--jobs`, in pg_dump's directory format into `base.dir/`), `pg_dumpall --globals-only` into
//! `globals.sql`, the facts `--restore` needs into `metadata.json`, and the
//! completion marker last, so a chain is either whole or recognisably unfinished. Shared by
//! `--init` and `--new-chain`.

use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::pg::conninfo::ConnParams;
use crate::pg::programs;
use crate::pg::replication::{
    CreatedSlot, DEFAULT_PLUGIN, ReplConn, ReplicationError, SystemIdentification,
};
use crate::pg::session::query_error;
use crate::storage::backup_dir::BASE_DIR_NAME;
use crate::storage::backup_dir::{BackupDir, Chain};
use crate::storage::compress::{Compression, WrittenFile};
use crate::storage::metadata::{BaseFormat, Extension, FileRecord, Metadata, Source};
use crate::ui;

/// What the server says about the database being backed up, as `metadata.json` keeps it.
pub async fn read_source(client: &Client) -> Result<Source> {
    // Through to_jsonb so the same query works on servers with and without ICU columns
    // (daticulocale became datlocale in 17).
    let sql = "SELECT current_setting('server_version'),
                          current_setting('server_version_num')::int,
                          current_database()::text,
                          pg_encoding_to_char(d.encoding)::text,
                          d.datcollate::text, d.datctype::text,
                          to_jsonb(d) ->> 'datlocprovider',
                          coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale')
                     FROM pg_database d WHERE d.datname = current_database()";
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    let ext_sql = "SELECT extname::text, extversion FROM pg_extension ORDER BY 1";
    let extensions = client
        .query(ext_sql, &[])
        .await
        .map_err(|e| query_error(ext_sql, &e))?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            version: r.get(1),
        })
        .collect();
    Ok(Source {
        server_version: row.get(0),
        server_version_num: row.get::<_, i32>(1) as u32,
        database: row.get(2),
        encoding: row.get(3),
        lc_collate: row.get(4),
        lc_ctype: row.get(5),
        locale_provider: row.get(6),
        icu_locale: row.get(7),
        extensions,
    })
}

/// A replication connection that created a slot with an exported snapshot. It must stay open,
/// and idle, until the base has been taken at that snapshot: [`Snapshot::take_chain`] closes it.
pub struct Snapshot {
    repl: ReplConn,
    system: SystemIdentification,
    created: CreatedSlot,
}

impl Snapshot {
    /// Create `slot` (a temporary one lends only its snapshot and consistent point).
    pub async fn create(
        params: &ConnParams,
        slot: &str,
        temporary: bool,
    ) -> std::result::Result<Snapshot, ReplicationError> {
        let mut repl = ReplConn::connect(params).await?;
        let system = repl.identify_system().await?;
        let created = repl
            .create_logical_slot(slot, DEFAULT_PLUGIN, temporary, true)
            .await?;
        Ok(Snapshot {
            repl,
            system,
            created,
        })
    }

    pub fn name(&self) -> &str {
        self.created.snapshot_name.as_deref().unwrap_or_default()
    }

    /// The slot's consistent point: where the chain's stream starts.
    pub fn start_lsn(&self) -> Lsn {
        self.created.consistent_point
    }

    /// Create a new chain in `dir` with a complete base at this snapshot, then close the
    /// connection; see [`new_chain`].
    pub(crate) async fn take_chain(
        self,
        dir: &BackupDir,
        request: &BaseRequest<'_>,
        action: &str,
    ) -> Result<(Chain, Metadata)> {
        let result = new_chain(dir, &self, request, action).await;
        self.repl.close().await;
        result
    }
}

/// What the chain's base is taken with, beside the snapshot.
pub struct BaseRequest<'a> {
    /// Narrowed to the server holding the snapshot (see [`crate::pg::session::Session::params`]).
    pub params: &'a ConnParams,
    pub source: &'a Source,
    /// The backup's slot, which streams the chain (not a temporary one that lent the snapshot).
    pub slot: &'a str,
    pub compression: Compression,
    /// `--jobs`: a directory-format base taken with this many pg_dump workers.
    pub jobs: Option<u32>,
}

impl BaseRequest<'_> {
    fn format(&self) -> BaseFormat {
        match self.jobs {
            Some(_) => BaseFormat::Directory,
            None => BaseFormat::Plain,
        }
    }
}

/// Refuses, before anything is created, a `--compress` that pg_dump cannot apply to a
/// directory-format base (lz4 and zstd before pg_dump 16).
pub fn check_request(jobs: Option<u32>, compression: Compression, server_major: u32) -> Result<()> {
    if jobs.is_some() {
        programs::dump_compress_arg(compression, server_major).map_err(|reason| {
            Error::validation(reason)
                .with_hint("Use --compress=gzip (or none) with --jobs, or leave out --jobs for a plain base.sql.")
        })?;
    }
    Ok(())
}

/// A file's record in metadata.json: its name inside the chain directory (`prefix/` for a
/// file inside the directory base).
fn record(file: &WrittenFile, prefix: Option<&str>) -> FileRecord {
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    FileRecord {
        name: match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name,
        },
        size: file.size,
        sha256: file.sha256.clone(),
    }
}

/// Fill `chain` with a complete base. On error the caller removes the chain directory.
async fn take(chain: &Chain, snapshot: &Snapshot, request: &BaseRequest<'_>) -> Result<Metadata> {
    let major = request.source.server_major();
    let mut files = Vec::new();
    match request.jobs {
        None => {
            let base = programs::dump_base(
                request.params,
                major,
                snapshot.name(),
                &chain.base_path(request.compression),
                request.compression,
            )
            .await?;
            ui::done(&format!(
                "Base backup written: {} ({})",
                base.path.display(),
                ui::size(base.size)
            ));
            files.push(record(&base, None));
        }
        Some(jobs) => {
            let path = chain.base_dir_path();
            let written = programs::dump_base_dir(
                request.params,
                major,
                snapshot.name(),
                &path,
                jobs,
                request.compression,
            )
            .await?;
            let size: u64 = written.iter().map(|f| f.size).sum();
            ui::done(&format!(
                "Base backup written: {}/ ({}, {} files, {jobs} parallel job{})",
                path.display(),
                ui::size(size),
                written.len(),
                if jobs == 1 { "" } else { "s" }
            ));
            files.extend(written.iter().map(|f| record(f, Some(BASE_DIR_NAME))));
        }
    }
    let globals = programs::dump_globals(
        request.params,
        major,
        &chain.globals_path(request.compression),
        request.compression,
    )
    .await?;
    ui::done(&format!("Globals written: {}", globals.path.display()));
    files.push(record(&globals, None));

    let metadata = Metadata {
        format: request.format().metadata_format(),
        pg_scribe_version: crate::cli::VERSION.to_string(),
        chain_id: chain.id.to_string(),
        source: request.source.clone(),
        slot: request.slot.to_string(),
        start_lsn: snapshot.start_lsn(),
        system_identifier: snapshot.system.systemid.clone(),
        timeline: snapshot.system.timeline,
        compression: request.compression,
        base_format: request.format(),
        files,
        manifests: true,
        created_at: OffsetDateTime::now_utc(),
    };
    chain.write_metadata(&metadata)?;
    chain.mark_complete()?;
    Ok(metadata)
}

/// Create a new chain in `dir` and fill it with a complete base; on failure or on SIGINT/SIGTERM
/// the chain directory is removed again. `action` names the command in the interruption error.
async fn new_chain(
    dir: &BackupDir,
    snapshot: &Snapshot,
    request: &BaseRequest<'_>,
    action: &str,
) -> Result<(Chain, Metadata)> {
    let chain = dir.create_chain(OffsetDateTime::now_utc())?;
    let result = tokio::select! {
        r = take(&chain, snapshot, request) => r,
        signal = interrupted() => Err(Error::backup(format!("{action} interrupted by {signal}"))),
    };
    match result {
        Ok(metadata) => Ok((chain, metadata)),
        Err(err) => {
            let _ = std::fs::remove_dir_all(&chain.dir);
            Err(err)
        }
    }
}

/// Resolves when the user asks us to stop (SIGINT or SIGTERM).
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
