//! The CLI definition dressed for documentation: the clap command the parser uses, plus the
//! description, synopsis and closing sections the man page needs (src/generate.rs renders it).

use clap::CommandFactory;

/// One synopsis line per action: the action and what follows it.
pub const SYNOPSIS: &[(&str, &str)] = &[
    (
        "--init",
        "--backup-dir=DIRECTORY [--slot=SLOTNAME] [--compress=METHOD[:LEVEL]] [--force] [CONNECTION-OPTION]...",
    ),
    (
        "--start",
        "--backup-dir=DIRECTORY [--slot=SLOTNAME] [-s SECS] [-F SECS] [CONNECTION-OPTION]...",
    ),
    (
        "--rotate-diff",
        "--backup-dir=DIRECTORY [--compress=METHOD[:LEVEL]]",
    ),
    (
        "--new-chain",
        "--backup-dir=DIRECTORY [--compress=METHOD[:LEVEL]] [CONNECTION-OPTION]...",
    ),
    (
        "--restore",
        "--backup-dir=DIRECTORY -d DBNAME [--create] [--chain-id=ID] [--include-active] [--up-to=TIMESTAMP|LSN] [--no-sync-sequences] [CONNECTION-OPTION]...",
    ),
    (
        "--status",
        "[--backup-dir=DIRECTORY] [--slot=SLOTNAME] [--json] [--lag-warn=SIZE] [--retained-warn=SIZE] [--diff-age-warn=DURATION] [CONNECTION-OPTION]...",
    ),
];

const DESCRIPTION: &str = "pg_scribe takes incremental, logical (SQL) backups of a PostgreSQL \
database. A backup directory holds chains: each chain is one base backup (pg_dump from a \
logical replication slot's exported snapshot) followed by differentials, SQL files holding \
every committed transaction decoded by the wal2sql output plugin. A restore replays the \
globals, the base and the differentials, and can stop at any transaction.";

/// The sections after OPTIONS: (heading, paragraphs).
pub const MAN_SECTIONS: &[(&str, &[&str])] = &[
    (
        "EXIT STATUS",
        &[
            "0 success, 2 connection error, 3 replication slot error, 4 backup or restore error, \
             5 invalid arguments or failed validation, 10 warnings (--status only).",
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

/// The parser's clap command with the description the man page and completions show.
pub fn documented_command() -> clap::Command {
    super::Raw::command()
        .about("incremental, logical (SQL) backups of a PostgreSQL database")
        .long_about(DESCRIPTION)
        .version(super::VERSION)
}
