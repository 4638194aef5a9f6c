//! `reg-ls`: list a registry's storage as JSON lines.

use std::process::ExitCode;

use clap::Parser;
use reg_core::cli::{self, Common, Messages};
use reg_core::ls::{self, Kind};

/// List what a registry's storage holds: repositories, tags, revisions,
/// _layers links, blobs and uploads, one JSON object per line.
#[derive(Parser, Debug)]
#[command(name = "reg-ls", version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    common: Common,

    /// Only entries of this kind (repeatable).
    #[arg(long = "kind", value_enum, value_name = "KIND")]
    kinds: Vec<Kind>,

    /// Only this repository (repeatable); blobs are then left out unless --kind blob.
    #[arg(long = "repo", value_name = "NAME")]
    repos: Vec<String>,

    /// Re-hash each blob's data and add "ok": true|false to blob records.
    #[arg(long)]
    verify: bool,
}

fn main() -> ExitCode {
    cli::run_main("reg-ls", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.common.open()?;
    let msgs = Messages::new("reg-ls", args.common.quiet);
    let cfg = ls::Config {
        kinds: args.kinds,
        repos: args.repos,
        verify: args.verify,
    };
    let mut out = args.common.out();
    let s = ls::list(&store, &cfg, &mut out, &msgs)?;
    let mut line = format!(
        "{} repos, {} tags, {} revisions, {} layer links, {} blobs ({} bytes), {} uploads",
        s.repos, s.tags, s.revisions, s.layers, s.blobs, s.blob_bytes, s.uploads
    );
    if cfg.verify {
        line.push_str(&format!(", {} corrupt", s.corrupt));
    }
    msgs.summary(line);
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
