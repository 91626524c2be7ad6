//! How a replayed statement failed: reading a message's results (row counts from the
//! CommandComplete tags), locating the failing statement, and the errors reported for it.

use std::pin::Pin;

use futures::StreamExt;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryStream};

use super::statements::Piece;
use crate::error::Error;
use crate::storage::diff_format::{TxnHeader, format_commit_time};

/// A statement that failed: where, and what the server said.
pub struct Failure {
    /// First and last statement number (1-based; several when INSERTs were merged).
    pub number: Option<(usize, usize)>,
    pub excerpt: Option<String>,
    pub err: tokio_postgres::Error,
}

pub fn excerpt(text: &str) -> String {
    let one_line: String = text.chars().take(200).collect();
    let one_line = one_line.replace('\n', " ");
    if text.chars().count() > 200 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

/// Which piece failed: the one holding the server's error position, else the one after the
/// `completed` ones. Returns the index of its first statement in the transaction's list.
pub fn locate(
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
pub enum Drained {
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
pub async fn drain(
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

/// The error for a failed statement of a transaction (file `name`), with the statement located
/// and wal2sql's markers told apart.
pub fn txn_error(name: &str, h: &TxnHeader, f: Failure) -> Error {
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
        return Error::backup(format!("could not apply {at}: {}", f.err)).with_detail(statement);
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
pub fn rows_error(
    name: &str,
    h: &TxnHeader,
    (n, m): (usize, usize),
    text: &str,
    expected: u64,
    actual: u64,
) -> Error {
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
        name,
        rows(actual),
        rows(expected)
    ))
    .with_detail(statement)
    .with_hint(
        "The target differs from the source at this point: a row this change applies to is missing or not the same (the restored database was written to between runs, a diff file was edited, or a bug). Nothing of this transaction was applied. A restore into a new database (--create) replays everything from the base again; if it stops here too, the differentials do not match the base.",
    )
}
