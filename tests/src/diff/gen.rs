//! The seeded generator of odd-but-valid manifests.
//!
//! Every case is built from its meaning first (which config, layers, child
//! manifests and subject the registry's Go reading must find) and then
//! written with noise that, under Go's `encoding/json` rules as the
//! registry 2.8.2 (Go 1.19) applies them, leaves that meaning unchanged:
//!
//! - keys spelled in another case, with `ſ`/Kelvin folds, or with a letter
//!   `\u`-escaped (Go unescapes keys, then matches exactly or by fold);
//! - a field given twice: a decoy first and the real value last (the later
//!   key wins), the real object split over two keys (a later object merges
//!   into the earlier one field by field, and a later array merges element
//!   by element, then truncates), a later `null` (no effect on a string or
//!   a struct) or a later partial object with the same values, a `null` or
//!   `[]` between a decoy array and the real one;
//! - `mediaType` left out (OCI), or given twice with a decoy first;
//!   `schemaVersion` 3 then 2;
//! - unknown fields holding invalid UTF-8, lone surrogate escapes, NUL,
//!   out-of-range numbers, descriptor-like objects and nesting up to 9,000
//!   levels (Go refuses 10,000);
//! - blobs uploaded with `?digest=sha512:`/`sha384:` and named so, child
//!   manifests uploaded as blobs (no manifest PUT) under any algorithm;
//! - foreign layers (`urls`) with odd digests or none;
//! - repository names and tags at the edges of the grammar.
//!
//! Decoys name digests nothing stores, so a decoy the registry takes for
//! real makes it refuse the push, and a model that disagrees with the
//! registry shows as a refusal or as a case that does not fetch before any
//! collection (which the test treats as a failure of the test itself).
//!
//! Weights (percent unless said): shapes OCI manifest 34, Docker manifest
//! 16, OCI index 18, Docker list 8, nested index chain (2 to 4 levels) 8,
//! schema1 2, OCI 1.1-rc artifact manifest 2 (out of 88); 30 % of cases are
//! plain (no noise: the control group); the others draw each noise rate
//! from {0, 15, 40} % per key or field (top-level key folds, folds inside
//! descriptors, duplicates, descriptor noise, unknown junk, a blob named by
//! sha512 (60 %) or sha384 (40 %) instead of sha256), and 8 % of their image
//! manifests get a foreign layer. An image manifest has 0 to 3 layers
//! (5/45/35/15), 15 % of them a base layer shared across repositories; an
//! index 1 to 3 children, each PUT as a manifest (100 minus the algorithm
//! rate, at most 40), or uploaded as a blob named by sha256 (12), sha512
//! (14) or sha384 (12). Referrers: 20 % of cases get 1 or 2 (a quarter of
//! them a referrer of their own), and 30 % of overwritten images get one.
//! Garbage: 12 % of tags are overwritten (the old image stays as an
//! untagged revision), 8 % get an untagged image pushed by digest, 6 % an
//! image pushed and deleted, 8 % loose blobs nobody names (a third named by
//! sha512 or sha384). Names: 12 % of cases go to an edge name, 10 % get an
//! edge tag; the rest spread over `diff/r0` … `diff/r11` and
//! `diff/r0/sub` … `diff/r3/sub`.

use std::collections::BTreeSet;

use sha2::Digest as _;

use super::rng::Rng;
use super::write::{Knobs, Notes, Writer};
use crate::oci::tar_one_file;

/// Streams of the seeded generator: the decisions for each image, the
/// shared base layers, and one per document (so that a document written
/// differently changes no other).
const STREAM_CASE: u64 = 1;
const STREAM_BASE: u64 = 2;
const STREAM_DOC: u64 = 16;

/// `alg:hex` of `bytes`.
pub fn digest_of(alg: &str, bytes: &[u8]) -> String {
    let hex = match alg {
        "sha256" => hex(&sha2::Sha256::digest(bytes)),
        "sha384" => hex(&sha2::Sha384::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        other => panic!("no algorithm {other}"),
    };
    format!("{alg}:{hex}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest as stored: its exact bytes, the media type it is PUT with,
/// and what the registry's reading of it names.
#[derive(Clone, Debug)]
pub struct Doc {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub refs: Vec<Ref>,
    /// The `subject` digest a Go client reads (referrers).
    pub subject: Option<String>,
}

impl Doc {
    /// `sha256:<hex>` of the bytes: the digest a manifest PUT stores it as.
    pub fn digest(&self) -> String {
        digest_of("sha256", &self.bytes)
    }

    /// Every digest this document and what it names (recursively) use,
    /// foreign layers aside.
    pub fn all_digests(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for r in &self.refs {
            match &r.target {
                Target::Foreign => {}
                Target::Blob(_) => out.push(r.digest.as_str()),
                Target::Manifest { doc, .. } => {
                    out.push(r.digest.as_str());
                    out.extend(doc.all_digests());
                }
            }
        }
        out
    }

    /// The sha256 digests of every byte string stored for it: itself,
    /// its children, configs and layers (the blob data files).
    pub fn stored_sha256(&self, out: &mut BTreeSet<String>) {
        out.insert(self.digest());
        for r in &self.refs {
            match &r.target {
                Target::Foreign => {}
                Target::Blob(b) => {
                    out.insert(digest_of("sha256", b));
                }
                Target::Manifest { doc, .. } => doc.stored_sha256(out),
            }
        }
    }

    pub(super) fn has_nested_index(&self) -> bool {
        self.refs.iter().any(|r| match &r.target {
            Target::Manifest { doc, .. } => {
                !doc.refs.iter().all(|c| c.role != Role::Child) || doc.has_nested_index()
            }
            _ => false,
        })
    }

    pub(super) fn has_foreign(&self) -> bool {
        self.refs.iter().any(|r| match &r.target {
            Target::Foreign => true,
            Target::Manifest { doc, .. } => doc.has_foreign(),
            Target::Blob(_) => false,
        })
    }
}

/// What a reference is to the manifest naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Config,
    Layer,
    /// A child manifest of an index or list.
    Child,
    /// An artifact manifest's `blobs`, a schema1 `fsLayers` entry.
    Blob,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Config => "config",
            Role::Layer => "layer",
            Role::Child => "child manifest",
            Role::Blob => "blob",
        }
    }
}

/// One reference, as the registry reads it.
#[derive(Clone, Debug)]
pub struct Ref {
    pub role: Role,
    /// The digest as written in the manifest (`sha512:…` for an alias);
    /// what the blob is uploaded as and fetched by.
    pub digest: String,
    pub target: Target,
}

#[derive(Clone, Debug)]
pub enum Target {
    /// Bytes stored as a blob.
    Blob(Vec<u8>),
    /// A child manifest: pushed with a manifest PUT (`put`, sha256), or
    /// uploaded as a blob under the digest named.
    Manifest { doc: Box<Doc>, put: bool },
    /// A foreign layer: the registry neither stores nor checks it.
    Foreign,
}

/// Why a case is there, which decides when it must stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Tagged: must fetch after every collection.
    Tagged,
    /// Untagged, pushed by digest, with an OCI `subject` naming case
    /// `subject`: must stay while its subject does.
    Referrer { subject: usize },
    /// Pushed under a tag that case `by` overwrites (if the registry
    /// accepts it): then an untagged revision.
    Overwritten { by: usize },
    /// Pushed by digest, no subject: an untagged revision.
    Untagged,
    /// Pushed under a tag, then deleted through the API: garbage.
    Deleted,
}

/// One generated push.
#[derive(Clone, Debug)]
pub struct Case {
    /// Its index in [`Plan::cases`].
    pub n: usize,
    /// The image number it was generated for (the per-image seed stream).
    pub image: usize,
    pub kind: Kind,
    pub repo: String,
    /// The tag it is pushed under (`None`: by digest).
    pub tag: Option<String>,
    pub top: Doc,
    /// The variant in words.
    pub words: Vec<String>,
    /// The variant as feature names, for counts by feature.
    pub features: BTreeSet<String>,
    /// Whether skopeo 1.9.3 can be expected to pull it (names it parses,
    /// sha256 only, no nested index, no foreign layer).
    pub skopeo: bool,
}

impl Case {
    /// The tag or digest it is served as once everything is pushed: its
    /// tag, or its digest when it has none or the tag was overwritten.
    pub fn served_as(&self) -> String {
        match (&self.tag, self.kind) {
            (Some(t), Kind::Tagged | Kind::Deleted) => t.clone(),
            _ => self.top.digest(),
        }
    }

    /// `repo:tag` or `repo@digest`, as served.
    pub fn reference(&self) -> String {
        let r = self.served_as();
        if r.contains(':') {
            format!("{}@{r}", self.repo)
        } else {
            format!("{}:{r}", self.repo)
        }
    }

    /// The variant in one line.
    pub fn describe(&self) -> String {
        format!(
            "case {} (image {}, {:?}) `{}`: {}",
            self.n,
            self.image,
            self.kind,
            self.reference(),
            self.words.join("; ")
        )
    }
}

/// A blob uploaded that no manifest names.
#[derive(Clone, Debug)]
pub struct Loose {
    /// The image it was generated for.
    pub image: usize,
    pub repo: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// Everything one run pushes, in push order.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    pub images: usize,
    pub cases: Vec<Case>,
    pub loose: Vec<Loose>,
}

/// Variant groups a run may leave out (`REG_DIFF_SKIP`), to tell causes
/// apart: `names` (edge repository names and tags), `sha384`, `sha512`
/// (blobs and children named so), `foreign` (foreign layers), `deep`
/// (deep nesting), and the noise groups `fold` (keys in other spellings),
/// `dup` (fields given twice, `mediaType` left out), `desc` (noise inside
/// descriptors) and `junk` (unknown fields). Leaving a group out changes
/// only the documents that had it (and referrers naming them).
#[derive(Clone, Debug, Default)]
pub struct Skip {
    pub names: bool,
    pub sha384: bool,
    pub sha512: bool,
    pub foreign: bool,
    pub deep: bool,
    pub fold: bool,
    pub dup: bool,
    pub desc: bool,
    pub junk: bool,
}

impl Skip {
    /// From a comma-separated list; unknown words are an error.
    pub fn parse(s: &str) -> Result<Skip, String> {
        let mut k = Skip::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "names" => k.names = true,
                "sha384" => k.sha384 = true,
                "sha512" => k.sha512 = true,
                "foreign" => k.foreign = true,
                "deep" => k.deep = true,
                "fold" => k.fold = true,
                "dup" => k.dup = true,
                "desc" => k.desc = true,
                "junk" => k.junk = true,
                other => {
                    return Err(format!(
                    "unknown group {other:?} (names, sha384, sha512, foreign, deep, fold, dup, desc, junk)"
                ))
                }
            }
        }
        Ok(k)
    }
}

/// Edge repository names: label, name, whether skopeo parses it.
const EDGE_NAMES: &[(&str, &str, bool)] = &[
    ("capitals in a domain-like first component", "Upper/app", false),
    (
        "capitals and dots in three components",
        "MyReg.example.com/team/app",
        false,
    ),
    ("capitals with a hyphen and a dot", "UP-per.X/y", false),
    (
        "lowercase domain-like first component",
        "my-reg.example.com/x",
        true,
    ),
    ("separators __ --- . _", "a__b/c---d/e.f_g", true),
    ("digits only", "0/1", true),
    ("one character", "a", true),
    ("eight levels", "d/e/e/p/p/a/t/h", true),
    ("a name inside another's directory", "diff/r0/sub", true),
    ("a port in the first component", "localhost:5000/app", false),
    // The two long names are built in `edge_name`.
    ("255 characters", "", false),
    ("256 characters", "", false),
];

fn edge_name(i: usize) -> (String, String, bool) {
    let (label, name, skopeo) = EDGE_NAMES[i];
    let name = match label {
        "255 characters" | "256 characters" => {
            let len = if label.starts_with("255") { 255 } else { 256 };
            let mut s = String::from("long");
            while s.len() < len {
                let left = len - s.len();
                // Components of up to 50 characters.
                let part = (left - 1).min(50);
                s.push('/');
                s.extend(std::iter::repeat_n('x', part.max(1)));
            }
            s.truncate(len);
            s
        }
        _ => name.to_owned(),
    };
    (label.to_owned(), name, skopeo)
}

impl Plan {
    /// The plan for `seed` with `images` tagged images (plus their
    /// referrers and garbage).
    pub fn generate(seed: u64, images: usize, skip: &Skip) -> Plan {
        let base: Vec<Vec<u8>> = (0..3)
            .map(|j| {
                let mut r = Rng::for_item(seed, STREAM_BASE, j);
                tar_one_file(&format!("base-{j}.txt"), &r.bytes(64))
            })
            .collect();
        let mut plan = Plan {
            seed,
            images,
            cases: Vec::new(),
            loose: Vec::new(),
        };
        for i in 0..images {
            plan.image(i, skip, &base);
        }
        plan
    }

    /// The plan without the images any of whose cases has a feature
    /// containing one of `patterns` (`REG_DIFF_EXCLUDE`, to look past
    /// one cause at the others); cases renumbered.
    pub fn excluding(&self, patterns: &[String]) -> Plan {
        let dropped: BTreeSet<usize> = self
            .cases
            .iter()
            .filter(|c| {
                c.features
                    .iter()
                    .any(|f| patterns.iter().any(|p| f.contains(p.as_str())))
            })
            .map(|c| c.image)
            .collect();
        self.without(&dropped)
    }

    /// The plan with only images `keep` (`REG_DIFF_ONLY`, to rerun the
    /// images a failure names); cases renumbered.
    pub fn only(&self, keep: &BTreeSet<usize>) -> Plan {
        let dropped: BTreeSet<usize> = (0..self.images).filter(|i| !keep.contains(i)).collect();
        self.without(&dropped)
    }

    fn without(&self, dropped: &BTreeSet<usize>) -> Plan {
        let mut renumber = vec![usize::MAX; self.cases.len()];
        let mut cases = Vec::new();
        for c in self.cases.iter().filter(|c| !dropped.contains(&c.image)) {
            let mut c = c.clone();
            renumber[c.n] = cases.len();
            c.n = cases.len();
            match &mut c.kind {
                Kind::Referrer { subject } => *subject = renumber[*subject],
                // The image overwriting it is the next case, in the same image.
                Kind::Overwritten { by } => *by = cases.len() + 1,
                _ => {}
            }
            cases.push(c);
        }
        let loose = self
            .loose
            .iter()
            .filter(|l| !dropped.contains(&l.image))
            .cloned()
            .collect();
        Plan {
            seed: self.seed,
            images: self.images,
            cases,
            loose,
        }
    }

    fn push_doc(
        &mut self,
        image: usize,
        kind: Kind,
        repo: &str,
        tag: Option<String>,
        top: Doc,
        notes: Notes,
    ) -> usize {
        let n = self.cases.len();
        self.cases.push(Case {
            n,
            image,
            kind,
            repo: repo.to_owned(),
            tag,
            top,
            words: notes.words,
            features: notes.features,
            skopeo: notes.skopeo,
        });
        n
    }

    /// Everything generated for image `i`.
    fn image(&mut self, i: usize, skip: &Skip, base: &[Vec<u8>]) {
        let uid = format!("s{}-i{i}", self.seed);
        let rng = &mut Rng::for_item(self.seed, STREAM_CASE, i as u64);
        let seed = self.seed;
        let doc_rng = |k: u64| Rng::for_item(seed, STREAM_DOC + k, i as u64);
        // Repository and tag. Every draw is made whatever `skip` says, so
        // that leaving a group out changes nothing else.
        let (edge, edge_i, sub, r4, r12) = (
            rng.chance(12),
            rng.below(EDGE_NAMES.len()),
            rng.chance(15),
            rng.below(4),
            rng.below(12),
        );
        let (edge_tag, tag_i) = (rng.chance(10), rng.below(3));
        let (repo, repo_note, repo_skopeo) = if edge && !skip.names {
            let (label, name, skopeo) = edge_name(edge_i);
            (name, Some(label), skopeo)
        } else if sub {
            (format!("diff/r{r4}/sub"), None, true)
        } else {
            (format!("diff/r{r12}"), None, true)
        };
        let (tag, tag_note) = if edge_tag && !skip.names {
            match tag_i {
                0 => {
                    let mut t = format!("{i}-");
                    t.extend(std::iter::repeat_n('x', 128 - t.len()));
                    (t, Some("a tag of 128 characters"))
                }
                1 => (format!("_{i}"), Some("a tag starting with _")),
                _ => (
                    format!("V{i}.0-RC.1_b"),
                    Some("a tag with capitals and dots and dashes"),
                ),
            }
        } else {
            (format!("t{i}"), None)
        };
        let name_notes = |notes: &mut Notes| {
            if let Some(label) = &repo_note {
                notes.note(&format!("name: {label}"), format!("repository name: {label}"));
            }
            if let Some(label) = tag_note {
                notes.note(&format!("tag: {label}"), label.to_owned());
            }
            notes.skopeo &= repo_skopeo;
        };

        // An old image under the same tag, overwritten below.
        let overwritten = if rng.chance(12) {
            let mut r = doc_rng(0);
            let mut g = Writer::new(&mut r, skip, &format!("{uid}-old"), base, Knobs::default());
            let doc = g.plain_image();
            g.notes.note(
                "garbage: overwritten",
                "plain OCI image, overwritten by the next push".into(),
            );
            name_notes(&mut g.notes);
            let notes = std::mem::take(&mut g.notes);
            // The image itself is the next case.
            let by = self.cases.len() + 1;
            Some(self.push_doc(i, Kind::Overwritten { by }, &repo, Some(tag.clone()), doc, notes))
        } else {
            None
        };

        // The image itself.
        let knobs = if rng.chance(30) {
            Knobs::default()
        } else {
            let mut level = || *rng.pick(&[0, 15, 40]);
            let k = Knobs {
                fold: level(),
                dup: level(),
                desc: level(),
                junk: level(),
                alg: level(),
                foreign: 8,
                desc_fold: level(),
            };
            let off = |skipped: bool, v: u32| if skipped { 0 } else { v };
            Knobs {
                fold: off(skip.fold, k.fold),
                dup: off(skip.dup, k.dup),
                desc: off(skip.desc, k.desc),
                junk: off(skip.junk, k.junk),
                desc_fold: off(skip.desc || skip.fold, k.desc_fold),
                ..k
            }
        };
        let mut r = doc_rng(1);
        let mut g = Writer::new(&mut r, skip, &uid, base, knobs);
        if knobs.fold + knobs.dup + knobs.desc + knobs.junk + knobs.alg + knobs.foreign + knobs.desc_fold == 0
        {
            g.notes.note("plain", "plain (control)".into());
        }
        let shape = *g.rng.weighted(&[
            (34, "oci"),
            (16, "docker"),
            (18, "oci-index"),
            (8, "docker-list"),
            (8, "nested"),
            (2, "schema1"),
            (2, "artifact"),
        ]);
        let top = match shape {
            "oci" => g.image(false),
            "docker" => g.image(true),
            "oci-index" => g.index(false, 1),
            "docker-list" => g.index(true, 1),
            "nested" => {
                let depth = g.rng.range(2, 4);
                g.index(false, depth)
            }
            "schema1" => g.schema1(&repo, &tag),
            _ => g.artifact(),
        };
        g.finish_notes(&top);
        name_notes(&mut g.notes);
        let notes = std::mem::take(&mut g.notes);
        let main = self.push_doc(i, Kind::Tagged, &repo, Some(tag.clone()), top, notes);
        debug_assert!(overwritten.is_none_or(|o| self.cases[o].kind == Kind::Overwritten { by: main }));

        // Referrers of it (and of the overwritten image, which dies with
        // --tagged-only), a quarter with a referrer of their own.
        let mut subjects = Vec::new();
        if rng.chance(20) {
            subjects.extend(std::iter::repeat_n(main, rng.range(1, 2)));
        }
        if let Some(old) = overwritten {
            if rng.chance(30) {
                subjects.push(old);
            }
        }
        for (j, mut subject) in subjects.into_iter().enumerate() {
            let levels = if rng.chance(25) { 2 } else { 1 };
            for depth in 0..levels {
                let mut r = doc_rng(2 + 2 * j as u64 + depth);
                let mut g = Writer::new(&mut r, skip, &format!("{uid}-ref{j}-{depth}"), base, knobs);
                let s_doc = self.cases[subject].top.clone();
                let doc = g.referrer(&s_doc);
                g.finish_notes(&doc);
                name_notes(&mut g.notes);
                let notes = std::mem::take(&mut g.notes);
                subject = self.push_doc(i, Kind::Referrer { subject }, &repo, None, doc, notes);
            }
        }

        // Garbage.
        if rng.chance(8) {
            let mut r = doc_rng(100);
            let mut g = Writer::new(&mut r, skip, &format!("{uid}-untagged"), base, Knobs::default());
            let doc = g.plain_image();
            g.notes
                .note("garbage: untagged", "plain OCI image pushed by digest".into());
            name_notes(&mut g.notes);
            let notes = std::mem::take(&mut g.notes);
            self.push_doc(i, Kind::Untagged, &repo, None, doc, notes);
        }
        if rng.chance(6) {
            let mut r = doc_rng(101);
            let mut g = Writer::new(&mut r, skip, &format!("{uid}-deleted"), base, Knobs::default());
            let doc = g.plain_image();
            g.notes.note(
                "garbage: deleted",
                "plain OCI image, deleted through the API".into(),
            );
            name_notes(&mut g.notes);
            let notes = std::mem::take(&mut g.notes);
            self.push_doc(i, Kind::Deleted, &repo, Some(format!("del-{i}")), doc, notes);
        }
        if rng.chance(8) {
            for _ in 0..rng.range(1, 2) {
                let len = rng.range(10, 300);
                let bytes = rng.bytes(len);
                let alg = match rng.below(6) {
                    0 if !skip.sha512 => "sha512",
                    1 if !skip.sha384 => "sha384",
                    _ => "sha256",
                };
                self.loose.push(Loose {
                    image: i,
                    repo: repo.clone(),
                    digest: digest_of(alg, &bytes),
                    bytes,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_image_n_does_not_depend_on_the_count() {
        let a = Plan::generate(5, 40, &Skip::default());
        let b = Plan::generate(5, 60, &Skip::default());
        let first = |p: &Plan| {
            p.cases
                .iter()
                .filter(|c| c.image < 40)
                .map(|c| (c.reference(), c.top.bytes.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(first(&a), first(&b));
        let c = Plan::generate(6, 40, &Skip::default());
        assert_ne!(first(&a), first(&c));
    }

    #[test]
    fn every_shape_and_noise_shows_up_in_a_few_hundred_images() {
        let p = Plan::generate(1, 300, &Skip::default());
        let features: BTreeSet<&str> = p
            .cases
            .iter()
            .flat_map(|c| c.features.iter().map(String::as_str))
            .collect();
        for f in [
            "plain",
            "shape: OCI manifest",
            "shape: Docker manifest",
            "shape: OCI index",
            "shape: Docker list",
            "shape: nested index",
            "shape: referrer",
            "fold: layers",
            "fold (ſ/K): layers",
            "escaped key: layers",
            "fold: descriptor digest",
            "fold (ſ/K): descriptor digest",
            "dup: layers split",
            "dup: config split",
            "dup: manifests decoy-first",
            "no mediaType",
            "alg: layer named by sha512",
            "alg: config named by sha384",
            "child: uploaded as a blob and named by sha512",
            "child: uploaded as a blob and named by sha256",
            "junk: nesting 9000 deep",
            "junk: invalid UTF-8",
            "junk: lone surrogate escapes",
            "garbage: overwritten",
            "garbage: deleted",
            "garbage: untagged",
        ] {
            assert!(features.contains(f), "no {f:?} in {features:#?}");
        }
        assert!(features.iter().any(|f| f.starts_with("name: ")));
        // REG_DIFF_EXCLUDE takes a comma-separated list of them.
        assert!(features.iter().all(|f| !f.contains(',')), "{features:#?}");
        assert!(features.iter().any(|f| f.starts_with("foreign layer: ")));
        assert!(!p.loose.is_empty());
        let skip = Skip::parse("names,sha384,sha512,foreign,deep").unwrap();
        let q = Plan::generate(1, 300, &skip);
        for c in &q.cases {
            assert!(
                c.top.all_digests().iter().all(|d| d.starts_with("sha256:"))
                    && !c
                        .features
                        .iter()
                        .any(|f| f.starts_with("name: ") || f.starts_with("foreign") || f.contains("deep")),
                "{}",
                c.describe()
            );
        }
        assert!(Skip::parse("nope").is_err());
    }

    #[test]
    fn leaving_a_group_out_changes_nothing_else() {
        let all = Plan::generate(3, 200, &Skip::default());
        let no_names = Plan::generate(3, 200, &Skip::parse("names").unwrap());
        assert_eq!(all.cases.len(), no_names.cases.len());
        let mut renamed = 0;
        for (a, b) in all.cases.iter().zip(&no_names.cases) {
            if !a.features.contains("shape: schema1") {
                assert_eq!(a.top.bytes, b.top.bytes, "{}", a.describe());
            }
            renamed += usize::from(a.repo != b.repo || a.tag != b.tag);
        }
        assert!(renamed > 0);
        let no_deep = Plan::generate(3, 200, &Skip::parse("deep,foreign").unwrap());
        assert_eq!(all.cases.len(), no_deep.cases.len());
        let mut odd = vec![false; all.cases.len()];
        for (a, b) in all.cases.iter().zip(&no_deep.cases) {
            // A referrer names its subject's digest.
            let subject_odd = matches!(a.kind, Kind::Referrer { subject } if odd[subject]);
            odd[a.n] = subject_odd
                || a.features
                    .iter()
                    .any(|f| f.contains(" deep") || f.starts_with("foreign"));
            assert_eq!(a.top.bytes == b.top.bytes, !odd[a.n], "{}", a.describe());
        }
    }

    #[test]
    fn excluding_drops_whole_images_and_renumbers() {
        let p = Plan::generate(4, 120, &Skip::default());
        let q = p.excluding(&["shape: referrer".to_owned()]);
        assert!(q.cases.len() < p.cases.len());
        assert!(q.cases.iter().all(|c| !matches!(c.kind, Kind::Referrer { .. })));
        assert!(q.cases.iter().enumerate().all(|(i, c)| c.n == i));
        let r = p.excluding(&["garbage: overwritten".to_owned()]);
        for c in &r.cases {
            if let Kind::Referrer { subject } = c.kind {
                assert_eq!(r.cases[subject].image, c.image);
                assert!(subject < c.n);
            }
        }
        assert_eq!(p.excluding(&[]).cases.len(), p.cases.len());
        let one = p.only(&BTreeSet::from([7]));
        assert!(!one.cases.is_empty() && one.cases.iter().all(|c| c.image == 7));
        let same: Vec<&Vec<u8>> = p
            .cases
            .iter()
            .filter(|c| c.image == 7)
            .map(|c| &c.top.bytes)
            .collect();
        assert_eq!(one.cases.iter().map(|c| &c.top.bytes).collect::<Vec<_>>(), same);
    }

    #[test]
    fn digests_and_docs() {
        assert_eq!(
            digest_of("sha256", b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digest_of("sha384", b"").len(), 7 + 96);
        assert_eq!(digest_of("sha512", b"").len(), 7 + 128);
        let p = Plan::generate(2, 50, &Skip::default());
        for c in &p.cases {
            // Every case parses as JSON for a lenient reader only when it
            // has no junk; all of them are bytes the generator chose.
            assert!(!c.top.bytes.is_empty());
            let mut set = BTreeSet::new();
            c.top.stored_sha256(&mut set);
            assert!(set.contains(&c.top.digest()));
        }
    }
}
