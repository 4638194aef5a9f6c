//! `reg-refs`: print the reference graph of a registry's storage as JSON lines.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reg_core::cli::{self, Common, Messages};
use reg_core::refs;

/// Print every reference reachable from the roots (tags, and by default every
/// revision) down to configs and layers, one JSON object per edge, then a
/// trailer with the counts. Fails (exit 1, no trailer) on any manifest it
/// cannot read, so a cut or failed run can never pass for a complete list.
#[derive(Parser, Debug)]
#[command(name = "reg-refs", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    common: Common,

    /// Only tags are roots: untagged manifests stay live only as children of
    /// a live index, as referrers (OCI subject) of a live manifest, or by
    /// --keep-recent.
    #[arg(long)]
    tagged_only: bool,

    /// With --tagged-only: revisions whose link is younger than this stay
    /// roots (e.g. 1h, 7d), guarding pushes in progress.
    #[arg(long, value_name = "DURATION", value_parser = cli::duration, requires = "tagged_only")]
    keep_recent: Option<Duration>,

    /// Only this repository (repeatable); the trailer then says "complete":false.
    #[arg(long = "repo", value_name = "NAME")]
    repos: Vec<String>,
}

fn main() -> ExitCode {
    cli::run_main("reg-refs", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.common.open()?;
    let msgs = Messages::new("reg-refs", args.common.quiet);
    let cfg = refs::Config {
        tagged_only: args.tagged_only,
        keep_recent: args.keep_recent,
        repos: args.repos,
        ..refs::Config::default()
    };
    // Everything is collected before anything is written: a failure leaves
    // stdout empty.
    let graph = refs::collect(&store, &cfg, &msgs)?;
    let mut out = args.common.out();
    cli::written(refs::write(&graph, &mut out))?;
    let s = &graph.stats;
    msgs.summary(format!(
        "{} repos, {} tags, {} revisions, {} manifests ({} distinct parsed), {} references, {} missing",
        s.repos, s.tags, s.revisions, s.manifests, s.parsed, s.references, s.missing
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
