//! Transition reads end to end (SPEC §5, `transition_grace`): real
//! key-value backends (`support::backend`, `Behaviour::Store`), their ring
//! published by an in-process DNS server, the proxy in front. The ring then
//! changes (a fourth backend joins, empty) while keys are read, and the
//! reads that land on the new owner before its data arrives must still find
//! it on the old one.
//!
//! Which keys moved is read from the proxy's own ring state (what is tested
//! here is what the proxy does with a moved key, not where keys land).
//! Waits poll a condition, never sleep.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use shardproxy::config::Config;
use shardproxy::discovery::{Snapshot, Table};
use shardproxy::dns_server::{DnsServer, Zone, ZoneRecord};
use shardproxy::run::Running;
use shardproxy_ring::{Ring, Token};
use support::backend::{Backend, Behaviour};
use support::client::{request, Answer, Client};
use support::{wait_until, WAIT};

const SRV: &str = "_frob._http.example.com.";

/// Tokens of `b1` to `b4`: three interleaved, and a fourth that takes a
/// piece of each.
const TOKENS: [&[&str]; 4] = [
    &["15", "55", "95", "d5"],
    &["2a", "6a", "aa", "ea"],
    &["40", "80", "c0", "ff"],
    &["0a", "4a", "8a", "ca"],
];

/// Four store backends, a DNS server publishing the first `published` of
/// them (`slaves=1 redundancy=host`), and the proxy.
struct Fleet {
    dns: DnsServer,
    backends: Vec<Backend>,
    proxy: Running,
    client: Client,
}

impl Fleet {
    /// Publishes `b1` to `b3` and starts the proxy with `transition_grace`.
    async fn start(grace: &str) -> Fleet {
        Fleet::start_with(grace, "").await
    }

    /// [`Fleet::start`] with `service` lines added to the service section.
    async fn start_with(grace: &str, service: &str) -> Fleet {
        let mut backends = Vec::new();
        for index in 1..=TOKENS.len() {
            let backend = Backend::start(&format!("b{index}")).await;
            backend.set(Behaviour::Store);
            backends.push(backend);
        }
        let zone = Zone::new("example.com.")
            .with_ttl(1)
            .with_records(records(&backends[..3]));
        let dns = DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
            .await
            .expect("the DNS server starts");
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[dns]
servers = ["{}"]
refresh = "1s"

[services.frob]
srv = "{}"
transition_grace = "{grace}"
{service}

[[routes]]
path_prefix = "/"
service = "frob"
"#,
            dns.addr(),
            SRV.trim_end_matches('.')
        );
        let proxy = support::start_proxy(&config, "transition.toml").await;
        Fleet {
            dns,
            backends,
            proxy,
            client: Client::http1(),
        }
    }

    /// Publishes all four backends, waits until the proxy uses their ring,
    /// and returns the rings before and after. With `idle` (no request
    /// under way), the proxy's next DNS refresh, at most `refresh = "1s"`
    /// away, comes at once by [`support::skip`]; else in real time.
    async fn add_b4(&self, idle: bool) -> Change {
        let app = self.proxy.app();
        let before = app.services[0].upstream.ring.load_full().unwrap();
        self.dns.set_records(records(&self.backends)).unwrap();
        if idle {
            support::skip(Duration::from_secs(1)).await;
        }
        wait_until("the proxy uses the ring with b4", || {
            let app = Arc::clone(&app);
            async move { ring_size(&app.services[0].upstream.ring.load_full().unwrap().table) == 4 }
        })
        .await;
        Change {
            before,
            after: app.services[0].upstream.ring.load_full().unwrap(),
        }
    }

    fn backend(&self, name: &str) -> &Backend {
        self.backends
            .iter()
            .find(|backend| backend.name() == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// Requests the backends received, all together.
    fn requests(&self) -> u64 {
        self.backends.iter().map(Backend::requests).sum()
    }

    async fn get(&self, key: &str) -> Answer {
        self.client.get(self.proxy.listen, key).await
    }

    /// `shardproxy_transition_reads_total{result}`.
    fn transition_reads(&self, result: &str) -> f64 {
        transition_reads(&self.proxy, result)
    }

    async fn stop(self) {
        stop_proxy(self.proxy).await;
        for backend in self.backends {
            backend.shutdown().await;
        }
        self.dns.shutdown().await;
    }
}

/// A ring change the proxy saw.
struct Change {
    before: Arc<Snapshot>,
    after: Arc<Snapshot>,
}

impl Change {
    /// Whether `key`'s primary differs between the two rings.
    fn moved(&self, key: &str) -> bool {
        let position = Token::of_key(key.as_bytes());
        let primary = |snapshot: &Snapshot| {
            ring(&snapshot.table)
                .primary(position)
                .map(|instance| instance.name().clone())
        };
        primary(&self.before) != primary(&self.after)
    }
}

/// The SPEC §3 records of a ring of `backends` (tokens from [`TOKENS`] by
/// name), `slaves=1 redundancy=host`.
fn records(backends: &[Backend]) -> Vec<ZoneRecord> {
    support::ring_records(SRV, backends, &TOKENS, 1)
}

fn ring(table: &Table) -> &Ring {
    match table {
        Table::Ring(ring) => ring,
        Table::Srv(_) => panic!("expected a ring"),
    }
}

fn ring_size(table: &Table) -> usize {
    ring(table).instances().len()
}

fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("/k/{i}")).collect()
}

async fn stop_proxy(running: Running) {
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("the proxy shuts down");
}

/// The sum of the samples of metric `name` with `labels` of the running
/// proxy.
fn metric(proxy: &Running, name: &str, labels: &[(&str, &str)]) -> f64 {
    let app = proxy.app();
    support::sum_samples(&app.metrics.render(&app.scraped()), name, labels)
}

/// `shardproxy_transition_reads_total{result}` of the running proxy.
fn transition_reads(proxy: &Running, result: &str) -> f64 {
    metric(
        proxy,
        "shardproxy_transition_reads_total",
        &[("result", result)],
    )
}

/// `shardproxy_ring_transition_remaining_seconds` of the running proxy.
fn transition_remaining(proxy: &Running) -> f64 {
    metric(proxy, "shardproxy_ring_transition_remaining_seconds", &[])
}

/// Writes `value-of-KEY` for every key through the proxy (to its primary).
async fn seed(client: &Client, proxy: SocketAddr, keys: &[String]) {
    for key in keys {
        let put = request(Method::PUT, proxy, key, &[], format!("value-of-{key}"));
        let answer = client.send(put).await;
        assert_eq!(answer.status, StatusCode::OK, "PUT {key}");
    }
}

/// Reads every key over and over until told to stop; counts the reads and
/// keeps every one that did not answer the seeded value.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Reader {
    fn start(client: Client, proxy: SocketAddr, keys: Vec<String>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let misses = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    for key in &keys {
                        let answer = client.get(proxy, key).await;
                        let wanted = format!("value-of-{key}");
                        if answer.status != StatusCode::OK || answer.body != wanted.as_bytes() {
                            misses.lock().unwrap().push(format!(
                                "{key}: {} from {:?}",
                                answer.status,
                                answer.backend()
                            ));
                        }
                        reads.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let misses = misses.lock().unwrap().clone();
                misses
            })
        };
        Reader { stop, reads, task }
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Stops and returns the reads that missed.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the reader stops")
            .expect("the reader does not panic")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_misses_a_key_while_the_ring_changes() {
    let fleet = Fleet::start("60s").await;
    let keys = keys(100);
    seed(&fleet.client, fleet.proxy.listen, &keys).await;
    assert_eq!(fleet.backend("b4").requests(), 0);
    assert_eq!(transition_remaining(&fleet.proxy), 0.0, "no change yet");

    let reader = Reader::start(fleet.client.clone(), fleet.proxy.listen, keys.clone());
    let change = fleet.add_b4(false).await;
    // At least two whole passes over the keys on the new ring.
    let after_change = reader.reads();
    wait_until("the keys are read twice on the new ring", || {
        let done = reader.reads() >= after_change + 2 * keys.len() as u64;
        async move { done }
    })
    .await;
    let misses = reader.finish().await;
    assert!(misses.is_empty(), "{} misses: {misses:#?}", misses.len());
    let remaining = transition_remaining(&fleet.proxy);
    assert!(remaining > 30.0 && remaining <= 60.0, "{remaining}");

    // The keys that moved went to b4 first, which does not hold them, and
    // were answered by the old ring.
    let moved: Vec<&String> = keys.iter().filter(|key| change.moved(key)).collect();
    assert!(!moved.is_empty(), "b4 takes some keys");
    for key in &moved {
        let b4_before = fleet.backend("b4").requests();
        let answer = fleet.get(key).await;
        assert_eq!(answer.status, StatusCode::OK, "{key}");
        assert_ne!(answer.backend(), Some("b4"), "{key}");
        assert_eq!(fleet.backend("b4").requests(), b4_before + 1, "{key}");
    }
    assert!(fleet.transition_reads("found") >= moved.len() as f64);
    assert_eq!(fleet.transition_reads("not_found"), 0.0);
    fleet.stop().await;
}

/// Requests go one after another: the grace passes by [`support::skip`].
#[tokio::test]
async fn after_the_grace_the_old_ring_is_not_consulted() {
    const GRACE: Duration = Duration::from_secs(10);
    let fleet = Fleet::start("10s").await;
    let keys = keys(100);
    seed(&fleet.client, fleet.proxy.listen, &keys).await;
    let change = fleet.add_b4(true).await;
    let moved: Vec<String> = keys
        .iter()
        .filter(|key| change.moved(key))
        .cloned()
        .collect();
    let first = moved.first().expect("b4 takes some keys");
    let remaining = transition_remaining(&fleet.proxy);
    assert!(remaining > 0.0 && remaining <= 10.0, "{remaining}");
    assert_eq!(
        fleet.get(first).await.status,
        StatusCode::OK,
        "in the grace"
    );

    support::skip(GRACE).await;
    assert_eq!(
        fleet.get(first).await.status,
        StatusCode::NOT_FOUND,
        "the grace is over: a moved key is not found"
    );
    assert_eq!(transition_remaining(&fleet.proxy), 0.0);
    let (found, not_found) = (
        fleet.transition_reads("found"),
        fleet.transition_reads("not_found"),
    );
    let old_ring: u64 = ["b1", "b2", "b3"]
        .iter()
        .map(|name| fleet.backend(name).requests())
        .sum();
    for key in &moved {
        let answer = fleet.get(key).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{key}");
        assert_eq!(answer.backend(), Some("b4"), "{key}");
    }
    let old_ring_after: u64 = ["b1", "b2", "b3"]
        .iter()
        .map(|name| fleet.backend(name).requests())
        .sum();
    assert_eq!(old_ring_after, old_ring, "the old owners were not asked");
    assert_eq!(fleet.transition_reads("found"), found);
    assert_eq!(fleet.transition_reads("not_found"), not_found);
    fleet.stop().await;
}

#[tokio::test]
async fn a_404_whose_primary_did_not_change_is_not_tried_on_the_old_ring() {
    let fleet = Fleet::start("60s").await;
    let change = fleet.add_b4(true).await;
    // Never written: 404 everywhere.
    let keys = keys(100);
    let stayed = keys
        .iter()
        .find(|key| !change.moved(key))
        .expect("a key that stayed");
    let moved = keys
        .iter()
        .find(|key| change.moved(key))
        .expect("a key that moved");

    let before = fleet.requests();
    let answer = fleet.get(stayed).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(fleet.requests(), before + 1, "only the primary was asked");
    assert_eq!(fleet.transition_reads("not_found"), 0.0);

    // A key that moved is tried on the old ring's two instances, then the
    // new primary's 404 is the answer.
    let before = fleet.requests();
    let answer = fleet.get(moved).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.backend(), Some("b4"));
    assert_eq!(fleet.requests(), before + 3);
    assert_eq!(fleet.transition_reads("not_found"), 1.0);
    assert_eq!(fleet.transition_reads("found"), 0.0);

    // Writes are never tried on the old ring.
    let before = fleet.requests();
    let delete = request(Method::DELETE, fleet.proxy.listen, moved, &[], "");
    let answer = fleet.client.send(delete).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(fleet.requests(), before + 1);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_a_static_ring_starts_a_transition() {
    let mut backends = Vec::new();
    for index in 1..=3 {
        let backend = Backend::start(&format!("b{index}")).await;
        backend.set(Behaviour::Store);
        backends.push(backend);
    }
    let config = |count: usize| {
        let instances: Vec<String> = backends[..count]
            .iter()
            .zip(TOKENS)
            .map(|(backend, tokens)| support::instance_line(backend, tokens))
            .collect();
        support::static_config(
            &instances,
            "transition_grace = \"60s\"",
            "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"",
        )
    };
    let proxy = support::start_proxy(&config(2), "transition.toml").await;
    let client = Client::http1();
    let keys = keys(100);
    seed(&client, proxy.listen, &keys).await;

    let next = Config::from_toml(&config(3), "transition.toml").unwrap();
    proxy.reload(next).await.expect("the reload succeeds");
    assert_eq!(
        ring_size(
            &proxy.app().services[0]
                .upstream
                .ring
                .load_full()
                .unwrap()
                .table
        ),
        3
    );
    for key in &keys {
        let answer = client.get(proxy.listen, key).await;
        assert_eq!(answer.status, StatusCode::OK, "{key}");
        assert_eq!(answer.body, format!("value-of-{key}").as_bytes(), "{key}");
    }
    assert!(backends[2].requests() > 0, "b3 owns some keys now");
    assert!(transition_reads(&proxy, "found") > 0.0);
    stop_proxy(proxy).await;
    for backend in backends {
        backend.shutdown().await;
    }
}

/// With `read_fallback_404`, a moved key's `404` on the new owner is tried
/// on the rest of the new list first, then on the old ring's list, never on
/// an instance twice.
#[tokio::test]
async fn a_fallback_read_then_the_old_ring_ask_each_instance_once() {
    let fleet = Fleet::start_with("60s", "read_fallback_404 = true").await;
    let keys = keys(40);
    seed(&fleet.client, fleet.proxy.listen, &keys).await;
    let change = fleet.add_b4(true).await;
    let moved: Vec<&String> = keys.iter().filter(|key| change.moved(key)).collect();
    assert!(!moved.is_empty(), "b4 takes some keys");
    for key in &moved {
        let before: Vec<u64> = fleet.backends.iter().map(Backend::requests).collect();
        let answer = fleet.get(key).await;
        assert_eq!(answer.status, StatusCode::OK, "{key}");
        assert_eq!(answer.body, format!("value-of-{key}").as_bytes(), "{key}");
        let asked: Vec<u64> = fleet
            .backends
            .iter()
            .zip(&before)
            .map(|(backend, before)| backend.requests() - before)
            .collect();
        assert_eq!(asked[3], 1, "{key}: b4, the new primary, first");
        assert!(asked.iter().all(|&n| n <= 1), "{key}: {asked:?}");
    }
    // Each moved key's 404 went down the new list first; the keys its new
    // replica did not hold went on to the old ring.
    let fallbacks = |result| {
        metric(
            &fleet.proxy,
            "shardproxy_read_fallbacks_total",
            &[("result", result)],
        )
    };
    assert_eq!(
        fallbacks("found") + fallbacks("not_found"),
        moved.len() as f64
    );
    assert_eq!(fleet.transition_reads("found"), fallbacks("not_found"));
    assert_eq!(fleet.transition_reads("not_found"), 0.0);
    fleet.stop().await;
}
