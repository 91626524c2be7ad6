//! A healthy report built by hand, for the renderers' unit tests (no server, no directory).

use time::macros::datetime;

use super::facts::{ChainFacts, DirFacts, ServerFacts, SlotFacts, SlotNameSource, StreamerFacts};
use super::warnings::Warning;
use super::{Report, ThresholdFacts};
use crate::storage::space::FsSpace;

pub fn report() -> Report {
    Report {
        format: super::FORMAT_VERSION,
        pg_scribe_version: "test",
        checked_at: datetime!(2024-01-02 00:00:00 UTC),
        status: "ok",
        exit_code: 0,
        offline: false,
        server: Some(ServerFacts {
            connection: "server on socket \"/tmp/.s.PGSQL.5432\"".into(),
            database: "app".into(),
            server_version: "15".into(),
            server_version_num: 150000,
            in_recovery: false,
            current_lsn: Some("0/300".parse().unwrap()),
            max_slot_wal_keep_size_bytes: None,
        }),
        slot: Some(SlotFacts {
            name: "s".into(),
            name_source: SlotNameSource::Option,
            plugin: Some("wal2sql".into()),
            slot_type: "logical".into(),
            database: Some("app".into()),
            temporary: false,
            active: true,
            active_pid: Some(42),
            restart_lsn: Some("0/100".parse().unwrap()),
            confirmed_flush_lsn: Some("0/200".parse().unwrap()),
            lag_bytes: Some(256),
            retained_bytes: Some(512),
            wal_status: Some("reserved".into()),
            safe_wal_size_bytes: None,
            invalidation_reason: None,
            inactive_since: None,
            idle_timeout_secs: None,
        }),
        backup_dir: Some(DirFacts {
            path: "/b/we\"ird\\dir".into(),
            streamer: StreamerFacts {
                state: "running",
                pid: Some(7),
                started_at: None,
                detail: None,
            },
            active_chain: Some("20240101T000000Z".into()),
            chains: vec![ChainFacts {
                id: "20240101T000000Z".into(),
                path: "/b/chain-20240101T000000Z".into(),
                complete: true,
                active: true,
                streaming: true,
                created_at: datetime!(2024-01-01 00:00:00 UTC),
                slot: Some("s".into()),
                start_lsn: None,
                base_file: Some("base.sql".into()),
                base_bytes: Some(10),
                diff_count: 1,
                diff_bytes: 5,
                last_sealed_at: Some(datetime!(2024-01-01 23:00:00 UTC)),
                active_sql_bytes: Some(0),
                last_activity_at: None,
                total_bytes: 15,
                metadata_error: None,
                markers: 0,
                first_marker: None,
                last_verification: None,
            }],
            total_bytes: 15,
            filesystem: Some(FsSpace {
                size_bytes: 1000,
                available_bytes: 400,
            }),
        }),
        upload: None,
        thresholds: ThresholdFacts {
            lag_warn_bytes: 1 << 30,
            retained_warn_bytes: 10 << 30,
            diff_age_warn_seconds: 7 * 86400,
            free_warn: "10%".into(),
            free_warn_bytes: Some(100),
        },
        warnings: Vec::new(),
    }
}

pub fn warning(code: &'static str, message: &str) -> Warning {
    Warning {
        code,
        severity: "warning",
        message: message.into(),
        hint: None,
    }
}
