//! `reg-pulls`: see [`reg_cli::pulls`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::pulls::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-pulls", run)
}
