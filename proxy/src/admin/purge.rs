//! `POST /cache/purge?service=S&path=P` (or `&prefix=P`, or `&tag=T`,
//! optionally `&host=H` and `&soft=true`): removes cached objects of a
//! service.
//!
//! `path` removes the objects whose path and query, as clients sent them,
//! is exactly `P` (every `Vary` variant of it); `prefix` those whose path
//! and query starts with `P`; `tag` those tagged `T` by their response's
//! `cache.tag_header` (SPEC §13). Without `host`, on every host the service
//! is reached by; with it, only on that host (case-insensitive, no port).
//! With `soft=true` the objects are marked stale instead of removed: they
//! are then served only as grace and `stale-if-error` allow, while one
//! request revalidates or refetches each.
//!
//! With `[cache_peers]`, a purge received by the admin API is then sent
//! to every peer (`peers`), and the answer lists each peer's part:
//! `{"service": S, "purged": N, "peers": [{"peer": "10.0.0.2:9090", "ok":
//! true, "purged": 1}, {"peer": "10.0.0.3:9090", "ok": false, "error":
//! "..."}]}`. Without it, or for a purge a peer sent, the answer is as it
//! always was, without `peers`.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use std::net::SocketAddr;

use super::peers::{self, PeerPurge};
use super::reply::{json, json_error};
use crate::app::App;
use crate::cache::Purge;
use crate::key::query_param;

/// The answer: what was purged.
#[derive(Serialize)]
struct Purged<'a> {
    service: &'a str,
    purged: usize,
    /// Each peer's part, when the purge went to `[cache_peers]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<PeerPurge>>,
}

/// Why a purge was refused: the status and the message.
type Refusal = (StatusCode, String);

const USAGE: &str = "use POST /cache/purge?service=NAME&path=PATH, ?service=NAME&prefix=PREFIX or ?service=NAME&tag=TAG (and &soft=true to mark them stale instead)";

/// Answers a purge with the query `query`, in this process only.
pub(super) fn purge(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    match purge_with(app, query.unwrap_or_default()) {
        Ok(purged) => json(StatusCode::OK, &purged),
        Err((status, message)) => json_error(status, &message),
    }
}

/// Answers a purge with the query `query` here, and unless `local_only`
/// (a peer sent it) on every peer of `[cache_peers]` too; `own` is where
/// this process's admin listener is bound, which is no peer.
///
/// A purge refused here (a bad query, an unknown service) goes nowhere:
/// the peers share the config and would refuse it alike. One done here
/// is answered `200` whatever the peers did, as Varnish answers each
/// purge for its own cache: the status says what became of this request
/// on this proxy, and retrying it would repeat a purge that is done,
/// while the failed peers are named in the answer (and make
/// `shardproxy cache purge` exit 1) for the operator to retry or check.
pub(super) async fn purge_everywhere(
    app: &App,
    query: Option<&str>,
    local_only: bool,
    own: SocketAddr,
) -> Response<Full<Bytes>> {
    let query = query.unwrap_or_default();
    let mut purged = match purge_with(app, query) {
        Ok(purged) => purged,
        Err((status, message)) => return json_error(status, &message),
    };
    if let (Some(config), false) = (&app.config.cache_peers, local_only) {
        let token = app.config.server.admin_token.as_ref();
        purged.peers = Some(peers::fan_out(config, &app.resolver, query, token, own).await);
    }
    json(StatusCode::OK, &purged)
}

/// The purge `query` asks for, done.
fn purge_with<'a>(app: &'a App, query: &str) -> Result<Purged<'a>, Refusal> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let text = |name: &str| -> Result<Option<String>, Refusal> {
        query_param(query, name)
            .map(|value| {
                String::from_utf8(value.into_owned())
                    .map_err(|_| bad(format!("the parameter {name:?} is not UTF-8 once decoded")))
            })
            .transpose()
    };
    let name = query_param(query, "service")
        .ok_or_else(|| bad(format!("missing query parameter \"service\": {USAGE}")))?;
    let service = app
        .named(&name)
        .map_err(|message| (StatusCode::NOT_FOUND, message))?;
    let (path, prefix, tag) = (text("path")?, text("prefix")?, text("tag")?);
    let which = match (&path, &prefix, &tag) {
        (Some(path), None, None) => Purge::Path(path),
        (None, Some(prefix), None) => Purge::Prefix(prefix),
        (None, None, Some(tag)) => Purge::Tag(tag),
        _ => {
            return Err(bad(format!(
                "give exactly one of \"path\", \"prefix\" and \"tag\": {USAGE}"
            )))
        }
    };
    let soft = match text("soft")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "the parameter \"soft\" is {other:?}: expected true or false"
            )))
        }
    };
    let cache = service.cache.as_ref().ok_or_else(|| {
        bad(format!(
            "service {:?} has no cache (cache.enabled = false)",
            service.config().name
        ))
    })?;
    let host = text("host")?.map(|host| host.to_ascii_lowercase());
    Ok(Purged {
        service: &service.config().name,
        purged: cache.purge(host.as_deref(), which, soft),
        peers: None,
    })
}
