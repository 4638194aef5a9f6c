//! `reg-keep`: retention rules over `reg-ls ROOT --kind tag` records; prints
//! the tags to drop (for `reg-rm --untag`), or with `--explain` every tag
//! and the rule that decided it. The logic is in [`reg_core::keep`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use reg_core::keep::policy::{self, DropSpec, PolicySpec};
use reg_core::keep::{self as keep_core, Explained, PolicyError, PolicySet};
use reg_core::messages::count;
use reg_core::pulls::{self, PullTimes};
use reg_core::time::Time;

use crate::common as cli;
use crate::filter::{self, Output};

const EXAMPLES: &str = "\
Examples:
  reg-ls /srv/registry --kind tag | reg-keep --keep-newest 10 --explain
      preview: every tag, kept or dropped, and the rule that decided
  reg-ls /srv/registry --kind tag | reg-keep --keep-newest 10 | reg-rm --untag /srv/registry
      untag all but the 10 newest tags of each repository
  reg-pulls /var/log/registry/access.log* > pulls.jsonl
  reg-ls /srv/registry --kind tag | reg-keep --repo 'team/*' --keep-newest 10 \\
      --pulled-within 30d --pulls pulls.jsonl --keep-at-least 3 --drop-tag -rc --older-than 14d
      the 10 newest and anything pulled in 30 days, never fewer than 3, for team/*;
      tags with -rc pushed more than 14 days ago go
  reg-ls /srv/registry --kind tag | reg-keep --policy /etc/reg-keep.yml --pulls pulls.jsonl
      several policies, from a YAML file (see the README)";

/// What `--newest-by` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NewestBy {
    /// Push time: the tag link's modification time (reg-ls mtime).
    Push,
    /// Version order: semver (a leading v allowed), then natural order.
    Version,
}

/// Choose the tags to drop by retention rules (keep the newest, pulled within…)
///
/// Reads reg-ls ROOT --kind tag records and prints the tag records to drop,
/// as reg-ls printed them, for reg-rm --untag; with --explain, every tag and
/// the rule that decided it. The rules are those registry products write
/// (ECR lifecycle policies, Artifact Registry cleanup policies, zot
/// retention), in this order: --keep-tag (always kept; wins over drop
/// rules), --drop-tag / --older-than (dropped), then of the rest
/// --keep-newest, --pushed-within and --pulled-within keep what they name
/// and the rest is dropped; the floor --keep-at-least keeps the newest
/// dropped back. Or --policy FILE for several policies. Reads no storage
/// and changes nothing.
#[derive(Parser, Debug)]
#[command(
    name = "reg-keep",
    version,
    override_usage = "reg-ls ROOT --kind tag | reg-keep [OPTIONS] RULES...\n       reg-ls ROOT --kind tag | reg-keep [OPTIONS] --policy <FILE>",
    after_help = "Full descriptions and examples: --help, or man reg-keep.",
    after_long_help = EXAMPLES
)]
#[command(group(clap::ArgGroup::new("rules").multiple(true)))]
pub struct Args {
    /// Tag records, as `reg-ls ROOT --kind tag` prints them; `-` (or none) reads stdin.
    #[arg(value_name = "TAGS")]
    pub tags: Option<PathBuf>,

    /// Read the policies from a YAML file (instead of the rule flags below).
    #[arg(long, value_name = "FILE", conflicts_with = "rules")]
    pub policy: Option<PathBuf>,

    /// Apply the rules only to repositories matching GLOB (repeatable): `*` within a path
    /// component (`team/*`), `**` across (`team/**`) [default: every repository].
    #[arg(long = "repo", value_name = "GLOB", value_parser = glob_arg, group = "rules")]
    pub repos: Vec<String>,

    /// Always keep tags matching REGEX (repeatable; unanchored: `^latest$` for exactly latest).
    /// Wins over drop rules.
    #[arg(long = "keep-tag", value_name = "REGEX", allow_hyphen_values = true, value_parser = pattern_arg, group = "rules")]
    pub keep_tags: Vec<String>,

    /// Drop tags matching REGEX (repeatable; with --older-than, only those pushed longer ago).
    #[arg(long = "drop-tag", value_name = "REGEX", allow_hyphen_values = true, value_parser = pattern_arg, group = "rules")]
    pub drop_tags: Vec<String>,

    /// Drop tags pushed longer ago than DURATION (with --drop-tag, only the tags it matches).
    #[arg(long, value_name = "DURATION", value_parser = span_arg, group = "rules")]
    pub older_than: Option<String>,

    /// Of the tags no rule above decided, keep the N newest.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), group = "rules")]
    pub keep_newest: Option<u64>,

    /// What "newest" means for --keep-newest and --keep-at-least [default: push].
    #[arg(long, value_enum, value_name = "ORDER", group = "rules")]
    pub newest_by: Option<NewestBy>,

    /// Of those tags, keep the ones pushed within DURATION.
    #[arg(long, value_name = "DURATION", value_parser = span_arg, group = "rules")]
    pub pushed_within: Option<String>,

    /// Of those tags, keep the ones pulled within DURATION (by tag or by digest; needs
    /// --pulls). A tag pushed within DURATION is kept too: too young to judge.
    #[arg(long, value_name = "DURATION", value_parser = span_arg, group = "rules")]
    pub pulled_within: Option<String>,

    /// Never leave a repository with fewer than N tags: keep back the newest dropped ones.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64), group = "rules")]
    pub keep_at_least: Option<u64>,

    /// Pull times: the output of reg-pulls LOG... (`-`: stdin, with TAGS a file).
    #[arg(long, value_name = "FILE")]
    pub pulls: Option<PathBuf>,

    /// Allow a policy to drop every tag of a repository (refused otherwise, naming it).
    #[arg(long)]
    pub allow_empty: bool,

    /// Print every tag as a "kept" or "dropped" record with the rule that decided it,
    /// instead of the tag records to drop.
    #[arg(long)]
    pub explain: bool,

    /// Judge ages as of TIME (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub now: Option<Time>,

    #[command(flatten)]
    pub output: Output,
}

fn glob_arg(s: &str) -> Result<String, String> {
    policy::repo_glob(s).map(|_| s.to_string())
}

fn pattern_arg(s: &str) -> Result<String, String> {
    policy::tag_pattern(s).map(|_| s.to_string())
}

fn span_arg(s: &str) -> Result<String, String> {
    policy::span(s).map(|_| s.to_string())
}

fn time_arg(s: &str) -> Result<Time, String> {
    Time::parse(s)
}

impl Args {
    /// The policy the rule flags write, or `None` if no rule flag is given.
    fn flag_policy(&self) -> Option<PolicySpec> {
        let drop = if self.drop_tags.is_empty() && self.older_than.is_none() {
            Vec::new()
        } else {
            vec![DropSpec {
                tags: self.drop_tags.clone(),
                older_than: self.older_than.clone(),
            }]
        };
        let spec = PolicySpec {
            name: None,
            repositories: self.repos.clone(),
            // A policy for some tags only is written in a policy file.
            tags: Vec::new(),
            keep_tags: self.keep_tags.clone(),
            drop,
            keep_newest: self.keep_newest,
            newest_by: self.newest_by.map(|n| match n {
                NewestBy::Push => "push".to_string(),
                NewestBy::Version => "version".to_string(),
            }),
            pushed_within: self.pushed_within.clone(),
            pulled_within: self.pulled_within.clone(),
            keep_at_least: self.keep_at_least,
        };
        let rules = !spec.keep_tags.is_empty()
            || !spec.drop.is_empty()
            || spec.keep_newest.is_some()
            || spec.pushed_within.is_some()
            || spec.pulled_within.is_some()
            || spec.keep_at_least.is_some();
        rules.then_some(spec)
    }
}

/// A usage error: said once, status 2.
fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    Ok(cli::usage_error("reg-keep", msg))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.output.generate {
        return crate::common::generate(what, <Args as clap::CommandFactory>::command());
    }
    // The policy first, before any input is read.
    let set: PolicySet = match (&args.policy, args.flag_policy()) {
        (Some(path), _) => match keep_core::read_policy_file(path) {
            Ok(set) => set,
            Err(e) => return usage(e),
        },
        (None, Some(spec)) => match spec.build("") {
            Ok(p) => PolicySet { policies: vec![p] },
            Err(e) => return usage(flag_error(e)),
        },
        (None, None) => {
            return usage(
                "no policy: give rules (--keep-newest N, --pulled-within D, --drop-tag REGEX, …) \
                 or --policy FILE; see reg-keep --help",
            )
        }
    };
    let tags_path = filter::or_stdin(args.tags.clone());
    if set.uses_pulls() && args.pulls.is_none() {
        return usage(
            "pulled-within needs pull records: --pulls FILE, the output of reg-pulls LOG... \
             (the registry's access or application log)",
        );
    }
    if args.pulls.as_deref().is_some_and(filter::is_stdin) && filter::is_stdin(&tags_path) {
        return usage(
            "--pulls - and the tags both on stdin: give the tags as a file (reg-keep TAGS --pulls -)",
        );
    }
    let msgs =
        cli::messages("reg-keep", args.output.quiet).summary_when(crate::show_summary(args.output.stats));
    let pull_times = match &args.pulls {
        Some(path) => Some(read_pulls(path)?),
        None => None,
    };
    let tags = read_tags(&tags_path)?;
    let now = args.now.map_or_else(SystemTime::now, |t| t.0);
    let outcome = keep_core::decide(
        &tags,
        &keep_core::Config {
            policies: &set,
            pulls: pull_times.as_ref(),
            now,
        },
    );
    for note in &outcome.notes {
        msgs.warn(note);
    }
    // A preview still shows every tag; a list to act on is withheld.
    if !say_emptied(&args, &tags, &outcome, &msgs) && !args.explain {
        msgs.note("nothing printed");
        return Ok(cli::status(&msgs));
    }
    write_outcome(&args, &tags, &outcome)?;
    summarize(&tags, &outcome, &msgs);
    Ok(cli::status(&msgs))
}

/// Says which repositories the policy would empty: a warning with
/// `--allow-empty`, else an error. False if a list to act on must be
/// withheld.
fn say_emptied(
    args: &Args,
    tags: &[keep_core::TagRecord],
    outcome: &keep_core::Outcome,
    msgs: &reg_core::messages::Messages,
) -> bool {
    for repo in &outcome.emptied {
        let n = tags.iter().filter(|t| &t.repo == repo).count();
        let msg = format!(
            "{repo}: the policy drops every tag of this repository ({n}); --allow-empty lets it \
             (or keep-at-least N keeps the newest)"
        );
        if args.allow_empty {
            msgs.warn(msg);
        } else {
            msgs.error(msg);
        }
    }
    outcome.emptied.is_empty() || args.allow_empty
}

/// The dropped tags as reg-ls printed them, or every tag with its reason
/// (`--explain`).
fn write_outcome(
    args: &Args,
    tags: &[keep_core::TagRecord],
    outcome: &keep_core::Outcome,
) -> anyhow::Result<()> {
    let mut out = args.output.out();
    for (t, d) in tags.iter().zip(&outcome.decisions) {
        if args.explain {
            cli::written(out.write(&Explained::new(t, d)))?;
        } else if !d.keep {
            cli::written(out.write(&keep_core::AsRead(&t.record)))?;
        }
    }
    cli::written(out.flush())?;
    Ok(())
}

/// The summary line.
fn summarize(
    tags: &[keep_core::TagRecord],
    outcome: &keep_core::Outcome,
    msgs: &reg_core::messages::Messages,
) {
    let repos = tags
        .iter()
        .map(|t| t.repo.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let names = outcome.names_only();
    let names = if names > 0 {
        format!(" ({names} of them only a name: a kept tag keeps their image)")
    } else {
        String::new()
    };
    msgs.summary(format!(
        "{}, {}: {} kept, {} dropped{names}",
        count(repos as u64, "repository", "repositories"),
        count(tags.len() as u64, "tag", "tags"),
        outcome.kept(),
        outcome.dropped(),
    ));
}

/// A policy error from the flags names the flag.
fn flag_error(e: PolicyError) -> PolicyError {
    let at = e.at.split(": ").last().unwrap_or_default();
    let flag = match at {
        "drop rule 1" => "--drop-tag/--older-than".to_string(),
        "tags" => "--drop-tag".to_string(),
        "repositories" => "--repo".to_string(),
        "keep-tags" => "--keep-tag".to_string(),
        other => format!("--{other}"),
    };
    PolicyError { at: flag, why: e.why }
}

fn reader(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if filter::is_stdin(path) {
        filter::stdin_not_a_terminal("reg-ls ROOT --kind tag | reg-keep …")?;
        Ok(Box::new(BufReader::new(std::io::stdin())))
    } else {
        let f = File::open(path).with_context(|| path.display().to_string())?;
        Ok(Box::new(BufReader::new(f)))
    }
}

fn read_tags(path: &Path) -> anyhow::Result<Vec<keep_core::TagRecord>> {
    let r = reader(path)?;
    keep_core::parse_tags(r).map_err(|e| {
        if filter::is_stdin(path) {
            anyhow::anyhow!("stdin {e}")
        } else {
            anyhow::anyhow!("{}: {e}", path.display())
        }
    })
}

fn read_pulls(path: &Path) -> anyhow::Result<PullTimes> {
    let r = reader(path)?;
    let name = if filter::is_stdin(path) {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    pulls::parse_pulls(r).map_err(|e| anyhow::anyhow!("--pulls {name}: {e}"))
}
