//! What every tool's command line shares: the common flags, exit codes,
//! the process-wide thread pool and the top-level error handling. The
//! library (reg-core) knows none of it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use reg_core::layout::Store;
use reg_core::output::{is_broken_pipe, Format, Out};
use reg_core::root::Location;

/// Exit status: done.
pub const EXIT_OK: u8 = 0;
/// Exit status: failed; the message says what and where.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage (clap exits with 2 on its own).
pub const EXIT_USAGE: u8 = 2;

/// The most threads `-j` may ask for: the work is I/O on one tree, and a
/// typo such as `-j 100000` must not start thousands of threads.
pub const MAX_THREADS: usize = 256;

/// Threads when `-j` is not given and the storage is object storage: each
/// reads one manifest at a time, so this many requests are in flight.
pub const OBJECT_STORAGE_THREADS: usize = 32;

/// Flags every tool takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Storage root: the registry's rootdirectory (holding docker/registry/v2), or that v2
    /// directory, or s3://BUCKET/ROOTDIRECTORY (credentials, region and endpoint from AWS_*), or
    /// azure://ACCOUNT/CONTAINER/ROOTDIRECTORY (key and endpoint from AZURE_*).
    #[arg(value_name = "ROOT", required_unless_present_any = ["config", "generate"])]
    pub root: Option<PathBuf>,

    /// Read the storage root from the registry's config.yml: its filesystem, s3 or azure driver
    /// (REGISTRY_STORAGE_* variables override it, as for the registry).
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub config: Option<PathBuf>,

    /// Keep the manifests read in DIR, by digest, and read them from there
    /// next time (manifests never change): for object storage, where each
    /// read is a request.
    #[arg(long, value_name = "DIR")]
    pub manifest_cache: Option<PathBuf>,

    /// Print records as tab-separated columns (kind first) instead of JSON lines.
    #[arg(long)]
    pub tsv: bool,

    /// No summary and no progress line on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Number of threads, 1 to 256 [default: every core; 32 on object storage].
    #[arg(short = 'j', long = "threads", value_name = "N", value_parser = threads)]
    pub threads: Option<usize>,

    /// Write shell completions or this tool's man page on stdout, and exit.
    #[arg(long, value_enum, value_name = "KIND", exclusive = true)]
    pub generate: Option<crate::generate::Generate>,
}

impl Common {
    /// Sets up the thread pool and opens the store.
    pub fn open(&self) -> anyhow::Result<Store> {
        let location = match (&self.root, &self.config) {
            (Some(r), _) => Location::parse(r)?,
            (None, Some(cfg)) => reg_core::root::location_from_config(cfg)?,
            (None, None) => anyhow::bail!("no ROOT given (or --config FILE)"),
        };
        // On object storage the walks wait for requests, not for the CPU:
        // more threads keep more of them in flight.
        let threads = match (self.threads, &location) {
            (Some(n), _) => Some(n),
            (None, Location::Object(_)) => Some(OBJECT_STORAGE_THREADS),
            (None, Location::Fs(_)) => None,
        };
        if let Some(n) = threads {
            // Fails only if a pool exists already (in tests): harmless.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n.clamp(1, MAX_THREADS))
                .build_global();
        }
        let store = location.open()?;
        Ok(match &self.manifest_cache {
            Some(dir) => store.with_manifest_cache(dir),
            None => store,
        })
    }

    pub fn format(&self) -> Format {
        if self.tsv {
            Format::Tsv
        } else {
            Format::Json
        }
    }

    /// The record writer on stdout.
    pub fn out(&self) -> Out {
        Out::stdout(self.format())
    }
}

/// A summary line, with the requests sent to object storage when there
/// were any (`; 57 requests: 40 LIST, 17 GET`).
pub fn with_requests(store: &Store, line: impl std::fmt::Display) -> String {
    match store.requests() {
        Some(r) => format!("{line}; {r}"),
        None => line.to_string(),
    }
}

/// Parses `-j N` for clap: a number from 1 to [`MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid thread count {s:?}: a number from 1 to {MAX_THREADS}"))?;
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "thread count {n} out of range: must be from 1 to {MAX_THREADS}"
        ))
    }
}

/// Test hook: `REG_TEST_CLOCK_OFFSET=DURATION` (`1d`, `-2h`, `+90m`) shifts
/// the tools' own clock by that much, as on a machine whose clock is wrong;
/// the end-to-end tests use it to show that ages on object storage follow
/// the server's clock.
pub const CLOCK_OFFSET_ENV: &str = "REG_TEST_CLOCK_OFFSET";

/// This machine's clock, as the tools read it (see [`CLOCK_OFFSET_ENV`]).
pub fn local_now() -> anyhow::Result<SystemTime> {
    let now = SystemTime::now();
    let Some(v) = std::env::var_os(CLOCK_OFFSET_ENV) else {
        return Ok(now);
    };
    let v = v.to_string_lossy();
    let (back, d) = match v.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.trim().trim_start_matches('+')),
    };
    let d =
        reg_core::time::parse_duration(d).map_err(|e| anyhow::anyhow!("{CLOCK_OFFSET_ENV}={v:?}: {e}"))?;
    Ok(if back { now - d } else { now + d })
}

/// Parses a duration flag (`1h`, `30m`, `7d`, `0s`) for clap.
pub fn duration(s: &str) -> Result<Duration, String> {
    reg_core::time::parse_duration(s)
}

/// `--generate KIND` for the tool whose command is `cmd`: written on stdout.
pub fn generate(what: crate::generate::Generate, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    written(crate::generate::write(what, cmd, &mut out))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a tool's `run` and turns its result into an exit status: errors are
/// printed once as `tool: error: cause`, a closed stdout is a quiet success.
pub fn run_main(tool: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{tool}: {err:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Adds "writing output" context to a write error, keeping BrokenPipe visible.
pub fn written(r: std::io::Result<()>) -> anyhow::Result<()> {
    r.context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Args {
        #[command(flatten)]
        common: Common,
    }

    #[test]
    fn threads_are_bounded() {
        for ok in ["1", "4", "256"] {
            let a = Args::try_parse_from(["t", "-j", ok, "root"]).unwrap();
            assert_eq!(a.common.threads, Some(ok.parse().unwrap()));
        }
        for bad in ["0", "257", "100000", "-1", "x", ""] {
            let e = Args::try_parse_from(["t", &format!("--threads={bad}"), "root"]).unwrap_err();
            assert_eq!(e.exit_code(), i32::from(EXIT_USAGE), "{bad}");
            assert!(e.to_string().contains("256"), "{bad}: {e}");
        }
    }
}
