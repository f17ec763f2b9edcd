//! The response cache end to end (SPEC §6; purge: §9.6): real backends that
//! count their requests and answer with the caching headers each test
//! sets (`support::backend::Reply`), a proxy started with `run::start`
//! whose service lists them statically, and a hyper client.
//!
//! Each test asserts what the backends saw (how many requests, how many
//! `304`s) and what the client got (`x-cache`, `Age`, bodies). Times that
//! must pass are made zero (`max-age=0` with a stale window or a
//! validator), or pass by `support::skip` where the seconds themselves are
//! tested: no test sleeps, and waits poll a condition with a bound.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use shardproxy::config::Config;
use shardproxy::run::Running;
use support::backend::{Backend, Reply};
use support::client::{request, Answer, Client};

/// Backends `b1`, ... behind a proxy whose service `frob` has a cache.
struct Harness {
    backends: Vec<Backend>,
    proxy: Running,
    /// The config the proxy was started with.
    config: String,
    client: Client,
}

/// What these tests read off an answer besides its status and body.
trait CacheHeaders {
    /// What the cache did (`x-cache`: `HIT`, `MISS`, `STALE`); empty when
    /// the answer does not say.
    fn x_cache(&self) -> &str;

    /// The backend's request number that made this answer (0 when none).
    fn made_by_request(&self) -> u64;
}

impl CacheHeaders for Answer {
    fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    fn made_by_request(&self) -> u64 {
        self.header("x-request-number")
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    }
}

impl Harness {
    /// `count` backends (each a replica of the other's keys when there
    /// are two), and `cache` as the lines of `[services.frob.cache]`
    /// besides `enabled = true`.
    async fn start(count: usize, cache: &str) -> Harness {
        Harness::start_routed(count, cache, "[[routes]]\nservice = \"frob\"").await
    }

    /// [`Harness::start`] with `routes` (`[[routes]]` tables) instead of
    /// one catch-all route.
    async fn start_routed(count: usize, cache: &str, routes: &str) -> Harness {
        let mut backends = Vec::new();
        for index in 0..count {
            backends.push(Backend::start(&format!("b{}", index + 1)).await);
        }
        let instances: Vec<String> = backends
            .iter()
            .enumerate()
            .map(|(index, backend)| {
                support::instance_line(backend, &[&format!("{:x}0", 4 * (index + 1))])
            })
            .collect();
        let config = support::static_config(
            &instances,
            &format!(
                "slaves = {}\n\n[services.frob.cache]\nenabled = true\n{cache}",
                count - 1
            ),
            routes,
        );
        let proxy = support::start_proxy(&config, "cache.toml").await;
        Harness {
            backends,
            proxy,
            config,
            client: Client::http1(),
        }
    }

    /// Requests received by all backends.
    fn requests(&self) -> u64 {
        self.backends.iter().map(Backend::requests).sum()
    }

    /// Sets `reply` for `prefix` on every backend.
    fn reply_at(&self, prefix: &str, reply: &Reply) {
        for backend in &self.backends {
            backend.reply_at(prefix, reply.clone());
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let request = request(method, self.proxy.listen, path, headers, Bytes::new());
        self.client.send(request).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[]).await
    }

    /// An admin answer.
    async fn admin(&self, method: Method, path: &str) -> Answer {
        let request = request(method, self.proxy.admin, path, &[], Bytes::new());
        self.client.send(request).await
    }

    /// The value of metric `name` for service `frob`.
    async fn metric(&self, name: &str) -> f64 {
        let text = self.admin(Method::GET, "/metrics").await;
        let text = text.text();
        let prefix = format!("{name}{{service=\"frob\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .unwrap_or_else(|error| panic!("{name}: {error}"))
    }
}

const FRESH: &[(&str, &str)] = &[("cache-control", "max-age=60")];

// === Storing and serving ===

#[tokio::test]
async fn a_second_get_is_a_hit_and_the_backend_sees_one_request() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    let first = harness.get("/a?x=1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.header("age"), Some("0"));
    let second = harness.get("/a?x=1").await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body, "the stored body");
    assert!(second
        .header("age")
        .is_some_and(|age| age.parse::<u64>().is_ok()));
    assert_eq!(harness.requests(), 1);
    let other_query = harness.get("/a?x=2").await;
    assert_eq!(
        other_query.x_cache(),
        "MISS",
        "the query is part of the key"
    );
    assert_eq!(harness.requests(), 2);
    assert_eq!(harness.metric("shardproxy_cache_hits_total").await, 1.0);
    assert_eq!(harness.metric("shardproxy_cache_misses_total").await, 2.0);
    assert_eq!(harness.metric("shardproxy_cache_objects").await, 2.0);
}

/// Cache poisoning (SPEC §9.8, README "Limits and hardening"): what a
/// client sends outside the cache key
/// cannot change what other clients get. Another host, a spoofed Host or an
/// absolute-form authority are other keys; a GET with a body is passed, not
/// stored; the client's `X-Forwarded-Proto` is replaced by the proxy's.
#[tokio::test]
async fn headers_outside_the_key_cannot_change_what_others_get() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    let spoofed = harness
        .send(
            Method::GET,
            "/p",
            &[("host", "evil.example"), ("x-forwarded-proto", "gopher")],
        )
        .await;
    assert_eq!(spoofed.x_cache(), "MISS");
    let text = spoofed.text();
    assert!(
        !text.contains("gopher"),
        "the proxy sets X-Forwarded-Proto: {text}"
    );
    let honest = harness.get("/p").await;
    assert_eq!(honest.x_cache(), "MISS", "another host is another key");
    let text = honest.text();
    assert!(!text.contains("evil.example"), "{text}");
    assert_eq!(harness.requests(), 2);
    let again = harness
        .send(Method::GET, "/p", &[("host", "evil.example")])
        .await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.body, spoofed.body, "each host keeps its own object");

    // A GET whose body could steer the backend is passed, never stored.
    let fat = request(
        Method::GET,
        harness.proxy.listen,
        "/q",
        &[("x-test", "fat")],
        "steer",
    );
    let fat = harness.client.send(fat).await;
    assert_eq!(fat.header("x-cache"), Some("MISS"));
    let plain = harness.get("/q").await;
    assert_eq!(
        plain.x_cache(),
        "MISS",
        "the fat GET's answer was not stored"
    );
    assert_eq!(harness.requests(), 4);
}

#[tokio::test]
async fn responses_that_must_not_be_stored_are_never_served_from_the_cache() {
    let harness = Harness::start(1, "").await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/no-store", &[("cache-control", "max-age=60, no-store")]),
        ("/private", &[("cache-control", "max-age=60, private")]),
        (
            "/cookie",
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
        ),
        (
            "/vary-any",
            &[("cache-control", "max-age=60"), ("vary", "*")],
        ),
        ("/no-freshness", &[]),
    ];
    for (path, headers) in cases {
        harness.reply_at(path, &Reply::with(headers));
    }
    for (path, _) in cases {
        let before = harness.requests();
        for _ in 0..2 {
            let answer = harness.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}");
            assert_eq!(answer.x_cache(), "MISS", "{path}");
        }
        assert_eq!(
            harness.requests(),
            before + 2,
            "{path} went to the backend twice"
        );
    }
}

#[tokio::test]
async fn authorization_and_other_methods_bypass_the_cache() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    for _ in 0..2 {
        let answer = harness
            .send(Method::GET, "/auth", &[("authorization", "Bearer x")])
            .await;
        assert_eq!(answer.x_cache(), "MISS");
    }
    assert_eq!(harness.requests(), 2);
    assert_eq!(
        harness.get("/auth").await.x_cache(),
        "MISS",
        "nothing was stored for the authorized requests"
    );
    for _ in 0..2 {
        harness.send(Method::POST, "/post", &[]).await;
    }
    assert_eq!(harness.get("/post").await.x_cache(), "MISS");
    assert_eq!(harness.requests(), 6);
    assert_eq!(harness.metric("shardproxy_cache_passes_total").await, 2.0);
}

#[tokio::test]
async fn authorized_services_store_public_answers_to_authorized_requests() {
    let harness = Harness::start(1, "authorized = true").await;
    harness.reply_at(
        "/public",
        &Reply::with(&[("cache-control", "public, max-age=60")]),
    );
    harness.reply_at("/plain", &Reply::with(FRESH));
    let auth = [("authorization", "Bearer x")];
    harness.send(Method::GET, "/public", &auth).await;
    let again = harness.send(Method::GET, "/public", &auth).await;
    assert_eq!(again.x_cache(), "HIT");
    harness.send(Method::GET, "/plain", &auth).await;
    let again = harness.send(Method::GET, "/plain", &auth).await;
    assert_eq!(again.x_cache(), "MISS", "RFC 9111 §3.5: not public");
    assert_eq!(harness.requests(), 3);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=60"), ("vary", "Accept-Language")]),
    );
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    let first_en = harness.send(Method::GET, "/v", &en).await;
    let first_fr = harness.send(Method::GET, "/v", &fr).await;
    assert_eq!((first_en.x_cache(), first_fr.x_cache()), ("MISS", "MISS"));
    let en_again = harness.send(Method::GET, "/v", &en).await;
    let fr_again = harness.send(Method::GET, "/v", &fr).await;
    assert_eq!((en_again.x_cache(), fr_again.x_cache()), ("HIT", "HIT"));
    assert_eq!(en_again.made_by_request(), first_en.made_by_request());
    assert_eq!(fr_again.made_by_request(), first_fr.made_by_request());
    assert_ne!(en_again.made_by_request(), fr_again.made_by_request());
    let none = harness.get("/v").await;
    assert_eq!(
        none.x_cache(),
        "MISS",
        "no Accept-Language is a variant too"
    );
    assert_eq!(harness.requests(), 3);
}

#[tokio::test]
async fn a_head_is_answered_from_a_cached_get() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH).body_len(1000));
    let get = harness.get("/h").await;
    assert_eq!(get.body.len(), 1000);
    let head = harness.send(Method::HEAD, "/h", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.x_cache(), "HIT");
    assert_eq!(head.header("content-length"), Some("1000"));
    assert!(head.body.is_empty());
    assert_eq!(harness.requests(), 1);
}

#[tokio::test]
async fn default_ttl_caches_answers_without_freshness() {
    let harness = Harness::start(1, "default_ttl = \"60s\"").await;
    harness.get("/d").await;
    assert_eq!(harness.get("/d").await.x_cache(), "HIT");
    assert_eq!(harness.requests(), 1);
}

#[tokio::test]
async fn request_no_cache_revalidates_and_no_store_stores_nothing() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    harness
        .send(Method::GET, "/n", &[("cache-control", "no-store")])
        .await;
    assert_eq!(harness.get("/n").await.x_cache(), "MISS");
    assert_eq!(harness.get("/n").await.x_cache(), "HIT");
    let refetched = harness
        .send(Method::GET, "/n", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(refetched.x_cache(), "MISS");
    assert_eq!(harness.requests(), 3);
    let only = harness
        .send(
            Method::GET,
            "/absent",
            &[("cache-control", "only-if-cached")],
        )
        .await;
    assert_eq!(only.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(harness.requests(), 3);
}

#[tokio::test]
async fn the_key_is_what_the_client_sent_even_when_a_route_strips_a_prefix() {
    let routes = r#"
[[routes]]
path_prefix = "/a/"
strip_prefix = true
service = "frob"

[[routes]]
path_prefix = "/b/"
strip_prefix = true
service = "frob"
"#;
    let harness = Harness::start_routed(1, "", routes).await;
    harness.reply_at("/", &Reply::with(FRESH));
    let a = harness.get("/a/x").await;
    let b = harness.get("/b/x").await;
    assert_eq!((a.x_cache(), b.x_cache()), ("MISS", "MISS"));
    let echo = b.echo();
    assert_eq!(echo.uri, "/x", "both reached the backend as /x");
    assert_eq!(harness.get("/a/x").await.made_by_request(), 1);
    assert_eq!(harness.get("/b/x").await.made_by_request(), 2);
    let host = harness
        .send(Method::GET, "/a/x", &[("host", "Other.Example")])
        .await;
    assert_eq!(host.x_cache(), "MISS", "the host is part of the key");
    let same_host = harness
        .send(Method::GET, "/a/x", &[("host", "other.example")])
        .await;
    assert_eq!(same_host.x_cache(), "HIT", "the host in lower case");
    let other_port = harness
        .send(Method::GET, "/a/x", &[("host", "other.example:8080")])
        .await;
    assert_eq!(
        other_port.x_cache(),
        "MISS",
        "the port is part of the key: the instance saw another Host (SPEC §9.8)"
    );
}

// === Coalescing ===

/// Sends `count` concurrent `GET path`s; returns their tasks.
fn concurrent_gets(
    harness: &Arc<Harness>,
    path: &'static str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Answer>> {
    (0..count)
        .map(|_| {
            let harness = Arc::clone(harness);
            tokio::spawn(async move { harness.get(path).await })
        })
        .collect()
}

/// `count` concurrent GETs of `path` while the backend holds its answers,
/// released once all but one wait for the first's fetch (and that one is
/// the backend's only request in flight): the answers.
async fn coalesced_gets(harness: &Arc<Harness>, path: &'static str, count: usize) -> Vec<Answer> {
    harness.backends[0].hold();
    let tasks = concurrent_gets(harness, path, count);
    let waiting = Arc::clone(harness);
    let coalesced = (count - 1) as f64;
    support::wait_until("all but one wait for the first", move || {
        let harness = Arc::clone(&waiting);
        async move { harness.metric("shardproxy_cache_coalesced_total").await == coalesced }
    })
    .await;
    assert_eq!(harness.backends[0].in_flight(), 1);
    harness.backends[0].release();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn concurrent_cold_gets_make_one_backend_request() {
    let harness = Arc::new(Harness::start(1, "").await);
    harness.reply_at("/", &Reply::with(FRESH));
    let mut outcomes = Vec::new();
    for answer in coalesced_gets(&harness, "/cold", 100).await {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.made_by_request(), 1);
        outcomes.push(answer.x_cache().to_owned());
    }
    assert_eq!(harness.requests(), 1);
    assert_eq!(outcomes.iter().filter(|o| *o == "MISS").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| *o == "HIT").count(), 99);
}

#[tokio::test]
async fn a_failed_fetch_wakes_the_waiters_to_try_themselves() {
    let harness = Arc::new(Harness::start(1, "").await);
    harness.reply_at(
        "/",
        &Reply {
            status: 500,
            ..Reply::default()
        },
    );
    harness.backends[0].hold();
    let tasks = concurrent_gets(&harness, "/fails", 10);
    let waiting = Arc::clone(&harness);
    support::wait_until("9 requests wait for the first", move || {
        let harness = Arc::clone(&waiting);
        async move { harness.metric("shardproxy_cache_coalesced_total").await == 9.0 }
    })
    .await;
    harness.backends[0].release();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(harness.requests(), 10, "each waiter tried for itself");
}

#[tokio::test]
async fn after_an_uncacheable_answer_requests_go_side_by_side() {
    let harness = Arc::new(Harness::start(1, "").await);
    harness.reply_at("/", &Reply::with(&[("cache-control", "private")]));
    harness.get("/private").await;
    harness.backends[0].hold();
    let tasks = concurrent_gets(&harness, "/private", 5);
    support::wait_until("all five reach the backend at once", || async {
        harness.backends[0].in_flight() == 5
    })
    .await;
    harness.backends[0].release();
    for task in tasks {
        assert_eq!(task.await.unwrap().x_cache(), "MISS");
    }
    assert_eq!(
        harness.metric("shardproxy_cache_coalesced_total").await,
        0.0
    );
}

// === Stale objects ===

#[tokio::test]
async fn a_stale_object_is_served_when_every_instance_of_its_key_fails() {
    let harness = Harness::start(2, "").await;
    harness.reply_at(
        "/sie",
        &Reply::with(&[("cache-control", "max-age=0, stale-if-error=60")]),
    );
    harness.reply_at(
        "/strict",
        &Reply::with(&[("cache-control", "max-age=0"), ("etag", "\"s\"")]),
    );
    let stored = harness.get("/sie").await;
    assert_eq!(stored.x_cache(), "MISS");
    harness.get("/strict").await;
    for backend in &harness.backends {
        backend.stop().await;
    }
    let stale = harness.get("/sie").await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.x_cache(), "STALE");
    assert_eq!(stale.body, stored.body);
    let failed = harness.get("/strict").await;
    assert_eq!(
        failed.status,
        StatusCode::BAD_GATEWAY,
        "no stale-if-error, no grace"
    );
    assert_eq!(harness.metric("shardproxy_cache_stale_total").await, 1.0);
}

/// Freshness and the stale windows run on the proxy's clock: an object is a
/// hit until its `max-age` is up, then fetched again; past its `max-age` it
/// is served stale while its instance fails, for its `stale-if-error`
/// seconds and not after. The seconds pass by [`support::skip`] between
/// requests sent one after another; each skip is shorter than the 30 s a
/// kept-alive client connection may idle.
#[tokio::test]
async fn max_age_and_stale_if_error_are_counted_in_seconds() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=20, stale-if-error=20")]),
    );
    assert_eq!(harness.get("/t").await.x_cache(), "MISS");

    support::skip(Duration::from_secs(15)).await;
    let hit = harness.get("/t").await;
    assert_eq!(hit.x_cache(), "HIT");
    let age = hit.header("age").and_then(|age| age.parse::<u64>().ok());
    assert!(
        age.is_some_and(|age| (15..20).contains(&age)),
        "Age {age:?}"
    );
    assert_eq!(harness.requests(), 1);

    support::skip(Duration::from_secs(6)).await;
    let refetched = harness.get("/t").await;
    assert_eq!(refetched.x_cache(), "MISS", "21 s old: max-age=20 is up");
    assert_eq!((refetched.made_by_request(), harness.requests()), (2, 2));

    // The refetched object, 21 s old: stale, within stale-if-error.
    support::skip(Duration::from_secs(21)).await;
    harness.backends[0].stop().await;
    let stale = harness.get("/t").await;
    assert_eq!((stale.status, stale.x_cache()), (StatusCode::OK, "STALE"));
    assert_eq!(stale.made_by_request(), 2);

    // 41 s old: past stale-if-error too.
    support::skip(Duration::from_secs(20)).await;
    let failed = harness.get("/t").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text());
}

#[tokio::test]
async fn within_grace_a_stale_object_is_served_while_one_request_refreshes_it() {
    let harness = Harness::start(1, "grace = \"60s\"").await;
    harness.reply_at("/", &Reply::with(&[("cache-control", "max-age=0")]));
    let first = harness.get("/g").await;
    assert_eq!((first.x_cache(), first.made_by_request()), ("MISS", 1));
    harness.backends[0].hold();
    for _ in 0..5 {
        let stale = harness.get("/g").await;
        assert_eq!(
            stale.x_cache(),
            "STALE",
            "served at once, the backend is held"
        );
        assert_eq!(stale.made_by_request(), 1);
    }
    support::wait_until("the refresh reaches the backend", || async {
        harness.backends[0].in_flight() == 1
    })
    .await;
    assert_eq!(
        harness.requests(),
        2,
        "one background refresh for five stale hits"
    );
    harness.backends[0].release();
    support::wait_until("the refreshed object is served", || async {
        harness.get("/g").await.made_by_request() == 2
    })
    .await;
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=0, stale-while-revalidate=60")]),
    );
    assert_eq!(harness.get("/swr").await.x_cache(), "MISS");
    let stale = harness.get("/swr").await;
    assert_eq!((stale.x_cache(), stale.made_by_request()), ("STALE", 1));
    support::wait_until("the background refresh is stored", || async {
        let answer = harness.get("/swr").await;
        answer.x_cache() == "STALE" && answer.made_by_request() >= 2
    })
    .await;
}

// === Revalidation ===

#[tokio::test]
async fn a_304_from_the_backend_refreshes_the_stored_object() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=0"), ("etag", "\"v1\"")]),
    );
    let first = harness.get("/r").await;
    assert_eq!(first.x_cache(), "MISS");
    let revalidated = harness.get("/r").await;
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.body, first.body, "the stored body, validated");
    assert_eq!(harness.backends[0].not_modified(), 1);
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]),
    );
    let refreshed = harness.get("/r").await;
    assert_eq!(refreshed.header("cache-control"), Some("max-age=60"));
    assert_eq!(harness.backends[0].not_modified(), 2);
    let hit = harness.get("/r").await;
    assert_eq!(hit.x_cache(), "HIT", "the 304's max-age=60 was stored");
    assert_eq!(hit.body, first.body);
    assert_eq!(harness.requests(), 3);
}

/// `Age` as RFC 9111 §5.1 reads it (SPEC §13): the first member of a list,
/// on one line or several; a value that is not a non-negative integer is
/// ignored; values past 2^31 are capped there. Each case is fresh for an
/// hour, so the second request is a hit exactly when the `Age` that
/// counts is under an hour.
#[tokio::test]
async fn age_counts_by_its_first_member_and_an_invalid_one_is_ignored() {
    let harness = Harness::start(1, "").await;
    let cases: &[(&str, &[&str], &str)] = &[
        ("list-old-first", &["7200, 0"], "MISS"),
        ("list-young-first", &["0, 7200"], "HIT"),
        ("lines-old-first", &["7200", "0"], "MISS"),
        ("lines-young-first", &["0", "7200"], "HIT"),
        ("non-numeric", &["abc"], "HIT"),
        ("negative", &["-7200"], "HIT"),
        ("float", &["7200.5"], "HIT"),
        ("parameter", &["7200;foo=bar"], "HIT"),
        ("past-2-31", &["99999999999999999999"], "MISS"),
    ];
    for (name, ages, second) in cases {
        let mut headers = vec![("cache-control", "max-age=3600")];
        headers.extend(ages.iter().map(|age| ("age", *age)));
        harness.reply_at(&format!("/{name}"), &Reply::with(&headers));
        let path = format!("/{name}/x");
        let first = harness.get(&path).await;
        assert_eq!(first.x_cache(), "MISS", "{name}");
        let again = harness.get(&path).await;
        assert_eq!(again.x_cache(), *second, "{name}: Age {ages:?}");
        if *second == "HIT" {
            let age: u64 = again.header("age").unwrap().parse().unwrap();
            assert!(age < 3600, "{name}: served with Age {age}");
        }
    }
}

/// RFC 9213: the first targeted field of `cache.targeted` a response
/// carries replaces `Cache-Control` and `Expires` for this cache, while
/// clients get `Cache-Control` unchanged; an invalid one is ignored.
#[tokio::test]
async fn targeted_cache_control_fields_speak_to_this_cache_in_their_order() {
    let harness = Harness::start(
        1,
        "targeted = [\"Acme-Cache-Control\", \"CDN-Cache-Control\"]",
    )
    .await;
    /// A case: its name, the response's headers, the second request's
    /// `x-cache`.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            "cdn-fresh-cc-no-store",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
            "HIT",
        ),
        (
            "cdn-no-store-cc-fresh",
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store"),
            ],
            "MISS",
        ),
        (
            "cdn-private-cc-fresh",
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "private"),
            ],
            "MISS",
        ),
        (
            "acme-first",
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=600"),
                ("acme-cache-control", "no-store"),
            ],
            "MISS",
        ),
        (
            "acme-invalid",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
                ("acme-cache-control", "max-age=\"600\""),
            ],
            "HIT",
        ),
        (
            "cdn-max-age-0",
            &[("cdn-cache-control", "max-age=0")],
            "MISS",
        ),
        (
            "cdn-max-age-age",
            &[("cdn-cache-control", "max-age=3600"), ("age", "7200")],
            "MISS",
        ),
        (
            "cdn-no-cache",
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-cache"),
            ],
            "MISS",
        ),
        (
            "cdn-extension-and-large",
            &[("cdn-cache-control", "foobar, max-age=99999999999")],
            "HIT",
        ),
        (
            "cdn-invalid",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600, &&&"),
            ],
            "MISS",
        ),
    ];
    for (name, headers, second) in cases {
        harness.reply_at(&format!("/{name}"), &Reply::with(headers));
        let path = format!("/{name}/x");
        let first = harness.get(&path).await;
        assert_eq!(first.x_cache(), "MISS", "{name}");
        let cache_control = headers
            .iter()
            .find(|(header, _)| *header == "cache-control");
        assert_eq!(
            first.header("cache-control"),
            cache_control.map(|(_, value)| *value),
            "{name}: Cache-Control reaches the client as it came"
        );
        assert_eq!(harness.get(&path).await.x_cache(), *second, "{name}");
    }
}

#[tokio::test]
async fn surrogate_control_for_this_cache_replaces_cache_control() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=60;shardproxy"),
        ]),
    );
    let first = harness.get("/s").await;
    assert_eq!(first.x_cache(), "MISS");
    let echo = first.echo();
    assert_eq!(
        echo.header("surrogate-capability"),
        Some("shardproxy=\"Surrogate/1.0\""),
        "the cache says which name addresses it"
    );
    let hit = harness.get("/s").await;
    assert_eq!(hit.x_cache(), "HIT", "no-store is for the browsers");
    assert_eq!(
        hit.header("surrogate-control"),
        Some("max-age=60;shardproxy"),
        "forwarded as it came"
    );
    harness.reply_at(
        "/other",
        &Reply::with(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=60;another-cdn"),
        ]),
    );
    harness.get("/other/s").await;
    let again = harness.get("/other/s").await;
    assert_eq!(
        again.x_cache(),
        "MISS",
        "addressed elsewhere: no-store holds"
    );
    assert_eq!(harness.requests(), 3);
}

#[tokio::test]
async fn a_no_cache_response_is_validated_before_each_use() {
    let harness = Harness::start(1, "grace = \"60s\"").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=60, no-cache"), ("etag", "\"n\"")]),
    );
    let first = harness.get("/nc").await;
    for round in 1..=2 {
        let again = harness.get("/nc").await;
        assert_eq!(again.x_cache(), "MISS", "validated, not a hit or stale");
        assert_eq!(again.body, first.body);
        assert_eq!(harness.backends[0].not_modified(), round);
    }
}

#[tokio::test]
async fn a_no_cache_response_without_freshness_is_stored_to_be_validated() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "no-cache"), ("etag", "\"abcd\"")]),
    );
    let first = harness.get("/ncv").await;
    let again = harness.get("/ncv").await;
    assert_eq!(again.x_cache(), "MISS", "validated, not a hit");
    assert_eq!(
        harness.backends[0].not_modified(),
        1,
        "a conditional request"
    );
    assert_eq!(again.body, first.body, "the stored body");
}

#[tokio::test]
async fn a_client_if_none_match_gets_304_from_the_cache() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]),
    );
    let cold = harness
        .send(Method::GET, "/c", &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!(
        cold.status,
        StatusCode::NOT_MODIFIED,
        "a miss, stored, then 304"
    );
    let whole = harness.get("/c").await;
    assert_eq!((whole.status, whole.x_cache()), (StatusCode::OK, "HIT"));
    assert!(!whole.body.is_empty());
    let hit = harness
        .send(Method::GET, "/c", &[("if-none-match", "W/\"v0\", \"v1\"")])
        .await;
    assert_eq!(
        (hit.status, hit.x_cache()),
        (StatusCode::NOT_MODIFIED, "HIT")
    );
    assert_eq!(hit.header("etag"), Some("\"v1\""));
    assert!(hit.body.is_empty());
    let other = harness
        .send(Method::GET, "/c", &[("if-none-match", "\"v2\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(harness.requests(), 1);
}

// === Memory ===

#[tokio::test]
async fn objects_over_max_object_size_pass_through_whole_and_are_not_stored() {
    let harness = Harness::start(1, "max_object_size = \"1KiB\"").await;
    harness.reply_at("/", &Reply::with(FRESH).body_len(5000));
    for _ in 0..2 {
        let answer = harness.get("/big").await;
        assert_eq!(answer.body.len(), 5000);
        assert_eq!(answer.x_cache(), "MISS");
    }
    assert_eq!(harness.requests(), 2);
    assert_eq!(harness.metric("shardproxy_cache_objects").await, 0.0);
}

#[tokio::test]
async fn the_store_stays_under_max_size_while_ten_times_that_passes_through() {
    let harness = Harness::start(1, "max_size = \"64KiB\"\nmax_object_size = \"8KiB\"").await;
    harness.reply_at("/", &Reply::with(FRESH).body_len(4000));
    let mut through = 0;
    for index in 0..170 {
        let answer = harness.get(&format!("/m/{index}")).await;
        through += answer.body.len();
        let stored = harness.metric("shardproxy_cache_stored_bytes").await;
        assert!(
            stored <= 65536.0,
            "{stored} bytes stored after {index} objects"
        );
    }
    assert!(through >= 10 * 65536, "{through} bytes passed through");
    let objects = harness.metric("shardproxy_cache_objects").await;
    assert!(objects > 0.0 && objects < 17.0, "{objects} objects stored");
    assert!(harness.metric("shardproxy_cache_evictions_total").await > 0.0);
}

// === Invalidation ===

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_target_and_location() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    harness.reply_at("/create", &Reply::with(&[("location", "/u2")]));
    for path in ["/u1", "/u2"] {
        harness.get(path).await;
        assert_eq!(harness.get(path).await.x_cache(), "HIT");
    }
    harness.send(Method::POST, "/u1", &[]).await;
    assert_eq!(harness.get("/u1").await.x_cache(), "MISS");
    assert_eq!(harness.get("/u2").await.x_cache(), "HIT");
    harness.send(Method::PUT, "/create", &[]).await;
    assert_eq!(harness.get("/u2").await.x_cache(), "MISS", "Location");
}

// === Purge ===

#[tokio::test]
async fn purge_by_path_and_by_prefix_through_the_admin_api() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    harness.reply_at(
        "/p/v",
        &Reply::with(&[("cache-control", "max-age=60"), ("vary", "accept")]),
    );
    for path in ["/p/a", "/p/b?x=1", "/q/c"] {
        harness.get(path).await;
    }
    harness.send(Method::GET, "/p/v", &[("accept", "a")]).await;
    harness.send(Method::GET, "/p/v", &[("accept", "b")]).await;
    assert_eq!(harness.metric("shardproxy_cache_objects").await, 5.0);

    let purged = harness
        .admin(Method::POST, "/cache/purge?service=frob&path=/p/a")
        .await;
    assert_eq!(purged.status, StatusCode::OK);
    let purged: serde_json::Value = serde_json::from_slice(&purged.body).unwrap();
    assert_eq!(purged, serde_json::json!({"service": "frob", "purged": 1}));
    assert_eq!(harness.get("/p/a").await.x_cache(), "MISS");
    assert_eq!(harness.get("/p/b?x=1").await.x_cache(), "HIT");

    let purged = harness
        .admin(Method::POST, "/cache/purge?service=frob&prefix=/p/")
        .await;
    let purged: serde_json::Value = serde_json::from_slice(&purged.body).unwrap();
    assert_eq!(
        purged["purged"], 4,
        "/p/a again, /p/b?x=1 and both variants"
    );
    assert_eq!(harness.get("/p/b?x=1").await.x_cache(), "MISS");
    assert_eq!(
        harness
            .send(Method::GET, "/p/v", &[("accept", "a")])
            .await
            .x_cache(),
        "MISS"
    );
    assert_eq!(harness.get("/q/c").await.x_cache(), "HIT");

    let unknown = harness
        .admin(Method::POST, "/cache/purge?service=nope&path=/")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let error: serde_json::Value = serde_json::from_slice(&unknown.body).unwrap();
    assert!(error["error"].as_str().unwrap().starts_with("no service"));
}

// === Reload ===

/// The JSON answer of an admin purge.
async fn purge(harness: &Harness, query: &str) -> serde_json::Value {
    let answer = harness
        .admin(Method::POST, &format!("/cache/purge?service=frob&{query}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.text());
    serde_json::from_slice(&answer.body).unwrap()
}

/// SPEC §13: `Surrogate-Key` tags objects (every variant, any host), is
/// not shown to clients, and `tag=T` purges exactly the objects tagged `T`.
#[tokio::test]
async fn purge_by_tag_removes_every_object_tagged_and_nothing_else() {
    let harness = Harness::start(1, "").await;
    let tagged = |tags: &str| {
        Reply::with(&[
            ("cache-control", "max-age=600"),
            ("surrogate-key", tags),
            ("vary", "accept"),
        ])
    };
    harness.reply_at("/a", &tagged("product-42 home"));
    harness.reply_at("/b", &tagged("product-7 home"));
    harness.reply_at("/c", &Reply::with(FRESH));
    let first = harness.send(Method::GET, "/a", &[("accept", "x")]).await;
    assert_eq!(first.header("surrogate-key"), None, "tags are the cache's");
    harness.send(Method::GET, "/a", &[("accept", "y")]).await;
    let other_host = [("host", "other.example"), ("accept", "x")];
    harness.send(Method::GET, "/a", &other_host).await;
    harness.send(Method::GET, "/b", &[("accept", "x")]).await;
    harness.get("/c").await;
    assert_eq!(harness.metric("shardproxy_cache_objects").await, 5.0);

    assert_eq!(
        purge(&harness, "tag=product-42").await,
        serde_json::json!({"service": "frob", "purged": 3})
    );
    for headers in [&[("accept", "x")][..], &[("accept", "y")], &other_host] {
        let again = harness.send(Method::GET, "/a", headers).await;
        assert_eq!(again.x_cache(), "MISS", "{headers:?}");
    }
    let b = harness.send(Method::GET, "/b", &[("accept", "x")]).await;
    assert_eq!(b.x_cache(), "HIT");
    assert_eq!(harness.get("/c").await.x_cache(), "HIT");
    assert_eq!(
        purge(&harness, "tag=product-42").await["purged"],
        3,
        "stored again"
    );
    assert_eq!(purge(&harness, "tag=nothing").await["purged"], 0);
    assert_eq!(
        purge(&harness, "tag=home&host=other.example").await["purged"],
        0,
        "the other host's copy is already gone"
    );
    assert_eq!(purge(&harness, "tag=home").await["purged"], 1, "/b");

    for bad in ["tag=home&path=/a", "tag=home&soft=yes"] {
        let answer = harness
            .admin(Method::POST, &format!("/cache/purge?service=frob&{bad}"))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// A `304` refreshes an object without losing its tags.
#[tokio::test]
async fn a_revalidated_object_keeps_its_tags() {
    let harness = Harness::start(1, "").await;
    harness.reply_at(
        "/",
        &Reply::with(&[
            ("cache-control", "max-age=0"),
            ("etag", "\"r1\""),
            ("surrogate-key", "kept"),
        ]),
    );
    assert_eq!(harness.get("/r").await.x_cache(), "MISS");
    let again = harness.get("/r").await;
    assert_eq!(harness.backends[0].not_modified(), 1, "revalidated");
    assert_eq!(again.header("surrogate-key"), None);
    assert_eq!(purge(&harness, "tag=kept").await["purged"], 1);
}

#[tokio::test]
async fn expose_tags_shows_the_tag_header_to_clients() {
    let harness = Harness::start(1, "tag_header = \"X-Tags\"\nexpose_tags = true").await;
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=600"), ("x-tags", "t1 t2")]),
    );
    assert_eq!(harness.get("/e").await.header("x-tags"), Some("t1 t2"));
    assert_eq!(harness.get("/e").await.header("x-tags"), Some("t1 t2"));
    assert_eq!(purge(&harness, "tag=t2").await["purged"], 1);
}

/// SPEC §13: a soft purge marks the object stale; with 50 clients waiting,
/// one conditional request refetches it and the others are answered from
/// its result.
#[tokio::test]
async fn a_soft_purge_makes_one_revalidation_however_many_clients_wait() {
    let harness = Arc::new(Harness::start(1, "").await);
    harness.reply_at(
        "/",
        &Reply::with(&[("cache-control", "max-age=3600"), ("etag", "\"v1\"")]),
    );
    assert_eq!(harness.get("/soft").await.x_cache(), "MISS");
    assert_eq!(harness.get("/soft").await.x_cache(), "HIT");
    assert_eq!(purge(&harness, "path=/soft&soft=true").await["purged"], 1);
    assert_eq!(
        harness.metric("shardproxy_cache_objects").await,
        1.0,
        "still stored"
    );

    for answer in coalesced_gets(&harness, "/soft", 50).await {
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(harness.requests(), 2, "one refetch for 50 clients");
    assert_eq!(harness.backends[0].not_modified(), 1, "a conditional one");
    assert_eq!(harness.get("/soft").await.x_cache(), "HIT", "fresh again");
}

/// Within grace, a soft-purged object is served stale at once while one
/// background request refreshes it; a hard purge would send the client to
/// the instance.
#[tokio::test]
async fn a_soft_purged_object_is_served_stale_within_grace() {
    let harness = Harness::start(1, "grace = \"60s\"").await;
    harness.reply_at("/", &Reply::with(&[("cache-control", "max-age=3600")]));
    harness.get("/g").await;
    assert_eq!(purge(&harness, "prefix=/g&soft=true").await["purged"], 1);
    let stale = harness.get("/g").await;
    assert_eq!(stale.x_cache(), "STALE");
    assert_eq!(stale.made_by_request(), 1);
    support::wait_until("the background refresh", || async {
        harness.requests() == 2
    })
    .await;
    support::wait_until("the refreshed object is served", || async {
        let answer = harness.get("/g").await;
        answer.x_cache() == "HIT" && answer.made_by_request() == 2
    })
    .await;
}

#[tokio::test]
async fn a_reload_keeps_the_store_unless_the_cache_settings_change() {
    let harness = Harness::start(1, "").await;
    harness.reply_at("/", &Reply::with(FRESH));
    harness.get("/kept").await;
    let proxy = &harness.proxy;
    let reload = |config: String| async move {
        let config = Config::from_toml(&config, "cache.toml").unwrap();
        proxy.reload(config).await.expect("the reload succeeds");
    };
    reload(
        harness
            .config
            .replace("slaves = 0", "slaves = 0\nretry_budget = 0.5"),
    )
    .await;
    assert_eq!(harness.get("/kept").await.x_cache(), "HIT");
    reload(
        harness
            .config
            .replace("enabled = true", "enabled = true\nmax_ttl = \"1h\""),
    )
    .await;
    assert_eq!(harness.get("/kept").await.x_cache(), "MISS", "a new store");
    assert_eq!(harness.requests(), 2);
}

// === Access log ===

#[tokio::test]
async fn the_access_log_says_what_the_cache_did() {
    let log = support::access_log::AccessLogFile::new("cache");
    let routes = format!("[[routes]]\nservice = \"frob\"\n\n{}", log.config("info"));
    let harness = Harness::start_routed(1, "", &routes).await;
    harness.reply_at("/", &Reply::with(FRESH));
    harness.get("/logged").await;
    harness.get("/logged").await;
    harness
        .send(Method::GET, "/logged", &[("authorization", "Basic x")])
        .await;
    let results: Vec<serde_json::Value> = log
        .wait_for(3)
        .await
        .into_iter()
        .map(|line| line["cache"].clone())
        .collect();
    assert_eq!(results, ["MISS", "HIT", "PASS"]);
}
