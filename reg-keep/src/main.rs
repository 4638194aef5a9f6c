//! `reg-keep`: see [`reg_cli::keep`] for its command line and README.md for the contract.

use std::process::ExitCode;

use clap::Parser;
use reg_cli::common as cli;
use reg_cli::keep::{run, Args};

fn main() -> ExitCode {
    cli::run_main("reg-keep", || run(Args::parse()))
}
