//! The verdict: which observed facts deserve a warning (exit 10). A pure function of the facts,
//! the thresholds and the clock, so every rule is tested without a server.

use serde::Serialize;
use time::OffsetDateTime;

use super::facts::{DirFacts, SlotFacts};
use crate::cli::StatusThresholds;
use crate::pg::replication::DEFAULT_PLUGIN;
use crate::ui;

/// One problem; `code` is stable for monitoring rules, `message` is for people. `severity` is
/// `warning` (exit 10) or `critical`: the backup cannot continue or cannot restore past a point
/// (exit 3 for a lost slot, else 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn warn(code: &'static str, message: String) -> Warning {
    Warning {
        code,
        severity: "warning",
        message,
        hint: None,
    }
}

fn critical(code: &'static str, message: String, hint: String) -> Warning {
    Warning {
        code,
        severity: "critical",
        message,
        hint: Some(hint),
    }
}

/// The exit code of a verdict: 0, 10 for warnings, 3 when the slot lost its WAL or was
/// invalidated otherwise, 4 for another critical problem.
pub fn exit_code(found: &[Warning]) -> u8 {
    if found
        .iter()
        .any(|w| w.code == "wal_lost" || w.code == "slot_invalidated")
    {
        3
    } else if found.iter().any(|w| w.severity == "critical") {
        4
    } else if found.is_empty() {
        0
    } else {
        10
    }
}

pub(crate) fn evaluate(
    slot: Option<&SlotFacts>,
    dir: Option<&DirFacts>,
    limits: &StatusThresholds,
    now: OffsetDateTime,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if let Some(s) = slot {
        slot_warnings(s, limits, &mut out);
    }
    if let Some(d) = dir {
        dir_warnings(d, limits, now, &mut out);
    }
    out
}

fn slot_warnings(s: &SlotFacts, limits: &StatusThresholds, out: &mut Vec<Warning>) {
    let name = &s.name;
    if s.slot_type != "logical" {
        out.push(warn(
            "slot_not_logical",
            format!(
                "replication slot \"{name}\" is a {} slot, not a logical one",
                s.slot_type
            ),
        ));
    } else if s.plugin.as_deref() != Some(DEFAULT_PLUGIN) {
        out.push(warn(
            "slot_plugin",
            format!(
                "replication slot \"{name}\" uses plugin \"{}\", not \"{DEFAULT_PLUGIN}\"",
                s.plugin.as_deref().unwrap_or("")
            ),
        ));
    }
    match s.wal_status.as_deref() {
        Some("lost") => {
            // PostgreSQL 17+ says why; an invalidated slot shows "lost" whatever the reason.
            let (code, why) = match s.invalidation_reason.as_deref() {
                Some(reason) if reason != "wal_removed" => (
                    "slot_invalidated",
                    format!("has been invalidated ({})", invalidation_cause(reason)),
                ),
                _ => ("wal_lost", "has lost WAL it needs (wal_status lost)".to_string()),
            };
            out.push(critical(
                code,
                format!("replication slot \"{name}\" {why}: streaming can never resume from it"),
                format!(
                    "--new-chain does not help: a new chain streams from the same slot. Drop the slot (SELECT pg_drop_replication_slot('{name}')) and start a new backup with pg_scribe --init into a new, empty directory; the chains here stay restorable up to their last transaction."
                ),
            ))
        }
        Some("unreserved") => out.push(warn(
            "wal_unreserved",
            format!(
                "replication slot \"{name}\" retains more WAL than max_slot_wal_keep_size (wal_status unreserved): the next checkpoint may remove WAL it needs"
            ),
        )),
        _ => {}
    }
    if !s.active {
        out.push(warn(
            "slot_inactive",
            format!("replication slot \"{name}\" is not active: no streamer is connected to it"),
        ));
        if let Some(secs) = s.idle_timeout_secs.filter(|t| *t > 0)
            && s.invalidation_reason.is_none()
        {
            out.push(warn(
                "idle_timeout",
                format!(
                    "replication slot \"{name}\" is inactive (since {}) and idle_replication_slot_timeout is {secs} s: the server invalidates it at the first checkpoint after that long",
                    s.inactive_since.as_deref().unwrap_or("unknown")
                ),
            ));
        }
    }
    // The two byte thresholds: (code, measured, threshold, words around the size, option).
    let sizes = [
        (
            "lag",
            s.lag_bytes,
            limits.lag_bytes,
            ("lags", "behind the server"),
            "--lag-warn",
        ),
        (
            "retained_wal",
            s.retained_bytes,
            limits.retained_bytes,
            ("retains", "of WAL on the server"),
            "--retained-warn",
        ),
    ];
    for (code, measured, limit, (verb, rest), option) in sizes {
        if let Some(bytes) = measured.filter(|b| *b > limit) {
            out.push(warn(
                code,
                format!(
                    "replication slot \"{name}\" {verb} {} {rest} (threshold {}, {option})",
                    ui::size(bytes),
                    ui::size(limit)
                ),
            ));
        }
    }
}

/// The server's invalidation reason in words.
fn invalidation_cause(reason: &str) -> String {
    match reason {
        "idle_timeout" => "idle_timeout: inactive longer than idle_replication_slot_timeout".into(),
        "rows_removed" => "rows_removed: catalog rows it needs were removed".into(),
        "wal_level_insufficient" => "wal_level_insufficient: wal_level is below logical".into(),
        other => other.to_string(),
    }
}

fn dir_warnings(
    d: &DirFacts,
    limits: &StatusThresholds,
    now: OffsetDateTime,
    out: &mut Vec<Warning>,
) {
    let root = &d.path;
    let st = &d.streamer;
    match st.state {
        "not_running" => out.push(warn(
            "streamer_not_running",
            format!("no streamer is running for backup directory \"{root}\""),
        )),
        "stale" => out.push(warn(
            "streamer_stale",
            format!(
                "stale pidfile in \"{root}\": the streamer{} is gone without removing it",
                st.pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
            ),
        )),
        "unverified" => out.push(warn(
            "streamer_unverified",
            format!(
                "the pidfile in \"{root}\" is locked but does not check out: {}",
                st.detail.as_deref().unwrap_or("unknown reason")
            ),
        )),
        _ => {}
    }
    if let Some(fs) = d.filesystem.as_ref().filter(|fs| limits.free.is_low(fs)) {
        out.push(warn(
            "low_free_space",
            format!(
                "the file system of backup directory \"{root}\" has {} free of {} ({:.1}%, threshold {}, --free-warn)",
                ui::size(fs.available_bytes),
                ui::size(fs.size_bytes),
                fs.available_percent(),
                limits.free.describe()
            ),
        ));
    }
    for c in &d.chains {
        if let Some(v) = c.last_verification.as_ref().filter(|v| !v.intact) {
            out.push(critical(
                "verification_failed",
                format!(
                    "the last verification of chain {} ({}) found {} problem(s): {}",
                    c.id,
                    v.checked_at,
                    v.problems,
                    v.first_problem.as_deref().unwrap_or("")
                ),
                format!(
                    "Run pg_scribe --verify --backup-dir {root} --chain-id {} for the full report; restore from an intact chain.",
                    c.id
                ),
            ));
        }
    }
    for c in d.chains.iter().filter(|c| !c.complete) {
        out.push(warn(
            "incomplete_chain",
            format!(
                "chain {} is incomplete (no COMPLETE marker): a base backup still running, or a failed one to remove",
                c.id
            ),
        ));
    }
    let Some(active) = d.chains.iter().find(|c| c.active) else {
        out.push(warn(
            "no_complete_chain",
            format!("backup directory \"{root}\" holds no complete chain"),
        ));
        return;
    };
    if active.markers > 0 {
        let first = active
            .first_marker
            .as_ref()
            .map(|m| {
                format!(
                    "; the first in {} (xid {}, committed {}): {}",
                    m.file, m.marker.xid, m.marker.commit_time, m.marker.message
                )
            })
            .unwrap_or_default();
        out.push(critical(
            "unreplayable_marker",
            format!(
                "chain {} holds {} unreplayable marker(s) written since its base{first}",
                active.id, active.markers
            ),
            "A restore of this chain stops at that transaction. Remove the cause (e.g. give the table a primary key or REPLICA IDENTITY FULL), then take a new base with pg_scribe --new-chain so that restores can go past it.".into(),
        ));
    }
    // Only a running streamer with something written can be expected to have sealed a diff.
    let has_data = active.diff_count > 0 || active.active_sql_bytes.unwrap_or(0) > 0;
    if st.is_running() && has_data {
        let since = active.last_sealed_at.unwrap_or(active.created_at);
        let age = now - since;
        if age > limits.diff_age {
            out.push(warn(
                "diff_age",
                format!(
                    "no differential sealed in chain {} for {} (threshold {}, --diff-age-warn): is --rotate-diff scheduled?",
                    active.id,
                    crate::ui::duration_words(age.whole_seconds().max(0) as u64),
                    crate::ui::duration_words(limits.diff_age.as_secs())
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::facts::{ChainFacts, StreamerFacts};
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    fn healthy_slot() -> SlotFacts {
        let mut slot = super::super::fixtures::report().slot.unwrap();
        slot.lag_bytes = Some(16);
        slot
    }

    fn chain(id: &str, complete: bool, active: bool) -> ChainFacts {
        ChainFacts {
            id: id.into(),
            path: format!("/b/chain-{id}"),
            complete,
            active,
            streaming: active,
            created_at: datetime!(2024-01-01 00:00:00 UTC),
            slot: Some("s".into()),
            start_lsn: None,
            base_file: Some("base.sql".into()),
            base_bytes: Some(10),
            diff_count: 0,
            diff_bytes: 0,
            last_sealed_at: None,
            active_sql_bytes: Some(0),
            last_activity_at: None,
            total_bytes: 10,
            metadata_error: None,
            markers: 0,
            first_marker: None,
            last_verification: None,
        }
    }

    fn healthy_dir() -> DirFacts {
        DirFacts {
            path: "/b".into(),
            streamer: StreamerFacts {
                state: "running",
                pid: Some(7),
                started_at: None,
                detail: None,
            },
            active_chain: Some("20240101T000000Z".into()),
            chains: vec![chain("20240101T000000Z", true, true)],
            total_bytes: 10,
            filesystem: None,
        }
    }

    fn codes(w: &[Warning]) -> Vec<&'static str> {
        w.iter().map(|w| w.code).collect()
    }

    const NOW: OffsetDateTime = datetime!(2024-01-03 00:00:00 UTC);

    #[test]
    fn healthy_is_quiet() {
        let w = evaluate(
            Some(&healthy_slot()),
            Some(&healthy_dir()),
            &StatusThresholds::default(),
            NOW,
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn slot_rules() {
        let limits = StatusThresholds {
            lag_bytes: 15,
            retained_bytes: 512,
            ..Default::default()
        };
        let mut s = healthy_slot();
        s.active = false;
        s.wal_status = Some("unreserved".into());
        let w = evaluate(Some(&s), None, &limits, NOW);
        assert_eq!(codes(&w), ["wal_unreserved", "slot_inactive", "lag"]);
        assert_eq!(
            w[2].message,
            "replication slot \"s\" lags 16 B behind the server (threshold 15 B, --lag-warn)"
        );
        s.retained_bytes = Some(513);
        s.wal_status = Some("lost".into());
        s.plugin = Some("test_decoding".into());
        let w = evaluate(Some(&s), None, &limits, NOW);
        assert_eq!(
            codes(&w),
            [
                "slot_plugin",
                "wal_lost",
                "slot_inactive",
                "lag",
                "retained_wal"
            ]
        );
    }

    /// PostgreSQL 17 and 18 say why a slot was invalidated; 18 can invalidate an idle one.
    #[test]
    fn invalidation_reasons_and_idle_timeout() {
        let limits = StatusThresholds::default();
        let mut s = healthy_slot();
        s.active = false;
        s.inactive_since = Some("2024-01-01T00:00:00Z".into());
        s.idle_timeout_secs = Some(0);
        assert_eq!(
            codes(&evaluate(Some(&s), None, &limits, NOW)),
            ["slot_inactive"]
        );
        s.idle_timeout_secs = Some(86400);
        let w = evaluate(Some(&s), None, &limits, NOW);
        assert_eq!(codes(&w), ["slot_inactive", "idle_timeout"]);
        assert_eq!(
            w[1].message,
            "replication slot \"s\" is inactive (since 2024-01-01T00:00:00Z) and idle_replication_slot_timeout is 86400 s: the server invalidates it at the first checkpoint after that long"
        );
        s.wal_status = Some("lost".into());
        s.invalidation_reason = Some("idle_timeout".into());
        let w = evaluate(Some(&s), None, &limits, NOW);
        assert_eq!(codes(&w), ["slot_invalidated", "slot_inactive"]);
        assert_eq!(
            w[0].message,
            "replication slot \"s\" has been invalidated (idle_timeout: inactive longer than idle_replication_slot_timeout): streaming can never resume from it"
        );
        assert_eq!(w[0].severity, "critical");
        assert_eq!(exit_code(&w), 3);
        s.invalidation_reason = Some("wal_removed".into());
        let w = evaluate(Some(&s), None, &limits, NOW);
        assert_eq!(codes(&w), ["wal_lost", "slot_inactive"]);
        assert_eq!(exit_code(&w), 3);
    }

    #[test]
    fn directory_rules() {
        let limits = StatusThresholds::default();
        let mut d = healthy_dir();
        d.streamer.state = "stale";
        d.streamer.pid = Some(99);
        d.chains.push(chain("20240102T000000Z", false, false));
        let w = evaluate(None, Some(&d), &limits, NOW);
        assert_eq!(codes(&w), ["streamer_stale", "incomplete_chain"]);
        assert!(w[0].message.contains("(PID 99)"), "{}", w[0].message);

        d.filesystem = Some(crate::storage::space::FsSpace {
            size_bytes: 1000,
            available_bytes: 99,
        });
        let w = evaluate(None, Some(&d), &limits, NOW);
        assert_eq!(
            codes(&w),
            ["streamer_stale", "low_free_space", "incomplete_chain"]
        );
        assert!(
            w[1].message
                .contains("99 B free of 1000 B (9.9%, threshold 10%"),
            "{}",
            w[1].message
        );
        d.filesystem = None;

        d.streamer.state = "not_running";
        d.chains.clear();
        let w = evaluate(None, Some(&d), &limits, NOW);
        assert_eq!(codes(&w), ["streamer_not_running", "no_complete_chain"]);
    }

    #[test]
    fn diff_age_needs_a_running_streamer_and_data() {
        let limits = StatusThresholds {
            diff_age: Duration::from_secs(86400),
            ..Default::default()
        };
        let mut d = healthy_dir();
        // Two days old, but nothing written: nothing to seal.
        assert!(evaluate(None, Some(&d), &limits, NOW).is_empty());
        d.chains[0].active_sql_bytes = Some(100);
        let w = evaluate(None, Some(&d), &limits, NOW);
        assert_eq!(codes(&w), ["diff_age"]);
        assert!(
            w[0].message.contains("for 2 days (threshold 1 day"),
            "{}",
            w[0].message
        );
        // A recent seal clears it.
        d.chains[0].last_sealed_at = Some(datetime!(2024-01-02 12:00:00 UTC));
        assert!(evaluate(None, Some(&d), &limits, NOW).is_empty());
        // No streamer: the streamer warning says it all.
        d.chains[0].last_sealed_at = None;
        d.streamer.state = "not_running";
        assert_eq!(
            codes(&evaluate(None, Some(&d), &limits, NOW)),
            ["streamer_not_running"]
        );
    }
}
