//! `[cache_peers]` (SPEC §9.6): the other proxies a purge reaches. Their
//! admin addresses are listed (`addrs`) or found by an SRV name (`srv`),
//! exactly one of the two, so that an operator never wonders which list is
//! in use.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::check::{check, field, positive_duration, socket_addr};
use super::error::{At, KeyPath, Source};
use super::raw::RawCachePeers;
use super::service::dns_name;
use super::{CachePeers, CachePeersConfig};

/// A peer that has not answered a purge by then is reported failed: long
/// enough for a loaded proxy across a data centre, short enough that a
/// person at a shell waits it out.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const EXPECTED: &str = "expected addrs = [\"10.0.0.2:9090\", ...] (the other proxies' admin addresses) or srv = \"_shardproxy-admin._tcp.example.com\" (an SRV name that lists them)";

/// `[cache_peers]`, or `None` when it is absent (or has an error, then
/// reported).
pub(super) fn cache_peers(
    source: &Source<'_>,
    raw: Option<&Spanned<RawCachePeers>>,
) -> Option<CachePeersConfig> {
    let table = raw?;
    let raw = table.get_ref();
    let key = KeyPath::root().key("cache_peers");
    let timeout = field(
        source,
        &key.key("timeout"),
        raw.timeout.as_ref(),
        DEFAULT_TIMEOUT,
        positive_duration,
    );
    let peers = match (&raw.addrs, &raw.srv) {
        (Some(_), Some(srv)) => {
            source.report(source.error(
                &key.key("srv"),
                At::Place(srv.span()),
                "addrs and srv are both given: the peers are listed (addrs) or found in DNS (srv), not both",
            ));
            return None;
        }
        (None, None) => {
            source.report(source.error(
                &key,
                At::Place(table.span()),
                format!("missing addrs or srv: {EXPECTED}"),
            ));
            return None;
        }
        (Some(addrs), None) => CachePeers::Addrs(addresses(source, &key.key("addrs"), addrs)?),
        (None, Some(srv)) => {
            CachePeers::Srv(source.ok(check(source, &key.key("srv"), srv, |text| dns_name(text)))?)
        }
    };
    Some(CachePeersConfig { peers, timeout })
}

/// `addrs`: at least one `ip:port`, each once. `None` when one is bad
/// (reported), so that no purge goes to a list the operator did not
/// write.
fn addresses(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<Vec<Spanned<String>>>,
) -> Option<Vec<SocketAddr>> {
    if raw.get_ref().is_empty() {
        source.report(source.error(
            key,
            At::Value(raw.span()),
            "expected at least one admin address: leave [cache_peers] out for none",
        ));
        return None;
    }
    let errors = source.errors.count();
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(raw.get_ref().len());
    for (index, text) in raw.get_ref().iter().enumerate() {
        let addr = source.ok(check(source, &key.index(index), text, |text| {
            let addr = socket_addr(text)?;
            if addr.port() == 0 {
                return Err(
                    "port 0 is no admin address: expected the port of the peer's server.admin"
                        .to_owned(),
                );
            }
            Ok(addr)
        }));
        let Some(addr) = addr else { continue };
        if addrs.contains(&addr) {
            source.report(source.error(&key.index(index), At::Value(text.span()), "listed twice"));
            continue;
        }
        addrs.push(addr);
    }
    (source.errors.count() == errors).then_some(addrs)
}
