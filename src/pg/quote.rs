//! Quoting names and strings into SQL text: the one place that knows PostgreSQL's rules, for
//! statements we send (replication commands, restore, the trigger guard) and for fix commands
//! we print.

/// `"name"` with `"` doubled: always quoted, so keywords and case need no special handling.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A name as a person would type it: bare when PostgreSQL would fold it to itself (lowercase
/// letters, digits and `_`, not starting with a digit), quoted otherwise. For commands we print
/// for the user to run, where `"pg_scribe"` would only be noise.
pub fn ident_for_display(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { ident(name) }
}

/// `'text'` with `'` doubled; backslashes stay literal, as standard_conforming_strings reads
/// them (and as the replication grammar, which has no `E'…'`, requires).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A literal read the same whatever standard_conforming_strings says: `E'…'` with backslashes
/// doubled when the text has one, a plain literal otherwise.
pub fn escaped_literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        literal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(ident("s"), "\"s\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident_for_display("pg_scribe"), "pg_scribe");
        assert_eq!(ident_for_display("_x1"), "_x1");
        assert_eq!(ident_for_display("Alice"), "\"Alice\"");
        assert_eq!(ident_for_display("1st"), "\"1st\"");
        assert_eq!(ident_for_display("my db"), "\"my db\"");
        assert_eq!(ident_for_display(""), "\"\"");
    }

    #[test]
    fn literals() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("C:\\dir"), "'C:\\dir'");
        assert_eq!(escaped_literal("UTF8"), "'UTF8'");
        assert_eq!(escaped_literal("it's"), "'it''s'");
        assert_eq!(escaped_literal("a\\b"), "E'a\\\\b'");
    }
}
