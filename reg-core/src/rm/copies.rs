//! Copies of the manifests the blob phase deletes, kept until the run's
//! last look.
//!
//! A manifest PUT does not upload through the repository: the registry
//! stats the blob globally and, finding the data, writes only the revision
//! link (distribution's `blobStore.Put`). A push of a manifest that this run
//! is about to delete, landing after the run's second look and before the
//! data goes, leaves a revision (and a tag) naming data that is gone. So the
//! data of every doomed blob that could be a manifest (at most
//! [`MANIFEST_LIMIT`] bytes, a JSON object) is copied into an unlinked
//! temporary file before it is deleted, and after the blob phase a last
//! look writes back the data of any whose digest a link names again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use crate::digest::Digest;
use crate::layout::{Store, MANIFEST_LIMIT};

/// The spool: an unlinked temporary file and where each copy is in it.
pub(super) struct Copies {
    inner: Mutex<Spool>,
}

struct Spool {
    file: File,
    end: u64,
    at: BTreeMap<Digest, (u64, usize)>,
}

impl Copies {
    /// A spool in the temporary directory (`TMPDIR`), unlinked at once so
    /// that nothing is left behind whatever ends the run.
    pub(super) fn new() -> std::io::Result<Copies> {
        let dir = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("reg-rm-copies-{}-{nanos}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Copies {
            inner: Mutex::new(Spool {
                file,
                end: 0,
                at: BTreeMap::new(),
            }),
        })
    }

    /// Whether a blob of `size` bytes could be a manifest the registry
    /// accepts (it refuses larger ones), so that its data is copied first.
    pub(super) fn wanted(size: u64) -> bool {
        size <= MANIFEST_LIMIT
    }

    /// Copies blob `d` from `store` if it reads as a JSON object; false if
    /// it is not one (nothing to copy). An error means no copy was made.
    pub(super) fn copy(&self, store: &Store, d: Digest) -> crate::Result<bool> {
        let Some(bytes) = store.read_blob(&d, MANIFEST_LIMIT)? else {
            return Ok(false);
        };
        // Go's JSON decoder skips leading white space, nothing else.
        let first = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Ok(false);
        }
        let mut s = self.inner.lock().expect("copies");
        let at = s.end;
        s.file
            .write_all(&bytes)
            .map_err(|e| crate::Error::io(std::env::temp_dir(), e))?;
        s.end += bytes.len() as u64;
        s.at.insert(d, (at, bytes.len()));
        Ok(true)
    }

    /// Whether `d` was copied.
    pub(super) fn has(&self, d: &Digest) -> bool {
        self.inner.lock().expect("copies").at.contains_key(d)
    }

    /// The copy of `d`, read back.
    pub(super) fn get(&self, d: &Digest) -> std::io::Result<Option<Vec<u8>>> {
        let s = self.inner.lock().expect("copies");
        let Some(&(at, len)) = s.at.get(d) else {
            return Ok(None);
        };
        let mut buf = vec![0; len];
        s.file.read_exact_at(&mut buf, at)?;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blob;

    #[test]
    fn json_objects_are_copied_and_read_back_other_blobs_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let m = blob(v2, b"\n {\"schemaVersion\":2}");
        let layer = blob(v2, b"\x1f\x8b not json");
        let store = Store::fs(v2);
        let c = Copies::new().unwrap();
        assert!(c.copy(&store, m).unwrap());
        assert!(!c.copy(&store, layer).unwrap());
        assert!(c.has(&m) && !c.has(&layer));
        assert_eq!(c.get(&m).unwrap().unwrap(), b"\n {\"schemaVersion\":2}");
        assert_eq!(c.get(&layer).unwrap(), None);
        // Absent: nothing to copy.
        assert!(!c.copy(&store, Digest::sha256_of(b"never stored")).unwrap());
        assert!(Copies::wanted(MANIFEST_LIMIT) && !Copies::wanted(MANIFEST_LIMIT + 1));
    }
}
