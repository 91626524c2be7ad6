//! The replication connection: socket (TCP, TCP+TLS or Unix), startup with
//! `replication=database`, authentication, and frame-level reading and writing. Commands and the
//! CopyBoth stream are layered on top in `commands.rs` and `stream.rs`.
//!
//! Reading is cancellation-safe: bytes are appended to an owned buffer with `read_buf` and a frame
//! is consumed only once it is complete, so a `select!` that drops a read loses nothing.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::{backend, frontend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::codec::{COPY_BOTH_RESPONSE_TAG, CopyBothResponse, parse_copy_both_response};
use super::error::{DbError, ReplicationError};
use crate::pg::attempt;
use crate::pg::conninfo::{ConnParams, DEFAULT_APPLICATION_NAME, Host, SslMode, Target};
use crate::pg::tls::TlsSettings;

type Result<T> = std::result::Result<T, ReplicationError>;

/// Room kept free in the read buffer before each read, so that small frames do not cost one
/// system call each.
const READ_CHUNK: usize = 16 * 1024;

/// The byte stream under a connection.
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// How the server authenticated us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No password was asked for (trust, peer, cert).
    None,
    Cleartext,
    Md5,
    ScramSha256,
    /// SCRAM with `tls-server-end-point` channel binding.
    ScramSha256Plus,
}

/// One backend frame: CopyBothResponse, which postgres-protocol does not know, or any other.
pub(crate) enum Frame {
    CopyBoth(CopyBothResponse),
    Message(backend::Message),
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::CopyBoth(c) => c.fmt(f),
            Frame::Message(m) => f.write_str(message_name(m)),
        }
    }
}

/// A backend message's name for error messages (`backend::Message` has no Debug).
pub(crate) fn message_name(m: &backend::Message) -> &'static str {
    use backend::Message as M;
    match m {
        M::AuthenticationCleartextPassword
        | M::AuthenticationGss
        | M::AuthenticationKerberosV5
        | M::AuthenticationMd5Password(_)
        | M::AuthenticationOk
        | M::AuthenticationScmCredential
        | M::AuthenticationSspi
        | M::AuthenticationGssContinue(_)
        | M::AuthenticationSasl(_)
        | M::AuthenticationSaslContinue(_)
        | M::AuthenticationSaslFinal(_) => "Authentication",
        M::BackendKeyData(_) => "BackendKeyData",
        M::BindComplete => "BindComplete",
        M::CloseComplete => "CloseComplete",
        M::CommandComplete(_) => "CommandComplete",
        M::CopyData(_) => "CopyData",
        M::CopyDone => "CopyDone",
        M::CopyInResponse(_) => "CopyInResponse",
        M::CopyOutResponse(_) => "CopyOutResponse",
        M::DataRow(_) => "DataRow",
        M::EmptyQueryResponse => "EmptyQueryResponse",
        M::ErrorResponse(_) => "ErrorResponse",
        M::NoData => "NoData",
        M::NoticeResponse(_) => "NoticeResponse",
        M::NotificationResponse(_) => "NotificationResponse",
        M::ParameterDescription(_) => "ParameterDescription",
        M::ParameterStatus(_) => "ParameterStatus",
        M::ParseComplete => "ParseComplete",
        M::PortalSuspended => "PortalSuspended",
        M::ReadyForQuery(_) => "ReadyForQuery",
        M::RowDescription(_) => "RowDescription",
        _ => "unknown message",
    }
}

/// Takes one complete frame off the front of `buf`, or returns `None` (consuming nothing) if
/// the frame is still incomplete.
pub(crate) fn parse_frame(buf: &mut BytesMut) -> Result<Option<Frame>> {
    let Some(header) =
        backend::Header::parse(buf).map_err(|e| ReplicationError::Protocol(e.to_string()))?
    else {
        return Ok(None);
    };
    // `Message::parse` rejects 'W' only after consuming it, so peek first.
    if header.tag() == COPY_BOTH_RESPONSE_TAG {
        let total = header.len() as usize + 1;
        if buf.len() < total {
            return Ok(None);
        }
        let frame = buf.split_to(total);
        return Ok(Some(Frame::CopyBoth(parse_copy_both_response(
            &frame[5..],
        )?)));
    }
    backend::Message::parse(buf)
        .map(|m| m.map(Frame::Message))
        .map_err(|e| ReplicationError::Protocol(e.to_string()))
}

/// An authenticated replication connection (`replication=database`) that is ready for a
/// command. Only the simple-query protocol works on it.
pub struct ReplConn {
    socket: Socket,
    read_buf: BytesMut,
    write_buf: BytesMut,
    parameters: HashMap<String, String>,
    backend_pid: i32,
    auth: AuthMethod,
    tls: bool,
    target: String,
}

impl std::fmt::Debug for ReplConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplConn")
            .field("target", &self.target)
            .field("backend_pid", &self.backend_pid)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ReplConn {
    /// Connects to the first target that accepts us, as libpq does with multiple hosts. Each
    /// attempt (socket, TLS, authentication) is bounded by `connect_timeout`. If every target
    /// fails, the last error is returned; earlier ones are logged.
    pub async fn connect(params: &ConnParams) -> Result<ReplConn> {
        if params.targets.is_empty() {
            return Err(ReplicationError::Config("no host to connect to".into()));
        }
        let tls = TlsSettings::new(params).map_err(|e| ReplicationError::Config(e.0))?;
        let result = attempt::first_target(params, |target| {
            let tls = &tls;
            async move {
                let result = attempt::within_timeout(params, connect_target(params, target, tls))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ReplicationError::ConnectTimeout {
                            target: target.describe(),
                        })
                    });
                if let Err(e) = &result {
                    tracing::debug!(target = %target.describe(), error = %e, "connection attempt failed");
                }
                result
            }
        })
        .await;
        result.map_err(|failures| failures.into_iter().last().expect("at least one target"))
    }

    /// Server parameters reported at startup or later (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// `server_version` as a number like `server_version_num` (150020 for 15.20).
    pub fn server_version_num(&self) -> Option<u32> {
        self.parameter("server_version")
            .and_then(parse_server_version)
    }

    /// The walsender's process id (for `pg_stat_replication` / `pg_terminate_backend`).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    pub fn auth_method(&self) -> AuthMethod {
        self.auth
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn read_buffer_capacity(&self) -> usize {
        self.read_buf.capacity()
    }

    /// The target this connection reached, as shown in messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sends Terminate and closes the socket. Dropping the connection also closes it, just less
    /// politely (the server logs an unexpected EOF).
    pub async fn close(mut self) {
        frontend::terminate(&mut self.write_buf);
        let _ = self.flush().await;
        let _ = self.socket.shutdown().await;
    }

    pub(crate) fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.write_buf
    }

    /// Writes everything buffered. Bytes not yet written stay in the buffer, so a cancelled
    /// flush is completed by the next one and frames are never torn.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        while self.write_buf.has_remaining() {
            let n = self
                .socket
                .write_buf(&mut self.write_buf)
                .await
                .map_err(ReplicationError::Io)?;
            if n == 0 {
                return Err(ReplicationError::Io(io::ErrorKind::WriteZero.into()));
            }
        }
        self.socket.flush().await.map_err(ReplicationError::Io)
    }

    /// Reads the next frame. Cancellation-safe (see the module comment).
    pub(crate) async fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = parse_frame(&mut self.read_buf)? {
                return Ok(frame);
            }
            self.read_buf.reserve(READ_CHUNK);
            let n = self
                .socket
                .read_buf(&mut self.read_buf)
                .await
                .map_err(ReplicationError::Io)?;
            if n == 0 {
                return Err(ReplicationError::UnexpectedEof);
            }
        }
    }

    /// Handles the messages the server may send at any time; returns the frame back if it is
    /// something else.
    pub(crate) fn handle_async(&mut self, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::Message(backend::Message::NoticeResponse(body)) => {
                match DbError::from_fields(body.fields()) {
                    Ok(n) => tracing::info!(code = %n.code, "server notice: {n}"),
                    Err(e) => tracing::warn!("malformed server notice: {e}"),
                }
                None
            }
            Frame::Message(backend::Message::ParameterStatus(body)) => {
                if let (Ok(k), Ok(v)) = (body.name(), body.value()) {
                    self.parameters.insert(k.to_owned(), v.to_owned());
                }
                None
            }
            other => Some(other),
        }
    }
}

pub(crate) fn server_error(body: backend::ErrorResponseBody) -> ReplicationError {
    match DbError::from_fields(body.fields()) {
        Ok(e) => ReplicationError::Server(Box::new(e)),
        Err(e) => ReplicationError::Protocol(format!("malformed error response: {e}")),
    }
}

/// `server_version` → `server_version_num`: "15.20 (Debian …)" → 150020, "9.6.3" → 90603,
/// "17beta1" → 170000.
pub fn parse_server_version(v: &str) -> Option<u32> {
    let numeric: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').filter(|p| !p.is_empty());
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if major >= 10 {
        Some(major * 10000 + minor)
    } else {
        let patch: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(major * 10000 + minor * 100 + patch)
    }
}

async fn connect_target(
    params: &ConnParams,
    target: &Target,
    tls: &TlsSettings,
) -> Result<ReplConn> {
    let desc = target.describe();
    match &target.host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", target.port));
            let s =
                UnixStream::connect(&path)
                    .await
                    .map_err(|source| ReplicationError::Connect {
                        target: desc.clone(),
                        source,
                    })?;
            startup(Socket::Unix(s), false, params, target, desc).await
        }
        Host::Tcp(host) => match tls.mode {
            SslMode::Disable => {
                startup(
                    tcp(host, target.port, &desc).await?,
                    false,
                    params,
                    target,
                    desc,
                )
                .await
            }
            SslMode::Allow => {
                let plain = tcp(host, target.port, &desc).await?;
                match startup(plain, false, params, target, desc.clone()).await {
                    Err(ReplicationError::Server(e)) => {
                        tracing::debug!("plaintext connection rejected ({e}); retrying with TLS");
                        let s = tls_socket(host, target.port, &desc, tls, true).await?;
                        startup(s, true, params, target, desc).await
                    }
                    other => other,
                }
            }
            SslMode::Prefer => {
                let attempt = async {
                    let s = tls_socket(host, target.port, &desc, tls, false).await?;
                    let on_tls = matches!(s, Socket::Tls(_));
                    startup(s, on_tls, params, target, desc.clone()).await
                };
                match attempt.await {
                    // libpq retries without TLS when a TLS attempt fails under prefer.
                    // If that fails too, the TLS attempt's error is the more telling one.
                    Err(e @ (ReplicationError::Tls { .. } | ReplicationError::Server(_))) => {
                        tracing::debug!("TLS connection failed ({e}); retrying without TLS");
                        let retry = async {
                            let s = tcp(host, target.port, &desc).await?;
                            startup(s, false, params, target, desc).await
                        };
                        retry.await.map_err(|_| e)
                    }
                    other => other,
                }
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                let s = tls_socket(host, target.port, &desc, tls, true).await?;
                startup(s, true, params, target, desc).await
            }
        },
    }
}

async fn tcp(host: &str, port: u16, desc: &str) -> Result<Socket> {
    let s = TcpStream::connect((host, port))
        .await
        .map_err(|source| ReplicationError::Connect {
            target: desc.to_owned(),
            source,
        })?;
    // Status updates are tiny and latency-sensitive (a reply-requested keepalive at shutdown).
    let _ = s.set_nodelay(true);
    Ok(Socket::Tcp(s))
}

/// Opens TCP, sends SSLRequest and, if the server agrees, runs the handshake. When the server
/// declines, returns the plain socket unless `required`.
async fn tls_socket(
    host: &str,
    port: u16,
    desc: &str,
    tls: &TlsSettings,
    required: bool,
) -> Result<Socket> {
    let Socket::Tcp(mut s) = tcp(host, port, desc).await? else {
        unreachable!("tcp() returns a TCP socket")
    };
    let mut req = BytesMut::new();
    frontend::ssl_request(&mut req);
    s.write_all(&req)
        .await
        .map_err(|source| ReplicationError::Connect {
            target: desc.to_owned(),
            source,
        })?;
    let answer = s.read_u8().await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReplicationError::UnexpectedEof
        } else {
            ReplicationError::Io(e)
        }
    })?;
    match answer {
        b'S' => {
            let t = tls
                .connect(host, s)
                .await
                .map_err(|source| ReplicationError::Tls {
                    target: desc.to_owned(),
                    source,
                })?;
            Ok(Socket::Tls(Box::new(t)))
        }
        b'N' if required => Err(ReplicationError::TlsRefused {
            target: desc.to_owned(),
        }),
        b'N' => Ok(Socket::Tcp(s)),
        other => Err(ReplicationError::Protocol(format!(
            "received invalid response to SSL negotiation: {}",
            char::from(other).escape_default()
        ))),
    }
}

/// Sends the startup message, authenticates and reads until ReadyForQuery.
async fn startup(
    socket: Socket,
    on_tls: bool,
    params: &ConnParams,
    target: &Target,
    desc: String,
) -> Result<ReplConn> {
    let mut conn = ReplConn {
        socket,
        read_buf: BytesMut::with_capacity(READ_CHUNK),
        write_buf: BytesMut::new(),
        parameters: HashMap::new(),
        backend_pid: 0,
        auth: AuthMethod::None,
        tls: on_tls,
        target: desc,
    };
    let app = params
        .application_name
        .as_deref()
        .unwrap_or(DEFAULT_APPLICATION_NAME);
    let mut startup_params = vec![
        ("user", params.user.as_str()),
        ("database", params.dbname.as_str()),
        ("replication", "database"),
        ("application_name", app),
        ("client_encoding", "UTF8"),
    ];
    if let Some(options) = &params.options {
        startup_params.push(("options", options));
    }
    frontend::startup_message(startup_params, &mut conn.write_buf)
        .map_err(|e| ReplicationError::Config(format!("invalid connection parameter: {e}")))?;
    conn.flush().await?;

    authenticate(&mut conn, params, target).await?;

    loop {
        let frame = conn.read_frame().await?;
        let Some(frame) = conn.handle_async(frame) else {
            continue;
        };
        match frame {
            Frame::Message(backend::Message::BackendKeyData(body)) => {
                conn.backend_pid = body.process_id();
            }
            Frame::Message(backend::Message::ReadyForQuery(_)) => return Ok(conn),
            Frame::Message(backend::Message::ErrorResponse(body)) => {
                return Err(server_error(body));
            }
            other => {
                return Err(ReplicationError::Protocol(format!(
                    "unexpected message during startup: {other:?}"
                )));
            }
        }
    }
}

async fn authenticate(conn: &mut ReplConn, params: &ConnParams, target: &Target) -> Result<()> {
    let password = || {
        params
            .password_for(target)
            .ok_or_else(|| ReplicationError::PasswordRequired {
                user: params.user.clone(),
            })
    };
    loop {
        let frame = conn.read_frame().await?;
        let Some(frame) = conn.handle_async(frame) else {
            continue;
        };
        let Frame::Message(msg) = frame else {
            return Err(ReplicationError::Protocol(
                "unexpected CopyBothResponse during authentication".into(),
            ));
        };
        match msg {
            backend::Message::AuthenticationOk => return Ok(()),
            backend::Message::AuthenticationCleartextPassword => {
                let pw = password()?;
                frontend::password_message(pw.as_bytes(), &mut conn.write_buf)
                    .map_err(ReplicationError::Io)?;
                conn.flush().await?;
                conn.auth = AuthMethod::Cleartext;
            }
            backend::Message::AuthenticationMd5Password(body) => {
                let pw = password()?;
                let hash = md5_hash(params.user.as_bytes(), pw.as_bytes(), body.salt());
                frontend::password_message(hash.as_bytes(), &mut conn.write_buf)
                    .map_err(ReplicationError::Io)?;
                conn.flush().await?;
                conn.auth = AuthMethod::Md5;
            }
            backend::Message::AuthenticationSasl(body) => {
                let pw = password()?;
                authenticate_sasl(conn, body, pw).await?;
            }
            backend::Message::ErrorResponse(body) => return Err(server_error(body)),
            backend::Message::AuthenticationKerberosV5 => {
                return Err(ReplicationError::UnsupportedAuth("Kerberos V5".into()));
            }
            backend::Message::AuthenticationScmCredential => {
                return Err(ReplicationError::UnsupportedAuth("SCM credentials".into()));
            }
            backend::Message::AuthenticationGss
            | backend::Message::AuthenticationGssContinue(_) => {
                return Err(ReplicationError::UnsupportedAuth("GSSAPI".into()));
            }
            backend::Message::AuthenticationSspi => {
                return Err(ReplicationError::UnsupportedAuth("SSPI".into()));
            }
            other => {
                return Err(ReplicationError::Protocol(format!(
                    "unexpected {} during authentication",
                    message_name(&other)
                )));
            }
        }
    }
}

/// SCRAM-SHA-256, with channel binding whenever we are on TLS and the server offers
/// SCRAM-SHA-256-PLUS (libpq's channel_binding=prefer).
async fn authenticate_sasl(
    conn: &mut ReplConn,
    body: backend::AuthenticationSaslBody,
    password: String,
) -> Result<()> {
    use fallible_iterator::FallibleIterator;
    let mut plus = false;
    let mut plain = false;
    let mut mechanisms = body.mechanisms();
    while let Some(m) = mechanisms.next().map_err(ReplicationError::Io)? {
        match m {
            sasl::SCRAM_SHA_256_PLUS => plus = true,
            sasl::SCRAM_SHA_256 => plain = true,
            _ => {}
        }
    }
    let cb_data = match &conn.socket {
        Socket::Tls(s) => crate::pg::tls::channel_binding_data(s),
        _ => None,
    };
    let (mechanism, binding, method) = match cb_data {
        Some(data) if plus => (
            sasl::SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(data),
            AuthMethod::ScramSha256Plus,
        ),
        // 'y': we could bind but the server did not offer it. Sending 'y' while the server does
        // offer -PLUS would be rejected as a downgrade, which the arm above rules out.
        Some(_) if plain => (
            sasl::SCRAM_SHA_256,
            ChannelBinding::unrequested(),
            AuthMethod::ScramSha256,
        ),
        None if plain => (
            sasl::SCRAM_SHA_256,
            ChannelBinding::unsupported(),
            AuthMethod::ScramSha256,
        ),
        _ => {
            return Err(ReplicationError::UnsupportedAuth(
                "none of the server's SASL authentication mechanisms are supported".into(),
            ));
        }
    };
    let mut scram = ScramSha256::new(password.as_bytes(), binding);
    frontend::sasl_initial_response(mechanism, scram.message(), &mut conn.write_buf)
        .map_err(ReplicationError::Io)?;
    conn.flush().await?;

    let body = match next_auth_message(conn).await? {
        backend::Message::AuthenticationSaslContinue(body) => body,
        other => {
            return Err(ReplicationError::Protocol(format!(
                "expected AuthenticationSASLContinue, got {}",
                message_name(&other)
            )));
        }
    };
    scram.update(body.data()).map_err(ReplicationError::Scram)?;
    frontend::sasl_response(scram.message(), &mut conn.write_buf).map_err(ReplicationError::Io)?;
    conn.flush().await?;

    let body = match next_auth_message(conn).await? {
        backend::Message::AuthenticationSaslFinal(body) => body,
        other => {
            return Err(ReplicationError::Protocol(format!(
                "expected AuthenticationSASLFinal, got {}",
                message_name(&other)
            )));
        }
    };
    scram.finish(body.data()).map_err(ReplicationError::Scram)?;
    conn.auth = method;
    Ok(())
}

/// The next message of an authentication exchange; a server error ends it.
async fn next_auth_message(conn: &mut ReplConn) -> Result<backend::Message> {
    loop {
        let frame = conn.read_frame().await?;
        match conn.handle_async(frame) {
            None => continue,
            Some(Frame::Message(backend::Message::ErrorResponse(body))) => {
                return Err(server_error(body));
            }
            Some(Frame::Message(m)) => return Ok(m),
            Some(Frame::CopyBoth(_)) => {
                return Err(ReplicationError::Protocol(
                    "unexpected CopyBothResponse during authentication".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn server_versions() {
        assert_eq!(
            parse_server_version("15.20 (Debian 15.20-1.pgdg120+1)"),
            Some(150020)
        );
        assert_eq!(parse_server_version("9.6.3"), Some(90603));
        assert_eq!(parse_server_version("17beta1"), Some(170000));
        assert_eq!(parse_server_version("10.1"), Some(100001));
        assert_eq!(parse_server_version("banana"), None);
    }

    #[test]
    fn frames_are_consumed_only_when_complete() {
        // CopyBothResponse, then a ReadyForQuery split across two reads.
        let mut buf = BytesMut::new();
        buf.put_slice(&[b'W', 0, 0, 0, 7, 0, 0, 0, b'Z', 0, 0]);
        match parse_frame(&mut buf).unwrap() {
            Some(Frame::CopyBoth(c)) => assert_eq!(c.column_formats.len(), 0),
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[..], &[b'Z', 0, 0]);
        assert!(parse_frame(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 3, "an incomplete frame must stay in the buffer");
        buf.put_slice(&[0, 5, b'I']);
        match parse_frame(&mut buf).unwrap() {
            Some(Frame::Message(backend::Message::ReadyForQuery(b))) => {
                assert_eq!(b.status(), b'I')
            }
            other => panic!("{other:?}"),
        }
        assert!(buf.is_empty());

        let mut partial_w = BytesMut::from(&[b'W', 0, 0, 0, 7, 0][..]);
        assert!(parse_frame(&mut partial_w).unwrap().is_none());
        assert_eq!(partial_w.len(), 6);
    }
}
