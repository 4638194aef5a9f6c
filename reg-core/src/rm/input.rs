//! Reading reg-rm's stdin: every line checked before anything happens, and
//! the refusals of input that cannot be what it claims ([`check_input`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::sync::Arc;

pub use crate::input::InputError;
use crate::input::Lines;

use serde_json::{Map, Value};

use crate::digest::{Digest, SortedSet};
use crate::layout::{check_repo_name, check_tag, check_upload_id, Store};

/// Everything stdin names, validated and de-duplicated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Input {
    /// `(repo, tag)` → the digest the record said the tag points at.
    pub tags: BTreeMap<(String, String), Option<Digest>>,
    /// Shared with the mark's exclusions, not copied there (issue 18).
    pub revisions: Arc<BTreeSet<(String, Digest)>>,
    pub layer_links: BTreeSet<(String, Digest)>,
    /// Sorted once read: 40 bytes a digest, not a B-tree's ~80 (issue 18).
    pub(crate) blobs: SortedSet<Digest>,
    pub uploads: BTreeSet<(String, String)>,
    pub repos: BTreeSet<String>,
    /// Trailers skipped.
    pub ignored: u64,
    /// The first line naming each kind (`"blob"` for bare digests too).
    pub first_line: BTreeMap<&'static str, usize>,
    /// Records read per kind, before de-duplication (bare digests not
    /// counted), to check against a `reg-orphans` trailer.
    pub records: BTreeMap<&'static str, u64>,
    /// The `reg-orphans` trailer, if any, and its line.
    pub orphans_end: Option<(usize, crate::record::OrphansEnd)>,
}

impl Input {
    /// Number of items named.
    pub fn len(&self) -> usize {
        self.tags.len()
            + self.revisions.len()
            + self.layer_links.len()
            + self.blobs.len()
            + self.uploads.len()
            + self.repos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const REFS_REFUSED: &str = "this is reg-refs output, a list of LIVE references: deleting what it \
     names would untag and delete live images; pipe it through reg-orphans first";

/// `layer` is a reg-refs edge; the `_layers` link is `layer-link`.
const LAYER_REFUSED: &str = "a \"layer\" record is reg-refs output, a LIVE reference from a \
     manifest to its layer; a _layers link is kind \"layer-link\" (as reg-ls and reg-orphans print it)";

/// Reads and checks all of `r`. Empty lines are skipped.
pub fn parse_input(r: impl BufRead) -> Result<Input, InputError> {
    parse_lines(r).map_err(InputError::nothing_deleted)
}

fn parse_lines(r: impl BufRead) -> Result<Input, InputError> {
    let mut input = Input::default();
    let mut lines = Lines::new(r);
    loop {
        let Some((line, text)) = lines.next_line()? else {
            input.blobs.finish();
            return Ok(input);
        };
        let line = line as usize;
        let err = |why: String| InputError::at(line as u64, why);
        let parsed = parse_line(text).map_err(err)?;
        if let Some((end_line, _)) = &input.orphans_end {
            if !matches!(parsed, Parsed::Skip) {
                return Err(err(format!(
                    "more input after the reg-orphans trailer on line {end_line}: concatenated or garbled input"
                )));
            }
        }
        let (kind, item) = match parsed {
            Parsed::Skip => {
                if !text.trim().is_empty() {
                    input.ignored += 1;
                }
                continue;
            }
            Parsed::OrphansEnd(end) => {
                input.orphans_end = Some((line, *end));
                continue;
            }
            Parsed::Item { record, item } => {
                let kind = item.kind();
                if record {
                    *input.records.entry(kind).or_default() += 1;
                }
                (kind, item)
            }
        };
        input.first_line.entry(kind).or_insert(line);
        match item {
            Item::Tag { repo, tag, digest } => {
                let key = (repo, tag);
                if let Some(prev) = input.tags.get(&key) {
                    if *prev != digest {
                        return Err(err(format!(
                            "tag {}:{} named again with a different digest",
                            key.0, key.1
                        )));
                    }
                }
                input.tags.insert(key, digest);
            }
            Item::Revision { repo, digest } => {
                Arc::make_mut(&mut input.revisions).insert((repo, digest));
            }
            Item::LayerLink { repo, digest } => {
                input.layer_links.insert((repo, digest));
            }
            Item::Blob(d) => {
                input.blobs.insert(d);
            }
            Item::Upload { repo, id } => {
                input.uploads.insert((repo, id));
            }
            Item::Repo(repo) => {
                input.repos.insert(repo);
            }
        }
    }
}

/// Refuses input that cannot be what it claims, before anything happens:
/// tag records without `untag`, tag records mixed with records of any other
/// kind or bare digests (an unfiltered reg-ls listing, with or without
/// `--repo`), and a reg-orphans trailer that does not
/// describe these records on this storage root.
pub fn check_input(input: &Input, store: &Store, untag: bool) -> Result<(), InputError> {
    check(input, store, untag).map_err(InputError::nothing_deleted)
}

fn check(input: &Input, store: &Store, untag: bool) -> Result<(), InputError> {
    if let Some(&line) = input.first_line.get("tag") {
        if !untag {
            return Err(InputError {
                line: line as u64,
                why: "a tag record: removing tags is a retention decision, and reg-rm acts on tag \
                      records only with --untag"
                    .into(),
            });
        }
        // Untagging is a decision about tags alone. Tags next to anything
        // else are a listing, not a decision: `reg-ls ROOT` (tags and
        // blobs), `reg-ls ROOT --repo X` (tags, revisions, links, uploads:
        // blobs left out), or a hand-made list mixing both jobs.
        if let Some((&other, &other_line)) = input
            .first_line
            .iter()
            .filter(|(k, _)| **k != "tag")
            .min_by_key(|(_, l)| **l)
        {
            let other = if other == "blob" { "blob or digest" } else { other };
            return Err(InputError {
                line: other_line.max(line) as u64,
                why: format!(
                    "tag records (first on line {line}) mixed with {other} records (first on line \
                     {other_line}): this looks like an unfiltered reg-ls listing (reg-ls ROOT, or \
                     reg-ls ROOT --repo NAME), and would untag everything it names; untag in one run \
                     (reg-ls ROOT --kind tag | jq -c 'select(…)' | reg-rm --untag ROOT) and collect \
                     garbage in another (reg-refs ROOT | reg-orphans ROOT | reg-rm ROOT)"
                ),
            });
        }
    }
    let Some((line, end)) = &input.orphans_end else {
        return Ok(());
    };
    let err = |why: String| InputError::at(*line as u64, why);
    if !end.excluded.is_empty() {
        return Err(err(format!(
            "a what-if list, made by reg-refs --exclude-repo {}: it names what deleting that \
             repository would free, but the repository still exists and needs it; run reg-refs \
             without --exclude-repo",
            end.excluded.join(" --exclude-repo ")
        )));
    }
    match end.root.as_deref() {
        Some(root) if !store.is_root(root) => {
            return Err(err(format!(
                "this list was made on another storage root ({root}), not {}: run reg-refs and \
                 reg-orphans on this root",
                store.root_id()
            )))
        }
        Some(_) => {}
        None => {
            return Err(err(
                "a reg-orphans trailer without \"root\": made by hand or by an older reg-orphans; \
                 run reg-orphans again"
                    .into(),
            ))
        }
    }
    for (kind, said) in [
        ("blob", end.blobs),
        ("revision", end.revisions),
        ("layer-link", end.layer_links),
        ("upload", end.uploads),
        ("repo", end.repos),
    ] {
        let got = input.records.get(kind).copied().unwrap_or(0);
        if got != said {
            return Err(err(format!(
                "the reg-orphans trailer and the records read disagree: it counts {said} {kind} records, \
                 the input holds {got}; the list was cut or filtered (drop the trailer when you filter \
                 on purpose)"
            )));
        }
    }
    Ok(())
}

/// One thing a line names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Tag {
        repo: String,
        tag: String,
        digest: Option<Digest>,
    },
    Revision {
        repo: String,
        digest: Digest,
    },
    LayerLink {
        repo: String,
        digest: Digest,
    },
    Blob(Digest),
    Upload {
        repo: String,
        id: String,
    },
    Repo(String),
}

impl Item {
    fn kind(&self) -> &'static str {
        match self {
            Item::Tag { .. } => "tag",
            Item::Revision { .. } => "revision",
            Item::LayerLink { .. } => "layer-link",
            Item::Blob(_) => "blob",
            Item::Upload { .. } => "upload",
            Item::Repo(_) => "repo",
        }
    }
}

/// What one line is.
enum Parsed {
    /// An empty line, or a trailer other than reg-orphans'.
    Skip,
    OrphansEnd(Box<crate::record::OrphansEnd>),
    /// `record`: a JSON record (not a bare digest).
    Item {
        record: bool,
        item: Item,
    },
}

fn parse_line(line: &str) -> Result<Parsed, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Parsed::Skip);
    }
    if !line.starts_with('{') {
        return Digest::parse(line)
            .map(|d| Parsed::Item {
                record: false,
                item: Item::Blob(d),
            })
            .map_err(|e| format!("neither a JSON record nor a digest: {e}"));
    }
    let map: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if map.contains_key("manifest") {
        return Err(REFS_REFUSED.into());
    }
    let kind = str_field(&map, "kind")?;
    let item = match kind {
        "end" => return trailer(map),
        "blob" => Item::Blob(digest_field(&map)?),
        "revision" => Item::Revision {
            repo: repo_field(&map)?,
            digest: digest_field(&map)?,
        },
        "layer-link" => Item::LayerLink {
            repo: repo_field(&map)?,
            digest: digest_field(&map)?,
        },
        "upload" => {
            let repo = repo_field(&map)?;
            let id = str_field(&map, "id")?;
            check_upload_id(id)?;
            Item::Upload {
                repo,
                id: id.to_string(),
            }
        }
        "repo" => Item::Repo(repo_field(&map)?),
        "tag" => tag_item(&map)?,
        "error" => return Err(failed(&map)),
        "manifest" | "config" | "referrer" => return Err(REFS_REFUSED.into()),
        "layer" => return Err(LAYER_REFUSED.into()),
        other => {
            return Err(format!(
            "unknown record kind {other:?} (reg-rm takes blob, revision, layer-link, upload, repo and tag)"
        ))
        }
    };
    Ok(Parsed::Item { record: true, item })
}

/// A trailer: reg-orphans' is kept for its checks, reg-refs' refused,
/// another tool's skipped.
fn trailer(map: Map<String, Value>) -> Result<Parsed, String> {
    match map.get("tool").and_then(Value::as_str) {
        Some("reg-refs") => Err(REFS_REFUSED.into()),
        Some("reg-orphans") => serde_json::from_value(Value::Object(map))
            .map(|e| Parsed::OrphansEnd(Box::new(e)))
            .map_err(|e| format!("a reg-orphans trailer that cannot be read: {e}")),
        _ => Ok(Parsed::Skip),
    }
}

/// A tag record: untagging, the digest (if given) the tag must still name.
fn tag_item(map: &Map<String, Value>) -> Result<Item, String> {
    let repo = repo_field(map)?;
    let tag = str_field(map, "tag")?;
    check_tag(tag)?;
    let digest = match map.get("digest") {
        None | Some(Value::Null) => None,
        Some(_) => Some(digest_field(map)?),
    };
    Ok(Item::Tag {
        repo,
        tag: tag.to_string(),
        digest,
    })
}

/// Why an error record (written in place of a trailer) stops the run.
fn failed(map: &Map<String, Value>) -> String {
    let tool = map.get("tool").and_then(Value::as_str).unwrap_or("a tool");
    let n = map.get("errors").and_then(Value::as_u64).unwrap_or(0);
    format!(
        "{tool} failed ({n} errors, reported on its stderr) and wrote this error record in \
         place of its trailer: the list before it is not complete; fix what it reported and \
         run the pipeline again"
    )
}

fn str_field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("field {name:?} is not a string")),
        None => Err(format!("record without a {name:?} field")),
    }
}

fn repo_field(map: &Map<String, Value>) -> Result<String, String> {
    let repo = str_field(map, "repo")?;
    check_repo_name(repo)?;
    Ok(repo.to_string())
}

fn digest_field(map: &Map<String, Value>) -> Result<Digest, String> {
    Digest::parse(str_field(map, "digest")?).map_err(|e| e.to_string())
}
