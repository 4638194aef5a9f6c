//! Loading: listing the roots of every repository in scope, and reading
//! the manifests the walks ask for in parallel waves ([`load_pending`]);
//! problems that could hide a root or a live blob end the run ([`fail`]).

use super::*;

// ---- the walk -------------------------------------------------------------

/// Lists the roots of every repository in scope and interns them in `cache`.
/// Listing problems that could hide a root are errors; a tag directory
/// without `current/link` is a warning.
pub(super) fn list_roots(
    store: &Store,
    cfg: &Config,
    now: SystemTime,
    msgs: &Messages,
    cache: &mut InRunManifests,
) -> anyhow::Result<Vec<Roots>> {
    for r in &cfg.repos {
        check_repo_name(r).map_err(anyhow::Error::msg)?;
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
        check_repo_name(r).map_err(anyhow::Error::msg)?;
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
    let Ok(()) = store.walk_held(
        &repos,
        LIST_BATCH,
        |batch| store.hold_repositories(batch),
        |_, batch| {
            let listed: Vec<(Listed, Vec<Error>)> = batch
                .par_iter()
                .map(|r| list_repo(store, cfg, now, msgs, r))
                .collect();
            for (l, errors) in listed {
                out.push(intern_listed(l, errors, cache, msgs, &mut problems));
            }
            Ok::<(), std::convert::Infallible>(())
        },
    );
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
pub(super) fn list_repo(
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

/// How many repositories [`list_roots`] lists before interning them: as
/// many as a batch holds.
pub(super) const LIST_BATCH: usize = crate::layout::REPOSITORIES_HELD;

/// One repository as listed: digests packed (33 bytes a sha256 one) until
/// they are interned.
pub(super) struct Listed {
    pub(super) roots: Roots,
    pub(super) tag_digests: Vec<u8>,
    pub(super) revisions: Vec<u8>,
    /// (name, target, kind) of the repository's aliases (rare).
    pub(super) aliases: Vec<(Digest, Digest, LinkKind)>,
}

/// Interns a listed repository's digests; its listing errors go to
/// `problems` (a tag without a link is only a warning).
pub(super) fn intern_listed(
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
pub(super) fn is_alias_path(path: &std::path::Path) -> bool {
    let p = path.to_string_lossy();
    (p.contains("/_layers/") || p.contains("/_manifests/revisions/")) && !p.contains("/sha256/")
}

/// The total of the "parsing manifests" phase: the reads done, the reads
/// queued, and `later`, the reads expected once every revision is asked
/// for (an estimate until then). It grows as indexes name children.
pub(super) fn show_manifest_total(msgs: &Messages, cache: &InRunManifests, later: u64) {
    let p = msgs.progress();
    p.set_total(p.done() + cache.pending + later);
}

/// How many manifests are loaded (in parallel) before they are packed into
/// the arena: bounds what is held unpacked at a time.
pub(super) const LOAD_BATCH: usize = 8192;

/// How many manifests of a batch are read at once ([`Store::manifests`]):
/// their bytes are held until parsed, and on object storage up to
/// [`crate::object`]'s bound of GETs are in flight among them.
pub(super) const READ_CHUNK: usize = 2048;

/// Up to [`LOAD_BATCH`] ids off `queued` that are still pending, each
/// marked as being loaded (a second entry in the queue is skipped).
fn next_batch(cache: &mut InRunManifests, queued: &mut Vec<Id>) -> Vec<(Id, u32, bool)> {
    let mut batch = Vec::new();
    while batch.len() < LOAD_BATCH {
        let Some(id) = queued.pop() else { break };
        if let State::Pending { repo, full } = cache.state(id) {
            cache.set(id, State::Unknown);
            batch.push((id, repo, full));
        }
    }
    batch
}

/// Loads, in parallel, every manifest the cache marks as pending. Every
/// manifest that cannot be used is reported (by digest); any makes it fail.
pub(super) fn load_pending(
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
        // Before each batch: what was queued since (index children, a
        // revision to be read again in full) is in the total before it is
        // read, so the count never passes the total.
        show_manifest_total(msgs, cache, later);
        if queued.is_empty() {
            queued = std::mem::take(&mut cache.queue);
            queued.reverse();
        }
        let batch = next_batch(cache, &mut queued);
        if batch.is_empty() {
            if cache.queue.is_empty() {
                break;
            }
            continue;
        }
        let digests: Vec<Digest> = batch.iter().map(|&(id, _, _)| cache.digest(id)).collect();
        let mut read: Vec<Loaded> = Vec::with_capacity(batch.len());
        for chunk in digests.chunks(READ_CHUNK) {
            read.extend(load_many(store, chunk));
            msgs.progress().inc(chunk.len() as u64);
        }
        let loaded: Vec<(Id, u32, bool, Loaded)> = batch
            .iter()
            .zip(read)
            .map(|(&(id, repo, full), loaded)| (id, repo, full, loaded))
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
    }
    show_manifest_total(msgs, cache, later);
    unusable(roots, cache, broken_ok, msgs, errors)
}

/// The manifests that could not be used: with `broken_ok` broken images
/// (their references unknown, the caller decides what that stops), else
/// the error that ends the run.
pub(super) fn unusable(
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
pub(super) fn fail(msgs: &Messages, mut problems: Vec<String>, why: &str) -> anyhow::Error {
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
