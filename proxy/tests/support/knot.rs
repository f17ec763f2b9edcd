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
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::primary::{find_program, fresh_dir, zone_text, Daemon, Program, UpdateKey};

const INSTALL_HINT: &str = "install Knot DNS with `apt-get install knot`";

/// The name of the key updates are signed with: the same as BIND's in
/// [`super::bind`], so a test runs unchanged against either.
const KEY_NAME: &str = "ddns";

const KNOTD: Program = Program {
    name: "Knot",
    log: "knotd.log",
    config: "knot.conf",
    // knotd exits when it cannot bind its port.
    port_taken: &["cannot bind address"],
    zone_failed: "zone event 'load' failed",
};

/// A running `knotd`, authoritative for one zone that accepts dynamic
/// updates signed with the key of [`KnotServer::update_key_file`]. Stopped
/// (killed) and its directory removed on drop.
pub struct KnotServer {
    daemon: Daemon,
    origin: String,
    key_file: PathBuf,
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
    /// not answer within [`super::primary::READY_TIMEOUT`]; the message includes its log.
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

        let conf = dir.join("knot.conf");
        let daemon = Daemon::start(&KNOTD, dir.clone(), &origin, |port| {
            fs::write(&conf, knot_conf(&dir, zone, &zone_file, port, &key))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
            // In the foreground (knotd's default), logging to stderr.
            let mut command = Command::new(&knotd);
            command.arg("--config").arg(&conf);
            command
        });
        KnotServer {
            daemon,
            origin,
            key_file,
        }
    }

    /// The address `knotd` listens on (UDP and TCP, 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// The zone's origin, absolute (`"example.com."`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The server's directory (config, zone file, databases, log).
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The TSIG key that signs updates, as a BIND key file (what
    /// `ring publish --tsig-key` reads).
    pub fn update_key_file(&self) -> &Path {
        &self.key_file
    }

    /// What `knotd` has logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
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
