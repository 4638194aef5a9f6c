//! The manifest cache: manifest bytes kept on disk by digest, so that a GC
//! on object storage reads each manifest once (reg-refs reads it, reg-rm's
//! mark and the next run find it here) instead of once per tool and run.
//!
//! Manifests never change: bytes kept under a digest are as good as the
//! object, provided they hash to that digest. Every entry is checked before
//! use ([`ManifestCache::read`]); one that does not hash to its digest is
//! dropped from the index, and the manifest is read from the store again.
//!
//! Entries are appended to pack files (`pack-*.rmc`), not written a file
//! each: a file per manifest made the filesystem allocate an inode for
//! each, which cost reg-refs 2.4 to 8.3 s of system time at 317,000
//! objects, more than the rest of its run (issue 18). A pack is a header
//! line, then records: `R`, the digest's length (a byte) and text, the
//! data's length (4 bytes, little-endian) and the data. A record cut short
//! (a crash, a full disk) ends what is read of its pack; the next writer to
//! take that pack cuts it there. Each process appends only to a pack that
//! it holds with an exclusive lock (`flock`), so two tools sharing the
//! cache (reg-refs piped into reg-rm) never write into one pack, and an
//! entry is in the index only once the whole record is written.
//!
//! The index (digest to pack and offset) is made when the cache is first
//! used (reg-rm, piped from reg-refs, opens it as reg-refs starts and uses
//! it once reg-refs is done), from the records' headers, and keys each entry by 8 bytes of its digest:
//! two digests sharing them cost a read from the store, never a wrong
//! manifest, since what is read is checked against the whole digest.
//!
//! The cache is bounded: when its files pass [`DEFAULT_BOUND`] (or the
//! bound given), the packs used longest ago go first (a hit renews its
//! pack's mtime) until it holds 90% of the bound. A pack grows to
//! [`PACK_LIMIT`] (or a sixteenth of a smaller bound), then a new one is
//! started. Files of the earlier format (a file per digest) are removed.
//! Every failure of the cache itself (a directory that cannot be made, a
//! full disk) only costs a read from the store.
//!
//! Writes (and the mtime a hit renews) are not made by the threads that
//! read: [`ManifestCache::keep`] hands the bytes to one writer thread
//! through a bounded queue ([`WRITE_QUEUE`] entries; a full queue makes the
//! reader wait). Until the writer has written an entry a read of it misses
//! (and reads the store); dropping the cache waits for every queued write,
//! so a tool that ends has left all it read for the next.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::digest::Digest;

/// The default bound on what the cache holds: 4 GiB.
pub const DEFAULT_BOUND: u64 = 4 << 30;

/// Entries waiting for the writer at most; more make [`ManifestCache::keep`]
/// wait. Manifests are a few KiB: a few MiB held at most, usually.
pub const WRITE_QUEUE: usize = 512;

/// A pack grows to this, then the next entry starts another: eviction
/// drops whole packs.
pub const PACK_LIMIT: u64 = 64 << 20;

/// A pack's first bytes.
const MAGIC: &[u8] = b"reg-tools manifest pack 1\n";

/// How a pack's name ends.
const PACK_SUFFIX: &str = ".rmc";

/// An entry's data at most (manifests are read up to 4 MiB): a longer
/// length in a record's header is damage, which ends its pack.
const ENTRY_LIMIT: usize = 16 << 20;

/// A record's header at most: `R`, the digest's length and text, the
/// data's length.
const HEAD_MAX: usize = 1 + 1 + 255 + 4;

/// Where the cache lives by default: `$XDG_CACHE_HOME/reg-tools/manifests`,
/// else `~/.cache/reg-tools/manifests`; `None` when neither is set.
pub fn default_dir(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = nonempty("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("reg-tools").join("manifests"))
}

/// What the writer thread is asked to do.
enum Job {
    /// Keep these bytes as the digest's (if they hash to it).
    Keep(Digest, Vec<u8>),
    /// An entry of this pack was used now: renew the pack's mtime.
    Touch(usize),
    /// Answer once everything asked before is done.
    Flush(SyncSender<()>),
}

/// Manifests by digest in packs, bounded in size.
#[derive(Debug)]
pub struct ManifestCache {
    dir: Arc<Dir>,
    /// The writer's queue; `None` once dropped, or if no thread could be
    /// started (then writes are made by the caller).
    queue: Option<SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// The directory, its packs and index, shared with the writer thread.
#[derive(Debug)]
struct Dir {
    dir: PathBuf,
    bound: u64,
    /// A pack with this much is full.
    pack_limit: u64,
    /// What the directory held at the last look at it, plus what was
    /// written since.
    held: AtomicU64,
    /// Held while evicting, so that two do not evict at once.
    evicting: Mutex<()>,
    /// Every pack this process reads: a [`Loc`] names one by its place here.
    packs: RwLock<Vec<Pack>>,
    /// Entries by [`key`].
    index: RwLock<Index>,
    /// The packs were read (at the first read or write, not when the cache
    /// is opened: reg-rm opens it as reg-refs, piped into it, starts to
    /// write, and reads it once reg-refs is done).
    loaded: std::sync::Once,
    /// The pack the writer appends to, once it has one.
    writing: Mutex<Option<Writing>>,
    /// A write failed: no more are tried (each would cost a failure more).
    broken: AtomicBool,
}

/// A pack opened for reading.
#[derive(Debug)]
struct Pack {
    path: PathBuf,
    file: File,
    /// Where its last whole record ends, when it was read (`None`: it is
    /// not a pack, or was not whole from its start).
    end: Option<u64>,
    /// Its mtime was renewed by this process (once is enough).
    touched: AtomicBool,
}

/// The pack the writer holds (locked) and where its next record goes.
#[derive(Debug)]
struct Writing {
    pack: usize,
    path: PathBuf,
    file: File,
    at: u64,
}

/// An entry's place: its pack (in [`Dir::packs`]) and its record's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc(u64);

impl Loc {
    const OFF_BITS: u32 = 40;

    /// An entry dropped from the sorted list (no pack has this place).
    const GONE: Loc = Loc(u64::MAX);

    fn new(pack: usize, off: u64) -> Loc {
        Loc(((pack as u64) << Self::OFF_BITS) | off)
    }

    fn pack(self) -> usize {
        (self.0 >> Self::OFF_BITS) as usize
    }

    fn off(self) -> u64 {
        self.0 & ((1 << Self::OFF_BITS) - 1)
    }
}

/// Entries by [`key`]: a sorted list, 16 bytes an entry (a hash map took
/// twice that and more), and the entries written since it was last merged
/// in a map of at most [`MERGE_EVERY`].
#[derive(Debug, Default)]
struct Index {
    sorted: Vec<(u64, Loc)>,
    recent: HashMap<u64, Loc>,
}

/// Entries written are merged into the sorted list this many at a time.
const MERGE_EVERY: usize = 4096;

impl Index {
    /// The entries of the packs, in the packs' order: where a key is there
    /// more than once, the last is its entry (written after the others).
    fn load(&mut self, mut entries: Vec<(u64, Loc)>) {
        entries.sort_by_key(|e| e.0);
        let mut sorted: Vec<(u64, Loc)> = Vec::with_capacity(entries.len());
        for e in entries {
            match sorted.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => sorted.push(e),
            }
        }
        self.sorted = sorted;
        self.recent.clear();
    }

    fn get(&self, k: u64) -> Option<Loc> {
        if let Some(loc) = self.recent.get(&k) {
            return Some(*loc);
        }
        let i = self.sorted.binary_search_by_key(&k, |e| e.0).ok()?;
        let loc = self.sorted[i].1;
        (loc != Loc::GONE).then_some(loc)
    }

    fn insert(&mut self, k: u64, loc: Loc) {
        self.recent.insert(k, loc);
        if self.recent.len() >= MERGE_EVERY {
            self.merge();
        }
    }

    /// Drops `k`'s entry if it is at `loc`.
    fn remove(&mut self, k: u64, loc: Loc) {
        if self.recent.get(&k) == Some(&loc) {
            self.recent.remove(&k);
        } else if let Ok(i) = self.sorted.binary_search_by_key(&k, |e| e.0) {
            if self.sorted[i].1 == loc {
                self.sorted[i].1 = Loc::GONE;
            }
        }
    }

    /// The recent entries into the sorted list; a recent one replaces a
    /// listed one of its key.
    fn merge(&mut self) {
        let mut recent: Vec<(u64, Loc)> = self.recent.drain().collect();
        recent.sort_unstable_by_key(|e| e.0);
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + recent.len());
        let (mut a, mut b) = (old.into_iter().peekable(), recent.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(x), Some(y)) if x.0 == y.0 => {
                    a.next();
                    b.next()
                }
                (_, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.sorted = merged;
    }
}

/// The index's key of `d`: its first 8 bytes.
fn key(d: &Digest) -> u64 {
    let mut k = [0u8; 8];
    let b = d.bytes();
    let n = b.len().min(8);
    k[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(k)
}

/// A record's header: whose data it is, where the data starts, how long.
struct Head {
    digest: Digest,
    data: u64,
    len: usize,
}

/// Reads into `buf` from `off` until it is full or the file ends; how much
/// was read.
fn read_full_at(file: &File, buf: &mut [u8], off: u64) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// The header of the record at `off`, if one is there whose data ends by
/// `file_len`.
fn head_at(file: &File, off: u64, file_len: u64) -> Option<Head> {
    let mut buf = [0u8; HEAD_MAX];
    let got = read_full_at(file, &mut buf, off);
    let buf = &buf[..got];
    let (&kind, rest) = buf.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n);
    if kind != b'R' || rest.len() < n + 4 {
        return None;
    }
    let digest = Digest::parse(std::str::from_utf8(&rest[..n]).ok()?).ok()?;
    let len = u32::from_le_bytes(rest[n..n + 4].try_into().expect("4 bytes")) as usize;
    let data = off + 2 + n as u64 + 4;
    (len <= ENTRY_LIMIT && data + len as u64 <= file_len).then_some(Head { digest, data, len })
}

/// Each whole record of a pack from its start: (key, offset); and where
/// the last ends. `None` if `file` is not a pack.
fn scan(file: &File) -> Option<(Vec<(u64, u64)>, u64)> {
    let len = file.metadata().ok()?.len();
    let mut magic = [0u8; MAGIC.len()];
    if read_full_at(file, &mut magic, 0) != MAGIC.len() || magic != MAGIC {
        return None;
    }
    let mut at = MAGIC.len() as u64;
    let mut found = Vec::new();
    while let Some(h) = head_at(file, at, len) {
        found.push((key(&h.digest), at));
        at = h.data + h.len as u64;
    }
    Some((found, at))
}

/// Takes `file`'s exclusive lock without waiting (`flock`, held until
/// the file is closed): `false` if another holds it.
fn lock(file: &File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// A record of `bytes` as `d`'s.
fn record(d: &Digest, bytes: &[u8]) -> Vec<u8> {
    let text = d.to_string();
    let mut rec = Vec::with_capacity(2 + text.len() + 4 + bytes.len());
    rec.push(b'R');
    rec.push(text.len() as u8);
    rec.extend_from_slice(text.as_bytes());
    rec.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    rec.extend_from_slice(bytes);
    rec
}

/// A file of the earlier format (a file per digest, or a temporary one).
fn earlier_format(name: &str) -> bool {
    name.starts_with(".tmp-") || Digest::parse(name).is_ok()
}

/// Names of the packs made by this process are told apart by a counter.
static PACKS_MADE: AtomicU64 = AtomicU64::new(0);

impl ManifestCache {
    /// The cache in `dir` (made when first written), holding at most about
    /// `bound` bytes; evicts at once if it holds more. What is left is read
    /// (the headers of its records) when first used.
    pub fn new(dir: impl Into<PathBuf>, bound: u64) -> ManifestCache {
        let dir = Arc::new(Dir {
            dir: dir.into(),
            bound,
            pack_limit: (bound / 16).clamp(1, PACK_LIMIT),
            held: AtomicU64::new(0),
            evicting: Mutex::new(()),
            packs: RwLock::new(Vec::new()),
            index: RwLock::new(Index::default()),
            loaded: std::sync::Once::new(),
            writing: Mutex::new(None),
            broken: AtomicBool::new(false),
        });
        dir.evict();
        let (tx, rx) = sync_channel(WRITE_QUEUE);
        let d = dir.clone();
        let writer = std::thread::Builder::new()
            .name("reg-manifest-cache".into())
            .spawn(move || {
                d.remove_earlier_format();
                d.serve(rx)
            })
            .ok();
        ManifestCache {
            queue: writer.is_some().then_some(tx),
            writer,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir.dir
    }

    /// The bytes kept for `d`, only if they hash to `d`. An entry that does
    /// not is dropped from the index, and `None` returned: the caller reads
    /// the store.
    pub fn read(&self, d: &Digest) -> Option<Vec<u8>> {
        self.dir.loaded.call_once(|| self.dir.load());
        let loc = self.dir.index.read().expect("index").get(key(d))?;
        let packs = self.dir.packs.read().expect("packs");
        let pack = packs.get(loc.pack())?;
        let bytes = match head_at(&pack.file, loc.off(), u64::MAX) {
            // Another digest with the same key: not this one's entry.
            Some(h) if h.digest != *d => return None,
            Some(h) => {
                let mut buf = vec![0u8; h.len];
                (read_full_at(&pack.file, &mut buf, h.data) == h.len && d.matches(&buf)).then_some(buf)
            }
            None => None,
        };
        let Some(bytes) = bytes else {
            drop(packs);
            self.dir.forget(d, loc);
            return None;
        };
        // Used now: its pack is the last to be evicted. Renewed by the
        // writer; with its queue full, not at all (the order of eviction
        // is a hint).
        if !pack.touched.swap(true, Ordering::Relaxed) {
            let p = loc.pack();
            drop(packs);
            match &self.queue {
                Some(q) => match q.try_send(Job::Touch(p)) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => self.dir.touch(p),
                },
                None => self.dir.touch(p),
            }
        }
        Some(bytes)
    }

    /// Keeps `bytes` as `d`'s (only if they hash to `d`, which the writer
    /// checks). Waits only while the writer's queue is full.
    pub fn keep(&self, d: &Digest, bytes: Vec<u8>) {
        let job = Job::Keep(*d, bytes);
        let job = match &self.queue {
            Some(q) => match q.send(job) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => job,
        };
        self.dir.run(job);
    }

    /// Returns once every write and renewal asked for before is made.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if let Some(q) = &self.queue {
            if q.send(Job::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }
}

impl Drop for ManifestCache {
    /// Waits for the writer to make every write queued.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Dir {
    /// Opens every pack of the directory and indexes its whole records.
    fn load(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with(PACK_SUFFIX)))
            .collect();
        paths.sort();
        let mut packs = self.packs.write().expect("packs");
        let mut entries = Vec::new();
        for path in paths {
            let Ok(file) = File::open(&path) else { continue };
            let scanned = scan(&file);
            let end = scanned.as_ref().map(|(_, end)| *end);
            for (k, off) in scanned.map(|(found, _)| found).unwrap_or_default() {
                entries.push((k, Loc::new(packs.len(), off)));
            }
            packs.push(Pack {
                path,
                file,
                end,
                touched: AtomicBool::new(false),
            });
        }
        self.index.write().expect("index").load(entries);
    }

    /// Drops `d`'s entry from the index if it is still at `loc`.
    fn forget(&self, d: &Digest, loc: Loc) {
        self.index.write().expect("index").remove(key(d), loc);
    }

    /// The writer thread: every job in order, until the queue is dropped.
    fn serve(&self, rx: Receiver<Job>) {
        for job in rx {
            self.run(job);
        }
    }

    fn run(&self, job: Job) {
        match job {
            Job::Keep(d, bytes) => self.keep(&d, &bytes),
            Job::Touch(p) => self.touch(p),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    fn touch(&self, pack: usize) {
        let path = match self.packs.read().expect("packs").get(pack) {
            Some(p) => p.path.clone(),
            None => return,
        };
        if let Ok(file) = File::options().append(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Appends `bytes` as `d`'s entry to the pack this process holds, and
    /// indexes it once written whole. Bytes that do not hash to `d` are not
    /// written, nor a digest already kept.
    fn keep(&self, d: &Digest, bytes: &[u8]) {
        if bytes.len() > ENTRY_LIMIT || self.broken.load(Ordering::Relaxed) || !d.matches(bytes) {
            return;
        }
        self.loaded.call_once(|| self.load());
        if self.index.read().expect("index").get(key(d)).is_some() {
            return;
        }
        let rec = record(d, bytes);
        let mut writing = self.writing.lock().expect("writing");
        if writing.as_ref().is_none_or(|w| w.at >= self.pack_limit) {
            *writing = self.take_pack();
        }
        let Some(w) = writing.as_mut() else {
            self.broken.store(true, Ordering::Relaxed);
            return;
        };
        if w.file.write_all_at(&rec, w.at).is_err() {
            // What was cut short ends the pack for its readers.
            *writing = None;
            self.broken.store(true, Ordering::Relaxed);
            return;
        }
        let loc = Loc::new(w.pack, w.at);
        w.at += rec.len() as u64;
        drop(writing);
        self.index.write().expect("index").insert(key(d), loc);
        let held = self.held.fetch_add(rec.len() as u64, Ordering::Relaxed) + rec.len() as u64;
        if held > self.bound {
            self.evict();
        }
    }

    /// A pack for this process to append to, locked: one it read with
    /// room left that no other process holds (cut after its last whole
    /// record), else a new one.
    fn take_pack(&self) -> Option<Writing> {
        let candidates: Vec<(usize, PathBuf)> = self
            .packs
            .read()
            .expect("packs")
            .iter()
            .enumerate()
            .filter(|(_, p)| p.end.is_some_and(|end| end < self.pack_limit))
            .map(|(i, p)| (i, p.path.clone()))
            .collect();
        for (pack, path) in candidates {
            let Ok(file) = File::options().read(true).write(true).open(&path) else {
                continue;
            };
            if !lock(&file) {
                continue;
            }
            // Read again now that it is held: another may have written to
            // it since it was read.
            let Some((_, end)) = scan(&file) else { continue };
            if end >= self.pack_limit || file.set_len(end).is_err() {
                continue;
            }
            return Some(Writing {
                pack,
                path,
                file,
                at: end,
            });
        }
        self.new_pack()
    }

    /// A new pack, locked, with its header written.
    fn new_pack(&self) -> Option<Writing> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos());
        let name = format!(
            "pack-{nanos:x}-{}-{}{PACK_SUFFIX}",
            std::process::id(),
            PACKS_MADE.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        let made = lock(&file) && file.write_all_at(MAGIC, 0).is_ok();
        let reader = file.try_clone().ok().filter(|_| made);
        let Some(reader) = reader else {
            let _ = std::fs::remove_file(&path);
            return None;
        };
        let mut packs = self.packs.write().expect("packs");
        packs.push(Pack {
            path: path.clone(),
            file: reader,
            end: None,
            touched: AtomicBool::new(false),
        });
        Some(Writing {
            pack: packs.len() - 1,
            path,
            file,
            at: MAGIC.len() as u64,
        })
    }

    /// Removes the files of the earlier format (a file per digest): this
    /// version does not read them.
    fn remove_earlier_format(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_str().is_some_and(earlier_format) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Removes the files used longest ago (packs, by mtime; never the
    /// pack this process writes) until the cache holds at most 90% of its
    /// bound (nothing when it holds no more than the bound). A pack this
    /// process reads stays readable to it (its file is open).
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            return;
        };
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            self.held.store(0, Ordering::Relaxed);
            return;
        };
        let current = self
            .writing
            .lock()
            .expect("writing")
            .as_ref()
            .map(|w| w.path.clone());
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let m = e.metadata().ok()?;
                m.is_file()
                    .then(|| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, n, _)| n).sum();
        if total > self.bound {
            entries.sort();
            let goal = self.bound / 10 * 9;
            for (_, n, path) in entries {
                if total <= goal {
                    break;
                }
                if Some(&path) != current.as_ref() && std::fs::remove_file(&path).is_ok() {
                    total -= n;
                }
            }
        }
        self.held.store(total, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn default_dir_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_dir(&env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c/reg-tools/manifests"))
        );
        assert_eq!(
            default_dir(&env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/reg-tools/manifests"))
        );
        // A relative XDG_CACHE_HOME is invalid by the spec: ignored.
        assert_eq!(
            default_dir(&env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/reg-tools/manifests"))
        );
        assert_eq!(default_dir(&env(&[])), None);
    }

    /// The packs in `dir`, by name.
    fn packs(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().ends_with(PACK_SUFFIX))
            .collect();
        found.sort();
        found
    }

    /// The pack holding `d`'s entry, as `c` knows it.
    fn pack_of(c: &ManifestCache, d: &Digest) -> PathBuf {
        let loc = c.dir.index.read().unwrap().get(key(d)).unwrap();
        c.dir.packs.read().unwrap()[loc.pack()].path.clone()
    }

    /// Keeps each of `items` in `c`.
    fn keep_all(c: &ManifestCache, items: &[(Digest, Vec<u8>)]) {
        for (d, b) in items {
            c.keep(d, b.clone());
        }
    }

    /// `c` reads each of `items` as kept.
    fn reads_all(c: &ManifestCache, items: &[(Digest, Vec<u8>)]) {
        for (d, b) in items {
            assert_eq!(c.read(d).as_ref(), Some(b), "{d}");
        }
    }

    fn items(n: u32, len: usize) -> Vec<(Digest, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let mut b = vec![b'a' + (i % 26) as u8; len];
                b[..4].copy_from_slice(&i.to_le_bytes());
                (Digest::sha256_of(&b), b)
            })
            .collect()
    }

    /// An entry is used only when it hashes to its digest; a bad one is
    /// dropped (the caller reads the store again) and can be kept again.
    #[test]
    fn a_corrupt_entry_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path().join("m"), DEFAULT_BOUND);
        let d = Digest::sha256_of(b"manifest");
        c.keep(&d, b"manifest".to_vec());
        c.flush();
        assert_eq!(c.read(&d).as_deref(), Some(&b"manifest"[..]));
        let pack = pack_of(&c, &d);
        let mut bytes = std::fs::read(&pack).unwrap();
        *bytes.last_mut().unwrap() = b'T';
        std::fs::write(&pack, &bytes).unwrap();
        assert_eq!(c.read(&d), None);
        // Not read from the damaged record again, by this cache or another.
        assert_eq!(
            ManifestCache::new(dir.path().join("m"), DEFAULT_BOUND).read(&d),
            None
        );
        c.keep(&d, b"manifest".to_vec());
        c.flush();
        assert_eq!(c.read(&d).as_deref(), Some(&b"manifest"[..]));
        assert_eq!(
            ManifestCache::new(dir.path().join("m"), DEFAULT_BOUND)
                .read(&d)
                .as_deref(),
            Some(&b"manifest"[..])
        );
        // Bytes that are not the digest's are never kept (the writer checks).
        let other = Digest::sha256_of(b"other");
        let before = std::fs::metadata(&pack).unwrap().len();
        c.keep(&other, b"not other".to_vec());
        c.flush();
        assert_eq!(c.read(&other), None);
        assert_eq!(std::fs::metadata(&pack).unwrap().len(), before);
    }

    /// A record cut short (a write cut by a crash or a full disk) ends what
    /// is read of its pack; the next writer to take the pack cuts it there
    /// and appends after, so what it writes is found again.
    #[test]
    fn a_cut_record_ends_its_pack_and_the_next_writer_cuts_it() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(3, 1000);
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        for (d, b) in &items[..2] {
            c.keep(d, b.clone());
        }
        drop(c);
        let [pack] = &packs(dir.path())[..] else {
            panic!("one pack")
        };
        let whole = std::fs::metadata(pack).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(pack)
            .unwrap()
            .set_len(whole - 3)
            .unwrap();
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        assert_eq!(c.read(&items[0].0).as_ref(), Some(&items[0].1));
        assert_eq!(c.read(&items[1].0), None);
        c.keep(&items[1].0, items[1].1.clone());
        c.keep(&items[2].0, items[2].1.clone());
        drop(c);
        // The same pack, cut and written on: as long as it was whole.
        assert_eq!(packs(dir.path()), std::slice::from_ref(pack));
        let written = record(&items[2].0, &items[2].1).len() as u64;
        assert_eq!(std::fs::metadata(pack).unwrap().len(), whole + written);
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        for (d, b) in &items {
            assert_eq!(c.read(d).as_ref(), Some(b));
        }
    }

    /// What the writer has not finished is not an entry: a reader (in this
    /// process or another) sees no entry or all of it. Files of the
    /// earlier format (a file per digest, temporary files) are removed.
    #[test]
    fn a_partial_write_is_never_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![b'x'; 100_000];
        let d = Digest::sha256_of(&bytes);
        let stale = dir.path().join(format!(".tmp-{}-x", std::process::id()));
        std::fs::write(&stale, &bytes[..10]).unwrap();
        std::fs::write(dir.path().join(d.to_string()), &bytes).unwrap();
        std::fs::write(dir.path().join("not-ours"), b"kept").unwrap();
        let c = Arc::new(ManifestCache::new(dir.path(), DEFAULT_BOUND));
        assert_eq!(c.read(&d), None);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(b) = c.read(&d) {
                            assert_eq!(b.len(), 100_000);
                        }
                    }
                })
            })
            .collect();
        // Another process reading the pack as it is written sees whole
        // records only.
        let other = std::thread::spawn({
            let dir = dir.path().to_path_buf();
            move || {
                for _ in 0..200 {
                    let seen = ManifestCache::new(&dir, DEFAULT_BOUND);
                    if let Some(b) = seen.read(&d) {
                        assert_eq!(b.len(), 100_000);
                    }
                }
            }
        });
        for _ in 0..20 {
            c.keep(&d, bytes.clone());
        }
        c.flush();
        for r in readers {
            r.join().unwrap();
        }
        other.join().unwrap();
        assert_eq!(c.read(&d), Some(bytes.clone()));
        // Kept once, however often asked.
        let [pack] = &packs(dir.path())[..] else {
            panic!("one pack")
        };
        let one = (MAGIC.len() + record(&d, &bytes).len()) as u64;
        assert_eq!(std::fs::metadata(pack).unwrap().len(), one);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(PACK_SUFFIX))
            .collect();
        names.sort();
        assert_eq!(names, ["not-ours"]);
    }

    /// The writer runs apart from the readers: a keep returns before the
    /// entry is written, and dropping the cache waits for every queued
    /// write, so what one tool read is there for the next.
    #[test]
    fn dropping_the_cache_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(WRITE_QUEUE as u32 + 100, 8);
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        keep_all(&c, &items);
        drop(c);
        reads_all(&ManifestCache::new(dir.path(), DEFAULT_BOUND), &items);
    }

    /// Two tools writing at once (reg-refs piped into reg-rm) each append
    /// to a pack of their own; a later one appends to a pack with room
    /// that no other holds, not to a new one.
    #[test]
    fn writers_at_once_write_packs_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(40, 500);
        let a = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        let b = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        for (i, (d, bytes)) in items[..30].iter().enumerate() {
            let c = if i % 2 == 0 { &a } else { &b };
            c.keep(d, bytes.clone());
            c.flush();
        }
        assert_eq!(packs(dir.path()).len(), 2);
        drop(a);
        drop(b);
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        reads_all(&c, &items[..30]);
        keep_all(&c, &items[30..]);
        drop(c);
        assert_eq!(packs(dir.path()).len(), 2);
        reads_all(&ManifestCache::new(dir.path(), DEFAULT_BOUND), &items);
    }

    /// reg-rm opens the cache as reg-refs, piped into it, starts, and reads
    /// it once reg-refs is done: it finds what reg-refs wrote after it was
    /// opened.
    #[test]
    fn a_cache_finds_what_was_written_after_it_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let items = items(10, 100);
        let rm = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        let refs = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        keep_all(&refs, &items);
        drop(refs);
        reads_all(&rm, &items);
    }

    /// The index answers each key with its last entry, across merges of
    /// what was written into the sorted list, and drops an entry only where
    /// it still is.
    #[test]
    fn the_index_keeps_the_last_entry_of_each_key() {
        let mut index = Index::default();
        // Keys 0..1000 in the packs, even ones twice (the second wins).
        let mut loaded: Vec<(u64, Loc)> = (0..1000).map(|k| (k * 7, Loc::new(0, k))).collect();
        loaded.extend((0..1000).step_by(2).map(|k| (k * 7, Loc::new(1, k))));
        index.load(loaded);
        assert_eq!(index.sorted.len(), 1000);
        assert_eq!(index.get(14), Some(Loc::new(1, 2)));
        assert_eq!(index.get(21), Some(Loc::new(0, 3)));
        assert_eq!(index.get(22), None);
        // Written: new keys and some of the loaded ones, past two merges.
        let n = 2 * MERGE_EVERY as u64 + 10;
        for k in 0..n {
            index.insert(k * 5, Loc::new(2, k));
        }
        assert!(index.recent.len() < MERGE_EVERY);
        for k in 0..n {
            assert_eq!(index.get(k * 5), Some(Loc::new(2, k)), "key {}", k * 5);
        }
        assert_eq!(index.get(21), Some(Loc::new(0, 3)));
        assert_eq!(index.get(35), Some(Loc::new(2, 7)));
        assert!(index.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        // Removed only where it is: in the list, then in the recent map.
        index.remove(21, Loc::new(1, 3));
        assert_eq!(index.get(21), Some(Loc::new(0, 3)));
        index.remove(21, Loc::new(0, 3));
        assert_eq!(index.get(21), None);
        let last = (n - 1) * 5;
        index.remove(last, Loc::new(2, n - 1));
        assert_eq!(index.get(last), None);
        index.insert(21, Loc::new(3, 0));
        assert_eq!(index.get(21), Some(Loc::new(3, 0)));
    }

    /// A cache that cannot write (its directory is a file) reads nothing
    /// and fails nothing: each manifest is read from the store.
    #[test]
    fn a_cache_that_cannot_write_only_misses() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let c = ManifestCache::new(&file, DEFAULT_BOUND);
        let d = Digest::sha256_of(b"m");
        c.keep(&d, b"m".to_vec());
        c.flush();
        assert_eq!(c.read(&d), None);
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    /// Past its bound the cache drops the packs used longest ago, down to
    /// 90% of the bound; a hit makes its pack recent. (A bound of 1,400
    /// bytes makes packs of one entry each.)
    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path(), 1400);
        let items = items(5, 300);
        let age = |d: &Digest, secs: u64| {
            let f = std::fs::File::options()
                .append(true)
                .open(pack_of(&c, d))
                .unwrap();
            f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs))
                .unwrap();
        };
        for (i, (d, b)) in items.iter().take(3).enumerate() {
            c.keep(d, b.clone());
            c.flush();
            age(d, 100 - i as u64 * 10);
        }
        assert_eq!(packs(dir.path()).len(), 3);
        // The oldest, read now, becomes the newest.
        assert!(c.read(&items[0].0).is_some());
        c.flush();
        // 4 packs of 403 bytes > 1,400: down to 1,260 by dropping the
        // oldest (item 1's).
        c.keep(&items[3].0, items[3].1.clone());
        c.flush();
        assert_eq!(packs(dir.path()).len(), 3);
        let seen = ManifestCache::new(dir.path(), 1400);
        let present: Vec<bool> = items.iter().map(|(d, _)| seen.read(d).is_some()).collect();
        assert_eq!(present, [true, false, true, true, false]);
        // A new cache on a directory over its bound evicts at once.
        let small = ManifestCache::new(dir.path(), 500);
        let left = items.iter().filter(|(d, _)| small.read(d).is_some()).count();
        assert_eq!(left, 1);
    }
}
