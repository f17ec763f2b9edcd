//! Test certificates made with the `openssl` command line, in a directory
//! of their own under the target's temporary directory, removed when
//! dropped: a CA, and server and client certificates it signs. Nothing of
//! them is committed; each run makes its own keys.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA (`ca.pem`, `ca.key`) in a directory of its own.
pub struct Pki {
    dir: PathBuf,
}

/// A certificate and its key, as files.
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl Pki {
    /// A new CA, `CN=shardproxy-test-ca`; `name` makes the directory unique
    /// in this test binary.
    pub fn new(name: &str) -> Pki {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pki-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the PKI directory is made");
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=shardproxy-test-ca",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        pki
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for `localhost` and 127.0.0.1, subject
    /// `CN={name}`, with `serial`, as `{name}.pem` and `{name}.key`.
    pub fn server(&self, name: &str, serial: u32) -> Issued {
        self.issue(
            name,
            serial,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A server certificate for the host name `host` only, subject
    /// `CN={name}`, as `{name}.pem` and `{name}.key`.
    pub fn server_for(&self, name: &str, serial: u32, host: &str) -> Issued {
        self.issue(
            name,
            serial,
            &format!("subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n"),
        )
    }

    /// A client certificate, subject `CN={name}`.
    pub fn client(&self, name: &str, serial: u32) -> Issued {
        self.issue(name, serial, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, serial: u32, extensions: &str) -> Issued {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}"),
        )
        .expect("the extensions file is written");
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={name}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ]);
        let serial = serial.to_string();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &ext,
        ]);
        Issued {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs (scripts/install-test-deps installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
