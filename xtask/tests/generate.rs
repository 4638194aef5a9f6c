//! Runs the generator into a temp dir: every tool gets a completion file
//! per shell and a man page, and each of them mentions every flag.

use std::fs;

use xtask::{completion_file, SHELLS};

/// Every flag of a command as it is typed: `--long` and `-s`.
fn flags(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            out.push(format!("--{l}"));
        }
        if let Some(s) = a.get_short() {
            out.push(format!("-{s}"));
        }
    }
    out
}

#[test]
fn completions_and_man_pages_mention_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    let comp = xtask::completions(&dir.path().join("completions")).unwrap();
    let man = xtask::man(&dir.path().join("man")).unwrap();
    let cmds = reg_cli::commands();
    assert_eq!(cmds.len(), 6);
    assert_eq!(comp.len(), 6 * SHELLS.len());
    assert_eq!(man.len(), 6);
    for cmd in &cmds {
        let bin = cmd.get_name();
        let flags = flags(cmd);
        // The tools that walk a storage root bound their threads; the
        // filters (reg-pulls, reg-keep) read records and take no ROOT.
        let walks = cmd.get_arguments().any(|a| a.get_id() == "root");
        assert_eq!(
            flags.contains(&"--threads".to_string()),
            walks,
            "{bin}: {flags:?}"
        );
        assert!(flags.contains(&"--tsv".to_string()), "{bin}: {flags:?}");
        for shell in SHELLS {
            let path = dir
                .path()
                .join("completions")
                .join(shell.to_string())
                .join(completion_file(shell, bin));
            let text = fs::read_to_string(&path).unwrap();
            for f in &flags {
                // fish writes `-l long` and `-s x`; bash and zsh the flag itself.
                let fish = match f.strip_prefix("--") {
                    Some(l) => format!("-l {l}"),
                    None => format!("-s {}", &f[1..]),
                };
                assert!(
                    text.contains(f.as_str()) || text.contains(&fish),
                    "{} does not mention {f}",
                    path.display()
                );
            }
        }
        let page = dir.path().join("man/man1").join(format!("{bin}.1"));
        // roff escapes '-' as '\-'.
        let text = fs::read_to_string(&page).unwrap().replace("\\-", "-");
        assert!(text.contains(".TH"), "{}: not a man page", page.display());
        // NAME is the tool's own description, not the reg-cli crate's.
        assert!(
            !text.contains("command lines of the reg tools"),
            "{}",
            page.display()
        );
        for f in &flags {
            assert!(
                text.contains(f.as_str()),
                "{} does not mention {f}",
                page.display()
            );
        }
        assert!(text.contains(".SH EXAMPLES"), "{}: no examples", page.display());
    }
}

#[test]
fn tool_specific_flags_are_there() {
    let names = |bin: &str| {
        let cmd = reg_cli::commands()
            .into_iter()
            .find(|c| c.get_name() == bin)
            .unwrap();
        flags(&cmd)
    };
    for (bin, want) in [
        ("reg-ls", &["--kind", "--verify", "--stats"][..]),
        ("reg-refs", &["--tagged-only", "--exclude-repo", "--stats"]),
        ("reg-orphans", &["--min-age", "--stats"]),
        ("reg-rm", &["--untag", "--accept-broken", "--trash", "-n"]),
        ("reg-pulls", &["--tsv", "--stats", "-q"]),
        (
            "reg-keep",
            &[
                "--policy",
                "--repo",
                "--keep-tag",
                "--drop-tag",
                "--older-than",
                "--keep-newest",
                "--newest-by",
                "--pushed-within",
                "--pulled-within",
                "--keep-at-least",
                "--pulls",
                "--allow-empty",
                "--explain",
                "--now",
            ],
        ),
    ] {
        let have = names(bin);
        for w in want {
            assert!(have.iter().any(|h| h == w), "{bin} lacks {w}: {have:?}");
        }
    }
}
