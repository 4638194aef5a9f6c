//! The same proof as on the filesystem, on object storage: Debian's
//! `docker-registry` with its s3 driver writes the scenario into a bucket
//! of moto's S3 server on 127.0.0.1 and serves the pulls; the tools read
//! and collect that bucket. Their records are the same as on a filesystem
//! copy of the bucket; the default policy frees what the
//! registry's own `garbage-collect --dry-run` lists on the same bucket; after
//! a `--tagged-only` collection every tag, platform and referrer pulls.
//! Faults (a proxy that throttles or drops connections) end in a retry or a
//! clean failure, never in a partial reference list that reg-orphans
//! accepts.

use std::collections::BTreeSet;

use reg_tests::oci::{layer, Content, Image, Platform};
use reg_tests::proxy::{Fault, Kind, Proxy};
use reg_tests::{
    everything_live_pulls, s3_programs_available, Moto, Pushed, Registry, Run, S3Storage, Scenario, Tool,
};

use serde_json::Value;

/// The GETs a tool's summary counts (`…; 57 requests: 40 LIST, 17 GET`).
fn gets(run: &Run) -> usize {
    run.stderr
        .split([';', ','])
        .filter_map(|part| {
            part.trim()
                .strip_suffix(" GET")?
                .rsplit(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// A moto server and a registry on a bucket of it with the scenario pushed;
/// `None` when the test should be skipped.
#[track_caller]
pub(crate) fn s3_scenario(test: &str) -> Option<(Moto, Registry, Pushed)> {
    if !s3_programs_available(test) {
        return None;
    }
    let (moto, reg) = s3_registry(test);
    let pushed = Scenario::push(&reg)
        .unwrap_or_else(|e| panic!("{test}: {e:#}\n--- registry log:\n{}", reg.log_contents()));
    Some((moto, reg, pushed))
}

/// moto on 127.0.0.1 with the bucket `registry`, and the registry's s3
/// driver storing there under `srv/registry`.
pub(crate) fn s3_registry(test: &str) -> (Moto, Registry) {
    let moto = Moto::start().unwrap_or_else(|e| panic!("{test}: starting moto: {e:#}"));
    moto.create_bucket("registry").unwrap();
    let s3 = S3Storage {
        endpoint: moto.endpoint(),
        bucket: "registry".into(),
        root: "srv/registry".into(),
    };
    let reg = Registry::start_s3(s3)
        .unwrap_or_else(|e| panic!("{test}: starting the registry: {e:#}\n{}", moto.log()));
    (moto, reg)
}

/// `tool --config <the registry's config.yml> ARGS` (the s3 section).
fn by_config(name: &str, reg: &Registry, args: &[&str]) -> Tool {
    Tool::new(name).args(args).arg("--config").arg(reg.config_path())
}

/// `AWS_*=… tool ARGS s3://bucket/root`, through `endpoint`.
pub(crate) fn by_url(name: &str, reg: &Registry, endpoint: &str, args: &[&str]) -> Tool {
    let mut t = Tool::new(name)
        .args(args)
        .arg(reg.s3().expect("an s3 registry").url());
    for (k, v) in Moto::env_for(endpoint) {
        t = t.env(k, v);
    }
    t
}

/// Records with the trailer's root left out: everything else is the same
/// on a bucket and on a copy of it (with the objects' times).
pub(crate) fn comparable(run: &Run) -> Vec<Value> {
    run.records()
        .into_iter()
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.remove("root");
            }
            r
        })
        .collect()
}

pub(crate) fn blobs_with(recs: &[Value], action: Option<&str>) -> BTreeSet<String> {
    recs.iter()
        .filter(|r| r["kind"] == "blob" && action.is_none_or(|a| r["action"] == a))
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `NAME ARGS FS_ROOT` on a filesystem copy of the store, fed `stdin`.
pub(crate) fn on_copy(name: &str, args: &[&str], fs_root: &str, stdin: &str) -> Run {
    Tool::new(name).args(args).arg(fs_root).stdin(stdin).run()
}

/// `reg-rm --dry-run --min-age 0s` on the store (`on_store` with those
/// arguments, fed `orphans`) and on its filesystem copy (fed `fs_orphans`):
/// both succeed, with the same records.
pub(crate) fn same_dry_run(
    on_store: impl FnOnce(&[&str]) -> Tool,
    orphans: &Run,
    fs_root: &str,
    fs_orphans: &Run,
) {
    let args = ["--dry-run", "--min-age", "0s"];
    let dry = on_store(&args).stdin(&orphans.stdout).run();
    let fs_dry = on_copy("reg-rm", &args, fs_root, &fs_orphans.stdout);
    assert_eq!(comparable(dry.success()), comparable(fs_dry.success()));
}

/// How the fault tests of object storage reach a store.
pub(crate) struct Store<'a> {
    /// The server's port, for a proxy in front of it.
    pub port: u16,
    /// `name ARGS URL`, the tool on the store through an endpoint.
    pub by_url: &'a dyn Fn(&str, &str, &[&str]) -> Tool,
    /// A proxy's endpoint, for [`Store::by_url`].
    pub endpoint_of: fn(&Proxy) -> String,
    /// The store's URL, which a failure names.
    pub url: &'a str,
}

/// `reg-refs --tagged-only` through proxies in front of `store` that fail
/// listings, against `clean`, its output read directly:
/// - every other listing page and GET throttled at first (`throttled.0`
///   requests of each kind): retried, at least `throttled.1` times, the same
///   list;
/// - the first `cut` listing answers cut half way: each page is asked for
///   again, and the list is the same;
/// - every listing answer cut: a failure naming the store, no trailer.
///
/// Returns the last proxy and that last run, for the test to show that
/// nothing takes the cut list.
pub(crate) fn listing_faults(
    store: &Store,
    clean: &Run,
    throttled: (usize, usize),
    cut: usize,
) -> (Proxy, Run) {
    let refs =
        |proxy: &Proxy, args: &[&str]| (store.by_url)("reg-refs", &(store.endpoint_of)(proxy), args).run();
    let (slow_until, at_least) = throttled;
    let slow = Proxy::start(store.port, move |k, n| match k {
        Kind::List | Kind::Get if n % 2 == 1 && n < slow_until => Fault::SlowDown,
        _ => Fault::Forward,
    })
    .unwrap();
    let run = refs(&slow, &["--tagged-only", "--stats"]);
    run.success().stderr_has("5xx");
    assert!(slow.injected() >= at_least, "{}", slow.injected());
    assert_eq!(comparable(&run), comparable(clean));

    let cut_once = Proxy::start(store.port, move |k, n| match k {
        Kind::List if n <= cut => Fault::CutBody,
        _ => Fault::Forward,
    })
    .unwrap();
    let run = refs(&cut_once, &["--tagged-only"]);
    assert_eq!(cut_once.injected(), cut);
    assert_eq!(comparable(run.success()), comparable(clean));

    let cut_all = Proxy::start(store.port, |k, _| match k {
        Kind::List => Fault::CutBody,
        _ => Fault::Forward,
    })
    .unwrap();
    let run = refs(&cut_all, &["--tagged-only"]);
    run.expect_code(1).no_trailer().stderr_has(store.url);
    (cut_all, run)
}

#[test]
fn s3_same_records_as_on_a_filesystem_copy_registry_gc_agrees_and_everything_pulls() {
    let name = "s3_same_records_as_on_a_filesystem_copy_registry_gc_agrees_and_everything_pulls";
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    // The same objects, as files with the same mtimes.
    let copy = tempfile::Builder::new()
        .prefix("reg-tests-s3-copy-")
        .tempdir()
        .unwrap();
    reg_tests::moto::mirror(reg.s3().unwrap(), &moto.endpoint(), copy.path()).unwrap();
    let fs_root = copy.path().to_str().unwrap().to_string();

    // reg-ls: the same records (times and upload ids aside).
    let ls = by_config("reg-ls", &reg, &["--stats"]).run();
    ls.success().stderr_has(" LIST");
    let fs_ls = Tool::new("reg-ls").arg(&fs_root).run();
    assert_eq!(comparable(&ls), comparable(fs_ls.success()));

    // The default policy frees exactly what the registry's own dry run lists.
    let refs = by_config("reg-refs", &reg, &[]).run();
    refs.success();
    let orphans = by_config("reg-orphans", &reg, &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run();
    orphans.success();
    let gc = reg
        .gc_report(true, false)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", moto.log()));
    assert_eq!(blobs_with(&orphans.records(), None), gc.eligible_blobs);
    let fs_refs = Tool::new("reg-refs").arg(&fs_root).run();
    assert_eq!(comparable(&refs), comparable(fs_refs.success()));

    // With a manifest cache, a second run reads no manifest: one GET less
    // per manifest, the same list.
    let cache = copy.path().join("manifest-cache");
    let cache_arg = cache.to_str().unwrap();
    let first = by_config("reg-refs", &reg, &["--stats", "--manifest-cache", cache_arg]).run();
    first.success().stderr_has(" GET");
    let second = by_config("reg-refs", &reg, &["--stats", "--manifest-cache", cache_arg]).run();
    second.success().stderr_lacks(" GET");
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(comparable(&second), comparable(&refs));

    // On object storage the cache is on by default, under XDG_CACHE_HOME:
    // reg-rm's mark reads what reg-refs read (no GET of a manifest), and
    // --no-manifest-cache reads them all again. The same records each way.
    let home = copy.path().join("xdg-cache");
    let with_home = |t: Tool| t.env("XDG_CACHE_HOME", &home);
    let refs = with_home(by_config("reg-refs", &reg, &["--stats"])).run();
    refs.success().stderr_has(" GET");
    let kept = std::fs::read_dir(home.join("reg-tools/manifests")).map_or(0, |d| d.count());
    assert!(kept > 0, "no manifest kept in the default cache\n{}", refs.stderr);
    let again = with_home(by_config("reg-refs", &reg, &["--stats"])).run();
    again.success().stderr_lacks(" GET");
    assert_eq!(again.stdout, refs.stdout);
    let uncached = with_home(by_config("reg-refs", &reg, &["--stats", "--no-manifest-cache"])).run();
    assert_eq!(gets(uncached.success()), gets(&refs));
    assert_eq!(uncached.stdout, refs.stdout);
    let orphans = by_config("reg-orphans", &reg, &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run();
    let dry = |extra: &[&str]| {
        let mut args = vec!["--dry-run", "--min-age", "0s"];
        args.extend(extra);
        with_home(by_config("reg-rm", &reg, &args))
            .stdin(&orphans.success().stdout)
            .run()
    };
    let (cached_rm, uncached_rm) = (dry(&[]), dry(&["--no-manifest-cache"]));
    assert!(
        gets(cached_rm.success()) < gets(uncached_rm.success()),
        "reg-rm read manifests the cache held:\n{}\n{}",
        cached_rm.stderr,
        uncached_rm.stderr
    );
    assert_eq!(cached_rm.stdout, uncached_rm.stdout);

    // --tagged-only, through s3:// and AWS_* this time: the same lists and
    // the same dry run as on the filesystem.
    let refs = by_url("reg-refs", &reg, &moto.endpoint(), &["--tagged-only", "--stats"]).run();
    refs.success().stderr_has("GET");
    let orphans = by_url("reg-orphans", &reg, &moto.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run();
    orphans.success();
    let fs_refs = Tool::new("reg-refs").args(["--tagged-only", &fs_root]).run();
    let fs_orphans = on_copy(
        "reg-orphans",
        &["--min-age", "0s"],
        &fs_root,
        &fs_refs.success().stdout,
    );
    assert_eq!(comparable(&refs), comparable(&fs_refs));
    assert_eq!(comparable(&orphans), comparable(fs_orphans.success()));
    same_dry_run(
        |args| by_config("reg-rm", &reg, args),
        &orphans,
        &fs_root,
        &fs_orphans,
    );

    // A list made on the filesystem is another root.
    by_config("reg-orphans", &reg, &["--min-age", "0s"])
        .stdin(&fs_refs.stdout)
        .run()
        .expect_code(1)
        .stderr_has("another storage root")
        .stdout_empty();
    // So is the trash.
    by_config(
        "reg-rm",
        &reg,
        &["--min-age", "0s", "--trash", "/tmp/reg-tests-no-trash"],
    )
    .stdin(&orphans.stdout)
    .run()
    .expect_code(1)
    .stderr_has("not supported on object storage");

    // The collection itself: the same records as on the filesystem, the
    // unreachable blobs freed and nothing else.
    let rm = by_config("reg-rm", &reg, &["--min-age", "0s"])
        .stdin(&orphans.stdout)
        .run();
    rm.success().stderr_has("DeleteObjects");
    let fs_rm = on_copy("reg-rm", &["--min-age", "0s"], &fs_root, &fs_orphans.stdout);
    assert_eq!(comparable(&rm), comparable(fs_rm.success()));
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(blobs_with(&rm.records(), Some("deleted")), want);
    let after = by_config("reg-ls", &reg, &["--kind", "blob"]).run();
    assert_eq!(blobs_with(&after.success().records(), None), p.tagged_reachable);
    let fs_after = Tool::new("reg-ls").arg(&fs_root).run();
    assert_eq!(
        comparable(&by_config("reg-ls", &reg, &[]).run()),
        comparable(fs_after.success())
    );

    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
    assert!(!reg.api().catalog().unwrap().contains(&p.deleted.0));
}

/// Throttling and connections dropped mid-listing: a retry, or a clean
/// failure that reg-orphans refuses; never a partial list.
#[test]
fn s3_faults_end_in_a_retry_or_a_clean_failure() {
    let name = "s3_faults_end_in_a_retry_or_a_clean_failure";
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    let clean = by_url("reg-refs", &reg, &moto.endpoint(), &["--tagged-only"]).run();
    clean.success();

    // Every other listing page and GET throttled at first (up to the
    // 40th), at least 10 times; two listing answers cut half way (the first
    // page of each area); then every one: reg-orphans refuses what reg-refs
    // printed.
    let (cut, refs) = listing_faults(
        &Store {
            port: moto.port(),
            by_url: &|name, endpoint, args| by_url(name, &reg, endpoint, args),
            endpoint_of: Proxy::endpoint,
            url: "s3://registry/srv/registry",
        },
        &clean,
        (40, 10),
        2,
    );
    let orphans = by_url("reg-orphans", &reg, &cut.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run();
    orphans.expect_code(1).stdout_empty();
    // reg-orphans itself cannot list either: it fails, printing nothing.
    let orphans = by_url("reg-orphans", &reg, &cut.endpoint(), &["--min-age", "0s"])
        .stdin(&clean.stdout)
        .run();
    orphans.expect_code(1).stdout_empty();

    // The _layers links' DeleteObjects failing key by key (five tries):
    // those records are not printed, an error names every key not
    // deleted, the blobs they link stay, and everything pulls.
    let list = by_url("reg-orphans", &reg, &moto.endpoint(), &["--min-age", "0s"])
        .stdin(&clean.stdout)
        .run();
    list.success();
    let key_errors = Proxy::start(moto.port(), |k, n| match k {
        Kind::DeleteObjects if (2..=6).contains(&n) => Fault::KeyErrors,
        _ => Fault::Forward,
    })
    .unwrap();
    let refs = by_url("reg-refs", &reg, &key_errors.endpoint(), &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &reg, &key_errors.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    list.success();
    let first = by_url("reg-rm", &reg, &key_errors.endpoint(), &["--min-age", "0s"])
        .stdin(&list.stdout)
        .run();
    first.expect_code(1).stderr_has("not deleted: ");
    assert_eq!(key_errors.injected(), 5);
    let recs = first.records();
    assert!(recs.iter().all(|r| r["kind"] != "layer-link"), "{}", first.stdout);
    // Each blob kept for it: its links are named in the errors and stored
    // (unless their repository went whole).
    let kept: BTreeSet<String> = recs
        .iter()
        .filter(|r| r["kind"] == "blob" && r["action"] == "kept")
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!kept.is_empty(), "{}", first.stdout);
    let stored = by_url("reg-ls", &reg, &moto.endpoint(), &["--kind", "layer-link"]).run();
    let linked: BTreeSet<String> = stored
        .success()
        .records()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    for d in &kept {
        let key = format!("/_layers/sha256/{}/link", &d[7..]);
        assert!(first.stderr.contains(&key), "{key} not named:\n{}", first.stderr);
        // deleted/img, with no manifest left, goes whole with its links.
        let in_deleted = format!("repositories/{}/_layers/sha256/{}/link", p.deleted.0, &d[7..]);
        assert!(
            linked.contains(d) || first.stderr.contains(&in_deleted),
            "{d}: its links are gone"
        );
    }
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
    reg.stop().unwrap();

    // Deletes throttled at first: retried, and this run finishes the job.
    let slow_delete = Proxy::start(moto.port(), |k, n| match k {
        Kind::DeleteObjects if n <= 3 => Fault::SlowDown,
        _ => Fault::Forward,
    })
    .unwrap();
    // Through the proxy the root has another endpoint: a list made there.
    let refs = by_url("reg-refs", &reg, &slow_delete.endpoint(), &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &reg, &slow_delete.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    let rm = by_url("reg-rm", &reg, &slow_delete.endpoint(), &["--min-age", "0s"])
        .stdin(&list.success().stdout)
        .run();
    rm.success().stderr_has("DeleteObjects");
    assert_eq!(slow_delete.injected(), 3);
    two_runs_freed_the_garbage(&reg, &moto, &p, &recs, &rm.records());
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
}

/// The blobs two runs printed as deleted are the garbage, and the bucket
/// holds exactly the blobs the tags reach.
fn two_runs_freed_the_garbage(reg: &Registry, moto: &Moto, p: &Pushed, first: &[Value], second: &[Value]) {
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    let freed: BTreeSet<String> = blobs_with(first, Some("deleted"))
        .union(&blobs_with(second, Some("deleted")))
        .cloned()
        .collect();
    assert_eq!(freed, want);
    let stored = by_url("reg-ls", reg, &moto.endpoint(), &["--kind", "blob"]).run();
    assert_eq!(blobs_with(&stored.success().records(), None), p.tagged_reachable);
}

/// Queued deletes sent in the middle of a phase (`REG_RM_FLUSH_WAVE=1`: as
/// soon as a path is queued, as a large bucket's run does every 16,000
/// keys), one of them failing key by key through its five tries: an error
/// names it, no record is printed for it, every record printed as deleted
/// is gone from the bucket, and a second run finishes the job with every
/// image still pulling.
#[test]
fn s3_deletes_sent_mid_phase_print_only_what_went() {
    let name = "s3_deletes_sent_mid_phase_print_only_what_went";
    // The 14th DeleteObjects: with one path a request, one of the blob
    // phase's (after 2 revisions, their tag index entries and 7 links).
    const FAILING: usize = 14;
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    // One wave at a time: a request of the blob phase and its four
    // retries.
    let faults = Proxy::start(moto.port(), |k, n| match k {
        Kind::DeleteObjects if (FAILING..FAILING + 5).contains(&n) => Fault::KeyErrors,
        _ => Fault::Forward,
    })
    .unwrap();
    let ep = faults.endpoint();
    let refs = by_url("reg-refs", &reg, &ep, &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &reg, &ep, &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    // One thread: each path is sent by the worker that queued it, never
    // left to the end of the phase for another's send in progress.
    let first = by_url("reg-rm", &reg, &ep, &["--min-age", "0s", "-j", "1"])
        .env("REG_RM_FLUSH_WAVE", "1")
        .stdin(&list.success().stdout)
        .run();
    first.expect_code(1).stderr_has("not removed: deleted 0 of its");
    assert_eq!(faults.injected(), 5);
    let stored = |reg: &Registry, kind: &str| -> BTreeSet<(String, String)> {
        by_url("reg-ls", reg, &moto.endpoint(), &["--kind", kind])
            .run()
            .success()
            .records()
            .iter()
            .map(|r| {
                let repo = r["repo"].as_str().unwrap_or_default().to_string();
                (repo, r["digest"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let recs = first.records();
    let deleted: Vec<&Value> = recs.iter().filter(|r| r["action"] == "deleted").collect();
    assert!(deleted.len() > 10, "{}", first.stdout);
    // The record that queued a path not removed is not printed: no record
    // printed as deleted names its digest (in its repository).
    let not_removed: Vec<&str> = first
        .stderr
        .lines()
        .filter_map(|l| l.split_once(": not removed: ").map(|(path, _)| path))
        .collect();
    assert!(
        not_removed.iter().any(|p| p.contains("/blobs/sha256/")),
        "a blob's delete failed: {}",
        first.stderr
    );
    for path in &not_removed {
        for r in &deleted {
            let hex = r["digest"].as_str().map_or("", |d| &d[7..]);
            let in_repo = r["repo"]
                .as_str()
                .is_none_or(|repo| path.contains(&format!("/repositories/{repo}/")));
            assert!(
                hex.is_empty() || !path.contains(hex) || !in_repo,
                "{path} was not removed, yet {r} is printed"
            );
        }
    }
    for kind in ["blob", "layer-link", "revision"] {
        let now = stored(&reg, kind);
        for r in deleted.iter().filter(|r| r["kind"] == kind) {
            let repo = r["repo"].as_str().unwrap_or_default().to_string();
            let d = r["digest"].as_str().unwrap().to_string();
            assert!(!now.contains(&(repo, d)), "printed as deleted, still stored: {r}");
        }
    }
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
    reg.stop().unwrap();

    // A second run, sending mid-phase too, finishes the job.
    let refs = by_url("reg-refs", &reg, &moto.endpoint(), &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &reg, &moto.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    let second = by_url("reg-rm", &reg, &moto.endpoint(), &["--min-age", "0s"])
        .env("REG_RM_FLUSH_WAVE", "1")
        .stdin(&list.success().stdout)
        .run();
    second.success();
    two_runs_freed_the_garbage(&reg, &moto, &p, &recs, &second.records());
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
}

/// `s3://bucket/typo`, or a `rootdirectory` one letter off: a prefix with
/// neither `repositories/` nor `blobs/` is an error naming it and what is
/// stored one level up, in every tool; never a registry with nothing in it.
#[test]
fn s3_an_empty_prefix_is_an_error_naming_what_is_one_level_up() {
    let name = "s3_an_empty_prefix_is_an_error_naming_what_is_one_level_up";
    if !s3_programs_available(name) {
        return;
    }
    let moto = Moto::start().unwrap_or_else(|e| panic!("{name}: starting moto: {e:#}"));
    moto.create_bucket("registry").unwrap();
    let v2 = "srv/registry/docker/registry/v2";
    let data = b"a blob";
    let d = reg_core::Digest::sha256_of(data);
    let hex = d.hex();
    for (key, bytes) in [
        (
            format!("{v2}/blobs/sha256/{}/{hex}/data", &hex[..2]),
            data.to_vec(),
        ),
        (
            format!("{v2}/repositories/a/_layers/sha256/{hex}/link"),
            d.to_string().into_bytes(),
        ),
        ("notes.txt".to_string(), b"not a registry".to_vec()),
    ] {
        moto.put_object("registry", &key, &bytes).unwrap();
    }
    let run = |tool: &str, root: &str, stdin: &str| {
        let mut t = Tool::new(tool).arg(root).stdin(stdin);
        for (k, v) in Moto::env_for(&moto.endpoint()) {
            t = t.env(k, v);
        }
        t.run()
    };
    let refs = run("reg-refs", "s3://registry/srv/registry", "");
    refs.success();
    let ls = run("reg-ls", "s3://registry/srv/registry", "");
    assert!(
        ls.success().stdout.contains(r#"{"kind":"repo","repo":"a"}"#),
        "{}",
        ls.stdout
    );
    for (root, up) in [
        (
            "s3://registry/typo",
            "one level up, s3://registry/ holds notes.txt, srv/",
        ),
        (
            "s3://registry/srv/registr",
            "one level up, s3://registry/srv/ holds registry/",
        ),
        (
            "s3://registry/srv/registry/x",
            "s3://registry/srv/registry/ holds docker/",
        ),
    ] {
        for tool in ["reg-ls", "reg-refs", "reg-orphans", "reg-rm"] {
            let stdin = if tool == "reg-orphans" {
                refs.stdout.as_str()
            } else {
                ""
            };
            run(tool, root, stdin)
                .expect_code(1)
                .stderr_has(&format!(
                    "{root}/docker/registry/v2: nothing of a registry is stored here"
                ))
                .stderr_has("no repositories/ and no blobs/")
                .stderr_has(up)
                .stdout_empty();
        }
    }
}

/// Ages on object storage are measured by the server's clock: with this
/// machine's clock a day ahead of moto's, a blob uploaded seconds ago (a
/// push in progress) is still young, so the default pipeline keeps it, and
/// every tool warns about the clock.
#[test]
fn s3_ages_follow_the_servers_clock_not_this_machines() {
    let name = "s3_ages_follow_the_servers_clock_not_this_machines";
    if !s3_programs_available(name) {
        return;
    }
    let moto = Moto::start().unwrap_or_else(|e| panic!("{name}: starting moto: {e:#}"));
    moto.create_bucket("registry").unwrap();
    let v2 = "srv/registry/docker/registry/v2";
    let put = |rel: String, bytes: &[u8]| {
        moto.put_object("registry", &format!("{v2}/{rel}"), bytes)
            .unwrap()
    };
    let blob = |bytes: &[u8]| {
        let d = reg_core::Digest::sha256_of(bytes);
        put(format!("blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex()), bytes);
        d
    };
    let link = |rel: String, d: &reg_core::Digest| put(rel, d.to_string().as_bytes());
    // app:v1, pushed whole; then a layer of the next push, uploaded alone.
    let img = Image::build("app:v1", Platform::linux("amd64"), vec![layer("clock")]);
    for b in img.all_blobs() {
        let d = blob(&b.bytes);
        link(format!("repositories/app/_layers/sha256/{}/link", d.hex()), &d);
    }
    let m = reg_core::Digest::parse(&img.manifest.digest).unwrap();
    link(
        format!("repositories/app/_manifests/revisions/sha256/{}/link", m.hex()),
        &m,
    );
    link(
        format!(
            "repositories/app/_manifests/tags/v1/index/sha256/{}/link",
            m.hex()
        ),
        &m,
    );
    link("repositories/app/_manifests/tags/v1/current/link".into(), &m);
    let fresh = blob(b"a layer uploaded a moment ago");
    link(
        format!("repositories/app/_layers/sha256/{}/link", fresh.hex()),
        &fresh,
    );

    let tool = |name: &str, offset: &str, args: &[&str], stdin: &str| {
        let mut t = Tool::new(name)
            .args(args)
            .arg("s3://registry/srv/registry")
            .stdin(stdin)
            .env("REG_TEST_CLOCK_OFFSET", offset);
        for (k, v) in Moto::env_for(&moto.endpoint()) {
            t = t.env(k, v);
        }
        t.run()
    };
    const AHEAD: &str = "is 1day ahead of the storage server's";
    let refs = tool("reg-refs", "1d", &[], "");
    refs.success().stderr_has(AHEAD);
    let orphans = tool("reg-orphans", "1d", &[], &refs.stdout);
    orphans.success().stderr_has(AHEAD);
    assert!(!orphans.stdout.contains(&fresh.to_string()), "{}", orphans.stdout);
    let rm = tool("reg-rm", "1d", &[], &orphans.stdout);
    rm.success().stderr_has(AHEAD);
    assert!(
        rm.records().iter().all(|r| r["action"] != "deleted"),
        "{}",
        rm.stdout
    );
    // Even named by hand, reg-rm's own guard keeps it.
    let rm = tool("reg-rm", "1d", &[], &format!("{fresh}\n"));
    rm.success();
    assert_eq!(rm.records()[0]["action"], "kept", "{}", rm.stdout);
    let ls = tool("reg-ls", "0s", &["--kind", "blob"], "");
    assert!(ls.success().stdout.contains(&fresh.to_string()));

    // It is garbage all the same: without a grace period it goes. A clock
    // behind the server's is named too.
    let orphans = tool("reg-orphans", "-1d", &["--min-age", "0s"], &refs.stdout);
    orphans
        .success()
        .stderr_has("is 1day behind the storage server's");
    assert!(orphans.stdout.contains(&fresh.to_string()), "{}", orphans.stdout);
    // An exact clock says nothing.
    tool("reg-refs", "0s", &[], "")
        .success()
        .stderr_lacks("storage server's");
}

/// The requests a tool's summary counts (`…; 27 requests: 4 LIST, 23 GET`).
fn requests_in(run: &Run) -> u64 {
    let at = run
        .stderr
        .rfind(" requests")
        .unwrap_or_else(|| panic!("`{}` counted no requests:\n{}", run.cmd, run.stderr));
    let digits: String = run.stderr[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

/// Every request `proxy` forwarded so far.
fn proxied(proxy: &Proxy) -> usize {
    [Kind::List, Kind::Get, Kind::DeleteObjects, Kind::Other]
        .into_iter()
        .map(|k| proxy.seen(k))
        .sum()
}

/// Listings that fit the bucket: on the scenario (a small registry, a
/// listing page per area) the GC's two reading tools together send at most
/// a tenth of the requests of the registry's own `garbage-collect
/// --dry-run` on the same bucket (it lists every "directory" and reads every
/// link file). Both are counted the same way: every request through one
/// forwarding proxy (moto's own log counted differently from one moto
/// release to the next: 222 with 5.2.1, 150 with 5.2.5), both reading the
/// registry's config with the endpoint overridden by
/// `REGISTRY_STORAGE_S3_REGIONENDPOINT`, as the registry allows.
#[test]
fn s3_the_scenario_costs_a_tenth_of_the_registrys_own_gc() {
    let name = "s3_the_scenario_costs_a_tenth_of_the_registrys_own_gc";
    let Some((moto, mut reg, _)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    let proxy = Proxy::start(moto.port(), |_, _| Fault::Forward).unwrap();
    let endpoint = proxy.endpoint();
    let over = [("REGISTRY_STORAGE_S3_REGIONENDPOINT", endpoint.as_str())];
    let gc_requests = |delete_untagged: bool| {
        let before = proxied(&proxy);
        let gc = reg.garbage_collect_env(true, delete_untagged, &over).unwrap();
        assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
        proxied(&proxy) - before
    };
    let (default, theirs) = (gc_requests(false), gc_requests(true));
    let before = proxied(&proxy);
    let through = |t: Tool| t.env(over[0].0, over[0].1);
    let refs = through(by_config("reg-refs", &reg, &["--tagged-only", "--stats"])).run();
    refs.success();
    let orphans = through(by_config("reg-orphans", &reg, &["--stats", "--min-age", "0s"]))
        .stdin(&refs.stdout)
        .run();
    orphans.success();
    let ours = proxied(&proxy) - before;
    // What the tools count of themselves is what went through the proxy.
    assert_eq!(ours as u64, requests_in(&refs) + requests_in(&orphans));
    eprintln!(
        "{name}: ours {ours} ({} | {}), the registry's {theirs} with --delete-untagged, {default} without",
        refs.stderr.trim(),
        orphans.stderr.trim()
    );
    assert!(
        ours > 0 && ours * 10 <= theirs,
        "ours {ours}, the registry's {theirs}"
    );
    // reg-rm's dry run lists the bucket once, as reg-orphans does: it
    // removes nothing, so it takes no second look (a real run lists again
    // before each; issue 18).
    let rm = through(by_config("reg-rm", &reg, &["--dry-run", "--min-age", "0s"]))
        .stdin(&orphans.stdout)
        .run();
    assert!(rm.success().stdout.contains("would-delete"), "{}", rm.stdout);
    assert!(
        lists(&rm) <= lists(&orphans),
        "reg-rm --dry-run: {}; reg-orphans: {}",
        rm.stderr.trim(),
        orphans.stderr.trim()
    );
}

/// The LISTs a tool's summary counts (`…; 9 requests: 4 LIST, 5 GET`).
fn lists(run: &Run) -> usize {
    run.stderr
        .split([';', ',', ':'])
        .filter_map(|part| part.trim().strip_suffix(" LIST")?.parse::<usize>().ok())
        .sum()
}

/// `t` holding the areas it asks to hold by parts so, however small the
/// bucket, when `by_parts` (the test hook).
fn held_by_parts(t: Tool, by_parts: bool) -> Tool {
    if by_parts {
        t.env(reg_core::object::BY_PARTS_ENV, "1")
    } else {
        t
    }
}

/// A run holding areas by parts printed what the run listing them whole
/// printed, both succeeding, with more LISTs.
fn same_records_from_more_lists(by_parts: &Run, whole: &Run) {
    whole.success();
    by_parts.success();
    assert_eq!(by_parts.stdout, whole.stdout);
    assert!(
        lists(by_parts) > lists(whole),
        "held by parts: {}\nwhole: {}",
        by_parts.stderr,
        whole.stderr
    );
}

/// reg-refs and reg-orphans holding `repositories/` a repository at a
/// time and `blobs/` a prefix directory at a time, and reg-rm holding
/// `repositories/` a batch of repositories at a time (as on a large
/// bucket; forced here on a small one by the test hook): the same
/// references, orphans and dry run as listing them whole, found with more
/// LISTs (one a repository and one a prefix directory); the collection
/// made from them by parts leaves every tagged image pulling from the real
/// registry.
#[test]
fn s3_orphans_with_areas_held_by_parts_collect_and_everything_pulls() {
    let name = "s3_orphans_with_areas_held_by_parts_collect_and_everything_pulls";
    let Some((_moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    let refs = |by_parts: bool| {
        held_by_parts(
            by_config("reg-refs", &reg, &["--tagged-only", "--stats"]),
            by_parts,
        )
        .run()
    };
    let (refs, refs_by_parts) = (refs(false), refs(true));
    same_records_from_more_lists(&refs_by_parts, &refs);
    let orphans = |by_parts: bool| {
        let t = by_config("reg-orphans", &reg, &["--stats", "--min-age", "0s"]).stdin(&refs.stdout);
        held_by_parts(t, by_parts).run()
    };
    let (whole, by_parts) = (orphans(false), orphans(true));
    same_records_from_more_lists(&by_parts, &whole);
    let rm = |by_parts: bool, args: &[&str]| {
        let t = by_config("reg-rm", &reg, &[&["--min-age", "0s"], args].concat()).stdin(&whole.stdout);
        held_by_parts(t, by_parts).run()
    };
    let (dry_whole, dry_by_parts) = (rm(false, &["--dry-run"]), rm(true, &["--dry-run"]));
    same_records_from_more_lists(&dry_by_parts, &dry_whole);
    assert!(dry_whole.stdout.contains("would-delete"));
    let rm = rm(true, &[]);
    rm.success();
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(blobs_with(&rm.records(), Some("deleted")), want);
    // The dry run, which keeps the parts it listed for its later walks,
    // promised exactly what the real run (listing again) removed.
    let items = |run: &Run, action: &str| -> BTreeSet<String> {
        run.records()
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r["kind"], r["repo"], r["digest"], r["id"], r["bytes"]
                )
            })
            .collect()
    };
    assert_eq!(items(&dry_by_parts, "would-delete"), items(&rm, "deleted"));
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
}

/// Every regular file below `dir`, in name order.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The manifest cache (on by default on object storage) corrupted between
/// runs: every entry holding another manifest's bytes, one cut short. The
/// tools read each from the bucket again (an entry is checked against its
/// digest), list exactly what they list without a cache, and the GC made
/// through that cache leaves every tag pulling.
#[test]
fn s3_a_corrupt_manifest_cache_is_read_again_and_everything_pulls() {
    let name = "s3_a_corrupt_manifest_cache_is_read_again_and_everything_pulls";
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    let home = tempfile::Builder::new()
        .prefix("reg-tests-cache-")
        .tempdir()
        .unwrap();
    let with_home = |t: Tool| t.env("XDG_CACHE_HOME", home.path());
    let uncached = by_url(
        "reg-refs",
        &reg,
        &moto.endpoint(),
        &["--tagged-only", "--no-manifest-cache"],
    )
    .run();
    uncached.success();
    let filled = with_home(by_url("reg-refs", &reg, &moto.endpoint(), &["--tagged-only"])).run();
    assert_eq!(filled.success().stdout, uncached.stdout);

    // Each entry takes the next one's bytes (valid manifests, of other
    // digests); the first is then cut in half. The entries are records in
    // packs (see reg-core's manifest_cache): `R`, the digest's length and
    // text, the data's length (4 bytes, little-endian), the data.
    let corrupt = || {
        let packs = files_below(&home.path().join("reg-tools"));
        assert!(!packs.is_empty(), "the cache kept no pack");
        for pack in packs {
            let bytes = std::fs::read(&pack).unwrap();
            let head = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
            let mut entries: Vec<(&[u8], &[u8])> = Vec::new();
            let mut at = head;
            while at < bytes.len() {
                assert_eq!(bytes[at], b'R', "a record at {at} of {}", pack.display());
                let n = usize::from(bytes[at + 1]);
                let digest = &bytes[at + 2..at + 2 + n];
                let len = u32::from_le_bytes(bytes[at + 2 + n..at + 6 + n].try_into().unwrap()) as usize;
                entries.push((digest, &bytes[at + 6 + n..at + 6 + n + len]));
                at += 6 + n + len;
            }
            assert!(entries.len() >= 2, "the cache kept {} entries", entries.len());
            let mut out = bytes[..head].to_vec();
            for (i, (digest, _)) in entries.iter().enumerate() {
                let mut data = entries[(i + 1) % entries.len()].1;
                if i == 0 {
                    data = &data[..data.len() / 2];
                }
                out.push(b'R');
                out.push(digest.len() as u8);
                out.extend_from_slice(digest);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            std::fs::write(&pack, out).unwrap();
        }
    };
    corrupt();
    let refs = with_home(by_url(
        "reg-refs",
        &reg,
        &moto.endpoint(),
        &["--tagged-only", "--stats"],
    ))
    .run();
    refs.success().stderr_has(" GET");
    assert_eq!(
        refs.stdout, uncached.stdout,
        "the corrupt cache changed reg-refs' list"
    );
    let orphans = by_url("reg-orphans", &reg, &moto.endpoint(), &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run();
    orphans.success();
    // reg-rm's mark reads through the cache too: corrupted again.
    corrupt();
    let rm = with_home(by_url("reg-rm", &reg, &moto.endpoint(), &["--min-age", "0s"]))
        .stdin(&orphans.stdout)
        .run();
    rm.success();
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(blobs_with(&rm.records(), Some("deleted")), want);
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
}

/// The window of a repository's removal (see the filesystem's
/// `a_push_while_reg_rm_removes_its_repository_still_fetches`) on a bucket
/// whose `repositories/` reg-rm holds a batch of repositories at a time
/// (forced by the test hook): the repository is judged empty from a held
/// listing, the same image is pushed again while reg-rm is paused before
/// removing it, and its second look must list the bucket anew, not read
/// the listing it judged from. The image still fetches and pulls, and
/// reg-rm says it kept the repository.
#[test]
fn s3_a_push_while_reg_rm_removes_a_repository_held_by_parts_still_fetches() {
    let test = "s3_a_push_while_reg_rm_removes_a_repository_held_by_parts_still_fetches";
    if !s3_programs_available(test) {
        return;
    }
    let (_moto, reg) = s3_registry(test);
    let tool = |name: &str, args: &[&str]| held_by_parts(by_config(name, &reg, args), true);
    let now = ["--min-age", "0s"];
    crate::live::repush_while_reg_rm_removes_the_repository(
        &reg,
        || {},
        [
            tool("reg-refs", &[]),
            tool("reg-orphans", &now),
            tool("reg-rm", &[&now[..], &["--settle", "0s"]].concat()),
        ],
    );
}

/// The manifest cache warm, then a manifest's data deleted from the bucket:
/// the registry no longer serves it, so it is missing. With `blobs/` held
/// a prefix directory at a time (forced by the test hook), whether a
/// cached manifest is still stored comes from one look-up of the manifests
/// the roots name, never from the cache: reg-refs prints what it prints
/// without a cache and with `blobs/` listed whole, the manifest counted
/// missing. The collection made from that leaves every live image pulling.
#[test]
fn s3_a_manifest_gone_from_the_bucket_is_missing_though_cached_with_blobs_held_by_prefix() {
    let name = "s3_a_manifest_gone_from_the_bucket_is_missing_though_cached_with_blobs_held_by_prefix";
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    let home = tempfile::Builder::new()
        .prefix("reg-tests-cache-")
        .tempdir()
        .unwrap();
    let cached = |t: Tool, by_parts: bool| held_by_parts(t.env("XDG_CACHE_HOME", home.path()), by_parts);
    let refs = |by_parts: bool| cached(by_config("reg-refs", &reg, &["--stats"]), by_parts).run();
    refs(false).success();
    // An untagged manifest no live image needs: the default policy reads it
    // (a revision is a root), and it is in the cache now.
    let live: BTreeSet<&String> = p.live_untagged.iter().map(|(_, m)| m).collect();
    let gone = p
        .manifests
        .keys()
        .find(|m| !p.tagged_reachable.contains(*m) && !live.contains(m))
        .expect("an untagged manifest in the scenario")
        .clone();
    let hex = gone.strip_prefix("sha256:").unwrap();
    moto.delete_object(
        "registry",
        &format!(
            "srv/registry/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ),
    )
    .unwrap();
    let uncached = by_config("reg-refs", &reg, &["--stats"]).run();
    uncached.success();
    assert!(
        uncached.stdout.contains(r#""missing":1"#),
        "{}",
        uncached.stdout.lines().last().unwrap_or_default()
    );
    for by_parts in [false, true] {
        let run = refs(by_parts);
        run.success();
        assert_eq!(
            run.stdout, uncached.stdout,
            "by parts: {by_parts}\n{}",
            run.stderr
        );
    }
    let by_parts = refs(true);
    let orphans = cached(by_config("reg-orphans", &reg, &["--min-age", "0s"]), true)
        .stdin(&by_parts.stdout)
        .run();
    orphans.success();
    let rm = cached(by_config("reg-rm", &reg, &["--min-age", "0s"]), true)
        .stdin(&orphans.stdout)
        .run();
    rm.success();
    reg.restart().unwrap();
    everything_live_pulls(&reg, &p);
}

/// A manifest pushed again in the moment its data goes: the registry found
/// the data and wrote only its links, then reg-rm deleted the data. Its
/// last look finds the links and writes the data back from its copies,
/// byte for byte: the manifest, and a config longer than the 64 KiB
/// reg-rm reads first of a blob (read whole after that look). The image
/// pulls again afterwards, as does the one tagged all along, whose layer
/// it shares.
#[test]
fn s3_a_manifest_pushed_again_while_its_data_goes_is_written_back_and_pulls() {
    let test = "s3_a_manifest_pushed_again_while_its_data_goes_is_written_back_and_pulls";
    if !s3_programs_available(test) {
        return;
    }
    let (moto, mut reg) = s3_registry(test);
    let api = reg.api();
    let kept = Image::build("kept", Platform::linux("amd64"), vec![layer("shared base")]);
    let long_name = format!("gone {}", "x".repeat(70_000));
    let gone = Image::build(&long_name, Platform::linux("amd64"), vec![layer("shared base")]);
    assert!(
        gone.config.size() > 64 << 10,
        "a config longer than the first look"
    );
    api.push("app", Some("kept"), &kept).unwrap();
    api.push("app", Some("gone"), &gone).unwrap();
    api.delete_manifest("app", &gone.manifest.digest).unwrap();

    let now = ["--min-age", "0s"];
    let refs = by_config("reg-refs", &reg, &[]).run();
    refs.success();
    let orphans = by_config("reg-orphans", &reg, &now).stdin(&refs.stdout).run();
    orphans.success();
    let doomed = blobs_with(&orphans.records(), None);
    for d in [&gone.manifest.digest, &gone.config.digest] {
        assert!(doomed.contains(d), "{d} is not an orphan:\n{}", orphans.stdout);
    }

    let pause = tempfile::tempdir().unwrap();
    let rm = by_config("reg-rm", &reg, &[&now[..], &["--settle", "0s"]].concat())
        .stdin(&orphans.stdout)
        .env("REG_RM_PAUSE_AFTER_BLOBS", pause.path());
    let cmd = rm.command_line();
    let (mut child, writer) = rm.spawn();
    let stdout = reg_tests::tools::reader(child.stdout.take().unwrap());
    let stderr = reg_tests::tools::reader(child.stderr.take().unwrap());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pause.path().join("paused").exists() {
        assert!(
            std::time::Instant::now() < until,
            "`{cmd}` never paused after its blobs"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The data is gone; the push's links are written now.
    let v2 = "srv/registry/docker/registry/v2";
    for d in [&gone.manifest.digest, &gone.config.digest] {
        assert!(!api.blob_exists("app", d).unwrap_or(false), "{d} still served");
    }
    let (m, c) = (&gone.manifest.digest, &gone.config.digest);
    let m_hex = m.strip_prefix("sha256:").unwrap();
    let c_hex = c.strip_prefix("sha256:").unwrap();
    let app = format!("{v2}/repositories/app");
    for (key, link) in [
        (format!("{app}/_layers/sha256/{c_hex}/link"), c),
        (format!("{app}/_manifests/revisions/sha256/{m_hex}/link"), m),
        (
            format!("{app}/_manifests/tags/again/index/sha256/{m_hex}/link"),
            m,
        ),
        (format!("{app}/_manifests/tags/again/current/link"), m),
    ] {
        moto.put_object("registry", &key, link.as_bytes()).unwrap();
    }
    std::fs::write(pause.path().join("resume"), b"").unwrap();
    let status = reg_tests::tools::wait_limited(&mut child, std::time::Duration::from_secs(60))
        .expect("reg-rm finishes");
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let (out, err) = (
        String::from_utf8(stdout.join().unwrap()).unwrap(),
        String::from_utf8(stderr.join().unwrap()).unwrap(),
    );
    assert!(status.success(), "`{cmd}`: {status}\n{err}");
    for d in [m, c] {
        let rec = out
            .lines()
            .find(|l| l.contains(r#""kind":"blob""#) && l.contains(d.as_str()))
            .unwrap_or_else(|| panic!("no record of {d}:\n{out}"));
        assert!(
            rec.contains(r#""action":"kept""#) && rec.contains("its data was written back"),
            "{rec}"
        );
    }
    reg.restart().unwrap();
    assert_eq!(
        reg.api().get_manifest("app", "again").unwrap().map(|(_, b)| b),
        Some(gone.manifest.bytes.clone()),
        "the manifest, byte for byte"
    );
    reg_tests::skopeo::pull_all(&reg.image_ref("app:again")).unwrap();
    reg_tests::skopeo::pull_all(&reg.image_ref("app:kept")).unwrap();
}
