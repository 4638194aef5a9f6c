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
use std::io::Write;
use std::sync::Arc;
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

mod codec;
mod load;
mod store;
mod walk;

use codec::*;
use load::*;
use store::*;
use walk::*;

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
    pub skip_tags: Arc<HashSet<(String, String)>>,
    /// Revisions that are never roots, whatever the policy (reg-rm's mark:
    /// the revisions its run removes). They are still listed, so a live
    /// subject or index can make them live.
    pub skip_revisions: Arc<std::collections::BTreeSet<(String, Digest)>>,
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
///
/// On a large bucket `repositories/` is held a batch of repositories at a
/// time, never whole (issue 18): nothing after the roots are listed looks
/// there but a missing manifest's `_layers` link (a request each). So is
/// `blobs/`, a batch of prefix directories at a time: it is looked at only
/// for whether the manifests the roots name are stored (the manifest
/// cache's check, [`Store::look_up_manifests`]).
pub fn collect(store: &Store, cfg: &Config, msgs: &Messages) -> anyhow::Result<Graph> {
    store.list_repositories_by_repository();
    store.list_blobs_by_prefix();
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
    // Every manifest a root names, whether stored, looked up at once (on a
    // large bucket with the manifest cache; nothing otherwise).
    store.look_up_manifests(
        cache
            .ids()
            .filter(|&id| !matches!(cache.state(id), State::Parsed { .. }))
            .map(|id| cache.digest(id))
            .collect(),
    );

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
