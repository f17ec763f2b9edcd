//! The binary's exit codes and messages for configs (SPEC §8, §9.1): every
//! config error is exit 1, for `check` and for `run` (before anything is
//! bound), and every error of a file is reported in one run.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Static instances only, so `check` resolves without DNS; both listeners
/// on port 0, so a `run` that wrongly started would not clash with anything.
const VALID: &str = r#"[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[services.frob]
instances = [{ host = "frob1.example.com", addr = "127.0.0.1:8081" }]

[[routes]]
service = "frob"
"#;

/// `text` in a file of its own, named after the test.
fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shardproxy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary to its end; a run still going after 20 s is killed and
/// fails the test (a `run` that serves instead of refusing its config).
fn shardproxy(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shardproxy binary runs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("shardproxy {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_accepts_a_valid_config() {
    let path = write("valid", VALID);
    let output = shardproxy(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn check_exits_1_on_an_invalid_config_naming_every_error() {
    let text = VALID.replacen(
        "[services.frob]\n",
        "[log]\nlevel = \"warning\"\n\n[services.frob]\ntry_timeout = 5\n",
        1,
    );
    let path = write("two-errors", &text);
    let output = shardproxy(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    let file = path.display();
    assert!(
        stderr.contains(&format!("{file}:6:9: log.level = \"warning\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:9:15: services.frob.try_timeout = 5")),
        "{stderr}"
    );
}

#[test]
fn run_exits_1_on_an_invalid_config() {
    let text = VALID.replacen(
        "[services.frob]\n",
        "[services.frob]\ndeadline = \"0s\"\n",
        1,
    );
    let path = write("run-invalid", &text);
    let output = shardproxy(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("services.frob.deadline = \"0s\": must be more than 0s"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_exit_1() {
    let output = shardproxy(&["check", "--config", "/nonexistent/shardproxy.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}
