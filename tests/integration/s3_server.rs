//! A real S3-compatible object store for the tests of `--backup-dir s3://…`: moto's server mode
//! (installed by scripts/install-moto.sh) on a free 127.0.0.1 port, one server with one bucket
//! per test, its data in memory. `pause`/`resume` freeze the server process (SIGSTOP/SIGCONT): the
//! store then accepts connections but never answers, the way a store behind a broken network
//! does, and keeps its objects for when it comes back. The server is killed when dropped, also
//! when a test panics. A small HTTP client lets tests look at the store without pg_scribe; moto
//! checks no signatures, so its requests carry a dummy `Authorization` (without one, moto treats
//! a request as anonymous and refuses reads).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::scratch_dir;

/// Where scripts/install-moto.sh puts moto's virtual environment.
const INSTALLED_PYTHON: &str = "/opt/pg_scribe/moto/bin/python";

/// The bucket every server has from the start.
pub const BUCKET: &str = "pg-scribe-test";

/// How long the requests of the helpers below wait for an answer (the server shares two cores
/// with parallel tests, so this is generous).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The interpreter that runs moto: `PG_SCRIBE_MOTO_PYTHON`, else the one scripts/install-moto.sh
/// installed, else `python3` from PATH. Checked once per test binary; panics with a hint when
/// moto's server mode cannot be imported by it.
fn moto_python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let python = std::env::var("PG_SCRIBE_MOTO_PYTHON")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                Path::new(INSTALLED_PYTHON)
                    .exists()
                    .then(|| INSTALLED_PYTHON.to_string())
            })
            .unwrap_or_else(|| "python3".to_string());
        let out = Command::new(&python)
            .args(["-c", "import moto.server, flask, flask_cors"])
            .output();
        match out {
            Ok(out) if out.status.success() => python,
            Ok(out) => panic!(
                "moto's server mode does not import with {python}:\n{}\nhint: run scripts/install-deps.sh (or scripts/install-moto.sh), or point PG_SCRIBE_MOTO_PYTHON at a python with moto[server]",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!(
                "could not run {python}: {e}\nhint: run scripts/install-deps.sh (or scripts/install-moto.sh), or point PG_SCRIBE_MOTO_PYTHON at a python with moto[server]"
            ),
        }
    })
}

/// A running moto server with the bucket [`BUCKET`].
pub struct S3Server {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    paused: bool,
}

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl S3Server {
    /// Start a server on a free port and create the bucket. Another process may take the port
    /// between the probe and moto's bind (tests run in parallel), so a lost race is retried on
    /// another port.
    pub fn start() -> S3Server {
        let python = moto_python();
        let dir = scratch_dir("s3");
        for attempt in 1..=5 {
            let port = free_port();
            let log_path = dir.join(format!("moto-{attempt}.log"));
            let log = std::fs::File::create(&log_path).expect("moto log");
            let child = Command::new(python)
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("moto log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {python} -m moto.server: {e}"));
            let mut server = S3Server {
                child,
                port,
                dir: dir.clone(),
                paused: false,
            };
            if server.wait_ready(&log_path) {
                return server;
            }
            // Dropping it kills what is left; try the next port.
        }
        panic!(
            "moto never came up on a free port; logs in {} (PG_SCRIBE_KEEP_TEST_DIRS=1 keeps them)",
            dir.display()
        );
    }

    /// Wait until the server answers by creating the bucket: true when done, false when the
    /// port was taken. Panics on any other failure.
    fn wait_ready(&mut self, log: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if text.contains("Address already in use") {
                    return false;
                }
                panic!("moto exited ({status}) while starting:\n{text}");
            }
            match self.request_with_timeout("PUT", &format!("/{BUCKET}"), b"", REQUEST_TIMEOUT) {
                Ok(answer) if answer.status == 200 => return true,
                Ok(answer) => panic!(
                    "moto refused to create bucket {BUCKET}: HTTP {}\n{}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ),
                Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on port {} within 120 s:\n{}",
                self.port,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The backup directory URL for `prefix` in the bucket: `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{}", prefix.trim_matches('/'))
    }

    /// The environment a child (pg_scribe) needs to reach this store: dummy credentials, the
    /// region, the endpoint and plain HTTP allowed. The endpoint comes under both names the
    /// AWS tools and the object_store crate read, and the EC2 metadata service is never asked.
    pub fn env(&self) -> Vec<(String, String)> {
        let endpoint = self.endpoint();
        [
            ("AWS_ACCESS_KEY_ID", "pg_scribe_test"),
            ("AWS_SECRET_ACCESS_KEY", "pg_scribe_test_secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ENDPOINT", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Freeze the server: connections are accepted by the kernel but nothing answers, and the
    /// objects stay in memory for `resume`.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child, which has not been reaped (it is reaped in Drop).
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) of moto failed");
    }

    /// The server's log (one line per request), for a failing test's message.
    pub fn log_text(&self) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        logs.sort();
        logs.last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// One HTTP request to the server (`path` starts with `/BUCKET`), waiting at most `timeout`
    /// for the whole answer. Err when there is no answer in time or no connection.
    pub fn request_with_timeout(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::io::Result<Answer> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=pg_scribe_test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            port = self.port,
            len = body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let deadline = Instant::now() + timeout;
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            if Instant::now() > deadline {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            match stream.read(&mut buf)? {
                0 => break,
                n => raw.extend_from_slice(&buf[..n]),
            }
        }
        parse_answer(&raw)
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        self.request_with_timeout(method, path, body, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path} to moto: {e}"))
    }

    /// Store `body` under `key` of the bucket.
    pub fn put_object(&self, key: &str, body: &[u8]) {
        let answer = self.request("PUT", &format!("/{BUCKET}/{key}"), body);
        assert_eq!(answer.status, 200, "PUT {key}: {answer:?}");
    }

    /// The object `key`, or None when the bucket has no such key.
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let answer = self.request("GET", &format!("/{BUCKET}/{key}"), b"");
        match answer.status {
            200 => Some(answer.body),
            404 => None,
            status => panic!(
                "GET {key}: HTTP {status}: {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    }

    /// The keys of the bucket under `prefix`, sorted (as S3 lists them).
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let answer = self.request(
            "GET",
            &format!("/{BUCKET}?list-type=2&max-keys=1000&prefix={prefix}"),
            b"",
        );
        assert_eq!(answer.status, 200, "LIST {prefix}: {answer:?}");
        let xml = String::from_utf8_lossy(&answer.body);
        assert!(
            !xml.contains("<IsTruncated>true</IsTruncated>"),
            "more than 1000 keys under {prefix}: the test helper lists one page only"
        );
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(|key| {
                key.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&")
            })
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; no SIGCONT needed first.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Status and body of a raw HTTP/1.1 answer (body plain or chunked).
fn parse_answer(raw: &[u8]) -> std::io::Result<Answer> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = memchr::memmem::find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let eol = memchr::memmem::find(rest, b"\r\n").ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("short chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        out
    } else {
        body.to_vec()
    };
    Ok(Answer { status, body })
}

#[test]
fn starts_round_trips_objects_and_pauses() {
    // Two servers at once, as parallel tests have them: each its own port and its own data.
    let (mut a, b) = std::thread::scope(|s| {
        let a = s.spawn(S3Server::start);
        let b = s.spawn(S3Server::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port, b.port);
    assert_eq!(a.url("/backups/db1/"), format!("s3://{BUCKET}/backups/db1"));
    let env = a.env();
    assert!(env.contains(&("AWS_ENDPOINT_URL".to_string(), a.endpoint())));

    let body: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    a.put_object("backups/db1/chain-1/base.sql", &body);
    a.put_object("backups/db1/chain-1/diff-1.sql", b"-- one\n");
    assert_eq!(
        a.get_object("backups/db1/chain-1/base.sql").as_deref(),
        Some(&body[..])
    );
    assert_eq!(a.get_object("backups/db1/missing"), None);
    assert_eq!(
        a.list("backups/db1/"),
        [
            "backups/db1/chain-1/base.sql",
            "backups/db1/chain-1/diff-1.sql"
        ]
    );
    assert!(b.list("backups/").is_empty(), "servers share data");
    assert!(
        a.log_text()
            .contains("PUT /pg-scribe-test/backups/db1/chain-1/base.sql")
    );

    // Paused: a request gets no answer (the connection itself may well succeed).
    a.pause();
    assert!(a.is_paused());
    let started = Instant::now();
    let frozen = a.request_with_timeout(
        "GET",
        &format!("/{BUCKET}/backups/db1/chain-1/diff-1.sql"),
        b"",
        Duration::from_secs(2),
    );
    assert!(
        frozen.is_err(),
        "a paused server answered: {frozen:?} after {:?}",
        started.elapsed()
    );
    // The other server is not affected.
    assert!(b.list("backups/").is_empty());
    a.resume();
    assert_eq!(
        a.get_object("backups/db1/chain-1/diff-1.sql").as_deref(),
        Some(&b"-- one\n"[..])
    );
    // Dropped while paused: the kill still ends it.
    a.pause();
}
