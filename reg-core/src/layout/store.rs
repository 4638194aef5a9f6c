//! The [`Store`]: a registry's storage, the layout on top of a
//! [`Backend`]: reading links, blobs and manifests (with the on-disk
//! manifest cache), and the inventory enumeration the tools walk.

use std::io::Read;
use std::time::SystemTime;

use rayon::prelude::*;

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{Area, Backend, Fs, Parts, Scanned, Stop};
use crate::time::Time;

use super::*;

/// The parts of the tree the tools scan whole, told to the backend
/// ([`Backend::plan`]), and where a listing of them may be cut.
pub const AREAS: [Area; 2] = [
    Area {
        prefix: paths::BLOBS,
        split: split_blobs,
    },
    Area {
        prefix: paths::REPOSITORIES,
        split: split_repositories,
    },
];

/// `blobs/` and `blobs/<alg>/`, not `blobs/<alg>/<xx>/` (whose children
/// are blob directories of one key each).
fn split_blobs(dir: &str) -> bool {
    dir.matches('/').count() <= 2
}

/// Any directory of `repositories/` but those whose children are digest
/// directories of one link each (`_layers/<alg>/`, `revisions/<alg>/`,
/// a tag's `index/<alg>/`).
fn split_repositories(dir: &str) -> bool {
    let mut parts = dir.trim_end_matches('/').rsplit('/');
    let (last, parent) = (parts.next(), parts.next());
    !(matches!(parent, Some("_layers" | "revisions" | "index"))
        && last.and_then(Algorithm::from_name).is_some())
}

/// How many repositories' listings [`Store::walk_by_repository`] holds for
/// a batch (and as many for the next): at 1M objects some 600 keys each.
pub const REPOSITORIES_HELD: usize = 64;

/// How many blob prefix directories [`Store::walk_by_blob_prefix`] holds
/// for a batch: at 1M objects some 1,700 blobs each.
pub const BLOB_PREFIXES_HELD: usize = 16;

/// `items` in batches of the items of `per` parts (`part_of` names an
/// item's): each batch's parts and where its items are. A run of items of
/// one part is never split; items out of order make a part come up again.
fn part_batches<'t, T>(
    items: &'t [T],
    per: usize,
    part_of: impl Fn(&'t T) -> String,
) -> Vec<(Vec<String>, std::ops::Range<usize>)> {
    let mut batches = Vec::new();
    let (mut start, mut parts) = (0, Vec::new());
    for (i, item) in items.iter().enumerate() {
        let part = part_of(item);
        if parts.last() == Some(&part) {
            continue;
        }
        if parts.len() == per.max(1) {
            batches.push((std::mem::take(&mut parts), start..i));
            start = i;
        }
        parts.push(part);
    }
    if !parts.is_empty() {
        batches.push((parts, start..items.len()));
    }
    batches
}

/// A manifest's bytes as read, `true` when from the manifest cache; `None`
/// when not there.
type ReadBytes = Option<(Vec<u8>, bool)>;

/// Parts of the tree held by [`Store::hold_blobs_in`] or
/// [`Store::hold_repositories`]; forgotten when dropped.
pub struct HeldParts<'a> {
    store: &'a Store,
    parts: Vec<String>,
}

impl Drop for HeldParts<'_> {
    fn drop(&mut self) {
        for part in &self.parts {
            self.store.backend.release_part(part);
        }
    }
}

/// A registry's storage: the layout on top of a [`Backend`].
pub struct Store {
    pub(super) backend: Box<dyn Backend>,
    /// Manifest bytes by digest (see [`Store::with_manifest_cache`]).
    manifest_cache: Option<crate::manifest_cache::ManifestCache>,
    /// Manifests found stored by [`Store::look_up_manifests`] (the first
    /// eight bytes of each digest), until [`Store::refresh`].
    stored_manifests: std::sync::RwLock<Option<crate::digest::SortedSet<u64>>>,
}

impl Store {
    pub fn new(backend: Box<dyn Backend>) -> Store {
        backend.plan(&AREAS);
        Store {
            backend,
            manifest_cache: None,
            stored_manifests: Default::default(),
        }
    }

    /// Keeps the bytes of every manifest read in `dir` (appended to packs
    /// by digest, each once), and reads them from there when the blob is
    /// still stored: manifests are immutable, so a second run on object
    /// storage reads only manifests it has not seen. Each is checked
    /// against its digest whichever way it came.
    /// Bounded to [`crate::manifest_cache::DEFAULT_BOUND`].
    pub fn with_manifest_cache(self, dir: impl Into<std::path::PathBuf>) -> Store {
        self.with_bounded_manifest_cache(dir, crate::manifest_cache::DEFAULT_BOUND)
    }

    /// [`Store::with_manifest_cache`] holding at most about `bound` bytes
    /// (see [`crate::manifest_cache`]).
    pub fn with_bounded_manifest_cache(mut self, dir: impl Into<std::path::PathBuf>, bound: u64) -> Store {
        self.manifest_cache = Some(crate::manifest_cache::ManifestCache::new(dir, bound));
        self
    }

    /// Whether a manifest read again costs no request to a remote store:
    /// the tree is local, or the manifest cache keeps what was read.
    pub fn rereads_manifests_locally(&self) -> bool {
        self.manifest_cache.is_some() || self.backend.dirs().is_some()
    }

    /// Forgets cached listings (see [`Backend::refresh`]).
    pub fn refresh(&self) {
        *self.stored_manifests.write().expect("stored manifests") = None;
        self.backend.refresh();
    }

    /// Forgets cached listings below `prefix` (see [`Backend::refresh_below`]).
    pub fn refresh_below(&self, prefix: &str) {
        self.backend.refresh_below(prefix);
    }

    /// The requests sent to a remote store so far, by kind (see
    /// [`Backend::requests`]): `57 requests: 52 LIST, 5 GET`.
    pub fn requests(&self) -> Option<String> {
        self.backend.requests().map(|r| r.summary())
    }

    /// The live request counters of a remote store (see [`Backend::requests`]).
    pub fn request_counts(&self) -> Option<std::sync::Arc<crate::storage::Requests>> {
        self.backend.requests()
    }

    /// A store on the filesystem `v2` directory.
    pub fn fs(v2: impl Into<std::path::PathBuf>) -> Store {
        Store::new(Box::new(Fs::new(v2)))
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The full path of `rel`, for messages.
    pub fn display(&self, rel: &str) -> std::path::PathBuf {
        self.backend.display(rel)
    }

    /// Reads a link file: `Ok(None)` if absent, an error naming the path if it
    /// is empty, too long, or not exactly a digest.
    pub fn read_link(&self, rel: &str) -> Result<Option<Digest>> {
        Ok(self.read_link_meta(rel)?.map(|(d, _)| d))
    }

    /// [`Store::read_link`] and the link file's mtime, from one open.
    pub fn read_link_meta(&self, rel: &str) -> Result<Option<(Digest, SystemTime)>> {
        self.read_link_expecting(rel, &[])
    }

    /// [`Store::read_link_meta`] for a link expected to name one of
    /// `expected` (see [`Backend::read_expecting`]: an object store then
    /// answers from its listing).
    fn read_link_expecting(&self, rel: &str, expected: &[Digest]) -> Result<Option<(Digest, SystemTime)>> {
        let texts: Vec<String> = expected.iter().map(|d| d.to_string()).collect();
        let texts: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        let Some((bytes, meta)) =
            self.backend
                .read_expecting(rel, LINK_LIMIT, &texts)
                .map_err(|e| match e.kind() {
                    // The one storage failure that says something of the link.
                    ErrorKind::TooLarge(_) => Error::new(
                        self.display(rel),
                        ErrorKind::BadLink("longer than any digest".into()),
                    ),
                    _ => e,
                })?
        else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::new(self.display(rel), ErrorKind::BadLink("not text".into())))?;
        if text.is_empty() {
            return Err(Error::new(self.display(rel), ErrorKind::BadLink("empty".into())));
        }
        Digest::parse(text)
            .map(|d| Some((d, meta.mtime)))
            .map_err(|e| Error::new(self.display(rel), ErrorKind::BadLink(e.to_string())))
    }

    /// Reads a blob's data, at most `limit` bytes; `None` if absent.
    pub fn read_blob(&self, d: &Digest, limit: u64) -> Result<Option<Vec<u8>>> {
        self.backend.read(&paths::blob_data(d), limit)
    }

    /// The manifest `d`: read (at most [`MANIFEST_LIMIT`] bytes), checked
    /// against its digest and parsed. The one manifest reader of the tools
    /// (with [`Store::manifests`], the same for many at once).
    /// `Ok(None)` if its data is missing (an image already broken); an error
    /// naming the path if it is there but too large, unreadable, not a
    /// manifest, or does not hash to `d`.
    pub fn manifest(&self, d: &Digest) -> Result<Option<crate::manifest::Manifest>> {
        let read = match self.cached_manifest(d)? {
            Some(bytes) => Some(bytes),
            None => self.read_blob(d, MANIFEST_LIMIT)?.map(|b| (b, false)),
        };
        self.checked_manifest(d, read)
    }

    /// [`Store::manifest`] of each of `ds`, answered in their order: those
    /// the cache has from there, the others read all at once
    /// ([`Backend::read_many`]: on object storage, as many GETs in flight
    /// as the store sustains).
    pub fn manifests(&self, ds: &[Digest]) -> Vec<Result<Option<crate::manifest::Manifest>>> {
        let mut found: Vec<Result<ReadBytes>> = ds.par_iter().map(|d| self.cached_manifest(d)).collect();
        let missed: Vec<usize> = (0..ds.len()).filter(|&i| matches!(found[i], Ok(None))).collect();
        let rels: Vec<String> = missed.iter().map(|&i| paths::blob_data(&ds[i])).collect();
        for (i, r) in missed
            .into_iter()
            .zip(self.backend.read_many(&rels, MANIFEST_LIMIT))
        {
            found[i] = r.map(|o| o.map(|b| (b, false)));
        }
        found
            .into_par_iter()
            .zip(ds.par_iter())
            .map(|(read, d)| self.checked_manifest(d, read?))
            .collect()
    }

    /// `d`'s bytes from the manifest cache (marked `true`), only while its
    /// blob is still stored (a deleted manifest is missing).
    fn cached_manifest(&self, d: &Digest) -> Result<ReadBytes> {
        match &self.manifest_cache {
            Some(c) if self.known_stored(d) || self.backend.stat(&paths::blob_data(d))?.is_some() => {
                Ok(c.read(d).map(|b| (b, true)))
            }
            _ => Ok(None),
        }
    }

    /// Before the manifests `ds` are read, with the manifest cache on and
    /// `blobs/` held a prefix directory at a time (a large bucket): looks
    /// up which are stored, a batch of prefix directories at a time, so
    /// that the cache's check that a manifest is still stored answers from
    /// here, not with a request each (issue 18). What is not found here
    /// (or could not be looked up) is asked of the store when read.
    ///
    /// Only the first eight bytes of each digest are kept: a manifest taken
    /// for another that shares them would be read from the cache though
    /// its data went, which keeps what it references (never the other way;
    /// see `digest::key`).
    pub fn look_up_manifests(&self, mut ds: Vec<Digest>) {
        if self.manifest_cache.is_none() || !self.backend.held_by_parts(paths::BLOBS) {
            return;
        }
        ds.sort_unstable();
        ds.dedup();
        let mut stored = crate::digest::SortedSet::default();
        self.walk_by_blob_prefix(
            &ds,
            |d| *d,
            |batch| {
                for d in batch {
                    if let Ok(Some(_)) = self.blob_meta(d) {
                        stored.insert(crate::digest::key(d));
                    }
                }
            },
        );
        stored.finish();
        *self.stored_manifests.write().expect("stored manifests") = Some(stored);
    }

    /// Whether [`Store::look_up_manifests`] found `d` stored (since the
    /// last [`Store::refresh`]); false says nothing.
    pub fn known_stored(&self, d: &Digest) -> bool {
        let stored = self.stored_manifests.read().expect("stored manifests");
        stored
            .as_ref()
            .is_some_and(|s| s.contains(&crate::digest::key(d)))
    }

    /// Checks and parses what was read of `d` (`true`: from the cache);
    /// bytes read from the store that are `d`'s are handed to the cache.
    fn checked_manifest(&self, d: &Digest, read: ReadBytes) -> Result<Option<crate::manifest::Manifest>> {
        let Some((bytes, cached)) = read else {
            return Ok(None);
        };
        let rel = paths::blob_data(d);
        let bad = |why: String| Error::new(self.display(&rel), ErrorKind::BadManifest(why));
        if !d.matches(&bytes) {
            return Err(bad(format!(
                "data does not hash to its digest (it hashes to {})",
                d.same_alg_of(&bytes)
            )));
        }
        let parsed = crate::manifest::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        match &self.manifest_cache {
            Some(c) if !cached => c.keep(d, bytes),
            _ => {}
        }
        Ok(Some(parsed))
    }

    /// Size and mtime of a blob's data file; `None` if absent.
    pub fn blob_meta(&self, d: &Digest) -> Result<Option<crate::storage::Meta>> {
        self.backend.stat(&paths::blob_data(d))
    }

    /// Re-hashes a blob's data: `Some(true)` if it matches its digest.
    pub fn verify_blob(&self, d: &Digest) -> Result<Option<bool>> {
        let rel = paths::blob_data(d);
        let Some(mut r) = self.backend.open(&rel)? else {
            return Ok(None);
        };
        let mut h = d.hasher();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(|e| Error::io(self.display(&rel), e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Some(h.finish() == *d))
    }

    /// Every repository name, sorted. A directory is a repository when it
    /// holds `_manifests`, `_layers` or `_uploads`; names nest, and a
    /// repository directory may hold child repositories next to its own `_`
    /// directories. Names that break the naming rules are errors, not items.
    pub fn repositories(&self) -> Listing<String> {
        let mut out = Listing::default();
        let mut repos = std::collections::BTreeSet::new();
        // Stop at a repository's own `_` directories; a path longer than
        // any repository name is not walked further.
        let stop = |rel: &str, _: usize| {
            rel.rsplit('/').next().is_some_and(|c| c.starts_with('_')) || rel.len() > 256
        };
        let scanned = self.scan(paths::REPOSITORIES, &stop, false, &mut |item| match item {
            Scanned::Prefix(key) => {
                let rel = &key[paths::REPOSITORIES.len() + 1..];
                match rel.rsplit_once('/') {
                    Some((name, "_manifests" | "_layers" | "_uploads")) => {
                        let new = repos.insert(name.to_string());
                        if let (true, Err(why)) = (new, check_repo_name(name)) {
                            out.push_err(Error::new(
                                self.display(&paths::repo(name)),
                                ErrorKind::BadName(why),
                            ));
                        }
                    }
                    _ if rel.len() > 256 => out.push_err(Error::new(
                        self.display(&key),
                        ErrorKind::BadName("path deeper than any repository name (255 characters)".into()),
                    )),
                    // Another `_` directory: not something the registry writes.
                    _ => {}
                }
            }
            Scanned::Problem(e) => out.push_err(e),
            Scanned::Object { .. } => {}
        });
        if let Err(e) = scanned {
            out.push_err(e);
        }
        out.items = repos.into_iter().filter(|r| check_repo_name(r).is_ok()).collect();
        out
    }

    /// A scan through the backend; see [`Backend::scan`].
    pub(super) fn scan(
        &self,
        prefix: &str,
        stop: Stop,
        meta: bool,
        visit: &mut dyn FnMut(Scanned),
    ) -> Result<bool> {
        self.backend.scan(prefix, stop, meta, visit)
    }

    /// Scans `dir` for `<alg>/<hex>/` directories, calling `f` for each
    /// valid digest; never looks inside them. Unknown algorithm
    /// directories, files where a digest directory belongs and malformed hex
    /// names are errors. Sorted by digest.
    fn digest_dirs(&self, dir: &str, mut f: impl FnMut(&str, Digest) -> Result<()>) -> Vec<Error> {
        let mut errors = Vec::new();
        let mut found: Vec<(Digest, String)> = Vec::new();
        let stop = |rel: &str, depth: usize| depth == 2 || Algorithm::from_name(rel).is_none();
        let scanned = self.scan(dir, &stop, false, &mut |item| match item {
            Scanned::Prefix(key) => {
                let rel = &key[dir.len() + 1..];
                match rel.split_once('/') {
                    None => errors.push(Error::new(self.display(&key), ErrorKind::UnknownAlgorithm)),
                    Some((alg, hex)) => match Algorithm::from_name(alg).map(|a| Digest::from_parts(a, hex)) {
                        Some(Ok(d)) => found.push((d, key)),
                        Some(Err(why)) => errors.push(Error::new(
                            self.display(&key),
                            ErrorKind::BadName(format!("not a digest directory: {why}")),
                        )),
                        None => {}
                    },
                }
            }
            // A file beside the algorithm directories is not looked at.
            Scanned::Object { key, .. } if key[dir.len() + 1..].contains('/') => {
                errors.push(Error::other(self.display(&key), "unexpected non-directory"))
            }
            Scanned::Object { .. } => {}
            Scanned::Problem(e) => errors.push(e),
        });
        if let Err(e) = scanned {
            errors.push(e);
        }
        found.sort();
        for (d, key) in found {
            if let Err(e) = f(&key, d) {
                errors.push(e);
            }
        }
        errors
    }

    /// Reads the link in a digest directory: its mtime, and what it names
    /// when that is not the directory's digest (an [`Alias`], which only a
    /// directory of another algorithm than sha256 can be: a sha256 link that
    /// names anything else is an error). `Ok(None)` if the directory has no
    /// link (deleted through the API).
    fn dir_link(&self, dir: &str, d: Digest) -> Result<Option<(SystemTime, Option<Digest>)>> {
        let rel = format!("{dir}/link");
        let Some((linked, mtime)) = self.read_link_expecting(&rel, &[d])? else {
            return Ok(None);
        };
        if linked == d {
            return Ok(Some((mtime, None)));
        }
        if d.algorithm() == Algorithm::Sha256 {
            return Err(Error::new(
                self.display(&rel),
                ErrorKind::BadLink(format!("names {linked}, but its directory is {d}")),
            ));
        }
        Ok(Some((mtime, Some(linked))))
    }

    /// The tags of `repo`, sorted by name. A tag directory without
    /// `current/link` is an error of kind [`ErrorKind::MissingLink`].
    pub fn tags(&self, repo: &str) -> Listing<Tag> {
        let names = self.tag_names(repo);
        let mut out = Listing {
            items: Vec::with_capacity(names.items.len()),
            errors: names.errors,
        };
        let index = if self.backend.capabilities().answers_from_listing {
            self.tag_indexes(repo)
        } else {
            Default::default()
        };
        for name in names.items {
            let link = paths::tag_current(repo, &name);
            let expected = index.get(&name).map_or(&[][..], |v| v.as_slice());
            match self.read_link_expecting(&link, expected) {
                Ok(Some((digest, mtime))) => out.items.push(Tag { name, digest, mtime }),
                Ok(None) => out.push_err(Error::new(self.display(&link), ErrorKind::MissingLink)),
                Err(err) => out.push_err(err),
            }
        }
        out
    }

    /// Every tag's `index/` entries (the manifests it has pointed at),
    /// from one scan and their names: what a tag's `current/link` is
    /// expected to name. Problems are left to the walks that list.
    fn tag_indexes(&self, repo: &str) -> std::collections::BTreeMap<String, Vec<Digest>> {
        let mut out: std::collections::BTreeMap<String, Vec<Digest>> = Default::default();
        for (tag, d) in self.tag_index_entries(repo).items {
            out.entry(tag).or_default().push(d);
        }
        out
    }

    /// The names of `repo`'s tags (its `tags/<tag>/` directories), sorted,
    /// without reading where they point.
    pub fn tag_names(&self, repo: &str) -> Listing<String> {
        self.dir_names(&paths::tags(repo), check_tag)
    }

    /// Every tag index entry of `repo` (`tags/<tag>/index/<alg>/<hex>/`),
    /// as (tag, digest) sorted, from directory names alone and in one scan:
    /// which tags once pointed at which manifests. No link is opened.
    pub fn tag_index_entries(&self, repo: &str) -> Listing<(String, Digest)> {
        let dir = paths::tags(repo);
        let mut out = Listing::default();
        // <tag> / index / <alg> / <hex>: stop at the digest directories, and
        // at anything else below a tag (its `current`).
        let stop = |rel: &str, depth: usize| match depth {
            1 => false,
            2 => !rel.ends_with("/index"),
            3 => rel.rsplit('/').next().and_then(Algorithm::from_name).is_none(),
            _ => true,
        };
        // A file where an entry's directory belongs is taken as an entry too
        // (so that removing the revision removes it).
        let scanned = self.scan(&dir, &stop, false, &mut |item| match item {
            Scanned::Prefix(key) | Scanned::Object { key, .. } => {
                let rel = &key[dir.len() + 1..];
                let mut parts = rel.split('/');
                let (Some(tag), Some("index"), Some(alg), hex, None) = (
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                ) else {
                    return; // a tag's `current`, or an unknown directory
                };
                let Some(hex) = hex else {
                    // The scan stops at an algorithm directory it does not know.
                    if check_tag(tag).is_ok() && Algorithm::from_name(alg).is_none() {
                        out.push_err(Error::new(self.display(&key), ErrorKind::UnknownAlgorithm));
                    }
                    return;
                };
                let parsed = check_tag(tag).and_then(|()| {
                    let alg = Algorithm::from_name(alg).ok_or("unknown digest algorithm directory")?;
                    Digest::from_parts(alg, hex).map_err(|why| format!("not a digest directory: {why}"))
                });
                match parsed {
                    Ok(d) => out.items.push((tag.to_string(), d)),
                    Err(why) => out.push_err(Error::new(self.display(&key), ErrorKind::BadName(why))),
                }
            }
            Scanned::Problem(e) => out.push_err(e),
        });
        if let Err(e) = scanned {
            out.push_err(e);
        }
        out.items.sort();
        out.items.dedup();
        out
    }

    /// The ids of `repo`'s uploads in progress, sorted, without looking in.
    pub fn upload_ids(&self, repo: &str) -> Listing<String> {
        self.dir_names(&paths::uploads(repo), check_upload_id)
    }

    /// The subdirectories of `dir` whose names pass `check`, sorted: the one
    /// listing prologue. A symbolic link is an error (never followed), so
    /// is a name that fails `check`; plain files are skipped.
    fn dir_names(&self, dir: &str, check: fn(&str) -> std::result::Result<(), String>) -> Listing<String> {
        let mut out = Listing::default();
        let scanned = self.scan(dir, &|_, _| true, false, &mut |item| match item {
            Scanned::Prefix(key) => {
                let name = &key[dir.len() + 1..];
                match check(name) {
                    Ok(()) => out.items.push(name.to_string()),
                    Err(why) => out.push_err(Error::new(self.display(&key), ErrorKind::BadName(why))),
                }
            }
            Scanned::Problem(e) => out.push_err(e),
            Scanned::Object { .. } => {}
        });
        if let Err(e) = scanned {
            out.push_err(e);
        }
        out.items.sort();
        out
    }

    /// The manifest revisions of `repo`, sorted by digest. A revision
    /// directory without `link` is no revision and is skipped silently.
    pub fn revisions(&self, repo: &str) -> Listing<Revision> {
        self.links_below(&paths::revisions(repo), |digest, mtime, target| Revision {
            digest,
            mtime,
            target,
        })
    }

    /// The `_layers` links of `repo`, sorted by digest.
    pub fn layer_links(&self, repo: &str) -> Listing<LayerLink> {
        self.links_below(&paths::layer_links(repo), |digest, mtime, target| LayerLink {
            digest,
            mtime,
            target,
        })
    }

    /// The `<alg>/<hex>/link` entries below `dir` (a repository's revisions
    /// or `_layers` links), each made by `make` from its digest, its link's
    /// mtime and what the link holds, sorted by digest. A directory without
    /// `link` is skipped silently.
    fn links_below<T>(
        &self,
        dir: &str,
        make: impl Fn(Digest, SystemTime, Option<Digest>) -> T,
    ) -> Listing<T> {
        let mut out = Listing::default();
        let mut items = Vec::new();
        out.errors = self.digest_dirs(dir, |at, d| {
            if let Some((mtime, target)) = self.dir_link(at, d)? {
                items.push((d, make(d, mtime, target)));
            }
            Ok(())
        });
        items.sort_by_key(|(d, _)| *d);
        out.items = items.into_iter().map(|(_, t)| t).collect();
        out
    }

    /// The digests of `repo`'s revision directories, sorted, from their
    /// names alone: no link file is opened. A directory whose `link` is gone
    /// (a manifest deleted through the API) is named too; ask
    /// [`Store::link_mtime`] where that matters. `reg-ls` ([`Store::revisions`])
    /// is where link files are read and checked against their path.
    pub fn revision_digests(&self, repo: &str) -> Listing<Digest> {
        self.digest_names(&paths::revisions(repo))
    }

    /// The digests of `repo`'s `_layers` links, sorted, from their names
    /// alone (see [`Store::revision_digests`]).
    pub fn layer_link_digests(&self, repo: &str) -> Listing<Digest> {
        self.digest_names(&paths::layer_links(repo))
    }

    /// The links of `repo` whose content names another digest than their
    /// path ([`Alias`]), sorted. Only links under algorithms other than
    /// sha256 are read: the registry writes a sha256 link with its own
    /// digest (its canonical one), and reads the others as aliases. A link
    /// under an algorithm no tool knows is read too, and is always an
    /// alias. Problems (an unreadable or garbled link) are errors.
    pub fn aliases(&self, repo: &str) -> Listing<Alias> {
        let mut out = Listing::default();
        for (kind, dir) in [
            (LinkKind::LayerLink, paths::layer_links(repo)),
            (LinkKind::Revision, paths::revisions(repo)),
        ] {
            let algs = self.dir_names(&dir, |_| Ok(()));
            out.errors.extend(algs.errors);
            for alg in algs.items.iter().filter(|a| *a != "sha256") {
                let alg_dir = format!("{dir}/{alg}");
                let names = self.dir_names(&alg_dir, |_| Ok(()));
                out.errors.extend(names.errors);
                for name in names.items {
                    let link = format!("{alg_dir}/{name}/link");
                    let link_name = match Algorithm::from_name(alg) {
                        Some(a) => match Digest::from_parts(a, &name) {
                            Ok(d) => LinkName::Digest(d),
                            // Reported by the walks that list digests.
                            Err(_) => continue,
                        },
                        None => LinkName::Unknown(format!("{alg}:{name}")),
                    };
                    match self.read_link_meta(&link) {
                        Ok(Some((target, mtime))) if LinkName::Digest(target) != link_name => {
                            out.items.push(Alias {
                                kind,
                                name: link_name,
                                target,
                                mtime,
                            })
                        }
                        Ok(_) => {}
                        Err(e) => out.push_err(e),
                    }
                }
            }
        }
        out.items
            .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        out
    }

    /// The revisions of `repo` whose `link` file exists, with its mtime:
    /// one `stat` per revision, and the digest taken from the path. A link
    /// whose content disagrees with its path counts as the revision its path
    /// names (which keeps that manifest; `reg-ls` reports the disagreement).
    pub fn revisions_by_name(&self, repo: &str) -> Listing<Revision> {
        let names = self.revision_digests(repo);
        let mut out = Listing {
            items: Vec::with_capacity(names.items.len()),
            errors: names.errors,
        };
        for d in names.items {
            match self.link_mtime(&paths::revision_link(repo, &d)) {
                Ok(Some(mtime)) => out.items.push(Revision {
                    digest: d,
                    mtime,
                    target: None,
                }),
                Ok(None) => {}
                Err(e) => out.push_err(e),
            }
        }
        out
    }

    /// The mtime of link file `rel`; `None` if it does not exist.
    pub fn link_mtime(&self, rel: &str) -> Result<Option<SystemTime>> {
        Ok(self.backend.stat(rel)?.map(|m| m.mtime))
    }

    fn digest_names(&self, dir: &str) -> Listing<Digest> {
        let mut items = Vec::new();
        let errors = self.digest_dirs(dir, |_, d| {
            items.push(d);
            Ok(())
        });
        items.sort();
        Listing { items, errors }
    }

    /// The uploads in progress in `repo`, sorted by id.
    pub fn uploads(&self, repo: &str) -> Listing<Upload> {
        let ids = self.upload_ids(repo);
        let mut out = Listing {
            items: Vec::with_capacity(ids.items.len()),
            errors: ids.errors,
        };
        for id in ids.items {
            match self.upload(repo, &id) {
                Ok(Some(u)) => out.items.push(u),
                Ok(None) => {}
                Err(err) => out.push_err(err),
            }
        }
        out
    }

    /// One upload; `None` if its directory is gone.
    pub fn upload(&self, repo: &str, id: &str) -> Result<Option<Upload>> {
        let rel = paths::upload_dir(repo, id);
        let Some(dir_meta) = self.backend.stat(&rel)? else {
            return Ok(None);
        };
        let size = self.backend.stat(&format!("{rel}/data"))?.map_or(0, |m| m.size);
        let started = format!("{rel}/startedat");
        let (started_at, has_startedat) = match self.backend.read(&started, LINK_LIMIT)? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let t = Time::parse(&text).map_err(|why| Error::other(self.display(&started), why))?;
                (t, true)
            }
            None => (Time(dir_meta.mtime), false),
        };
        Ok(Some(Upload {
            id: id.to_string(),
            size,
            started_at,
            has_startedat,
        }))
    }

    /// The blob directories to walk, one unit of parallel work each.
    pub fn blob_prefixes(&self) -> Listing<BlobPrefix> {
        let mut out = Listing::default();
        let stop = |rel: &str, depth: usize| depth == 2 || Algorithm::from_name(rel).is_none();
        let scanned = self.scan(paths::BLOBS, &stop, false, &mut |item| match item {
            Scanned::Prefix(key) => {
                let rel = &key[paths::BLOBS.len() + 1..];
                let Some((alg, prefix)) = rel.split_once('/') else {
                    out.push_err(Error::new(self.display(&key), ErrorKind::UnknownAlgorithm));
                    return;
                };
                let ok = prefix.len() == 2
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                match Algorithm::from_name(alg) {
                    Some(alg) if ok => out.items.push(BlobPrefix {
                        alg,
                        prefix: prefix.to_string(),
                    }),
                    _ => out.push_err(Error::new(
                        self.display(&key),
                        ErrorKind::BadName("not a two-hex-digit blob prefix directory".into()),
                    )),
                }
            }
            Scanned::Problem(e) => out.push_err(e),
            Scanned::Object { .. } => {}
        });
        if let Err(e) = scanned {
            out.push_err(e);
        }
        out.items
            .sort_by(|a, b| (a.alg, &a.prefix).cmp(&(b.alg, &b.prefix)));
        out
    }

    /// From now on `blobs/` is held one prefix directory at a time, those
    /// [`Store::hold_blobs_in`] holds, not listed whole (see
    /// [`crate::storage::Backend::list_by_parts`]): for a walk of the blob
    /// store that goes prefix by prefix. The filesystem has nothing to hold.
    pub fn list_blobs_by_prefix(&self) {
        self.backend.list_by_parts(paths::BLOBS, Parts::Depth(2));
    }

    /// From now on `repositories/` is held a repository at a time, those
    /// [`Store::hold_repositories`] holds, not listed whole: for a walk
    /// that goes repository by repository. [`Store::repositories`] then
    /// finds them with delimited listings, one a directory of names.
    pub fn list_repositories_by_repository(&self) {
        self.backend.list_by_parts(paths::REPOSITORIES, Parts::Repository);
    }

    /// Holds the listings of blob prefix directories `ps` (listed at once)
    /// until the returned guard drops (after
    /// [`Store::list_blobs_by_prefix`]). A listing that fails is not held:
    /// the next scan there lists again and reports the failure.
    pub fn hold_blobs_in(&self, ps: &[BlobPrefix]) -> HeldParts<'_> {
        self.hold(
            ps.iter()
                .map(|p| format!("{}/{}/{}", paths::BLOBS, p.alg.name(), p.prefix))
                .collect(),
        )
    }

    /// Holds the listings of repositories `names` (their own keys, not
    /// those of repositories nested in them; listed at once) until the
    /// returned guard drops (after
    /// [`Store::list_repositories_by_repository`]), as
    /// [`Store::hold_blobs_in`].
    pub fn hold_repositories(&self, names: &[String]) -> HeldParts<'_> {
        self.hold(names.iter().map(|n| format!("{}/_", paths::repo(n))).collect())
    }

    fn hold(&self, parts: Vec<String>) -> HeldParts<'_> {
        let results = self.backend.hold_parts(&parts);
        HeldParts {
            store: self,
            parts: parts
                .into_iter()
                .zip(results)
                .filter(|(_, r)| r.is_ok())
                .map(|(p, _)| p)
                .collect(),
        }
    }

    /// Calls `walk` on each batch of `items` (`size` at a time, with its
    /// number) while the listings `hold` takes for it are held. The next
    /// batch's are listed meanwhile, on a thread of their own, so that its
    /// LISTs are not waited for after this batch is walked; no batch's
    /// listings are held longer than its walk and the one before it. The
    /// first error of `walk` ends the walk.
    pub fn walk_held<'s, T: Sync, E>(
        &'s self,
        items: &[T],
        size: usize,
        hold: impl Fn(&[T]) -> HeldParts<'s> + Sync,
        mut walk: impl FnMut(usize, &[T]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let batches: Vec<&[T]> = items.chunks(size.max(1)).collect();
        let hold = &hold;
        std::thread::scope(|s| {
            let mut next = batches.first().map(|&b| s.spawn(move || hold(b)));
            for (i, &batch) in batches.iter().enumerate() {
                let held = next
                    .take()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                next = batches.get(i + 1).map(|&b| s.spawn(move || hold(b)));
                walk(i, batch)?;
                drop(held);
            }
            Ok(())
        })
    }

    /// Calls `walk` on `items` a batch at a time while the listings of the
    /// repositories the batch's items lie in are held (after
    /// [`Store::list_repositories_by_repository`]; the next batch's are
    /// listed meanwhile, as [`Store::walk_held`] does): a batch holds the
    /// items of [`REPOSITORIES_HELD`] repositories, never part of one's.
    /// Items sorted by repository have each held once.
    pub fn walk_by_repository<'t, T: Sync>(
        &self,
        items: &'t [T],
        repo_of: impl Fn(&'t T) -> &'t str,
        walk: impl FnMut(&[T]),
    ) {
        self.walk_by_parts(
            items,
            REPOSITORIES_HELD,
            |t| format!("{}/_", paths::repo(repo_of(t))),
            walk,
        );
    }

    /// `each` of `items`, in parallel within each batch of
    /// [`Store::walk_by_repository`]: the results in the items' order.
    pub fn map_by_repository<'t, T: Sync, R: Send>(
        &self,
        items: &'t [T],
        repo_of: impl Fn(&'t T) -> &'t str,
        each: impl Fn(&T) -> R + Sync + Send,
    ) -> Vec<R> {
        let mut out = Vec::with_capacity(items.len());
        self.walk_by_repository(items, repo_of, |batch| {
            out.par_extend(batch.par_iter().map(&each))
        });
        out
    }

    /// [`Store::walk_by_repository`] for items that name blobs: a batch
    /// holds the blob prefix directories of its digests
    /// ([`BLOB_PREFIXES_HELD`] of them; after [`Store::list_blobs_by_prefix`]).
    /// Items sorted by digest have each held once.
    pub fn walk_by_blob_prefix<'t, T: Sync>(
        &self,
        items: &'t [T],
        digest_of: impl Fn(&'t T) -> Digest,
        walk: impl FnMut(&[T]),
    ) {
        self.walk_by_parts(
            items,
            BLOB_PREFIXES_HELD,
            |t| paths::blob_prefix_dir(&digest_of(t)),
            walk,
        );
    }

    /// Walks `items` held, in the batches [`part_batches`] makes.
    fn walk_by_parts<'t, T: Sync>(
        &self,
        items: &'t [T],
        per: usize,
        part_of: impl Fn(&'t T) -> String,
        mut walk: impl FnMut(&[T]),
    ) {
        let batches = part_batches(items, per, part_of);
        let Ok(()) = self.walk_held(
            &batches,
            1,
            |b| self.hold(b[0].0.clone()),
            |_, b| {
                walk(&items[b[0].1.clone()]);
                Ok::<(), std::convert::Infallible>(())
            },
        );
    }

    /// The digests of the blob directories under one prefix directory,
    /// sorted, without looking inside them (no `stat` of `data`).
    pub fn blob_digests_in(&self, p: &BlobPrefix) -> Listing<Digest> {
        let mut out = Listing::default();
        let dir = format!("{}/{}/{}", paths::BLOBS, p.alg.name(), p.prefix);
        let scanned = self.scan(&dir, &|_, _| true, false, &mut |item| match item {
            Scanned::Prefix(key) => {
                let name = &key[dir.len() + 1..];
                match Digest::from_parts(p.alg, name) {
                    Ok(d) if name.starts_with(&p.prefix) => out.items.push(d),
                    Ok(_) => out.push_err(Error::new(
                        self.display(&key),
                        ErrorKind::BadName("blob directory under the wrong prefix".into()),
                    )),
                    Err(why) => out.push_err(Error::new(
                        self.display(&key),
                        ErrorKind::BadName(format!("not a blob directory: {why}")),
                    )),
                }
            }
            Scanned::Object { key, .. } => {
                out.push_err(Error::other(self.display(&key), "unexpected non-directory"))
            }
            Scanned::Problem(e) => out.push_err(e),
        });
        if let Err(e) = scanned {
            out.push_err(e);
        }
        out.items.sort();
        out
    }

    /// The blob `d` as stored: size and mtime of its `data` file. A blob
    /// directory without `data` is an error of kind [`ErrorKind::MissingData`];
    /// a `data` that is a symbolic link, a FIFO or a device is an error too
    /// (the backend's `stat` does not follow links).
    pub fn blob(&self, d: &Digest) -> Result<Option<Blob>> {
        let rel = paths::blob_dir(d);
        let data = format!("{rel}/data");
        match self.backend.stat(&data)? {
            Some(m) if !m.is_dir => Ok(Some(Blob {
                digest: *d,
                size: m.size,
                mtime: m.mtime,
            })),
            Some(_) => Err(Error::other(self.display(&data), "is a directory")),
            None if self.backend.stat(&rel)?.is_some() => {
                Err(Error::new(self.display(&rel), ErrorKind::MissingData))
            }
            None => Ok(None),
        }
    }

    /// The blobs under one prefix directory, sorted by digest.
    pub fn blobs_in(&self, p: &BlobPrefix) -> Listing<Blob> {
        let digests = self.blob_digests_in(p);
        let mut out = Listing {
            items: Vec::with_capacity(digests.items.len()),
            errors: digests.errors,
        };
        for d in digests.items {
            match self.blob(&d) {
                Ok(Some(b)) => out.items.push(b),
                Ok(None) => {}
                Err(e) => out.push_err(e),
            }
        }
        out
    }

    /// Every stored blob, walked in parallel (collects them all; for very
    /// large trees walk [`Store::blob_prefixes`] in chunks instead).
    pub fn blobs(&self) -> Listing<Blob> {
        let prefixes = self.blob_prefixes();
        let mut out = Listing {
            items: Vec::new(),
            errors: prefixes.errors,
        };
        let parts: Vec<Listing<Blob>> = prefixes.items.par_iter().map(|p| self.blobs_in(p)).collect();
        for p in parts {
            out.items.extend(p.items);
            out.errors.extend(p.errors);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// Each batch is walked once, in order, with its number, after its
    /// listings were taken; an error ends the walk (the batch after it may
    /// have been held already, never walked).
    #[test]
    fn walk_held_walks_each_batch_once_held_and_stops_at_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::fs(dir.path());
        let items: Vec<u32> = (0..8).collect();
        let holds = std::sync::Mutex::new(Vec::new());
        let hold = |b: &[u32]| {
            holds.lock().unwrap().push(b.to_vec());
            HeldParts {
                store: &store,
                parts: Vec::new(),
            }
        };
        let mut walked = Vec::new();
        let done: std::result::Result<(), &str> = store.walk_held(&items, 3, hold, |i, b| {
            assert!(holds.lock().unwrap().contains(&b.to_vec()), "held before walked");
            walked.push((i, b.to_vec()));
            Ok(())
        });
        assert_eq!(done, Ok(()));
        assert_eq!(walked, [(0, vec![0, 1, 2]), (1, vec![3, 4, 5]), (2, vec![6, 7])]);
        assert_eq!(holds.lock().unwrap().len(), 3, "each batch held once");
        holds.lock().unwrap().clear();
        let mut walks = 0;
        let done = store.walk_held(&items, 2, hold, |i, _| {
            walks += 1;
            if i == 1 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((done, walks), (Err("stop"), 2));
        assert!(
            holds.lock().unwrap().len() <= 3,
            "at most the next batch held ahead"
        );
    }

    #[test]
    fn items_are_batched_by_whole_parts() {
        let items = ["a", "a", "b", "c", "c", "c", "d", "a"];
        let batches = part_batches(&items, 2, |s| s.to_string());
        let shown: Vec<(Vec<&str>, std::ops::Range<usize>)> = batches
            .iter()
            .map(|(p, r)| (p.iter().map(String::as_str).collect(), r.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (vec!["a", "b"], 0..3),
                (vec!["c", "d"], 3..7),
                // Out of order: held again.
                (vec!["a"], 7..8),
            ]
        );
        assert!(part_batches(&[] as &[&str], 2, |s| s.to_string()).is_empty());
        let one: Vec<_> = part_batches(&items, 0, |s| s.to_string())
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(one, [0..2, 2..3, 3..6, 6..7, 7..8], "at least a part a batch");
    }

    #[test]
    fn walks_by_repository_and_blob_prefix_visit_every_item_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::fs(dir.path());
        let repos: Vec<String> = (0..(2 * REPOSITORIES_HELD + 3))
            .map(|i| format!("r{}", i / 2))
            .collect();
        let mut seen = Vec::new();
        store.walk_by_repository(
            &repos,
            |r| r,
            |b| {
                assert!(b.first() != seen.last(), "a repository in one batch");
                seen.extend_from_slice(b);
            },
        );
        assert_eq!(seen, repos);
        let mut ds: Vec<Digest> = (0..1000u32)
            .map(|i| Digest::sha256_of(&i.to_be_bytes()))
            .collect();
        ds.sort();
        let mut walked = Vec::new();
        let mut batches = 0;
        store.walk_by_blob_prefix(
            &ds,
            |d| *d,
            |b| {
                batches += 1;
                walked.extend_from_slice(b);
            },
        );
        assert_eq!(walked, ds);
        let mut prefixes: Vec<String> = ds.iter().map(paths::blob_prefix_dir).collect();
        prefixes.dedup();
        assert!(prefixes.len() > BLOB_PREFIXES_HELD);
        assert_eq!(batches, prefixes.len().div_ceil(BLOB_PREFIXES_HELD));
    }

    /// The registry's reference grammar, name by name: accepted, refused.
    #[test]
    fn repo_names() {
        let max_path = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        let max_domain = format!("{}.com/{}", "X".repeat(200), "a".repeat(50));
        let ok: &[&str] = &[
            "a",
            "0",
            "library/alpine",
            "org/team/app",
            "a-b",
            "a--b",
            "a---b",
            "a__b",
            "a_b",
            "a.b",
            "a.b.c",
            "0x1/y2",
            // The first component may be a domain: capitals, dots, hyphens
            // inside, a port (what the registry accepted and served here).
            "Upper/app",
            "MyReg.example.com/team/app",
            "localhost:5000/app",
            "a:1/b",
            "A-B.C-D:65536/x",
            "reg-1.example/x/y/z",
            "EXAMPLE/a_b/c",
            // v3: an IPv6 literal, with or without a port.
            "[::1]/app",
            "[fe80::1]:5000/a/b",
            "[ABCDEF:0123]/x",
            &"a".repeat(255),
            &max_path,
            &max_domain,
        ];
        for &name in ok {
            assert!(
                check_repo_name(name).is_ok(),
                "{name}: {:?}",
                check_repo_name(name)
            );
        }
        let refused = [
            "",
            "A",
            "Upper",
            "a/Upper",
            "a/B/c",
            "MyReg.example.com",
            "localhost:5000",
            "a/",
            "/a",
            "a//b",
            "//a",
            "-a",
            "a-",
            "a___b",
            "a..b",
            "a._b",
            "a.-b",
            "_a",
            "a/_b",
            "a/_manifests",
            "a b",
            "a/b c",
            "a/../b",
            "..",
            ".",
            "./a",
            "../a",
            "a/.",
            // Domains: no edge hyphen, no empty component, digits only
            // after ':', no underscore.
            "-Up/app",
            "Up-/app",
            "Up..x/app",
            ".Up/app",
            "Up./app",
            "Up:/app",
            "Up:x/app",
            "Up:1:2/app",
            "Up_x/app",
            "a:5000/B",
            "[]/app",
            "[::1/app",
            "::1]/app",
            "[::g]/app",
            "[::1]:/app",
            "[::1]x/app",
            "a\u{e9}/b",
            "\u{c9}x/b",
        ];
        for name in refused {
            assert!(check_repo_name(name).is_err(), "{name:?} accepted");
        }
        // 255 characters at most, domain included.
        assert!(check_repo_name(&"a".repeat(256)).is_err());
        let long = format!("{}.com/{}", "X".repeat(200), "a".repeat(51));
        assert_eq!(long.len(), 256);
        assert!(check_repo_name(&long).unwrap_err().contains("longer than 255"));
        // The message names the component and the grammar.
        let e = check_repo_name("a/Upper").unwrap_err();
        assert!(e.contains("\"Upper\"") && e.contains("[a-z0-9]+"), "{e}");
        let e = check_repo_name("Up_x/app").unwrap_err();
        assert!(e.contains("\"Up_x\"") && e.contains("domain"), "{e}");
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "..", "a b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    #[test]
    fn walks_a_small_tree() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        put(v2, &paths::blob_data(&a), "a");
        put(v2, &paths::blob_data(&b), "b");
        // a blob directory without data
        let c = Digest::sha256_of(b"c");
        fs::create_dir_all(v2.join(paths::blob_dir(&c))).unwrap();
        put(v2, &paths::tag_current("x/y", "v1"), &a.to_string());
        put(v2, &paths::revision_link("x/y", &a), &a.to_string());
        // a revision directory whose link is gone is no revision
        fs::create_dir_all(v2.join(paths::revision_dir("x/y", &b))).unwrap();
        put(v2, &paths::layer_link("x/y", &b), &b.to_string());
        // child repository next to a repository's own directories
        put(v2, &paths::layer_link("x/y/z", &b), &b.to_string());
        // a garbled link
        put(v2, &paths::tag_current("x/y", "broken"), "");
        put(
            v2,
            "repositories/x/y/_uploads/0000-11/startedat",
            "2024-01-02T03:04:05Z",
        );
        // a bad repository name
        put(v2, &paths::layer_link("Bad", &b), &b.to_string());

        let s = Store::fs(v2);
        let repos = s.repositories();
        assert_eq!(repos.items, vec!["x/y".to_string(), "x/y/z".to_string()]);
        assert_eq!(repos.errors.len(), 1, "{:?}", repos.errors);
        assert!(repos.errors[0].to_string().contains("Bad"));

        let tags = s.tags("x/y");
        assert_eq!(tags.items.len(), 1);
        assert_eq!(tags.items[0].digest, a);
        assert_eq!(tags.errors.len(), 1);
        assert!(
            tags.errors[0]
                .to_string()
                .contains("broken/current/link: bad link file: empty"),
            "{}",
            tags.errors[0]
        );

        let revs = s.revisions("x/y");
        assert_eq!(revs.items.iter().map(|r| r.digest).collect::<Vec<_>>(), vec![a]);
        assert!(revs.errors.is_empty());

        assert_eq!(s.layer_links("x/y/z").items.len(), 1);
        let ups = s.uploads("x/y");
        assert_eq!(ups.items.len(), 1);
        assert_eq!(ups.items[0].started_at.to_string(), "2024-01-02T03:04:05Z");

        let blobs = s.blobs();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(blobs.items.iter().map(|b| b.digest).collect::<Vec<_>>(), want);
        assert_eq!(blobs.errors.len(), 1);
        assert!(matches!(blobs.errors[0].kind(), ErrorKind::MissingData));
        assert_eq!(s.verify_blob(&a).unwrap(), Some(true));
        put(v2, &paths::blob_data(&b), "not b");
        assert_eq!(s.verify_blob(&b).unwrap(), Some(false));
    }

    /// The manifest cache: filled on the first read, used while the blob is
    /// stored, never trusted without its digest.
    #[test]
    fn manifest_cache_is_checked_and_follows_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let cache = dir.path().join("cache");
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let d = Digest::sha256_of(m);
        put(&v2, &paths::blob_data(&d), std::str::from_utf8(m).unwrap());
        let s = Store::fs(&v2).with_manifest_cache(&cache);
        assert!(s.manifest(&d).unwrap().is_some());
        // Written by the cache's own thread: there once it is flushed.
        let c = s.manifest_cache.as_ref().unwrap();
        c.flush();
        assert_eq!(c.read(&d).as_deref(), Some(&m[..]));
        // Read from the cache: the stored bytes may even be gone bad.
        fs::write(v2.join(paths::blob_data(&d)), b"garbage").unwrap();
        assert!(s.manifest(&d).unwrap().is_some());
        // An entry that does not hash to its digest is not used.
        let pack = fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
        let mut bytes = fs::read(&pack).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&pack, &bytes).unwrap();
        assert!(matches!(
            s.manifest(&d).unwrap_err().kind(),
            ErrorKind::BadManifest(_)
        ));
        // A blob no longer stored is missing, whatever the cache holds.
        c.keep(&d, m.to_vec());
        c.flush();
        assert_eq!(c.read(&d).as_deref(), Some(&m[..]));
        fs::remove_file(v2.join(paths::blob_data(&d))).unwrap();
        assert!(s.manifest(&d).unwrap().is_none());
    }

    /// Many manifests at once: each as [`Store::manifest`] says, in the
    /// order asked, from the cache or the store, checked either way.
    #[test]
    fn manifests_answer_each_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let cache = dir.path().join("cache");
        let m = |i: usize| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":{i}}},"layers":[]}}"#
            )
        };
        let ds: Vec<Digest> = (0..6).map(|i| Digest::sha256_of(m(i).as_bytes())).collect();
        for (i, d) in ds.iter().enumerate() {
            if i != 4 {
                put(&v2, &paths::blob_data(d), &m(i));
            }
        }
        // Item 3 stored bad; item 4 not stored.
        fs::write(v2.join(paths::blob_data(&ds[3])), b"garbage").unwrap();
        let check = |s: &Store| {
            let got = s.manifests(&ds);
            assert_eq!(got.len(), ds.len());
            for (i, g) in got.into_iter().enumerate() {
                match i {
                    3 => assert!(matches!(g.unwrap_err().kind(), ErrorKind::BadManifest(_))),
                    4 => assert!(g.unwrap().is_none()),
                    _ => assert_eq!(g.unwrap().unwrap().configs[0].size, Some(i as u64)),
                }
            }
        };
        check(&Store::fs(&v2));
        let s = Store::fs(&v2).with_manifest_cache(&cache);
        check(&s);
        s.manifest_cache.as_ref().unwrap().flush();
        // From the cache now: the good ones only, and a bad cache entry is
        // read from the store again.
        let c = s.manifest_cache.as_ref().unwrap();
        assert!(c.read(&ds[0]).is_some());
        assert!(c.read(&ds[3]).is_none());
        let pack = fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
        let mut bytes = fs::read(&pack).unwrap();
        let one = m(1);
        let at = bytes
            .windows(one.len())
            .position(|w| w == one.as_bytes())
            .unwrap();
        bytes[at + 5] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        check(&s);
        // Read from the store, it is kept again.
        c.flush();
        assert!(c.read(&ds[1]).is_some());
    }

    #[test]
    fn symlink_loop_in_repositories_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = Digest::sha256_of(b"b");
        put(dir.path(), &paths::layer_link("a", &b), &b.to_string());
        std::os::unix::fs::symlink("..", dir.path().join("repositories/a/loop")).unwrap();
        let repos = Store::fs(dir.path()).repositories();
        assert_eq!(repos.items, vec!["a".to_string()]);
        assert_eq!(repos.errors.len(), 1);
        assert!(
            repos.errors[0].to_string().contains("symbolic link"),
            "{}",
            repos.errors[0]
        );
    }

    #[test]
    fn names_give_digests_without_opening_links() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        // A link, a directory whose link is gone, and a link naming another digest.
        put(v2, &paths::revision_link("r", &a), &a.to_string());
        fs::create_dir_all(v2.join(paths::revision_dir("r", &b))).unwrap();
        put(v2, &paths::revision_link("r", &c), &a.to_string());
        put(v2, &paths::layer_link("r", &a), "");
        fs::create_dir_all(v2.join(paths::layer_link_dir("r", &b))).unwrap();
        let s = Store::fs(v2);
        let mut all = vec![a, b, c];
        all.sort();
        // The names alone: every directory, whatever its link says.
        assert_eq!(s.revision_digests("r").items, all);
        let mut ab = vec![a, b];
        ab.sort();
        assert_eq!(s.layer_link_digests("r").items, ab);
        // One stat each: a directory without its link is no revision; a link
        // naming another digest is the revision its path names (kept).
        let mut ac = vec![a, c];
        ac.sort();
        let by_name: Vec<Digest> = s.revisions_by_name("r").items.iter().map(|r| r.digest).collect();
        assert_eq!(by_name, ac);
        // Reading them (reg-ls) reports the disagreement and the empty link.
        let read = s.revisions("r");
        assert_eq!(read.items.iter().map(|r| r.digest).collect::<Vec<_>>(), vec![a]);
        assert!(matches!(read.errors[0].kind(), ErrorKind::BadLink(_)));
        let links = s.layer_links("r");
        assert!(links.items.is_empty());
        assert!(matches!(links.errors[0].kind(), ErrorKind::BadLink(_)));
        assert_eq!(s.link_mtime(&paths::revision_link("r", &b)).unwrap(), None);
        assert!(s.link_mtime(&paths::revision_link("r", &a)).unwrap().is_some());
    }

    #[test]
    fn tag_index_entries_come_from_names_in_one_scan() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        put(v2, &paths::tag_current("r", "v1"), &b.to_string());
        put(
            v2,
            &(paths::tag_index_entry("r", "v1", &a) + "/link"),
            &a.to_string(),
        );
        put(
            v2,
            &(paths::tag_index_entry("r", "v1", &b) + "/link"),
            &b.to_string(),
        );
        // An entry whose link is gone is still an entry (its directory).
        fs::create_dir_all(v2.join(paths::tag_index_entry("r", "v2", &a))).unwrap();
        // A file where the entry's directory belongs is an entry too.
        put(v2, &paths::tag_index_entry("r", "v3", &b), &b.to_string());
        // Not entries: a bad digest name, an unknown algorithm, a stray file.
        fs::create_dir_all(v2.join("repositories/r/_manifests/tags/v1/index/sha256/nothex")).unwrap();
        fs::create_dir_all(v2.join("repositories/r/_manifests/tags/v1/index/md5/x")).unwrap();
        put(v2, "repositories/r/_manifests/tags/v1/stray", "");
        let l = Store::fs(v2).tag_index_entries("r");
        let want: Vec<(String, Digest)> = vec![
            ("v1".into(), a),
            ("v1".into(), b),
            ("v2".into(), a),
            ("v3".into(), b),
        ];
        let mut want = want;
        want.sort();
        assert_eq!(l.items, want);
        // The unknown algorithm is said (a warning: it stops nothing).
        assert_eq!(l.errors.len(), 2, "{:?}", l.errors);
        assert!(
            l.errors[0].is_warning() && l.errors[0].to_string().contains("index/md5"),
            "{}",
            l.errors[0]
        );
        assert!(
            !l.errors[1].is_warning() && l.errors[1].to_string().contains("nothex"),
            "{}",
            l.errors[1]
        );
    }

    #[test]
    fn link_that_names_another_digest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        put(dir.path(), &paths::revision_link("r", &a), &b.to_string());
        let revs = Store::fs(dir.path()).revisions("r");
        assert!(revs.items.is_empty());
        assert_eq!(revs.errors.len(), 1);
        assert!(matches!(revs.errors[0].kind(), ErrorKind::BadLink(_)));
    }

    /// How the registry stores a blob pushed as `sha512:…` or `sha384:…`:
    /// under its sha256 digest, with links under the other algorithm that
    /// name it. Those are aliases, listed with their target; so is a link
    /// under an algorithm no tool knows. A sha512 link naming itself is not
    /// one; a garbled one is an error naming it.
    #[test]
    fn links_under_other_algorithms_are_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let data = b"pushed as sha512";
        let d = Digest::sha256_of(data);
        let zero = |alg: &str, n: usize| Digest::parse(&format!("{alg}:{}", "0".repeat(n))).unwrap();
        let d512 = zero("sha512", 128).same_alg_of(data);
        let d384 = zero("sha384", 96).same_alg_of(data);
        let own = zero("sha512", 128).same_alg_of(b"stored under sha512");
        for name in [d, d512, d384] {
            put(v2, &paths::layer_link("r", &name), &d.to_string());
        }
        put(v2, &paths::layer_link("r", &own), &own.to_string());
        put(v2, &paths::revision_link("r", &d512), &d.to_string());
        put(v2, "repositories/r/_layers/blake3/abc/link", &d.to_string());
        let s = Store::fs(v2);
        let aliases = s.aliases("r");
        assert!(aliases.errors.is_empty(), "{:?}", aliases.errors);
        let got: Vec<(LinkKind, String, Digest)> = aliases
            .items
            .iter()
            .map(|a| (a.kind, a.name.to_string(), a.target))
            .collect();
        let mut want = vec![
            (LinkKind::LayerLink, d384.to_string(), d),
            (LinkKind::LayerLink, d512.to_string(), d),
            (LinkKind::LayerLink, "blake3:abc".to_string(), d),
            (LinkKind::Revision, d512.to_string(), d),
        ];
        want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut got = got;
        got.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(got, want);
        assert_eq!(
            aliases.items[0].rel("r"),
            format!("repositories/r/_layers/{}/link", d384.path_parts())
        );

        // reg-ls: the registry's own links, with their targets; the unknown
        // algorithm a warning.
        let links = s.layer_links("r");
        let targets: Vec<(Digest, Option<Digest>)> =
            links.items.iter().map(|l| (l.digest, l.target)).collect();
        assert!(
            targets.contains(&(d512, Some(d)))
                && targets.contains(&(d, None))
                && targets.contains(&(own, None))
        );
        assert_eq!(links.errors.len(), 1, "{:?}", links.errors);
        assert!(links.errors[0].is_warning());

        put(v2, &paths::layer_link("r", &d512), "garbage");
        let aliases = s.aliases("r");
        assert!(aliases
            .errors
            .iter()
            .any(|e| matches!(e.kind(), ErrorKind::BadLink(_)) && e.to_string().contains(&d512.hex())));
    }

    /// Every symbolic link a listing meets is one error naming it; nothing
    /// behind a link is listed, even a directory outside the tree.
    #[test]
    fn every_listing_reports_symbolic_links() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let outside = dir.path().join("outside");
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        put(&v2, &paths::tag_current("r", "v1"), &a.to_string());
        put(&outside, "tags/evil/current/link", &a.to_string());
        put(&outside, "f", &a.to_string());
        put(&outside, "blob/data", "b");
        // Tags: a directory outside, a dangling one, a linked current/link.
        symlink(outside.join("tags/evil"), v2.join(paths::tag_dir("r", "out"))).unwrap();
        symlink("/nonexistent", v2.join(paths::tag_dir("r", "gone"))).unwrap();
        fs::create_dir_all(v2.join(paths::tag_dir("r", "lnk")).join("current")).unwrap();
        symlink(outside.join("f"), v2.join(paths::tag_current("r", "lnk"))).unwrap();
        // Revisions and _layers: a linked digest directory, a linked link.
        fs::create_dir_all(v2.join(paths::revisions("r")).join("sha256")).unwrap();
        symlink(&outside, v2.join(paths::revision_dir("r", &a))).unwrap();
        fs::create_dir_all(v2.join(paths::layer_link_dir("r", &a))).unwrap();
        symlink(outside.join("f"), v2.join(paths::layer_link("r", &a))).unwrap();
        // Uploads, repositories.
        fs::create_dir_all(v2.join(paths::uploads("r"))).unwrap();
        symlink(&outside, v2.join(paths::upload_dir("r", "u1"))).unwrap();
        symlink("r", v2.join("repositories/alias")).unwrap();
        // Blobs: a linked data file, a linked blob directory, a linked prefix
        // and algorithm directory.
        put(&v2, &paths::blob_data(&a), "a");
        fs::create_dir_all(v2.join(paths::blob_dir(&b))).unwrap();
        symlink(outside.join("blob/data"), v2.join(paths::blob_data(&b))).unwrap();
        let c = Digest::sha256_of(b"c");
        fs::create_dir_all(v2.join(paths::blob_dir(&c)).parent().unwrap()).unwrap();
        symlink(outside.join("blob"), v2.join(paths::blob_dir(&c))).unwrap();
        symlink(&outside, v2.join("blobs/sha256/zz")).unwrap();
        symlink(&outside, v2.join("blobs/sha512")).unwrap();

        let s = Store::fs(&v2);
        let is_link = |errs: &[Error], rel: &str| {
            errs.iter().any(|e| {
                matches!(e.kind(), ErrorKind::Symlink)
                    && e.path() == v2.join(rel)
                    && e.to_string().contains("symbolic link")
            })
        };
        let repos = s.repositories();
        assert_eq!(repos.items, ["r"]);
        assert!(is_link(&repos.errors, "repositories/alias"), "{:?}", repos.errors);

        let tags = s.tags("r");
        assert_eq!(
            tags.items.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["v1"]
        );
        for t in ["out", "gone"] {
            assert!(
                is_link(&tags.errors, &paths::tag_dir("r", t)),
                "{t}: {:?}",
                tags.errors
            );
        }
        assert!(
            is_link(&tags.errors, &paths::tag_current("r", "lnk")),
            "{:?}",
            tags.errors
        );
        assert_eq!(tags.errors.len(), 3, "{:?}", tags.errors);

        let revs = s.revisions("r");
        assert!(revs.items.is_empty());
        assert!(
            is_link(&revs.errors, &paths::revision_dir("r", &a)),
            "{:?}",
            revs.errors
        );
        let layers = s.layer_links("r");
        assert!(layers.items.is_empty());
        assert!(
            is_link(&layers.errors, &paths::layer_link("r", &a)),
            "{:?}",
            layers.errors
        );
        let ups = s.uploads("r");
        assert!(ups.items.is_empty());
        assert!(
            is_link(&ups.errors, &paths::upload_dir("r", "u1")),
            "{:?}",
            ups.errors
        );

        let blobs = s.blobs();
        assert_eq!(blobs.items.iter().map(|b| b.digest).collect::<Vec<_>>(), [a]);
        for rel in [
            paths::blob_data(&b),
            paths::blob_dir(&c),
            "blobs/sha256/zz".to_string(),
            "blobs/sha512".to_string(),
        ] {
            assert!(is_link(&blobs.errors, &rel), "{rel}: {:?}", blobs.errors);
        }
        assert_eq!(blobs.errors.len(), 4, "{:?}", blobs.errors);
    }
}
