//! What reg-rm prints: one [`RmRecord`] per item, the summary's [`Stats`],
//! and [`Stopped`] for a run that could not finish.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::Arc;

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
///
/// A run holds a phase's records until they are written (95,562 `_layers`
/// links at 1M objects): the fields most records lack are boxed together,
/// so a record is 88 bytes (issue 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmRecord {
    pub action: Action,
    /// `tag`, `revision`, `layer-link`, `blob`, `upload` or `repo`.
    pub kind: Kind,
    /// Shared with whatever else names the repository (a `_layers` link's
    /// job), not a copy of the name per record.
    pub repo: Option<Arc<str>>,
    pub digest: Option<Digest>,
    pub bytes: u64,
    /// The tag, alias target, upload id and reason, for the records that
    /// have any.
    rare: Option<Box<Rare>>,
    /// The ticket under which what this record removes is queued for a
    /// batched delete (object storage), until
    /// [`super::act::Deleter::flush`] confirms it (a copy of its paths
    /// took 144 bytes a record; issue 18).
    pending: Option<u32>,
}

/// What few records have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    tag: Option<Box<str>>,
    /// A `_layers` link that names another blob than its path (an alias):
    /// that blob.
    target: Option<Digest>,
    id: Option<Box<str>>,
    reason: Option<Box<str>>,
}

impl Serialize for RmRecord {
    /// In the order of the columns, without the fields a record lacks.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        fn field<S: SerializeStruct, T: Serialize + ?Sized>(
            st: &mut S,
            key: &'static str,
            v: Option<&T>,
        ) -> Result<(), S::Error> {
            match v {
                Some(v) => st.serialize_field(key, v),
                None => st.skip_field(key),
            }
        }
        let rare = self.rare.as_deref();
        let mut st = s.serialize_struct("RmRecord", 9)?;
        st.serialize_field("action", &self.action)?;
        st.serialize_field("kind", &self.kind)?;
        field(&mut st, "repo", self.repo.as_deref())?;
        field(&mut st, "tag", rare.and_then(|r| r.tag.as_deref()))?;
        field(&mut st, "digest", self.digest.as_ref())?;
        field(&mut st, "target", rare.and_then(|r| r.target.as_ref()))?;
        field(&mut st, "id", rare.and_then(|r| r.id.as_deref()))?;
        st.serialize_field("bytes", &self.bytes)?;
        field(&mut st, "reason", rare.and_then(|r| r.reason.as_deref()))?;
        st.end()
    }
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
            digest: None,
            bytes: 0,
            rare: None,
            pending: None,
        }
    }

    /// What this record removes is queued under `ticket`, until a flush
    /// confirms it.
    pub(super) fn queued_as(&mut self, ticket: u32) {
        self.pending = Some(ticket);
    }

    /// The ticket of what is queued, not yet confirmed.
    pub(super) fn ticket(&self) -> Option<u32> {
        self.pending
    }

    /// Confirmed: nothing queued any more.
    pub(super) fn confirmed(&mut self) {
        self.pending = None;
    }
    pub(super) fn repo(mut self, r: &str) -> Self {
        self.repo = Some(r.into());
        self
    }
    /// The repository, its name shared.
    pub(super) fn repo_shared(mut self, r: &Arc<str>) -> Self {
        self.repo = Some(r.clone());
        self
    }
    pub(super) fn tag(mut self, t: &str) -> Self {
        self.rare.get_or_insert_default().tag = Some(t.into());
        self
    }
    pub(super) fn target(mut self, d: Option<Digest>) -> Self {
        if let Some(d) = d {
            self.rare.get_or_insert_default().target = Some(d);
        }
        self
    }
    pub(super) fn id(mut self, id: &str) -> Self {
        self.rare.get_or_insert_default().id = Some(id.into());
        self
    }
    /// The tag, if it is one's record.
    pub fn tag_name(&self) -> Option<&str> {
        self.rare.as_ref()?.tag.as_deref()
    }
    /// The blob an alias `_layers` link names.
    pub fn alias_target(&self) -> Option<Digest> {
        self.rare.as_ref()?.target
    }
    /// The upload's id, if it is one's record.
    pub fn upload_id(&self) -> Option<&str> {
        self.rare.as_ref()?.id.as_deref()
    }
    /// Why it was kept.
    pub fn reason(&self) -> Option<&str> {
        self.rare.as_ref()?.reason.as_deref()
    }
    pub(super) fn digest(mut self, d: Digest) -> Self {
        self.digest = Some(d);
        self
    }
    pub(super) fn kept(mut self, reason: impl Into<String>) -> Self {
        self.action = Action::Kept;
        self.rare.get_or_insert_default().reason = Some(reason.into().into_boxed_str());
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
    /// 1M objects held 95,562 link records at once): the rare fields are
    /// boxed together and the kind is a byte, so a record is 88 bytes (136
    /// with each rare field a field of its own, 232 at first).
    #[test]
    fn a_record_is_88_bytes() {
        assert_eq!(std::mem::size_of::<RmRecord>(), 88);
        assert_eq!(std::mem::size_of::<Option<RmRecord>>(), 88);
    }

    /// The order of the fields is the columns', whatever is boxed.
    #[test]
    fn fields_come_in_the_columns_order_and_absent_ones_are_left_out() {
        let d = Digest::sha256_of(b"x");
        let rec = RmRecord::new(Kind::LayerLink)
            .repo("org/app")
            .digest(d)
            .done(Action::WouldDelete, 0);
        assert_eq!(
            serde_json::to_string(&rec).unwrap(),
            format!(
                r#"{{"action":"would-delete","kind":"layer-link","repo":"org/app","digest":"{d}","bytes":0}}"#
            )
        );
        assert_eq!(
            serde_json::to_string(&every_field(d)).unwrap(),
            format!(
                r#"{{"action":"kept","kind":"tag","repo":"org/app","tag":"v1","digest":"{d}","target":"{d}","id":"u","bytes":0,"reason":"why"}}"#
            )
        );
    }

    #[test]
    fn every_field_has_its_column() {
        crate::record::assert_columns(&every_field(Digest::sha256_of(b"x")));
    }

    /// A record with every field set (no real record has them all).
    fn every_field(d: Digest) -> RmRecord {
        RmRecord::new(Kind::Tag)
            .repo("org/app")
            .tag("v1")
            .digest(d)
            .target(Some(d))
            .id("u")
            .kept("why")
    }
}
