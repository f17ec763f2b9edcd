//! Replica writes end to end (SPEC §5, `writes = "all"`): a static ring of
//! three real key-value backends (`support::backend`, `Behaviour::Store`),
//! each key's preference list holding all three, and the proxy in front.
//! Backends are stopped (their port refuses connections) or made to answer
//! an error to fail a replica. Waits poll a condition, never sleep.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use shardproxy::run::Running;
use support::backend::{Backend, Behaviour};
use support::client::{request, Answer, Client};
use support::{wait_until, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Three instances, interleaved; with `slaves = 2` every key's preference
/// list holds all three.
const TOKENS: [&[&str]; 3] = [
    &["15", "55", "95"],
    &["2a", "6a", "aa"],
    &["40", "80", "c0"],
];

/// The three backends and a proxy whose service `frob` is their ring.
struct Harness {
    backends: Vec<Backend>,
    proxy: Running,
    client: Client,
}

impl Harness {
    /// Starts the backends as stores and the proxy, with `slaves` replicas
    /// and `service` lines (e.g. `writes = "all"`) in the service section.
    async fn start(slaves: usize, service: &str) -> Harness {
        let mut backends = Vec::new();
        for index in 1..=TOKENS.len() {
            let backend = Backend::start(&format!("b{index}")).await;
            backend.set(Behaviour::Store);
            backends.push(backend);
        }
        let instances: Vec<String> = backends
            .iter()
            .zip(TOKENS)
            .map(|(backend, tokens)| support::instance_line(backend, tokens))
            .collect();
        // The answers name the replicas, which these tests read.
        let config = support::static_config(
            &instances,
            &format!("slaves = {slaves}\n{service}"),
            "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"",
        )
        .replacen("[server]\n", "[server]\nerror_detail = true\n", 1);
        let proxy = support::start_proxy(&config, "writes.toml").await;
        Harness {
            backends,
            proxy,
            client: Client::http1(),
        }
    }

    fn backend(&self, name: &str) -> &Backend {
        self.backends
            .iter()
            .find(|backend| backend.name() == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// `b1.example.com:PORT`: how the proxy names backend `name`.
    fn instance(&self, name: &str) -> String {
        format!("{name}.example.com:{}", self.backend(name).port())
    }

    /// `PUT path` with `value` through the proxy.
    async fn put(&self, path: &str, value: &str) -> Answer {
        let put = request(Method::PUT, self.proxy.listen, path, &[], value.to_owned());
        self.client.send(put).await
    }

    /// Waits until each of `names` holds `value` at `path`.
    async fn wait_stored(&self, names: &[&str], path: &str, value: &str) {
        for name in names {
            let backend = self.backend(name);
            wait_until(&format!("{name} holds {path} = {value}"), || {
                let held = backend.stored(path);
                async move { held.as_deref() == Some(value.as_bytes()) }
            })
            .await;
        }
    }

    /// The sum of the samples of `name` on `/metrics` whose labels include
    /// `labels`.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let answer = self.client.get(self.proxy.admin, "/metrics").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        support::sum_samples(&answer.text(), name, labels)
    }

    /// `shardproxy_read_repairs_total{result}`.
    async fn read_repairs(&self, result: &str) -> f64 {
        self.metric("shardproxy_read_repairs_total", &[("result", result)])
            .await
    }

    /// `shardproxy_ejections_total`, every instance and reason.
    async fn ejections(&self) -> f64 {
        self.metric("shardproxy_ejections_total", &[]).await
    }

    /// `shardproxy_replica_writes_total{result}`.
    async fn replica_writes(&self, result: &str) -> f64 {
        self.metric("shardproxy_replica_writes_total", &[("result", result)])
            .await
    }

    /// Requests the backends received, all together.
    fn requests(&self) -> u64 {
        self.backends.iter().map(Backend::requests).sum()
    }

    /// `GET path` through the proxy.
    async fn get(&self, path: &str) -> Answer {
        self.client.get(self.proxy.listen, path).await
    }

    /// The primary of `path`, which holds nothing yet: with the read
    /// fallback, a `404` everywhere is the first instance's, the primary's,
    /// and every instance was asked.
    async fn primary_of(&self, path: &str) -> &Backend {
        let before = self.requests();
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
        assert_eq!(self.requests(), before + 3, "every instance was asked");
        let name = answer.backend().expect("a backend answered").to_owned();
        self.backend(&name)
    }

    /// Writes `value` at `path` while its primary is down, so that only the
    /// replicas hold it; returns the primary, up again and without it.
    async fn write_missed_by_primary(&self, path: &str, value: &str) -> &Backend {
        let primary = self.primary_of(path).await;
        primary.stop().await;
        let put = request(
            Method::PUT,
            self.proxy.listen,
            path,
            &[("content-type", "text/x-frob")],
            value.to_owned(),
        );
        let answer = self.client.send(put).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let replicas: Vec<&str> = self
            .backends
            .iter()
            .filter(|backend| backend.name() != primary.name())
            .map(Backend::name)
            .collect();
        self.wait_stored(&replicas, path, value).await;
        primary.restart().await;
        assert_eq!(primary.stored(path), None);
        primary
    }

    /// The replicas of a key whose primary is `primary`.
    fn others(&self, primary: &Backend) -> impl Iterator<Item = &Backend> {
        let primary = primary.name().to_owned();
        self.backends
            .iter()
            .filter(move |backend| backend.name() != primary)
    }

    async fn stop(self) {
        tokio::time::timeout(WAIT, self.proxy.shutdown())
            .await
            .expect("the proxy shuts down");
        for backend in self.backends {
            backend.shutdown().await;
        }
    }
}

#[tokio::test]
async fn a_write_needs_its_quorum_of_replicas() {
    let harness = Harness::start(2, "writes = \"all\"\nwrite_quorum = 2").await;

    // Every replica up: the first 2xx answers, all three hold the value.
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.body, "stored");
    assert!(answer.backend().is_some());
    harness
        .wait_stored(&["b1", "b2", "b3"], "/k/1", "one")
        .await;

    // One replica down: two 2xx are the quorum.
    harness.backend("b3").stop().await;
    let answer = harness.put("/k/2", "two").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_ne!(answer.backend(), Some("b3"));
    harness.wait_stored(&["b1", "b2"], "/k/2", "two").await;
    assert_eq!(harness.backend("b3").stored("/k/2"), None);

    // Two down: 502 naming each failure as soon as the quorum is out of
    // reach (b1 may not have answered yet); the live replica still gets it.
    harness.backend("b2").stop().await;
    let answer = harness.put("/k/3", "three").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert!(
        answer.text().contains("write quorum not reached")
            && answer
                .text()
                .contains("of the 2 2xx answers needed from 3 instance(s)"),
        "{}",
        answer.text()
    );
    // A connect error, or a pooled connection found closed.
    for down in ["b2", "b3"] {
        let named = format!("\n  {}: ", harness.instance(down));
        assert!(
            answer.text().contains(&named),
            "{named} in {}",
            answer.text()
        );
    }
    assert!(
        !answer.text().contains(&harness.instance("b1")),
        "{}",
        answer.text()
    );
    harness.wait_stored(&["b1"], "/k/3", "three").await;

    // Counted: 3 + 2 + 1 replica writes answered 2xx, 1 + 2 failed.
    wait_until("the replica writes are counted", || async {
        harness.replica_writes("ok").await == 6.0 && harness.replica_writes("failed").await == 3.0
    })
    .await;
    let quorum = "shardproxy_write_quorum_total";
    assert_eq!(harness.metric(quorum, &[("result", "reached")]).await, 2.0);
    assert_eq!(harness.metric(quorum, &[("result", "failed")]).await, 1.0);
    harness.stop().await;
}

#[tokio::test]
async fn an_answer_that_is_not_2xx_is_a_failed_replica() {
    let harness = Harness::start(2, "writes = \"all\"\nwrite_quorum = 3").await;
    harness.backend("b2").set(Behaviour::Status(500));
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    let named = format!(
        "{}: answered 500 Internal Server Error",
        harness.instance("b2")
    );
    assert!(
        answer.text().contains(&named),
        "{named} in {}",
        answer.text()
    );
    harness.wait_stored(&["b1", "b3"], "/k/1", "one").await;
    harness.stop().await;
}

#[tokio::test]
async fn the_default_quorum_is_a_majority_of_the_list() {
    // One replica: lists of two, a majority of two is two.
    let harness = Harness::start(1, "writes = \"all\"").await;
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let holders = || {
        harness
            .backends
            .iter()
            .filter(|backend| backend.stored("/k/1").is_some())
            .count()
    };
    assert_eq!(holders(), 2, "both replicas answered before the client");

    for backend in &harness.backends {
        backend.set(Behaviour::Status(503));
    }
    let answer = harness.put("/k/2", "two").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("0 of the 2 2xx answers needed from 2"),
        "{}",
        answer.text()
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_quorum_larger_than_the_list_is_a_502_at_once() {
    let harness = Harness::start(2, "writes = \"all\"\nwrite_quorum = 4").await;
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("write_quorum 4 is more than the 3 instance(s)"),
        "{}",
        answer.text()
    );
    assert_eq!(harness.requests(), 0, "no replica was written");
    harness.stop().await;
}

#[tokio::test]
async fn a_body_over_max_body_is_413() {
    let harness = Harness::start(2, "writes = \"all\"\nmax_body = \"16B\"").await;
    let answer = harness.put("/k/1", "0123456789abcdef").await;
    assert_eq!(answer.status, StatusCode::OK, "16 bytes: {}", answer.text());
    harness
        .wait_stored(&["b1", "b2", "b3"], "/k/1", "0123456789abcdef")
        .await;

    let answer = harness.put("/k/2", "0123456789abcdefg").await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );

    // Without a length announced: counted as it arrives.
    let mut stream = TcpStream::connect(harness.proxy.listen).await.unwrap();
    stream
        .write_all(
            b"PUT /k/3 HTTP/1.1\r\nHost: frob\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");

    assert_eq!(
        harness.requests(),
        3,
        "only the first write reached the replicas"
    );
    harness.stop().await;
}

#[tokio::test]
async fn writes_still_in_flight_finish_in_the_background() {
    let harness = Harness::start(
        2,
        "writes = \"all\"\nwrite_quorum = 2\ntry_timeout = \"5s\"",
    )
    .await;
    let background = || harness.metric("shardproxy_background_writes", &[]);
    harness.backend("b3").set(Behaviour::Hang);
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    harness.wait_stored(&["b1", "b2"], "/k/1", "one").await;

    // b3 holds the write, in the background, until the per-try timeout
    // ends it.
    wait_until("b3 has the write", || async {
        harness.backend("b3").in_flight() == 1
    })
    .await;
    assert_eq!(background().await, 1.0);
    assert_eq!(harness.replica_writes("failed").await, 0.0);
    // Nothing but the held write is under way, and it is meant to time
    // out: its 5 s pass at once.
    support::skip(Duration::from_secs(5)).await;
    wait_until("the background write ends", || async {
        background().await == 0.0
    })
    .await;
    assert_eq!(harness.replica_writes("failed").await, 1.0);
    assert_eq!(harness.replica_writes("ok").await, 2.0);
    wait_until("b3's request is dropped", || async {
        harness.backend("b3").in_flight() == 0
    })
    .await;
    harness.stop().await;
}

#[tokio::test]
async fn writes_primary_go_to_the_primary_only() {
    let harness = Harness::start(2, "").await;
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let holders: Vec<&str> = harness
        .backends
        .iter()
        .filter(|backend| backend.stored("/k/1").is_some())
        .map(Backend::name)
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(answer.backend(), Some(holders[0]));
    assert_eq!(harness.requests(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_read_finds_the_write_its_primary_missed() {
    let harness = Harness::start(2, "writes = \"all\"").await;
    let primary = harness.write_missed_by_primary("/k/1", "one").await;

    // The primary is asked first and answers 404; a replica has the object.
    let asked = primary.requests();
    let answer = harness.get("/k/1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "one");
    assert_ne!(answer.backend(), Some(primary.name()));
    assert_eq!(primary.requests(), asked + 1, "the primary was asked first");
    assert_eq!(answer.header("content-type"), Some("text/x-frob"));
    // Without read_repair nothing is written back.
    assert_eq!(primary.stored("/k/1"), None);

    let fallbacks = "shardproxy_read_fallbacks_total";
    assert_eq!(harness.metric(fallbacks, &[("result", "found")]).await, 1.0);
    // The 404 everywhere of `primary_of`.
    assert_eq!(
        harness.metric(fallbacks, &[("result", "not_found")]).await,
        1.0
    );
    harness.stop().await;
}

#[tokio::test]
async fn read_repair_writes_the_object_back_to_the_primary() {
    let harness = Harness::start(2, "writes = \"all\"\nread_repair = true").await;
    let primary = harness.write_missed_by_primary("/k/1?v=1", "one").await;

    let answer = harness.get("/k/1?v=1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "one");
    assert_eq!(answer.header("content-length"), Some("3"));
    wait_until("the primary holds the repaired object", || async {
        primary.stored("/k/1?v=1").as_deref() == Some(b"one".as_slice())
    })
    .await;
    assert_eq!(
        primary
            .stored_type("/k/1?v=1")
            .as_ref()
            .map(|t| t.as_bytes()),
        Some(b"text/x-frob".as_slice())
    );
    wait_until("the repair is counted", || async {
        harness
            .metric("shardproxy_read_repairs_total", &[("result", "ok")])
            .await
            == 1.0
    })
    .await;

    // The primary now answers alone.
    for replica in harness.others(primary) {
        replica.stop().await;
    }
    let answer = harness.get("/k/1?v=1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "one");
    assert_eq!(answer.backend(), Some(primary.name()));
    harness.stop().await;
}

#[tokio::test]
async fn a_repair_never_overwrites_a_newer_object() {
    let harness = Harness::start(2, "writes = \"all\"\nread_repair = true").await;
    let primary = harness.write_missed_by_primary("/k/1", "old").await;

    // The replicas hold the read until the primary has a newer object.
    for replica in harness.others(primary) {
        replica.hold();
    }
    let read = tokio::spawn({
        let client = harness.client.clone();
        let listen = harness.proxy.listen;
        async move { client.get(listen, "/k/1").await }
    });
    wait_until("a replica has the read", || async {
        harness.others(primary).map(Backend::in_flight).sum::<u64>() == 1
    })
    .await;
    primary.put("/k/1", "new");
    for replica in harness.others(primary) {
        replica.release();
    }
    let answer = read.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "old");

    // The repair was refused (412), and counted so.
    wait_until("the refused repair is counted", || async {
        harness
            .metric("shardproxy_read_repairs_total", &[("result", "exists")])
            .await
            == 1.0
    })
    .await;
    assert_eq!(primary.stored("/k/1").as_deref(), Some(b"new".as_slice()));
    assert_eq!(
        harness
            .metric("shardproxy_read_repairs_total", &[("result", "ok")])
            .await,
        0.0
    );
    harness.stop().await;
}

#[tokio::test]
async fn only_a_get_or_head_404_falls_back() {
    let harness = Harness::start(2, "read_fallback_404 = true").await;
    for backend in &harness.backends {
        backend.set(Behaviour::Status(404));
    }
    // A 404 everywhere is a 404, after every instance was asked.
    let answer = harness.get("/k/1").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(harness.requests(), 3);
    let head = request(Method::HEAD, harness.proxy.listen, "/k/1", &[], "");
    let answer = harness.client.send(head).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(harness.requests(), 6);

    // A POST's 404 is its answer: one instance asked.
    let post = request(Method::POST, harness.proxy.listen, "/k/1", &[], "x");
    let answer = harness.client.send(post).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(harness.requests(), 7);
    harness.stop().await;
}

#[tokio::test]
async fn without_the_fallback_a_404_is_the_primarys_answer() {
    let harness = Harness::start(2, "writes = \"all\"\nread_fallback_404 = false").await;
    let answer = harness.get("/k/1").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(harness.requests(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_head_finds_the_object_and_repairs_nothing() {
    let harness = Harness::start(2, "writes = \"all\"\nread_repair = true").await;
    let primary = harness.write_missed_by_primary("/k/1", "one").await;
    let head = request(Method::HEAD, harness.proxy.listen, "/k/1", &[], "");
    let answer = harness.client.send(head).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_ne!(answer.backend(), Some(primary.name()));
    // A HEAD has no body to write back: the repair is skipped, at once.
    assert_eq!(harness.read_repairs("skipped").await, 1.0);
    assert_eq!(harness.read_repairs("ok").await, 0.0);
    assert_eq!(primary.stored("/k/1"), None);
    harness.stop().await;
}

#[tokio::test]
async fn the_fallback_skips_ejected_instances() {
    let harness = Harness::start(
        2,
        "writes = \"all\"\noutlier_detection = { consecutive_failures = 1, base_ejection_time = \"1h\", max_ejection_time = \"1h\", probe_interval = \"1h\" }",
    )
    .await;
    let primary = harness.primary_of("/k/1").await;
    // A failed answer ejects one of the replicas; it then serves again.
    let ejected = harness.others(primary).next().unwrap();
    ejected.set(Behaviour::Status(503));
    let mut n = 0;
    wait_until("the replica is ejected", || {
        n += 1;
        let path = format!("/e/{n}");
        let harness = &harness;
        async move {
            harness.get(&path).await;
            harness.ejections().await >= 1.0
        }
    })
    .await;
    assert!(ejected.requests() > 0);
    ejected.set(Behaviour::Store);

    // A 404 everywhere else is the primary's, the ejected replica unasked.
    let before = ejected.requests();
    let others = harness.requests() - before;
    let answer = harness.get("/k/1").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(answer.backend(), Some(primary.name()));
    assert_eq!(
        ejected.requests(),
        before,
        "the ejected replica was not asked"
    );
    assert_eq!(harness.requests() - ejected.requests(), others + 2);
    harness.stop().await;
}

#[tokio::test]
async fn a_stalled_replica_delays_the_fallback_within_the_deadline() {
    let harness = Harness::start(
        2,
        "writes = \"all\"\ntry_timeout = \"4s\"\ndeadline = \"6s\"",
    )
    .await;
    let primary = harness.write_missed_by_primary("/k/1", "one").await;
    let replicas: Vec<&Backend> = harness.others(primary).collect();
    let in_flight = || {
        replicas
            .iter()
            .map(|replica| replica.in_flight())
            .sum::<u64>()
    };
    let read = || {
        let client = harness.client.clone();
        let listen = harness.proxy.listen;
        tokio::spawn(async move { client.get(listen, "/k/1").await })
    };

    // The first replica asked stalls: at its per-try timeout the next one
    // is asked, and has the object.
    for replica in &replicas {
        replica.set(Behaviour::Hang);
    }
    let answer = read();
    wait_until("a replica holds the read", || {
        let held = in_flight() == 1;
        async move { held }
    })
    .await;
    for replica in &replicas {
        if replica.in_flight() == 0 {
            replica.set(Behaviour::Store);
        }
    }
    support::skip(Duration::from_secs(4)).await;
    let answer = answer.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "one");

    // Both stall: the deadline ends the fallback, 2 s into the second
    // replica's attempt (not at its 4 s per-try timeout), and the 404
    // stands. (The test client's own timeout, `WAIT`, is on the same clock:
    // 4 s + 2 s stay under it.)
    for replica in &replicas {
        replica.set(Behaviour::Hang);
    }
    wait_until("the timed-out read is dropped", || {
        let idle = in_flight() == 0;
        async move { idle }
    })
    .await;
    let before: Vec<u64> = replicas.iter().map(|replica| replica.requests()).collect();
    let answer = read();
    for (asked, skipped) in [(1, 4), (2, 2)] {
        wait_until("a replica holds the read", || {
            let held = in_flight() == 1
                && replicas
                    .iter()
                    .zip(&before)
                    .map(|(replica, before)| replica.requests() - before)
                    .sum::<u64>()
                    == asked;
            async move { held }
        })
        .await;
        support::skip(Duration::from_secs(skipped)).await;
    }
    // At once: past the deadline nothing more is waited for (the second
    // attempt's own timeout would be 2 s of real time away).
    let answer = tokio::time::timeout(Duration::from_secs(1), answer)
        .await
        .expect("answered at the deadline")
        .unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());
    assert_eq!(answer.backend(), Some(primary.name()));
    harness.stop().await;
}

#[tokio::test]
async fn a_drained_instance_takes_writes_but_no_reads_until_undrained() {
    let harness = Harness::start(2, "writes = \"all\"").await;
    let primary = harness.primary_of("/k/1").await;
    let instance = harness.instance(primary.name());
    let answer = harness.put("/k/1", "one").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    harness
        .wait_stored(&["b1", "b2", "b3"], "/k/1", "one")
        .await;
    let admin = |path: &str| {
        let post = request(Method::POST, harness.proxy.admin, path, &[], String::new());
        harness.client.send(post)
    };

    let drain = format!("/instances/drain?service=frob&instance={instance}");
    let answer = admin(&drain).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let expected =
        format!(r#"{{"service":"frob","instance":"{instance}","drained":true,"changed":true}}"#);
    assert_eq!(answer.text().trim_end(), expected);
    let again = admin(&drain).await;
    assert!(
        again.text().contains(r#""changed":false"#),
        "{}",
        again.text()
    );

    // Reads go to the replicas, and none fails.
    let asked = primary.requests();
    for _ in 0..10 {
        let answer = harness.get("/k/1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.text(), "one");
        assert_ne!(answer.backend(), Some(primary.name()));
    }
    assert_eq!(
        primary.requests(),
        asked,
        "no read reached the drained primary"
    );
    // Writes still reach it.
    let answer = harness.put("/k/1", "two").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    harness.wait_stored(&[primary.name()], "/k/1", "two").await;

    // /ring and /metrics show it.
    let ring = harness
        .client
        .get(harness.proxy.admin, "/ring")
        .await
        .text();
    let ring: serde_json::Value = serde_json::from_str(&ring).unwrap();
    let drained: Vec<String> = ring["services"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|instance| instance["drained"] == true)
        .map(support::host_port)
        .collect();
    assert_eq!(drained, std::slice::from_ref(&instance));
    let gauge = "shardproxy_ring_drained_instances";
    assert_eq!(harness.metric(gauge, &[("service", "frob")]).await, 1.0);

    let answer = admin(&format!(
        "/instances/undrain?service=frob&instance={instance}"
    ))
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(
        answer.text().contains(r#""drained":false,"changed":true"#),
        "{}",
        answer.text()
    );
    let answer = harness.get("/k/1").await;
    assert_eq!(
        answer.backend(),
        Some(primary.name()),
        "back on the primary"
    );
    assert_eq!(harness.metric(gauge, &[("service", "frob")]).await, 0.0);

    // What is refused, and why.
    let unknown = admin("/instances/drain?service=frob&instance=nowhere.example.com:1").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    assert!(
        unknown.text().contains("not an instance of the ring"),
        "{}",
        unknown.text()
    );
    let malformed = admin("/instances/drain?service=frob&instance=b1").await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.text()
    );
    let no_service = admin(&format!(
        "/instances/drain?service=nope&instance={instance}"
    ))
    .await;
    assert_eq!(
        no_service.status,
        StatusCode::NOT_FOUND,
        "{}",
        no_service.text()
    );
    let by_get = harness.client.get(harness.proxy.admin, &drain).await;
    assert_eq!(by_get.status, StatusCode::METHOD_NOT_ALLOWED);
    harness.stop().await;
}
