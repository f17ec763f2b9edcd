//! What an operator relies on in the first week: request ids end to end
//! (SPEC §9.2), the access log's fields, and error answers that tell a
//! client what went wrong without telling it the inside of the fleet
//! (SPEC §9.7). Real sockets, real backends.

mod support;

use http::{Method, StatusCode};
use support::access_log::AccessLogFile;
use support::backend::Backend;
use support::client::{request, Client};
use support::{instance_line, start_proxy, static_config};

/// The one route.
const ROUTE: &str = "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"";

/// Whether `id` is one the proxy makes: 32 hex digits.
fn is_made(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_answer_carries_a_request_id_that_the_instance_saw_too() {
    let backend = Backend::start("frob1").await;
    let config = static_config(&[instance_line(&backend, &["ff"])], "", ROUTE);
    let proxy = start_proxy(&config, "operability.toml").await;
    let client = Client::http1();
    // None given: the proxy makes one, and both sides see it.
    let answer = client.get(proxy.listen, "/made").await;
    let id = answer.header("x-request-id").expect("an id").to_owned();
    assert!(is_made(&id), "{id}");
    assert_eq!(answer.echo().header("x-request-id"), Some(id.as_str()));
    let again = client.get(proxy.listen, "/made").await;
    assert_ne!(
        again.header("x-request-id"),
        Some(id.as_str()),
        "ids differ"
    );
    // A sane one given: kept both ways.
    let given = [("x-request-id", "edge-7f3a.42")];
    let answer = client
        .send(request(Method::GET, proxy.listen, "/kept", &given, ""))
        .await;
    assert_eq!(answer.header("x-request-id"), Some("edge-7f3a.42"));
    assert_eq!(answer.echo().header("x-request-id"), Some("edge-7f3a.42"));
    // One too long, or with a space: replaced.
    let long = "x".repeat(129);
    for insane in [long.as_str(), "two words"] {
        let given = [("x-request-id", insane)];
        let answer = client
            .send(request(Method::GET, proxy.listen, "/insane", &given, ""))
            .await;
        let id = answer.header("x-request-id").expect("an id");
        assert!(is_made(id), "{insane:?} became {id}");
        assert_eq!(answer.echo().header("x-request-id"), Some(id));
    }
    // The proxy's own errors carry it too, in the header and the body.
    let answer = client
        .send(request(
            Method::GET,
            proxy.listen,
            "/",
            &[("host", "bad host")],
            "",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let id = answer.header("x-request-id").expect("an id on an error");
    assert!(
        answer.text().contains(&format!("request id: {id}")),
        "{}",
        answer.text()
    );
    proxy.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn a_502_names_no_instance_unless_error_detail_is_on() {
    let backend = Backend::start("frob1").await;
    backend.stop().await;
    let port = backend.port().to_string();
    for detail in [false, true] {
        let config = static_config(&[instance_line(&backend, &["ff"])], "", ROUTE).replacen(
            "[server]\n",
            &format!("[server]\nerror_detail = {detail}\n"),
            1,
        );
        let proxy = start_proxy(&config, "operability.toml").await;
        let answer = Client::http1().get(proxy.listen, "/down").await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
        let text = answer.text();
        let id = answer.header("x-request-id").expect("an id");
        assert!(
            text.starts_with(&format!(
                "502 Bad Gateway: no instance could answer the request\nrequest id: {id}\n"
            )),
            "{text}"
        );
        let named = text.contains("frob1.example.com") || text.contains(&port);
        assert_eq!(named, detail, "error_detail = {detail}: {text}");
        proxy.shutdown().await;
    }
    backend.shutdown().await;
}

#[tokio::test]
async fn the_access_log_has_every_field_and_each_attempt() {
    let up = Backend::start("frob1").await;
    let down = Backend::start("frob2").await;
    down.stop().await;
    let log = AccessLogFile::new("fields");
    let config = static_config(
        &[instance_line(&down, &["40"]), instance_line(&up, &["c0"])],
        "slaves = 1",
        &format!("{ROUTE}\n\n{}", log.config("error")),
    );
    let proxy = start_proxy(&config, "operability.toml").await;
    // A key the down instance owns: one refused attempt, then the replica.
    let answer = Client::http1()
        .send(request(
            Method::GET,
            proxy.listen,
            "/a?b=c",
            &[("x-request-id", "logged-1")],
            "",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let sent = answer.body.len();
    let lines = log.wait_for(1).await;
    let line = &lines[0];
    support::access_log::assert_every_key(line);
    let time = line["time"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
        "{time}"
    );
    assert_eq!(line["request_id"], "logged-1");
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/a?b=c");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["tls"], false);
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], sent);
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(line["service"], "frob");
    assert!(line["cache"].is_null());
    let attempts = line["attempts"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = attempts
        .iter()
        .map(|attempt| {
            assert!(attempt["ms"].as_f64().is_some(), "{attempt}");
            (
                attempt["upstream"].as_str().unwrap(),
                attempt["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let (down_name, up_name) = (
        format!("frob2.example.com:{}", down.port()),
        format!("frob1.example.com:{}", up.port()),
    );
    assert_eq!(
        outcomes,
        [(down_name.as_str(), "refused"), (up_name.as_str(), "200")],
        "{line}"
    );
    proxy.shutdown().await;
    up.shutdown().await;
    down.shutdown().await;
}
