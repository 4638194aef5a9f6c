//! Test helpers: small registry trees written the way the registry writes
//! them (blobs, links, images, indexes, referrers), and file ages.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::layout::paths;

pub const DAY: Duration = Duration::from_secs(86400);

pub fn put(v2: &Path, rel: &str, content: &[u8]) {
    let p = v2.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

pub fn blob(v2: &Path, content: &[u8]) -> Digest {
    let d = Digest::sha256_of(content);
    put(v2, &paths::blob_data(&d), content);
    d
}

pub fn link(v2: &Path, rel: &str, d: &Digest) {
    put(v2, rel, d.to_string().as_bytes());
}

/// Sets the mtime of everything under `p` to `age` ago.
pub fn age(p: &Path, age: Duration) {
    let t = SystemTime::now() - age;
    for e in walkdir::WalkDir::new(p).follow_links(false) {
        let e = e.unwrap();
        if e.path_is_symlink() {
            continue;
        }
        let f = fs::File::open(e.path()).unwrap();
        f.set_modified(t).unwrap();
    }
}

/// An image pushed to `repo`: its blobs, `_layers` links and revision
/// (and tag, if any). Returns (manifest, config, layers).
pub fn image(v2: &Path, repo: &str, tag: Option<&str>, name: &str) -> (Digest, Digest, Digest) {
    let config = blob(v2, format!("{{\"config of\":\"{name}\"}}").as_bytes());
    let layer = blob(v2, format!("layer of {name}").as_bytes());
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"{layer}"}}]}}"#
    );
    let md = blob(v2, m.as_bytes());
    push_manifest(v2, repo, tag, md, &[config, layer]);
    (md, config, layer)
}

pub fn push_manifest(v2: &Path, repo: &str, tag: Option<&str>, md: Digest, blobs: &[Digest]) {
    for b in blobs {
        link(v2, &paths::layer_link(repo, b), b);
    }
    link(v2, &paths::revision_link(repo, &md), &md);
    if let Some(tag) = tag {
        link(v2, &paths::tag_current(repo, tag), &md);
        link(v2, &(paths::tag_index_entry(repo, tag, &md) + "/link"), &md);
    }
}

pub fn index(v2: &Path, repo: &str, tag: &str, children: &[Digest]) -> Digest {
    let ms: Vec<String> = children
        .iter()
        .map(|c| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{c}"}}"#)
        })
        .collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        ms.join(",")
    );
    let d = blob(v2, body.as_bytes());
    push_manifest(v2, repo, Some(tag), d, &[]);
    d
}

/// An OCI image in `repo` whose `subject` is `subject` (a signature or an
/// SBOM), pushed by digest (untagged). Returns (manifest, its one blob).
pub fn referrer(v2: &Path, repo: &str, subject: Digest, name: &str) -> (Digest, Digest) {
    let sig = blob(v2, format!("signature {name}").as_bytes());
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"{sig}"}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{subject}"}}}}"#
    );
    let md = blob(v2, m.as_bytes());
    push_manifest(v2, repo, None, md, &[sig]);
    (md, sig)
}
