//! `reg-ls`: see [`reg_cli::ls`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::ls::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-ls", run)
}
