//! `reg-rm`: delete exactly what stdin names from a registry's storage.
//!
//! The logic, its order and its guards are in [`reg_core::rm`].
//!
//! Test hooks, with the `test-hooks` feature only (the tests enable it; the
//! release build does not): the environment variable `REG_RM_FAIL_AFTER=N` makes reg-rm
//! stop with exit status 1 after N deletions, as if it had crashed; the
//! end-to-end tests use it to check that a run cut short leaves every tagged
//! image pullable and that a second run finishes the job.
//! `REG_RM_PAUSE_BEFORE_REPO_REMOVAL=DIR` pauses it where a push may race
//! the removal of a repository (see `PAUSE_ENV`).

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::common::{self as cli, Common};
use clap::Parser;
use reg_core::messages::count;
use reg_core::rm::{self, Mode};

use crate::progress_line::ProgressLine;

/// The test hooks (the `test-hooks` feature), read from the environment.
#[cfg(feature = "test-hooks")]
mod hooks {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::Context;
    use reg_core::rm;

    /// The test hook's environment variable.
    const FAIL_AFTER_ENV: &str = "REG_RM_FAIL_AFTER";

    /// Test hook: `REG_RM_FLUSH_WAVE=N` sends queued deletes once N keys
    /// are queued (see `rm::Hooks::flush_wave`).
    const FLUSH_WAVE_ENV: &str = "REG_RM_FLUSH_WAVE";

    /// Test hook: `REG_RM_PAUSE_BEFORE_REPO_REMOVAL=DIR` makes reg-rm, each time
    /// it has listed an empty repository's keys and is about to remove them,
    /// create `DIR/paused` and wait until `DIR/resume` exists (at most a
    /// minute): end-to-end tests push there, through the registry.
    const PAUSE_ENV: &str = "REG_RM_PAUSE_BEFORE_REPO_REMOVAL";

    /// Test hook: `REG_RM_PAUSE_AFTER_BLOBS=DIR`, the same pause once the
    /// blob phase has deleted blobs that could come back, before its last
    /// look: end-to-end tests write links there, as a push racing the
    /// deletion does.
    const PAUSE_AFTER_BLOBS_ENV: &str = "REG_RM_PAUSE_AFTER_BLOBS";

    /// The pause of [`PAUSE_ENV`].
    fn pause_in(dir: &Path) {
        let _ = std::fs::write(dir.join("paused"), b"");
        let until = Instant::now() + Duration::from_secs(60);
        while !dir.join("resume").exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A pause in the directory `var` names, if it is set.
    fn pause(var: &str) -> Option<rm::Hook> {
        std::env::var_os(var).map(|dir| {
            let dir = PathBuf::from(dir);
            rm::Hook(Arc::new(move || pause_in(&dir)))
        })
    }

    /// The test hooks the environment asks for.
    pub(super) fn from_env() -> anyhow::Result<rm::Hooks> {
        let number = |var: &str| -> anyhow::Result<Option<u64>> {
            match std::env::var(var) {
                Ok(v) => Ok(Some(
                    v.trim()
                        .parse::<u64>()
                        .with_context(|| format!("{var}={v:?}: not a number"))?,
                )),
                Err(_) => Ok(None),
            }
        };
        Ok(rm::Hooks {
            fail_after: number(FAIL_AFTER_ENV)?,
            flush_wave: number(FLUSH_WAVE_ENV)?.map(|n| n as usize),
            before_repo_removal: pause(PAUSE_ENV),
            after_blobs: pause(PAUSE_AFTER_BLOBS_ENV),
            ..rm::Hooks::default()
        })
    }
}

const EXAMPLES: &str = "\
Examples:
  reg-refs /srv/registry | reg-orphans /srv/registry | reg-rm --dry-run /srv/registry
                                                    what a garbage collection would delete
  reg-ls /srv/registry --kind tag --repo org/app | jq -c 'select(.mtime < \"2026-01-01\")' \\
    | reg-rm --untag /srv/registry                  untag what was not pushed this year
  reg-rm --trash /srv/trash /srv/registry <<< sha256:4b8e…
                                                    one blob, moved aside, if nothing needs it";

/// Delete from a registry's storage what stdin names and nothing live reaches
///
/// Reads bare digests (blobs) and reg-ls / reg-orphans records of kind
/// blob, revision, layer-link, upload, repo and, with --untag, tag. Every
/// line is checked before anything is deleted (one bad line and nothing
/// is), and reg-rm walks the reference graph itself: what a remaining tag
/// or revision reaches is kept, with the reason. One JSON record per
/// action on stdout: deleted, trashed, would-delete, absent or kept.
///
/// It removes in a crash-safe order (tags, revisions, _layers links, blob
/// data, uploads, repositories, empty directories) and looks again after
/// each step, so a push landing during the run keeps what it needs. After
/// deleting, restart a registry that runs with a blob descriptor cache.
#[derive(Parser, Debug)]
#[command(
    name = "reg-rm",
    version,
    override_usage = "reg-orphans … | reg-rm [OPTIONS] <ROOT>\n       reg-orphans … | reg-rm [OPTIONS] --config <FILE>",
    after_help = "Full descriptions and examples: --help, or man reg-rm.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,

    /// Print "would-delete" records and change nothing
    #[arg(short = 'n', long, conflicts_with = "trash")]
    pub dry_run: bool,

    /// Move into DIR instead of deleting (copy DIR back into v2/ to restore)
    ///
    /// Paths are kept relative to v2/, so cp -a DIR/. ROOT/docker/registry/v2/
    /// restores everything. DIR must be new or empty, on the storage root's
    /// filesystem, and outside the root. Not on object storage.
    #[arg(long, value_name = "DIR")]
    pub trash: Option<PathBuf>,

    /// Keep blobs, links and uploads younger than DURATION
    ///
    /// The grace period for pushes in progress, checked again on the live
    /// tree at deletion time.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = cli::duration)]
    pub min_age: Duration,

    /// Wait DURATION for pushes in flight before each look again
    ///
    /// Once revisions or _layers links are removed and once blob data is
    /// set aside, reg-rm waits this long before it looks at the tree again:
    /// a push that checked a blob just before it went writes its link a
    /// moment later, and the look must see that link to keep the blob.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = cli::duration)]
    pub settle: Duration,

    /// Act on tag records: remove those tags
    ///
    /// A retention decision, never an accident of a pipeline: without it,
    /// input holding tag records is refused, and so are tag records mixed
    /// with records of any other kind.
    #[arg(long)]
    pub untag: bool,

    /// Accept that broken images stay broken
    ///
    /// Delete blobs even when live manifests are missing or unreadable (what
    /// they reference is unknown), and delete _layers links and revisions
    /// because their blob is missing (an unmounted volume looks exactly
    /// like that).
    #[arg(long)]
    pub accept_broken: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.common.generate {
        return cli::generate(what, <Args as clap::CommandFactory>::command());
    }
    #[cfg(feature = "test-hooks")]
    let hooks = hooks::from_env()?;
    let store = args.common.open()?;
    // reg-rm always says what it freed, unless -q.
    let msgs = cli::messages("reg-rm", args.common.quiet);
    let input = rm::parse_input(BufReader::new(std::io::stdin().lock()))?;
    let local = cli::local_now()?;
    let mode = match (args.dry_run, args.trash) {
        (true, _) => Mode::DryRun,
        (false, Some(dir)) => Mode::Trash(dir),
        (false, None) => Mode::Delete,
    };
    let cfg = rm::Config {
        mode,
        min_age: args.min_age,
        settle: args.settle,
        untag: args.untag,
        accept_broken: args.accept_broken,
        now: store.now(local, &msgs)?,
        blob_cache: args.common.blob_cache()?,
        #[cfg(feature = "test-hooks")]
        hooks,
    };
    let mut out = args.common.out();
    let mut progress = ProgressLine::start_for("reg-rm", &msgs, &store);
    // Prints the blob descriptor cache reminder itself after any deletion.
    let stats = rm::run(&store, &input, &cfg, &mut out, &msgs).map_err(trash_flag)?;
    progress.finish();
    // Against the clock now: files written during a long walk are not ahead.
    store.check_tree_clock(cli::local_now()?, &msgs);
    msgs.summary(cli::with_requests(&store, summary(&stats)));
    Ok(cli::status(&msgs))
}

/// Why `--trash` is refused where the backend has no trash.
const TRASH_REFUSED: &str = "--trash is not supported on object storage (a bucket has no rename; \
     copying every object first would double the requests): run with --dry-run to see what would go, \
     or turn on the bucket's versioning to be able to restore";

/// A refused trash directory, said with the flag that named it.
fn trash_flag(e: anyhow::Error) -> anyhow::Error {
    use reg_core::error::{Error, ErrorKind};
    let Some(core) = e.downcast_ref::<Error>() else {
        return e;
    };
    let at = core.path().display();
    match core.kind() {
        ErrorKind::BadTrash(why) => anyhow::anyhow!("--trash {at}: {why}"),
        ErrorKind::NoTrash => anyhow::anyhow!("{at}: {TRASH_REFUSED}"),
        _ => e,
    }
}

/// The one-line summary: actions by kind, bytes freed, empty directories
/// removed, failures.
fn summary(stats: &rm::Stats) -> String {
    let mut parts: Vec<String> = Vec::new();
    for a in [
        rm::Action::Deleted,
        rm::Action::Trashed,
        rm::Action::WouldDelete,
        rm::Action::Absent,
        rm::Action::Kept,
    ] {
        let n = stats.count(a);
        if n == 0 {
            continue;
        }
        let kinds: Vec<String> = stats
            .by_kind
            .iter()
            .filter(|((act, _), _)| *act == a.name())
            .map(|((_, k), n)| noun(*n, k))
            .collect();
        parts.push(format!("{} {n} ({})", a.name(), kinds.join(", ")));
    }
    if parts.is_empty() {
        parts.push("nothing to do".into());
    }
    let verb = if stats.count(rm::Action::WouldDelete) > 0 {
        "would free"
    } else {
        "freed"
    };
    let mut line = format!(
        "{}; {verb} {}",
        parts.join(", "),
        reg_core::size::human_bytes(stats.bytes)
    );
    if stats.empty_dirs > 0 {
        line.push_str(&format!(
            ", {} removed",
            count(stats.empty_dirs, "empty directory", "empty directories")
        ));
    }
    if stats.failed > 0 {
        line.push_str(&format!(", {} failed", stats.failed));
    }
    line
}

/// `n` records of `kind`, in words: `1 blob`, `2 layer links`.
fn noun(n: u64, kind: &str) -> String {
    match kind {
        "layer-link" => count(n, "layer link", "layer links"),
        "repo" => count(n, "repo", "repos"),
        k => count(n, k, &format!("{k}s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_core::error::{Error, ErrorKind};

    #[test]
    fn a_refused_trash_is_said_with_its_flag_and_other_errors_pass_through() {
        let bad = Error::new("/srv/trash", ErrorKind::BadTrash("not empty".into()));
        assert_eq!(
            trash_flag(bad.into()).to_string(),
            "--trash /srv/trash: not empty"
        );
        let none = Error::new("/srv/trash", ErrorKind::NoTrash);
        let said = trash_flag(none.into()).to_string();
        assert!(
            said.starts_with("/srv/trash: --trash is not supported on object storage"),
            "{said}"
        );
        let other = Error::other("/srv/registry", "blob store is empty or missing");
        assert_eq!(
            trash_flag(other.into()).to_string(),
            "/srv/registry: blob store is empty or missing"
        );
    }
}
