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
//! - tag records mixed with records of other kinds: that is what an
//!   unfiltered `reg-ls ROOT | reg-rm ROOT` looks like;
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
//! 6. repositories, only if empty of tags, revisions and uploads by then;
//! 7. empty directories left behind: blob prefix directories, revision
//!    directories without a link (never `repositories/` or `blobs/`).
//!
//! Within a phase work is spread over the rayon pool; records go through the
//! single [`Out`] writer, in a stable order. A run that cannot finish (a
//! closed stdout, the test hook) stops before the next phase and fails,
//! saying which phase it stopped before.
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
//!   built by [`paths`] from validated names. `--trash` must be a new or
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::Messages;
use crate::digest::{Algorithm, Digest};
use crate::layout::{check_repo_name, check_tag, check_upload_id, paths, Store};
use crate::mark::{Asked, Exclusions, Mark};
use crate::output::Out;
use crate::storage::EntryType;
use crate::time::Time;

/// How many times the mark is taken again when the roots keep changing
/// under it before the blob phase gives up (and keeps every blob).
const MARK_TRIES: usize = 3;

/// How far in the future an mtime may be before it is warned about.
const FUTURE_SLACK: Duration = Duration::from_secs(300);

// ---- input ---------------------------------------------------------------

/// Everything stdin names, validated and de-duplicated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Input {
    /// `(repo, tag)` → the digest the record said the tag points at.
    pub tags: BTreeMap<(String, String), Option<Digest>>,
    pub revisions: BTreeSet<(String, Digest)>,
    pub layers: BTreeSet<(String, Digest)>,
    pub blobs: BTreeSet<Digest>,
    pub uploads: BTreeSet<(String, String)>,
    pub repos: BTreeSet<String>,
    /// Trailers skipped.
    pub ignored: u64,
    /// The first line naming each kind (`"blob"` for bare digests too).
    pub first_line: BTreeMap<&'static str, usize>,
    /// Records read per kind, before de-duplication (bare digests not
    /// counted), to check against a `reg-orphans` trailer.
    pub records: BTreeMap<&'static str, u64>,
    /// The `reg-orphans` trailer, if any, and its line.
    pub orphans_end: Option<(usize, crate::record::OrphansEnd)>,
}

impl Input {
    /// Number of items named.
    pub fn len(&self) -> usize {
        self.tags.len()
            + self.revisions.len()
            + self.layers.len()
            + self.blobs.len()
            + self.uploads.len()
            + self.repos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A line of input that cannot be used; nothing is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stdin line {}: {} (nothing was deleted)", self.line, self.why)
    }
}

impl std::error::Error for InputError {}

const REFS_REFUSED: &str = "this is reg-refs output, a list of LIVE references: deleting what it \
     names would untag and delete live images; pipe it through reg-orphans first";

/// `layer` is a reg-refs edge; the `_layers` link is `layer-link`.
const LAYER_REFUSED: &str = "a \"layer\" record is reg-refs output, a LIVE reference from a \
     manifest to its layer; a _layers link is kind \"layer-link\" (as reg-ls and reg-orphans print it)";

/// Reads and checks all of `r`. Empty lines are skipped.
pub fn parse_input(mut r: impl BufRead) -> Result<Input, InputError> {
    let mut input = Input::default();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| InputError {
            line: line + 1,
            why: format!("cannot read: {e}"),
        })?;
        if n == 0 {
            return Ok(input);
        }
        line += 1;
        let err = |why: String| InputError { line, why };
        let text = std::str::from_utf8(&buf).map_err(|_| err("not valid UTF-8".into()))?;
        let parsed = parse_line(text).map_err(err)?;
        if let Some((end_line, _)) = &input.orphans_end {
            if !matches!(parsed, Parsed::Skip) {
                return Err(err(format!(
                    "more input after the reg-orphans trailer on line {end_line}: concatenated or garbled input"
                )));
            }
        }
        let (kind, item) = match parsed {
            Parsed::Skip => {
                if !text.trim().is_empty() {
                    input.ignored += 1;
                }
                continue;
            }
            Parsed::OrphansEnd(end) => {
                input.orphans_end = Some((line, *end));
                continue;
            }
            Parsed::Item { record, item } => {
                let kind = item.kind();
                if record {
                    *input.records.entry(kind).or_default() += 1;
                }
                (kind, item)
            }
        };
        input.first_line.entry(kind).or_insert(line);
        match item {
            Item::Tag { repo, tag, digest } => {
                let key = (repo, tag);
                if let Some(prev) = input.tags.get(&key) {
                    if *prev != digest {
                        return Err(err(format!(
                            "tag {}:{} named again with a different digest",
                            key.0, key.1
                        )));
                    }
                }
                input.tags.insert(key, digest);
            }
            Item::Revision { repo, digest } => {
                input.revisions.insert((repo, digest));
            }
            Item::Layer { repo, digest } => {
                input.layers.insert((repo, digest));
            }
            Item::Blob(d) => {
                input.blobs.insert(d);
            }
            Item::Upload { repo, id } => {
                input.uploads.insert((repo, id));
            }
            Item::Repo(repo) => {
                input.repos.insert(repo);
            }
        }
    }
}

/// Refuses input that cannot be what it claims, before anything happens:
/// tag records without `untag`, tag records mixed with other kinds (an
/// unfiltered reg-ls listing), and a reg-orphans trailer that does not
/// describe these records on this storage root.
pub fn check_input(input: &Input, store: &Store, untag: bool) -> Result<(), InputError> {
    if let Some(&line) = input.first_line.get("tag") {
        if !untag {
            return Err(InputError {
                line,
                why: "a tag record: removing tags is a retention decision, and reg-rm acts on tag \
                      records only with --untag"
                    .into(),
            });
        }
        // reg-ls lists blobs only unfiltered (or with --kind blob): tags
        // and blobs together are the whole listing, not a decision.
        if let Some(&blob_line) = input.first_line.get("blob") {
            return Err(InputError {
                line: blob_line.max(line),
                why: "tag records mixed with blobs: this looks like an unfiltered reg-ls listing; \
                      untag in one run (reg-ls ROOT --kind tag | jq -c 'select(…)' | reg-rm --untag ROOT) \
                      and collect garbage in another (reg-refs ROOT | reg-orphans ROOT | reg-rm ROOT)"
                    .into(),
            });
        }
    }
    let Some((line, end)) = &input.orphans_end else {
        return Ok(());
    };
    let err = |why: String| InputError { line: *line, why };
    if !end.excluded.is_empty() {
        return Err(err(format!(
            "a what-if list, made by reg-refs --exclude-repo {}: it names what deleting that \
             repository would free, but the repository still exists and needs it; run reg-refs \
             without --exclude-repo",
            end.excluded.join(" --exclude-repo ")
        )));
    }
    match end.root.as_deref() {
        Some(root) if !store.is_root(root) => {
            return Err(err(format!(
                "this list was made on another storage root ({root}), not {}: run reg-refs and \
                 reg-orphans on this root",
                store.root_id()
            )))
        }
        Some(_) => {}
        None => {
            return Err(err(
                "a reg-orphans trailer without \"root\": made by hand or by an older reg-orphans; \
                 run reg-orphans again"
                    .into(),
            ))
        }
    }
    for (kind, said) in [
        ("blob", end.blobs),
        ("revision", end.revisions),
        ("layer-link", end.layers),
        ("upload", end.uploads),
        ("repo", end.repos),
    ] {
        let got = input.records.get(kind).copied().unwrap_or(0);
        if got != said {
            return Err(err(format!(
                "the reg-orphans trailer and the records read disagree: it counts {said} {kind} records, \
                 the input holds {got}; the list was cut or filtered (drop the trailer when you filter \
                 on purpose)"
            )));
        }
    }
    Ok(())
}

/// One thing a line names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Tag {
        repo: String,
        tag: String,
        digest: Option<Digest>,
    },
    Revision {
        repo: String,
        digest: Digest,
    },
    Layer {
        repo: String,
        digest: Digest,
    },
    Blob(Digest),
    Upload {
        repo: String,
        id: String,
    },
    Repo(String),
}

impl Item {
    fn kind(&self) -> &'static str {
        match self {
            Item::Tag { .. } => "tag",
            Item::Revision { .. } => "revision",
            Item::Layer { .. } => "layer-link",
            Item::Blob(_) => "blob",
            Item::Upload { .. } => "upload",
            Item::Repo(_) => "repo",
        }
    }
}

/// What one line is.
enum Parsed {
    /// An empty line, or a trailer other than reg-orphans'.
    Skip,
    OrphansEnd(Box<crate::record::OrphansEnd>),
    /// `record`: a JSON record (not a bare digest).
    Item {
        record: bool,
        item: Item,
    },
}

fn parse_line(line: &str) -> Result<Parsed, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Parsed::Skip);
    }
    if !line.starts_with('{') {
        return Digest::parse(line)
            .map(|d| Parsed::Item {
                record: false,
                item: Item::Blob(d),
            })
            .map_err(|e| format!("neither a JSON record nor a digest: {e}"));
    }
    let map: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if map.contains_key("manifest") {
        return Err(REFS_REFUSED.into());
    }
    let kind = str_field(&map, "kind")?;
    let item = match kind {
        "end" => {
            return match map.get("tool").and_then(Value::as_str) {
                Some("reg-refs") => Err(REFS_REFUSED.into()),
                Some("reg-orphans") => serde_json::from_value(Value::Object(map))
                    .map(|e| Parsed::OrphansEnd(Box::new(e)))
                    .map_err(|e| format!("a reg-orphans trailer that cannot be read: {e}")),
                _ => Ok(Parsed::Skip),
            };
        }
        "blob" => Item::Blob(digest_field(&map)?),
        "revision" => Item::Revision {
            repo: repo_field(&map)?,
            digest: digest_field(&map)?,
        },
        "layer-link" => Item::Layer {
            repo: repo_field(&map)?,
            digest: digest_field(&map)?,
        },
        "upload" => {
            let repo = repo_field(&map)?;
            let id = str_field(&map, "id")?;
            check_upload_id(id)?;
            Item::Upload {
                repo,
                id: id.to_string(),
            }
        }
        "repo" => Item::Repo(repo_field(&map)?),
        "tag" => {
            let repo = repo_field(&map)?;
            let tag = str_field(&map, "tag")?;
            check_tag(tag)?;
            let digest = match map.get("digest") {
                None | Some(Value::Null) => None,
                Some(_) => Some(digest_field(&map)?),
            };
            Item::Tag {
                repo,
                tag: tag.to_string(),
                digest,
            }
        }
        "manifest" | "config" | "referrer" => return Err(REFS_REFUSED.into()),
        "layer" => return Err(LAYER_REFUSED.into()),
        other => {
            return Err(format!(
            "unknown record kind {other:?} (reg-rm takes blob, revision, layer-link, upload, repo and tag)"
        ))
        }
    };
    Ok(Parsed::Item { record: true, item })
}

fn str_field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("field {name:?} is not a string")),
        None => Err(format!("record without a {name:?} field")),
    }
}

fn repo_field(map: &Map<String, Value>) -> Result<String, String> {
    let repo = str_field(map, "repo")?;
    check_repo_name(repo)?;
    Ok(repo.to_string())
}

fn digest_field(map: &Map<String, Value>) -> Result<Digest, String> {
    Digest::parse(str_field(map, "digest")?).map_err(|e| e.to_string())
}
// ---- output --------------------------------------------------------------

/// What happened to one item.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Deleted,
    Trashed,
    WouldDelete,
    Absent,
    Kept,
}

impl Action {
    /// The item is gone (or would be, in a dry run).
    pub fn removes(self) -> bool {
        matches!(self, Action::Deleted | Action::Trashed | Action::WouldDelete)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Deleted => "deleted",
            Action::Trashed => "trashed",
            Action::WouldDelete => "would-delete",
            Action::Absent => "absent",
            Action::Kept => "kept",
        }
    }
}

/// One output record of `reg-rm`: the action first, then the kind and the
/// fields that identify the item, the bytes freed, and why it was kept.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RmRecord {
    pub action: Action,
    /// `tag`, `revision`, `layer`, `blob`, `upload` or `repo`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RmRecord {
    fn new(kind: &'static str) -> RmRecord {
        RmRecord {
            action: Action::Absent,
            kind,
            repo: None,
            tag: None,
            digest: None,
            id: None,
            bytes: 0,
            reason: None,
        }
    }
    fn repo(mut self, r: &str) -> Self {
        self.repo = Some(r.to_string());
        self
    }
    fn digest(mut self, d: Digest) -> Self {
        self.digest = Some(d);
        self
    }
    fn kept(mut self, reason: impl Into<String>) -> Self {
        self.action = Action::Kept;
        self.reason = Some(reason.into());
        self
    }
    fn done(mut self, action: Action, bytes: u64) -> Self {
        self.action = action;
        self.bytes = bytes;
        self
    }
}

// ---- configuration and results ---------------------------------------------

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
        }
    }
}

/// Counts for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records per action.
    pub actions: BTreeMap<&'static str, u64>,
    /// Records per (action, kind).
    pub by_kind: BTreeMap<(&'static str, &'static str), u64>,
    /// Bytes freed (or that would be).
    pub bytes: u64,
    /// Empty directories removed afterwards.
    pub empty_dirs: u64,
    /// Items that failed (reported as errors).
    pub failed: u64,
}

impl Stats {
    pub fn count(&self, a: Action) -> u64 {
        self.actions.get(a.name()).copied().unwrap_or(0)
    }

    /// Deleted or trashed (not dry-run) records.
    pub fn removed(&self) -> u64 {
        self.count(Action::Deleted) + self.count(Action::Trashed)
    }

    fn add(&mut self, r: &RmRecord) {
        *self.actions.entry(r.action.name()).or_default() += 1;
        *self.by_kind.entry((r.action.name(), r.kind)).or_default() += 1;
        if r.action.removes() {
            self.bytes += r.bytes;
        }
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for a in [
            Action::Deleted,
            Action::Trashed,
            Action::WouldDelete,
            Action::Absent,
            Action::Kept,
        ] {
            let n = self.count(a);
            if n == 0 {
                continue;
            }
            let kinds: Vec<String> = self
                .by_kind
                .iter()
                .filter(|((act, _), _)| *act == a.name())
                .map(|((_, k), n)| format!("{n} {k}"))
                .collect();
            parts.push(format!("{} {n} ({})", a.name(), kinds.join(", ")));
        }
        if parts.is_empty() {
            parts.push("nothing to do".into());
        }
        let verb = if self.count(Action::WouldDelete) > 0 {
            "would free"
        } else {
            "freed"
        };
        let mut line = format!(
            "{}; {verb} {}",
            parts.join(", "),
            crate::size::human_bytes(self.bytes)
        );
        if self.empty_dirs > 0 {
            line.push_str(&format!(", {} empty directories removed", self.empty_dirs));
        }
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        line
    }
}

/// A run that did not finish: why, and the phase it stopped before.
#[derive(Debug)]
pub struct Stopped {
    pub why: String,
    /// The phase that did not run (`None`: it stopped within the last one).
    pub before: Option<&'static str>,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.before {
            Some(phase) => write!(
                f,
                "{}: stopped before the {phase} phase; the tree serves as before, with garbage left: \
                 run the same input again to finish",
                self.why
            ),
            None => write!(
                f,
                "{}: stopped at the end; run the same input again to finish",
                self.why
            ),
        }
    }
}

impl std::error::Error for Stopped {}

// ---- the run ---------------------------------------------------------------

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
        check_trash(store, dir)?;
        store.backend().prepare_trash(dir)?;
    }
    let r = Runner {
        store,
        cfg,
        msgs,
        deleted: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        gate: Mutex::new(()),
        simulated: Mutex::new(HashSet::new()),
    };
    let mut w = Writer {
        out,
        stats: Stats::default(),
    };
    let result = r.phases(input, &mut w);
    if r.deleted.load(Ordering::SeqCst) > 0 {
        // Whatever ended the run: something is gone.
        msgs.note(CACHE_REMINDER);
    }
    result?;
    Ok(w.stats)
}

/// Printed on stderr after any deletion, whatever `-q` says: a registry
/// with a blob descriptor cache keeps serving "layer already exists" for
/// deleted blobs, and clients then push broken images (#1803, #2966, #4569).
pub const CACHE_REMINDER: &str = "if the registry runs with a blob descriptor cache \
     (storage.cache.blobdescriptor: inmemory or redis), restart it now: until then it believes \
     deleted blobs still exist and clients may push broken images";

/// Refuses a `--trash` directory before anything is created or moved: it
/// must be outside the storage root (the registry's rootdirectory, which
/// holds `docker/registry/v2`, or the `v2` directory given), must not
/// contain it, must be new or empty (an earlier run's trash is what restores
/// that run), and must be on the root's filesystem (moving is a rename).
pub fn check_trash(store: &Store, trash: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let v2 = store.display("");
    let v2 = v2.canonicalize().map_err(|e| crate::Error::io(&v2, e))?;
    let root = if v2.ends_with("docker/registry/v2") {
        v2.ancestors().nth(3).unwrap_or(&v2).to_path_buf()
    } else {
        v2.clone()
    };
    // The nearest part of `trash` that exists, resolved, and the rest.
    let mut existing = if trash.is_absolute() {
        trash.to_path_buf()
    } else {
        std::env::current_dir()?.join(trash)
    };
    let mut rest = Vec::new();
    let meta = loop {
        match std::fs::metadata(&existing) {
            Ok(m) => break m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match (existing.file_name(), existing.parent()) {
                    (Some(n), Some(p)) => {
                        rest.push(n.to_os_string());
                        existing = p.to_path_buf();
                    }
                    _ => return Err(crate::Error::io(trash, e).into()),
                }
            }
            Err(e) => return Err(crate::Error::io(&existing, e).into()),
        }
    };
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| crate::Error::io(&existing, e))?;
    resolved.extend(rest.iter().rev());
    let show = trash.display();
    if resolved.starts_with(&root) {
        anyhow::bail!(
            "--trash {show}: inside the storage root {}: the trash would be part of the registry's storage",
            root.display()
        );
    }
    if root.starts_with(&resolved) {
        anyhow::bail!(
            "--trash {show}: contains the storage root {}: choose a directory of its own",
            root.display()
        );
    }
    if rest.is_empty() {
        if !meta.is_dir() {
            anyhow::bail!("--trash {show}: not a directory");
        }
        let mut entries = std::fs::read_dir(&resolved).map_err(|e| crate::Error::io(&resolved, e))?;
        if entries.next().is_some() {
            anyhow::bail!(
                "--trash {show}: not empty (an earlier run's trash? it is what restores that run): \
                 choose a new or empty directory"
            );
        }
    }
    let vdev = std::fs::metadata(&v2)
        .map_err(|e| crate::Error::io(&v2, e))?
        .dev();
    if meta.dev() != vdev {
        anyhow::bail!(
            "--trash {show}: must be on the same filesystem as the storage root {} (moving is a \
             rename; nothing is copied across filesystems); nothing was created",
            v2.display()
        );
    }
    Ok(())
}

struct Writer<'a, W: Write> {
    out: &'a mut Out<W>,
    stats: Stats,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the records of a phase and flushes; `None` is an item that
    /// failed.
    fn write(&mut self, recs: &[Option<RmRecord>]) -> std::io::Result<()> {
        for r in recs {
            match r {
                Some(r) => {
                    self.stats.add(r);
                    self.out.write(r)?;
                }
                None => self.stats.failed += 1,
            }
        }
        self.out.flush()
    }
}

/// What this run removed (or would, in a dry run), so later guards see the
/// tree as it is (or would be) by then.
#[derive(Default)]
struct Removed {
    tags: HashSet<(String, String)>,
    revisions: HashSet<(String, Digest)>,
    uploads: HashSet<(String, String)>,
}

/// Where a blob is still referenced by links, from a scan of every repository.
#[derive(Default, Clone)]
struct BlobLinks {
    /// `_layers` links: repo and link mtime.
    layers: Vec<(String, SystemTime)>,
    /// Repositories with a revision link to it.
    revisions: Vec<String>,
}

/// Outcome of one removal.
enum Gone {
    /// Removed (or would be), freeing this many bytes.
    Removed(Action, u64),
    Absent,
}

/// A tag decided before anything is deleted.
enum TagPlan {
    /// Nothing to do: absent, kept, or failed (`None`).
    Done(Option<RmRecord>),
    /// To remove, once the mark is made.
    Go(RmRecord),
}

struct Runner<'a> {
    store: &'a Store,
    cfg: &'a Config,
    msgs: &'a Messages,
    /// Records deleted or trashed (not dry-run) so far.
    deleted: AtomicU64,
    /// The test hook stopped the run.
    stopped: AtomicBool,
    /// Serializes deletions under the test hook, so it stops after exactly N.
    gate: Mutex<()>,
    /// Dry run: what the run would have removed so far (paths relative to
    /// v2), so later phases neither count its bytes again nor remove it again.
    simulated: Mutex<HashSet<String>>,
}

impl Runner<'_> {
    fn phases<W: Write>(&self, input: &Input, w: &mut Writer<W>) -> anyhow::Result<()> {
        let mut removed = Removed::default();
        let asked = Asked {
            blobs: &input.blobs,
            revisions: &input.revisions,
        };

        // 0. Decide the tags (reading only), then mark what stays live.
        let tags: Vec<_> = input.tags.iter().collect();
        let plans: Vec<TagPlan> = tags
            .par_iter()
            .map(|((repo, tag), want)| self.plan_tag(repo, tag, **want))
            .collect();
        let needs_mark = !input.revisions.is_empty() || !input.blobs.is_empty() || !input.layers.is_empty();
        let mut mark = if needs_mark {
            let going = plans.iter().filter_map(|p| match p {
                TagPlan::Go(r) => Some((r.repo.clone()?, r.tag.clone()?)),
                TagPlan::Done(_) => None,
            });
            let excl = Exclusions {
                tags: going.collect(),
                revisions: input.revisions.iter().cloned().collect(),
            };
            let m = Mark::compute(self.store, &excl, asked, self.msgs)
                .map_err(|e| e.context("cannot prove what is unreachable, so nothing was deleted"))?;
            Some(m)
        } else {
            None
        };

        // 1. Tags.
        let recs: Vec<_> = plans.into_par_iter().map(|p| self.do_tag(p)).collect();
        for rec in recs.iter().flatten() {
            if rec.action.removes() {
                removed.tags.insert((
                    rec.repo.clone().unwrap_or_default(),
                    rec.tag.clone().unwrap_or_default(),
                ));
            }
        }
        self.emit(w, &recs, Some("revision"))?;

        // 2. Revisions: those the mark does not reach.
        let revs: Vec<_> = input.revisions.iter().collect();
        let recs: Vec<_> = match &mark {
            Some(m) => revs
                .par_iter()
                .map(|(repo, d)| self.rm_revision(repo, *d, m))
                .collect(),
            None => Vec::new(),
        };
        for rec in recs.iter().flatten() {
            if rec.action.removes() {
                removed.revisions.insert((
                    rec.repo.clone().unwrap_or_default(),
                    rec.digest.expect("revision digest"),
                ));
            }
        }
        self.emit(w, &recs, Some("layer link"))?;

        // The roots may have changed since the mark (pushes, or revisions
        // this run could not remove): mark again until they hold still.
        let mut unstable = false;
        if let Some(m) = mark
            .as_mut()
            .filter(|_| !input.blobs.is_empty() || !input.layers.is_empty())
        {
            let excl = Exclusions {
                tags: removed.tags.clone(),
                revisions: removed.revisions.clone(),
            };
            let muted = Messages::muted("reg-rm");
            let stop = |e: anyhow::Error| Stopped {
                why: format!("the tree could not be read again before deleting blobs: {e:#}"),
                before: Some("layer link"),
            };
            let mut tries = 0;
            while !m.still_valid(self.store, &excl, &muted).map_err(stop)? {
                if tries == MARK_TRIES {
                    unstable = true;
                    break;
                }
                tries += 1;
                *m = Mark::compute(self.store, &excl, asked, &muted).map_err(stop)?;
            }
        }

        // 3. Decide the blobs, then remove their links and the links named.
        let mut blob_recs: Vec<RmRecord> = Vec::new();
        let mut doomed: BTreeMap<Digest, BlobLinks> = BTreeMap::new();
        if let (false, Some(m)) = (input.blobs.is_empty(), &mark) {
            let (links, scan_ok) = self.scan_blob_links(&input.blobs, &removed);
            for d in &input.blobs {
                let l = links.get(d).cloned().unwrap_or_default();
                match self.judge_blob(*d, &l, m, unstable, scan_ok) {
                    Some(kept) => blob_recs.push(kept),
                    None => {
                        doomed.insert(*d, l);
                    }
                }
            }
        }
        let mut link_jobs: BTreeMap<(String, Digest), bool> = BTreeMap::new();
        for (d, l) in &doomed {
            for (repo, _) in &l.layers {
                link_jobs.insert((repo.clone(), *d), false);
            }
        }
        for (repo, d) in &input.layers {
            // Named explicitly: guarded unless its blob is going too.
            link_jobs
                .entry((repo.clone(), *d))
                .or_insert(!doomed.contains_key(d));
        }
        let jobs: Vec<_> = link_jobs.iter().collect();
        let recs: Vec<_> = jobs
            .par_iter()
            .map(|((repo, d), guarded)| self.rm_layer(repo, *d, **guarded, unstable))
            .collect();
        // A blob whose links could not all go stays.
        for (((repo, d), _), rec) in jobs.iter().zip(&recs) {
            let gone = rec
                .as_ref()
                .is_some_and(|r| r.action.removes() || r.action == Action::Absent);
            if !gone && doomed.remove(d).is_some() {
                blob_recs.push(
                    RmRecord::new("blob")
                        .digest(*d)
                        .kept(format!("its _layers link in {repo} could not be removed")),
                );
            }
        }
        // Links removed: from here a push that reuses a doomed blob fails
        // (the registry checks the repository's link) unless it uploads the
        // blob again, which writes a new link. A push that landed since the
        // last look is caught now: its blobs keep their data and get their
        // links back.
        if let (false, false, Some(m)) = (doomed.is_empty(), self.cfg.mode == Mode::DryRun, &mark) {
            if let Some(hook) = &self.cfg.after_links {
                (hook.0)();
            }
            self.recheck_doomed(&mut doomed, &recs, &mut blob_recs, m, &removed, asked);
        }
        self.emit(w, &recs, Some("blob"))?;

        // 4. Blob data.
        let ds: Vec<Digest> = doomed.keys().copied().collect();
        let recs: Vec<_> = ds.par_iter().map(|d| self.rm_blob(*d)).collect();
        let mut all: Vec<Option<RmRecord>> = blob_recs.into_iter().map(Some).collect();
        all.extend(recs);
        all.sort_by_key(|r| r.as_ref().and_then(|r| r.digest));
        let mut prefixes: BTreeSet<String> = BTreeSet::new();
        for rec in all.iter().flatten() {
            if rec.action == Action::Deleted || rec.action == Action::Trashed {
                if let Some(d) = rec.digest {
                    prefixes.insert(prefix_dir(&d));
                }
            }
        }
        self.emit(w, &all, Some("upload"))?;

        // 5. Uploads.
        let ups: Vec<_> = input.uploads.iter().collect();
        let recs: Vec<_> = ups
            .par_iter()
            .map(|(repo, id)| self.rm_upload(repo, id))
            .collect();
        for rec in recs.iter().flatten() {
            if rec.action.removes() {
                removed.uploads.insert((
                    rec.repo.clone().unwrap_or_default(),
                    rec.id.clone().unwrap_or_default(),
                ));
            }
        }
        self.emit(w, &recs, Some("repository"))?;

        // 6. Repositories (one at a time: nested ones share parents).
        let mut recs = Vec::new();
        for repo in &input.repos {
            recs.push(self.rm_repo(repo, &removed));
            if self.stopped.load(Ordering::SeqCst) {
                break;
            }
        }
        self.emit(w, &recs, Some("empty directory"))?;

        // 7. Empty directories left behind.
        if self.cfg.mode != Mode::DryRun {
            let mut n = 0;
            for p in &prefixes {
                n += u64::from(self.remove_empty(p));
            }
            let repos: BTreeSet<&String> = input.revisions.iter().map(|(r, _)| r).collect();
            for repo in repos {
                n += self.clean_revision_dirs(repo);
            }
            w.stats.empty_dirs = n;
        }
        Ok(())
    }

    /// After the links of the doomed blobs are gone: marks again if the
    /// roots changed, and keeps (writing its removed links back) every
    /// doomed blob that is live now or that a repository links again.
    fn recheck_doomed(
        &self,
        doomed: &mut BTreeMap<Digest, BlobLinks>,
        link_recs: &[Option<RmRecord>],
        blob_recs: &mut Vec<RmRecord>,
        mark: &Mark,
        removed: &Removed,
        asked: Asked,
    ) {
        let muted = Messages::muted("reg-rm");
        let excl = Exclusions {
            tags: removed.tags.clone(),
            revisions: removed.revisions.clone(),
        };
        let fresh;
        let mark = match mark.still_valid(self.store, &excl, &muted) {
            Ok(true) => mark,
            Ok(false) => match Mark::compute(self.store, &excl, asked, &muted) {
                Ok(m) => {
                    fresh = m;
                    &fresh
                }
                Err(e) => {
                    self.msgs.error(format!(
                        "the tree could not be read again after removing links: {e:#}; keeping every blob"
                    ));
                    for d in std::mem::take(doomed).into_keys() {
                        blob_recs.push(self.restore_links(
                            d,
                            link_recs,
                            "could not check again (see errors)",
                        ));
                    }
                    return;
                }
            },
            Err(e) => {
                self.msgs.error(format!(
                    "the tree could not be listed again after removing links: {e:#}; keeping every blob"
                ));
                for d in std::mem::take(doomed).into_keys() {
                    blob_recs.push(self.restore_links(d, link_recs, "could not check again (see errors)"));
                }
                return;
            }
        };
        let set: BTreeSet<Digest> = doomed.keys().copied().collect();
        let (links, scan_ok) = self.scan_blob_links(&set, removed);
        for d in set {
            let why = if let Some(why) = mark.blob(&d) {
                Some(format!("live again during this run ({why})"))
            } else if !scan_ok {
                Some("could not read every repository again (see errors)".to_string())
            } else if let Some(l) = links
                .get(&d)
                .filter(|l| !l.layers.is_empty() || !l.revisions.is_empty())
            {
                let repo = l.layers.first().map(|x| &x.0).or(l.revisions.first());
                Some(format!(
                    "linked again during this run, in {}",
                    repo.map_or("a repository", |r| r.as_str())
                ))
            } else {
                None
            };
            if let Some(why) = why {
                doomed.remove(&d);
                blob_recs.push(self.restore_links(d, link_recs, &why));
            }
        }
    }

    /// Writes back the `_layers` links to `d` this run removed; the blob's
    /// "kept" record.
    fn restore_links(&self, d: Digest, link_recs: &[Option<RmRecord>], why: &str) -> RmRecord {
        let mut back = Vec::new();
        for r in link_recs.iter().flatten() {
            if r.digest == Some(d) && matches!(r.action, Action::Deleted | Action::Trashed) {
                let Some(repo) = &r.repo else { continue };
                match self
                    .store
                    .backend()
                    .write_new(&paths::layer_link(repo, &d), d.to_string().as_bytes())
                {
                    Ok(_) => back.push(repo.as_str()),
                    Err(e) => self.msgs.error(e),
                }
            }
        }
        let mut why = why.to_string();
        if !back.is_empty() {
            why.push_str(&format!(
                "; its _layers links were written back in {}",
                back.join(", ")
            ));
        }
        RmRecord::new("blob").digest(d).kept(why)
    }

    /// Writes a phase's records; stops the run (before `next`) when they
    /// cannot be written or the test hook fired. A closed stdout is a
    /// failure here, not a quiet success: the run did not finish.
    fn emit<W: Write>(
        &self,
        w: &mut Writer<W>,
        recs: &[Option<RmRecord>],
        next: Option<&'static str>,
    ) -> anyhow::Result<()> {
        if let Err(e) = w.write(recs) {
            return Err(Stopped {
                why: format!("cannot write to stdout ({e}), so what was deleted is not all reported"),
                before: next,
            }
            .into());
        }
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Stopped {
                why: format!(
                    "REG_RM_FAIL_AFTER test hook: stopped after {} deletions, as a crash would",
                    self.deleted.load(Ordering::SeqCst)
                ),
                before: next,
            }
            .into());
        }
        Ok(())
    }

    /// Whether `mtime` is younger than `--min-age`; warns about an mtime in
    /// the future (kept by every run until then).
    fn young(&self, rel: &str, mtime: SystemTime) -> bool {
        if mtime.duration_since(self.cfg.now).is_ok_and(|d| d > FUTURE_SLACK) {
            self.msgs
                .warn(crate::orphans::future_warning(&self.store.display(rel), mtime));
            return true;
        }
        Time(mtime).age(self.cfg.now) < self.cfg.min_age
    }

    fn young_reason(&self) -> String {
        format!(
            "younger than --min-age {}",
            humantime::format_duration(self.cfg.min_age)
        )
    }

    /// Dry run: whether `rel` or a directory above it was (would be)
    /// removed earlier in this run.
    fn simulated_gone(&self, rel: &str) -> bool {
        let sim = self.simulated.lock().expect("simulated set");
        if sim.is_empty() {
            return false;
        }
        let mut end = rel.len();
        loop {
            if sim.contains(&rel[..end]) {
                return true;
            }
            match rel[..end].rfind('/') {
                Some(i) => end = i,
                None => return false,
            }
        }
    }

    /// Removes `rel` (file or directory) according to the mode. `Err(())`
    /// means the failure was reported.
    fn remove(&self, rel: &str) -> Result<Gone, ()> {
        let b = self.store.backend();
        if self.cfg.mode == Mode::DryRun && self.simulated_gone(rel) {
            return Ok(Gone::Absent);
        }
        let bytes = match self.tree_bytes(rel) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(Gone::Absent),
            Err(e) => {
                self.msgs.error(e);
                return Err(());
            }
        };
        if self.cfg.mode == Mode::DryRun {
            // Refused the same way a real run would be (a symlink on the way).
            if let Err(e) = b.check_removable(rel) {
                self.msgs.error(e);
                return Err(());
            }
            self.simulated
                .lock()
                .expect("simulated set")
                .insert(rel.to_string());
            return Ok(Gone::Removed(Action::WouldDelete, bytes));
        }
        let is_dir = matches!(b.stat(rel), Ok(Some(m)) if m.is_dir);
        let (res, action) = match &self.cfg.mode {
            Mode::Trash(dir) => (b.move_to_trash(rel, dir), Action::Trashed),
            // A file where the layout has a directory: remove it all the same.
            _ if !is_dir => (b.remove_file(rel), Action::Deleted),
            _ => (b.remove_dir_all(rel), Action::Deleted),
        };
        match res {
            Ok(true) => Ok(Gone::Removed(action, bytes)),
            Ok(false) => Ok(Gone::Absent),
            Err(e) => {
                self.msgs.error(e);
                Err(())
            }
        }
    }

    /// Total size of the files under `rel` (not following symbolic links,
    /// and, in a dry run, leaving out what this run would have removed);
    /// `None` if `rel` does not exist.
    fn tree_bytes(&self, rel: &str) -> crate::Result<Option<u64>> {
        let b = self.store.backend();
        let Some(meta) = b.stat(rel)? else {
            return Ok(None);
        };
        if !meta.is_dir {
            return Ok(Some(meta.size));
        }
        let dry = self.cfg.mode == Mode::DryRun;
        let mut total = 0;
        for e in b.list(rel)?.unwrap_or_default() {
            if e.symlink {
                continue;
            }
            let child = format!("{rel}/{}", e.name);
            if dry && self.simulated.lock().expect("simulated set").contains(&child) {
                continue;
            }
            match e.ty {
                EntryType::Dir => total += self.tree_bytes(&child)?.unwrap_or(0),
                EntryType::File => total += b.stat(&child)?.map_or(0, |m| m.size),
                _ => {}
            }
        }
        Ok(Some(total))
    }

    /// The test hook: true (and the run marked stopped) once N records were
    /// deleted.
    fn hook_fired(&self) -> bool {
        match self.cfg.fail_after {
            Some(limit) if self.deleted.load(Ordering::SeqCst) >= limit => {
                self.stopped.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Removes `rel` for one record; `None` if it failed (or the test hook
    /// stopped the run first).
    fn finish(&self, rec: RmRecord, rel: &str) -> Option<RmRecord> {
        let _gate = self.cfg.fail_after.map(|_| self.gate.lock().expect("gate"));
        if self.hook_fired() {
            return None;
        }
        match self.remove(rel) {
            Ok(Gone::Removed(a, bytes)) => {
                if a != Action::WouldDelete {
                    self.deleted.fetch_add(1, Ordering::SeqCst);
                }
                Some(rec.done(a, bytes))
            }
            Ok(Gone::Absent) => Some(rec.done(Action::Absent, 0)),
            Err(()) => None,
        }
    }

    fn mtime(&self, rel: &str) -> Result<Option<SystemTime>, ()> {
        match self.store.backend().stat(rel) {
            Ok(m) => Ok(m.map(|m| m.mtime)),
            Err(e) => {
                self.msgs.error(e);
                Err(())
            }
        }
    }

    // ---- tags

    /// Decides one tag, reading only: absent, kept (moved since listed,
    /// young, unreadable) or to remove.
    fn plan_tag(&self, repo: &str, tag: &str, want: Option<Digest>) -> TagPlan {
        let mut rec = RmRecord::new("tag").repo(repo);
        rec.tag = Some(tag.to_string());
        rec.digest = want;
        let dir = paths::tag_dir(repo, tag);
        let link = paths::tag_current(repo, tag);
        match self.store.backend().stat(&dir) {
            Ok(None) => return TagPlan::Done(Some(rec)),
            Ok(Some(_)) => {}
            Err(e) => {
                self.msgs.error(e);
                return TagPlan::Done(None);
            }
        }
        match self.store.read_link(&link) {
            Ok(Some(now)) => {
                if want.is_some_and(|w| w != now) {
                    return TagPlan::Done(Some(rec.kept(format!("the tag now points at {now}"))));
                }
                rec.digest = Some(now);
            }
            Ok(None) => {}
            Err(e) if want.is_some() => {
                return TagPlan::Done(Some(rec.kept(format!("cannot check where it points: {e}"))))
            }
            Err(_) => {}
        }
        match self.mtime(&link) {
            Ok(Some(m)) if self.young(&link, m) => TagPlan::Done(Some(rec.kept(self.young_reason()))),
            Ok(_) => TagPlan::Go(rec),
            Err(()) => TagPlan::Done(None),
        }
    }

    /// Removes a tag planned for removal, unless it moved in the meantime.
    fn do_tag(&self, plan: TagPlan) -> Option<RmRecord> {
        let rec = match plan {
            TagPlan::Done(r) => return r,
            TagPlan::Go(rec) => rec,
        };
        let (repo, tag) = (rec.repo.clone()?, rec.tag.clone()?);
        if let (Some(want), Ok(Some(now))) =
            (rec.digest, self.store.read_link(&paths::tag_current(&repo, &tag)))
        {
            if now != want {
                return Some(rec.kept(format!("the tag now points at {now}")));
            }
        }
        self.finish(rec, &paths::tag_dir(&repo, &tag))
    }

    // ---- revisions

    fn rm_revision(&self, repo: &str, d: Digest, mark: &Mark) -> Option<RmRecord> {
        let rec = RmRecord::new("revision").repo(repo).digest(d);
        let link = paths::revision_link(repo, &d);
        let mtime = self.mtime(&link).ok()?;
        let live = mark.revision(repo, &d);
        let broken = mark.broken_in(repo).filter(|_| !self.cfg.accept_broken);
        let Some(mtime) = mtime else {
            // No link: no revision. Leftover index entries (a run stopped
            // half way) are garbage.
            if live.is_none() && broken.is_none() {
                self.remove_index_entries(repo, d);
            }
            return Some(rec);
        };
        if let Some(why) = live {
            return Some(rec.kept(why));
        }
        if let Some(b) = broken {
            return Some(rec.kept(format!(
                "what a live manifest of {repo} references is unknown ({}); pass --accept-broken to delete anyway",
                b.message
            )));
        }
        if self.young(&link, mtime) {
            return Some(rec.kept(self.young_reason()));
        }
        if !self.cfg.accept_broken {
            match self.store.blob_meta(&d) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Some(rec.kept(
                        "its manifest's data is missing (a damaged or unmounted blob store?): \
                         not deleted on that ground without --accept-broken",
                    ))
                }
                Err(e) => {
                    self.msgs.error(e);
                    return None;
                }
            }
        }
        let mut rec = self.finish(rec, &paths::revision_dir(repo, &d))?;
        if rec.action.removes() {
            rec.bytes += self.remove_index_entries(repo, d);
        }
        Some(rec)
    }

    /// Removes `d` from the `index/` of every tag of `repo`; the bytes freed.
    fn remove_index_entries(&self, repo: &str, d: Digest) -> u64 {
        let dir = paths::tags(repo);
        let entries = match self.store.backend().list(&dir) {
            Ok(e) => e.unwrap_or_default(),
            Err(e) => {
                self.msgs.error(e);
                return 0;
            }
        };
        let mut bytes = 0;
        for e in entries {
            if e.ty != EntryType::Dir || e.symlink || check_tag(&e.name).is_err() {
                continue;
            }
            match self.remove(&paths::tag_index_entry(repo, &e.name, &d)) {
                Ok(Gone::Removed(_, n)) => bytes += n,
                Ok(Gone::Absent) | Err(()) => {}
            }
        }
        bytes
    }

    // ---- blobs and their links

    /// Every repository's `_layers` and revision links to the `blobs`.
    /// False if some repository could not be read completely.
    fn scan_blob_links(
        &self,
        blobs: &BTreeSet<Digest>,
        removed: &Removed,
    ) -> (HashMap<Digest, BlobLinks>, bool) {
        let repos = self.store.repositories();
        let mut ok = repos.errors.is_empty();
        // Reported once already by the tag guard.
        type Found = (Vec<(Digest, SystemTime)>, Vec<Digest>, bool);
        let per: Vec<(String, Found)> = repos
            .items
            .par_iter()
            .map(|repo| {
                let mut ok = true;
                let layers = self.linked(&paths::layers(repo), blobs, &mut ok);
                let revs = self
                    .linked(&paths::revisions(repo), blobs, &mut ok)
                    .into_iter()
                    .map(|(d, _)| d)
                    .filter(|d| !removed.revisions.contains(&(repo.clone(), *d)))
                    .collect();
                (repo.clone(), (layers, revs, ok))
            })
            .collect();
        let mut out: HashMap<Digest, BlobLinks> = HashMap::new();
        for (repo, (layers, revs, repo_ok)) in per {
            ok &= repo_ok;
            for (d, m) in layers {
                out.entry(d).or_default().layers.push((repo.clone(), m));
            }
            for d in revs {
                out.entry(d).or_default().revisions.push(repo.clone());
            }
        }
        (out, ok)
    }

    /// The `<alg>/<hex>/link` files under `dir` whose digest is in `want`,
    /// with their mtimes. Listing errors are reported and clear `ok`.
    fn linked(&self, dir: &str, want: &BTreeSet<Digest>, ok: &mut bool) -> Vec<(Digest, SystemTime)> {
        let b = self.store.backend();
        let mut out = Vec::new();
        for alg in Algorithm::ALL {
            let adir = format!("{dir}/{}", alg.name());
            let entries = match b.list(&adir) {
                Ok(e) => e.unwrap_or_default(),
                Err(e) => {
                    self.msgs.error(e);
                    *ok = false;
                    continue;
                }
            };
            for e in entries {
                let Ok(d) = Digest::from_parts(alg, &e.name) else {
                    continue;
                };
                if !want.contains(&d) {
                    continue;
                }
                match b.stat(&format!("{adir}/{}/link", e.name)) {
                    Ok(Some(m)) => out.push((d, m.mtime)),
                    Ok(None) => {}
                    Err(e) => {
                        self.msgs.error(e);
                        *ok = false;
                    }
                }
            }
        }
        out
    }

    /// `Some(kept record)` if blob `d` must stay; `None` if it may go.
    fn judge_blob(
        &self,
        d: Digest,
        links: &BlobLinks,
        mark: &Mark,
        unstable: bool,
        scan_ok: bool,
    ) -> Option<RmRecord> {
        let rec = RmRecord::new("blob").digest(d);
        if let Some(why) = mark.blob(&d) {
            return Some(rec.kept(why));
        }
        if unstable {
            return Some(
                rec.kept("tags or revisions kept changing while reg-rm looked (pushes?): run again"),
            );
        }
        if let (false, Some(first)) = (self.cfg.accept_broken, mark.broken.first()) {
            return Some(rec.kept(format!(
                "{} live manifests are missing or unusable, so what they reference is unknown \
                 (first: {}); pass --accept-broken to delete anyway",
                mark.broken.len(),
                first.message
            )));
        }
        if !scan_ok {
            return Some(rec.kept("could not read every repository (see errors)"));
        }
        if let Some(repo) = links.revisions.first() {
            return Some(rec.kept(format!("still a manifest revision in {repo}")));
        }
        let data = paths::blob_data(&d);
        match self.store.blob_meta(&d) {
            Ok(Some(m)) if self.young(&data, m.mtime) => return Some(rec.kept(self.young_reason())),
            Ok(_) => {}
            Err(e) => {
                self.msgs.error(e);
                return Some(rec.kept("cannot read its data file (see errors)"));
            }
        }
        if let Some((repo, _)) = links
            .layers
            .iter()
            .find(|(repo, m)| self.young(&paths::layer_link(repo, &d), *m))
        {
            return Some(rec.kept(format!("its _layers link in {repo} is {}", self.young_reason())));
        }
        None
    }

    fn rm_layer(&self, repo: &str, d: Digest, guarded: bool, unstable: bool) -> Option<RmRecord> {
        let rec = RmRecord::new("layer-link").repo(repo).digest(d);
        let link = paths::layer_link(repo, &d);
        let dir = paths::layer_dir(repo, &d);
        let mtime = match self.mtime(&link).ok()? {
            Some(m) => m,
            // A link directory without its link is garbage; remove it quietly.
            None => return self.remove(&dir).ok().map(|_| rec.done(Action::Absent, 0)),
        };
        if guarded {
            match self.store.blob_meta(&d) {
                Ok(Some(_)) => {
                    return Some(rec.kept(
                        "its blob is still stored (and not deleted in this run): the link may be in use",
                    ))
                }
                Ok(None) if unstable => {
                    return Some(
                        rec.kept("tags or revisions kept changing while reg-rm looked (pushes?): run again"),
                    )
                }
                Ok(None) if !self.cfg.accept_broken => {
                    return Some(rec.kept(
                        "its blob is missing (a damaged or unmounted blob store?): not deleted on that \
                         ground without --accept-broken",
                    ))
                }
                Ok(None) => {}
                Err(e) => {
                    self.msgs.error(e);
                    return None;
                }
            }
        }
        if self.young(&link, mtime) {
            return Some(rec.kept(self.young_reason()));
        }
        self.finish(rec, &dir)
    }

    fn rm_blob(&self, d: Digest) -> Option<RmRecord> {
        let rec = RmRecord::new("blob").digest(d);
        // Checked again now, at deletion time.
        match self.store.blob_meta(&d) {
            // Warned about (if in the future) when the blob was judged.
            Ok(Some(m)) if Time(m.mtime).age(self.cfg.now) < self.cfg.min_age => {
                return Some(rec.kept(self.young_reason()))
            }
            Ok(_) => {}
            Err(e) => {
                self.msgs.error(e);
                return None;
            }
        }
        self.finish(rec, &paths::blob_dir(&d))
    }

    // ---- uploads

    fn rm_upload(&self, repo: &str, id: &str) -> Option<RmRecord> {
        let mut rec = RmRecord::new("upload").repo(repo);
        rec.id = Some(id.to_string());
        let dir = paths::upload_dir(repo, id);
        let up = match self.store.upload(repo, id) {
            Ok(Some(u)) => Some(u),
            Ok(None) => return Some(rec),
            // An unreadable startedat: fall back to the mtimes.
            Err(_) => None,
        };
        let mut newest = up.map(|u| u.started_at.0);
        for rel in [dir.clone(), format!("{dir}/data")] {
            if let Some(m) = self.mtime(&rel).ok()? {
                newest = Some(newest.map_or(m, |n| n.max(m)));
            }
        }
        if newest.is_some_and(|m| self.young(&dir, m)) {
            return Some(rec.kept(self.young_reason()));
        }
        self.finish(rec, &dir)
    }

    // ---- repositories

    fn rm_repo(&self, repo: &str, removed: &Removed) -> Option<RmRecord> {
        let rec = RmRecord::new("repo").repo(repo);
        let b = self.store.backend();
        let list = |rel: &str| match b.list(rel) {
            Ok(e) => Ok(e.unwrap_or_default()),
            Err(e) => {
                self.msgs.error(e);
                Err(())
            }
        };
        let own = ["_manifests", "_layers", "_uploads"];
        let entries = list(&paths::repo(repo)).ok()?;
        if !entries.iter().any(|e| own.contains(&e.name.as_str())) {
            return Some(rec);
        }
        for t in list(&paths::tags(repo)).ok()? {
            if !removed.tags.contains(&(repo.to_string(), t.name.clone())) {
                return Some(rec.kept(format!("it still has tag {:?}", t.name)));
            }
        }
        let mut ok = true;
        let revs = self.all_links(&paths::revisions(repo), &mut ok);
        if !ok {
            return Some(rec.kept("cannot read its revisions (see errors)"));
        }
        if let Some((d, _)) = revs
            .iter()
            .find(|(d, _)| !removed.revisions.contains(&(repo.to_string(), *d)))
        {
            return Some(rec.kept(format!("it still has revision {d}")));
        }
        for u in list(&paths::uploads(repo)).ok()? {
            if !removed.uploads.contains(&(repo.to_string(), u.name.clone())) {
                return Some(rec.kept(format!("it still has upload {:?}", u.name)));
            }
        }
        let layers = self.all_links(&paths::layers(repo), &mut ok);
        if !ok {
            return Some(rec.kept("cannot read its _layers links (see errors)"));
        }
        if layers
            .iter()
            .any(|(d, m)| self.young(&paths::layer_link(repo, d), *m))
        {
            return Some(rec.kept(format!("it has a _layers link {}", self.young_reason())));
        }
        // Its own directories only: a nested repository may live beside them.
        let _gate = self.cfg.fail_after.map(|_| self.gate.lock().expect("gate"));
        if self.hook_fired() {
            return None;
        }
        let mut rec = rec.done(Action::Absent, 0);
        for d in own {
            match self.remove(&format!("{}/{d}", paths::repo(repo))) {
                Ok(Gone::Removed(a, bytes)) => {
                    rec.action = a;
                    rec.bytes += bytes;
                }
                Ok(Gone::Absent) => {}
                Err(()) => return None,
            }
        }
        if matches!(rec.action, Action::Deleted | Action::Trashed) {
            self.deleted.fetch_add(1, Ordering::SeqCst);
        }
        if self.cfg.mode != Mode::DryRun {
            // Then the directory itself and empty parents, never `repositories`.
            let mut name = repo;
            loop {
                if !self.remove_empty(&paths::repo(name)) {
                    break;
                }
                match name.rsplit_once('/') {
                    Some((parent, _)) => name = parent,
                    None => break,
                }
            }
        }
        Some(rec)
    }

    /// Every `<alg>/<hex>/link` under `dir` (any digest), with mtimes.
    fn all_links(&self, dir: &str, ok: &mut bool) -> Vec<(Digest, SystemTime)> {
        let b = self.store.backend();
        let mut out = Vec::new();
        let algs = match b.list(dir) {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => {
                self.msgs.error(e);
                *ok = false;
                return out;
            }
        };
        for a in algs {
            let adir = format!("{dir}/{}", a.name);
            let Some(alg) = Algorithm::from_name(&a.name) else {
                // Not something the registry wrote: keep the repository.
                self.msgs.warn(format!(
                    "{}: unexpected directory",
                    self.store.display(&adir).display()
                ));
                *ok = false;
                continue;
            };
            let hexes = match b.list(&adir) {
                Ok(h) => h.unwrap_or_default(),
                Err(e) => {
                    self.msgs.error(e);
                    *ok = false;
                    continue;
                }
            };
            for h in hexes {
                let Ok(d) = Digest::from_parts(alg, &h.name) else {
                    *ok = false;
                    continue;
                };
                match b.stat(&format!("{adir}/{}/link", h.name)) {
                    Ok(Some(m)) => out.push((d, m.mtime)),
                    Ok(None) => {}
                    Err(e) => {
                        self.msgs.error(e);
                        *ok = false;
                    }
                }
            }
        }
        out
    }

    // ---- empty directories

    /// Removes `rel` if it is an empty directory older than the grace
    /// period; true if removed.
    fn remove_empty(&self, rel: &str) -> bool {
        let b = self.store.backend();
        match b.stat(rel) {
            Ok(Some(m)) if m.is_dir && Time(m.mtime).age(self.cfg.now) >= self.cfg.min_age => {}
            _ => return false,
        }
        match b.remove_empty_dir(rel) {
            Ok(removed) => removed,
            Err(e) => {
                self.msgs.warn(e);
                false
            }
        }
    }

    /// Removes the empty revision directories of `repo` (a revision whose
    /// link was deleted through the API leaves one).
    fn clean_revision_dirs(&self, repo: &str) -> u64 {
        let b = self.store.backend();
        let mut n = 0;
        for alg in Algorithm::ALL {
            let adir = format!("{}/{}", paths::revisions(repo), alg.name());
            let Ok(Some(hexes)) = b.list(&adir) else {
                continue;
            };
            for h in hexes {
                if h.ty == EntryType::Dir && !h.symlink && Digest::from_parts(alg, &h.name).is_ok() {
                    n += u64::from(self.remove_empty(&format!("{adir}/{}", h.name)));
                }
            }
        }
        n
    }
}

/// `blobs/<alg>/<xx>`
fn prefix_dir(d: &Digest) -> String {
    let hex = d.hex();
    format!("{}/{}/{}", paths::BLOBS, d.algorithm().name(), &hex[..2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use crate::testutil::*;
    use std::fs;
    use std::path::Path;

    struct Ran {
        recs: Vec<Value>,
        stats: Stats,
        errors: u64,
        result: anyhow::Result<()>,
    }

    impl Ran {
        /// The action taken on the record of `kind` whose fields include `f`.
        fn action(&self, kind: &str, f: &[(&str, &str)]) -> String {
            let hits: Vec<&Value> = self
                .recs
                .iter()
                .filter(|r| r["kind"] == kind && f.iter().all(|(k, v)| r[*k] == *v))
                .collect();
            assert_eq!(hits.len(), 1, "{kind} {f:?} in {:#?}", self.recs);
            hits[0]["action"].as_str().unwrap().to_string()
        }
    }

    fn rm(v2: &Path, input: &str, cfg: &Config) -> Ran {
        let input = parse_input(input.as_bytes()).unwrap();
        let store = Store::fs(v2);
        let msgs = Messages::new("reg-rm", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        let res = run(&store, &input, cfg, &mut out, &msgs);
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        let recs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for r in &recs {
            // The action comes first, then the kind.
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(keys[..2], ["action", "kind"], "{r}");
        }
        let (stats, result) = match res {
            Ok(s) => (s, Ok(())),
            Err(e) => (Stats::default(), Err(e)),
        };
        Ran {
            recs,
            stats,
            errors: msgs.errors(),
            result,
        }
    }

    fn cfg(min_age: Duration) -> Config {
        Config {
            min_age,
            untag: true,
            ..Config::default()
        }
    }

    /// Every path under `p` with its content (directories as "<dir>").
    fn snapshot(p: &Path) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for e in walkdir::WalkDir::new(p).follow_links(false) {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(p).unwrap().display().to_string();
            let v = if e.file_type().is_dir() {
                "<dir>".to_string()
            } else {
                String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned()
            };
            m.insert(rel, v);
        }
        m
    }

    fn copy_into(from: &Path, to: &Path) {
        for e in walkdir::WalkDir::new(from) {
            let e = e.unwrap();
            let dest = to.join(e.path().strip_prefix(from).unwrap());
            if e.file_type().is_dir() {
                fs::create_dir_all(&dest).unwrap();
            } else {
                fs::copy(e.path(), &dest).unwrap();
            }
        }
    }

    // ---- input

    #[test]
    fn input_kinds_and_trailers() {
        let d = Digest::sha256_of(b"x");
        let text = format!(
            "{d}\n\n\
             {{\"kind\":\"blob\",\"digest\":\"{d}\",\"size\":1,\"mtime\":\"2024-01-01T00:00:00Z\"}}\n\
             {{\"kind\":\"revision\",\"repo\":\"a/b\",\"digest\":\"{d}\"}}\n\
             {{\"kind\":\"layer-link\",\"repo\":\"a/b\",\"digest\":\"{d}\"}}\n\
             {{\"kind\":\"upload\",\"repo\":\"a\",\"id\":\"0b9e-11\",\"size\":0,\"started_at\":\"2024-01-01T00:00:00Z\"}}\n\
             {{\"kind\":\"repo\",\"repo\":\"a\"}}\n\
             {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v1\",\"digest\":\"{d}\",\"mtime\":\"2024-01-01T00:00:00Z\"}}\n\
             {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v2\"}}\n\
             {{\"kind\":\"end\",\"tool\":\"reg-ls\",\"blobs\":1}}\n"
        );
        let i = parse_input(text.as_bytes()).unwrap();
        assert_eq!(i.blobs.len(), 1);
        assert_eq!(i.revisions.len(), 1);
        assert_eq!(i.layers.len(), 1);
        assert_eq!(i.uploads.len(), 1);
        assert_eq!(i.repos.len(), 1);
        assert_eq!(i.tags[&("a".into(), "v1".into())], Some(d));
        assert_eq!(i.tags[&("a".into(), "v2".into())], None);
        assert_eq!(i.ignored, 1);
        assert_eq!(i.len(), 7);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let d = Digest::sha256_of(b"x");
        let good = format!("{d}\n{{\"kind\":\"repo\",\"repo\":\"ok\"}}\n");
        let short = &d.to_string()[..70];
        let table: Vec<(String, &str)> = vec![
            ("hello".into(), "neither a JSON record nor a digest"),
            (short.into(), "sha256 wants 64 hex"),
            (format!("md5:{}", d.hex()), "unknown algorithm"),
            (d.to_string().to_uppercase(), "invalid digest"),
            ("{\"kind\":\"blob\"".into(), "not a JSON object"),
            ("[1]".into(), "neither"),
            ("{\"repo\":\"a\"}".into(), "without a \"kind\""),
            (
                "{\"kind\":\"image\",\"repo\":\"a\"}".into(),
                "unknown record kind",
            ),
            (
                "{\"kind\":\"repo\",\"repo\":\"../../etc\"}".into(),
                "invalid repository name",
            ),
            (
                "{\"kind\":\"repo\",\"repo\":\"Upper\"}".into(),
                "invalid repository name",
            ),
            ("{\"kind\":\"repo\",\"repo\":1}".into(), "not a string"),
            (
                format!("{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"../x\",\"digest\":\"{d}\"}}"),
                "invalid tag",
            ),
            (
                "{\"kind\":\"upload\",\"repo\":\"a\",\"id\":\"../../x\"}".into(),
                "invalid upload id",
            ),
            (
                format!("{{\"kind\":\"revision\",\"repo\":\"a\",\"digest\":\"{short}\"}}"),
                "wants 64 hex",
            ),
            (
                "{\"kind\":\"layer-link\",\"repo\":\"a\"}".into(),
                "without a \"digest\"",
            ),
        ];
        for (line, want) in table {
            let text = format!("{good}{line}\n{d}\n");
            let e = parse_input(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, 3, "{line}: {e}");
            assert!(e.to_string().contains(want), "{line}: {e}");
            assert!(e.to_string().starts_with("stdin line 3: "), "{e}");
        }
        let e = parse_input(&b"\xff\xfe\n"[..]).unwrap_err();
        assert_eq!((e.line, e.why.as_str()), (1, "not valid UTF-8"));
        let conflict = format!(
            "{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v\",\"digest\":\"{d}\"}}\n{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v\"}}\n"
        );
        assert_eq!(parse_input(conflict.as_bytes()).unwrap_err().line, 2);
    }

    #[test]
    fn reg_refs_output_is_refused() {
        let d = Digest::sha256_of(b"x");
        for line in [
            format!(
                "{{\"kind\":\"layer\",\"repo\":\"a\",\"manifest\":\"{d}\",\"digest\":\"{d}\",\"size\":1}}"
            ),
            format!("{{\"kind\":\"manifest\",\"repo\":\"a\",\"manifest\":\"{d}\",\"digest\":\"{d}\"}}"),
            "{\"kind\":\"end\",\"tool\":\"reg-refs\",\"repos\":1}".to_string(),
            format!("{{\"kind\":\"layer\",\"repo\":\"a\",\"digest\":\"{d}\"}}"),
        ] {
            let text =
                format!("{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v1\",\"digest\":\"{d}\"}}\n{line}\n");
            let e = parse_input(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, 2);
            assert!(e.why.contains("reg-refs output"), "{e}");
        }
    }

    // ---- guards

    #[test]
    fn tagged_manifest_is_kept_unless_its_tag_goes_too() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, _, _) = image(v2, "app", Some("v1"), "one");
        // The same manifest pushed to another repository, untagged there.
        push_manifest(v2, "other", None, m, &[]);
        age(v2, DAY);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n{m}\n\
             {{\"kind\":\"revision\",\"repo\":\"other\",\"digest\":\"{m}\"}}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        assert_eq!(r.action("revision", &[("repo", "app")]), "kept");
        assert!(
            r.recs.iter().any(|x| x["reason"] == "tag app:v1 points at it"),
            "{:?}",
            r.recs
        );
        assert_eq!(r.action("blob", &[]), "kept");
        // A revision in a repository where no tag points at it goes.
        assert_eq!(r.action("revision", &[("repo", "other")]), "deleted");
        assert!(v2.join(paths::revision_link("app", &m)).is_file());
        assert!(v2.join(paths::blob_data(&m)).is_file());

        // Tags and blobs together look like an unfiltered reg-ls listing.
        let tag = format!("{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\",\"digest\":\"{m}\"}}\n");
        let r = rm(v2, &format!("{tag}{input}"), &cfg(Duration::ZERO));
        let e = r.result.unwrap_err().to_string();
        assert!(e.contains("unfiltered reg-ls listing"), "{e}");
        assert!(r.recs.is_empty());
        // With the tag and the revisions in one run, the revisions go; the
        // blob goes in the next.
        let revs = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n");
        let r = rm(v2, &format!("{tag}{revs}"), &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        assert_eq!(r.action("tag", &[]), "deleted");
        assert_eq!(r.action("revision", &[("repo", "app")]), "deleted");
        let r = rm(v2, &format!("{m}\n"), &cfg(Duration::ZERO));
        assert_eq!(r.action("blob", &[]), "deleted");
        assert!(!v2.join(paths::tag_dir("app", "v1")).exists());
        assert!(!v2.join(paths::blob_dir(&m)).exists());
    }

    #[test]
    fn blobs_a_tagged_manifest_references_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, c, l) = image(v2, "app", Some("v1"), "one");
        age(v2, DAY);
        let r = rm(v2, &format!("{c}\n{l}\n"), &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        for d in [c, l] {
            assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept");
            assert!(v2.join(paths::blob_data(&d)).is_file());
            assert!(v2.join(paths::layer_link("app", &d)).is_file());
        }
        let why = format!("referenced by manifest {m} in app, which is live");
        assert!(r.recs.iter().all(|x| x["reason"] == why.as_str()), "{:?}", r.recs);
    }

    #[test]
    fn moved_tag_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, _, _) = image(v2, "app", Some("v1"), "one");
        age(v2, DAY);
        let other = Digest::sha256_of(b"another");
        let input = format!("{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\",\"digest\":\"{other}\"}}\n");
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.action("tag", &[]), "kept");
        assert_eq!(r.recs[0]["reason"], format!("the tag now points at {m}"));
        assert_eq!(r.recs[0]["digest"], other.to_string());
        assert!(v2.join(paths::tag_current("app", "v1")).is_file());
    }

    #[test]
    fn children_of_a_tagged_index_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, _, _) = image(v2, "lib", None, "amd64");
        let (b, _, _) = image(v2, "lib", None, "arm64");
        let idx = index(v2, "lib", "latest", &[a, b]);
        age(v2, DAY);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{a}\"}}\n{{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{b}\"}}\n{a}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        for d in [a, b] {
            assert_eq!(r.action("revision", &[("digest", &d.to_string())]), "kept");
        }
        assert_eq!(r.action("blob", &[]), "kept");
        let why = r.recs[0]["reason"].as_str().unwrap();
        assert!(why.contains(&format!("a child of index {idx} in lib")), "{why}");
        assert!(v2.join(paths::revision_link("lib", &a)).is_file());
        assert!(v2.join(paths::blob_data(&a)).is_file());
    }

    #[test]
    fn young_blobs_and_links_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let old = blob(v2, b"old");
        let young = blob(v2, b"young");
        let old_young_link = blob(v2, b"old, but just linked");
        age(v2, DAY);
        link(v2, &paths::layer_link("app", &old_young_link), &old_young_link);
        let (m, _, _) = image(v2, "new", None, "pushed just now");
        age(&v2.join(paths::blob_dir(&m)), DAY);
        fs::write(v2.join(paths::blob_data(&young)), b"young").unwrap();
        let input = format!(
            "{old}\n{young}\n{old_young_link}\n{{\"kind\":\"revision\",\"repo\":\"new\",\"digest\":\"{m}\"}}\n{m}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::from_secs(3600)));
        assert_eq!(r.errors, 0, "{:?}", r.recs);
        assert_eq!(r.action("blob", &[("digest", &old.to_string())]), "deleted");
        assert_eq!(r.action("blob", &[("digest", &young.to_string())]), "kept");
        assert_eq!(
            r.action("blob", &[("digest", &old_young_link.to_string())]),
            "kept"
        );
        assert_eq!(r.action("revision", &[]), "kept");
        // The revision stays, so its (old) manifest blob stays too.
        assert_eq!(r.action("blob", &[("digest", &m.to_string())]), "kept");
        let reasons: Vec<&str> = r.recs.iter().filter_map(|x| x["reason"].as_str()).collect();
        assert!(reasons.contains(&"younger than --min-age 1h"), "{reasons:?}");
        assert!(
            reasons.contains(&"a manifest revision of new that stays (revisions are roots)"),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"its _layers link in app is younger than --min-age 1h"),
            "{reasons:?}"
        );
        assert!(v2.join(paths::blob_data(&young)).is_file());
        assert!(v2.join(paths::layer_link("app", &old_young_link)).is_file());
        assert_eq!(r.stats.count(Action::Kept), 4);
        assert_eq!(r.stats.count(Action::Deleted), 1);
    }

    #[test]
    fn layer_link_of_a_stored_blob_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (_, c, _) = image(v2, "app", Some("v1"), "one");
        let gone = Digest::sha256_of(b"gone");
        link(v2, &paths::layer_link("app", &gone), &gone);
        age(v2, DAY);
        let input = format!(
            "{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{gone}\"}}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.action("layer-link", &[("digest", &c.to_string())]), "kept");
        // A missing blob may be an unmounted volume: kept without --accept-broken.
        assert_eq!(r.action("layer-link", &[("digest", &gone.to_string())]), "kept");
        assert!(v2.join(paths::layer_dir("app", &gone)).exists());
        let r = rm(
            v2,
            &input,
            &Config {
                accept_broken: true,
                ..cfg(Duration::ZERO)
            },
        );
        assert_eq!(r.action("layer-link", &[("digest", &c.to_string())]), "kept");
        assert_eq!(
            r.action("layer-link", &[("digest", &gone.to_string())]),
            "deleted"
        );
        assert!(v2.join(paths::layer_link("app", &c)).is_file());
        assert!(!v2.join(paths::layer_dir("app", &gone)).exists());
    }

    // ---- what goes

    #[test]
    fn a_blob_goes_with_every_repositorys_link_then_a_second_run_finds_it_absent() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, c, l) = image(v2, "app", Some("v1"), "keep");
        let orphan = blob(v2, b"orphan layer");
        for repo in ["app", "x/y", "x/y/z"] {
            link(v2, &paths::layer_link(repo, &orphan), &orphan);
        }
        // An untagged revision with its old tag index entry.
        let (old, oc, ol) = image(v2, "app", None, "old");
        link(v2, &(paths::tag_index_entry("app", "v1", &old) + "/link"), &old);
        age(v2, DAY);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n{old}\n{oc}\n{ol}\n{orphan}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0, "{:?}", r.recs);
        r.result.as_ref().unwrap();
        assert_eq!(r.action("revision", &[]), "deleted");
        for d in [old, oc, ol, orphan] {
            assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "deleted");
            assert!(!v2.join(paths::blob_dir(&d)).exists());
        }
        for repo in ["app", "x/y", "x/y/z"] {
            assert_eq!(
                r.action("layer-link", &[("repo", repo), ("digest", &orphan.to_string())]),
                "deleted"
            );
        }
        assert!(!v2.join(paths::tag_index_entry("app", "v1", &old)).exists());
        assert!(!v2.join(paths::revision_dir("app", &old)).exists());
        let orphan_size = b"orphan layer".len() as u64;
        let orphan_rec = r
            .recs
            .iter()
            .find(|x| x["kind"] == "blob" && x["digest"] == orphan.to_string())
            .unwrap();
        assert_eq!(orphan_rec["bytes"], orphan_size);
        // The live image is intact.
        for d in [m, c, l] {
            assert!(v2.join(paths::blob_data(&d)).is_file());
        }
        assert!(v2.join(paths::tag_current("app", "v1")).is_file());
        assert!(v2
            .join(paths::tag_index_entry("app", "v1", &m) + "/link")
            .is_file());
        assert!(v2.join(paths::layer_link("app", &c)).is_file());
        assert!(v2.join(paths::revision_link("app", &m)).is_file());
        // Second run: nothing left to do.
        let again = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(again.errors, 0);
        assert!(
            again.recs.iter().all(|x| x["action"] == "absent"),
            "{:?}",
            again.recs
        );
        assert_eq!(again.recs.len(), 5);
        assert_eq!(again.stats.bytes, 0);
        assert!(v2.join("blobs").is_dir() && v2.join("repositories").is_dir());
    }

    #[test]
    fn repositories_go_only_when_empty_and_never_take_nested_ones() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, _, _) = image(v2, "a/b", Some("1"), "ab");
        image(v2, "a/b/c", Some("1"), "abc");
        let stale = Digest::sha256_of(b"stale");
        link(v2, &paths::layer_link("gone/img", &stale), &stale);
        fs::create_dir_all(v2.join(paths::tags("gone/img"))).unwrap();
        fs::create_dir_all(v2.join(paths::revision_dir("gone/img", &stale))).unwrap();
        put(
            v2,
            "repositories/up/_uploads/1234-ab/startedat",
            b"2020-01-01T00:00:00Z",
        );
        age(v2, DAY);
        let input = "{\"kind\":\"repo\",\"repo\":\"a/b\"}\n{\"kind\":\"repo\",\"repo\":\"gone/img\"}\n\
                     {\"kind\":\"repo\",\"repo\":\"up\"}\n{\"kind\":\"repo\",\"repo\":\"nope\"}\n";
        let r = rm(v2, input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        assert_eq!(r.action("repo", &[("repo", "a/b")]), "kept");
        assert_eq!(r.action("repo", &[("repo", "gone/img")]), "deleted");
        assert_eq!(r.action("repo", &[("repo", "up")]), "kept");
        assert_eq!(r.action("repo", &[("repo", "nope")]), "absent");
        assert!(!v2.join("repositories/gone").exists());
        assert!(v2.join("repositories/up/_uploads/1234-ab").is_dir());

        // Untag and drop a/b: a/b/c stays whole.
        let input = format!(
            "{{\"kind\":\"tag\",\"repo\":\"a/b\",\"tag\":\"1\"}}\n{{\"kind\":\"revision\",\"repo\":\"a/b\",\"digest\":\"{m}\"}}\n\
             {{\"kind\":\"repo\",\"repo\":\"a/b\"}}\n{{\"kind\":\"upload\",\"repo\":\"up\",\"id\":\"1234-ab\"}}\n{{\"kind\":\"repo\",\"repo\":\"up\"}}\n"
        );
        let before_c = snapshot(&v2.join("repositories/a/b/c"));
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0, "{:?}", r.recs);
        assert_eq!(r.action("repo", &[("repo", "a/b")]), "deleted");
        assert_eq!(r.action("upload", &[]), "deleted");
        assert_eq!(r.action("repo", &[("repo", "up")]), "deleted");
        assert_eq!(snapshot(&v2.join("repositories/a/b/c")), before_c);
        assert!(!v2.join("repositories/a/b/_manifests").exists());
        assert!(!v2.join("repositories/up").exists());
        assert!(v2.join("repositories").is_dir());
        let repos = Store::fs(v2).repositories();
        assert_eq!(repos.items, vec!["a/b/c".to_string()]);
    }

    // ---- modes

    #[test]
    fn dry_run_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, c, l) = image(v2, "app", None, "one");
        put(
            v2,
            "repositories/app/_uploads/1234-ab/startedat",
            b"2020-01-01T00:00:00Z",
        );
        age(v2, DAY);
        let before = snapshot(v2);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n\
             {m}\n{c}\n{l}\n{{\"kind\":\"upload\",\"repo\":\"app\",\"id\":\"1234-ab\"}}\n{{\"kind\":\"repo\",\"repo\":\"app\"}}\n"
        );
        let r = rm(
            v2,
            &input,
            &Config {
                mode: Mode::DryRun,
                ..cfg(Duration::ZERO)
            },
        );
        assert_eq!(r.errors, 0, "{:?}", r.recs);
        assert!(
            r.recs.iter().all(|x| x["action"] == "would-delete"),
            "{:#?}",
            r.recs
        );
        // revision, 3 blobs, 2 links, upload, repo
        assert_eq!(r.recs.len(), 8);
        assert_eq!(snapshot(v2), before);
        assert!(r.stats.bytes > 0);
        assert_eq!(r.stats.removed(), 0);
    }

    #[test]
    fn trash_then_copy_back_restores_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let trash = dir.path().join("trash");
        let (m, c, l) = image(&v2, "app", None, "one");
        image(&v2, "app", Some("v2"), "two");
        age(&v2, DAY);
        let before = snapshot(&v2);
        let input = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n{m}\n{c}\n{l}\n");
        let r = rm(
            &v2,
            &input,
            &Config {
                mode: Mode::Trash(trash.clone()),
                ..cfg(Duration::ZERO)
            },
        );
        assert_eq!(r.errors, 0, "{:?}", r.recs);
        assert!(r.recs.iter().all(|x| x["action"] == "trashed"), "{:#?}", r.recs);
        assert!(trash.join(paths::blob_data(&l)).is_file());
        assert!(trash.join(paths::revision_link("app", &m)).is_file());
        assert!(!v2.join(paths::blob_dir(&l)).exists());
        copy_into(&trash, &v2);
        // Everything is back (empty prefix directories removed are recreated).
        let after = snapshot(&v2);
        assert_eq!(after, before);
    }

    #[test]
    fn trash_inside_the_root_is_refused_before_anything_moves() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (_, _, l) = image(v2, "app", None, "one");
        age(v2, DAY);
        let before = snapshot(v2);
        let r = rm(
            v2,
            &format!("{l}\n"),
            &Config {
                mode: Mode::Trash(v2.join("trash")),
                ..cfg(Duration::ZERO)
            },
        );
        let e = r.result.unwrap_err();
        assert!(e.to_string().contains("inside the storage root"), "{e}");
        assert!(r.recs.is_empty());
        assert_eq!(snapshot(v2), before);
    }

    #[test]
    fn fail_after_stops_and_a_second_run_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (keep, _, _) = image(v2, "app", Some("v1"), "keep");
        let mut input = String::new();
        let mut all = Vec::new();
        for i in 0..6 {
            let b = blob(v2, format!("orphan {i}").as_bytes());
            link(v2, &paths::layer_link("app", &b), &b);
            input.push_str(&format!("{b}\n"));
            all.push(b);
        }
        age(v2, DAY);
        let r = rm(
            v2,
            &input,
            &Config {
                fail_after: Some(4),
                ..cfg(Duration::ZERO)
            },
        );
        let e = r.result.unwrap_err();
        assert!(e.to_string().contains("stopped after 4 deletions"), "{e}");
        let gone = all
            .iter()
            .filter(|b| !v2.join(paths::blob_dir(b)).exists())
            .count();
        let links_gone = all
            .iter()
            .filter(|b| !v2.join(paths::layer_dir("app", b)).exists())
            .count();
        // Links go first: 4 links, no data.
        assert_eq!((links_gone, gone), (4, 0));
        assert!(v2.join(paths::blob_data(&keep)).is_file());
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        r.result.unwrap();
        assert_eq!(r.errors, 0);
        assert_eq!(r.stats.count(Action::Deleted), 6 + 2);
        assert!(all.iter().all(|b| !v2.join(paths::blob_dir(b)).exists()));
        assert!(all.iter().all(|b| !v2.join(paths::layer_dir("app", b)).exists()));
    }

    // ---- input that cannot be what it claims

    fn orphans_end(root: &str, blobs: u64, revisions: u64) -> String {
        format!(
            "{{\"kind\":\"end\",\"tool\":\"reg-orphans\",\"blobs\":{blobs},\"blob_bytes\":0,\"revisions\":{revisions},\
             \"layers\":0,\"uploads\":0,\"upload_bytes\":0,\"repos\":0,\"too_young\":0,\"stored_blobs\":9,\"root\":\"{root}\"}}\n"
        )
    }

    #[test]
    fn input_that_cannot_be_what_it_claims_is_refused_before_anything_happens() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let (m, c, _) = image(&v2, "app", None, "one");
        image(&v2, "app", Some("v1"), "two");
        age(&v2, DAY);
        let root = Store::fs(&v2).root_id();
        let tag = "{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\"}\n";
        let rev = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n");
        let blob_rec = format!(
            "{{\"kind\":\"blob\",\"digest\":\"{c}\",\"size\":1,\"mtime\":\"2024-01-01T00:00:00Z\"}}\n"
        );
        let no_untag = Config {
            untag: false,
            ..cfg(Duration::ZERO)
        };
        let before = snapshot(&v2);
        let untag = cfg(Duration::ZERO);
        let table: Vec<(String, &Config, &str)> = vec![
            // Untagging is never an accident of a pipeline.
            (format!("{rev}{tag}"), &no_untag, "stdin line 2: a tag record"),
            (format!("{tag}{blob_rec}"), &untag, "unfiltered reg-ls listing"),
            (format!("{tag}{c}\n"), &untag, "unfiltered reg-ls listing"),
            // A reg-orphans trailer names this root and counts what is read.
            (
                format!("{blob_rec}{}", orphans_end("/elsewhere/v2", 1, 0)),
                &no_untag,
                "another storage root (/elsewhere/v2)",
            ),
            (
                orphans_end(&root, 1, 0),
                &no_untag,
                "disagree: it counts 1 blob records, the input holds 0",
            ),
            (
                format!("{blob_rec}{rev}{}", orphans_end(&root, 1, 0)),
                &no_untag,
                "it counts 0 revision records, the input holds 1",
            ),
            (
                format!("{blob_rec}{}{rev}", orphans_end(&root, 1, 0)),
                &no_untag,
                "stdin line 3: more input after the reg-orphans trailer",
            ),
            (
                format!(
                    "{blob_rec}{}",
                    orphans_end(&root, 1, 0).replace(&format!(",\"root\":\"{root}\""), "")
                ),
                &no_untag,
                "without \"root\"",
            ),
        ];
        for (input, config, want) in table {
            let r = match parse_input(input.as_bytes()) {
                Ok(_) => rm(&v2, &input, config),
                Err(e) => {
                    assert!(e.to_string().contains(want), "{input}: {e}");
                    continue;
                }
            };
            let e = r.result.unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
            assert!(e.contains("nothing was deleted"), "{e}");
            assert!(r.recs.is_empty());
            assert_eq!(snapshot(&v2), before);
        }
        // The same root through a symbolic link, with true counts: accepted.
        std::os::unix::fs::symlink(&v2, dir.path().join("alias")).unwrap();
        let alias = dir.path().join("alias").display().to_string();
        let r = rm(
            &v2,
            &format!("{blob_rec}{}", orphans_end(&alias, 1, 0)),
            &no_untag,
        );
        r.result.as_ref().unwrap();
        // c is the config of a manifest that still has a revision: kept.
        assert_eq!(r.action("blob", &[]), "kept");
    }

    #[test]
    fn an_empty_blob_store_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, c, l) = image(v2, "app", Some("v1"), "one");
        age(v2, DAY);
        fs::rename(v2.join("blobs"), dir.path().join("../saved-blobs-rm-test")).ok();
        fs::remove_dir_all(v2.join("blobs")).ok();
        fs::create_dir_all(v2.join("blobs")).unwrap();
        let before = snapshot(v2);
        let input = format!(
            "{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{l}\"}}\n\
             {{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        let e = r.result.unwrap_err().to_string();
        assert!(e.contains(crate::health::EMPTY_BLOB_STORE), "{e}");
        assert!(r.recs.is_empty());
        assert_eq!(snapshot(v2), before);
    }

    #[test]
    fn missing_manifests_stop_blob_deletion_unless_broken_images_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, c, l) = image(v2, "app", Some("v1"), "one");
        let (old, _, _) = image(v2, "app", None, "old");
        let orphan = blob(v2, b"orphan");
        age(v2, DAY);
        // The tagged manifest is gone: what it referenced is unknown.
        fs::remove_dir_all(v2.join(paths::blob_dir(&m))).unwrap();
        let input =
            format!("{c}\n{l}\n{orphan}\n{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n");
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        r.result.as_ref().unwrap();
        for d in [c, l, orphan] {
            assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept");
            assert!(v2.join(paths::blob_data(&d)).is_file());
        }
        assert_eq!(r.action("revision", &[]), "kept");
        let why = r.recs[0]["reason"].as_str().unwrap();
        assert!(
            why.contains("--accept-broken") && why.contains(&m.to_string()),
            "{why}"
        );
        let r = rm(
            v2,
            &input,
            &Config {
                accept_broken: true,
                ..cfg(Duration::ZERO)
            },
        );
        r.result.as_ref().unwrap();
        for d in [c, l, orphan] {
            assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "deleted");
        }
        assert_eq!(r.action("revision", &[]), "deleted");
    }

    #[test]
    fn a_revision_whose_manifest_is_missing_needs_accept_broken() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        image(v2, "app", Some("v1"), "one");
        let (old, _, _) = image(v2, "app", None, "old");
        age(v2, DAY);
        fs::remove_dir_all(v2.join(paths::blob_dir(&old))).unwrap();
        let input = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n");
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.action("revision", &[]), "kept");
        assert!(r.recs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("manifest's data is missing"));
        let r = rm(
            v2,
            &input,
            &Config {
                accept_broken: true,
                ..cfg(Duration::ZERO)
            },
        );
        assert_eq!(r.action("revision", &[]), "deleted");
    }

    #[test]
    fn a_dry_run_promises_what_the_real_run_frees() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        // An untagged revision still listed in a tag's index, its blobs,
        // links in two repositories, an upload, and a repository emptied.
        let (m, c, l) = image(v2, "app", Some("v1"), "keep");
        let (old, oc, ol) = image(v2, "app", None, "old");
        link(v2, &(paths::tag_index_entry("app", "v1", &old) + "/link"), &old);
        let (gone, gc, gl) = image(v2, "gone/img", None, "gone");
        link(v2, &paths::layer_link("app", &gl), &gl);
        put(
            v2,
            "repositories/gone/img/_uploads/1234-ab/startedat",
            b"2020-01-01T00:00:00Z",
        );
        put(
            v2,
            "repositories/gone/img/_uploads/1234-ab/data",
            b"partial upload",
        );
        age(v2, DAY);
        let _ = (m, c, l);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n\
             {{\"kind\":\"revision\",\"repo\":\"gone/img\",\"digest\":\"{gone}\"}}\n\
             {old}\n{oc}\n{ol}\n{gone}\n{gc}\n{gl}\n\
             {{\"kind\":\"upload\",\"repo\":\"gone/img\",\"id\":\"1234-ab\"}}\n\
             {{\"kind\":\"repo\",\"repo\":\"gone/img\"}}\n"
        );
        let dry = rm(
            v2,
            &input,
            &Config {
                mode: Mode::DryRun,
                ..cfg(Duration::ZERO)
            },
        );
        dry.result.as_ref().unwrap();
        let real = rm(v2, &input, &cfg(Duration::ZERO));
        real.result.as_ref().unwrap();
        assert_eq!(
            dry.stats.count(Action::WouldDelete),
            real.stats.count(Action::Deleted)
        );
        let per = |r: &Ran| -> Vec<(String, u64)> {
            r.recs
                .iter()
                .map(|x| {
                    (
                        format!("{} {} {}", x["kind"], x["repo"], x["digest"]),
                        x["bytes"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        assert_eq!(per(&dry), per(&real));
        assert_eq!(dry.stats.bytes, real.stats.bytes);
        assert!(real.stats.bytes > 0);
    }

    #[test]
    fn a_future_mtime_is_kept_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        image(v2, "app", Some("v1"), "one");
        let future = blob(v2, b"from the future");
        age(v2, DAY);
        let year_2400 = SystemTime::UNIX_EPOCH + Duration::from_secs(13_569_465_600);
        fs::File::open(v2.join(paths::blob_data(&future)))
            .unwrap()
            .set_modified(year_2400)
            .unwrap();
        let store = Store::fs(v2);
        let input = parse_input(format!("{future}\n").as_bytes()).unwrap();
        let msgs = Messages::new("reg-rm", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        run(&store, &input, &cfg(Duration::ZERO), &mut out, &msgs).unwrap();
        assert_eq!(msgs.warnings(), 1);
        assert!(v2.join(paths::blob_data(&future)).is_file());
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        assert!(text.contains("\"kept\""), "{text}");
    }

    #[test]
    fn trash_must_be_new_or_empty_outside_and_not_around_the_root_on_its_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let v2 = root.join("docker/registry/v2");
        let (_, _, l) = image(&v2, "app", None, "one");
        age(&v2, DAY);
        let store = Store::fs(&v2);
        let before = snapshot(&root);
        let used = dir.path().join("used");
        put(&used, "blobs/sha256/aa/old", b"an earlier run's trash");
        let mut cases: Vec<(PathBuf, &str)> = vec![
            (root.join("trash"), "inside the storage root"),
            (v2.join("blobs/trash"), "inside the storage root"),
            (PathBuf::from("/"), "contains the storage root"),
            (dir.path().to_path_buf(), "contains the storage root"),
            (used.clone(), "not empty"),
        ];
        let shm = Path::new("/dev/shm");
        let other_fs = {
            use std::os::unix::fs::MetadataExt;
            shm.is_dir() && fs::metadata(shm).unwrap().dev() != fs::metadata(dir.path()).unwrap().dev()
        };
        let elsewhere = shm.join(format!("reg-rm-test-{}/trash", std::process::id()));
        if other_fs {
            cases.push((elsewhere.clone(), "same filesystem"));
        }
        for (trash, want) in cases {
            let e = check_trash(&store, &trash).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", trash.display());
            let r = rm(
                &v2,
                &format!("{l}\n"),
                &Config {
                    mode: Mode::Trash(trash.clone()),
                    ..cfg(Duration::ZERO)
                },
            );
            assert!(r.result.is_err());
            assert!(r.recs.is_empty());
            assert_eq!(snapshot(&root), before);
        }
        assert!(!root.join("trash").exists());
        assert!(!v2.join("blobs/trash").exists());
        if other_fs {
            assert!(
                !elsewhere.parent().unwrap().exists(),
                "a refused trash left a directory"
            );
        }
        assert_eq!(
            fs::read(used.join("blobs/sha256/aa/old")).unwrap(),
            b"an earlier run's trash"
        );
        check_trash(&store, &dir.path().join("fresh/trash")).unwrap();
        assert!(!dir.path().join("fresh").exists(), "checking creates nothing");
    }

    #[test]
    fn a_push_that_lands_while_links_go_keeps_its_blobs_and_gets_its_links_back() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().to_path_buf();
        image(&v2, "app", Some("v1"), "keep");
        // Overwritten long ago: its blobs are orphans, and the list says so.
        let (old, oc, ol) = image(&v2, "app", None, "old");
        let other = blob(&v2, b"a real orphan");
        age(&v2, DAY);
        let input = format!(
            "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n{old}\n{oc}\n{ol}\n{other}\n"
        );
        // While reg-rm removes links, a client pushes the old image again
        // under a new tag (its manifest only: the blobs "exist").
        let at = v2.clone();
        let hook = Hook(std::sync::Arc::new(move || {
            push_manifest(&at, "app", Some("again"), old, &[]);
        }));
        let r = rm(
            &v2,
            &input,
            &Config {
                after_links: Some(hook),
                ..cfg(Duration::ZERO)
            },
        );
        r.result.as_ref().unwrap();
        for d in [old, oc, ol] {
            assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept", "{d}");
            assert!(v2.join(paths::blob_data(&d)).is_file());
        }
        for d in [oc, ol] {
            assert!(
                v2.join(paths::layer_link("app", &d)).is_file(),
                "link to {d} written back"
            );
        }
        let why = r
            .recs
            .iter()
            .find(|x| x["kind"] == "blob" && x["digest"] == oc.to_string())
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            why.contains("live again during this run") && why.contains("written back in app"),
            "{why}"
        );
        assert_eq!(r.action("blob", &[("digest", &other.to_string())]), "deleted");
        // The pushed image is whole: the tree passes the mark with nothing missing.
        let m = Mark::compute(
            &Store::fs(&v2),
            &Exclusions::default(),
            Asked {
                blobs: &[oc, ol].into(),
                revisions: &BTreeSet::new(),
            },
            &Messages::muted("test"),
        )
        .unwrap();
        assert!(m.complete() && m.blob(&oc).is_some() && m.blob(&ol).is_some());
    }

    // ---- never outside the root

    #[test]
    fn symlinks_and_dotdot_cannot_reach_outside() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let outside = dir.path().join("outside");
        // Outside: something shaped like a repository and like a blob.
        let evil_blob = Digest::sha256_of(b"precious");
        put(&outside, "repo/_layers/sha256/x/link", b"precious");
        put(&outside, "repo/_manifests/tags/t/current/link", b"precious");
        put(&outside, "blob/data", b"precious");
        let (m, _, _) = image(&v2, "app", Some("v1"), "one");
        fs::create_dir_all(v2.join("repositories/linked")).unwrap();
        std::os::unix::fs::symlink(outside.join("repo"), v2.join("repositories/linked/repo")).unwrap();
        let bdir = v2.join(paths::blob_dir(&evil_blob));
        fs::create_dir_all(bdir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(outside.join("blob"), &bdir).unwrap();
        // A real tag directory that is a symlink to the outside.
        std::os::unix::fs::symlink(
            outside.join("repo/_manifests/tags/t"),
            v2.join(paths::tag_dir("app", "evil")),
        )
        .unwrap();
        age(&v2, DAY);
        age(&outside, DAY);
        let before = snapshot(&outside);

        // `..` never gets past the input check.
        for line in [
            "{\"kind\":\"repo\",\"repo\":\"../outside\"}",
            "{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"../../../../outside\"}",
            "{\"kind\":\"upload\",\"repo\":\"app\",\"id\":\"../../../../outside\"}",
            "sha256:../../outside",
        ] {
            assert!(parse_input(line.as_bytes()).is_err(), "{line}");
        }

        let untag = "{\"kind\":\"repo\",\"repo\":\"linked/repo\"}\n{\"kind\":\"tag\",\"repo\":\"linked/repo\",\"tag\":\"t\"}\n\
                     {\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"evil\"}\n";
        let blobs = format!("{evil_blob}\n");
        for mode in [Mode::Delete, Mode::DryRun, Mode::Trash(dir.path().join("trash"))] {
            for input in [untag, blobs.as_str()] {
                let r = rm(
                    &v2,
                    input,
                    &Config {
                        mode: mode.clone(),
                        ..cfg(Duration::ZERO)
                    },
                );
                assert!(
                    r.errors > 0 || r.result.is_err(),
                    "{mode:?} {input}: symlinks not reported"
                );
                assert!(
                    r.recs.iter().all(
                        |x| !x["action"].as_str().unwrap().contains("delete") && x["action"] != "trashed"
                    ),
                    "{mode:?}: {:#?}",
                    r.recs
                );
                assert_eq!(snapshot(&outside), before, "{mode:?}");
            }
        }
        // The live image is untouched too.
        assert!(v2.join(paths::blob_data(&m)).is_file());
        assert!(bdir.is_symlink());
    }
}
