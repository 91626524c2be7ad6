//! Roles on a target whose globals need not match the stream. Roles belong to the whole
//! server, the chain to one database: a role made after the chain's globals (in another
//! database of the source) may be missing on the target, and one the stream creates or drops
//! may already be as the statement leaves it (a later globals dump, another database restored
//! there). Neither is a difference in this database's data, so neither stops the restore.

use super::{Engine, Txn};
use crate::error::{Error, Result};
use crate::ui;

impl Engine<'_> {
    /// Sends one captured DDL statement. A role's CREATE or DROP (captured since roles made
    /// between rotations are in no globals dump) may meet the role as the target already has it
    /// (a later globals dump, another database of the same server): that conflict is a note and
    /// the statement is skipped, inside a savepoint so the transaction goes on.
    pub(super) async fn send_ddl(&mut self, t: &Txn, k: usize) -> Result<()> {
        let text = self.utf8(t, &t.buf[t.stmts[k].start..t.stmts[k].end])?;
        let Some(tolerated) = role_conflict_state(text) else {
            return self.send_message(t, k, k + 1).await;
        };
        self.client
            .batch_execute("SAVEPOINT pg_scribe_role")
            .await
            .map_err(|e| self.own_error(t, "setting a savepoint before role DDL", e))?;
        match self.client.simple_query(text).await {
            Ok(_) => {}
            Err(e) if e.code().map(|c| c.code()) == Some(tolerated) => {
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT pg_scribe_role")
                    .await
                    .map_err(|e| self.own_error(t, "skipping role DDL", e))?;
                crate::ui::say(&format!(
                    "{}: note: {} (transaction {}, statement skipped)",
                    crate::ui::PROGNAME,
                    message,
                    t.header.xid
                ));
            }
            Err(_) => {
                // Sent again to be reported (located, with its excerpt) like any DDL error.
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT pg_scribe_role")
                    .await
                    .map_err(|e| self.own_error(t, "reporting a role DDL error", e))?;
                return self.send_message(t, k, k + 1).await;
            }
        }
        self.client
            .batch_execute("RELEASE SAVEPOINT pg_scribe_role")
            .await
            .map_err(|e| self.own_error(t, "releasing the savepoint after role DDL", e))
    }

    /// Creates a `NOLOGIN` placeholder for a role the transaction needs and the target lacks,
    /// after rolling the failed attempt back; the caller sends the transaction again.
    pub(super) async fn create_placeholder(&mut self, t: &Txn, role: String) -> Result<()> {
        self.rollback().await?;
        let sql = format!("CREATE ROLE {} NOLOGIN", crate::pg::quote::ident(&role));
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| crate::pg::session::query_error(&sql, &e))?;
        ui::say(&format!(
            "{}: note: created placeholder role \"{role}\" (NOLOGIN) for transaction {}",
            ui::PROGNAME,
            t.header.xid
        ));
        self.report.placeholders.push(role);
        Ok(())
    }
}

/// The role named by a "role \"x\" does not exist (42704)" failure of a transaction.
pub(super) fn missing_role(e: &Error) -> Option<String> {
    let head = e.message.strip_suffix("\" does not exist (42704)")?;
    let at = head.rfind(": role \"")?;
    Some(head[at + ": role \"".len()..].to_string())
}

/// The SQLSTATE a role statement may meet on a target that already reflects it: 42710
/// (duplicate_object) for `CREATE ROLE|USER|GROUP`, 42704 (undefined_object) for `DROP
/// ROLE|USER|GROUP`; `None` for any other statement. Only the statement's first two words are
/// read; anything else (a leading comment …) fails as any DDL does.
fn role_conflict_state(text: &str) -> Option<&'static str> {
    let mut words = text
        .split_ascii_whitespace()
        .map(|w| w.to_ascii_uppercase());
    let first = words.next()?;
    let second = words.next()?;
    if !matches!(second.trim_end_matches(';'), "ROLE" | "USER" | "GROUP") {
        return None;
    }
    match first.as_str() {
        "CREATE" => Some("42710"),
        "DROP" => Some("42704"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_roles() {
        let e = Error::backup(
            "could not apply transaction xid=1 commit_lsn=0/1 (committed t) in \"f\": role \"a b\" does not exist (42704)",
        );
        assert_eq!(super::missing_role(&e).as_deref(), Some("a b"));
        let e = Error::backup("could not apply x: relation \"t\" does not exist (42P01)");
        assert_eq!(super::missing_role(&e), None);
    }

    #[test]
    fn role_statements_that_may_conflict() {
        assert_eq!(super::role_conflict_state("CREATE ROLE r;"), Some("42710"));
        assert_eq!(
            super::role_conflict_state("create\n user r login;"),
            Some("42710")
        );
        assert_eq!(
            super::role_conflict_state("DROP ROLE IF EXISTS a, b;"),
            Some("42704")
        );
        assert_eq!(super::role_conflict_state("drop group g;"), Some("42704"));
        assert_eq!(
            super::role_conflict_state("CREATE TABLE role (a int);"),
            None
        );
        assert_eq!(super::role_conflict_state("ALTER ROLE r LOGIN;"), None);
        assert_eq!(super::role_conflict_state("/* c */ CREATE ROLE r;"), None);
    }
}
