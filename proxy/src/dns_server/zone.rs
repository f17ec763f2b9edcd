//! The zone as callers describe it (plain data, no hickory types), and the
//! compiled form the request handler answers from.
//!
//! A [`Zone`] is checked and compiled in one step ([`Compiled::new`]), so a
//! bad name is an error where the caller hands it over, not a SERVFAIL later.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::DnsServerError;

/// The TTL (seconds) of records that set none, when the zone sets none
/// either: short, so that a change made while a client runs is seen soon.
pub const DEFAULT_TTL: u32 = 5;

/// The longest character-string a TXT record can hold (RFC 1035 §3.3).
const MAX_TXT_STRING: usize = 255;

// === impl Zone ===

/// A zone: its origin, the default TTL and the records.
///
/// The server is authoritative for the origin and every name below it; it
/// publishes a synthetic SOA record at the origin, whose serial grows with
/// every change of the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    origin: String,
    ttl: u32,
    records: Vec<ZoneRecord>,
}

impl Zone {
    /// An empty zone for `origin`, an absolute name such as `"example.com."`
    /// (`"."` makes the server authoritative for every name).
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            ttl: DEFAULT_TTL,
            records: Vec::new(),
        }
    }

    /// Sets the TTL (seconds) of records that set none, which is also the
    /// TTL of the SOA record and so how long a negative answer may be cached.
    #[must_use]
    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds a record.
    #[must_use]
    pub fn with_record(mut self, record: ZoneRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Adds records.
    #[must_use]
    pub fn with_records(mut self, records: impl IntoIterator<Item = ZoneRecord>) -> Self {
        self.records.extend(records);
        self
    }

    /// The origin, as given.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The TTL of records that set none.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The records, in the order given.
    pub fn records(&self) -> &[ZoneRecord] {
        &self.records
    }

    /// The records, to change them in place.
    pub(super) fn records_mut(&mut self) -> &mut Vec<ZoneRecord> {
        &mut self.records
    }
}

// === impl ZoneRecord ===

/// One resource record (class IN).
///
/// Names are absolute (they end with `.`) and lie in the zone; they are
/// checked when the record is handed to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The owner name, e.g. `"_frob._http.example.com."`.
    pub name: String,
    /// The TTL in seconds; `None` takes the zone's.
    pub ttl: Option<u32>,
    /// The type and data.
    pub data: RecordData,
}

impl ZoneRecord {
    /// An SRV record: `name IN SRV priority weight port target`.
    pub fn srv(
        name: impl Into<String>,
        priority: u16,
        weight: u16,
        port: u16,
        target: impl Into<String>,
    ) -> Self {
        Self::new(
            name,
            RecordData::Srv {
                priority,
                weight,
                port,
                target: target.into(),
            },
        )
    }

    /// A TXT record holding `strings`, each one character-string of the
    /// record (at most 255 bytes each; at least one string).
    pub fn txt<S: AsRef<str>>(name: impl Into<String>, strings: &[S]) -> Self {
        let strings = strings.iter().map(|s| s.as_ref().to_owned()).collect();
        Self::new(name, RecordData::Txt(strings))
    }

    /// An A record.
    pub fn a(name: impl Into<String>, addr: Ipv4Addr) -> Self {
        Self::new(name, RecordData::A(addr))
    }

    /// An AAAA record.
    pub fn aaaa(name: impl Into<String>, addr: Ipv6Addr) -> Self {
        Self::new(name, RecordData::Aaaa(addr))
    }

    /// Sets this record's TTL (seconds), overriding the zone's.
    #[must_use]
    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    fn new(name: impl Into<String>, data: RecordData) -> Self {
        Self {
            name: name.into(),
            ttl: None,
            data,
        }
    }
}

/// The type and data of a [`ZoneRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// SRV (RFC 2782).
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Relative weight within a priority.
        weight: u16,
        /// The service's port on the target.
        port: u16,
        /// The target host, an absolute name (may lie outside the zone;
        /// `"."` means "no service").
        target: String,
    },
    /// TXT: one or more character-strings.
    Txt(Vec<String>),
    /// A: an IPv4 address.
    A(Ipv4Addr),
    /// AAAA: an IPv6 address.
    Aaaa(Ipv6Addr),
}

// === impl Compiled ===

/// A checked zone in hickory's types, ready to answer queries. Immutable:
/// a change compiles a new one, which replaces this one whole.
#[derive(Debug)]
pub(super) struct Compiled {
    origin: LowerName,
    /// Every name that exists: owners of records and the names between them
    /// and the origin (empty non-terminals exist too, RFC 8020).
    names: HashSet<LowerName>,
    /// Records by owner name, the SOA included.
    records: HashMap<LowerName, Vec<Record>>,
    soa: Record,
}

/// How a query is answered.
#[derive(Debug)]
pub(super) enum Answer<'a> {
    /// The name is not in the zone: REFUSED.
    NotAuthoritative,
    /// NOERROR with these records; when empty (NODATA), the SOA goes into the
    /// authority section.
    Records(Vec<&'a Record>),
    /// The name does not exist (NXDOMAIN); the SOA goes into the authority
    /// section.
    NoSuchName,
}

impl Compiled {
    /// Checks `zone` and compiles it, with `serial` as the SOA serial.
    pub(super) fn new(zone: &Zone, serial: u32) -> Result<Self, DnsServerError> {
        let origin = parse_name(&zone.origin)?;
        let soa = soa_record(&origin, zone.ttl, serial)?;
        let origin_lower = LowerName::new(&origin);

        let mut compiled = Self {
            names: HashSet::from([origin_lower.clone()]),
            records: HashMap::new(),
            origin: origin_lower,
            soa: soa.clone(),
        };
        compiled.insert(soa);
        for record in &zone.records {
            let record = to_record(record, zone.ttl)?;
            let owner = LowerName::new(&record.name);
            if !compiled.origin.zone_of(&owner) {
                return Err(DnsServerError::OutOfZone {
                    name: record.name.to_string(),
                    origin: zone.origin.clone(),
                });
            }
            compiled.insert(record);
        }
        Ok(compiled)
    }

    /// The SOA record, for the authority section of negative answers.
    pub(super) fn soa(&self) -> &Record {
        &self.soa
    }

    /// Answers a query for `name` and `query_type`.
    pub(super) fn lookup(&self, name: &LowerName, query_type: RecordType) -> Answer<'_> {
        if !self.origin.zone_of(name) {
            return Answer::NotAuthoritative;
        }
        if !self.names.contains(name) {
            return Answer::NoSuchName;
        }
        let records = self
            .records
            .get(name)
            .map(|records| {
                records
                    .iter()
                    .filter(|r| query_type == RecordType::ANY || r.record_type() == query_type)
                    .collect()
            })
            .unwrap_or_default();
        Answer::Records(records)
    }

    fn insert(&mut self, record: Record) {
        let owner = LowerName::new(&record.name);
        // The owner and every ancestor up to the origin exist.
        let mut name = owner.clone();
        while name != self.origin && self.names.insert(name.clone()) {
            name = name.base_name();
        }
        let rrset = self.records.entry(owner).or_default();
        // A record set has no duplicates (RFC 2181 §5): a repeat is dropped.
        if !rrset
            .iter()
            .any(|r| r.record_type() == record.record_type() && r.data == record.data)
        {
            rrset.push(record);
        }
    }
}

/// Parses an absolute name.
pub(super) fn parse_name(name: &str) -> Result<Name, DnsServerError> {
    if !name.ends_with('.') {
        return Err(DnsServerError::NotAbsolute {
            name: name.to_owned(),
        });
    }
    Name::from_ascii(name).map_err(|source| DnsServerError::InvalidName {
        name: name.to_owned(),
        source,
    })
}

fn to_record(record: &ZoneRecord, zone_ttl: u32) -> Result<Record, DnsServerError> {
    let name = parse_name(&record.name)?;
    let rdata = match &record.data {
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, parse_name(target)?)),
        RecordData::Txt(strings) => {
            let invalid = |reason| DnsServerError::InvalidTxt {
                name: record.name.clone(),
                reason,
            };
            if strings.is_empty() {
                return Err(invalid("a TXT record needs at least one string"));
            }
            if strings.iter().any(|s| s.len() > MAX_TXT_STRING) {
                return Err(invalid("a TXT string is at most 255 bytes"));
            }
            RData::TXT(TXT::new(strings.clone()))
        }
        RecordData::A(addr) => RData::A(A::from(*addr)),
        RecordData::Aaaa(addr) => RData::AAAA(AAAA::from(*addr)),
    };
    let mut record = Record::from_rdata(name, record.ttl.unwrap_or(zone_ttl), rdata);
    record.dns_class = DNSClass::IN;
    Ok(record)
}

/// The synthetic SOA: the negative-caching TTL (the minimum field, RFC 2308)
/// is the zone's TTL, so NXDOMAIN and NODATA are cached no longer than data.
fn soa_record(origin: &Name, ttl: u32, serial: u32) -> Result<Record, DnsServerError> {
    let rname = Name::from_ascii("hostmaster")
        .and_then(|label| label.append_domain(origin))
        .map_err(|source| DnsServerError::InvalidName {
            name: format!("hostmaster.{origin}"),
            source,
        })?;
    let soa = SOA::new(origin.clone(), rname, serial, 3600, 600, 86_400, ttl);
    Ok(Record::from_rdata(origin.clone(), ttl, RData::SOA(soa)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(name: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(name).unwrap())
    }

    fn zone() -> Zone {
        Zone::new("example.com.").with_ttl(7).with_records([
            ZoneRecord::srv(
                "_frob._http.example.com.",
                10,
                50,
                8081,
                "frob1.example.com.",
            ),
            ZoneRecord::txt("tokens.8081.frob1.example.com.", &["00112233", "4455"]),
            ZoneRecord::a("frob1.example.com.", Ipv4Addr::LOCALHOST).with_ttl(1),
        ])
    }

    #[test]
    fn answers_nxdomain_nodata_and_records() {
        let compiled = Compiled::new(&zone(), 1).unwrap();
        let srv = lower("_FROB._http.example.com.");
        match compiled.lookup(&srv, RecordType::SRV) {
            Answer::Records(records) => {
                assert_eq!(records.len(), 1);
                assert_eq!(records[0].ttl, 7);
            }
            other => panic!("expected the SRV record, got {other:?}"),
        }
        assert!(matches!(
            compiled.lookup(&srv, RecordType::TXT),
            Answer::Records(r) if r.is_empty()
        ));
        // An empty non-terminal exists.
        assert!(matches!(
            compiled.lookup(&lower("_http.example.com."), RecordType::A),
            Answer::Records(r) if r.is_empty()
        ));
        assert!(matches!(
            compiled.lookup(&lower("nope.example.com."), RecordType::A),
            Answer::NoSuchName
        ));
        assert!(matches!(
            compiled.lookup(&lower("example.org."), RecordType::A),
            Answer::NotAuthoritative
        ));
        match compiled.lookup(&lower("frob1.example.com."), RecordType::A) {
            Answer::Records(records) => assert_eq!(records[0].ttl, 1),
            other => panic!("expected the A record, got {other:?}"),
        }
        match compiled.lookup(&lower("example.com."), RecordType::SOA) {
            Answer::Records(records) => assert_eq!(records.len(), 1),
            other => panic!("expected the SOA record, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_records() {
        let relative = zone().with_record(ZoneRecord::a("x.example.com", Ipv4Addr::LOCALHOST));
        assert!(matches!(
            Compiled::new(&relative, 1),
            Err(DnsServerError::NotAbsolute { .. })
        ));
        let outside = zone().with_record(ZoneRecord::a("x.example.org.", Ipv4Addr::LOCALHOST));
        assert!(matches!(
            Compiled::new(&outside, 1),
            Err(DnsServerError::OutOfZone { .. })
        ));
        let empty_txt = zone().with_record(ZoneRecord::txt::<&str>("t.example.com.", &[]));
        assert!(matches!(
            Compiled::new(&empty_txt, 1),
            Err(DnsServerError::InvalidTxt { .. })
        ));
        let long_txt = zone().with_record(ZoneRecord::txt("t.example.com.", &["x".repeat(256)]));
        assert!(matches!(
            Compiled::new(&long_txt, 1),
            Err(DnsServerError::InvalidTxt { .. })
        ));
    }

    #[test]
    fn root_zone_covers_every_name() {
        let zone = Zone::new(".").with_record(ZoneRecord::a("a.test.", Ipv4Addr::LOCALHOST));
        let compiled = Compiled::new(&zone, 1).unwrap();
        assert!(matches!(
            compiled.lookup(&lower("b.test."), RecordType::A),
            Answer::NoSuchName
        ));
    }
}
