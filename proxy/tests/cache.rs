//! The response cache end to end (SPEC §6, issue 4): real backends that
//! count their requests and answer with the caching headers each test
//! sets (`support::backend::Reply`), a proxy started with `app::start`
//! whose service lists them statically, and a hyper client.
//!
//! Each test asserts what the backends saw (how many requests, how many
//! `304`s) and what the client got (`x-cache`, `Age`, bodies). Times that
//! must pass are made zero instead (`max-age=0` with a stale window or a
//! validator): no test sleeps, and waits poll a condition with a bound.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shardproxy::app::{self, Running};
use shardproxy::config::Config;
use support::backend::{Backend, Reply};

/// How long any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Backends `b1`, ... behind a proxy whose service `frob` has a cache.
struct Harness {
    backends: Vec<Backend>,
    proxy: Running,
    client: HttpClient,
}

/// A whole answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap_or("(not text)"))
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache")
    }

    /// The backend's request number that made this answer.
    fn made_by_request(&self) -> u64 {
        self.header("x-request-number").parse().unwrap_or(0)
    }
}

impl Harness {
    /// `count` backends (each a replica of the other's keys when there
    /// are two), and `cache` as the lines of `[services.frob.cache]`
    /// besides `enabled = true`.
    async fn start(count: usize, cache: &str) -> Harness {
        let mut backends = Vec::new();
        for index in 0..count {
            backends.push(Backend::start(&format!("b{}", index + 1)).await);
        }
        let instances: Vec<String> = backends
            .iter()
            .enumerate()
            .map(|(index, backend)| {
                format!(
                    "    {{ host = \"{}.example.com\", addr = \"{}\", tokens = [\"{:x}0\"] }},",
                    backend.name(),
                    backend.addr(),
                    4 * (index + 1)
                )
            })
            .collect();
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[dns]
servers = ["127.0.0.1:53"]

[services.frob]
instances = [
{}
]
slaves = {}

[services.frob.cache]
enabled = true
{cache}

[[routes]]
path_prefix = "/"
service = "frob"
"#,
            instances.join("\n"),
            count - 1
        );
        let parsed =
            Config::from_toml(&config, "cache.toml").unwrap_or_else(|error| panic!("{error}"));
        let proxy = app::start(parsed).await.expect("the proxy starts");
        let app = proxy.app();
        support::wait_until_within(WAIT, "the proxy is ready", || {
            let app = Arc::clone(&app);
            async move { app.discovery.ready() }
        })
        .await;
        Harness {
            backends,
            proxy,
            client: Client::builder(TokioExecutor::new()).build_http(),
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
        send(&self.client, self.proxy.listen, method, path, headers).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[]).await
    }

    /// An admin answer.
    async fn admin(&self, method: Method, path: &str) -> Answer {
        send(&self.client, self.proxy.admin, method, path, &[]).await
    }

    /// The value of metric `name` for service `frob`.
    async fn metric(&self, name: &str) -> f64 {
        let text = self.admin(Method::GET, "/metrics").await;
        let text = String::from_utf8_lossy(&text.body).into_owned();
        let prefix = format!("{name}{{service=\"frob\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .unwrap_or_else(|error| panic!("{name}: {error}"))
    }
}

/// `method http://{to}{path}` with `headers`, whole.
async fn send(
    client: &HttpClient,
    to: std::net::SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let what = format!("{method} http://{to}{path}");
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{to}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::default()).expect("a valid request");
    tokio::time::timeout(WAIT, async {
        let response = client
            .request(request)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
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
    assert_eq!(first.header("age"), "0");
    let second = harness.get("/a?x=1").await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body, "the stored body");
    assert!(second.header("age").parse::<u64>().is_ok());
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
    assert_eq!(head.header("content-length"), "1000");
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
