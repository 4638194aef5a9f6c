//! `reg-rm`: see [`reg_cli::rm`] for its command line and README.md for the contract.

use std::process::ExitCode;

use reg_cli::common as cli;
use reg_cli::rm::{run, Args};

fn main() -> ExitCode {
    cli::main::<Args>("reg-rm", run)
}
