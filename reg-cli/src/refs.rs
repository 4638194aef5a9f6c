//! `reg-refs`: print the reference graph of a registry's storage as JSON lines.

use std::process::ExitCode;
use std::time::Duration;

use crate::check_repo_names;
use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::messages::count;
use reg_core::refs;

use crate::progress_line::ProgressLine;

const EXAMPLES: &str = "\
Examples:
  reg-refs /srv/registry | reg-orphans /srv/registry | reg-rm /srv/registry
                                                    a garbage collection
  reg-refs --tagged-only --keep-recent 1h /srv/registry | reg-orphans /srv/registry
                                                    also what is untagged (but recent)
  reg-refs --exclude-repo old/app /srv/registry | reg-orphans /srv/registry
                                                    what deleting old/app would free (what-if)";

/// Print what a registry's tags and revisions reference, then a trailer
///
/// Every reference reachable from the roots (every tag and, by default,
/// every revision) down to index children, configs, layers and referrers,
/// one JSON object per edge, then a trailer with the counts that
/// reg-orphans checks. Reads the tree only; changes nothing.
///
/// It fails closed: a manifest that is there but cannot be read, is not
/// JSON or does not hash to its digest, an empty or garbled tag or revision
/// link, or a directory it cannot list ends the run with status 1, a
/// message naming the path, and nothing on stdout. A missing manifest (an
/// image already broken) is a warning.
#[derive(Parser, Debug)]
#[command(
    name = "reg-refs",
    version,
    override_usage = "reg-refs [OPTIONS] <ROOT>\n       reg-refs [OPTIONS] --config <FILE>",
    after_help = "Full descriptions and examples: --help, or man reg-refs.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Only tags are roots: untagged manifests become garbage
    ///
    /// An untagged manifest stays live only as a child of a live index (at
    /// any depth), as a referrer (OCI subject) of a live manifest, or by
    /// --keep-recent.
    #[arg(long)]
    pub tagged_only: bool,

    /// With --tagged-only: revisions younger than DURATION stay roots
    ///
    /// By the age of their revision link (1h, 7d): a guard for pushes in
    /// progress and for images pushed by digest a moment ago.
    #[arg(long, value_name = "DURATION", value_parser = cli::duration, requires = "tagged_only")]
    pub keep_recent: Option<Duration>,

    /// Only this repository (repeatable)
    ///
    /// The trailer then says "complete":false, and reg-orphans refuses the
    /// list: it cannot prove anything else unreferenced.
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,

    /// What-if: the graph as if this repository were deleted (repeatable)
    ///
    /// Its tags and revisions are not roots; the trailer says
    /// "excluded":[…]. reg-orphans then answers what deleting it would free,
    /// and reg-rm refuses such a list (the repository still exists).
    #[arg(long = "exclude-repo", value_name = "NAME", conflicts_with = "repos")]
    pub exclude_repos: Vec<String>,

    #[command(flatten)]
    pub inventory: cli::InventoryFlag,

    /// With --inventory: refuse a report older than DURATION [default: 1h]
    ///
    /// The grace period reg-orphans is given (its --min-age): what was
    /// written since the report was made must be younger than it.
    #[arg(long, value_name = "DURATION", value_parser = cli::duration, requires = "inventory")]
    pub min_age: Option<Duration>,

    /// Print the summary line on stderr even when it is not a terminal
    #[arg(long)]
    pub stats: bool,
}

/// reg-refs' `--min-age` when not given: reg-orphans' default.
const DEFAULT_MIN_AGE: Duration = Duration::from_secs(3600);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let report = args.inventory.report(args.min_age.unwrap_or(DEFAULT_MIN_AGE))?;
    let (store, used) = args.common.open_with(report.as_ref())?;
    check_repo_names("--repo", &args.repos)?;
    check_repo_names("--exclude-repo", &args.exclude_repos)?;
    let msgs = cli::messages("reg-refs", args.common.quiet).summary_when(crate::show_summary(args.stats));
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
    let mut progress = ProgressLine::start_for("reg-refs", &msgs, &store);
    let graph = refs::collect(&store, &cfg, &msgs)?;
    progress.finish();
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
    msgs.summary(cli::with_requests(
        &store,
        format!(
            "{}, {}, {}, {} ({} distinct parsed), {}, {} missing{what_if}{}",
            count(s.repos, "repo", "repos"),
            count(s.tags, "tag", "tags"),
            count(s.revisions, "revision", "revisions"),
            count(s.manifests, "manifest", "manifests"),
            s.parsed,
            count(s.references, "reference", "references"),
            s.missing,
            cli::inventory_note(&used)
        ),
    ));
    Ok(cli::status(&msgs))
}
