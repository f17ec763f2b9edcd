//! The admin API on `server.admin` (SPEC §7): metrics, liveness,
//! readiness, and the rings as discovered.
//!
//! | path | answer |
//! | --- | --- |
//! | `/metrics` | `200`, the Prometheus text format ([`Metrics::render`](crate::metrics::Metrics::render)) |
//! | `/healthz` | `200 ok` while the process serves |
//! | `/readyz` | `200 ready` once every service has a ring with at least one instance; else `503` naming the services that do not |
//! | `/ring` | `200`, JSON `{"services": [...]}`: one [`ServiceView`] per service, in config order |
//! | `/ring/lookup?service=S&key=K` | `200`, JSON [`LookupView`]: the key's preference list, primary first |
//! | `/keys/hot?service=S` | `200`, JSON [`HotView`](crate::load::HotView): the most requested keys of the recent window, hottest first (`load`) |
//! | `/ring/load?service=S` | `200`, JSON [`LoadView`](crate::load::LoadView): requests per range of the ring in use, and per primary (`load`) |
//! | `POST /cache/purge?service=S&path=P` (or `&prefix=P`, or `&tag=T`; optionally `&host=H`, `&soft=true`) | `200`, JSON `{"service": S, "purged": N}`: the cached objects removed (`purge`); with `[cache_peers]`, also `"peers"`: each peer's part (`peers`) |
//! | `POST /instances/drain?service=S&instance=H:P`, `POST /instances/undrain?...` | `200`, JSON `{"service": S, "instance": "H:P", "drained": B, "changed": B}` (`drain`) |
//! | `/ui` (or `/ui?token=T`) | `200`, `text/html`: the ring page (SPEC §14), one self-contained page drawing the rings from the endpoints above (`ui`) |
//!
//! `/cache/purge` and `/instances/...` answer `POST`, every other path
//! `GET` and `HEAD`; other methods get `405` with an `Allow` header, and
//! other paths `404`. `/ring/lookup` reports what is
//! wrong as JSON `{"error": "..."}`: `400` for a missing or undecodable
//! parameter or a `balance = "srv"` service (it has no ring), `404` for an
//! unknown service, `503` for a service whose ring is not there yet.
//!
//! `/cache/purge` reports what is wrong the same way (`404` for an
//! unknown service, `400` for a bad query or a service without a cache).
//!
//! With `server.admin_token` set, every request but `GET /healthz` and
//! `GET /readyz` needs `Authorization: Bearer <token>`, else `401`
//! (`auth`); `GET /ui` may carry it as `?token=` instead, since a browser
//! opening the page cannot send the header.
//!
//! Admin requests carry nothing in their bodies, so the routing is the
//! plain function [`respond`] of method and URI, which the tests call
//! without a connection. [`respond`] answers for this process; [`handle`]
//! sends a purge on to the peers as well, which takes awaiting.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;

use crate::app::{App, Service};
use crate::config::Balance;
use crate::discovery::{RefreshStatus, ServiceRing, Table};
use crate::key::query_param;
use crate::view::{LookupView, ServiceView};

mod auth;
mod drain;
mod load;
pub mod peers;
mod purge;
mod reply;
mod ui;

pub use reply::METRICS_CONTENT_TYPE;
use reply::{json, json_error, reply, text, without_body};

const ALLOW: &str = "GET, HEAD";
const ALLOW_POST: &str = "POST";

/// The admin endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Metrics,
    Healthz,
    Readyz,
    Ring,
    Lookup,
    HotKeys,
    RingLoad,
    Purge,
    Drain,
    Undrain,
    Ui,
}

impl Endpoint {
    /// The endpoint at `path`, exactly (no trailing slash, no prefix).
    fn at(path: &str) -> Option<Endpoint> {
        match path {
            "/metrics" => Some(Endpoint::Metrics),
            "/healthz" => Some(Endpoint::Healthz),
            "/readyz" => Some(Endpoint::Readyz),
            "/ring" => Some(Endpoint::Ring),
            "/ring/lookup" => Some(Endpoint::Lookup),
            "/keys/hot" => Some(Endpoint::HotKeys),
            "/ring/load" => Some(Endpoint::RingLoad),
            "/cache/purge" => Some(Endpoint::Purge),
            "/instances/drain" => Some(Endpoint::Drain),
            "/instances/undrain" => Some(Endpoint::Undrain),
            "/ui" => Some(Endpoint::Ui),
            _ => None,
        }
    }

    /// The methods it answers, as `Allow` says them.
    fn allow(self) -> &'static str {
        if self.changes_state() {
            ALLOW_POST
        } else {
            ALLOW
        }
    }

    /// Whether it answers `method`.
    fn allows(self, method: &Method) -> bool {
        if self.changes_state() {
            method == Method::POST
        } else {
            method == Method::GET || method == Method::HEAD
        }
    }

    /// Whether it changes the proxy's state, and so answers `POST` only.
    fn changes_state(self) -> bool {
        matches!(self, Endpoint::Purge | Endpoint::Drain | Endpoint::Undrain)
    }
}

/// `/ring`: every service's view.
#[derive(Serialize)]
struct RingsView {
    services: Vec<ServiceView>,
}

/// Answers one admin request. The request body is not read: no endpoint
/// takes one. With `server.admin_token`, a request without the token gets
/// `401` first (`auth`). A request that changes state (`POST`) from a web page, or
/// through a host name that is not the admin listener's, is refused (`403`):
/// a page in a browser on the same machine must not purge the cache, by
/// `fetch` (which sends `Origin`) or by DNS rebinding (which sends its own
/// name as `Host`).
///
/// `admin` is the address the admin listener is bound to: a purge is sent
/// on to every `[cache_peers]` peer but that one (`peers`), unless it
/// came from a peer ([`peers::LOCAL_ONLY`]).
pub async fn handle(
    app: &App,
    request: Request<Incoming>,
    admin: SocketAddr,
) -> Response<Full<Bytes>> {
    if let Some(refused) = refusal(app, request.method(), request.uri(), request.headers()) {
        return refused;
    }
    if request.method() == Method::POST
        && Endpoint::at(request.uri().path()) == Some(Endpoint::Purge)
    {
        let local_only = request.headers().contains_key(peers::LOCAL_ONLY);
        return purge::purge_everywhere(app, request.uri().query(), local_only, admin).await;
    }
    respond(app, request.method(), request.uri())
}

/// The answer to a request that may not be answered, if it is one: `401`
/// without the token (`auth`), `403` for a state change from a web page or
/// through another host name ([`same_machine`]).
fn refusal(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &http::HeaderMap,
) -> Option<Response<Full<Bytes>>> {
    let token = app.config.server.admin_token.as_ref();
    if let Err(refused) = auth::authorize(token, method, uri, headers) {
        return Some(refused.response());
    }
    if method == Method::POST {
        if let Err(reason) = same_machine(headers, app.config.server.admin) {
            return Some(text(
                StatusCode::FORBIDDEN,
                format!("refused: {reason}; send admin requests that change state from a shell or a program, to the admin address\n"),
            ));
        }
    }
    None
}

/// Whether a request that changes state comes from a program on the
/// admin listener's side rather than from a web page: no `Origin`, and a
/// `Host` (when it has one) that is `localhost` or the listener's address,
/// or any IP address when the listener is bound to every address (an
/// address cannot be rebound; a name can).
fn same_machine(headers: &http::HeaderMap, admin: SocketAddr) -> Result<(), &'static str> {
    if headers.contains_key(header::ORIGIN) {
        return Err("a request with an Origin header (sent by web pages)");
    }
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(literal) => literal.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(());
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if ip == admin.ip() || admin.ip().is_unspecified() => Ok(()),
        _ => Err("a Host that is neither localhost nor the admin listener's address"),
    }
}

/// The answer to `method` on `uri`. `HEAD` gets the headers `GET` would,
/// `Content-Length` included, and no body.
pub fn respond(app: &App, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
    let path = uri.path();
    let Some(endpoint) = Endpoint::at(path) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no admin endpoint at {path}: the endpoints are /metrics, /healthz, /readyz, \
                 /ring, /ring/lookup?service=NAME&key=KEY, /keys/hot?service=NAME, \
                 /ring/load?service=NAME, POST /cache/purge?service=NAME&path=PATH \
                 POST /instances/drain (or /instances/undrain)?service=NAME&instance=HOST:PORT \
                 and /ui, the ring page\n"
            ),
        );
    };
    if !endpoint.allows(method) {
        let allow = endpoint.allow();
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {method} is not allowed on {path}: use {}\n",
                allow.replace(", ", " or ")
            ),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let response = match endpoint {
        Endpoint::Metrics => reply(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            app.metrics.render(&app.scraped()),
        ),
        Endpoint::Healthz => text(StatusCode::OK, "ok\n"),
        Endpoint::Readyz => readiness(app),
        Endpoint::Ring => json(
            StatusCode::OK,
            &RingsView {
                services: app.services.iter().map(service_view).collect(),
            },
        ),
        Endpoint::Lookup => lookup(app, uri.query()),
        Endpoint::HotKeys => load::hot_keys(app, uri.query()),
        Endpoint::RingLoad => load::ring_load(app, uri.query()),
        Endpoint::Purge => purge::purge(app, uri.query()),
        Endpoint::Drain => drain::drain(app, drain::Action::Drain, uri.query()),
        Endpoint::Undrain => drain::drain(app, drain::Action::Undrain, uri.query()),
        Endpoint::Ui => ui::page(),
    };
    if method == Method::HEAD {
        without_body(response)
    } else {
        response
    }
}

/// `/readyz`: ready once every service has a ring with instances.
fn readiness(app: &App) -> Response<Full<Bytes>> {
    if app.discovery.ready() {
        return text(StatusCode::OK, "ready\n");
    }
    let mut body = String::from("not ready: not every service has a ring with instances yet\n");
    for service in &app.services {
        if let Some(reason) = not_ready(&service.upstream.ring) {
            body.push_str(&format!("{}: {reason}\n", service.config().name));
        }
    }
    text(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Why `ring` keeps the proxy from being ready, if it does.
fn not_ready(ring: &ServiceRing) -> Option<String> {
    match ring.load().as_ref() {
        None => Some(format!("no ring yet{}", last_failure(&ring.status()))),
        Some(state) if state.current.table.is_empty() => {
            Some("the ring has no instances".to_owned())
        }
        Some(_) => None,
    }
}

/// `" (last refresh failed: ...)"` when there is a failure to show, else
/// nothing.
fn last_failure(status: &RefreshStatus) -> String {
    status
        .last_error
        .as_ref()
        .map(|(_, error)| format!(" (last refresh failed: {error})"))
        .unwrap_or_default()
}

/// One service as `/ring` shows it.
fn service_view(service: &Service) -> ServiceView {
    let upstream = &service.upstream;
    let snapshot = upstream.ring.load_full();
    let mut view = ServiceView::new(
        &upstream.config.name,
        service.source.describe(),
        snapshot.as_ref().map(|snapshot| {
            (
                &snapshot.table,
                snapshot.discovered_at,
                snapshot.replication_from,
            )
        }),
        &upstream.ring.status(),
        false,
    );
    let drained = snapshot
        .as_ref()
        .map(|ring| upstream.health.drained(ring))
        .unwrap_or_default();
    for instance in &mut view.instances {
        if let Ok(name) = shardproxy_ring::InstanceName::new(&instance.host, instance.port) {
            instance.health = Some(upstream.health.view(&name));
            instance.drained = Some(drained.contains(&name));
        }
    }
    view
}

/// `/ring/lookup?service=S&key=K`.
fn lookup(app: &App, query: Option<&str>) -> Response<Full<Bytes>> {
    let query = query.unwrap_or_default();
    let (name, key) = match (query_param(query, "service"), query_param(query, "key")) {
        (Some(name), Some(key)) => (name, key),
        (None, None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "missing query parameters \"service\" and \"key\": use /ring/lookup?service=NAME&key=KEY",
            )
        }
        (None, Some(_)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "missing query parameter \"service\": use /ring/lookup?service=NAME&key=KEY",
            )
        }
        (Some(_), None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "missing query parameter \"key\": use /ring/lookup?service=NAME&key=KEY",
            )
        }
    };
    let service = match app.named(&name) {
        Ok(service) => service,
        Err(error) => return json_error(StatusCode::NOT_FOUND, &error),
    };
    let Ok(key) = std::str::from_utf8(&key) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "the key {:?} is not UTF-8 once decoded, and the answer shows it as a JSON string; \
                 look it up with `shardproxy ring lookup` instead",
                String::from_utf8_lossy(&key)
            ),
        );
    };
    let upstream = &service.upstream;
    lookup_on(
        &upstream.config.name,
        upstream.config.balance,
        &upstream.ring,
        key,
    )
}

/// `key`'s preference list on the ring in use of `service`.
fn lookup_on(
    service: &str,
    balance: Balance,
    ring: &ServiceRing,
    key: &str,
) -> Response<Full<Bytes>> {
    let srv_error = || {
        json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "service {service:?} has balance = \"srv\": it has no ring, so keys have no \
                 preference list"
            ),
        )
    };
    if balance == Balance::Srv {
        return srv_error();
    }
    let Some(snapshot) = ring.load_full() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "service {service:?} has no ring yet{}",
                last_failure(&ring.status())
            ),
        );
    };
    match &snapshot.table {
        Table::Srv(_) => srv_error(),
        Table::Ring(ring) if ring.is_empty() => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the ring of service {service:?} has no instances"),
        ),
        Table::Ring(ring) => json(StatusCode::OK, &LookupView::new(service, key, ring)),
    }
}

#[cfg(test)]
mod tests;
