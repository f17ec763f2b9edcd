//! `shardproxy ring publish` (SPEC §12): one DNS UPDATE (RFC 2136) to the
//! zone's primary server that turns the ring records of a service in OLD
//! into those in NEW, applied whole or not at all.
//!
//! The update itself, prerequisites included, is computed by the ring crate
//! ([`RingUpdate`]) from the two zone files; this module finds the zone,
//! builds and signs the message with hickory ([`message`], [`key`]), sends
//! it ([`exchange`]) and says what happened:
//!
//! - exit 0: applied; the records deleted and added are printed, one per
//!   line, as zone-file lines.
//! - exit 3: the server refused the prerequisites (NXRRSET, YXRRSET,
//!   NXDOMAIN, YXDOMAIN): what it publishes is no longer OLD, and nothing
//!   changed.
//! - exit 1: anything else (a bad file, no connection, no answer, REFUSED,
//!   NOTAUTH, a TSIG the server refuses...), with a message that says which.
//!
//! **Which zone.** The update goes to the zone the server says holds the
//! service name: the owner of the SOA in its authoritative answer to a SOA
//! query for that name, as nsupdate finds it. Not the `$ORIGIN` or SOA of
//! the OLD file: a file may be a fragment without either, may hold records
//! of a parent zone with the service delegated below it, or may be a copy
//! of another zone altogether; the server that applies the update is the
//! authority on its zones, and asking it also catches a `--server` that is
//! not authoritative for the name (a resolver, a secondary answering from
//! a cache) before anything is sent. Every name of the update must be in
//! that zone: an SRV target in another zone has its `tokens.` records
//! there, which one UPDATE cannot change.
//!
//! **NEW must publish a usable ring** (the rules of `ring diff`, SPEC §3):
//! publishing a ring every proxy would refuse is an error here rather than
//! a failed refresh on every proxy. OLD need only parse: it may hold no
//! ring (a first publish) or a broken one (a repair).

pub mod exchange;
pub mod key;
pub mod message;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use shardproxy_ring::zone::write::record_line;
use shardproxy_ring::zone::{RingUpdate, UpdateError, Zone};

use self::exchange::{Connection, ExchangeError};
use self::key::{KeyFileError, TsigKey};
use self::message::NameError;
use super::{print, read_ring, summary, with_old_and_new, ToolError, ZoneInput};

/// How long the server may take to accept the connection, and then to
/// answer each message: a primary on the operator's network answers in
/// milliseconds, so a few seconds mean it is not going to.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The DNS port, when `--server` gives none.
pub const DEFAULT_PORT: u16 = 53;

/// Why `ring publish` did not apply the update.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A zone file cannot be read, does not parse, or NEW publishes no
    /// usable ring.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// No update can be made from the files.
    #[error("{path}: {source}")]
    Update {
        /// NEW.
        path: String,
        /// Why.
        source: UpdateError,
    },
    /// NEW's ring has no instance with tokens.
    #[error("{path}: no instance of {service} has tokens: proxies would have no ring to route with (`shardproxy check` fails on it); publish tokens with the instances")]
    EmptyRing {
        /// NEW.
        path: String,
        /// The service name.
        service: String,
    },
    /// The key file cannot be read.
    #[error("--tsig-key {path}: {source}")]
    KeyRead {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not a usable key.
    #[error("--tsig-key {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Where and why.
        source: KeyFileError,
    },
    /// A name that cannot be sent, or is outside the zone.
    #[error(transparent)]
    Name(#[from] NameError),
    /// hickory could not encode or sign a message.
    #[error("cannot {what}: {reason}")]
    Encode {
        /// What was being done.
        what: &'static str,
        /// hickory's reason.
        reason: String,
    },
    /// No connection to the server.
    #[error("{server}: {source}")]
    Connect {
        /// `--server`.
        server: SocketAddr,
        /// Why.
        source: ExchangeError,
    },
    /// The SOA query that finds the zone failed.
    #[error("{server}: the SOA query for {service} (to find its zone) failed: {source}; nothing was sent")]
    ZoneQuery {
        /// `--server`.
        server: SocketAddr,
        /// The service name.
        service: String,
        /// Why.
        source: ExchangeError,
    },
    /// The server is not authoritative for the service name.
    #[error("{server} is not authoritative for {service}: its answer to a SOA query was {rcode} without the zone's SOA; send the update to the zone's primary server (nothing was sent)")]
    NotAuthoritative {
        /// `--server`.
        server: SocketAddr,
        /// The service name.
        service: String,
        /// Its answer's RCODE.
        rcode: String,
    },
    /// The update was sent and no usable answer came.
    #[error("{server}: the update was sent to zone {zone} but {source}: it may or may not have been applied; compare what the server publishes (`shardproxy check`, `ring show`) with NEW")]
    Unanswered {
        /// `--server`.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// Why.
        source: ExchangeError,
    },
    /// An answer that is not a DNS message.
    #[error("{server}: the answer to {what} is not a DNS message: {reason}")]
    Malformed {
        /// `--server`.
        server: SocketAddr,
        /// Which message it answered.
        what: &'static str,
        /// hickory's reason.
        reason: String,
    },
    /// The prerequisites failed: the published ring is not OLD (exit 3).
    #[error("{server} refused the update with {rcode} ({meaning}): the ring of {service} published in zone {zone} is no longer the one in OLD; nothing changed. Read what is published now, plan from it and publish again")]
    NoLongerOld {
        /// `--server`.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// The service name.
        service: String,
        /// NXRRSET, YXRRSET, NXDOMAIN or YXDOMAIN.
        rcode: String,
        /// Which prerequisite that RCODE reports.
        meaning: &'static str,
    },
    /// The server refused the update for another reason.
    #[error(
        "{server} refused the update to zone {zone} with {rcode} ({meaning}); nothing changed"
    )]
    Refused {
        /// `--server`.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// The RCODE.
        rcode: String,
        /// What it means here.
        meaning: String,
    },
    /// The server refused the request's TSIG (RFC 8945 §5.2).
    #[error("{server} refused the update's TSIG signature with key {key} ({error}: {meaning}); nothing changed")]
    TsigRefused {
        /// `--server`.
        server: SocketAddr,
        /// The key's name.
        key: String,
        /// BADSIG, BADKEY, BADTIME...
        error: String,
        /// What it means.
        meaning: &'static str,
    },
    /// The answer to a signed update is not signed with the key, so it
    /// says nothing reliable.
    #[error("{server} answered {rcode} to the signed update, but {reason}: the answer cannot be trusted, and the update may or may not have been applied; compare what the server publishes with NEW")]
    Unverified {
        /// `--server`.
        server: SocketAddr,
        /// The answer's RCODE.
        rcode: String,
        /// What is wrong with its signature.
        reason: String,
    },
}

impl PublishError {
    /// The exit status: 3 when the published ring is no longer OLD, 1 for
    /// every other error (SPEC §12).
    pub fn exit_code(&self) -> u8 {
        match self {
            PublishError::NoLongerOld { .. } => 3,
            _ => 1,
        }
    }
}

/// What the files say to publish.
#[derive(Debug)]
pub struct Prepared {
    /// The update.
    pub update: RingUpdate,
    /// One line about NEW's ring (size, settings, fingerprint).
    pub new_ring: String,
    /// NEW's warnings (instances without tokens...), for stderr.
    pub warnings: Vec<String>,
}

/// Reads the update from the two files' text.
///
/// # Errors
///
/// OLD or NEW does not parse, NEW publishes no usable ring for `srv`, or
/// a record to add has no TTL.
pub fn prepare(
    srv: &str,
    old: ZoneInput<'_>,
    new: ZoneInput<'_>,
) -> Result<Prepared, PublishError> {
    let old_zone = Zone::parse(old.text).map_err(|source| ToolError::Zone {
        path: old.label.to_owned(),
        source,
    })?;
    let mut warnings = Vec::new();
    let (new_zone, new_ring) = read_ring(new, srv, &mut warnings)?;
    if new_ring.ring.instances().is_empty() {
        return Err(PublishError::EmptyRing {
            path: new.label.to_owned(),
            service: new_ring.service,
        });
    }
    let update =
        RingUpdate::between(&old_zone, &new_zone, srv).map_err(|source| PublishError::Update {
            path: new.label.to_owned(),
            source,
        })?;
    Ok(Prepared {
        update,
        new_ring: summary(&new_ring.ring),
        warnings,
    })
}

/// Reads a BIND key file.
///
/// # Errors
///
/// The file cannot be read or holds no usable key; the message names it.
pub fn read_key(path: &Path) -> Result<TsigKey, PublishError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PublishError::KeyRead {
        path: label.clone(),
        source,
    })?;
    TsigKey::parse(&text).map_err(|source| PublishError::KeyFile {
        path: label,
        source,
    })
}

/// Parses `--server`: `IP` or `IP:PORT` (`[IPv6]:PORT`).
///
/// # Errors
///
/// A message for clap.
pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| {
            format!(
                "{text:?} is not IP or IP:PORT (an address, not a name: the zone's primary server)"
            )
        })
}

/// Sends the update to `server`, signed with `key` when given, and says
/// what happened. Returns the zone it went to.
///
/// # Errors
///
/// See [`PublishError`]; [`PublishError::exit_code`] tells 3 from 1.
pub async fn publish(
    server: SocketAddr,
    update: &RingUpdate,
    key: Option<&TsigKey>,
) -> Result<String, PublishError> {
    let service = message::name(&update.service)?;
    let mut connection = Connection::open(server, TIMEOUT)
        .await
        .map_err(|source| PublishError::Connect { server, source })?;

    let id = rand::random::<u16>();
    let query = encode(&message::soa_query(id, &service), "encode the SOA query")?;
    let answer =
        connection
            .exchange(id, &query)
            .await
            .map_err(|source| PublishError::ZoneQuery {
                server,
                service: update.service.clone(),
                source,
            })?;
    let answer = decode(server, &answer, "the SOA query")?;
    let zone = message::zone_of(&answer).ok_or_else(|| PublishError::NotAuthoritative {
        server,
        service: update.service.clone(),
        rcode: rcode_name(answer.metadata.response_code),
    })?;
    let zone_text = zone.to_ascii();

    let id = rand::random::<u16>();
    let mut request = message::update_message(id, &zone, update)?;
    let verifier = match key {
        None => None,
        Some(key) => {
            let signer = key.signer().map_err(|error| PublishError::Encode {
                what: "sign the update",
                reason: error.to_string(),
            })?;
            request
                .finalize(&signer, unix_time())
                .map_err(|error| PublishError::Encode {
                    what: "sign the update",
                    reason: error.to_string(),
                })?
        }
    };
    let request = encode(&request, "encode the update")?;
    let bytes =
        connection
            .exchange(id, &request)
            .await
            .map_err(|source| PublishError::Unanswered {
                server,
                zone: zone_text.clone(),
                source,
            })?;
    let answer = decode(server, &bytes, "the update")?;
    let rcode = answer.metadata.response_code;
    if let (Some(mut verifier), Some(key)) = (verifier, key) {
        match answer.signature() {
            Some(tsig) => {
                if let Some(error) = &tsig.data.error {
                    return Err(PublishError::TsigRefused {
                        server,
                        key: key.name.to_ascii(),
                        error: tsig_error_name(error),
                        meaning: tsig_error_meaning(error),
                    });
                }
                verifier
                    .verify(&bytes)
                    .map_err(|error| PublishError::Unverified {
                        server,
                        rcode: rcode_name(rcode),
                        reason: format!("its TSIG does not verify with key {}: {error}", key.name),
                    })?;
            }
            // Only an answer saying the update applied, or that its
            // prerequisites failed, needs to be believed; a server may
            // leave other refusals unsigned.
            None if rcode == ResponseCode::NoError || prerequisite_failure(rcode).is_some() => {
                return Err(PublishError::Unverified {
                    server,
                    rcode: rcode_name(rcode),
                    reason: "it is not signed".to_owned(),
                });
            }
            None => {}
        }
    }
    if rcode == ResponseCode::NoError {
        return Ok(zone_text);
    }
    if let Some(meaning) = prerequisite_failure(rcode) {
        return Err(PublishError::NoLongerOld {
            server,
            zone: zone_text,
            service: update.service.clone(),
            rcode: rcode_name(rcode),
            meaning,
        });
    }
    Err(PublishError::Refused {
        server,
        meaning: refusal_meaning(rcode, &zone_text, key),
        zone: zone_text,
        rcode: rcode_name(rcode),
    })
}

fn encode(message: &Message, what: &'static str) -> Result<Vec<u8>, PublishError> {
    message.to_vec().map_err(|error| PublishError::Encode {
        what,
        reason: error.to_string(),
    })
}

fn decode(server: SocketAddr, bytes: &[u8], what: &'static str) -> Result<Message, PublishError> {
    Message::from_vec(bytes).map_err(|error| PublishError::Malformed {
        server,
        what,
        reason: error.to_string(),
    })
}

/// Seconds since the epoch, for the TSIG's time signed; 0 if the clock is
/// before 1970 (the server then answers BADTIME, which says why).
fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Which prerequisite an RCODE reports as failed (RFC 2136 §3.2.5), if it
/// is one of those.
fn prerequisite_failure(rcode: ResponseCode) -> Option<&'static str> {
    match rcode {
        ResponseCode::NXRRSet => Some("an RRset of OLD is no longer as in OLD"),
        ResponseCode::YXRRSet => Some("an RRset that only NEW has exists already"),
        ResponseCode::NXDomain => Some("a name the update needs does not exist"),
        ResponseCode::YXDomain => Some("a name the update needs absent exists"),
        _ => None,
    }
}

/// What a refusal means for an operator.
fn refusal_meaning(rcode: ResponseCode, zone: &str, key: Option<&TsigKey>) -> String {
    match rcode {
        ResponseCode::Refused => match key {
            Some(key) => format!(
                "the server does not allow updates to {zone} signed with key {}: check its allow-update / ACL",
                key.name
            ),
            None => format!(
                "the server does not allow unsigned updates to {zone} (give --tsig-key), or not from here: check its allow-update / ACL"
            ),
        },
        ResponseCode::NotAuth => match key {
            Some(key) => format!(
                "the server does not allow updates to {zone} signed with key {}, or is not authoritative for it",
                key.name
            ),
            None => format!(
                "the server does not allow unsigned updates to {zone} (give --tsig-key), or is not authoritative for it"
            ),
        },
        ResponseCode::NotZone => "a name of the update is outside the zone".to_owned(),
        ResponseCode::NotImp => "the server does not implement DNS UPDATE".to_owned(),
        ResponseCode::FormErr => "the server cannot read the update".to_owned(),
        ResponseCode::ServFail => {
            format!("the server failed to apply it: see its log; a secondary server answers so too, send the update to {zone}'s primary")
        }
        _ => "an answer DNS UPDATE does not define".to_owned(),
    }
}

/// An RCODE's mnemonic (RFC 6895 §2.3).
fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::YXDomain => "YXDOMAIN".to_owned(),
        ResponseCode::YXRRSet => "YXRRSET".to_owned(),
        ResponseCode::NXRRSet => "NXRRSET".to_owned(),
        ResponseCode::NotAuth => "NOTAUTH".to_owned(),
        ResponseCode::NotZone => "NOTZONE".to_owned(),
        other => format!("RCODE {}", u16::from(other)),
    }
}

fn tsig_error_name(error: &TsigError) -> String {
    match error {
        TsigError::BadSig => "BADSIG".to_owned(),
        TsigError::BadKey => "BADKEY".to_owned(),
        TsigError::BadTime => "BADTIME".to_owned(),
        TsigError::BadTrunc => "BADTRUNC".to_owned(),
        TsigError::Unknown(code) => format!("TSIG error {code}"),
    }
}

fn tsig_error_meaning(error: &TsigError) -> &'static str {
    match error {
        TsigError::BadSig => "the key's secret is not the server's",
        TsigError::BadKey => "the server has no key of that name and algorithm",
        TsigError::BadTime => "this machine's clock and the server's differ by more than 5 minutes",
        TsigError::BadTrunc | TsigError::Unknown(_) => "the server does not accept the signature",
    }
}

/// The report of an applied update: the records deleted and added, as
/// zone-file lines, between comments.
///
/// The server is not named: the operator gave it, and the report reads
/// the same whichever primary (or test server) took the update.
pub fn applied_report(prepared: &Prepared, zone: &str, labels: (&str, &str)) -> String {
    let update = &prepared.update;
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        text,
        "; ring publish of {} to zone {zone}: {} is published instead of {}",
        update.service, labels.1, labels.0
    );
    if update.changes_nothing() {
        let _ = writeln!(
            text,
            "; nothing to change: the server publishes the ring records of {}, and {} has the same",
            labels.0, labels.1
        );
    }
    let count = |n: usize| format!("{n} record{}", if n == 1 { "" } else { "s" });
    if !update.deletes.is_empty() {
        let _ = writeln!(text, "; deleted {}:", count(update.deletes.len()));
        for record in &update.deletes {
            let _ = writeln!(
                text,
                "{}",
                record_line(&record.name, record.ttl, &record.data)
            );
        }
    }
    if !update.adds.is_empty() {
        let _ = writeln!(text, "; added {}:", count(update.adds.len()));
        for record in &update.adds {
            let _ = writeln!(
                text,
                "{}",
                record_line(&record.name, Some(record.ttl), &record.data)
            );
        }
    }
    let _ = writeln!(text, "; the ring published now: {}", prepared.new_ring);
    text
}

/// `shardproxy ring publish`: reads the files and the key, sends the
/// update, prints what changed. Exit 0 applied, 3 the published ring is no
/// longer OLD, 1 any other error.
pub async fn run(
    srv: &str,
    server: SocketAddr,
    tsig_key: Option<&Path>,
    old: &Path,
    new: &Path,
) -> ExitCode {
    let outcome = async {
        let prepared = with_old_and_new(old, new, |old, new| prepare(srv, old, new))?;
        for warning in &prepared.warnings {
            eprintln!("warning: {warning}");
        }
        let key = tsig_key.map(read_key).transpose()?;
        let zone = publish(server, &prepared.update, key.as_ref()).await?;
        let labels = (old.display().to_string(), new.display().to_string());
        Ok::<_, PublishError>(applied_report(&prepared, &zone, (&labels.0, &labels.1)))
    }
    .await;
    match outcome {
        Ok(report) => print(&report),
        Err(error) => {
            eprintln!("ring publish: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(test)]
mod tests;
