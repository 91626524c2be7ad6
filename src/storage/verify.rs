//! Checking that a chain is whole, offline: base and globals against metadata.json, every
//! sealed differential against its manifest (digests of the bytes stored and of the text, the
//! link to the differential before it), the transactions' positions across files, and that
//! every file parses as whole transactions. `--verify` runs it on every chain; `--restore` on
//! the files it is about to read, before touching the target. See doc/file-handling.md.
//!
//! Damage is reported as problems naming the file, never as an early error, so one run lists
//! everything that is wrong.

use std::path::Path;

use serde::Serialize;

use crate::lsn::Lsn;
use crate::storage::backup_dir::{ACTIVE_NAME, BASE_DIR_NAME, Chain, SealedDiff};
use crate::storage::compress::{self, Method};
use crate::storage::diff_format::StopAt;
use crate::storage::durable;
use crate::storage::error::{ChainError, Result};
use crate::storage::manifest::{
    self, ContentScan, MANIFEST_SUFFIX, Manifest, Marker, Summary, TxnPoint, plain_name,
};
use crate::storage::metadata::{BaseFormat, Metadata};

/// Where the last `--verify` of a chain left its result.
pub const RESULT_NAME: &str = "verify.json";

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    /// `--up-to`: files after the one holding the first transaction past it are not read.
    pub stop: Option<StopAt>,
    /// Whether `active.sql` will be read (restore `--include-active`, `--verify`). When not, it
    /// is still scanned, to say what it holds, but its problems are only warnings.
    pub read_active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub name: String,
    pub txns: u64,
    /// `manifest`, or `structure` for a file sealed before manifests existed.
    pub checked_by: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkerAt {
    pub file: String,
    #[serde(flatten)]
    pub marker: Marker,
}

/// What `active.sql` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveReport {
    pub txns: u64,
    pub first: Option<TxnPoint>,
    pub last: Option<TxnPoint>,
    /// Bytes of an unfinished last transaction (being written, or left by a crash).
    pub unfinished_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub chain_id: String,
    pub intact: bool,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub files: Vec<FileReport>,
    /// Transactions in the sealed differentials checked.
    pub txns: u64,
    pub last: Option<TxnPoint>,
    pub active: Option<ActiveReport>,
    pub markers: u64,
    pub first_marker: Option<MarkerAt>,
    pub checked_at: String,
}

impl ChainReport {
    fn new(chain: &Chain) -> Self {
        ChainReport {
            chain_id: chain.id.to_string(),
            intact: true,
            problems: Vec::new(),
            warnings: Vec::new(),
            files: Vec::new(),
            txns: 0,
            last: None,
            active: None,
            markers: 0,
            first_marker: None,
            checked_at: crate::storage::diff_format::format_commit_time(
                time::OffsetDateTime::now_utc(),
            ),
        }
    }

    fn problem(&mut self, file: &str, problem: impl Into<String>) {
        self.intact = false;
        self.problems.push(Problem {
            file: file.into(),
            problem: problem.into(),
        });
    }

    fn warning(&mut self, file: &str, warning: impl Into<String>) {
        self.warnings.push(Problem {
            file: file.into(),
            problem: warning.into(),
        });
    }

    fn markers_of(&mut self, file: &str, s: &Summary) {
        self.markers += s.markers;
        if self.first_marker.is_none()
            && let Some(m) = &s.first_marker
        {
            self.first_marker = Some(MarkerAt {
                file: file.into(),
                marker: m.clone(),
            });
        }
    }

    /// Stores this result as the chain's last verification (atomically).
    pub fn save(&self, chain: &Chain) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("reports always serialize");
        text.push('\n');
        durable::atomic_write(&chain.dir.join(RESULT_NAME), text.as_bytes())
    }
}

/// The last stored verification of `chain`, as JSON.
pub fn last_result(chain: &Chain) -> Option<serde_json::Value> {
    let text = std::fs::read(chain.dir.join(RESULT_NAME)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Scans the text of `path`, decompressing by extension.
async fn scan(path: &Path, stop: Option<StopAt>) -> Result<Summary> {
    use tokio::io::AsyncReadExt;
    if Method::from_file_name(&file_name(path)) == Method::None
        && crate::storage::object::view::lookup(path).is_none()
    {
        return manifest::scan_plain(path, stop);
    }
    let mut r = compress::open_decompressed(path).await?;
    let mut scan = ContentScan::new(path, stop);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r
            .read(&mut buf)
            .await
            .map_err(|e| ChainError::file("decompress", path, e))?;
        if n == 0 {
            return Ok(scan.finish());
        }
        scan.feed(&buf[..n])?;
    }
}

fn describe(e: &ChainError) -> String {
    e.to_string()
}

/// One file against its record in metadata.json.
async fn check_recorded(path: &Path, name: &str, md: &Metadata, r: &mut ChainReport) {
    let Some(record) = md.file(name) else {
        r.problem(name, "not described in metadata.json");
        return;
    };
    match compress::file_digest(path).await {
        Ok((size, _)) if size != record.size => r.problem(
            name,
            format!(
                "is {size} bytes, metadata.json records {} (cut short or grown)",
                record.size
            ),
        ),
        Ok((_, sha)) if sha != record.sha256 => r.problem(
            name,
            format!(
                "content changed: SHA-256 {sha}, metadata.json records {}",
                record.sha256
            ),
        ),
        Ok(_) => {}
        Err(e) => r.problem(name, describe(&e)),
    }
}

/// A directory-format base: every file metadata.json lists under `base.dir/` is there and
/// unchanged, and nothing else is (pg_restore would read a stray data file as the table's).
async fn check_base_dir(dir: &Path, md: &Metadata, r: &mut ChainReport) {
    let prefix = format!("{BASE_DIR_NAME}/");
    let mut on_disk: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            r.problem(BASE_DIR_NAME, describe(&ChainError::dir("open", dir, e)));
            return;
        }
    };
    on_disk.sort();
    for name in &on_disk {
        check_recorded(&dir.join(name), &format!("{prefix}{name}"), md, r).await;
    }
    let recorded: Vec<&str> = md
        .files
        .iter()
        .filter_map(|f| f.name.strip_prefix(&prefix))
        .collect();
    for name in &recorded {
        if !on_disk.iter().any(|n| n == name) {
            r.problem(&format!("{prefix}{name}"), "missing");
        }
    }
    if !recorded.contains(&"toc.dat") {
        r.problem(
            &format!("{prefix}toc.dat"),
            "not described in metadata.json (a directory base without its table of contents)",
        );
    }
}

/// Base and globals against metadata.json.
async fn check_base(chain: &Chain, md: &Metadata, r: &mut ChainReport) {
    match chain.find_base() {
        Ok(Some(base)) => {
            if base.format != md.base_format {
                r.problem(
                    &base.name(),
                    format!(
                        "metadata.json records a {} base, but the chain holds {}",
                        format_name(md.base_format),
                        base.name()
                    ),
                );
            } else if base.format == BaseFormat::Directory {
                check_base_dir(&base.path, md, r).await;
            } else {
                check_recorded(&base.path, &base.name(), md, r).await;
            }
        }
        Ok(None) => r.problem(
            match md.base_format {
                BaseFormat::Plain => "base.sql",
                BaseFormat::Directory => BASE_DIR_NAME,
            },
            "missing",
        ),
        Err(e) => r.problem("base.sql", describe(&e)),
    }
    match chain.find_globals() {
        Ok(Some(path)) => check_recorded(&path, &file_name(&path), md, r).await,
        Ok(None) => r.problem("globals.sql", "missing"),
        Err(e) => r.problem("globals.sql", describe(&e)),
    }
}

fn format_name(f: BaseFormat) -> &'static str {
    match f {
        BaseFormat::Plain => "plain (base.sql)",
        BaseFormat::Directory => "directory-format (base.dir/)",
    }
}

/// Checks `chain` (complete or not: the caller decides whether an incomplete chain matters).
pub async fn verify_chain(chain: &Chain, scope: Scope) -> ChainReport {
    let mut r = ChainReport::new(chain);
    let md = match chain.read_metadata() {
        Ok(m) => m,
        Err(e) => {
            r.problem("metadata.json", describe(&e));
            return r;
        }
    };
    if md.chain_id != chain.id.to_string() {
        r.problem(
            "metadata.json",
            format!(
                "describes chain {}, not {} (copied from another chain?)",
                md.chain_id, chain.id
            ),
        );
    }
    check_base(chain, &md, &mut r).await;

    let diffs = match chain.sealed_diffs() {
        Ok(d) => d,
        Err(e) => {
            r.problem(&chain.dir.display().to_string(), describe(&e));
            return r;
        }
    };
    let names: Vec<String> = diffs.iter().map(|d| plain_name(d.name)).collect();
    // (plain name, end_lsn of its last transaction) of the differential before.
    let mut prev: Option<(String, Option<Lsn>)> = None;
    let mut stopped = false;
    let mut checked_upto: Option<String> = None;
    for d in &diffs {
        let s = check_diff(chain, &md, d, &prev, &names, scope, &mut r).await;
        let plain = plain_name(d.name);
        checked_upto = Some(plain.clone());
        let end = s.as_ref().and_then(|s| s.last.as_ref().map(|h| h.end_lsn));
        prev = Some((plain, end));
        if let Some(s) = s {
            r.txns += s.txns;
            if let Some(l) = &s.last {
                r.last = Some(TxnPoint::from(l));
            }
            if scope.stop.is_some() && s.first_past.is_some() {
                stopped = true;
                break;
            }
        }
    }
    check_orphan_manifests(chain, &names, checked_upto.as_deref(), stopped, &mut r);

    if chain.has_active() {
        check_active(chain, &md, &prev, scope.read_active && !stopped, &mut r);
    }
    r
}

/// Manifests whose differential is gone (e.g. the newest differential deleted with its
/// successor not yet sealed).
fn check_orphan_manifests(
    chain: &Chain,
    names: &[String],
    checked_upto: Option<&str>,
    stopped: bool,
    r: &mut ChainReport,
) {
    let Ok(rd) = std::fs::read_dir(&chain.dir) else {
        return;
    };
    let mut orphans: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(MANIFEST_SUFFIX).map(str::to_string))
        .filter(|n| !names.contains(n))
        .filter(|n| !stopped || checked_upto.is_some_and(|c| n.as_str() < c))
        .collect();
    orphans.sort();
    for n in orphans {
        r.problem(
            &n,
            "missing: its manifest is present, the differential is not",
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn check_diff(
    chain: &Chain,
    md: &Metadata,
    d: &SealedDiff,
    prev: &Option<(String, Option<Lsn>)>,
    names: &[String],
    scope: Scope,
    r: &mut ChainReport,
) -> Option<Summary> {
    let file = d.name.to_string();
    let plain = plain_name(d.name);
    let m = match Manifest::read(&manifest::manifest_path(chain, d.name)) {
        Ok(m) => m,
        Err(e) => {
            r.problem(&file, format!("unreadable manifest: {}", describe(&e)));
            None
        }
    };
    let s = match scan(&d.path, scope.stop).await {
        Ok(s) => Some(s),
        Err(e) => {
            r.problem(&file, describe(&e));
            None
        }
    };
    if let Some(s) = &s {
        r.markers_of(&file, s);
        if !s.is_whole() {
            r.problem(
                &file,
                format!(
                    "ends inside a transaction{}: its last {} bytes are not a whole transaction (the file was cut short)",
                    s.open_xid.map(|x| format!(" (xid {x})")).unwrap_or_default(),
                    s.tail
                ),
            );
        }
        continuity(md, &file, s, prev, r);
    }
    let Some(m) = m else {
        let manifests_due = md.manifests || names_have_manifest_before(chain, names, &plain);
        if manifests_due {
            r.problem(
                &file,
                "has no manifest (not sealed by this chain's streamer?)",
            );
        } else {
            r.warning(
                &file,
                "sealed before manifests existed: checked its structure and positions only",
            );
        }
        r.files.push(FileReport {
            name: file,
            txns: s.as_ref().map_or(0, |s| s.txns),
            checked_by: "structure",
        });
        return s;
    };
    if m.chain_id != chain.id.to_string() {
        r.problem(
            &file,
            format!(
                "belongs to chain {}, not {} (copied from another chain?)",
                m.chain_id, chain.id
            ),
        );
    }
    if m.name != plain {
        r.problem(&file, format!("its manifest describes {}", m.name));
    }
    let expected = prev.as_ref().map(|(n, _)| n.as_str());
    match (&m.previous, expected) {
        (None, None) => {}
        (None, Some(p)) => r.problem(
            &file,
            format!("its manifest says it is the chain's first differential, but {p} precedes it"),
        ),
        (Some(link), want) if Some(link.name.as_str()) != want => {
            if !names.contains(&link.name) {
                r.problem(
                    &link.name,
                    format!(
                        "missing: the manifest of {file} says it comes just before (ending at {})",
                        link.end_lsn
                            .map_or_else(|| "an unknown position".into(), |l| l.to_string())
                    ),
                );
            } else {
                r.problem(
                    &file,
                    format!(
                        "out of order: its manifest says it follows {}, but {} precedes it",
                        link.name,
                        want.unwrap_or("the base")
                    ),
                );
            }
        }
        (Some(link), _) => {
            let actual = prev.as_ref().and_then(|(_, e)| *e);
            if let (Some(want), Some(got)) = (link.end_lsn, actual)
                && want != got
            {
                r.problem(
                    &file,
                    format!(
                        "{} ends at {got}, but this file's manifest says it ends at {want}",
                        link.name
                    ),
                );
            }
        }
    }
    if file == m.file {
        let (size, sha) = if d.name.method == Method::None {
            (
                s.as_ref().map(|s| s.content_size),
                s.as_ref().map(|s| s.content_sha256.clone()),
            )
        } else {
            match compress::file_digest(&d.path).await {
                Ok((size, sha)) => (Some(size), Some(sha)),
                Err(e) => {
                    r.problem(&file, describe(&e));
                    (None, None)
                }
            }
        };
        if let Some(size) = size
            && size != m.size
        {
            r.problem(
                &file,
                format!(
                    "is {size} bytes, its manifest records {} (cut short or grown)",
                    m.size
                ),
            );
        } else if let Some(sha) = sha
            && sha != m.sha256
        {
            r.problem(
                &file,
                format!(
                    "content changed: SHA-256 {sha}, its manifest records {}",
                    m.sha256
                ),
            );
        }
    } else {
        r.warning(
            &file,
            format!(
                "its manifest describes the stored file {} (an interrupted compression?): checked its text",
                m.file
            ),
        );
        if let Some(s) = &s
            && (s.content_size != m.content_size || s.content_sha256 != m.content_sha256)
        {
            r.problem(&file, "its text differs from what its manifest records");
        }
    }
    if let Some(s) = &s
        && d.name.method != Method::None
        && s.is_whole()
        && (s.content_size != m.content_size || s.content_sha256 != m.content_sha256)
        && file == m.file
    {
        r.problem(
            &file,
            "its decompressed text differs from what its manifest records",
        );
    }
    r.files.push(FileReport {
        name: file,
        txns: s.as_ref().map_or(0, |s| s.txns),
        checked_by: "manifest",
    });
    s
}

/// Whether a differential before `plain` has a manifest: from then on every one must.
fn names_have_manifest_before(chain: &Chain, names: &[String], plain: &str) -> bool {
    names
        .iter()
        .take_while(|n| n.as_str() < plain)
        .any(|n| chain.dir.join(format!("{n}{MANIFEST_SUFFIX}")).exists())
}

/// Positions across files: the first transaction is not in the base and follows the previous
/// file's last.
fn continuity(
    md: &Metadata,
    file: &str,
    s: &Summary,
    prev: &Option<(String, Option<Lsn>)>,
    r: &mut ChainReport,
) {
    let Some(first) = &s.first else { return };
    if first.commit_lsn < md.start_lsn {
        r.problem(
            file,
            format!(
                "holds transaction xid {} committed at {}, before the chain's start {}: it is already in the base (a differential of another chain?)",
                first.xid, first.commit_lsn, md.start_lsn
            ),
        );
    }
    if let Some((p, Some(end))) = prev
        && first.end_lsn <= *end
    {
        r.problem(
            file,
            format!(
                "its first transaction (xid {}, end {}) is not after the last one of {p} (end {end}): the files overlap or are out of order",
                first.xid, first.end_lsn
            ),
        );
    }
}

fn check_active(
    chain: &Chain,
    md: &Metadata,
    prev: &Option<(String, Option<Lsn>)>,
    read: bool,
    r: &mut ChainReport,
) {
    let path = chain.active_path();
    let mut sub = ChainReport::new(chain);
    match manifest::scan_plain(&path, None) {
        Ok(s) => {
            continuity(md, ACTIVE_NAME, &s, prev, &mut sub);
            r.markers_of(ACTIVE_NAME, &s);
            r.active = Some(ActiveReport {
                txns: s.txns,
                first: s.first.as_ref().map(TxnPoint::from),
                last: s.last.as_ref().map(TxnPoint::from),
                unfinished_bytes: s.tail,
            });
        }
        Err(e) => sub.problem(ACTIVE_NAME, describe(&e)),
    }
    for p in sub.problems {
        if read {
            r.problem(&p.file, p.problem);
        } else {
            r.warning(&p.file, p.problem);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::backup_dir::{BackupDir, DiffName};
    use crate::storage::compress::Compression;
    use crate::storage::diff_format::TxnHeader;
    use crate::storage::metadata::FileRecord;
    use time::macros::datetime;

    pub(crate) fn txn(n: u64) -> String {
        let h = TxnHeader {
            xid: 700 + n as u32,
            commit_lsn: Lsn(0x1000 + n * 0x100),
            end_lsn: Lsn(0x1000 + n * 0x100 + 0x38),
            commit_time: datetime!(2026-11-26 12:00:00 UTC),
        };
        format!("{}BEGIN;\nCOMMIT;\n{}", h.to_line(), h.trailer_line())
    }

    /// A complete chain with base and globals; `manifests` as in its metadata.json.
    pub(crate) fn chain(manifests: bool) -> (tempfile::TempDir, Chain) {
        let t = tempfile::tempdir().unwrap();
        let ch = BackupDir::new(t.path())
            .create_chain(datetime!(2026-11-26 12:00:00 UTC))
            .unwrap();
        let mut md = crate::storage::metadata::tests::sample();
        md.chain_id = ch.id.to_string();
        md.start_lsn = Lsn(0x1000);
        md.manifests = manifests;
        md.files = ["base.sql", "globals.sql"]
            .iter()
            .map(|n| {
                std::fs::write(ch.dir.join(n), b"-- dump\n").unwrap();
                FileRecord {
                    name: n.to_string(),
                    size: 8,
                    sha256: compress::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"-- dump\n")),
                }
            })
            .collect();
        ch.write_metadata(&md).unwrap();
        ch.mark_complete().unwrap();
        (t, ch)
    }

    pub(crate) fn seal(ch: &Chain, hour: u8, body: &str, with_manifest: bool) -> DiffName {
        let t = datetime!(2026-11-26 00:00:00 UTC) + time::Duration::hours(hour.into());
        let name = ch.next_diff_name(t, Compression::NONE).unwrap();
        std::fs::write(ch.diff_path(name), body).unwrap();
        if with_manifest {
            manifest::write_for_sealed(ch, name).unwrap();
        }
        name
    }

    fn all() -> Scope {
        Scope {
            stop: None,
            read_active: true,
        }
    }

    #[tokio::test]
    async fn an_intact_chain_and_its_damage() {
        let (_t, ch) = chain(true);
        let a = seal(&ch, 13, &txn(1), true);
        let b = seal(&ch, 14, &(txn(2) + &txn(3)), true);
        let c = seal(&ch, 15, &txn(4), true);
        std::fs::write(ch.active_path(), txn(5)).unwrap();
        let r = verify_chain(&ch, all()).await;
        assert!(r.intact, "{:?}", r.problems);
        assert_eq!(r.txns, 4);
        assert_eq!(r.active.as_ref().unwrap().txns, 1);

        // Swapped order: b's text under a's name and the other way round.
        let (pa, pb) = (ch.diff_path(a), ch.diff_path(b));
        let (ta, tb) = (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        std::fs::write(&pa, &tb).unwrap();
        std::fs::write(&pb, &ta).unwrap();
        let r = verify_chain(&ch, all()).await;
        assert!(!r.intact);
        assert!(
            r.problems.iter().any(|p| p.file == a.to_string()),
            "{:?}",
            r.problems
        );
        std::fs::write(&pa, &ta).unwrap();
        std::fs::write(&pb, &tb).unwrap();

        // The middle one gone.
        std::fs::rename(&pb, ch.dir.join("elsewhere")).unwrap();
        let r = verify_chain(&ch, all()).await;
        let missing: Vec<_> = r
            .problems
            .iter()
            .filter(|p| p.file == b.to_string())
            .collect();
        assert!(
            missing.iter().any(|p| p.problem.starts_with("missing")),
            "{:?}",
            r.problems
        );
        std::fs::rename(ch.dir.join("elsewhere"), &pb).unwrap();

        // The newest gone with its manifest: nothing can tell (documented).
        std::fs::remove_file(ch.diff_path(c)).unwrap();
        std::fs::remove_file(manifest::manifest_path(&ch, c)).unwrap();
        assert!(verify_chain(&ch, all()).await.intact);
    }

    #[tokio::test]
    async fn a_directory_base_is_checked_file_by_file() {
        let (_t, ch) = chain(true);
        let mut md = ch.read_metadata().unwrap();
        std::fs::remove_file(ch.dir.join("base.sql")).unwrap();
        let dir = ch.base_dir_path();
        std::fs::create_dir(&dir).unwrap();
        md.base_format = BaseFormat::Directory;
        md.files.retain(|f| f.name == "globals.sql");
        for (name, data) in [("toc.dat", &b"toc"[..]), ("3001.dat", b"1\tx\n\\.\n")] {
            std::fs::write(dir.join(name), data).unwrap();
            md.files.push(FileRecord {
                name: format!("base.dir/{name}"),
                size: data.len() as u64,
                sha256: compress::hex(&<sha2::Sha256 as sha2::Digest>::digest(data)),
            });
        }
        ch.write_metadata(&md).unwrap();
        let r = verify_chain(&ch, all()).await;
        assert!(r.intact, "{:?}", r.problems);

        let problems = |r: ChainReport| -> Vec<String> {
            r.problems
                .iter()
                .map(|p| format!("{}: {}", p.file, p.problem))
                .collect()
        };
        std::fs::write(dir.join("3001.dat"), b"2\tx\n\\.\n").unwrap();
        std::fs::write(dir.join("9.dat"), b"").unwrap();
        std::fs::remove_file(dir.join("toc.dat")).unwrap();
        let found = problems(verify_chain(&ch, all()).await);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("base.dir/3001.dat: content changed")),
            "{found:?}"
        );
        assert!(
            found.contains(&"base.dir/9.dat: not described in metadata.json".to_string()),
            "{found:?}"
        );
        assert!(
            found.contains(&"base.dir/toc.dat: missing".to_string()),
            "{found:?}"
        );

        // A plain base where metadata.json records a directory one.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(ch.dir.join("base.sql"), b"-- dump\n").unwrap();
        let found = problems(verify_chain(&ch, all()).await);
        assert!(
            found
                .iter()
                .any(|p| p.contains("records a directory-format (base.dir/) base")),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn files_sealed_before_manifests_are_checked_for_structure_with_a_warning() {
        let (_t, ch) = chain(false);
        let a = seal(&ch, 13, &txn(1), false);
        let b = seal(&ch, 14, &txn(2), true);
        let r = verify_chain(&ch, all()).await;
        assert!(r.intact, "{:?}", r.problems);
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].file, a.to_string());
        assert_eq!(r.files[0].checked_by, "structure");
        assert_eq!(r.files[1].checked_by, "manifest");
        // After one with a manifest, every later one needs its own.
        let c = seal(&ch, 15, &txn(3), false);
        let r = verify_chain(&ch, all()).await;
        assert!(!r.intact);
        assert_eq!(r.problems[0].file, c.to_string());
        assert!(r.problems[0].problem.contains("has no manifest"));
        let _ = b;
        // Overlapping positions are found without manifests too.
        std::fs::remove_file(ch.diff_path(c)).unwrap();
        seal(&ch, 16, &txn(2), false);
        let r = verify_chain(&ch, all()).await;
        assert!(
            r.problems.iter().any(|p| p.problem.contains("overlap")),
            "{:?}",
            r.problems
        );
    }
}
