//! Compression of backup files: the `--compress gzip|lz4|zstd|none[:level]` setting, the file
//! extension each method uses, an async writer that streams bytes (e.g. pg_dump's stdout)
//! through the compressor into a new private file while computing the on-disk size and SHA-256
//! (for metadata.json), and an async reader that decompresses by file extension.
//!
//! Level ranges and messages follow PostgreSQL's own compression specifications (pg_dump,
//! pg_basebackup) so users see familiar words: gzip 1–9, lz4 1–12, zstd 1–22; `zstd:9` and
//! `zstd:level=9` are both accepted.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::bufread::{GzipDecoder, Lz4Decoder, ZstdDecoder};
use async_compression::tokio::write::{GzipEncoder, Lz4Encoder, ZstdEncoder};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::storage::durable;
use crate::storage::error::{ChainError, Result};

/// Ordered with `None` first, which sealed-diff listing relies on to prefer a plain file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    None,
    Gzip,
    Lz4,
    Zstd,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Gzip => "gzip",
            Method::Lz4 => "lz4",
            Method::Zstd => "zstd",
        }
    }

    /// Appended to `base.sql`, `globals.sql` and sealed diff names.
    pub fn extension(self) -> &'static str {
        match self {
            Method::None => "",
            Method::Gzip => ".gz",
            Method::Lz4 => ".lz4",
            Method::Zstd => ".zst",
        }
    }

    pub const ALL: [Method; 4] = [Method::None, Method::Gzip, Method::Lz4, Method::Zstd];

    /// The method a file was written with, from its name's extension.
    pub(crate) fn from_file_name(name: &str) -> Method {
        Method::ALL
            .into_iter()
            .rev()
            .find(|m| !m.extension().is_empty() && name.ends_with(m.extension()))
            .unwrap_or(Method::None)
    }

    fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Method::None => None,
            Method::Gzip => Some((1, 9)),
            Method::Lz4 => Some((1, 12)),
            Method::Zstd => Some((1, 22)),
        }
    }
}

/// A compression method and optional level (`None` = the library's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compression {
    pub method: Method,
    pub level: Option<i32>,
}

impl Compression {
    pub(crate) const NONE: Compression = Compression {
        method: Method::None,
        level: None,
    };

    pub fn extension(&self) -> &'static str {
        self.method.extension()
    }

    fn quality(&self) -> Level {
        self.level.map_or(Level::Default, Level::Precise)
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::NONE
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method.name())?;
        if let Some(l) = self.level {
            write!(f, ":{l}")?;
        }
        Ok(())
    }
}

impl FromStr for Compression {
    type Err = ChainError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| ChainError::InvalidCompression(m);
        let (name, detail) = match s.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        let method = Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| bad(format!("unrecognized compression algorithm: \"{name}\"")))?;
        let Some(detail) = detail else {
            return Ok(Compression {
                method,
                level: None,
            });
        };
        let value = detail.strip_prefix("level=").unwrap_or(detail);
        let Some((lo, hi)) = method.level_range() else {
            return Err(bad(format!(
                "compression algorithm \"{name}\" does not accept a compression level"
            )));
        };
        let level: i32 = value.parse().map_err(|_| {
            bad("value for compression option \"level\" must be an integer".to_string())
        })?;
        if !(lo..=hi).contains(&level) {
            return Err(bad(format!(
                "compression algorithm \"{name}\" expects a compression level between {lo} and {hi}"
            )));
        }
        Ok(Compression {
            method,
            level: Some(level),
        })
    }
}

// Stored in metadata.json in the same spelling as the command-line option.
impl serde::Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of a SHA-256 digest, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts and hashes what reaches the file, so the recorded digest is that of the bytes on
/// disk (checkable with `sha256sum`).
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.hasher.update(&buf[..n]);
        this.size += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Large enough that a fast pg_dump is not slowed by small writes to the file.
const WRITE_BUF: usize = 256 * 1024;

type Sink = Hashing<tokio::io::BufWriter<tokio::fs::File>>;

enum Encoder {
    None(Sink),
    Gzip(GzipEncoder<Sink>),
    Lz4(Lz4Encoder<Sink>),
    Zstd(ZstdEncoder<Sink>),
}

macro_rules! dispatch {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Encoder::None($e) => $body,
            Encoder::Gzip($e) => $body,
            Encoder::Lz4($e) => $body,
            Encoder::Zstd($e) => $body,
        }
    };
}

/// What was written: `size` and `sha256` describe the file on disk, `raw_size` the bytes given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub raw_size: u64,
}

/// A new private file receiving compressed bytes. Call [`CompressedWriter::finish`]; a writer
/// dropped without it leaves a partial file that the caller removes.
pub struct CompressedWriter {
    enc: Encoder,
    path: PathBuf,
    raw_size: u64,
}

impl CompressedWriter {
    /// Creates `path` (which must not exist) with mode 0600.
    pub async fn create(path: &Path, c: Compression) -> Result<Self> {
        let std_file = durable::create_private_file(path)?;
        let file = tokio::fs::File::from_std(std_file);
        let sink = Hashing {
            inner: tokio::io::BufWriter::with_capacity(WRITE_BUF, file),
            hasher: Sha256::new(),
            size: 0,
        };
        let q = c.quality();
        let enc = match c.method {
            Method::None => Encoder::None(sink),
            Method::Gzip => Encoder::Gzip(GzipEncoder::with_quality(sink, q)),
            Method::Lz4 => Encoder::Lz4(Lz4Encoder::with_quality(sink, q)),
            Method::Zstd => Encoder::Zstd(ZstdEncoder::with_quality(sink, q)),
        };
        Ok(CompressedWriter {
            enc,
            path: path.to_path_buf(),
            raw_size: 0,
        })
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        dispatch!(&mut self.enc, e => e.write_all(data).await)
            .map_err(|e| ChainError::file("write", &self.path, e))?;
        self.raw_size += data.len() as u64;
        Ok(())
    }

    /// Copies `src` to the end (e.g. a child's stdout) through the compressor.
    pub(crate) async fn copy_from<R: AsyncRead + Unpin>(&mut self, src: &mut R) -> Result<u64> {
        let mut src = BufReader::with_capacity(WRITE_BUF, src);
        let n =
            dispatch!(&mut self.enc, e => tokio::io::copy_buf(&mut src, e).await).map_err(|e| {
                ChainError::io(
                    format!("could not copy data into file \"{}\"", self.path.display()),
                    e,
                )
            })?;
        self.raw_size += n;
        Ok(n)
    }

    /// Ends the compressed stream, fsyncs the file and its directory, and reports its digest.
    pub async fn finish(mut self) -> Result<WrittenFile> {
        dispatch!(&mut self.enc, e => e.shutdown().await)
            .map_err(|e| ChainError::file("write", &self.path, e))?;
        let sink = match self.enc {
            Encoder::None(s) => s,
            Encoder::Gzip(e) => e.into_inner(),
            Encoder::Lz4(e) => e.into_inner(),
            Encoder::Zstd(e) => e.into_inner(),
        };
        let file = sink.inner.into_inner();
        file.sync_all()
            .await
            .map_err(|e| ChainError::file("fsync", &self.path, e))?;
        drop(file);
        durable::fsync_dir(durable::parent_of(&self.path))?;
        Ok(WrittenFile {
            path: self.path,
            size: sink.size,
            sha256: hex(&sink.hasher.finalize()),
            raw_size: self.raw_size,
        })
    }
}

/// Streams `src` into a new file at `path` compressed with `c`; on error the partial file is
/// removed.
pub(crate) async fn write_stream<R: AsyncRead + Unpin>(
    src: &mut R,
    path: &Path,
    c: Compression,
) -> Result<WrittenFile> {
    let mut w = CompressedWriter::create(path, c).await?;
    let r = async {
        w.copy_from(src).await?;
        w.finish().await
    }
    .await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    r
}

/// The stored bytes of `path`: the local file, or for a stand-in of an object store's view
/// (`storage::object::view`) the object, streamed as it is read.
pub(crate) async fn open_raw(path: &Path) -> Result<Pin<Box<dyn AsyncRead + Send>>> {
    if let Some((remote, name)) = crate::storage::object::view::lookup(path) {
        let r = remote
            .reader(&name)
            .await
            .map_err(|e| ChainError::file("open", path, e))?;
        return Ok(Box::pin(r));
    }
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| ChainError::file("open", path, e))?;
    Ok(Box::pin(f))
}

/// A reader yielding the decompressed content of `path`, the method chosen by its extension.
pub async fn open_decompressed(path: &Path) -> Result<Pin<Box<dyn AsyncBufRead + Send>>> {
    let f = open_raw(path).await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let raw = BufReader::with_capacity(WRITE_BUF, f);
    // Concatenated members/frames are read through, as gzip -d and zstd -d do.
    Ok(match Method::from_file_name(&name) {
        Method::None => Box::pin(raw),
        Method::Gzip => {
            let mut d = GzipDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(WRITE_BUF, d))
        }
        Method::Lz4 => {
            let mut d = Lz4Decoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(WRITE_BUF, d))
        }
        Method::Zstd => {
            let mut d = ZstdDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(WRITE_BUF, d))
        }
    })
}

/// SHA-256 and size of a file on disk, to verify metadata.json's record.
pub async fn file_digest(path: &Path) -> Result<(u64, String)> {
    use tokio::io::AsyncReadExt;
    let mut f = open_raw(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; WRITE_BUF];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| ChainError::file("read", path, e))?;
        if n == 0 {
            return Ok((size, hex(&h.finalize())));
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, ReadBuf};

    #[test]
    fn parses_methods_and_levels() {
        let c: Compression = "zstd:9".parse().unwrap();
        assert_eq!(
            c,
            Compression {
                method: Method::Zstd,
                level: Some(9)
            }
        );
        assert_eq!(c.to_string(), "zstd:9");
        assert_eq!(
            "zstd:level=22".parse::<Compression>().unwrap().level,
            Some(22)
        );
        assert_eq!("gzip".parse::<Compression>().unwrap().to_string(), "gzip");
        assert_eq!("none".parse::<Compression>().unwrap(), Compression::NONE);
        assert_eq!("lz4:12".parse::<Compression>().unwrap().extension(), ".lz4");
        for (bad, msg) in [
            ("brotli", "unrecognized compression algorithm: \"brotli\""),
            ("", "unrecognized compression algorithm: \"\""),
            (
                "gzip:0",
                "compression algorithm \"gzip\" expects a compression level between 1 and 9",
            ),
            (
                "gzip:10",
                "compression algorithm \"gzip\" expects a compression level between 1 and 9",
            ),
            (
                "lz4:13",
                "compression algorithm \"lz4\" expects a compression level between 1 and 12",
            ),
            (
                "zstd:-1",
                "compression algorithm \"zstd\" expects a compression level between 1 and 22",
            ),
            (
                "zstd:23",
                "compression algorithm \"zstd\" expects a compression level between 1 and 22",
            ),
            (
                "zstd:fast",
                "value for compression option \"level\" must be an integer",
            ),
            (
                "zstd:",
                "value for compression option \"level\" must be an integer",
            ),
            (
                "none:1",
                "compression algorithm \"none\" does not accept a compression level",
            ),
        ] {
            let e = bad.parse::<Compression>().unwrap_err();
            assert_eq!(e.to_string(), msg, "{bad}");
            assert!(e.is_validation());
        }
    }

    #[test]
    fn extensions_round_trip() {
        for m in Method::ALL {
            let name = format!("base.sql{}", m.extension());
            assert_eq!(Method::from_file_name(&name), m);
        }
        assert_eq!(
            serde_json::to_string(&"gzip:3".parse::<Compression>().unwrap()).unwrap(),
            "\"gzip:3\""
        );
    }

    async fn round_trip(c: Compression, data: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("base.sql{}", c.extension()));
        let w = write_stream(&mut &data[..], &path, c).await.unwrap();
        assert_eq!(w.raw_size, data.len() as u64);
        let (size, sha) = file_digest(&path).await.unwrap();
        assert_eq!((w.size, &w.sha256), (size, &sha), "{c}");
        assert_eq!(durable::mode_of(&path).unwrap(), 0o600);
        let mut back = Vec::new();
        open_decompressed(&path)
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert!(back == data, "{c} round trip");
    }

    #[tokio::test]
    async fn every_method_round_trips() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {}');\n", i % 97).into_bytes())
            .collect();
        for spec in [
            "none", "gzip", "gzip:1", "gzip:9", "lz4", "lz4:12", "zstd", "zstd:1", "zstd:19",
        ] {
            round_trip(spec.parse().unwrap(), &data).await;
            round_trip(spec.parse().unwrap(), b"").await;
        }
    }

    #[tokio::test]
    async fn digest_matches_a_known_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("globals.sql");
        let w = write_stream(&mut &b"abc"[..], &p, Compression::NONE)
            .await
            .unwrap();
        assert_eq!(
            w.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The file exists now: a second writer must not clobber it.
        assert!(
            write_stream(&mut &b"x"[..], &p, Compression::NONE)
                .await
                .is_err()
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
    }

    /// Produces `left` bytes of SQL-looking text without holding them.
    struct Generated {
        left: u64,
        n: u64,
        line: Vec<u8>,
        pos: usize,
    }

    impl Generated {
        fn new(left: u64) -> Self {
            Generated {
                left,
                n: 0,
                line: Vec::new(),
                pos: 0,
            }
        }
    }

    impl AsyncRead for Generated {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let g = &mut *self;
            while g.left > 0 && buf.remaining() > 0 {
                if g.pos == g.line.len() {
                    g.line = format!(
                        "INSERT INTO t VALUES ({0}, '{1:x}');\n",
                        g.n,
                        g.n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    )
                    .into_bytes();
                    g.pos = 0;
                    g.n += 1;
                }
                let take = (g.line.len() - g.pos)
                    .min(buf.remaining())
                    .min(g.left as usize);
                buf.put_slice(&g.line[g.pos..g.pos + take]);
                g.pos += take;
                g.left -= take as u64;
            }
            Poll::Ready(Ok(()))
        }
    }

    fn peak_rss_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Peak RSS is per process, and other tests (zstd:19 alone allocates ~100 MB) run beside
    /// this one, so the measurement runs in a fresh copy of the test binary.
    #[test]
    fn large_streams_use_flat_memory() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage::compress::tests::flat_memory_probe",
                "--ignored",
                "--nocapture",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }

    #[tokio::test]
    #[ignore = "run by large_streams_use_flat_memory in its own process"]
    async fn flat_memory_probe() {
        const SIZE: u64 = 96 << 20;
        let dir = tempfile::tempdir().unwrap();
        let before = peak_rss_kib();
        for c in ["zstd:1", "lz4:1"] {
            let c: Compression = c.parse().unwrap();
            let path = dir.path().join(format!("big.sql{}", c.extension()));
            let w = write_stream(&mut Generated::new(SIZE), &path, c)
                .await
                .unwrap();
            assert_eq!(w.raw_size, SIZE);
            let mut r = open_decompressed(&path).await.unwrap();
            let mut expect = Generated::new(SIZE);
            let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
            let mut total = 0u64;
            loop {
                let n = r.read(&mut a).await.unwrap();
                if n == 0 {
                    break;
                }
                expect.read_exact(&mut b[..n]).await.unwrap();
                assert!(a[..n] == b[..n], "{c} differs at {total}");
                total += n as u64;
            }
            assert_eq!(total, SIZE);
        }
        let grown = peak_rss_kib().saturating_sub(before);
        eprintln!("peak RSS grew by {grown} KiB");
        assert!(
            grown < 24 * 1024,
            "peak RSS grew by {grown} KiB for {} MiB streamed",
            SIZE >> 20
        );
    }
}
