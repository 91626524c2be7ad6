//! A transaction sent on its own, in segments waited for one by one. Captured DDL changes how
//! what follows it is read (settings, triggers, the tables themselves), so it cannot share a
//! message with row changes: it goes alone, after the settings recorded before it, with the
//! target's triggers put back around it, and the replay session's settings are restored after.

use super::{Engine, Txn};
use crate::error::{Error, Result};
use crate::replay::failure::{Drained, Failure, drain, locate};
use crate::replay::statements::{Kind, Piece, Stmt, build_message};

impl Engine<'_> {
    /// Sends `t.stmts[..n]` in order, waiting for each message and checking the row count of
    /// each statement: runs of row changes in messages of at most the chunk size; each run of
    /// other statements bracketed by the trigger guard, in which captured DDL goes **alone in
    /// its message**, after the settings written before it (so the server parses it with them in
    /// effect), and is followed by the replay session's own settings again. `commit`: the last
    /// statement is the transaction's COMMIT; it is sent on its own, once every row count is
    /// checked.
    pub(super) async fn send_segments(
        &mut self,
        t: &mut Txn,
        n: usize,
        commit: bool,
    ) -> Result<()> {
        let m = if commit { n - 1 } else { n };
        let mut i = 0;
        while i < m {
            let dml = t.stmts[i].kind == Kind::Dml;
            let mut j = i + 1;
            while j < m
                && (t.stmts[j].kind == Kind::Dml) == dml
                && (!dml || t.stmts[j].end - t.stmts[i].start <= self.limits.chunk_bytes)
            {
                j += 1;
            }
            if dml {
                self.send_message(t, i, j).await?;
                i = j;
                continue;
            }
            self.guard_before(t).await?;
            let mut k = i;
            while k < j {
                if t.stmts[k].kind == Kind::Ddl {
                    self.send_ddl(t, k).await?;
                    self.client
                        .batch_execute(&self.session_sql)
                        .await
                        .map_err(|e| {
                            self.own_error(t, "restoring the session settings after DDL", e)
                        })?;
                    k += 1;
                } else {
                    let mut l = k + 1;
                    while l < j && t.stmts[l].kind != Kind::Ddl {
                        l += 1;
                    }
                    self.send_message(t, k, l).await?;
                    k = l;
                }
            }
            let mut guard = std::mem::take(&mut self.guard);
            let r = guard.after_ddl(self.client).await;
            self.guard = guard;
            r.map_err(|e| self.own_error(t, "checking triggers and rules after DDL", e))?;
            i = j;
        }
        if commit {
            let result = match self.client.simple_query_raw("COMMIT").await {
                Ok(stream) => drain(&mut Box::pin(stream), &[]).await,
                Err(err) => Err(Drained::Server { completed: 0, err }),
            };
            if let Err(Drained::Server { err, .. }) = result {
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: Some((t.sent + n, t.sent + n)),
                        excerpt: Some("COMMIT;".into()),
                        err,
                    },
                ));
            }
        }
        Ok(())
    }

    /// An error of a statement of pg_scribe's own between the transaction's statements.
    pub(super) fn own_error(&self, t: &Txn, what: &str, e: tokio_postgres::Error) -> Error {
        self.txn_error(
            t.file,
            &t.header,
            Failure {
                number: None,
                excerpt: Some(format!("(pg_scribe, {what})")),
                err: e,
            },
        )
    }

    /// Puts the recorded triggers and rules back before a run of DDL (see
    /// [`Guard`](crate::replay::guard::Guard)).
    async fn guard_before(&self, t: &Txn) -> Result<()> {
        if self.guard.is_empty() {
            return Ok(());
        }
        let before = self.guard.before_ddl();
        if before.is_empty() {
            return Ok(());
        }
        self.client
            .batch_execute(&before)
            .await
            .map_err(|e| self.own_error(t, "restoring trigger states before DDL", e))
    }

    /// Sends a message whose DELETEs or UPDATEs were merged by key inside a savepoint, and
    /// checks its row counts. Returns false when it failed (a statement or a row count): it is
    /// then rolled back to the savepoint, for the caller to send the statements again as
    /// written, so that the failing one is reported exactly.
    async fn send_merged(&self, t: &Txn, text: &str, pieces: &[Piece]) -> Result<bool> {
        const SAVEPOINT: &str = "SAVEPOINT pg_scribe_merge;\n";
        let mut message = String::with_capacity(SAVEPOINT.len() + text.len());
        message.push_str(SAVEPOINT);
        message.push_str(text);
        let mut expect = Vec::with_capacity(pieces.len() + 1);
        expect.push(None);
        expect.extend(pieces.iter().map(|p| p.rows));
        let result = match self.client.simple_query_raw(&message).await {
            Ok(stream) => drain(&mut Box::pin(stream), &expect).await,
            Err(err) => Err(Drained::Server { completed: 0, err }),
        };
        let back = match result {
            Ok(()) => "RELEASE SAVEPOINT pg_scribe_merge",
            Err(Drained::Server { err, .. }) if err.as_db_error().is_none() => {
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: None,
                        excerpt: None,
                        err,
                    },
                ));
            }
            Err(_) => "ROLLBACK TO SAVEPOINT pg_scribe_merge; RELEASE SAVEPOINT pg_scribe_merge",
        };
        self.client
            .batch_execute(back)
            .await
            .map_err(|e| self.own_error(t, "ending the savepoint of merged row changes", e))?;
        Ok(back.starts_with("RELEASE"))
    }

    /// Sends `t.stmts[i..j]` as one message and checks the row count of each (DELETEs and
    /// UPDATEs merged by key, see [`Self::send_merged`], except when the transactions of a
    /// failed group are replayed one by one).
    pub(super) async fn send_message(&mut self, t: &Txn, i: usize, j: usize) -> Result<()> {
        let from = t.stmts[i].start;
        let to = t.stmts[j - 1].end;
        let body = self.utf8(t, &t.buf[from..to])?;
        let stmts: Vec<Stmt> = t.stmts[i..j]
            .iter()
            .map(|s| Stmt {
                start: s.start - from,
                end: s.end - from,
                kind: s.kind,
            })
            .collect();
        let mut text = String::with_capacity(body.len() + 64);
        let mut pieces = Vec::with_capacity(stmts.len());
        let merged = build_message(
            body,
            &stmts,
            &mut text,
            &mut pieces,
            !self.as_written,
            self.skip_setval,
        );
        if merged {
            if self.send_merged(t, &text, &pieces).await? {
                return Ok(());
            }
            text.clear();
            pieces.clear();
            build_message(
                body,
                &stmts,
                &mut text,
                &mut pieces,
                false,
                self.skip_setval,
            );
        }
        if pieces.is_empty() {
            // Only recorded sequence values, left out.
            return Ok(());
        }
        let expect: Vec<Option<u64>> = pieces.iter().map(|p| p.rows).collect();
        let result = match self.client.simple_query_raw(&text).await {
            Ok(stream) => drain(&mut Box::pin(stream), &expect).await,
            Err(err) => Err(Drained::Server { completed: 0, err }),
        };
        let number = |p: &Piece| (t.sent + i + p.first + 1, t.sent + i + p.last + 1);
        match result {
            Ok(()) => {}
            Err(Drained::Server { completed, err }) => {
                let (k, excerpt) = locate(&text, &pieces, 0, completed, &err);
                return Err(self.txn_error(
                    t.file,
                    &t.header,
                    Failure {
                        number: k.map(|(a, b)| (t.sent + i + a + 1, t.sent + i + b + 1)),
                        excerpt,
                        err,
                    },
                ));
            }
            Err(Drained::Rows {
                index,
                expected,
                actual,
            }) => {
                let p = &pieces[index];
                return Err(self.rows_error(t, number(p), &text[p.start..p.end], expected, actual));
            }
        }
        Ok(())
    }
}
