//! Locating and running the tools under test (`reg-ls`, `reg-refs`,
//! `reg-orphans`, `reg-rm`) from integration tests, and deciding whether
//! the external programs (docker-registry, skopeo) are there.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
        self.holds(self.status.code() == Some(code), || {
            format!("exited with {} (wanted {code})", self.status)
        })
    }

    /// Panics, showing the command, status and stderr, unless stderr
    /// contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        self.holds(self.stderr.contains(needle), || {
            format!("(exit {}): stderr does not contain {needle:?}", self.status)
        })
    }

    /// Panics unless stderr does not contain `needle`.
    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Run {
        self.holds(!self.stderr.contains(needle), || {
            format!(
                "(exit {}): stderr contains {needle:?} and should not",
                self.status
            )
        })
    }

    /// Panics unless stdout is empty.
    #[track_caller]
    pub fn stdout_empty(&self) -> &Run {
        self.holds(self.stdout.is_empty(), || {
            format!(
                "(exit {}) printed on stdout, and should print nothing",
                self.status
            )
        })
    }

    /// Panics unless no stdout line is a trailer (`"kind":"end"`).
    #[track_caller]
    pub fn no_trailer(&self) -> &Run {
        self.holds(
            !self.stdout.lines().any(|l| l.contains(r#""kind":"end""#)),
            || format!("(exit {}) printed a trailer", self.status),
        )
    }

    /// Panics unless `ok`, with the command, `what` went wrong, its stderr
    /// and the start of its stdout.
    #[track_caller]
    fn holds(&self, ok: bool, what: impl FnOnce() -> String) -> &Run {
        assert!(
            ok,
            "`{}` {}\n--- stderr:\n{}\n--- stdout (first 2000 bytes):\n{}",
            self.cmd,
            what(),
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
/// everything. A run that takes longer than two minutes is killed and fails
/// the test.
pub fn run_tool<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut tool = Tool::new(name).args(args);
    if let Some(data) = stdin {
        tool = tool.stdin(data);
    }
    tool.run()
}

/// `XDG_CACHE_HOME` for every tool run: below a file, so nothing can be
/// kept there (see [`Tool::spawn`]).
pub const NO_CACHE: &str = "/dev/null/reg-tests-no-cache";

/// A tool run being set up: arguments, stdin, environment and a time limit.
///
/// ```no_run
/// # use reg_tests::Tool;
/// let run = Tool::new("reg-rm").args(["--min-age", "0s", "/srv/registry"]).stdin("sha256:…\n").run();
/// run.expect_code(1).stderr_has("bad digest");
/// ```
pub struct Tool {
    name: String,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Tool {
    /// `name` with no arguments, stdin from /dev/null, a two-minute limit.
    pub fn new(name: &str) -> Tool {
        Tool {
            name: name.to_owned(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tool {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Tool {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Feeds `data` on stdin, then closes it.
    pub fn stdin(mut self, data: impl AsRef<[u8]>) -> Tool {
        self.stdin = Some(data.as_ref().to_vec());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Tool {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Kills the tool and fails the test when it runs longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Tool {
        self.timeout = limit;
        self
    }

    /// The command line as a shell would show it (environment first).
    pub fn command_line(&self) -> String {
        self.env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .chain(std::iter::once(tool_path(&self.name).display().to_string()))
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts the tool with stdout and stderr piped and stdin fed from a
    /// thread (or /dev/null). For tests that read stdout themselves.
    pub fn spawn(&self) -> (Child, Option<std::thread::JoinHandle<()>>) {
        let cmd_line = self.command_line();
        let mut child = Command::new(tool_path(&self.name))
            .args(&self.args)
            // No manifest cache kept between tests (it is on by default on
            // object storage): a directory that cannot be made, unless the
            // test sets its own.
            .env("XDG_CACHE_HOME", NO_CACHE)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{cmd_line}`: {e}"));
        let writer = self.stdin.clone().map(|data| {
            let mut pipe = child.stdin.take().expect("stdin piped");
            std::thread::spawn(move || {
                // The tool may stop reading early; that is its business.
                let _ = pipe.write_all(&data);
            })
        });
        (child, writer)
    }

    /// Runs it to the end (or the time limit) and captures everything.
    #[track_caller]
    pub fn run(self) -> Run {
        let cmd_line = self.command_line();
        let (mut child, writer) = self.spawn();
        let stdout = reader(child.stdout.take().expect("stdout piped"));
        let stderr = reader(child.stderr.take().expect("stderr piped"));
        let status = wait_limited(&mut child, self.timeout);
        let out = stdout.join().expect("stdout reader");
        let err = stderr.join().expect("stderr reader");
        if let Some(w) = writer {
            let _ = w.join();
        }
        let Some(status) = status else {
            panic!(
                "`{cmd_line}` did not finish within {:?} and was killed (a hang)\n--- stderr:\n{}\n--- stdout (first 2000 bytes):\n{}",
                self.timeout,
                String::from_utf8_lossy(&err),
                String::from_utf8_lossy(&out[..out.len().min(2000)]),
            );
        };
        Run {
            cmd: cmd_line,
            status,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }
    }
}

/// Reads a pipe to its end on a thread.
pub fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` at most `limit`; kills it (and returns `None`) after.
pub fn wait_limited(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `reg-refs --tagged-only ROOT | reg-orphans --min-age 0s ROOT`: the
/// orphan list (both must succeed).
#[track_caller]
pub fn orphan_list(root: &Path) -> String {
    let refs = Tool::new("reg-refs").arg("--tagged-only").arg(root).run();
    refs.success();
    let orphans = Tool::new("reg-orphans")
        .args(["--min-age", "0s"])
        .arg(root)
        .stdin(&refs.stdout)
        .run();
    orphans.success();
    orphans.stdout
}

/// `ENV… reg-rm --min-age 0s EXTRA… ROOT < input`.
pub fn reg_rm(root: &Path, extra: &[&str], input: &str, env: &[(&str, &str)]) -> Run {
    let mut tool = Tool::new("reg-rm")
        .args(["--min-age", "0s"])
        .args(extra)
        .arg(root)
        .stdin(input);
    for (k, v) in env {
        tool = tool.env(k, v);
    }
    tool.run()
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
    programs_available(test, &["docker-registry", "skopeo"])
}

/// Whether `programs` are all on PATH, as [`registry_programs_available`]
/// decides it: panics under `CI`, else prints a skip note.
#[track_caller]
pub fn programs_available(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {} not installed, and CI is set", missing.join(", "));
    }
    eprintln!("skipping {test}: {} not installed", missing.join(", "));
    false
}
