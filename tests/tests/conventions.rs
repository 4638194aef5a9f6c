//! The conventions every tool keeps on its command line, checked on all six
//! binaries: `-h` short and `--help` long with the examples (ripgrep's
//! split); usage errors and fatal errors as `tool: error: …`; the usage line
//! of a missing ROOT shows `--config FILE` too; `--color` (and `NO_COLOR`)
//! for what is colored on stderr.

use std::process::{Command, Output, Stdio};

use reg_tests::tools::tool_path;

use reg_cli::generate::TOOLS;

/// The tools that take ROOT.
fn on_storage(tool: &str) -> bool {
    !matches!(tool, "reg-pulls" | "reg-keep")
}

fn run(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(tool_path(tool))
        .args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn short_help_for_h_and_the_full_text_with_examples_for_help() {
    for tool in TOOLS {
        let short = run(tool, &["-h"], &[]);
        let long = run(tool, &["--help"], &[]);
        assert!(short.status.success() && long.status.success(), "{tool}");
        let (short, long) = (text(&short.stdout), text(&long.stdout));
        assert!(!short.contains("Examples:"), "{tool} -h:\n{short}");
        assert!(
            short.trim_end().ends_with(&format!("--help, or man {tool}.")),
            "{tool} -h says where the rest is:\n{short}"
        );
        assert!(long.contains("\nExamples:\n"), "{tool} --help:\n{long}");
        assert!(
            long.lines().count() > short.lines().count() + 10,
            "{tool}: --help is the long text\n{short}\n---\n{long}"
        );
        // Every line of -h fits a terminal: one short line per flag.
        assert!(
            short.lines().filter(|l| l.trim_start().starts_with("--")).count() > 3,
            "{tool}:\n{short}"
        );
    }
}

#[test]
fn usage_and_fatal_errors_carry_the_tool_name() {
    for tool in TOOLS {
        let out = run(tool, &["--bogus"], &[]);
        assert_eq!(out.status.code(), Some(2), "{tool}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("{tool}: error: unexpected argument '--bogus' found")),
            "{tool}: {err}"
        );
        assert!(!err.contains('\x1b'), "{tool}: no color into a pipe: {err:?}");

        let bad = match tool {
            "reg-keep" => vec!["/nonexistent/tags.jsonl", "--keep-newest", "1"],
            _ => vec!["/nonexistent/x"],
        };
        let out = run(tool, &bad, &[]);
        assert_eq!(out.status.code(), Some(1), "{tool}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("{tool}: error: /nonexistent/x"))
                || err.starts_with(&format!("{tool}: error: /nonexistent/tags.jsonl")),
            "{tool}: {err}"
        );
    }
}

#[test]
fn a_missing_root_shows_both_ways_to_give_it() {
    for tool in TOOLS.into_iter().filter(|t| on_storage(t)) {
        let out = run(tool, &[], &[]);
        assert_eq!(out.status.code(), Some(2), "{tool}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "{tool}: error: the following required arguments were not provided:"
            )),
            "{tool}: {err}"
        );
        let usage: Vec<&str> = err
            .lines()
            .skip_while(|l| !l.starts_with("Usage: "))
            .take(2)
            .collect();
        assert!(
            usage[0].contains(&format!("{tool} [OPTIONS] <ROOT>")),
            "{tool}: {err}"
        );
        assert!(
            usage[1].contains(&format!("{tool} [OPTIONS] --config <FILE>")),
            "{tool}: {err}"
        );
    }
}

#[test]
fn color_follows_the_flag_and_no_color() {
    const RED: &str = "\x1b[1;31merror:\x1b[0m";
    for tool in TOOLS {
        let bad = match tool {
            "reg-keep" => vec!["/nonexistent/x", "--keep-newest", "1"],
            _ => vec!["/nonexistent/x"],
        };
        let with = |flag: &str, env: &[(&str, &str)]| {
            let mut args = bad.clone();
            if !flag.is_empty() {
                args.push(flag);
            }
            text(&run(tool, &args, env).stderr)
        };
        let colored = format!("{tool}: {RED} /nonexistent/x");
        assert!(with("--color=always", &[]).starts_with(&colored), "{tool}");
        // The flag wins over NO_COLOR; auto honours it (and a pipe is no
        // terminal anyway).
        assert!(
            with("--color=always", &[("NO_COLOR", "1")]).starts_with(&colored),
            "{tool}"
        );
        for (flag, env) in [
            ("--color=never", &[][..]),
            ("", &[("NO_COLOR", "1")][..]),
            ("", &[][..]),
        ] {
            let err = with(flag, env);
            assert!(!err.contains('\x1b'), "{tool} {flag} {env:?}: {err:?}");
            assert!(err.starts_with(&format!("{tool}: error: ")), "{tool}: {err}");
        }
        // clap's own usage errors follow the flag too.
        let err = text(&run(tool, &["--color", "always", "--bogus"], &[]).stderr);
        assert!(err.starts_with(&format!("{tool}: \x1b[")), "{tool}: {err:?}");
        let out = run(tool, &["--color", "sometimes"], &[]);
        assert_eq!(out.status.code(), Some(2), "{tool}");
        assert!(
            text(&out.stderr).starts_with(&format!("{tool}: error: invalid value 'sometimes'")),
            "{tool}: {}",
            text(&out.stderr)
        );
    }
}
