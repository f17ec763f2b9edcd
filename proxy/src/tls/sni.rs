//! Several certificates on one listener, chosen by the name the client
//! asks for (SNI), as nginx chooses a `server` block or HAProxy a `crt`:
//! the first of `[server.tls] certificates` valid for that name (its
//! subjectAltName DNS names, wildcards included, as a client would check
//! them), else the `cert` and `key` of the table.

use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;

/// Chooses a listener's certificate by SNI.
#[derive(Debug)]
pub(super) struct BySni {
    /// The certificates SNI may choose, in the config's order.
    named: Vec<Arc<CertifiedKey>>,
    /// For clients that name no host, or one no certificate is valid for.
    default: Arc<CertifiedKey>,
}

// === impl BySni ===

impl BySni {
    pub(super) fn new(named: Vec<Arc<CertifiedKey>>, default: Arc<CertifiedKey>) -> BySni {
        BySni { named, default }
    }

    /// The first certificate valid for `name`.
    fn valid_for(&self, name: &ServerName<'_>) -> Option<&Arc<CertifiedKey>> {
        self.named.iter().find(|certified| {
            certified
                .end_entity_cert()
                .ok()
                .and_then(|cert| ParsedCertificate::try_from(cert).ok())
                .is_some_and(|cert| verify_server_name(&cert, name).is_ok())
        })
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name).ok())
            .and_then(|name| self.valid_for(&name));
        Some(Arc::clone(chosen.unwrap_or(&self.default)))
    }
}
