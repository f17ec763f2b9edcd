//! A real nginx (Debian's `nginx`) as an instance that speaks TLS and
//! requires a client certificate, as services spread across hosts do:
//! started in the foreground as one process on a generated config, on a
//! free loopback port, ready once that port accepts. It answers every
//! request with a line of what its TLS saw.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::pki::Issued;
use super::primary::{find_program, free_port, fresh_dir, wait_accepting, PORT_ATTEMPTS};

const INSTALL_HINT: &str = "run scripts/install-test-deps (it installs Debian's nginx)";

/// A running nginx; killed when dropped.
pub struct Nginx {
    child: Child,
    /// Where it listens (TLS, HTTP/1.1 and HTTP/2 by ALPN).
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with the certificate `server`, requiring client
    /// certificates signed by `client_ca` (`ssl_verify_client on`). Every
    /// answer is `200` with `nginx PROTOCOL TLS-VERSION verify=RESULT
    /// SUBJECT host=HOST`.
    pub fn start_tls(server: &Issued, client_ca: &Path) -> Nginx {
        let nginx = find_program("nginx", INSTALL_HINT);
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = fresh_dir("nginx");
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let temp = |name: &str| dir.join(name).display().to_string();
            let config = dir.join("nginx.conf");
            fs::write(
                &config,
                format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\n\
                     pid {pid};\nerror_log {error_log} info;\n\
                     events {{ worker_connections 64; }}\n\
                     http {{\n  access_log off;\n\
                     \x20 client_body_temp_path {body};\n  proxy_temp_path {proxy};\n\
                     \x20 fastcgi_temp_path {fastcgi};\n  uwsgi_temp_path {uwsgi};\n\
                     \x20 scgi_temp_path {scgi};\n\
                     \x20 server {{\n    listen {addr} ssl http2;\n\
                     \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
                     \x20   ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                     \x20   ssl_client_certificate {ca};\n    ssl_verify_client on;\n\
                     \x20   location / {{\n      default_type text/plain;\n\
                     \x20     return 200 \"nginx $server_protocol $ssl_protocol \
                     verify=$ssl_client_verify $ssl_client_s_dn host=$host\\n\";\n    }}\n  }}\n}}\n",
                    pid = temp("nginx.pid"),
                    error_log = temp("error.log"),
                    body = temp("body"),
                    proxy = temp("proxy"),
                    fastcgi = temp("fastcgi"),
                    uwsgi = temp("uwsgi"),
                    scgi = temp("scgi"),
                    cert = server.cert.display(),
                    key = server.key.display(),
                    ca = client_ca.display(),
                ),
            )
            .unwrap();
            let stderr = fs::File::create(dir.join("stderr")).unwrap();
            let child = Command::new(&nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {}: {error}", nginx.display()));
            let mut started = Nginx { child, addr, dir };
            match wait_accepting(&mut started.child, addr, &started.dir.join("error.log")) {
                Ok(()) => return started,
                Err(why) => failures.push(why),
            }
        }
        panic!("nginx did not start: {failures:?}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
