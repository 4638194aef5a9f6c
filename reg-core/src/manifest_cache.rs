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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::digest::Digest;

/// The default bound on what the cache holds: 4 GiB.
pub const DEFAULT_BOUND: u64 = 4 << 30;

/// Where the cache lives by default: `$XDG_CACHE_HOME/reg-tools/manifests`,
/// else `~/.cache/reg-tools/manifests`; `None` when neither is set.
pub fn default_dir(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = nonempty("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("reg-tools").join("manifests"))
}

/// A directory of manifests by digest, bounded in size.
#[derive(Debug)]
pub struct ManifestCache {
    dir: PathBuf,
    bound: u64,
    /// Bytes written since the last look at the whole directory, plus what
    /// it held then.
    held: AtomicU64,
    /// Held while evicting, so that threads do not evict at once.
    evicting: Mutex<()>,
    /// The directory was made (or found) once: not asked for again.
    made: AtomicBool,
}

impl ManifestCache {
    /// The cache in `dir` (made when first written), holding at most about
    /// `bound` bytes; evicts at once if it holds more.
    pub fn new(dir: impl Into<PathBuf>, bound: u64) -> ManifestCache {
        let c = ManifestCache {
            dir: dir.into(),
            bound,
            held: AtomicU64::new(0),
            evicting: Mutex::new(()),
            made: AtomicBool::new(false),
        };
        c.evict();
        c
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.to_string())
    }

    /// The bytes kept for `d`, only if they hash to `d`. An entry that does
    /// not is removed, and `None` returned: the caller reads the store.
    pub fn read(&self, d: &Digest) -> Option<Vec<u8>> {
        let f = self.file(d);
        let bytes = std::fs::read(&f).ok()?;
        if !d.matches(&bytes) {
            let _ = std::fs::remove_file(&f);
            return None;
        }
        // Used now: the last to be evicted.
        if let Ok(file) = std::fs::File::options().append(true).open(&f) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Keeps `bytes` as `d`'s (only if they hash to `d`).
    pub fn keep(&self, d: &Digest, bytes: &[u8]) {
        if !d.matches(bytes) {
            return;
        }
        let f = self.file(d);
        if !self.made.load(Ordering::Relaxed) && std::fs::create_dir_all(&self.dir).is_ok() {
            self.made.store(true, Ordering::Relaxed);
        }
        let tmp = self.dir.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &f).is_err() {
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
        c.keep(&d, b"manifest");
        assert_eq!(c.read(&d).as_deref(), Some(&b"manifest"[..]));
        std::fs::write(c.file(&d), b"manifesT").unwrap();
        assert_eq!(c.read(&d), None);
        assert!(!c.file(&d).exists());
        // Bytes that are not the digest's are never kept.
        c.keep(&d, b"other");
        assert!(!c.file(&d).exists());
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
            c.keep(d, b);
            age(d, 100 - i as u64 * 10);
        }
        // The oldest, read now, becomes the newest.
        assert!(c.read(&items[0].0).is_some());
        // 1,200 bytes > 1,000: down to 900 by dropping the oldest (item 1).
        c.keep(&items[3].0, &items[3].1);
        let present: Vec<bool> = items.iter().map(|(d, _)| c.file(d).exists()).collect();
        assert_eq!(present, [true, false, true, true, false]);
        // A new cache on a directory over its bound evicts at once.
        let small = ManifestCache::new(dir.path(), 600);
        let left = items.iter().filter(|(d, _)| small.file(d).exists()).count();
        assert_eq!(left, 1);
    }
}
