//! `[server.tls]` (SPEC §10): `cert` and `key` required, `client_ca`
//! optional, and the files read now, so that a file that cannot be used is
//! an error of the key that names it.

use std::path::PathBuf;

use toml::Spanned;

use super::check::required;
use super::error::{At, KeyPath, Source};
use super::raw::RawTls;
use super::TlsConfig;
use crate::tls::{self, TlsFile, TlsFiles};

/// The table's files and settings; `None` (with every error reported) when
/// a key is missing or a file cannot be used.
pub(super) fn tls(source: &Source<'_>, key: &KeyPath, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
    let table = raw.span();
    let raw = raw.get_ref();
    let path = |name: &str, value: Option<&Spanned<String>>| {
        let value = required(source, &key.key(name), value, table.clone(), "a PEM file");
        source.ok(value).map(|value| PathBuf::from(value.get_ref()))
    };
    let cert = path("cert", raw.cert.as_ref());
    let key_file = path("key", raw.key.as_ref());
    let files = TlsFiles {
        cert: cert?,
        key: key_file?,
        client_ca: raw.client_ca.as_ref().map(|ca| PathBuf::from(ca.get_ref())),
    };
    match tls::server_config(&files) {
        Ok(settings) => Some(TlsConfig { files, settings }),
        Err(error) => {
            let (name, value) = match error.file {
                TlsFile::Cert => ("cert", raw.cert.as_ref()),
                TlsFile::Key => ("key", raw.key.as_ref()),
                TlsFile::ClientCa => ("client_ca", raw.client_ca.as_ref()),
            };
            // The message names the file: the value is not quoted again.
            let at = At::Place(value.map_or(table, Spanned::span));
            source.report(source.error(&key.key(name), at, error));
            None
        }
    }
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
}
