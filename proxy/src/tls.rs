//! TLS (SPEC §10): the rustls server settings built from the PEM files of
//! `[server.tls]`, for clients; and, in [`instances`], the client settings
//! of a service's `upstream_tls`, for its instances.
//!
//! Why here, below `config`: the files are read when the config is loaded,
//! so that a bad one is a config error at start-up (naming the file and
//! what is wrong) and a refused reload on `SIGHUP`, never a listener that
//! starts and then fails every handshake. The listener only ever sees a
//! ready [`rustls::ServerConfig`].
//!
//! The `ring` provider is used, not rustls' default aws-lc-rs: `ring` is
//! already built for DNSSEC/TSIG and needs no C toolchain beyond a compiler.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod instances;
mod sni;

/// The protocols offered in ALPN, preferred first: the listener serves both
/// on one port, as it does h2c and HTTP/1.1 without TLS.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Which of the files of `[server.tls]` or `upstream_tls` a [`TlsError`] is
/// about, so that the config loader can point at the key that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// `cert`: the certificate chain, its owner's own first.
    Cert,
    /// `key`: the private key of the first certificate.
    Key,
    /// `client_ca`: the CAs that sign client certificates.
    ClientCa,
    /// `ca` of `upstream_tls`: the CAs that sign the instances'
    /// certificates.
    Ca,
    /// `cert` of `certificates[i]`.
    SniCert(usize),
    /// `key` of `certificates[i]`.
    SniKey(usize),
}

/// The paths of `[server.tls]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// `cert`.
    pub cert: PathBuf,
    /// `key`.
    pub key: PathBuf,
    /// `client_ca`: when given, clients must present a certificate signed
    /// by one of its CAs.
    pub client_ca: Option<PathBuf>,
    /// `certificates`: further chains and keys, each chosen for the clients
    /// whose SNI names a host it is valid for.
    pub certificates: Vec<(PathBuf, PathBuf)>,
}

/// A TLS file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TlsError {
    /// Which file.
    pub file: TlsFile,
    /// Its path, as configured.
    pub path: PathBuf,
    /// What is wrong with it, in words.
    pub problem: String,
}

// === impl TlsError ===

impl TlsError {
    fn new(file: TlsFile, path: &Path, problem: String) -> TlsError {
        TlsError {
            file,
            path: path.to_owned(),
            problem,
        }
    }
}

/// Reads the files and builds the server settings: ALPN `h2` and
/// `http/1.1`, and client certificates required when `client_ca` is given.
///
/// # Errors
///
/// [`TlsError`] for the first file that cannot be read or used: no
/// certificate or key in it, a key that does not match the certificate, a
/// CA that rustls refuses.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let error = TlsError::new;
    let chain =
        certificates(&files.cert).map_err(|problem| error(TlsFile::Cert, &files.cert, problem))?;
    let key =
        private_key(&files.key).map_err(|problem| error(TlsFile::Key, &files.key, problem))?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|failure| error(TlsFile::Cert, &files.cert, failure.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let problem = |problem| error(TlsFile::ClientCa, path, problem);
            let roots = roots(path).map_err(problem)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|failure| {
                        problem(format!("cannot verify clients with it: {failure}"))
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = if files.certificates.is_empty() {
        builder
            .with_single_cert(chain, key)
            .map_err(|failure| mismatch(failure, &files.cert, &files.key))?
    } else {
        let certified = |chain, key, cert: &Path, key_path: &Path| {
            CertifiedKey::from_der(chain, key, &provider)
                .map(Arc::new)
                .map_err(|failure| mismatch(failure, cert, key_path))
        };
        // Every file read before any key is loaded, so that a file that
        // cannot be read is named before a key that does not fit.
        let mut read = Vec::with_capacity(files.certificates.len());
        for (index, (cert, key_path)) in files.certificates.iter().enumerate() {
            let chain = certificates(cert)
                .map_err(|problem| error(TlsFile::SniCert(index), cert, problem))?;
            let key = private_key(key_path)
                .map_err(|problem| error(TlsFile::SniKey(index), key_path, problem))?;
            read.push((chain, key));
        }
        let default = certified(chain, key, &files.cert, &files.key)?;
        let mut named = Vec::with_capacity(read.len());
        for (index, (chain, key)) in read.into_iter().enumerate() {
            let (cert, key_path) = &files.certificates[index];
            named.push(certified(chain, key, cert, key_path).map_err(|mut error| {
                error.file = match error.file {
                    TlsFile::Key => TlsFile::SniKey(index),
                    _ => TlsFile::SniCert(index),
                };
                error
            })?);
        }
        builder.with_cert_resolver(Arc::new(sni::BySni::new(named, default)))
    };
    config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Why a certificate and key cannot be used together, pinned on the file
/// that is most likely wrong.
fn mismatch(failure: rustls::Error, cert: &Path, key: &Path) -> TlsError {
    if matches!(failure, rustls::Error::InconsistentKeys(_)) {
        TlsError::new(
            TlsFile::Key,
            key,
            format!(
                "certificate and key do not match (the certificate is {})",
                cert.display()
            ),
        )
    } else {
        TlsError::new(
            TlsFile::Cert,
            cert,
            format!("cannot use the certificate with the key: {failure}"),
        )
    }
}

/// The `ring` crypto provider (see the module's doc).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Deprecated since rustls 0.23.48 only because ring offers no
    // post-quantum key exchange (X25519MLKEM768); classical X25519 and the
    // NIST curves are what the ring provider was chosen for (see above).
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A private key from a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|failure| match failure {
        pem::Error::NoItemsFound => "no private key found".to_owned(),
        other => pem_problem(other),
    })
}

/// Every certificate of a PEM file as trust anchors.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(path)? {
        roots
            .add(ca)
            .map_err(|failure| format!("not a usable CA certificate: {failure}"))?;
    }
    Ok(roots)
}

/// Every certificate of a PEM file, in order; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_problem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_problem)?;
    if chain.is_empty() {
        return Err("no certificate found".to_owned());
    }
    Ok(chain)
}

/// A PEM reading failure in words.
fn pem_problem(failure: pem::Error) -> String {
    match failure {
        pem::Error::Io(error) if error.kind() == io::ErrorKind::NotFound => {
            "cannot read: no such file".to_owned()
        }
        pem::Error::Io(error) => format!("cannot read: {error}"),
        pem::Error::NoItemsFound => "nothing found in PEM".to_owned(),
        other => format!("not valid PEM: {other}"),
    }
}
