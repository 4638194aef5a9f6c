//! `reg-refs`: see [`reg_cli::refs`] for its command line and README.md for the contract.

use std::process::ExitCode;

use clap::Parser;
use reg_cli::refs::{run, Args};
use reg_core::cli;

fn main() -> ExitCode {
    cli::run_main("reg-refs", || run(Args::parse()))
}
