//! Statement boundaries in a transaction's text, found the way psql finds them: `;` at top level,
//! outside quotes ('…', E'…', "…", $tag$…$tag$), comments (`--`, nested `/* */`) and
//! `BEGIN ATOMIC … END` bodies of SQL-standard functions. Used to split a huge transaction into
//! several messages only between whole statements, to tell DML (which the replay may batch)
//! from DDL (around which triggers are checked), and to name the statement an error came from.
//!
//! The lexer is incremental: [`Lexer::scan`] continues where it stopped, on a buffer that only
//! grows by whole lines (a dollar-quote tag or an `E'` never spans a line break, so lookahead
//! never runs off the end). wal2sql writes `SET LOCAL standard_conforming_strings = off;` before
//! DDL captured with that setting and `= on;` after; the lexer follows these so that `'…\'…'`
//! in such DDL is read as PostgreSQL reads it.

/// What a statement is, as far as the replay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BEGIN;` or `COMMIT;`: the transaction's frame, written by wal2sql.
    Control,
    /// A row change, TRUNCATE, a `setval` or an unreplayable marker written by wal2sql.
    Dml,
    /// Anything else: captured DDL and the `SET LOCAL …`/`RESET ROLE` around it.
    Ddl,
}

/// One complete statement: `[start, end)` in the buffer, `end` just past its `;`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stmt {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Top,
    Single { backslash: bool },
    Double,
    Dollar { tag_start: usize, tag_len: usize },
    LineComment,
    Block { depth: u32 },
}

#[derive(Debug, Clone)]
pub struct Lexer {
    state: State,
    pos: usize,
    /// Start of the current statement's first token, if it has begun.
    stmt_start: Option<usize>,
    /// The statement began with CREATE: track BEGIN/CASE/END nesting as psql does.
    create: bool,
    atomic_depth: u32,
    word_start: Option<usize>,
    /// `standard_conforming_strings` is off (wal2sql said so).
    scs_off: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new()
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

const DML_PREFIXES: [&[u8]; 6] = [
    b"INSERT INTO ",
    b"UPDATE ONLY ",
    b"DELETE FROM ",
    b"TRUNCATE ONLY ",
    b"SELECT pg_catalog.setval(",
    b"DO 'BEGIN RAISE EXCEPTION USING MESSAGE = ",
];

pub fn classify(text: &[u8]) -> Kind {
    if text == b"BEGIN;" || text == b"COMMIT;" {
        Kind::Control
    } else if DML_PREFIXES.iter().any(|p| text.starts_with(p)) {
        Kind::Dml
    } else {
        Kind::Ddl
    }
}

impl Lexer {
    pub fn new() -> Self {
        Lexer {
            state: State::Top,
            pos: 0,
            stmt_start: None,
            create: false,
            atomic_depth: 0,
            word_start: None,
            scs_off: false,
        }
    }

    /// True when no statement is partly scanned (only whitespace or comments since the last `;`).
    pub fn at_boundary(&self) -> bool {
        self.stmt_start.is_none() && matches!(self.state, State::Top | State::LineComment)
    }

    /// The buffer lost its first `n` bytes (they were sent): shift positions.
    pub fn shift(&mut self, n: usize) {
        self.pos -= n;
        self.stmt_start = self.stmt_start.map(|s| s - n);
        self.word_start = self.word_start.map(|s| s - n);
        if let State::Dollar { tag_start, tag_len } = self.state {
            // The tag is re-read from the buffer: keep it if it survived, else it was sent
            // (impossible: a statement in progress is never cut).
            self.state = State::Dollar {
                tag_start: tag_start - n,
                tag_len,
            };
        }
    }

    /// Scans `buf` from where the last call stopped, pushing every statement completed.
    pub fn scan(&mut self, buf: &[u8], out: &mut Vec<Stmt>) {
        let mut i = self.pos;
        let n = buf.len();
        while i < n {
            match self.state {
                State::Top => {
                    let b = buf[i];
                    if is_ident(b) || b == b'$' && self.word_start.is_some() {
                        if self.word_start.is_none() {
                            self.begin_stmt(i);
                            self.word_start = Some(i);
                        }
                        i += 1;
                        continue;
                    }
                    self.end_word(buf, i);
                    match b {
                        b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {}
                        b'\'' => {
                            self.begin_stmt(i);
                            let e = i > 0
                                && matches!(buf[i - 1], b'E' | b'e')
                                && (i < 2 || !is_ident(buf[i - 2]));
                            self.state = State::Single {
                                backslash: e || self.scs_off,
                            };
                        }
                        b'"' => {
                            self.begin_stmt(i);
                            self.state = State::Double;
                        }
                        b'-' if buf.get(i + 1) == Some(&b'-') => {
                            self.state = State::LineComment;
                            i += 1;
                        }
                        b'/' if buf.get(i + 1) == Some(&b'*') => {
                            self.state = State::Block { depth: 1 };
                            i += 1;
                        }
                        b'$' => {
                            self.begin_stmt(i);
                            // $tag$ or $$; a `$1` parameter is not a quote.
                            let mut j = i + 1;
                            if j < n
                                && (buf[j].is_ascii_alphabetic()
                                    || buf[j] == b'_'
                                    || buf[j] >= 0x80)
                            {
                                while j < n && is_ident(buf[j]) {
                                    j += 1;
                                }
                            }
                            if j < n && buf[j] == b'$' {
                                self.state = State::Dollar {
                                    tag_start: i,
                                    tag_len: j + 1 - i,
                                };
                                i = j;
                            }
                        }
                        b';' if self.atomic_depth == 0 => {
                            if let Some(start) = self.stmt_start.take() {
                                let kind = classify(&buf[start..=i]);
                                self.follow_settings(&buf[start..=i]);
                                out.push(Stmt {
                                    start,
                                    end: i + 1,
                                    kind,
                                });
                            }
                            self.create = false;
                        }
                        _ => self.begin_stmt(i),
                    }
                    i += 1;
                }
                State::Single { backslash } => {
                    let special: &[u8] = if backslash { b"'\\" } else { b"'" };
                    match buf[i..].iter().position(|c| special.contains(c)) {
                        None => i = n,
                        Some(k) => {
                            let at = i + k;
                            // A backslash escape or a doubled quote: skip both bytes.
                            if buf[at] == b'\\' || buf.get(at + 1) == Some(&b'\'') {
                                i = at + 2;
                            } else {
                                self.state = State::Top;
                                i = at + 1;
                            }
                        }
                    }
                }
                State::Double => match memchr::memchr(b'"', &buf[i..]) {
                    None => i = n,
                    Some(k) => {
                        let at = i + k;
                        if buf.get(at + 1) == Some(&b'"') {
                            i = at + 2;
                        } else {
                            self.state = State::Top;
                            i = at + 1;
                        }
                    }
                },
                State::Dollar { tag_start, tag_len } => {
                    let tag = &buf[tag_start..tag_start + tag_len];
                    match memchr::memmem::find(&buf[i..], tag) {
                        None => {
                            // Keep the last tag_len-1 bytes for a tag split across scans.
                            i = n.saturating_sub(tag_len - 1).max(i);
                            break;
                        }
                        Some(k) => {
                            self.state = State::Top;
                            i += k + tag_len;
                        }
                    }
                }
                State::LineComment => match memchr::memchr(b'\n', &buf[i..]) {
                    None => i = n,
                    Some(k) => {
                        self.state = State::Top;
                        i += k + 1;
                    }
                },
                State::Block { depth } => {
                    if buf[i] == b'*' && buf.get(i + 1) == Some(&b'/') {
                        self.state = if depth == 1 {
                            State::Top
                        } else {
                            State::Block { depth: depth - 1 }
                        };
                        i += 2;
                    } else if buf[i] == b'/' && buf.get(i + 1) == Some(&b'*') {
                        self.state = State::Block { depth: depth + 1 };
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
        }
        // A word running to the end of the buffer is finished by the next scan.
        self.pos = i.min(n);
    }

    fn begin_stmt(&mut self, i: usize) {
        if self.stmt_start.is_none() {
            self.stmt_start = Some(i);
            self.create = false;
            self.atomic_depth = 0;
        }
    }

    fn end_word(&mut self, buf: &[u8], i: usize) {
        let Some(ws) = self.word_start.take() else {
            return;
        };
        let word = &buf[ws..i];
        if Some(ws) == self.stmt_start {
            self.create = word.eq_ignore_ascii_case(b"CREATE");
            return;
        }
        if !self.create {
            return;
        }
        let opens = word.eq_ignore_ascii_case(b"BEGIN")
            || (word.eq_ignore_ascii_case(b"CASE") && self.atomic_depth > 0);
        if opens {
            self.atomic_depth += 1;
        } else if word.eq_ignore_ascii_case(b"END") && self.atomic_depth > 0 {
            self.atomic_depth -= 1;
        }
    }

    fn follow_settings(&mut self, stmt: &[u8]) {
        match stmt {
            b"SET LOCAL standard_conforming_strings = off;" => self.scs_off = true,
            b"SET LOCAL standard_conforming_strings = on;" => self.scs_off = false,
            _ => {}
        }
    }
}

/// Every statement of `text` (a whole message), as the tests split them.
#[cfg(test)]
pub fn statements(text: &[u8]) -> Vec<Stmt> {
    let mut lexer = Lexer::new();
    let mut out = Vec::new();
    lexer.scan(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(String, Kind)> {
        statements(text.as_bytes())
            .into_iter()
            .map(|s| (text[s.start..s.end].to_string(), s.kind))
            .collect()
    }

    #[test]
    fn plain_statements_and_kinds() {
        let t = "BEGIN;\nINSERT INTO public.t (a) VALUES ('x;y');\nUPDATE ONLY public.t SET a = 'q''; ' WHERE a = 'x';\nCOMMIT;\n";
        let v = split(t);
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].0, "INSERT INTO public.t (a) VALUES ('x;y');");
        assert_eq!(
            v.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![Kind::Control, Kind::Dml, Kind::Dml, Kind::Control]
        );
    }

    #[test]
    fn newlines_and_fake_statements_inside_values() {
        let t = "INSERT INTO public.t VALUES ('a\nINSERT INTO x VALUES (1);\n');\nDELETE FROM public.t WHERE a = E'\\\\'';'\n;\n";
        let v = split(t);
        // E'\\'';' is one literal (backslash, quote, semicolon): the `;` on the next line ends it.
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].0.ends_with("');"));
        assert!(v[1].0.ends_with("'\n;"));
    }

    #[test]
    fn dollar_quotes_comments_and_identifiers() {
        let t = "CREATE FUNCTION \"we;ird\"() RETURNS int LANGUAGE plpgsql AS $f$BEGIN RETURN 1; END$f$;\n\
                 -- a comment; still a comment\nCREATE TABLE t (a int /* x; /* nested; */ y; */);\n\
                 SELECT $1, a$b FROM t;\n";
        let v = split(t);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].0.ends_with("END$f$;"));
        assert!(v[1].0.starts_with("CREATE TABLE"));
        assert_eq!(v[2].1, Kind::Ddl);
    }

    #[test]
    fn begin_atomic_bodies_are_one_statement() {
        let t = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; INSERT INTO t VALUES (1); END;\nBEGIN;\n";
        let v = split(t);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].0.ends_with("END;"));
        assert_eq!(v[1].1, Kind::Control);
    }

    #[test]
    fn standard_conforming_strings_off_is_followed() {
        let t = "SET LOCAL standard_conforming_strings = off;\nCOMMENT ON TABLE t IS 'it\\'s; fine';\nSET LOCAL standard_conforming_strings = on;\nSELECT 'a\\';\n";
        let v = split(t);
        assert_eq!(v.len(), 4, "{v:?}");
        assert_eq!(v[1].0, "COMMENT ON TABLE t IS 'it\\'s; fine';");
    }

    #[test]
    fn incremental_scanning_matches_whole() {
        let t = "BEGIN;\nINSERT INTO public.t VALUES ('a\nb;c');\nCREATE FUNCTION g() RETURNS int AS $x$\nSELECT 1;\n$x$ LANGUAGE sql;\nCOMMIT;\n";
        let whole = statements(t.as_bytes());
        let mut lexer = Lexer::new();
        let mut got = Vec::new();
        let mut end = 0;
        for line in t.split_inclusive('\n') {
            end += line.len();
            lexer.scan(&t.as_bytes()[..end], &mut got);
        }
        assert_eq!(got, whole);
        assert!(lexer.at_boundary());
    }
}
