//! The READMEs tell the truth: every command README.md and
//! deploy/README.md show is run here (or, where it needs root, a cluster or
//! Docker, named with what checks the files it operates on instead), and
//! what it prints is compared with what the text shows after it.
//!
//! README.md is read at test time, so an edit that breaks a command, or a
//! change of the binary that changes its output, fails here. The README is
//! the single source: the commands, their expected output and the inputs
//! they name (`deploy/dns/example.com.zone`, the `frob3 IN A` record of
//! step 1) come from its text. The only changes made to a command before it
//! runs are the [`Substitution`]s (machine paths and addresses a test
//! cannot use), each listed with its reason and each required to apply.
//!
//! Why: README step 5 once grepped `shardproxy_ring_info{service=...` when
//! the labels came out as `{fingerprint=...,service=...}`, and printed
//! nothing; no test ran the command as shown.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bind::BindServer;

/// How long a condition the README promises may take to hold (a ring
/// change reaching the proxy, a reload taking effect, the demo starting):
/// the proxy re-reads the ring every second here, so this is slack for a
/// loaded machine.
const WAIT: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of the section under `heading` (a whole line, `#`s included),
/// to the next heading of the same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"))
        + heading.len()
        + 2;
    let rest = &text[start..];
    let mut offset = 0;
    let mut in_fence = false;
    for line in rest.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !in_fence && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            return &rest[..offset];
        }
        offset += line.len();
    }
    rest
}

/// A fenced code block: its info string (`sh`, `json`, or empty), its
/// lines with the fence's indentation removed, and the prose just before
/// it.
struct Fence {
    info: String,
    lines: Vec<String>,
    before: String,
}

fn fences(text: &str) -> Vec<Fence> {
    let mut fences = Vec::new();
    // The last paragraph of prose, and whether a blank line ended it.
    let mut prose = String::new();
    let mut paragraph_ended = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            if trimmed.is_empty() {
                paragraph_ended = true;
            } else {
                if paragraph_ended {
                    prose.clear();
                    paragraph_ended = false;
                }
                prose.push_str(trimmed);
                prose.push('\n');
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = Vec::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(line.get(indent..).unwrap_or("").to_owned());
        }
        fences.push(Fence {
            info: info.trim().to_owned(),
            lines: body,
            before: std::mem::take(&mut prose),
        });
        paragraph_ended = false;
    }
    fences
}

/// A command as a README shows it (`$ ` lines, `\` continuations joined),
/// and the lines it shows after it, up to the next command.
#[derive(Debug)]
struct Shown {
    command: String,
    output: Vec<String>,
}

fn shown_commands(text: &str) -> Vec<Shown> {
    let mut shown: Vec<Shown> = Vec::new();
    for fence in fences(text) {
        let mut lines = fence.lines.iter();
        while let Some(line) = lines.next() {
            if let Some(command) = line.strip_prefix("$ ") {
                let mut command = command.to_owned();
                while command.ends_with('\\') {
                    command.push('\n');
                    command.push_str(lines.next().expect("a continued command continues"));
                }
                shown.push(Shown {
                    command,
                    output: Vec::new(),
                });
            } else {
                let last = shown.last_mut().unwrap_or_else(|| {
                    panic!("a line before any `$ ` command in a block: {line:?}")
                });
                last.output.push(line.clone());
            }
        }
    }
    shown
}

/// The text of the first `` `code` `` span of `text` that `wanted` accepts.
fn code_span(text: &str, wanted: impl Fn(&str) -> bool) -> &str {
    text.split('`')
        .skip(1)
        .step_by(2)
        .find(|span| wanted(span))
        .unwrap_or_else(|| panic!("no `code` span as wanted in:\n{text}"))
}

/// A change made to a README command before it runs: what the README
/// shows that a test cannot use (a machine's own paths, a name server it
/// cannot reach), replaced by the test's equivalent.
struct Substitution {
    from: &'static str,
    to: String,
    why: &'static str,
}

/// Applies the substitutions that occur in `command`, counting their uses.
fn substitute(command: &str, substitutions: &[Substitution], used: &mut [bool]) -> String {
    let mut command = command.to_owned();
    for (substitution, used) in substitutions.iter().zip(used) {
        if command.contains(substitution.from) {
            command = command.replace(substitution.from, &substitution.to);
            *used = true;
        }
    }
    command
}

/// The directory of the binary under test, first in `PATH` so that the
/// README's `shardproxy ...` is this build; /usr/sbin for BIND's tools.
fn path_with_binary() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_shardproxy"));
    format!(
        "{}:{}:/usr/sbin",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `command` as the README shows it, with bash (pipefail: a failing
/// `shardproxy` before a pipe fails the command), in `dir`.
fn sh(dir: &Path, command: &str) -> Output {
    Command::new("bash")
        .args(["-o", "pipefail", "-c", command])
        .current_dir(dir)
        .env("PATH", path_with_binary())
        .output()
        .expect("bash runs")
}

/// Runs `command` and returns its stdout lines; a failure fails the test.
fn sh_ok(dir: &Path, command: &str) -> Vec<String> {
    let output = sh(dir, command);
    assert!(
        output.status.success(),
        "the README's command failed ({}):\n$ {command}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A loopback address free (for now) for TCP.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` on `addr`: the status and the body (`Connection: close`).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls `condition` every 20 ms until it holds; fails the test with
/// `what` (and the last state `condition` described) after [`WAIT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        match condition() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting until {what}; last:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A `shardproxy` process, killed on drop; its stderr goes to a file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Process {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
            .args(args)
            .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("shardproxy starts");
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test, with the log, if the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("shardproxy exited ({status}):\n{}", self.log());
        }
    }

    /// Sends `signal` (`HUP`, ...) with kill(1), as the unit's
    /// `ExecReload=/bin/kill -HUP $MAINPID` does.
    fn signal(&self, signal: &str) {
        support::process::send_signal(self.child.id(), signal);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `/readyz` to answer 200 on `admin`.
fn wait_ready(process: &mut Process, admin: SocketAddr) {
    wait_until("the proxy is ready", || {
        process.assert_running();
        match http_get(admin, "/readyz") {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// The value of the sample `line_start` (a name with its labels, exactly as
/// exposed) in a `/metrics` page.
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(line_start)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

/// `config` (the text of `deploy/systemd/config.toml`) as it runs here: on
/// loopback ports of the test's, reading the ring from `bind` once a
/// second (the file reads it from the system resolver every 30 s).
fn live_config(config: &str, listen: SocketAddr, admin: SocketAddr, bind: &BindServer) -> String {
    let mut replaced = 0;
    let text: String = config
        .lines()
        .map(|line| {
            let line = if line.starts_with("listen = ") {
                format!("listen = \"{listen}\"")
            } else if line.starts_with("admin = ") {
                format!("admin = \"{admin}\"")
            } else if line.starts_with("refresh = ") {
                format!("servers = [\"{}\"]\nrefresh = \"1s\"", bind.addr())
            } else {
                return format!("{line}\n");
            };
            replaced += 1;
            format!("{line}\n")
        })
        .collect();
    assert_eq!(
        replaced, 3,
        "deploy/systemd/config.toml: expected one listen, admin and refresh line each"
    );
    text
}

/// `config` with the lines that `shown` (the README's `grep -A3` output)
/// has and it lacks put in, each after the line that precedes it in
/// `shown`: the edit step 4 tells the operator to make.
fn edited_config(config: &str, shown: &[String]) -> String {
    let mut lines: Vec<String> = config.lines().map(str::to_owned).collect();
    let mut edits = 0;
    for (i, line) in shown.iter().enumerate() {
        if lines.contains(line) {
            continue;
        }
        let previous = shown.get(i.wrapping_sub(1)).unwrap_or_else(|| {
            panic!("the README's grep output starts with a line the config lacks: {line:?}")
        });
        let at = lines
            .iter()
            .position(|l| l == previous)
            .unwrap_or_else(|| panic!("the config has no line {previous:?}"));
        lines.insert(at + 1, line.clone());
        edits += 1;
    }
    assert!(edits > 0, "step 4's grep shows no line added to the config");
    lines.join("\n") + "\n"
}

/// The word after `fingerprint ` in the line of `lines` starting with
/// `prefix`.
fn fingerprint_in(lines: &[String], prefix: &str) -> String {
    let line = lines
        .iter()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:#?}"));
    line.rsplit_once("fingerprint ")
        .unwrap_or_else(|| panic!("no fingerprint in {line:?}"))
        .1
        .to_owned()
}

/// README "Adding an instance to a live ring, step by step", run as an
/// operator would: the zone of `deploy/dns/example.com.zone` with step 1's
/// address record, served by a real BIND that takes updates signed with a
/// TSIG key only; a `shardproxy run` with the config of
/// `deploy/systemd/config.toml`; then every `$` command of the steps in
/// order, each output compared with what the README shows, exactly.
#[test]
fn the_add_an_instance_procedure_prints_what_the_readme_shows() {
    let readme = read("README.md");
    let steps = section(
        &readme,
        "### Adding an instance to a live ring, step by step",
    );
    let commands = shown_commands(steps);
    assert!(commands.len() >= 8, "{commands:#?}");

    // The inputs the README names: the zone, and step 1's address record.
    let zone_path = code_span(steps, |s| s.starts_with("deploy/") && s.ends_with(".zone"));
    let record = code_span(steps, |s| s.contains(" IN A "));
    let old_zone = format!("{}\n{record}\n", read(zone_path));
    let bind = BindServer::start_with_update_key("example.com", &old_zone);
    let dir = bind.dir().join("operator");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("old.zone"), &old_zone).unwrap();

    // The proxy, with the config step 4 greps (/etc/shardproxy/config.toml,
    // installed from deploy/systemd/config.toml by deploy/README.md).
    let config_path = dir.join("config.toml");
    let installed = read("deploy/systemd/config.toml");
    let (listen, admin) = (free_addr(), free_addr());
    std::fs::write(&config_path, live_config(&installed, listen, admin, &bind)).unwrap();
    let mut proxy = Process::start(
        &dir,
        "proxy",
        &["run", "--config", config_path.to_str().unwrap()],
    );
    wait_ready(&mut proxy, admin);
    lookup_prints_the_shown_line(&readme, &dir, &config_path);

    let substitutions = [
        Substitution {
            from: "/etc/shardproxy/config.toml",
            to: config_path.display().to_string(),
            why: "the config the running test proxy reads",
        },
        Substitution {
            from: "--server 10.0.0.53",
            to: format!("--server {}", bind.addr()),
            why: "the test's BIND (the zone's ns1), on a loopback port",
        },
        Substitution {
            from: "/etc/bind/ddns.key",
            to: bind.update_key_file().unwrap().display().to_string(),
            why: "the TSIG key the test's BIND takes updates signed with",
        },
        Substitution {
            from: "127.0.0.1:9090",
            to: admin.to_string(),
            why: "the test proxy's admin listener, on a free port",
        },
    ];
    let mut used = vec![false; substitutions.len()];
    let mut plan_output = Vec::new();
    let mut plan_command = String::new();
    for shown in &commands {
        let command = substitute(&shown.command, &substitutions, &mut used);
        if shown.command.starts_with("sudo systemctl reload ") {
            // Not run (root, systemd). The unit reloads with SIGHUP; send it
            // to the proxy and wait for the reload to take effect.
            assert!(
                read("deploy/systemd/shardproxy@.service")
                    .lines()
                    .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
                "the unit no longer reloads with SIGHUP"
            );
            proxy.signal("HUP");
            wait_until("the reload has taken effect", || {
                proxy.assert_running();
                let (_, metrics) = http_get(admin, "/metrics").ok_or("no answer")?;
                match sample(&metrics, "shardproxy_config_reloads_total{result=\"ok\"}") {
                    Some(n) if n >= 1.0 => Ok(()),
                    _ => Err(format!("{metrics}\n{}", proxy.log())),
                }
            });
            continue;
        }
        if shown.command.starts_with("grep -A3 ") {
            // Step 4: the operator's edit, then the grep that shows it.
            let edited = edited_config(
                &std::fs::read_to_string(&config_path).unwrap(),
                &shown.output,
            );
            std::fs::write(&config_path, edited).unwrap();
        }
        if shown.command.starts_with("curl ") {
            // The proxy reads the new ring within a refresh: run the
            // command until it prints what the README shows.
            wait_until(
                &format!("`{}` prints what the README shows", shown.command),
                || {
                    proxy.assert_running();
                    let output = sh(&dir, &command);
                    let stdout: Vec<String> = String::from_utf8_lossy(&output.stdout)
                        .lines()
                        .map(str::to_owned)
                        .collect();
                    if stdout == shown.output {
                        Ok(())
                    } else {
                        Err(format!(
                            "got:\n{}\nshown:\n{}",
                            stdout.join("\n"),
                            shown.output.join("\n")
                        ))
                    }
                },
            );
            continue;
        }
        let output = sh_ok(&dir, &command);
        assert_eq!(
            output.join("\n"),
            shown.output.join("\n"),
            "the output of\n$ {}\nis not what the README shows",
            shown.command
        );
        if shown.command.starts_with("shardproxy ring plan ") {
            plan_output = output;
            plan_command = command;
        }
    }
    for (substitution, used) in substitutions.iter().zip(&used) {
        assert!(
            used,
            "no README command has {:?} any more ({}): update the test",
            substitution.from, substitution.why
        );
    }

    // Step 5's other claims: `ring show` and /ring show the fingerprint the
    // plan printed (the README's plan output says which), and the reload
    // of step 4 armed a transition that the ring change started.
    let old = fingerprint_in(&plan_output, "; old ring:");
    let planned = fingerprint_in(&plan_output, "; planned ring:");
    assert_ne!(old, planned);
    let show = sh_ok(
        &dir,
        &format!(
            "shardproxy ring show --config {} --service frobnicator",
            config_path.display()
        ),
    );
    assert!(
        show.iter().any(|line| line.contains(&planned)),
        "ring show does not show {planned}:\n{}",
        show.join("\n")
    );
    let (_, ring) = http_get(admin, "/ring").unwrap();
    assert!(ring.contains(&format!("\"{planned}\"")), "/ring: {ring}");
    let (_, metrics) = http_get(admin, "/metrics").unwrap();
    let remaining = sample(
        &metrics,
        "shardproxy_ring_transition_remaining_seconds{service=\"frobnicator\"}",
    );
    assert!(
        remaining.is_some_and(|s| s > 3600.0),
        "the transition_grace of step 4 is not counting down: {remaining:?}"
    );

    // "What exactly they compute": the JSON of this example, as shown.
    let exact = section(&readme, "### What exactly they compute");
    let json_blocks: Vec<Fence> = fences(exact)
        .into_iter()
        .filter(|f| f.info == "json")
        .collect();
    let diff_block = json_blocks
        .iter()
        .find(|f| f.before.starts_with("`ring diff --json`"))
        .expect("the ring diff --json example");
    let moves: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("moves.json")).unwrap()).unwrap();
    assert_json_shows(&moves, &shown_json(&diff_block.lines));
    let plan_block = json_blocks
        .iter()
        .find(|f| f.before.starts_with("`ring plan --json`"))
        .expect("the ring plan --json example");
    let plan_json_command = plan_command
        .split_once(" | ")
        .expect("step 2's plan is piped to tee")
        .0
        .to_owned()
        + " --json";
    let plan: Value = serde_json::from_str(&sh_ok(&dir, &plan_json_command).join("\n")).unwrap();
    assert_json_shows(&plan, &shown_json(&plan_block.lines));
    assert_eq!(plan["fingerprint"], planned.as_str());
}

/// A README JSON example as a value: a `...` in it (an elided rest of a
/// list) becomes the string `"..."`.
fn shown_json(lines: &[String]) -> Value {
    let text = lines.join("\n").replace("...", "\"...\"");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("README JSON: {e}:\n{text}"))
}

/// Whether `actual` is what `shown` shows: equal, except that a list whose
/// last element is `"..."` shows the first elements of a list at least
/// that long, and `"<32 hex>"` stands for any 32 lowercase hex digits.
fn assert_json_shows(actual: &Value, shown: &Value) {
    fn shows(actual: &Value, shown: &Value) -> bool {
        match (actual, shown) {
            (Value::String(a), Value::String(s)) if s == "<32 hex>" => {
                a.len() == 32
                    && a.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            (Value::Array(a), Value::Array(s)) => match s.split_last() {
                Some((Value::String(last), head)) if last == "..." => {
                    a.len() > head.len() && a.iter().zip(head).all(|(a, s)| shows(a, s))
                }
                _ => a.len() == s.len() && a.iter().zip(s).all(|(a, s)| shows(a, s)),
            },
            (Value::Object(a), Value::Object(s)) => {
                a.len() == s.len()
                    && s.iter()
                        .all(|(key, s)| a.get(key).is_some_and(|a| shows(a, s)))
            }
            _ => actual == shown,
        }
    }
    assert!(
        shows(actual, shown),
        "the README shows\n{shown:#}\nbut the command prints\n{actual:#}"
    );
}

/// README "Command line": the `ring lookup --json` line it shows, run on
/// the ring of `deploy/dns/example.com.zone` (whose `frob1.example.com` is
/// `10.0.0.1`) with `config` (a config reading that ring as
/// `frobnicator`) renamed to the service name of the example.
fn lookup_prints_the_shown_line(readme: &str, dir: &Path, config_path: &Path) {
    let command_line = section(readme, "## Command line");
    let example = code_span(command_line, |s| s.starts_with("{\"service\":"));
    let example = shown_json(&[example.to_owned()]);
    let lookup_config = dir.join("lookup.toml");
    std::fs::write(
        &lookup_config,
        std::fs::read_to_string(config_path)
            .unwrap()
            .replace(
                "[services.frobnicator]",
                &format!("[services.{}]", example["service"].as_str().unwrap()),
            )
            .replace(
                "service = \"frobnicator\"",
                &format!("service = {}", example["service"]),
            ),
    )
    .unwrap();
    let line = sh_ok(
        dir,
        &format!(
            "shardproxy ring lookup --json --config {} --service {} {}",
            lookup_config.display(),
            example["service"].as_str().unwrap(),
            example["key"].as_str().unwrap()
        ),
    );
    assert_eq!(line.len(), 1, "{line:?}");
    assert_json_shows(&serde_json::from_str(&line[0]).unwrap(), &example);
}

/// The long options `shardproxy ARGS --help` lists, `--help` left out.
fn help_options(args: &[&str]) -> std::collections::BTreeSet<String> {
    let mut command = args.to_vec();
    command.push("--help");
    let output = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(&command)
        .output()
        .unwrap();
    assert!(output.status.success(), "shardproxy {command:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    let options = help
        .split_once("\nOptions:\n")
        .unwrap_or_else(|| panic!("no options in:\n{help}"))
        .1;
    options
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with("--"))
                .map(|word| word.trim_end_matches(',').to_owned())
        })
        .filter(|option| option != "--help" && option != "--version")
        .collect()
}

/// The subcommands `shardproxy ARGS --help` lists, `help` left out.
fn help_subcommands(args: &[&str]) -> Vec<String> {
    let mut command = args.to_vec();
    command.push("--help");
    let output = Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(&command)
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let commands = help
        .split_once("\nCommands:\n")
        .unwrap_or_else(|| panic!("no commands in:\n{help}"))
        .1;
    commands
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// README "Command line" shows every subcommand with exactly the options
/// its `--help` lists: a synopsis line naming an option the binary lacks,
/// or leaving one out, fails.
#[test]
fn the_command_line_synopsis_is_what_the_binary_takes() {
    let readme = read("README.md");
    let block = fences(section(&readme, "## Command line"))
        .into_iter()
        .find(|f| f.info == "sh")
        .expect("the synopsis block");
    let mut shown: std::collections::BTreeMap<Vec<String>, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for line in &block.lines {
        let line = line.split(" # ").next().unwrap();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("shardproxy"), "{line}");
        let words: Vec<&str> = words.collect();
        let path: Vec<String> = words
            .iter()
            .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            .map(|w| (*w).to_owned())
            .collect();
        let options = words
            .iter()
            .filter_map(|w| {
                let w = w.trim_start_matches('[').trim_end_matches(']');
                w.starts_with("--").then(|| w.to_owned())
            })
            .collect::<Vec<_>>();
        shown.entry(path).or_default().extend(options);
    }
    let mut expected_paths = Vec::new();
    for name in help_subcommands(&[]) {
        if name == "ring" || name == "cache" {
            for sub in help_subcommands(&[name.as_str()]) {
                expected_paths.push(vec![name.clone(), sub]);
            }
        } else {
            expected_paths.push(vec![name]);
        }
    }
    assert_eq!(
        shown.keys().cloned().collect::<Vec<_>>(),
        {
            let mut sorted = expected_paths.clone();
            sorted.sort();
            sorted
        },
        "the README's synopsis and the binary's subcommands differ"
    );
    for (path, options) in &shown {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        assert_eq!(
            options,
            &help_options(&path),
            "README synopsis of `shardproxy {}` and its --help list different options",
            path.join(" ")
        );
    }
}

/// README "Try it": `cargo run --release -- demo` runs the binary's `demo`
/// (this build of it, on free ports: `--listen` and `--admin` are in the
/// synopsis): one process that starts a DNS server, four backends and the
/// proxy, prints what it started and what to try, and answers requests.
/// (`scripts/test`, the block's other command, is the runner of this test.)
#[test]
fn the_demo_starts_and_prints_what_to_try() {
    let readme = read("README.md");
    let block = fences(section(&readme, "## Try it"))
        .into_iter()
        .find(|f| f.info == "sh")
        .expect("the Try it block");
    let commands: Vec<&String> = block
        .lines
        .iter()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- demo", "scripts/test"],
        "the Try it commands changed: update this test"
    );
    assert!(repo().join("scripts/test").is_file());

    let dir = std::env::temp_dir().join(format!("shardproxy-readme-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let mut demo = Process::start(
        &dir,
        "demo",
        &[
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ],
    );
    wait_ready(&mut demo, admin);
    let out = dir.join("demo.out");
    wait_until("the demo has printed its instructions", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("Press Ctrl-C to stop.") {
            Ok(())
        } else {
            Err(text)
        }
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("a DNS server, 4 backends and the proxy, all in this process"),
        "{text}"
    );
    assert!(text.contains("\nTry it:\n"), "{text}");
    assert!(
        text.contains(&format!("curl -i http://{listen}/users/42")),
        "{text}"
    );
    assert!(
        text.contains(&format!("#   http://{admin}/ui\n")),
        "the ring page's address: {text}"
    );
    let (status, body) = http_get(listen, "/users/42").expect("the demo proxy answers");
    assert_eq!(status, 200, "{body}");
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every block of README.md that shows commands is one a test here runs:
/// a new one fails this test until it is.
#[test]
fn every_command_block_of_the_readme_is_tested() {
    let readme = read("README.md");
    let tested = [
        "## Try it",
        "## Command line",
        "### Adding an instance to a live ring, step by step",
    ];
    let tested_blocks: usize = tested
        .iter()
        .map(|heading| {
            fences(section(&readme, heading))
                .iter()
                .filter(|f| f.info == "sh" || f.lines.iter().any(|l| l.starts_with("$ ")))
                .count()
        })
        .sum();
    let all_blocks = fences(&readme)
        .iter()
        .filter(|f| f.info == "sh" || f.lines.iter().any(|l| l.starts_with("$ ")))
        .count();
    assert_eq!(
        all_blocks, tested_blocks,
        "README.md has a command block outside the sections {tested:?}: test it here"
    );
    assert_eq!(tested_blocks, 2 + 5, "the tested sections' blocks changed");
}

/// The commands of a shell block, one per entry: `\` continuations joined,
/// a `for` loop through its `done` as one command, comments and blank
/// lines left out.
fn shell_commands(lines: &[String]) -> Vec<String> {
    let mut commands = Vec::new();
    let mut lines = lines.iter();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut command = line.clone();
        while command.ends_with('\\') || (command.starts_with("for ") && !command.ends_with("done"))
        {
            command.push('\n');
            command.push_str(lines.next().expect("an unfinished command goes on"));
        }
        commands.push(command);
    }
    commands
}

/// What becomes of a deploy/README.md command here.
enum Disposition {
    /// Run, its output compared by the test.
    Run,
    /// Not run: it needs what CI lacks. `checked_by` says what validates
    /// the files it operates on; the test checks that every repository
    /// path the command names exists.
    NotRun {
        why: &'static str,
        checked_by: &'static str,
    },
}

/// Every command of deploy/README.md's shell blocks, by its start.
const DEPLOY_COMMANDS: &[(&str, Disposition)] = &[
    (
        "cargo build --release --locked -p shardproxy",
        Disposition::NotRun {
            why: "a release build takes minutes; cargo test builds the same package and binary",
            checked_by: "cargo test (CARGO_BIN_EXE_shardproxy); the Dockerfile runs the same command",
        },
    ),
    (
        "install ",
        Disposition::NotRun {
            why: "writes to /usr/local/bin and /etc (root)",
            checked_by: "this test: every source file exists; deploy/check verifies the units and config",
        },
    ),
    (
        "systemctl ",
        Disposition::NotRun {
            why: "needs root and systemd as PID 1",
            checked_by: "deploy/check: systemd-analyze verify and security --offline on the unit's two slots, shellcheck on shardproxy-handover, a handover of two shardproxy run processes with systemd/config.toml",
        },
    ),
    ("named-checkzone example.com deploy/dns/example.com.zone", Disposition::Run),
    (
        "docker ",
        Disposition::NotRun {
            why: "no Docker engine on the development and CI machines",
            checked_by: "this test: the Dockerfile, its .dockerignore and the -t tag's context exist; deploy/README.md says the image is not built",
        },
    ),
    (
        "shardproxy ring ",
        Disposition::NotRun {
            why: "old.zone and the zone's primary server are the operator's",
            checked_by: "this file runs the same plan, diff and publish in README.md's walkthrough against BIND and compares their output; tests/publish_e2e.rs publishes to BIND and Knot DNS",
        },
    ),
    (
        "cat old.zone plan.txt > new.zone",
        Disposition::NotRun {
            why: "old.zone is the operator's",
            checked_by: "this file runs the same command in README.md's walkthrough",
        },
    ),
    (
        "for admin in ",
        Disposition::NotRun {
            why: "needs a fleet of proxies and instances",
            checked_by: "tests/writes.rs drains and undrains an instance through the admin API and checks where reads and writes go",
        },
    ),
    (
        "kubectl apply ",
        Disposition::NotRun {
            why: "needs a cluster",
            checked_by: "deploy/check: the manifests parse and agree, the init container's script runs, the ConfigMap's config loads and reads a cluster.local ring from BIND",
        },
    ),
];

/// deploy/README.md: every command of its shell blocks is run here with
/// its result checked, or named in [`DEPLOY_COMMANDS`] with what checks
/// the files it works on (and those files exist). A command added to the
/// README that is neither fails this test.
#[test]
fn every_command_of_the_deploy_readme_runs_or_is_checked() {
    let text = read("deploy/README.md");
    let commands: Vec<String> = fences(&text)
        .iter()
        .filter(|f| f.info == "sh")
        .flat_map(|f| shell_commands(&f.lines))
        .collect();
    assert!(commands.len() >= 12, "{commands:#?}");
    let mut ran = 0;
    for command in &commands {
        let (_, disposition) = DEPLOY_COMMANDS
            .iter()
            .find(|(start, _)| command.starts_with(start))
            .unwrap_or_else(|| {
                panic!(
                    "deploy/README.md shows a command this test neither runs nor lists: {command}"
                )
            });
        // Every repository path the command names exists.
        for word in command.split(|c: char| c.is_whitespace() || c == '"') {
            if word.starts_with("deploy/") || word.starts_with("target/") {
                let path = word.trim_end_matches(';');
                if path.starts_with("target/") {
                    assert_eq!(
                        path, "target/release/shardproxy",
                        "where cargo build --release puts the binary"
                    );
                    continue;
                }
                assert!(
                    repo().join(path).exists(),
                    "{path}, named by `{command}`, does not exist"
                );
            }
        }
        match disposition {
            Disposition::NotRun { why, checked_by } => {
                assert!(!why.is_empty() && !checked_by.is_empty());
            }
            Disposition::Run => {
                assert!(
                    command.starts_with("named-checkzone "),
                    "only named-checkzone is run here: {command}"
                );
                let output = sh_ok(&repo(), command);
                assert_eq!(
                    output,
                    ["zone example.com/IN: loaded serial 2024060101", "OK"],
                    "$ {command}"
                );
                ran += 1;
            }
        }
    }
    assert_eq!(ran, 1, "the runnable commands were not all found");
    // The docker commands' files (the -f path is checked above).
    assert!(repo()
        .join("deploy/docker/Dockerfile.dockerignore")
        .is_file());
}
