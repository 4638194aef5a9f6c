//! The command lines of the reg tools, apart from their `main`s so that
//! `xtask` can generate shell completions and man pages from the same clap
//! definitions: each tool's [`clap::Parser`] `Args` and its `run`, the
//! decision of when a summary is printed, and the progress line
//! ([`progress_line`], the only place that draws one; reg-core only counts).

use std::io::IsTerminal;

use clap::CommandFactory;

pub mod color;
pub mod common;
pub mod filter;
pub mod generate;
pub mod keep;
pub mod ls;
pub mod orphans;
pub mod progress_line;
pub mod pulls;
pub mod refs;
pub mod rm;

/// The allocator of every tool: jemalloc with one arena (issue 18; why:
/// .cargo/config.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Every tool's clap command, named as its binary.
pub fn commands() -> Vec<clap::Command> {
    vec![
        ls::Args::command(),
        refs::Args::command(),
        orphans::Args::command(),
        rm::Args::command(),
        pulls::Args::command(),
        keep::Args::command(),
    ]
}

/// Whether reg-ls, reg-refs and reg-orphans print their summary line: on a
/// terminal, or when `--stats` asks (as ripgrep's `--stats`); `-q` wins.
/// A pipeline in a script stays quiet unless asked.
pub fn show_summary(stats: bool) -> bool {
    stats || std::io::stderr().is_terminal()
}

/// Refuses a repository name the registry's grammar does not accept, naming
/// the flag that gave it (the library's check says what is wrong, not where
/// it came from).
pub(crate) fn check_repo_names(flag: &str, names: &[String]) -> anyhow::Result<()> {
    for r in names {
        reg_core::layout::check_repo_name(r).map_err(|why| anyhow::anyhow!("{flag}: {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_cli_is_consistent() {
        for c in super::commands() {
            c.debug_assert();
        }
    }
}
