//! `reg-orphans`: read `reg-refs` output on stdin, print what nothing references.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::messages::count;
use reg_core::orphans;
use reg_core::size::human_bytes;

use crate::progress_line::ProgressLine;

const EXAMPLES: &str = "\
Examples:
  reg-refs /srv/registry | reg-orphans /srv/registry | jq -s 'map(.size // 0) | add'
                                                    bytes a garbage collection frees
  reg-refs --tagged-only /srv/registry | reg-orphans /srv/registry | reg-rm /srv/registry
                                                    collect untagged manifests too
  reg-refs --exclude-repo old/app /srv/registry | reg-orphans --stats /srv/registry
                                                    what deleting old/app would free (what-if)";

/// Print what nothing in a registry's storage references, given reg-refs' list
///
/// Reads the complete output of reg-refs ROOT on stdin (bare digest lines
/// are kept too) and prints blobs, revisions, dangling _layers links,
/// stale uploads and empty repositories, one JSON object per line, then a
/// trailer. Reads the tree only; changes nothing.
///
/// Input that cannot be a complete list is refused (status 1, nothing on
/// stdout): no reg-refs trailer (a cut pipeline), counts that disagree with
/// the records (a filtered list), "complete":false (a --repo list), another
/// storage root. Nothing younger than --min-age is reported.
#[derive(Parser, Debug)]
#[command(
    name = "reg-orphans",
    version,
    override_usage = "reg-refs ROOT | reg-orphans [OPTIONS] <ROOT>\n       reg-refs --config FILE | reg-orphans [OPTIONS] --config <FILE>",
    after_help = "Full descriptions and examples: --help, or man reg-orphans.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Never report blobs and links younger than DURATION
    ///
    /// The grace period for pushes in progress: a push has its blobs
    /// before it has a manifest. By the data file's mtime for blobs, the
    /// link file's for links. With --inventory, also the oldest report
    /// accepted.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cli::duration)]
    pub min_age: Duration,

    /// Report uploads started longer ago than DURATION
    ///
    /// The registry purges them itself after 168h (its default).
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = cli::duration)]
    pub upload_age: Duration,

    #[command(flatten)]
    pub inventory: cli::InventoryFlag,

    /// Print the summary line on stderr even when it is not a terminal
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let report = args.inventory.report(args.min_age)?;
    let (store, used) = args.common.open_with(report.as_ref())?;
    let msgs = cli::messages("reg-orphans", args.common.quiet).summary_when(crate::show_summary(args.stats));
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!("reads the output of reg-refs on stdin: reg-refs ROOT | reg-orphans ROOT");
    }
    let local = cli::local_now()?;
    let cfg = orphans::Config {
        min_age: args.min_age,
        upload_age: args.upload_age,
        now: store.now(local, &msgs)?,
    };
    let mut out = args.common.out();
    let mut progress = ProgressLine::start_for("reg-orphans", &msgs, &store);
    let (end, input) = orphans::run(&store, stdin.lock(), &cfg, &mut out, &msgs)?;
    progress.finish();
    // Against the clock now: files written during a long walk are not ahead.
    store.check_tree_clock(cli::local_now()?, &msgs);
    let what_if = if end.excluded.is_empty() {
        String::new()
    } else {
        format!(" (what-if: as if {} were deleted)", end.excluded.join(", "))
    };
    let min_age = reg_core::time::format_duration(cfg.min_age);
    msgs.summary(cli::with_requests(
        &store,
        format!(
            "orphans{what_if}: {} ({}), {}, {}, {} ({}), {}; {} younger than --min-age {min_age}, \
             not reported; stored: {}; read {}{}",
            count(end.blobs, "blob", "blobs"),
            human_bytes(end.blob_bytes),
            count(end.revisions, "revision", "revisions"),
            count(end.layer_links, "layer link", "layer links"),
            count(end.uploads, "upload", "uploads"),
            human_bytes(end.upload_bytes),
            count(end.repos, "repo", "repos"),
            end.too_young,
            count(end.stored_blobs, "blob", "blobs"),
            count(input.lines, "input line", "input lines"),
            cli::inventory_note(&used),
        ),
    ));
    let reported = end.blobs + end.revisions + end.layer_links + end.uploads + end.repos;
    if reported == 0 && end.too_young > 0 {
        // A first GC on a registry written within the grace period.
        msgs.hint(format!(
            "nothing reported: the {} younger than --min-age {min_age}, the grace period for pushes \
             in progress (a registry written to within the last {min_age}, such as a new one, has \
             nothing old enough yet); run again later",
            count(
                end.too_young,
                "unreferenced item found is",
                "unreferenced items found are all"
            ),
        ));
    }
    Ok(cli::status(&msgs))
}
