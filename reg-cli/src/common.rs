//! What every tool's command line shares: the common flags, exit codes,
//! the process-wide thread pool and the top-level error handling. The
//! library (reg-core) knows none of it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use reg_core::layout::Store;
use reg_core::messages::Messages;
use reg_core::registry_config::BlobCache;

use crate::color::ColorWhen;
use reg_core::object::InventoryUsed;
use reg_core::output::{is_broken_pipe, Format, Out};
use reg_core::root::{Inventory, Location};

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
    /// Storage root: the registry's rootdirectory, its docker/registry/v2,
    /// s3://BUCKET/ROOTDIRECTORY or azure://ACCOUNT/CONTAINER/ROOTDIRECTORY
    ///
    /// The directory set as storage.filesystem.rootdirectory (it holds
    /// docker/registry/v2), or that v2 directory itself, or
    /// s3://BUCKET/ROOTDIRECTORY for a registry on S3 (credentials, region and
    /// endpoint from AWS_*), or azure://ACCOUNT/CONTAINER/ROOTDIRECTORY for one
    /// on Azure Blob Storage (key and endpoint from AZURE_*).
    #[arg(value_name = "ROOT", required_unless_present_any = ["config", "generate"])]
    pub root: Option<PathBuf>,

    /// Read the storage root from the registry's config.yml
    ///
    /// Its filesystem, s3 or azure driver, as the registry reads it:
    /// REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, REGISTRY_STORAGE_S3_* and
    /// REGISTRY_STORAGE_AZURE_* override the file. reg-rm also reads
    /// storage.cache.blobdescriptor there, to say whether the registry must be
    /// restarted after deleting.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub config: Option<PathBuf>,

    /// Keep the manifests read in DIR and read them from there next time
    ///
    /// Manifests never change, so a copy kept by digest (and checked
    /// against it before use) is as good as the original: for object
    /// storage, where each read is a request. On object storage the cache
    /// is on by default, in $XDG_CACHE_HOME/reg-tools/manifests (else
    /// ~/.cache/reg-tools/manifests), holding at most about 4 GiB in pack
    /// files of up to 64 MiB (the packs used longest ago go first).
    #[arg(long, value_name = "DIR")]
    pub manifest_cache: Option<PathBuf>,

    /// Read every manifest from the store, keeping none (no manifest cache)
    #[arg(long, conflicts_with = "manifest_cache")]
    pub no_manifest_cache: bool,

    /// Print tab-separated columns instead of JSON lines
    ///
    /// One line per record: its kind, then the kind's fields in a fixed
    /// order (a field the record lacks is an empty column, so columns never
    /// move; arrays are JSON). A trailer names its fields (`repos=5`).
    #[arg(long)]
    pub tsv: bool,

    /// With --tsv: before each kind's first record, a line naming its columns
    #[arg(long, requires = "tsv")]
    pub header: bool,

    /// No summary and no progress line on stderr
    #[arg(short, long)]
    pub quiet: bool,

    /// Number of threads, 1 to 256 [default: every core; 32 on object storage]; on object
    /// storage also the most manifest GETs in flight [default: adapted, 32 to 256]
    #[arg(short = 'j', long = "threads", value_name = "N", value_parser = threads)]
    pub threads: Option<usize>,

    /// When to color stderr: auto, always or never
    ///
    /// Colored are the error: and warning: labels and clap's usage errors;
    /// auto colors them when stderr is a terminal and NO_COLOR is not set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, hide_possible_values = true)]
    pub color: ColorWhen,

    /// Write shell completions or this tool's man page on stdout, and exit
    #[arg(long, value_enum, value_name = "KIND", exclusive = true)]
    pub generate: Option<crate::generate::Generate>,
}

impl Common {
    /// Sets up the thread pool and opens the store.
    pub fn open(&self) -> anyhow::Result<Store> {
        self.open_with(None).map(|(store, _)| store)
    }

    /// [`Common::open`], with the listing from an S3 Inventory report when
    /// `inventory` names one (reg-refs and reg-orphans' `--inventory`).
    pub fn open_with(&self, inventory: Option<&Inventory>) -> anyhow::Result<(Store, Option<InventoryUsed>)> {
        let (location, from) = match (&self.root, &self.config) {
            (Some(r), _) => (Location::parse(r)?, None),
            (None, Some(cfg)) => (
                reg_core::root::location_from_config(cfg)?,
                Some(root_source(cfg, std::env::vars_os())),
            ),
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
        // A root that is wrong says where it came from: the file, or the
        // environment that overrides it (as it does for the registry).
        let (store, used) = location.open_with(inventory).map_err(|e| match from {
            Some(from) => anyhow::Error::new(e).context(from),
            None => e.into(),
        })?;
        // The cache pays where a read is a request: on by default there.
        let cache = match (&self.manifest_cache, &location) {
            _ if self.no_manifest_cache => None,
            (Some(dir), _) => Some(dir.clone()),
            (None, Location::Object(_)) => reg_core::manifest_cache::default_dir(&|k| std::env::var_os(k)),
            (None, Location::Fs(_)) => None,
        };
        let store = match cache {
            Some(dir) => store.with_manifest_cache(dir),
            None => store,
        };
        // `-j N` bounds the manifest GETs in flight too (they adapt below it).
        if let Some(n) = self.threads {
            store.backend().cap_reads(n);
        }
        Ok((store, used))
    }

    /// What the registry's configuration (`--config`) says of its blob
    /// descriptor cache; unknown without it.
    pub fn blob_cache(&self) -> anyhow::Result<BlobCache> {
        match &self.config {
            Some(file) => Ok(BlobCache::from_config(file, &|k| std::env::var(k).ok())?),
            None => Ok(BlobCache::Unknown),
        }
    }

    pub fn format(&self) -> Format {
        if self.tsv {
            Format::Tsv { header: self.header }
        } else {
            Format::Json
        }
    }

    /// The record writer on stdout.
    pub fn out(&self) -> Out {
        Out::stdout(self.format())
    }
}

/// `--inventory URL`, for the tools that read listings only (reg-refs,
/// reg-orphans; never reg-rm, whose looks at deletion time stay on live
/// LISTs).
#[derive(clap::Args, Debug, Clone)]
pub struct InventoryFlag {
    /// List the bucket from an S3 Inventory report (its manifest.json)
    ///
    /// s3://BUCKET/PATH/manifest.json, read with the registry's endpoint and
    /// credentials (the bucket may be another one), or a local path to a
    /// report downloaded by hand (data files beside it or in ../data/). Its
    /// CSV or Parquet files replace the LIST of blobs/ and repositories/.
    /// A report older than --min-age is refused: what was written since is
    /// not in it.
    #[arg(long, value_name = "URL")]
    pub inventory: Option<String>,
}

impl InventoryFlag {
    /// The report to use, no older than `max_age`, if one is named.
    pub fn report(&self, max_age: Duration) -> anyhow::Result<Option<Inventory>> {
        let Some(at) = &self.inventory else {
            return Ok(None);
        };
        Ok(Some(Inventory {
            at: at.clone(),
            max_age,
            local_now: local_now()?,
        }))
    }
}

/// The summary's note on an inventory report used as the listing
/// (`; listed from the inventory report made at …`), or nothing.
pub fn inventory_note(used: &Option<InventoryUsed>) -> String {
    match used {
        Some(u) => format!(
            "; listed from the inventory report made at {} ({}, {} below the root)",
            reg_core::time::Time(u.created),
            reg_core::messages::count(u.files as u64, "file", "files"),
            reg_core::messages::count(u.listed, "object", "objects"),
        ),
        None => String::new(),
    }
}

/// Where a storage root read with `--config FILE` comes from, for an error
/// about it: the file, or the registry's variables in `env` that override
/// it (named, never their values: some are secrets).
fn root_source(file: &Path, env: impl Iterator<Item = (OsString, OsString)>) -> String {
    // The storage section's keys that name no driver (as in reg_core::root).
    const NOT_DRIVERS: [&str; 5] = ["CACHE_", "DELETE_", "MAINTENANCE_", "REDIRECT_", "TAG_"];
    let mut vars: Vec<String> = env
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.strip_prefix("REGISTRY_STORAGE_")
                .is_some_and(|rest| !NOT_DRIVERS.iter().any(|n| rest.starts_with(n)))
        })
        .collect();
    vars.sort();
    if vars.is_empty() {
        format!("the storage root named in {}", file.display())
    } else {
        format!(
            "the storage root from the environment ({}, over {})",
            vars.join(", "),
            file.display()
        )
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

/// A tool's `main`: reads `--color` first (so that clap's own errors follow
/// it), parses the command line into `A`, runs `run` and turns its result
/// into an exit status. A usage error is clap's, with the tool's name in
/// front (`reg-ls: error: unexpected argument …`), status 2; `--help` and
/// `--version` print on stdout, status 0.
pub fn main<A: clap::Parser>(
    tool: &'static str,
    run: impl FnOnce(A) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let when = crate::color::from_args(std::env::args_os());
    crate::color::init(when);
    let parsed = A::command()
        .color(when.clap())
        .try_get_matches()
        .and_then(|mut m| A::from_arg_matches_mut(&mut m));
    match parsed {
        Ok(args) => run_main(tool, || run(args)),
        Err(e) => clap_error(tool, &e),
    }
}

/// Prints a clap error (or the help or version it carries) and says with
/// which status to exit.
fn clap_error(tool: &str, e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // On stdout; a closed one (`--help | head`) is nothing to report.
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = if crate::color::stderr() {
        e.render().ansi().to_string()
    } else {
        e.render().to_string()
    };
    eprint!("{tool}: {text}");
    ExitCode::from(EXIT_USAGE)
}

/// The stderr side of a run of `tool`, colored as `--color` says.
pub fn messages(tool: &'static str, quiet: bool) -> Messages {
    Messages::new(tool, quiet).colored(crate::color::stderr())
}

/// Prints a usage error found after parsing (`tool: error: msg`); returns
/// status 2.
pub fn usage_error(tool: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("{tool}: {} {msg}", error_label());
    ExitCode::from(EXIT_USAGE)
}

/// `error:`, colored as `--color` says.
fn error_label() -> String {
    reg_core::messages::label("error:", reg_core::messages::RED, crate::color::stderr())
}

/// Runs a tool's `run` and turns its result into an exit status: errors are
/// printed once as `tool: error: cause`, a closed stdout is a quiet success.
pub fn run_main(tool: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{tool}: {} {err:#}", error_label());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The exit status of a run that went to its end: failed (1) if any error
/// was reported (the messages said what and where), else success.
pub fn status(msgs: &Messages) -> ExitCode {
    if msgs.errors() > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
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
    fn a_root_from_the_environment_is_named_so() {
        let file = Path::new("/etc/docker/registry/config.yml");
        let env = |vars: &[(&str, &str)]| {
            vars.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            root_source(
                file,
                env(&[("HOME", "/root"), ("REGISTRY_STORAGE_DELETE_ENABLED", "true")])
            ),
            "the storage root named in /etc/docker/registry/config.yml"
        );
        assert_eq!(
            root_source(
                file,
                env(&[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/r")])
            ),
            "the storage root from the environment (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, over \
             /etc/docker/registry/config.yml)"
        );
        let s3 = root_source(
            file,
            env(&[
                ("REGISTRY_STORAGE_S3_SECRETKEY", "secret"),
                ("REGISTRY_STORAGE_S3_BUCKET", "b"),
                ("REGISTRY_STORAGE_S3_REGION", ""),
            ]),
        );
        assert_eq!(
            s3,
            "the storage root from the environment (REGISTRY_STORAGE_S3_BUCKET, \
             REGISTRY_STORAGE_S3_SECRETKEY, over /etc/docker/registry/config.yml)"
        );
        assert!(!s3.contains("secret"), "names, never values: {s3}");
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
