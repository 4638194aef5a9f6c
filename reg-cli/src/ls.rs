//! `reg-ls`: list a registry's storage as JSON lines.

use std::process::ExitCode;

use crate::check_repo_names;
use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::ls::{self, Kind};

/// A `--kind` value: one of reg-core's kinds, named as its records are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindArg(pub Kind);

impl clap::ValueEnum for KindArg {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [KindArg; 6] = [
            KindArg(Kind::Repo),
            KindArg(Kind::Tag),
            KindArg(Kind::Revision),
            KindArg(Kind::LayerLink),
            KindArg(Kind::Blob),
            KindArg(Kind::Upload),
        ];
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let (name, help) = match self.0 {
            Kind::Repo => ("repo", "A repository"),
            Kind::Tag => ("tag", "A tag and the manifest it points at"),
            Kind::Revision => ("revision", "A manifest revision link"),
            Kind::LayerLink => ("layer-link", "A _layers link"),
            Kind::Blob => ("blob", "A stored blob, with its size"),
            Kind::Upload => ("upload", "An upload in progress"),
        };
        Some(clap::builder::PossibleValue::new(name).help(help))
    }
}

use reg_core::messages::count;
use reg_core::size::human_bytes;

use crate::progress_line::ProgressLine;

const EXAMPLES: &str = "\
Examples:
  reg-ls /srv/registry --kind blob | jq -s 'map(.size) | add'      bytes stored
  reg-ls /srv/registry --kind tag --repo org/app --tsv | cut -f3    tag names of org/app
  reg-ls /srv/registry --kind blob --verify | jq -c 'select(.ok == false)'
                                                                  blobs whose data is corrupt";

/// List what a registry's storage holds, one JSON object per line
///
/// Repositories, tags, revisions, _layers links, blobs and uploads, as
/// records of kind repo, tag, revision, layer-link, blob and upload. Reads
/// the tree only (the registry may keep running); changes nothing.
///
/// A broken tree (an empty or garbled link file, a blob directory without
/// data, an unreadable directory, a repository name the registry would
/// refuse, a symbolic link, a FIFO where a file belongs) gets one message
/// per path on stderr; everything else is still listed, and the exit
/// status is 1. No symbolic link below ROOT is followed.
#[derive(Parser, Debug)]
#[command(
    name = "reg-ls",
    version,
    override_usage = "reg-ls [OPTIONS] <ROOT>\n       reg-ls [OPTIONS] --config <FILE>",
    after_help = "Full descriptions and examples: --help, or man reg-ls.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Only records of this kind (repeatable)
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    pub kinds: Vec<KindArg>,

    /// Only this repository (repeatable)
    ///
    /// Blobs belong to no repository: they are then left out, unless
    /// --kind blob asks for them.
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,

    /// Re-hash every blob and read every manifest: add "ok" to their records
    ///
    /// Blob records get "ok":true or "ok":false (the data does not hash to
    /// its digest); revision records "ok" for their manifest, and "notes"
    /// when other readers could take it differently. Any false makes the
    /// exit status 1.
    #[arg(long)]
    pub verify: bool,

    /// Print the summary line on stderr even when it is not a terminal
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    let store = args.common.open()?;
    check_repo_names("--repo", &args.repos)?;
    let msgs = cli::messages("reg-ls", args.common.quiet).summary_when(crate::show_summary(args.stats));
    let cfg = ls::Config {
        kinds: args.kinds.into_iter().map(|k| k.0).collect(),
        repos: args.repos,
        verify: args.verify,
    };
    let mut out = args.common.out();
    let mut progress = ProgressLine::start_for("reg-ls", &msgs, &store);
    let s = ls::list(&store, &cfg, &mut out, &msgs)?;
    progress.finish();
    let mut line = format!(
        "{}, {}, {}, {}, {} ({}), {}",
        count(s.repos, "repo", "repos"),
        count(s.tags, "tag", "tags"),
        count(s.revisions, "revision", "revisions"),
        count(s.layer_links, "layer link", "layer links"),
        count(s.blobs, "blob", "blobs"),
        human_bytes(s.blob_bytes),
        count(s.uploads, "upload", "uploads"),
    );
    if cfg.verify {
        line.push_str(&format!(", {} corrupt", s.corrupt));
    }
    msgs.summary(cli::with_requests(&store, line));
    Ok(cli::status(&msgs))
}
