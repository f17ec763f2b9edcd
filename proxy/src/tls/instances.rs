//! TLS to a service's instances (`upstream_tls`, SPEC §10): the rustls
//! client settings, read from the PEM files when the config is loaded (for
//! the same reason as `[server.tls]`: a bad file is a config error, never
//! a service whose every connection fails).
//!
//! Each instance's certificate is verified for its host name (the SRV
//! target or the static `host`) against `ca` only: the instances of a
//! sharded service are the operator's own, signed by the operator's own CA,
//! so the system's public roots would only widen who can pose as one.

use std::path::PathBuf;
use std::sync::Arc;

use super::{certificates, mismatch, private_key, provider, roots, TlsError, TlsFile};

/// The paths of `upstream_tls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceTlsFiles {
    /// `ca`: the CAs that sign the instances' certificates.
    pub ca: PathBuf,
    /// `cert` and `key`: the proxy's client certificate chain and its key,
    /// for instances that require one (mutual TLS).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Reads the files and builds the client settings, offering `alpn` (the
/// protocols the service speaks, preferred first).
///
/// # Errors
///
/// [`TlsError`] for the first file that cannot be read or used.
pub fn client_config(
    files: &InstanceTlsFiles,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let error = TlsError::new;
    let roots = roots(&files.ca).map_err(|problem| error(TlsFile::Ca, &files.ca, problem))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|failure| error(TlsFile::Ca, &files.ca, failure.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain =
                certificates(cert).map_err(|problem| error(TlsFile::Cert, cert, problem))?;
            let key_der = private_key(key).map_err(|problem| error(TlsFile::Key, key, problem))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|failure| mismatch(failure, cert, key))?
        }
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}
