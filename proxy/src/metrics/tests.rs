//! Tests of the metrics: what is recorded shows up, and the whole scrape is
//! valid Prometheus text format, checked by [`parse_exposition`] (also used
//! by the admin API's tests).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shardproxy_ring::srv::SrvWeight;
use shardproxy_ring::{InstanceName, Member, Replication, Ring, Token};

use super::*;
use crate::discovery::{DiscoveryError, Resolved, SrvInstance, Table};

/// One sample line of the text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses a scrape strictly: every line is `# HELP name text`,
/// `# TYPE name type` or `name{label="value",...} value`; the value is a
/// float; every family has exactly one `# HELP` and one `# TYPE`, before its
/// samples; names and label names are valid. Returns the samples.
pub(crate) fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut helps = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a newline".to_owned());
    }
    for (number, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            let name = name.ok_or_else(|| at("comment without a name"))?;
            if !valid_name(name, true) {
                return Err(at("invalid metric name"));
            }
            match kind {
                Some("HELP") => {
                    if !helps.insert(name.to_owned()) {
                        return Err(at("second HELP"));
                    }
                }
                Some("TYPE") => {
                    let kind = rest.unwrap_or_default();
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("unknown type"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at("second TYPE"));
                    }
                }
                _ => return Err(at("comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|error| at(&error))?;
        let family = family_of(&sample.name, &types);
        if !helps.contains(family) || !types.contains_key(family) {
            return Err(at("sample before its family's HELP and TYPE"));
        }
        samples.push(sample);
    }
    if let Some(name) = helps.iter().find(|name| !types.contains_key(*name)) {
        return Err(format!("{name} has HELP but no TYPE"));
    }
    if let Some(name) = types.keys().find(|name| !helps.contains(*name)) {
        return Err(format!("{name} has TYPE but no HELP"));
    }
    Ok(samples)
}

/// The family a sample belongs to: histograms write `_bucket`, `_sum` and
/// `_count` samples.
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

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name, true) {
        return Err("invalid metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut inside) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inside.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inside.find('=').ok_or("label without =")?;
            let label = &inside[..eq];
            if !valid_name(label, false) {
                return Err(format!("invalid label name {label:?}"));
            }
            let mut chars = inside[eq + 1..]
                .strip_prefix('"')
                .ok_or("unquoted label value")?
                .char_indices();
            let mut value = String::new();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (index, '"') => break index,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        escaped @ ('\\' | '"') => value.push(escaped),
                        other => return Err(format!("bad escape \\{other}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            inside = &inside[eq + 1 + 1 + end + 1..];
            inside = inside.strip_prefix(',').unwrap_or(inside);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is not a float"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The value of the sample `name` with exactly `labels`, if present.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|sample| sample.name == name && sample.labels == labels)
        .map(|sample| sample.value)
}

fn member(host: &str, port: u16, tokens: &[&str]) -> Member {
    Member {
        name: InstanceName::new(host, port).unwrap(),
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        tokens: tokens.iter().map(|t| t.parse::<Token>().unwrap()).collect(),
    }
}

fn ring(members: Vec<Member>) -> Ring {
    Ring::build(members, Replication::default()).unwrap()
}

fn resolved(table: Table) -> Resolved {
    Resolved {
        table,
        warnings: Vec::new(),
        min_ttl: None,
        replication_from: crate::discovery::ReplicationFrom::Default,
    }
}

fn scrape(metrics: &Metrics, rings: &[&ServiceRing]) -> Vec<Sample> {
    let text = metrics.render_rings(rings.iter().copied(), Vec::new());
    match parse_exposition(&text) {
        Ok(samples) => samples,
        Err(error) => panic!("{error}\n{text}"),
    }
}

#[test]
fn outcomes_have_their_label_values() {
    let labels: Vec<&str> = AttemptOutcome::ALL
        .iter()
        .map(AttemptOutcome::as_str)
        .collect();
    assert_eq!(
        labels,
        [
            "response",
            "retryable_status",
            "connect_error",
            "timeout",
            "failed"
        ]
    );
}

#[test]
fn read_fallbacks_and_repairs_count_into_their_own_series() {
    use replication::ReadRepair;
    let metrics = Metrics::new().unwrap();
    let frob = metrics.service("frob");
    let replication = frob.replication();
    replication.read_fallback(true);
    replication.read_fallback(false);
    replication.read_fallback(false);
    // Each outcome n + 1 times, so that a series counted for another shows.
    let outcomes = [
        (ReadRepair::Ok, "ok"),
        (ReadRepair::Exists, "exists"),
        (ReadRepair::Failed, "failed"),
        (ReadRepair::Skipped, "skipped"),
    ];
    for (n, (outcome, _)) in outcomes.iter().enumerate() {
        for _ in 0..=n {
            replication.read_repair(*outcome);
        }
    }
    let samples = parse_exposition(&metrics.render(&[])).unwrap();
    let fallbacks = |result| {
        value(
            &samples,
            "shardproxy_read_fallbacks_total",
            &[("service", "frob"), ("result", result)],
        )
    };
    assert_eq!(fallbacks("found"), Some(1.0));
    assert_eq!(fallbacks("not_found"), Some(2.0));
    for (n, (_, label)) in outcomes.iter().enumerate() {
        let labels = [("service", "frob"), ("result", *label)];
        assert_eq!(
            value(&samples, "shardproxy_read_repairs_total", &labels),
            Some(n as f64 + 1.0),
            "{label}"
        );
    }
}

#[test]
fn recorded_requests_show_up_and_go_up() {
    let metrics = Metrics::new().unwrap();
    let frob = metrics.service("frob");
    let other = metrics.service("other");
    frob.request(200, Duration::from_millis(3));
    frob.request(418, Duration::from_millis(20));
    frob.attempt("frob1.example.com:8081", AttemptOutcome::Response);
    frob.attempt("frob1.example.com:8081", AttemptOutcome::ConnectError);
    frob.retry();
    frob.retry_refused();
    other.clone().request(503, Duration::from_secs(30));

    let samples = scrape(&metrics, &[]);
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        get(REQUESTS, &[("service", "frob"), ("status", "200")]),
        Some(1.0)
    );
    assert_eq!(
        get(REQUESTS, &[("service", "frob"), ("status", "418")]),
        Some(1.0)
    );
    // Common statuses exist from the start, at 0.
    assert_eq!(
        get(REQUESTS, &[("service", "frob"), ("status", "502")]),
        Some(0.0)
    );
    assert_eq!(
        get(REQUESTS, &[("service", "other"), ("status", "503")]),
        Some(1.0)
    );
    let bucket = "shardproxy_request_duration_seconds_bucket";
    assert_eq!(
        get(bucket, &[("service", "frob"), ("le", "0.0005")]),
        Some(0.0)
    );
    assert_eq!(
        get(bucket, &[("service", "frob"), ("le", "0.005")]),
        Some(1.0)
    );
    assert_eq!(get(bucket, &[("service", "frob"), ("le", "10")]), Some(2.0));
    assert_eq!(
        get(bucket, &[("service", "other"), ("le", "10")]),
        Some(0.0)
    );
    assert_eq!(
        get(bucket, &[("service", "other"), ("le", "+Inf")]),
        Some(1.0)
    );
    assert_eq!(
        get(
            "shardproxy_request_duration_seconds_count",
            &[("service", "frob")]
        ),
        Some(2.0)
    );
    let sum = get(
        "shardproxy_request_duration_seconds_sum",
        &[("service", "frob")],
    )
    .unwrap();
    assert!((sum - 0.023).abs() < 1e-9, "{sum}");
    let attempt = |outcome: &str| {
        get(
            ATTEMPTS,
            &[
                ("service", "frob"),
                ("upstream", "frob1.example.com:8081"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempt("response"), Some(1.0));
    assert_eq!(attempt("connect_error"), Some(1.0));
    assert_eq!(attempt("timeout"), None);
    assert_eq!(get(RETRIES, &[("service", "frob")]), Some(1.0));
    assert_eq!(get(RETRIES_REFUSED, &[("service", "frob")]), Some(1.0));
    assert_eq!(get(RETRIES, &[("service", "other")]), Some(0.0));

    frob.request(200, Duration::from_millis(1));
    frob.request(200, Duration::from_millis(1));
    frob.retry();
    frob.attempt("frob1.example.com:8081", AttemptOutcome::Response);
    let samples = scrape(&metrics, &[]);
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        get(REQUESTS, &[("service", "frob"), ("status", "200")]),
        Some(3.0)
    );
    assert_eq!(get(RETRIES, &[("service", "frob")]), Some(2.0));
    assert_eq!(
        get(
            ATTEMPTS,
            &[
                ("service", "frob"),
                ("upstream", "frob1.example.com:8081"),
                ("outcome", "response"),
            ],
        ),
        Some(2.0)
    );
}

#[test]
fn instance_attempts_count_into_the_same_series_and_only_what_happened() {
    let metrics = Metrics::new().unwrap();
    let frob = metrics.service("frob");
    let frob1 = frob.instance_attempts("frob1.example.com:8081");
    frob1.record(AttemptOutcome::Response);
    frob1.record(AttemptOutcome::Response);
    frob.attempt("frob1.example.com:8081", AttemptOutcome::Response);
    frob1.record(AttemptOutcome::Timeout);
    // A second handle on the same instance (a new ring) counts on.
    frob.instance_attempts("frob1.example.com:8081")
        .record(AttemptOutcome::Timeout);

    let samples = scrape(&metrics, &[]);
    let attempt = |outcome: &str| {
        value(
            &samples,
            ATTEMPTS,
            &[
                ("service", "frob"),
                ("upstream", "frob1.example.com:8081"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempt("response"), Some(3.0));
    assert_eq!(attempt("timeout"), Some(2.0));
    for absent in ["retryable_status", "connect_error", "failed"] {
        assert_eq!(attempt(absent), None, "{absent} never happened");
    }
}

#[test]
fn every_family_is_named_shardproxy_and_typed() {
    let metrics = Metrics::new().unwrap();
    metrics.service("frob").request(200, Duration::ZERO);
    let frob = ServiceRing::fixed(
        "frob",
        Table::Ring(ring(vec![member("a.example", 80, &["40"])])),
    );
    let text = metrics.render_rings([&frob], Vec::new());
    parse_exposition(&text).unwrap();
    for line in text.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        assert!(name.starts_with("shardproxy_"), "{line}");
    }
    for (family, kind) in [
        (REQUESTS, "counter"),
        (REQUEST_DURATION, "histogram"),
        (RETRIES, "counter"),
        (RETRIES_REFUSED, "counter"),
        (SHED, "counter"),
        (ring::INSTANCES, "gauge"),
        (ring::TOKENS, "gauge"),
        (ring::REFRESHES, "counter"),
        (ring::CHANGES, "counter"),
        (ring::INFO, "gauge"),
        (ring::LAST_REFRESH, "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}"
        );
    }
    #[cfg(target_os = "linux")]
    assert!(text.contains("# TYPE shardproxy_process_cpu_seconds_total counter\n"));
}

#[test]
fn ring_metrics_follow_discovery() {
    let metrics = Metrics::new().unwrap();
    let pending = ServiceRing::new("pending");
    let first = ring(vec![
        member("a.example", 80, &["40", "c0"]),
        member("b.example", 80, &["80"]),
    ]);
    let first_fingerprint = first.fingerprint().to_string();
    let frob = ServiceRing::fixed("frob", Table::Ring(first));

    let samples = scrape(&metrics, &[&frob, &pending]);
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(get(ring::INSTANCES, &[("service", "frob")]), Some(2.0));
    assert_eq!(get(ring::TOKENS, &[("service", "frob")]), Some(3.0));
    assert_eq!(get(ring::CHANGES, &[("service", "frob")]), Some(1.0));
    assert_eq!(
        get(ring::REFRESHES, &[("service", "frob"), ("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        get(ring::REFRESHES, &[("service", "frob"), ("result", "error")]),
        Some(0.0)
    );
    assert_eq!(
        get(
            ring::INFO,
            &[("service", "frob"), ("fingerprint", &first_fingerprint)]
        ),
        Some(1.0)
    );
    let refreshed = get(ring::LAST_REFRESH, &[("service", "frob")]).unwrap();
    assert!(refreshed > 1.5e9, "{refreshed}");
    // A service without a ring yet: zeros, no fingerprint, no refresh time.
    assert_eq!(get(ring::INSTANCES, &[("service", "pending")]), Some(0.0));
    assert_eq!(get(ring::TOKENS, &[("service", "pending")]), Some(0.0));
    assert_eq!(get(ring::CHANGES, &[("service", "pending")]), Some(0.0));
    assert_eq!(get(ring::LAST_REFRESH, &[("service", "pending")]), None);
    assert!(!samples
        .iter()
        .any(|s| s.name == ring::INFO && s.labels["service"] == "pending"));

    // A new ring replaces the fingerprint; an unchanged one and a failure
    // only count.
    let second = ring(vec![member("a.example", 80, &["40"])]);
    let second_fingerprint = second.fingerprint().to_string();
    assert!(frob.accept(resolved(Table::Ring(second.clone()))));
    assert!(!frob.accept(resolved(Table::Ring(second))));
    frob.reject(DiscoveryError::NoInstances {
        name: "_frob._http.example.com".to_owned(),
        reason: "NXDOMAIN",
    });
    let samples = scrape(&metrics, &[&frob, &pending]);
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(get(ring::INSTANCES, &[("service", "frob")]), Some(1.0));
    assert_eq!(get(ring::TOKENS, &[("service", "frob")]), Some(1.0));
    assert_eq!(get(ring::CHANGES, &[("service", "frob")]), Some(2.0));
    assert_eq!(
        get(ring::REFRESHES, &[("service", "frob"), ("result", "ok")]),
        Some(3.0)
    );
    assert_eq!(
        get(ring::REFRESHES, &[("service", "frob"), ("result", "error")]),
        Some(1.0)
    );
    let infos: Vec<&Sample> = samples.iter().filter(|s| s.name == ring::INFO).collect();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!(infos[0].labels["fingerprint"], second_fingerprint);
}

#[test]
fn srv_services_count_instances_and_no_tokens() {
    let metrics = Metrics::new().unwrap();
    let instance = |host: &str| SrvInstance {
        name: InstanceName::new(host, 80).unwrap(),
        addr: "127.0.0.1:80".parse().unwrap(),
        weight: SrvWeight {
            priority: 10,
            weight: 50,
        },
    };
    let web = ServiceRing::fixed(
        "web",
        Table::Srv(vec![instance("a.example"), instance("b.example")]),
    );
    let samples = scrape(&metrics, &[&web]);
    assert_eq!(
        value(&samples, ring::INSTANCES, &[("service", "web")]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, ring::TOKENS, &[("service", "web")]),
        Some(0.0)
    );
    assert!(!samples.iter().any(|s| s.name == ring::INFO));
}

#[test]
fn the_checker_rejects_what_prometheus_would() {
    let family = "# HELP m_total help\n# TYPE m_total counter\n";
    assert!(parse_exposition(&format!("{family}m_total{{a=\"x\\\"y\"}} 1\n")).is_ok());
    assert!(parse_exposition(&format!("{family}m_total{{a=\"x\"}} one\n")).is_err());
    assert!(parse_exposition(&format!("{family}m_total{{a=x}} 1\n")).is_err());
    assert!(parse_exposition(&format!("{family}other 1\n")).is_err());
    assert!(parse_exposition("# TYPE m gauge\nm 1\n").is_err());
    assert!(parse_exposition(&format!("{family}m_total 1")).is_err());
}

#[test]
fn instance_attempts_time_attempts_and_count_those_in_flight() {
    let metrics = Metrics::new().unwrap();
    let frob1 = metrics
        .service("frob")
        .instance_attempts("frob1.example.com:8081");
    let labels = [("service", "frob"), ("upstream", "frob1.example.com:8081")];
    let in_flight = |samples: &[Sample]| value(samples, upstream::IN_FLIGHT, &labels);
    // Resolved when built: both series exist at 0 before any attempt.
    let samples = scrape(&metrics, &[]);
    assert_eq!(in_flight(&samples), Some(0.0));

    let first = frob1.start();
    let second = frob1.start();
    assert_eq!(in_flight(&scrape(&metrics, &[])), Some(2.0));
    frob1.finish(AttemptOutcome::Response, Duration::from_micros(200));
    drop(first);
    frob1.finish(AttemptOutcome::Timeout, Duration::from_secs(3));
    drop(second);

    let samples = scrape(&metrics, &[]);
    assert_eq!(in_flight(&samples), Some(0.0));
    let bucket = |le: &str| {
        let mut labels = labels.to_vec();
        labels.push(("le", le));
        value(
            &samples,
            &format!("{}_bucket", upstream::ATTEMPT_DURATION),
            &labels,
        )
    };
    // 0.2 ms: above the 0.1 ms bound, within 0.25 ms.
    assert_eq!(bucket("0.0001"), Some(0.0));
    assert_eq!(bucket("0.00025"), Some(1.0));
    assert_eq!(bucket("2.5"), Some(1.0));
    assert_eq!(bucket("5"), Some(2.0));
    // And the attempts are counted by outcome as before.
    let attempts = |outcome: &str| {
        let mut labels = labels.to_vec();
        labels.push(("outcome", outcome));
        value(&samples, ATTEMPTS, &labels)
    };
    assert_eq!(attempts("response"), Some(1.0));
    assert_eq!(attempts("timeout"), Some(1.0));
}

#[test]
fn the_request_duration_buckets_start_at_50_microseconds() {
    let metrics = Metrics::new().unwrap();
    metrics
        .service("frob")
        .request(200, Duration::from_micros(70));
    let samples = scrape(&metrics, &[]);
    let bucket = |le: &str| {
        value(
            &samples,
            "shardproxy_request_duration_seconds_bucket",
            &[("service", "frob"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.00005"), Some(0.0));
    assert_eq!(bucket("0.0001"), Some(1.0));
    assert!(DURATION_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn connections_are_shown_for_each_instance_of_the_ring_in_use() {
    let frob = ServiceRing::fixed(
        "frob",
        Table::Ring(ring(vec![
            member("a.example", 8081, &["40"]),
            member("b.example", 8082, &["c0"]),
        ])),
    );
    let pending = ServiceRing::new("pending");
    let pool = crate::pool::Pool::new(crate::pool::Settings {
        connect_timeout: Duration::from_secs(1),
        max_idle: 4,
        idle_timeout: Duration::from_secs(60),
        protocol: crate::config::UpstreamProtocol::Http1,
        tls: None,
        workers: 1,
    });
    // The ring's instances hold their connections, as endpoints do.
    let _a = pool.connections("a.example", "127.0.0.1:8081".parse().unwrap());
    let families = connections::families([(&frob, &pool), (&pending, &pool)]).unwrap();
    let text = encode(&families);
    let samples = parse_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    for upstream in ["a.example:8081", "b.example:8082"] {
        for state in ["idle", "active"] {
            let labels = [
                ("service", "frob"),
                ("upstream", upstream),
                ("state", state),
            ];
            assert_eq!(
                value(&samples, connections::CONNECTIONS, &labels),
                Some(0.0),
                "{upstream} {state}\n{text}"
            );
        }
    }
    assert_eq!(
        samples.len(),
        4,
        "nothing for a service without a ring\n{text}"
    );
}

#[test]
fn reloads_are_counted_and_the_config_in_use_is_named_by_its_hash() {
    let metrics = Metrics::new().unwrap();
    let text =
        "[services.frob]\nsrv = \"_frob._http.example.com\"\n\n[[routes]]\nservice = \"frob\"\n";
    let first = crate::config::Config::from_toml(text, "a.toml").unwrap();
    // The same settings, written differently: the same hash.
    let same = crate::config::Config::from_toml(
        &format!("# a comment\n{}", text.replace(" = ", "=")),
        "a.toml",
    )
    .unwrap();
    let other =
        crate::config::Config::from_toml(&text.replace("_frob.", "_frob2."), "a.toml").unwrap();
    assert_eq!(reload::config_hash(&first), reload::config_hash(&same));
    // Processes of one host differ in their addresses only: one config.
    let elsewhere = crate::config::Config::from_toml(
        &format!("[server]\nlisten = \"127.0.0.1:8081\"\nadmin = \"127.0.0.1:9091\"\n\n{text}"),
        "b.toml",
    )
    .unwrap();
    assert_eq!(reload::config_hash(&first), reload::config_hash(&elsewhere));
    assert_ne!(reload::config_hash(&first), reload::config_hash(&other));
    assert_eq!(reload::config_hash(&first).len(), 16);

    metrics.config_in_use(&first);
    let samples = scrape(&metrics, &[]);
    let infos: Vec<&Sample> = samples.iter().filter(|s| s.name == reload::INFO).collect();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!(infos[0].labels["hash"], reload::config_hash(&first));
    assert_eq!(infos[0].value, 1.0);
    let loaded = value(&samples, reload::LAST_SUCCESS, &[]).unwrap();
    assert!(loaded > 1.5e9, "{loaded}");

    metrics.reloaded(false);
    metrics.reloaded(true);
    metrics.config_in_use(&other);
    let samples = scrape(&metrics, &[]);
    let infos: Vec<&Sample> = samples.iter().filter(|s| s.name == reload::INFO).collect();
    assert_eq!(
        infos.len(),
        1,
        "the replaced config's hash is gone: {infos:?}"
    );
    assert_eq!(infos[0].labels["hash"], reload::config_hash(&other));
    assert_eq!(
        value(&samples, reload::RELOADS, &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, reload::RELOADS, &[("result", "error")]),
        Some(1.0)
    );
}
