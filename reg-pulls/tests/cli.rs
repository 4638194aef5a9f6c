//! The reg-pulls binary on the fixtures the real registry wrote
//! (`reg-core/testdata/pulls/`): files, stdin, gzip, refusals, a closed
//! stdout. The end-to-end test with a running registry is in `tests/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::{json_lines, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reg-core/testdata/pulls")
        .join(name)
}

/// Runs reg-pulls with `args` and `stdin` (which it must read whole), or
/// none.
fn reg_pulls(args: &[&std::ffi::OsStr], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reg-pulls"));
    cmd.args(args);
    match stdin {
        Some(data) => kit::run_reading_all(&mut cmd, data),
        // Its stdin /dev/null.
        None => cmd.output().unwrap(),
    }
}

#[test]
fn every_format_from_files_and_stdin_and_gzip() {
    let access = fixture("access.log");
    let o = reg_pulls(&[access.as_os_str()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "no summary in a pipeline: {}", stderr(&o));
    let recs = json_lines(&o);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[0]["tag"], "1.0.0");
    assert_eq!(recs[0]["last_pull"], "2026-12-02T05:06:53Z");
    assert_eq!(recs[3]["kind"], "end");
    assert_eq!(recs[3]["records"], 3);

    // The same from stdin, and from a gzip-compressed copy.
    let text = std::fs::read(&access).unwrap();
    let from_stdin = reg_pulls(&[], Some(&text));
    assert_eq!(from_stdin.stdout, o.stdout, "{}", stderr(&from_stdin));
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("access.log.1.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&text).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let zipped = reg_pulls(&[gz.as_os_str(), "--stats".as_ref()], None);
    assert_eq!(zipped.stdout, o.stdout);
    assert!(
        stderr(&zipped).starts_with("reg-pulls: read 1 log, 46 lines from 2026-12-02T05:06:24Z"),
        "{}",
        stderr(&zipped)
    );

    // All four fixtures at once: the application logs and the events too.
    let all: Vec<PathBuf> = [
        "access.log",
        "registry-text.log",
        "registry-json.log",
        "notifications.json",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    let args: Vec<&std::ffi::OsStr> = all.iter().map(|p| p.as_os_str()).collect();
    let o = reg_pulls(&args, None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recs = json_lines(&o);
    let pulls = |r: &&serde_json::Value| r["kind"] == "pull";
    assert_eq!(
        recs.iter()
            .filter(pulls)
            .map(|r| r["pulls"].as_u64().unwrap())
            .sum::<u64>(),
        3 * 7 + 9
    );
    assert_eq!(recs.last().unwrap()["pulls"], 30);

    let tsv = reg_pulls(&[access.as_os_str(), "--tsv".as_ref()], None);
    let first = String::from_utf8_lossy(&tsv.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(first, "pull\tteam/app\t1.0.0\t\t2026-12-02T05:06:53Z\t2");
}

#[test]
fn a_file_in_no_known_format_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "hello\nworld\n").unwrap();
    let o = reg_pulls(&[fixture("access.log").as_os_str(), f.as_os_str()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no partial list, no trailer");
    assert!(
        stderr(&o).starts_with(&format!("reg-pulls: error: {}: none of its 2 lines", f.display())),
        "{}",
        stderr(&o)
    );
    let missing = dir.path().join("nope.log");
    let o = reg_pulls(&[missing.as_os_str()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.log"), "{}", stderr(&o));
    // A registry log at level warn has no request lines: a warning.
    let warn_only = dir.path().join("warn.log");
    std::fs::write(
        &warn_only,
        "time=\"2026-12-02T05:06:22Z\" level=warning msg=\"No HTTP secret provided\" go.version=go1.19.8\n",
    )
    .unwrap();
    let o = reg_pulls(&[warn_only.as_os_str()], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("warning: ") && stderr(&o).contains("log.level info"),
        "{}",
        stderr(&o)
    );
    assert_eq!(json_lines(&o)[0]["records"], 0);
}

#[test]
fn bad_usage_exits_2() {
    let o = reg_pulls(&["--nope".as_ref()], None);
    assert_eq!(o.status.code(), Some(2));
    let o = reg_pulls(&["-".as_ref(), "-".as_ref()], Some(b""));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn closed_stdout_ends_quietly() {
    // Enough distinct tags that the output outgrows a pipe's buffer.
    let mut log = String::new();
    for i in 0..5000 {
        log.push_str(&format!(
            "1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] \"GET /v2/team/app/manifests/t{i} HTTP/1.1\" 200 1 \"\" \"x\"\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.log");
    std::fs::write(&f, log).unwrap();
    let first = kit::first_line_then_close(
        Path::new(env!("CARGO_BIN_EXE_reg-pulls")),
        &[f.as_os_str(), "--stats".as_ref()],
    );
    assert!(first.starts_with(r#"{"kind":"pull""#), "{first}");
}
