//! A real BIND `named` (Debian packages `bind9`, `bind9-dnsutils`) serving
//! one dynamic zone on a loopback port, for end-to-end tests against the DNS
//! server operators actually run.
//!
//! ```ignore
//! let bind = BindServer::start("example.com", r#"
//! _frob._http  IN SRV 10 50 8081 frob1
//! frob1        IN A   127.0.0.1
//! "#);
//! // ... point a resolver at bind.addr() ...
//! bind.nsupdate("update add tokens.8081.frob1.example.com. 1 TXT \"40\"");
//! ```
//!
//! Each server runs in a fresh directory under the system temp dir (config,
//! zone file, journal, named's log), removed when the server is dropped.
//! Without BIND installed, [`BindServer::start`] panics: tests that need it
//! fail rather than pass vacuously.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::primary::{fresh_dir, zone_text, Daemon, Program};

const INSTALL_HINT: &str = "install BIND with `apt-get install bind9 bind9-dnsutils`";

const NAMED: Program = Program {
    name: "BIND",
    log: "named.log",
    config: "named.conf",
    // named exits when it can bind none of its sockets, and goes on
    // without those it cannot bind otherwise.
    port_taken: &[
        "unable to listen on any configured interfaces",
        "address in use",
    ],
    zone_failed: "not loaded due to errors",
};

/// A running `named`, authoritative for one zone that accepts dynamic updates
/// from 127.0.0.1 (or, started with [`BindServer::start_with_update_key`],
/// only those signed with a TSIG key). Stopped (killed) and its directory
/// removed on drop.
pub struct BindServer {
    daemon: Daemon,
    origin: String,
    update_key: Option<PathBuf>,
}

/// Who may send the zone dynamic updates.
#[derive(Clone, Copy)]
enum Updates {
    /// Anyone on 127.0.0.1, unsigned ([`BindServer::nsupdate`]).
    FromLoopback,
    /// Only updates signed with the key `ddns`, as a production zone is set
    /// up (the README's `nsupdate -k`).
    SignedWithKey,
}

impl BindServer {
    /// Starts `named` serving the zone `zone_origin` (e.g. `"example.com"`,
    /// with or without the final dot) from `initial_zone_text`, in RFC 1035
    /// master-file format with `$ORIGIN` set to the zone. Returns once
    /// `named` answers the zone's SOA query.
    ///
    /// If the text has no SOA record, this header is put before it: `$TTL 1`
    /// (so records without a TTL get 1 second), an SOA whose negative TTL is
    /// 1 second, and `@ NS localhost.`.
    ///
    /// Blocks the thread (for the fraction of a second named takes to
    /// start), which is fine in a `#[tokio::test]`.
    ///
    /// # Panics
    ///
    /// If `named` is not installed, exits, does not load the zone or does
    /// not answer within [`super::primary::READY_TIMEOUT`]; the message includes named's
    /// log.
    pub fn start(zone_origin: &str, initial_zone_text: &str) -> BindServer {
        Self::launch(zone_origin, initial_zone_text, Updates::FromLoopback)
    }

    /// Like [`BindServer::start`], but the zone takes only dynamic updates
    /// signed with a TSIG key named `ddns`, made here with `tsig-keygen`
    /// into the file [`BindServer::update_key_file`] (the named.conf
    /// `key` statement `nsupdate -k` reads): the setup of a zone that
    /// `nsupdate -k /etc/bind/ddns.key` updates. [`BindServer::nsupdate`]
    /// (unsigned) is refused by such a server.
    pub fn start_with_update_key(zone_origin: &str, initial_zone_text: &str) -> BindServer {
        Self::launch(zone_origin, initial_zone_text, Updates::SignedWithKey)
    }

    fn launch(zone_origin: &str, initial_zone_text: &str, updates: Updates) -> BindServer {
        let named = find_program("named");
        let zone = zone_origin.trim_end_matches('.');
        assert!(!zone.is_empty(), "the zone origin must not be the root");
        let origin = format!("{zone}.");
        let dir = fresh_dir("bind");
        let zone_file = dir.join("zone.db");
        fs::write(&zone_file, zone_text(&origin, initial_zone_text))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", zone_file.display()));
        let update_key = match updates {
            Updates::FromLoopback => None,
            Updates::SignedWithKey => Some(write_update_key(&dir)),
        };

        let conf = dir.join("named.conf");
        let daemon = Daemon::start(&NAMED, dir.clone(), &origin, |port| {
            fs::write(
                &conf,
                named_conf(&dir, zone, &zone_file, port, update_key.as_deref()),
            )
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
            // -g: foreground, all logging to stderr; -4: IPv4 only. As
            // whatever user runs the tests (root included): no -u.
            let mut command = Command::new(&named);
            command.arg("-g").arg("-4").arg("-c").arg(&conf);
            command
        });
        BindServer {
            daemon,
            origin,
            update_key,
        }
    }

    /// The address `named` listens on (UDP and TCP, 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// The zone's origin, absolute (`"example.com."`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The server's directory (config, zone file, journal, log).
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The TSIG key file (a named.conf `key "ddns"` statement) that signs
    /// updates, for a server started with
    /// [`BindServer::start_with_update_key`].
    pub fn update_key_file(&self) -> Option<&Path> {
        self.update_key.as_deref()
    }

    /// What `named` has logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Runs `nsupdate` against this server with `commands` (one per line,
    /// e.g. `update add NAME TTL TYPE DATA`, `update delete NAME TYPE`),
    /// then `send`. `server` and `zone` are set first. BIND applies an update
    /// before it answers, so the change is visible once this returns.
    ///
    /// # Panics
    ///
    /// If `nsupdate` is not installed or fails (the message includes its
    /// output and named's log).
    pub fn nsupdate(&self, commands: &str) {
        let nsupdate = find_program("nsupdate");
        let script = format!(
            "server {} {}\nzone {}\n{}\nsend\n",
            self.addr().ip(),
            self.addr().port(),
            self.origin,
            commands.trim_end(),
        );
        let mut child = Command::new(&nsupdate)
            .args(["-t", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", nsupdate.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "nsupdate failed ({}) on:\n{script}\nstdout:\n{}\nstderr:\n{}\nnamed's log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log(),
        );
    }

    /// Kills `named` (the address stops answering) and removes the
    /// directory. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

fn named_conf(
    dir: &Path,
    zone: &str,
    zone_file: &Path,
    port: u16,
    update_key: Option<&Path>,
) -> String {
    let dir = dir.display();
    let zone_file = zone_file.display();
    let (include, allow_update) = match update_key {
        None => (String::new(), "127.0.0.1;"),
        Some(key) => (format!("include \"{}\";\n", key.display()), "key ddns;"),
    };
    format!(
        r#"{include}options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    dump-file "{dir}/named_dump.db";
    statistics-file "{dir}/named.stats";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
}};
// No rndc control channel: it would need a key and port 953.
controls {{ }};
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    journal "{zone_file}.jnl";
    allow-update {{ {allow_update} }};
}};
"#
    )
}

/// Makes the TSIG key `ddns` with `tsig-keygen` (BIND's own tool) into
/// `dir/ddns.key`, and returns that path.
fn write_update_key(dir: &Path) -> PathBuf {
    let tsig_keygen = find_program("tsig-keygen");
    let output = Command::new(&tsig_keygen)
        .arg("ddns")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tsig_keygen.display()));
    assert!(
        output.status.success() && output.stdout.starts_with(b"key \"ddns\""),
        "tsig-keygen ddns failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let path = dir.join("ddns.key");
    fs::write(&path, &output.stdout)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The path of a BIND program.
fn find_program(name: &str) -> PathBuf {
    super::primary::find_program(name, INSTALL_HINT)
}
