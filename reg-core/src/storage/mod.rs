//! The storage boundary: what the layout asks of a store, and what a store
//! says it can do.
//!
//! The boundary is shaped like an object store, not like directories: a
//! [`Backend`] offers flat scans of a key prefix ([`Backend::scan`], cut
//! where the caller says, with sizes and mtimes when asked), reads and stats
//! of one key, and deletions of one key, of a prefix, or of a batch. Keys are
//! paths relative to the registry's `docker/registry/v2` directory,
//! `/`-separated, built only from validated parts (digests, repository
//! names, tags). What a key means is the layout's business
//! ([`crate::layout`]); which parts of the tree it will scan, and where
//! those may be cut into listings of their own, it says once
//! ([`Backend::plan`], [`Area`]).
//!
//! Two backends implement it: [`Fs`] ([`fs`], the only module that touches
//! the filesystem: its scan walks directories in parallel and stops where it
//! is told, so that a link whose name says everything is never opened), and
//! [`crate::object::ObjectBackend`], every object store through the
//! `object_store` crate (it lists flat and cuts the keys the same way).
//!
//! A backend states what it can do ([`Backend::capabilities`]); what only a
//! filesystem has (directories that stay when emptied, a trash reached by
//! renaming) are parts it offers or not ([`Backend::dirs`],
//! [`Backend::trash`]). Failures are [`crate::Error`]s with a
//! [`crate::error::Failure`] the backend chose; no layer above reinterprets
//! them. Requests to a remote store are counted the same way for every
//! store ([`Requests`]).

pub mod conformance;
pub mod fs;
mod requests;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Error, Result};

pub use fs::Fs;
pub use requests::{RequestKind, Requests};

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Dir,
    File,
    /// Anything else: a symbolic link (then [`Entry::symlink`] is set), a
    /// socket, a FIFO, a device.
    Other,
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub ty: EntryType,
    /// The entry is a symbolic link (never followed: `ty` is `Other`).
    pub symlink: bool,
}

/// Size and modification time of a file.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub size: u64,
    pub mtime: SystemTime,
    pub is_dir: bool,
}

/// One result of a [`Backend::scan`], keys relative to the `v2` directory.
#[derive(Debug)]
pub enum Scanned {
    /// A stored object (a file), with its size and mtime if asked for.
    Object { key: String, meta: Option<Meta> },
    /// A key prefix the scan was told to stop at (a directory not entered).
    Prefix(String),
    /// Something that is neither an object nor a prefix (a symbolic link, a
    /// FIFO, a device, an unreadable directory): never followed or opened.
    Problem(Error),
}

/// Where a [`Backend::scan`] stops: called with each prefix below the
/// scanned one (relative to it, `/`-separated) and its depth (1: a direct
/// child); true reports it as a [`Scanned::Prefix`] and looks no further.
pub type Stop<'a> = &'a (dyn Fn(&str, usize) -> bool + Sync);

/// A part of the tree the layout will scan whole, told to the backend once
/// ([`Backend::plan`]): a backend that lists ahead (an object store) lists
/// it flat, once, and answers every scan and stat below it from that.
#[derive(Clone, Copy, Debug)]
pub struct Area {
    /// The key prefix (a directory below `v2`, no trailing `/`).
    pub prefix: &'static str,
    /// Whether a directory below it (relative to `v2`, ending in `/`) may
    /// be cut into listings of its children, found by the backend. Not
    /// where the children hold a key or two each (the digest directories
    /// of `blobs/<alg>/<xx>/`, `_layers/<alg>/`): finding them would cost
    /// as much as listing them, so such a directory is paged through whole.
    pub split: fn(&str) -> bool,
}

/// How an area held a part at a time is cut into parts
/// ([`Backend::list_by_parts`]). A part is named by the key prefix its keys
/// share ([`Parts::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parts {
    /// Each directory this many levels below the area: `blobs/<alg>/<xx>`
    /// at 2.
    Depth(usize),
    /// Each repository's own keys, those starting with
    /// `repositories/<name>/_`: its `_manifests`, `_layers` and `_uploads`.
    /// A component of a repository name never starts with `_`, so the keys
    /// of a repository nested in it (`<name>/<child>/...`) are not among
    /// them, and every key a repository's walk reads is.
    Repository,
}

impl Parts {
    /// The part `rel` (a key or directory below the area `area`, or `area`
    /// itself) lies in, named by its prefix: `None` above the parts, where
    /// the scans of [`Backend::list_by_parts`] find them.
    pub fn of(self, area: &str, rel: &str) -> Option<String> {
        let below = rel.strip_prefix(area)?;
        let below = below.strip_prefix('/')?;
        match self {
            Parts::Depth(depth) => {
                let dirs: Vec<&str> = below.split('/').take(depth).collect();
                (dirs.len() == depth).then(|| format!("{area}/{}", dirs.join("/")))
            }
            Parts::Repository => {
                let mut name_len = 0;
                for component in below.split('/') {
                    if component.starts_with('_') {
                        return Some(format!("{area}/{}_", &below[..name_len]));
                    }
                    name_len += component.len() + 1;
                }
                None
            }
        }
    }

    /// The key prefix a part's listing asks for: a directory at a depth,
    /// the part's name itself for a repository (not a directory: `_`
    /// starts the names of three).
    pub fn listed_prefix(self, part: &str) -> String {
        match self {
            Parts::Depth(_) => format!("{part}/"),
            Parts::Repository => part.to_string(),
        }
    }
}

/// What a backend can do, as it states it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Backend::read_expecting`] can answer from metadata the backend
    /// already has (a listing's content MD5), so it is worth finding out
    /// what to expect.
    pub answers_from_listing: bool,
    /// Deletions are best queued and sent together
    /// ([`Backend::delete_batch`]): an object store's multi-object delete.
    pub batches_deletes: bool,
    /// The storage is a server of its own: its answers carry its clock
    /// ([`Backend::server_now`]), and [`Backend::id`] names it.
    pub remote: bool,
}

/// Storage operations, on paths relative to the `v2` directory.
///
/// Absent objects are `Ok(None)` / `Ok(false)`, not errors: the registry tree
/// legitimately has holes (a revision directory whose link was deleted).
pub trait Backend: Send + Sync {
    /// How to show `rel` to a person: the full path or URL.
    fn display(&self, rel: &str) -> PathBuf;

    /// A name for the storage root that tells it from any other: the
    /// filesystem's canonical `v2` path; an object store's URL and endpoint.
    fn id(&self) -> String;

    /// Whether `other` (an [`Backend::id`] from some tool's trailer) names
    /// this storage root.
    fn is_root(&self, other: &str) -> bool {
        other == self.id()
    }

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The parts of the tree the layout will scan (see [`Area`]); a backend
    /// that lists ahead keeps them in mind, the filesystem ignores them.
    fn plan(&self, areas: &[Area]) {
        let _ = areas;
    }

    /// A flat scan: every object stored under the key prefix `prefix`, cut
    /// at the prefixes `stop` names (reported as [`Scanned::Prefix`], not
    /// looked below), in no particular order. Objects come with their size
    /// and mtime when `meta` asks for them (an object store's listing gives
    /// them for nothing; the filesystem stats each one). False if nothing is
    /// stored under `prefix`. What the layout means by each key is the
    /// layout's business ([`crate::layout`]); a backend only lists.
    fn scan(&self, prefix: &str, stop: Stop, meta: bool, visit: &mut dyn FnMut(Scanned)) -> Result<bool>;

    /// Size and mtime of `rel` (a "directory" too: a prefix with objects
    /// below); `None` if it does not exist.
    fn stat(&self, rel: &str) -> Result<Option<Meta>>;

    /// The whole content of `rel`, at most `limit` bytes (more is an error
    /// of kind [`crate::error::ErrorKind::TooLarge`]); `None` if it does not
    /// exist.
    fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read_with_meta(rel, limit)?.map(|(b, _)| b))
    }

    /// Like [`Backend::read`], with the object's metadata, from one open or
    /// one request; link files are read this way by the millions.
    fn read_with_meta(&self, rel: &str, limit: u64) -> Result<Option<(Vec<u8>, Meta)>>;

    /// The first `n` bytes of `rel` (all of it when shorter) and its whole
    /// size; `None` if it does not exist. A look at how an object starts
    /// without reading the rest: an object store asks for that range only
    /// (reg-rm looks at each blob it deletes that could be a manifest, and
    /// most are layers of up to 4 MiB). Here, the whole of it, at most
    /// `limit` bytes, as [`Backend::read`].
    fn read_start(&self, rel: &str, n: u64, limit: u64) -> Result<Option<(Vec<u8>, u64)>> {
        Ok(self.read(rel, limit)?.map(|b| start_of(b, n)))
    }

    /// Like [`Backend::read_with_meta`], for an object the caller expects
    /// to hold one of `expected` (a link file naming a known digest): a
    /// backend that can tell from metadata it already has that it does (an
    /// object store's listing: size and content MD5) answers without
    /// reading.
    fn read_expecting(&self, rel: &str, limit: u64, expected: &[&[u8]]) -> Result<Option<(Vec<u8>, Meta)>> {
        let _ = expected;
        self.read_with_meta(rel, limit)
    }

    /// [`Backend::read`] of every one of `rels`, answered in their order.
    /// A backend whose reads are requests keeps as many in flight as the
    /// store sustains (see [`crate::object`]); here, one per thread.
    fn read_many(&self, rels: &[String], limit: u64) -> Vec<Result<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        rels.par_iter().map(|r| self.read(r, limit)).collect()
    }

    /// At most `n` reads of [`Backend::read_many`] in flight (the tools'
    /// `-j N`); a backend that reads by threads has nothing to bound.
    fn cap_reads(&self, n: usize) {
        let _ = n;
    }

    /// A reader over `rel`, for content too large to read at once.
    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>>;

    /// From now on, the planned area `area` is not listed whole: it is
    /// held a part at a time, its parts as `parts` cuts them, each listed
    /// when [`Backend::hold_part`] asks and forgotten when
    /// [`Backend::release_part`] says. A scan above the parts finds them
    /// with delimited listings; anything else below `area` is asked of the
    /// store (a HEAD, a listing not kept). reg-orphans, which walks `blobs/`
    /// one prefix directory at a time and `repositories/` a batch of
    /// repositories at a time, holds only what it is walking. Ignored where
    /// the area is held already (from an inventory report), where an object
    /// store's first page of it says it is small (its parts hold less than
    /// half a page each: listed one by one they would cost more requests
    /// than the whole), and by the filesystem.
    fn list_by_parts(&self, area: &'static str, parts: Parts) {
        let _ = (area, parts);
    }

    /// Whether `area` is held a part at a time (after
    /// [`Backend::list_by_parts`] chose to).
    fn held_by_parts(&self, area: &str) -> bool {
        let _ = area;
        false
    }

    /// Lists the part `part` (see [`Backend::list_by_parts`]) and keeps it
    /// until [`Backend::release_part`]; nothing where `part` is not one.
    fn hold_part(&self, part: &str) -> Result<()> {
        let _ = part;
        Ok(())
    }

    /// [`Backend::hold_part`] of each of `parts`, a result for each in
    /// their order; a backend whose listings are requests lists them at
    /// once.
    fn hold_parts(&self, parts: &[String]) -> Vec<Result<()>> {
        parts.iter().map(|p| self.hold_part(p)).collect()
    }

    /// Forgets the part `part` held by [`Backend::hold_part`].
    fn release_part(&self, part: &str) {
        let _ = part;
    }

    /// From now on, parts listed are kept when released, out of memory
    /// where the backend can (an object store's in an unnamed temporary
    /// file, about 45 bytes an object, with a few bytes an object held),
    /// and held again without a request, until [`Backend::refresh`]. For
    /// a run that walks the same parts several times and changes nothing:
    /// reg-rm --dry-run, which walks `repositories/` four times and
    /// `blobs/` twice. An error where the temporary file cannot be made;
    /// where it cannot take more, parts are listed each time again from
    /// there on (slower, never wrong).
    fn keep_parts(&self) -> Result<()> {
        Ok(())
    }

    /// Why keeping parts ([`Backend::keep_parts`]) stopped, if it did: for
    /// a note to the operator, whose run was slower for it.
    fn kept_parts_stopped(&self) -> Option<String> {
        None
    }

    /// Forgets what the backend has cached of earlier listings, so that the
    /// next scans see the store as it is now (reg-rm, before looking again).
    fn refresh(&self) {}

    /// Like [`Backend::refresh`], for what lies below `prefix` only (one
    /// repository, looked at again): a backend that caches lists just that.
    fn refresh_below(&self, prefix: &str) {
        let _ = prefix;
        self.refresh();
    }

    /// The storage server's time now, where the storage has a server of its
    /// own (an object store: from the `Date` of its answers); `None` for
    /// the filesystem, whose "now" is this machine's clock. See
    /// [`crate::clock`].
    fn server_now(&self) -> Result<Option<SystemTime>> {
        Ok(None)
    }

    /// The newest modification time this backend has returned so far (the
    /// filesystem's, to tell a clock behind the tree's); `None` if it does
    /// not keep count.
    fn newest_mtime(&self) -> Option<SystemTime> {
        None
    }

    /// The requests sent to a remote store so far, by kind (live counters,
    /// for summaries and a progress line); `None` for the filesystem.
    fn requests(&self) -> Option<Arc<Requests>> {
        None
    }

    /// Deletes the object `key`; false if it was already gone.
    fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes every object under the key prefix `prefix` (on the
    /// filesystem: the directory and all in it); false if nothing was there.
    fn delete_prefix(&self, prefix: &str) -> Result<bool>;

    /// Deletes the objects `keys`, in one request where the backend can
    /// (an object store's multi-object delete); one result per key, so a
    /// failure part way says exactly which went.
    fn delete_batch(&self, keys: &[String]) -> Vec<Result<bool>> {
        keys.iter().map(|k| self.delete(k)).collect()
    }

    /// Writes a small file `rel` (creating its parent directories) unless it
    /// exists; false if it was there already. reg-rm writes back `_layers`
    /// links it removed when a push made their blob live during the run.
    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<bool>;

    /// Checks, without changing anything, that `rel` could be removed: the
    /// same refusals as [`Backend::delete_prefix`] (for dry runs).
    fn check_removable(&self, rel: &str) -> Result<()> {
        let _ = rel;
        Ok(())
    }

    /// Directories that stay when emptied, where the backend has them (the
    /// filesystem); object stores have none.
    fn dirs(&self) -> Option<&dyn Directories> {
        None
    }

    /// A trash to move into instead of deleting, where the backend has one
    /// (the filesystem: a rename); object stores have none.
    fn trash(&self) -> Option<&dyn Trash> {
        None
    }
}

/// Directories that outlive their content (a filesystem's).
pub trait Directories {
    /// Deletes directory `rel` if it is empty; false if absent or not empty.
    fn remove_empty_dir(&self, rel: &str) -> Result<bool>;

    /// Removes the empty directories below `rel`, deepest first, and `rel`
    /// itself if it ends up empty; never a file, nor a directory that is not
    /// empty by the time it is removed. How many went.
    fn remove_empty_dirs(&self, rel: &str) -> Result<u64>;
}

/// Moving instead of deleting, so that copying the trash back restores.
pub trait Trash {
    /// Makes `trash` ready: refuses a directory inside the storage root or
    /// containing it, one that is not new or empty (an earlier run's trash is
    /// what restores that run), or one on another filesystem (moving is a
    /// rename), before anything is created; then creates it. Refusals are
    /// errors of kind [`crate::error::ErrorKind::BadTrash`].
    fn prepare_trash(&self, trash: &Path) -> Result<()>;

    /// Moves `rel` (file or directory) to `trash/rel`, creating parents.
    /// False if `rel` was already gone.
    fn move_to_trash(&self, rel: &str, trash: &Path) -> Result<bool>;

    /// Moves `trash/rel` back to `rel`, creating parents. False if
    /// `trash/rel` is gone or `rel` exists again (written anew meanwhile:
    /// what is in the trash stays there).
    fn move_back(&self, rel: &str, trash: &Path) -> Result<bool>;

    /// The storage root's directory (`…/docker/registry/v2`).
    fn v2(&self) -> &Path;
}

/// The refusal of a trash by a backend without one.
pub fn no_trash(trash: &Path) -> Error {
    Error::new(trash, crate::error::ErrorKind::NoTrash)
}

/// The first `n` bytes of a whole object's `bytes`, and its size
/// ([`Backend::read_start`] from a whole read).
pub(crate) fn start_of(mut bytes: Vec<u8>, n: u64) -> (Vec<u8>, u64) {
    let size = bytes.len() as u64;
    bytes.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    (bytes, size)
}
