//! Tests of the reg-rm binary on copies of the recorded sample tree
//! (`examples/registry`); the end-to-end tests against a real registry live
//! in `tests/tests/registry/gc.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reg_core::layout::{paths, Store};

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::*;

/// A private copy of the sample tree.
struct Sample {
    dir: tempfile::TempDir,
}

impl Sample {
    fn new() -> Sample {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&sample(), &dir.path().join("registry"));
        Sample { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    fn v2(&self) -> PathBuf {
        self.root().join("docker/registry/v2")
    }

    fn store(&self) -> Store {
        Store::fs(self.v2())
    }

    /// Runs reg-rm on this tree with `args`, feeding `stdin`.
    fn rm(&self, args: &[&str], stdin: &str) -> Output {
        self.rm_env(args, stdin, &[])
    }

    fn rm_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        run_reading_all(
            Command::new(env!("CARGO_BIN_EXE_reg-rm"))
                .args(args)
                .arg(self.root())
                .envs(env.iter().copied()),
            stdin.as_bytes(),
        )
    }

    /// Runs reg-rm on this tree with `args`, its stdout closed before it
    /// writes anything, feeding `stdin`.
    fn rm_stdout_closed(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = spawn_piped(
            Command::new(env!("CARGO_BIN_EXE_reg-rm"))
                .args(args)
                .arg(self.root()),
        );
        drop(child.stdout.take());
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// Every path under `p` with its content.
fn snapshot(p: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(p).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                m.insert(rel, b"<dir>".to_vec());
            } else {
                m.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    m
}

/// What is garbage in the sample once only tags count: `deleted/img`'s
/// layer links' blobs and its repository (known from the tree itself).
fn deleted_img_input(s: &Sample) -> String {
    let store = s.store();
    let mut input = String::new();
    for l in store.layer_links("deleted/img").items {
        input.push_str(&format!("{}\n", l.digest));
    }
    input.push_str("{\"kind\":\"repo\",\"repo\":\"deleted/img\"}\n");
    input
}

#[test]
fn bad_input_deletes_nothing_and_names_the_line() {
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let good = deleted_img_input(&s);
    for bad in [
        "not a digest",
        "sha256:1234",
        "{\"kind\":\"repo\",\"repo\":\"../../..\"}",
        "{\"kind\":\"tag\",\"repo\":\"library/alpine\",\"tag\":\"a/../b\"}",
        "{\"kind\":\"whatever\"}",
    ] {
        let n = good.lines().count() + 1;
        let out = s.rm(&["--min-age", "0s"], &format!("{good}{bad}\n"));
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("reg-rm: error: stdin line {n}: ")),
            "{bad}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
        assert_eq!(snapshot(&s.v2()), before, "{bad}");
    }
}

#[test]
fn reg_refs_output_is_refused() {
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let tag = &s.store().tags("library/alpine").items[0];
    let input = format!(
        "{{\"kind\":\"tag\",\"repo\":\"library/alpine\",\"tag\":\"{}\",\"digest\":\"{}\"}}\n\
         {{\"kind\":\"end\",\"tool\":\"reg-refs\",\"repos\":1,\"tags\":1,\"manifests\":1,\"references\":1,\"missing\":0}}\n",
        tag.name, tag.digest
    );
    let out = s.rm(&["--min-age", "0s"], &input);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin line 2: this is reg-refs output"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&s.v2()), before);
}

#[test]
fn deletes_then_second_run_is_absent_and_reminds_about_the_cache() {
    let s = Sample::new();
    let input = deleted_img_input(&s);
    let blobs: Vec<_> = s
        .store()
        .layer_links("deleted/img")
        .items
        .iter()
        .map(|l| l.digest)
        .collect();
    assert_eq!(blobs.len(), 2);

    let dry = s.rm(&["--min-age", "0s", "--dry-run"], &input);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(json_lines(&dry).iter().all(|r| r["action"] == "would-delete"));
    assert!(!stderr(&dry).contains("blob descriptor cache"));
    assert!(s.v2().join(paths::blob_data(&blobs[0])).is_file());

    let out = s.rm(&["--min-age", "0s"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = json_lines(&out);
    let deleted = |kind: &str| {
        recs.iter()
            .filter(|r| r["kind"] == kind && r["action"] == "deleted")
            .count()
    };
    assert_eq!(
        (deleted("blob"), deleted("layer-link"), deleted("repo")),
        (2, 2, 1),
        "{recs:#?}"
    );
    let err = stderr(&out);
    assert!(err.contains("storage.cache.blobdescriptor"), "{err}");
    assert!(
        err.contains("reg-rm: deleted 5 (2 blobs, 2 layer links, 1 repo)"),
        "{err}"
    );
    for b in &blobs {
        assert!(!s.v2().join(paths::blob_dir(b)).exists());
    }
    assert!(!s.v2().join("repositories/deleted").exists());
    assert!(s.store().repositories().items.iter().all(|r| r != "deleted/img"));

    let again = s.rm(&["--min-age", "0s"], &input);
    assert!(again.status.success());
    assert!(json_lines(&again).iter().all(|r| r["action"] == "absent"));
    assert!(!stderr(&again).contains("blob descriptor cache"));
}

#[test]
fn default_min_age_keeps_fresh_data() {
    // The copy was just written: everything in it is younger than 1h.
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let out = s.rm(&[], &deleted_img_input(&s));
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["action"], "kept", "{r}");
        assert!(r["reason"].as_str().unwrap().contains("1h"), "{r}");
    }
    assert_eq!(snapshot(&s.v2()), before);
}

#[test]
fn tagged_manifests_are_kept() {
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let store = s.store();
    let mut input = String::new();
    for repo in store.repositories().items {
        for t in store.tags(&repo).items {
            input.push_str(&format!("{}\n", t.digest));
            input.push_str(&format!(
                "{{\"kind\":\"revision\",\"repo\":\"{repo}\",\"digest\":\"{}\"}}\n",
                t.digest
            ));
        }
    }
    let out = s.rm(&["--min-age", "0s"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = json_lines(&out);
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r["action"] == "kept"), "{recs:#?}");
    assert_eq!(snapshot(&s.v2()), before);
}

#[test]
fn trash_restores_and_refuses_another_filesystem() {
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let trash = s.dir.path().join("trash");
    let input = deleted_img_input(&s);
    let out = s.rm(&["--min-age", "0s", "--trash", trash.to_str().unwrap()], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(json_lines(&out).iter().all(|r| r["action"] == "trashed"));
    assert_ne!(snapshot(&s.v2()), before);
    copy_tree(&trash, &s.v2());
    // Back, except the empty directories removed afterwards.
    let after = snapshot(&s.v2());
    let files = |m: &BTreeMap<PathBuf, Vec<u8>>| -> Vec<PathBuf> {
        m.iter()
            .filter(|(_, v)| v.as_slice() != b"<dir>")
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(files(&after), files(&before));
    assert!(after.iter().all(|(k, v)| before.get(k) == Some(v)));

    // Another filesystem: a clear error before anything moves.
    let shm = Path::new("/dev/shm");
    let other = tempfile::tempdir_in(shm).ok();
    let same_dev = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(a).unwrap().dev() == fs::metadata(b).unwrap().dev()
    };
    match other {
        Some(o) if !same_dev(o.path(), &s.v2()) => {
            let before = snapshot(&s.v2());
            let out = s.rm(
                &["--min-age", "0s", "--trash", o.path().to_str().unwrap()],
                &input,
            );
            assert_eq!(out.status.code(), Some(1));
            assert!(stderr(&out).contains("same filesystem"), "{}", stderr(&out));
            assert!(out.stdout.is_empty());
            assert_eq!(snapshot(&s.v2()), before);
        }
        _ => eprintln!("no second filesystem at /dev/shm: cross-filesystem --trash not tested"),
    }
}

#[test]
fn fail_after_hook_stops_with_status_1() {
    let s = Sample::new();
    let input = deleted_img_input(&s);
    let out = s.rm_env(&["--min-age", "0s"], &input, &[("REG_RM_FAIL_AFTER", "1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stopped after 1 deletion,"),
        "{}",
        stderr(&out)
    );
    let out = s.rm(&["--min-age", "0s"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = json_lines(&out);
    assert_eq!(
        recs.iter().filter(|r| r["action"] == "deleted").count(),
        4,
        "{recs:#?}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let s = Sample::new();
    let out = s.rm(&["--dry-run", "--trash", "/tmp/x"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = s.rm(&["--min-age", "soon"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// For a tool that changes things, a closed stdout is an unfinished run:
/// reg-rm stops before the next phase, says which, and fails; a second run
/// finishes the job.
#[test]
fn closed_stdout_stops_before_the_next_phase_and_fails() {
    let s = Sample::new();
    let input = deleted_img_input(&s);
    // The reading end closed before reg-rm writes anything.
    let out = s.rm_stdout_closed(&["--min-age", "0s"], &input);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stopped before the"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let again = s.rm(&["--min-age", "0s"], &input);
    assert!(again.status.success(), "{}", stderr(&again));
    let recs = json_lines(&again);
    assert!(
        recs.iter().all(|r| r["action"] != "kept"),
        "a second run finishes the job: {recs:#?}"
    );
}

/// A dry run changed nothing: a closed stdout (`reg-rm --dry-run … | head
/// -1`) ends it quietly with status 0, as it ends every listing, and the
/// tree is as it was.
#[test]
fn closed_stdout_ends_a_dry_run_quietly() {
    let s = Sample::new();
    let before = snapshot(&s.v2());
    let input = deleted_img_input(&s);
    // The reading end closed before reg-rm writes anything.
    let out = s.rm_stdout_closed(&["--dry-run", "--min-age", "0s"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no summary, no error, no reminder");
    assert_eq!(snapshot(&s.v2()), before, "a dry run changes nothing");
    // Through a real `head -1`, as the README shows it.
    let script = format!(
        "printf '%s' \"$INPUT\" | {} --dry-run --min-age 0s {} | head -1",
        env!("CARGO_BIN_EXE_reg-rm"),
        s.root().display()
    );
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .env("INPUT", &input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&out).len(), 1);
    assert_eq!(json_lines(&out)[0]["action"], "would-delete");
}

/// Runs reg-rm with `--config FILE` (no ROOT) and `args`.
fn rm_with_config(config: &Path, args: &[&str], stdin: &str) -> Output {
    run_reading_all(
        Command::new(env!("CARGO_BIN_EXE_reg-rm"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR")
            .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
        stdin.as_bytes(),
    )
}

/// With `--config`, the reminder to restart the registry after deleting
/// follows its configuration: definite when `storage.cache.blobdescriptor`
/// turns the cache on (naming the file and the kind), absent when it is
/// off. Without `--config` it stays an "if" (see above).
#[test]
fn the_cache_reminder_follows_the_registry_configuration() {
    for (cache, said) in [
        ("  cache:\n    blobdescriptor: inmemory\n", true),
        ("  cache:\n    blobdescriptor: redis\n", true),
        ("", false),
        ("  cache:\n    blobdescriptor: \"\"\n", false),
    ] {
        let s = Sample::new();
        let config = s.dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n{cache}  filesystem:\n    rootdirectory: {}\n",
                s.root().display()
            ),
        )
        .unwrap();
        let out = rm_with_config(&config, &["--min-age", "0s"], &deleted_img_input(&s));
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(json_lines(&out).iter().any(|r| r["action"] == "deleted"));
        assert!(!err.contains("if the registry runs with"), "{cache}: {err}");
        if said {
            let kind = if cache.contains("redis") {
                "redis"
            } else {
                "inmemory"
            };
            let want = format!(
                "reg-rm: the registry runs with a blob descriptor cache (storage.cache.blobdescriptor \
                 in {}: {kind}): restart it now",
                config.display()
            );
            assert!(err.contains(&want), "{cache}: {err}");
        } else {
            assert!(!err.contains("blob descriptor cache"), "{cache}: {err}");
        }
    }
}
