//! What the sweep found ([`Found`]), sorted in the order it is printed:
//! orphan blobs and revisions packed small ([`Blobs`], [`Revisions`]), layer
//! links, uploads, repositories, and the trailer's counts.

use super::*;

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
    pub(super) fn push(&mut self, b: Blob) {
        match b.digest.as_sha256() {
            Some(&digest) => self.short.push(ShortBlob {
                digest,
                size: b.size,
                secs: crate::time::unix_secs(b.mtime),
            }),
            None => self.long.push(b),
        }
    }

    pub(super) fn append(&mut self, other: &mut Blobs) {
        self.short.append(&mut other.short);
        self.long.append(&mut other.long);
    }

    pub(super) fn sort(&mut self) {
        self.short.sort_unstable_by_key(|b| b.digest);
        self.long.sort_by_key(|b| b.digest);
    }

    /// Whether `d` is one of them (once sorted).
    pub fn contains(&self, d: &Digest) -> bool {
        match d.as_sha256() {
            Some(k) => self.short.binary_search_by_key(k, |b| b.digest).is_ok(),
            None => self.long.binary_search_by_key(d, |b| b.digest).is_ok(),
        }
    }

    /// Keeps the blobs whose digest `keep` says true of.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Digest) -> bool) {
        self.short.retain(|b| keep(&Digest::sha256(b.digest)));
        self.long.retain(|b| keep(&b.digest));
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn clear(&mut self) {
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
            digest: Digest::sha256(b.digest),
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
    pub(super) fn push(&mut self, repo: u32, r: &Revision) {
        let secs = crate::time::unix_secs(r.mtime);
        match r.digest.as_sha256() {
            Some(&digest) => self.short.push(ShortRevision { repo, secs, digest }),
            None => self.long.push(OrphanRevision {
                repo,
                secs,
                digest: r.digest,
            }),
        }
    }

    pub(super) fn sort(&mut self) {
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
                digest: Digest::sha256(r.digest),
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

impl Found {
    /// One repository's orphans (`index`: its place in `names`).
    pub(super) fn add_repo(&mut self, index: u32, repo: &str, scan: RepoScan) {
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
    pub(super) fn sort(&mut self) {
        self.revisions.sort();
        self.layer_links
            .sort_unstable_by(|a, b| (&a.0, a.1.digest).cmp(&(&b.0, b.1.digest)));
        self.uploads
            .sort_unstable_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        self.repos.sort();
    }
}
