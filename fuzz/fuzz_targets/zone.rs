//! Zone files (RFC 1035 master format) as `ring diff` and `ring plan` read
//! them.
//!
//! Properties: the records of a zone, written back one per line with the
//! zone writer (absolute names, explicit TTLs, quoted TXT strings), parse
//! to the same records; reading the ring of any SRV name in it never
//! panics, and in a ring read the preference list of a key (and of the
//! ends of the key space) holds `list_len` distinct instances, primary
//! first.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardproxy_ring::zone::{write, RecordData, ZoneRecord};
use shardproxy_ring::{Ring, Token, Zone, ZoneRing};

fuzz_target!(|text: &str| {
    let Ok(zone) = Zone::parse(text) else {
        return;
    };
    let written: Vec<String> = zone.records().iter().map(line).collect();
    let written = written.join("\n");
    let again = match Zone::parse(&written) {
        Ok(again) => again,
        Err(error) => panic!("written zone does not parse: {error}\n{written}"),
    };
    let strip = |zone: &Zone| -> Vec<ZoneRecord> {
        zone.records()
            .iter()
            .map(|record| ZoneRecord {
                line: 0,
                ..record.clone()
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&zone), "{written}");

    for record in zone.records() {
        if let RecordData::Srv(_) = record.data {
            if let Ok(read) = ZoneRing::read(&zone, &record.name) {
                check_lookups(&read.ring, text.as_bytes());
            }
        }
    }
});

/// One record as a master-file line.
fn line(record: &ZoneRecord) -> String {
    let name = &record.name;
    let ttl = record.ttl.map(|ttl| format!(" {ttl}")).unwrap_or_default();
    match &record.data {
        RecordData::A(addr) => format!("{name}{ttl} IN A {addr}"),
        RecordData::Aaaa(addr) => format!("{name}{ttl} IN AAAA {addr}"),
        RecordData::Srv(srv) => write::srv_line(
            name,
            record.ttl,
            srv.priority,
            srv.weight,
            srv.port,
            &srv.target,
        ),
        RecordData::Txt(strings) => {
            let quoted: Vec<String> = strings.iter().map(|bytes| write::quote(bytes)).collect();
            format!("{name}{ttl} IN TXT {}", quoted.join(" "))
        }
    }
}

/// Lookups on a ring read from a zone.
fn check_lookups(ring: &Ring, key: &[u8]) {
    let _ = ring.canonical_text();
    for position in [Token::of_key(key), Token(0), Token(u128::MAX)] {
        let list = ring.preference_list(position);
        if ring.is_empty() {
            assert!(list.is_empty());
            continue;
        }
        assert_eq!(list.len(), ring.list_len());
        assert_eq!(
            list.primary().map(|instance| instance.name()),
            ring.primary(position).map(|instance| instance.name())
        );
        let mut indexes = list.indexes().to_vec();
        indexes.sort_unstable();
        indexes.dedup();
        assert_eq!(indexes.len(), list.len(), "an instance twice in a list");
    }
}
