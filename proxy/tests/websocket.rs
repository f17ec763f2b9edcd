//! WebSocket through the proxy (SPEC §10), with real ends: a Python echo
//! server (the `websockets` package, `tests/support/websocket.py`) per
//! instance, each greeting with its own name, and a Python client. The
//! handshake goes where the ring sends the key, and to the replica when the
//! owner's listener is closed; messages, one over 64 KiB, echo both ways.

#![cfg(test)]

mod support;

use std::net::SocketAddr;

use shardproxy::run::Running;
use support::python::{self, PythonServer};
use support::{start_proxy, wait_until};

/// The Python side of these tests.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/websocket.py");

/// One instance: a WebSocket echo server in a child process.
struct Server {
    name: String,
    python: PythonServer,
}

impl Server {
    /// Starts the server `name` on a port the OS picks.
    fn start(name: &str) -> Server {
        Server {
            name: name.to_owned(),
            python: PythonServer::start(SCRIPT, &["serve", name]),
        }
    }

    fn port(&self) -> u16 {
        self.python.port
    }

    /// The instance line of the static ring, owning `token`.
    fn instance_line(&self, token: &str) -> String {
        format!(
            "    {{ host = \"{}.example.com\", addr = \"127.0.0.1:{}\", tokens = [\"{token}\"] }},",
            self.name,
            self.port()
        )
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

/// The name of the instance that a WebSocket to `path` through `proxy`
/// reached, once its messages all came back.
async fn talk(proxy: SocketAddr, path: &str) -> String {
    let url = format!("ws://{proxy}{path}");
    let output = python::run(SCRIPT, &["talk", &url]).await;
    let done: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(done["echoed"], 5, "{done}");
    done["instance"].as_str().unwrap().to_owned()
}

/// The name of the server listening on `port`.
fn name_of(servers: &[Server], port: u16) -> &str {
    &servers
        .iter()
        .find(|server| server.port() == port)
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
        let owner = support::preference_ports(&proxy, "frob", key).await[0];
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
    let list = support::preference_ports(&proxy, "frob", key).await;
    let (owner, replica) = (list[0], list[1]);
    let replica_name = name_of(&servers, replica).to_owned();
    servers
        .iter_mut()
        .find(|server| server.port() == owner)
        .unwrap()
        .python
        .stop();
    // Its port held, bound but not listening: a listener another test
    // starts meanwhile could get the freed port from the OS (one did: the
    // upgrade reached that test's admin API, which answered 404).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.set_reuseaddr(true).unwrap();
    held.bind(SocketAddr::from(([127, 0, 0, 1], owner)))
        .unwrap();
    wait_until("the owner's listener is closed", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", owner))
            .await
            .is_err()
    })
    .await;
    assert_eq!(talk(proxy.listen, key).await, replica_name);
    drop(held);
    proxy.shutdown().await;
}
