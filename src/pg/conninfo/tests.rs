//! Connection strings, URIs, services, `.pgpass` and resolution, checked without a server.

use std::os::unix::fs::PermissionsExt;

use super::parse::Pairs;
use super::*;

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        home: None,
        os_user: Some("osuser".into()),
    }
}

fn opts(dbname: Option<&str>) -> ConnOptions {
    ConnOptions {
        dbname: dbname.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn conninfo_strings_follow_libpq_quoting() {
    assert_eq!(
        parse_conninfo(" host=h  port = 5433 dbname='my db' password='it\\'s' user=a\\ b").unwrap(),
        pairs(&[
            ("host", "h"),
            ("port", "5433"),
            ("dbname", "my db"),
            ("password", "it's"),
            ("user", "a b")
        ])
    );
    assert_eq!(
        parse_conninfo("dbname=''").unwrap(),
        pairs(&[("dbname", "")])
    );
    assert!(
        parse_conninfo("host")
            .unwrap_err()
            .message
            .contains("missing \"=\" after \"host\"")
    );
    assert!(parse_conninfo("host='x").is_err());
    assert_eq!(
        parse_conninfo("bogus=1").unwrap_err().message,
        "invalid connection option \"bogus\""
    );
}

#[test]
fn uris_decode_every_part() {
    assert_eq!(
        parse_uri("postgresql://us%40er:p%3Ass@h1:5433,[::1]:5434,h3/my%20db?sslmode=require&application_name=a%26b").unwrap(),
        pairs(&[
            ("user", "us@er"),
            ("password", "p:ss"),
            ("host", "h1,::1,h3"),
            ("port", "5433,5434,"),
            ("dbname", "my db"),
            ("sslmode", "require"),
            ("application_name", "a&b"),
        ])
    );
    assert_eq!(
        parse_uri("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
        pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
    );
    assert_eq!(parse_uri("postgresql://").unwrap(), Pairs::new());
    assert_eq!(
        parse_uri("postgresql:///db?host=/tmp&ssl=true").unwrap(),
        pairs(&[("dbname", "db"), ("host", "/tmp"), ("sslmode", "require")])
    );
    assert!(parse_uri("postgresql://h/db?x").is_err());
    assert!(parse_uri("postgresql://h/%zz").is_err());
    assert!(parse_uri("postgresql://[::1/db").is_err());
}

#[test]
fn defaults_are_libpqs() {
    let p = resolve(&opts(None), &env(&[])).unwrap();
    assert_eq!(p.user, "osuser");
    assert_eq!(p.dbname, "osuser");
    assert_eq!(
        p.targets,
        vec![
            Target {
                host: Host::Unix("/var/run/postgresql".into()),
                port: 5432
            },
            Target {
                host: Host::Unix("/tmp".into()),
                port: 5432
            },
        ]
    );
    assert_eq!(p.sslmode, SslMode::Prefer);
    assert_eq!(p.application_name.as_deref(), Some("pg_scribe"));
    assert_eq!(p.connect_timeout, None);
}

#[test]
fn precedence_is_explicit_then_conninfo_then_env_then_default() {
    let e = env(&[
        ("PGHOST", "envhost"),
        ("PGPORT", "6000"),
        ("PGUSER", "envuser"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "require"),
        ("PGCONNECT_TIMEOUT", "1"),
    ]);
    let p = resolve(&opts(None), &e).unwrap();
    assert_eq!(
        p.targets,
        vec![Target {
            host: Host::Tcp("envhost".into()),
            port: 6000
        }]
    );
    assert_eq!((p.user.as_str(), p.dbname.as_str()), ("envuser", "envdb"));
    assert_eq!(p.sslmode, SslMode::Require);
    assert_eq!(
        p.connect_timeout,
        Some(Duration::from_secs(2)),
        "libpq raises 1 to 2"
    );

    let p = resolve(&opts(Some("host=cihost dbname=cidb sslmode=disable")), &e).unwrap();
    assert_eq!(p.targets[0].host, Host::Tcp("cihost".into()));
    assert_eq!(p.targets[0].port, 6000);
    assert_eq!(p.dbname, "cidb");
    assert_eq!(p.sslmode, SslMode::Disable);

    let mut o = opts(Some("postgresql://uriuser@urihost:7000/uridb"));
    o.host = Some("/sockets".into());
    o.username = Some("cliuser".into());
    let p = resolve(&o, &e).unwrap();
    assert_eq!(
        p.targets,
        vec![Target {
            host: Host::Unix("/sockets".into()),
            port: 7000
        }]
    );
    assert_eq!((p.user.as_str(), p.dbname.as_str()), ("cliuser", "uridb"));

    let p = resolve(&opts(Some("plaindb")), &e).unwrap();
    assert_eq!(p.dbname, "plaindb");
}

#[test]
fn multiple_hosts_pair_with_ports() {
    let p = resolve(&opts(Some("host=a,b,/s port=1,2,3")), &env(&[])).unwrap();
    let ports: Vec<u16> = p.targets.iter().map(|t| t.port).collect();
    assert_eq!(ports, vec![1, 2, 3]);
    assert_eq!(p.targets[2].host, Host::Unix("/s".into()));
    assert!(resolve(&opts(Some("host=a,b port=1,2,3")), &env(&[])).is_err());
    assert!(resolve(&opts(Some("port=x")), &env(&[])).is_err());
}

#[test]
fn service_file_fills_between_conninfo_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services");
    std::fs::write(
        &file,
        "# test\n[other]\nhost=nothere\n[svc]\nhost=svchost\nport = 6543\ndbname=svcdb\n",
    )
    .unwrap();
    let e = env(&[
        ("PGSERVICEFILE", file.to_str().unwrap()),
        ("PGHOST", "envhost"),
        ("PGUSER", "envuser"),
    ]);
    let p = resolve(&opts(Some("service=svc dbname=explicit")), &e).unwrap();
    assert_eq!(
        p.targets,
        vec![Target {
            host: Host::Tcp("svchost".into()),
            port: 6543
        }]
    );
    assert_eq!(p.dbname, "explicit");
    assert_eq!(p.user, "envuser");
    let missing = resolve(&opts(Some("service=nope")), &e).unwrap_err();
    assert_eq!(missing.message, "definition of service \"nope\" not found");
}

fn write_pgpass(dir: &std::path::Path, text: &str, mode: u32) -> PathBuf {
    let file = dir.join("pgpass");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

#[test]
fn pgpass_matching_wildcards_escapes_and_first_match() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pgpass(
        dir.path(),
        "# comment\nh1:5432:db:u:first\nh1:5432:db:u:second\n*:*:*:u2:wild\nh\\:x:*:*:*:esc\\:aped\\\\pw:ignored\nlocalhost:*:*:lu:local\n/sock:*:*:su:sock\n",
        0o600,
    );
    assert_eq!(
        pgpass_lookup(&file, "h1", 5432, "db", "u").as_deref(),
        Some("first")
    );
    assert_eq!(pgpass_lookup(&file, "h1", 5433, "db", "u"), None);
    assert_eq!(
        pgpass_lookup(&file, "any", 1, "x", "u2").as_deref(),
        Some("wild")
    );
    assert_eq!(
        pgpass_lookup(&file, "h:x", 1, "x", "y").as_deref(),
        Some("esc:aped\\pw")
    );

    let base = ConnParams {
        targets: vec![],
        user: "lu".into(),
        dbname: "d".into(),
        password: None,
        passfile: Some(file.clone()),
        sslmode: SslMode::Prefer,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
        sslcrl: None,
        sslcrldir: None,
        application_name: None,
        connect_timeout: None,
        no_password: false,
        options: None,
    };
    let default_socket = Target {
        host: Host::Unix("/var/run/postgresql".into()),
        port: 5432,
    };
    let other_socket = Target {
        host: Host::Unix("/sock".into()),
        port: 5432,
    };
    assert_eq!(base.password_for(&default_socket).as_deref(), Some("local"));
    assert_eq!(base.password_for(&other_socket), None);
    let su = ConnParams {
        user: "su".into(),
        ..base.clone()
    };
    assert_eq!(su.password_for(&other_socket).as_deref(), Some("sock"));
    let explicit = ConnParams {
        password: Some("given".into()),
        ..base
    };
    assert_eq!(
        explicit.password_for(&other_socket).as_deref(),
        Some("given")
    );
}

#[test]
fn pgpass_open_to_group_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pgpass(dir.path(), "*:*:*:*:secret\n", 0o640);
    assert_eq!(pgpass_lookup(&file, "h", 5432, "d", "u"), None);
    let file = write_pgpass(dir.path(), "*:*:*:*:secret\n", 0o400);
    assert_eq!(
        pgpass_lookup(&file, "h", 5432, "d", "u").as_deref(),
        Some("secret")
    );
    assert_eq!(
        pgpass_lookup(&dir.path().join("missing"), "h", 5432, "d", "u"),
        None
    );
    assert_eq!(
        pgpass_lookup(dir.path(), "h", 5432, "d", "u"),
        None,
        "a directory is not a password file"
    );
}

#[test]
fn subprocess_env_names_the_resolved_server() {
    let p = resolve(
        &opts(Some(
            "host=h1,h2 port=1,2 user=u dbname=d password=pw sslmode=verify-full",
        )),
        &env(&[]),
    )
    .unwrap();
    let vars: HashMap<&str, String> = p.subprocess_env().into_iter().collect();
    assert_eq!(vars["PGHOST"], "h1,h2");
    assert_eq!(vars["PGPORT"], "1,2");
    assert_eq!(vars["PGPASSWORD"], "pw");
    assert_eq!(vars["PGSSLMODE"], "verify-full");
    let one = p.for_target(&p.targets[1]);
    let vars: HashMap<&str, String> = one.subprocess_env().into_iter().collect();
    assert_eq!(
        (vars["PGHOST"].as_str(), vars["PGPORT"].as_str()),
        ("h2", "2")
    );
}

#[test]
fn client_certificates_crls_and_system_roots() {
    let e = env(&[
        ("PGSSLCERT", "/env/c.crt"),
        ("PGSSLKEY", "/env/c.key"),
        ("PGSSLCRL", "/env/root.crl"),
    ]);
    let p = resolve(&opts(Some("host=h sslkey=/conninfo/c.key")), &e).unwrap();
    assert_eq!(
        p.sslcert.as_deref(),
        Some(std::path::Path::new("/env/c.crt"))
    );
    assert_eq!(
        p.sslkey.as_deref(),
        Some(std::path::Path::new("/conninfo/c.key"))
    );
    assert_eq!(
        p.sslcrl.as_deref(),
        Some(std::path::Path::new("/env/root.crl"))
    );
    let vars: HashMap<&str, String> = p.subprocess_env().into_iter().collect();
    assert_eq!(vars["PGSSLCERT"], "/env/c.crt");
    assert_eq!(vars["PGSSLKEY"], "/conninfo/c.key");

    // sslrootcert=system implies verify-full and refuses anything weaker, as libpq 16+.
    let p = resolve(&opts(Some("host=h sslrootcert=system")), &env(&[])).unwrap();
    assert_eq!(p.sslmode, SslMode::VerifyFull);
    let err = resolve(
        &opts(Some("host=h sslrootcert=system sslmode=verify-ca")),
        &env(&[]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "weak sslmode \"verify-ca\" may not be used with sslrootcert=system (use \"verify-full\")"
    );
}
