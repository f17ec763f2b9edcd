//! The `shardproxy` binary: parse the command line and run it. Logging is
//! set up by the command, once it knows its config.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    shardproxy::cli::run(shardproxy::cli::Cli::parse())
}
