//! A garbage collection while clients push: the registry keeps running, a
//! pusher thread works through a fixed list of pushes (new images,
//! overwritten tags, multi-arch indexes, and re-pushes of images whose blobs
//! are orphans at that moment), and the test thread runs
//! `reg-refs --tagged-only ROOT | reg-orphans ROOT | reg-rm ROOT` (default
//! grace period) over and over while the pushes go on (at least 6 runs, at
//! most 40, 200 ms apart), each time after aging every file stored so far by
//! three days: only what is written during a run is young.
//!
//! A push the registry refuses (its blob was just collected) is a failure
//! the client sees; it is retried once and counted, never asserted against.
//! What must hold: every tag whose last push succeeded pulls, every
//! platform, with the digest pushed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reg_tests::oci::{layer, Content, Image, ImageIndex, Platform, MT_OCI_MANIFEST};
use reg_tests::tools::{reader, wait_limited};
use reg_tests::tree::{age_tree, THREE_DAYS};
use reg_tests::{registry_programs_available, skopeo, Registry, Tool};

/// One push: `content` to `repo:tag`.
struct Push {
    repo: &'static str,
    tag: String,
    content: Box<dyn Content + Send>,
}

fn image(name: &str, layers: &[&str]) -> Image {
    Image::build(
        name,
        Platform::linux("amd64"),
        layers.iter().map(|l| layer(l)).collect(),
    )
}

/// The fixed list, in rounds of four: overwrite `live/b:t` (the previous
/// image's blobs become orphans), push a new image, push a multi-arch index
/// (tags reused every three rounds), and re-push the image `live/b:t` held
/// two rounds ago, orphaned since, under a new tag.
fn operations(rounds: usize) -> Vec<Push> {
    let b = |r: usize| image(&format!("live/b {r}"), &["live-base", &format!("live-b-{r}")]);
    let mut ops = Vec::new();
    for r in 0..rounds {
        ops.push(Push {
            repo: "live/b",
            tag: "t".into(),
            content: Box::new(b(r)),
        });
        ops.push(Push {
            repo: "live/a",
            tag: format!("r{r}"),
            content: Box::new(image(
                &format!("live/a {r}"),
                &["live-base", &format!("live-a-{r}"), &format!("live-a-{}", r / 2)],
            )),
        });
        ops.push(Push {
            repo: "live/c",
            tag: format!("idx{}", r % 3),
            content: Box::new(ImageIndex::multi_arch(
                &format!("live/c {r}"),
                &["amd64", "arm64"],
                &[layer("live-base")],
            )),
        });
        if r >= 2 {
            ops.push(Push {
                repo: "live/b",
                tag: format!("back{r}"),
                content: Box::new(b(r - 2)),
            });
        }
    }
    ops
}

/// What happened to each push.
#[derive(Default)]
struct Outcome {
    /// `repo:tag` → (digest, whether its last push succeeded).
    tags: BTreeMap<String, (String, bool)>,
    failed_once: Vec<String>,
    failed_twice: Vec<String>,
}

fn push_all(addr: &str, ops: Vec<Push>, done: &AtomicUsize) -> Outcome {
    let mut out = Outcome::default();
    for op in ops {
        let reference = format!("{}:{}", op.repo, op.tag);
        let digest = op.content.digest().to_owned();
        let mut ok = skopeo::push_content(addr, op.repo, Some(&op.tag), op.content.as_ref());
        if let Err(e) = &ok {
            out.failed_once.push(format!("{reference}: {e:#}"));
            ok = skopeo::push_content(addr, op.repo, Some(&op.tag), op.content.as_ref());
            if let Err(e) = &ok {
                out.failed_twice.push(format!("{reference}: {e:#}"));
            }
        }
        out.tags.insert(reference, (digest, ok.is_ok()));
        done.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(50));
    }
    out
}

#[test]
fn live_pushes_during_collections_every_pushed_tag_pulls() {
    let name = "live_pushes_during_collections_every_pushed_tag_pulls";
    if !registry_programs_available(name) {
        return;
    }
    let reg = Registry::start().unwrap_or_else(|e| panic!("{name}: starting the registry: {e:#}"));
    let root = reg.root().to_path_buf();
    let ops = operations(15);
    let total = ops.len();
    assert!(total <= 60);
    // At least this many collections, and more while the pusher works.
    const MIN_RUNS: usize = 6;
    const MAX_RUNS: usize = 40;

    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (addr, done) = (reg.addr(), Arc::clone(&done));
        thread::spawn(move || push_all(&addr, ops, &done))
    };

    let mut runs = Vec::new();
    for i in 0..MAX_RUNS {
        if pusher.is_finished() && i >= MIN_RUNS {
            break;
        }
        thread::sleep(Duration::from_millis(200));
        age_tree(&root, THREE_DAYS);
        let limit = Duration::from_secs(30);
        let refs = Tool::new("reg-refs")
            .timeout(limit)
            .arg("--tagged-only")
            .arg(&root)
            .run();
        let orphans = Tool::new("reg-orphans")
            .timeout(limit)
            .arg(&root)
            .stdin(&refs.stdout)
            .run();
        let rm = Tool::new("reg-rm")
            .timeout(limit)
            .arg(&root)
            .stdin(&orphans.stdout)
            .run();
        let deleted = rm
            .stdout
            .lines()
            .filter(|l| l.contains(r#""action":"deleted""#))
            .count();
        runs.push(format!(
            "run {i} after {} pushes: reg-refs {}, reg-orphans {}, reg-rm {} ({deleted} deleted){}",
            done.load(Ordering::SeqCst),
            refs.status,
            orphans.status,
            rm.status,
            [&refs, &orphans, &rm]
                .iter()
                .filter(|r| !r.status.success())
                .map(|r| format!("\n    {}: {}", r.cmd, r.stderr.trim_end()))
                .collect::<String>(),
        ));
    }
    let out = pusher.join().expect("pusher thread");
    let elapsed = started.elapsed();

    println!("{}", runs.join("\n"));
    println!(
        "{total} pushes in {elapsed:?}: {} failed once, {} failed twice (retried)",
        out.failed_once.len(),
        out.failed_twice.len()
    );
    for f in &out.failed_once {
        println!("  failed: {f}");
    }

    // Every tag whose last push succeeded pulls, with the digest pushed.
    let mut checked = 0;
    for (reference, (digest, ok)) in &out.tags {
        if !ok {
            continue;
        }
        checked += 1;
        let src = reg.image_ref(reference);
        skopeo::pull_all(&src).unwrap_or_else(|e| {
            panic!(
                "{reference} was pushed successfully and no longer pulls: {e:#}\n--- collections:\n{}\n--- registry log:\n{}",
                runs.join("\n"),
                reg.log_contents()
            )
        });
        let raw = skopeo::inspect_raw(&src).unwrap();
        assert_eq!(
            &reg_core::Digest::sha256_of(&raw).to_string(),
            digest,
            "{reference} serves another manifest than the one last pushed"
        );
    }
    println!("{checked} tags pulled");
    assert!(checked > 0);
}

/// The window issue 16 found: reg-rm has found a repository empty (its
/// image untagged and deleted, its `_layers` links left) and is about to
/// remove it when CI pushes the same image again. The registry answers the
/// blob checks from those links, so only the manifest is PUT, and it writes
/// a revision and a tag. reg-rm is paused right there
/// (`REG_RM_PAUSE_BEFORE_REPO_REMOVAL`); after it goes on, the image must
/// still fetch whole, and reg-rm must say it kept the repository.
#[test]
fn a_push_while_reg_rm_removes_its_repository_still_fetches() {
    let test = "a_push_while_reg_rm_removes_its_repository_still_fetches";
    if !registry_programs_available(test) {
        return;
    }
    let reg = Registry::start().unwrap_or_else(|e| panic!("{test}: starting the registry: {e:#}"));
    let api = reg.api();
    let img = image("ci/app:v1", &["ci base", "ci app"]);
    // The same image lives on elsewhere, so its blobs are not garbage.
    api.push("shared/app", Some("v1"), &img).unwrap();
    api.push("ci/app", Some("v1"), &img).unwrap();
    api.delete_manifest("ci/app", &img.manifest.digest).unwrap();
    assert!(api.get_manifest("ci/app", "v1").unwrap().is_none());
    age_tree(reg.root(), THREE_DAYS);

    let refs = Tool::new("reg-refs").arg(reg.root()).run();
    refs.success();
    let orphans = Tool::new("reg-orphans").arg(reg.root()).stdin(&refs.stdout).run();
    orphans.success();
    assert!(
        orphans.stdout.contains(r#"{"kind":"repo","repo":"ci/app"}"#),
        "{}",
        orphans.stdout
    );

    let pause = tempfile::tempdir().unwrap();
    let rm = Tool::new("reg-rm")
        .arg(reg.root())
        .stdin(&orphans.stdout)
        .env("REG_RM_PAUSE_BEFORE_REPO_REMOVAL", pause.path());
    let cmd = rm.command_line();
    let (mut child, writer) = rm.spawn();
    let stdout = reader(child.stdout.take().unwrap());
    let stderr = reader(child.stderr.take().unwrap());
    let until = Instant::now() + Duration::from_secs(60);
    while !pause.path().join("paused").exists() {
        assert!(Instant::now() < until, "`{cmd}` never reached the repository");
        thread::sleep(Duration::from_millis(10));
    }
    // The re-push: the links answer, so the manifest alone is accepted.
    for blob in img.layer_blobs() {
        assert!(api.blob_exists("ci/app", &blob.digest).unwrap());
    }
    api.put_manifest("ci/app", "v1", MT_OCI_MANIFEST, &img.manifest.bytes)
        .unwrap_or_else(|e| panic!("the re-push was refused: {e:#}\n{}", reg.log_contents()));
    std::fs::write(pause.path().join("resume"), b"").unwrap();
    let status = wait_limited(&mut child, Duration::from_secs(60)).expect("reg-rm finishes");
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let (out, err) = (
        String::from_utf8(stdout.join().unwrap()).unwrap(),
        String::from_utf8(stderr.join().unwrap()).unwrap(),
    );
    assert!(status.success(), "`{cmd}`: {status}\n{err}");
    assert_eq!(
        api.fetch_all("ci/app", "v1")
            .unwrap_or_else(|e| panic!("ci/app:v1 no longer fetches: {e:#}\n{out}\n{err}")),
        3
    );
    let rec = out
        .lines()
        .find(|l| l.contains(r#""kind":"repo""#))
        .unwrap_or_else(|| panic!("no repo record:\n{out}"));
    assert!(
        rec.contains(r#""action":"kept""#) && rec.contains("written back"),
        "{rec}"
    );

    skopeo::pull_all(&reg.image_ref("ci/app:v1")).unwrap();
    skopeo::pull_all(&reg.image_ref("shared/app:v1")).unwrap();
}
