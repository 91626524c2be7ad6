//! `--status --format=prometheus`: the report as Prometheus' text exposition format, for
//! node_exporter's textfile collector (doc/operations.md lists the metrics and alert rules).
//!
//! Every sample carries the labels `slot` and `backup_dir` (empty when not checked), so series
//! of several backups on one host never collide. A failed check still renders what it could
//! see, with `pg_scribe_status_success 0`: a monitor must see a broken backup as broken, not
//! as stale numbers from the last good run.
//!
//! Facts that `--status` does not gather simply produce no sample; each new fact is one
//! [`Out::gauge`] call here. Per chain: `pg_scribe_unreplayable_markers{chain}` (changes a
//! replay cannot apply: a restore stops at the first) and, once `--verify` ran,
//! `pg_scribe_last_verification_success{chain}` / `…_timestamp_seconds{chain}`.

use std::fmt::Write;

use super::Report;
use crate::error::Error;

/// Label values: backslash, double quote and newline escaped, as the format requires.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out {
    text: String,
    /// `slot="…",backup_dir="…"`, already escaped.
    labels: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, extra: &[(&str, &str)], value: f64) {
        let mut labels = self.labels.clone();
        for (k, v) in extra {
            let _ = write!(labels, ",{k}=\"{}\"", escape_label(v));
        }
        let _ = writeln!(self.text, "{name}{{{labels}}} {}", number(value));
    }

    /// A gauge with one unlabelled (beyond the common labels) sample.
    fn gauge(&mut self, name: &str, help: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.family(name, "gauge", help);
            self.sample(name, &[], v);
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

pub fn render(r: &Report, failure: Option<&Error>, slot_name: &str, dir_path: &str) -> String {
    let mut o = Out {
        text: String::new(),
        labels: format!(
            "slot=\"{}\",backup_dir=\"{}\"",
            escape_label(slot_name),
            escape_label(dir_path)
        ),
    };
    o.gauge(
        "pg_scribe_status_success",
        "Whether pg_scribe --status could check everything it was asked to (1) or failed (0).",
        Some(flag(failure.is_none())),
    );
    o.gauge(
        "pg_scribe_status_exit_code",
        "Exit code of the check: 0 healthy, 10 warnings, 2 connection, 3 slot, 4 backup error.",
        Some(f64::from(failure.map_or(r.exit_code, |e| e.exit_code()))),
    );
    o.gauge(
        "pg_scribe_status_warnings",
        "Number of warnings pg_scribe --status reported.",
        Some(r.warnings.len() as f64),
    );
    if !r.warnings.is_empty() {
        o.family(
            "pg_scribe_status_warning",
            "gauge",
            "A warning pg_scribe --status reported, by its stable code (1 while it holds).",
        );
        let mut codes: Vec<&str> = r.warnings.iter().map(|w| w.code).collect();
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            o.sample("pg_scribe_status_warning", &[("code", code)], 1.0);
        }
    }
    o.gauge(
        "pg_scribe_checked_timestamp_seconds",
        "When the check ran, as a Unix time.",
        Some(r.checked_at.unix_timestamp() as f64),
    );

    if !r.offline {
        let slot_missing = failure.is_some_and(|e| e.exit_code() == 3);
        let slot_exists = match (&r.slot, slot_missing) {
            (Some(_), _) => Some(1.0),
            (None, true) => Some(0.0),
            // The server was not reached: whether the slot exists is unknown.
            (None, false) => None,
        };
        o.gauge(
            "pg_scribe_slot_exists",
            "Whether the replication slot exists on the server.",
            slot_exists,
        );
    }
    if let Some(s) = &r.slot {
        o.gauge(
            "pg_scribe_slot_active",
            "Whether a consumer (the streamer) is connected to the slot.",
            Some(flag(s.active)),
        );
        o.gauge(
            "pg_scribe_slot_lag_bytes",
            "WAL bytes between the server's position and the slot's confirmed_flush_lsn.",
            s.lag_bytes.map(|v| v as f64),
        );
        o.gauge(
            "pg_scribe_slot_retained_wal_bytes",
            "WAL bytes the slot keeps on the server (server position minus restart_lsn).",
            s.retained_bytes.map(|v| v as f64),
        );
        o.gauge(
            "pg_scribe_slot_wal_lost",
            "Whether the slot lost WAL it needs (wal_status lost): the backup cannot continue.",
            s.wal_status.as_deref().map(|w| flag(w == "lost")),
        );
        o.gauge(
            "pg_scribe_durable_lsn",
            "Position up to which the backup is durable (the slot's confirmed_flush_lsn), as a number.",
            s.confirmed_flush_lsn.map(|l| l.0 as f64),
        );
    }
    if let Some(server) = &r.server {
        o.gauge(
            "pg_scribe_server_lsn",
            "The server's current WAL position, as a number.",
            server.current_lsn.map(|l| l.0 as f64),
        );
    }

    if let Some(u) = &r.upload {
        o.gauge(
            "pg_scribe_upload_backlog_files",
            "Sealed files and bases in the spool not yet uploaded to object storage.",
            Some(u.backlog_files as f64),
        );
        o.gauge(
            "pg_scribe_upload_backlog_bytes",
            "Bytes of the files waiting in the spool for upload.",
            Some(u.backlog_bytes as f64),
        );
        o.gauge(
            "pg_scribe_upload_backlog_oldest_age_seconds",
            "Seconds since the oldest file waiting for upload was written (no sample when none waits).",
            u.oldest_pending_at
                .map(|t| (r.checked_at - t).whole_seconds().max(0) as f64),
        );
        o.gauge(
            "pg_scribe_store_up",
            "Whether the object store could be listed.",
            Some(flag(u.store_error.is_none())),
        );
    }
    if let Some(d) = &r.backup_dir {
        o.gauge(
            "pg_scribe_streamer_up",
            "Whether a pg_scribe streamer is running for the backup directory.",
            Some(flag(d.streamer.is_running())),
        );
        o.family(
            "pg_scribe_chains",
            "gauge",
            "Chains in the backup directory, by state.",
        );
        let complete = d.chains.iter().filter(|c| c.complete).count();
        o.sample(
            "pg_scribe_chains",
            &[("state", "complete")],
            complete as f64,
        );
        o.sample(
            "pg_scribe_chains",
            &[("state", "incomplete")],
            (d.chains.len() - complete) as f64,
        );
        if let Some(active) = d.chains.iter().find(|c| c.active) {
            let since = active.last_sealed_at.unwrap_or(active.created_at);
            o.gauge(
                "pg_scribe_last_sealed_diff_age_seconds",
                "Seconds since a differential was last sealed in the active chain (since the chain's base when none was).",
                Some((r.checked_at - since).whole_seconds().max(0) as f64),
            );
            o.gauge(
                "pg_scribe_active_chain_diffs",
                "Sealed differentials in the active chain.",
                Some(active.diff_count as f64),
            );
        }
        o.gauge(
            "pg_scribe_backup_bytes",
            "Bytes of every file of every chain.",
            Some(d.total_bytes as f64),
        );
        if !d.chains.is_empty() {
            o.family(
                "pg_scribe_chain_bytes",
                "gauge",
                "Bytes of one chain's files.",
            );
            for c in &d.chains {
                o.sample(
                    "pg_scribe_chain_bytes",
                    &[("chain", &c.id)],
                    c.total_bytes as f64,
                );
            }
        }
        let complete: Vec<_> = d.chains.iter().filter(|c| c.complete).collect();
        if !complete.is_empty() {
            o.family(
                "pg_scribe_unreplayable_markers",
                "gauge",
                "Changes in a chain that a replay cannot apply (a restore stops at the first).",
            );
            for c in &complete {
                o.sample(
                    "pg_scribe_unreplayable_markers",
                    &[("chain", &c.id)],
                    c.markers as f64,
                );
            }
        }
        let verified: Vec<_> = d
            .chains
            .iter()
            .filter_map(|c| c.last_verification.as_ref().map(|v| (c, v)))
            .collect();
        if !verified.is_empty() {
            o.family(
                "pg_scribe_last_verification_success",
                "gauge",
                "Whether the last pg_scribe --verify found the chain intact (1) or damaged (0).",
            );
            for (c, v) in &verified {
                o.sample(
                    "pg_scribe_last_verification_success",
                    &[("chain", &c.id)],
                    flag(v.intact),
                );
            }
            o.family(
                "pg_scribe_last_verification_timestamp_seconds",
                "gauge",
                "When pg_scribe --verify last checked the chain, as a Unix time.",
            );
            for (c, v) in &verified {
                let at = time::OffsetDateTime::parse(
                    &v.checked_at,
                    &time::format_description::well_known::Rfc3339,
                );
                if let Ok(at) = at {
                    o.sample(
                        "pg_scribe_last_verification_timestamp_seconds",
                        &[("chain", &c.id)],
                        at.unix_timestamp() as f64,
                    );
                }
            }
        }
        if let Some(fs) = &d.filesystem {
            o.gauge(
                "pg_scribe_filesystem_avail_bytes",
                "Bytes an unprivileged writer can still use on the backup directory's file system.",
                Some(fs.available_bytes as f64),
            );
            o.gauge(
                "pg_scribe_filesystem_size_bytes",
                "Size of the backup directory's file system in bytes.",
                Some(fs.size_bytes as f64),
            );
        }
    }
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_has_the_common_labels_escaped() {
        let r = super::super::fixtures::report();
        let dir = r.backup_dir.as_ref().unwrap().path.clone();
        let text = render(&r, None, "s", &dir);
        let labels = "slot=\"s\",backup_dir=\"/b/we\\\"ird\\\\dir\"";
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains(labels), "{line}");
        }
        assert!(
            text.contains("\npg_scribe_last_sealed_diff_age_seconds{"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pg_scribe_durable_lsn{{{labels}}} 512\n")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "pg_scribe_chain_bytes{{{labels},chain=\"20240101T000000Z\"}} 15\n"
        )));
        // A failed check: success 0, the error's exit code, no slot samples.
        let mut r = r;
        r.slot = None;
        r.server = None;
        let err = Error::slot("gone");
        let text = render(&r, Some(&err), "s", &dir);
        assert!(text.contains(&format!("pg_scribe_status_success{{{labels}}} 0\n")));
        assert!(text.contains(&format!("pg_scribe_status_exit_code{{{labels}}} 3\n")));
        assert!(text.contains(&format!("pg_scribe_slot_exists{{{labels}}} 0\n")));
        assert!(!text.contains("pg_scribe_slot_lag_bytes"));
    }

    #[test]
    fn markers_and_verification_per_chain() {
        let mut r = super::super::fixtures::report();
        let dir = r.backup_dir.as_ref().unwrap().path.clone();
        let chain = &mut r.backup_dir.as_mut().unwrap().chains[0];
        chain.markers = 2;
        chain.last_verification = Some(super::super::facts::LastVerification {
            checked_at: "2024-01-01T12:00:00Z".into(),
            intact: false,
            problems: 1,
            first_problem: Some("x".into()),
        });
        let text = render(&r, None, "s", &dir);
        let c = "chain=\"20240101T000000Z\"";
        assert!(text.contains(&format!(",{c}}} 2\n")), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("pg_scribe_last_verification_success{")
                    && l.ends_with(&format!("{c}}} 0"))),
            "{text}"
        );
        assert!(text.contains(&format!(",{c}}} 1704110400\n")), "{text}");
    }

    #[test]
    fn the_upload_backlog_of_an_object_store() {
        let mut r = super::super::fixtures::report();
        r.upload = Some(super::super::UploadFacts {
            url: "s3://b/app".into(),
            spool: "/spool".into(),
            backlog_files: 2,
            backlog_bytes: 4096,
            oldest_pending_at: Some(r.checked_at - time::Duration::minutes(20)),
            last_upload_at: None,
            last_error: Some("connection refused".into()),
            store_error: None,
        });
        let text = render(&r, None, "s", "s3://b/app");
        for sample in [
            "pg_scribe_upload_backlog_files{slot=\"s\",backup_dir=\"s3://b/app\"} 2",
            "pg_scribe_upload_backlog_bytes{slot=\"s\",backup_dir=\"s3://b/app\"} 4096",
            "pg_scribe_upload_backlog_oldest_age_seconds{slot=\"s\",backup_dir=\"s3://b/app\"} 1200",
            "pg_scribe_store_up{slot=\"s\",backup_dir=\"s3://b/app\"} 1",
        ] {
            assert!(text.contains(sample), "{sample}\n{text}");
        }
        let mut found = Vec::new();
        super::super::upload_warnings(r.upload.as_ref().unwrap(), r.checked_at, &mut found);
        let codes: Vec<_> = found.iter().map(|w| w.code).collect();
        assert_eq!(codes, ["upload_backlog", "upload_failing"]);
        let text = super::super::render::text(&r);
        assert!(text.contains("Upload backlog: 2 file(s), 4.0 kB"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.5), "0.5");
    }
}
