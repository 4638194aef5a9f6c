//! Shared library of the reg tools: the registry's storage layout, manifest
//! parsing, the JSON-lines record types, and the walks the tools are made of.
//!
//! The command lines (clap, flag names, exit codes, the thread pool, the
//! progress line) live in the `reg-cli` crate: this library has none. Every
//! module, by what it owns:
//!
//! The model
//! - [`digest`]: validated digests and compact digest sets.
//! - [`manifest`]: what a manifest references, for every format; [`json`]:
//!   JSON as the registry's Go decoder reads it.
//! - [`record`]: the records of the interface contract, as serde types.
//!
//! Storage
//! - [`storage`]: the storage boundary, [`storage::Backend`] (capabilities,
//!   typed failures, request counts), the filesystem backend and the
//!   conformance suite every backend passes.
//! - [`object`]: the object-storage backend over `object_store` and its
//!   providers ([`object::s3`], [`object::azure`]).
//! - [`layout`]: names, paths and enumeration under `docker/registry/v2`,
//!   and the [`layout::Store`] every tool reads and changes the tree
//!   through (`layout/`: names, paths, store, mutate, and health: the
//!   whole-store checks before any tool trusts it); [`manifest_cache`]: the
//!   on-disk manifest cache across runs (not the in-run store of [`refs`]).
//! - [`root`]: finding the `v2` directory from a path or the registry's
//!   `config.yml`; [`registry_config`]: what else the tools read there.
//!
//! The graph
//! - [`refs`]: the reference graph from the roots (tags, revisions):
//!   `refs/` holds the model, the packed codec, the in-run manifest store,
//!   the liveness walk and the loading waves, one file each.
//! - [`mark`]: the reachability mark reg-rm takes before it deletes.
//!
//! The tools' logic
//! - [`ls`], [`refs`], [`orphans`], [`rm`]: `reg-ls`, `reg-refs`,
//!   `reg-orphans`, `reg-rm` (`orphans/`: the input, the compact sets of
//!   referenced digests, the sweep, its results and their output, one file
//!   each).
//! - [`pulls`], [`keep`]: `reg-pulls` (pull times from the registry's logs)
//!   and `reg-keep` (retention rules over tags).
//!
//! Plumbing
//! - [`output`]: the single writer of records (JSON lines or TSV) and
//!   closed-pipe handling.
//! - [`messages`]: the stderr side (warnings, errors, the summary);
//!   [`progress`]: counters the walks bump, for the line the binaries draw.
//! - [`clock`]: "now" for every age; [`time`]: times and durations as the
//!   contract writes them; [`size`]: sizes a person can read.
//! - [`error`]: errors that carry the path they are about; [`input`]: the
//!   line reader and input error of the tools that read records.

pub mod clock;
pub mod digest;
pub mod error;
pub mod input;
pub mod json;
pub mod keep;
pub mod layout;
pub mod ls;
pub mod manifest;
pub mod manifest_cache;
pub mod mark;
pub mod messages;
pub mod object;
pub mod orphans;
pub mod output;
pub mod progress;
pub mod pulls;
pub mod record;
pub mod refs;
pub mod registry_config;
pub mod rm;
pub mod root;
pub mod size;
pub mod storage;
#[cfg(test)]
mod testutil;
pub mod time;

pub use digest::{Digest, DigestSet};
pub use error::{Error, Result};
