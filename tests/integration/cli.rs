//! The command line from outside: misuse exits 5 with one PostgreSQL-style error line and the
//! `Try "pg_scribe --help"` hint, before anything is touched; help and version follow
//! PostgreSQL's conventions.

use crate::harness::{pg_scribe, stderr};

const HINT: &str = "pg_scribe: hint: Try \"pg_scribe --help\" for more information.";

// `MISUSE`: (arguments, the error message that must follow `pg_scribe: error: `). Shared with
// the parser's unit tests (src/cli/tests.rs), which check the same cases without a process.
include!("cli_misuse.rs");

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
