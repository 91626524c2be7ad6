//! The diff apply engine: the chain's differentials replayed in-process over one connection.
//!
//! - Each transaction is framed by [`Framer`] (its `-- wal2sql` header and trailer), split into
//!   statements by the [`lexer`](super::lexer), and sent as **one simple-query message** (the
//!   whole `BEGIN; … COMMIT;`), not one round trip per statement.
//! - Consecutive transactions without DDL are applied **together**, several in one transaction
//!   of the target (atomic: a failure never leaves part of a source transaction applied; a
//!   failed group is replayed one transaction at a time to report the exact one), with
//!   consecutive INSERTs into a table merged into one multi-row INSERT and consecutive DELETEs
//!   by a one-column key into one `DELETE … WHERE key IN (…)`.
//! - **Row counts are checked**: every INSERT must insert its rows, every UPDATE and DELETE that
//!   names its row (by key, or by `ctid = (SELECT ctid … LIMIT 1)`) must change exactly one (a
//!   merged `DELETE … IN (n keys)` n), read from the statements' CommandComplete tags. Anything
//!   else means the target differs from the source: the restore stops (see [`expected_rows`]).
//!   So no transaction is committed before its counts are read: a group is sent as
//!   `BEGIN; <statements>` and left open; the next group's message starts with its `COMMIT;`,
//!   sent once the counts are checked, and the next group is built while the server applies
//!   the current one. A failed COMMIT ends the message there (nothing of the next group runs).
//! - A transaction with DDL is sent in segments, waiting for each: its row changes in messages,
//!   each run of DDL bracketed by the trigger [`Guard`] (see there).
//! - A transaction larger than the chunk size is sent in several messages inside its own
//!   `BEGIN … COMMIT`, cut only between whole statements.
//! - `--no-sync-sequences`: the sequence values recorded by `wal2sql.snapshot_sequences()`
//!   (`SELECT pg_catalog.setval(<literal>, <integer>, true|false);`, exactly) are left out.
//! - An error stops the replay (ON_ERROR_STOP): the caller rolls back and reports the file, the
//!   transaction (xid, commit_lsn, commit time) and the statement (located by the server's error
//!   position, else by counting the statements that completed). wal2sql's unreplayable markers
//!   (`DO 'BEGIN RAISE EXCEPTION … wal2sql: …'`) are reported as such.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryStream};

use super::guard::Guard;
use super::lexer::{Kind, Lexer, Stmt};
use crate::error::{Error, Result, Situation};
use crate::lsn::Lsn;
use crate::pg::quote::escaped_literal as literal;
use crate::storage::compress;
use crate::storage::diff_format::{Framer, LineKind, StopAt, TxnHeader, format_commit_time};
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
}

enum Flow {
    Continue,
    Stop,
}

struct Txn {
    header: TxnHeader,
    file: usize,
    buf: Vec<u8>,
    lexer: Lexer,
    stmts: Vec<Stmt>,
    /// Its BEGIN has been sent (it was chunked or has DDL).
    started: bool,
    /// Statements already sent (for numbering in messages).
    sent: usize,
    has_ddl: bool,
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

/// A statement that failed: where, and what the server said.
struct Failure {
    /// First and last statement number (1-based; several when INSERTs were merged).
    number: Option<(usize, usize)>,
    excerpt: Option<String>,
    err: tokio_postgres::Error,
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
}

/// The replay session's settings (the connection must be a superuser's).
pub async fn prepare_session(client: &Client, encoding: &str) -> Result<()> {
    let sql = format!(
        "SET synchronous_commit = off; SET session_replication_role = replica; \
         SET wal2sql.capture = off; SET client_encoding = {};",
        literal(encoding)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| crate::pg::session::query_error(&sql, &e))
}

fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().take(200).collect();
    let one_line = one_line.replace('\n', " ");
    if text.chars().count() > 200 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

/// A statement of a message: `[start, end)` in its text, and the index of the first statement
/// of the transaction it came from (consecutive INSERTs into one table are merged into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    start: usize,
    end: usize,
    first: usize,
    last: usize,
    /// The rows it must affect (see [`expected_rows`]); None: not checked.
    rows: Option<u64>,
}

/// A merged INSERT stays below this size.
const MERGE_MAX: usize = 1 << 20;

/// Where the row list of a wal2sql INSERT starts: the `(` after ` VALUES ` (outside quoted
/// identifiers; nothing before it is a string literal).
fn insert_split(stmt: &str) -> Option<usize> {
    let b = stmt.as_bytes();
    if !stmt.starts_with("INSERT INTO ") || !stmt.ends_with(");") {
        return None;
    }
    let mut i = "INSERT INTO ".len();
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'"' => quoted = !quoted,
            b' ' if !quoted && b[i..].starts_with(b" VALUES (") => {
                return Some(i + " VALUES ".len());
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end of a string literal as wal2sql writes it (`'…'` or `E'…'`, quotes and backslashes
/// doubled) starting at `b[0]`: the index just past its closing quote.
fn literal_end(b: &[u8]) -> Option<usize> {
    let mut i = match b {
        [b'\'', ..] => 1,
        [b'E', b'\'', ..] => 2,
        _ => return None,
    };
    while i < b.len() {
        if b[i] == b'\'' {
            if b.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// A wal2sql DELETE by a one-column key compared with the plain `=`:
/// `DELETE FROM ONLY <table> WHERE <column> = <literal>;`. Returns where the literal starts.
/// (Multi-column keys, `REPLICA IDENTITY FULL`'s `ctid = (SELECT …)`, `IS NULL`,
/// `::pg_catalog.text` and `OPERATOR(…)` comparisons are not of this form.)
fn delete_split(stmt: &str) -> Option<usize> {
    let b = stmt.as_bytes();
    if !stmt.starts_with("DELETE FROM ONLY ") || !stmt.ends_with(';') {
        return None;
    }
    // The table: a qualified name, each part a plain or a quoted identifier.
    let mut i = "DELETE FROM ONLY ".len();
    let ident = |i: &mut usize| -> bool {
        if b.get(*i) == Some(&b'"') {
            *i += 1;
            while *i < b.len() {
                if b[*i] == b'"' {
                    if b.get(*i + 1) == Some(&b'"') {
                        *i += 2;
                        continue;
                    }
                    *i += 1;
                    return true;
                }
                *i += 1;
            }
            false
        } else {
            let from = *i;
            while *i < b.len()
                && (b[*i].is_ascii_lowercase() || b[*i].is_ascii_digit() || b[*i] == b'_')
            {
                *i += 1;
            }
            *i > from
        }
    };
    if !ident(&mut i) || b.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    if !ident(&mut i) || !b[i..].starts_with(b" WHERE ") {
        return None;
    }
    i += " WHERE ".len();
    if !ident(&mut i) || !b[i..].starts_with(b" = ") {
        return None;
    }
    i += " = ".len();
    let end = literal_end(&b[i..])?;
    (i + end + 1 == b.len()).then_some(i)
}

/// At most this many rows per merged DELETE.
const DELETE_MERGE_ROWS: usize = 1000;

/// The index just past a quoted identifier (`"…"`, quotes doubled) starting at `b[0]`.
fn quoted_ident_end(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'"' {
            if b.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// A wal2sql UPDATE or DELETE has a ` WHERE ` outside its quoted identifiers and literals
/// (the rewrite forms `DELETE FROM ONLY t;` and `UPDATE ONLY t SET col = …;` have none).
/// None when the text cannot be read that way.
fn has_where(stmt: &str) -> Option<bool> {
    let b = stmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i += quoted_ident_end(&b[i..])?,
            b'\'' => i += literal_end(&b[i..])?,
            b' ' if b[i..].starts_with(b" WHERE ") => return Some(true),
            _ => i += 1,
        }
    }
    Some(false)
}

/// The number of rows of a wal2sql row list `(…), (…);` (values are `NULL` or literals).
fn insert_rows(list: &str) -> Option<u64> {
    let b = list.as_bytes();
    let mut i = 0;
    let mut rows = 0;
    loop {
        if b.get(i) != Some(&b'(') {
            return None;
        }
        i += 1;
        loop {
            match *b.get(i)? {
                b'\'' => i += literal_end(&b[i..])?,
                b')' => break,
                b'(' => return None,
                _ => i += 1,
            }
        }
        i += 1;
        rows += 1;
        match &b[i..] {
            b";" => return Some(rows),
            rest if rest.starts_with(b", (") => i += 2,
            _ => return None,
        }
    }
}

/// How many rows a wal2sql row change must affect on the target, as it did in the source: an
/// INSERT its rows; an UPDATE or DELETE with a WHERE exactly one (it names the row by its
/// primary key or replica identity index, or by `ctid = (SELECT ctid … LIMIT 1)` under
/// `REPLICA IDENTITY FULL`). None for what is not checked: the rewrite forms without WHERE
/// (`DELETE FROM ONLY t;`, `UPDATE ONLY t SET col = …;`), TRUNCATE, `setval`, markers, DDL,
/// and any text not of these exact forms.
fn expected_rows(stmt: &str) -> Option<u64> {
    if stmt.starts_with("INSERT INTO ") {
        return match insert_split(stmt) {
            Some(k) => insert_rows(&stmt[k..]),
            None => stmt.ends_with(" DEFAULT VALUES;").then_some(1),
        };
    }
    if stmt.starts_with("UPDATE ONLY ") || stmt.starts_with("DELETE FROM ONLY ") {
        return has_where(stmt)?.then_some(1);
    }
    None
}

/// A sequence value recorded by `wal2sql.snapshot_sequences()`, exactly as it writes it:
/// `SELECT pg_catalog.setval(<literal>, <integer>, true|false);`.
fn is_recorded_setval(stmt: &str) -> bool {
    let Some(rest) = stmt.strip_prefix("SELECT pg_catalog.setval(") else {
        return false;
    };
    let Some(end) = literal_end(rest.as_bytes()) else {
        return false;
    };
    let Some(rest) = rest[end..].strip_prefix(", ") else {
        return false;
    };
    let digits = rest.strip_prefix('-').unwrap_or(rest);
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    n > 0 && matches!(&digits[n..], ", true);" | ", false);")
}

/// The text of a message holding `stmts` (offsets in `body`), one statement per line, with
/// consecutive INSERTs into the same table and columns merged into one multi-row INSERT
/// (as wal2sql's `batch-inserts` does: the same rows, in the same order, fewer statements)
/// and, when `group_deletes`, consecutive DELETEs by a one-column key of the same table merged
/// into one `DELETE … WHERE key IN (…)` (the same rows go, nothing happens in between).
/// Each piece carries the rows it must affect: a merged INSERT the sum of its rows, a merged
/// DELETE one per key. With `skip_setval` (`--no-sync-sequences`), the sequence values recorded
/// by `wal2sql.snapshot_sequences()` are left out.
fn build_message(
    body: &str,
    stmts: &[Stmt],
    out: &mut String,
    pieces: &mut Vec<Piece>,
    group_deletes: bool,
    skip_setval: bool,
) {
    let mut i = 0;
    while i < stmts.len() {
        let s = &body[stmts[i].start..stmts[i].end];
        if skip_setval && stmts[i].kind == Kind::Dml && is_recorded_setval(s) {
            i += 1;
            continue;
        }
        let start = out.len();
        if group_deletes
            && stmts[i].kind == Kind::Dml
            && let Some(k) = delete_split(s)
            && i + 1 < stmts.len()
            && body[stmts[i + 1].start..stmts[i + 1].end].starts_with(&s[..k])
        {
            let prefix = &s[..k];
            let mut j = i;
            let mut first = true;
            while j < stmts.len() && j - i < DELETE_MERGE_ROWS {
                let t = &body[stmts[j].start..stmts[j].end];
                if stmts[j].kind != Kind::Dml
                    || out.len() - start + t.len() > MERGE_MAX
                    || !t.starts_with(prefix)
                    || delete_split(t) != Some(k)
                {
                    break;
                }
                if first {
                    // "… WHERE key = " becomes "… WHERE key IN (".
                    out.push_str(&prefix[..prefix.len() - 2]);
                    out.push_str("IN (");
                    first = false;
                } else {
                    out.push_str(", ");
                }
                out.push_str(&t[k..t.len() - 1]);
                j += 1;
            }
            out.push_str(");");
            pieces.push(Piece {
                start,
                end: out.len(),
                first: i,
                last: j - 1,
                rows: Some((j - i) as u64),
            });
            out.push('\n');
            i = j;
            continue;
        }
        match insert_split(s) {
            Some(k) if stmts[i].kind == Kind::Dml => {
                let prefix = &s[..k];
                out.push_str(&s[..s.len() - 1]);
                let mut rows = insert_rows(&s[k..]);
                let mut j = i + 1;
                while j < stmts.len() {
                    let t = &body[stmts[j].start..stmts[j].end];
                    if out.len() - start + t.len() > MERGE_MAX
                        || !t.starts_with(prefix)
                        || insert_split(t) != Some(k)
                    {
                        break;
                    }
                    out.push_str(", ");
                    out.push_str(&t[k..t.len() - 1]);
                    rows = rows.zip(insert_rows(&t[k..])).map(|(a, b)| a + b);
                    j += 1;
                }
                out.push(';');
                pieces.push(Piece {
                    start,
                    end: out.len(),
                    first: i,
                    last: j - 1,
                    rows,
                });
                i = j;
            }
            _ => {
                out.push_str(s);
                pieces.push(Piece {
                    start,
                    end: out.len(),
                    first: i,
                    last: i,
                    rows: match stmts[i].kind {
                        Kind::Dml => expected_rows(s),
                        _ => None,
                    },
                });
                i += 1;
            }
        }
        out.push('\n');
    }
}

/// Which piece failed: the one holding the server's error position, else the one after the
/// `completed` ones. Returns the index of its first statement in the transaction's list.
fn locate(
    text: &str,
    pieces: &[Piece],
    prefix: usize,
    completed: usize,
    err: &tokio_postgres::Error,
) -> (Option<(usize, usize)>, Option<String>) {
    let by_position = err.as_db_error().and_then(|db| match db.position() {
        Some(ErrorPosition::Original(p)) => {
            let byte = text
                .char_indices()
                .nth((*p as usize).saturating_sub(1))
                .map(|(i, _)| i)?;
            pieces.iter().position(|s| s.start <= byte && byte < s.end)
        }
        _ => None,
    });
    let index = by_position.or_else(|| completed.checked_sub(prefix).filter(|i| *i < pieces.len()));
    match index {
        Some(i) => (
            Some((pieces[i].first, pieces[i].last)),
            Some(excerpt(&text[pieces[i].start..pieces[i].end])),
        ),
        None => (None, None),
    }
}

/// How a message did not go through.
enum Drained {
    /// The server failed a statement after `completed` statements of the message completed.
    Server {
        completed: usize,
        err: tokio_postgres::Error,
    },
    /// Statement `index` of the message affected `actual` rows instead of `expected`.
    Rows {
        index: usize,
        expected: u64,
        actual: u64,
    },
}

/// Reads a message's results to its end, checking the row count of each statement (from its
/// CommandComplete tag) against `expect`, one entry per statement of the message in order. The
/// first difference is returned (after the rest of the message has run: the caller rolls back).
async fn drain(
    stream: &mut Pin<Box<SimpleQueryStream>>,
    expect: &[Option<u64>],
) -> std::result::Result<(), Drained> {
    let mut completed = 0;
    let mut wrong = None;
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(SimpleQueryMessage::CommandComplete(actual)) => {
                if wrong.is_none()
                    && let Some(Some(expected)) = expect.get(completed)
                    && actual != *expected
                {
                    wrong = Some(Drained::Rows {
                        index: completed,
                        expected: *expected,
                        actual,
                    });
                }
                completed += 1;
            }
            Ok(_) => {}
            Err(err) => return Err(wrong.unwrap_or(Drained::Server { completed, err })),
        }
    }
    wrong.map_or(Ok(()), Err)
}

fn is_txn_control(text: &[u8]) -> bool {
    let words: Vec<String> = text
        .split(|b| !(b.is_ascii_alphabetic()))
        .filter(|w| !w.is_empty())
        .take(2)
        .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
        .collect();
    match words.first().map(String::as_str) {
        Some(
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE",
        ) => true,
        Some("PREPARE") => words.get(1).is_some_and(|w| w == "TRANSACTION"),
        _ => false,
    }
}

impl<'a> Engine<'a> {
    pub fn new(
        client: &'a Client,
        guard: Guard,
        start_lsn: Lsn,
        stop: Option<StopAt>,
        limits: Limits,
        total: Option<u64>,
        skip_setval: bool,
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
        }
    }

    fn txn_error(&self, file: usize, h: &TxnHeader, f: Failure) -> Error {
        let name = &self.files[file];
        let at = format!(
            "transaction xid={} commit_lsn={} (committed {}) in \"{name}\"",
            h.xid,
            h.commit_lsn,
            format_commit_time(h.commit_time)
        );
        let statement = match (f.number, &f.excerpt) {
            (Some((n, m)), Some(text)) if n == m => {
                format!("Statement {n} of the transaction: {text}")
            }
            (Some((n, m)), Some(text)) => format!(
                "Statements {n} to {m} of the transaction (row inserts merged into one statement): {text}"
            ),
            _ => "The failing statement could not be located.".into(),
        };
        let Some(db) = f.err.as_db_error() else {
            return Error::backup(format!("could not apply {at}: {}", f.err))
                .with_detail(statement);
        };
        let message = db.message();
        if message.starts_with("wal2sql:") {
            return Error::backup(format!("{at} cannot be replayed: {message}"))
                .with_detail(statement)
                .with_hint(
                    "wal2sql could not turn this change of the source into SQL. The restore can go up to the transaction before it: use --up-to with its commit_lsn minus one, or its commit time minus one microsecond.",
                );
        }
        let mut detail = statement;
        if let Some(d) = db.detail() {
            detail = format!("{d}\n{detail}");
        }
        let mut error = Error::backup(format!(
            "could not apply {at}: {} ({})",
            message,
            db.code().code()
        ))
        .with_detail(detail);
        if let Some(h) = db.hint() {
            error = error.with_hint(h.to_string());
        } else if db.code().code() == "42704" && message.starts_with("role ") {
            error = error.with_hint("Roles created after the chain's base are not in its globals.sql; create the role on the target and run the restore again.");
        }
        error
    }

    /// A row change that did not affect, on the target, the rows it affected in the source.
    fn rows_error(
        &self,
        t: &Txn,
        (n, m): (usize, usize),
        text: &str,
        expected: u64,
        actual: u64,
    ) -> Error {
        let h = &t.header;
        let rows = |k: u64| match k {
            1 => "1 row".to_string(),
            k => format!("{k} rows"),
        };
        let statement = if n == m {
            format!("Statement {n} of the transaction: {}", excerpt(text))
        } else {
            format!(
                "Statements {n} to {m} of the transaction (row changes merged into one statement): {}",
                excerpt(text)
            )
        };
        Error::backup(format!(
            "could not apply transaction xid={} commit_lsn={} (committed {}) in \"{}\": the statement affected {} on the target, {} in the source",
            h.xid,
            h.commit_lsn,
            format_commit_time(h.commit_time),
            self.files[t.file],
            rows(actual),
            rows(expected)
        ))
        .with_detail(statement)
        .with_hint(
            "The target differs from the source at this point: a row this change applies to is missing or not the same (the restored database was written to between runs, a diff file was edited, or a bug). Nothing of this transaction was applied. A restore into a new database (--create) replays everything from the base again; if it stops here too, the differentials do not match the base.",
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
                        lexer: Lexer::new(),
                        stmts: Vec::new(),
                        started: false,
                        sent: 0,
                        has_ddl: false,
                    });
                }
                LineKind::Body => {
                    let t = txn.as_mut().expect("body lines come inside a transaction");
                    let before = t.stmts.len();
                    t.lexer.scan(&t.buf, &mut t.stmts);
                    t.has_ddl |= t.stmts[before..].iter().any(|s| s.kind == Kind::Ddl);
                    if t.buf.len() >= self.limits.chunk_bytes && !t.stmts.is_empty() {
                        self.send_partial(t).await?;
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
            } else if s.kind == Kind::Control || is_txn_control(text) {
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
        if !t.lexer.at_boundary() {
            return Err(self.corrupt(&t, "it ends inside a statement"));
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
        let n = t.stmts.len();
        self.send_segments(&mut t, n, true).await?;
        self.done(&t.header, t.file);
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
        for mut t in txns {
            let n = t.stmts.len();
            self.send_segments(&mut t, n, true).await?;
            self.done(&t.header, t.file);
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
        t.lexer.shift(cut);
        t.sent += n;
        t.stmts.clear();
        t.started = true;
        Ok(())
    }

    /// Sends `t.stmts[..n]` in order, waiting for each message and checking the row count of
    /// each statement: runs of row changes in messages of at most the chunk size, each run of
    /// DDL bracketed by the trigger guard. `commit`: the last statement is the transaction's
    /// COMMIT; it is sent on its own, once every row count is checked.
    async fn send_segments(&mut self, t: &mut Txn, n: usize, commit: bool) -> Result<()> {
        let m = if commit { n - 1 } else { n };
        let mut i = 0;
        while i < m {
            let ddl = t.stmts[i].kind == Kind::Ddl;
            let mut j = i + 1;
            while j < m
                && (t.stmts[j].kind == Kind::Ddl) == ddl
                && (ddl || t.stmts[j].end - t.stmts[i].start <= self.limits.chunk_bytes)
            {
                j += 1;
            }
            if ddl && !self.guard.is_empty() {
                let before = self.guard.before_ddl();
                if !before.is_empty() {
                    self.client.batch_execute(&before).await.map_err(|e| {
                        self.txn_error(
                            t.file,
                            &t.header,
                            Failure {
                                number: None,
                                excerpt: Some(format!(
                                    "(pg_scribe, restoring trigger states before DDL) {}",
                                    excerpt(&before)
                                )),
                                err: e,
                            },
                        )
                    })?;
                }
            }
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
                i = j;
                continue;
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
                    return Err(self.rows_error(
                        t,
                        number(p),
                        &text[p.start..p.end],
                        expected,
                        actual,
                    ));
                }
            }
            if ddl {
                let mut guard = std::mem::take(&mut self.guard);
                let r = guard.after_ddl(self.client).await;
                self.guard = guard;
                r.map_err(|e| {
                    self.txn_error(
                        t.file,
                        &t.header,
                        Failure {
                            number: None,
                            excerpt: Some(
                                "(pg_scribe, checking triggers and rules after DDL)".into(),
                            ),
                            err: e,
                        },
                    )
                })?;
            }
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

/// A one-line progress display on stderr, only when it is a terminal.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    total: Option<u64>,
    shown: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: now,
            last: now,
            total,
            shown: false,
        }
    }

    fn tick(&mut self, bytes: u64, txns: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = match self.total {
            Some(total) if rate > 0.0 && total > bytes => {
                format!(
                    ", ETA {}",
                    crate::ui::duration_text(Duration::from_secs_f64(
                        (total - bytes) as f64 / rate
                    ))
                )
            }
            _ => String::new(),
        };
        let of = self
            .total
            .map(|t| format!(" of {}", ui::size(t)))
            .unwrap_or_default();
        eprint!(
            "\r\x1b[K  applying: {}{of}, {txns} transactions, {}/s ({:.0} txn/s){eta}",
            ui::size(bytes),
            ui::size(rate as u64),
            txns as f64 / secs
        );
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_recognised() {
        for s in [
            "END;",
            "commit;",
            "ROLLBACK;",
            "start transaction;",
            "PREPARE TRANSACTION 'x';",
            "savepoint a;",
        ] {
            assert!(is_txn_control(s.as_bytes()), "{s}");
        }
        for s in [
            "PREPARE q AS SELECT 1;",
            "CREATE TABLE t (a int);",
            "INSERT INTO t VALUES (1);",
        ] {
            assert!(!is_txn_control(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn literals_and_excerpts() {
        assert_eq!(literal("UTF8"), "'UTF8'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), "E'a\\\\b'");
        let long = "x".repeat(300);
        assert_eq!(excerpt(&long).chars().count(), 201);
        assert_eq!(excerpt("a\nb"), "a b");
    }

    #[test]
    fn consecutive_inserts_are_merged() {
        use super::super::lexer::statements;
        let body = "BEGIN;\nINSERT INTO public.t (a, \"b VALUES (\") VALUES ('1', 'x'), ('0', 'y');\nINSERT INTO public.t (a, \"b VALUES (\") VALUES ('2', ' VALUES (');\nINSERT INTO public.u (a) VALUES ('3');\nUPDATE ONLY public.t SET a = '1' WHERE a = '2';\nINSERT INTO public.t (a, \"b VALUES (\") VALUES ('4', NULL);\nCOMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, false, false);
        assert_eq!(
            text,
            "BEGIN;\nINSERT INTO public.t (a, \"b VALUES (\") VALUES ('1', 'x'), ('0', 'y'), ('2', ' VALUES (');\nINSERT INTO public.u (a) VALUES ('3');\nUPDATE ONLY public.t SET a = '1' WHERE a = '2';\nINSERT INTO public.t (a, \"b VALUES (\") VALUES ('4', NULL);\nCOMMIT;\n"
        );
        assert_eq!(
            pieces.iter().map(|p| p.first).collect::<Vec<_>>(),
            vec![0, 1, 3, 4, 5, 6]
        );
        assert_eq!(
            &text[pieces[1].start..pieces[1].end],
            "INSERT INTO public.t (a, \"b VALUES (\") VALUES ('1', 'x'), ('0', 'y'), ('2', ' VALUES (');"
        );
    }

    #[test]
    fn deletes_by_a_one_column_key_are_recognised() {
        let ok = [
            ("DELETE FROM ONLY public.t WHERE id = '1';", 37),
            (
                "DELETE FROM ONLY \"My \"\"s\".\"T x\" WHERE \"k ey\" = E'a\\\\b'';';",
                47,
            ),
            (
                "DELETE FROM ONLY s.t WHERE k = 'it''s; '' WHERE x = ''';",
                31,
            ),
        ];
        for (stmt, at) in ok {
            assert_eq!(delete_split(stmt), Some(at), "{stmt}");
        }
        for stmt in [
            "DELETE FROM ONLY public.t WHERE a = '1' AND b = '2';",
            "DELETE FROM ONLY public.t WHERE ctid = (SELECT ctid FROM ONLY public.t WHERE a = '1' LIMIT 1);",
            "DELETE FROM ONLY public.t WHERE a IS NULL;",
            "DELETE FROM ONLY public.t WHERE a::pg_catalog.text = '1';",
            "DELETE FROM ONLY public.t WHERE a OPERATOR(public.=) '1';",
            "DELETE FROM ONLY public.t;",
            "DELETE FROM ONLY public.t WHERE a = '1' ;",
            "DELETE FROM ONLY public.t WHERE a = '1'",
            "DELETE FROM ONLY public.t WHERE a = '1'';",
        ] {
            assert_eq!(delete_split(stmt), None, "{stmt}");
        }
    }

    #[test]
    fn consecutive_deletes_by_key_are_merged() {
        use super::super::lexer::statements;
        let body = "BEGIN;\nDELETE FROM ONLY public.t WHERE id = '1';\nDELETE FROM ONLY public.t WHERE id = E'2\\\\';\nDELETE FROM ONLY public.u WHERE id = '3';\nDELETE FROM ONLY public.t WHERE id = '4';\nDELETE FROM ONLY public.t WHERE id = '5';\nINSERT INTO public.t (id) VALUES ('1');\nDELETE FROM ONLY public.t WHERE id = '1';\nCOMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, false);
        assert_eq!(
            text,
            "BEGIN;\nDELETE FROM ONLY public.t WHERE id IN ('1', E'2\\\\');\nDELETE FROM ONLY public.u WHERE id = '3';\nDELETE FROM ONLY public.t WHERE id IN ('4', '5');\nINSERT INTO public.t (id) VALUES ('1');\nDELETE FROM ONLY public.t WHERE id = '1';\nCOMMIT;\n"
        );
        assert_eq!(
            pieces.iter().map(|p| (p.first, p.last)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 2), (3, 3), (4, 5), (6, 6), (7, 7), (8, 8)]
        );
        // Not when replaying exactly.
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, false, false);
        assert_eq!(text, body);
    }

    #[test]
    fn expected_row_counts_follow_wal2sql_forms() {
        for (stmt, rows) in [
            ("INSERT INTO public.t (a, b) VALUES ('1', NULL);", Some(1)),
            (
                "INSERT INTO public.t (a, \"b VALUES (\") VALUES ('1', 'x), (y'), (NULL, E'\\\\'''), ('3', '(');",
                Some(3),
            ),
            (
                "INSERT INTO public.t (id) OVERRIDING SYSTEM VALUE VALUES ('1'), ('2');",
                Some(2),
            ),
            ("INSERT INTO public.\"t x\" DEFAULT VALUES;", Some(1)),
            ("UPDATE ONLY public.t SET a = '1' WHERE id = '2';", Some(1)),
            (
                "UPDATE ONLY public.t SET a = ' WHERE ' WHERE ctid = (SELECT ctid FROM ONLY public.t WHERE a = '1' LIMIT 1);",
                Some(1),
            ),
            ("DELETE FROM ONLY public.t WHERE id = '1';", Some(1)),
            (
                "DELETE FROM ONLY public.t WHERE a IS NULL AND b::pg_catalog.text = '{}';",
                Some(1),
            ),
            // The rewrite forms, without WHERE: every row of the table, however many.
            ("DELETE FROM ONLY public.t;", None),
            ("UPDATE ONLY public.t SET c = ' WHERE x';", None),
            (
                "UPDATE ONLY public.\" WHERE \" SET \" WHERE \" = E'\\\\'' WHERE ';",
                None,
            ),
            ("TRUNCATE ONLY public.t;", None),
            ("SELECT pg_catalog.setval('public.s', 5, true);", None),
            ("INSERT INTO public.t (a) SELECT 1;", None),
            ("INSERT INTO public.t (a) VALUES ('1') , ('2');", None),
            ("CREATE TABLE t (a int);", None),
        ] {
            assert_eq!(expected_rows(stmt), rows, "{stmt}");
        }
    }

    #[test]
    fn merged_pieces_carry_their_row_counts() {
        use super::super::lexer::statements;
        let body = "BEGIN;\nINSERT INTO public.t (a) VALUES ('1'), ('2');\nINSERT INTO public.t (a) VALUES ('3');\nDELETE FROM ONLY public.t WHERE a = '1';\nDELETE FROM ONLY public.t WHERE a = '2';\nDELETE FROM ONLY public.t;\nUPDATE ONLY public.t SET a = '4' WHERE a = '3';\nCOMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, false);
        assert_eq!(
            pieces.iter().map(|p| p.rows).collect::<Vec<_>>(),
            vec![None, Some(3), Some(2), None, Some(1), None]
        );
    }

    #[test]
    fn recorded_sequence_values_are_left_out_on_request() {
        for stmt in [
            "SELECT pg_catalog.setval('public.s', 42, true);",
            "SELECT pg_catalog.setval('\"My s\".\"q''s\"', -9223372036854775808, false);",
            "SELECT pg_catalog.setval(E'a\\\\b.s', 1, true);",
        ] {
            assert!(is_recorded_setval(stmt), "{stmt}");
        }
        for stmt in [
            "SELECT pg_catalog.setval('public.s', 42);",
            "SELECT pg_catalog.setval('public.s', 42, true); SELECT 1;",
            "SELECT pg_catalog.setval('public.s', (SELECT max(id) FROM t), true);",
            "SELECT pg_catalog.setval('public.s', 42, true)",
            "SELECT setval('public.s', 42, true);",
        ] {
            assert!(!is_recorded_setval(stmt), "{stmt}");
        }
        use super::super::lexer::statements;
        let body = "BEGIN;\nSELECT pg_catalog.setval('public.s', 42, true);\nINSERT INTO public.t (a) VALUES ('1');\nSELECT pg_catalog.setval('public.u', 7, false);\nCOMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, true);
        assert_eq!(
            text,
            "BEGIN;\nINSERT INTO public.t (a) VALUES ('1');\nCOMMIT;\n"
        );
        assert_eq!(
            pieces.iter().map(|p| p.first).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, false);
        assert_eq!(text, body);
    }

    #[test]
    fn statements_are_numbered_from_text() {
        use super::super::lexer::statements;
        let text = "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\n";
        assert_eq!(statements(text.as_bytes()).len(), 3);
    }
}
