//! `reg-refs`: print the reference graph of a registry's storage as JSON lines.

use std::process::ExitCode;
use std::time::Duration;

use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::messages::Messages;
use reg_core::refs;

use crate::live::Live;

const EXAMPLES: &str = "\
Examples:
  reg-refs /srv/registry | reg-orphans /srv/registry | reg-rm /srv/registry
                                                    a garbage collection
  reg-refs --tagged-only --keep-recent 1h /srv/registry | reg-orphans /srv/registry
                                                    also what is untagged (but recent)
  reg-refs --exclude-repo old/app /srv/registry | reg-orphans /srv/registry
                                                    what deleting old/app would free (what-if)";

/// Print every reference reachable from the roots (tags, and by default every
/// revision) down to configs and layers, one JSON object per edge, then a
/// trailer with the counts. Fails (exit 1, no trailer) on any manifest it
/// cannot read, so a cut or failed run can never pass for a complete list.
#[derive(Parser, Debug)]
#[command(name = "reg-refs", version, long_about = None, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Only tags are roots: untagged manifests stay live only as children of
    /// a live index, as referrers (OCI subject) of a live manifest, or by
    /// --keep-recent.
    #[arg(long)]
    pub tagged_only: bool,

    /// With --tagged-only: revisions whose link is younger than this stay
    /// roots (e.g. 1h, 7d), guarding pushes in progress.
    #[arg(long, value_name = "DURATION", value_parser = cli::duration, requires = "tagged_only")]
    pub keep_recent: Option<Duration>,

    /// Only this repository (repeatable); the trailer then says "complete":false.
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,

    /// What-if: compute the graph as if this repository were deleted (its tags
    /// and revisions are not roots; repeatable). The trailer says
    /// "excluded":[…]; reg-orphans answers what that would free, and reg-rm
    /// refuses such a list.
    #[arg(long = "exclude-repo", value_name = "NAME", conflicts_with = "repos")]
    pub exclude_repos: Vec<String>,

    /// Print the summary line on stderr even when it is not a terminal.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let store = args.common.open()?;
    let msgs = Messages::new("reg-refs", args.common.quiet).summary_when(crate::show_summary(args.stats));
    let local = cli::local_now()?;
    let cfg = refs::Config {
        tagged_only: args.tagged_only,
        keep_recent: args.keep_recent,
        repos: args.repos,
        exclude_repos: args.exclude_repos,
        now: Some(store.now(local, &msgs)?),
        ..refs::Config::default()
    };
    // Everything is collected before anything is written: a failure leaves
    // stdout empty.
    let mut live = Live::start_for("reg-refs", &msgs, &store);
    let graph = refs::collect(&store, &cfg, &msgs)?;
    live.finish();
    // Against the clock now: files written during a long walk are not ahead.
    store.check_tree_clock(cli::local_now()?, &msgs);
    let mut out = args.common.out();
    cli::written(refs::write(&graph, &mut out, &msgs))?;
    let s = &graph.stats;
    let what_if = if cfg.exclude_repos.is_empty() {
        String::new()
    } else {
        format!(" (what-if: as if {} were deleted)", cfg.exclude_repos.join(", "))
    };
    msgs.summary(cli::with_requests(&store, format!(
        "{} repos, {} tags, {} revisions, {} manifests ({} distinct parsed), {} references, {} missing{what_if}",
        s.repos, s.tags, s.revisions, s.manifests, s.parsed, s.references, s.missing
    )));
    Ok(msgs.exit_code())
}
