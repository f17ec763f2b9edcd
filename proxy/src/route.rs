//! Routes: which service a request belongs to (SPEC §4). Tried in order;
//! the first whose path prefix and host (if given) match wins.

use http::header::HOST;
use http::request::Parts;

use crate::config::RouteConfig;

/// One route, resolved to a service index.
#[derive(Clone, Debug)]
struct Route {
    path_prefix: String,
    /// Lower case, without a port.
    host: Option<String>,
    strip_prefix: bool,
    max_body: Option<u64>,
    service: usize,
}

/// The matching route for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    /// Index of the service among the config's services, in order.
    pub service: usize,
    /// The path prefix to remove before forwarding, if the route strips it.
    pub strip: Option<&'a str>,
    /// The route's `max_body`: the largest request body it takes.
    pub max_body: Option<u64>,
}

/// The routes of a config.
#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the router; `service_index` maps a service name to its index
    /// (routes naming unknown services were rejected by the config).
    pub fn new(routes: &[RouteConfig], service_index: impl Fn(&str) -> Option<usize>) -> Router {
        Router {
            routes: routes
                .iter()
                .filter_map(|route| {
                    Some(Route {
                        path_prefix: route.path_prefix.clone(),
                        host: route.host.as_ref().map(|host| host.to_ascii_lowercase()),
                        strip_prefix: route.strip_prefix,
                        max_body: route.max_body,
                        service: service_index(&route.service)?,
                    })
                })
                .collect(),
        }
    }

    /// The first route that matches the request, if any.
    pub fn route(&self, parts: &Parts) -> Option<Matched<'_>> {
        let path = parts.uri.path();
        // Found on the first route that names a host: a request that only
        // meets routes without one never has its Host read.
        let mut host: Option<Option<&str>> = None;
        self.routes
            .iter()
            .find(|route| {
                path.starts_with(route.path_prefix.as_str())
                    && route.host.as_deref().is_none_or(|wanted| {
                        host.get_or_insert_with(|| request_host(parts))
                            .is_some_and(|host| host.eq_ignore_ascii_case(wanted))
                    })
            })
            .map(|route| Matched {
                service: route.service,
                strip: route.strip_prefix.then_some(route.path_prefix.as_str()),
                max_body: route.max_body,
            })
    }
}

/// The host a request is for, without its port: the URI's authority for an
/// absolute-form (or HTTP/2) request, else the `Host` header.
pub fn request_host(parts: &Parts) -> Option<&str> {
    let authority = match parts.uri.authority() {
        Some(authority) => authority.as_str(),
        None => parts.headers.get(HOST)?.to_str().ok()?,
    };
    Some(strip_port(authority))
}

/// `host:port` to `host`; `[v6]:port` to `[v6]`.
fn strip_port(authority: &str) -> &str {
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .split_once(':')
        .map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_config(prefix: &str, host: Option<&str>, service: &str, strip: bool) -> RouteConfig {
        RouteConfig {
            path_prefix: prefix.to_owned(),
            host: host.map(str::to_owned),
            service: service.to_owned(),
            strip_prefix: strip,
            max_body: None,
        }
    }

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn router() -> Router {
        let routes = [
            route_config("/counters/", Some("Counter.Example.com"), "counter", true),
            route_config("/api/", None, "api", false),
            route_config("/", None, "web", false),
        ];
        Router::new(&routes, |name| {
            ["counter", "api", "web"].iter().position(|s| *s == name)
        })
    }

    #[test]
    fn first_matching_route_wins() {
        let router = router();
        let matched = router
            .route(&parts("/counters/1", Some("COUNTER.example.com:8080")))
            .unwrap();
        assert_eq!(matched.service, 0);
        assert_eq!(matched.strip, Some("/counters/"));
        // Wrong host: falls through to the catch-all.
        assert_eq!(
            router
                .route(&parts("/counters/1", Some("other")))
                .unwrap()
                .service,
            2
        );
        assert_eq!(router.route(&parts("/api/x", None)).unwrap().service, 1);
        assert_eq!(router.route(&parts("/apix", None)).unwrap().service, 2);
    }

    #[test]
    fn absolute_form_authority_is_the_host() {
        let router = router();
        let matched = router
            .route(&parts(
                "http://counter.example.com/counters/1",
                Some("other"),
            ))
            .unwrap();
        assert_eq!(matched.service, 0);
    }

    #[test]
    fn no_route_no_match() {
        let routes = [route_config("/only/", None, "web", false)];
        let router = Router::new(&routes, |_| Some(0));
        assert!(router.route(&parts("/other", None)).is_none());
    }

    #[test]
    fn ports_and_brackets() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("user@a.example:80"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
    }
}
