//! Smoke tests of the reg-refs binary on small trees and on the recorded
//! sample (the end-to-end tests against a real registry live in `tests/`).

use std::path::Path;
use std::process::{Command, Output};

use reg_core::layout::paths;
use reg_core::record::{RefRecord, RefsEnd};
use reg_core::Digest;

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::*;

#[path = "../../tests/support/faulty_tree.rs"]
mod faulty_tree;
use faulty_tree::*;

fn reg_refs<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reg-refs"))
        .args(args)
        .output()
        .unwrap()
}

/// Parses stdout as reference records; checks the trailer is last and only
/// last, and returns the body and the trailer.
#[track_caller]
fn records(o: &Output) -> (Vec<RefRecord>, RefsEnd) {
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let mut recs: Vec<RefRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let Some(RefRecord::End(end)) = recs.pop() else {
        panic!("the last line is not the trailer:\n{text}");
    };
    assert!(recs.iter().all(|r| !matches!(r, RefRecord::End(_))));
    (recs, end)
}

#[test]
fn sample_tree_is_json_lines_with_the_trailer_last() {
    let o = reg_refs(&[sample()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (recs, end) = records(&o);
    assert_eq!(end.tool, "reg-refs");
    assert!(end.complete);
    assert_eq!((end.repos, end.tags, end.revisions, end.missing), (5, 7, 13, 0));
    let tags = recs.iter().filter(|r| matches!(r, RefRecord::Tag { .. })).count() as u64;
    let revs = recs
        .iter()
        .filter(|r| matches!(r, RefRecord::Revision { .. }))
        .count() as u64;
    assert_eq!((tags, revs), (end.tags, end.revisions));
    assert_eq!(recs.len() as u64, end.tags + end.revisions + end.references);
    // stderr is not a terminal here: no progress line and no summary.
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    // --stats asks for the summary anyway.
    let o = reg_refs(&[sample().as_os_str(), "--stats".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("reg-refs: 5 repos, 7 tags, 13 revisions"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // -q wins over --stats.
    let o = reg_refs(&[sample().as_os_str(), "--stats".as_ref(), "-q".as_ref()]);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    // --tagged-only keeps the referrers of v1 (and of its referrer).
    let o = reg_refs(&[sample().as_os_str(), "--tagged-only".as_ref(), "-q".as_ref()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty());
    let (recs, end) = records(&o);
    assert_eq!(end.revisions, 0);
    let referrers = recs
        .iter()
        .filter(|r| matches!(r, RefRecord::Referrer { .. }))
        .count();
    assert_eq!(referrers, 2);
}

#[test]
fn repo_filter_and_tsv() {
    let o = reg_refs(&[
        sample().as_os_str(),
        "--repo".as_ref(),
        "a/b".as_ref(),
        "--tsv".as_ref(),
        "-q".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{text}");
    assert!(lines[0].starts_with("tag\ta/b\t1\tsha256:"), "{text}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("end\ttool=reg-refs\trepos=1\t"), "{last}");
    assert!(
        last.contains("\tcomplete=false\t"),
        "complete must be false with --repo: {last}"
    );
}

#[test]
fn nonexistent_root_fails_naming_the_path() {
    let o = reg_refs(&["/nonexistent"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("reg-refs: error: /nonexistent"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["--keep-recent", "1h", "x"][..],
        &["--tagged-only", "--keep-recent", "soon", "x"],
        &["--nope", "x"],
    ] {
        let o = reg_refs(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn corrupt_manifest_fails_with_nothing_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&sample(), tmp.path());
    // Flip the manifest a tag points at: same length, different bytes.
    let link = v2(tmp.path()).join(paths::tag_current("org/team/app", "v1"));
    let d = Digest::parse(&std::fs::read_to_string(link).unwrap()).unwrap();
    let data = v2(tmp.path()).join(paths::blob_data(&d));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] = b' ';
    std::fs::write(&data, &bytes).unwrap();
    for flags in [&[][..], &["--tagged-only"]] {
        let o = reg_refs(
            &[
                &[tmp.path().as_os_str()][..],
                &flags.iter().map(|f| f.as_ref()).collect::<Vec<_>>(),
            ]
            .concat(),
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
        let err = stderr(&o);
        for part in [
            "org/team/app",
            &d.to_string(),
            &data.display().to_string(),
            "does not hash",
        ] {
            assert!(err.contains(part), "{part:?} not in {err}");
        }
    }
}

#[test]
fn garbled_tag_link_fails_and_missing_data_warns() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&sample(), tmp.path());
    let root = tmp.path();
    let gone = Digest::sha256_of(b"deleted manifest");
    put(
        &v2(root).join(paths::tag_current("a/b", "gone")),
        gone.to_string().as_bytes(),
    );
    let o = reg_refs(&[root]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, end) = records(&o);
    assert_eq!(end.missing, 1);
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains(&gone.to_string()),
        "{err}"
    );

    put(&v2(root).join(paths::tag_current("a/b", "empty")), b"");
    let o = reg_refs(&[root]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("tags/empty/current/link: bad link file: empty"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    // Enough tags that the output outgrows a pipe's buffer.
    let tmp = tempfile::tempdir().unwrap();
    let v2 = v2(tmp.path());
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let d = Digest::sha256_of(manifest);
    put(&v2.join(paths::blob_data(&d)), manifest);
    for i in 0..3000 {
        put(
            &v2.join(paths::tag_current("many", &format!("t{i}"))),
            d.to_string().as_bytes(),
        );
    }
    // --stats: a run cut short prints no summary as if it had finished.
    let first = first_line_then_close(
        Path::new(env!("CARGO_BIN_EXE_reg-refs")),
        &[tmp.path().as_os_str(), "--stats".as_ref()],
    );
    assert!(first.starts_with(r#"{"kind":"tag","repo":"many""#), "{first}");
}

// ---- an operator's mistakes: FIFOs and symbolic links in the tree ----------

/// Runs `exe` with `args`, `input` on stdin, and kills it after 10 s: a tool
/// that blocks fails the test instead of hanging it.
#[test]
fn a_fifo_in_the_tree_ends_the_run_promptly() {
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-refs"));
    for case in FIFOS {
        let (_tmp, v2, rel) = fifo_copy(case);
        let out = bounded(exe, &[v2.as_os_str()], b"");
        match case {
            // What reg-refs reads: it fails closed, naming the path.
            Fifo::TagLink | Fifo::ManifestData => {
                fails_naming(&out, &rel, &format!("{case:?}"));
                assert!(
                    out.stdout.is_empty(),
                    "{case:?}: output without a trailer expected"
                );
            }
            // Uploads and _layers links are no roots: never opened.
            Fifo::StartedAt | Fifo::LayerLink => {
                assert_eq!(out.status.code(), Some(0), "{case:?}: {}", stderr(&out));
            }
        }
    }
}

#[test]
fn a_symbolic_link_in_the_tree_fails_the_run_naming_it() {
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-refs"));
    for case in LINKS {
        let (_tmp, v2, rel) = link_copy(case);
        let out = bounded(exe, &[v2.as_os_str()], b"");
        fails_naming_link(&out, &rel, &format!("{case:?}"));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(r#""kind":"end""#),
            "{case:?}"
        );
    }
}
