//! Queries the server with hickory-resolver, as discovery will.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::TokioResolver;

use super::*;

const SRV: &str = "_frob._http.example.com.";

fn zone() -> Zone {
    Zone::new("example.com.").with_ttl(1).with_records([
        ZoneRecord::srv(SRV, 10, 50, 8081, "frob1.example.com."),
        ZoneRecord::srv(SRV, 10, 50, 8082, "frob2.example.com."),
        ZoneRecord::txt("tokens.8081.frob1.example.com.", &["00112233", "4455 6677"]),
        ZoneRecord::txt(
            "config._frob._http.example.com.",
            &["slaves=1 redundancy=host"],
        ),
        ZoneRecord::a("frob1.example.com.", Ipv4Addr::LOCALHOST),
        ZoneRecord::aaaa("frob2.example.com.", Ipv6Addr::LOCALHOST),
    ])
}

async fn start() -> DnsServer {
    DnsServer::start("127.0.0.1:0".parse().unwrap(), zone())
        .await
        .unwrap()
}

/// A resolver that asks only `addr`, over UDP (or TCP), without a cache.
fn resolver(addr: SocketAddr, tcp: bool) -> TokioResolver {
    let mut server = if tcp {
        NameServerConfig::tcp(addr.ip())
    } else {
        NameServerConfig::udp(addr.ip())
    };
    for connection in &mut server.connections {
        connection.port = addr.port();
    }
    let config = ResolverConfig::from_name_servers(vec![server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = Duration::from_millis(500);
    options.attempts = 1;
    builder.build().unwrap()
}

fn txt_strings(lookup: &hickory_resolver::lookup::Lookup) -> Vec<Vec<String>> {
    lookup
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
        .collect()
}

fn response_code(error: &NetError) -> Option<ResponseCode> {
    match error {
        NetError::Dns(DnsError::ResponseCode(code)) => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn answers_srv_txt_a_and_aaaa() {
    let server = start().await;
    let resolver = resolver(server.addr(), false);

    let srv = resolver.lookup(SRV, RecordType::SRV).await.unwrap();
    let mut targets: Vec<(u16, String)> = srv
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            (8081, "frob1.example.com.".to_owned()),
            (8082, "frob2.example.com.".to_owned())
        ]
    );
    assert!(srv.message().metadata.authoritative);
    assert!(srv.answers().iter().all(|r| r.ttl == 1));

    let tokens = resolver
        .lookup("tokens.8081.frob1.example.com.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_strings(&tokens), [["00112233", "4455 6677"]]);

    let a = resolver
        .lookup("FROB1.example.com.", RecordType::A)
        .await
        .unwrap();
    assert!(matches!(a.answers()[0].data, RData::A(ip) if *ip == Ipv4Addr::LOCALHOST));

    let aaaa = resolver
        .lookup("frob2.example.com.", RecordType::AAAA)
        .await
        .unwrap();
    assert!(matches!(aaaa.answers()[0].data, RData::AAAA(ip) if *ip == Ipv6Addr::LOCALHOST));
    assert!(server.zone().query_count_for("frob2.example.com.") >= 1);
}

#[tokio::test]
async fn answers_over_tcp() {
    let server = start().await;
    let resolver = resolver(server.addr(), true);
    let config = resolver
        .lookup("config._frob._http.example.com.", RecordType::TXT)
        .await
        .unwrap();
    assert_eq!(txt_strings(&config), [["slaves=1 redundancy=host"]]);
}

#[tokio::test]
async fn nxdomain_and_nodata_differ() {
    let server = start().await;
    let resolver = resolver(server.addr(), false);

    let nxdomain = resolver
        .lookup("tokens.8082.frob2.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(nxdomain.is_nx_domain(), "{nxdomain:?}");
    assert!(nxdomain.into_soa().is_some(), "NXDOMAIN carries the SOA");

    let nodata = resolver
        .lookup("frob1.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(
        nodata.is_no_records_found() && !nodata.is_nx_domain(),
        "{nodata:?}"
    );

    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let empty = resolver
        .lookup("_http.example.com.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(
        empty.is_no_records_found() && !empty.is_nx_domain(),
        "{empty:?}"
    );

    let refused = resolver
        .lookup("example.org.", RecordType::A)
        .await
        .unwrap_err();
    assert_eq!(
        response_code(&refused),
        Some(ResponseCode::Refused),
        "{refused:?}"
    );
}

#[tokio::test]
async fn changed_records_are_seen() {
    let server = start().await;
    let resolver = resolver(server.addr(), false);
    let name = "tokens.8081.frob1.example.com.";

    server
        .set_records([ZoneRecord::txt(name, &["c0"]).with_ttl(30)])
        .unwrap();
    let tokens = resolver.lookup(name, RecordType::TXT).await.unwrap();
    assert_eq!(txt_strings(&tokens), [["c0"]]);
    assert_eq!(tokens.answers()[0].ttl, 30);
    let gone = resolver.lookup(SRV, RecordType::SRV).await.unwrap_err();
    assert!(gone.is_nx_domain(), "{gone:?}");

    server
        .zone()
        .add_record(ZoneRecord::txt(name, &["40"]))
        .unwrap();
    let tokens = resolver.lookup(name, RecordType::TXT).await.unwrap();
    let mut words = txt_strings(&tokens).concat();
    words.sort();
    assert_eq!(words, ["40", "c0"]);

    assert_eq!(server.zone().remove_name(name).unwrap(), 2);
    let gone = resolver.lookup(name, RecordType::TXT).await.unwrap_err();
    assert!(gone.is_nx_domain(), "{gone:?}");

    // A bad change is refused whole.
    let bad = server.set_records([ZoneRecord::a("x.example.org.", Ipv4Addr::LOCALHOST)]);
    assert!(matches!(bad, Err(DnsServerError::OutOfZone { .. })));
    assert_eq!(server.zone().zone().records(), &[] as &[ZoneRecord]);
}

#[tokio::test]
async fn failure_modes() {
    let server = start().await;
    let resolver = resolver(server.addr(), false);

    server.set_mode(Mode::ServFail);
    let error = resolver.lookup(SRV, RecordType::SRV).await.unwrap_err();
    assert_eq!(
        response_code(&error),
        Some(ResponseCode::ServFail),
        "{error:?}"
    );

    server.set_mode(Mode::Drop);
    let error = resolver.lookup(SRV, RecordType::SRV).await.unwrap_err();
    assert!(matches!(error, NetError::Timeout), "{error:?}");

    // One name fails; the others answer.
    server.set_mode(Mode::Normal);
    let tokens = "tokens.8081.frob1.example.com.";
    server.zone().set_mode_for(tokens, Mode::ServFail).unwrap();
    let error = resolver.lookup(tokens, RecordType::TXT).await.unwrap_err();
    assert_eq!(
        response_code(&error),
        Some(ResponseCode::ServFail),
        "{error:?}"
    );
    resolver.lookup(SRV, RecordType::SRV).await.unwrap();

    server.zone().reset_modes();
    resolver.lookup(tokens, RecordType::TXT).await.unwrap();
}

#[tokio::test]
async fn shutdown_frees_the_port() {
    let server = start().await;
    let addr = server.addr();
    server.shutdown().await;
    let again = DnsServer::start(addr, zone()).await.unwrap();
    assert_eq!(again.addr(), addr);
}

#[tokio::test]
async fn rejects_an_invalid_zone() {
    let zone =
        Zone::new("example.com").with_record(ZoneRecord::a("a.example.com.", Ipv4Addr::LOCALHOST));
    let error = DnsServer::start("127.0.0.1:0".parse().unwrap(), zone)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DnsServerError::NotAbsolute { .. }),
        "{error}"
    );
}
