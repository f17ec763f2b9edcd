//! Tests of the admin API through [`respond`], on an [`App`] with a static
//! ring, a DNS ring that cannot resolve, and an SRV-balanced service.

use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::metrics::tests::{parse_exposition, value};

/// `frob`: a static ring of two instances with one replica; `pending`: a
/// DNS ring whose only server drops every query, so it has no ring for the
/// life of a test; `web`: `balance = "srv"`, equally without records.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[dns]
servers = ["192.0.2.1:53"]

[services.frob]
instances = [
    { host = "a.example", addr = "127.0.0.1:9", tokens = ["40"] },
    { host = "b.example", addr = "127.0.0.1:10", tokens = ["c0"] },
]
slaves = 1

[services.pending]
srv = "_pending._http.example.invalid"

[services.web]
srv = "_web._http.example.invalid"
balance = "srv"

[[routes]]
service = "frob"
"#;

/// Only `frob`.
const READY_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[services.frob]
instances = [{ host = "a.example", addr = "127.0.0.1:9", tokens = ["40"] }]

[[routes]]
service = "frob"
"#;

fn app(config: &str) -> App {
    App::new(Config::from_toml(config, "test.toml").unwrap()).unwrap()
}

/// The status, headers and body of `method uri`.
async fn call(app: &App, method: Method, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    let response = respond(app, &method, &uri.parse().unwrap());
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get(app: &App, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    call(app, Method::GET, uri).await
}

/// A JSON answer's status and value, checking its content type.
async fn get_json(app: &App, uri: &str) -> (StatusCode, Value) {
    let (status, headers, body) = get(app, uri).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn healthz_answers_while_serving() {
    let app = app(CONFIG);
    let (status, headers, body) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok\n");
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = app(CONFIG);
    app.service("frob")
        .unwrap()
        .upstream
        .metrics
        .request(200, std::time::Duration::from_millis(2));
    let (status, headers, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4");
    let samples = parse_exposition(&body).unwrap();
    let requests = [("service", "frob"), ("status", "200")];
    assert_eq!(
        value(&samples, "shardproxy_requests_total", &requests),
        Some(1.0)
    );
    let frob = [("service", "frob")];
    assert_eq!(
        value(&samples, "shardproxy_ring_instances", &frob),
        Some(2.0)
    );
    assert_eq!(value(&samples, "shardproxy_ring_tokens", &frob), Some(2.0));
    let pending = [("service", "pending")];
    assert_eq!(
        value(&samples, "shardproxy_ring_instances", &pending),
        Some(0.0)
    );
}

#[tokio::test]
async fn readyz_names_the_services_without_a_ring() {
    let app = app(CONFIG);
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "not ready: not every service has a ring with instances yet"
    );
    assert!(lines[1].starts_with("pending: no ring yet"), "{body}");
    assert!(lines[2].starts_with("web: no ring yet"), "{body}");
    assert_eq!(lines.len(), 3, "{body}");

    let ready = self::app(READY_CONFIG);
    let (status, _, body) = get(&ready, "/readyz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
}

#[tokio::test]
async fn ring_shows_every_service_in_order() {
    let app = app(CONFIG);
    let (status, ring) = get_json(&app, "/ring").await;
    assert_eq!(status, StatusCode::OK);
    let services = ring["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|service| service["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["frob", "pending", "web"]);
    let frob = &services[0];
    assert_eq!(frob["source"], "static");
    assert_eq!(frob["settings"]["slaves"], 1);
    assert_eq!(frob["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(frob["instances"][0]["host"], "a.example");
    assert_eq!(
        frob["instances"][0]["tokens"],
        json!(["40000000000000000000000000000000"])
    );
    assert_eq!(frob["instances"][1]["addr"], "127.0.0.1:10");
    assert!(frob.get("ranges").is_none(), "no ranges at /ring");
    assert!(frob["discovered_at"].as_f64().is_some());
    assert_eq!(services[1]["source"], "_pending._http.example.invalid");
    assert_eq!(services[1]["instances"], json!([]));
    assert_eq!(services[1]["fingerprint"], Value::Null);
}

#[tokio::test]
async fn lookup_answers_the_preference_list() {
    let app = app(CONFIG);
    // `hello` hashes to b5e9…, owned by the token c0 (b.example); a.example
    // is the replica.
    let (status, answer) = get_json(&app, "/ring/lookup?service=frob&key=hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({
            "service": "frob",
            "key": "hello",
            "hash": "b5e9c1ad071b3e7fc779cfaa5e523818",
            "instances": [
                {"host": "b.example", "port": 10, "addr": "127.0.0.1:10"},
                {"host": "a.example", "port": 9, "addr": "127.0.0.1:9"},
            ],
        })
    );
    // The key is form-decoded; parameters come in any order.
    let (status, answer) = get_json(&app, "/ring/lookup?key=h%65llo+w&service=frob").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["key"], "hello w");
    let (_, plain) = get_json(&app, "/ring/lookup?service=frob&key=hello%20w").await;
    assert_eq!(plain["hash"], answer["hash"]);
}

#[tokio::test]
async fn lookup_says_what_is_wrong() {
    let app = app(CONFIG);
    let cases = [
        (
            "/ring/lookup",
            StatusCode::BAD_REQUEST,
            "missing query parameters \"service\" and \"key\": use /ring/lookup?service=NAME&key=KEY",
        ),
        (
            "/ring/lookup?key=k",
            StatusCode::BAD_REQUEST,
            "missing query parameter \"service\": use /ring/lookup?service=NAME&key=KEY",
        ),
        (
            "/ring/lookup?service=frob",
            StatusCode::BAD_REQUEST,
            "missing query parameter \"key\": use /ring/lookup?service=NAME&key=KEY",
        ),
        (
            "/ring/lookup?service=nope&key=k",
            StatusCode::NOT_FOUND,
            "no service \"nope\": the services are \"frob\", \"pending\", \"web\"",
        ),
        (
            "/ring/lookup?service=frob&key=%FF",
            StatusCode::BAD_REQUEST,
            "the key \"\u{fffd}\" is not UTF-8 once decoded, and the answer shows it as a JSON \
             string; look it up with `shardproxy ring lookup` instead",
        ),
        (
            "/ring/lookup?service=web&key=k",
            StatusCode::BAD_REQUEST,
            "service \"web\" has balance = \"srv\": it has no ring, so keys have no preference list",
        ),
    ];
    for (uri, expected_status, message) in cases {
        let (status, answer) = get_json(&app, uri).await;
        assert_eq!(status, expected_status, "{uri}");
        assert_eq!(answer, json!({ "error": message }), "{uri}");
    }
    let (status, answer) = get_json(&app, "/ring/lookup?service=pending&key=k").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.starts_with("service \"pending\" has no ring yet"),
        "{message}"
    );
}

#[test]
fn lookup_on_a_ring_that_is_not_there() {
    let ring = ServiceRing::new("pending");
    ring.reject(crate::discovery::DiscoveryError::NoInstances {
        name: "_pending._http.example.com".to_owned(),
        reason: "NXDOMAIN",
    });
    let response = lookup_on("pending", Balance::Ring, &ring, "k");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        not_ready(&ring).unwrap(),
        "no ring yet (last refresh failed: SRV _pending._http.example.com has no records \
         (NXDOMAIN): a ring needs at least one instance)"
    );
}

#[tokio::test]
async fn other_methods_and_paths() {
    let app = app(CONFIG);
    for path in ["/metrics", "/healthz", "/readyz", "/ring", "/ring/lookup"] {
        let (status, headers, body) = call(&app, Method::POST, path).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(headers[header::ALLOW], "GET, HEAD");
        assert_eq!(
            body,
            format!("method POST is not allowed on {path}: use GET or HEAD\n")
        );
    }
    let (status, headers, body) = get(&app, "/cache/purge").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(
        body,
        "method GET is not allowed on /cache/purge: use POST\n"
    );
    for path in ["/", "/ring/", "/metrics/x", "/ringlookup", "/cache"] {
        let (status, _, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            body.starts_with(&format!("no admin endpoint at {path}:")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let app = app(CONFIG);
    let (status, headers, body) = call(&app, Method::HEAD, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "");
    assert_eq!(headers[header::CONTENT_LENGTH], "3");
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    let (status, headers, body) = call(&app, Method::HEAD, "/ring/lookup?service=nope&key=k").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn purge_says_what_is_wrong() {
    let app = app(CONFIG);
    let purge = |uri: &'static str| {
        let app = &app;
        async move {
            let (status, headers, body) = call(app, Method::POST, uri).await;
            assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
            let body: Value = serde_json::from_str(&body).unwrap();
            (status, body["error"].as_str().unwrap().to_owned())
        }
    };
    let (status, error) = purge("/cache/purge?service=nope&path=/a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error.starts_with("no service \"nope\": the services are"),
        "{error}"
    );
    let (status, error) = purge("/cache/purge?path=/a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error.starts_with("missing query parameter \"service\""),
        "{error}"
    );
    let (status, error) = purge("/cache/purge?service=frob&path=/a&prefix=/").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.starts_with("give exactly one of"), "{error}");
    let (status, error) = purge("/cache/purge?service=frob&prefix=/").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        "service \"frob\" has no cache (cache.enabled = false)"
    );
}

#[test]
fn state_changes_come_from_programs_on_the_admin_side_only() {
    let loopback: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    let everywhere: SocketAddr = "0.0.0.0:9090".parse().unwrap();
    let with = |pairs: &[(&str, &str)]| crate::headers::map_of(pairs);
    for host in ["127.0.0.1:9090", "localhost:9090", "LOCALHOST", "127.0.0.1"] {
        assert!(
            same_machine(&with(&[("host", host)]), loopback).is_ok(),
            "{host}"
        );
    }
    assert!(
        same_machine(&with(&[]), loopback).is_ok(),
        "no Host (HTTP/1.0)"
    );
    for host in ["evil.example:9090", "10.0.0.5:9090", "[::1]:9090"] {
        assert!(
            same_machine(&with(&[("host", host)]), loopback).is_err(),
            "{host}"
        );
    }
    assert!(same_machine(&with(&[("host", "10.0.0.5:9090")]), everywhere).is_ok());
    assert!(same_machine(&with(&[("host", "evil.example")]), everywhere).is_err());
    let page = with(&[
        ("host", "127.0.0.1:9090"),
        ("origin", "https://evil.example"),
    ]);
    assert!(same_machine(&page, loopback).is_err());
}

/// The status and headers of `GET target` as [`handle`] answers it, the
/// token checked first: [`refusal`], then [`respond`].
async fn admitted(app: &App, target: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let uri: Uri = target.parse().unwrap();
    let response = refusal(app, &Method::GET, &uri, &crate::headers::map_of(headers))
        .unwrap_or_else(|| respond(app, &Method::GET, &uri));
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn ui_is_one_small_page_that_loads_nothing_from_elsewhere() {
    let app = app(CONFIG);
    let (status, headers, page) = get(&app, "/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(page.len() < 100_000, "{} bytes", page.len());
    for elsewhere in ["http://", "https://", "//cdn", "@import", "url(http"] {
        assert!(!page.contains(elsewhere), "the page names {elsewhere}");
    }
    // Its inline style and script are allowed by their hashes (`ui`'s
    // tests), nothing by `unsafe-inline`.
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'; "), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    // What the browser test finds the page by.
    for hook in [
        "data-instance",
        "data-lookup-result",
        "<label for=\"lookup-key\">",
    ] {
        assert!(page.contains(hook), "{hook}");
    }

    let (status, headers, body) = call(&app, Method::HEAD, "/ui").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(headers[header::CONTENT_LENGTH], page.len().to_string());
    let (status, _, _) = call(&app, Method::POST, "/ui").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn ui_is_behind_the_admin_token() {
    let app = app(&READY_CONFIG.replacen(
        "admin = \"127.0.0.1:0\"",
        "admin = \"127.0.0.1:0\"\nadmin_token = \"s3cret\"",
        1,
    ));
    let (status, body) = admitted(&app, "/ui", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("<html"), "{body}");
    let (status, _) = admitted(&app, "/ui?token=wrong", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, page) = admitted(&app, "/ui?token=s3cret", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    let (status, _) = admitted(&app, "/ui", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(status, StatusCode::OK);
    // What the page then asks for needs the header: the query is the
    // page's alone.
    let (status, _) = admitted(&app, "/ring?token=s3cret", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = admitted(&app, "/ring", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(status, StatusCode::OK);

    let open = self::app(READY_CONFIG);
    assert_eq!(admitted(&open, "/ui", &[]).await.0, StatusCode::OK);
}
