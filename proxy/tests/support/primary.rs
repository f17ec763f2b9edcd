//! What the real DNS servers of the end-to-end tests ([`super::bind`] and
//! [`super::knot`]) share: a fresh directory, a loopback port free for UDP
//! and TCP, their programs, the zone file they load, readiness by asking
//! (never by sleeping a fixed time), and a TSIG key for dynamic updates.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
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

/// A loopback port free (for now) for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
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
        let answered = match socket.recv(&mut buf) {
            Ok(len) => Message::from_vec(&buf[..len]).is_ok_and(|m| {
                m.metadata.id == id
                    && m.metadata.authoritative
                    && m.metadata.response_code == ResponseCode::NoError
                    && !m.answers.is_empty()
            }),
            Err(_) => false,
        };
        if answered {
            return Ok(());
        }
        // The recv timeout paces the tries when nothing answers; this,
        // when something refuses at once (the zone not loaded yet).
        thread::sleep(Duration::from_millis(50));
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
