//! `reg-refs | reg-orphans` on the scenario, against what the test pushed
//! and the registry's own `garbage-collect --dry-run`.

use std::collections::BTreeSet;

use reg_tests::{run_tool, Pushed, Registry, Run};
use serde_json::Value;

use super::scenario;

fn refs(reg: &Registry, extra: &[&str]) -> Run {
    let root = reg.root().display().to_string();
    let args: Vec<&str> = std::iter::once(root.as_str())
        .chain(extra.iter().copied())
        .collect();
    let run = run_tool("reg-refs", &args, None);
    run.success();
    run
}

fn orphans(reg: &Registry, extra: &[&str], input: &str) -> Run {
    let root = reg.root().display().to_string();
    let args: Vec<&str> = std::iter::once(root.as_str())
        .chain(extra.iter().copied())
        .collect();
    run_tool("reg-orphans", &args, Some(input.as_bytes()))
}

/// The records of kind `kind`.
fn of_kind(recs: &[Value], kind: &str) -> Vec<Value> {
    recs.iter().filter(|r| r["kind"] == kind).cloned().collect()
}

fn str_set(recs: &[Value], field: &str) -> BTreeSet<String> {
    recs.iter()
        .map(|r| r[field].as_str().unwrap().to_string())
        .collect()
}

fn pairs(recs: &[Value]) -> BTreeSet<(String, String)> {
    recs.iter()
        .map(|r| {
            (
                r["repo"].as_str().unwrap().to_string(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn trailer(recs: &[Value]) -> &Value {
    let end = recs.last().expect("output");
    assert_eq!(end["kind"], "end");
    assert_eq!(end["tool"], "reg-orphans");
    end
}

fn sizes(p: &Pushed, blobs: &BTreeSet<String>) -> u64 {
    blobs.iter().map(|d| p.blobs[d]).sum()
}

#[test]
fn orphan_blobs_equal_the_registry_gc_dry_run() {
    let Some((reg, p)) = scenario("orphan_blobs_equal_the_registry_gc_dry_run") else {
        return;
    };
    let input = refs(&reg, &[]).stdout.clone();

    // Everything was just pushed: the default grace period reports nothing.
    let run = orphans(&reg, &[], &input);
    run.success();
    let recs = run.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let end = trailer(&recs);
    assert!(end["too_young"].as_u64().unwrap() >= 4, "{end}");
    assert_eq!(end["stored_blobs"], p.blobs.len() as u64);

    let run = orphans(&reg, &["--min-age", "0s"], &input);
    run.success();
    let recs = run.records();
    let blobs = str_set(&of_kind(&recs, "blob"), "digest");
    let gc = reg.gc_report(true, false).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        blobs, gc.eligible_blobs,
        "orphan blobs vs garbage-collect --dry-run"
    );
    assert!(blobs.contains(&p.unreferenced_blob));
    assert!(blobs.contains(&p.deleted.1));
    // Every revision is a root: none is an orphan, and no link dangles.
    assert!(of_kind(&recs, "revision").is_empty(), "{recs:?}");
    assert!(of_kind(&recs, "layer-link").is_empty(), "{recs:?}");
    // The fresh upload is not stale yet.
    assert!(of_kind(&recs, "upload").is_empty());
    assert_eq!(
        str_set(&of_kind(&recs, "repo"), "repo"),
        BTreeSet::from([p.deleted.0.clone()])
    );
    // Sizes add up to what a GC frees.
    let sum: u64 = recs.iter().map(|r| r["size"].as_u64().unwrap_or(0)).sum();
    assert_eq!(sum, sizes(&p, &blobs));
    assert_eq!(trailer(&recs)["blob_bytes"], sum);
}

#[test]
fn tagged_only_orphans_are_what_no_tag_reaches() {
    let Some((reg, p)) = scenario("tagged_only_orphans_are_what_no_tag_reaches") else {
        return;
    };
    let input = refs(&reg, &["--tagged-only"]).stdout.clone();
    let run = orphans(&reg, &["--min-age", "0s", "--upload-age", "0s"], &input);
    run.success();
    let recs = run.records();

    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(str_set(&of_kind(&recs, "blob"), "digest"), want);

    let app = "org/team/app".to_string();
    let revisions = pairs(&of_kind(&recs, "revision"));
    assert_eq!(
        revisions,
        BTreeSet::from([
            (app.clone(), p.overwritten.clone()),
            (app.clone(), p.untagged.clone())
        ])
    );
    // The same, derived from what was pushed: revisions no tag reaches.
    let unreached: BTreeSet<(String, String)> = p
        .revision_list()
        .into_iter()
        .filter(|(_, d)| !p.tagged_reachable.contains(d))
        .collect();
    assert_eq!(revisions, unreached);

    let uploads: BTreeSet<(String, String)> = of_kind(&recs, "upload")
        .iter()
        .map(|r| {
            (
                r["repo"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(uploads, BTreeSet::from([p.upload.clone()]));
    assert_eq!(
        str_set(&of_kind(&recs, "repo"), "repo"),
        BTreeSet::from([p.deleted.0.clone()])
    );
    assert!(of_kind(&recs, "layer-link").is_empty());
    let end = trailer(&recs);
    assert_eq!(end["blobs"], want.len() as u64);
    assert_eq!(end["blob_bytes"], sizes(&p, &want));
    assert_eq!(end["revisions"], 2);
    assert_eq!(end["uploads"], 1);
    assert_eq!(end["repos"], 1);
}

#[test]
fn cut_or_partial_refs_output_is_refused() {
    let Some((reg, _p)) = scenario("cut_or_partial_refs_output_is_refused") else {
        return;
    };
    let full = refs(&reg, &["--tagged-only"]).stdout.clone();
    assert!(full.lines().count() > 20);
    // reg-refs ROOT | head -n 20 | reg-orphans ROOT
    let head: String = full.lines().take(20).map(|l| format!("{l}\n")).collect();
    let run = orphans(&reg, &["--min-age", "0s"], &head);
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("stdin line 20"), "{}", run.stderr);
    // Cut inside a line.
    let run = orphans(&reg, &["--min-age", "0s"], &full[..full.len() - 10]);
    run.expect_code(1);
    assert!(run.stdout.is_empty());
    // A list of one repository proves nothing unreferenced elsewhere.
    let partial = refs(&reg, &["--repo", "a/b"]).stdout.clone();
    let run = orphans(&reg, &["--min-age", "0s"], &partial);
    run.expect_code(1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("--repo"), "{}", run.stderr);
}
