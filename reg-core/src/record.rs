//! The records of the interface contract, as serde types.
//!
//! Every record is one flat JSON object on one line with a `kind` field (flat
//! objects are friendlier to jq than an envelope). Digests are `"sha256:<hex>"`
//! strings, times RFC 3339 UTC strings ending in `Z`, sizes integers of bytes.
//!
//! # reg-ls ([`LsRecord`])
//! ```text
//! {"kind":"repo","repo":"org/app"}
//! {"kind":"tag","repo":"org/app","tag":"v1","digest":"sha256:…","mtime":"…"}
//! {"kind":"revision","repo":"org/app","digest":"sha256:…","mtime":"…"}     (+ "ok", "notes" with --verify)
//! {"kind":"layer-link","repo":"org/app","digest":"sha256:…","mtime":"…"}
//! {"kind":"blob","digest":"sha256:…","size":123,"mtime":"…"}            (+ "ok" with --verify)
//! ```
//! A revision or `_layers` link whose content names another digest than its
//! path (the registry's alias: a blob pushed as `sha512:…` is stored under
//! its sha256 digest) carries `"target":"sha256:…"`, and so does every
//! reg-refs record that names such a link's digest.
//! ```text
//! {"kind":"upload","repo":"org/app","id":"<uuid>","size":0,"started_at":"…"}
//! ```
//!
//! # reg-refs ([`RefRecord`])
//! ```text
//! {"kind":"tag","repo":"org/app","tag":"v1","digest":"sha256:…"}                 root
//! {"kind":"revision","repo":"org/app","digest":"sha256:…"}                       root
//! {"kind":"manifest","repo":"org/app","manifest":"<index>","digest":"<child>"}
//! {"kind":"config","repo":"org/app","manifest":"…","digest":"…","size":123}
//! {"kind":"layer","repo":"org/app","manifest":"…","digest":"…","size":123}
//! {"kind":"referrer","repo":"org/app","manifest":"<subject>","digest":"<referrer>"}
//! {"kind":"link","repo":"org/app","name":"<alg>:<name>","digest":"sha256:…"}   root
//! {"kind":"end","tool":"reg-refs",…counts…}                                      trailer
//! ```
//!
//! `layer` here is an edge from a manifest to a layer blob; a `_layers` link
//! (reg-ls, reg-orphans, reg-rm's input) is `layer-link`. A trailer made with
//! `--exclude-repo` carries `"excluded":[…]` (a what-if list), and so does the
//! reg-orphans trailer made from it; reg-rm refuses both.
//!
//! # reg-orphans ([`OrphanRecord`])
//! ```text
//! {"kind":"blob","digest":"…","size":123,"mtime":"…"}
//! {"kind":"revision","repo":"…","digest":"…","mtime":"…"}
//! {"kind":"layer-link","repo":"…","digest":"…","mtime":"…"}
//! {"kind":"upload","repo":"…","id":"…","size":0,"started_at":"…"}
//! {"kind":"repo","repo":"…"}
//! {"kind":"end","tool":"reg-orphans",…counts…}                                   trailer
//! ```
//!
//! # A failed run ([`Failed`])
//! A tool that reports an error (exit status 1) never writes its trailer:
//! in its place comes `{"kind":"error","tool":"reg-orphans","errors":2}`, so
//! the list before it is never taken for a complete one. reg-orphans and
//! reg-rm refuse input holding it (and reg-orphans input without the
//! reg-refs trailer).
//!
//! # Tab-separated columns (`--tsv`)
//! The same records, one line each: the kind, then the kind's fields in
//! the order of the table in the README (each type's [`Record::columns`]),
//! every one of them, empty where the JSON record leaves a field out
//! (`target`, `ok`, `notes`); trailers write their fields by name
//! (`end`, `tool=reg-refs`, `repos=5`, … tab-separated). See [`crate::output`].
//!
//! # reg-pulls, reg-keep
//! Their records are documented with their types: [`crate::pulls`]
//! (`pull` and its trailer) and [`crate::keep`] (`kept` and `dropped`; the
//! tags to drop are reg-ls `tag` records, printed back as read).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::output::Record;
use crate::time::Time;

/// A record printed by `reg-ls`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LsRecord {
    Repo {
        repo: String,
    },
    Tag {
        repo: String,
        tag: String,
        digest: Digest,
        mtime: Time,
    },
    Revision {
        repo: String,
        digest: Digest,
        mtime: Time,
        /// What the link names, when that is not `digest` (the registry's
        /// alias: a link under sha384 or sha512 naming a sha256 blob).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
        /// With `--verify`: whether the manifest is there, hashes to its
        /// digest and is a JSON object.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<bool>,
        /// With `--verify`: what readers other than Go's could take
        /// differently in the manifest (every reading is kept).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// A `_layers` link (`"kind":"layer-link"`; `layer` is a reg-refs edge).
    #[serde(rename = "layer-link")]
    LayerLink {
        repo: String,
        digest: Digest,
        mtime: Time,
        /// What the link names, when that is not `digest` (an alias).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    Blob {
        digest: Digest,
        size: u64,
        mtime: Time,
        /// With `--verify`: whether the data hashes to the digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<bool>,
    },
    Upload {
        repo: String,
        id: String,
        size: u64,
        started_at: Time,
    },
}

impl Record for LsRecord {
    fn columns(kind: &str) -> Option<&'static [&'static str]> {
        Some(match kind {
            "repo" => &["repo"],
            "tag" => &["repo", "tag", "digest", "mtime"],
            "revision" => &["repo", "digest", "mtime", "target", "ok", "notes"],
            "layer-link" => &["repo", "digest", "mtime", "target"],
            "blob" => &["digest", "size", "mtime", "ok"],
            "upload" => &["repo", "id", "size", "started_at"],
            _ => return None,
        })
    }
}

/// A record printed by `reg-refs`: a root or an edge of the reference graph.
///
/// `target`, on any of them, is what the repository's link for `digest`
/// names when that is another digest (the registry's alias, see
/// [`crate::layout::Alias`]): the blob the registry serves for `digest`,
/// kept with it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RefRecord {
    /// Root: a tag and the manifest it points at.
    Tag {
        repo: String,
        tag: String,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// Root: a manifest revision (without `--tagged-only`), or an untagged
    /// revision kept by `--keep-recent`.
    Revision {
        repo: String,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// An index (or manifest list) and one of its child manifests.
    Manifest {
        repo: String,
        manifest: Digest,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// A manifest and its config blob.
    Config {
        repo: String,
        manifest: Digest,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// A manifest and one of its layer blobs (artifact `blobs`, schema1
    /// `fsLayers`, and every descriptor of an unknown manifest kind too).
    Layer {
        repo: String,
        manifest: Digest,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// A subject manifest and a manifest that refers to it (OCI `subject`).
    Referrer {
        repo: String,
        manifest: Digest,
        digest: Digest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Digest>,
    },
    /// Root: a link under a digest algorithm no tool here knows
    /// (`_layers/<alg>/<name>/link`, `"name":"<alg>:<name>"`): nothing we
    /// parse can reference it, so the blob it names (`digest`) is kept.
    Link {
        repo: String,
        name: String,
        digest: Digest,
    },
    /// The trailer: proof the list is complete.
    End(RefsEnd),
}

impl Record for RefRecord {
    fn columns(kind: &str) -> Option<&'static [&'static str]> {
        Some(match kind {
            "tag" => &["repo", "tag", "digest", "target"],
            "revision" => &["repo", "digest", "target"],
            "manifest" | "referrer" => &["repo", "manifest", "digest", "target"],
            "config" | "layer" => &["repo", "manifest", "digest", "size", "target"],
            "link" => &["repo", "name", "digest"],
            _ => return None,
        })
    }
}

/// Counts in the `reg-refs` trailer.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RefsEnd {
    /// Always `"reg-refs"`; lets `reg-rm` refuse a list of live references.
    pub tool: String,
    pub repos: u64,
    pub tags: u64,
    pub manifests: u64,
    /// Edge records (manifest, config, layer, referrer) and `link` roots.
    pub references: u64,
    /// Manifests named but missing from storage (reported on stderr).
    pub missing: u64,
    /// True only when every repository was walked (no `--repo` filter): only
    /// then does the list name every live blob, and only then may
    /// `reg-orphans` use it. Absent (older input) reads as false.
    #[serde(default)]
    pub complete: bool,
    /// Revision root records (every revision by default; with
    /// `--tagged-only`, those kept by `--keep-recent`).
    #[serde(default)]
    pub revisions: u64,
    /// The storage root this list describes: the canonical path of its `v2`
    /// directory. `reg-orphans` refuses a list made on another root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// `--exclude-repo`: a what-if list, made as if these repositories were
    /// deleted (their tags and revisions are not roots). Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
}

/// A record printed by `reg-orphans`: something nothing references.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OrphanRecord {
    Blob {
        digest: Digest,
        size: u64,
        mtime: Time,
    },
    Revision {
        repo: String,
        digest: Digest,
        mtime: Time,
    },
    /// A `_layers` link whose blob is missing (`"kind":"layer-link"`).
    #[serde(rename = "layer-link")]
    LayerLink {
        repo: String,
        digest: Digest,
        mtime: Time,
    },
    Upload {
        repo: String,
        id: String,
        size: u64,
        started_at: Time,
    },
    Repo {
        repo: String,
    },
    /// The trailer.
    End(OrphansEnd),
}

impl Record for OrphanRecord {
    fn columns(kind: &str) -> Option<&'static [&'static str]> {
        Some(match kind {
            "blob" => &["digest", "size", "mtime"],
            "revision" | "layer-link" => &["repo", "digest", "mtime"],
            "upload" => &["repo", "id", "size", "started_at"],
            "repo" => &["repo"],
            _ => return None,
        })
    }
}

/// Counts in the `reg-orphans` trailer.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphansEnd {
    /// Always `"reg-orphans"`.
    pub tool: String,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub revisions: u64,
    /// `_layers` links (`"layers"` in the trailer).
    #[serde(rename = "layers")]
    pub layer_links: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
    pub repos: u64,
    /// Orphans younger than the grace period, not reported.
    pub too_young: u64,
    /// Blob directories stored (sizes are looked up only for orphans: `reg-ls
    /// --kind blob` tells the stored bytes).
    pub stored_blobs: u64,
    /// The storage root these orphans are on (as in the `reg-refs` trailer);
    /// `reg-rm` refuses a list made on another root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Carried on from a what-if `reg-refs --exclude-repo` list: these
    /// orphans are what deleting those repositories would free, not garbage
    /// now, and `reg-rm` refuses them. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
}

/// The record a tool writes instead of its trailer when it reported errors
/// (`{"kind":"error","tool":…,"errors":N}`): what came before is not a
/// complete list, and no tool downstream may act on it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Always `"error"`.
    pub kind: String,
    /// The tool that failed.
    pub tool: String,
    /// Errors it reported on stderr.
    pub errors: u64,
}

/// A trailer: written by name.
impl Record for Failed {
    fn columns(_: &str) -> Option<&'static [&'static str]> {
        None
    }
}

impl Failed {
    pub fn new(tool: &str, errors: u64) -> Failed {
        Failed {
            kind: "error".into(),
            tool: tool.into(),
            errors,
        }
    }
}

/// Checks that `record` serializes to exactly the columns its type lists
/// for its kind (none forgotten, none that is not there), for the types'
/// tests: build each kind with every optional field set.
#[cfg(test)]
pub(crate) fn assert_columns<T: Record>(record: &T) {
    let v = serde_json::to_value(record).unwrap();
    let kind = v["kind"].as_str().unwrap().to_string();
    let mut fields: Vec<&str> = v
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "kind")
        .collect();
    let mut cols = T::columns(&kind)
        .unwrap_or_else(|| panic!("{kind}: no columns"))
        .to_vec();
    fields.sort_unstable();
    cols.sort_unstable();
    assert_eq!(fields, cols, "{kind}: {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reg-orphans prints stored items as reg-ls does: the same five kinds,
    /// each orphan record read back as the reg-ls record of that item with
    /// the same fields and values, its TSV columns in reg-ls' order. reg-rm
    /// reads both; a field or kind added to one and not the other fails here.
    #[test]
    fn orphan_records_are_stored_items_as_reg_ls_prints_them() {
        let d: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            .parse()
            .unwrap();
        let t = Time(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        let repo = || "org/app".to_string();
        let orphans = [
            OrphanRecord::Blob {
                digest: d,
                size: 7,
                mtime: t,
            },
            OrphanRecord::Revision {
                repo: repo(),
                digest: d,
                mtime: t,
            },
            OrphanRecord::LayerLink {
                repo: repo(),
                digest: d,
                mtime: t,
            },
            OrphanRecord::Upload {
                repo: repo(),
                id: "u1".into(),
                size: 3,
                started_at: t,
            },
            OrphanRecord::Repo { repo: repo() },
        ];
        let mut kinds = Vec::new();
        for o in &orphans {
            let json = serde_json::to_value(o).unwrap();
            let ls: LsRecord = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(
                serde_json::to_value(&ls).unwrap(),
                json,
                "the same item, the same fields"
            );
            let kind = json["kind"].as_str().unwrap().to_string();
            let ls_cols = LsRecord::columns(&kind).unwrap();
            let orphan_cols = OrphanRecord::columns(&kind).unwrap();
            let mut at = ls_cols.iter();
            for c in orphan_cols {
                assert!(
                    at.any(|l| l == c),
                    "{kind}: column {c} out of reg-ls' order {ls_cols:?}"
                );
            }
            kinds.push(kind);
        }
        // Every kind reg-ls prints but tags (never an orphan: a tag is a root).
        for k in ["repo", "revision", "layer-link", "blob", "upload"] {
            assert!(kinds.iter().any(|x| x == k), "{k}");
        }
        assert!(LsRecord::columns("tag").is_some() && OrphanRecord::columns("tag").is_none());
    }

    /// Every kind of every record, with every optional field set, has
    /// exactly the columns its type lists: a TSV column never moves.
    #[test]
    fn tsv_columns_name_every_field() {
        let d = Digest::sha256_of(b"x");
        let t = Time::parse("2024-01-02T03:04:05Z").unwrap();
        let r = || "org/app".to_string();
        for rec in [
            LsRecord::Repo { repo: r() },
            LsRecord::Tag {
                repo: r(),
                tag: "v1".into(),
                digest: d,
                mtime: t,
            },
            LsRecord::Revision {
                repo: r(),
                digest: d,
                mtime: t,
                target: Some(d),
                ok: Some(true),
                notes: vec!["n".into()],
            },
            LsRecord::LayerLink {
                repo: r(),
                digest: d,
                mtime: t,
                target: Some(d),
            },
            LsRecord::Blob {
                digest: d,
                size: 1,
                mtime: t,
                ok: Some(true),
            },
            LsRecord::Upload {
                repo: r(),
                id: "u".into(),
                size: 0,
                started_at: t,
            },
        ] {
            assert_columns(&rec);
        }
        for rec in [
            RefRecord::Tag {
                repo: r(),
                tag: "v1".into(),
                digest: d,
                target: Some(d),
            },
            RefRecord::Revision {
                repo: r(),
                digest: d,
                target: Some(d),
            },
            RefRecord::Manifest {
                repo: r(),
                manifest: d,
                digest: d,
                target: Some(d),
            },
            RefRecord::Config {
                repo: r(),
                manifest: d,
                digest: d,
                size: Some(1),
                target: Some(d),
            },
            RefRecord::Layer {
                repo: r(),
                manifest: d,
                digest: d,
                size: Some(1),
                target: Some(d),
            },
            RefRecord::Referrer {
                repo: r(),
                manifest: d,
                digest: d,
                target: Some(d),
            },
            RefRecord::Link {
                repo: r(),
                name: "blake3:x".into(),
                digest: d,
            },
        ] {
            assert_columns(&rec);
        }
        for rec in [
            OrphanRecord::Blob {
                digest: d,
                size: 1,
                mtime: t,
            },
            OrphanRecord::Revision {
                repo: r(),
                digest: d,
                mtime: t,
            },
            OrphanRecord::LayerLink {
                repo: r(),
                digest: d,
                mtime: t,
            },
            OrphanRecord::Upload {
                repo: r(),
                id: "u".into(),
                size: 0,
                started_at: t,
            },
            OrphanRecord::Repo { repo: r() },
        ] {
            assert_columns(&rec);
        }
        assert_eq!(RefRecord::columns("end"), None, "a trailer is written by name");
        assert_eq!(OrphanRecord::columns("end"), None);
        assert_eq!(Failed::columns("error"), None);
    }

    #[test]
    fn wire_format_is_flat_with_kind_first() {
        let d = Digest::sha256_of(b"x");
        let t = Time::parse("2024-01-02T03:04:05Z").unwrap();
        let r = LsRecord::Tag {
            repo: "org/app".into(),
            tag: "v1".into(),
            digest: d,
            mtime: t,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            format!(
                r#"{{"kind":"tag","repo":"org/app","tag":"v1","digest":"{d}","mtime":"2024-01-02T03:04:05Z"}}"#
            )
        );
        assert_eq!(serde_json::from_str::<LsRecord>(&j).unwrap(), r);
        let e = RefRecord::End(RefsEnd {
            tool: "reg-refs".into(),
            ..Default::default()
        });
        let j = serde_json::to_string(&e).unwrap();
        assert!(
            j.starts_with(r#"{"kind":"end","tool":"reg-refs","repos":0"#),
            "{j}"
        );
        let b = LsRecord::Blob {
            digest: d,
            size: 1,
            mtime: t,
            ok: None,
        };
        assert!(!serde_json::to_string(&b).unwrap().contains("ok"));
    }
}
