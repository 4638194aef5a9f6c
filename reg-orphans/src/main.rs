//! `reg-orphans`: see [`reg_cli::orphans`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::orphans::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-orphans", run)
}
