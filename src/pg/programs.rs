//! The base backup's child programs: `pg_dump` (from the slot's exported snapshot) and
//! `pg_dumpall --globals-only`, their output streamed through the chosen compression into the
//! chain's files — or, with `--jobs`, `pg_dump --format=directory` writing `base.dir/` itself
//! with parallel workers. Children get the connection through their environment (never a
//! password in argv) and the binaries are chosen to match the server's major version.

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

/// pg_dump's `--compress` for a directory-format base: pg_dump compresses each data file
/// itself. gzip is written as a bare level, which every pg_dump reads; lz4 and zstd exist from
/// pg_dump 16 on. `Err` is the reason the combination cannot be taken.
pub(crate) fn dump_compress_arg(
    c: Compression,
    server_major: u32,
) -> std::result::Result<String, String> {
    use crate::storage::compress::Method;
    match c.method {
        Method::None => Ok("--compress=0".into()),
        // zlib's own default level.
        Method::Gzip => Ok(format!("--compress={}", c.level.unwrap_or(6))),
        Method::Lz4 | Method::Zstd if server_major < 16 => Err(format!(
            "pg_dump {server_major} cannot compress a directory-format base with {}: only gzip (pg_dump 16 and later also lz4 and zstd)",
            c.method.name()
        )),
        Method::Lz4 | Method::Zstd => Ok(format!("--compress={c}")),
    }
}

/// The base in pg_dump's directory format, at `snapshot`, with `jobs` parallel workers (all at
/// the same exported snapshot): `path` must not exist. Every file is left 0600 and the
/// directory 0700 (the child runs with umask 077, and modes are set again after, whatever it
/// did); pg_dump fsyncs what it wrote. Returns each file as `base.dir/<name>` would record it.
pub(crate) async fn dump_base_dir(
    params: &ConnParams,
    server_major: u32,
    snapshot: &str,
    path: &Path,
    jobs: u32,
    compression: Compression,
) -> Result<Vec<WrittenFile>> {
    let compress = dump_compress_arg(compression, server_major).map_err(Error::validation)?;
    let mut command = Command::new(find_program("pg_dump", server_major));
    params.configure_command(&mut command);
    command.args([
        "--no-password",
        "--format=directory",
        "--quote-all-identifiers",
        &format!("--jobs={jobs}"),
        &format!("--snapshot={snapshot}"),
        &compress,
        "--file",
    ]);
    command.arg(path);
    // SAFETY: umask is async-signal-safe and touches only the child's own process state.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let child = command.spawn().map_err(|e| {
        Error::backup(format!(
            "could not run pg_dump \"{program}\": {}",
            crate::error::io_reason(&e)
        ))
    })?;
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::backup(format!("could not wait for pg_dump: {e}")))?;
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let _ = tokio::fs::remove_dir_all(path).await;
        let mut error = Error::backup(format!("pg_dump failed ({})", out.status));
        if !errors.trim().is_empty() {
            error = error.with_detail(errors.trim().to_string());
        }
        return Err(error);
    }
    for line in errors.lines().filter(|l| !l.trim().is_empty()) {
        crate::ui::warning(&format!("pg_dump: {line}"));
    }
    directory_files(path).await
}

/// Every file of a directory-format base, made private, with its size and SHA-256.
async fn directory_files(dir: &Path) -> Result<Vec<WrittenFile>> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Error::backup(format!(
            "could not {what} \"{}\": {}",
            p.display(),
            crate::error::io_reason(&e)
        ))
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| fail("change permissions of directory", dir, e))?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail("open directory", dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| fail("read directory", dir, e))?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail("stat file", &path, e))?;
        if !meta.is_file() {
            return Err(Error::backup(format!(
                "pg_dump left \"{}\", which is not a regular file, in its directory",
                path.display()
            )));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("change permissions of file", &path, e))?;
        let (size, sha256) = compress::file_digest(&path).await?;
        files.push(WrittenFile {
            path,
            size,
            sha256,
            raw_size: size,
        });
    }
    Ok(files)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_bases_are_compressed_by_pg_dump_as_it_can() {
        let arg = |spec: &str, major| dump_compress_arg(spec.parse().unwrap(), major);
        assert_eq!(arg("none", 15).unwrap(), "--compress=0");
        assert_eq!(arg("gzip", 15).unwrap(), "--compress=6");
        assert_eq!(arg("gzip:1", 15).unwrap(), "--compress=1");
        assert_eq!(arg("zstd:9", 16).unwrap(), "--compress=zstd:9");
        assert_eq!(arg("lz4", 18).unwrap(), "--compress=lz4");
        let refused = arg("zstd", 15).unwrap_err();
        assert!(
            refused.starts_with("pg_dump 15 cannot compress"),
            "{refused}"
        );
    }
}
