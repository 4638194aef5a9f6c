//! `cargo run -p xtask -- completions DIR | man DIR | all DIR`: see [`xtask`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Generate the reg tools' shell completions and man pages.
#[derive(Parser, Debug)]
#[command(name = "xtask")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Write DIR/bash/<tool>, DIR/zsh/_<tool> and DIR/fish/<tool>.fish.
    Completions { dir: PathBuf },
    /// Write DIR/man1/<tool>.1 (roff).
    Man { dir: PathBuf },
    /// Both: DIR/completions/… and DIR/man/man1/….
    All { dir: PathBuf },
}

fn main() -> ExitCode {
    let run = || -> anyhow::Result<Vec<PathBuf>> {
        Ok(match Args::parse().task {
            Task::Completions { dir } => xtask::completions(&dir)?,
            Task::Man { dir } => xtask::man(&dir)?,
            Task::All { dir } => {
                let mut w = xtask::completions(&dir.join("completions"))?;
                w.extend(xtask::man(&dir.join("man"))?);
                w
            }
        })
    };
    match run() {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
