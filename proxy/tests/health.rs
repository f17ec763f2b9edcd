//! Instance health end to end (SPEC §5 "the first healthy instance",
//! README "Health, reloads, shutdown"): passive outlier detection and
//! active checks, over real sockets on 127.0.0.1.
//!
//! Each test starts real backends (`support::backend`), a proxy with
//! `run::start` whose service lists them statically (no DNS), and a client.
//! What the proxy decided is read where an operator reads it: the answers'
//! `x-backend`, `/ring` (each instance's `health`), `/ring/lookup` (a key's
//! preference list) and `/metrics`. Requests are sent one after another, so
//! the number of attempts before an ejection is exact; waits poll a
//! condition with a bound ([`WAIT`]), never a fixed sleep.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use shardproxy::config::Config;
use shardproxy::run::Running;
use support::backend::{Backend, Behaviour};
use support::client::{Answer, Client};
use support::{wait_until, WAIT};

/// Three instances, four tokens each, interleaved: each owns about a third
/// of the ring, and with `slaves = 1` each is the replica of some keys of
/// each other one.
const THREE: &[&[&str]] = &[
    &["15", "55", "95", "d5"],
    &["2a", "6a", "aa", "ea"],
    &["40", "80", "c0", "ff"],
];

/// Two instances, each owning half of the ring.
const TWO: &[&[&str]] = &[&["40", "c0"], &["80", "ff"]];

// === The harness: backends, a proxy in front of them, a client ===

/// Backends `b1`, `b2`, ... (hosts `b1.example.com`, ...), a proxy whose
/// service `frob` lists them with static tokens, and a client.
struct Harness {
    backends: Vec<Backend>,
    proxy: Running,
    /// The config the proxy was started with.
    config: String,
    client: Client,
}

impl Harness {
    /// `tokens[i]` are the tokens of backend `b{i+1}`; `service` holds more
    /// lines of the service's section (health settings).
    async fn start(tokens: &[&[&str]], slaves: usize, service: &str) -> Harness {
        Harness::start_as(tokens, slaves, service, Behaviour::Healthy).await
    }

    /// [`Harness::start`] with backends that behave as `behaviour` from
    /// their first request on, before the proxy starts.
    async fn start_as(
        tokens: &[&[&str]],
        slaves: usize,
        service: &str,
        behaviour: Behaviour,
    ) -> Harness {
        let mut backends = Vec::new();
        for index in 0..tokens.len() {
            let backend = Backend::start(&format!("b{}", index + 1)).await;
            backend.set(behaviour);
            backends.push(backend);
        }
        let instances: Vec<String> = backends
            .iter()
            .zip(tokens)
            .map(|(backend, tokens)| support::instance_line(backend, tokens))
            .collect();
        let config = support::static_config(
            &instances,
            &format!("slaves = {slaves}\n{service}"),
            "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"",
        );
        let proxy = support::start_proxy(&config, "health.toml").await;
        Harness {
            backends,
            proxy,
            config,
            client: Client::http1(),
        }
    }

    fn backend(&self, name: &str) -> &Backend {
        self.backends
            .iter()
            .find(|backend| backend.name() == name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// `b1.example.com:PORT`: how the proxy names backend `name` in
    /// metrics.
    fn instance(&self, name: &str) -> String {
        format!("{name}.example.com:{}", self.backend(name).port())
    }

    /// A request for `key` through the proxy.
    async fn get(&self, key: &str) -> Answer {
        self.client.get(self.proxy.listen, key).await
    }

    /// Sends `key` and checks that backend `name` answered it with `200`.
    async fn assert_answered_by(&self, key: &str, name: &str) {
        let answer = self.get(key).await;
        assert_eq!(answer.status, StatusCode::OK, "{key}: {}", answer.text());
        assert_eq!(answer.backend(), Some(name), "{key}");
    }

    /// [`Harness::assert_answered_by`] for a key whose first attempt goes
    /// to `hanging`, a backend that reads requests and never answers, and
    /// ends by the per-try timeout `try_timeout`, which passes by
    /// [`support::send_past_hangs`] instead of in real time.
    async fn assert_answered_past_a_hang(
        &self,
        key: &str,
        name: &str,
        hanging: &str,
        try_timeout: Duration,
    ) {
        let request = support::client::get(self.proxy.listen, key);
        let hanging = [self.backend(hanging)];
        let answer = support::send_past_hangs(&self.client, request, &hanging, try_timeout).await;
        assert_eq!(answer.status, StatusCode::OK, "{key}: {}", answer.text());
        assert_eq!(answer.backend(), Some(name), "{key}");
    }

    /// An admin page as JSON.
    async fn admin_json(&self, path: &str) -> Value {
        let answer = self.client.get(self.proxy.admin, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        serde_json::from_slice(&answer.body)
            .unwrap_or_else(|error| panic!("{path} is not JSON ({error}): {}", answer.text()))
    }

    /// The backends of `key`'s preference list, primary first, as the
    /// proxy's `/ring/lookup` says.
    async fn preference(&self, key: &str) -> Vec<String> {
        let lookup = self
            .admin_json(&format!("/ring/lookup?service=frob&key={key}"))
            .await;
        lookup["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("no instances in {lookup}"))
            .iter()
            .map(|instance| {
                let host = instance["host"].as_str().expect("a host");
                host.split('.').next().unwrap_or(host).to_owned()
            })
            .collect()
    }

    /// `count` keys whose primary is `primary`, each with its preference
    /// list.
    async fn keys_of(&self, primary: &str, count: usize) -> Vec<(String, Vec<String>)> {
        let mut found = Vec::new();
        for index in 0..10_000 {
            let key = format!("/k/{index}");
            let preference = self.preference(&key).await;
            if preference[0] == primary {
                found.push((key, preference));
                if found.len() == count {
                    return found;
                }
            }
        }
        panic!("fewer than {count} keys of {primary}");
    }

    /// What `/ring` shows of backend `name`'s health.
    async fn health(&self, name: &str) -> Value {
        let ring = self.admin_json("/ring").await;
        let host = format!("{name}.example.com");
        ring["services"][0]["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("no instances in {ring}"))
            .iter()
            .find(|instance| instance["host"] == host.as_str())
            .unwrap_or_else(|| panic!("{host} is not in {ring}"))["health"]
            .clone()
    }

    async fn is_ejected(&self, name: &str) -> bool {
        let health = self.health(name).await;
        health["ejected"]
            .as_bool()
            .unwrap_or_else(|| panic!("no \"ejected\" in {health}"))
    }

    /// The sum of the samples of `name` on `/metrics` whose labels include
    /// `labels` (0 when there is none).
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let answer = self.client.get(self.proxy.admin, "/metrics").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        support::sum_samples(&answer.text(), name, labels)
    }

    /// Attempts the proxy made on backend `name`, however they ended.
    async fn attempts_on(&self, name: &str) -> f64 {
        let instance = self.instance(name);
        self.metric(
            "shardproxy_upstream_attempts_total",
            &[("upstream", &instance)],
        )
        .await
    }

    /// Reloads the proxy with `config` (as SIGHUP does).
    async fn reload(&self, config: &str) {
        let config =
            Config::from_toml(config, "health.toml").unwrap_or_else(|error| panic!("{error}"));
        self.proxy
            .reload(config)
            .await
            .expect("the reload succeeds");
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

// === Passive detection ===

/// How a backend fails in [`a_failing_instance_is_ejected_and_its_replica_takes_its_keys`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Answers `503`, a retryable status.
    Status503,
    /// Reads the request and closes the connection.
    Reset,
    /// Never answers: the per-try timeout ends each attempt.
    Hang,
    /// Stopped: its port refuses connections.
    Stopped,
}

/// SPEC §5, outlier detection: an instance whose requests fail
/// `consecutive_failures` times in a row is ejected; its keys then go
/// straight to their replicas. With `slaves = 1` the failures themselves
/// are retried on the replica, so no client request fails; once ejected,
/// the instance gets no attempt at all. `/ring` shows it ejected for
/// `failures`, and the metrics count the ejection.
async fn a_failing_instance_is_ejected_and_its_replica_takes_its_keys(failure: Failure) {
    const TRY_TIMEOUT: Duration = Duration::from_millis(300);
    // The ejection outlasts the test: whatever is asked after it must skip
    // the victim.
    let h = Harness::start(
        THREE,
        1,
        "try_timeout = \"300ms\"\n\
         outlier_detection = { consecutive_failures = 3, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let victim = "b1";
    let victim_keys = h.keys_of(victim, 8).await;
    let other_keys = [h.keys_of("b2", 2).await, h.keys_of("b3", 2).await].concat();
    for (key, _) in &victim_keys {
        h.assert_answered_by(key, victim).await;
    }

    match failure {
        Failure::Status503 => h.backend(victim).set(Behaviour::Status(503)),
        Failure::Reset => h.backend(victim).set(Behaviour::Reset),
        Failure::Hang => h.backend(victim).set(Behaviour::Hang),
        Failure::Stopped => h.backend(victim).stop().await,
    }
    let attempts_before = h.attempts_on(victim).await;

    // Each of the first three requests fails on the victim, then succeeds
    // on the replica; the third failure ejects the victim.
    for (round, (key, preference)) in victim_keys.iter().take(3).enumerate() {
        assert!(
            !h.is_ejected(victim).await,
            "{failure:?}: ejected after {round} failures, before 3: {}",
            h.health(victim).await
        );
        if failure == Failure::Hang {
            h.assert_answered_past_a_hang(key, &preference[1], victim, TRY_TIMEOUT)
                .await;
        } else {
            h.assert_answered_by(key, &preference[1]).await;
        }
    }
    let health = h.health(victim).await;
    assert_eq!(
        (&health["ejected"], &health["reason"]),
        (&Value::Bool(true), &Value::from("failures")),
        "{failure:?}: 3 failures in a row eject the victim: {health}"
    );
    let attempts = h.attempts_on(victim).await - attempts_before;
    if failure == Failure::Reset {
        // A request that a kept-alive connection took is tried once more
        // on a new connection (the instance may only have closed an idle
        // connection); that first failure is not held against it.
        assert!(
            (3.0..=6.0).contains(&attempts),
            "{failure:?}: one or two attempts per request until the ejection: {attempts}"
        );
    } else {
        assert_eq!(
            attempts, 3.0,
            "{failure:?}: one attempt per request until the ejection"
        );
    }
    let victim_requests = h.backend(victim).requests();

    // From now on the victim is skipped: its keys go straight to their
    // replica, the others' to their primary; nobody asks the victim.
    for _ in 0..3 {
        for (key, preference) in &victim_keys {
            h.assert_answered_by(key, &preference[1]).await;
        }
        for (key, preference) in &other_keys {
            h.assert_answered_by(key, &preference[0]).await;
        }
    }
    assert_eq!(
        h.attempts_on(victim).await - attempts_before,
        attempts,
        "{failure:?}: no attempt on an ejected instance"
    );
    assert_eq!(
        h.backend(victim).requests(),
        victim_requests,
        "{failure:?}: the ejected victim received nothing more"
    );
    assert!(h.is_ejected(victim).await, "{failure:?}: still ejected");
    let instance = h.instance(victim);
    let ejections = h
        .metric(
            "shardproxy_ejections_total",
            &[
                ("service", "frob"),
                ("upstream", &instance),
                ("reason", "failures"),
            ],
        )
        .await;
    assert_eq!(ejections, 1.0, "{failure:?}: the ejection is counted once");
    assert_eq!(
        h.metric("shardproxy_requests_total", &[("status", "502")])
            .await,
        0.0,
        "{failure:?}: no client request failed"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_answering_503_is_ejected_and_skipped() {
    a_failing_instance_is_ejected_and_its_replica_takes_its_keys(Failure::Status503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_resetting_connections_is_ejected_and_skipped() {
    a_failing_instance_is_ejected_and_its_replica_takes_its_keys(Failure::Reset).await;
}

/// On the current-thread runtime: the victim's per-try timeouts pass by
/// [`support::skip`].
#[tokio::test]
async fn an_instance_timing_out_is_ejected_and_skipped() {
    a_failing_instance_is_ejected_and_its_replica_takes_its_keys(Failure::Hang).await;
}

/// A stopped instance (connection refused) fails like any other: connect
/// errors count towards `consecutive_failures` (health.rs: "connect errors,
/// timeouts, broken exchanges, retryable statuses").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_is_ejected_and_skipped() {
    a_failing_instance_is_ejected_and_its_replica_takes_its_keys(Failure::Stopped).await;
}

/// "Consecutive" failures: a success in between starts the count again, so
/// an instance that fails now and then is not ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_in_between_starts_the_count_again() {
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 3, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let victim = h.backend("b1");
    let keys = h.keys_of("b1", 1).await;
    let (key, preference) = &keys[0];
    for round in 1..=3 {
        victim.set(Behaviour::Status(503));
        h.assert_answered_by(key, &preference[1]).await;
        h.assert_answered_by(key, &preference[1]).await;
        let health = h.health("b1").await;
        assert_eq!(
            (&health["ejected"], &health["consecutive_failures"]),
            (&Value::Bool(false), &Value::from(2)),
            "round {round}: 2 failures in a row (after a success) do not eject: {health}"
        );
        victim.set(Behaviour::Healthy);
        h.assert_answered_by(key, "b1").await;
    }
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["consecutive_failures"]),
        (&Value::Bool(false), &Value::from(0)),
        "6 failures, never 3 in a row: not ejected: {health}"
    );
    // Three in a row do eject it.
    victim.set(Behaviour::Status(503));
    for _ in 0..3 {
        h.assert_answered_by(key, &preference[1]).await;
    }
    assert!(h.is_ejected("b1").await, "{}", h.health("b1").await);
    h.stop().await;
}

/// Outlier detection: when the ejection time is up the instance is
/// restored, and its keys come back to it once it is healthy; a second
/// ejection lasts twice as long (`base_ejection_time` doubled, up to
/// `max_ejection_time`).
///
/// The ejection time passes by [`support::skip`]: requests go one after
/// another, so none is under way when the clock moves.
#[tokio::test]
async fn an_ejected_instance_is_restored_when_its_time_is_up() {
    const BASE: Duration = Duration::from_secs(20);
    // How much of the ejection is left at the first look: far more than
    // the real time between the ejection and that skip (milliseconds).
    const SLACK: Duration = Duration::from_secs(2);
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"20s\", max_ejection_time = \"200s\" }",
    )
    .await;
    let victim = h.backend("b1");
    let keys = h.keys_of("b1", 4).await;
    let (key, preference) = &keys[0];
    let replica = preference[1].clone();

    victim.set(Behaviour::Status(503));
    h.assert_answered_by(key, &replica).await;
    h.assert_answered_by(key, &replica).await;
    assert!(h.is_ejected("b1").await, "{}", h.health("b1").await);
    victim.set(Behaviour::Healthy);
    let requests_at_ejection = victim.requests();

    // Until the ejection time is up, the victim stays ejected, healthy as
    // it is: its key goes to the replica.
    support::skip(BASE - SLACK).await;
    let health = h.health("b1").await;
    let remaining = health["ejected_for_ms"].as_u64().unwrap_or(0);
    assert!(
        health["ejected"] == true && remaining <= SLACK.as_millis() as u64,
        "restored before the ejection time ({BASE:?}) was up: {health}"
    );
    h.assert_answered_by(key, &replica).await;
    assert_eq!(victim.requests(), requests_at_ejection);

    // Once the ejection is over, the first request asks the victim again.
    support::skip(SLACK).await;
    h.assert_answered_by(key, "b1").await;
    assert!(victim.requests() > requests_at_ejection);
    for (key, _) in &keys {
        h.assert_answered_by(key, "b1").await;
    }
    let health = h.health("b1").await;
    assert_eq!(health["ejected"], false, "{health}");
    assert!(health.get("reason").is_none(), "{health}");
    let instance = h.instance("b1");
    assert!(
        h.metric("shardproxy_restores_total", &[("upstream", &instance)])
            .await
            >= 1.0,
        "the restore is counted"
    );

    // Failing again soon after: ejected for twice as long.
    victim.set(Behaviour::Status(503));
    h.assert_answered_by(key, &replica).await;
    h.assert_answered_by(key, &replica).await;
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["ejections"]),
        (&Value::Bool(true), &Value::from(2)),
        "{health}"
    );
    let remaining = health["ejected_for_ms"].as_u64().expect("ejected_for_ms");
    assert!(
        remaining > 20_000 && remaining <= 40_000,
        "the second ejection lasts 40 s: {health}"
    );
    assert_eq!(
        h.metric(
            "shardproxy_ejections_total",
            &[("upstream", &instance), ("reason", "failures")]
        )
        .await,
        2.0
    );
    h.stop().await;
}

/// SPEC §5: "If every instance of the list is ejected, they are tried
/// anyway, in order": as soon as one of them answers again, requests
/// succeed, without waiting for an ejection to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_instance_is_ejected_they_are_tried_anyway() {
    let h = Harness::start(
        TWO,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let of_b1 = h.keys_of("b1", 1).await.remove(0).0;
    let of_b2 = h.keys_of("b2", 1).await.remove(0).0;
    for backend in &h.backends {
        backend.set(Behaviour::Status(503));
    }
    // Each request fails on both instances: two requests eject both.
    for _ in 0..2 {
        let answer = h.get(&of_b1).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    }
    assert!(h.is_ejected("b1").await && h.is_ejected("b2").await);

    // b2 recovers: the very next requests succeed, whichever the primary.
    h.backend("b2").set(Behaviour::Healthy);
    h.assert_answered_by(&of_b1, "b2").await;
    h.assert_answered_by(&of_b2, "b2").await;
    // Then b1 instead: tried first for its keys, as the list says.
    h.backend("b2").set(Behaviour::Status(503));
    h.backend("b1").set(Behaviour::Healthy);
    h.assert_answered_by(&of_b1, "b1").await;
    h.assert_answered_by(&of_b2, "b1").await;
    assert!(
        h.is_ejected("b1").await,
        "the ejection still runs: it was tried anyway"
    );
    h.stop().await;
}

// === Active checks ===

/// Active checks: with `health_check`, an instance whose check fails (an
/// error status, a timeout, a refused connection) is ejected with no
/// client traffic at all, its keys go to their replica, and a passing
/// check restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_checks_eject_and_passing_checks_restore() {
    // Passive detection off: every ejection here is the checks' doing.
    let h = Harness::start(
        THREE,
        1,
        "health_check = { path = \"/healthz\", interval = \"200ms\", timeout = \"100ms\" }\n\
         outlier_detection = { consecutive_failures = 0 }",
    )
    .await;
    let victim = h.backend("b1");
    let instance = h.instance("b1");
    let keys = h.keys_of("b1", 4).await;
    wait_until("the victim has been checked", || async {
        victim.requests() > 0
    })
    .await;
    for (key, _) in &keys {
        h.assert_answered_by(key, "b1").await;
    }

    let failures: [(&str, Behaviour); 3] = [
        ("answers 503", Behaviour::Status(503)),
        (
            "answers after the timeout",
            Behaviour::Slow(Duration::from_millis(400)),
        ),
        ("refuses connections", Behaviour::Healthy),
    ];
    for (round, (what, behaviour)) in failures.into_iter().enumerate() {
        victim.set(behaviour);
        if what == "refuses connections" {
            victim.stop().await;
        }
        wait_until(&format!("a victim that {what} is ejected"), || async {
            h.is_ejected("b1").await
        })
        .await;
        let health = h.health("b1").await;
        assert_eq!(health["reason"], "check", "{what}: {health}");
        let ejections = h
            .metric(
                "shardproxy_ejections_total",
                &[("upstream", &instance), ("reason", "check")],
            )
            .await;
        assert_eq!(ejections, (round + 1) as f64, "{what}");

        // Client requests skip it.
        let attempts = h.attempts_on("b1").await;
        for (key, preference) in &keys {
            h.assert_answered_by(key, &preference[1]).await;
        }
        assert_eq!(
            h.attempts_on("b1").await,
            attempts,
            "{what}: no client request is sent to a victim ejected by its checks"
        );

        victim.set(Behaviour::Healthy);
        if !victim.is_running() {
            victim.restart().await;
        }
        wait_until(&format!("a victim that {what} is restored"), || async {
            !h.is_ejected("b1").await
        })
        .await;
        for (key, _) in &keys {
            h.assert_answered_by(key, "b1").await;
        }
        let restores = h
            .metric("shardproxy_restores_total", &[("upstream", &instance)])
            .await;
        assert_eq!(restores, (round + 1) as f64, "{what}");
    }
    h.stop().await;
}

/// SPEC §5 with active checks: every instance ejected by its checks is
/// still tried, in order, so a request succeeds as soon as one answers,
/// before any check has noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_all_ejected_by_checks_are_tried_anyway() {
    // Both fail from the start: the first round of checks, run as the
    // proxy starts, ejects both; the next round is long after the test.
    let h = Harness::start_as(
        TWO,
        1,
        "health_check = { path = \"/healthz\", interval = \"1m\", timeout = \"1s\" }\n\
         outlier_detection = { consecutive_failures = 0 }",
        Behaviour::Status(503),
    )
    .await;
    wait_until("both instances are ejected by their checks", || async {
        h.is_ejected("b1").await && h.is_ejected("b2").await
    })
    .await;
    let of_b1 = h.keys_of("b1", 1).await.remove(0).0;
    let of_b2 = h.keys_of("b2", 1).await.remove(0).0;
    let answer = h.get(&of_b1).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());

    // b2 answers again: the very next requests succeed, though no check
    // has seen it recover.
    h.backend("b2").set(Behaviour::Healthy);
    h.assert_answered_by(&of_b1, "b2").await;
    h.assert_answered_by(&of_b2, "b2").await;
    let health = h.health("b2").await;
    assert_eq!(
        (&health["ejected"], &health["reason"]),
        (&Value::Bool(true), &Value::from("check")),
        "b2 answered while still ejected by its check: {health}"
    );
    h.stop().await;
}

// === Reloads ===

/// Health is kept per instance name "so it survives ring changes"
/// (health.rs): a reload (SIGHUP) is a ring change too. An instance ejected
/// for failing stays ejected across a reload that keeps it, here one that
/// changes nothing but the retry budget; it is not handed requests again
/// just because the config file was re-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejection_survives_a_reload() {
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let victim = h.backend("b1");
    let keys = h.keys_of("b1", 4).await;
    victim.set(Behaviour::Status(503));
    for (key, preference) in keys.iter().take(2) {
        h.assert_answered_by(key, &preference[1]).await;
    }
    assert!(h.is_ejected("b1").await, "{}", h.health("b1").await);
    let requests = victim.requests();

    h.reload(
        &h.config
            .replace("slaves = 1\n", "slaves = 1\nretry_budget = 0.25\n"),
    )
    .await;
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["reason"]),
        (&Value::Bool(true), &Value::from("failures")),
        "still ejected after the reload: {health}"
    );
    for (key, preference) in &keys {
        h.assert_answered_by(key, &preference[1]).await;
    }
    assert_eq!(
        victim.requests(),
        requests,
        "the ejected victim got requests again after the reload"
    );
    h.stop().await;
}

// === Recovery (SPEC §9.3) ===

/// The default `outlier_detection.probe_interval`.
const PROBE: Duration = Duration::from_secs(2);

/// SPEC §9.3: "a restarted instance gets its keys back within
/// `probe_interval` plus one second". An instance stopped (its port
/// refuses connections) is ejected for connect failures; probes fail while
/// it is down; once it listens again on the same port, the next probe (a
/// TCP connect: there is no `health_check`) restores it, long before its
/// one-minute ejection would end. The probe interval passes by
/// [`support::skip`], the rest in real time, bounded by one second.
#[tokio::test]
async fn a_restarted_instance_gets_its_keys_back_within_the_probe_interval() {
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let victim = h.backend("b1");
    let keys = h.keys_of("b1", 4).await;
    for (key, _) in &keys {
        h.assert_answered_by(key, "b1").await;
    }

    victim.stop().await;
    for (key, preference) in keys.iter().take(2) {
        h.assert_answered_by(key, &preference[1]).await;
    }
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["cause"]),
        (&Value::Bool(true), &Value::from("connect")),
        "ejected for connect failures: {health}"
    );

    // While it is down, probes fail and it stays ejected.
    for round in 0..3 {
        support::skip(PROBE).await;
        let health = h.health("b1").await;
        assert_eq!(health["ejected"], true, "round {round}: {health}");
    }
    for (key, preference) in &keys {
        h.assert_answered_by(key, &preference[1]).await;
    }

    victim.restart().await;
    let connections = victim.connections();
    support::skip(PROBE).await;
    support::wait_until_within(
        Duration::from_secs(1),
        "the restarted instance is restored by a probe",
        || async { !h.is_ejected("b1").await },
    )
    .await;
    assert!(
        victim.connections() > connections,
        "the probe connected to the restarted instance"
    );
    for (key, _) in &keys {
        h.assert_answered_by(key, "b1").await;
    }
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["ejections"]),
        (&Value::Bool(false), &Value::from(1)),
        "restored, the backoff kept: {health}"
    );
    let instance = h.instance("b1");
    assert_eq!(
        h.metric("shardproxy_restores_total", &[("upstream", &instance)])
            .await,
        1.0,
        "the restore is counted"
    );
    h.stop().await;
}

/// The same bound with no clock but the real one: from the moment a
/// stopped instance listens again, its keys come back to it within
/// `probe_interval` plus one second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_is_restored_in_real_time() {
    const INTERVAL: Duration = Duration::from_millis(500);
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\", max_ejection_time = \"5m\", probe_interval = \"500ms\" }",
    )
    .await;
    let victim = h.backend("b1");
    let keys = h.keys_of("b1", 2).await;
    victim.stop().await;
    for (key, preference) in &keys {
        h.assert_answered_by(key, &preference[1]).await;
    }
    assert!(h.is_ejected("b1").await, "{}", h.health("b1").await);

    victim.restart().await;
    let restarted = std::time::Instant::now();
    support::wait_until("the restarted instance is restored", || async {
        !h.is_ejected("b1").await
    })
    .await;
    h.assert_answered_by(&keys[0].0, "b1").await;
    let took = restarted.elapsed();
    assert!(
        took <= INTERVAL + Duration::from_secs(1),
        "keys back after {took:?}, more than probe_interval + 1 s"
    );
    h.stop().await;
}

/// SPEC §9.3: "without `health_check` it restores only an instance ejected
/// for connect failures". `b2`, ejected for answering `503`, then healthy
/// again, is not restored by the probe round that restores `b1`, ejected
/// for refusing connections and then restarted: a TCP connect says nothing
/// of answers. `b2` waits out its ejection time, then takes its keys back.
#[tokio::test]
async fn an_instance_ejected_for_its_answers_is_not_restored_by_a_connect() {
    let h = Harness::start(
        THREE,
        1,
        "outlier_detection = { consecutive_failures = 2, base_ejection_time = \"15s\", max_ejection_time = \"5m\" }",
    )
    .await;
    // b1's keys have b2 as replica and b2's have b3: b1 goes first, while
    // b2 still answers for it.
    let keys_b1 = h.keys_of("b1", 2).await;
    let keys_b2 = h.keys_of("b2", 2).await;
    h.backend("b1").stop().await;
    for (key, preference) in &keys_b1 {
        h.assert_answered_by(key, &preference[1]).await;
    }
    h.backend("b2").set(Behaviour::Status(503));
    for (key, preference) in &keys_b2 {
        h.assert_answered_by(key, &preference[1]).await;
    }
    let b2 = h.health("b2").await;
    assert_eq!(
        (&b2["ejected"], &b2["cause"]),
        (&Value::Bool(true), &Value::from("answers")),
        "{b2}"
    );
    assert_eq!(h.health("b1").await["cause"], "connect");

    // Both accept connections again; only b1 is restored.
    h.backend("b2").set(Behaviour::Healthy);
    let b2_requests = h.backend("b2").requests();
    h.backend("b1").restart().await;
    support::skip(PROBE).await;
    support::wait_until_within(
        Duration::from_secs(1),
        "b1 is restored by the probe round",
        || async { !h.is_ejected("b1").await },
    )
    .await;
    let b2 = h.health("b2").await;
    assert_eq!(
        (&b2["ejected"], &b2["cause"]),
        (&Value::Bool(true), &Value::from("answers")),
        "a connect does not restore an instance ejected for its answers: {b2}"
    );
    for (key, preference) in &keys_b2 {
        h.assert_answered_by(key, &preference[1]).await;
    }
    assert_eq!(h.backend("b2").requests(), b2_requests, "b2 got nothing");
    for round in 0..3 {
        support::skip(PROBE).await;
        assert!(h.is_ejected("b2").await, "round {round}");
    }

    // Its ejection time over, it takes its keys back. (Skips stay short of
    // the 30 s the proxy lets a kept-alive client connection idle.)
    support::skip(Duration::from_secs(15)).await;
    for (key, _) in &keys_b2 {
        h.assert_answered_by(key, "b2").await;
    }
    h.stop().await;
}

/// With `health_check`, the probe is the check's request, which vouches
/// for answers: an instance ejected for answering `503` is probed (and
/// stays ejected while the probe gets `503` too), and the first probe it
/// answers with `200` restores it, though its own checks (every minute)
/// and its ejection time (a minute) are far off.
#[tokio::test]
async fn with_a_health_check_a_probe_request_restores_an_instance_ejected_for_its_answers() {
    let h = Harness::start(
        THREE,
        1,
        "health_check = { path = \"/healthz\", interval = \"1m\", timeout = \"1s\" }\n\
         outlier_detection = { consecutive_failures = 2, base_ejection_time = \"1m\", max_ejection_time = \"5m\" }",
    )
    .await;
    let victim = h.backend("b1");
    wait_until("the first round of checks has passed", || async {
        victim.requests() > 0 && h.metric("shardproxy_ejections_total", &[]).await == 0.0
    })
    .await;
    let keys = h.keys_of("b1", 2).await;
    victim.set(Behaviour::Status(503));
    for (key, preference) in &keys {
        h.assert_answered_by(key, &preference[1]).await;
    }
    let health = h.health("b1").await;
    assert_eq!(
        (&health["ejected"], &health["cause"]),
        (&Value::Bool(true), &Value::from("answers")),
        "{health}"
    );

    // A probe that gets 503 restores nothing.
    let requests = victim.requests();
    support::skip(PROBE).await;
    wait_until("a probe request reaches the victim", || async {
        victim.requests() > requests
    })
    .await;
    assert!(h.is_ejected("b1").await, "{}", h.health("b1").await);

    victim.set(Behaviour::Healthy);
    let requests = victim.requests();
    support::skip(PROBE).await;
    support::wait_until_within(
        Duration::from_secs(1),
        "a passing probe request restores the victim",
        || async { !h.is_ejected("b1").await },
    )
    .await;
    assert!(victim.requests() > requests, "the probe asked the victim");
    for (key, _) in &keys {
        h.assert_answered_by(key, "b1").await;
    }
    h.stop().await;
}
