//! The backup directory: its chains, their files and names.
//!
//! ```text
//! {backup-dir}/.pg_scribe.pid           streamer pidfile (see `pidfile`)
//! {backup-dir}/chain-20231215T120000Z/  one chain; ID = UTC time of its creation
//!     base.sql[.gz|.lz4|.zst]           pg_dump from the slot's exported snapshot, or
//!     base.dir/                         the same in pg_dump's directory format (--jobs)
//!     globals.sql[...]                  pg_dumpall --globals-only
//!     metadata.json                     see `metadata`
//!     COMPLETE                          written last: the chain is usable
//!     diff-20231216T083000Z.sql[...]    sealed differentials
//!     globals-20231216T083000Z.sql      roles dumped by the streamer at that rotation
//!     active.sql                        the differential being written
//! ```
//!
//! Decisions:
//! - **Completion marker.** A chain is usable only once `COMPLETE` exists. It is written
//!   (atomically, fsynced, directory fsynced) after base, globals and metadata are all durable,
//!   so a crash or failure mid-creation leaves a chain that `--start` and `--restore` skip and
//!   `--status` flags.
//! - **Unique, sortable names.** Chain IDs and diff stamps are whole UTC seconds in the
//!   `YYYYMMDDTHHMMSSZ` form, so names sort chronologically with `ls`. A new name takes the
//!   current second, or one second past the newest existing name if that is not earlier (two
//!   rotations within a second, or a clock that stepped back): names never collide, never go
//!   backwards, and keep the shape doc/file-handling.md gives (no `-1` suffix, which would sort
//!   before `.sql`).
//!   Chain directories are claimed with `mkdir`, so two processes racing for a name cannot
//!   both get it.
//! - **Diffs under compression.** A sealed diff may be compressed after sealing. If a diff
//!   exists both plain and compressed (a crash between writing the compressed copy and removing
//!   the plain one), the plain file is the one listed: it is the original.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use time::format_description::BorrowedFormatItem;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::storage::compress::{Compression, Method};
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};
use crate::storage::metadata::{BaseFormat, Metadata};

pub(crate) const PIDFILE_NAME: &str = ".pg_scribe.pid";
pub(crate) const ACTIVE_NAME: &str = "active.sql";
pub(crate) const COMPLETE_NAME: &str = "COMPLETE";
pub(crate) const METADATA_NAME: &str = "metadata.json";
pub(crate) const BASE_STEM: &str = "base.sql";
/// A directory-format base (`--jobs`): pg_dump's `toc.dat` and one data file per table.
pub(crate) const BASE_DIR_NAME: &str = "base.dir";
pub(crate) const GLOBALS_STEM: &str = "globals.sql";
pub(crate) const CHAIN_PREFIX: &str = "chain-";
pub(crate) const DIFF_PREFIX: &str = "diff-";
pub(crate) const LATER_GLOBALS_PREFIX: &str = "globals-";

/// A whole UTC second, written `YYYYMMDDTHHMMSSZ`. Used for chain IDs and diff names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(i64);

impl Stamp {
    /// The second containing `t` (sub-second part dropped).
    pub(crate) fn from_time(t: OffsetDateTime) -> Stamp {
        Stamp(t.unix_timestamp())
    }

    pub fn now() -> Stamp {
        Stamp::from_time(OffsetDateTime::now_utc())
    }

    pub(crate) fn to_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0)
            .expect("stamps are parsed or taken from valid times")
    }

    pub fn next(self) -> Stamp {
        Stamp(self.0 + 1)
    }

    /// `now`, or one second past `newest` when `now` is not later: a fresh, increasing name.
    pub fn fresh(now: OffsetDateTime, newest: Option<Stamp>) -> Stamp {
        let s = Stamp::from_time(now);
        match newest {
            Some(n) if n >= s => n.next(),
            _ => s,
        }
    }
}

/// `YYYYMMDDTHHMMSSZ`, written and read.
const STAMP_FORMAT: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .to_time()
            .format(STAMP_FORMAT)
            .map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for Stamp {
    type Err = ();

    /// Exactly `YYYYMMDDTHHMMSSZ` with a real date and time: nothing else is taken for a chain.
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let b = s.as_bytes();
        let shape = b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        if !shape {
            return Err(());
        }
        let t = PrimitiveDateTime::parse(s, STAMP_FORMAT).map_err(|_| ())?;
        Ok(Stamp::from_time(t.assume_offset(UtcOffset::UTC)))
    }
}

/// A chain's ID: the UTC second it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub Stamp);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ChainId {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<Self> {
        s.parse()
            .map(ChainId)
            .map_err(|_| ChainError::InvalidChainId(s.to_string()))
    }
}

impl ChainId {
    pub(crate) fn dir_name(&self) -> String {
        format!("{CHAIN_PREFIX}{self}")
    }

    /// The ID in a `chain-<ID>` directory name.
    pub fn from_dir_name(name: &str) -> Option<ChainId> {
        name.strip_prefix(CHAIN_PREFIX)?.parse().ok().map(ChainId)
    }
}

/// A sealed differential's name: `diff-<stamp>.sql` plus the compression extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiffName {
    pub stamp: Stamp,
    pub method: Method,
}

impl fmt::Display for DiffName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{DIFF_PREFIX}{}.sql{}",
            self.stamp,
            self.method.extension()
        )
    }
}

impl FromStr for DiffName {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || ChainError::InvalidDiffName(s.to_string());
        let rest = s.strip_prefix(DIFF_PREFIX).ok_or_else(bad)?;
        let (stamp, ext) = rest.split_once(".sql").ok_or_else(bad)?;
        let method = Method::ALL
            .into_iter()
            .find(|m| m.extension() == ext)
            .ok_or_else(bad)?;
        Ok(DiffName {
            stamp: stamp.parse().map_err(|_| bad())?,
            method,
        })
    }
}

/// A sealed differential found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDiff {
    pub name: DiffName,
    pub path: PathBuf,
    pub size: u64,
}

/// A chain's base as found on disk: `base.sql[.ext]` or the directory `base.dir/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLocation {
    pub path: PathBuf,
    pub format: BaseFormat,
}

impl BaseLocation {
    /// Its name in the chain directory (`base.sql.zst`, `base.dir`).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Bytes on disk: the file's size, or the sum of the directory's files.
    pub fn size(&self) -> u64 {
        match self.format {
            BaseFormat::Plain => std::fs::metadata(&self.path).map_or(0, |m| m.len()),
            BaseFormat::Directory => std::fs::read_dir(&self.path)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| e.metadata().ok())
                        .filter(|m| m.is_file())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0),
        }
    }
}

/// One `chain-<ID>` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub id: ChainId,
    pub dir: PathBuf,
}

impl Chain {
    pub(crate) fn metadata_path(&self) -> PathBuf {
        self.dir.join(METADATA_NAME)
    }

    pub(crate) fn active_path(&self) -> PathBuf {
        self.dir.join(ACTIVE_NAME)
    }

    pub(crate) fn complete_marker_path(&self) -> PathBuf {
        self.dir.join(COMPLETE_NAME)
    }

    /// Where a new base is written with compression `c`.
    pub(crate) fn base_path(&self, c: Compression) -> PathBuf {
        self.dir.join(format!("{BASE_STEM}{}", c.extension()))
    }

    /// Where a directory-format base is written.
    pub(crate) fn base_dir_path(&self) -> PathBuf {
        self.dir.join(BASE_DIR_NAME)
    }

    pub(crate) fn globals_path(&self, c: Compression) -> PathBuf {
        self.dir.join(format!("{GLOBALS_STEM}{}", c.extension()))
    }

    pub(crate) fn diff_path(&self, name: DiffName) -> PathBuf {
        self.dir.join(name.to_string())
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete_marker_path().is_file()
    }

    pub(crate) fn has_active(&self) -> bool {
        self.active_path().is_file()
    }

    /// Declares the chain usable. Call only once base, globals and metadata are durable.
    pub(crate) fn mark_complete(&self) -> Result<()> {
        durable::atomic_write(
            &self.complete_marker_path(),
            format!("pg_scribe chain {} complete\n", self.id).as_bytes(),
        )
    }

    pub(crate) fn read_metadata(&self) -> Result<Metadata> {
        Metadata::read(&self.metadata_path())
    }

    pub(crate) fn write_metadata(&self, m: &Metadata) -> Result<()> {
        m.write(&self.metadata_path())
    }

    /// The existing base, whatever its compression or format; more than one is an error.
    pub(crate) fn find_base(&self) -> Result<Option<BaseLocation>> {
        let plain = self.find_stem(BASE_STEM)?;
        let dir = self.base_dir_path();
        match (plain, dir.is_dir()) {
            (Some(_), true) => Err(ChainError::Usage(format!(
                "chain directory \"{}\" holds both a \"{BASE_STEM}\" file and a \"{BASE_DIR_NAME}\" directory",
                self.dir.display()
            ))),
            (Some(path), false) => Ok(Some(BaseLocation {
                path,
                format: BaseFormat::Plain,
            })),
            (None, true) => Ok(Some(BaseLocation {
                path: dir,
                format: BaseFormat::Directory,
            })),
            (None, false) => Ok(None),
        }
    }

    pub(crate) fn find_globals(&self) -> Result<Option<PathBuf>> {
        self.find_stem(GLOBALS_STEM)
    }

    fn find_stem(&self, stem: &str) -> Result<Option<PathBuf>> {
        let found: Vec<PathBuf> = Method::ALL
            .into_iter()
            .map(|m| self.dir.join(format!("{stem}{}", m.extension())))
            .filter(|p| p.is_file())
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next()),
            _ => Err(ChainError::Usage(format!(
                "chain directory \"{}\" holds more than one \"{stem}\" file",
                self.dir.display()
            ))),
        }
    }

    /// Where the streamer saves the roles as they were when it sealed `sealed`.
    pub(crate) fn later_globals_path(&self, sealed: DiffName) -> PathBuf {
        self.dir
            .join(format!("{LATER_GLOBALS_PREFIX}{}.sql", sealed.stamp))
    }

    /// The streamer's role dumps ([`Chain::later_globals_path`]) in name (= time) order.
    pub(crate) fn later_globals(&self) -> Result<Vec<PathBuf>> {
        let mut found: Vec<PathBuf> = read_dir(&self.dir)?
            .into_iter()
            .filter(|(name, _, _)| name.starts_with(LATER_GLOBALS_PREFIX) && name.ends_with(".sql"))
            .map(|(_, path, _)| path)
            .collect();
        found.sort();
        Ok(found)
    }

    /// Sealed differentials in replay order (oldest first).
    pub(crate) fn sealed_diffs(&self) -> Result<Vec<SealedDiff>> {
        let mut out: Vec<SealedDiff> = Vec::new();
        for entry in read_dir(&self.dir)? {
            let (name, path, meta) = entry;
            let Ok(dn) = name.parse::<DiffName>() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            out.push(SealedDiff {
                name: dn,
                path,
                size: meta.len(),
            });
        }
        // Method::None sorts first, so the plain copy of a stamp wins (see module comment).
        out.sort_by_key(|d| d.name);
        out.dedup_by_key(|d| d.name.stamp);
        Ok(out)
    }

    /// A name for the next sealed diff: not earlier than `now`, later than every existing diff.
    pub(crate) fn next_diff_name(&self, now: OffsetDateTime, c: Compression) -> Result<DiffName> {
        let newest = self.sealed_diffs()?.last().map(|d| d.name.stamp);
        Ok(DiffName {
            stamp: Stamp::fresh(now, newest),
            method: c.method,
        })
    }
}

/// (file name, path, metadata) of each entry; names that are not UTF-8 are not ours and skipped.
fn read_dir(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| ChainError::dir("open", dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| ChainError::dir("read", dir, e))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let path = e.path();
        // Follow symlinks: an operator may link a chain or file elsewhere.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ChainError::file("stat", &path, e)),
        };
        out.push((name, path, meta));
    }
    Ok(out)
}

/// A chain and whether it is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub chain: Chain,
    pub complete: bool,
}

/// The `--backup-dir` root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDir {
    root: PathBuf,
}

impl BackupDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BackupDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn pidfile_path(&self) -> PathBuf {
        self.root.join(PIDFILE_NAME)
    }

    pub fn chain(&self, id: ChainId) -> Chain {
        Chain {
            id,
            dir: self.root.join(id.dir_name()),
        }
    }

    /// `--init`'s precondition: the directory does not exist or is empty.
    pub(crate) fn is_missing_or_empty(&self) -> Result<bool> {
        match std::fs::read_dir(&self.root) {
            Ok(mut rd) => Ok(rd.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(ChainError::dir("open", &self.root, e)),
        }
    }

    /// Creates the root (0700) if missing; parents are created with default modes.
    pub(crate) fn create_root(&self) -> Result<()> {
        if self.root.is_dir() {
            return Ok(());
        }
        if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| ChainError::dir("create", parent, e))?;
        }
        durable::create_private_dir(&self.root)
    }

    /// Every chain directory, oldest first.
    pub fn chains(&self) -> Result<Vec<ChainInfo>> {
        let mut out: Vec<ChainInfo> = read_dir(&self.root)?
            .into_iter()
            .filter(|(_, _, m)| m.is_dir())
            .filter_map(|(name, _, _)| ChainId::from_dir_name(&name))
            .map(|id| {
                let chain = self.chain(id);
                let complete = chain.is_complete();
                ChainInfo { chain, complete }
            })
            .collect();
        out.sort_by_key(|c| c.chain.id);
        Ok(out)
    }

    /// The newest chain that carries its completion marker.
    pub(crate) fn latest_complete_chain(&self) -> Result<Option<Chain>> {
        Ok(self
            .chains()?
            .into_iter()
            .rev()
            .find(|c| c.complete)
            .map(|c| c.chain))
    }

    /// Claims a new chain directory (0700) named after `now`, or later if that is taken or not
    /// after every existing chain; the name is claimed by `mkdir`, so a concurrent creator
    /// cannot get the same one.
    pub(crate) fn create_chain(&self, now: OffsetDateTime) -> Result<Chain> {
        let newest = self.chains()?.last().map(|c| c.chain.id.0);
        let mut stamp = Stamp::fresh(now, newest);
        for _ in 0..1000 {
            let chain = self.chain(ChainId(stamp));
            match durable::create_private_dir(&chain.dir) {
                Ok(()) => return Ok(chain),
                Err(ChainError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    stamp = stamp.next();
                }
                Err(e) => return Err(e),
            }
        }
        Err(ChainError::Usage(format!(
            "could not find a free chain name in \"{}\"",
            self.root.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stamps_format_and_parse_strictly() {
        let s = Stamp::from_time(datetime!(2023-12-15 12:00:00.999 UTC));
        assert_eq!(s.to_string(), "20231215T120000Z");
        assert_eq!("20231215T120000Z".parse::<Stamp>(), Ok(s));
        let local = datetime!(2023-12-15 13:00:00 +01:00);
        assert_eq!(Stamp::from_time(local), s);
        for bad in [
            "20231215T120000",
            "20231215 120000Z",
            "2023121T120000ZZ",
            "20231315T120000Z",
            "20230230T120000Z",
            "20231215T250000Z",
            "+0231215T120000Z",
            "20231215t120000Z",
            "２0231215T120000Z",
        ] {
            assert!(bad.parse::<Stamp>().is_err(), "{bad}");
        }
        let e = "x".parse::<ChainId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid chain ID \"x\": expected UTC timestamp YYYYMMDDTHHMMSSZ"
        );
        assert!(e.is_validation());
    }

    #[test]
    fn fresh_stamps_never_go_back() {
        let now = datetime!(2023-12-16 08:30:00 UTC);
        let s = Stamp::from_time(now);
        assert_eq!(Stamp::fresh(now, None), s);
        assert_eq!(Stamp::fresh(now, Some(Stamp(s.0 - 5))), s);
        assert_eq!(Stamp::fresh(now, Some(s)), s.next());
        assert_eq!(Stamp::fresh(now, Some(Stamp(s.0 + 7))), Stamp(s.0 + 8));
    }

    #[test]
    fn diff_names_round_trip_and_sort() {
        for m in Method::ALL {
            let d = DiffName {
                stamp: "20231216T083000Z".parse().unwrap(),
                method: m,
            };
            let text = d.to_string();
            assert!(text.starts_with("diff-20231216T083000Z.sql"));
            assert_eq!(text.parse::<DiffName>().unwrap(), d);
        }
        for bad in [
            "diff-20231216T083000Z.sql.bz2",
            "diff-20231216T083000Z-1.sql",
            "diff-.sql",
            "active.sql",
            "diff-20231216T083000Z.txt",
        ] {
            assert!(bad.parse::<DiffName>().is_err(), "{bad}");
        }
    }

    fn touch(p: &Path, data: &[u8]) {
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn chains_are_listed_with_completeness() {
        let tmp = tempfile::tempdir().unwrap();
        let bd = BackupDir::new(tmp.path().join("backups"));
        assert!(bd.is_missing_or_empty().unwrap());
        bd.create_root().unwrap();
        assert_eq!(durable::mode_of(bd.root()).unwrap(), 0o700);
        assert!(bd.is_missing_or_empty().unwrap());
        let t = datetime!(2023-12-15 12:00:00 UTC);
        let a = bd.create_chain(t).unwrap();
        assert_eq!(a.dir.file_name().unwrap(), "chain-20231215T120000Z");
        assert_eq!(durable::mode_of(&a.dir).unwrap(), 0o700);
        assert!(!bd.is_missing_or_empty().unwrap());
        // Same second, and a clock that went back: still unique and increasing.
        let b = bd.create_chain(t).unwrap();
        assert_eq!(b.id.to_string(), "20231215T120001Z");
        let c = bd.create_chain(datetime!(2020-01-01 00:00:00 UTC)).unwrap();
        assert_eq!(c.id.to_string(), "20231215T120002Z");
        // Things that are not chains are ignored.
        std::fs::create_dir(bd.root().join("chain-bogus")).unwrap();
        touch(
            &bd.root().join("chain-20240101T000000Z"),
            b"a file, not a dir",
        );
        touch(&bd.pidfile_path(), b"");
        assert_eq!(bd.latest_complete_chain().unwrap(), None);
        a.mark_complete().unwrap();
        b.mark_complete().unwrap();
        let list = bd.chains().unwrap();
        let ids: Vec<_> = list
            .iter()
            .map(|c| (c.chain.id.to_string(), c.complete))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("20231215T120000Z".to_string(), true),
                ("20231215T120001Z".to_string(), true),
                ("20231215T120002Z".to_string(), false),
            ]
        );
        assert_eq!(bd.latest_complete_chain().unwrap(), Some(b.clone()));
        assert_eq!(durable::mode_of(&b.complete_marker_path()).unwrap(), 0o600);
        assert_eq!(bd.chain("20231215T120000Z".parse().unwrap()), a);
    }

    #[test]
    fn chain_files_and_diffs() {
        let tmp = tempfile::tempdir().unwrap();
        let bd = BackupDir::new(tmp.path());
        let ch = bd.create_chain(datetime!(2023-12-15 12:00:00 UTC)).unwrap();
        assert_eq!(ch.find_base().unwrap(), None);
        let zstd: Compression = "zstd:3".parse().unwrap();
        touch(&ch.base_path(zstd), b"x");
        assert_eq!(
            ch.find_base().unwrap().map(|b| b.path),
            Some(ch.dir.join("base.sql.zst"))
        );
        touch(&ch.base_path(Compression::NONE), b"x");
        assert!(ch.find_base().is_err());
        std::fs::remove_file(ch.base_path(Compression::NONE)).unwrap();
        // A directory base beside a plain one is as ambiguous; alone it is found with its size.
        std::fs::create_dir(ch.base_dir_path()).unwrap();
        assert!(ch.find_base().is_err());
        std::fs::remove_file(ch.base_path(zstd)).unwrap();
        touch(&ch.base_dir_path().join("toc.dat"), b"abc");
        touch(&ch.base_dir_path().join("3001.dat"), b"12345");
        let base = ch.find_base().unwrap().unwrap();
        assert_eq!(base.format, BaseFormat::Directory);
        assert_eq!((base.name().as_str(), base.size()), ("base.dir", 8));
        touch(&ch.globals_path(Compression::NONE), b"x");
        assert_eq!(ch.find_globals().unwrap(), Some(ch.dir.join("globals.sql")));

        let now = datetime!(2023-12-16 08:30:00.7 UTC);
        let first = ch.next_diff_name(now, Compression::NONE).unwrap();
        assert_eq!(first.to_string(), "diff-20231216T083000Z.sql");
        touch(&ch.diff_path(first), b"1234");
        let second = ch.next_diff_name(now, zstd).unwrap();
        assert_eq!(second.to_string(), "diff-20231216T083001Z.sql.zst");
        touch(&ch.diff_path(second), b"12");
        // A half-compressed copy of the first: the plain original is the one listed.
        touch(
            &ch.diff_path(DiffName {
                method: Method::Gzip,
                ..first
            }),
            b"partial",
        );
        touch(&ch.dir.join(".diff-20231216T083002Z.sql.zst.tmp.1"), b"");
        touch(&ch.active_path(), b"");
        let diffs = ch.sealed_diffs().unwrap();
        let names: Vec<_> = diffs.iter().map(|d| (d.name.to_string(), d.size)).collect();
        assert_eq!(
            names,
            vec![
                ("diff-20231216T083000Z.sql".to_string(), 4),
                ("diff-20231216T083001Z.sql.zst".to_string(), 2),
            ]
        );
        assert!(ch.has_active());
        let later = ch
            .next_diff_name(datetime!(2023-12-17 00:00:00 UTC), Compression::NONE)
            .unwrap();
        assert_eq!(later.to_string(), "diff-20231217T000000Z.sql");
    }

    #[test]
    fn metadata_lives_in_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let bd = BackupDir::new(tmp.path());
        let ch = bd.create_chain(datetime!(2023-12-15 12:00:00 UTC)).unwrap();
        let m = crate::storage::metadata::tests::sample();
        ch.write_metadata(&m).unwrap();
        assert_eq!(ch.read_metadata().unwrap(), m);
    }
}
