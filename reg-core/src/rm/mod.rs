//! `reg-rm`: delete exactly what stdin names, and only what nothing live
//! reaches.
//!
//! # Input
//! One item per line: a bare digest (a blob), or a record of kind `blob`,
//! `revision`, `layer`, `upload`, `repo` or `tag` as `reg-ls` and
//! `reg-orphans` print them (extra fields are ignored). The whole input is
//! read and checked before anything is touched ([`parse_input`], then
//! [`check_input`]); one bad line stops the run with its number, and nothing
//! is deleted. Refused, besides lines that are not records or digests:
//! - a list of *live* references (`reg-refs` output: its trailer, or any
//!   record with a `manifest` field);
//! - `tag` records without [`Config::untag`]: removing tags is a retention
//!   decision, never an accident of a pipeline;
//! - tag records mixed with records of any other kind or bare digests:
//!   that is what an unfiltered `reg-ls ROOT | reg-rm ROOT` (or `reg-ls ROOT
//!   --repo NAME`, which leaves blobs out) looks like;
//! - an `error` record: a tool that failed wrote it in place of its
//!   trailer ([`crate::record::Failed`]);
//! - a `reg-orphans` trailer whose counts disagree with the records read (a
//!   cut or filtered list), that names another storage root, or that is
//!   followed by more records.
//!
//! # The mark
//! reg-rm does not trust its input to say what is unreachable. Before the
//! first deletion it walks the reference graph itself ([`crate::mark`]), from
//! every tag and every revision this run does not remove, and keeps (as
//! `"kept"`, with the reason) every named blob or revision the walk reaches.
//! Before the blob phase it lists the roots again and walks again if they
//! changed (a push during the run). Live manifests that are missing or
//! unusable make the mark incomplete: then no blob is deleted, nor a
//! revision of that repository, unless [`Config::accept_broken`]. The same
//! flag is needed to delete a `_layers` link or a revision because its blob
//! is missing (an unmounted volume looks exactly like that). An empty or
//! missing blob store is an error.
//!
//! # Order
//! Phases run one after the other so that a crash at any point leaves a tree
//! the registry serves correctly, at worst with garbage left for a second run:
//! 1. tags (the whole `tags/<tag>/` directory);
//! 2. revisions (`revisions/<alg>/<hex>/`), then their entries in every tag's
//!    `index/` directory;
//! 3. `_layers` links: the ones named, and every repository's link to each
//!    blob about to be deleted;
//! 4. blob data (the whole `blobs/<alg>/<xx>/<hex>/` directory);
//! 5. uploads;
//! 6. repositories, only if empty of tags, revisions and uploads by then:
//!    the keys listed then, and a second look after removing them, which
//!    writes the `_layers` links back if a push landed meanwhile
//!    (`repo.rs`);
//! 7. empty directories left behind: blob prefix directories, revision
//!    directories without a link (never `repositories/` or `blobs/`).
//!
//! Within a phase work is spread over the rayon pool; records go through the
//! single [`Out`] writer, in a stable order. A run that cannot finish (a
//! closed stdout, the test hook) stops before the next phase and fails,
//! saying which phase it stopped before. A dry run changes nothing, so a
//! closed stdout (`reg-rm --dry-run … | head`) ends it quietly with status
//! 0, as it ends every listing.
//!
//! # Other guards (checked on the live tree when the phase runs)
//! - A tag record carrying a `digest` is deleted only if the tag still points
//!   there (it may have been pushed again since it was listed).
//! - Links, blobs, uploads and empty directories younger than `min_age` are
//!   kept; a blob is kept if any repository's link to it is young. A file
//!   whose modification time is in the future is kept, with a warning.
//! - A `layer` record whose blob is still stored (and not deleted in this run)
//!   is kept: the link may be what lets a tagged image pull.
//! - A `repo` record is kept while the repository holds a tag, a revision,
//!   an upload or a young `_layers` link; deleting it removes its `_manifests`,
//!   `_layers` and `_uploads` only, never a nested repository.
//! - Every change goes through [`crate::storage::Backend`], which refuses
//!   `..`, absolute paths and paths through symbolic links; every path is
//!   built by [`crate::layout::paths`] from validated names. `--trash` must be a new or
//!   empty directory outside the storage root, on its filesystem.
//!
//! # Output ([`RmRecord`])
//! ```text
//! {"action":"deleted","kind":"blob","digest":"sha256:…","bytes":123}
//! {"action":"trashed","kind":"tag","repo":"org/app","tag":"v1","digest":"sha256:…","bytes":142}
//! {"action":"would-delete","kind":"revision","repo":"org/app","digest":"sha256:…","bytes":71}
//! {"action":"absent","kind":"upload","repo":"org/app","id":"…","bytes":0}
//! {"action":"kept","kind":"blob","digest":"sha256:…","bytes":0,"reason":"tag org/app:v1 points at it"}
//! ```
//! `bytes` is what the action frees (file sizes under the removed directory,
//! less what earlier actions of the same run removed, so that a dry run
//! promises what the real run frees).
//!
//! # Test hook
//! [`Config::fail_after`] (the binary reads it from `REG_RM_FAIL_AFTER=N`)
//! stops the run with an error after N deleted records, as a crash would, so
//! tests can check that a half-done run leaves a tree that serves and that a
//! second run finishes the job.

mod act;
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

pub use input::{check_input, parse_input, Input, InputError};
pub use report::{Action, RmRecord, Stats, Stopped};

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
    /// Test hook (`REG_RM_FAIL_AFTER`): stop with an error after this many
    /// deletions, as a crash would.
    pub fail_after: Option<u64>,
    /// "Now", for ages.
    pub now: SystemTime,
    /// Test hook: runs once the `_layers` links of the doomed blobs are
    /// removed, before the run looks again (tests push there).
    pub after_links: Option<Hook>,
    /// Test hook: runs once the revisions are removed, before the run looks
    /// again (tests push there).
    pub after_revisions: Option<Hook>,
    /// Test hook: runs once an empty repository's keys are listed for
    /// removal, before they are removed (tests push there).
    pub before_repo_removal: Option<Hook>,
    /// Whether the registry keeps a blob descriptor cache, as its
    /// configuration says: what to remind of after deleting.
    pub blob_cache: BlobCache,
}

/// A test hook (see [`Config::after_links`]).
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
            fail_after: None,
            now: SystemTime::now(),
            after_links: None,
            after_revisions: None,
            before_repo_removal: None,
            blob_cache: BlobCache::Unknown,
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
    store.check_blob_store()?;
    if let Mode::Trash(dir) = &cfg.mode {
        // Checked and made by the backend's trash; refused without one.
        store.prepare_trash(dir)?;
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
