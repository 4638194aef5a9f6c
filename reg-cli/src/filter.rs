//! What the tools that read no storage share (reg-pulls, reg-keep): they
//! filter records from files or stdin, so they take no ROOT and no `-j`,
//! only the output flags.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use reg_core::output::{Format, Out};

use crate::color::ColorWhen;

/// Output flags of a filter.
#[derive(clap::Args, Debug, Clone)]
pub struct Output {
    /// Print tab-separated columns instead of JSON lines
    ///
    /// One line per record: its kind, then the kind's fields in a fixed
    /// order (a field the record lacks is an empty column, so columns never
    /// move; arrays are JSON). A trailer names its fields (`records=5`).
    #[arg(long)]
    pub tsv: bool,

    /// With --tsv: before each kind's first record, a line naming its columns
    #[arg(long, requires = "tsv")]
    pub header: bool,

    /// No summary line on stderr
    #[arg(short, long)]
    pub quiet: bool,

    /// Print the summary line on stderr even when it is not a terminal
    #[arg(long)]
    pub stats: bool,

    /// When to color stderr: auto, always or never
    ///
    /// Colored are the error: and warning: labels and clap's usage errors;
    /// auto colors them when stderr is a terminal and NO_COLOR is not set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, hide_possible_values = true)]
    pub color: ColorWhen,

    /// Write shell completions or this tool's man page on stdout, and exit
    #[arg(long, value_enum, value_name = "KIND", exclusive = true)]
    pub generate: Option<crate::generate::Generate>,
}

impl Output {
    /// The record writer on stdout.
    pub fn out(&self) -> Out {
        Out::stdout(if self.tsv {
            Format::Tsv { header: self.header }
        } else {
            Format::Json
        })
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
