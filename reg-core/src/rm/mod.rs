//! `reg-rm`: delete exactly what stdin names, and only what nothing live
//! reaches. The README's reg-rm and Safety sections are the contract; this
//! module owns it in code:
//!
//! - [`input`](parse_input): one item a line (a bare digest, or a record of
//!   kind `blob`, `revision`, `layer-link`, `upload`, `repo` or `tag`), all
//!   read and checked ([`check_input`]) before anything is touched; one bad
//!   line stops the run with its number and nothing is deleted.
//! - `guard`: the read-only checks, on the live tree when each phase runs
//!   (ages, tags that moved, links a push wrote again), and the mark
//!   ([`crate::mark`]): what stays live, walked again before the blobs go.
//! - `act`: the one place that deletes or trashes, through the
//!   [`crate::storage::Backend`] (object storage: in batches).
//! - `phases`: the crash-safe order (tags, revisions, `_layers` links,
//!   blobs, uploads, repositories, empty directories); a crash at any point
//!   leaves a tree the registry serves, at worst with garbage left.
//! - `report`: one [`RmRecord`] per item through the single writer, the
//!   summary's [`Stats`], and [`Stopped`] for a run that could not finish.
//!
//! # Test hooks
//! With the `test-hooks` feature (the tests', never the shipped binaries'),
//! `Config::hooks` stops a run after N deletions as a crash would
//! (`REG_RM_FAIL_AFTER=N` in the binary), or runs code where a push may
//! race the run, so tests can check that a half-done run leaves a tree that
//! serves and that a second run finishes the job.

mod act;
mod aside;
mod copies;
mod guard;
mod input;
mod phases;
mod repo;
mod report;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::layout::Store;
use crate::messages::Messages;
use crate::output::Out;
use crate::registry_config::BlobCache;

pub use aside::HELD;
pub use input::{check_input, parse_input, Input, InputError};
pub use report::{Action, Kind, RmRecord, Stats, Stopped};

/// What to do with what is named.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Delete,
    /// Print `would-delete` records and touch nothing.
    DryRun,
    /// Move into this directory, keeping paths relative to `v2/`.
    Trash(PathBuf),
}

/// reg-rm's `--settle` unless told otherwise: a registry writes the link
/// of a push milliseconds after checking the blob; a second covers a busy
/// one with room to spare.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

/// How to delete.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// Blobs, links, uploads and empty directories younger than this are kept.
    pub min_age: Duration,
    /// Act on `tag` records (untag). Without it they are refused.
    pub untag: bool,
    /// Accept that broken images stay broken: delete blobs even when the
    /// mark is incomplete (live manifests missing or unusable), and delete
    /// `_layers` links and revisions whose blob is missing.
    pub accept_broken: bool,
    /// "Now", for ages.
    pub now: SystemTime,
    /// How long to wait, once links are removed and once blob data is set
    /// aside, for pushes in flight to land before looking again: a push
    /// that checked a blob just before it went writes its link a moment
    /// later, and the look must see that link.
    pub settle: Duration,
    /// Whether the registry keeps a blob descriptor cache, as its
    /// configuration says: what to remind of after deleting.
    pub blob_cache: BlobCache,
    /// Test hooks: only with the `test-hooks` feature, which the tests
    /// enable and the shipped binaries do not.
    #[cfg(any(test, feature = "test-hooks"))]
    pub hooks: Hooks,
}

/// Where tests stop or pause a run (the `test-hooks` feature).
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// Stop with an error after this many deletions, as a crash would
    /// (reg-rm reads it from `REG_RM_FAIL_AFTER`).
    pub fail_after: Option<u64>,
    /// Runs once the `_layers` links of the doomed blobs are removed,
    /// before the run looks again (tests push there).
    pub after_links: Option<Hook>,
    /// Runs once the revisions are removed, before the run looks again
    /// (tests push there).
    pub after_revisions: Option<Hook>,
    /// Runs once the blob data is deleted, before the last look for
    /// manifests pushed again meanwhile (tests link one there).
    pub after_blobs: Option<Hook>,
    /// Runs once an empty repository's keys are listed for removal, before
    /// they are removed (tests push there).
    pub before_repo_removal: Option<Hook>,
    /// Queued deletes sent once this many keys are queued, not 16,000
    /// (`REG_RM_FLUSH_WAVE` in the binary): a small registry's run then
    /// sends them in the middle of its phases, as a large one's does.
    pub flush_wave: Option<usize>,
}

#[cfg(any(test, feature = "test-hooks"))]
impl Config {
    /// The deletions after which the test hook stops the run.
    pub(crate) fn fail_after(&self) -> Option<u64> {
        self.hooks.fail_after
    }

    /// The keys queued that are sent at once (see [`Hooks::flush_wave`]).
    pub(crate) fn flush_wave(&self) -> usize {
        self.hooks.flush_wave.unwrap_or(act::FLUSH_WAVE).max(1)
    }
}

#[cfg(not(any(test, feature = "test-hooks")))]
impl Config {
    /// Never, without the `test-hooks` feature.
    pub(crate) fn fail_after(&self) -> Option<u64> {
        None
    }

    /// The keys queued that are sent at once.
    pub(crate) fn flush_wave(&self) -> usize {
        act::FLUSH_WAVE
    }
}

/// A test hook (see `Hooks`, with the `test-hooks` feature).
#[derive(Clone)]
pub struct Hook(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook")
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mode: Mode::Delete,
            min_age: Duration::from_secs(3600),
            untag: false,
            accept_broken: false,
            now: SystemTime::now(),
            settle: DEFAULT_SETTLE,
            blob_cache: BlobCache::Unknown,
            #[cfg(any(test, feature = "test-hooks"))]
            hooks: Hooks::default(),
        }
    }
}

/// Deletes what `input` names from `store`, writing one record per item to
/// `out`. Input that cannot be what it claims is refused first
/// ([`check_input`]); then the mark decides what is live. Problems with
/// single items are reported through `msgs` (exit 1) and the run goes on
/// where that is safe; dependent steps are skipped.
pub fn run<W: Write>(
    store: &Store,
    input: &Input,
    cfg: &Config,
    out: &mut Out<W>,
    msgs: &Messages,
) -> anyhow::Result<Stats> {
    check_input(input, store, cfg.untag)?;
    // On a large bucket the phases hold a batch of repositories (or blob
    // prefix directories) at a time, not the whole listing (issue 18).
    store.list_repositories_by_repository();
    store.list_blobs_by_prefix();
    store.check_blob_store()?;
    if let Mode::Trash(dir) = &cfg.mode {
        // Checked and made by the backend's trash; refused without one.
        store.prepare_trash(dir)?;
    }
    if cfg.mode != Mode::DryRun {
        // What a run that died set aside goes back before anything else.
        aside::recover(store, msgs);
    }
    let runner = phases::Runner::new(store, cfg, msgs);
    let mut w = report::Writer {
        out,
        stats: Stats::default(),
    };
    let result = runner.phases(input, &mut w);
    if runner.deleted() > 0 {
        // Whatever ended the run, and whatever -q says: something is gone,
        // and a registry with a blob descriptor cache keeps serving "layer
        // already exists" for deleted blobs, so clients push broken images
        // (distribution #1803, #2966, #4569).
        if let Some(reminder) = cfg.blob_cache.reminder() {
            msgs.note(reminder);
        }
    }
    result?;
    Ok(w.stats)
}
