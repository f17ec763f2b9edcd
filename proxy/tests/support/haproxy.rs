//! A real HAProxy (Debian's `haproxy`) in front of a test's proxy, sending
//! it the PROXY protocol header as a load balancer in production does:
//! started as the current user on a generated config, on a free loopback
//! port, ready once that port accepts.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::primary::{find_program, free_port, fresh_dir, wait_accepting, PORT_ATTEMPTS};

const INSTALL_HINT: &str = "run scripts/install-test-deps (it installs Debian's haproxy)";

/// Which header HAProxy sends on each connection to the proxy.
#[derive(Clone, Copy, Debug)]
pub enum Send {
    /// `send-proxy`: v1, text.
    V1,
    /// `send-proxy-v2`: v2, binary.
    V2,
}

/// A running HAProxy; killed when dropped.
pub struct HaProxy {
    child: Child,
    /// Where clients connect to it.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl HaProxy {
    /// Starts HAProxy in `mode` (`tcp` or `http`) relaying every
    /// connection to `server` with the header `send`; retries on another
    /// port when the one picked was taken first.
    pub fn start(mode: &str, server: SocketAddr, send: Send) -> HaProxy {
        let haproxy = find_program("haproxy", INSTALL_HINT);
        let send = match send {
            Send::V1 => "send-proxy",
            Send::V2 => "send-proxy-v2",
        };
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = fresh_dir("haproxy");
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let config = dir.join("haproxy.cfg");
            fs::write(
                &config,
                format!(
                    "global\n    maxconn 100\n\n\
                     defaults\n    mode {mode}\n    timeout connect 5s\n    \
                     timeout client 30s\n    timeout server 30s\n\n\
                     frontend front\n    bind {addr}\n    default_backend shard\n\n\
                     backend shard\n    server s1 {server} {send}\n"
                ),
            )
            .unwrap();
            let stderr = fs::File::create(dir.join("stderr")).unwrap();
            // -db: in the foreground, so that the test owns the process.
            let child = Command::new(&haproxy)
                .arg("-db")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {}: {error}", haproxy.display()));
            let mut started = HaProxy { child, addr, dir };
            match wait_accepting(&mut started.child, addr, &started.dir.join("stderr")) {
                Ok(()) => return started,
                Err(why) => failures.push(why),
            }
        }
        panic!("HAProxy did not start: {failures:?}");
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
