//! `shardproxy run` as a child process: the built binary on a config file
//! of its own, started on free ports and waited on until `/readyz`
//! answers, its stderr collected for the test's messages. Shared by the
//! tests that need the real process (signals, several proxies that talk to
//! each other).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use super::client::{Answer, Client};
use super::WAIT;

/// A running `shardproxy run --config FILE`, its stderr collected. Dropping
/// it kills the process if it still runs and removes the config file.
pub struct Proxy {
    pub child: Child,
    config: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The thread that collects stderr; it ends when the process does.
    reader: Option<std::thread::JoinHandle<()>>,
    pub client: Client,
}

/// Collects the lines of `pipe` (a child's stdout or stderr) as they come,
/// on a thread that ends when the pipe does.
pub fn collect_lines(
    pipe: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let into = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    (text, reader)
}

/// Sends `signal` (`HUP`, `TERM`, ...) to process `pid` with kill(1), as
/// an init system does (`ExecReload=/bin/kill -HUP $MAINPID`).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} failed");
}

/// A port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

impl Proxy {
    /// Writes `config(listen, admin)` to a file of its own (`name` makes it
    /// unique in this test binary) and runs the binary on it until it
    /// serves (`/readyz` answers 200); if it could not bind its ports, tries
    /// again on others.
    pub async fn start(name: &str, config: impl Fn(SocketAddr, SocketAddr) -> String) -> Proxy {
        Proxy::start_on(name, || (free_port(), free_port()), config).await
    }

    /// [`Proxy::start`] on the listen and admin addresses `ports` picks
    /// (again for each try): for a proxy whose admin address others must
    /// know before it starts, `ports` picks a new listen port only.
    pub async fn start_on(
        name: &str,
        ports: impl Fn() -> (SocketAddr, SocketAddr),
        config: impl Fn(SocketAddr, SocketAddr) -> String,
    ) -> Proxy {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("proxy-{}-{name}.toml", std::process::id()));
        let mut last_log = String::new();
        for _ in 0..5 {
            let (listen, admin) = ports();
            if listen == admin {
                continue;
            }
            std::fs::write(&path, config(listen, admin)).expect("the config is written");
            let mut child = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
                .arg("run")
                .arg("--config")
                .arg(&path)
                // The config's [log] level decides what is logged (info in
                // `config`), whatever the environment running the tests
                // says: RUST_LOG would override it.
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the binary runs");
            let (log, reader) = collect_lines(child.stderr.take().expect("stderr is piped"));
            let mut proxy = Proxy {
                child,
                config: path.clone(),
                listen,
                admin,
                log,
                reader: Some(reader),
                client: Client::http1(),
            };
            let started = Instant::now();
            loop {
                if proxy.child.try_wait().expect("try_wait").is_some() {
                    // Exited: most likely a port was taken meanwhile. The
                    // log is whole once the reader has seen its end.
                    if let Some(reader) = proxy.reader.take() {
                        let _ = reader.join();
                    }
                    last_log = proxy.log();
                    break;
                }
                if let Ok(answer) = proxy.try_fetch(admin, "/readyz").await {
                    if answer.status == StatusCode::OK {
                        return proxy;
                    }
                }
                assert!(
                    started.elapsed() < WAIT,
                    "the proxy was not ready within {WAIT:?}; its log:\n{}",
                    proxy.log()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        panic!("the proxy did not start; its last log:\n{last_log}");
    }

    /// Its config file.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    /// Everything it wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Replaces its config file (atomically: the proxy never reads half a
    /// file).
    pub fn write_config(&self, text: &str) {
        let next = self.config.with_extension("next");
        let mut file = std::fs::File::create(&next).expect("create the new config");
        file.write_all(text.as_bytes())
            .expect("write the new config");
        file.sync_all().expect("sync the new config");
        std::fs::rename(&next, &self.config).expect("rename the new config");
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Waits for the process to exit, for at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the proxy did not exit within {within:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `GET http://{to}{path}`, whole, or why not.
    pub async fn try_fetch(&self, to: SocketAddr, path: &str) -> Result<Answer, String> {
        self.client.try_get(to, path).await
    }

    /// `GET path` through the proxy; fails the test on an error.
    pub async fn get(&self, path: &str) -> Answer {
        self.try_fetch(self.listen, path)
            .await
            .unwrap_or_else(|error| panic!("{error}\nthe proxy's log:\n{}", self.log()))
    }

    /// Sends `path` and checks that backend `name` answered it with `200`.
    pub async fn assert_answered_by(&self, path: &str, name: &str) {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        assert_eq!(answer.backend(), Some(name), "{path}");
    }

    /// An admin page, whole; fails the test unless it is a `200`.
    pub async fn admin_text(&self, path: &str) -> String {
        let answer = self
            .try_fetch(self.admin, path)
            .await
            .unwrap_or_else(|error| panic!("{error}\nthe proxy's log:\n{}", self.log()));
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
        answer.text()
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        let text = self.admin_text(path).await;
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{path} is not JSON ({error}): {text}"))
    }

    /// The fingerprint of `service`'s ring in use, from `/ring`.
    pub async fn fingerprint(&self, service: &str) -> String {
        let ring = self.admin_json("/ring").await;
        ring["services"]
            .as_array()
            .and_then(|services| {
                services
                    .iter()
                    .find(|view| view["service"] == service)
                    .and_then(|view| view["fingerprint"].as_str())
            })
            .unwrap_or_else(|| panic!("no fingerprint of {service} in {ring}"))
            .to_owned()
    }

    /// The backend name of the primary of `key` in `service`, from
    /// `/ring/lookup`.
    pub async fn primary(&self, service: &str, key: &str) -> String {
        let lookup = self
            .admin_json(&format!("/ring/lookup?service={service}&key={key}"))
            .await;
        let host = lookup["instances"][0]["host"]
            .as_str()
            .unwrap_or_else(|| panic!("no primary in {lookup}"));
        host.split('.').next().unwrap_or(host).to_owned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}
