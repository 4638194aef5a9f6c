//! skopeo, for pushing, pulling and deleting through the registry API the
//! way real clients do. Every call uses `--insecure-policy` (no
//! /etc/containers/policy.json needed) and plain http; failures carry
//! skopeo's stderr.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::oci::{self, Content};

fn skopeo(args: &[&str]) -> Result<String> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("TMPDIR", std::env::temp_dir())
        .output()
        .context("running skopeo (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "skopeo {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `skopeo copy --all --preserve-digests oci:LAYOUT:OCI_REF docker://DEST`,
/// where `dest` is `127.0.0.1:PORT/REPO:TAG` or `127.0.0.1:PORT/REPO@sha256:…`.
/// Digests are preserved: skopeo would otherwise gzip the tar layers.
pub fn push(layout: &Path, oci_ref: &str, dest: &str) -> Result<()> {
    let src = format!("oci:{}:{oci_ref}", layout.display());
    let dst = format!("docker://{dest}");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src,
        &dst,
    ])?;
    Ok(())
}

/// Writes `content` to a fresh OCI layout and pushes it to
/// `addr/repo:tag`, or `addr/repo@digest` when `tag` is `None`.
pub fn push_content(addr: &str, repo: &str, tag: Option<&str>, content: &dyn Content) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("reg-tests-oci-").tempdir()?;
    oci::write_layout(dir.path(), &[("x", content)])?;
    let dest = match tag {
        Some(tag) => format!("{addr}/{repo}:{tag}"),
        None => format!("{addr}/{repo}@{}", content.digest()),
    };
    push(dir.path(), "x", &dest)
}

/// Pulls every platform of `src` (`127.0.0.1:PORT/REPO:TAG` or `…@digest`)
/// into a throwaway OCI layout: succeeds only if every manifest and blob is
/// served and matches its digest.
pub fn pull_all(src: &str) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("reg-tests-pull-").tempdir()?;
    let dst = format!("oci:{}:x", dir.path().join("layout").display());
    let src = format!("docker://{src}");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        "--src-tls-verify=false",
        &src,
        &dst,
    ])
    .with_context(|| format!("pulling {src}"))?;
    Ok(())
}

/// Pulls every platform of `src` into a throwaway `dir:` directory: like
/// [`pull_all`], without converting anything, so Docker schema 2 images
/// pull with their digests preserved too.
pub fn pull_all_dir(src: &str) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("reg-tests-pull-").tempdir()?;
    let dst = format!("dir:{}", dir.path().join("image").display());
    let src = format!("docker://{src}");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &src,
        &dst,
    ])
    .with_context(|| format!("pulling {src}"))?;
    Ok(())
}

/// `skopeo delete docker://ADDR/REPO:REFERENCE`: deletes the manifest the
/// reference names (the registry refuses deleting by tag itself; skopeo
/// resolves the tag to a digest first).
pub fn delete(addr: &str, repo: &str, reference: &str) -> Result<()> {
    let sep = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let target = format!("docker://{addr}/{repo}{sep}{reference}");
    skopeo(&["delete", "--tls-verify=false", &target])?;
    Ok(())
}

/// `skopeo inspect --raw`: the manifest bytes as served.
pub fn inspect_raw(reference: &str) -> Result<Vec<u8>> {
    let src = format!("docker://{reference}");
    Ok(skopeo(&["inspect", "--raw", "--tls-verify=false", &src])?.into_bytes())
}
