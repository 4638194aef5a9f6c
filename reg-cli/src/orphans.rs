//! `reg-orphans`: read `reg-refs` output on stdin, print what nothing references.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::messages::Messages;
use reg_core::orphans;
use reg_core::size::human_bytes;

use crate::live::Live;

const EXAMPLES: &str = "\
Examples:
  reg-refs /srv/registry | reg-orphans /srv/registry | jq -s 'map(.size // 0) | add'
                                                    bytes a garbage collection frees
  reg-refs --tagged-only /srv/registry | reg-orphans /srv/registry | reg-rm /srv/registry
                                                    collect untagged manifests too
  reg-refs --exclude-repo old/app /srv/registry | reg-orphans --stats /srv/registry
                                                    what deleting old/app would free (what-if)";

/// Print what nothing references: blobs, revisions, dangling _layers links,
/// stale uploads and empty repositories, one JSON object per line, given the
/// complete output of `reg-refs ROOT` on stdin (bare digest lines are kept
/// too). Incomplete input (no reg-refs trailer, a cut line) is refused:
/// nothing is printed and the exit status is 1.
#[derive(Parser, Debug)]
#[command(name = "reg-orphans", version, long_about = None, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Never report blobs and links younger than this (grace period for
    /// pushes in progress).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cli::duration)]
    pub min_age: Duration,

    /// Report uploads started longer ago than this (the registry purges
    /// them after 168h).
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = cli::duration)]
    pub upload_age: Duration,

    /// Print the summary line on stderr even when it is not a terminal.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let store = args.common.open()?;
    let msgs = Messages::new("reg-orphans", args.common.quiet).summary_when(crate::show_summary(args.stats));
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
    let mut live = Live::start_for("reg-orphans", &msgs, &store);
    let (end, input) = orphans::run(&store, stdin.lock(), &cfg, &mut out, &msgs)?;
    live.finish();
    // Against the clock now: files written during a long walk are not ahead.
    store.check_tree_clock(cli::local_now()?, &msgs);
    let what_if = if end.excluded.is_empty() {
        String::new()
    } else {
        format!(" (what-if: as if {} were deleted)", end.excluded.join(", "))
    };
    msgs.summary(cli::with_requests(
        &store,
        format!(
            "orphans{what_if}: {} blobs ({}), {} revisions, {} layer links, {} uploads ({}), {} repos; \
         {} too young to report; stored: {} blobs; read {} input lines",
            end.blobs,
            human_bytes(end.blob_bytes),
            end.revisions,
            end.layers,
            end.uploads,
            human_bytes(end.upload_bytes),
            end.repos,
            end.too_young,
            end.stored_blobs,
            input.lines,
        ),
    ));
    Ok(msgs.exit_code())
}
