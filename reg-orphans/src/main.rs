//! `reg-orphans`: read `reg-refs` output on stdin, print what nothing references.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use reg_core::cli::{self, Common, Messages};
use reg_core::orphans;

/// Print what nothing references: blobs, revisions, dangling _layers links,
/// stale uploads and empty repositories, one JSON object per line, given the
/// complete output of `reg-refs ROOT` on stdin (bare digest lines are kept
/// too). Incomplete input (no reg-refs trailer, a cut line) is refused:
/// nothing is printed and the exit status is 1.
#[derive(Parser, Debug)]
#[command(name = "reg-orphans", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    common: Common,

    /// Never report blobs and links younger than this (grace period for
    /// pushes in progress).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cli::duration)]
    min_age: Duration,

    /// Report uploads started longer ago than this (the registry purges
    /// them after 168h).
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = cli::duration)]
    upload_age: Duration,
}

fn main() -> ExitCode {
    cli::run_main("reg-orphans", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.common.open()?;
    let msgs = Messages::new("reg-orphans", args.common.quiet);
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!("reads the output of reg-refs on stdin: reg-refs ROOT | reg-orphans ROOT");
    }
    let cfg = orphans::Config {
        min_age: args.min_age,
        upload_age: args.upload_age,
        now: SystemTime::now(),
    };
    let mut out = args.common.out();
    let (end, input) = orphans::run(&store, stdin.lock(), &cfg, &mut out, &msgs)?;
    msgs.summary(format!(
        "orphans: {} blobs ({} bytes), {} revisions, {} layer links, {} uploads ({} bytes), {} repos; \
         {} too young to report; stored: {} blobs; read {} input lines",
        end.blobs,
        end.blob_bytes,
        end.revisions,
        end.layers,
        end.uploads,
        end.upload_bytes,
        end.repos,
        end.too_young,
        end.stored_blobs,
        input.lines,
    ));
    Ok(msgs.exit_code())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
