//! `GET /ui` (SPEC §14): the ring page, one HTML document that draws each
//! service's ring from the admin API's own JSON (`/ring`, `/ring/lookup`,
//! `/keys/hot`, `/ring/load`), refreshed in place every two seconds.
//!
//! The page is built into the binary (`ui/ring.html`, `ui/ring.css` and
//! `ui/ring.js`, put together once) so that it works wherever the proxy
//! runs, offline and with nothing else to deploy, and it loads nothing from
//! any other host. Its style and script are inline, and the
//! `Content-Security-Policy` allows exactly those two by their SHA-256
//! (CSP level 2 hashes) and nothing else: no other script, no inline
//! `style` attribute, no frame, no form target, and connections to the
//! admin listener only. It is sent `no-store`, and with no `Referer` for
//! what it asks: its address may hold the token (below).
//!
//! With `server.admin_token`, the page is behind the token like the rest of
//! the API (`auth`), which for `/ui` alone also takes it from a `?token=`
//! query, as a browser cannot send a bearer header on a navigation. The
//! script keeps the token in the page, sends it as `Authorization: Bearer`
//! on its requests, and takes it out of the address bar.

use std::sync::LazyLock;

use bytes::Bytes;
use data_encoding::BASE64;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls::SupportedCipherSuite;

use super::reply::{reply, text};

const HTML: &str = include_str!("ui/ring.html");
const CSS: &str = include_str!("ui/ring.css");
const JS: &str = include_str!("ui/ring.js");

/// Where `ring.html` takes the style and the script.
const STYLE_SLOT: &str = "<style></style>";
const SCRIPT_SLOT: &str = "<script></script>";

const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The page and its policy, put together on the first request: the same
/// bytes for the life of the process, so it is done once.
static PAGE: LazyLock<Page> = LazyLock::new(Page::assemble);

/// The assembled page.
struct Page {
    body: Bytes,
    /// `Content-Security-Policy`, or `None` when it could not be made (no
    /// SHA-256): the page is then refused rather than served without it.
    policy: Option<HeaderValue>,
}

// === impl Page ===

impl Page {
    fn assemble() -> Page {
        let body = HTML
            .replacen(STYLE_SLOT, &format!("<style>{CSS}</style>"), 1)
            .replacen(SCRIPT_SLOT, &format!("<script>{JS}</script>"), 1);
        let policy = match (sha256(CSS), sha256(JS)) {
            (Some(style), Some(script)) => HeaderValue::try_from(format!(
                "default-src 'none'; style-src '{style}'; script-src '{script}'; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'"
            ))
            .ok(),
            _ => None,
        };
        Page {
            body: Bytes::from(body),
            policy,
        }
    }
}

/// `sha256-<base64>` of `text`, as CSP names an inline element, with the
/// SHA-256 of the TLS provider the proxy already carries.
fn sha256(text: &str) -> Option<String> {
    let SupportedCipherSuite::Tls13(suite) = TLS13_AES_128_GCM_SHA256 else {
        return None;
    };
    let digest = suite.common.hash_provider.hash(text.as_bytes());
    Some(format!("sha256-{}", BASE64.encode(digest.as_ref())))
}

/// `/ui`: the page, with headers that keep it to itself.
pub(super) fn page() -> Response<Full<Bytes>> {
    let Some(policy) = PAGE.policy.clone() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the ring page cannot be served: no SHA-256 for its content security policy\n",
        );
    };
    let mut response = reply(StatusCode::OK, CONTENT_TYPE, PAGE.body.clone());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    // A page opened with `?token=` must not be kept, nor its address sent
    // on.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the page holds between `open` and the next `</`.
    fn inline<'a>(page: &'a str, open: &str) -> &'a str {
        let start = page.find(open).unwrap() + open.len();
        let end = start + page[start..].find("</").unwrap();
        &page[start..end]
    }

    #[test]
    fn the_policy_allows_the_inline_style_and_script_and_nothing_else() {
        let response = page();
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        let page = std::str::from_utf8(&PAGE.body).unwrap();
        assert_eq!(page.matches("<style").count(), 1);
        assert_eq!(page.matches("<script").count(), 1);
        let style = sha256(inline(page, "<style>")).unwrap();
        let script = sha256(inline(page, "<script>")).unwrap();
        assert!(
            policy.contains(&format!("style-src '{style}';")),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("script-src '{script}';")),
            "{policy}"
        );
        // CSS and script hold no `</` that would end their element early.
        assert_eq!(inline(page, "<style>"), CSS);
        assert_eq!(inline(page, "<script>"), JS);
        assert!(
            !page.contains(" style="),
            "the policy refuses inline style attributes"
        );
    }

    #[test]
    fn sha256_is_the_one_csp_expects() {
        // `printf '' | openssl sha256 -binary | base64`
        assert_eq!(
            sha256("").as_deref(),
            Some("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
    }
}
