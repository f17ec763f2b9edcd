//! `shardproxy cache purge --config FILE URL...` (SPEC §9.6 from a shell):
//! each URL's purge is sent to this host's admin API (`server.admin`),
//! which purges its own cache and sends the purge on to every
//! `[cache_peers]` peer, and its JSON answer is printed, one line per URL.
//!
//! Why through the admin API rather than to each peer from here: the
//! answer (and so what is printed) is the one an operator gets with
//! `curl`, and the fan-out, the peers' SRV lookup and the skipping of this
//! host are done in one place.
//!
//! A URL is `http://HOST/PATH?QUERY` (the objects of that host, whatever
//! its port) or `/PATH?QUERY` (on every host); its service is the one the
//! config's routes send it to, or `--service`. Exit 0 when every URL was
//! purged here and on every peer, else 1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use http::Uri;

use super::{load_config, print};
use crate::admin::peers::{send_purge, Answer};
use crate::config::Config;
use crate::error::error_chain;
use crate::route::Router;

/// What the admin API is given beyond the peers' own timeout: its DNS
/// lookup of SRV peers (two tries of 2 s) and its own purge.
const ADMIN_MARGIN: Duration = Duration::from_secs(5);

/// How one URL is purged: the admin API's query parameters.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    service: String,
    /// Lower case, without the port; `None`: every host.
    host: Option<String>,
    /// Path and query, as clients send them.
    path: String,
}

/// What each argument of `shardproxy cache purge` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    /// A URL: its object.
    Path,
    /// A URL: the objects whose path and query start with its (`--prefix`).
    Prefix,
    /// A tag: the objects tagged with it (`--tag`).
    Tag,
}

/// `shardproxy cache purge`; `soft` marks the objects stale instead.
pub(super) async fn run(
    config: &Path,
    which: Which,
    soft: bool,
    service: Option<&str>,
    urls: &[String],
) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(admin) = admin_address(config.server.admin) else {
        eprintln!(
            "server.admin = \"{}\" has port 0: there is no admin API to send the purge to",
            config.server.admin
        );
        return ExitCode::FAILURE;
    };
    let timeout = config
        .cache_peers
        .as_ref()
        .map_or(Duration::ZERO, |peers| peers.timeout)
        + ADMIN_MARGIN;
    let token = config.server.admin_token.as_ref();
    let mut all_purged = true;
    let mut printed = String::new();
    for url in urls {
        let target = match (which, service) {
            (Which::Tag, Some(service)) => tagged(&config, url, service),
            _ => target(&config, url, service),
        };
        let target = match target {
            Ok(target) => target,
            Err(problem) => {
                eprintln!("{url}: {problem}");
                all_purged = false;
                continue;
            }
        };
        match send_purge(admin, &target.query(which, soft), token, false, timeout).await {
            Ok(answer) => {
                if !everywhere(&answer) {
                    all_purged = false;
                }
                printed.push_str(String::from_utf8_lossy(&answer.body).trim_end());
                printed.push('\n');
            }
            Err(error) => {
                eprintln!(
                    "{url}: no answer from the admin API at {admin}: {}",
                    error_chain(&error)
                );
                all_purged = false;
            }
        }
    }
    let printed = print(&printed);
    if all_purged {
        printed
    } else {
        ExitCode::FAILURE
    }
}

/// Where to reach this host's admin API: `admin`, or the loopback address
/// when it is bound to every address. `None` for port 0.
fn admin_address(admin: SocketAddr) -> Option<SocketAddr> {
    if admin.port() == 0 {
        return None;
    }
    let ip = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, admin.port()))
}

/// Whether `answer` says the purge was done here and on every peer.
fn everywhere(answer: &Answer) -> bool {
    if answer.purged().is_err() {
        return false;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return false;
    };
    json["peers"].as_array().is_none_or(|peers| {
        peers
            .iter()
            .all(|peer| peer["ok"] == serde_json::Value::Bool(true))
    })
}

/// The purge of `url`: its service (`service`, or the one the routes send
/// it to), host and path.
fn target(config: &Config, url: &str, service: Option<&str>) -> Result<Target, String> {
    const EXPECTED: &str =
        "expected http://HOST/PATH (that host's objects) or /PATH (on every host)";
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("not a URL ({error}): {EXPECTED}"))?;
    if uri.scheme().is_none() && !url.starts_with('/') {
        return Err(EXPECTED.to_owned());
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned());
    let service = match service {
        Some(service) => known(config, service)?,
        None => routed(config, &uri)?,
    };
    Ok(Target {
        service,
        host: uri.host().map(str::to_ascii_lowercase),
        path,
    })
}

/// The purge of the objects of `service` tagged `tag`, on every host.
fn tagged(config: &Config, tag: &str, service: &str) -> Result<Target, String> {
    Ok(Target {
        service: known(config, service)?,
        host: None,
        path: tag.to_owned(),
    })
}

/// `service`, if the config has it.
fn known(config: &Config, service: &str) -> Result<String, String> {
    match config.service(service) {
        Some(_) => Ok(service.to_owned()),
        None => Err(format!(
            "no service {service:?} in the config (services: {})",
            config.service_names().join(", ")
        )),
    }
}

/// The service the config's routes send a request for `uri` to.
fn routed(config: &Config, uri: &Uri) -> Result<String, String> {
    let names = config.service_names();
    let router = Router::new(&config.routes, |name| {
        names.iter().position(|known| *known == name)
    });
    let (parts, ()) = http::Request::get(uri.clone())
        .body(())
        .map_err(|error| error.to_string())?
        .into_parts();
    router
        .route(&parts)
        .and_then(|matched| names.get(matched.service))
        .map(|name| (*name).to_owned())
        .ok_or_else(|| {
            "no route of the config matches it: name its service with --service".to_owned()
        })
}

// === impl Target ===

impl Target {
    /// The admin API's query: `service`, `path` (or `prefix`, or `tag`),
    /// `host`, and `soft`.
    fn query(&self, which: Which, soft: bool) -> String {
        let which = match which {
            Which::Path => "path",
            Which::Prefix => "prefix",
            Which::Tag => "tag",
        };
        let mut query = format!(
            "service={}&{which}={}",
            component(&self.service),
            component(&self.path)
        );
        if let Some(host) = &self.host {
            query.push_str(&format!("&host={}", component(host)));
        }
        if soft {
            query.push_str("&soft=true");
        }
        query
    }
}

/// `text` as a query component: every byte but the unreserved ones
/// (RFC 3986 §2.3) percent-encoded, so that the admin API decodes exactly
/// `text`.
fn component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[services.www]
instances = [{ host = "a.example", addr = "127.0.0.1:9" }]

[services.api]
instances = [{ host = "b.example", addr = "127.0.0.1:10" }]

[[routes]]
host = "api.example.com"
service = "api"

[[routes]]
service = "www"
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG, "config.toml").unwrap()
    }

    #[test]
    fn a_url_is_purged_on_the_service_its_route_names() {
        let config = config();
        assert_eq!(
            target(&config, "http://API.example.com:8080/v1/x?a=1", None).unwrap(),
            Target {
                service: "api".into(),
                host: Some("api.example.com".into()),
                path: "/v1/x?a=1".into(),
            }
        );
        assert_eq!(
            target(&config, "/v1/x", None).unwrap(),
            Target {
                service: "www".into(),
                host: None,
                path: "/v1/x".into(),
            }
        );
        assert_eq!(
            target(&config, "/v1/x", Some("api")).unwrap().service,
            "api"
        );
        assert!(target(&config, "/x", Some("nope"))
            .unwrap_err()
            .starts_with("no service \"nope\""));
        assert!(target(&config, "example.com/x", None).is_err());
    }

    #[test]
    fn the_query_says_exactly_the_target() {
        let target = Target {
            service: "www".into(),
            host: Some("example.com".into()),
            path: "/a b?x=1&y=%2F".into(),
        };
        assert_eq!(
            target.query(Which::Path, false),
            "service=www&path=%2Fa%20b%3Fx%3D1%26y%3D%252F&host=example.com"
        );
        assert!(target.query(Which::Prefix, false).contains("&prefix=%2Fa"));
        let tag = tagged(&config(), "product 42", "www").unwrap();
        assert_eq!(
            tag.query(Which::Tag, true),
            "service=www&tag=product%2042&soft=true"
        );
        assert!(tagged(&config(), "t", "nope").is_err());
    }

    #[test]
    fn the_admin_api_is_reached_on_loopback_when_bound_everywhere() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(
            admin_address(addr("0.0.0.0:9090")),
            Some(addr("127.0.0.1:9090"))
        );
        assert_eq!(admin_address(addr("[::]:9090")), Some(addr("[::1]:9090")));
        assert_eq!(
            admin_address(addr("10.0.0.1:9090")),
            Some(addr("10.0.0.1:9090"))
        );
        assert_eq!(admin_address(addr("127.0.0.1:0")), None);
    }
}
