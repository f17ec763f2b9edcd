//! The `shardproxy` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = shardproxy::cli::Cli::parse();
    // A server logs what it does; a one-shot command only what goes wrong
    // (its results go to stdout). RUST_LOG overrides both.
    let default_level = match cli.command {
        shardproxy::cli::Command::Run { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    shardproxy::cli::run(cli)
}
