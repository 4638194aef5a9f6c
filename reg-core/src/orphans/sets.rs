//! The compact sets of what the input references ([`LiveRefs`]): digests
//! as 8-byte keys, (repository, manifest) pairs as 16, sorted once the input
//! is read, and a bit a referenced digest for "the blob walk found it stored".

use super::*;

/// A set of digests, 8 bytes each (see [`key`] and [`SortedSet`]).
#[derive(Default)]
pub(super) struct Digests(SortedSet<u64>);

impl Digests {
    pub(super) fn insert(&mut self, d: Digest) {
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
pub(super) struct PairSet(SortedSet<(u32, u64)>);

impl PairSet {
    pub(super) fn insert(&mut self, repo: u32, d: Digest) {
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
pub(super) struct Bits(Vec<AtomicU64>);

impl Bits {
    pub(super) fn new(n: usize) -> Bits {
        Bits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    pub(super) fn set(&self, i: usize) {
        self.0[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
    }

    pub(super) fn get(&self, i: usize) -> bool {
        self.0[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }
}

/// What the reg-refs input references (the live references; not the
/// [`crate::refs`] graph).
#[derive(Default)]
pub struct LiveRefs {
    /// Every digest named by any record or bare line: blobs to keep.
    pub(super) blobs: Digests,
    /// Which of `blobs` the blob walk found stored (by position).
    stored: Bits,
    /// Bare digest lines: kept as revisions in every repository too.
    pub(super) anywhere: Digests,
    /// Live (repository, manifest) pairs.
    pub(super) pairs: PairSet,
    /// The last (repository, manifest) of an edge record: edges come
    /// grouped by manifest, so most repeats are skipped before sorting.
    pub(super) last_edge: Option<(u32, Digest)>,
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
    pub(super) fn finish(&mut self) {
        self.blobs.finish();
        self.anywhere.finish();
        self.pairs.finish();
        self.stored = Bits::new(self.blobs.len());
    }

    /// If the input names `d`: notes that it is stored, and says true.
    pub(super) fn mark_stored(&self, d: &Digest) -> bool {
        self.blobs.position(d).map(|i| self.stored.set(i)).is_some()
    }

    /// Whether the input names `d` and the blob walk found it stored (or
    /// found stored a blob that shares its [`key`]: then a link to `d` is
    /// not reported as dangling, which keeps it).
    pub(super) fn referenced_and_stored(&self, d: &Digest) -> bool {
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

    pub(super) fn repo_id(&mut self, repo: &str) -> u32 {
        if let Some(&id) = self.repo_ids.get(repo) {
            return id;
        }
        let id = self.repo_ids.len() as u32;
        self.repo_ids.insert(repo.to_owned(), id);
        id
    }
}
