//! The two DNS servers the end-to-end tests publish rings with: the
//! in-process `shardproxy::dns_server` and a real BIND (`support::bind`).
//! Both must serve the records of SPEC §3 as hickory-resolver (what
//! discovery uses) sees them, and take changes while running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;

use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::TokioResolver;
use shardproxy::discovery::build_resolver;
use shardproxy::dns_server::{DnsServer, Mode, Zone, ZoneRecord};
use support::bind::BindServer;

const SERVICE: &str = "_frob._http.example.com.";

/// The ring of SPEC §3: three instances with tokens, replication settings,
/// and addresses on loopback.
const ZONE_TEXT: &str = r#"
_frob._http        IN SRV 10 50 8081 frob1.example.com.
_frob._http        IN SRV 10 50 8082 frob2.example.com.
_frob._http        IN SRV 10 50 8083 frob3.example.com.
tokens.8081.frob1  IN TXT "00112233445566778899aabbccddeeff"
tokens.8082.frob2  IN TXT "55555555555555555555555555555555" "aa"
tokens.8083.frob3  IN TXT "c0"
config._frob._http IN TXT "slaves=1 redundancy=host"
frob1              IN A   127.0.0.1
frob2              IN A   127.0.0.1
frob3              IN A   127.0.0.1
"#;

/// The same ring for the in-process server.
fn zone_records() -> Vec<ZoneRecord> {
    let mut records = Vec::new();
    for (i, port, tokens) in [
        (1, 8081, &["00112233445566778899aabbccddeeff"][..]),
        (2, 8082, &["55555555555555555555555555555555", "aa"][..]),
        (3, 8083, &["c0"][..]),
    ] {
        let target = format!("frob{i}.example.com.");
        records.push(ZoneRecord::srv(SERVICE, 10, 50, port, &target));
        records.push(ZoneRecord::txt(format!("tokens.{port}.{target}"), tokens));
        records.push(ZoneRecord::a(target, Ipv4Addr::LOCALHOST));
    }
    records.push(ZoneRecord::txt(
        format!("config.{SERVICE}"),
        &["slaves=1 redundancy=host"],
    ));
    records
}

fn srv_targets(lookup: &Lookup) -> Vec<(u16, String)> {
    let mut targets: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect();
    targets.sort();
    targets
}

/// The strings of each TXT record, records sorted.
fn txt_strings(lookup: &Lookup) -> Vec<Vec<String>> {
    let mut records: Vec<Vec<String>> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    records.sort();
    records
}

/// Checks the SPEC §3 ring as both servers must publish it.
async fn assert_serves_the_ring(resolver: &TokioResolver) {
    let srv = resolver.lookup(SERVICE, RecordType::SRV).await.unwrap();
    assert_eq!(
        srv_targets(&srv),
        [
            (8081, "frob1.example.com.".to_owned()),
            (8082, "frob2.example.com.".to_owned()),
            (8083, "frob3.example.com.".to_owned()),
        ]
    );
    assert!(srv.message().metadata.authoritative);

    let tokens = resolver
        .lookup("tokens.8082.frob2.example.com.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(
        txt_strings(&tokens),
        [["55555555555555555555555555555555", "aa"]]
    );

    let config = resolver
        .lookup(format!("config.{SERVICE}").as_str(), RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_strings(&config), [["slaves=1 redundancy=host"]]);

    for i in 1..=3 {
        let a = resolver
            .lookup(format!("frob{i}.example.com.").as_str(), RecordType::A)
            .await
            .unwrap();
        assert!(
            matches!(a.answers(), [r] if matches!(r.data, RData::A(ip) if *ip == Ipv4Addr::LOCALHOST)),
            "{:?}",
            a.answers()
        );
    }

    // An instance that is joining has no tokens yet: NXDOMAIN, while a name
    // that exists without TXT is NODATA.
    let joining = resolver
        .lookup("tokens.8084.frob4.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(joining.is_nx_domain(), "{joining:?}");
    let nodata = resolver
        .lookup("frob1.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(
        nodata.is_no_records_found() && !nodata.is_nx_domain(),
        "{nodata:?}"
    );
}

#[tokio::test]
async fn in_process_server_serves_the_ring_and_changes() {
    let zone = Zone::new("example.com.")
        .with_ttl(1)
        .with_records(zone_records());
    let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), zone)
        .await
        .unwrap();
    let resolver = build_resolver(Some(&[server.addr()])).unwrap();
    assert_serves_the_ring(&resolver).await;

    // A fourth instance joins.
    server
        .zone()
        .update(|records| {
            records.push(ZoneRecord::srv(SERVICE, 10, 50, 8084, "frob4.example.com."));
            records.push(ZoneRecord::txt("tokens.8084.frob4.example.com.", &["80"]));
            records.push(ZoneRecord::a("frob4.example.com.", Ipv4Addr::LOCALHOST));
        })
        .unwrap();
    let srv = resolver.lookup(SERVICE, RecordType::SRV).await.unwrap();
    assert_eq!(srv_targets(&srv).len(), 4);
    let tokens = resolver
        .lookup("tokens.8084.frob4.example.com.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_strings(&tokens), [["80"]]);

    server.set_mode(Mode::ServFail);
    assert!(resolver.lookup(SERVICE, RecordType::SRV).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn bind_serves_the_ring_and_takes_updates() {
    let mut bind = BindServer::start("example.com", ZONE_TEXT);
    assert_eq!(bind.origin(), "example.com.");
    let resolver = build_resolver(Some(&[bind.addr()])).unwrap();
    assert_serves_the_ring(&resolver).await;

    // A fourth instance joins, by dynamic update as an operator would.
    bind.nsupdate(
        "update add _frob._http.example.com. 1 IN SRV 10 50 8084 frob4.example.com.\n\
         update add tokens.8084.frob4.example.com. 1 IN TXT \"80\" \"e0\"\n\
         update add frob4.example.com. 1 IN A 127.0.0.1",
    );
    let srv = resolver.lookup(SERVICE, RecordType::SRV).await.unwrap();
    assert!(srv_targets(&srv).contains(&(8084, "frob4.example.com.".to_owned())));
    let tokens = resolver
        .lookup("tokens.8084.frob4.example.com.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_strings(&tokens), [["80", "e0"]]);
    assert_eq!(tokens.answers()[0].ttl, 1);

    // And leaves.
    bind.nsupdate("update delete tokens.8084.frob4.example.com. TXT");
    let gone = resolver
        .lookup("tokens.8084.frob4.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(gone.is_nx_domain(), "{gone:?}");

    // A dead server is a failure, not an empty answer. Nothing answers any
    // more, so the lookup can only end by the resolver's timeouts: with the
    // clock paused they fire as soon as the runtime has nothing else to do.
    bind.stop();
    tokio::time::pause();
    let error = resolver.lookup(SERVICE, RecordType::SRV).await.unwrap_err();
    tokio::time::resume();
    assert!(!error.is_no_records_found(), "{error:?}");
}
