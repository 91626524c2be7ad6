//! A minimal throwaway PostgreSQL cluster for the replication tests: initdb into a temp dir, a
//! free port on 127.0.0.1, the socket in the temp dir, stopped and removed on drop. Kept small
//! so it can be swapped for the shared harness in `tests/integration/harness.rs`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pg_scribe::conninfo::{ConnParams, Host, SslMode, Target};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Runs a PostgreSQL tool as the `postgres` OS user when we are root (the server refuses root).
pub fn pg_command(tool: &str) -> Command {
    let path = Path::new(PG_BIN).join(tool);
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// Hands a path to the `postgres` OS user when we are root.
pub fn give_to_postgres(path: &Path) {
    if unsafe { libc::geteuid() } == 0 {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", path.display());
    }
}

fn run(mut c: Command) {
    let out = c.output().expect("run command");
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts a cluster set up for logical replication. `extra_conf` lines are appended to
    /// postgresql.conf; `hba` replaces pg_hba.conf when given (local trust is always first).
    pub fn start(extra_conf: &[&str], hba: Option<&str>) -> Cluster {
        Cluster::start_with(extra_conf, hba, |_| {})
    }

    /// Like [`start`](Self::start), with a hook that can place files (certificates) in the data
    /// directory before the server starts.
    pub fn start_with(
        extra_conf: &[&str],
        hba: Option<&str>,
        prepare: impl FnOnce(&Path),
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("pg_scribe_repl")
            .tempdir()
            .unwrap();
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(initdb);
        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n\
             wal_sender_timeout = '10s'\noutput_plugin_libraries = 'pgoutput, test_decoding'\n\
             fsync = off\n",
            dir.path().display()
        );
        for l in extra_conf {
            conf.push_str(l);
            conf.push('\n');
        }
        append(&data.join("postgresql.conf"), &conf);
        if let Some(hba) = hba {
            std::fs::write(
                data.join("pg_hba.conf"),
                format!("local all all trust\n{hba}\n"),
            )
            .unwrap();
        }
        prepare(&data);
        give_to_postgres(dir.path());
        let c = Cluster { dir, port };
        c.pg_ctl(&["start", "-w", "-t", "30"]);
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `pg_ctl` for this cluster. The log file option matters: without it a (re)started server
    /// inherits our stdout and a caller waiting for the output would wait forever.
    pub fn pg_ctl_command(&self, args: &[&str]) -> Command {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(args)
            .stdout(std::process::Stdio::null());
        c
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        run(self.pg_ctl_command(args));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Connection parameters for the Unix socket, as the postgres superuser.
    pub fn params(&self) -> ConnParams {
        ConnParams {
            targets: vec![Target {
                host: Host::Unix(self.socket_dir().to_owned()),
                port: self.port,
            }],
            user: "postgres".into(),
            dbname: "postgres".into(),
            password: None,
            passfile: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
            application_name: Some("pg_scribe_test".into()),
            connect_timeout: Some(Duration::from_secs(10)),
            no_password: true,
        }
    }

    /// Connection parameters for TCP on 127.0.0.1 (or another name for this machine).
    pub fn tcp_params(&self, host: &str, user: &str, sslmode: SslMode) -> ConnParams {
        ConnParams {
            targets: vec![Target {
                host: Host::Tcp(host.into()),
                port: self.port,
            }],
            user: user.into(),
            sslmode,
            ..self.params()
        }
    }

    /// A superuser SQL connection over the socket.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(self.socket_dir())
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("SQL connection");
        tokio::spawn(conn);
        client
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.data_dir())
            .args(["stop", "-m", "immediate", "-w"]);
        let _ = c.output();
    }
}
