//! `reg-ls`: list a registry's storage as JSON lines.

use std::process::ExitCode;

use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::ls::{self, Kind};
use reg_core::messages::Messages;

/// `--kind` values: the kinds of reg-ls records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Repo,
    Tag,
    Revision,
    /// A `_layers` link.
    LayerLink,
    Blob,
    Upload,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Repo => Kind::Repo,
            KindArg::Tag => Kind::Tag,
            KindArg::Revision => Kind::Revision,
            KindArg::LayerLink => Kind::LayerLink,
            KindArg::Blob => Kind::Blob,
            KindArg::Upload => Kind::Upload,
        }
    }
}
use reg_core::size::human_bytes;

use crate::live::Live;

const EXAMPLES: &str = "\
Examples:
  reg-ls /srv/registry --kind blob | jq -s 'map(.size) | add'      bytes stored
  reg-ls /srv/registry --kind tag --repo org/app --tsv | cut -f3    tag names of org/app
  reg-ls /srv/registry --kind blob --verify | jq -c 'select(.ok == false)'
                                                                  blobs whose data is corrupt";

/// List what a registry's storage holds: repositories, tags, revisions,
/// _layers links, blobs and uploads, one JSON object per line.
#[derive(Parser, Debug)]
#[command(name = "reg-ls", version, long_about = None, after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Only entries of this kind (repeatable).
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    pub kinds: Vec<KindArg>,

    /// Only this repository (repeatable); blobs are then left out unless --kind blob.
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,

    /// Re-hash each blob's data and add "ok": true|false to blob records.
    #[arg(long)]
    pub verify: bool,

    /// Print the summary line on stderr even when it is not a terminal.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let store = args.common.open()?;
    let msgs = Messages::new("reg-ls", args.common.quiet).summary_when(crate::show_summary(args.stats));
    let cfg = ls::Config {
        kinds: args.kinds.into_iter().map(Kind::from).collect(),
        repos: args.repos,
        verify: args.verify,
    };
    let mut out = args.common.out();
    let mut live = Live::start_for("reg-ls", &msgs, &store);
    let s = ls::list(&store, &cfg, &mut out, &msgs)?;
    live.finish();
    let mut line = format!(
        "{} repos, {} tags, {} revisions, {} layer links, {} blobs ({}), {} uploads",
        s.repos,
        s.tags,
        s.revisions,
        s.layers,
        s.blobs,
        human_bytes(s.blob_bytes),
        s.uploads
    );
    if cfg.verify {
        line.push_str(&format!(", {} corrupt", s.corrupt));
    }
    msgs.summary(cli::with_requests(&store, line));
    Ok(msgs.exit_code())
}
