//! The tools as installed: copied out of the build tree into an empty
//! directory and run from there, with no source tree in reach, each writes
//! its man page and its completions with `--generate`.

use std::process::Command;

use reg_tests::tools::tool_path;

use reg_cli::generate::TOOLS;

/// One test at a time: a binary being copied while the other test forks
/// stays open for writing in the child until it execs, and running the copy
/// then fails with "Text file busy".
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn an_installed_tool_writes_its_man_page_and_completions() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for tool in TOOLS {
        let installed = bin.path().join(tool);
        std::fs::copy(tool_path(tool), &installed).unwrap();
        let run = |kind: &str| {
            let out = Command::new(&installed)
                .args(["--generate", kind])
                .current_dir(elsewhere.path())
                .env_clear()
                .output()
                .unwrap();
            assert!(out.status.success(), "{tool} --generate {kind}: {out:?}");
            assert!(out.stderr.is_empty(), "{tool} --generate {kind}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let man = run("man");
        let name = man.split(".SH NAME\n").nth(1).unwrap_or_default();
        assert!(
            name.lines()
                .next()
                .unwrap_or_default()
                .starts_with(&tool.replace('-', "\\-")),
            "{tool}: {name}"
        );
        assert!(man.contains(".SH \"EXIT STATUS\""), "{tool}: no EXIT STATUS");
        let on_storage = !["reg-pulls", "reg-keep"].contains(&tool);
        assert!(man.contains(".SH ENVIRONMENT"), "{tool}: no ENVIRONMENT");
        assert!(man.contains("NO_COLOR"), "{tool}: ENVIRONMENT without NO_COLOR");
        assert_eq!(
            man.contains("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
            on_storage,
            "{tool}: ENVIRONMENT names the storage's variables"
        );
        assert!(run("complete-bash").contains(&format!("complete -F _{}", tool.replace('-', "__"))));
        assert!(run("complete-zsh").contains(&format!("#compdef {tool}")));
        assert!(run("complete-fish").contains(&format!("complete -c {tool}")));
        // With anything else it is a usage error.
        let out = Command::new(&installed)
            .args(["--generate", "man", "--tsv"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{tool}: {out:?}");
    }
}

/// The README's Install section, word for word but for `/usr/local`, which
/// becomes a temporary directory: `cargo install --locked` installs the
/// binaries the release build made (byte for byte: the tested versions,
/// nothing resolved again), and the installed tools write their man pages
/// and completions where the README puts them. Runs after `cargo build
/// --release` (the README's first command, which `.ci/run` runs first);
/// without it, skips with a note, except under `CI`, where it fails.
#[test]
fn the_readme_install_section_installs_the_tested_binaries() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let release = tool_path("reg-ls")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("release");
    if !release.join("reg-ls").is_file() {
        let why = "no release build: run the README's first command (cargo build --release) first";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipping the Install section: {why}");
        return;
    }
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Install\n")
        .expect("README has an Install section")
        .1
        .split("\n## ")
        .next()
        .unwrap();
    // Its indented blocks, in order.
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in section.lines() {
        match line.strip_prefix("    ") {
            Some(code) => cur.push(code),
            None if !cur.is_empty() => blocks.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    let install = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.contains("cargo install")))
        .expect("an install block")
        .join("\n");
    let generate = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.contains("--generate man")))
        .expect("a --generate block")
        .join("\n");
    assert!(install.contains("cargo install --locked "), "{install}");
    // The binaries the release build made, before cargo install (which
    // builds into the same target directory) can touch them.
    let built: Vec<(&str, Vec<u8>)> = TOOLS
        .iter()
        .map(|&tool| (tool, std::fs::read(release.join(tool)).unwrap_or_default()))
        .collect();
    let prefix = tempfile::tempdir().unwrap();
    let local = prefix.path().join("local");
    let path = std::env::join_paths(std::iter::once(local.join("bin")).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    for script in [&install, &generate] {
        let script = script.replace("/usr/local", &local.display().to_string());
        let mut bash = Command::new("bash");
        bash.args(["-e", "-o", "pipefail", "-c", &script])
            .current_dir(workspace)
            .env("PATH", &path)
            // The lock file names every crate, all fetched by the build.
            .env("CARGO_NET_OFFLINE", "true");
        // What `cargo test` sets for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*,
        // …) is not in an operator's shell, and ring's build script reruns
        // when CARGO_MANIFEST_DIR changes: with it, cargo install would build
        // everything again instead of copying.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                bash.env_remove(&*key);
            }
        }
        let out = bash.env_remove("LD_LIBRARY_PATH").output().unwrap();
        assert!(
            out.status.success(),
            "{script}\n--- stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (tool, built) in built {
        let installed = std::fs::read(local.join("bin").join(tool)).unwrap();
        assert!(
            installed == built,
            "{tool}: not the binary the release build made (older than the source? cargo build --release)"
        );
        let man = std::fs::read_to_string(local.join(format!("share/man/man1/{tool}.1"))).unwrap();
        let name = man.split(".SH NAME\n").nth(1).unwrap_or_default();
        assert!(
            name.lines()
                .next()
                .unwrap_or_default()
                .starts_with(&tool.replace('-', "\\-"))
                && name.lines().nth(1).unwrap_or_default().starts_with(".SH"),
            "{tool}: NAME on one line: {name}"
        );
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT"] {
            assert!(man.contains(section), "{tool}: no {section}");
        }
        for (file, needle) in [
            (
                format!("share/bash-completion/completions/{tool}"),
                "complete -F".to_string(),
            ),
            (
                format!("share/zsh/site-functions/_{tool}"),
                format!("#compdef {tool}"),
            ),
            (
                format!("share/fish/vendor_completions.d/{tool}.fish"),
                format!("complete -c {tool}"),
            ),
        ] {
            let text = std::fs::read_to_string(local.join(&file)).unwrap();
            assert!(text.contains(&needle), "{file}");
        }
    }
}
