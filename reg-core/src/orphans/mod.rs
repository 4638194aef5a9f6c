//! `reg-orphans`: what nothing references.
//!
//! Two steps, and nothing is printed before both are done:
//!
//! 1. [`read_refs`] reads the whole output of `reg-refs` (and bare digest
//!    lines) into compact sets — referenced blob digests, and live
//!    (repository, manifest) pairs — and refuses input that does not prove
//!    itself complete: no `reg-refs` trailer as the last record, a trailer
//!    with `complete:false` (a `--repo` list), an `error` record, or a line it
//!    cannot read. A cut pipeline (`reg-refs | head | reg-orphans`) must never
//!    turn live data into orphans.
//! 2. [`find`] walks the store in parallel — blobs by prefix directory, then
//!    repositories — and collects every orphan kind of the contract; [`write()`]
//!    prints them in a stable order with the trailer.
//!
//! The grace period (`min_age`) protects what was written recently, because
//! the registry keeps writing while we look: a blob whose data file, or any
//! `_layers` or revision link naming it, is younger than `min_age`; a
//! revision link younger than `min_age`. A young revision the input does not
//! name (pushed after `reg-refs` ran), and a stored tag the input does not
//! name, also protect everything their manifest references (children,
//! config, layers, subject), read from storage here: deleting the layers of
//! a manifest pushed a minute ago would break it.
//!
//! Errors never make something live look orphaned: a listing problem keeps
//! what it concerns (a repository with an unreadable part is not reported as
//! empty; a layer link is reported only when its blob's `data` is confirmed
//! absent), and a listing problem that could hide young link files withholds
//! every blob orphan. Such problems are reported and make the exit status 1.
//!
//! Files: `mod.rs` the [`Config`] and [`run`]; `input.rs` reading the input
//! ([`read_refs`], [`InputStats`]); `sets.rs` the compact sets it fills
//! ([`LiveRefs`]); `sweep.rs` the walk ([`find`]); `results.rs` what it
//! found ([`Found`], [`Blobs`], [`Revisions`]); `output.rs` printing
//! ([`write()`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Deserialize;

use crate::digest::{key, Digest, DigestSet, Prehashed, SortedSet};
use crate::error::{Error, ErrorKind};
use crate::input::Lines;
use crate::layout::{check_repo_name, paths, Blob, LayerLink, Listing, Revision, Store, Upload};
use crate::messages::Messages;
use crate::output::Out;
use crate::progress::Phase;
use crate::record::{OrphanRecord, OrphansEnd};
use crate::time::{future_warning, AgePolicy, Time};

/// What counts as old enough.
#[derive(Clone, Debug)]
pub struct Config {
    /// Blobs and links younger than this are never reported.
    pub min_age: Duration,
    /// Uploads started longer ago than this are reported.
    pub upload_age: Duration,
    /// The time ages are measured against (now; tests move it).
    pub now: SystemTime,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_age: Duration::from_secs(3600),
            upload_age: Duration::from_secs(168 * 3600),
            now: SystemTime::now(),
        }
    }
}

impl Config {
    /// The grace period of `--min-age`.
    fn ages(&self) -> AgePolicy {
        AgePolicy {
            now: self.now,
            min_age: self.min_age,
        }
    }

    fn old_enough(&self, mtime: SystemTime) -> bool {
        self.ages().old(mtime)
    }

    fn future(&self, mtime: SystemTime) -> bool {
        self.ages().future(mtime)
    }
}

mod input;
mod output;
mod results;
mod sets;
mod sweep;

pub use input::*;
pub use output::*;
pub use results::*;
pub use sets::*;
pub use sweep::*;

/// The whole tool after argument parsing: reads all of `input`, walks,
/// prints. Nothing reaches `out` unless the input is complete and the walk
/// found nothing fatal.
pub fn run<W: Write>(
    store: &Store,
    input: impl BufRead,
    cfg: &Config,
    out: &mut Out<W>,
    msgs: &Messages,
) -> anyhow::Result<(OrphansEnd, InputStats)> {
    let refs = read_refs(input)?;
    if refs.stats.unknown > 0 {
        msgs.warn(format!(
            "{} input records of a kind this version does not know: every digest in them was kept",
            refs.stats.unknown
        ));
    }
    let found = find(store, &refs, cfg, msgs)?;
    let end = write(&found, out, msgs)?;
    Ok((end, refs.stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use std::fs;
    use std::path::Path;

    const HOUR: Duration = Duration::from_secs(3600);

    fn put(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn age(root: &Path, rel: &str, by: Duration) {
        let f = fs::File::options().write(true).open(root.join(rel)).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    fn blob(root: &Path, content: &[u8]) -> Digest {
        let d = Digest::sha256_of(content);
        put(root, &paths::blob_data(&d), content);
        d
    }

    fn link(root: &Path, rel: &str, d: &Digest) {
        put(root, rel, d.to_string().as_bytes());
    }

    /// A small image: config and layer blobs, the manifest blob, its
    /// revision and _layers links in `repo`, and a tag if given.
    struct Img {
        manifest: Digest,
        config: Digest,
        layer: Digest,
    }

    fn image(root: &Path, repo: &str, tag: Option<&str>, name: &str) -> Img {
        let config = blob(root, format!("{{\"config\":\"{name}\"}}").as_bytes());
        let layer = blob(root, format!("layer of {name}").as_bytes());
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#,
            crate::manifest::OCI_MANIFEST
        );
        let manifest = blob(root, m.as_bytes());
        link(root, &paths::revision_link(repo, &manifest), &manifest);
        link(root, &paths::layer_link(repo, &config), &config);
        link(root, &paths::layer_link(repo, &layer), &layer);
        if let Some(t) = tag {
            link(root, &paths::tag_current(repo, t), &manifest);
        }
        Img {
            manifest,
            config,
            layer,
        }
    }

    /// What reg-refs prints for one image, as root `kind` ("tag" or "revision").
    fn refs_of(repo: &str, img: &Img, root_kind: &str) -> String {
        let (m, c, l) = (img.manifest, img.config, img.layer);
        let root = if root_kind == "tag" {
            format!(r#"{{"kind":"tag","repo":"{repo}","tag":"t","digest":"{m}"}}"#)
        } else {
            format!(r#"{{"kind":"revision","repo":"{repo}","digest":"{m}"}}"#)
        };
        format!(
            "{root}\n{{\"kind\":\"config\",\"repo\":\"{repo}\",\"manifest\":\"{m}\",\"digest\":\"{c}\",\"size\":1}}\n\
             {{\"kind\":\"layer\",\"repo\":\"{repo}\",\"manifest\":\"{m}\",\"digest\":\"{l}\",\"size\":1}}\n"
        )
    }

    /// A reg-refs trailer without its root and true counts: [`fix_trailers`]
    /// fills them in, as reg-refs would have.
    const END: &str = r#"{"kind":"end","tool":"reg-refs","repos":1,"tags":1,"manifests":1,"references":2,"missing":0,"complete":true,"revisions":0}"#;

    /// Gives each reg-refs trailer in `input` that has no `root` the counts
    /// of the records before it and `root`: the input reg-refs would print.
    fn fix_trailers(input: &str, root: &str) -> String {
        let (mut tags, mut revs, mut refs) = (0, 0, 0);
        let mut out = String::new();
        for line in input.split_inclusive('\n') {
            let body = line.trim_end_matches(['\r', '\n']);
            let parsed: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(body).ok();
            match parsed {
                Some(mut m)
                    if m.get("kind").is_some_and(|k| k == "end")
                        && m.get("tool").is_some_and(|t| t == "reg-refs")
                        && !m.contains_key("root") =>
                {
                    m.insert("tags".into(), tags.into());
                    m.insert("revisions".into(), revs.into());
                    m.insert("references".into(), refs.into());
                    m.insert("root".into(), root.into());
                    out.push_str(&serde_json::to_string(&m).unwrap());
                    out.push_str(&line[body.len()..]);
                    continue;
                }
                Some(m) => match m.get("kind").and_then(|k| k.as_str()) {
                    Some("tag") => tags += 1,
                    Some("revision") => revs += 1,
                    Some("manifest" | "config" | "layer" | "referrer") => refs += 1,
                    _ => {}
                },
                None => {}
            }
            out.push_str(line);
        }
        out
    }

    fn read_fixed(input: &str) -> Result<LiveRefs, InputError> {
        read_refs(fix_trailers(input, "/r").as_bytes())
    }

    fn later(h: u32) -> Config {
        Config {
            min_age: HOUR,
            upload_age: 168 * HOUR,
            now: SystemTime::now() + HOUR * h,
        }
    }

    /// Runs the tool on `v2` with `input`: (records, stdout, errors reported).
    fn orphans(v2: &Path, input: &str, cfg: &Config) -> anyhow::Result<(Vec<serde_json::Value>, u64)> {
        let store = Store::fs(v2);
        let msgs = Messages::new("reg-orphans", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        let input = fix_trailers(input, &store.root_id());
        run(&store, input.as_bytes(), cfg, &mut out, &msgs)?;
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        let recs = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        Ok((recs, msgs.errors()))
    }

    /// A run that reports an error (here a tag directory that lost its
    /// `current/link`, as while a push or an untag is under way) exits 1
    /// and writes no trailer: the error record stands in its place, and
    /// reg-rm refuses the list, as reg-orphans refuses one without the
    /// reg-refs trailer.
    #[test]
    fn a_run_that_reports_an_error_writes_no_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "app", Some("t"), "one");
        let garbage = blob(v2, b"garbage");
        let input = format!("{}{END}\n", refs_of("app", &img, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(recs.last().unwrap()["kind"], "end");

        fs::remove_file(v2.join(paths::tag_current("app", "t"))).unwrap();
        link(
            v2,
            &paths::tag_index_entry("app", "t", &img.manifest),
            &img.manifest,
        );
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert!(errors > 0);
        assert!(of_kind(&recs, "end").is_empty(), "{recs:#?}");
        let last = recs.last().unwrap();
        assert_eq!(
            *last,
            serde_json::json!({"kind": "error", "tool": "reg-orphans", "errors": errors})
        );
        // What it printed before is still what an error keeps safe...
        assert_eq!(digests(&recs, "blob"), vec![garbage.to_string()]);
        // ...but no tool downstream acts on it.
        let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
        let e = crate::rm::parse_input(text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("reg-orphans failed") && e.contains("not complete"),
            "{e}"
        );
        assert!(e.contains(&format!("line {}", recs.len())), "{e}");
    }

    fn of_kind<'a>(recs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
        recs.iter().filter(|r| r["kind"] == kind).collect()
    }

    fn digests(recs: &[serde_json::Value], kind: &str) -> Vec<String> {
        let mut v: Vec<String> = of_kind(recs, kind)
            .iter()
            .map(|r| r["digest"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    fn sorted(ds: &[Digest]) -> Vec<String> {
        let mut v: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn reads_records_digests_and_the_trailer() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let input = format!(
            "{b}\n\n{{\"kind\":\"manifest\",\"repo\":\"x/y\",\"manifest\":\"{a}\",\"digest\":\"{c}\",\"extra\":[1]}}\r\n{END}\n\n"
        );
        let refs = read_fixed(&input).unwrap();
        for d in [a, b, c] {
            assert!(refs.blob_referenced(&d), "{d}");
        }
        assert!(refs.revision_live("x/y", &a));
        assert!(refs.revision_live("x/y", &c));
        assert!(!refs.revision_live("other", &a));
        // A bare digest keeps its revision in every repository.
        assert!(refs.revision_live("other", &b));
        assert!(refs.names_repo("x/y"));
        assert_eq!(refs.stats.records, 2);
        assert_eq!(refs.stats.bare_digests, 1);
        assert_eq!(refs.pair_count(), 2);
        assert_eq!(refs.blob_count(), 3);
    }

    #[test]
    fn a_trailer_that_does_not_describe_the_records_or_this_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        let full = fix_trailers(
            &format!("{}{END}\n", refs_of("r", &img, "tag")),
            &Store::fs(v2).root_id(),
        );
        let lines: Vec<&str> = full.lines().collect();
        let trailer = lines[lines.len() - 1];
        for (input, want) in [
            // A trailer alone (`reg-refs | tail -1`).
            (
                format!("{trailer}\n"),
                "disagree: it counts 1 tag records, the input holds 0",
            ),
            // A line cut out of the middle.
            (
                format!("{}\n{}\n{trailer}\n", lines[0], lines[2]),
                "it counts 2 reference records, the input holds 1",
            ),
            // Made on another root.
            (
                full.replace(&Store::fs(v2).root_id(), "/srv/other/v2"),
                "another storage root (/srv/other/v2)",
            ),
        ] {
            let store = Store::fs(v2);
            let msgs = Messages::new("reg-orphans", true);
            let mut out = Out::new(Vec::new(), Format::Json);
            let e = run(&store, input.as_bytes(), &later(1000), &mut out, &msgs).unwrap_err();
            assert!(e.to_string().contains(want), "{input}: {e}");
            assert!(out.into_inner().unwrap().is_empty());
        }
        // A trailer without root (by hand, or an older reg-refs).
        let e = read_refs(format!("{}\n{}\n", lines[0], trailer.replace("\"root\"", "\"rot\"")).as_bytes())
            .err()
            .unwrap();
        assert!(e.to_string().contains("without \"root\""), "{e}");
        // The same root through a symbolic link is this root.
        std::os::unix::fs::symlink(v2, dir.path().with_extension("alias")).unwrap();
        let alias = dir.path().with_extension("alias");
        let via = full.replace(&Store::fs(v2).root_id(), &alias.display().to_string());
        let (recs, errors) = orphans(v2, &via, &later(1000)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(recs.last().unwrap()["kind"], "end");
        std::fs::remove_file(alias).unwrap();
    }

    #[test]
    fn an_empty_blob_store_or_a_future_mtime_is_never_a_reason_to_collect() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        let orphan = blob(v2, b"orphan from the future");
        let year_2400 = SystemTime::UNIX_EPOCH + Duration::from_secs(13_569_465_600);
        fs::File::open(v2.join(paths::blob_data(&orphan)))
            .unwrap()
            .set_modified(year_2400)
            .unwrap();
        let input = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let cfg = Config {
            min_age: Duration::ZERO,
            ..later(0)
        };
        let store = Store::fs(v2);
        let msgs = Messages::new("reg-orphans", true);
        let mut out = Out::new(Vec::new(), Format::Json);
        let fixed = fix_trailers(&input, &store.root_id());
        run(&store, fixed.as_bytes(), &cfg, &mut out, &msgs).unwrap();
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        assert!(!text.contains(&orphan.to_string()), "{text}");
        assert_eq!(msgs.warnings(), 1);

        fs::rename(v2.join("blobs"), v2.join("blobs.away")).unwrap();
        fs::create_dir(v2.join("blobs")).unwrap();
        let e = orphans(v2, &input, &cfg).unwrap_err();
        assert!(e.to_string().contains(crate::layout::EMPTY_BLOB_STORE), "{e}");
    }

    #[test]
    fn refuses_incomplete_or_unreadable_input() {
        let d = Digest::sha256_of(b"d");
        let rec = format!(r#"{{"kind":"revision","repo":"r","digest":"{d}"}}"#);
        let table: Vec<(String, u64, &str)> = vec![
            (String::new(), 0, "no input"),
            ("\n\n".into(), 0, "no input"),
            (format!("{rec}\n"), 1, "without the reg-refs trailer"),
            // Cut in the middle of a line.
            (format!("{rec}\n{}", &rec[..20]), 2, "not a reference record"),
            (format!("{rec}\n{}", &END[..30]), 2, "not a reference record"),
            (
                format!("{rec}\nhello\n{END}\n"),
                2,
                "neither a JSON record nor a digest",
            ),
            (
                format!("{rec}\nsha256:abc\n{END}\n"),
                2,
                "neither a JSON record nor a digest",
            ),
            (
                format!("{rec}\n{{\"repo\":\"r\"}}\n{END}\n"),
                2,
                "missing field `kind`",
            ),
            (format!("{rec}\n[1]\n{END}\n"), 2, "neither"),
            (
                format!("{{\"kind\":\"error\",\"message\":\"boom\"}}\n{END}\n"),
                1,
                "an error record",
            ),
            (
                format!("{{\"kind\":\"layer\",\"repo\":\"r\",\"digest\":\"{d}\"}}\n{END}\n"),
                1,
                "without \"manifest\"",
            ),
            (
                format!("{{\"kind\":\"tag\",\"repo\":\"r\",\"digest\":\"sha256:00\"}}\n{END}\n"),
                1,
                "invalid digest",
            ),
            (
                format!("{{\"kind\":\"tag\",\"repo\":\"R/../x\",\"digest\":\"{d}\"}}\n{END}\n"),
                1,
                "invalid repository name",
            ),
            (
                format!("{END}\n{rec}\n"),
                2,
                "more input after the reg-refs trailer on line 1",
            ),
            (format!("{END}\n{END}\n"), 2, "more input after"),
            (
                format!(
                    "{rec}\n{}\n",
                    END.replace("\"complete\":true", "\"complete\":false")
                ),
                2,
                "--repo",
            ),
            (
                format!("{rec}\n{}\n", END.replace(",\"complete\":true", "")),
                2,
                "--repo",
            ),
            (
                format!("{rec}\n{}\n", END.replace("reg-refs", "reg-orphans")),
                2,
                "not from reg-refs",
            ),
            (format!("{rec}\n\u{0}\u{ff}\n{END}\n"), 2, "neither"),
        ];
        for (input, line, want) in table {
            let e = read_fixed(&input)
                .err()
                .unwrap_or_else(|| panic!("accepted {input:?}"));
            assert_eq!(e.line, line, "{input:?}: {e}");
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
        let e = read_refs(&b"\xff\xfe\n"[..]).err().unwrap();
        assert_eq!((e.line, e.why.as_str()), (1, "not valid UTF-8"));
    }

    #[test]
    fn unknown_kinds_keep_everything_they_name() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let input = format!(
            "{{\"kind\":\"future\",\"repo\":\"r\",\"digest\":\"{a}\"}}\n{{\"kind\":\"future\",\"manifest\":\"{b}\"}}\n{END}\n"
        );
        let refs = read_fixed(&input).unwrap();
        assert_eq!(refs.stats.unknown, 2);
        assert!(refs.blob_referenced(&a) && refs.blob_referenced(&b));
        assert!(refs.revision_live("r", &a));
        assert!(refs.revision_live("elsewhere", &b));
    }

    #[test]
    fn cut_input_prints_nothing_even_with_orphans_in_store() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "one");
        blob(v2, b"orphan");
        let full = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let (recs, errors) = orphans(v2, &full, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(of_kind(&recs, "blob").len(), 1);
        // Every cut of the input is refused, and nothing is printed.
        let lines: Vec<&str> = full.lines().collect();
        for n in 0..lines.len() {
            let cut = lines[..n].join("\n");
            let store = Store::fs(v2);
            let msgs = Messages::new("reg-orphans", true);
            let mut out = Out::new(Vec::new(), Format::Json);
            let r = run(&store, cut.as_bytes(), &later(2), &mut out, &msgs);
            assert!(r.is_err(), "cut after {n} lines accepted");
            assert!(out.into_inner().unwrap().is_empty());
        }
    }

    #[test]
    fn finds_every_kind_and_keeps_what_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let tagged = image(v2, "r", Some("t"), "tagged");
        let untagged = image(v2, "r", None, "untagged");
        let lone = blob(v2, b"uploaded, never referenced");
        link(v2, &paths::layer_link("r", &lone), &lone);
        // A _layers link whose blob is gone.
        let gone = Digest::sha256_of(b"gone");
        link(v2, &paths::layer_link("r", &gone), &gone);
        // A repository whose only manifest was deleted: links stay.
        let del = image(v2, "deleted/img", None, "deleted");
        fs::remove_file(v2.join(paths::revision_link("deleted/img", &del.manifest))).unwrap();
        // An empty repository.
        fs::create_dir_all(v2.join("repositories/empty/_manifests")).unwrap();
        // Stale uploads, with and without startedat, in a live repository.
        put(
            v2,
            "repositories/r/_uploads/u-1/startedat",
            b"2020-01-02T03:04:05Z",
        );
        put(v2, "repositories/r/_uploads/u-1/data", b"12345");
        fs::create_dir_all(v2.join("repositories/r/_uploads/u-2")).unwrap();

        let input = format!("{}{END}\n", refs_of("r", &tagged, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(200)).unwrap();
        assert_eq!(errors, 0);
        let mut want_blobs = vec![
            untagged.manifest,
            untagged.config,
            untagged.layer,
            lone,
            del.manifest,
            del.config,
            del.layer,
        ];
        want_blobs.sort();
        assert_eq!(digests(&recs, "blob"), sorted(&want_blobs));
        assert_eq!(digests(&recs, "revision"), sorted(&[untagged.manifest]));
        assert_eq!(of_kind(&recs, "revision")[0]["repo"], "r");
        assert_eq!(digests(&recs, "layer-link"), sorted(&[gone]));
        let ups: Vec<(&str, u64)> = of_kind(&recs, "upload")
            .iter()
            .map(|r| (r["id"].as_str().unwrap(), r["size"].as_u64().unwrap()))
            .collect();
        assert_eq!(ups, vec![("u-1", 5), ("u-2", 0)]);
        assert_eq!(of_kind(&recs, "upload")[0]["started_at"], "2020-01-02T03:04:05Z");
        let repos: Vec<&str> = of_kind(&recs, "repo")
            .iter()
            .map(|r| r["repo"].as_str().unwrap())
            .collect();
        assert_eq!(repos, vec!["deleted/img", "empty"]);
        // Sizes add up to the bytes freed; the trailer says the same.
        let end = recs.last().unwrap();
        assert_eq!(end["kind"], "end");
        assert_eq!(end["tool"], "reg-orphans");
        let sum: u64 = recs.iter().map(|r| r["size"].as_u64().unwrap_or(0)).sum();
        assert_eq!(
            sum,
            end["blob_bytes"].as_u64().unwrap() + end["upload_bytes"].as_u64().unwrap()
        );
        assert_eq!(end["blobs"], 7);
        assert_eq!(end["stored_blobs"], 10);
        assert_eq!(end["too_young"], 0);
        // Kind order, each sorted: the output is deterministic.
        let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        let mut k = kinds.clone();
        k.dedup();
        assert_eq!(k, vec!["blob", "revision", "layer-link", "upload", "repo", "end"]);
        assert_eq!(orphans(v2, &input, &later(200)).unwrap().0, recs);

        // With every revision as a root (reg-refs' default) the untagged
        // image is live, and so is its repository.
        let input = format!(
            "{}{}{END}\n",
            refs_of("r", &tagged, "tag"),
            refs_of("r", &untagged, "revision")
        );
        let (recs, _) = orphans(v2, &input, &later(200)).unwrap();
        assert_eq!(
            digests(&recs, "blob"),
            sorted(&[lone, del.manifest, del.config, del.layer])
        );
        assert!(of_kind(&recs, "revision").is_empty());
    }

    #[test]
    fn layer_links_are_reported_only_when_their_blob_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "live");
        // Referenced by the input, never stored: a broken image's link.
        let rgone = Digest::sha256_of(b"referenced, never stored");
        // Unreferenced: young and stored, old and stored, never stored.
        let young = blob(v2, b"unreferenced, young");
        let old = blob(v2, b"unreferenced, old");
        let gone = Digest::sha256_of(b"unreferenced, never stored");
        for d in [img.manifest, img.config, img.layer, old] {
            age(v2, &paths::blob_data(&d), 2 * HOUR);
        }
        for d in [img.config, img.layer, rgone, young, old, gone] {
            if ![img.config, img.layer].contains(&d) {
                link(v2, &paths::layer_link("r", &d), &d);
            }
            age(v2, &paths::layer_link("r", &d), 2 * HOUR);
        }
        age(v2, &paths::revision_link("r", &img.manifest), 2 * HOUR);
        let input = format!(
            "{}{{\"kind\":\"layer\",\"repo\":\"r\",\"manifest\":\"{}\",\"digest\":\"{rgone}\",\"size\":1}}\n{END}\n",
            refs_of("r", &img, "tag"),
            img.manifest
        );
        let (recs, errors) = orphans(v2, &input, &later(0)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "layer-link"), sorted(&[rgone, gone]));
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert_eq!(recs.last().unwrap()["stored_blobs"], 5);
        assert_eq!(recs.last().unwrap()["too_young"], 1);
    }

    #[test]
    fn sorted_sets_dedup_across_compactions() {
        let mut s: SortedSet<u32> = SortedSet::default();
        // Enough pushes to compact several times, each value many times.
        for round in 0..5u32 {
            for i in 0..70_000u32 {
                s.insert((i * 7919 + round) % 100_000);
            }
        }
        s.finish();
        let want: std::collections::BTreeSet<u32> = (0..5u32)
            .flat_map(|round| (0..70_000u32).map(move |i| (i * 7919 + round) % 100_000))
            .collect();
        assert_eq!(s.len(), want.len());
        assert!(want.iter().all(|k| s.contains(k)));
        assert!(!s.contains(&100_000));
        // Digest keys, indexed by their first two bytes.
        let mut d: SortedSet<u64> = SortedSet::default();
        let keys: Vec<u64> = (0..200_000u32)
            .map(|i| key(&Digest::sha256_of(&i.to_le_bytes())))
            .collect();
        for k in keys.iter().chain(&keys[..1000]) {
            d.insert(*k);
        }
        d.finish();
        assert_eq!(d.len(), keys.len());
        assert!(!d.index.is_empty());
        for (i, k) in keys.iter().enumerate().step_by(7) {
            assert_eq!(d.items[d.position(k).unwrap()], *k, "{i}");
        }
        assert!(!d.contains(&key(&Digest::sha256_of(b"absent"))));
        let bits = Bits::new(130);
        bits.set(129);
        bits.set(3);
        assert!(bits.get(129) && bits.get(3) && !bits.get(64) && !bits.get(128));
    }

    #[test]
    fn grace_period_keeps_fresh_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let fresh = blob(v2, b"fresh");
        let old = blob(v2, b"old");
        age(v2, &paths::blob_data(&old), 2 * HOUR);
        // An old blob with a fresh _layers link (a mount, a push in flight).
        let relinked = blob(v2, b"relinked");
        age(v2, &paths::blob_data(&relinked), 2 * HOUR);
        link(v2, &paths::layer_link("r", &relinked), &relinked);
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert_eq!(recs.last().unwrap()["too_young"], 2);
        // Nor is the repository holding the fresh link.
        assert!(of_kind(&recs, "repo").is_empty());
        // Two hours on, all three are.
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(3)).unwrap();
        assert_eq!(digests(&recs, "blob"), sorted(&[fresh, old, relinked]));
        assert_eq!(of_kind(&recs, "repo").len(), 1);
        // --min-age 0s reports everything now.
        let cfg = Config {
            min_age: Duration::ZERO,
            ..later(0)
        };
        let (recs, _) = orphans(v2, &format!("{END}\n"), &cfg).unwrap();
        assert_eq!(of_kind(&recs, "blob").len(), 3);
    }

    #[test]
    fn a_recent_untagged_manifest_keeps_its_old_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", None, "recent");
        for d in [img.manifest, img.config, img.layer] {
            age(v2, &paths::blob_data(&d), 2 * HOUR);
        }
        for d in [img.config, img.layer] {
            age(v2, &paths::layer_link("r", &d), 2 * HOUR);
        }
        // Only the revision link is fresh (pushed after reg-refs ran).
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "revision").is_empty());
        assert!(of_kind(&recs, "repo").is_empty());
        assert_eq!(recs.last().unwrap()["too_young"], 4);
        // Likewise a tag the input does not name, however old.
        age(v2, &paths::revision_link("r", &img.manifest), 2 * HOUR);
        link(v2, &paths::tag_current("r", "new"), &img.manifest);
        age(v2, &paths::tag_current("r", "new"), 2 * HOUR);
        let (recs, _) = orphans(v2, &format!("{END}\n"), &later(0)).unwrap();
        assert_eq!(recs.len(), 1, "{recs:?}");
        // A recent manifest that cannot be read stops the run.
        fs::remove_dir_all(v2.join("repositories/r/_manifests/tags")).unwrap();
        link(v2, &paths::revision_link("r", &img.manifest), &img.manifest);
        fs::write(v2.join(paths::blob_data(&img.manifest)), b"garbage").unwrap();
        let e = orphans(v2, &format!("{END}\n"), &later(0)).unwrap_err();
        assert!(format!("{e:#}").contains("does not hash"), "{e:#}");
    }

    #[test]
    fn compact_lists_keep_digest_order_with_sha512_entries() {
        let at = |s: i64| crate::time::from_unix_secs(s, 0);
        let long = |b: u8| Digest::from_bytes(crate::digest::Algorithm::Sha512, &[b; 64]);
        let short = |b: u8| Digest::sha256([b; 32]);
        let mut revs = Revisions::default();
        for (repo, d, secs) in [
            (1, long(1), -5),
            (0, short(9), 7),
            (1, short(2), 3),
            (0, long(0), 1),
            (1, short(0), 2),
        ] {
            revs.push(
                repo,
                &Revision {
                    digest: d,
                    mtime: at(secs),
                    target: None,
                },
            );
        }
        revs.sort();
        let got: Vec<(u32, Digest, i64)> = revs.iter().map(|r| (r.repo, r.digest, r.secs)).collect();
        assert_eq!(
            got,
            vec![
                (0, short(9), 7),
                (0, long(0), 1),
                (1, short(0), 2),
                (1, short(2), 3),
                (1, long(1), -5)
            ]
        );
        let mut blobs = Blobs::default();
        for (d, secs) in [(long(3), -70), (short(5), 1), (short(1), 2)] {
            blobs.push(Blob {
                digest: d,
                size: secs as u64,
                mtime: at(secs),
            });
        }
        blobs.sort();
        let got: Vec<(Digest, SystemTime)> = blobs.iter().map(|b| (b.digest, b.mtime)).collect();
        assert_eq!(
            got,
            vec![(short(1), at(2)), (short(5), at(1)), (long(3), at(-70))]
        );
        assert!(blobs.contains(&long(3)) && blobs.contains(&short(5)) && !blobs.contains(&short(3)));
        blobs.retain(|d| *d != short(5));
        assert_eq!(blobs.len(), 2);
    }

    #[test]
    fn a_digest_sharing_its_first_bytes_with_a_referenced_one_is_kept() {
        // The referenced sets hold 8 bytes of each digest: a stored blob
        // whose digest starts like a referenced one must look referenced
        // (kept), never the referenced one look unreferenced.
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "one", Some("t"), "kept");
        let lone = blob(v2, b"unreferenced, but its first bytes are named");
        let stray = blob(v2, b"unreferenced");
        let mut twin = *lone.bytes().first_chunk::<32>().unwrap();
        twin[31] ^= 0xff;
        let twin = Digest::sha256(twin);
        assert_ne!(twin, lone);
        let input = format!(
            "{}{{\"kind\":\"layer\",\"repo\":\"one\",\"manifest\":\"{}\",\"digest\":\"{twin}\",\"size\":1}}\n{END}\n",
            refs_of("one", &img, "tag"),
            img.manifest
        );
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "blob"), sorted(&[stray]));
    }

    #[test]
    fn a_blob_referenced_only_from_another_repository_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "one", Some("t"), "shared");
        // Repository "two" has links to the same blobs and nothing else.
        for d in [img.config, img.layer] {
            link(v2, &paths::layer_link("two", &d), &d);
        }
        let input = format!("{}{END}\n", refs_of("one", &img, "tag"));
        let (recs, errors) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "layer-link").is_empty());
        // "two" holds no tag and no revision: the repository is an orphan,
        // but the blobs it links stay (another repository uses them).
        let repos: Vec<&str> = of_kind(&recs, "repo")
            .iter()
            .map(|r| r["repo"].as_str().unwrap())
            .collect();
        assert_eq!(repos, vec!["two"]);
        // A manifest revision live in one repository but not another.
        link(v2, &paths::revision_link("two", &img.manifest), &img.manifest);
        let (recs, _) = orphans(v2, &input, &later(2)).unwrap();
        assert_eq!(digests(&recs, "revision"), sorted(&[img.manifest]));
        assert_eq!(of_kind(&recs, "revision")[0]["repo"], "two");
        assert!(of_kind(&recs, "blob").is_empty());
    }

    #[test]
    fn uploads_age_by_startedat_or_directory_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let img = image(v2, "r", Some("t"), "x");
        let recent = humantime::format_rfc3339_seconds(SystemTime::now() - HOUR).to_string();
        put(v2, "repositories/r/_uploads/with/startedat", recent.as_bytes());
        fs::create_dir_all(v2.join("repositories/r/_uploads/without")).unwrap();
        // An upload alone in its repository keeps it while it is fresh.
        fs::create_dir_all(v2.join("repositories/new/_uploads/busy")).unwrap();
        let input = format!("{}{END}\n", refs_of("r", &img, "tag"));
        let ids = |cfg: &Config| {
            let (recs, _) = orphans(v2, &input, cfg).unwrap();
            let mut ids: Vec<String> = of_kind(&recs, "upload")
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            ids.extend(
                of_kind(&recs, "repo")
                    .iter()
                    .map(|r| format!("repo {}", r["repo"])),
            );
            ids
        };
        let at = |h: u32, upload_h: u32| Config {
            upload_age: HOUR * upload_h,
            ..later(h)
        };
        assert!(ids(&at(0, 168)).is_empty());
        // startedat is an hour old; the directories are new.
        assert_eq!(ids(&at(0, 1)), vec!["with"]);
        assert_eq!(ids(&at(2, 1)), vec!["busy", "with", "without", "repo \"new\""]);
        let zero = Config {
            upload_age: Duration::ZERO,
            ..later(0)
        };
        assert_eq!(ids(&zero), vec!["busy", "with", "without", "repo \"new\""]);
        // An unreadable startedat is an error, and keeps the upload.
        put(v2, "repositories/new/_uploads/busy/startedat", b"yesterday");
        let (recs, errors) = orphans(v2, &input, &at(2, 1)).unwrap();
        assert_eq!(errors, 1);
        assert!(of_kind(&recs, "repo").is_empty());
        assert_eq!(of_kind(&recs, "upload").len(), 2);
    }

    #[test]
    fn listing_problems_keep_what_they_concern() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path();
        let old = blob(v2, b"unreferenced");
        // A garbled revision link is not opened here: it is the revision
        // its path names (reg-ls reads it and reports the disagreement; reg-rm
        // keeps a revision whose manifest is missing without --accept-broken).
        let d = Digest::sha256_of(b"whatever");
        put(v2, &paths::revision_link("r", &d), b"");
        let (recs, errors) = orphans(v2, &format!("{END}\n"), &later(2)).unwrap();
        assert_eq!(errors, 0);
        assert_eq!(digests(&recs, "revision"), sorted(&[d]));
        assert_eq!(digests(&recs, "blob"), sorted(&[old]));
        assert!(Store::fs(v2).revisions("r").errors[0]
            .to_string()
            .contains("bad link file"));
        // A directory that cannot be read (a file where a directory should
        // be reads as one) may hide recent links: no blob is reported.
        fs::remove_dir_all(v2.join("repositories/r")).unwrap();
        put(
            v2,
            &format!("repositories/s/_layers/sha256/{}", old.hex()),
            b"not a directory",
        );
        let (recs, errors) = orphans(v2, &format!("{END}\n"), &later(2)).unwrap();
        assert!(errors >= 1, "{recs:?}");
        assert!(of_kind(&recs, "blob").is_empty(), "{recs:?}");
        assert!(of_kind(&recs, "repo").is_empty());
    }
}
