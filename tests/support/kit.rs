//! The CLI tests' kit, shared by the tool crates' `tests/cli.rs` (each
//! includes it with `#[path]`, as `mod kit`): the sample tree, files put in
//! a tree, a tool run with its stdin fed, a tool's stdout as JSON lines and
//! its stderr as text, and a run whose stdout is closed after one line. The end-to-end kit (a real
//! registry, images, object storage) is the `reg-tests` crate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The recorded sample tree, `examples/registry` (a storage root).
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/registry")
}

/// `ROOT/docker/registry/v2`.
pub fn v2(root: &Path) -> PathBuf {
    root.join("docker/registry/v2")
}

/// Writes `bytes` at `path`, making its parents.
pub fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Spawns `cmd` with stdin, stdout and stderr piped.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cmd` with `input` written to its stdin from a thread (a tool that
/// fills its stdout before reading all its input cannot block the test)
/// and returns its output and how the writing went.
fn fed(cmd: &mut Command, input: &[u8]) -> (Output, std::io::Result<()>) {
    let mut child = spawn_piped(cmd);
    let mut pipe = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&data));
    let out = child.wait_with_output().unwrap();
    (out, writer.join().unwrap())
}

/// Runs `cmd` with `input` on its stdin; the tool may stop reading early
/// (that is its business).
pub fn run_fed(cmd: &mut Command, input: &[u8]) -> Output {
    fed(cmd, input).0
}

/// Runs `cmd` with `input` on its stdin, which the tool must read whole
/// (a write to a closed stdin fails the test).
pub fn run_reading_all(cmd: &mut Command, input: &[u8]) -> Output {
    let (out, wrote) = fed(cmd, input);
    wrote.unwrap();
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stdout as JSON values, one a line (any line that is not JSON fails).
#[track_caller]
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// More than a pipe holds by default on Linux (16 pages, 64 KiB), with
/// room: a tool whose whole output fits would finish writing before the
/// reader closes, and never meet the closed pipe a test is about.
pub const PAST_PIPE_BUFFER: usize = 256 * 1024;

/// Runs `exe` with `args`, reads the first line of its stdout and closes
/// the pipe (as `| head -1` does); the tool must exit 0 with nothing on
/// stderr. Fails unless the same run's whole output is larger than
/// [`PAST_PIPE_BUFFER`], so the test can only pass through the closed-pipe
/// path. Returns the first line.
#[track_caller]
pub fn first_line_then_close(exe: &Path, args: &[&std::ffi::OsStr]) -> String {
    let spawn = |stderr: Stdio| {
        Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    let mut whole = spawn(Stdio::null());
    let mut n = 0usize;
    let mut buf = [0u8; 65536];
    let mut out = whole.stdout.take().unwrap();
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    whole.wait().unwrap();
    assert!(
        n > PAST_PIPE_BUFFER,
        "the output ({n} bytes) fits in a pipe: the closed pipe is never met"
    );

    let mut child = spawn(Stdio::piped());
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here.
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    first
}
