//! The `pg_scribe` binary: parse, run, render the outcome once.

use std::process::ExitCode;

use pg_scribe::cli::{self, Parsed};
use pg_scribe::{actions, ui};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Hidden, for the build: `--generate man|bash|zsh|fish` writes the man page or a completion.
    if let Some(kind) = generate_kind(&args) {
        return match pg_scribe::generate::generate(&kind) {
            Ok(text) => {
                use std::io::Write;
                match std::io::stdout().write_all(&text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::from(4),
                }
            }
            Err(err) => {
                ui::error(&err);
                ExitCode::from(err.exit_code())
            }
        };
    }
    // Asked for JSON by an action that prints it, a monitor gets a JSON document even when
    // the command line is wrong.
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let json_asked = has("--json") && (has("--status") || has("--verify"));
    let invocation = match cli::parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", cli::help_text());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("pg_scribe {}", cli::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(invocation)) => invocation,
        Err(err) => {
            ui::error(&err);
            if json_asked {
                ui::error_json(&err);
            }
            return ExitCode::from(err.exit_code());
        }
    };
    let json = invocation.json;
    pg_scribe::logging::init(invocation.verbose);
    ui::set_log_format(invocation.effective_log_format());
    // One thread runs all async work: the streamer's hot path is a socket read followed by a
    // hand-off to its writer thread, and cross-thread wake-ups of a multi-threaded runtime cost
    // more than the work itself. Disk I/O has its own threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            ui::error(&pg_scribe::error::Error::backup(format!(
                "could not start the async runtime: {err}"
            )));
            return ExitCode::from(4);
        }
    };
    let result = runtime.block_on(actions::run(*invocation));
    runtime.shutdown_background();
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            ui::error(&err);
            if json {
                ui::error_json(&err);
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// `--generate KIND` or `--generate=KIND`, alone on the command line.
fn generate_kind(args: &[std::ffi::OsString]) -> Option<String> {
    let first = args.get(1)?.to_str()?;
    match (
        first.strip_prefix("--generate="),
        first == "--generate",
        args.len(),
    ) {
        (Some(kind), _, 2) => Some(kind.to_string()),
        (None, true, 3) => Some(args[2].to_string_lossy().into_owned()),
        (None, true, 2) => Some(String::new()),
        _ => None,
    }
}
