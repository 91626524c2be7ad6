//! The replication client (`pg_scribe::pg::replication`, `pg_scribe::pg::tls`) against real throwaway
//! clusters, with `test_decoding` as the output plugin: snapshots, streaming, status updates,
//! shutdown, error classification, password authentication and TLS.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Cluster;
use pg_scribe::pg::conninfo::{ConnParams, SslMode};
use pg_scribe::pg::replication::{
    Lsn, ReplConn, ReplMessage, ReplicationError, ReplicationStream, XLogData,
};

const PLUGIN: &str = "test_decoding";

/// Replication parameters over the socket, bounded per connection attempt.
fn params(pg: &Cluster) -> ConnParams {
    ConnParams {
        application_name: Some("pg_scribe_repl_test".into()),
        connect_timeout: Some(Duration::from_secs(10)),
        ..pg.params("postgres")
    }
}

/// The same over TCP to `host`, as `user`.
fn tcp_params(pg: &Cluster, host: &str, user: &str, sslmode: SslMode) -> ConnParams {
    let mut p = ConnParams {
        user: user.into(),
        sslmode,
        ..params(pg)
    };
    p.targets = pg.tcp_params("postgres").targets;
    p.targets[0].host = pg_scribe::pg::conninfo::Host::Tcp(host.into());
    p
}

/// A superuser SQL connection over the socket.
async fn sql_client(pg: &Cluster) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host_path(&pg.socket_dir)
        .port(pg.port)
        .user(crate::harness::SUPERUSER)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("SQL connection");
    tokio::spawn(conn);
    client
}

/// Hands a file we wrote to whoever owns the data directory (the server's OS user).
fn give_to_server(pg: &Cluster, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&pg.data).unwrap();
    std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid())).unwrap();
}
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
    let pg = Cluster::start();
    within(60, async {
        let sql = sql_client(&pg).await;
        sql.batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'before' FROM generate_series(1,3) g;",
        )
        .await
        .unwrap();

        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
        assert!(!repl.is_tls());
        let sys = repl.identify_system().await.unwrap();
        assert_eq!(sys.dbname.as_deref(), Some("postgres"));
        assert_eq!(sys.timeline, 1);
        assert!(sys.xlogpos.is_valid());
        assert_eq!(
            repl.server_version_num().map(|v| v / 10000),
            Some(pg.major())
        );

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
        let mut other = sql_client(&pg).await;
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

/// A 40 MB transaction streams through a receive buffer that stays small: messages are handed
/// over one by one, never collected per transaction.
#[tokio::test]
async fn memory_stays_flat_while_streaming_a_large_transaction() {
    let pg = Cluster::start();
    within(120, async {
        let sql = sql_client(&pg).await;
        sql.batch_execute("CREATE TABLE big (id int, v text)")
            .await
            .unwrap();
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
        repl.create_logical_slot("big", PLUGIN, false, false)
            .await
            .unwrap();
        sql.batch_execute(
            "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 300000) g",
        )
        .await
        .unwrap();
        let mut stream = repl
            .start_replication("big", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let (mut rows, mut bytes, mut max_capacity) = (0usize, 0usize, 0usize);
        loop {
            match stream.next_message().await.unwrap() {
                ReplMessage::XLogData(x) => {
                    bytes += x.data.len();
                    max_capacity = max_capacity.max(stream.receive_buffer_capacity());
                    if x.data.starts_with(b"table") {
                        rows += 1;
                    } else if x.data.starts_with(b"COMMIT") {
                        break;
                    }
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
        eprintln!(
            "streamed {rows} rows, {bytes} bytes; receive buffer peaked at {max_capacity} bytes"
        );
        assert_eq!(rows, 300_000);
        assert!(bytes > 40_000_000);
        assert!(
            max_capacity < 1 << 20,
            "receive buffer grew to {max_capacity}"
        );
        stream.finish(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn status_updates_move_confirmed_flush_exactly() {
    let pg = Cluster::start();
    within(60, async {
        let sql = sql_client(&pg).await;
        sql.batch_execute("CREATE TABLE t (id int)").await.unwrap();
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
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
        let repl = ReplConn::connect(&params(&pg)).await.unwrap();
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
    let pg = Cluster::start();
    let (elapsed, replies, err, _pg) = within(60, async {
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
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
        let stop = tokio::task::spawn_blocking(move || {
            let mut pg = pg;
            pg.stop("fast");
            pg
        });
        let (replies, err) = streamer.await.unwrap();
        let pg = stop.await.unwrap();
        (started.elapsed(), replies, err, pg)
    })
    .await;
    eprintln!("fast shutdown with a streaming client took {elapsed:?} ({replies} replies)");
    // wal_sender_timeout is 10 s; an unanswered request holds the shutdown for about that long.
    assert!(
        elapsed < Duration::from_secs(4),
        "shutdown took {elapsed:?}"
    );
    assert!(replies >= 1, "the server asked for a reply at shutdown");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn missing_slot_is_fatal_and_active_slot_is_retryable() {
    let pg = Cluster::start();
    within(60, async {
        let repl = ReplConn::connect(&params(&pg)).await.unwrap();
        let err = repl
            .start_replication("nope", Lsn::INVALID, OPTIONS)
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("42704"), "{err}");
        assert!(!err.is_retryable());
        assert!(err.is_slot_error());

        // Plugin option errors arrive before streaming starts.
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
        repl.create_logical_slot("s4", PLUGIN, false, false)
            .await
            .unwrap();
        let err = repl
            .start_replication("s4", Lsn::INVALID, &[("no-such-option", "it's")])
            .await
            .unwrap_err();
        assert!(err.sqlstate().is_some(), "{err}");
        assert!(!err.is_retryable());

        let first = ReplConn::connect(&params(&pg))
            .await
            .unwrap()
            .start_replication("s4", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let err = ReplConn::connect(&params(&pg))
            .await
            .unwrap()
            .start_replication("s4", Lsn::INVALID, OPTIONS)
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("55006"), "{err}");
        assert!(err.is_retryable());
        first.finish(Duration::from_secs(5)).await.unwrap();

        // Once released it can be dropped; dropping it again is a missing-slot error.
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
        repl.drop_slot("s4", true).await.unwrap();
        let err = repl.drop_slot("s4", false).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42704"));
        repl.close().await;
    })
    .await;
}

#[tokio::test]
async fn terminated_walsender_and_restarted_server_are_retryable() {
    let pg = Cluster::start();
    within(90, async {
        let sql = sql_client(&pg).await;
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
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
        let mut stream = ReplConn::connect(&params(&pg))
            .await
            .unwrap()
            .start_replication("s5", Lsn::INVALID, OPTIONS)
            .await
            .unwrap();
        let restart = tokio::task::spawn_blocking(move || {
            let mut pg = pg;
            pg.stop("immediate");
            pg.restart();
            pg
        });
        let err = loop {
            match stream.next_message().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(err.is_retryable(), "{err:?}");
        let pg = restart.await.unwrap();
        let mut repl = ReplConn::connect(&params(&pg)).await.unwrap();
        repl.identify_system().await.unwrap();
    })
    .await;
}

/// Refused connections are retryable; a missing database is not.
#[tokio::test]
async fn connection_failures_are_classified() {
    let pg = Cluster::start();
    within(30, async {
        let mut p = params(&pg);
        p.dbname = "no_such_db".into();
        let err = ReplConn::connect(&p).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("3D000"), "{err}");
        assert!(!err.is_retryable());

        let mut p = tcp_params(&pg, "127.0.0.1", "postgres", SslMode::Disable);
        p.targets[0].port = 1; // nothing listens there
        let err = ReplConn::connect(&p).await.unwrap_err();
        assert!(matches!(err, ReplicationError::Connect { .. }), "{err:?}");
        assert!(err.is_retryable());

        // The first target fails, the second is used.
        let mut p = params(&pg);
        p.targets.insert(
            0,
            tcp_params(&pg, "127.0.0.1", "postgres", SslMode::Disable).targets[0].clone(),
        );
        p.targets[0].port = 1;
        let conn = ReplConn::connect(&p).await.unwrap();
        assert!(conn.target().contains(".s.PGSQL."));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Authentication and TLS

use pg_scribe::pg::replication::AuthMethod;

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for `DNS:localhost` only, signed with ECDSA-SHA384 so
/// that channel binding has to hash with SHA-384 (RFC 5929) to succeed. `name` prefixes files.
fn make_ca_and_server_cert(dir: &std::path::Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}-ca.key");
    let ca_crt = format!("{name}-ca.crt");
    let mut args = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=pg_scribe test CA",
    ];
    args.extend(ec);
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let mut args = vec!["req", "-new", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-sha384",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

async fn create_login_roles(pg: &Cluster) {
    sql_client(pg)
        .await
        .batch_execute(
            // scram-sha-256 named: it became the default only in 14.
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE scram_user LOGIN REPLICATION PASSWORD 'scr''am secret';
             SET password_encryption = 'md5';
             CREATE ROLE md5_user LOGIN REPLICATION PASSWORD 'md5 secret';
             CREATE ROLE clear_user LOGIN REPLICATION PASSWORD 'clear secret';",
        )
        .await
        .unwrap();
}

fn with_password(mut p: ConnParams, pw: &str) -> ConnParams {
    p.password = Some(pw.into());
    p
}

#[tokio::test]
async fn password_authentication_scram_md5_cleartext() {
    let hba = "host all scram_user 127.0.0.1/32 scram-sha-256\n\
               host all md5_user 127.0.0.1/32 md5\n\
               host all clear_user 127.0.0.1/32 password";
    let pg = Cluster::start();
    pg.set_hba(hba);
    within(60, async {
        create_login_roles(&pg).await;
        let tcp = |user: &str| tcp_params(&pg, "127.0.0.1", user, SslMode::Disable);

        for (user, pw, method) in [
            ("scram_user", "scr'am secret", AuthMethod::ScramSha256),
            ("md5_user", "md5 secret", AuthMethod::Md5),
            ("clear_user", "clear secret", AuthMethod::Cleartext),
        ] {
            let mut conn = ReplConn::connect(&with_password(tcp(user), pw))
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            assert_eq!(conn.auth_method(), method);
            assert!(!conn.is_tls());
            let sys = conn.identify_system().await.unwrap();
            assert_eq!(sys.dbname.as_deref(), Some("postgres"));
            conn.close().await;
        }

        for user in ["scram_user", "md5_user"] {
            let err = ReplConn::connect(&with_password(tcp(user), "wrong"))
                .await
                .unwrap_err();
            assert_eq!(err.sqlstate(), Some("28P01"), "{err}");
            assert!(!err.is_retryable());
            assert!(err.is_connection_error());

            let err = ReplConn::connect(&tcp(user)).await.unwrap_err();
            assert!(
                matches!(err, ReplicationError::PasswordRequired { .. }),
                "{err:?}"
            );
            assert!(!err.is_retryable());
        }
    })
    .await;
}

#[tokio::test]
async fn tls_modes_verification_and_channel_binding() {
    if !crate::harness::has_tls("tls_modes_verification_and_channel_binding") {
        return;
    }
    let hba = "hostssl all scram_user 127.0.0.1/32 scram-sha-256\n\
               hostnossl all all 127.0.0.1/32 reject";
    let mut pg = Cluster::start();
    make_ca_and_server_cert(&pg.data, "good");
    for f in ["server.crt", "server.key"] {
        give_to_server(&pg, &pg.data.join(f));
    }
    make_ca_and_server_cert(&pg.dir, "other");
    let ca = pg.data.join("good-ca.crt");
    let other_ca = pg.dir.join("other-ca.crt");
    pg.configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
    pg.restart();
    pg.set_hba(hba);
    within(60, async {
        create_login_roles(&pg).await;
        let sql = sql_client(&pg).await;
        let tls_params = |host: &str, mode: SslMode, root: &Path| {
            let mut p = with_password(tcp_params(&pg, host, "scram_user", mode), "scr'am secret");
            p.sslrootcert = Some(root.to_owned());
            p
        };
        let no_root = pg.dir.join("no-such-root.crt");

        // Encrypted, authenticated with channel binding (which needs the SHA-384 hash of a
        // certificate signed with ECDSA-SHA384: a wrong hash fails authentication).
        for (host, mode, root) in [
            ("127.0.0.1", SslMode::Require, &no_root),
            ("127.0.0.1", SslMode::Prefer, &no_root),
            ("127.0.0.1", SslMode::Allow, &no_root),
            ("127.0.0.1", SslMode::VerifyCa, &ca),
            ("localhost", SslMode::VerifyFull, &ca),
        ] {
            let mut conn = ReplConn::connect(&tls_params(host, mode, root))
                .await
                .unwrap_or_else(|e| panic!("{mode:?} to {host}: {e}"));
            assert!(conn.is_tls(), "{mode:?}");
            assert_eq!(conn.auth_method(), AuthMethod::ScramSha256Plus, "{mode:?}");
            let row = sql
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = $1",
                    &[&conn.backend_pid()],
                )
                .await
                .unwrap();
            assert!(row.get::<_, bool>(0), "{mode:?}: server sees TLS");
            conn.identify_system().await.unwrap();
            conn.close().await;
        }

        // The certificate names only "localhost", and "other" CA did not sign it.
        for (host, mode, root) in [
            ("127.0.0.1", SslMode::VerifyFull, &ca),
            ("localhost", SslMode::VerifyFull, &other_ca),
            ("localhost", SslMode::VerifyCa, &other_ca),
        ] {
            let err = ReplConn::connect(&tls_params(host, mode, root))
                .await
                .unwrap_err();
            assert!(
                matches!(err, ReplicationError::Tls { .. }),
                "{mode:?} to {host}: {err:?}"
            );
            assert!(!err.is_retryable(), "{err:?}");
        }
        // An existing root file makes even `require` check the chain, as in libpq.
        let err = ReplConn::connect(&tls_params("127.0.0.1", SslMode::Require, &other_ca))
            .await
            .unwrap_err();
        assert!(matches!(err, ReplicationError::Tls { .. }), "{err:?}");

        let err = ReplConn::connect(&tls_params("127.0.0.1", SslMode::Disable, &no_root))
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), Some("28000"), "{err}");
        assert!(!err.is_retryable());

        // Unix sockets never use TLS, whatever sslmode says.
        let mut p = params(&pg);
        p.sslmode = SslMode::Require;
        let conn = ReplConn::connect(&p).await.unwrap();
        assert!(!conn.is_tls());

        // SQL connections through tokio-postgres follow the same rules, with channel binding.
        let mut p = tls_params("localhost", SslMode::VerifyFull, &ca);
        p.password = Some("scr'am secret".into());
        let tls = pg_scribe::pg::tls::make_tls(&p).unwrap();
        let (client, connection) = tokio_postgres::Config::new()
            .host("localhost")
            .port(pg.port)
            .user("scram_user")
            .password("scr'am secret")
            .dbname("postgres")
            .ssl_mode(pg_scribe::pg::tls::tokio_postgres_ssl_mode(p.sslmode))
            .channel_binding(tokio_postgres::config::ChannelBinding::Require)
            .connect(tls)
            .await
            .expect("tokio-postgres over TLS with channel binding");
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0));

        let p = tls_params("127.0.0.1", SslMode::VerifyFull, &ca);
        let err = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(pg.port)
            .user("scram_user")
            .password("scr'am secret")
            .dbname("postgres")
            .ssl_mode(pg_scribe::pg::tls::tokio_postgres_ssl_mode(p.sslmode))
            .connect(pg_scribe::pg::tls::make_tls(&p).unwrap())
            .await
            .err()
            .expect("verify-full must reject a certificate without this name");
        let debug = format!("{err:?}");
        assert!(debug.contains("NotValidForName"), "{debug}");
    })
    .await;
}
