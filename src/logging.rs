//! Debug logging through tracing, to stderr, off unless `-v` is given (`-vv` adds trace);
//! `PG_SCRIBE_LOG` takes an env-filter expression for finer control.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "pg_scribe=debug",
        _ => "pg_scribe=trace",
    };
    let filter =
        EnvFilter::try_from_env("PG_SCRIBE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
