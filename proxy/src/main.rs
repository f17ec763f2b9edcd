//! The `shardproxy` binary: parse the command line and run it. Logging is
//! set up by the command, once it knows its config.
//!
//! The library forbids unsafe code; the binary's [`allocator`] module sets
//! the heap (jemalloc) and makes the calls that give freed memory back after
//! bursts, as upkeep the serving commands run (see
//! [`shardproxy::cli::Upkeep`]).

mod allocator;

use std::process::ExitCode;

use clap::Parser;
use shardproxy::cli::Cli;

fn main() -> ExitCode {
    shardproxy::cli::run(Cli::parse(), allocator::upkeep())
}
