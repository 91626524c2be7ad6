//! The statements of a replayed transaction: what each one is (classified by the exact forms
//! wal2sql writes), and the text of a message holding several, with consecutive row changes
//! merged and the row count each must affect. No SQL lexer: the diff format gives statement
//! boundaries (one line each, or framed by length; see `storage::diff_format`), and the forms
//! read here are only wal2sql's own one-line row changes.

/// What a statement is, as far as the replay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BEGIN;` or `COMMIT;`: the transaction's frame, written by wal2sql.
    Control,
    /// A row change, TRUNCATE, a `setval` or an unreplayable marker written by wal2sql.
    Dml,
    /// Another statement of wal2sql's own (`SET LOCAL …`, `RESET ROLE;`, `ALTER TABLE …
    /// REPLICA IDENTITY …`): sent with its neighbours of the same kind.
    Setting,
    /// Captured DDL (framed `-- wal2sql ddl`): sent exactly as captured, alone in its message.
    Ddl,
}

/// One complete statement: `[start, end)` in the transaction's buffer, without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stmt {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

const DML_PREFIXES: [&[u8]; 6] = [
    b"INSERT INTO ",
    b"UPDATE ONLY ",
    b"DELETE FROM ",
    b"TRUNCATE ONLY ",
    b"SELECT pg_catalog.setval(",
    b"DO 'BEGIN RAISE EXCEPTION USING MESSAGE = ",
];

/// The kind of one of wal2sql's own statements (a line, or framed `text`).
pub fn classify(text: &[u8]) -> Kind {
    if text == b"BEGIN;" || text == b"COMMIT;" {
        Kind::Control
    } else if DML_PREFIXES.iter().any(|p| text.starts_with(p)) {
        Kind::Dml
    } else {
        Kind::Setting
    }
}

/// A transaction control statement (never written by wal2sql inside a transaction).
pub fn is_txn_control(text: &[u8]) -> bool {
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

/// The comparison wal2sql writes for a key column whose type's equality is pg_catalog's.
const EQ: &str = " OPERATOR(pg_catalog.=) ";

/// A statement of a message: `[start, end)` in its text, and the index of the first statement
/// of the transaction it came from (consecutive INSERTs into one table are merged into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
    pub first: usize,
    pub last: usize,
    /// The rows it must affect (see `expected_rows`); None: not checked.
    pub rows: Option<u64>,
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

/// A wal2sql DELETE by a one-column key compared with pg_catalog's `=`:
/// `DELETE FROM ONLY <table> WHERE <column> OPERATOR(pg_catalog.=) <literal>;`. Returns where the literal starts.
/// (Multi-column keys, `REPLICA IDENTITY FULL`'s `ctid = (SELECT …)`, `IS NULL`,
/// `::pg_catalog.text` and `OPERATOR(…)` comparisons are not of this form.)
fn delete_split(stmt: &str) -> Option<usize> {
    let b = stmt.as_bytes();
    if !stmt.starts_with("DELETE FROM ONLY ") || !stmt.ends_with(';') {
        return None;
    }
    let mut i = table_end(b, "DELETE FROM ONLY ".len())?;
    if !b[i..].starts_with(b" WHERE ") {
        return None;
    }
    i = ident_end(b, i + " WHERE ".len())?;
    if !b[i..].starts_with(EQ.as_bytes()) {
        return None;
    }
    i += EQ.len();
    let end = literal_end(&b[i..])?;
    (i + end + 1 == b.len()).then_some(i)
}

/// The index just past an identifier as wal2sql writes it (`quote_identifier`: plain
/// lowercase, digits and `_`, or quoted) starting at `b[i]`.
fn ident_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'"') {
        return Some(i + quoted_ident_end(&b[i..])?);
    }
    let n = b[i..]
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'_')
        .count();
    (n > 0).then_some(i + n)
}

/// The index just past a qualified table name (`schema.table`) starting at `b[i]`.
fn table_end(b: &[u8], i: usize) -> Option<usize> {
    let i = ident_end(b, i)?;
    if b.get(i) != Some(&b'.') {
        return None;
    }
    ident_end(b, i + 1)
}

/// The index just past a value as wal2sql writes it (`NULL` or a literal) at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    if b[i..].starts_with(b"NULL") {
        return Some(i + 4);
    }
    Some(i + literal_end(&b[i..])?)
}

/// A wal2sql UPDATE naming its row by key columns compared with pg_catalog's `=`:
/// `UPDATE ONLY <table> SET <col> = <value>, … WHERE <key> OPERATOR(pg_catalog.=) <literal>[ AND …];`
/// (values `NULL` or literals). `REPLICA IDENTITY FULL`'s `ctid = (SELECT …)`, `IS NULL`,
/// `::pg_catalog.text` and `OPERATOR(…)` comparisons, a domain key's cast after its literal
/// and the rewrite form without WHERE are not of this form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyedUpdate<'a> {
    table: &'a str,
    /// The SET list: column and value text, in order.
    set: Vec<(&'a str, &'a str)>,
    /// The key: column and literal text, in order.
    key: Vec<(&'a str, &'a str)>,
    /// The text after ` WHERE ` without the `;`: the key's values, told apart by text.
    key_text: &'a str,
}

impl KeyedUpdate<'_> {
    /// Merged with `other` into one `UPDATE … FROM (VALUES …)`: the same table, SET columns
    /// and key columns.
    fn same_shape(&self, other: &KeyedUpdate) -> bool {
        self.table == other.table
            && self.set.len() == other.set.len()
            && self.key.len() == other.key.len()
            && self.set.iter().zip(&other.set).all(|(a, b)| a.0 == b.0)
            && self.key.iter().zip(&other.key).all(|(a, b)| a.0 == b.0)
    }
}

fn keyed_update(stmt: &str) -> Option<KeyedUpdate<'_>> {
    const HEAD: &str = "UPDATE ONLY ";
    let b = stmt.as_bytes();
    if !stmt.starts_with(HEAD) || !stmt.ends_with(';') {
        return None;
    }
    let mut i = table_end(b, HEAD.len())?;
    let table = &stmt[HEAD.len()..i];
    if !b[i..].starts_with(b" SET ") {
        return None;
    }
    i += " SET ".len();
    let mut set = Vec::new();
    loop {
        let c = ident_end(b, i)?;
        if !b[c..].starts_with(b" = ") {
            return None;
        }
        let v = value_end(b, c + 3)?;
        set.push((&stmt[i..c], &stmt[c + 3..v]));
        if b[v..].starts_with(b", ") {
            i = v + 2;
        } else if b[v..].starts_with(b" WHERE ") {
            i = v + " WHERE ".len();
            break;
        } else {
            return None;
        }
    }
    let where_at = i;
    let mut key = Vec::new();
    loop {
        let c = ident_end(b, i)?;
        if !b[c..].starts_with(EQ.as_bytes()) {
            return None;
        }
        let l = c + EQ.len();
        let v = l + literal_end(&b[l..])?;
        key.push((&stmt[i..c], &stmt[l..v]));
        if v + 1 == b.len() {
            break;
        } else if b[v..].starts_with(b" AND ") {
            i = v + " AND ".len();
        } else {
            return None;
        }
    }
    Some(KeyedUpdate {
        table,
        set,
        key,
        key_text: &stmt[where_at..stmt.len() - 1],
    })
}

/// An UPDATE that changes a key column (its SET value differs, as text, from the key's
/// literal) is never merged: later UPDATEs may name the row by its new key, and a join reads
/// the keys as they were before the statement. A key column SET to the very same text gets
/// the very same value as the row it names.
fn keeps_its_key(u: &KeyedUpdate) -> bool {
    u.key
        .iter()
        .all(|(k, lit)| u.set.iter().filter(|(c, _)| c == k).all(|(_, v)| v == lit))
}

/// At most this many rows per merged UPDATE or DELETE: the planner joins more rows with a table
/// of ~100k rows by hashing the whole table (a scan of it for each statement), fewer by its key
/// index; a whole-table scan of a smaller table costs little. Measured in doc/benchmarks.md.
const UPDATE_MERGE_ROWS: usize = 250;

/// At least this many UPDATEs are merged: a join costs more to plan than a single UPDATE, so
/// two rows in one statement took longer than two statements.
const UPDATE_MERGE_MIN: usize = 3;

/// Writes UPDATEs of one shape (each keeping its key, keys distinct) as one
/// `UPDATE ONLY t AS pg_scribe_t SET c = pg_scribe_v.sN, … FROM (VALUES …) AS pg_scribe_v(kN…,
/// sN…) WHERE pg_scribe_t.key OPERATOR(pg_catalog.=) pg_scribe_v.kN AND …;`.
///
/// The VALUES list starts with a row of typed NULLs (`(NULL::t).col`, the column's type read
/// from the table itself, whatever it is: domain, array, composite, with its typmod): the
/// literals after it are read with that type's input function, as the literals of the UPDATEs
/// were, and the length or precision of the column (`varchar(n)`, `numeric(p,s)` …) is applied
/// by the assignment, as it was (the only type whose input reads its typmod, `interval`, is
/// written by wal2sql in forms its typmod does not change: hours, minutes and seconds always
/// together, every other field with its unit). That first row matches no row of the table
/// (NULL is not equal to anything). A key column in SET is set from the key's own literal.
fn push_update_batch(out: &mut String, batch: &[KeyedUpdate]) {
    let u = &batch[0];
    // Which VALUES column each SET column takes its value from: a key's, or its own.
    let from: Vec<String> = u
        .set
        .iter()
        .enumerate()
        .map(|(n, (c, _))| match u.key.iter().position(|(k, _)| k == c) {
            Some(k) => format!("k{}", k + 1),
            None => format!("s{}", n + 1),
        })
        .collect();
    let own: Vec<usize> = (0..u.set.len())
        .filter(|n| from[*n].starts_with('s'))
        .collect();
    out.push_str("UPDATE ONLY ");
    out.push_str(u.table);
    out.push_str(" AS pg_scribe_t SET ");
    for (n, (c, _)) in u.set.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(c);
        out.push_str(" = pg_scribe_v.");
        out.push_str(&from[n]);
    }
    out.push_str(" FROM (VALUES (");
    let typed = u
        .key
        .iter()
        .map(|(k, _)| k)
        .chain(own.iter().map(|n| &u.set[*n].0));
    for (n, c) in typed.enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str("(NULL::");
        out.push_str(u.table);
        out.push_str(").");
        out.push_str(c);
    }
    out.push(')');
    for r in batch {
        out.push_str(", (");
        let values = r
            .key
            .iter()
            .map(|(_, v)| v)
            .chain(own.iter().map(|n| &r.set[*n].1));
        for (n, v) in values.enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(v);
        }
        out.push(')');
    }
    out.push_str(") AS pg_scribe_v(");
    let names = (1..=u.key.len())
        .map(|k| format!("k{k}"))
        .chain(own.iter().map(|n| format!("s{}", n + 1)));
    for (n, name) in names.enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&name);
    }
    out.push_str(") WHERE ");
    for (n, (k, _)) in u.key.iter().enumerate() {
        if n > 0 {
            out.push_str(" AND ");
        }
        out.push_str("pg_scribe_t.");
        out.push_str(k);
        out.push_str(EQ);
        out.push_str("pg_scribe_v.k");
        out.push_str(&(n + 1).to_string());
    }
    out.push(';');
}

/// At most this many rows per merged DELETE (see `UPDATE_MERGE_ROWS`: with more, the planner
/// scans a table of ~100k rows whole rather than look the keys up).
const DELETE_MERGE_ROWS: usize = 250;

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

/// The table a row change of wal2sql's applies to (INSERT, UPDATE or DELETE, by key or not), as
/// written (`schema.table`, quoted where needed); None for anything else.
fn row_change_table(stmt: &str) -> Option<&str> {
    let head = ["INSERT INTO ", "UPDATE ONLY ", "DELETE FROM ONLY "]
        .into_iter()
        .find(|h| stmt.starts_with(h))?;
    let end = table_end(stmt.as_bytes(), head.len())?;
    let rest = &stmt.as_bytes()[end..];
    (rest.starts_with(b" ") || rest == b";").then(|| &stmt[head.len()..end])
}

/// Orders the row changes of a group table by table: between two statements that are not row
/// changes (TRUNCATE, `setval`, markers), the changes of each table keep their order, and the
/// tables come in the order of their first change. Consecutive changes of one table can then be
/// merged. Exact inside one transaction of the target when no trigger or rule fires during row
/// changes (the replay's invariant, see `replay::guard`): a row change reads and writes its own
/// table only (foreign keys are not checked under `session_replication_role = replica`, values
/// are literals), so changes of different tables commute, with the same row counts.
pub fn order_by_table(body: &str, stmts: &mut [Stmt]) {
    let mut from = 0;
    while from < stmts.len() {
        let mut to = from;
        let mut tables: Vec<&str> = Vec::new();
        let mut rank = Vec::new();
        while to < stmts.len() {
            let s = &stmts[to];
            let Some(table) = (s.kind == Kind::Dml)
                .then(|| row_change_table(&body[s.start..s.end]))
                .flatten()
            else {
                break;
            };
            let r = match tables.iter().position(|t| *t == table) {
                Some(r) => r,
                None => {
                    tables.push(table);
                    tables.len() - 1
                }
            };
            rank.push(r);
            to += 1;
        }
        if tables.len() > 1 {
            let mut order: Vec<usize> = (0..to - from).collect();
            order.sort_by_key(|i| rank[*i]);
            let sorted: Vec<Stmt> = order.iter().map(|i| stmts[from + i]).collect();
            stmts[from..to].copy_from_slice(&sorted);
        }
        from = to.max(from + 1);
    }
}

/// The text of a message holding `stmts` (offsets in `body`), one statement per line, with
/// consecutive INSERTs into the same table and columns merged into one multi-row INSERT
/// (as wal2sql's `batch-inserts` does: the same rows, in the same order, fewer statements)
/// and, when `group_deletes`, consecutive DELETEs by a one-column key of the same table merged
/// into one `DELETE … WHERE key IN (…)` (the same rows go, nothing happens in between), and
/// consecutive UPDATEs of one table by key, of the same SET columns, each keeping its key,
/// with distinct keys, into one `UPDATE … FROM (VALUES …)` (see `push_update_batch`).
/// Each piece carries the rows it must affect: a merged INSERT the sum of its rows, a merged
/// DELETE or UPDATE one per key. With `skip_setval` (`--no-sync-sequences`), the sequence
/// values recorded by `wal2sql.snapshot_sequences()` are left out. Returns whether DELETEs or
/// UPDATEs were merged.
pub fn build_message(
    body: &str,
    stmts: &[Stmt],
    out: &mut String,
    pieces: &mut Vec<Piece>,
    merge_by_key: bool,
    skip_setval: bool,
) -> bool {
    let mut merged = false;
    let mut keys = std::collections::HashSet::new();
    let mut batch = Vec::new();
    let mut i = 0;
    while i < stmts.len() {
        let s = &body[stmts[i].start..stmts[i].end];
        if skip_setval && stmts[i].kind == Kind::Dml && is_recorded_setval(s) {
            i += 1;
            continue;
        }
        let start = out.len();
        if merge_by_key
            && stmts[i].kind == Kind::Dml
            && s.starts_with("UPDATE ONLY ")
            && i + 1 < stmts.len()
            && let Some(u) = keyed_update(s).filter(keeps_its_key)
        {
            // The next ones of its shape, each keeping its key, keys distinct.
            keys.clear();
            keys.insert(u.key_text);
            let mut size = s.len();
            batch.clear();
            batch.push(u);
            let mut j = i + 1;
            while j < stmts.len() && j - i < UPDATE_MERGE_ROWS {
                let t = &body[stmts[j].start..stmts[j].end];
                size += t.len();
                if stmts[j].kind != Kind::Dml || size > MERGE_MAX {
                    break;
                }
                let Some(v) = keyed_update(t) else { break };
                if !v.same_shape(&batch[0]) || !keeps_its_key(&v) || !keys.insert(v.key_text) {
                    break;
                }
                batch.push(v);
                j += 1;
            }
            if batch.len() >= UPDATE_MERGE_MIN {
                push_update_batch(out, &batch);
                pieces.push(Piece {
                    start,
                    end: out.len(),
                    first: i,
                    last: j - 1,
                    rows: Some(batch.len() as u64),
                });
                out.push('\n');
                merged = true;
                i = j;
                continue;
            }
        }
        if merge_by_key
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
                    // "… WHERE key OPERATOR(pg_catalog.=) " becomes "… WHERE key IN (": the
                    // replay session's search_path is pg_catalog, pg_temp (see the engine), so
                    // IN resolves the same operator.
                    out.push_str(&prefix[..prefix.len() - EQ.len()]);
                    out.push_str(" IN (");
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
            merged = true;
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
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One statement per line, as the diff format gives them.
    fn statements(b: &[u8]) -> Vec<Stmt> {
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = b[start..].iter().position(|&c| c == b'\n') {
            let end = start + i;
            out.push(Stmt {
                start,
                end,
                kind: classify(&b[start..end]),
            });
            start = end + 1;
        }
        out
    }

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
    fn consecutive_inserts_are_merged() {
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
            (
                "DELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '1';",
                58,
            ),
            (
                "DELETE FROM ONLY \"My \"\"s\".\"T x\" WHERE \"k ey\" OPERATOR(pg_catalog.=) E'a\\\\b'';';",
                68,
            ),
            (
                "DELETE FROM ONLY s.t WHERE k OPERATOR(pg_catalog.=) 'it''s; '' WHERE x = ''';",
                52,
            ),
        ];
        for (stmt, at) in ok {
            assert_eq!(delete_split(stmt), Some(at), "{stmt}");
        }
        for stmt in [
            "DELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1' AND b = '2';",
            "DELETE FROM ONLY public.t WHERE ctid = (SELECT ctid FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1' LIMIT 1);",
            "DELETE FROM ONLY public.t WHERE a IS NULL;",
            "DELETE FROM ONLY public.t WHERE a::pg_catalog.text = '1';",
            "DELETE FROM ONLY public.t WHERE a OPERATOR(public.=) '1';",
            "DELETE FROM ONLY public.t;",
            "DELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1' ;",
            "DELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1'",
            "DELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1'';",
        ] {
            assert_eq!(delete_split(stmt), None, "{stmt}");
        }
    }

    #[test]
    fn consecutive_deletes_by_key_are_merged() {
        let body = "BEGIN;\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '1';\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) E'2\\\\';\nDELETE FROM ONLY public.u WHERE id OPERATOR(pg_catalog.=) '3';\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '4';\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '5';\nINSERT INTO public.t (id) VALUES ('1');\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '1';\nCOMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, false);
        assert_eq!(
            text,
            "BEGIN;\nDELETE FROM ONLY public.t WHERE id IN ('1', E'2\\\\');\nDELETE FROM ONLY public.u WHERE id OPERATOR(pg_catalog.=) '3';\nDELETE FROM ONLY public.t WHERE id IN ('4', '5');\nINSERT INTO public.t (id) VALUES ('1');\nDELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '1';\nCOMMIT;\n"
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
    fn updates_by_key_are_recognised() {
        let u = keyed_update(
            "UPDATE ONLY \"My s\".t SET id = '1', \"a b\" = NULL, c = E'x\\\\'' WHERE ' WHERE id OPERATOR(pg_catalog.=) '1' AND k OPERATOR(pg_catalog.=) 'it''s';",
        )
        .expect("an update by key");
        assert_eq!(u.table, "\"My s\".t");
        assert_eq!(
            u.set,
            vec![
                ("id", "'1'"),
                ("\"a b\"", "NULL"),
                ("c", "E'x\\\\'' WHERE '")
            ]
        );
        assert_eq!(u.key, vec![("id", "'1'"), ("k", "'it''s'")]);
        assert_eq!(
            u.key_text,
            "id OPERATOR(pg_catalog.=) '1' AND k OPERATOR(pg_catalog.=) 'it''s'"
        );
        assert!(keeps_its_key(&u));
        for stmt in [
            "UPDATE ONLY public.t SET a = '1' WHERE ctid OPERATOR(pg_catalog.=) (SELECT ctid FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '2' LIMIT 1);",
            "UPDATE ONLY public.t SET a = '1' WHERE k IS NULL;",
            "UPDATE ONLY public.t SET a = '1' WHERE k::pg_catalog.text OPERATOR(pg_catalog.=) '2';",
            "UPDATE ONLY public.t SET a = '1' WHERE k OPERATOR(public.=) '2';",
            "UPDATE ONLY public.t SET a = '1' WHERE k OPERATOR(pg_catalog.=) '2'::public.d;",
            "UPDATE ONLY public.t SET a = '1';",
            "UPDATE ONLY public.t SET a = '1' WHERE k OPERATOR(pg_catalog.=) '2'",
            "UPDATE ONLY public.t SET a = '1' WHERE k OPERATOR(pg_catalog.=) '2' ;",
            "UPDATE ONLY public.t SET a = 1 WHERE k OPERATOR(pg_catalog.=) '2';",
            "UPDATE ONLY public.t SET a = '1' WHERE k OPERATOR(pg_catalog.=) '2' OR true;",
            "UPDATE ONLY t SET a = '1' WHERE k OPERATOR(pg_catalog.=) '2';",
        ] {
            assert_eq!(keyed_update(stmt), None, "{stmt}");
        }
        // A key column set to another value changes the key.
        let moved = keyed_update(
            "UPDATE ONLY public.t SET id = '2', a = 'x' WHERE id OPERATOR(pg_catalog.=) '1';",
        )
        .expect("an update by key");
        assert!(!keeps_its_key(&moved));
        // A key column left out of SET (an unchanged TOASTed value) keeps its value.
        let kept =
            keyed_update("UPDATE ONLY public.t SET a = 'x' WHERE id OPERATOR(pg_catalog.=) '1';")
                .expect("an update by key");
        assert!(keeps_its_key(&kept));
    }

    #[test]
    fn consecutive_updates_by_key_are_merged() {
        let body = "BEGIN;\n\
UPDATE ONLY public.t SET id = '1', a = 'x', b = NULL WHERE id OPERATOR(pg_catalog.=) '1';\n\
UPDATE ONLY public.t SET id = '2', a = E'\\\\', b = '3' WHERE id OPERATOR(pg_catalog.=) '2';\n\
UPDATE ONLY public.t SET id = '3', a = 'x', b = '3' WHERE id OPERATOR(pg_catalog.=) '3';\n\
UPDATE ONLY public.t SET id = '1', a = 'y', b = '4' WHERE id OPERATOR(pg_catalog.=) '1';\n\
UPDATE ONLY public.t SET id = '4', a = 'z', b = '5' WHERE id OPERATOR(pg_catalog.=) '4';\n\
UPDATE ONLY public.t SET id = '5', a = 'z', b = '5' WHERE id OPERATOR(pg_catalog.=) '5';\n\
UPDATE ONLY public.t SET id = '9', a = 'z', b = '5' WHERE id OPERATOR(pg_catalog.=) '6';\n\
UPDATE ONLY public.t SET id = '9', a = 'w', b = '6' WHERE id OPERATOR(pg_catalog.=) '9';\n\
UPDATE ONLY public.t SET id = '7', a = 'v' WHERE id OPERATOR(pg_catalog.=) '7';\n\
UPDATE ONLY public.t SET id = '8', a = 'u' WHERE id OPERATOR(pg_catalog.=) '8';\n\
UPDATE ONLY public.u SET a = 'u' WHERE id OPERATOR(pg_catalog.=) '7' AND k OPERATOR(pg_catalog.=) '8';\n\
UPDATE ONLY public.u SET a = 'v' WHERE id OPERATOR(pg_catalog.=) '7' AND k OPERATOR(pg_catalog.=) '9';\n\
UPDATE ONLY public.u SET a = NULL WHERE id OPERATOR(pg_catalog.=) '8' AND k OPERATOR(pg_catalog.=) '9';\n\
COMMIT;\n";
        let stmts = statements(body.as_bytes());
        let (mut text, mut pieces) = (String::new(), Vec::new());
        assert!(build_message(
            body,
            &stmts,
            &mut text,
            &mut pieces,
            true,
            false
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "BEGIN;",
                // Key 1 again closes the first batch.
                "UPDATE ONLY public.t AS pg_scribe_t SET id = pg_scribe_v.k1, a = pg_scribe_v.s2, b = pg_scribe_v.s3 FROM (VALUES ((NULL::public.t).id, (NULL::public.t).a, (NULL::public.t).b), ('1', 'x', NULL), ('2', E'\\\\', '3'), ('3', 'x', '3')) AS pg_scribe_v(k1, s2, s3) WHERE pg_scribe_t.id OPERATOR(pg_catalog.=) pg_scribe_v.k1;",
                // The key change (6 to 9) closes the second and goes alone.
                "UPDATE ONLY public.t AS pg_scribe_t SET id = pg_scribe_v.k1, a = pg_scribe_v.s2, b = pg_scribe_v.s3 FROM (VALUES ((NULL::public.t).id, (NULL::public.t).a, (NULL::public.t).b), ('1', 'y', '4'), ('4', 'z', '5'), ('5', 'z', '5')) AS pg_scribe_v(k1, s2, s3) WHERE pg_scribe_t.id OPERATOR(pg_catalog.=) pg_scribe_v.k1;",
                "UPDATE ONLY public.t SET id = '9', a = 'z', b = '5' WHERE id OPERATOR(pg_catalog.=) '6';",
                // Alone: the next has other SET columns.
                "UPDATE ONLY public.t SET id = '9', a = 'w', b = '6' WHERE id OPERATOR(pg_catalog.=) '9';",
                // Two are not worth a join.
                "UPDATE ONLY public.t SET id = '7', a = 'v' WHERE id OPERATOR(pg_catalog.=) '7';",
                "UPDATE ONLY public.t SET id = '8', a = 'u' WHERE id OPERATOR(pg_catalog.=) '8';",
                "UPDATE ONLY public.u AS pg_scribe_t SET a = pg_scribe_v.s1 FROM (VALUES ((NULL::public.u).id, (NULL::public.u).k, (NULL::public.u).a), ('7', '8', 'u'), ('7', '9', 'v'), ('8', '9', NULL)) AS pg_scribe_v(k1, k2, s1) WHERE pg_scribe_t.id OPERATOR(pg_catalog.=) pg_scribe_v.k1 AND pg_scribe_t.k OPERATOR(pg_catalog.=) pg_scribe_v.k2;",
                "COMMIT;",
            ]
        );
        assert_eq!(
            pieces
                .iter()
                .map(|p| (p.first, p.last, p.rows))
                .collect::<Vec<_>>(),
            vec![
                (0, 0, None),
                (1, 3, Some(3)),
                (4, 6, Some(3)),
                (7, 7, Some(1)),
                (8, 8, Some(1)),
                (9, 9, Some(1)),
                (10, 10, Some(1)),
                (11, 13, Some(3)),
                (14, 14, None)
            ]
        );
        // Not when replaying exactly.
        let (mut text, mut pieces) = (String::new(), Vec::new());
        assert!(!build_message(
            body,
            &stmts,
            &mut text,
            &mut pieces,
            false,
            false
        ));
        assert_eq!(text, body);
    }

    #[test]
    fn row_changes_are_ordered_table_by_table_between_other_statements() {
        let body = "BEGIN;\n\
UPDATE ONLY public.a SET v = '1' WHERE id OPERATOR(pg_catalog.=) '1';\n\
UPDATE ONLY public.b SET v = '1' WHERE id OPERATOR(pg_catalog.=) '1';\n\
INSERT INTO public.h (v) VALUES ('1');\n\
UPDATE ONLY public.a SET v = '2' WHERE id OPERATOR(pg_catalog.=) '2';\n\
UPDATE ONLY public.b SET v = '2' WHERE id OPERATOR(pg_catalog.=) '1';\n\
INSERT INTO public.h (v) VALUES ('2');\n\
UPDATE ONLY public.a SET v = '3' WHERE id OPERATOR(pg_catalog.=) '3';\n\
SELECT pg_catalog.setval('public.s', 5, true);\n\
DELETE FROM ONLY public.b WHERE id OPERATOR(pg_catalog.=) '1';\n\
DELETE FROM ONLY \"x.y\".\"a b\";\n\
DELETE FROM ONLY public.a WHERE id OPERATOR(pg_catalog.=) '1';\n\
TRUNCATE ONLY public.a;\n\
INSERT INTO public.a (v) VALUES ('3');\n\
COMMIT;\n";
        let mut stmts = statements(body.as_bytes());
        order_by_table(body, &mut stmts);
        let order: Vec<usize> = stmts
            .iter()
            .map(|s| {
                statements(body.as_bytes())
                    .iter()
                    .position(|t| t == s)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            order,
            vec![0, 1, 4, 7, 2, 5, 3, 6, 8, 9, 10, 11, 12, 13, 14]
        );
        let (mut text, mut pieces) = (String::new(), Vec::new());
        build_message(body, &stmts, &mut text, &mut pieces, true, false);
        assert!(
            text.starts_with("BEGIN;\nUPDATE ONLY public.a AS pg_scribe_t SET v = pg_scribe_v.s1 FROM (VALUES ((NULL::public.a).id, (NULL::public.a).v), ('1', '1'), ('2', '2'), ('3', '3'))"),
            "{text}"
        );
        // The repeated key of b closes its batch; h's INSERTs are merged.
        assert!(text.contains("\nUPDATE ONLY public.b SET v = '1' WHERE id OPERATOR(pg_catalog.=) '1';\nUPDATE ONLY public.b SET v = '2' WHERE id OPERATOR(pg_catalog.=) '1';\nINSERT INTO public.h (v) VALUES ('1'), ('2');\n"), "{text}");
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
            (
                "DELETE FROM ONLY public.t WHERE id OPERATOR(pg_catalog.=) '1';",
                Some(1),
            ),
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
        let body = "BEGIN;\nINSERT INTO public.t (a) VALUES ('1'), ('2');\nINSERT INTO public.t (a) VALUES ('3');\nDELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '1';\nDELETE FROM ONLY public.t WHERE a OPERATOR(pg_catalog.=) '2';\nDELETE FROM ONLY public.t;\nUPDATE ONLY public.t SET a = '4' WHERE a = '3';\nCOMMIT;\n";
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
}

#[cfg(test)]
mod property {
    //! The forms read here are wal2sql's own: random values with every character that matters
    //! (quotes, backslashes, newlines, parentheses, commas, ` WHERE `, ` VALUES (`), quoted the
    //! way wal2sql quotes them, must be read back with the right row counts, keys and merges.
    use super::*;

    /// wal2sql's literal (w2s_append_literal): E'' with \\, \n, \r when needed, quotes doubled.
    fn w2s_literal(v: &str) -> String {
        if v.contains(['\\', '\n', '\r']) {
            let body: String = v
                .chars()
                .map(|c| match c {
                    '\\' => "\\\\".to_string(),
                    '\n' => "\\n".to_string(),
                    '\r' => "\\r".to_string(),
                    '\'' => "''".to_string(),
                    c => c.to_string(),
                })
                .collect();
            format!("E'{body}'")
        } else {
            format!("'{}'", v.replace('\'', "''"))
        }
    }

    fn ident(v: &str) -> String {
        format!("\"{}\"", v.replace('"', "\"\""))
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn text(&mut self) -> String {
            const PIECES: [&str; 14] = [
                "'",
                "''",
                "\\",
                "\n",
                "\r",
                "(",
                ")",
                ", (",
                " WHERE ",
                " VALUES (",
                ";",
                "\"",
                "x",
                "é",
            ];
            (0..self.next(8))
                .map(|_| PIECES[self.next(PIECES.len())])
                .collect()
        }
    }

    #[test]
    fn wal2sql_forms_are_read_back_exactly() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let table = format!("{}.{}", ident(&rng.text()), ident(&rng.text()));
            let col = ident(&rng.text());
            let rows = 1 + rng.next(4);
            let list: Vec<String> = (0..rows)
                .map(|_| {
                    format!(
                        "({}, {})",
                        w2s_literal(&rng.text()),
                        w2s_literal(&rng.text())
                    )
                })
                .collect();
            let insert = format!("INSERT INTO {table} ({col}, b) VALUES {};", list.join(", "));
            assert!(!insert.contains('\n') || table.contains('\n') || col.contains('\n'));
            assert_eq!(expected_rows(&insert), Some(rows as u64), "{insert}");
            let k = insert_split(&insert).expect("a row list");
            assert_eq!(&insert[k..insert.len() - 1], list.join(", "), "{insert}");

            let key = w2s_literal(&rng.text());
            let delete = format!("DELETE FROM ONLY {table} WHERE {col}{EQ}{key};");
            assert_eq!(expected_rows(&delete), Some(1), "{delete}");
            let at = delete_split(&delete).expect("a key");
            assert_eq!(&delete[at..delete.len() - 1], key, "{delete}");

            let update = format!(
                "UPDATE ONLY {table} SET {col} = {} WHERE {col}{EQ}{key};",
                w2s_literal(&rng.text())
            );
            assert_eq!(expected_rows(&update), Some(1), "{update}");
            let u = keyed_update(&update).expect("an update by key");
            assert_eq!((u.table, u.key.len(), u.set.len()), (table.as_str(), 1, 1));
            assert_eq!(u.key[0], (col.as_str(), key.as_str()), "{update}");
            let value = if rng.next(4) == 0 {
                "NULL".to_string()
            } else {
                w2s_literal(&rng.text())
            };
            let two_keys = format!(
                "UPDATE ONLY {table} SET {col} = {value}, b = {key} WHERE b{EQ}{key} AND {col}{EQ}{key};"
            );
            let u = keyed_update(&two_keys).expect("an update by key");
            assert_eq!(
                u.set,
                vec![(col.as_str(), value.as_str()), ("b", key.as_str())]
            );
            assert_eq!(
                u.key,
                vec![("b", key.as_str()), (col.as_str(), key.as_str())]
            );
            assert_eq!(keeps_its_key(&u), value == key, "{two_keys}");
            let rewrite = format!(
                "UPDATE ONLY {table} SET {col} = {};",
                w2s_literal(&rng.text())
            );
            assert_eq!(expected_rows(&rewrite), None, "{rewrite}");
        }
    }
}
