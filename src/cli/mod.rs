//! The command line: clap reads what was typed (every value as text), then [`parse`] checks it
//! against the option table (`table.rs`, which also renders `--help`) — one action, options that
//! belong to it, well-formed values — and returns a validated [`Invocation`]. No I/O happens
//! here, so every misuse is caught before anything is touched and all of it is testable as a
//! table (`tests.rs`).

mod docs;
mod help;
mod table;
#[cfg(test)]
mod tests;
mod values;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, error::ContextKind};

use crate::error::{Error, Result};
use crate::storage::backup_dir::ChainId;
use crate::storage::compress::Compression;
use crate::storage::diff_format::StopAt;
use crate::storage::space::FreeThreshold;
use crate::streamer::RotateEvery;
use crate::ui::LogFormat;

pub use crate::pg::conninfo::ConnOptions;
pub use docs::{MAN_SECTIONS, documented_command, synopsis};
pub use help::help_text;
pub(crate) use table::DEFAULT_SLOT;
pub(crate) use values::{check_slot_name, parse_duration, parse_size, parse_up_to};

use table::{Opt, Takes};
use values::{check_port, parse_chain_id, parse_free, parse_jobs, parse_rotate_every, seconds};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Init,
    Start,
    RotateDiff,
    NewChain,
    Restore,
    Status,
    Verify,
    Expire,
}

/// A validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub action: Action,
    pub conn: ConnOptions,
    pub verbose: u8,
    pub backup_dir: Option<PathBuf>,
    /// `--spool-dir`: the local spool of an `s3://` backup directory.
    pub spool_dir: Option<PathBuf>,
    /// The `s3://` URL when `backup_dir` was rewritten to its spool or view (never parsed:
    /// set by the object-storage wrapper for messages).
    pub remote_url: Option<String>,
    pub slot: String,
    /// Whether `--slot` was given (actions that find the slot in a chain check it agrees;
    /// `--status` otherwise takes the slot from the newest chain's metadata).
    pub slot_explicit: bool,
    pub force: bool,
    pub compress: Option<Compression>,
    pub status_interval: Duration,
    pub fsync_interval: Duration,
    /// `--start --rotate-every`: when the streamer seals on its own (neither set: never).
    pub rotate_every: RotateEvery,
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
    /// `--status --format` (`--json` is `--format=json`).
    pub format: StatusFormat,
    /// `--keep-chains` of `--expire` and `--new-chain`.
    pub keep_chains: Option<usize>,
    pub dry_run: bool,
    /// `--log-format`; `None` lets the action choose ([`Invocation::effective_log_format`]).
    pub log_format: Option<LogFormat>,
    /// `--jobs`: `--init`/`--new-chain` take a directory-format base with this many pg_dump
    /// jobs; `--restore` restores a directory base with this many pg_restore jobs.
    pub jobs: Option<u32>,
}

/// How `--status` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFormat {
    #[default]
    Text,
    Json,
    Prometheus,
    Nagios,
}

impl Invocation {
    /// The log format for this run: the one asked for, else timestamped lines for the
    /// streamer when stderr is not a terminal (a service's journal or a log file).
    pub fn effective_log_format(&self) -> LogFormat {
        use std::io::IsTerminal;
        match self.log_format {
            Some(f) => f,
            None if self.action == Action::Start && !std::io::stderr().is_terminal() => {
                LogFormat::Plain
            }
            None => LogFormat::Terminal,
        }
    }
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
    /// `--free-warn`: free space of the backup directory's file system.
    pub free: FreeThreshold,
}

impl Default for StatusThresholds {
    fn default() -> Self {
        StatusThresholds {
            lag_bytes: 1 << 30,
            retained_bytes: 10 << 30,
            diff_age: Duration::from_secs(7 * 86400),
            free: FreeThreshold::default(),
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

/// Read and validate a command line (`args` includes the program name).
pub fn parse<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args).map_err(clap_error)?;
    validate(&matches)
}

/// The clap definition, from the option table; help and version are ours, not clap's.
fn command() -> Command {
    let command = Command::new("pg_scribe")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        // Like getopt: an option that takes a value takes the next word, even `-1`.
        .allow_hyphen_values(true);
    command.args(table::options().into_iter().map(|opt| {
        let arg = Arg::new(opt.id()).long(opt.id());
        let arg = match opt.short {
            Some(c) => arg.short(c),
            None => arg,
        };
        let arg = match opt.value_name() {
            Some(value) => arg.value_name(value),
            None => arg,
        };
        match opt.takes {
            Takes::Nothing => arg.action(ArgAction::SetTrue),
            Takes::Count => arg.action(ArgAction::Count),
            Takes::Text(_) => arg.action(ArgAction::Set),
            Takes::Path(_) => arg
                .action(ArgAction::Set)
                .value_parser(clap::value_parser!(OsString)),
        }
    }))
}

/// Whether the option was typed (flags read `false` by default, which is not "given").
fn given(matches: &ArgMatches, opt: Opt) -> bool {
    matches.value_source(opt.id()) == Some(ValueSource::CommandLine)
}

fn flag(matches: &ArgMatches, opt: Opt) -> bool {
    matches.get_flag(opt.id())
}

fn text(matches: &ArgMatches, opt: Opt) -> Option<String> {
    matches.get_one::<String>(opt.id()).cloned()
}

fn clap_error(err: clap::Error) -> Error {
    use clap::error::ErrorKind;
    let context = |kind: ContextKind| err.get(kind).map(|v| v.to_string());
    if err.kind() == ErrorKind::UnknownArgument {
        let arg = context(ContextKind::InvalidArg).unwrap_or_default();
        let longs: Vec<&str> = table::options().iter().map(|o| o.long).collect();
        if let Some(suggestion) = suggest(&arg, &longs, context(ContextKind::SuggestedArg)) {
            return Error::usage(format!("unrecognized option \"{arg}\""))
                .with_hint(format!("Did you mean \"{suggestion}\"?"));
        }
    }
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

/// The option a misspelt `arg` most likely meant: the shortest option it abbreviates (`--stat`
/// → `--status`, not `--status-interval`), else clap's closest match by similarity.
fn suggest(arg: &str, longs: &[&str], clap_suggestion: Option<String>) -> Option<String> {
    let typed = arg.split('=').next().unwrap_or(arg);
    if typed.len() > 3 && typed.starts_with("--") {
        let abbreviated = longs
            .iter()
            .filter(|l| l.starts_with(typed))
            .min_by_key(|l| l.len());
        if let Some(long) = abbreviated {
            return Some(long.to_string());
        }
    }
    clap_suggestion.map(|s| option_name(&s))
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

fn validate(m: &ArgMatches) -> Result<Parsed> {
    use table::*;

    if flag(m, HELP) {
        return Ok(Parsed::Help);
    }
    if flag(m, VERSION) {
        return Ok(Parsed::Version);
    }

    let actions: Vec<Action> = Action::ALL
        .into_iter()
        .filter(|a| flag(m, a.opt()))
        .collect();
    let action = match actions.as_slice() {
        [] => {
            let flags: Vec<&str> = Action::ALL.iter().map(|a| a.flag()).collect();
            let (last, rest) = flags.split_last().expect("there are actions");
            return Err(Error::usage(format!(
                "no action specified: use one of {} or {last}",
                rest.join(", ")
            )));
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

    if let Some(opt) = table::action_specific().find(|o| given(m, *o) && !action.accepts(*o)) {
        return Err(Error::usage(format!(
            "option {} cannot be used with {}",
            opt.long,
            action.flag()
        )));
    }

    if flag(m, NO_PASSWORD) && flag(m, PASSWORD) {
        return Err(Error::usage(
            "options -w/--no-password and -W/--password cannot be used together",
        ));
    }

    let backup_dir = match m.get_one::<OsString>(BACKUP_DIR.id()) {
        Some(dir) if dir.is_empty() => {
            return Err(Error::usage("backup directory name must not be empty"));
        }
        Some(dir) => Some(PathBuf::from(dir)),
        None if action != Action::Status => {
            return Err(Error::usage("no backup directory specified (--backup-dir)"));
        }
        None => None,
    };

    let spool_dir = m.get_one::<OsString>(SPOOL_DIR.id()).map(PathBuf::from);
    match backup_dir
        .as_deref()
        .filter(|d| crate::storage::object::is_url(d))
    {
        Some(url) => {
            crate::storage::object::Location::parse(&url.to_string_lossy())?;
        }
        None if spool_dir.is_some() => {
            return Err(Error::usage(
                "option --spool-dir is only for a backup directory on object storage (s3://…)",
            ));
        }
        None => {}
    }

    let dbname = text(m, DBNAME);
    if action == Action::Restore && dbname.is_none() {
        return Err(Error::usage("no target database specified (-d/--dbname)"));
    }
    if dbname.as_deref() == Some("") {
        return Err(Error::usage("database name must not be empty"));
    }

    let slot_explicit = given(m, SLOT);
    let slot = text(m, SLOT).unwrap_or_else(|| DEFAULT_SLOT.to_string());
    check_slot_name(&slot)?;
    let port = text(m, PORT);
    if let Some(port) = &port {
        check_port(port)?;
    }
    let compress = text(m, COMPRESS)
        .map(|spec| {
            spec.parse::<Compression>()
                .map_err(|e| Error::usage(e.to_string()))
        })
        .transpose()?;
    let status_interval = seconds("status interval", text(m, STATUS_INTERVAL).as_deref(), 10)?;
    let fsync_interval = seconds("fsync interval", text(m, FSYNC_INTERVAL).as_deref(), 10)?;
    let rotate_every = text(m, ROTATE_EVERY)
        .as_deref()
        .map(parse_rotate_every)
        .transpose()?
        .unwrap_or_default();
    let chain_id = text(m, CHAIN_ID)
        .as_deref()
        .map(parse_chain_id)
        .transpose()?;
    let up_to = text(m, UP_TO).as_deref().map(parse_up_to).transpose()?;
    let defaults = StatusThresholds::default();
    let thresholds = StatusThresholds {
        lag_bytes: match text(m, LAG_WARN) {
            Some(text) => parse_size(LAG_WARN.long, &text)?,
            None => defaults.lag_bytes,
        },
        retained_bytes: match text(m, RETAINED_WARN) {
            Some(text) => parse_size(RETAINED_WARN.long, &text)?,
            None => defaults.retained_bytes,
        },
        diff_age: match text(m, DIFF_AGE_WARN) {
            Some(text) => parse_duration(DIFF_AGE_WARN.long, &text)?,
            None => defaults.diff_age,
        },
        free: match text(m, FREE_WARN) {
            Some(text) => parse_free(&text)?,
            None => defaults.free,
        },
    };
    let format = match (text(m, FORMAT).as_deref(), flag(m, JSON)) {
        (None, false) => StatusFormat::Text,
        (None, true) | (Some("json"), _) => StatusFormat::Json,
        (Some(_), true) => {
            return Err(Error::usage(
                "options --json and --format cannot be used together",
            ));
        }
        (Some("text"), _) => StatusFormat::Text,
        (Some("prometheus"), _) => StatusFormat::Prometheus,
        (Some("nagios"), _) => StatusFormat::Nagios,
        (Some(other), _) => {
            return Err(Error::usage(format!(
                "invalid --format value \"{other}\" (expected text, json, prometheus or nagios)"
            )));
        }
    };
    let keep_chains = text(m, KEEP_CHAINS)
        .map(|text| match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::usage(format!(
                "invalid --keep-chains value \"{text}\" (expected a whole number of at least 1: the newest chain is always kept)"
            ))),
        })
        .transpose()?;
    if action == Action::Expire && keep_chains.is_none() {
        return Err(Error::usage(
            "no number of chains to keep specified (--keep-chains)",
        ));
    }
    let jobs = text(m, JOBS).as_deref().map(parse_jobs).transpose()?;
    let log_format = match text(m, LOG_FORMAT).as_deref() {
        None => None,
        Some("plain") => Some(LogFormat::Plain),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            return Err(Error::usage(format!(
                "invalid --log-format value \"{other}\" (expected plain or json)"
            )));
        }
    };

    Ok(Parsed::Run(Box::new(Invocation {
        action,
        conn: ConnOptions {
            dbname,
            host: text(m, HOST),
            port,
            username: text(m, USERNAME),
            no_password: flag(m, NO_PASSWORD),
            force_prompt: flag(m, PASSWORD),
        },
        verbose: m.get_count(VERBOSE.id()),
        backup_dir,
        spool_dir,
        remote_url: None,
        slot,
        slot_explicit,
        force: flag(m, FORCE),
        compress,
        status_interval,
        fsync_interval,
        rotate_every,
        create: flag(m, CREATE),
        chain_id,
        include_active: flag(m, INCLUDE_ACTIVE),
        up_to,
        sync_sequences: !flag(m, NO_SYNC_SEQUENCES),
        keep_going: flag(m, KEEP_GOING),
        json: format == StatusFormat::Json,
        thresholds,
        format,
        keep_chains,
        dry_run: flag(m, DRY_RUN),
        log_format,
        jobs,
    })))
}
