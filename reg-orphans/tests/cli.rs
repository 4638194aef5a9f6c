//! Tests of the reg-orphans binary on the recorded sample tree
//! (`examples/registry`, read only). The end-to-end tests against a running
//! registry live in `tests/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reg_core::layout::Store;

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::*;

#[path = "../../tests/support/faulty_tree.rs"]
mod faulty_tree;
use faulty_tree::*;

fn store() -> Store {
    Store::fs(sample().join("docker/registry/v2"))
}

/// A reg-refs trailer for input of bare digest lines only (no tag,
/// revision or edge records) on the sample root.
const END: &str = concat!(
    r#"{"kind":"end","tool":"reg-refs","repos":5,"tags":0,"manifests":0,"references":0,"missing":0,"complete":true,"revisions":0,"root":""#,
    env!("CARGO_MANIFEST_DIR"),
    r#"/../examples/registry/docker/registry/v2"}"#
);

/// Runs reg-orphans on the sample with `args` and `stdin`.
fn orphans(args: &[&str], stdin: &[u8]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_reg-orphans")), args, stdin)
}

fn run(exe: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_fed(Command::new(exe).arg(sample()).args(args), stdin)
}

/// reg-refs, built next to reg-orphans; `None` (said on stderr) when it is
/// not: the tests that need it are skipped.
fn reg_refs_exe() -> Option<PathBuf> {
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-orphans")).with_file_name("reg-refs");
    if !exe.is_file() {
        eprintln!("skipping: {} not built (cargo build --workspace)", exe.display());
        return None;
    }
    Some(exe)
}

#[track_caller]
fn records(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(out));
    let recs = json_lines(out);
    let end = recs.last().expect("a trailer");
    assert_eq!(
        (&end["kind"], &end["tool"]),
        (&"end".into(), &"reg-orphans".into())
    );
    recs
}

fn of_kind(recs: &[serde_json::Value], kind: &str) -> BTreeSet<String> {
    recs.iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            r.get("digest")
                .or(r.get("id"))
                .or(r.get("repo"))
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Every stored blob of the sample, as bare digest lines.
fn all_blobs() -> Vec<String> {
    let blobs = store().blobs();
    assert!(blobs.errors.is_empty(), "{:?}", blobs.errors);
    blobs.items.iter().map(|b| b.digest.to_string()).collect()
}

#[track_caller]
fn refused(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(
        out.stdout.is_empty(),
        "printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.starts_with("reg-orphans: "), "{err}");
    assert!(err.contains(want), "wanted {want:?} in:\n{err}");
}

#[test]
fn every_blob_named_leaves_only_the_empty_repository_and_the_upload() {
    let blobs = all_blobs();
    assert_eq!(blobs.len(), 41);
    let input = format!("{}\n{END}\n", blobs.join("\n"));
    let recs = records(&orphans(
        &["--min-age", "0s", "--upload-age", "0s"],
        input.as_bytes(),
    ));
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(
        of_kind(&recs, "repo"),
        BTreeSet::from(["deleted/img".to_string()])
    );
    let uploads = store().uploads("org/team/app").items;
    assert_eq!(of_kind(&recs, "upload"), BTreeSet::from([uploads[0].id.clone()]));
    let end = recs.last().unwrap();
    assert_eq!(end["stored_blobs"], 41);
    assert_eq!(end["too_young"], 0);

    // One digest left out: that blob, with its size.
    let input = format!("{}\n{END}\n", blobs[1..].join("\n"));
    let recs = records(&orphans(&["--min-age", "0s", "-q"], input.as_bytes()));
    assert_eq!(of_kind(&recs, "blob"), BTreeSet::from([blobs[0].clone()]));
    let size = store()
        .blob_meta(&blobs[0].parse().unwrap())
        .unwrap()
        .unwrap()
        .size;
    assert_eq!(recs[0]["size"], size);
    assert_eq!(recs.last().unwrap()["blob_bytes"], size);
}

#[test]
fn with_reg_refs_output_no_referenced_blob_is_an_orphan() {
    let Some(refs_exe) = reg_refs_exe() else {
        return;
    };
    for mode in [&[][..], &["--tagged-only"][..]] {
        let refs = run(&refs_exe, mode, b"");
        assert!(refs.status.success(), "{}", String::from_utf8_lossy(&refs.stderr));
        let named: BTreeSet<String> = String::from_utf8(refs.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .flat_map(|r| {
                [r.get("digest"), r.get("manifest")]
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect::<Vec<_>>()
            })
            .collect();
        let recs = records(&orphans(&["--min-age", "0s"], &refs.stdout));
        let orphans = of_kind(&recs, "blob");
        // Orphans and referenced blobs split the store exactly.
        assert!(orphans.is_disjoint(&named), "{mode:?}");
        let stored: BTreeSet<String> = all_blobs().into_iter().collect();
        let live: BTreeSet<String> = stored.intersection(&named).cloned().collect();
        assert_eq!(orphans.len() + live.len(), stored.len(), "{mode:?}");
        assert!(of_kind(&recs, "repo").contains("deleted/img"));
        if mode.is_empty() {
            assert!(of_kind(&recs, "revision").is_empty());
        } else {
            assert!(!of_kind(&recs, "revision").is_empty());
        }
    }
}

#[test]
fn cut_input_is_refused_with_nothing_on_stdout() {
    let blobs = all_blobs();
    // `reg-refs | head`: the trailer never arrives.
    let input = blobs[..20].join("\n") + "\n";
    refused(
        &orphans(&["--min-age", "0s"], input.as_bytes()),
        "stdin line 20: input ends without the reg-refs trailer",
    );
    // Cut in the middle of the last line.
    let input = format!("{}\n{}", blobs.join("\n"), &END[..40]);
    refused(
        &orphans(&["--min-age", "0s"], input.as_bytes()),
        "stdin line 42: ",
    );
    refused(&orphans(&[], b""), "no input");
    // A list made for one repository cannot prove anything unreferenced.
    let partial = END.replace("\"complete\":true", "\"complete\":false");
    refused(&orphans(&[], format!("{partial}\n").as_bytes()), "--repo");
}

#[test]
fn a_bad_line_is_refused_naming_it() {
    let blobs = all_blobs();
    let input = format!("{}\n{}\nnot a digest\n{END}\n", blobs[0], blobs[1]);
    refused(
        &orphans(&["--min-age", "0s"], input.as_bytes()),
        "stdin line 3: neither a JSON record nor a digest",
    );
    let input = format!("{}\n{{\"kind\":\"error\",\"message\":\"x\"}}\n{END}\n", blobs[0]);
    refused(&orphans(&[], input.as_bytes()), "stdin line 2: an error record");
}

#[test]
fn tsv_prints_the_same_records() {
    let input = format!("{}\n{END}\n", all_blobs()[1..].join("\n"));
    let out = orphans(&["--min-age", "0s", "--tsv", "-q"], input.as_bytes());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], "blob");
    assert_eq!(first[1], all_blobs()[0]);
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("end\ttool=reg-orphans\tblobs="));
}

#[test]
fn bad_usage_exits_2() {
    let out = orphans(&["--min-age", "soon"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

// ---- an operator's mistakes: FIFOs and symbolic links in the tree ----------

/// Runs `exe` with `args`, `input` on stdin, and kills it after 10 s: a tool
/// that blocks fails the test instead of hanging it.
#[test]
fn a_fifo_in_the_tree_ends_the_run_promptly() {
    let Some(refs_exe) = reg_refs_exe() else {
        return;
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-orphans"));
    // A valid reg-refs output for the tree (the copies differ only by a FIFO).
    let refs = bounded(&refs_exe, &[sample().as_os_str()], b"");
    assert!(refs.status.success(), "{}", String::from_utf8_lossy(&refs.stderr));
    let args = |v2: &PathBuf| -> Vec<std::ffi::OsString> {
        vec![v2.clone().into(), "--min-age".into(), "0s".into()]
    };
    let sample_root = store().root_id();
    for case in FIFOS {
        let (_tmp, v2, rel) = fifo_copy(case);
        let a = args(&v2);
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        // The same list, said of the copy's root (reg-orphans checks it).
        let input = String::from_utf8_lossy(&refs.stdout)
            .replace(&sample_root, &v2.canonicalize().unwrap().display().to_string());
        let out = bounded(exe, &a, input.as_bytes());
        match case {
            // A referenced blob is kept without being looked at: no open, no
            // error, and of course no orphan record for it.
            Fifo::ManifestData => {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let hex = rel.split('/').nth(3).unwrap();
                assert!(!String::from_utf8_lossy(&out.stdout).contains(hex));
            }
            // A `_layers` link of a stored, referenced blob: its name says
            // all reg-orphans needs, so it is never looked at (reg-ls reports
            // it). It finishes promptly, with nothing to say about it.
            Fifo::LayerLink => {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            _ => fails_naming(&out, &rel, &format!("{case:?}")),
        }
    }
    // An unreferenced blob whose data is a FIFO: kept, with an error naming it.
    let orphans = bounded(
        exe,
        &[sample().as_os_str(), "--min-age".as_ref(), "0s".as_ref()],
        &refs.stdout,
    );
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&orphans.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "blob");
    let hex = first["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let (_tmp, v2) = sample_copy();
    let rel = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
    std::fs::remove_file(v2.join(&rel)).unwrap();
    assert!(Command::new("mkfifo")
        .arg(v2.join(&rel))
        .status()
        .unwrap()
        .success());
    let a = args(&v2);
    let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let input = String::from_utf8_lossy(&refs.stdout)
        .replace(&sample_root, &v2.canonicalize().unwrap().display().to_string());
    let out = bounded(exe, &a, input.as_bytes());
    fails_naming(&out, &rel, "unreferenced blob data");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&hex),
        "a blob that cannot be read was reported"
    );
}

/// A first GC on a registry written within the grace period finds nothing,
/// and says why: the summary names the threshold, and a note explains.
#[test]
fn nothing_old_enough_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    for (cmd, args) in [
        ("cp", vec!["-a".as_ref(), sample().as_os_str(), root.as_os_str()]),
        (
            "find",
            vec![
                root.as_os_str(),
                "-exec".as_ref(),
                "touch".as_ref(),
                "-h".as_ref(),
                "{}".as_ref(),
                "+".as_ref(),
            ],
        ),
    ] {
        assert!(Command::new(cmd).args(args).status().unwrap().success());
    }
    // Its upload says when it started, long ago: not what this test is about.
    std::fs::remove_dir_all(root.join("docker/registry/v2/repositories/org/team/app/_uploads")).unwrap();
    // Every blob but two named (kept); the rest is young.
    let v2 = root.join("docker/registry/v2").canonicalize().unwrap();
    let mut input = all_blobs()[2..].join("\n");
    input.push('\n');
    input.push_str(&END.replace(
        &format!(
            "{}/../examples/registry/docker/registry/v2",
            env!("CARGO_MANIFEST_DIR")
        ),
        &v2.display().to_string(),
    ));
    input.push('\n');
    let orphans_on = |flag: &str| {
        run_reading_all(
            Command::new(env!("CARGO_BIN_EXE_reg-orphans"))
                .arg(&root)
                .arg(flag),
            input.as_bytes(),
        )
    };
    let out = orphans_on("--stats");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the trailer alone"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].contains(" younger than --min-age 1h, not reported;"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("reg-orphans: nothing reported: the ")
            && lines[1].contains(
                " unreferenced items found are all younger than --min-age 1h, the grace period for \
                 pushes in progress (a registry written to within the last 1h, such as a new one, \
                 has nothing old enough yet); run again later"
            ),
        "{err}"
    );
    // -q: neither.
    let out = orphans_on("-q");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
