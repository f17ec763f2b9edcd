//! WebSocket through the proxy (SPEC §10), with real ends: a Python echo
//! server (the `websockets` package, `tests/support/websocket.py`) per
//! instance, each greeting with its own name, and a Python client. The
//! handshake goes where the ring sends the key, and to the replica when the
//! owner's listener is closed; messages, one over 64 KiB, echo both ways.

#![cfg(test)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use shardproxy::run::Running;
use support::client::Client;
use support::{start_proxy, wait_until, WAIT};

/// The Python side of these tests.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/websocket.py");

/// One instance: a WebSocket echo server in a child process.
struct Server {
    name: String,
    port: u16,
    child: Child,
}

impl Server {
    /// Starts the server `name` on a port the OS picks; ready once it has
    /// printed the port (it listens by then).
    fn start(name: &str) -> Server {
        let mut child = Command::new("python3")
            .args([SCRIPT, "serve", name])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/install-test-deps installs websockets)");
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(WAIT)
            .expect("the server says its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} did not start: {line:?}"));
        Server {
            name: name.to_owned(),
            port,
            child,
        }
    }

    /// The instance line of the static ring, owning `token`.
    fn instance_line(&self, token: &str) -> String {
        format!(
            "    {{ host = \"{}.example.com\", addr = \"127.0.0.1:{}\", tokens = [\"{token}\"] }},",
            self.name, self.port
        )
    }

    /// Closes its listener (and its connections): the process ends.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three instances, each key on its owner and one replica (`slaves = 1`).
async fn fleet() -> (Vec<Server>, Running) {
    let servers: Vec<Server> = ["ws1", "ws2", "ws3"]
        .into_iter()
        .map(Server::start)
        .collect();
    let lines: Vec<String> = servers
        .iter()
        .zip(["40", "80", "c0"])
        .map(|(server, token)| server.instance_line(token))
        .collect();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [services.frob]\nkey = \"path\"\nslaves = 1\ninstances = [\n{}\n]\n\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        lines.join("\n")
    );
    let proxy = start_proxy(&config, "websocket.toml").await;
    (servers, proxy)
}

/// The ports of the preference list of `key`, primary first, as the
/// proxy's `/ring/lookup` gives it.
async fn preference(proxy: &Running, key: &str) -> Vec<u16> {
    let path = format!("/ring/lookup?service=frob&key={key}");
    let answer = Client::http1().get(proxy.admin, &path).await;
    let view: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|instance| instance["port"].as_u64().unwrap() as u16)
        .collect()
}

/// The name of the instance that a WebSocket to `path` through `proxy`
/// reached, once its messages all came back.
async fn talk(proxy: SocketAddr, path: &str) -> String {
    let url = format!("ws://{proxy}{path}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([SCRIPT, "talk", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(done["echoed"], 5, "{done}");
    done["instance"].as_str().unwrap().to_owned()
}

/// The name of the server listening on `port`.
fn name_of(servers: &[Server], port: u16) -> &str {
    &servers
        .iter()
        .find(|server| server.port == port)
        .expect("an instance of the fleet")
        .name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_reaches_the_owner_of_its_key_and_echoes_both_ways() {
    let (servers, proxy) = fleet().await;
    let mut reached = Vec::new();
    for key in [
        "/chat/a", "/chat/b", "/chat/c", "/chat/d", "/chat/e", "/chat/f",
    ] {
        let owner = preference(&proxy, key).await[0];
        let instance = talk(proxy.listen, key).await;
        assert_eq!(instance, name_of(&servers, owner), "{key}");
        reached.push(instance);
    }
    reached.sort();
    reached.dedup();
    assert!(reached.len() > 1, "the keys spread: {reached:?}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_goes_to_the_replica_when_the_owner_is_down() {
    let (mut servers, proxy) = fleet().await;
    let key = "/chat/room-7";
    let list = preference(&proxy, key).await;
    let (owner, replica) = (list[0], list[1]);
    let replica_name = name_of(&servers, replica).to_owned();
    servers
        .iter_mut()
        .find(|server| server.port == owner)
        .unwrap()
        .stop();
    wait_until("the owner's listener is closed", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", owner))
            .await
            .is_err()
    })
    .await;
    assert_eq!(talk(proxy.listen, key).await, replica_name);
    proxy.shutdown().await;
}
