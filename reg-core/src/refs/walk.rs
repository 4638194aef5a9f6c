//! Liveness: a repository's roots ([`Roots`]), the walk from them over the
//! manifest store ([`walk`]), its edges and counts, and the fingerprint of
//! the roots.

use super::*;
use crate::digest::IdHash;

// ---- liveness -------------------------------------------------------------

/// One repository's roots as listed.
pub(super) struct Roots {
    pub(super) repo: String,
    /// Tag names, by name, concatenated; `tag_ends` says where each ends.
    pub(super) tag_names: String,
    pub(super) tag_ends: Vec<u32>,
    /// Tag targets, in the order of `tag_ends`.
    pub(super) tag_ids: Vec<Id>,
    /// Revisions, by digest.
    pub(super) revisions: Vec<Id>,
    /// Which revisions are roots.
    pub(super) revision_root: Vec<bool>,
    /// Links whose content names another digest than their path (see
    /// [`crate::layout::Alias`]): (name, target, kind), by name id.
    pub(super) aliases: Vec<(Id, Id, LinkKind)>,
    /// Links under an algorithm no tool knows: (`alg:name`, target).
    pub(super) links: Vec<(String, Digest)>,
}

impl Roots {
    pub(super) fn tags(&self) -> impl Iterator<Item = (&str, Id)> + '_ {
        let starts = std::iter::once(0).chain(self.tag_ends.iter().copied());
        let names = starts
            .zip(self.tag_ends.iter().copied())
            .map(|(a, b)| &self.tag_names[a as usize..b as usize]);
        names.zip(self.tag_ids.iter().copied())
    }

    pub(super) fn revision_roots(&self) -> impl Iterator<Item = Id> + '_ {
        self.revisions
            .iter()
            .zip(self.revision_root.iter())
            .filter(|(_, root)| **root)
            .map(|(d, _)| *d)
    }

    /// The aliases named `id` in this repository.
    pub(super) fn aliases_of(&self, id: Id) -> &[(Id, Id, LinkKind)] {
        let from = self.aliases.partition_point(|a| a.0 < id);
        let to = from + self.aliases[from..].partition_point(|a| a.0 == id);
        &self.aliases[from..to]
    }

    /// What a reference to `id` makes the registry read in this repository:
    /// the targets of its aliases, and `id` itself unless a link of this
    /// repository says otherwise (the registry looks for a revision link
    /// first, then a `_layers` link, and reads what the first names; both
    /// are followed here).
    pub(super) fn follow(&self, cache: &InRunManifests, id: Id) -> impl Iterator<Item = Id> + '_ {
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
    pub(super) fn targets_or_none<'s>(
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
    pub(super) fn digest_targets<'s>(
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
pub(super) enum Why<'a> {
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
pub(super) struct Walk<'a> {
    /// Live manifests, by digest.
    pub(super) live: Vec<Id>,
    pub(super) live_set: HashSet<Id, IdHash>,
    /// subject → referrers among the repository's revisions, by digest.
    pub(super) referrers: HashMap<Id, Vec<Id>, IdHash>,
    pub(super) needed: Vec<Id>,
    /// Live manifests whose data is missing, and why each is live.
    pub(super) missing: Vec<(Id, Why<'a>)>,
}

pub(super) fn walk<'a>(r: &'a Roots, cache: &InRunManifests) -> Walk<'a> {
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

pub(super) fn edges_of(r: &Roots, w: &Walk, cache: &InRunManifests) -> Vec<Edge> {
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
pub(super) fn edge_count(r: &Roots, w: &Walk, cache: &InRunManifests) -> u64 {
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

/// What one repository adds to the stats, and its warnings.
#[derive(Default)]
pub(super) struct RepoCounts {
    pub(super) manifests: u64,
    pub(super) references: u64,
    pub(super) revisions: u64,
    pub(super) broken: Vec<Broken>,
}

/// A repository's counts from its final walk (one that needs nothing more).
pub(super) fn count(store: &Store, r: &Roots, w: &Walk, cache: &InRunManifests) -> RepoCounts {
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
pub(super) fn fingerprint(roots: &[Roots], cache: &InRunManifests) -> [u8; 32] {
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
