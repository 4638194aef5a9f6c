//! `reg-pulls`: the last pull of every tag and digest, from the registry's
//! own logs. The formats and records are in [`reg_core::pulls`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use reg_core::messages::count;
use reg_core::pulls::{self, PullLog, PullsRecord};

use crate::common as cli;
use crate::filter::{self, Output};

const EXAMPLES: &str = "\
Examples:
  reg-pulls /var/log/registry/access.log /var/log/registry/access.log.*.gz > pulls.jsonl
      pull times from a log and its rotated files
  journalctl -u docker-registry -o cat --since -31d | reg-pulls > pulls.jsonl
      the registry's stdout and stderr, as systemd keeps them
  reg-ls /srv/registry --kind tag | reg-keep --pulled-within 30d --pulls pulls.jsonl
      the tags nobody pulled in 30 days";

/// Read when each tag was last pulled, from the registry's own logs
///
/// Prints, for each repository, the last successful pull of each tag and
/// of each manifest pulled by digest, then a trailer with the time span the
/// logs cover (for reg-keep --pulled-within). Reads the access log
/// (combined format), the application log (logrus text, JSON or logstash:
/// its "response completed" lines, at log.level info) and notification
/// envelopes, gzip-compressed or not, in any mix; each line is recognised
/// on its own, so journalctl and docker logs output works.
#[derive(Parser, Debug)]
#[command(
    name = "reg-pulls",
    version,
    override_usage = "reg-pulls [OPTIONS] [LOG]...\n       journalctl -u docker-registry -o cat | reg-pulls [OPTIONS]",
    after_help = "Full descriptions and examples: --help, or man reg-pulls.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    /// Log files, plain or gzip-compressed; `-` (or none) reads stdin
    #[arg(value_name = "LOG")]
    pub logs: Vec<PathBuf>,

    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.output.generate {
        return crate::common::generate(what, <Args as clap::CommandFactory>::command());
    }
    let msgs =
        cli::messages("reg-pulls", args.output.quiet).summary_when(crate::show_summary(args.output.stats));
    let logs = if args.logs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.logs
    };
    if logs.iter().filter(|p| filter::is_stdin(p)).count() > 1 {
        return Ok(cli::usage_error("reg-pulls", "`-` (stdin) given more than once"));
    }
    let mut log = PullLog::default();
    let mut lines = 0;
    for path in &logs {
        let (reader, name) = if filter::is_stdin(path) {
            filter::stdin_not_a_terminal("reg-pulls LOG..., or … | reg-pulls")?;
            (pulls::open(std::io::stdin())?, Path::new("stdin"))
        } else {
            (pulls::open_path(path)?, path.as_path())
        };
        let st = pulls::read_log(reader, name, &mut log)?;
        lines += st.lines;
        if st.lines > 0 && st.known == 0 {
            anyhow::bail!(
                "{}: none of its {} is in a format reg-pulls reads (the registry's access log, \
                 its application log as text, JSON or logstash, notification envelopes)",
                name.display(),
                count(st.lines, "line", "lines")
            );
        }
        if st.known > 0 && st.pulls == 0 {
            msgs.warn(format!(
                "{}: no successful manifest pull in its {} (the application log has a line per \
                 request only at log.level info or debug; the access log unless log.accesslog.disabled)",
                name.display(),
                count(st.lines, "line", "lines")
            ));
        }
    }
    let mut out = args.output.out();
    for r in log.records() {
        cli::written(out.write(&r))?;
    }
    let end = log.end();
    cli::written(out.write(&PullsRecord::End(end.clone())))?;
    cli::written(out.flush())?;
    let (repos, tags, digests) = log.counts();
    let span = match (end.since, end.until) {
        (Some(a), Some(b)) => format!(" from {a} to {b}"),
        _ => String::new(),
    };
    msgs.summary(format!(
        "read {}, {}{span}: {} of {} and {} in {}",
        count(logs.len() as u64, "log", "logs"),
        count(lines, "line", "lines"),
        count(log.pulls(), "pull", "pulls"),
        count(tags as u64, "tag", "tags"),
        count(digests as u64, "digest", "digests"),
        count(repos as u64, "repository", "repositories"),
    ));
    Ok(cli::status(&msgs))
}
