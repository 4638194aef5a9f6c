//! Building small, deterministic OCI images in memory and as OCI image layouts
//! on disk (`oci-layout`, `index.json`, `blobs/sha256/…`) for skopeo to push.
//!
//! Every piece of content is derived from a name string, so the same scenario
//! always gives the same digests. Layers are real uncompressed tar archives
//! (`application/vnd.oci.image.layer.v1.tar`), so a layer's digest is also its
//! diff_id.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const MT_COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// `Accept` header value naming every manifest type the tools handle.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// One piece of content with its media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_owned(),
            digest: reg_core::Digest::sha256_of(&bytes).to_string(),
            bytes,
        }
    }

    /// A JSON document stored as a blob (serialized compactly, keys in the
    /// order written).
    pub fn json(media_type: &str, value: &Value) -> Blob {
        Blob::new(media_type, serde_json::to_vec(value).expect("JSON serializes"))
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The 64 hex digits of the digest.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    /// `{"mediaType","digest","size"}`
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// Something pushable: a top manifest and everything it needs.
pub trait Content {
    /// The manifest (or index) pushed under the tag.
    fn top(&self) -> &Blob;
    /// Child manifests of an index, pushed by digest before the index.
    fn child_manifests(&self) -> Vec<&Blob> {
        Vec::new()
    }
    /// Configs and layers (everything that is not a manifest), deduplicated.
    fn layer_blobs(&self) -> Vec<&Blob>;
    /// Every blob: layer blobs, child manifests, top manifest.
    fn all_blobs(&self) -> Vec<&Blob> {
        let mut all = self.layer_blobs();
        all.extend(self.child_manifests());
        all.push(self.top());
        all
    }
    /// The top manifest's digest.
    fn digest(&self) -> &str {
        &self.top().digest
    }
}

/// An OS/architecture pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Platform {
    pub fn linux(architecture: &str) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
        }
    }

    fn json(&self) -> Value {
        json!({"architecture": self.architecture, "os": self.os})
    }
}

/// An OCI image manifest: an image, a signature or another artifact.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: String,
    pub platform: Option<Platform>,
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// Digest of the OCI 1.1 `subject`, if any.
    pub subject: Option<String>,
}

/// An OCI image manifest of `config` and the `layers` descriptors.
fn image_manifest(config: &Blob, layers: Vec<Value>) -> Blob {
    Blob::json(
        MT_OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layers,
        }),
    )
}

impl Image {
    /// A runnable-looking image: config with `rootfs.diff_ids` (the layers
    /// are uncompressed tars, so diff_id = digest) and a label naming it.
    pub fn build(name: &str, platform: Platform, layers: Vec<Blob>) -> Image {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let config = Blob::json(
            MT_OCI_CONFIG,
            &json!({
                "architecture": platform.architecture,
                "os": platform.os,
                "config": {"Labels": {"org.example.name": name}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }),
        );
        let manifest = image_manifest(&config, layers.iter().map(Blob::descriptor).collect());
        Image {
            name: name.to_owned(),
            platform: Some(platform),
            manifest,
            config,
            layers,
            subject: None,
        }
    }

    /// An OCI 1.1 artifact: `artifactType`, the empty config (`{}`), one
    /// layer holding `payload`, and `subject` if given.
    pub fn artifact(
        name: &str,
        artifact_type: &str,
        layer_media_type: &str,
        payload: &[u8],
        subject: Option<&Blob>,
    ) -> Image {
        let config = empty_config();
        let layer = Blob::new(layer_media_type, payload.to_vec());
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        if let Some(subject) = subject {
            m["subject"] = subject.descriptor();
        }
        m["annotations"] = json!({"org.example.name": name});
        Image {
            name: name.to_owned(),
            platform: None,
            manifest: Blob::json(MT_OCI_MANIFEST, &m),
            config,
            layers: vec![layer],
            subject: subject.map(|s| s.digest.clone()),
        }
    }

    /// A cosign-style signature of `signed` (what cosign pushes under the
    /// tag `sha256-<hex>.sig`): a simple-signing payload layer naming the
    /// signed digest, with a fake signature annotation.
    pub fn cosign_signature(name: &str, signed: &Blob) -> Image {
        let payload = serde_json::to_vec(&json!({
            "critical": {
                "identity": {"docker-reference": name},
                "image": {"docker-manifest-digest": signed.digest},
                "type": "cosign container image signature",
            },
            "optional": null,
        }))
        .expect("JSON serializes");
        let layer = Blob::new(MT_COSIGN_SIMPLESIGNING, payload);
        let config = Blob::json(
            MT_OCI_CONFIG,
            &json!({
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }),
        );
        let mut layer_desc = layer.descriptor();
        layer_desc["annotations"] = json!({
            "dev.cosignproject.cosign/signature": seeded_hex(&format!("sig {name}")),
        });
        let manifest = image_manifest(&config, vec![layer_desc]);
        Image {
            name: name.to_owned(),
            platform: None,
            manifest,
            config,
            layers: vec![layer],
            subject: None,
        }
    }
}

impl Content for Image {
    fn top(&self) -> &Blob {
        &self.manifest
    }
    fn layer_blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config];
        for l in &self.layers {
            if !v.iter().any(|b| b.digest == l.digest) {
                v.push(l);
            }
        }
        v
    }
}

/// An OCI image index over platform images.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    pub name: String,
    pub index: Blob,
    pub children: Vec<Image>,
}

impl ImageIndex {
    /// An index over `children` (each with its platform).
    pub fn build(name: &str, children: Vec<Image>) -> ImageIndex {
        let manifests: Vec<Value> = children
            .iter()
            .map(|c| {
                let mut d = c.manifest.descriptor();
                if let Some(p) = &c.platform {
                    d["platform"] = p.json();
                }
                d
            })
            .collect();
        let index = Blob::json(
            MT_OCI_INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_INDEX,
                "manifests": manifests,
                "annotations": {"org.example.name": name},
            }),
        );
        ImageIndex {
            name: name.to_owned(),
            index,
            children,
        }
    }

    /// A multi-platform image: one child per architecture (linux), each
    /// with its own config and `layers_per_child` seeded layers, plus the
    /// `shared` layers first.
    pub fn multi_arch(name: &str, archs: &[&str], shared: &[Blob]) -> ImageIndex {
        let children = archs
            .iter()
            .map(|arch| {
                let child = format!("{name}/{arch}");
                let mut layers = shared.to_vec();
                layers.push(layer(&child));
                Image::build(&child, Platform::linux(arch), layers)
            })
            .collect();
        ImageIndex::build(name, children)
    }
}

impl Content for ImageIndex {
    fn top(&self) -> &Blob {
        &self.index
    }
    fn child_manifests(&self) -> Vec<&Blob> {
        self.children.iter().map(|c| &c.manifest).collect()
    }
    fn layer_blobs(&self) -> Vec<&Blob> {
        let mut v: Vec<&Blob> = Vec::new();
        for c in &self.children {
            for b in c.layer_blobs() {
                if !v.iter().any(|x| x.digest == b.digest) {
                    v.push(b);
                }
            }
        }
        v
    }
}

/// The OCI empty descriptor's blob: `{}`.
pub fn empty_config() -> Blob {
    Blob::new(MT_OCI_EMPTY, b"{}".to_vec())
}

/// 64 hex digits derived from `seed`.
pub fn seeded_hex(seed: &str) -> String {
    reg_core::Digest::sha256_of(seed.as_bytes()).hex()
}

/// A layer: an uncompressed tar holding one small file whose name and
/// content derive from `seed`. Same seed, same digest.
pub fn layer(seed: &str) -> Blob {
    let file: String = seed
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect();
    let content = format!("layer {seed}\n{}\n", seeded_hex(seed));
    Blob::new(
        MT_OCI_LAYER_TAR,
        tar_one_file(&format!("{file}.txt"), content.as_bytes()),
    )
}

/// A minimal ustar archive with one regular file: a 512-byte header (with
/// a correct checksum), the content padded to 512 bytes, two zero blocks.
pub fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "tar name too long");
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000644\0"); // mode
    put(&mut h, 108, b"0000000\0"); // uid
    put(&mut h, 116, b"0000000\0"); // gid
    put(&mut h, 124, format!("{:011o}\0", content.len()).as_bytes()); // size
    put(&mut h, 136, b"00000000000\0"); // mtime
    put(&mut h, 148, b"        "); // checksum, as spaces while summing
    h[156] = b'0'; // regular file
    put(&mut h, 257, b"ustar\0"); // magic
    put(&mut h, 263, b"00"); // version
    put(&mut h, 265, b"root"); // uname
    put(&mut h, 297, b"root"); // gname
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());

    let mut out = h.to_vec();
    out.extend_from_slice(content);
    let pad = (512 - content.len() % 512) % 512;
    out.resize(out.len() + pad, 0);
    out.resize(out.len() + 1024, 0);
    out
}

/// Writes an OCI image layout in `dir` (created if needed) holding every
/// blob of `refs`, each top manifest named in `index.json` by its
/// `org.opencontainers.image.ref.name`.
pub fn write_layout(dir: &Path, refs: &[(&str, &dyn Content)]) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut manifests = Vec::new();
    for (name, content) in refs {
        for blob in content.all_blobs() {
            let path = blobs.join(blob.hex());
            if !path.exists() {
                fs::write(&path, &blob.bytes).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        let mut d = content.top().descriptor();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        manifests.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_header_checksum_is_valid() {
        let t = tar_one_file("a.txt", b"hello\n");
        assert_eq!(t.len(), 512 * 4);
        let mut h = t[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(stored, sum);
        assert_eq!(&t[512..518], b"hello\n");
    }

    #[test]
    fn content_is_deterministic() {
        assert_eq!(layer("x").digest, layer("x").digest);
        assert_ne!(layer("x").digest, layer("y").digest);
        let a = ImageIndex::multi_arch("n", &["amd64", "arm64"], &[layer("base")]);
        let b = ImageIndex::multi_arch("n", &["amd64", "arm64"], &[layer("base")]);
        assert_eq!(a.index.digest, b.index.digest);
        assert_eq!(a.layer_blobs().len(), 5); // 2 configs, base, 2 arch layers
    }
}
