//! `POST /cache/purge?service=S&path=P` (or `&prefix=P`, optionally
//! `&host=H`): removes cached objects of a service.
//!
//! `path` removes the objects whose path and query, as clients sent them,
//! is exactly `P` (every `Vary` variant of it); `prefix` those whose path
//! and query starts with `P`. Without `host`, on every host the service is
//! reached by; with it, only on that host (case-insensitive, no port).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::reply::{json, json_error};
use crate::app::App;
use crate::cache::Purge;
use crate::key::query_param;

/// The answer: what was purged.
#[derive(Serialize)]
struct Purged<'a> {
    service: &'a str,
    purged: usize,
}

/// Why a purge was refused: the status and the message.
type Refusal = (StatusCode, String);

const USAGE: &str = "use POST /cache/purge?service=NAME&path=PATH or ?service=NAME&prefix=PREFIX";

/// Answers a purge with the query `query`.
pub(super) fn purge(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    match purge_with(app, query.unwrap_or_default()) {
        Ok(purged) => json(StatusCode::OK, &purged),
        Err((status, message)) => json_error(status, &message),
    }
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
    let (path, prefix) = (text("path")?, text("prefix")?);
    let which = match (&path, &prefix) {
        (Some(path), None) => Purge::Path(path),
        (None, Some(prefix)) => Purge::Prefix(prefix),
        _ => {
            return Err(bad(format!(
                "give exactly one of \"path\" and \"prefix\": {USAGE}"
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
        purged: cache.purge(host.as_deref(), which),
    })
}
