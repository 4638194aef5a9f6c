//! Storage access: the one place that touches the filesystem.
//!
//! Everything above this module names objects by paths relative to the
//! registry's `docker/registry/v2` directory, `/`-separated, and built only from
//! validated parts (digests, repository names, tags). A [`Backend`] turns them
//! into operations. [`Fs`] is the filesystem backend; an object-store backend
//! implements the same trait.
//!
//! Deletion is guarded here too: [`Backend::remove_file`] and friends refuse a
//! path with `..`, an absolute path, or a path whose components include a
//! symbolic link, so nothing outside the root can be touched through a link.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, ErrorKind, Result};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Dir,
    File,
    /// Anything else (socket, fifo, dangling symlink).
    Other,
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub ty: EntryType,
    /// The entry is a symbolic link (`ty` says what it points at).
    pub symlink: bool,
}

/// Size and modification time of a file.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub size: u64,
    pub mtime: SystemTime,
    pub is_dir: bool,
}

/// Storage operations, on paths relative to the `v2` directory.
///
/// Absent objects are `Ok(None)` / `Ok(false)`, not errors: the registry tree
/// legitimately has holes (a revision directory whose link was deleted).
pub trait Backend: Send + Sync {
    /// How to show `rel` to a person: the full path.
    fn display(&self, rel: &str) -> PathBuf;

    /// The entries of directory `rel`, unsorted; `None` if it does not exist.
    fn list(&self, rel: &str) -> Result<Option<Vec<Entry>>>;

    /// Size and mtime of `rel`; `None` if it does not exist.
    fn stat(&self, rel: &str) -> Result<Option<Meta>>;

    /// The whole content of `rel`, at most `limit` bytes (more is an error);
    /// `None` if it does not exist.
    fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>>;

    /// Like [`Backend::read`], with the object's metadata. Backends that can
    /// answer both from one open (the filesystem: `fstat` on the open file)
    /// override this; link files are read this way by the millions.
    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        let Some(bytes) = self.read(rel, limit)? else {
            return Ok(None);
        };
        Ok(self.stat(rel)?.map(|m| (bytes, m)))
    }

    /// A reader over `rel`, for content too large to read at once.
    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>>;

    /// Deletes file `rel`; false if it was already gone.
    fn remove_file(&self, rel: &str) -> Result<bool>;

    /// Deletes directory `rel` and everything in it; false if already gone.
    fn remove_dir_all(&self, rel: &str) -> Result<bool>;

    /// Deletes directory `rel` if it is empty; false if absent or not empty.
    fn remove_empty_dir(&self, rel: &str) -> Result<bool>;

    /// Moves `rel` (file or directory) to `trash/rel`, creating parents.
    /// False if `rel` was already gone.
    fn move_to_trash(&self, rel: &str, trash: &Path) -> Result<bool>;

    /// Checks, without changing anything, that `rel` could be removed: the
    /// same refusals as [`Backend::remove_dir_all`] (for dry runs).
    fn check_removable(&self, rel: &str) -> Result<()> {
        let _ = rel;
        Ok(())
    }

    /// Makes `trash` ready for [`Backend::move_to_trash`]: creates it and
    /// checks that moving there is a rename (same filesystem) and that it is
    /// not inside the storage root. Backends without a trash refuse.
    fn prepare_trash(&self, trash: &Path) -> Result<()> {
        Err(Error::other(
            trash,
            "this storage backend cannot move to a trash directory",
        ))
    }
}

/// The filesystem backend, rooted at a `v2` directory.
#[derive(Debug, Clone)]
pub struct Fs {
    v2: PathBuf,
}

impl Fs {
    /// A backend for the `v2` directory `v2` (see [`crate::root`] to find it).
    pub fn new(v2: impl Into<PathBuf>) -> Fs {
        Fs { v2: v2.into() }
    }

    pub fn v2(&self) -> &Path {
        &self.v2
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.v2.clone()
        } else {
            self.v2.join(rel)
        }
    }

    /// Checks that `rel` is a plain relative path and that no component of it,
    /// the last included, is a symbolic link. Used before every change.
    fn check_mutable(&self, rel: &str) -> Result<PathBuf> {
        let refuse = |why: &str| Err(Error::other(self.path(rel), format!("refusing to change: {why}")));
        if rel.is_empty() {
            return refuse("the storage root itself");
        }
        for c in Path::new(rel).components() {
            if !matches!(c, Component::Normal(_)) {
                return refuse("not a plain path below the storage root");
            }
        }
        let mut p = self.v2.clone();
        for c in rel.split('/') {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::other(
                        &p,
                        format!(
                            "refusing to change {}: path goes through a symbolic link",
                            self.path(rel).display()
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(self.path(rel))
    }
}

fn not_found<T>(r: io::Result<T>, path: &Path) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Backend for Fs {
    fn display(&self, rel: &str) -> PathBuf {
        self.path(rel)
    }

    fn list(&self, rel: &str) -> Result<Option<Vec<Entry>>> {
        let path = self.path(rel);
        let Some(rd) = not_found(fs::read_dir(&path), &path)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&path, e))?;
            let name = ent.file_name().into_string().map_err(|n| {
                Error::new(
                    path.join(&n),
                    ErrorKind::BadName("name is not valid UTF-8".into()),
                )
            })?;
            let ft = ent.file_type().map_err(|e| Error::io(ent.path(), e))?;
            let symlink = ft.is_symlink();
            let ty = if symlink {
                // Follow the link to say what it is; a dangling one is Other.
                match fs::metadata(ent.path()) {
                    Ok(m) if m.is_dir() => EntryType::Dir,
                    Ok(m) if m.is_file() => EntryType::File,
                    _ => EntryType::Other,
                }
            } else if ft.is_dir() {
                EntryType::Dir
            } else if ft.is_file() {
                EntryType::File
            } else {
                EntryType::Other
            };
            out.push(Entry { name, ty, symlink });
        }
        Ok(Some(out))
    }

    fn stat(&self, rel: &str) -> Result<Option<Meta>> {
        let path = self.path(rel);
        let Some(m) = not_found(fs::metadata(&path), &path)? else {
            return Ok(None);
        };
        let mtime = m.modified().map_err(|e| Error::io(&path, e))?;
        Ok(Some(Meta {
            size: m.len(),
            mtime,
            is_dir: m.is_dir(),
        }))
    }

    fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read_with_meta(rel, limit)?.map(|(bytes, _)| bytes))
    }

    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        let path = self.path(rel);
        let Some(f) = not_found(fs::File::open(&path), &path)? else {
            return Ok(None);
        };
        let m = f.metadata().map_err(|e| Error::io(&path, e))?;
        let meta = Meta {
            size: m.len(),
            mtime: m.modified().map_err(|e| Error::io(&path, e))?,
            is_dir: m.is_dir(),
        };
        if meta.size > limit {
            return Err(Error::other(path, format!("larger than {limit} bytes")));
        }
        // Sized from fstat, so a small file takes one read plus the one
        // that sees its end (read_to_end's default growth takes several).
        let mut buf = Vec::with_capacity(meta.size as usize + 1);
        f.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        if buf.len() as u64 > limit {
            return Err(Error::other(path, format!("larger than {limit} bytes")));
        }
        Ok(Some((buf, meta)))
    }

    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let path = self.path(rel);
        let f = not_found(fs::File::open(&path), &path)?;
        Ok(f.map(|f| Box::new(f) as Box<dyn Read + Send>))
    }

    fn remove_file(&self, rel: &str) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        Ok(not_found(fs::remove_file(&path), &path)?.is_some())
    }

    fn remove_dir_all(&self, rel: &str) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        Ok(not_found(fs::remove_dir_all(&path), &path)?.is_some())
    }

    fn remove_empty_dir(&self, rel: &str) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        match fs::remove_dir(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(false),
            // Some systems say "exists" for a non-empty directory.
            Err(e) if e.raw_os_error() == Some(39) || e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn move_to_trash(&self, rel: &str, trash: &Path) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        if fs::symlink_metadata(&path).is_err() {
            return Ok(false);
        }
        let dest = trash.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        if dest.exists() {
            // A previous move of the same object: keep the newer copy in the
            // tree's place by replacing the file; directories are merged by
            // moving their entries one by one.
            if dest.is_dir() && path.is_dir() {
                for ent in fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
                    let ent = ent.map_err(|e| Error::io(&path, e))?;
                    let name = ent.file_name().to_string_lossy().into_owned();
                    self.move_to_trash(&format!("{rel}/{name}"), trash)?;
                }
                fs::remove_dir(&path).map_err(|e| Error::io(&path, e))?;
                return Ok(true);
            }
        }
        fs::rename(&path, &dest).map_err(|e| {
            if e.raw_os_error() == Some(18) {
                // EXDEV
                Error::other(
                    &path,
                    format!(
                        "cannot move to {}: the trash directory must be on the same filesystem as the storage root",
                        dest.display()
                    ),
                )
            } else {
                Error::io(&dest, e)
            }
        })?;
        Ok(true)
    }

    fn check_removable(&self, rel: &str) -> Result<()> {
        self.check_mutable(rel).map(|_| ())
    }

    fn prepare_trash(&self, trash: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let v2 = self.v2.canonicalize().map_err(|e| Error::io(&self.v2, e))?;
        // Where `trash` is (or would be), resolved before creating anything.
        let mut existing = trash.to_path_buf();
        let mut rest = Vec::new();
        while fs::symlink_metadata(&existing).is_err() {
            match (existing.file_name(), existing.parent()) {
                (Some(n), Some(p)) => {
                    rest.push(n.to_os_string());
                    existing = if p.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        p.to_path_buf()
                    };
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().map_err(|e| Error::io(&existing, e))?;
        resolved.extend(rest.iter().rev());
        if resolved.starts_with(&v2) {
            return Err(Error::other(
                trash,
                format!(
                    "the trash directory must be outside the storage root {}",
                    v2.display()
                ),
            ));
        }
        fs::create_dir_all(trash).map_err(|e| Error::io(trash, e))?;
        let t = trash.canonicalize().map_err(|e| Error::io(trash, e))?;
        let tdev = fs::metadata(&t).map_err(|e| Error::io(&t, e))?.dev();
        let vdev = fs::metadata(&v2).map_err(|e| Error::io(&v2, e))?.dev();
        if tdev != vdev {
            return Err(Error::other(
                trash,
                format!(
                    "the trash directory must be on the same filesystem as the storage root {} \
                     (moving is a rename; copying across filesystems is not done)",
                    v2.display()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_out_of_root_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let outside = dir.path().join("outside");
        fs::create_dir_all(v2.join("blobs")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, v2.join("blobs/evil")).unwrap();
        let fs_ = Fs::new(&v2);
        for rel in [
            "../outside/precious",
            "/etc/passwd",
            "",
            "blobs/../../outside/precious",
            "blobs/evil/precious",
        ] {
            assert!(fs_.remove_file(rel).is_err(), "{rel} was not refused");
        }
        assert!(outside.join("precious").exists());
        assert!(fs_.remove_dir_all("blobs/evil").is_err());
        assert!(outside.join("precious").exists());
    }

    #[test]
    fn absent_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fs_ = Fs::new(dir.path());
        assert!(fs_.list("nope").unwrap().is_none());
        assert!(fs_.stat("nope").unwrap().is_none());
        assert!(fs_.read("nope", 10).unwrap().is_none());
        assert!(!fs_.remove_file("nope").unwrap());
        assert!(!fs_.remove_empty_dir("nope").unwrap());
    }

    #[test]
    fn read_limit_and_trash() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        fs::create_dir_all(v2.join("a/b")).unwrap();
        fs::write(v2.join("a/b/f"), b"hello").unwrap();
        let fs_ = Fs::new(&v2);
        assert!(fs_.read("a/b/f", 4).is_err());
        assert_eq!(fs_.read("a/b/f", 5).unwrap().unwrap(), b"hello");
        let trash = dir.path().join("trash");
        assert!(fs_.move_to_trash("a/b/f", &trash).unwrap());
        assert!(!v2.join("a/b/f").exists());
        assert_eq!(fs::read(trash.join("a/b/f")).unwrap(), b"hello");
        assert!(!fs_.move_to_trash("a/b/f", &trash).unwrap());
        assert!(fs_.remove_empty_dir("a/b").unwrap());
        assert!(!fs_.remove_empty_dir("a/nonempty").unwrap());
    }

    #[test]
    fn trash_must_be_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        fs::create_dir_all(v2.join("blobs")).unwrap();
        let fs_ = Fs::new(&v2);
        assert!(fs_.prepare_trash(&dir.path().join("trash")).is_ok());
        assert!(dir.path().join("trash").is_dir());
        let err = fs_.prepare_trash(&v2.join("blobs/trash")).unwrap_err();
        assert!(err.to_string().contains("outside the storage root"), "{err}");
        assert!(fs_.prepare_trash(&v2).is_err());
    }

    #[test]
    fn removal_does_not_follow_symlinks_inside_a_removed_directory() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let outside = dir.path().join("outside");
        fs::create_dir_all(v2.join("blobs/x")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, v2.join("blobs/x/link")).unwrap();
        let fs_ = Fs::new(&v2);
        assert!(fs_.remove_dir_all("blobs/x").unwrap());
        assert!(!v2.join("blobs/x").exists());
        assert!(outside.join("precious").exists());
    }
}
