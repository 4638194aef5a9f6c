//! `reg-ls`: list what is stored.
//!
//! Repositories are walked in parallel and printed in name order, each with its
//! tags, revisions, `_layers` links and uploads; then blobs, walked in
//! parallel by prefix directory and printed in digest order. Work is done in
//! chunks so memory stays bounded on trees with millions of blobs.

use std::io::Write;
use std::time::SystemTime;

use rayon::prelude::*;

use crate::error::Error;
use crate::layout::{check_repo_name, Listing, Store};
use crate::messages::Messages;
use crate::output::Out;
use crate::progress::Phase;
use crate::record::LsRecord;
use crate::time::Time;

/// The kinds of entry reg-ls lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Repo,
    Tag,
    Revision,
    /// A `_layers` link (`--kind layer-link`).
    LayerLink,
    Blob,
    Upload,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Kinds to print; empty means every kind (but see `repos`).
    pub kinds: Vec<Kind>,
    /// Only these repositories; when set and `kinds` is empty, blobs (which
    /// belong to no repository) are not listed.
    pub repos: Vec<String>,
    /// Re-hash each blob and add `ok` to blob records; read each revision's
    /// manifest and add `ok` (and the parser's `notes`) to revision records.
    pub verify: bool,
}

/// Counts for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub repos: u64,
    pub tags: u64,
    pub revisions: u64,
    pub layer_links: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub uploads: u64,
    /// Blobs whose data did not hash to their digest (with `verify`).
    pub corrupt: u64,
}

impl Config {
    fn wants(&self, k: Kind) -> bool {
        if self.kinds.is_empty() {
            return k != Kind::Blob || self.repos.is_empty();
        }
        self.kinds.contains(&k)
    }
}

const CHUNK: usize = 64;

fn report<T>(l: Listing<T>, msgs: &Messages) -> Vec<T> {
    for e in l.errors {
        msgs.problem(e);
    }
    l.items
}

/// Lists the store to `out`. Problems with single paths are reported through
/// `msgs` (making the exit status 1) and the walk goes on; only write errors
/// (a closed pipe) end it early.
pub fn list<W: Write>(
    store: &Store,
    cfg: &Config,
    out: &mut Out<W>,
    msgs: &Messages,
) -> anyhow::Result<Stats> {
    for r in &cfg.repos {
        check_repo_name(r).map_err(anyhow::Error::msg)?;
    }
    let mut stats = Stats::default();
    let repo_kinds = [
        Kind::Repo,
        Kind::Tag,
        Kind::Revision,
        Kind::LayerLink,
        Kind::Upload,
    ];
    if repo_kinds.iter().any(|k| cfg.wants(*k)) {
        let repos = repos_to_list(store, cfg, msgs);
        write_in_chunks(
            &repos,
            |r| repo_records(store, cfg, r),
            store,
            out,
            msgs,
            &mut stats,
        )?;
    }
    if cfg.wants(Kind::Blob) {
        let prefixes = blob_prefixes(store, cfg, msgs);
        let records = |p: &_| blob_records(store, cfg, msgs, p);
        write_in_chunks(&prefixes, records, store, out, msgs, &mut stats)?;
    }
    out.flush()?;
    Ok(stats)
}

/// The repositories to list (those `cfg.repos` names, each checked to be
/// there), in name order.
fn repos_to_list(store: &Store, cfg: &Config, msgs: &Messages) -> Vec<String> {
    msgs.progress()
        .start(Phase::new("listing repositories", ""), None);
    let mut repos = report(store.repositories(), msgs);
    if !cfg.repos.is_empty() {
        for r in &cfg.repos {
            if !repos.contains(r) {
                msgs.error(Error::other(
                    store.display(&crate::layout::paths::repo(r)),
                    "no such repository",
                ));
            }
        }
        repos.retain(|r| cfg.repos.contains(r));
    }
    msgs.progress().start(
        Phase::new("reading repositories", "repositories"),
        Some(repos.len() as u64),
    );
    repos
}

/// The blob prefix directories, in order (their blobs are listed in digest
/// order).
fn blob_prefixes(store: &Store, cfg: &Config, msgs: &Messages) -> Vec<crate::layout::BlobPrefix> {
    msgs.progress()
        .start(Phase::new("listing blob prefix directories", ""), None);
    let prefixes = report(store.blob_prefixes(), msgs);
    let name = if cfg.verify {
        "re-hashing blobs"
    } else {
        "reading blobs"
    };
    msgs.progress().start(
        Phase::new(name, "prefix directories").also("blobs"),
        Some(prefixes.len() as u64),
    );
    prefixes
}

/// The blobs of one prefix directory, re-hashed with `cfg.verify`.
fn blob_records(
    store: &Store,
    cfg: &Config,
    msgs: &Messages,
    p: &crate::layout::BlobPrefix,
) -> (Vec<LsRecord>, Vec<Error>) {
    let l = store.blobs_in(p);
    let mut errors = l.errors;
    let recs = l
        .items
        .into_iter()
        .map(|b| {
            msgs.progress().add_also(1);
            let ok = if cfg.verify {
                match store.verify_blob(&b.digest) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            } else {
                None
            };
            LsRecord::Blob {
                digest: b.digest,
                size: b.size,
                mtime: Time(b.mtime),
                ok,
            }
        })
        .collect();
    (recs, errors)
}

/// Reads `items` a chunk at a time in parallel (`read` gives one item's
/// records and problems, one progress step each), then writes each chunk
/// in order: memory stays bounded, the output ordered.
fn write_in_chunks<T: Sync, W: Write>(
    items: &[T],
    read: impl Fn(&T) -> (Vec<LsRecord>, Vec<Error>) + Sync,
    store: &Store,
    out: &mut Out<W>,
    msgs: &Messages,
    stats: &mut Stats,
) -> anyhow::Result<()> {
    for chunk in items.chunks(CHUNK) {
        let lists: Vec<(Vec<LsRecord>, Vec<Error>)> = chunk
            .par_iter()
            .map(|item| {
                let recs = read(item);
                msgs.progress().inc(1);
                recs
            })
            .collect();
        write_chunk(store, lists, out, msgs, stats)?;
    }
    Ok(())
}

/// Reports a chunk's problems and writes its records, in order; a blob
/// whose data does not hash to its digest is an error too.
fn write_chunk<W: Write>(
    store: &Store,
    lists: Vec<(Vec<LsRecord>, Vec<Error>)>,
    out: &mut Out<W>,
    msgs: &Messages,
    stats: &mut Stats,
) -> anyhow::Result<()> {
    for (records, errors) in lists {
        for e in errors {
            msgs.problem(e);
        }
        for rec in &records {
            count(stats, rec);
            if let LsRecord::Blob {
                ok: Some(false),
                digest,
                ..
            } = rec
            {
                msgs.error(format!(
                    "{}: data does not hash to {digest}",
                    store.display(&crate::layout::paths::blob_data(digest)).display()
                ));
            }
            out.write(rec)?;
        }
    }
    Ok(())
}

fn count(s: &mut Stats, r: &LsRecord) {
    match r {
        LsRecord::Repo { .. } => s.repos += 1,
        LsRecord::Tag { .. } => s.tags += 1,
        LsRecord::Revision { .. } => s.revisions += 1,
        LsRecord::LayerLink { .. } => s.layer_links += 1,
        LsRecord::Blob { size, ok, .. } => {
            s.blobs += 1;
            s.blob_bytes += size;
            if *ok == Some(false) {
                s.corrupt += 1;
            }
        }
        LsRecord::Upload { .. } => s.uploads += 1,
    }
}

/// With `--verify`: whether a revision's manifest is there, hashes to its
/// digest and parses, and the parser's notes (what another reader could take
/// differently). Problems go to `errors`.
fn verify_revision(
    store: &Store,
    r: &crate::layout::Revision,
    errors: &mut Vec<Error>,
) -> (Option<bool>, Vec<String>) {
    let d = r.target.unwrap_or(r.digest);
    match store.manifest(&d) {
        Ok(Some(m)) => (Some(true), m.notes),
        Ok(None) => {
            errors.push(Error::new(
                store.display(&crate::layout::paths::blob_data(&d)),
                crate::error::ErrorKind::Other(format!("manifest of revision {} is missing", r.digest)),
            ));
            (Some(false), Vec::new())
        }
        Err(e) => {
            errors.push(e);
            (Some(false), Vec::new())
        }
    }
}

fn repo_records(store: &Store, cfg: &Config, repo: &str) -> (Vec<LsRecord>, Vec<Error>) {
    let mut recs = Vec::new();
    let mut errors = Vec::new();
    let name = || repo.to_string();
    let t = |m: SystemTime| Time(m);
    if cfg.wants(Kind::Repo) {
        recs.push(LsRecord::Repo { repo: name() });
    }
    if cfg.wants(Kind::Tag) {
        let l = store.tags(repo);
        errors.extend(l.errors);
        recs.extend(l.items.into_iter().map(|x| LsRecord::Tag {
            repo: name(),
            tag: x.name,
            digest: x.digest,
            mtime: t(x.mtime),
        }));
    }
    if cfg.wants(Kind::Revision) {
        let l = store.revisions(repo);
        errors.extend(l.errors);
        for x in l.items {
            let (ok, notes) = if cfg.verify {
                verify_revision(store, &x, &mut errors)
            } else {
                (None, Vec::new())
            };
            recs.push(LsRecord::Revision {
                repo: name(),
                digest: x.digest,
                mtime: t(x.mtime),
                target: x.target,
                ok,
                notes,
            });
        }
    }
    if cfg.wants(Kind::LayerLink) {
        let l = store.layer_links(repo);
        errors.extend(l.errors);
        recs.extend(l.items.into_iter().map(|x| LsRecord::LayerLink {
            repo: name(),
            digest: x.digest,
            mtime: t(x.mtime),
            target: x.target,
        }));
    }
    if cfg.wants(Kind::Upload) {
        let l = store.uploads(repo);
        errors.extend(l.errors);
        recs.extend(l.items.into_iter().map(|x| LsRecord::Upload {
            repo: name(),
            id: x.id,
            size: x.size,
            started_at: x.started_at,
        }));
    }
    (recs, errors)
}
