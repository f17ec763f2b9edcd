use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use super::*;

use crate::headers::map_of as headers;

const LIMITS: Limits = Limits {
    default_ttl: Duration::ZERO,
    max_ttl: Duration::from_secs(86_400),
    grace: Duration::ZERO,
    authorized: false,
};

/// The default of `cache.targeted`.
static TARGETED: [HeaderName; 1] = [HeaderName::from_static("cdn-cache-control")];

/// 2001-09-09T01:46:40Z, a round number of seconds.
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000_000 + seconds)
}

fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

fn keep(pairs: &[(&str, &str)]) -> Result<Keeping, NotStored> {
    keep_with(StatusCode::OK, pairs, RequestFacts::default(), &LIMITS)
}

fn keep_with(
    status: StatusCode,
    pairs: &[(&str, &str)],
    request: RequestFacts,
    limits: &Limits,
) -> Result<Keeping, NotStored> {
    keeping(
        status,
        &headers(pairs),
        request,
        (at(0), at(0)),
        limits,
        &TARGETED,
    )
}

#[test]
fn directives_are_parsed_case_insensitively_with_quotes_and_lists() {
    let parsed = Directives::of(&headers(&[
        (
            "cache-control",
            "Public, MAX-AGE=\"60\", no-cache=\"set-cookie, x\"",
        ),
        (
            "cache-control",
            "s-maxage=30, stale-while-revalidate=5, foo=bar",
        ),
    ]));
    assert!(parsed.public && parsed.no_cache && parsed.must_revalidate);
    assert_eq!(parsed.max_age, Some(60));
    assert_eq!(parsed.s_maxage, Some(30));
    assert_eq!(parsed.stale_while_revalidate, Some(5));
    assert!(!parsed.private && !parsed.no_store);
}

#[test]
fn an_invalid_max_age_means_stale_and_the_first_one_counts() {
    assert_eq!(
        Directives::of(&headers(&[("cache-control", "max-age=abc")])).max_age,
        Some(0)
    );
    assert_eq!(
        Directives::of(&headers(&[("cache-control", "max-age=5, max-age=10")])).max_age,
        Some(5)
    );
    assert_eq!(
        Directives::of(&headers(&[(
            "cache-control",
            "max-age=99999999999999999999"
        )]))
        .max_age,
        Some(1 << 31)
    );
}

#[test]
fn pragma_no_cache_counts_only_without_cache_control() {
    assert!(Directives::of(&headers(&[("pragma", "no-cache")])).no_cache);
    assert!(
        !Directives::of(&headers(&[
            ("pragma", "no-cache"),
            ("cache-control", "max-age=5")
        ]))
        .no_cache
    );
}

#[test]
fn freshness_prefers_s_maxage_then_max_age_then_expires() {
    let lifetime = |pairs: &[(&str, &str)]| {
        let headers = headers(pairs);
        freshness_lifetime(
            StatusCode::OK,
            &Directives::of(&headers),
            Some(&headers),
            at(0),
            &LIMITS,
        )
    };
    assert_eq!(
        lifetime(&[("cache-control", "max-age=10, s-maxage=20")]),
        Some(Duration::from_secs(20))
    );
    let expires = http_date(at(100));
    assert_eq!(
        lifetime(&[("cache-control", "max-age=10"), ("expires", &expires)]),
        Some(Duration::from_secs(10))
    );
    let date = http_date(at(40));
    assert_eq!(
        lifetime(&[("expires", &expires), ("date", &date)]),
        Some(Duration::from_secs(60))
    );
    assert_eq!(lifetime(&[("expires", "0")]), Some(Duration::ZERO));
    assert_eq!(lifetime(&[]), None);
    assert_eq!(
        lifetime(&[("cache-control", "max-age=999999")]),
        Some(Duration::from_secs(86_400)),
        "max_ttl caps it"
    );
}

#[test]
fn default_ttl_applies_to_heuristically_cacheable_statuses_only() {
    let limits = Limits {
        default_ttl: Duration::from_secs(30),
        ..LIMITS
    };
    let ok = keep_with(StatusCode::OK, &[], RequestFacts::default(), &limits).unwrap();
    assert_eq!(ok.lifetime, Duration::from_secs(30));
    assert_eq!(
        keep_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            &[],
            RequestFacts::default(),
            &limits
        ),
        Err(NotStored::NoFreshness)
    );
    assert_eq!(keep(&[]), Err(NotStored::NoFreshness), "default_ttl 0");
}

#[test]
fn no_cache_with_a_validator_is_stored_for_validation_without_freshness() {
    let kept = keep(&[("cache-control", "no-cache"), ("etag", "\"abcd\"")]).unwrap();
    assert_eq!(kept.lifetime, Duration::ZERO);
    assert!(kept.always_revalidate && kept.validator);
    assert_eq!(kept.keep, LIMITS.max_ttl, "kept to be validated");
    assert_eq!(
        keep(&[("cache-control", "no-cache")]),
        Err(NotStored::NoFreshness),
        "nothing to validate with"
    );
    assert_eq!(
        keep_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            &[("cache-control", "no-cache"), ("etag", "\"abcd\"")],
            RequestFacts::default(),
            &LIMITS
        ),
        Err(NotStored::NoFreshness),
        "a status not cacheable without freshness"
    );
}

#[test]
fn what_is_never_stored() {
    assert_eq!(
        keep(&[("cache-control", "max-age=60, no-store")]),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        keep(&[("cache-control", "max-age=60, private")]),
        Err(NotStored::Private)
    );
    assert_eq!(
        keep(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
        Err(NotStored::SetCookie)
    );
    assert_eq!(
        keep(&[("cache-control", "max-age=60"), ("vary", "accept, *")]),
        Err(NotStored::VaryAny)
    );
    assert_eq!(
        keep_with(
            StatusCode::PARTIAL_CONTENT,
            &[("cache-control", "max-age=60")],
            RequestFacts::default(),
            &LIMITS
        ),
        Err(NotStored::Status)
    );
    let no_store_request = RequestFacts {
        no_store: true,
        ..RequestFacts::default()
    };
    assert_eq!(
        keep_with(
            StatusCode::OK,
            &[("cache-control", "max-age=60")],
            no_store_request,
            &LIMITS
        ),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        keep(&[("cache-control", "max-age=0")]),
        Err(NotStored::Useless),
        "stale at once, no validator, no stale window"
    );
    assert!(keep(&[("cache-control", "max-age=0"), ("etag", "\"a\"")]).is_ok());
    assert!(keep(&[("cache-control", "max-age=0, stale-while-revalidate=5")]).is_ok());
}

#[test]
fn must_understand_stores_only_understood_statuses_and_overrides_no_store() {
    let fresh = [("cache-control", "max-age=3600, must-understand")];
    let unknown = StatusCode::from_u16(599).unwrap();
    assert_eq!(
        keep_with(unknown, &fresh, RequestFacts::default(), &LIMITS),
        Err(NotStored::Status)
    );
    assert!(keep_with(
        unknown,
        &[("cache-control", "max-age=3600")],
        RequestFacts::default(),
        &LIMITS
    )
    .is_ok());
    assert!(keep(&fresh).is_ok());
    assert!(keep(&[("cache-control", "max-age=3600, must-understand, no-store")]).is_ok());
    assert_eq!(
        keep_with(
            StatusCode::OK,
            &fresh,
            RequestFacts {
                no_store: true,
                ..RequestFacts::default()
            },
            &LIMITS
        ),
        Err(NotStored::NoStore),
        "the request's no-store still holds"
    );
}

#[test]
fn surrogate_control_no_store_for_every_surrogate_is_not_stored() {
    let fresh = ("cache-control", "max-age=10000");
    for value in ["no-store", "max-age=60, NO-STORE"] {
        assert_eq!(
            keep(&[fresh, ("surrogate-control", value)]),
            Err(NotStored::NoStore),
            "{value}"
        );
    }
    for value in ["no-store;other-device", "max-age=60", "no-store-x"] {
        assert!(
            keep(&[fresh, ("surrogate-control", value)]).is_ok(),
            "{value}"
        );
    }
}

#[test]
fn surrogate_control_addressed_here_replaces_cache_control_and_expires() {
    let lifetime = |pairs: &[(&str, &str)]| keep(pairs).map(|keeping| keeping.lifetime);
    let secs = Duration::from_secs;
    assert_eq!(
        lifetime(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=10000;shardproxy"),
        ]),
        Ok(secs(10000)),
        "targeted here: Cache-Control's no-store is for the others"
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=1"),
            ("surrogate-control", "MaX-aGe=3600")
        ]),
        Ok(secs(3600))
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=3600, must-revalidate"),
            ("surrogate-control", "foobar, max-age=1"),
        ]),
        Ok(secs(1)),
        "shorter here than in browsers"
    );
    assert_eq!(
        lifetime(&[
            ("date", &http_date(at(0))),
            ("expires", &http_date(at(10_000))),
            ("surrogate-control", "max-age=0"),
        ]),
        Err(NotStored::Useless),
        "max-age=0 wins over a future Expires"
    );
    assert_eq!(
        lifetime(&[
            ("date", &http_date(at(0))),
            ("expires", &http_date(at(0) - secs(10_000))),
            ("surrogate-control", "max-age=3600"),
        ]),
        Ok(secs(3600)),
        "and over a past one"
    );
    assert_eq!(
        lifetime(&[("surrogate-control", "max-age=99999999999")]),
        Ok(LIMITS.max_ttl),
        "capped like any lifetime"
    );
    for other in ["max-age=3600;not-for-you", "foo"] {
        assert_eq!(
            lifetime(&[("cache-control", "no-store"), ("surrogate-control", other)]),
            Err(NotStored::NoStore),
            "{other}: nothing here acts on, so Cache-Control holds"
        );
    }
}

#[test]
fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let authorized = RequestFacts {
        authorization: true,
        ..RequestFacts::default()
    };
    let with = |cc: &str| {
        keep_with(
            StatusCode::OK,
            &[("cache-control", cc)],
            authorized,
            &LIMITS,
        )
    };
    assert_eq!(with("max-age=60"), Err(NotStored::Authorization));
    assert!(with("max-age=60, public").is_ok());
    assert!(with("s-maxage=60").is_ok());
    assert!(with("max-age=60, must-revalidate").is_ok());
}

#[test]
fn stale_windows_come_from_grace_or_the_response_unless_it_must_revalidate() {
    let limits = Limits {
        grace: Duration::from_secs(10),
        ..LIMITS
    };
    let kept = keep_with(
        StatusCode::OK,
        &[(
            "cache-control",
            "max-age=5, stale-while-revalidate=3, stale-if-error=60",
        )],
        RequestFacts::default(),
        &limits,
    )
    .unwrap();
    assert_eq!(kept.stale_while_revalidate, Duration::from_secs(10));
    assert_eq!(kept.stale_if_error, Duration::from_secs(60));
    assert_eq!(kept.keep, Duration::from_secs(65));
    for strict in [
        "max-age=5, must-revalidate",
        "s-maxage=5",
        "max-age=5, no-cache",
    ] {
        let kept = keep_with(
            StatusCode::OK,
            &[("cache-control", strict), ("etag", "\"x\"")],
            RequestFacts::default(),
            &limits,
        )
        .unwrap();
        assert_eq!(kept.stale_while_revalidate, Duration::ZERO, "{strict}");
        assert_eq!(kept.stale_if_error, Duration::ZERO, "{strict}");
    }
}

#[test]
fn age_is_the_larger_of_apparent_and_corrected_age() {
    let date = http_date(at(0));
    assert_eq!(
        initial_age(&headers(&[("date", &date), ("age", "3")]), at(8), at(10)),
        10,
        "apparent age 10 beats 3 + 2"
    );
    assert_eq!(
        initial_age(&headers(&[("date", &date), ("age", "30")]), at(8), at(10)),
        32
    );
    assert_eq!(initial_age(&headers(&[("age", "x")]), at(0), at(0)), 0);
}

#[test]
fn a_list_based_age_counts_by_its_first_member_and_an_invalid_one_is_ignored() {
    let age_of = |pairs: &[(&str, &str)]| initial_age(&headers(pairs), at(0), at(0));
    assert_eq!(age_of(&[("age", "7200,0")]), 7200);
    assert_eq!(age_of(&[("age", "0, 7200")]), 0);
    assert_eq!(age_of(&[("age", "7200"), ("age", "0")]), 7200);
    assert_eq!(age_of(&[("age", " 60 ")]), 60);
    for invalid in ["abc", "-7200", "7200.0", "7200;foo=bar", ""] {
        assert_eq!(age_of(&[("age", invalid)]), 0, "{invalid:?}");
    }
    assert_eq!(age_of(&[("age", "2147483648")]), 1 << 31);
    assert_eq!(
        age_of(&[("age", "99999999999999999999")]),
        1 << 31,
        "capped at 2^31"
    );
}

#[test]
fn vary_names_are_lower_case_without_duplicates() {
    assert_eq!(
        vary_names(&headers(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "ACCEPT-encoding")
        ])),
        vec![
            HeaderName::from_static("accept-encoding"),
            HeaderName::from_static("accept-language")
        ]
    );
}

#[test]
fn conditionals_compare_etags_weakly_and_dates() {
    let value = |text: &str| HeaderValue::from_str(text).unwrap();
    let etag = value("W/\"v1\"");
    assert!(not_modified(
        Some(&value("\"v0\", \"v1\"")),
        None,
        Some(&etag),
        None
    ));
    assert!(not_modified(Some(&value("*")), None, Some(&etag), None));
    assert!(!not_modified(
        Some(&value("\"v2\"")),
        None,
        Some(&etag),
        None
    ));
    let modified = value(&http_date(at(100)));
    assert!(not_modified(
        None,
        Some(&value(&http_date(at(100)))),
        None,
        Some(&modified)
    ));
    assert!(!not_modified(
        None,
        Some(&value(&http_date(at(99)))),
        None,
        Some(&modified)
    ));
    assert!(
        !not_modified(
            Some(&value("\"v2\"")),
            Some(&value(&http_date(at(200)))),
            Some(&etag),
            Some(&modified)
        ),
        "If-None-Match wins over If-Modified-Since"
    );
}

#[test]
fn a_targeted_field_replaces_cache_control_and_expires() {
    let lifetime = |pairs: &[(&str, &str)]| keep(pairs).map(|keeping| keeping.lifetime);
    assert_eq!(
        lifetime(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600")
        ]),
        Ok(Duration::from_secs(600))
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "no-store")
        ]),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "private")
        ]),
        Err(NotStored::Private)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "private=\"set-cookie\"")
        ]),
        Err(NotStored::Private),
        "private with field names: none of it is kept"
    );
    let expires = http_date(at(600));
    assert_eq!(
        lifetime(&[
            ("cdn-cache-control", "must-revalidate"),
            ("expires", &expires),
            ("date", &http_date(at(0)))
        ]),
        Err(NotStored::NoFreshness),
        "Expires is replaced too"
    );
    assert_eq!(
        lifetime(&[("cdn-cache-control", "foo, max-age=99999999999")]),
        Ok(Duration::from_secs(86_400)),
        "extensions ignored, large values capped (then max_ttl)"
    );
    assert_eq!(
        lifetime(&[("cdn-cache-control", "foo=(a b), max-age=600")]),
        Ok(Duration::from_secs(600)),
        "an extension's inner list is no error"
    );
    assert_eq!(
        lifetime(&[
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store")
        ]),
        Err(NotStored::NoStore),
        "the lines are one value"
    );
}

#[test]
fn an_invalid_or_empty_targeted_field_is_ignored() {
    let lifetime = |pairs: &[(&str, &str)]| keep(pairs).map(|keeping| keeping.lifetime);
    for invalid in [
        "max-age=600, &&&&&",
        "max-age=\"600\"",
        "max-age=-1",
        "max-age =600",
        "max-age= 600",
        "MaX-aGe=600",
        "no-store=1",
        "max-age=(600 60)",
        "",
    ] {
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", invalid)
            ]),
            Ok(Duration::from_secs(5)),
            "{invalid:?}"
        );
    }
}

#[test]
fn the_first_targeted_field_present_and_valid_wins() {
    let targeted = [
        HeaderName::from_static("shardproxy-cache-control"),
        HeaderName::from_static("cdn-cache-control"),
    ];
    let lifetime = |pairs: &[(&str, &str)]| {
        keeping(
            StatusCode::OK,
            &headers(pairs),
            RequestFacts::default(),
            (at(0), at(0)),
            &LIMITS,
            &targeted,
        )
        .map(|keeping| keeping.lifetime)
    };
    let both = [
        ("shardproxy-cache-control", "max-age=10"),
        ("cdn-cache-control", "max-age=20"),
        ("cache-control", "max-age=30"),
    ];
    assert_eq!(lifetime(&both), Ok(Duration::from_secs(10)));
    assert_eq!(lifetime(&both[1..]), Ok(Duration::from_secs(20)));
    assert_eq!(
        lifetime(&[
            ("shardproxy-cache-control", "max-age=oops"),
            ("cdn-cache-control", "max-age=20")
        ]),
        Ok(Duration::from_secs(20)),
        "an invalid first field gives way to the next"
    );
    assert_eq!(lifetime(&both[2..]), Ok(Duration::from_secs(30)));
}
