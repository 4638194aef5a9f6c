//! `reg-rm`: delete exactly what stdin names, safely.
//!
//! # Input
//! One item per line: a bare digest (a blob), or a record of kind `blob`,
//! `revision`, `layer`, `upload`, `repo` or `tag` as `reg-ls` and
//! `reg-orphans` print them (extra fields are ignored). Trailers
//! (`{"kind":"end",…}`) are skipped. The whole input is read and checked
//! before anything is touched ([`parse_input`]): a line that is not a record
//! nor a digest, an unknown kind, an invalid repository name, tag, upload id
//! or digest stops the run with the line number, and nothing is deleted.
//! A list of *live* references (`reg-refs` output: its trailer, or any record
//! with a `manifest` field) is refused: `reg-refs | reg-rm` would untag
//! everything.
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
//! single [`Out`] writer, in a stable order.
//!
//! # Guards (checked on the live tree when the phase runs)
//! - A revision is kept while a tag of its repository points at it, or at an
//!   index that lists it as a child (the 2.8 `--delete-untagged` bug, #3178);
//!   a blob is kept while any tag of any repository points at it or at a
//!   manifest that references it (index children, config, layers, subject:
//!   a second line of defence behind reg-refs), or while any repository
//!   still has a revision link to it. A tag deleted in the same run protects
//!   nothing.
//! - A tag record carrying a `digest` is deleted only if the tag still points
//!   there (it may have been pushed again since it was listed).
//! - Links, blobs, uploads and empty directories younger than `min_age` are
//!   kept; a blob is kept if any repository's link to it is young.
//! - A `layer` record whose blob is still stored (and not deleted in this run)
//!   is kept: the link may be what lets a tagged image pull.
//! - A `repo` record is kept while the repository holds a tag, a revision,
//!   an upload or a young `_layers` link; deleting it removes its `_manifests`,
//!   `_layers` and `_uploads` only, never a nested repository.
//! - When the tree cannot be read well enough to apply a guard (a repository
//!   name that breaks the rules, a symlinked repository, an unreadable tag or
//!   tagged manifest) the affected items are kept and the run exits 1.
//! - Every change goes through [`crate::storage::Backend`], which refuses
//!   `..`, absolute paths and paths through symbolic links; every path is
//!   built by [`paths`] from validated names.
//!
//! # Output ([`RmRecord`])
//! ```text
//! {"action":"deleted","kind":"blob","digest":"sha256:…","bytes":123}
//! {"action":"trashed","kind":"tag","repo":"org/app","tag":"v1","digest":"sha256:…","bytes":142}
//! {"action":"would-delete","kind":"revision","repo":"org/app","digest":"sha256:…","bytes":71}
//! {"action":"absent","kind":"upload","repo":"org/app","id":"…","bytes":0}
//! {"action":"kept","kind":"blob","digest":"sha256:…","bytes":0,"reason":"younger than 1h"}
//! ```
//! `bytes` is what the action frees (file sizes under the removed directory).
//!
//! # Test hook
//! [`Config::fail_after`] (the binary reads it from `REG_RM_FAIL_AFTER=N`)
//! stops the run with an error after N deletions, as a crash would, so tests
//! can check that a half-done run leaves a tree that serves and that a second
//! run finishes the job.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::Messages;
use crate::digest::{Algorithm, Digest};
use crate::layout::{check_repo_name, check_tag, check_upload_id, paths, Store};
use crate::output::Out;
use crate::storage::EntryType;
use crate::time::Time;

/// The most a tagged manifest may weigh when reading it for the index guard.
const MANIFEST_LIMIT: u64 = 8 << 20;

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
        match parse_line(text).map_err(err)? {
            None => {
                if !text.trim().is_empty() {
                    input.ignored += 1;
                }
            }
            Some(Item::Tag { repo, tag, digest }) => {
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
            Some(Item::Revision { repo, digest }) => {
                input.revisions.insert((repo, digest));
            }
            Some(Item::Layer { repo, digest }) => {
                input.layers.insert((repo, digest));
            }
            Some(Item::Blob(d)) => {
                input.blobs.insert(d);
            }
            Some(Item::Upload { repo, id }) => {
                input.uploads.insert((repo, id));
            }
            Some(Item::Repo(repo)) => {
                input.repos.insert(repo);
            }
        }
    }
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

/// `Ok(None)` for an empty line or a trailer.
fn parse_line(line: &str) -> Result<Option<Item>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if !line.starts_with('{') {
        return Digest::parse(line)
            .map(|d| Some(Item::Blob(d)))
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
            if map.get("tool").and_then(Value::as_str) == Some("reg-refs") {
                return Err(REFS_REFUSED.into());
            }
            return Ok(None);
        }
        "blob" => Item::Blob(digest_field(&map)?),
        "revision" => Item::Revision {
            repo: repo_field(&map)?,
            digest: digest_field(&map)?,
        },
        "layer" => Item::Layer {
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
        other => {
            return Err(format!(
                "unknown record kind {other:?} (reg-rm takes blob, revision, layer, upload, repo and tag)"
            ))
        }
    };
    Ok(Some(item))
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
    /// Test hook (`REG_RM_FAIL_AFTER`): stop with an error after this many
    /// deletions, as a crash would.
    pub fail_after: Option<u64>,
    /// "Now", for ages.
    pub now: SystemTime,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mode: Mode::Delete,
            min_age: Duration::from_secs(3600),
            fail_after: None,
            now: SystemTime::now(),
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
        let mut line = format!("{}; {verb} {} bytes", parts.join(", "), self.bytes);
        if self.empty_dirs > 0 {
            line.push_str(&format!(", {} empty directories removed", self.empty_dirs));
        }
        if self.failed > 0 {
            line.push_str(&format!(", {} failed", self.failed));
        }
        line
    }
}

/// The run stopped by the `fail_after` test hook.
#[derive(Debug)]
pub struct Stopped(pub u64);

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped after {} deletions (REG_RM_FAIL_AFTER test hook, simulating a crash)",
            self.0
        )
    }
}

impl std::error::Error for Stopped {}

// ---- the run ---------------------------------------------------------------

/// Deletes what `input` names from `store`, writing one record per item to
/// `out`. Problems with single items are reported through `msgs` (exit 1)
/// and the run goes on where that is safe; dependent steps are skipped.
pub fn run<W: Write>(
    store: &Store,
    input: &Input,
    cfg: &Config,
    out: &mut Out<W>,
    msgs: &Messages,
) -> anyhow::Result<Stats> {
    if let Mode::Trash(dir) = &cfg.mode {
        store.backend().prepare_trash(dir)?;
    }
    let r = Runner {
        store,
        cfg,
        msgs,
        done: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
    };
    let mut w = Writer {
        out,
        stats: Stats::default(),
    };
    let result = r.phases(input, &mut w);
    if r.done.load(Ordering::SeqCst) > 0 {
        // Whatever ended the run (even a closed stdout): something is gone.
        msgs.note(CACHE_REMINDER);
    }
    w.out.flush()?;
    result?;
    Ok(w.stats)
}

/// Printed on stderr after any deletion, whatever `-q` says: a registry
/// with a blob descriptor cache keeps serving "layer already exists" for
/// deleted blobs, and clients then push broken images (#1803, #2966, #4569).
pub const CACHE_REMINDER: &str = "if the registry runs with a blob descriptor cache \
     (storage.cache.blobdescriptor: inmemory or redis), restart it now: until then it believes \
     deleted blobs still exist and clients may push broken images";

struct Writer<'a, W: Write> {
    out: &'a mut Out<W>,
    stats: Stats,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the records of a phase; `None` is an item that failed.
    fn write(&mut self, recs: &[Option<RmRecord>]) -> anyhow::Result<()> {
        for r in recs {
            match r {
                Some(r) => {
                    self.stats.add(r);
                    self.out.write(r)?;
                }
                None => self.stats.failed += 1,
            }
        }
        Ok(())
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

/// Live tags, read after the tag phase: what they protect.
#[derive(Default)]
struct TagGuard {
    /// repo → manifest → why it is protected.
    revisions: HashMap<String, HashMap<Digest, String>>,
    /// blob → why it is protected.
    blobs: HashMap<Digest, String>,
    /// Repos whose tags (or tagged manifests) could not all be read.
    unsure_repos: HashSet<String>,
    /// The repository walk itself had errors: blobs are not safe.
    unsure_all: bool,
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

struct Runner<'a> {
    store: &'a Store,
    cfg: &'a Config,
    msgs: &'a Messages,
    done: AtomicU64,
    stopped: AtomicBool,
}

impl Runner<'_> {
    fn phases<W: Write>(&self, input: &Input, w: &mut Writer<W>) -> anyhow::Result<()> {
        let mut removed = Removed::default();

        // 1. Tags.
        let tags: Vec<_> = input.tags.iter().collect();
        let recs: Vec<_> = tags
            .par_iter()
            .map(|((repo, tag), want)| self.rm_tag(repo, tag, **want))
            .collect();
        for rec in recs.iter().flatten() {
            if rec.action.removes() {
                removed.tags.insert((
                    rec.repo.clone().unwrap_or_default(),
                    rec.tag.clone().unwrap_or_default(),
                ));
            }
        }
        w.write(&recs)?;
        self.check_stop()?;

        // 2. Revisions, guarded by the tags left.
        let need_guard = !input.revisions.is_empty() || !input.blobs.is_empty();
        let guard = if need_guard {
            self.tag_guard(&removed)
        } else {
            TagGuard::default()
        };
        let revs: Vec<_> = input.revisions.iter().collect();
        let recs: Vec<_> = revs
            .par_iter()
            .map(|(repo, d)| self.rm_revision(repo, *d, &guard))
            .collect();
        for rec in recs.iter().flatten() {
            if rec.action.removes() {
                removed.revisions.insert((
                    rec.repo.clone().unwrap_or_default(),
                    rec.digest.expect("revision digest"),
                ));
            }
        }
        w.write(&recs)?;
        self.check_stop()?;

        // 3. Decide the blobs, then remove their links and the links named.
        let mut blob_recs: Vec<RmRecord> = Vec::new();
        let mut doomed: BTreeMap<Digest, BlobLinks> = BTreeMap::new();
        if !input.blobs.is_empty() {
            let (links, scan_ok) = self.scan_blob_links(&input.blobs, &removed);
            for d in &input.blobs {
                let l = links.get(d).cloned().unwrap_or_default();
                match self.judge_blob(*d, &l, &guard, scan_ok) {
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
            .map(|((repo, d), guarded)| self.rm_layer(repo, *d, **guarded))
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
        w.write(&recs)?;
        self.check_stop()?;

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
        w.write(&all)?;
        self.check_stop()?;

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
        w.write(&recs)?;
        self.check_stop()?;

        // 6. Repositories (one at a time: nested ones share parents).
        let mut recs = Vec::new();
        for repo in &input.repos {
            recs.push(self.rm_repo(repo, &removed));
            if self.stopped.load(Ordering::SeqCst) {
                break;
            }
        }
        w.write(&recs)?;
        self.check_stop()?;

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

    fn check_stop(&self) -> anyhow::Result<()> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Stopped(self.cfg.fail_after.unwrap_or(0)).into());
        }
        Ok(())
    }

    fn young(&self, mtime: SystemTime) -> bool {
        Time(mtime).age(self.cfg.now) < self.cfg.min_age
    }

    fn young_reason(&self) -> String {
        format!(
            "younger than --min-age {}",
            humantime::format_duration(self.cfg.min_age)
        )
    }

    /// Removes directory `rel` according to the mode. `Err(())` means the
    /// failure was reported (or the test hook stopped the run).
    fn remove(&self, rel: &str) -> Result<Gone, ()> {
        let b = self.store.backend();
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
            return Ok(Gone::Removed(Action::WouldDelete, bytes));
        }
        let n = self.done.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = self.cfg.fail_after {
            if n >= limit {
                self.stopped.store(true, Ordering::SeqCst);
                return Err(());
            }
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

    /// Total size of the files under `rel` (not following symbolic links);
    /// `None` if `rel` does not exist.
    fn tree_bytes(&self, rel: &str) -> crate::Result<Option<u64>> {
        let b = self.store.backend();
        let Some(meta) = b.stat(rel)? else {
            return Ok(None);
        };
        if !meta.is_dir {
            return Ok(Some(meta.size));
        }
        let mut total = 0;
        for e in b.list(rel)?.unwrap_or_default() {
            if e.symlink {
                continue;
            }
            let child = format!("{rel}/{}", e.name);
            match e.ty {
                EntryType::Dir => total += self.tree_bytes(&child)?.unwrap_or(0),
                EntryType::File => total += b.stat(&child)?.map_or(0, |m| m.size),
                EntryType::Other => {}
            }
        }
        Ok(Some(total))
    }

    /// Maps a removal to a record; `None` if it failed.
    fn finish(&self, rec: RmRecord, rel: &str) -> Option<RmRecord> {
        match self.remove(rel) {
            Ok(Gone::Removed(a, bytes)) => Some(rec.done(a, bytes)),
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

    fn rm_tag(&self, repo: &str, tag: &str, want: Option<Digest>) -> Option<RmRecord> {
        let mut rec = RmRecord::new("tag").repo(repo);
        rec.tag = Some(tag.to_string());
        rec.digest = want;
        let dir = paths::tag_dir(repo, tag);
        let link = paths::tag_current(repo, tag);
        match self.store.backend().stat(&dir) {
            Ok(None) => return Some(rec),
            Ok(Some(_)) => {}
            Err(e) => {
                self.msgs.error(e);
                return None;
            }
        }
        match self.store.read_link(&link) {
            Ok(Some(now)) => {
                if want.is_some_and(|w| w != now) {
                    return Some(rec.kept(format!("the tag now points at {now}")));
                }
                rec.digest = Some(now);
            }
            Ok(None) => {}
            Err(e) if want.is_some() => return Some(rec.kept(format!("cannot check where it points: {e}"))),
            Err(_) => {}
        }
        if let Some(m) = self.mtime(&link).ok()? {
            if self.young(m) {
                return Some(rec.kept(self.young_reason()));
            }
        }
        self.finish(rec, &dir)
    }

    // ---- the tag guard

    /// Reads every tag of every repository (and the indexes they point at),
    /// leaving out the tags this run removed.
    fn tag_guard(&self, removed: &Removed) -> TagGuard {
        let mut g = TagGuard::default();
        let repos = self.store.repositories();
        if !repos.errors.is_empty() {
            g.unsure_all = true;
            for e in repos.errors {
                self.msgs.error(e);
            }
        }
        type RepoGuard = (String, HashMap<Digest, String>, bool, Vec<crate::Error>);
        let per: Vec<RepoGuard> = repos
            .items
            .par_iter()
            .map(|repo| {
                let tags = self.store.tags(repo);
                let mut errors = tags.errors;
                let mut prot: HashMap<Digest, String> = HashMap::new();
                for t in tags.items {
                    if removed.tags.contains(&(repo.clone(), t.name.clone())) {
                        continue;
                    }
                    prot.entry(t.digest)
                        .or_insert_with(|| format!("tag {repo}:{} points at it", t.name));
                    // What a tagged manifest references: the children of
                    // an index (nested indexes too), and, as a second line of
                    // defence behind reg-refs, its config, layers and subject.
                    let mut stack = vec![t.digest];
                    let mut seen = HashSet::new();
                    while let Some(m) = stack.pop() {
                        if !seen.insert(m) {
                            continue;
                        }
                        match self.store.read_blob(&m, MANIFEST_LIMIT) {
                            Ok(Some(bytes)) => match crate::manifest::parse(&bytes) {
                                Ok(man) => {
                                    for c in &man.children {
                                        prot.entry(c.digest).or_insert_with(|| {
                                            format!("a child of {m}, which tag {repo}:{} reaches", t.name)
                                        });
                                        stack.push(c.digest);
                                    }
                                    for r in man.references() {
                                        prot.entry(r.digest).or_insert_with(|| {
                                            format!("referenced by {m}, which tag {repo}:{} reaches", t.name)
                                        });
                                    }
                                    if man.kind == crate::manifest::Kind::Unknown {
                                        // When in doubt, a descriptor may be a manifest.
                                        stack.extend(man.other.iter().map(|d| d.digest));
                                    }
                                }
                                Err(e) => errors.push(crate::Error::other(
                                    self.store.display(&paths::blob_data(&m)),
                                    format!("tagged manifest cannot be read: {e}"),
                                )),
                            },
                            // A missing manifest: the tag is already broken.
                            Ok(None) => {}
                            Err(e) => errors.push(e),
                        }
                    }
                }
                let unsure = !errors.is_empty();
                (repo.clone(), prot, unsure, errors)
            })
            .collect();
        for (repo, prot, unsure, errors) in per {
            for e in errors {
                self.msgs.error(e);
            }
            if unsure {
                g.unsure_repos.insert(repo.clone());
                g.unsure_all = true;
            }
            for (d, why) in &prot {
                g.blobs.entry(*d).or_insert_with(|| why.clone());
            }
            g.revisions.insert(repo, prot);
        }
        g
    }

    // ---- revisions

    fn rm_revision(&self, repo: &str, d: Digest, g: &TagGuard) -> Option<RmRecord> {
        let rec = RmRecord::new("revision").repo(repo).digest(d);
        let link = paths::revision_link(repo, &d);
        let mtime = self.mtime(&link).ok()?;
        let protected = g.revisions.get(repo).and_then(|p| p.get(&d));
        let unsure = g.unsure_repos.contains(repo) || g.unsure_all && !g.revisions.contains_key(repo);
        let Some(mtime) = mtime else {
            // No link: no revision. Leftover index entries (a run stopped
            // half way) are garbage.
            if protected.is_none() && !unsure {
                self.remove_index_entries(repo, d);
            }
            return Some(rec);
        };
        if unsure {
            return Some(rec.kept(format!("could not read every tag of {repo} (see errors)")));
        }
        if let Some(why) = protected {
            return Some(rec.kept(why.clone()));
        }
        if self.young(mtime) {
            return Some(rec.kept(self.young_reason()));
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
            let rel = paths::tag_index_entry(repo, &e.name, &d);
            let size = match self.tree_bytes(&rel) {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) => {
                    self.msgs.error(e);
                    continue;
                }
            };
            let b = self.store.backend();
            let is_dir = matches!(b.stat(&rel), Ok(Some(m)) if m.is_dir);
            let r = match &self.cfg.mode {
                Mode::DryRun => b.check_removable(&rel).map(|()| true),
                Mode::Trash(t) => b.move_to_trash(&rel, t),
                Mode::Delete if !is_dir => b.remove_file(&rel),
                Mode::Delete => b.remove_dir_all(&rel),
            };
            match r {
                Ok(true) => bytes += size,
                Ok(false) => {}
                Err(e) => self.msgs.error(e),
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
    fn judge_blob(&self, d: Digest, links: &BlobLinks, g: &TagGuard, scan_ok: bool) -> Option<RmRecord> {
        let rec = RmRecord::new("blob").digest(d);
        if g.unsure_all || !scan_ok {
            return Some(rec.kept("could not read every repository (see errors)"));
        }
        if let Some(why) = g.blobs.get(&d) {
            return Some(rec.kept(why.clone()));
        }
        if let Some(repo) = links.revisions.first() {
            return Some(rec.kept(format!("still a manifest revision in {repo}")));
        }
        match self.store.blob_meta(&d) {
            Ok(Some(m)) if self.young(m.mtime) => return Some(rec.kept(self.young_reason())),
            Ok(_) => {}
            Err(e) => {
                self.msgs.error(e);
                return Some(rec.kept("cannot read its data file (see errors)"));
            }
        }
        if let Some((repo, _)) = links.layers.iter().find(|(_, m)| self.young(*m)) {
            return Some(rec.kept(format!("its _layers link in {repo} is {}", self.young_reason())));
        }
        None
    }

    fn rm_layer(&self, repo: &str, d: Digest, guarded: bool) -> Option<RmRecord> {
        let rec = RmRecord::new("layer").repo(repo).digest(d);
        let link = paths::layer_link(repo, &d);
        let dir = paths::layer_dir(repo, &d);
        let mtime = match self.mtime(&link).ok()? {
            Some(m) => m,
            // A link directory without its link is garbage; remove it quietly.
            None => return self.finish(rec, &dir).map(|r| r.done(Action::Absent, 0)),
        };
        if guarded {
            match self.store.blob_meta(&d) {
                Ok(Some(_)) => {
                    return Some(rec.kept(
                        "its blob is still stored (and not deleted in this run): the link may be in use",
                    ))
                }
                Ok(None) => {}
                Err(e) => {
                    self.msgs.error(e);
                    return None;
                }
            }
        }
        if self.young(mtime) {
            return Some(rec.kept(self.young_reason()));
        }
        self.finish(rec, &dir)
    }

    fn rm_blob(&self, d: Digest) -> Option<RmRecord> {
        let rec = RmRecord::new("blob").digest(d);
        // Checked again now, at deletion time.
        match self.store.blob_meta(&d) {
            Ok(Some(m)) if self.young(m.mtime) => return Some(rec.kept(self.young_reason())),
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
        if newest.is_some_and(|m| self.young(m)) {
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
        if layers.iter().any(|(_, m)| self.young(*m)) {
            return Some(rec.kept(format!("it has a _layers link {}", self.young_reason())));
        }
        // Its own directories only: a nested repository may live beside them.
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
            Ok(Some(m)) if m.is_dir && !self.young(m.mtime) => {}
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
    use std::fs;
    use std::path::Path;

    const DAY: Duration = Duration::from_secs(86400);

    fn put(v2: &Path, rel: &str, content: &[u8]) {
        let p = v2.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn blob(v2: &Path, content: &[u8]) -> Digest {
        let d = Digest::sha256_of(content);
        put(v2, &paths::blob_data(&d), content);
        d
    }

    fn link(v2: &Path, rel: &str, d: &Digest) {
        put(v2, rel, d.to_string().as_bytes());
    }

    /// Sets the mtime of everything under `p` to `age` ago.
    fn age(p: &Path, age: Duration) {
        let t = SystemTime::now() - age;
        for e in walkdir::WalkDir::new(p).follow_links(false) {
            let e = e.unwrap();
            if e.path_is_symlink() {
                continue;
            }
            let f = fs::File::open(e.path()).unwrap();
            f.set_modified(t).unwrap();
        }
    }

    /// An image pushed to `repo`: its blobs, `_layers` links and revision
    /// (and tag, if any). Returns (manifest, config, layers).
    fn image(v2: &Path, repo: &str, tag: Option<&str>, name: &str) -> (Digest, Digest, Digest) {
        let config = blob(v2, format!("{{\"config of\":\"{name}\"}}").as_bytes());
        let layer = blob(v2, format!("layer of {name}").as_bytes());
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"{layer}"}}]}}"#
        );
        let md = blob(v2, m.as_bytes());
        push_manifest(v2, repo, tag, md, &[config, layer]);
        (md, config, layer)
    }

    fn push_manifest(v2: &Path, repo: &str, tag: Option<&str>, md: Digest, blobs: &[Digest]) {
        for b in blobs {
            link(v2, &paths::layer_link(repo, b), b);
        }
        link(v2, &paths::revision_link(repo, &md), &md);
        if let Some(tag) = tag {
            link(v2, &paths::tag_current(repo, tag), &md);
            link(v2, &(paths::tag_index_entry(repo, tag, &md) + "/link"), &md);
        }
    }

    fn index(v2: &Path, repo: &str, tag: &str, children: &[Digest]) -> Digest {
        let ms: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{c}"}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            ms.join(",")
        );
        let d = blob(v2, body.as_bytes());
        push_manifest(v2, repo, Some(tag), d, &[]);
        d
    }

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
             {{\"kind\":\"layer\",\"repo\":\"a/b\",\"digest\":\"{d}\"}}\n\
             {{\"kind\":\"upload\",\"repo\":\"a\",\"id\":\"0b9e-11\",\"size\":0,\"started_at\":\"2024-01-01T00:00:00Z\"}}\n\
             {{\"kind\":\"repo\",\"repo\":\"a\"}}\n\
             {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v1\",\"digest\":\"{d}\",\"mtime\":\"2024-01-01T00:00:00Z\"}}\n\
             {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v2\"}}\n\
             {{\"kind\":\"end\",\"tool\":\"reg-orphans\",\"blobs\":1}}\n"
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
                "{\"kind\":\"layer\",\"repo\":\"a\"}".into(),
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

        // With the tag in the same input, all of it goes.
        let input =
            format!("{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\",\"digest\":\"{m}\"}}\n{input}");
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.errors, 0);
        assert_eq!(r.action("tag", &[]), "deleted");
        assert_eq!(r.action("revision", &[("repo", "app")]), "deleted");
        assert_eq!(r.action("revision", &[("repo", "other")]), "absent");
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
        let why = format!("referenced by {m}, which tag app:v1 reaches");
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
        assert!(why.contains(&format!("a child of {idx}")), "{why}");
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
            reasons.contains(&"still a manifest revision in new"),
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
            "{{\"kind\":\"layer\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n{{\"kind\":\"layer\",\"repo\":\"app\",\"digest\":\"{gone}\"}}\n"
        );
        let r = rm(v2, &input, &cfg(Duration::ZERO));
        assert_eq!(r.action("layer", &[("digest", &c.to_string())]), "kept");
        assert_eq!(r.action("layer", &[("digest", &gone.to_string())]), "deleted");
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
                r.action("layer", &[("repo", repo), ("digest", &orphan.to_string())]),
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
        let (m, c, l) = image(v2, "app", Some("v1"), "one");
        put(
            v2,
            "repositories/app/_uploads/1234-ab/startedat",
            b"2020-01-01T00:00:00Z",
        );
        age(v2, DAY);
        let before = snapshot(v2);
        let input = format!(
            "{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\"}}\n{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n\
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
        // tag, revision, 3 blobs, 2 links, upload, repo
        assert_eq!(r.recs.len(), 9);
        assert_eq!(snapshot(v2), before);
        assert!(r.stats.bytes > 0);
        assert_eq!(r.stats.removed(), 0);
    }

    #[test]
    fn trash_then_copy_back_restores_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let trash = dir.path().join("trash");
        let (m, c, l) = image(&v2, "app", Some("v1"), "one");
        image(&v2, "app", Some("v2"), "two");
        age(&v2, DAY);
        let before = snapshot(&v2);
        let input = format!(
            "{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\"}}\n{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n{m}\n{c}\n{l}\n"
        );
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
        assert!(trash.join(paths::tag_current("app", "v1")).is_file());
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
        assert!(e.to_string().contains("outside the storage root"), "{e}");
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

        for mode in [Mode::Delete, Mode::DryRun, Mode::Trash(dir.path().join("trash"))] {
            let input = format!(
                "{{\"kind\":\"repo\",\"repo\":\"linked/repo\"}}\n{{\"kind\":\"tag\",\"repo\":\"linked/repo\",\"tag\":\"t\"}}\n\
                 {{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"evil\"}}\n{evil_blob}\n"
            );
            let r = rm(
                &v2,
                &input,
                &Config {
                    mode: mode.clone(),
                    ..cfg(Duration::ZERO)
                },
            );
            assert!(r.errors > 0, "{mode:?}: symlinks not reported");
            assert!(
                r.recs
                    .iter()
                    .all(|x| !x["action"].as_str().unwrap().contains("delete") && x["action"] != "trashed"),
                "{mode:?}: {:#?}",
                r.recs
            );
            assert_eq!(snapshot(&outside), before, "{mode:?}");
        }
        // The live image is untouched too.
        assert!(v2.join(paths::blob_data(&m)).is_file());
        assert!(bdir.is_symlink());
    }
}
