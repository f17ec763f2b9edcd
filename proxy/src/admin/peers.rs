//! A purge's way to the other proxies of `[cache_peers]` (SPEC §9.6), and
//! the one client that sends a purge to an admin API (for the fan-out and
//! for `shardproxy cache purge`).
//!
//! The fan-out sends the purge's query as received, so every form of
//! purge reaches the peers alike, to each peer at once (a slow peer delays
//! no other), each within `cache_peers.timeout`. It marks its requests
//! [`LOCAL_ONLY`]: a peer applies them to its own cache and sends them
//! nowhere, so peers that list each other never loop. It carries the
//! admin token, as a fleet shares one. It skips this process's own admin
//! address, which a fleet-wide peer list (or SRV name) includes.
//!
//! SRV peers are resolved at each purge, not kept from an earlier lookup:
//! purges are rare, a proxy that joined since is reached, and one that
//! left is not reported failed; a lookup that fails is reported in the
//! answer as a failed peer named by the SRV name, since it is no purge of
//! any peer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::body::BoxError;
use crate::config::{AdminToken, CachePeers, CachePeersConfig, UpstreamProtocol};
use crate::discovery::{resolve, Balance, DiscoveryError, DnsSource, Table, TokenMode};
use crate::error::error_chain;
use crate::pool::{Pool, SendError, Settings};

/// The header that marks a purge a peer sent: apply it here only. Its
/// value is [`LOCAL_ONLY_VALUE`]; any value counts, so that no spelling of
/// it makes a loop.
pub const LOCAL_ONLY: &str = "x-shardproxy-purge";
/// The value the fan-out sends in [`LOCAL_ONLY`].
pub const LOCAL_ONLY_VALUE: &str = "local";

/// The most of an answer read: a purge's answer is a line of JSON; more
/// is not an admin API's answer.
const MAX_ANSWER: usize = 64 << 10;

/// One peer's part of a purge, as the answer lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerPurge {
    /// The peer's admin address (`ip:port`), or the SRV name when it could
    /// not be resolved.
    pub peer: String,
    /// Whether the peer purged.
    pub ok: bool,
    /// How many objects it removed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<u64>,
    /// Why it did not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a purge sent to an admin API did not purge there.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// No connection.
    #[error("connect")]
    Connect(#[source] std::io::Error),
    /// No whole answer in time (connecting included).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The exchange broke, or the answer was too long.
    #[error("exchange failed")]
    Exchange(#[source] BoxError),
    /// The admin API refused the purge: its status and message.
    #[error("answered {status}: {message}")]
    Refused {
        /// The status it answered.
        status: StatusCode,
        /// Its error message (or the start of its body).
        message: String,
    },
    /// A `200` that is not a purge's answer.
    #[error("answered 200 without a purge count: {0}")]
    Unreadable(String),
    /// The SRV name of the peers did not resolve.
    #[error("resolve {name}")]
    Resolve {
        /// The SRV name.
        name: String,
        /// Why.
        #[source]
        source: DiscoveryError,
    },
}

/// An admin API's answer to a purge.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body (JSON from a shardproxy).
    pub body: Bytes,
}

// === impl PeerPurge ===

impl PeerPurge {
    /// `peer`'s part, from what sending it the purge gave.
    fn of(peer: String, sent: Result<Answer, PurgeError>) -> PeerPurge {
        match sent.and_then(|answer| answer.purged()) {
            Ok(purged) => PeerPurge {
                peer,
                ok: true,
                purged: Some(purged),
                error: None,
            },
            Err(error) => PeerPurge::failed(peer, &error),
        }
    }

    fn failed(peer: String, error: &PurgeError) -> PeerPurge {
        PeerPurge {
            peer,
            ok: false,
            purged: None,
            error: Some(error_chain(error)),
        }
    }
}

// === impl Answer ===

impl Answer {
    /// The count of a purge's `200` answer; any other answer is an error
    /// that says what the admin API said.
    ///
    /// # Errors
    ///
    /// [`PurgeError::Refused`] for a status other than `200`,
    /// [`PurgeError::Unreadable`] for a `200` without `"purged"`.
    pub fn purged(&self) -> Result<u64, PurgeError> {
        let json = serde_json::from_slice::<serde_json::Value>(&self.body).ok();
        if self.status != StatusCode::OK {
            let message = json
                .as_ref()
                .and_then(|json| json["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| self.start_of_body());
            return Err(PurgeError::Refused {
                status: self.status,
                message,
            });
        }
        json.and_then(|json| json["purged"].as_u64())
            .ok_or_else(|| PurgeError::Unreadable(self.start_of_body()))
    }

    /// The first line of the body, shortened: enough to tell what answered.
    fn start_of_body(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text.lines().next().unwrap_or_default().trim();
        line.chars().take(200).collect()
    }
}

/// Sends `POST /cache/purge?{query}` to the admin API at `admin`, with
/// `token` as the bearer token if given, marked [`LOCAL_ONLY`] if
/// `local_only`, and reads its whole answer, all within `timeout`.
///
/// # Errors
///
/// [`PurgeError::Connect`], [`PurgeError::Timeout`] or
/// [`PurgeError::Exchange`]: no answer. An answer of any status is `Ok`.
pub async fn send_purge(
    admin: SocketAddr,
    query: &str,
    token: Option<&AdminToken>,
    local_only: bool,
    timeout: Duration,
) -> Result<Answer, PurgeError> {
    let mut request = Request::post(format!("/cache/purge?{query}"))
        // The admin listener's own address: what its check of `Host`
        // (no DNS rebinding) accepts.
        .header(header::HOST, admin.to_string())
        .header(header::USER_AGENT, "shardproxy-purge")
        .body(crate::body::empty())
        .map_err(|error| PurgeError::Exchange(Box::new(error)))?;
    let headers = request.headers_mut();
    if local_only {
        headers.insert(LOCAL_ONLY, HeaderValue::from_static(LOCAL_ONLY_VALUE));
    }
    if let Some(token) = token {
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(token.reveal());
        let mut value = HeaderValue::from_bytes(&bearer)
            .map_err(|error| PurgeError::Exchange(Box::new(error)))?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
    // One connection, closed after the answer: purges are rare.
    let pool = Pool::new(Settings {
        connect_timeout: timeout,
        max_idle: 0,
        idle_timeout: timeout,
        protocol: UpstreamProtocol::Http1,
        tls: None,
        workers: 1,
    });
    let exchange = async {
        let response = pool
            .connections("", admin)
            .send(request, Instant::now())
            .await
            .map_err(|error| match error {
                SendError::Connect { source, .. } | SendError::Handshake { source, .. } => {
                    PurgeError::Connect(source)
                }
                SendError::ConnectTimeout { after, .. } => PurgeError::Timeout(after),
                other => PurgeError::Exchange(Box::new(other)),
            })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(PurgeError::Exchange)?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PurgeError::Timeout(timeout))?
}

/// Sends the purge `query` to every peer but this process (whose admin
/// listener is bound to `own`), at once, and lists each peer's part in
/// the order of `addrs` (or of the SRV targets' names).
pub(super) async fn fan_out(
    peers: &CachePeersConfig,
    resolver: &hickory_resolver::TokioResolver,
    query: &str,
    token: Option<&AdminToken>,
    own: SocketAddr,
) -> Vec<PeerPurge> {
    let addrs = match &peers.peers {
        CachePeers::Addrs(addrs) => addrs.clone(),
        CachePeers::Srv(name) => match srv_peers(resolver, name).await {
            Ok(addrs) => addrs,
            Err(error) => return vec![PeerPurge::failed(name.clone(), &error)],
        },
    };
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|&peer| !is_self(peer, own))
        .collect();
    let mut sending = JoinSet::new();
    for (index, peer) in addrs.iter().copied().enumerate() {
        let (query, token, timeout) = (query.to_owned(), token.cloned(), peers.timeout);
        sending.spawn(async move {
            let sent = send_purge(peer, &query, token.as_ref(), true, timeout).await;
            (index, PeerPurge::of(peer.to_string(), sent))
        });
    }
    // A task that did not end with its part (it cannot panic, but the
    // answer must name every peer all the same) is reported failed.
    let mut parts: Vec<PeerPurge> = addrs
        .iter()
        .map(|peer| {
            let lost = PurgeError::Exchange("the purge's task ended without an answer".into());
            PeerPurge::failed(peer.to_string(), &lost)
        })
        .collect();
    while let Some(joined) = sending.join_next().await {
        if let Ok((index, part)) = joined {
            if let Some(slot) = parts.get_mut(index) {
                *slot = part;
            }
        }
    }
    parts
}

/// The admin addresses the SRV name `name` lists, as a ring's instances
/// are found (SPEC §3): each target's smallest A (else AAAA) address with
/// the record's port.
async fn srv_peers(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
) -> Result<Vec<SocketAddr>, PurgeError> {
    let source = DnsSource {
        srv: name.to_owned(),
        // Priority and weight, no tokens: nothing but the SRV records and
        // the targets' addresses is asked.
        balance: Balance::Srv,
        tokens: TokenMode::Derived { virtual_nodes: 1 },
        replication: None,
    };
    let resolved = resolve(resolver, &source)
        .await
        .map_err(|source| PurgeError::Resolve {
            name: name.to_owned(),
            source,
        })?;
    Ok(match resolved.table {
        Table::Srv(instances) => instances.iter().map(|instance| instance.addr).collect(),
        Table::Ring(_) => Vec::new(),
    })
}

/// Whether `peer` is this process's admin listener, bound to `own`: the
/// same address, or the same port where `own` is every address and
/// `peer`'s is one of this machine's (one it can bind).
fn is_self(peer: SocketAddr, own: SocketAddr) -> bool {
    if peer == own {
        return true;
    }
    peer.port() == own.port() && own.ip().is_unspecified() && is_local(peer.ip())
}

/// Whether `ip` is an address of this machine.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::TcpListener::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn this_process_is_no_peer() {
        assert!(is_self(addr("127.0.0.1:9090"), addr("127.0.0.1:9090")));
        assert!(is_self(addr("127.0.0.1:9090"), addr("0.0.0.0:9090")));
        assert!(!is_self(addr("127.0.0.1:9091"), addr("0.0.0.0:9090")));
        assert!(!is_self(addr("127.0.0.1:9091"), addr("127.0.0.1:9090")));
        // TEST-NET-1 is no address of this machine.
        assert!(!is_self(addr("192.0.2.1:9090"), addr("0.0.0.0:9090")));
        assert!(!is_self(addr("192.0.2.1:9090"), addr("127.0.0.1:9090")));
    }

    fn answer(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn an_answer_is_a_count_or_what_the_peer_said() {
        let ok = answer(StatusCode::OK, "{\"service\":\"frob\",\"purged\":3}\n");
        assert_eq!(ok.purged().unwrap(), 3);
        let refused = answer(
            StatusCode::NOT_FOUND,
            "{\"error\":\"no service \\\"x\\\": the services are \\\"frob\\\"\"}\n",
        );
        assert_eq!(
            refused.purged().unwrap_err().to_string(),
            "answered 404 Not Found: no service \"x\": the services are \"frob\""
        );
        let text = answer(
            StatusCode::UNAUTHORIZED,
            "unauthorized: the bearer token is not the admin token\n",
        );
        assert_eq!(
            text.purged().unwrap_err().to_string(),
            "answered 401 Unauthorized: unauthorized: the bearer token is not the admin token"
        );
        let odd = answer(StatusCode::OK, "purged\n");
        assert_eq!(
            odd.purged().unwrap_err().to_string(),
            "answered 200 without a purge count: purged"
        );
    }

    #[tokio::test]
    async fn a_peer_that_refuses_connections_is_reported_with_why() {
        // A port just freed: nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap();
        let sent = send_purge(free, "service=a&path=/", None, true, Duration::from_secs(5)).await;
        let part = PeerPurge::of(free.to_string(), sent);
        assert!(!part.ok);
        let error = part.error.unwrap();
        assert!(error.starts_with("connect: "), "{error}");
        assert!(error.to_lowercase().contains("refused"), "{error}");
    }
}
