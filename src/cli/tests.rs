//! The misuse cases of tests/integration/cli.rs that the parser alone decides, checked without
//! spawning a process, plus what a good command line turns into.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::error::Situation;
use crate::lsn::Lsn;

fn run(args: &[&str]) -> Result<Parsed> {
    parse(std::iter::once("pg_scribe").chain(args.iter().copied()))
}

fn invocation(args: &[&str]) -> Invocation {
    match run(args) {
        Ok(Parsed::Run(inv)) => *inv,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// (arguments, the usage error's message)
const MISUSE: &[(&[&str], &str)] = &[
    (
        &[],
        "no action specified: use one of --init, --start, --rotate-diff, --new-chain, --restore, --status or --verify",
    ),
    (
        &["--init", "--start", "--backup-dir", "/nonexistent"],
        "--init and --start cannot be used together",
    ),
    (
        &["--restore", "--status", "-d", "x"],
        "--restore and --status cannot be used together",
    ),
    (&["--frobnicate"], "unrecognized option \"--frobnicate\""),
    (
        &["--status", "stray"],
        "too many command-line arguments (first is \"stray\")",
    ),
    (&["--init"], "no backup directory specified (--backup-dir)"),
    (&["--start"], "no backup directory specified (--backup-dir)"),
    (
        &["--rotate-diff"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--new-chain"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--restore", "-d", "x"],
        "no backup directory specified (--backup-dir)",
    ),
    (
        &["--restore", "--backup-dir", "/nonexistent"],
        "no target database specified (-d/--dbname)",
    ),
    (
        &["--init", "--backup-dir", ""],
        "backup directory name must not be empty",
    ),
    (&["--status", "-d", ""], "database name must not be empty"),
    (
        &["--start", "--backup-dir", "/b", "--force"],
        "option --force cannot be used with --start",
    ),
    (
        &["--start", "--backup-dir", "/b", "--compress", "gzip"],
        "option --compress cannot be used with --start",
    ),
    (
        &["--status", "--create"],
        "option --create cannot be used with --status",
    ),
    (
        &["--init", "--backup-dir", "/b", "--lag-warn", "1GB"],
        "option --lag-warn cannot be used with --init",
    ),
    (
        &["--start", "--backup-dir", "/b", "--diff-age-warn", "1d"],
        "option --diff-age-warn cannot be used with --start",
    ),
    (
        &["--status", "--lag-warn", "1XB"],
        "invalid --lag-warn value \"1XB\" (expected a size like 512MB or 10GB)",
    ),
    (
        &["--status", "--retained-warn", "-5"],
        "invalid --retained-warn value \"-5\" (expected a size like 512MB or 10GB)",
    ),
    (
        &["--status", "--diff-age-warn", "7"],
        "invalid --diff-age-warn value \"7\" (expected a duration with a unit s, min, h or d, like 36h or 7d)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--up-to", "0/1"],
        "option --up-to cannot be used with --init",
    ),
    (
        &["--rotate-diff", "--backup-dir", "/b", "--slot", "s"],
        "option --slot cannot be used with --rotate-diff",
    ),
    (
        &["--new-chain", "--backup-dir", "/b", "-s", "5"],
        "option --status-interval cannot be used with --new-chain",
    ),
    (
        &["--restore", "--backup-dir", "/b", "-d", "x", "--json"],
        "option --json cannot be used with --restore",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "brotli"],
        "unrecognized compression algorithm: \"brotli\"",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "zstd:99"],
        "compression algorithm \"zstd\" expects a compression level between 1 and 22",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "gzip:x"],
        "value for compression option \"level\" must be an integer",
    ),
    (
        &["--init", "--backup-dir", "/b", "--compress", "none:3"],
        "compression algorithm \"none\" does not accept a compression level",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--up-to",
            "yesterday",
        ],
        "invalid --up-to value \"yesterday\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--up-to",
            "2023-13-01 00:00",
        ],
        "invalid --up-to value \"2023-13-01 00:00\" (expected a timestamp like \"2023-12-16 08:30:00+00\" or an LSN like \"0/1A2B3C4\")",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--chain-id",
            "2023-12-15",
        ],
        "invalid chain ID \"2023-12-15\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)",
    ),
    (
        &[
            "--restore",
            "--backup-dir",
            "/b",
            "-d",
            "x",
            "--chain-id",
            "20231332T120000Z",
        ],
        "invalid chain ID \"20231332T120000Z\" (expected YYYYMMDDTHHMMSSZ, e.g. 20231215T120000Z)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--slot", "Bad-Name"],
        "replication slot name \"Bad-Name\" contains invalid character (only lower case letters, numbers and the underscore are allowed)",
    ),
    (
        &["--init", "--backup-dir", "/b", "--slot", ""],
        "replication slot name must not be empty",
    ),
    (
        &[
            "--status",
            "--slot",
            "a234567890123456789012345678901234567890123456789012345678901234",
        ],
        "replication slot name \"a234567890123456789012345678901234567890123456789012345678901234\" is too long (at most 63 bytes)",
    ),
    (
        &["--start", "--backup-dir", "/b", "-s", "ten"],
        "invalid status interval \"ten\"",
    ),
    (
        &["--start", "--backup-dir", "/b", "-F", "-1"],
        "invalid fsync interval \"-1\"",
    ),
    (&["--status", "-p", "0"], "invalid port number: \"0\""),
    (
        &["--status", "-p", "65536"],
        "invalid port number: \"65536\"",
    ),
    (&["--status", "-d"], "option --dbname requires an argument"),
    (
        &["--status", "--slot"],
        "option --slot requires an argument",
    ),
    (
        &["--status=yes"],
        "option --status does not take an argument",
    ),
    (
        &["--status", "-w", "-W"],
        "options -w/--no-password and -W/--password cannot be used together",
    ),
];

#[test]
fn misuse_is_a_usage_error_with_the_hint() {
    let mut failures = Vec::new();
    for (args, message) in MISUSE {
        match run(args) {
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
