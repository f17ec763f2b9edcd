//! `POST /instances/drain?service=S&instance=host:port` and `POST
//! /instances/undrain?...` (SPEC §11): an operator takes an instance out of
//! the read path before stopping it, and puts it back.
//!
//! Both answer `200` with JSON `{"service": S, "instance": "host:port",
//! "drained": B, "changed": B}` (`changed` is false when the instance was
//! already in that state, so a retried call is harmless); `400` for a
//! missing or malformed parameter, `404` for an unknown service or an
//! instance that is not on its ring in use (drains belong to a ring), `503`
//! before the service has a ring.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use shardproxy_ring::InstanceName;

use super::reply::{json, json_error};
use crate::app::App;
use crate::key::query_param;

/// Which of the two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Drain,
    Undrain,
}

/// The answer.
#[derive(Serialize)]
struct Drained<'a> {
    service: &'a str,
    instance: String,
    /// Whether it is drained now.
    drained: bool,
    /// Whether this call changed that.
    changed: bool,
}

/// Why a call was refused: the status and the message.
type Refusal = (StatusCode, String);

/// Answers a drain or undrain with the query `query`.
pub(super) fn drain(app: &App, action: Action, query: Option<&str>) -> Response<Full<Bytes>> {
    match drain_with(app, action, query.unwrap_or_default()) {
        Ok(drained) => json(StatusCode::OK, &drained),
        Err((status, message)) => json_error(status, &message),
    }
}

fn drain_with<'a>(app: &'a App, action: Action, query: &str) -> Result<Drained<'a>, Refusal> {
    let path = match action {
        Action::Drain => "/instances/drain",
        Action::Undrain => "/instances/undrain",
    };
    let usage = format!("use POST {path}?service=NAME&instance=HOST:PORT");
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let name = query_param(query, "service")
        .ok_or_else(|| bad(format!("missing query parameter \"service\": {usage}")))?;
    let service = app
        .named(&name)
        .map_err(|message| (StatusCode::NOT_FOUND, message))?;
    let service_name = &service.config().name;
    let instance = query_param(query, "instance")
        .ok_or_else(|| bad(format!("missing query parameter \"instance\": {usage}")))?;
    let instance = parse_instance(&instance).ok_or_else(|| {
        bad(format!(
            "the instance {:?} is not HOST:PORT, as /ring names instances: {usage}",
            String::from_utf8_lossy(&instance)
        ))
    })?;
    let upstream = &service.upstream;
    let ring = upstream.ring.load_full().ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service {service_name:?} has no ring yet: nothing to drain"),
        )
    })?;
    if !ring.table.instances().any(|(name, _)| *name == instance) {
        return Err((
            StatusCode::NOT_FOUND,
            format!(
                "{instance} is not an instance of the ring of {service_name:?} in use (see /ring)"
            ),
        ));
    }
    let changed = match action {
        Action::Drain => upstream.health.drain(&ring, &instance),
        Action::Undrain => upstream.health.undrain(&ring, &instance),
    };
    Ok(Drained {
        service: service_name,
        instance: instance.to_string(),
        drained: action == Action::Drain,
        changed,
    })
}

/// `host:port` as an instance name.
fn parse_instance(text: &[u8]) -> Option<InstanceName> {
    let text = std::str::from_utf8(text).ok()?;
    let (host, port) = text.rsplit_once(':')?;
    InstanceName::new(host, port.parse().ok()?).ok()
}
