//! `reg-ls`: see [`reg_cli::ls`] for its command line and README.md for the contract.

use std::process::ExitCode;

use clap::Parser;
use reg_cli::common as cli;
use reg_cli::ls::{run, Args};

fn main() -> ExitCode {
    cli::run_main("reg-ls", || run(Args::parse()))
}
