//! Whole-store checks that come before any tool trusts what it lists.
//!
//! A blob store that is empty or missing while repositories still name
//! manifests and layers is what an unmounted volume or a wrong ROOT looks
//! like: every manifest would read as missing and every `_layers` link as
//! dangling, and a GC would "collect" the whole registry. reg-refs,
//! reg-orphans and reg-rm refuse to work on such a tree.
//!
//! [`Store::root_id`] names the storage root in a form that survives
//! `--config` and symbolic links in the path given, so that a list made on
//! one root is refused on another. On object storage it is the backend's
//! own name for it: bucket, prefix and endpoint.

use crate::error::{Error, Result};
use crate::layout::{paths, Store};

/// The words every refusal of an empty blob store carries.
pub const EMPTY_BLOB_STORE: &str = "blob store is empty or missing";

impl Store {
    /// The storage root as a canonical path (the `v2` directory with every
    /// symbolic link in its path resolved).
    pub fn root_id(&self) -> String {
        self.backend().id()
    }

    /// Whether `other` (a [`Store::root_id`] from some tool's trailer) names
    /// this storage root: the same canonical path, or a path to the same
    /// directory (a bind mount).
    pub fn is_root(&self, other: &str) -> bool {
        self.backend().is_root(other)
    }

    /// Refuses a store whose `blobs/` holds no blob while a repository holds
    /// tags, revisions or `_layers` links. An empty registry passes.
    pub fn check_blob_store(&self) -> Result<()> {
        let prefixes = self.blob_prefixes();
        for p in &prefixes.items {
            if !self.blob_digests_in(p).items.is_empty() {
                return Ok(());
            }
        }
        if let Some(e) = prefixes.errors.into_iter().next() {
            // Cannot tell: the walk would stop on this anyway.
            return Err(e);
        }
        let repos = self.repositories();
        for repo in &repos.items {
            if self.names_content(repo)? {
                return Err(Error::other(
                    self.display(paths::BLOBS),
                    format!(
                        "{EMPTY_BLOB_STORE}, but repository {repo} (and maybe others) names manifests \
                         or layers: an unmounted volume or the wrong ROOT? Nothing was done"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether `repo` has a tag, a revision directory or a `_layers` link
    /// directory (anything that names a blob).
    fn names_content(&self, repo: &str) -> Result<bool> {
        fn listed<T>(l: crate::layout::Listing<T>) -> Result<bool> {
            match l.errors.into_iter().next() {
                Some(e) if l.items.is_empty() => Err(e),
                _ => Ok(!l.items.is_empty()),
            }
        }
        Ok(listed(self.tag_names(repo))?
            || listed(self.revision_digests(repo))?
            || listed(self.layer_link_digests(repo))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;
    use std::fs;
    use std::path::Path;

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    #[test]
    fn an_empty_blob_store_under_named_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let s = Store::fs(v2);
        // Nothing at all: an empty registry.
        s.check_blob_store().unwrap();
        // Only an upload: nothing names a blob yet.
        fs::create_dir_all(v2.join("repositories/a/_uploads/0000")).unwrap();
        s.check_blob_store().unwrap();
        let d = Digest::sha256_of(b"m");
        for (rel, content) in [
            (paths::tag_current("a", "v1"), d.to_string()),
            (paths::revision_link("a", &d), d.to_string()),
            (paths::layer_link("a", &d), d.to_string()),
        ] {
            let t = tempfile::tempdir().unwrap();
            put(t.path(), &rel, &content);
            let s = Store::fs(t.path());
            let err = s.check_blob_store().unwrap_err().to_string();
            assert!(err.contains(EMPTY_BLOB_STORE), "{rel}: {err}");
            assert!(err.contains("repository a"), "{err}");
            // An empty blobs/ directory (an unmounted mount point) too.
            fs::create_dir_all(t.path().join("blobs/sha256/ab")).unwrap();
            assert!(s.check_blob_store().is_err(), "{rel}");
            // One stored blob and it passes.
            put(t.path(), &paths::blob_data(&d), "m");
            s.check_blob_store().unwrap();
        }
    }

    #[test]
    fn the_root_is_recognised_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        fs::create_dir_all(&v2).unwrap();
        std::os::unix::fs::symlink(&v2, dir.path().join("alias")).unwrap();
        let a = Store::fs(&v2);
        let b = Store::fs(dir.path().join("alias"));
        assert_eq!(a.root_id(), b.root_id());
        assert!(b.is_root(&a.root_id()));
        let other = dir.path().join("other");
        fs::create_dir_all(&other).unwrap();
        assert!(!Store::fs(&other).is_root(&a.root_id()));
        assert!(!a.is_root("/nonexistent/v2"));
    }
}
