//! Hostile clients (SPEC §9.8, README "Limits and hardening"): request
//! smuggling attempts, spoofed hosts, header injection, malformed chunking,
//! HTTP/2 floods and random bytes, each written as exact bytes on a raw socket.
//! Each gets a 4xx or a closed connection, reaches the backend as nothing or as
//! exactly one well-formed request (the backend records the exact bytes it
//! receives and parses them again on its own), and the proxy serves a normal
//! request afterwards.

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use shardproxy::run::Running;
use support::raw::{exchange, Raw};
use support::recorder::{Recorder, Sent};
use support::WAIT;

/// The proxy in front of one recording backend.
struct Setup {
    proxy: Running,
    backend: Recorder,
}

impl Setup {
    /// `server` lines go to `[server]`.
    async fn start(server: &str) -> Setup {
        let backend = Recorder::start().await;
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
{server}

[services.rec]
instances = [{{ host = "rec.example.com", addr = "{addr}" }}]
retry_on = []
try_timeout = "500ms"
# One failure would eject: a client's fault must never count as one.
outlier_detection = {{ consecutive_failures = 1 }}

[[routes]]
service = "rec"
"#,
            addr = backend.addr()
        );
        let proxy = support::start_proxy(&text, "test.toml").await;
        Setup { proxy, backend }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.listen
    }

    /// A normal request still gets through, and reaches the backend as one
    /// more well-formed request.
    async fn serves_on(&self) {
        self.backend.clear();
        let (_, reply) = exchange(
            self.addr(),
            b"GET /still-here HTTP/1.1\r\nHost: a.example\r\n\r\n",
        )
        .await;
        let reply = reply.expect("a normal request is answered");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, "ok");
        // Only complete requests count: the head of a streamed body that a
        // previous case cut off may still be arriving on its connection.
        let complete: Vec<Sent> = self
            .backend
            .requests()
            .into_iter()
            .filter(|sent| matches!(sent, Sent::Complete { .. }))
            .collect();
        assert_eq!(complete.len(), 1, "{complete:?}");
        assert!(
            matches!(&complete[0], Sent::Complete { target, .. } if target == "/still-here"),
            "{complete:?}"
        );
        self.backend.clear();
    }

    async fn stop(self) {
        tokio::time::timeout(WAIT, self.proxy.shutdown())
            .await
            .expect("the proxy shuts down");
    }
}

/// Sends `bytes` and expects `status` (or, with `None`, a connection
/// closed without an answer), then the connection closed, and nothing at
/// the backend.
async fn refused(setup: &Setup, what: &str, bytes: &[u8], status: Option<u16>) {
    let (mut raw, reply) = exchange(setup.addr(), bytes).await;
    assert_eq!(
        reply.as_ref().map(|reply| reply.status),
        status,
        "{what}: {reply:?}"
    );
    assert!(raw.closed().await, "{what}: the connection is closed after");
    assert_eq!(
        setup.backend.requests(),
        [],
        "{what}: nothing reaches the backend"
    );
    setup.serves_on().await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_the_encoding_then_closed() {
    let setup = Setup::start("").await;
    let smuggled = b"POST /front HTTP/1.1\r\nHost: a.example\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let (mut raw, reply) = exchange(setup.addr(), smuggled).await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    assert!(
        raw.closed().await,
        "RFC 9112 §6.3: the connection is closed after"
    );
    let requests = setup.backend.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let Sent::Complete {
        method,
        target,
        headers,
        body,
    } = &requests[0]
    else {
        panic!("{requests:?}");
    };
    assert_eq!((method.as_str(), target.as_str()), ("POST", "/front"));
    assert!(body.is_empty(), "the chunked body was empty: {body:?}");
    // Framed once, by the proxy (the recorder refuses ambiguous framing).
    assert!(
        !headers.iter().any(|(name, _)| name == "content-length"),
        "{headers:?}"
    );
    setup.serves_on().await;
    setup.stop().await;
}

#[tokio::test]
async fn ambiguous_or_malformed_heads_get_400_and_reach_no_backend() {
    let setup = Setup::start("").await;
    let cases: &[(&str, &[u8])] = &[
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "a Content-Length that is not a number",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3x\r\n\r\nabc",
        ),
        (
            "obs-fold (a header line continued on the next)",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Folded: a\r\n b\r\n\r\n",
        ),
        (
            "a bare CR inside a header value",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Injected: a\rSet-Cookie: b\r\n\r\n",
        ),
        (
            "a NUL inside a header value",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Nul: a\0b\r\n\r\n",
        ),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Space : a\r\n\r\n",
        ),
        (
            "Transfer-Encoding that is not chunked last",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"POST / HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "a request line without a version",
            b"GET /\r\nHost: a.example\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        refused(&setup, what, bytes, Some(400)).await;
    }
    setup.stop().await;
}

#[tokio::test]
async fn hosts_that_are_missing_repeated_or_spoofed_never_choose_a_destination() {
    let setup = Setup::start("").await;
    for (what, bytes) in [
        ("no Host", &b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"[..]),
        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: 127.0.0.1:1\r\n\r\n",
        ),
    ] {
        let (_, reply) = exchange(setup.addr(), bytes).await;
        assert_eq!(reply.map(|reply| reply.status), Some(400), "{what}");
        assert_eq!(setup.backend.requests(), [], "{what}");
        setup.serves_on().await;
    }

    // An absolute-form URI naming another host (and port) goes to the
    // configured instance like any request: its authority is only the Host.
    let (_, reply) = exchange(
        setup.addr(),
        b"GET http://127.0.0.1:1/elsewhere HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
    )
    .await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
    let requests = setup.backend.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let Sent::Complete {
        target, headers, ..
    } = &requests[0]
    else {
        panic!("{requests:?}");
    };
    assert_eq!(target, "/elsewhere", "origin-form to the instance");
    let hosts: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| name == "host")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(hosts, ["127.0.0.1:1"]);
    setup.serves_on().await;
    setup.stop().await;
}

#[tokio::test]
async fn malformed_or_huge_chunks_get_400_or_a_closed_connection_and_no_request() {
    let setup = Setup::start("").await;
    let cases: &[(&str, &[u8])] = &[
        (
            "a chunk size over 64 bits",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "a chunk size that is not hex",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "a chunk longer than its size",
            b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let (mut raw, reply) = exchange(setup.addr(), bytes).await;
        if let Some(reply) = &reply {
            assert_eq!(reply.status, 400, "{what}: {reply:?}");
        }
        assert!(raw.closed().await, "{what}: closed after");
        // The body is streamed, so the instance may have seen the head; it
        // never sees a complete request.
        let requests = setup.backend.requests();
        assert!(
            requests
                .iter()
                .all(|sent| !matches!(sent, Sent::Complete { .. })),
            "{what}: {requests:?}"
        );
        setup.serves_on().await;
    }
    // A client's bad body says nothing of the instance: it is not ejected.
    let app = setup.proxy.app();
    let service = app.service("rec").expect("the service");
    assert!(!service.upstream.health.any_ejected());
    setup.stop().await;
}

/// The 500 ms per-try timeout passes by [`support::skip`] once the backend
/// has the stalled request: the proxy then waits for that timeout alone,
/// the client for its answer (far longer).
#[tokio::test]
async fn a_stalled_body_is_the_clients_408_and_never_ejects_the_instance() {
    let setup = Setup::start("").await;
    for stall in [
        // A chunk announced as 2 GiB, a few bytes of it sent.
        &b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFF\r\nabc"
            [..],
        // A Content-Length larger than what is sent, too large to buffer.
        b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10000000\r\n\r\nabc",
    ] {
        let (_, reply) = support::past_timeouts(
            exchange(setup.addr(), stall),
            || setup.backend.requests().len(),
            Duration::from_millis(500),
        )
        .await;
        let reply = reply.expect("an answer");
        assert_eq!(reply.status, 408, "{reply:?}");
        let complete = setup
            .backend
            .requests()
            .into_iter()
            .filter(|sent| matches!(sent, Sent::Complete { .. }))
            .count();
        assert_eq!(complete, 0);
        setup.serves_on().await;
    }
    let app = setup.proxy.app();
    assert!(!app
        .service("rec")
        .expect("the service")
        .upstream
        .health
        .any_ejected());
    setup.stop().await;
}

#[tokio::test]
async fn random_bytes_get_400_or_a_closed_connection() {
    let setup = Setup::start("").await;
    // A fixed xorshift sequence: the same bytes on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..50 {
        let length = 1 + (next() % 2048) as usize;
        let mut bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        // Half of the rounds look like a request up to a point.
        if round % 2 == 0 {
            let mut prefixed = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Junk: ".to_vec();
            prefixed.append(&mut bytes);
            bytes = prefixed;
        }
        bytes.extend_from_slice(b"\r\n\r\n");
        let (mut raw, reply) = exchange(setup.addr(), &bytes).await;
        if let Some(reply) = &reply {
            assert!(
                (400..500).contains(&reply.status) || reply.status == 200,
                "round {round}: {reply:?}"
            );
        }
        if reply.as_ref().is_none_or(|reply| reply.status != 200) {
            assert!(raw.closed().await, "round {round}: closed after");
        }
        // Whatever reached the backend is well-formed: one request at most.
        let requests = setup.backend.requests();
        assert!(requests.len() <= 1, "round {round}: {requests:?}");
        assert!(
            requests
                .iter()
                .all(|sent| matches!(sent, Sent::Complete { .. })),
            "round {round}: {requests:?}"
        );
        setup.backend.clear();
    }
    setup.serves_on().await;
    setup.stop().await;
}

#[tokio::test]
async fn http2_rapid_reset_and_stream_floods_leave_the_proxy_serving() {
    let setup = Setup::start("").await;
    let stream = tokio::net::TcpStream::connect(setup.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let driver = tokio::spawn(connection);
    // One whole exchange first: the proxy's SETTINGS have arrived by then.
    let mut client = tokio::time::timeout(WAIT, client.ready())
        .await
        .expect("the connection gets ready")
        .unwrap();
    let request = http::Request::get("http://a.example/first")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(client.current_max_send_streams(), 256);
    setup.backend.clear();

    // Rapid reset (CVE-2023-44487): open streams and cancel them at once,
    // as fast as the connection takes them.
    let mut sent = 0;
    let mut client = Some(client);
    for _ in 0..5_000 {
        let Some(ready) = client.take() else { break };
        let Ok(mut ready) = tokio::time::timeout(WAIT, ready.ready()).await.unwrap() else {
            break; // GOAWAY: the proxy closed the connection.
        };
        let request = http::Request::get("http://a.example/reset")
            .body(())
            .unwrap();
        let Ok((_response, mut stream)) = ready.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
        client = Some(ready);
    }
    drop(client);
    let _ = tokio::time::timeout(WAIT, driver).await;
    // Cancelled streams reach the instance at most once each, whole.
    let requests = setup.backend.requests();
    assert!(requests.len() <= sent, "{} > {sent}", requests.len());
    assert!(
        requests
            .iter()
            .all(|sent| matches!(sent, Sent::Complete { target, .. } if target == "/reset")),
        "{requests:?}"
    );
    setup.serves_on().await;
    setup.stop().await;
}

#[tokio::test]
async fn pipelined_requests_reach_the_backend_one_by_one() {
    let setup = Setup::start("").await;
    let mut raw = Raw::connect(setup.addr()).await;
    raw.send(
        b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\nGET /two HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .await;
    for _ in 0..2 {
        let reply = raw.reply().await.expect("an answer for each request");
        assert_eq!(reply.status, 200);
    }
    let targets: Vec<String> = setup
        .backend
        .requests()
        .into_iter()
        .map(|sent| match sent {
            Sent::Complete { target, .. } => target,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(targets, ["/one", "/two"]);
    setup.stop().await;
}
