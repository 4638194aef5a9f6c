//! Writing one document with noise: the `Writer` builds image
//! manifests, indexes, referrers and the refused shapes from their meaning
//! (the references the registry must find) and writes them with the
//! spellings, duplicates, junk and digest algorithms its `Knobs` ask for,
//! noting each in words and as a feature name. The rules that keep the
//! meaning under Go's `encoding/json` are in [`super::gen`]'s header.

use std::collections::BTreeSet;

use super::gen::{digest_of, Doc, Ref, Role, Skip, Target};
use super::json::{Junk, Spelling, Style, J};
use super::rng::Rng;
use crate::oci::{tar_one_file, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};

pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const MT_OCI_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const MT_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const MT_OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// Per-case noise rates, in percent.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Knobs {
    /// A known key written in another spelling.
    pub(super) fold: u32,
    /// A reference-bearing field given twice.
    pub(super) dup: u32,
    /// Noise inside descriptors (digest decoys, junk members).
    pub(super) desc: u32,
    /// Unknown top-level fields with junk.
    pub(super) junk: u32,
    /// A blob named by another algorithm than sha256.
    pub(super) alg: u32,
    /// A foreign layer.
    pub(super) foreign: u32,
    /// A key inside a descriptor written in another spelling.
    pub(super) desc_fold: u32,
}

/// What a case's writing did, for its description.
#[derive(Default)]
pub(super) struct Notes {
    pub(super) words: Vec<String>,
    pub(super) features: BTreeSet<String>,
    pub(super) skopeo: bool,
}

impl Notes {
    pub(super) fn note(&mut self, feature: &str, words: String) {
        self.features.insert(feature.to_owned());
        if !self.words.contains(&words) {
            self.words.push(words);
        }
    }
}

/// A descriptor by meaning.
#[derive(Clone, Debug)]
struct Desc {
    media_type: String,
    /// `None`: a foreign layer without one.
    digest: Option<String>,
    size: u64,
    urls: Vec<String>,
    platform: Option<(String, String)>,
}

/// One member of an object being written: the field it is for (its Go
/// name, or `None` for an unknown key) and the member itself.
type Member = (Option<&'static str>, Vec<u8>, J);

pub(super) struct Writer<'a> {
    pub(super) rng: &'a mut Rng,
    pub(super) skip: &'a Skip,
    pub(super) k: Knobs,
    pub(super) notes: Notes,
    pub(super) uid: String,
    pub(super) blobs: usize,
    pub(super) base: &'a [Vec<u8>],
}

/// The duplicate noise of an object field, by kind, in words (after the
/// field's name).
const OBJECT_NOISE: &[(&str, &str)] = &[
    ("decoy-first", "twice, a decoy object first"),
    ("null-between", "three times: a decoy, null, the real one"),
    (
        "split",
        "split over two keys: the digest in the first, the rest in the second (Go merges them)",
    ),
    (
        "later-partial",
        "again after the real one with only its size (Go merges)",
    ),
    (
        "later-null",
        "again after the real one as null (no effect on a struct in Go)",
    ),
];

/// The duplicate noise of an array-of-descriptors field, by kind, in words.
const ARRAY_NOISE: &[(&str, &str)] = &[
    ("decoy-first", "twice, a decoy array first"),
    ("null-between", "three times: a decoy array, null, the real one"),
    ("empty-between", "three times: a decoy array, [], the real one"),
    (
        "split",
        "split over two keys: digests in the first array, the rest in the second (Go merges element by element)",
    ),
    (
        "later-partial",
        "again after the real array with only sizes (Go merges element by element)",
    ),
];

impl<'a> Writer<'a> {
    pub(super) fn new(
        rng: &'a mut Rng,
        skip: &'a Skip,
        uid: &str,
        base: &'a [Vec<u8>],
        k: Knobs,
    ) -> Writer<'a> {
        Writer {
            rng,
            skip,
            k,
            notes: Notes {
                skopeo: true,
                ..Notes::default()
            },
            uid: uid.to_owned(),
            blobs: 0,
            base,
        }
    }

    /// skopeo 1.9.3 copies neither sha384/sha512 blobs nor nested indexes
    /// into a local directory, nor foreign layers without the network.
    pub(super) fn finish_notes(&mut self, top: &Doc) {
        if top.all_digests().iter().any(|d| !d.starts_with("sha256:"))
            || top.has_nested_index()
            || top.has_foreign()
        {
            self.notes.skopeo = false;
        }
    }

    /// A fresh small blob's bytes, unique to this case.
    fn layer_bytes(&mut self) -> Vec<u8> {
        self.blobs += 1;
        let n = self.rng.range(16, 200);
        let content = self.rng.bytes(n);
        tar_one_file(&format!("{}-{}.txt", self.uid, self.blobs), &content)
    }

    /// The algorithm a blob is named by.
    fn alg(&mut self) -> &'static str {
        if self.rng.chance(self.k.alg) {
            let odd = if self.rng.chance(60) { "sha512" } else { "sha384" };
            match odd {
                "sha512" if self.skip.sha512 => "sha256",
                "sha384" if self.skip.sha384 => "sha256",
                o => o,
            }
        } else {
            "sha256"
        }
    }

    /// A reference to `bytes` as a blob in `role`, named by some algorithm.
    fn blob_ref(&mut self, role: Role, bytes: Vec<u8>) -> Ref {
        let alg = self.alg();
        if alg != "sha256" {
            self.notes.note(
                &format!("alg: {} named by {alg}", role.name()),
                format!("a {} uploaded with ?digest={alg}: and named so", role.name()),
            );
        }
        Ref {
            role,
            digest: digest_of(alg, &bytes),
            target: Target::Blob(bytes),
        }
    }

    /// A key for a top-level `field`: its exact name, or another spelling
    /// Go takes.
    fn key(&mut self, field: &'static str) -> Vec<u8> {
        self.key_at(field, self.k.fold, "")
    }

    /// A key for `field` inside a descriptor.
    fn desc_key(&mut self, field: &'static str) -> Vec<u8> {
        self.key_at(field, self.k.desc_fold, "descriptor ")
    }

    fn key_at(&mut self, field: &'static str, rate: u32, place: &str) -> Vec<u8> {
        if !self.rng.chance(rate) {
            return field.as_bytes().to_vec();
        }
        let spelling = loop {
            let s = *self.rng.pick(&Spelling::FOLDS);
            if s.applies(field) {
                break s;
            }
        };
        let key = spelling.write(field, self.rng);
        let feature = match spelling {
            Spelling::LongS | Spelling::EscapedLongS => format!("fold (ſ/K): {place}{field}"),
            Spelling::Escaped => format!("escaped key: {place}{field}"),
            _ => format!("fold: {place}{field}"),
        };
        self.notes.note(
            &feature,
            format!(
                "{place}`{field}` written `{}` ({})",
                String::from_utf8_lossy(&key),
                spelling.name()
            ),
        );
        key
    }

    /// A digest nothing stores (sometimes not a valid digest at all).
    fn decoy_digest(&mut self) -> String {
        match self.rng.below(10) {
            0 => "sha256:not-hex".to_owned(),
            1 => format!("md5:{}", self.rng.hex(32)),
            2 => format!("sha512:{}", self.rng.hex(128)),
            _ => format!("sha256:{}", self.rng.hex(64)),
        }
    }

    fn decoy_desc(&mut self, media_type: &str) -> J {
        let mut o = J::obj();
        let mut members = vec![
            ("mediaType", J::str(media_type)),
            ("digest", J::str(&self.decoy_digest())),
            ("size", J::int(self.rng.range(1, 5000) as u64)),
        ];
        // A decoy element carries a subset of what the real one sets, so
        // that an element-wise merge leaves the real values.
        if self.rng.chance(30) {
            members.remove(self.rng.below(members.len()));
        }
        for (f, v) in members {
            let k = self.desc_key(f);
            o.push(k, v);
        }
        o
    }

    /// A descriptor's members, with descriptor noise.
    fn desc_members(&mut self, d: &Desc) -> Vec<Member> {
        let mut m: Vec<Member> = Vec::new();
        if self.rng.chance(self.k.desc / 3) {
            let k = self.desc_key("mediaType");
            m.push((Some("mediaType"), k, J::str("application/vnd.example.decoy")));
            self.notes.note(
                "desc: mediaType decoy first",
                "a descriptor with a decoy `mediaType` before the real one".into(),
            );
        }
        let k = self.desc_key("mediaType");
        m.push((Some("mediaType"), k, J::str(&d.media_type)));
        if let Some(digest) = &d.digest {
            if self.rng.chance(self.k.desc / 2) {
                let k = self.desc_key("digest");
                let decoy = self.decoy_digest();
                m.push((Some("digest"), k, J::str(&decoy)));
                self.notes.note(
                    "desc: digest decoy first",
                    "a descriptor with a decoy `digest` before the real one".into(),
                );
            }
            let k = self.desc_key("digest");
            let escape = self.rng.chance(self.k.desc / 3);
            let value =
                if let Some((alg, hex)) = digest.split_once(':').filter(|(a, _)| escape && !a.is_empty()) {
                    self.notes.note(
                        "desc: escaped digest value",
                        "a digest value with `\\u` escapes".into(),
                    );
                    let mut v = format!("\\u{:04x}{}:", alg.as_bytes()[0], &alg[1..]).into_bytes();
                    v.extend_from_slice(hex.as_bytes());
                    J::Str(v)
                } else {
                    J::str(digest)
                };
            m.push((Some("digest"), k, value));
            if self.rng.chance(self.k.desc / 3) {
                let k = self.desc_key("digest");
                m.push((Some("digest"), k, J::Null));
                self.notes.note(
                    "desc: later null digest",
                    "a descriptor with `\"digest\":null` after the real one (no effect in Go)".into(),
                );
            }
            if self.rng.chance(self.k.desc / 3) {
                let (key, word) = if self.rng.chance(50) {
                    ("dıgest", "dotless ı")
                } else {
                    ("DİGEST", "dotted İ")
                };
                let decoy = self.decoy_digest();
                m.push((None, key.as_bytes().to_vec(), J::str(&decoy)));
                self.notes.note(
                    "desc: digest key with ı/İ",
                    format!(
                        "a descriptor with a decoy `{key}` ({word}: Go 1.19 ignores it, newer Go folds it)"
                    ),
                );
            }
        }
        let k = self.desc_key("size");
        m.push((Some("size"), k, J::int(d.size)));
        if !d.urls.is_empty() {
            let k = self.desc_key("urls");
            m.push((
                Some("urls"),
                k,
                J::Arr(d.urls.iter().map(|u| J::str(u)).collect()),
            ));
        }
        if let Some((os, arch)) = &d.platform {
            let mut p = J::obj();
            p.push(b"architecture".to_vec(), J::str(arch));
            p.push(b"os".to_vec(), J::str(os));
            m.push((Some("platform"), b"platform".to_vec(), p));
        }
        if self.rng.chance(self.k.desc / 2) {
            if let Some((junk, v)) = self.junk(false) {
                m.push((None, b"x-junk".to_vec(), v));
                self.notes.note(
                    &format!("junk: {}", junk_feature(junk)),
                    format!("an unknown member in a descriptor holding {}", junk.name()),
                );
            }
        }
        m
    }

    /// Junk for an unknown field (a string when `strings_only`), or `None`
    /// when its kind is left out (`REG_DIFF_SKIP=deep`; drawn all the same).
    fn junk(&mut self, strings_only: bool) -> Option<(Junk, J)> {
        let deep = [64, 129, 600, 3000, 9000];
        let j = loop {
            let j = match self.rng.below(6) {
                0 => Junk::InvalidUtf8,
                1 => Junk::LoneSurrogate,
                2 => Junk::Nul,
                3 => Junk::Deep(*self.rng.pick(&deep)),
                4 => Junk::Number,
                _ => Junk::Descriptor,
            };
            if j.is_string() || !strings_only {
                break j;
            }
        };
        let v = j.value(self.rng);
        if self.skip.deep && matches!(j, Junk::Deep(_)) {
            return None;
        }
        Some((j, v))
    }

    fn obj_of(members: Vec<Member>) -> J {
        J::Obj(members.into_iter().map(|(_, k, v)| (k, v)).collect())
    }

    /// The members of an object field (`config`, `subject`) with
    /// duplicate noise. `pointer`: a pointer in Go (a later null clears it).
    fn object_field(&mut self, field: &'static str, d: &Desc, pointer: bool) -> Vec<(Vec<u8>, J)> {
        let members = self.desc_members(d);
        let mut out = Vec::new();
        if !self.rng.chance(self.k.dup) {
            let k = self.key(field);
            out.push((k, Self::obj_of(members)));
            return out;
        }
        let kinds: &[&str] = if pointer {
            &["decoy-first", "split", "later-partial", "null-between"]
        } else {
            &["decoy-first", "split", "later-partial", "later-null"]
        };
        let kind = *self.rng.pick(kinds);
        match kind {
            "decoy-first" | "null-between" => {
                let k = self.key(field);
                let decoy = self.decoy_desc(&d.media_type);
                out.push((k, decoy));
                if kind == "null-between" {
                    let k = self.key(field);
                    out.push((k, J::Null));
                }
                let k = self.key(field);
                out.push((k, Self::obj_of(members)));
            }
            "split" => {
                let (a, b): (Vec<Member>, Vec<Member>) = members
                    .into_iter()
                    .partition(|(f, _, _)| *f == Some("digest") || f.is_none());
                let k = self.key(field);
                out.push((k, Self::obj_of(a)));
                let k = self.key(field);
                out.push((k, Self::obj_of(b)));
            }
            "later-partial" => {
                let k = self.key(field);
                out.push((k, Self::obj_of(members)));
                let mut partial = J::obj();
                let k = self.desc_key("size");
                partial.push(k, J::int(d.size));
                let k = self.key(field);
                out.push((k, partial));
            }
            _ => {
                let k = self.key(field);
                out.push((k, Self::obj_of(members)));
                let k = self.key(field);
                out.push((k, J::Null));
            }
        }
        self.note_noise(field, kind, OBJECT_NOISE);
        out
    }

    /// Notes the duplicate noise `kind` on `field`, in the words `table`
    /// gives it.
    fn note_noise(&mut self, field: &str, kind: &str, table: &[(&str, &str)]) {
        let (_, words) = table
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("no words for the noise {kind}"));
        self.notes
            .note(&format!("dup: {field} {kind}"), format!("`{field}` {words}"));
    }

    /// The members of an array-of-descriptors field with duplicate noise.
    fn array_field(&mut self, field: &'static str, ds: &[Desc]) -> Vec<(Vec<u8>, J)> {
        let elements: Vec<Vec<Member>> = ds.iter().map(|d| self.desc_members(d)).collect();
        let mut out = Vec::new();
        // A decoy element merges into the real one at the same index: only
        // safe when every real element sets every field a decoy may set.
        let complete = ds.iter().all(|d| d.digest.is_some());
        if !self.rng.chance(self.k.dup) || ds.is_empty() {
            let k = self.key(field);
            out.push((k, J::Arr(elements.into_iter().map(Self::obj_of).collect())));
            return out;
        }
        let kinds: &[&str] = if complete {
            &[
                "decoy-first",
                "split",
                "null-between",
                "empty-between",
                "later-partial",
            ]
        } else {
            &["later-partial"]
        };
        let kind = *self.rng.pick(kinds);
        let mt = ds[0].media_type.clone();
        match kind {
            "decoy-first" | "null-between" | "empty-between" => {
                let n = self.rng.range(1, ds.len() + 2);
                let decoys = (0..n).map(|_| self.decoy_desc(&mt)).collect();
                let k = self.key(field);
                out.push((k, J::Arr(decoys)));
                if kind != "decoy-first" {
                    let k = self.key(field);
                    let between = if kind == "null-between" {
                        J::Null
                    } else {
                        J::Arr(Vec::new())
                    };
                    out.push((k, between));
                }
                let k = self.key(field);
                out.push((k, J::Arr(elements.into_iter().map(Self::obj_of).collect())));
            }
            "split" => {
                let (a, b): (Vec<J>, Vec<J>) = elements
                    .into_iter()
                    .map(|e| {
                        let (a, b): (Vec<Member>, Vec<Member>) = e
                            .into_iter()
                            .partition(|(f, _, _)| *f == Some("digest") || f.is_none());
                        (Self::obj_of(a), Self::obj_of(b))
                    })
                    .unzip();
                let k = self.key(field);
                out.push((k, J::Arr(a)));
                let k = self.key(field);
                out.push((k, J::Arr(b)));
            }
            _ => {
                let k = self.key(field);
                out.push((k, J::Arr(elements.into_iter().map(Self::obj_of).collect())));
                let partial = ds
                    .iter()
                    .map(|d| {
                        let mut o = J::obj();
                        let k = self.desc_key("size");
                        o.push(k, J::int(d.size));
                        o
                    })
                    .collect();
                let k = self.key(field);
                out.push((k, J::Arr(partial)));
            }
        }
        self.note_noise(field, kind, ARRAY_NOISE);
        out
    }

    /// `schemaVersion` with noise.
    fn schema_version(&mut self, v: u64) -> Vec<(Vec<u8>, J)> {
        let mut out = Vec::new();
        if self.rng.chance(self.k.dup / 3) {
            if self.rng.chance(50) {
                let k = self.key("schemaVersion");
                out.push((k, J::int(3)));
                let k = self.key("schemaVersion");
                out.push((k, J::int(v)));
                self.notes.note(
                    "dup: schemaVersion decoy-first",
                    format!("`schemaVersion` 3, then {v}"),
                );
            } else {
                let k = self.key("schemaVersion");
                out.push((k, J::int(v)));
                let k = self.key("schemaVersion");
                out.push((k, J::Null));
                self.notes.note(
                    "dup: schemaVersion later-null",
                    "`schemaVersion` then null".into(),
                );
            }
        } else {
            let k = self.key("schemaVersion");
            out.push((k, J::int(v)));
        }
        out
    }

    /// `mediaType` with noise; `optional`: may be left out (OCI).
    fn media_type(&mut self, mt: &str, optional: bool, decoy: &str) -> Vec<(Vec<u8>, J)> {
        let mut out = Vec::new();
        if optional && self.rng.chance(self.k.dup.max(self.k.fold) / 2) {
            self.notes.note("no mediaType", "no `mediaType`".into());
            return out;
        }
        if self.rng.chance(self.k.dup / 3) {
            let k = self.key("mediaType");
            out.push((k, J::str(decoy)));
            self.notes.note(
                "dup: mediaType decoy-first",
                format!("`mediaType` twice, first `{decoy}`"),
            );
        }
        let k = self.key("mediaType");
        out.push((k, J::str(mt)));
        if self.rng.chance(self.k.dup / 4) {
            let k = self.key("mediaType");
            out.push((k, J::Null));
            self.notes
                .note("dup: mediaType later-null", "`mediaType` again as null".into());
        }
        out
    }

    /// Unknown top-level fields.
    fn junk_fields(&mut self, annotations_ok: bool) -> Vec<Vec<(Vec<u8>, J)>> {
        let mut units = Vec::new();
        if annotations_ok && self.rng.chance(20) {
            let mut a = J::obj();
            a.push(b"org.example.case".to_vec(), J::str(&self.uid));
            if self.rng.chance(self.k.junk) {
                if let Some((junk, v)) = self.junk(true) {
                    a.push(b"org.example.junk".to_vec(), v);
                    self.notes.note(
                        &format!("junk: {}", junk_feature(junk)),
                        format!("an annotation holding {}", junk.name()),
                    );
                }
            }
            let k = self.key("annotations");
            units.push(vec![(k, a)]);
        }
        if self.rng.chance(self.k.junk) {
            let names: [&[u8]; 9] = [
                b"x-junk",
                b"layer",
                b"Configs",
                b"manifest",
                b"extra",
                "\u{131}tems".as_bytes(),
                b"blobs",
                b"fsLayers",
                b"x\xffkey",
            ];
            for _ in 0..self.rng.range(1, 3) {
                let name = self.rng.pick(&names).to_vec();
                let junk = self.junk(false);
                let shown = String::from_utf8_lossy(&name).into_owned();
                let (value, what) = if matches!(&name[..], b"blobs" | b"fsLayers") {
                    let d = J::Arr(vec![Junk::Descriptor.value(self.rng)]);
                    (d, "a descriptor naming a digest nothing stores".to_owned())
                } else if let Some((junk, value)) = junk {
                    self.notes.note(
                        &format!("junk: {}", junk_feature(junk)),
                        format!("an unknown field `{shown}` holding {}", junk.name()),
                    );
                    (value, junk.name())
                } else {
                    continue;
                };
                self.notes.note(
                    "unknown fields",
                    format!("an unknown field `{shown}` holding {what}"),
                );
                units.push(vec![(name, value)]);
            }
        }
        units
    }

    /// The document of `units`, rendered, as `media_type`, naming `refs`
    /// (and `subject`).
    fn doc(
        &mut self,
        units: Vec<Vec<(Vec<u8>, J)>>,
        media_type: &str,
        refs: Vec<Ref>,
        subject: Option<String>,
    ) -> Doc {
        Doc {
            bytes: self.render(units),
            media_type: media_type.to_owned(),
            refs,
            subject,
        }
    }

    /// The document's bytes from its units (each a run of members that
    /// must stay in order), maybe shuffled and pretty-printed.
    fn render(&mut self, mut units: Vec<Vec<(Vec<u8>, J)>>) -> Vec<u8> {
        let noisy = self.k.fold + self.k.dup + self.k.junk > 0;
        if noisy && self.rng.chance(15) {
            for i in (1..units.len()).rev() {
                let j = self.rng.below(i + 1);
                units.swap(i, j);
            }
            self.notes
                .note("shuffled keys", "fields in a shuffled order".into());
        }
        let style = if noisy && self.rng.chance(12) {
            self.notes
                .note("pretty", "pretty-printed with tabs and CRLF".into());
            Style::Pretty
        } else {
            Style::Compact
        };
        J::Obj(units.into_iter().flatten().collect()).write(style)
    }

    /// A foreign layer's descriptor: a media type the registry checks
    /// (its URLs must be allowed, and none is by default) or one it does
    /// not, and an odd digest or none.
    fn foreign_desc(&mut self) -> Desc {
        let mt = *self.rng.weighted(&[
            (45, MT_DOCKER_FOREIGN),
            (35, "application/vnd.example.foreign.layer"),
            (20, MT_OCI_NONDIST),
        ]);
        let digest = match self.rng.below(5) {
            0 => None,
            1 => Some("md5:abc".to_owned()),
            2 => Some(format!("sha256:{}", self.rng.hex(64))),
            3 => Some("sha512:short".to_owned()),
            _ => Some("not a digest".to_owned()),
        };
        Desc {
            media_type: mt.to_owned(),
            digest,
            size: self.rng.range(100, 100_000) as u64,
            urls: vec![format!("https://example.invalid/{}", self.uid)],
            platform: None,
        }
    }

    fn note_foreign(&mut self, f: &Desc, docker: bool) {
        let what = match f.digest.as_deref() {
            None => "no digest".to_owned(),
            Some(d) if d.starts_with("sha256:") => "a sha256 nothing stores".to_owned(),
            Some(d) => format!("digest {d:?}"),
        };
        self.notes.note(
            &format!("foreign layer: {what}"),
            format!(
                "a foreign layer ({}{}) with {what}",
                f.media_type,
                if docker { ", in a Docker manifest" } else { "" }
            ),
        );
    }

    /// An image manifest (Docker schema 2 or OCI).
    pub(super) fn image(&mut self, docker: bool) -> Doc {
        let (mt, config_mt, layer_mt) = if docker {
            (MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG, MT_DOCKER_LAYER)
        } else {
            (MT_OCI_MANIFEST, MT_OCI_CONFIG, MT_OCI_LAYER)
        };
        self.notes.note(
            if docker {
                "shape: Docker manifest"
            } else {
                "shape: OCI manifest"
            },
            if docker {
                "Docker image manifest"
            } else {
                "OCI image manifest"
            }
            .into(),
        );
        let n_layers = *self.rng.weighted(&[(5, 0), (45, 1), (35, 2), (15, 3)]);
        let mut layers: Vec<Vec<u8>> = Vec::new();
        if self.rng.chance(15) {
            layers.push(self.rng.pick(self.base).clone());
        }
        for _ in 0..n_layers {
            let l = self.layer_bytes();
            layers.push(l);
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| digest_of("sha256", l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.example.case": self.uid}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("JSON");
        let config_size = config.len() as u64;
        let config_ref = self.blob_ref(Role::Config, config);
        let mut refs = vec![config_ref.clone()];
        let mut descs = Vec::new();
        for l in layers {
            let size = l.len() as u64;
            let r = self.blob_ref(Role::Layer, l);
            descs.push(Desc {
                media_type: layer_mt.to_owned(),
                digest: Some(r.digest.clone()),
                size,
                urls: Vec::new(),
                platform: None,
            });
            refs.push(r);
        }
        if self.rng.chance(self.k.foreign) {
            let f = self.foreign_desc();
            let at = self.rng.below(descs.len() + 1);
            // Drawn all the same when left out, so that nothing else changes.
            if !self.skip.foreign {
                self.note_foreign(&f, docker);
                refs.insert(
                    at + 1,
                    Ref {
                        role: Role::Layer,
                        digest: f.digest.clone().unwrap_or_default(),
                        target: Target::Foreign,
                    },
                );
                descs.insert(at, f);
            }
        }
        let config_desc = Desc {
            media_type: config_mt.to_owned(),
            digest: Some(config_ref.digest.clone()),
            size: config_size,
            urls: Vec::new(),
            platform: None,
        };
        let mut units = vec![
            self.schema_version(2),
            self.media_type(mt, !docker, if docker { MT_DOCKER_LIST } else { MT_OCI_INDEX }),
            self.object_field("config", &config_desc, false),
        ];
        if descs.is_empty() && !docker && self.rng.chance(30) {
            self.notes.note("no layers key", "no `layers` key at all".into());
        } else {
            units.push(self.array_field("layers", &descs));
        }
        units.extend(self.junk_fields(!docker));
        self.doc(units, mt, refs, None)
    }

    /// An index (OCI) or manifest list (Docker) over 1 to 3 children;
    /// with `depth` > 1, the first child is an index of `depth - 1`.
    pub(super) fn index(&mut self, docker: bool, depth: usize) -> Doc {
        let mt = if docker { MT_DOCKER_LIST } else { MT_OCI_INDEX };
        if depth > 1 {
            self.notes.note(
                "shape: nested index",
                format!("a chain of {depth} nested OCI indexes"),
            );
        } else {
            self.notes.note(
                if docker {
                    "shape: Docker list"
                } else {
                    "shape: OCI index"
                },
                if docker {
                    "Docker manifest list"
                } else {
                    "OCI image index"
                }
                .into(),
            );
        }
        let n = self.rng.range(1, 3);
        let mut refs = Vec::new();
        let mut descs = Vec::new();
        let archs = ["amd64", "arm64", "s390x", "ppc64le", "riscv64", "386"];
        for i in 0..n {
            let child = if depth > 1 && i == 0 {
                self.index(false, depth - 1)
            } else if docker {
                let oci = self.rng.chance(10);
                self.image(!oci)
            } else {
                let docker_child = self.rng.chance(30);
                self.image(docker_child)
            };
            let via = *self.rng.weighted(&[
                (100 - self.k.alg.min(40), "put"),
                (12, "sha256"),
                (14, "sha512"),
                (12, "sha384"),
            ]);
            let via = match via {
                "sha512" if self.skip.sha512 => "sha256",
                "sha384" if self.skip.sha384 => "sha256",
                v => v,
            };
            let (digest, put) = if via == "put" {
                (child.digest(), true)
            } else {
                self.notes.note(
                    &format!("child: uploaded as a blob and named by {via}"),
                    format!("a child manifest uploaded as a blob with ?digest={via}: (no manifest PUT) and named so"),
                );
                (digest_of(via, &child.bytes), false)
            };
            descs.push(Desc {
                media_type: child.media_type.clone(),
                digest: Some(digest.clone()),
                size: child.bytes.len() as u64,
                urls: Vec::new(),
                platform: Some(("linux".to_owned(), (*self.rng.pick(&archs)).to_owned())),
            });
            refs.push(Ref {
                role: Role::Child,
                digest,
                target: Target::Manifest {
                    doc: Box::new(child),
                    put,
                },
            });
        }
        let mut units = vec![
            self.schema_version(2),
            self.media_type(
                mt,
                !docker,
                if docker {
                    MT_DOCKER_MANIFEST
                } else {
                    MT_OCI_MANIFEST
                },
            ),
            self.array_field("manifests", &descs),
        ];
        units.extend(self.junk_fields(!docker));
        self.doc(units, mt, refs, None)
    }

    /// An OCI 1.1 referrer of `subject`: artifact type, the empty config,
    /// one payload layer, `subject` (with noise).
    pub(super) fn referrer(&mut self, subject: &Doc) -> Doc {
        self.notes
            .note("shape: referrer", "OCI referrer (untagged, `subject`)".into());
        let config = b"{}".to_vec();
        let config_ref = self.blob_ref(Role::Config, config);
        let payload = serde_json::to_vec(&serde_json::json!({
            "referrer of": subject.digest(),
            "case": self.uid,
        }))
        .expect("JSON");
        let payload_size = payload.len() as u64;
        let layer_ref = self.blob_ref(Role::Layer, payload);
        let config_desc = Desc {
            media_type: MT_OCI_EMPTY.to_owned(),
            digest: Some(config_ref.digest.clone()),
            size: 2,
            urls: Vec::new(),
            platform: None,
        };
        let layer_desc = Desc {
            media_type: "application/vnd.example.sbom+json".to_owned(),
            digest: Some(layer_ref.digest.clone()),
            size: payload_size,
            urls: Vec::new(),
            platform: None,
        };
        let subject_desc = Desc {
            media_type: subject.media_type.clone(),
            digest: Some(subject.digest()),
            size: subject.bytes.len() as u64,
            urls: Vec::new(),
            platform: None,
        };
        let mut units = vec![
            self.schema_version(2),
            self.media_type(MT_OCI_MANIFEST, true, MT_OCI_INDEX),
            vec![(b"artifactType".to_vec(), J::str("application/vnd.example.sbom"))],
            self.object_field("config", &config_desc, false),
            self.array_field("layers", &[layer_desc]),
            self.object_field("subject", &subject_desc, true),
        ];
        units.extend(self.junk_fields(true));
        self.doc(
            units,
            MT_OCI_MANIFEST,
            vec![config_ref, layer_ref],
            Some(subject.digest()),
        )
    }

    /// A schema1 manifest, unsigned (Debian's 2.8.2 refuses schema1 pushes
    /// unless `compatibility.schema1.enabled`, and then wants a signature).
    pub(super) fn schema1(&mut self, repo: &str, tag: &str) -> Doc {
        self.notes
            .note("shape: schema1", "schema1 manifest (unsigned)".into());
        self.notes.skopeo = false;
        let l = self.layer_bytes();
        let r = self.blob_ref(Role::Blob, l);
        let mut o = J::obj();
        o.push(b"schemaVersion".to_vec(), J::int(1));
        o.push(b"name".to_vec(), J::str(repo));
        o.push(b"tag".to_vec(), J::str(tag));
        o.push(b"architecture".to_vec(), J::str("amd64"));
        let mut fs = J::obj();
        let k = self.desc_key("blobSum");
        fs.push(k, J::str(&r.digest));
        let k = self.key("fsLayers");
        o.push(k, J::Arr(vec![fs]));
        let mut h = J::obj();
        h.push(b"v1Compatibility".to_vec(), J::str("{}"));
        o.push(b"history".to_vec(), J::Arr(vec![h]));
        Doc {
            bytes: o.write(Style::Compact),
            media_type: MT_SCHEMA1_SIGNED.to_owned(),
            refs: vec![r],
            subject: None,
        }
    }

    /// An OCI 1.1 release-candidate artifact manifest (`blobs`).
    pub(super) fn artifact(&mut self) -> Doc {
        self.notes.note(
            "shape: OCI artifact manifest",
            "OCI artifact manifest (1.1 rc media type)".into(),
        );
        self.notes.skopeo = false;
        let l = self.layer_bytes();
        let size = l.len() as u64;
        let r = self.blob_ref(Role::Blob, l);
        let d = Desc {
            media_type: "application/vnd.example.blob".to_owned(),
            digest: Some(r.digest.clone()),
            size,
            urls: Vec::new(),
            platform: None,
        };
        let units = vec![
            self.media_type(MT_OCI_ARTIFACT, false, MT_OCI_MANIFEST),
            vec![(b"artifactType".to_vec(), J::str("application/vnd.example.thing"))],
            self.array_field("blobs", &[d]),
        ];
        self.doc(units, MT_OCI_ARTIFACT, vec![r], None)
    }

    /// A plain OCI image (garbage and old images): sha256, no noise.
    pub(super) fn plain_image(&mut self) -> Doc {
        let saved = self.k;
        self.k = Knobs::default();
        let doc = self.image(false);
        self.k = saved;
        doc
    }
}

fn junk_feature(j: Junk) -> String {
    match j {
        Junk::Deep(n) => format!("nesting {n} deep"),
        other => other.name(),
    }
}
