//! The ring a zone file publishes for one service: the records of SPEC §3
//! read from a [`Zone`] with the rules discovery applies to DNS answers.
//!
//! - Instances: the SRV records at the service name (one instance per
//!   target and port; the target `.` is skipped). None is an error, as in
//!   discovery: a ring needs an instance.
//! - Addresses: the smallest A record of the target in the zone, else its
//!   smallest AAAA record. A target with neither is an error, as in
//!   discovery, where it makes the refresh fail: a zone like that would not
//!   be used by any proxy, so there is no ring to compare or plan from. A
//!   target outside the zone has no address here either: put the ring's
//!   records and the targets' addresses in the file.
//! - Tokens: every word of every TXT string at `tokens.<port>.<target>`. An
//!   instance with no such record, or no word in it, is left out of the ring
//!   with a warning (it may be joining); a malformed token is an error.
//! - Settings: the TXT at `config.<service>`; unknown keys are warnings.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{absolute, RecordData, Zone};
use crate::instance::{InstanceName, NameError};
use crate::records::{config_name, parse_ring_config, parse_tokens, tokens_name, RingConfig};
use crate::ring::{Member, Ring, RingError, RingWarning};
use crate::token::{Token, TokenError};
use crate::RingConfigError;

/// A service's ring as a zone file publishes it, with what `ring plan`
/// needs to write records like the ones already there.
#[derive(Clone, Debug)]
pub struct ZoneRing {
    /// The SRV name: absolute, lower case.
    pub service: String,
    /// The ring.
    pub ring: Ring,
    /// Every instance of the SRV records, sorted by `host:port`, including
    /// those left out of the ring for want of tokens.
    pub instances: Vec<ZoneInstance>,
    /// The first SRV record of the service, in file order: `ring plan`
    /// copies its TTL, priority and weight.
    pub srv_template: SrvTemplate,
    /// What the operator should hear of.
    pub warnings: Vec<ZoneRingWarning>,
}

/// The TTL, priority and weight of an SRV record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrvTemplate {
    /// `None` when the zone gives no TTL at all.
    pub ttl: Option<u32>,
    /// SRV priority.
    pub priority: u16,
    /// SRV weight.
    pub weight: u16,
}

/// One SRV instance of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInstance {
    /// `host:port`.
    pub name: InstanceName,
    /// The SRV target, absolute.
    pub target: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its tokens as published (empty: left out of the ring).
    pub tokens: Vec<Token>,
}

/// Something wrong but tolerated, as discovery tolerates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneRingWarning {
    /// An instance without tokens, left out of the ring.
    NoTokens {
        /// The instance.
        instance: InstanceName,
        /// Where its tokens would be.
        name: String,
    },
    /// A key of the ring's settings this version does not know.
    UnknownConfigKey {
        /// The `config.` name.
        name: String,
        /// The key.
        key: String,
    },
    /// What the ring itself warns of (token ties, short preference lists).
    Ring(RingWarning),
}

impl fmt::Display for ZoneRingWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneRingWarning::NoTokens { instance, name } => write!(
                f,
                "instance {instance} publishes no tokens at {name}: left out of the ring"
            ),
            ZoneRingWarning::UnknownConfigKey { name, key } => {
                write!(f, "{name}: unknown key {key:?} ignored")
            }
            ZoneRingWarning::Ring(warning) => warning.fmt(f),
        }
    }
}

/// Why a zone publishes no usable ring for the service. Each is what makes
/// a discovery refresh fail (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneRingError {
    /// No SRV record (other than target `.`) at the service name.
    #[error("no SRV record for {service} in the zone: a ring needs at least one instance")]
    NoInstances {
        /// The service name.
        service: String,
    },
    /// An SRV target without an A or AAAA record in the zone.
    #[error("line {line}: SRV target {target} (port {port}) has no A or AAAA record in the zone")]
    NoAddress {
        /// The SRV record's line.
        line: usize,
        /// The target.
        target: String,
        /// The port.
        port: u16,
    },
    /// An SRV target that cannot name an instance.
    #[error("line {line}: SRV target {target:?} cannot name an instance: {source}")]
    BadTarget {
        /// The SRV record's line.
        line: usize,
        /// The target.
        target: String,
        /// Why.
        source: NameError,
    },
    /// A malformed token.
    #[error("line {line}: malformed token at {name}: {source}")]
    BadToken {
        /// The TXT record's line.
        line: usize,
        /// The owner name.
        name: String,
        /// Why.
        source: TokenError,
    },
    /// Malformed ring settings.
    #[error("malformed ring config at {name} (line {line}): {source}")]
    BadRingConfig {
        /// The line of the first TXT record there.
        line: usize,
        /// The owner name.
        name: String,
        /// Why.
        source: RingConfigError,
    },
    /// The ring cannot be built.
    #[error(transparent)]
    Ring(#[from] RingError),
}

// === impl ZoneRing ===

impl ZoneRing {
    /// Reads the ring of `service` (the SRV name, any case, with or without
    /// the final dot) from `zone`.
    ///
    /// # Errors
    ///
    /// [`ZoneRingError`] for each condition that makes discovery fail.
    pub fn read(zone: &Zone, service: &str) -> Result<ZoneRing, ZoneRingError> {
        let service = absolute(service);
        let mut template: Option<SrvTemplate> = None;
        let mut instances: Vec<ZoneInstance> = Vec::new();
        let mut warnings = Vec::new();

        for record in zone.records_at(&service) {
            let RecordData::Srv(srv) = &record.data else {
                continue;
            };
            if srv.target == "." {
                continue;
            }
            template.get_or_insert(SrvTemplate {
                ttl: record.ttl,
                priority: srv.priority,
                weight: srv.weight,
            });
            let name = InstanceName::new(&srv.target, srv.port).map_err(|source| {
                ZoneRingError::BadTarget {
                    line: record.line,
                    target: srv.target.clone(),
                    source,
                }
            })?;
            if instances.iter().any(|known| known.name == name) {
                continue;
            }
            let ip: IpAddr = zone
                .address_of(&srv.target)
                .ok_or(ZoneRingError::NoAddress {
                    line: record.line,
                    target: srv.target.clone(),
                    port: srv.port,
                })?;
            let owner = tokens_name(srv.port, &srv.target);
            let mut tokens = Vec::new();
            for txt in zone.records_at(&owner) {
                let RecordData::Txt(strings) = &txt.data else {
                    continue;
                };
                let parsed = parse_tokens(strings.iter().map(Vec::as_slice)).map_err(|source| {
                    ZoneRingError::BadToken {
                        line: txt.line,
                        name: owner.clone(),
                        source,
                    }
                })?;
                tokens.extend(parsed);
            }
            if tokens.is_empty() {
                warnings.push(ZoneRingWarning::NoTokens {
                    instance: name.clone(),
                    name: owner,
                });
            }
            instances.push(ZoneInstance {
                name,
                target: srv.target.clone(),
                addr: SocketAddr::new(ip, srv.port),
                tokens,
            });
        }
        let Some(srv_template) = template else {
            return Err(ZoneRingError::NoInstances { service });
        };
        instances.sort_by(|a, b| a.name.cmp(&b.name));

        let config = ring_config(zone, &service)?;
        let config_owner = config_name(&service);
        warnings.extend(config.unknown_keys.into_iter().map(|key| {
            ZoneRingWarning::UnknownConfigKey {
                name: config_owner.clone(),
                key,
            }
        }));
        let members = instances
            .iter()
            .filter(|instance| !instance.tokens.is_empty())
            .map(|instance| Member {
                name: instance.name.clone(),
                addr: instance.addr,
                tokens: instance.tokens.clone(),
            })
            .collect();
        let ring = Ring::build(members, config.replication)?;
        warnings.extend(ring.warnings().iter().cloned().map(ZoneRingWarning::Ring));
        Ok(ZoneRing {
            service,
            ring,
            instances,
            srv_template,
            warnings,
        })
    }

    /// The SRV instance named `name`, whether or not it is in the ring.
    pub fn instance(&self, name: &InstanceName) -> Option<&ZoneInstance> {
        self.instances
            .iter()
            .find(|instance| &instance.name == name)
    }
}

/// The words of every TXT string at `config.<service>`.
fn ring_config(zone: &Zone, service: &str) -> Result<RingConfig, ZoneRingError> {
    let owner = config_name(service);
    let mut first_line = None;
    let strings: Vec<&[u8]> = zone
        .records_at(&owner)
        .filter_map(|record| match &record.data {
            RecordData::Txt(strings) => {
                first_line.get_or_insert(record.line);
                Some(strings)
            }
            _ => None,
        })
        .flatten()
        .map(Vec::as_slice)
        .collect();
    parse_ring_config(strings).map_err(|source| ZoneRingError::BadRingConfig {
        line: first_line.unwrap_or(0),
        name: owner,
        source,
    })
}
