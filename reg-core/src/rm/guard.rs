//! The guards: read-only decisions on the live tree, each testable alone.
//! Nothing here changes the tree; [`super::act`] does, on a [`Verdict`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::{Config, Mode};
use crate::digest::{Algorithm, Digest, SortedSet, Subset};
use crate::layout::{paths, LinkKind, LinkName, Store};
use crate::mark::{Exclusions, Mark};
use crate::messages::{count, Messages};
use crate::progress::Phase;
use crate::time::{future_warning, AgePolicy, Time};

/// What a guard says about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It may go.
    Go,
    /// It must stay, and why.
    Kept(String),
    /// It is not there.
    Absent,
    /// It is not there, but garbage it leaves may go (a `_layers` link
    /// directory without its link; a gone revision's tag index entries).
    AbsentWithLeftovers,
    /// It could not be checked (reported through the messages).
    Failed,
}

/// One repository's links to blobs: (blob, link name, mtime) of its
/// `_layers` links; the blobs a revision link names; false if it could not
/// be read completely.
/// One repository's links to the blobs looked for: `_layers` links (the
/// blob's position in its set, the link's name when it is an alias, its
/// mtime), the blobs with a revision link, and whether it was read whole.
type RepoLinks = (Vec<(u32, Option<Box<Digest>>, SystemTime)>, Vec<u32>, bool);

/// Where a blob is still referenced by links, from a scan of every repository.
#[derive(Default, Clone, Debug)]
pub(super) struct BlobLinks {
    /// `_layers` links: repo, the link's name (the blob's digest, or the
    /// name of an alias that names it) and the link's mtime.
    pub(super) layer_links: Vec<(Arc<str>, Digest, SystemTime)>,
    /// Repositories with a revision link to it.
    pub(super) revisions: Vec<Arc<str>>,
}

/// The blobs whose links [`Guard::blob_links`] looks for: a set of them,
/// or the part of the blobs named that is doomed.
pub(super) trait Blobs: Sync {
    /// Where `d` is in the set, if it is one of these.
    fn position(&self, d: &Digest) -> Option<usize>;
    fn count(&self) -> usize;
}

impl Blobs for SortedSet<Digest> {
    fn position(&self, d: &Digest) -> Option<usize> {
        SortedSet::position(self, d)
    }

    fn count(&self) -> usize {
        self.len()
    }
}

impl Blobs for Subset<'_, Digest> {
    fn position(&self, d: &Digest) -> Option<usize> {
        Subset::position(self, d)
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// Every repository's links to some blobs ([`Guard::blob_links`]): flat
/// lists sorted by the blob's position in its set, 32 bytes a `_layers`
/// link and 8 a revision link, not a map of digests to lists (at 1M
/// objects the map took 30 MB while it was built; issue 18).
pub(super) struct FoundLinks<'b, B> {
    blobs: &'b B,
    repos: Vec<Arc<str>>,
    layers: Vec<FoundLayer>,
    /// (blob, repository) of each revision link.
    revisions: Vec<(u32, u32)>,
}

struct FoundLayer {
    blob: u32,
    repo: u32,
    /// The link's name when it is an alias (not the blob's digest).
    alias: Option<Box<Digest>>,
    mtime: SystemTime,
}

impl<B: Blobs> FoundLinks<'_, B> {
    /// Blob `d`'s links (none if it is not one of the blobs looked for).
    pub(super) fn get(&self, d: &Digest) -> BlobLinks {
        let Some(pos) = self.blobs.position(d) else {
            return BlobLinks::default();
        };
        let pos = pos as u32;
        let from = self.layers.partition_point(|l| l.blob < pos);
        let to = from + self.layers[from..].partition_point(|l| l.blob == pos);
        let layer_links = self.layers[from..to]
            .iter()
            .map(|l| {
                let name = l.alias.as_deref().copied().unwrap_or(*d);
                (self.repos[l.repo as usize].clone(), name, l.mtime)
            })
            .collect();
        let from = self.revisions.partition_point(|&(b, _)| b < pos);
        let revisions = self.revisions[from..]
            .iter()
            .take_while(|&&(b, _)| b == pos)
            .map(|&(_, r)| self.repos[r as usize].clone())
            .collect();
        BlobLinks {
            layer_links,
            revisions,
        }
    }
}

/// What this run removed (or would, in a dry run), so later guards see the
/// tree as it is (or would be) by then.
#[derive(Default, Debug)]
pub(super) struct Removed {
    pub(super) tags: HashSet<(String, String)>,
    pub(super) revisions: RepoDigests,
    pub(super) uploads: HashSet<(String, String)>,
    /// Repositories that lost a `_layers` link in this run.
    pub(super) link_repos: HashSet<String>,
}

/// Digests by repository (the revisions a run removed): each repository's
/// name once and its digests in a sorted list, 40 bytes each (a set of
/// pairs took 125 bytes a revision, 4.3 MB at 1M objects; issue 18).
#[derive(Default, Debug)]
pub(super) struct RepoDigests(HashMap<String, Vec<Digest>>);

impl RepoDigests {
    pub(super) fn extend(&mut self, pairs: impl IntoIterator<Item = (String, Digest)>) {
        let mut touched = HashSet::new();
        for (repo, d) in pairs {
            match self.0.get_mut(&repo) {
                Some(ds) => ds.push(d),
                None => {
                    self.0.insert(repo.clone(), vec![d]);
                }
            }
            touched.insert(repo);
        }
        for repo in touched {
            let ds = self.0.get_mut(&repo).expect("touched");
            ds.sort_unstable();
            ds.dedup();
            ds.shrink_to_fit();
        }
    }

    pub(super) fn contains(&self, repo: &str, d: &Digest) -> bool {
        self.0.get(repo).is_some_and(|ds| ds.binary_search(d).is_ok())
    }

    pub(super) fn remove(&mut self, repo: &str, d: &Digest) {
        if let Some(ds) = self.0.get_mut(repo) {
            if let Ok(i) = ds.binary_search(d) {
                ds.remove(i);
            }
        }
    }

    /// Whether any of `repo`'s is here.
    pub(super) fn has_repo(&self, repo: &str) -> bool {
        self.0.get(repo).is_some_and(|ds| !ds.is_empty())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    /// Every (repository, digest).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, Digest)> {
        self.0
            .iter()
            .flat_map(|(repo, ds)| ds.iter().map(move |d| (repo.as_str(), *d)))
    }
}

impl Removed {
    /// The roots a mark leaves out: what this run removed.
    pub(super) fn exclusions(&self) -> Exclusions {
        let revisions = self.revisions.iter().map(|(r, d)| (r.to_string(), d));
        Exclusions {
            tags: Arc::new(self.tags.clone()),
            revisions: Arc::new(revisions.collect()),
        }
    }

    /// Whether this run removed anything of `repo`.
    pub(super) fn emptied(&self, repo: &str) -> bool {
        self.link_repos.contains(repo)
            || self.tags.iter().any(|(r, _)| r == repo)
            || self.revisions.has_repo(repo)
            || self.uploads.iter().any(|(r, _)| r == repo)
    }
}

/// Manifests whose data is not stored, and those whose data could not be
/// looked up (reported): see [`Guard::manifest_data`].
#[derive(Default, Debug)]
pub(super) struct ManifestData {
    missing: SortedSet<Digest>,
    failed: SortedSet<Digest>,
}

/// The read-only checks of one run.
pub(super) struct Guard<'a> {
    pub(super) store: &'a Store,
    pub(super) cfg: &'a Config,
    pub(super) msgs: &'a Messages,
}

impl Guard<'_> {
    /// Whether `mtime` is younger than `--min-age`. An mtime in the future
    /// is young (kept by every run until then), with a warning.
    pub(super) fn young(&self, rel: &str, mtime: SystemTime) -> bool {
        let ages = AgePolicy {
            now: self.cfg.now,
            min_age: self.cfg.min_age,
        };
        if ages.future(mtime) {
            self.msgs.warn(future_warning(&self.store.display(rel), mtime));
        }
        ages.young(mtime)
    }

    pub(super) fn young_reason(&self) -> String {
        format!(
            "younger than --min-age {}",
            humantime::format_duration(self.cfg.min_age)
        )
    }

    fn mtime(&self, rel: &str) -> Result<Option<SystemTime>, ()> {
        match self.store.meta(rel) {
            Ok(m) => Ok(m.map(|m| m.mtime)),
            Err(e) => {
                self.msgs.error(e);
                Err(())
            }
        }
    }

    // ---- tags

    /// A tag: absent, kept (moved since it was listed, young, unreadable)
    /// or to go; and where it points now.
    pub(super) fn tag(&self, repo: &str, tag: &str, want: Option<Digest>) -> (Verdict, Option<Digest>) {
        match self.store.meta(&paths::tag_dir(repo, tag)) {
            Ok(None) => return (Verdict::Absent, want),
            Ok(Some(_)) => {}
            Err(e) => {
                self.msgs.error(e);
                return (Verdict::Failed, want);
            }
        }
        let link = paths::tag_current(repo, tag);
        let mut points = want;
        match self.store.read_link(&link) {
            Ok(Some(now)) if want.is_some_and(|w| w != now) => {
                return (Verdict::Kept(format!("the tag now points at {now}")), want)
            }
            Ok(Some(now)) => points = Some(now),
            Ok(None) => {}
            Err(e) if want.is_some() => {
                return (Verdict::Kept(format!("cannot check where it points: {e}")), want)
            }
            Err(_) => {}
        }
        match self.mtime(&link) {
            Ok(Some(m)) if self.young(&link, m) => (Verdict::Kept(self.young_reason()), points),
            Ok(_) => (Verdict::Go, points),
            Err(()) => (Verdict::Failed, points),
        }
    }

    /// Checked again just before a tag goes: where it points now, if that
    /// is not where the run saw it.
    pub(super) fn tag_moved(&self, repo: &str, tag: &str, seen: Option<Digest>) -> Option<Digest> {
        match (seen, self.store.read_link(&paths::tag_current(repo, tag))) {
            (Some(seen), Ok(Some(now))) if now != seen => Some(now),
            _ => None,
        }
    }

    // ---- revisions

    /// A revision: kept while the mark reaches it, while what a broken live
    /// manifest of its repository references is unknown, while young, and
    /// while its manifest's data is missing (unless `--accept-broken`).
    pub(super) fn revision(&self, repo: &str, d: Digest, mark: &Mark, data: &ManifestData) -> Verdict {
        let link = paths::revision_link(repo, &d);
        let Ok(mtime) = self.mtime(&link) else {
            return Verdict::Failed;
        };
        let live = mark.revision(repo, &d);
        let broken = mark.broken_in(repo).filter(|_| !self.cfg.accept_broken);
        let Some(mtime) = mtime else {
            // No link: no revision. Leftover index entries (a run stopped
            // half way) are garbage, unless something still reaches it.
            return if live.is_none() && broken.is_none() {
                Verdict::AbsentWithLeftovers
            } else {
                Verdict::Absent
            };
        };
        if let Some(why) = live {
            return Verdict::Kept(why.to_string());
        }
        if let Some(b) = broken {
            return Verdict::Kept(format!(
                "what a live manifest of {repo} references is unknown ({}); pass --accept-broken to delete anyway",
                b.message
            ));
        }
        if self.young(&link, mtime) {
            return Verdict::Kept(self.young_reason());
        }
        if !self.cfg.accept_broken {
            if data.failed.contains(&d) {
                return Verdict::Failed;
            }
            if data.missing.contains(&d) {
                return Verdict::Kept(
                    "its manifest's data is missing (a damaged or unmounted blob store?): \
                     not deleted on that ground without --accept-broken"
                        .into(),
                );
            }
        }
        Verdict::Go
    }

    /// Which of the manifests `ds` (sorted) have no data stored, looked up
    /// a batch of blob prefix directories at a time before their revisions
    /// are judged (on a large bucket, a look each would be a request each),
    /// but for those the mark found stored ([`Store::known_stored`]).
    /// Nothing is looked up with `--accept-broken`, which never asks.
    pub(super) fn manifest_data(&self, ds: &[Digest]) -> ManifestData {
        let mut data = ManifestData::default();
        if self.cfg.accept_broken {
            return data;
        }
        let ds: Vec<Digest> = ds
            .iter()
            .filter(|d| !self.store.known_stored(d))
            .copied()
            .collect();
        self.store.walk_by_blob_prefix(
            &ds,
            |d| *d,
            |batch| {
                for d in batch {
                    match self.store.blob_meta(d) {
                        Ok(Some(_)) => {}
                        Ok(None) => data.missing.insert(*d),
                        Err(e) => {
                            self.msgs.error(e);
                            data.failed.insert(*d);
                        }
                    }
                }
            },
        );
        data.missing.finish();
        data.failed.finish();
        data
    }

    // ---- blobs and their links

    /// Every repository's `_layers` and revision links to the `blobs` (not
    /// counting revisions this run removed), with the `_layers` links' ages.
    /// False if some repository could not be read completely.
    pub(super) fn blob_links<'b, B: Blobs>(
        &self,
        blobs: &'b B,
        removed: &Removed,
    ) -> (FoundLinks<'b, B>, bool) {
        let progress = self.msgs.progress();
        progress.start(Phase::new("listing repositories", ""), None);
        let repos = self.store.repositories();
        let mut ok = repos.errors.is_empty();
        progress.start(
            Phase::new(
                format!(
                    "finding the _layers links of {}",
                    count(blobs.count() as u64, "blob", "blobs")
                ),
                "repositories",
            ),
            Some(repos.items.len() as u64),
        );
        let per: Vec<RepoLinks> = self.store.map_by_repository(
            &repos.items,
            |repo| repo,
            |repo| {
                let found = self.repo_blob_links(repo, blobs, removed);
                progress.inc(1);
                found
            },
        );
        let mut out = FoundLinks {
            blobs,
            repos: Vec::new(),
            layers: Vec::new(),
            revisions: Vec::new(),
        };
        for (repo, (layers, revs, repo_ok)) in repos.items.into_iter().zip(per) {
            ok &= repo_ok;
            if layers.is_empty() && revs.is_empty() {
                continue;
            }
            // One name shared by every link of the repository (a blob of
            // many repositories has many links; each a counted reference,
            // not a copy of the name).
            let r = out.repos.len() as u32;
            out.repos.push(repo.into());
            out.layers
                .extend(layers.into_iter().map(|(blob, alias, mtime)| FoundLayer {
                    blob,
                    repo: r,
                    alias,
                    mtime,
                }));
            out.revisions.extend(revs.into_iter().map(|blob| (blob, r)));
        }
        // Stable: a blob's links stay in the repositories' order.
        out.layers.sort_by_key(|l| l.blob);
        out.layers.shrink_to_fit();
        out.revisions.sort_by_key(|&(b, _)| b);
        out.revisions.shrink_to_fit();
        (out, ok)
    }

    /// One repository's `_layers` and revision links to the `blobs` (see
    /// [`Self::blob_links`]).
    fn repo_blob_links(&self, repo: &str, blobs: &impl Blobs, removed: &Removed) -> RepoLinks {
        let mut ok = true;
        let mut layers: Vec<(u32, Option<Box<Digest>>, SystemTime)> = self
            .links_to(
                repo,
                &paths::layer_link,
                self.store.layer_link_digests(repo),
                blobs,
                &mut ok,
            )
            .into_iter()
            .map(|(pos, _, m)| (pos, None, m))
            .collect();
        let mut revs: Vec<u32> = self
            .links_to(
                repo,
                &paths::revision_link,
                self.store.revision_digests(repo),
                blobs,
                &mut ok,
            )
            .into_iter()
            .filter(|(_, d, _)| !removed.revisions.contains(repo, d))
            .map(|(pos, _, _)| pos)
            .collect();
        // Links under another algorithm that name one of the blobs:
        // they go with it (`_layers`), or keep it (a revision).
        let aliases = self.store.aliases(repo);
        for e in aliases.errors {
            if !matches!(e.kind(), crate::error::ErrorKind::BadLink(_)) {
                self.msgs.error(e);
                ok = false;
            }
        }
        for a in aliases.items {
            let Some(pos) = blobs.position(&a.target) else {
                continue;
            };
            let pos = pos as u32;
            match (a.kind, a.name) {
                (LinkKind::LayerLink, LinkName::Digest(name)) => {
                    layers.push((pos, Some(Box::new(name)), a.mtime))
                }
                (LinkKind::Revision, LinkName::Digest(name)) if removed.revisions.contains(repo, &name) => {}
                // A revision alias, or a link no tool can name: keeps it.
                _ => revs.push(pos),
            }
        }
        (layers, revs, ok)
    }

    /// Of the digests `listed` (a repository's link names), those in `want`
    /// whose link file exists, with its mtime. Problems clear `ok`.
    fn links_to(
        &self,
        repo: &str,
        link: &dyn Fn(&str, &Digest) -> String,
        listed: crate::layout::Listing<Digest>,
        want: &impl Blobs,
        ok: &mut bool,
    ) -> Vec<(u32, Digest, SystemTime)> {
        // An unknown algorithm's links are the mark's (it keeps what they
        // name); anything else could hide a link.
        for e in listed.errors.into_iter().filter(|e| !e.is_warning()) {
            self.msgs.error(e);
            *ok = false;
        }
        let mut out = Vec::new();
        for d in listed.items {
            let Some(pos) = want.position(&d) else {
                continue;
            };
            match self.store.link_mtime(&link(repo, &d)) {
                Ok(Some(m)) => out.push((pos as u32, d, m)),
                Ok(None) => {}
                Err(e) => {
                    self.msgs.error(e);
                    *ok = false;
                }
            }
        }
        out
    }

    /// Why blob `d` must stay, or `None` if it may go: the mark reaches it;
    /// the roots kept changing; live manifests are broken (unless
    /// `--accept-broken`); the repositories could not all be read; a
    /// revision link still names it; its data or one of its links is young.
    pub(super) fn blob(
        &self,
        d: Digest,
        links: &BlobLinks,
        mark: &Mark,
        unstable: bool,
        scan_ok: bool,
    ) -> Option<String> {
        if let Some(why) = mark.blob(&d) {
            return Some(why.to_string());
        }
        if unstable {
            return Some(UNSTABLE.into());
        }
        if let (false, Some(first)) = (self.cfg.accept_broken, mark.broken.first()) {
            return Some(format!(
                "{} live manifests are missing or unusable, so what they reference is unknown \
                 (first: {}); pass --accept-broken to delete anyway",
                mark.broken.len(),
                first.message
            ));
        }
        if !scan_ok {
            return Some("could not read every repository (see errors)".into());
        }
        if let Some(repo) = links.revisions.first() {
            return Some(format!("still a manifest revision in {repo}"));
        }
        match self.store.blob_meta(&d) {
            Ok(Some(m)) if self.young(&paths::blob_data(&d), m.mtime) => return Some(self.young_reason()),
            Ok(_) => {}
            Err(e) => {
                self.msgs.error(e);
                return Some("cannot read its data file (see errors)".into());
            }
        }
        links
            .layer_links
            .iter()
            .find(|(repo, name, m)| self.young(&paths::layer_link(repo, name), *m))
            .map(|(repo, _, _)| format!("its _layers link in {repo} is {}", self.young_reason()))
    }

    /// A blob's data, checked again at deletion time: young now (a push
    /// wrote it again), or unreadable; with its size when it is there.
    pub(super) fn blob_now(&self, d: Digest) -> (Verdict, Option<u64>) {
        match self.store.blob_meta(&d) {
            // Warned about (if in the future) when the blob was judged.
            Ok(Some(m)) if Time(m.mtime).age(self.cfg.now) < self.cfg.min_age => {
                (Verdict::Kept(self.young_reason()), Some(m.size))
            }
            Ok(Some(m)) => (Verdict::Go, Some(m.size)),
            Ok(None) => (Verdict::Absent, None),
            Err(e) => {
                self.msgs.error(e);
                (Verdict::Failed, None)
            }
        }
    }

    /// A `_layers` link. `guarded`: named on its own (its blob is not
    /// going): kept while its blob is stored, and when its blob is missing
    /// unless `--accept-broken`.
    pub(super) fn layer_link(&self, repo: &str, d: Digest, guarded: bool, unstable: bool) -> Verdict {
        let link = paths::layer_link(repo, &d);
        let mtime = match self.mtime(&link) {
            Ok(Some(m)) => m,
            // A link directory without its link is garbage.
            Ok(None) => return Verdict::AbsentWithLeftovers,
            Err(()) => return Verdict::Failed,
        };
        if guarded {
            // An alias link serves the blob it names.
            let blob = match d.algorithm() {
                Algorithm::Sha256 => d,
                _ => match self.store.read_link(&link) {
                    Ok(Some(t)) => t,
                    _ => d,
                },
            };
            match self.store.blob_meta(&blob) {
                Ok(Some(_)) => {
                    return Verdict::Kept(
                        "its blob is still stored (and not deleted in this run): the link may be in use"
                            .into(),
                    )
                }
                Ok(None) if unstable => return Verdict::Kept(UNSTABLE.into()),
                Ok(None) if !self.cfg.accept_broken => {
                    return Verdict::Kept(
                        "its blob is missing (a damaged or unmounted blob store?): not deleted on that \
                         ground without --accept-broken"
                            .into(),
                    )
                }
                Ok(None) => {}
                Err(e) => {
                    self.msgs.error(e);
                    return Verdict::Failed;
                }
            }
        }
        if self.young(&link, mtime) {
            return Verdict::Kept(self.young_reason());
        }
        Verdict::Go
    }

    // ---- uploads and repositories

    /// An upload: kept while it (or its data) is young.
    pub(super) fn upload(&self, repo: &str, id: &str) -> Verdict {
        let dir = paths::upload_dir(repo, id);
        let up = match self.store.upload(repo, id) {
            Ok(Some(u)) => Some(u),
            Ok(None) => return Verdict::Absent,
            // An unreadable startedat: fall back to the mtimes.
            Err(_) => None,
        };
        let mut newest = up.map(|u| u.started_at.0);
        for rel in [dir.clone(), format!("{dir}/data")] {
            match self.mtime(&rel) {
                Ok(Some(m)) => newest = Some(newest.map_or(m, |n| n.max(m))),
                Ok(None) => {}
                Err(()) => return Verdict::Failed,
            }
        }
        if newest.is_some_and(|m| self.young(&dir, m)) {
            return Verdict::Kept(self.young_reason());
        }
        Verdict::Go
    }

    /// A repository: it may go once it holds no tag, revision or upload
    /// (besides what this run removed) and no young `_layers` link.
    pub(super) fn repo(&self, repo: &str, removed: &Removed) -> Verdict {
        match self.store.has_own_dirs(repo) {
            Ok(true) => {}
            Ok(false) => return Verdict::Absent,
            Err(e) => {
                self.msgs.error(e);
                return Verdict::Failed;
            }
        }
        let listing_failed = |errors: Vec<crate::Error>| {
            let failed = !errors.is_empty();
            for e in errors {
                // An unknown algorithm is a warning, and still keeps it.
                self.msgs.problem(e);
            }
            failed
        };
        // What is left of one kind once this run's removals are counted.
        let left = |what: &str, l: crate::layout::Listing<String>, gone: &dyn Fn(&str) -> bool| {
            if let Some(x) = l.items.iter().find(|x| !gone(x)) {
                return Some(Verdict::Kept(format!("it still has {what} {x:?}")));
            }
            listing_failed(l.errors).then(|| Verdict::Kept(format!("cannot read its {what}s (see errors)")))
        };
        let key = |x: &str| (repo.to_string(), x.to_string());
        if let Some(v) = left("tag", self.store.tag_names(repo), &|t| {
            removed.tags.contains(&key(t))
        }) {
            return v;
        }
        let revs = self.store.revisions_by_name(repo);
        if listing_failed(revs.errors) {
            return Verdict::Kept("cannot read its revisions (see errors)".into());
        }
        if let Some(r) = revs
            .items
            .iter()
            .find(|r| !removed.revisions.contains(repo, &r.digest))
        {
            return Verdict::Kept(format!("it still has revision {}", r.digest));
        }
        if let Some(v) = left("upload", self.store.upload_ids(repo), &|u| {
            removed.uploads.contains(&key(u))
        }) {
            return v;
        }
        let layers = self.store.layer_link_digests(repo);
        if listing_failed(layers.errors) {
            return Verdict::Kept("cannot read its _layers links (see errors)".into());
        }
        for d in layers.items {
            let link = paths::layer_link(repo, &d);
            match self.mtime(&link) {
                Ok(Some(m)) if self.young(&link, m) => {
                    return Verdict::Kept(format!("it has a _layers link {}", self.young_reason()))
                }
                Ok(_) => {}
                Err(()) => return Verdict::Kept("cannot read its _layers links (see errors)".into()),
            }
        }
        Verdict::Go
    }

    /// Whether the empty directory `rel` is old enough to remove.
    pub(super) fn empty_dir_old(&self, rel: &str) -> bool {
        matches!(self.store.meta(rel), Ok(Some(m)) if m.is_dir && Time(m.mtime).age(self.cfg.now) >= self.cfg.min_age)
    }

    pub(super) fn dry_run(&self) -> bool {
        self.cfg.mode == Mode::DryRun
    }
}

/// Why everything waits for another run when the roots would not hold still.
pub(super) const UNSTABLE: &str = "tags or revisions kept changing while reg-rm looked (pushes?): run again";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark::{Asked, Exclusions};
    use crate::testutil::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::time::Duration;

    fn cfg(min_age: Duration) -> Config {
        Config {
            min_age,
            ..Config::default()
        }
    }

    /// A tree's store and muted messages, to build guards over.
    struct Fixture {
        store: Store,
        msgs: Messages,
    }

    impl Fixture {
        /// The tree at `v2`, aged a day first.
        fn aged(v2: &std::path::Path) -> Fixture {
            age(v2, DAY);
            Fixture {
                store: Store::fs(v2),
                msgs: Messages::muted("test"),
            }
        }

        fn guard<'a>(&'a self, cfg: &'a Config) -> Guard<'a> {
            Guard {
                store: &self.store,
                cfg,
                msgs: &self.msgs,
            }
        }
    }

    fn mark(store: &Store, excl: &Exclusions, revs: &BTreeSet<(String, Digest)>) -> Mark {
        let asked = Asked {
            blobs: &SortedSet::default(),
            revisions: revs,
        };
        Mark::compute(store, excl, asked, &Messages::muted("test")).unwrap()
    }

    #[test]
    fn a_layer_link_stays_while_its_blob_is_stored_or_missing_or_the_link_young() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (_, c, _) = image(v2, "app", Some("v1"), "one");
        let gone = Digest::sha256_of(b"gone");
        link(v2, &paths::layer_link("app", &gone), &gone);
        let hollow = Digest::sha256_of(b"hollow");
        fs::create_dir_all(v2.join(paths::layer_link_dir("app", &hollow))).unwrap();
        let fx = Fixture::aged(v2);
        let (strict, broken_ok) = (
            cfg(Duration::ZERO),
            Config {
                accept_broken: true,
                ..cfg(Duration::ZERO)
            },
        );
        let g = fx.guard(&strict);
        assert!(
            matches!(g.layer_link("app", c, true, false), Verdict::Kept(w) if w.contains("still stored"))
        );
        // Its blob goes in this run: the link goes with it.
        assert_eq!(g.layer_link("app", c, false, false), Verdict::Go);
        assert!(
            matches!(g.layer_link("app", gone, true, false), Verdict::Kept(w) if w.contains("--accept-broken"))
        );
        assert_eq!(
            g.layer_link("app", gone, true, true),
            Verdict::Kept(UNSTABLE.into())
        );
        assert_eq!(
            g.layer_link("app", hollow, true, false),
            Verdict::AbsentWithLeftovers
        );
        let g = fx.guard(&broken_ok);
        assert_eq!(g.layer_link("app", gone, true, false), Verdict::Go);
        // A young link stays whatever its blob.
        link(v2, &paths::layer_link("app", &gone), &gone);
        let young = cfg(Duration::from_secs(3600));
        let g = fx.guard(&young);
        assert!(matches!(g.layer_link("app", gone, false, false), Verdict::Kept(w) if w.contains("younger")));
        // Nothing was changed by any of it.
        assert!(v2.join(paths::layer_link("app", &gone)).is_file());
        assert!(v2.join(paths::layer_link_dir("app", &hollow)).is_dir());
    }

    #[test]
    fn a_revision_stays_while_reached_broken_young_or_without_data() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, _, _) = image(v2, "lib", None, "amd64");
        index(v2, "lib", "latest", &[a]);
        let (old, _, _) = image(v2, "lib", None, "old");
        let (bare, _, _) = image(v2, "lib", None, "data gone");
        let fx = Fixture::aged(v2);
        fs::remove_dir_all(v2.join(paths::blob_dir(&bare))).unwrap();
        let named: BTreeSet<(String, Digest)> =
            [a, old, bare].iter().map(|d| ("lib".to_string(), *d)).collect();
        let excl = Exclusions {
            tags: Default::default(),
            revisions: std::sync::Arc::new(named.iter().cloned().collect()),
        };
        let m = mark(&fx.store, &excl, &named);
        let c = cfg(Duration::ZERO);
        let g = fx.guard(&c);
        let gone = Digest::sha256_of(b"never pushed");
        let mut ds = vec![a, old, bare, gone];
        ds.sort();
        let data = g.manifest_data(&ds);
        assert!(
            matches!(g.revision("lib", a, &m, &data), Verdict::Kept(w) if w.contains("a child of index"))
        );
        assert_eq!(g.revision("lib", old, &m, &data), Verdict::Go);
        assert!(
            matches!(g.revision("lib", bare, &m, &data), Verdict::Kept(w) if w.contains("data is missing"))
        );
        assert_eq!(g.revision("lib", gone, &m, &data), Verdict::AbsentWithLeftovers);
        // Not looked up: taken as stored (the phase looks up every one).
        assert_eq!(g.revision("lib", bare, &m, &ManifestData::default()), Verdict::Go);
        let young = cfg(Duration::from_secs(3 * 86400));
        let g = fx.guard(&young);
        assert!(matches!(g.revision("lib", old, &m, &data), Verdict::Kept(w) if w.contains("younger")));
    }

    #[test]
    fn a_repository_goes_only_when_nothing_is_left_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, _, _) = image(v2, "app", Some("v1"), "one");
        let fx = Fixture::aged(v2);
        let c = cfg(Duration::ZERO);
        let g = fx.guard(&c);
        let mut removed = Removed::default();
        assert!(matches!(g.repo("app", &removed), Verdict::Kept(w) if w.contains("tag \"v1\"")));
        removed.tags.insert(("app".into(), "v1".into()));
        assert!(matches!(g.repo("app", &removed), Verdict::Kept(w) if w.contains(&format!("revision {m}"))));
        removed.revisions.extend([("app".to_string(), m)]);
        assert_eq!(g.repo("app", &removed), Verdict::Go);
        assert_eq!(g.repo("nope", &removed), Verdict::Absent);
    }

    #[test]
    fn a_tag_that_moved_or_is_young_stays() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m, _, _) = image(v2, "app", Some("v1"), "one");
        let fx = Fixture::aged(v2);
        let c = cfg(Duration::ZERO);
        let g = fx.guard(&c);
        assert_eq!(g.tag("app", "v1", None), (Verdict::Go, Some(m)));
        assert_eq!(g.tag("app", "v1", Some(m)), (Verdict::Go, Some(m)));
        let other = Digest::sha256_of(b"other");
        assert!(matches!(g.tag("app", "v1", Some(other)).0, Verdict::Kept(w) if w.contains("now points at")));
        assert_eq!(g.tag("app", "nope", None).0, Verdict::Absent);
        assert_eq!(g.tag_moved("app", "v1", Some(m)), None);
        assert_eq!(g.tag_moved("app", "v1", Some(other)), Some(m));
        let young = cfg(Duration::from_secs(3 * 86400));
        let g = fx.guard(&young);
        assert!(matches!(g.tag("app", "v1", None).0, Verdict::Kept(w) if w.contains("younger")));
    }
}
