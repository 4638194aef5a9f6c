//! The registry's storage layout under `docker/registry/v2`, and enumeration
//! of what is stored there.
//!
//! Paths (see `storage-layout.md`):
//! - `blobs/<alg>/<hex[0:2]>/<hex>/data`
//! - `repositories/<name>/_layers/<alg>/<hex>/link`
//! - `repositories/<name>/_manifests/revisions/<alg>/<hex>/link`
//! - `repositories/<name>/_manifests/tags/<tag>/current/link`
//! - `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`
//! - `repositories/<name>/_uploads/<id>/{data,startedat,hashstates/...}`
//!
//! This layer alone knows what keys mean. It turns the backend's flat scans
//! into the inventory the tools use (repositories, tag names, revision and
//! `_layers` digests, blobs, uploads) and reads only what a name does not
//! tell: tag `current/link` files and manifests. The digest of a revision or
//! `_layers` link is in its path ([`Store::revision_digests`],
//! [`Store::layer_link_digests`]); where its existence or age matters one stat
//! answers ([`Store::revisions_by_name`], [`Store::link_mtime`]); where
//! trusting the name could be wrong (a link whose content disagrees with its
//! path) the error keeps data, and [`Store::revisions`] / [`Store::layer_links`]
//! (reg-ls) read the links and report the disagreement.
//!
//! Enumerations return a [`Listing`]: what was found plus the problems met on
//! the way, so a tool can report a bad path and go on (reg-ls) or stop
//! (reg-refs, where skipping could turn live data into garbage).
//!
//! The rooms: the model (this file: [`Listing`] and what it lists), the name
//! rules ([`check_repo_name`], [`check_tag`], [`check_upload_id`]), the
//! relative [`paths`], the [`Store`] (reads and the inventory enumeration,
//! `store.rs`), its mutations (`mutate.rs`, the only changes reg-rm makes)
//! and the whole-store checks that come before any tool trusts a listing
//! (`health.rs`: an empty blob store, the root's identity).

use std::time::SystemTime;

use crate::digest::{Algorithm, Digest};
use crate::error::Error;
use crate::time::Time;

mod health;
mod mutate;
mod names;
pub mod paths;
mod store;

pub use health::EMPTY_BLOB_STORE;
pub use names::*;
pub use store::*;
/// The largest manifest read: the registry refuses to store larger ones.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// The largest link file we read: a digest is at most 135 bytes; garbage
/// beyond that is reported, not loaded.
pub(crate) const LINK_LIMIT: u64 = 4096;

/// What was found, and what went wrong finding it.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub errors: Vec<Error>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            items: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    pub(crate) fn push_err(&mut self, e: Error) {
        self.errors.push(e);
    }
}

/// A tag and the manifest its `current/link` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub digest: Digest,
    pub mtime: SystemTime,
}

/// A manifest revision link (`_manifests/revisions/<alg>/<hex>/link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub digest: Digest,
    pub mtime: SystemTime,
    /// What the link names when that is not `digest` (an [`Alias`]); only
    /// known where the link was read.
    pub target: Option<Digest>,
}

/// A `_layers` link: the repository may serve this blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLink {
    pub digest: Digest,
    pub mtime: SystemTime,
    /// What the link names when that is not `digest` (an [`Alias`]); only
    /// known where the link was read.
    pub target: Option<Digest>,
}

/// Which links an [`Alias`] is among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkKind {
    /// `_layers/<alg>/<hex>/link`
    LayerLink,
    /// `_manifests/revisions/<alg>/<hex>/link`
    Revision,
}

/// What the path of a link names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkName {
    Digest(Digest),
    /// `<alg>:<name>` of a directory under an algorithm no tool here knows.
    Unknown(String),
}

impl std::fmt::Display for LinkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkName::Digest(d) => d.fmt(f),
            LinkName::Unknown(s) => f.write_str(s),
        }
    }
}

/// A link whose content names another digest than its path: the registry's
/// own indirection. A blob uploaded with `?digest=sha512:<hex>` is stored
/// under its sha256 digest and linked from `_layers/sha512/<hex>/link`,
/// which holds `sha256:<hex>`; a manifest naming the sha512 digest is served
/// the sha256 blob. So a reference to [`Alias::name`] in this repository
/// keeps [`Alias::target`]. A link under an algorithm no tool knows is an
/// alias too, with a name nothing we parse can reference: its target is
/// always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub kind: LinkKind,
    pub name: LinkName,
    pub target: Digest,
    pub mtime: SystemTime,
}

impl Alias {
    /// The link file, relative to `v2`.
    pub fn rel(&self, repo: &str) -> String {
        let dir = match self.kind {
            LinkKind::LayerLink => paths::layer_links(repo),
            LinkKind::Revision => paths::revisions(repo),
        };
        match &self.name {
            LinkName::Digest(d) => format!("{dir}/{}/link", d.path_parts()),
            LinkName::Unknown(s) => format!("{dir}/{}/link", s.replacen(':', "/", 1)),
        }
    }
}

/// A stored blob (`blobs/<alg>/<xx>/<hex>/data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub mtime: SystemTime,
}

/// An upload in progress (`_uploads/<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    /// Size of the partial `data` file (0 if none).
    pub size: u64,
    /// From the `startedat` file; the directory's mtime if that is missing.
    pub started_at: Time,
    /// Whether `started_at` came from the `startedat` file.
    pub has_startedat: bool,
}

/// One directory of blobs to walk: `blobs/<alg>/<prefix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPrefix {
    pub alg: Algorithm,
    pub prefix: String,
}
