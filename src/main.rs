//! The `pg_scribe` binary: parse, run, render the outcome once.

use std::process::ExitCode;

use pg_scribe::cli::{self, Parsed};
use pg_scribe::{actions, ui};

fn main() -> ExitCode {
    // Asked for JSON, a monitor gets a JSON document even when the command line is wrong.
    let json_asked = std::env::args_os().any(|a| a == "--json");
    let invocation = match cli::parse(std::env::args_os()) {
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
