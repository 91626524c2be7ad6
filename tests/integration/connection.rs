//! Connecting like libpq against real clusters: environment only, URIs, `.pgpass` under
//! scram-sha-256 and md5, and the exit code and wording when it fails.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use pg_scribe::cli::ConnOptions;
use pg_scribe::pg::conninfo::{self, Environment};

use crate::harness::{Cluster, pg_scribe, scratch_dir, stderr};

fn env_of(pairs: &[(String, String)]) -> Environment {
    Environment {
        vars: pairs.iter().cloned().collect(),
        home: None,
        os_user: Some("nobody_in_particular".into()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn current_user_and_db(opts: &ConnOptions, env: &Environment) -> (String, String) {
    let params = conninfo::resolve(opts, env).expect("resolve");
    let session = pg_scribe::pg::session::connect(&params)
        .await
        .expect("connect");
    let row = session
        .client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn connects_with_environment_variables_only() {
    let cluster = Cluster::start();
    cluster.create_database("envdb");
    let env = env_of(&cluster.env("envdb"));
    let got = runtime().block_on(current_user_and_db(&ConnOptions::default(), &env));
    assert_eq!(got, ("postgres".to_string(), "envdb".to_string()));
}

#[test]
fn connects_with_a_uri_and_a_conninfo_string() {
    let cluster = Cluster::start();
    cluster.create_database("uri db");
    let env = env_of(&[]);
    let socket = cluster.socket_dir.display().to_string().replace('/', "%2F");
    let uri = format!(
        "postgresql://postgres@{socket}:{}/uri%20db?application_name=x",
        cluster.port
    );
    let opts = ConnOptions {
        dbname: Some(uri),
        ..Default::default()
    };
    let rt = runtime();
    assert_eq!(rt.block_on(current_user_and_db(&opts, &env)).1, "uri db");

    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname='uri db' sslmode=disable",
        cluster.port
    );
    let opts = ConnOptions {
        dbname: Some(conninfo),
        ..Default::default()
    };
    assert_eq!(rt.block_on(current_user_and_db(&opts, &env)).1, "uri db");
}

fn password_cluster(method: &str) -> Cluster {
    let cluster = Cluster::start();
    cluster.psql(
        "postgres",
        &format!(
            "SET password_encryption = '{}'; CREATE ROLE alice LOGIN PASSWORD 'se:cr\\et'",
            if method == "md5" {
                "md5"
            } else {
                "scram-sha-256"
            }
        ),
    );
    cluster.set_hba(&format!("host all all 127.0.0.1/32 {method}"));
    cluster
}

fn pgpass_env(cluster: &Cluster, contents: &str, mode: u32) -> (Environment, std::path::PathBuf) {
    let dir = scratch_dir("pgpass");
    let file = dir.join("pgpass");
    std::fs::write(&file, contents).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut env = env_of(&[
        ("PGHOST".into(), "127.0.0.1".into()),
        ("PGPORT".into(), cluster.port.to_string()),
        ("PGUSER".into(), "alice".into()),
        ("PGDATABASE".into(), "postgres".into()),
        ("PGSSLMODE".into(), "disable".into()),
    ]);
    env.vars
        .insert("PGPASSFILE".into(), file.display().to_string());
    (env, dir)
}

#[test]
fn password_from_pgpass_under_scram_and_md5() {
    for method in ["scram-sha-256", "md5"] {
        let cluster = password_cluster(method);
        // The escaped colon and backslash are part of the password.
        let (env, dir) = pgpass_env(
            &cluster,
            "# comment\nother:*:*:*:nope\n127.0.0.1:*:*:alice:se\\:cr\\\\et\n",
            0o600,
        );
        let got = runtime().block_on(current_user_and_db(&ConnOptions::default(), &env));
        assert_eq!(got.0, "alice", "{method}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn wrong_password_exits_2_with_the_server_message() {
    let cluster = password_cluster("scram-sha-256");
    let (env, dir) = pgpass_env(&cluster, "*:*:*:*:wrong\n", 0o600);
    let vars: Vec<(String, String)> = env.vars.into_iter().collect();
    let out = pg_scribe(&["--status", "-w"], &vars);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!(
        "pg_scribe: error: connection to server at \"127.0.0.1\", port {} failed: FATAL:  password authentication failed for user \"alice\"\n",
        cluster.port
    );
    assert_eq!(stderr(&out), expected);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn group_readable_pgpass_is_ignored_with_a_warning() {
    let cluster = password_cluster("scram-sha-256");
    let (env, dir) = pgpass_env(&cluster, "*:*:*:*:se:cr\\\\et\n", 0o640);
    let vars: Vec<(String, String)> = env.vars.into_iter().collect();
    let out = pg_scribe(&["--status", "-w"], &vars);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("pg_scribe: warning: password file"), "{err}");
    assert!(
        err.contains("has group or world access; permissions should be u=rw (0600) or less"),
        "{err}"
    );
    assert!(err.contains("no password supplied"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreachable_port_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = pg_scribe(
        &["--status", "-h", "127.0.0.1", "-p", &port.to_string(), "-w"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "pg_scribe: error: connection to server at \"127.0.0.1\", port {port} failed: Connection refused\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: Is the server running on that host and accepting TCP/IP connections?")
    );
}

#[test]
fn subprocess_environment_carries_the_password_outside_argv() {
    let cluster = password_cluster("md5");
    let mut params = cluster.tcp_params("postgres");
    params.user = "alice".into();
    params.password = Some("se:cr\\et".into());
    let mut cmd = tokio::process::Command::new(crate::harness::bindir().join("psql"));
    cmd.args(["-X", "-A", "-t", "-w", "-c", "SELECT current_user"]);
    params.configure_command(&mut cmd);
    let out = runtime().block_on(async { cmd.output().await }).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");
}

#[test]
fn tls_sslmode_require_against_a_self_signed_server() {
    if !crate::harness::has_tls("tls_sslmode_require_against_a_self_signed_server") {
        return;
    }
    let mut cluster = Cluster::start();
    let ca = cluster.enable_ssl();
    cluster.set_hba("hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject");
    let rt = runtime();
    let ssl_in_use = |sslmode: &str, root: Option<&std::path::Path>| {
        let mut vars = vec![
            ("PGHOST".to_string(), "localhost".to_string()),
            ("PGPORT".to_string(), cluster.port.to_string()),
            ("PGUSER".to_string(), "postgres".to_string()),
            ("PGSSLMODE".to_string(), sslmode.to_string()),
        ];
        if let Some(root) = root {
            vars.push(("PGSSLROOTCERT".into(), root.display().to_string()));
        }
        let env = env_of(&vars);
        rt.block_on(async {
            let params = conninfo::resolve(&ConnOptions::default(), &env)?;
            let session = pg_scribe::pg::session::connect(&params).await?;
            let row = session
                .client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            Ok::<bool, pg_scribe::error::Error>(row.get(0))
        })
    };
    assert!(ssl_in_use("require", None).unwrap(), "require must encrypt");
    assert!(
        ssl_in_use("prefer", None).unwrap(),
        "prefer must encrypt when offered"
    );
    // A self-signed certificate is its own CA; webpki (unlike OpenSSL) will not accept a CA
    // certificate as the server's, so verification is covered by the replication tests' CA.
    assert!(ssl_in_use("verify-full", Some(&ca)).is_err());
    let refused = ssl_in_use("disable", None).unwrap_err();
    assert_eq!(refused.exit_code(), 2);
    assert!(
        refused.message.contains("pg_hba.conf rejects connection"),
        "{}",
        refused.message
    );

    // Through the binary: a wrong CA is a connection error (exit 2), worded like libpq.
    let other = crate::harness::scratch_dir("otherca").join("other.crt");
    std::fs::write(
        &other,
        std::fs::read_to_string(&ca).unwrap().replace("MII", "MIJ"),
    )
    .ok();
    let out = pg_scribe(
        &[
            "--status",
            "-w",
            "-d",
            &format!(
                "host=localhost port={} user=postgres sslmode=verify-full sslrootcert={}",
                cluster.port,
                other.display()
            ),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `-W` asks on the terminal (a pseudo-terminal made by script(1) here), echo off, and the
/// answer is used: a wrong one is a connection error (2), the right one gets past it (the missing
/// slot then gives 3).
#[test]
fn dash_w_prompts_on_the_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let cluster = password_cluster("scram-sha-256");
    let run = |answer: &str| {
        let command = format!(
            "{} --status -W -h 127.0.0.1 -p {} -U alice -d postgres --slot nope",
            env!("CARGO_BIN_EXE_pg_scribe"),
            cluster.port
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .env("PGSSLMODE", "disable")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = run("se:cr\\et");
    assert!(text.contains("Password: "), "{text}");
    assert!(!text.contains("se:cr"), "the password was echoed: {text}");
    assert_eq!(code, Some(3), "{text}");
    let (code, text) = run("wrong");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
}
