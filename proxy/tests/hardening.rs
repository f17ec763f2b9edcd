//! What the proxy refuses or normalizes (SPEC §9.8), and its send and body
//! timeouts (§9.3), end to end on real sockets: each item of an outside
//! review, shown fixed. Raw sockets where the exact bytes matter (framing,
//! hosts, `Connection`), raw backends where an instance must misbehave.

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use shardproxy::run::Running;
use support::backend::{Backend, Echo, Reply};
use support::raw::{exchange, read_head};
use support::{instance_line, start_proxy, static_config, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A proxy in front of one echo backend, with `service` and `rest` added
/// to the config.
async fn proxy_for(backend: &Backend, service: &str, rest: &str) -> Running {
    let config = static_config(&[instance_line(backend, &["ff"])], service, rest);
    start_proxy(&config, "hardening.toml").await
}

/// A cache in front of the service.
const CACHED: &str = "[services.frob.cache]\nenabled = true";

/// The one route.
const ROUTE: &str = "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"";

/// A raw request for `target` with these header lines.
fn raw_request(method: &str, target: &str, lines: &[&str]) -> Vec<u8> {
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for line in lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// The status and `x-cache` of a raw GET with these header lines.
async fn raw_get(proxy: SocketAddr, target: &str, lines: &[&str]) -> (u16, String, String) {
    let (_, reply) = exchange(proxy, &raw_request("GET", target, lines)).await;
    let reply = reply.expect("an answer");
    let cache = reply.header("x-cache").unwrap_or_default().to_owned();
    (reply.status, cache, reply.body)
}

/// A backend that reads one request head per connection and answers it
/// with `answer`, then holds the connection open without a further byte.
async fn raw_backend(answer: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = read_head(&mut stream).await;
            let _ = stream.write_all(answer).await;
            held.push(stream);
        }
    });
    (addr, task)
}

/// A proxy whose one instance is the raw backend at `addr`.
async fn proxy_to_raw(addr: SocketAddr, service: &str) -> Running {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [services.frob]\ninstances = [{{ host = \"raw.example.com\", addr = \"{addr}\", tokens = [\"ff\"] }}]\n\
         retry_on = []\n{service}\n\n{ROUTE}\n"
    );
    start_proxy(&config, "hardening.toml").await
}

/// Everything the proxy sends on a new connection after `request`, until
/// it closes the connection.
async fn read_all(proxy: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut all))
        .await
        .expect("the proxy ends the connection")
        .ok();
    all
}

// === Cache keys: the Host as the instance sees it ===

#[tokio::test]
async fn a_host_port_or_userinfo_never_shares_a_cached_object() {
    let backend = Backend::start("frob1").await;
    backend.reply_at("/", Reply::with(&[("cache-control", "max-age=60")]));
    let proxy = proxy_for(&backend, CACHED, ROUTE).await;
    let at = proxy.listen;

    let (status, cache, body) = raw_get(at, "/page", &["Host: victim.test:1337"]).await;
    assert_eq!((status, cache.as_str()), (200, "MISS"));
    assert_eq!(
        Echo::parse(body.as_bytes()).header("host"),
        Some("victim.test:1337")
    );
    let (_, cache, _) = raw_get(at, "/page", &["Host: victim.test"]).await;
    assert_eq!(
        cache, "MISS",
        "another port is another Host: not the same object"
    );
    let (_, cache, _) = raw_get(at, "/page", &["Host: VICTIM.test"]).await;
    assert_eq!(cache, "HIT", "the host's case is not");

    let (_, cache, body) = raw_get(at, "http://victim.test:1337/abs", &["Host: victim.test"]).await;
    assert_eq!(cache, "MISS");
    assert_eq!(
        Echo::parse(body.as_bytes()).header("host"),
        Some("victim.test:1337")
    );
    let (_, cache, _) = raw_get(at, "/abs", &["Host: victim.test"]).await;
    assert_eq!(
        cache, "MISS",
        "an absolute-form authority is the Host, port included"
    );

    let before = backend.requests();
    for (target, host) in [
        ("/page", "evil.test@victim.test"),
        ("http://evil.test@victim.test/page", "victim.test"),
    ] {
        let (status, _, body) = raw_get(at, target, &[&format!("Host: {host}")]).await;
        assert_eq!(status, 400, "{target} {host}: {body}");
        assert!(body.contains("userinfo"), "{body}");
    }
    assert_eq!(
        backend.requests(),
        before,
        "nothing with userinfo reached the instance"
    );
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn headers_named_in_connection_are_gone_before_the_cache_reads_them() {
    let backend = Backend::start("frob1").await;
    backend.reply_at(
        "/vary",
        Reply::with(&[("cache-control", "max-age=60"), ("vary", "accept-language")]),
    );
    let proxy = proxy_for(&backend, CACHED, ROUTE).await;
    let at = proxy.listen;
    let host = "Host: shop.example";

    let (_, cache, body) = raw_get(
        at,
        "/vary",
        &[
            host,
            "Accept-Language: fr",
            "Connection: keep-alive, Accept-Language",
        ],
    )
    .await;
    assert_eq!(cache, "MISS");
    assert_eq!(Echo::parse(body.as_bytes()).header("accept-language"), None);
    let (_, cache, _) = raw_get(at, "/vary", &[host, "Accept-Language: fr"]).await;
    assert_eq!(
        cache, "MISS",
        "the stored variant is for no language, as rendered"
    );
    let (_, cache, _) = raw_get(at, "/vary", &[host]).await;
    assert_eq!(cache, "HIT");

    let before = backend.requests();
    let (status, _, body) = raw_get(at, "/vary", &[host, "Connection: close, Host"]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Connection header names Host"), "{body}");
    assert_eq!(backend.requests(), before);
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn connection_tokens_are_read_as_bytes_however_many_there_are() {
    let backend = Backend::start("frob1").await;
    let proxy = proxy_for(&backend, "", ROUTE).await;
    let mut request = b"GET /c HTTP/1.1\r\nHost: shop.example\r\nConnection: x-secret, \xffbad\r\n\
        X-Secret: 1\r\nX-Kept: 2\r\n\r\n"
        .to_vec();
    let (_, reply) = exchange(proxy.listen, &request).await;
    let echo = Echo::parse(reply.expect("an answer").body.as_bytes());
    assert_eq!(
        echo.header("x-secret"),
        None,
        "a token that is not ASCII spares no other"
    );
    assert_eq!(echo.header("x-kept"), Some("2"));

    let tokens: Vec<String> = (0..3000).map(|n| format!("x-{n}")).collect();
    request = raw_request(
        "GET",
        "/c",
        &[
            "Host: shop.example",
            &format!("Connection: {}", tokens.join(",")),
            "X-2999: named",
            "X-Kept: 2",
        ],
    );
    let (_, reply) = exchange(proxy.listen, &request).await;
    let echo = Echo::parse(reply.expect("an answer").body.as_bytes());
    assert_eq!(echo.header("x-2999"), None);
    assert_eq!(echo.header("x-kept"), Some("2"));
    proxy.shutdown().await;
    backend.shutdown().await;
}

// === Hosts and methods the proxy refuses or answers itself ===

#[tokio::test]
async fn invalid_hosts_connect_and_max_forwards_never_reach_an_instance() {
    let backend = Backend::start("frob1").await;
    let proxy = proxy_for(&backend, "", ROUTE).await;
    let at = proxy.listen;
    for host in ["a b", "x/evil", "host:junk", "[::1", "a%zz"] {
        let (status, _, body) = raw_get(at, "/", &[&format!("Host: {host}")]).await;
        assert_eq!(status, 400, "Host: {host}: {body}");
    }
    let (_, reply) = exchange(
        at,
        b"CONNECT victim.test:443 HTTP/1.1\r\nHost: victim.test:443\r\n\r\n",
    )
    .await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 405);
    assert!(reply.header("allow").is_some());
    let (_, reply) = exchange(
        at,
        &raw_request("TRACE", "/t", &["Host: shop.example", "Max-Forwards: 0"]),
    )
    .await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("message/http"));
    assert!(
        reply.body.starts_with("TRACE /t HTTP/1.1\r\n"),
        "{}",
        reply.body
    );
    let (_, reply) = exchange(
        at,
        &raw_request("OPTIONS", "/o", &["Host: shop.example", "Max-Forwards: 0"]),
    )
    .await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 200);
    assert!(reply.header("allow").is_some(), "{reply:?}");
    assert_eq!(backend.requests(), 0, "none of these reached the instance");

    let (_, reply) = exchange(
        at,
        &raw_request("OPTIONS", "/o", &["Host: shop.example", "Max-Forwards: 3"]),
    )
    .await;
    let echo = Echo::parse(reply.expect("an answer").body.as_bytes());
    assert_eq!(echo.header("max-forwards"), Some("2"));
    proxy.shutdown().await;
    backend.shutdown().await;
}

// === Responses framed as RFC 9112 §6.3 says ===

#[tokio::test]
async fn a_length_beside_chunked_is_dropped_and_a_repeated_length_is_one() {
    let (both, _task) = raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          a\r\n0123456789\r\n0\r\n\r\n",
    )
    .await;
    let proxy = proxy_to_raw(both, "").await;
    let all = read_all(
        proxy.listen,
        &raw_request("GET", "/", &["Host: shop.example", "Connection: close"]),
    )
    .await;
    let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(!text.contains("content-length: 5"), "{text}");
    assert!(
        text.contains("0123456789"),
        "the whole body reaches the client: {text}"
    );
    proxy.shutdown().await;

    let (repeated, _task) =
        raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello").await;
    let proxy = proxy_to_raw(repeated, "").await;
    // Closed after the answer, so that a length the client cannot frame
    // shows as the header it is rather than as a wait.
    let (_, reply) = exchange(
        proxy.listen,
        &raw_request("GET", "/", &["Host: shop.example", "Connection: close"]),
    )
    .await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.header("content-length"), Some("5"));
    assert_eq!(reply.body, "hello");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unknown_transfer_coding_or_an_unasked_101_is_a_failed_attempt() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
    ] {
        let (addr, _task) = raw_backend(answer).await;
        let proxy = proxy_to_raw(addr, "").await;
        let (_, reply) = exchange(
            proxy.listen,
            &raw_request("GET", "/", &["Host: shop.example", "Connection: close"]),
        )
        .await;
        let reply = reply.expect("an answer");
        assert_eq!(reply.status, 502, "{}", reply.body);
        proxy.shutdown().await;
    }
}

// === Timeouts: stalled instances and clients that stop reading ===

#[tokio::test]
async fn an_instance_that_stalls_mid_body_is_cut_off_after_body_timeout() {
    let (addr, _task) =
        raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789").await;
    let proxy = proxy_to_raw(addr, "body_timeout = \"30s\"").await;
    let mut stream = TcpStream::connect(proxy.listen).await.unwrap();
    stream
        .write_all(&raw_request("GET", "/", &["Host: shop.example"]))
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.ends_with(b"0123456789") {
        let count = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("the head and the first bytes arrive")
            .unwrap();
        assert!(count > 0, "closed before the first bytes");
        received.extend_from_slice(&buffer[..count]);
    }
    // The proxy now waits on the instance alone: its body timer is all
    // that runs.
    support::skip(Duration::from_secs(31)).await;
    let count = tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("the proxy ends the exchange")
        .unwrap_or(0);
    assert_eq!(count, 0, "no byte beyond what the instance sent");
    assert!(
        received.ends_with(b"0123456789"),
        "the body ends short of 100 bytes"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_closed_after_send_timeout() {
    const BODY: usize = 64 << 20;
    let backend = Backend::start("frob1").await;
    backend.reply_at("/big", Reply::default().body_len(BODY));
    let config = static_config(&[instance_line(&backend, &["ff"])], "", ROUTE).replacen(
        "admin = \"127.0.0.1:0\"",
        "admin = \"127.0.0.1:0\"\nsend_timeout = \"300ms\"",
        1,
    );
    let proxy = start_proxy(&config, "hardening.toml").await;
    let mut stream = TcpStream::connect(proxy.listen).await.unwrap();
    stream
        .write_all(&raw_request("GET", "/big", &["Host: shop.example"]))
        .await
        .unwrap();
    support::wait_until("the instance has the request", || {
        let seen = backend.requests() > 0;
        async move { seen }
    })
    .await;
    // The client reads nothing for longer than send_timeout: this wait is
    // the behaviour under test, not a wait for readiness.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("the proxy closed the connection")
        .ok();
    assert!(
        received.len() < BODY,
        "the connection was closed before the body was sent ({} bytes)",
        received.len()
    );
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn an_http2_stream_its_client_takes_nothing_of_is_reset_after_send_timeout() {
    const BODY: usize = 8 << 20;
    let backend = Backend::start("frob1").await;
    backend.reply_at("/big", Reply::default().body_len(BODY));
    let config = static_config(&[instance_line(&backend, &["ff"])], "", ROUTE).replacen(
        "admin = \"127.0.0.1:0\"",
        "admin = \"127.0.0.1:0\"\nsend_timeout = \"300ms\"",
        1,
    );
    let proxy = start_proxy(&config, "hardening.toml").await;
    // A client that opens no window beyond its first 16 KiB: the proxy
    // stalls on flow control, its socket far from full.
    let stream = TcpStream::connect(proxy.listen).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(16 << 10)
        .handshake::<_, bytes::Bytes>(stream)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get("http://shop.example/big")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0;
    // Reading what the window let through releases none of it; the
    // stream then ends in a reset once send_timeout has passed.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match body.data().await {
                Some(Ok(chunk)) => received += chunk.len(),
                Some(Err(error)) => return Some(error),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream was not left waiting for ever");
    let error = ended.expect("the stream was reset, not ended");
    assert_eq!(error.reason(), Some(h2::Reason::CANCEL), "{error}");
    assert!(received <= 16 << 10, "{received} bytes beyond the window");
    // The connection's other streams go on.
    let request = http::Request::get("http://shop.example/small")
        .body(())
        .unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    drop((client, body, response));
    let _ = tokio::time::timeout(WAIT, driver).await;
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn a_request_body_that_stalls_is_cut_off_after_body_timeout() {
    let backend = Backend::start("frob1").await;
    // The other timers far longer, so that only body_timeout can answer.
    let service = "body_timeout = \"300ms\"\ntry_timeout = \"20s\"\ndeadline = \"30s\"";
    let proxy = proxy_for(&backend, service, ROUTE).await;
    // A small body the proxy buffers, and a large one it streams to the
    // instance: each sent in part, then nothing more.
    for length in ["100", "100000000"] {
        let mut raw = support::raw::Raw::connect(proxy.listen).await;
        let head = format!("Content-Length: {length}");
        let mut request = raw_request("POST", "/upload", &["Host: shop.example", &head]);
        request.extend_from_slice(b"0123456789");
        raw.send(&request).await;
        let reply = tokio::time::timeout(WAIT, raw.reply())
            .await
            .expect("answered before the longer timers")
            .expect("an answer");
        assert_eq!(reply.status, 408, "{length}: {}", reply.body);
        assert!(reply.body.contains("300ms"), "{length}: {}", reply.body);
    }
    // The client's fault: the instance serves on.
    let (_, reply) = exchange(
        proxy.listen,
        &raw_request("GET", "/", &["Host: shop.example"]),
    )
    .await;
    assert_eq!(reply.expect("an answer").status, 200);
    proxy.shutdown().await;
    backend.shutdown().await;
}

// === The admin API from web pages ===

#[tokio::test]
async fn admin_changes_from_web_pages_are_refused() {
    let backend = Backend::start("frob1").await;
    let proxy = proxy_for(&backend, CACHED, ROUTE).await;
    let admin = proxy.admin;
    let purge = "/cache/purge?service=frob&prefix=/";
    let local = format!("Host: {admin}");
    for lines in [
        vec![local.as_str(), "Origin: https://evil.example"],
        vec!["Host: evil.example"],
    ] {
        let (_, reply) = exchange(admin, &raw_request("POST", purge, &lines)).await;
        assert_eq!(reply.expect("an answer").status, 403, "{lines:?}");
    }
    for host in [local.as_str(), "Host: localhost"] {
        let (_, reply) = exchange(admin, &raw_request("POST", purge, &[host])).await;
        assert_eq!(reply.expect("an answer").status, 200, "{host}");
    }
    proxy.shutdown().await;
    backend.shutdown().await;
}

/// SPEC §9.7: with `server.admin_token`, every admin request but
/// `GET /healthz` and `GET /readyz` needs `Authorization: Bearer <token>`:
/// without it, or with another token, `401` with `WWW-Authenticate:
/// Bearer`; with it, the usual answer. The web-page guard still holds for
/// a `POST` that carries the token.
#[tokio::test]
async fn the_admin_api_asks_for_its_token() {
    const TOKEN: &str = "Authorization: Bearer t0ken-of-the-admin";
    let backend = Backend::start("frob1").await;
    let config = static_config(&[instance_line(&backend, &["ff"])], CACHED, ROUTE).replacen(
        "admin = \"127.0.0.1:0\"",
        "admin = \"127.0.0.1:0\"\nadmin_token = \"t0ken-of-the-admin\"",
        1,
    );
    let proxy = start_proxy(&config, "hardening.toml").await;
    let admin = proxy.admin;
    let host = format!("Host: {admin}");
    let ask = |method: &'static str, target: &'static str, lines: Vec<String>| async move {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (_, reply) = exchange(admin, &raw_request(method, target, &lines)).await;
        reply.expect("an answer")
    };
    let purge = "/cache/purge?service=frob&prefix=/";
    for (method, target) in [
        ("GET", "/ring"),
        ("GET", "/metrics"),
        ("GET", "/ring/lookup?service=frob&key=/a"),
        ("POST", purge),
        ("GET", "/no-such-page"),
    ] {
        for wrong in [None, Some("Authorization: Bearer t0ken-of-the-admiN")] {
            let mut lines = vec![host.clone()];
            lines.extend(wrong.map(str::to_owned));
            let reply = ask(method, target, lines).await;
            assert_eq!(reply.status, 401, "{method} {target} with {wrong:?}");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|challenge| challenge.starts_with("Bearer")),
                "{method} {target}: {:?}",
                reply.headers
            );
            assert!(!reply.body.contains("t0ken"), "{}", reply.body);
        }
        let reply = ask(method, target, vec![host.clone(), TOKEN.to_owned()]).await;
        let expected = if target == "/no-such-page" { 404 } else { 200 };
        assert_eq!(reply.status, expected, "{method} {target}: {}", reply.body);
    }
    for target in ["/healthz", "/readyz"] {
        let reply = ask("GET", target, vec![host.clone()]).await;
        assert_eq!(
            reply.status, 200,
            "{target} without a token: {}",
            reply.body
        );
    }
    let from_a_page = vec![
        host.clone(),
        TOKEN.to_owned(),
        "Origin: https://evil.example".to_owned(),
    ];
    assert_eq!(ask("POST", purge, from_a_page).await.status, 403);
    proxy.shutdown().await;
    backend.shutdown().await;
}

// === The cache's memory ===

#[tokio::test]
async fn markers_of_uncacheable_answers_are_weighed_with_their_urls() {
    const MAX: f64 = (1 << 20) as f64;
    let backend = Backend::start("frob1").await;
    backend.reply_at("/u/", Reply::with(&[("cache-control", "no-store")]));
    let service =
        "[services.frob.cache]\nenabled = true\nmax_size = \"1MiB\"\nmax_object_size = \"64KiB\"";
    let proxy = proxy_for(&backend, service, ROUTE).await;
    let client = support::client::Client::http1();
    let stored = || async {
        let metrics = client.get(proxy.admin, "/metrics").await.text();
        support::sum_samples(
            &metrics,
            "shardproxy_cache_stored_bytes",
            &[("service", "frob")],
        )
    };
    let long = "x".repeat(8 << 10);
    for n in 0..60 {
        let answer = client.get(proxy.listen, &format!("/u/{n}/{long}")).await;
        assert_eq!(answer.status, 200);
    }
    let held = stored().await;
    assert!(
        held >= 60.0 * 8192.0,
        "60 markers of 8 KiB URLs weigh {held} bytes"
    );
    for n in 60..300 {
        client.get(proxy.listen, &format!("/u/{n}/{long}")).await;
    }
    let held = stored().await;
    assert!(held <= MAX, "{held} bytes stored with max_size = 1MiB");
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn vary_rules_are_weighed_with_their_urls() {
    let backend = Backend::start("frob1").await;
    backend.reply_at(
        "/v/",
        Reply::with(&[("cache-control", "max-age=60"), ("vary", "accept-language")]),
    );
    let service =
        "[services.frob.cache]\nenabled = true\nmax_size = \"4MiB\"\nmax_object_size = \"64KiB\"";
    let proxy = proxy_for(&backend, service, ROUTE).await;
    let client = support::client::Client::http1();
    let long = "x".repeat(8 << 10);
    for n in 0..60 {
        let answer = client.get(proxy.listen, &format!("/v/{n}/{long}")).await;
        assert_eq!(answer.status, 200);
    }
    let metrics = client.get(proxy.admin, "/metrics").await.text();
    let held = support::sum_samples(
        &metrics,
        "shardproxy_cache_stored_bytes",
        &[("service", "frob")],
    );
    // Each object, and the rule that finds its variants, holds the URL.
    assert!(
        held >= 2.0 * 60.0 * 8192.0,
        "objects and their Vary rules weigh {held} bytes for 60 URLs of 8 KiB"
    );
    proxy.shutdown().await;
    backend.shutdown().await;
}

// === HTTP/2: streams reset after the proxy accepted them ===

/// Streams per round of [`reset_in_rounds`].
const ROUND: usize = 50;
/// The proxy's budget of streams reset before their answer.
const RESET_BUDGET: usize = 100;

/// Opens `rounds` rounds of [`ROUND`] streams on `client`, each round
/// reaching the instance (while within the budget) and then all reset:
/// each round would cost the instances `ROUND` requests, for ever. Returns
/// the client, unless the proxy closed the connection, and the streams
/// opened.
async fn reset_in_rounds(
    client: h2::client::SendRequest<bytes::Bytes>,
    backend: &Backend,
    rounds: usize,
) -> (Option<h2::client::SendRequest<bytes::Bytes>>, usize) {
    let mut client = Some(client);
    let mut opened = 0;
    'rounds: for _ in 0..rounds {
        let mut round = Vec::new();
        for _ in 0..ROUND {
            let Some(ready) = client.take() else {
                break 'rounds;
            };
            let Ok(mut ready) = tokio::time::timeout(WAIT, ready.ready()).await.unwrap() else {
                break 'rounds; // GOAWAY: the proxy is closing the connection.
            };
            let request = http::Request::get("http://shop.example/reset")
                .body(())
                .unwrap();
            let Ok((response, stream)) = ready.send_request(request, true) else {
                break 'rounds;
            };
            round.push((response, stream));
            opened += 1;
            client = Some(ready);
        }
        if opened <= RESET_BUDGET + ROUND {
            // Until the budget is spent every stream is forwarded: each
            // reset below is of a stream the proxy had accepted.
            support::wait_until("the round reached the instance", || {
                let all = backend.requests() >= opened as u64;
                async move { all }
            })
            .await;
        }
        for (_, mut stream) in round {
            stream.send_reset(h2::Reason::CANCEL);
        }
    }
    (client, opened)
}

#[tokio::test]
async fn streams_reset_after_they_were_accepted_are_limited_per_connection() {
    let backend = Backend::start("frob1").await;
    backend.set(support::backend::Behaviour::Hang);
    let proxy = proxy_for(&backend, "", ROUTE).await;
    let stream = TcpStream::connect(proxy.listen).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let driver = tokio::spawn(connection);
    let (mut client, opened) = reset_in_rounds(client, &backend, 20).await;
    assert!(
        backend.requests() <= (RESET_BUDGET + 2 * ROUND) as u64,
        "{} requests reached the instance of {opened} streams opened",
        backend.requests()
    );
    // Past the budget nothing more is forwarded: a new stream is refused.
    let before = backend.requests();
    if let Some(ready) = client.take() {
        if let Ok(Ok(mut ready)) = tokio::time::timeout(WAIT, ready.ready()).await {
            let request = http::Request::get("http://shop.example/after")
                .body(())
                .unwrap();
            if let Ok((response, _)) = ready.send_request(request, true) {
                let answer = tokio::time::timeout(WAIT, response)
                    .await
                    .expect("refused at once");
                assert!(answer.is_err(), "a stream after the budget was answered");
            }
        }
    }
    assert_eq!(backend.requests(), before, "nothing more was forwarded");
    let _ = tokio::time::timeout(WAIT, driver).await;
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn a_connection_closed_for_its_resets_is_told_to_enhance_its_calm() {
    let backend = Backend::start("frob1").await;
    backend.set(support::backend::Behaviour::Hang);
    let proxy = proxy_for(&backend, "", ROUTE).await;
    let stream = TcpStream::connect(proxy.listen).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let driver = tokio::spawn(connection);
    // Just past the budget, and then quiet: the GOAWAY that follows is the
    // proxy's, not h2's for streams reset before they were accepted.
    // The client is kept: dropped, h2 would close the connection itself.
    let (_client, opened) = reset_in_rounds(client, &backend, RESET_BUDGET / ROUND + 1).await;
    assert!(opened > RESET_BUDGET);
    let ended = tokio::time::timeout(WAIT, driver)
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    let error = ended.expect_err("closed with an error code, not NO_ERROR");
    assert!(error.is_go_away(), "{error}");
    assert_eq!(
        error.reason(),
        Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{error}"
    );
    proxy.shutdown().await;
    backend.shutdown().await;
}
