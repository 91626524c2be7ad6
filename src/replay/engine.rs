//! The diff apply engine: the chain's differentials replayed in-process over one connection.
//!
//! - Each transaction is framed by [`Framer`] (its `-- wal2sql` header and trailer); its
//!   statements are its lines and its framed texts (no SQL lexer, see doc/security.md), and a
//!   transaction of row changes is sent as **one simple-query message** (the whole
//!   `BEGIN; … COMMIT;`), not one round trip per statement.
//! - Consecutive transactions without DDL are applied **together**, several in one transaction
//!   of the target (atomic: a failure never leaves part of a source transaction applied; a
//!   failed group is replayed one transaction at a time to report the exact one), its row
//!   changes table by table (each table's in order; see `statements::order_by_table`), with
//!   consecutive INSERTs into a table merged into one multi-row INSERT, consecutive DELETEs by a
//!   one-column key into one `DELETE … WHERE key IN (…)` and consecutive UPDATEs by key into one
//!   `UPDATE … FROM (VALUES …)`.
//! - **Row counts are checked**: every INSERT must insert its rows, every UPDATE and DELETE that
//!   names its row (by key, or by `ctid = (SELECT ctid … LIMIT 1)`) must change exactly one (a
//!   merged `DELETE … IN (n keys)` n), read from the statements' CommandComplete tags. Anything
//!   else means the target differs from the source: the restore stops (see
//!   `statements::expected_rows`).
//!   So no transaction is committed before its counts are read: a group is sent as
//!   `BEGIN; <statements>` and left open; the next group's message starts with its `COMMIT;`,
//!   sent once the counts are checked, and the next group is built while the server applies
//!   the current one. A failed COMMIT ends the message there (nothing of the next group runs).
//! - A transaction with DDL is sent in segments, waiting for each: its row changes in messages,
//!   each run of DDL bracketed by the trigger [`Guard`] (see there), each captured DDL **alone
//!   in its message** after the settings before it, then the session's own settings again.
//! - A transaction larger than the chunk size is sent in several messages inside its own
//!   `BEGIN … COMMIT`, cut only between whole statements.
//! - `--no-sync-sequences`: the sequence values recorded by `wal2sql.snapshot_sequences()`
//!   (`SELECT pg_catalog.setval(<literal>, <integer>, true|false);`, exactly) are left out.
//! - An error stops the replay (ON_ERROR_STOP): the caller rolls back and reports the file, the
//!   transaction (xid, commit_lsn, commit time) and the statement (located by the server's error
//!   position, else by counting the statements that completed). wal2sql's unreplayable markers
//!   (`DO 'BEGIN RAISE EXCEPTION … wal2sql: …'`) are reported as such.

use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::AsyncBufReadExt;
use tokio_postgres::{Client, SimpleQueryStream};

use super::failure::{self, Failure, drain, excerpt};
use super::guard::Guard;
use super::progress::Progress;
pub use super::session::prepare_session;
use super::session::session_settings;
use super::statements::{Kind, Stmt, classify, is_txn_control};
use crate::error::{Error, Result, Situation};
use crate::lsn::Lsn;
use crate::storage::compress;
use crate::storage::diff_format::{Body, Framer, LineKind, StopAt, TxnHeader};
use crate::storage::error::ChainError;

mod group;
mod roles;
mod segments;

use roles::missing_role;

/// One file to replay.
#[derive(Debug, Clone)]
pub struct DiffFile {
    pub path: PathBuf,
    pub name: String,
    /// `active.sql`: a torn last transaction is ignored (and reported) instead of an error.
    pub active: bool,
    pub size: u64,
    pub compressed: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A transaction's text is sent in messages of about this size at most.
    pub chunk_bytes: usize,
    /// Complete transactions without DDL are applied together, in one transaction of the
    /// target, up to this many or this many bytes.
    pub group_txns: usize,
    pub group_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chunk_bytes: 8 << 20,
            group_txns: 1000,
            group_bytes: 4 << 20,
        }
    }
}

/// What the replay did.
#[derive(Debug, Default)]
pub struct Report {
    pub txns: u64,
    pub bytes: u64,
    /// Each file replayed (fully or up to `--up-to`) with its transaction count.
    pub files: Vec<(String, u64)>,
    pub last: Option<TxnHeader>,
    /// `--up-to`: the first transaction not applied.
    pub stopped_before: Option<TxnHeader>,
    /// `--include-active`: bytes of an unfinished transaction (and its xid) left out.
    pub ignored_tail: Option<(u64, Option<u32>)>,
    /// `--keep-going`: the transactions skipped, each with its error (file, xid, statement).
    pub skipped: Vec<Error>,
    /// Roles the stream referred to but the target lacked (made in another database of the
    /// source, after the chain's globals): created `NOLOGIN` on demand, dropped at the end when
    /// nothing depends on them (see `actions::restore`).
    pub placeholders: Vec<String>,
}

enum Flow {
    Continue,
    Stop,
}

struct Txn {
    header: TxnHeader,
    file: usize,
    buf: Vec<u8>,
    stmts: Vec<Stmt>,
    /// A framed statement being read: captured DDL or not, and where its text starts.
    frame: Option<(bool, usize)>,
    /// Its BEGIN has been sent (it was chunked or has DDL).
    started: bool,
    /// Statements already sent (for numbering in messages).
    sent: usize,
    has_ddl: bool,
    /// `--keep-going`: a part already sent failed; the rest is read and thrown away.
    failed: Option<Error>,
}

impl Txn {
    /// Forgets the complete statements read so far (a failed transaction's rest, with
    /// `--keep-going`), keeping a framed statement still being read.
    fn drop_complete(&mut self) {
        let cut = self.stmts.last().map(|s| s.end).unwrap_or(0);
        self.buf.drain(..cut);
        if let Some((_, from)) = self.frame.as_mut() {
            *from -= cut;
        }
        self.sent += self.stmts.len();
        self.stmts.clear();
    }
}

/// The last group sent. Its transaction is left open: it is committed only once the row count
/// of each of its statements has been checked.
struct InFlight {
    stream: Pin<Box<SimpleQueryStream>>,
    /// The group before it, committed by the message's first statement (`COMMIT;`).
    committing: Vec<Txn>,
    /// The source transactions it applies (together, in one transaction of the target).
    txns: Vec<Txn>,
    /// The rows each statement of the message must affect (None: not checked).
    expect: Vec<Option<u64>>,
}

pub struct Engine<'a> {
    client: &'a Client,
    pub guard: Guard,
    limits: Limits,
    start_lsn: Lsn,
    stop: Option<StopAt>,
    files: Vec<String>,
    /// `--no-sync-sequences`: the stream's recorded sequence values are not replayed.
    skip_setval: bool,
    open: Option<InFlight>,
    /// Complete transactions without DDL waiting to be sent together.
    pending: Vec<Txn>,
    pending_bytes: usize,
    last_end_lsn: Option<Lsn>,
    pub report: Report,
    progress: Progress,
    /// The session's own settings, sent again after every captured DDL.
    session_sql: String,
    /// `--keep-going`: a transaction that fails is rolled back, recorded and skipped.
    pub keep_going: bool,
    /// Replaying the transactions of a failed group one by one: nothing is merged by key.
    as_written: bool,
}

impl<'a> Engine<'a> {
    #[allow(clippy::too_many_arguments)] // each is a distinct restore option
    pub fn new(
        client: &'a Client,
        guard: Guard,
        start_lsn: Lsn,
        stop: Option<StopAt>,
        limits: Limits,
        total: Option<u64>,
        skip_setval: bool,
        encoding: &str,
    ) -> Self {
        Engine {
            client,
            guard,
            limits,
            start_lsn,
            stop,
            files: Vec::new(),
            skip_setval,
            open: None,
            pending: Vec::new(),
            pending_bytes: 0,
            last_end_lsn: None,
            report: Report::default(),
            progress: Progress::new(total),
            session_sql: session_settings(encoding),
            keep_going: false,
            as_written: false,
        }
    }

    fn txn_error(&self, file: usize, h: &TxnHeader, f: Failure) -> Error {
        failure::txn_error(&self.files[file], h, f)
    }

    /// A row change that did not affect, on the target, the rows it affected in the source.
    fn rows_error(
        &self,
        t: &Txn,
        numbers: (usize, usize),
        text: &str,
        expected: u64,
        actual: u64,
    ) -> Error {
        failure::rows_error(
            &self.files[t.file],
            &t.header,
            numbers,
            text,
            expected,
            actual,
        )
    }

    /// Replays one file. Returns false when `--up-to` stopped the replay.
    pub async fn apply_file(&mut self, file: &DiffFile) -> Result<bool> {
        self.files.push(file.name.clone());
        let index = self.files.len() - 1;
        self.report.files.push((file.name.clone(), 0));
        let flow = self.apply_inner(file, index).await?;
        Ok(matches!(flow, Flow::Continue))
    }

    async fn apply_inner(&mut self, file: &DiffFile, index: usize) -> Result<Flow> {
        let mut reader = compress::open_decompressed(&file.path).await?;
        let mut framer = Framer::new(&file.path);
        let mut line: Vec<u8> = Vec::new();
        let mut txn: Option<Txn> = None;
        let mut partial = 0u64;
        loop {
            let buf = match txn.as_mut() {
                Some(t) => &mut t.buf,
                None => {
                    line.clear();
                    &mut line
                }
            };
            let start = buf.len();
            let n = reader
                .read_until(b'\n', buf)
                .await
                .map_err(|e| Error::io(Situation::Backup, "read file", &file.path, &e))?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                buf.truncate(start);
                partial = n as u64;
                break;
            }
            self.report.bytes += n as u64;
            match framer.line(&buf[start..], n as u64)? {
                LineKind::Begin(h) => {
                    if let Some(stop) = self.stop
                        && stop.is_past(&h)
                    {
                        self.report.stopped_before = Some(h);
                        return Ok(Flow::Stop);
                    }
                    self.check_order(&h, file)?;
                    txn = Some(Txn {
                        header: h,
                        file: index,
                        buf: Vec::new(),
                        stmts: Vec::new(),
                        frame: None,
                        started: false,
                        sent: 0,
                        has_ddl: false,
                        failed: None,
                    });
                }
                LineKind::Body(body) => {
                    let t = txn.as_mut().expect("body lines come inside a transaction");
                    // The statement's text, without the newline the streamer added.
                    let end = t.buf.len() - 1;
                    let stmt = match body {
                        Body::Line => Some(Stmt {
                            start,
                            end,
                            kind: classify(&t.buf[start..end]),
                        }),
                        Body::Frame { ddl, .. } => {
                            t.frame = Some((ddl, t.buf.len()));
                            None
                        }
                        Body::Framed { last: false } => None,
                        Body::Framed { last: true } => {
                            let (ddl, from) = t.frame.take().expect("a frame line came first");
                            let kind = match classify(&t.buf[from..end]) {
                                _ if ddl => Kind::Ddl,
                                Kind::Control => Kind::Setting,
                                k => k,
                            };
                            Some(Stmt {
                                start: from,
                                end,
                                kind,
                            })
                        }
                    };
                    if let Some(stmt) = stmt {
                        if stmt.start == stmt.end {
                            return Err(self.corrupt(t, "it holds an empty line"));
                        }
                        t.has_ddl |= !matches!(stmt.kind, Kind::Dml | Kind::Control);
                        t.stmts.push(stmt);
                    }
                    if t.buf.len() >= self.limits.chunk_bytes && !t.stmts.is_empty() {
                        if t.failed.is_some() {
                            t.drop_complete();
                        } else if let Err(e) = self.send_partial(t).await {
                            self.skip_or_stop(t, e).await?;
                            t.drop_complete();
                        }
                    }
                }
                LineKind::Commit(_) => {
                    let mut t = txn.take().expect("a trailer closes an open transaction");
                    t.buf.truncate(start);
                    self.finish_txn(t).await?;
                }
            }
            self.progress.tick(self.report.bytes, self.report.txns);
        }
        let torn = txn.is_some() || partial > 0;
        if torn {
            let xid = txn
                .as_ref()
                .map(|t| t.header.xid)
                .or_else(|| framer.open_txn().map(|(h, _)| h.xid));
            if !file.active {
                return Err(ChainError::TornDiff {
                    path: file.path.clone(),
                    offset: framer.valid_len(),
                    xid,
                }
                .into());
            }
            if txn.as_ref().is_some_and(|t| t.started) {
                // Part of it went to the server: throw it away.
                self.client.batch_execute("ROLLBACK").await.map_err(|e| {
                    Error::backup(format!(
                        "could not roll back the unfinished transaction of {}: {e}",
                        file.name
                    ))
                })?;
            }
            let ignored = framer.offset() + partial - framer.valid_len();
            self.report.ignored_tail = Some((ignored, xid));
        }
        Ok(Flow::Continue)
    }

    fn check_order(&mut self, h: &TxnHeader, file: &DiffFile) -> Result<()> {
        if h.commit_lsn < self.start_lsn {
            return Err(Error::backup(format!(
                "transaction xid={} in \"{}\" committed at {}, before the chain's start LSN {}: it is already in the base",
                h.xid, file.name, h.commit_lsn, self.start_lsn
            ))
            .with_detail("Applying it again would duplicate it; the chain's files do not belong together."));
        }
        if let Some(prev) = self.last_end_lsn
            && h.end_lsn <= prev
        {
            return Err(Error::backup(format!(
                "transaction xid={} in \"{}\" (end_lsn {}) is not after the previous transaction (end_lsn {prev})",
                h.xid, file.name, h.end_lsn
            ))
            .with_detail("The differentials overlap or are out of order; replaying them would apply transactions twice."));
        }
        self.last_end_lsn = Some(h.end_lsn);
        Ok(())
    }

    fn corrupt(&self, t: &Txn, reason: &str) -> Error {
        Error::backup(format!(
            "transaction xid={} commit_lsn={} in \"{}\" is malformed: {reason}",
            t.header.xid, t.header.commit_lsn, self.files[t.file]
        ))
    }

    fn check_statements(&self, t: &Txn, last: bool) -> Result<()> {
        let n = t.stmts.len();
        for (i, s) in t.stmts.iter().enumerate() {
            let text = &t.buf[s.start..s.end];
            let first = !t.started && i == 0;
            let commit = last && i + 1 == n;
            if first {
                if text != b"BEGIN;" {
                    return Err(self.corrupt(t, "it does not start with BEGIN"));
                }
            } else if commit {
                if text != b"COMMIT;" {
                    return Err(self.corrupt(t, "it does not end with COMMIT"));
                }
            } else if s.kind == Kind::Control || (s.kind != Kind::Ddl && is_txn_control(text)) {
                return Err(self.corrupt(
                    t,
                    &format!(
                        "it contains a transaction control statement: {}",
                        excerpt(&String::from_utf8_lossy(text))
                    ),
                ));
            }
        }
        if last && n == 0 && !t.started {
            return Err(self.corrupt(t, "it is empty"));
        }
        Ok(())
    }

    fn utf8<'b>(&self, t: &Txn, bytes: &'b [u8]) -> Result<&'b str> {
        std::str::from_utf8(bytes).map_err(|e| {
            self.corrupt(
                t,
                &format!(
                    "it holds bytes that are not valid UTF-8 (at offset {} of its text)",
                    e.valid_up_to()
                ),
            )
        })
    }

    async fn finish_txn(&mut self, mut t: Txn) -> Result<()> {
        if t.frame.is_some() {
            return Err(self.corrupt(&t, "it ends inside a framed statement"));
        }
        if let Some(e) = t.failed.take() {
            // --keep-going: rolled back when its earlier part failed.
            self.report.skipped.push(e);
            return Ok(());
        }
        self.check_statements(&t, true)?;
        if !t.started && !t.has_ddl {
            self.utf8(&t, &t.buf)?;
            self.pending_bytes += t.buf.len();
            self.pending.push(t);
            if self.pending.len() >= self.limits.group_txns
                || self.pending_bytes >= self.limits.group_bytes
            {
                self.flush_pending().await?;
            }
            return Ok(());
        }
        self.drain_all().await?;
        self.apply_alone(&mut t).await
    }

    /// Sends a transaction on its own, committed. With `--keep-going`, one that fails (the
    /// server refused a statement or its COMMIT, or a row count differs) is rolled back and
    /// recorded instead; the connection failing still stops the restore.
    async fn apply_alone(&mut self, t: &mut Txn) -> Result<()> {
        let n = t.stmts.len();
        let mut result = self.send_segments(t, n, true).await;
        // A role the target lacks: a NOLOGIN placeholder, then the transaction again (only
        // when all of it is still here: nothing of it was sent in an earlier part).
        let mut attempts = 0;
        while let (Err(e), 0) = (&result, t.sent) {
            let Some(role) = missing_role(e) else { break };
            if attempts >= 16 || self.report.placeholders.contains(&role) {
                break;
            }
            attempts += 1;
            self.create_placeholder(t, role).await?;
            result = self.send_segments(t, n, true).await;
        }
        match result {
            Ok(()) => {
                self.done(&t.header, t.file);
                Ok(())
            }
            Err(e) => {
                self.skip_or_stop(t, e).await?;
                if let Some(e) = t.failed.take() {
                    self.report.skipped.push(e);
                }
                Ok(())
            }
        }
    }

    /// A transaction failed on the target: with `--keep-going` (and the connection alive) it is
    /// rolled back and marked failed (`t.failed`), else the error stops the restore.
    async fn skip_or_stop(&mut self, t: &mut Txn, e: Error) -> Result<()> {
        if !self.keep_going || e.situation != Situation::Backup {
            return Err(e);
        }
        self.rollback().await?;
        if self.client.is_closed() {
            return Err(e);
        }
        t.failed = Some(e);
        Ok(())
    }

    fn done(&mut self, h: &TxnHeader, file: usize) {
        self.report.txns += 1;
        self.report.last = Some(h.clone());
        if let Some(entry) = self.report.files.get_mut(file) {
            entry.1 += 1;
        }
    }

    async fn rollback(&self) -> Result<()> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| Error::backup(format!("could not roll back a failed transaction: {e}")))
    }

    /// Applies and commits everything sent or pending.
    pub async fn drain_all(&mut self) -> Result<()> {
        self.flush_pending().await?;
        self.commit_open().await
    }

    /// A big transaction: send its complete statements now, inside its BEGIN.
    async fn send_partial(&mut self, t: &mut Txn) -> Result<()> {
        self.check_statements(t, false)?;
        self.drain_all().await?;
        let n = t.stmts.len();
        self.send_segments(t, n, false).await?;
        let cut = t.stmts.last().map(|s| s.end).unwrap_or(0);
        t.buf.drain(..cut);
        if let Some((_, from)) = t.frame.as_mut() {
            *from -= cut;
        }
        t.sent += n;
        t.stmts.clear();
        t.started = true;
        Ok(())
    }

    /// After a failure: let what was sent run out, roll back.
    pub async fn abort(&mut self) {
        self.pending.clear();
        if let Some(mut f) = self.open.take() {
            let _ = drain(&mut f.stream, &[]).await;
        }
        let _ = self.client.batch_execute("ROLLBACK").await;
    }

    pub fn clear_progress(&mut self) {
        self.progress.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        let long = "x".repeat(300);
        assert_eq!(excerpt(&long).chars().count(), 201);
        assert_eq!(excerpt("a\nb"), "a b");
    }
}
