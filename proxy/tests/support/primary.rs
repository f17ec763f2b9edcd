//! What the real DNS servers of the end-to-end tests ([`super::bind`] and
//! [`super::knot`]) share: a fresh directory, a loopback port free for UDP
//! and TCP, their programs, the zone file they load, the process started
//! on a port ([`Daemon`]) with readiness by asking (never by sleeping a
//! fixed time), and a TSIG key for dynamic updates.

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// How long a server gets to load its zone and answer: usually well under
/// a second, but 20 s once ran out on a machine under a load of 18.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many ports to try if the one picked is taken before the server
/// binds it.
pub const PORT_ATTEMPTS: u32 = 3;

/// A loopback port free (for now) for both UDP and TCP, and never handed
/// out before in this process: BIND and Knot both bind UDP with
/// `SO_REUSEPORT`, so two servers of one test binary given the same port
/// would share it rather than one of them failing to bind.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && GIVEN.lock().unwrap().insert(port)
        {
            return port;
        }
    }
}

/// A new, empty directory `shardproxy-{what}-...` under the system temp
/// dir.
pub fn fresh_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "shardproxy-{what}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
    ));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The path of a program, from /usr/sbin, /usr/bin, /sbin or `PATH`;
/// without it the test fails with `install_hint`, rather than passing
/// vacuously.
pub fn find_program(name: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found in /usr/sbin, /usr/bin or PATH: {install_hint}")
        })
}

/// Waits until `child` (a server) accepts on `addr`; the error says why it
/// will not (it exited: its `stderr` file).
pub fn wait_accepting(child: &mut Child, addr: SocketAddr, stderr: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = fs::read_to_string(stderr).unwrap_or_default();
            return Err(format!("exited with {status}: {stderr}"));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{addr} did not accept within {READY_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The zone file of `origin` (absolute): `text`, with `$ORIGIN` set to the
/// zone, after a default header unless it has an SOA: `$TTL 1` (so records
/// without a TTL get 1 second), an SOA whose negative TTL is 1 second, and
/// `@ NS localhost.`.
pub fn zone_text(origin: &str, text: &str) -> String {
    let has_soa = text.lines().any(|line| {
        let data = line.split(';').next().unwrap_or("");
        data.split_whitespace()
            .any(|word| word.eq_ignore_ascii_case("SOA"))
    });
    let header = if has_soa {
        format!("$ORIGIN {origin}\n")
    } else {
        format!(
            "$ORIGIN {origin}\n\
             $TTL 1\n\
             @ IN SOA localhost. hostmaster.{origin} 1 3600 600 86400 1\n\
             @ IN NS localhost.\n"
        )
    };
    format!("{header}{text}\n")
}

/// Waits until the server at `addr` answers the SOA of `origin` with
/// authority. Before each try `alive` says whether the server can still
/// come up (its process runs, its log shows no error); its error ends the
/// wait and is returned. `Err(None)`: no answer within [`READY_TIMEOUT`].
pub fn wait_for_soa<E>(
    addr: SocketAddr,
    origin: &str,
    mut alive: impl FnMut() -> Result<(), E>,
) -> Result<(), Option<E>> {
    let origin = Name::from_ascii(origin).unwrap();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut id: u16 = 0;
    loop {
        alive().map_err(Some)?;
        if Instant::now() > deadline {
            return Err(None);
        }
        id = id.wrapping_add(1);
        let mut query = Message::query();
        query.metadata.id = id;
        query.add_query(Query::query(origin.clone(), RecordType::SOA));
        // A send error (nothing listening yet) is like no answer.
        let _ = socket.send(&query.to_vec().unwrap());
        let mut buf = [0u8; 4096];
        // Answers to earlier tries that came after their 100 ms are read
        // past: taken for this try's, they would keep every later try one
        // answer behind, and a slow start would never be seen to end.
        let answered = loop {
            let Ok(len) = socket.recv(&mut buf) else {
                break false;
            };
            match Message::from_vec(&buf[..len]) {
                Ok(m) if m.metadata.id != id => continue,
                Ok(m) => {
                    break m.metadata.authoritative
                        && m.metadata.response_code == ResponseCode::NoError
                        && !m.answers.is_empty()
                }
                Err(_) => break false,
            }
        };
        if answered {
            return Ok(());
        }
        // The recv timeout paces the tries when nothing answers; this,
        // when something refuses at once (the zone not loaded yet).
        thread::sleep(Duration::from_millis(50));
    }
}

/// One kind of server: how to tell from its log why it does not come up,
/// and the names of its files.
pub struct Program {
    /// For messages: `"BIND"`, `"Knot"`.
    pub name: &'static str,
    /// Its log file in its directory (stdout and stderr).
    pub log: &'static str,
    /// Its config file in its directory, shown when it fails.
    pub config: &'static str,
    /// What its log says when its port is taken (it may go on without
    /// it, or exit).
    pub port_taken: &'static [&'static str],
    /// What its log says when it does not load the zone.
    pub zone_failed: &'static str,
}

/// A server process answering for one zone on a loopback port, in its own
/// directory (config, `zone.db`, log...). Killed and its directory removed
/// on drop.
pub struct Daemon {
    program: &'static Program,
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
}

/// The port picked was taken before the server could bind it.
struct PortTaken;

/// Why a server will not come up.
enum Down {
    /// See [`PortTaken`].
    PortTaken,
    /// Anything else: the test fails, saying this.
    Failed(String),
}

impl Daemon {
    /// Starts `program` in `dir` and waits until it answers the SOA of
    /// `origin` (absolute) with authority. For each port tried (another
    /// when one is taken before the server binds it), `command(port)`
    /// writes the config for that port and returns the command that runs
    /// the server in the foreground; its output goes to the log.
    ///
    /// # Panics
    ///
    /// If the server exits, does not load the zone or does not answer
    /// within [`READY_TIMEOUT`]; the message has its log, config and zone.
    pub fn start(
        program: &'static Program,
        dir: PathBuf,
        origin: &str,
        mut command: impl FnMut(u16) -> Command,
    ) -> Daemon {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let mut command = command(port);
            let log_path = dir.join(program.log);
            let log = fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
            let err_log = log.try_clone().unwrap();
            let child = command
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
            let mut daemon = Daemon {
                program,
                child: Some(child),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir: dir.clone(),
            };
            match daemon.wait_ready(origin) {
                Ok(()) => return daemon,
                Err(PortTaken) if attempt < PORT_ATTEMPTS => {
                    // Keep the directory for the next attempt.
                    daemon.kill();
                    daemon.dir = PathBuf::new();
                }
                Err(PortTaken) => daemon.fail("its port stayed taken"),
            }
        }
        unreachable!("the last attempt returns or panics");
    }

    /// Where it listens (UDP and TCP, 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its directory; empty once stopped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join(self.program.log)).unwrap_or_default()
    }

    /// Kills it (the address stops answering) and removes the directory.
    /// Idempotent; also done on drop.
    pub fn stop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            // Best effort: a leftover temp dir does not fail a test.
            let _ = fs::remove_dir_all(&self.dir);
            self.dir = PathBuf::new();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&mut self, origin: &str) -> Result<(), PortTaken> {
        let program = self.program;
        let waited = wait_for_soa(self.addr, origin, || {
            let log = self.log();
            if program.port_taken.iter().any(|marker| log.contains(marker)) {
                return Err(Down::PortTaken);
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(Down::Failed(format!("it exited ({status})")));
            }
            if log.contains(program.zone_failed) {
                return Err(Down::Failed("it did not load the zone".to_owned()));
            }
            Ok(())
        });
        match waited {
            Ok(()) => Ok(()),
            Err(Some(Down::PortTaken)) => Err(PortTaken),
            Err(Some(Down::Failed(why))) => self.fail(&why),
            Err(None) => self.fail(&format!("it did not answer within {READY_TIMEOUT:?}")),
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let (name, log_file, config_file) =
            (self.program.name, self.program.log, self.program.config);
        let log = self.log();
        let config = fs::read_to_string(self.dir.join(config_file)).unwrap_or_default();
        let zone = fs::read_to_string(self.dir.join("zone.db")).unwrap_or_default();
        panic!(
            "{name} did not start: {why}\n--- {log_file} ---\n{log}\n--- {config_file} ---\n\
             {config}\n--- zone file ---\n{zone}"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TSIG key (hmac-sha256) for dynamic updates, made here for servers
/// whose own tools do not write BIND's key file.
#[derive(Clone, Debug)]
pub struct UpdateKey {
    /// The key's name.
    pub name: String,
    /// The secret, base64.
    pub secret: String,
}

impl UpdateKey {
    /// A key named `name` with a fresh random 256-bit secret.
    pub fn generate(name: &str) -> UpdateKey {
        let secret: [u8; 32] = rand::random();
        UpdateKey {
            name: name.to_owned(),
            secret: data_encoding::BASE64.encode(&secret),
        }
    }

    /// The key as BIND's `key` statement, the file `--tsig-key` and
    /// `nsupdate -k` read.
    pub fn bind_statement(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            self.name, self.secret
        )
    }

    /// Writes [`UpdateKey::bind_statement`] to `path`.
    pub fn write_bind_file(&self, path: &Path) {
        fs::write(path, self.bind_statement())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
