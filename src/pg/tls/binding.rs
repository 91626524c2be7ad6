//! The `tls-server-end-point` channel binding (RFC 5929) for SCRAM-SHA-256-PLUS: which hash
//! the server's certificate is bound with, read from the certificate itself.

use sha2::Digest;

/// The `tls-server-end-point` channel binding (RFC 5929): a hash of the server's certificate
/// with the certificate's own signature hash, where MD5 and SHA-1 (and anything we cannot
/// identify) become SHA-256, which is also what the PostgreSQL server computes.
pub(crate) fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    match signature_hash(cert_der) {
        SigHash::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
        SigHash::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
        SigHash::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
    }
}

/// The channel-binding data of an established TLS stream.
pub(crate) fn channel_binding_data<S>(
    stream: &tokio_rustls::client::TlsStream<S>,
) -> Option<Vec<u8>> {
    let (_, conn) = stream.get_ref();
    let cert = conn.peer_certificates()?.first()?;
    Some(tls_server_end_point(cert.as_ref()))
}

#[derive(Debug, PartialEq, Eq)]
enum SigHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Reads `Certificate.signatureAlgorithm` with a minimal DER walk; a full X.509 parser would
/// be a large dependency for one OID.
fn signature_hash(cert: &[u8]) -> SigHash {
    const SHA384_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C];
    const SHA512_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D];
    const ECDSA_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03];
    const ECDSA_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04];
    let oid = (|| {
        let (certificate, _) = der_element(cert, 0x30)?;
        let (_tbs, rest) = der_element(certificate, 0x30)?;
        let (alg, _) = der_element(rest, 0x30)?;
        let (oid, _) = der_element(alg, 0x06)?;
        Some(oid)
    })();
    match oid {
        Some(SHA384_RSA | ECDSA_SHA384) => SigHash::Sha384,
        Some(SHA512_RSA | ECDSA_SHA512) => SigHash::Sha512,
        _ => SigHash::Sha256,
    }
}

/// Splits one DER element with the expected tag off `buf`: (contents, rest).
fn der_element(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, buf) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut buf) = buf.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || buf.len() < n {
            return None;
        }
        let len = buf[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        buf = &buf[n..];
        len
    };
    (buf.len() >= len).then(|| buf.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate skeleton: SEQUENCE { tbs SEQUENCE, algorithm SEQUENCE { OID }, ... }.
    fn fake_cert(oid: &[u8]) -> Vec<u8> {
        let tbs = [0x30, 0x03, 0x02, 0x01, 0x00];
        let mut alg = vec![0x30, (oid.len() + 2) as u8, 0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = tbs.to_vec();
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![0x30, 0x81, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn channel_binding_hash_follows_the_signature_algorithm() {
        let sha256_rsa = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
        let sha384_ecdsa = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03];
        let sha512_rsa = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D];
        let sha1_rsa = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05];
        assert_eq!(signature_hash(&fake_cert(&sha256_rsa)), SigHash::Sha256);
        assert_eq!(signature_hash(&fake_cert(&sha384_ecdsa)), SigHash::Sha384);
        assert_eq!(signature_hash(&fake_cert(&sha512_rsa)), SigHash::Sha512);
        assert_eq!(signature_hash(&fake_cert(&sha1_rsa)), SigHash::Sha256);
        assert_eq!(signature_hash(b"garbage"), SigHash::Sha256);
        let c = fake_cert(&sha384_ecdsa);
        assert_eq!(tls_server_end_point(&c), sha2::Sha384::digest(&c).to_vec());
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_element(&[0x30, 0x01, 0xAA, 0xBB], 0x30),
            Some((&[0xAA][..], &[0xBB][..]))
        );
        assert_eq!(
            der_element(&[0x30, 0x82, 0x00, 0x01, 0xAA], 0x30),
            Some((&[0xAA][..], &[][..]))
        );
        assert_eq!(der_element(&[0x30, 0x02, 0xAA], 0x30), None);
        assert_eq!(der_element(&[0x31, 0x00], 0x30), None);
    }
}
