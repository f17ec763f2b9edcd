//! The command line (SPEC §8 and §12): `run`, `check`, `demo`, `ring show`,
//! `ring lookup`, `ring diff`, `ring plan`, `ring publish` and `cache purge`
//! (`purge`).
//!
//! Each command loads the config, resolves the rings it needs once, prints,
//! and returns an exit code: 0 when all went well, 1 on any error, a config
//! that does not load included (SPEC §8 and §9.1: scripts and supervisors
//! test for success, so one failure code serves them all), 2 for a command
//! line clap refuses. `ring diff` and `ring plan` read zone files instead of
//! a config ([`crate::ring_tools`]); `ring publish` sends the change between
//! two of them to the zone's primary server, and exits 3 when what that
//! server publishes is no longer OLD (SPEC §12), so that a script can tell
//! a lost race from a failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, LogFormat};
use crate::discovery::{build_resolver, resolve_source, Resolved, Source, Table};
use crate::logging;
use crate::ring_tools::{self, print};
use crate::view::{LookupView, ServiceView};

mod purge;

/// `shardproxy`: a sharding HTTP reverse proxy whose ring lives in DNS.
#[derive(Debug, Parser)]
#[command(name = "shardproxy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: the proxy on `server.listen`, the admin API on `server.admin`.
    Run {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Everything on one machine: an embedded DNS server publishing a ring,
    /// demo backends, and the proxy, with instructions to try it.
    Demo {
        /// Where the proxy listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the admin API listens.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
        /// How many backends to start (at least 2).
        #[arg(long, value_name = "N", default_value_t = 4)]
        backends: usize,
        /// Publish SRV and A records only, as Kubernetes' cluster DNS does
        /// for a headless service: tokens derived from the instance names,
        /// replication (slaves = 1) from the proxy's config. A backend that
        /// is down stays listed, as with publishNotReadyAddresses: true.
        #[arg(long)]
        srv_only: bool,
        /// With --srv-only: withdraw a down backend's SRV record until it
        /// listens again, as with publishNotReadyAddresses: false.
        #[arg(long, requires = "srv_only")]
        not_ready_leaves: bool,
    },
    /// Validate the config, resolve every ring once and print a summary of
    /// each service; exit 1 on any error.
    Check {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Inspect rings, plan changes to them, and publish them.
    Ring {
        /// What to inspect.
        #[command(subcommand)]
        command: RingCommand,
    },
    /// Act on the caches of this host's proxy and its peers.
    Cache {
        /// What to do.
        #[command(subcommand)]
        command: CacheCommand,
    },
}

/// `shardproxy cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove URLs from the cache of this host's proxy and of every peer
    /// of its [cache_peers].
    ///
    /// Sends each purge to the admin API of this host (server.admin of the
    /// config), which purges its cache and sends the purge on to every
    /// peer, and prints its JSON answer, one line per URL: the objects
    /// purged here, and each peer with "ok" or its error. Exit 0 when
    /// every URL was purged here and on every peer, 1 otherwise.
    Purge {
        /// The config file of this host's proxy.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Remove every object whose path and query start with the URL's,
        /// not just the one.
        #[arg(long, conflicts_with = "tag")]
        prefix: bool,
        /// The arguments are tags (cache.tag_header, Surrogate-Key): remove
        /// every object tagged with each, on every host. Needs --service.
        #[arg(long, requires = "service")]
        tag: bool,
        /// Mark the objects stale instead of removing them: they are served
        /// only as grace and stale-if-error allow, while one request
        /// revalidates or refetches each.
        #[arg(long)]
        soft: bool,
        /// The service whose cache holds the URLs (default: the one the
        /// config's routes send each URL to).
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// http://HOST/PATH?QUERY (that host's object) or /PATH?QUERY (on
        /// every host), with the path and query as clients send them; with
        /// --tag, tags.
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
    },
}

/// `shardproxy ring ...`.
#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// The service's ring as discovered: instances, tokens, ranges, shares,
    /// settings, fingerprint.
    Show {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The service's name in the config.
        #[arg(long, value_name = "NAME")]
        service: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Each key's preference list, in the order the keys were given.
    Lookup {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The service's name in the config.
        #[arg(long, value_name = "NAME")]
        service: String,
        /// One JSON object per line, as `/ring/lookup` answers.
        #[arg(long)]
        json: bool,
        /// The keys, as the proxy would extract them from requests.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// What changes between two zone files: ranges, who loses and gains
    /// them, and the shares of the key space that move.
    ///
    /// Prints every range whose preference list changes, with the instances
    /// that lose and gain it, and the shares of the key space whose primary
    /// changes and whose preference list changes. Exit 0 whether or not
    /// anything changed.
    Diff {
        /// The service's SRV name, e.g. `_frobnicator._http.example.com`.
        #[arg(long, value_name = "NAME")]
        srv: String,
        /// The zone file as published now (RFC 1035 master format).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The zone file about to be published.
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// Print JSON: moved_primary, moved_any, and the ranges.
        #[arg(long)]
        json: bool,
        /// Also report the share of the requests recorded in FILE (the
        /// saved JSON of `GET /ring/load`, recorded on OLD's ring) whose
        /// primary changes.
        #[arg(long, value_name = "FILE")]
        by_load: Option<PathBuf>,
    },
    /// Tokens and records for instances joining a ring, or evenly spaced
    /// tokens for a fresh one.
    ///
    /// Reads the ring from the zone file; each new token splits the largest
    /// range of the ring so far at its midpoint (with `--by-load`, the
    /// busiest range at its request median). Prints the records to
    /// publish (a zone-file fragment) and the share of the key space whose
    /// primary moves. With `--balanced N`: N evenly spaced tokens for a
    /// fresh ring.
    #[command(
        override_usage = "shardproxy ring plan --srv <NAME> --zone <FILE> --add <TARGET:PORT>... [--tokens <N>] [--by-load <FILE>] [--json]\n       shardproxy ring plan --balanced <N> [--json]"
    )]
    Plan(PlanArgs),
    /// Publish a reviewed ring: one DNS UPDATE (RFC 2136) that turns the
    /// ring records of OLD into those of NEW, only if the server still
    /// publishes OLD.
    ///
    /// Sends the zone's primary server one update of the service's SRV,
    /// `tokens.` TXT and `config.` TXT records (address records are left
    /// alone), with prerequisites that every ring RRset of OLD is still as
    /// in OLD, so it applies whole or not at all. Prints the records
    /// deleted and added. Exit 0 applied; 3 the published ring is no
    /// longer OLD (nothing changed); 1 any other error.
    Publish {
        /// The service's SRV name, e.g. `_frobnicator._http.example.com`.
        #[arg(long, value_name = "NAME")]
        srv: String,
        /// The zone's primary server: an IP address, port 53 unless given.
        #[arg(long, value_name = "IP[:PORT]", value_parser = ring_tools::publish::parse_server)]
        server: std::net::SocketAddr,
        /// Sign the update with this TSIG key: a BIND key file
        /// (`key "name" { algorithm hmac-sha256; secret "..."; };`, as
        /// tsig-keygen writes it).
        #[arg(long, value_name = "FILE")]
        tsig_key: Option<PathBuf>,
        /// The zone file as published now: the update applies only if the
        /// server still publishes its ring records.
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The zone file to publish (e.g. OLD with `ring plan`'s records).
        #[arg(value_name = "NEW")]
        new: PathBuf,
    },
}

/// `shardproxy ring plan`: `--srv`, `--zone` and `--add`, or `--balanced`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The service's SRV name, e.g. `_frobnicator._http.example.com`.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "balanced",
        conflicts_with = "balanced"
    )]
    pub srv: Option<String>,
    /// The zone file holding the ring as published now.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "balanced",
        conflicts_with = "balanced"
    )]
    pub zone: Option<PathBuf>,
    /// An instance to add: the SRV target (a full domain name) and port.
    /// Repeat for more; tokens are handed out in the order given.
    #[arg(
        long,
        value_name = "TARGET:PORT",
        required_unless_present = "balanced",
        conflicts_with = "balanced"
    )]
    pub add: Vec<String>,
    /// Tokens for each added instance.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with = "balanced"
    )]
    pub tokens: u32,
    /// Split by load instead of key space: the busiest range of FILE (the
    /// saved JSON of the admin API's `GET /ring/load`, recorded on this
    /// ring) at its request median, so the new instances take requests,
    /// not only keys.
    #[arg(long, value_name = "FILE", conflicts_with = "balanced")]
    pub by_load: Option<PathBuf>,
    /// Instead: N evenly spaced tokens for a fresh ring, one per line; the
    /// i-th (from 1) is floor(i × 2^128 / N) − 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub balanced: Option<u64>,
    /// Print JSON (with `--balanced`, a list of tokens).
    #[arg(long)]
    pub json: bool,
}

/// Work the binary has the serving commands (`run`, `demo`) do every
/// `every` on their main runtime, for what the library cannot do itself: it
/// forbids `unsafe`, so having the allocator give freed heap memory back to
/// the OS after a burst (jemalloc's purge) is the binary's. On the runtime rather
/// than on a thread of its own: with `workers = 1` the process is then
/// single-threaded, and glibc keeps its single-thread fast paths (a second
/// thread cost 0.5% more instructions per request).
pub struct Upkeep {
    /// How often.
    pub every: std::time::Duration,
    /// What; it must return quickly (it runs between requests).
    pub work: Box<dyn FnMut() + Send>,
}

/// Runs the command line; `upkeep` while a serving command runs.
pub fn run(cli: Cli, upkeep: Option<Upkeep>) -> ExitCode {
    // One-shot commands print their results on stdout and log only what
    // goes wrong; `run` logs as its config says, `demo` what it does.
    match &cli.command {
        Command::Run { .. } => {}
        // The demo's own DNS server would log every query at info: a
        // person reads the demo's lines, not those.
        Command::Demo { .. } => logging::init("info,hickory_server=warn", LogFormat::Text),
        _ => logging::init("warn", LogFormat::Text),
    }
    match cli.command {
        Command::Run { config } => serve(&config, upkeep),
        Command::Demo {
            listen,
            admin,
            backends,
            srv_only,
            not_ready_leaves,
        } => demo(
            crate::demo::DemoOptions {
                listen,
                admin,
                backends,
                records: match (srv_only, not_ready_leaves) {
                    (false, _) => crate::demo::Records::Ring,
                    (true, false) => crate::demo::Records::SrvOnly,
                    (true, true) => crate::demo::Records::SrvOnlyReady,
                },
            },
            upkeep,
        ),
        Command::Check { config } => on_one_thread(check(&config)),
        Command::Ring { command } => ring(command),
        Command::Cache {
            command:
                CacheCommand::Purge {
                    config,
                    prefix,
                    tag,
                    soft,
                    service,
                    urls,
                },
        } => {
            let which = match (prefix, tag) {
                (_, true) => purge::Which::Tag,
                (true, false) => purge::Which::Prefix,
                (false, false) => purge::Which::Path,
            };
            on_one_thread(async move {
                purge::run(&config, which, soft, service.as_deref(), &urls).await
            })
        }
    }
}

/// `shardproxy ring ...`: `diff` and `plan` read zone files only (no DNS,
/// no runtime); `show` and `lookup` resolve the service's ring once;
/// `publish` sends one update.
fn ring(command: RingCommand) -> ExitCode {
    match command {
        RingCommand::Show {
            config,
            service,
            json,
        } => on_one_thread(async move { ring_show(&config, &service, json).await }),
        RingCommand::Lookup {
            config,
            service,
            json,
            keys,
        } => on_one_thread(async move { ring_lookup(&config, &service, json, &keys).await }),
        RingCommand::Diff {
            srv,
            old,
            new,
            json,
            by_load,
        } => ring_tools::run_diff(&srv, &old, &new, json, by_load.as_deref()),
        RingCommand::Plan(args) => ring_plan(args),
        RingCommand::Publish {
            srv,
            server,
            tsig_key,
            old,
            new,
        } => on_one_thread(async move {
            ring_tools::publish::run(&srv, server, tsig_key.as_deref(), &old, &new).await
        }),
    }
}

/// `shardproxy ring plan`, either form.
fn ring_plan(args: PlanArgs) -> ExitCode {
    match (args.balanced, args.srv, args.zone) {
        (Some(n), _, _) => ring_tools::run_balanced(n, args.json),
        (None, Some(srv), Some(zone)) => {
            let plan = ring_tools::PlanRequest {
                srv: &srv,
                zone: &zone,
                additions: &args.add,
                tokens: args.tokens,
                by_load: args.by_load.as_deref(),
            };
            ring_tools::run_plan(&plan, args.json)
        }
        // clap requires --srv, --zone and --add without --balanced.
        _ => {
            eprintln!("ring plan needs --srv, --zone and --add, or --balanced N");
            ExitCode::from(2)
        }
    }
}

/// Runs a one-shot command on a single-threaded runtime.
fn on_one_thread(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `shardproxy run`: serves until SIGINT or SIGTERM, then drains; SIGHUP
/// reloads the config file, SIGUSR1 reopens the access log.
fn serve(path: &Path, upkeep: Option<Upkeep>) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    logging::init(&config.log.level, config.log.format);
    // The main thread runs discovery, health checks, the admin API and
    // signals; with more than one worker, requests are served on worker
    // threads of their own (`server::workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = with_workers(config);
    runtime.block_on(async move {
        keep_up(upkeep);
        let running = match crate::run::start(config).await {
            Ok(running) => running,
            Err(error) => {
                eprintln!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(listen = %running.listen, admin = %running.admin, "serving");
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                tracing::warn!(%error, "no SIGHUP handler: reload by restarting");
                None
            }
        };
        let mut rotations = match signal(SignalKind::user_defined1()) {
            Ok(rotations) => Some(rotations),
            Err(error) => {
                tracing::warn!(%error, "no SIGUSR1 handler: the access log is not reopened");
                None
            }
        };
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                Some(()) = next_signal(&mut hangups) => reload(&running, path).await,
                Some(()) = next_signal(&mut rotations) => reopen_access_log(&running),
            }
        }
        tracing::info!("stopping: draining connections");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// `config` with `server.workers` decided: when absent, one per CPU this
/// process may use (`available_parallelism` counts the CPUs of its
/// affinity mask and cgroup quota, not the machine's: a container limited
/// to one CPU serves on the main thread), or one when that is unknown.
fn with_workers(mut config: Config) -> Config {
    let workers = &mut config.server.workers;
    *workers = workers.or_else(|| std::thread::available_parallelism().ok());
    config
}

/// The next signal of `signals`, or never without a handler.
async fn next_signal(signals: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signals {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the access log file again (SIGUSR1), after logrotate moved it.
fn reopen_access_log(running: &crate::run::Running) {
    let Some(log) = running.app().access_log.clone() else {
        return;
    };
    match log.reopen() {
        Ok(()) => tracing::info!("SIGUSR1: access log reopened"),
        Err(error) => tracing::error!(%error, "SIGUSR1: the access log stays as it was"),
    }
}

/// Reloads the config file into the running proxy; a config that does not
/// load, or whose rings do not resolve, is refused and the running one
/// stays.
async fn reload(running: &crate::run::Running, path: &Path) {
    tracing::info!(config = %path.display(), "SIGHUP: reloading the config");
    let config = match Config::load(path) {
        Ok(config) => with_workers(config),
        Err(errors) => {
            for error in errors.iter() {
                tracing::error!(%error, "reload refused: invalid configuration; the running config stays");
            }
            running.reload_refused();
            return;
        }
    };
    match running.reload(config).await {
        Ok(()) => tracing::info!("reload done: the new config is in use"),
        Err(error) => {
            tracing::error!(%error, "reload refused; the running config stays");
        }
    }
}

/// `shardproxy demo`: runs until SIGINT or SIGTERM.
fn demo(options: crate::demo::DemoOptions, upkeep: Option<Upkeep>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        keep_up(upkeep);
        match crate::demo::run(options, stop_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("demo: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Spawns the task that does `upkeep`, if any, for as long as the runtime
/// runs.
fn keep_up(upkeep: Option<Upkeep>) {
    let Some(Upkeep { every, mut work }) = upkeep else {
        return;
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            work();
        }
    });
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, wait for Ctrl-C alone.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Loads the config or prints why not; exit 1 (SPEC §9.1), before
/// anything is bound or resolved.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        // One line per error, each whole, so that each can be grepped.
        for error in errors.iter() {
            eprintln!("invalid configuration: {error}");
        }
        ExitCode::FAILURE
    })
}

/// Resolves one service's ring once, printing the error on failure.
async fn resolve_one(config: &Config, service: &str) -> Result<(Source, Resolved), ExitCode> {
    let Some(source) = config.service(service).map(Source::of) else {
        eprintln!(
            "no service {service:?} in the config (services: {})",
            config.service_names().join(", ")
        );
        return Err(ExitCode::FAILURE);
    };
    let resolver = build_resolver(config.dns_servers()).map_err(|error| {
        eprintln!("{error}");
        ExitCode::FAILURE
    })?;
    match resolve_source(&resolver, &source).await {
        Ok(resolved) => Ok((source, resolved)),
        Err(error) => {
            eprintln!("service {service}: {error}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Loads the config and resolves one service's ring once; warnings go to
/// stderr so that stdout stays machine-readable.
async fn load_and_resolve(path: &Path, service: &str) -> Result<(Source, Resolved), ExitCode> {
    let config = load_config(path)?;
    let found = resolve_one(&config, service).await?;
    for warning in &found.1.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(found)
}

async fn check(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut failed = false;
    let mut text = format!("{}: configuration is valid\n", path.display());
    for name in config.services.keys() {
        match resolve_one(&config, name).await {
            Ok((source, resolved)) => {
                let status = crate::discovery::RefreshStatus::default();
                let now = std::time::SystemTime::now();
                let view = ServiceView::new(
                    name,
                    source.describe(),
                    Some((&resolved.table, now, resolved.replication_from)),
                    &status,
                    false,
                );
                text.push_str(&view.to_text());
                for warning in &resolved.warnings {
                    text.push_str(&format!("  warning: {warning}\n"));
                }
                if resolved.table.is_empty() {
                    text.push_str("  error: the ring has no instance with tokens\n");
                    failed = true;
                }
            }
            Err(_) => failed = true,
        }
    }
    let printed = print(&text);
    if failed {
        ExitCode::FAILURE
    } else {
        printed
    }
}

async fn ring_show(path: &Path, service: &str, json: bool) -> ExitCode {
    let (source, resolved) = match load_and_resolve(path, service).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let view = ServiceView::new(
        service,
        source.describe(),
        Some((
            &resolved.table,
            std::time::SystemTime::now(),
            resolved.replication_from,
        )),
        &crate::discovery::RefreshStatus::default(),
        true,
    );
    if json {
        match serde_json::to_string_pretty(&view) {
            Ok(text) => print(&(text + "\n")),
            Err(error) => {
                eprintln!("cannot write JSON: {error}");
                ExitCode::FAILURE
            }
        }
    } else {
        print(&view.to_text())
    }
}

async fn ring_lookup(path: &Path, service: &str, json: bool, keys: &[String]) -> ExitCode {
    let (_, resolved) = match load_and_resolve(path, service).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let Table::Ring(ring) = &resolved.table else {
        eprintln!("service {service} is not sharded (balance = \"srv\"): it has no ring");
        return ExitCode::FAILURE;
    };
    let mut text = String::new();
    for key in keys {
        let view = LookupView::new(service, key, ring);
        if json {
            match serde_json::to_string(&view) {
                Ok(line) => text.push_str(&line),
                Err(error) => {
                    eprintln!("cannot write JSON: {error}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            text.push_str(&view.to_text());
        }
        text.push('\n');
    }
    print(&text)
}
