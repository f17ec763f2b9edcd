//! The DNS UPDATE (RFC 2136) that turns the ring records one zone file
//! publishes for a service into those another publishes: what
//! `shardproxy ring publish` (SPEC §12) sends. Pure: the two parsed zones
//! come in, the prerequisites and the changes come out; the proxy builds
//! the message and sends it.
//!
//! The ring records of a service (SPEC §3) are three kinds of RRset: the SRV
//! RRset at the service name, the TXT RRset at `config.<service>`, and the
//! TXT RRset at `tokens.<port>.<target>` of every SRV target and port of
//! either zone. Address records are the operator's and are never touched.
//!
//! - **Prerequisites** (RFC 2136 §2.4): every ring RRset of OLD must still
//!   be exactly as in OLD ("RRset exists, value dependent", §2.4.2), and
//!   every ring RRset that NEW has and OLD has not must still not exist
//!   ("RRset does not exist", §2.4.3), so that an instance another operator
//!   added meanwhile is not silently overwritten. The server applies the
//!   update whole or not at all: if anything changed since OLD, nothing
//!   changes.
//! - **Changes** (§2.5): per RRset, the records OLD has and NEW has not are
//!   deleted one by one (§2.5.4), and those NEW has and OLD has not are
//!   added (§2.5.1), so that what the update prints is what really changes.
//!   An RRset whose TTL changes is replaced whole (every OLD record deleted,
//!   every NEW one added with the new TTL), because a server keeps one TTL
//!   per RRset. Deletes come before adds, as a server applies them in order.
//!
//! Records compare by their data as DNS does: names without regard to case
//! (the zone reader lower-cases them), TXT strings byte for byte, TTLs not
//! at all (§2.4.2: the TTL "is ignored when comparing RRsets").

use std::fmt;

use super::{absolute, RecordData, Zone, ZoneRecord};
use crate::records::{config_name, tokens_name};

/// The type of a ring RRset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RingRrType {
    /// The service's instances.
    Srv,
    /// Tokens or ring settings.
    Txt,
}

impl fmt::Display for RingRrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingRrType::Srv => "SRV",
            RingRrType::Txt => "TXT",
        })
    }
}

/// A ring RRset as OLD publishes it: the prerequisite "RRset exists (value
/// dependent)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrSet {
    /// The owner: absolute, lower case.
    pub name: String,
    /// SRV or TXT.
    pub rr_type: RingRrType,
    /// Its records' data, each once, in file order.
    pub records: Vec<RecordData>,
}

/// A record to add (RFC 2136 §2.5.1): unlike a [`ZoneRecord`] its TTL is
/// known, since a server needs one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addition {
    /// The owner: absolute, lower case.
    pub name: String,
    /// The TTL of its RRset in NEW.
    pub ttl: u32,
    /// The data.
    pub data: RecordData,
}

/// The update: prerequisites, then deletes, then adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingUpdate {
    /// The SRV name: absolute, lower case.
    pub service: String,
    /// Every ring RRset of OLD, which must still be exactly so.
    pub unchanged: Vec<RrSet>,
    /// Every ring RRset NEW has and OLD has not, which must still not
    /// exist.
    pub absent: Vec<(String, RingRrType)>,
    /// OLD's records to delete, as OLD has them (line and TTL for
    /// printing; a delete carries neither).
    pub deletes: Vec<ZoneRecord>,
    /// NEW's records to add.
    pub adds: Vec<Addition>,
}

/// Why no update can be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// A record to add whose TTL the file does not give (no TTL on it, no
    /// `$TTL`, no earlier TTL and no SOA before it).
    #[error("line {line}: {name} has no TTL (none on the record, no $TTL, no TTL or SOA before it): a record sent to a server needs one")]
    NoTtl {
        /// The record's line in NEW.
        line: usize,
        /// Its owner.
        name: String,
    },
}

// === impl RingUpdate ===

impl RingUpdate {
    /// The update that turns the ring records of `service` (the SRV name,
    /// any case, with or without the final dot) in `old` into those in
    /// `new`. Either zone may lack some or all of them: an RRset that
    /// appears is added, one that disappears is deleted.
    ///
    /// # Errors
    ///
    /// [`UpdateError::NoTtl`] for a record of `new` to add without a TTL.
    pub fn between(old: &Zone, new: &Zone, service: &str) -> Result<RingUpdate, UpdateError> {
        let service = absolute(service);
        let mut update = RingUpdate {
            service: service.clone(),
            unchanged: Vec::new(),
            absent: Vec::new(),
            deletes: Vec::new(),
            adds: Vec::new(),
        };
        let mut adds: Vec<Addition> = Vec::new();
        for (name, rr_type) in ring_rrsets(old, new, &service) {
            let before = records_of(old, &name, rr_type);
            let after = records_of(new, &name, rr_type);
            if before.is_empty() {
                if !after.is_empty() {
                    update.absent.push((name.clone(), rr_type));
                }
            } else {
                update.unchanged.push(RrSet {
                    name: name.clone(),
                    rr_type,
                    records: before.iter().map(|record| record.data.clone()).collect(),
                });
            }
            let new_ttl = match after.first() {
                Some(first) => Some(first.ttl.ok_or_else(|| UpdateError::NoTtl {
                    line: first.line,
                    name: name.clone(),
                })?),
                None => None,
            };
            let old_ttl = before.first().and_then(|first| first.ttl);
            // A known TTL that changes: the whole RRset is replaced.
            let replace = matches!((old_ttl, new_ttl), (Some(old), Some(new)) if old != new);
            let has = |records: &[&ZoneRecord], data: &RecordData| {
                records.iter().any(|record| &record.data == data)
            };
            update.deletes.extend(
                before
                    .iter()
                    .filter(|record| replace || !has(&after, &record.data))
                    .map(|&record| record.clone()),
            );
            if let Some(ttl) = new_ttl {
                adds.extend(
                    after
                        .iter()
                        .filter(|record| replace || !has(&before, &record.data))
                        .map(|record| Addition {
                            name: name.clone(),
                            ttl,
                            data: record.data.clone(),
                        }),
                );
            }
        }
        update.adds = adds;
        Ok(update)
    }

    /// Whether the update changes nothing (OLD and NEW publish the same
    /// ring records); it still checks that the server publishes OLD.
    pub fn changes_nothing(&self) -> bool {
        self.deletes.is_empty() && self.adds.is_empty()
    }
}

/// The ring RRsets of `service` in either zone, each once: the SRV RRset,
/// the `config.` TXT, then the `tokens.` TXT of each SRV target and port,
/// OLD's in file order, then NEW's.
fn ring_rrsets(old: &Zone, new: &Zone, service: &str) -> Vec<(String, RingRrType)> {
    let mut rrsets = vec![
        (service.to_owned(), RingRrType::Srv),
        (config_name(service), RingRrType::Txt),
    ];
    for zone in [old, new] {
        for record in zone.records_at(service) {
            let RecordData::Srv(srv) = &record.data else {
                continue;
            };
            if srv.target == "." {
                continue;
            }
            let tokens = (tokens_name(srv.port, &srv.target), RingRrType::Txt);
            if !rrsets.contains(&tokens) {
                rrsets.push(tokens);
            }
        }
    }
    rrsets
}

/// The records of the RRset `name`/`rr_type` in `zone`, in file order, a
/// record whose data repeats an earlier one's left out (an RRset is a set:
/// BIND loads a repeated record once).
fn records_of<'a>(zone: &'a Zone, name: &str, rr_type: RingRrType) -> Vec<&'a ZoneRecord> {
    let mut records: Vec<&ZoneRecord> = Vec::new();
    for record in zone.records_at(name) {
        let matches = matches!(
            (&record.data, rr_type),
            (RecordData::Srv(_), RingRrType::Srv) | (RecordData::Txt(_), RingRrType::Txt)
        );
        if matches && !records.iter().any(|known| known.data == record.data) {
            records.push(record);
        }
    }
    records
}

#[cfg(test)]
mod tests;
