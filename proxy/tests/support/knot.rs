//! A real Knot DNS `knotd` (Debian package `knot`) serving one zone on a
//! loopback port, which takes dynamic updates signed with a TSIG key only:
//! the other primary server operators run, for end-to-end tests of
//! `ring publish` beyond BIND.
//!
//! ```ignore
//! let knot = KnotServer::start("example.com", "frob1 IN A 127.0.0.1\n");
//! // ... send updates to knot.addr(), signed with knot.update_key_file() ...
//! ```
//!
//! Each server runs as the user running the tests (no `user:`, so it
//! needs no root), with its config, zone file, run dir (control socket),
//! databases (journal, timers) and log in a fresh directory under the
//! system temp dir, removed when the server is dropped. Without Knot
//! installed, [`KnotServer::start`] panics: tests that need it fail rather
//! than pass vacuously.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::primary::{
    find_program, free_port, fresh_dir, wait_for_soa, zone_text, UpdateKey, PORT_ATTEMPTS,
    READY_TIMEOUT,
};

const INSTALL_HINT: &str = "install Knot DNS with `apt-get install knot`";

/// The name of the key updates are signed with: the same as BIND's in
/// [`super::bind`], so a test runs unchanged against either.
const KEY_NAME: &str = "ddns";

/// A running `knotd`, authoritative for one zone that accepts dynamic
/// updates signed with the key of [`KnotServer::update_key_file`]. Stopped
/// (killed) and its directory removed on drop.
pub struct KnotServer {
    child: Option<Child>,
    addr: SocketAddr,
    origin: String,
    dir: PathBuf,
    key_file: PathBuf,
}

/// Why `knotd` will not come up.
enum Down {
    /// The port picked was taken before `knotd` could bind it.
    PortTaken,
    /// Anything else: the test fails, saying this.
    Failed(String),
}

impl KnotServer {
    /// Starts `knotd` serving the zone `zone_origin` (e.g. `"example.com"`,
    /// with or without the final dot) from `initial_zone_text`, as
    /// [`super::bind::BindServer::start`] takes it (the same default
    /// header when it has no SOA). Returns once `knotd` answers the zone's
    /// SOA query.
    ///
    /// # Panics
    ///
    /// If `knotd` is not installed, exits, does not load the zone or does
    /// not answer within [`READY_TIMEOUT`]; the message includes its log.
    pub fn start(zone_origin: &str, initial_zone_text: &str) -> KnotServer {
        let knotd = find_program("knotd", INSTALL_HINT);
        let zone = zone_origin.trim_end_matches('.');
        assert!(!zone.is_empty(), "the zone origin must not be the root");
        let origin = format!("{zone}.");
        let dir = fresh_dir("knot");
        let zone_file = dir.join("zone.db");
        fs::write(&zone_file, zone_text(&origin, initial_zone_text))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", zone_file.display()));
        let key = UpdateKey::generate(KEY_NAME);
        let key_file = dir.join("ddns.key");
        key.write_bind_file(&key_file);

        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let conf = dir.join("knot.conf");
            fs::write(&conf, knot_conf(&dir, zone, &zone_file, port, &key))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
            let log_path = dir.join("knotd.log");
            let log = fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
            let err_log = log.try_clone().unwrap();
            // In the foreground (knotd's default), logging to stderr.
            let child = Command::new(&knotd)
                .arg("--config")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", knotd.display()));
            let mut server = KnotServer {
                child: Some(child),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                origin: origin.clone(),
                dir: dir.clone(),
                key_file: key_file.clone(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(()) if attempt < PORT_ATTEMPTS => {
                    // Keep the directory for the next attempt.
                    server.kill();
                    server.dir = PathBuf::new();
                }
                Err(()) => server.fail("its port stayed taken"),
            }
        }
        unreachable!("the last attempt returns or panics");
    }

    /// The address `knotd` listens on (UDP and TCP, 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's origin, absolute (`"example.com."`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The server's directory (config, zone file, databases, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TSIG key that signs updates, as a BIND key file (what
    /// `ring publish --tsig-key` reads).
    pub fn update_key_file(&self) -> &Path {
        &self.key_file
    }

    /// What `knotd` has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("knotd.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until `knotd` answers the zone's SOA with authority; `Err`
    /// when its port was taken.
    fn wait_ready(&mut self) -> Result<(), ()> {
        let (addr, origin) = (self.addr, self.origin.clone());
        let waited = wait_for_soa(addr, &origin, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                if self.log().contains("cannot bind address") {
                    return Err(Down::PortTaken);
                }
                return Err(Down::Failed(format!("knotd exited ({status})")));
            }
            if self.log().contains("zone event 'load' failed") {
                return Err(Down::Failed("knotd did not load the zone".to_owned()));
            }
            Ok(())
        });
        match waited {
            Ok(()) => Ok(()),
            Err(Some(Down::PortTaken)) => Err(()),
            Err(Some(Down::Failed(why))) => self.fail(&why),
            Err(None) => self.fail(&format!("knotd did not answer within {READY_TIMEOUT:?}")),
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let log = self.log();
        let conf = fs::read_to_string(self.dir.join("knot.conf")).unwrap_or_default();
        let zone = fs::read_to_string(self.dir.join("zone.db")).unwrap_or_default();
        panic!(
            "Knot did not start: {why}\n--- knotd's log ---\n{log}\n--- knot.conf ---\n{conf}\n\
             --- zone file ---\n{zone}"
        );
    }
}

impl Drop for KnotServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            // Best effort: a leftover temp dir does not fail a test.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// knotd's config: everything under `dir` (run dir with the control
/// socket, databases), listening on 127.0.0.1 only, the zone updatable
/// with `key` only.
fn knot_conf(dir: &Path, zone: &str, zone_file: &Path, port: u16, key: &UpdateKey) -> String {
    let dir = dir.display();
    let zone_file = zone_file.display();
    let (name, secret) = (&key.name, &key.secret);
    format!(
        r#"server:
    rundir: "{dir}"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: "{dir}"
key:
  - id: {name}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: update
    key: {name}
    action: update
template:
  - id: default
    storage: "{dir}"
zone:
  - domain: {zone}
    file: "{zone_file}"
    acl: update
"#
    )
}
