//! Smoke tests of the reg-ls binary (the end-to-end tests live in `tests/`).

use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/kit.rs"]
mod kit;
use kit::*;

fn reg_ls() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reg-ls"))
}

/// Runs `cmd`, which must exit 0; its stdout (UTF-8).
#[track_caller]
fn listed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, which must exit with `code` and print nothing on stdout; its
/// stderr.
#[track_caller]
fn refused(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    err
}

#[test]
fn nonexistent_root_fails_naming_the_path() {
    let err = refused(reg_ls().arg("/nonexistent"), 1);
    assert!(err.starts_with("reg-ls: error: /nonexistent: "), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    refused(reg_ls().args(["--kind", "nope", "x"]), 2);
}

#[path = "../../tests/support/faulty_tree.rs"]
mod faulty_tree;
use faulty_tree::*;

/// A tree with enough blobs that the output outgrows a pipe's buffer.
fn many_blobs(dir: &std::path::Path, n: usize) {
    for i in 0..n {
        let hex = format!("{i:064x}");
        let blob = dir.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}", &hex[..2]));
        std::fs::create_dir_all(&blob).unwrap();
        std::fs::write(blob.join("data"), b"x").unwrap();
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    many_blobs(tmp.path(), 3000);
    // --stats: a run cut short prints no summary as if it had finished.
    let first = first_line_then_close(
        std::path::Path::new(env!("CARGO_BIN_EXE_reg-ls")),
        &[tmp.path().as_os_str(), "--stats".as_ref()],
    );
    assert!(first.starts_with(r#"{"kind":"blob""#), "{first}");
}

#[test]
fn sample_tree_kinds_and_tsv() {
    let out = reg_ls()
        .arg(sample())
        .args(["--kind", "tag", "--kind", "repo", "--tsv", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "repo").count(), 5, "{text}");
    assert_eq!(kinds.iter().filter(|k| **k == "tag").count(), 7, "{text}");
    for line in text.lines().filter(|l| l.starts_with("tag\t")) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "{line}");
        assert!(cols[3].starts_with("sha256:") && cols[3].len() == 71, "{line}");
        assert!(cols[4].ends_with('Z'), "{line}");
    }
}

#[test]
fn config_file_names_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yml");
    let root = sample().canonicalize().unwrap();
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ),
    )
    .unwrap();
    let text = listed(
        reg_ls()
            .args(["--kind", "repo", "--config"])
            .arg(&cfg)
            .env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
    );
    assert_eq!(text.lines().count(), 5);
}

#[test]
fn broken_tree_names_each_path_and_lists_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let v2 = tmp.path().join("docker/registry/v2");
    let put = |rel: &str, content: &str| {
        let p = v2.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    };
    let good = format!("sha256:{}", "ab".repeat(32));
    put(&format!("blobs/sha256/ab/{}/data", "ab".repeat(32)), "x");
    std::fs::create_dir_all(v2.join(format!("blobs/sha256/cd/{}", "cd".repeat(32)))).unwrap();
    put("repositories/ok/app/_manifests/tags/v1/current/link", &good);
    put("repositories/ok/app/_manifests/tags/empty/current/link", "");
    put(
        "repositories/ok/app/_manifests/tags/junk/current/link",
        "sha256:nothex",
    );
    put("repositories/Bad_Name/_layers/sha256/x/link", &good);

    let out = reg_ls().arg(tmp.path()).output().unwrap();
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains(r#""tag":"v1""#), "{stdout}");
    assert!(stdout.contains(r#""kind":"blob""#), "{stdout}");
    for path in [
        "tags/empty/current/link",
        "tags/junk/current/link",
        &format!("blobs/sha256/cd/{}", "cd".repeat(32)),
        "repositories/Bad_Name",
    ] {
        assert!(stderr.contains(path), "no message naming {path}:\n{stderr}");
    }
}

#[test]
fn unreadable_config_is_named_once() {
    let err = refused(reg_ls().args(["--config", "/nonexistent/config.yml"]), 1);
    assert!(
        err.starts_with("reg-ls: error: /nonexistent/config.yml: "),
        "{err}"
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn too_many_threads_is_bad_usage() {
    let err = refused(reg_ls().args(["-j", "100000"]).arg(sample()), 2);
    assert!(err.contains("256"), "{err}");
}

#[test]
fn mtime_before_1970_is_printed_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join(format!(
        "docker/registry/v2/blobs/sha256/ab/{}/data",
        "ab".repeat(32)
    ));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, b"x").unwrap();
    let touched = Command::new("touch")
        .args(["-d", "1901-06-01 00:00:00 UTC"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(touched.success());
    // What the filesystem kept: ext4 with 128-byte inodes stores 32-bit
    // times and clamps this to 1901-12-13T20:45:52Z; tmpfs keeps it exactly.
    let kept = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ", "-r"])
        .arg(&data)
        .output()
        .unwrap();
    let kept = String::from_utf8(kept.stdout).unwrap().trim().to_string();
    assert!(kept.starts_with("1901-"), "{kept}");
    let stdout = listed(reg_ls().arg(tmp.path()));
    assert!(stdout.contains(&format!(r#""mtime":"{kept}""#)), "{stdout}");
}

// ---- an operator's mistakes: FIFOs and symbolic links in the tree ----------

/// Runs `exe` with `args`, `input` on stdin, and kills it after 10 s: a tool
/// that blocks fails the test instead of hanging it.
#[test]
fn a_fifo_in_the_tree_ends_the_run_promptly_naming_it() {
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-ls"));
    for case in FIFOS {
        let (_tmp, v2, rel) = fifo_copy(case);
        for verify in [false, true] {
            let mut args = vec![v2.as_os_str()];
            if verify {
                args.push("--verify".as_ref());
            }
            let out = bounded(exe, &args, b"");
            fails_naming(&out, &rel, &format!("{case:?}, --verify {verify}"));
        }
    }
}

#[test]
fn a_symbolic_link_in_the_tree_is_named_and_not_followed() {
    let exe = Path::new(env!("CARGO_BIN_EXE_reg-ls"));
    for case in LINKS {
        let (_tmp, v2, rel) = link_copy(case);
        let out = bounded(exe, &[v2.as_os_str()], b"");
        fails_naming_link(&out, &rel, &format!("{case:?}"));
    }
}

/// `--tsv`: the columns of a kind never move, whatever optional fields a
/// record has (`--verify` adds `ok`; a revision may have `target` and
/// `notes`): every line of a kind has as many columns as its header names.
#[test]
fn tsv_columns_are_fixed_per_kind_and_the_header_names_them() {
    let text = listed(
        reg_ls()
            .arg(sample())
            .args(["--tsv", "--header", "--verify", "-q"]),
    );
    let mut header: std::collections::BTreeMap<String, usize> = Default::default();
    let mut pending = None;
    for line in text.lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        if cells[0] == "kind" {
            pending = Some(cells.len());
            continue;
        }
        if !header.contains_key(cells[0]) {
            let n = pending
                .take()
                .unwrap_or_else(|| panic!("no header before {line}\n{text}"));
            header.insert(cells[0].to_string(), n);
        }
        assert_eq!(
            cells.len(),
            header[cells[0]],
            "{line}: as many columns as its header\n{text}"
        );
    }
    assert_eq!(
        header.keys().collect::<Vec<_>>(),
        ["blob", "layer-link", "repo", "revision", "tag", "upload"],
        "{text}"
    );
    assert!(
        text.contains("kind\trepo\tdigest\tmtime\ttarget\tok\tnotes\n"),
        "{text}"
    );
    assert!(text.contains("kind\tdigest\tsize\tmtime\tok\n"), "{text}");
    // Without --tsv, --header is a usage error.
    refused(reg_ls().arg(sample()).arg("--header"), 2);
}

/// Summaries count in words: `1 upload`, never `1 uploads`.
#[test]
fn the_summary_says_one_upload() {
    let err = stderr(&reg_ls().arg(sample()).arg("--stats").output().unwrap());
    assert!(err.starts_with("reg-ls: 5 repos, "), "{err}");
    assert!(err.contains(", 1 upload\n"), "{err}");
}

/// A storage root read with `--config` that is wrong says where it came
/// from: the file, or the environment variable that overrides it.
#[test]
fn a_wrong_root_names_the_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  filesystem:\n    rootdirectory: {}\n",
            sample().display()
        ),
    )
    .unwrap();
    let run = |env: Option<&str>| {
        let mut cmd = reg_ls();
        cmd.arg("--config").arg(&config).arg("-q");
        cmd.env_remove("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY");
        if let Some(v) = env {
            cmd.env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", v);
        }
        cmd.output().unwrap()
    };
    assert_eq!(run(None).status.code(), Some(0));
    let out = run(Some("/nonexistent/registry"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.lines().next().unwrap(),
        format!(
            "reg-ls: error: the storage root from the environment \
             (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, over {}): /nonexistent/registry: No such \
             file or directory (os error 2)",
            config.display()
        ),
        "{err}"
    );
    std::fs::write(
        &config,
        "storage:\n  filesystem:\n    rootdirectory: /nonexistent/r\n",
    )
    .unwrap();
    let err = stderr(&run(None));
    assert!(
        err.starts_with(&format!(
            "reg-ls: error: the storage root named in {}: /nonexistent/r: ",
            config.display()
        )),
        "{err}"
    );
}
