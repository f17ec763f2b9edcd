//! The limits of README "Limits and hardening" end to end, each with a clear
//! answer: header size and count (`431`), a route's body size (`413`), slow
//! headers (connection closed), idle connections (closed), the connection limit
//! (no accept until one closes) and a service's concurrency limit (an immediate
//! `503` naming the service, counted in `shardproxy_shed_total`). After each,
//! the proxy serves a normal request.

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shardproxy::run::Running;
use support::backend::{Backend, Behaviour};
use support::raw::{exchange, Raw};
use support::WAIT;

/// Starts a proxy in front of `backend` with these `[server]`, service and
/// route lines.
async fn start(backend: &Backend, server: &str, service: &str, route: &str) -> Running {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
# The answers name the instances tried, which these tests read.
error_detail = true
{server}

[services.frob]
instances = [{{ host = "b1.example.com", addr = "{addr}" }}]
{service}

[[routes]]
service = "frob"
{route}
"#,
        addr = backend.addr()
    );
    support::start_proxy(&text, "test.toml").await
}

async fn stop(proxy: Running) {
    tokio::time::timeout(WAIT, proxy.shutdown())
        .await
        .expect("the proxy shuts down");
}

/// A normal request gets `200` from the backend.
async fn serves_on(addr: SocketAddr) {
    let (_, reply) = exchange(addr, b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
}

fn get_with_headers(count: usize, value_size: usize) -> Vec<u8> {
    let mut request = b"GET /k HTTP/1.1\r\nHost: a.example\r\n".to_vec();
    for index in 0..count {
        request.extend_from_slice(format!("x-h{index}: {}\r\n", "v".repeat(value_size)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

#[tokio::test]
async fn headers_over_the_size_or_count_limit_get_431() {
    let backend = Backend::start("b1").await;
    let proxy = start(
        &backend,
        "max_header_size = \"16KiB\"\nmax_headers = 20",
        "",
        "",
    )
    .await;
    let addr = proxy.listen;

    // Within both limits.
    let (_, reply) = exchange(addr, &get_with_headers(18, 500)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));

    for (what, request) in [
        ("a 40 KiB header section", get_with_headers(10, 4096)),
        ("one 20 KiB header", get_with_headers(1, 20 << 10)),
        (
            "21 header fields (Host and 20 more)",
            get_with_headers(20, 1),
        ),
        ("1000 header fields", get_with_headers(1000, 1)),
    ] {
        let before = backend.requests();
        let (mut raw, reply) = exchange(addr, &request).await;
        assert_eq!(reply.map(|reply| reply.status), Some(431), "{what}");
        assert!(raw.closed().await, "{what}: closed after");
        assert_eq!(backend.requests(), before, "{what}: nothing forwarded");
        serves_on(addr).await;
    }
    stop(proxy).await;
}

/// A GET whose header section (request line to the blank line) is exactly
/// `size` bytes.
fn get_of_size(size: usize) -> Vec<u8> {
    let start = "GET /k HTTP/1.1\r\nHost: a.example\r\nx-pad: ";
    let padding = size - start.len() - "\r\n\r\n".len();
    format!("{start}{}\r\n\r\n", "p".repeat(padding)).into_bytes()
}

#[tokio::test]
async fn the_header_size_limit_is_exact() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "max_header_size = \"10KiB\"", "", "").await;
    let addr = proxy.listen;
    let (_, reply) = exchange(addr, &get_of_size(10 << 10)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    let (_, reply) = exchange(addr, &get_of_size((10 << 10) + 1)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(431));
    // Below hyper's smallest read buffer (8 KiB) too.
    let small = start(&backend, "max_header_size = \"2KiB\"", "", "").await;
    let (_, reply) = exchange(small.listen, &get_of_size(2 << 10)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    let (_, reply) = exchange(small.listen, &get_of_size((2 << 10) + 1)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(431));
    stop(small).await;
    serves_on(addr).await;
    stop(proxy).await;
}

#[tokio::test]
async fn http2_header_lists_over_the_size_get_431() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "max_header_size = \"16KiB\"", "", "").await;
    let stream = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let send = |client: &mut h2::client::SendRequest<bytes::Bytes>, padding: usize| {
        let request = http::Request::get("http://a.example/k")
            .header("x-pad", "p".repeat(padding))
            .body(())
            .unwrap();
        client.send_request(request, true).unwrap().0
    };
    let small = tokio::time::timeout(WAIT, send(&mut client, 1000))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(small.status(), 200);
    let before = backend.requests();
    let large = tokio::time::timeout(WAIT, send(&mut client, 20 << 10))
        .await
        .expect("an answer");
    assert_eq!(large.unwrap().status(), 431);
    assert_eq!(backend.requests(), before, "nothing forwarded");
    serves_on(proxy.listen).await;
    stop(proxy).await;
}

#[tokio::test]
async fn the_default_header_limits_are_32_kib_and_100_fields() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "", "", "").await;
    let addr = proxy.listen;
    // Host and 95 more: the proxy adds X-Forwarded-For, X-Forwarded-Proto,
    // Via and X-Request-Id, which makes 100 at the backend, hyper's limit
    // there too.
    let (_, reply) = exchange(addr, &get_with_headers(95, 300)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    let before = backend.requests();
    let (_, reply) = exchange(addr, &get_with_headers(100, 1)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(431));
    assert_eq!(backend.requests(), before, "refused by the proxy itself");
    let (_, reply) = exchange(addr, &get_with_headers(1, 40 << 10)).await;
    assert_eq!(reply.map(|reply| reply.status), Some(431));
    assert_eq!(backend.requests(), before, "refused by the proxy itself");
    serves_on(addr).await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_slow_header_section_is_cut_off() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "header_read_timeout = \"200ms\"", "", "").await;
    let addr = proxy.listen;
    // Slowloris: a head that never ends.
    let mut raw = Raw::connect(addr).await;
    raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\nX-Slow: ")
        .await;
    for _ in 0..3 {
        raw.send(b"a").await;
    }
    assert!(raw.closed().await, "the proxy closes the connection");
    assert_eq!(backend.requests(), 0);
    serves_on(addr).await;
    stop(proxy).await;
}

/// hyper's header read deadline is looked at when the connection's own
/// checks wake it (no timer of its own): a keep-alive connection that
/// sends nothing after its first answer is closed by it, long before
/// `idle_timeout`.
#[tokio::test]
async fn a_quiet_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "header_read_timeout = \"200ms\"", "", "").await;
    let mut raw = Raw::connect(proxy.listen).await;
    raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    assert_eq!(raw.reply().await.map(|reply| reply.status), Some(200));
    // Within the wait for a reply, far below the default idle timeout.
    assert!(raw.closed().await, "the proxy closes the connection");
    serves_on(proxy.listen).await;
    stop(proxy).await;
}

/// Nothing is asked on the keep-alive connection while it idles: its idle
/// time (checked once a period, so closed within two) passes by
/// [`support::skip`] (were the timer started only after the skip, it would
/// run out in real time). The new connections' timers start when the proxy
/// accepts them, which is not seen from here: they run in real time.
#[tokio::test]
async fn idle_connections_are_closed() {
    const IDLE: Duration = Duration::from_millis(200);
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "idle_timeout = \"200ms\"", "", "").await;
    let addr = proxy.listen;

    // HTTP/1.1: a keep-alive connection that asks nothing more.
    let mut raw = Raw::connect(addr).await;
    raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    assert_eq!(raw.reply().await.map(|reply| reply.status), Some(200));
    support::skip(2 * IDLE).await;
    assert!(raw.closed().await, "the idle HTTP/1.1 connection is closed");

    // A connection that never sends anything.
    let mut silent = Raw::connect(addr).await;
    assert!(silent.closed().await, "the silent connection is closed");

    // HTTP/2: the connection ends (GOAWAY, then close).
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let ended = tokio::time::timeout(WAIT, connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is closed");
    drop(client);
    serves_on(addr).await;
    stop(proxy).await;
}

/// A keep-alive connection idle for a check period gives its buffers back
/// (it is parked; that it is, this test cannot see from outside: the unit
/// test in `server::park` does) and serves what comes next as before: a
/// request, then
/// two sent in one write (their bytes split between the parked
/// connection's first read and the next), each answered without
/// `Connection: close`. Parked, it is still closed by the header read
/// timeout, as it would be unparked.
#[tokio::test]
async fn an_idle_connection_parked_serves_its_next_requests() {
    // Checks every 500 ms: parked 0.5 to 1 s after its answer, closed
    // 2 s after its last request (the skips move these; the margins are
    // for the real time the exchanges take).
    const HEADER_READ: Duration = Duration::from_secs(2);
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "header_read_timeout = \"2s\"", "", "").await;
    let mut raw = Raw::connect(proxy.listen).await;
    let get = |path: &str| format!("GET /{path} HTTP/1.1\r\nHost: a.example\r\n\r\n");
    raw.send(get("one").as_bytes()).await;
    let first = raw.reply().await.expect("the first answer");
    assert_eq!(first.status, 200);

    support::skip(HEADER_READ / 2).await;
    raw.send(get("two").as_bytes()).await;
    let second = raw.reply().await.expect("an answer after the park");
    assert_eq!((second.status, second.header("connection")), (200, None));
    assert!(second.body.contains("/two"), "{}", second.body);

    support::skip(HEADER_READ / 2).await;
    raw.send(format!("{}{}", get("three"), get("four")).as_bytes())
        .await;
    for path in ["/three", "/four"] {
        let reply = raw.reply().await.expect("both pipelined answers");
        assert_eq!((reply.status, reply.header("connection")), (200, None));
        assert!(reply.body.contains(path), "{path}: {}", reply.body);
    }

    support::skip(2 * HEADER_READ).await;
    assert!(raw.closed().await, "the parked connection is closed");
    assert_eq!(backend.requests(), 4);
    stop(proxy).await;
}

/// An answer slower than several checks is not taken for idleness: the
/// connection is not closed or parked under it (which would have put
/// `Connection: close` on it), and serves on.
#[tokio::test]
async fn an_answer_slower_than_the_checks_keeps_its_connection() {
    let backend = Backend::start("b1").await;
    backend.set(Behaviour::Slow(Duration::from_millis(300)));
    let proxy = start(&backend, "header_read_timeout = \"200ms\"", "", "").await;
    let mut raw = Raw::connect(proxy.listen).await;
    raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    let reply = raw.reply().await.expect("the slow answer");
    assert_eq!((reply.status, reply.header("connection")), (200, None));
    backend.set(Behaviour::Healthy);
    raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    assert_eq!(raw.reply().await.map(|reply| reply.status), Some(200));
    stop(proxy).await;
}

#[tokio::test]
async fn at_max_connections_new_clients_wait_until_one_closes() {
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "max_connections = 2", "", "").await;
    let addr = proxy.listen;
    let mut first = Raw::connect(addr).await;
    first
        .send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    assert_eq!(first.reply().await.map(|reply| reply.status), Some(200));
    let mut second = Raw::connect(addr).await;
    second
        .send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    assert_eq!(second.reply().await.map(|reply| reply.status), Some(200));

    // The third is queued by the kernel, not served...
    let mut third = Raw::connect(addr).await;
    third
        .send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    let waiting = tokio::time::timeout(Duration::from_millis(300), third.reply()).await;
    assert!(waiting.is_err(), "served past max_connections: {waiting:?}");
    assert_eq!(backend.requests(), 2);

    // ...until one of the two closes.
    drop(first);
    let reply = tokio::time::timeout(WAIT, third.reply())
        .await
        .expect("served once a connection closed");
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    drop((second, third));
    serves_on(addr).await;
    stop(proxy).await;
}

#[tokio::test]
async fn bodies_over_the_route_limit_get_413() {
    let backend = Backend::start("b1").await;
    let proxy = start(
        &backend,
        "",
        "",
        "path_prefix = \"/k\"\nmax_body = \"1KiB\"\n\n[[routes]]\nservice = \"frob\"\npath_prefix = \"/big\"\nmax_body = \"128KiB\"",
    )
    .await;
    let addr = proxy.listen;

    // Announced: refused before anything is forwarded.
    let mut announced =
        b"POST /k HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2000\r\n\r\n".to_vec();
    announced.extend_from_slice(&[b'a'; 2000]);
    let (_, reply) = exchange(addr, &announced).await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.body.contains("1024"), "{reply:?}");
    assert_eq!(backend.requests(), 0);

    // Chunked: cut off when it passes the limit.
    let mut chunked =
        b"POST /k HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'b'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (_, reply) = exchange(addr, &chunked).await;
    assert_eq!(reply.map(|reply| reply.status), Some(413));

    // Chunked and larger than retry_body_limit (64 KiB), so streamed: the
    // upstream request is aborted when the body passes the limit.
    let mut streamed =
        b"POST /big HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..200 {
        streamed.extend_from_slice(b"400\r\n");
        streamed.extend_from_slice(&[b'd'; 0x400]);
        streamed.extend_from_slice(b"\r\n");
    }
    streamed.extend_from_slice(b"0\r\n\r\n");
    let (_, reply) = exchange(addr, &streamed).await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.body.contains("131072"), "{reply:?}");

    // At the limit: forwarded.
    let mut fits = b"POST /k HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1024\r\n\r\n".to_vec();
    fits.extend_from_slice(&[b'c'; 1024]);
    let (_, reply) = exchange(addr, &fits).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    serves_on(addr).await;
    stop(proxy).await;
}

#[tokio::test]
async fn a_service_at_its_concurrency_limit_sheds_with_503() {
    let backend = Backend::start("b1").await;
    backend.set(Behaviour::Hang);
    let proxy = start(
        &backend,
        "",
        "max_concurrency = 2\ntry_timeout = \"30s\"\ndeadline = \"30s\"",
        "",
    )
    .await;
    let addr = proxy.listen;
    let mut hanging = Vec::new();
    for _ in 0..2 {
        let mut raw = Raw::connect(addr).await;
        raw.send(b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n")
            .await;
        hanging.push(raw);
    }
    support::wait_until("two requests hang at the backend", || async {
        backend.in_flight() == 2
    })
    .await;

    let (_, reply) = exchange(addr, b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    let reply = reply.expect("an immediate answer");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply.body.contains("service frob") && reply.body.contains("limit of 2"),
        "{reply:?}"
    );
    assert_eq!(backend.requests(), 2, "the shed request was not forwarded");
    let metrics = admin_get(proxy.admin, "/metrics").await;
    assert!(
        metrics.contains("shardproxy_shed_total{service=\"frob\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardproxy_requests_total{service=\"frob\",status=\"503\"} 1"),
        "{metrics}"
    );

    // Places come back when the requests end (here: their clients leave).
    drop(hanging);
    let app = proxy.app();
    support::wait_until("the places are given back", || {
        let app = Arc::clone(&app);
        async move {
            app.service("frob")
                .map(|s| s.upstream.in_flight.in_flight())
                == Some(0)
        }
    })
    .await;
    backend.set(Behaviour::Healthy);
    serves_on(addr).await;
    stop(proxy).await;
}

/// The body of `GET path` on the admin API.
async fn admin_get(admin: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n");
    let (_, reply) = exchange(admin, request.as_bytes()).await;
    let reply = reply.expect("the admin API answers");
    assert_eq!(reply.status, 200);
    reply.body
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let backend = Backend::start("b1").await;
    let proxy = start(
        &backend,
        "",
        "try_timeout = \"300ms\"\ndeadline = \"300ms\"",
        "",
    )
    .await;
    // Small enough to be buffered for retries, and half of it never sent.
    let mut raw = Raw::connect(proxy.listen).await;
    raw.send(b"POST /k HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\nhalf!")
        .await;
    let reply = raw.reply().await.expect("an answer");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.body.contains("300ms"), "{reply:?}");
    assert_eq!(backend.requests(), 0);
    serves_on(proxy.listen).await;
    stop(proxy).await;
}

#[tokio::test]
async fn upstream_max_idle_bounds_the_kept_connections() {
    // By default one connection serves sequential requests (two at most: a
    // connection may not be back in the pool when the next request starts).
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "", "", "").await;
    for _ in 0..6 {
        serves_on(proxy.listen).await;
    }
    assert!(backend.connections() <= 2, "{}", backend.connections());
    stop(proxy).await;

    // With none kept, each request needs a new one.
    let backend = Backend::start("b1").await;
    let proxy = start(&backend, "", "upstream_max_idle = 0", "").await;
    for _ in 0..6 {
        serves_on(proxy.listen).await;
    }
    assert_eq!(backend.connections(), 6);
    stop(proxy).await;
}

#[tokio::test]
async fn a_streamed_body_sent_whole_to_a_hanging_instance_is_the_instances_504() {
    let backend = Backend::start("b1").await;
    backend.set(Behaviour::Hang);
    let proxy = start(
        &backend,
        "",
        "try_timeout = \"300ms\"\ndeadline = \"300ms\"",
        "",
    )
    .await;
    // Over retry_body_limit (64 KiB), so streamed; the backend reads it all.
    let mut request =
        b"POST /k HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 100_000]);
    let (_, reply) = exchange(proxy.listen, &request).await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(reply.body.contains("b1.example.com"), "{reply:?}");
    backend.set(Behaviour::Healthy);
    serves_on(proxy.listen).await;
    stop(proxy).await;
}
