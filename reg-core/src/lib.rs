//! Shared library of the reg tools: the registry's storage layout, manifest
//! parsing, the JSON-lines record types, and the walks the tools are made of.
//!
//! Module map:
//! - [`digest`]: validated digests and compact digest sets.
//! - [`storage`]: the storage boundary, [`storage::Backend`] (with its
//!   capabilities, typed failures and request counts), the filesystem
//!   backend and the conformance suite every backend passes; everything else
//!   goes through the trait.
//! - [`object`]: the one object-storage backend over `object_store`, and its
//!   providers ([`object::s3`], [`object::azure`]): configuration and client
//!   only.
//! - [`layout`]: where things live under `docker/registry/v2` and how to enumerate them.
//! - [`root`]: finding the `v2` directory from a path or the registry's `config.yml`.
//! - [`registry_config`]: what else the tools read there (the blob descriptor cache).
//! - [`record`]: the records of the interface contract, as serde types.
//! - [`output`]: the single writer of records (JSON lines or TSV) and closed-pipe handling.
//! - [`manifest`]: what a manifest references, for every format.
//! - [`refs`], [`orphans`], [`rm`]: the logic of `reg-refs`, `reg-orphans`, `reg-rm`.
//! - [`pulls`], [`keep`]: the logic of `reg-pulls` (pull times from the
//!   registry's logs) and `reg-keep` (retention rules over tags).
//! - [`messages`]: the stderr side (warnings, errors, the summary, progress counters).
//! - [`clock`]: "now" for every age: the storage server's clock on object storage.
//!
//! The command lines (clap, exit codes, the thread pool) live in the `reg-cli`
//! crate: this library has none.
//! - [`progress`]: counters the walks bump, for a live line the binaries draw.
//! - [`size`]: sizes a person can read, for summaries.

pub mod clock;
pub mod digest;
pub mod error;
pub mod health;
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
