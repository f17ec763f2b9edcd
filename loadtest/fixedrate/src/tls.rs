//! `--tls`: the rustls client settings, and the handshake of a new connection.
//!
//! Every connection completes its handshake when it is opened, before the
//! schedule starts (or, for a reconnect, before the loop goes on), so the
//! latencies measure requests on established keep-alive connections, as
//! wrk's do: the record layer, not handshakes.

use crate::args::{ArgsError, Tls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, ClientConnection, WebPkiServerVerifier};
use rustls::crypto::ring::kx_group;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, InvalidMessage, RootCertStore,
    SignatureScheme,
};
use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How long a handshake may take before the run gives up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("--ca {}: {problem}", path.display())]
    Ca { path: PathBuf, problem: String },
    #[error("TLS settings: {0}")]
    Config(#[from] rustls::Error),
    #[error(transparent)]
    ServerName(#[from] ArgsError),
}

/// What connections need to speak TLS.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// What a handshake settled on, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: String,
    pub cipher: String,
    pub group: String,
    pub alpn: String,
}

impl Client {
    /// rustls with the ring provider, its default protocol versions (TLS 1.2
    /// and 1.3) and cipher suites, key exchange groups X25519, P-256, P-384
    /// in this order, ALPN `http/1.1` only, trusting only the
    /// certificates of `--ca` (see [`Verifier`]).
    pub fn new(tls: &Tls) -> Result<Self, TlsError> {
        let ca_problem = |problem: String| TlsError::Ca {
            path: tls.ca.clone(),
            problem,
        };
        let certs = CertificateDer::pem_file_iter(&tls.ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ca_problem(pem_problem(e)))?;
        if certs.is_empty() {
            return Err(ca_problem("no certificate found in it".to_owned()));
        }
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| ca_problem(format!("not a usable CA certificate: {e}")))?;
        }
        // Deprecated since rustls 0.23.48 only because ring offers no
        // post-quantum key exchange (X25519MLKEM768); it is the provider
        // shardproxy uses. Its groups in OpenSSL's order (the ring
        // provider's own puts P-384 first), so that fixedrate, wrk and
        // `openssl s_client` settle on the same one (X25519).
        #[allow(deprecated)]
        let provider = Arc::new(CryptoProvider {
            kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
            ..rustls::crypto::ring::default_provider()
        });
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ca_problem(e.to_string()))?;
        let verifier = Verifier {
            pinned: certs,
            webpki,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            config: Arc::new(config),
            server_name: tls.server_name()?,
        })
    }

    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Completes the handshake on a fresh, still blocking, connection (at
    /// most [`HANDSHAKE_TIMEOUT`] without an answer).
    pub fn handshake(&self, stream: &mut TcpStream) -> io::Result<ClientConnection> {
        let mut tls = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        // complete_io also sends the alert when rustls refuses the server
        while tls.is_handshaking() {
            match tls.complete_io(stream) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        while tls.wants_write() {
            tls.write_tls(stream)?;
        }
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        Ok(tls)
    }
}

/// rustls' own (webpki) verification against the `--ca` certificates, plus
/// one case webpki refuses: a server presenting exactly one of the `--ca`
/// certificates, self-signed, as its own. Such a test certificate made with
/// `openssl req -x509` is marked as a CA (`basicConstraints CA:TRUE`, the
/// openssl CLI's default), which webpki never accepts as the server's
/// certificate (`CaUsedAsEndEntity`), while OpenSSL (curl, wrk) does. For
/// that certificate the byte-for-byte match with the file is the trust
/// decision and only the server name is checked (not its dates); the
/// handshake signatures are verified the same either way.
#[derive(Debug)]
struct Verifier {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

impl Negotiated {
    pub fn of(tls: &ClientConnection) -> Self {
        let debug = |v: Option<String>| v.unwrap_or_else(|| "none".to_owned());
        Negotiated {
            version: debug(tls.protocol_version().map(|v| format!("{v:?}"))),
            cipher: debug(
                tls.negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite())),
            ),
            group: debug(
                tls.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name())),
            ),
            alpn: debug(
                tls.alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            ),
        }
    }
}

/// Why a handshake failed, in words: rustls' own error (a certificate
/// refused, the server's alert...) when there is one.
pub fn handshake_problem(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server sent the alert {alert:?}")
        }
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "the server's certificate is refused: not signed by a certificate in --ca".to_owned()
        }
        // webpki's error, only in its Debug form
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(why)))
            if format!("{why:?}").contains("CaUsedAsEndEntity") =>
        {
            "the server's certificate is refused: it is a CA certificate (self-signed?) \
             and not one of those in --ca"
                .to_owned()
        }
        Some(rustls::Error::InvalidCertificate(why)) => {
            format!("the server's certificate is refused: {why}")
        }
        Some(rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)) => {
            "the server's answer is not TLS (plain HTTP on that port?)".to_owned()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// A PEM reading failure in words.
fn pem_problem(failure: pem::Error) -> String {
    match failure {
        pem::Error::Io(e) if e.kind() == io::ErrorKind::NotFound => "no such file".to_owned(),
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        pem::Error::NoItemsFound => "no certificate found in it".to_owned(),
        other => format!("not valid PEM: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_with(ca: PathBuf) -> String {
        let tls = Tls {
            ca,
            server_name: "localhost".to_owned(),
        };
        Client::new(&tls).map_or_else(|e| e.to_string(), |_| "accepted".to_owned())
    }

    #[test]
    fn names_the_bad_ca_file() {
        let dir = std::env::temp_dir().join(format!("fixedrate-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        assert_eq!(
            problem_with(missing.clone()),
            format!("--ca {}: no such file", missing.display())
        );
        let key_only = dir.join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert_eq!(
            problem_with(key_only.clone()),
            format!("--ca {}: no certificate found in it", key_only.display())
        );
        let not_a_cert = dir.join("bad.pem");
        std::fs::write(
            &not_a_cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let problem = problem_with(not_a_cert.clone());
        assert!(
            problem.starts_with(&format!(
                "--ca {}: not a usable CA certificate",
                not_a_cert.display()
            )),
            "{problem}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
