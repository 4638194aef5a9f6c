//! The harness itself: the scenario pushes, pulls back, and the
//! expectations recorded in `Pushed` agree with the registry's own GC.

use std::collections::BTreeSet;

use reg_tests::oci::{layer, Image, Platform};
use reg_tests::{registry_programs_available, skopeo, Registry};

use super::scenario;

#[test]
fn scenario_pushes_and_every_tag_pulls() {
    let Some((reg, pushed)) = scenario("scenario_pushes_and_every_tag_pulls") else {
        return;
    };
    let api = reg.api();

    let catalog: BTreeSet<String> = api.catalog().unwrap().into_iter().collect();
    assert_eq!(catalog, pushed.repos, "catalog");
    for repo in &pushed.repos {
        let tags: BTreeSet<String> = api.tags(repo).unwrap().into_iter().collect();
        let want: BTreeSet<String> = pushed
            .tags
            .get(repo)
            .into_iter()
            .flatten()
            .map(|(t, _)| t.clone())
            .collect();
        assert_eq!(tags, want, "tags of {repo}");
    }

    // Every revision is served, with the bytes that hash to its digest.
    for (repo, digest) in pushed.revision_list() {
        let (_, bytes) = api
            .get_manifest(&repo, &digest)
            .unwrap()
            .unwrap_or_else(|| panic!("{repo}@{digest} not served"));
        assert_eq!(reg_core::Digest::sha256_of(&bytes).to_string(), digest);
    }
    let (repo, digest) = &pushed.deleted;
    assert!(
        api.get_manifest(repo, digest).unwrap().is_none(),
        "deleted manifest still served"
    );
    assert!(api
        .blob_exists("library/alpine", &pushed.unreferenced_blob)
        .unwrap());

    assert_eq!(pushed.pull.len(), 7, "{:?}", pushed.pull);
    for r in &pushed.pull {
        skopeo::pull_all(&reg.image_ref(r)).unwrap_or_else(|e| panic!("{e:#}"));
    }
    for (repo, digest) in &pushed.live_untagged {
        skopeo::pull_all(&reg.image_ref(&format!("{repo}@{digest}"))).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

#[test]
fn expectations_are_consistent() {
    let Some((_reg, p)) = scenario("expectations_are_consistent") else {
        return;
    };
    let blobs = p.blob_set();
    assert_eq!(blobs.len(), 41);
    assert!(p.tagged_reachable.is_subset(&p.revision_reachable));
    assert!(p.revision_reachable.is_subset(&blobs));
    // Not reachable from any revision: the unreferenced blob and the
    // deleted image's manifest, config and layer.
    let unreachable: BTreeSet<_> = blobs.difference(&p.revision_reachable).cloned().collect();
    assert_eq!(unreachable.len(), 4, "{unreachable:?}");
    assert!(unreachable.contains(&p.unreferenced_blob));
    assert!(unreachable.contains(&p.deleted.1));
    // Reachable from revisions but not from tags: the overwritten v2 and
    // the untagged image, each with its config and own layer.
    let untagged_only: BTreeSet<_> = p
        .revision_reachable
        .difference(&p.tagged_reachable)
        .cloned()
        .collect();
    assert_eq!(untagged_only.len(), 6, "{untagged_only:?}");
    assert!(untagged_only.contains(&p.overwritten));
    assert!(untagged_only.contains(&p.untagged));
    // Referrers stay live, transitively.
    for d in [&p.referrer, &p.referrer_of_referrer] {
        assert!(p.tagged_reachable.contains(d));
        assert!(p.live_untagged.contains(&("org/team/app".to_string(), d.clone())));
    }
    assert_eq!(p.live_untagged.len(), 2);
    assert_eq!(p.repos.len(), 5);
    assert!(!p.revisions.contains_key("deleted/img"));
    assert!(!p.tags.contains_key("deleted/img"));
    assert_eq!(p.uploads.values().map(|u| u.len()).sum::<usize>(), 1);
}

#[test]
fn gc_dry_run_parser_on_a_real_run() {
    let Some((reg, p)) = scenario("gc_dry_run_parser_on_a_real_run") else {
        return;
    };
    let all_revisions = reg.gc_report(true, false).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(all_revisions.eligible_blobs.contains(&p.unreferenced_blob));
    // Without --delete-untagged every revision is a root.
    let want: BTreeSet<_> = p.blob_set().difference(&p.revision_reachable).cloned().collect();
    assert_eq!(all_revisions.eligible_blobs, want);
    assert!(all_revisions.eligible_manifests.is_empty());
    assert_eq!(all_revisions.marked_manifests, p.revision_list());

    // --delete-untagged (2.8.2): at least everything a tagged-only GC may
    // delete, plus, wrongly, the children of tagged indexes (#3178) and
    // referrers (it ignores `subject`).
    let untagged = reg.gc_report(true, true).unwrap_or_else(|e| panic!("{e:#}"));
    let want: BTreeSet<_> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert!(untagged.eligible_blobs.is_superset(&want));
    assert!(untagged.eligible_manifests.contains(&p.overwritten));
    assert!(untagged.eligible_manifests.contains(&p.untagged));
    assert!(
        untagged.eligible_manifests.contains(&p.referrer),
        "2.8 ignores subject"
    );
    let latest = &p.tags["library/alpine"]["latest"];
    for child in &p.manifests[latest].children {
        assert!(
            untagged.eligible_manifests.contains(child),
            "2.8.2 --delete-untagged no longer deletes index children: update storage-layout.md"
        );
    }
    // A dry run deletes nothing.
    assert_eq!(reg.gc_report(true, false).unwrap(), all_revisions);
}

#[test]
fn registry_restarts_on_the_same_root() {
    if !registry_programs_available("registry_restarts_on_the_same_root") {
        return;
    }
    let mut reg = Registry::start().unwrap();
    let img = Image::build("restart", Platform::linux("amd64"), vec![layer("restart")]);
    skopeo::push_content(&reg.addr(), "r/one", Some("1"), &img).unwrap();
    reg.stop().unwrap();
    assert!(!reg.is_running());
    assert!(reg
        .v2()
        .join("repositories/r/one/_manifests/tags/1/current/link")
        .is_file());
    reg.restart().unwrap();
    skopeo::pull_all(&reg.image_ref("r/one:1")).unwrap();
    assert_eq!(reg.api().tags("r/one").unwrap(), vec!["1".to_string()]);
}
