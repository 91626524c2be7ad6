//! Integration tests of the replication client against real throwaway PostgreSQL clusters,
//! using `test_decoding` as the output plugin.

mod cluster;

use std::future::Future;
use std::time::{Duration, Instant};

use cluster::Cluster;
use pg_scribe::replication::{
    Lsn, ReplConn, ReplMessage, ReplicationError, ReplicationStream, XLogData,
};

const PLUGIN: &str = "test_decoding";
const OPTIONS: &[(&str, &str)] = &[("include-xids", "0"), ("skip-empty-xacts", "1")];

/// Bounds every test so a protocol hang fails instead of blocking the suite.
async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out")
}

fn text(x: &XLogData) -> String {
    String::from_utf8_lossy(&x.data).into_owned()
}

/// Reads until `commits` COMMIT messages have arrived, answering reply-requested keepalives
/// with everything received so far (no durability to honour in a test).
async fn collect_commits(stream: &mut ReplicationStream, commits: usize) -> Vec<XLogData> {
    let mut out = Vec::new();
    let mut seen = 0;
    while seen < commits {
        match stream.next_message().await.expect("stream message") {
            ReplMessage::XLogData(x) => {
                if text(&x).starts_with("COMMIT") {
                    seen += 1;
                }
                out.push(x);
            }
            ReplMessage::Keepalive(k) if k.reply_requested => {
                let pos = stream.last_received();
                stream
                    .send_status(pos, Lsn(0), Lsn(0), false)
                    .await
                    .unwrap();
            }
            ReplMessage::Keepalive(_) => {}
        }
    }
    out
}

async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> Option<Lsn> {
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, Option<String>>(0).map(|s| s.parse().unwrap())
}

#[tokio::test]
async fn exported_snapshot_and_stream_split_exactly_at_the_consistent_point() {
    let pg = Cluster::start(&[], None);
    within(60, async {
        let sql = pg.sql().await;
        sql.batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'before' FROM generate_series(1,3) g;",
        )
        .await
        .unwrap();

        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        assert!(!repl.is_tls());
        let sys = repl.identify_system().await.unwrap();
        assert_eq!(sys.dbname.as_deref(), Some("postgres"));
        assert_eq!(sys.timeline, 1);
        assert!(sys.xlogpos.is_valid());
        assert_eq!(repl.server_version_num().map(|v| v / 10000), Some(15));

        let slot = repl.create_logical_slot("s1", PLUGIN, false, true).await.unwrap();
        assert_eq!(slot.slot_name, "s1");
        assert_eq!(slot.output_plugin.as_deref(), Some(PLUGIN));
        assert!(slot.consistent_point >= sys.xlogpos);
        let snapshot = slot.snapshot_name.clone().expect("exported snapshot");

        // Changes after the consistent point: not in the snapshot, in the stream.
        // One statement per transaction (a multi-statement simple query is one transaction).
        for stmt in [
            "INSERT INTO t VALUES (4, 'after')",
            "INSERT INTO t VALUES (5, 'after')",
            "UPDATE t SET v = 'changed' WHERE id = 1",
        ] {
            sql.execute(stmt, &[]).await.unwrap();
        }

        // The replication connection is idle, so the snapshot can still be imported.
        let mut other = pg.sql().await;
        let tx = other
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .unwrap();
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
            .await
            .unwrap();
        let rows = tx
            .query("SELECT id, v FROM t ORDER BY id", &[])
            .await
            .unwrap();
        let seen: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            seen,
            vec![(1, "before".into()), (2, "before".into()), (3, "before".into())]
        );
        tx.commit().await.unwrap();

        let mut stream = repl
            .start_replication("s1", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let msgs = collect_commits(&mut stream, 3).await;
        let texts: Vec<String> = msgs.iter().map(text).collect();
        assert_eq!(
            texts,
            vec![
                "BEGIN",
                "table public.t: INSERT: id[integer]:4 v[text]:'after'",
                "COMMIT",
                "BEGIN",
                "table public.t: INSERT: id[integer]:5 v[text]:'after'",
                "COMMIT",
                "BEGIN",
                "table public.t: UPDATE: id[integer]:1 v[text]:'changed'",
                "COMMIT",
            ]
        );
        // Commit end positions are after the consistent point and strictly increasing.
        let commits: Vec<Lsn> = msgs
            .iter()
            .filter(|m| text(m) == "COMMIT")
            .map(|m| m.data_start)
            .collect();
        assert!(commits[0] > slot.consistent_point);
        assert!(commits.windows(2).all(|w| w[0] < w[1]), "{commits:?}");
        stream.finish(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn status_updates_move_confirmed_flush_exactly() {
    let pg = Cluster::start(&[], None);
    within(60, async {
        let sql = pg.sql().await;
        sql.batch_execute("CREATE TABLE t (id int)").await.unwrap();
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        let slot = repl
            .create_logical_slot("s2", PLUGIN, false, false)
            .await
            .unwrap();
        assert_eq!(slot.snapshot_name, None);
        assert_eq!(
            confirmed_flush(&sql, "s2").await,
            Some(slot.consistent_point)
        );

        sql.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        sql.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
        let mut stream = repl
            .start_replication("s2", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let msgs = collect_commits(&mut stream, 2).await;
        let first_commit_end = msgs
            .iter()
            .find(|m| text(m) == "COMMIT")
            .unwrap()
            .data_start;

        // Report only the first transaction as flushed: exactly that becomes confirmed.
        stream
            .send_status(
                stream.last_received(),
                first_commit_end,
                first_commit_end,
                true,
            )
            .await
            .unwrap();
        // reply_requested=true makes the server answer, which shows it has processed ours.
        loop {
            if let ReplMessage::Keepalive(_) = stream.next_message().await.unwrap() {
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while confirmed_flush(&sql, "s2").await != Some(first_commit_end) {
            assert!(
                Instant::now() < deadline,
                "confirmed_flush_lsn did not move"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stream.finish(Duration::from_secs(5)).await.unwrap();

        // Restarting from the slot re-sends exactly the unconfirmed second transaction.
        let repl = ReplConn::connect(&pg.params()).await.unwrap();
        let mut stream = repl
            .start_replication("s2", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let again: Vec<String> = collect_commits(&mut stream, 1)
            .await
            .iter()
            .map(text)
            .collect();
        assert_eq!(
            again,
            vec!["BEGIN", "table public.t: INSERT: id[integer]:2", "COMMIT"]
        );
        stream.finish(Duration::from_secs(5)).await.unwrap();
        assert_eq!(confirmed_flush(&sql, "s2").await, Some(first_commit_end));
    })
    .await;
}

#[tokio::test]
async fn answering_reply_requested_keepalives_lets_fast_shutdown_proceed() {
    let pg = Cluster::start(&[], None);
    let outcome = within(60, async {
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        repl.create_logical_slot("s3", PLUGIN, false, false)
            .await
            .unwrap();
        let mut stream = repl
            .start_replication("s3", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        // The streamer: answer every reply request with everything received.
        let streamer = tokio::spawn(async move {
            let mut replies = 0;
            loop {
                match stream.next_message().await {
                    Ok(ReplMessage::Keepalive(k)) if k.reply_requested => {
                        replies += 1;
                        let pos = stream.last_received();
                        stream.send_status(pos, pos, pos, false).await.unwrap();
                    }
                    Ok(_) => {}
                    Err(e) => return (replies, e),
                }
            }
        });
        // Give START_REPLICATION time to settle, then stop the server.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let mut stop = pg.pg_ctl_command(&["stop", "-m", "fast", "-w"]);
        let stop = tokio::task::spawn_blocking(move || stop.status().unwrap().success());
        let (replies, err) = streamer.await.unwrap();
        assert!(stop.await.unwrap());
        (started.elapsed(), replies, err)
    })
    .await;
    let (elapsed, replies, err) = outcome;
    eprintln!("fast shutdown with a streaming client took {elapsed:?} ({replies} replies)");
    // wal_sender_timeout is 10 s; an unanswered request holds the shutdown for about that long.
    assert!(
        elapsed < Duration::from_secs(4),
        "shutdown took {elapsed:?}"
    );
    assert!(replies >= 1, "the server asked for a reply at shutdown");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        !pg.log().contains("replication timeout"),
        "walsender timed out:\n{}",
        pg.log()
    );
}

#[tokio::test]
async fn missing_slot_is_fatal_and_active_slot_is_retryable() {
    let pg = Cluster::start(&[], None);
    within(60, async {
        let repl = ReplConn::connect(&pg.params()).await.unwrap();
        let err = repl
            .start_replication("nope", Lsn::INVALID, OPTIONS)
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("42704"), "{err}");
        assert!(!err.is_retryable());
        assert!(err.is_slot_error());

        // Plugin option errors arrive before streaming starts.
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        repl.create_logical_slot("s4", PLUGIN, false, false)
            .await
            .unwrap();
        let err = repl
            .start_replication("s4", Lsn::INVALID, &[("no-such-option", "it's")])
            .await
            .unwrap_err();
        assert!(err.sqlstate().is_some(), "{err}");
        assert!(!err.is_retryable());

        let first = ReplConn::connect(&pg.params())
            .await
            .unwrap()
            .start_replication("s4", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let err = ReplConn::connect(&pg.params())
            .await
            .unwrap()
            .start_replication("s4", Lsn::INVALID, OPTIONS)
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("55006"), "{err}");
        assert!(err.is_retryable());
        first.finish(Duration::from_secs(5)).await.unwrap();

        // Once released it can be dropped; dropping it again is a missing-slot error.
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        repl.drop_slot("s4", true).await.unwrap();
        let err = repl.drop_slot("s4", false).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42704"));
        repl.close().await;
    })
    .await;
}

#[tokio::test]
async fn terminated_walsender_and_restarted_server_are_retryable() {
    let pg = Cluster::start(&[], None);
    within(90, async {
        let sql = pg.sql().await;
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        repl.create_logical_slot("s5", PLUGIN, false, false)
            .await
            .unwrap();
        let mut stream = repl
            .start_replication("s5", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let pid = stream.backend_pid();
        sql.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let err = loop {
            match stream.next_message().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.sqlstate(), Some("57P01"), "{err}");
        assert!(err.is_retryable());
        assert!(!err.is_slot_error());

        // Server restart mid-stream: whatever the stream sees is retryable, and reconnecting
        // afterwards works.
        let mut stream = ReplConn::connect(&pg.params())
            .await
            .unwrap()
            .start_replication("s5", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let mut restart = pg.pg_ctl_command(&["restart", "-m", "immediate", "-w"]);
        let restart = tokio::task::spawn_blocking(move || restart.status().unwrap().success());
        let err = loop {
            match stream.next_message().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(err.is_retryable(), "{err:?}");
        assert!(restart.await.unwrap());
        let mut repl = ReplConn::connect(&pg.params()).await.unwrap();
        repl.identify_system().await.unwrap();
    })
    .await;
}

/// Refused connections are retryable; a missing database is not.
#[tokio::test]
async fn connection_failures_are_classified() {
    let pg = Cluster::start(&[], None);
    within(30, async {
        let mut params = pg.params();
        params.dbname = "no_such_db".into();
        let err = ReplConn::connect(&params).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("3D000"), "{err}");
        assert!(!err.is_retryable());

        let mut params = pg.tcp_params(
            "127.0.0.1",
            "postgres",
            pg_scribe::conninfo::SslMode::Disable,
        );
        params.targets[0].port = 1; // nothing listens there
        let err = ReplConn::connect(&params).await.unwrap_err();
        assert!(matches!(err, ReplicationError::Connect { .. }), "{err:?}");
        assert!(err.is_retryable());

        // The first target fails, the second is used.
        let mut params = pg.params();
        params.targets.insert(
            0,
            pg.tcp_params(
                "127.0.0.1",
                "postgres",
                pg_scribe::conninfo::SslMode::Disable,
            )
            .targets[0]
                .clone(),
        );
        params.targets[0].port = 1;
        let conn = ReplConn::connect(&params).await.unwrap();
        assert!(conn.target().contains(".s.PGSQL."));
    })
    .await;
}
