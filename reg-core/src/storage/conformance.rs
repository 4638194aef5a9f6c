//! The conformance suite every [`Backend`] passes, as `object_store`'s own
//! integration tests are for its stores: the same scans, reads, stats,
//! deletes, batch results and error kinds, whatever is underneath. The
//! unit tests run it on the filesystem and on `object_store`'s `InMemory`;
//! the end-to-end tests on moto's S3 and on Azurite.
//!
//! [`run`] takes an empty registry root; it writes through
//! [`Backend::write_new`] and reads back through everything else, calling
//! [`Backend::refresh`] where a listing backend would otherwise answer from
//! what it listed before.

use crate::error::Failure;
use crate::storage::{Backend, Scanned};

/// The keys the suite writes (relative to `v2`), and their content.
const FIXTURES: [(&str, &[u8]); 6] = [
    ("blobs/sha256/aa/aa01/data", b"blob one"),
    ("blobs/sha256/ab/ab02/data", b"blob two, longer"),
    ("repositories/app/_layers/sha256/aa01/link", b"sha256:aa01"),
    ("repositories/app/_manifests/tags/v1/current/link", b"sha256:ab02"),
    ("repositories/app/sub/_layers/sha256/ab02/link", b"sha256:ab02"),
    (
        "repositories/other/_uploads/u1/startedat",
        b"2024-01-02T03:04:05Z",
    ),
];

/// Runs every check on `b`, an empty root; panics naming the first that
/// fails and the backend (its [`Backend::display`]).
pub fn run(b: &dyn Backend) {
    let name = b.display("").display().to_string();
    let at = |what: &str| format!("{name}: {what}");
    writes_once(b, &at("write_new"));
    b.refresh();
    scans_cut_where_told(b, &at("scan"));
    kept_parts_scan_as_listed(b, &at("keep_parts"));
    reads_and_stats(b, &at("read/stat"));
    reads_the_start(b, &at("read_start"));
    read_expecting_gives_the_content(b, &at("read_expecting"));
    deletes_one_a_prefix_and_a_batch(b, &at("delete"));
    refuses_keys_out_of_the_root(b, &at("refusals"));
}

fn writes_once(b: &dyn Backend, at: &str) {
    for (k, v) in FIXTURES {
        assert!(
            b.write_new(k, v).unwrap_or_else(|e| panic!("{at}: {k}: {e}")),
            "{at}: {k}"
        );
    }
    assert!(
        !b.write_new(FIXTURES[0].0, b"other").unwrap(),
        "{at}: written twice"
    );
    b.refresh();
    assert_eq!(
        b.read(FIXTURES[0].0, 100).unwrap().unwrap(),
        FIXTURES[0].1,
        "{at}"
    );
}

fn scans_cut_where_told(b: &dyn Backend, at: &str) {
    // Flat: every object, with metadata when asked.
    let mut keys = Vec::new();
    assert!(b
        .scan("repositories", &|_, _| false, true, &mut |s| match s {
            Scanned::Object { key, meta } => keys.push((key, meta.map(|m| m.size))),
            other => panic!("{at}: {other:?}"),
        })
        .unwrap());
    keys.sort();
    let want: Vec<(String, Option<u64>)> = FIXTURES[2..]
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.len() as u64)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(keys, want, "{at}: flat");
    // Cut at the `_` directories: each once, nothing below.
    let mut prefixes = Vec::new();
    let stop = |rel: &str, _: usize| rel.rsplit('/').next().is_some_and(|c| c.starts_with('_'));
    b.scan("repositories", &stop, false, &mut |s| match s {
        Scanned::Prefix(p) => prefixes.push(p),
        other => panic!("{at}: {other:?}"),
    })
    .unwrap();
    prefixes.sort();
    assert_eq!(
        prefixes,
        [
            "repositories/app/_layers",
            "repositories/app/_manifests",
            "repositories/app/sub/_layers",
            "repositories/other/_uploads",
        ],
        "{at}: cut"
    );
    // Depth counts from the scanned prefix.
    let mut depth2 = Vec::new();
    b.scan("blobs", &|_, d| d == 2, false, &mut |s| {
        if let Scanned::Prefix(p) = s {
            depth2.push(p)
        }
    })
    .unwrap();
    depth2.sort();
    assert_eq!(depth2, ["blobs/sha256/aa", "blobs/sha256/ab"], "{at}: depth");
    // Repositories held one at a time, where a backend holds parts: a
    // repository's scans give its own keys, never a nested one's.
    let held = [
        "repositories/app/_".to_string(),
        "repositories/app/sub/_".to_string(),
    ];
    for r in b.hold_parts(&held) {
        r.unwrap_or_else(|e| panic!("{at}: held: {e}"));
    }
    for (dir, want) in [
        ("repositories/app/_layers", FIXTURES[2].0),
        ("repositories/app/sub/_layers", FIXTURES[4].0),
    ] {
        let mut keys = Vec::new();
        b.scan(dir, &|_, _| false, false, &mut |s| {
            if let Scanned::Object { key, .. } = s {
                keys.push(key)
            }
        })
        .unwrap();
        assert_eq!(keys, [want], "{at}: held {dir}");
    }
    for p in &held {
        b.release_part(p);
    }
    // Nothing stored: false, nothing visited.
    let mut none = 0;
    assert!(!b
        .scan("repositories/nothing", &|_, _| false, false, &mut |_| none += 1)
        .unwrap());
    assert_eq!(none, 0, "{at}: empty prefix");
}

/// Parts kept after their release ([`Backend::keep_parts`], from here on
/// for the rest of the checks: kept listings then see this backend's own
/// writes and deletes) scan as they did when first held, held again.
fn kept_parts_scan_as_listed(b: &dyn Backend, at: &str) {
    b.keep_parts().unwrap_or_else(|e| panic!("{at}: {e}"));
    let part = "repositories/app/_".to_string();
    let scan = || {
        let mut keys = Vec::new();
        b.scan("repositories/app", &|_, _| false, true, &mut |s| {
            if let Scanned::Object { key, meta } = s {
                keys.push((key, meta.map(|m| m.size)))
            }
        })
        .unwrap();
        keys.sort();
        keys
    };
    let before = scan();
    for round in 0..2 {
        for r in b.hold_parts(std::slice::from_ref(&part)) {
            r.unwrap_or_else(|e| panic!("{at}: held: {e}"));
        }
        assert_eq!(scan(), before, "{at}: held, round {round}");
        b.release_part(&part);
        assert_eq!(scan(), before, "{at}: released, round {round}");
    }
    b.refresh();
    assert_eq!(scan(), before, "{at}: after a refresh");
}

fn reads_and_stats(b: &dyn Backend, at: &str) {
    let (k, v) = FIXTURES[1];
    let (bytes, meta) = b.read_with_meta(k, 100).unwrap().unwrap();
    assert_eq!(
        (bytes.as_slice(), meta.size, meta.is_dir),
        (v, v.len() as u64, false),
        "{at}"
    );
    let st = b.stat(k).unwrap().unwrap();
    assert_eq!((st.size, st.is_dir), (v.len() as u64, false), "{at}: stat");
    // A "directory": a prefix with objects below.
    assert!(b.stat("blobs/sha256/ab").unwrap().unwrap().is_dir, "{at}: dir");
    // Absent: None, never an error.
    assert!(
        b.read("blobs/sha256/zz/none/data", 100).unwrap().is_none(),
        "{at}"
    );
    assert!(b.stat("blobs/sha256/zz/none/data").unwrap().is_none(), "{at}");
    assert!(b.open("blobs/sha256/zz/none/data").unwrap().is_none(), "{at}");
    // Over the limit: TooLarge, and only that.
    let e = b.read(k, 3).unwrap_err();
    assert_eq!(e.failure(), Failure::TooLarge, "{at}: {e}");
    assert!(e.to_string().contains("larger than 3 bytes"), "{at}: {e}");
    // A reader gives the same bytes.
    let mut r = b.open(k).unwrap().unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut got).unwrap();
    assert_eq!(got, v, "{at}: open");
}

fn reads_the_start(b: &dyn Backend, at: &str) {
    let (k, v) = FIXTURES[1];
    let size = v.len() as u64;
    for n in [0, 4, size - 1, size, size + 10] {
        let (start, whole) = b.read_start(k, n, 100).unwrap().unwrap();
        let n = n.min(size) as usize;
        assert_eq!(
            (start.as_slice(), whole),
            (&v[..n], size),
            "{at}: the first {n} bytes"
        );
    }
    assert!(
        b.read_start("blobs/sha256/zz/none/data", 4, 100)
            .unwrap()
            .is_none(),
        "{at}: absent"
    );
    // An empty object: nothing to start with, but there.
    let empty = "blobs/sha256/ee/ee00/data";
    assert!(b.write_new(empty, b"").unwrap(), "{at}: empty");
    b.refresh();
    assert_eq!(
        b.read_start(empty, 4, 100).unwrap(),
        Some((Vec::new(), 0)),
        "{at}: empty"
    );
    assert!(b.delete(empty).unwrap(), "{at}: empty");
    b.refresh();
}

fn read_expecting_gives_the_content(b: &dyn Backend, at: &str) {
    let (k, v) = FIXTURES[3];
    for expected in [&[v][..], &[b"sha256:other".as_slice()][..], &[][..]] {
        let (bytes, _) = b.read_expecting(k, 4096, expected).unwrap().unwrap();
        assert_eq!(bytes, v, "{at}: expecting {expected:?}");
    }
    assert!(b
        .read_expecting("repositories/app/_manifests/tags/none/current/link", 4096, &[v])
        .unwrap()
        .is_none());
}

fn deletes_one_a_prefix_and_a_batch(b: &dyn Backend, at: &str) {
    assert!(b.delete(FIXTURES[0].0).unwrap(), "{at}: one");
    b.refresh();
    assert!(b.read(FIXTURES[0].0, 100).unwrap().is_none(), "{at}: gone");
    // Again: not an error (an object store may say "deleted" again: S3
    // answers so for an absent key).
    assert!(b.delete(FIXTURES[0].0).is_ok(), "{at}: twice");
    // A batch: one result per key, in order, absent ones false or true
    // (S3 says deleted either way), the present ones true.
    let keys: Vec<String> = vec![FIXTURES[2].0.into(), FIXTURES[4].0.into()];
    let r = b.delete_batch(&keys);
    assert_eq!(r.len(), 2, "{at}: batch");
    assert!(r.iter().all(|x| matches!(x, Ok(true))), "{at}: batch {r:?}");
    b.refresh();
    for k in &keys {
        assert!(b.stat(k).unwrap().is_none(), "{at}: {k} still there");
    }
    // A prefix and all below it.
    assert!(b.delete_prefix("repositories/other").unwrap(), "{at}: prefix");
    b.refresh();
    assert!(
        b.stat("repositories/other/_uploads/u1/startedat")
            .unwrap()
            .is_none(),
        "{at}"
    );
    assert!(
        !b.delete_prefix("repositories/other").unwrap(),
        "{at}: prefix twice"
    );
}

fn refuses_keys_out_of_the_root(b: &dyn Backend, at: &str) {
    for bad in ["", "../x", "a/../../x", "/etc/passwd"] {
        assert!(b.delete(bad).is_err(), "{at}: deleted {bad:?}");
        assert!(b.check_removable(bad).is_err(), "{at}: removable {bad:?}");
        assert_eq!(b.delete_batch(&[bad.to_string()]).len(), 1, "{at}");
        assert!(
            b.delete_batch(&[bad.to_string()])[0].is_err(),
            "{at}: batch {bad:?}"
        );
    }
    assert!(b.write_new("a/../x", b"").is_err(), "{at}: wrote outside");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn the_filesystem_conforms() {
        let dir = tempfile::tempdir().unwrap();
        super::run(&crate::storage::Fs::new(dir.path()));
    }

    #[test]
    fn object_stores_conform_in_memory() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let b = crate::object::ObjectBackend::over(store, "srv/registry").unwrap();
        crate::storage::Backend::plan(&b, &crate::layout::AREAS);
        super::run(&b);
    }

    /// The same with `blobs/` held a prefix directory at a time and
    /// `repositories/` a repository at a time (as reg-orphans holds them on
    /// a large bucket).
    #[test]
    fn object_stores_conform_in_memory_with_areas_by_parts() {
        use crate::storage::{Backend, Parts};
        let store = Arc::new(object_store::memory::InMemory::new());
        let b = crate::object::ObjectBackend::over(store, "srv/registry").unwrap();
        b.plan(&crate::layout::AREAS);
        b.list_by_parts(crate::layout::paths::BLOBS, Parts::Depth(2));
        b.list_by_parts(crate::layout::paths::REPOSITORIES, Parts::Repository);
        super::run(&b);
    }
}
