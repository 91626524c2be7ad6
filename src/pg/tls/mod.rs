//! TLS for every connection pg_scribe opens, with libpq's `sslmode` rules: one rustls
//! configuration per [`ConnParams`], used directly by the replication connection and, through
//! [`MakeRustlsConnect`], by tokio-postgres for SQL connections. It also computes the
//! `tls-server-end-point` channel-binding data for SCRAM-SHA-256-PLUS.
//!
//! libpq's rules, as implemented here:
//! - `disable`: no TLS; `allow`: plaintext first, TLS if the server rejects it; `prefer`: TLS if
//!   the server accepts the SSLRequest; `require`: TLS or nothing. None of these check the
//!   certificate, *except* that when the root certificate file exists (`sslrootcert`, default
//!   `~/.postgresql/root.crt`) libpq checks the chain against it, and so do we.
//! - `verify-ca`: the chain must lead to a root in `sslrootcert`; `verify-full`: and the
//!   certificate must name the host (subjectAltName; the legacy CN fallback is not supported).
//!   `sslrootcert=system` is the operating system's trust store (conninfo forces verify-full).
//! - Whenever the chain is checked, so is revocation against `sslcrl` / `sslcrldir` (default
//!   `~/.postgresql/root.crl`), for every certificate of the chain, as OpenSSL's CRL_CHECK_ALL.
//! - A client certificate (`sslcert`, default `~/.postgresql/postgresql.crt`) is offered when the
//!   file exists, with its key (`sslkey`, default `~/.postgresql/postgresql.key`), which must not
//!   be readable by others (libpq's 0600, or 0640 when owned by root).
//! - Unix sockets never use TLS (the server refuses it there anyway).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::pg::conninfo::{ConnParams, Host, SslMode};

mod binding;
mod connect;

pub(crate) use binding::channel_binding_data;
pub use connect::{MakeRustlsConnect, make_tls, tokio_postgres_ssl_mode};

/// The TLS settings cannot be turned into a working configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError(pub String);

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsConfigError {}

/// A rustls client configuration together with the sslmode it was built for.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub mode: SslMode,
    config: Arc<ClientConfig>,
}

impl TlsSettings {
    /// Builds the configuration for `params.sslmode` and the certificate files. Like libpq, the
    /// files are read only when TLS may be used: not for `sslmode=disable` or Unix sockets only,
    /// so a stray `~/.postgresql/postgresql.crt` cannot break a local connection.
    pub fn new(params: &ConnParams) -> Result<TlsSettings, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let sockets_only = !params.targets.is_empty()
            && params
                .targets
                .iter()
                .all(|t| matches!(t.host, Host::Unix(_)));
        if params.sslmode == SslMode::Disable || sockets_only {
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsConfigError(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth();
            return Ok(TlsSettings {
                mode: params.sslmode,
                config: Arc::new(config),
            });
        }
        let home = home_dir();
        let root_path = params
            .sslrootcert
            .clone()
            .or_else(|| home.as_ref().map(|h| h.join(".postgresql/root.crt")));
        let verify = matches!(params.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
        let roots = match &root_path {
            Some(p) if p.as_os_str() == "system" => Some(system_roots()?),
            Some(p) if p.exists() => Some(load_roots(p)?),
            Some(p) if verify => {
                return Err(TlsConfigError(format!(
                    "root certificate file \"{}\" does not exist\nEither provide the file or change sslmode to disable server certificate verification.",
                    p.display()
                )));
            }
            None if verify => {
                return Err(TlsConfigError(
                    "could not get home directory to locate root certificate file\nEither provide the file or change sslmode to disable server certificate verification.".into(),
                ));
            }
            _ => None,
        };

        let verifier: Arc<dyn ServerCertVerifier> = match roots {
            None => Arc::new(NoVerification(provider.clone())),
            Some(roots) => {
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let crls = load_crls(params, home.as_deref())?;
                if !crls.is_empty() {
                    // Defaults kept on purpose: the whole chain is checked and a certificate
                    // whose issuer has no CRL is refused, as libpq asks of OpenSSL.
                    builder = builder.with_crls(crls);
                }
                let webpki = builder.build().map_err(|e| {
                    TlsConfigError(format!("invalid root certificates or revocation list: {e}"))
                })?;
                if params.sslmode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match client_identity(params, home.as_deref())? {
            Some((certs, key, cert_path)) => {
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    TlsConfigError(format!(
                        "could not load private key for certificate file \"{}\": {e}",
                        cert_path.display()
                    ))
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsSettings {
            mode: params.sslmode,
            config: Arc::new(config),
        })
    }

    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to present (SNI) and, under verify-full, to check. Only verify-full insists on
    /// a valid name; other modes fall back to a placeholder so odd host names still connect.
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsConfigError> {
        match ServerName::try_from(host.to_owned()) {
            Ok(n) => Ok(n),
            Err(_) if self.mode != SslMode::VerifyFull => {
                Ok(ServerName::try_from("localhost").expect("valid name"))
            }
            Err(_) => Err(TlsConfigError(format!(
                "host name \"{host}\" cannot be verified against a certificate"
            ))),
        }
    }

    /// Runs the TLS handshake on an established stream (after the server accepted SSLRequest).
    pub async fn connect<S>(
        &self,
        host: &str,
        stream: S,
    ) -> io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self
            .server_name(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
    }
}

/// Where libpq looks for its default files (`~/.postgresql/…`).
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `sslrootcert=system`: the trust store OpenSSL would use (honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`), read by rustls-native-certs.
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(TlsConfigError(format!(
            "could not load the system root certificate store{why}"
        )));
    }
    Ok(roots)
}

/// The revocation lists to check against: `sslcrl` and the `<hash>.r<n>` files of `sslcrldir`;
/// with neither given, `~/.postgresql/root.crl` when it exists. A file that was named but is
/// missing is an error (libpq skips it silently, which would quietly turn revocation off).
fn load_crls(
    params: &ConnParams,
    home: Option<&Path>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsConfigError> {
    let mut files = Vec::new();
    match (&params.sslcrl, &params.sslcrldir) {
        (None, None) => {
            if let Some(default) = home.map(|h| h.join(".postgresql/root.crl"))
                && default.exists()
            {
                files.push(default);
            }
        }
        (file, dir) => {
            files.extend(file.clone());
            if let Some(dir) = dir {
                let entries = std::fs::read_dir(dir).map_err(|e| {
                    TlsConfigError(format!(
                        "could not open certificate revocation list directory \"{}\": {}",
                        dir.display(),
                        crate::error::io_reason(&e)
                    ))
                })?;
                let mut names: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_hashed_crl_name(p))
                    .collect();
                names.sort();
                files.extend(names);
            }
        }
    }
    let mut crls = Vec::new();
    for file in files {
        let err = |e: &dyn fmt::Display| {
            TlsConfigError(format!(
                "could not load certificate revocation list file \"{}\": {e}",
                file.display()
            ))
        };
        let before = crls.len();
        for crl in CertificateRevocationListDer::pem_file_iter(&file).map_err(|e| err(&e))? {
            crls.push(crl.map_err(|e| err(&e))?);
        }
        if crls.len() == before {
            return Err(err(&"no certificate revocation list found"));
        }
    }
    Ok(crls)
}

/// OpenSSL's CRL directory layout: `<8 hex digits>.r<n>`.
fn is_hashed_crl_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    match name.split_once(".r") {
        Some((hash, n)) => {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

type ClientIdentity = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    PathBuf,
);

/// The client certificate chain and key to offer, if any. As libpq: the default certificate
/// file is optional, its key is then required. Unlike libpq, a certificate file that was named
/// but is missing is an error rather than silently not sent.
fn client_identity(
    params: &ConnParams,
    home: Option<&Path>,
) -> Result<Option<ClientIdentity>, TlsConfigError> {
    let cert_path = match &params.sslcert {
        Some(path) => path.clone(),
        None => match home.map(|h| h.join(".postgresql/postgresql.crt")) {
            Some(default) if default.exists() => default,
            _ => return Ok(None),
        },
    };
    let cert_err = |e: &dyn fmt::Display| {
        TlsConfigError(format!(
            "could not load certificate file \"{}\": {e}",
            cert_path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| cert_err(&pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(&pem_reason(e)))?;
    if certs.is_empty() {
        return Err(cert_err(&"no certificate found"));
    }
    let key_path = match (&params.sslkey, home) {
        (Some(path), _) => path.clone(),
        (None, Some(home)) => home.join(".postgresql/postgresql.key"),
        (None, None) => {
            return Err(TlsConfigError(
                "could not get home directory to locate client certificate files".into(),
            ));
        }
    };
    check_key_file(&key_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        TlsConfigError(format!(
            "could not load private key file \"{}\": {}",
            key_path.display(),
            pem_reason(e)
        ))
    })?;
    Ok(Some((certs, key, cert_path)))
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => crate::error::io_reason(&io),
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no unencrypted PEM item found (encrypted keys, sslpassword, are not supported)".into()
        }
        other => other.to_string(),
    }
}

/// libpq's rule for the private key: a regular file without group or world access, except that
/// a root-owned key (a system-managed one) may be group-readable.
fn check_key_file(path: &Path) -> Result<(), TlsConfigError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        TlsConfigError(format!(
            "certificate present, but not private key file \"{}\": {}",
            path.display(),
            crate::error::io_reason(&e)
        ))
    })?;
    if !meta.is_file() {
        return Err(TlsConfigError(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        )));
    }
    let mode = meta.mode();
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(TlsConfigError(format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let err = |e: &dyn fmt::Display| {
        TlsConfigError(format!(
            "could not read root certificate file \"{}\": {e}",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(&e))? {
        roots.add(cert.map_err(|e| err(&e))?).map_err(|e| err(&e))?;
    }
    if roots.is_empty() {
        return Err(err(&"no certificates found"));
    }
    Ok(roots)
}

/// Accepts any certificate (libpq's prefer/require without a root file) but still checks that
/// the handshake was signed by the key in that certificate.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the full WebPKI check, except that the certificate need not name the host.
/// webpki checks the name only after the chain, so a name error implies a good chain.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: SslMode, root: Option<&str>) -> ConnParams {
        ConnParams {
            targets: vec![],
            user: "u".into(),
            dbname: "d".into(),
            password: None,
            passfile: None,
            sslmode: mode,
            sslrootcert: root.map(PathBuf::from),
            sslcert: None,
            sslkey: None,
            sslcrl: None,
            sslcrldir: None,
            application_name: None,
            connect_timeout: None,
            no_password: false,
            options: None,
        }
    }

    #[test]
    fn verify_modes_need_a_root_file() {
        let e = TlsSettings::new(&params(SslMode::VerifyFull, Some("/nonexistent/root.crt")))
            .unwrap_err();
        assert!(e.0.contains("does not exist"), "{e}");
        // Without verification a missing file is fine, as in libpq.
        TlsSettings::new(&params(SslMode::Require, Some("/nonexistent/root.crt"))).unwrap();
        let s = TlsSettings::new(&params(SslMode::Prefer, Some("/nonexistent/root.crt"))).unwrap();
        assert!(s.server_name("not a host name").is_ok());
    }

    #[test]
    fn key_file_permissions_follow_libpq() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(&key, "x").unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, root), (0o604, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = check_key_file(&key);
            assert_eq!(result.is_ok(), ok, "mode {mode:o}: {result:?}");
            if let Err(e) = result {
                assert!(e.0.contains("has group or world access"), "{e}");
            }
        }
        let e = check_key_file(dir.path()).unwrap_err();
        assert!(e.0.contains("is not a regular file"), "{e}");
        let e = check_key_file(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.0.contains("certificate present, but not private key file"),
            "{e}"
        );
    }

    #[test]
    fn named_but_missing_files_are_errors() {
        let mut p = params(SslMode::Require, Some("/nonexistent/root.crt"));
        p.sslcert = Some("/nonexistent/client.crt".into());
        let e = TlsSettings::new(&p).unwrap_err();
        assert!(e.0.contains("could not load certificate file"), "{e}");
        assert!(e.0.contains("No such file or directory"), "{e}");
    }

    #[test]
    fn crl_directory_names() {
        assert!(is_hashed_crl_name(Path::new("/d/5ed36f99.r0")));
        assert!(is_hashed_crl_name(Path::new("ABCDEF01.r12")));
        assert!(!is_hashed_crl_name(Path::new("5ed36f99.0")));
        assert!(!is_hashed_crl_name(Path::new("root.crl")));
        assert!(!is_hashed_crl_name(Path::new("5ed36f99.r")));
    }

    #[test]
    fn system_roots_are_the_operating_system_store() {
        match TlsSettings::new(&params(SslMode::VerifyFull, Some("system"))) {
            Ok(settings) => assert_eq!(settings.mode, SslMode::VerifyFull),
            // A machine without a CA bundle says so rather than trusting nothing silently.
            Err(e) => assert!(e.0.contains("system root certificate store"), "{e}"),
        }
    }

    #[test]
    fn certificate_files_are_read_only_when_tls_may_be_used() {
        let mut p = params(SslMode::VerifyFull, Some("/nonexistent/root.crt"));
        p.sslcert = Some("/nonexistent/client.crt".into());
        p.targets = vec![crate::pg::conninfo::Target {
            host: Host::Unix("/tmp".into()),
            port: 5432,
        }];
        TlsSettings::new(&p).expect("Unix sockets never use TLS");
        p.targets[0].host = Host::Tcp("localhost".into());
        assert!(TlsSettings::new(&p).is_err());
        p.sslmode = SslMode::Disable;
        TlsSettings::new(&p).expect("sslmode=disable reads no files");
    }
}
