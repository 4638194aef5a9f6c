//! The phases of a run, in their crash-safe order: each asks the guards
//! ([`super::guard`]), acts through the deleter ([`super::act`]) and hands
//! its records to the single writer.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;

use rayon::prelude::*;

use super::act::Deleter;
use super::aside::Aside;
use super::copies::Copies;
use super::guard::{Guard, ManifestData, Removed, Verdict};
use super::input::Input;
use super::report::{Action, Kind, RmRecord, Stopped, Writer};
use super::{Config, Mode};
use crate::digest::{Digest, SortedSet, Subset};
use crate::layout::{paths, Store};
use crate::mark::{Asked, Exclusions, Mark};
use crate::messages::Messages;
use crate::progress::{Phase, Progress};

/// How many times the mark is taken again when the roots keep changing
/// under it before the blob phase gives up (and keeps every blob).
const MARK_TRIES: usize = 3;

/// The phases that write records, in their crash-safe order (the empty
/// directories left behind follow, and write none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhaseName {
    Tags,
    Revisions,
    LayerLinks,
    Blobs,
    Uploads,
    Repositories,
}

impl PhaseName {
    const ALL: [PhaseName; 6] = [
        PhaseName::Tags,
        PhaseName::Revisions,
        PhaseName::LayerLinks,
        PhaseName::Blobs,
        PhaseName::Uploads,
        PhaseName::Repositories,
    ];

    /// What its records are, as a stopped run names the phase ("stopped
    /// before the blob phase").
    fn records(self) -> &'static str {
        match self {
            PhaseName::Tags => "tag",
            PhaseName::Revisions => "revision",
            PhaseName::LayerLinks => "layer link",
            PhaseName::Blobs => "blob",
            PhaseName::Uploads => "upload",
            PhaseName::Repositories => "repository",
        }
    }

    /// The phase after this one, as a run stopped after this one names it.
    fn next(self) -> &'static str {
        match self {
            PhaseName::Tags => PhaseName::Revisions.records(),
            PhaseName::Revisions => PhaseName::LayerLinks.records(),
            PhaseName::LayerLinks => PhaseName::Blobs.records(),
            PhaseName::Blobs => PhaseName::Uploads.records(),
            PhaseName::Uploads => PhaseName::Repositories.records(),
            PhaseName::Repositories => "empty directory",
        }
    }
}

/// A `_layers` link to act on: 24 bytes, not 72 (its blob is almost
/// always one of the blobs named and its name that blob's digest; issue
/// 18).
struct LinkJob {
    /// Its repository, in [`LinkJobs::repos`].
    repo: u32,
    /// Where the blob it links to is among the blobs named; [`NOT_NAMED`]
    /// if it is not (a link named alone).
    blob: u32,
    /// The link's name when it is not the blob's digest (an alias), or the
    /// blob when it is not among those named.
    other: Option<Box<Digest>>,
    /// Kept if the mark or a check says so (named alone, not with its blob).
    guarded: bool,
}

/// [`LinkJob::blob`] of a blob not among those named.
const NOT_NAMED: u32 = u32::MAX;

/// The `_layers` links to act on, sorted by (repository, link name), and
/// their repositories' names, each once.
#[derive(Default)]
struct LinkJobs {
    repos: Vec<Arc<str>>,
    jobs: Vec<LinkJob>,
    /// Each repository's index in `repos`, while links are pushed.
    index: HashMap<Arc<str>, u32>,
}

impl LinkJobs {
    /// Adds the link `name` in `repo` to `blob`.
    fn push(
        &mut self,
        (repo, name, blob): (Arc<str>, Digest, Digest),
        guarded: bool,
        named: &SortedSet<Digest>,
    ) {
        let next = self.repos.len() as u32;
        let r = *self.index.entry(repo.clone()).or_insert_with(|| {
            self.repos.push(repo);
            next
        });
        let (pos, other) = match named.position(&blob) {
            Some(p) => (p as u32, (name != blob).then(|| Box::new(name))),
            // Only links named alone have a blob not named, and they are
            // named for themselves (name = blob).
            None => (NOT_NAMED, Some(Box::new(name))),
        };
        debug_assert!(pos != NOT_NAMED || name == blob);
        self.jobs.push(LinkJob {
            repo: r,
            blob: pos,
            other,
            guarded,
        });
    }

    /// Sorted by (repository, link name), the first pushed of a link kept.
    fn finish(&mut self, named: &[Digest]) {
        self.index = HashMap::new();
        let mut jobs = std::mem::take(&mut self.jobs);
        // Stable: of one link, the first pushed stays.
        jobs.sort_by(|a, b| self.key(a, named).cmp(&self.key(b, named)));
        jobs.dedup_by(|later, first| self.key(later, named) == self.key(first, named));
        jobs.shrink_to_fit();
        self.jobs = jobs;
    }

    fn key<'a>(&'a self, j: &LinkJob, named: &[Digest]) -> (&'a str, Digest) {
        (&self.repos[j.repo as usize], self.name(j, named))
    }

    fn repo(&self, j: &LinkJob) -> &Arc<str> {
        &self.repos[j.repo as usize]
    }

    /// The link's name.
    fn name(&self, j: &LinkJob, named: &[Digest]) -> Digest {
        match (&j.other, j.blob) {
            (Some(other), _) => **other,
            (None, pos) => named[pos as usize],
        }
    }

    /// The blob it links to.
    fn blob(&self, j: &LinkJob, named: &[Digest]) -> Digest {
        match (j.blob, &j.other) {
            (NOT_NAMED, Some(other)) => **other,
            (pos, _) => named[pos as usize],
        }
    }

    /// The blob it links to when that is not its name (an alias).
    fn alias_of(&self, j: &LinkJob, named: &[Digest]) -> Option<Digest> {
        (j.blob != NOT_NAMED && j.other.is_some()).then(|| named[j.blob as usize])
    }
}

/// What one run carries from phase to phase.
struct Run<'i> {
    input: &'i Input,
    /// The tags decided before the mark, acted on by the tag phase.
    plans: Vec<(RmRecord, Verdict)>,
    /// What stays live; `None` when only tags were named.
    mark: Option<Mark>,
    /// What this run removed so far.
    removed: Removed,
    /// The roots kept changing under the marks: every blob stays.
    unstable: bool,
    /// Blobs to delete, of those named (their `_layers` links are in
    /// `link_jobs`); emptied by the blob phase.
    doomed: Subset<'i, Digest>,
    /// Blobs decided kept before the blob phase.
    kept_blobs: Vec<RmRecord>,
    /// The `_layers` links acted on; dropped once the layer-link phase is
    /// done.
    link_jobs: LinkJobs,
    /// `blobs/<alg>/<xx>` directories that lost a blob.
    prefixes: BTreeSet<String>,
    /// Copies of the blobs deleted that could be manifests (see
    /// [`Copies`]); object storage only, `None` in a dry run.
    copies: Option<Copies>,
    /// Where the blob directories deleted went until the last look (see
    /// [`Aside`]); the filesystem only, `None` in a dry run.
    aside: Option<Aside>,
}

impl<'i> Run<'i> {
    fn new(input: &'i Input) -> Run<'i> {
        Run {
            input,
            plans: Vec::new(),
            mark: None,
            removed: Removed::default(),
            unstable: false,
            doomed: Subset::none_of(&input.blobs),
            kept_blobs: Vec::new(),
            link_jobs: LinkJobs::default(),
            prefixes: BTreeSet::new(),
            copies: None,
            aside: None,
        }
    }

    fn asked(&self) -> Asked<'i> {
        Asked {
            blobs: &self.input.blobs,
            revisions: &self.input.revisions,
        }
    }

    /// Notes what a phase's records removed, once they are flushed.
    fn note_removed(&mut self, phase: PhaseName, recs: &[Option<RmRecord>]) {
        let removes = || recs.iter().flatten().filter(|r| r.action.removes());
        let repo = |r: &RmRecord| r.repo.as_deref().unwrap_or_default().to_string();
        match phase {
            PhaseName::Tags => {
                let tags = removes().map(|r| (repo(r), r.tag_name().unwrap_or_default().to_string()));
                self.removed.tags.extend(tags);
            }
            PhaseName::Revisions => {
                let revs = removes().map(|r| (repo(r), r.digest.expect("revision digest")));
                self.removed.revisions.extend(revs);
            }
            PhaseName::LayerLinks => {
                let repos = removes().filter_map(|r| r.repo.as_deref().map(String::from));
                self.removed.link_repos.extend(repos);
            }
            PhaseName::Blobs => {
                let prefixes = recs
                    .iter()
                    .flatten()
                    .filter(|r| matches!(r.action, Action::Deleted | Action::Trashed))
                    .filter_map(|r| r.digest.map(|d| paths::blob_prefix_dir(&d)));
                self.prefixes.extend(prefixes);
            }
            PhaseName::Uploads => {
                let ups = removes().map(|r| (repo(r), r.upload_id().unwrap_or_default().to_string()));
                self.removed.uploads.extend(ups);
            }
            PhaseName::Repositories => {}
        }
    }

    /// The blob phase writes the blobs kept before it too, in digest order.
    /// The kept go first, then a stable sort: the order of two records of
    /// the same digest stays. In place, sorted by a table of digests (a
    /// sort by key would take a copy of the records; issue 18).
    fn merge_kept_blobs(&mut self, recs: &mut Vec<Option<RmRecord>>) {
        let kept = std::mem::take(&mut self.kept_blobs);
        // Room for exactly these: growing would double the records' vector.
        recs.reserve_exact(kept.len());
        recs.splice(0..0, kept.into_iter().map(Some));
        recs.sort_by_cached_key(|r| r.as_ref().and_then(|r| r.digest));
    }
}

pub(super) struct Runner<'a> {
    pub(super) guard: Guard<'a>,
    pub(super) act: Deleter<'a>,
}

impl<'a> Runner<'a> {
    pub(super) fn new(store: &'a Store, cfg: &'a Config, msgs: &'a Messages) -> Runner<'a> {
        Runner {
            guard: Guard { store, cfg, msgs },
            act: Deleter::new(store, cfg, msgs),
        }
    }

    /// Records deleted or trashed so far.
    pub(super) fn deleted(&self) -> u64 {
        self.act.deleted()
    }

    pub(super) fn store(&self) -> &Store {
        self.guard.store
    }

    fn progress(&self) -> &Progress {
        self.guard.msgs.progress()
    }

    /// Starts the phase that acts on `n` records of `what`, named for what
    /// this run does to them (`deleting blobs`, `checking blobs (dry run)`).
    fn start(&self, what: &str, n: usize) {
        let name = match self.guard.cfg.mode {
            Mode::Delete => format!("deleting {what}"),
            Mode::Trash(_) => format!("moving {what} to the trash"),
            Mode::DryRun => format!("checking {what} (dry run)"),
        };
        self.progress().start(Phase::new(name, "records"), Some(n as u64));
    }

    /// The pause before a look after removals: a push that checked what
    /// just went writes its link a moment later (see `Config::settle`).
    fn settle(&self) {
        if !self.guard.cfg.settle.is_zero() && !self.guard.dry_run() {
            self.progress().set_context("waiting for pushes in flight");
            std::thread::sleep(self.guard.cfg.settle);
            self.progress().set_context("");
        }
    }

    /// Acts on a verdict for one record: `rels` go when it says so.
    fn apply(&self, rec: RmRecord, verdict: Verdict, rels: &[String]) -> Option<RmRecord> {
        match verdict {
            Verdict::Go => self.act.finish(rec, rels),
            Verdict::Kept(why) => Some(rec.kept(why)),
            Verdict::Absent | Verdict::AbsentWithLeftovers => Some(rec.done(Action::Absent, 0)),
            Verdict::Failed => None,
        }
    }

    /// Runs every phase in order. Each acts on its records, then the one
    /// place below flushes their deletions (object storage batches them),
    /// notes what went and writes them, so no phase can forget a step.
    pub(super) fn phases<W: Write>(&self, input: &Input, w: &mut Writer<W>) -> anyhow::Result<()> {
        if self.guard.dry_run() {
            // Nothing changes by its hand and it keeps its first look
            // (see `after_revisions`): what it lists once serves its walks
            // (on object storage 1.6 listings of the bucket, not 5.5).
            if let Err(e) = self.store().backend().keep_parts() {
                self.guard.msgs.warn(format!("{e}; listing again for each walk"));
            }
        }
        let mut run = self.prepare(input)?;
        for phase in PhaseName::ALL {
            let mut recs = match phase {
                PhaseName::Tags => self.tags(&mut run),
                PhaseName::Revisions => self.revisions(&run),
                PhaseName::LayerLinks => self.layer_links(&mut run),
                PhaseName::Blobs => self.blobs(&mut run),
                PhaseName::Uploads => self.uploads(&run),
                PhaseName::Repositories => self.repositories(&run),
            };
            // Object storage: the phase's deletions go now, in batches.
            self.act.flush(&mut recs);
            run.note_removed(phase, &recs);
            let after = match phase {
                PhaseName::Revisions => self.after_revisions(&mut run, &mut recs),
                PhaseName::LayerLinks => {
                    self.after_layer_links(&mut run, &recs);
                    Ok(())
                }
                PhaseName::Blobs => {
                    self.after_blobs(&mut run, &mut recs);
                    run.merge_kept_blobs(&mut recs);
                    Ok(())
                }
                PhaseName::Tags | PhaseName::Uploads | PhaseName::Repositories => Ok(()),
            };
            self.emit(w, &recs, Some(phase.next()))?;
            after?;
        }
        if !self.guard.dry_run() {
            w.stats.empty_dirs = self.empty_dirs(&run);
        }
        if let Some(why) = self.store().backend().kept_parts_stopped() {
            self.guard.msgs.warn(why);
        }
        Ok(())
    }

    /// Before any phase: decides the tags (reading only), then marks what
    /// stays live when anything but tags was asked for.
    fn prepare<'i>(&self, input: &'i Input) -> anyhow::Result<Run<'i>> {
        let tags: Vec<_> = input.tags.iter().collect();
        if !tags.is_empty() {
            self.progress().start(
                Phase::new("reading the tags named", "tags"),
                Some(tags.len() as u64),
            );
        }
        let plans: Vec<(RmRecord, Verdict)> = self.store().map_by_repository(
            &tags,
            |((repo, _), _)| repo,
            |((repo, tag), want)| {
                let (verdict, points) = self.guard.tag(repo, tag, **want);
                let mut rec = RmRecord::new(Kind::Tag).repo(repo).tag(tag);
                rec.digest = if matches!(verdict, Verdict::Kept(_)) {
                    **want
                } else {
                    points
                };
                self.progress().inc(1);
                (rec, verdict)
            },
        );
        let mut run = Run::new(input);
        let needs_mark =
            !input.revisions.is_empty() || !input.blobs.is_empty() || !input.layer_links.is_empty();
        if needs_mark {
            let going = plans
                .iter()
                .filter(|(_, v)| *v == Verdict::Go)
                .filter_map(|(r, _)| Some((r.repo.as_deref()?.to_string(), r.tag_name()?.to_string())));
            let excl = Exclusions {
                tags: Arc::new(going.collect()),
                revisions: input.revisions.clone(),
            };
            self.progress().set_context("checking what is live");
            let m = Mark::compute(self.store(), &excl, run.asked(), self.guard.msgs);
            self.progress().set_context("");
            let mut m =
                m.map_err(|e| e.context("cannot prove what is unreachable, so nothing was deleted"))?;
            // A dry run never marks again (see `after_revisions`); a real
            // run that would read its manifests again from the manifest
            // cache or a local tree does not hold them until then (11.5 MB
            // at 1M objects, at the peak in the `_layers` links' phase).
            if self.guard.dry_run() || self.store().rereads_manifests_locally() {
                m.forget_manifests();
            }
            run.mark = Some(m);
        }
        run.plans = plans;
        Ok(run)
    }

    /// Tags, unless they moved since they were decided.
    fn tags(&self, run: &mut Run) -> Vec<Option<RmRecord>> {
        let plans = std::mem::take(&mut run.plans);
        self.start("tags", plans.len());
        self.store().map_by_repository(
            &plans,
            |(rec, _)| rec.repo.as_deref().unwrap_or_default(),
            |(rec, verdict)| {
                let (repo, tag) = (rec.repo.clone()?, rec.tag_name()?);
                let verdict = match (verdict, self.guard.tag_moved(&repo, tag, rec.digest)) {
                    (Verdict::Go, Some(now)) => Verdict::Kept(format!("the tag now points at {now}")),
                    (v, _) => v.clone(),
                };
                let rec = self.apply(rec.clone(), verdict, &[paths::tag_dir(&repo, tag)]);
                self.progress().inc(1);
                rec
            },
        )
    }

    /// Revisions the mark does not reach, with their tag index entries.
    fn revisions(&self, run: &Run) -> Vec<Option<RmRecord>> {
        let Some(m) = &run.mark else {
            return Vec::new();
        };
        let revs: Vec<_> = run.input.revisions.iter().collect();
        let mut ds: Vec<Digest> = revs.iter().map(|(_, d)| *d).collect();
        ds.sort_unstable();
        ds.dedup();
        let data = self.guard.manifest_data(&ds);
        drop(ds);
        self.start("revisions", revs.len());
        self.store().map_by_repository(
            &revs,
            |(repo, _)| repo,
            |(repo, d)| {
                let rec = self.rm_revision(repo, *d, m, &data);
                self.progress().inc(1);
                rec
            },
        )
    }

    /// The roots may have changed since the mark (pushes, or revisions
    /// this run could not remove): mark again until they hold still. A
    /// revision removed after a push made it live again (an index pushed
    /// between the first look and the removal: the registry accepted it
    /// while the child's link was there) gets its link back. The error, if
    /// any, stops the run once the revisions' records are written.
    fn after_revisions(&self, run: &mut Run, recs: &mut [Option<RmRecord>]) -> anyhow::Result<()> {
        #[cfg(any(test, feature = "test-hooks"))]
        if let Some(hook) = &self.guard.cfg.hooks.after_revisions {
            (hook.0)();
        }
        // A dry run removed nothing, so nothing it did can race a push: it
        // keeps its first look (on object storage one listing of the
        // bucket, not two; issue 18), as it skips the look after the links.
        if self.guard.dry_run() {
            return Ok(());
        }
        // An index pushed as its children's links went writes its own link
        // a moment after the registry checked theirs.
        if !run.removed.revisions.is_empty() {
            self.settle();
        }
        // A backend that caches listings (object storage) lists anew.
        self.store().refresh();
        let Run {
            mark, removed, input, ..
        } = run;
        let asked = Asked {
            blobs: &input.blobs,
            revisions: &input.revisions,
        };
        let looked = match mark.as_mut() {
            Some(m) => {
                self.progress().set_context("looking again");
                let looked = self.look_again(m, removed, recs, asked);
                self.progress().set_context("");
                looked
            }
            None => Ok(false),
        };
        run.unstable = looked.map_err(|e| Stopped {
            why: format!("the tree could not be read again before deleting blobs: {e:#}"),
            before: Some(PhaseName::LayerLinks.records()),
        })?;
        Ok(())
    }

    /// Decides the blobs, then removes their links and the links named.
    fn layer_links(&self, run: &mut Run) -> Vec<Option<RmRecord>> {
        // A blob's links include aliases: links under another algorithm
        // naming it. Pushed, then sorted by (repo, link name) with the first
        // of each kept (a list, not a map: a third of the memory).
        let named = &run.input.blobs;
        let mut link_jobs = LinkJobs::default();
        if let (false, Some(m)) = (named.is_empty(), &run.mark) {
            let (links, scan_ok) = self.guard.blob_links(named, &run.removed);
            // The blobs' data looked at a batch of prefix directories at a time.
            self.store().walk_by_blob_prefix(
                &named.items,
                |d| *d,
                |batch| {
                    for d in batch {
                        let l = links.get(d);
                        match self.guard.blob(*d, &l, m, run.unstable, scan_ok) {
                            Some(why) => run
                                .kept_blobs
                                .push(RmRecord::new(Kind::Blob).digest(*d).kept(why)),
                            None => {
                                run.doomed.insert(d);
                                for (repo, name, _) in l.layer_links {
                                    link_jobs.push((repo, name, *d), false, named);
                                }
                            }
                        }
                    }
                },
            );
        }
        for (repo, d) in &run.input.layer_links {
            // Named explicitly: guarded unless its blob is going too; a
            // link its blob's decision brought is that one (first, kept).
            let guarded = !run.doomed.contains(d);
            link_jobs.push((repo.as_str().into(), *d, *d), guarded, named);
        }
        link_jobs.finish(&named.items);
        run.link_jobs = link_jobs;
        self.start("_layers links", run.link_jobs.jobs.len());
        let unstable = run.unstable;
        let jobs = &run.link_jobs;
        self.store().map_by_repository(
            &jobs.jobs,
            |job| jobs.repo(job),
            |job| {
                let _counted = Counted(self.progress());
                let (repo, name) = (jobs.repo(job), &jobs.name(job, &named.items));
                let rec = RmRecord::new(Kind::LayerLink)
                    .repo_shared(repo)
                    .digest(*name)
                    .target(jobs.alias_of(job, &named.items));
                let dir = paths::layer_link_dir(repo, name);
                match self.guard.layer_link(repo, *name, job.guarded, unstable) {
                    Verdict::AbsentWithLeftovers => {
                        // Only once it is old: a link directory whose link went
                        // a moment ago is being removed by another run (whose
                        // removal then counts), or written by the registry.
                        if self.guard.empty_dir_old(&dir) {
                            self.act.sweep(&dir);
                        }
                        Some(rec.done(Action::Absent, 0))
                    }
                    v => self.apply(rec, v, &[dir]),
                }
            },
        )
    }

    /// A blob whose links could not all go stays. Once links are removed, a
    /// push that reuses a doomed blob fails (the registry checks the
    /// repository's link) unless it uploads the blob again, which writes a
    /// new link. A push that landed since the last look is caught now: its
    /// blobs keep their data and get their links back.
    fn after_layer_links(&self, run: &mut Run, recs: &[Option<RmRecord>]) {
        // Done with here: not held through the blob phase (issue 18).
        let link_jobs = std::mem::take(&mut run.link_jobs);
        let named = &run.input.blobs.items;
        let mut kept = std::collections::HashSet::new();
        for (job, rec) in link_jobs.jobs.iter().zip(recs) {
            let (repo, d) = (link_jobs.repo(job), &link_jobs.blob(job, named));
            let gone = rec
                .as_ref()
                .is_some_and(|r| r.action.removes() || r.action == Action::Absent);
            if !gone && run.doomed.contains(d) && kept.insert(*d) {
                run.kept_blobs.push(
                    RmRecord::new(Kind::Blob)
                        .digest(*d)
                        .kept(format!("its _layers link in {repo} could not be removed")),
                );
            }
        }
        if !kept.is_empty() {
            run.doomed.retain(|d| !kept.contains(d));
        }
        let Run {
            mark,
            removed,
            input,
            doomed,
            kept_blobs,
            ..
        } = run;
        if let (false, false, Some(m)) = (doomed.is_empty(), self.guard.dry_run(), mark.as_mut()) {
            #[cfg(any(test, feature = "test-hooks"))]
            if let Some(hook) = &self.guard.cfg.hooks.after_links {
                (hook.0)();
            }
            // A manifest PUT that checked these blobs before their links
            // went writes its revision link a moment later.
            self.settle();
            self.store().refresh();
            self.progress().set_context("looking again");
            let asked = Asked {
                blobs: &input.blobs,
                revisions: &input.revisions,
            };
            self.recheck_doomed(doomed, recs, kept_blobs, m, removed, asked);
            self.progress().set_context("");
        }
        // The mark's last use: it is not held through the blob phase and
        // its last look, which ask the links themselves (issue 18).
        *mark = None;
    }

    /// Blob data, checked again now. On the filesystem each doomed blob's
    /// directory is set aside (see [`Aside`]); on object storage what could
    /// be a manifest is copied first (see [`Copies`]), and kept if it
    /// cannot be.
    fn blobs(&self, run: &mut Run) -> Vec<Option<RmRecord>> {
        // Where they are among the blobs named (4 bytes each, not 40):
        // nothing reads the set after this phase.
        let blobs = &run.input.blobs.items;
        let ds: Vec<u32> = run.doomed.positions().map(|i| i as u32).collect();
        run.doomed.clear();
        self.start("blobs", ds.len());
        if !self.guard.dry_run() && !ds.is_empty() {
            match self.store().backend().trash() {
                Some(t) => run.aside = self.aside(t.v2()),
                None => run.copies = self.copies(),
            }
        }
        let copies = run.copies.as_ref();
        let mut recs = Vec::with_capacity(ds.len());
        self.store().walk_by_blob_prefix(
            &ds,
            |&i| blobs[i as usize],
            |batch| {
                recs.par_extend(batch.par_iter().map(|&i| {
                    let d = &blobs[i as usize];
                    let rec = RmRecord::new(Kind::Blob).digest(*d);
                    let verdict = match self.guard.blob_now(*d) {
                        (Verdict::Go, Some(size)) if copies.is_some() && Copies::wanted(size) => {
                            self.copied_first(copies, *d)
                        }
                        (v, _) => v,
                    };
                    let rec = self.apply(rec, verdict, &[paths::blob_dir(d)]);
                    self.progress().inc(1);
                    rec
                }))
            },
        );
        recs
    }

    /// Where this run's blobs go until the last look: the trash, or a
    /// directory of its own in `v2/` whose blob directories the deleter
    /// moves there. `None`, after an error, if it cannot be made: blobs
    /// are then deleted at once, as before there was a last look.
    fn aside(&self, v2: &std::path::Path) -> Option<Aside> {
        let aside = match &self.guard.cfg.mode {
            Mode::Trash(dir) => Aside::trash(dir),
            Mode::Delete => match Aside::hold(v2) {
                Ok(a) => a,
                Err(e) => {
                    self.guard.msgs.error(format!(
                        "{}: cannot make a directory to set blobs aside in until the last look ({e}); \
                         blobs are deleted at once",
                        v2.join(super::aside::HELD).display()
                    ));
                    return None;
                }
            },
            Mode::DryRun => return None,
        };
        self.act.hold_blobs_in(aside.dir());
        Some(aside)
    }

    /// The spool for copies of the manifests deleted; `None` (every blob
    /// that could be a manifest is then kept) after an error.
    fn copies(&self) -> Option<Copies> {
        match Copies::new() {
            Ok(c) => Some(c),
            Err(e) => {
                self.guard.msgs.error(format!(
                    "{}: cannot make a temporary file for copies of the manifests deleted \
                     ({e}); every blob that could be a manifest is kept",
                    std::env::temp_dir().display()
                ));
                None
            }
        }
    }

    /// `Go` once blob `d` is copied (or is no manifest); kept otherwise.
    fn copied_first(&self, copies: Option<&Copies>, d: Digest) -> Verdict {
        let Some(c) = copies else {
            return Verdict::Kept("no copy could be made before deleting it (see errors)".into());
        };
        match c.copy(self.store(), d) {
            Ok(_) => Verdict::Go,
            // Gone meanwhile (another run removed it, which can fail the
            // read on the way): nothing to copy or delete.
            Err(_) if matches!(self.store().blob_meta(&d), Ok(None)) => Verdict::Absent,
            Err(e) => {
                self.guard.msgs.error(e);
                Verdict::Kept("no copy could be made before deleting it (see errors)".into())
            }
        }
    }

    /// The last look, after the settle pause: a blob deleted in the blob
    /// phase that a link names again (a push of it landed after the second
    /// look: the registry found its data and wrote only the link) comes
    /// back: moved back from where it was set aside, or its copy written.
    /// Could the repositories not be read again, every one comes back.
    /// Then what was set aside goes.
    fn after_blobs(&self, run: &mut Run, recs: &mut [Option<RmRecord>]) {
        let (copies, aside) = (run.copies.as_ref(), run.aside.as_ref());
        let held = |d: &Digest| copies.is_some_and(|c| c.has(d)) || aside.is_some_and(|a| a.has(d));
        // One sorted list (40 bytes a blob), which the look below takes as
        // it is: no set beside it (issue 18).
        let gone: SortedSet<Digest> = recs
            .iter()
            .flatten()
            .filter(|r| matches!(r.action, Action::Deleted | Action::Trashed))
            .filter_map(|r| r.digest)
            .filter(held)
            .collect();
        if !gone.is_empty() {
            #[cfg(any(test, feature = "test-hooks"))]
            if let Some(hook) = &self.guard.cfg.hooks.after_blobs {
                (hook.0)();
            }
            self.settle();
            self.bring_back(&gone, copies, aside, recs);
        }
        if let Some(a) = run.aside.take() {
            if let Err(e) = a.release() {
                self.guard
                    .msgs
                    .error(format!("{e}; its blobs were deleted: remove it by hand"));
            }
        }
    }

    /// Brings back the blobs of `gone` that a link names again.
    fn bring_back(
        &self,
        gone: &SortedSet<Digest>,
        copies: Option<&Copies>,
        aside: Option<&Aside>,
        recs: &mut [Option<RmRecord>],
    ) {
        self.store().refresh();
        self.progress().set_context("looking again");
        // Every link counts, those this run removed too: one there now was
        // written again since (this is no dry run).
        let (links, scan_ok) = self.guard.blob_links(gone, &Removed::default());
        self.progress().set_context("");
        for rec in recs.iter_mut().flatten() {
            let Some(d) = rec.digest.filter(|d| gone.contains(d)) else {
                continue;
            };
            let l = links.get(&d);
            let linked = l.revisions.first().or(l.layer_links.first().map(|x| &x.0));
            let why = match (linked, scan_ok) {
                (Some(repo), _) => format!("pushed again in {repo} while this run deleted it"),
                (None, false) => "could not read every repository again (see errors)".to_string(),
                (None, true) => continue,
            };
            let note = match self.put_back(d, copies, aside) {
                Ok(Some(how)) => format!("{why}: its data was {how}"),
                Ok(None) => format!("{why}: the registry wrote its data again"),
                Err(e) => {
                    self.guard.msgs.error(e);
                    format!("{why}: putting its data back failed (see errors)")
                }
            };
            *rec = std::mem::replace(rec, RmRecord::new(Kind::Blob))
                .done(Action::Kept, 0)
                .kept(note);
        }
    }

    /// Blob `d`'s data back in `blobs/`: how ("moved back" from where it
    /// was set aside, "written back" from its copy), `None` if data is
    /// there already.
    fn put_back(
        &self,
        d: Digest,
        copies: Option<&Copies>,
        aside: Option<&Aside>,
    ) -> crate::Result<Option<&str>> {
        if let Some(a) = aside.filter(|a| a.has(&d)) {
            return Ok(a.put_back(self.store(), &d)?.then_some("moved back"));
        }
        match copies.map(|c| c.get(&d)).transpose() {
            Ok(Some(Some(bytes))) => Ok(self.act.restore_blob(d, &bytes)?.then_some("written back")),
            Ok(_) => Ok(None),
            Err(e) => Err(crate::Error::io(std::env::temp_dir(), e)),
        }
    }

    /// Uploads.
    fn uploads(&self, run: &Run) -> Vec<Option<RmRecord>> {
        let ups: Vec<_> = run.input.uploads.iter().collect();
        self.start("uploads", ups.len());
        self.store().map_by_repository(
            &ups,
            |(repo, _)| repo,
            |(repo, id)| {
                let rec = RmRecord::new(Kind::Upload).repo(repo).id(id);
                let rec = self.apply(rec, self.guard.upload(repo, id), &[paths::upload_dir(repo, id)]);
                self.progress().inc(1);
                rec
            },
        )
    }

    /// Repositories, one at a time (nested ones share parents), each
    /// flushed before the next.
    fn repositories(&self, run: &Run) -> Vec<Option<RmRecord>> {
        let mut recs = Vec::new();
        self.start("repositories", run.input.repos.len());
        for repo in &run.input.repos {
            let mut one = [self.rm_repo(repo, &run.removed)];
            self.act.flush(&mut one);
            let [rec] = one;
            recs.push(rec);
            self.progress().inc(1);
            if self.act.stopped() {
                break;
            }
        }
        recs
    }

    /// Empty directories left behind: blob prefixes that lost a blob, and
    /// revision directories of the repositories named. How many went.
    fn empty_dirs(&self, run: &Run) -> u64 {
        let mut n = 0;
        self.progress().start(
            Phase::new("removing empty blob prefix directories", "directories"),
            Some(run.prefixes.len() as u64),
        );
        for p in &run.prefixes {
            n += u64::from(self.guard.empty_dir_old(p) && self.act.remove_empty(p));
            self.progress().inc(1);
        }
        let repos: BTreeSet<&String> = run.input.revisions.iter().map(|(r, _)| r).collect();
        let repos: Vec<&String> = repos.into_iter().collect();
        self.progress().start(
            Phase::new("removing empty revision directories", "repositories"),
            Some(repos.len() as u64),
        );
        self.store().walk_by_repository(
            &repos,
            |r| r,
            |batch| {
                for repo in batch {
                    for d in self.store().revision_digests(repo).items {
                        let dir = paths::revision_dir(repo, &d);
                        n += u64::from(self.guard.empty_dir_old(&dir) && self.act.remove_empty(&dir));
                    }
                    self.progress().inc(1);
                }
            },
        );
        n
    }

    /// Writes a phase's records; stops the run (before `next`) when they
    /// cannot be written or the test hook fired. A closed stdout is a
    /// failure in a run that changes things (it did not finish, and what it
    /// did is not all reported); a dry run changed nothing, so its write
    /// error is returned as it is, and a closed stdout (`--dry-run | head`)
    /// ends it quietly with status 0, as it ends any listing.
    fn emit<W: Write>(
        &self,
        w: &mut Writer<W>,
        recs: &[Option<RmRecord>],
        next: Option<&'static str>,
    ) -> anyhow::Result<()> {
        if let Err(e) = w.write(recs) {
            if self.guard.dry_run() {
                return Err(anyhow::Error::new(e).context("writing to stdout"));
            }
            return Err(Stopped {
                why: format!("cannot write to stdout ({e}), so what was deleted is not all reported"),
                before: next,
            }
            .into());
        }
        if self.act.stopped() {
            return Err(Stopped {
                why: format!(
                    "REG_RM_FAIL_AFTER test hook: stopped after {}, as a crash would",
                    crate::messages::count(self.act.deleted(), "deletion", "deletions")
                ),
                before: next,
            }
            .into());
        }
        Ok(())
    }

    /// Marks again until the roots hold still (false: they did), then
    /// writes back the links of removed revisions the mark reaches now, and
    /// looks again. True if the roots kept changing.
    fn look_again(
        &self,
        m: &mut Mark,
        removed: &mut Removed,
        recs: &mut [Option<RmRecord>],
        asked: Asked,
    ) -> anyhow::Result<bool> {
        let muted = self.guard.msgs.muted_sharing_progress();
        loop {
            let excl = removed.exclusions();
            let mut tries = 0;
            while !m.still_valid(self.store(), &excl, &muted)? {
                if tries == MARK_TRIES {
                    return Ok(true);
                }
                tries += 1;
                m.again(self.store(), &excl, asked, &muted)?;
            }
            let back: Vec<(String, Digest, String)> = removed
                .revisions
                .iter()
                .filter_map(|(r, d)| m.revision(r, &d).map(|why| (r.to_string(), d, why.to_string())))
                .collect();
            if back.is_empty() {
                return Ok(false);
            }
            for (repo, d, why) in back {
                let mut note = format!("live again during this run ({why})");
                match self.act.restore_revision(&repo, d) {
                    Ok(()) => note.push_str("; its revision link was written back"),
                    Err(e) => {
                        self.guard.msgs.error(e);
                        note.push_str("; writing its revision link back failed (see errors)");
                    }
                }
                removed.revisions.remove(&repo, &d);
                for r in recs.iter_mut() {
                    if r.as_ref()
                        .is_some_and(|r| r.repo.as_deref() == Some(repo.as_str()) && r.digest == Some(d))
                    {
                        *r = Some(
                            RmRecord::new(Kind::Revision)
                                .repo(&repo)
                                .digest(d)
                                .kept(note.clone()),
                        );
                    }
                }
            }
        }
    }

    fn rm_revision(&self, repo: &str, d: Digest, mark: &Mark, data: &ManifestData) -> Option<RmRecord> {
        let rec = RmRecord::new(Kind::Revision).repo(repo).digest(d);
        match self.guard.revision(repo, d, mark, data) {
            Verdict::AbsentWithLeftovers => {
                self.act.remove_index_entries(repo, d);
                Some(rec.done(Action::Absent, 0))
            }
            Verdict::Go => {
                let mut rec = self.act.finish(rec, &[paths::revision_dir(repo, &d)])?;
                if rec.action.removes() {
                    rec.bytes += self.act.remove_index_entries(repo, d);
                }
                Some(rec)
            }
            v => self.apply(rec, v, &[]),
        }
    }

    fn rm_repo(&self, repo: &str, removed: &Removed) -> Option<RmRecord> {
        let rec = RmRecord::new(Kind::Repo).repo(repo);
        // Its own directories only: a nested repository may live beside them.
        let own: Vec<String> = super::repo::OWN
            .iter()
            .map(|d| format!("{}/{d}", paths::repo(repo)))
            .collect();
        // Its listing held while it is judged (a large bucket: one listing,
        // not a request a link), never while it is removed: the second
        // look after its keys go must list again.
        let held = self.store().hold_repositories(&[repo.to_string()]);
        let verdict = match self.guard.repo(repo, removed) {
            // On object storage a repository is its objects: when this run
            // removed its last ones it is gone already, and it is this run
            // that removed it (as on the filesystem, where only its empty
            // directories are left to remove).
            Verdict::Absent if removed.emptied(repo) => return Some(rec.done(self.act.action(), 0)),
            v => v,
        };
        let rec = match verdict {
            // Its keys, then a second look (a push may land meanwhile).
            Verdict::Go if !self.guard.dry_run() => {
                drop(held);
                self.remove_repo(rec, repo)?
            }
            v => self.apply(rec, v, &own)?,
        };
        if rec.action.removes() && !self.guard.dry_run() {
            // Then the directory itself and empty parents, never `repositories`.
            let mut name = repo;
            loop {
                let dir = paths::repo(name);
                if !(self.guard.empty_dir_old(&dir) && self.act.remove_empty(&dir)) {
                    break;
                }
                match name.rsplit_once('/') {
                    Some((parent, _)) => name = parent,
                    None => break,
                }
            }
        }
        Some(rec)
    }

    /// After the links of the doomed blobs are gone: marks again if the
    /// roots changed, and keeps (writing its removed links back) every
    /// doomed blob that is live now or that a repository links again.
    fn recheck_doomed(
        &self,
        doomed: &mut Subset<Digest>,
        link_recs: &[Option<RmRecord>],
        blob_recs: &mut Vec<RmRecord>,
        mark: &mut Mark,
        removed: &Removed,
        asked: Asked,
    ) {
        let muted = self.guard.msgs.muted_sharing_progress();
        let excl = removed.exclusions();
        let looked = match mark.still_valid(self.store(), &excl, &muted) {
            Ok(true) => Ok(()),
            Ok(false) => mark.again(self.store(), &excl, asked, &muted),
            Err(e) => Err(e),
        };
        if let Err(e) = looked {
            self.guard.msgs.error(format!(
                "the tree could not be read again after removing links: {e:#}; keeping every blob"
            ));
            for d in doomed.iter() {
                blob_recs.push(self.keep_and_restore(d, link_recs, "could not check again (see errors)"));
            }
            doomed.clear();
            return;
        }
        let (links, scan_ok) = self.guard.blob_links(doomed, removed);
        let mut kept = std::collections::HashSet::new();
        for d in doomed.iter() {
            let why = if let Some(why) = mark.blob(&d) {
                Some(format!("live again during this run ({why})"))
            } else if !scan_ok {
                Some("could not read every repository again (see errors)".to_string())
            } else if let Some(l) =
                Some(links.get(&d)).filter(|l| !l.layer_links.is_empty() || !l.revisions.is_empty())
            {
                let repo = l.layer_links.first().map(|x| &x.0).or(l.revisions.first());
                Some(format!(
                    "linked again during this run, in {}",
                    repo.map_or("a repository", |r| &**r)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                kept.insert(d);
                blob_recs.push(self.keep_and_restore(d, link_recs, &why));
            }
        }
        if !kept.is_empty() {
            doomed.retain(|d| !kept.contains(d));
        }
    }

    /// A blob kept after its links went: they are written back.
    fn keep_and_restore(&self, d: Digest, link_recs: &[Option<RmRecord>], why: &str) -> RmRecord {
        let back = self.act.restore_links(d, link_recs);
        let mut why = why.to_string();
        if !back.is_empty() {
            why.push_str(&format!(
                "; its _layers links were written back in {}",
                back.join(", ")
            ));
        }
        RmRecord::new(Kind::Blob).digest(d).kept(why)
    }
}

/// Counts one record done when dropped, whatever path its closure returns
/// by.
struct Counted<'a>(&'a Progress);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_job_is_24_bytes() {
        assert_eq!(std::mem::size_of::<LinkJob>(), 24);
    }
}
