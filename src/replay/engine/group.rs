//! Small transactions applied together. Most of a stream is short transactions of row
//! changes; one round trip and one commit each would make a restore wait on latency, so they
//! go as one transaction of the target, and the next group is built while the server applies
//! this one. A group is committed only once its row counts are read (a commit cannot be taken
//! back), and a failed group is replayed one transaction at a time, as written, so the error
//! names the exact transaction and the ones before it still commit. Inside the group, row
//! changes go table by table so that those of interleaved transactions merge.

use super::{Engine, InFlight, Txn};
use crate::error::Result;
use crate::replay::failure::{Drained, Failure, drain};
use crate::replay::statements::{Kind, Stmt, build_message, order_by_table};
use crate::ui;

impl Engine<'_> {
    /// Sends the pending transactions (none has DDL, each is complete) as **one** transaction
    /// of the target: `BEGIN; <their statements>` (merged), left open. It is committed by the
    /// next group's message (`COMMIT; BEGIN; …`) or by [`Self::commit_open`], and only once
    /// [`Self::settle`] has checked the row count of each of its statements; the next group is
    /// built while the server applies this one. Atomic: either all of them commit or none (a
    /// failure is then replayed transaction by transaction, see [`Self::settle`]).
    pub(super) async fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let txns = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut body = String::with_capacity(txns.iter().map(|t| t.buf.len()).sum::<usize>());
        let mut stmts = Vec::with_capacity(txns.iter().map(|t| t.stmts.len()).sum::<usize>());
        body.push_str("BEGIN;\n");
        stmts.push(Stmt {
            start: 0,
            end: "BEGIN;".len(),
            kind: Kind::Control,
        });
        for t in &txns {
            // Checked valid UTF-8 when it was queued.
            let text = std::str::from_utf8(&t.buf).expect("checked");
            let n = t.stmts.len();
            for s in &t.stmts[1..n - 1] {
                let start = body.len();
                body.push_str(&text[s.start..s.end]);
                stmts.push(Stmt {
                    start,
                    end: body.len(),
                    kind: s.kind,
                });
                body.push('\n');
            }
        }
        // One transaction of the target: its row changes may go table by table, and merge.
        order_by_table(&body, &mut stmts);
        const COMMIT_BEFORE: &str = "COMMIT;\n";
        let mut text = String::with_capacity(body.len() + COMMIT_BEFORE.len());
        text.push_str(COMMIT_BEFORE);
        let mut pieces = Vec::new();
        build_message(
            &body,
            &stmts,
            &mut text,
            &mut pieces,
            true,
            self.skip_setval,
        );
        // The group before this one: checked, then committed by this message's first statement.
        let committing = self.settle().await?;
        let mut expect = Vec::with_capacity(pieces.len() + 1);
        let from = if committing.is_empty() {
            COMMIT_BEFORE.len()
        } else {
            expect.push(None);
            0
        };
        expect.extend(pieces.iter().map(|p| p.rows));
        let stream = match self.client.simple_query_raw(&text[from..]).await {
            Ok(stream) => stream,
            Err(e) => {
                let last = txns.last().expect("not empty");
                return Err(self.txn_error(
                    last.file,
                    &last.header,
                    Failure {
                        number: None,
                        excerpt: None,
                        err: e,
                    },
                ));
            }
        };
        self.open = Some(InFlight {
            stream: Box::pin(stream),
            committing,
            txns,
            expect,
        });
        Ok(())
    }

    /// Waits for the last group sent and checks the row counts of its statements. Returns its
    /// transactions, applied and still open (the caller commits them), or none when it failed
    /// (a statement, a row count, or the COMMIT of the group before it at the head of its
    /// message): what is open is rolled back and the transactions not committed are replayed
    /// one by one, as written, each its own transaction, so that the first that fails is
    /// reported exactly and the ones before it are committed.
    async fn settle(&mut self) -> Result<Vec<Txn>> {
        let Some(mut f) = self.open.take() else {
            return Ok(Vec::new());
        };
        let result = drain(&mut f.stream, &f.expect).await;
        let commit_failed =
            !f.committing.is_empty() && matches!(result, Err(Drained::Server { completed: 0, .. }));
        if !commit_failed {
            for t in &f.committing {
                self.done(&t.header, t.file);
            }
        }
        match result {
            Ok(()) => return Ok(f.txns),
            Err(Drained::Server { err, .. }) if err.as_db_error().is_none() => {
                let t = f.txns.last().expect("not empty");
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
            Err(_) => {}
        }
        self.rollback().await?;
        let mut txns = if commit_failed {
            f.committing
        } else {
            Vec::new()
        };
        txns.append(&mut f.txns);
        self.replay_one_by_one(txns).await?;
        Ok(Vec::new())
    }

    /// Commits the last group sent, once its row counts are checked.
    pub(super) async fn commit_open(&mut self) -> Result<()> {
        let txns = self.settle().await?;
        let Some(last) = txns.last() else {
            return Ok(());
        };
        let result = match self.client.simple_query_raw("COMMIT").await {
            Ok(stream) => drain(&mut Box::pin(stream), &[]).await,
            Err(err) => Err(Drained::Server { completed: 0, err }),
        };
        match result {
            Ok(()) => {
                for t in &txns {
                    self.done(&t.header, t.file);
                }
                Ok(())
            }
            Err(Drained::Server { err, .. }) if err.as_db_error().is_none() => Err(self.txn_error(
                last.file,
                &last.header,
                Failure {
                    number: None,
                    excerpt: None,
                    err,
                },
            )),
            Err(_) => {
                // A deferred constraint failed at COMMIT: find the transaction.
                self.rollback().await?;
                self.replay_one_by_one(txns).await
            }
        }
    }

    /// Transactions of a group that failed, replayed one by one, as they are (no merging of
    /// row changes), each its own transaction with its row counts checked.
    async fn replay_one_by_one(&mut self, txns: Vec<Txn>) -> Result<()> {
        let count = txns.len();
        let skipped = self.report.skipped.len();
        self.as_written = true;
        let mut result = Ok(());
        for mut t in txns {
            result = self.apply_alone(&mut t).await;
            if result.is_err() {
                break;
            }
        }
        self.as_written = false;
        result?;
        if self.report.skipped.len() > skipped {
            return Ok(());
        }
        ui::warning(&format!(
            "{count} transactions applied together failed, but applied one by one they all succeeded"
        ));
        Ok(())
    }
}
