//! The option table dressed for documentation: the parser's own clap command with each option's
//! help and section from the table, plus the synopsis and the closing sections of the man page
//! (src/generate.rs renders them with clap_mangen and clap_complete).

use clap::{Command, ValueHint};

use super::Action;
use super::table::{self, Opt, Section, TABLE};

const DESCRIPTION: &str = "pg_scribe takes incremental, logical (SQL) backups of a PostgreSQL \
database. A backup directory holds chains: each chain is one base backup (pg_dump from a \
logical replication slot's exported snapshot) followed by differentials, SQL files holding \
every committed transaction decoded by the wal2sql output plugin. A restore replays the \
globals, the base and the differentials, and can stop at any transaction.";

/// The sections after the options: (heading, paragraphs).
pub const MAN_SECTIONS: &[(&str, &[&str])] = &[
    (
        "EXIT STATUS",
        &[
            "0 success, 2 connection error, 3 replication slot error, 4 backup or restore error or \
             a damaged backup (--verify), 5 invalid arguments or failed validation, 10 warnings \
             (--status only; its critical problems exit 3 or 4).",
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            "PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE, \
             PGSERVICEFILE, PGSYSCONFDIR, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, \
             PGSSLCRL, PGSSLCRLDIR, PGAPPNAME, PGCONNECT_TIMEOUT, PGOPTIONS and \
             PGTARGETSESSIONATTRS are honoured as in libpq.",
            "PG_COLOR (always, auto, never) colours the error, warning, detail and hint labels.",
            "PG_BINDIR names the directory of the pg_dump, pg_dumpall and psql programs to run.",
            "NOTIFY_SOCKET and WATCHDOG_USEC, set by systemd for Type=notify units: --start \
             reports readiness, its durable position, watchdog pings and stopping.",
        ],
    ),
    (
        "FILES",
        &[
            "~/.pgpass, ~/.pg_service.conf and ~/.postgresql/ (root.crt, root.crl, \
             postgresql.crt, postgresql.key) as in libpq.",
        ],
    ),
    (
        "SEE ALSO",
        &["pg_dump(1), pg_recvlogical(1), psql(1); the project's README.md and doc/ directory."],
    ),
];

/// The parser's clap command, each option with its help text and man page section.
pub fn documented_command() -> Command {
    let mut cmd = super::command()
        .about("incremental, logical (SQL) backups of a PostgreSQL database")
        .long_about(DESCRIPTION)
        .version(super::VERSION);
    for opt in table::options() {
        let (heading, help) = documentation(opt);
        cmd = cmd.mut_arg(opt.id(), |arg| {
            let arg = arg.help(help).help_heading(heading);
            match opt {
                table::BACKUP_DIR => arg.value_hint(ValueHint::DirPath),
                table::HOST => arg.value_hint(ValueHint::Hostname),
                table::USERNAME => arg.value_hint(ValueHint::Username),
                _ => arg,
            }
        });
    }
    cmd
}

/// An option's man page section and help. An option of several actions is listed once, with
/// each action's help where they differ (`with --init: …; with --start, --restore: …`).
fn documentation(opt: Opt) -> (String, String) {
    let rows: Vec<_> = TABLE.iter().filter(|r| r.opt == opt).collect();
    // Actions sharing one help text, in table order.
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for row in &rows {
        if let Section::For(action) = row.section {
            match groups.iter_mut().find(|(_, help)| *help == row.help) {
                Some((flags, _)) => flags.push(action.flag()),
                None => groups.push((vec![action.flag()], row.help)),
            }
        }
    }
    let with = |groups: &[(Vec<&str>, &str)]| {
        groups
            .iter()
            .map(|(flags, help)| format!("with {}: {}", flags.join(", "), one_line(help)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let shared = rows
        .iter()
        .find(|r| matches!(r.section, Section::Connection | Section::General));
    if let Some(row) = shared {
        let heading = match row.section {
            Section::Connection => "Connection options",
            _ => "General options",
        };
        let mut help = one_line(row.help);
        if !groups.is_empty() {
            help = format!("{help}; {}", with(&groups));
        }
        return (heading.to_string(), help);
    }
    if rows.iter().any(|r| r.section == Section::Actions) {
        return ("Actions".to_string(), one_line(rows[0].help));
    }
    let flags: Vec<&str> = groups.iter().flat_map(|(f, _)| f.iter().copied()).collect();
    let heading = format!("Options for {}", flags.join(", "));
    let help = match groups.as_slice() {
        [(_, help)] => one_line(help),
        _ => with(&groups),
    };
    (heading, help)
}

fn one_line(help: &str) -> String {
    help.replace('\n', " ")
}

/// One synopsis line per action: the action, its options from the table (required ones bare,
/// the others in brackets), then the connection options.
pub fn synopsis() -> Vec<(String, String)> {
    Action::ALL
        .iter()
        .map(|&action| {
            let mut parts = Vec::new();
            for row in TABLE.iter().filter(|r| r.section == Section::For(action)) {
                let mut text = row.opt.long.to_string();
                if let Some(value) = row.opt.value_name() {
                    text = format!("{text}={value}");
                }
                if !row.help.contains("(required") {
                    text = format!("[{text}]");
                }
                parts.push(text);
            }
            parts.push("[CONNECTION-OPTION]...".to_string());
            (action.flag().to_string(), parts.join(" "))
        })
        .collect()
}
