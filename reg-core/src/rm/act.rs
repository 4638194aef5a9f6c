//! The one place that deletes. Every removal of a run goes through
//! [`Deleter::remove`]: the mode (delete, trash, dry run), the bytes freed,
//! the dry run's memory of what it would have removed, and the test hook.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::report::{Action, RmRecord};
use super::{Config, Mode};
use crate::digest::Digest;
use crate::layout::{paths, Store};
use crate::messages::Messages;

/// Outcome of one removal.
pub(super) enum Gone {
    /// Removed (or would be), freeing this many bytes.
    Removed(Action, u64),
    Absent,
}

pub(super) struct Deleter<'a> {
    store: &'a Store,
    cfg: &'a Config,
    msgs: &'a Messages,
    /// Records deleted or trashed (not dry-run) so far.
    deleted: AtomicU64,
    /// The test hook stopped the run.
    stopped: AtomicBool,
    /// Serializes deletions under the test hook, so it stops after exactly N.
    gate: Mutex<()>,
    /// Dry run: what the run would have removed so far (paths relative to
    /// v2, by [`path_id`]), so later phases neither count its bytes again
    /// nor remove it again.
    simulated: Mutex<HashSet<u128>>,
    /// The tag index entries of the repositories whose revisions were
    /// removed last (most recent at the back): listed once per repository,
    /// not once per revision and tag.
    tag_index: Mutex<VecDeque<(String, Arc<TagIndex>)>>,
    /// Object storage: removals queued for batched deletes, sent once
    /// [`Config::flush_wave`] keys are queued and at the end of each phase
    /// ([`Deleter::flush`]): each path, the keys under it, and the ticket
    /// of the record that queued it.
    queued: Mutex<Queue>,
    /// Held while queued deletes are sent: one wave at a time.
    sending: Mutex<()>,
    /// The tickets of the paths whose keys did not all go, since the last
    /// [`Deleter::flush`].
    bad: Mutex<HashSet<u32>>,
    /// The next record's ticket: what a flush drops a record by when its
    /// keys did not all go (4 bytes a record, not a copy of its paths).
    tickets: AtomicU32,
    /// The filesystem: where blob directories are moved instead of deleted
    /// until the run's last look (see [`super::aside`]).
    hold: std::sync::OnceLock<std::path::PathBuf>,
}

/// What a dry run keeps of a path it would have removed: 128 bits of two
/// SipHashes of it, a sixth of the path as a `String` in a set (a dry run
/// at 300k objects held 10.8 MB of them). Two paths of one run would
/// have to share all 128 bits for one to be taken for the other, and then
/// only a dry run's report would differ: nothing is removed in one.
fn path_id(rel: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |seed: u8| {
        let mut h = std::hash::DefaultHasher::new();
        seed.hash(&mut h);
        rel.hash(&mut h);
        h.finish()
    };
    u128::from(half(0)) << 64 | u128::from(half(1))
}

/// A path queued for a batched delete: the keys under it, as what follows
/// the path (a blob's `/data` is 8 bytes, not a copy of the path: the
/// queued keys of a real run's blob phase at 1M objects were 25 MB as
/// whole keys), and the ticket of the record that queued it (none for
/// garbage no record names).
struct Queued {
    rel: Box<str>,
    tails: Box<[Box<str>]>,
    ticket: Option<u32>,
}

/// The paths queued, and their keys.
#[derive(Default)]
struct Queue {
    items: Vec<Queued>,
    keys: usize,
}

/// Keys queued that are sent at once (see [`Deleter::queue`]), made
/// whole and deleted a wave at a time: 16 batched deletes, four rounds of
/// the four a store takes at once.
pub(super) const FLUSH_WAVE: usize = 16_000;

/// `queued` cut in order into waves of at most `max` keys (a path with
/// more is a wave of its own).
fn waves(queued: &[Queued], max: usize) -> Vec<&[Queued]> {
    let mut out = Vec::new();
    let mut rest = queued;
    while !rest.is_empty() {
        let (mut end, mut n) = (0, 0);
        while end < rest.len() && (end == 0 || n + rest[end].tails.len() <= max) {
            n += rest[end].tails.len();
            end += 1;
        }
        let (wave, after) = rest.split_at(end);
        out.push(wave);
        rest = after;
    }
    out
}

/// Whether `rel` is in the blob store.
fn is_blob_path(rel: &str) -> bool {
    rel.strip_prefix(paths::BLOBS).is_some_and(|r| r.starts_with('/'))
}

/// A repository's tag index entries: digest → the tags whose `index/`
/// names it.
type TagIndex = HashMap<Digest, Vec<String>>;

/// How many repositories' tag indexes [`Deleter`] keeps: revisions come
/// sorted by repository, so each worker is on one or two at a time.
const TAG_INDEXES_KEPT: usize = 16;

impl<'a> Deleter<'a> {
    pub(super) fn new(store: &'a Store, cfg: &'a Config, msgs: &'a Messages) -> Deleter<'a> {
        Deleter {
            store,
            cfg,
            msgs,
            deleted: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            gate: Mutex::new(()),
            simulated: Mutex::new(HashSet::new()),
            tag_index: Mutex::new(VecDeque::new()),
            queued: Mutex::default(),
            sending: Mutex::new(()),
            bad: Mutex::default(),
            tickets: AtomicU32::new(0),
            hold: std::sync::OnceLock::new(),
        }
    }

    /// From now on, blob directories this run deletes are moved into `dir`.
    pub(super) fn hold_blobs_in(&self, dir: &std::path::Path) {
        let _ = self.hold.set(dir.to_path_buf());
    }

    /// What removing means in this run's mode.
    pub(super) fn action(&self) -> Action {
        match self.cfg.mode {
            Mode::DryRun => Action::WouldDelete,
            Mode::Trash(_) => Action::Trashed,
            Mode::Delete => Action::Deleted,
        }
    }

    /// Records deleted or trashed so far.
    pub(super) fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::SeqCst)
    }

    /// Whether the test hook stopped the run.
    pub(super) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Dry run: whether `rel` or a directory above it was (would be)
    /// removed earlier in this run.
    fn simulated_gone(&self, rel: &str) -> bool {
        let sim = self.simulated.lock().expect("simulated set");
        if sim.is_empty() {
            return false;
        }
        let mut end = rel.len();
        loop {
            if sim.contains(&path_id(&rel[..end])) {
                return true;
            }
            match rel[..end].rfind('/') {
                Some(i) => end = i,
                None => return false,
            }
        }
    }

    /// Removes `rel` (file or directory) according to the mode, a batched
    /// delete queued under `ticket`. `Err(())` means the failure was
    /// reported.
    pub(super) fn remove(&self, rel: &str, ticket: Option<u32>) -> Result<Gone, ()> {
        let dry = self.cfg.mode == Mode::DryRun;
        if dry && self.simulated_gone(rel) {
            return Ok(Gone::Absent);
        }
        let skip = |child: &str| {
            dry && self
                .simulated
                .lock()
                .expect("simulated set")
                .contains(&path_id(child))
        };
        let bytes = match self.store.tree_bytes(rel, &skip) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(Gone::Absent),
            Err(e) => {
                self.msgs.error(e);
                return Err(());
            }
        };
        let (res, action) = match &self.cfg.mode {
            // Refused the same way a real run would be (a symlink on the way).
            Mode::DryRun => (
                self.store.check_removable(rel).map(|()| true),
                Action::WouldDelete,
            ),
            Mode::Trash(dir) => (self.store.trash(rel, dir), Action::Trashed),
            Mode::Delete if self.store.backend().capabilities().batches_deletes => {
                (self.queue(rel, ticket), Action::Deleted)
            }
            Mode::Delete => match self.hold.get() {
                Some(dir) if is_blob_path(rel) => (self.store.trash(rel, dir), Action::Deleted),
                _ => (self.store.delete(rel), Action::Deleted),
            },
        };
        match res {
            Ok(true) => {
                // Only what a later phase could reach: uploads and
                // repositories are under `repositories/`, and nothing after
                // the blob phase removes under `blobs/` (at 1M objects a
                // dry run's set went from 130k to 269k paths).
                if dry && !is_blob_path(rel) {
                    self.simulated.lock().expect("simulated set").insert(path_id(rel));
                }
                Ok(Gone::Removed(action, bytes))
            }
            Ok(false) => Ok(Gone::Absent),
            Err(e) => {
                self.msgs.error(e);
                Err(())
            }
        }
    }

    /// Queues the keys under `rel` (or `rel` itself) for the next
    /// [`Deleter::flush`]; false if there are none. Kept as what follows
    /// `rel` (`/data` for a blob), made whole a wave at a time by the flush.
    fn queue(&self, rel: &str, ticket: Option<u32>) -> crate::Result<bool> {
        let keys = self.store.keys_under(rel)?;
        if keys.is_empty() {
            return Ok(false);
        }
        let tails: Box<[Box<str>]> = keys
            .iter()
            .map(|k| {
                k.strip_prefix(rel).map(Box::from).ok_or_else(|| {
                    crate::Error::other(self.store.display(rel), format!("listed {k:?} under it"))
                })
            })
            .collect::<crate::Result<_>>()?;
        let full = {
            let mut q = self.queued.lock().expect("queue");
            q.keys += tails.len();
            q.items.push(Queued {
                rel: rel.into(),
                tails,
                ticket,
            });
            q.keys >= self.cfg.flush_wave()
        };
        // Sent now, not held to the end of the phase (a real run's blob
        // phase at 1M objects queued 139k paths; issue 18): nothing in a
        // phase looks again at what another item of it removes. By this
        // thread, unless another one is sending.
        if full {
            self.send_queued(false);
        }
        Ok(true)
    }

    /// Sends what is queued, a wave at a time, noting the tickets of the
    /// paths whose keys did not all go. Waits for a send in progress if
    /// `wait`; otherwise leaves the queue to it.
    fn send_queued(&self, wait: bool) {
        let _sending = if wait {
            self.sending.lock().expect("sending")
        } else {
            match self.sending.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::WouldBlock) => return,
                Err(e) => panic!("sending: {e}"),
            }
        };
        let items = std::mem::take(&mut *self.queued.lock().expect("queue")).items;
        let mut bad = HashSet::new();
        for wave in waves(&items, self.cfg.flush_wave()) {
            self.flush_wave(wave, &mut bad);
        }
        self.bad.lock().expect("bad").extend(bad);
    }

    /// The end of a phase: sends the deletions still queued, in batches
    /// (at most 1,000 keys a request, [`FLUSH_WAVE`] keys made whole at a
    /// time), and makes `recs` say what happened to all of the phase's: a
    /// record whose keys did not all go is dropped (as a failed removal
    /// is), after an error naming exactly which of its keys were deleted
    /// and which were not. Call before anything looks at the store again.
    pub(super) fn flush(&self, recs: &mut [Option<RmRecord>]) {
        self.send_queued(true);
        let bad = std::mem::take(&mut *self.bad.lock().expect("bad"));
        for slot in recs.iter_mut() {
            if slot
                .as_ref()
                .is_some_and(|r| r.ticket().is_some_and(|t| bad.contains(&t)))
            {
                *slot = None;
            } else if let Some(r) = slot {
                r.confirmed();
            }
        }
    }

    /// Deletes one wave's keys; adds to `bad` the tickets of the paths
    /// whose keys did not all go, each named in an error.
    fn flush_wave(&self, wave: &[Queued], bad: &mut HashSet<u32>) {
        let keys: Vec<String> = wave
            .iter()
            .flat_map(|q| q.tails.iter().map(move |t| format!("{}{t}", q.rel)))
            .collect();
        let results = self.store.backend().delete_batch(&keys);
        let mut failed: std::collections::HashMap<&str, String> = Default::default();
        for (k, r) in keys.iter().zip(&results) {
            if let Err(e) = r {
                failed.insert(k.as_str(), e.to_string());
            }
        }
        drop(results);
        if failed.is_empty() {
            return;
        }
        let mut from = 0;
        for q in wave {
            let ks = &keys[from..from + q.tails.len()];
            from += q.tails.len();
            let (not, done): (Vec<&String>, Vec<&String>) =
                ks.iter().partition(|k| failed.contains_key(k.as_str()));
            if not.is_empty() {
                continue;
            }
            bad.extend(q.ticket);
            let why: Vec<String> = not.iter().map(|k| failed[k.as_str()].clone()).collect();
            self.msgs.error(format!(
                "{}: not removed: deleted {} of its {} keys{}; not deleted: {}",
                self.store.display(&q.rel).display(),
                done.len(),
                ks.len(),
                if done.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        done.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                    )
                },
                why.join("; "),
            ));
        }
    }

    /// The test hook: true (and the run marked stopped) once N records were
    /// deleted.
    fn hook_fired(&self) -> bool {
        match self.cfg.fail_after() {
            Some(limit) if self.deleted() >= limit => {
                self.stopped.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Removes `rels` for one record (its bytes summed); `None` if a removal
    /// failed or the test hook stopped the run first.
    pub(super) fn finish(&self, mut rec: RmRecord, rels: &[String]) -> Option<RmRecord> {
        let _gate = self.cfg.fail_after().map(|_| self.gate.lock().expect("gate"));
        if self.hook_fired() {
            return None;
        }
        rec = rec.done(Action::Absent, 0);
        let batched = self.cfg.mode == Mode::Delete && self.store.backend().capabilities().batches_deletes;
        let ticket = batched.then(|| self.tickets.fetch_add(1, Ordering::Relaxed));
        for rel in rels {
            match self.remove(rel, ticket) {
                Ok(Gone::Removed(a, bytes)) => {
                    rec.action = a;
                    rec.bytes += bytes;
                    if let Some(t) = ticket {
                        rec.queued_as(t);
                    }
                }
                Ok(Gone::Absent) => {}
                Err(()) => return None,
            }
        }
        if matches!(rec.action, Action::Deleted | Action::Trashed) {
            self.deleted.fetch_add(1, Ordering::SeqCst);
        }
        Some(rec)
    }

    /// Removes garbage that belongs to no record (a link directory without
    /// its link); the bytes freed.
    pub(super) fn sweep(&self, rel: &str) -> u64 {
        match self.remove(rel, None) {
            Ok(Gone::Removed(_, n)) => n,
            Ok(Gone::Absent) | Err(()) => 0,
        }
    }

    /// Removes `d` from the `index/` of every tag of `repo` that names it;
    /// the bytes freed.
    pub(super) fn remove_index_entries(&self, repo: &str, d: Digest) -> u64 {
        let index = self.tag_index(repo);
        index
            .get(&d)
            .into_iter()
            .flatten()
            .map(|t| self.sweep(&paths::tag_index_entry(repo, t, &d)))
            .sum()
    }

    /// The tag index entries of `repo`, listed in one scan the first time
    /// (listing problems are reported then). An entry added by a push after
    /// that is left in place: it names a revision, it holds no data.
    fn tag_index(&self, repo: &str) -> Arc<TagIndex> {
        let kept = |q: &VecDeque<(String, Arc<TagIndex>)>| {
            q.iter().find(|(r, _)| r == repo).map(|(_, i)| Arc::clone(i))
        };
        if let Some(i) = kept(&self.tag_index.lock().expect("tag index cache")) {
            return i;
        }
        let listing = self.store.tag_index_entries(repo);
        let mut index = TagIndex::new();
        for (tag, d) in listing.items {
            index.entry(d).or_default().push(tag);
        }
        let mut q = self.tag_index.lock().expect("tag index cache");
        // Another worker may have listed it meanwhile: keep one.
        if let Some(i) = kept(&q) {
            return i;
        }
        for e in listing.errors {
            self.msgs.problem(e);
        }
        let index = Arc::new(index);
        q.push_back((repo.to_string(), Arc::clone(&index)));
        if q.len() > TAG_INDEXES_KEPT {
            q.pop_front();
        }
        index
    }

    /// Removes `rel` if it is an empty directory (old enough, which the
    /// caller checked); true if removed.
    pub(super) fn remove_empty(&self, rel: &str) -> bool {
        match self.store.remove_empty_dir(rel) {
            Ok(removed) => removed,
            Err(e) => {
                self.msgs.warn(e);
                false
            }
        }
    }

    /// Removes the empty directories a repository's removal left in its
    /// own directories (the filesystem's; an object store has none); how
    /// many went.
    pub(super) fn remove_empty_dirs(&self, repo: &str) -> u64 {
        if self.cfg.mode == Mode::DryRun {
            return 0;
        }
        let mut n = 0;
        for own in super::repo::OWN {
            let dir = format!("{}/{own}", paths::repo(repo));
            match self.store.remove_empty_dirs(&dir) {
                Ok(k) => n += k,
                Err(e) => self.msgs.warn(e),
            }
        }
        n
    }

    /// Writes back the link of revision `d` of `repo` (removed by this run,
    /// live again).
    pub(super) fn restore_revision(&self, repo: &str, d: Digest) -> crate::Result<()> {
        self.store
            .write_link(&paths::revision_link(repo, &d), &d)
            .map(|_| ())
    }

    /// Writes blob `d`'s data back (a manifest pushed again while it was
    /// deleted), unless data is there again.
    pub(super) fn restore_blob(&self, d: Digest, bytes: &[u8]) -> crate::Result<bool> {
        self.store.write_blob_back(&d, bytes)
    }

    /// Writes back the `_layers` links to `d` this run removed (listed in
    /// `link_recs`); the repositories they are back in.
    pub(super) fn restore_links(&self, d: Digest, link_recs: &[Option<RmRecord>]) -> Vec<String> {
        let mut back = Vec::new();
        for r in link_recs.iter().flatten() {
            // A link named `d`, or an alias link (named otherwise) to it.
            let links_to_d = r.alias_target().or(r.digest) == Some(d);
            if links_to_d && matches!(r.action, Action::Deleted | Action::Trashed) {
                let (Some(repo), Some(name)) = (&r.repo, r.digest) else {
                    continue;
                };
                match self.store.write_link(&paths::layer_link(repo, &name), &d) {
                    Ok(_) => back.push(repo.to_string()),
                    Err(e) => self.msgs.error(e),
                }
            }
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_take_every_queued_path_once_in_order_within_the_bound() {
        let q = |i: usize, keys: usize| Queued {
            rel: format!("p{i}").into(),
            tails: (0..keys).map(|k| format!("/{k}").into()).collect(),
            ticket: Some(i as u32),
        };
        let sizes = [1, 1, 3, 2, 7, 1, 4, 4, 1];
        let queued: Vec<Queued> = sizes.iter().enumerate().map(|(i, &n)| q(i, n)).collect();
        for max in [1, 2, 4, 5, 8, 100] {
            let waves = waves(&queued, max);
            let names: Vec<&str> = waves.iter().flat_map(|w| w.iter().map(|q| &*q.rel)).collect();
            let want: Vec<String> = (0..sizes.len()).map(|i| format!("p{i}")).collect();
            assert_eq!(names, want, "max {max}");
            for w in &waves {
                let keys: usize = w.iter().map(|q| q.tails.len()).sum();
                assert!(keys <= max || w.len() == 1, "max {max}: a wave of {keys} keys");
                assert!(!w.is_empty());
            }
        }
        assert_eq!(waves(&queued, 5).len(), 5);
        assert!(waves(&[], 5).is_empty());
    }
}
