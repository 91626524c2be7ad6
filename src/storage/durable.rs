//! Crash-safe file-system primitives: private (0700/0600) creation that does not depend on the
//! umask, fsync of files and of the directories that name them, and atomic replacement
//! (temp file + fsync + rename + directory fsync). Every backup file goes through these, so that
//! after a crash a file is either absent or complete, and never readable by other users.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::storage::error::{ChainError, Result};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// The directory that names `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| ChainError::dir("open", dir, e))?;
    d.sync_all().map_err(|e| ChainError::dir("fsync", dir, e))
}

pub fn fsync_file(f: &File, path: &Path) -> Result<()> {
    f.sync_all().map_err(|e| ChainError::file("fsync", path, e))
}

/// Creates one directory with mode 0700 whatever the umask, and makes its name durable.
/// Fails with `AlreadyExists` (inside [`ChainError::Io`]) if it exists, which callers use to
/// detect a race for a name.
pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| ChainError::dir("create", path, e))?;
    // The umask may have removed bits from DIR_MODE; say exactly what we mean.
    fs::set_permissions(path, Permissions::from_mode(DIR_MODE)).map_err(|e| {
        ChainError::io(
            format!(
                "could not change permissions of directory \"{}\"",
                path.display()
            ),
            e,
        )
    })?;
    fsync_dir(parent_of(path))
}

/// Creates a new file with mode 0600 whatever the umask; fails if it exists. The caller fsyncs
/// the file and its directory once it is written.
pub fn create_private_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| ChainError::file("create", path, e))?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(|e| {
            ChainError::io(
                format!(
                    "could not change permissions of file \"{}\"",
                    path.display()
                ),
                e,
            )
        })?;
    Ok(f)
}

/// Renames and makes the rename durable (both directories when they differ).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| {
        ChainError::io(
            format!(
                "could not rename file \"{}\" to \"{}\"",
                from.display(),
                to.display()
            ),
            e,
        )
    })?;
    let (a, b) = (parent_of(from), parent_of(to));
    fsync_dir(b)?;
    if a != b {
        fsync_dir(a)?;
    }
    Ok(())
}

/// The temporary name used while `path` is being written: hidden, and unique per process so two
/// writers never share a temp file.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp.{}", std::process::id()))
}

/// The temporary name for a file that only one process at a time writes (the streamer, or the
/// one `--rotate-diff` it answered): fixed, so a writer removes what a crashed one left behind.
pub fn fixed_temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp"))
}

/// Replaces `path` with `data` atomically: readers see the old content or the new, never a mix,
/// and after this returns the new content survives a crash. The file gets mode 0600.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_path_for(path);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = create_private_file(&tmp)?;
        f.write_all(data)
            .map_err(|e| ChainError::file("write", &tmp, e))?;
        fsync_file(&f, &tmp)?;
        drop(f);
        rename_durable(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Mode bits of a path, for checks and tests.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` under a permissive umask, restoring it afterwards. The umask is per process, so
    /// only tests in this module change it, and they all hold this lock.
    fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: umask has no memory-safety preconditions.
        let old = unsafe { libc::umask(mask) };
        let r = f();
        unsafe { libc::umask(old) };
        r
    }

    #[test]
    fn private_modes_ignore_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        for mask in [0o000, 0o022, 0o077, 0o277] {
            let d = dir.path().join(format!("d{mask:o}"));
            let f = dir.path().join(format!("f{mask:o}"));
            with_umask(mask, || {
                create_private_dir(&d).unwrap();
                create_private_file(&f).unwrap();
            });
            assert_eq!(mode_of(&d).unwrap(), 0o700, "umask {mask:o}");
            assert_eq!(mode_of(&f).unwrap(), 0o600, "umask {mask:o}");
        }
    }

    #[test]
    fn create_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("x");
        create_private_dir(&d).unwrap();
        match create_private_dir(&d).unwrap_err() {
            ChainError::Io { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists)
            }
            e => panic!("{e}"),
        }
        let f = dir.path().join("f");
        create_private_file(&f).unwrap();
        assert!(create_private_file(&f).is_err());
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("metadata.json")]);
        let e = atomic_write(&dir.path().join("missing/x"), b"").unwrap_err();
        assert!(e.to_string().starts_with("could not create file"), "{e}");
    }

    #[test]
    fn rename_is_reported_with_both_names() {
        let dir = tempfile::tempdir().unwrap();
        let e = rename_durable(&dir.path().join("a"), &dir.path().join("b")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("could not rename file \""), "{s}");
        assert!(s.ends_with("\": No such file or directory"), "{s}");
    }
}
