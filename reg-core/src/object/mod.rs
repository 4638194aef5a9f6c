//! The object-storage backend: every object store (S3 and S3-compatible
//! stores, Azure Blob Storage, `object_store`'s in-memory store) behind one
//! [`ObjectBackend`] over an `Arc<dyn ObjectStore>`. A provider
//! ([`provider`]: [`s3`], [`azure`]) only reads its configuration and builds
//! its client; what follows is written once, here.
//!
//! The registry's own drivers walk a bucket like a filesystem: one
//! delimited list per "directory", one GET per link file. This backend
//! instead lists each area the layout names ([`crate::storage::Area`]) flat,
//! in as few pages as it holds and cut where its keys are ([`list`]), and
//! keeps the result: it answers every [`Backend::scan`] and
//! [`Backend::stat`] below `blobs/` and `repositories/` from one listing of
//! each, so a run costs about as many requests as the bucket has listing
//! pages, plus one GET per manifest and per link whose content the listing
//! cannot vouch for (see [`Backend::read_expecting`]: the content MD5 a
//! listing gives for an object written in one request).
//!
//! Listings are cached until [`Backend::refresh`]: reg-rm calls it before
//! each second look at the tree. Changes made through the backend update the
//! cache as they happen.
//!
//! Deletes go in batches (a DeleteObjects of up to 1,000 keys on S3, a batch
//! of 256 on Azure), several at once; `object_store` retries a request on
//! throttling (503) and on transient errors with exponential backoff, and
//! keys that one batch answer reports as failed are retried here the same
//! way. Every request is counted by kind ([`Requests`]); the tools print the
//! counts in their summary.
//!
//! Failures carry a [`Failure`] read from `object_store`'s error: not
//! found, permission (403, 401), transient (retries exhausted on
//! throttling, 5xx, a lost connection), other.
//!
//! `object_store`'s async API is driven by a tokio runtime the backend owns;
//! the tools' walks stay synchronous.

pub mod azure;
mod compact;
mod gets;
mod http;
pub mod inventory;
pub mod list;
pub mod provider;
pub mod s3;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use md5::Digest as _;
use object_store::list::PaginatedListStore;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};

use crate::error::{Error, Failure, Result};
use crate::storage::{Area, Backend, Capabilities, Meta, Parts, Requests, Scanned, Stop};
use compact::{Listing, Run, Spool, CHUNK};
use http::{Http, Md5s, ServerClock};
use list::{Convert, Failed, Lister, LIST_CONCURRENCY};
use provider::Provider;

pub use azure::AzureConfig;
pub use s3::S3Config;

/// At most this many batch delete requests in flight at once.
const DELETE_CONCURRENCY: usize = 4;

/// Keys per batch handed to `object_store` (S3's maximum; it cuts smaller
/// batches where the store wants them).
const DELETE_BATCH: usize = 1000;

/// Attempts for keys a batch delete answer reports as failed.
const DELETE_TRIES: u32 = 5;

/// How many names an error lists of what is stored next to a wrong prefix.
const LISTED_NAMES: usize = 20;

/// What `object_store`'s error says, as a [`Failure`]: its own kinds, and
/// for the rest the answer's status or a lost connection in its causes.
pub fn failure_of(e: &object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => return Failure::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => return Failure::Permission,
        _ => {}
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<object_store::client::HttpError>() {
            return Failure::Transient;
        }
        let text = c.to_string();
        if let Some(rest) = text.split("status code: ").nth(1) {
            if rest.starts_with('5') || rest.starts_with("429") {
                return Failure::Transient;
            }
            if rest.starts_with("403") || rest.starts_with("401") {
                return Failure::Permission;
            }
        }
        cause = c.source();
    }
    Failure::Other
}

// ---- the listing cache ---------------------------------------------------

/// One listed object.
#[derive(Clone, Debug)]
struct Obj {
    size: u64,
    mtime: SystemTime,
    /// The content's MD5, where the listing vouches for it.
    md5: Option<[u8; 16]>,
}

/// The listing of an area: every key below it, relative to `v2`, held
/// compactly ([`compact`]).
type Listed = Arc<RwLock<Listing>>;

/// A cached area, or why listing it failed.
type AreaListing = std::result::Result<Listed, (Failure, String)>;

/// The content MD5 a listed object's metadata vouches for.
type ContentMd5 = Box<dyn Fn(&object_store::ObjectMeta) -> Option<[u8; 16]> + Send + Sync>;

/// Where the listings come from: a provider's client, or a store handed
/// over whole (`InMemory`, for tests), and how keys are shown.
struct Source {
    store: Arc<dyn ObjectStore>,
    pages: Arc<dyn PaginatedListStore>,
    /// The bucket's URL, keys shown after it (`s3://bucket`).
    base: String,
    endpoint: Option<String>,
    http: Option<Http>,
    md5_of: ContentMd5,
}

/// An area's first page, listed before its listing is asked for.
struct Seed {
    objects: Vec<object_store::ObjectMeta>,
    /// The page was the whole area.
    whole: bool,
}

/// An area held a part at a time ([`Backend::list_by_parts`]) is listed
/// whole instead when its first page reaches past this many parts: its
/// parts hold less than half a page each, so listing them one by one would
/// take more requests than the area's pages, and the whole area is small
/// (at most 256 parts of half a page: ~128,000 keys of `blobs/`, ~6 MB).
const PARTS_IN_A_FIRST_PAGE: usize = 2;

/// Directories above the parts of an area held a part at a time listed
/// (with a delimiter, [`LIST_CONCURRENCY`] in flight) before what they
/// hold is looked at: bounds what is held of a level with many (the
/// repositories of a flat namespace).
const ABOVE_PARTS_AT_ONCE: usize = 256;

/// A scan above the parts of an area held a part at a time
/// ([`ObjectBackend::scan_above_parts`]): what it was asked.
#[derive(Clone, Copy)]
struct AboveParts<'a> {
    prefix: &'a str,
    stop: Stop<'a>,
    meta: bool,
}

/// Test hook: with `REG_TEST_BY_PARTS` set, an area asked to be held by
/// parts ([`Backend::list_by_parts`]) is, however small its first page
/// says it is: the end-to-end tests run reg-orphans that way on a small
/// registry, then pull every image.
#[cfg(feature = "test-hooks")]
pub const BY_PARTS_ENV: &str = "REG_TEST_BY_PARTS";

/// The object-storage backend, rooted at a registry's `v2` prefix.
pub struct ObjectBackend {
    rt: tokio::runtime::Runtime,
    src: Source,
    /// `<root>/docker/registry/v2`
    v2: String,
    /// The areas the layout will scan ([`Backend::plan`]).
    plan: RwLock<Vec<Area>>,
    /// Areas held a part at a time, and how they are cut into parts
    /// ([`Backend::list_by_parts`]).
    by_parts: RwLock<Vec<(&'static str, Parts)>>,
    /// The parts held now ([`Backend::hold_part`]).
    parts: Mutex<HashMap<String, Listed>>,
    /// Where the parts listed are kept after their release, spooled
    /// ([`Backend::keep_parts`]); `None` while they are forgotten.
    kept: Mutex<Option<Arc<Spool>>>,
    /// Why keeping parts stopped (the temporary file could not take more).
    kept_stopped: Mutex<Option<String>>,
    /// The delimited listings above the parts (one a directory), kept until
    /// anything is written or deleted, or [`Backend::refresh`]: a run that
    /// finds the repositories twice (reg-rm) lists them once, as a whole
    /// area's listing is kept.
    above: Mutex<HashMap<String, Arc<object_store::ListResult>>>,
    areas: Mutex<BTreeMap<&'static str, AreaListing>>,
    /// First pages listed by [`ObjectBackend::check_root`], kept for the
    /// areas' listings.
    seeds: Mutex<BTreeMap<&'static str, Seed>>,
    /// Held while an area is listed, so that two threads do not list it twice.
    listing: Mutex<()>,
    /// The provider, for a client of another bucket of the same store (an
    /// inventory report's); `None` for a store handed over whole.
    provider: Option<Arc<dyn Provider>>,
    /// The manifest of the inventory report the listings came from, until
    /// [`Backend::refresh`] (see [`ObjectBackend::use_inventory`]).
    inventory: Mutex<Option<String>>,
    /// How many GETs of [`Backend::read_many`] are in flight ([`gets`]).
    gets: Mutex<gets::Concurrency>,
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBackend")
            .field("root", &self.display(""))
            .finish()
    }
}

/// A client of `provider`'s store, for writing to it (the tests' and the
/// benchmark's uploads); requests go through the same HTTP layer, uncounted.
pub fn client(provider: Arc<dyn Provider>) -> Result<Arc<dyn ObjectStore>> {
    let shown = provider.base_url();
    provider
        .connect(Http::new(provider.clone()))
        .map(|c| c.store)
        .map_err(|why| Error::other(shown, why))
}

/// The 16 bytes of 32 hex digits.
pub fn md5_from_hex(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    md5::Md5::digest(bytes).into()
}

fn meta_of(o: &Obj) -> Meta {
    Meta {
        size: o.size,
        mtime: o.mtime,
        is_dir: false,
    }
}

fn runtime(shown: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("reg-object")
        .enable_all()
        .build()
        .map_err(|e| Error::io(shown, e))
}

impl ObjectBackend {
    /// Connects to `provider`'s store (lazily: nothing is sent before the
    /// first request).
    pub fn connect(provider: Arc<dyn Provider>) -> Result<ObjectBackend> {
        let v2 = provider.v2_prefix();
        let shown = format!("{}/{v2}", provider.base_url());
        let rt = runtime(&shown)?;
        let http = Http::new(provider.clone());
        let connected = provider
            .connect(http.clone())
            .map_err(|why| Error::other(&shown, why))?;
        let p = provider.clone();
        Ok(ObjectBackend {
            rt,
            src: Source {
                store: connected.store,
                pages: connected.pages,
                base: provider.base_url(),
                endpoint: provider.endpoint(),
                http: Some(http),
                md5_of: Box::new(move |m| p.content_md5(m)),
            },
            v2,
            plan: RwLock::default(),
            by_parts: RwLock::default(),
            parts: Mutex::default(),
            kept: Mutex::default(),
            kept_stopped: Mutex::default(),
            above: Mutex::default(),
            areas: Mutex::default(),
            seeds: Mutex::default(),
            listing: Mutex::default(),
            provider: Some(provider),
            inventory: Mutex::default(),
            gets: Mutex::default(),
        })
    }

    /// A backend over `store` as it is (`object_store`'s `InMemory`, in
    /// tests): shown as `memory://`, no requests counted, no server clock.
    pub fn over(store: Arc<dyn ObjectStore>, root: &str) -> Result<ObjectBackend> {
        let v2 = provider::v2_prefix(root);
        Ok(ObjectBackend {
            rt: runtime("memory://")?,
            src: Source {
                pages: Arc::new(list::ListAll(store.clone())),
                store,
                base: "memory://".into(),
                endpoint: None,
                http: None,
                md5_of: Box::new(|_| None),
            },
            v2,
            plan: RwLock::default(),
            by_parts: RwLock::default(),
            parts: Mutex::default(),
            kept: Mutex::default(),
            kept_stopped: Mutex::default(),
            above: Mutex::default(),
            areas: Mutex::default(),
            seeds: Mutex::default(),
            listing: Mutex::default(),
            provider: None,
            inventory: Mutex::default(),
            gets: Mutex::default(),
        })
    }

    fn md5s(&self) -> Option<&Md5s> {
        self.src.http.as_ref().map(|h| &*h.md5s)
    }

    fn clock(&self) -> Option<&ServerClock> {
        self.src.http.as_ref().map(|h| &*h.clock)
    }

    fn obj_of(&self, m: &object_store::ObjectMeta) -> Obj {
        let md5 = match self.md5s().and_then(|s| s.take(m.location.as_ref())) {
            Some(h) => Some(h),
            None => (self.src.md5_of)(m),
        };
        Obj {
            size: m.size,
            mtime: SystemTime::from(m.last_modified),
            md5,
        }
    }

    /// Refuses a prefix that holds nothing of a registry: neither
    /// `repositories/` nor `blobs/` below `<rootdirectory>/docker/registry/v2`
    /// (a wrong bucket, prefix or `rootdirectory`). Listed as it is, such a
    /// prefix would be a registry with nothing in it, and every tool would
    /// say so with status 0. The error names the prefix and what is stored
    /// one level up from the rootdirectory, where a typo shows. One LIST
    /// per area the layout named (their first pages, kept for their
    /// listings: on a small registry, all of it); one more when refusing.
    pub fn check_root(&self) -> Result<()> {
        if self.inventory.lock().expect("inventory").is_some() {
            // The listings came from a report: nothing to LIST.
            return self.check_root_from_report();
        }
        let areas: Vec<&'static str> = self.plan.read().expect("plan").iter().map(|a| a.prefix).collect();
        type First = std::result::Result<(&'static str, Seed), Failed>;
        let convert = |m: &object_store::ObjectMeta| self.entry(m);
        let lister = self.lister(&convert);
        let firsts: Vec<First> = self.rt.block_on(
            futures::stream::iter(areas)
                .map(|a| {
                    let lister = &lister;
                    async move {
                        let prefix = format!("{}/{a}/", self.v2);
                        let (objects, whole) = lister.first_page(&prefix).await?;
                        Ok((a, Seed { objects, whole }))
                    }
                })
                .buffer_unordered(LIST_CONCURRENCY)
                .collect(),
        );
        let mut found = false;
        for f in firsts {
            let (a, seed) = f.map_err(|f| Error::storage(self.display(""), f.failure, f.message))?;
            found |= !seed.objects.is_empty();
            self.seeds.lock().expect("seeds").insert(a, seed);
        }
        if found {
            return Ok(());
        }
        self.nothing_here()
    }

    /// The error for a prefix that holds nothing of a registry, naming
    /// what is stored one level up (one delimited LIST there).
    fn nothing_here(&self) -> Result<()> {
        let root = self
            .v2
            .strip_suffix("docker/registry/v2")
            .unwrap_or(&self.v2)
            .trim_end_matches('/');
        let up = root.rsplit_once('/').map_or("", |(parent, _)| parent);
        let up_key = (!up.is_empty()).then(|| Key::from(up));
        let shown_up = if up.is_empty() {
            format!("{}/", self.src.base)
        } else {
            format!("{}/{up}/", self.src.base)
        };
        let there = match self
            .rt
            .block_on(self.src.store.list_with_delimiter(up_key.as_ref()))
        {
            Ok(l) => {
                let mut names: Vec<String> = l
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(|n| format!("{n}/")))
                    .chain(
                        l.objects
                            .iter()
                            .filter_map(|o| o.location.filename().map(str::to_string)),
                    )
                    .collect();
                names.sort();
                match names.len() {
                    0 => format!("{shown_up} holds nothing"),
                    n if n <= LISTED_NAMES => format!("{shown_up} holds {}", names.join(", ")),
                    n => format!(
                        "{shown_up} holds {} and {} more",
                        names[..LISTED_NAMES].join(", "),
                        n - LISTED_NAMES
                    ),
                }
            }
            Err(e) => format!("{shown_up} cannot be listed either: {e}"),
        };
        Err(self.err(
            "",
            format!(
                "nothing of a registry is stored here: no repositories/ and no blobs/ (a wrong bucket, \
                 prefix or rootdirectory, or a registry that has stored nothing yet?); one level up, {there}"
            ),
        ))
    }

    /// One GET of `rel`, at most `limit` bytes; `None` if it is not there.
    async fn get(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        let got = match self.src.store.get(&self.key(rel)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_err(rel, &e)),
        };
        let meta = meta_of(&self.obj_of(&got.meta));
        let too_large = || Error::new(self.display(rel), crate::error::ErrorKind::TooLarge(limit));
        if got.meta.size > limit {
            return Err(too_large());
        }
        let bytes = got.bytes().await.map_err(|e| self.store_err(rel, &e))?;
        if bytes.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(Some((bytes.to_vec(), meta)))
    }

    fn key(&self, rel: &str) -> Key {
        if rel.is_empty() {
            Key::from(self.v2.as_str())
        } else {
            Key::from(format!("{}/{rel}", self.v2))
        }
    }

    /// `rel` from a full key; `None` if the key is not below `v2`.
    fn rel<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.v2.as_str())?.strip_prefix('/')
    }

    fn err(&self, rel: &str, e: impl std::fmt::Display) -> Error {
        Error::other(self.display(rel), e.to_string())
    }

    /// An error from `object_store`, with its [`Failure`].
    fn store_err(&self, rel: &str, e: &object_store::Error) -> Error {
        Error::storage(self.display(rel), failure_of(e), e.to_string())
    }

    /// A listed object as it is kept: its key relative to `v2`.
    fn entry(&self, m: &object_store::ObjectMeta) -> Option<(String, Obj)> {
        Some((self.rel(m.location.as_ref())?.to_string(), self.obj_of(m)))
    }

    fn lister<'a>(&self, convert: &'a Convert<'a>) -> Lister<'a> {
        let v2 = format!("{}/", self.v2);
        let plan = self.plan.read().expect("plan").clone();
        Lister {
            pages: self.src.pages.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(LIST_CONCURRENCY)),
            cutting: Arc::new(tokio::sync::Semaphore::new(LIST_CONCURRENCY)),
            split: Box::new(move |dir: &str| {
                let Some(rel) = dir.strip_prefix(&v2) else {
                    return false;
                };
                plan.iter().any(|a| {
                    let area = format!("{}/", a.prefix);
                    rel.starts_with(&area) && (a.split)(rel)
                })
            }),
            convert,
        }
    }

    /// Lists every key below `prefix` (relative to `v2`), flat and cut
    /// where its keys are; `first`: its first page, if listed already.
    fn list_below(
        &self,
        prefix: &str,
        first: Option<Vec<object_store::ObjectMeta>>,
    ) -> std::result::Result<Listing, Failed> {
        let full = format!("{}/{prefix}/", self.v2);
        let convert = |m: &object_store::ObjectMeta| self.entry(m);
        let runs = self.rt.block_on(self.lister(&convert).list(full, first))?;
        Ok(Listing::of(runs))
    }

    /// The area `rel` lies in, if the layout named it.
    fn area_of(&self, rel: &str) -> Option<&'static str> {
        self.plan
            .read()
            .expect("plan")
            .iter()
            .map(|a| a.prefix)
            .find(|a| rel == *a || rel.strip_prefix(a).is_some_and(|r| r.starts_with('/')))
    }

    /// The cached listing of `area`, listed now if it is not yet.
    fn area(&self, area: &'static str) -> AreaListing {
        if let Some(a) = self.areas.lock().expect("areas").get(area) {
            return a.clone();
        }
        let _one = self.listing.lock().expect("listing");
        if let Some(a) = self.areas.lock().expect("areas").get(area) {
            return a.clone();
        }
        let seed = self.seeds.lock().expect("seeds").remove(area);
        let listed = match seed {
            Some(Seed { objects, whole: true }) => Ok(Listing::of(vec![Run::of(
                objects.iter().filter_map(|m| self.entry(m)).collect(),
            )])),
            Some(Seed {
                objects,
                whole: false,
            }) if !objects.is_empty() => self.list_below(area, Some(objects)),
            _ => self.list_below(area, None),
        };
        let listed = listed
            .map(|m| Arc::new(RwLock::new(m)))
            .map_err(|f| (f.failure, format!("listing failed: {}", f.message)));
        self.areas.lock().expect("areas").insert(area, listed.clone());
        listed
    }

    /// The cached area `rel` lies in, or an error naming `rel`; `None`
    /// outside the planned areas.
    fn cached(&self, rel: &str) -> Result<Option<Listed>> {
        if let Some(part) = self.part_of(rel) {
            // An area held a part at a time: the part if it is held.
            return Ok(part.and_then(|p| self.parts.lock().expect("parts").get(&p).cloned()));
        }
        match self.area_of(rel) {
            Some(a) => self
                .area(a)
                .map(Some)
                .map_err(|(f, why)| Error::storage(self.display(rel), f, why)),
            None => Ok(None),
        }
    }

    /// Calls `visit` on every object below `prefix` (relative to `v2`), in
    /// key order, from the cache (read in place, a block at a time, the
    /// lock not held while visiting) or listed now.
    fn each_below(&self, prefix: &str, visit: &mut dyn FnMut(String, Obj)) -> Result<()> {
        let dir = format!("{prefix}/");
        let listing = match self.cached(prefix)? {
            Some(l) => l,
            None => Arc::new(RwLock::new(self.list_now(prefix)?)),
        };
        below(&listing, &dir, visit);
        Ok(())
    }

    /// Every object below `prefix`, listed now (not from the cache).
    fn list_now(&self, prefix: &str) -> Result<Listing> {
        self.list_below(prefix, None)
            .map_err(|f| Error::storage(self.display(prefix), f.failure, f.message))
    }

    /// Where `rel` lies in an area held a part at a time: its part, or
    /// `None` above the parts' level; not at all in another area.
    fn part_of(&self, rel: &str) -> Option<Option<String>> {
        let (area, parts) = self.parts_rule(rel)?;
        Some(parts.of(area, rel))
    }

    /// The area held a part at a time that `rel` lies in, and its parts.
    fn parts_rule(&self, rel: &str) -> Option<(&'static str, Parts)> {
        let by_parts = self.by_parts.read().expect("by_parts");
        by_parts
            .iter()
            .find(|(a, _)| rel == *a || rel.strip_prefix(a).is_some_and(|r| r.starts_with('/')))
            .copied()
    }

    /// A scan of `prefix`, which lies above the parts of an area held a
    /// part at a time: delimited listings down to the parts' level, those
    /// of one level at once, then the parts that `stop` does not cut (each
    /// listed, not kept).
    fn scan_above_parts(
        &self,
        prefix: &str,
        stop: Stop,
        meta: bool,
        visit: &mut dyn FnMut(Scanned),
    ) -> Result<bool> {
        let mut found = false;
        let mut level = vec![prefix.to_string()];
        let mut depth = 0;
        while !level.is_empty() {
            let mut next = Vec::new();
            for dirs in level.chunks(ABOVE_PARTS_AT_ONCE) {
                let listed: Vec<Result<Arc<object_store::ListResult>>> = self.rt.block_on(
                    futures::stream::iter(dirs)
                        .map(|dir| self.list_above_parts(dir))
                        .buffered(LIST_CONCURRENCY)
                        .collect(),
                );
                let scan = AboveParts { prefix, stop, meta };
                for (dir, listed) in dirs.iter().zip(listed) {
                    found |= self.visit_above_parts(&scan, (dir, depth), &*listed?, visit, &mut next)?;
                }
            }
            level = next;
            depth += 1;
        }
        Ok(found)
    }

    /// The delimited listing of `dir`, kept (see `above`) or listed now.
    async fn list_above_parts(&self, dir: &str) -> Result<Arc<object_store::ListResult>> {
        let kept = self.above.lock().expect("above").get(dir).cloned();
        if let Some(listed) = kept {
            return Ok(listed);
        }
        let key = self.key(dir);
        let listed = self
            .src
            .store
            .list_with_delimiter(Some(&key))
            .await
            .map_err(|e| self.store_err(dir, &e))?;
        let listed = Arc::new(listed);
        self.above
            .lock()
            .expect("above")
            .insert(dir.to_string(), listed.clone());
        Ok(listed)
    }

    /// One delimited listing of [`ObjectBackend::scan_above_parts`], of
    /// `dir` at `depth` below the scan's prefix: its objects and the
    /// children that the scan's `stop` cuts are visited, the parts below it
    /// scanned, the directories above the parts go to `next`. Whether it
    /// held anything.
    fn visit_above_parts(
        &self,
        scan: &AboveParts,
        (dir, depth): (&str, usize),
        listed: &object_store::ListResult,
        visit: &mut dyn FnMut(Scanned),
        next: &mut Vec<String>,
    ) -> Result<bool> {
        let AboveParts { prefix, stop, meta } = *scan;
        let mut found = false;
        for o in &listed.objects {
            // A "directory marker" some tools write: nothing to list.
            if let Some(rel) = self
                .rel(o.location.as_ref())
                .filter(|r| *r != dir && !r.ends_with('/'))
            {
                found = true;
                visit(Scanned::Object {
                    key: rel.to_string(),
                    meta: meta.then(|| meta_of(&self.obj_of(o))),
                });
            }
        }
        for p in &listed.common_prefixes {
            let Some(child) = self.rel(p.as_ref()).map(str::to_string) else {
                continue;
            };
            found = true;
            let below = &child[prefix.len() + 1..];
            if stop(below, depth + 1) {
                visit(Scanned::Prefix(child));
            } else if self.part_of(&child).is_some_and(|p| p.is_none()) {
                next.push(child);
            } else {
                let mut failed = None;
                cut(
                    prefix,
                    &mut |each| {
                        if let Err(e) = self.each_below(&child, each) {
                            failed = Some(e);
                        }
                    },
                    stop,
                    meta,
                    visit,
                );
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
        Ok(found)
    }

    /// The listing of the area `rel` lies in, only if it is loaded already.
    fn loaded(&self, rel: &str) -> Option<Listed> {
        if let Some(part) = self.part_of(rel) {
            return part.and_then(|p| self.parts.lock().expect("parts").get(&p).cloned());
        }
        let area = self.area_of(rel)?;
        self.areas
            .lock()
            .expect("areas")
            .get(area)?
            .as_ref()
            .ok()
            .cloned()
    }

    /// Forgets `keys` in the cache (deleted); never lists to do so.
    fn forget<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut any = false;
        for k in keys {
            any = true;
            if let Some(listing) = self.loaded(k) {
                listing.write().expect("area").remove(k);
            }
        }
        if any {
            self.above.lock().expect("above").clear();
        }
    }

    async fn delete_chunk(&self, keys: &[String]) -> Vec<Result<bool>> {
        let mut results: Vec<Option<Result<bool>>> = (0..keys.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..keys.len()).collect();
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=DELETE_TRIES {
            let paths: Vec<object_store::Result<Key>> =
                todo.iter().map(|&i| Ok(self.key(&keys[i]))).collect();
            let answers: Vec<object_store::Result<Key>> = self
                .src
                .store
                .delete_stream(futures::stream::iter(paths).boxed())
                .collect()
                .await;
            let mut again = Vec::new();
            if answers.len() != todo.len() {
                // The request itself failed (after object_store's retries):
                // none of these keys is known to be deleted.
                let err = answers.into_iter().find_map(|a| a.err());
                let failure = err.as_ref().map_or(Failure::Other, failure_of);
                let why = err.map_or_else(|| "no answer".to_string(), |e| e.to_string());
                for &i in &todo {
                    results[i] = Some(Err(Error::storage(
                        self.display(&keys[i]),
                        failure,
                        format!("not deleted: {why}"),
                    )));
                }
                break;
            }
            for (&i, a) in todo.iter().zip(answers) {
                match a {
                    Ok(_) => results[i] = Some(Ok(true)),
                    Err(object_store::Error::NotFound { .. }) => results[i] = Some(Ok(false)),
                    Err(e) => {
                        results[i] = Some(Err(Error::storage(
                            self.display(&keys[i]),
                            failure_of(&e),
                            format!("not deleted: {e}"),
                        )));
                        again.push(i);
                    }
                }
            }
            if again.is_empty() || attempt == DELETE_TRIES {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
            todo = again;
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(false))).collect()
    }

    fn refuse_key(&self, k: &str) -> Option<Error> {
        (k.is_empty() || k.split('/').any(|c| c.is_empty() || c == "." || c == ".."))
            .then(|| self.err(k, "refusing to change: not a plain key below the storage root"))
    }
}

// ---- an S3 Inventory report as the listing (issue 18; see [`inventory`]) --

/// What [`ObjectBackend::use_inventory`] read.
#[derive(Clone, Debug)]
pub struct InventoryUsed {
    /// The report's `manifest.json`, as named.
    pub manifest: String,
    /// When the scan that made it began.
    pub created: SystemTime,
    /// Its data files.
    pub files: usize,
    /// Objects it lists (the latest versions, no delete markers), and
    /// those of them in the areas the tools list (`blobs/`, `repositories/`).
    pub objects: u64,
    pub listed: u64,
}

/// A report's rows as listings: a run per data file for each area, rows
/// per area, and the report's objects and those within the areas.
struct ReportRows {
    runs: Vec<Vec<Run>>,
    in_area: Vec<u64>,
    objects: u64,
    listed: u64,
}

impl ObjectBackend {
    /// Takes the listings of the areas the layout named (`blobs/`,
    /// `repositories/`) from the S3 Inventory report whose `manifest.json`
    /// is `at` (`s3://BUCKET/KEY`, read with this store's endpoint and
    /// credentials; or a local path) instead of LISTing them. Refuses a
    /// report of another bucket, one made longer than `max_age` ago (by
    /// the server's clock, `local_now` without one), and one that lists
    /// nothing below an area the bucket holds (a report filtered to another
    /// prefix). Until [`Backend::refresh`], after which the areas are
    /// LISTed again. reg-rm never calls this: its looks at deletion time
    /// list the bucket live.
    pub fn use_inventory(&self, at: &str, max_age: Duration, local_now: SystemTime) -> Result<InventoryUsed> {
        let loc = inventory::Location::parse(at).map_err(|why| Error::other(at, why))?;
        let s3 = self
            .provider
            .as_ref()
            .and_then(|p| p.as_any().downcast_ref::<S3Config>())
            .ok_or_else(|| {
                self.err(
                    "",
                    format!(
                        "--inventory {at}: S3 Inventory reports list S3 buckets; this storage is not on S3"
                    ),
                )
            })?;
        let store = match &loc {
            inventory::Location::S3 { bucket, .. } => Some(self.store_of_bucket(s3, bucket)?),
            inventory::Location::Local(_) => None,
        };
        let fetch = |key: &str, shown: &str| -> Result<bytes::Bytes> {
            match &store {
                Some(store) => self
                    .rt
                    .block_on(async {
                        let got = store.get(&Key::from(key)).await?;
                        got.bytes().await
                    })
                    .map_err(|e| Error::storage(shown, failure_of(&e), e.to_string())),
                None => std::fs::read(shown)
                    .map(bytes::Bytes::from)
                    .map_err(|e| Error::io(shown, e)),
            }
        };
        let shown = loc.shown();
        let manifest_key = match &loc {
            inventory::Location::S3 { key, .. } => key.as_str(),
            inventory::Location::Local(_) => "",
        };
        let manifest = inventory::parse_manifest(&fetch(manifest_key, &shown)?, &shown)?;
        if manifest.source_bucket != s3.bucket {
            return Err(Error::other(
                &shown,
                format!(
                    "a report of bucket {:?}, but the registry is in bucket {:?}",
                    manifest.source_bucket, s3.bucket
                ),
            ));
        }
        let now = self.server_now()?.unwrap_or(local_now);
        manifest.check_age(now, max_age)?;
        let areas: Vec<&'static str> = self.plan.read().expect("plan").iter().map(|a| a.prefix).collect();
        let rows = self.report_rows(&manifest, &loc, &areas, &fetch)?;
        self.check_report_covers(&areas, &rows.in_area, &shown)?;
        let mut cached = self.areas.lock().expect("areas");
        for (a, area) in areas.iter().zip(rows.runs) {
            cached.insert(a, Ok(Arc::new(RwLock::new(Listing::of(area)))));
        }
        *self.inventory.lock().expect("inventory") = Some(shown.clone());
        Ok(InventoryUsed {
            manifest: shown,
            created: manifest.created,
            files: manifest.files.len(),
            objects: rows.objects,
            listed: rows.listed,
        })
    }

    /// Every data file of `manifest`, read: each file's rows of an area
    /// are encoded as they come, like a LIST's pages, into one run per
    /// file and area. Rows in key order are encoded compactly; a row that
    /// is not goes in the run's exact overlay, and runs of files whose key
    /// ranges overlap are merged by `Listing::of`. (Rows held as strings
    /// until the end took ~290 bytes an object at 317k objects:
    /// bench/results.md.)
    fn report_rows(
        &self,
        manifest: &inventory::Manifest,
        loc: &inventory::Location,
        areas: &[&'static str],
        fetch: &dyn Fn(&str, &str) -> Result<bytes::Bytes>,
    ) -> Result<ReportRows> {
        let spool = Arc::new(Spool::new().map_err(spool_err)?);
        let mut rows = ReportRows {
            runs: areas.iter().map(|_| Vec::new()).collect(),
            in_area: vec![0; areas.len()],
            objects: 0,
            listed: 0,
        };
        for file in &manifest.files {
            let file_shown = loc.data_file(&file.key);
            let bytes = fetch(&file.key, &file_shown)?;
            let mut cur: Vec<Run> = areas.iter().map(|_| Run::spooled(spool.clone())).collect();
            manifest.read_file(file, &file_shown, bytes, &mut |key, size, mtime, etag| {
                rows.objects += 1;
                if let Some((i, rel, o)) = self.report_object(areas, key, size, mtime, etag) {
                    cur[i].push(&rel, o.size, o.mtime, o.md5);
                    rows.in_area[i] += 1;
                    rows.listed += 1;
                }
            })?;
            for (area, mut run) in rows.runs.iter_mut().zip(cur) {
                run.finish().map_err(spool_err)?;
                area.push(run);
            }
        }
        Ok(rows)
    }

    /// One object of a report as the cached listing keeps it: the area it
    /// is in (an index into `areas`), its key relative to `v2`, and what
    /// is known of it (the ETag is its content's MD5 when it is 32 hex
    /// digits, as in a LIST's answer). `None` outside the areas. The one
    /// place a report's row becomes a listed object.
    fn report_object(
        &self,
        areas: &[&'static str],
        key: &str,
        size: u64,
        mtime: SystemTime,
        etag: Option<&str>,
    ) -> Option<(usize, String, Obj)> {
        let rel = self.rel(key)?;
        let i = areas
            .iter()
            .position(|a| rel.strip_prefix(a).is_some_and(|r| r.starts_with('/')))?;
        let o = Obj {
            size,
            mtime,
            md5: etag.and_then(md5_from_hex),
        };
        Some((i, rel.to_string(), o))
    }

    /// A client of `bucket` in the same store as the registry's, through
    /// the same HTTP layer (its requests counted with the others).
    fn store_of_bucket(&self, s3: &S3Config, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let cfg = S3Config {
            bucket: bucket.to_string(),
            ..s3.clone()
        };
        let shown = format!("s3://{bucket}");
        let http = match &self.src.http {
            Some(h) => h.clone(),
            None => Http::new(Arc::new(cfg.clone())),
        };
        cfg.connect(http)
            .map(|c| c.store)
            .map_err(|why| Error::other(shown, why))
    }

    /// Refuses a report that lists nothing below an area the bucket holds
    /// now (one delimited LIST of `v2/`, never of the areas): an inventory
    /// filtered to another prefix, or one made before anything was stored
    /// there. Listed as it is, such a report would make everything in that
    /// area look unreferenced, or every blob unreferenced.
    fn check_report_covers(&self, areas: &[&'static str], in_area: &[u64], shown: &str) -> Result<()> {
        let there = self
            .rt
            .block_on(self.src.store.list_with_delimiter(Some(&self.key(""))))
            .map_err(|e| self.store_err("", &e))?;
        for (a, n) in areas.iter().zip(in_area) {
            let held = there.common_prefixes.iter().any(|p| p.filename() == Some(*a));
            if held && *n == 0 {
                return Err(Error::other(
                    shown,
                    format!(
                        "the report lists nothing below {}/, which the bucket holds: a report filtered to \
                         another prefix, or made before the registry stored anything there; the inventory \
                         must cover the registry's whole rootdirectory",
                        self.display(a).display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`ObjectBackend::check_root`] for listings from a report: something
    /// of a registry must be in them.
    fn check_root_from_report(&self) -> Result<()> {
        let found = self
            .areas
            .lock()
            .expect("areas")
            .values()
            .any(|a| a.as_ref().is_ok_and(|m| !m.read().expect("area").is_empty()));
        if found {
            Ok(())
        } else {
            self.nothing_here()
        }
    }
}

/// A failure to write the report's listing to its temporary file.
fn spool_err(e: std::io::Error) -> Error {
    Error::other(
        Spool::dir(),
        format!("cannot write the inventory report's listing to a temporary file here (set TMPDIR to move it): {e}"),
    )
}

/// A blocking reader over a GET's body.
struct BodyReader {
    rt: tokio::runtime::Handle,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    buf: bytes::Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// Calls its argument on each object of a listing, in key order.
type Objects<'a> = dyn FnMut(&mut dyn FnMut(String, Obj)) + 'a;

/// A flat listing of the keys below `prefix` (sorted, as S3 lists them),
/// cut where `stop` says: each cut prefix is reported once, as a
/// [`Scanned::Prefix`], and nothing below it (keys sharing a prefix are
/// next to each other in the listing). What the filesystem's scan reports
/// for the same tree, except empty directories, which a bucket cannot hold.
fn cut(prefix: &str, objects: &mut Objects, stop: Stop, meta: bool, visit: &mut dyn FnMut(Scanned)) -> bool {
    let base = prefix.len() + 1;
    let mut last_cut: Option<String> = None;
    let mut found = false;
    objects(&mut |key, o| {
        found = true;
        let rel = &key[base..];
        // A "directory marker" some tools write: nothing to list.
        if rel.is_empty() || rel.ends_with('/') {
            return;
        }
        if last_cut
            .as_deref()
            .is_some_and(|c| rel.starts_with(c) && rel[c.len()..].starts_with('/'))
        {
            return;
        }
        let mut at = None;
        for (depth, (i, _)) in rel.match_indices('/').enumerate() {
            if stop(&rel[..i], depth + 1) {
                at = Some(&rel[..i]);
                break;
            }
        }
        match at {
            Some(c) => {
                let c = c.to_string();
                visit(Scanned::Prefix(format!("{prefix}/{c}")));
                last_cut = Some(c);
            }
            None => visit(Scanned::Object {
                meta: meta.then(|| meta_of(&o)),
                key,
            }),
        }
    });
    found
}

/// Calls `visit` on every object of `listing` whose key starts with
/// `dir`, in order, a few blocks at a time (the lock is not held
/// while visiting: a visitor may ask the backend again), without their
/// MD5s (a scan reads sizes and times).
fn below(listing: &RwLock<Listing>, dir: &str, visit: &mut dyn FnMut(String, Obj)) {
    below_md5(listing, dir, false, visit)
}

/// [`below`], the objects with their MD5s if `md5`.
fn below_md5(listing: &RwLock<Listing>, dir: &str, md5: bool, visit: &mut dyn FnMut(String, Obj)) {
    Listing::each_below(
        &|p, after| listing.read().expect("area").after(p, after, CHUNK, md5),
        dir,
        visit,
    );
}

impl Backend for ObjectBackend {
    fn display(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            PathBuf::from(format!("{}/{}", self.src.base, self.v2))
        } else {
            PathBuf::from(format!("{}/{}/{rel}", self.src.base, self.v2))
        }
    }

    /// `s3://bucket/<root>/docker/registry/v2`, and the endpoint when it
    /// is not the provider's own.
    fn id(&self) -> String {
        let shown = self.display("").to_string_lossy().into_owned();
        match &self.src.endpoint {
            Some(e) => format!("{shown} at {e}"),
            None => shown,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            answers_from_listing: true,
            batches_deletes: true,
            remote: self.src.http.is_some(),
        }
    }

    fn plan(&self, areas: &[Area]) {
        let mut plan = self.plan.write().expect("plan");
        for a in areas {
            if !plan.iter().any(|p| p.prefix == a.prefix) {
                plan.push(*a);
            }
        }
    }

    fn scan(&self, prefix: &str, stop: Stop, meta: bool, visit: &mut dyn FnMut(Scanned)) -> Result<bool> {
        if self.part_of(prefix).is_some_and(|p| p.is_none()) {
            return self.scan_above_parts(prefix, stop, meta, visit);
        }
        let mut failed = None;
        let found = cut(
            prefix,
            &mut |each| {
                if let Err(e) = self.each_below(prefix, each) {
                    failed = Some(e);
                }
            },
            stop,
            meta,
            visit,
        );
        match failed {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// From the listing: a key is an object; a prefix with objects below is
    /// a "directory", whose mtime is its newest object's.
    fn stat(&self, rel: &str) -> Result<Option<Meta>> {
        if let Some(listing) = self.cached(rel)? {
            let known = listing.read().expect("area").get(rel);
            if let Some(o) = known {
                return Ok(Some(meta_of(&o)));
            }
            let mut newest = None;
            below(&listing, &format!("{rel}/"), &mut |_, o| {
                newest = newest.max(Some(o.mtime));
            });
            return Ok(newest.map(|mtime| Meta {
                size: 0,
                mtime,
                is_dir: true,
            }));
        }
        match self.rt.block_on(self.src.store.head(&self.key(rel))) {
            Ok(m) => Ok(Some(meta_of(&self.obj_of(&m)))),
            Err(object_store::Error::NotFound { .. }) => {
                let mut newest = None;
                self.each_below(rel, &mut |_, o| newest = newest.max(Some(o.mtime)))?;
                Ok(newest.map(|mtime| Meta {
                    size: 0,
                    mtime,
                    is_dir: true,
                }))
            }
            Err(e) => Err(self.store_err(rel, &e)),
        }
    }

    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        self.rt.block_on(self.get(rel, limit))
    }

    /// GETs in flight as many at once as `gets::Concurrency` says, each
    /// answer telling it how long it took and whether the store throttles.
    fn read_many(&self, rels: &[String], limit: u64) -> Vec<Result<Option<Vec<u8>>>> {
        let mut out: Vec<Option<Result<Option<Vec<u8>>>>> = rels.iter().map(|_| None).collect();
        // Answers 5xx (503 SlowDown): the store asks for fewer.
        let throttled = || {
            self.src.http.as_ref().map_or(0, |h| {
                h.counts.throttled.load(std::sync::atomic::Ordering::Relaxed)
            })
        };
        self.rt.block_on(async {
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut next = 0;
            loop {
                let limit_now = self.gets.lock().expect("gets").limit();
                while next < rels.len() && in_flight.len() < limit_now {
                    let (i, rel) = (next, &rels[next]);
                    in_flight.push(async move {
                        let t = Instant::now();
                        let r = self.get(rel, limit).await;
                        (i, r, t.elapsed())
                    });
                    next += 1;
                }
                let Some((i, r, took)) = in_flight.next().await else {
                    break;
                };
                let transient = matches!(&r, Err(e) if e.failure() == Failure::Transient);
                self.gets.lock().expect("gets").done(took, throttled(), transient);
                out[i] = Some(r.map(|o| o.map(|(b, _)| b)));
            }
        });
        out.into_iter().map(|r| r.expect("every read answered")).collect()
    }

    fn cap_reads(&self, n: usize) {
        self.gets.lock().expect("gets").cap(n);
    }

    /// Answers from the listing, without a request, when the object's size
    /// and content MD5 say it holds one of `expected`. Reads it otherwise.
    fn read_expecting(&self, rel: &str, limit: u64, expected: &[&[u8]]) -> Result<Option<(Vec<u8>, Meta)>> {
        if expected.is_empty() {
            // Nothing to vouch for: a read now (reg-rm's checks at deletion time).
            return self.read_with_meta(rel, limit);
        }
        if let Some(listing) = self.cached(rel)? {
            let known = listing.read().expect("area").get(rel);
            let Some(o) = known else {
                return Ok(None);
            };
            if let Some(md5) = &o.md5 {
                for e in expected {
                    if e.len() as u64 == o.size && e.len() as u64 <= limit && md5_of(e) == *md5 {
                        return Ok(Some((e.to_vec(), meta_of(&o))));
                    }
                }
            }
        }
        self.read_with_meta(rel, limit)
    }

    /// One GET of the range `0..n`. An empty object (no range to answer)
    /// or an answer that is not the range asked for is read whole instead.
    fn read_start(&self, rel: &str, n: u64, limit: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(0..n)),
            ..Default::default()
        };
        let got = self.rt.block_on(async {
            let got = self.src.store.get_opts(&self.key(rel), opts).await?;
            let size = got.meta.size;
            Ok::<_, object_store::Error>((got.bytes().await?, size))
        });
        match got {
            Ok((bytes, size)) if bytes.len() as u64 == n.min(size) => Ok(Some((bytes.to_vec(), size))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            _ => Ok(self.read(rel, limit)?.map(|b| crate::storage::start_of(b, n))),
        }
    }

    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let got = match self.rt.block_on(self.src.store.get(&self.key(rel))) {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_err(rel, &e)),
        };
        Ok(Some(Box::new(BodyReader {
            rt: self.rt.handle().clone(),
            stream: got.into_stream(),
            buf: Default::default(),
        })))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        self.delete_batch(&[key.to_string()]).pop().unwrap_or(Ok(false))
    }

    /// Lists `prefix` afresh (what was written since the cached listing
    /// goes too), then deletes in batches.
    fn delete_prefix(&self, prefix: &str) -> Result<bool> {
        if let Some(e) = self.refuse_key(prefix) {
            return Err(e);
        }
        let fresh = RwLock::new(self.list_now(prefix)?);
        let mut keys = Vec::new();
        below(&fresh, &format!("{prefix}/"), &mut |k, _| keys.push(k));
        if keys.is_empty() {
            return Ok(false);
        }
        let mut any = false;
        for r in self.delete_batch(&keys) {
            any |= r?;
        }
        Ok(any)
    }

    /// Batches of at most 1,000 keys, 4 at once; a result per key, so a
    /// failure part way says exactly which went.
    fn delete_batch(&self, keys: &[String]) -> Vec<Result<bool>> {
        if keys.iter().any(|k| self.refuse_key(k).is_some()) {
            return keys
                .iter()
                .map(|k| Err(self.err(k, "refusing to change: not a plain key below the storage root")))
                .collect();
        }
        // The keys are borrowed by each batch, not copied (a phase at 1M
        // objects deletes 139k keys; issue 18).
        let results: Vec<Vec<Result<bool>>> = self.rt.block_on(
            futures::stream::iter(keys.chunks(DELETE_BATCH))
                .map(|c| self.delete_chunk(c))
                .buffered(DELETE_CONCURRENCY)
                .collect(),
        );
        let results: Vec<Result<bool>> = results.into_iter().flatten().collect();
        self.forget(
            keys.iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(k, _)| k.as_str()),
        );
        results
    }

    /// A HEAD first (false if it exists), then a PUT.
    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        if let Some(e) = self.refuse_key(rel) {
            return Err(e);
        }
        let key = self.key(rel);
        let r = self.rt.block_on(async {
            match self.src.store.head(&key).await {
                Ok(_) => return Ok(false),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            self.src
                .store
                .put(&key, PutPayload::from(bytes.to_vec()))
                .await
                .map(|_| true)
        });
        let written = r.map_err(|e| self.store_err(rel, &e))?;
        if written {
            self.above.lock().expect("above").clear();
            if let Some(listing) = self.loaded(rel) {
                listing.write().expect("area").insert(
                    rel.to_string(),
                    Obj {
                        size: bytes.len() as u64,
                        // As the server stamps it (its clock, not ours).
                        mtime: self.clock().and_then(|c| c.now()).unwrap_or_else(SystemTime::now),
                        md5: Some(md5_of(bytes)),
                    },
                );
            }
        }
        Ok(written)
    }

    fn check_removable(&self, rel: &str) -> Result<()> {
        self.refuse_key(rel).map_or(Ok(()), Err)
    }

    fn list_by_parts(&self, area: &'static str, parts: Parts) {
        if self.areas.lock().expect("areas").contains_key(area) {
            return;
        }
        {
            // The area's first page says how large its parts are: where it
            // reaches past a few of them, the whole area takes few pages
            // and little memory, and listing it part by part would cost a
            // request a part instead (a small registry: one LIST).
            let mut seeds = self.seeds.lock().expect("seeds");
            #[cfg(feature = "test-hooks")]
            if std::env::var_os(BY_PARTS_ENV).is_some() {
                seeds.remove(area);
            }
            if let Some(seed) = seeds.get(area) {
                let seen: std::collections::HashSet<String> = seed
                    .objects
                    .iter()
                    .filter_map(|m| parts.of(area, self.rel(m.location.as_ref())?))
                    .collect();
                if seed.whole || seen.len() > PARTS_IN_A_FIRST_PAGE {
                    return;
                }
            }
            seeds.remove(area);
        }
        let mut by_parts = self.by_parts.write().expect("by_parts");
        if !by_parts.iter().any(|(a, _)| *a == area) {
            by_parts.push((area, parts));
        }
    }

    fn held_by_parts(&self, area: &str) -> bool {
        self.by_parts
            .read()
            .expect("by_parts")
            .iter()
            .any(|(a, _)| *a == area)
    }

    fn hold_part(&self, part: &str) -> Result<()> {
        self.hold_parts(&[part.to_string()]).pop().unwrap_or(Ok(()))
    }

    /// Lists the parts at once (their LISTs share the listing's bound of
    /// requests in flight); a part whose listing fails is not held.
    fn hold_parts(&self, parts: &[String]) -> Vec<Result<()>> {
        let kept = self.kept.lock().expect("kept").clone();
        let rules: Vec<Option<Parts>> = {
            let held = self.parts.lock().expect("parts");
            parts
                .iter()
                .map(|p| {
                    // Kept from an earlier walk: held already.
                    if kept.is_some() && held.contains_key(p) {
                        return None;
                    }
                    let (area, rule) = self.parts_rule(p)?;
                    (rule.of(area, p).as_deref() == Some(p.as_str())).then_some(rule)
                })
                .collect()
        };
        let convert = |m: &object_store::ObjectMeta| self.entry(m);
        let lister = self.lister(&convert);
        let listed: Vec<Option<std::result::Result<Vec<Run>, Failed>>> = self.rt.block_on(
            futures::stream::iter(parts.iter().zip(&rules))
                .map(|(part, rule)| {
                    let lister = &lister;
                    let full = rule.map(|r| format!("{}/{}", self.v2, r.listed_prefix(part)));
                    async move {
                        match full {
                            Some(full) => Some(lister.list(full, None).await),
                            None => None,
                        }
                    }
                })
                .buffered(LIST_CONCURRENCY)
                .collect(),
        );
        let mut held = self.parts.lock().expect("parts");
        parts
            .iter()
            .zip(listed)
            .map(|(part, runs)| match runs {
                // Not a part: nothing to hold.
                None => Ok(()),
                Some(Ok(runs)) => {
                    let mut listing = Listing::of(runs);
                    if let Some(spool) = &kept {
                        // A temporary file that cannot take more: parts
                        // are listed each time again from here on, and
                        // this one is released after its walk.
                        if let Err(e) = listing.spool_into(spool) {
                            self.kept.lock().expect("kept").take();
                            self.kept_stopped.lock().expect("kept").get_or_insert_with(|| {
                                format!(
                                    "{}: the temporary file of the listings could not take more ({e}); \
                                     parts were listed again for each walk from then on \
                                     (set TMPDIR to a directory with more room)",
                                    Spool::dir().display()
                                )
                            });
                        }
                    }
                    held.insert(part.clone(), Arc::new(RwLock::new(listing)));
                    Ok(())
                }
                Some(Err(f)) => Err(Error::storage(self.display(part), f.failure, f.message)),
            })
            .collect()
    }

    fn release_part(&self, part: &str) {
        if self.kept.lock().expect("kept").is_none() {
            self.parts.lock().expect("parts").remove(part);
        }
    }

    fn kept_parts_stopped(&self) -> Option<String> {
        self.kept_stopped.lock().expect("kept").clone()
    }

    fn keep_parts(&self) -> Result<()> {
        let mut kept = self.kept.lock().expect("kept");
        if kept.is_none() {
            *kept = Some(Arc::new(Spool::new().map_err(|e| {
                Error::other(
                    Spool::dir(),
                    format!("cannot make a temporary file for the listings (set TMPDIR to move it): {e}"),
                )
            })?));
        }
        Ok(())
    }

    /// Listings come from LISTs after this, also where an inventory
    /// report gave them before.
    fn refresh(&self) {
        self.parts.lock().expect("parts").clear();
        self.above.lock().expect("above").clear();
        self.areas.lock().expect("areas").clear();
        self.seeds.lock().expect("seeds").clear();
        self.inventory.lock().expect("inventory").take();
    }

    /// Lists `prefix` now and puts what is there in the cached listing in
    /// place of what was; forgets every listing if that fails (the next
    /// scan lists anew and reports the failure).
    fn refresh_below(&self, prefix: &str) {
        let Some(listing) = self.loaded(prefix) else {
            return;
        };
        match self.list_now(prefix) {
            Ok(fresh) => {
                let dir = format!("{prefix}/");
                let fresh = RwLock::new(fresh);
                let mut now = Vec::new();
                below_md5(&fresh, &dir, true, &mut |k, o| now.push((k, o)));
                let mut stale = Vec::new();
                below(&listing, &dir, &mut |k, _| stale.push(k));
                let mut listing = listing.write().expect("area");
                for k in stale {
                    listing.remove(&k);
                }
                for (k, o) in now {
                    listing.insert(k, o);
                }
            }
            Err(_) => self.refresh(),
        }
    }

    fn requests(&self) -> Option<Arc<Requests>> {
        self.src.http.as_ref().map(|h| h.counts.clone())
    }

    /// From the `Date` of the last answer; a HEAD request first if nothing
    /// was asked yet (any answer, 404 too, carries one).
    fn server_now(&self) -> Result<Option<SystemTime>> {
        let Some(clock) = self.clock() else {
            return Ok(None);
        };
        if let Some(t) = clock.now() {
            return Ok(Some(t));
        }
        match self.rt.block_on(self.src.store.head(&self.key(""))) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.store_err("", &e)),
        }
        Ok(clock.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cuts the layout asks for, on a listing: each prefix once, in
    /// order, nothing below it, objects where nothing cuts.
    #[test]
    fn a_flat_listing_is_cut_where_told() {
        let o = || Obj {
            size: 1,
            mtime: SystemTime::UNIX_EPOCH,
            md5: None,
        };
        let keys = [
            "repositories/a/_layers/sha256/aa/link",
            "repositories/a/_layers/sha256/bb/link",
            "repositories/a/_manifests/tags/v1/current/link",
            "repositories/a/b/_layers/sha256/cc/link",
            "repositories/a-b/_uploads/u1/startedat",
            "repositories/x/",
            "repositories/z/file",
        ];
        let listing: Vec<(String, Obj)> = keys.iter().map(|k| (k.to_string(), o())).collect();
        let mut seen = Vec::new();
        let stop = |rel: &str, _: usize| rel.rsplit('/').next().is_some_and(|c| c.starts_with('_'));
        let mut each = |visit: &mut dyn FnMut(String, Obj)| {
            for (k, o) in listing.clone() {
                visit(k, o)
            }
        };
        let found = cut("repositories", &mut each, &stop, true, &mut |item| {
            seen.push(match item {
                Scanned::Prefix(p) => format!("prefix {p}"),
                Scanned::Object { key, meta } => format!("object {key} {}", meta.is_some()),
                Scanned::Problem(e) => format!("problem {e}"),
            })
        });
        assert!(found);
        assert_eq!(
            seen,
            [
                "prefix repositories/a/_layers",
                "prefix repositories/a/_manifests",
                "prefix repositories/a/b/_layers",
                "prefix repositories/a-b/_uploads",
                "object repositories/z/file true",
            ]
        );
        let mut none = 0;
        assert!(!cut("repositories", &mut |_| {}, &stop, false, &mut |_| none += 1));
        assert_eq!(none, 0);
    }

    /// Three bytes at `rel` below the `v2` of [`over`]'s backends.
    fn put_3_bytes(store: &object_store::memory::InMemory, rel: &str) {
        let path = Key::from(format!("srv/registry/docker/registry/v2/{rel}"));
        futures::executor::block_on(store.put(&path, vec![1u8, 2, 3].into())).unwrap();
    }

    /// A backend over `store` at `srv/registry`, planned as the layout
    /// plans it, with `parts` (an area and its parts) held a part at a time.
    fn over(
        store: &Arc<object_store::memory::InMemory>,
        parts: Option<(&'static str, Parts)>,
    ) -> ObjectBackend {
        let b = ObjectBackend::over(store.clone(), "srv/registry").unwrap();
        b.plan(&crate::layout::AREAS);
        if let Some((area, parts)) = parts {
            b.list_by_parts(area, parts);
        }
        b
    }

    /// Each scan (a prefix and where it stops) visits the same in `a` as in `b`.
    fn scan_alike(a: &ObjectBackend, b: &ObjectBackend, scans: &[(&str, Stop)]) {
        for &(prefix, stop) in scans {
            assert_eq!(scanned(a, prefix, stop), scanned(b, prefix, stop), "{prefix}");
        }
    }

    /// What a scan of `prefix` visits, sorted, and whether it found anything.
    fn scanned(b: &ObjectBackend, prefix: &str, stop: Stop) -> (bool, Vec<String>) {
        let mut seen = Vec::new();
        let found = b
            .scan(prefix, stop, true, &mut |item| {
                seen.push(match item {
                    Scanned::Prefix(p) => format!("prefix {p}"),
                    Scanned::Object { key, meta } => format!("object {key} {:?}", meta.map(|m| m.size)),
                    Scanned::Problem(e) => format!("problem {e}"),
                })
            })
            .unwrap();
        seen.sort();
        (found, seen)
    }

    /// An area held a part at a time: a scan above the parts finds what a
    /// whole listing finds; a held part answers from its listing (what
    /// was written since is not in it), a released one from the store; the
    /// area is never listed whole.
    #[test]
    fn an_area_held_a_part_at_a_time_scans_as_a_whole_one() {
        use crate::storage::Backend as _;
        let store = Arc::new(object_store::memory::InMemory::new());
        let put = |rel: &str| put_3_bytes(&store, rel);
        let blob = |p: &str, n: u8| format!("blobs/sha256/{p}/{p}{}/data", format!("{n:02x}").repeat(31));
        for k in [
            blob("aa", 1),
            blob("aa", 2),
            blob("bb", 3),
            "blobs/sha256/stray".into(),
            "blobs/md5/cc/x/data".into(),
            "repositories/r/_layers/sha256/aa/link".into(),
        ] {
            put(&k);
        }
        let open = |parts: bool| {
            over(
                &store,
                parts.then_some((crate::layout::paths::BLOBS, Parts::Depth(2))),
            )
        };
        let (whole, by_parts) = (open(false), open(true));
        let prefixes = |rel: &str, depth: usize| depth == 2 || rel == "md5";
        let digests = |_: &str, _: usize| true;
        let everything = |_: &str, _: usize| false;
        scan_alike(
            &by_parts,
            &whole,
            &[
                ("blobs", &prefixes as Stop),
                ("blobs", &everything),
                ("blobs/sha256", &prefixes),
                ("blobs/sha256/aa", &digests),
                ("blobs/sha256/zz", &digests),
            ],
        );
        assert_eq!(
            scanned(&by_parts, "blobs", &prefixes).1,
            [
                "object blobs/sha256/stray Some(3)",
                "prefix blobs/md5",
                "prefix blobs/sha256/aa",
                "prefix blobs/sha256/bb",
            ]
        );
        // Held: answered from the part's listing.
        by_parts.hold_part("blobs/sha256/aa").unwrap();
        let late = blob("aa", 9);
        put(&late);
        assert!(by_parts.stat(&blob("aa", 1)).unwrap().is_some());
        assert!(by_parts.stat(&late).unwrap().is_none(), "held: as listed");
        by_parts.release_part("blobs/sha256/aa");
        assert!(
            by_parts.stat(&late).unwrap().is_some(),
            "released: asked of the store"
        );
        assert!(!by_parts.areas.lock().unwrap().contains_key("blobs"));
        assert!(whole.areas.lock().unwrap().contains_key("blobs"));
        // A bucket whose first page of blobs/ is all of it (or reaches
        // past two prefix directories) is listed whole: one LIST, not one
        // a prefix directory.
        let small = ObjectBackend::over(store.clone(), "srv/registry").unwrap();
        small.plan(&crate::layout::AREAS);
        small.check_root().unwrap();
        small.list_by_parts(crate::layout::paths::BLOBS, crate::storage::Parts::Depth(2));
        assert!(small.by_parts.read().unwrap().is_empty());
        assert_eq!(
            scanned(&small, "blobs", &prefixes),
            scanned(&whole, "blobs", &prefixes)
        );
        assert!(small.areas.lock().unwrap().contains_key("blobs"));
    }

    /// `repositories/` held a repository at a time scans as it does listed
    /// whole, nested names and stray keys too; a held repository answers
    /// from its own listing, without its nested repositories' keys; the
    /// area is never listed whole.
    /// A temporary file that cannot take a part's listing (a full disk):
    /// the part is held from memory, keeping stops (parts are listed anew
    /// after that), and the backend says why, naming the directory.
    #[test]
    fn parts_are_listed_again_once_the_spool_is_full_and_the_backend_says_why() {
        use crate::storage::Backend as _;
        let store = Arc::new(object_store::memory::InMemory::new());
        let put = |rel: &str| put_3_bytes(&store, rel);
        let blob = |n: u8| format!("blobs/sha256/aa/aa{}/data", format!("{n:02x}").repeat(31));
        for n in 0..100 {
            put(&blob(n));
        }
        let everything = |_: &str, _: usize| false;
        let b = over(&store, Some((crate::layout::paths::BLOBS, Parts::Depth(2))));
        b.keep_parts().unwrap();
        assert_eq!(b.kept_parts_stopped(), None);
        *b.kept.lock().unwrap() = Some(Arc::new(Spool::within(10).unwrap()));
        b.hold_part("blobs/sha256/aa").unwrap();
        assert_eq!(scanned(&b, "blobs/sha256/aa", &everything).1.len(), 100);
        b.release_part("blobs/sha256/aa");
        put(&blob(200));
        b.hold_part("blobs/sha256/aa").unwrap();
        assert_eq!(
            scanned(&b, "blobs/sha256/aa", &everything).1.len(),
            101,
            "listed anew"
        );
        let why = b.kept_parts_stopped().expect("why keeping stopped");
        assert!(why.starts_with(&format!("{}: ", Spool::dir().display())), "{why}");
        assert!(why.contains("set TMPDIR"), "{why}");
    }

    #[test]
    fn parts_kept_are_held_again_without_a_listing_until_a_refresh() {
        use crate::storage::Backend as _;
        let store = Arc::new(object_store::memory::InMemory::new());
        let put = |rel: &str| put_3_bytes(&store, rel);
        let blob = |p: &str, n: u8| format!("blobs/sha256/{p}/{p}{}/data", format!("{n:02x}").repeat(31));
        for n in 0..100 {
            put(&blob("aa", n));
        }
        put(&blob("bb", 1));
        let everything = |_: &str, _: usize| false;
        for keep in [false, true] {
            let b = over(&store, Some((crate::layout::paths::BLOBS, Parts::Depth(2))));
            if keep {
                b.keep_parts().unwrap();
            }
            b.hold_part("blobs/sha256/aa").unwrap();
            let first = scanned(&b, "blobs/sha256/aa", &everything);
            assert_eq!(first.1.len(), 100);
            b.release_part("blobs/sha256/aa");
            let late = blob("aa", 200);
            put(&late);
            // Held again: kept as first listed (in the spool), or listed anew.
            b.hold_part("blobs/sha256/aa").unwrap();
            let again = scanned(&b, "blobs/sha256/aa", &everything);
            assert_eq!(b.stat(&late).unwrap().is_some(), !keep);
            assert_eq!(again.1.len(), if keep { 100 } else { 101 });
            if keep {
                assert_eq!(again, first);
                let held = b.parts.lock().unwrap();
                let kept = held["blobs/sha256/aa"].read().unwrap();
                assert!(kept.is_spooled(), "kept out of memory");
            }
            // A refresh forgets what was kept.
            b.refresh();
            b.hold_part("blobs/sha256/aa").unwrap();
            assert!(b.stat(&late).unwrap().is_some());
            b.release_part("blobs/sha256/aa");
            futures::executor::block_on(
                store.delete(&Key::from(format!("srv/registry/docker/registry/v2/{late}"))),
            )
            .unwrap();
        }
    }

    #[test]
    fn repositories_held_one_at_a_time_scan_as_a_whole_area() {
        use crate::storage::Backend as _;
        let store = Arc::new(object_store::memory::InMemory::new());
        let put = |rel: &str| put_3_bytes(&store, rel);
        for k in [
            "repositories/a/_layers/sha256/aa/link",
            "repositories/a/_manifests/tags/t/current/link",
            "repositories/a/b/_layers/sha256/bb/link",
            "repositories/a/b/c/_uploads/u/startedat",
            "repositories/a/stray",
            "repositories/x/_manifests/revisions/sha256/cc/link",
            "repositories/x/_odd/y",
            "repositories/_top/z",
        ] {
            put(k);
        }
        let open = |parts: bool| {
            over(
                &store,
                parts.then_some((crate::layout::paths::REPOSITORIES, Parts::Repository)),
            )
        };
        let (whole, by_parts) = (open(false), open(true));
        let names = |rel: &str, _: usize| rel.rsplit('/').next().is_some_and(|c| c.starts_with('_'));
        let everything = |_: &str, _: usize| false;
        let first = |_: &str, d: usize| d == 1;
        scan_alike(
            &by_parts,
            &whole,
            &[
                ("repositories", &names as Stop),
                ("repositories", &everything),
                ("repositories", &first),
                ("repositories/a", &names),
                ("repositories/a", &everything),
                ("repositories/a/_layers", &everything),
                ("repositories/a/b/_layers", &everything),
                ("repositories/x/_odd", &everything),
                ("repositories/none", &everything),
            ],
        );
        assert_eq!(
            Parts::Repository.of("repositories", "repositories/a/b/_layers/sha256"),
            Some("repositories/a/b/_".into())
        );
        assert_eq!(Parts::Repository.of("repositories", "repositories/a/b"), None);
        // Held: answered from the repository's own listing.
        for r in by_parts.hold_parts(&["repositories/a/_".into(), "repositories/a/b/_".into()]) {
            r.unwrap();
        }
        let late = "repositories/a/_layers/sha256/dd/link";
        put(late);
        assert!(by_parts
            .stat("repositories/a/_layers/sha256/aa/link")
            .unwrap()
            .is_some());
        assert!(by_parts.stat(late).unwrap().is_none(), "held: as listed");
        assert_eq!(
            scanned(&by_parts, "repositories/a/b/_layers", &everything).1,
            ["object repositories/a/b/_layers/sha256/bb/link Some(3)"]
        );
        let held = by_parts
            .parts
            .lock()
            .unwrap()
            .get("repositories/a/_")
            .cloned()
            .unwrap();
        let mut in_a = Vec::new();
        below(&held, "repositories/", &mut |k, _| in_a.push(k));
        assert_eq!(
            in_a,
            [
                "repositories/a/_layers/sha256/aa/link",
                "repositories/a/_manifests/tags/t/current/link"
            ],
            "a repository's part holds none of its nested ones' keys"
        );
        by_parts.release_part("repositories/a/_");
        by_parts.release_part("repositories/a/b/_");
        assert!(
            by_parts.stat(late).unwrap().is_some(),
            "released: asked of the store"
        );
        assert!(by_parts.parts.lock().unwrap().is_empty());
        assert!(!by_parts.areas.lock().unwrap().contains_key("repositories"));
        assert!(whole.areas.lock().unwrap().contains_key("repositories"));
    }

    /// The repositories found above their parts are found once: a second
    /// scan answers from the delimited listings kept, until the backend
    /// writes or deletes anything, or is refreshed (reg-rm finds the
    /// repositories for its mark and again for the blobs' links).
    #[test]
    fn listings_above_parts_are_kept_until_a_change_or_a_refresh() {
        use crate::storage::Backend as _;
        let store = Arc::new(object_store::memory::InMemory::new());
        let put = |rel: &str| put_3_bytes(&store, rel);
        put("repositories/a/_layers/sha256/aa/link");
        let b = over(
            &store,
            Some((crate::layout::paths::REPOSITORIES, Parts::Repository)),
        );
        let names = |rel: &str, _: usize| rel.rsplit('/').next().is_some_and(|c| c.starts_with('_'));
        let found = |b: &ObjectBackend| scanned(b, "repositories", &names).1;
        assert_eq!(found(&b), ["prefix repositories/a/_layers"]);
        put("repositories/b/_layers/sha256/bb/link");
        assert_eq!(found(&b), ["prefix repositories/a/_layers"], "kept");
        b.refresh();
        let both = ["prefix repositories/a/_layers", "prefix repositories/b/_layers"];
        assert_eq!(found(&b), both, "refreshed: listed again");
        put("repositories/c/_layers/sha256/cc/link");
        assert!(b
            .write_new("repositories/a/_layers/sha256/dd/link", b"x")
            .unwrap());
        assert_eq!(found(&b).len(), 3, "after a write: listed again");
        assert_eq!(found(&b).len(), 3);
        put("repositories/d/_layers/sha256/dd/link");
        for r in b.delete_batch(&["repositories/c/_layers/sha256/cc/link".into()]) {
            assert!(r.unwrap());
        }
        assert_eq!(
            found(&b),
            [
                "prefix repositories/a/_layers",
                "prefix repositories/b/_layers",
                "prefix repositories/d/_layers"
            ],
            "after a delete: listed again"
        );
    }

    /// With `blobs/` held by prefix and the manifest cache on, the
    /// manifests a walk will read are looked up a batch of prefix
    /// directories at a time: those stored are known so until a refresh;
    /// one missing is not; nothing is looked up without the cache, or with
    /// `blobs/` listed whole.
    #[test]
    fn manifests_are_looked_up_by_prefix_only_where_that_saves_requests() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let (here, gone) = (
            crate::digest::Digest::sha256_of(b"here"),
            crate::digest::Digest::sha256_of(b"gone"),
        );
        put_3_bytes(&store, &crate::layout::paths::blob_data(&here));
        let cache = tempfile::tempdir().unwrap();
        let open = |by_parts: bool, cached: bool| {
            let b = over(
                &store,
                by_parts.then_some((crate::layout::paths::BLOBS, Parts::Depth(2))),
            );
            let s = crate::layout::Store::new(Box::new(b));
            if cached {
                s.with_manifest_cache(cache.path())
            } else {
                s
            }
        };
        let s = open(true, true);
        s.look_up_manifests(vec![gone, here, here]);
        assert!(s.known_stored(&here));
        assert!(!s.known_stored(&gone));
        s.refresh();
        assert!(!s.known_stored(&here), "refreshed: asked again");
        for s in [open(true, false), open(false, true)] {
            s.look_up_manifests(vec![here]);
            assert!(!s.known_stored(&here));
        }
    }

    #[test]
    fn md5_of_a_link() {
        // The ETag moto and S3 give a link naming sha256 of the empty string.
        assert_eq!(
            md5_from_hex("d41d8cd98f00b204e9800998ecf8427e"),
            Some(md5_of(b""))
        );
        assert_eq!(md5_from_hex("d41d8cd98f00b204e9800998ecf8427e-2"), None);
    }
}
