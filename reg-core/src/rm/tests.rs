//! reg-rm on small trees built in temp dirs.

use super::*;
use crate::digest::Digest;
use crate::layout::paths;
use crate::mark::{Asked, Exclusions, Mark};
use crate::output::{Format, Out};
use crate::testutil::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

struct Ran {
    recs: Vec<Value>,
    stats: Stats,
    errors: u64,
    result: anyhow::Result<()>,
}

impl Ran {
    /// The run was refused whole: its error says `want`, it printed no
    /// record, and the tree at `root` is still `before`.
    fn refused(self, want: &str, root: &Path, before: &BTreeMap<String, String>) -> String {
        let e = format!("{:#}", self.result.expect_err("the run was not refused"));
        assert!(e.contains(want), "{e}");
        assert!(self.recs.is_empty(), "{:#?}", self.recs);
        assert_eq!(&snapshot(root), before, "{e}");
        e
    }

    /// The action taken on the record of `kind` whose fields include `f`.
    fn action(&self, kind: &str, f: &[(&str, &str)]) -> String {
        let hits: Vec<&Value> = self
            .recs
            .iter()
            .filter(|r| r["kind"] == kind && f.iter().all(|(k, v)| r[*k] == *v))
            .collect();
        assert_eq!(hits.len(), 1, "{kind} {f:?} in {:#?}", self.recs);
        hits[0]["action"].as_str().unwrap().to_string()
    }
}

fn rm(v2: &Path, input: &str, cfg: &Config) -> Ran {
    let input = parse_input(input.as_bytes()).unwrap();
    let store = Store::fs(v2);
    let msgs = Messages::new("reg-rm", true);
    let mut out = Out::new(Vec::new(), Format::Json);
    let res = run(&store, &input, cfg, &mut out, &msgs);
    let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
    let recs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for r in &recs {
        // The action comes first, then the kind.
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["action", "kind"], "{r}");
    }
    let (stats, result) = match res {
        Ok(s) => (s, Ok(())),
        Err(e) => (Stats::default(), Err(e)),
    };
    Ran {
        recs,
        stats,
        errors: msgs.errors(),
        result,
    }
}

fn cfg(min_age: Duration) -> Config {
    Config {
        min_age,
        untag: true,
        settle: Duration::ZERO,
        ..Config::default()
    }
}

/// `app:v1`, and an image of `app` overwritten long ago (its revision,
/// manifest, config and layer orphans) beside the orphan blob `other`, all
/// aged a day: their digests, and the list naming the revision and blobs.
fn overwritten(v2: &Path, other: &[u8]) -> ([Digest; 4], String) {
    image(v2, "app", Some("v1"), "keep");
    let (old, oc, ol) = image(v2, "app", None, "old");
    let other = blob(v2, other);
    age(v2, DAY);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n{old}\n{oc}\n{ol}\n{other}\n"
    );
    ([old, oc, ol, other], input)
}

/// `cfg(Duration::ZERO)` with the test hooks `set` chooses.
fn hooked(set: impl FnOnce(&mut Hooks)) -> Config {
    let mut hooks = Hooks::default();
    set(&mut hooks);
    Config {
        hooks,
        ..cfg(Duration::ZERO)
    }
}

/// A test hook that runs `f` (a push, as a client would, mid-run).
fn hook(f: impl Fn() + Send + Sync + 'static) -> Hook {
    Hook(std::sync::Arc::new(f))
}

/// Every path under `p` with its content (directories as "<dir>").
fn snapshot(p: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(p).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(p).unwrap().display().to_string();
        let v = if e.file_type().is_dir() {
            "<dir>".to_string()
        } else {
            String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned()
        };
        m.insert(rel, v);
    }
    m
}

fn copy_into(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

// ---- input

/// The named blobs are held as a sorted list, not a set: named in any
/// order and more than once, each is there once and is found, and
/// nothing else is.
#[test]
fn input_blobs_in_any_order_are_each_found_once() {
    let ds: Vec<Digest> = (0..1000u32)
        .map(|i| Digest::sha256_of(&i.to_le_bytes()))
        .collect();
    let mut text = String::new();
    for d in ds.iter().rev().chain(ds.iter().step_by(7)) {
        text.push_str(&format!("{d}\n"));
    }
    let i = parse_input(text.as_bytes()).unwrap();
    assert_eq!(i.blobs.len(), ds.len());
    assert!(ds.iter().all(|d| i.blobs.contains(d)));
    assert!(!i.blobs.contains(&Digest::sha256_of(b"not named")));
    assert!(i.blobs.items.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn input_kinds_and_trailers() {
    let d = Digest::sha256_of(b"x");
    let text = format!(
        "{d}\n\n\
         {{\"kind\":\"blob\",\"digest\":\"{d}\",\"size\":1,\"mtime\":\"2024-01-01T00:00:00Z\"}}\n\
         {{\"kind\":\"revision\",\"repo\":\"a/b\",\"digest\":\"{d}\"}}\n\
         {{\"kind\":\"layer-link\",\"repo\":\"a/b\",\"digest\":\"{d}\"}}\n\
         {{\"kind\":\"upload\",\"repo\":\"a\",\"id\":\"0b9e-11\",\"size\":0,\"started_at\":\"2024-01-01T00:00:00Z\"}}\n\
         {{\"kind\":\"repo\",\"repo\":\"a\"}}\n\
         {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v1\",\"digest\":\"{d}\",\"mtime\":\"2024-01-01T00:00:00Z\"}}\n\
         {{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v2\"}}\n\
         {{\"kind\":\"end\",\"tool\":\"reg-ls\",\"blobs\":1}}\n"
    );
    let i = parse_input(text.as_bytes()).unwrap();
    assert_eq!(i.blobs.len(), 1);
    assert_eq!(i.revisions.len(), 1);
    assert_eq!(i.layer_links.len(), 1);
    assert_eq!(i.uploads.len(), 1);
    assert_eq!(i.repos.len(), 1);
    assert_eq!(i.tags[&("a".into(), "v1".into())], Some(d));
    assert_eq!(i.tags[&("a".into(), "v2".into())], None);
    assert_eq!(i.ignored, 1);
    assert_eq!(i.len(), 7);
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    let d = Digest::sha256_of(b"x");
    let good = format!("{d}\n{{\"kind\":\"repo\",\"repo\":\"ok\"}}\n");
    let short = &d.to_string()[..70];
    let table: Vec<(String, &str)> = vec![
        ("hello".into(), "neither a JSON record nor a digest"),
        (short.into(), "sha256 wants 64 hex"),
        (format!("md5:{}", d.hex()), "unknown algorithm"),
        (d.to_string().to_uppercase(), "invalid digest"),
        ("{\"kind\":\"blob\"".into(), "not a JSON object"),
        ("[1]".into(), "neither"),
        ("{\"repo\":\"a\"}".into(), "without a \"kind\""),
        (
            "{\"kind\":\"image\",\"repo\":\"a\"}".into(),
            "unknown record kind",
        ),
        (
            "{\"kind\":\"repo\",\"repo\":\"../../etc\"}".into(),
            "invalid repository name",
        ),
        (
            "{\"kind\":\"repo\",\"repo\":\"Upper\"}".into(),
            "invalid repository name",
        ),
        ("{\"kind\":\"repo\",\"repo\":1}".into(), "not a string"),
        (
            format!("{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"../x\",\"digest\":\"{d}\"}}"),
            "invalid tag",
        ),
        (
            "{\"kind\":\"upload\",\"repo\":\"a\",\"id\":\"../../x\"}".into(),
            "invalid upload id",
        ),
        (
            format!("{{\"kind\":\"revision\",\"repo\":\"a\",\"digest\":\"{short}\"}}"),
            "wants 64 hex",
        ),
        (
            "{\"kind\":\"layer-link\",\"repo\":\"a\"}".into(),
            "without a \"digest\"",
        ),
    ];
    for (line, want) in table {
        let text = format!("{good}{line}\n{d}\n");
        let e = parse_input(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 3, "{line}: {e}");
        assert!(e.to_string().contains(want), "{line}: {e}");
        assert!(e.to_string().starts_with("stdin line 3: "), "{e}");
    }
    let e = parse_input(&b"\xff\xfe\n"[..]).unwrap_err();
    assert_eq!(
        (e.line, e.why.as_str()),
        (1, "not valid UTF-8 (nothing was deleted)")
    );
    let conflict = format!(
        "{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v\",\"digest\":\"{d}\"}}\n{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v\"}}\n"
    );
    assert_eq!(parse_input(conflict.as_bytes()).unwrap_err().line, 2);
}

#[test]
fn reg_refs_output_is_refused() {
    let d = Digest::sha256_of(b"x");
    for line in [
        format!(
            "{{\"kind\":\"layer-link\",\"repo\":\"a\",\"manifest\":\"{d}\",\"digest\":\"{d}\",\"size\":1}}"
        ),
        format!("{{\"kind\":\"manifest\",\"repo\":\"a\",\"manifest\":\"{d}\",\"digest\":\"{d}\"}}"),
        "{\"kind\":\"end\",\"tool\":\"reg-refs\",\"repos\":1}".to_string(),
    ] {
        let text = format!("{{\"kind\":\"tag\",\"repo\":\"a\",\"tag\":\"v1\",\"digest\":\"{d}\"}}\n{line}\n");
        let e = parse_input(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.why.contains("reg-refs output"), "{e}");
    }
}

// ---- guards

#[test]
fn tagged_manifest_is_kept_unless_its_tag_goes_too() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, _, _) = image(v2, "app", Some("v1"), "one");
    // The same manifest pushed to another repository, untagged there.
    push_manifest(v2, "other", None, m, &[]);
    age(v2, DAY);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n{m}\n\
         {{\"kind\":\"revision\",\"repo\":\"other\",\"digest\":\"{m}\"}}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    assert_eq!(r.action("revision", &[("repo", "app")]), "kept");
    assert!(
        r.recs.iter().any(|x| x["reason"] == "tag app:v1 points at it"),
        "{:?}",
        r.recs
    );
    assert_eq!(r.action("blob", &[]), "kept");
    // A revision in a repository where no tag points at it goes.
    assert_eq!(r.action("revision", &[("repo", "other")]), "deleted");
    assert!(v2.join(paths::revision_link("app", &m)).is_file());
    assert!(v2.join(paths::blob_data(&m)).is_file());

    // Tags and blobs together look like an unfiltered reg-ls listing.
    let tag = format!("{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\",\"digest\":\"{m}\"}}\n");
    let r = rm(v2, &format!("{tag}{input}"), &cfg(Duration::ZERO));
    let e = r.result.unwrap_err().to_string();
    assert!(e.contains("unfiltered reg-ls listing"), "{e}");
    assert!(r.recs.is_empty());
    // Untagged in one run, the revisions go in the next, the blob in the
    // one after.
    let r = rm(v2, &tag, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    assert_eq!(r.action("tag", &[]), "deleted");
    let revs = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n");
    let r = rm(v2, &revs, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    assert_eq!(r.action("revision", &[("repo", "app")]), "deleted");
    let r = rm(v2, &format!("{m}\n"), &cfg(Duration::ZERO));
    assert_eq!(r.action("blob", &[]), "deleted");
    assert!(!v2.join(paths::tag_dir("app", "v1")).exists());
    assert!(!v2.join(paths::blob_dir(&m)).exists());
}

#[test]
fn blobs_a_tagged_manifest_references_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, c, l) = image(v2, "app", Some("v1"), "one");
    age(v2, DAY);
    let r = rm(v2, &format!("{c}\n{l}\n"), &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    for d in [c, l] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept");
        assert!(v2.join(paths::blob_data(&d)).is_file());
        assert!(v2.join(paths::layer_link("app", &d)).is_file());
    }
    let why = format!("referenced by manifest {m} in app, which is live");
    assert!(r.recs.iter().all(|x| x["reason"] == why.as_str()), "{:?}", r.recs);
}

#[test]
fn moved_tag_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, _, _) = image(v2, "app", Some("v1"), "one");
    age(v2, DAY);
    let other = Digest::sha256_of(b"another");
    let input = format!("{{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\",\"digest\":\"{other}\"}}\n");
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.action("tag", &[]), "kept");
    assert_eq!(r.recs[0]["reason"], format!("the tag now points at {m}"));
    assert_eq!(r.recs[0]["digest"], other.to_string());
    assert!(v2.join(paths::tag_current("app", "v1")).is_file());
}

#[test]
fn children_of_a_tagged_index_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (a, _, _) = image(v2, "lib", None, "amd64");
    let (b, _, _) = image(v2, "lib", None, "arm64");
    let idx = index(v2, "lib", "latest", &[a, b]);
    age(v2, DAY);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{a}\"}}\n{{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{b}\"}}\n{a}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    for d in [a, b] {
        assert_eq!(r.action("revision", &[("digest", &d.to_string())]), "kept");
    }
    assert_eq!(r.action("blob", &[]), "kept");
    let why = r.recs[0]["reason"].as_str().unwrap();
    assert!(why.contains(&format!("a child of index {idx} in lib")), "{why}");
    assert!(v2.join(paths::revision_link("lib", &a)).is_file());
    assert!(v2.join(paths::blob_data(&a)).is_file());
}

#[test]
fn young_blobs_and_links_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let old = blob(v2, b"old");
    let young = blob(v2, b"young");
    let old_young_link = blob(v2, b"old, but just linked");
    age(v2, DAY);
    link(v2, &paths::layer_link("app", &old_young_link), &old_young_link);
    let (m, _, _) = image(v2, "new", None, "pushed just now");
    age(&v2.join(paths::blob_dir(&m)), DAY);
    fs::write(v2.join(paths::blob_data(&young)), b"young").unwrap();
    let input = format!(
        "{old}\n{young}\n{old_young_link}\n{{\"kind\":\"revision\",\"repo\":\"new\",\"digest\":\"{m}\"}}\n{m}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::from_secs(3600)));
    assert_eq!(r.errors, 0, "{:?}", r.recs);
    assert_eq!(r.action("blob", &[("digest", &old.to_string())]), "deleted");
    assert_eq!(r.action("blob", &[("digest", &young.to_string())]), "kept");
    assert_eq!(
        r.action("blob", &[("digest", &old_young_link.to_string())]),
        "kept"
    );
    assert_eq!(r.action("revision", &[]), "kept");
    // The revision stays, so its (old) manifest blob stays too.
    assert_eq!(r.action("blob", &[("digest", &m.to_string())]), "kept");
    let reasons: Vec<&str> = r.recs.iter().filter_map(|x| x["reason"].as_str()).collect();
    assert!(reasons.contains(&"younger than --min-age 1h"), "{reasons:?}");
    assert!(
        reasons.contains(&"a manifest revision of new that stays (revisions are roots)"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"its _layers link in app is younger than --min-age 1h"),
        "{reasons:?}"
    );
    assert!(v2.join(paths::blob_data(&young)).is_file());
    assert!(v2.join(paths::layer_link("app", &old_young_link)).is_file());
    assert_eq!(r.stats.count(Action::Kept), 4);
    assert_eq!(r.stats.count(Action::Deleted), 1);
}

#[test]
fn layer_link_of_a_stored_blob_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (_, c, _) = image(v2, "app", Some("v1"), "one");
    let gone = Digest::sha256_of(b"gone");
    link(v2, &paths::layer_link("app", &gone), &gone);
    age(v2, DAY);
    let input = format!(
        "{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{gone}\"}}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.action("layer-link", &[("digest", &c.to_string())]), "kept");
    // A missing blob may be an unmounted volume: kept without --accept-broken.
    assert_eq!(r.action("layer-link", &[("digest", &gone.to_string())]), "kept");
    assert!(v2.join(paths::layer_link_dir("app", &gone)).exists());
    let r = rm(
        v2,
        &input,
        &Config {
            accept_broken: true,
            ..cfg(Duration::ZERO)
        },
    );
    assert_eq!(r.action("layer-link", &[("digest", &c.to_string())]), "kept");
    assert_eq!(
        r.action("layer-link", &[("digest", &gone.to_string())]),
        "deleted"
    );
    assert!(v2.join(paths::layer_link("app", &c)).is_file());
    assert!(!v2.join(paths::layer_link_dir("app", &gone)).exists());
}

// ---- what goes

#[test]
fn a_blob_goes_with_every_repositorys_link_then_a_second_run_finds_it_absent() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, c, l) = image(v2, "app", Some("v1"), "keep");
    let orphan = blob(v2, b"orphan layer");
    for repo in ["app", "x/y", "x/y/z"] {
        link(v2, &paths::layer_link(repo, &orphan), &orphan);
    }
    // An untagged revision with old tag index entries in two tags.
    let (old, oc, ol) = image(v2, "app", None, "old");
    image(v2, "app", Some("v2"), "other");
    link(v2, &(paths::tag_index_entry("app", "v1", &old) + "/link"), &old);
    link(v2, &(paths::tag_index_entry("app", "v2", &old) + "/link"), &old);
    age(v2, DAY);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n{old}\n{oc}\n{ol}\n{orphan}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0, "{:?}", r.recs);
    r.result.as_ref().unwrap();
    assert_eq!(r.action("revision", &[]), "deleted");
    for d in [old, oc, ol, orphan] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "deleted");
        assert!(!v2.join(paths::blob_dir(&d)).exists());
    }
    for repo in ["app", "x/y", "x/y/z"] {
        assert_eq!(
            r.action("layer-link", &[("repo", repo), ("digest", &orphan.to_string())]),
            "deleted"
        );
    }
    assert!(!v2.join(paths::tag_index_entry("app", "v1", &old)).exists());
    assert!(!v2.join(paths::tag_index_entry("app", "v2", &old)).exists());
    assert!(!v2.join(paths::revision_dir("app", &old)).exists());
    // The revision's bytes: its link and both index entries' links.
    let link_len = old.to_string().len() as u64;
    let rev_rec = r.recs.iter().find(|x| x["kind"] == "revision").unwrap();
    assert_eq!(rev_rec["bytes"], 3 * link_len, "{rev_rec}");
    let orphan_size = b"orphan layer".len() as u64;
    let orphan_rec = r
        .recs
        .iter()
        .find(|x| x["kind"] == "blob" && x["digest"] == orphan.to_string())
        .unwrap();
    assert_eq!(orphan_rec["bytes"], orphan_size);
    // The live image is intact.
    for d in [m, c, l] {
        assert!(v2.join(paths::blob_data(&d)).is_file());
    }
    assert!(v2.join(paths::tag_current("app", "v1")).is_file());
    assert!(v2
        .join(paths::tag_index_entry("app", "v1", &m) + "/link")
        .is_file());
    assert!(v2.join(paths::layer_link("app", &c)).is_file());
    assert!(v2.join(paths::revision_link("app", &m)).is_file());
    // Second run: nothing left to do.
    let again = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(again.errors, 0);
    assert!(
        again.recs.iter().all(|x| x["action"] == "absent"),
        "{:?}",
        again.recs
    );
    assert_eq!(again.recs.len(), 5);
    assert_eq!(again.stats.bytes, 0);
    assert!(v2.join("blobs").is_dir() && v2.join("repositories").is_dir());
}

#[test]
fn repositories_go_only_when_empty_and_never_take_nested_ones() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, _, _) = image(v2, "a/b", Some("1"), "ab");
    image(v2, "a/b/c", Some("1"), "abc");
    let stale = Digest::sha256_of(b"stale");
    link(v2, &paths::layer_link("gone/img", &stale), &stale);
    fs::create_dir_all(v2.join(paths::tags("gone/img"))).unwrap();
    fs::create_dir_all(v2.join(paths::revision_dir("gone/img", &stale))).unwrap();
    put(
        v2,
        "repositories/up/_uploads/1234-ab/startedat",
        b"2020-01-01T00:00:00Z",
    );
    age(v2, DAY);
    let input = "{\"kind\":\"repo\",\"repo\":\"a/b\"}\n{\"kind\":\"repo\",\"repo\":\"gone/img\"}\n\
                 {\"kind\":\"repo\",\"repo\":\"up\"}\n{\"kind\":\"repo\",\"repo\":\"nope\"}\n";
    let r = rm(v2, input, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0);
    assert_eq!(r.action("repo", &[("repo", "a/b")]), "kept");
    assert_eq!(r.action("repo", &[("repo", "gone/img")]), "deleted");
    assert_eq!(r.action("repo", &[("repo", "up")]), "kept");
    assert_eq!(r.action("repo", &[("repo", "nope")]), "absent");
    assert!(!v2.join("repositories/gone").exists());
    assert!(v2.join("repositories/up/_uploads/1234-ab").is_dir());

    // Untag and drop a/b: a/b/c stays whole.
    let r = rm(
        v2,
        "{\"kind\":\"tag\",\"repo\":\"a/b\",\"tag\":\"1\"}\n",
        &cfg(Duration::ZERO),
    );
    assert_eq!(r.action("tag", &[]), "deleted");
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"a/b\",\"digest\":\"{m}\"}}\n\
         {{\"kind\":\"repo\",\"repo\":\"a/b\"}}\n{{\"kind\":\"upload\",\"repo\":\"up\",\"id\":\"1234-ab\"}}\n{{\"kind\":\"repo\",\"repo\":\"up\"}}\n"
    );
    let before_c = snapshot(&v2.join("repositories/a/b/c"));
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.errors, 0, "{:?}", r.recs);
    assert_eq!(r.action("repo", &[("repo", "a/b")]), "deleted");
    assert_eq!(r.action("upload", &[]), "deleted");
    assert_eq!(r.action("repo", &[("repo", "up")]), "deleted");
    assert_eq!(snapshot(&v2.join("repositories/a/b/c")), before_c);
    assert!(!v2.join("repositories/a/b/_manifests").exists());
    assert!(!v2.join("repositories/up").exists());
    assert!(v2.join("repositories").is_dir());
    let repos = Store::fs(v2).repositories();
    assert_eq!(repos.items, vec!["a/b/c".to_string()]);
}

// ---- modes

#[test]
fn dry_run_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, c, l) = image(v2, "app", None, "one");
    put(
        v2,
        "repositories/app/_uploads/1234-ab/startedat",
        b"2020-01-01T00:00:00Z",
    );
    age(v2, DAY);
    let before = snapshot(v2);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n\
         {m}\n{c}\n{l}\n{{\"kind\":\"upload\",\"repo\":\"app\",\"id\":\"1234-ab\"}}\n{{\"kind\":\"repo\",\"repo\":\"app\"}}\n"
    );
    let r = rm(
        v2,
        &input,
        &Config {
            mode: Mode::DryRun,
            ..cfg(Duration::ZERO)
        },
    );
    assert_eq!(r.errors, 0, "{:?}", r.recs);
    assert!(
        r.recs.iter().all(|x| x["action"] == "would-delete"),
        "{:#?}",
        r.recs
    );
    // revision, 3 blobs, 2 links, upload, repo
    assert_eq!(r.recs.len(), 8);
    assert_eq!(snapshot(v2), before);
    assert!(r.stats.bytes > 0);
    assert_eq!(r.stats.removed(), 0);
}

#[test]
fn trash_then_copy_back_restores_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    let trash = dir.path().join("trash");
    let (m, c, l) = image(&v2, "app", None, "one");
    image(&v2, "app", Some("v2"), "two");
    age(&v2, DAY);
    let before = snapshot(&v2);
    let input = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n{m}\n{c}\n{l}\n");
    let r = rm(
        &v2,
        &input,
        &Config {
            mode: Mode::Trash(trash.clone()),
            ..cfg(Duration::ZERO)
        },
    );
    assert_eq!(r.errors, 0, "{:?}", r.recs);
    assert!(r.recs.iter().all(|x| x["action"] == "trashed"), "{:#?}", r.recs);
    assert!(trash.join(paths::blob_data(&l)).is_file());
    assert!(trash.join(paths::revision_link("app", &m)).is_file());
    assert!(!v2.join(paths::blob_dir(&l)).exists());
    copy_into(&trash, &v2);
    // Everything is back (empty prefix directories removed are recreated).
    let after = snapshot(&v2);
    assert_eq!(after, before);
}

#[test]
fn trash_inside_the_root_is_refused_before_anything_moves() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (_, _, l) = image(v2, "app", None, "one");
    age(v2, DAY);
    let before = snapshot(v2);
    let r = rm(
        v2,
        &format!("{l}\n"),
        &Config {
            mode: Mode::Trash(v2.join("trash")),
            ..cfg(Duration::ZERO)
        },
    );
    r.refused("inside the storage root", v2, &before);
}

#[test]
fn fail_after_stops_and_a_second_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (keep, _, _) = image(v2, "app", Some("v1"), "keep");
    let mut input = String::new();
    let mut all = Vec::new();
    for i in 0..6 {
        let b = blob(v2, format!("orphan {i}").as_bytes());
        link(v2, &paths::layer_link("app", &b), &b);
        input.push_str(&format!("{b}\n"));
        all.push(b);
    }
    age(v2, DAY);
    let r = rm(v2, &input, &hooked(|h| h.fail_after = Some(4)));
    let e = r.result.unwrap_err();
    assert!(e.to_string().contains("stopped after 4 deletions"), "{e}");
    let gone = all
        .iter()
        .filter(|b| !v2.join(paths::blob_dir(b)).exists())
        .count();
    let links_gone = all
        .iter()
        .filter(|b| !v2.join(paths::layer_link_dir("app", b)).exists())
        .count();
    // Links go first: 4 links, no data.
    assert_eq!((links_gone, gone), (4, 0));
    assert!(v2.join(paths::blob_data(&keep)).is_file());
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    r.result.unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(r.stats.count(Action::Deleted), 6 + 2);
    assert!(all.iter().all(|b| !v2.join(paths::blob_dir(b)).exists()));
    assert!(all
        .iter()
        .all(|b| !v2.join(paths::layer_link_dir("app", b)).exists()));
}

// ---- input that cannot be what it claims

fn orphans_end(root: &str, blobs: u64, revisions: u64) -> String {
    format!(
        "{{\"kind\":\"end\",\"tool\":\"reg-orphans\",\"blobs\":{blobs},\"blob_bytes\":0,\"revisions\":{revisions},\
         \"layers\":0,\"uploads\":0,\"upload_bytes\":0,\"repos\":0,\"too_young\":0,\"stored_blobs\":9,\"root\":\"{root}\"}}\n"
    )
}

#[test]
fn input_that_cannot_be_what_it_claims_is_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    let (m, c, _) = image(&v2, "app", None, "one");
    image(&v2, "app", Some("v1"), "two");
    age(&v2, DAY);
    let root = Store::fs(&v2).root_id();
    let tag = "{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"v1\"}\n";
    let rev = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n");
    let blob_rec =
        format!("{{\"kind\":\"blob\",\"digest\":\"{c}\",\"size\":1,\"mtime\":\"2024-01-01T00:00:00Z\"}}\n");
    let link = format!("{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n");
    let upload = "{\"kind\":\"upload\",\"repo\":\"app\",\"id\":\"0b9e-11\"}\n";
    let repo = "{\"kind\":\"repo\",\"repo\":\"app\"}\n";
    let no_untag = Config {
        untag: false,
        ..cfg(Duration::ZERO)
    };
    let before = snapshot(&v2);
    let untag = cfg(Duration::ZERO);
    let table: Vec<(String, &Config, &str)> = vec![
        // Untagging is never an accident of a pipeline.
        (format!("{rev}{tag}"), &no_untag, "stdin line 2: a tag record"),
        (format!("{tag}{blob_rec}"), &untag, "unfiltered reg-ls listing"),
        (format!("{tag}{c}\n"), &untag, "mixed with blob or digest records"),
        // What `reg-ls ROOT --repo app` prints: tags with every other kind
        // but blobs. Each kind next to tags is refused, wherever it comes.
        (
            format!("{tag}{rev}"),
            &untag,
            "stdin line 2: tag records (first on line 1) mixed with revision",
        ),
        (
            format!("{rev}{tag}"),
            &untag,
            "stdin line 2: tag records (first on line 2) mixed with revision",
        ),
        (format!("{tag}{link}"), &untag, "mixed with layer-link records"),
        (format!("{tag}{upload}"), &untag, "mixed with upload records"),
        (format!("{repo}{tag}"), &untag, "mixed with repo records"),
        // A reg-orphans trailer names this root and counts what is read.
        (
            format!("{blob_rec}{}", orphans_end("/elsewhere/v2", 1, 0)),
            &no_untag,
            "another storage root (/elsewhere/v2)",
        ),
        (
            orphans_end(&root, 1, 0),
            &no_untag,
            "disagree: it counts 1 blob records, the input holds 0",
        ),
        (
            format!("{blob_rec}{rev}{}", orphans_end(&root, 1, 0)),
            &no_untag,
            "it counts 0 revision records, the input holds 1",
        ),
        (
            format!("{blob_rec}{}{rev}", orphans_end(&root, 1, 0)),
            &no_untag,
            "stdin line 3: more input after the reg-orphans trailer",
        ),
        (
            format!(
                "{blob_rec}{}",
                orphans_end(&root, 1, 0).replace(&format!(",\"root\":\"{root}\""), "")
            ),
            &no_untag,
            "without \"root\"",
        ),
    ];
    for (input, config, want) in table {
        let r = match parse_input(input.as_bytes()) {
            Ok(_) => rm(&v2, &input, config),
            Err(e) => {
                assert!(e.to_string().contains(want), "{input}: {e}");
                continue;
            }
        };
        let e = r.refused(want, &v2, &before);
        assert!(e.contains("nothing was deleted"), "{input}: {e}");
    }
    // The same root through a symbolic link, with true counts: accepted.
    std::os::unix::fs::symlink(&v2, dir.path().join("alias")).unwrap();
    let alias = dir.path().join("alias").display().to_string();
    let r = rm(
        &v2,
        &format!("{blob_rec}{}", orphans_end(&alias, 1, 0)),
        &no_untag,
    );
    r.result.as_ref().unwrap();
    // c is the config of a manifest that still has a revision: kept.
    assert_eq!(r.action("blob", &[]), "kept");
}

#[test]
fn an_empty_blob_store_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, c, l) = image(v2, "app", Some("v1"), "one");
    age(v2, DAY);
    fs::rename(v2.join("blobs"), dir.path().join("../saved-blobs-rm-test")).ok();
    fs::remove_dir_all(v2.join("blobs")).ok();
    fs::create_dir_all(v2.join("blobs")).unwrap();
    let before = snapshot(v2);
    let input = format!(
        "{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{c}\"}}\n{{\"kind\":\"layer-link\",\"repo\":\"app\",\"digest\":\"{l}\"}}\n\
         {{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{m}\"}}\n"
    );
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    r.refused(crate::layout::EMPTY_BLOB_STORE, v2, &before);
}

#[test]
fn missing_manifests_stop_blob_deletion_unless_broken_images_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let (m, c, l) = image(v2, "app", Some("v1"), "one");
    let (old, _, _) = image(v2, "app", None, "old");
    let orphan = blob(v2, b"orphan");
    age(v2, DAY);
    // The tagged manifest is gone: what it referenced is unknown.
    fs::remove_dir_all(v2.join(paths::blob_dir(&m))).unwrap();
    let input =
        format!("{c}\n{l}\n{orphan}\n{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n");
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    r.result.as_ref().unwrap();
    for d in [c, l, orphan] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept");
        assert!(v2.join(paths::blob_data(&d)).is_file());
    }
    assert_eq!(r.action("revision", &[]), "kept");
    let why = r.recs[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("--accept-broken") && why.contains(&m.to_string()),
        "{why}"
    );
    let r = rm(
        v2,
        &input,
        &Config {
            accept_broken: true,
            ..cfg(Duration::ZERO)
        },
    );
    r.result.as_ref().unwrap();
    for d in [c, l, orphan] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "deleted");
    }
    assert_eq!(r.action("revision", &[]), "deleted");
}

#[test]
fn a_revision_whose_manifest_is_missing_needs_accept_broken() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    image(v2, "app", Some("v1"), "one");
    let (old, _, _) = image(v2, "app", None, "old");
    age(v2, DAY);
    fs::remove_dir_all(v2.join(paths::blob_dir(&old))).unwrap();
    let input = format!("{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n");
    let r = rm(v2, &input, &cfg(Duration::ZERO));
    assert_eq!(r.action("revision", &[]), "kept");
    assert!(r.recs[0]["reason"]
        .as_str()
        .unwrap()
        .contains("manifest's data is missing"));
    let r = rm(
        v2,
        &input,
        &Config {
            accept_broken: true,
            ..cfg(Duration::ZERO)
        },
    );
    assert_eq!(r.action("revision", &[]), "deleted");
}

#[test]
fn a_dry_run_promises_what_the_real_run_frees() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    // An untagged revision still listed in a tag's index, its blobs,
    // links in two repositories, an upload, and a repository emptied.
    let (m, c, l) = image(v2, "app", Some("v1"), "keep");
    let (old, oc, ol) = image(v2, "app", None, "old");
    link(v2, &(paths::tag_index_entry("app", "v1", &old) + "/link"), &old);
    let (gone, gc, gl) = image(v2, "gone/img", None, "gone");
    link(v2, &paths::layer_link("app", &gl), &gl);
    put(
        v2,
        "repositories/gone/img/_uploads/1234-ab/startedat",
        b"2020-01-01T00:00:00Z",
    );
    put(
        v2,
        "repositories/gone/img/_uploads/1234-ab/data",
        b"partial upload",
    );
    age(v2, DAY);
    let _ = (m, c, l);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"app\",\"digest\":\"{old}\"}}\n\
         {{\"kind\":\"revision\",\"repo\":\"gone/img\",\"digest\":\"{gone}\"}}\n\
         {old}\n{oc}\n{ol}\n{gone}\n{gc}\n{gl}\n\
         {{\"kind\":\"upload\",\"repo\":\"gone/img\",\"id\":\"1234-ab\"}}\n\
         {{\"kind\":\"repo\",\"repo\":\"gone/img\"}}\n"
    );
    let dry = rm(
        v2,
        &input,
        &Config {
            mode: Mode::DryRun,
            ..cfg(Duration::ZERO)
        },
    );
    dry.result.as_ref().unwrap();
    let real = rm(v2, &input, &cfg(Duration::ZERO));
    real.result.as_ref().unwrap();
    assert_eq!(
        dry.stats.count(Action::WouldDelete),
        real.stats.count(Action::Deleted)
    );
    let per = |r: &Ran| -> Vec<(String, u64)> {
        r.recs
            .iter()
            .map(|x| {
                (
                    format!("{} {} {}", x["kind"], x["repo"], x["digest"]),
                    x["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(per(&dry), per(&real));
    assert_eq!(dry.stats.bytes, real.stats.bytes);
    assert!(real.stats.bytes > 0);
}

#[test]
fn a_future_mtime_is_kept_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    image(v2, "app", Some("v1"), "one");
    let future = blob(v2, b"from the future");
    age(v2, DAY);
    let year_2400 = SystemTime::UNIX_EPOCH + Duration::from_secs(13_569_465_600);
    fs::File::open(v2.join(paths::blob_data(&future)))
        .unwrap()
        .set_modified(year_2400)
        .unwrap();
    let store = Store::fs(v2);
    let input = parse_input(format!("{future}\n").as_bytes()).unwrap();
    let msgs = Messages::new("reg-rm", true);
    let mut out = Out::new(Vec::new(), Format::Json);
    run(&store, &input, &cfg(Duration::ZERO), &mut out, &msgs).unwrap();
    assert_eq!(msgs.warnings(), 1);
    assert!(v2.join(paths::blob_data(&future)).is_file());
    let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
    assert!(text.contains("\"kept\""), "{text}");
}

#[test]
fn trash_must_be_new_or_empty_outside_and_not_around_the_root_on_its_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let v2 = root.join("docker/registry/v2");
    let (_, _, l) = image(&v2, "app", None, "one");
    age(&v2, DAY);
    let store = Store::fs(&v2);
    let before = snapshot(&root);
    let used = dir.path().join("used");
    put(&used, "blobs/sha256/aa/old", b"an earlier run's trash");
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (root.join("trash"), "inside the storage root"),
        (v2.join("blobs/trash"), "inside the storage root"),
        (PathBuf::from("/"), "contains the storage root"),
        (dir.path().to_path_buf(), "contains the storage root"),
        (used.clone(), "not empty"),
    ];
    let shm = Path::new("/dev/shm");
    let other_fs = {
        use std::os::unix::fs::MetadataExt;
        shm.is_dir() && fs::metadata(shm).unwrap().dev() != fs::metadata(dir.path()).unwrap().dev()
    };
    let elsewhere = shm.join(format!("reg-rm-test-{}/trash", std::process::id()));
    if other_fs {
        cases.push((elsewhere.clone(), "same filesystem"));
    }
    for (trash, want) in cases {
        let e = store.prepare_trash(&trash).unwrap_err().to_string();
        assert!(e.contains(want), "{}: {e}", trash.display());
        let r = rm(
            &v2,
            &format!("{l}\n"),
            &Config {
                mode: Mode::Trash(trash.clone()),
                ..cfg(Duration::ZERO)
            },
        );
        r.refused(want, &root, &before);
    }
    assert!(!root.join("trash").exists());
    assert!(!v2.join("blobs/trash").exists());
    if other_fs {
        assert!(
            !elsewhere.parent().unwrap().exists(),
            "a refused trash left a directory"
        );
    }
    assert_eq!(
        fs::read(used.join("blobs/sha256/aa/old")).unwrap(),
        b"an earlier run's trash"
    );
    store.prepare_trash(&dir.path().join("fresh/trash")).unwrap();
    assert!(dir.path().join("fresh/trash").is_dir());
}

#[test]
fn an_index_pushed_while_its_children_go_gets_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().to_path_buf();
    image(&v2, "lib", Some("old"), "keep");
    // Children pushed by digest (as a client does before the index), named
    // as orphans by a list made before the index arrived.
    let (a, ac, al) = image(&v2, "lib", None, "amd64");
    let (b, bc, bl) = image(&v2, "lib", None, "arm64");
    age(&v2, DAY);
    let input = format!(
        "{{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{a}\"}}\n\
         {{\"kind\":\"revision\",\"repo\":\"lib\",\"digest\":\"{b}\"}}\n{a}\n{ac}\n{al}\n{b}\n{bc}\n{bl}\n"
    );
    // The index lands after reg-rm's first look, before it removes them.
    let at = v2.clone();
    let run_then = hook(move || {
        // The registry accepted it while the children's links were there:
        // write it as it would have.
        index(&at, "lib", "latest", &[a, b]);
    });
    let r = rm(&v2, &input, &hooked(|h| h.after_revisions = Some(run_then)));
    r.result.as_ref().unwrap();
    for d in [a, b] {
        assert_eq!(r.action("revision", &[("digest", &d.to_string())]), "kept", "{d}");
        assert!(
            v2.join(paths::revision_link("lib", &d)).is_file(),
            "{d}: link written back"
        );
    }
    let why = r.recs[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("live again during this run") && why.contains("written back"),
        "{why}"
    );
    for d in [a, ac, al, b, bc, bl] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept", "{d}");
        assert!(v2.join(paths::blob_data(&d)).is_file());
    }
    // The tree passes the mark whole: every child and its blobs reached.
    let m = Mark::compute(
        &Store::fs(&v2),
        &Exclusions::default(),
        Asked {
            blobs: &[a, ac, al, b, bc, bl].into_iter().collect(),
            revisions: &[("lib".to_string(), a), ("lib".to_string(), b)].into(),
        },
        &Messages::muted("test"),
    )
    .unwrap();
    assert!(m.complete() && m.revision("lib", &a).is_some() && m.blob(&bl).is_some());
}

#[test]
fn a_push_that_lands_while_links_go_keeps_its_blobs_and_gets_its_links_back() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().to_path_buf();
    let ([old, oc, ol, other], input) = overwritten(&v2, b"a real orphan");
    // While reg-rm removes links, a client pushes the old image again
    // under a new tag (its manifest only: the blobs "exist").
    let at = v2.clone();
    let run_then = hook(move || {
        push_manifest(&at, "app", Some("again"), old, &[]);
    });
    let r = rm(&v2, &input, &hooked(|h| h.after_links = Some(run_then)));
    r.result.as_ref().unwrap();
    for d in [old, oc, ol] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "kept", "{d}");
        assert!(v2.join(paths::blob_data(&d)).is_file());
    }
    for d in [oc, ol] {
        assert!(
            v2.join(paths::layer_link("app", &d)).is_file(),
            "link to {d} written back"
        );
    }
    let why = r
        .recs
        .iter()
        .find(|x| x["kind"] == "blob" && x["digest"] == oc.to_string())
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("live again during this run") && why.contains("written back in app"),
        "{why}"
    );
    assert_eq!(r.action("blob", &[("digest", &other.to_string())]), "deleted");
    // The pushed image is whole: the tree passes the mark with nothing missing.
    let m = Mark::compute(
        &Store::fs(&v2),
        &Exclusions::default(),
        Asked {
            blobs: &[oc, ol].into_iter().collect(),
            revisions: &BTreeSet::new(),
        },
        &Messages::muted("test"),
    )
    .unwrap();
    assert!(m.complete() && m.blob(&oc).is_some() && m.blob(&ol).is_some());
}

/// What is left of a repository emptied by earlier runs: the image lives on
/// in `other` (so its blobs stay), `app` was untagged and its revision
/// removed (the API leaves the revision directory), and only its `_layers`
/// links are left. Returns (manifest, config, layer).
fn emptied_repository(v2: &Path) -> (Digest, Digest, Digest) {
    let (m, c, l) = image(v2, "other", Some("v1"), "shared");
    for d in [c, l] {
        link(v2, &paths::layer_link("app", &d), &d);
    }
    fs::create_dir_all(v2.join(paths::revision_dir("app", &m))).unwrap();
    age(v2, DAY);
    (m, c, l)
}

/// A CI job pushes an image again to a repository reg-rm is removing: its
/// blobs are still linked there, so only the manifest is PUT, and the
/// registry writes a revision and a tag after reg-rm found the repository
/// empty, before its links go. reg-rm looks again after removing them:
/// the links are written back, and the record says "kept", not "deleted".
#[test]
fn a_push_that_lands_while_a_repository_goes_keeps_its_layer_links() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().to_path_buf();
    let (m, c, l) = emptied_repository(&v2);
    let at = v2.clone();
    let run_then = hook(move || {
        push_manifest(&at, "app", Some("v1"), m, &[]);
    });
    let r = rm(
        &v2,
        "{\"kind\":\"repo\",\"repo\":\"app\"}\n",
        &hooked(|h| h.before_repo_removal = Some(run_then)),
    );
    r.result.as_ref().unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(r.action("repo", &[]), "kept", "{:#?}", r.recs);
    let why = r.recs[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("pushed to during this run")
            && why.contains(" appeared")
            && why.contains("its 2 _layers links were written back"),
        "{why}"
    );
    assert_eq!(r.stats.removed(), 0);
    // The pushed image is whole in `app`: tag, revision, and a link to
    // each blob, as the registry needs to serve it.
    for d in [c, l] {
        let link = v2.join(paths::layer_link("app", &d));
        assert_eq!(
            fs::read_to_string(&link).unwrap(),
            d.to_string(),
            "{}",
            link.display()
        );
    }
    let store = Store::fs(&v2);
    assert_eq!(
        store.read_link(&paths::tag_current("app", "v1")).unwrap(),
        Some(m)
    );
    assert!(v2.join(paths::revision_link("app", &m)).is_file());
    assert_eq!(store.repositories().items, ["app", "other"]);

    // Without the push the same run removes it, every directory of it.
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    emptied_repository(v2);
    let r = rm(v2, "{\"kind\":\"repo\",\"repo\":\"app\"}\n", &cfg(Duration::ZERO));
    assert_eq!(r.action("repo", &[]), "deleted");
    assert!(!v2.join("repositories/app").exists());
    assert_eq!(Store::fs(v2).repositories().items, ["other"]);
}

/// What a repository's keys say about a push that landed after reg-rm
/// found it empty: a tag, a revision link, an upload or a young link is
/// one; what an emptied repository keeps (old links, tag-less index
/// entries' leftovers, schema1 signature links, empty revision
/// directories) is not.
#[test]
fn the_keys_of_a_repository_tell_a_push_that_landed() {
    let d = Digest::sha256_of(b"x");
    let hex = d.hex();
    let old = |_: &str| false;
    let key = |rel: &str| format!("repositories/org/app/{rel}");
    for (rel, want) in [
        ("_manifests/tags/v1/current/link".to_string(), "tag \"v1\""),
        (
            format!("_manifests/tags/v1/index/sha256/{hex}/link"),
            "tag \"v1\"",
        ),
        (
            format!("_manifests/revisions/sha256/{hex}/link"),
            "revision sha256:",
        ),
        ("_uploads/0b9e-11/startedat".to_string(), "upload 0b9e-11"),
    ] {
        let keys = vec![key(&format!("_layers/sha256/{hex}/link")), key(&rel)];
        let why = super::repo::pushed("org/app", &keys, &old).unwrap_or_default();
        assert!(why.contains(want), "{rel}: {why:?}");
    }
    let link = key(&format!("_layers/sha256/{hex}/link"));
    let young = |k: &str| k.ends_with("/link");
    assert!(
        super::repo::pushed("org/app", std::slice::from_ref(&link), &young)
            .is_some_and(|w| w.contains("_layers link"))
    );
    let quiet = [
        link,
        key(&format!(
            "_manifests/revisions/sha256/{hex}/signatures/sha256/{hex}/link"
        )),
        // A nested repository's keys are not this one's.
        "repositories/org/app/sub/_manifests/tags/v1/current/link".to_string(),
    ];
    assert_eq!(super::repo::pushed("org/app", &quiet, &old), None);
}

// ---- never outside the root

#[test]
fn symlinks_and_dotdot_cannot_reach_outside() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    let outside = dir.path().join("outside");
    // Outside: something shaped like a repository and like a blob.
    let evil_blob = Digest::sha256_of(b"precious");
    put(&outside, "repo/_layers/sha256/x/link", b"precious");
    put(&outside, "repo/_manifests/tags/t/current/link", b"precious");
    put(&outside, "blob/data", b"precious");
    let (m, _, _) = image(&v2, "app", Some("v1"), "one");
    fs::create_dir_all(v2.join("repositories/linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("repo"), v2.join("repositories/linked/repo")).unwrap();
    let bdir = v2.join(paths::blob_dir(&evil_blob));
    fs::create_dir_all(bdir.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(outside.join("blob"), &bdir).unwrap();
    // A real tag directory that is a symlink to the outside.
    std::os::unix::fs::symlink(
        outside.join("repo/_manifests/tags/t"),
        v2.join(paths::tag_dir("app", "evil")),
    )
    .unwrap();
    age(&v2, DAY);
    age(&outside, DAY);
    let before = snapshot(&outside);

    // `..` never gets past the input check.
    for line in [
        "{\"kind\":\"repo\",\"repo\":\"../outside\"}",
        "{\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"../../../../outside\"}",
        "{\"kind\":\"upload\",\"repo\":\"app\",\"id\":\"../../../../outside\"}",
        "sha256:../../outside",
    ] {
        assert!(parse_input(line.as_bytes()).is_err(), "{line}");
    }

    let repo = "{\"kind\":\"repo\",\"repo\":\"linked/repo\"}\n";
    let untag = "{\"kind\":\"tag\",\"repo\":\"linked/repo\",\"tag\":\"t\"}\n\
                 {\"kind\":\"tag\",\"repo\":\"app\",\"tag\":\"evil\"}\n";
    let blobs = format!("{evil_blob}\n");
    for mode in [Mode::Delete, Mode::DryRun, Mode::Trash(dir.path().join("trash"))] {
        for input in [repo, untag, blobs.as_str()] {
            let r = rm(
                &v2,
                input,
                &Config {
                    mode: mode.clone(),
                    ..cfg(Duration::ZERO)
                },
            );
            assert!(
                r.errors > 0 || r.result.is_err(),
                "{mode:?} {input}: symlinks not reported"
            );
            assert!(
                r.recs
                    .iter()
                    .all(|x| !x["action"].as_str().unwrap().contains("delete") && x["action"] != "trashed"),
                "{mode:?}: {:#?}",
                r.recs
            );
            assert_eq!(snapshot(&outside), before, "{mode:?}");
        }
    }
    // The live image is untouched too.
    assert!(v2.join(paths::blob_data(&m)).is_file());
    assert!(bdir.is_symlink());
}

// ---- the registry's aliases and algorithms no tool knows

/// `reg-refs [--tagged-only] | reg-orphans | reg-rm` through the library.
fn gc(v2: &Path, tagged_only: bool) -> (Ran, u64) {
    let store = Store::fs(v2);
    let msgs = Messages::new("reg-refs", true);
    let rc = crate::refs::Config {
        tagged_only,
        ..Default::default()
    };
    let g = crate::refs::collect(&store, &rc, &msgs).unwrap();
    let mut out = Out::new(Vec::new(), Format::Json);
    crate::refs::write(&g, &mut out, &msgs).unwrap();
    let refs = out.into_inner().unwrap();
    let omsgs = Messages::new("reg-orphans", true);
    let mut out = Out::new(Vec::new(), Format::Json);
    crate::orphans::run(
        &store,
        &refs[..],
        &crate::orphans::Config::default(),
        &mut out,
        &omsgs,
    )
    .unwrap();
    let orphans = String::from_utf8(out.into_inner().unwrap()).unwrap();
    (
        rm(v2, &orphans, &cfg(Duration::from_secs(3600))),
        omsgs.errors() + msgs.errors(),
    )
}

/// A blob pushed with `?digest=sha512:` is stored under its sha256 digest
/// and linked from `_layers/sha512/<hex>/link` too; a manifest may name it
/// by the sha512 digest. A GC keeps it while so named, and removes it with
/// every link (the alias too) once nothing names it. A link or a blob
/// directory under an algorithm no tool knows is kept, with what it names,
/// and stops nothing else.
#[test]
fn aliases_keep_what_they_name_and_go_with_their_blob() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let sha512 = |data: &[u8]| {
        Digest::parse(&format!("sha512:{}", "0".repeat(128)))
            .unwrap()
            .same_alg_of(data)
    };
    let pushed_as_sha512 = |repo: &str, data: &[u8]| {
        let d = blob(v2, data);
        link(v2, &paths::layer_link(repo, &d), &d);
        let alias = sha512(data);
        link(v2, &paths::layer_link(repo, &alias), &d);
        (d, alias)
    };
    let (x, x512) = pushed_as_sha512("a/app", b"live layer, named by its sha512");
    let config = blob(v2, b"{\"config\":1}");
    link(v2, &paths::layer_link("a/app", &config), &config);
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}","size":12}},"layers":[{{"digest":"{x512}","size":31}}]}}"#
    );
    let md = blob(v2, m.as_bytes());
    push_manifest(v2, "a/app", Some("v1"), md, &[]);
    let (y, y512) = pushed_as_sha512("a/app", b"garbage pushed as sha512");
    let z = blob(v2, b"named by a link under blake3");
    put(
        v2,
        "repositories/a/app/_layers/blake3/abc/link",
        z.to_string().as_bytes(),
    );
    put(
        v2,
        "blobs/blake3/ab/abc/data",
        b"a blob under an unknown algorithm",
    );
    age(v2, 3 * DAY);

    for tagged_only in [false, true] {
        let (ran, errors) = gc(v2, tagged_only);
        ran.result.as_ref().unwrap();
        assert_eq!(errors + ran.errors, 0, "{:#?}", ran.recs);
        for (d, what) in [
            (x, "the live layer"),
            (config, "its config"),
            (md, "its manifest"),
            (z, "the blake3 link's blob"),
        ] {
            assert!(
                v2.join(paths::blob_data(&d)).is_file(),
                "{what} was deleted: {:#?}",
                ran.recs
            );
        }
        assert!(v2.join(paths::layer_link("a/app", &x512)).is_file());
        assert!(v2.join(paths::layer_link("a/app", &x)).is_file());
        assert!(v2.join("repositories/a/app/_layers/blake3/abc/link").is_file());
        assert!(v2.join("blobs/blake3/ab/abc/data").is_file());
        // The garbage went, with both its links.
        assert!(!v2.join(paths::blob_data(&y)).exists());
        assert!(
            !v2.join(paths::layer_link("a/app", &y512)).exists(),
            "{:#?}",
            ran.recs
        );
        assert!(!v2.join(paths::layer_link("a/app", &y)).exists());
    }
}

/// A `layer-link` record for an alias whose blob is still stored is kept:
/// reg-rm looks through the alias for the blob.
#[test]
fn an_alias_link_named_on_its_own_is_kept_while_its_blob_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path();
    let data = b"stored";
    let d = blob(v2, data);
    let alias = Digest::parse(&format!("sha512:{}", "0".repeat(128)))
        .unwrap()
        .same_alg_of(data);
    link(v2, &paths::layer_link("r", &alias), &d);
    age(v2, 3 * DAY);
    let input = format!(r#"{{"kind":"layer-link","repo":"r","digest":"{alias}"}}"#);
    let ran = rm(v2, &input, &cfg(Duration::from_secs(3600)));
    assert_eq!(
        ran.action("layer-link", &[("digest", &alias.to_string())]),
        "kept"
    );
    assert!(v2.join(paths::layer_link("r", &alias)).is_file());
}

// ---- concurrent runs

/// Three runs at once over the same list: each item is `deleted` (or
/// `trashed`) by exactly one of them (the one whose removal took it away)
/// and `absent` for the others, so the counts add up to what was there.
#[test]
fn concurrent_runs_count_each_deletion_once() {
    const N: usize = 100;
    const RUNS: usize = 3;
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().to_path_buf();
        image(&v2, "app", Some("v1"), "keep");
        let mut input = String::new();
        for i in 0..N {
            // A blob with a few files in its directory and a _layers link
            // in two repositories: several removals per record to race on.
            let d = blob(&v2, format!("orphan {round} {i}").as_bytes());
            for j in 0..20 {
                put(&v2, &format!("{}/extra-{j}", paths::blob_dir(&d)), b"x");
            }
            for repo in ["app", "other"] {
                link(&v2, &paths::layer_link(repo, &d), &d);
            }
            input.push_str(&format!("{d}\n"));
        }
        age(&v2, DAY);
        // The last round moves to trash in two of the runs (a rename each).
        let trash = tempfile::tempdir().unwrap();
        let modes: Vec<Mode> = (0..RUNS)
            .map(|i| match (round, i) {
                (2, 1 | 2) => Mode::Trash(trash.path().join(format!("t{i}"))),
                _ => Mode::Delete,
            })
            .collect();
        let runs: Vec<Ran> = std::thread::scope(|s| {
            let handles: Vec<_> = modes
                .iter()
                .map(|mode| {
                    // A pool of its own, as a process of its own would have.
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
                    let (v2, input) = (&v2, &input);
                    let cfg = Config {
                        mode: mode.clone(),
                        ..cfg(Duration::from_secs(3600))
                    };
                    s.spawn(move || pool.install(|| rm(v2, input, &cfg)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let count = |kind: &str, action: &str| -> usize {
            runs.iter()
                .flat_map(|r| &r.recs)
                .filter(|x| x["kind"] == kind && (x["action"] == action || x["action"] == "trashed"))
                .count()
        };
        for r in &runs {
            r.result.as_ref().unwrap();
            assert_eq!(r.errors, 0, "round {round}");
        }
        assert_eq!(count("blob", "deleted"), N, "round {round}");
        assert_eq!(count("layer-link", "deleted"), 2 * N, "round {round}");
        let deleted_bytes: u64 = runs
            .iter()
            .flat_map(|r| &r.recs)
            .filter(|x| x["kind"] == "blob" && x["action"] != "absent")
            .map(|x| x["bytes"].as_u64().unwrap())
            .sum();
        assert!(deleted_bytes > 0);
        for r in &runs {
            for x in r.recs.iter().filter(|x| x["action"] == "absent") {
                assert_eq!(x["bytes"], 0, "{x}");
            }
        }
        assert_eq!(Store::fs(&v2).blobs().items.len(), 3, "round {round}");
    }
}

#[test]
fn a_manifest_pushed_again_while_its_data_goes_gets_its_data_back() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().to_path_buf();
    let ([old, oc, ol, other], input) = overwritten(&v2, b"{\"a\":\"JSON orphan\"}");
    let manifest = fs::read(v2.join(paths::blob_data(&old))).unwrap();
    // The push of `old` under a new tag found its data (before the blob
    // phase deleted it) and wrote only the links, after the second look.
    let at = v2.clone();
    let run_then = hook(move || {
        link(&at, &paths::revision_link("app", &old), &old);
        link(&at, &paths::tag_current("app", "again"), &old);
    });
    let r = rm(&v2, &input, &hooked(|h| h.after_blobs = Some(run_then)));
    r.result.as_ref().unwrap();
    assert_eq!(r.action("blob", &[("digest", &old.to_string())]), "kept");
    let rec = r
        .recs
        .iter()
        .find(|x| x["kind"] == "blob" && x["digest"] == old.to_string())
        .unwrap();
    let why = rec["reason"].as_str().unwrap();
    assert!(
        why.contains("pushed again in app") && why.contains("moved back"),
        "{why}"
    );
    assert_eq!(fs::read(v2.join(paths::blob_data(&old))).unwrap(), manifest);
    // A JSON blob nothing links again stays deleted; so do the layers (a
    // push of a layer uploads it again).
    for d in [other, oc, ol] {
        assert_eq!(r.action("blob", &[("digest", &d.to_string())]), "deleted", "{d}");
        assert!(!v2.join(paths::blob_data(&d)).exists());
    }
    assert!(Store::fs(&v2).manifest(&old).unwrap().is_some());
}

#[test]
fn a_layer_uploaded_again_while_its_data_goes_gets_its_data_back() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().to_path_buf();
    let ([_, oc, ol, other], input) = overwritten(&v2, b"an orphan");
    let layer = fs::read(v2.join(paths::blob_data(&ol))).unwrap();
    // An upload of `ol` to `app` found its data (before the blob phase set
    // it aside) and wrote only the repository's link, after the second
    // look; an upload of `oc` came later, found no data and wrote both.
    let (at, config) = (v2.clone(), fs::read(v2.join(paths::blob_data(&oc))).unwrap());
    let run_then = hook(move || {
        link(&at, &paths::layer_link("app", &ol), &ol);
        fs::create_dir_all(at.join(paths::blob_dir(&oc))).unwrap();
        fs::write(at.join(paths::blob_data(&oc)), &config).unwrap();
        link(&at, &paths::layer_link("app", &oc), &oc);
    });
    let r = rm(&v2, &input, &hooked(|h| h.after_blobs = Some(run_then)));
    r.result.as_ref().unwrap();
    let why = |d: &Digest| {
        let rec = r
            .recs
            .iter()
            .find(|x| x["kind"] == "blob" && x["digest"] == d.to_string());
        assert_eq!(rec.unwrap()["action"], "kept", "{d}");
        rec.unwrap()["reason"].as_str().unwrap().to_string()
    };
    assert!(why(&ol).ends_with("pushed again in app while this run deleted it: its data was moved back"));
    assert!(
        why(&oc).ends_with("the registry wrote its data again"),
        "{}",
        why(&oc)
    );
    assert_eq!(fs::read(v2.join(paths::blob_data(&ol))).unwrap(), layer);
    // Nothing links `other` again: it is gone, and so is the run's
    // directory for what it set aside.
    assert_eq!(r.action("blob", &[("digest", &other.to_string())]), "deleted");
    assert!(!v2.join(paths::blob_dir(&other)).exists());
    assert!(!v2.join(crate::rm::HELD).exists());
}

/// A push of `old` under a new tag that checked its blobs before their
/// links went writes its links 150 ms after the links are removed: the
/// settle pause is what lets the run's second look see them.
#[test]
fn the_settle_pause_lets_the_second_look_see_a_push_that_checked_before_the_links_went() {
    for (settle, kept) in [(Duration::from_secs(2), true), (Duration::ZERO, false)] {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().to_path_buf();
        let ([old, oc, ol, _], input) = overwritten(&v2, b"an orphan");
        let at = v2.clone();
        let late = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = late.clone();
        let run_then = hook(move || {
            let at = at.clone();
            *slot.lock().unwrap() = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                link(&at, &paths::revision_link("app", &old), &old);
                link(&at, &paths::tag_current("app", "again"), &old);
            }));
        });
        let c = Config {
            settle,
            ..hooked(|h| h.after_links = Some(run_then))
        };
        let r = rm(&v2, &input, &c);
        late.lock().unwrap().take().unwrap().join().unwrap();
        r.result.as_ref().unwrap();
        for d in [oc, ol] {
            let want = if kept { "kept" } else { "deleted" };
            assert_eq!(
                r.action("blob", &[("digest", &d.to_string())]),
                want,
                "settle {settle:?}: {d}"
            );
            assert_eq!(
                v2.join(paths::blob_data(&d)).exists(),
                kept,
                "settle {settle:?}: {d}"
            );
        }
    }
}
