//! `reg-keep`: see [`reg_cli::keep`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::keep::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-keep", run)
}
