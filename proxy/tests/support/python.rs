//! Servers from Python scripts in `tests/support` (WebSocket, gRPC): a
//! child process that prints the port it listens on as its first line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use super::WAIT;

/// A server in a child process, stopped when dropped.
pub struct PythonServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl PythonServer {
    /// Runs `python3 script args...`; ready once it has printed its port
    /// (it listens by then).
    pub fn start(script: &str, args: &[&str]) -> PythonServer {
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/install-test-deps installs its packages)");
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(WAIT)
            .expect("the server says its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} {args:?} did not start: {line:?}"));
        PythonServer { port, child }
    }

    /// Ends the process, and so its listener and connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `python3 script args...` to its end, off the runtime's threads (an
/// in-process proxy serves on them meanwhile), and insists it succeeded.
pub async fn run(script: &str, args: &[&str]) -> Output {
    let mut command = Command::new("python3");
    command.arg(script).args(args);
    let output = tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
        .await
        .expect("the command's thread");
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
