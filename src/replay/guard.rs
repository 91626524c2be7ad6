//! Nothing fires twice. The replay session runs with `session_replication_role = replica`, which
//! silences ordinary triggers and rules, but those marked `ENABLE ALWAYS` or `ENABLE REPLICA`
//! still fire — and their effects are already in the stream. So, for the replay:
//!
//! - every user trigger and rule on a table in state `A`/`R` is recorded and disabled before the
//!   first diff, and put back to its recorded state at the end (also after a failure);
//! - around each run of DDL statements inside a transaction, the recorded ones are first put back
//!   to their intended state (so the DDL sees exactly the catalog the source had: `ALTER TABLE …
//!   DISABLE TRIGGER`, `ATTACH PARTITION` cloning triggers, `DROP TRIGGER` all act on the true
//!   state), and right after the DDL the catalog is read again: whatever is `A`/`R` now is the new
//!   intended state, and is disabled again before the next row change. No row change ever runs
//!   while one of them is enabled;
//! - user event triggers in state `A`/`R` are disabled for the whole replay (DDL is replayed)
//!   and put back at the end. Event-trigger commands are never in the stream, so their state
//!   cannot change during the replay. wal2sql's own event triggers stay: the session has
//!   `wal2sql.capture = off`.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::quote::ident as quote_ident;

/// A trigger or rule on a table, or an event trigger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// `(qualified quoted table, name)`.
    Trigger(String, String),
    Rule(String, String),
    EventTrigger(String),
}

impl Object {
    fn sql(&self, state: char) -> String {
        let action = match state {
            'A' => "ENABLE ALWAYS",
            'R' => "ENABLE REPLICA",
            'O' => "ENABLE",
            _ => "DISABLE",
        };
        match self {
            Object::Trigger(table, name) => format!(
                "ALTER TABLE ONLY {table} {action} TRIGGER {};",
                quote_ident(name)
            ),
            Object::Rule(table, name) => {
                format!(
                    "ALTER TABLE ONLY {table} {action} RULE {};",
                    quote_ident(name)
                )
            }
            Object::EventTrigger(name) => {
                format!("ALTER EVENT TRIGGER {} {action};", quote_ident(name))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Object::Trigger(t, n) => format!("trigger {} on {t}", quote_ident(n)),
            Object::Rule(t, n) => format!("rule {} on {t}", quote_ident(n)),
            Object::EventTrigger(n) => format!("event trigger {}", quote_ident(n)),
        }
    }
}

const TABLE_SCAN: &str = "\
SELECT 'T', format('%I.%I', n.nspname, c.relname), t.tgname::text, t.tgenabled::text
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND t.tgenabled IN ('A', 'R') AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'R', format('%I.%I', n.nspname, c.relname), r.rulename::text, r.ev_enabled::text
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE r.ev_enabled IN ('A', 'R') AND r.rulename <> '_RETURN' AND c.relkind IN ('r', 'p')";

const EVENT_SCAN: &str = "\
SELECT 'E', '', e.evtname::text, e.evtenabled::text
  FROM pg_catalog.pg_event_trigger e
 WHERE e.evtenabled IN ('A', 'R')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
                      AND d.objid = e.oid AND d.deptype = 'e')";

/// The recorded intended states (`'A'` or `'R'`) of everything currently disabled by us.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    tables: BTreeMap<Object, char>,
    events: BTreeMap<Object, char>,
}

async fn scan(
    client: &Client,
    sql: &str,
) -> std::result::Result<BTreeMap<Object, char>, tokio_postgres::Error> {
    let mut out = BTreeMap::new();
    for row in crate::pg::session::simple_rows(client, sql).await? {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let state = get(3).chars().next().unwrap_or('D');
        let object = match get(0).as_str() {
            "T" => Object::Trigger(get(1), get(2)),
            "R" => Object::Rule(get(1), get(2)),
            _ => Object::EventTrigger(get(2)),
        };
        out.insert(object, state);
    }
    Ok(out)
}

fn guard_error(what: &str, err: &tokio_postgres::Error) -> Error {
    let reason = err
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| err.to_string());
    Error::backup(format!("could not {what}: {reason}"))
}

impl Guard {
    /// Records and disables every `A`/`R` trigger, rule and event trigger (committed at once).
    pub async fn start(client: &Client) -> Result<Guard> {
        let tables = scan(client, TABLE_SCAN)
            .await
            .map_err(|e| guard_error("list triggers and rules", &e))?;
        let events = scan(client, EVENT_SCAN)
            .await
            .map_err(|e| guard_error("list event triggers", &e))?;
        let guard = Guard { tables, events };
        let sql: String = guard
            .tables
            .keys()
            .chain(guard.events.keys())
            .map(|o| o.sql('D'))
            .collect();
        if !sql.is_empty() {
            client
                .batch_execute(&format!("BEGIN;{sql}COMMIT;"))
                .await
                .map_err(|e| guard_error("disable triggers and rules for the replay", &e))?;
        }
        Ok(guard)
    }

    pub fn len(&self) -> usize {
        self.tables.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Statements that put the recorded table triggers and rules back to their intended state,
    /// run just before DDL inside the replayed transaction.
    pub fn before_ddl(&self) -> String {
        self.tables.iter().map(|(o, s)| o.sql(*s)).collect()
    }

    /// Right after DDL: read what is `A`/`R` now, record it as intended, disable it again.
    pub async fn after_ddl(
        &mut self,
        client: &Client,
    ) -> std::result::Result<(), tokio_postgres::Error> {
        let now = scan(client, TABLE_SCAN).await?;
        let sql: String = now.keys().map(|o| o.sql('D')).collect();
        if !sql.is_empty() {
            client.batch_execute(&sql).await?;
        }
        self.tables = now;
        Ok(())
    }

    /// Puts everything back to its intended state (committed). On failure, says what is left
    /// disabled and how to fix it.
    pub async fn finish(&self, client: &Client) -> Result<usize> {
        let sql: String = self
            .tables
            .iter()
            .chain(self.events.iter())
            .map(|(o, s)| o.sql(*s))
            .collect();
        if sql.is_empty() {
            return Ok(0);
        }
        match client.batch_execute(&format!("BEGIN;{sql}COMMIT;")).await {
            Ok(()) => Ok(self.len()),
            Err(e) => Err(
                guard_error("re-enable triggers and rules after the replay", &e)
                    .with_detail(format!(
                        "Still disabled: {}.",
                        self.tables
                            .keys()
                            .chain(self.events.keys())
                            .map(Object::describe)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_hint(format!("Run by hand: {sql}")),
            ),
        }
    }

    /// What `finish` would run, for a message when the connection is gone.
    pub fn restore_sql(&self) -> String {
        self.tables
            .iter()
            .chain(self.events.iter())
            .map(|(o, s)| o.sql(*s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names() {
        let t = Object::Trigger("public.\"My T\"".into(), "Audit Me".into());
        assert_eq!(
            t.sql('A'),
            "ALTER TABLE ONLY public.\"My T\" ENABLE ALWAYS TRIGGER \"Audit Me\";"
        );
        assert_eq!(
            Object::Rule("s.t".into(), "r".into()).sql('D'),
            "ALTER TABLE ONLY s.t DISABLE RULE \"r\";"
        );
        assert_eq!(
            Object::EventTrigger("e\"x".into()).sql('R'),
            "ALTER EVENT TRIGGER \"e\"\"x\" ENABLE REPLICA;"
        );
        assert_eq!(quote_ident("select"), "\"select\"");
    }
}
