//! The mutations of the [`Store`]: whole keys and prefixes deleted, moved
//! to the trash, links written back. Every change reg-rm makes goes through
//! these.

use crate::digest::Digest;
use crate::error::Result;

use crate::storage::Scanned;

use super::{paths, Store};

/// What a deleter needs besides the inventory: whole keys and prefixes.
/// Every change reg-rm makes goes through these.
impl Store {
    /// Metadata of `rel` (a file, or a directory on the filesystem); `None`
    /// if absent.
    pub fn meta(&self, rel: &str) -> Result<Option<crate::storage::Meta>> {
        self.backend.stat(rel)
    }

    /// Whether repository `repo` still has its own `_manifests`, `_layers`
    /// or `_uploads` (a nested repository beside them does not count).
    pub fn has_own_dirs(&self, repo: &str) -> Result<bool> {
        let mut own = false;
        let dir = paths::repo(repo);
        self.scan(&dir, &|_, _| true, false, &mut |item| {
            if let Scanned::Prefix(key) = item {
                own |= matches!(&key[dir.len() + 1..], "_manifests" | "_layers" | "_uploads");
            }
        })?;
        Ok(own)
    }

    /// The total size of the objects under `rel` (or of `rel` itself),
    /// leaving out what `skip` names (and what is below it); `None` if
    /// nothing is there. Symbolic links and the like count nothing.
    pub fn tree_bytes(&self, rel: &str, skip: &(dyn Fn(&str) -> bool + Sync)) -> Result<Option<u64>> {
        let Some(meta) = self.backend.stat(rel)? else {
            return Ok(None);
        };
        if !meta.is_dir {
            return Ok(Some(meta.size));
        }
        let mut total = 0;
        let stop = |child: &str, _: usize| skip(&format!("{rel}/{child}"));
        self.scan(rel, &stop, true, &mut |item| {
            if let Scanned::Object { meta: Some(m), .. } = item {
                total += m.size;
            }
        })?;
        Ok(Some(total))
    }

    /// The keys of the objects under `rel` (or `rel` itself if it is one),
    /// to delete in a batch; empty if nothing is there.
    pub fn keys_under(&self, rel: &str) -> Result<Vec<String>> {
        match self.backend.stat(rel)? {
            None => Ok(Vec::new()),
            Some(m) if !m.is_dir => Ok(vec![rel.to_string()]),
            Some(_) => {
                let mut keys = Vec::new();
                self.scan(rel, &|_, _| false, false, &mut |item| {
                    if let Scanned::Object { key, .. } = item {
                        keys.push(key);
                    }
                })?;
                Ok(keys)
            }
        }
    }

    /// Deletes `rel` and everything under it; false if it was gone.
    pub fn delete(&self, rel: &str) -> Result<bool> {
        match self.backend.stat(rel)? {
            None => Ok(false),
            Some(m) if m.is_dir => self.backend.delete_prefix(rel),
            Some(_) => self.backend.delete(rel),
        }
    }

    /// Moves `rel` into `trash` (same relative path); false if it was gone.
    pub fn trash(&self, rel: &str, trash: &std::path::Path) -> Result<bool> {
        match self.backend.trash() {
            Some(t) => t.move_to_trash(rel, trash),
            None => Err(crate::storage::no_trash(trash)),
        }
    }

    /// Checks that `rel` could be deleted (for dry runs).
    pub fn check_removable(&self, rel: &str) -> Result<()> {
        self.backend.check_removable(rel)
    }

    /// Deletes directory `rel` if it is empty; false if absent or not empty.
    pub fn remove_empty_dir(&self, rel: &str) -> Result<bool> {
        self.backend.dirs().map_or(Ok(false), |d| d.remove_empty_dir(rel))
    }

    /// Removes the empty directories below `rel`, deepest first, and `rel`
    /// itself if it ends up empty; never a file (see
    /// [`crate::storage::Directories::remove_empty_dirs`]); nothing on
    /// object storage, which has no directories.
    pub fn remove_empty_dirs(&self, rel: &str) -> Result<u64> {
        self.backend.dirs().map_or(Ok(0), |d| d.remove_empty_dirs(rel))
    }

    /// Writes link file `rel` naming `d`, unless it exists (see
    /// [`crate::storage::Backend::write_new`]).
    pub fn write_link(&self, rel: &str, d: &Digest) -> Result<bool> {
        self.backend.write_new(rel, d.to_string().as_bytes())
    }

    /// Writes blob `d`'s data, unless data is there (see
    /// [`crate::storage::Backend::write_new`]): reg-rm's copy of a manifest
    /// pushed again while it was deleted.
    pub fn write_blob_back(&self, d: &Digest, bytes: &[u8]) -> Result<bool> {
        self.backend.write_new(&paths::blob_data(d), bytes)
    }

    /// Checks and makes `trash` ready to move into (see
    /// [`crate::storage::Trash::prepare_trash`]); refused where the backend
    /// has no trash (object storage).
    pub fn prepare_trash(&self, trash: &std::path::Path) -> Result<()> {
        match self.backend.trash() {
            Some(t) => t.prepare_trash(trash),
            None => Err(crate::storage::no_trash(trash)),
        }
    }
}
