//! What a manifest references, for every format the registry stores.
//!
//! [`parse`] reads the exact bytes of a manifest and returns the descriptors it
//! names: the child manifests of an index or list, the config and layers of an
//! image, the blobs of an OCI artifact manifest, the `fsLayers` of a schema1
//! manifest, and the OCI `subject`.
//!
//! The kind comes from the `mediaType` field when there is one, and from the
//! fields present when there is not (OCI allows leaving it out). A document of
//! a kind we do not know is never a leaf: every JSON object anywhere in it with
//! a `digest` string that parses as a digest counts as a reference (see
//! [`Manifest::other`]). When in doubt, keep.
//!
//! For the known kinds parsing fails closed: a descriptor whose digest is
//! missing or invalid, a list that is not a list, or an image manifest without
//! a config is an error, never a silently shorter list of references. A list
//! field that is absent altogether (`layers`, `manifests`, `blobs`, `fsLayers`)
//! reads as empty, as the registry itself reads it.
//!
//! Errors carry no path, repository or digest: callers add those.

use std::collections::HashSet;
use std::fmt;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::digest::{Digest, DigestError};

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

/// What a manifest references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub kind: Kind,
    /// The document's own `mediaType` string, if it has one.
    pub media_type: Option<String>,
    /// `manifests[]` of an index or manifest list.
    pub children: Vec<Descriptor>,
    /// `config` of an image manifest.
    pub config: Option<Descriptor>,
    /// Image `layers[]`, artifact `blobs[]`, or schema1 `fsLayers[].blobSum`
    /// (schema1 repeats layers; duplicates are dropped, first one kept). In
    /// document order.
    pub layers: Vec<Descriptor>,
    /// OCI `subject`: the manifest this one refers to (a referrer's target).
    pub subject: Option<Descriptor>,
    /// [`Kind::Unknown`] only: every object anywhere in the document with a
    /// valid `digest` string, in document order, one per digest.
    pub other: Vec<Descriptor>,
}

impl Manifest {
    /// Every descriptor: children, config, layers, subject, other.
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.children
            .iter()
            .chain(self.config.iter())
            .chain(self.layers.iter())
            .chain(self.subject.iter())
            .chain(self.other.iter())
    }
}

/// Why a manifest could not be read. Path-free: callers add where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The bytes are not JSON.
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON, but not an object (`found` is e.g. "an array").
    NotObject { found: &'static str },
    /// A field has the wrong JSON type.
    WrongType { field: String, expected: &'static str },
    /// A digest field is not a valid digest.
    InvalidDigest { field: String, error: DigestError },
    /// A required field is missing (or null).
    MissingField { field: String },
    /// Any other structural problem (e.g. a duplicate field).
    Malformed { message: String },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::NotJson { message, .. } => write!(f, "manifest is not JSON: {message}"),
            ManifestError::NotObject { found } => {
                write!(f, "manifest is not a JSON object but {found}")
            }
            ManifestError::WrongType { field, expected } => {
                write!(f, "manifest field {field} is not {expected}")
            }
            ManifestError::InvalidDigest { field, error } => {
                write!(f, "manifest field {field}: {error}")
            }
            ManifestError::MissingField { field } => {
                write!(f, "manifest has no {field}")
            }
            ManifestError::Malformed { message } => write!(f, "malformed manifest: {message}"),
        }
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    fn from_json(e: serde_json::Error) -> ManifestError {
        match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ManifestError::NotJson {
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                }
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => ManifestError::Malformed {
                message: e.to_string(),
            },
        }
    }
}

/// The top-level fields that decide the kind and hold the references; the
/// rest of the document (history, signatures, annotations) is skipped
/// without being kept.
#[derive(Deserialize)]
struct Top {
    #[serde(rename = "mediaType")]
    media_type: Option<Value>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<Value>,
    manifests: Option<Value>,
    config: Option<Value>,
    layers: Option<Value>,
    blobs: Option<Value>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<Value>,
    subject: Option<Value>,
}

/// Where in the document a value is; formatted only for errors.
#[derive(Clone, Copy)]
enum Path<'a> {
    Field(&'static str),
    Item(&'static str, usize),
    Sub(&'a Path<'a>, &'static str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Field(name) => f.write_str(name),
            Path::Item(name, i) => write!(f, "{name}[{i}]"),
            Path::Sub(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

/// Reads a manifest's bytes.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    // A derived struct would accept a JSON array positionally: refuse anything
    // that does not start as an object, telling "not JSON" from "not an object".
    let first = bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Err(e) => ManifestError::from_json(e),
            Ok(_) => ManifestError::NotObject {
                found: match first {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    Some(b'n') => "null",
                    _ => "a number",
                },
            },
        });
    }
    let top: Top = serde_json::from_slice(bytes).map_err(ManifestError::from_json)?;

    let media_type = match &top.media_type {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let kind = match (&media_type, &top.media_type) {
        (Some(mt), _) => Kind::from_media_type(mt),
        // A mediaType that is there but not a string: nothing we know.
        (None, Some(v)) if !v.is_null() && !matches!(v, Value::String(_)) => Kind::Unknown,
        (None, _) => infer_kind(&top),
    };

    let mut m = Manifest {
        kind,
        media_type,
        children: Vec::new(),
        config: None,
        layers: Vec::new(),
        subject: None,
        other: Vec::new(),
    };
    match kind {
        Kind::DockerV2 | Kind::OciManifest => {
            let config = top.config.as_ref().filter(|v| !v.is_null());
            let Some(config) = config else {
                return Err(ManifestError::MissingField {
                    field: "config".into(),
                });
            };
            m.config = Some(descriptor(config, Path::Field("config"))?);
            m.layers = descriptor_list(top.layers.as_ref(), "layers")?;
        }
        Kind::DockerList | Kind::OciIndex => {
            m.children = descriptor_list(top.manifests.as_ref(), "manifests")?;
        }
        Kind::OciArtifact => {
            m.layers = descriptor_list(top.blobs.as_ref(), "blobs")?;
        }
        Kind::Schema1 => {
            m.layers = schema1_layers(top.fs_layers.as_ref())?;
        }
        Kind::Unknown => {
            let doc: Value = serde_json::from_slice(bytes).map_err(ManifestError::from_json)?;
            m.other = every_descriptor(&doc);
        }
    }
    if !matches!(kind, Kind::Schema1 | Kind::Unknown) {
        if let Some(subject) = top.subject.as_ref().filter(|v| !v.is_null()) {
            m.subject = Some(descriptor(subject, Path::Field("subject"))?);
        }
    }
    Ok(m)
}

/// The kind of a manifest without a `mediaType`, by its fields.
fn infer_kind(top: &Top) -> Kind {
    let is_array = |v: &Option<Value>| matches!(v, Some(Value::Array(_)));
    if is_array(&top.manifests) {
        Kind::OciIndex
    } else if matches!(top.config, Some(Value::Object(_))) && is_array(&top.layers) {
        Kind::OciManifest
    } else if top.schema_version.as_ref().and_then(Value::as_u64) == Some(1) || is_array(&top.fs_layers) {
        Kind::Schema1
    } else if is_array(&top.blobs) {
        Kind::OciArtifact
    } else {
        Kind::Unknown
    }
}

/// A descriptor of a known kind: `digest` must be there and valid.
fn descriptor(v: &Value, path: Path<'_>) -> Result<Descriptor, ManifestError> {
    let Value::Object(obj) = v else {
        return Err(ManifestError::WrongType {
            field: path.to_string(),
            expected: "an object",
        });
    };
    let digest = match obj.get("digest") {
        None | Some(Value::Null) => {
            return Err(ManifestError::MissingField {
                field: Path::Sub(&path, "digest").to_string(),
            })
        }
        Some(Value::String(s)) => Digest::parse(s).map_err(|error| ManifestError::InvalidDigest {
            field: Path::Sub(&path, "digest").to_string(),
            error,
        })?,
        Some(_) => {
            return Err(ManifestError::WrongType {
                field: Path::Sub(&path, "digest").to_string(),
                expected: "a string",
            })
        }
    };
    Ok(describe(digest, obj))
}

/// The optional fields of a descriptor, read leniently: they inform, they
/// do not decide what is kept.
fn describe(digest: Digest, obj: &serde_json::Map<String, Value>) -> Descriptor {
    Descriptor {
        digest,
        size: obj.get("size").and_then(Value::as_u64),
        media_type: obj.get("mediaType").and_then(Value::as_str).map(str::to_owned),
        foreign: matches!(obj.get("urls"), Some(Value::Array(a)) if !a.is_empty()),
    }
}

/// A list of descriptors; absent or null reads as empty.
fn descriptor_list(v: Option<&Value>, field: &'static str) -> Result<Vec<Descriptor>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| descriptor(item, Path::Item(field, i)))
            .collect(),
        Some(_) => Err(ManifestError::WrongType {
            field: field.into(),
            expected: "an array",
        }),
    }
}

/// Schema1 `fsLayers[].blobSum`, first occurrence of each digest kept.
fn schema1_layers(v: Option<&Value>) -> Result<Vec<Descriptor>, ManifestError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ManifestError::WrongType {
                field: "fsLayers".into(),
                expected: "an array",
            })
        }
    };
    let mut seen = HashSet::new();
    let mut layers = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = Path::Item("fsLayers", i);
        let Value::Object(obj) = item else {
            return Err(ManifestError::WrongType {
                field: path.to_string(),
                expected: "an object",
            });
        };
        let digest = match obj.get("blobSum") {
            None | Some(Value::Null) => {
                return Err(ManifestError::MissingField {
                    field: Path::Sub(&path, "blobSum").to_string(),
                })
            }
            Some(Value::String(s)) => Digest::parse(s).map_err(|error| ManifestError::InvalidDigest {
                field: Path::Sub(&path, "blobSum").to_string(),
                error,
            })?,
            Some(_) => {
                return Err(ManifestError::WrongType {
                    field: Path::Sub(&path, "blobSum").to_string(),
                    expected: "a string",
                })
            }
        };
        if seen.insert(digest) {
            layers.push(Descriptor {
                digest,
                size: None,
                media_type: None,
                foreign: false,
            });
        }
    }
    Ok(layers)
}

/// Every object anywhere in `doc` whose `digest` is a valid digest string,
/// in document order (pre-order), one per digest. Iterative, so nesting
/// depth costs heap, not stack.
fn every_descriptor(doc: &Value) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(obj) => {
                if let Some(Value::String(s)) = obj.get("digest") {
                    if let Ok(digest) = Digest::parse(s) {
                        if seen.insert(digest) {
                            found.push(describe(digest, obj));
                        }
                    }
                }
                stack.extend(obj.values().rev());
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    found
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
                subject: None,
                other: &["cfg", "l1", "l2", "sub"],
            },
            Case {
                name: "no mediaType and no telling fields",
                doc: r#"{"schemaVersion":2,"config":{"digest":"<cfg>"},"stuff":[{"digest":"<u1>"}]}"#,
                kind: Kind::Unknown,
                media_type: None,
                children: &[],
                config: None,
                layers: &[],
                subject: None,
                other: &["cfg", "u1"],
            },
            Case {
                name: "non-string mediaType",
                doc: r#"{"mediaType":7,"manifests":[{"digest":"<amd64>"}]}"#,
                kind: Kind::Unknown,
                media_type: None,
                children: &[],
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
                m.config.as_ref().map(|d| d.digest.to_string()),
                c.config.map(dg),
                "{}",
                c.name
            );
            assert_eq!(digests(&m.layers), names(c.layers), "{}", c.name);
            assert_eq!(
                m.subject.as_ref().map(|d| d.digest.to_string()),
                c.subject.map(dg),
                "{}",
                c.name
            );
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
        let cfg = m.config.as_ref().unwrap();
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
        assert_eq!(m.config.as_ref().unwrap().digest.to_string(), EMPTY_CONFIG);
        assert_eq!(digests(&m.layers), names(&["sbom"]));
        let subject = m.subject.as_ref().unwrap();
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
        let depth = 120; // below serde_json's recursion limit
        let doc = format!(
            r#"{{"mediaType":"x/y","a":{}{{"digest":"{EMPTY_CONFIG}"}}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let m = parse(doc.as_bytes()).unwrap();
        assert_eq!(digests(&m.other), vec![EMPTY_CONFIG.to_string()]);
    }

    #[test]
    fn errors() {
        type Check = fn(&ManifestError) -> bool;
        let table: [(&str, &str, Check, &str); 16] = [
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
                "EOF",
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
                "trailing",
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
                "bad digest in a layer",
                r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"<cfg>"},"layers":[{"digest":"<l1>"},{"digest":"sha256:ZZZ"}]}"#,
                |e| matches!(e, ManifestError::InvalidDigest { field, .. } if field == "layers[1].digest"),
                "layers[1].digest",
            ),
            (
                "missing digest in a layer",
                r#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"<cfg>"},"layers":[{"size":3}]}"#,
                |e| matches!(e, ManifestError::MissingField { field } if field == "layers[0].digest"),
                "no layers[0].digest",
            ),
            (
                "numeric digest",
                r#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"digest":1}]}"#,
                |e| matches!(e, ManifestError::WrongType { field, expected: "a string" } if field == "manifests[0].digest"),
                "manifests[0].digest is not a string",
            ),
            (
                "docker v2 missing config",
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[{"digest":"<l1>"}]}"#,
                |e| matches!(e, ManifestError::MissingField { field } if field == "config"),
                "no config",
            ),
            (
                "oci missing config",
                r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":null,"layers":[]}"#,
                |e| matches!(e, ManifestError::MissingField { field } if field == "config"),
                "no config",
            ),
            (
                "layers not a list",
                r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"<cfg>"},"layers":{"digest":"<l1>"}}"#,
                |e| matches!(e, ManifestError::WrongType { field, expected: "an array" } if field == "layers"),
                "layers is not an array",
            ),
            (
                "bad subject digest",
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"subject":{"digest":"sha256:"}}"#,
                |e| matches!(e, ManifestError::InvalidDigest { field, .. } if field == "subject.digest"),
                "subject.digest",
            ),
            (
                "bad schema1 blobSum",
                r#"{"schemaVersion":1,"fsLayers":[{"blobSum":"<s1a>"},{"blobSum":"md5:d41d8cd98f00b204e9800998ecf8427e"}]}"#,
                |e| matches!(e, ManifestError::InvalidDigest { field, .. } if field == "fsLayers[1].blobSum"),
                "fsLayers[1].blobSum",
            ),
            (
                "index entry not an object",
                r#"{"manifests":["<amd64>"]}"#,
                |e| matches!(e, ManifestError::WrongType { field, expected: "an object" } if field == "manifests[0]"),
                "manifests[0] is not an object",
            ),
            (
                "duplicate field",
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"manifests":[]}"#,
                |e| matches!(e, ManifestError::Malformed { .. }),
                "duplicate field",
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
