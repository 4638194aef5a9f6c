//! The whole garbage collection, `reg-refs --tagged-only | reg-orphans |
//! reg-rm`, on the scenario with the registry stopped, then the registry
//! started again and every image pulled: against what the test pushed, the
//! registry's own `garbage-collect --delete-untagged` (recorded comparison),
//! `--trash` and restoring it, and a run cut short by `REG_RM_FAIL_AFTER`.

use std::collections::BTreeSet;
use std::path::Path;

use reg_core::layout::Store;
use reg_tests::oci::{layer, Image, Platform};
use reg_tests::tree::{copy_tree, snapshot};
use reg_tests::{everything_live_pulls, orphan_list, reg_rm, skopeo, Registry, Run};
use serde_json::Value;

use super::scenario;

/// The whole pipeline, run on `root`; reg-rm's run.
fn collect(root: &Path, extra: &[&str]) -> Run {
    let list = orphan_list(root);
    let run = reg_rm(root, extra, &list, &[]);
    run.success();
    run
}

/// Blob digests stored under `root` now.
fn stored_blobs(v2: &Path) -> BTreeSet<String> {
    let l = Store::fs(v2).blobs();
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.items.iter().map(|b| b.digest.to_string()).collect()
}

fn digests_with(recs: &[Value], kind: &str, action: &str) -> BTreeSet<String> {
    recs.iter()
        .filter(|r| r["kind"] == kind && r["action"] == action)
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The image the scenario pushed as `org/team/app:v2` before overwriting it
/// (built the same way, so the same digests).
fn overwritten_v2() -> Image {
    Image::build(
        "org/team/app:v2 (old)",
        Platform::linux("amd64"),
        vec![layer("base-os"), layer("app-v2-old")],
    )
}

fn deleted_img() -> Image {
    Image::build(
        "deleted/img:1",
        Platform::linux("amd64"),
        vec![layer("deleted/img:1")],
    )
}

#[test]
fn gc_pipeline_frees_exactly_the_unreachable_and_everything_still_pulls() {
    let Some((mut reg, p)) = scenario("gc_pipeline_frees_exactly_the_unreachable_and_everything_still_pulls")
    else {
        return;
    };
    reg.stop().unwrap();
    let run = collect(reg.root(), &[]);
    let recs = run.records();
    assert!(
        run.stderr.contains("storage.cache.blobdescriptor"),
        "{}",
        run.stderr
    );
    assert!(
        recs.iter().all(|r| r["action"] == "deleted"),
        "nothing should be kept or absent on a first run: {}",
        run.stdout
    );

    // The freed blobs are exactly the unreachable set, and the rest is stored.
    let want_freed: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(digests_with(&recs, "blob", "deleted"), want_freed);
    assert_eq!(stored_blobs(&reg.v2()), p.tagged_reachable);
    let freed: u64 = recs
        .iter()
        .filter(|r| r["kind"] == "blob")
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(freed, want_freed.iter().map(|d| p.blobs[d]).sum::<u64>());
    // The untagged revisions went; the live referrers stayed.
    let revs = digests_with(&recs, "revision", "deleted");
    assert!(
        revs.contains(&p.overwritten) && revs.contains(&p.untagged),
        "{revs:?}"
    );
    for (_, d) in &p.live_untagged {
        assert!(!revs.contains(d));
    }

    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
    let api = reg.api();
    let catalog = api.catalog().unwrap();
    assert!(!catalog.contains(&p.deleted.0), "{catalog:?}");
    let others: BTreeSet<String> = p.repos.iter().filter(|r| **r != p.deleted.0).cloned().collect();
    assert_eq!(catalog.into_iter().collect::<BTreeSet<_>>(), others);
    assert!(!api.blob_exists("library/alpine", &p.unreferenced_blob).unwrap());

    // Pushing deleted images again works: the emptied repository, and the
    // overwritten image whose own layer and config were deleted.
    let del = deleted_img();
    assert_eq!(
        del.manifest.digest, p.deleted.1,
        "rebuilt image differs from the scenario's"
    );
    skopeo::push_content(&reg.addr(), "deleted/img", Some("1"), &del).unwrap();
    skopeo::pull_all(&reg.image_ref("deleted/img:1")).unwrap();
    let old = overwritten_v2();
    assert_eq!(old.manifest.digest, p.overwritten);
    skopeo::push_content(&reg.addr(), "org/team/app", Some("v2-again"), &old).unwrap();
    skopeo::pull_all(&reg.image_ref("org/team/app:v2-again")).unwrap();
    skopeo::pull_all(&reg.image_ref(&format!("org/team/app@{}", p.overwritten))).unwrap();

    // A second collection finds the re-pushed images live and frees nothing.
    reg.stop().unwrap();
    let again = collect(reg.root(), &[]);
    let freed_again = digests_with(&again.records(), "blob", "deleted");
    assert!(freed_again.is_empty(), "{freed_again:?}");
}

/// Recorded comparison: the registry's own `garbage-collect
/// --delete-untagged` (2.8.2) deletes the children of a multi-arch index
/// (distribution #3178), so `library/alpine:latest` stops pulling with
/// `--all`; after our pipeline it pulls.
#[test]
fn gc_registry_delete_untagged_breaks_multi_arch_and_ours_does_not() {
    let name = "gc_registry_delete_untagged_breaks_multi_arch_and_ours_does_not";
    let Some((mut theirs, p)) = scenario(name) else {
        return;
    };
    let Some((mut ours, _)) = scenario(name) else {
        return;
    };
    let latest = "library/alpine:latest";
    assert!(p.manifests[&p.tags["library/alpine"]["latest"]].children.len() > 1);

    theirs.stop().unwrap();
    let out = theirs.garbage_collect(false, true).unwrap();
    assert!(
        out.status.success(),
        "garbage-collect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    theirs.restart().unwrap();
    let broken = skopeo::pull_all(&theirs.image_ref(latest));
    assert!(
        broken.is_err(),
        "{latest} still pulls after garbage-collect --delete-untagged: \
         2.8.2 no longer deletes index children; update storage-layout.md"
    );

    ours.stop().unwrap();
    collect(ours.root(), &[]);
    ours.restart().unwrap();
    skopeo::pull_all(&ours.image_ref(latest)).unwrap_or_else(|e| panic!("{latest} after reg-rm: {e:#}"));
    everything_live_pulls(&ours, &p);
}

#[test]
fn gc_trash_then_copy_back_restores_everything() {
    let Some((mut reg, p)) = scenario("gc_trash_then_copy_back_restores_everything") else {
        return;
    };
    reg.stop().unwrap();
    let before = snapshot(&reg.v2());
    let trash = reg.work_dir().join("trash");
    let run = collect(reg.root(), &["--trash", trash.to_str().unwrap()]);
    let recs = run.records();
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r["action"] == "trashed"), "{}", run.stdout);
    let want_freed: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(digests_with(&recs, "blob", "trashed"), want_freed);
    assert_eq!(stored_blobs(&reg.v2()), p.tagged_reachable);

    copy_tree(&trash, &reg.v2());
    assert_eq!(snapshot(&reg.v2()), before, "restored tree differs");
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
    // What had been deleted is served again.
    let api = reg.api();
    for d in [&p.overwritten, &p.untagged] {
        skopeo::pull_all(&reg.image_ref(&format!("org/team/app@{d}"))).unwrap();
    }
    assert!(api.blob_exists("library/alpine", &p.unreferenced_blob).unwrap());
    assert_eq!(
        api.catalog().unwrap().into_iter().collect::<BTreeSet<_>>(),
        p.repos
    );
}

#[test]
fn gc_run_stopped_part_way_leaves_images_pullable_and_a_second_run_finishes() {
    let Some((mut reg, p)) =
        scenario("gc_run_stopped_part_way_leaves_images_pullable_and_a_second_run_finishes")
    else {
        return;
    };
    reg.stop().unwrap();
    let list = orphan_list(reg.root());
    let want_freed: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    // The number of deletions a clean run makes.
    let dry = reg_rm(reg.root(), &["--dry-run"], &list, &[]);
    dry.success();
    let total = dry.records().len();
    assert!(total > 10, "{}", dry.stdout);

    // Stop in the revision phase, in the link phase, in the blob phase and
    // just before the repository, each time on a fresh copy.
    for n in [1, 4, total / 2, total - 1] {
        let copy = tempfile::Builder::new()
            .prefix("reg-tests-gc-copy-")
            .tempdir()
            .unwrap();
        let root = copy.path().join("root");
        copy_tree(reg.root(), &root);
        let v2 = root.join("docker/registry/v2");
        // The same list, made on this root (reg-rm refuses one made on another).
        let list = orphan_list(&root);
        let n_str = n.to_string();
        let cut = reg_rm(&root, &[], &list, &[("REG_RM_FAIL_AFTER", n_str.as_str())]);
        cut.expect_code(1);
        assert!(cut.stderr.contains("REG_RM_FAIL_AFTER"), "{}", cut.stderr);
        assert!(
            cut.stderr
                .contains(&format!("after {n} deletion{}", if n == 1 { "" } else { "s" })),
            "{}",
            cut.stderr
        );
        let done = cut.records().iter().filter(|r| r["action"] == "deleted").count();
        assert_eq!(done, n, "n={n}: {done} deletions\n{}", cut.stdout);

        let mut half = Registry::start_on(&root).unwrap();
        everything_live_pulls(&half, &p);
        half.stop().unwrap();

        let second = reg_rm(&root, &[], &list, &[]);
        second.success();
        let recs = second.records();
        assert!(
            recs.iter()
                .all(|r| r["action"] == "deleted" || r["action"] == "absent"),
            "n={n}: {}",
            second.stdout
        );
        assert_eq!(stored_blobs(&v2), p.tagged_reachable, "n={n}");
        let gone: BTreeSet<String> = digests_with(&recs, "blob", "deleted")
            .union(&digests_with(&recs, "blob", "absent"))
            .cloned()
            .collect();
        assert_eq!(gone, want_freed, "n={n}");

        let mut after = Registry::start_on(&root).unwrap();
        everything_live_pulls(&after, &p);
        assert!(!after.api().catalog().unwrap().contains(&p.deleted.0));
        after.stop().unwrap();
    }
}
