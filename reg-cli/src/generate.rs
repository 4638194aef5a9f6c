//! `--generate KIND`: shell completions and the man page, written by the
//! installed binary itself from its clap definition (as ripgrep's
//! `--generate` does), so an installed tool needs no source tree. `xtask`
//! writes the same files for every tool at once, for packagers.

use std::io::{self, Write};

use clap_complete::Shell;

/// What `--generate` writes on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// Completions for bash (for /usr/share/bash-completion/completions/TOOL).
    CompleteBash,
    /// Completions for zsh (for a directory on $fpath, as _TOOL).
    CompleteZsh,
    /// Completions for fish (for ~/.config/fish/completions/TOOL.fish).
    CompleteFish,
    /// The man page, in roff (for man1/TOOL.1).
    Man,
}

/// Writes `what` for the tool whose clap command is `cmd`.
pub fn write(what: Generate, mut cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let bin = cmd.get_name().to_string();
    let shell = match what {
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::Man => return man(cmd, out),
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
    out.write_all(&buf)
}

/// One line for NAME (what `whatis` and `apropos` show), by tool.
fn one_line(bin: &str, about: &str) -> String {
    match bin {
        "reg-ls" => "list what a registry's storage holds".into(),
        "reg-refs" => "print what a registry's tags and revisions reference".into(),
        "reg-orphans" => "print what nothing in a registry's storage references".into(),
        "reg-rm" => "delete from a registry's storage what nothing live reaches".into(),
        "reg-pulls" => "read when each tag was last pulled from a registry's own logs".into(),
        "reg-keep" => "choose the tags to drop by retention rules (keep the newest, pulled within...)".into(),
        // A tool this list does not know: the first sentence of its about.
        _ => {
            let first = about.split(". ").next().unwrap_or(about).trim_end_matches('.');
            let mut c = first.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

/// Text for roff: backslashes and hyphens escaped, no line starting with
/// a control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const EXIT_STATUS: &str = "\
0 \u{2014} done. A closed standard output (a pipe into head) ends the tool quietly with 0.
1 \u{2014} failed: the message on standard error says what and where (for reg-ls: something \
in the tree was wrong, and everything else was still listed).
2 \u{2014} bad usage (an unknown flag, a missing ROOT, a value out of range).";

/// What every tool reads from the environment.
const ENVIRONMENT_ALL: &[(&str, &str)] = &[(
    "NO_COLOR",
    "Set to anything but the empty string: --color auto (the default) colors nothing.",
)];

/// What the tools on the storage read from the environment besides.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        "With --config: the storage root, over the config file's, as for the registry.",
    ),
    (
        "REGISTRY_STORAGE_S3_*",
        "With --config: the s3 driver's settings (BUCKET, ROOTDIRECTORY, REGION, REGIONENDPOINT, \
         ACCESSKEY, SECRETKEY, ...), over the config file's, as for the registry.",
    ),
    (
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
        "Credentials for s3://BUCKET/ROOTDIRECTORY (and for --config where it leaves them out).",
    ),
    ("AWS_REGION, AWS_DEFAULT_REGION", "The region of the bucket."),
    (
        "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_ENDPOINT",
        "An S3-compatible endpoint (MinIO, Ceph RGW); an http:// one allows plain HTTP.",
    ),
    (
        "REGISTRY_STORAGE_AZURE_*",
        "With --config: the azure driver's settings (ACCOUNTNAME, ACCOUNTKEY, CONTAINER, \
         ROOTDIRECTORY, ...), over the config file's, as for the registry.",
    ),
    (
        "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_ACCESS_KEY",
        "The account key for azure://ACCOUNT/CONTAINER/ROOTDIRECTORY (and for --config where \
         it leaves it out).",
    ),
    (
        "AZURE_STORAGE_ENDPOINT, AZURE_ENDPOINT",
        "Another endpoint than the account's own (Azurite, a sovereign cloud).",
    ),
];

/// The tools, in the order the man pages' SEE ALSO names them (the tests
/// check each of them by this list).
pub const TOOLS: [&str; 6] = [
    "reg-ls",
    "reg-refs",
    "reg-orphans",
    "reg-rm",
    "reg-pulls",
    "reg-keep",
];

/// The man page: NAME on one line, SYNOPSIS with the values flags take,
/// DESCRIPTION, OPTIONS, EXAMPLES as written, EXIT STATUS, ENVIRONMENT and
/// SEE ALSO.
pub fn man(mut cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    // Built, so that every argument says how many values it takes.
    cmd.build();
    let bin = cmd.get_name().to_string();
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let examples = cmd
        .get_after_long_help()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let takes_root = cmd.get_positionals().any(|a| a.get_id() == "root");
    let page = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>).after_long_help(None::<&str>));
    let mut buf = Vec::new();
    page.render_title(&mut buf)?;
    writeln!(
        buf,
        ".SH NAME\n{} \\- {}",
        roff(&bin),
        roff(&one_line(&bin, &about))
    )?;

    writeln!(buf, ".SH SYNOPSIS")?;
    let values: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .filter(|a| !["config", "generate", "help", "version"].contains(&a.get_id().as_str()))
        .map(|a| {
            let flag = match (a.get_short(), a.get_long()) {
                (Some(s), Some(l)) => format!("-{s}|--{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => String::new(),
            };
            let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
            match (takes_value, a.get_value_names()) {
                (true, Some(names)) => format!("[{flag} {}]", names.join(" ")),
                (true, None) => format!("[{flag} VALUE]"),
                (false, _) => format!("[{flag}]"),
            }
        })
        .collect();
    let flags = values.join(" ");
    if takes_root {
        writeln!(buf, ".B {}\n{} ROOT\n.br", roff(&bin), roff(&flags))?;
        writeln!(
            buf,
            ".B {}\n{} {}\n.br",
            roff(&bin),
            roff(&flags),
            roff("--config FILE")
        )?;
    } else {
        writeln!(buf, ".B {}\n{}\n.br", roff(&bin), roff(&flags))?;
    }
    writeln!(buf, ".B {}\n{}", roff(&bin), roff("--generate KIND"))?;

    page.render_description_section(&mut buf)?;
    page.render_options_section(&mut buf)?;
    if let Some(body) = examples.strip_prefix("Examples:\n") {
        writeln!(buf, ".SH EXAMPLES\n.nf\n{}\n.fi", roff(body))?;
    }
    writeln!(buf, ".SH \"EXIT STATUS\"")?;
    for line in EXIT_STATUS.lines() {
        writeln!(buf, ".PP\n{}", roff(line))?;
    }
    writeln!(buf, ".SH ENVIRONMENT")?;
    let storage = if takes_root { ENVIRONMENT } else { &[] };
    for (name, what) in storage.iter().chain(ENVIRONMENT_ALL) {
        writeln!(buf, ".TP\n.B {}\n{}", roff(name), roff(what))?;
    }
    writeln!(buf, ".SH \"SEE ALSO\"")?;
    let others: Vec<String> = TOOLS
        .iter()
        .filter(|t| **t != bin)
        .map(|t| format!("{}(1)", roff(t)))
        .collect();
    writeln!(buf, "{}, jq(1)", others.join(", "))?;
    page.render_version_section(&mut buf)?;
    out.write_all(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(cmd: clap::Command) -> String {
        let mut out = Vec::new();
        man(cmd, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The sections an operator looks for, with NAME on one line.
    #[test]
    fn every_page_has_name_on_one_line_exit_status_and_environment() {
        for cmd in crate::commands() {
            let bin = cmd.get_name().to_string();
            let text = page(cmd);
            let name = text.split(".SH NAME\n").nth(1).unwrap();
            let name_line = name.lines().next().unwrap();
            assert!(
                name_line.starts_with(&bin.replace('-', "\\-")),
                "{bin}: {name_line}"
            );
            assert!(
                name.lines().nth(1).unwrap().starts_with(".SH"),
                "{bin}: NAME is one line"
            );
            for section in [
                ".SH SYNOPSIS",
                ".SH \"EXIT STATUS\"",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(text.contains(section), "{bin} lacks {section}");
            }
            let synopsis = text
                .split(".SH SYNOPSIS")
                .nth(1)
                .unwrap()
                .split(".SH")
                .next()
                .unwrap();
            // Every tool reads NO_COLOR; the tools on the storage take
            // ROOT and read the environment for it, the filters (reg-pulls,
            // reg-keep) do not.
            assert!(text.contains(".SH ENVIRONMENT"), "{bin}");
            assert!(text.contains("NO_COLOR"), "{bin}");
            if bin == "reg-pulls" || bin == "reg-keep" {
                assert!(!text.contains("AWS_ACCESS_KEY_ID"), "{bin}");
                continue;
            }
            assert!(
                synopsis.contains(" ROOT\n"),
                "{bin}: ROOT is required: {synopsis}"
            );
            assert!(
                synopsis.contains("\\-\\-threads N"),
                "{bin}: flags with their values: {synopsis}"
            );
            assert!(text.contains("AWS_ACCESS_KEY_ID"), "{bin}");
            let examples = text.split(".SH EXAMPLES\n").nth(1).unwrap();
            assert!(examples.starts_with(".nf\n"), "{bin}: examples as written");
        }
    }

    #[test]
    fn completions_name_the_tool() {
        for cmd in crate::commands() {
            let bin = cmd.get_name().to_string();
            for (what, needle) in [
                (
                    Generate::CompleteBash,
                    format!("complete -F _{}", bin.replace('-', "__")),
                ),
                (Generate::CompleteZsh, format!("#compdef {bin}")),
                (Generate::CompleteFish, format!("complete -c {bin}")),
            ] {
                let mut out = Vec::new();
                write(what, cmd.clone(), &mut out).unwrap();
                let text = String::from_utf8(out).unwrap();
                assert!(text.contains(&needle), "{bin} {what:?}: no {needle:?}");
            }
        }
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(roff("a-b\\c"), "a\\-b\\ec");
        assert_eq!(roff(".x\n'y\nz"), "\\&.x\n\\&'y\nz");
    }
}
