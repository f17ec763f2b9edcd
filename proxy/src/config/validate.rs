//! The second stage: raw values to typed ones, with every default and every
//! check.
//!
//! Each key goes through `check::field` (optional, with a default) or
//! `check::check` (present), which turn a failed check into a
//! [`ConfigError`] naming the key and quoting the value. `field` reports
//! its error and goes on with the default, so that every error of a file is
//! found in one run. Checks between keys (a route's service, `try_timeout`
//! against `deadline`) blame the key the user wrote, and use only keys
//! that were valid. `[services.NAME]` is in the `service` module.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::check::{
    check, duration, field, flag, given, int_in, one_of, positive_duration, required, size,
    size_at_least, socket_addr,
};
use super::duration::format_duration;
use super::error::{At, ConfigError, KeyPath, Source};
use super::locate;
use super::raw::{RawConfig, RawDns, RawLog, RawRoute, RawServer};
use super::service::services;
use super::{Config, DnsConfig, DnsServers, LogConfig, LogFormat, RouteConfig, ServerConfig};

/// Below this not even a request line with a few headers fits.
const MIN_MAX_HEADER_SIZE: u64 = 1 << 10;
/// More header fields than this is an attack, not a request.
const MAX_MAX_HEADERS: i64 = 10_000;
/// More connections than this needs more file descriptors than a process
/// gets.
const MAX_MAX_CONNECTIONS: i64 = 1_000_000;
/// SPEC §3: rings are not re-read more often than once a second.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const DNS_PORT: u16 = 53;

/// More errors of serde than this in one file, and reading stops: each
/// costs a new pass over the document.
const MAX_SERDE_ERRORS: usize = 100;

/// Parses and validates a whole document. Invalid TOML is returned at
/// once; every other error is reported to `source` and validation goes on.
pub(super) fn load(source: &Source<'_>) -> Result<Config, ConfigError> {
    let mut document =
        DeTable::parse(source.text).map_err(|error| locate::syntax_error(source, &error))?;
    // serde stops at the first unknown key or value of the wrong type:
    // report it, remove that key from the document, and read it again.
    let mut pruned = Vec::new();
    let raw = loop {
        match RawConfig::deserialize(toml::de::Deserializer::from(document.clone())) {
            Ok(raw) => break raw,
            Err(error) => {
                let found = locate::serde_error(source, document.get_ref(), &error);
                let removed = error
                    .span()
                    .filter(|_| pruned.len() < MAX_SERDE_ERRORS)
                    .and_then(|span| locate::prune(document.get_mut(), &span));
                let Some(removed) = removed else {
                    return Err(found);
                };
                source.report(found);
                pruned.push(removed.to_string());
            }
        }
    };
    // A removed key is missing to the validators: whatever they say of it
    // (a missing key, a table without it) is a consequence, not news.
    let after_serde = source.errors.count();
    let consequence = |error: &ConfigError| {
        error.key().is_some_and(|key| {
            pruned.iter().any(|removed| {
                removed.strip_prefix(key).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
                })
            })
        })
    };
    let config = validate(source, &raw);
    source.errors.forget_after(after_serde, consequence);
    Ok(config)
}

/// The second stage proper, on a document serde could read.
fn validate(source: &Source<'_>, raw: &RawConfig) -> Config {
    // Tables in the order of a typical file; errors are listed in the
    // order of the file whatever the order they are found in.
    let server = server(source, raw.server.as_ref());
    let dns = dns(source, raw.dns.as_ref());
    let log = log(source, raw.log.as_ref());
    let services = services(source, raw.services.as_ref());
    // Routes are checked against every service named in the file, valid or
    // not, so that a service with an error of its own does not also make
    // each of its routes an error.
    let named: Vec<&str> = raw.services.as_ref().map_or_else(Vec::new, |services| {
        services
            .get_ref()
            .keys()
            .map(|name| name.get_ref().as_str())
            .collect()
    });
    let routes = routes(source, raw.routes.as_ref(), &named);
    let cache_peers = super::peers::cache_peers(source, raw.cache_peers.as_ref());
    Config {
        server,
        dns,
        log,
        services,
        routes,
        cache_peers,
    }
}

// === [log] ===

fn log(source: &Source<'_>, raw: Option<&Spanned<RawLog>>) -> LogConfig {
    let defaults = LogConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("log");
    LogConfig {
        level: field(
            source,
            &key.key("level"),
            raw.level.as_ref(),
            defaults.level,
            |level: &String| log_filter(level),
        ),
        format: field(
            source,
            &key.key("format"),
            raw.format.as_ref(),
            defaults.format,
            |format: &String| match format.as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected text or json".to_owned()),
            },
        ),
        access_log: field(
            source,
            &key.key("access_log"),
            raw.access_log.as_ref(),
            defaults.access_log,
            flag,
        ),
        access_log_file: raw.access_log_file.as_ref().and_then(|path| {
            source.ok(check(
                source,
                &key.key("access_log_file"),
                path,
                |path: &String| {
                    if path.is_empty() {
                        Err("expected a file path, or no key for standard output".to_owned())
                    } else {
                        Ok(std::path::PathBuf::from(path))
                    }
                },
            ))
        }),
    }
}

/// The levels a filter directive may name, as `tracing` spells them.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A `tracing` filter as `EnvFilter` reads it, but stricter: `EnvFilter`
/// takes a bare word that is not a level (`warning`) as a target enabled at
/// every level, so a misspelt level would log nothing of the proxy and
/// pass. Here each comma-separated directive must be a level, or
/// `target=level` (the target may carry a `[span{field=value}]` filter),
/// and must parse as `EnvFilter` parses it.
fn log_filter(filter: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected a level (trace, debug, info, warn, error or off) or target=level, separated by commas, like \"info\" or \"shardproxy=debug,warn\"";
    if filter.trim().is_empty() {
        return Err(format!("empty: {EXPECTED}"));
    }
    // Split as EnvFilter splits: at every comma.
    for directive in filter.split(',') {
        let directive = directive.trim();
        // The level follows the last `=` outside `[...]`: span filters may
        // hold `field=value` of their own.
        let closed = directive.rfind(']').map_or(0, |end| end + 1);
        let level = match directive[closed..].rfind('=') {
            Some(equals) if closed + equals == 0 => {
                return Err(format!(
                    "{directive:?} has no target before '=': {EXPECTED}"
                ));
            }
            Some(equals) => &directive[closed + equals + 1..],
            None if closed == 0 => directive,
            None => return Err(format!("{directive:?} has no level: {EXPECTED}")),
        };
        if !LOG_LEVELS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(level))
        {
            return Err(format!("{level:?} is not a level: {EXPECTED}"));
        }
        tracing_subscriber::EnvFilter::try_new(directive)
            .map_err(|error| format!("{directive:?}: {error}: {EXPECTED}"))?;
    }
    Ok(filter.to_owned())
}

// === [server] ===

fn server(source: &Source<'_>, raw: Option<&Spanned<RawServer>>) -> ServerConfig {
    let defaults = ServerConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("server");
    let (listen_key, admin_key) = (key.key("listen"), key.key("admin"));
    let listen = given(source, &listen_key, raw.listen.as_ref(), |text| {
        socket_addr(text)
    });
    let admin = given(source, &admin_key, raw.admin.as_ref(), |text| {
        socket_addr(text)
    });
    // A default never clashes with the address given: one left out takes
    // the other's default instead (listen on 9090 puts admin on 8080).
    let (listen, admin) = match (listen, admin) {
        (Some(listen), None) if listen == defaults.admin => (listen, defaults.listen),
        (None, Some(admin)) if admin == defaults.listen => (defaults.admin, admin),
        (listen, admin) => (
            listen.unwrap_or(defaults.listen),
            admin.unwrap_or(defaults.admin),
        ),
    };
    if let (true, Some(given)) = (listen == admin && listen.port() != 0, &raw.admin) {
        source.report(source.error(
            &admin_key,
            At::Value(given.span()),
            format!("must differ from {listen_key}"),
        ));
    }
    ServerConfig {
        listen,
        admin,
        max_header_size: field(
            source,
            &key.key("max_header_size"),
            raw.max_header_size.as_ref(),
            defaults.max_header_size,
            size_at_least(MIN_MAX_HEADER_SIZE),
        ),
        max_headers: field(
            source,
            &key.key("max_headers"),
            raw.max_headers.as_ref(),
            defaults.max_headers,
            int_in(1, MAX_MAX_HEADERS),
        ),
        header_read_timeout: field(
            source,
            &key.key("header_read_timeout"),
            raw.header_read_timeout.as_ref(),
            defaults.header_read_timeout,
            positive_duration,
        ),
        idle_timeout: field(
            source,
            &key.key("idle_timeout"),
            raw.idle_timeout.as_ref(),
            defaults.idle_timeout,
            positive_duration,
        ),
        max_connections: field(
            source,
            &key.key("max_connections"),
            raw.max_connections.as_ref(),
            defaults.max_connections,
            int_in(1, MAX_MAX_CONNECTIONS),
        ),
        workers: field(
            source,
            &key.key("workers"),
            raw.workers.as_ref(),
            defaults.workers,
            |number| int_in::<usize>(1, 1024)(number).map(std::num::NonZeroUsize::new),
        ),
        drain_timeout: field(
            source,
            &key.key("drain_timeout"),
            raw.drain_timeout.as_ref(),
            defaults.drain_timeout,
            duration,
        ),
        send_timeout: field(
            source,
            &key.key("send_timeout"),
            raw.send_timeout.as_ref(),
            defaults.send_timeout,
            positive_duration,
        ),
        error_detail: field(
            source,
            &key.key("error_detail"),
            raw.error_detail.as_ref(),
            defaults.error_detail,
            flag,
        ),
        proxy_protocol: field(
            source,
            &key.key("proxy_protocol"),
            raw.proxy_protocol.as_ref(),
            defaults.proxy_protocol,
            flag,
        ),
        admin_token: source
            .ok(super::secret::admin_token(
                source,
                &key,
                raw.admin_token.as_ref(),
                raw.admin_token_file.as_ref(),
            ))
            .flatten(),
        tls: raw
            .tls
            .as_ref()
            .and_then(|tls| super::tls::tls(source, &key.key("tls"), tls)),
    }
}

// === [dns] ===

fn dns(source: &Source<'_>, raw: Option<&Spanned<RawDns>>) -> DnsConfig {
    let defaults = DnsConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("dns");
    let servers = match &raw.servers {
        None => DnsServers::System,
        Some(list) if list.get_ref().is_empty() => {
            source.report(source.error(
                &key.key("servers"),
                At::Value(list.span()),
                "expected at least one server: leave servers out to use the system resolver",
            ));
            DnsServers::System
        }
        Some(list) => {
            let servers_key = key.key("servers");
            let servers = list
                .get_ref()
                .iter()
                .enumerate()
                .filter_map(|(index, server)| {
                    source.ok(check(source, &servers_key.index(index), server, |text| {
                        dns_server(text)
                    }))
                })
                .collect();
            DnsServers::Custom(servers)
        }
    };
    let refresh = field(
        source,
        &key.key("refresh"),
        raw.refresh.as_ref(),
        defaults.refresh,
        |value| {
            let refresh = duration(value)?;
            if refresh < MIN_REFRESH {
                return Err(format!("must be at least {}", format_duration(MIN_REFRESH)));
            }
            Ok(refresh)
        },
    );
    DnsConfig { servers, refresh }
}

/// `ip`, `ip:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; no port
/// means 53.
fn dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err("port 0 cannot be a DNS server's port".to_owned());
        }
        return Ok(addr);
    }
    let bracketed = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'));
    let ip = match bracketed {
        Some(inner) => inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => text.parse::<IpAddr>().ok(),
    };
    ip.map(|ip| SocketAddr::new(ip, DNS_PORT)).ok_or_else(|| {
        "expected an IP address with an optional port (53 if absent), like \"10.0.0.2\", \"127.0.0.1:5353\" or \"[::1]:53\""
            .to_owned()
    })
}

// === [[routes]] ===

/// Every route, in file order; `named` are the services of the file.
fn routes(
    source: &Source<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawRoute>>>>,
    named: &[&str],
) -> Vec<RouteConfig> {
    let key = KeyPath::root().key("routes");
    let Some(raw) = raw else {
        source.report(source.error(
            &key,
            At::Nowhere,
            "missing: expected at least one [[routes]] table, like [[routes]] path_prefix = \"/\" service = \"frobnicator\"",
        ));
        return Vec::new();
    };
    if raw.get_ref().is_empty() {
        source.report(source.error(&key, At::Value(raw.span()), "expected at least one route"));
        return Vec::new();
    }
    let mut routes = Vec::with_capacity(raw.get_ref().len());
    // The routes without an error of their own, with their index, for the
    // check that each can match: a route with a placeholder must not hide
    // the ones after it.
    let mut valid: Vec<(usize, usize)> = Vec::new();
    for (index, route) in raw.get_ref().iter().enumerate() {
        let errors = source.errors.count();
        let Some(config) = source.ok(self::route(source, &key.index(index), route, named)) else {
            continue;
        };
        routes.push(config);
        if source.errors.count() == errors {
            valid.push((index, routes.len() - 1));
        }
    }
    let valid: Vec<(usize, &RouteConfig)> = valid
        .into_iter()
        .map(|(index, at)| (index, &routes[at]))
        .collect();
    unreachable(source, &key, raw.get_ref(), &valid);
    routes
}

/// Reports each route that can never match (SPEC §9.1): one that an
/// earlier route matches whenever it would, as a `"/"` route without a
/// host before any other. `valid` are the routes without an error, with
/// their index in `raw`.
fn unreachable(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &[Spanned<RawRoute>],
    valid: &[(usize, &RouteConfig)],
) {
    for (later, &(index, route)) in valid.iter().enumerate() {
        let Some(&(earlier, hiding)) = valid[..later]
            .iter()
            .find(|(_, earlier)| hides(earlier, route))
        else {
            continue;
        };
        let at = match &raw[index].get_ref().path_prefix {
            Some(prefix) => At::Value(prefix.span()),
            None => At::Place(raw[index].span()),
        };
        let line = source.position(raw[earlier].span().start).line;
        let host = hiding
            .host
            .as_ref()
            .map_or_else(|| "any host".to_owned(), |host| format!("host {host:?}"));
        source.report(source.error(
            &key.index(index).key("path_prefix"),
            at,
            format!(
                "never matches: {} (line {line}, path_prefix {:?}, {host}) comes first and matches every request this route would",
                key.index(earlier),
                hiding.path_prefix,
            ),
        ));
    }
}

/// Whether `earlier` matches every request `later` would, so that `later`,
/// tried after it, never matches: same host or none, and a prefix of its
/// path prefix.
fn hides(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    let host_covers = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(earlier), Some(later)) => earlier == later,
        (Some(_), None) => false,
    };
    host_covers && later.path_prefix.starts_with(&earlier.path_prefix)
}

/// One route. A route without a valid `service` is an error of its own,
/// returned; its other keys' errors are reported.
fn route(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<RawRoute>,
    named: &[&str],
) -> Result<RouteConfig, ConfigError> {
    let span = raw.span();
    let raw = raw.get_ref();
    let service_key = key.key("service");
    let service = required(
        source,
        &service_key,
        raw.service.as_ref(),
        span,
        "service = \"NAME\", naming a [services.NAME] table",
    )?;
    let service = check(source, &service_key, service, |name| {
        // With no service at all, that error is enough.
        if named.is_empty() || named.contains(&name.as_str()) {
            Ok(name.clone())
        } else {
            Err(format!(
                "no such service: expected {}",
                one_of(named.iter())
            ))
        }
    })?;
    Ok(RouteConfig {
        path_prefix: field(
            source,
            &key.key("path_prefix"),
            raw.path_prefix.as_ref(),
            "/".to_owned(),
            |prefix| {
                if prefix.starts_with('/') {
                    Ok(prefix.clone())
                } else {
                    Err("expected a path prefix starting with '/', like \"/api/\"".to_owned())
                }
            },
        ),
        host: field(source, &key.key("host"), raw.host.as_ref(), None, |host| {
            route_host(host).map(Some)
        }),
        service,
        strip_prefix: field(
            source,
            &key.key("strip_prefix"),
            raw.strip_prefix.as_ref(),
            false,
            flag,
        ),
        max_body: field(
            source,
            &key.key("max_body"),
            raw.max_body.as_ref(),
            None,
            |value| size(value).map(Some),
        ),
    })
}

/// A host to match, in lower case: a name, an IPv4 address or a bracketed
/// IPv6 address, without a port (requests' ports are ignored).
fn route_host(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected a host name without a port, like \"api.example.com\"";
    if let Some(inner) = text.strip_prefix('[') {
        let valid = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        return if valid {
            Ok(text.to_ascii_lowercase())
        } else {
            Err(EXPECTED.to_owned())
        };
    }
    if text.contains(':') {
        return Err(format!(
            "a port never matches, since ports are ignored: {EXPECTED}"
        ));
    }
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '/' | '?' | '#' | '@'));
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(EXPECTED.to_owned())
    }
}
