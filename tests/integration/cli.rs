//! The command line from outside: misuse exits 5 with one PostgreSQL-style error line and the
//! `Try "pg_scribe --help"` hint, before anything is touched; help and version follow
//! PostgreSQL's conventions.

use crate::harness::{pg_scribe, stderr};

const HINT: &str = "pg_scribe: hint: Try \"pg_scribe --help\" for more information.";

/// (arguments, the error message that must follow `pg_scribe: error: `)
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
    (
        &["--status", "-d", "host=x frob=1"],
        "invalid connection option \"frob\"",
    ),
    (
        &["--status", "-d", "host=x sslpassword=x"],
        "connection option \"sslpassword\" is not supported by pg_scribe",
    ),
    (
        &["--status", "-d", "postgresql://h/db?sslmode=sometimes"],
        "invalid sslmode value: \"sometimes\"",
    ),
    (
        &["--status", "-d", "host='unterminated"],
        "unterminated quoted string in connection info string",
    ),
];

#[test]
fn misuse_exits_5_with_one_line_and_a_hint() {
    let mut failures = Vec::new();
    for (args, message) in MISUSE {
        let out = pg_scribe(args, &[]);
        let err = stderr(&out);
        let expected = format!("pg_scribe: error: {message}\n{HINT}\n");
        if out.status.code() != Some(5) || err != expected {
            failures.push(format!(
                "{args:?}: exit {:?}\n  got:      {err:?}\n  expected: {expected:?}",
                out.status.code()
            ));
        }
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    assert!(MISUSE.len() >= 25);
    assert!(
        failures.is_empty(),
        "{} misuse cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn misuse_touches_nothing() {
    let dir = std::env::temp_dir().join(format!("pg_scribe-misuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = pg_scribe(
        &[
            "--init",
            "--backup-dir",
            dir.to_str().unwrap(),
            "--compress",
            "bogus",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(
        !dir.exists(),
        "a rejected command line created the backup directory"
    );
}

#[test]
fn help_and_version_follow_postgresql_conventions() {
    for flag in ["-?", "--help"] {
        let out = pg_scribe(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("pg_scribe takes incremental"), "{text}");
        for action in [
            "--init",
            "--start",
            "--rotate-diff",
            "--new-chain",
            "--restore",
            "--status",
        ] {
            assert!(text.contains(action), "help lacks {action}");
        }
        assert!(text.contains("-h, --host=HOSTNAME"));
    }
    for flag in ["-V", "--version"] {
        let out = pg_scribe(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("pg_scribe {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn pg_color_always_paints_the_error_label() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pg_scribe"))
        .env("PG_COLOR", "always")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("\x1b[01;31merror:\x1b[0m"),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pg_scribe"))
        .env("PG_COLOR", "never")
        .output()
        .unwrap();
    assert!(!stderr(&out).contains('\x1b'));
}

/// A misspelt option gets a suggestion instead of the generic hint, and is still misuse (5).
#[test]
fn misspelt_options_get_a_suggestion() {
    for (typed, meant) in [
        ("--stat", "--status"),
        ("--initt", "--init"),
        ("--backup-di", "--backup-dir"),
        ("--compres", "--compress"),
        ("--status-intrval", "--status-interval"),
        ("--Restore", "--restore"),
    ] {
        let out = pg_scribe(&[typed, "--backup-dir", "/nonexistent"], &[]);
        assert_eq!(out.status.code(), Some(5), "{typed}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "pg_scribe: error: unrecognized option \"{typed}\"\n\
                 pg_scribe: hint: Did you mean \"{meant}\"?\n"
            ),
            "{typed}"
        );
    }
}

/// Every option `--help` lists appears in the generated man page and in each completion.
#[test]
fn man_page_and_completions_name_every_option() {
    let help = String::from_utf8(pg_scribe(&["--help"], &[]).stdout).unwrap();
    let mut longs: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    longs.sort();
    longs.dedup();
    assert!(longs.len() > 25, "{longs:?}");
    let mut shorts: Vec<char> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('-'))
        .filter_map(|rest| {
            let mut chars = rest.chars();
            let c = chars.next()?;
            (chars.next() == Some(',') && c != '-').then_some(c)
        })
        .collect();
    shorts.sort();
    shorts.dedup();
    assert!(shorts.len() >= 10, "{shorts:?}");

    let generate = |kind: &str| {
        let out = pg_scribe(&["--generate", kind], &[]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let man = generate("man");
    let bash = generate("bash");
    let zsh = generate("zsh");
    let fish = generate("fish");
    for long in &longs {
        let name = &long[2..];
        assert!(
            man.contains(&format!("\\fB{}\\fR", long.replace('-', "\\-"))),
            "man: {long}"
        );
        assert!(bash.contains(long), "bash: {long}");
        assert!(
            zsh.contains(&format!("{long}[")) || zsh.contains(&format!("{long}=[")),
            "zsh: {long}"
        );
        assert!(fish.contains(&format!("-l {name}")), "fish: {long}");
    }
    for short in &shorts {
        assert!(
            man.contains(&format!("\\fB\\-{short}\\fR")),
            "man: -{short}"
        );
        assert!(bash.contains(&format!("-{short} ")), "bash: -{short}");
        assert!(
            zsh.contains(&format!("-{short}[")) || zsh.contains(&format!("-{short}+[")),
            "zsh: -{short}"
        );
        assert!(fish.contains(&format!("-s {short} ")), "fish: -{short}");
    }
    for section in ["SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "ENVIRONMENT"] {
        assert!(
            man.lines()
                .any(|l| l.starts_with(".SH ") && l.trim_matches('"').ends_with(section)),
            "man: {section}"
        );
    }
    // bash is here to try the completion for real: `--back` completes to `--backup-dir`.
    let dir = crate::harness::scratch_dir("completion");
    std::fs::write(dir.join("pg_scribe.bash"), &bash).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$0\"; COMP_WORDS=(pg_scribe --back); COMP_CWORD=1; \
             COMP_LINE='pg_scribe --back'; COMP_POINT=${#COMP_LINE}; \
             _pg_scribe pg_scribe --back pg_scribe; echo \"${COMPREPLY[*]}\"",
        )
        .arg(dir.join("pg_scribe.bash"))
        .output()
        .expect("bash");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "--backup-dir",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = pg_scribe(&["--generate", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}
