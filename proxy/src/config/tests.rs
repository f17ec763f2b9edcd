//! Tests of the whole loader: defaults, every kind of error with its exact
//! message (file, line:column, key, value, expectation), and the example
//! config at the root of the repository.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Redundancy, Replication, Token};

use super::*;

/// A config that sets nothing it does not have to.
const MINIMAL: &str = r#"[services.frob]
srv = "_frob._http.example.com"

[[routes]]
service = "frob"
"#;

fn load(text: &str) -> Config {
    match Config::from_toml(text, "config.toml") {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

/// The first error of `text`: most tests give one bad key, in fragments
/// that lack the services and routes the loader also reports missing.
fn error(text: &str) -> String {
    Config::from_toml(text, "config.toml")
        .unwrap_err()
        .first()
        .to_string()
}

/// Every error of `text`, in order.
fn errors(text: &str) -> Vec<String> {
    Config::from_toml(text, "config.toml")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// `MINIMAL` with `lines` added to its service table (from line 3 on).
fn service_error(lines: &str) -> String {
    error(&MINIMAL.replacen("\n\n", &format!("\n{lines}\n\n"), 1))
}

fn frob(config: &Config) -> &ServiceConfig {
    config.service("frob").unwrap()
}

// === defaults ===

#[test]
fn defaults() {
    let config = load(MINIMAL);
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.server.admin,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.max_header_size, 32 * 1024);
    assert_eq!(config.server.max_headers, 100);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.server.max_connections, 10_000);
    assert!(!config.server.proxy_protocol);
    assert_eq!(config.dns.servers, DnsServers::System);
    assert_eq!(config.dns_servers(), None);
    assert_eq!(config.dns.refresh, Duration::from_secs(30));
    assert_eq!(config.service_names(), ["frob"]);

    let service = frob(&config);
    assert_eq!(service.name, "frob");
    assert_eq!(
        service.discovery,
        Discovery::Dns {
            srv: "_frob._http.example.com".into(),
            tokens: TokenSource::Dns,
            replication: None,
        }
    );
    assert_eq!(service.balance, Balance::Ring);
    assert_eq!(service.key, KeySource::Path);
    assert_eq!(service.virtual_nodes.get(), 64);
    assert_eq!(service.transition_grace, Duration::ZERO);
    assert_eq!(service.writes, Writes::Primary);
    assert_eq!(service.write_quorum, None);
    assert_eq!(service.max_body, 1 << 20);
    assert_eq!(service.retry_on, [502, 503, 504]);
    assert_eq!(service.try_timeout, Duration::from_secs(5));
    assert_eq!(service.deadline, Duration::from_secs(15));
    assert_eq!(service.retry_budget, 0.2);
    assert_eq!(service.retry_min_per_second, 10);
    assert_eq!(service.retry_body_limit, 64 << 10);
    assert_eq!(service.max_concurrency, 1024);
    assert_eq!(service.upstream_max_idle, 64);
    assert_eq!(service.upstream_idle_timeout, Duration::from_secs(90));

    let cache = &service.cache;
    assert_eq!(cache, &CacheConfig::default());
    assert!(!cache.enabled);
    assert_eq!(cache.max_size, 256 << 20);
    assert_eq!(cache.max_object_size, 8 << 20);
    assert_eq!(cache.default_ttl, Duration::ZERO);
    assert_eq!(cache.max_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(cache.grace, Duration::ZERO);
    assert!(!cache.authorized);

    assert_eq!(
        config.routes,
        [RouteConfig {
            path_prefix: "/".into(),
            host: None,
            service: "frob".into(),
            strip_prefix: false,
            max_body: None,
        }]
    );
}

#[test]
fn empty_tables_take_defaults() {
    let config = load(&format!(
        "[server]\n[dns]\n{}[services.frob.cache]\n",
        MINIMAL
    ));
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.dns, DnsConfig::default());
    assert_eq!(frob(&config).cache, CacheConfig::default());
}

// === every key, set ===

#[test]
fn every_key_is_read() {
    let config = load(
        r#"
[server]
listen = "[::1]:80"
admin = "0.0.0.0:9999"
max_header_size = "64KiB"
max_headers = 50
header_read_timeout = "5s"
idle_timeout = "2m"
max_connections = 100
workers = 2
drain_timeout = "1s"
proxy_protocol = true

[dns]
servers = ["10.0.0.2", "10.0.0.3:5353", "[::1]:53", "::1", "[fe80::1]"]
refresh = "1m30s"

[services.frob]
srv = "_frob._http.example.com."
balance = "srv"
key = "regex:^/u/([^/]+)"
tokens = "derived"
virtual_nodes = 8
transition_grace = "2m"
writes = "primary"
max_body = "2MB"
retry_on = [500, 503]
try_timeout = "250ms"
deadline = "1s"
retry_budget = 0
retry_min_per_second = 0
retry_body_limit = "1KB"
max_concurrency = 7
upstream_max_idle = 0
upstream_idle_timeout = "5s"

[services.frob.cache]
enabled = true
max_size = "1GiB"
max_object_size = "1GiB"
default_ttl = "10s"
max_ttl = "1h"
grace = "30s"
authorized = true
tag_header = "X-Cache-Tags"
expose_tags = true
targeted = ["Acme-Cache-Control", "CDN-Cache-Control"]

[[routes]]
host = "API.Example.com"
path_prefix = "/api/"
service = "frob"
strip_prefix = true
max_body = "4MiB"
"#,
    );
    assert_eq!(config.server.listen, "[::1]:80".parse().unwrap());
    assert_eq!(config.server.admin, "0.0.0.0:9999".parse().unwrap());
    assert_eq!(config.server.max_header_size, 65_536);
    assert_eq!(config.server.max_headers, 50);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(5));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(120));
    assert_eq!(config.server.max_connections, 100);
    assert!(config.server.proxy_protocol);
    let servers: Vec<SocketAddr> = [
        "10.0.0.2:53",
        "10.0.0.3:5353",
        "[::1]:53",
        "[::1]:53",
        "[fe80::1]:53",
    ]
    .iter()
    .map(|text| text.parse().unwrap())
    .collect();
    assert_eq!(config.dns.servers, DnsServers::Custom(servers.clone()));
    assert_eq!(config.dns_servers(), Some(&servers[..]));
    assert_eq!(config.dns.refresh, Duration::from_secs(90));

    let service = frob(&config);
    assert_eq!(
        service.discovery,
        Discovery::Dns {
            srv: "_frob._http.example.com.".into(),
            tokens: TokenSource::Derived,
            replication: None,
        }
    );
    assert_eq!(service.balance, Balance::Srv);
    assert_eq!(service.key.to_string(), "regex:^/u/([^/]+)");
    assert_eq!(service.virtual_nodes, NonZeroU32::new(8).unwrap());
    assert_eq!(service.transition_grace, Duration::from_secs(120));
    assert_eq!(service.max_body, 2_000_000);
    assert_eq!(service.retry_on, [500, 503]);
    assert_eq!(service.try_timeout, Duration::from_millis(250));
    assert_eq!(service.deadline, Duration::from_secs(1));
    assert_eq!(service.retry_budget, 0.0);
    assert_eq!(service.retry_min_per_second, 0);
    assert_eq!(service.retry_body_limit, 1_000);
    assert_eq!(service.max_concurrency, 7);
    assert_eq!(service.upstream_max_idle, 0);
    assert_eq!(service.upstream_idle_timeout, Duration::from_secs(5));
    assert_eq!(
        service.cache,
        CacheConfig {
            enabled: true,
            max_size: 1 << 30,
            max_object_size: 1 << 30,
            default_ttl: Duration::from_secs(10),
            max_ttl: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            authorized: true,
            tag_header: HeaderName::from_static("x-cache-tags"),
            expose_tags: true,
            targeted: vec![
                HeaderName::from_static("acme-cache-control"),
                HeaderName::from_static("cdn-cache-control"),
            ],
        }
    );
    assert_eq!(
        config.routes,
        [RouteConfig {
            path_prefix: "/api/".into(),
            host: Some("api.example.com".into()),
            service: "frob".into(),
            strip_prefix: true,
            max_body: Some(4 << 20),
        }]
    );
}

#[test]
fn static_instances() {
    let config = load(
        r#"
[services.frob]
instances = [
    { host = "Frob1.Example.com.", addr = "127.0.0.1:8081", tokens = ["40", "C0"] },
    { host = "frob2.example.com", addr = "[::1]:8082" },
]
slaves = 1
redundancy = "host"
virtual_nodes = 3
writes = "all"
write_quorum = 2

[[routes]]
service = "frob"
"#,
    );
    let service = frob(&config);
    let Discovery::Static {
        members,
        replication,
    } = &service.discovery
    else {
        panic!("not static: {:?}", service.discovery);
    };
    assert_eq!(
        *replication,
        Replication {
            slaves: 1,
            redundancy: Redundancy::Host
        }
    );
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].name.as_str(), "frob1.example.com:8081");
    assert_eq!(members[0].addr, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(members[0].tokens, [Token(0x40 << 120), Token(0xc0 << 120)]);
    let frob2 = InstanceName::new("frob2.example.com", 8082).unwrap();
    assert_eq!(members[1].name, frob2);
    assert_eq!(members[1].addr, "[::1]:8082".parse().unwrap());
    assert_eq!(members[1].tokens, derived_tokens(&frob2, 3));
    assert_eq!(service.writes, Writes::All);
    assert_eq!(service.write_quorum, NonZeroU32::new(2));
}

#[test]
fn static_instances_with_derived_tokens() {
    let config = load(
        r#"
[services.frob]
instances = [{ host = "a", addr = "127.0.0.1:1" }]
tokens = "derived"

[[routes]]
service = "frob"
"#,
    );
    let Discovery::Static {
        members,
        replication,
    } = &frob(&config).discovery
    else {
        panic!("not static");
    };
    assert_eq!(*replication, Replication::default());
    let name = InstanceName::new("a", 1).unwrap();
    assert_eq!(members[0].tokens, derived_tokens(&name, 64));
}

#[test]
fn key_sources() {
    for (text, expected) in [
        ("path", KeySource::Path),
        ("uri", KeySource::Uri),
        ("header:X-User", KeySource::Header("x-user".into())),
        ("query:id", KeySource::Query("id".into())),
        ("cookie:sid", KeySource::Cookie("sid".into())),
    ] {
        let config = load(&MINIMAL.replacen("\n\n", &format!("\nkey = \"{text}\"\n\n"), 1));
        assert_eq!(frob(&config).key, expected);
    }
    let config = load(&MINIMAL.replacen("\n\n", "\nkey = 'regex:^/(\\d+)'\n\n", 1));
    let KeySource::Regex(regex) = &frob(&config).key else {
        panic!("not a regex");
    };
    assert_eq!(&regex.captures("/42/x").unwrap()[1], "42");
}

#[test]
fn routes_keep_their_order() {
    let config = load(
        r#"
[services.a]
srv = "a.example.com"
[services.b]
srv = "b.example.com"

[[routes]]
path_prefix = "/b/"
service = "b"
[[routes]]
host = "[::1]"
service = "a"
"#,
    );
    let services: Vec<&str> = config
        .routes
        .iter()
        .map(|route| route.service.as_str())
        .collect();
    assert_eq!(services, ["b", "a"]);
    assert_eq!(config.routes[1].host.as_deref(), Some("[::1]"));
    assert_eq!(config.service_names(), ["a", "b"]);
}

// === errors: syntax ===

#[test]
fn syntax_error_unquoted_value() {
    assert_eq!(
        error("[server]\nlisten = 127.0.0.1:8080\n"),
        "config.toml:2:15: server.listen: invalid TOML: invalid float, expected nothing"
    );
}

#[test]
fn syntax_error_unclosed_string() {
    assert_eq!(
        error("[server]\nlisten = \"127.0.0.1:8080\nadmin = \"127.0.0.1:9090\"\n"),
        "config.toml:2:25: server.listen: invalid TOML: invalid basic string, expected `\"`"
    );
}

#[test]
fn syntax_error_duplicate_key() {
    assert_eq!(
        error("[server]\nlisten = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\nlisten = \"127.0.0.1:3\"\n"),
        "config.toml:4:1: server.listen: invalid TOML: duplicate key"
    );
}

#[test]
fn syntax_error_unclosed_header() {
    assert_eq!(
        error("[services.frob\nsrv = \"x\"\n"),
        "config.toml:1:15: services.frob: invalid TOML: unclosed table, expected `]`"
    );
}

#[test]
fn syntax_error_in_a_multi_line_array() {
    assert_eq!(
        error("[dns]\nservers = [\n  \"10.0.0.1\",\n  10.0.0.2,\n]\n"),
        "config.toml:4:7: dns.servers[1]: invalid TOML: invalid float, expected nothing"
    );
}

// === errors: serde (unknown keys, wrong types) ===

#[test]
fn unknown_keys() {
    assert_eq!(
        error("[sever]\nlisten = \"127.0.0.1:1\"\n"),
        "config.toml:1:2: sever: unknown field `sever`, expected one of `server`, `dns`, `log`, `services`, `routes`, `cache_peers`"
    );
    assert_eq!(
        error("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"127.0.0.1:2\"\n"),
        "config.toml:3:1: server.lisen: unknown field `lisen`, expected one of `listen`, `admin`, `max_header_size`, `max_headers`, `header_read_timeout`, `idle_timeout`, `max_connections`, `workers`, `drain_timeout`, `send_timeout`, `error_detail`, `proxy_protocol`, `admin_token`, `admin_token_file`, `tls`"
    );
    assert!(service_error("virtual_node = 3").starts_with(
        "config.toml:3:1: services.frob.virtual_node: unknown field `virtual_node`, expected one of `srv`, "
    ));
    assert_eq!(
        error(&format!("{MINIMAL}[services.frob.cache]\nenable = true\n")),
        "config.toml:7:1: services.frob.cache.enable: unknown field `enable`, expected one of `enabled`, `max_size`, `max_object_size`, `default_ttl`, `max_ttl`, `grace`, `authorized`, `tag_header`, `expose_tags`, `targeted`"
    );
    assert_eq!(
        error(&format!("{MINIMAL}path = \"/\"\n")),
        "config.toml:6:1: routes[0].path: unknown field `path`, expected one of `path_prefix`, `host`, `service`, `strip_prefix`, `max_body`"
    );
    // The misspelt key is reported, and so is the key it failed to give.
    assert_eq!(
        errors("[services.frob]\ninstances = [{ host = \"a\", adr = \"127.0.0.1:1\" }]\n[[routes]]\nservice = \"frob\"\n"),
        [
            "config.toml:2:14: services.frob.instances[0].addr: missing: expected addr = \"127.0.0.1:8081\"",
            "config.toml:2:28: services.frob.instances[0].adr: unknown field `adr`, expected one of `host`, `addr`, `tokens`",
        ]
    );
}

#[test]
fn unknown_key_in_second_route() {
    assert_eq!(
        errors(&format!("{MINIMAL}[[routes]]\nservice = \"frob\"\nstrip = true\n")),
        [
            "config.toml:6:1: routes[1].path_prefix: never matches: routes[0] (line 4, path_prefix \"/\", any host) comes first and matches every request this route would",
            "config.toml:8:1: routes[1].strip: unknown field `strip`, expected one of `path_prefix`, `host`, `service`, `strip_prefix`, `max_body`",
        ]
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        error("[server]\nlisten = 8080\n"),
        "config.toml:2:10: server.listen = 8080: invalid type: integer `8080`, expected a string"
    );
    assert_eq!(
        service_error("virtual_nodes = \"64\""),
        "config.toml:3:17: services.frob.virtual_nodes = \"64\": invalid type: string \"64\", expected i64"
    );
    assert_eq!(
        service_error("retry_on = [502, \"503\"]"),
        "config.toml:3:18: services.frob.retry_on[1] = \"503\": invalid type: string \"503\", expected i64"
    );
    assert_eq!(
        error("server = \"127.0.0.1:1\"\n"),
        "config.toml:1:10: server = \"127.0.0.1:1\": invalid type: string \"127.0.0.1:1\", expected struct RawServer"
    );
    assert_eq!(
        service_error("instances = [{ host = \"a\", addr = \"127.0.0.1:1\", tokens = [40] }]"),
        "config.toml:3:60: services.frob.instances[0].tokens[0] = 40: invalid type: integer `40`, expected a string"
    );
}

// === errors: values ===

#[test]
fn virtual_nodes_bounds() {
    // The example of STYLE.md, at line 7.
    let text = "[server]\n\n[dns]\n\n[services.frob]\nsrv = \"_frob._http.example.com\"\nvirtual_nodes = 0\n\n[[routes]]\nservice = \"frob\"\n";
    assert_eq!(
        error(text),
        "config.toml:7:17: services.frob.virtual_nodes = 0: must be at least 1"
    );
    let parsed = Config::from_toml(text, "config.toml").unwrap_err();
    assert_eq!(parsed.len(), 1);
    let parsed = parsed.first();
    assert_eq!(parsed.key(), Some("services.frob.virtual_nodes"));
    assert_eq!(
        parsed.position(),
        Some(Position {
            line: 7,
            column: 17
        })
    );
    let ConfigError::Key(details) = parsed else {
        panic!("not a key error");
    };
    assert_eq!(details.value.as_deref(), Some("0"));
    assert_eq!(details.problem, "must be at least 1");

    assert_eq!(
        service_error("virtual_nodes = -1"),
        "config.toml:3:17: services.frob.virtual_nodes = -1: must be at least 1"
    );
    assert_eq!(
        service_error("virtual_nodes = 4097"),
        "config.toml:3:17: services.frob.virtual_nodes = 4097: must be at most 4096"
    );
}

#[test]
fn durations_in_the_config() {
    assert_eq!(
        error("[dns]\nrefresh = 30\n"),
        "config.toml:2:11: dns.refresh = 30: a bare number has no unit: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = \"30\"\n"),
        "config.toml:2:11: dns.refresh = \"30\": 30 has no unit: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = \"\"\n"),
        "config.toml:2:11: dns.refresh = \"\": empty: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = \"99999999999999999999h\"\n"),
        "config.toml:2:11: dns.refresh = \"99999999999999999999h\": too large: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = \"1d\"\n"),
        "config.toml:2:11: dns.refresh = \"1d\": unknown unit \"d\": expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = true\n"),
        "config.toml:2:11: dns.refresh = true: found a boolean: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error("[dns]\nrefresh = \"500ms\"\n"),
        "config.toml:2:11: dns.refresh = \"500ms\": must be at least 1s"
    );
    assert_eq!(
        service_error("try_timeout = \"0s\""),
        "config.toml:3:15: services.frob.try_timeout = \"0s\": must be more than 0s"
    );
}

#[test]
fn sizes_in_the_config() {
    assert_eq!(
        service_error("max_body = \"1024\""),
        "config.toml:3:12: services.frob.max_body = \"1024\": 1024 has no unit: expected a size: a whole number with a unit B, KiB, MiB, GiB, KB, MB or GB, like \"64KiB\""
    );
    assert_eq!(
        service_error("max_body = 1024"),
        "config.toml:3:12: services.frob.max_body = 1024: a bare number has no unit: expected a size: a whole number with a unit B, KiB, MiB, GiB, KB, MB or GB, like \"64KiB\""
    );
    assert_eq!(
        error("[server]\nmax_header_size = \"512B\"\n"),
        "config.toml:2:19: server.max_header_size = \"512B\": must be at least 1KiB"
    );
}

#[test]
fn key_source_errors() {
    assert_eq!(
        service_error("key = \"regex:^/u/[^/]+\""),
        "config.toml:3:7: services.frob.key = \"regex:^/u/[^/]+\": the pattern has no capture group: the key is the first group, like regex:^/users/([^/]+)"
    );
    assert!(service_error("key = \"regex:(\"").starts_with(
        "config.toml:3:7: services.frob.key = \"regex:(\": the pattern does not compile: "
    ));
    assert_eq!(
        service_error("key = \"header:X User\""),
        "config.toml:3:7: services.frob.key = \"header:X User\": \"X User\" is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
    );
    assert_eq!(
        service_error("key = \"host\""),
        "config.toml:3:7: services.frob.key = \"host\": expected path, uri, header:NAME, query:NAME, cookie:NAME or regex:PATTERN"
    );
}

#[test]
fn choices() {
    assert_eq!(
        service_error("balance = \"random\""),
        "config.toml:3:11: services.frob.balance = \"random\": expected \"ring\" or \"srv\""
    );
    assert_eq!(
        service_error("tokens = \"txt\""),
        "config.toml:3:10: services.frob.tokens = \"txt\": expected \"dns\" or \"derived\""
    );
    assert_eq!(
        service_error("writes = \"All\""),
        "config.toml:3:10: services.frob.writes = \"All\": expected \"primary\" or \"all\""
    );
}

#[test]
fn srv_and_instances() {
    assert_eq!(
        service_error("instances = [{ host = \"a\", addr = \"127.0.0.1:1\" }]"),
        "config.toml:3:13: services.frob.instances: srv and instances are both given: a service's instances come from DNS (srv) or from this list, not both"
    );
    assert_eq!(
        error("[services.frob]\nbalance = \"ring\"\n\n[[routes]]\nservice = \"frob\"\n"),
        "config.toml:1:1: services.frob: missing srv or instances: expected srv = \"_name._http.example.com\" or instances = [{ host = \"...\", addr = \"ip:port\" }]"
    );
    assert_eq!(
        service_error("balance = \"srv\"\nslaves = 2"),
        "config.toml:4:10: services.frob.slaves = 2: slaves needs balance = \"ring\": balance = \"srv\" has no preference lists"
    );
    assert_eq!(
        error("[services.frob]\nsrv = \"a b\"\n[[routes]]\nservice = \"frob\"\n"),
        "config.toml:2:7: services.frob.srv = \"a b\": expected a DNS name, like \"_frobnicator._http.example.com\""
    );
}

/// A service with static instances, then `lines`, then a route.
fn static_error(instances: &str, lines: &str) -> String {
    error(&format!(
        "[services.frob]\ninstances = [{instances}]\n{lines}\n[[routes]]\nservice = \"frob\"\n"
    ))
}

#[test]
fn static_instance_errors() {
    let one = "{ host = \"a\", addr = \"127.0.0.1:1\" }";
    assert_eq!(
        static_error(one, "balance = \"srv\""),
        "config.toml:3:11: services.frob.balance = \"srv\": balance = \"srv\" needs srv: static instances have no SRV priority and weight"
    );
    assert_eq!(
        static_error(one, "tokens = \"dns\""),
        "config.toml:3:10: services.frob.tokens = \"dns\": static instances have no DNS tokens: list tokens per instance (or leave them out to derive them), or use \"derived\""
    );
    assert_eq!(
        static_error(one, "slaves = 256"),
        "config.toml:3:10: services.frob.slaves = 256: must be at most 255"
    );
    assert_eq!(
        static_error(one, "redundancy = \"rack\""),
        "config.toml:3:14: services.frob.redundancy = \"rack\": expected \"none\" or \"host\""
    );
    assert_eq!(
        static_error("", ""),
        "config.toml:2:13: services.frob.instances = []: expected at least one instance"
    );
    assert_eq!(
        static_error("{ addr = \"127.0.0.1:1\" }", ""),
        "config.toml:2:14: services.frob.instances[0].host: missing: expected host = \"frob1.example.com\""
    );
    assert_eq!(
        static_error("{ host = \"a\" }", ""),
        "config.toml:2:14: services.frob.instances[0].addr: missing: expected addr = \"127.0.0.1:8081\""
    );
    assert_eq!(
        static_error("{ host = \"a\", addr = \"localhost:80\" }", ""),
        "config.toml:2:35: services.frob.instances[0].addr = \"localhost:80\": expected an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\""
    );
    assert_eq!(
        static_error("{ host = \"a\", addr = \"127.0.0.1:0\" }", ""),
        "config.toml:2:35: services.frob.instances[0].addr = \"127.0.0.1:0\": port 0 cannot be connected to: the port is the instance's port"
    );
    assert_eq!(
        static_error("{ host = \"a b\", addr = \"127.0.0.1:1\" }", ""),
        "config.toml:2:23: services.frob.instances[0].host = \"a b\": host name \"a b\" holds white space, a control character or ':': expected a host name"
    );
    assert_eq!(
        static_error(&format!("{one}, {{ host = \"A.\", addr = \"127.0.0.2:1\" }}"), ""),
        "config.toml:2:52: services.frob.instances[1]: a:1 is listed twice (also services.frob.instances[0])"
    );
    assert_eq!(
        static_error("{ host = \"a\", addr = \"127.0.0.1:1\", tokens = [\"40\", \"0x40\"] }", ""),
        "config.toml:2:66: services.frob.instances[0].tokens[1] = \"0x40\": token \"0x40\" has 'x' at offset 1: a token is 1 to 32 hex digits (0-9, a-f, A-F)"
    );
    assert_eq!(
        static_error("{ host = \"a\", addr = \"127.0.0.1:1\", tokens = [] }", ""),
        "config.toml:2:59: services.frob.instances[0].tokens = []: expected at least one token: leave tokens out to derive them"
    );
    assert_eq!(
        static_error("{ host = \"a\", addr = \"127.0.0.1:1\", tokens = [\"40\"] }", "tokens = \"derived\""),
        "config.toml:2:59: services.frob.instances[0].tokens = [\"40\"]: the service says tokens = \"derived\": remove this list, or the service's tokens key"
    );
}

#[test]
fn write_errors() {
    assert_eq!(
        service_error("write_quorum = 2"),
        "config.toml:3:16: services.frob.write_quorum = 2: only with writes = \"all\""
    );
    assert_eq!(
        service_error("writes = \"all\"\nwrite_quorum = 0"),
        "config.toml:4:16: services.frob.write_quorum = 0: must be at least 1"
    );
    assert_eq!(
        service_error("balance = \"srv\"\nwrites = \"all\""),
        "config.toml:4:10: services.frob.writes = \"all\": writes = \"all\" needs balance = \"ring\": SRV balancing has no preference list"
    );
    assert_eq!(
        service_error("read_repair = true"),
        "config.toml:3:15: services.frob.read_repair = true: read_repair = true needs writes = \"all\""
    );
    assert_eq!(
        service_error("writes = \"primary\"\nread_repair = true"),
        "config.toml:4:15: services.frob.read_repair = true: read_repair = true needs writes = \"all\""
    );
    // A bad `writes` is the one error: read_repair is not checked against it.
    assert_eq!(
        errors(&MINIMAL.replacen("\n\n", "\nwrites = \"some\"\nread_repair = true\n\n", 1)).len(),
        1
    );
}

#[test]
fn read_fallback_and_repair() {
    let service = |lines: &str| {
        let config = load(&MINIMAL.replacen("\n\n", &format!("\n{lines}\n\n"), 1));
        let service = frob(&config);
        (service.read_fallback_404, service.read_repair)
    };
    // The fallback follows writes unless given; repair is asked for.
    assert_eq!(service(""), (false, false));
    assert_eq!(service("writes = \"all\""), (true, false));
    assert_eq!(
        service("writes = \"all\"\nread_fallback_404 = false"),
        (false, false)
    );
    assert_eq!(service("read_fallback_404 = true"), (true, false));
    assert_eq!(
        service("writes = \"all\"\nread_repair = true"),
        (true, true)
    );
}

#[test]
fn hot_keys_record() {
    let record = |lines: &str| {
        let config = load(&MINIMAL.replacen("\n\n", &format!("\n{lines}\n\n"), 1));
        frob(&config).hot_keys_record
    };
    // Keys may be personal data: shown only when asked for.
    assert!(!record(""));
    assert!(record("hot_keys_record = true"));
    assert_eq!(
        service_error("hot_keys_record = \"yes\""),
        "config.toml:3:19: services.frob.hot_keys_record = \"yes\": invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn retry_errors() {
    assert_eq!(
        service_error("retry_on = [502, 600]"),
        "config.toml:3:18: services.frob.retry_on[1] = 600: must be at most 599: expected an HTTP status code"
    );
    assert_eq!(
        service_error("retry_on = [502, 502]"),
        "config.toml:3:18: services.frob.retry_on[1] = 502: listed twice"
    );
    assert_eq!(
        service_error("retry_budget = 1.5"),
        "config.toml:3:16: services.frob.retry_budget = 1.5: expected a ratio from 0 to 1, like 0.2 for 20% of requests"
    );
    assert_eq!(
        service_error("retry_budget = nan"),
        "config.toml:3:16: services.frob.retry_budget = nan: expected a ratio from 0 to 1, like 0.2 for 20% of requests"
    );
    assert_eq!(
        service_error("retry_min_per_second = -1"),
        "config.toml:3:24: services.frob.retry_min_per_second = -1: must be at least 0"
    );
    assert_eq!(
        service_error("try_timeout = \"20s\"\ndeadline = \"15s\""),
        "config.toml:3:15: services.frob.try_timeout = \"20s\": must not be more than services.frob.deadline (15s)"
    );
    assert_eq!(
        service_error("deadline = \"1s\"\ntry_timeout = \"2s\""),
        "config.toml:4:15: services.frob.try_timeout = \"2s\": must not be more than services.frob.deadline (1s)"
    );
}

#[test]
fn cache_errors() {
    let cache = |lines: &str| error(&format!("{MINIMAL}[services.frob.cache]\n{lines}\n"));
    // Only keys given can disagree: a default gives way (see
    // defaults_give_way_to_the_keys_given).
    assert_eq!(
        cache("max_object_size = \"512MiB\"\nmax_size = \"256MiB\""),
        "config.toml:7:19: services.frob.cache.max_object_size = \"512MiB\": must not be more than services.frob.cache.max_size (256MiB)"
    );
    assert_eq!(
        cache("default_ttl = \"2d\""),
        "config.toml:7:15: services.frob.cache.default_ttl = \"2d\": unknown unit \"d\": expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        cache("default_ttl = \"25h\"\nmax_ttl = \"24h\""),
        "config.toml:7:15: services.frob.cache.default_ttl = \"25h\": must not be more than services.frob.cache.max_ttl (24h)"
    );
    assert_eq!(
        cache("max_size = \"0B\""),
        "config.toml:7:12: services.frob.cache.max_size = \"0B\": must be at least 1B"
    );
    assert_eq!(
        cache("enabled = \"yes\""),
        "config.toml:7:11: services.frob.cache.enabled = \"yes\": invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn server_and_dns_errors() {
    assert_eq!(
        error("[server]\nlisten = \"localhost:8080\"\n"),
        "config.toml:2:10: server.listen = \"localhost:8080\": expected an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\""
    );
    assert_eq!(
        error("[server]\nlisten = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:8080\"\n"),
        "config.toml:3:9: server.admin = \"127.0.0.1:8080\": must differ from server.listen"
    );
    assert_eq!(
        error("[server]\nlisten = \"127.0.0.1:9090\"\nadmin = \"127.0.0.1:9090\"\n"),
        "config.toml:3:9: server.admin = \"127.0.0.1:9090\": must differ from server.listen"
    );
    assert_eq!(
        error("[dns]\nservers = []\n"),
        "config.toml:2:11: dns.servers = []: expected at least one server: leave servers out to use the system resolver"
    );
    assert_eq!(
        error("[dns]\nservers = [\"10.0.0.1\", \"ns1.example.com\"]\n"),
        "config.toml:2:24: dns.servers[1] = \"ns1.example.com\": expected an IP address with an optional port (53 if absent), like \"10.0.0.2\", \"127.0.0.1:5353\" or \"[::1]:53\""
    );
    assert_eq!(
        error("[dns]\nservers = [\"10.0.0.1:0\"]\n"),
        "config.toml:2:12: dns.servers[0] = \"10.0.0.1:0\": port 0 cannot be a DNS server's port"
    );
}

#[test]
fn services_and_routes_are_required() {
    assert_eq!(
        error("[[routes]]\nservice = \"frob\"\n"),
        "config.toml: services: missing: expected at least one [services.NAME] table"
    );
    assert_eq!(
        error("[services]\n[[routes]]\nservice = \"frob\"\n"),
        "config.toml:1:1: services: expected at least one service, like [services.frobnicator]"
    );
    assert_eq!(
        error("[services.frob]\nsrv = \"a.example.com\"\n"),
        "config.toml: routes: missing: expected at least one [[routes]] table, like [[routes]] path_prefix = \"/\" service = \"frobnicator\""
    );
    assert_eq!(
        error("routes = []\n[services.frob]\nsrv = \"a.example.com\"\n"),
        "config.toml:1:10: routes = []: expected at least one route"
    );
    let errors = Config::from_toml("", "config.toml").unwrap_err();
    let keys: Vec<_> = errors.iter().map(|error| error.key()).collect();
    assert_eq!(keys, [Some("services"), Some("routes")]);
    assert_eq!(errors.first().position(), None);
}

#[test]
fn route_errors() {
    let services =
        "[services.frob]\nsrv = \"a.example.com\"\n[services.blob]\nsrv = \"b.example.com\"\n";
    let route = |lines: &str| {
        error(&format!(
            "{services}[[routes]]\nservice = \"frob\"\n[[routes]]\n{lines}\n"
        ))
    };
    assert_eq!(
        route("service = \"frobnicator\""),
        "config.toml:8:11: routes[1].service = \"frobnicator\": no such service: expected \"blob\" or \"frob\""
    );
    assert_eq!(
        route("path_prefix = \"/a/\""),
        "config.toml:7:1: routes[1].service: missing: expected service = \"NAME\", naming a [services.NAME] table"
    );
    assert_eq!(
        route("service = \"frob\"\npath_prefix = \"api/\""),
        "config.toml:9:15: routes[1].path_prefix = \"api/\": expected a path prefix starting with '/', like \"/api/\""
    );
    assert_eq!(
        route("service = \"frob\"\nhost = \"example.com:8080\""),
        "config.toml:9:8: routes[1].host = \"example.com:8080\": a port never matches, since ports are ignored: expected a host name without a port, like \"api.example.com\""
    );
    assert_eq!(
        route("service = \"frob\"\nhost = \"\""),
        "config.toml:9:8: routes[1].host = \"\": expected a host name without a port, like \"api.example.com\""
    );
}

#[test]
fn service_names() {
    assert_eq!(
        error("[services.\"a b\"]\nsrv = \"a.example.com\"\n[[routes]]\nservice = \"a b\"\n"),
        "config.toml:1:11: services.\"a b\": bad service name: expected ASCII letters, digits, '-', '_' and '.'"
    );
    // Keys that are not bare are quoted in paths.
    assert_eq!(
        error("[services.\"my.svc\"]\nsrv = \"a.example.com\"\nvirtual_nodes = 0\n"),
        "config.toml:3:17: services.\"my.svc\".virtual_nodes = 0: must be at least 1"
    );
}

// === positions and quoting ===

#[test]
fn columns_count_characters() {
    // "é" is two bytes, one column.
    assert_eq!(
        error("# café\n[dns]\nrefresh = \"é\"\n"),
        "config.toml:3:11: dns.refresh = \"é\": expected a digit, found 'é': expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
}

#[test]
fn long_and_multi_line_values_are_shortened() {
    assert_eq!(
        error("[dns]\nservers = [\n]\n"),
        "config.toml:2:11: dns.servers = [ …: expected at least one server: leave servers out to use the system resolver"
    );
    let long = "a".repeat(100);
    let message = error(&format!("[dns]\nrefresh = \"{long}\"\n"));
    assert!(
        message.starts_with(&format!(
            "config.toml:2:11: dns.refresh = \"{} …: ",
            "a".repeat(59)
        )),
        "{message}"
    );
}

#[test]
fn the_file_is_named() {
    let error = Config::from_toml(
        "[dns]\nrefresh = 1\n",
        Path::new("/etc/shardproxy/main.toml"),
    )
    .unwrap_err();
    assert!(error
        .to_string()
        .starts_with("/etc/shardproxy/main.toml:2:11: dns.refresh = 1: "));
}

#[test]
fn unreadable_file() {
    let errors = Config::load(Path::new("/nonexistent/shardproxy.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    let error = errors.first();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/shardproxy.toml: cannot read the configuration: "),
        "{error}"
    );
    assert_eq!(error.key(), None);
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("shardproxy-config-{}.toml", std::process::id()));
    std::fs::write(&path, MINIMAL).unwrap();
    let loaded = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap(), load(MINIMAL));
}

// === the example ===

#[test]
fn example_config_loads() {
    let text = include_str!("../../../config.example.toml");
    let config = load(text);
    assert_eq!(
        config.service_names(),
        ["counter", "frobnicator", "sessions"]
    );
    let sessions = config.service("sessions").unwrap();
    assert_eq!(sessions.upstream_protocol, UpstreamProtocol::H2c);
    assert_eq!(sessions.key, KeySource::Header("x-session-id".to_owned()));
    assert_eq!(
        config.dns_servers(),
        Some(&["127.0.0.1:5353".parse().unwrap()][..])
    );

    let frobnicator = config.service("frobnicator").unwrap();
    assert_eq!(
        frobnicator.discovery,
        Discovery::Dns {
            srv: "_frobnicator._http.example.com".into(),
            tokens: TokenSource::Dns,
            replication: None,
        }
    );
    assert!(!frobnicator.cache.enabled);

    let counter = config.service("counter").unwrap();
    let Discovery::Static {
        members,
        replication,
    } = &counter.discovery
    else {
        panic!("counter is not static");
    };
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|member| member.addr.ip().is_loopback()));
    assert_eq!(replication.slaves, 1);
    assert_eq!(counter.key, KeySource::Header("x-counter-id".into()));
    assert_eq!(config.routes.len(), 4);
    assert_eq!(config.routes[0].service, "counter");
    // The WebSocket route (SPEC §10): nothing but a route.
    assert_eq!(config.routes[1].service, "frobnicator");
    assert_eq!(config.routes[2].service, "sessions");
    assert_eq!(config.routes[3].service, "frobnicator");

    // The example shows the defaults wherever it does not say otherwise.
    assert_eq!(config.server, ServerConfig::default());
    let mut defaults = load(&format!(
        "[services.frobnicator]\nsrv = \"_frobnicator._http.example.com\"\n{MINIMAL}"
    ))
    .service("frobnicator")
    .unwrap()
    .clone();
    defaults.health_check = Some(HealthCheckConfig {
        path: "/healthz".into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
    });
    assert_eq!(frobnicator, &defaults);
}

#[test]
fn replica_writes_and_transition_reads_parse() {
    let config = load(&format!(
        "[services.web]\nsrv = \"_w._http.example.com\"\nwrites = \"all\"\nwrite_quorum = 2\ntransition_grace = \"1m\"\n{MINIMAL}"
    ));
    let web = config.service("web").unwrap();
    assert_eq!(web.writes, Writes::All);
    assert_eq!(web.transition_grace, Duration::from_secs(60));
}

#[test]
fn health_keys() {
    let config = load(&format!(
        "[services.web]\nsrv = \"_w._http.example.com\"\nhealth_check = {{ path = \"/ping\", interval = \"2s\" }}\noutlier_detection = {{ consecutive_failures = 3, base_ejection_time = \"1s\" }}\n{MINIMAL}"
    ));
    let service = config.service("web").unwrap();
    let check = service.health_check.as_ref().unwrap();
    assert_eq!(check.path, "/ping");
    assert_eq!(check.interval, Duration::from_secs(2));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!(service.outlier.consecutive_failures, 3);
    assert_eq!(service.outlier.base_ejection_time, Duration::from_secs(1));
    assert_eq!(service.outlier.max_ejection_time, Duration::from_secs(300));
    assert_eq!(
        error(&format!("[services.web]\nsrv = \"_w._http.example.com\"\nhealth_check = {{ interval = \"1s\", timeout = \"2s\" }}\n{MINIMAL}")),
        "config.toml:3:45: services.web.health_check.timeout = \"2s\": must not be more than services.web.health_check.interval (1s)"
    );
    assert_eq!(
        error(&format!("[services.web]\nsrv = \"_w._http.example.com\"\noutlier_detection = {{ base_ejection_time = \"10m\", max_ejection_time = \"1m\" }}\n{MINIMAL}")),
        "config.toml:3:44: services.web.outlier_detection.base_ejection_time = \"10m\": must not be more than services.web.outlier_detection.max_ejection_time (1m)"
    );
}

#[test]
fn load_bound_needs_a_factor_over_one_and_a_ring() {
    let config = load(&MINIMAL.replacen(
        "\n\n",
        "\nload_bound = { factor = 1.25, scope = \"ring\" }\n\n",
        1,
    ));
    assert_eq!(
        frob(&config).load_bound,
        Some(LoadBound {
            factor: 1.25,
            scope: LoadScope::Ring
        })
    );
    assert_eq!(
        service_error("load_bound = { factor = 1 }"),
        "config.toml:3:25: services.frob.load_bound.factor = 1: expected a number more than 1 and at most 100, like 1.25 (an instance may take 25% more than its share)"
    );
    assert_eq!(
        service_error("load_bound = { scope = \"replicas\" }"),
        "config.toml:3:14: services.frob.load_bound.factor: missing: expected a number more than 1, like 1.25"
    );
    assert_eq!(
        service_error("load_bound = { factor = 1.5, scope = \"all\" }"),
        "config.toml:3:38: services.frob.load_bound.scope = \"all\": expected \"replicas\" or \"ring\""
    );
    assert_eq!(
        service_error("balance = \"srv\"\nload_bound = { factor = 1.5 }"),
        "config.toml:4:14: services.frob.load_bound: load_bound needs balance = \"ring\": balance = \"srv\" has no preference lists"
    );
}

#[test]
fn example_config_documents_every_key() {
    let text = include_str!("../../../config.example.toml");
    let keys = [
        "listen",
        "admin",
        "max_header_size",
        "max_headers",
        "header_read_timeout",
        "idle_timeout",
        "max_connections",
        "max_concurrency",
        "upstream_max_idle",
        "upstream_idle_timeout",
        "upstream_protocol",
        "upstream_tls",
        "load_bound",
        "servers",
        "refresh",
        "srv",
        "balance",
        "key",
        "tokens",
        "virtual_nodes",
        "transition_grace",
        "writes",
        "write_quorum",
        "max_body",
        "hot_keys_record",
        "retry_on",
        "try_timeout",
        "deadline",
        "body_timeout",
        "send_timeout",
        "proxy_protocol",
        "cert",
        "client_ca",
        "certificates",
        "retry_budget",
        "retry_min_per_second",
        "retry_body_limit",
        "enabled",
        "max_size",
        "max_object_size",
        "default_ttl",
        "max_ttl",
        "grace",
        "authorized",
        "instances",
        "slaves",
        "redundancy",
        "host",
        "path_prefix",
        "service",
        "strip_prefix",
        "addrs",
    ];
    for key in keys {
        assert!(
            text.lines().any(|line| {
                let line = line.trim_start_matches("# ");
                line.starts_with(&format!("{key} = ")) || line.contains(&format!("{{ {key} = "))
            }),
            "the example does not show {key}"
        );
    }
}

#[test]
fn log_keys() {
    let config = load(&format!(
        "[log]\nlevel = \"shardproxy=debug,warn\"\nformat = \"json\"\naccess_log = true\n{MINIMAL}"
    ));
    assert_eq!(config.log.level, "shardproxy=debug,warn");
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(config.log.access_log);
    let error = Config::from_toml(
        &format!("[log]\nformat = \"xml\"\n{MINIMAL}"),
        "config.toml",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "config.toml:2:10: log.format = \"xml\": expected text or json"
    );
}

#[test]
fn limit_errors() {
    assert_eq!(
        error(&format!("[server]\nproxy_protocol = \"v2\"\n{MINIMAL}")),
        "config.toml:2:18: server.proxy_protocol = \"v2\": invalid type: string \"v2\", expected a boolean"
    );
    assert_eq!(
        error(&format!("[server]\nmax_headers = 0\n{MINIMAL}")),
        "config.toml:2:15: server.max_headers = 0: must be at least 1"
    );
    assert_eq!(
        error(&format!("[server]\nmax_headers = 10001\n{MINIMAL}")),
        "config.toml:2:15: server.max_headers = 10001: must be at most 10000"
    );
    assert_eq!(
        error(&format!(
            "[server]\nheader_read_timeout = \"0s\"\n{MINIMAL}"
        )),
        "config.toml:2:23: server.header_read_timeout = \"0s\": must be more than 0s"
    );
    assert_eq!(
        error(&format!("[server]\nidle_timeout = 60\n{MINIMAL}")),
        "config.toml:2:16: server.idle_timeout = 60: a bare number has no unit: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\""
    );
    assert_eq!(
        error(&format!("[server]\nmax_connections = 0\n{MINIMAL}")),
        "config.toml:2:19: server.max_connections = 0: must be at least 1"
    );
    assert_eq!(
        service_error("max_concurrency = -1"),
        "config.toml:3:19: services.frob.max_concurrency = -1: must be at least 1"
    );
    assert_eq!(
        service_error("upstream_max_idle = 100001"),
        "config.toml:3:21: services.frob.upstream_max_idle = 100001: must be at most 100000"
    );
    assert_eq!(
        service_error("upstream_idle_timeout = \"0ms\""),
        "config.toml:3:25: services.frob.upstream_idle_timeout = \"0ms\": must be more than 0s"
    );
    assert_eq!(
        error(&format!("{MINIMAL}max_body = \"lots\"\n")),
        "config.toml:6:12: routes[0].max_body = \"lots\": expected a digit, found 'l': expected a size: a whole number with a unit B, KiB, MiB, GiB, KB, MB or GB, like \"64KiB\""
    );
}

// === defaults never make a config invalid (SPEC §9.1) ===

#[test]
fn defaults_give_way_to_the_keys_given() {
    let service = |lines: &str| {
        let config = load(&MINIMAL.replacen("\n\n", &format!("\n{lines}\n\n"), 1));
        frob(&config).clone()
    };
    let cache = |lines: &str| {
        let config = load(&format!("{MINIMAL}[services.frob.cache]\n{lines}\n"));
        frob(&config).cache.clone()
    };

    // The four examples of the issue: each was refused for a default.
    let small = cache("max_size = \"64KiB\"");
    assert_eq!(
        (small.max_size, small.max_object_size),
        (64 << 10, 64 << 10)
    );
    let quick = service("deadline = \"2s\"");
    assert_eq!(quick.deadline, Duration::from_secs(2));
    assert_eq!(quick.try_timeout, Duration::from_secs(2));
    let long = service("outlier_detection = { base_ejection_time = \"10m\" }");
    assert_eq!(long.outlier.base_ejection_time, Duration::from_secs(600));
    assert_eq!(long.outlier.max_ejection_time, Duration::from_secs(600));
    let fresh = cache("default_ttl = \"48h\"");
    assert_eq!(fresh.default_ttl, Duration::from_secs(48 * 3600));
    assert_eq!(fresh.max_ttl, Duration::from_secs(48 * 3600));

    // The other way round: the key that bounds moves to the one given.
    let big = cache("max_object_size = \"512MiB\"");
    assert_eq!((big.max_object_size, big.max_size), (512 << 20, 512 << 20));
    let patient = service("try_timeout = \"20s\"");
    assert_eq!(patient.deadline, Duration::from_secs(20));
    let short = service("outlier_detection = { max_ejection_time = \"10s\" }");
    assert_eq!(short.outlier.base_ejection_time, Duration::from_secs(10));
    let capped = cache("max_ttl = \"1h\"");
    assert_eq!(capped.default_ttl, Duration::ZERO);
    let fast = service("health_check = { interval = \"500ms\" }");
    let check = fast.health_check.unwrap();
    assert_eq!(check.timeout, Duration::from_millis(500));
    let slow = service("health_check = { timeout = \"10s\" }");
    assert_eq!(slow.health_check.unwrap().interval, Duration::from_secs(10));

    // Defaults that do not conflict stay as documented.
    let roomy = cache("max_size = \"1GiB\"\ndefault_ttl = \"1m\"");
    assert_eq!(roomy.max_object_size, 8 << 20);
    assert_eq!(roomy.max_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(
        service("deadline = \"1m\"").try_timeout,
        Duration::from_secs(5)
    );

    // listen on admin's default port moves admin to listen's default.
    let config = load(&format!("[server]\nlisten = \"127.0.0.1:9090\"\n{MINIMAL}"));
    assert_eq!(config.server.admin, "127.0.0.1:8080".parse().unwrap());
    let config = load(&format!("[server]\nadmin = \"127.0.0.1:8080\"\n{MINIMAL}"));
    assert_eq!(config.server.listen, "127.0.0.1:9090".parse().unwrap());
}

#[test]
fn max_ejection_time_is_more_than_0() {
    assert_eq!(
        service_error("outlier_detection = { max_ejection_time = \"0s\" }"),
        "config.toml:3:43: services.frob.outlier_detection.max_ejection_time = \"0s\": must be more than 0s"
    );
}

// === [log] level ===

#[test]
fn log_levels_are_checked() {
    let level = |level: &str| {
        Config::from_toml(
            &format!("[log]\nlevel = {level:?}\n{MINIMAL}"),
            "config.toml",
        )
        .map(|config| config.log.level)
        .map_err(|errors| errors.to_string())
    };
    for good in [
        "info",
        "WARN",
        "off",
        "shardproxy=debug,warn",
        "shardproxy::cache=trace, info",
        "access=info,hyper=warn,error",
        "shardproxy[request{service=frob}]=debug",
        "shardproxy[request{service=frob}]=debug,info",
    ] {
        assert_eq!(level(good).as_deref(), Ok(good), "{good}");
    }
    // EnvFilter takes these as targets enabled at every level, so they log
    // nothing of the proxy; each is an error naming file:line:col and key.
    let expected = "expected a level (trace, debug, info, warn, error or off) or target=level, separated by commas, like \"info\" or \"shardproxy=debug,warn\"";
    assert_eq!(
        level("warning").unwrap_err(),
        format!("config.toml:2:9: log.level = \"warning\": \"warning\" is not a level: {expected}")
    );
    assert_eq!(
        level("shardproxy=debug,inf").unwrap_err(),
        format!("config.toml:2:9: log.level = \"shardproxy=debug,inf\": \"inf\" is not a level: {expected}")
    );
    assert_eq!(
        level("shardproxy=verbose").unwrap_err(),
        format!("config.toml:2:9: log.level = \"shardproxy=verbose\": \"verbose\" is not a level: {expected}")
    );
    assert_eq!(
        level("=debug").unwrap_err(),
        format!("config.toml:2:9: log.level = \"=debug\": \"=debug\" has no target before '=': {expected}")
    );
    assert_eq!(
        level("").unwrap_err(),
        format!("config.toml:2:9: log.level = \"\": empty: {expected}")
    );
    assert_eq!(
        level("info,").unwrap_err(),
        format!("config.toml:2:9: log.level = \"info,\": \"\" is not a level: {expected}")
    );
    assert_eq!(
        level("shardproxy[request]").unwrap_err(),
        format!("config.toml:2:9: log.level = \"shardproxy[request]\": \"shardproxy[request]\" has no level: {expected}")
    );
    assert!(
        level("shardproxy[x]]=debug").unwrap_err().starts_with(
            "config.toml:2:9: log.level = \"shardproxy[x]]=debug\": \"shardproxy[x]]=debug\": "
        ),
        "{:?}",
        level("shardproxy[x]]=debug")
    );
}

// === routes that can never match ===

#[test]
fn unreachable_routes_are_refused() {
    let routes = |routes: &str| {
        let text = format!("[services.frob]\nsrv = \"a.example.com\"\n{routes}");
        Config::from_toml(&text, "config.toml")
            .map(|config| config.routes.len())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    // Line 3 on: the routes.
    assert_eq!(
        routes("[[routes]]\nservice = \"frob\"\n[[routes]]\npath_prefix = \"/api/\"\nservice = \"frob\"\n"),
        Err(vec![
            "config.toml:6:15: routes[1].path_prefix = \"/api/\": never matches: routes[0] (line 3, path_prefix \"/\", any host) comes first and matches every request this route would".to_owned()
        ])
    );
    assert_eq!(
        routes("[[routes]]\npath_prefix = \"/api\"\nhost = \"A.example.com\"\nservice = \"frob\"\n[[routes]]\nservice = \"frob\"\nhost = \"a.example.com\"\npath_prefix = \"/api/v2\"\n"),
        Err(vec![
            "config.toml:10:15: routes[1].path_prefix = \"/api/v2\": never matches: routes[0] (line 3, path_prefix \"/api\", host \"a.example.com\") comes first and matches every request this route would".to_owned()
        ])
    );
    // Without path_prefix ("/"), the error points at the route's table.
    assert_eq!(
        routes("[[routes]]\nservice = \"frob\"\n[[routes]]\nservice = \"frob\"\n"),
        Err(vec![
            "config.toml:5:1: routes[1].path_prefix: never matches: routes[0] (line 3, path_prefix \"/\", any host) comes first and matches every request this route would".to_owned()
        ])
    );
    // Reachable: the more specific first, another host, or a host after
    // the same prefix without one (other hosts still reach the later one).
    assert_eq!(
        routes("[[routes]]\npath_prefix = \"/api/\"\nservice = \"frob\"\n[[routes]]\nservice = \"frob\"\n"),
        Ok(2)
    );
    assert_eq!(
        routes("[[routes]]\nhost = \"a.example.com\"\nservice = \"frob\"\n[[routes]]\nhost = \"b.example.com\"\nservice = \"frob\"\n[[routes]]\nservice = \"frob\"\n"),
        Ok(3)
    );
    assert_eq!(
        routes("[[routes]]\nhost = \"a.example.com\"\nservice = \"frob\"\n[[routes]]\nservice = \"frob\"\n"),
        Ok(2)
    );
    assert_eq!(
        routes("[[routes]]\npath_prefix = \"/api\"\nservice = \"frob\"\n[[routes]]\npath_prefix = \"/ap\"\nservice = \"frob\"\n"),
        Ok(2)
    );
}

// === every error in one run ===

#[test]
fn every_error_is_reported() {
    let text = "[server]\nmax_headers = 0\n\n[log]\nlevel = \"warning\"\n\n[services.frob]\nsrv = \"_frob._http.example.com\"\ntry_timeout = 5\nretry_on = [502, 999]\n\n[services.blob]\nsrv = \"_blob._http.example.com\"\n\n[services.blob.cache]\nmax_size = \"0B\"\n\n[[routes]]\nservice = \"nope\"\n\n[[routes]]\npath_prefix = \"/api\"\nservice = \"frob\"\n";
    assert_eq!(
        errors(text),
        [
            "config.toml:2:15: server.max_headers = 0: must be at least 1",
            "config.toml:5:9: log.level = \"warning\": \"warning\" is not a level: expected a level (trace, debug, info, warn, error or off) or target=level, separated by commas, like \"info\" or \"shardproxy=debug,warn\"",
            "config.toml:9:15: services.frob.try_timeout = 5: a bare number has no unit: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\"",
            "config.toml:10:18: services.frob.retry_on[1] = 999: must be at most 599: expected an HTTP status code",
            "config.toml:16:12: services.blob.cache.max_size = \"0B\": must be at least 1B",
            "config.toml:19:11: routes[0].service = \"nope\": no such service: expected \"blob\" or \"frob\"",
        ]
    );
}

#[test]
fn a_bad_key_causes_no_second_error() {
    // Each bad key alone, where its placeholder (the default) would have
    // contradicted the other key, hidden a route, or missed a service.
    let cases = [
        (
            format!("{MINIMAL}[services.frob.cache]\nmax_object_size = \"lots\"\nmax_size = \"1MiB\"\n"),
            "services.frob.cache.max_object_size",
        ),
        (
            MINIMAL.replacen("\n\n", "\ntry_timeout = \"soon\"\ndeadline = \"1s\"\n\n", 1),
            "services.frob.try_timeout",
        ),
        (
            format!("{MINIMAL}path_prefix = \"api\"\n[[routes]]\npath_prefix = \"/api\"\nservice = \"frob\"\n"),
            "routes[0].path_prefix",
        ),
        (
            format!("{MINIMAL}host = \"a:1\"\n[[routes]]\nhost = \"b.example.com\"\nservice = \"frob\"\n"),
            "routes[0].host",
        ),
        (
            MINIMAL.replacen(
                "\n\n",
                "\nhealth_check = { interval = \"soon\", timeout = \"10s\" }\n\n",
                1,
            ),
            "services.frob.health_check.interval",
        ),
        (
            MINIMAL.replacen("srv = \"_frob._http.example.com\"", "srv = \"a b\"", 1),
            "services.frob.srv",
        ),
        (
            format!("[server]\nlisten = \"nowhere\"\nadmin = \"127.0.0.1:8080\"\n{MINIMAL}"),
            "server.listen",
        ),
    ];
    for (text, key) in cases {
        let found = Config::from_toml(&text, "config.toml").unwrap_err();
        let keys: Vec<_> = found.iter().map(|error| error.key()).collect();
        assert_eq!(keys, [Some(key)], "{text}\n{found}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_do_not_stop_the_rest() {
    // serde stops at the first of these; each is reported, its key taken
    // out, and the document read again. What follows from a key taken out
    // (a route or a service missing it) is not reported again.
    let text = "[server]\nlisen = \"127.0.0.1:80\"\nmax_headers = \"many\"\n\n[services.frob]\nsrv = 5\nshards = 3\n\n[services.blob]\nsrv = \"_blob._http.example.com\"\nvirtual_nodes = 0\n\n[[routes]]\nservice = 7\n\n[[routes]]\npath_prefix = \"/b\"\nservice = \"blob\"\nstrip_prefix = \"yes\"\n";
    let found = errors(text);
    let keys: Vec<&str> = found
        .iter()
        .map(|error| error.split(": ").nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "server.lisen",
            "server.max_headers = \"many\"",
            "services.frob.srv = 5",
            "services.frob.shards",
            "services.blob.virtual_nodes = 0",
            "routes[0].service = 7",
            "routes[1].strip_prefix = \"yes\"",
        ],
        "{found:#?}"
    );
    assert!(
        found[0].starts_with("config.toml:2:1: server.lisen: unknown field `lisen`"),
        "{}",
        found[0]
    );
    assert!(found[4].starts_with("config.toml:11:17: "), "{}", found[4]);
    assert!(found[5].starts_with("config.toml:14:11: "), "{}", found[5]);
}

#[test]
fn srv_services_take_slaves_and_redundancy_for_when_dns_has_no_config_record() {
    let replication_of = |lines: &str| {
        let config = Config::from_toml(
            &MINIMAL.replacen("\n\n", &format!("\n{lines}\n\n"), 1),
            "config.toml",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        match &frob(&config).discovery {
            Discovery::Dns { replication, .. } => *replication,
            Discovery::Static { .. } => panic!("a DNS service"),
        }
    };
    assert_eq!(replication_of(""), None);
    assert_eq!(
        replication_of("slaves = 1\nredundancy = \"host\""),
        Some(Replication {
            slaves: 1,
            redundancy: Redundancy::Host
        })
    );
    // One key alone: the other keeps its default.
    assert_eq!(
        replication_of("slaves = 2"),
        Some(Replication {
            slaves: 2,
            redundancy: Redundancy::None
        })
    );
}

// === [cache_peers] ===

/// `MINIMAL`, a blank line, then `lines` (from line 7 on).
fn with_peers(lines: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(&format!("{MINIMAL}\n{lines}\n"), "config.toml")
}

#[test]
fn cache_peers_are_addresses_or_an_srv_name() {
    assert_eq!(load(MINIMAL).cache_peers, None);
    let listed = with_peers("[cache_peers]\naddrs = [\"10.0.0.2:9090\", \"[::1]:9091\"]")
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        listed.cache_peers,
        Some(CachePeersConfig {
            peers: CachePeers::Addrs(vec![
                "10.0.0.2:9090".parse().unwrap(),
                "[::1]:9091".parse().unwrap()
            ]),
            timeout: Duration::from_secs(5),
        })
    );
    let found = with_peers("[cache_peers]\nsrv = \"_admin._tcp.example.com\"\ntimeout = \"2s\"")
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        found.cache_peers,
        Some(CachePeersConfig {
            peers: CachePeers::Srv("_admin._tcp.example.com".into()),
            timeout: Duration::from_secs(2),
        })
    );
}

#[test]
fn cache_peers_need_exactly_one_of_addrs_and_srv() {
    let first = |lines: &str| {
        with_peers(lines)
            .err()
            .unwrap_or_else(|| panic!("accepted: {lines}"))
            .first()
            .to_string()
    };
    assert_eq!(
        first("[cache_peers]\naddrs = [\"10.0.0.2:9090\"]\nsrv = \"_a._tcp.example.com\""),
        "config.toml:9:7: cache_peers.srv: addrs and srv are both given: the peers are listed (addrs) or found in DNS (srv), not both"
    );
    assert_eq!(
        first("[cache_peers]\ntimeout = \"1s\""),
        "config.toml:7:1: cache_peers: missing addrs or srv: expected addrs = [\"10.0.0.2:9090\", ...] (the other proxies' admin addresses) or srv = \"_shardproxy-admin._tcp.example.com\" (an SRV name that lists them)"
    );
    assert_eq!(
        first("[cache_peers]\naddrs = []"),
        "config.toml:8:9: cache_peers.addrs = []: expected at least one admin address: leave [cache_peers] out for none"
    );
    assert_eq!(
        first("[cache_peers]\nsrv = \"a b\""),
        "config.toml:8:7: cache_peers.srv = \"a b\": expected a DNS name, like \"_frobnicator._http.example.com\""
    );
    assert_eq!(
        first("[cache_peers]\nsrv = \"_a._tcp.example.com\"\nport = 1"),
        "config.toml:9:1: cache_peers.port: unknown field `port`, expected one of `addrs`, `srv`, `timeout`"
    );
}

#[test]
fn every_bad_cache_peer_is_reported() {
    let found: Vec<String> = with_peers(
        "[cache_peers]\naddrs = [\"peer1:9090\", \"10.0.0.2:9090\", \"10.0.0.2:9090\", \"10.0.0.3:0\"]\ntimeout = 5",
    )
    .unwrap_err()
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        found,
        [
            "config.toml:8:10: cache_peers.addrs[0] = \"peer1:9090\": expected an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "config.toml:8:41: cache_peers.addrs[2] = \"10.0.0.2:9090\": listed twice",
            "config.toml:8:58: cache_peers.addrs[3] = \"10.0.0.3:0\": port 0 is no admin address: expected the port of the peer's server.admin",
            "config.toml:9:11: cache_peers.timeout = 5: a bare number has no unit: expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\"",
        ]
    );
}
