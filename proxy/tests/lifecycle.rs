//! The `shardproxy run` process end to end (SPEC §7, §8, README "Health,
//! reloads, shutdown"): the real binary, signalled as an init system would
//! signal it.
//!
//! - SIGHUP reloads the config file: a valid change takes effect without
//!   failing a request in flight; an invalid one, or one whose rings do not
//!   resolve, is refused and logged, and the running config stays.
//! - SIGTERM stops accepting, lets the requests in flight finish within
//!   `server.drain_timeout`, and exits 0.
//! - `/metrics` is valid Prometheus text format, checked by a strict
//!   parser here (and by the Python client's parser when it is installed).
//!
//! Backends are `support::backend` on 127.0.0.1:0 in the test process;
//! services list them statically, so no DNS is needed. The proxy's ports
//! are picked by binding 127.0.0.1:0 first; if the binary still cannot bind
//! them it is started again on others. Waits poll a condition with a bound,
//! never a fixed sleep.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::backend::{Backend, Behaviour};
use support::client::Client;
use support::process::{collect_lines, free_port, Proxy};
use support::{wait_until, WAIT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

// === Configs ===

/// A service section listing `backends` with the given tokens (host
/// `NAME.example.com`).
fn service(name: &str, backends: &[(&Backend, &str)], extra: &str) -> String {
    let instances: Vec<String> = backends
        .iter()
        .map(|(backend, tokens)| {
            format!(
                "    {{ host = \"{}.example.com\", addr = \"{}\", tokens = [\"{tokens}\"] }},",
                backend.name(),
                backend.addr()
            )
        })
        .collect();
    format!(
        "[services.{name}]\ninstances = [\n{}\n]\n{extra}\n",
        instances.join("\n")
    )
}

/// A whole config: the server on `listen` and `admin` with `drain`, then
/// `rest` (services and routes).
fn config(listen: SocketAddr, admin: SocketAddr, drain: &str, rest: &str) -> String {
    // The DNS server is asked only for `srv` services; naming one keeps the
    // proxy from reading /etc/resolv.conf.
    format!(
        r#"
[server]
listen = "{listen}"
admin = "{admin}"
drain_timeout = "{drain}"

[log]
level = "info"

[dns]
servers = ["127.0.0.1:53"]

{rest}
"#
    )
}

fn route(path_prefix: &str, service: &str) -> String {
    format!("[[routes]]\npath_prefix = \"{path_prefix}\"\nservice = \"{service}\"\n")
}

// === Reload ===

/// What one request of a stream got.
#[derive(Debug)]
struct Outcome {
    path: String,
    started: Instant,
    finished: Instant,
    status: Result<StatusCode, String>,
    backend: Option<String>,
}

/// Sends `paths` in turn, round and round, on one keep-alive client until
/// `stop` is set; returns every outcome.
async fn stream(
    proxy: SocketAddr,
    paths: Vec<String>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) -> Vec<Outcome> {
    let client = Client::http1();
    let mut outcomes = Vec::new();
    for path in paths.iter().cycle() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        let answer = client.try_get(proxy, path).await;
        outcomes.push(Outcome {
            path: path.clone(),
            started,
            finished: Instant::now(),
            backend: answer
                .as_ref()
                .ok()
                .and_then(|a| a.backend().map(str::to_owned)),
            status: answer.map(|answer| answer.status),
        });
        sent.fetch_add(1, Ordering::SeqCst);
    }
    outcomes
}

/// SIGHUP with a valid, changed config takes effect (a key moves
/// to another instance, a new route and service appear) while requests are
/// in flight: slow ones that started before the reload and finish after it,
/// and a stream of fast ones on keep-alive connections. Every one of them
/// is answered `200`.
///
/// The slow backend runs in this process: once the reload is seen, its
/// wait passes by [`support::skip`] (the fast requests under way then wait
/// for answers with far longer bounds; the proxy's process keeps real
/// time).
#[tokio::test]
async fn sighup_applies_a_valid_config_without_failing_a_request() {
    let (b1, b2, b3) = (
        Backend::start("b1").await,
        Backend::start("b2").await,
        Backend::start("b3").await,
    );
    let slow = Backend::start("s1").await;
    const SLOW: Duration = Duration::from_secs(3);
    slow.set(Behaviour::Slow(SLOW));
    let slow_service = service("slow", &[(&slow, "ff")], "");
    // Version 2 swaps the tokens of b1 and b2, so that every key of `frob`
    // changes owner, and adds the service `extra` with a route.
    let v1 = format!(
        "{}{slow_service}{}{}",
        service("frob", &[(&b1, "80"), (&b2, "ff")], ""),
        route("/slow/", "slow"),
        route("/", "frob"),
    );
    let v2 = format!(
        "{}{slow_service}{}{}{}{}",
        service("frob", &[(&b1, "ff"), (&b2, "80")], ""),
        service("extra", &[(&b3, "ff")], ""),
        route("/slow/", "slow"),
        route("/extra/", "extra"),
        route("/", "frob"),
    );
    let proxy = Proxy::start("reload", |listen, admin| config(listen, admin, "30s", &v1)).await;
    let key = "/users/42";
    let (old_owner, new_owner) = match proxy.primary("frob", key).await.as_str() {
        "b1" => ("b1", "b2"),
        _ => ("b2", "b1"),
    };
    let old_extra_owner = proxy.primary("frob", "/extra/7").await;
    proxy.assert_answered_by(key, old_owner).await;
    proxy.assert_answered_by("/extra/7", &old_extra_owner).await;
    let old_fingerprint = proxy.fingerprint("frob").await;

    // Fast streams, and four slow requests in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut fast = tokio::task::JoinSet::new();
    for _ in 0..2 {
        fast.spawn(stream(
            proxy.listen,
            vec![key.to_owned(), "/extra/7".to_owned()],
            Arc::clone(&stop),
            Arc::clone(&sent),
        ));
    }
    let mut slow_requests = tokio::task::JoinSet::new();
    for index in 0..4 {
        let listen = proxy.listen;
        slow_requests.spawn(async move {
            let answer = Client::http1()
                .try_get(listen, &format!("/slow/{index}"))
                .await;
            (index, answer)
        });
    }
    wait_until("four slow requests are in flight", || async {
        slow.in_flight() == 4
    })
    .await;
    wait_until("the fast streams are going", || async {
        sent.load(Ordering::SeqCst) >= 10
    })
    .await;

    proxy.write_config(&config(proxy.listen, proxy.admin, "30s", &v2));
    let hangup = Instant::now();
    proxy.signal("HUP");
    wait_until("the new ring is in use", || async {
        proxy.fingerprint("frob").await != old_fingerprint
    })
    .await;
    let visible = Instant::now();
    assert_eq!(
        slow.in_flight(),
        4,
        "the reload was visible {:?} after SIGHUP, once slow requests had ended: \
         nothing was in flight during it",
        visible - hangup
    );
    // A few rounds of the fast streams on the new config.
    let sent_at_reload = sent.load(Ordering::SeqCst);
    wait_until("the fast streams go on after the reload", || async {
        sent.load(Ordering::SeqCst) >= sent_at_reload + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);

    support::skip(SLOW).await;
    while let Some(joined) = slow_requests.join_next().await {
        let (index, answer) = joined.expect("a slow request does not panic");
        let answer = answer.unwrap_or_else(|error| panic!("/slow/{index}: {error}"));
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "/slow/{index}: {}",
            answer.text()
        );
        assert_eq!(answer.backend(), Some("s1"));
    }
    assert_eq!(slow.in_flight(), 0, "every slow request ended");

    let mut outcomes = Vec::new();
    while let Some(joined) = fast.join_next().await {
        outcomes.extend(joined.expect("a stream does not panic"));
    }
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.status != Ok(StatusCode::OK))
        .collect();
    assert!(failed.is_empty(), "failed during the reload: {failed:#?}");
    let mut before = 0;
    let mut after = 0;
    for outcome in &outcomes {
        let expected = if outcome.finished < hangup {
            before += 1;
            if outcome.path == key {
                old_owner
            } else {
                old_extra_owner.as_str()
            }
        } else if outcome.started > visible {
            after += 1;
            if outcome.path == key {
                new_owner
            } else {
                "b3"
            }
        } else {
            // During the reload: either config.
            continue;
        };
        assert_eq!(outcome.backend.as_deref(), Some(expected), "{outcome:?}");
    }
    assert!(
        before > 0 && after >= 10,
        "{before} fast requests before the reload, {after} after"
    );
    assert!(
        proxy.log().contains("reload done"),
        "the reload is logged:\n{}",
        proxy.log()
    );
    assert_eq!(
        proxy.primary("frob", key).await,
        new_owner,
        "/ring/lookup agrees"
    );
}

/// A SIGHUP whose config does not load (a syntax error, an unknown
/// key) is refused: the log says so, and the proxy keeps serving with the
/// config it had. A valid config afterwards is applied as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_an_invalid_config_changes_nothing() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let v1 = format!(
        "{}{}",
        service("frob", &[(&b1, "80"), (&b2, "ff")], ""),
        route("/", "frob")
    );
    // What a wrong reload would apply: every key moves.
    let swapped = format!(
        "{}{}",
        service("frob", &[(&b1, "ff"), (&b2, "80")], ""),
        route("/", "frob")
    );
    let mut proxy =
        Proxy::start("invalid", |listen, admin| config(listen, admin, "30s", &v1)).await;
    let key = "/users/42";
    let owner = proxy.primary("frob", key).await;
    let other = if owner == "b1" { "b2" } else { "b1" };
    let fingerprint = proxy.fingerprint("frob").await;
    proxy.assert_answered_by(key, &owner).await;

    let invalid = [
        (
            "a syntax error",
            format!(
                "{}\n[server\n",
                config(proxy.listen, proxy.admin, "30s", &swapped)
            ),
        ),
        (
            "an unknown key",
            config(proxy.listen, proxy.admin, "30s", &swapped)
                .replace("[services.frob]\n", "[services.frob]\nshards = 3\n"),
        ),
    ];
    for (refused, (what, text)) in invalid.iter().enumerate() {
        proxy.write_config(text);
        proxy.signal("HUP");
        wait_until(&format!("the reload of {what} is refused"), || async {
            proxy.log().matches("reload refused").count() > refused
        })
        .await;
        assert_eq!(proxy.fingerprint("frob").await, fingerprint, "{what}");
        proxy.assert_answered_by(key, &owner).await;
        assert!(
            proxy.child.try_wait().expect("try_wait").is_none(),
            "{what}: the process runs on"
        );
    }

    // The reload machinery still works.
    proxy.write_config(&config(proxy.listen, proxy.admin, "30s", &swapped));
    proxy.signal("HUP");
    wait_until("the valid config is applied", || async {
        proxy.fingerprint("frob").await != fingerprint
    })
    .await;
    proxy.assert_answered_by(key, other).await;
}

/// A SIGHUP whose config is valid but whose rings do not resolve
/// within `RELOAD_READY_TIMEOUT` (10 s) is refused and logged; meanwhile,
/// and after, the proxy serves with the config it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_rings_that_do_not_resolve_changes_nothing() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let v1 = format!(
        "{}{}",
        service("frob", &[(&b1, "80"), (&b2, "ff")], ""),
        route("/", "frob")
    );
    let proxy = Proxy::start("unresolved", |listen, admin| {
        config(listen, admin, "30s", &v1)
    })
    .await;
    let key = "/users/42";
    let owner = proxy.primary("frob", key).await;
    let ghost_owner = proxy.primary("frob", "/ghost/1").await;
    let fingerprint = proxy.fingerprint("frob").await;

    // The tokens swapped, and a service in DNS that no server answers for:
    // nothing listens on `nowhere`.
    let nowhere = free_port();
    let unresolvable = format!(
        "{}[services.ghost]\nsrv = \"_ghost._http.example.com\"\n{}{}",
        service("frob", &[(&b1, "ff"), (&b2, "80")], ""),
        route("/ghost/", "ghost"),
        route("/", "frob")
    );
    let text = config(proxy.listen, proxy.admin, "30s", &unresolvable).replace(
        "servers = [\"127.0.0.1:53\"]",
        &format!("servers = [\"{nowhere}\"]"),
    );
    proxy.write_config(&text);
    let hangup = Instant::now();
    proxy.signal("HUP");
    // While the new rings are awaited, the old config serves.
    proxy.assert_answered_by(key, &owner).await;
    proxy.assert_answered_by("/ghost/1", &ghost_owner).await;
    assert!(
        hangup.elapsed() < shardproxy::run::RELOAD_READY_TIMEOUT,
        "asked while the reload waited"
    );
    support::wait_until_within(
        shardproxy::run::RELOAD_READY_TIMEOUT + WAIT,
        "the reload is refused",
        || async { proxy.log().contains("reload refused") },
    )
    .await;
    assert!(
        hangup.elapsed() >= shardproxy::run::RELOAD_READY_TIMEOUT,
        "refused after {:?}, before the rings had their time",
        hangup.elapsed()
    );
    let log = proxy.log();
    assert!(
        log.contains("ghost"),
        "the refusal names the service:\n{log}"
    );
    assert_eq!(proxy.fingerprint("frob").await, fingerprint);
    proxy.assert_answered_by(key, &owner).await;
}

// === Shutdown ===

/// Sends a GET on a new connection. True when the proxy refused it: the
/// connection could not be made, or was closed or reset without an answer.
/// A connection left hanging (say, in the backlog of a listener nobody
/// accepts from any more) is not refused: its client would wait for the
/// whole drain.
async fn refused(proxy: SocketAddr) -> bool {
    let mut stream = match tokio::time::timeout(WAIT, TcpStream::connect(proxy)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) => return true,
        Err(_) => return false,
    };
    // No Host: a serving proxy answers 400 at once, without a backend.
    let request = b"GET /users/1 HTTP/1.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return true;
    }
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
        Ok(Ok(read)) => read == 0,
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// SIGTERM stops accepting connections at once, lets every
/// request in flight finish with `200`, and exits 0 as soon as they have
/// (idle keep-alive connections do not hold it up), within
/// `server.drain_timeout`.
///
/// The slow backend runs in this process: once the refusals are seen, its
/// wait passes by [`support::skip`] (the requests under way wait for
/// their answers with far longer bounds; the proxy's process keeps real
/// time).
#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_0() {
    const SLOW: Duration = Duration::from_secs(3);
    const DRAIN: Duration = Duration::from_secs(10);
    let backend = Backend::start("b1").await;
    let rest = format!(
        "{}{}",
        service("frob", &[(&backend, "ff")], ""),
        route("/", "frob")
    );
    let mut proxy =
        Proxy::start("drain", |listen, admin| config(listen, admin, "10s", &rest)).await;
    // An idle keep-alive connection.
    let idle = Client::http1();
    let answer = idle.try_get(proxy.listen, "/users/0").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);

    backend.set(Behaviour::Slow(SLOW));
    let mut in_flight = tokio::task::JoinSet::new();
    for index in 0..4 {
        let listen = proxy.listen;
        in_flight.spawn(async move {
            let answer = Client::http1()
                .try_get(listen, &format!("/users/{index}"))
                .await;
            (index, answer)
        });
    }
    wait_until("four requests are in flight", || async {
        backend.in_flight() == 4
    })
    .await;
    let terminated = Instant::now();
    proxy.signal("TERM");

    // New connections are refused while those requests finish.
    wait_until("new connections are refused", || refused(proxy.listen)).await;
    assert!(
        proxy.child.try_wait().expect("try_wait").is_none() && backend.in_flight() > 0,
        "refusals were seen only once the proxy was done draining"
    );

    support::skip(SLOW).await;
    while let Some(joined) = in_flight.join_next().await {
        let (index, answer) = joined.expect("a request does not panic");
        let answer = answer.unwrap_or_else(|error| {
            panic!("/users/{index}: {error}\nthe proxy's log:\n{}", proxy.log())
        });
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "/users/{index}: {}",
            answer.text()
        );
    }
    let status = proxy.wait_exit(DRAIN + WAIT).await;
    let exited = terminated.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    assert!(
        exited < DRAIN,
        "exited {exited:?} after SIGTERM: the drain waited for idle connections"
    );
    assert!(refused(proxy.admin).await, "the admin API is gone too");
}

/// The serving threads of a process, by name (`/proc/PID/task/*/comm`),
/// with the nanoseconds each has run (`schedstat`'s first field).
fn threads(pid: u32) -> BTreeMap<String, u64> {
    let mut threads = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(name), Ok(schedstat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let ran = schedstat
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        threads.insert(name.trim().to_owned(), ran);
    }
    threads
}

/// `workers = 2`: two threads serve, each accepting from its own socket on
/// the one address, and both take a share of the clients; SIGTERM stops
/// them and the process exits 0.
#[tokio::test]
async fn two_workers_each_serve_clients_on_one_port_and_stop_on_sigterm() {
    let backend = Backend::start("b1").await;
    let rest = format!(
        "{}{}",
        service("frob", &[(&backend, "ff")], ""),
        route("/", "frob")
    );
    let mut proxy = Proxy::start("workers", |listen, admin| {
        config(listen, admin, "10s", &rest).replacen("[log]", "workers = 2\n\n[log]", 1)
    })
    .await;
    let pid = proxy.child.id();
    let workers = ["shardproxy-w0", "shardproxy-w1"];
    // A thread names itself once it runs: until then it shows under the
    // process's name, though its socket already queues connections.
    wait_until("both worker threads are named", || async {
        let named = threads(pid);
        workers.iter().all(|worker| named.contains_key(*worker))
    })
    .await;
    let before = threads(pid);
    // Each client its own connection: the kernel spreads them over the
    // two sockets by their ports, so both get some of 64 (all on one has
    // a chance of 2^-63).
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..64 {
        let listen = proxy.listen;
        clients.spawn(async move {
            let client = Client::http1();
            let mut statuses = Vec::new();
            for request in 0..5 {
                let path = format!("/users/{index}-{request}");
                statuses.push(client.try_get(listen, &path).await.map(|a| a.status));
            }
            statuses
        });
    }
    while let Some(statuses) = clients.join_next().await {
        for status in statuses.unwrap() {
            assert_eq!(status, Ok(StatusCode::OK), "log:\n{}", proxy.log());
        }
    }
    let after = threads(pid);
    for worker in workers {
        assert!(
            after[worker] > before[worker],
            "{worker} did not run while 64 clients were served: {before:?} -> {after:?}"
        );
    }
    let metrics = proxy.admin_text("/metrics").await;
    let served: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("shardproxy_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(served, 320.0, "metrics:\n{metrics}");
    proxy.signal("TERM");
    let status = proxy.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
}

/// The drain lasts at most `server.drain_timeout`: a request that
/// never ends does not keep the process from exiting 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_after_the_drain_timeout_with_a_request_hanging() {
    const DRAIN: Duration = Duration::from_secs(1);
    let backend = Backend::start("b1").await;
    backend.set(Behaviour::Hang);
    let rest = format!(
        "{}{}",
        service(
            "frob",
            &[(&backend, "ff")],
            "try_timeout = \"1m\"\ndeadline = \"1m\""
        ),
        route("/", "frob")
    );
    let mut proxy = Proxy::start("drain-timeout", |listen, admin| {
        config(listen, admin, "1s", &rest)
    })
    .await;
    let listen = proxy.listen;
    let hanging = tokio::spawn(async move { Client::http1().try_get(listen, "/users/1").await });
    wait_until("a request hangs", || async { backend.in_flight() == 1 }).await;
    let terminated = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(DRAIN + WAIT).await;
    let exited = terminated.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", proxy.log());
    assert!(
        exited >= DRAIN,
        "exited {exited:?} after SIGTERM, before the drain timeout, with a request in flight"
    );
    let answer = hanging.await.expect("the request task does not panic");
    assert!(answer.is_err(), "the hanging request got {answer:?}");
}

// === Metrics ===

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: each family's type, and the samples in order.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The samples of `name` whose labels include `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|sample| {
                sample.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

/// Parses Prometheus text format 0.0.4 strictly, as Prometheus would read
/// it, and more: every line is `# HELP name text`, `# TYPE name type`, a
/// sample `name{label="value",...} value [timestamp]`, or empty; names,
/// label names, escapes and float values are valid; a family has at most
/// one HELP and one TYPE, its TYPE comes before its samples, and its
/// samples are together; no series appears twice; counters are finite and
/// not negative; a histogram has, per label set, buckets with increasing
/// `le` ending at `+Inf` whose counts never decrease, `_sum`, and `_count`
/// equal to the `+Inf` bucket.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a newline".to_owned());
    }
    let mut exposition = Exposition::default();
    let mut helps = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        let family = if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            let name = name.ok_or_else(|| at("a comment without a name"))?;
            if !valid_name(name, true) {
                return Err(at("an invalid metric name"));
            }
            match kind {
                Some("HELP") => {
                    check_help(rest.unwrap_or_default()).map_err(|error| at(&error))?;
                    if !helps.insert(name.to_owned()) {
                        return Err(at("a second HELP"));
                    }
                }
                Some("TYPE") => {
                    let kind = rest.unwrap_or_default();
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("an unknown type"));
                    }
                    if exposition.samples.iter().any(|s| s.name == name) {
                        return Err(at("a TYPE after samples of its family"));
                    }
                    if exposition
                        .types
                        .insert(name.to_owned(), kind.to_owned())
                        .is_some()
                    {
                        return Err(at("a second TYPE"));
                    }
                }
                _ => return Err(at("a comment that is neither HELP nor TYPE")),
            }
            name.to_owned()
        } else if line.starts_with('#') {
            return Err(at("a comment that is neither HELP nor TYPE"));
        } else {
            let sample = parse_sample(line).map_err(|error| at(&error))?;
            let family = family_of(&sample.name, &exposition.types).to_owned();
            let key = format!("{}{:?}", sample.name, sample.labels);
            if !series.insert(key) {
                return Err(at("a series that appeared before"));
            }
            if exposition.types.get(&family).map(String::as_str) == Some("counter")
                && !(sample.value.is_finite() && sample.value >= 0.0)
            {
                return Err(at("a counter that is negative or not finite"));
            }
            exposition.samples.push(sample);
            family
        };
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at("a family whose lines are not together"));
            }
            if let Some(previous) = current.replace(family.clone()) {
                finished.insert(previous);
            }
        }
    }
    for (family, kind) in &exposition.types {
        if kind == "histogram" {
            check_histogram(&exposition, family)?;
        }
    }
    Ok(exposition)
}

/// HELP text escapes only `\\` and `\n`.
fn check_help(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("a bad escape in HELP".to_owned());
        }
    }
    Ok(())
}

/// The family a sample belongs to: a histogram's or summary's samples are
/// named `_bucket`, `_sum` and `_count`.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types
                .get(base)
                .is_some_and(|kind| kind == "histogram" || kind == "summary")
            {
                return base;
            }
        }
    }
    name
}

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// A float as the text format writes it (Go's `ParseFloat`, with `+Inf`,
/// `-Inf` and `NaN`).
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            text.parse()
                .map_err(|_| format!("value {text:?} is not a float"))
        }
        _ => Err(format!("value {text:?} is not a float")),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name, true) {
        return Err("an invalid metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut inside) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inside.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inside.find('=').ok_or("a label without =")?;
            let label = &inside[..eq];
            if !valid_name(label, false) || label.starts_with("__") {
                return Err(format!("an invalid label name {label:?}"));
            }
            let quoted = inside[eq + 1..]
                .strip_prefix('"')
                .ok_or("an unquoted label value")?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next().ok_or("an unterminated label value")? {
                    (index, '"') => break index,
                    (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                        'n' => value.push('\n'),
                        escaped @ ('\\' | '"') => value.push(escaped),
                        other => return Err(format!("a bad escape \\{other}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            inside = &quoted[end + 1..];
            match inside.strip_prefix(',') {
                Some(after) => inside = after,
                None if inside.starts_with('}') => {}
                None => return Err("labels not separated by commas".to_owned()),
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("timestamp {timestamp:?} is not an integer"))?;
    }
    if fields.next().is_some() {
        return Err("more than a value and a timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The histogram checks of [`parse_exposition`] for `family`.
fn check_histogram(exposition: &Exposition, family: &str) -> Result<(), String> {
    let bucket_name = format!("{family}_bucket");
    let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in &exposition.samples {
        if sample.name == bucket_name {
            let mut labels = sample.labels.clone();
            let le = labels
                .remove("le")
                .ok_or_else(|| format!("{bucket_name} without le: {sample:?}"))?;
            let le = parse_value(&le)?;
            by_labels
                .entry(labels)
                .or_default()
                .push((le, sample.value));
        } else if sample.name == family {
            return Err(format!("a histogram sample without a suffix: {sample:?}"));
        }
    }
    if by_labels.is_empty() {
        return Err(format!("{family} has no buckets"));
    }
    for (labels, buckets) in &by_labels {
        let what = format!("{family}{labels:?}");
        for pair in buckets.windows(2) {
            if pair[1].0 <= pair[0].0 {
                return Err(format!("{what}: le not increasing: {buckets:?}"));
            }
            if pair[1].1 < pair[0].1 {
                return Err(format!("{what}: bucket counts decrease: {buckets:?}"));
            }
        }
        let Some(&(last_le, infinite)) = buckets.last() else {
            return Err(format!("{what}: no buckets"));
        };
        if last_le != f64::INFINITY {
            return Err(format!("{what}: the last bucket is not +Inf: {buckets:?}"));
        }
        let with = |suffix: &str| {
            exposition
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}{suffix}") && &s.labels == labels)
                .map(|s| s.value)
                .collect::<Vec<f64>>()
        };
        if with("_count") != [infinite] {
            return Err(format!(
                "{what}: _count {:?} is not the +Inf bucket {infinite}",
                with("_count")
            ));
        }
        if with("_sum").len() != 1 {
            return Err(format!("{what}: no single _sum"));
        }
    }
    Ok(())
}

/// The checker refuses what Prometheus refuses (so that its passing means
/// something).
#[test]
fn the_exposition_checker_rejects_invalid_text() {
    let valid = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                 # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                 h_sum 3.5\nh_count 2\n";
    parse_exposition(valid).unwrap();
    let invalid = [
        "a_total 1",
        "# TYPE a counter\na 1\n# TYPE a counter\n",
        "# TYPE a counter\na -1\n",
        "a{x=1} 1\n",
        "a{x=\"1\" y=\"2\"} 1\n",
        "a{x=\"\\t\"} 1\n",
        "a one\n",
        "a 1 2 3\n",
        "a 1\na 1\n",
        "a 1\nb 1\na{x=\"1\"} 1\n",
        "# comment\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
    ];
    for text in invalid {
        assert!(parse_exposition(text).is_err(), "accepted: {text:?}");
    }
}

/// Parses `text` with the Python Prometheus client's parser; `None` when
/// that parser is not installed, else the number of samples it read or why
/// it refused the text.
fn python_parse(text: &str) -> Option<Result<usize, String>> {
    const SCRIPT: &str = "
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
families = list(text_string_to_metric_families(sys.stdin.read()))
print(sum(len(family.samples) for family in families))
";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("python reads the scrape");
    let output = child.wait_with_output().expect("python runs");
    match output.status.code() {
        Some(3) => None,
        Some(0) => Some(
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|error| format!("python printed no count: {error}")),
        ),
        _ => Some(Err(String::from_utf8_lossy(&output.stderr).into_owned())),
    }
}

/// SPEC §7: `/metrics` of the running binary, after requests that succeed,
/// are retried and eject an instance, is valid Prometheus text format, with
/// the families the docs list, their types, and values that agree with
/// what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_is_valid_prometheus_text() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let rest = format!(
        "{}{}",
        service(
            "frob",
            &[(&b1, "80"), (&b2, "ff")],
            "slaves = 1\noutlier_detection = { consecutive_failures = 2, \
             base_ejection_time = \"1m\", max_ejection_time = \"5m\" }"
        ),
        route("/", "frob")
    );
    let proxy = Proxy::start("metrics", |listen, admin| {
        config(listen, admin, "30s", &rest)
    })
    .await;
    for index in 0..20 {
        let answer = proxy.get(&format!("/users/{index}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    // b1 fails: its keys are retried on b2 until it is ejected.
    b1.set(Behaviour::Status(503));
    for index in 0..20 {
        proxy
            .assert_answered_by(&format!("/users/{index}"), "b2")
            .await;
    }
    let text = proxy.admin_text("/metrics").await;
    let exposition = parse_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));

    let families = [
        ("shardproxy_requests_total", "counter"),
        ("shardproxy_request_duration_seconds", "histogram"),
        ("shardproxy_upstream_attempts_total", "counter"),
        ("shardproxy_retries_total", "counter"),
        ("shardproxy_ejections_total", "counter"),
        ("shardproxy_ring_instances", "gauge"),
        ("shardproxy_ring_tokens", "gauge"),
        ("shardproxy_ring_info", "gauge"),
        ("shardproxy_process_resident_memory_bytes", "gauge"),
    ];
    for (family, kind) in families {
        assert_eq!(
            exposition.types.get(family).map(String::as_str),
            Some(kind),
            "{family}\n{text}"
        );
    }
    for name in exposition.types.keys() {
        assert!(name.starts_with("shardproxy_"), "{name}");
    }
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        exposition
            .find(name, labels)
            .iter()
            .map(|sample| sample.value)
            .sum()
    };
    let frob = ("service", "frob");
    assert_eq!(
        value("shardproxy_requests_total", &[frob, ("status", "200")]),
        40.0
    );
    assert_eq!(
        value("shardproxy_request_duration_seconds_count", &[frob]),
        40.0
    );
    let b1_instance = format!("b1.example.com:{}", b1.port());
    assert_eq!(
        value(
            "shardproxy_upstream_attempts_total",
            &[
                frob,
                ("upstream", &b1_instance),
                ("outcome", "retryable_status")
            ]
        ),
        2.0
    );
    assert_eq!(value("shardproxy_retries_total", &[frob]), 2.0);
    assert_eq!(
        value(
            "shardproxy_ejections_total",
            &[frob, ("upstream", &b1_instance), ("reason", "failures")]
        ),
        1.0
    );
    assert_eq!(value("shardproxy_ring_instances", &[frob]), 2.0);
    let fingerprint = proxy.fingerprint("frob").await;
    assert_eq!(
        value(
            "shardproxy_ring_info",
            &[frob, ("fingerprint", &fingerprint)]
        ),
        1.0
    );

    match python_parse(&text) {
        None => eprintln!("prometheus_client is not installed: the Python parser is skipped"),
        Some(Ok(count)) => assert_eq!(
            count,
            exposition.samples.len(),
            "the Python parser reads as many samples"
        ),
        Some(Err(error)) => panic!("the Python parser refuses the scrape: {error}\n{text}"),
    }
}

/// Prometheus's own checker, `promtool check metrics`, finds nothing to
/// say about a live `/metrics` page: after cached, passed-through and
/// failing requests, every family is valid and follows its naming rules
/// (counters end in `_total`, units are base units, and so on). Skipped,
/// with a message, where promtool is not installed
/// (`scripts/install-test-deps` installs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_the_metrics_page() {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("promtool is not installed (Debian: prometheus): test skipped");
        return;
    }
    let backend = Backend::start("b1").await;
    backend.reply_at(
        "/cached/",
        support::backend::Reply::with(&[("cache-control", "max-age=600")]),
    );
    // Nothing listens there: the service's requests fail to connect. The
    // port stays bound (never listening) for the whole test, so that no
    // listener, the proxy's own included, can be given it meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let gone = held.local_addr().unwrap();
    let rest = format!(
        "{}[services.frob.cache]\nenabled = true\n\n\
         [services.gone]\ninstances = [{{ host = \"gone.example.com\", addr = \"{gone}\", tokens = [\"ff\"] }}]\n\n{}{}",
        service("frob", &[(&backend, "ff")], ""),
        route("/gone/", "gone"),
        route("/", "frob"),
    );
    let proxy = Proxy::start("promtool", |listen, admin| {
        config(listen, admin, "30s", &rest)
    })
    .await;
    for path in ["/cached/a", "/cached/a", "/cached/a", "/plain/b"] {
        let answer = proxy.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    }
    let failed = proxy.get("/gone/c").await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text());

    let text = proxy.admin_text("/metrics").await;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads the scrape");
    let output = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}\n{text}",
        output.status
    );

    // What the checker read holds what happened.
    let frob = ("service", "frob");
    let sum = |name: &str, labels: &[(&str, &str)]| support::sum_samples(&text, name, labels);
    assert_eq!(sum("shardproxy_cache_hits_total", &[frob]), 2.0, "{text}");
    let b1 = format!("b1.example.com:{}", backend.port());
    assert_eq!(
        sum(
            "shardproxy_upstream_attempt_duration_seconds_count",
            &[frob, ("upstream", &b1)]
        ),
        2.0,
        "a miss and a pass reached b1\n{text}"
    );
    assert_eq!(
        sum("shardproxy_upstream_in_flight", &[frob, ("upstream", &b1)]),
        0.0
    );
    let gone_upstream = format!("gone.example.com:{}", gone.port());
    assert_eq!(
        sum(
            "shardproxy_upstream_attempts_total",
            &[
                ("service", "gone"),
                ("upstream", &gone_upstream),
                ("outcome", "connect_error")
            ]
        ),
        1.0,
        "{text}"
    );
    // b1's connections go back to the pool once their answers are read
    // (a connection's driver may take a moment to see the end).
    let connections = |text: &str, state: &str| {
        support::sum_samples(
            text,
            "shardproxy_upstream_connections",
            &[frob, ("upstream", &b1), ("state", state)],
        )
    };
    wait_until("b1's connections are idle", || async {
        let text = proxy.admin_text("/metrics").await;
        connections(&text, "idle") >= 1.0 && connections(&text, "active") == 0.0
    })
    .await;
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("shardproxy_config_info{hash=\""))
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("\nshardproxy_config_last_reload_success_timestamp_seconds "));
    // README's step 5 greps the ring's line this way.
    let ring_line = ring_info_line(&text, "frob");
    assert!(ring_line.is_some(), "{text}");
}

/// The line `grep '^shardproxy_ring_info{.*service="NAME"'` prints, as the
/// README's publishing step runs it.
fn ring_info_line<'a>(text: &'a str, service: &str) -> Option<&'a str> {
    let wanted = format!("service=\"{service}\"");
    text.lines().find(|line| {
        line.strip_prefix("shardproxy_ring_info{")
            .is_some_and(|labels| labels.contains(&wanted))
    })
}

/// Prometheus counters only go up for the life of a process (a reset means
/// a restart, as `shardproxy_process_start_time_seconds` tells): a SIGHUP
/// reload neither sets them back to zero nor loses what requests count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_a_reload() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let v1 = format!(
        "{}{}",
        service("frob", &[(&b1, "80"), (&b2, "ff")], ""),
        route("/", "frob")
    );
    let v2 = format!(
        "{}{}",
        service("frob", &[(&b1, "ff"), (&b2, "80")], ""),
        route("/", "frob")
    );
    let proxy = Proxy::start("counters", |listen, admin| {
        config(listen, admin, "30s", &v1)
    })
    .await;
    let answered = |text: &str| -> f64 {
        let exposition = parse_exposition(text).unwrap_or_else(|error| panic!("{error}"));
        exposition
            .find(
                "shardproxy_requests_total",
                &[("service", "frob"), ("status", "200")],
            )
            .iter()
            .map(|sample| sample.value)
            .sum()
    };
    for index in 0..10 {
        let answer = proxy.get(&format!("/users/{index}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    assert_eq!(answered(&proxy.admin_text("/metrics").await), 10.0);

    let fingerprint = proxy.fingerprint("frob").await;
    proxy.write_config(&config(proxy.listen, proxy.admin, "30s", &v2));
    proxy.signal("HUP");
    wait_until("the new ring is in use", || async {
        proxy.fingerprint("frob").await != fingerprint
    })
    .await;
    for index in 0..5 {
        let answer = proxy.get(&format!("/users/{index}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    assert_eq!(
        answered(&proxy.admin_text("/metrics").await),
        15.0,
        "shardproxy_requests_total after 10 requests, a reload and 5 more"
    );
}

// === Memory ===

/// The resident memory of process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS");
    kib << 10
}

/// SPEC §9.8: what the cache holds stays bounded by `max_size`, objects
/// evicted while slow clients are still sent them included (the store
/// within `max_size`, what slow clients hold of evicted objects and what
/// is being read in within another). Twenty clients that read nothing of twenty distinct cacheable
/// 6 MiB objects, with `max_size = "16MiB"`: the proxy's memory grows by a
/// bounded amount, not by the 120 MiB they asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_read_nothing_of_cached_objects_keep_the_cache_within_max_size() {
    const OBJECT: usize = 6 << 20;
    const CLIENTS: usize = 20;
    let backend = Backend::start("big").await;
    backend.reply_at(
        "/o/",
        support::backend::Reply::with(&[("cache-control", "max-age=600")]).body_len(OBJECT),
    );
    let cache =
        "[services.frob.cache]\nenabled = true\nmax_size = \"16MiB\"\nmax_object_size = \"8MiB\"";
    let proxy = Proxy::start("memory", |listen, admin| {
        config(
            listen,
            admin,
            "1s",
            &format!(
                "{}\n{}",
                service("frob", &[(&backend, "ff")], cache),
                route("/", "frob")
            ),
        )
    })
    .await;
    let before = resident(proxy.child.id());
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let mut stream = TcpStream::connect(proxy.listen).await.unwrap();
        let request = format!("GET /o/{n} HTTP/1.1\r\nHost: shop.example\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        clients.push(stream);
    }
    let answered = |text: &str| {
        [
            "shardproxy_cache_misses_total",
            "shardproxy_cache_passes_total",
        ]
        .iter()
        .map(|name| support::sum_samples(text, name, &[("service", "frob")]))
        .sum::<f64>()
    };
    let started = Instant::now();
    while answered(&proxy.admin_text("/metrics").await) < CLIENTS as f64 {
        assert!(started.elapsed() < WAIT, "the proxy answered every client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = proxy.admin_text("/metrics").await;
    let held = support::sum_samples(
        &metrics,
        "shardproxy_cache_stored_bytes",
        &[("service", "frob")],
    );
    assert!(
        held <= f64::from(2 * (16 << 20) + (8 << 20)),
        "{held} bytes counted as held with max_size = 16MiB"
    );
    // Here it grows by about 44 MiB (the store's 16, what is held apart
    // from it, hyper's buffers); without the bound by more than 125.
    let grown = resident(proxy.child.id()).saturating_sub(before);
    assert!(
        grown < 80 << 20,
        "the proxy grew by {} MiB for {CLIENTS} clients of {} MiB objects",
        grown >> 20,
        OBJECT >> 20
    );
    drop(clients);
    backend.shutdown().await;
}

// === The access log ===

/// The access log is its own writer: at `level = "error"` the process logs
/// nothing of a served request, and still every request gets its line.
/// `SIGUSR1` opens the file again after logrotate moved it.
#[tokio::test]
async fn the_access_log_writes_every_request_at_any_level_and_reopens_on_sigusr1() {
    let backend = Backend::start("logged").await;
    let log = support::access_log::AccessLogFile::new("lifecycle");
    let proxy = Proxy::start("access-log", |listen, admin| {
        config(
            listen,
            admin,
            "1s",
            &format!(
                "{}\n{}",
                service("frob", &[(&backend, "ff")], ""),
                route("/", "frob")
            ),
        )
        .replacen("[log]\nlevel = \"info\"", &log.config("error"), 1)
    })
    .await;
    for n in 0..3 {
        assert_eq!(proxy.get(&format!("/before/{n}")).await.status, 200);
    }
    let lines = log.wait_for(3).await;
    assert_eq!(lines.len(), 3);
    for (n, line) in lines.iter().enumerate() {
        // Every key of SPEC §9.2, in one JSON object per line.
        support::access_log::assert_every_key(line);
        assert_eq!(line["path"], format!("/before/{n}"), "{line}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["method"], "GET");
        assert_eq!(line["service"], "frob");
        assert_eq!(line["attempts"][0]["outcome"], "200", "{line}");
    }
    assert!(
        !proxy.log().contains("/before/"),
        "the process's own log stays at error: {}",
        proxy.log()
    );
    // logrotate: the file is moved away, then the proxy told to reopen.
    let rotated = log.path.with_extension("log.1");
    std::fs::rename(&log.path, &rotated).expect("the log moves");
    proxy.signal("USR1");
    // Lines may still go to the moved file until the signal is handled.
    let mut n = 0;
    wait_until("a line in the reopened file", || {
        n += 1;
        let path = format!("/after/{n}");
        let proxy = &proxy;
        let log = &log;
        async move {
            assert_eq!(proxy.get(&path).await.status, 200);
            !log.lines().is_empty()
        }
    })
    .await;
    let moved = std::fs::read_to_string(&rotated).expect("the moved log");
    assert!(moved.lines().count() >= 3, "{moved}");
    assert!(log.lines()[0]["path"]
        .as_str()
        .unwrap()
        .starts_with("/after/"));
    let _ = std::fs::remove_file(&rotated);
    backend.shutdown().await;
}

// === The demo ===

/// The demo prints what a person reads: its "try it" lines, and not a log
/// line per query of its own DNS server.
#[tokio::test]
async fn the_demo_prints_what_a_person_reads_and_not_its_dns_queries() {
    let (listen, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args([
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo runs");
    let (stdout, out_reader) = collect_lines(child.stdout.take().expect("stdout"));
    let (stderr, err_reader) = collect_lines(child.stderr.take().expect("stderr"));
    let client = Client::http1();
    wait_until("the demo serves", || {
        let client = client.clone();
        async move {
            matches!(client.try_get(admin, "/readyz").await, Ok(answer) if answer.status == StatusCode::OK)
        }
    })
    .await;
    for n in 0..20 {
        let answer = client.get(listen, &format!("/user/{n}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = child.wait();
    let _ = (out_reader.join(), err_reader.join());
    let (stdout, stderr) = (
        stdout.lock().unwrap().clone(),
        stderr.lock().unwrap().clone(),
    );
    assert!(
        stdout.contains(&listen.to_string()),
        "the try-it lines name the proxy's address:\n{stdout}"
    );
    assert!(
        !stderr.contains("hickory_server") && !stdout.contains("hickory_server"),
        "the DNS server's queries are not logged:\n{stderr}"
    );
    assert!(
        stderr.lines().count() < 20,
        "a few lines of the demo's own, not one per request or query:\n{stderr}"
    );
}
