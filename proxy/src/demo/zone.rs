//! The demo ring in DNS (SPEC §3): evenly spaced tokens, the records that
//! publish them, and their text as a zone file.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use shardproxy_ring::records::{config_name, tokens_name};
use shardproxy_ring::Token;

use super::{DemoBackendInfo, Records};
use crate::dns_server::{RecordData, Zone, ZoneRecord};

/// The zone the demo's DNS server is authoritative for.
pub(super) const ORIGIN: &str = "demo.shardproxy.";

/// The SRV name of the demo service.
pub(super) const SERVICE_NAME: &str = "_demo._http.demo.shardproxy.";

/// The TTL of every record, in seconds: short, so that a change made while
/// the demo runs would be seen soon. The proxy refreshes this often too.
pub(super) const TTL: u32 = 5;

/// The ring's settings, published at `config.<SERVICE_NAME>`: one replica,
/// on another host.
pub(super) const REPLICATION: &str = "slaves=1 redundancy=host";

/// Tokens per instance when the proxy derives them
/// (SRV-only records): the config's default, written out so the
/// guide shows it.
pub(super) const VIRTUAL_NODES: usize = 64;

/// SRV priority and weight: not used by `balance = "ring"`, but required
/// in the record.
const SRV_PRIORITY: u16 = 10;
const SRV_WEIGHT: u16 = 50;

/// The host name (SRV target, without the trailing dot) of backend
/// `number`, from 1. Each backend gets its own, so `redundancy=host` puts
/// a key's replica on another backend.
pub(super) fn host(number: usize) -> String {
    format!("node{number}.{}", ORIGIN.trim_end_matches('.'))
}

/// `n` evenly spaced tokens, as `ring plan --balanced N` prints them
/// (SPEC §8): the i-th, from 1, is `floor(i × 2^128 / n) − 1`. The last is
/// always the top of the ring.
pub(super) fn balanced_tokens(n: usize) -> Vec<Token> {
    shardproxy_ring::balanced_tokens(n as u64).collect()
}

/// The records that publish `backends` as the ring of [`SERVICE_NAME`]: an
/// SRV record each, the ring's settings, and for each backend its tokens
/// and its address; with SRV-only records, the SRV and A records only.
pub(super) fn records(backends: &[DemoBackendInfo], which: Records) -> Vec<ZoneRecord> {
    let mut records: Vec<ZoneRecord> = backends.iter().map(srv_record).collect();
    if which == Records::Ring {
        records.push(ZoneRecord::txt(config_name(SERVICE_NAME), &[REPLICATION]));
    }
    for backend in backends {
        let target = target(backend);
        if let Some(token) = backend.token {
            records.push(ZoneRecord::txt(
                tokens_name(backend.addr.port(), &target),
                &[token.to_string()],
            ));
        }
        records.push(ZoneRecord::a(target, Ipv4Addr::LOCALHOST));
    }
    records
}

/// The SRV record that lists `backend` as an instance of [`SERVICE_NAME`].
pub(super) fn srv_record(backend: &DemoBackendInfo) -> ZoneRecord {
    ZoneRecord::srv(
        SERVICE_NAME,
        SRV_PRIORITY,
        SRV_WEIGHT,
        backend.addr.port(),
        target(backend),
    )
}

/// A backend's SRV target, with its trailing dot.
fn target(backend: &DemoBackendInfo) -> String {
    format!("{}.", backend.host)
}

/// The zone's records in RFC 1035 master-file format, one per line with
/// absolute names, aligned for reading.
pub(super) fn zone_file(zone: &Zone) -> String {
    let width = zone
        .records()
        .iter()
        .map(|record| record.name.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for record in zone.records() {
        let ttl = record.ttl.unwrap_or(zone.ttl());
        let (kind, data) = match &record.data {
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => ("SRV", format!("{priority} {weight} {port} {target}")),
            RecordData::Txt(strings) => (
                "TXT",
                strings
                    .iter()
                    .map(|s| quoted(s))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            RecordData::A(addr) => ("A", addr.to_string()),
            RecordData::Aaaa(addr) => ("AAAA", addr.to_string()),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{name:<width$} {ttl} IN {kind:<4} {data}",
            name = record.name
        );
    }
    text
}

/// A TXT character-string in master-file syntax.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(tokens: &[Token]) -> Vec<String> {
        tokens.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn balanced_tokens_follow_ring_plan() {
        assert_eq!(hex(&balanced_tokens(1)), ["f".repeat(32)]);
        assert_eq!(
            hex(&balanced_tokens(2)),
            [format!("7{}", "f".repeat(31)), "f".repeat(32)]
        );
        assert_eq!(
            hex(&balanced_tokens(4)),
            [
                format!("3{}", "f".repeat(31)),
                format!("7{}", "f".repeat(31)),
                format!("b{}", "f".repeat(31)),
                "f".repeat(32),
            ]
        );
        // 2^128 / 3 = 0x5555...5555.55..., 2 × 2^128 / 3 = 0xaaaa...aaaa.aa...
        assert_eq!(
            hex(&balanced_tokens(3)),
            [
                format!("{}4", "5".repeat(31)),
                format!("{}9", "a".repeat(31)),
                "f".repeat(32),
            ]
        );
        assert!(balanced_tokens(0).is_empty());
    }

    #[test]
    fn balanced_tokens_are_exact_for_awkward_counts() {
        for n in [5_u128, 7, 10, 63, 64] {
            let tokens = balanced_tokens(n as usize);
            assert_eq!(tokens.len(), n as usize);
            assert!(tokens.windows(2).all(|pair| pair[0] < pair[1]));
            for (i, token) in (1..=n).zip(&tokens) {
                if i == n {
                    assert_eq!(token.0, u128::MAX, "n = {n}: the last token tops the ring");
                    continue;
                }
                // t + 1 = floor(i × 2^128 / n) exactly when
                // (t + 1) × n <= i × 2^128 < (t + 2) × n, in 256 bits.
                let floor = token.0 + 1;
                assert!(
                    mul_256(floor, n) <= (i, 0),
                    "n = {n}, i = {i}: {token} too high"
                );
                assert!(
                    mul_256(floor + 1, n) > (i, 0),
                    "n = {n}, i = {i}: {token} too low"
                );
            }
        }
    }

    /// `a × b` as (high, low) 128-bit halves, for `b` below 2^64.
    fn mul_256(a: u128, b: u128) -> (u128, u128) {
        let low = (a & u128::from(u64::MAX)) * b;
        let high = (a >> 64) * b;
        let (sum, carry) = low.overflowing_add(high << 64);
        ((high >> 64) + u128::from(carry), sum)
    }

    #[test]
    fn records_publish_a_ring_with_distinct_hosts() {
        let backends: Vec<DemoBackendInfo> = balanced_tokens(2)
            .into_iter()
            .enumerate()
            .map(|(index, token)| {
                let host = host(index + 1);
                let port = 41_001 + index as u16;
                DemoBackendInfo {
                    name: format!("{host}:{port}"),
                    host,
                    addr: ([127, 0, 0, 1], port).into(),
                    token: Some(token),
                }
            })
            .collect();
        let zone = Zone::new(ORIGIN)
            .with_ttl(TTL)
            .with_records(records(&backends, Records::Ring));
        let expected = "\
_demo._http.demo.shardproxy.        5 IN SRV  10 50 41001 node1.demo.shardproxy.
_demo._http.demo.shardproxy.        5 IN SRV  10 50 41002 node2.demo.shardproxy.
config._demo._http.demo.shardproxy. 5 IN TXT  \"slaves=1 redundancy=host\"
tokens.41001.node1.demo.shardproxy. 5 IN TXT  \"7fffffffffffffffffffffffffffffff\"
node1.demo.shardproxy.              5 IN A    127.0.0.1
tokens.41002.node2.demo.shardproxy. 5 IN TXT  \"ffffffffffffffffffffffffffffffff\"
node2.demo.shardproxy.              5 IN A    127.0.0.1
";
        assert_eq!(zone_file(&zone), expected);
    }

    #[test]
    fn srv_only_publishes_no_txt_record() {
        let backends: Vec<DemoBackendInfo> = (1..=2)
            .map(|number| {
                let host = host(number);
                let port = 41_000 + number as u16;
                DemoBackendInfo {
                    name: format!("{host}:{port}"),
                    host,
                    addr: ([127, 0, 0, 1], port).into(),
                    token: None,
                }
            })
            .collect();
        let zone = Zone::new(ORIGIN)
            .with_ttl(TTL)
            .with_records(records(&backends, Records::SrvOnly));
        let expected = "\
_demo._http.demo.shardproxy. 5 IN SRV  10 50 41001 node1.demo.shardproxy.
_demo._http.demo.shardproxy. 5 IN SRV  10 50 41002 node2.demo.shardproxy.
node1.demo.shardproxy.       5 IN A    127.0.0.1
node2.demo.shardproxy.       5 IN A    127.0.0.1
";
        assert_eq!(zone_file(&zone), expected);
    }

    #[test]
    fn quotes_txt_strings() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
