//! The misuse cases of tests/integration/cli.rs, checked without spawning a process, plus what a
//! good command line turns into.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::error::Situation;
use crate::lsn::Lsn;
use crate::pg::conninfo::{self, Environment};

fn run(args: &[&str]) -> Result<Parsed> {
    parse(std::iter::once("pg_scribe").chain(args.iter().copied()))
}

fn invocation(args: &[&str]) -> Invocation {
    match run(args) {
        Ok(Parsed::Run(inv)) => *inv,
        other => panic!("{args:?}: {other:?}"),
    }
}

// `MISUSE`: the cases tests/integration/cli.rs runs as processes.
include!("../../tests/integration/cli_misuse.rs");

/// Cases only checked here.
const MORE_MISUSE: &[(&[&str], &str)] =
    &[(&["--status", "-d", ""], "database name must not be empty")];

#[test]
fn misuse_is_a_usage_error_with_the_hint() {
    let mut failures = Vec::new();
    // No variables, a user name: resolution must fail for the case's reason, not for want of one.
    let env = Environment {
        os_user: Some("tester".into()),
        ..Environment::default()
    };
    for (args, message) in MISUSE.iter().chain(MORE_MISUSE) {
        // The parser decides most cases; a connection string it passes on is refused when the
        // action resolves it, still before anything is touched.
        let result = run(args).and_then(|parsed| match parsed {
            Parsed::Run(inv) => conninfo::resolve(&inv.conn, &env).map(|_| Parsed::Run(inv)),
            other => Ok(other),
        });
        match result {
            Err(err)
                if err.situation == Situation::Usage
                    && err.message == *message
                    && err.hint.as_deref()
                        == Some("Try \"pg_scribe --help\" for more information.") => {}
            other => failures.push(format!("{args:?}: {other:?}\n  expected: {message:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn help_and_version_win_over_everything_else() {
    assert_eq!(run(&["-?"]).unwrap(), Parsed::Help);
    assert_eq!(run(&["--help", "--frob-not"]).ok(), None);
    assert_eq!(run(&["--init", "--start", "--help"]).unwrap(), Parsed::Help);
    assert_eq!(run(&["-V"]).unwrap(), Parsed::Version);
    assert_eq!(run(&["--version", "--status"]).unwrap(), Parsed::Version);
}

#[test]
fn defaults_when_nothing_optional_is_given() {
    let inv = invocation(&["--start", "--backup-dir", "/b"]);
    assert_eq!(inv.action, Action::Start);
    assert_eq!(inv.backup_dir, Some(PathBuf::from("/b")));
    assert_eq!(inv.slot, DEFAULT_SLOT);
    assert!(!inv.slot_explicit);
    assert_eq!(inv.status_interval, Duration::from_secs(10));
    assert_eq!(inv.fsync_interval, Duration::from_secs(10));
    assert_eq!(inv.verbose, 0);
    assert!(inv.sync_sequences);
    assert_eq!(inv.conn, ConnOptions::default());
    assert_eq!(inv.thresholds, StatusThresholds::default());
}

#[test]
fn values_reach_the_invocation() {
    let inv = invocation(&[
        "--restore",
        "--backup-dir=/b",
        "-d",
        "target",
        "-C",
        "--chain-id",
        "20231215T120000Z",
        "--include-active",
        "--up-to",
        "0/1A2B3C4",
        "--no-sync-sequences",
        "-vv",
        "-h",
        "/tmp",
        "-p",
        "5433",
        "-U",
        "me",
        "-w",
    ]);
    assert_eq!(inv.action, Action::Restore);
    assert!(inv.create && inv.include_active && !inv.sync_sequences);
    assert_eq!(
        inv.chain_id.map(|c| c.to_string()).as_deref(),
        Some("20231215T120000Z")
    );
    assert_eq!(
        inv.up_to,
        Some(StopAt::Lsn("0/1A2B3C4".parse::<Lsn>().unwrap()))
    );
    assert_eq!(inv.verbose, 2);
    assert_eq!(
        inv.conn,
        ConnOptions {
            dbname: Some("target".into()),
            host: Some("/tmp".into()),
            port: Some("5433".into()),
            username: Some("me".into()),
            no_password: true,
            force_prompt: false,
        }
    );

    let inv = invocation(&[
        "--status",
        "--slot",
        "s1",
        "--json",
        "--lag-warn",
        "512MB",
        "--retained-warn",
        "2 GB",
        "--diff-age-warn",
        "36h",
    ]);
    assert!(inv.slot_explicit && inv.json);
    assert_eq!(inv.slot, "s1");
    assert_eq!(inv.backup_dir, None);
    assert_eq!(inv.thresholds.lag_bytes, 512 << 20);
    assert_eq!(inv.thresholds.retained_bytes, 2 << 30);
    assert_eq!(inv.thresholds.diff_age, Duration::from_secs(36 * 3600));

    // --rotate-every: a duration, a size, or one of each in either order; off by default.
    for (value, interval, size) in [
        ("15min", Some(900), None),
        ("1h", Some(3600), None),
        ("256MB", None, Some(256u64 << 20)),
        ("1h,256MB", Some(3600), Some(256 << 20)),
        ("1 GB, 2d", Some(2 * 86400), Some(1 << 30)),
    ] {
        let inv = invocation(&["--start", "--backup-dir=/b", "--rotate-every", value]);
        assert_eq!(
            inv.rotate_every,
            crate::streamer::RotateEvery {
                interval: interval.map(Duration::from_secs),
                size,
            },
            "{value}"
        );
    }
    let inv = invocation(&["--start", "--backup-dir=/b"]);
    assert_eq!(inv.rotate_every, crate::streamer::RotateEvery::default());

    // Like getopt, a value may start with a dash; the last of a repeated option wins.
    let inv = invocation(&["--start", "--backup-dir", "-odd", "-F", "0", "-F", "3"]);
    assert_eq!(inv.backup_dir, Some(PathBuf::from("-odd")));
    assert_eq!(inv.fsync_interval, Duration::from_secs(3));
}

#[test]
fn every_action_specific_option_is_accepted_where_its_help_lists_it() {
    use table::{Section, TABLE};
    for row in TABLE {
        if let Section::For(action) = row.section {
            assert!(
                action.accepts(row.opt),
                "{} {}",
                action.flag(),
                row.opt.long
            );
        }
    }
    let specific: Vec<&str> = table::action_specific().map(|o| o.long).collect();
    assert!(specific.contains(&"--backup-dir") && !specific.contains(&"--dbname"));
}

#[test]
fn help_lists_every_option_once_per_section_in_postgresql_layout() {
    let help = help_text();
    assert!(help.starts_with("pg_scribe takes incremental"));
    assert!(help.contains("\nOptions for --init:\n      --backup-dir=DIRECTORY backup directory (required; must be empty or absent)\n"));
    assert!(help.contains("\n      --compress=METHOD[:LEVEL]\n                             compress base backups: gzip, lz4, zstd or none\n"));
    assert!(help.contains("\n  -F, --fsync-interval=SECS  time between fsyncs of active.sql (default: 10,\n                             0 = after every transaction)\n"));
    assert!(help.contains("\n  -?, --help                 show this help, then exit\n"));
    assert!(help.contains(&format!("(default: {DEFAULT_SLOT})")));
    assert!(help.lines().all(|l| l.len() <= 95), "{help}");
}
