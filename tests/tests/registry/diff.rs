//! The differential test against the real registry (issue 16): a seeded
//! generator of odd-but-valid manifests (`reg_tests::diff::gen` documents
//! the variants and their weights) pushes a few hundred images through
//! Debian's `docker-registry` 2.8.2 with raw HTTP, with garbage around them
//! (overwritten tags, untagged and deleted manifests, loose blobs).
//! Whatever the registry refuses is counted by reason and left alone.
//! Whatever it accepts must fetch completely before any collection (else the
//! generator's model of the registry is wrong and the test fails as such),
//! and again after `reg-refs ROOT | reg-orphans ROOT | reg-rm ROOT` and after
//! `reg-refs --tagged-only ROOT | …`, each run on its own copy of the tree
//! aged by three days, with a registry started on that copy: every manifest,
//! child, config and layer by the digest its manifest names, and with skopeo
//! for the images skopeo pulled before. Each collection must also delete
//! the garbage nothing can reach (so that deleting nothing cannot pass).
//!
//! `REG_DIFF_SEED` (default 1) and `REG_DIFF_IMAGES` (default 300) choose
//! the run; `REG_DIFF_SKOPEO` (default 400) caps the images also pulled
//! with skopeo (a process each; spread evenly over the run). To tell
//! causes apart, `REG_DIFF_SKIP` (a comma list of `names`, `sha384`,
//! `sha512`, `foreign`, `deep`, `fold`, `dup`, `desc`, `junk`) generates
//! without those variants, `REG_DIFF_EXCLUDE` (a comma list of feature
//! names or parts of them, as the report prints them) leaves out the images
//! that have one, and `REG_DIFF_ONLY` (image numbers, as a failure names
//! them) reruns just those. `REG_DIFF_TMPDIR` says where the registry's
//! root and the copies go (default `/dev/shm` when writable). A failure
//! names the seed and the command that reruns it, each broken image's
//! variant in words, what no longer fetches and where its link and data
//! went, the tools' stderr with their messages counted by kind and the
//! features of the manifests they named; `REG_DIFF_KEEP=1` keeps the
//! collected trees.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use reg_tests::diff::fetch::{fetch_case, short};
use reg_tests::diff::gen::digest_of;
use reg_tests::diff::par::par_map;
use reg_tests::diff::push::{push_plan, Outcome, Pushed};
use reg_tests::diff::{Case, Kind, Plan, Skip};
use reg_tests::tree::{age_tree, copy_tree, THREE_DAYS};
use reg_tests::{registry_programs_available, skopeo, Registry, Run, Tool};

const DEFAULT_SEED: u64 = 1;
const DEFAULT_IMAGES: usize = 300;
/// Images pulled with skopeo at most: all of a default run's.
const DEFAULT_SKOPEO: usize = 400;
/// Requests and skopeo pulls at once: the registry spends its time
/// writing files, not computing.
const THREADS: usize = 6;

/// Where the registry's root and the copies go: `REG_DIFF_TMPDIR`, else
/// `/dev/shm` when it is writable and has room for `images` (the root and
/// one copy at a time take about 0.15 MiB an image; it asks for 1 MiB an
/// image plus 256 MiB, so a container's default 64 MiB is not used), else
/// the usual temp dir. The registry writes several files per request: on
/// this suite's virtual disk a push took three times as long.
fn scratch(images: usize) -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("REG_DIFF_TMPDIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let shm = Path::new("/dev/shm");
    let wanted_kib = 256 * 1024 + images as u64 * 1024;
    let writable = tempfile::Builder::new()
        .prefix("reg-tests-probe-")
        .tempdir_in(shm)
        .is_ok();
    if writable && available_kib(shm).is_some_and(|kib| kib >= wanted_kib) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// Free space under `path` in KiB, by `df -Pk` (`None` if it cannot tell).
fn available_kib(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Filesystem 1024-blocks Used Available Capacity Mounted-on
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// The run's parameters, from the environment.
struct Settings {
    seed: u64,
    images: usize,
    skip: Skip,
    skip_text: String,
    exclude: Vec<String>,
    /// At most this many images pulled with skopeo (`REG_DIFF_SKOPEO`).
    skopeo_max: usize,
    /// Only these images (`REG_DIFF_ONLY`), if any.
    only: BTreeSet<usize>,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let seed = var("REG_DIFF_SEED").map_or(DEFAULT_SEED, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("REG_DIFF_SEED={v}: {e}"))
        });
        let images = var("REG_DIFF_IMAGES").map_or(DEFAULT_IMAGES, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("REG_DIFF_IMAGES={v}: {e}"))
        });
        let skip_text = var("REG_DIFF_SKIP").unwrap_or_default();
        let skip = Skip::parse(&skip_text).unwrap_or_else(|e| panic!("REG_DIFF_SKIP: {e}"));
        let exclude = var("REG_DIFF_EXCLUDE")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let skopeo_max = var("REG_DIFF_SKOPEO").map_or(DEFAULT_SKOPEO, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("REG_DIFF_SKOPEO={v}: {e}"))
        });
        let only = var("REG_DIFF_ONLY")
            .map(|v| {
                v.split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("REG_DIFF_ONLY={v}: {e}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Settings {
            seed,
            images,
            skip,
            skip_text,
            exclude,
            skopeo_max,
            only,
        }
    }

    /// The command that runs exactly this again.
    fn repro(&self) -> String {
        let mut skip = if self.skip_text.is_empty() {
            String::new()
        } else {
            format!(" REG_DIFF_SKIP={}", self.skip_text)
        };
        if !self.exclude.is_empty() {
            skip.push_str(&format!(" REG_DIFF_EXCLUDE='{}'", self.exclude.join(",")));
        }
        if !self.only.is_empty() {
            let only: Vec<String> = self.only.iter().map(usize::to_string).collect();
            skip.push_str(&format!(" REG_DIFF_ONLY={}", only.join(",")));
        }
        if self.skopeo_max != DEFAULT_SKOPEO {
            skip.push_str(&format!(" REG_DIFF_SKOPEO={}", self.skopeo_max));
        }
        format!(
            "REG_DIFF_SEED={} REG_DIFF_IMAGES={}{skip} cargo test -p reg-tests --test registry -- diff_ --nocapture",
            self.seed, self.images
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Default,
    TaggedOnly,
}

impl Mode {
    fn pipeline(self) -> &'static str {
        match self {
            Mode::Default => "reg-refs ROOT | reg-orphans ROOT | reg-rm ROOT",
            Mode::TaggedOnly => "reg-refs --tagged-only ROOT | reg-orphans ROOT | reg-rm ROOT",
        }
    }
}

/// Whether case `n` must still be served after a collection in `mode`.
fn live(plan: &Plan, pushed: &Pushed, mode: Mode, n: usize) -> bool {
    let case = &plan.cases[n];
    if !pushed.outcomes[n].accepted() {
        return false;
    }
    match case.kind {
        Kind::Tagged => true,
        Kind::Deleted => false,
        Kind::Untagged => mode == Mode::Default,
        // Still tagged when the registry refused the image meant to overwrite it.
        Kind::Overwritten { by } => mode == Mode::Default || !pushed.outcomes[by].accepted(),
        Kind::Referrer { subject } => mode == Mode::Default || live(plan, pushed, mode, subject),
    }
}

/// The sha256 digests of blob data that nothing live in `mode` can reach
/// and that a collection must therefore delete: the stored blobs of
/// garbage cases and the loose sha256 blobs, minus everything any other
/// case (refused ones included) stores.
/// (Digest → what it belongs to, in words.)
fn must_delete(plan: &Plan, pushed: &Pushed, mode: Mode) -> BTreeMap<String, String> {
    let mut garbage = BTreeMap::new();
    let mut keep = BTreeSet::new();
    for c in &plan.cases {
        let mut stored = BTreeSet::new();
        c.top.stored_sha256(&mut stored);
        if pushed.outcomes[c.n].accepted() && !live(plan, pushed, mode, c.n) {
            for d in stored {
                garbage.entry(d).or_insert_with(|| c.describe());
            }
        } else {
            keep.extend(stored);
        }
    }
    for (l, ok) in plan.loose.iter().zip(&pushed.loose) {
        if *ok && l.digest.starts_with("sha256:") {
            garbage.insert(l.digest.clone(), format!("a loose blob in {}", l.repo));
        }
    }
    garbage.retain(|d, _| !keep.contains(d));
    garbage
}

/// The three tools on `root`, fed one into the next as a shell pipeline
/// would (each runs whatever the previous one's status).
fn collect(root: &Path, mode: Mode) -> Vec<Run> {
    let limit = Duration::from_secs(300);
    let mut refs = Tool::new("reg-refs").timeout(limit);
    if mode == Mode::TaggedOnly {
        refs = refs.arg("--tagged-only");
    }
    let refs = refs.arg(root).run();
    let orphans = Tool::new("reg-orphans")
        .timeout(limit)
        .arg(root)
        .stdin(&refs.stdout)
        .run();
    let rm = Tool::new("reg-rm")
        .timeout(limit)
        .arg(root)
        .stdin(&orphans.stdout)
        .run();
    vec![refs, orphans, rm]
}

/// Where a digest's links and data are in the tree under `v2`, for
/// failure messages: the repository's `_layers` link (and revision link,
/// if any) and what it holds, and whether the data file is there.
fn trace(v2: &Path, repo: &str, digest: &str) -> String {
    let Some((alg, hex)) = digest.split_once(':') else {
        return format!("{digest}: not a digest");
    };
    let short_hex = |h: &str| format!("{}…", &h[..h.len().min(12)]);
    let data = |alg: &str, hex: &str| {
        let p = v2
            .join("blobs")
            .join(alg)
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data");
        let state = if p.is_file() { "present" } else { "gone" };
        format!(
            "blobs/{alg}/{}/{}/data {state}",
            &hex[..2.min(hex.len())],
            short_hex(hex)
        )
    };
    let mut parts = Vec::new();
    for kind in ["_layers", "_manifests/revisions"] {
        let rel = format!("{kind}/{alg}/{}/link", short_hex(hex));
        let link = v2
            .join("repositories")
            .join(repo)
            .join(kind)
            .join(alg)
            .join(hex)
            .join("link");
        match std::fs::read_to_string(&link) {
            Ok(target) => match target.split_once(':') {
                Some((a, h)) if h.len() >= 2 => {
                    parts.push(format!("{rel} holds {}, {}", short(&target), data(a, h)))
                }
                _ => parts.push(format!("{rel} holds {target:?}")),
            },
            Err(_) if kind == "_layers" => parts.push(format!("{rel} gone")),
            Err(_) => {}
        }
    }
    if alg == "sha256" {
        parts.push(data(alg, hex));
    }
    parts.join("; ")
}

/// What one collection did and what broke.
struct ModeReport {
    mode: Mode,
    runs: Vec<Run>,
    deleted_blobs: BTreeSet<String>,
    deleted_records: usize,
    expected_live: usize,
    /// case → what no longer fetches (with traces).
    broken: BTreeMap<usize, Vec<String>>,
    /// case → skopeo's error.
    skopeo_broken: BTreeMap<usize, String>,
    /// Garbage digests still stored, with what they belong to.
    garbage_kept: Vec<(String, String)>,
    must_delete: usize,
    alias_loose_deleted: (usize, usize),
    kept_at: Option<std::path::PathBuf>,
    elapsed: Duration,
}

impl ModeReport {
    fn pipeline_failed(&self) -> bool {
        self.runs.iter().any(|r| !r.status.success())
    }

    fn failed(&self) -> bool {
        self.pipeline_failed()
            || !self.broken.is_empty()
            || !self.skopeo_broken.is_empty()
            || !self.garbage_kept.is_empty()
            || self.deleted_blobs.is_empty()
    }
}

fn run_mode(
    reg: &Registry,
    plan: &Plan,
    pushed: &Pushed,
    skopeo_ok: &BTreeSet<usize>,
    mode: Mode,
) -> ModeReport {
    let started = Instant::now();
    let copy = tempfile::Builder::new()
        .prefix("reg-tests-diff-")
        .tempdir_in(scratch(plan.images))
        .expect("a temp dir");
    let root = copy.path().join("root");
    copy_tree(reg.root(), &root);
    age_tree(&root, THREE_DAYS);
    let runs = collect(&root, mode);
    let rm_records: Vec<serde_json::Value> = runs[2]
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let deleted: Vec<&serde_json::Value> = rm_records.iter().filter(|r| r["action"] == "deleted").collect();
    let deleted_blobs: BTreeSet<String> = deleted
        .iter()
        .filter(|r| r["kind"] == "blob")
        .filter_map(|r| r["digest"].as_str().map(str::to_owned))
        .collect();

    let v2 = root.join("docker/registry/v2");
    let served =
        Registry::start_on(&root).unwrap_or_else(|e| panic!("starting the registry on the copy: {e:#}"));
    let api = served.api();
    let live_cases: Vec<&Case> = plan
        .cases
        .iter()
        .filter(|c| live(plan, pushed, mode, c.n))
        .collect();
    let expected_live = live_cases.len();
    let fetched = par_map(&live_cases, THREADS, |c| fetch_case(&api, c));
    let mut broken = BTreeMap::new();
    for (c, problems) in live_cases.iter().zip(fetched) {
        if problems.is_empty() {
            continue;
        }
        let traced = problems
            .into_iter()
            .map(|p| {
                if p.reference.contains(':') {
                    format!("{}\n        tree: {}", p.text, trace(&v2, &c.repo, &p.reference))
                } else {
                    p.text
                }
            })
            .collect();
        broken.insert(c.n, traced);
    }
    let pull: Vec<&Case> = live_cases
        .into_iter()
        .filter(|c| skopeo_ok.contains(&c.n))
        .collect();
    let pulled = par_map(&pull, THREADS, |c| {
        skopeo::pull_all_dir(&served.image_ref(&c.reference()))
    });
    let skopeo_broken: BTreeMap<usize, String> = pull
        .iter()
        .zip(pulled)
        .filter_map(|(c, r)| r.err().map(|e| (c.n, format!("{e:#}"))))
        .collect();
    drop(served);

    let must = must_delete(plan, pushed, mode);
    let garbage_kept: Vec<(String, String)> = must
        .iter()
        .filter(|(d, _)| !deleted_blobs.contains(*d))
        .map(|(d, owner)| (d.clone(), owner.clone()))
        .collect();
    let alias: Vec<String> = plan
        .loose
        .iter()
        .zip(&pushed.loose)
        .filter(|(l, ok)| **ok && !l.digest.starts_with("sha256:"))
        .map(|(l, _)| digest_of("sha256", &l.bytes))
        .collect();
    let alias_deleted = alias.iter().filter(|d| deleted_blobs.contains(*d)).count();

    let mut report = ModeReport {
        mode,
        runs,
        deleted_blobs,
        deleted_records: deleted.len(),
        expected_live,
        broken,
        skopeo_broken,
        garbage_kept,
        must_delete: must.len(),
        alias_loose_deleted: (alias_deleted, alias.len()),
        kept_at: None,
        elapsed: started.elapsed(),
    };
    if report.failed() && std::env::var_os("REG_DIFF_KEEP").is_some() {
        report.kept_at = Some(copy.keep());
    }
    report
}

/// Counts by feature: cases, accepted, broken in each mode.
fn feature_table(plan: &Plan, pushed: &Pushed, modes: &[ModeReport]) -> String {
    #[derive(Default)]
    struct Row {
        cases: usize,
        accepted: usize,
        broken: [usize; 2],
    }
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for c in &plan.cases {
        for f in &c.features {
            let row = rows.entry(f).or_default();
            row.cases += 1;
            if pushed.outcomes[c.n].accepted() {
                row.accepted += 1;
            }
            for (i, m) in modes.iter().enumerate() {
                if m.broken.contains_key(&c.n) || m.skopeo_broken.contains_key(&c.n) {
                    row.broken[i] += 1;
                }
            }
        }
    }
    let mut out = String::from("  feature: cases, accepted, broken after default GC, after tagged-only GC\n");
    for (f, r) in rows {
        let mark = if r.broken.iter().any(|b| *b > 0) {
            "  <-"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    {f}: {}, {}, {}, {}{mark}",
            r.cases, r.accepted, r.broken[0], r.broken[1]
        );
    }
    out
}

fn refusals(plan: &Plan, pushed: &Pushed) -> String {
    let mut by: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
    for c in &plan.cases {
        if let Outcome::Refused { reason } = &pushed.outcomes[c.n] {
            by.entry(reason).or_default().push(c);
        }
    }
    let mut out = String::new();
    for (reason, cases) in by {
        let _ = writeln!(out, "    {}x {reason}", cases.len());
        for c in cases.iter().take(2) {
            let _ = writeln!(out, "        e.g. {}", c.describe());
        }
    }
    out
}

fn mode_text(plan: &Plan, m: &ModeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "after `{}` ({:.1?}): {} records deleted ({} blobs); {} of {} live cases broken, {} no longer pulled by skopeo; garbage that must go: {} ({} kept); loose alias-only blobs deleted: {} of {}",
        m.mode.pipeline(),
        m.elapsed,
        m.deleted_records,
        m.deleted_blobs.len(),
        m.broken.len(),
        m.expected_live,
        m.skopeo_broken.len(),
        m.must_delete,
        m.garbage_kept.len(),
        m.alias_loose_deleted.0,
        m.alias_loose_deleted.1,
    );
    for r in &m.runs {
        let _ = writeln!(out, "    `{}` exited {}", r.cmd, r.status);
        if !r.status.success() {
            let err: String = r.stderr.chars().take(3000).collect();
            let _ = writeln!(out, "      stderr:\n{}", indent(&err, "        "));
            if r.stderr.lines().count() > 1 {
                out.push_str(&tool_errors(plan, r));
            }
        } else {
            let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
            if let Some(first) = warnings.first() {
                let first: String = first.chars().take(300).collect();
                let _ = writeln!(out, "      {} warnings, the first: {first}", warnings.len());
                if m.failed() {
                    out.push_str(&tool_errors(plan, r));
                }
            }
        }
    }
    for (n, problems) in &m.broken {
        let _ = writeln!(out, "  BROKEN {}", plan.cases[*n].describe());
        for p in problems {
            let _ = writeln!(out, "      {p}");
        }
    }
    for (n, e) in &m.skopeo_broken {
        let _ = writeln!(
            out,
            "  SKOPEO NO LONGER PULLS {}\n      {}",
            plan.cases[*n].describe(),
            e.lines().last().unwrap_or_default()
        );
    }
    for (d, owner) in m.garbage_kept.iter().take(20) {
        let _ = writeln!(out, "  GARBAGE KEPT {d} of {owner}");
    }
    if m.garbage_kept.len() > 20 {
        let _ = writeln!(
            out,
            "  … and {} more garbage blobs kept",
            m.garbage_kept.len() - 20
        );
    }
    match &m.kept_at {
        Some(p) => {
            let _ = writeln!(out, "  the collected copy is kept at {}", p.display());
        }
        None if m.failed() => {
            let _ = writeln!(out, "  (REG_DIFF_KEEP=1 keeps the collected copy)");
        }
        None => {}
    }
    out
}

/// `s` with digests, hex runs and numbers replaced, so that messages of
/// one kind count together.
fn normalize(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let hex = w.chars().filter(char::is_ascii_hexdigit).count();
            if hex >= 20 {
                "<digest>".to_owned()
            } else {
                // A number standing alone (after a space, `[`, `(`, `=` or
                // `:`, before anything but a letter): `sha256`, `[a-z0-9]`
                // and `1e400` stay.
                let chars: Vec<char> = w.chars().collect();
                let mut out = String::new();
                let mut i = 0;
                while i < chars.len() {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i > start {
                        let before = start.checked_sub(1).map(|p| chars[p]);
                        let after = chars.get(i).copied();
                        let alone = before.is_none_or(|p| matches!(p, '[' | '(' | '=' | ':'))
                            && after.is_none_or(|a| !a.is_ascii_alphanumeric());
                        if alone {
                            out.push('N');
                        } else {
                            out.extend(&chars[start..i]);
                        }
                    } else {
                        out.push(chars[i]);
                        i += 1;
                    }
                }
                out
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn normalize_counts_messages_of_one_kind_together() {
    let d = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        normalize(&format!(
            "manifest has no layers[12].digest at line 3 column 40 {d} sha256 [a-z0-9] 1e400"
        )),
        "manifest has no layers[N].digest at line N column N <digest> sha256 [a-z0-9] 1e400"
    );
}

/// For a tool that failed naming manifests: its messages by kind, and the
/// features of the cases whose manifests it named (what made it stop).
fn tool_errors(plan: &Plan, run: &Run) -> String {
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for c in &plan.cases {
        let mut set = BTreeSet::new();
        c.top.stored_sha256(&mut set);
        for d in set {
            owner.entry(d).or_insert(c.n);
        }
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut named: BTreeSet<usize> = BTreeSet::new();
    for line in run.stderr.lines() {
        let what = line.rsplit("/data: ").next().unwrap_or(line);
        *reasons.entry(normalize(what)).or_default() += 1;
        for (at, _) in line.match_indices("sha256:") {
            if let Some(n) = line.get(at..at + 71).and_then(|d| owner.get(d)) {
                named.insert(*n);
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "      its messages, by kind:");
    for (r, n) in &reasons {
        let r: String = r.chars().take(300).collect();
        let _ = writeln!(out, "        {n}x {r}");
    }
    if !named.is_empty() {
        let mut features: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &named {
            for f in &plan.cases[*n].features {
                *features.entry(f).or_default() += 1;
            }
        }
        let _ = writeln!(
            out,
            "      they name manifests of {} cases; features of those cases (count):",
            named.len()
        );
        let mut by: Vec<(&str, usize)> = features.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let line: Vec<String> = by.iter().map(|(f, n)| format!("{f} {n}")).collect();
        let _ = writeln!(out, "        {}", line.join(", "));
    }
    out
}

fn indent(s: &str, by: &str) -> String {
    s.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn diff_registry_serves_every_accepted_image_after_both_collections() {
    let name = "diff_registry_serves_every_accepted_image_after_both_collections";
    if !registry_programs_available(name) {
        return;
    }
    let s = Settings::from_env();
    let started = Instant::now();
    let mut plan = Plan::generate(s.seed, s.images, &s.skip).excluding(&s.exclude);
    if !s.only.is_empty() {
        plan = plan.only(&s.only);
    }
    let mut reg = Registry::start_in(&scratch(plan.images))
        .unwrap_or_else(|e| panic!("{name}: starting the registry: {e:#}"));
    let api = reg.api();
    let pushed = push_plan(&api, &plan, THREADS).unwrap_or_else(|e| {
        panic!(
            "{name}: pushing: {e:#}\n--- registry log:\n{}",
            reg.log_contents()
        )
    });
    let push_time = started.elapsed();
    eprintln!("{name}: pushed in {push_time:.1?}");

    // Before any collection: what the registry accepted must fetch, or the
    // generator's model of the registry is wrong.
    let live_cases: Vec<&Case> = plan
        .cases
        .iter()
        .filter(|c| live(&plan, &pushed, Mode::Default, c.n))
        .collect();
    let fetched = par_map(&live_cases, THREADS, |c| fetch_case(&api, c));
    let unserved: Vec<String> = live_cases
        .iter()
        .zip(fetched)
        .filter(|(_, problems)| !problems.is_empty())
        .map(|(c, problems)| {
            let lines: Vec<String> = problems.into_iter().map(|p| p.text).collect();
            format!("{}\n      {}", c.describe(), lines.join("\n      "))
        })
        .collect();
    assert!(
        unserved.is_empty(),
        "seed {}: {} accepted cases do not fetch before any collection: the generator's model \
         disagrees with the registry (a bug in the test)\n{}\nrerun: {}",
        s.seed,
        unserved.len(),
        unserved.join("\n"),
        s.repro()
    );
    // skopeo, where it can: what it pulls now it must pull after.
    // skopeo costs a process per image: at most `skopeo_max`, spread evenly.
    let eligible: Vec<&Case> = live_cases.iter().copied().filter(|c| c.skopeo).collect();
    let every = eligible.len().div_ceil(s.skopeo_max.max(1)).max(1);
    let pull: Vec<&Case> = eligible.iter().copied().step_by(every).collect();
    let pulled = par_map(&pull, THREADS, |c| {
        skopeo::pull_all_dir(&reg.image_ref(&c.reference()))
    });
    let mut skopeo_ok = BTreeSet::new();
    let mut skopeo_refused: BTreeMap<String, usize> = BTreeMap::new();
    for (c, r) in pull.iter().zip(pulled) {
        match r {
            Ok(()) => {
                skopeo_ok.insert(c.n);
            }
            Err(e) => {
                let last = format!("{e:#}");
                let last = last.lines().last().unwrap_or_default();
                let msg = last.split_once("msg=").map_or(last, |(_, m)| m);
                let key: String = msg
                    .split_whitespace()
                    .map(|w| if w.contains("docker://") { "<image>" } else { w })
                    .collect::<Vec<_>>()
                    .join(" ");
                *skopeo_refused.entry(normalize(&key)).or_default() += 1;
            }
        }
    }
    let check_time = started.elapsed() - push_time;
    reg.stop().unwrap();

    let modes: Vec<ModeReport> = [Mode::Default, Mode::TaggedOnly]
        .into_iter()
        .map(|m| run_mode(&reg, &plan, &pushed, &skopeo_ok, m))
        .collect();

    let accepted = pushed.outcomes.iter().filter(|o| o.accepted()).count();
    let tagged = plan.cases.iter().filter(|c| c.kind == Kind::Tagged).count();
    let tagged_accepted = plan
        .cases
        .iter()
        .filter(|c| c.kind == Kind::Tagged && pushed.outcomes[c.n].accepted())
        .count();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "differential test, seed {} ({} images{}): {} cases generated ({} tagged, {} referrers, {} overwritten, {} untagged, {} deleted), {} loose blobs; \
         {} accepted ({} tagged), {} refused; {} requests, pushed in {:.1?}, checked in {:.1?}; skopeo pulled {} of the {} images asked ({} could be), before any collection",
        s.seed,
        s.images,
        if s.skip_text.is_empty() && s.exclude.is_empty() {
            String::new()
        } else {
            format!(", without {} and images with {:?}", s.skip_text, s.exclude)
        },
        plan.cases.len(),
        tagged,
        plan.cases.iter().filter(|c| matches!(c.kind, Kind::Referrer { .. })).count(),
        plan.cases
            .iter()
            .filter(|c| matches!(c.kind, Kind::Overwritten { .. }))
            .count(),
        plan.cases.iter().filter(|c| c.kind == Kind::Untagged).count(),
        plan.cases.iter().filter(|c| c.kind == Kind::Deleted).count(),
        plan.loose.len(),
        accepted,
        tagged_accepted,
        plan.cases.len() - accepted,
        pushed.requests,
        push_time,
        check_time,
        skopeo_ok.len(),
        pull.len(),
        eligible.len(),
    );
    let _ = writeln!(report, "  refused, by reason:\n{}", refusals(&plan, &pushed));
    if !skopeo_refused.is_empty() {
        let _ = writeln!(
            report,
            "  skopeo could not pull (before any collection; HTTP checks only):"
        );
        for (k, n) in &skopeo_refused {
            let _ = writeln!(report, "    {n}x {k}");
        }
    }
    for m in &modes {
        report.push_str(&mode_text(&plan, m));
    }
    report.push_str(&feature_table(&plan, &pushed, &modes));
    let _ = writeln!(report, "total {:.1?}; rerun: {}", started.elapsed(), s.repro());

    let failures: Vec<String> = modes
        .iter()
        .filter(|m| m.failed())
        .map(|m| {
            let mut why = Vec::new();
            if m.pipeline_failed() {
                why.push("a tool failed".to_owned());
            }
            if !m.broken.is_empty() {
                why.push(format!("{} accepted images no longer fetch", m.broken.len()));
            }
            if !m.skopeo_broken.is_empty() {
                why.push(format!("{} no longer pull with skopeo", m.skopeo_broken.len()));
            }
            if !m.garbage_kept.is_empty() {
                why.push(format!("{} garbage blobs kept", m.garbage_kept.len()));
            }
            if m.deleted_blobs.is_empty() {
                why.push("no blob deleted".to_owned());
            }
            format!("after `{}`: {}", m.mode.pipeline(), why.join(", "))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "seed {}: {}\n\n{report}",
        s.seed,
        failures.join("; ")
    );
    println!("{report}");
    assert!(
        accepted > 0 && tagged_accepted * 2 > tagged,
        "the registry refused most images:\n{report}"
    );
}
