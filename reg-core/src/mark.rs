//! The reachability mark `reg-rm` runs before it deletes: what the tree
//! will still serve after this run.
//!
//! reg-rm trusts nothing that arrives on stdin. Before it deletes a blob or
//! a revision it walks the reference graph itself, on the live tree, with
//! the same code as `reg-refs` ([`refs::collect`]), from these roots: every
//! tag this run does not remove (read now), and every revision this run does
//! not remove (the registry's default policy keeps every revision). From
//! there it follows the children of live indexes at any depth, configs,
//! layers, and the referrers (OCI `subject`) of live manifests. A named
//! blob or revision that the walk reaches is live, with the first reason
//! found ("tag org/app:v1 points at it", "referenced by manifest … in …").
//!
//! Only what was asked about is remembered (named blobs and revisions), so
//! the mark costs what a `reg-refs` run costs and little memory more.
//!
//! Manifests that are missing or unusable among the live ones make the mark
//! incomplete: their references are unknown. The caller decides what that
//! stops ([`Mark::broken`]); this module only reads.
//!
//! The registry may accept pushes while reg-rm runs. [`Mark::still_valid`]
//! lists the roots again and compares them with the ones the mark was made
//! from, so that the caller can mark again before the blob phase.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::digest::{Digest, SortedSet};
use crate::layout::Store;
use crate::messages::Messages;
use crate::record::RefRecord;
use crate::refs::{self, Broken};

/// What this run removes: left out of the roots. Shared with each walk's
/// [`refs::Config`], not copied into it (issue 18).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// `(repo, tag)` removed by this run.
    pub tags: Arc<HashSet<(String, String)>>,
    /// `(repo, manifest)` revisions removed by this run.
    pub revisions: Arc<BTreeSet<(String, Digest)>>,
}

/// The named items whose liveness the caller wants to know.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    pub(crate) blobs: &'a SortedSet<Digest>,
    pub revisions: &'a BTreeSet<(String, Digest)>,
}

/// The result of one walk.
#[derive(Debug)]
pub struct Mark {
    /// Asked blobs that are live, and why.
    blobs: HashMap<Digest, String>,
    /// Asked revisions that are live in their repository, and why.
    revisions: HashMap<(String, Digest), String>,
    /// Live manifests that are missing or cannot be used: what they
    /// reference is unknown.
    pub broken: Vec<Broken>,
    broken_repos: HashSet<String>,
    fingerprint: [u8; 32],
    /// Distinct manifests read.
    pub parsed: u64,
    /// What this walk read, for the next one.
    cache: Option<refs::ManifestStore>,
    /// Whether a walk again keeps what it read ([`Mark::forget_manifests`]).
    keep: bool,
}

fn config(excl: &Exclusions) -> refs::Config {
    refs::Config {
        tagged_only: false,
        keep_recent: None,
        repos: Vec::new(),
        skip_tags: excl.tags.clone(),
        skip_revisions: excl.revisions.clone(),
        broken_ok: true,
        exclude_repos: Vec::new(),
        // No `keep_recent`: no age is measured.
        now: None,
    }
}

impl Mark {
    /// Walks the graph from the roots `excl` leaves. Fails (nothing may be
    /// deleted) when the tree cannot be listed well enough to know every
    /// root, or when the blob store is empty or missing.
    pub fn compute(store: &Store, excl: &Exclusions, asked: Asked, msgs: &Messages) -> anyhow::Result<Mark> {
        Mark::walk(store, excl, asked, msgs, refs::ManifestStore::default())
    }

    /// Walks again (the roots changed), reading only manifests this mark
    /// has not read already.
    pub fn again(
        &mut self,
        store: &Store,
        excl: &Exclusions,
        asked: Asked,
        msgs: &Messages,
    ) -> anyhow::Result<()> {
        let cache = self.cache.take().unwrap_or_default();
        let keep = self.keep;
        *self = Mark::walk(store, excl, asked, msgs, cache)?;
        if !keep {
            self.forget_manifests();
        }
        Ok(())
    }

    fn walk(
        store: &Store,
        excl: &Exclusions,
        asked: Asked,
        msgs: &Messages,
        cache: refs::ManifestStore,
    ) -> anyhow::Result<Mark> {
        let mut graph = refs::collect_with(store, &config(excl), msgs, cache)?;
        let mut m = Mark {
            blobs: HashMap::new(),
            revisions: HashMap::new(),
            broken: Vec::new(),
            broken_repos: HashSet::new(),
            fingerprint: graph.fingerprint,
            parsed: graph.stats.parsed,
            cache: None,
            keep: true,
        };
        let mut note = |repo: &str, d: Digest, manifest_too: bool, why: &dyn Fn() -> String| {
            if asked.blobs.contains(&d) && !m.blobs.contains_key(&d) {
                m.blobs.insert(d, why());
            }
            if manifest_too {
                let key = (repo.to_string(), d);
                if asked.revisions.contains(&key) && !m.revisions.contains_key(&key) {
                    m.revisions.insert(key, why());
                }
            }
        };
        for rec in graph.records() {
            let Some((repo, digest, manifest_too, why, target)) = liveness(rec) else {
                continue;
            };
            note(&repo, digest, manifest_too, &|| why.clone());
            if let Some(t) = target {
                // The registry serves `t` for `digest` here: as live as it.
                note(&repo, t, true, &|| {
                    format!("{why}, through the link of {digest} in {repo}")
                });
            }
        }
        // A manifest no link names could never be served: not a hole.
        m.broken = std::mem::take(&mut graph.broken)
            .into_iter()
            .filter(|b| b.live && !b.dangling)
            .collect();
        m.broken_repos = m.broken.iter().map(|b| b.repo.clone()).collect();
        m.cache = Some(graph.into_manifest_store());
        Ok(m)
    }

    /// Lets go of the manifests this mark read, now and after each walk
    /// again, which would otherwise read only the manifests it has not
    /// read: a run that will not look again (a dry run), or whose store
    /// reads manifests again without a request (a local tree, the
    /// manifest cache), does not hold them through its phases (issue 18).
    pub fn forget_manifests(&mut self) {
        self.cache = None;
        self.keep = false;
    }

    /// Why the blob `d` is live, if it is.
    pub fn blob(&self, d: &Digest) -> Option<&str> {
        self.blobs.get(d).map(String::as_str)
    }

    /// Why the revision `d` of `repo` is live, if it is.
    pub fn revision(&self, repo: &str, d: &Digest) -> Option<&str> {
        self.revisions.get(&(repo.to_string(), *d)).map(String::as_str)
    }

    /// Whether every live manifest was read: only then does the mark know
    /// every blob the tree needs.
    pub fn complete(&self) -> bool {
        self.broken.is_empty()
    }

    /// The first broken live manifest of `repo` (what it references is
    /// unknown, so nothing in `repo` can be proven unreachable).
    pub fn broken_in(&self, repo: &str) -> Option<&Broken> {
        if !self.broken_repos.contains(repo) {
            return None;
        }
        self.broken.iter().find(|b| b.repo == repo)
    }

    /// Whether the roots are still the ones this mark was made from, with
    /// `excl` now removed: false when a tag moved or appeared, a revision
    /// appeared, or something the run meant to remove is still there.
    pub fn still_valid(&self, store: &Store, excl: &Exclusions, msgs: &Messages) -> anyhow::Result<bool> {
        Ok(refs::root_fingerprint(store, &config(excl), msgs)? == self.fingerprint)
    }
}

/// (repo, digest, a manifest of the repository, why live, link target).
type Liveness = (String, Digest, bool, String, Option<Digest>);

/// What a reference names, whether that is a manifest of its repository,
/// why it is live, and what its link names there (`None`: the trailer).
fn liveness(rec: RefRecord) -> Option<Liveness> {
    match rec {
        RefRecord::Tag {
            repo,
            tag,
            digest,
            target,
        } => {
            let why = format!("tag {repo}:{tag} points at it");
            Some((repo, digest, true, why, target))
        }
        RefRecord::Revision { repo, digest, target } => {
            let why = format!("a manifest revision of {repo} that stays (revisions are roots)");
            Some((repo, digest, true, why, target))
        }
        RefRecord::Manifest {
            repo,
            manifest,
            digest,
            target,
        } => {
            let why = format!("a child of index {manifest} in {repo}, which is live");
            Some((repo, digest, true, why, target))
        }
        RefRecord::Referrer {
            repo,
            manifest,
            digest,
            target,
        } => {
            let why = format!("a referrer (OCI subject) of {manifest} in {repo}, which is live");
            Some((repo, digest, true, why, target))
        }
        RefRecord::Config {
            repo,
            manifest,
            digest,
            target,
            ..
        }
        | RefRecord::Layer {
            repo,
            manifest,
            digest,
            target,
            ..
        } => {
            let why = format!("referenced by manifest {manifest} in {repo}, which is live");
            Some((repo, digest, false, why, target))
        }
        RefRecord::Link { repo, name, digest } => {
            let why = format!("a link of {repo} under {name} (an algorithm no tool here knows) names it");
            Some((repo, digest, true, why, None))
        }
        RefRecord::End(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::paths;
    use crate::testutil::*;
    use std::fs;

    fn mark(v2: &std::path::Path, excl: &Exclusions, blobs: &[Digest], revs: &[(&str, Digest)]) -> Mark {
        let blobs: SortedSet<Digest> = blobs.iter().copied().collect();
        let revisions: BTreeSet<(String, Digest)> = revs.iter().map(|(r, d)| (r.to_string(), *d)).collect();
        let asked = Asked {
            blobs: &blobs,
            revisions: &revisions,
        };
        Mark::compute(&Store::fs(v2), excl, asked, &Messages::muted("test")).unwrap()
    }

    fn without_revisions(revs: &[(&str, Digest)]) -> Exclusions {
        Exclusions {
            tags: Arc::default(),
            revisions: Arc::new(revs.iter().map(|(r, d)| (r.to_string(), *d)).collect()),
        }
    }

    #[test]
    fn reaches_tags_untagged_revisions_index_children_and_referrers() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, ac, _) = image(v2, "lib", None, "amd64");
        let (b, _, bl) = image(v2, "lib", None, "arm64");
        let idx = index(v2, "lib", "latest", &[a, b]);
        let (sig, sig_blob) = referrer(v2, "lib", idx, "sig of latest");
        let (sig2, _) = referrer(v2, "lib", sig, "sig of sig");
        let (old, oc, _) = image(v2, "lib", None, "old");
        let (gone, gc, _) = image(v2, "lib", None, "to be removed");
        let orphan = blob(v2, b"nobody's");
        let asked = [a, ac, bl, idx, sig, sig_blob, sig2, old, oc, gone, gc, orphan];
        let revs = [
            ("lib", a),
            ("lib", b),
            ("lib", sig),
            ("lib", sig2),
            ("lib", old),
            ("lib", gone),
        ];

        // Every revision the run removes is named; the rest are roots.
        let m = mark(v2, &without_revisions(&revs), &asked, &revs);
        assert!(m.complete());
        assert_eq!(m.blob(&idx), Some("tag lib:latest points at it"));
        assert!(m
            .blob(&a)
            .unwrap()
            .starts_with(&format!("a child of index {idx}")));
        assert!(m
            .blob(&ac)
            .unwrap()
            .starts_with(&format!("referenced by manifest {a}")));
        assert!(m.blob(&bl).is_some());
        assert!(m
            .blob(&sig)
            .unwrap()
            .starts_with(&format!("a referrer (OCI subject) of {idx}")));
        assert!(m
            .blob(&sig2)
            .unwrap()
            .starts_with(&format!("a referrer (OCI subject) of {sig}")));
        assert!(m.blob(&sig_blob).is_some());
        // Children and referrers are live revisions of lib even when named.
        for d in [a, b, sig, sig2] {
            assert!(m.revision("lib", &d).is_some(), "{d}");
        }
        for d in [old, oc, gone, gc, orphan] {
            assert_eq!(m.blob(&d), None, "{d}");
        }
        assert_eq!(m.revision("lib", &old), None);

        // A revision the run keeps is a root: what it references is live.
        let removed = [("lib", gone)];
        let m = mark(v2, &without_revisions(&removed), &asked, &revs);
        assert!(m.revision("lib", &old).unwrap().contains("revisions are roots"));
        assert!(m
            .blob(&oc)
            .unwrap()
            .starts_with(&format!("referenced by manifest {old}")));
        assert_eq!(m.blob(&gc), None);
        assert_eq!(m.blob(&orphan), None);

        // A tag the run removes protects nothing; the revision link still does.
        let excl = Exclusions {
            tags: Arc::new([("lib".to_string(), "latest".to_string())].into()),
            revisions: Arc::default(),
        };
        let m = mark(v2, &excl, &asked, &[]);
        assert!(m.blob(&idx).unwrap().contains("revisions are roots"));
        let mut excl = excl;
        Arc::make_mut(&mut excl.revisions).insert(("lib".into(), idx));
        Arc::make_mut(&mut excl.revisions).extend(revs.iter().map(|(r, d)| (r.to_string(), *d)));
        let m = mark(v2, &excl, &asked, &[]);
        for d in asked {
            assert_eq!(m.blob(&d), None, "{d}: nothing is left to reach it");
        }
    }

    #[test]
    fn a_missing_or_unusable_live_manifest_makes_it_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m1, _, _) = image(v2, "app", Some("v1"), "one");
        let (m2, _, _) = image(v2, "other", Some("v1"), "two");
        let m = mark(v2, &Exclusions::default(), &[], &[]);
        assert!(m.complete());
        fs::remove_file(v2.join(paths::blob_data(&m1))).unwrap();
        let m = mark(v2, &Exclusions::default(), &[], &[]);
        assert!(!m.complete());
        assert!(m.broken_in("app").unwrap().message.contains("is missing"));
        assert!(m.broken_in("other").is_none());
        fs::write(v2.join(paths::blob_data(&m2)), b"not the manifest").unwrap();
        let m = mark(v2, &Exclusions::default(), &[], &[]);
        assert!(m.broken_in("other").unwrap().message.contains("cannot be used"));
        // Not live (its revision is being removed, no tag): not a hole.
        fs::remove_dir_all(v2.join(paths::tag_dir("app", "v1"))).unwrap();
        let m = mark(v2, &without_revisions(&[("app", m1)]), &[], &[]);
        assert!(m.broken_in("app").is_none());
    }

    /// An index naming a child that its repository neither stores nor links
    /// (what a decoy duplicate key, read by the union of readings, names)
    /// holds nothing back; a child whose link is there but whose data is
    /// gone still does.
    #[test]
    fn a_child_nothing_stores_or_links_is_no_hole_but_one_whose_data_went_is() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, _, _) = image(v2, "app", None, "amd64");
        let nowhere = Digest::sha256_of(b"a decoy digest nothing stores");
        index(v2, "app", "v1", &[a, nowhere]);
        let m = mark(v2, &Exclusions::default(), &[], &[]);
        assert!(m.complete(), "{:?}", m.broken);
        fs::remove_file(v2.join(paths::blob_data(&a))).unwrap();
        let m = mark(v2, &Exclusions::default(), &[], &[]);
        assert!(!m.complete());
        assert_eq!(m.broken.len(), 1);
        assert_eq!(m.broken[0].digest, a);
    }

    #[test]
    fn still_valid_notices_pushes_and_what_the_run_could_not_remove() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (m1, _, _) = image(v2, "app", Some("v1"), "one");
        let (old, _, _) = image(v2, "app", None, "old");
        let store = Store::fs(v2);
        let muted = Messages::muted("test");
        let excl = without_revisions(&[("app", old)]);
        let m = mark(v2, &excl, &[], &[]);
        // Planned but not removed (kept, or failed): a root again.
        assert!(!m.still_valid(&store, &Exclusions::default(), &muted).unwrap());
        // Removed as planned: still valid.
        fs::remove_dir_all(v2.join(paths::revision_dir("app", &old))).unwrap();
        assert!(m.still_valid(&store, &excl, &muted).unwrap());
        assert!(m.still_valid(&store, &Exclusions::default(), &muted).unwrap());
        // A push: a new revision, then a moved tag.
        let (m2, _, _) = image(v2, "app", None, "two");
        assert!(!m.still_valid(&store, &excl, &muted).unwrap());
        fs::remove_dir_all(v2.join(paths::revision_dir("app", &m2))).unwrap();
        assert!(m.still_valid(&store, &excl, &muted).unwrap());
        link(v2, &paths::tag_current("app", "v1"), &old);
        assert!(!m.still_valid(&store, &excl, &muted).unwrap());
        link(v2, &paths::tag_current("app", "v1"), &m1);
        assert!(m.still_valid(&store, &excl, &muted).unwrap());
        image(v2, "new/repo", Some("x"), "three");
        assert!(!m.still_valid(&store, &excl, &muted).unwrap());
    }

    #[test]
    fn a_mark_that_forgot_its_manifests_reads_them_again_and_reaches_as_much() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let (a, _, _) = image(v2, "app", Some("v1"), "one");
        let (b, _, _) = image(v2, "app", Some("v2"), "two");
        let store = Store::fs(v2);
        let muted = Messages::muted("test");
        let (excl, blobs, revisions) = (Exclusions::default(), SortedSet::default(), BTreeSet::new());
        let asked = Asked {
            blobs: &blobs,
            revisions: &revisions,
        };
        let mut kept = Mark::compute(&store, &excl, asked, &muted).unwrap();
        let mut forgot = Mark::compute(&store, &excl, asked, &muted).unwrap();
        forgot.forget_manifests();
        assert!(forgot.cache.is_none());
        // A push: an index over both images.
        let idx = index(v2, "app", "multi", &[a, b]);
        let revisions: BTreeSet<(String, Digest)> = [a, b, idx].map(|d| ("app".to_string(), d)).into();
        let asked = Asked {
            blobs: &blobs,
            revisions: &revisions,
        };
        kept.again(&store, &excl, asked, &muted).unwrap();
        forgot.again(&store, &excl, asked, &muted).unwrap();
        assert_eq!(forgot.parsed, 3);
        for d in [a, b, idx] {
            assert!(forgot.revision("app", &d).is_some(), "{d}");
            assert_eq!(forgot.revision("app", &d), kept.revision("app", &d));
        }
        // It reads them again each time: `b`'s data gone is seen by it, not
        // by the mark that kept what it read.
        fs::remove_dir_all(v2.join(paths::blob_dir(&b))).unwrap();
        kept.again(&store, &excl, asked, &muted).unwrap();
        forgot.again(&store, &excl, asked, &muted).unwrap();
        assert!(kept.complete());
        assert_eq!(forgot.broken.iter().map(|x| x.digest).collect::<Vec<_>>(), [b]);
        assert!(kept.cache.is_some() && forgot.cache.is_none());
        assert!(kept.cache.is_some() && forgot.cache.is_none());
    }
}
