//! What reg-rm prints: one [`RmRecord`] per item, the summary's [`Stats`],
//! and [`Stopped`] for a run that could not finish.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use serde::Serialize;

use crate::digest::Digest;
use crate::output::Out;

/// What happened to one item.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Deleted,
    Trashed,
    WouldDelete,
    Absent,
    Kept,
}

impl Action {
    /// The item is gone (or would be, in a dry run).
    pub fn removes(self) -> bool {
        matches!(self, Action::Deleted | Action::Trashed | Action::WouldDelete)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Deleted => "deleted",
            Action::Trashed => "trashed",
            Action::WouldDelete => "would-delete",
            Action::Absent => "absent",
            Action::Kept => "kept",
        }
    }
}

/// What a record is about.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Tag,
    Revision,
    LayerLink,
    Blob,
    Upload,
    Repo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tag => "tag",
            Kind::Revision => "revision",
            Kind::LayerLink => "layer-link",
            Kind::Blob => "blob",
            Kind::Upload => "upload",
            Kind::Repo => "repo",
        }
    }
}

/// One output record of `reg-rm`: the action first, then the kind and the
/// fields that identify the item, the bytes freed, and why it was kept.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RmRecord {
    pub action: Action,
    /// `tag`, `revision`, `layer-link`, `blob`, `upload` or `repo`.
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// A `_layers` link that names another blob than its path (an alias):
    /// that blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Box<Digest>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<str>>,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Box<str>>,
    /// What this record removes that is still queued for a batched delete
    /// (object storage), until [`super::act::Deleter::flush`] confirms it.
    /// A thin box: most records never have any (8 bytes, not 24; a boxed
    /// slice would be 16).
    #[serde(skip)]
    #[allow(clippy::box_collection)]
    pending: Option<Box<Vec<String>>>,
}

/// One set of columns for every kind, so that `action` and `bytes` are the
/// same column on every line (`awk -F'\t' '{sum += $8}'` sums what was
/// freed, whatever the kind).
const RM_COLUMNS: &[&str] = &[
    "action", "repo", "tag", "digest", "target", "id", "bytes", "reason",
];

impl crate::output::Record for RmRecord {
    fn columns(_: &str) -> Option<&'static [&'static str]> {
        Some(RM_COLUMNS)
    }
}

impl RmRecord {
    pub(super) fn new(kind: Kind) -> RmRecord {
        RmRecord {
            action: Action::Absent,
            kind,
            repo: None,
            tag: None,
            digest: None,
            target: None,
            id: None,
            bytes: 0,
            reason: None,
            pending: None,
        }
    }

    /// Queues `rel` as removed by this record, until a flush confirms it.
    pub(super) fn queue(&mut self, rel: String) {
        self.pending.get_or_insert_with(Box::default).push(rel);
    }

    /// What is queued, not yet confirmed.
    pub(super) fn queued(&self) -> &[String] {
        self.pending.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Confirmed: nothing queued any more.
    pub(super) fn confirmed(&mut self) {
        self.pending = None;
    }
    pub(super) fn repo(mut self, r: &str) -> Self {
        self.repo = Some(r.into());
        self
    }
    pub(super) fn digest(mut self, d: Digest) -> Self {
        self.digest = Some(d);
        self
    }
    pub(super) fn kept(mut self, reason: impl Into<String>) -> Self {
        self.action = Action::Kept;
        self.reason = Some(reason.into().into_boxed_str());
        self
    }
    pub(super) fn done(mut self, action: Action, bytes: u64) -> Self {
        self.action = action;
        self.bytes = bytes;
        self
    }
}

/// Counts for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records per action.
    pub actions: BTreeMap<&'static str, u64>,
    /// Records per (action, kind).
    pub by_kind: BTreeMap<(&'static str, &'static str), u64>,
    /// Bytes freed (or that would be).
    pub bytes: u64,
    /// Empty directories removed afterwards.
    pub empty_dirs: u64,
    /// Items that failed (reported as errors).
    pub failed: u64,
}

impl Stats {
    pub fn count(&self, a: Action) -> u64 {
        self.actions.get(a.name()).copied().unwrap_or(0)
    }

    /// Deleted or trashed (not dry-run) records.
    pub fn removed(&self) -> u64 {
        self.count(Action::Deleted) + self.count(Action::Trashed)
    }

    pub(super) fn add(&mut self, r: &RmRecord) {
        *self.actions.entry(r.action.name()).or_default() += 1;
        *self.by_kind.entry((r.action.name(), r.kind.name())).or_default() += 1;
        if r.action.removes() {
            self.bytes += r.bytes;
        }
    }
}

/// A run that did not finish: why, and the phase it stopped before.
#[derive(Debug)]
pub struct Stopped {
    pub why: String,
    /// The phase that did not run (`None`: it stopped within the last one).
    pub before: Option<&'static str>,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.before {
            Some(phase) => write!(
                f,
                "{}: stopped before the {phase} phase; the tree serves as before, with garbage left: \
                 run the same input again to finish",
                self.why
            ),
            None => write!(
                f,
                "{}: stopped at the end; run the same input again to finish",
                self.why
            ),
        }
    }
}

impl std::error::Error for Stopped {}

/// The single writer of a run's records, and their counts.
pub(super) struct Writer<'a, W: Write> {
    pub(super) out: &'a mut Out<W>,
    pub(super) stats: Stats,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the records of a phase and flushes; `None` is an item that
    /// failed.
    pub(super) fn write(&mut self, recs: &[Option<RmRecord>]) -> std::io::Result<()> {
        for r in recs {
            match r {
                Some(r) => {
                    self.stats.add(r);
                    self.out.write(r)?;
                }
                None => self.stats.failed += 1,
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run holds a phase's records until they are written (a dry run at
    /// 317k objects held 37,835 blob records at once): the rare fields
    /// are boxed and the kind is a byte, so a record is 136 bytes, not 232.
    #[test]
    fn a_record_is_136_bytes() {
        assert_eq!(std::mem::size_of::<RmRecord>(), 136);
        assert_eq!(std::mem::size_of::<Option<RmRecord>>(), 136);
    }

    #[test]
    fn every_field_has_its_column() {
        let d = Digest::sha256_of(b"x");
        let mut rec = RmRecord::new(Kind::Tag).repo("org/app").digest(d).kept("why");
        rec.tag = Some("v1".into());
        rec.target = Some(Box::new(d));
        rec.id = Some("u".into());
        crate::record::assert_columns(&rec);
    }
}
