//! `reg-keep`: retention rules over tags, the way registry products write
//! them (ECR lifecycle policies, Artifact Registry cleanup policies, zot's
//! retention): which tags to keep, which to drop.
//!
//! Input: `reg-ls ROOT --kind tag` records ([`input`]). Policy: flags or a
//! YAML file ([`mod@file`]), compiled into a [`PolicySet`] ([`policy`]). The
//! decision, step by step and with its precedence, is in [`mod@decide`];
//! version order in [`version`].
//!
//! # Output
//! Without `--explain`: the tag records of the tags to drop, exactly as
//! read (so as reg-ls printed them), for `reg-rm --untag ROOT`. With
//! `--explain`, every tag as a [`Explained`] record, in input order:
//! ```text
//! {"kind":"kept","repo":"team/app","tag":"2.1.0","digest":"sha256:…","mtime":"…","rule":"keep-newest","policy":1,"last_pull":null,"image_kept_by":[],"reason":"number 1 by push time …"}
//! {"kind":"dropped","repo":"team/app","tag":"2.0.0-rc1","digest":"sha256:…","mtime":"…","rule":"drop","policy":1,"last_pull":"…","image_kept_by":["2.0.0"],"reason":"drop rule 1: matches /-rc/ and was pushed 20d ago (older than 14d)"}
//! ```
//! `rule` is one of `keep-tags`, `drop`, `keep-newest`, `pushed-within`,
//! `pulled-within`, `keep-at-least`, `follows-image` (a signature tag, kept
//! or dropped with its image), `no-drop-rule` (kept: the policy has
//! only drop rules and none selects it), `no-keep-rule` (dropped: the
//! policy has retention rules and none keeps it) and `no-policy`; `policy`
//! is the 1-based number of the policy (`null` with `no-policy`).
//! `image_kept_by` lists, for a dropped tag, the kept tags on the same
//! manifest: only the name goes. Every field is always there (`null` or
//! `[]` when empty), so `--tsv` columns stay in place. `kept` and
//! `dropped` are kinds reg-rm refuses: an explanation cannot be applied by
//! mistake.

pub mod decide;
pub mod file;
pub mod input;
pub mod policy;
pub mod version;

#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::digest::Digest;
use crate::time::Time;

pub use decide::{decide, Config, Decision, Outcome, Rule};
pub use file::{parse_policy_file, read_policy_file};
pub use input::{parse_tags, InputError, TagRecord};
pub use policy::{Order, Policy, PolicyError, PolicySet, PolicySpec};

/// A record of `reg-keep --explain`: a tag, what became of it, and why.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Explained<'a> {
    /// `kept` or `dropped`.
    pub kind: &'static str,
    pub repo: &'a str,
    pub tag: &'a str,
    pub digest: Digest,
    /// The push time (the tag link's modification time), as reg-ls said.
    pub mtime: Time,
    /// The rule that decided ([`Rule::name`]).
    pub rule: &'static str,
    /// The policy's number, from 1.
    pub policy: Option<usize>,
    /// The last pull, by tag or by digest, when pull records were given.
    pub last_pull: Option<Time>,
    /// For a dropped tag, the kept tags on the same manifest.
    pub image_kept_by: &'a [String],
    pub reason: &'a str,
}

impl crate::output::Record for Explained<'_> {
    fn columns(_: &str) -> Option<&'static [&'static str]> {
        Some(&[
            "repo",
            "tag",
            "digest",
            "mtime",
            "rule",
            "policy",
            "last_pull",
            "image_kept_by",
            "reason",
        ])
    }
}

/// A tag record printed back as it was read (reg-keep's tags to drop), in
/// reg-ls's columns.
#[derive(Serialize, Debug)]
#[serde(transparent)]
pub struct AsRead<'a>(pub &'a serde_json::Map<String, serde_json::Value>);

impl crate::output::Record for AsRead<'_> {
    fn columns(kind: &str) -> Option<&'static [&'static str]> {
        <crate::record::LsRecord as crate::output::Record>::columns(kind)
    }
}

impl<'a> Explained<'a> {
    pub fn new(t: &'a TagRecord, d: &'a Decision) -> Explained<'a> {
        Explained {
            kind: if d.keep { "kept" } else { "dropped" },
            repo: &t.repo,
            tag: &t.tag,
            digest: t.digest,
            mtime: t.pushed,
            rule: d.rule.name(),
            policy: d.policy.map(|p| p + 1),
            last_pull: d.last_pull,
            image_kept_by: &d.image_kept_by,
            reason: &d.reason,
        }
    }
}
