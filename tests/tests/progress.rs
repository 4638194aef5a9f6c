//! The live progress line, as an operator sees it: each tool runs in a
//! pseudo-terminal on a tree written by `gen_tree` (reg-core's example), and
//! what it draws on stderr is read back frame by frame. Every phase that
//! knows its total must show it from its first frame (`12/256 prefix
//! directories`), with the tree's own numbers where the test knows them,
//! never more done than the total; reg-rm's line must name each phase it
//! goes through, in order (`deleting blobs`, not the mark's `parsing
//! manifests` for the rest of the run).
//!
//! The pseudo-terminal is util-linux's `script` (`script -qefc CMD
//! /dev/null`): it is in `bsdutils`, an Essential package, so every Debian
//! machine and CI image has it, and it needs no crate and no build of its
//! own (a PTY crate such as `portable-pty` or `expectrl` would add a
//! dependency tree for what one command does). `stty cols 200` inside gives
//! the line room. `REG_TEST_PROGRESS_HOLD` holds every phase a moment once
//! named, so that phases of a small tree, which take milliseconds, are each
//! drawn at least once.

use std::path::Path;
use std::process::Command;

use reg_tests::tools::{programs_available, tool_path};
use regex::Regex;

/// How long each phase is held once named.
const HOLD: &str = "300ms";

/// Writes a tree with reg-core's `gen_tree` example (built by this crate
/// as `gen-tree`) and returns its stamp's counts.
fn gen_tree(dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_gen-tree"))
        .arg(dir)
        .args(["--blobs", "1500", "--seed", "3", "-j", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "gen_tree: {out:?}");
    let stamp = std::fs::read_to_string(dir.join("gen-tree.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&stamp).unwrap()["stats"].clone()
}

/// One frame of a live line.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    phase: String,
    /// Done, total and unit, when the frame shows a total.
    counted: Option<(u64, u64, String)>,
}

/// Runs `cmd` (bash) in a pseudo-terminal; returns its status and the
/// frames `tool` drew, in order, each once.
fn in_pty(tool: &str, cmd: &str) -> (Option<i32>, Vec<Frame>, String) {
    let out = Command::new("script")
        .args(["-qefc", &format!("stty cols 200 rows 50; {cmd}"), "/dev/null"])
        .env("TERM", "xterm")
        .env("REG_TEST_PROGRESS_HOLD", HOLD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let ansi = Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    let text = ansi.replace_all(&raw, "");
    let bounded = Regex::new(r"^(.+?) ([\d,]+)/([\d,]+) ([a-z_ ]+) \(\d+%\)").unwrap();
    let spinner = Regex::new(r"^(.+?) [\u{2800}-\u{28ff}]").unwrap();
    let num = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.split(['\r', '\n']) {
        let Some(rest) = line.trim().strip_prefix(&format!("{tool}: ")) else {
            continue;
        };
        let frame = if let Some(c) = bounded.captures(rest) {
            Frame {
                phase: c[1].to_string(),
                counted: Some((num(&c[2]), num(&c[3]), c[4].to_string())),
            }
        } else if let Some(c) = spinner.captures(rest) {
            Frame {
                phase: c[1].trim_end().to_string(),
                counted: None,
            }
        } else {
            // The summary, messages.
            continue;
        };
        if frames.last() != Some(&frame) {
            frames.push(frame);
        }
    }
    (out.status.code(), frames, text.into_owned())
}

/// Per phase, in the order first drawn: whether any frame lacked a total,
/// the totals shown, the unit.
fn phases(frames: &[Frame]) -> Vec<(String, bool, Vec<u64>, String)> {
    let mut out: Vec<(String, bool, Vec<u64>, String)> = Vec::new();
    for f in frames {
        let i = match out.iter().position(|p| p.0 == f.phase) {
            Some(i) => i,
            None => {
                out.push((f.phase.clone(), false, Vec::new(), String::new()));
                out.len() - 1
            }
        };
        match &f.counted {
            Some((done, total, unit)) => {
                assert!(done <= total, "{f:?}: more done than the total");
                out[i].2.push(*total);
                out[i].3 = unit.clone();
            }
            None => out[i].1 = true,
        }
    }
    out
}

/// Checks that `phase` was drawn, always with a total, counting `unit`;
/// and, when `total` is given, that this was its total (at the end).
#[track_caller]
fn shows_total(
    all: &[(String, bool, Vec<u64>, String)],
    phase: &str,
    unit: &str,
    total: Option<u64>,
    screen: &str,
) {
    let Some((_, untotalled, totals, u)) = all.iter().find(|p| p.0 == phase) else {
        panic!("phase {phase:?} never drawn; drew {all:#?}\n--- screen:\n{screen}");
    };
    assert!(!untotalled, "{phase}: a frame without its total: {all:#?}");
    assert_eq!(u, unit, "{phase}");
    if let Some(n) = total {
        assert_eq!(totals.last(), Some(&n), "{phase}: {totals:?}");
    }
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn every_phase_shows_its_total_and_reg_rm_names_each_phase() {
    if !programs_available("progress line test", &["script", "stty"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let stats = gen_tree(&root);
    let repos = stats["repos"].as_u64().unwrap();
    let prefixes = std::fs::read_dir(root.join("docker/registry/v2/blobs/sha256"))
        .unwrap()
        .count() as u64;
    let tool = |name: &str| q(&tool_path(name));
    let (refs, orphans) = (dir.path().join("refs.jsonl"), dir.path().join("orphans.jsonl"));

    // reg-refs, --tagged-only: manifests read in part and in full.
    let (code, frames, screen) = in_pty(
        "reg-refs",
        &format!("{} --tagged-only {} > {}", tool("reg-refs"), q(&root), q(&refs)),
    );
    assert_eq!(code, Some(0), "{screen}");
    let all = phases(&frames);
    shows_total(
        &all,
        "reading tags and revisions",
        "repositories",
        Some(repos),
        &screen,
    );
    shows_total(&all, "parsing manifests", "manifests", None, &screen);
    let read = all.iter().find(|p| p.0 == "parsing manifests").unwrap();
    assert!(read.2.iter().all(|&n| n > 0), "{all:#?}");

    // reg-orphans.
    let (code, frames, screen) = in_pty(
        "reg-orphans",
        &format!(
            "{} {} < {} > {}",
            tool("reg-orphans"),
            q(&root),
            q(&refs),
            q(&orphans)
        ),
    );
    assert_eq!(code, Some(0), "{screen}");
    let all = phases(&frames);
    shows_total(
        &all,
        "looking at blobs",
        "prefix directories",
        Some(prefixes),
        &screen,
    );
    shows_total(
        &all,
        "looking at repositories",
        "repositories",
        Some(repos),
        &screen,
    );

    // reg-rm, a real run: every phase named, in order, with its records.
    let input = std::fs::read_to_string(&orphans).unwrap();
    let of = |kind: &str| {
        input
            .lines()
            .filter(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
            .count() as u64
    };
    assert!(of("blob") > 0 && of("revision") > 0, "{input}");
    let (code, frames, screen) = in_pty(
        "reg-rm",
        &format!("{} {} < {} > /dev/null", tool("reg-rm"), q(&root), q(&orphans)),
    );
    assert_eq!(code, Some(0), "{screen}");
    let all = phases(&frames);
    shows_total(
        &all,
        "checking what is live: reading tags and revisions",
        "repositories",
        Some(repos),
        &screen,
    );
    shows_total(
        &all,
        "checking what is live: parsing manifests",
        "manifests",
        None,
        &screen,
    );
    shows_total(
        &all,
        "deleting revisions",
        "records",
        Some(of("revision")),
        &screen,
    );
    shows_total(&all, "deleting _layers links", "records", None, &screen);
    shows_total(&all, "deleting blobs", "records", None, &screen);
    shows_total(
        &all,
        "deleting repositories",
        "records",
        Some(of("repo")),
        &screen,
    );
    shows_total(
        &all,
        "removing empty blob prefix directories",
        "directories",
        None,
        &screen,
    );
    let blobs = all.iter().find(|p| p.0 == "deleting blobs").unwrap();
    assert!(
        blobs.2.last().is_some_and(|&n| n > 0 && n <= of("blob")),
        "{all:#?}"
    );
    let order: Vec<&str> = all.iter().map(|p| p.0.as_str()).collect();
    let at = |phase: &str| order.iter().position(|p| *p == phase).unwrap();
    for pair in [
        "checking what is live: parsing manifests",
        "deleting revisions",
        "looking again: reading tags and revisions",
        "deleting _layers links",
        "deleting blobs",
        "removing empty blob prefix directories",
    ]
    .windows(2)
    {
        assert!(at(pair[0]) < at(pair[1]), "{pair:?} out of order: {order:#?}");
    }

    // reg-ls --verify.
    let (code, frames, screen) = in_pty(
        "reg-ls",
        &format!("{} --verify {} > /dev/null", tool("reg-ls"), q(&root)),
    );
    assert_eq!(code, Some(0), "{screen}");
    let all = phases(&frames);
    shows_total(&all, "reading repositories", "repositories", Some(repos), &screen);
    shows_total(&all, "re-hashing blobs", "prefix directories", None, &screen);

    // Without a terminal, nothing is drawn.
    let out = Command::new(tool_path("reg-ls"))
        .arg(&root)
        .env("REG_TEST_PROGRESS_HOLD", HOLD)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
