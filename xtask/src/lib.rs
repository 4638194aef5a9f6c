//! Writes the reg tools' shell completions (bash, zsh, fish) and roff man
//! pages, generated from the same clap definitions the tools parse with
//! ([`reg_cli::commands`]), so they cannot drift from the flags: the files
//! each installed tool writes itself with `--generate KIND`
//! ([`reg_cli::generate`]), all at once for packagers.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;
use reg_cli::generate::Generate;

/// The shells completions are written for, and the file each one reads
/// (as bash-completion, zsh's fpath and fish look them up).
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The file name `shell` loads completions for `bin` from.
pub fn completion_file(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Bash => bin.to_string(),
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        other => format!("{bin}.{other}"),
    }
}

/// Writes `DIR/{bash,zsh,fish}/…` for every tool; returns the files written.
pub fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in SHELLS {
        let sub = dir.join(shell.to_string());
        fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let what = match shell {
            Shell::Bash => Generate::CompleteBash,
            Shell::Zsh => Generate::CompleteZsh,
            _ => Generate::CompleteFish,
        };
        for cmd in reg_cli::commands() {
            let bin = cmd.get_name().to_string();
            let path = sub.join(completion_file(shell, &bin));
            let mut buf = Vec::new();
            reg_cli::generate::write(what, cmd, &mut buf)?;
            fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes `DIR/man1/<tool>.1` for every tool; returns the files written.
pub fn man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let sub = dir.join("man1");
    fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let mut written = Vec::new();
    for cmd in reg_cli::commands() {
        let path = sub.join(format!("{}.1", cmd.get_name()));
        let mut buf = Vec::new();
        reg_cli::generate::man(cmd, &mut buf)?;
        fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
