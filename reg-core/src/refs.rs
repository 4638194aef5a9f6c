//! `reg-refs`: the reference graph — what the live manifests of each
//! repository reference.
//!
//! Roots are every tag's current manifest and, by default, every revision (the
//! registry's own default: nothing untagged is collected). With
//! [`Config::tagged_only`] an untagged manifest stays live only when it is a
//! child of a live index, when its OCI `subject` is live (signatures, SBOMs,
//! attestations, and chains of them), or when its revision link is younger
//! than [`Config::keep_recent`].
//!
//! The walk reads each distinct manifest once, whatever the number of
//! repositories holding it (a cache keyed by digest), in parallel waves: first
//! every root (tag targets, and revisions unless `--tagged-only`), then the
//! children the live sets still need, until nothing new is needed; then every
//! other revision, for its `subject` and children only, and whatever that
//! makes live. Only the few fields the graph needs are kept, packed; the
//! manifest bytes are dropped after parsing.
//!
//! It fails closed: a manifest whose data is there but cannot be read, is too
//! large, is not a manifest or does not hash to its digest, and any listing
//! problem that could hide a root, end the walk with an error before anything
//! is written. A manifest whose data is missing (an image already broken) is a
//! warning, counted in the trailer's `missing`.
//!
//! Memory: once every manifest is loaded nothing can fail any more, so the
//! edges of a repository are computed only when it is written (and dropped
//! after): what stays in memory is the roots and the packed manifests, each
//! digest of a manifest interned once as a 4-byte id, and the configs and
//! layers of live manifests only (about 36 bytes each). A revision read for
//! its subject alone keeps only that and its children; one that turns out
//! live (a referrer) is read again, whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::layout::{check_repo_name, paths, LinkKind, LinkName, Store};
use crate::manifest;
use crate::messages::Messages;
use crate::output::Out;
use crate::progress::Phase;
use crate::record::{RefRecord, RefsEnd};

pub use crate::layout::MANIFEST_LIMIT;

/// What counts as a root.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Only tags are roots; untagged manifests live through an index, a
    /// `subject`, or `keep_recent`.
    pub tagged_only: bool,
    /// With `tagged_only`: revisions whose link is younger than this are
    /// roots too (printed as `revision` records).
    pub keep_recent: Option<Duration>,
    /// Only these repositories' roots; empty means all (and only then is the
    /// result `complete`).
    pub repos: Vec<String>,
    /// Tags treated as gone: not listed, not roots (reg-rm's mark leaves out
    /// the tags its run removes).
    pub skip_tags: HashSet<(String, String)>,
    /// Revisions that are never roots, whatever the policy (reg-rm's mark:
    /// the revisions its run removes). They are still listed, so a live
    /// subject or index can make them live.
    pub skip_revisions: HashSet<(String, Digest)>,
    /// A manifest that is there but cannot be used (unreadable, not a
    /// manifest, wrong digest) counts as a broken image, like a missing one,
    /// instead of failing the walk (reg-rm's mark, which decides per item).
    pub broken_ok: bool,
    /// What-if (`--exclude-repo`): these repositories' tags and revisions
    /// are not roots, as if they were deleted; the trailer names them.
    pub exclude_repos: Vec<String>,
    /// "Now" for `keep_recent` (the storage's clock: [`crate::clock`]);
    /// `None`: this machine's.
    pub now: Option<SystemTime>,
}

/// Counts for the trailer and the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Repositories walked.
    pub repos: u64,
    /// Tag root records.
    pub tags: u64,
    /// Revision root records.
    pub revisions: u64,
    /// Live (repository, manifest) pairs whose data was read.
    pub manifests: u64,
    /// Edge records (manifest, config, layer, referrer).
    pub references: u64,
    /// (repository, manifest) pairs named by a tag, a revision or an index
    /// whose data is missing.
    pub missing: u64,
    /// Distinct manifests read and parsed (each once, however many
    /// repositories hold it).
    pub parsed: u64,
    /// Rounds of loading then walking every repository: a few, whatever the
    /// depth of nested indexes (each round walks every repository again).
    pub waves: u64,
}

/// The kind of an edge record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// Index → child manifest.
    Manifest,
    Config,
    Layer,
    /// Subject → referrer.
    Referrer,
}

/// One edge of a repository's graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub kind: EdgeKind,
    /// The referencing manifest (the subject, for a referrer edge).
    pub manifest: Digest,
    pub digest: Digest,
    /// The descriptor's size (config and layer edges).
    pub size: Option<u64>,
    /// What the repository's link for `digest` names, when that is another
    /// digest (an [`crate::layout::Alias`]): the blob served for `digest`.
    pub target: Option<Digest>,
}

/// The roots and edges of one repository, in output order (see
/// [`Graph::repos`]).
#[derive(Clone, Debug, Default)]
pub struct RepoGraph {
    pub repo: String,
    /// Tag name and target, by tag name.
    pub tags: Vec<(String, Digest)>,
    /// Revision roots, by digest.
    pub revisions: Vec<Digest>,
    /// Edges, by manifest digest; within a manifest: children, config,
    /// layers and other blobs in document order, then referrers by digest.
    pub edges: Vec<Edge>,
}

/// The result of [`collect`]: what [`write()`] prints. It holds the roots
/// and the loaded manifests; each repository's edges are computed when its
/// records are asked for.
pub struct Graph {
    roots: Vec<Roots>,
    cache: InRunManifests,
    pub stats: Stats,
    /// Every repository was walked (no `repos` filter).
    pub complete: bool,
    /// The storage root walked ([`Store::root_id`]), for the trailer (not
    /// the reachability roots: those are `roots`).
    pub storage_root: String,
    /// Manifests named but missing (or unusable, with `broken_ok`), each
    /// already warned about.
    pub broken: Vec<Broken>,
    /// See [`root_fingerprint`].
    pub fingerprint: [u8; 32],
    /// [`Config::exclude_repos`], for the trailer.
    pub excluded: Vec<String>,
}

impl Graph {
    /// Every record but the trailer, in output order. Edges are computed
    /// one repository at a time, as the iterator reaches it.
    pub fn records(&self) -> impl Iterator<Item = RefRecord> + '_ {
        self.roots.iter().flat_map(move |r| {
            let name = &r.repo;
            let edges = edges_of(r, &walk(r, &self.cache), &self.cache);
            let cache = &self.cache;
            let tags = r.tags().flat_map(move |(tag, id)| {
                r.targets_or_none(cache, id).map(move |target| RefRecord::Tag {
                    repo: name.clone(),
                    tag: tag.to_string(),
                    digest: cache.digest(id),
                    target,
                })
            });
            let revs = r.revision_roots().flat_map(move |id| {
                r.targets_or_none(cache, id)
                    .map(move |target| RefRecord::Revision {
                        repo: name.clone(),
                        digest: cache.digest(id),
                        target,
                    })
            });
            let links = r.links.iter().map(move |(link, d)| RefRecord::Link {
                repo: name.clone(),
                name: link.clone(),
                digest: *d,
            });
            let edges = edges.into_iter().map(move |e| edge_record(name, &e));
            tags.chain(revs).chain(links).chain(edges)
        })
    }

    /// Every repository's roots and edges, materialized (for tests and
    /// small trees: [`Graph::records`] needs one repository at a time).
    pub fn repos(&self) -> Vec<RepoGraph> {
        self.roots
            .iter()
            .map(|r| RepoGraph {
                repo: r.repo.clone(),
                tags: r
                    .tags()
                    .map(|(t, id)| (t.to_string(), self.cache.digest(id)))
                    .collect(),
                revisions: r.revision_roots().map(|id| self.cache.digest(id)).collect(),
                edges: edges_of(r, &walk(r, &self.cache), &self.cache),
            })
            .collect()
    }

    /// The trailer record's counts.
    pub fn trailer(&self) -> RefsEnd {
        RefsEnd {
            tool: "reg-refs".into(),
            repos: self.stats.repos,
            tags: self.stats.tags,
            manifests: self.stats.manifests,
            references: self.stats.references,
            missing: self.stats.missing,
            complete: self.complete,
            revisions: self.stats.revisions,
            root: Some(self.storage_root.clone()),
            excluded: self.excluded.clone(),
        }
    }
}

fn edge_record(repo: &str, e: &Edge) -> RefRecord {
    let repo = repo.to_string();
    let (manifest, digest, size, target) = (e.manifest, e.digest, e.size, e.target);
    match e.kind {
        EdgeKind::Manifest => RefRecord::Manifest {
            repo,
            manifest,
            digest,
            target,
        },
        EdgeKind::Config => RefRecord::Config {
            repo,
            manifest,
            digest,
            size,
            target,
        },
        EdgeKind::Layer => RefRecord::Layer {
            repo,
            manifest,
            digest,
            size,
            target,
        },
        EdgeKind::Referrer => RefRecord::Referrer {
            repo,
            manifest,
            digest,
            target,
        },
    }
}

/// Writes every record, then the trailer (or, if `msgs` counted an error,
/// the error record that replaces it: see [`Out::end`]), and flushes.
pub fn write<W: Write>(graph: &Graph, out: &mut Out<W>, msgs: &Messages) -> std::io::Result<()> {
    for rec in graph.records() {
        out.write(&rec)?;
    }
    out.end(&RefRecord::End(graph.trailer()), msgs).map(|_| ())
}

// ---- packed digests -----------------------------------------------------------

// A packed entry: a tag byte (a code in the low bits, `SHA512` or `SHA384`
// if the digest is not a sha256 one, `SIZED` if a size follows), the digest's
// raw bytes (32, 48 or 64), then the size as a LEB128 varint. About 36 bytes for a sha256 layer
// instead of the 152 of an [`Edge`]. In the cache's arena, the entries that
// name manifests (children, subject) hold a 4-byte manifest id instead of
// the digest.
const CODE_MASK: u8 = 0x0f;
const SHA512: u8 = 0x10;
const SIZED: u8 = 0x20;
const SHA384: u8 = 0x40;
/// Codes: the three edge kinds a manifest has itself, and its subject.
const CHILD: u8 = 0;
const CONFIG: u8 = 1;
const LAYER: u8 = 2;
const SUBJECT: u8 = 3;

fn pack(buf: &mut Vec<u8>, code: u8, d: &Digest, size: Option<u64>) {
    let mut tag = code;
    match d {
        Digest::Sha256(_) => {}
        Digest::Sha384(_) => tag |= SHA384,
        Digest::Sha512(_) => tag |= SHA512,
    }
    if size.is_some() {
        tag |= SIZED;
    }
    buf.push(tag);
    buf.extend_from_slice(d.bytes());
    if let Some(s) = size {
        put_varint(buf, s);
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a LEB128 varint off the front of `rest`.
fn take_varint(rest: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let (&b, r) = rest.split_first().expect("a complete varint");
        *rest = r;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Reads a packed digest (after its tag byte) off the front of `rest`.
fn take_digest(tag: u8, rest: &mut &[u8]) -> Digest {
    if tag & SHA512 != 0 {
        let (b, r) = rest.split_at(64);
        *rest = r;
        Digest::Sha512(b.try_into().expect("64 bytes"))
    } else if tag & SHA384 != 0 {
        let (b, r) = rest.split_at(48);
        *rest = r;
        Digest::Sha384(b.try_into().expect("48 bytes"))
    } else {
        let (b, r) = rest.split_at(32);
        *rest = r;
        Digest::Sha256(b.try_into().expect("32 bytes"))
    }
}

/// The entries of a packed byte string, as (code, digest, size).
struct Unpack<'a>(&'a [u8]);

impl Iterator for Unpack<'_> {
    type Item = (u8, Digest, Option<u64>);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, mut rest) = self.0.split_first()?;
        let d = take_digest(tag, &mut rest);
        let size = (tag & SIZED != 0).then(|| take_varint(&mut rest));
        self.0 = rest;
        Some((tag & CODE_MASK, d, size))
    }
}

// ---- manifests ------------------------------------------------------------

/// A manifest id: an index into the cache's sha256 keys or, with [`IDLONG`]
/// set, into its longer (sha384, sha512) ones.
type Id = u32;
const IDLONG: Id = 1 << 31;

/// One entry of a parsed manifest in the cache's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// An index entry (or a descriptor whose media type says manifest).
    Child(Id),
    Subject(Id),
    /// A config (code [`CONFIG`]) or a layer or other blob ([`LAYER`]).
    Blob(u8, Digest, Option<u64>),
}

/// The entries of a parsed manifest, as stored in the arena.
#[derive(Clone, Copy)]
struct Node<'a>(&'a [u8]);

impl<'a> Node<'a> {
    fn items(self) -> impl Iterator<Item = Item> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (&tag, r) = rest.split_first()?;
            rest = r;
            let code = tag & CODE_MASK;
            Some(match code {
                CHILD | SUBJECT => {
                    let (b, r) = rest.split_at(4);
                    rest = r;
                    let id = Id::from_le_bytes(b.try_into().expect("4 bytes"));
                    if code == CHILD {
                        Item::Child(id)
                    } else {
                        Item::Subject(id)
                    }
                }
                _ => {
                    let d = take_digest(tag, &mut rest);
                    let size = (tag & SIZED != 0).then(|| take_varint(&mut rest));
                    Item::Blob(code, d, size)
                }
            })
        })
    }

    fn subjects(self) -> impl Iterator<Item = Id> + 'a {
        self.items().filter_map(|i| match i {
            Item::Subject(s) => Some(s),
            _ => None,
        })
    }

    fn children(self) -> impl Iterator<Item = Id> + 'a {
        self.items().filter_map(|i| match i {
            Item::Child(c) => Some(c),
            _ => None,
        })
    }

    /// Child, config and layer edges, in output order.
    fn edges(self, cache: &'a InRunManifests) -> impl Iterator<Item = (EdgeKind, Digest, Option<u64>)> + 'a {
        self.items().filter_map(move |i| match i {
            Item::Child(c) => Some((EdgeKind::Manifest, cache.digest(c), None)),
            Item::Blob(CONFIG, d, size) => Some((EdgeKind::Config, d, size)),
            Item::Blob(_, d, size) => Some((EdgeKind::Layer, d, size)),
            Item::Subject(_) => None,
        })
    }

    fn edge_count(self) -> usize {
        self.items().filter(|i| !matches!(i, Item::Subject(_))).count()
    }
}

/// What the graph keeps of a parsed manifest, packed with full digests (see
/// [`pack`]): its subject, then its children (index entries to follow), then
/// its config, layers and other blobs in document order — each (kind,
/// target) once, as it is printed. [`InRunManifests::put`] stores it in the arena.
fn node_of(m: manifest::Manifest) -> Vec<u8> {
    let mut buf = Vec::with_capacity(40 * (m.layers.len() + m.children.len() + m.other.len() + 2));
    for s in &m.subjects {
        pack(&mut buf, SUBJECT, &s.digest, None);
    }
    // One edge per (kind, target) within a manifest: an image may list the
    // same layer twice; the first one is kept.
    let mut seen: HashSet<(u8, Digest)> = HashSet::new();
    let mut add = |buf: &mut Vec<u8>, code: u8, d: &manifest::Descriptor, size: Option<u64>| {
        if seen.insert((code, d.digest)) {
            pack(buf, code, &d.digest, size);
        }
    };
    // Every descriptor of an unknown kind is kept: as a blob, or, when its
    // media type says it is a manifest, as a child followed like an index
    // entry (so what it references is kept too). When in doubt, keep.
    let is_manifest = |d: &manifest::Descriptor| {
        d.media_type
            .as_deref()
            .is_some_and(|t| manifest::Kind::from_media_type(t) != manifest::Kind::Unknown)
    };
    for d in m.children.iter().chain(m.other.iter().filter(|d| is_manifest(d))) {
        add(&mut buf, CHILD, d, None);
    }
    for c in &m.configs {
        add(&mut buf, CONFIG, c, c.size);
    }
    // Layers, artifact blobs and schema1 fsLayers: blobs to keep.
    for d in m.layers.iter().chain(m.other.iter().filter(|d| !is_manifest(d))) {
        add(&mut buf, LAYER, d, d.size);
    }
    buf
}

/// A manifest as [`load`] returns it: packed by [`node_of`], with the
/// parser's notes; `None` if its data is missing.
type Loaded = Result<Option<(Vec<u8>, Vec<String>)>, Error>;

/// One manifest, through [`Store::manifest`], packed.
fn load(store: &Store, d: &Digest) -> Loaded {
    Ok(store.manifest(d)?.map(|mut m| {
        let notes = std::mem::take(&mut m.notes);
        (node_of(m), notes)
    }))
}

/// What is known of one manifest.
///
/// `full: false` is a manifest read only for its subject and children: a
/// revision that is not a root, which only a live subject or index can make
/// live. Its configs and layers are not kept (with `--tagged-only` most
/// such revisions stay dead); if it turns out live, it is read again whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Named (a child, a subject, a revision) but not asked for yet.
    Unknown,
    /// To load; first asked for by repository `repo` (for messages).
    Pending { repo: u32, full: bool },
    /// Its data is missing (or, with [`Config::broken_ok`], unusable).
    Missing,
    /// Parsed: its entries are at this place of the arena ([`Arena::get`]).
    Parsed { at: u64, full: bool },
}

const S_UNKNOWN: u64 = u64::MAX;
const S_MISSING: u64 = u64::MAX - 1;
const S_PENDING: u64 = 1 << 62;
const S_PART: u64 = 1 << 61;

impl State {
    fn encode(self) -> u64 {
        let part = |full: bool| if full { 0 } else { S_PART };
        match self {
            State::Unknown => S_UNKNOWN,
            State::Missing => S_MISSING,
            State::Pending { repo, full } => S_PENDING | part(full) | u64::from(repo),
            State::Parsed { at, full } => {
                assert!(at < S_PART, "manifest arena too large");
                part(full) | at
            }
        }
    }

    fn decode(s: u64) -> State {
        let full = s & S_PART == 0;
        match s {
            S_UNKNOWN => State::Unknown,
            S_MISSING => State::Missing,
            s if s & S_PENDING != 0 => State::Pending { repo: s as u32, full },
            s => State::Parsed {
                at: s & (S_PART - 1),
                full,
            },
        }
    }
}

/// The in-run manifest store (not the on-disk `--manifest-cache`): every
/// manifest digest the walk has met, interned once (32 bytes for a
/// sha256 one, plus 4 bytes of hash table and 8 of state), and the parsed
/// manifests packed one after another in one arena: no allocation, hash
/// entry or pointer per manifest. Roots and index children are ids.
#[derive(Default)]
struct InRunManifests {
    k256: Vec<[u8; 32]>,
    /// sha384 and sha512 digests (rare), whole.
    klong: Vec<Digest>,
    /// Ids by digest, hashed by the digest's first eight bytes.
    index: hashbrown::HashTable<Id>,
    /// By id (like the keys): the [`State`], encoded.
    s256: Vec<u64>,
    slong: Vec<u64>,
    arena: Arena,
    /// With [`Config::broken_ok`]: manifests that are there but unusable
    /// (loaded as missing), and why.
    unusable: HashMap<Digest, String>,
    /// Manifests whose parser notes were warned about.
    noted: HashSet<Digest>,
    /// Ids [`InRunManifests::want`] marked pending, in the order asked.
    queue: Vec<Id>,
    /// Ids in [`State::Pending`] now: reads to come, for the progress line.
    pending: u64,
}

/// The parsed manifests, packed one after another in blocks of [`BLOCK`]
/// bytes (a larger one gets a block of its own): no allocation per
/// manifest, and no reallocation of the whole as it grows (a doubling
/// vector would copy it and hold up to twice its size).
#[derive(Default)]
struct Arena {
    blocks: Vec<Vec<u8>>,
}

const BLOCK: usize = 1 << 20;

impl Arena {
    /// Stores `bytes` (its length, a varint, then the bytes); returns where:
    /// the block in the high 32 bits, the offset in the low ones.
    fn push(&mut self, bytes: &[u8]) -> u64 {
        let need = bytes.len() + 10;
        let fits = self.blocks.last().is_some_and(|b| b.capacity() - b.len() >= need);
        if !fits {
            self.blocks.push(Vec::with_capacity(need.max(BLOCK)));
        }
        let index = self.blocks.len() - 1;
        let block = &mut self.blocks[index];
        let at = ((index as u64) << 32) | block.len() as u64;
        put_varint(block, bytes.len() as u64);
        block.extend_from_slice(bytes);
        at
    }

    fn get(&self, at: u64) -> &[u8] {
        let block = &self.blocks[(at >> 32) as usize];
        let mut rest = &block[(at & 0xffff_ffff) as usize..];
        let len = take_varint(&mut rest) as usize;
        &rest[..len]
    }
}

/// A digest's hash: its first eight bytes (digests are uniformly spread).
fn hash_of(key: &[u8]) -> u64 {
    u64::from_le_bytes(key[..8].try_into().expect("a digest is longer than 8 bytes"))
}

fn key_of<'a>(k256: &'a [[u8; 32]], klong: &'a [Digest], id: Id) -> &'a [u8] {
    if id & IDLONG != 0 {
        klong[(id & !IDLONG) as usize].bytes()
    } else {
        &k256[id as usize]
    }
}

impl InRunManifests {
    fn digest(&self, id: Id) -> Digest {
        if id & IDLONG != 0 {
            self.klong[(id & !IDLONG) as usize]
        } else {
            Digest::Sha256(self.k256[id as usize])
        }
    }

    /// Orders ids as their digests are ordered.
    fn cmp_ids(&self, a: Id, b: Id) -> std::cmp::Ordering {
        if (a | b) & IDLONG != 0 {
            return self.digest(a).cmp(&self.digest(b));
        }
        key_of(&self.k256, &self.klong, a).cmp(key_of(&self.k256, &self.klong, b))
    }

    /// The id of `d`, if it is interned.
    fn find(&self, d: &Digest) -> Option<Id> {
        let key = d.bytes();
        self.index
            .find(hash_of(key), |&id| match d {
                Digest::Sha256(b) => id & IDLONG == 0 && self.k256[id as usize] == *b,
                _ => id & IDLONG != 0 && self.klong[(id & !IDLONG) as usize] == *d,
            })
            .copied()
    }

    /// The id of `d`, interned as [`State::Unknown`] if new.
    fn intern(&mut self, d: &Digest) -> Id {
        let key = d.bytes();
        let (k256, klong) = (&self.k256, &self.klong);
        let entry = self.index.entry(
            hash_of(key),
            |&id| match d {
                Digest::Sha256(b) => id & IDLONG == 0 && k256[id as usize] == *b,
                _ => id & IDLONG != 0 && klong[(id & !IDLONG) as usize] == *d,
            },
            |&id| hash_of(key_of(k256, klong, id)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => *e.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                assert!(
                    self.k256.len().max(self.klong.len()) < IDLONG as usize,
                    "more than 2^31 manifests"
                );
                let id = match d {
                    Digest::Sha256(b) => {
                        self.k256.push(*b);
                        self.s256.push(S_UNKNOWN);
                        (self.k256.len() - 1) as Id
                    }
                    long => {
                        self.klong.push(*long);
                        self.slong.push(S_UNKNOWN);
                        (self.klong.len() - 1) as Id | IDLONG
                    }
                };
                v.insert(id);
                id
            }
        }
    }

    fn state(&self, id: Id) -> State {
        State::decode(if id & IDLONG != 0 {
            self.slong[(id & !IDLONG) as usize]
        } else {
            self.s256[id as usize]
        })
    }

    fn set(&mut self, id: Id, s: State) {
        let slot = if id & IDLONG != 0 {
            &mut self.slong[(id & !IDLONG) as usize]
        } else {
            &mut self.s256[id as usize]
        };
        let was = State::decode(*slot);
        *slot = s.encode();
        match (
            matches!(was, State::Pending { .. }),
            matches!(s, State::Pending { .. }),
        ) {
            (false, true) => self.pending += 1,
            (true, false) => self.pending -= 1,
            _ => {}
        }
    }

    /// Every id, sha256 ones first.
    fn ids(&self) -> impl Iterator<Item = Id> {
        (0..self.k256.len() as Id).chain((0..self.klong.len() as Id).map(|i| i | IDLONG))
    }

    /// The parsed manifest `id`, if it is one.
    fn node(&self, id: Id) -> Option<Node<'_>> {
        let State::Parsed { at, .. } = self.state(id) else {
            return None;
        };
        Some(Node(self.arena.get(at)))
    }

    /// Stores `raw` (from [`node_of`]) as manifest `id`, parsed, with its
    /// children and subject as ids; without its configs and layers unless
    /// `full`. `scratch` is reused between calls.
    fn put(&mut self, id: Id, raw: &[u8], full: bool, scratch: &mut Vec<u8>) {
        scratch.clear();
        for (code, d, size) in Unpack(raw) {
            if code == CHILD || code == SUBJECT {
                scratch.push(code);
                scratch.extend_from_slice(&self.intern(&d).to_le_bytes());
            } else if full {
                pack(scratch, code, &d, size);
            }
        }
        let at = self.arena.push(scratch);
        self.set(id, State::Parsed { at, full });
    }

    /// Marks `id` to load, for repository `repo`: whole if `full` (then a
    /// manifest read only in part is read again), else for its subject and
    /// children only. Nothing changes if that much is known or asked.
    fn want(&mut self, id: Id, repo: u32, full: bool) {
        let pending = match self.state(id) {
            State::Unknown => State::Pending { repo, full },
            State::Pending { repo, full: false } if full => State::Pending { repo, full },
            State::Parsed { full: false, .. } if full => State::Pending { repo, full },
            _ => return,
        };
        self.set(id, pending);
        self.queue.push(id);
    }

    /// Distinct manifests read (whole or in part).
    fn parsed(&self) -> u64 {
        self.ids()
            .filter(|&id| matches!(self.state(id), State::Parsed { .. }))
            .count() as u64
    }
}

// ---- liveness -------------------------------------------------------------

/// One repository's roots as listed.
struct Roots {
    repo: String,
    /// Tag names, by name, concatenated; `tag_ends` says where each ends.
    tag_names: String,
    tag_ends: Vec<u32>,
    /// Tag targets, in the order of `tag_ends`.
    tag_ids: Vec<Id>,
    /// Revisions, by digest.
    revisions: Vec<Id>,
    /// Which revisions are roots.
    revision_root: Vec<bool>,
    /// Links whose content names another digest than their path (see
    /// [`crate::layout::Alias`]): (name, target, kind), by name id.
    aliases: Vec<(Id, Id, LinkKind)>,
    /// Links under an algorithm no tool knows: (`alg:name`, target).
    links: Vec<(String, Digest)>,
}

impl Roots {
    fn tags(&self) -> impl Iterator<Item = (&str, Id)> + '_ {
        let starts = std::iter::once(0).chain(self.tag_ends.iter().copied());
        let names = starts
            .zip(self.tag_ends.iter().copied())
            .map(|(a, b)| &self.tag_names[a as usize..b as usize]);
        names.zip(self.tag_ids.iter().copied())
    }

    fn revision_roots(&self) -> impl Iterator<Item = Id> + '_ {
        self.revisions
            .iter()
            .zip(self.revision_root.iter())
            .filter(|(_, root)| **root)
            .map(|(d, _)| *d)
    }

    /// The aliases named `id` in this repository.
    fn aliases_of(&self, id: Id) -> &[(Id, Id, LinkKind)] {
        let from = self.aliases.partition_point(|a| a.0 < id);
        let to = from + self.aliases[from..].partition_point(|a| a.0 == id);
        &self.aliases[from..to]
    }

    /// What a reference to `id` makes the registry read in this repository:
    /// the targets of its aliases, and `id` itself unless a link of this
    /// repository says otherwise (the registry looks for a revision link
    /// first, then a `_layers` link, and reads what the first names; both
    /// are followed here).
    fn follow(&self, cache: &InRunManifests, id: Id) -> impl Iterator<Item = Id> + '_ {
        let aliases = self.aliases_of(id);
        let revision_alias = aliases.iter().any(|a| a.2 == LinkKind::Revision);
        let is_revision = self.revisions.binary_search_by(|x| cache.cmp_ids(*x, id)).is_ok();
        let itself = aliases.is_empty() || (is_revision && !revision_alias);
        itself
            .then_some(id)
            .into_iter()
            .chain(aliases.iter().map(|a| a.1))
    }

    /// The targets of `id`'s aliases as digests, or one `None` if it has
    /// none: one record per target.
    fn targets_or_none<'s>(
        &'s self,
        cache: &'s InRunManifests,
        id: Id,
    ) -> impl Iterator<Item = Option<Digest>> + 's {
        let aliases = self.aliases_of(id);
        let none = aliases.is_empty().then_some(None);
        none.into_iter()
            .chain(aliases.iter().map(move |a| Some(cache.digest(a.1))))
    }

    /// [`Roots::targets_or_none`] for a digest that may not be interned (a
    /// config or layer).
    fn digest_targets<'s>(
        &'s self,
        cache: &'s InRunManifests,
        d: &Digest,
    ) -> impl Iterator<Item = Option<Digest>> + 's {
        let aliases = match cache.find(d) {
            Some(id) => self.aliases_of(id),
            None => &[],
        };
        let none = aliases.is_empty().then_some(None);
        none.into_iter()
            .chain(aliases.iter().map(move |a| Some(cache.digest(a.1))))
    }
}

/// Why a manifest is live (the first reason found), for messages.
#[derive(Clone, Debug)]
enum Why<'a> {
    Tag(&'a str),
    Revision,
    Child(Digest),
    Referrer(Digest),
    /// Named through a link whose path is this digest.
    Alias(Digest),
}

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Tag(t) => write!(f, "tag {t}"),
            Why::Revision => write!(f, "a revision link"),
            Why::Child(i) => write!(f, "index {i}"),
            Why::Referrer(s) => write!(f, "a referrer of {s}"),
            Why::Alias(d) => write!(f, "the link of {d}"),
        }
    }
}

/// A repository's live manifests given what is loaded so far, and the
/// manifests still to load.
struct Walk<'a> {
    /// Live manifests, by digest.
    live: Vec<Id>,
    live_set: HashSet<Id, IdHash>,
    /// subject → referrers among the repository's revisions, by digest.
    referrers: HashMap<Id, Vec<Id>, IdHash>,
    needed: Vec<Id>,
    /// Live manifests whose data is missing, and why each is live.
    missing: Vec<(Id, Why<'a>)>,
}

/// Hashes a manifest id (a small dense integer) by itself.
type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the id over the high bits the table looks at too.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i);
    }
}

fn walk<'a>(r: &'a Roots, cache: &InRunManifests) -> Walk<'a> {
    let mut referrers: HashMap<Id, Vec<Id>, IdHash> = HashMap::default();
    for &rev in &r.revisions {
        // A revision read through its alias link is that link's target.
        for read in r.follow(cache, rev) {
            for s in cache.node(read).into_iter().flat_map(Node::subjects) {
                // Keyed by the subject and what it names here, so that a
                // subject reached by either name finds its referrers.
                for key in std::iter::once(s).chain(r.aliases_of(s).iter().map(|a| a.1)) {
                    referrers.entry(key).or_default().push(rev);
                }
            }
        }
    }
    for rs in referrers.values_mut() {
        rs.sort_by(|a, b| cache.cmp_ids(*a, *b));
        rs.dedup();
    }

    let mut queue: Vec<(Id, Why)> = Vec::new();
    queue.extend(r.tags().map(|(t, d)| (d, Why::Tag(t))));
    queue.extend(r.revision_roots().map(|d| (d, Why::Revision)));
    queue.reverse(); // pop in listing order, so the first reason is the tag
    let mut live_set = HashSet::default();
    let mut needed = Vec::new();
    let mut missing = Vec::new();
    while let Some((d, why)) = queue.pop() {
        if !live_set.insert(d) {
            continue;
        }
        if let Some(rs) = referrers.get(&d) {
            queue.extend(rs.iter().map(|x| (*x, Why::Referrer(cache.digest(d)))));
        }
        let mut itself = false;
        for read in r.follow(cache, d) {
            if read == d {
                itself = true;
            } else {
                queue.push((read, Why::Alias(cache.digest(d))));
            }
        }
        if !itself {
            // Only a name: the registry reads its alias's target.
            continue;
        }
        match cache.state(d) {
            State::Unknown | State::Pending { .. } => needed.push(d),
            State::Missing => missing.push((d, why)),
            State::Parsed { full, .. } => {
                if !full {
                    needed.push(d);
                }
                let n = cache.node(d).expect("parsed");
                queue.extend(n.children().map(|c| (c, Why::Child(cache.digest(d)))));
            }
        }
    }
    let mut live: Vec<Id> = live_set.iter().copied().collect();
    live.sort_by(|a, b| cache.cmp_ids(*a, *b));
    Walk {
        live,
        live_set,
        referrers,
        needed,
        missing,
    }
}

fn edges_of(r: &Roots, w: &Walk, cache: &InRunManifests) -> Vec<Edge> {
    let mut edges = Vec::new();
    for &id in &w.live {
        let Some(n) = cache.node(id) else {
            continue;
        };
        let manifest = cache.digest(id);
        // Each (kind, target) is packed once per manifest, and referrers
        // are a set: no duplicates to skip here. An edge to an alias is
        // printed once per target.
        for (kind, digest, size) in n.edges(cache) {
            edges.extend(r.digest_targets(cache, &digest).map(|target| Edge {
                kind,
                manifest,
                digest,
                size,
                target,
            }));
        }
        if let Some(rs) = w.referrers.get(&id) {
            for x in rs.iter().filter(|x| w.live_set.contains(x)) {
                edges.extend(r.targets_or_none(cache, *x).map(|target| Edge {
                    kind: EdgeKind::Referrer,
                    manifest,
                    digest: cache.digest(*x),
                    size: None,
                    target,
                }));
            }
        }
    }
    edges
}

/// `edges_of(r, w, cache).len()`, without making the edges.
fn edge_count(r: &Roots, w: &Walk, cache: &InRunManifests) -> u64 {
    let mut n = 0;
    for &id in &w.live {
        let Some(node) = cache.node(id) else {
            continue;
        };
        if r.aliases.is_empty() {
            n += node.edge_count() as u64;
        } else {
            for (_, d, _) in node.edges(cache) {
                n += r.digest_targets(cache, &d).count() as u64;
            }
        }
        if let Some(rs) = w.referrers.get(&id) {
            for x in rs.iter().filter(|x| w.live_set.contains(x)) {
                n += r.targets_or_none(cache, *x).count() as u64;
            }
        }
    }
    n
}

// ---- the walk -------------------------------------------------------------

/// Lists the roots of every repository in scope and interns them in `cache`.
/// Listing problems that could hide a root are errors; a tag directory
/// without `current/link` is a warning.
fn list_roots(
    store: &Store,
    cfg: &Config,
    now: SystemTime,
    msgs: &Messages,
    cache: &mut InRunManifests,
) -> anyhow::Result<Vec<Roots>> {
    for r in &cfg.repos {
        check_repo_name(r).map_err(|why| anyhow::anyhow!("--repo: {why}"))?;
    }
    msgs.progress()
        .start(Phase::new("listing repositories", ""), None);
    let listing = store.repositories();
    let mut problems: Vec<String> = listing.errors.iter().map(ToString::to_string).collect();
    let mut repos = listing.items;
    if !cfg.repos.is_empty() {
        for r in &cfg.repos {
            if !repos.contains(r) {
                problems.push(Error::other(store.display(&paths::repo(r)), "no such repository").to_string());
            }
        }
        repos.retain(|r| cfg.repos.contains(r));
    }
    for r in &cfg.exclude_repos {
        check_repo_name(r).map_err(|why| anyhow::anyhow!("--exclude-repo: {why}"))?;
        if !repos.contains(r) {
            problems.push(Error::other(store.display(&paths::repo(r)), "no such repository").to_string());
        }
    }
    msgs.progress().start(
        Phase::new("reading tags and revisions", "repositories"),
        Some(repos.len() as u64),
    );
    // A batch of repositories at a time, listed in parallel, then interned:
    // what is held packed at once stays small.
    let mut out = Vec::with_capacity(repos.len());
    for batch in repos.chunks(LIST_BATCH) {
        let listed: Vec<(Listed, Vec<Error>)> = batch
            .par_iter()
            .map(|r| list_repo(store, cfg, now, msgs, r))
            .collect();
        for (l, errors) in listed {
            out.push(intern_listed(l, errors, cache, msgs, &mut problems));
        }
    }
    if !problems.is_empty() {
        return Err(fail(
            msgs,
            problems,
            "a tag or revision that cannot be read could hide live manifests",
        ));
    }
    Ok(out)
}

/// One repository's tags, revisions and aliases, packed (not yet
/// interned), and its listing problems.
fn list_repo(
    store: &Store,
    cfg: &Config,
    now: SystemTime,
    msgs: &Messages,
    repo: &str,
) -> (Listed, Vec<Error>) {
    let repo = repo.to_string();
    let tags = store.tags(&repo);
    let revs = store.revisions_by_name(&repo);
    let aliases = store.aliases(&repo);
    let mut errors = tags.errors;
    errors.extend(revs.errors);
    errors.extend(aliases.errors);
    let mut l = Listed {
        roots: Roots {
            repo,
            tag_names: String::new(),
            tag_ends: Vec::with_capacity(tags.items.len()),
            tag_ids: Vec::new(),
            revisions: Vec::new(),
            revision_root: Vec::with_capacity(revs.items.len()),
            aliases: Vec::new(),
            links: Vec::new(),
        },
        tag_digests: Vec::with_capacity(33 * tags.items.len()),
        revisions: Vec::with_capacity(33 * revs.items.len()),
        aliases: Vec::new(),
    };
    for a in aliases.items {
        match a.name {
            LinkName::Digest(name) => l.aliases.push((name, a.target, a.kind)),
            LinkName::Unknown(name) => l.roots.links.push((name, a.target)),
        }
    }
    let roots = &mut l.roots;
    let excluded = cfg.exclude_repos.contains(&roots.repo);
    for t in &tags.items {
        if excluded {
            continue;
        }
        if !cfg.skip_tags.is_empty() && cfg.skip_tags.contains(&(roots.repo.clone(), t.name.clone())) {
            continue;
        }
        roots.tag_names.push_str(&t.name);
        roots.tag_ends.push(roots.tag_names.len() as u32);
        pack(&mut l.tag_digests, CHILD, &t.digest, None);
    }
    roots.tag_names.shrink_to_fit();
    roots.tag_ends.shrink_to_fit();
    for rev in &revs.items {
        pack(&mut l.revisions, CHILD, &rev.digest, None);
        let skipped =
            !cfg.skip_revisions.is_empty() && cfg.skip_revisions.contains(&(roots.repo.clone(), rev.digest));
        roots.revision_root.push(
            !skipped
                && !excluded
                && (!cfg.tagged_only
                    || cfg
                        .keep_recent
                        .is_some_and(|d| now.duration_since(rev.mtime).unwrap_or_default() < d)),
        );
    }
    msgs.progress().inc(1);
    (l, errors)
}

/// How many repositories [`list_roots`] lists before interning them.
const LIST_BATCH: usize = 64;

/// One repository as listed: digests packed (33 bytes a sha256 one) until
/// they are interned.
struct Listed {
    roots: Roots,
    tag_digests: Vec<u8>,
    revisions: Vec<u8>,
    /// (name, target, kind) of the repository's aliases (rare).
    aliases: Vec<(Digest, Digest, LinkKind)>,
}

/// Interns a listed repository's digests; its listing errors go to
/// `problems` (a tag without a link is only a warning).
fn intern_listed(
    mut l: Listed,
    errors: Vec<Error>,
    cache: &mut InRunManifests,
    msgs: &Messages,
    problems: &mut Vec<String>,
) -> Roots {
    for e in errors {
        match e.kind() {
            // The registry itself skips such a tag (it cannot be pulled).
            ErrorKind::MissingLink => msgs.warn(format!(
                "{}: tag without a current link, skipped: {e}",
                l.roots.repo
            )),
            // Kept, with what its links name (`link` records).
            ErrorKind::UnknownAlgorithm => msgs.warn(e),
            // A garbled link under sha384 or sha512 names nothing the
            // registry could serve: nothing to keep, and nothing hidden.
            ErrorKind::BadLink(_) if is_alias_path(e.path()) => {
                msgs.warn(format!("{e} (ignored: it names nothing)"))
            }
            _ => problems.push(format!("{}: {e}", l.roots.repo)),
        }
    }
    for (name, _) in &l.roots.links {
        msgs.warn(format!(
            "{}: a link under {name}, a digest algorithm no tool here knows: kept, with the blob it names",
            l.roots.repo
        ));
    }
    l.roots.tag_ids = Unpack(&l.tag_digests).map(|e| cache.intern(&e.1)).collect();
    l.roots.revisions = Unpack(&l.revisions).map(|e| cache.intern(&e.1)).collect();
    l.roots.aliases = l
        .aliases
        .iter()
        .map(|(name, target, kind)| (cache.intern(name), cache.intern(target), *kind))
        .collect();
    l.roots.aliases.sort_unstable();
    l.roots
}

/// Whether `path` is a link under another algorithm than sha256 (where the
/// registry writes aliases).
fn is_alias_path(path: &std::path::Path) -> bool {
    let p = path.to_string_lossy();
    (p.contains("/_layers/") || p.contains("/_manifests/revisions/")) && !p.contains("/sha256/")
}

/// The total of the "parsing manifests" phase: the reads done, the reads
/// queued, and `later`, the reads expected once every revision is asked
/// for (an estimate until then). It grows as indexes name children.
fn show_manifest_total(msgs: &Messages, cache: &InRunManifests, later: u64) {
    let p = msgs.progress();
    p.set_total(p.done() + cache.pending + later);
}

/// How many manifests are loaded (in parallel) before they are packed into
/// the arena: bounds what is held unpacked at a time.
const LOAD_BATCH: usize = 8192;

/// Loads, in parallel, every manifest the cache marks as pending. Every
/// manifest that cannot be used is reported (by digest); any makes it fail.
fn load_pending(
    store: &Store,
    roots: &[Roots],
    cache: &mut InRunManifests,
    broken_ok: bool,
    msgs: &Messages,
    later: u64,
) -> anyhow::Result<()> {
    let mut errors: Vec<(Digest, u32, Error)> = Vec::new();
    let mut scratch = Vec::new();
    // What [`InRunManifests::want`] queued, a batch at a time; the children of a
    // manifest loaded whole are queued as they come (it is live, so they
    // are), so a chain of nested indexes loads in one call, not one walk
    // per level.
    let mut queued = std::mem::take(&mut cache.queue);
    queued.reverse();
    loop {
        if queued.is_empty() {
            queued = std::mem::take(&mut cache.queue);
            queued.reverse();
        }
        let mut batch: Vec<(Id, u32, bool)> = Vec::new();
        while batch.len() < LOAD_BATCH {
            let Some(id) = queued.pop() else { break };
            if let State::Pending { repo, full } = cache.state(id) {
                // Marked as being loaded: a second entry in the queue is skipped.
                cache.set(id, State::Unknown);
                batch.push((id, repo, full));
            }
        }
        if batch.is_empty() {
            if cache.queue.is_empty() {
                break;
            }
            continue;
        }
        let loaded: Vec<(Id, u32, bool, Loaded)> = batch
            .par_iter()
            .map(|&(id, repo, full)| {
                let loaded = load(store, &cache.digest(id));
                msgs.progress().inc(1);
                (id, repo, full, loaded)
            })
            .collect();
        for (id, repo, full, result) in loaded {
            match result {
                Ok(Some((raw, notes))) => {
                    // Said once per manifest, however often it is read.
                    if !notes.is_empty() && cache.noted.insert(cache.digest(id)) {
                        let d = cache.digest(id);
                        msgs.warn(format!(
                            "{}: manifest {d} ({}) may be read differently by other readers; every \
                             reading is kept: {}",
                            roots[repo as usize].repo,
                            store.display(&paths::blob_data(&d)).display(),
                            notes.join("; ")
                        ));
                    }
                    cache.put(id, &raw, full, &mut scratch);
                    if full {
                        let r = &roots[repo as usize];
                        let children: Vec<Id> = cache.node(id).expect("just put").children().collect();
                        let read: Vec<Id> = children.into_iter().flat_map(|c| r.follow(cache, c)).collect();
                        for c in read {
                            cache.want(c, repo, true);
                        }
                    }
                }
                Ok(None) => cache.set(id, State::Missing),
                Err(e) => errors.push((cache.digest(id), repo, e)),
            }
        }
        show_manifest_total(msgs, cache, later);
    }
    unusable(roots, cache, broken_ok, msgs, errors)
}

/// The manifests that could not be used: with `broken_ok` broken images
/// (their references unknown, the caller decides what that stops), else
/// the error that ends the run.
fn unusable(
    roots: &[Roots],
    cache: &mut InRunManifests,
    broken_ok: bool,
    msgs: &Messages,
    mut errors: Vec<(Digest, u32, Error)>,
) -> anyhow::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e| e.0);
    if broken_ok {
        // An unusable manifest is a broken image, like a missing one: its
        // references are unknown, and the caller decides what that stops.
        for (d, _, e) in errors {
            let id = cache.intern(&d);
            cache.set(id, State::Missing);
            cache.unusable.insert(d, e.to_string());
        }
        return Ok(());
    }
    let problems = errors
        .into_iter()
        .map(|(d, repo, e)| format!("{}: manifest {d}: {e}", roots[repo as usize].repo))
        .collect();
    Err(fail(
        msgs,
        problems,
        "a manifest that cannot be used could hide live blobs",
    ))
}

/// Turns the problems found into the error that ends the run. Every problem
/// is said once: all but the first through `msgs`, the first in the error
/// itself, so the last line names a path even when there is one problem.
fn fail(msgs: &Messages, mut problems: Vec<String>, why: &str) -> anyhow::Error {
    let first = problems.remove(0);
    let more = problems.len();
    for p in problems {
        msgs.error(p);
    }
    if more == 0 {
        anyhow::anyhow!("{first} ({why}; nothing written)")
    } else {
        anyhow::anyhow!("{first} (and {more} more problem(s) above; {why}; nothing written)")
    }
}

/// A manifest a repository names whose data is missing (or, with
/// [`Config::broken_ok`], there but unusable): an image already broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub repo: String,
    pub digest: Digest,
    /// Reached from a root (a tag, a root revision, a live index or
    /// subject); false for a revision that is not live.
    pub live: bool,
    /// Named, but neither stored nor linked from its repository: the
    /// registry could never serve it (it looks for the repository's link),
    /// so nothing it might reference can be missed. What a reading that
    /// keeps every duplicate key finds in a decoy (Go keeps the last).
    pub dangling: bool,
    /// The warning: repository, digest, why it is live, and the path.
    pub message: String,
}

/// What one repository adds to the stats, and its warnings.
#[derive(Default)]
struct RepoCounts {
    manifests: u64,
    references: u64,
    revisions: u64,
    broken: Vec<Broken>,
}

/// A repository's counts from its final walk (one that needs nothing more).
fn count(store: &Store, r: &Roots, w: &Walk, cache: &InRunManifests) -> RepoCounts {
    // Missing manifests: live ones, and revisions (whose subject we cannot
    // know), once per repository and digest.
    let mut missing: BTreeMap<Digest, (String, bool)> = BTreeMap::new();
    for (id, why) in &w.missing {
        missing.insert(cache.digest(*id), (why.to_string(), true));
    }
    for &rev in &r.revisions {
        if cache.state(rev) == State::Missing {
            missing
                .entry(cache.digest(rev))
                .or_insert_with(|| (Why::Revision.to_string(), false));
        }
    }
    // Whether the repository links `d` (a revision, a `_layers` link, an
    // alias naming it): only then could the registry have served it.
    let linked = |d: &Digest| {
        let id = cache.find(d);
        id.is_some_and(|id| r.revisions.binary_search_by(|x| cache.cmp_ids(*x, id)).is_ok())
            || id.is_some_and(|id| r.aliases.iter().any(|a| a.0 == id || a.1 == id))
            || !matches!(store.link_mtime(&paths::layer_link(&r.repo, d)), Ok(None))
    };
    RepoCounts {
        manifests: w
            .live
            .iter()
            .filter(|&&id| matches!(cache.state(id), State::Parsed { full: true, .. }))
            .count() as u64,
        references: edge_count(r, w, cache) + r.links.len() as u64,
        revisions: r.revision_roots().count() as u64,
        broken: missing
            .into_iter()
            .map(|(d, (why, live))| {
                let path = store.display(&paths::blob_data(&d));
                let dangling = live && !cache.unusable.contains_key(&d) && !linked(&d);
                let message = match cache.unusable.get(&d) {
                    Some(e) => format!("{}: manifest {d} named by {why} cannot be used: {e}", r.repo),
                    None if dangling => format!(
                        "{}: {why} names manifest {d}, which is neither stored ({}) nor linked from \
                         this repository: the registry could not serve it, so it is no broken image \
                         (a decoy key that Go's reading overrides, or an index made by hand)",
                        r.repo,
                        path.display()
                    ),
                    None => format!(
                        "{}: manifest {d} named by {why} is missing: {}",
                        r.repo,
                        path.display()
                    ),
                };
                Broken {
                    repo: r.repo.clone(),
                    digest: d,
                    live,
                    dangling,
                    message,
                }
            })
            .collect(),
    }
}

/// A hash of the roots as listed: every repository, its tags (name and
/// target) and its root revisions. Two listings with the same fingerprint
/// make the same walk.
fn fingerprint(roots: &[Roots], cache: &InRunManifests) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for r in roots {
        h.update(r.repo.as_bytes());
        h.update([0]);
        for (t, d) in r.tags() {
            h.update(t.as_bytes());
            h.update([1]);
            h.update(cache.digest(d).bytes());
        }
        h.update([2]);
        for d in r.revision_roots() {
            h.update(cache.digest(d).bytes());
        }
        h.update([3]);
    }
    h.finalize().into()
}

/// Lists the roots again, as [`collect`] would with `cfg`, and returns
/// their [`Graph::fingerprint`]: equal means a walk now would be the same.
pub fn root_fingerprint(store: &Store, cfg: &Config, msgs: &Messages) -> anyhow::Result<[u8; 32]> {
    let mut cache = InRunManifests::default();
    let now = cfg.now.unwrap_or_else(SystemTime::now);
    let roots = list_roots(store, cfg, now, msgs, &mut cache)?;
    Ok(fingerprint(&roots, &cache))
}

/// Walks the store and returns the reference graph, or, if anything could
/// hide a live blob, an error naming the first problem (any others are
/// reported through `msgs`). Nothing is written either way: the caller
/// writes the graph with [`write()`] only once it is complete. Missing
/// manifests are warned about through `msgs` and counted.
pub fn collect(store: &Store, cfg: &Config, msgs: &Messages) -> anyhow::Result<Graph> {
    collect_with(store, cfg, msgs, ManifestStore::default())
}

/// Manifests read by an earlier walk, for the next one: manifests are
/// immutable, so a second walk (reg-rm looking again after a push) reads
/// only what it has not seen. Missing and unusable ones are looked at again.
#[derive(Default)]
pub struct ManifestStore(InRunManifests);

impl std::fmt::Debug for ManifestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManifestStore({} manifests)", self.0.parsed())
    }
}

impl Graph {
    /// The manifests this walk read, for [`collect_with`].
    pub fn into_manifest_store(self) -> ManifestStore {
        let mut cache = self.cache;
        for id in cache.ids().collect::<Vec<_>>() {
            if !matches!(cache.state(id), State::Parsed { .. }) {
                cache.set(id, State::Unknown);
            }
        }
        cache.unusable.clear();
        cache.queue.clear();
        ManifestStore(cache)
    }
}

/// [`collect`], starting from the manifests `prior` walks read.
pub fn collect_with(
    store: &Store,
    cfg: &Config,
    msgs: &Messages,
    prior: ManifestStore,
) -> anyhow::Result<Graph> {
    store.check_blob_store()?;
    let now = cfg.now.unwrap_or_else(SystemTime::now);
    let mut cache = prior.0;
    let roots = list_roots(store, cfg, now, msgs, &mut cache)?;

    let later = want_roots(&roots, &mut cache);
    let (counts, waves) = load_waves(store, cfg, msgs, &roots, &mut cache, later)?;
    Ok(graph(store, cfg, msgs, roots, cache, counts, waves))
}

/// Asks for the roots, whole. Returns how many revisions are asked for
/// later that nothing asked for yet (an estimate for the phase's total).
fn want_roots(roots: &[Roots], cache: &mut InRunManifests) -> u64 {
    // First the roots, whole, then what the walks need (index children),
    // until nothing more is needed; then every other revision, for its
    // subject and children only (revisions are needed even with
    // --tagged-only: their `subject` may make them live), and whatever that
    // makes live, whole. Each manifest is marked for the first repository
    // naming it.
    for (i, r) in roots.iter().enumerate() {
        let ids: Vec<Id> = r
            .tag_ids
            .iter()
            .copied()
            .chain(r.revision_roots())
            .flat_map(|id| r.follow(cache, id))
            .collect();
        for id in ids {
            cache.want(id, i as u32, true);
        }
    }
    // The revisions asked for later that nothing asked for yet: read then,
    // so counted in the phase's total from the start (an estimate: some are
    // read before, as index children; the total is made exact when they
    // are asked for).
    let mut later: Vec<Id> = roots
        .iter()
        .flat_map(|r| r.revisions.iter().flat_map(|&id| r.follow(cache, id)))
        .filter(|&id| cache.state(id) == State::Unknown)
        .collect();
    later.sort_unstable();
    later.dedup();
    later.len() as u64
}

/// Loads manifests in waves: first the roots, whole, then what the walks
/// need (index children), until nothing more is needed; then every other
/// revision, for its subject and children only, and whatever that makes
/// live, whole. Returns each repository's counts and the number of waves.
fn load_waves(
    store: &Store,
    cfg: &Config,
    msgs: &Messages,
    roots: &[Roots],
    cache: &mut InRunManifests,
    mut later: u64,
) -> anyhow::Result<(Vec<RepoCounts>, u64)> {
    msgs.progress().start(
        Phase::new("parsing manifests", "manifests"),
        Some(cache.pending + later),
    );
    let mut revisions_asked = false;
    let mut waves = 0;
    let counts = loop {
        waves += 1;
        load_pending(store, roots, cache, cfg.broken_ok, msgs, later)?;
        // A repository whose walk needs nothing more is done: loading what
        // other repositories need adds no manifest its walk looks at. Its
        // counts are taken from that walk, once every revision is known.
        let last = revisions_asked;
        let walked: Vec<Result<Option<RepoCounts>, Vec<Id>>> = roots
            .par_iter()
            .map(|r| {
                let w = walk(r, cache);
                if w.needed.is_empty() {
                    Ok(last.then(|| count(store, r, &w, cache)))
                } else {
                    Err(w.needed)
                }
            })
            .collect();
        if walked.iter().all(Result::is_ok) {
            if last {
                break walked
                    .into_iter()
                    .flatten()
                    .flatten()
                    .collect::<Vec<RepoCounts>>();
            }
            for (i, r) in roots.iter().enumerate() {
                let ids: Vec<Id> = r.revisions.iter().flat_map(|&id| r.follow(cache, id)).collect();
                for id in ids {
                    cache.want(id, i as u32, false);
                }
            }
            later = 0;
            show_manifest_total(msgs, cache, later);
            revisions_asked = true;
            continue;
        }
        for (i, ds) in walked.iter().enumerate() {
            for &id in ds.as_ref().err().into_iter().flatten() {
                cache.want(id, i as u32, true);
            }
        }
    };

    Ok((counts, waves))
}

/// The graph, once every repository's walk is done. Nothing can fail from
/// here on: warns about what is missing.
fn graph(
    store: &Store,
    cfg: &Config,
    msgs: &Messages,
    roots: Vec<Roots>,
    cache: InRunManifests,
    counts: Vec<RepoCounts>,
    waves: u64,
) -> Graph {
    let mut stats = Stats {
        repos: roots.len() as u64,
        parsed: cache.parsed(),
        waves,
        ..Stats::default()
    };
    let mut broken = Vec::new();
    for (r, c) in roots.iter().zip(counts) {
        for b in &c.broken {
            msgs.warn(&b.message);
        }
        stats.missing += c.broken.len() as u64;
        broken.extend(c.broken);
        stats.manifests += c.manifests;
        stats.tags += r.tag_ends.len() as u64;
        stats.revisions += c.revisions;
        stats.references += c.references;
    }
    Graph {
        fingerprint: fingerprint(&roots, &cache),
        roots,
        cache,
        stats,
        complete: cfg.repos.is_empty(),
        storage_root: store.root_id(),
        broken,
        excluded: cfg.exclude_repos.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DOCKER_LIST, DOCKER_V2, OCI_ARTIFACT, OCI_INDEX, OCI_MANIFEST};
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::Path;

    const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// A registry tree in a temp dir, written through real files.
    struct Tree {
        dir: tempfile::TempDir,
    }

    /// A stored blob: its digest and size.
    #[derive(Clone, Copy, Debug)]
    struct Blob {
        digest: Digest,
        size: usize,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn v2(&self) -> &Path {
            self.dir.path()
        }

        fn put(&self, rel: &str, bytes: &[u8]) {
            let p = self.v2().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }

        /// Stores `bytes` at their sha256.
        fn blob(&self, bytes: &[u8]) -> Blob {
            let digest = Digest::sha256_of(bytes);
            self.put(&paths::blob_data(&digest), bytes);
            Blob {
                digest,
                size: bytes.len(),
            }
        }

        fn tag(&self, repo: &str, tag: &str, d: &Digest) {
            self.put(&paths::tag_current(repo, tag), d.to_string().as_bytes());
            self.put(&paths::tag_index_entry(repo, tag, d), d.to_string().as_bytes());
        }

        fn revision(&self, repo: &str, d: &Digest) {
            self.put(&paths::revision_link(repo, d), d.to_string().as_bytes());
        }

        /// Stores a manifest's bytes and its revision link in `repo`, and
        /// tags it if `tag` is given.
        fn push(&self, repo: &str, tag: Option<&str>, manifest: &[u8]) -> Blob {
            let m = self.blob(manifest);
            self.revision(repo, &m.digest);
            if let Some(t) = tag {
                self.tag(repo, t, &m.digest);
            }
            m
        }

        fn run(&self, cfg: &Config) -> anyhow::Result<Graph> {
            collect(&Store::fs(self.v2()), cfg, &Messages::new("reg-refs", true))
        }

        fn refs(&self, cfg: &Config) -> Graph {
            self.run(cfg).unwrap_or_else(|e| panic!("{e:#}"))
        }

        /// An error's whole text, after checking that the run failed.
        fn fails(&self, cfg: &Config) -> String {
            match self.run(cfg) {
                Ok(g) => panic!("expected a failure, got {:?}", g.stats),
                Err(e) => format!("{e:#}"),
            }
        }
    }

    fn desc(media_type: &str, b: &Blob) -> String {
        format!(
            r#"{{"mediaType":"{media_type}","digest":"{}","size":{}}}"#,
            b.digest, b.size
        )
    }

    /// An image manifest (Docker schema 2 or OCI) as stored bytes.
    fn image_doc(media_type: &str, config: &Blob, layers: &[Blob], subject: Option<&Blob>) -> Vec<u8> {
        let (cfg_type, layer_type) = if media_type == DOCKER_V2 {
            (DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_CONFIG, OCI_LAYER)
        };
        let layers: Vec<String> = layers.iter().map(|l| desc(layer_type, l)).collect();
        let subject = subject
            .map(|s| format!(",\n  \"subject\": {}", desc(OCI_MANIFEST, s)))
            .unwrap_or_default();
        format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{media_type}\",\n  \"config\": {},\n  \"layers\": [\n    {}\n  ]{subject}\n}}",
            desc(cfg_type, config),
            layers.join(",\n    ")
        )
        .into_bytes()
    }

    /// An index or manifest list.
    fn index_doc(media_type: &str, children: &[(&str, Blob)]) -> Vec<u8> {
        let children: Vec<String> = children
            .iter()
            .map(|(t, c)| {
                format!(
                    r#"{{"mediaType":"{t}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                    c.digest, c.size
                )
            })
            .collect();
        format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{media_type}\",\n  \"manifests\": [\n    {}\n  ]\n}}",
            children.join(",\n    ")
        )
        .into_bytes()
    }

    /// A small OCI image with its own config and one layer, named `name`.
    fn oci_image(t: &Tree, name: &str, subject: Option<&Blob>) -> (Vec<u8>, Blob, Blob) {
        let cfg = t.blob(format!(r#"{{"architecture":"amd64","os":"linux","name":"{name}"}}"#).as_bytes());
        let layer = t.blob(format!("layer of {name}").as_bytes());
        (image_doc(OCI_MANIFEST, &cfg, &[layer], subject), cfg, layer)
    }

    fn tagged_only() -> Config {
        Config {
            tagged_only: true,
            ..Config::default()
        }
    }

    /// The (kind, target) edges from `manifest` in `repo`.
    fn edges(g: &Graph, repo: &str, manifest: &Digest) -> Vec<(EdgeKind, Digest)> {
        g.repos()
            .iter()
            .filter(|r| r.repo == repo)
            .flat_map(|r| &r.edges)
            .filter(|e| e.manifest == *manifest)
            .map(|e| (e.kind, e.digest))
            .collect()
    }

    /// Every digest the records name (`digest` and `manifest` fields).
    fn named(g: &Graph) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        for r in &g.repos() {
            out.extend(r.tags.iter().map(|(_, d)| *d));
            out.extend(r.revisions.iter().copied());
            for e in &r.edges {
                out.insert(e.manifest);
                out.insert(e.digest);
            }
        }
        out
    }

    fn output(g: &Graph) -> Vec<RefRecord> {
        let mut out = Out::new(Vec::new(), crate::output::Format::Json);
        write(g, &mut out, &Messages::muted("test")).unwrap();
        String::from_utf8(out.into_inner().unwrap())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn packed_entries_round_trip() {
        let a = Digest::sha256_of(b"a");
        let z = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        let entries = [
            (SUBJECT, z, None),
            (CHILD, a, None),
            (CONFIG, a, Some(0)),
            (LAYER, z, Some(127)),
            (LAYER, a, Some(128)),
            (LAYER, z, Some(u64::MAX)),
            (LAYER, a, Some(4_321_000_000)),
        ];
        let mut buf = Vec::new();
        for (code, d, size) in entries {
            pack(&mut buf, code, &d, size);
        }
        assert_eq!(Unpack(&buf).collect::<Vec<_>>(), entries.to_vec());

        // In the cache: manifests named by children and subjects become ids;
        // blobs keep their digests and sizes.
        let mut cache = InRunManifests::default();
        let m = cache.intern(&Digest::sha256_of(b"m"));
        let mut scratch = Vec::new();
        cache.put(m, &buf, true, &mut scratch);
        let (za, aa) = (cache.intern(&z), cache.intern(&a));
        let n = cache.node(m).expect("parsed");
        assert_ne!(za, aa);
        assert_eq!(cache.digest(za), z);
        assert_eq!(cache.digest(aa), a);
        assert_eq!(n.subjects().collect::<Vec<_>>(), vec![za]);
        assert_eq!(n.children().collect::<Vec<_>>(), vec![aa]);
        let edges: Vec<_> = n.edges(&cache).collect();
        assert_eq!(edges.len(), 6);
        assert_eq!(edges[0], (EdgeKind::Manifest, a, None));
        assert_eq!(edges[1], (EdgeKind::Config, a, Some(0)));
        assert_eq!(edges[5], (EdgeKind::Layer, a, Some(4_321_000_000)));
        assert_eq!(n.edge_count(), 6);
        // Named, not loaded: children and subjects wait to be asked for.
        assert_eq!(cache.state(za), State::Unknown);
        assert!(cache.node(za).is_none());
        cache.want(za, 7, false);
        assert_eq!(cache.state(za), State::Pending { repo: 7, full: false });
        cache.want(za, 9, false);
        assert_eq!(
            cache.state(za),
            State::Pending { repo: 7, full: false },
            "the first repository asking"
        );
        cache.want(za, 9, true);
        assert_eq!(
            cache.state(za),
            State::Pending { repo: 7, full: true },
            "asked whole"
        );
        cache.want(za, 3, false);
        assert_eq!(cache.state(za), State::Pending { repo: 7, full: true });
        // Read in part: subject and children only; asked whole, read again.
        cache.put(za, &buf, false, &mut scratch);
        let part = cache.node(za).expect("parsed in part");
        assert_eq!(part.subjects().collect::<Vec<_>>(), vec![za]);
        assert_eq!(part.children().collect::<Vec<_>>(), vec![aa]);
        assert_eq!(part.edge_count(), 1, "the child only");
        cache.want(za, 4, false);
        assert!(matches!(cache.state(za), State::Parsed { full: false, .. }));
        cache.want(za, 4, true);
        assert_eq!(cache.state(za), State::Pending { repo: 4, full: true });
        cache.put(za, &buf, true, &mut scratch);
        assert_eq!(cache.node(za).unwrap().edge_count(), 6);
        assert_eq!(cache.parsed(), 2);
        for s in [
            State::Unknown,
            State::Missing,
            State::Pending {
                repo: u32::MAX,
                full: true,
            },
            State::Pending { repo: 0, full: false },
            State::Parsed { at: 0, full: true },
            State::Parsed {
                at: 1 << 40,
                full: false,
            },
            State::Parsed {
                at: (1 << 61) - 1,
                full: true,
            },
        ] {
            assert_eq!(State::decode(s.encode()), s);
        }
    }

    #[test]
    fn the_arena_gives_back_what_it_was_given_across_blocks() {
        let mut arena = Arena::default();
        let items: Vec<Vec<u8>> = (0..3000usize)
            .map(|i| vec![(i % 251) as u8; if i == 1500 { 3 * BLOCK } else { i % 700 }])
            .collect();
        let at: Vec<u64> = items.iter().map(|b| arena.push(b)).collect();
        assert!(arena.blocks.len() > 2, "{} blocks", arena.blocks.len());
        for (b, at) in items.iter().zip(at) {
            assert_eq!(arena.get(at), &b[..]);
        }
        // A block is never reallocated: each stays within its capacity.
        assert!(arena.blocks.iter().all(|b| b.len() <= b.capacity()));
    }

    #[test]
    fn interned_ids_keep_the_order_and_identity_of_digests() {
        let mut cache = InRunManifests::default();
        // A sha256 digest and a sha512 one that starts with the same bytes.
        let short = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let long = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        let mut ds: Vec<Digest> = (0..5000u32)
            .map(|i| Digest::sha256_of(&i.to_le_bytes()))
            .collect();
        ds.extend([short, long]);
        let ids: Vec<Id> = ds.iter().map(|d| cache.intern(d)).collect();
        let again: Vec<Id> = ds.iter().map(|d| cache.intern(d)).collect();
        assert_eq!(ids, again);
        assert_ne!(cache.intern(&short), cache.intern(&long));
        for (d, id) in ds.iter().zip(&ids) {
            assert_eq!(cache.digest(*id), *d);
        }
        let mut by_digest = ds.clone();
        by_digest.sort();
        let mut by_id = ids.clone();
        by_id.sort_by(|a, b| cache.cmp_ids(*a, *b));
        assert_eq!(
            by_id.iter().map(|id| cache.digest(*id)).collect::<Vec<_>>(),
            by_digest
        );
        assert_eq!(cache.ids().count(), ds.len());
    }

    #[test]
    fn records_are_the_materialized_repositories() {
        let t = Tree::new();
        let (doc, _, _) = oci_image(&t, "one", None);
        let (sdoc, _, _) = oci_image(&t, "sig", Some(&t.blob(&doc)));
        t.push("a", Some("1"), &doc);
        t.push("a", None, &sdoc);
        t.push("b/c", Some("x"), &doc);
        for cfg in [tagged_only(), Config::default()] {
            let g = t.refs(&cfg);
            let mut want = Vec::new();
            for r in g.repos() {
                for (tag, digest) in &r.tags {
                    want.push(RefRecord::Tag {
                        repo: r.repo.clone(),
                        tag: tag.clone(),
                        digest: *digest,
                        target: None,
                    });
                }
                for digest in &r.revisions {
                    want.push(RefRecord::Revision {
                        repo: r.repo.clone(),
                        digest: *digest,
                        target: None,
                    });
                }
                want.extend(r.edges.iter().map(|e| edge_record(&r.repo, e)));
            }
            assert_eq!(g.records().collect::<Vec<_>>(), want);
            let refs = want.len() as u64 - g.stats.tags - g.stats.revisions;
            assert_eq!(g.stats.references, refs);
        }
    }

    #[test]
    fn every_format() {
        use EdgeKind::*;
        let t = Tree::new();
        let r = "f/formats";
        let l1 = t.blob(b"layer one");
        let l2 = t.blob(b"layer two");

        // Docker schema 2, listing a layer twice.
        let dcfg = t.blob(br#"{"architecture":"amd64","os":"linux"}"#);
        let docker = t.push(
            r,
            Some("docker"),
            &image_doc(DOCKER_V2, &dcfg, &[l1, l2, l1], None),
        );

        // Docker manifest list of two Docker images (pushed by digest).
        let acfg = t.blob(br#"{"architecture":"arm64","os":"linux"}"#);
        let arm = t.push(r, None, &image_doc(DOCKER_V2, &acfg, &[l2], None));
        let list = t.push(
            r,
            Some("list"),
            &index_doc(DOCKER_LIST, &[(DOCKER_V2, docker), (DOCKER_V2, arm)]),
        );

        // OCI image manifest, and an OCI index of it.
        let (oci_doc, ocfg, olayer) = oci_image(&t, "oci", None);
        let oci = t.push(r, Some("oci"), &oci_doc);
        let idx = t.push(r, Some("index"), &index_doc(OCI_INDEX, &[(OCI_MANIFEST, oci)]));

        // OCI artifact manifest (`blobs`, `subject`).
        let art_doc = format!(
            r#"{{"mediaType":"{OCI_ARTIFACT}","artifactType":"application/vnd.example.signature","blobs":[{},{}],"subject":{}}}"#,
            desc("application/octet-stream", &l1),
            desc("application/octet-stream", &l2),
            desc(OCI_MANIFEST, &oci)
        );
        let art = t.push(r, Some("artifact"), art_doc.as_bytes());

        // Schema 1, signed, with repeated fsLayers.
        let s1a = t.blob(b"schema1 layer a");
        let s1b = t.blob(b"schema1 layer b");
        let s1_doc = format!(
            r#"{{
   "schemaVersion": 1,
   "name": "f/formats",
   "tag": "s1",
   "architecture": "amd64",
   "fsLayers": [{{"blobSum": "{a}"}}, {{"blobSum": "{b}"}}, {{"blobSum": "{a}"}}],
   "history": [{{"v1Compatibility": "{{\"id\":\"e45a\"}}"}}],
   "signatures": [{{"header": {{"alg": "ES256"}}, "signature": "XREm", "protected": "eyJm"}}]
}}"#,
            a = s1a.digest,
            b = s1b.digest
        );
        let s1 = t.push(r, Some("s1"), s1_doc.as_bytes());

        // An OCI manifest without mediaType: told by its fields.
        let ncfg = t.blob(br#"{"architecture":"amd64","os":"linux","variant":"no media type"}"#);
        let nomt_doc = format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
            desc(OCI_CONFIG, &ncfg),
            desc(OCI_LAYER, &l2)
        );
        let nomt = t.push(r, Some("nomt"), nomt_doc.as_bytes());

        // An unknown kind: every descriptor counts; one typed as a manifest
        // is followed like an index child (and is not a revision here).
        let (inner_doc, icfg, ilayer) = oci_image(&t, "inner of unknown", None);
        let inner = t.blob(&inner_doc);
        let extra = t.blob(b"a blob only the unknown kind names");
        let unknown_doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.example.future.v9+json",
                 "parts":[{{"deep":{{"digest":"{}","size":{}}}}},[{}]],"digest":"not a digest"}}"#,
            extra.digest,
            extra.size,
            desc(OCI_MANIFEST, &inner)
        );
        let unknown = t.push(r, Some("unknown"), unknown_doc.as_bytes());

        // A Docker image stored at its sha512 digest.
        let sha512_doc = image_doc(DOCKER_V2, &dcfg, &[l1], None);
        let zero512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let s512 = zero512.same_alg_of(&sha512_doc);
        t.put(&paths::blob_data(&s512), &sha512_doc);
        t.tag(r, "sha512", &s512);

        let g = t.refs(&tagged_only());
        let d = |b: &Blob| b.digest;
        assert_eq!(
            edges(&g, r, &docker.digest),
            vec![(Config, d(&dcfg)), (Layer, d(&l1)), (Layer, d(&l2))]
        );
        assert_eq!(
            edges(&g, r, &list.digest),
            vec![(Manifest, d(&docker)), (Manifest, d(&arm))]
        );
        assert_eq!(
            edges(&g, r, &arm.digest),
            vec![(Config, d(&acfg)), (Layer, d(&l2))]
        );
        // The artifact's subject is live, so the artifact is its referrer too.
        assert_eq!(
            edges(&g, r, &oci.digest),
            vec![(Config, d(&ocfg)), (Layer, d(&olayer)), (Referrer, d(&art))]
        );
        assert_eq!(edges(&g, r, &idx.digest), vec![(Manifest, d(&oci))]);
        assert_eq!(edges(&g, r, &art.digest), vec![(Layer, d(&l1)), (Layer, d(&l2))]);
        assert_eq!(edges(&g, r, &s1.digest), vec![(Layer, d(&s1a)), (Layer, d(&s1b))]);
        assert_eq!(
            edges(&g, r, &nomt.digest),
            vec![(Config, d(&ncfg)), (Layer, d(&l2))]
        );
        assert_eq!(
            edges(&g, r, &unknown.digest),
            vec![(Manifest, d(&inner)), (Layer, d(&extra))]
        );
        assert_eq!(
            edges(&g, r, &inner.digest),
            vec![(Config, d(&icfg)), (Layer, d(&ilayer))]
        );
        assert_eq!(edges(&g, r, &s512), vec![(Config, d(&dcfg)), (Layer, d(&l1))]);

        assert_eq!(g.repos().len(), 1);
        assert_eq!(g.repos()[0].tags.len(), 9);
        assert!(g.repos()[0].revisions.is_empty());
        // docker, list, arm, oci, index, artifact, s1, nomt, unknown, inner, sha512
        assert_eq!(g.stats.manifests, 11);
        assert_eq!(g.stats.parsed, 11);
        assert_eq!(g.stats.missing, 0);
        assert!(g.complete);
        let edge_count: usize = g.repos().iter().map(|r| r.edges.len()).sum();
        assert_eq!(g.stats.references, edge_count as u64);
    }

    #[test]
    fn nested_indexes_are_followed_without_revision_links() {
        let t = Tree::new();
        let (img_doc, cfg, layer) = oci_image(&t, "leaf", None);
        // Neither the image nor the inner index has a revision link.
        let img = t.blob(&img_doc);
        let inner = t.blob(&index_doc(OCI_INDEX, &[(OCI_MANIFEST, img)]));
        let outer = t.push("n", Some("v1"), &index_doc(OCI_INDEX, &[(OCI_INDEX, inner)]));
        for cfg_ in [tagged_only(), Config::default()] {
            let g = t.refs(&cfg_);
            assert_eq!(
                named(&g),
                BTreeSet::from([outer.digest, inner.digest, img.digest, cfg.digest, layer.digest])
            );
            assert_eq!(
                edges(&g, "n", &inner.digest),
                vec![(EdgeKind::Manifest, img.digest)]
            );
            assert_eq!(g.stats.manifests, 3);
        }
    }

    #[test]
    fn referrer_chain_under_tagged_only() {
        let t = Tree::new();
        let r = "org/app";
        let (v1_doc, v1cfg, _) = oci_image(&t, "v1", None);
        let v1 = t.push(r, Some("v1"), &v1_doc);
        // A signature of v1, and a signature of that signature, untagged.
        let (sig_doc, sigcfg, siglayer) = oci_image(&t, "signature of v1", Some(&v1));
        let sig = t.push(r, None, &sig_doc);
        let (sigsig_doc, _, sigsiglayer) = oci_image(&t, "signature of the signature", Some(&sig));
        let sigsig = t.push(r, None, &sigsig_doc);
        // An untagged image and a referrer of it: both dead with --tagged-only.
        let (old_doc, oldcfg, _) = oci_image(&t, "old", None);
        let old = t.push(r, None, &old_doc);
        let (stray_doc, straycfg, _) = oci_image(&t, "signature of old", Some(&old));
        let stray = t.push(r, None, &stray_doc);
        // A manifest in another repository whose subject is v1: v1 is not
        // live there, so neither is it.
        let (other_doc, othercfg, _) = oci_image(&t, "other repo's referrer", Some(&v1));
        let other = t.push("other", None, &other_doc);

        let g = t.refs(&tagged_only());
        let referrers: Vec<(Digest, Digest)> = g
            .repos()
            .iter()
            .flat_map(|r| &r.edges)
            .filter(|e| e.kind == EdgeKind::Referrer)
            .map(|e| (e.manifest, e.digest))
            .collect();
        let mut want = vec![(v1.digest, sig.digest), (sig.digest, sigsig.digest)];
        want.sort();
        assert_eq!(referrers, want);
        let n = named(&g);
        for live in [v1cfg, sig, sigcfg, siglayer, sigsig, sigsiglayer] {
            assert!(n.contains(&live.digest), "{} should be live", live.digest);
        }
        for dead in [old, oldcfg, stray, straycfg, other, othercfg] {
            assert!(!n.contains(&dead.digest), "{} should not be live", dead.digest);
        }
        assert_eq!(g.stats.manifests, 3);
        assert_eq!(g.stats.revisions, 0);
        assert_eq!(g.stats.parsed, 6);

        // By default every revision is a root, and the referrer edges of
        // every subject are there.
        let g = t.refs(&Config::default());
        let n = named(&g);
        for d in [old, oldcfg, stray, straycfg, other, othercfg] {
            assert!(n.contains(&d.digest));
        }
        assert!(edges(&g, r, &old.digest).contains(&(EdgeKind::Referrer, stray.digest)));
        assert_eq!(g.stats.revisions, 6);
        assert_eq!(g.stats.manifests, 6);
    }

    #[test]
    fn child_shared_by_two_indexes_is_listed_once() {
        let t = Tree::new();
        let r = "multi";
        let (shared_doc, scfg, slayer) = oci_image(&t, "shared amd64", None);
        let shared = t.push(r, None, &shared_doc);
        let (a_doc, _, _) = oci_image(&t, "arm64 of a", None);
        let a = t.push(r, None, &a_doc);
        let (b_doc, _, _) = oci_image(&t, "arm64 of b", None);
        let b = t.push(r, None, &b_doc);
        let ia = t.push(
            r,
            Some("a"),
            &index_doc(OCI_INDEX, &[(OCI_MANIFEST, shared), (OCI_MANIFEST, a)]),
        );
        let ib = t.push(
            r,
            Some("b"),
            &index_doc(OCI_INDEX, &[(OCI_MANIFEST, shared), (OCI_MANIFEST, b)]),
        );
        let g = t.refs(&tagged_only());
        assert_eq!(
            edges(&g, r, &shared.digest),
            vec![(EdgeKind::Config, scfg.digest), (EdgeKind::Layer, slayer.digest)]
        );
        let to_shared = g.repos()[0]
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Manifest && e.digest == shared.digest)
            .map(|e| e.manifest)
            .collect::<BTreeSet<_>>();
        assert_eq!(to_shared, BTreeSet::from([ia.digest, ib.digest]));
        assert_eq!(g.stats.manifests, 5);
        assert_eq!(g.stats.parsed, 5);
        // Output is in a stable order.
        assert_eq!(output(&g), output(&t.refs(&tagged_only())));
    }

    #[test]
    fn manifest_in_two_repositories_is_parsed_once() {
        let t = Tree::new();
        let (doc, cfg, layer) = oci_image(&t, "mirrored", None);
        let m = t.push("a", Some("1"), &doc);
        t.push("b", Some("2"), &doc);
        let g = t.refs(&Config::default());
        assert_eq!(g.stats.parsed, 1);
        assert_eq!(g.stats.manifests, 2);
        assert_eq!(g.stats.repos, 2);
        for repo in ["a", "b"] {
            assert_eq!(
                edges(&g, repo, &m.digest),
                vec![(EdgeKind::Config, cfg.digest), (EdgeKind::Layer, layer.digest)]
            );
        }
        // With --repo only that repository is walked, and the list says it
        // is not complete.
        let g = t.refs(&Config {
            repos: vec!["b".into()],
            ..Config::default()
        });
        assert_eq!(g.repos().len(), 1);
        assert_eq!(g.repos()[0].repo, "b");
        assert!(!g.complete);
        assert!(!g.trailer().complete);
    }

    #[test]
    fn a_second_walk_reads_only_manifests_it_has_not_seen() {
        let t = Tree::new();
        let (doc, _, _) = oci_image(&t, "first", None);
        let m = t.push("a", Some("1"), &doc);
        let store = Store::fs(t.v2());
        let msgs = Messages::muted("test");
        let g = collect(&store, &Config::default(), &msgs).unwrap();
        assert_eq!(g.stats.parsed, 1);
        // Gone from disk, but known: not read again (manifests are immutable).
        fs::remove_file(t.v2().join(paths::blob_data(&m.digest))).unwrap();
        let (doc2, _, _) = oci_image(&t, "second", None);
        let m2 = t.push("a", Some("2"), &doc2);
        let g = collect_with(&store, &Config::default(), &msgs, g.into_manifest_store()).unwrap();
        assert_eq!(g.stats.missing, 0);
        assert_eq!(g.stats.parsed, 2);
        assert!(g.repos()[0].tags.contains(&("2".to_string(), m2.digest)));
        // A missing manifest is looked at again by the next walk.
        let g = collect(&store, &Config::default(), &msgs).unwrap();
        assert_eq!(g.stats.missing, 1);
        fs::write(t.v2().join(paths::blob_data(&m.digest)), &doc).unwrap();
        let g = collect_with(&store, &Config::default(), &msgs, g.into_manifest_store()).unwrap();
        assert_eq!(g.stats.missing, 0);
    }

    #[test]
    fn keep_recent_keeps_young_untagged_revisions() {
        let t = Tree::new();
        let r = "k";
        let (v1_doc, _, _) = oci_image(&t, "v1", None);
        let v1 = t.push(r, Some("v1"), &v1_doc);
        let (young_doc, ycfg, _) = oci_image(&t, "young", None);
        let young = t.push(r, None, &young_doc);
        let (old_doc, ocfg, _) = oci_image(&t, "old", None);
        let old = t.push(r, None, &old_doc);
        let link = t.v2().join(paths::revision_link(r, &old.digest));
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86400);
        fs::File::options()
            .write(true)
            .open(&link)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();

        let g = t.refs(&Config {
            tagged_only: true,
            keep_recent: Some(Duration::from_secs(3600)),
            repos: vec![],
            ..Config::default()
        });
        // v1's own revision link is young too: a root twice over.
        let mut want = vec![v1.digest, young.digest];
        want.sort();
        assert_eq!(g.repos()[0].revisions, want);
        assert_eq!(g.stats.revisions, 2);
        let n = named(&g);
        assert!(n.contains(&young.digest) && n.contains(&ycfg.digest));
        assert!(!n.contains(&old.digest) && !n.contains(&ocfg.digest));
        assert!(output(&g).contains(&RefRecord::Revision {
            repo: r.into(),
            digest: young.digest,
            target: None,
        }));

        let g = t.refs(&Config {
            tagged_only: true,
            keep_recent: Some(Duration::from_secs(3 * 86400)),
            repos: vec![],
            ..Config::default()
        });
        assert_eq!(g.stats.revisions, 3);
        let g = t.refs(&tagged_only());
        assert_eq!(g.stats.revisions, 0);
        assert!(!named(&g).contains(&young.digest));
    }

    #[test]
    fn missing_manifest_data_is_a_warning_counted_in_the_trailer() {
        let t = Tree::new();
        let gone = Digest::sha256_of(b"a manifest whose data was deleted");
        t.tag("m", "broken", &gone);
        t.revision("m", &gone);
        // An index whose second child is missing.
        let (img_doc, cfg, _) = oci_image(&t, "present", None);
        let img = t.push("m", None, &img_doc);
        let lost_child = Digest::sha256_of(b"a child whose data was deleted");
        let idx_doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{{"mediaType":"{OCI_MANIFEST}","digest":"{lost_child}","size":1}}]}}"#,
            desc(OCI_MANIFEST, &img)
        );
        t.push("m", Some("idx"), idx_doc.as_bytes());
        // An untagged revision whose data is missing: with --tagged-only we
        // cannot know its subject, so it is reported too.
        let lost_rev = Digest::sha256_of(b"an untagged revision whose data was deleted");
        t.revision("m", &lost_rev);

        for cfg_ in [Config::default(), tagged_only()] {
            let g = t.refs(&cfg_);
            assert_eq!(g.stats.missing, 3, "{cfg_:?}");
            assert!(g.repos()[0].tags.contains(&("broken".to_string(), gone)));
            assert!(named(&g).contains(&cfg.digest));
            assert!(named(&g).contains(&lost_child));
            let out = output(&g);
            let RefRecord::End(end) = out.last().unwrap() else {
                panic!("no trailer");
            };
            assert_eq!(end.missing, 3);
        }
    }

    /// Spoils a stored manifest.
    type Spoil = dyn Fn(&Tree, &Digest);

    #[test]
    fn unusable_manifests_fail_naming_repository_digest_and_path() {
        let too_large = format!("larger than {MANIFEST_LIMIT} bytes");
        let cases: [(&str, &Spoil, &str); 5] = [
            (
                "unreadable",
                &|t, d| {
                    let data = t.v2().join(paths::blob_data(d));
                    fs::remove_file(&data).unwrap();
                    fs::create_dir_all(data.join("x")).unwrap();
                },
                "not a regular file but a directory",
            ),
            (
                "hash mismatch",
                &|t, d| t.put(&paths::blob_data(d), b"{}"),
                "does not hash to its digest",
            ),
            ("not JSON", &|_, _| {}, "not JSON"),
            ("not a manifest", &|_, _| {}, "not a JSON object"),
            (
                "too large",
                &|t, d| t.put(&paths::blob_data(d), &vec![b' '; MANIFEST_LIMIT as usize + 1]),
                &too_large,
            ),
        ];
        for (name, spoil, want) in cases {
            let t = Tree::new();
            let (ok_doc, _, _) = oci_image(&t, "fine", None);
            t.push("good", Some("1"), &ok_doc);
            let bytes: &[u8] = match name {
                "not JSON" => b"\x1f\x8b this is a gzip layer, not a manifest",
                "not a manifest" => b"[1, 2, 3]",
                _ => b"{\"schemaVersion\":2}",
            };
            let bad = t.push("bad/repo", Some("latest"), bytes);
            spoil(&t, &bad.digest);
            for cfg in [Config::default(), tagged_only()] {
                let err = t.fails(&cfg);
                let path = t.v2().join(paths::blob_data(&bad.digest));
                assert!(!want.is_empty(), "{name}: a case must name its message");
                for part in [
                    "bad/repo",
                    &bad.digest.to_string(),
                    &path.display().to_string(),
                    want,
                ] {
                    assert!(err.contains(part), "{name}: {part:?} not in {err}");
                }
            }
        }
    }

    #[test]
    fn unusable_untagged_revision_or_child_fails_too() {
        // An untagged revision: its subject could make it live.
        let t = Tree::new();
        let (ok_doc, _, _) = oci_image(&t, "fine", None);
        t.push("r", Some("1"), &ok_doc);
        let bad = t.push("r", None, b"not json");
        let err = t.fails(&tagged_only());
        assert!(err.contains(&bad.digest.to_string()), "{err}");

        // An index child (read in a later wave).
        let t = Tree::new();
        let child = t.blob(b"\x1f\x8b a layer where a manifest should be");
        let idx = index_doc(OCI_INDEX, &[(OCI_MANIFEST, child)]);
        t.push("r", Some("1"), &idx);
        let err = t.fails(&tagged_only());
        assert!(err.contains(&child.digest.to_string()), "{err}");
    }

    #[test]
    fn garbled_links_and_listing_problems_fail() {
        let fine = |t: &Tree| {
            let (doc, _, _) = oci_image(t, "fine", None);
            t.push("r", Some("ok"), &doc)
        };
        // Empty and garbled tag links.
        for content in [&b""[..], b"sha256:xyz", b"sha256:1234 and more"] {
            let t = Tree::new();
            fine(&t);
            t.put(&paths::tag_current("r", "bad"), content);
            for cfg in [Config::default(), tagged_only()] {
                let err = t.fails(&cfg);
                assert!(err.contains("tags/bad/current/link: bad link file"), "{err}");
            }
        }
        // Revision links are not opened: an empty one, or one naming another
        // digest, is the revision its path names, a root that keeps that
        // manifest (here missing: a warning). reg-ls reports the disagreement.
        for content in ["".to_string(), Digest::sha256_of(b"else").to_string()] {
            let t = Tree::new();
            fine(&t);
            let d = Digest::sha256_of(b"a revision");
            t.put(&paths::revision_link("r", &d), content.as_bytes());
            let g = t.refs(&Config::default());
            assert!(g.repos()[0].revisions.contains(&d));
            assert_eq!(g.stats.missing, 1);
            assert!(matches!(
                Store::fs(t.v2()).revisions("r").errors[0].kind(),
                ErrorKind::BadLink(_)
            ));
        }
        // A revisions directory that is not a digest directory.
        let t = Tree::new();
        fine(&t);
        t.put("repositories/r/_manifests/revisions/sha256/nothex/link", b"x");
        let err = t.fails(&tagged_only());
        assert!(err.contains("revisions/sha256/nothex"), "{err}");
        // An unknown --repo.
        let t = Tree::new();
        fine(&t);
        let err = t.fails(&Config {
            repos: vec!["nope".into()],
            ..Config::default()
        });
        assert!(err.contains("nope: no such repository"), "{err}");
        // A tag directory without a current link is only a warning.
        let t = Tree::new();
        let ok = fine(&t);
        fs::create_dir_all(t.v2().join(paths::tag_dir("r", "half"))).unwrap();
        let g = t.refs(&tagged_only());
        assert_eq!(g.repos()[0].tags, vec![("ok".to_string(), ok.digest)]);
    }

    #[test]
    fn written_output_ends_with_the_trailer() {
        let t = Tree::new();
        let (doc, _, _) = oci_image(&t, "one", None);
        let (sdoc, _, _) = oci_image(&t, "sig", Some(&t.blob(&doc)));
        t.push("w", Some("1"), &doc);
        t.push("w", None, &sdoc);
        let g = t.refs(&tagged_only());
        let out = output(&g);
        let RefRecord::End(end) = out.last().unwrap().clone() else {
            panic!("last record is not the trailer");
        };
        assert_eq!(end, g.trailer());
        assert_eq!(end.tool, "reg-refs");
        let body = &out[..out.len() - 1];
        assert!(body.iter().all(|r| !matches!(r, RefRecord::End(_))));
        let count = |f: fn(&RefRecord) -> bool| body.iter().filter(|r| f(r)).count() as u64;
        assert_eq!(count(|r| matches!(r, RefRecord::Tag { .. })), end.tags);
        assert_eq!(count(|r| matches!(r, RefRecord::Revision { .. })), end.revisions);
        assert_eq!(
            count(|r| !matches!(r, RefRecord::Tag { .. } | RefRecord::Revision { .. })),
            end.references
        );
        assert_eq!((end.repos, end.tags, end.manifests, end.references), (1, 1, 2, 5));
        assert!(end.complete);
    }

    /// A blob pushed as `sha512:` (or `sha384:`) is stored under its sha256
    /// digest and linked from `_layers/sha512/<hex>/link`, which names the
    /// sha256 digest; a manifest naming the sha512 digest is served the
    /// sha256 blob. So are child manifests uploaded that way.
    #[test]
    fn references_through_alias_links_keep_what_the_registry_serves() {
        let t = Tree::new();
        let r = "alias/app";
        let cfg = t.blob(b"{\"architecture\":\"amd64\"}");
        let data = b"a layer pushed as sha512";
        let layer = t.blob(data);
        let zero = |alg: &str, n: usize| Digest::parse(&format!("{alg}:{}", "0".repeat(n))).unwrap();
        let l512 = zero("sha512", 128).same_alg_of(data);
        let l384 = zero("sha384", 96).same_alg_of(data);
        // The registry's links: the sha256 one, and the aliases.
        t.put(
            &paths::layer_link(r, &layer.digest),
            layer.digest.to_string().as_bytes(),
        );
        t.put(&paths::layer_link(r, &l512), layer.digest.to_string().as_bytes());
        t.put(&paths::layer_link(r, &l384), layer.digest.to_string().as_bytes());
        let named = |d: Digest| Blob {
            digest: d,
            size: data.len(),
        };
        let image = image_doc(OCI_MANIFEST, &cfg, &[named(l512), named(l384)], None);
        let m = t.push(r, Some("v1"), &image);

        // A child manifest uploaded as a blob with ?digest=sha512: (no
        // revision link), named by that digest in a tagged index.
        let child_cfg = t.blob(b"{\"architecture\":\"arm64\"}");
        let child_layer = t.blob(b"child layer");
        let child = t.blob(&image_doc(OCI_MANIFEST, &child_cfg, &[child_layer], None));
        let c512 =
            zero("sha512", 128).same_alg_of(&fs::read(t.v2().join(paths::blob_data(&child.digest))).unwrap());
        t.put(
            &paths::layer_link(r, &child.digest),
            child.digest.to_string().as_bytes(),
        );
        t.put(&paths::layer_link(r, &c512), child.digest.to_string().as_bytes());
        let idx = t.push(
            r,
            Some("multi"),
            &index_doc(OCI_INDEX, &[(OCI_MANIFEST, named(c512))]),
        );

        for run in [Config::default(), tagged_only()] {
            let g = t.refs(&run);
            assert_eq!(g.stats.missing, 0, "nothing is missing: {:?}", g.broken);
            let edges = &g.repos()[0].edges;
            let target_of = |d: &Digest| edges.iter().find(|e| e.digest == *d).and_then(|e| e.target);
            assert_eq!(target_of(&l512), Some(layer.digest));
            assert_eq!(target_of(&l384), Some(layer.digest));
            assert_eq!(target_of(&cfg.digest), None);
            assert_eq!(target_of(&c512), Some(child.digest));
            // The child is read through its link: its blobs are live.
            assert_eq!(
                edges_of_manifest(&g, r, &child.digest),
                vec![
                    (EdgeKind::Config, child_cfg.digest),
                    (EdgeKind::Layer, child_layer.digest)
                ]
            );
            assert!(edges.iter().any(|e| e.manifest == idx.digest && e.digest == c512));
            assert!(edges.iter().any(|e| e.manifest == m.digest));
            // Every record says the target; the trailer counts them.
            let out = output(&g);
            let named: Vec<&RefRecord> = out
                .iter()
                .filter(|r| {
                    matches!(
                        r,
                        RefRecord::Layer { target: Some(_), .. }
                            | RefRecord::Manifest { target: Some(_), .. }
                    )
                })
                .collect();
            assert_eq!(named.len(), 3, "{out:?}");
            let RefRecord::End(end) = out.last().unwrap() else {
                panic!()
            };
            assert_eq!(
                end.references,
                out.iter()
                    .filter(|r| !matches!(
                        r,
                        RefRecord::Tag { .. } | RefRecord::Revision { .. } | RefRecord::End(_)
                    ))
                    .count() as u64
            );
        }
    }

    fn edges_of_manifest(g: &Graph, repo: &str, m: &Digest) -> Vec<(EdgeKind, Digest)> {
        g.repos()
            .into_iter()
            .filter(|x| x.repo == repo)
            .flat_map(|x| x.edges)
            .filter(|e| e.manifest == *m)
            .map(|e| (e.kind, e.digest))
            .collect()
    }

    /// A link under an algorithm no tool knows: reported, its target kept
    /// (a `link` root), and the rest of the registry walked.
    #[test]
    fn a_link_under_an_unknown_algorithm_keeps_its_target_and_stops_nothing() {
        let t = Tree::new();
        let kept = t.blob(b"named by a blake3 link only");
        t.put(
            "repositories/odd/app/_layers/blake3/abcdef/link",
            kept.digest.to_string().as_bytes(),
        );
        t.put(
            "repositories/odd/app/_manifests/revisions/blake3/012345/link",
            kept.digest.to_string().as_bytes(),
        );
        let cfg = t.blob(b"{}");
        let l = t.blob(b"l");
        t.push("odd/app", Some("v1"), &image_doc(OCI_MANIFEST, &cfg, &[l], None));
        let msgs = Messages::muted("reg-refs");
        let g = collect(&Store::fs(t.v2()), &tagged_only(), &msgs).unwrap();
        let links: Vec<RefRecord> = output(&g)
            .into_iter()
            .filter(|r| matches!(r, RefRecord::Link { .. }))
            .collect();
        assert_eq!(
            links,
            vec![
                RefRecord::Link {
                    repo: "odd/app".into(),
                    name: "blake3:abcdef".into(),
                    digest: kept.digest
                },
                RefRecord::Link {
                    repo: "odd/app".into(),
                    name: "blake3:012345".into(),
                    digest: kept.digest
                },
            ]
        );
        assert!(msgs.warnings() >= 2, "reported");
        assert_eq!(msgs.errors(), 0);
        assert!(named(&g).contains(&l.digest), "the rest is walked");
    }

    /// Each round walks every repository again, so rounds must not grow
    /// with the depth of nested indexes (10,000 levels took 31 s).
    #[test]
    fn a_chain_of_nested_indexes_loads_in_a_few_rounds() {
        let t = Tree::new();
        let cfg = t.blob(b"{}");
        let l = t.blob(b"deepest layer");
        let mut child = t.blob(&image_doc(OCI_MANIFEST, &cfg, &[l], None));
        for _ in 0..300 {
            child = t.blob(&index_doc(OCI_INDEX, &[(OCI_MANIFEST, child)]));
        }
        t.tag("deep", "v1", &child.digest);
        t.revision("deep", &child.digest);
        for c in [Config::default(), tagged_only()] {
            let g = t.refs(&c);
            assert!(named(&g).contains(&l.digest));
            assert_eq!(g.stats.parsed, 301);
            assert!(g.stats.waves <= 4, "{} rounds", g.stats.waves);
        }
    }
}
