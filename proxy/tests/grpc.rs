//! gRPC through the proxy (SPEC §10), with real ends from the `grpcio`
//! package (`tests/support/grpc_echo.py`): a server per instance, each
//! answering with its own name, and a client calling a unary and a
//! server-streaming method with the shard key in its metadata. The proxy
//! speaks h2c to the instances; calls go where the ring sends the key, and
//! to the replica when the owner is down.

#![cfg(test)]

mod support;

use std::net::SocketAddr;

use shardproxy::run::Running;
use support::python::{self, PythonServer};
use support::{preference_ports, start_proxy, wait_until};

/// The Python side of these tests.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/grpc_echo.py");

/// One instance: a gRPC server in a child process.
struct Server {
    name: &'static str,
    python: PythonServer,
}

/// Three instances, each key (the `x-room` metadata) on its owner and one
/// replica.
async fn fleet() -> (Vec<Server>, Running) {
    let servers: Vec<Server> = ["g1", "g2", "g3"]
        .into_iter()
        .map(|name| Server {
            name,
            python: PythonServer::start(SCRIPT, &["serve", name]),
        })
        .collect();
    let lines: Vec<String> = servers
        .iter()
        .zip(["40", "80", "c0"])
        .map(|(server, token)| {
            format!(
                "    {{ host = \"{}.example.com\", addr = \"127.0.0.1:{}\", tokens = [\"{token}\"] }},",
                server.name, server.python.port
            )
        })
        .collect();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [services.rooms]\nkey = \"header:x-room\"\nslaves = 1\nupstream_protocol = \"h2c\"\n\
         instances = [\n{}\n]\n\n\
         [[routes]]\npath_prefix = \"/shard.Echo/\"\nservice = \"rooms\"\n",
        lines.join("\n")
    );
    let proxy = start_proxy(&config, "grpc.toml").await;
    (servers, proxy)
}

/// The name of the server on `port`.
fn name_of(servers: &[Server], port: u16) -> &'static str {
    servers
        .iter()
        .find(|server| server.python.port == port)
        .expect("an instance of the fleet")
        .name
}

/// Calls Unary and Stream through `proxy` for `room`; checks that each
/// call was answered whole by one instance, and returns its name.
async fn call(proxy: SocketAddr, room: &str) -> String {
    let output = python::run(SCRIPT, &["call", &proxy.to_string(), room]).await;
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["code"], "OK", "{answer}");
    let name = answer["served_by"].as_str().unwrap().to_owned();
    assert_eq!(
        answer["unary"],
        format!("{name}:{room}:hello"),
        "the unary call went to the same instance: {answer}"
    );
    let streamed: Vec<String> = (0..3).map(|n| format!("{name}:{n}")).collect();
    assert_eq!(answer["stream"], serde_json::json!(streamed), "{answer}");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_reach_the_owner_of_their_metadata_key() {
    let (servers, proxy) = fleet().await;
    let mut reached = Vec::new();
    for room in ["room-a", "room-b", "room-c", "room-d", "room-e", "room-f"] {
        let owner = preference_ports(&proxy, "rooms", room).await[0];
        let name = call(proxy.listen, room).await;
        assert_eq!(name, name_of(&servers, owner), "{room}");
        reached.push(name);
    }
    reached.sort();
    reached.dedup();
    assert!(reached.len() > 1, "the rooms spread: {reached:?}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_go_to_the_replica_when_the_owner_is_down() {
    let (mut servers, proxy) = fleet().await;
    let room = "room-7";
    let list = preference_ports(&proxy, "rooms", room).await;
    let (owner, replica) = (list[0], list[1]);
    // A call first, so that the proxy holds a connection to the owner.
    assert_eq!(call(proxy.listen, room).await, name_of(&servers, owner));
    let replica_name = name_of(&servers, replica);
    servers
        .iter_mut()
        .find(|server| server.python.port == owner)
        .unwrap()
        .python
        .stop();
    wait_until("the owner's listener is closed", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", owner))
            .await
            .is_err()
    })
    .await;
    assert_eq!(call(proxy.listen, room).await, replica_name);
    proxy.shutdown().await;
}
