//! The `shardproxy` binary: parse the command line and run it. Logging is
//! set up by the command, once it knows its config.
//!
//! The library forbids unsafe code; the binary's [`trim`] module makes the
//! two glibc calls that give freed heap memory back after bursts.

mod trim;

use std::process::ExitCode;

use clap::Parser;
use shardproxy::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only the commands that serve traffic live long enough to need it.
    if matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        trim::spawn();
    }
    shardproxy::cli::run(cli)
}
