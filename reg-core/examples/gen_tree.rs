//! `gen_tree`: writes a large synthetic registry storage tree for benchmarks.
//!
//! The tree is what Debian's `docker-registry` (distribution 2.8) would have
//! written had clients pushed it, so the registry serves it and its own
//! `garbage-collect` walks it: real sha256 digests, link files holding
//! `sha256:<hex>` with no newline, Docker schema2 and OCI images and
//! configs, multi-arch indexes (children are revisions with no tag), tags
//! with `current/link` and `index/<alg>/<hex>/link`, overwritten tags (their
//! old manifests stay as untagged revisions), manifests pushed by digest,
//! OCI referrers (`subject`, untagged), `_layers` links for every config and
//! layer, layers shared across repositories, nested repository names (a
//! repository next to a child repository), uploads a day or a month old, and
//! orphan blobs (some with a `_layers` link, like a push whose manifest
//! never came; a few younger than an hour). One repository,
//! `bench/many-tags`, holds thousands of tags.
//!
//! Blob contents are small pseudo-random bytes from a seeded generator, so a
//! given `--blobs`/`--seed`/`--many-tags` always gives the same blobs and
//! links (mtimes are set in the past, relative to now). Repositories are
//! written in parallel with rayon; nothing is fsynced.
//!
//! ```text
//! cargo run --release -p reg-core --example gen_tree -- /tmp/tree --blobs 100000 --seed 1
//! ```
//!
//! `DIR` becomes the registry's `rootdirectory` (the tree is under
//! `DIR/docker/registry/v2`). `DIR/gen-tree.json` records the parameters and
//! counts once the tree is complete; `--force` replaces only a tree this
//! tool wrote (one holding that file or `gen-tree.partial`).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rayon::prelude::*;
use reg_core::layout::paths;
use reg_core::Digest;

const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const MT_SBOM: &str = "application/vnd.example.sbom.v1+json";

/// The name of the stamp file written next to `docker/` when done.
const STAMP: &str = "gen-tree.json";
/// Present while a tree is being written.
const PARTIAL: &str = "gen-tree.partial";
/// The repository with thousands of tags.
const MANY_TAGS_REPO: &str = "bench/many-tags";
const ARCHS: [&str; 4] = ["amd64", "arm64", "ppc64le", "s390x"];
const DAY: u64 = 86_400;

/// Write a synthetic registry storage tree (seeded, registry-compatible).
#[derive(Parser, Debug, Clone)]
#[command(name = "gen_tree")]
struct Cli {
    /// The rootdirectory to create (the tree goes under DIR/docker/registry/v2)
    dir: PathBuf,
    /// About how many blobs to store in total
    #[arg(long, default_value_t = 10_000)]
    blobs: u64,
    /// Seed of the pseudo-random content
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tags in the many-tags repository [default: blobs/20, at most 5000]
    #[arg(long)]
    many_tags: Option<u64>,
    /// Replace DIR if it holds a tree this tool wrote
    #[arg(long)]
    force: bool,
    /// Writer threads [default: every core]
    #[arg(short = 'j', long)]
    threads: Option<usize>,
}

/// What to generate, after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    blobs: u64,
    seed: u64,
    many_tags: u64,
}

impl Params {
    fn new(blobs: u64, seed: u64, many_tags: Option<u64>) -> Params {
        Params {
            blobs,
            seed,
            many_tags: many_tags.unwrap_or((blobs / 20).clamp(1, 5000)),
        }
    }

    fn stamp_json(&self, stats: &Stats) -> String {
        format!(
            "{{\"generator\":\"gen_tree\",\"version\":2,\"blobs\":{},\"seed\":{},\"many_tags\":{},\
             \"stats\":{}}}\n",
            self.blobs,
            self.seed,
            self.many_tags,
            stats.json()
        )
    }
}

/// Public so that the tests crate can build this generator as a binary of
/// its own (`tests/src/bin/gen-tree.rs`, for the progress line test).
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_tree: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let params = Params::new(cli.blobs, cli.seed, cli.many_tags);
    prepare_dir(&cli.dir, cli.force)?;
    let started = std::time::Instant::now();
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("starting threads")?;
    let stats = pool.install(|| generate(&cli.dir, &params))?;
    fs::write(cli.dir.join(STAMP), params.stamp_json(&stats))
        .with_context(|| format!("writing {}", cli.dir.join(STAMP).display()))?;
    fs::remove_file(cli.dir.join(PARTIAL)).ok();
    println!("{}", stats.json());
    eprintln!(
        "gen_tree: {} blobs, {} repos, {} tags, {} revisions, {} files in {:.1?}",
        stats.blobs.load(Ordering::Relaxed),
        stats.repos.load(Ordering::Relaxed),
        stats.tags.load(Ordering::Relaxed),
        stats.revisions.load(Ordering::Relaxed),
        stats.files.load(Ordering::Relaxed),
        started.elapsed()
    );
    Ok(())
}

/// Makes `dir` an empty directory, removing an earlier generated tree with `force`.
fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    let non_empty = match fs::read_dir(dir) {
        Ok(mut it) => it.next().is_some(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    if non_empty {
        let ours = dir.join(STAMP).exists() || dir.join(PARTIAL).exists();
        if !force {
            bail!(
                "{} is not empty (--force replaces a tree gen_tree wrote)",
                dir.display()
            );
        }
        if !ours {
            bail!(
                "{} is not empty and holds no {STAMP} or {PARTIAL}: not a generated tree, not removing it",
                dir.display()
            );
        }
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join(PARTIAL), b"").with_context(|| format!("writing in {}", dir.display()))?;
    Ok(())
}

// ---- counts ---------------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    files: AtomicU64,
    blobs: AtomicU64,
    blob_bytes: AtomicU64,
    repos: AtomicU64,
    tags: AtomicU64,
    revisions: AtomicU64,
    layer_links: AtomicU64,
    orphan_blobs: AtomicU64,
    uploads: AtomicU64,
}

impl Stats {
    fn json(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{{\"files\":{},\"blobs\":{},\"blob_bytes\":{},\"repos\":{},\"tags\":{},\"revisions\":{},\
             \"layer_links\":{},\"orphan_blobs\":{},\"uploads\":{}}}",
            g(&self.files),
            g(&self.blobs),
            g(&self.blob_bytes),
            g(&self.repos),
            g(&self.tags),
            g(&self.revisions),
            g(&self.layer_links),
            g(&self.orphan_blobs),
            g(&self.uploads)
        )
    }
}

// ---- pseudo-random numbers -------------------------------------------------

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the tiny bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `pct`/100.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// An mtime between 30 and 180 days ago.
    fn old_time(&mut self, now: SystemTime) -> SystemTime {
        now - Duration::from_secs(30 * DAY + self.below(150 * DAY))
    }
}

// ---- writing ---------------------------------------------------------------

/// Writes files under `v2`, counting them.
struct Writer<'a> {
    v2: PathBuf,
    now: SystemTime,
    stats: &'a Stats,
}

impl Writer<'_> {
    /// Writes `rel` (relative to v2) with `bytes`, creating parents, and sets
    /// its mtime.
    fn file(&self, rel: &str, bytes: &[u8], mtime: SystemTime) -> Result<()> {
        let path = self.v2.join(rel);
        let write = |path: &Path| -> io::Result<()> {
            let mut f = fs::File::create(path)?;
            f.write_all(bytes)?;
            f.set_modified(mtime)
        };
        match write(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path.parent().expect("rel has a parent"))
                    .and_then(|()| write(&path))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
        self.stats.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A link file: the digest string, no newline.
    fn link(&self, rel: &str, d: &Digest, mtime: SystemTime) -> Result<()> {
        self.file(rel, d.to_string().as_bytes(), mtime)
    }

    /// Stores `data` as a blob and returns its descriptor.
    fn blob(&self, data: &[u8], media_type: &'static str, mtime: SystemTime) -> Result<Desc> {
        let digest = Digest::sha256_of(data);
        self.file(&paths::blob_data(&digest), data, mtime)?;
        self.stats.blobs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .blob_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(Desc {
            digest,
            size: data.len() as u64,
            media_type,
        })
    }
}

/// A stored blob, as a manifest names it.
#[derive(Clone, Debug)]
struct Desc {
    digest: Digest,
    size: u64,
    media_type: &'static str,
}

impl Desc {
    fn json(&self) -> String {
        format!(
            "{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}}",
            self.media_type, self.digest, self.size
        )
    }
}

// ---- the plan --------------------------------------------------------------

/// Blobs every repository may link: base layers and the OCI empty config.
struct Pool {
    base_layers: Vec<Desc>,
    empty_config: Desc,
}

/// One ordinary repository: its name and how many blobs it should add.
#[derive(Clone, Debug)]
struct RepoPlan {
    index: u64,
    name: String,
    budget: u64,
}

/// The names of ordinary repositories: flat, two and three levels, and
/// every fifth one the child of an earlier repository (`org0/app1/sub`).
fn repo_name(i: u64) -> String {
    match i % 5 {
        0 => format!("lib{i}"),
        1 => format!("org{}/app{i}", i / 50),
        2 => format!("org{}/team{}/svc{i}", i / 50, i % 7),
        3 => format!("group{}/proj-{i}", i / 100),
        _ => format!("{}/sub", repo_name(i - 3)),
    }
}

fn generate(dir: &Path, p: &Params) -> Result<Stats> {
    let v2 = dir.join("docker").join("registry").join("v2");
    let stats = Stats::default();
    let w = Writer {
        v2: v2.clone(),
        now: SystemTime::now(),
        stats: &stats,
    };
    for b in 0..=255u8 {
        fs::create_dir_all(v2.join(format!("blobs/sha256/{b:02x}")))?;
    }
    fs::create_dir_all(v2.join(paths::REPOSITORIES))?;

    // Shared blobs, written once.
    let mut rng = Rng::new(p.seed, 0);
    let n_base = (p.blobs / 1000).clamp(8, 1000);
    let base_data: Vec<(Vec<u8>, SystemTime)> = (0..n_base)
        .map(|_| {
            let len = 64 + rng.below(448) as usize;
            (rng.bytes(len), rng.old_time(w.now))
        })
        .collect();
    let base_layers = base_data
        .par_iter()
        .map(|(data, t)| w.blob(data, MT_OCI_LAYER, *t))
        .collect::<Result<Vec<_>>>()?;
    let empty_config = w.blob(b"{}", MT_OCI_EMPTY, rng.old_time(w.now))?;
    let pool = Pool {
        base_layers,
        empty_config,
    };

    // Budget: many-tags repository ~3.2 blobs per tag, 3% orphans, the
    // rest spread over ordinary repositories of ~400 blobs each.
    let many_tags_blobs = p.many_tags * 32 / 10;
    let n_orphans = p.blobs * 3 / 100;
    let rest = p
        .blobs
        .saturating_sub(n_base + 1 + many_tags_blobs + n_orphans)
        .max(40);
    let n_repos = (rest / 400).max(5);
    let weights: Vec<u64> = (0..n_repos).map(|_| 1 + rng.below(4)).collect();
    let total_w: u64 = weights.iter().sum();
    let plans: Vec<RepoPlan> = (0..n_repos)
        .map(|i| RepoPlan {
            index: i,
            name: repo_name(i),
            budget: (rest * weights[i as usize] / total_w).max(4),
        })
        .collect();

    // Ordinary repositories and the many-tags one, in parallel.
    let jobs: Vec<Option<&RepoPlan>> = std::iter::once(None).chain(plans.iter().map(Some)).collect();
    jobs.par_iter().try_for_each(|job| match job {
        Some(plan) => RepoGen::new(&w, &pool, &plan.name, p.seed, 1000 + plan.index)
            .ordinary(plan.budget, plan.index % 25 == 2),
        None => RepoGen::new(&w, &pool, MANY_TAGS_REPO, p.seed, 1).many_tags(p.many_tags),
    })?;

    // Orphan blobs: most unlinked, a third with a _layers link (a push whose
    // manifest never came), one in fifty younger than an hour.
    (0..n_orphans).into_par_iter().try_for_each(|i| -> Result<()> {
        let mut rng = Rng::new(p.seed, 2_000_000_000 + i);
        let len = 32 + rng.below(480) as usize;
        let data = rng.bytes(len);
        let t = if rng.pct(2) {
            w.now - Duration::from_secs(60)
        } else {
            rng.old_time(w.now)
        };
        let d = w.blob(&data, MT_OCI_LAYER, t)?;
        stats.orphan_blobs.fetch_add(1, Ordering::Relaxed);
        if i % 3 == 0 {
            let repo = &plans[rng.below(n_repos) as usize].name;
            w.link(&paths::layer_link(repo, &d.digest), &d.digest, t)?;
            stats.layer_links.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })?;
    Ok(stats)
}

// ---- one repository --------------------------------------------------------

/// Image manifest formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Docker,
    Oci,
}

/// Writes one repository: blobs, `_layers` links, revisions, tags.
struct RepoGen<'a> {
    w: &'a Writer<'a>,
    pool: &'a Pool,
    repo: &'a str,
    rng: Rng,
    /// Blobs this repository stored.
    stored: u64,
    /// Manifests pushed, for naming configs uniquely.
    pushed: u64,
    linked: HashSet<Digest>,
    /// Tag -> every manifest it pointed at, current last.
    tags: BTreeMap<String, Vec<Digest>>,
    /// Tagged image manifests, for referrers to point at.
    subjects: Vec<Desc>,
    /// Layers shared by images of this repository.
    local_base: Vec<Desc>,
}

impl<'a> RepoGen<'a> {
    fn new(w: &'a Writer<'a>, pool: &'a Pool, repo: &'a str, seed: u64, stream: u64) -> RepoGen<'a> {
        w.stats.repos.fetch_add(1, Ordering::Relaxed);
        RepoGen {
            w,
            pool,
            repo,
            rng: Rng::new(seed, stream),
            stored: 0,
            pushed: 0,
            linked: HashSet::new(),
            tags: BTreeMap::new(),
            subjects: Vec::new(),
            local_base: Vec::new(),
        }
    }

    fn time(&mut self) -> SystemTime {
        self.rng.old_time(self.w.now)
    }

    fn store(&mut self, data: &[u8], media_type: &'static str) -> Result<Desc> {
        let t = self.time();
        self.stored += 1;
        self.w.blob(data, media_type, t)
    }

    /// `_layers/<alg>/<hex>/link`, once per blob.
    fn link_layer(&mut self, d: &Desc) -> Result<()> {
        if self.linked.insert(d.digest) {
            let t = self.time();
            self.w
                .link(&paths::layer_link(self.repo, &d.digest), &d.digest, t)?;
            self.w.stats.layer_links.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stores a manifest and its revision link.
    fn manifest(&mut self, json: &str, media_type: &'static str) -> Result<Desc> {
        let d = self.store(json.as_bytes(), media_type)?;
        let t = self.time();
        self.w
            .link(&paths::revision_link(self.repo, &d.digest), &d.digest, t)?;
        self.w.stats.revisions.fetch_add(1, Ordering::Relaxed);
        Ok(d)
    }

    fn unique_layer(&mut self, fmt: Format) -> Result<Desc> {
        let len = 32 + self.rng.below(480) as usize;
        let data = self.rng.bytes(len);
        self.store(&data, layer_type(fmt))
    }

    /// An image: layers (some shared), config, manifest. `unique` is how many
    /// layers only this image has.
    fn image(&mut self, fmt: Format, arch: &str, shared: &[Desc], unique: u64) -> Result<Desc> {
        let mut layers: Vec<Desc> = shared
            .iter()
            .map(|l| Desc {
                media_type: layer_type(fmt),
                ..l.clone()
            })
            .collect();
        for _ in 0..unique {
            layers.push(self.unique_layer(fmt)?);
        }
        self.pushed += 1;
        let mut config = format!(
            "{{\"architecture\":\"{arch}\",\"os\":\"linux\",\"created\":\"2024-01-01T00:00:00Z\",\
             \"config\":{{\"Env\":[\"PATH=/usr/bin:/bin\",\"BENCH_IMAGE={}#{}\",\"NONCE={:016x}\"]}},\
             \"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[",
            self.repo,
            self.pushed,
            self.rng.next()
        );
        for (i, l) in layers.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            write!(config, "{sep}\"{}\"", l.digest).expect("write to String");
        }
        config.push_str("]}}");
        let config = self.store(config.as_bytes(), config_type(fmt))?;
        self.link_layer(&config)?;
        for l in &layers {
            self.link_layer(l)?;
        }
        let layers_json: Vec<String> = layers.iter().map(Desc::json).collect();
        let media_type = manifest_type(fmt);
        let json = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{media_type}\",\"config\":{},\"layers\":[{}]}}",
            config.json(),
            layers_json.join(",")
        );
        self.manifest(&json, media_type)
    }

    /// A multi-arch index of 2-4 images sharing a base layer; the children
    /// are revisions with no tag.
    fn index(&mut self, fmt: Format) -> Result<Desc> {
        let n = 2 + self.rng.below(3) as usize;
        let shared = self.pick_shared();
        let mut entries = Vec::with_capacity(n);
        for arch in &ARCHS[..n] {
            let unique = 1 + self.rng.below(2);
            let child = self.image(fmt, arch, &shared, unique)?;
            let mut e = child.json();
            e.pop();
            write!(
                e,
                ",\"platform\":{{\"architecture\":\"{arch}\",\"os\":\"linux\"}}}}"
            )
            .expect("String");
            entries.push(e);
        }
        let media_type = match fmt {
            Format::Docker => MT_DOCKER_LIST,
            Format::Oci => MT_OCI_INDEX,
        };
        let json = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{media_type}\",\"manifests\":[{}]}}",
            entries.join(",")
        );
        self.manifest(&json, media_type)
    }

    /// An OCI artifact (an SBOM) whose `subject` is `subject`; no tag.
    fn referrer(&mut self, subject: &Desc) -> Result<Desc> {
        let payload = format!(
            "{{\"sbom\":\"{}\",\"nonce\":\"{:016x}\"}}",
            subject.digest,
            self.rng.next()
        );
        let layer = self.store(payload.as_bytes(), MT_SBOM)?;
        let empty = self.pool.empty_config.clone();
        self.link_layer(&empty)?;
        self.link_layer(&layer)?;
        let json = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MT_OCI_MANIFEST}\",\"artifactType\":\"{MT_SBOM}\",\
             \"config\":{},\"layers\":[{}],\"subject\":{}}}",
            empty.json(),
            layer.json(),
            subject.json()
        );
        self.manifest(&json, MT_OCI_MANIFEST)
    }

    /// Up to two shared layers: one from the global pool, one local to
    /// this repository.
    fn pick_shared(&mut self) -> Vec<Desc> {
        let mut shared = Vec::new();
        if self.rng.pct(60) {
            let i = self.rng.below(self.pool.base_layers.len() as u64) as usize;
            shared.push(self.pool.base_layers[i].clone());
        }
        if !self.local_base.is_empty() && self.rng.pct(40) {
            let i = self.rng.below(self.local_base.len() as u64) as usize;
            shared.push(self.local_base[i].clone());
        }
        shared
    }

    fn tag(&mut self, tag: String, d: &Digest) {
        self.tags.entry(tag).or_default().push(*d);
    }

    /// Writes `current/link` and the `index/` of every tag.
    fn write_tags(&mut self) -> Result<()> {
        let tags = std::mem::take(&mut self.tags);
        for (tag, history) in &tags {
            let mut seen = HashSet::new();
            for d in history {
                if seen.insert(*d) {
                    let t = self.time();
                    // The entry is a directory holding `link`, as the registry writes it.
                    let entry = paths::tag_index_entry(self.repo, tag, d) + "/link";
                    self.w.link(&entry, d, t)?;
                }
            }
            let current = history.last().expect("a tag has a manifest");
            let t = self.time();
            self.w.link(&paths::tag_current(self.repo, tag), current, t)?;
        }
        self.w.stats.tags.fetch_add(tags.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn format(&mut self) -> Format {
        if self.rng.pct(50) {
            Format::Docker
        } else {
            Format::Oci
        }
    }

    /// A tag for a new push: a new name, or (one in four) an existing tag,
    /// which then keeps its old manifests as untagged revisions.
    fn next_tag(&mut self, n: &mut u64) -> String {
        if !self.tags.is_empty() && self.rng.pct(25) {
            let i = self.rng.below(self.tags.len() as u64) as usize;
            return self.tags.keys().nth(i).expect("in range").clone();
        }
        *n += 1;
        match *n {
            1 => "latest".to_owned(),
            n => format!("v{}.{}.{}", n / 100, n / 10 % 10, n % 10),
        }
    }

    /// An ordinary repository of about `budget` blobs, with an upload in
    /// progress if `upload`.
    fn ordinary(mut self, budget: u64, upload: bool) -> Result<()> {
        for _ in 0..1 + self.rng.below(2) {
            let fmt = self.format();
            let l = self.unique_layer(fmt)?;
            self.local_base.push(l);
        }
        let mut names = 0;
        while self.stored < budget {
            let fmt = self.format();
            let roll = self.rng.below(100);
            if roll < 10 {
                let d = self.index(fmt)?;
                let tag = self.next_tag(&mut names);
                self.tag(tag, &d.digest);
            } else if roll < 13 && !self.subjects.is_empty() {
                let i = self.rng.below(self.subjects.len() as u64) as usize;
                let subject = self.subjects[i].clone();
                self.referrer(&subject)?;
            } else {
                let shared = self.pick_shared();
                let unique = 1 + self.rng.below(3);
                let d = self.image(fmt, "amd64", &shared, unique)?;
                // One in ten pushed by digest only.
                if roll >= 90 {
                    continue;
                }
                let tag = self.next_tag(&mut names);
                self.tag(tag, &d.digest);
                if self.rng.pct(5) {
                    let alias = format!("alias-{names}");
                    self.tag(alias, &d.digest);
                }
                self.subjects.push(d);
            }
        }
        self.write_tags()?;
        if upload {
            self.upload()?;
        }
        Ok(())
    }

    /// `bench/many-tags`: `n` tags `t00000`…; every tenth tag was overwritten
    /// once (its first image is an untagged revision), every twentieth is an
    /// alias of the one before.
    fn many_tags(mut self, n: u64) -> Result<()> {
        let mut prev: Option<Digest> = None;
        for i in 0..n {
            let tag = format!("t{i:05}");
            if let (Some(d), true) = (prev, i % 20 == 19) {
                self.tag(tag, &d);
                continue;
            }
            let pushes = if i % 10 == 0 { 2 } else { 1 };
            for _ in 0..pushes {
                let fmt = self.format();
                let shared = if self.rng.pct(80) {
                    let j = self.rng.below(self.pool.base_layers.len() as u64) as usize;
                    vec![self.pool.base_layers[j].clone()]
                } else {
                    Vec::new()
                };
                let d = self.image(fmt, "amd64", &shared, 1)?;
                self.tag(tag.clone(), &d.digest);
                prev = Some(d.digest);
            }
        }
        self.write_tags()
    }

    /// An upload in progress: empty data, the initial sha256 hash state, and
    /// `startedat` either a day or a month ago.
    fn upload(&mut self) -> Result<()> {
        let id = {
            let a = self.rng.next();
            let b = self.rng.next();
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                (b >> 48) & 0xfff,
                b & 0xffff_ffff_ffff
            )
        };
        let age = if self.rng.pct(50) { DAY } else { 30 * DAY };
        let started = self.w.now - Duration::from_secs(age);
        let dir = paths::upload_dir(self.repo, &id);
        let stamp = humantime::format_rfc3339_seconds(started).to_string();
        self.w
            .file(&format!("{dir}/startedat"), stamp.as_bytes(), started)?;
        self.w.file(&format!("{dir}/data"), b"", started)?;
        self.w.file(
            &format!("{dir}/hashstates/sha256/0"),
            &initial_sha256_state(),
            started,
        )?;
        self.w.stats.uploads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn layer_type(fmt: Format) -> &'static str {
    match fmt {
        Format::Docker => MT_DOCKER_LAYER,
        Format::Oci => MT_OCI_LAYER,
    }
}

fn config_type(fmt: Format) -> &'static str {
    match fmt {
        Format::Docker => MT_DOCKER_CONFIG,
        Format::Oci => MT_OCI_CONFIG,
    }
}

fn manifest_type(fmt: Format) -> &'static str {
    match fmt {
        Format::Docker => MT_DOCKER_MANIFEST,
        Format::Oci => MT_OCI_MANIFEST,
    }
}

/// Go's `sha256.digest.MarshalBinary()` of a fresh hash, as the registry
/// stores it in `hashstates/sha256/0`: magic, the eight initial words, an
/// empty block, a zero length.
fn initial_sha256_state() -> Vec<u8> {
    const H0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let mut v = b"sha\x03".to_vec();
    for h in H0 {
        v.extend_from_slice(&h.to_be_bytes());
    }
    v.extend_from_slice(&[0; 64]);
    v.extend_from_slice(&0u64.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use reg_core::layout::Store;
    use reg_core::manifest;

    fn gen(dir: &Path, blobs: u64, seed: u64) -> Stats {
        prepare_dir(dir, false).unwrap();
        generate(dir, &Params::new(blobs, seed, None)).unwrap()
    }

    /// Every blob hashes right (reg-ls --verify), every link names a stored
    /// blob, every tag a revision of its repository, and everything a
    /// revision's manifest references is served by that repository: a
    /// revision (children, subject) or a `_layers` link (config, layers)
    /// to a blob of the stated size.
    #[test]
    fn tree_is_consistent_and_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = gen(tmp.path(), 1500, 7);
        let blobs = stats.blobs.load(Ordering::Relaxed);
        assert!((1400..1700).contains(&blobs), "{blobs} blobs for --blobs 1500");

        let store = Store::fs(tmp.path().join("docker/registry/v2"));
        let msgs = reg_core::messages::Messages::new("test", true);
        let mut out = reg_core::output::Out::new(Vec::new(), reg_core::output::Format::Json);
        let cfg = reg_core::ls::Config {
            verify: true,
            ..Default::default()
        };
        let ls = reg_core::ls::list(&store, &cfg, &mut out, &msgs).unwrap();
        assert_eq!(msgs.errors(), 0);
        assert_eq!(ls.corrupt, 0);
        assert_eq!(ls.blobs, blobs);
        assert_eq!(ls.tags, stats.tags.load(Ordering::Relaxed));
        assert_eq!(ls.revisions, stats.revisions.load(Ordering::Relaxed));
        assert_eq!(ls.layer_links, stats.layer_links.load(Ordering::Relaxed));
        assert_eq!(ls.uploads, stats.uploads.load(Ordering::Relaxed));
        assert!(ls.repos >= 6, "{} repos", ls.repos);
        assert!(ls.uploads > 0);

        let (mut indexes, mut referrers, mut untagged) = (0, 0, 0);
        for repo in store.repositories().items {
            let revs: HashSet<Digest> = store.revisions(&repo).items.iter().map(|r| r.digest).collect();
            let layers: HashSet<Digest> = store.layer_links(&repo).items.iter().map(|l| l.digest).collect();
            let tagged: HashSet<Digest> = store.tags(&repo).items.iter().map(|t| t.digest).collect();
            assert!(tagged.is_subset(&revs), "{repo}: a tag names no revision");
            untagged += revs.difference(&tagged).count();
            for l in &layers {
                assert!(
                    store.blob_meta(l).unwrap().is_some(),
                    "{repo}: _layers link {l} to no blob"
                );
            }
            for d in &revs {
                let bytes = store
                    .read_blob(d, 1 << 20)
                    .unwrap()
                    .expect("revision blob stored");
                let m = manifest::parse(&bytes).unwrap_or_else(|e| panic!("{repo} {d}: {e}"));
                indexes += usize::from(m.kind.is_index());
                referrers += usize::from(!m.subjects.is_empty());
                for c in m.children.iter().chain(m.subjects.iter()) {
                    assert!(
                        revs.contains(&c.digest),
                        "{repo} {d}: child {} no revision",
                        c.digest
                    );
                }
                for b in m.configs.iter().chain(m.layers.iter()) {
                    assert!(
                        layers.contains(&b.digest),
                        "{repo} {d}: {} has no _layers link",
                        b.digest
                    );
                    let meta = store.blob_meta(&b.digest).unwrap().expect("blob stored");
                    assert_eq!(Some(meta.size), b.size, "{repo} {d}: size of {}", b.digest);
                }
            }
        }
        assert!(
            indexes > 0 && referrers > 0 && untagged > 0,
            "{indexes} {referrers} {untagged}"
        );
        let many = store.tags(MANY_TAGS_REPO).items.len() as u64;
        assert_eq!(many, Params::new(1500, 7, None).many_tags);
    }

    #[test]
    fn same_seed_same_tree() {
        let list = |seed| {
            let tmp = tempfile::tempdir().unwrap();
            gen(tmp.path(), 300, seed);
            let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(tmp.path())
                .into_iter()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e.path().strip_prefix(tmp.path()).unwrap().display().to_string();
                    // `startedat` holds a time relative to now: compare names only.
                    let content = if rel.ends_with("/startedat") {
                        Vec::new()
                    } else {
                        fs::read(e.path()).unwrap()
                    };
                    (rel, content)
                })
                .collect();
            files.sort();
            files
        };
        let a = list(3);
        assert_eq!(a, list(3));
        assert_ne!(a, list(4));
    }

    #[test]
    fn refuses_foreign_dir_even_with_force() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("precious"), b"x").unwrap();
        assert!(prepare_dir(tmp.path(), false).is_err());
        assert!(prepare_dir(tmp.path(), true).is_err());
        assert!(tmp.path().join("precious").exists());
        // A generated tree is replaced with --force.
        let tree = tmp.path().join("tree");
        gen(&tree, 100, 1);
        assert!(prepare_dir(&tree, false).is_err());
        prepare_dir(&tree, true).unwrap();
        assert_eq!(fs::read_dir(&tree).unwrap().count(), 1, "only the partial marker");
    }

    #[test]
    fn cli_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn names_are_valid() {
        for i in 0..200 {
            reg_core::layout::check_repo_name(&repo_name(i)).unwrap();
        }
        reg_core::layout::check_repo_name(MANY_TAGS_REPO).unwrap();
        assert_eq!(repo_name(4), "org0/app1/sub");
        assert_eq!(initial_sha256_state().len(), 108);
    }
}
