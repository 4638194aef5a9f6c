//! The filesystem backend: the one place that touches the filesystem.
//!
//! [`Fs`] is rooted at a registry's `v2` directory. Its scan walks
//! directories in parallel and stops where it is told, so that a link whose
//! name says everything is never opened; reads are one open and one
//! `fstat`.
//!
//! Deletion is guarded here too: [`Backend::delete`] and friends refuse a
//! path with `..`, an absolute path, or a path whose components include a
//! symbolic link, so nothing outside the root can be touched through a link.
//!
//! Nothing below the `v2` directory is followed or opened blindly: [`Fs`]
//! lists without following symbolic links, refuses a symbolic link met on
//! the way to a path (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`
//! where the kernel has it, `O_NOFOLLOW` on the last component otherwise),
//! and opens for reading only regular files, so a FIFO or a device left in
//! the tree can neither block a tool nor be opened at all.
//!
//! It is also the one home of the trash ([`Trash`]): `reg-rm --trash`
//! moves by renaming, so the trash must be outside the root and on its
//! filesystem.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::{Backend, Capabilities, Directories, Entry, EntryType, Meta, Scanned, Stop, Trash};
use crate::error::{Error, ErrorKind, Result};

/// The filesystem backend, rooted at a `v2` directory.
#[derive(Debug, Clone)]
pub struct Fs {
    /// The `v2` directory as given: how paths are shown.
    v2: PathBuf,
    /// The `v2` directory opened once (`O_PATH`), after resolving any
    /// symbolic link in its own path (the operator's choice). Everything
    /// below is reached relative to it. `None` if it could not be opened
    /// (it does not exist yet): then full paths are used.
    dir: Option<Arc<OwnedFd>>,
    /// Whether `openat2` works here; cleared on the first ENOSYS or EPERM
    /// (old kernels, seccomp filters), then `O_NOFOLLOW` on the last
    /// component is all the protection for reads by path.
    openat2: Arc<AtomicBool>,
    /// The newest modification time returned so far, in seconds since 1970
    /// (`i64::MIN`: none yet).
    newest: Arc<AtomicI64>,
}

/// What a [`FileType`] is, for "not a regular file but ..." messages.
fn describe(ty: FileType) -> &'static str {
    match ty {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "a file of unknown type",
    }
}

#[allow(clippy::unnecessary_cast)] // the field types differ between targets
fn meta_of(st: &Stat) -> Meta {
    let (secs, nanos) = (st.st_mtime as i64, (st.st_mtime_nsec as u32).min(999_999_999));
    let mtime = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nanos))
    };
    Meta {
        size: st.st_size as u64,
        mtime,
        is_dir: FileType::from_raw_mode(st.st_mode as _) == FileType::Directory,
    }
}

impl Fs {
    /// A backend for the `v2` directory `v2` (see [`crate::root`] to find it).
    /// `v2` itself may be (or lie below) a symbolic link: it is resolved
    /// once, here; links below it are not followed.
    pub fn new(v2: impl Into<PathBuf>) -> Fs {
        let v2 = v2.into();
        let real = v2.canonicalize().unwrap_or_else(|_| v2.clone());
        let dir = rustix::fs::open(
            &real,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(Arc::new);
        Fs {
            v2,
            dir,
            openat2: Arc::new(AtomicBool::new(true)),
            newest: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Keeps `m`'s mtime if it is the newest seen (a load, and a write only
    /// when it is: threads do not contend on it).
    fn saw(&self, m: Meta) -> Meta {
        let secs = crate::time::unix_secs(m.mtime);
        if secs > self.newest.load(Ordering::Relaxed) {
            self.newest.fetch_max(secs, Ordering::Relaxed);
        }
        m
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

    /// The directory to resolve `rel` from, and `rel` as given to it.
    fn at<'a>(&'a self, rel: &'a str) -> (BorrowedFd<'a>, PathBuf) {
        match &self.dir {
            Some(fd) => (fd.as_fd(), PathBuf::from(if rel.is_empty() { "." } else { rel })),
            None => (rustix::fs::CWD, self.path(rel)),
        }
    }

    /// Opens `rel` without following any symbolic link below `v2` (the last
    /// component included) and without blocking (`O_NONBLOCK`). `Ok(None)`
    /// if it does not exist.
    fn open_at(&self, rel: &str, flags: OFlags) -> Result<Option<OwnedFd>> {
        let (dir, p) = self.at(rel);
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let mut r = Err(Errno::NOSYS);
        if self.dir.is_some() && self.openat2.load(Ordering::Relaxed) {
            r = rustix::fs::openat2(
                dir,
                &p,
                flags,
                Mode::empty(),
                ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
            );
            if matches!(r, Err(Errno::NOSYS) | Err(Errno::PERM)) {
                self.openat2.store(false, Ordering::Relaxed);
            }
        }
        if matches!(r, Err(Errno::NOSYS) | Err(Errno::PERM)) {
            r = rustix::fs::openat(dir, &p, flags, Mode::empty());
        }
        match r {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP) => Err(self.symlink_error(rel)),
            // O_NOFOLLOW | O_DIRECTORY on a link says "not a directory".
            Err(Errno::NOTDIR) if matches!(self.lstat(rel), Ok(Some(st)) if FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink) => {
                Err(Error::new(self.path(rel), ErrorKind::Symlink))
            }
            Err(Errno::XDEV) => Err(Error::other(self.path(rel), "outside the storage root")),
            Err(e) => Err(Error::io(self.path(rel), e.into())),
        }
    }

    /// The error for a symbolic link met on the way to `rel`, naming the
    /// link itself (the first component that is one).
    fn symlink_error(&self, rel: &str) -> Error {
        let mut prefix = String::new();
        for c in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            let (dir, p) = self.at(&prefix);
            if let Ok(st) = rustix::fs::statat(dir, &p, AtFlags::SYMLINK_NOFOLLOW) {
                if FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink {
                    return Error::new(self.path(&prefix), ErrorKind::Symlink);
                }
            }
        }
        Error::new(self.path(rel), ErrorKind::Symlink)
    }

    /// `lstat` of `rel`: the last component is not followed.
    fn lstat(&self, rel: &str) -> Result<Option<Stat>> {
        let (dir, p) = self.at(rel);
        match rustix::fs::statat(dir, &p, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP) => Err(self.symlink_error(rel)),
            Err(e) => Err(Error::io(self.path(rel), e.into())),
        }
    }

    /// Opens regular file `rel` for reading, and its metadata; an error of
    /// kind [`ErrorKind::NotRegular`] or [`ErrorKind::Symlink`] for anything
    /// else. The type is checked before opening (a device is never opened)
    /// and again on the open file (against a swap in between): `statx`,
    /// `openat2`, `statx` on the descriptor.
    fn open_file(&self, rel: &str) -> Result<Option<(fs::File, Meta)>> {
        // A dangling link on the way is told from absence by the open below.
        if let Some(st) = self.lstat(rel)? {
            self.regular(rel, &st)?;
        }
        let Some(fd) = self.open_at(rel, OFlags::RDONLY)? else {
            return Ok(None);
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(self.path(rel), e.into()))?;
        self.regular(rel, &st)?;
        Ok(Some((fs::File::from(fd), self.saw(meta_of(&st)))))
    }

    fn regular(&self, rel: &str, st: &Stat) -> Result<()> {
        match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Ok(()),
            FileType::Symlink => Err(Error::new(self.path(rel), ErrorKind::Symlink)),
            ty => Err(Error::new(self.path(rel), ErrorKind::NotRegular(describe(ty)))),
        }
    }

    /// One directory of a scan (and, in parallel, the ones below it):
    /// `base` is the scanned prefix, `rel` this directory below it.
    fn scan_dir(
        &self,
        base: &str,
        rel: &str,
        depth: usize,
        entries: Vec<Entry>,
        stop: Stop,
        meta: bool,
    ) -> Vec<Scanned> {
        use rayon::prelude::*;
        let join = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                format!("{a}/{b}")
            }
        };
        let mut out = Vec::new();
        let mut below = Vec::new();
        for e in entries {
            let child = join(rel, &e.name);
            let key = join(base, &child);
            if e.symlink {
                out.push(Scanned::Problem(Error::new(self.path(&key), ErrorKind::Symlink)));
            } else if e.ty == EntryType::Dir {
                if stop(&child, depth) {
                    out.push(Scanned::Prefix(key));
                } else {
                    below.push(child);
                }
            } else if e.ty == EntryType::File {
                let m = if meta {
                    match self.stat(&key) {
                        Ok(Some(m)) => Some(m),
                        // Gone since it was listed.
                        Ok(None) => continue,
                        Err(err) => {
                            out.push(Scanned::Problem(err));
                            continue;
                        }
                    }
                } else {
                    None
                };
                out.push(Scanned::Object { key, meta: m });
            } else {
                // A FIFO, socket or device: lstat says which; never opened.
                let err = match self.stat(&key) {
                    Err(err) => err,
                    Ok(_) => Error::new(self.path(&key), ErrorKind::NotRegular("a file of another type")),
                };
                out.push(Scanned::Problem(err));
            }
        }
        let deeper: Vec<Vec<Scanned>> = below
            .par_iter()
            .map(|child| match self.list(&join(base, child)) {
                Ok(Some(es)) => self.scan_dir(base, child, depth + 1, es, stop, meta),
                Ok(None) => Vec::new(),
                Err(e) => vec![Scanned::Problem(e)],
            })
            .collect();
        out.extend(deeper.into_iter().flatten());
        out
    }

    /// The entries of directory `rel`, unsorted, without following
    /// symbolic links; `None` if it does not exist.
    pub fn list(&self, rel: &str) -> Result<Option<Vec<Entry>>> {
        let path = self.path(rel);
        let Some(fd) = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY)? else {
            return Ok(None);
        };
        let dir = rustix::fs::Dir::new(fd).map_err(|e| Error::io(&path, e.into()))?;
        let mut out = Vec::new();
        for ent in dir {
            let ent = ent.map_err(|e| Error::io(&path, e.into()))?;
            let raw = ent.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = std::str::from_utf8(raw)
                .map_err(|_| {
                    Error::new(
                        path.join(OsStr::from_bytes(raw)),
                        ErrorKind::BadName("name is not valid UTF-8".into()),
                    )
                })?
                .to_string();
            let mut ft = ent.file_type();
            if ft == FileType::Unknown {
                // Filesystems without d_type: one lstat.
                let child = format!(
                    "{}{name}",
                    if rel.is_empty() {
                        String::new()
                    } else {
                        format!("{rel}/")
                    }
                );
                ft = match self.lstat(&child)? {
                    Some(st) => FileType::from_raw_mode(st.st_mode as _),
                    None => continue,
                };
            }
            let (ty, symlink) = match ft {
                FileType::Directory => (EntryType::Dir, false),
                FileType::RegularFile => (EntryType::File, false),
                FileType::Symlink => (EntryType::Other, true),
                _ => (EntryType::Other, false),
            };
            out.push(Entry { name, ty, symlink });
        }
        Ok(Some(out))
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

    /// The `v2` directory with every symbolic link in its path resolved,
    /// so that it survives `--config` and a linked path.
    fn id(&self) -> String {
        fs::canonicalize(&self.v2)
            .unwrap_or_else(|_| self.v2.clone())
            .to_string_lossy()
            .into_owned()
    }

    /// The same canonical path, or a path to the same directory (a bind
    /// mount).
    fn is_root(&self, other: &str) -> bool {
        other == self.id() || same_dir(Path::new(other), &self.v2)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn dirs(&self) -> Option<&dyn Directories> {
        Some(self)
    }

    fn trash(&self) -> Option<&dyn Trash> {
        Some(self)
    }

    fn scan(&self, prefix: &str, stop: Stop, meta: bool, visit: &mut dyn FnMut(Scanned)) -> Result<bool> {
        let Some(entries) = self.list(prefix)? else {
            return Ok(false);
        };
        for item in self.scan_dir(prefix, "", 1, entries, stop, meta) {
            visit(item);
        }
        Ok(true)
    }

    /// `lstat`: a symbolic link (last component) is an error of kind
    /// [`ErrorKind::Symlink`], a FIFO, socket or device one of kind
    /// [`ErrorKind::NotRegular`]; one system call.
    fn stat(&self, rel: &str) -> Result<Option<Meta>> {
        let Some(st) = self.lstat(rel)? else {
            return Ok(None);
        };
        match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Directory => {}
            _ => self.regular(rel, &st)?,
        }
        Ok(Some(self.saw(meta_of(&st))))
    }

    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>> {
        let path = self.path(rel);
        let Some((f, meta)) = self.open_file(rel)? else {
            return Ok(None);
        };
        if meta.size > limit {
            return Err(Error::new(path, ErrorKind::TooLarge(limit)));
        }
        // Sized from fstat, so a small file takes one read plus the one
        // that sees its end (read_to_end's default growth takes several).
        let mut buf = Vec::with_capacity(meta.size as usize + 1);
        f.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        if buf.len() as u64 > limit {
            return Err(Error::new(path, ErrorKind::TooLarge(limit)));
        }
        Ok(Some((buf, meta)))
    }

    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(self
            .open_file(rel)?
            .map(|(f, _)| Box::new(f) as Box<dyn Read + Send>))
    }

    fn delete(&self, rel: &str) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        Ok(not_found(fs::remove_file(&path), &path)?.is_some())
    }

    /// What is in the directory first, then the directory itself: the one
    /// `rmdir` that removes it is what says this call removed it. Another
    /// process removing the same directory at the same time (two reg-rm
    /// runs) gets false from the same `rmdir`. (`remove_dir_all` ignores a
    /// directory that vanished under it, so both would say they removed it.)
    fn delete_prefix(&self, rel: &str) -> Result<bool> {
        let path = self.check_mutable(rel)?;
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Ok(not_found(fs::remove_file(&path), &path)?.is_some())
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let gone = |r: io::Result<()>, p: &Path| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(p, e)),
            _ => Ok(()),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::io(&path, e)),
            };
            let child = entry.path();
            // Never followed: a symbolic link is unlinked, not entered.
            match entry.file_type() {
                Ok(t) if t.is_dir() => gone(fs::remove_dir_all(&child), &child)?,
                Ok(_) => gone(fs::remove_file(&child), &child)?,
                Err(e) => gone(Err(e), &child)?,
            }
        }
        Ok(not_found(fs::remove_dir(&path), &path)?.is_some())
    }

    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        use std::io::Write as _;
        let path = self.check_mutable(rel)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // Checked again: the directories just made are plain ones.
        let path = self.check_mutable(rel)?;
        let mut f = match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(Error::io(&path, e)),
        };
        f.write_all(bytes).map_err(|e| Error::io(&path, e))?;
        Ok(true)
    }

    fn check_removable(&self, rel: &str) -> Result<()> {
        self.check_mutable(rel).map(|_| ())
    }

    fn newest_mtime(&self) -> Option<SystemTime> {
        match self.newest.load(Ordering::Relaxed) {
            i64::MIN => None,
            secs => Some(crate::time::from_unix_secs(secs, 0)),
        }
    }
}

impl Directories for Fs {
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

    fn remove_empty_dirs(&self, rel: &str) -> Result<u64> {
        let Some(entries) = self.list(rel)? else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.iter().filter(|e| e.ty == EntryType::Dir && !e.symlink) {
            n += self.remove_empty_dirs(&format!("{rel}/{}", e.name))?;
        }
        Ok(n + u64::from(self.remove_empty_dir(rel)?))
    }
}

impl Trash for Fs {
    fn prepare_trash(&self, trash: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let refuse = |why: String| Err(Error::new(trash, ErrorKind::BadTrash(why)));
        let v2 = self.v2.canonicalize().map_err(|e| Error::io(&self.v2, e))?;
        // The registry's rootdirectory, which holds docker/registry/v2 (or
        // the v2 directory given): nothing of it may be the trash.
        let root = if v2.ends_with("docker/registry/v2") {
            v2.ancestors().nth(3).unwrap_or(&v2).to_path_buf()
        } else {
            v2.clone()
        };
        // The nearest part of `trash` that exists, resolved, and the rest,
        // before anything is created.
        let mut existing = if trash.is_absolute() {
            trash.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io(trash, e))?
                .join(trash)
        };
        let mut rest = Vec::new();
        let meta = loop {
            match fs::metadata(&existing) {
                Ok(m) => break m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match (existing.file_name(), existing.parent()) {
                        (Some(n), Some(p)) => {
                            rest.push(n.to_os_string());
                            existing = p.to_path_buf();
                        }
                        _ => return Err(Error::io(trash, e)),
                    }
                }
                Err(e) => return Err(Error::io(&existing, e)),
            }
        };
        let mut resolved = existing.canonicalize().map_err(|e| Error::io(&existing, e))?;
        resolved.extend(rest.iter().rev());
        if resolved.starts_with(&root) {
            return refuse(format!(
                "inside the storage root {}: the trash would be part of the registry's storage",
                root.display()
            ));
        }
        if root.starts_with(&resolved) {
            return refuse(format!(
                "contains the storage root {}: choose a directory of its own",
                root.display()
            ));
        }
        if rest.is_empty() {
            if !meta.is_dir() {
                return refuse("not a directory".into());
            }
            let mut entries = fs::read_dir(&resolved).map_err(|e| Error::io(&resolved, e))?;
            if entries.next().is_some() {
                return refuse(
                    "not empty (an earlier run's trash? it is what restores that run): choose a new or \
                     empty directory"
                        .into(),
                );
            }
        }
        let vdev = fs::metadata(&v2).map_err(|e| Error::io(&v2, e))?.dev();
        if meta.dev() != vdev {
            return refuse(format!(
                "must be on the same filesystem as the storage root {} (moving is a rename; nothing is \
                 copied across filesystems); nothing was created",
                v2.display()
            ));
        }
        fs::create_dir_all(trash).map_err(|e| Error::io(trash, e))?;
        Ok(())
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
        match fs::rename(&path, &dest) {
            Ok(()) => Ok(true),
            // Moved or removed meanwhile (another run): not this call's doing.
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&path).is_err() => Ok(false),
            // EXDEV
            Err(e) if e.raw_os_error() == Some(18) => Err(Error::other(
                &path,
                format!(
                    "cannot move to {}: the trash directory must be on the same filesystem as the storage root",
                    dest.display()
                ),
            )),
            Err(e) => Err(Error::io(&dest, e)),
        }
    }

    fn move_back(&self, rel: &str, trash: &Path) -> Result<bool> {
        let from = trash.join(rel);
        if fs::symlink_metadata(&from).is_err() {
            return Ok(false);
        }
        let path = self.check_mutable(rel)?;
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // Checked again: the directories just made are plain ones.
        let path = self.check_mutable(rel)?;
        // A rename onto a directory made meanwhile fails unless it is
        // empty; an empty one holds nothing to lose.
        match fs::rename(&from, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&from).is_err() => {
                Ok(false)
            }
            Err(e) if fs::symlink_metadata(&path).is_ok() && matches!(e.raw_os_error(), Some(17 | 39)) => {
                Ok(false)
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn v2(&self) -> &Path {
        &self.v2
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_dir() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
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
            assert!(fs_.delete(rel).is_err(), "{rel} was not refused");
        }
        assert!(outside.join("precious").exists());
        assert!(fs_.delete_prefix("blobs/evil").is_err());
        assert!(outside.join("precious").exists());
    }

    #[test]
    fn absent_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fs_ = Fs::new(dir.path());
        assert!(fs_.list("nope").unwrap().is_none());
        assert!(fs_.stat("nope").unwrap().is_none());
        assert!(fs_.read("nope", 10).unwrap().is_none());
        assert!(!fs_.delete("nope").unwrap());
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
        assert!(err.to_string().contains("inside the storage root"), "{err}");
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
        assert!(fs_.delete_prefix("blobs/x").unwrap());
        assert!(!v2.join("blobs/x").exists());
        assert!(outside.join("precious").exists());
    }

    fn mkfifo(p: &Path) {
        let ok = std::process::Command::new("mkfifo").arg(p).status().unwrap();
        assert!(ok.success());
    }

    /// A FIFO, a socket and a directory where files are read: refused at
    /// once (a regression would block here, so the test runs in a thread).
    #[test]
    fn reads_only_regular_files_and_never_block() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let v2 = dir.path();
            fs::create_dir_all(v2.join("a/dir")).unwrap();
            mkfifo(&v2.join("a/fifo"));
            let _sock = std::os::unix::net::UnixListener::bind(v2.join("a/sock")).unwrap();
            for plain in [true, false] {
                let fs_ = Fs::new(v2);
                fs_.openat2.store(plain, Ordering::Relaxed);
                for (rel, what) in [("a/fifo", "FIFO"), ("a/sock", "socket"), ("a/dir", "directory")] {
                    let errs = [
                        fs_.read(rel, 10).unwrap_err(),
                        fs_.read_with_meta(rel, 10).unwrap_err(),
                        fs_.open(rel).err().unwrap(),
                    ];
                    for e in errs {
                        let msg = e.to_string();
                        assert!(msg.contains("not a regular file") && msg.contains(what), "{msg}");
                        assert!(msg.starts_with(&v2.join(rel).display().to_string()), "{msg}");
                    }
                }
                assert!(fs_
                    .stat("a/fifo")
                    .unwrap_err()
                    .to_string()
                    .contains("not a regular file"));
                assert!(fs_.stat("a/dir").unwrap().unwrap().is_dir);
                let ents = fs_.list("a").unwrap().unwrap();
                assert!(ents.iter().all(|e| e.name == "dir" || e.ty == EntryType::Other));
            }
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO blocked");
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        let outside = dir.path().join("outside");
        fs::create_dir_all(v2.join("a/real")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("f"), b"secret").unwrap();
        fs::write(v2.join("a/real/f"), b"ok").unwrap();
        std::os::unix::fs::symlink(&outside, v2.join("a/out")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), v2.join("a/file")).unwrap();
        std::os::unix::fs::symlink("real", v2.join("a/inner")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", v2.join("a/dangling")).unwrap();
        // The v2 directory itself may be reached through a link.
        std::os::unix::fs::symlink(&v2, dir.path().join("v2link")).unwrap();
        for plain in [true, false] {
            let fs_ = Fs::new(dir.path().join("v2link"));
            fs_.openat2.store(plain, Ordering::Relaxed);
            assert_eq!(fs_.read("a/real/f", 10).unwrap().unwrap(), b"ok");
            let mut ents = fs_.list("a").unwrap().unwrap();
            ents.sort_by(|a, b| a.name.cmp(&b.name));
            let kinds: Vec<_> = ents.iter().map(|e| (e.name.as_str(), e.ty, e.symlink)).collect();
            assert_eq!(
                kinds,
                [
                    ("dangling", EntryType::Other, true),
                    ("file", EntryType::Other, true),
                    ("inner", EntryType::Other, true),
                    ("out", EntryType::Other, true),
                    ("real", EntryType::Dir, false),
                ]
            );
            // Last component: refused with or without openat2.
            let mut cases = vec![("a/file", "a/file"), ("a/dangling", "a/dangling")];
            if plain {
                // A link on the way: refused by openat2, naming the link.
                cases.extend([
                    ("a/out/f", "a/out"),
                    ("a/inner/f", "a/inner"),
                    ("a/dangling/f", "a/dangling"),
                ]);
            }
            for (rel, link) in cases {
                let e = fs_.read(rel, 10).unwrap_err();
                assert!(matches!(e.kind(), ErrorKind::Symlink), "{rel}: {e}");
                assert_eq!(e.path(), dir.path().join("v2link").join(link), "{rel}");
                assert!(e.to_string().contains("symbolic link"), "{e}");
                assert!(fs_.open(rel).is_err(), "{rel}");
            }
            for rel in ["a/file", "a/out", "a/dangling"] {
                let e = fs_.stat(rel).unwrap_err();
                assert!(matches!(e.kind(), ErrorKind::Symlink), "{rel}: {e}");
            }
            let e = fs_.list("a/out").unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Symlink), "{e}");
        }
    }
}
