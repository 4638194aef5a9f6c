//! `reg-refs`: see [`reg_cli::refs`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::refs::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-refs", run)
}
