//! The README's recipes, run from the README itself: every indented block of
//! its "Recipes" section is a bash script, run with `$ROOT` set to a copy of
//! the sample tree (`examples/registry`, made to look 100 days old as the
//! README's setup block does) and the built tools first on `PATH`. Each must
//! exit 0 and print what it promises, so README and behaviour cannot drift.
//! Needs `jq` and GNU `touch`/`date` (CI installs jq): without jq it skips
//! with a note, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use reg_tests::tools::{run_tool, tool_path};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The indented blocks of the README's "## Recipes" section, in order.
fn recipes() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Recipes\n")
        .expect("README has a Recipes section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in section.lines() {
        if let Some(code) = line.strip_prefix("    ") {
            cur.push(code);
        } else if line.trim().is_empty() && !cur.is_empty() {
            cur.push("");
        } else if !cur.is_empty() {
            blocks.push(cur.join("\n").trim().to_string());
            cur.clear();
        }
    }
    if !cur.is_empty() {
        blocks.push(cur.join("\n").trim().to_string());
    }
    blocks
}

/// A fresh copy of the sample tree whose files look 100 days old.
fn sample_copy(dir: &Path) -> PathBuf {
    let root = dir.join("sample");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(workspace().join("examples/registry"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("find")
        .arg(&root)
        .args(["-exec", "touch", "-h", "-d", "100 days ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(ok.success());
    root
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(script: &str, root: &Path) -> Ran {
    let bin = tool_path("reg-ls").parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env("ROOT", root)
        .env("PATH", path)
        .current_dir(workspace())
        .output()
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn jq_available() -> bool {
    let found = Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("README recipes: jq is not installed, and CI is set");
        }
        eprintln!("skipping README recipes: jq is not installed");
    }
    found
}

/// Each stdout line as JSON (numbers are JSON too).
fn values(r: &Ran, script: &str) -> Vec<Value> {
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{script}\nprinted a line that is not JSON ({e}): {l}"))
        })
        .collect()
}

#[test]
fn every_readme_recipe_runs_on_the_sample_tree() {
    if !jq_available() {
        return;
    }
    let blocks = recipes();
    let (setup, recipes): (Vec<&String>, Vec<&String>) =
        blocks.iter().partition(|b| b.contains("cp -a examples/registry"));
    assert_eq!(setup.len(), 1, "one setup block: {setup:?}");
    assert!(recipes.len() >= 9, "{} recipes: {recipes:#?}", recipes.len());
    let mut seen = Vec::new();
    for script in recipes {
        let dir = tempfile::tempdir().unwrap();
        let root = sample_copy(dir.path());
        let r = run(script, &root);
        let show = format!(
            "--- recipe:\n{script}\n--- stderr:\n{}\n--- stdout:\n{}",
            r.stderr, r.stdout
        );
        assert_eq!(r.code, Some(0), "{show}");
        let vals = values(&r, script);
        assert!(!vals.is_empty(), "printed nothing\n{show}");
        let what = if script.contains("--exclude-repo") {
            // Deleting library/alpine frees its own blobs: a positive number.
            assert_eq!(vals.len(), 1, "{show}");
            assert!(vals[0].as_u64().is_some_and(|n| n > 0), "{show}");
            "what-if"
        } else if script.contains("reg-rm --untag") {
            for v in &vals {
                assert_eq!(
                    (v["action"].as_str(), v["kind"].as_str()),
                    (Some("deleted"), Some("tag")),
                    "{show}"
                );
            }
            if script.contains("reg-keep") {
                // What the policy says is what is left: no repository
                // emptied, at most N tags each with --keep-newest N.
                let fresh = dir.path().join("fresh");
                std::fs::create_dir(&fresh).unwrap();
                let before = tag_counts(&sample_copy(&fresh));
                let after = tag_counts(&root);
                assert_eq!(
                    before.keys().collect::<Vec<_>>(),
                    after.keys().collect::<Vec<_>>(),
                    "{show}"
                );
                assert_eq!(
                    vals.len(),
                    before.values().sum::<usize>() - after.values().sum::<usize>(),
                    "{show}"
                );
                if let Some(n) = flag_value(script, "--keep-newest") {
                    for (repo, k) in &after {
                        assert_eq!(*k, before[repo].min(n), "{repo}\n{show}");
                    }
                }
            }
            "untag"
        } else if script.contains("--explain") {
            for v in &vals {
                assert!(matches!(v["kind"].as_str(), Some("kept" | "dropped")), "{show}");
                assert!(v["rule"].is_string(), "{show}");
            }
            assert!(vals.iter().any(|v| v["kind"] == "dropped"), "{show}");
            assert!(vals.iter().any(|v| v["kind"] == "kept"), "{show}");
            "preview"
        } else if script.contains("--verify") {
            assert_eq!(r.stdout.trim(), "[]", "{show}");
            // A corrupted blob is named, and the status says so.
            let blob = first_blob(&root);
            std::fs::write(&blob.1, b"not what it was").unwrap();
            let r = run(script, &root);
            assert_eq!(r.code, Some(1), "{script}\n{}", r.stderr);
            assert!(r.stdout.contains(&blob.0), "{script}\n{}", r.stdout);
            "verify"
        } else if script.contains("select(.kind == \"revision\")") {
            for v in &vals {
                assert_eq!(v["kind"], "revision", "{show}");
            }
            "revisions"
        } else if script.contains("group_by(.repo)") || script.contains("group_by(.repo + ") {
            for v in &vals {
                assert!(v["repo"].is_string() && v["bytes"].as_u64().is_some(), "{show}");
            }
            "per-repository"
        } else {
            assert_eq!(vals.len(), 1, "{show}");
            assert!(vals[0].as_u64().is_some_and(|n| n > 0), "{show}");
            "total"
        };
        seen.push(what);
    }
    for want in [
        "total",
        "per-repository",
        "what-if",
        "untag",
        "preview",
        "revisions",
        "verify",
    ] {
        assert!(seen.contains(&want), "no {want} recipe: {seen:?}");
    }
}

/// Tags per repository under `root`.
fn tag_counts(root: &Path) -> std::collections::BTreeMap<String, usize> {
    let out = run_tool(
        "reg-ls",
        &[root.as_os_str(), "--kind".as_ref(), "tag".as_ref()],
        None,
    );
    out.success();
    let mut n = std::collections::BTreeMap::new();
    for r in out.records() {
        *n.entry(r["repo"].as_str().unwrap().to_string()).or_default() += 1;
    }
    n
}

/// The number after `flag` in `script`.
fn flag_value(script: &str, flag: &str) -> Option<usize> {
    let rest = script.split_once(flag)?.1;
    rest.split_whitespace().next()?.parse().ok()
}

/// The digest and data path of some blob of the tree.
fn first_blob(root: &Path) -> (String, PathBuf) {
    let out = run_tool(
        "reg-ls",
        &[root.as_os_str(), "--kind".as_ref(), "blob".as_ref()],
        None,
    );
    out.success();
    let rec = &out.records()[0];
    let d = rec["digest"].as_str().unwrap().to_string();
    let hex = d.strip_prefix("sha256:").unwrap();
    let data = root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    (d, data)
}

/// The what-if list of `reg-refs --exclude-repo` goes through reg-orphans
/// (which carries the exclusion on) and is refused by reg-rm.
#[test]
fn a_what_if_list_is_refused_by_reg_rm() {
    let dir = tempfile::tempdir().unwrap();
    let root = sample_copy(dir.path());
    let r = root.as_os_str();
    let refs = run_tool(
        "reg-refs",
        &[r, "--exclude-repo".as_ref(), "library/alpine".as_ref()],
        None,
    );
    refs.success();
    let end = refs.records().pop().unwrap();
    assert_eq!(end["excluded"], serde_json::json!(["library/alpine"]), "{end}");
    assert_eq!(end["complete"], true);
    let orphans = run_tool("reg-orphans", &[r], Some(refs.stdout.as_bytes()));
    orphans.success();
    let recs = orphans.records();
    assert_eq!(
        recs.last().unwrap()["excluded"],
        serde_json::json!(["library/alpine"])
    );
    assert!(
        recs.iter()
            .any(|x| x["kind"] == "repo" && x["repo"] == "library/alpine"),
        "the excluded repository is reported: {recs:#?}"
    );
    assert!(recs
        .iter()
        .any(|x| x["kind"] == "revision" && x["repo"] == "library/alpine"));
    let rm = run_tool(
        "reg-rm",
        &[r, "--dry-run".as_ref()],
        Some(orphans.stdout.as_bytes()),
    );
    rm.expect_code(1);
    assert!(rm.stdout.is_empty(), "{}", rm.stdout);
    assert!(
        rm.stderr
            .contains("a what-if list, made by reg-refs --exclude-repo library/alpine"),
        "{}",
        rm.stderr
    );
}

/// The weekly script of the README's "Your first real GC" (the indented
/// block that starts with `#!/bin/bash`), as written, on an aged copy of
/// the sample with a `config.yml` naming it: a dry run, then the real run
/// into a dated trash, both logged; the real run moves what the dry run
/// said it would, and the summary reaches stdout (the journal).
#[test]
fn the_weekly_script_runs_a_dry_run_then_the_real_run_and_logs_both() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Your first real GC\n")
        .expect("README has its first real GC")
        .1
        .split("\n## ")
        .next()
        .unwrap();
    let script: Vec<&str> = section
        .lines()
        .skip_while(|l| *l != "    #!/bin/bash")
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    assert!(script.len() > 5, "no #!/bin/bash block: {script:?}");
    let dir = tempfile::tempdir().unwrap();
    let root = sample_copy(dir.path());
    let file = dir.path().join("registry-gc");
    std::fs::write(&file, script.join("\n")).unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ),
    )
    .unwrap();
    let (logs, trash) = (dir.path().join("logs"), dir.path().join("trash"));
    let bin = tool_path("reg-ls").parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .arg(&file)
        .env("REGISTRY_CONFIG", &config)
        .env("GC_LOGS", &logs)
        .env("GC_TRASH", &trash)
        .env("PATH", path)
        .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
        .env_remove("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR")
        .output()
        .unwrap();
    let show = format!(
        "--- script:\n{}\n--- stderr:\n{}\n--- stdout:\n{}",
        script.join("\n"),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "{show}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let run = names[0].split('.').next().unwrap().to_string();
    let read = |suffix: &str| std::fs::read_to_string(logs.join(format!("{run}{suffix}"))).unwrap();
    let actions = |text: &str, action: &str| {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["action"] == action)
            .map(|r| (r["kind"].clone(), r["digest"].clone(), r["repo"].clone()))
            .collect::<Vec<_>>()
    };
    let would = actions(&read(".dry-run.jsonl"), "would-delete");
    let trashed = actions(&read(".jsonl"), "trashed");
    assert!(!would.is_empty(), "{show}");
    assert_eq!(would, trashed, "the real run moves what the dry run said");
    let log = read(".log");
    assert!(
        log.contains("reg-rm: the registry runs with a blob descriptor cache"),
        "{log}"
    );
    let summary = log.lines().last().unwrap();
    assert!(summary.starts_with("reg-rm: trashed "), "{log}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), summary, "{show}");
    assert!(read(".dry-run.log")
        .lines()
        .last()
        .unwrap()
        .starts_with("reg-rm: would-delete "));
    assert!(trash.join(&run).join("blobs").is_dir(), "{show}");
    // Nothing left to collect.
    let again = run_tool("reg-refs", &[root.as_os_str()], None);
    let orphans = run_tool("reg-orphans", &[root.as_os_str()], Some(again.stdout.as_bytes()));
    assert_eq!(orphans.records().len(), 1, "only the trailer: {}", orphans.stdout);
}
