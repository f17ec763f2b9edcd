//! `GET /keys/hot?service=S` and `GET /ring/load?service=S` (SPEC §11):
//! which keys, and which ranges of the ring, a service's requests fall on.
//! Their JSON is described in `crate::load`.
//!
//! Both answer `400` for a missing `service`, `404` for an unknown one;
//! `/ring/load` answers `400` for a `balance = "srv"` service (it has no
//! ranges) and `503` before the service has a ring. `/keys/hot` answers
//! whether or not there is a ring: without one, `instances` are empty.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::reply::{json, json_error};
use crate::app::{App, Service};
use crate::discovery::Table;
use crate::key::query_param;
use crate::load::{HotView, LoadView};

/// Why a call was refused: the status and the message.
type Refusal = (StatusCode, String);

/// The service named by `query`'s `service`, or why not.
fn service<'a>(app: &'a App, query: Option<&str>, path: &str) -> Result<&'a Service, Refusal> {
    let name = query_param(query.unwrap_or_default(), "service").ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("missing query parameter \"service\": use {path}?service=NAME"),
        )
    })?;
    app.named(&name)
        .map_err(|message| (StatusCode::NOT_FOUND, message))
}

/// `/keys/hot`.
pub(super) fn hot_keys(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    let service = match service(app, query, "/keys/hot") {
        Ok(service) => service,
        Err((status, message)) => return json_error(status, &message),
    };
    let upstream = &service.upstream;
    let top = upstream.hot.top(tokio::time::Instant::now());
    let snapshot = upstream.ring.load_full();
    let ring = snapshot
        .as_ref()
        .and_then(|snapshot| match &snapshot.table {
            Table::Ring(ring) => Some(ring),
            Table::Srv(_) => None,
        });
    json(
        StatusCode::OK,
        &HotView::new(&upstream.config.name, top, ring),
    )
}

/// `/ring/load`.
pub(super) fn ring_load(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    let service = match service(app, query, "/ring/load") {
        Ok(service) => service,
        Err((status, message)) => return json_error(status, &message),
    };
    let upstream = &service.upstream;
    let name = &upstream.config.name;
    let Some((snapshot, load)) = upstream.range_load() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("service {name:?} has no ring yet"),
        );
    };
    match &snapshot.table {
        Table::Srv(_) => json_error(
            StatusCode::BAD_REQUEST,
            &format!("service {name:?} has balance = \"srv\": it has no ring, so no ranges"),
        ),
        Table::Ring(ring) => {
            let hot = upstream.hot.top(tokio::time::Instant::now());
            json(
                StatusCode::OK,
                &LoadView::new(name, ring, load.as_deref(), &hot),
            )
        }
    }
}
