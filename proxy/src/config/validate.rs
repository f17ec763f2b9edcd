//! The second stage: raw values to typed ones, with every default and every
//! check.
//!
//! Each key goes through `check::field` (optional, with a default) or
//! `check::check` (present), which turn a failed check into a
//! [`ConfigError`] naming the key and quoting the value. Checks between
//! keys (a route's service, `try_timeout` against `deadline`) blame the key
//! the user wrote. `[services.NAME]` is in the `service` module.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::check::{
    check, duration, field, flag, int_in, one_of, positive_duration, required, size, size_at_least,
    socket_addr, span_of, span_or_nowhere,
};
use super::duration::format_duration;
use super::error::{At, ConfigError, KeyPath, Source};
use super::locate;
use super::raw::{RawConfig, RawDns, RawLog, RawRoute, RawServer};
use super::service::services;
use super::{
    Config, DnsConfig, DnsServers, LogConfig, LogFormat, RouteConfig, ServerConfig, ServiceConfig,
};

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

/// Parses and validates a whole document.
pub(super) fn load(source: &Source<'_>) -> Result<Config, ConfigError> {
    let document =
        DeTable::parse(source.text).map_err(|error| locate::syntax_error(source, &error))?;
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(document.clone()))
        .map_err(|error| locate::serde_error(source, document.get_ref(), &error))?;
    // In the order of a typical file, so the first error reported is the
    // first one met reading it.
    let server = server(source, raw.server.as_ref())?;
    let dns = dns(source, raw.dns.as_ref())?;
    let log = log(source, raw.log.as_ref())?;
    let services = services(source, raw.services.as_ref())?;
    let routes = routes(source, raw.routes.as_ref(), &services)?;
    Ok(Config {
        server,
        dns,
        log,
        services,
        routes,
    })
}

// === [log] ===

fn log(source: &Source<'_>, raw: Option<&Spanned<RawLog>>) -> Result<LogConfig, ConfigError> {
    let defaults = LogConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("log");
    Ok(LogConfig {
        level: field(
            source,
            &key.key("level"),
            raw.level.as_ref(),
            defaults.level,
            |level: &String| {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map(|_| level.clone())
                    .map_err(|error| format!("not a log filter ({error}): expected e.g. info, warn, shardproxy=debug"))
            },
        )?,
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
        )?,
        access_log: field(
            source,
            &key.key("access_log"),
            raw.access_log.as_ref(),
            defaults.access_log,
            flag,
        )?,
        access_log_file: raw
            .access_log_file
            .as_ref()
            .map(|path| {
                check(
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
                )
            })
            .transpose()?,
    })
}

// === [server] ===

fn server(
    source: &Source<'_>,
    raw: Option<&Spanned<RawServer>>,
) -> Result<ServerConfig, ConfigError> {
    let defaults = ServerConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("server");
    let (listen_key, admin_key) = (key.key("listen"), key.key("admin"));
    let listen = field(
        source,
        &listen_key,
        raw.listen.as_ref(),
        defaults.listen,
        |text| socket_addr(text),
    )?;
    let admin = field(
        source,
        &admin_key,
        raw.admin.as_ref(),
        defaults.admin,
        |text| socket_addr(text),
    )?;
    if listen == admin && listen.port() != 0 {
        return Err(match (&raw.admin, &raw.listen) {
            (Some(given), _) => source.error(
                &admin_key,
                At::Value(given.span()),
                format!("must differ from {listen_key}"),
            ),
            (None, given) => source.error(
                &listen_key,
                span_or_nowhere(span_of(given.as_ref())),
                format!("must differ from {admin_key} ({admin} by default)"),
            ),
        });
    }
    let max_header_size = field(
        source,
        &key.key("max_header_size"),
        raw.max_header_size.as_ref(),
        defaults.max_header_size,
        size_at_least(MIN_MAX_HEADER_SIZE),
    )?;
    let max_headers = field(
        source,
        &key.key("max_headers"),
        raw.max_headers.as_ref(),
        defaults.max_headers,
        int_in(1, MAX_MAX_HEADERS),
    )?;
    let header_read_timeout = field(
        source,
        &key.key("header_read_timeout"),
        raw.header_read_timeout.as_ref(),
        defaults.header_read_timeout,
        positive_duration,
    )?;
    let idle_timeout = field(
        source,
        &key.key("idle_timeout"),
        raw.idle_timeout.as_ref(),
        defaults.idle_timeout,
        positive_duration,
    )?;
    let max_connections = field(
        source,
        &key.key("max_connections"),
        raw.max_connections.as_ref(),
        defaults.max_connections,
        int_in(1, MAX_MAX_CONNECTIONS),
    )?;
    let workers = field(
        source,
        &key.key("workers"),
        raw.workers.as_ref(),
        defaults.workers,
        |number| int_in::<usize>(1, 1024)(number).map(std::num::NonZeroUsize::new),
    )?;
    let drain_timeout = field(
        source,
        &key.key("drain_timeout"),
        raw.drain_timeout.as_ref(),
        defaults.drain_timeout,
        duration,
    )?;
    let send_timeout = field(
        source,
        &key.key("send_timeout"),
        raw.send_timeout.as_ref(),
        defaults.send_timeout,
        positive_duration,
    )?;
    let error_detail = field(
        source,
        &key.key("error_detail"),
        raw.error_detail.as_ref(),
        defaults.error_detail,
        flag,
    )?;
    let admin_token = super::secret::admin_token(
        source,
        &key,
        raw.admin_token.as_ref(),
        raw.admin_token_file.as_ref(),
    )?;
    Ok(ServerConfig {
        listen,
        admin,
        max_header_size,
        max_headers,
        header_read_timeout,
        idle_timeout,
        max_connections,
        workers,
        drain_timeout,
        send_timeout,
        error_detail,
        admin_token,
    })
}

// === [dns] ===

fn dns(source: &Source<'_>, raw: Option<&Spanned<RawDns>>) -> Result<DnsConfig, ConfigError> {
    let defaults = DnsConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let raw = raw.get_ref();
    let key = KeyPath::root().key("dns");
    let servers = match &raw.servers {
        None => DnsServers::System,
        Some(list) => {
            let servers_key = key.key("servers");
            if list.get_ref().is_empty() {
                return Err(source.error(
                    &servers_key,
                    At::Value(list.span()),
                    "expected at least one server: leave servers out to use the system resolver",
                ));
            }
            let servers = list
                .get_ref()
                .iter()
                .enumerate()
                .map(|(index, server)| {
                    check(source, &servers_key.index(index), server, |text| {
                        dns_server(text)
                    })
                })
                .collect::<Result<_, _>>()?;
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
    )?;
    Ok(DnsConfig { servers, refresh })
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

fn routes(
    source: &Source<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawRoute>>>>,
    services: &BTreeMap<String, ServiceConfig>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let key = KeyPath::root().key("routes");
    let Some(raw) = raw else {
        return Err(source.error(
            &key,
            At::Nowhere,
            "missing: expected at least one [[routes]] table, like [[routes]] path_prefix = \"/\" service = \"frobnicator\"",
        ));
    };
    if raw.get_ref().is_empty() {
        return Err(source.error(&key, At::Value(raw.span()), "expected at least one route"));
    }
    raw.get_ref()
        .iter()
        .enumerate()
        .map(|(index, route)| self::route(source, &key.index(index), route, services))
        .collect()
}

fn route(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<RawRoute>,
    services: &BTreeMap<String, ServiceConfig>,
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
        )?,
        host: field(source, &key.key("host"), raw.host.as_ref(), None, |host| {
            route_host(host).map(Some)
        })?,
        service: check(source, &service_key, service, |name| {
            if services.contains_key(name) {
                Ok(name.clone())
            } else {
                Err(format!(
                    "no such service: expected {}",
                    one_of(services.keys())
                ))
            }
        })?,
        strip_prefix: field(
            source,
            &key.key("strip_prefix"),
            raw.strip_prefix.as_ref(),
            false,
            flag,
        )?,
        max_body: field(
            source,
            &key.key("max_body"),
            raw.max_body.as_ref(),
            None,
            |value| size(value).map(Some),
        )?,
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
