//! reg-ls lists exactly what the real registry wrote: compared with what the
//! scenario pushed and with the registry's own catalog and tag lists.

use std::collections::{BTreeMap, BTreeSet};

use reg_tests::run_tool;
use serde_json::Value;

use super::scenario;

fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("record without string {field}: {v}"))
        .to_owned()
}

#[test]
fn ls_lists_exactly_what_was_pushed() {
    let Some((reg, p)) = scenario("ls_lists_exactly_what_was_pushed") else {
        return;
    };
    // The registry may stay up: reg-ls only reads.
    let root = reg.root().to_path_buf();
    // --stats: the summary, though stderr is not a terminal here.
    let run = run_tool("reg-ls", &[root.as_os_str(), "--stats".as_ref()], None);
    run.success();
    let records = run.records();

    let mut repos = BTreeSet::new();
    let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut revisions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    let mut uploads: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &records {
        match r["kind"].as_str().unwrap() {
            "repo" => assert!(repos.insert(s(r, "repo")), "repo twice: {r}"),
            "tag" => {
                let old = tags
                    .entry(s(r, "repo"))
                    .or_default()
                    .insert(s(r, "tag"), s(r, "digest"));
                assert!(old.is_none(), "tag twice: {r}");
            }
            "revision" => assert!(revisions.entry(s(r, "repo")).or_default().insert(s(r, "digest"))),
            "layer-link" => assert!(layers.entry(s(r, "repo")).or_default().insert(s(r, "digest"))),
            "blob" => assert!(blobs
                .insert(s(r, "digest"), r["size"].as_u64().unwrap())
                .is_none()),
            "upload" => assert!(uploads.entry(s(r, "repo")).or_default().insert(s(r, "id"))),
            other => panic!("unexpected kind {other}: {r}"),
        }
    }
    assert_eq!(repos, p.repos, "repositories");
    assert_eq!(tags, p.tags, "tags");
    assert_eq!(revisions, p.revisions, "revisions");
    assert_eq!(layers, p.layer_links, "_layers links");
    assert_eq!(blobs, p.blobs, "blobs and sizes");
    assert_eq!(uploads, p.uploads, "uploads");

    // The registry's own view agrees.
    let api = reg.api();
    let catalog: BTreeSet<String> = api.catalog().unwrap().into_iter().collect();
    assert_eq!(repos, catalog, "reg-ls repos vs /v2/_catalog");
    for repo in &repos {
        let served: BTreeSet<String> = api.tags(repo).unwrap().into_iter().collect();
        let listed: BTreeSet<String> = tags
            .get(repo)
            .into_iter()
            .flat_map(|t| t.keys().cloned())
            .collect();
        assert_eq!(listed, served, "reg-ls tags vs /v2/{repo}/tags/list");
    }

    // The summary names the counts; the v2 directory works as ROOT too.
    assert!(run.stderr.contains("5 repos, 7 tags"), "{}", run.stderr);
    let v2 = run_tool("reg-ls", &[reg.v2().as_os_str()], None);
    assert_eq!(v2.success().stdout, run.stdout);
}

#[test]
fn ls_verify_and_filters_on_a_live_tree() {
    let Some((reg, p)) = scenario("ls_verify_and_filters_on_a_live_tree") else {
        return;
    };
    let root = reg.root().display().to_string();
    let run = run_tool("reg-ls", &[root.as_str(), "--kind", "blob", "--verify"], None);
    let records = run.success().records();
    assert_eq!(records.len(), p.blobs.len());
    assert!(
        records.iter().all(|r| r["ok"] == Value::Bool(true)),
        "{}",
        run.stdout
    );

    // Corrupt one blob on disk: --verify says so, and the exit status too.
    let d = p.unreferenced_blob.strip_prefix("sha256:").unwrap();
    let data = reg.v2().join(format!("blobs/sha256/{}/{d}/data", &d[..2]));
    std::fs::write(&data, b"not what was pushed").unwrap();
    let run = run_tool("reg-ls", &[root.as_str(), "--kind", "blob", "--verify"], None);
    run.expect_code(1);
    let bad: Vec<_> = run
        .records()
        .into_iter()
        .filter(|r| r["ok"] == Value::Bool(false))
        .collect();
    assert_eq!(bad.len(), 1, "{}", run.stdout);
    assert_eq!(bad[0]["digest"], p.unreferenced_blob.as_str());
    assert!(run.stderr.contains(&p.unreferenced_blob[7..]), "{}", run.stderr);

    // --repo limits to one repository, nested names included.
    let run = run_tool("reg-ls", &[root.as_str(), "--repo", "a/b", "--kind", "tag"], None);
    let tags: Vec<_> = run
        .success()
        .records()
        .iter()
        .map(|r| (s(r, "repo"), s(r, "tag")))
        .collect();
    assert_eq!(tags, vec![("a/b".to_string(), "1".to_string())]);
}
