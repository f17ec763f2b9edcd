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

use super::{json, json_error, named_service};
use crate::app::App;
use crate::cache::Purge;
use crate::key::query_param;

/// The answer: what was purged.
#[derive(Serialize)]
struct Purged<'a> {
    service: &'a str,
    purged: usize,
}

const USAGE: &str = "use POST /cache/purge?service=NAME&path=PATH or ?service=NAME&prefix=PREFIX";

/// Answers a purge with the query `query`.
pub(super) fn purge(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    let query = query.unwrap_or_default();
    let text = |name: &str| -> Result<Option<String>, Response<Full<Bytes>>> {
        query_param(query, name)
            .map(|value| {
                String::from_utf8(value.into_owned()).map_err(|_| {
                    json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("the parameter {name:?} is not UTF-8 once decoded"),
                    )
                })
            })
            .transpose()
    };
    let parameters = (|| Ok((text("path")?, text("prefix")?, text("host")?)))();
    let (path, prefix, host) = match parameters {
        Ok(parameters) => parameters,
        Err(response) => return response,
    };
    let Some(name) = query_param(query, "service") else {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("missing query parameter \"service\": {USAGE}"),
        );
    };
    let service = match named_service(app, &name) {
        Ok(service) => service,
        Err(response) => return response,
    };
    let which = match (&path, &prefix) {
        (Some(path), None) => Purge::Path(path),
        (None, Some(prefix)) => Purge::Prefix(prefix),
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("give exactly one of \"path\" and \"prefix\": {USAGE}"),
            )
        }
    };
    let Some(cache) = &service.cache else {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "service {:?} has no cache (cache.enabled = false)",
                service.config.name
            ),
        );
    };
    let host = host.map(|host| host.to_ascii_lowercase());
    json(
        StatusCode::OK,
        &Purged {
            service: &service.config.name,
            purged: cache.purge(host.as_deref(), which),
        },
    )
}
