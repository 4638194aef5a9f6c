//! What a manifest references, read as the registry reads it.
//!
//! The registry decodes manifests with Go's `encoding/json` (see
//! [`crate::json`]): it matches object keys to fields case-insensitively
//! (`"Layers"` is `layers`, `"layerſ"` too), lets a later duplicate key
//! overwrite or merge into an earlier one, and accepts strings with invalid
//! UTF-8. Which of those readings a given registry version makes is not
//! ours to guess, so [`parse`] keeps the union: every descriptor under any
//! top-level key Go could take for `manifests`, `config`, `layers`, `blobs`,
//! `fsLayers` or `subject`, in every duplicate, and in each descriptor every
//! string under a key Go could take for `digest` (or `blobSum`). Nothing a
//! registry could serve from a manifest is left out; what only a reader
//! other than ours would see is in [`Manifest::notes`], for a warning.
//!
//! The kind comes from the (last) `mediaType` when there is one, and from
//! the fields present when there is not (OCI allows leaving it out). A
//! document of a kind we do not know is never a leaf: every JSON object
//! anywhere in it with a `digest` string counts as a reference (see
//! [`Manifest::other`]). When in doubt, keep.
//!
//! Only a document no registry could read is an error: not JSON under Go's
//! rules, or not a JSON object. A descriptor without a usable digest names
//! nothing this tool could keep or delete (the registry refuses such a
//! manifest unless the descriptor is a foreign layer, which it does not
//! store): it is a note, never a shorter list of what is kept.
//!
//! Errors carry no path, repository or digest: callers add those.

use std::collections::HashSet;
use std::fmt;

use crate::digest::Digest;
use crate::json::{self, key_is_folded, Doc, Type, Value};

/// `application/vnd.docker.distribution.manifest.v2+json`
pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.artifact.manifest.v1+json` (OCI 1.1 release candidates)
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// `application/vnd.docker.distribution.manifest.v1+json` (schema1, unsigned)
pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// `application/vnd.docker.distribution.manifest.v1+prettyjws` (schema1, signed)
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The format of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Docker image manifest, schema 2.
    DockerV2,
    /// Docker manifest list (multi-arch).
    DockerList,
    /// OCI image manifest.
    OciManifest,
    /// OCI image index.
    OciIndex,
    /// OCI artifact manifest (`blobs` instead of `config` + `layers`).
    OciArtifact,
    /// Docker schema 1, signed or not.
    Schema1,
    /// Anything else: every descriptor in it counts as referenced.
    Unknown,
}

impl Kind {
    /// A short stable name, for records and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::DockerV2 => "docker-v2",
            Kind::DockerList => "docker-list",
            Kind::OciManifest => "oci-manifest",
            Kind::OciIndex => "oci-index",
            Kind::OciArtifact => "oci-artifact",
            Kind::Schema1 => "schema1",
            Kind::Unknown => "unknown",
        }
    }

    /// Whether this kind lists child manifests (a manifest list or an index).
    pub fn is_index(&self) -> bool {
        matches!(self, Kind::DockerList | Kind::OciIndex)
    }

    /// The kind a `mediaType` value names; [`Kind::Unknown`] if none.
    pub fn from_media_type(media_type: &str) -> Kind {
        match media_type {
            DOCKER_V2 => Kind::DockerV2,
            DOCKER_LIST => Kind::DockerList,
            OCI_MANIFEST => Kind::OciManifest,
            OCI_INDEX => Kind::OciIndex,
            OCI_ARTIFACT => Kind::OciArtifact,
            SCHEMA1 | SCHEMA1_SIGNED => Kind::Schema1,
            _ => Kind::Unknown,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reference from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    /// `size`, when it is a non-negative integer.
    pub size: Option<u64>,
    /// `mediaType`, when it is a string.
    pub media_type: Option<String>,
    /// The descriptor has a non-empty `urls`: a foreign layer, which the
    /// registry does not store.
    pub foreign: bool,
}

/// What a manifest references. Each list is in document order, one entry
/// per digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub kind: Kind,
    /// The document's own `mediaType` string (the last one, as the
    /// registry reads it), if it has one.
    pub media_type: Option<String>,
    /// `manifests[]` of an index or manifest list.
    pub children: Vec<Descriptor>,
    /// `config` of an image manifest (more than one only when the document
    /// gives `config` more than once).
    pub configs: Vec<Descriptor>,
    /// Image `layers[]`, artifact `blobs[]`, or schema1 `fsLayers[].blobSum`.
    pub layers: Vec<Descriptor>,
    /// OCI `subject`: the manifest this one refers to (a referrer's target).
    pub subjects: Vec<Descriptor>,
    /// [`Kind::Unknown`] only: every object anywhere in the document with a
    /// valid `digest` string, in document order (pre-order).
    pub other: Vec<Descriptor>,
    /// What another reader could take differently (keys in another case,
    /// duplicates, descriptors without a usable digest): every reading is
    /// kept, and these say so, for a warning.
    pub notes: Vec<String>,
}

impl Manifest {
    /// Every descriptor: children, configs, layers, subjects, other (a
    /// digest may come more than once).
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.children
            .iter()
            .chain(self.configs.iter())
            .chain(self.layers.iter())
            .chain(self.subjects.iter())
            .chain(self.other.iter())
    }
}

/// Why a manifest could not be read. Path-free: callers add where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The bytes are not JSON, as Go's decoder reads JSON.
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON, but not an object (`found` is e.g. "an array").
    NotObject { found: &'static str },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::NotJson {
                line,
                column,
                message,
            } => {
                write!(
                    f,
                    "manifest is not JSON: {message} at line {line} column {column}"
                )
            }
            ManifestError::NotObject { found } => {
                write!(f, "manifest is not a JSON object but {found}")
            }
        }
    }
}

impl std::error::Error for ManifestError {}

/// At most this many notes are kept for one manifest; the last says how
/// many more there were.
const NOTES: usize = 8;

/// The top-level fields that hold references (as Go names them, folded).
const CHILDREN: &str = "manifests";
const CONFIG: &str = "config";
const LAYERS: &str = "layers";
const BLOBS: &str = "blobs";
const FS_LAYERS: &str = "fslayers";
const SUBJECT: &str = "subject";
const MEDIA_TYPE: &str = "mediatype";
const SCHEMA_VERSION: &str = "schemaversion";

/// Reads a manifest's bytes.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let doc = Doc::parse(bytes).map_err(|e| ManifestError::NotJson {
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let top = doc.root();
    if top.ty() != Type::Object {
        return Err(ManifestError::NotObject {
            found: top.ty().article_name(),
        });
    }
    let mut r = Reader::default();
    r.check_spelling(top);

    // Go keeps the last mediaType; a non-string one is a type error there.
    let media_types: Vec<Value> = top.fields(MEDIA_TYPE).collect();
    let last = media_types.last();
    let media_type = last
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let kind = match (&media_type, last) {
        (Some(mt), _) => Kind::from_media_type(mt),
        (None, Some(v)) if !matches!(v.ty(), Type::Null | Type::String) => Kind::Unknown,
        (None, _) => infer_kind(top),
    };
    // Any mediaType this tool does not know, even one a later key
    // overrides, may be what another reader goes by: keep every descriptor.
    let unknown_anywhere = kind == Kind::Unknown
        || media_types
            .iter()
            .filter_map(|v| v.as_str())
            .any(|s| !s.is_empty() && Kind::from_media_type(s) == Kind::Unknown);

    let mut m = Manifest {
        kind,
        media_type,
        children: r.descriptors(top, CHILDREN),
        configs: r.descriptors(top, CONFIG),
        layers: Vec::new(),
        subjects: Vec::new(),
        other: Vec::new(),
        notes: Vec::new(),
    };
    let mut layers = r.descriptors(top, LAYERS);
    layers.extend(r.descriptors(top, BLOBS));
    layers.extend(r.descriptors(top, FS_LAYERS));
    m.layers = dedup(layers);
    m.subjects = r.descriptors(top, SUBJECT);
    if unknown_anywhere {
        m.other = every_descriptor(top);
    }
    m.notes = r.finish();
    Ok(m)
}

/// The kind of a manifest without a `mediaType`, by its fields.
fn infer_kind(top: Value) -> Kind {
    let has = |field: &'static str, ty: Type| top.fields(field).any(|v| v.ty() == ty);
    if has(CHILDREN, Type::Array) {
        Kind::OciIndex
    } else if has(CONFIG, Type::Object) && has(LAYERS, Type::Array) {
        Kind::OciManifest
    } else if top.fields(SCHEMA_VERSION).any(|v| v.as_u64() == Some(1)) || has(FS_LAYERS, Type::Array) {
        Kind::Schema1
    } else if has(BLOBS, Type::Array) {
        Kind::OciArtifact
    } else {
        Kind::Unknown
    }
}

/// Collects descriptors and the notes about them.
#[derive(Default)]
struct Reader {
    notes: Vec<String>,
    more: usize,
}

impl Reader {
    fn note(&mut self, note: String) {
        if self.notes.len() < NOTES {
            self.notes.push(note);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.notes.push(format!("and {} more such notes", self.more));
        }
        self.notes
    }

    /// Notes the fields of `obj` that another reader could take otherwise:
    /// a key given more than once, or spelled in another case.
    fn check_spelling(&mut self, obj: Value) {
        const FIELDS: [&str; 8] = [
            MEDIA_TYPE,
            SCHEMA_VERSION,
            CHILDREN,
            CONFIG,
            LAYERS,
            BLOBS,
            FS_LAYERS,
            SUBJECT,
        ];
        for field in FIELDS {
            self.spelling(obj, field, &String::new);
        }
    }

    fn spelling(&mut self, obj: Value, field: &'static str, at: &dyn Fn() -> String) {
        // The common case, one key spelled as specified, costs no allocation.
        let mut keys = obj
            .members()
            .filter(|(k, _)| json::key_matches(k, field))
            .map(|(k, _)| k);
        let first = keys.next();
        let second = keys.next();
        if second.is_none() && first.is_none_or(|k| k.bytes().all(|b| b.is_ascii()) && k == canonical(field))
        {
            return;
        }
        let keys: Vec<&str> = first.into_iter().chain(second).chain(keys).collect();
        let at = at();
        match keys.as_slice() {
            [] => {}
            [k] if key_is_folded(k, canonical(field)) => self.note(format!(
                "{at}key {k:?} is read as {:?}, as the registry reads it",
                canonical(field)
            )),
            [_] => {}
            ks => self.note(format!(
                "{at}{:?} is given {} times ({}): every one is kept",
                canonical(field),
                ks.len(),
                ks.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Every descriptor under every top-level key that matches `field`: an
    /// object is one, an array's objects are each one.
    fn descriptors(&mut self, top: Value, field: &'static str) -> Vec<Descriptor> {
        let mut found = Vec::new();
        for (key, v) in top.members().filter(|(k, _)| json::key_matches(k, field)) {
            match v.ty() {
                Type::Object => self.descriptor(v, key, None, &mut found),
                Type::Array => {
                    for (i, item) in v.items().enumerate() {
                        if item.ty() == Type::Object {
                            self.descriptor(item, key, Some(i), &mut found);
                        }
                    }
                }
                _ => {}
            }
        }
        dedup(found)
    }

    /// The digests of one descriptor: every string under a key Go could
    /// take for `digest` or `blobSum`.
    fn descriptor(&mut self, obj: Value, key: &str, index: Option<usize>, out: &mut Vec<Descriptor>) {
        // Where the descriptor is, for notes only.
        let at = || match index {
            Some(i) => format!("{key}[{i}]"),
            None => key.to_string(),
        };
        let foreign = obj
            .fields("urls")
            .any(|u| u.ty() == Type::Array && u.items().next().is_some());
        let digest_keys = obj
            .members()
            .filter(|(k, _)| json::key_matches(k, "digest") || json::key_matches(k, "blobsum"));
        let mut any = false;
        for (k, v) in digest_keys {
            any = true;
            let Some(text) = v.as_str() else {
                if !foreign {
                    self.note(format!(
                        "{}.{k} is {}, not a digest: it names nothing",
                        at(),
                        v.ty().article_name()
                    ));
                }
                continue;
            };
            match Digest::parse(text) {
                Ok(digest) => out.push(describe(digest, obj, foreign)),
                Err(e) if !foreign => {
                    self.note(format!("{}.{k}: {e}: it names nothing this tool can keep", at()))
                }
                Err(_) => {}
            }
        }
        if !any && !foreign {
            self.note(format!("{} has no digest: it names nothing", at()));
        }
        self.spelling(obj, "digest", &|| format!("{}: ", at()));
    }
}

/// The spelling the specifications give a folded field name.
fn canonical(field: &'static str) -> &'static str {
    match field {
        MEDIA_TYPE => "mediaType",
        SCHEMA_VERSION => "schemaVersion",
        FS_LAYERS => "fsLayers",
        other => other,
    }
}

/// The optional fields of a descriptor, read leniently (the last of each,
/// as Go reads them): they inform, they do not decide what is kept.
fn describe(digest: Digest, obj: Value, foreign: bool) -> Descriptor {
    Descriptor {
        digest,
        size: obj.fields("size").filter_map(|v| v.as_u64()).last(),
        media_type: obj
            .fields(MEDIA_TYPE)
            .filter_map(|v| v.as_str())
            .last()
            .map(str::to_owned),
        foreign,
    }
}

/// Keeps the first descriptor of each digest.
fn dedup(ds: Vec<Descriptor>) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    ds.into_iter().filter(|d| seen.insert(d.digest)).collect()
}

/// Every object anywhere in the document with a valid digest string under
/// a key Go could take for `digest`, in document order (pre-order), one per
/// digest.
fn every_descriptor(top: Value) -> Vec<Descriptor> {
    let mut found = Vec::new();
    for obj in top.descendants().filter(|v| v.ty() == Type::Object) {
        let foreign = obj
            .fields("urls")
            .any(|u| u.ty() == Type::Array && u.items().next().is_some());
        for v in obj.fields("digest") {
            if let Some(d) = v.as_str().and_then(|s| Digest::parse(s).ok()) {
                found.push(describe(d, obj, foreign));
            }
        }
    }
    dedup(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Named test digests: `<name>` in a test document becomes
    /// `sha256:<sha256 of name>`.
    const NAMES: [&str; 13] = [
        "cfg", "l1", "l2", "foreign", "amd64", "arm64", "inner", "sub", "sbom", "s1a", "s1b", "s1c", "u1",
    ];

    fn dg(name: &str) -> String {
        Digest::sha256_of(name.as_bytes()).to_string()
    }

    fn fill(doc: &str) -> String {
        let mut s = doc.to_owned();
        for n in NAMES {
            s = s.replace(&format!("<{n}>"), &dg(n));
        }
        assert!(!s.contains("<"), "unfilled placeholder in {s}");
        s
    }

    fn digests<'a>(ds: impl IntoIterator<Item = &'a Descriptor>) -> Vec<String> {
        ds.into_iter().map(|d| d.digest.to_string()).collect()
    }

    fn names(ns: &[&str]) -> Vec<String> {
        ns.iter().map(|n| dg(n)).collect()
    }

    const DOCKER_V2_DOC: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "<cfg>"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 1718332879,
         "digest": "<foreign>",
         "urls": ["https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:x"]
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2811321,
         "digest": "<l1>"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 32,
         "digest": "<l2>",
         "urls": []
      }
   ]
}"#;

    const DOCKER_LIST_DOC: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "<amd64>",
         "platform": {"architecture": "amd64", "os": "linux"}
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "<arm64>",
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}
      }
   ]
}"#;

    const OCI_REFERRER_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/spdx+json",
  "config": {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
    "data": "e30="
  },
  "layers": [
    {
      "mediaType": "application/spdx+json",
      "digest": "<sbom>",
      "size": 12345,
      "annotations": {"org.opencontainers.image.title": "sbom.spdx.json"}
    }
  ],
  "subject": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "<sub>",
    "size": 1234
  },
  "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"}
}"#;

    const OCI_INDEX_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "<amd64>",
      "size": 1024,
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "digest": "<inner>",
      "size": 512
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "<arm64>",
      "size": 1024,
      "platform": {"architecture": "unknown", "os": "unknown"},
      "annotations": {"vnd.docker.reference.type": "attestation-manifest"}
    }
  ],
  "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "<sub>", "size": 99}
}"#;

    const OCI_ARTIFACT_DOC: &str = r#"{
  "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
  "artifactType": "application/vnd.example.signature",
  "blobs": [
    {"mediaType": "application/octet-stream", "digest": "<l1>", "size": 10},
    {"mediaType": "application/octet-stream", "digest": "<l2>", "size": 20}
  ],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "<sub>", "size": 7}
}"#;

    const SCHEMA1_SIGNED_DOC: &str = r#"{
   "schemaVersion": 1,
   "name": "library/hello",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      {"blobSum": "<s1a>"},
      {"blobSum": "<s1b>"},
      {"blobSum": "<s1a>"},
      {"blobSum": "<s1c>"},
      {"blobSum": "<s1b>"}
   ],
   "history": [
      {"v1Compatibility": "{\"id\":\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\"}"},
      {"v1Compatibility": "{\"id\":\"31cbccb51277105ba3ae35ce33c22b69c9e3f1002e76e4c736a2e8ebff9d7b5d\"}"}
   ],
   "signatures": [
      {
         "header": {
            "jwk": {"crv": "P-256", "kid": "OD6I:6DRK:JXEJ", "kty": "EC", "x": "3gAw", "y": "t72N"},
            "alg": "ES256"
         },
         "signature": "XREm0L8WNn27Ga_iE_vRnTxVMhhYY0Zst_FfkKopg6gWSoTOZTuW4rK0fg_IqnKkEKlbD83tD46LKEGi5aIVFg",
         "protected": "eyJmb3JtYXRMZW5ndGgiOjY2MjgsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNS0wNC0wOFQxODo1Mjo1OVoifQ"
      }
   ]
}"#;

    const UNKNOWN_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.example.future.manifest.v9+json",
  "digest": "<cfg>",
  "parts": [
    {"thing": {"digest": "<l1>", "size": 5, "urls": ["https://x"]}},
    {"digest": "not-a-digest"},
    {"digest": 42},
    [[{"mediaType": "x/y", "digest": "<l2>"}]],
    {"digest": "<l1>"}
  ],
  "layers": "not even a list",
  "subject": {"digest": "<sub>"}
}"#;

    struct Case {
        name: &'static str,
        doc: &'static str,
        kind: Kind,
        media_type: Option<&'static str>,
        children: &'static [&'static str],
        config: Option<&'static str>,
        layers: &'static [&'static str],
        subject: Option<&'static str>,
        other: &'static [&'static str],
    }

    const EMPTY_CONFIG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn every_format_yields_its_references() {
        let table = [
            Case {
                name: "docker schema2 with a foreign layer",
                doc: DOCKER_V2_DOC,
                kind: Kind::DockerV2,
                media_type: Some(DOCKER_V2),
                children: &[],
                config: Some("cfg"),
                layers: &["foreign", "l1", "l2"],
                subject: None,
                other: &[],
            },
            Case {
                name: "docker manifest list",
                doc: DOCKER_LIST_DOC,
                kind: Kind::DockerList,
                media_type: Some(DOCKER_LIST),
                children: &["amd64", "arm64"],
                config: None,
                layers: &[],
                subject: None,
                other: &[],
            },
            Case {
                name: "oci index holding an index, with subject",
                doc: OCI_INDEX_DOC,
                kind: Kind::OciIndex,
                media_type: Some(OCI_INDEX),
                children: &["amd64", "inner", "arm64"],
                config: None,
                layers: &[],
                subject: Some("sub"),
                other: &[],
            },
            Case {
                name: "oci artifact manifest",
                doc: OCI_ARTIFACT_DOC,
                kind: Kind::OciArtifact,
                media_type: Some(OCI_ARTIFACT),
                children: &[],
                config: None,
                layers: &["l1", "l2"],
                subject: Some("sub"),
                other: &[],
            },
            Case {
                name: "schema1 signed, duplicates dropped",
                doc: SCHEMA1_SIGNED_DOC,
                kind: Kind::Schema1,
                media_type: None,
                children: &[],
                config: None,
                layers: &["s1a", "s1b", "s1c"],
                subject: None,
                other: &[],
            },
            Case {
                name: "oci manifest without mediaType",
                doc: r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"<cfg>","size":7023},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"<l1>","size":32654},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"<l2>","size":16724}]}"#,
                kind: Kind::OciManifest,
                media_type: None,
                children: &[],
                config: Some("cfg"),
                layers: &["l1", "l2"],
                subject: None,
                other: &[],
            },
            Case {
                name: "oci index without mediaType",
                doc: r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7143,"digest":"<amd64>","platform":{"architecture":"ppc64le","os":"linux"}}]}"#,
                kind: Kind::OciIndex,
                media_type: None,
                children: &["amd64"],
                config: None,
                layers: &[],
                subject: None,
                other: &[],
            },
            Case {
                name: "schema1 unsigned by mediaType",
                doc: r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json","fsLayers":[{"blobSum":"<s1c>"}]}"#,
                kind: Kind::Schema1,
                media_type: Some(SCHEMA1),
                children: &[],
                config: None,
                layers: &["s1c"],
                subject: None,
                other: &[],
            },
            Case {
                name: "schema1 prettyjws mediaType",
                doc: r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws","fsLayers":[{"blobSum":"<s1a>"},{"blobSum":"<s1a>"}]}"#,
                kind: Kind::Schema1,
                media_type: Some(SCHEMA1_SIGNED),
                children: &[],
                config: None,
                layers: &["s1a"],
                subject: None,
                other: &[],
            },
            Case {
                name: "artifact without mediaType",
                doc: r#"{"artifactType":"x/y","blobs":[{"digest":"<l2>","size":1}]}"#,
                kind: Kind::OciArtifact,
                media_type: None,
                children: &[],
                config: None,
                layers: &["l2"],
                subject: None,
                other: &[],
            },
            Case {
                name: "unknown media type, nested descriptors",
                doc: UNKNOWN_DOC,
                kind: Kind::Unknown,
                media_type: Some("application/vnd.example.future.manifest.v9+json"),
                children: &[],
                config: None,
                layers: &[],
                subject: Some("sub"),
                other: &["cfg", "l1", "l2", "sub"],
            },
            Case {
                name: "no mediaType and no telling fields",
                doc: r#"{"schemaVersion":2,"config":{"digest":"<cfg>"},"stuff":[{"digest":"<u1>"}]}"#,
                kind: Kind::Unknown,
                media_type: None,
                children: &[],
                config: Some("cfg"),
                layers: &[],
                subject: None,
                other: &["cfg", "u1"],
            },
            Case {
                name: "non-string mediaType",
                doc: r#"{"mediaType":7,"manifests":[{"digest":"<amd64>"}]}"#,
                kind: Kind::Unknown,
                media_type: None,
                children: &["amd64"],
                config: None,
                layers: &[],
                subject: None,
                other: &["amd64"],
            },
            Case {
                name: "empty mediaType is inferred; absent layers read as empty",
                doc: r#"{"mediaType":"","manifests":[]}"#,
                kind: Kind::OciIndex,
                media_type: None,
                children: &[],
                config: None,
                layers: &[],
                subject: None,
                other: &[],
            },
            Case {
                name: "docker v2 without layers field",
                doc: r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"<cfg>"}}"#,
                kind: Kind::DockerV2,
                media_type: Some(DOCKER_V2),
                children: &[],
                config: Some("cfg"),
                layers: &[],
                subject: None,
                other: &[],
            },
        ];
        for c in table {
            let doc = fill(c.doc);
            let m = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(m.kind, c.kind, "{}", c.name);
            assert_eq!(m.media_type.as_deref(), c.media_type, "{}", c.name);
            assert_eq!(digests(&m.children), names(c.children), "{}", c.name);
            assert_eq!(
                m.configs.first().map(|d| d.digest.to_string()),
                c.config.map(dg),
                "{}",
                c.name
            );
            assert!(m.configs.len() <= 1, "{}", c.name);
            assert_eq!(digests(&m.layers), names(c.layers), "{}", c.name);
            assert_eq!(
                m.subjects.first().map(|d| d.digest.to_string()),
                c.subject.map(dg),
                "{}",
                c.name
            );
            assert!(m.subjects.len() <= 1, "{}", c.name);
            assert!(m.notes.is_empty(), "{}: {:?}", c.name, m.notes);
            assert_eq!(digests(&m.other), names(c.other), "{}", c.name);
            let total = c.children.len()
                + c.layers.len()
                + c.other.len()
                + usize::from(c.config.is_some())
                + usize::from(c.subject.is_some());
            assert_eq!(m.references().count(), total, "{}", c.name);
        }
    }

    #[test]
    fn descriptor_details() {
        let m = parse(fill(DOCKER_V2_DOC).as_bytes()).unwrap();
        let cfg = &m.configs[0];
        assert_eq!(cfg.size, Some(1469));
        assert_eq!(
            cfg.media_type.as_deref(),
            Some("application/vnd.docker.container.image.v1+json")
        );
        assert!(!cfg.foreign);
        assert!(m.layers[0].foreign);
        assert_eq!(m.layers[0].size, Some(1_718_332_879));
        assert!(!m.layers[1].foreign);
        assert!(!m.layers[2].foreign, "empty urls is not foreign");
        assert_eq!(digests(m.references()), names(&["cfg", "foreign", "l1", "l2"]));

        let m = parse(fill(OCI_REFERRER_DOC).as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::OciManifest);
        assert_eq!(m.configs[0].digest.to_string(), EMPTY_CONFIG);
        assert_eq!(digests(&m.layers), names(&["sbom"]));
        let subject = &m.subjects[0];
        assert_eq!(subject.digest.to_string(), dg("sub"));
        assert_eq!(subject.size, Some(1234));
        assert_eq!(subject.media_type.as_deref(), Some(OCI_MANIFEST));
        let all = digests(m.references());
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], EMPTY_CONFIG);
        assert_eq!(all[1..], names(&["sbom", "sub"]));

        // Unknown: the optional fields are read from where the digest was.
        let m = parse(fill(UNKNOWN_DOC).as_bytes()).unwrap();
        assert!(m.other[1].foreign);
        assert_eq!(m.other[1].size, Some(5));
        assert_eq!(m.other[2].media_type.as_deref(), Some("x/y"));
    }

    #[test]
    fn kinds() {
        assert!(Kind::DockerList.is_index());
        assert!(Kind::OciIndex.is_index());
        for k in [
            Kind::DockerV2,
            Kind::OciManifest,
            Kind::OciArtifact,
            Kind::Schema1,
            Kind::Unknown,
        ] {
            assert!(!k.is_index(), "{k}");
        }
        assert_eq!(Kind::from_media_type(SCHEMA1_SIGNED), Kind::Schema1);
        assert_eq!(Kind::from_media_type("application/json"), Kind::Unknown);
        assert_eq!(Kind::OciArtifact.name(), "oci-artifact");
    }

    #[test]
    fn large_manifest() {
        let layers: Vec<String> = (0..20_000i32)
            .map(|i| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{i}}}"#,
                    Digest::sha256_of(&i.to_le_bytes())
                )
            })
            .collect();
        let doc = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{EMPTY_CONFIG}"}},"layers":[{}]}}"#,
            layers.join(",")
        );
        let m = parse(doc.as_bytes()).unwrap();
        assert_eq!(m.layers.len(), 20_000);
        assert_eq!(
            m.layers[19_999].digest,
            Digest::sha256_of(&19_999i32.to_le_bytes())
        );
        assert_eq!(m.layers[19_999].size, Some(19_999));
    }

    #[test]
    fn deep_unknown_document_does_not_blow_the_stack() {
        // Go reads documents nested up to 10,000 levels; so do we.
        let depth = 9_990;
        let doc = format!(
            r#"{{"mediaType":"x/y","a":{}{{"digest":"{EMPTY_CONFIG}"}}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let m = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse(doc.as_bytes()).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(digests(&m.other), vec![EMPTY_CONFIG.to_string()]);
    }

    /// An OCI image manifest with the given members after `schemaVersion`.
    fn image_with(members: &str) -> Manifest {
        let doc = fill(&format!(r#"{{"schemaVersion":2,{members}}}"#));
        parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"))
    }

    const OCI_MT: &str = r#""mediaType":"application/vnd.oci.image.manifest.v1+json""#;

    /// Go's decoder matches keys case-insensitively and lets a later
    /// duplicate win (or merge into the earlier value): every reading is kept.
    #[test]
    fn keys_are_read_as_the_registry_reads_them_and_every_duplicate_is_kept() {
        struct Union {
            name: &'static str,
            members: String,
            children: &'static [&'static str],
            configs: &'static [&'static str],
            layers: &'static [&'static str],
            subjects: &'static [&'static str],
            note: &'static str,
        }
        let cases = [
            Union {
                name: "Layers instead of layers",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"Layers":[{{"digest":"<l1>"}}]"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1"],
                subjects: &[],
                note: r#"key "Layers" is read as "layers""#,
            },
            Union {
                name: "config and Config, the second a partial object that merges",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"Config":{{"size":5}},"layers":[]"#),
                children: &[],
                configs: &["cfg"],
                layers: &[],
                subjects: &[],
                note: r#""config" is given 2 times ("config", "Config")"#,
            },
            Union {
                name: "config and Config with two digests",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"Config":{{"digest":"<u1>"}},"layers":[]"#),
                children: &[],
                configs: &["cfg", "u1"],
                layers: &[],
                subjects: &[],
                note: "given 2 times",
            },
            Union {
                name: "layers twice, the second null",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"layers":[{{"digest":"<l1>"}}],"layers":null"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1"],
                subjects: &[],
                note: r#""layers" is given 2 times"#,
            },
            Union {
                name: "long s and the Kelvin sign fold to ASCII",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"layer\u017f":[{{"digest":"<l1>"}}],"\u017fubject":{{"digest":"<sub>"}}"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1"],
                subjects: &["sub"],
                note: "read as \"layers\"",
            },
            Union {
                name: "Digest and digest in one descriptor: both",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"layers":[{{"digest":"<l1>","DIGEST":"<l2>"}}]"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1", "l2"],
                subjects: &[],
                note: r#"layers[0]: "digest" is given 2 times"#,
            },
            Union {
                name: "dotless i (Go 1.21 folds it)",
                members: format!(r#"{OCI_MT},"config":{{"d\u0131gest":"<cfg>"}},"layers":[]"#),
                children: &[],
                configs: &["cfg"],
                layers: &[],
                subjects: &[],
                note: "read as \"digest\"",
            },
            Union {
                name: "an index with Manifests and a manifest list mediaType given twice",
                members: r#""mediaType":"application/vnd.oci.image.manifest.v1+json","MediaType":"application/vnd.oci.image.index.v1+json","Manifests":[{"digest":"<amd64>"}],"manifests":[{"digest":"<arm64>"}]"#.into(),
                children: &["amd64", "arm64"],
                configs: &[],
                layers: &[],
                subjects: &[],
                note: r#""mediaType" is given 2 times"#,
            },
            Union {
                name: "an image that also has manifests (served as an index without mediaType)",
                members: r#""config":{"digest":"<cfg>"},"layers":[{"digest":"<l1>"}],"manifests":[{"digest":"<inner>"}]"#.into(),
                children: &["inner"],
                configs: &["cfg"],
                layers: &["l1"],
                subjects: &[],
                note: "",
            },
            Union {
                name: "escaped key",
                members: format!(r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"\u006cayers":[{{"digest":"<l1>"}}]"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1"],
                subjects: &[],
                note: "",
            },
            Union {
                name: "a config given as an array, blobs and fsLayers beside layers",
                members: format!(r#"{OCI_MT},"config":[{{"digest":"<cfg>"}}],"layers":[{{"digest":"<l1>"}}],"blobs":[{{"digest":"<l2>"}}],"fsLayers":[{{"blobSum":"<s1a>"}}]"#),
                children: &[],
                configs: &["cfg"],
                layers: &["l1", "l2", "s1a"],
                subjects: &[],
                note: "",
            },
        ];
        for c in cases {
            let m = image_with(&c.members);
            assert_eq!(digests(&m.children), names(c.children), "{}", c.name);
            assert_eq!(digests(&m.configs), names(c.configs), "{}", c.name);
            assert_eq!(digests(&m.layers), names(c.layers), "{}", c.name);
            assert_eq!(digests(&m.subjects), names(c.subjects), "{}", c.name);
            if c.note.is_empty() {
                assert!(m.notes.is_empty(), "{}: {:?}", c.name, m.notes);
            } else {
                assert!(
                    m.notes.iter().any(|n| n.contains(c.note)),
                    "{}: {:?}",
                    c.name,
                    m.notes
                );
            }
        }
    }

    #[test]
    fn the_last_media_type_names_the_kind_and_an_unknown_one_anywhere_keeps_everything() {
        let m = image_with(
            r#""mediaType":"x/unknown","mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"<cfg>"},"layers":[],"extra":{"digest":"<u1>"}"#,
        );
        assert_eq!(m.kind, Kind::OciManifest);
        assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(digests(&m.configs), names(&["cfg"]));
        assert_eq!(
            digests(&m.other),
            names(&["cfg", "u1"]),
            "an unknown mediaType keeps every descriptor"
        );

        let m = image_with(
            r#""MEDIATYPE":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]"#,
        );
        assert_eq!(m.kind, Kind::DockerList);
        assert!(m.other.is_empty());
    }

    /// What the registry accepts but names nothing stored: foreign layers
    /// with any digest or none (it does not check them), and descriptors
    /// whose digest no registry could use. Never an error, never a reason
    /// to keep less.
    #[test]
    fn descriptors_without_a_usable_digest_are_notes_not_errors() {
        let table: [(&str, &str, &[&str], &str); 8] = [
            (
                "bad digest in a layer",
                r#""config":{"digest":"<cfg>"},"layers":[{"digest":"<l1>"},{"digest":"sha256:ZZZ"}]"#,
                &["l1"],
                "layers[1].digest",
            ),
            (
                "missing digest in a layer",
                r#""config":{"digest":"<cfg>"},"layers":[{"size":3},{"digest":"<l2>"}]"#,
                &["l2"],
                "layers[0] has no digest",
            ),
            (
                "numeric digest",
                r#""config":{"digest":"<cfg>"},"layers":[{"digest":1}]"#,
                &[],
                "layers[0].digest is a number",
            ),
            (
                "an algorithm no registry knows",
                r#""config":{"digest":"<cfg>"},"layers":[{"digest":"blake3:abcd"}]"#,
                &[],
                "unknown algorithm",
            ),
            (
                "a foreign layer with a garbage digest (the registry accepts it)",
                r#""config":{"digest":"<cfg>"},"layers":[{"digest":"md5:abc","urls":["http://x/y"]},{"digest":"<l1>"}]"#,
                &["l1"],
                "",
            ),
            (
                "a foreign layer without a digest (the registry accepts it)",
                r#""config":{"digest":"<cfg>"},"layers":[{"size":3,"urls":["http://x/y"]},{"digest":"<l2>"}]"#,
                &["l2"],
                "",
            ),
            (
                "layers not a list",
                r#""config":{"digest":"<cfg>"},"layers":"nope""#,
                &[],
                "",
            ),
            (
                "a layer that is not an object",
                r#""config":{"digest":"<cfg>"},"layers":["<l1>",{"digest":"<l2>"}]"#,
                &["l2"],
                "",
            ),
        ];
        for (name, members, layers, note) in table {
            let m = image_with(&format!("{OCI_MT},{members}"));
            assert_eq!(digests(&m.configs), names(&["cfg"]), "{name}");
            assert_eq!(digests(&m.layers), names(layers), "{name}");
            if note.is_empty() {
                assert!(m.notes.is_empty(), "{name}: {:?}", m.notes);
            } else {
                assert!(m.notes.iter().any(|n| n.contains(note)), "{name}: {:?}", m.notes);
            }
        }
        let many: Vec<String> = (0..20).map(|_| r#"{"size":1}"#.to_string()).collect();
        let m = image_with(&format!(
            r#"{OCI_MT},"config":{{"digest":"<cfg>"}},"layers":[{}]"#,
            many.join(",")
        ));
        assert_eq!(m.notes.len(), NOTES + 1);
        assert!(m.notes[NOTES].contains("12 more"), "{:?}", m.notes);
    }

    /// What Go accepts that serde_json does not: invalid UTF-8 and lone
    /// surrogates in strings.
    #[test]
    fn strings_go_accepts_are_read() {
        let mut doc = fill(&format!(
            r#"{{"schemaVersion":2,{OCI_MT},"config":{{"digest":"<cfg>"}},"layers":[{{"digest":"<l1>"}}],"annotations":{{"a":"\ud800","b":"XX"}}}}"#
        ))
        .into_bytes();
        let at = doc.windows(2).position(|w| w == b"XX").unwrap();
        doc[at] = 0xff;
        doc[at + 1] = 0xc0;
        let m = parse(&doc).unwrap();
        assert_eq!(digests(&m.layers), names(&["l1"]));
    }

    #[test]
    fn errors() {
        type Check = fn(&ManifestError) -> bool;
        let table: [(&str, &str, Check, &str); 7] = [
            (
                "not json",
                "{\"schemaVersion\": 2,\n  \"layers\": [ oops ]}",
                |e| matches!(e, ManifestError::NotJson { line: 2, .. }),
                "not JSON",
            ),
            (
                "empty",
                "",
                |e| {
                    matches!(
                        e,
                        ManifestError::NotJson {
                            line: 1,
                            column: 0,
                            ..
                        }
                    )
                },
                "unexpected end",
            ),
            (
                "binary garbage",
                "\u{1f}\u{8b}\u{8}",
                |e| matches!(e, ManifestError::NotJson { .. }),
                "not JSON",
            ),
            (
                "trailing garbage",
                r#"{"manifests":[]} x"#,
                |e| matches!(e, ManifestError::NotJson { .. }),
                "after top-level value",
            ),
            (
                "json array",
                r#" [{"digest":"<l1>"}]"#,
                |e| matches!(e, ManifestError::NotObject { found: "an array" }),
                "not a JSON object but an array",
            ),
            (
                "json string",
                r#""sha256:abc""#,
                |e| matches!(e, ManifestError::NotObject { found: "a string" }),
                "a string",
            ),
            (
                "deeper than Go reads",
                &format!("{{\"a\":{}{}}}", "[".repeat(10_001), "]".repeat(10_001)),
                |e| matches!(e, ManifestError::NotJson { .. }),
                "max depth",
            ),
        ];
        for (name, doc, check, text) in table {
            let doc = fill(doc);
            let e = parse(doc.as_bytes()).expect_err(name);
            assert!(check(&e), "{name}: got {e:?}");
            let shown = e.to_string();
            assert!(shown.contains(text), "{name}: {shown:?} lacks {text:?}");
            let _: &dyn std::error::Error = &e;
        }
    }

    #[test]
    fn not_json_error_carries_position() {
        let e = parse(b"{\n\n  \"a\": }").unwrap_err();
        let ManifestError::NotJson { line, column, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*line, *column), (3, 8));
        assert!(e.to_string().contains("line 3 column 8"), "{e}");
    }
}
