//! `{backup-dir}/.pg_scribe.pid`: at most one streamer per backup directory, and a way for
//! `--rotate-diff`, `--new-chain` and `--status` to find it and to know it is really alive.
//!
//! The streamer holds an exclusive `flock` on the file for its whole life; the kernel drops the
//! lock when the process dies, however it dies, so "locked" means "a streamer is running" and an
//! unlocked file is stale whatever it says. The content, like PostgreSQL's `postmaster.pid`,
//! starts with the PID on a line of its own (`head -1 .pg_scribe.pid`):
//!
//! ```text
//! 12345
//! /abs/path/of/backup-dir
//! 2026-11-26T12:00:00Z
//! pg_scribe
//! ```
//!
//! Readers believe a PID only while the lock is held, and check `/proc/<pid>/cmdline` and the
//! recorded directory before signalling it, so a recycled PID is never sent SIGHUP.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::storage::backup_dir::BackupDir;
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};

/// The last line of the pidfile, naming the program that wrote it.
pub(crate) const MARKER: &str = "pg_scribe";

/// What a pidfile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidInfo {
    pub pid: i32,
    pub backup_dir: PathBuf,
    pub started_at: Option<OffsetDateTime>,
}

impl PidInfo {
    fn render(&self) -> String {
        let t = self
            .started_at
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        format!(
            "{}\n{}\n{t}\n{MARKER}\n",
            self.pid,
            self.backup_dir.display()
        )
    }

    /// Reads what it can: a pidfile from a crash may be truncated.
    fn parse(text: &str) -> Option<PidInfo> {
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let backup_dir = PathBuf::from(lines.next().unwrap_or_default());
        let started_at = lines
            .next()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        Some(PidInfo {
            pid,
            backup_dir,
            started_at,
        })
    }
}

pub(crate) fn flock(f: &File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

fn read_all(f: &mut File, path: &Path) -> Result<String> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_string(&mut s))
        .map_err(|e| ChainError::file("read", path, e))?;
    Ok(s)
}

/// The streamer's held pidfile. Dropping it releases the lock but leaves the file (as a crash
/// would); call `PidFile::remove` on a clean shutdown.
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
    info: PidInfo,
}

/// The result of taking the pidfile.
#[derive(Debug)]
pub struct Acquired {
    pub pidfile: PidFile,
    /// Set when a stale pidfile (no live holder) was taken over: what it said, for the warning.
    pub stale: Option<PidInfo>,
}

impl PidFile {
    /// Takes the backup directory's pidfile for this process, or fails with
    /// `ChainError::StreamerRunning` if a live streamer holds it.
    pub fn acquire(dir: &BackupDir) -> Result<Acquired> {
        let path = dir.pidfile_path();
        let abs = std::fs::canonicalize(dir.root())
            .map_err(|e| ChainError::dir("open", dir.root(), e))?;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(durable::FILE_MODE)
                .open(&path)
                .map_err(|e| ChainError::file("open", &path, e))?;
            // A reader's probe holds a shared lock for an instant: retry briefly before
            // concluding that a streamer holds it.
            let mut locked = false;
            for attempt in 0..10 {
                if flock(&file, libc::LOCK_EX).map_err(|e| ChainError::file("lock", &path, e))? {
                    locked = true;
                    break;
                }
                if attempt < 9 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            if !locked {
                let text = read_all(&mut file, &path).unwrap_or_default();
                return Err(ChainError::StreamerRunning {
                    pid: PidInfo::parse(&text).map(|i| i.pid),
                    dir: abs,
                });
            }
            // A previous holder may have unlinked the file between our open and our lock; a
            // lock on an unlinked inode guards nothing, so start over on the current file.
            let ours = file
                .metadata()
                .map_err(|e| ChainError::file("stat", &path, e))?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {}
                _ => continue,
            }
            let old = read_all(&mut file, &path)?;
            let stale = if old.is_empty() {
                None
            } else {
                Some(PidInfo::parse(&old).unwrap_or(PidInfo {
                    pid: 0,
                    backup_dir: PathBuf::new(),
                    started_at: None,
                }))
            };
            let info = PidInfo {
                pid: std::process::id() as i32,
                backup_dir: abs,
                started_at: Some(OffsetDateTime::now_utc()),
            };
            file.set_len(0)
                .and_then(|_| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(info.render().as_bytes()))
                .map_err(|e| ChainError::file("write", &path, e))?;
            durable::fsync_file(&file, &path)?;
            durable::fsync_dir(durable::parent_of(&path))?;
            return Ok(Acquired {
                pidfile: PidFile { file, path, info },
                stale,
            });
        }
    }

    pub fn info(&self) -> &PidInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clean shutdown: removes the file while still holding the lock, then releases it.
    pub(crate) fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path).map_err(|e| ChainError::file("remove", &self.path, e))?;
        drop(self.file);
        Ok(())
    }
}

/// Whether a streamer runs for a backup directory, as seen by another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Streamer {
    /// No pidfile.
    Absent,
    /// A pidfile nobody holds: the streamer is gone (what it said, if readable).
    Stale(Option<PidInfo>),
    /// A live pg_scribe streamer for this directory: safe to signal.
    Running(PidInfo),
    /// The lock is held but the pidfile does not check out; do not signal.
    Unverified {
        info: Option<PidInfo>,
        reason: String,
    },
}

/// Looks at the pidfile without disturbing a running streamer.
pub fn probe(dir: &BackupDir) -> Result<Streamer> {
    let path = dir.pidfile_path();
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Streamer::Absent),
        Err(e) => return Err(ChainError::file("open", &path, e)),
    };
    let text = read_all(&mut file, &path)?;
    let info = PidInfo::parse(&text);
    if flock(&file, libc::LOCK_SH).map_err(|e| ChainError::file("lock", &path, e))? {
        return Ok(Streamer::Stale(info));
    }
    let Some(info) = info else {
        return Ok(Streamer::Unverified {
            info: None,
            reason: "the pidfile is locked but does not name a process".into(),
        });
    };
    let unverified = |reason: String| {
        Ok(Streamer::Unverified {
            info: Some(info.clone()),
            reason,
        })
    };
    let abs =
        std::fs::canonicalize(dir.root()).map_err(|e| ChainError::dir("open", dir.root(), e))?;
    if info.backup_dir != abs {
        return unverified(format!(
            "the pidfile names backup directory \"{}\"",
            info.backup_dir.display()
        ));
    }
    match std::fs::read(format!("/proc/{}/cmdline", info.pid)) {
        Ok(cmd) if is_pg_scribe(&cmd) => Ok(Streamer::Running(info)),
        Ok(_) => unverified(format!("process {} is not pg_scribe", info.pid)),
        Err(_) => unverified(format!("process {} does not exist", info.pid)),
    }
}

/// True if the program name (argv[0]'s file name) contains `pg_scribe`.
fn is_pg_scribe(cmdline: &[u8]) -> bool {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let name = argv0.rsplit(|&b| b == b'/').next().unwrap_or_default();
    name.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, BackupDir) {
        let t = tempfile::tempdir().unwrap();
        let bd = BackupDir::new(t.path());
        (t, bd)
    }

    #[test]
    fn one_streamer_per_directory() {
        let (_t, bd) = dir();
        assert_eq!(probe(&bd).unwrap(), Streamer::Absent);
        let a = PidFile::acquire(&bd).unwrap();
        assert!(a.stale.is_none());
        let text = std::fs::read_to_string(bd.pidfile_path()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], std::process::id().to_string());
        assert_eq!(
            Path::new(lines[1]),
            std::fs::canonicalize(bd.root()).unwrap()
        );
        assert!(OffsetDateTime::parse(lines[2], &Rfc3339).is_ok());
        assert_eq!(lines[3], "pg_scribe");
        assert_eq!(durable::mode_of(&bd.pidfile_path()).unwrap(), 0o600);

        // flock conflicts between open file descriptions, so a second taker in this same
        // process sees what another process would.
        let e = PidFile::acquire(&bd).unwrap_err();
        assert!(
            matches!(e, ChainError::StreamerRunning { pid: Some(p), .. } if p == std::process::id() as i32)
        );
        assert!(
            e.to_string()
                .starts_with("another pg_scribe streamer (PID "),
            "{e}"
        );

        // The test binary's name contains pg_scribe, so it passes for a streamer.
        match probe(&bd).unwrap() {
            Streamer::Running(info) => assert_eq!(&info, a.pidfile.info()),
            s => panic!("{s:?}"),
        }
        a.pidfile.remove().unwrap();
        assert_eq!(probe(&bd).unwrap(), Streamer::Absent);
    }

    #[test]
    fn stale_pidfiles_are_taken_over() {
        let (_t, bd) = dir();
        std::fs::write(
            bd.pidfile_path(),
            "999999\n/old/dir\n2020-01-01T00:00:00Z\npg_scribe\n",
        )
        .unwrap();
        match probe(&bd).unwrap() {
            Streamer::Stale(Some(i)) => assert_eq!(i.pid, 999999),
            s => panic!("{s:?}"),
        }
        let a = PidFile::acquire(&bd).unwrap();
        let stale = a.stale.unwrap();
        assert_eq!(stale.pid, 999999);
        assert_eq!(stale.backup_dir, Path::new("/old/dir"));
        assert!(matches!(probe(&bd).unwrap(), Streamer::Running(_)));
        // A crash (drop without remove) leaves a stale file behind.
        drop(a.pidfile);
        assert!(matches!(probe(&bd).unwrap(), Streamer::Stale(Some(_))));
        // Garbage is stale too, and taken over.
        std::fs::write(bd.pidfile_path(), "garbage").unwrap();
        let a = PidFile::acquire(&bd).unwrap();
        assert_eq!(a.stale.unwrap().pid, 0);
    }

    #[test]
    fn a_locked_pidfile_that_does_not_check_out_is_not_signalled() {
        let (_t, bd) = dir();
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(bd.pidfile_path())
            .unwrap();
        assert!(flock(&f, libc::LOCK_EX).unwrap());
        let me = std::process::id();
        std::fs::write(
            bd.pidfile_path(),
            format!("{me}\n/elsewhere\n\npg_scribe\n"),
        )
        .unwrap();
        assert!(
            matches!(probe(&bd).unwrap(), Streamer::Unverified { reason, .. } if reason.contains("/elsewhere"))
        );
        let abs = std::fs::canonicalize(bd.root()).unwrap();
        // PID 1 is init, not pg_scribe.
        std::fs::write(
            bd.pidfile_path(),
            format!("1\n{}\n\npg_scribe\n", abs.display()),
        )
        .unwrap();
        assert!(
            matches!(probe(&bd).unwrap(), Streamer::Unverified { reason, .. } if reason == "process 1 is not pg_scribe")
        );
        std::fs::write(bd.pidfile_path(), "").unwrap();
        assert!(matches!(
            probe(&bd).unwrap(),
            Streamer::Unverified { info: None, .. }
        ));
    }

    #[test]
    fn program_name_check() {
        assert!(is_pg_scribe(b"/usr/bin/pg_scribe\0--start\0"));
        assert!(is_pg_scribe(b"pg_scribe-1a2b3c\0"));
        assert!(!is_pg_scribe(b"/usr/bin/vim\0/backups/pg_scribe/x\0"));
        assert!(!is_pg_scribe(b"/opt/pg_scribe/bin/sh\0"));
    }
}
