//! The human report, laid out as doc/status.md shows it: a slot section, then the backup directory
//! with one paragraph per chain, then the total. Pure text from facts, tested without a server.

use std::fmt::Write;

use time::OffsetDateTime;

use super::Report;
use super::facts::{ChainFacts, DirFacts, ServerFacts, SlotFacts};
use crate::storage::backup_dir::{BASE_DIR_NAME, CHAIN_PREFIX};
use crate::ui;

/// `2 minutes ago`; a time in the future (clock skew) is `just now`.
pub fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - t).whole_seconds();
    if secs <= 0 {
        "just now".into()
    } else {
        format!("{} ago", ui::duration_words(secs as u64))
    }
}

/// `2023-12-15 12:00:00 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

fn opt_lsn(l: Option<crate::lsn::Lsn>) -> String {
    l.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
}

/// `442.9 kB (453528 bytes)`; small sizes are exact already (`288 B`).
fn exact_size(bytes: u64) -> String {
    if bytes < 1024 {
        ui::size(bytes)
    } else {
        format!("{} ({bytes} bytes)", ui::size(bytes))
    }
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    match (&r.server, &r.slot) {
        (Some(server), Some(slot)) => slot_section(&mut out, server, slot),
        _ => {
            let _ = writeln!(
                out,
                "Replication Slot: not checked (offline: no server given with -d/-h/-p/-U or PGHOST/PGDATABASE/PGPORT/PGSERVICE)"
            );
        }
    }
    if let Some(dir) = &r.backup_dir {
        out.push('\n');
        dir_section(&mut out, dir, r.checked_at);
    }
    if let Some(u) = &r.upload {
        out.push('\n');
        upload_section(&mut out, u);
    }
    out
}

fn slot_section(out: &mut String, server: &ServerFacts, s: &SlotFacts) {
    let _ = writeln!(out, "Replication Slot: {}", s.name);
    let kind = match (&s.plugin, &s.database) {
        (Some(p), Some(db)) => format!("{p} ({}, database {db})", s.slot_type),
        (Some(p), None) => format!("{p} ({})", s.slot_type),
        (None, _) => format!("none ({})", s.slot_type),
    };
    let _ = writeln!(out, "  Plugin: {kind}");
    let state = match (s.active, s.active_pid) {
        (true, Some(pid)) => format!("active (PID {pid})"),
        (true, None) => "active".into(),
        (false, _) => "inactive".into(),
    };
    let _ = writeln!(out, "  Status: {state}");
    let current_what = if server.in_recovery {
        "Current LSN (standby, received)"
    } else {
        "Current LSN"
    };
    let _ = writeln!(out, "  {current_what}: {}", opt_lsn(server.current_lsn));
    let _ = writeln!(out, "  Confirmed LSN: {}", opt_lsn(s.confirmed_flush_lsn));
    let _ = writeln!(out, "  Restart LSN: {}", opt_lsn(s.restart_lsn));
    if let Some(lag) = s.lag_bytes {
        let _ = writeln!(out, "  Lag: {}", exact_size(lag));
    }
    if let Some(kept) = s.retained_bytes {
        let _ = writeln!(out, "  WAL retained: {}", exact_size(kept));
    }
    let safe = match s.safe_wal_size_bytes {
        Some(b) if b >= 0 => ui::size(b as u64),
        Some(b) => format!("-{}", ui::size(b.unsigned_abs())),
        None => "unlimited".into(),
    };
    let _ = writeln!(
        out,
        "  WAL status: {} (safe_wal_size: {safe})",
        s.wal_status.as_deref().unwrap_or("-")
    );
    if let Some(reason) = &s.invalidation_reason {
        let _ = writeln!(out, "  Invalidated: {reason}");
    }
    if let (false, Some(since)) = (s.active, &s.inactive_since) {
        let _ = writeln!(out, "  Inactive since: {since}");
    }
    if let Some(secs) = s.idle_timeout_secs.filter(|t| *t > 0) {
        let _ = writeln!(out, "  idle_replication_slot_timeout: {secs} s");
    }
    let keep = server
        .max_slot_wal_keep_size_bytes
        .map(ui::size)
        .unwrap_or_else(|| "unlimited (-1)".into());
    let _ = writeln!(out, "  max_slot_wal_keep_size: {keep}");
}

fn dir_section(out: &mut String, d: &DirFacts, now: OffsetDateTime) {
    let _ = writeln!(out, "Backup Directory: {}", d.path);
    let st = &d.streamer;
    let pid = st.pid.map(|p| format!("PID {p}")).unwrap_or_default();
    let since = st
        .started_at
        .map(|t| format!(", since {}", when(t)))
        .unwrap_or_default();
    let streamer = match st.state {
        "running" => format!("running ({pid}{since})"),
        "not_running" => "not running".into(),
        "stale" if st.pid.is_some() => format!("not running (stale pidfile of {pid})"),
        "stale" => "not running (stale pidfile)".into(),
        _ => format!(
            "unknown: pidfile locked but {}",
            st.detail.as_deref().unwrap_or("unverified")
        ),
    };
    let _ = writeln!(out, "  Streamer: {streamer}");
    for c in &d.chains {
        out.push('\n');
        chain_paragraph(out, c, st.is_running(), now);
    }
    if d.chains.is_empty() {
        let _ = writeln!(out, "\nNo chains.");
    }
    let _ = writeln!(out, "\nTotal backup size: {}", ui::size(d.total_bytes));
    if let Some(fs) = &d.filesystem {
        let _ = writeln!(
            out,
            "Free space: {} of {} ({:.1}%)",
            ui::size(fs.available_bytes),
            ui::size(fs.size_bytes),
            fs.available_percent()
        );
    }
}

fn chain_paragraph(out: &mut String, c: &ChainFacts, running: bool, now: OffsetDateTime) {
    let tag = if !c.complete {
        " (INCOMPLETE)"
    } else if c.active && running {
        " (ACTIVE - streaming)"
    } else if c.active {
        " (ACTIVE - not streaming)"
    } else {
        ""
    };
    let _ = writeln!(out, "{CHAIN_PREFIX}{}{tag}", c.id);
    let base = match c.base_bytes {
        // A directory-format base (--jobs) says so; a plain one keeps the usual line.
        Some(b) if c.base_file.as_deref() == Some(BASE_DIR_NAME) => {
            format!("{} ({}, directory format)", when(c.created_at), ui::size(b))
        }
        Some(b) => format!("{} ({})", when(c.created_at), ui::size(b)),
        None => format!("{} (no base file)", when(c.created_at)),
    };
    let _ = writeln!(out, "  Base: {base}");
    let _ = writeln!(
        out,
        "  Differentials: {} ({} total)",
        ui::counted(c.diff_count, "file"),
        ui::size(c.diff_bytes)
    );
    if let Some(b) = c.active_sql_bytes {
        let _ = writeln!(out, "  Active differential: active.sql ({})", ui::size(b));
    }
    if let Some(t) = c.last_sealed_at {
        let _ = writeln!(out, "  Last sealed: {}", ago(t, now));
    }
    if let Some(t) = c.last_activity_at {
        let _ = writeln!(out, "  Last activity: {}", ago(t, now));
    }
    let _ = writeln!(out, "  Disk usage: {}", ui::size(c.total_bytes));
    if c.markers > 0 {
        let _ = writeln!(
            out,
            "  Unreplayable markers: {} (a restore stops at the first)",
            c.markers
        );
    }
    match &c.last_verification {
        Some(v) if v.intact => {
            let _ = writeln!(out, "  Last verification: intact ({})", v.checked_at);
        }
        Some(v) => {
            let _ = writeln!(
                out,
                "  Last verification: DAMAGED ({}): {}",
                v.checked_at,
                v.first_problem.as_deref().unwrap_or("")
            );
        }
        None if c.complete => {
            let _ = writeln!(out, "  Last verification: never (pg_scribe --verify)");
        }
        None => {}
    }
}

fn upload_section(out: &mut String, u: &super::UploadFacts) {
    let _ = writeln!(out, "Object storage: {}", u.url);
    let _ = writeln!(out, "  Spool: {}", u.spool);
    if u.backlog_files == 0 {
        let _ = writeln!(out, "  Upload backlog: none");
    } else {
        let _ = writeln!(
            out,
            "  Upload backlog: {} file(s), {}, oldest written {}",
            u.backlog_files,
            ui::size(u.backlog_bytes),
            u.oldest_pending_at.map_or("-".into(), when)
        );
    }
    if let Some(t) = u.last_upload_at {
        let _ = writeln!(out, "  Last upload: {}", when(t));
    }
    if let Some(e) = &u.last_error {
        let _ = writeln!(out, "  Last upload error: {e}");
    }
    if let Some(e) = &u.store_error {
        let _ = writeln!(out, "  Store: not reachable: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ages_and_times_read_like_speech() {
        let now = datetime!(2024-01-01 12:02:00 UTC);
        assert_eq!(
            ago(datetime!(2024-01-01 12:00:00 UTC), now),
            "2 minutes ago"
        );
        assert_eq!(ago(datetime!(2024-01-01 12:05:00 UTC), now), "just now");
        assert_eq!(
            when(datetime!(2023-12-15 13:00:00 +01:00)),
            "2023-12-15 12:00:00 UTC"
        );
    }
}
