//! S3 Inventory reports as the listing (issue 18), on the scenario the real
//! registry pushed into moto: a report written from a real listing of the
//! bucket (gzipped CSV and Parquet, with their manifest.json, uploaded to
//! another bucket) gives reg-refs and reg-orphans the same records as a live
//! LIST, and no LIST of `blobs/` or `repositories/` goes through the proxy
//! in front of moto while they run. A stale, damaged, foreign or partial
//! report is refused. reg-rm never takes one: a tag pushed after the report
//! keeps the blobs the report shows unreferenced.

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::{Duration, SystemTime};

use reg_tests::inventory::{self, Format, Object, Report};
use reg_tests::oci::{layer, Image, Platform};
use reg_tests::proxy::{Fault, Kind, Proxy};
use reg_tests::{everything_live_pulls, skopeo, Moto};
use serde_json::Value;

use crate::s3::{blobs_with, by_url, comparable, s3_scenario};

/// The grace period of these runs: every report is used within it, and
/// everything the scenario pushed is older than it when the runs start.
const MIN_AGE: &str = "30s";
const GRACE: Duration = Duration::from_secs(30);

/// Where the reports go.
const INVENTORY_BUCKET: &str = "inventory";
const V2: &str = "srv/registry/docker/registry/v2";

/// The registry's bucket as it is now (`edit` may change the listing), as a
/// report made now, uploaded; its manifest's URL and the report.
fn publish(moto: &Moto, format: Format, config: &str, edit: impl Fn(&mut Vec<Object>)) -> (String, Report) {
    publish_made_at(moto, format, config, SystemTime::now(), "registry", edit)
}

fn publish_made_at(
    moto: &Moto,
    format: Format,
    config: &str,
    created: SystemTime,
    source: &str,
    edit: impl Fn(&mut Vec<Object>),
) -> (String, Report) {
    let mut objects = inventory::list(&moto.endpoint(), "registry").unwrap();
    assert!(objects.len() > 20, "{} objects", objects.len());
    edit(&mut objects);
    let report = inventory::report(source, "reports", config, created, format, &objects, 2).unwrap();
    inventory::upload(&moto.endpoint(), INVENTORY_BUCKET, &report).unwrap();
    (format!("s3://{INVENTORY_BUCKET}/{}", report.manifest_key), report)
}

/// The `prefix` of every LIST that went through `proxy` after the first
/// `from`.
fn listed_prefixes(proxy: &Proxy, from: usize) -> Vec<String> {
    proxy.targets(Kind::List)[from..]
        .iter()
        .map(|t| {
            let query = t.split_once('?').map_or("", |(_, q)| q);
            let raw = query
                .split('&')
                .find_map(|p| p.strip_prefix("prefix="))
                .unwrap_or("");
            percent_decoded(raw)
        })
        .collect()
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Whether a LIST of `prefix` lists (part of) `blobs/` or `repositories/`.
fn lists_an_area(prefix: &str) -> bool {
    prefix.starts_with(&format!("{V2}/blobs")) || prefix.starts_with(&format!("{V2}/repositories"))
}

fn records_set(run: &reg_tests::Run) -> BTreeSet<String> {
    comparable(run)
        .into_iter()
        .filter(|r| r["kind"] != "end")
        .map(|r| r.to_string())
        .collect()
}

fn delete_keys(moto: &Moto, prefix: &str) {
    use futures::StreamExt;
    let store = inventory::store(&moto.endpoint(), "registry").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let keys: Vec<_> = store
            .list(Some(&object_store::path::Path::from(prefix)))
            .map(|m| m.unwrap().location)
            .collect()
            .await;
        assert!(!keys.is_empty(), "nothing below {prefix}");
        for k in keys {
            store.delete(&k).await.unwrap();
        }
    });
}

/// The same records as a live listing, from CSV and Parquet reports, on S3
/// and downloaded; no LIST of `blobs/` or `repositories/` meanwhile. Then
/// the reports the tools refuse, and objects gone since the report.
#[test]
fn s3_inventory_reports_list_as_a_live_listing_without_listing_the_areas() {
    let name = "s3_inventory_reports_list_as_a_live_listing_without_listing_the_areas";
    let Some((moto, mut reg, p)) = s3_scenario(name) else {
        return;
    };
    reg.stop().unwrap();
    moto.create_bucket(INVENTORY_BUCKET).unwrap();
    let proxy = Proxy::start(moto.port(), |_, _| Fault::Forward).unwrap();
    let ep = proxy.endpoint();
    // Everything pushed is older than the grace period from here on.
    sleep(GRACE + Duration::from_secs(1));

    // A live listing, through the same endpoint (the same root in the
    // trailers): what the reports must give.
    let live_refs = by_url("reg-refs", &reg, &ep, &["--tagged-only", "--stats"]).run();
    live_refs.success();
    eprintln!("{name}: live: {}", live_refs.stderr.trim());
    let live_orphans = by_url("reg-orphans", &reg, &ep, &["--min-age", MIN_AGE])
        .stdin(&live_refs.stdout)
        .run();
    live_orphans.success();
    let orphaned = blobs_with(&live_orphans.records(), None);
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(orphaned, want, "the comparison covers every kind of orphan");
    let live_default = by_url("reg-refs", &reg, &ep, &[]).run();
    live_default.success();

    let download = tempfile::Builder::new()
        .prefix("reg-tests-inventory-")
        .tempdir()
        .unwrap();
    for (format, config) in [(Format::Csv, "csv"), (Format::Parquet, "parquet")] {
        for local in [false, true] {
            // A report made now for each three runs: well within the grace
            // period on a loaded machine.
            let (url, report) = publish(&moto, format, config, |_| {});
            let at = if local {
                let dir = download.path().join(config);
                let m = inventory::download(&report, &dir).unwrap();
                m.to_str().unwrap().to_string()
            } else {
                url
            };
            let at = at.as_str();
            let before = proxy.targets(Kind::List).len();
            let inv = ["--inventory", at, "--min-age", MIN_AGE];
            let refs = by_url(
                "reg-refs",
                &reg,
                &ep,
                &[&["--tagged-only", "--stats"][..], &inv].concat(),
            )
            .run();
            refs.success()
                .stderr_has("listed from the inventory report made at");
            eprintln!("{name}: {config} report at {at}: {}", refs.stderr.trim());
            assert_eq!(refs.stdout, live_refs.stdout, "{config} report at {at}");
            let orphans = by_url("reg-orphans", &reg, &ep, &inv).stdin(&refs.stdout).run();
            assert_eq!(
                orphans.success().stdout,
                live_orphans.stdout,
                "{config} report at {at}"
            );
            let default = by_url("reg-refs", &reg, &ep, &inv).run();
            assert_eq!(
                default.success().stdout,
                live_default.stdout,
                "{config} report at {at}"
            );
            // One delimited LIST of v2/ per run (the report must cover what
            // the bucket holds there); nothing below it.
            let lists = listed_prefixes(&proxy, before);
            assert_eq!(lists, vec![format!("{V2}/"); 3], "{config} report at {at}");
            assert!(!lists.iter().any(|l| lists_an_area(l)));
        }
    }
    // Rows out of key order within a file, and files whose key ranges
    // overlap (S3 promises neither): every other object in the first file,
    // in order; the rest in the second, backwards. The same records.
    let (url, _) = publish(&moto, Format::Csv, "shuffled", |objects| {
        let (evens, odds): (Vec<_>, Vec<_>) = std::mem::take(objects)
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        objects.extend(evens.into_iter().map(|(_, o)| o));
        objects.extend(odds.into_iter().rev().map(|(_, o)| o));
    });
    let before = proxy.targets(Kind::List).len();
    let inv = ["--inventory", url.as_str(), "--min-age", MIN_AGE];
    let refs = by_url("reg-refs", &reg, &ep, &[&["--tagged-only"][..], &inv].concat()).run();
    assert_eq!(refs.success().stdout, live_refs.stdout, "shuffled report");
    let orphans = by_url("reg-orphans", &reg, &ep, &inv).stdin(&refs.stdout).run();
    assert_eq!(orphans.success().stdout, live_orphans.stdout, "shuffled report");
    assert!(!listed_prefixes(&proxy, before).iter().any(|l| lists_an_area(l)));

    // The live runs did list the areas (the proxy sees what it should).
    assert!(listed_prefixes(&proxy, 0).iter().any(|l| lists_an_area(l)));

    // reg-rm never takes a report: it lists the bucket itself.
    let (url, _) = publish(&moto, Format::Csv, "csv", |_| {});
    by_url("reg-rm", &reg, &ep, &["--dry-run", "--inventory", &url])
        .stdin(&live_orphans.stdout)
        .run()
        .expect_code(2)
        .stderr_has("--inventory");

    // Refused, naming the report and why, nothing on stdout.
    let refused = |url: &str, why: &[&str]| {
        for tool in ["reg-refs", "reg-orphans"] {
            let run = by_url(tool, &reg, &ep, &["--inventory", url, "--min-age", MIN_AGE])
                .stdin(&live_refs.stdout)
                .run();
            run.expect_code(1).stdout_empty();
            for w in why {
                run.stderr_has(w);
            }
        }
    };
    // Older than the grace period: what was written since is not in it.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let (stale, _) = publish_made_at(&moto, Format::Csv, "stale", hour_ago, "registry", |_| {});
    refused(
        &stale,
        &[
            &stale,
            "the report was made at",
            "and it is now",
            "older than --min-age 30s allows",
        ],
    );
    // Of another bucket.
    let (foreign, _) = publish_made_at(&moto, Format::Csv, "foreign", SystemTime::now(), "other", |_| {});
    refused(
        &foreign,
        &["a report of bucket \"other\", but the registry is in bucket \"registry\""],
    );
    // Filtered to blobs/ only: every tag would be missing.
    let (partial, _) = publish(&moto, Format::Parquet, "partial", |objects| {
        objects.retain(|o| !o.key.contains("/repositories/"))
    });
    refused(
        &partial,
        &["lists nothing below", "repositories/, which the bucket holds"],
    );
    // A data file replaced after the manifest was written.
    let (damaged, report) = publish(&moto, Format::Csv, "damaged", |_| {});
    let data = &report.files[0].0;
    inventory::upload_files(
        &moto.endpoint(),
        INVENTORY_BUCKET,
        &[(data.clone(), b"not the file the manifest names".to_vec())],
    )
    .unwrap();
    refused(
        &damaged,
        &[
            &format!("s3://{INVENTORY_BUCKET}/{data}"),
            "but the manifest",
            "says",
        ],
    );
    // Nowhere to spool the report's listing (TMPDIR not there): an error
    // naming the directory and what to do, nothing on stdout.
    let (url, _) = publish(&moto, Format::Parquet, "parquet", |_| {});
    let nowhere = download.path().join("not-there");
    for tool in ["reg-refs", "reg-orphans"] {
        let run = by_url(tool, &reg, &ep, &["--inventory", &url, "--min-age", MIN_AGE])
            .env("TMPDIR", &nowhere)
            .stdin(&live_refs.stdout)
            .run();
        run.expect_code(1)
            .stdout_empty()
            .stderr_has(nowhere.to_str().unwrap())
            .stderr_has("set TMPDIR");
    }
    // A report that does not exist.
    refused(
        &format!("s3://{INVENTORY_BUCKET}/reports/none/manifest.json"),
        &["reports/none/manifest.json"],
    );

    // Gone since the report: app:v2's tag (what the registry's tag
    // deletion removes). A report whose ETags vouch for nothing (SSE-KMS)
    // has its links read: the tag is gone, as the registry sees it, and
    // the records are a live listing's. Where the report's ETag vouches for
    // the link, it is not read, and the tag stays a root: more is kept,
    // never less.
    let (kms, _) = publish(&moto, Format::Csv, "kms", |objects| {
        for o in objects {
            o.etag = o.etag.take().map(|e| format!("{e}-1"));
        }
    });
    let (md5, _) = publish(&moto, Format::Csv, "md5", |_| {});
    delete_keys(
        &moto,
        &format!("{V2}/repositories/org/team/app/_manifests/tags/v2/"),
    );
    let live = by_url("reg-refs", &reg, &ep, &["--tagged-only"]).run();
    let from_kms = by_url(
        "reg-refs",
        &reg,
        &ep,
        &["--tagged-only", "--inventory", &kms, "--min-age", MIN_AGE],
    )
    .run();
    from_kms
        .success()
        .stderr_has("org/team/app: tag without a current link, skipped");
    assert_eq!(records_set(&from_kms), records_set(live.success()));
    let from_md5 = by_url(
        "reg-refs",
        &reg,
        &ep,
        &["--tagged-only", "--inventory", &md5, "--min-age", MIN_AGE],
    )
    .run();
    let (kept, now) = (records_set(from_md5.success()), records_set(&live));
    assert!(kept.is_superset(&now));
    let v2_tag: Vec<Value> = comparable(&from_md5)
        .into_iter()
        .filter(|r| r["kind"] == "tag" && r["tag"] == "v2")
        .collect();
    assert_eq!(v2_tag.len(), 1, "{}", from_md5.stdout);
}

/// reg-rm looks at the bucket itself: a tag pushed after the report, whose
/// blobs the report shows unreferenced, keeps them, and everything pulls.
#[test]
fn s3_inventory_a_tag_pushed_after_the_report_keeps_its_blobs() {
    let name = "s3_inventory_a_tag_pushed_after_the_report_keeps_its_blobs";
    let Some((moto, reg, p)) = s3_scenario(name) else {
        return;
    };
    moto.create_bucket(INVENTORY_BUCKET).unwrap();
    sleep(GRACE + Duration::from_secs(1));
    let (url, _) = publish(&moto, Format::Parquet, "daily", |_| {});

    // deleted/img:1 again: its layer and config were stored long before
    // (and linked in its repository, so the push sends neither); the
    // report lists them, with no tag and no revision naming them.
    let img = Image::build(
        "deleted/img:1",
        Platform::linux("amd64"),
        vec![layer("deleted/img:1")],
    );
    assert_eq!(img.manifest.digest, p.deleted.1);
    skopeo::push_content(&reg.addr(), "deleted/img", Some("1"), &img).unwrap();
    let old_blobs: BTreeSet<String> = [img.config.digest.clone(), img.layers[0].digest.clone()].into();

    let proxy = Proxy::start(moto.port(), |_, _| Fault::Forward).unwrap();
    let ep = proxy.endpoint();
    let inv = ["--inventory", url.as_str(), "--min-age", MIN_AGE];
    let refs = by_url("reg-refs", &reg, &ep, &[&["--tagged-only"][..], &inv].concat()).run();
    let orphans = by_url("reg-orphans", &reg, &ep, &inv)
        .stdin(&refs.success().stdout)
        .run();
    let named = blobs_with(&orphans.success().records(), None);
    assert!(named.is_superset(&old_blobs), "{}", orphans.stdout);
    let before = proxy.targets(Kind::List).len();
    let rm = by_url("reg-rm", &reg, &ep, &["--min-age", MIN_AGE])
        .stdin(&orphans.stdout)
        .run();
    let recs = rm.success().records();
    for d in &old_blobs {
        let r = recs
            .iter()
            .find(|r| r["kind"] == "blob" && r["digest"] == d.as_str())
            .unwrap_or_else(|| panic!("{d} not acted on:\n{}", rm.stdout));
        assert_eq!(r["action"], "kept", "{}", rm.stdout);
        // Kept by its live walk, not by the grace period.
        let why = r["reason"].as_str().unwrap_or("");
        assert!(why.contains("referenced by"), "{d}: {why}");
    }
    let want: BTreeSet<String> = p
        .blob_set()
        .difference(&p.tagged_reachable)
        .filter(|d| !old_blobs.contains(*d) && **d != p.deleted.1)
        .cloned()
        .collect();
    assert_eq!(blobs_with(&recs, Some("deleted")), want);
    // Its own listings: both areas, live.
    let lists = listed_prefixes(&proxy, before);
    for area in ["blobs", "repositories"] {
        assert!(
            lists.iter().any(|l| l.starts_with(&format!("{V2}/{area}"))),
            "reg-rm did not list {area}/: {lists:?}"
        );
    }
    everything_live_pulls(&reg, &p);
    skopeo::pull_all(&reg.image_ref("deleted/img:1")).unwrap();
}
