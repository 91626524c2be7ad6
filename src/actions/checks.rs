//! Phase 1 of `--init`: is this server and database fit to be backed up by pg_scribe? Each check
//! is a query plus a verdict; a failed critical check carries the exact command that fixes it.
//! Warnings (coverage gaps, risky settings) never block.

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::quote;
use crate::pg::session::query_error;
use crate::ui;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Blocks `--init` unless `--force`; `fix` is what to run.
    Fail {
        fix: String,
    },
    /// Informational: pg_scribe works, but something is not covered or is risky.
    Warn {
        advice: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub summary: String,
    pub verdict: Verdict,
}

impl Check {
    fn pass(summary: impl Into<String>) -> Check {
        Check {
            summary: summary.into(),
            verdict: Verdict::Pass,
        }
    }
    fn fail(summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            summary: summary.into(),
            verdict: Verdict::Fail { fix: fix.into() },
        }
    }
    fn warn(summary: impl Into<String>, advice: impl Into<String>) -> Check {
        Check {
            summary: summary.into(),
            verdict: Verdict::Warn {
                advice: advice.into(),
            },
        }
    }
}

async fn text(client: &Client, sql: &str) -> Result<String> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))?;
    Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
}

async fn rows(client: &Client, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
    client
        .query(sql, &[])
        .await
        .map_err(|e| query_error(sql, &e))
}

/// A list setting's value (`a, "b"`) with `lib` appended, as the literals of an ALTER SYSTEM
/// or ALTER DATABASE ... SET: `'a', 'b', 'wal2sql'`.
fn list_with(setting: &str, lib: &str) -> String {
    let mut items: Vec<String> = setting
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !items.iter().any(|i| i == lib) {
        items.push(lib.to_string());
    }
    items
        .iter()
        .map(|i| quote::literal(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run every check against the connected database, critical ones first.
pub(crate) async fn run_all(client: &Client) -> Result<Vec<Check>> {
    let mut checks = Vec::new();

    let wal_level = text(client, "SELECT current_setting('wal_level')").await?;
    checks.push(if wal_level == "logical" {
        Check::pass("wal_level = logical")
    } else {
        Check::fail(
            format!("wal_level = {wal_level} (must be logical)"),
            "ALTER SYSTEM SET wal_level = logical;  -- then restart the server",
        )
    });

    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*)::int FROM pg_replication_slots),
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'walsender')",
            &[],
        )
        .await
        .map_err(|e| query_error("slot and wal sender counts", &e))?;
    let (max_slots, used_slots, max_senders, used_senders): (i32, i32, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    checks.push(if max_slots > used_slots {
        Check::pass(format!(
            "max_replication_slots = {max_slots} ({used_slots} in use)"
        ))
    } else {
        Check::fail(
            format!("max_replication_slots = {max_slots} ({used_slots} in use, none free)"),
            format!(
                "ALTER SYSTEM SET max_replication_slots = {};  -- then restart the server",
                used_slots + 1
            ),
        )
    });
    checks.push(if max_senders > used_senders {
        Check::pass(format!(
            "max_wal_senders = {max_senders} ({used_senders} in use)"
        ))
    } else {
        Check::fail(
            format!("max_wal_senders = {max_senders} ({used_senders} in use, none free)"),
            format!(
                "ALTER SYSTEM SET max_wal_senders = {};  -- then restart the server",
                used_senders + 1
            ),
        )
    });

    let plugins = rows(
        client,
        "SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'",
    )
    .await?;
    if let Some(row) = plugins.first() {
        let setting: String = row.get(0);
        let list: Vec<String> = setting
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        checks.push(if list.iter().any(|p| p == "wal2sql") {
            Check::pass("output_plugin_libraries lists wal2sql")
        } else {
            Check::fail(
                format!("output_plugin_libraries = '{setting}' does not list wal2sql"),
                format!(
                    "ALTER SYSTEM SET output_plugin_libraries = {};  SELECT pg_reload_conf();",
                    list_with(&setting, "wal2sql")
                ),
            )
        });
    }

    let available = rows(
        client,
        "SELECT coalesce(installed_version, '') FROM pg_available_extensions WHERE name = 'wal2sql'",
    )
    .await?;
    let installed = available
        .first()
        .map(|r| r.get::<_, String>(0))
        .filter(|v| !v.is_empty());
    checks.push(match (available.is_empty(), &installed) {
        (true, _) => Check::fail(
            "the wal2sql extension is not available on the server",
            "make -C wal2sql install  -- on the database server, from the pg_scribe sources",
        ),
        (false, Some(version)) => {
            Check::pass(format!("wal2sql {version} is installed in this database"))
        }
        (false, None) => {
            Check::pass("wal2sql is available (CREATE EXTENSION will run during setup)")
        }
    });

    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_error("role attributes", &e))?;
    let (role, superuser, replication): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    checks.push(if superuser {
        Check::pass(format!("role \"{role}\" is a superuser"))
    } else {
        Check::fail(
            format!("role \"{role}\" is not a superuser{}", if replication { "" } else { " and lacks REPLICATION" }),
            format!(
                "ALTER ROLE {} SUPERUSER;  -- setup creates event triggers, which needs a superuser",
                quote::ident_for_display(&role)
            ),
        )
    });

    // Tables whose UPDATE/DELETE could not be replayed: no primary key and replica identity
    // DEFAULT, identity NOTHING, or USING INDEX on an index that no longer exists.
    let offenders = rows(
        client,
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND c.relpersistence = 'p'
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
            AND (c.relreplident = 'n'
                 OR (c.relreplident = 'd' AND NOT EXISTS
                        (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                 OR (c.relreplident = 'i' AND NOT EXISTS
                        (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
          ORDER BY 1",
    )
    .await?;
    let offenders: Vec<String> = offenders.iter().map(|r| r.get(0)).collect();
    checks.push(if offenders.is_empty() {
        Check::pass("every table has a usable replica identity")
    } else {
        let fixes: Vec<String> = offenders
            .iter()
            .map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY FULL;"))
            .collect();
        Check::fail(
            format!(
                "{} without a usable replica identity: {}",
                ui::counted(offenders.len(), "table"),
                offenders.join(", ")
            ),
            fixes.join("\n"),
        )
    });

    // Warnings from here on.
    let unlogged = rows(
        client,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'u' ORDER BY 1",
    )
    .await?;
    if !unlogged.is_empty() {
        let names: Vec<String> = unlogged.iter().map(|r| r.get(0)).collect();
        checks.push(Check::warn(
            format!(
                "{} unlogged table(s) will not be backed up incrementally: {}",
                names.len(),
                names.join(", ")
            ),
            "Their contents are in the base backup only; ALTER TABLE … SET LOGGED to include them.",
        ));
    }

    let large_objects: i64 = client
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await
        .map_err(|e| query_error("large objects", &e))?
        .get(0);
    if large_objects > 0 {
        checks.push(Check::warn(
            format!("{large_objects} large object(s) exist; changes to large objects are not backed up incrementally"),
            "They are in each base backup; take --new-chain after changing them, or store the data in bytea columns.",
        ));
    }

    let preload = text(
        client,
        "SELECT concat_ws(',', current_setting('shared_preload_libraries'),
                (SELECT string_agg(s, ',') FROM pg_db_role_setting r, unnest(r.setconfig) s
                  WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND r.setrole = 0 AND s LIKE 'session_preload_libraries=%'))",
    )
    .await?;
    if !preload
        .split([',', '=', ' '])
        .any(|lib| lib.trim_matches('"') == "wal2sql")
    {
        // The fix keeps what is preloaded already: replacing the list would unload another
        // extension (pg_stat_statements, auditing) at the next restart.
        let shared = text(client, "SELECT current_setting('shared_preload_libraries')").await?;
        let session = text(
            client,
            "SELECT coalesce((SELECT substr(s, length('session_preload_libraries=') + 1)
                                FROM pg_db_role_setting r, unnest(r.setconfig) s
                               WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                                 AND r.setrole = 0 AND s LIKE 'session_preload_libraries=%'), '')",
        )
        .await?;
        checks.push(Check::warn(
            "wal2sql is not preloaded: DDL sent in multi-statement strings, DO blocks or functions will stop a restore",
            format!(
                "ALTER SYSTEM SET shared_preload_libraries = {};  -- then restart; or: ALTER DATABASE {} SET session_preload_libraries = {};",
                list_with(&shared, "wal2sql"),
                quote::ident_for_display(&text(client, "SELECT current_database()::text").await?),
                list_with(&session, "wal2sql"),
            ),
        ));
    }

    let keep: i64 = client
        .query_one(
            "SELECT CASE WHEN current_setting('max_slot_wal_keep_size') = '-1' THEN -1
                    ELSE pg_size_bytes(current_setting('max_slot_wal_keep_size')) END",
            &[],
        )
        .await
        .map_err(|e| query_error("max_slot_wal_keep_size", &e))?
        .get(0);
    if keep < 0 {
        checks.push(Check::warn(
            "max_slot_wal_keep_size is unlimited: if streaming stops, the slot retains WAL until the disk fills",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB';  SELECT pg_reload_conf();  -- size it to your disk, and monitor with pg_scribe --status",
        ));
    } else if keep < 1024 * 1024 * 1024 {
        checks.push(Check::warn(
            format!("max_slot_wal_keep_size is small ({} MB): a short streamer outage can invalidate the slot", keep / (1024 * 1024)),
            "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB';  SELECT pg_reload_conf();",
        ));
    }

    // PostgreSQL 18 and later (NULL before): a slot nobody uses that long is invalidated.
    let idle = text(
        client,
        "SELECT coalesce(current_setting('idle_replication_slot_timeout', true), '0')",
    )
    .await?;
    if idle != "0" {
        checks.push(Check::warn(
            format!("idle_replication_slot_timeout = {idle}: a streamer outage that long invalidates the slot, and the backup needs a new chain"),
            "ALTER SYSTEM SET idle_replication_slot_timeout = 0;  SELECT pg_reload_conf();  -- or make sure the streamer is never stopped that long",
        ));
    }

    Ok(checks)
}

/// Print the checks as a pass/fail list (README.md, "Set up"); return how many critical checks
/// failed.
pub fn report(checks: &[Check]) -> usize {
    let mut failed = 0;
    for check in checks
        .iter()
        .filter(|c| !matches!(c.verdict, Verdict::Warn { .. }))
    {
        match &check.verdict {
            Verdict::Pass => ui::done(&check.summary),
            Verdict::Fail { fix } => {
                failed += 1;
                ui::failed(&check.summary);
                for line in fix.lines() {
                    ui::say(&format!("    fix: {line}"));
                }
            }
            Verdict::Warn { .. } => {}
        }
    }
    let warnings: Vec<&Check> = checks
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Warn { .. }))
        .collect();
    if !warnings.is_empty() {
        ui::say("\nCoverage warnings:");
        for check in warnings {
            if let Verdict::Warn { advice } = &check.verdict {
                ui::say(&format!("! {}", check.summary));
                ui::say(&format!("    {advice}"));
            }
        }
    }
    failed
}

/// The error `--init` stops with when critical checks failed and `--force` was not given.
pub(crate) fn failed_error(failed: usize) -> Error {
    Error::validation(format!(
        "validation failed: {} found",
        ui::counted(failed, "critical problem")
    ))
    .with_hint("Fix the problems listed above, or use --force to initialize anyway (dangerous).")
}

#[cfg(test)]
mod tests {
    use super::list_with;

    #[test]
    fn preload_fixes_keep_what_is_there() {
        assert_eq!(list_with("", "wal2sql"), "'wal2sql'");
        assert_eq!(
            list_with("pg_stat_statements, \"auto_explain\"", "wal2sql"),
            "'pg_stat_statements', 'auto_explain', 'wal2sql'"
        );
        assert_eq!(list_with("wal2sql,x", "wal2sql"), "'wal2sql', 'x'");
        assert_eq!(list_with("it's", "wal2sql"), "'it''s', 'wal2sql'");
    }
}
