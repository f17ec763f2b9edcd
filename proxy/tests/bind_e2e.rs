//! End to end against a real BIND `named` (Debian's bind9) on a loopback
//! port: the ring published with the record formats of SPEC §3 is the one
//! `shardproxy ring lookup` and discovery compute, and when the zone is
//! changed at run time with `nsupdate` the discovered ring follows, or keeps
//! the last good ring, as SPEC §3 says.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod reference;
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use reference::RefInstance;
use shardproxy::config::Config;
use shardproxy::discovery::{build_resolver, Discovery, ServiceRing, Snapshot, Source, Table};
use shardproxy_ring::Token;
use support::bind::BindServer;

const ZONE: &str = r#"
_frob._http         IN SRV 10 50 8081 frob1
_frob._http         IN SRV 10 50 8082 frob1
_frob._http         IN SRV 10 50 8081 frob2
tokens.8081.frob1   IN TXT "00112233445566778899aabbccddeeff"
tokens.8082.frob1   IN TXT "40 c0" "e"
tokens.8081.frob2   IN TXT "8"
config._frob._http  IN TXT "slaves=1 redundancy=host"
frob1               IN A   127.0.0.1
frob2               IN A   127.0.0.2
frob2               IN A   127.0.0.20
"#;

/// The ring of the test zone, as the reference implementation sees it.
fn reference_ring() -> Vec<RefInstance> {
    reference::example_ring()
}

/// A config file for the ring in `bind`, in a fresh directory.
fn write_config(bind: &BindServer) -> PathBuf {
    let path = bind.dir().join("shardproxy.toml");
    let text = format!(
        r#"
[dns]
servers = ["{}"]
refresh = "1s"

[services.frob]
srv = "_frob._http.example.com"

[[routes]]
path_prefix = "/"
service = "frob"
"#,
        bind.addr()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn shardproxy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(args)
        .output()
        .expect("the shardproxy binary runs")
}

fn keys() -> Vec<String> {
    (0..200).map(|i| format!("/playlist/{i}")).collect()
}

fn ring_lookup_lines(config: &str, keys: &[String]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "ring",
        "lookup",
        "--json",
        "--config",
        config,
        "--service",
        "frob",
    ];
    args.extend(keys.iter().map(String::as_str));
    let output = shardproxy(&args);
    assert!(
        output.status.success(),
        "ring lookup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

#[test]
fn ring_lookup_agrees_with_an_independent_implementation() {
    let bind = BindServer::start("example.com", ZONE);
    let config = write_config(&bind);
    let config = config.to_str().unwrap();
    let keys = keys();
    let lines = ring_lookup_lines(config, &keys);
    assert_eq!(lines.len(), keys.len());
    let reference = reference_ring();
    for (key, line) in keys.iter().zip(&lines) {
        assert_eq!(line["service"], "frob");
        assert_eq!(line["key"], key.as_str());
        let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()));
        assert_eq!(line["hash"], hash.as_str());
        let expected = reference::preference_list(&reference, 1, true, key.as_bytes());
        let instances = line["instances"].as_array().unwrap();
        let got: Vec<String> = instances
            .iter()
            .map(|i| format!("{}:{}", i["host"].as_str().unwrap(), i["port"]))
            .collect();
        assert_eq!(got, expected, "key {key}");
        for instance in instances {
            let addr = instance["addr"].as_str().unwrap();
            let wanted = reference
                .iter()
                .find(|r| r.host == instance["host"] && u64::from(r.port) == instance["port"])
                .unwrap();
            assert_eq!(addr, wanted.addr, "the smallest A record is the address");
        }
    }

    let check = shardproxy(&["check", "--config", config]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check failed: {stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains("service frob (_frob._http.example.com)"),
        "{stdout}"
    );
    assert!(stdout.contains("3 instances"), "{stdout}");

    let show = shardproxy(&[
        "ring",
        "show",
        "--json",
        "--config",
        config,
        "--service",
        "frob",
    ]);
    assert!(show.status.success());
    let view: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let shares: f64 = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["share"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    assert_eq!(view["ranges"].as_array().unwrap().len(), 5);
    assert_eq!(view["settings"]["slaves"], 1);
    assert_eq!(view["settings"]["redundancy"], "host");
}

/// Waits until `condition` holds for the service's ring (or fails after
/// 30 s): refreshes run every second, TTLs are 1 s.
async fn wait_for_ring(
    service: &Arc<ServiceRing>,
    what: &str,
    condition: impl Fn(&Snapshot) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if service
                .load_full()
                .is_some_and(|snapshot| condition(&snapshot))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the ring never reached: {what}; status {:?}",
        service.status()
    );
}

/// Waits until one more refresh has failed than `before`.
async fn wait_for_failure(service: &Arc<ServiceRing>, before: u64) {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while service.refreshes_failed() <= before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no refresh failed; status {:?}",
        service.status()
    );
}

fn instance_count(snapshot: &Snapshot) -> usize {
    match &snapshot.table {
        Table::Ring(ring) => ring.instances().len(),
        Table::Srv(instances) => instances.len(),
    }
}

fn fingerprint(snapshot: &Snapshot) -> String {
    match &snapshot.table {
        Table::Ring(ring) => ring.fingerprint().to_string(),
        Table::Srv(_) => panic!("expected a ring"),
    }
}

fn primary_of(snapshot: &Snapshot, key: &str) -> String {
    match &snapshot.table {
        Table::Ring(ring) => ring
            .primary(Token::of_key(key.as_bytes()))
            .unwrap()
            .name()
            .to_string(),
        Table::Srv(_) => panic!("expected a ring"),
    }
}

/// On the current-thread runtime, so that the clock can skip: after an
/// update, to the next refresh (a second away at most; a refresh then
/// under way has 2 s to answer, and one cut short is only retried), and
/// once `named` is stopped, through the resolver's timeouts.
#[tokio::test]
async fn the_discovered_ring_follows_nsupdate_and_survives_bad_records() {
    let mut bind = BindServer::start("example.com", ZONE);
    let config_path = write_config(&bind);
    let config = Config::load(&config_path).unwrap();
    let service_config = config.service("frob").unwrap();
    let resolver = build_resolver(config.dns_servers()).unwrap();
    let discovery = Discovery::start(
        vec![("frob".to_owned(), Source::of(service_config))],
        &resolver,
        config.dns.refresh,
    )
    .unwrap();
    let service = Arc::clone(discovery.service("frob").unwrap());
    wait_for_ring(&service, "3 instances", |s| instance_count(s) == 3).await;
    assert!(discovery.ready());

    // 1. An instance joins: SRV, address and tokens in one update.
    bind.nsupdate(
        "update add _frob._http.example.com. 1 IN SRV 10 50 8081 frob3.example.com.\n\
         update add frob3.example.com. 1 IN A 127.0.0.3\n\
         update add tokens.8081.frob3.example.com. 1 IN TXT \"a0\"",
    );
    support::skip(Duration::from_secs(1)).await;
    wait_for_ring(&service, "4 instances", |s| instance_count(s) == 4).await;
    let mut reference = reference_ring();
    reference.push(RefInstance::new(
        "frob3.example.com",
        8081,
        "127.0.0.3:8081",
        &["a0"],
    ));
    let snapshot = service.load_full().unwrap();
    for key in keys() {
        let expected = reference::preference_list(&reference, 1, true, key.as_bytes());
        assert_eq!(primary_of(&snapshot, &key), expected[0], "key {key}");
    }

    // 2. Tokens change: frob2 moves from 8 to 2.
    let before = fingerprint(&snapshot);
    bind.nsupdate(
        "update delete tokens.8081.frob2.example.com. TXT\n\
         update add tokens.8081.frob2.example.com. 1 IN TXT \"2\"",
    );
    support::skip(Duration::from_secs(1)).await;
    wait_for_ring(&service, "new tokens", |s| fingerprint(s) != before).await;
    let snapshot = service.load_full().unwrap();
    reference[2] = RefInstance::new("frob2.example.com", 8081, "127.0.0.2:8081", &["2"]);
    for key in keys() {
        let expected = reference::preference_list(&reference, 1, true, key.as_bytes());
        assert_eq!(primary_of(&snapshot, &key), expected[0], "key {key}");
    }
    let good = fingerprint(&snapshot);

    // 3. A malformed token is published: the ring stays, the error is kept.
    let failed = service.refreshes_failed();
    bind.nsupdate(
        "update delete tokens.8081.frob3.example.com. TXT\n\
         update add tokens.8081.frob3.example.com. 1 IN TXT \"a0 zz\"",
    );
    wait_for_failure(&service, failed).await;
    let error = service.status().last_error.unwrap().1.to_string();
    assert!(error.contains("tokens.8081.frob3.example.com"), "{error}");
    assert!(error.contains("zz"), "{error}");
    assert_eq!(fingerprint(&service.load_full().unwrap()), good);
    // `check` sees the same problem and says so.
    let path = config_path.to_str().unwrap().to_owned();
    let check = tokio::task::spawn_blocking(move || shardproxy(&["check", "--config", &path]))
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("malformed token at tokens.8081.frob3.example.com."),
        "{stderr}"
    );

    // 4. The server stops: the ring stays.
    let failed = service.refreshes_failed();
    bind.stop();
    // Nothing answers any more, so the refresh can only end by the
    // resolver's timeouts: with the clock paused they fire as soon as the
    // runtime has nothing else to do. No answer is there for a jump of the
    // clock to overtake.
    tokio::time::pause();
    wait_for_failure(&service, failed).await;
    tokio::time::resume();
    assert_eq!(fingerprint(&service.load_full().unwrap()), good);
    assert!(discovery.ready());
}
