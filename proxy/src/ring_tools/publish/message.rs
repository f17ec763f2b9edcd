//! The messages of `ring publish` as hickory builds them: the SOA query
//! that finds the zone, and the UPDATE (RFC 2136 §2) made from a
//! [`RingUpdate`]. Pure: ids come in, messages come out, so tests read the
//! sections without a server.
//!
//! hickory's `update_message::compare_and_swap` and friends build one
//! RRset's update and assert (panic) on a name outside the zone; one
//! update of many RRsets, checked here, is built from the same parts:
//! [`UpdateMessage`]'s sections and `Record::update0`.

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::{A, AAAA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use shardproxy_ring::zone::{RecordData, RingRrType, RingUpdate};

/// A name of the update that hickory cannot send, or that is outside the
/// zone.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// Not a domain name in wire form (a label over 63 bytes, a name over
    /// 255).
    #[error("{name} is not a name a DNS message can carry: {reason}")]
    Invalid {
        /// The name as the zone file gives it.
        name: String,
        /// hickory's reason.
        reason: String,
    },
    /// Outside the zone the service name is in: one UPDATE changes one
    /// zone (RFC 2136 §2.3).
    #[error("{name} is not in the zone {zone} that holds {service}: one UPDATE changes one zone; publish the records of the other zone apart")]
    OutsideZone {
        /// The record's owner (or the SRV target's `tokens.` name).
        name: String,
        /// The zone.
        zone: String,
        /// The service name.
        service: String,
    },
}

/// `name` (absolute, presentation form) as a hickory name.
///
/// # Errors
///
/// [`NameError::Invalid`].
pub fn name(text: &str) -> Result<Name, NameError> {
    Name::from_ascii(text).map_err(|error| NameError::Invalid {
        name: text.to_owned(),
        reason: error.to_string(),
    })
}

/// The SOA query for `service`, not recursive: an authoritative server
/// answers it with the SOA of the zone that holds the name, in the answer
/// (at the apex) or the authority section (below it, or for a name that
/// does not exist yet), which is how nsupdate finds the zone too.
pub fn soa_query(id: u16, service: &Name) -> Message {
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(service.clone(), RecordType::SOA));
    query
}

/// The zone `answer` (to [`soa_query`]) says holds the name: the owner of
/// its SOA record, when the answer is authoritative and has one.
pub fn zone_of(answer: &Message) -> Option<Name> {
    if !answer.metadata.authoritative {
        return None;
    }
    answer
        .answers
        .iter()
        .chain(&answer.authorities)
        .find(|record| record.record_type() == RecordType::SOA)
        .map(|record| record.name.clone())
}

/// The UPDATE for `update` in `zone`: the zone section, the prerequisites
/// (§2.4.2 for every RRset of OLD, §2.4.3 for the RRsets only NEW has),
/// then the deletes (§2.5.4) and the adds (§2.5.1).
///
/// # Errors
///
/// A name hickory cannot encode, or one outside `zone`.
pub fn update_message(id: u16, zone: &Name, update: &RingUpdate) -> Result<Message, NameError> {
    let in_zone = |text: &str| -> Result<Name, NameError> {
        let owner = name(text)?;
        if zone.zone_of(&owner) {
            Ok(owner)
        } else {
            Err(NameError::OutsideZone {
                name: text.to_owned(),
                zone: zone.to_ascii(),
                service: update.service.clone(),
            })
        }
    };
    let mut message = Message::new(id, MessageType::Query, OpCode::Update);
    let mut zone_query = Query::query(zone.clone(), RecordType::SOA);
    zone_query.set_query_class(DNSClass::IN);
    message.add_zone(zone_query);

    for rrset in &update.unchanged {
        let owner = in_zone(&rrset.name)?;
        for data in &rrset.records {
            // §2.4.2: the zone's class, TTL 0.
            message.add_pre_requisite(record(owner.clone(), 0, data)?);
        }
    }
    for (owner, rr_type) in &update.absent {
        // §2.4.3: class NONE, TTL 0, no RDATA.
        let mut absent = Record::update0(in_zone(owner)?, 0, record_type(*rr_type));
        absent.dns_class = DNSClass::NONE;
        message.add_pre_requisite(absent);
    }
    for deleted in &update.deletes {
        // §2.5.4: class NONE, TTL 0, the RDATA to delete.
        let mut delete = record(in_zone(&deleted.name)?, 0, &deleted.data)?;
        delete.dns_class = DNSClass::NONE;
        message.add_update(delete);
    }
    for added in &update.adds {
        message.add_update(record(in_zone(&added.name)?, added.ttl, &added.data)?);
    }
    Ok(message)
}

fn record_type(rr_type: RingRrType) -> RecordType {
    match rr_type {
        RingRrType::Srv => RecordType::SRV,
        RingRrType::Txt => RecordType::TXT,
    }
}

/// A record of class IN.
fn record(owner: Name, ttl: u32, data: &RecordData) -> Result<Record, NameError> {
    let rdata = match data {
        RecordData::A(addr) => RData::A(A::from(*addr)),
        RecordData::Aaaa(addr) => RData::AAAA(AAAA::from(*addr)),
        RecordData::Srv(srv) => RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            name(&srv.target)?,
        )),
        RecordData::Txt(strings) => {
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
    };
    Ok(Record::from_rdata(owner, ttl, rdata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardproxy_ring::zone::Zone;

    const OLD: &str = "$ORIGIN example.com.\n$TTL 60\n\
        _frob._http IN SRV 10 50 8081 frob1\n\
        tokens.8081.frob1 IN TXT \"40\"\n\
        frob1 IN A 10.0.0.1\n";

    fn update(old: &str, new: &str) -> RingUpdate {
        RingUpdate::between(
            &Zone::parse(old).unwrap(),
            &Zone::parse(new).unwrap(),
            "_frob._http.example.com",
        )
        .unwrap()
    }

    fn zone() -> Name {
        Name::from_ascii("example.com.").unwrap()
    }

    #[test]
    fn the_sections_of_an_update() {
        let new = OLD.replace("\"40\"", "\"80\"")
            + "_frob._http IN SRV 10 50 8082 frob1\ntokens.8082.frob1 30 IN TXT \"c0\"\n";
        let message = update_message(7, &zone(), &update(OLD, &new)).unwrap();
        // A round trip through the wire form, as the server reads it.
        let message = Message::from_vec(&message.to_vec().unwrap()).unwrap();
        assert_eq!(message.metadata.id, 7);
        assert_eq!(message.metadata.op_code, OpCode::Update);
        let zones = message.zones();
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0].name(), &zone());
        assert_eq!(zones[0].query_type(), RecordType::SOA);
        assert_eq!(zones[0].query_class(), DNSClass::IN);

        let show = |records: &[Record]| -> Vec<String> {
            records
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {} {} {}",
                        r.name,
                        r.ttl,
                        r.dns_class,
                        r.record_type(),
                        r.data
                    )
                })
                .collect()
        };
        assert_eq!(
            show(message.prerequisites()),
            [
                "_frob._http.example.com. 0 IN SRV 10 50 8081 frob1.example.com.",
                "tokens.8081.frob1.example.com. 0 IN TXT 40",
                // No RDATA: hickory shows RDLENGTH 0 as "UPDATE".
                "tokens.8082.frob1.example.com. 0 NONE TXT UPDATE",
            ]
        );
        assert_eq!(
            show(message.updates()),
            [
                "tokens.8081.frob1.example.com. 0 NONE TXT 40",
                "_frob._http.example.com. 60 IN SRV 10 50 8082 frob1.example.com.",
                "tokens.8081.frob1.example.com. 60 IN TXT 80",
                "tokens.8082.frob1.example.com. 30 IN TXT c0",
            ]
        );
    }

    #[test]
    fn a_name_outside_the_zone_is_refused() {
        let new = format!("{OLD}_frob._http IN SRV 10 50 8081 frob9.example.net.\nfrob9.example.net. IN A 10.0.0.9\ntokens.8081.frob9.example.net. IN TXT \"1\"\n");
        let error = update_message(1, &zone(), &update(OLD, &new)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "tokens.8081.frob9.example.net. is not in the zone example.com. that holds \
             _frob._http.example.com.: one UPDATE changes one zone; publish the records of \
             the other zone apart"
        );
    }

    #[test]
    fn the_zone_is_the_owner_of_an_authoritative_soa() {
        let service = Name::from_ascii("_frob._http.example.com.").unwrap();
        let query = soa_query(3, &service);
        assert!(!query.metadata.recursion_desired);
        let mut answer = query.clone().into_response();
        answer.metadata.authoritative = true;
        answer.add_authority(Record::from_rdata(
            zone(),
            60,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                zone(),
                zone(),
                1,
                2,
                3,
                4,
                5,
            )),
        ));
        assert_eq!(zone_of(&answer), Some(zone()));
        answer.metadata.authoritative = false;
        assert_eq!(zone_of(&answer), None, "a cache's answer is not the zone's");
    }
}
