//! The tokio-postgres side of TLS: SQL connections get the same rustls configuration, the same
//! `sslmode` rules and the same channel binding as the replication connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::binding::channel_binding_data;
use super::{TlsConfigError, TlsSettings};
use crate::pg::conninfo::{ConnParams, SslMode};

/// The sslmode to give tokio-postgres: it only knows disable/prefer/require and leaves
/// verification to the connector, which carries the real mode. `allow` has no equivalent; it
/// maps to prefer, which differs only in trying TLS first.
pub fn tokio_postgres_ssl_mode(mode: SslMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode as T;
    match mode {
        SslMode::Disable => T::Disable,
        SslMode::Allow | SslMode::Prefer => T::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => T::Require,
    }
}

/// A tokio-postgres TLS connector that applies the same rules as the replication connection.
/// Pair it with [`tokio_postgres_ssl_mode`] on the `Config` (and `SslMode::Disable` for Unix
/// sockets).
pub fn make_tls(params: &ConnParams) -> Result<MakeRustlsConnect, TlsConfigError> {
    Ok(MakeRustlsConnect {
        settings: TlsSettings::new(params)?,
    })
}

/// [`tokio_postgres::tls::MakeTlsConnect`] over rustls, with channel binding.
#[derive(Clone, Debug)]
pub struct MakeRustlsConnect {
    settings: TlsSettings,
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsConfigError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsConfigError> {
        // tokio-postgres asks even for Unix sockets (domain "") where TLS is never used, so a
        // bad name is reported only if a handshake is actually attempted.
        Ok(RustlsConnect {
            config: self.settings.client_config(),
            name: self.settings.server_name(domain),
        })
    }
}

/// One pending TLS handshake for tokio-postgres.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: Result<ServerName<'static>, TlsConfigError>,
}

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self
                .name
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS stream handed to tokio-postgres.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        match channel_binding_data(&self.0) {
            Some(hash) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(hash),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokio_postgres_modes() {
        use tokio_postgres::config::SslMode as T;
        assert_eq!(tokio_postgres_ssl_mode(SslMode::Disable), T::Disable);
        assert_eq!(tokio_postgres_ssl_mode(SslMode::Prefer), T::Prefer);
        assert_eq!(tokio_postgres_ssl_mode(SslMode::VerifyFull), T::Require);
    }
}
