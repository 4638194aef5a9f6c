//! Retention end to end: a registry that logs every request, tags pushed
//! over simulated time (their tag links' modification times set), some
//! pulled through the registry itself so that its own log is reg-pulls'
//! input, then `reg-ls | reg-keep | reg-rm --untag`, a garbage collection
//! on an aged copy, and pulls proving that every kept tag still pulls and
//! every dropped tag is gone (its image too, unless a kept tag shares it).
//!
//! Time: the registry's log starts when it starts, seconds before the
//! pulls. To judge "pulled within 30 days" the log must cover 30 days, so
//! reg-keep judges as of 30 days after the log starts (`--now`), and the
//! push times are set relative to that moment: as if the registry had been
//! running, and logging, for a month. Run with the real clock, the same
//! policy keeps the tags whose pulls the log cannot tell (checked first).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use reg_core::time::Time;
use reg_tests::oci::{layer, Content, Image, Platform};
use reg_tests::tree::{age_tree, blob_data, copy_tree, set_mtime, tag_link, THREE_DAYS};
use reg_tests::{reg_rm, registry_programs_available, skopeo, LogFormat, Registry, Run, Tool};
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86_400);

/// The policy under test: for team/*, `latest` always; `-rc` tags older
/// than 14 days go; of the rest the 2 newest and anything pulled within
/// 30 days stay; never fewer than 1. For scratch/**, what was pushed
/// within a week (nothing, here: the repository empties).
const POLICY: &str = "\
policies:
  - name: team
    repositories: [\"team/*\"]
    keep-tags: [\"^latest$\"]
    drop:
      - tags: -rc
        older-than: 14d
    keep-newest: 2
    pulled-within: 30d
    keep-at-least: 1
  - name: scratch
    repositories: [\"scratch/**\"]
    pushed-within: 7d
";

/// `(repo, tag, pushed days before the judging time, image)`.
const TAGS: &[(&str, &str, u64, &str)] = &[
    ("team/app", "1.0.0", 90, "A"),     // pulled by tag: kept
    ("team/app", "1.1.0", 80, "B"),     // pulled by digest: kept
    ("team/app", "1.2.0", 70, "C"),     // not pulled: dropped, image gone
    ("team/app", "build-17", 65, "F"),  // not pulled: dropped, image kept by 2.0.0
    ("team/app", "2.0.0-rc1", 30, "G"), // pulled, but a drop rule decides first
    ("team/app", "2.0.0", 20, "F"),     // not pulled, but too young to judge: kept
    ("team/app", "2.1.0", 12, "H"),     // second newest: kept
    ("team/app", "latest", 12, "H"),    // keep-tags
    ("team/app", "2.2.0", 5, "N"),      // newest: kept
    ("scratch/tmp", "a", 40, "I"),
    ("scratch/tmp", "b", 35, "J"),
    ("other/app", "x", 100, "K"), // no policy: kept
];

const DROPPED: &[(&str, &str)] = &[
    ("team/app", "1.2.0"),
    ("team/app", "build-17"),
    ("team/app", "2.0.0-rc1"),
    ("scratch/tmp", "a"),
    ("scratch/tmp", "b"),
];

fn image(name: &str) -> Image {
    Image::build(
        &format!("keep test image {name}"),
        Platform::linux("amd64"),
        vec![layer("keep-base"), layer(&format!("keep-{name}"))],
    )
}

fn run(tool: Tool) -> Run {
    tool.run()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn keep_untag_and_collect_on_a_real_registry_with_its_own_log() {
    if !registry_programs_available("keep_untag_and_collect_on_a_real_registry_with_its_own_log") {
        return;
    }
    let started = SystemTime::now();
    let mut reg = Registry::start_logging(LogFormat::Text).unwrap();
    let api = reg.api();
    let work = tempfile::tempdir().unwrap();
    let policy = write(work.path(), "keep.yml", POLICY);

    // Push every tag over HTTP (no manifest is read back while pushing).
    for (repo, tag, _, img) in TAGS {
        api.push(repo, Some(tag), &image(img)).unwrap();
    }
    // The log must start at least a second before the pulls, to the second.
    while SystemTime::now() < started + Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pulls_from = Time(floor_secs(SystemTime::now()));
    // Pull through the registry: by tag, by digest, and a tag a drop rule
    // will drop anyway.
    let addr = reg.addr();
    skopeo::pull_all(&format!("{addr}/team/app:1.0.0")).unwrap();
    skopeo::pull_all(&format!("{addr}/team/app@{}", image("B").digest())).unwrap();
    skopeo::pull_all(&format!("{addr}/team/app:2.0.0-rc1")).unwrap();
    // Judged a month after the log started, just before the pulls.
    let now = Time(pulls_from.0 - Duration::from_secs(1) + 30 * DAY);
    for (repo, tag, days, _) in TAGS {
        set_mtime(&tag_link(&reg.v2(), repo, tag), now.0 - DAY * (*days as u32));
    }

    // The registry's own log: its access log and its application log.
    let log = reg.log_contents();
    assert!(
        log.lines().any(|l| l.starts_with("127.0.0.1 - - [")),
        "no access log:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("time=") && l.contains("msg=\"response completed\"")),
        "no request lines in the application log:\n{log}"
    );
    let pulls = run(Tool::new("reg-pulls").arg(reg.log_path()));
    pulls.success();
    let recs = pulls.records();
    let pulled: BTreeSet<(String, String)> = recs
        .iter()
        .filter(|r| r["kind"] == "pull")
        .map(|r| {
            let what = r["tag"].as_str().or(r["digest"].as_str()).unwrap();
            (r["repo"].as_str().unwrap().to_string(), what.to_string())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("team/app", "1.0.0".to_string()),
        ("team/app", image("B").digest().to_string()),
        ("team/app", "2.0.0-rc1".to_string()),
    ]
    .into_iter()
    .map(|(r, w)| (r.to_string(), w))
    .collect();
    assert_eq!(
        pulled, want,
        "reg-pulls read other pulls than the test made:\n{}",
        pulls.stdout
    );
    for r in recs.iter().filter(|r| r["kind"] == "pull") {
        let last = Time::parse(r["last_pull"].as_str().unwrap()).unwrap();
        assert!(last >= pulls_from, "{r}");
    }
    let end = recs.last().unwrap();
    assert_eq!(end["kind"], "end");
    assert!(
        Time::parse(end["since"].as_str().unwrap()).unwrap() < pulls_from,
        "{end}"
    );
    let pulls_file = write(work.path(), "pulls.jsonl", &pulls.stdout);

    let root = reg.root().to_path_buf();
    let ls = run(Tool::new("reg-ls").arg(&root).args(["--kind", "tag"]));
    ls.success();
    assert_eq!(ls.stdout.lines().count(), TAGS.len());

    // With the real clock the log covers seconds, not 30 days: the tags
    // whose pulls it cannot tell are kept, and a warning says why.
    let today = run(Tool::new("reg-keep")
        .args([
            "--policy",
            &policy,
            "--pulls",
            &pulls_file,
            "--allow-empty",
            "--explain",
        ])
        .stdin(&ls.stdout));
    today.success();
    today.stderr_has("inside the pulled-within 30d window");
    let rec_of = |recs: &[Value], tag: &str| -> Value {
        recs.iter()
            .find(|r| r["repo"] == "team/app" && r["tag"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {tag}"))
    };
    let r = rec_of(&today.records(), "1.2.0");
    assert_eq!(
        (r["kind"].as_str(), r["rule"].as_str()),
        (Some("kept"), Some("pulled-within")),
        "{r}"
    );
    assert!(r["reason"].as_str().unwrap().contains("unknown"), "{r}");

    // Judged a month on: scratch/tmp would lose every tag, refused.
    let keep = |extra: &[&str]| {
        run(Tool::new("reg-keep")
            .args([
                "--policy",
                &policy,
                "--pulls",
                &pulls_file,
                "--now",
                &now.to_string(),
            ])
            .args(extra)
            .stdin(&ls.stdout))
    };
    let refused = keep(&[]);
    refused.expect_code(1).stdout_empty();
    refused.stderr_has("reg-keep: error: scratch/tmp: the policy drops every tag of this repository (2)");

    // The preview: every tag, and the rule that decided it.
    let explained = keep(&["--allow-empty", "--explain"]);
    explained.success();
    let ex = explained.records();
    assert_eq!(ex.len(), TAGS.len());
    let rule = |tag: &str| {
        let r = rec_of(&ex, tag);
        (
            r["kind"].as_str().unwrap().to_string(),
            r["rule"].as_str().unwrap().to_string(),
        )
    };
    for (tag, kind, why) in [
        ("1.0.0", "kept", "pulled-within"),
        ("1.1.0", "kept", "pulled-within"),
        ("1.2.0", "dropped", "no-keep-rule"),
        ("build-17", "dropped", "no-keep-rule"),
        ("2.0.0-rc1", "dropped", "drop"),
        ("2.0.0", "kept", "pulled-within"),
        ("2.1.0", "kept", "keep-newest"),
        ("latest", "kept", "keep-tags"),
        ("2.2.0", "kept", "keep-newest"),
    ] {
        assert_eq!(rule(tag), (kind.to_string(), why.to_string()), "{tag}");
    }
    assert!(rec_of(&ex, "2.0.0")["reason"]
        .as_str()
        .unwrap()
        .contains("too young"));
    assert_eq!(
        rec_of(&ex, "build-17")["image_kept_by"],
        serde_json::json!(["2.0.0"])
    );
    assert_eq!(rec_of(&ex, "1.2.0")["image_kept_by"], serde_json::json!([]));
    let rc = rec_of(&ex, "2.0.0-rc1");
    assert!(
        Time::parse(rc["last_pull"].as_str().unwrap()).unwrap() >= pulls_from,
        "{rc}"
    );

    // A preview cannot be applied by mistake: reg-rm refuses its kinds.
    let misuse = reg_rm(&root, &["--untag"], &explained.stdout, &[]);
    misuse.expect_code(1).stdout_empty();
    misuse.stderr_has("stdin line 1: unknown record kind");

    // The list to apply: reg-ls's own lines.
    let list = keep(&["--allow-empty"]);
    list.success();
    let ls_lines: BTreeSet<&str> = ls.stdout.lines().collect();
    let mut names = BTreeSet::new();
    for l in list.stdout.lines() {
        assert!(ls_lines.contains(l), "not a reg-ls line: {l}");
        let v: Value = serde_json::from_str(l).unwrap();
        names.insert((
            v["repo"].as_str().unwrap().to_string(),
            v["tag"].as_str().unwrap().to_string(),
        ));
    }
    let dropped: BTreeSet<(String, String)> = DROPPED
        .iter()
        .map(|(r, t)| (r.to_string(), t.to_string()))
        .collect();
    assert_eq!(names, dropped);

    // Untag, with the registry running, as an operator would.
    let untag = reg_rm(&root, &["--untag"], &list.stdout, &[]);
    untag.success();
    let deleted: BTreeSet<(String, String)> = untag
        .records()
        .iter()
        .filter(|r| r["action"] == "deleted" && r["kind"] == "tag")
        .map(|r| {
            (
                r["repo"].as_str().unwrap().to_string(),
                r["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(deleted, dropped, "{}", untag.stdout);

    // The garbage collection, on a copy aged as the other tests do.
    reg.stop().unwrap();
    let copy = work.path().join("copy");
    copy_tree(&root, &copy);
    age_tree(&copy, THREE_DAYS);
    let refs = run(Tool::new("reg-refs").arg("--tagged-only").arg(&copy));
    refs.success();
    let orphans = run(Tool::new("reg-orphans").arg(&copy).stdin(&refs.stdout));
    orphans.success();
    let gc = run(Tool::new("reg-rm").arg(&copy).stdin(&orphans.stdout));
    gc.success();
    let gone: BTreeSet<String> = gc
        .records()
        .iter()
        .filter(|r| r["action"] == "deleted" && r["kind"] == "revision")
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    let want_gone: BTreeSet<String> = ["C", "G", "I", "J"]
        .iter()
        .map(|i| image(i).digest().to_string())
        .collect();
    assert_eq!(gone, want_gone, "the untagged revisions collected\n{}", gc.stdout);
    assert!(
        gc.records()
            .iter()
            .any(|r| r["action"] == "deleted" && r["kind"] == "repo" && r["repo"] == "scratch/tmp"),
        "{}",
        gc.stdout
    );

    // Every kept tag pulls; every dropped tag is gone, and its image
    // unless a kept tag shares it.
    let reg2 = Registry::start_on(&copy).unwrap();
    let api = reg2.api();
    for (repo, tag, _, img) in TAGS {
        let is_dropped = dropped.contains(&(repo.to_string(), tag.to_string()));
        if is_dropped {
            assert!(
                api.get_manifest(repo, tag).unwrap().is_none(),
                "{repo}:{tag} still served"
            );
        } else {
            skopeo::pull_all(&reg2.image_ref(&format!("{repo}:{tag}")))
                .unwrap_or_else(|e| panic!("kept tag {repo}:{tag} does not pull: {e:#}"));
        }
        let by_digest = api.get_manifest(repo, image(img).digest()).unwrap();
        let image_stays = !want_gone.contains(image(img).digest());
        assert_eq!(by_digest.is_some(), image_stays, "{repo}@{img}");
    }
    skopeo::pull_all(&reg2.image_ref(&format!("team/app@{}", image("F").digest()))).unwrap();
    assert!(!api.catalog().unwrap().contains(&"scratch/tmp".to_string()));
    // The dropped images' own layers and configs are gone; the shared base
    // layer stays.
    let v2 = copy.join("docker/registry/v2");
    for img in ["C", "G", "I", "J"] {
        let own = layer(&format!("keep-{img}")).digest;
        assert!(!blob_data(&v2, &own).exists(), "layer of {img}");
        assert!(
            !blob_data(&v2, &image(img).config.digest).exists(),
            "config of {img}"
        );
    }
    assert!(blob_data(&v2, &layer("keep-base").digest).exists());
    assert!(api.blob_exists("team/app", &layer("keep-base").digest).unwrap());
}

/// The JSON application log (no access log needed): the same pulls.
#[test]
fn reg_pulls_reads_the_json_log_of_a_real_registry() {
    if !registry_programs_available("reg_pulls_reads_the_json_log_of_a_real_registry") {
        return;
    }
    let reg = Registry::start_logging(LogFormat::Json).unwrap();
    let img = image("json");
    reg.api().push("team/json", Some("1"), &img).unwrap();
    let before = Time(floor_secs(SystemTime::now()));
    skopeo::pull_all(&reg.image_ref("team/json:1")).unwrap();
    skopeo::pull_all(&reg.image_ref(&format!("team/json@{}", img.digest()))).unwrap();
    // Only the application log: drop the access log's lines.
    let app: String = reg
        .log_contents()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(app.contains("\"msg\":\"response completed\""), "{app}");
    let pulls = run(Tool::new("reg-pulls").stdin(app));
    pulls.success();
    let recs = pulls.records();
    let got: Vec<(String, Option<String>, Option<String>)> = recs
        .iter()
        .filter(|r| r["kind"] == "pull")
        .map(|r| {
            let s = |k: &str| r[k].as_str().map(str::to_string);
            (s("repo").unwrap(), s("tag"), s("digest"))
        })
        .collect();
    assert_eq!(
        got,
        [
            ("team/json".to_string(), Some("1".to_string()), None),
            ("team/json".to_string(), None, Some(img.digest().to_string())),
        ]
    );
    for r in recs.iter().filter(|r| r["kind"] == "pull") {
        assert!(
            Time::parse(r["last_pull"].as_str().unwrap()).unwrap() >= before,
            "{r}"
        );
    }
}

fn floor_secs(t: SystemTime) -> SystemTime {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs())
}
