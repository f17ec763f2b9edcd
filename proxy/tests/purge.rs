//! Purge across a fleet (SPEC §9.6): three `shardproxy run` processes
//! (the built binary, `workers = 2`, one cache each) in front of one
//! backend, each listing the others in `[cache_peers]`. An object cached
//! in all three, one purge sent to one admin API, and the object is gone
//! from all three: the next GET through each is a `MISS` that the backend
//! counts. A peer that is down is named in the answer with its error, and
//! the others are purged all the same; `shardproxy cache purge` does the
//! same from a shell and exits by it; SRV peers are found through the
//! configured DNS server (the in-process one).
//!
//! Ports are picked free; each proxy is waited on until `/readyz`
//! answers, never slept on.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Output};

use http::{Method, StatusCode};
use serde_json::{json, Value};
use shardproxy::dns_server::{DnsServer, Zone, ZoneRecord};
use support::backend::{Backend, Reply};
use support::client::{request, Client};
use support::process::{free_port, Proxy};

/// Fresh for five minutes: only a purge makes the proxies ask again.
const FRESH: &[(&str, &str)] = &[("cache-control", "max-age=300")];

const TOKEN: &str = "purge-s3cret";

/// Three proxies with the cache on, in front of `backend`.
struct Fleet {
    proxies: Vec<Proxy>,
    backend: Backend,
}

/// What a fleet's configs have in common but the peers.
struct Setup<'a> {
    /// `[server]` lines beyond the addresses.
    server: &'a str,
    /// The DNS server the proxies ask (none is asked with listed peers).
    dns: SocketAddr,
}

/// One proxy's config: `peers` is its `[cache_peers]` table.
fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    backend: &Backend,
    setup: &Setup<'_>,
    peers: &str,
) -> String {
    format!(
        r#"[server]
listen = "{listen}"
admin = "{admin}"
workers = 2
{server}

[log]
level = "info"

[dns]
servers = ["{dns}"]

[services.frob]
instances = [{{ host = "b1.example.com", addr = "{backend}" }}]

[services.frob.cache]
enabled = true

[[routes]]
service = "frob"

{peers}
"#,
        server = setup.server,
        dns = setup.dns,
        backend = backend.addr(),
    )
}

/// `[cache_peers]` listing every admin address of the fleet, this
/// proxy's own included, as one file shared by a fleet would.
fn listed(admins: &[SocketAddr]) -> String {
    let addrs: Vec<String> = admins.iter().map(|admin| format!("\"{admin}\"")).collect();
    format!("[cache_peers]\naddrs = [{}]\n", addrs.join(", "))
}

// === impl Fleet ===

impl Fleet {
    /// Three proxies on admin addresses picked first (each config names
    /// them all), with `peers` of those addresses as their `[cache_peers]`.
    async fn start(
        name: &str,
        setup: &Setup<'_>,
        peers: impl Fn(&[SocketAddr]) -> String,
    ) -> Fleet {
        let backend = Backend::start("b1").await;
        backend.reply_at("/", Reply::with(FRESH));
        let mut admins: Vec<SocketAddr> = Vec::new();
        while admins.len() < 3 {
            let admin = free_port();
            if !admins.contains(&admin) {
                admins.push(admin);
            }
        }
        let table = peers(&admins);
        let mut proxies = Vec::new();
        for (index, admin) in admins.iter().copied().enumerate() {
            let proxy = Proxy::start_on(
                &format!("{name}-{index}"),
                || (free_port(), admin),
                |listen, admin| config(listen, admin, &backend, setup, &table),
            )
            .await;
            proxies.push(proxy);
        }
        Fleet { proxies, backend }
    }

    fn admin(&self, index: usize) -> String {
        self.proxies[index].admin.to_string()
    }

    /// The answer to a purge of one object sent to proxy `to`, done
    /// everywhere: here, and by every other proxy in order (its own admin
    /// address, though in every list, is skipped).
    fn purged_everywhere(&self, to: usize) -> Value {
        let peers: Vec<Value> = (0..self.proxies.len())
            .filter(|&index| index != to)
            .map(|index| json!({"peer": self.admin(index), "ok": true, "purged": 1}))
            .collect();
        json!({"service": "frob", "purged": 1, "peers": peers})
    }

    /// GETs `path` through every proxy: a `MISS` each, which the backend
    /// answers, then a `HIT` each on a connection of its own (the other
    /// worker may take it: the workers share one cache).
    async fn cache_everywhere(&self, path: &str) {
        for (index, proxy) in self.proxies.iter().enumerate() {
            let before = self.backend.requests();
            let first = proxy.get(path).await;
            assert_eq!(first.status, StatusCode::OK, "{}", first.text());
            assert_eq!(first.header("x-cache"), Some("MISS"), "proxy {index}");
            assert_eq!(self.backend.requests(), before + 1, "proxy {index}");
            let again = Client::http1().get(proxy.listen, path).await;
            assert_eq!(again.header("x-cache"), Some("HIT"), "proxy {index}");
            assert_eq!(self.backend.requests(), before + 1, "proxy {index}");
        }
    }

    /// GETs `path` through each proxy of `indexes`, on a new connection,
    /// and checks that each is a `MISS` the backend answered.
    async fn assert_purged(&self, path: &str, indexes: &[usize]) {
        for &index in indexes {
            let before = self.backend.requests();
            let answer = Client::http1().get(self.proxies[index].listen, path).await;
            assert_eq!(
                answer.header("x-cache"),
                Some("MISS"),
                "proxy {index} still had {path}"
            );
            assert_eq!(self.backend.requests(), before + 1, "proxy {index}");
        }
    }
}

/// `POST /cache/purge?{query}` to `admin`, with `token` if given: the
/// status and the JSON answer.
async fn purge(admin: SocketAddr, query: &str, token: Option<&str>) -> (StatusCode, Value) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|bearer| ("authorization", bearer.as_str()))
        .collect();
    let request = request(
        Method::POST,
        admin,
        &format!("/cache/purge?{query}"),
        &headers,
        "",
    );
    let answer = Client::http1().send(request).await;
    let json = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", answer.text()));
    (answer.status, json)
}

/// Runs `shardproxy args...` to its end, off the runtime's threads.
async fn shardproxy(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_shardproxy"))
            .args(&args)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

/// Stops proxy `index` of `fleet` (SIGTERM, waited on): a peer that is down.
async fn stop(fleet: &mut Fleet, index: usize) {
    let proxy = &mut fleet.proxies[index];
    proxy.signal("TERM");
    let status = proxy.wait_exit(support::WAIT).await;
    assert!(status.success(), "{status}: {}", proxy.log());
}

const NO_DNS: Setup<'static> = Setup {
    server: "",
    // Never asked: the peers are listed, the ring is static.
    dns: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_purge_reaches_every_proxy_of_the_fleet() {
    let fleet = Fleet::start("fleet", &NO_DNS, listed).await;
    fleet.cache_everywhere("/obj").await;
    fleet.cache_everywhere("/other").await;

    let (status, answer) = purge(fleet.proxies[0].admin, "service=frob&path=/obj", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, fleet.purged_everywhere(0));
    fleet.assert_purged("/obj", &[0, 1, 2]).await;
    // Nothing else went.
    for proxy in &fleet.proxies {
        let other = Client::http1().get(proxy.listen, "/other").await;
        assert_eq!(other.header("x-cache"), Some("HIT"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_down_is_named_and_the_others_are_purged() {
    let mut fleet = Fleet::start("down", &NO_DNS, listed).await;
    fleet.cache_everywhere("/obj").await;
    stop(&mut fleet, 2).await;

    let (status, answer) = purge(fleet.proxies[0].admin, "service=frob&prefix=/o", None).await;
    // Done here: 200, whatever a peer did.
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["purged"], 1, "{answer}");
    let peers = answer["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{answer}");
    assert_eq!(
        peers[0],
        json!({"peer": fleet.admin(1), "ok": true, "purged": 1})
    );
    assert_eq!(peers[1]["peer"], fleet.admin(2));
    assert_eq!(peers[1]["ok"], false);
    let error = peers[1]["error"].as_str().unwrap();
    assert!(error.starts_with("connect: "), "{error}");
    fleet.assert_purged("/obj", &[0, 1]).await;

    // A purge the peers refuse is refused here first, and goes nowhere.
    let (status, answer) = purge(fleet.proxies[0].admin, "service=nope&path=/obj", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer.get("peers").is_none(), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_purge_on_the_command_line_reaches_every_peer_and_exits_by_them() {
    let setup = Setup {
        server: &format!("admin_token = \"{TOKEN}\""),
        ..NO_DNS
    };
    let mut fleet = Fleet::start("cli", &setup, listed).await;
    fleet.cache_everywhere("/obj?v=1").await;
    let file = fleet.proxies[1].config_path().display().to_string();
    let command = |url: &str| {
        vec![
            "cache".to_owned(),
            "purge".to_owned(),
            "--config".to_owned(),
            file.clone(),
            url.to_owned(),
        ]
    };

    // The config's token reaches the admin API, and the peers through it.
    let output = shardproxy(command("/obj?v=1")).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer, fleet.purged_everywhere(1));
    fleet.assert_purged("/obj?v=1", &[0, 1, 2]).await;

    // By tag, softly: the soft-purged objects are refetched everywhere.
    fleet.backend.reply_at(
        "/tagged",
        Reply::with(&[
            ("cache-control", "max-age=60"),
            ("surrogate-key", "t42 all"),
        ]),
    );
    fleet.cache_everywhere("/tagged/1").await;
    let mut by_tag = command("t42");
    by_tag.splice(
        4..4,
        ["--tag", "--soft", "--service", "frob"].map(str::to_owned),
    );
    let output = shardproxy(by_tag).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer, fleet.purged_everywhere(1));
    fleet.assert_purged("/tagged/1", &[0, 1, 2]).await;
    let mut no_service = command("t42");
    no_service.insert(4, "--tag".to_owned());
    let output = shardproxy(no_service).await;
    assert_eq!(output.status.code(), Some(2), "--tag needs --service");

    // A peer down: its error is printed, and the exit code says so.
    stop(&mut fleet, 0).await;
    let output = shardproxy(command("http://127.0.0.1/obj?v=1")).await;
    assert_eq!(output.status.code(), Some(1));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["peers"][0]["peer"], fleet.admin(0));
    assert_eq!(answer["peers"][0]["ok"], false, "{answer}");
    assert_eq!(answer["peers"][1]["ok"], true, "{answer}");

    // A config that does not load: exit 1 with its error, nothing sent.
    let broken = fleet.proxies[1].config_path().with_extension("broken.toml");
    std::fs::write(&broken, "[cache_peers]\ntimeout = \"1s\"\n").unwrap();
    let output = shardproxy(vec![
        "cache".into(),
        "purge".into(),
        "--config".into(),
        broken.display().to_string(),
        "/obj".into(),
    ])
    .await;
    std::fs::remove_file(&broken).unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid configuration: ")
            && stderr.contains(":1:1: cache_peers: missing addrs or srv"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_peers_are_found_through_the_configured_dns_server() {
    const SRV: &str = "_shardproxy-admin._tcp.example.com.";
    let dns = DnsServer::start("127.0.0.1:0".parse().unwrap(), Zone::new("example.com."))
        .await
        .unwrap();
    let setup = Setup {
        server: "",
        dns: dns.addr(),
    };
    let fleet = Fleet::start("srv", &setup, |admins| {
        // Each proxy's admin address under a name of its own.
        let mut records = Vec::new();
        for (index, admin) in admins.iter().enumerate() {
            let target = format!("p{index}.example.com.");
            records.push(ZoneRecord::srv(SRV, 0, 0, admin.port(), &target));
            records.push(ZoneRecord::a(target, Ipv4Addr::LOCALHOST));
        }
        dns.zone().set_records(records).unwrap();
        format!("[cache_peers]\nsrv = \"{SRV}\"\n")
    })
    .await;
    fleet.cache_everywhere("/obj").await;

    let (status, answer) = purge(fleet.proxies[2].admin, "service=frob&path=/obj", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, fleet.purged_everywhere(2));
    fleet.assert_purged("/obj", &[0, 1, 2]).await;

    // Resolved at each purge: with the records gone, the answer says so
    // (the local purge is done all the same).
    dns.zone().set_records(Vec::new()).unwrap();
    let (status, answer) = purge(fleet.proxies[0].admin, "service=frob&path=/obj", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["peers"][0]["peer"], SRV);
    assert_eq!(answer["peers"][0]["ok"], false);
    let error = answer["peers"][0]["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("resolve {SRV}: ")), "{error}");
}
