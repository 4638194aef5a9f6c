//! Shared by the CLI tests of reg-ls, reg-refs and reg-orphans (each
//! includes it with `#[path]`): copies of the sample tree with a FIFO or a
//! symbolic link planted in them, and a run that a blocked tool cannot hang.
//! The including file defines `sample()`, the sample tree's path.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::sample;

pub fn bounded(exe: &Path, args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    use std::io::{Read, Seek, Write};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let data = input.to_vec();
    std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} still running after 10 s (blocked?)", exe.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    out.rewind().unwrap();
    out.read_to_end(&mut stdout).unwrap();
    err.rewind().unwrap();
    err.read_to_end(&mut stderr).unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Where a FIFO replaces a file of the sample tree.
#[derive(Clone, Copy, Debug)]
pub enum Fifo {
    /// The first tag's `current/link`.
    TagLink,
    /// The data of the manifest that tag names.
    ManifestData,
    /// An upload's `startedat`.
    StartedAt,
    /// A `_layers` link.
    LayerLink,
}

pub const FIFOS: [Fifo; 4] = [
    Fifo::TagLink,
    Fifo::ManifestData,
    Fifo::StartedAt,
    Fifo::LayerLink,
];

/// A copy of the sample tree with one file replaced by a FIFO; the FIFO's
/// path relative to `v2`.
/// A copy of the sample tree in `<tmp>/root` (so `<tmp>/outside` is
/// outside ROOT); its v2 directory.
pub fn sample_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(sample().join("."))
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    (tmp, root.join("docker/registry/v2"))
}

pub const APP: &str = "repositories/org/team/app";

/// The first entry of `v2/dir` by name, relative to `v2`.
pub fn first_in(v2: &Path, dir: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(v2.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    format!("{dir}/{}", names[0])
}

/// The data file of the manifest the first tag of org/team/app names.
pub fn manifest_data(v2: &Path) -> String {
    let link = format!("{}/current/link", first_in(v2, &format!("{APP}/_manifests/tags")));
    let d = std::fs::read_to_string(v2.join(link)).unwrap();
    let hex = d.trim().strip_prefix("sha256:").unwrap().to_string();
    format!("blobs/sha256/{}/{hex}/data", &hex[..2])
}

/// A copy of the sample tree with one file replaced by a FIFO, and the
/// FIFO's path relative to `v2`.
pub fn fifo_copy(case: Fifo) -> (tempfile::TempDir, PathBuf, String) {
    let (tmp, v2) = sample_copy();
    let tag_link = format!(
        "{}/current/link",
        first_in(&v2, &format!("{APP}/_manifests/tags"))
    );
    let rel = match case {
        Fifo::TagLink => tag_link,
        Fifo::ManifestData => manifest_data(&v2),
        Fifo::StartedAt => format!("{}/startedat", first_in(&v2, &format!("{APP}/_uploads"))),
        Fifo::LayerLink => format!("{}/link", first_in(&v2, &format!("{APP}/_layers/sha256"))),
    };
    std::fs::remove_file(v2.join(&rel)).unwrap();
    let ok = Command::new("mkfifo").arg(v2.join(&rel)).status().unwrap();
    assert!(ok.success());
    (tmp, v2, rel)
}

/// Where a symbolic link is planted in the sample tree.
#[derive(Clone, Copy, Debug)]
pub enum Link {
    /// `repositories/loop -> loop`.
    Loop,
    /// A tag directory pointing nowhere.
    DanglingTagDir,
    /// A tag's `current/link` pointing nowhere.
    DanglingCurrent,
    /// A manifest's `data`, linked to a good copy of itself.
    BlobData,
    /// A tag directory linked to a directory outside ROOT holding a tag.
    TagDirOutside,
}

pub const LINKS: [Link; 5] = [
    Link::Loop,
    Link::DanglingTagDir,
    Link::DanglingCurrent,
    Link::BlobData,
    Link::TagDirOutside,
];

/// A copy of the sample tree with one symbolic link planted, and the link's
/// path relative to `v2`.
pub fn link_copy(case: Link) -> (tempfile::TempDir, PathBuf, String) {
    use std::os::unix::fs::symlink;
    let (tmp, v2) = sample_copy();
    let tags = format!("{APP}/_manifests/tags");
    let rel = match case {
        Link::Loop => {
            symlink("loop", v2.join("repositories/loop")).unwrap();
            "repositories/loop".to_string()
        }
        Link::DanglingTagDir => {
            let rel = format!("{tags}/gone");
            symlink(tmp.path().join("nonexistent"), v2.join(&rel)).unwrap();
            rel
        }
        Link::DanglingCurrent => {
            let rel = format!("{}/current/link", first_in(&v2, &tags));
            std::fs::remove_file(v2.join(&rel)).unwrap();
            symlink(tmp.path().join("nonexistent"), v2.join(&rel)).unwrap();
            rel
        }
        Link::BlobData => {
            let rel = manifest_data(&v2);
            let copy = tmp.path().join("outside-data");
            std::fs::rename(v2.join(&rel), &copy).unwrap();
            symlink(&copy, v2.join(&rel)).unwrap();
            rel
        }
        Link::TagDirOutside => {
            let good = format!("{}/current", first_in(&v2, &tags));
            let evil = tmp.path().join("outside/evil");
            std::fs::create_dir_all(evil.join("current")).unwrap();
            std::fs::copy(v2.join(&good).join("link"), evil.join("current/link")).unwrap();
            let rel = format!("{tags}/evil");
            symlink(&evil, v2.join(&rel)).unwrap();
            rel
        }
    };
    (tmp, v2, rel)
}

/// Asserts exit status 1 and a message naming `path` as a symbolic link.
#[track_caller]
pub fn fails_naming_link(out: &Output, path: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        err.lines()
            .any(|l| l.contains(path) && l.contains("symbolic link")),
        "{what}: no 'symbolic link' message naming {path}:\n{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(r#""tag":"evil""#),
        "{what}: a tag behind a link was listed"
    );
}

/// Asserts exit status 1 and a message naming `path` as not a regular file.
#[track_caller]
pub fn fails_naming(out: &Output, path: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        err.lines()
            .any(|l| l.contains(path) && l.contains("not a regular file")),
        "{what}: no 'not a regular file' message naming {path}:\n{err}"
    );
}
