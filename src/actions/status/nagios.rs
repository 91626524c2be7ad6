//! `--status --format=nagios`: one line `PG_SCRIBE OK|WARNING|CRITICAL|UNKNOWN - … | perfdata`
//! and the exit code Nagios plugins use (0, 1, 2, 3), for Nagios, Icinga, Naemon and the like.
//!
//! Which warnings are critical: those that mean the backup is not being taken or cannot be
//! restored or continued (no streamer, lost WAL, wrong slot, no complete chain). The others
//! (lag, retention, age of the last differential, free space, an incomplete chain) are
//! warnings. A check that fails outright (server unreachable, slot missing, unreadable
//! directory) is critical: the backup is not known to work.

use std::fmt::Write;

use super::Report;
use crate::error::Error;

/// Besides every warning `--status` itself calls critical (unreplayable markers, a failed
/// verification, an invalidated slot), these are critical for a pager. Codes not listed
/// (including ones added later) are warnings unless their severity says otherwise.
const CRITICAL_CODES: &[&str] = &[
    "wal_lost",
    "slot_not_logical",
    "slot_plugin",
    "no_complete_chain",
    "streamer_not_running",
    "streamer_stale",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// The line (with its newline) and the state.
pub fn render(r: &Report, failure: Option<&Error>) -> (String, State) {
    let (state, summary) = if let Some(e) = failure {
        let state = if e.exit_code() == 5 {
            State::Unknown
        } else {
            State::Critical
        };
        (state, e.message.clone())
    } else if r.warnings.is_empty() {
        (State::Ok, healthy_summary(r))
    } else {
        let state = if r.warnings.iter().any(is_critical) {
            State::Critical
        } else {
            State::Warning
        };
        // The most serious first: that is what a pager shows.
        let mut ws: Vec<_> = r.warnings.iter().collect();
        ws.sort_by_key(|w| !is_critical(w));
        let text: Vec<&str> = ws.iter().map(|w| w.message.as_str()).collect();
        (state, text.join("; "))
    };
    let mut line = format!("PG_SCRIBE {} - {}", state.word(), one_line(&summary));
    let perf = perfdata(r);
    if !perf.is_empty() {
        let _ = write!(line, " | {perf}");
    }
    line.push('\n');
    (line, state)
}

fn is_critical(w: &super::warnings::Warning) -> bool {
    w.severity == "critical" || CRITICAL_CODES.contains(&w.code)
}

fn healthy_summary(r: &Report) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &r.slot {
        let lag = s
            .lag_bytes
            .map(|l| format!(", lag {}", crate::ui::size(l)))
            .unwrap_or_default();
        parts.push(format!("slot \"{}\" active{lag}", s.name));
    }
    if let Some(d) = &r.backup_dir {
        if d.streamer.is_running() {
            parts.push("streamer running".to_string());
        }
        let complete = d.chains.iter().filter(|c| c.complete).count();
        parts.push(format!(
            "{complete} complete chain{}",
            if complete == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        "nothing to report".into()
    } else {
        parts.join(", ")
    }
}

/// `|` separates perfdata and `'`/`=` would break a label; keep the text to one plain line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '|'], " ")
}

/// `'label'=value[UOM];warn;crit;min;max`, space separated.
fn perfdata(r: &Report) -> String {
    let mut items = Vec::new();
    if let Some(s) = &r.slot {
        if let Some(l) = s.lag_bytes {
            items.push(format!("lag={l}B;{};;0", r.thresholds.lag_warn_bytes));
        }
        if let Some(k) = s.retained_bytes {
            items.push(format!(
                "retained_wal={k}B;{};;0",
                r.thresholds.retained_warn_bytes
            ));
        }
    }
    if let Some(d) = &r.backup_dir {
        items.push(format!(
            "streamer_up={};;;0;1",
            u8::from(d.streamer.is_running())
        ));
        if let Some(active) = d.chains.iter().find(|c| c.active) {
            let since = active.last_sealed_at.unwrap_or(active.created_at);
            items.push(format!(
                "diff_age={}s;{};;0",
                (r.checked_at - since).whole_seconds().max(0),
                r.thresholds.diff_age_warn_seconds
            ));
        }
        items.push(format!(
            "chains={};;;0",
            d.chains.iter().filter(|c| c.complete).count()
        ));
        items.push(format!("backup_size={}B;;;0", d.total_bytes));
        if let Some(fs) = &d.filesystem {
            // `N:` is Nagios' range for "warn below N".
            items.push(format!(
                "free_space={}B;{}:;;0;{}",
                fs.available_bytes,
                r.thresholds.free_warn_bytes.unwrap_or(0),
                fs.size_bytes
            ));
        }
    }
    items.push(format!("warnings={};;;0", r.warnings.len()));
    items.join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{report, warning};
    use super::*;

    #[test]
    fn a_critical_warning_is_critical_whatever_its_code() {
        let mut r = super::super::fixtures::report();
        let mut w = super::super::fixtures::warning("unreplayable_markers", "1 marker");
        w.severity = "critical";
        r.warnings = vec![super::super::fixtures::warning("lag", "slot lags"), w];
        let (line, state) = render(&r, None);
        assert_eq!(state, State::Critical);
        assert!(
            line.starts_with("PG_SCRIBE CRITICAL - 1 marker; slot lags | "),
            "{line}"
        );
    }

    #[test]
    fn states_and_perfdata() {
        let r = report();
        let (line, state) = render(&r, None);
        assert_eq!(state, State::Ok);
        assert_eq!(
            line,
            "PG_SCRIBE OK - slot \"s\" active, lag 256 B, streamer running, 1 complete chain | \
             lag=256B;1073741824;;0 retained_wal=512B;10737418240;;0 streamer_up=1;;;0;1 \
             diff_age=3600s;604800;;0 chains=1;;;0 backup_size=15B;;;0 \
             free_space=400B;100:;;0;1000 warnings=0;;;0\n"
        );

        let mut r = report();
        r.warnings = vec![
            warning("lag", "slot lags"),
            warning("streamer_not_running", "no streamer | at all"),
        ];
        let (line, state) = render(&r, None);
        assert_eq!(state.exit_code(), 2);
        assert!(
            line.starts_with("PG_SCRIBE CRITICAL - no streamer   at all; slot lags | "),
            "{line}"
        );
        r.warnings.remove(1);
        assert_eq!(render(&r, None).1, State::Warning);

        let err = Error::slot("replication slot \"x\" does not exist");
        let (line, state) = render(&r, Some(&err));
        assert_eq!(state, State::Critical);
        assert!(line.starts_with("PG_SCRIBE CRITICAL - replication slot \"x\" does not exist | "));
        assert_eq!(
            render(&r, Some(&Error::validation("bad"))).1,
            State::Unknown
        );
    }
}
