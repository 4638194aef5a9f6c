//! `reg-orphans`: see [`reg_cli::orphans`] for its command line and README.md for the contract.

use std::process::ExitCode;

use clap::Parser;
use reg_cli::common as cli;
use reg_cli::orphans::{run, Args};

fn main() -> ExitCode {
    cli::run_main("reg-orphans", || run(Args::parse()))
}
