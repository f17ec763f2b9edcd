//! The `shardproxy` binary: parse the command line and run it. Logging is
//! set up by the command, once it knows its config.
//!
//! The library forbids unsafe code; the binary's [`trim`] module makes the
//! glibc calls that give freed heap memory back after bursts, as upkeep
//! the serving commands run (see [`shardproxy::cli::Upkeep`]).

mod trim;

use std::process::ExitCode;

use clap::Parser;
use shardproxy::cli::Cli;

fn main() -> ExitCode {
    shardproxy::cli::run(Cli::parse(), trim::upkeep())
}
