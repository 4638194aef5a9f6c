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
//!
//! Each copy is found by the first eight bytes of its digest
//! ([`crate::digest::key`]), 24 bytes a copy in all (a map by whole digest
//! took about 80: 5.4 MB of a real run's peak at 1M objects, issue 18). A
//! copy is given back only if it hashes to the digest asked for, so two
//! digests sharing those bytes can cost a look, never a wrong copy.

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
    /// (key, offset, length) of each copy, in the order made until a
    /// lookup sorts them.
    at: Vec<(u64, u64, u32)>,
    sorted: bool,
}

impl Spool {
    /// Where the copies whose digest starts as `d`'s are.
    fn find(&mut self, d: &Digest) -> &[(u64, u64, u32)] {
        if !self.sorted {
            self.at.sort_unstable();
            self.at.shrink_to_fit();
            self.sorted = true;
        }
        let k = crate::digest::key(d);
        let lo = self.at.partition_point(|e| e.0 < k);
        let hi = lo + self.at[lo..].partition_point(|e| e.0 == k);
        &self.at[lo..hi]
    }
}

/// How much of a blob is read first to tell whether it could be a manifest.
const LOOK: u64 = 64 << 10;

/// Whether `bytes` start a JSON object, as Go's decoder reads one: white
/// space, then `{`. `None` when they are only white space.
fn json_object(bytes: &[u8]) -> Option<bool> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    Some(*first == b'{')
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
                at: Vec::new(),
                sorted: true,
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
    /// Its first [`LOOK`] bytes are read first: a layer is told by them
    /// (one ranged GET on object storage, not up to 4 MiB), and most
    /// manifests and configs are whole in them.
    pub(super) fn copy(&self, store: &Store, d: Digest) -> crate::Result<bool> {
        let rel = crate::layout::paths::blob_data(&d);
        let Some((start, size)) = store.backend().read_start(&rel, LOOK, MANIFEST_LIMIT)? else {
            return Ok(false);
        };
        let bytes = match json_object(&start) {
            Some(false) => return Ok(false),
            _ if start.len() as u64 == size => start,
            // A JSON object longer than the look, or only white space so far.
            _ => match store.read_blob(&d, MANIFEST_LIMIT)? {
                Some(bytes) => bytes,
                None => return Ok(false),
            },
        };
        if json_object(&bytes) != Some(true) {
            return Ok(false);
        }
        let mut s = self.inner.lock().expect("copies");
        let at = s.end;
        s.file
            .write_all(&bytes)
            .map_err(|e| crate::Error::io(std::env::temp_dir(), e))?;
        s.end += bytes.len() as u64;
        // At most MANIFEST_LIMIT bytes: a u32.
        s.at.push((crate::digest::key(&d), at, bytes.len() as u32));
        s.sorted = false;
        Ok(true)
    }

    /// Whether `d` may have been copied: true for every blob copied, and
    /// (a chance of 2^-64 a pair) for one that shares its first eight
    /// bytes, whose [`Copies::get`] is then `None`.
    pub(super) fn has(&self, d: &Digest) -> bool {
        !self.inner.lock().expect("copies").find(d).is_empty()
    }

    /// The copy of `d`, read back: data that hashes to `d`.
    pub(super) fn get(&self, d: &Digest) -> std::io::Result<Option<Vec<u8>>> {
        let mut s = self.inner.lock().expect("copies");
        let found = s.find(d).to_vec();
        for (_, at, len) in found {
            let mut buf = vec![0; len as usize];
            s.file.read_exact_at(&mut buf, at)?;
            if d.matches(&buf) {
                return Ok(Some(buf));
            }
        }
        Ok(None)
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

    /// Blobs longer than the first look: a JSON object is copied whole,
    /// also after more white space than the look holds; a layer is not,
    /// nor white space alone.
    #[test]
    fn blobs_longer_than_the_look_are_copied_whole_when_json_objects() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let store = Store::fs(v2);
        let c = Copies::new().unwrap();
        let long = LOOK as usize + 1000;
        let json = format!("{{\"a\":\"{}\"}}", "x".repeat(long)).into_bytes();
        let spaced = [vec![b' '; long], b"{}".to_vec()].concat();
        let layer = [b"\x1f\x8b".to_vec(), vec![b'{'; long]].concat();
        let blank = vec![b'\n'; long];
        for (bytes, copied) in [(&json, true), (&spaced, true), (&layer, false), (&blank, false)] {
            let d = blob(v2, bytes);
            assert_eq!(c.copy(&store, d).unwrap(), copied, "{} bytes", bytes.len());
            let back = c.get(&d).unwrap();
            assert_eq!(back.as_ref(), copied.then_some(bytes), "{} bytes", bytes.len());
        }
    }

    #[test]
    fn copies_are_found_by_their_whole_digest_among_those_sharing_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let store = Store::fs(v2);
        let c = Copies::new().unwrap();
        let ms: Vec<(Digest, String)> = (0..50)
            .map(|i| {
                let text = format!("{{\"n\":{i}}}");
                (blob(v2, text.as_bytes()), text)
            })
            .collect();
        // Copies made after a lookup are found too.
        for (i, (d, _)) in ms.iter().enumerate() {
            assert!(c.copy(&store, *d).unwrap());
            assert!(c.has(&ms[i / 2].0));
        }
        for (d, text) in &ms {
            assert_eq!(c.get(d).unwrap().unwrap(), text.as_bytes(), "{d}");
        }
        // A digest sharing a copy's first eight bytes, not its data: it
        // may have been copied, but no copy is its data.
        let d = ms[7].0.to_string();
        let last = if d.ends_with('0') { "1" } else { "0" };
        let twin: Digest = format!("{}{last}", &d[..d.len() - 1]).parse().unwrap();
        assert!(c.has(&twin));
        assert_eq!(c.get(&twin).unwrap(), None);
        assert!(!c.has(&Digest::sha256_of(b"{}")));
    }
}
