//! Throwaway PostgreSQL clusters for the integration tests: initdb once per test binary into a
//! template, then a copy per cluster with its own free port and a socket in its own temp dir;
//! logical decoding on, wal2sql allowed (and preloaded once it is installed). When the tests run
//! as root the server runs as the `postgres` OS user, since PostgreSQL refuses root. A cluster is
//! stopped and removed when dropped, also when a test panics. The server is the one of
//! `PG_BINDIR` (`make test` sets it from `PG_VERSION`); a test may also start a cluster of another
//! installed major version (`Cluster::start_version`), as the cross-version restore does.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use pg_scribe::pg::conninfo::{ConnParams, Host, SslMode, Target};

pub const SUPERUSER: &str = "postgres";

pub fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
    if debian.join("postgres").exists() {
        return debian;
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The major version of the server in `bindir` (`postgres --version`).
pub fn server_major(bindir: &Path) -> u32 {
    // "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    let text = installation_says(bindir, "postgres", "--version");
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected postgres --version: {text}"))
}

/// The programs of PostgreSQL `major`: the default server's when it is that version, else
/// Debian's versioned directory (where scripts/install-pg.sh links the majors Debian lacks); None
/// when not installed.
pub fn bindir_for(major: u32) -> Option<PathBuf> {
    let default = bindir();
    if server_major(&default) == major {
        return Some(default);
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    debian.join("postgres").exists().then_some(debian)
}

/// The stdout of `program arg` of the installation in `bindir`, run once per test binary: what
/// a server build knows and has does not change while the tests run.
fn installation_says(bindir: &Path, program: &str, arg: &str) -> String {
    type Key = (PathBuf, String, String);
    static CACHE: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get_or_insert_with(HashMap::new)
        .entry((bindir.to_path_buf(), program.into(), arg.into()))
        .or_insert_with(|| {
            let out = Command::new(bindir.join(program))
                .arg(arg)
                .output()
                .unwrap_or_else(|e| panic!("{program} {arg}: {e}"));
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone()
}

/// What `pg_config --configure` of this installation says (which optional features it has).
fn configure_options(bindir: &Path) -> String {
    installation_says(bindir, "pg_config", "--configure")
}

/// Whether the default server has the `xml` type (built with libxml). Tests that use it put
/// `text` in its place otherwise, and say so once.
pub fn has_xml() -> bool {
    let has = configure_options(&bindir()).contains("--with-libxml");
    if !has {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "note: this server is built without libxml: xml columns of the tests are text"
            )
        });
    }
    has
}

/// `sql` with its `xml` columns as `text` when the default server has no xml type.
pub fn without_missing_xml(sql: &str) -> String {
    if has_xml() {
        sql.to_string()
    } else {
        sql.replace(" xml,", " text,").replace(" xml)", " text)")
    }
}

/// Whether the default server can do TLS; when not, a TLS test says so and skips.
pub fn has_tls(test: &str) -> bool {
    let options = configure_options(&bindir());
    let has = options.contains("--with-openssl") || options.contains("--with-ssl=openssl");
    if !has {
        eprintln!("skipped {test}: this server is built without TLS support");
    }
    has
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run a PostgreSQL server program as the OS user that may run it.
fn server_command(bindir: &Path, program: &str) -> Command {
    let path = bindir.join(program);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

fn give_to_server_user(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {} failed", path.display());
    }
}

fn check(output: Output, what: &str) -> String {
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

static SCRATCH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Remove every scratch directory when the test binary exits, unless PG_SCRIBE_KEEP_TEST_DIRS
/// is set (to look at what a failing test left).
extern "C" fn remove_scratch_dirs() {
    if std::env::var_os("PG_SCRIBE_KEEP_TEST_DIRS").is_some() {
        return;
    }
    if let Ok(dirs) = SCRATCH.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh directory under the system temp dir that the server user can enter.
pub fn scratch_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(remove_scratch_dirs);
        }
    }
    let dir = std::env::temp_dir().join(format!("pg_scribe-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    SCRATCH
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.clone());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Whether this server knows `output_plugin_libraries` (15.19+ and other new minors); older
/// ones refuse to start when it is set.
pub fn has_output_plugin_libraries() -> bool {
    knows_output_plugin_libraries(&bindir())
}

fn knows_output_plugin_libraries(bindir: &Path) -> bool {
    installation_says(bindir, "postgres", "--describe-config").contains("output_plugin_libraries")
}

/// Whether the wal2sql library is installed into this server's lib dir.
pub fn wal2sql_installed() -> bool {
    wal2sql_installed_in(&bindir())
}

fn wal2sql_installed_in(bindir: &Path) -> bool {
    let out = Command::new(bindir.join("pg_config"))
        .arg("--pkglibdir")
        .output();
    match out {
        Ok(out) => Path::new(String::from_utf8_lossy(&out.stdout).trim())
            .join("wal2sql.so")
            .exists(),
        Err(_) => false,
    }
}

/// The initdb'ed template data directory of the server in `bindir` (one per test binary and
/// server, removed at exit with the other scratch dirs).
fn template(bindir: &Path) -> PathBuf {
    static TEMPLATES: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
    let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    let templates = templates.get_or_insert_with(HashMap::new);
    if let Some(data) = templates.get(bindir) {
        return data.clone();
    }
    let data = {
        let dir = scratch_dir("template");
        give_to_server_user(&dir);
        let data = dir.join("data");
        check(
            server_command(bindir, "initdb")
                .args([
                    "-N",
                    "-A",
                    "trust",
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-D",
                ])
                .arg(&data)
                .output()
                .expect("initdb"),
            "initdb",
        );
        data
    };
    templates.insert(bindir.to_path_buf(), data.clone());
    data
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Cluster {
    /// The programs of this cluster's server version.
    pub bindir: PathBuf,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    running: bool,
}

impl Cluster {
    /// A running cluster with the default test settings.
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// A running cluster with extra `postgresql.conf` lines.
    pub fn start_with(extra_conf: &[&str]) -> Cluster {
        Cluster::start_in(&bindir(), extra_conf)
    }

    /// A running cluster of PostgreSQL `major`, or None (after saying why `test` skips) when
    /// that version is not installed.
    pub fn start_version(major: u32, test: &str) -> Option<Cluster> {
        match bindir_for(major) {
            Some(dir) => Some(Cluster::start_in(&dir, &[])),
            None => {
                eprintln!(
                    "skipped {test}: PostgreSQL {major} is not installed (scripts/install-deps.sh installs 14 to 18, scripts/install-pg.sh 13 installs 13)"
                );
                None
            }
        }
    }

    /// The major version of this cluster's server.
    pub fn major(&self) -> u32 {
        server_major(&self.bindir)
    }

    fn start_in(bindir: &Path, extra_conf: &[&str]) -> Cluster {
        let dir = scratch_dir("cluster");
        let data = dir.join("data");
        let socket_dir = dir.join("sock");
        std::fs::create_dir_all(&socket_dir).expect("socket dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template(bindir))
            .arg(&data)
            .status()
            .expect("cp");
        assert!(status.success(), "copying the template cluster failed");
        let port = free_port();
        let mut conf = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", socket_dir.display()),
            "wal_level = logical".into(),
            "max_wal_senders = 10".into(),
            "max_replication_slots = 10".into(),
            "wal_sender_timeout = 10s".into(),
            "fsync = off".into(),
            "log_min_messages = warning".into(),
            "log_line_prefix = '%m [%p] %q%u@%d '".into(),
        ];
        if knows_output_plugin_libraries(bindir) {
            conf.push("output_plugin_libraries = 'pgoutput, test_decoding, wal2sql'".into());
        }
        if wal2sql_installed_in(bindir) {
            conf.push("shared_preload_libraries = 'wal2sql'".into());
        }
        conf.extend(extra_conf.iter().map(|s| s.to_string()));
        append(&data.join("postgresql.conf"), &conf.join("\n"));
        give_to_server_user(&dir);
        let mut cluster = Cluster {
            bindir: bindir.to_path_buf(),
            dir,
            data,
            socket_dir,
            port,
            running: false,
        };
        cluster.pg_ctl_start();
        cluster
    }

    fn pg_ctl_start(&mut self) {
        check(
            server_command(&self.bindir, "pg_ctl")
                .args(["-w", "-t", "60", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .arg("start")
                .output()
                .expect("pg_ctl start"),
            "pg_ctl start",
        );
        self.running = true;
    }

    pub fn stop(&mut self, mode: &str) {
        if self.running {
            let _ = server_command(&self.bindir, "pg_ctl")
                .args(["-w", "-t", "60", "-m", mode, "-D"])
                .arg(&self.data)
                .arg("stop")
                .output();
            self.running = false;
        }
    }

    pub fn restart(&mut self) {
        self.stop("fast");
        self.pg_ctl_start();
    }

    pub fn reload(&self) {
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// Add `postgresql.conf` lines (takes effect at the next restart or reload).
    pub fn configure(&self, lines: &str) {
        append(&self.data.join("postgresql.conf"), lines);
    }

    /// Replace `pg_hba.conf`; local (socket) connections stay trusted so the harness can work.
    pub fn set_hba(&self, lines: &str) {
        let text = format!("local all all trust\nlocal replication all trust\n{lines}\n");
        std::fs::write(self.data.join("pg_hba.conf"), text).expect("write pg_hba.conf");
        give_to_server_user(&self.data.join("pg_hba.conf"));
        self.reload();
    }

    /// Turn on TLS with a self-signed certificate for `localhost` and 127.0.0.1; returns the
    /// certificate (its own CA) for `sslrootcert`.
    pub fn enable_ssl(&mut self) -> PathBuf {
        let crt = self.data.join("server.crt");
        let key = self.data.join("server.key");
        check(
            Command::new("openssl")
                .args([
                    "req",
                    "-new",
                    "-x509",
                    "-days",
                    "2",
                    "-nodes",
                    "-subj",
                    "/CN=localhost",
                ])
                .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
                .args(["-newkey", "rsa:2048", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .output()
                .expect("openssl"),
            "openssl req",
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        give_to_server_user(&self.data);
        self.configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
        self.restart();
        let ca = self.dir.join("root.crt");
        std::fs::copy(&crt, &ca).expect("copy certificate");
        ca
    }

    /// Connection parameters over the Unix socket as the superuser.
    pub fn params(&self, dbname: &str) -> ConnParams {
        ConnParams {
            targets: vec![Target {
                host: Host::Unix(self.socket_dir.clone()),
                port: self.port,
            }],
            user: SUPERUSER.into(),
            dbname: dbname.into(),
            password: None,
            passfile: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            sslcrl: None,
            sslcrldir: None,
            application_name: Some("pg_scribe_tests".into()),
            connect_timeout: None,
            no_password: true,
            options: None,
        }
    }

    /// The same over TCP on 127.0.0.1.
    pub fn tcp_params(&self, dbname: &str) -> ConnParams {
        ConnParams {
            targets: vec![Target {
                host: Host::Tcp("127.0.0.1".into()),
                port: self.port,
            }],
            ..self.params(dbname)
        }
    }

    /// Environment variables that point libpq clients (and pg_scribe) at this cluster.
    pub fn env(&self, dbname: &str) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.socket_dir.display().to_string()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
            ("PGDATABASE".into(), dbname.into()),
        ]
    }

    /// Run SQL with psql over the socket; returns unaligned, tuples-only output. Panics on error.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        check(self.try_psql(dbname, sql), &format!("psql {sql:?}"))
    }

    pub fn try_psql(&self, dbname: &str, sql: &str) -> Output {
        Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .output()
            .expect("psql")
    }

    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    writeln!(file, "\n{text}").expect("append");
}

/// Run the pg_scribe binary with a clean libpq environment plus `env`.
pub fn pg_scribe(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg_scribe"));
    cmd.args(args);
    for var in pg_scribe::pg::conninfo::SUBPROCESS_CLEARED_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("PG_COLOR");
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.stdin(std::process::Stdio::null());
    cmd.output().expect("run pg_scribe")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

impl Cluster {
    /// Run an SQL file with psql, stopping at the first error; `options` become PGOPTIONS.
    pub fn psql_file(&self, dbname: &str, file: &Path, options: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bindir.join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-f",
            ])
            .arg(file)
            .env_remove("PGPASSWORD");
        if let Some(options) = options {
            cmd.env("PGOPTIONS", options);
        }
        cmd.output().expect("psql -f")
    }

    /// One line per ordinary table of `dbname` (outside system schemas): name, row count and an
    /// md5 over its rows in a stable order. Two databases are equal when these lists are.
    pub fn table_digests(&self, dbname: &str) -> String {
        self.psql(
            dbname,
            "CREATE FUNCTION pg_temp.rows_md5(r regclass) RETURNS text LANGUAGE plpgsql AS $$
               DECLARE h text;
               BEGIN
                 EXECUTE format('SELECT count(*) || '' '' || md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) FROM ONLY %s t', r) INTO h;
                 RETURN h;
               END $$;
             SELECT c.oid::regclass::text || ' ' || pg_temp.rows_md5(c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'wal2sql')
                AND n.nspname NOT LIKE 'pg\\_%'
              ORDER BY 1",
        )
    }
}

/// The replay session settings a restore uses: no triggers fire twice, DDL is not captured again,
/// and the output settings the text forms of FULL identity comparisons are written with.
pub const REPLAY_OPTIONS: &str = "-c session_replication_role=replica -c wal2sql.capture=off -c TimeZone=UTC -c IntervalStyle=postgres -c DateStyle=ISO -c extra_float_digits=3 -c bytea_output=hex";

/// A `pg_scribe --start` running in the background, its stderr in a file.
pub struct Streamer {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Streamer {
    pub fn start(args: &[&str], env: &[(String, String)], log: &Path) -> Streamer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg_scribe"));
        cmd.arg("--start").args(args);
        for var in pg_scribe::pg::conninfo::SUBPROCESS_CLEARED_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("streamer log");
        cmd.stdin(std::process::Stdio::null()).stderr(file);
        Streamer {
            child: cmd.spawn().expect("spawn pg_scribe --start"),
            log: log.to_path_buf(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `text` (panics after `secs`).
    pub fn wait_log(&mut self, text: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.log_text().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "streamer exited ({status}) before logging {text:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "streamer never logged {text:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.child.wait().expect("wait streamer").code()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client program run as background load (pgbench): continued and killed when dropped, so a
/// test that fails while the load is paused (SIGSTOP) leaves no stopped process behind.
pub struct Background(pub std::process::Child);

impl Background {
    pub fn pause(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGCONT) };
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.resume();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until some file of `chain_dir` contains `text` (a marker a test wrote into the source).
pub fn wait_for_text(chain_dir: &Path, text: &str, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let found = std::fs::read_dir(chain_dir).expect("chain dir").any(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name == "active.sql" || name.starts_with("diff-"))
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(text))
        });
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} never reached {}",
            chain_dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The chain directory of `dir` (the only, or the newest, `chain-*`).
pub fn newest_chain(dir: &Path) -> PathBuf {
    let mut chains: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("backup dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chain-")
        })
        .collect();
    chains.sort();
    chains.pop().expect("a chain")
}

/// The differentials of a chain in replay order: sealed diffs by name, then `active.sql`.
pub fn chain_diffs(chain: &Path, with_active: bool) -> Vec<PathBuf> {
    let mut diffs: Vec<PathBuf> = std::fs::read_dir(chain)
        .expect("chain dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("diff-") && name.ends_with(".sql")
        })
        .collect();
    diffs.sort();
    if with_active && chain.join("active.sql").exists() {
        diffs.push(chain.join("active.sql"));
    }
    diffs
}

impl Cluster {
    /// Replay a chain by hand the way the design says it can be: globals, base, then every
    /// differential with psql, into a new database `target`.
    pub fn replay_chain(&self, chain: &Path, target: &str, with_active: bool) {
        self.create_database(target);
        let _ = self.psql_file("postgres", &chain.join("globals.sql"), None);
        let out = self.psql_file(
            target,
            &chain.join("base.sql"),
            Some("-c wal2sql.capture=off"),
        );
        assert!(
            out.status.success(),
            "base: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for diff in chain_diffs(chain, with_active) {
            let out = self.psql_file(target, &diff, Some(REPLAY_OPTIONS));
            assert!(
                out.status.success(),
                "{}: {}",
                diff.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Every transaction header in the chain's differentials (xid and end LSN), in file order.
pub fn chain_transactions(chain: &Path) -> Vec<String> {
    chain_diffs(chain, true)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("-- wal2sql begin "))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Cluster {
    /// Database `app` with the wal2sql extension (so new tables get a replica identity) and
    /// pgbench's tables at scale 1.
    pub fn pgbench_source(&self) {
        self.create_database("app");
        self.psql("app", "CREATE EXTENSION wal2sql");
        let out = Command::new(self.bindir.join("pgbench"))
            .args(["-q", "-i", "-s", "1"])
            .envs(self.env("app"))
            .output()
            .expect("pgbench -i");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
