//! The diff apply engine: the chain's differentials replayed in-process over one connection.
//!
//! - Each transaction is framed by [`Framer`] (its `-- wal2sql` header and trailer); its
//!   statements are its lines and its framed texts (no SQL lexer, see doc/security.md), and a
//!   transaction of row changes is sent as **one simple-query message** (the whole
//!   `BEGIN; … COMMIT;`), not one round trip per statement.
//! - Consecutive transactions without DDL are applied **together**, several in one transaction
//!   of the target (atomic: a failure never leaves part of a source transaction applied; a
//!   failed group is replayed one transaction at a time to report the exact one), with
//!   consecutive INSERTs into a table merged into one multi-row INSERT and consecutive DELETEs
//!   by a one-column key into one `DELETE … WHERE key IN (…)`.
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

use super::failure::{self, Drained, Failure, drain, excerpt, locate};
use super::guard::Guard;
use super::progress::Progress;
pub use super::session::prepare_session;
use super::session::session_settings;
use super::statements::{Kind, Piece, Stmt, build_message, classify, is_txn_control};
use crate::error::{Error, Result, Situation};
use crate::lsn::Lsn;
use crate::storage::compress;
use crate::storage::diff_format::{Body, Framer, LineKind, StopAt, TxnHeader};
use crate::storage::error::ChainError;
use crate::ui;

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
            self.rollback().await?;
            let sql = format!("CREATE ROLE {} NOLOGIN", crate::pg::quote::ident(&role));
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| crate::pg::session::query_error(&sql, &e))?;
            ui::say(&format!(
                "{}: note: created placeholder role \"{role}\" (NOLOGIN) for transaction {}",
                ui::PROGNAME,
                t.header.xid
            ));
            self.report.placeholders.push(role);
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

    /// Sends the pending transactions (none has DDL, each is complete) as **one** transaction
    /// of the target: `BEGIN; <their statements>` (merged), left open. It is committed by the
    /// next group's message (`COMMIT; BEGIN; …`) or by [`Self::commit_open`], and only once
    /// [`Self::settle`] has checked the row count of each of its statements; the next group is
    /// built while the server applies this one. Atomic: either all of them commit or none (a
    /// failure is then replayed transaction by transaction, see [`Self::settle`]).
    async fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let txns = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut body = String::with_capacity(txns.iter().map(|t| t.buf.len()).sum::<usize>());
        let mut stmts = Vec::with_capacity(txns.iter().map(|t| t.stmts.len()).sum::<usize>());
        body.push_str("BEGIN;\n");
        stmts.push(Stmt {
            start: 0,
            end: "BEGIN;".len(),
            kind: Kind::Control,
        });
        for t in &txns {
            // Checked valid UTF-8 when it was queued.
            let text = std::str::from_utf8(&t.buf).expect("checked");
            let n = t.stmts.len();
            for s in &t.stmts[1..n - 1] {
                let start = body.len();
                body.push_str(&text[s.start..s.end]);
                stmts.push(Stmt {
                    start,
                    end: body.len(),
                    kind: s.kind,
                });
                body.push('\n');
            }
        }
        const COMMIT_BEFORE: &str = "COMMIT;\n";
        let mut text = String::with_capacity(body.len() + COMMIT_BEFORE.len());
        text.push_str(COMMIT_BEFORE);
        let mut pieces = Vec::new();
        build_message(
            &body,
            &stmts,
            &mut text,
            &mut pieces,
            true,
            self.skip_setval,
        );
        // The group before this one: checked, then committed by this message's first statement.
        let committing = self.settle().await?;
        let mut expect = Vec::with_capacity(pieces.len() + 1);
        let from = if committing.is_empty() {
            COMMIT_BEFORE.len()
        } else {
            expect.push(None);
            0
        };
        expect.extend(pieces.iter().map(|p| p.rows));
        let stream = match self.client.simple_query_raw(&text[from..]).await {
            Ok(stream) => stream,
            Err(e) => {
                let last = txns.last().expect("not empty");
                return Err(self.txn_error(
                    last.file,
                    &last.header,
                    Failure {
                        number: None,
                        excerpt: None,
                        err: e,
                    },
                ));
            }
        };
        self.open = Some(InFlight {
            stream: Box::pin(stream),
            committing,
            txns,
            expect,
        });
        Ok(())
    }

    fn done(&mut self, h: &TxnHeader, file: usize) {
        self.report.txns += 1;
        self.report.last = Some(h.clone());
        if let Some(entry) = self.report.files.get_mut(file) {
            entry.1 += 1;
        }
    }

    /// Waits for the last group sent and checks the row counts of its statements. Returns its
    /// transactions, applied and still open (the caller commits them), or none when it failed
    /// (a statement, a row count, or the COMMIT of the group before it at the head of its
    /// message): what is open is rolled back and the transactions not committed are replayed
    /// one by one, as written, each its own transaction, so that the first that fails is
    /// reported exactly and the ones before it are committed.
    async fn settle(&mut self) -> Result<Vec<Txn>> {
        let Some(mut f) = self.open.take() else {
            return Ok(Vec::new());
        };
        let result = drain(&mut f.stream, &f.expect).await;
        let commit_failed =
            !f.committing.is_empty() && matches!(result, Err(Drained::Server { completed: 0, .. }));
        if !commit_failed {
            for t in &f.committing {
                self.done(&t.header, t.file);
            }
        }
        match result {
            Ok(()) => return Ok(f.txns),
            Err(Drained::Server { err, .. }) if err.as_db_error().is_none() => {
                let t = f.txns.last().expect("not empty");
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: None,
                        excerpt: None,
                        err,
                    },
                ));
            }
            Err(_) => {}
        }
        self.rollback().await?;
        let mut txns = if commit_failed {
            f.committing
        } else {
            Vec::new()
        };
        txns.append(&mut f.txns);
        self.replay_one_by_one(txns).await?;
        Ok(Vec::new())
    }

    /// Commits the last group sent, once its row counts are checked.
    async fn commit_open(&mut self) -> Result<()> {
        let txns = self.settle().await?;
        let Some(last) = txns.last() else {
            return Ok(());
        };
        let result = match self.client.simple_query_raw("COMMIT").await {
            Ok(stream) => drain(&mut Box::pin(stream), &[]).await,
            Err(err) => Err(Drained::Server { completed: 0, err }),
        };
        match result {
            Ok(()) => {
                for t in &txns {
                    self.done(&t.header, t.file);
                }
                Ok(())
            }
            Err(Drained::Server { err, .. }) if err.as_db_error().is_none() => Err(self.txn_error(
                last.file,
                &last.header,
                Failure {
                    number: None,
                    excerpt: None,
                    err,
                },
            )),
            Err(_) => {
                // A deferred constraint failed at COMMIT: find the transaction.
                self.rollback().await?;
                self.replay_one_by_one(txns).await
            }
        }
    }

    async fn rollback(&self) -> Result<()> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| Error::backup(format!("could not roll back a failed transaction: {e}")))
    }

    /// Transactions of a group that failed, replayed one by one, as they are (no merging of
    /// row changes), each its own transaction with its row counts checked.
    async fn replay_one_by_one(&mut self, txns: Vec<Txn>) -> Result<()> {
        let count = txns.len();
        let skipped = self.report.skipped.len();
        for mut t in txns {
            self.apply_alone(&mut t).await?;
        }
        if self.report.skipped.len() > skipped {
            return Ok(());
        }
        ui::warning(&format!(
            "{count} transactions applied together failed, but applied one by one they all succeeded"
        ));
        Ok(())
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

    /// Sends `t.stmts[..n]` in order, waiting for each message and checking the row count of
    /// each statement: runs of row changes in messages of at most the chunk size; each run of
    /// other statements bracketed by the trigger guard, in which captured DDL goes **alone in
    /// its message**, after the settings written before it (so the server parses it with them in
    /// effect), and is followed by the replay session's own settings again. `commit`: the last
    /// statement is the transaction's COMMIT; it is sent on its own, once every row count is
    /// checked.
    async fn send_segments(&mut self, t: &mut Txn, n: usize, commit: bool) -> Result<()> {
        let m = if commit { n - 1 } else { n };
        let mut i = 0;
        while i < m {
            let dml = t.stmts[i].kind == Kind::Dml;
            let mut j = i + 1;
            while j < m
                && (t.stmts[j].kind == Kind::Dml) == dml
                && (!dml || t.stmts[j].end - t.stmts[i].start <= self.limits.chunk_bytes)
            {
                j += 1;
            }
            if dml {
                self.send_message(t, i, j).await?;
                i = j;
                continue;
            }
            self.guard_before(t).await?;
            let mut k = i;
            while k < j {
                if t.stmts[k].kind == Kind::Ddl {
                    self.send_ddl(t, k).await?;
                    self.client
                        .batch_execute(&self.session_sql)
                        .await
                        .map_err(|e| {
                            self.own_error(t, "restoring the session settings after DDL", e)
                        })?;
                    k += 1;
                } else {
                    let mut l = k + 1;
                    while l < j && t.stmts[l].kind != Kind::Ddl {
                        l += 1;
                    }
                    self.send_message(t, k, l).await?;
                    k = l;
                }
            }
            let mut guard = std::mem::take(&mut self.guard);
            let r = guard.after_ddl(self.client).await;
            self.guard = guard;
            r.map_err(|e| self.own_error(t, "checking triggers and rules after DDL", e))?;
            i = j;
        }
        if commit {
            let result = match self.client.simple_query_raw("COMMIT").await {
                Ok(stream) => drain(&mut Box::pin(stream), &[]).await,
                Err(err) => Err(Drained::Server { completed: 0, err }),
            };
            if let Err(Drained::Server { err, .. }) = result {
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: Some((t.sent + n, t.sent + n)),
                        excerpt: Some("COMMIT;".into()),
                        err,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Sends one captured DDL statement. A role's CREATE or DROP (captured since roles made
    /// between rotations are in no globals dump) may meet the role as the target already has it
    /// (a later globals dump, another database of the same server): that conflict is a note and
    /// the statement is skipped, inside a savepoint so the transaction goes on.
    async fn send_ddl(&mut self, t: &Txn, k: usize) -> Result<()> {
        let text = self.utf8(t, &t.buf[t.stmts[k].start..t.stmts[k].end])?;
        let Some(tolerated) = role_conflict_state(text) else {
            return self.send_message(t, k, k + 1).await;
        };
        self.client
            .batch_execute("SAVEPOINT pg_scribe_role")
            .await
            .map_err(|e| self.own_error(t, "setting a savepoint before role DDL", e))?;
        match self.client.simple_query(text).await {
            Ok(_) => {}
            Err(e) if e.code().map(|c| c.code()) == Some(tolerated) => {
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT pg_scribe_role")
                    .await
                    .map_err(|e| self.own_error(t, "skipping role DDL", e))?;
                crate::ui::say(&format!(
                    "{}: note: {} (transaction {}, statement skipped)",
                    crate::ui::PROGNAME,
                    message,
                    t.header.xid
                ));
            }
            Err(_) => {
                // Sent again to be reported (located, with its excerpt) like any DDL error.
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT pg_scribe_role")
                    .await
                    .map_err(|e| self.own_error(t, "reporting a role DDL error", e))?;
                return self.send_message(t, k, k + 1).await;
            }
        }
        self.client
            .batch_execute("RELEASE SAVEPOINT pg_scribe_role")
            .await
            .map_err(|e| self.own_error(t, "releasing the savepoint after role DDL", e))
    }

    /// An error of a statement of pg_scribe's own between the transaction's statements.
    fn own_error(&self, t: &Txn, what: &str, e: tokio_postgres::Error) -> Error {
        self.txn_error(
            t.file,
            &t.header,
            Failure {
                number: None,
                excerpt: Some(format!("(pg_scribe, {what})")),
                err: e,
            },
        )
    }

    /// Puts the recorded triggers and rules back before a run of DDL (see [`Guard`]).
    async fn guard_before(&self, t: &Txn) -> Result<()> {
        if self.guard.is_empty() {
            return Ok(());
        }
        let before = self.guard.before_ddl();
        if before.is_empty() {
            return Ok(());
        }
        self.client
            .batch_execute(&before)
            .await
            .map_err(|e| self.own_error(t, "restoring trigger states before DDL", e))
    }

    /// Sends `t.stmts[i..j]` as one message and checks the row count of each.
    async fn send_message(&mut self, t: &Txn, i: usize, j: usize) -> Result<()> {
        let from = t.stmts[i].start;
        let to = t.stmts[j - 1].end;
        let body = self.utf8(t, &t.buf[from..to])?;
        let stmts: Vec<Stmt> = t.stmts[i..j]
            .iter()
            .map(|s| Stmt {
                start: s.start - from,
                end: s.end - from,
                kind: s.kind,
            })
            .collect();
        let mut text = String::with_capacity(body.len() + 64);
        let mut pieces = Vec::with_capacity(stmts.len());
        build_message(
            body,
            &stmts,
            &mut text,
            &mut pieces,
            false,
            self.skip_setval,
        );
        if pieces.is_empty() {
            // Only recorded sequence values, left out.
            return Ok(());
        }
        let expect: Vec<Option<u64>> = pieces.iter().map(|p| p.rows).collect();
        let result = match self.client.simple_query_raw(&text).await {
            Ok(stream) => drain(&mut Box::pin(stream), &expect).await,
            Err(err) => Err(Drained::Server { completed: 0, err }),
        };
        let number = |p: &Piece| (t.sent + i + p.first + 1, t.sent + i + p.last + 1);
        match result {
            Ok(()) => {}
            Err(Drained::Server { completed, err }) => {
                let (k, excerpt) = locate(&text, &pieces, 0, completed, &err);
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: k.map(|(a, b)| (t.sent + i + a + 1, t.sent + i + b + 1)),
                        excerpt,
                        err,
                    },
                ));
            }
            Err(Drained::Rows {
                index,
                expected,
                actual,
            }) => {
                let p = &pieces[index];
                return Err(self.rows_error(t, number(p), &text[p.start..p.end], expected, actual));
            }
        }
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

/// The role named by a "role \"x\" does not exist (42704)" failure of a transaction.
fn missing_role(e: &Error) -> Option<String> {
    let head = e.message.strip_suffix("\" does not exist (42704)")?;
    let at = head.rfind(": role \"")?;
    Some(head[at + ": role \"".len()..].to_string())
}

/// The SQLSTATE a role statement may meet on a target that already reflects it: 42710
/// (duplicate_object) for `CREATE ROLE|USER|GROUP`, 42704 (undefined_object) for `DROP
/// ROLE|USER|GROUP`; `None` for any other statement. Only the statement's first two words are
/// read; anything else (a leading comment …) fails as any DDL does.
fn role_conflict_state(text: &str) -> Option<&'static str> {
    let mut words = text
        .split_ascii_whitespace()
        .map(|w| w.to_ascii_uppercase());
    let first = words.next()?;
    let second = words.next()?;
    if !matches!(second.trim_end_matches(';'), "ROLE" | "USER" | "GROUP") {
        return None;
    }
    match first.as_str() {
        "CREATE" => Some("42710"),
        "DROP" => Some("42704"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_roles() {
        let e = Error::backup(
            "could not apply transaction xid=1 commit_lsn=0/1 (committed t) in \"f\": role \"a b\" does not exist (42704)",
        );
        assert_eq!(super::missing_role(&e).as_deref(), Some("a b"));
        let e = Error::backup("could not apply x: relation \"t\" does not exist (42P01)");
        assert_eq!(super::missing_role(&e), None);
    }

    #[test]
    fn role_statements_that_may_conflict() {
        assert_eq!(super::role_conflict_state("CREATE ROLE r;"), Some("42710"));
        assert_eq!(
            super::role_conflict_state("create\n user r login;"),
            Some("42710")
        );
        assert_eq!(
            super::role_conflict_state("DROP ROLE IF EXISTS a, b;"),
            Some("42704")
        );
        assert_eq!(super::role_conflict_state("drop group g;"), Some("42704"));
        assert_eq!(
            super::role_conflict_state("CREATE TABLE role (a int);"),
            None
        );
        assert_eq!(super::role_conflict_state("ALTER ROLE r LOGIN;"), None);
        assert_eq!(super::role_conflict_state("/* c */ CREATE ROLE r;"), None);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        let long = "x".repeat(300);
        assert_eq!(excerpt(&long).chars().count(), 201);
        assert_eq!(excerpt("a\nb"), "a b");
    }
}
