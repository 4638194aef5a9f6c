//! A private instance of Debian's `docker-registry` (distribution 2.8.2) on
//! a free 127.0.0.1 port, storing into a temporary directory.
//!
//! The config enables deletion, sets no blob descriptor cache (so offline
//! deletions are seen at once), disables upload purging and the access log,
//! and logs warnings and errors to `registry.log` next to it; one started
//! with [`Registry::start_logging`] logs every request there instead, as a
//! production registry does (for reg-pulls).

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::Api;

/// How long `start` waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) registry. Killed on drop; its temp dir goes too.
pub struct Registry {
    dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    s3: Option<S3Storage>,
    /// `None`: warnings only, no access log.
    logging: Option<LogFormat>,
}

/// The application log's `log.formatter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a registry with the s3 driver stores: a bucket of an S3 server
/// on 127.0.0.1 (moto), under `rootdirectory`.
#[derive(Clone, Debug)]
pub struct S3Storage {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    /// The `rootdirectory` (no leading `/`).
    pub root: String,
}

impl S3Storage {
    /// The ROOT the tools take for it: `s3://bucket/root`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }
}

/// `dir` with its storage root, `dir/root`, made.
fn with_root(dir: tempfile::TempDir) -> Result<(tempfile::TempDir, PathBuf)> {
    let root = dir.path().join("root");
    fs::create_dir_all(&root)?;
    Ok((dir, root))
}

impl Registry {
    /// Starts a registry storing into a fresh temp dir.
    pub fn start() -> Result<Registry> {
        Registry::launch_with(with_root(tempdir()?)?, None, None)
    }

    /// Starts a registry storing into a fresh temp dir under `parent` (a
    /// faster filesystem, for tests that push thousands of blobs).
    pub fn start_in(parent: &Path) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("reg-tests-registry-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
        Registry::launch_with(with_root(dir)?, None, None)
    }

    /// Starts a registry on an existing rootdirectory (e.g. a copy of a
    /// recorded sample tree). The directory is not removed on drop.
    pub fn start_on(root: &Path) -> Result<Registry> {
        let root = root
            .canonicalize()
            .with_context(|| format!("no registry root {}", root.display()))?;
        Registry::launch_with((tempdir()?, root), None, None)
    }

    /// Starts a registry with the s3 driver, storing into `s3` (the bucket
    /// must exist).
    pub fn start_s3(s3: S3Storage) -> Result<Registry> {
        let dir = tempdir()?;
        let root = dir.path().join("unused-root");
        Registry::launch_with((dir, root), Some(s3), None)
    }

    /// Starts a registry on a fresh temp dir that logs every request, as
    /// Debian's packaged one does: the access log (stdout) and the
    /// application log at `log.level: info` in `format` (stderr), both into
    /// [`Registry::log_path`].
    pub fn start_logging(format: LogFormat) -> Result<Registry> {
        Registry::launch_with(with_root(tempdir()?)?, None, Some(format))
    }

    /// Starts a registry whose config and log are in `dir`, storing into
    /// `root` (or `s3`), logging in `logging` if asked.
    fn launch_with(
        (dir, root): (tempfile::TempDir, PathBuf),
        s3: Option<S3Storage>,
        logging: Option<LogFormat>,
    ) -> Result<Registry> {
        let mut r = Registry {
            config: dir.path().join("config.yml"),
            log: dir.path().join("registry.log"),
            dir,
            root,
            port: 0,
            child: None,
            s3,
            logging,
        };
        r.launch()?;
        Ok(r)
    }

    /// The file the registry's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The S3 storage of a registry started with [`Registry::start_s3`].
    pub fn s3(&self) -> Option<&S3Storage> {
        self.s3.as_ref()
    }

    /// Starts it again on the same root (same port if still free).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Kills the registry and waits for it. Stopping twice is fine.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().context("waiting for docker-registry")?;
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The `storage.filesystem.rootdirectory`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/docker/registry/v2`.
    pub fn v2(&self) -> PathBuf {
        self.root.join("docker").join("registry").join("v2")
    }

    /// The registry's `config.yml`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The temp dir holding config and log (and the root, for `start`).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// An HTTP API client for it.
    pub fn api(&self) -> Api {
        Api::new(&self.addr())
    }

    /// `addr/reference`, e.g. `ref_for("org/app:v1")`, for skopeo.
    pub fn image_ref(&self, reference: &str) -> String {
        format!("{}/{reference}", self.addr())
    }

    /// What the registry has logged so far.
    pub fn log_contents(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn write_config(&self) -> Result<()> {
        // With s3, blobs are served through the registry (no redirect to
        // the store), as on the filesystem.
        let driver = match &self.s3 {
            None => format!(
                "  filesystem:\n    rootdirectory: {}\n",
                yaml_str(&self.root.display().to_string())
            ),
            Some(s3) => format!(
                "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    \
                 regionendpoint: {}\n    bucket: {}\n    rootdirectory: {}\n    \
                 secure: false\n    v4auth: true\n    forcepathstyle: true\n  \
                 redirect:\n    disable: true\n",
                crate::moto::ACCESS_KEY,
                crate::moto::SECRET_KEY,
                crate::moto::REGION,
                yaml_str(&s3.endpoint),
                yaml_str(&s3.bucket),
                yaml_str(&format!("/{}", s3.root)),
            ),
        };
        let log = match self.logging {
            None => "log:\n  level: warn\n  accesslog:\n    disabled: true\n",
            Some(LogFormat::Text) => "log:\n  level: info\n  formatter: text\n",
            Some(LogFormat::Json) => "log:\n  level: info\n  formatter: json\n",
        };
        let yaml = format!(
            "version: 0.1\n\
             {log}\
             storage:\n{driver}  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: reg-tests-not-a-secret\n",
            addr = self.addr(),
        );
        fs::write(&self.config, yaml).with_context(|| format!("writing {}", self.config.display()))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("docker-registry");
        // The registry reads REGISTRY_* variables over its config file.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        // With it set, the 2.8 registry's S3 driver panics at start.
        cmd.env_remove("AWS_CA_BUNDLE");
        cmd
    }

    fn launch(&mut self) -> Result<()> {
        let mut last_err = None;
        for attempt in 0..5 {
            if attempt > 0 || self.port == 0 {
                self.port = free_port()?;
            }
            self.write_config()?;
            let log = fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
            let child = self
                .command()
                .arg("serve")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting docker-registry (is it installed?)")?;
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stop()?;
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let api = self.api();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "docker-registry on {} exited at start ({status}); log:\n{}",
                    self.addr(),
                    self.log_contents()
                );
            }
            if api.ping().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry on {} did not answer GET /v2/ within {:?}; log:\n{}",
                    self.addr(),
                    START_TIMEOUT,
                    self.log_contents()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Runs `docker-registry garbage-collect [--dry-run] [--delete-untagged]`
    /// on this registry's config. Stop the registry before a real run.
    pub fn garbage_collect(&self, dry_run: bool, delete_untagged: bool) -> Result<Output> {
        self.garbage_collect_env(dry_run, delete_untagged, &[])
    }

    /// [`Registry::garbage_collect`] with `REGISTRY_*` overrides of its
    /// config (`REGISTRY_STORAGE_S3_REGIONENDPOINT` to send its requests
    /// through a proxy).
    pub fn garbage_collect_env(
        &self,
        dry_run: bool,
        delete_untagged: bool,
        env: &[(&str, &str)],
    ) -> Result<Output> {
        let mut cmd = self.command();
        cmd.envs(env.iter().copied());
        cmd.arg("garbage-collect");
        if dry_run {
            cmd.arg("--dry-run");
        }
        if delete_untagged {
            cmd.arg("--delete-untagged");
        }
        cmd.arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .context("running docker-registry garbage-collect")
    }

    /// `garbage_collect` that must succeed, parsed.
    pub fn gc_report(&self, dry_run: bool, delete_untagged: bool) -> Result<GcReport> {
        let out = self.garbage_collect(dry_run, delete_untagged)?;
        if !out.status.success() {
            bail!(
                "docker-registry garbage-collect (dry_run={dry_run}, delete_untagged={delete_untagged}) failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end(),
                String::from_utf8_lossy(&out.stdout).trim_end(),
            );
        }
        Ok(parse_gc_output(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The blob digests a dry-run garbage-collect finds eligible for deletion.
    pub fn gc_eligible_blobs(&self, delete_untagged: bool) -> Result<BTreeSet<String>> {
        Ok(self.gc_report(true, delete_untagged)?.eligible_blobs)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// What `docker-registry garbage-collect` (2.8.2) printed on stdout:
/// `<repo>: marking manifest sha256:…`, `<repo>: marking blob sha256:…`,
/// `manifest eligible for deletion: sha256:…`, `blob eligible for deletion:
/// sha256:…`. Digests are `sha256:<hex>` strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// `(repo, manifest digest)` marked.
    pub marked_manifests: BTreeSet<(String, String)>,
    /// Blob digests marked (any repo).
    pub marked_blobs: BTreeSet<String>,
    /// Manifests `--delete-untagged` deletes (or would).
    pub eligible_manifests: BTreeSet<String>,
    /// Blobs it deletes (or would).
    pub eligible_blobs: BTreeSet<String>,
}

/// Parses garbage-collect's stdout; lines it does not know are skipped.
pub fn parse_gc_output(stdout: &str) -> GcReport {
    let mut r = GcReport::default();
    let digest_in = |s: &str| {
        s.split_whitespace()
            .find(|w| reg_core::Digest::parse(w).is_ok())
            .map(str::to_owned)
    };
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("blob eligible for deletion:") {
            r.eligible_blobs.extend(digest_in(rest));
        } else if let Some(rest) = line.strip_prefix("manifest eligible for deletion:") {
            r.eligible_manifests.extend(digest_in(rest));
        } else if let Some((repo, rest)) = line.split_once(": marking manifest ") {
            if let Some(d) = digest_in(rest) {
                r.marked_manifests.insert((repo.to_owned(), d));
            }
        } else if let Some((_, rest)) = line.split_once(": marking blob ") {
            r.marked_blobs.extend(digest_in(rest));
        }
    }
    r
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("reg-tests-registry-")
        .tempdir()
        .context("creating a temp dir")
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A YAML double-quoted string.
fn yaml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gc_output() {
        let h1 = format!("sha256:{}", "a".repeat(64));
        let h2 = format!("sha256:{}", "b".repeat(64));
        let h3 = format!("sha256:{}", "c".repeat(64));
        let out = format!(
            "org/app\norg/app: marking manifest {h1} \norg/app: marking blob {h2}\n\
             manifest eligible for deletion: {h3}\n\n\
             1 blobs marked, 1 blobs and 1 manifests eligible for deletion\n\
             blob eligible for deletion: {h3}\n"
        );
        let r = parse_gc_output(&out);
        assert_eq!(
            r.marked_manifests,
            BTreeSet::from([("org/app".to_owned(), h1.clone())])
        );
        assert_eq!(r.marked_blobs, BTreeSet::from([h2]));
        assert_eq!(r.eligible_manifests, BTreeSet::from([h3.clone()]));
        assert_eq!(r.eligible_blobs, BTreeSet::from([h3]));
    }
}
