//! What the user sees on stderr: diagnostics in PostgreSQL's format (`pg_scribe: error: …`,
//! `pg_scribe: detail: …`, `pg_scribe: hint: …`), `✓` progress lines, and colour as PostgreSQL's
//! `PG_COLOR` decides it (off unless `always`, or `auto` on a terminal).
//!
//! A long-running process writes for a log file rather than for a person: with a log format set
//! ([`set_log_format`], `--log-format`, and `--start`'s default when stderr is not a terminal)
//! every line carries an ISO 8601 UTC timestamp, the PID and a level, as PostgreSQL's own server
//! log does, or is one JSON object (doc/operations.md).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use crate::error::Error;

pub(crate) const PROGNAME: &str = "pg_scribe";

/// The three colours PostgreSQL's front ends use by default (`PG_COLORS` is honoured too).
struct Palette {
    error: String,
    warning: String,
    note: String,
    locus: String,
}

fn palette() -> Option<&'static Palette> {
    static PALETTE: OnceLock<Option<Palette>> = OnceLock::new();
    PALETTE
        .get_or_init(|| {
            let mode = std::env::var("PG_COLOR").ok()?;
            let on = match mode.as_str() {
                "always" => true,
                "auto" => std::io::stderr().is_terminal(),
                _ => false,
            };
            on.then(|| parse_pg_colors(std::env::var("PG_COLORS").ok().as_deref()))
        })
        .as_ref()
}

fn parse_pg_colors(spec: Option<&str>) -> Palette {
    let mut palette = Palette {
        error: "01;31".into(),
        warning: "01;35".into(),
        note: "01;36".into(),
        locus: "01".into(),
    };
    for item in spec.unwrap_or("").split(':') {
        if let Some((name, code)) = item.split_once('=') {
            let code = code.to_string();
            match name {
                "error" => palette.error = code,
                "warning" => palette.warning = code,
                "note" => palette.note = code,
                "locus" => palette.locus = code,
                _ => {}
            }
        }
    }
    palette
}

fn paint(code: Option<&str>, text: &str) -> String {
    match code {
        Some(code) => format!("\x1b[{code}m{text}\x1b[0m"),
        None => text.to_string(),
    }
}

/// How lines are written (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The spec's lines: `pg_scribe: error: …`, `✓ …`.
    Terminal,
    /// `2026-01-01T12:00:00.000Z [123] LOG:  …`.
    Plain,
    /// One JSON object per line.
    Json,
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format for the rest of the process (first call wins).
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

fn log_format() -> LogFormat {
    *LOG_FORMAT.get().unwrap_or(&LogFormat::Terminal)
}

fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

/// One event in a log format; `false` when the terminal format applies and the caller writes.
fn logged(level: &str, text: &str, detail: Option<&str>, hint: Option<&str>) -> bool {
    let format = log_format();
    if format == LogFormat::Terminal {
        return false;
    }
    let ts = timestamp();
    let pid = std::process::id();
    let mut out = String::new();
    if format == LogFormat::Json {
        let mut obj = serde_json::json!({
            "timestamp": ts, "pid": pid, "level": level, "message": text,
        });
        if let Some(d) = detail {
            obj["detail"] = d.into();
        }
        if let Some(h) = hint {
            obj["hint"] = h.into();
        }
        out.push_str(&obj.to_string());
        out.push('\n');
    } else {
        // A message of several lines keeps its prefix on each, so `grep` finds them all.
        let mut one = |level: &str, text: &str| {
            for line in text.lines() {
                out.push_str(&format!("{ts} [{pid}] {level}:  {line}\n"));
            }
        };
        one(level, text);
        if let Some(d) = detail {
            one("DETAIL", d);
        }
        if let Some(h) = hint {
            one("HINT", h);
        }
    }
    // One write per event, so lines of concurrent writers do not interleave.
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
    true
}

fn line(level: &str, color: Option<&str>, text: &str) {
    let locus = paint(palette().map(|p| p.locus.as_str()), &format!("{PROGNAME}:"));
    let label = paint(color, &format!("{level}:"));
    let mut err = std::io::stderr().lock();
    // Diagnostics are best effort: a closed stderr must not turn into a panic.
    let _ = writeln!(err, "{locus} {label} {text}");
}

/// Print an error with its detail and hint, the one place errors are rendered.
pub fn error(err: &Error) {
    if logged(
        "ERROR",
        &err.message,
        err.detail.as_deref(),
        err.hint.as_deref(),
    ) {
        return;
    }
    let p = palette();
    line("error", p.map(|p| p.error.as_str()), &err.message);
    if let Some(detail) = &err.detail {
        line("detail", p.map(|p| p.note.as_str()), detail);
    }
    if let Some(hint) = &err.hint {
        line("hint", p.map(|p| p.note.as_str()), hint);
    }
}

/// An error as the JSON document `--json` promises for every outcome (doc/status.md), on
/// stdout: `status`, `code` (the exit code), `message`, and `detail`/`hint` when present.
pub fn error_json(err: &Error) {
    let doc = serde_json::json!({
        "status": "error",
        "code": err.exit_code(),
        "message": err.message,
        "detail": err.detail,
        "hint": err.hint,
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    );
}

/// A non-fatal problem the user should know about.
pub fn warning(message: &str) {
    if logged("WARNING", message, None, None) {
        return;
    }
    line("warning", palette().map(|p| p.warning.as_str()), message);
}

/// A warning with PostgreSQL's `detail:` and `hint:` lines.
pub fn warning_with(message: &str, detail: Option<&str>, hint: Option<&str>) {
    warning(message);
    let note = palette().map(|p| p.note.as_str());
    if let Some(detail) = detail {
        line("detail", note, detail);
    }
    if let Some(hint) = hint {
        line("hint", note, hint);
    }
}

/// A completed step, as README.md and doc/ show them: `✓ Initial chain created: …`.
pub fn done(text: &str) {
    if logged("LOG", &format!("✓ {text}"), None, None) {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "✓ {text}");
}

/// A failed check in a list of checks: `✗ …`.
pub fn failed(text: &str) {
    if logged("LOG", &format!("✗ {text}"), None, None) {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "✗ {text}");
}

/// A plain progress or report line on stderr (data goes to files, never to stderr).
pub(crate) fn say(text: &str) {
    if text.trim().is_empty() {
        // Blank spacer lines are for people reading a terminal.
        if log_format() != LogFormat::Terminal {
            return;
        }
    } else if logged("LOG", text.trim_start_matches('\n'), None, None) {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A byte count the way people read it: `512 B`, `12.3 MB`, `2.1 GB` (powers of 1024).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `3m 42s`, `12.3s`, `1h 02m`.
pub(crate) fn duration_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// `90` → `1 minute`, `200000` → `2 days`: the largest whole unit, as people say it (for ages
/// and thresholds, where `3m 42s` would be false precision).
pub(crate) fn duration_words(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    counted(n, unit)
}

/// `1 table`, `3 tables`: a count and its noun, plural unless it is one.
pub(crate) fn counted<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    let s = if n == N::from(1) { "" } else { "s" };
    format!("{n} {noun}{s}")
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(super::thousands(1234567), "1,234,567");
        assert_eq!(super::thousands(12), "12");
        assert_eq!(
            super::duration_text(std::time::Duration::from_secs(222)),
            "3m 42s"
        );
        assert_eq!(
            super::duration_text(std::time::Duration::from_millis(1500)),
            "1.5s"
        );
    }

    #[test]
    fn durations_read_like_speech() {
        use super::duration_words as duration;
        assert_eq!(duration(0), "0 seconds");
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(119), "1 minute");
        assert_eq!(duration(120), "2 minutes");
        assert_eq!(duration(7200), "2 hours");
        assert_eq!(duration(7 * 86400 + 5), "7 days");
        assert_eq!(super::counted(1usize, "file"), "1 file");
        assert_eq!(super::counted(0u64, "file"), "0 files");
    }

    #[test]
    fn sizes_read_like_the_spec() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(1536), "1.5 kB");
        assert_eq!(super::size(12_900_000), "12.3 MB");
        assert_eq!(super::size(2_254_857_830), "2.1 GB");
    }

    use super::*;

    #[test]
    fn pg_colors_overrides_single_entries() {
        let p = parse_pg_colors(Some("error=01;32:note=02"));
        assert_eq!(p.error, "01;32");
        assert_eq!(p.warning, "01;35");
        assert_eq!(p.note, "02");
    }
}
