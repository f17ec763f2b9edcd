//! The proxy end to end over real sockets (SPEC §2, §3, §5): an in-process
//! DNS server publishes a ring of real HTTP backends (`support::backend`),
//! the proxy is started with `run::start` and finds the ring in DNS, and
//! clients (hyper, or raw TCP for malformed requests) talk to it.
//!
//! Where a key lands is checked against the independent implementation of
//! SPEC §2 in `reference`, never against the ring crate. Waits are bounded
//! and poll a condition; assertions count requests, not milliseconds (except
//! a generous upper bound on how long a deadline takes).

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod reference;
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use reference::RefInstance;
use shardproxy::config::Config;
use shardproxy::dns_server::{DnsServer, Zone, ZoneRecord};
use shardproxy::run::{self, Running};
use support::backend::{Backend, Behaviour, Echo, HOP_BY_HOP_RESPONSE};
use support::client::{get, request, Client};
use support::{wait_until, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
// The proxy's clock: durations measured on it count the time skipped.
use tokio::time::Instant;

const SRV: &str = "_frob._http.example.com.";

/// Three backends on three hosts, four tokens each, interleaved so that
/// each owns about a third of the ring.
const THREE: &[&[&str]] = &[
    &["15", "55", "95", "d5"],
    &["2a", "6a", "aa", "ea"],
    &["40", "80", "c0", "ff"],
];

// === Fleet: backends and the DNS server that publishes their ring ===

/// Backends `b1`, `b2`, ... on hosts `b1.example.com`, ... (all 127.0.0.1),
/// and a DNS server publishing their ring with the records of SPEC §3.
struct Fleet {
    dns: DnsServer,
    backends: Vec<Backend>,
    tokens: Vec<Vec<&'static str>>,
    slaves: usize,
}

impl Fleet {
    /// `tokens[i]` are the tokens of backend `b{i+1}`; `slaves` replicas,
    /// `redundancy=host`.
    async fn start(tokens: &[&[&'static str]], slaves: usize) -> Fleet {
        let mut backends = Vec::new();
        for index in 0..tokens.len() {
            backends.push(Backend::start(&format!("b{}", index + 1)).await);
        }
        let tokens: Vec<Vec<&'static str>> = tokens.iter().map(|t| t.to_vec()).collect();
        let zone = Zone::new("example.com.")
            .with_ttl(1)
            .with_records(ring_records(&backends, &tokens, slaves));
        let dns = DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
            .await
            .expect("the DNS server starts");
        Fleet {
            dns,
            backends,
            tokens,
            slaves,
        }
    }

    fn reference(&self) -> Vec<RefInstance> {
        self.backends
            .iter()
            .zip(&self.tokens)
            .map(|(backend, tokens)| {
                RefInstance::new(
                    &host_of(backend),
                    backend.port(),
                    &backend.addr().to_string(),
                    tokens,
                )
            })
            .collect()
    }

    /// The names of the backends of `key`'s preference list, primary first,
    /// as the independent implementation computes it.
    fn expected(&self, key: &str) -> Vec<String> {
        reference::preference_list(&self.reference(), self.slaves, true, key.as_bytes())
            .iter()
            .map(|instance| name_of(instance).to_owned())
            .collect()
    }

    /// The name of `key`'s primary.
    fn primary(&self, key: &str) -> String {
        self.expected(key).remove(0)
    }

    fn backend(&self, name: &str) -> &Backend {
        self.backends
            .iter()
            .find(|backend| backend.name() == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// `host:port` of backend `name`, as the proxy names it.
    fn instance(&self, name: &str) -> String {
        let backend = self.backend(name);
        format!("{}:{}", host_of(backend), backend.port())
    }

    fn requests(&self) -> u64 {
        self.backends.iter().map(Backend::requests).sum()
    }

    fn connections(&self) -> u64 {
        self.backends.iter().map(Backend::connections).sum()
    }

    /// A proxy for this fleet: one service `frob` on the ring, with `extra`
    /// lines in its section, and a catch-all route.
    async fn proxy(&self, extra: &str) -> Running {
        let services = format!(
            "[services.frob]\nsrv = \"{}\"\n{extra}\n",
            SRV.trim_end_matches('.')
        );
        let config = config_text(
            self.dns.addr(),
            &services,
            "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        );
        support::start_proxy(&config, "test.toml").await
    }

    async fn shutdown(self) {
        for backend in self.backends {
            backend.shutdown().await;
        }
        self.dns.shutdown().await;
    }
}

fn host_of(backend: &Backend) -> String {
    format!("{}.example.com", backend.name())
}

/// `b1` of `b1.example.com:8081`.
fn name_of(instance: &str) -> &str {
    instance.split('.').next().unwrap_or(instance)
}

/// The SPEC §3 records of a ring: SRV, `tokens.` TXT and A per backend, and
/// the `config.` TXT.
fn ring_records(backends: &[Backend], tokens: &[Vec<&str>], slaves: usize) -> Vec<ZoneRecord> {
    support::ring_records(SRV, backends, tokens, slaves)
}

// === The proxy ===

fn config_text(dns: SocketAddr, services: &str, routes: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
# The answers name the instances tried, which these tests read.
error_detail = true

[dns]
servers = ["{dns}"]
refresh = "1s"

{services}

{routes}
"#
    )
}

async fn stop_proxy(running: Running) {
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("the proxy shuts down");
}

// === Clients ===

/// Sends a GET for `path` and checks that it is answered `200` by
/// `backend`.
async fn assert_answered_by(client: &Client, proxy: SocketAddr, path: &str, backend: &str) {
    let answer = client.get(proxy, path).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    assert_eq!(answer.backend(), Some(backend), "{path}");
}

/// What a raw exchange got back.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (header, value) = line.split_once(':')?;
            header
                .trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim())
        })
    }
}

/// Writes `bytes` on a fresh connection to the proxy and reads until the
/// proxy closes it. `None`: closed without a response. Fails the test if
/// the connection is still open after [`WAIT`].
async fn raw_exchange(proxy: SocketAddr, bytes: &[u8]) -> Option<RawAnswer> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    // The proxy may answer and close before it has read everything.
    let _ = stream.write_all(bytes).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the proxy did not close the connection; got so far: {}",
        String::from_utf8_lossy(&received)
    );
    parse_raw(&received)
}

fn parse_raw(received: &[u8]) -> Option<RawAnswer> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut answer = RawAnswer {
        status,
        head,
        body: received[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(&answer.body);
    }
    Some(answer)
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = String::from_utf8_lossy(&chunked[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}

fn keys(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

// === Tests ===

/// SPEC §2, §3, §5: every request goes to the primary of its key, as an
/// independent implementation of the ring computes it from the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_answered_by_its_primary() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let client = Client::http1();
    let mut answered_by = std::collections::BTreeMap::<String, usize>::new();
    for path in keys("/users/", 200) {
        let answer = client.get(proxy.listen, &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        assert_eq!(
            answer.backend(),
            Some(fleet.primary(&path).as_str()),
            "{path}"
        );
        let echo = answer.echo();
        assert_eq!(echo.method, "GET");
        assert_eq!(echo.uri, path, "the path goes upstream as sent");
        *answered_by
            .entry(answer.backend().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    // The keys are spread: every backend is the primary of some.
    assert_eq!(answered_by.len(), 3, "{answered_by:?}");
    assert_eq!(fleet.requests(), 200, "no request was sent twice");
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: a primary that dies in the middle of a stream of GETs (its port
/// refusing, its open connections dropped with requests in flight) fails
/// none of them: its keys go to their replica, and back once it returns on
/// the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_fails_no_request_and_its_replica_takes_its_keys() {
    let fleet = Fleet::start(THREE, 1).await;
    // A generous budget: this test is about failover; the budget has its own.
    let proxy = fleet
        .proxy(
            "retry_min_per_second = 100\n\
             outlier_detection = { consecutive_failures = 5, base_ejection_time = \"500ms\", max_ejection_time = \"1s\" }",
        )
        .await;
    let keys = keys("/stream/", 30);
    let victim_name = fleet.primary(&keys[0]);
    let victim = fleet.backend(&victim_name);
    // Slow enough that the stream interleaves with it.
    victim.set(Behaviour::Slow(Duration::from_millis(5)));

    const TOTAL: usize = 300;
    let next = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (next, stopped, results) = (
            Arc::clone(&next),
            Arc::clone(&stopped),
            Arc::clone(&results),
        );
        let keys = keys.clone();
        let client = Client::http1();
        let listen = proxy.listen;
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= TOTAL {
                    break;
                }
                let key = keys[n % keys.len()].clone();
                let after_stop = stopped.load(Ordering::SeqCst);
                let answer = client.get(listen, &key).await;
                results.lock().unwrap().push((key, after_stop, answer));
            }
        });
    }

    // A third of the way through, the victim stops answering; once a
    // request is stuck on it, it dies with that request in flight.
    wait_until("a third of the stream is sent", || {
        let sent = next.load(Ordering::SeqCst) >= TOTAL / 3;
        async move { sent }
    })
    .await;
    victim.set(Behaviour::Hang);
    // A request counted from now on read the new behaviour: it hangs, in
    // flight, until the victim dies.
    let before_hang = victim.requests();
    wait_until("a request hangs on the victim", || {
        let hanging = victim.requests() > before_hang;
        async move { hanging }
    })
    .await;
    victim.stop().await;
    stopped.store(true, Ordering::SeqCst);
    let received_by_victim = victim.requests();
    assert!(
        TcpStream::connect(victim.addr()).await.is_err(),
        "a stopped backend refuses connections"
    );
    while let Some(joined) = workers.join_next().await {
        joined.expect("a worker does not panic");
    }

    let results = std::mem::take(&mut *results.lock().unwrap());
    assert_eq!(results.len(), TOTAL);
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, _, answer)| answer.status != StatusCode::OK)
        .map(|(key, _, answer)| format!("{key}: {} {}", answer.status, answer.text()))
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    // The owner of a key once the victim is gone.
    let owner = |key: &str| {
        let expected = fleet.expected(key);
        if expected[0] == victim_name {
            expected[1].clone()
        } else {
            expected[0].clone()
        }
    };
    let mut answered_by_victim = 0;
    for (key, after_stop, answer) in &results {
        if *after_stop {
            assert_eq!(
                answer.backend(),
                Some(owner(key).as_str()),
                "{key} after the stop"
            );
        } else {
            assert!(
                fleet
                    .expected(key)
                    .iter()
                    .any(|b| Some(b.as_str()) == answer.backend()),
                "{key}"
            );
        }
        answered_by_victim += u64::from(answer.backend() == Some(victim_name.as_str()));
    }
    assert!(answered_by_victim > 0, "the victim served before it died");
    assert!(
        received_by_victim > answered_by_victim,
        "the requests in flight on the victim when it died were answered by its replica"
    );
    assert_eq!(
        victim.requests(),
        received_by_victim,
        "nothing reached it after"
    );

    // After the stream, one by one: each of the victim's keys goes to its
    // replica, the others to their primary.
    victim.set(Behaviour::Healthy);
    let client = Client::http1();
    for key in &keys {
        assert_answered_by(&client, proxy.listen, key, &owner(key)).await;
    }

    // Back on the same port: its keys come back to it.
    victim.restart().await;
    let first_key = keys[0].clone();
    wait_until("the restarted primary answers its keys again", || {
        let client = client.clone();
        let listen = proxy.listen;
        let key = first_key.clone();
        let victim_name = victim_name.clone();
        async move { client.get(listen, &key).await.backend() == Some(victim_name.as_str()) }
    })
    .await;
    for key in &keys {
        assert_answered_by(&client, proxy.listen, key, &fleet.primary(key)).await;
    }
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: a retryable status (503) goes to the replica, with the body
/// replayed for an idempotent PUT; a non-retryable status (500) is the
/// answer; a POST whose body reached a 503 instance is not retried, while a
/// POST that could not connect is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_statuses_go_to_the_replica_unless_a_body_may_have_landed() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let client = Client::http1();
    let key = "/orders/17";
    let expected = fleet.expected(key);
    let (primary, replica) = (fleet.backend(&expected[0]), fleet.backend(&expected[1]));
    primary.set(Behaviour::Status(503));

    assert_answered_by(&client, proxy.listen, key, replica.name()).await;
    assert_eq!((primary.requests(), replica.requests()), (1, 1));

    let put = request(Method::PUT, proxy.listen, key, &[], "put-body");
    let answer = client.send(put).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.backend(), Some(replica.name()));
    let echo = answer.echo();
    assert_eq!(
        (echo.method.as_str(), echo.body.as_str()),
        ("PUT", "put-body")
    );
    assert_eq!((primary.requests(), replica.requests()), (2, 2));

    let post = request(Method::POST, proxy.listen, key, &[], "post-body");
    let answer = client.send(post).await;
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains(&fleet.instance(primary.name())), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("not retried"), "{text}");
    assert!(!text.contains(&fleet.instance(replica.name())), "{text}");
    assert_eq!((primary.requests(), replica.requests()), (3, 2), "no retry");

    // 500 is not in retry_on: it is the answer.
    primary.set(Behaviour::Status(500));
    let answer = client.get(proxy.listen, key).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.backend(), Some(primary.name()));
    assert_eq!(replica.requests(), 2);

    // A refused connection sent nothing: even a POST goes on to the replica.
    primary.stop().await;
    let post = request(Method::POST, proxy.listen, key, &[], "post-body");
    let answer = client.send(post).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.backend(), Some(replica.name()));
    let echo = answer.echo();
    assert_eq!(
        (echo.method.as_str(), echo.body.as_str()),
        ("POST", "post-body")
    );
    assert_eq!(echo.body_len, 9);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: "On a connect error ... it is retried on the next instance":
/// nothing was sent, so this holds for bodies too large to buffer
/// (over `retry_body_limit`, streamed) and chunked bodies of unknown
/// length, whatever the method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_goes_to_the_replica_when_the_primary_refuses() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("retry_body_limit = \"1KiB\"").await;
    let client = Client::http1();
    let key = "/uploads/7";
    let expected = fleet.expected(key);
    let (primary, replica) = (fleet.backend(&expected[0]), fleet.backend(&expected[1]));
    primary.stop().await;

    // 4 KiB with a Content-Length, over the 1 KiB buffering limit.
    let put = request(Method::PUT, proxy.listen, key, &[], vec![b'x'; 4096]);
    let answer = client.send(put).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.backend(), Some(replica.name()));
    assert_eq!(answer.echo().body_len, 4096);

    // A chunked POST: its length is unknown, so it is streamed.
    let chunked = format!(
        "POST {key} HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(proxy.listen, chunked.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(
        answer.status,
        200,
        "{}\n{}",
        answer.head,
        String::from_utf8_lossy(&answer.body)
    );
    let echo = Echo::parse(&answer.body);
    assert_eq!(
        (echo.backend.as_str(), echo.body.as_str()),
        (replica.name(), "hello")
    );
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: when every instance fails, retries are capped by the budget.
///
/// tower 0.5's `TpsBudget::new(ttl = 10 s, min_per_sec, percent)` with
/// `percent = 0` deposits nothing per request and withdraws 1 per retry
/// from a reserve of `min_per_sec × 10 s × 1`; withdrawals are forgotten
/// only after the 10 s window. With `retry_min_per_second = 1` that is 10
/// retries for the whole (sub-second) test: 50 requests hit the instances
/// at most 50 + 10 times, against 150 without a budget. Once the window has
/// passed (by [`support::skip`], with no request under way), the reserve
/// is whole again.
#[tokio::test]
async fn the_retry_budget_caps_retries_when_every_instance_fails() {
    let fleet = Fleet::start(THREE, 2).await;
    let proxy = fleet
        .proxy("retry_budget = 0.0\nretry_min_per_second = 1")
        .await;
    for backend in &fleet.backends {
        backend.set(Behaviour::Status(503));
    }
    let client = Client::http1();
    let mut exhausted = 0;
    let mut last = String::new();
    for path in keys("/budget/", 50) {
        let answer = client.get(proxy.listen, &path).await;
        last = answer.text();
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{last}");
        assert!(
            last.contains(&fleet.instance(&fleet.primary(&path))),
            "{last}"
        );
        exhausted += usize::from(last.contains("retry budget exhausted"));
    }
    let hits = fleet.requests();
    assert!(
        (50..=60).contains(&hits),
        "{hits} requests reached the instances: expected 50 first tries and at most 10 retries"
    );
    // At most 5 requests (2 retries each) fit in the reserve.
    assert!(
        exhausted >= 45,
        "{exhausted} answers said the budget was exhausted"
    );
    assert!(last.contains("retry budget exhausted"), "{last}");

    // 10 s later every withdrawal is forgotten: a failing request is tried
    // on its whole list again (a primary and two replicas).
    support::skip(Duration::from_secs(11)).await;
    let answer = client.get(proxy.listen, "/budget/again").await;
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(!text.contains("retry budget exhausted"), "{text}");
    assert_eq!(fleet.requests(), hits + 3, "{text}");
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: the Host header and an absolute-form URI never choose where a
/// request goes: a decoy server they point at gets nothing, the ring's
/// primary gets the request, and sees the absolute-form authority (RFC 9112
/// §3.2.2) or the client's Host as its Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_absolute_form_never_choose_the_destination() {
    let fleet = Fleet::start(THREE, 1).await;
    let decoy = Backend::start("decoy").await;
    let proxy = fleet.proxy("").await;
    let target = decoy.addr();

    let cases = [
        (
            format!("GET http://{target}/abs/1 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
            "/abs/1",
            target.to_string(),
        ),
        (
            format!("GET http://evil.example:1234/abs/2 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
            "/abs/2",
            "evil.example:1234".to_owned(),
        ),
        (
            format!("GET http://{target}/abs/3?q=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"),
            "/abs/3",
            target.to_string(),
        ),
        (
            format!("GET /spoof/1 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
            "/spoof/1",
            target.to_string(),
        ),
    ];
    for (raw, path, host) in &cases {
        let answer = raw_exchange(proxy.listen, raw.as_bytes())
            .await
            .unwrap_or_else(|| panic!("no answer to {raw:?}"));
        assert_eq!(answer.status, 200, "{raw:?}: {}", answer.head);
        let echo = Echo::parse(&answer.body);
        assert_eq!(echo.backend, fleet.primary(path), "{raw:?}");
        assert_eq!(echo.header("host"), Some(host.as_str()), "{raw:?}");
        assert_eq!(echo.header_all("host").len(), 1, "one Host: {raw:?}");
        assert!(
            echo.uri.starts_with(path),
            "origin-form upstream: {}",
            echo.uri
        );
    }

    // A hyper client with a spoofed Host.
    let client = Client::http1();
    let target = target.to_string();
    let spoofed = request(
        Method::GET,
        proxy.listen,
        "/spoof/2",
        &[("host", &target)],
        Bytes::new(),
    );
    let answer = client.send(spoofed).await;
    assert_eq!(answer.backend(), Some(fleet.primary("/spoof/2").as_str()));
    assert_eq!(answer.echo().header("host"), Some(target.as_str()));

    // CONNECT must not open a tunnel anywhere.
    let connect =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    if let Some(answer) = raw_exchange(proxy.listen, connect.as_bytes()).await {
        assert!(answer.status >= 400, "CONNECT answered {}", answer.head);
    }

    assert_eq!(decoy.requests(), 0, "the decoy got a request");
    assert_eq!(decoy.connections(), 0, "the decoy got a connection");
    stop_proxy(proxy).await;
    decoy.shutdown().await;
    fleet.shutdown().await;
}

/// RFC 9112 §3.2.2 (SPEC §9.8): the Host sent upstream for an
/// absolute-form request is its authority; one with userinfo (`user:pw@`)
/// is refused, so that a credential never reaches an instance and no cache
/// key drops a part of the Host the instance would see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_userinfo_is_refused_and_the_authority_is_the_host() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let raw = "GET http://user:pw@shop.example:8080/abs/userinfo HTTP/1.1\r\n\
               Host: other.example\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.listen, raw.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(answer.status, 400, "{}", answer.head);
    let raw = "GET http://shop.example:8080/abs/userinfo HTTP/1.1\r\n\
               Host: other.example\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.listen, raw.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    let echo = Echo::parse(&answer.body);
    assert_eq!(echo.backend, fleet.primary("/abs/userinfo"));
    assert_eq!(echo.header("host"), Some("shop.example:8080"));
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: hop-by-hop headers (and those `Connection` names) are removed
/// both ways; `X-Forwarded-For` is appended to, `X-Forwarded-Proto` and
/// `Via` are added, and `Host` is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_go_and_forwarding_headers_are_added() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let raw = format!(
        "GET /headers/1?a=b HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: close, X-Secret\r\n\
         X-Secret: s3cret\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Trailer: X-Checksum\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Forwarded-For: 10.0.0.1\r\n\
         Via: 1.0 edge\r\n\
         X-Kept: yes\r\n\
         {HOP_BY_HOP_RESPONSE}: 1\r\n\
         \r\n"
    );
    let answer = raw_exchange(proxy.listen, raw.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    let echo = Echo::parse(&answer.body);
    assert_eq!(echo.backend, fleet.primary("/headers/1"));
    assert_eq!(echo.uri, "/headers/1?a=b");
    for hop in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert_eq!(
            echo.header(hop),
            None,
            "{hop} reached the backend: {:?}",
            echo.headers
        );
    }
    assert_eq!(echo.header("x-kept"), Some("yes"));
    assert_eq!(echo.header("host"), Some("shop.example"));
    assert_eq!(echo.header_all("x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    let via = echo.header("via").expect("a Via header");
    assert!(via.starts_with("1.0 edge, "), "{via}");
    assert!(via.contains("1.1 shardproxy"), "{via}");

    // And on the way back.
    assert_eq!(answer.header("x-backend"), Some(echo.backend.as_str()));
    for hop in ["x-internal", "keep-alive", "proxy-authenticate"] {
        assert_eq!(
            answer.header(hop),
            None,
            "{hop} reached the client: {}",
            answer.head
        );
    }
    if let Some(connection) = answer.header("connection") {
        assert!(!connection.contains("x-internal"), "{}", answer.head);
    }

    // X-Forwarded-For is created when the client sent none.
    let client = Client::http1();
    let answer = client.get(proxy.listen, "/headers/2").await;
    let echo = answer.echo();
    assert_eq!(echo.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo.header("host"), Some(proxy.listen.to_string().as_str()));
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5 "`Via` [is] added" (RFC 9110 §7.6.3: each intermediary appends
/// its entry): a client's `Via` sent as several field lines is one list,
/// and every entry of it reaches the instance, before the proxy's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_via_entry_is_kept() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let raw = "GET /via/1 HTTP/1.1\r\nHost: shop.example\r\nVia: 1.0 edge\r\n\
               Via: 1.1 cdn\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(proxy.listen, raw.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    let echo = Echo::parse(&answer.body);
    let via = echo.header_all("via").join(", ");
    assert_eq!(
        via, "1.0 edge, 1.1 cdn, 1.1 shardproxy",
        "{:?}",
        echo.headers
    );
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §4, §5: a missing key is a 400 naming the key, no route a 404,
/// malformed bytes a 4xx or a closed connection, an oversized header
/// section a 431, Content-Length with Transfer-Encoding a 400 or chunked
/// and then closed; and the proxy goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_get_4xx_and_the_proxy_keeps_serving() {
    let fleet = Fleet::start(THREE, 1).await;
    let services = format!(
        "[services.frob]\nsrv = \"{}\"\nkey = \"header:x-user\"\n",
        SRV.trim_end_matches('.')
    );
    let config = config_text(
        fleet.dns.addr(),
        &services,
        "[[routes]]\npath_prefix = \"/api/\"\nservice = \"frob\"\n",
    );
    let proxy = support::start_proxy(&config, "test.toml").await;
    let client = Client::http1();

    let answer = client.get(proxy.listen, "/api/1").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.text().contains("header:x-user"), "{}", answer.text());

    let with_user = |path: &str| {
        request(
            Method::GET,
            proxy.listen,
            path,
            &[("x-user", "alice")],
            Bytes::new(),
        )
    };
    let answer = client.send(with_user("/api/1")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.backend(), Some(fleet.primary("alice").as_str()));

    let answer = client.send(with_user("/other")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(fleet.requests(), 1);

    let malformed: [&[u8]; 5] = [
        b"GET /api/1 HTTP/1.1\r\nHost: a\r\nx-user alice\r\n\r\n",
        b"GET /api/1 HTTP/9.9\r\nHost: a\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /api/\x01 HTTP/1.1\r\nHost: a\r\nx-user: alice\r\n\r\n",
        b"POST /api/1 HTTP/1.1\r\nHost: a\r\nx-user: alice\r\nContent-Length: abc\r\n\r\n",
    ];
    for bytes in malformed {
        if let Some(answer) = raw_exchange(proxy.listen, bytes).await {
            assert!(
                (400..500).contains(&answer.status),
                "{:?}: {}",
                String::from_utf8_lossy(bytes),
                answer.head
            );
        }
    }
    assert_eq!(fleet.requests(), 1, "nothing malformed was forwarded");

    // Header sections: over max_header_size (32 KiB) is 431; under is fine.
    let big = |size: usize| {
        format!(
            "GET /api/1 HTTP/1.1\r\nHost: a\r\nx-user: alice\r\nx-big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(size)
        )
    };
    let answer = raw_exchange(proxy.listen, big(40 << 10).as_bytes())
        .await
        .expect("an answer to an oversized header section");
    assert_eq!(answer.status, 431, "{}", answer.head);
    let answer = raw_exchange(proxy.listen, big(16 << 10).as_bytes())
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(fleet.requests(), 2);

    // Content-Length and Transfer-Encoding: refused, or handled by
    // Transfer-Encoding and the connection closed (raw_exchange fails the
    // test if it stays open).
    let smuggle = b"POST /api/1 HTTP/1.1\r\nHost: a\r\nx-user: alice\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    if let Some(answer) = raw_exchange(proxy.listen, smuggle).await {
        if answer.status == 200 {
            let echo = Echo::parse(&answer.body);
            assert_eq!(echo.body, "hello", "the body is the chunked one");
            assert_eq!(fleet.requests(), 3, "one request, not two");
        } else {
            assert_eq!(answer.status, 400, "{}", answer.head);
        }
    }

    // Still serving.
    let answer = client.send(with_user("/api/2")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line". With two, the proxy would route by one (`host` routes) while the
/// instance may read the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_two_hosts_or_none_is_refused() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let requests: [&[u8]; 2] = [
        b"GET /hosts/1 HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        b"GET /hosts/2 HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    let mut statuses = Vec::new();
    for bytes in requests {
        let status = raw_exchange(proxy.listen, bytes)
            .await
            .map(|answer| answer.status);
        statuses.push((String::from_utf8_lossy(bytes).into_owned(), status));
    }
    assert!(
        statuses.iter().all(|(_, status)| *status == Some(400)),
        "{statuses:#?}"
    );
    assert_eq!(fleet.requests(), 0, "nothing was forwarded");
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §3, §7: until a service has a ring, its requests get `503` (and the
/// proxy is not ready), naming the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_ring_answers_503() {
    let fleet = Fleet::start(THREE, 1).await;
    let services = "[services.ghost]\nsrv = \"_ghost._http.example.com\"\n";
    let config = config_text(
        fleet.dns.addr(),
        services,
        "[[routes]]\npath_prefix = \"/\"\nservice = \"ghost\"\n",
    );
    let config = Config::from_toml(&config, "test.toml").unwrap();
    let proxy = run::start(config).await.expect("the proxy starts");
    let client = Client::http1();
    let answer = client.get(proxy.listen, "/x").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert!(answer.text().contains("ghost"), "{}", answer.text());
    assert!(!proxy.app().discovery.ready());
    assert_eq!(fleet.requests(), 0);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// Every value the config accepts must start the proxy: the validator takes
/// `retry_min_per_second` up to `u32::MAX`, but tower's `TpsBudget::new`
/// asserts `min_per_sec < i32::MAX`, so `run::start` panics on a config
/// that `check` calls valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_retry_min_per_second_starts_the_proxy() {
    let fleet = Fleet::start(THREE, 1).await;
    let services = format!(
        "[services.frob]\nsrv = \"{}\"\nretry_min_per_second = 4294967295\n",
        SRV.trim_end_matches('.')
    );
    let config = config_text(
        fleet.dns.addr(),
        &services,
        "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
    );
    if let Ok(config) = Config::from_toml(&config, "test.toml") {
        let started = tokio::spawn(run::start(config)).await;
        let started = started.unwrap_or_else(|error| {
            panic!("run::start panicked on a config that validated: {error}")
        });
        if let Ok(proxy) = started {
            stop_proxy(proxy).await;
        }
    }
    fleet.shutdown().await;
}

/// SPEC §5: an instance that never answers gets `504` at the deadline,
/// naming the instance; a per-try timeout shorter than the deadline says
/// how long it waited. The timeouts pass by [`support::send_past_hangs`]
/// once the instance has the request.
#[tokio::test]
async fn a_hanging_instance_gets_504_at_the_deadline() {
    let fleet = Fleet::start(&[&["80"]], 0).await;
    let b1 = fleet.backend("b1");
    b1.set(Behaviour::Hang);
    let instance = fleet.instance("b1");
    let client = Client::http1();

    let proxy = fleet.proxy("try_timeout = \"1s\"\ndeadline = \"1s\"").await;
    let started = Instant::now();
    let request = get(proxy.listen, "/hang/1");
    let answer = support::send_past_hangs(&client, request, &[b1], Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    assert!(text.contains(&instance), "{text}");
    assert!(text.contains("deadline"), "{text}");
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert_eq!(b1.requests(), 1);
    stop_proxy(proxy).await;

    // One attempt with a 200 ms per-try timeout: the answer comes long
    // before the 1 s deadline and says why. Every attempt failed but the
    // deadline did not pass, so SPEC §5 says 502 ("502 (or 504 when the
    // deadline passed)"), where Envoy or nginx would say 504.
    let proxy = fleet
        .proxy("try_timeout = \"200ms\"\ndeadline = \"1s\"")
        .await;
    let started = Instant::now();
    let request = get(proxy.listen, "/hang/2");
    let answer =
        support::send_past_hangs(&client, request, &[b1], Duration::from_millis(200)).await;
    let elapsed = started.elapsed();
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(
        text.contains(&format!("{instance}: no response within 200ms")),
        "{text}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert_eq!(b1.requests(), 2);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: the deadline bounds all the attempts together: three hanging
/// instances with a 400 ms per-try timeout and a 1 s deadline get `504`
/// after about 1 s, naming the instances tried. Each attempt's timeout
/// passes by [`support::send_past_hangs`] once its instance has the
/// request.
#[tokio::test]
async fn the_deadline_bounds_every_attempt_together() {
    let fleet = Fleet::start(THREE, 2).await;
    for backend in &fleet.backends {
        backend.set(Behaviour::Hang);
    }
    let proxy = fleet
        .proxy("try_timeout = \"400ms\"\ndeadline = \"1s\"")
        .await;
    let client = Client::http1();
    let path = "/deadline/1";
    let expected = fleet.expected(path);
    let started = Instant::now();
    let hanging: Vec<&Backend> = fleet.backends.iter().collect();
    let request = get(proxy.listen, path);
    let answer =
        support::send_past_hangs(&client, request, &hanging, Duration::from_millis(400)).await;
    let elapsed = started.elapsed();
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    for name in &expected[..2] {
        assert!(text.contains(&fleet.instance(name)), "{name}: {text}");
    }
    // The first two instances are asked in order; the third is asked with
    // what is left of the deadline.
    let first = text.find(&fleet.instance(&expected[0])).unwrap();
    let second = text.find(&fleet.instance(&expected[1])).unwrap();
    assert!(first < second, "{text}");
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    assert!(fleet.requests() >= 2);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: a slow primary times out per try and its replica answers. The
/// per-try timeout passes by [`support::send_past_hangs`] once the primary
/// has the request.
#[tokio::test]
async fn a_per_try_timeout_moves_on_to_the_replica() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet
        .proxy("try_timeout = \"300ms\"\ndeadline = \"5s\"")
        .await;
    let client = Client::http1();
    let path = "/slow/1";
    let expected = fleet.expected(path);
    let primary = fleet.backend(&expected[0]);
    primary.set(Behaviour::Slow(Duration::from_secs(3)));
    let request = get(proxy.listen, path);
    let answer =
        support::send_past_hangs(&client, request, &[primary], Duration::from_millis(300)).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    assert_eq!(answer.backend(), Some(expected[1].as_str()), "{path}");
    assert_eq!(primary.requests(), 1);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §5: an instance that closes the connection without answering: a GET
/// goes on to the replica; when both do it, `502` naming both and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_is_retried_and_then_named() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let client = Client::http1();
    let path = "/reset/1";
    let expected = fleet.expected(path);
    let (primary, replica) = (fleet.backend(&expected[0]), fleet.backend(&expected[1]));
    primary.set(Behaviour::Reset);
    assert_answered_by(&client, proxy.listen, path, replica.name()).await;
    assert_eq!(primary.requests(), 1);

    replica.set(Behaviour::Reset);
    let answer = client.get(proxy.listen, path).await;
    let text = answer.text();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{text}");
    for backend in [primary, replica] {
        let line = text
            .lines()
            .find(|line| line.contains(&fleet.instance(backend.name())))
            .unwrap_or_else(|| panic!("{} is not named: {text}", backend.name()));
        assert!(line.contains("request failed"), "{line}");
    }
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// HTTP/2 with prior knowledge (h2c) is served on the same port; upstream
/// the request is HTTP/1.1 with the `:authority` as Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_is_served() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let client = Client::http2();
    for path in keys("/h2/", 20) {
        let answer = client.get(proxy.listen, &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        assert_eq!(
            answer.backend(),
            Some(fleet.primary(&path).as_str()),
            "{path}"
        );
        let echo = answer.echo();
        assert_eq!(echo.version, "HTTP/1.1");
        assert_eq!(echo.header("host"), Some(proxy.listen.to_string().as_str()));
        assert!(
            echo.header("via").unwrap_or("").contains("2 shardproxy"),
            "{:?}",
            echo.headers
        );
    }
    let post = request(
        Method::POST,
        proxy.listen,
        "/h2/post",
        &[],
        vec![b'x'; 10_000],
    );
    let answer = client.send(post).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.echo().body_len, 10_000);
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// Keep-alive on both sides: 50 requests on one client connection are all
/// answered on it, and reuse the proxy's pooled upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_connections_on_both_sides() {
    let fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let stream = TcpStream::connect(proxy.listen).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let path = "/keepalive/1";
    let primary = fleet.backend(&fleet.primary(path));
    for _ in 0..50 {
        sender
            .ready()
            .await
            .expect("the client connection stays open");
        let request = Request::get(path)
            .header("host", "shop.example")
            .body(Full::default())
            .unwrap();
        let response = tokio::time::timeout(WAIT, sender.send_request(request))
            .await
            .expect("an answer")
            .expect("an answer on the same connection");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-backend"], primary.name());
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(primary.requests(), 50);
    assert!(
        fleet.connections() <= 2,
        "{} upstream connections for 50 sequential requests",
        fleet.connections()
    );
    drop(sender);
    let _ = connection.await;
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §4: a `strip_prefix` route sends the path without its prefix but
/// hashes the path as sent; `query:` and `cookie:` keys route by the
/// parameter (form-decoded) and the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_prefix_query_and_cookie_keys_route_to_the_primary() {
    let fleet = Fleet::start(THREE, 1).await;
    let srv = SRV.trim_end_matches('.');
    let services = format!(
        "[services.paths]\nsrv = \"{srv}\"\n\n\
         [services.users]\nsrv = \"{srv}\"\nkey = \"query:user\"\n\n\
         [services.sessions]\nsrv = \"{srv}\"\nkey = \"cookie:session\"\n"
    );
    let routes =
        "[[routes]]\npath_prefix = \"/strip/\"\nservice = \"paths\"\nstrip_prefix = true\n\n\
         [[routes]]\npath_prefix = \"/q/\"\nservice = \"users\"\n\n\
         [[routes]]\npath_prefix = \"/c/\"\nservice = \"sessions\"\n";
    let config = config_text(fleet.dns.addr(), &services, routes);
    let proxy = support::start_proxy(&config, "test.toml").await;
    let client = Client::http1();

    for i in 0..30 {
        let path = format!("/strip/items/{i}");
        let answer = client.get(proxy.listen, &format!("{path}?x=1")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(
            answer.backend(),
            Some(fleet.primary(&path).as_str()),
            "{path}"
        );
        assert_eq!(answer.echo().uri, format!("/items/{i}?x=1"));

        let answer = client
            .get(proxy.listen, &format!("/q/any?a=1&user=u{i}&user=other"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(
            answer.backend(),
            Some(fleet.primary(&format!("u{i}")).as_str()),
            "user u{i}"
        );

        let cookie = format!("theme=dark; session=s{i}");
        let cookie = request(
            Method::GET,
            proxy.listen,
            "/c/page",
            &[("cookie", &cookie)],
            Bytes::new(),
        );
        let answer = client.send(cookie).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(
            answer.backend(),
            Some(fleet.primary(&format!("s{i}")).as_str()),
            "session s{i}"
        );
    }
    // Form decoding: `%69` is `i`, `+` a space.
    let answer = client.get(proxy.listen, "/q/x?user=al%69ce+b").await;
    assert_eq!(answer.backend(), Some(fleet.primary("alice b").as_str()));
    // Routes whose key is missing.
    let answer = client.get(proxy.listen, "/q/x?name=alice").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().contains("query:user"), "{}", answer.text());
    let answer = client.get(proxy.listen, "/c/x").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.text().contains("cookie:session"),
        "{}",
        answer.text()
    );
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}

/// SPEC §3: a ring changed in DNS is picked up by the running proxy
/// (`refresh = "1s"`, TTL 1 s) and requests follow the new ring.
#[tokio::test]
async fn requests_follow_a_ring_changed_in_dns() {
    let mut fleet = Fleet::start(THREE, 1).await;
    let proxy = fleet.proxy("").await;
    let client = Client::http1();
    let keys = keys("/moving/", 100);
    for key in &keys {
        assert_answered_by(&client, proxy.listen, key, &fleet.primary(key)).await;
    }

    // A fourth backend joins with tokens of its own.
    fleet.backends.push(Backend::start("b4").await);
    fleet.tokens.push(vec!["0a", "4a", "8a", "ca"]);
    let records = ring_records(&fleet.backends, &fleet.tokens, fleet.slaves);
    fleet.dns.set_records(records).unwrap();
    // No request is under way: the next refresh, at most a second away,
    // comes at once.
    support::skip(Duration::from_secs(1)).await;
    let b4_key = keys
        .iter()
        .find(|key| fleet.primary(key) == "b4")
        .expect("b4 owns one of the keys")
        .clone();
    wait_until("the proxy follows the new ring", || {
        let client = client.clone();
        let listen = proxy.listen;
        let key = b4_key.clone();
        async move { client.get(listen, &key).await.backend() == Some("b4") }
    })
    .await;
    for key in &keys {
        assert_answered_by(&client, proxy.listen, key, &fleet.primary(key)).await;
    }
    stop_proxy(proxy).await;
    fleet.shutdown().await;
}
