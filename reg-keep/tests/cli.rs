//! The reg-keep binary: its output is reg-ls's own lines, refusals happen
//! before stdin is read, exit statuses, a closed stdout. The rules are
//! unit-tested in reg-core; the pipeline against a real registry is in
//! `tests/`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reg_core::time::Time;

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::*;

const NOW: &str = "2026-12-01T12:00:00Z";

/// A reg-ls tag record, as reg-ls prints it, pushed `days` before NOW.
fn tag(repo: &str, tag: &str, days: u64, img: u32) -> String {
    let t = Time(Time::parse(NOW).unwrap().0 - Duration::from_secs(days * 86_400));
    format!(r#"{{"kind":"tag","repo":"{repo}","tag":"{tag}","digest":"sha256:{img:064x}","mtime":"{t}"}}"#)
}

fn reg_keep(args: &[&str], stdin: &str) -> Output {
    run_fed(
        Command::new(env!("CARGO_BIN_EXE_reg-keep"))
            .args(["--now", NOW])
            .args(args),
        stdin.as_bytes(),
    )
}

fn listing() -> Vec<String> {
    vec![
        tag("team/app", "1.0", 40, 1),
        tag("team/app", "1.1", 20, 2),
        tag("team/app", "1.2", 10, 3),
        tag("team/app", "latest", 10, 3),
        tag("other/app", "x", 50, 4),
    ]
}

#[test]
fn prints_the_dropped_records_exactly_as_read() {
    let input = listing().join("\n") + "\n";
    let o = reg_keep(&["--repo", "team/*", "--keep-newest", "3"], &input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{}\n", listing()[0]));
    assert!(o.stderr.is_empty(), "quiet in a pipeline: {}", stderr(&o));
    // 1.2 and latest tie on push time; 1.2 is a version, so newer. The
    // summary counts latest as losing only its name (1.2 keeps its image).
    let o = reg_keep(&["--keep-newest", "1", "--repo", "team/*", "--stats"], &input);
    let l = listing();
    assert_eq!(stdout(&o), format!("{}\n{}\n{}\n", l[0], l[1], l[3]));
    assert_eq!(
        stderr(&o),
        "reg-keep: 2 repositories, 5 tags: 2 kept, 3 dropped (1 of them only a name: a kept tag keeps their image)\n"
    );
}

#[test]
fn explain_prints_every_tag_for_jq_and_tsv() {
    let input = listing().join("\n");
    let o = reg_keep(
        &["--repo", "team/*", "--pushed-within", "15d", "--explain"],
        &input,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dropped", "dropped", "kept", "kept", "kept"]);
    assert_eq!(recs[0]["rule"], "no-keep-rule");
    assert_eq!(
        recs[0]["reason"],
        "no keep rule holds: pushed 40d ago (not within 15d)"
    );
    assert_eq!(recs[2]["rule"], "pushed-within");
    assert_eq!(recs[4]["rule"], "no-policy");
    assert_eq!(recs[4]["policy"], serde_json::Value::Null);
    assert_eq!(recs[0]["policy"], 1);
    let keys: Vec<&String> = recs[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "kind",
            "repo",
            "tag",
            "digest",
            "mtime",
            "rule",
            "policy",
            "last_pull",
            "image_kept_by",
            "reason"
        ]
    );
    let tsv = reg_keep(
        &["--repo", "team/*", "--pushed-within", "15d", "--explain", "--tsv"],
        &input,
    );
    for l in stdout(&tsv).lines() {
        assert_eq!(l.split('\t').count(), 10, "{l}");
    }
}

#[test]
fn a_policy_that_empties_a_repository_needs_allow_empty() {
    let input = listing().join("\n");
    let o = reg_keep(&["--pushed-within", "1d"], &input);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("reg-keep: error: team/app: the policy drops every tag of this repository (4)"),
        "{e}"
    );
    assert!(e.contains("reg-keep: error: other/app:"), "{e}");
    let o = reg_keep(&["--pushed-within", "1d", "--allow-empty"], &input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 5);
    assert!(stderr(&o).contains("warning: team/app"), "{}", stderr(&o));
    // The floor avoids it.
    let o = reg_keep(&["--pushed-within", "1d", "--keep-at-least", "1"], &input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[test]
fn input_that_is_not_tag_records_is_refused_by_line() {
    let blob = r#"{"kind":"blob","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":1,"mtime":"2026-11-01T00:00:00Z"}"#;
    let input = format!("{}\n{blob}\n", listing()[0]);
    let o = reg_keep(&["--keep-newest", "1"], &input);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).starts_with("reg-keep: error: stdin line 2: a \"blob\" record, not a tag"),
        "{}",
        stderr(&o)
    );
    // Its own --explain output is not input either.
    let explained = reg_keep(&["--keep-newest", "1", "--explain"], &listing().join("\n"));
    let o = reg_keep(&["--keep-newest", "1"], &stdout(&explained));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("stdin line 1: a \"dropped\" record from reg-keep --explain"),
        "{}",
        stderr(&o)
    );
}

/// Spawns reg-keep with a stdin that is never written nor closed: a run
/// that read it would hang. Returns its output, or panics after 10 s.
fn without_reading_stdin(args: &[&str]) -> Output {
    let mut child = spawn_piped(Command::new(env!("CARGO_BIN_EXE_reg-keep")).args(args));
    let _keep_open = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reg-keep {args:?} waited for stdin");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_policies_are_refused_by_name_before_stdin_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keep.yml");
    let f = file.to_str().unwrap();
    for (yaml, want) in [
        (
            "policies:\n  - keep-newst: 3\n",
            "policy 1: unknown key \"keep-newst\"",
        ),
        (
            "policies:\n  - name: team\n    drop:\n      - tags: '*-rc*'\n",
            "policy 1 (team): drop rule 1: tags: invalid regular expression \"*-rc*\"",
        ),
        (
            "policies:\n  - repositories: ['team/[']\n",
            "invalid repository glob",
        ),
    ] {
        std::fs::write(&file, yaml).unwrap();
        let o = without_reading_stdin(&["--policy", f]);
        assert_eq!(o.status.code(), Some(2), "{yaml}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("reg-keep: error: {f}: ")),
            "{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains(want), "{yaml}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    for (args, want) in [
        (&["--keep-tag", "*"][..], "invalid regular expression"),
        (&["--repo", "a/["], "invalid repository glob"),
        (&["--pushed-within", "soon"], "invalid duration"),
        (&["--keep-newest", "0"], "--keep-newest"),
        (
            &["--pulled-within", "30d"],
            "pulled-within needs pull records: --pulls FILE",
        ),
        (&["--policy", f, "--keep-newest", "3"], "cannot be used with"),
        (&[], "no policy"),
    ] {
        let o = without_reading_stdin(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = without_reading_stdin(&["--pulls", "-", "--keep-newest", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("both on stdin"), "{}", stderr(&o));
}

#[test]
fn pulls_from_a_file_or_stdin_and_cut_lists_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("tags.jsonl");
    std::fs::write(&tags, listing().join("\n")).unwrap();
    let pulls = format!(
        "{}\n{}\n",
        r#"{"kind":"pull","repo":"team/app","tag":"1.0","digest":null,"last_pull":"2026-11-30T00:00:00Z","pulls":1}"#,
        r#"{"kind":"end","tool":"reg-pulls","records":1,"pulls":1,"lines":9,"since":"2026-06-01T00:00:00Z","until":"2026-12-01T00:00:00Z"}"#
    );
    let p = dir.path().join("pulls.jsonl");
    std::fs::write(&p, &pulls).unwrap();
    let args = [
        "--repo",
        "team/*",
        "--pulled-within",
        "15d",
        "--keep-at-least",
        "1",
    ];
    let by_file = reg_keep(
        &[&args[..], &["--pulls", p.to_str().unwrap()]].concat(),
        &listing().join("\n"),
    );
    assert_eq!(by_file.status.code(), Some(0), "{}", stderr(&by_file));
    // 1.0 pulled yesterday, 1.2 and latest too young to judge: 1.1 goes.
    assert_eq!(stdout(&by_file), format!("{}\n", listing()[1]));
    let by_stdin = reg_keep(
        &[&args[..], &[tags.to_str().unwrap(), "--pulls", "-"]].concat(),
        &pulls,
    );
    assert_eq!(by_stdin.stdout, by_file.stdout, "{}", stderr(&by_stdin));
    // Without the trailer: refused, naming it.
    let cut = pulls.lines().next().unwrap();
    std::fs::write(&p, cut).unwrap();
    let o = reg_keep(
        &[&args[..], &["--pulls", p.to_str().unwrap()]].concat(),
        &listing().join("\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("no reg-pulls trailer"), "{}", stderr(&o));
}

#[test]
fn closed_stdout_ends_quietly() {
    let input: String = (0..5000)
        .map(|i| tag("r", &format!("t{i}"), 40, i) + "\n")
        .collect();
    let mut child = spawn_piped(Command::new(env!("CARGO_BIN_EXE_reg-keep")).args([
        "--now",
        NOW,
        "--keep-newest",
        "1",
        "--stats",
    ]));
    let mut w = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = w.write_all(input.as_bytes());
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with(r#"{"kind":"tag""#), "{first}");
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn the_tags_may_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("tags.jsonl");
    std::fs::write(&tags, listing().join("\n")).unwrap();
    let o = reg_keep(
        &[tags.to_str().unwrap(), "--keep-newest", "3", "--repo", "team/*"],
        "",
    );
    assert_eq!(stdout(&o), format!("{}\n", listing()[0]), "{}", stderr(&o));
    let bad = Path::new("/nonexistent/tags.jsonl");
    let o = reg_keep(&[bad.to_str().unwrap(), "--keep-newest", "3"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("reg-keep: error: /nonexistent/tags.jsonl: "),
        "{}",
        stderr(&o)
    );
}

/// Every policy file the README shows is one reg-keep accepts.
#[test]
fn the_readme_policy_files_are_valid() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split_once("\n### reg-keep\n").unwrap().1;
    let section = section.split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in section.lines().chain(std::iter::once("end")) {
        match line.strip_prefix("    ") {
            Some(code) => cur.push(code),
            None if line.trim().is_empty() && !cur.is_empty() => cur.push(""),
            None => {
                if cur.first().is_some_and(|l| l.starts_with("policies:")) {
                    blocks.push(cur.join("\n"));
                }
                cur.clear();
            }
        }
    }
    assert!(blocks.len() >= 2, "{blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    let pulls = dir.path().join("pulls.jsonl");
    std::fs::write(
        &pulls,
        r#"{"kind":"end","tool":"reg-pulls","records":0,"pulls":0,"lines":1,"since":"2026-01-01T00:00:00Z","until":"2026-12-01T00:00:00Z"}"#,
    )
    .unwrap();
    for (n, yaml) in blocks.iter().enumerate() {
        let f = dir.path().join(format!("policy{n}.yml"));
        std::fs::write(&f, yaml).unwrap();
        let o = reg_keep(
            &[
                "--policy",
                f.to_str().unwrap(),
                "--pulls",
                pulls.to_str().unwrap(),
                "--explain",
            ],
            &listing().join("\n"),
        );
        assert_eq!(o.status.code(), Some(0), "{yaml}\n{}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), listing().len());
    }
}
