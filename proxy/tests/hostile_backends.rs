//! Hostile or failing backends (SPEC §5, README "Limits and hardening"): raw
//! TCP backends that reset, truncate, answer garbage, trickle a head or a body
//! forever, or send huge headers. The proxy answers a clear `502` or `504`
//! naming the instance within the deadline (or, once a response has started,
//! passes the truncation on so the client sees it), serves on, and afterwards
//! its file descriptors and memory are back to their baseline.
//!
//! One test, so that nothing else in this process opens descriptors or
//! allocates while they are counted.

#![cfg(test)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardproxy::run::Running;
use support::backend::Backend;
use support::raw::{exchange, Raw};
use support::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The deadline of every misbehaving service.
const DEADLINE: Duration = Duration::from_secs(1);

/// How a raw backend misbehaves once it has read a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehaviour {
    /// Resets the connection (RST) without answering.
    ResetBeforeHead,
    /// Sends a head with `Content-Length: 100` and 10 bytes, then resets.
    ResetMidBody,
    /// Sends a head with `Content-Length: 100` and 10 bytes, then closes.
    TruncatedBody,
    /// A status line that is not one.
    GarbageStatus,
    /// Binary noise.
    BinaryGarbage,
    /// A status line, then one byte of a header every 50 ms, forever.
    SlowHead,
    /// A head with 1 MiB of header fields.
    HugeHeaders,
    /// A chunked `200`, then one chunk every 20 ms, forever.
    EndlessBody,
}

const ALL: [Misbehaviour; 8] = [
    Misbehaviour::ResetBeforeHead,
    Misbehaviour::ResetMidBody,
    Misbehaviour::TruncatedBody,
    Misbehaviour::GarbageStatus,
    Misbehaviour::BinaryGarbage,
    Misbehaviour::SlowHead,
    Misbehaviour::HugeHeaders,
    Misbehaviour::EndlessBody,
];

impl Misbehaviour {
    /// Its service, host and path prefix name.
    fn name(self) -> &'static str {
        match self {
            Misbehaviour::ResetBeforeHead => "reset-before-head",
            Misbehaviour::ResetMidBody => "reset-mid-body",
            Misbehaviour::TruncatedBody => "truncated-body",
            Misbehaviour::GarbageStatus => "garbage-status",
            Misbehaviour::BinaryGarbage => "binary-garbage",
            Misbehaviour::SlowHead => "slow-head",
            Misbehaviour::HugeHeaders => "huge-headers",
            Misbehaviour::EndlessBody => "endless-body",
        }
    }

    /// Starts a backend that misbehaves this way on every connection;
    /// also returns the count of its connections still open, and of the
    /// request heads it has read.
    async fn start(self) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(AtomicUsize::new(0));
        let (counted, read) = (Arc::clone(&open), Arc::clone(&heads));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (counted, read) = (Arc::clone(&counted), Arc::clone(&read));
                tokio::spawn(async move {
                    self.serve(stream, &read).await;
                    counted.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, open, heads)
    }

    /// Reads one request head (counted in `heads`), then misbehaves. Ends
    /// when the proxy goes.
    async fn serve(self, mut stream: TcpStream, heads: &AtomicUsize) {
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(count) => head.extend_from_slice(&buffer[..count]),
            }
        }
        heads.fetch_add(1, Ordering::SeqCst);
        let started = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789";
        let _ = match self {
            Misbehaviour::ResetBeforeHead => stream.set_zero_linger(),
            Misbehaviour::ResetMidBody => {
                let _ = stream.write_all(started).await;
                stream.set_zero_linger()
            }
            Misbehaviour::TruncatedBody => stream.write_all(started).await,
            Misbehaviour::GarbageStatus => {
                stream
                    .write_all(b"HTTP/1.1 two hundred OK\r\ncontent-length: 0\r\n\r\n")
                    .await
            }
            Misbehaviour::BinaryGarbage => {
                let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
                stream.write_all(&noise).await
            }
            Misbehaviour::SlowHead => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nx-slow: ").await;
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if stream.write_all(b"a").await.is_err() {
                        break Ok(());
                    }
                }
            }
            Misbehaviour::HugeHeaders => {
                let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
                for index in 0..16_384 {
                    answer.extend_from_slice(
                        format!("x-h{index:05}: {}\r\n", "v".repeat(54)).as_bytes(),
                    );
                }
                answer.extend_from_slice(b"content-length: 0\r\n\r\n");
                stream.write_all(&answer).await
            }
            Misbehaviour::EndlessBody => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                loop {
                    if stream.write_all(b"5\r\nchunk\r\n").await.is_err() {
                        break Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        // Dropped here: closed (or reset, with zero linger).
    }
}

/// The proxy, one service per misbehaviour at `/NAME/`, and a good
/// service at `/`.
async fn start(good: &Backend, bad: &[(Misbehaviour, SocketAddr)]) -> Running {
    // With error_detail, the answers name the instance that misbehaved.
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nerror_detail = true\n\n",
    );
    for (misbehaviour, addr) in bad {
        let name = misbehaviour.name();
        text.push_str(&format!(
            "[services.{name}]\ninstances = [{{ host = \"{name}.example.com\", addr = \"{addr}\" }}]\ntry_timeout = \"1s\"\ndeadline = \"1s\"\n\n[[routes]]\npath_prefix = \"/{name}/\"\nservice = \"{name}\"\n\n"
        ));
    }
    text.push_str(&format!(
        "[services.good]\ninstances = [{{ host = \"good.example.com\", addr = \"{}\" }}]\n\n[[routes]]\nservice = \"good\"\n",
        good.addr()
    ));
    support::start_proxy(&text, "test.toml").await
}

/// One request to the misbehaving service, whose backend has read `heads`
/// request heads so far; checks the answer.
async fn check(proxy: SocketAddr, misbehaviour: Misbehaviour, port: u16, heads: &AtomicUsize) {
    let name = misbehaviour.name();
    let instance = format!("{name}.example.com:{port}");
    let request = format!("GET /{name}/k HTTP/1.1\r\nHost: a.example\r\n\r\n");
    let started = Instant::now();
    match misbehaviour {
        Misbehaviour::ResetMidBody | Misbehaviour::TruncatedBody => {
            // The head was passed on before the body broke: the client must
            // see the truncation, never a complete response.
            // (`reply` is `None` once the connection ended before a whole
            // response.)
            let (_, reply) = exchange(proxy, request.as_bytes()).await;
            assert!(reply.is_none(), "{name}: a cut body looks whole: {reply:?}");
        }
        Misbehaviour::EndlessBody => {
            let mut raw = Raw::connect(proxy).await;
            raw.send(request.as_bytes()).await;
            // Read some of it, then leave.
            let mut stream = raw.into_stream();
            let mut buffer = [0u8; 256];
            let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
                .await
                .expect("the head and first chunks arrive")
                .unwrap();
            assert!(
                buffer[..read].starts_with(b"HTTP/1.1 200 OK"),
                "{name}: {:?}",
                String::from_utf8_lossy(&buffer[..read])
            );
        }
        _ => {
            let (_, reply) = if misbehaviour == Misbehaviour::SlowHead {
                // The head never ends: the deadline ends the attempt, and
                // passes once the backend has the request.
                let read = || heads.load(Ordering::SeqCst);
                support::past_timeouts(exchange(proxy, request.as_bytes()), read, DEADLINE).await
            } else {
                exchange(proxy, request.as_bytes()).await
            };
            let reply = reply.unwrap_or_else(|| panic!("{name}: no answer"));
            let expected = if misbehaviour == Misbehaviour::SlowHead {
                504
            } else {
                502
            };
            assert_eq!(reply.status, expected, "{name}: {reply:?}");
            assert!(reply.body.contains(&instance), "{name}: {reply:?}");
            assert!(
                started.elapsed() < DEADLINE + Duration::from_secs(2),
                "{name}: answered after {:?}",
                started.elapsed()
            );
        }
    }
}

/// A normal request through the good service.
async fn serves_on(proxy: SocketAddr) {
    let (_, reply) = exchange(proxy, b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert_eq!(reply.map(|reply| reply.status), Some(200));
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// On the current-thread runtime: the slow head's deadline passes by
/// [`support::skip`].
#[tokio::test]
async fn hostile_backends_get_clear_answers_and_leave_nothing_behind() {
    let good = Backend::start("good").await;
    let mut bad = Vec::new();
    let mut open = Vec::new();
    let mut heads = Vec::new();
    for misbehaviour in ALL {
        let (addr, connections, read) = misbehaviour.start().await;
        bad.push((misbehaviour, addr));
        open.push(connections);
        heads.push(read);
    }
    let all_closed = || {
        let open = open.clone();
        async move { open.iter().all(|count| count.load(Ordering::SeqCst) == 0) }
    };
    let running = start(&good, &bad).await;
    let proxy = running.listen;

    // Once each, to warm up (pools, buffers, lazily built state).
    for (&(misbehaviour, addr), heads) in bad.iter().zip(&heads) {
        check(proxy, misbehaviour, addr.port(), heads).await;
        serves_on(proxy).await;
    }
    support::wait_until("the warm-up's upstream connections close", all_closed).await;
    let fds = open_fds();
    let memory = resident_bytes();

    for _ in 0..10 {
        for (&(misbehaviour, addr), heads) in bad.iter().zip(&heads) {
            check(proxy, misbehaviour, addr.port(), heads).await;
            serves_on(proxy).await;
        }
    }

    // Descriptors: back to the baseline once the hostile connections have
    // been noticed closed (the proxy's side of a client connection closes
    // when its task sees the end).
    support::wait_until("the upstream connections close", all_closed).await;
    support::wait_until("descriptors are back to the baseline", || async {
        open_fds() <= fds
    })
    .await;
    // Memory: 80 hostile exchanges (with 1 MiB heads among them) leave at
    // most a little growth in allocator caches.
    let grown = resident_bytes().saturating_sub(memory);
    println!(
        "descriptors {fds} -> {}, resident memory {memory} -> {} bytes",
        open_fds(),
        resident_bytes()
    );
    assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
    serves_on(proxy).await;
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("the proxy shuts down");
}
