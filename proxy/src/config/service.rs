//! `[services.NAME]` and `[services.NAME.cache]`: discovery (`srv` or
//! static `instances`), the key, replication, writes, retries and the
//! cache of each service.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Token};
use toml::Spanned;

use super::check::{
    check, choice, duration, field, flag, header_name, int_in, nonzero, ordered, positive_duration,
    required, size, size_at_least, socket_addr, span_of, Bound,
};
use super::duration::format_duration;
use super::error::{At, ConfigError, KeyPath, Source};
use super::raw::{RawCache, RawInstance, RawLoadBound, RawService};
use super::size::format_size;
use super::{
    Balance, CacheConfig, Discovery, KeySource, LoadBound, LoadScope, ServiceConfig, TokenSource,
    UpstreamProtocol, UpstreamTlsConfig, Writes,
};

/// 64 (`NonZeroU32::new` is not usable in a const without a panic path).
const DEFAULT_VIRTUAL_NODES: NonZeroU32 = NonZeroU32::MIN.saturating_add(63);
/// More virtual nodes than this only slows ring builds down.
const MAX_VIRTUAL_NODES: i64 = 4096;
/// A preference list holds at most the primary and 255 replicas.
const MAX_WRITE_QUORUM: i64 = 256;
const DEFAULT_MAX_BODY: u64 = 1 << 20;
const DEFAULT_RETRY_ON: [u16; 3] = [502, 503, 504];
const DEFAULT_TRY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(15);
/// `body_timeout`'s default: as nginx's `proxy_read_timeout`.
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_RETRY_BUDGET: f64 = 0.2;
const DEFAULT_RETRY_MIN_PER_SECOND: u32 = 10;
const DEFAULT_RETRY_BODY_LIMIT: u64 = 64 << 10;
/// Enough for a busy service; a service needing more says so.
const DEFAULT_MAX_CONCURRENCY: usize = 1024;
const MAX_MAX_CONCURRENCY: i64 = 1_000_000;
/// Enough idle connections for a busy instance, few enough to spare its
/// descriptors.
const DEFAULT_UPSTREAM_MAX_IDLE: usize = 64;
const MAX_UPSTREAM_MAX_IDLE: i64 = 100_000;
const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

const UPSTREAM_PROTOCOLS: &[(&str, UpstreamProtocol)] = &[
    ("http1", UpstreamProtocol::Http1),
    ("h2c", UpstreamProtocol::H2c),
    ("h2", UpstreamProtocol::H2),
];
const LOAD_SCOPES: &[(&str, LoadScope)] =
    &[("replicas", LoadScope::Replicas), ("ring", LoadScope::Ring)];
const BALANCES: &[(&str, Balance)] = &[("ring", Balance::Ring), ("srv", Balance::Srv)];
const TOKEN_SOURCES: &[(&str, TokenSource)] =
    &[("dns", TokenSource::Dns), ("derived", TokenSource::Derived)];
const REDUNDANCIES: &[(&str, Redundancy)] =
    &[("none", Redundancy::None), ("host", Redundancy::Host)];
const WRITES: &[(&str, Writes)] = &[("primary", Writes::Primary), ("all", Writes::All)];

/// Every `[services.NAME]` table; at least one is required. A service with
/// an error is left out (the error reported).
pub(super) fn services(
    source: &Source<'_>,
    raw: Option<&Spanned<BTreeMap<Spanned<String>, Spanned<RawService>>>>,
) -> BTreeMap<String, ServiceConfig> {
    let key = KeyPath::root().key("services");
    let mut services = BTreeMap::new();
    let Some(raw) = raw else {
        source.report(source.error(
            &key,
            At::Nowhere,
            "missing: expected at least one [services.NAME] table",
        ));
        return services;
    };
    if raw.get_ref().is_empty() {
        source.report(source.error(
            &key,
            At::Place(raw.span()),
            "expected at least one service, like [services.frobnicator]",
        ));
    }
    for (name, service) in raw.get_ref() {
        let name_text = name.get_ref();
        let service_key = key.key(name_text);
        let valid_name = !name_text.is_empty()
            && name_text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            source.report(source.error(
                &service_key,
                At::Place(name.span()),
                "bad service name: expected ASCII letters, digits, '-', '_' and '.'",
            ));
            continue;
        }
        let config = self::service(source, &service_key, name_text, service);
        services.insert(name_text.clone(), config);
    }
    services
}

fn service(
    source: &Source<'_>,
    key: &KeyPath,
    name: &str,
    raw: &Spanned<RawService>,
) -> ServiceConfig {
    let span = raw.span();
    let raw = raw.get_ref();
    let balance = field(
        source,
        &key.key("balance"),
        raw.balance.as_ref(),
        Balance::Ring,
        choice(BALANCES),
    );
    let key_source = field(
        source,
        &key.key("key"),
        raw.key.as_ref(),
        KeySource::Path,
        |text| KeySource::parse(text),
    );
    let virtual_nodes = field(
        source,
        &key.key("virtual_nodes"),
        raw.virtual_nodes.as_ref(),
        DEFAULT_VIRTUAL_NODES,
        |number| int_in(1, MAX_VIRTUAL_NODES)(number).and_then(nonzero),
    );
    // A placeholder after an error: the config is not returned then.
    let discovery = source
        .ok(discovery(source, key, raw, span, balance, virtual_nodes))
        .unwrap_or(Discovery::Dns {
            srv: String::new(),
            tokens: TokenSource::Dns,
            replication: None,
        });

    let writes_key = key.key("writes");
    let writes = field(
        source,
        &writes_key,
        raw.writes.as_ref(),
        Writes::Primary,
        choice(WRITES),
    );
    if let (Writes::All, Balance::Srv, Some(given)) = (writes, balance, &raw.writes) {
        source.report(source.error(
            &writes_key,
            At::Value(given.span()),
            "writes = \"all\" needs balance = \"ring\": SRV balancing has no preference list",
        ));
    }
    let write_quorum = match &raw.write_quorum {
        None => None,
        Some(given) if writes != Writes::All => {
            source.report(source.error(
                &key.key("write_quorum"),
                At::Value(given.span()),
                "only with writes = \"all\"",
            ));
            None
        }
        Some(given) => source.ok(check(source, &key.key("write_quorum"), given, |number| {
            int_in(1, MAX_WRITE_QUORUM)(number).and_then(nonzero)
        })),
    };

    // Checked against `writes` only when `writes` is valid or left out,
    // so that a bad `writes` causes no second error.
    let primary = raw
        .writes
        .as_ref()
        .is_none_or(|given| given.get_ref() == "primary");
    let read_repair = field(
        source,
        &key.key("read_repair"),
        raw.read_repair.as_ref(),
        false,
        |&repair| {
            if repair && primary {
                Err("read_repair = true needs writes = \"all\"".to_owned())
            } else {
                Ok(repair)
            }
        },
    );

    let (try_timeout_key, deadline_key) = (key.key("try_timeout"), key.key("deadline"));
    let (try_timeout, deadline) = ordered(
        source,
        Bound::new(
            source,
            &try_timeout_key,
            raw.try_timeout.as_ref(),
            DEFAULT_TRY_TIMEOUT,
            positive_duration,
        ),
        Bound::new(
            source,
            &deadline_key,
            raw.deadline.as_ref(),
            DEFAULT_DEADLINE,
            positive_duration,
        ),
        |duration| format_duration(*duration),
    );

    let (upstream_protocol, upstream_tls) = upstream_transport(source, key, raw);
    let load_bound = raw
        .load_bound
        .as_ref()
        .and_then(|bound| load_bound(source, &key.key("load_bound"), bound, balance));
    ServiceConfig {
        name: name.to_owned(),
        discovery,
        balance,
        key: key_source,
        virtual_nodes,
        transition_grace: field(
            source,
            &key.key("transition_grace"),
            raw.transition_grace.as_ref(),
            Duration::ZERO,
            duration,
        ),
        writes,
        write_quorum,
        max_body: field(
            source,
            &key.key("max_body"),
            raw.max_body.as_ref(),
            DEFAULT_MAX_BODY,
            size,
        ),
        read_fallback_404: field(
            source,
            &key.key("read_fallback_404"),
            raw.read_fallback_404.as_ref(),
            writes == Writes::All,
            flag,
        ),
        read_repair,
        hot_keys_record: field(
            source,
            &key.key("hot_keys_record"),
            raw.hot_keys_record.as_ref(),
            false,
            flag,
        ),
        retry_on: retry_on(source, &key.key("retry_on"), raw.retry_on.as_ref()),
        try_timeout,
        deadline,
        body_timeout: field(
            source,
            &key.key("body_timeout"),
            raw.body_timeout.as_ref(),
            DEFAULT_BODY_TIMEOUT,
            positive_duration,
        ),
        retry_budget: field(
            source,
            &key.key("retry_budget"),
            raw.retry_budget.as_ref(),
            DEFAULT_RETRY_BUDGET,
            |&ratio| {
                if (0.0..=1.0).contains(&ratio) {
                    Ok(ratio)
                } else {
                    Err("expected a ratio from 0 to 1, like 0.2 for 20% of requests".to_owned())
                }
            },
        ),
        retry_min_per_second: field(
            source,
            &key.key("retry_min_per_second"),
            raw.retry_min_per_second.as_ref(),
            DEFAULT_RETRY_MIN_PER_SECOND,
            // tower's TpsBudget::new asserts min_per_sec < i32::MAX.
            int_in(0, i64::from(i32::MAX) - 1),
        ),
        retry_body_limit: field(
            source,
            &key.key("retry_body_limit"),
            raw.retry_body_limit.as_ref(),
            DEFAULT_RETRY_BODY_LIMIT,
            size,
        ),
        max_concurrency: field(
            source,
            &key.key("max_concurrency"),
            raw.max_concurrency.as_ref(),
            DEFAULT_MAX_CONCURRENCY,
            int_in(1, MAX_MAX_CONCURRENCY),
        ),
        upstream_max_idle: field(
            source,
            &key.key("upstream_max_idle"),
            raw.upstream_max_idle.as_ref(),
            DEFAULT_UPSTREAM_MAX_IDLE,
            int_in(0, MAX_UPSTREAM_MAX_IDLE),
        ),
        upstream_idle_timeout: field(
            source,
            &key.key("upstream_idle_timeout"),
            raw.upstream_idle_timeout.as_ref(),
            DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            positive_duration,
        ),
        load_bound,
        upstream_protocol,
        upstream_tls,
        cache: cache(source, &key.key("cache"), raw.cache.as_ref()),
        health_check: super::health::health_check(
            source,
            &key.key("health_check"),
            raw.health_check.as_ref(),
        ),
        outlier: super::health::outlier(
            source,
            &key.key("outlier_detection"),
            raw.outlier_detection.as_ref(),
        ),
    }
}

/// `load_bound = { factor, scope }`: `factor` required, more than 1 (and
/// at most 100: a larger one bounds nothing); only with `balance = "ring"`,
/// whose preference lists it works in.
fn load_bound(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<RawLoadBound>,
    balance: Balance,
) -> Option<LoadBound> {
    if balance == Balance::Srv {
        source.report(source.error(
            key,
            At::Place(raw.span()),
            "load_bound needs balance = \"ring\": balance = \"srv\" has no preference lists",
        ));
        return None;
    }
    let table = raw.span();
    let raw = raw.get_ref();
    let factor_key = key.key("factor");
    let factor = required(
        source,
        &factor_key,
        raw.factor.as_ref(),
        table,
        "a number more than 1, like 1.25",
    );
    let factor = check(source, &factor_key, source.ok(factor)?, |&factor| {
        if factor > 1.0 && factor <= 100.0 {
            Ok(factor)
        } else {
            Err("expected a number more than 1 and at most 100, like 1.25 (an instance may take 25% more than its share)".to_owned())
        }
    });
    let scope = field(
        source,
        &key.key("scope"),
        raw.scope.as_ref(),
        LoadScope::Replicas,
        choice(LOAD_SCOPES),
    );
    Some(LoadBound {
        factor: source.ok(factor)?,
        scope,
    })
}

/// `upstream_protocol` and `upstream_tls`, which must agree: `"h2"` is
/// HTTP/2 over TLS and `"h2c"` HTTP/2 without.
fn upstream_transport(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &RawService,
) -> (UpstreamProtocol, Option<UpstreamTlsConfig>) {
    let protocol_key = key.key("upstream_protocol");
    let protocol = field(
        source,
        &protocol_key,
        raw.upstream_protocol.as_ref(),
        UpstreamProtocol::Http1,
        choice(UPSTREAM_PROTOCOLS),
    );
    let tls = raw
        .upstream_tls
        .as_ref()
        .and_then(|tls| super::tls::upstream_tls(source, &key.key("upstream_tls"), tls, protocol));
    let problem = match (protocol, &raw.upstream_tls) {
        (UpstreamProtocol::H2, None) => Some(
            "\"h2\" is HTTP/2 over TLS: it needs upstream_tls = { ca = \"...\" } (\"h2c\" is HTTP/2 without TLS)",
        ),
        (UpstreamProtocol::H2c, Some(_)) => Some(
            "\"h2c\" is HTTP/2 without TLS, but upstream_tls is set: \"h2\" is HTTP/2 over TLS",
        ),
        _ => None,
    };
    if let (Some(problem), Some(given)) = (problem, &raw.upstream_protocol) {
        source.report(source.error(&protocol_key, At::Value(given.span()), problem));
    }
    (protocol, tls)
}

/// `srv` or `instances`, exactly one, with the keys that go with each.
fn discovery(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &RawService,
    span: Range<usize>,
    balance: Balance,
    virtual_nodes: NonZeroU32,
) -> Result<Discovery, ConfigError> {
    let srv = match (&raw.srv, &raw.instances) {
        (Some(_), Some(instances)) => {
            return Err(source.error(
                &key.key("instances"),
                At::Place(instances.span()),
                "srv and instances are both given: a service's instances come from DNS (srv) or from this list, not both",
            ));
        }
        (None, None) => {
            return Err(source.error(
                key,
                At::Place(span),
                "missing srv or instances: expected srv = \"_name._http.example.com\" or instances = [{ host = \"...\", addr = \"ip:port\" }]",
            ));
        }
        (None, Some(instances)) => {
            return static_ring(source, key, raw, instances, balance, virtual_nodes);
        }
        (Some(srv), None) => srv,
    };
    let given = raw.slaves.is_some() || raw.redundancy.is_some();
    if balance == Balance::Srv {
        for (name, given) in [
            ("slaves", span_of(raw.slaves.as_ref())),
            ("redundancy", span_of(raw.redundancy.as_ref())),
        ] {
            if let Some(span) = given {
                source.report(source.error(
                    &key.key(name),
                    At::Value(span),
                    format!("{name} needs balance = \"ring\": balance = \"srv\" has no preference lists"),
                ));
            }
        }
    }
    let replication = (given && balance == Balance::Ring).then(|| replication(source, key, raw));
    Ok(Discovery::Dns {
        replication,
        srv: check(source, &key.key("srv"), srv, |text| dns_name(text))?,
        tokens: field(
            source,
            &key.key("tokens"),
            raw.tokens.as_ref(),
            TokenSource::Dns,
            choice(TOKEN_SOURCES),
        ),
    })
}

/// A name to look up: ASCII labels of 1 to 63 characters, 253 in all.
pub(super) fn dns_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_graphic())
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected a DNS name, like \"_frobnicator._http.example.com\"".to_owned())
    }
}

/// `slaves` (default 0, up to 255) and `redundancy` (default none).
fn replication(source: &Source<'_>, key: &KeyPath, raw: &RawService) -> Replication {
    Replication {
        slaves: field(
            source,
            &key.key("slaves"),
            raw.slaves.as_ref(),
            0,
            int_in(0, 255),
        ),
        redundancy: field(
            source,
            &key.key("redundancy"),
            raw.redundancy.as_ref(),
            Redundancy::None,
            choice(REDUNDANCIES),
        ),
    }
}

/// `instances = [...]` with `slaves` and `redundancy`.
fn static_ring(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &RawService,
    instances: &Spanned<Vec<Spanned<RawInstance>>>,
    balance: Balance,
    virtual_nodes: NonZeroU32,
) -> Result<Discovery, ConfigError> {
    if let (Balance::Srv, Some(given)) = (balance, &raw.balance) {
        source.report(source.error(
            &key.key("balance"),
            At::Value(given.span()),
            "balance = \"srv\" needs srv: static instances have no SRV priority and weight",
        ));
    }
    let tokens_key = key.key("tokens");
    let tokens = field(source, &tokens_key, raw.tokens.as_ref(), None, |text| {
        choice(TOKEN_SOURCES)(text).map(Some)
    });
    if let (Some(TokenSource::Dns), Some(given)) = (tokens, &raw.tokens) {
        source.report(source.error(
            &tokens_key,
            At::Value(given.span()),
            "static instances have no DNS tokens: list tokens per instance (or leave them out to derive them), or use \"derived\"",
        ));
    }
    let derive_all = tokens == Some(TokenSource::Derived);
    let replication = replication(source, key, raw);

    let list_key = key.key("instances");
    if instances.get_ref().is_empty() {
        return Err(source.error(
            &list_key,
            At::Value(instances.span()),
            "expected at least one instance",
        ));
    }
    // With their index in the list, to name the first of two with one name.
    let mut members: Vec<(usize, Member)> = Vec::with_capacity(instances.get_ref().len());
    for (index, instance) in instances.get_ref().iter().enumerate() {
        let instance_key = list_key.index(index);
        let member = self::member(source, &instance_key, instance, derive_all, virtual_nodes);
        let Some((first_index, member)) = source.ok(member).map(|member| (index, member)) else {
            continue;
        };
        if let Some((first, _)) = members.iter().find(|(_, other)| other.name == member.name) {
            source.report(source.error(
                &instance_key,
                At::Place(instance.span()),
                format!(
                    "{} is listed twice (also {})",
                    member.name,
                    list_key.index(*first)
                ),
            ));
            continue;
        }
        members.push((first_index, member));
    }
    Ok(Discovery::Static {
        members: members.into_iter().map(|(_, member)| member).collect(),
        replication,
    })
}

/// One static instance, its tokens listed or derived.
fn member(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<RawInstance>,
    derive_all: bool,
    virtual_nodes: NonZeroU32,
) -> Result<Member, ConfigError> {
    let span = raw.span();
    let raw = raw.get_ref();
    let host_key = key.key("host");
    let addr_key = key.key("addr");
    let host = required(
        source,
        &host_key,
        raw.host.as_ref(),
        span.clone(),
        "host = \"frob1.example.com\"",
    )?;
    let addr = required(
        source,
        &addr_key,
        raw.addr.as_ref(),
        span,
        "addr = \"127.0.0.1:8081\"",
    )?;
    let addr = check(source, &addr_key, addr, |text| {
        let addr = socket_addr(text)?;
        if addr.port() == 0 {
            return Err(
                "port 0 cannot be connected to: the port is the instance's port".to_owned(),
            );
        }
        Ok(addr)
    })?;
    let name = check(source, &host_key, host, |host| {
        InstanceName::new(host, addr.port())
            .map_err(|error| format!("{error}: expected a host name"))
    })?;
    let tokens_key = key.key("tokens");
    let tokens = match &raw.tokens {
        None => derived_tokens(&name, virtual_nodes.get()),
        Some(given) if derive_all => {
            return Err(source.error(
                &tokens_key,
                At::Value(given.span()),
                "the service says tokens = \"derived\": remove this list, or the service's tokens key",
            ));
        }
        Some(given) if given.get_ref().is_empty() => {
            return Err(source.error(
                &tokens_key,
                At::Value(given.span()),
                "expected at least one token: leave tokens out to derive them",
            ));
        }
        Some(given) => given
            .get_ref()
            .iter()
            .enumerate()
            .filter_map(|(index, token)| {
                source.ok(check(source, &tokens_key.index(index), token, |text| {
                    text.parse::<Token>().map_err(|error| error.to_string())
                }))
            })
            .collect(),
    };
    Ok(Member { name, addr, tokens })
}

/// `retry_on`: status codes, each once; bad ones are reported and left
/// out.
fn retry_on(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<Vec<Spanned<i64>>>>,
) -> Vec<u16> {
    let Some(raw) = raw else {
        return DEFAULT_RETRY_ON.to_vec();
    };
    let mut codes: Vec<u16> = Vec::with_capacity(raw.get_ref().len());
    for (index, code) in raw.get_ref().iter().enumerate() {
        let status = source.ok(check(source, &key.index(index), code, |number| {
            int_in(100, 599)(number)
                .map_err(|problem| format!("{problem}: expected an HTTP status code"))
        }));
        let Some(status) = status else {
            continue;
        };
        if codes.contains(&status) {
            source.report(source.error(&key.index(index), At::Value(code.span()), "listed twice"));
            continue;
        }
        codes.push(status);
    }
    codes
}

// === [services.NAME.cache] ===

fn cache(source: &Source<'_>, key: &KeyPath, raw: Option<&Spanned<RawCache>>) -> CacheConfig {
    let defaults = CacheConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let raw = raw.get_ref();
    let (max_size_key, max_object_size_key) = (key.key("max_size"), key.key("max_object_size"));
    let (default_ttl_key, max_ttl_key) = (key.key("default_ttl"), key.key("max_ttl"));
    let (max_object_size, max_size) = ordered(
        source,
        Bound::new(
            source,
            &max_object_size_key,
            raw.max_object_size.as_ref(),
            defaults.max_object_size,
            size_at_least(1),
        ),
        Bound::new(
            source,
            &max_size_key,
            raw.max_size.as_ref(),
            defaults.max_size,
            size_at_least(1),
        ),
        |bytes| format_size(*bytes),
    );
    let (default_ttl, max_ttl) = ordered(
        source,
        Bound::new(
            source,
            &default_ttl_key,
            raw.default_ttl.as_ref(),
            defaults.default_ttl,
            duration,
        ),
        Bound::new(
            source,
            &max_ttl_key,
            raw.max_ttl.as_ref(),
            defaults.max_ttl,
            duration,
        ),
        |duration| format_duration(*duration),
    );
    CacheConfig {
        enabled: field(
            source,
            &key.key("enabled"),
            raw.enabled.as_ref(),
            defaults.enabled,
            flag,
        ),
        max_size,
        max_object_size,
        default_ttl,
        max_ttl,
        grace: field(
            source,
            &key.key("grace"),
            raw.grace.as_ref(),
            defaults.grace,
            duration,
        ),
        authorized: field(
            source,
            &key.key("authorized"),
            raw.authorized.as_ref(),
            defaults.authorized,
            flag,
        ),
        tag_header: field(
            source,
            &key.key("tag_header"),
            raw.tag_header.as_ref(),
            defaults.tag_header,
            |text| header_name(text),
        ),
        expose_tags: field(
            source,
            &key.key("expose_tags"),
            raw.expose_tags.as_ref(),
            defaults.expose_tags,
            flag,
        ),
        targeted: match &raw.targeted {
            None => defaults.targeted,
            Some(names) => names
                .get_ref()
                .iter()
                .enumerate()
                .filter_map(|(index, name)| {
                    let key = key.key("targeted").index(index);
                    source.ok(check(source, &key, name, |text| header_name(text)))
                })
                .collect(),
        },
    }
}
