//! The ring page (SPEC §14) in a real browser: headless Chromium, driven
//! through chromedriver's W3C WebDriver HTTP API, opens `/ui?token=...` of
//! an in-process proxy whose ring of three real backends comes from an
//! in-process DNS server, behind the admin token.
//!
//! What an operator would look for is checked where the page shows it: an
//! element per instance (`data-instance`), the state of an instance killed
//! (ejected by the health check) and of one drained, changing without a
//! reload; a key typed into the lookup box showing the preference list
//! `/ring/lookup` gives (`data-lookup-result`); a screenshot that is not
//! blank; a phone's width that the page fits; and a console without errors
//! (none from the script, nothing the page's Content-Security-Policy
//! refused). Waits poll the page with a bound, never a fixed sleep.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-test-deps).
//! With `RING_PAGE_SCREENSHOT=FILE` the screenshot is kept there, to look
//! at.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};

use data_encoding::BASE64;
use http::Method;
use serde_json::{json, Value};
use shardproxy::dns_server::{DnsServer, Zone};
use shardproxy::run::Running;
use support::backend::Backend;
use support::client::{request, Client};
use support::process::free_port;
use support::{wait_until, WAIT};

const SRV: &str = "_frob._http.example.com.";
const TOKEN: &str = "page-t0ken";
/// Three instances, a third of the ring each, in four pieces.
const TOKENS: [&[&str]; 3] = [
    &["15", "55", "95", "d5"],
    &["2a", "6a", "aa", "ea"],
    &["40", "80", "c0", "ff"],
];
const KEY: &str = "/users/42";

// === The fleet: DNS, backends, proxy ===

/// A proxy finding the ring in DNS at `dns`, checking its instances'
/// health every 100 ms (an instance stopped is ejected at once), its admin
/// API behind [`TOKEN`].
async fn proxy(dns: SocketAddr) -> Running {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\n\
         [dns]\nservers = [\"{dns}\"]\nrefresh = \"1s\"\n\n\
         [services.frob]\nsrv = \"{}\"\n\
         health_check = {{ path = \"/healthz\", interval = \"100ms\", timeout = \"100ms\" }}\n\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        SRV.trim_end_matches('.')
    );
    support::start_proxy(&config, "ring_page.toml").await
}

/// `method path` on the admin API with the token: the JSON answer.
async fn admin(proxy: &Running, method: Method, path: &str) -> Value {
    let bearer = format!("Bearer {TOKEN}");
    let answer = Client::http1()
        .send(request(
            method,
            proxy.admin,
            path,
            &[("authorization", &bearer)],
            "",
        ))
        .await;
    assert!(answer.status.is_success(), "{path}: {}", answer.text());
    serde_json::from_slice(&answer.body).unwrap()
}

// === The browser ===

/// chromedriver, and the headless Chromium session it runs; both end when
/// dropped.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    client: Client,
    /// Chromium's profile, removed at the end.
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it is ready, and
    /// opens a session of a 1280 x 900 window (its page a little shorter).
    async fn start() -> Browser {
        let addr = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/install-test-deps installs chromium-driver)");
        let client = Client::http1();
        let profile =
            std::env::temp_dir().join(format!("shardproxy-ring-page-{}", std::process::id()));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            client,
            profile,
        };
        wait_until("chromedriver is ready", || {
            let client = browser.client.clone();
            async move {
                let Ok(answer) = client.try_get(addr, "/status").await else {
                    return false;
                };
                let status: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                status["value"]["ready"] == true
            }
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The console, read at the end: a script error, or anything the
            // page's Content-Security-Policy refused, is logged there.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespaces to sandbox in.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let session = browser.call(Method::POST, "/session", capabilities).await;
        browser.session = session["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// `method /path` of WebDriver with `body`: the answer's `value`.
    async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        let body = if method == Method::GET {
            String::new()
        } else {
            body.to_string()
        };
        let answer = self
            .client
            .send(request(
                method,
                self.addr,
                path,
                &[("content-type", "application/json")],
                body,
            ))
            .await;
        let mut value: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(
            answer.status.is_success(),
            "WebDriver {path}: {}",
            answer.text()
        );
        value["value"].take()
    }

    /// `method /session/ID/path`.
    async fn session(&self, method: Method, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    async fn open(&self, url: &str) {
        self.session(Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// What `script` (a function body) returns in the page.
    async fn eval(&self, script: &str) -> Value {
        self.session(
            Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The element `css` selects.
    async fn element(&self, css: &str) -> String {
        let found = self
            .session(
                Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        // The W3C element reference's key.
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Polls `script` until it returns `wanted`; fails the test with what
    /// it returned last after [`WAIT`].
    async fn wait_for(&self, what: &str, script: &str, wanted: &Value) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got = self.eval(script).await;
            if &got == wanted {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}: the page shows {got}, not {wanted}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The console's errors so far (chromedriver's own log endpoint).
    async fn errors(&self) -> Vec<Value> {
        let log = self
            .session(Method::POST, "/se/log", json!({"type": "browser"}))
            .await;
        log.as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .cloned()
            .collect()
    }

    /// A PNG of the window.
    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session(Method::GET, "/screenshot", Value::Null).await;
        BASE64.decode(encoded.as_str().unwrap().as_bytes()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session ends the browser (and its writes to the
        // profile); chromedriver killed alone would leave it running.
        if !self.session.is_empty() {
            let _ = end_session(self.addr, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/ID`, answered once the browser has quit: a plain
/// blocking exchange, as a `Drop` (a failed test's too) can make.
fn end_session(addr: SocketAddr, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    // Its first bytes come once the browser has quit; the connection may
    // stay open after them, so they are all that is waited for.
    let _answered = stream.read(&mut [0; 1024])?;
    Ok(())
}

/// Debian's Chromium: the binary itself, whatever wrapper is on the path.
fn chromium() -> &'static str {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("chromium")
}

/// The width, height and compressed pixel data (IDAT) of a PNG.
fn png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (mut at, mut size, mut data) = (8, (0, 0), Vec::new());
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let body = &bytes[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => {
                size = (
                    u32::from_be_bytes(body[..4].try_into().unwrap()),
                    u32::from_be_bytes(body[4..8].try_into().unwrap()),
                );
            }
            b"IDAT" => data.extend_from_slice(body),
            _ => {}
        }
        at += 12 + length;
    }
    (size.0, size.1, data)
}

/// `[data-instance]` elements of the page: `host:port` → state.
const STATES: &str = "return Object.fromEntries([...document.querySelectorAll('[data-instance]')]\
     .map((row) => [row.dataset.instance, row.dataset.state]));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_page_shows_the_ring_its_changes_and_a_lookup() {
    let mut backends = Vec::new();
    for index in 1..=3 {
        backends.push(Backend::start(&format!("b{index}")).await);
    }
    let zone = Zone::new("example.com.")
        .with_ttl(1)
        .with_records(support::ring_records(SRV, &backends, &TOKENS, 1));
    let dns = DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
        .await
        .unwrap();
    let proxy = proxy(dns.addr()).await;
    let name = |backend: &Backend| format!("{}.example.com:{}", backend.name(), backend.port());
    let browser = Browser::start().await;

    // A blank page first: what a screenshot of nothing weighs.
    browser.open("about:blank").await;
    let blank = browser.screenshot().await;

    browser
        .open(&format!("http://{}/ui?token={TOKEN}", proxy.admin))
        .await;
    let mut states = serde_json::Map::new();
    for backend in &backends {
        states.insert(name(backend), json!("healthy"));
    }
    browser
        .wait_for(
            "every instance is shown",
            STATES,
            &Value::Object(states.clone()),
        )
        .await;
    // The token is kept in the page, not in its address.
    let address = browser.eval("return location.href;").await;
    assert_eq!(address, format!("http://{}/ui", proxy.admin));
    // Set now, gone if the page were loaded again.
    browser
        .eval("window.notReloaded = true; return null;")
        .await;

    // b2 stops: the health check ejects it; b3 is drained. The page shows
    // both on a refresh of its own.
    backends[1].stop().await;
    admin(
        &proxy,
        Method::POST,
        &format!(
            "/instances/drain?service=frob&instance={}",
            name(&backends[2])
        ),
    )
    .await;
    states.insert(name(&backends[1]), json!("ejected"));
    states.insert(name(&backends[2]), json!("drained"));
    browser
        .wait_for(
            "the page shows b2 ejected and b3 drained",
            STATES,
            &Value::Object(states),
        )
        .await;
    assert_eq!(browser.eval("return window.notReloaded;").await, true);

    // A key typed into the lookup box (by keyboard), then Enter.
    let expected = admin(
        &proxy,
        Method::GET,
        &format!("/ring/lookup?service=frob&key={KEY}"),
    )
    .await;
    let list: Vec<String> = expected["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(support::host_port)
        .collect();
    assert_eq!(list.len(), 2, "{expected}");
    let key_box = browser.element("#lookup-key").await;
    browser
        .session(
            Method::POST,
            &format!("/element/{key_box}/value"),
            json!({ "text": format!("{KEY}\u{E007}") }),
        )
        .await;
    browser
        .wait_for(
            "the lookup shows the preference list",
            "const answer = document.querySelector('[data-lookup-result]');\
             return answer && answer.dataset.lookupResult;",
            &json!(list.join(",")),
        )
        .await;
    let hash = expected["hash"].as_str().unwrap();
    let shown = browser
        .eval("return document.getElementById('lookup-answer').textContent;")
        .await;
    assert!(shown.as_str().unwrap().contains(hash), "{shown}");
    // Its primary is marked in the instance table too.
    let marked = browser
        .eval("return [...document.querySelectorAll('tr.in-list')].map((row) => row.dataset.instance);")
        .await;
    assert_eq!(marked.as_array().unwrap().len(), 2, "{marked}");

    // The screenshot shows the ring, not a blank window: a blank page's
    // PNG is a few kilobytes of the same byte, the ring page's many times
    // that, with its compressed pixels spread over every byte value.
    let shot = browser.screenshot().await;
    let (width, height, pixels) = png(&shot);
    // The window less what headless Chromium keeps of its frame.
    assert!(
        width == 1280 && (600..=900).contains(&height),
        "{width} x {height}"
    );
    let (_, _, blank_pixels) = png(&blank);
    assert!(
        pixels.len() > 10 * blank_pixels.len() && pixels.len() > 20_000,
        "the ring page's screenshot ({} bytes of pixels) is barely more than a blank one's ({})",
        pixels.len(),
        blank_pixels.len()
    );
    let mut seen = [false; 256];
    for &byte in &pixels {
        seen[usize::from(byte)] = true;
    }
    assert!(seen.iter().filter(|&&seen| seen).count() > 240);
    // On a phone's width the page does not scroll sideways (its tables
    // may, each in its box), and the lookup form fits.
    browser
        .session(
            Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": true,
            }}),
        )
        .await;
    browser
        .wait_for(
            "the page fits 375 px",
            "const fits = (q) => document.querySelector(q).getBoundingClientRect().right <= 375;\
             return [innerWidth, document.documentElement.scrollWidth,\
                     fits('#lookup-key'), fits('#lookup-form button')];",
            &json!([375, 375, true, true]),
        )
        .await;

    let errors = browser.errors().await;
    assert!(errors.is_empty(), "the console has errors: {errors:?}");
    if let Ok(path) = std::env::var("RING_PAGE_SCREENSHOT") {
        std::fs::write(path, &shot).unwrap();
    }

    drop(browser);
    for backend in backends {
        backend.shutdown().await;
    }
    dns.shutdown().await;
}
