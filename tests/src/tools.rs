//! Locating and running the tools under test (`reg-ls`, `reg-refs`,
//! `reg-orphans`, `reg-rm`) from integration tests, and deciding whether
//! the external programs (docker-registry, skopeo) are there.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

/// The tool's executable, next to the test binary's `deps/` directory
/// (`target/debug/deps/registry-… → target/debug/reg-ls`). Panics, saying
/// to run `cargo build --workspace`, when it is not built.
pub fn tool_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test binary has a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` first (looked in {})",
        name,
        dir.display()
    );
    path
}

/// One finished run of a tool.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics, showing the command, status and stderr, unless it exited 0.
    #[track_caller]
    pub fn success(&self) -> &Run {
        self.expect_code(0)
    }

    /// Panics, showing the command, status and stderr, unless it exited
    /// with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.status.code(),
            Some(code),
            "`{}` exited with {} (wanted {code})\n--- stderr:\n{}\n--- stdout (first 2000 bytes):\n{}",
            self.cmd,
            self.status,
            self.stderr,
            &self.stdout[..self.stdout.len().min(2000)],
        );
        self
    }

    /// stdout, one JSON object per line (panics on a line that is not).
    #[track_caller]
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "`{}` printed a line that is not JSON ({e}): {l}\n--- stderr:\n{}",
                        self.cmd, self.stderr
                    )
                });
                assert!(
                    v.get("kind").and_then(|k| k.as_str()).is_some(),
                    "`{}` printed a record without a string \"kind\": {l}",
                    self.cmd
                );
                v
            })
            .collect()
    }
}

/// Runs tool `name` with `args`, feeding `stdin` (if any) and capturing
/// everything.
pub fn run_tool<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S], stdin: Option<&[u8]>) -> Run {
    let path = tool_path(name);
    let cmd_line = std::iter::once(path.display().to_string())
        .chain(args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(&path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{cmd_line}`: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin piped");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // The tool may stop reading early; that is its business.
            let _ = pipe.write_all(&data);
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for `{cmd_line}`: {e}"));
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        cmd: cmd_line,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Whether docker-registry and skopeo are installed. When they are not:
/// with `CI` set this panics (CI must run these tests); otherwise it prints
/// a skip note and returns false, and the test should return.
#[track_caller]
pub fn registry_programs_available(test: &str) -> bool {
    let missing: Vec<&str> = ["docker-registry", "skopeo"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {} not installed, and CI is set", missing.join(", "));
    }
    eprintln!("skipping {test}: {} not installed", missing.join(", "));
    false
}
