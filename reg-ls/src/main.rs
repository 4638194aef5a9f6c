//! `reg-ls`: see [`reg_cli::ls`] for its command line and README.md for the contract.

use std::process::ExitCode;

use clap::Parser;
use reg_cli::ls::{run, Args};
use reg_core::cli;

fn main() -> ExitCode {
    cli::run_main("reg-ls", || run(Args::parse()))
}
