//! The tools as installed: copied out of the build tree into an empty
//! directory and run from there, with no source tree in reach, each writes
//! its man page and its completions with `--generate`.

use std::process::Command;

use reg_tests::tools::tool_path;

#[test]
fn an_installed_tool_writes_its_man_page_and_completions() {
    let bin = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for tool in [
        "reg-ls",
        "reg-refs",
        "reg-orphans",
        "reg-rm",
        "reg-pulls",
        "reg-keep",
    ] {
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
