//! `reg-orphans`: what nothing references.
//!
//! Two steps, and nothing is printed before both are done:
//!
//! 1. [`read_refs`] reads the whole output of `reg-refs` (and bare digest
//!    lines) into compact sets — referenced blob digests, and live
//!    (repository, manifest) pairs — and refuses input that does not prove
//!    itself complete: no `reg-refs` trailer as the last record, a trailer
//!    with `complete:false` (a `--repo` list), an `error` record, or a line it
//!    cannot read. A cut pipeline (`reg-refs | head | reg-orphans`) must never
//!    turn live data into orphans.
//! 2. [`find`] walks the store in parallel — blobs by prefix directory, then
//!    repositories — and collects every orphan kind of the contract; [`write()`]
//!    prints them in a stable order with the trailer.
//!
//! The grace period (`min_age`) protects what was written recently, because
//! the registry keeps writing while we look: a blob whose data file, or any
//! `_layers` or revision link naming it, is younger than `min_age`; a
//! revision link younger than `min_age`. A young revision the input does not
//! name (pushed after `reg-refs` ran), and a stored tag the input does not
//! name, also protect everything their manifest references (children,
//! config, layers, subject), read from storage here: deleting the layers of
//! a manifest pushed a minute ago would break it.
//!
//! Errors never make something live look orphaned: a listing problem keeps
//! what it concerns (a repository with an unreadable part is not reported as
//! empty; a layer link is reported only when its blob's `data` is confirmed
//! absent), and a listing problem that could hide young link files withholds
//! every blob orphan. Such problems are reported and make the exit status 1.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Deserialize;

use crate::digest::{key, Digest, DigestSet, Prehashed, SortedSet};
use crate::error::{Error, ErrorKind};
use crate::input::Lines;
use crate::layout::{check_repo_name, paths, Blob, LayerLink, Listing, Revision, Store, Upload};
use crate::messages::Messages;
use crate::output::Out;
use crate::progress::Phase;
use crate::record::{OrphanRecord, OrphansEnd};
use crate::time::{future_warning, AgePolicy, Time};

/// What counts as old enough.
#[derive(Clone, Debug)]
pub struct Config {
    /// Blobs and links younger than this are never reported.
    pub min_age: Duration,
    /// Uploads started longer ago than this are reported.
    pub upload_age: Duration,
    /// The time ages are measured against (now; tests move it).
    pub now: SystemTime,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_age: Duration::from_secs(3600),
            upload_age: Duration::from_secs(168 * 3600),
            now: SystemTime::now(),
        }
    }
}

impl Config {
    /// The grace period of `--min-age`.
    fn ages(&self) -> AgePolicy {
        AgePolicy {
            now: self.now,
            min_age: self.min_age,
        }
    }

    fn old_enough(&self, mtime: SystemTime) -> bool {
        self.ages().old(mtime)
    }

    fn future(&self, mtime: SystemTime) -> bool {
        self.ages().future(mtime)
    }
}

// ---- input -----------------------------------------------------------------

pub use crate::input::InputError;

/// A set of digests, 8 bytes each (see [`key`] and [`SortedSet`]).
#[derive(Default)]
struct Digests(SortedSet<u64>);

impl Digests {
    fn insert(&mut self, d: Digest) {
        self.0.insert(key(&d));
    }

    fn finish(&mut self) {
        self.0.finish();
    }

    fn contains(&self, d: &Digest) -> bool {
        self.0.contains(&key(d))
    }

    fn position(&self, d: &Digest) -> Option<usize> {
        self.0.position(&key(d))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// (repository id, digest) pairs, 16 bytes each (see [`key`] and
/// [`SortedSet`]).
#[derive(Default)]
struct PairSet(SortedSet<(u32, u64)>);

impl PairSet {
    fn insert(&mut self, repo: u32, d: Digest) {
        self.0.insert((repo, key(&d)));
    }

    fn finish(&mut self) {
        self.0.finish();
    }

    fn contains(&self, repo: u32, d: &Digest) -> bool {
        self.0.contains(&(repo, key(d)))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One bit per item of a [`SortedSet`], settable from parallel workers.
#[derive(Default)]
struct Bits(Vec<AtomicU64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    fn set(&self, i: usize) {
        self.0[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }
}

/// Counts of what the input held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    pub lines: u64,
    /// JSON records, the trailer included.
    pub records: u64,
    /// Bare digest lines.
    pub bare_digests: u64,
    /// Records of a kind this version does not know: every digest in them
    /// was kept (with their repository, as a live revision too).
    pub unknown: u64,
    /// Tag, revision and edge records read, to check against the trailer.
    pub tags: u64,
    pub revisions: u64,
    pub references: u64,
}

/// What the reg-refs input references (the live references; not the
/// [`crate::refs`] graph).
#[derive(Default)]
pub struct LiveRefs {
    /// Every digest named by any record or bare line: blobs to keep.
    blobs: Digests,
    /// Which of `blobs` the blob walk found stored (by position).
    stored: Bits,
    /// Bare digest lines: kept as revisions in every repository too.
    anywhere: Digests,
    /// Live (repository, manifest) pairs.
    pairs: PairSet,
    /// The last (repository, manifest) of an edge record: edges come
    /// grouped by manifest, so most repeats are skipped before sorting.
    last_edge: Option<(u32, Digest)>,
    /// Interned repository names.
    repo_ids: HashMap<String, u32>,
    /// The storage root the reg-refs trailer names.
    pub storage_root: String,
    /// Repositories the reg-refs list was made without (`--exclude-repo`, a
    /// what-if): their tags hold nothing here either.
    pub excluded: Vec<String>,
    pub stats: InputStats,
}

impl LiveRefs {
    /// Whether any record or line names this digest.
    pub fn blob_referenced(&self, d: &Digest) -> bool {
        self.blobs.contains(d)
    }

    /// Sorts the sets once the whole input is read.
    fn finish(&mut self) {
        self.blobs.finish();
        self.anywhere.finish();
        self.pairs.finish();
        self.stored = Bits::new(self.blobs.len());
    }

    /// If the input names `d`: notes that it is stored, and says true.
    fn mark_stored(&self, d: &Digest) -> bool {
        self.blobs.position(d).map(|i| self.stored.set(i)).is_some()
    }

    /// Whether the input names `d` and the blob walk found it stored (or
    /// found stored a blob that shares its [`key`]: then a link to `d` is
    /// not reported as dangling, which keeps it).
    fn referenced_and_stored(&self, d: &Digest) -> bool {
        self.blobs.position(d).is_some_and(|i| self.stored.get(i))
    }

    /// Whether the revision `d` of `repo` is live.
    pub fn revision_live(&self, repo: &str, d: &Digest) -> bool {
        self.anywhere.contains(d)
            || self
                .repo_ids
                .get(repo)
                .is_some_and(|&id| self.pairs.contains(id, d))
    }

    /// Whether any record names this repository.
    pub fn names_repo(&self, repo: &str) -> bool {
        self.repo_ids.contains_key(repo)
    }

    /// Distinct referenced digests.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Distinct live (repository, manifest) pairs.
    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    fn repo_id(&mut self, repo: &str) -> u32 {
        if let Some(&id) = self.repo_ids.get(repo) {
            return id;
        }
        let id = self.repo_ids.len() as u32;
        self.repo_ids.insert(repo.to_owned(), id);
        id
    }
}

/// The fields of a record this tool reads; every other field is ignored.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    repo: Option<Cow<'a, str>>,
    #[serde(default)]
    digest: Option<Digest>,
    #[serde(default)]
    manifest: Option<Digest>,
    /// What the repository's link for `digest` names (an alias): kept too.
    #[serde(default)]
    target: Option<Digest>,
    #[serde(default, borrow)]
    tool: Option<Cow<'a, str>>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    tags: Option<u64>,
    #[serde(default)]
    revisions: Option<u64>,
    #[serde(default)]
    references: Option<u64>,
    #[serde(default, borrow)]
    root: Option<Cow<'a, str>>,
    #[serde(default)]
    excluded: Vec<String>,
}

/// Reads the whole input: `reg-refs` records ending with its trailer, and
/// bare digest lines (`sha256:<hex>`, kept as blobs and, in every
/// repository, as revisions). Blank lines are skipped. Refuses, naming the
/// line, anything that is not a record or a digest, an `error` record, a
/// record missing a field its kind needs, records after the trailer, and
/// input without a complete `reg-refs` trailer as its last record.
pub fn read_refs(input: impl BufRead) -> Result<LiveRefs, InputError> {
    let mut refs = LiveRefs::default();
    let mut lines = Lines::new(input);
    let mut n: u64 = 0;
    let mut trailer: Option<u64> = None;
    while let Some((line, text)) = lines.next_line()? {
        n = line;
        let err = |why: String| InputError::at(n, why);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(t) = trailer {
            return Err(err(format!(
                "more input after the reg-refs trailer on line {t}: concatenated or garbled input"
            )));
        }
        if !text.starts_with('{') {
            let d =
                Digest::parse(text).map_err(|e| err(format!("neither a JSON record nor a digest: {e}")))?;
            refs.blobs.insert(d);
            refs.anywhere.insert(d);
            refs.stats.bare_digests += 1;
            continue;
        }
        let rec: Line =
            serde_json::from_str(text).map_err(|e| err(format!("not a reference record: {e}")))?;
        refs.stats.records += 1;
        if rec.kind == "end" {
            check_trailer(&rec).map_err(err)?;
            check_counts(&rec, &refs.stats).map_err(err)?;
            refs.storage_root = rec.root.as_deref().unwrap_or_default().to_string();
            for r in &rec.excluded {
                check_repo_name(r).map_err(|why| err(format!("trailer \"excluded\": {why}")))?;
            }
            refs.excluded = rec.excluded.clone();
            trailer = Some(n);
            continue;
        }
        add_record(&mut refs, &rec).map_err(err)?;
    }
    refs.stats.lines = n;
    refs.finish();
    if trailer.is_none() {
        return Err(if refs.stats.records + refs.stats.bare_digests == 0 {
            InputError::at(0, "no input: pipe the output of reg-refs into reg-orphans")
        } else {
            InputError {
                line: n,
                why: "input ends without the reg-refs trailer ({\"kind\":\"end\",\"tool\":\"reg-refs\",…}): \
                      reg-refs failed or its output was cut; nothing is reported"
                    .into(),
            }
        });
    }
    Ok(refs)
}

fn check_trailer(rec: &Line) -> Result<(), String> {
    match rec.tool.as_deref() {
        Some("reg-refs") => {}
        Some(other) => {
            return Err(format!(
                "a trailer from {other:?}, not from reg-refs: reg-orphans reads the output of reg-refs"
            ))
        }
        None => return Err("a trailer without \"tool\": reg-orphans reads the output of reg-refs".into()),
    }
    if rec.root.as_deref().is_none_or(str::is_empty) {
        return Err(
            "a reg-refs trailer without \"root\": made by hand or by an older reg-refs; \
                    run reg-refs again"
                .into(),
        );
    }
    if rec.complete != Some(true) {
        return Err(
            "the reg-refs trailer does not say \"complete\":true: a list made with --repo \
                    cannot show what is unreferenced; run reg-refs on every repository"
                .into(),
        );
    }
    Ok(())
}

/// The trailer's counts must be the records read: a trailer alone, or a list
/// with lines cut out of it, names too little to prove anything orphaned.
fn check_counts(rec: &Line, read: &InputStats) -> Result<(), String> {
    for (name, said, got) in [
        ("tag", rec.tags, read.tags),
        ("revision", rec.revisions, read.revisions),
        ("reference", rec.references, read.references),
    ] {
        match said {
            Some(n) if n == got => {}
            Some(n) => {
                return Err(format!(
                    "the reg-refs trailer and the records read disagree: it counts {n} {name} records, \
                     the input holds {got}; the list was cut, filtered or made by hand"
                ))
            }
            None => return Err(format!("a reg-refs trailer without its {name:?} count")),
        }
    }
    Ok(())
}

fn add_record(refs: &mut LiveRefs, rec: &Line) -> Result<(), String> {
    let kind = rec.kind.as_ref();
    let need = |field: &str| format!("a {kind:?} record without {field:?}");
    let repo = match rec.repo.as_deref() {
        Some(r) => {
            check_repo_name(r)?;
            Some(r)
        }
        None => None,
    };
    match kind {
        "error" => return Err("an error record: the reference list is not complete".into()),
        "tag" | "revision" | "manifest" | "config" | "layer" | "referrer" | "link" => {
            let repo = repo.ok_or_else(|| need("repo"))?;
            let digest = rec.digest.ok_or_else(|| need("digest"))?;
            let id = refs.repo_id(repo);
            refs.blobs.insert(digest);
            // The blob the registry serves for `digest` in this repository
            // (an alias): kept, and a live revision there if it is one.
            if let Some(t) = rec.target {
                refs.blobs.insert(t);
                refs.pairs.insert(id, t);
            }
            match kind {
                "tag" => refs.stats.tags += 1,
                "revision" => refs.stats.revisions += 1,
                _ => refs.stats.references += 1,
            }
            match kind {
                "tag" | "revision" | "link" => refs.pairs.insert(id, digest),
                _ => {
                    let m = rec.manifest.ok_or_else(|| need("manifest"))?;
                    // The parent manifest is live in this repository; an
                    // index child or a referrer is a live revision too.
                    if refs.last_edge != Some((id, m)) {
                        refs.blobs.insert(m);
                        refs.pairs.insert(id, m);
                        refs.last_edge = Some((id, m));
                    }
                    if matches!(kind, "manifest" | "referrer") {
                        refs.pairs.insert(id, digest);
                    }
                }
            }
        }
        _ => {
            // A kind from a newer reg-refs: when in doubt, keep.
            refs.stats.unknown += 1;
            for d in rec.digest.iter().chain(rec.manifest.iter()) {
                refs.blobs.insert(*d);
                match repo {
                    Some(r) => {
                        let id = refs.repo_id(r);
                        refs.pairs.insert(id, *d);
                    }
                    None => {
                        refs.anywhere.insert(*d);
                    }
                }
            }
        }
    }
    Ok(())
}

// ---- the walk ----------------------------------------------------------------

/// Unreferenced blobs, by digest (once the walk sorts them): 48
/// bytes a sha256 one (its digest, size and modification time in whole
/// seconds, all that its record prints) instead of a [`Blob`]'s 96.
#[derive(Debug, Default)]
pub struct Blobs {
    short: Vec<ShortBlob>,
    /// sha384 and sha512 blobs, as they are (rare).
    long: Vec<Blob>,
}

#[derive(Clone, Copy, Debug)]
struct ShortBlob {
    digest: [u8; 32],
    size: u64,
    secs: i64,
}

impl Blobs {
    fn push(&mut self, b: Blob) {
        match b.digest {
            Digest::Sha256(digest) => self.short.push(ShortBlob {
                digest,
                size: b.size,
                secs: crate::time::unix_secs(b.mtime),
            }),
            _ => self.long.push(b),
        }
    }

    fn append(&mut self, other: &mut Blobs) {
        self.short.append(&mut other.short);
        self.long.append(&mut other.long);
    }

    fn sort(&mut self) {
        self.short.sort_unstable_by_key(|b| b.digest);
        self.long.sort_by_key(|b| b.digest);
    }

    /// Whether `d` is one of them (once sorted).
    pub fn contains(&self, d: &Digest) -> bool {
        match d {
            Digest::Sha256(k) => self.short.binary_search_by_key(k, |b| b.digest).is_ok(),
            _ => self.long.binary_search_by_key(d, |b| b.digest).is_ok(),
        }
    }

    /// Keeps the blobs whose digest `keep` says true of.
    fn retain(&mut self, mut keep: impl FnMut(&Digest) -> bool) {
        self.short.retain(|b| keep(&Digest::Sha256(b.digest)));
        self.long.retain(|b| keep(&b.digest));
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn clear(&mut self) {
        self.short = Vec::new();
        self.long = Vec::new();
    }

    /// Their sizes added up.
    pub fn bytes(&self) -> u64 {
        self.short.iter().map(|b| b.size).sum::<u64>() + self.long.iter().map(|b| b.size).sum::<u64>()
    }

    /// Every blob, by digest (sha256 ones first, as [`Digest`] orders them).
    pub fn iter(&self) -> impl Iterator<Item = Blob> + '_ {
        let short = self.short.iter().map(|b| Blob {
            digest: Digest::Sha256(b.digest),
            size: b.size,
            mtime: crate::time::from_unix_secs(b.secs, 0),
        });
        short.chain(self.long.iter().cloned())
    }
}

/// Everything found, sorted, ready to print.
#[derive(Debug, Default)]
pub struct Found {
    /// Sorted by digest.
    pub blobs: Blobs,
    /// Sorted by repository, then digest.
    pub revisions: Revisions,
    /// Every repository listed: what [`OrphanRevision::repo`] indexes.
    pub names: Vec<String>,
    /// `_layers` links whose blob is missing, sorted by repository, then digest.
    pub layer_links: Vec<(String, LayerLink)>,
    /// Sorted by repository, then id.
    pub uploads: Vec<(String, Upload)>,
    /// Sorted.
    pub repos: Vec<String>,
    /// Orphans not reported because they are younger than `min_age` (or
    /// held by something that is).
    pub too_young: u64,
    pub stored_blobs: u64,
    /// Unreferenced blobs not reported because a listing problem may have
    /// hidden a young link to them.
    pub withheld_blobs: u64,
    /// The storage root walked ([`Store::root_id`]).
    pub storage_root: String,
    /// The what-if exclusion of the input, carried on to the trailer.
    pub excluded: Vec<String>,
}

impl Found {
    /// The trailer's counts.
    pub fn trailer(&self) -> OrphansEnd {
        OrphansEnd {
            tool: "reg-orphans".into(),
            blobs: self.blobs.len() as u64,
            blob_bytes: self.blobs.bytes(),
            revisions: self.revisions.len() as u64,
            layer_links: self.layer_links.len() as u64,
            uploads: self.uploads.len() as u64,
            upload_bytes: self.uploads.iter().map(|(_, u)| u.size).sum(),
            repos: self.repos.len() as u64,
            too_young: self.too_young,
            stored_blobs: self.stored_blobs,
            root: Some(self.storage_root.clone()),
            excluded: self.excluded.clone(),
        }
    }
}

/// An orphan revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanRevision {
    /// Its repository: an index into [`Found::names`] (sorted, so this
    /// orders revisions as their repository names do).
    pub repo: u32,
    /// The link's modification time, in whole seconds since 1970 (all that
    /// a record prints).
    pub secs: i64,
    pub digest: Digest,
}

/// Orphan revisions: 48 bytes a sha256 one instead of the 112 of a
/// repository name and a [`Revision`].
#[derive(Debug, Default)]
pub struct Revisions {
    short: Vec<ShortRevision>,
    /// sha384 and sha512 ones, as they are (rare).
    long: Vec<OrphanRevision>,
}

#[derive(Clone, Copy, Debug)]
struct ShortRevision {
    repo: u32,
    secs: i64,
    digest: [u8; 32],
}

impl Revisions {
    fn push(&mut self, repo: u32, r: &Revision) {
        let secs = crate::time::unix_secs(r.mtime);
        match r.digest {
            Digest::Sha256(digest) => self.short.push(ShortRevision { repo, secs, digest }),
            digest => self.long.push(OrphanRevision { repo, secs, digest }),
        }
    }

    fn sort(&mut self) {
        self.short.sort_unstable_by_key(|r| (r.repo, r.digest));
        self.long.sort_unstable_by_key(|r| (r.repo, r.digest));
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every revision, by repository then digest (once sorted).
    pub fn iter(&self) -> impl Iterator<Item = OrphanRevision> + '_ {
        let mut short = self
            .short
            .iter()
            .map(|r| OrphanRevision {
                repo: r.repo,
                secs: r.secs,
                digest: Digest::Sha256(r.digest),
            })
            .peekable();
        let mut long = self.long.iter().copied().peekable();
        std::iter::from_fn(move || match (short.peek(), long.peek()) {
            (Some(a), Some(b)) if (b.repo, b.digest) < (a.repo, a.digest) => long.next(),
            (Some(_), _) => short.next(),
            (None, _) => long.next(),
        })
    }
}

/// How many repositories are scanned (in parallel) before their results
/// are gathered.
const REPO_BATCH: usize = 64;

/// Whether a listing problem may hide link files (young links, or a tag
/// the input does not name). A garbled link, a tag directory without its
/// link, or a name the registry could not have written hides none.
fn may_hide_links(e: &Error) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::BadLink(_) | ErrorKind::BadName(_) | ErrorKind::MissingLink | ErrorKind::UnknownAlgorithm
    )
}

/// How many blob prefix directories are walked (in parallel) before their
/// candidates are gathered: bounds what is held twice.
const BLOB_BATCH: usize = 16;

struct BlobPart {
    stored: u64,
    candidates: Blobs,
    /// Unreferenced blobs stored but not candidates (young, or unreadable).
    kept: Vec<Digest>,
    too_young: u64,
    errors: Vec<Error>,
}

/// What one repository holds that nothing references.
#[derive(Default)]
struct RepoScan {
    revisions: Vec<Revision>,
    layer_links: Vec<LayerLink>,
    uploads: Vec<Upload>,
    orphan_repo: bool,
    /// Digests held by the grace period: young links, and everything a
    /// young unreferenced revision or an unlisted tag references.
    held: Vec<Digest>,
    too_young: u64,
    errors: Vec<Error>,
    hides_links: bool,
    /// Warnings: modification times in the future, links that name nothing.
    warnings: Vec<String>,
}

/// Walks the store and collects every orphan. Problems with single paths
/// are reported through `msgs` and keep what they concern; an unreadable
/// manifest that the grace period must follow is fatal (nothing is printed).
pub fn find(store: &Store, refs: &LiveRefs, cfg: &Config, msgs: &Messages) -> anyhow::Result<Found> {
    store.check_blob_store()?;
    let mut found = Found {
        storage_root: store.root_id(),
        excluded: refs.excluded.clone(),
        ..Found::default()
    };
    if !refs.storage_root.is_empty() && !store.is_root(&refs.storage_root) {
        anyhow::bail!(
            "stdin: this reference list describes another storage root ({}), not {}: \
             run reg-refs on this root",
            refs.storage_root,
            found.storage_root
        );
    }
    let (mut candidates, kept) = walk_blobs(store, refs, cfg, msgs, &mut found);
    let stored = Stored {
        refs,
        candidates: &candidates,
        kept: &kept,
    };
    let (held, hides_links) = walk_repos(store, refs, cfg, msgs, &stored, &mut found)?;
    drop(kept);
    candidates.retain(|d| {
        let keep = !held.contains(d);
        if !keep {
            found.too_young += 1;
        }
        keep
    });
    found.blobs = candidates;
    if hides_links && !found.blobs.is_empty() {
        msgs.error(format!(
            "not reporting {} unreferenced blobs: a listing problem above may hide recent links to them",
            found.blobs.len()
        ));
        found.withheld_blobs = found.blobs.len() as u64;
        found.blobs.clear();
    }
    found.sort();
    Ok(found)
}

/// The blob walk: which blobs are stored (to tell layer links whose blob
/// is missing: bits in `refs` for the referenced ones, the candidates and
/// `kept` for the others) and the unreferenced ones, which the repository
/// walk may still hold. Returns the candidates and the kept, both by digest
/// (the order they are printed in, and to look them up).
fn walk_blobs(
    store: &Store,
    refs: &LiveRefs,
    cfg: &Config,
    msgs: &Messages,
    found: &mut Found,
) -> (Blobs, Vec<Digest>) {
    msgs.progress()
        .start(Phase::new("listing blob prefix directories", ""), None);
    let prefixes = store.blob_prefixes();
    for e in prefixes.errors {
        msgs.problem(e);
    }
    msgs.progress().start(
        Phase::new("looking at blobs", "prefix directories").also("blobs"),
        Some(prefixes.items.len() as u64),
    );
    let mut candidates = Blobs::default();
    let mut kept = Vec::new();
    for batch in prefixes.items.chunks(BLOB_BATCH) {
        let parts: Vec<BlobPart> = batch
            .par_iter()
            .map(|p| walk_prefix(store, refs, cfg, msgs, p))
            .collect();
        for mut p in parts {
            for e in p.errors {
                msgs.problem(e);
            }
            found.stored_blobs += p.stored;
            found.too_young += p.too_young;
            candidates.append(&mut p.candidates);
            kept.extend(p.kept);
        }
    }
    candidates.sort();
    kept.sort_unstable();
    (candidates, kept)
}

/// One blob prefix directory. Only unreferenced blobs are looked into (a
/// `stat` of `data`): at a million blobs the referenced ones need no system
/// call.
fn walk_prefix(
    store: &Store,
    refs: &LiveRefs,
    cfg: &Config,
    msgs: &Messages,
    p: &crate::layout::BlobPrefix,
) -> BlobPart {
    let l = store.blob_digests_in(p);
    msgs.progress().add_also(l.items.len() as u64);
    let mut part = BlobPart {
        stored: 0,
        candidates: Blobs::default(),
        kept: Vec::new(),
        too_young: 0,
        errors: l.errors,
    };
    for d in l.items {
        if refs.mark_stored(&d) {
            part.stored += 1;
            continue;
        }
        match store.blob(&d) {
            Ok(Some(b)) => {
                part.stored += 1;
                if cfg.old_enough(b.mtime) {
                    part.candidates.push(b);
                } else {
                    if cfg.future(b.mtime) {
                        msgs.warn(future_warning(&store.display(&paths::blob_data(&d)), b.mtime));
                    }
                    part.kept.push(d);
                    part.too_young += 1;
                }
            }
            // Gone since the directory was listed.
            Ok(None) => {}
            Err(e) => {
                // Kept: its directory is there, so links to it are
                // not reported either.
                part.stored += 1;
                part.kept.push(d);
                part.errors.push(e);
            }
        }
    }
    msgs.progress().inc(1);
    part
}

/// The repository walk: every repository's orphans into `found`. Returns
/// the digests the grace period holds, and whether a listing problem may
/// hide links.
fn walk_repos(
    store: &Store,
    refs: &LiveRefs,
    cfg: &Config,
    msgs: &Messages,
    stored: &Stored,
    found: &mut Found,
) -> anyhow::Result<(DigestSet, bool)> {
    msgs.progress()
        .start(Phase::new("listing repositories", ""), None);
    let repos = store.repositories();
    let mut hides_links = false;
    for e in repos.errors {
        hides_links |= may_hide_links(&e);
        msgs.error(e);
    }
    found.names = repos.items;
    // Sorted: a revision's repository index then orders it by name.
    found.names.sort_unstable();
    msgs.progress().start(
        Phase::new("looking at repositories", "repositories"),
        Some(found.names.len() as u64),
    );
    let mut held = DigestSet::new();
    let names = std::mem::take(&mut found.names);
    // A batch of repositories at a time: what their scans hold stays small.
    for (batch_no, batch) in names.chunks(REPO_BATCH).enumerate() {
        let scans: Vec<anyhow::Result<RepoScan>> = batch
            .par_iter()
            .map(|r| {
                let s = scan_repo(store, refs, cfg, stored, r);
                msgs.progress().inc(1);
                s
            })
            .collect();
        for (i, scan) in scans.into_iter().enumerate() {
            let mut scan = scan?;
            for e in std::mem::take(&mut scan.errors) {
                msgs.problem(e);
            }
            for w in std::mem::take(&mut scan.warnings) {
                msgs.warn(w);
            }
            hides_links |= scan.hides_links;
            for d in std::mem::take(&mut scan.held) {
                held.insert(d);
            }
            found.add_repo((batch_no * REPO_BATCH + i) as u32, &batch[i], scan);
        }
    }
    found.names = names;
    Ok((held, hides_links))
}

impl Found {
    /// One repository's orphans (`index`: its place in `names`).
    fn add_repo(&mut self, index: u32, repo: &str, scan: RepoScan) {
        self.too_young += scan.too_young;
        for r in &scan.revisions {
            self.revisions.push(index, r);
        }
        self.layer_links
            .extend(scan.layer_links.into_iter().map(|x| (repo.to_string(), x)));
        self.uploads
            .extend(scan.uploads.into_iter().map(|x| (repo.to_string(), x)));
        if scan.orphan_repo {
            self.repos.push(repo.to_string());
        }
    }

    /// In the order they are printed.
    fn sort(&mut self) {
        self.revisions.sort();
        self.layer_links
            .sort_unstable_by(|a, b| (&a.0, a.1.digest).cmp(&(&b.0, b.1.digest)));
        self.uploads
            .sort_unstable_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        self.repos.sort();
    }
}

/// Which blobs the blob walk found stored.
struct Stored<'a> {
    refs: &'a LiveRefs,
    /// Sorted by digest.
    candidates: &'a Blobs,
    /// Sorted.
    kept: &'a [Digest],
}

impl Stored<'_> {
    /// An unreferenced, old enough, stored blob: what may be reported.
    fn candidate(&self, d: &Digest) -> bool {
        self.candidates.contains(d)
    }

    fn contains(&self, d: &Digest) -> bool {
        self.refs.referenced_and_stored(d)
            || self.candidates.contains(d)
            || self.kept.binary_search(d).is_ok()
    }
}

/// The items of a listing; its errors go to `scan` (`links`: a listing of
/// link files, whose problems may hide young links).
fn take<T>(l: Listing<T>, scan: &mut RepoScan, links: bool) -> Vec<T> {
    for e in l.errors {
        scan.hides_links |= links && may_hide_links(&e);
        scan.errors.push(e);
    }
    l.items
}

/// A repository's aliases: `_layers` (and revision) link names and the
/// digests their links name, by name.
type AliasMap = HashMap<Digest, Vec<Digest>, Prehashed>;

/// The digests a reference to `d` makes the registry read here: the
/// targets of its aliases, or `d`.
fn read_as<'a>(aliases: &'a AliasMap, d: &'a Digest) -> &'a [Digest] {
    aliases.get(d).map_or(std::slice::from_ref(d), Vec::as_slice)
}

/// One repository's orphans. Revision and `_layers` digests come from the
/// names of their directories: a link file is looked at (one `stat`, never
/// opened) only where its age or existence changes the answer: an
/// unreferenced revision, a link to a candidate orphan blob or to a missing
/// blob, and the links of a repository that would otherwise be empty.
fn scan_repo(
    store: &Store,
    refs: &LiveRefs,
    cfg: &Config,
    stored: &Stored,
    repo: &str,
) -> anyhow::Result<RepoScan> {
    let mut w = RepoWalk {
        store,
        refs,
        cfg,
        stored,
        repo,
        scan: RepoScan::default(),
        keep_repo: false,
    };
    let l = w.list();
    let unreferenced_revs = w.unreferenced_revisions(l.revisions);
    w.hold_young(&unreferenced_revs, &l.tags, l.excluded, &l.aliases)?;
    let unlooked = w.layer_links(l.links, &l.layer_aliases);
    for u in l.uploads {
        if u.started_at.age(cfg.now) >= cfg.upload_age {
            w.scan.uploads.push(u);
        } else {
            w.keep_repo = true;
        }
    }
    // A young link keeps an otherwise empty repository.
    for d in unlooked {
        if w.keep_repo {
            break;
        }
        if w.link_age(paths::layer_link(repo, &d))
            .is_some_and(|m| !cfg.old_enough(m))
        {
            w.keep_repo = true;
        }
    }
    w.scan.orphan_repo = !w.keep_repo;
    Ok(w.scan)
}

/// One repository's scan in progress.
struct RepoWalk<'a> {
    store: &'a Store,
    refs: &'a LiveRefs,
    cfg: &'a Config,
    stored: &'a Stored<'a>,
    repo: &'a str,
    scan: RepoScan,
    /// Something keeps the repository (it is not an orphan).
    keep_repo: bool,
}

/// A repository's listings.
struct RepoListed {
    tags: Vec<crate::layout::Tag>,
    revisions: Vec<Digest>,
    links: Vec<Digest>,
    uploads: Vec<Upload>,
    /// Every alias by name, and the `_layers` ones.
    aliases: AliasMap,
    layer_aliases: AliasMap,
    /// The input excludes the repository (what-if).
    excluded: bool,
}

impl RepoWalk<'_> {
    /// Lists the repository; its problems go to the scan.
    fn list(&mut self) -> RepoListed {
        let (store, repo) = (self.store, self.repo);
        let tags = store.tags(repo);
        let revisions = store.revision_digests(repo);
        let links = store.layer_link_digests(repo);
        let uploads = store.uploads(repo);
        let alias_list = store.aliases(repo);
        // A repository with any listing problem is never reported as empty.
        self.keep_repo = !(tags.errors.is_empty()
            && revisions.errors.is_empty()
            && links.errors.is_empty()
            && uploads.errors.is_empty()
            && alias_list.errors.is_empty()
            && alias_list.items.is_empty());
        // What-if: an excluded repository's tags are as good as deleted; they
        // neither keep it nor hold anything.
        let excluded = self.refs.excluded.iter().any(|r| r == repo);
        self.keep_repo |= (!excluded && !tags.items.is_empty()) || self.refs.names_repo(repo);
        let scan = &mut self.scan;
        let mut listed = RepoListed {
            tags: take(tags, scan, true),
            revisions: take(revisions, scan, true),
            links: take(links, scan, true),
            uploads: take(uploads, scan, false),
            aliases: HashMap::default(),
            layer_aliases: HashMap::default(),
            excluded,
        };
        // Aliases: a link under sha384 or sha512 that names a sha256 blob (how
        // the registry stores a blob pushed under those), or a link under an
        // algorithm no tool knows, whose target is always kept. Such a link
        // that cannot be read names nothing the registry could serve.
        for a in alias_list.items {
            match a.name {
                crate::layout::LinkName::Digest(name) => {
                    listed.aliases.entry(name).or_default().push(a.target);
                    if a.kind == crate::layout::LinkKind::LayerLink {
                        listed.layer_aliases.entry(name).or_default().push(a.target);
                    }
                }
                crate::layout::LinkName::Unknown(_) => scan.held.push(a.target),
            }
        }
        for e in alias_list.errors {
            match e.kind() {
                ErrorKind::BadLink(_) => scan.warnings.push(format!("{e} (ignored: it names nothing)")),
                _ => {
                    scan.hides_links |= may_hide_links(&e);
                    scan.errors.push(e);
                }
            }
        }
        listed
    }

    /// The age of a link; `None` if it is gone (a directory without its link
    /// is no link). Problems are kept in the scan and hold what they concern.
    fn link_age(&mut self, rel: String) -> Option<SystemTime> {
        match self.store.link_mtime(&rel) {
            Ok(m) => {
                if let Some(m) = m.filter(|m| self.cfg.future(*m)) {
                    self.scan
                        .warnings
                        .push(future_warning(&self.store.display(&rel), m));
                }
                m
            }
            Err(e) => {
                self.scan.hides_links |= may_hide_links(&e);
                self.scan.errors.push(e);
                None
            }
        }
    }

    /// Live revisions need no look; the unreferenced ones, with their ages.
    fn unreferenced_revisions(&mut self, revisions: Vec<Digest>) -> Vec<Revision> {
        let mut out = Vec::new();
        for d in revisions {
            if self.refs.revision_live(self.repo, &d) {
                self.keep_repo = true;
            } else if let Some(mtime) = self.link_age(paths::revision_link(self.repo, &d)) {
                out.push(Revision {
                    digest: d,
                    mtime,
                    target: None,
                });
            }
        }
        out
    }

    /// Unreferenced revisions are orphans unless young or held. Roots of the
    /// grace closure: young revisions the input does not name, and tags the
    /// input does not name (pushed after reg-refs ran).
    fn hold_young(
        &mut self,
        unreferenced_revs: &[Revision],
        tags: &[crate::layout::Tag],
        excluded: bool,
        aliases: &AliasMap,
    ) -> anyhow::Result<()> {
        let (cfg, refs, repo) = (self.cfg, self.refs, self.repo);
        let unreferenced: HashMap<Digest, &Revision, Prehashed> =
            unreferenced_revs.iter().map(|r| (r.digest, r)).collect();
        let mut roots: Vec<Digest> = unreferenced_revs
            .iter()
            .filter(|r| !cfg.old_enough(r.mtime))
            .map(|r| r.digest)
            .collect();
        roots.extend(
            tags.iter()
                .filter(|t| !excluded && !refs.revision_live(repo, &t.digest))
                .map(|t| t.digest),
        );
        let held_revisions = hold(
            self.store,
            repo,
            roots,
            &unreferenced,
            aliases,
            &mut self.scan.held,
        )?;
        for r in unreferenced_revs {
            if !cfg.old_enough(r.mtime) {
                self.scan.held.push(r.digest);
            }
            if held_revisions.contains(&r.digest) {
                self.scan.too_young += 1;
                self.keep_repo = true;
            } else {
                self.scan.revisions.push(r.clone());
            }
        }
        Ok(())
    }

    /// `_layers` links to candidate or missing blobs: young ones hold their
    /// blobs, old ones to a missing blob are orphans. Returns the links not
    /// looked at.
    fn layer_links(&mut self, links: Vec<Digest>, layer_aliases: &AliasMap) -> Vec<Digest> {
        let mut unlooked = Vec::new();
        for d in links {
            // The blob this link serves: its target, for an alias.
            let blobs = read_as(layer_aliases, &d);
            let candidate = blobs.iter().any(|b| self.stored.candidate(b));
            let missing = blobs.iter().all(|b| !self.stored.contains(b));
            if !candidate && !missing {
                // Its age changes nothing, unless the repository is otherwise empty.
                unlooked.push(d);
                continue;
            }
            let Some(mtime) = self.link_age(paths::layer_link(self.repo, &d)) else {
                continue;
            };
            let young = !self.cfg.old_enough(mtime);
            if young {
                self.scan.held.push(d);
                self.scan.held.extend_from_slice(blobs);
                self.keep_repo = true;
            }
            if !missing {
                continue;
            }
            match (self.blob_there(blobs), young) {
                (false, true) => self.scan.too_young += 1,
                (false, false) => self.scan.layer_links.push(LayerLink {
                    digest: d,
                    mtime,
                    target: (blobs != [d]).then(|| blobs[0]),
                }),
                (true, _) => {}
            }
        }
        unlooked
    }

    /// Whether one of `blobs`, not seen in blobs/, is there after all:
    /// confirmed, so that a blob directory we could not list never makes
    /// its links look dangling.
    fn blob_there(&mut self, blobs: &[Digest]) -> bool {
        let mut there = false;
        for b in blobs {
            match self.store.blob_meta(b) {
                Ok(None) => {}
                Ok(Some(_)) => there = true,
                Err(e) => {
                    there = true;
                    self.scan.errors.push(e);
                }
            }
        }
        there
    }
}

/// Follows the manifests `roots` of `repo` (and, through them, any
/// unreferenced revision of `repo` they name), pushing every digest they
/// reference onto `held`. Returns the unreferenced revisions so held.
fn hold(
    store: &Store,
    repo: &str,
    roots: Vec<Digest>,
    unreferenced: &HashMap<Digest, &Revision, Prehashed>,
    aliases: &AliasMap,
    held: &mut Vec<Digest>,
) -> anyhow::Result<HashSet<Digest, Prehashed>> {
    let mut seen: HashSet<Digest, Prehashed> = HashSet::default();
    let mut stack = roots;
    while let Some(m) = stack.pop() {
        if !seen.insert(m) {
            continue;
        }
        held.push(m);
        // Through an alias the registry reads its target.
        let read = read_as(aliases, &m);
        if read != [m] {
            stack.extend_from_slice(read);
            continue;
        }
        // Missing data: the image is already broken, nothing more to hold.
        let Some(parsed) = store.manifest(&m).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "a recent manifest of {repo} cannot be followed, so what it references is unknown"
            ))
        })?
        else {
            continue;
        };
        for d in parsed.references() {
            held.push(d.digest);
            held.extend_from_slice(read_as(aliases, &d.digest));
            if unreferenced.contains_key(&d.digest) {
                stack.push(d.digest);
            }
        }
        // A child named through an alias is the manifest its link names.
        for c in parsed.children.iter().filter(|c| aliases.contains_key(&c.digest)) {
            stack.push(c.digest);
        }
    }
    Ok(seen
        .into_iter()
        .filter(|d| unreferenced.contains_key(d))
        .collect())
}

// ---- output ------------------------------------------------------------------

/// Prints every orphan — blobs, revisions, layer links, uploads,
/// repositories, each kind sorted — then the trailer, or, when the walk
/// reported errors (`msgs`), the error record in its place: a list from a
/// failed run is never taken for a complete one ([`Out::end`]).
pub fn write<W: Write>(found: &Found, out: &mut Out<W>, msgs: &Messages) -> std::io::Result<OrphansEnd> {
    for b in found.blobs.iter() {
        out.write(&OrphanRecord::Blob {
            digest: b.digest,
            size: b.size,
            mtime: Time(b.mtime),
        })?;
    }
    for r in found.revisions.iter() {
        out.write(&OrphanRecord::Revision {
            repo: found.names[r.repo as usize].clone(),
            digest: r.digest,
            mtime: Time(crate::time::from_unix_secs(r.secs, 0)),
        })?;
    }
    for (repo, l) in &found.layer_links {
        out.write(&OrphanRecord::LayerLink {
            repo: repo.clone(),
            digest: l.digest,
            mtime: Time(l.mtime),
        })?;
    }
    for (repo, u) in &found.uploads {
        out.write(&OrphanRecord::Upload {
            repo: repo.clone(),
            id: u.id.clone(),
            size: u.size,
            started_at: u.started_at,
        })?;
    }
    for repo in &found.repos {
        out.write(&OrphanRecord::Repo { repo: repo.clone() })?;
    }
    let end = found.trailer();
    out.end(&OrphanRecord::End(end.clone()), msgs)?;
    Ok(end)
}

/// The whole tool after argument parsing: reads all of `input`, walks,
/// prints. Nothing reaches `out` unless the input is complete and the walk
/// found nothing fatal.
pub fn run<W: Write>(
    store: &Store,
    input: impl BufRead,
    cfg: &Config,
    out: &mut Out<W>,
    msgs: &Messages,
) -> anyhow::Result<(OrphansEnd, InputStats)> {
    let refs = read_refs(input)?;
    if refs.stats.unknown > 0 {
        msgs.warn(format!(
            "{} input records of a kind this version does not know: every digest in them was kept",
            refs.stats.unknown
        ));
    }
    let found = find(store, &refs, cfg, msgs)?;
    let end = write(&found, out, msgs)?;
    Ok((end, refs.stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use std::fs;
    use std::path::Path;

    const HOUR: Duration = Duration::from_secs(3600);

    fn put(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn age(root: &Path, rel: &str, by: Duration) {
        let f = fs::File::options().write(true).open(root.join(rel)).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    fn blob(root: &Path, content: &[u8]) -> Digest {
        let d = Digest::sha256_of(content);
        put(root, &paths::blob_data(&d), content);
        d
    }

    fn link(root: &Path, rel: &str, d: &Digest) {
        put(root, rel, d.to_string().as_bytes());
    }

    /// A small image: config and layer blobs, the manifest blob, its
    /// revision and _layers links in `repo`, and a tag if given.
    struct Img {
        manifest: Digest,
        config: Digest,
        layer: Digest,
    }

    fn image(root: &Path, repo: &str, tag: Option<&str>, name: &str) -> Img {
        let config = blob(root, format!("{{\"config\":\"{name}\"}}").as_bytes());
        let layer = blob(root, format!("layer of {name}").as_bytes());
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#,
            crate::manifest::OCI_MANIFEST
        );
        let manifest = blob(root, m.as_bytes());
        link(root, &paths::revision_link(repo, &manifest), &manifest);
        link(root, &paths::layer_link(repo, &config), &config);
        link(root, &paths::layer_link(repo, &layer), &layer);
        if let Some(t) = tag {
            link(root, &paths::tag_current(repo, t), &manifest);
        }
        Img {
            manifest,
            config,
            layer,
        }
    }

    /// What reg-refs prints for one image, as root `kind` ("tag" or "revision").
    fn refs_of(repo: &str, img: &Img, root_kind: &str) -> String {
        let (m, c, l) = (img.manifest, img.config, img.layer);
        let root = if root_kind == "tag" {
            format!(r#"{{"kind":"tag","repo":"{repo}","tag":"t","digest":"{m}"}}"#)
        } else {
            format!(r#"{{"kind":"revision","repo":"{repo}","digest":"{m}"}}"#)
        };
        format!(
            "{root}\n{{\"kind\":\"config\",\"repo\":\"{repo}\",\"manifest\":\"{m}\",\"digest\":\"{c}\",\"size\":1}}\n\
             {{\"kind\":\"layer\",\"repo\":\"{repo}\",\"manifest\":\"{m}\",\"digest\":\"{l}\",\"size\":1}}\n"
        )
    }

    /// A reg-refs trailer without its root and true counts: [`fix_trailers`]
    /// fills them in, as reg-refs would have.
    const END: &str = r#"{"kind":"end","tool":"reg-refs","repos":1,"tags":1,"manifests":1,"references":2,"missing":0,"complete":true,"revisions":0}"#;

    /// Gives each reg-refs trailer in `input` that has no `root` the counts
    /// of the records before it and `root`: the input reg-refs would print.
    fn fix_trailers(input: &str, root: &str) -> String {
        let (mut tags, mut revs, mut refs) = (0, 0, 0);
        let mut out = String::new();
        for line in input.split_inclusive('\n') {
            let body = line.trim_end_matches(['\r', '\n']);
            let parsed: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(body).ok();
            match parsed {
                Some(mut m)
                    if m.get("kind").is_some_and(|k| k == "end")
                        && m.get("tool").is_some_and(|t| t == "reg-refs")
                        && !m.contains_key("root") =>
                {
                    m.insert("tags".into(), tags.into());
                    m.insert("revisions".into(), revs.into());
                    m.insert("references".into(), refs.into());
                    m.insert("root".into(), root.into());
                    out.push_str(&serde_json::to_string(&m).unwrap());
                    out.push_str(&line[body.len()..]);
                    continue;
                }
                Some(m) => match m.get("kind").and_then(|k| k.as_str()) {
                    Some("tag") => tags += 1,
                    Some("revision") => revs += 1,
                    Some("manifest" | "config" | "layer" | "referrer") => refs += 1,
                    _ => {}
                },
                None => {}
            }
            out.push_str(line);
        }
        out
    }

    fn read_fixed(input: &str) -> Result<LiveRefs, InputError> {
        read_refs(fix_trailers(input, "/r").as_bytes())
    }

    fn later(h: u32) -> Config {
        Config {
            min_age: HOUR,
            upload_age: 168 * HOUR,
            now: SystemTime::now() + HOUR * h,
        }
    }

    /// Runs the tool on `v2` with `input`: (records, stdout, errors reported).
    fn orphans(v2: &Path, input: &str, cfg: &Config) -> anyhow::Result<(Vec<serde_json::Value>, u64)> {
        let store = Store::fs(v2);
        let msgs = Messages::new("reg-orphans", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        let input = fix_trailers(input, &store.root_id());
        run(&store, input.as_bytes(), cfg, &mut out, &msgs)?;
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        let recs = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        Ok((recs, msgs.errors()))
    }

    /// A run that reports an error (here a tag directory that lost its
    /// `current/link`, as while a push or an untag is under way) exits 1
    /// and writes no trailer: the error record stands in its place, and
    /// reg-rm refuses the list, as reg-orphans refuses one without the
    /// reg-refs trailer.
    #[test]
    fn a_run_that_reports_an_error_writes_no_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "app", Some("t"), "one");
        let garbage = blob(v2, b"garbage");
        let input = format!("{}{END}\n", refs_of("app", &img, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(recs.last().unwrap()["kind"], "end");

        fs::remove_file(v2.join(paths::tag_current("app", "t"))).unwrap();
        link(
            v2,
            &paths::tag_index_entry("app", "t", &img.manifest),
            &img.manifest,
        );
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert!(errors > 0);
        assert!(of_kind(&recs, "end").is_empty(), "{recs:#?}");
        let last = recs.last().unwrap();
        assert_eq!(
            *last,
            serde_json::json!({"kind": "error", "tool": "reg-orphans", "errors": errors})
        );
        // What it printed before is still what an error keeps safe...
        assert_eq!(digests(&recs, "blob"), vec![garbage.to_string()]);
        // ...but no tool downstream acts on it.
        let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
        let e = crate::rm::parse_input(text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("reg-orphans failed") && e.contains("not complete"),
            "{e}"
        );
        assert!(e.contains(&format!("line {}", recs.len())), "{e}");
    }

    fn of_kind<'a>(recs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
        recs.iter().filter(|r| r["kind"] == kind).collect()
    }

    fn digests(recs: &[serde_json::Value], kind: &str) -> Vec<String> {
        let mut v: Vec<String> = of_kind(recs, kind)
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    fn sorted(ds: &[Digest]) -> Vec<String> {
        let mut v: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn reads_records_digests_and_the_trailer() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let input = format!(
            "{b}\n\n{{\"kind\":\"manifest\",\"repo\":\"x/y\",\"manifest\":\"{a}\",\"digest\":\"{c}\",\"extra\":[1]}}\r\n{END}\n\n"
        );
        let refs = read_fixed(&input).unwrap();
        for d in [a, b, c] {
            assert!(refs.blob_referenced(&d), "{d}");
        }
        assert!(refs.revision_live("x/y", &a));
        assert!(refs.revision_live("x/y", &c));
        assert!(!refs.revision_live("other", &a));
        // A bare digest keeps its revision in every repository.
        assert!(refs.revision_live("other", &b));
        assert!(refs.names_repo("x/y"));
        assert_eq!(refs.stats.records, 2);
        assert_eq!(refs.stats.bare_digests, 1);
        assert_eq!(refs.pair_count(), 2);
        assert_eq!(refs.blob_count(), 3);
    }

    #[test]
    fn a_trailer_that_does_not_describe_the_records_or_this_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        let full = fix_trailers(
            &format!("{}{END}\n", refs_of("r", &img, "tag")),
            &Store::fs(v2).root_id(),
        );
        let lines: Vec<&str> = full.lines().collect();
        let trailer = lines[lines.len() - 1];
        for (input, want) in [
            // A trailer alone (`reg-refs | tail -1`).
            (
                format!("{trailer}\n"),
                "disagree: it counts 1 tag records, the input holds 0",
            ),
            // A line cut out of the middle.
            (
                format!("{}\n{}\n{trailer}\n", lines[0], lines[2]),
                "it counts 2 reference records, the input holds 1",
            ),
            // Made on another root.
            (
                full.replace(&Store::fs(v2).root_id(), "/srv/other/v2"),
                "another storage root (/srv/other/v2)",
            ),
        ] {
            let store = Store::fs(v2);
            let msgs = Messages::new("reg-orphans", true);
            let mut out = Out::new(Vec::new(), Format::Json);
            let e = run(&store, input.as_bytes(), &later(1000), &mut out, &msgs).unwrap_err();
            assert!(e.to_string().contains(want), "{input}: {e}");
            assert!(out.into_inner().unwrap().is_empty());
        }
        // A trailer without root (by hand, or an older reg-refs).
        let e = read_refs(format!("{}\n{}\n", lines[0], trailer.replace("\"root\"", "\"rot\"")).as_bytes())
            .err()
            .unwrap();
        assert!(e.to_string().contains("without \"root\""), "{e}");
        // The same root through a symbolic link is this root.
        std::os::unix::fs::symlink(v2, dir.path().with_extension("alias")).unwrap();
        let alias = dir.path().with_extension("alias");
        let via = full.replace(&Store::fs(v2).root_id(), &alias.display().to_string());
        let (recs, errors) = orphans(v2, &via, &later(1000)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(recs.last().unwrap()["kind"], "end");
        std::fs::remove_file(alias).unwrap();
    }

    #[test]
    fn an_empty_blob_store_or_a_future_mtime_is_never_a_reason_to_collect() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        let orphan = blob(v2, b"orphan from the future");
        let year_2400 = SystemTime::UNIX_EPOCH + Duration::from_secs(13_569_465_600);
        fs::File::open(v2.join(paths::blob_data(&orphan)))
            .unwrap()
            .set_modified(year_2400)
            .unwrap();
        let input = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let cfg = Config {
            min_age: Duration::ZERO,
            ..later(0)
        };
        let store = Store::fs(v2);
        let msgs = Messages::new("reg-orphans", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        let fixed = fix_trailers(&input, &store.root_id());
        run(&store, fixed.as_bytes(), &cfg, &mut out, &msgs).unwrap();
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        assert!(!text.contains(&orphan.to_string()), "{text}");
        assert_eq!(msgs.warnings(), 1);

        fs::rename(v2.join("blobs"), v2.join("blobs.away")).unwrap();
        fs::create_dir(v2.join("blobs")).unwrap();
        let e = orphans(v2, &input, &cfg).unwrap_err();
        assert!(e.to_string().contains(crate::health::EMPTY_BLOB_STORE), "{e}");
    }

    #[test]
    fn refuses_incomplete_or_unreadable_input() {
        let d = Digest::sha256_of(b"d");
        let rec = format!(r#"{{"kind":"revision","repo":"r","digest":"{d}"}}"#);
        let table: Vec<(String, u64, &str)> = vec![
            (String::new(), 0, "no input"),
            ("\n\n".into(), 0, "no input"),
            (format!("{rec}\n"), 1, "without the reg-refs trailer"),
            // Cut in the middle of a line.
            (format!("{rec}\n{}", &rec[..20]), 2, "not a reference record"),
            (format!("{rec}\n{}", &END[..30]), 2, "not a reference record"),
            (
                format!("{rec}\nhello\n{END}\n"),
                2,
                "neither a JSON record nor a digest",
            ),
            (
                format!("{rec}\nsha256:abc\n{END}\n"),
                2,
                "neither a JSON record nor a digest",
            ),
            (
                format!("{rec}\n{{\"repo\":\"r\"}}\n{END}\n"),
                2,
                "missing field `kind`",
            ),
            (format!("{rec}\n[1]\n{END}\n"), 2, "neither"),
            (
                format!("{{\"kind\":\"error\",\"message\":\"boom\"}}\n{END}\n"),
                1,
                "an error record",
            ),
            (
                format!("{{\"kind\":\"layer\",\"repo\":\"r\",\"digest\":\"{d}\"}}\n{END}\n"),
                1,
                "without \"manifest\"",
            ),
            (
                format!("{{\"kind\":\"tag\",\"repo\":\"r\",\"digest\":\"sha256:00\"}}\n{END}\n"),
                1,
                "invalid digest",
            ),
            (
                format!("{{\"kind\":\"tag\",\"repo\":\"R/../x\",\"digest\":\"{d}\"}}\n{END}\n"),
                1,
                "invalid repository name",
            ),
            (
                format!("{END}\n{rec}\n"),
                2,
                "more input after the reg-refs trailer on line 1",
            ),
            (format!("{END}\n{END}\n"), 2, "more input after"),
            (
                format!(
                    "{rec}\n{}\n",
                    END.replace("\"complete\":true", "\"complete\":false")
                ),
                2,
                "--repo",
            ),
            (
                format!("{rec}\n{}\n", END.replace(",\"complete\":true", "")),
                2,
                "--repo",
            ),
            (
                format!("{rec}\n{}\n", END.replace("reg-refs", "reg-orphans")),
                2,
                "not from reg-refs",
            ),
            (format!("{rec}\n\u{0}\u{ff}\n{END}\n"), 2, "neither"),
        ];
        for (input, line, want) in table {
            let e = read_fixed(&input)
                .err()
                .unwrap_or_else(|| panic!("accepted {input:?}"));
            assert_eq!(e.line, line, "{input:?}: {e}");
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
        let e = read_refs(&b"\xff\xfe\n"[..]).err().unwrap();
        assert_eq!((e.line, e.why.as_str()), (1, "not valid UTF-8"));
    }

    #[test]
    fn unknown_kinds_keep_everything_they_name() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let input = format!(
            "{{\"kind\":\"future\",\"repo\":\"r\",\"digest\":\"{a}\"}}\n{{\"kind\":\"future\",\"manifest\":\"{b}\"}}\n{END}\n"
        );
        let refs = read_fixed(&input).unwrap();
        assert_eq!(refs.stats.unknown, 2);
        assert!(refs.blob_referenced(&a) && refs.blob_referenced(&b));
        assert!(refs.revision_live("r", &a));
        assert!(refs.revision_live("elsewhere", &b));
    }

    #[test]
    fn cut_input_prints_nothing_even_with_orphans_in_store() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        blob(v2, b"orphan");
        let full = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let (recs, errors) = orphans(v2, &full, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(of_kind(&recs, "blob").len(), 1);
        // Every cut of the input is refused, and nothing is printed.
        let lines: Vec<&str> = full.lines().collect();
        for n in 0..lines.len() {
            let cut = lines[..n].join("\n");
            let store = Store::fs(v2);
            let msgs = Messages::new("reg-orphans", true);
            let mut out = Out::new(Vec::new(), Format::Json);
            let r = run(&store, cut.as_bytes(), &later(2), &mut out, &msgs);
            assert!(r.is_err(), "cut after {n} lines accepted");
            assert!(out.into_inner().unwrap().is_empty());
        }
    }

    #[test]
    fn finds_every_kind_and_keeps_what_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let tagged = image(v2, "r", Some("t"), "tagged");
        let untagged = image(v2, "r", None, "untagged");
        let lone = blob(v2, b"uploaded, never referenced");
        link(v2, &paths::layer_link("r", &lone), &lone);
        // A _layers link whose blob is gone.
        let gone = Digest::sha256_of(b"gone");
        link(v2, &paths::layer_link("r", &gone), &gone);
        // A repository whose only manifest was deleted: links stay.
        let del = image(v2, "deleted/img", None, "deleted");
        fs::remove_file(v2.join(paths::revision_link("deleted/img", &del.manifest))).unwrap();
        // An empty repository.
        fs::create_dir_all(v2.join("repositories/empty/_manifests")).unwrap();
        // Stale uploads, with and without startedat, in a live repository.
        put(
            v2,
            "repositories/r/_uploads/u-1/startedat",
            b"2020-01-02T03:04:05Z",
        );
        put(v2, "repositories/r/_uploads/u-1/data", b"12345");
        fs::create_dir_all(v2.join("repositories/r/_uploads/u-2")).unwrap();

        let input = format!("{}{END}\n", refs_of("r", &tagged, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(200)).unwrap();
        assert_eq!(errors, 0);
        let mut want_blobs = vec![
            untagged.manifest,
            untagged.config,
            untagged.layer,
            lone,
            del.manifest,
            del.config,
            del.layer,
        ];
        want_blobs.sort();
        assert_eq!(digests(&recs, "blob"), sorted(&want_blobs));
        assert_eq!(digests(&recs, "revision"), sorted(&[untagged.manifest]));
        assert_eq!(of_kind(&recs, "revision")[0]["repo"], "r");
        assert_eq!(digests(&recs, "layer-link"), sorted(&[gone]));
        let ups: Vec<(&str, u64)> = of_kind(&recs, "upload")
            .iter()
            .map(|r| (r["id"].as_str().unwrap(), r["size"].as_u64().unwrap()))
            .collect();
        assert_eq!(ups, vec![("u-1", 5), ("u-2", 0)]);
        assert_eq!(of_kind(&recs, "upload")[0]["started_at"], "2020-01-02T03:04:05Z");
        let repos: Vec<&str> = of_kind(&recs, "repo")
            .iter()
            .map(|r| r["repo"].as_str().unwrap())
            .collect();
        assert_eq!(repos, vec!["deleted/img", "empty"]);
        // Sizes add up to the bytes freed; the trailer says the same.
        let end = recs.last().unwrap();
        assert_eq!(end["kind"], "end");
        assert_eq!(end["tool"], "reg-orphans");
        let sum: u64 = recs.iter().map(|r| r["size"].as_u64().unwrap_or(0)).sum();
        assert_eq!(
            sum,
            end["blob_bytes"].as_u64().unwrap() + end["upload_bytes"].as_u64().unwrap()
        );
        assert_eq!(end["blobs"], 7);
        assert_eq!(end["stored_blobs"], 10);
        assert_eq!(end["too_young"], 0);
        // Kind order, each sorted: the output is deterministic.
        let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        let mut k = kinds.clone();
        k.dedup();
        assert_eq!(k, vec!["blob", "revision", "layer-link", "upload", "repo", "end"]);
        assert_eq!(orphans(v2, &input, &later(200)).unwrap().0, recs);

        // With every revision as a root (reg-refs' default) the untagged
        // image is live, and so is its repository.
        let input = format!(
            "{}{}{END}\n",
            refs_of("r", &tagged, "tag"),
            refs_of("r", &untagged, "revision")
        );
        let (recs, _) = orphans(v2, &input, &later(200)).unwrap();
        assert_eq!(
            digests(&recs, "blob"),
            sorted(&[lone, del.manifest, del.config, del.layer])
        );
        assert!(of_kind(&recs, "revision").is_empty());
    }

    #[test]
    fn layer_links_are_reported_only_when_their_blob_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "live");
        // Referenced by the input, never stored: a broken image's link.
        let rgone = Digest::sha256_of(b"referenced, never stored");
        // Unreferenced: young and stored, old and stored, never stored.
        let young = blob(v2, b"unreferenced, young");
        let old = blob(v2, b"unreferenced, old");
        let gone = Digest::sha256_of(b"unreferenced, never stored");
        for d in [img.manifest, img.config, img.layer, old] {
            age(v2, &paths::blob_data(&d), 2 * HOUR);
        }
        for d in [img.config, img.layer, rgone, young, old, gone] {
            if ![img.config, img.layer].contains(&d) {
                link(v2, &paths::layer_link("r", &d), &d);
            }
            age(v2, &paths::layer_link("r", &d), 2 * HOUR);
        }
        age(v2, &paths::revision_link("r", &img.manifest), 2 * HOUR);
        let input = format!(
            "{}{{\"kind\":\"layer\",\"repo\":\"r\",\"manifest\":\"{}\",\"digest\":\"{rgone}\",\"size\":1}}\n{END}\n",
            refs_of("r", &img, "tag"),
            img.manifest
        );
        let (recs, errors) = orphans(v2, &input, &later(0)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "layer-link"), sorted(&[rgone, gone]));
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert_eq!(recs.last().unwrap()["stored_blobs"], 5);
        assert_eq!(recs.last().unwrap()["too_young"], 1);
    }

    #[test]
    fn sorted_sets_dedup_across_compactions() {
        let mut s: SortedSet<u32> = SortedSet::default();
        // Enough pushes to compact several times, each value many times.
        for round in 0..5u32 {
            for i in 0..70_000u32 {
                s.insert((i * 7919 + round) % 100_000);
            }
        }
        s.finish();
        let want: std::collections::BTreeSet<u32> = (0..5u32)
            .flat_map(|round| (0..70_000u32).map(move |i| (i * 7919 + round) % 100_000))
            .collect();
        assert_eq!(s.len(), want.len());
        assert!(want.iter().all(|k| s.contains(k)));
        assert!(!s.contains(&100_000));
        // Digest keys, indexed by their first two bytes.
        let mut d: SortedSet<u64> = SortedSet::default();
        let keys: Vec<u64> = (0..200_000u32)
            .map(|i| key(&Digest::sha256_of(&i.to_le_bytes())))
            .collect();
        for k in keys.iter().chain(&keys[..1000]) {
            d.insert(*k);
        }
        d.finish();
        assert_eq!(d.len(), keys.len());
        assert!(!d.index.is_empty());
        for (i, k) in keys.iter().enumerate().step_by(7) {
            assert_eq!(d.items[d.position(k).unwrap()], *k, "{i}");
        }
        assert!(!d.contains(&key(&Digest::sha256_of(b"absent"))));
        let bits = Bits::new(130);
        bits.set(129);
        bits.set(3);
        assert!(bits.get(129) && bits.get(3) && !bits.get(64) && !bits.get(128));
    }

    #[test]
    fn grace_period_keeps_fresh_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let fresh = blob(v2, b"fresh");
        let old = blob(v2, b"old");
        age(v2, &paths::blob_data(&old), 2 * HOUR);
        // An old blob with a fresh _layers link (a mount, a push in flight).
        let relinked = blob(v2, b"relinked");
        age(v2, &paths::blob_data(&relinked), 2 * HOUR);
        link(v2, &paths::layer_link("r", &relinked), &relinked);
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert_eq!(recs.last().unwrap()["too_young"], 2);
        // Nor is the repository holding the fresh link.
        assert!(of_kind(&recs, "repo").is_empty());
        // Two hours on, all three are.
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(3)).unwrap();
        assert_eq!(digests(&recs, "blob"), sorted(&[fresh, old, relinked]));
        assert_eq!(of_kind(&recs, "repo").len(), 1);
        // --min-age 0s reports everything now.
        let cfg = Config {
            min_age: Duration::ZERO,
            ..later(0)
        };
        let (recs, _) = orphans(v2, &format!("{END}\n"), &cfg).unwrap();
        assert_eq!(of_kind(&recs, "blob").len(), 3);
    }

    #[test]
    fn a_recent_untagged_manifest_keeps_its_old_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", None, "recent");
        for d in [img.manifest, img.config, img.layer] {
            age(v2, &paths::blob_data(&d), 2 * HOUR);
        }
        for d in [img.config, img.layer] {
            age(v2, &paths::layer_link("r", &d), 2 * HOUR);
        }
        // Only the revision link is fresh (pushed after reg-refs ran).
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "revision").is_empty());
        assert!(of_kind(&recs, "repo").is_empty());
        assert_eq!(recs.last().unwrap()["too_young"], 4);
        // Likewise a tag the input does not name, however old.
        age(v2, &paths::revision_link("r", &img.manifest), 2 * HOUR);
        link(v2, &paths::tag_current("r", "new"), &img.manifest);
        age(v2, &paths::tag_current("r", "new"), 2 * HOUR);
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert_eq!(recs.len(), 1, "{recs:?}");
        // A recent manifest that cannot be read stops the run.
        fs::remove_dir_all(v2.join("repositories/r/_manifests/tags")).unwrap();
        link(v2, &paths::revision_link("r", &img.manifest), &img.manifest);
        fs::write(v2.join(paths::blob_data(&img.manifest)), b"garbage").unwrap();
        let e = orphans(v2, &format!("{END}\n"), &later(0)).unwrap_err();
        assert!(format!("{e:#}").contains("does not hash"), "{e:#}");
    }

    #[test]
    fn compact_lists_keep_digest_order_with_sha512_entries() {
        let at = |s: i64| crate::time::from_unix_secs(s, 0);
        let long = |b: u8| Digest::Sha512([b; 64]);
        let short = |b: u8| Digest::Sha256([b; 32]);
        let mut revs = Revisions::default();
        for (repo, d, secs) in [
            (1, long(1), -5),
            (0, short(9), 7),
            (1, short(2), 3),
            (0, long(0), 1),
            (1, short(0), 2),
        ] {
            revs.push(
                repo,
                &Revision {
                    digest: d,
                    mtime: at(secs),
                    target: None,
                },
            );
        }
        revs.sort();
        let got: Vec<(u32, Digest, i64)> = revs.iter().map(|r| (r.repo, r.digest, r.secs)).collect();
        assert_eq!(
            got,
            vec![
                (0, short(9), 7),
                (0, long(0), 1),
                (1, short(0), 2),
                (1, short(2), 3),
                (1, long(1), -5)
            ]
        );
        let mut blobs = Blobs::default();
        for (d, secs) in [(long(3), -70), (short(5), 1), (short(1), 2)] {
            blobs.push(Blob {
                digest: d,
                size: secs as u64,
                mtime: at(secs),
            });
        }
        blobs.sort();
        let got: Vec<(Digest, SystemTime)> = blobs.iter().map(|b| (b.digest, b.mtime)).collect();
        assert_eq!(
            got,
            vec![(short(1), at(2)), (short(5), at(1)), (long(3), at(-70))]
        );
        assert!(blobs.contains(&long(3)) && blobs.contains(&short(5)) && !blobs.contains(&short(3)));
        blobs.retain(|d| *d != short(5));
        assert_eq!(blobs.len(), 2);
    }

    #[test]
    fn a_digest_sharing_its_first_bytes_with_a_referenced_one_is_kept() {
        // The referenced sets hold 8 bytes of each digest: a stored blob
        // whose digest starts like a referenced one must look referenced
        // (kept), never the referenced one look unreferenced.
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "one", Some("t"), "kept");
        let lone = blob(v2, b"unreferenced, but its first bytes are named");
        let stray = blob(v2, b"unreferenced");
        let mut twin = *lone.bytes().first_chunk::<32>().unwrap();
        twin[31] ^= 0xff;
        let twin = Digest::Sha256(twin);
        assert_ne!(twin, lone);
        let input = format!(
            "{}{{\"kind\":\"layer\",\"repo\":\"one\",\"manifest\":\"{}\",\"digest\":\"{twin}\",\"size\":1}}\n{END}\n",
            refs_of("one", &img, "tag"),
            img.manifest
        );
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "blob"), sorted(&[stray]));
    }

    #[test]
    fn a_blob_referenced_only_from_another_repository_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "one", Some("t"), "shared");
        // Repository "two" has links to the same blobs and nothing else.
        for d in [img.config, img.layer] {
            link(v2, &paths::layer_link("two", &d), &d);
        }
        let input = format!("{}{END}\n", refs_of("one", &img, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "layer-link").is_empty());
        // "two" holds no tag and no revision: the repository is an orphan,
        // but the blobs it links stay (another repository uses them).
        let repos: Vec<&str> = of_kind(&recs, "repo")
            .iter()
            .map(|r| r["repo"].as_str().unwrap())
            .collect();
        assert_eq!(repos, vec!["two"]);
        // A manifest revision live in one repository but not another.
        link(v2, &paths::revision_link("two", &img.manifest), &img.manifest);
        let (recs, _) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(digests(&recs, "revision"), sorted(&[img.manifest]));
        assert_eq!(of_kind(&recs, "revision")[0]["repo"], "two");
        assert!(of_kind(&recs, "blob").is_empty());
    }

    #[test]
    fn uploads_age_by_startedat_or_directory_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "x");
        let recent = humantime::format_rfc3339_seconds(SystemTime::now() - HOUR).to_string();
        put(v2, "repositories/r/_uploads/with/startedat", recent.as_bytes());
        fs::create_dir_all(v2.join("repositories/r/_uploads/without")).unwrap();
        // An upload alone in its repository keeps it while it is fresh.
        fs::create_dir_all(v2.join("repositories/new/_uploads/busy")).unwrap();
        let input = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let ids = |cfg: &Config| {
            let (recs, _) = orphans(v2, &input, cfg).unwrap();
            let mut ids: Vec<String> = of_kind(&recs, "upload")
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            ids.extend(
                of_kind(&recs, "repo")
                    .iter()
                    .map(|r| format!("repo {}", r["repo"])),
            );
            ids
        };
        let at = |h: u32, upload_h: u32| Config {
            upload_age: HOUR * upload_h,
            ..later(h)
        };
        assert!(ids(&at(0, 168)).is_empty());
        // startedat is an hour old; the directories are new.
        assert_eq!(ids(&at(0, 1)), vec!["with"]);
        assert_eq!(ids(&at(2, 1)), vec!["busy", "with", "without", "repo \"new\""]);
        let zero = Config {
            upload_age: Duration::ZERO,
            ..later(0)
        };
        assert_eq!(ids(&zero), vec!["busy", "with", "without", "repo \"new\""]);
        // An unreadable startedat is an error, and keeps the upload.
        put(v2, "repositories/new/_uploads/busy/startedat", b"yesterday");
        let (recs, errors) = orphans(v2, &input, &at(2, 1)).unwrap();
        assert_eq!(errors, 1);
        assert!(of_kind(&recs, "repo").is_empty());
        assert_eq!(of_kind(&recs, "upload").len(), 2);
    }

    #[test]
    fn listing_problems_keep_what_they_concern() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let old = blob(v2, b"unreferenced");
        // A garbled revision link is not opened here: it is the revision
        // its path names (reg-ls reads it and reports the disagreement; reg-rm
        // keeps a revision whose manifest is missing without --accept-broken).
        let d = Digest::sha256_of(b"whatever");
        put(v2, &paths::revision_link("r", &d), b"");
        let (recs, errors) = orphans(v2, &format!("{END}\n"), &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "revision"), sorted(&[d]));
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert!(Store::fs(v2).revisions("r").errors[0]
            .to_string()
            .contains("bad link file"));
        // A directory that cannot be read (a file where a directory should
        // be reads as one) may hide recent links: no blob is reported.
        fs::remove_dir_all(v2.join("repositories/r")).unwrap();
        put(
            v2,
            &format!("repositories/s/_layers/sha256/{}", old.hex()),
            b"not a directory",
        );
        let (recs, errors) = orphans(v2, &format!("{END}\n"), &later(2)).unwrap();
        assert!(errors >= 1, "{recs:?}");
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "repo").is_empty());
    }
}
