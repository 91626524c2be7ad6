//! Every option, written once: its names and value ([`Opt`]), and the `--help` lines it appears
//! on ([`TABLE`]). The table drives the clap definition, which options each action accepts (an
//! option belongs to the actions whose help section lists it), the check of what was given, and
//! the help text itself, so the four cannot drift apart.

use super::Action;

/// How an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// A switch: given or not.
    Nothing,
    /// Counted each time it is given (`-vv`).
    Count,
    /// Text, shown in help as `--name=VALUE`.
    Text(&'static str),
    /// A path: kept as the OS gave it, not required to be UTF-8.
    Path(&'static str),
}

/// One option's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt {
    /// With its dashes, as messages and help print it.
    pub long: &'static str,
    pub short: Option<char>,
    pub takes: Takes,
}

impl Opt {
    /// clap's name for the option: the long name without dashes.
    pub fn id(self) -> &'static str {
        &self.long[2..]
    }

    pub(crate) fn value_name(self) -> Option<&'static str> {
        match self.takes {
            Takes::Text(name) | Takes::Path(name) => Some(name),
            Takes::Nothing | Takes::Count => None,
        }
    }
}

const fn switch(long: &'static str, short: Option<char>) -> Opt {
    Opt {
        long,
        short,
        takes: Takes::Nothing,
    }
}

const fn valued(long: &'static str, short: Option<char>, value: &'static str) -> Opt {
    Opt {
        long,
        short,
        takes: Takes::Text(value),
    }
}

pub(crate) const INIT: Opt = switch("--init", None);
pub(crate) const START: Opt = switch("--start", None);
pub(crate) const ROTATE_DIFF: Opt = switch("--rotate-diff", None);
pub(crate) const NEW_CHAIN: Opt = switch("--new-chain", None);
pub(crate) const RESTORE: Opt = switch("--restore", None);
pub(crate) const STATUS: Opt = switch("--status", None);
pub(crate) const VERIFY: Opt = switch("--verify", None);
pub(crate) const EXPIRE: Opt = switch("--expire", None);

pub(crate) const BACKUP_DIR: Opt = Opt {
    long: "--backup-dir",
    short: None,
    takes: Takes::Path("DIRECTORY"),
};
pub(crate) const SPOOL_DIR: Opt = Opt {
    long: "--spool-dir",
    short: None,
    takes: Takes::Path("DIRECTORY"),
};
pub(crate) const SLOT: Opt = valued("--slot", None, "SLOTNAME");
pub(crate) const FORCE: Opt = switch("--force", None);
pub(crate) const COMPRESS: Opt = valued("--compress", None, "METHOD[:LEVEL]");
pub(crate) const STATUS_INTERVAL: Opt = valued("--status-interval", Some('s'), "SECS");
pub(crate) const FSYNC_INTERVAL: Opt = valued("--fsync-interval", Some('F'), "SECS");
pub(crate) const ROTATE_EVERY: Opt = valued("--rotate-every", None, "DURATION|SIZE");
pub(crate) const CREATE: Opt = switch("--create", Some('C'));
pub(crate) const CHAIN_ID: Opt = valued("--chain-id", None, "ID");
pub(crate) const INCLUDE_ACTIVE: Opt = switch("--include-active", None);
pub(crate) const UP_TO: Opt = valued("--up-to", None, "TIMESTAMP|LSN");
pub(crate) const NO_SYNC_SEQUENCES: Opt = switch("--no-sync-sequences", None);
pub(crate) const KEEP_GOING: Opt = switch("--keep-going", None);
pub(crate) const JSON: Opt = switch("--json", None);
pub(crate) const LAG_WARN: Opt = valued("--lag-warn", None, "SIZE");
pub(crate) const RETAINED_WARN: Opt = valued("--retained-warn", None, "SIZE");
pub(crate) const DIFF_AGE_WARN: Opt = valued("--diff-age-warn", None, "DURATION");
pub(crate) const FREE_WARN: Opt = valued("--free-warn", None, "PERCENT%|SIZE");
pub(crate) const FORMAT: Opt = valued("--format", None, "FORMAT");
pub(crate) const KEEP_CHAINS: Opt = valued("--keep-chains", None, "N");
pub(crate) const DRY_RUN: Opt = switch("--dry-run", None);
pub(crate) const LOG_FORMAT: Opt = valued("--log-format", None, "FORMAT");
pub(crate) const JOBS: Opt = valued("--jobs", Some('j'), "N");

pub(crate) const DBNAME: Opt = valued("--dbname", Some('d'), "DBNAME");
pub(crate) const HOST: Opt = valued("--host", Some('h'), "HOSTNAME");
pub(crate) const PORT: Opt = valued("--port", Some('p'), "PORT");
pub(crate) const USERNAME: Opt = valued("--username", Some('U'), "NAME");
pub(crate) const NO_PASSWORD: Opt = switch("--no-password", Some('w'));
pub(crate) const PASSWORD: Opt = switch("--password", Some('W'));

pub(crate) const VERBOSE: Opt = Opt {
    long: "--verbose",
    short: Some('v'),
    takes: Takes::Count,
};
pub(crate) const VERSION: Opt = switch("--version", Some('V'));
pub(crate) const HELP: Opt = switch("--help", Some('?'));

/// A section of `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Actions,
    /// The options an action accepts beyond the connection and general ones.
    For(Action),
    /// Accepted by every action.
    Connection,
    /// Accepted by every action.
    General,
}

impl Section {
    /// Whether an option listed in this section may be given with `action`.
    pub(crate) fn allows(self, action: Action) -> bool {
        match self {
            Section::Actions => false,
            Section::For(a) => a == action,
            Section::Connection | Section::General => true,
        }
    }
}

/// One line (or a few, split at `\n`) of `--help`.
pub(crate) struct Row {
    pub section: Section,
    pub opt: Opt,
    pub help: &'static str,
}

const fn row(section: Section, opt: Opt, help: &'static str) -> Row {
    Row { section, opt, help }
}

macro_rules! default_slot {
    () => {
        "pg_scribe"
    };
}
pub(crate) const DEFAULT_SLOT: &str = default_slot!();
const SLOT_HELP: &str = concat!("replication slot name (default: ", default_slot!(), ")");

use Action::{Expire, Init, NewChain, Restore, RotateDiff, Start, Status, Verify};
use Section::{Actions, Connection, For, General};

/// The options in `--help` order, section by section.
pub(crate) const TABLE: &[Row] = &[
    row(
        Actions,
        INIT,
        "create the replication slot and the first chain (one-time)",
    ),
    row(
        Actions,
        START,
        "stream changes into the latest chain's active.sql",
    ),
    row(
        Actions,
        ROTATE_DIFF,
        "seal active.sql as a differential and start a new one",
    ),
    row(
        Actions,
        NEW_CHAIN,
        "take a fresh base backup and move streaming to it",
    ),
    row(Actions, RESTORE, "restore a chain into a database"),
    row(Actions, STATUS, "report slot health, lag and backup chains"),
    row(
        Actions,
        VERIFY,
        "check that the backup's chains are whole (offline)",
    ),
    row(
        Actions,
        EXPIRE,
        "remove the oldest chains beyond --keep-chains",
    ),
    //
    row(
        For(Init),
        BACKUP_DIR,
        "backup directory (required; must be empty or absent)",
    ),
    row(For(Init), SLOT, SLOT_HELP),
    row(
        For(Init),
        SPOOL_DIR,
        "with an s3:// backup directory: local directory for\nfiles not yet uploaded (default: under ~/.local/state)",
    ),
    row(
        For(Init),
        FORCE,
        "initialize even if validation fails (dangerous)",
    ),
    row(
        For(Init),
        COMPRESS,
        "compress base backups: gzip, lz4, zstd or none",
    ),
    row(
        For(Init),
        JOBS,
        "take the base with N parallel pg_dump jobs, in\npg_dump's directory format (base.dir/)",
    ),
    //
    row(For(Start), BACKUP_DIR, "backup directory (required)"),
    row(For(Start), SLOT, SLOT_HELP),
    row(
        For(Start),
        SPOOL_DIR,
        "with an s3:// backup directory: local directory for\nfiles not yet uploaded (default: under ~/.local/state)",
    ),
    row(
        For(Start),
        STATUS_INTERVAL,
        "time between status updates to the server (default: 10)",
    ),
    row(
        For(Start),
        FSYNC_INTERVAL,
        "time between fsyncs of active.sql (default: 10,\n0 = after every transaction)",
    ),
    row(
        For(Start),
        ROTATE_EVERY,
        "seal active.sql on its own after this long (15min,\n1h, 1d) or at this size (256MB), or both (1h,256MB)",
    ),
    row(
        For(Start),
        COMPRESS,
        "compress the differentials sealed on its own\n(gzip, lz4, zstd[:LEVEL])",
    ),
    row(
        For(Start),
        LOG_FORMAT,
        "plain or json: timestamped log lines (default:\nplain when stderr is not a terminal)",
    ),
    //
    row(For(RotateDiff), BACKUP_DIR, "backup directory (required)"),
    row(
        For(RotateDiff),
        SPOOL_DIR,
        "with an s3:// backup directory: the spool of --start",
    ),
    row(
        For(RotateDiff),
        COMPRESS,
        "compress the sealed differential",
    ),
    row(
        For(RotateDiff),
        LOG_FORMAT,
        "plain or json: timestamped log lines",
    ),
    //
    row(For(NewChain), BACKUP_DIR, "backup directory (required)"),
    row(
        For(NewChain),
        SPOOL_DIR,
        "with an s3:// backup directory: the spool of --start",
    ),
    row(For(NewChain), COMPRESS, "compress the new base backup"),
    row(
        For(NewChain),
        JOBS,
        "take the base with N parallel pg_dump jobs, in\npg_dump's directory format (base.dir/)",
    ),
    row(
        For(NewChain),
        KEEP_CHAINS,
        "then remove the oldest chains beyond N (as --expire)",
    ),
    row(
        For(NewChain),
        LOG_FORMAT,
        "plain or json: timestamped log lines",
    ),
    //
    row(For(Restore), BACKUP_DIR, "backup directory (required)"),
    row(For(Restore), DBNAME, "target database (required)"),
    row(For(Restore), CREATE, "create the target database"),
    row(
        For(Restore),
        CHAIN_ID,
        "chain to restore (default: the latest complete chain)",
    ),
    row(
        For(Restore),
        INCLUDE_ACTIVE,
        "also apply active.sql, without a torn last transaction",
    ),
    row(
        For(Restore),
        UP_TO,
        "stop before the first transaction committed later",
    ),
    row(
        For(Restore),
        NO_SYNC_SEQUENCES,
        "do not set sequences at the end",
    ),
    row(
        For(Restore),
        JOBS,
        "restore a directory base (base.dir/) with N parallel\npg_restore jobs (default: 1, in one transaction)",
    ),
    row(
        For(Restore),
        KEEP_GOING,
        "skip each failing transaction, list them at the end (exit 4)",
    ),
    //
    row(For(Status), SLOT, SLOT_HELP),
    row(
        For(Status),
        BACKUP_DIR,
        "also report on this backup directory",
    ),
    row(
        For(Status),
        SPOOL_DIR,
        "with an s3:// backup directory: the spool whose\nupload backlog to report",
    ),
    row(
        For(Status),
        JSON,
        "print the report as JSON on stdout (--format=json)",
    ),
    row(
        For(Status),
        FORMAT,
        "text, json, prometheus or nagios (default: text)",
    ),
    row(
        For(Status),
        LAG_WARN,
        "warn when the slot lags more than this (default: 1GB)",
    ),
    row(
        For(Status),
        RETAINED_WARN,
        "warn when the slot retains more WAL than this (default: 10GB)",
    ),
    row(
        For(Status),
        DIFF_AGE_WARN,
        "warn when no differential was sealed for this long\n(default: 7d; units s, min, h, d)",
    ),
    row(
        For(Status),
        FREE_WARN,
        "warn when the backup file system has less free\nspace (default: 10%)",
    ),
    //
    row(For(Expire), BACKUP_DIR, "backup directory (required)"),
    row(
        For(Expire),
        KEEP_CHAINS,
        "complete chains to keep (required, at least 1)",
    ),
    row(For(Expire), DRY_RUN, "only say what would be removed"),
    row(
        For(Expire),
        LOG_FORMAT,
        "plain or json: timestamped log lines",
    ),
    //
    row(For(Verify), BACKUP_DIR, "backup directory (required)"),
    row(
        For(Verify),
        CHAIN_ID,
        "verify only this chain (default: every chain)",
    ),
    row(For(Verify), JSON, "print the report as JSON on stdout"),
    //
    row(
        Connection,
        DBNAME,
        "database to connect to (a name, a conninfo string or a URI)",
    ),
    row(Connection, HOST, "database server host or socket directory"),
    row(Connection, PORT, "database server port number"),
    row(Connection, USERNAME, "connect as specified database user"),
    row(Connection, NO_PASSWORD, "never prompt for password"),
    row(
        Connection,
        PASSWORD,
        "force password prompt (should happen automatically)",
    ),
    //
    row(General, VERBOSE, "output verbose messages"),
    row(General, VERSION, "output version information, then exit"),
    row(General, HELP, "show this help, then exit"),
];

impl Action {
    pub const ALL: [Action; 8] = [
        Init, Start, RotateDiff, NewChain, Restore, Status, Verify, Expire,
    ];

    pub(crate) fn opt(self) -> Opt {
        match self {
            Init => INIT,
            Start => START,
            RotateDiff => ROTATE_DIFF,
            NewChain => NEW_CHAIN,
            Restore => RESTORE,
            Status => STATUS,
            Verify => VERIFY,
            Expire => EXPIRE,
        }
    }

    pub fn flag(self) -> &'static str {
        self.opt().long
    }

    /// Whether `opt` may be given with this action.
    pub(crate) fn accepts(self, opt: Opt) -> bool {
        TABLE
            .iter()
            .any(|row| row.opt == opt && row.section.allows(self))
    }
}

/// Every option once, in order of first appearance.
pub(crate) fn options() -> Vec<Opt> {
    let mut seen: Vec<Opt> = Vec::new();
    for row in TABLE {
        if !seen.iter().any(|o| o.long == row.opt.long) {
            seen.push(row.opt);
        }
    }
    seen
}

/// The options that only some actions accept, in order of first appearance.
pub(crate) fn action_specific() -> impl Iterator<Item = Opt> {
    options().into_iter().filter(|opt| {
        TABLE
            .iter()
            .any(|r| r.opt == *opt && matches!(r.section, For(_)))
            && !TABLE
                .iter()
                .any(|r| r.opt == *opt && matches!(r.section, Connection | General))
    })
}
