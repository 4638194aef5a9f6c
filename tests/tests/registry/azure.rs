//! Azure Blob Storage, round trip. Debian's `docker-registry` 2.8.2 has no
//! azure driver, so the real registry writes the scenario to a directory;
//! it is uploaded to a container of Azurite (Microsoft's emulator, on
//! 127.0.0.1) with the same keys. Every tool prints the same records on
//! `azure://` as on a filesystem copy of the container; a `--tagged-only`
//! collection runs on Azure; the container is copied back to a directory,
//! served by the real registry, and every tag, platform and referrer pulls.
//! Faults (throttling, listing answers cut short, batch deletes failing key
//! by key) end in a retry or a clean failure, through the same proxy as on
//! S3.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use reg_tests::azurite::{self, Azurite};
use reg_tests::proxy::{Fault, Kind, Proxy};
use reg_tests::{azure_programs_available, everything_live_pulls, Pushed, Registry, Tool};

use super::s3::{blobs_with, comparable, listing_faults, on_copy, same_dry_run, Store};
use super::scenario;

const CONTAINER: &str = "registry";
const ROOT: &str = "srv/registry";

/// The scenario pushed to a directory, the registry stopped, the tree
/// uploaded to a container of a fresh Azurite; `None` when skipped.
#[track_caller]
fn azure_scenario(test: &str) -> Option<(Azurite, Registry, Pushed)> {
    if !azure_programs_available(test, true) {
        return None;
    }
    let (mut reg, p) = scenario(test)?;
    reg.stop().unwrap();
    let az = Azurite::start().unwrap_or_else(|e| panic!("{test}: starting Azurite: {e:#}"));
    az.create_container(CONTAINER)
        .unwrap_or_else(|e| panic!("{test}: {e:#}\n{}", az.log()));
    azurite::upload(&az.endpoint(), CONTAINER, ROOT, &reg.v2())
        .unwrap_or_else(|e| panic!("{test}: uploading: {e:#}\n{}", az.log()));
    Some((az, reg, p))
}

fn url() -> String {
    format!("azure://{}/{CONTAINER}/{ROOT}", azurite::ACCOUNT)
}

/// `AZURE_*=… tool ARGS azure://devstoreaccount1/registry/srv/registry`,
/// through `endpoint`.
fn by_url(name: &str, endpoint: &str, args: &[&str]) -> Tool {
    let mut t = Tool::new(name).args(args).arg(url());
    for (k, v) in Azurite::env_for(endpoint) {
        t = t.env(k, v);
    }
    t
}

/// A registry `config.yml` whose `storage.azure` section names the
/// container (the registry 2.8 cannot run it; the tools read it).
fn azure_config(dir: &Path, endpoint: &str) -> PathBuf {
    let path = dir.join("azure-config.yml");
    fs::write(
        &path,
        format!(
            "version: 0.1\nstorage:\n  azure:\n    accountname: {}\n    accountkey: \"{}\"\n    \
             container: {CONTAINER}\n    serviceurl: {endpoint}\n    rootdirectory: /{ROOT}\n  \
             delete:\n    enabled: true\n",
            azurite::ACCOUNT,
            azurite::KEY
        ),
    )
    .unwrap();
    path
}

/// The container copied to a new directory, with the objects' times.
fn copy_back(az: &Azurite, endpoint: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("reg-tests-azure-copy-")
        .tempdir()
        .unwrap();
    let b = azurite::backend(endpoint, CONTAINER, ROOT).unwrap();
    reg_tests::objects::mirror(&b, dir.path()).unwrap_or_else(|e| panic!("{e:#}\n{}", az.log()));
    dir
}

#[test]
fn azure_same_records_as_on_a_filesystem_copy_a_gc_there_and_everything_pulls_back() {
    let name = "azure_same_records_as_on_a_filesystem_copy_a_gc_there_and_everything_pulls_back";
    let Some((az, reg, p)) = azure_scenario(name) else {
        return;
    };
    let ep = az.endpoint();
    let copy = copy_back(&az, &ep);
    let fs_root = copy.path().to_str().unwrap().to_string();
    let config = azure_config(copy.path(), &ep);

    // reg-ls: the same records, by URL and by the registry's config; the
    // listing answers vouch for the links (no GET in reg-ls).
    let ls = by_url("reg-ls", &ep, &["--stats"]).run();
    ls.success().stderr_has(" LIST");
    let fs_ls = Tool::new("reg-ls").arg(&fs_root).run();
    assert_eq!(comparable(&ls), comparable(fs_ls.success()));
    let ls = Tool::new("reg-ls").arg("--config").arg(&config).run();
    assert_eq!(comparable(&ls), comparable(&fs_ls));

    // reg-refs both ways, reg-orphans and a dry run: the same.
    for mode in [&[][..], &["--tagged-only"][..]] {
        let refs = by_url("reg-refs", &ep, mode).run();
        let fs_refs = Tool::new("reg-refs").args(mode).arg(&fs_root).run();
        assert_eq!(comparable(refs.success()), comparable(fs_refs.success()));
        let orphans = by_url("reg-orphans", &ep, &["--min-age", "0s"])
            .stdin(&refs.stdout)
            .run();
        let fs_orphans = on_copy("reg-orphans", &["--min-age", "0s"], &fs_root, &fs_refs.stdout);
        assert_eq!(comparable(orphans.success()), comparable(fs_orphans.success()));
        same_dry_run(
            |args| by_url("reg-rm", &ep, args),
            &orphans,
            &fs_root,
            &fs_orphans,
        );
    }
    // A list made on the filesystem copy is another root; no trash here.
    let fs_refs = Tool::new("reg-refs").args(["--tagged-only", &fs_root]).run();
    by_url("reg-orphans", &ep, &["--min-age", "0s"])
        .stdin(&fs_refs.stdout)
        .run()
        .expect_code(1)
        .stderr_has("another storage root")
        .stdout_empty();

    // The collection, by the config this time: the same records as on
    // the copy, the unreachable blobs freed and nothing else.
    let refs = Tool::new("reg-refs")
        .args(["--tagged-only", "--stats", "--config"])
        .arg(&config)
        .run();
    refs.success().stderr_has(" LIST");
    let orphans = Tool::new("reg-orphans")
        .args(["--min-age", "0s", "--config"])
        .arg(&config)
        .stdin(&refs.stdout)
        .run();
    let rm = Tool::new("reg-rm")
        .args(["--min-age", "0s", "--config"])
        .arg(&config)
        .stdin(&orphans.success().stdout)
        .run();
    rm.success().stderr_has("batch delete");
    let fs_orphans = on_copy("reg-orphans", &["--min-age", "0s"], &fs_root, &fs_refs.stdout);
    let fs_rm = on_copy(
        "reg-rm",
        &["--min-age", "0s"],
        &fs_root,
        &fs_orphans.success().stdout,
    );
    assert_eq!(comparable(&rm), comparable(fs_rm.success()));
    let want: BTreeSet<String> = p.blob_set().difference(&p.tagged_reachable).cloned().collect();
    assert_eq!(blobs_with(&rm.records(), Some("deleted")), want);
    let after = by_url("reg-ls", &ep, &["--kind", "blob"]).run();
    assert_eq!(blobs_with(&after.success().records(), None), p.tagged_reachable);
    drop(reg);

    // Back to a directory, served by the real registry: everything pulls.
    let back = copy_back(&az, &ep);
    let served = Registry::start_on(back.path()).unwrap();
    everything_live_pulls(&served, &p);
}

/// Throttling, listing answers cut short and batch deletes failing key by
/// key, on Azure: a retry, or a clean failure that the next tool refuses;
/// never a partial list.
#[test]
fn azure_faults_end_in_a_retry_or_a_clean_failure() {
    let name = "azure_faults_end_in_a_retry_or_a_clean_failure";
    let Some((az, _reg, p)) = azure_scenario(name) else {
        return;
    };
    let ep = az.endpoint();
    let clean = by_url("reg-refs", &ep, &["--tagged-only"]).run();
    clean.success();
    let through = |proxy: &Proxy| azurite::endpoint_at(proxy.port());

    // Listing pages and GETs throttled at first (503 ServerBusy, up to the
    // 20th), at least 5 times; the first listing answer cut half way; then
    // every one: reg-orphans refuses what reg-refs printed.
    let (_cut, refs) = listing_faults(
        &Store {
            port: az.port(),
            by_url: &by_url,
            endpoint_of: through,
            url: "azure://devstoreaccount1/registry/srv/registry",
        },
        &clean,
        (20, 5),
        1,
    );
    by_url("reg-orphans", &ep, &["--min-age", "0s"])
        .stdin(&refs.stdout)
        .run()
        .expect_code(1)
        .stdout_empty();

    // The batch deletes failing key by key (five tries): an error names
    // the keys not deleted, and the run fails.
    let key_errors = Proxy::start(az.port(), |k, n| match k {
        Kind::DeleteObjects if n <= 5 => Fault::KeyErrors,
        _ => Fault::Forward,
    })
    .unwrap();
    let kep = through(&key_errors);
    let refs = by_url("reg-refs", &kep, &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &kep, &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    let first = by_url("reg-rm", &kep, &["--min-age", "0s"])
        .stdin(&list.success().stdout)
        .run();
    first.expect_code(1).stderr_has("not deleted: ");
    assert_eq!(key_errors.injected(), 5);

    // Then the same run through a clean endpoint finishes the job.
    let refs = by_url("reg-refs", &ep, &["--tagged-only"]).run();
    let list = by_url("reg-orphans", &ep, &["--min-age", "0s"])
        .stdin(&refs.success().stdout)
        .run();
    by_url("reg-rm", &ep, &["--min-age", "0s"])
        .stdin(&list.success().stdout)
        .run()
        .success();
    let stored = by_url("reg-ls", &ep, &["--kind", "blob"]).run();
    assert_eq!(blobs_with(&stored.success().records(), None), p.tagged_reachable);
    let back = copy_back(&az, &ep);
    let served = Registry::start_on(back.path()).unwrap();
    everything_live_pulls(&served, &p);
}
