//! Working on a storage tree on disk the way an operator (or a fault)
//! would: copying it, aging it, listing it, putting FIFOs and symbolic links
//! in it, writing blobs straight into it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// One entry of a [`snapshot`]: what a path holds, without following links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Symlink(PathBuf),
    /// A FIFO, socket or device: never opened.
    Special,
}

/// Every non-directory under `root`, by path relative to it: file contents,
/// symbolic link targets, and special files (never opened, never followed).
/// Two snapshots are equal when nothing was deleted, added or changed.
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for e in entries {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_symlink() {
                out.insert(rel, Entry::Symlink(fs::read_link(&path).unwrap()));
            } else if ft.is_file() {
                let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.insert(rel, Entry::File(bytes));
            } else {
                out.insert(rel, Entry::Special);
            }
        }
    }
    out
}

/// Panics, naming what differs, unless `root` holds exactly `before`.
#[track_caller]
pub fn assert_unchanged(root: &Path, before: &BTreeMap<String, Entry>, what: &str) {
    let now = snapshot(root);
    let gone: Vec<&String> = before.keys().filter(|k| !now.contains_key(*k)).collect();
    let added: Vec<&String> = now.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| now.get(*k).is_some_and(|n| n != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        gone.is_empty() && added.is_empty() && changed.is_empty(),
        "{what}: {} changed under {}\n  gone: {gone:#?}\n  added: {added:#?}\n  changed: {changed:#?}",
        if gone.is_empty() {
            "something"
        } else {
            "files were deleted"
        },
        root.display(),
    );
}

/// Copies the tree at `from` to `to` like `cp -a`: directories, files with
/// their mtimes, symbolic links as links.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("listing {}: {e}", from.display())) {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            fs::copy(e.path(), &dest)
                .unwrap_or_else(|err| panic!("copying {} to {}: {err}", e.path().display(), dest.display()));
            let mtime = e.metadata().unwrap().modified().unwrap();
            set_mtime(&dest, mtime);
        }
    }
}

/// Sets the access and modification time of a regular file or directory.
#[track_caller]
pub fn set_mtime(path: &Path, t: SystemTime) {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap_or_else(|e| panic!("setting the times of {}: {e}", path.display()));
}

/// Sets every regular file's and directory's times under `root` (itself
/// included) to `ago` before now, like `find ROOT -exec touch -h -d '3 days
/// ago' {} +`. Symbolic links and special files are left alone (never
/// followed, never opened). Entries that vanish meanwhile (a registry
/// running on the tree) are skipped.
pub fn age_tree(root: &Path, ago: Duration) {
    age_tree_settled(root, ago, Duration::ZERO)
}

/// [`age_tree`] for what was written at least `settled` ago: what is
/// younger keeps its times. On a tree a registry is writing to, this ages
/// finished pushes and not one in progress (a manifest PUT writes the
/// revision link before the tag's; aging the one and not the other would
/// make a three-day-long push, which no grace period is meant to cover).
pub fn age_tree_settled(root: &Path, ago: Duration, settled: Duration) {
    let now = SystemTime::now();
    let t = now - ago;
    let times = fs::FileTimes::new().set_accessed(t).set_modified(t);
    let set = |p: &Path| {
        let f = match fs::File::open(p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => panic!("opening {}: {e}", p.display()),
        };
        if !settled.is_zero() {
            let modified = f.metadata().and_then(|m| m.modified());
            let modified = modified.unwrap_or_else(|e| panic!("the mtime of {}: {e}", p.display()));
            if modified + settled > now {
                return;
            }
        }
        if let Err(e) = f.set_times(times) {
            panic!("setting the times of {}: {e}", p.display())
        }
    };
    let mut stack = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("listing {}: {e}", dir.display()),
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(e.path()),
                Ok(ft) if ft.is_file() => set(&e.path()),
                _ => {}
            }
        }
        dirs.push(dir);
    }
    for d in dirs {
        set(&d);
    }
}

/// Three days: older than any grace period the tools default to.
pub const THREE_DAYS: Duration = Duration::from_secs(3 * 24 * 3600);

/// A time given as seconds since the epoch (negative: before 1970).
pub fn unix_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `mkfifo PATH`.
#[track_caller]
pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("running mkfifo: {e}"));
    assert!(st.success(), "mkfifo {} failed: {st}", path.display());
}

/// Writes `bytes` as a blob straight into the tree under `v2`
/// (`blobs/sha256/<xx>/<hex>/data`), as an upload the registry finished
/// but no link names; returns its digest.
pub fn write_blob(v2: &Path, bytes: &[u8]) -> String {
    let digest = reg_core::Digest::sha256_of(bytes).to_string();
    let path = blob_data(v2, &digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    digest
}

/// `v2/blobs/sha256/<xx>/<hex>/data` for `sha256:<hex>`.
pub fn blob_data(v2: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    v2.join("blobs/sha256").join(&hex[..2]).join(hex).join("data")
}

/// `v2/repositories/<repo>/_manifests/tags/<tag>/current/link`.
pub fn tag_link(v2: &Path, repo: &str, tag: &str) -> PathBuf {
    v2.join("repositories")
        .join(repo)
        .join("_manifests/tags")
        .join(tag)
        .join("current/link")
}

/// `v2/repositories/<repo>/_layers/sha256/<hex>/link`.
pub fn layer_link(v2: &Path, repo: &str, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    v2.join("repositories")
        .join(repo)
        .join("_layers/sha256")
        .join(hex)
        .join("link")
}

/// `v2/repositories/<repo>/_uploads/<id>/startedat`.
pub fn upload_startedat(v2: &Path, repo: &str, id: &str) -> PathBuf {
    v2.join("repositories")
        .join(repo)
        .join("_uploads")
        .join(id)
        .join("startedat")
}
