//! The manifest cache: manifest bytes kept on disk by digest, so that a GC
//! on object storage reads each manifest once (reg-refs reads it, reg-rm's
//! mark and the next run find it here) instead of once per tool and run.
//!
//! Manifests never change: a file named by its digest is as good as the
//! object, provided it hashes to that digest. Every entry is checked before
//! use ([`ManifestCache::read`]); one that does not hash to its name is
//! ignored (and removed), and the manifest is read from the store again.
//!
//! The cache is bounded: when what it holds passes [`DEFAULT_BOUND`] (or
//! the bound given), the entries used longest ago go first (a hit renews an
//! entry's mtime) until it holds 90% of the bound. Writes go to a temporary
//! file renamed into place, so two tools sharing the cache (reg-refs piped
//! into reg-rm) never see half an entry. Every failure of the cache itself
//! (a directory that cannot be made, a full disk) only costs a read from
//! the store.
//!
//! Writes (and the mtime a hit renews) are not made by the threads that
//! read: [`ManifestCache::keep`] hands the bytes to one writer thread
//! through a bounded queue ([`WRITE_QUEUE`] entries; a full queue makes the
//! reader wait), which checks them against their digest, writes and
//! renames them and evicts. A file per manifest costs the filesystem a few
//! hundred microseconds; made by 32 reading threads at once in one
//! directory it cost reg-refs more than half its time through 20 ms a
//! request (issue 18). Until the writer has written an entry a read of it
//! misses (and reads the store); dropping the cache waits for every queued
//! write, so a tool that ends has left all it read for the next.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::digest::Digest;

/// The default bound on what the cache holds: 4 GiB.
pub const DEFAULT_BOUND: u64 = 4 << 30;

/// Entries waiting for the writer at most; more make [`ManifestCache::keep`]
/// wait. Manifests are a few KiB: a few MiB held at most, usually.
pub const WRITE_QUEUE: usize = 512;

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
    /// The entry was used now: renew its mtime.
    Touch(Digest),
    /// Answer once everything asked before is done.
    Flush(SyncSender<()>),
}

/// A directory of manifests by digest, bounded in size.
#[derive(Debug)]
pub struct ManifestCache {
    dir: Arc<Dir>,
    /// The writer's queue; `None` once dropped, or if no thread could be
    /// started (then writes are made by the caller).
    queue: Option<SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// The directory and its accounting, shared with the writer thread.
#[derive(Debug)]
struct Dir {
    dir: PathBuf,
    bound: u64,
    /// Bytes written since the last look at the whole directory, plus what
    /// it held then.
    held: AtomicU64,
    /// Held while evicting, so that two do not evict at once.
    evicting: Mutex<()>,
    /// The directory was made (or found) once: not asked for again.
    made: AtomicBool,
}

/// Temporary files of this process are told apart by a counter.
static TMP: AtomicU64 = AtomicU64::new(0);

impl ManifestCache {
    /// The cache in `dir` (made when first written), holding at most about
    /// `bound` bytes; evicts at once if it holds more.
    pub fn new(dir: impl Into<PathBuf>, bound: u64) -> ManifestCache {
        let dir = Arc::new(Dir {
            dir: dir.into(),
            bound,
            held: AtomicU64::new(0),
            evicting: Mutex::new(()),
            made: AtomicBool::new(false),
        });
        dir.evict();
        let (tx, rx) = sync_channel(WRITE_QUEUE);
        let d = dir.clone();
        let writer = std::thread::Builder::new()
            .name("reg-manifest-cache".into())
            .spawn(move || d.serve(rx))
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

    #[cfg(test)]
    fn file(&self, d: &Digest) -> PathBuf {
        self.dir.file(d)
    }

    /// The bytes kept for `d`, only if they hash to `d`. An entry that does
    /// not is removed, and `None` returned: the caller reads the store.
    pub fn read(&self, d: &Digest) -> Option<Vec<u8>> {
        let f = self.dir.file(d);
        let bytes = std::fs::read(&f).ok()?;
        if !d.matches(&bytes) {
            let _ = std::fs::remove_file(&f);
            return None;
        }
        // Used now: the last to be evicted. Renewed by the writer; with
        // its queue full, not at all (the order of eviction is a hint).
        match &self.queue {
            Some(q) => match q.try_send(Job::Touch(*d)) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => self.dir.touch(d),
            },
            None => self.dir.touch(d),
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
    fn file(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.to_string())
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
            Job::Touch(d) => self.touch(&d),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    fn touch(&self, d: &Digest) {
        if let Ok(file) = std::fs::File::options().append(true).open(self.file(d)) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Writes `bytes` as `d`'s entry: to a temporary file (a name no
    /// digest has), renamed into place once whole. Bytes that do not hash
    /// to `d` are not written.
    fn keep(&self, d: &Digest, bytes: &[u8]) {
        if !d.matches(bytes) {
            return;
        }
        let f = self.file(d);
        if !self.made.load(Ordering::Relaxed) && std::fs::create_dir_all(&self.dir).is_ok() {
            self.made.store(true, Ordering::Relaxed);
        }
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP.fetch_add(1, Ordering::Relaxed)
        ));
        if std::fs::write(&tmp, bytes).is_err() || std::fs::rename(&tmp, &f).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        let held = self.held.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if held > self.bound {
            self.evict();
        }
    }

    /// Removes the entries used longest ago until the cache holds at most
    /// 90% of its bound (nothing when it holds no more than the bound).
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            return;
        };
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            self.held.store(0, Ordering::Relaxed);
            return;
        };
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
                if std::fs::remove_file(&path).is_ok() {
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

    /// An entry is used only when it hashes to its digest; a bad one is
    /// dropped (the caller reads the store again).
    #[test]
    fn a_corrupt_entry_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path().join("m"), DEFAULT_BOUND);
        let d = Digest::sha256_of(b"manifest");
        c.keep(&d, b"manifest".to_vec());
        c.flush();
        assert_eq!(c.read(&d).as_deref(), Some(&b"manifest"[..]));
        std::fs::write(c.file(&d), b"manifesT").unwrap();
        assert_eq!(c.read(&d), None);
        assert!(!c.file(&d).exists());
        // Bytes that are not the digest's are never kept (the writer checks).
        c.keep(&d, b"other".to_vec());
        c.flush();
        assert!(!c.file(&d).exists());
    }

    /// A truncated entry (a write cut short by a crash, a full disk, a copy
    /// of the directory) is a bad one: not trusted, removed; the entry
    /// written again is used.
    #[test]
    fn a_truncated_entry_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        let bytes = br#"{"schemaVersion":2,"layers":[]}"#.to_vec();
        let d = Digest::sha256_of(&bytes);
        std::fs::write(c.file(&d), &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(c.read(&d), None);
        assert!(!c.file(&d).exists());
        std::fs::write(c.file(&d), b"").unwrap();
        assert_eq!(c.read(&d), None);
        c.keep(&d, bytes.clone());
        c.flush();
        assert_eq!(c.read(&d), Some(bytes));
    }

    /// What the writer has not finished is not an entry: it writes to a
    /// temporary name no digest has and renames once whole, so a reader
    /// (in this process or another) sees no entry or all of it. A
    /// temporary file left by a writer that died is never read as one.
    #[test]
    fn a_partial_write_is_never_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        let bytes = vec![b'x'; 100_000];
        let d = Digest::sha256_of(&bytes);
        // A dead writer's half file, by the name this process would use.
        let stale = dir.path().join(format!(".tmp-{}-x", std::process::id()));
        std::fs::write(&stale, &bytes[..10]).unwrap();
        assert_eq!(c.read(&d), None);
        // Readers racing the writer see nothing or the whole entry.
        let c = Arc::new(c);
        let reader = {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut hits = 0;
                for _ in 0..2000 {
                    if let Some(b) = c.read(&d) {
                        assert_eq!(b.len(), 100_000);
                        hits += 1;
                    }
                }
                hits
            })
        };
        for _ in 0..20 {
            c.keep(&d, bytes.clone());
        }
        c.flush();
        reader.join().unwrap();
        assert_eq!(c.read(&d), Some(bytes));
        // Only the entry and the stale file: no temporary file is left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                stale.file_name().unwrap().to_string_lossy().into_owned(),
                d.to_string()
            ]
        );
    }

    /// The writer runs apart from the readers: a keep returns before the
    /// entry is written, and dropping the cache waits for every queued
    /// write, so what one tool read is there for the next.
    #[test]
    fn dropping_the_cache_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<(Digest, Vec<u8>)> = (0..(WRITE_QUEUE as u32 + 100))
            .map(|i| {
                let b = i.to_le_bytes().to_vec();
                (Digest::sha256_of(&b), b)
            })
            .collect();
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        for (d, b) in &items {
            c.keep(d, b.clone());
        }
        drop(c);
        let c = ManifestCache::new(dir.path(), DEFAULT_BOUND);
        for (d, b) in &items {
            assert_eq!(c.read(d).as_ref(), Some(b));
        }
    }

    /// Past its bound the cache drops the entries used longest ago, down
    /// to 90% of the bound; a hit makes an entry recent.
    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let c = ManifestCache::new(dir.path(), 1000);
        let items: Vec<(Digest, Vec<u8>)> = (0..5)
            .map(|i| {
                let b = vec![b'a' + i as u8; 300];
                (Digest::sha256_of(&b), b)
            })
            .collect();
        let age = |d: &Digest, secs: u64| {
            let f = std::fs::File::options().append(true).open(c.file(d)).unwrap();
            f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs))
                .unwrap();
        };
        for (i, (d, b)) in items.iter().take(3).enumerate() {
            c.keep(d, b.clone());
            c.flush();
            age(d, 100 - i as u64 * 10);
        }
        // The oldest, read now, becomes the newest.
        assert!(c.read(&items[0].0).is_some());
        c.flush();
        // 1,200 bytes > 1,000: down to 900 by dropping the oldest (item 1).
        c.keep(&items[3].0, items[3].1.clone());
        c.flush();
        let present: Vec<bool> = items.iter().map(|(d, _)| c.file(d).exists()).collect();
        assert_eq!(present, [true, false, true, true, false]);
        // A new cache on a directory over its bound evicts at once.
        let small = ManifestCache::new(dir.path(), 600);
        let left = items.iter().filter(|(d, _)| small.file(d).exists()).count();
        assert_eq!(left, 1);
    }
}
