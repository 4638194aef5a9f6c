//! Blob data set aside, not deleted, until the run's last look (the
//! filesystem; object storage has [`super::copies`]).
//!
//! A push can make a doomed blob live after the run's second look: an
//! upload of it finds the data still there (distribution's blob writer
//! stats the path and, finding it, writes only the repository's `_layers`
//! link), or a manifest PUT checked its blobs before their links went. So
//! the blob phase renames each doomed blob's directory into
//! `v2/reg-rm-held/<run>/` (into the trash, with `--trash`), keeping its
//! path; after the settle pause the last look moves back every one that a
//! link names again, and the rest goes with the directory.
//!
//! A run holds a lock on its directory. A run that finds another's
//! unlocked (that run died) moves everything in it back first: garbage put
//! back is collected by the next run, and data held by a dead run is never
//! lost.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::digest::Digest;
use crate::layout::{paths, Store};
use crate::messages::Messages;

/// The directory in `v2/` that holds each running reg-rm's blobs set aside.
pub const HELD: &str = "reg-rm-held";

/// The lock file in a run's directory.
const LOCK: &str = "lock";

/// Where this run's doomed blob directories went.
pub(super) struct Aside {
    dir: PathBuf,
    /// This run's own directory, removed at the end (not the trash).
    own: bool,
    _lock: Option<File>,
}

impl Aside {
    /// A new directory of this run's, locked, in `v2/reg-rm-held/`.
    pub(super) fn hold(v2: &Path) -> io::Result<Aside> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = v2.join(HELD).join(format!("{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let lock = File::create(dir.join(LOCK))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
        Ok(Aside {
            dir,
            own: true,
            _lock: Some(lock),
        })
    }

    /// The trash (`--trash`): blobs moved there can come back the same way.
    pub(super) fn trash(dir: &Path) -> Aside {
        Aside {
            dir: dir.to_path_buf(),
            own: false,
            _lock: None,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether blob `d`'s directory is here.
    pub(super) fn has(&self, d: &Digest) -> bool {
        std::fs::symlink_metadata(self.dir.join(paths::blob_dir(d))).is_ok()
    }

    /// Moves blob `d` back into `blobs/`; false if data is there again
    /// (uploaded anew meanwhile) or it is not here.
    pub(super) fn put_back(&self, store: &Store, d: &Digest) -> crate::Result<bool> {
        match store.backend().trash() {
            Some(t) => t.move_back(&paths::blob_dir(d), &self.dir),
            None => Ok(false),
        }
    }

    /// Deletes this run's directory and what is left in it (nothing for
    /// the trash), then `reg-rm-held/` if no other run uses it.
    pub(super) fn release(self) -> crate::Result<()> {
        if !self.own {
            return Ok(());
        }
        std::fs::remove_dir_all(&self.dir).map_err(|e| crate::Error::io(&self.dir, e))?;
        if let Some(held) = self.dir.parent() {
            // Another run's directory in it: it stays.
            let _ = std::fs::remove_dir(held);
        }
        Ok(())
    }
}

/// Moves back what runs that died left set aside in `v2/reg-rm-held/` (a
/// directory nobody holds the lock of), then removes their directories.
/// Errors are reported; a directory that could not be emptied stays.
pub(super) fn recover(store: &Store, msgs: &Messages) {
    let Some(t) = store.backend().trash() else {
        return;
    };
    let held = t.v2().join(HELD);
    let Ok(entries) = std::fs::read_dir(&held) else {
        return;
    };
    for ent in entries.flatten() {
        let dir = ent.path();
        if !ent.file_type().is_ok_and(|f| f.is_dir()) {
            continue;
        }
        // Held by a run still going: its own business.
        let lock = match File::open(dir.join(LOCK)) {
            Ok(f) if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() => continue,
            Ok(f) => Some(f),
            Err(_) => None,
        };
        match put_back_all(store, &dir) {
            Ok(0) => {}
            Ok(n) => msgs.note(format!(
                "{}: moved {n} blob{} set aside by a run that did not finish back into blobs/",
                dir.display(),
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => {
                msgs.error(e);
                continue;
            }
        }
        drop(lock);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            msgs.error(crate::Error::io(&dir, e));
        }
    }
    let _ = std::fs::remove_dir(&held);
}

/// Moves every blob directory under `dir/blobs/<alg>/<xx>/` back; how many.
fn put_back_all(store: &Store, dir: &Path) -> crate::Result<u64> {
    let Some(t) = store.backend().trash() else {
        return Ok(0);
    };
    let mut n = 0;
    let read = |p: &Path| -> crate::Result<Vec<String>> {
        match std::fs::read_dir(p) {
            Ok(es) => es
                .map(|e| {
                    e.map(|e| e.file_name().to_string_lossy().into_owned())
                        .map_err(|e| crate::Error::io(p, e))
                })
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(crate::Error::io(p, e)),
        }
    };
    let blobs = dir.join(paths::BLOBS);
    for alg in read(&blobs)? {
        for xx in read(&blobs.join(&alg))? {
            for hex in read(&blobs.join(&alg).join(&xx))? {
                let rel = format!("{}/{alg}/{xx}/{hex}", paths::BLOBS);
                if t.move_back(&rel, dir)? {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blob;

    #[test]
    fn a_blob_set_aside_comes_back_unless_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let store = Store::fs(v2);
        let (a, b) = (blob(v2, b"one"), blob(v2, b"two"));
        let aside = Aside::hold(v2).unwrap();
        let t = store.backend().trash().unwrap();
        for d in [a, b] {
            assert!(t.move_to_trash(&paths::blob_dir(&d), aside.dir()).unwrap());
            assert!(aside.has(&d));
            assert!(store.blob_meta(&d).unwrap().is_none());
        }
        // `b` uploaded anew meanwhile: the registry's data stays.
        let again = blob(v2, b"two");
        assert_eq!(again, b);
        assert!(aside.put_back(&store, &a).unwrap());
        assert!(!aside.put_back(&store, &b).unwrap());
        assert_eq!(store.read_blob(&a, 10).unwrap().unwrap(), b"one");
        let held = aside.dir().to_path_buf();
        aside.release().unwrap();
        assert!(!held.exists() && !v2.join(HELD).exists());
    }

    #[test]
    fn what_a_dead_run_set_aside_goes_back_and_a_live_runs_stays() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let store = Store::fs(v2);
        let (a, b) = (blob(v2, b"dead run's"), blob(v2, b"live run's"));
        let t = store.backend().trash().unwrap();
        let dead = Aside::hold(v2).unwrap();
        let live = Aside::hold(v2).unwrap();
        assert!(t.move_to_trash(&paths::blob_dir(&a), dead.dir()).unwrap());
        assert!(t.move_to_trash(&paths::blob_dir(&b), live.dir()).unwrap());
        let dead_dir = dead.dir().to_path_buf();
        // The run dies: its lock goes with it, its directory stays.
        drop(dead);
        let msgs = Messages::new("reg-rm", true);
        recover(&store, &msgs);
        assert_eq!(store.read_blob(&a, 100).unwrap().unwrap(), b"dead run's");
        assert!(!dead_dir.exists());
        assert!(store.blob_meta(&b).unwrap().is_none() && live.has(&b));
        assert_eq!(msgs.errors(), 0);
    }
}
