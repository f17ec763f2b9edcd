use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;

use super::*;
use crate::metrics::CacheOutcome;

use crate::headers::map_of as headers;

fn stored(pairs: &[(&str, &str)]) -> Object {
    Object::new(
        Target {
            host: "example.com".into(),
            path: "/a".into(),
        },
        Variant::default(),
        StatusCode::OK,
        headers(pairs),
        Bytes::from_static(b"hello"),
        &Keeping::default(),
        Instant::now(),
    )
}

#[test]
fn a_304_updates_stored_headers_but_not_those_describing_the_stored_body() {
    let object = stored(&[
        ("content-encoding", "gzip"),
        ("content-md5", "stored-digest"),
        ("content-range", "bytes 0-4/5"),
        ("cache-control", "max-age=1"),
        ("x-a", "1"),
        ("x-a", "2"),
        ("x-kept", "yes"),
    ]);
    let updated = object.headers_updated_by(&headers(&[
        ("content-encoding", "br"),
        ("content-md5", "other-digest"),
        ("content-range", "bytes 0-9/10"),
        ("content-length", "10"),
        ("cache-control", "max-age=3600"),
        ("x-a", "3"),
    ]));
    assert_eq!(updated["content-encoding"], "gzip");
    assert_eq!(updated["content-md5"], "stored-digest");
    assert_eq!(updated["content-range"], "bytes 0-4/5");
    assert_eq!(updated["content-length"], "5", "the stored body's length");
    assert_eq!(updated["cache-control"], "max-age=3600");
    let x_a: Vec<_> = updated.get_all("x-a").iter().collect();
    assert_eq!(
        x_a,
        ["3"],
        "a field the 304 carries replaces every stored line"
    );
    assert_eq!(updated["x-kept"], "yes");
}

#[test]
fn a_request_asking_for_min_fresh_is_not_served_stale_while_revalidating() {
    let keeping = Keeping {
        lifetime: Duration::from_secs(1500),
        stale_while_revalidate: Duration::from_secs(600),
        ..Keeping::default()
    };
    let now = Instant::now();
    let object = Object::new(
        Target {
            host: "example.com".into(),
            path: "/a".into(),
        },
        Variant::default(),
        StatusCode::OK,
        HeaderMap::new(),
        Bytes::new(),
        &keeping,
        now,
    );
    let plain = policy::Directives::default();
    let min_fresh = policy::Directives {
        min_fresh: Some(2000),
        ..policy::Directives::default()
    };
    assert!(object.fresh_for(now, &plain));
    assert!(object.stale_while_revalidate(now, &plain));
    assert!(
        !object.fresh_for(now, &min_fresh),
        "1500 s of freshness is less than 2000"
    );
    assert!(!object.stale_while_revalidate(now, &min_fresh));
}

#[test]
fn if_modified_since_is_compared_with_the_date_when_there_is_no_last_modified() {
    let date = "Sun, 09 Sep 2001 01:46:40 GMT";
    let ask = |since: &str| Ask {
        if_modified_since: Some(HeaderValue::from_str(since).unwrap()),
        ..Ask::default()
    };
    let object = std::sync::Arc::new(stored(&[("date", date)]));
    let now = Instant::now();
    let pinned = std::sync::Arc::default();
    assert_eq!(
        object
            .respond(now, CacheOutcome::Hit, &ask(date), &pinned)
            .status(),
        StatusCode::NOT_MODIFIED
    );
    let later = ask("Sun, 09 Sep 2001 01:46:39 GMT");
    assert_eq!(
        object
            .respond(now, CacheOutcome::Hit, &later, &pinned)
            .status(),
        StatusCode::OK
    );
}

#[test]
fn a_304_keeps_the_stored_etag_and_adds_one_to_a_response_stored_without() {
    let tagged = stored(&[("etag", "\"abcdef\""), ("cache-control", "max-age=2")]);
    let updated = tagged.headers_updated_by(&headers(&[
        ("etag", "\"ghijkl\""),
        ("cache-control", "max-age=3600"),
    ]));
    assert_eq!(updated["etag"], "\"abcdef\"");
    assert_eq!(updated["cache-control"], "max-age=3600");

    let untagged = stored(&[("last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")]);
    let updated = untagged.headers_updated_by(&headers(&[("etag", "\"ghijkl\"")]));
    assert_eq!(updated["etag"], "\"ghijkl\"");
}
