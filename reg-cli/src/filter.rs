//! What the tools that read no storage share (reg-pulls, reg-keep): they
//! filter records from files or stdin, so they take no ROOT and no `-j`,
//! only the output flags.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use reg_core::output::{Format, Out};

/// Output flags of a filter.
#[derive(clap::Args, Debug, Clone)]
pub struct Output {
    /// Print records as tab-separated columns (kind first) instead of JSON lines.
    #[arg(long)]
    pub tsv: bool,

    /// No summary line on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Print the summary line on stderr even when it is not a terminal.
    #[arg(long)]
    pub stats: bool,

    /// Write shell completions or this tool's man page on stdout, and exit.
    #[arg(long, value_enum, value_name = "KIND", exclusive = true)]
    pub generate: Option<crate::generate::Generate>,
}

impl Output {
    /// The record writer on stdout.
    pub fn out(&self) -> Out {
        Out::stdout(if self.tsv { Format::Tsv } else { Format::Json })
    }
}

/// Whether `path` names stdin (`-`).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// `-` for an absent input.
pub fn or_stdin(path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(|| PathBuf::from("-"))
}

/// Refuses to wait on a terminal for input that should come from a pipe.
pub fn stdin_not_a_terminal(usage: &str) -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        anyhow::bail!("reads records on stdin, not from a terminal: {usage}");
    }
    Ok(())
}
