//! Shared support for the integration tests: `mod support;` in a test file.
//!
//! - [`backend`]: real HTTP backends whose behaviour a test switches.
//! - [`bind`]: a real BIND `named` with a dynamic zone, for end-to-end tests.
//! - [`knot`]: a real Knot DNS `knotd` with a zone that takes signed
//!   updates.
//! - [`primary`]: what those two share: ports, directories, readiness,
//!   keys.
//! - [`haproxy`]: a real HAProxy in front of a proxy, sending the PROXY
//!   protocol header.
//! - [`client`]: the HTTP client the tests talk to the proxy with.
//! - [`process`]: `shardproxy run` as a child process, waited on until
//!   ready.
//! - [`recorder`]: a backend that records the exact bytes it receives.
//! - [`raw`]: a raw TCP client that sends exact bytes.
//! - [`pki`]: a test CA and the certificates it signs, made with
//!   `openssl`.
//!
//! The in-process DNS server is `shardproxy::dns_server`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
// Test-support code: a failure is a panic with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod access_log;
pub mod backend;
pub mod bind;
pub mod client;
pub mod haproxy;
pub mod knot;
pub mod nginx;
pub mod pki;
pub mod primary;
pub mod process;
pub mod python;
pub mod raw;
pub mod recorder;

use std::future::Future;
use std::time::Duration;

/// How long any single wait of a test (an answer, a condition) may take
/// before the test fails: long enough for a loaded machine, short enough
/// that a hang is reported rather than waited out.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` every 10 ms until it holds; fails the test after
/// [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(WAIT, what, condition).await;
}

/// Polls `condition` every 10 ms until it holds; fails the test after
/// `within`. Tests wait on readiness this way, never on fixed sleeps.
pub async fn wait_until_within<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(within, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// Moves the runtime's clock `by` forward at once, firing every timer that
/// falls due (ejections ending, grace and idle timeouts, refresh loops
/// waking, per-try timeouts of requests hung on purpose), then lets time
/// run on as usual. The proxy under test runs its timers on this runtime's
/// clock (`tokio::time`), so a test waits for timed behaviour without
/// spending real seconds.
///
/// Only for a moment when no exchange is on its way over a socket, or
/// when the one that is can only end by the timeout skipped to (a backend
/// that holds the request, see [`past_timeouts`]): a timeout on an
/// exchange whose answer was coming would fire too. Between two skips
/// every exchange runs in real time, unpaused. Needs the current-thread
/// runtime (`#[tokio::test]`), as `tokio::time::pause` does.
pub async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Polls `condition` as [`wait_until`] does, skipping `by` ([`skip`])
/// before each look: for timed behaviour whose timer starts at a moment
/// the test does not see (a connection going back to a pool after its
/// answer was sent), so that a single skip might come before it. The bound
/// is [`WAIT`] of real time, the runtime's clock being moved by the skips.
pub async fn skip_until<F, Fut>(by: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        skip(by).await;
        if condition().await {
            return;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `exchange` (requests to the proxy, awaited to their answer) while
/// the proxy's attempts are meant to end by a timeout of `by` (a per-try
/// timeout, or what is left of the deadline) on a backend that reads the
/// request and then never answers, or answers late. `reached` counts the
/// requests such backends have read: each time it goes up, the proxy only
/// waits for that timeout and the client for its answer (far longer), so
/// `by` passes by [`skip`] instead of in real time.
pub async fn past_timeouts<T, N>(
    exchange: impl Future<Output = T>,
    reached: impl Fn() -> N,
    by: Duration,
) -> T
where
    N: PartialOrd,
{
    let mut seen = reached();
    tokio::pin!(exchange);
    loop {
        tokio::select! {
            answer = &mut exchange => return answer,
            () = wait_until("a backend has the request", || {
                let more = reached() > seen;
                async move { more }
            }) => {
                seen = reached();
                skip(by).await;
            }
        }
    }
}

/// [`past_timeouts`] for `request` sent with `client`, the `hanging`
/// backends counting the requests they read.
pub async fn send_past_hangs(
    client: &client::Client,
    request: http::Request<client::Body>,
    hanging: &[&backend::Backend],
    by: Duration,
) -> client::Answer {
    let reached = || {
        hanging
            .iter()
            .map(|backend| backend.requests())
            .sum::<u64>()
    };
    past_timeouts(client.send(request), reached, by).await
}

/// The sum of the samples of metric `name` in a text-format scrape whose
/// labels include every one of `labels`. Label values here are host names,
/// numbers and words: no escapes to undo.
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sample_name, sample_labels) = match series.split_once('{') {
            Some((sample_name, rest)) => (sample_name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if sample_name != name {
            continue;
        }
        let has = |(label, wanted): &(&str, &str)| {
            sample_labels
                .split(',')
                .any(|pair| pair == format!("{label}=\"{wanted}\""))
        };
        if labels.iter().all(has) {
            sum += value
                .parse::<f64>()
                .unwrap_or_else(|error| panic!("{line}: {error}"));
        }
    }
    sum
}

/// One line of a static service's `instances = [...]`: `backend` as host
/// `NAME.example.com` at its address, owning `tokens`.
pub fn instance_line(backend: &backend::Backend, tokens: &[&str]) -> String {
    let tokens: Vec<String> = tokens.iter().map(|token| format!("\"{token}\"")).collect();
    format!(
        "    {{ host = \"{}.example.com\", addr = \"{}\", tokens = [{}] }},",
        backend.name(),
        backend.addr(),
        tokens.join(", ")
    )
}

/// A config with one static service `frob` of `instances` (lines of
/// [`instance_line`]) and `service` lines in its section, followed by
/// `rest` (e.g. `[[routes]]` tables). Both listeners on ephemeral ports;
/// the DNS server is never asked (the ring is static), naming one keeps
/// the proxy from reading /etc/resolv.conf.
pub fn static_config(instances: &[String], service: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [dns]\nservers = [\"127.0.0.1:53\"]\n\n\
         [services.frob]\ninstances = [\n{}\n]\n{service}\n\n{rest}\n",
        instances.join("\n")
    )
}

/// Starts a proxy on `config` (TOML text, called `file` in errors) and
/// waits until every ring is ready.
pub async fn start_proxy(config: &str, file: &str) -> shardproxy::run::Running {
    let parsed = shardproxy::config::Config::from_toml(config, file)
        .unwrap_or_else(|error| panic!("{error}"));
    let proxy = shardproxy::run::start(parsed)
        .await
        .expect("the proxy starts");
    let app = proxy.app();
    wait_until("the proxy is ready", || {
        let app = std::sync::Arc::clone(&app);
        async move { app.discovery.ready() }
    })
    .await;
    proxy
}

/// The ports of the preference list of `key` in `service`, primary first,
/// as an in-process proxy's `/ring/lookup` gives it.
pub async fn preference_ports(
    proxy: &shardproxy::run::Running,
    service: &str,
    key: &str,
) -> Vec<u16> {
    let path = format!("/ring/lookup?service={service}&key={key}");
    let answer = client::Client::http1().get(proxy.admin, &path).await;
    let view: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|instance| u16::try_from(instance["port"].as_u64().unwrap()).unwrap())
        .collect()
}

/// The SPEC §3 records of the ring of `backends` under the SRV name `srv`:
/// for each backend, host `NAME.example.com` on 127.0.0.1, its SRV record,
/// its A record and the `tokens.` TXT record of `tokens[i]`; and the
/// `config.` TXT record of `slaves` replicas with `redundancy=host`.
pub fn ring_records<'a, T: AsRef<[&'a str]>>(
    srv: &str,
    backends: &[backend::Backend],
    tokens: &[T],
    slaves: usize,
) -> Vec<shardproxy::dns_server::ZoneRecord> {
    use shardproxy::dns_server::ZoneRecord;
    let mut records = vec![ZoneRecord::txt(
        format!("config.{srv}"),
        &[format!("slaves={slaves} redundancy=host")],
    )];
    for (backend, tokens) in backends.iter().zip(tokens) {
        let target = format!("{}.example.com.", backend.name());
        records.push(ZoneRecord::srv(srv, 10, 50, backend.port(), target.clone()));
        records.push(ZoneRecord::txt(
            format!("tokens.{}.{target}", backend.port()),
            &[tokens.as_ref().join(" ")],
        ));
        records.push(ZoneRecord::a(target, std::net::Ipv4Addr::LOCALHOST));
    }
    records
}

/// `host:port` of an instance as `/ring` and `/ring/lookup` show it.
pub fn host_port(instance: &serde_json::Value) -> String {
    format!(
        "{}:{}",
        instance["host"].as_str().expect("an instance has a host"),
        instance["port"]
    )
}
