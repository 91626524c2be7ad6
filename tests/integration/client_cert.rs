//! TLS client certificates against a server that requires one (`cert clientcert=verify-full`),
//! on every kind of connection pg_scribe opens: `--init` (SQL, replication with the exported
//! snapshot, and the pg_dump/pg_dumpall children), `--start` streaming, `--status`. Certificates
//! come from conninfo, from PGSSLCERT/PGSSLKEY and from libpq's `~/.postgresql/` defaults;
//! `sslrootcert=system` trusts the system store; a missing or too readable key and a revoked
//! server certificate (`sslcrl`, `sslcrldir`) are refused.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    Cluster, Streamer, newest_chain, pg_scribe, scratch_dir, stderr, wait_for_text,
};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
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

/// A certificate signed by the test CA: `name.crt` and `name.key` (0600) in `dir`.
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let ext = format!("{name}.ext");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// CA, server certificate (localhost, 127.0.0.1), client certificate for `postgres`, and two
/// CRLs of the CA: `empty.crl` and `revoked.crl` (which revokes the server certificate).
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=pg_scribe client-cert test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    issue(
        dir,
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    issue(
        dir,
        "client",
        "/CN=postgres",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    );
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         default_md = sha256\ndefault_crl_days = 2\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt"];
    let with = |extra: &[&'static str]| {
        let mut args = vec!["ca"];
        args.extend(ca);
        args.extend(extra);
        openssl(dir, &args);
    };
    with(&["-gencrl", "-out", "empty.crl"]);
    with(&["-revoke", "server.crt"]);
    with(&["-gencrl", "-out", "revoked.crl"]);
}

struct Setup {
    cluster: Cluster,
    pki: PathBuf,
}

fn cert_cluster() -> Setup {
    let mut cluster = Cluster::start();
    let pki = scratch_dir("client-cert-pki");
    make_pki(&pki);
    for f in ["server.crt", "server.key", "ca.crt"] {
        std::fs::copy(pki.join(f), cluster.data.join(f)).unwrap();
    }
    std::fs::set_permissions(
        cluster.data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&cluster.data)
            .status()
            .unwrap();
        assert!(status.success());
    }
    cluster.configure(
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'",
    );
    cluster.restart();
    cluster.set_hba(
        "hostssl all all 127.0.0.1/32 cert clientcert=verify-full\n\
         hostssl all all ::1/128 cert clientcert=verify-full\n\
         hostnossl all all all reject",
    );
    cluster.create_database("app");
    cluster.psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text)");
    Setup { cluster, pki }
}

impl Setup {
    /// A conninfo over TCP to `localhost` with full verification of the server.
    fn conninfo(&self, extra: &str) -> String {
        format!(
            "host=localhost port={} user=postgres dbname=app sslmode=verify-full sslrootcert={} {extra}",
            self.cluster.port,
            self.pki.join("ca.crt").display()
        )
    }

    fn with_cert(&self) -> String {
        self.conninfo(&format!(
            "sslcert={} sslkey={}",
            self.pki.join("client.crt").display(),
            self.pki.join("client.key").display()
        ))
    }
}

/// HOME without `~/.postgresql/`, so libpq's defaults find nothing unless a test puts it there.
fn empty_home() -> Vec<(String, String)> {
    vec![(
        "HOME".into(),
        scratch_dir("client-cert-home").display().to_string(),
    )]
}

#[test]
fn init_stream_and_status_with_a_client_certificate() {
    if !crate::harness::has_tls("init_stream_and_status_with_a_client_certificate") {
        return;
    }
    let setup = cert_cluster();
    let home = empty_home();
    let dir = scratch_dir("client-cert-backup").join("backups");
    let conninfo = setup.with_cert();

    let out = pg_scribe(
        &[
            "--init",
            "-d",
            &conninfo,
            "--backup-dir",
            dir.to_str().unwrap(),
            "--slot",
            "s",
        ],
        &home,
    );
    assert_eq!(out.status.code(), Some(0), "--init: {}", stderr(&out));
    let chain = newest_chain(&dir);

    let log = scratch_dir("client-cert-log").join("streamer.log");
    let mut args = vec![
        "-d",
        conninfo.as_str(),
        "--backup-dir",
        dir.to_str().unwrap(),
    ];
    args.extend(["-s", "1", "-F", "1"]);
    let mut streamer = Streamer::start(&args, &home, &log);
    streamer.wait_log("Writing to:", 60);
    setup.cluster.psql(
        "app",
        "INSERT INTO t VALUES (1, 'sent over a client-certificate stream')",
    );
    wait_for_text(&chain, "sent over a client-certificate stream", 60);

    // The replication connection the server sees is TLS with our certificate.
    let seen = setup.cluster.psql(
        "postgres",
        "SELECT s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
    );
    assert_eq!(seen.trim(), "t|/CN=postgres", "{}", streamer.log_text());

    let out = pg_scribe(
        &[
            "--status",
            "-d",
            &conninfo,
            "--backup-dir",
            dir.to_str().unwrap(),
        ],
        &home,
    );
    assert!(
        matches!(out.status.code(), Some(0 | 10)),
        "--status: {}",
        stderr(&out)
    );
    assert_eq!(streamer.stop(), Some(0));
}

#[test]
fn client_certificate_sources_and_refusals() {
    if !crate::harness::has_tls("client_certificate_sources_and_refusals") {
        return;
    }
    let setup = cert_cluster();
    let status = |conninfo: &str, env: &[(String, String)]| {
        pg_scribe(&["--status", "-w", "-d", conninfo, "--slot", "none"], env)
    };
    // Past the connection, the missing slot gives 3: that is how a working connection shows.
    let connected = |out: &std::process::Output, what: &str| {
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(out));
    };

    connected(&status(&setup.with_cert(), &empty_home()), "conninfo");

    let mut env = empty_home();
    env.push((
        "PGSSLCERT".into(),
        setup.pki.join("client.crt").display().to_string(),
    ));
    env.push((
        "PGSSLKEY".into(),
        setup.pki.join("client.key").display().to_string(),
    ));
    connected(&status(&setup.conninfo(""), &env), "PGSSLCERT/PGSSLKEY");

    // libpq's defaults: ~/.postgresql/postgresql.crt and .key.
    let home = scratch_dir("client-cert-default-home");
    let dotdir = home.join(".postgresql");
    std::fs::create_dir(&dotdir).unwrap();
    std::fs::copy(setup.pki.join("client.crt"), dotdir.join("postgresql.crt")).unwrap();
    std::fs::copy(setup.pki.join("client.key"), dotdir.join("postgresql.key")).unwrap();
    std::fs::set_permissions(
        dotdir.join("postgresql.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let home_env = vec![("HOME".to_string(), home.display().to_string())];
    connected(
        &status(&setup.conninfo(""), &home_env),
        "~/.postgresql defaults",
    );

    // An empty CRL of the CA: the server certificate is not revoked.
    let crl = |name: &str| format!("sslcrl={}", setup.pki.join(name).display());
    let with_crl = format!("{} {}", setup.with_cert(), crl("empty.crl"));
    connected(&status(&with_crl, &empty_home()), "empty CRL");

    // sslrootcert=system: the system store, here pointed at the test CA the way OpenSSL (and
    // rustls-native-certs) let one, through SSL_CERT_FILE; verify-full is implied.
    let system = format!(
        "host=localhost port={} user=postgres dbname=app sslrootcert=system sslcert={} sslkey={}",
        setup.cluster.port,
        setup.pki.join("client.crt").display(),
        setup.pki.join("client.key").display()
    );
    let mut env = empty_home();
    env.push((
        "SSL_CERT_FILE".into(),
        setup.pki.join("ca.crt").display().to_string(),
    ));
    connected(&status(&system, &env), "sslrootcert=system");
    let out = status(&format!("{system} sslmode=require"), &env);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("weak sslmode \"require\" may not be used with sslrootcert=system"),
        "{}",
        stderr(&out)
    );

    // No certificate: the server refuses, exit 2 with its message.
    let out = status(&setup.conninfo(""), &empty_home());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("connection requires a valid client certificate"),
        "no certificate: {}",
        stderr(&out)
    );

    // The key must not be readable by others (libpq's rule), checked before connecting.
    std::fs::set_permissions(
        dotdir.join("postgresql.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = status(&setup.conninfo(""), &home_env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has group or world access"),
        "{}",
        stderr(&out)
    );
    // A certificate without its key.
    std::fs::remove_file(dotdir.join("postgresql.key")).unwrap();
    let out = status(&setup.conninfo(""), &home_env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("certificate present, but not private key file"),
        "{}",
        stderr(&out)
    );

    // The CRL that revokes the server certificate, as a file and in an OpenSSL hashed
    // directory (`<issuer hash>.r0`).
    let crl_dir = scratch_dir("client-cert-crldir");
    let hash = Command::new("openssl")
        .args(["crl", "-hash", "-noout", "-in"])
        .arg(setup.pki.join("revoked.crl"))
        .output()
        .expect("openssl crl -hash");
    let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
    std::fs::copy(
        setup.pki.join("revoked.crl"),
        crl_dir.join(format!("{hash}.r0")),
    )
    .unwrap();
    for revoked in [
        format!("{} {}", setup.with_cert(), crl("revoked.crl")),
        format!("{} sslcrldir={}", setup.with_cert(), crl_dir.display()),
    ] {
        let out = status(&revoked, &empty_home());
        assert_eq!(out.status.code(), Some(2), "{revoked}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid peer certificate: Revoked"),
            "{}",
            stderr(&out)
        );
    }
}
