//! `[server.tls]` and a service's `upstream_tls` (SPEC §10): the files of
//! each, read now, so that a file that cannot be used is an error of the
//! key that names it.

use std::path::PathBuf;

use toml::Spanned;

use super::check::required;
use super::error::{At, KeyPath, Source};
use super::raw::{RawTls, RawUpstreamTls};
use super::{TlsConfig, UpstreamProtocol, UpstreamTlsConfig};
use crate::tls::instances::{self, InstanceTlsFiles};
use crate::tls::{self, TlsError, TlsFile, TlsFiles};

/// `[server.tls]`: `cert` and `key` required, `client_ca` optional. The
/// table's files and settings; `None` (with every error reported) when a
/// key is missing or a file cannot be used.
pub(super) fn tls(source: &Source<'_>, key: &KeyPath, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
    let table = raw.span();
    let raw = raw.get_ref();
    let path = |name: &str, value: Option<&Spanned<String>>| {
        let value = required(source, &key.key(name), value, table.clone(), "a PEM file");
        source.ok(value).map(|value| PathBuf::from(value.get_ref()))
    };
    let cert = path("cert", raw.cert.as_ref());
    let key_file = path("key", raw.key.as_ref());
    let list = raw
        .certificates
        .as_ref()
        .map_or(&[][..], |list| list.get_ref());
    let mut certificates = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let entry_key = key.key("certificates").index(index);
        let span = entry.span();
        let path = |name: &str, value: Option<&Spanned<String>>| {
            let value = required(
                source,
                &entry_key.key(name),
                value,
                span.clone(),
                "a PEM file",
            );
            source.ok(value).map(|value| PathBuf::from(value.get_ref()))
        };
        let entry = entry.get_ref();
        if let (Some(cert), Some(key)) = (
            path("cert", entry.cert.as_ref()),
            path("key", entry.key.as_ref()),
        ) {
            certificates.push((cert, key));
        }
    }
    let files = TlsFiles {
        cert: cert?,
        key: key_file?,
        client_ca: raw.client_ca.as_ref().map(|ca| PathBuf::from(ca.get_ref())),
        certificates,
    };
    if files.certificates.len() != list.len() {
        return None;
    }
    match tls::server_config(&files) {
        Ok(settings) => Some(TlsConfig { files, settings }),
        Err(error) => {
            let (key, value) = match error.file {
                TlsFile::Cert => (key.key("cert"), raw.cert.as_ref()),
                TlsFile::Key => (key.key("key"), raw.key.as_ref()),
                TlsFile::ClientCa | TlsFile::Ca => (key.key("client_ca"), raw.client_ca.as_ref()),
                TlsFile::SniCert(index) => (
                    key.key("certificates").index(index).key("cert"),
                    list.get(index)
                        .and_then(|entry| entry.get_ref().cert.as_ref()),
                ),
                TlsFile::SniKey(index) => (
                    key.key("certificates").index(index).key("key"),
                    list.get(index)
                        .and_then(|entry| entry.get_ref().key.as_ref()),
                ),
            };
            report_file(source, &key, table, value, error);
            None
        }
    }
}

/// `upstream_tls = { ca, cert, key }`: `ca` required, `cert` and `key`
/// both or neither; the client settings offer in ALPN what `protocol`
/// speaks. `None` (with every error reported) when a key is missing or a
/// file cannot be used.
pub(super) fn upstream_tls(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<RawUpstreamTls>,
    protocol: UpstreamProtocol,
) -> Option<UpstreamTlsConfig> {
    let table = raw.span();
    let raw = raw.get_ref();
    let ca = required(
        source,
        &key.key("ca"),
        raw.ca.as_ref(),
        table.clone(),
        "a PEM file of CA certificates",
    );
    let ca = PathBuf::from(source.ok(ca)?.get_ref());
    let client = match (&raw.cert, &raw.key) {
        (None, None) => None,
        (Some(cert), Some(key_file)) => Some((
            PathBuf::from(cert.get_ref()),
            PathBuf::from(key_file.get_ref()),
        )),
        (Some(given), None) | (None, Some(given)) => {
            let (name, missing) = if raw.cert.is_some() {
                ("cert", "key")
            } else {
                ("key", "cert")
            };
            source.report(source.error(
                &key.key(name),
                At::Value(given.span()),
                format!("{name} without {missing}: a client certificate needs both cert and key"),
            ));
            return None;
        }
    };
    let files = InstanceTlsFiles { ca, client };
    let alpn: &[&[u8]] = match protocol {
        UpstreamProtocol::H2 => &[b"h2"],
        UpstreamProtocol::Http1 | UpstreamProtocol::H2c => &[b"http/1.1"],
    };
    match instances::client_config(&files, alpn) {
        Ok(settings) => Some(UpstreamTlsConfig { files, settings }),
        Err(error) => {
            let (name, value) = match error.file {
                TlsFile::Cert | TlsFile::SniCert(_) => ("cert", raw.cert.as_ref()),
                TlsFile::Key | TlsFile::SniKey(_) => ("key", raw.key.as_ref()),
                TlsFile::Ca | TlsFile::ClientCa => ("ca", raw.ca.as_ref()),
            };
            report_file(source, &key.key(name), table, value, error);
            None
        }
    }
}

/// Reports a file that cannot be used at `key`, whose `value` names it
/// (else at its `table`).
fn report_file(
    source: &Source<'_>,
    key: &KeyPath,
    table: std::ops::Range<usize>,
    value: Option<&Spanned<String>>,
    error: TlsError,
) {
    // The message names the file: the value is not quoted again.
    let at = At::Place(value.map_or(table, Spanned::span));
    source.report(source.error(key, at, error));
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::Config;

    /// A fake certificate: PEM that reads as one certificate, which the
    /// loader takes before it looks at the key.
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    /// A fake key, read as one before the CA is.
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    /// A directory of its own, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("shardproxy-tls-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn file(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn error_of(tls: &str) -> String {
        Config::from_toml(
            &format!(
                "[server]\nlisten = \"127.0.0.1:8443\"\n\n[server.tls]\n{tls}\n\n\
                 [services.web]\nsrv = \"_w._http.example.com\"\n\n[[routes]]\nservice = \"web\"\n"
            ),
            "config.toml",
        )
        .err()
        .unwrap_or_else(|| panic!("accepted: {tls}"))
        .to_string()
    }

    fn line(key: &str, path: &Path) -> String {
        format!("{key} = {:?}\n", path.display().to_string())
    }

    #[test]
    fn cert_and_key_are_required() {
        let error = error_of("client_ca = \"ca.pem\"");
        assert!(
            error.contains("config.toml:4:1: server.tls.cert: missing: expected a PEM file")
                && error.contains("config.toml:4:1: server.tls.key: missing: expected a PEM file"),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_a_certificate_or_a_key_is_an_error_naming_it() {
        let dir = Dir::new("empty");
        let (cert, empty) = (dir.file("cert.pem", CERT_PEM), dir.file("empty.pem", "\n"));
        let error = error_of(&(line("cert", &empty) + &line("key", &cert)));
        let name = empty.display().to_string();
        assert!(
            error.starts_with("config.toml:5:8: server.tls.cert: ")
                && error.contains(&format!("{name}: no certificate found")),
            "{error}"
        );
        let error = error_of(&(line("cert", &cert) + &line("key", &empty)));
        assert!(
            error.starts_with("config.toml:6:7: server.tls.key: ")
                && error.contains(&format!("{name}: no private key found")),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = error_of("cert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"");
        assert!(
            error.contains("server.tls.cert: /nonexistent/cert.pem: cannot read: no such file"),
            "{error}"
        );
    }

    #[test]
    fn a_client_ca_without_a_certificate_is_an_error_naming_it() {
        let dir = Dir::new("ca");
        let (cert, key) = (dir.file("cert.pem", CERT_PEM), dir.file("key.pem", KEY_PEM));
        let empty = dir.file("ca.pem", "");
        let error =
            error_of(&(line("cert", &cert) + &line("key", &key) + &line("client_ca", &empty)));
        assert!(
            error.contains("server.tls.client_ca: ")
                && error.contains(&format!("{}: no certificate found", empty.display())),
            "{error}"
        );
    }

    #[test]
    fn each_sni_certificate_needs_both_files_and_a_bad_one_is_named() {
        let error =
            error_of("cert = \"c.pem\"\nkey = \"k.pem\"\ncertificates = [{ cert = \"a.pem\" }]");
        assert!(
            error.contains(
                "config.toml:7:17: server.tls.certificates[0].key: missing: expected a PEM file"
            ),
            "{error}"
        );
        let dir = Dir::new("sni");
        let (cert, key) = (dir.file("cert.pem", CERT_PEM), dir.file("key.pem", KEY_PEM));
        let error = error_of(&format!(
            "{}{}certificates = [\n  {{ cert = {:?}, key = {:?} }},\n  {{ cert = \"/nonexistent/b.pem\", key = {:?} }},\n]",
            line("cert", &cert),
            line("key", &key),
            cert.display().to_string(),
            key.display().to_string(),
            key.display().to_string(),
        ));
        assert!(
            error.contains(
                "server.tls.certificates[1].cert: /nonexistent/b.pem: cannot read: no such file"
            ),
            "{error}"
        );
    }

    /// The errors of a service with `lines` added to its table (from line 3
    /// on).
    fn service_errors(lines: &str) -> String {
        Config::from_toml(
            &format!(
                "[services.web]\nsrv = \"_w._http.example.com\"\n{lines}\n\n\
                 [[routes]]\nservice = \"web\"\n"
            ),
            "config.toml",
        )
        .err()
        .unwrap_or_else(|| panic!("accepted: {lines}"))
        .to_string()
    }

    #[test]
    fn upstream_protocol_and_upstream_tls_must_agree() {
        assert_eq!(
            service_errors("upstream_protocol = \"h2\""),
            "config.toml:3:21: services.web.upstream_protocol = \"h2\": \"h2\" is HTTP/2 over TLS: \
             it needs upstream_tls = { ca = \"...\" } (\"h2c\" is HTTP/2 without TLS)"
        );
        let dir = Dir::new("agree");
        let ca = dir.file("ca.pem", CERT_PEM);
        let error = service_errors(&format!(
            "upstream_protocol = \"h2c\"\nupstream_tls = {{ ca = {:?} }}",
            ca.display().to_string()
        ));
        assert!(
            error.starts_with(
                "config.toml:3:21: services.web.upstream_protocol = \"h2c\": \"h2c\" is HTTP/2 \
                 without TLS, but upstream_tls is set: \"h2\" is HTTP/2 over TLS"
            ),
            "{error}"
        );
        assert_eq!(
            service_errors("upstream_protocol = \"http2\""),
            "config.toml:3:21: services.web.upstream_protocol = \"http2\": expected \"http1\", \"h2c\" or \"h2\""
        );
    }

    #[test]
    fn upstream_tls_needs_a_ca_and_a_client_certificate_needs_both_files() {
        assert_eq!(
            service_errors("upstream_tls = { cert = \"c.pem\", key = \"k.pem\" }"),
            "config.toml:3:16: services.web.upstream_tls.ca: missing: expected a PEM file of CA certificates"
        );
        let dir = Dir::new("client");
        let ca = dir.file("ca.pem", CERT_PEM);
        let error = service_errors(&format!(
            "upstream_tls = {{ ca = {:?}, cert = \"c.pem\" }}",
            ca.display().to_string()
        ));
        assert!(
            error.contains("services.web.upstream_tls.cert = \"c.pem\": cert without key: a client certificate needs both cert and key"),
            "{error}"
        );
    }

    #[test]
    fn an_upstream_tls_file_that_cannot_be_used_is_an_error_naming_it() {
        let error = service_errors("upstream_tls = { ca = \"/nonexistent/ca.pem\" }");
        assert_eq!(
            error,
            "config.toml:3:23: services.web.upstream_tls.ca: /nonexistent/ca.pem: cannot read: no such file"
        );
        let dir = Dir::new("upstream");
        let ca = dir.file("ca.pem", CERT_PEM);
        let error = service_errors(&format!(
            "upstream_tls = {{ ca = {:?} }}",
            ca.display().to_string()
        ));
        assert!(
            error.starts_with("config.toml:3:23: services.web.upstream_tls.ca: ")
                && error.contains(&format!("{}: not a usable CA certificate", ca.display())),
            "{error}"
        );
    }
}
