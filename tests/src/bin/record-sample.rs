//! Records the scenario's storage tree as a sample:
//! `cargo run -p reg-tests --bin record-sample -- examples/registry`
//!
//! Starts a private registry, pushes the scenario, stops the registry and
//! copies its rootdirectory (`docker/registry/v2/…`) into DIR, replacing
//! what was there. Prints what was pushed (`Pushed`, as JSON) on stdout.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use reg_tests::{Registry, Scenario};

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        } else {
            bail!("unexpected file type at {}", src.display());
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dest] = args.as_slice() else {
        eprintln!("usage: record-sample DIR");
        std::process::exit(2);
    };
    let dest = Path::new(dest);
    let mut reg = Registry::start()?;
    let pushed = Scenario::push(&reg)?;
    reg.stop()?;
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    copy_tree(reg.root(), dest)?;
    println!("{}", serde_json::to_string_pretty(&pushed)?);
    eprintln!("recorded the scenario's storage tree in {}", dest.display());
    Ok(())
}
