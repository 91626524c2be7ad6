//! The base backup's child programs: `pg_dump` (from the slot's exported snapshot) and
//! `pg_dumpall --globals-only`, their output streamed through the chosen compression into the
//! chain's files. Children get the connection through their environment (never a password in
//! argv) and the binaries are chosen to match the server's major version.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::pg::conninfo::ConnParams;
use crate::storage::compress::{self, Compression, WrittenFile};

/// Where a PostgreSQL client program of the server's major version lives: `PG_BINDIR`, then
/// Debian's versioned directory, then `PATH` (pg_dump refuses servers newer than itself, so the
/// newest fitting binary matters).
pub(crate) fn find_program(program: &str, server_major: u32) -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        let path = Path::new(&dir).join(program);
        if path.exists() {
            return path;
        }
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin/{program}"));
    if debian.exists() {
        return debian;
    }
    PathBuf::from(program)
}

/// Run `command`, stream its stdout into `path` (compressed), fail with its stderr.
async fn run_into_file(
    mut command: Command,
    what: &str,
    path: &Path,
    compression: Compression,
) -> Result<WrittenFile> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let mut child = command.spawn().map_err(|e| {
        Error::backup(format!(
            "could not run {what} \"{program}\": {}",
            crate::error::io_reason(&e)
        ))
    })?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let written = compress::write_stream(&mut stdout, path, compression).await;
    let status = child
        .wait()
        .await
        .map_err(|e| Error::backup(format!("could not wait for {what}: {e}")))?;
    let errors = errors.await.unwrap_or_default();
    if !status.success() {
        let _ = tokio::fs::remove_file(path).await;
        let detail = errors.trim();
        let mut error = Error::backup(format!("{what} failed ({status})"));
        if !detail.is_empty() {
            error = error.with_detail(detail.to_string());
        }
        return Err(error);
    }
    for line in errors.lines().filter(|l| !l.trim().is_empty()) {
        crate::ui::warning(&format!("{what}: {line}"));
    }
    Ok(written?)
}

/// The base backup: `pg_dump` of `params.dbname` as of `snapshot`.
pub(crate) async fn dump_base(
    params: &ConnParams,
    server_major: u32,
    snapshot: &str,
    path: &Path,
    compression: Compression,
) -> Result<WrittenFile> {
    let mut command = Command::new(find_program("pg_dump", server_major));
    params.configure_command(&mut command);
    command.args([
        "--no-password",
        "--format=plain",
        // Identifiers that are keywords in a newer major still restore there.
        "--quote-all-identifiers",
        &format!("--snapshot={snapshot}"),
    ]);
    run_into_file(command, "pg_dump", path, compression).await
}

/// Roles, memberships and tablespaces: `pg_dumpall --globals-only`. Without the right to read
/// password hashes it falls back to `--no-role-passwords`, and says so.
pub(crate) async fn dump_globals(
    params: &ConnParams,
    server_major: u32,
    path: &Path,
    compression: Compression,
) -> Result<WrittenFile> {
    let attempt = |extra: Option<&'static str>| {
        let mut command = Command::new(find_program("pg_dumpall", server_major));
        params.configure_command(&mut command);
        command.args([
            "--no-password",
            "--globals-only",
            "--quote-all-identifiers",
            "-l",
        ]);
        command.arg(&params.dbname);
        if let Some(extra) = extra {
            command.arg(extra);
        }
        command
    };
    match run_into_file(attempt(None), "pg_dumpall", path, compression).await {
        Err(err)
            if err
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("permission denied") && d.contains("pg_authid")) =>
        {
            crate::ui::warning(
                "role passwords are not backed up: the connecting role may not read pg_authid",
            );
            run_into_file(
                attempt(Some("--no-role-passwords")),
                "pg_dumpall",
                path,
                compression,
            )
            .await
        }
        other => other,
    }
}
