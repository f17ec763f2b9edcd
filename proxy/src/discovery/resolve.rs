//! One resolution of a service's ring from DNS (SPEC §3): SRV, then for each
//! instance its address and its `tokens.` TXT, then the `config.` TXT.
//!
//! Each answer is classified the way SPEC §3 requires: a name that does not
//! exist or has no records of the type (NXDOMAIN, NODATA) is an *answer*
//! ("nothing here"), while a timeout, SERVFAIL or refusal is a *failure*
//! that must leave the last good ring in place.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use shardproxy_ring::records::{self, RingConfig};
use shardproxy_ring::srv::SrvWeight;
use shardproxy_ring::{InstanceName, Member, Ring, Token};
use tokio::task::JoinSet;

use super::error::DiscoveryError;
use super::{Balance, DnsSource, ReplicationFrom, SrvInstance, Table, TokenMode};

/// What one resolution found.
#[derive(Debug)]
pub struct Resolved {
    /// The ring (or SRV set) the records describe.
    pub table: Table,
    /// Things to tell the operator that did not stop the ring from being
    /// built: instances left out, unknown config keys, ring warnings.
    pub warnings: Vec<String>,
    /// The smallest TTL among the records read, if any were.
    pub min_ttl: Option<Duration>,
    /// Where the ring's replication settings came from.
    pub replication_from: ReplicationFrom,
}

/// Builds the resolver for discovery: the configured servers, or the
/// system's (`/etc/resolv.conf`) when none are given.
///
/// Its cache is off: a refresh must ask the server, or a change published in
/// DNS would wait for a cached TTL on top of our own schedule. The hosts file
/// is not consulted either, so every proxy of a fleet sees the same records.
///
/// # Errors
///
/// The system configuration could not be read.
pub fn build_resolver(servers: Option<&[SocketAddr]>) -> Result<TokioResolver, DiscoveryError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match servers {
        Some(servers) => {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        }
        None => TokioResolver::builder(provider).map_err(|error| DiscoveryError::Lookup {
            name: "/etc/resolv.conf".to_owned(),
            record_type: "system configuration",
            reason: error.to_string(),
        })?,
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    options.try_tcp_on_error = true;
    builder.build().map_err(|error| DiscoveryError::Lookup {
        name: "resolver".to_owned(),
        record_type: "setup",
        reason: error.to_string(),
    })
}

/// The records of one name and type, or why there are none.
enum Answer {
    /// The records' data and the smallest TTL among them.
    Records(Vec<RData>, u32),
    /// NXDOMAIN or NODATA: the name holds nothing of this type.
    Absent(&'static str),
}

/// Turns a name from the config or from a record into an absolute DNS name.
fn absolute(name: &str) -> Result<Name, DiscoveryError> {
    let mut parsed = Name::from_utf8(name).map_err(|error| DiscoveryError::BadName {
        name: name.to_owned(),
        reason: error.to_string(),
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    record_type: RecordType,
) -> Result<Answer, DiscoveryError> {
    match resolver.lookup(name.clone(), record_type).await {
        Ok(lookup) => {
            let mut ttl = u32::MAX;
            let data: Vec<RData> = lookup
                .answers()
                .iter()
                .filter(|record| record.record_type() == record_type)
                .map(|record| {
                    ttl = ttl.min(record.ttl);
                    record.data.clone()
                })
                .collect();
            if data.is_empty() {
                Ok(Answer::Absent("NODATA"))
            } else {
                Ok(Answer::Records(data, ttl))
            }
        }
        Err(error) => classify_error(name, record_type, &error),
    }
}

fn classify_error(
    name: &Name,
    record_type: RecordType,
    error: &NetError,
) -> Result<Answer, DiscoveryError> {
    if error.is_nx_domain() {
        return Ok(Answer::Absent("NXDOMAIN"));
    }
    if error.is_no_records_found() {
        return Ok(Answer::Absent("NODATA"));
    }
    Err(DiscoveryError::Lookup {
        name: name.to_ascii(),
        record_type: record_type_text(record_type),
        reason: error.to_string(),
    })
}

fn record_type_text(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::SRV => "SRV",
        RecordType::TXT => "TXT",
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        _ => "DNS",
    }
}

/// The TXT strings found at `name`, or `None` for NXDOMAIN / NODATA.
async fn txt_strings(
    resolver: &TokioResolver,
    name: &Name,
    ttl: &mut u32,
) -> Result<Option<Vec<Box<[u8]>>>, DiscoveryError> {
    match lookup(resolver, name, RecordType::TXT).await? {
        Answer::Absent(_) => Ok(None),
        Answer::Records(data, record_ttl) => {
            *ttl = (*ttl).min(record_ttl);
            let strings = data
                .into_iter()
                .filter_map(|data| match data {
                    RData::TXT(txt) => Some(txt.txt_data.into_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            Ok(Some(strings))
        }
    }
}

/// The numerically smallest A record of `target`, else its smallest AAAA
/// record, so every proxy picks the same address whatever order the server
/// rotates its answers in.
async fn instance_address(
    resolver: &TokioResolver,
    target: &Name,
    ttl: &mut u32,
) -> Result<Option<IpAddr>, DiscoveryError> {
    for record_type in [RecordType::A, RecordType::AAAA] {
        if let Answer::Records(data, record_ttl) = lookup(resolver, target, record_type).await? {
            let smallest = data
                .iter()
                .filter_map(|data| match data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .min();
            if smallest.is_some() {
                *ttl = (*ttl).min(record_ttl);
                return Ok(smallest);
            }
        }
    }
    Ok(None)
}

/// One SRV record, deduplicated by (target, port).
#[derive(Clone, Debug)]
struct SrvEntry {
    target: Name,
    name: InstanceName,
    weight: SrvWeight,
}

/// Everything found for one instance.
struct InstanceRecords {
    entry: SrvEntry,
    addr: SocketAddr,
    /// `None`: the instance publishes no tokens (left out, maybe joining).
    tokens: Option<Vec<Token>>,
    ttl: u32,
}

async fn resolve_instance(
    resolver: TokioResolver,
    entry: SrvEntry,
    tokens: TokenMode,
) -> Result<InstanceRecords, DiscoveryError> {
    let mut ttl = u32::MAX;
    let port = entry.name.port();
    let Some(ip) = instance_address(&resolver, &entry.target, &mut ttl).await? else {
        return Err(DiscoveryError::NoAddress {
            target: entry.name.host().to_owned(),
            port,
        });
    };
    let tokens = match tokens {
        TokenMode::Derived { virtual_nodes } => {
            Some(records::derived_tokens(&entry.name, virtual_nodes))
        }
        TokenMode::Dns => {
            let owner = absolute(&records::tokens_name(port, &entry.target.to_ascii()))?;
            match txt_strings(&resolver, &owner, &mut ttl).await? {
                None => None,
                Some(strings) => {
                    let parsed = records::parse_tokens(strings.iter().map(|s| &s[..])).map_err(
                        |source| DiscoveryError::BadToken {
                            name: owner.to_ascii(),
                            source,
                        },
                    )?;
                    (!parsed.is_empty()).then_some(parsed)
                }
            }
        }
    };
    Ok(InstanceRecords {
        addr: SocketAddr::new(ip, port),
        entry,
        tokens,
        ttl,
    })
}

/// Resolves the service's records once and builds its ring (or SRV set).
///
/// # Errors
///
/// Any [`DiscoveryError`]: the caller keeps the last good ring.
pub async fn resolve(
    resolver: &TokioResolver,
    source: &DnsSource,
) -> Result<Resolved, DiscoveryError> {
    let srv_name = absolute(&source.srv)?;
    let mut ttl = u32::MAX;
    let mut warnings = Vec::new();
    let mut replication_from = ReplicationFrom::Default;

    let srv_records = match lookup(resolver, &srv_name, RecordType::SRV).await? {
        Answer::Absent(reason) => {
            return Err(DiscoveryError::NoInstances {
                name: srv_name.to_ascii(),
                reason,
            })
        }
        Answer::Records(data, record_ttl) => {
            ttl = ttl.min(record_ttl);
            data
        }
    };

    // Deduplicate by instance name; the first record of a pair wins.
    let mut entries: BTreeMap<InstanceName, SrvEntry> = BTreeMap::new();
    for data in srv_records {
        let RData::SRV(srv) = data else { continue };
        if srv.target.is_root() {
            continue;
        }
        let mut target = srv.target.to_lowercase();
        target.set_fqdn(true);
        let name = InstanceName::new(&target.to_ascii(), srv.port).map_err(|source| {
            DiscoveryError::BadTarget {
                target: srv.target.to_ascii(),
                source,
            }
        })?;
        entries.entry(name.clone()).or_insert(SrvEntry {
            target,
            name,
            weight: SrvWeight {
                priority: srv.priority,
                weight: srv.weight,
            },
        });
    }
    if entries.is_empty() {
        return Err(DiscoveryError::NoInstances {
            name: srv_name.to_ascii(),
            reason: "only the target \".\"",
        });
    }

    let token_mode = match source.balance {
        Balance::Ring => source.tokens,
        // Non-sharded services need no tokens; don't ask for them.
        Balance::Srv => TokenMode::Derived { virtual_nodes: 1 },
    };
    let mut lookups = JoinSet::new();
    for entry in entries.into_values() {
        lookups.spawn(resolve_instance(resolver.clone(), entry, token_mode));
    }
    let mut found = Vec::with_capacity(lookups.len());
    while let Some(joined) = lookups.join_next().await {
        let instance = joined.map_err(|error| DiscoveryError::Lookup {
            name: srv_name.to_ascii(),
            record_type: "instance",
            reason: error.to_string(),
        })??;
        ttl = ttl.min(instance.ttl);
        found.push(instance);
    }
    found.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));

    let table = match source.balance {
        Balance::Srv => Table::Srv(
            found
                .into_iter()
                .map(|instance| SrvInstance {
                    name: instance.entry.name,
                    addr: instance.addr,
                    weight: instance.entry.weight,
                })
                .collect(),
        ),
        Balance::Ring => {
            let config_owner = absolute(&records::config_name(&srv_name.to_ascii()))?;
            // SPEC §9.5: the record wins; without one, the config's
            // settings, if it gives any.
            let config = match txt_strings(resolver, &config_owner, &mut ttl).await? {
                None => {
                    replication_from = source
                        .replication
                        .map_or(ReplicationFrom::Default, |_| ReplicationFrom::Config);
                    RingConfig {
                        replication: source.replication.unwrap_or_default(),
                        ..RingConfig::default()
                    }
                }
                Some(strings) => {
                    replication_from = ReplicationFrom::Dns;
                    records::parse_ring_config(strings.iter().map(|s| &s[..])).map_err(
                        |source| DiscoveryError::BadRingConfig {
                            name: config_owner.to_ascii(),
                            source,
                        },
                    )?
                }
            };
            for key in &config.unknown_keys {
                warnings.push(format!(
                    "{}: unknown key {key:?} ignored",
                    config_owner.to_ascii()
                ));
            }
            let mut members = Vec::with_capacity(found.len());
            for instance in found {
                match instance.tokens {
                    Some(tokens) => members.push(Member {
                        name: instance.entry.name,
                        addr: instance.addr,
                        tokens,
                    }),
                    None => warnings.push(format!(
                        "instance {} publishes no tokens at {}: left out of the ring",
                        instance.entry.name,
                        records::tokens_name(
                            instance.entry.name.port(),
                            &instance.entry.target.to_ascii()
                        )
                    )),
                }
            }
            let ring = Ring::build(members, config.replication)?;
            warnings.extend(ring.warnings().iter().map(ToString::to_string));
            Table::Ring(ring)
        }
    };

    Ok(Resolved {
        table,
        replication_from,
        warnings,
        min_ttl: (ttl != u32::MAX).then(|| Duration::from_secs(u64::from(ttl))),
    })
}
