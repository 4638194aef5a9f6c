//! The sweep ([`find`]): blob prefix directories, then repositories, in
//! parallel batches; the grace period, and what a young unreferenced revision
//! or an unlisted tag holds; listing problems keep what they concern.

use super::*;

/// How many repositories are scanned (in parallel) before their results
/// are gathered: as many as a batch holds.
const REPO_BATCH: usize = crate::layout::REPOSITORIES_HELD;

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
const BLOB_BATCH: usize = crate::layout::BLOB_PREFIXES_HELD;

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
pub(super) struct RepoScan {
    pub(super) revisions: Vec<Revision>,
    pub(super) layer_links: Vec<LayerLink>,
    pub(super) uploads: Vec<Upload>,
    pub(super) orphan_repo: bool,
    /// Digests held by the grace period: young links, and everything a
    /// young unreferenced revision or an unlisted tag references.
    held: Vec<Digest>,
    pub(super) too_young: u64,
    errors: Vec<Error>,
    hides_links: bool,
    /// Warnings: modification times in the future, links that name nothing.
    warnings: Vec<String>,
}

/// Walks the store and collects every orphan. Problems with single paths
/// are reported through `msgs` and keep what they concern; an unreadable
/// manifest that the grace period must follow is fatal (nothing is printed).
pub fn find(store: &Store, refs: &LiveRefs, cfg: &Config, msgs: &Messages) -> anyhow::Result<Found> {
    // Walked a prefix directory at a time, `blobs/` is never held whole,
    // nor `repositories/`, walked a batch of repositories at a time (on
    // object storage; issue 18).
    store.list_blobs_by_prefix();
    store.list_repositories_by_repository();
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
    let Ok(()) = store.walk_held(
        &prefixes.items,
        BLOB_BATCH,
        |batch| store.hold_blobs_in(batch),
        |_, batch| {
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
            Ok::<(), std::convert::Infallible>(())
        },
    );
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
    store.walk_held(
        &names,
        REPO_BATCH,
        |batch| store.hold_repositories(batch),
        |batch_no, batch| {
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
            Ok::<(), anyhow::Error>(())
        },
    )?;
    found.names = names;
    Ok((held, hides_links))
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
