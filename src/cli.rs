//! The command line: clap reads what was typed (every value as text), then [`parse`] checks it
//! against the spec — one action, options that belong to it, well-formed values — and returns a
//! validated [`Invocation`]. No I/O happens here, so every misuse is caught before anything is
//! touched and all of it is testable as a table.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, error::ContextKind};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::storage::backup_dir::ChainId;
use crate::storage::compress::Compression;
use crate::storage::diff_format::StopAt;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What was typed, before validation.
#[derive(Parser, Debug, Default)]
#[command(
    name = "pg_scribe",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    // Like getopt: an option that takes a value takes the next word, even `-1`.
    allow_hyphen_values = true
)]
struct Raw {
    #[arg(long)]
    init: bool,
    #[arg(long)]
    start: bool,
    #[arg(long = "rotate-diff")]
    rotate_diff: bool,
    #[arg(long = "new-chain")]
    new_chain: bool,
    #[arg(long)]
    restore: bool,
    #[arg(long)]
    status: bool,

    #[arg(short = 'd', long)]
    dbname: Option<String>,
    #[arg(short = 'h', long)]
    host: Option<String>,
    #[arg(short = 'p', long)]
    port: Option<String>,
    #[arg(short = 'U', long)]
    username: Option<String>,
    #[arg(short = 'w', long = "no-password")]
    no_password: bool,
    #[arg(short = 'W', long)]
    password: bool,
    #[arg(short = 'v', long, action = ArgAction::Count)]
    verbose: u8,
    #[arg(short = 'V', long)]
    version: bool,
    #[arg(short = '?', long)]
    help: bool,

    #[arg(long = "backup-dir")]
    backup_dir: Option<OsString>,
    #[arg(long)]
    slot: Option<String>,
    #[arg(long)]
    force: bool,
    #[arg(long)]
    compress: Option<String>,
    #[arg(short = 's', long = "status-interval")]
    status_interval: Option<String>,
    #[arg(short = 'F', long = "fsync-interval")]
    fsync_interval: Option<String>,
    #[arg(short = 'C', long)]
    create: bool,
    #[arg(long = "chain-id")]
    chain_id: Option<String>,
    #[arg(long = "include-active")]
    include_active: bool,
    #[arg(long = "up-to")]
    up_to: Option<String>,
    #[arg(long = "no-sync-sequences")]
    no_sync_sequences: bool,
    #[arg(long = "keep-going")]
    keep_going: bool,
    #[arg(long)]
    json: bool,
    #[arg(long = "lag-warn")]
    lag_warn: Option<String>,
    #[arg(long = "retained-warn")]
    retained_warn: Option<String>,
    #[arg(long = "diff-age-warn")]
    diff_age_warn: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Init,
    Start,
    RotateDiff,
    NewChain,
    Restore,
    Status,
}

impl Action {
    pub fn flag(self) -> &'static str {
        match self {
            Action::Init => "--init",
            Action::Start => "--start",
            Action::RotateDiff => "--rotate-diff",
            Action::NewChain => "--new-chain",
            Action::Restore => "--restore",
            Action::Status => "--status",
        }
    }

    /// The action-specific options this action accepts (connection options and -v go with all).
    fn accepts(self, option: &str) -> bool {
        let allowed: &[&str] = match self {
            Action::Init => &["--backup-dir", "--slot", "--force", "--compress"],
            Action::Start => &[
                "--backup-dir",
                "--slot",
                "--status-interval",
                "--fsync-interval",
            ],
            Action::RotateDiff => &["--backup-dir", "--compress"],
            Action::NewChain => &["--backup-dir", "--compress"],
            Action::Restore => &[
                "--backup-dir",
                "--create",
                "--chain-id",
                "--include-active",
                "--up-to",
                "--no-sync-sequences",
                "--keep-going",
            ],
            Action::Status => &[
                "--backup-dir",
                "--slot",
                "--json",
                "--lag-warn",
                "--retained-warn",
                "--diff-age-warn",
            ],
        };
        allowed.contains(&option)
    }
}

/// Connection options as typed; [`crate::pg::conninfo`] resolves them with the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnOptions {
    pub dbname: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub username: Option<String>,
    pub no_password: bool,
    pub force_prompt: bool,
}

/// A validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub action: Action,
    pub conn: ConnOptions,
    pub verbose: u8,
    pub backup_dir: Option<PathBuf>,
    pub slot: String,
    /// Whether `--slot` was given (actions that find the slot in a chain check it agrees;
    /// `--status` otherwise takes the slot from the newest chain's metadata).
    pub slot_explicit: bool,
    pub force: bool,
    pub compress: Option<Compression>,
    pub status_interval: Duration,
    pub fsync_interval: Duration,
    pub create: bool,
    pub chain_id: Option<ChainId>,
    pub include_active: bool,
    /// `--up-to`: stop before the first transaction committed later than this.
    pub up_to: Option<StopAt>,
    pub sync_sequences: bool,
    /// `--keep-going`: a failing transaction is skipped (rolled back) and listed at the end.
    pub keep_going: bool,
    pub json: bool,
    /// `--status` warning thresholds.
    pub thresholds: StatusThresholds,
}

/// When `--status` warns (exit 10) about lag, retained WAL and the age of the newest sealed diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusThresholds {
    /// `--lag-warn`: bytes between the server's WAL position and the slot's confirmed_flush_lsn.
    pub lag_bytes: u64,
    /// `--retained-warn`: bytes of WAL the slot keeps (server position minus restart_lsn).
    pub retained_bytes: u64,
    /// `--diff-age-warn`: time since a differential was last sealed in the active chain.
    pub diff_age: Duration,
}

impl Default for StatusThresholds {
    fn default() -> Self {
        StatusThresholds {
            lag_bytes: 1 << 30,
            retained_bytes: 10 << 30,
            diff_age: Duration::from_secs(7 * 86400),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
    Run(Box<Invocation>),
}

pub const DEFAULT_SLOT: &str = "pg_scribe";

pub fn help_text() -> String {
    format!(
        "\
pg_scribe takes incremental, logical (SQL) backups of a PostgreSQL database.

Usage:
  pg_scribe ACTION [OPTION]...

Actions (exactly one):
      --init                 create the replication slot and the first chain (one-time)
      --start                stream changes into the latest chain's active.sql
      --rotate-diff          seal active.sql as a differential and start a new one
      --new-chain            take a fresh base backup and move streaming to it
      --restore              restore a chain into a database
      --status               report slot health, lag and backup chains

Options for --init:
      --backup-dir=DIRECTORY backup directory (required; must be empty or absent)
      --slot=SLOTNAME        replication slot name (default: {DEFAULT_SLOT})
      --force                initialize even if validation fails (dangerous)
      --compress=METHOD[:LEVEL]
                             compress base backups: gzip, lz4, zstd or none

Options for --start:
      --backup-dir=DIRECTORY backup directory (required)
      --slot=SLOTNAME        replication slot name (default: {DEFAULT_SLOT})
  -s, --status-interval=SECS time between status updates to the server (default: 10)
  -F, --fsync-interval=SECS  time between fsyncs of active.sql (default: 10,
                             0 = after every transaction)

Options for --rotate-diff:
      --backup-dir=DIRECTORY backup directory (required)
      --compress=METHOD[:LEVEL]
                             compress the sealed differential

Options for --new-chain:
      --backup-dir=DIRECTORY backup directory (required)
      --compress=METHOD[:LEVEL]
                             compress the new base backup

Options for --restore:
      --backup-dir=DIRECTORY backup directory (required)
  -d, --dbname=DBNAME        target database (required)
  -C, --create               create the target database
      --chain-id=ID          chain to restore (default: the latest complete chain)
      --include-active       also apply active.sql, without a torn last transaction
      --up-to=TIMESTAMP|LSN  stop before the first transaction committed later
      --no-sync-sequences    do not set sequences at the end
      --keep-going           skip each failing transaction, list them at the end (exit 4)

Options for --status:
      --slot=SLOTNAME        replication slot name (default: {DEFAULT_SLOT})
      --backup-dir=DIRECTORY also report on this backup directory
      --json                 print the report as JSON on stdout
      --lag-warn=SIZE        warn when the slot lags more than this (default: 1GB)
      --retained-warn=SIZE   warn when the slot retains more WAL than this (default: 10GB)
      --diff-age-warn=DURATION
                             warn when no differential was sealed for this long
                             (default: 7d; units s, min, h, d)

Connection options:
  -d, --dbname=DBNAME        database to connect to (a name, a conninfo string or a URI)
  -h, --host=HOSTNAME        database server host or socket directory
  -p, --port=PORT            database server port number
  -U, --username=NAME        connect as specified database user
  -w, --no-password          never prompt for password
  -W, --password             force password prompt (should happen automatically)

General options:
  -v, --verbose              output verbose messages
  -V, --version              output version information, then exit
  -?, --help                 show this help, then exit

Exit status: 0 success, 2 connection error, 3 replication slot error,
4 backup/restore error, 5 invalid arguments or failed validation,
10 warnings (--status only).

Environment: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSERVICE,
PGSSLMODE, PGSSLROOTCERT, PGAPPNAME, PGCONNECT_TIMEOUT and PG_COLOR are honoured as in libpq.
"
    )
}

/// Read and validate a command line (`args` includes the program name).
pub fn parse<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Raw::command()
        .try_get_matches_from(args)
        .map_err(clap_error)?;
    let raw = Raw::from_arg_matches(&matches).map_err(clap_error)?;
    validate(raw)
}

fn clap_error(err: clap::Error) -> Error {
    use clap::error::ErrorKind;
    let context = |kind: ContextKind| err.get(kind).map(|v| v.to_string());
    let message = match err.kind() {
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            if arg.starts_with('-') {
                format!("unrecognized option \"{arg}\"")
            } else {
                format!("too many command-line arguments (first is \"{arg}\")")
            }
        }
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).as_deref() == Some("") => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            format!("option {} requires an argument", option_name(&arg))
        }
        ErrorKind::NoEquals | ErrorKind::TooManyValues => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            format!("option {} does not take an argument", option_name(&arg))
        }
        _ => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid command line");
            first.trim_start_matches("error: ").replace('\'', "\"")
        }
    };
    Error::usage(message)
}

/// clap names an option `--slot <SLOT>` or `-d, --dbname <DBNAME>`; keep only the long name.
fn option_name(arg: &str) -> String {
    arg.split([' ', ','])
        .rfind(|part| part.starts_with("--"))
        .or_else(|| arg.split(' ').next())
        .unwrap_or(arg)
        .trim_end_matches('=')
        .to_string()
}

fn validate(raw: Raw) -> Result<Parsed> {
    if raw.help {
        return Ok(Parsed::Help);
    }
    if raw.version {
        return Ok(Parsed::Version);
    }

    let flags = [
        (raw.init, Action::Init),
        (raw.start, Action::Start),
        (raw.rotate_diff, Action::RotateDiff),
        (raw.new_chain, Action::NewChain),
        (raw.restore, Action::Restore),
        (raw.status, Action::Status),
    ];
    let actions: Vec<Action> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, a)| *a)
        .collect();
    let action = match actions.as_slice() {
        [] => {
            return Err(Error::usage(
                "no action specified: use one of --init, --start, --rotate-diff, --new-chain, --restore or --status",
            ));
        }
        [one] => *one,
        [first, second, ..] => {
            return Err(Error::usage(format!(
                "{} and {} cannot be used together",
                first.flag(),
                second.flag()
            )));
        }
    };

    let given = [
        ("--backup-dir", raw.backup_dir.is_some()),
        ("--slot", raw.slot.is_some()),
        ("--force", raw.force),
        ("--compress", raw.compress.is_some()),
        ("--status-interval", raw.status_interval.is_some()),
        ("--fsync-interval", raw.fsync_interval.is_some()),
        ("--create", raw.create),
        ("--chain-id", raw.chain_id.is_some()),
        ("--include-active", raw.include_active),
        ("--up-to", raw.up_to.is_some()),
        ("--no-sync-sequences", raw.no_sync_sequences),
        ("--keep-going", raw.keep_going),
        ("--json", raw.json),
        ("--lag-warn", raw.lag_warn.is_some()),
        ("--retained-warn", raw.retained_warn.is_some()),
        ("--diff-age-warn", raw.diff_age_warn.is_some()),
    ];
    if let Some((option, _)) = given.iter().find(|(o, on)| *on && !action.accepts(o)) {
        return Err(Error::usage(format!(
            "option {option} cannot be used with {}",
            action.flag()
        )));
    }

    if raw.no_password && raw.password {
        return Err(Error::usage(
            "options -w/--no-password and -W/--password cannot be used together",
        ));
    }

    let backup_dir = match raw.backup_dir {
        Some(dir) if dir.as_os_str().is_empty() => {
            return Err(Error::usage("backup directory name must not be empty"));
        }
        Some(dir) => Some(PathBuf::from(dir)),
        None if action != Action::Status => {
            return Err(Error::usage("no backup directory specified (--backup-dir)"));
        }
        None => None,
    };

    if action == Action::Restore && raw.dbname.is_none() {
        return Err(Error::usage("no target database specified (-d/--dbname)"));
    }
    if raw.dbname.as_deref() == Some("") {
        return Err(Error::usage("database name must not be empty"));
    }

    let slot_explicit = raw.slot.is_some();
    let slot = raw.slot.unwrap_or_else(|| DEFAULT_SLOT.to_string());
    check_slot_name(&slot)?;
    if let Some(port) = &raw.port {
        check_port(port)?;
    }
    let compress = raw
        .compress
        .as_deref()
        .map(|spec| {
            spec.parse::<Compression>()
                .map_err(|e| Error::usage(e.to_string()))
        })
        .transpose()?;
    let status_interval = seconds("status interval", raw.status_interval.as_deref(), 10)?;
    let fsync_interval = seconds("fsync interval", raw.fsync_interval.as_deref(), 10)?;
    let chain_id = raw.chain_id.as_deref().map(parse_chain_id).transpose()?;
    let up_to = raw.up_to.as_deref().map(parse_up_to).transpose()?;
    let defaults = StatusThresholds::default();
    let thresholds = StatusThresholds {
        lag_bytes: match raw.lag_warn.as_deref() {
            Some(text) => parse_size("--lag-warn", text)?,
            None => defaults.lag_bytes,
        },
        retained_bytes: match raw.retained_warn.as_deref() {
            Some(text) => parse_size("--retained-warn", text)?,
            None => defaults.retained_bytes,
        },
        diff_age: match raw.diff_age_warn.as_deref() {
            Some(text) => parse_duration("--diff-age-warn", text)?,
            None => defaults.diff_age,
        },
    };

    Ok(Parsed::Run(Box::new(Invocation {
        action,
        conn: ConnOptions {
            dbname: raw.dbname,
            host: raw.host,
            port: raw.port,
            username: raw.username,
            no_password: raw.no_password,
            force_prompt: raw.password,
        },
        verbose: raw.verbose,
        backup_dir,
        slot,
        slot_explicit,
        force: raw.force,
        compress,
        status_interval,
        fsync_interval,
        create: raw.create,
        chain_id,
        include_active: raw.include_active,
        up_to,
        sync_sequences: !raw.no_sync_sequences,
        keep_going: raw.keep_going,
        json: raw.json,
        thresholds,
    })))
}

/// PostgreSQL's rule for slot names (ReplicationSlotValidateName).
pub fn check_slot_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::usage("replication slot name must not be empty"));
    }
    if name.len() > 63 {
        return Err(Error::usage(format!(
            "replication slot name \"{name}\" is too long (at most 63 bytes)"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::usage(format!(
            "replication slot name \"{name}\" contains invalid character (only lower case letters, numbers and the underscore are allowed)"
        )));
    }
    Ok(())
}

fn check_port(text: &str) -> Result<()> {
    for part in text.split(',') {
        match part.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(Error::usage(format!("invalid port number: \"{text}\""))),
        }
    }
    Ok(())
}

fn seconds(what: &str, text: Option<&str>, default: u64) -> Result<Duration> {
    match text {
        None => Ok(Duration::from_secs(default)),
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) => Ok(Duration::from_secs(n.into())),
            Err(_) => Err(Error::usage(format!("invalid {what} \"{text}\""))),
        },
    }
}

/// A size as PostgreSQL writes them: a number and an optional unit `B`, `kB`, `MB`, `GB`, `TB`
/// (any case, powers of 1024, a space allowed between); a bare number is bytes.
pub fn parse_size(option: &str, text: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "invalid {option} value \"{text}\" (expected a size like 512MB or 10GB)"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// A duration with a unit: `s`, `min`, `h`, `d` (PostgreSQL's names; `90s`, `30min`, `7d`).
/// A unit is required: a bare `7` is too easy to mean days and be read as seconds.
pub fn parse_duration(option: &str, text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "invalid {option} value \"{text}\" (expected a duration with a unit s, min, h or d, like 36h or 7d)"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim() {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    value
        .checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

fn parse_chain_id(id: &str) -> Result<ChainId> {
    id.parse::<ChainId>().map_err(|_| {
        Error::usage(format!(
            "invalid chain ID \"{id}\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)"
        ))
    })
}

/// `--up-to`: an LSN `X/Y`, or a timestamp `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]` with an optional
/// UTC offset (`Z`, `+02`, `+02:00`); a timestamp without an offset is UTC, like chain IDs.
pub fn parse_up_to(text: &str) -> Result<StopAt> {
    let bad = || {
        Error::usage(format!(
            "invalid --up-to value \"{text}\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")"
        ))
    };
    if text.contains('/') {
        return text.parse::<Lsn>().map(StopAt::Lsn).map_err(|_| bad());
    }
    parse_timestamp(text.trim())
        .map(StopAt::Time)
        .ok_or_else(bad)
}

fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    use time::macros::format_description;
    let text = text.replacen(' ', "T", 1);
    // Split an offset off the end: Z, +HH, +HH:MM, -HHMM.
    let (local, offset) = if let Some(stripped) = text.strip_suffix('Z') {
        (stripped.to_string(), time::UtcOffset::UTC)
    } else {
        let date_len = 10.min(text.len());
        match text[date_len..].rfind(['+', '-']) {
            Some(pos) => {
                let pos = pos + date_len;
                let sign = if &text[pos..pos + 1] == "-" { -1 } else { 1 };
                let digits: String = text[pos + 1..].chars().filter(|c| *c != ':').collect();
                if !(digits.len() == 2 || digits.len() == 4)
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let hours: i8 = digits[..2].parse().ok()?;
                let minutes: i8 = if digits.len() == 4 {
                    digits[2..].parse().ok()?
                } else {
                    0
                };
                let offset = time::UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
                (text[..pos].to_string(), offset)
            }
            None => (text.clone(), time::UtcOffset::UTC),
        }
    };
    let formats = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    let parsed = formats
        .iter()
        .find_map(|f| time::PrimitiveDateTime::parse(&local, f).ok())
        .or_else(|| {
            time::Date::parse(&local, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight())
        })?;
    Some(parsed.assume_offset(offset))
}
