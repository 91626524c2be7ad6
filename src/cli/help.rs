//! `--help`, rendered from the option table in PostgreSQL's layout: options in a 28-column
//! field, their help from column 30, a long option on a line of its own.

use std::fmt::Write;

use super::table::{Opt, Row, Section, TABLE};

const INTRO: &str = "\
pg_scribe takes incremental, logical (SQL) backups of a PostgreSQL database.

Usage:
  pg_scribe ACTION [OPTION]...
";

const OUTRO: &str = "
Exit status: 0 success, 2 connection error, 3 replication slot error,
4 backup/restore error or a damaged backup, 5 invalid arguments or failed
validation, 10 warnings (--status only; its critical problems exit 3 or 4).

Environment: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE,
PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGSSLCRL, PGAPPNAME, PGCONNECT_TIMEOUT and
PG_COLOR are honoured as in libpq.
";

/// Width of the option column; the help text starts one space after it.
const COLUMN: usize = 28;

pub fn help_text() -> String {
    let mut out = String::from(INTRO);
    let mut section = None;
    for row in TABLE {
        if section != Some(row.section) {
            section = Some(row.section);
            let _ = write!(out, "\n{}\n", heading(row.section));
        }
        line(&mut out, row);
    }
    out.push_str(OUTRO);
    out
}

fn heading(section: Section) -> String {
    match section {
        Section::Actions => "Actions (exactly one):".to_string(),
        Section::For(action) => format!("Options for {}:", action.flag()),
        Section::Connection => "Connection options:".to_string(),
        Section::General => "General options:".to_string(),
    }
}

fn spelling(opt: Opt) -> String {
    let mut text = match opt.short {
        Some(c) => format!("  -{c}, {}", opt.long),
        None => format!("      {}", opt.long),
    };
    if let Some(value) = opt.value_name() {
        let _ = write!(text, "={value}");
    }
    text
}

fn line(out: &mut String, row: &Row) {
    let option = spelling(row.opt);
    let mut help = row.help.split('\n');
    let first = help.next().unwrap_or("");
    if option.len() <= COLUMN {
        let _ = writeln!(out, "{option:<COLUMN$} {first}");
    } else {
        let _ = writeln!(out, "{option}\n{:COLUMN$} {first}", "");
    }
    for more in help {
        let _ = writeln!(out, "{:COLUMN$} {more}", "");
    }
}
