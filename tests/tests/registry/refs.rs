//! reg-refs against trees the real registry wrote: the blobs it names are
//! exactly what the registry's own `garbage-collect --dry-run` marks, and
//! with `--tagged-only` exactly what a correct tagged-only GC keeps, which
//! is more than 2.8.2's `--delete-untagged` keeps (index children and
//! referrers).

use std::collections::BTreeSet;
use std::path::Path;

use reg_tests::{run_tool, Pushed, Run};
use serde_json::Value;

use super::scenario;

fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("record without string {field}: {v}"))
        .to_owned()
}

/// The body records and the trailer of a successful run; checks that the
/// trailer is last, only last, and that its counts match the body.
#[track_caller]
fn body_and_trailer(run: &Run) -> (Vec<Value>, Value) {
    run.success();
    let mut recs = run.records();
    let end = recs.pop().expect("no output at all");
    assert_eq!(end["kind"], "end", "the last line is not the trailer: {end}");
    assert_eq!(end["tool"], "reg-refs");
    assert!(
        recs.iter().all(|r| r["kind"] != "end"),
        "a trailer before the end"
    );
    let count = |kinds: &[&str]| {
        recs.iter()
            .filter(|r| kinds.contains(&r["kind"].as_str().unwrap()))
            .count()
    };
    assert_eq!(end["tags"].as_u64().unwrap() as usize, count(&["tag"]), "{end}");
    assert_eq!(
        end["revisions"].as_u64().unwrap() as usize,
        count(&["revision"]),
        "{end}"
    );
    assert_eq!(
        end["references"].as_u64().unwrap() as usize,
        count(&["manifest", "config", "layer", "referrer"]),
        "{end}"
    );
    assert_eq!(
        recs.len(),
        count(&["tag", "revision", "manifest", "config", "layer", "referrer"])
    );
    (recs, end)
}

/// Every digest the records name: their `digest` and `manifest` fields.
fn named(recs: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in recs {
        out.insert(s(r, "digest"));
        if r.get("manifest").is_some() {
            out.insert(s(r, "manifest"));
        }
    }
    out
}

/// The blobs stored under `v2/blobs`, read straight from the directory.
fn stored_blobs(v2: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = v2.join("blobs/sha256");
    for prefix in std::fs::read_dir(&dir).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            if blob.path().join("data").is_file() {
                out.insert(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// `m` itself, its config and its layers, as the scenario pushed it.
fn blobs_of(p: &Pushed, manifests: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in manifests {
        let info = &p.manifests[&m];
        out.extend(info.config.iter().cloned());
        out.extend(info.layers.iter().cloned());
        out.extend(info.children.iter().cloned());
        out.insert(m);
    }
    out
}

#[test]
fn refs_marks_the_blobs_the_registry_gc_marks() {
    let Some((reg, p)) = scenario("refs_marks_the_blobs_the_registry_gc_marks") else {
        return;
    };
    // --stats: the summary, though stderr is not a terminal here.
    let run = run_tool("reg-refs", &[reg.root().as_os_str(), "--stats".as_ref()], None);
    let (recs, end) = body_and_trailer(&run);
    let stored = stored_blobs(&reg.v2());
    assert_eq!(stored, p.blob_set(), "stored blobs vs what the scenario pushed");

    let named = named(&recs);
    let unnamed: BTreeSet<String> = stored.difference(&named).cloned().collect();
    let gc = reg.gc_report(true, false).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        unnamed, gc.eligible_blobs,
        "stored blobs reg-refs does not name vs `garbage-collect --dry-run` eligible blobs"
    );
    assert!(!unnamed.is_empty(), "the scenario has unreferenced blobs");
    assert!(unnamed.contains(&p.unreferenced_blob));
    assert!(
        unnamed.contains(&p.deleted.1),
        "a manifest deleted through the API"
    );

    // The roots are the registry's: every revision of every repository.
    let revisions: BTreeSet<(String, String)> = recs
        .iter()
        .filter(|r| r["kind"] == "revision")
        .map(|r| (s(r, "repo"), s(r, "digest")))
        .collect();
    assert_eq!(
        revisions, gc.marked_manifests,
        "revision roots vs manifests the GC marks"
    );
    assert_eq!(revisions, p.revision_list());
    let tags: Vec<(String, String, String)> = recs
        .iter()
        .filter(|r| r["kind"] == "tag")
        .map(|r| (s(r, "repo"), s(r, "tag"), s(r, "digest")))
        .collect();
    assert_eq!(tags, p.tag_list());

    // The trailer's counts.
    assert_eq!(end["repos"], p.repos.len() as u64);
    assert_eq!(end["missing"], 0);
    assert_eq!(end["complete"], true);
    // Every (repository, manifest) live pair: all revisions here.
    assert_eq!(end["manifests"], p.revision_list().len() as u64);
    assert!(
        run.stderr.starts_with("reg-refs: 5 repos, 7 tags"),
        "{}",
        run.stderr
    );
}

#[test]
fn refs_tagged_only_keeps_index_children_and_referrers() {
    let Some((reg, p)) = scenario("refs_tagged_only_keeps_index_children_and_referrers") else {
        return;
    };
    let run = run_tool(
        "reg-refs",
        &[reg.root().as_os_str(), "--tagged-only".as_ref()],
        None,
    );
    let (recs, end) = body_and_trailer(&run);
    let named = named(&recs);
    assert_eq!(
        named, p.tagged_reachable,
        "named by --tagged-only vs Pushed::tagged_reachable"
    );
    assert_eq!(end["revisions"], 0);

    // The referrer chain, as referrer records.
    let referrers: BTreeSet<(String, String)> = recs
        .iter()
        .filter(|r| r["kind"] == "referrer")
        .map(|r| (s(r, "manifest"), s(r, "digest")))
        .collect();
    let v1 = p.tags["org/team/app"]["v1"].clone();
    assert_eq!(
        referrers,
        BTreeSet::from([
            (v1, p.referrer.clone()),
            (p.referrer.clone(), p.referrer_of_referrer.clone())
        ])
    );
    for gone in [&p.overwritten, &p.untagged] {
        assert!(!named.contains(gone), "{gone} is untagged and unreferenced");
    }

    // Where we differ from 2.8.2's `garbage-collect --delete-untagged`.
    let gc = reg.gc_report(true, true).unwrap_or_else(|e| panic!("{e:#}"));
    let stored = stored_blobs(&reg.v2());
    let ours: BTreeSet<String> = stored.difference(&named).cloned().collect();
    // 1. Whatever we would collect, it collects too.
    assert!(
        ours.is_subset(&gc.eligible_blobs),
        "we collect blobs the registry keeps: {:?}",
        ours.difference(&gc.eligible_blobs).collect::<Vec<_>>()
    );
    // 2. It deletes the revisions of manifests we keep live: the children
    //    of the tagged multi-arch index (#3178: the tag stops pulling) and
    //    the referrers of v1 (it ignores `subject`).
    let live_untagged: BTreeSet<String> = p.live_untagged.iter().map(|(_, d)| d.clone()).collect();
    let children: BTreeSet<String> = p
        .tag_list()
        .iter()
        .flat_map(|(_, _, d)| p.manifests[d].children.clone())
        .collect();
    assert!(!children.is_empty() && !live_untagged.is_empty());
    let kept_by_us: BTreeSet<String> = gc.eligible_manifests.intersection(&named).cloned().collect();
    assert_eq!(
        kept_by_us,
        children.union(&live_untagged).cloned().collect(),
        "manifests --delete-untagged deletes and reg-refs --tagged-only keeps"
    );
    // 3. The blobs it deletes and we keep are exactly theirs (the children
    //    and referrers, their configs and layers), less what a tagged
    //    manifest still uses.
    let extra: BTreeSet<String> = gc.eligible_blobs.difference(&ours).cloned().collect();
    let tagged = blobs_of(&p, p.tag_list().into_iter().map(|(_, _, d)| d));
    let theirs: BTreeSet<String> = blobs_of(&p, children.union(&live_untagged).cloned())
        .difference(&tagged)
        .cloned()
        .collect();
    assert!(extra.is_subset(&named));
    assert_eq!(
        extra, theirs,
        "blobs --delete-untagged deletes and reg-refs --tagged-only keeps"
    );
}

#[test]
fn refs_output_is_json_lines_with_a_trailer_that_counts() {
    let Some((reg, p)) = scenario("refs_output_is_json_lines_with_a_trailer_that_counts") else {
        return;
    };
    // The v2 directory works as ROOT too, and gives the same output.
    let run = run_tool("reg-refs", &[reg.root().as_os_str()], None);
    let (recs, end) = body_and_trailer(&run);
    let via_v2 = run_tool("reg-refs", &[reg.v2().as_os_str()], None);
    assert_eq!(via_v2.success().stdout, run.stdout);

    // Every record carries the contract's fields; digests are sha256 strings.
    for r in &recs {
        let kind = s(r, "kind");
        let fields: &[&str] = match kind.as_str() {
            "tag" => &["repo", "tag", "digest"],
            "revision" => &["repo", "digest"],
            "manifest" | "referrer" => &["repo", "manifest", "digest"],
            "config" | "layer" => &["repo", "manifest", "digest"],
            other => panic!("unexpected kind {other}: {r}"),
        };
        for f in fields {
            let v = s(r, f);
            if *f == "digest" || *f == "manifest" {
                assert!(v.starts_with("sha256:") && v.len() == 71, "{r}");
            }
        }
        if kind == "config" || kind == "layer" {
            assert!(r["size"].as_u64().is_some_and(|n| n > 0), "{r}");
        }
    }
    // The image edges match what was pushed.
    for r in recs.iter().filter(|r| r["kind"] == "config") {
        let m = &p.manifests[&s(r, "manifest")];
        assert_eq!(m.config.as_deref(), Some(s(r, "digest").as_str()), "{r}");
    }
    for r in recs.iter().filter(|r| r["kind"] == "manifest") {
        assert!(
            p.manifests[&s(r, "manifest")].children.contains(&s(r, "digest")),
            "{r}"
        );
    }
    let repos: BTreeSet<String> = recs.iter().map(|r| s(r, "repo")).collect();
    // deleted/img has no tag and no revision: no record, but it is counted.
    assert_eq!(repos.len() + 1, p.repos.len());
    assert_eq!(end["repos"], p.repos.len() as u64);
    let manifests: BTreeSet<(String, String)> = recs
        .iter()
        .filter(|r| r["kind"] == "config" || r["kind"] == "manifest")
        .map(|r| (s(r, "repo"), s(r, "manifest")))
        .collect();
    assert_eq!(end["manifests"], manifests.len() as u64);

    // `--repo` walks one repository and says the list is not complete.
    let one = run_tool(
        "reg-refs",
        &[reg.root().as_os_str(), "--repo".as_ref(), "a/b".as_ref()],
        None,
    );
    let (recs, end) = body_and_trailer(&one);
    assert_eq!(end["complete"], false);
    assert_eq!(end["repos"], 1);
    assert!(recs.iter().all(|r| r["repo"] == "a/b"));
}
