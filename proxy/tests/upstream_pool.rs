//! The keep-alive connections to instances (`forward/pool.rs`): reused
//! while they are idle (the most recently used first), closed after
//! `upstream_idle_timeout`, never reused after an answer that was not read
//! to its end; a request that a closing connection took sent again on a new
//! one; and a `Host` for requests that came without one (on each attempt,
//! its own instance's).

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::backend::{Backend, Behaviour, Echo, Reply};
use support::raw::{exchange, Raw};
use support::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy in front of one instance at `addr`, with these service lines.
async fn proxy_to(addr: SocketAddr, service: &str) -> shardproxy::run::Running {
    let instance = format!("    {{ host = \"b1.example.com\", addr = \"{addr}\" }},");
    let config = support::static_config(&[instance], service, "[[routes]]\nservice = \"frob\"\n");
    support::start_proxy(&config, "upstream_pool.toml").await
}

/// Reads one request head off `stream`; false at the end of the connection.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(_) => return false,
            Err(_) => panic!("no request and no close within {WAIT:?}"),
        }
    }
    true
}

/// The idle time passes by [`support::skip`]: the client's requests go one
/// after another and close their connections, so nothing is under way
/// meanwhile.
#[tokio::test]
async fn an_idle_connection_is_reused_then_closed_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(90);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("its address");
    let proxy = proxy_to(addr, "upstream_idle_timeout = \"90s\"").await;
    let listen = proxy.listen;
    let requests = |count: usize| {
        tokio::spawn(async move {
            for _ in 0..count {
                let (_, reply) = exchange(
                    listen,
                    b"GET /k HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
                )
                .await;
                let reply = reply.expect("an answer");
                assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
            }
        })
    };

    // Every request comes on the first connection (a request sent on
    // another would never be answered, and the client would fail), also
    // after it idled for most of the timeout.
    let client = requests(3);
    let mut stream = accept(&listener).await;
    for _ in 0..3 {
        assert!(read_head(&mut stream).await, "the connection is kept");
        answer_read(&mut stream).await;
    }
    client.await.expect("the client's requests");
    // A second short of the timeout: far more than the real time since the
    // connection went back to the pool (milliseconds).
    support::skip(IDLE - Duration::from_secs(1)).await;
    let client = requests(1);
    assert!(
        read_head(&mut stream).await,
        "the connection is kept while idle for less than the timeout"
    );
    answer_read(&mut stream).await;
    client.await.expect("the client's request");

    // Idle past the timeout, the proxy closes it. When the connection went
    // back to the pool (around the time the answer reached the client) is
    // not seen from here: the clock moves past the timeout at each look.
    support::skip_until(IDLE, "the proxy closes the idle connection", || async {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!("the proxy sent something on an idle connection"),
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
        }
    })
    .await;
    proxy.shutdown().await;
}

/// Reads a request head off `stream` and answers `200 ok`.
async fn answer(stream: &mut TcpStream) {
    assert!(read_head(stream).await, "a request");
    answer_read(stream).await;
}

/// Answers `200 ok` to the request already read off `stream`.
async fn answer_read(stream: &mut TcpStream) {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .expect("the answer is written");
}

/// The next connection the proxy makes to `listener`.
async fn accept(listener: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the proxy connects")
        .expect("a connection")
        .0
}

#[tokio::test]
async fn a_request_a_closing_kept_alive_connection_took_goes_on_a_new_one() {
    // One instance, no replica: without a second try, the client would
    // get a 502.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("its address");
    let proxy = proxy_to(addr, "").await;
    let listen = proxy.listen;
    let client = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for n in 0..2 {
            let request = format!("GET /k/{n} HTTP/1.1\r\nHost: a.example\r\n\r\n");
            let (_, reply) = exchange(listen, request.as_bytes()).await;
            statuses.push(reply.map(|reply| (reply.status, reply.body)));
        }
        statuses
    });

    // The first connection answers once, then takes the second request
    // and closes, as a server whose keep-alive timeout ran out just then
    // would.
    let mut first = accept(&listener).await;
    answer(&mut first).await;
    assert!(
        read_head(&mut first).await,
        "the second request comes on the kept connection"
    );
    drop(first);
    let mut second = accept(&listener).await;
    answer(&mut second).await;

    let statuses = client.await.expect("the client's requests");
    let ok = Some((200, "ok".to_owned()));
    assert_eq!(statuses, vec![ok.clone(), ok]);
    let metrics = admin_metrics(&proxy).await;
    let failed = support::sum_samples(
        &metrics,
        "shardproxy_upstream_attempts_total",
        &[("outcome", "failed")],
    );
    assert_eq!(failed, 1.0, "{metrics}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_most_recently_used_idle_connection_goes_first() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("its address");
    let proxy = proxy_to(addr, "").await;
    let listen = proxy.listen;
    let get = move |path: &'static str| async move {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let (_, reply) = exchange(listen, request.as_bytes()).await;
        reply.map(|reply| reply.status)
    };

    // Two requests at once need two connections.
    let first = tokio::spawn(get("/k/1"));
    let mut older = accept(&listener).await;
    assert!(read_head(&mut older).await, "the first request");
    let second = tokio::spawn(get("/k/2"));
    let mut newer = accept(&listener).await;
    assert!(read_head(&mut newer).await, "the second request");

    // Each answered in turn, the client has its answer before the next:
    // `newer` goes back to the pool last.
    answer_read(&mut older).await;
    assert_eq!(first.await.expect("the first client"), Some(200));
    answer_read(&mut newer).await;
    assert_eq!(second.await.expect("the second client"), Some(200));

    // The next request comes on `newer` (on `older` it would never be
    // answered, and this read would fail).
    let third = tokio::spawn(get("/k/3"));
    answer(&mut newer).await;
    assert_eq!(third.await.expect("the third client"), Some(200));
    drop(older);
    proxy.shutdown().await;
}

/// The proxy's `/metrics`.
async fn admin_metrics(proxy: &shardproxy::run::Running) -> String {
    let (_, reply) = exchange(
        proxy.admin,
        b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    reply.expect("the admin API answers").body
}

#[tokio::test]
async fn an_answer_its_client_did_not_read_whole_never_reaches_another_client() {
    let backend = Backend::start("b1").await;
    backend.reply_at("/big", Reply::default().body_len(4 << 20));
    let proxy = proxy_to(backend.addr(), "").await;

    // The client reads the head of a 4 MiB answer and goes away.
    let mut raw = Raw::connect(proxy.listen).await;
    raw.send(b"GET /big HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await;
    let mut stream = raw.into_stream();
    let mut start = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut start))
        .await
        .expect("the answer starts");
    assert!(matches!(read, Ok(n) if n > 0), "{read:?}");
    assert!(start.starts_with(b"HTTP/1.1 200"));
    drop(stream);

    // The rest of it was on that connection: the next clients get their
    // own answers, whole.
    for n in 0..5 {
        let request = format!("GET /small/{n} HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let (_, reply) = exchange(proxy.listen, request.as_bytes()).await;
        let reply = reply.expect("an answer");
        assert_eq!(reply.status, 200, "{reply:?}");
        let echo = Echo::parse(reply.body.as_bytes());
        assert_eq!(echo.uri, format!("/small/{n}"));
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_retry_of_a_request_without_host_names_its_own_instance() {
    // b1 fails every request with a retryable 503; its keys go on to b2.
    let failing = Backend::start("b1").await;
    failing.set(Behaviour::Status(503));
    let healthy = Backend::start("b2").await;
    let instances = [
        support::instance_line(&failing, &["40"]),
        support::instance_line(&healthy, &["c0"]),
    ];
    let config =
        support::static_config(&instances, "slaves = 1", "[[routes]]\nservice = \"frob\"\n");
    let proxy = support::start_proxy(&config, "upstream_pool.toml").await;
    for n in 0..20 {
        let request = format!("GET /k/{n} HTTP/1.0\r\n\r\n");
        let (_, reply) = exchange(proxy.listen, request.as_bytes()).await;
        let reply = reply.expect("an answer");
        assert_eq!(reply.status, 200, "{reply:?}");
        let echo = Echo::parse(reply.body.as_bytes());
        assert_eq!(echo.backend, "b2");
        let address = healthy.addr().to_string();
        assert_eq!(echo.header("host"), Some(address.as_str()), "/k/{n}");
    }
    assert!(
        failing.requests() > 0,
        "no key had b1 first: nothing was retried"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_request_without_host_gets_the_instances_address() {
    let backend = Backend::start("b1").await;
    let proxy = proxy_to(backend.addr(), "").await;
    let (_, reply) = exchange(proxy.listen, b"GET /k HTTP/1.0\r\n\r\n").await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 200, "{reply:?}");
    let echo = Echo::parse(reply.body.as_bytes());
    let address = backend.addr().to_string();
    assert_eq!(echo.header("host"), Some(address.as_str()));
    proxy.shutdown().await;
}

/// Reads `stream` until what it read holds `end`.
async fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    while !read.windows(end.len()).any(|window| window == end) {
        let more = tokio::time::timeout(WAIT, stream.read(&mut buffer)).await;
        match more {
            Ok(Ok(n)) if n > 0 => read.extend_from_slice(&buffer[..n]),
            other => panic!("{other:?} after {} bytes", read.len()),
        }
    }
    read
}

/// A proxy in front of one instance whose client connections have no
/// timer that wakes them in the tests' time (whatever moves the exchanges
/// on is a wake-up of the sockets' or bodies'), a client that has sent it
/// `request_head`, and the instance's connection with that head read.
async fn untimed_exchange(request_head: &[u8]) -> (shardproxy::run::Running, TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("its address");
    let instance = format!("    {{ host = \"b1.example.com\", addr = \"{addr}\" }},");
    let config = support::static_config(&[instance], "", "[[routes]]\nservice = \"frob\"\n")
        .replace(
            "[server]\n",
            "[server]\nidle_timeout = \"1h\"\nheader_read_timeout = \"1h\"\n",
        );
    let proxy = support::start_proxy(&config, "upstream_pool.toml").await;
    let mut client = TcpStream::connect(proxy.listen).await.expect("the proxy");
    client
        .write_all(request_head)
        .await
        .expect("the request head");
    let mut instance = accept(&listener).await;
    assert!(read_head(&mut instance).await, "a request");
    (proxy, client, instance)
}

/// While its client still sends the request body, the response to it
/// flows back, one piece for each piece sent: both directions of the
/// exchange move on their own.
#[tokio::test]
async fn a_response_streams_back_while_its_request_still_streams_up() {
    let (proxy, mut client, mut instance) = untimed_exchange(
        b"POST /k HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    // The instance answers at once, then echoes each chunk as it comes.
    instance
        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("the answer's head");
    read_until(&mut client, b"\r\n\r\n").await;
    for n in 0..3 {
        let piece = format!("piece-{n}");
        let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
        client.write_all(chunk.as_bytes()).await.expect("a chunk");
        read_until(&mut instance, chunk.as_bytes()).await;
        instance
            .write_all(chunk.as_bytes())
            .await
            .expect("its echo");
        read_until(&mut client, chunk.as_bytes()).await;
    }
    client.write_all(b"0\r\n\r\n").await.expect("the end");
    read_until(&mut instance, b"0\r\n\r\n").await;
    instance.write_all(b"0\r\n\r\n").await.expect("the end");
    read_until(&mut client, b"0\r\n\r\n").await;
    proxy.shutdown().await;
}

/// A client that does not read holds its response back all the way to the
/// instance, and gets all of it once it reads.
#[tokio::test]
async fn a_client_that_reads_late_gets_a_large_response_whole() {
    const LENGTH: usize = 16 << 20;
    let (proxy, mut client, mut instance) =
        untimed_exchange(b"GET /big HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {LENGTH}\r\n\r\n");
    instance.write_all(head.as_bytes()).await.expect("the head");
    let body: Vec<u8> = (0..LENGTH).map(|n| (n % 251) as u8).collect();
    // Written until the instance can write no more: the proxy holds back
    // what its client did not read.
    let mut written = 0;
    while written < LENGTH {
        match instance.try_write(&body[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(error) => panic!("the instance's write: {error}"),
        }
        if written < LENGTH {
            instance.writable().await.expect("writable");
        }
    }
    assert!(
        written < LENGTH,
        "16 MiB went by without the client reading"
    );

    let reading = tokio::spawn(async move {
        let head = read_until(&mut client, b"\r\n\r\n").await;
        let at = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        let mut received = head[at..].to_vec();
        let mut buffer = vec![0u8; 65536];
        while received.len() < LENGTH {
            match tokio::time::timeout(WAIT, client.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
                other => panic!("after {} bytes: {other:?}", received.len()),
            }
        }
        received
    });
    instance
        .write_all(&body[written..])
        .await
        .expect("the rest");
    let received = reading.await.expect("the client");
    assert!(received == body, "the body came back changed");
    proxy.shutdown().await;
}
