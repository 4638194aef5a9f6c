//! The fault suite: what goes wrong around a garbage collection in real
//! life (an unmounted volume, a cut or foreign pipeline, a hand-made list, a
//! FIFO or a symbolic link in the tree, a closed pipe, a bad trash
//! directory, odd clocks), each on the scenario's tree with the registry
//! stopped and every file aged by three days, so that no grace period
//! protects anything. Each case asserts the exit status and the message,
//! that nothing was deleted where the tools must refuse, and that after
//! undoing the fault every tag, platform and live referrer still pulls.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reg_tests::oci::seeded_hex;
use reg_tests::tools::{reader, wait_limited};
use reg_tests::tree::{self, age_tree, assert_unchanged, snapshot, THREE_DAYS};
use reg_tests::{everything_live_pulls, orphan_list, reg_rm, skopeo, Pushed, Registry, Run, Tool};
use serde_json::Value;

use super::scenario;

/// Longer than this on the scenario's tree is a hang.
const LIMIT: Duration = Duration::from_secs(20);

const NO_BLOB_STORE: &str = "blob store is empty or missing";

/// The scenario pushed, the registry stopped, every file and directory
/// aged by three days.
struct Aged {
    reg: Registry,
    p: Pushed,
}

fn aged(test: &str) -> Option<Aged> {
    let (mut reg, p) = scenario(test)?;
    reg.stop().unwrap();
    age_tree(reg.root(), THREE_DAYS);
    Some(Aged { reg, p })
}

impl Aged {
    fn root(&self) -> PathBuf {
        self.reg.root().to_path_buf()
    }

    fn v2(&self) -> PathBuf {
        self.reg.v2()
    }

    /// A directory next to the root, on the same filesystem, outside it.
    fn beside(&self, name: &str) -> PathBuf {
        self.reg.work_dir().join(name)
    }

    /// A path on /dev/shm (tmpfs: another filesystem than the root's)
    /// named after this test's work directory and `suffix`, removed when
    /// the guard returned with it drops.
    fn on_shm(&self, suffix: &str) -> (PathBuf, RemoveOnDrop) {
        let name = self
            .reg
            .work_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let path = Path::new("/dev/shm").join(format!("{name}-{suffix}"));
        (path.clone(), RemoveOnDrop(path))
    }

    /// Starts the registry (again) and pulls everything live.
    #[track_caller]
    fn start_and_pull(&mut self) {
        self.reg.restart().unwrap();
        everything_live_pulls(&self.reg, &self.p);
    }

    /// Pulls `image` (`repo:tag` or `repo@digest`) with skopeo; panics,
    /// with `what` (why it must pull), unless it does.
    #[track_caller]
    fn must_pull(&self, image: &str, what: &str) {
        skopeo::pull_all(&self.reg.image_ref(image)).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    }

    /// The digest `repo:tag` was pushed as.
    fn tagged(&self, repo: &str, tag: &str) -> String {
        self.p.tags[repo][tag].clone()
    }
}

/// `name` with the hang limit.
fn tool(name: &str) -> Tool {
    Tool::new(name).timeout(LIMIT)
}

/// The digests of `kind` records with `action` (reg-rm output).
fn digests_with(run: &Run, kind: &str, action: &str) -> BTreeSet<String> {
    run.records()
        .iter()
        .filter(|r| r["kind"] == kind && r["action"] == action)
        .map(|r| r["digest"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Blob digests `reg-ls ROOT --kind blob` lists.
fn stored_blobs(root: &Path) -> BTreeSet<String> {
    let ls = tool("reg-ls").arg(root).args(["--kind", "blob"]).run();
    ls.success();
    ls.records()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// `reg-orphans [EXTRA] ROOT` refuses `list`, saying `why`, and prints
/// nothing.
#[track_caller]
fn orphans_refuse(root: &Path, extra: &[&str], list: &str, why: &str) {
    tool("reg-orphans")
        .args(extra)
        .arg(root)
        .stdin(list)
        .run()
        .expect_code(1)
        .stderr_has(why)
        .stdout_empty();
}

/// Digests that are valid and stored nowhere, one per line.
fn absent_digests(n: usize) -> String {
    (0..n)
        .map(|i| format!("sha256:{}\n", seeded_hex(&format!("absent {i}"))))
        .collect()
}

/// Removes a directory this test made (by its unique name) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// 1. The blob store is missing (an unmounted volume).

fn blob_store_missing(test: &str, leave_empty_dir: bool) {
    let Some(mut s) = aged(test) else {
        return;
    };
    let (root, v2) = (s.root(), s.v2());
    // What a pipeline made before the volume went away would feed them.
    let refs_before = tool("reg-refs").arg(&root).run();
    refs_before.success();
    let layers_before = tool("reg-ls").arg(&root).args(["--kind", "layer-link"]).run();
    layers_before.success();
    assert!(!layers_before.stdout.is_empty());

    let saved = s.beside("saved-blobs");
    fs::rename(v2.join("blobs"), &saved).unwrap();
    if leave_empty_dir {
        fs::create_dir(v2.join("blobs")).unwrap();
    }
    let before = snapshot(&root);

    for extra in [&[][..], &["--tagged-only"][..]] {
        tool("reg-refs")
            .args(extra)
            .arg(&root)
            .run()
            .expect_code(1)
            .stderr_has(NO_BLOB_STORE)
            .no_trailer();
    }
    orphans_refuse(&root, &[], &refs_before.stdout, NO_BLOB_STORE);
    let one_digest = format!("{}\n", s.p.unreferenced_blob);
    for input in [&layers_before.stdout, &one_digest] {
        for extra in [&[][..], &["--min-age", "0s"][..]] {
            tool("reg-rm")
                .args(extra)
                .arg(&root)
                .stdin(input)
                .run()
                .expect_code(1)
                .stderr_has(NO_BLOB_STORE);
        }
    }
    assert_unchanged(&root, &before, "tools run on a tree without its blob store");

    if leave_empty_dir {
        fs::remove_dir(v2.join("blobs")).unwrap();
    }
    fs::rename(&saved, v2.join("blobs")).unwrap();
    s.start_and_pull();
}

#[test]
fn fault_blob_store_replaced_by_an_empty_directory_every_tool_refuses() {
    blob_store_missing(
        "fault_blob_store_replaced_by_an_empty_directory_every_tool_refuses",
        true,
    );
}

#[test]
fn fault_blob_store_missing_every_tool_refuses() {
    blob_store_missing("fault_blob_store_missing_every_tool_refuses", false);
}

// 2. A reference list that is not the whole truth about this root.

#[test]
fn fault_a_trailer_alone_is_refused() {
    let Some(mut s) = aged("fault_a_trailer_alone_is_refused") else {
        return;
    };
    let root = s.root();
    let refs = tool("reg-refs").arg("--tagged-only").arg(&root).run();
    refs.success();
    let trailer = format!("{}\n", refs.stdout.lines().last().unwrap());
    assert!(trailer.contains(r#""kind":"end""#), "{trailer}");
    let before = snapshot(&root);
    orphans_refuse(&root, &[], &trailer, "disagree");
    assert_unchanged(&root, &before, "reg-orphans");
    s.start_and_pull();
}

#[test]
fn fault_reference_list_missing_a_line_is_refused() {
    let Some(mut s) = aged("fault_reference_list_missing_a_line_is_refused") else {
        return;
    };
    let root = s.root();
    let refs = tool("reg-refs").arg(&root).run();
    refs.success();
    let mut lines: Vec<&str> = refs.stdout.lines().collect();
    let middle = lines.len() / 2;
    assert!(middle > 0 && middle + 1 < lines.len());
    let removed = lines.remove(middle);
    let input = lines.join("\n") + "\n";
    orphans_refuse(&root, &[], &input, "disagree");
    eprintln!("removed line {middle}: {removed}");
    s.start_and_pull();
}

#[test]
fn fault_reference_list_from_another_storage_root_is_refused() {
    let Some(mut s) = aged("fault_reference_list_from_another_storage_root_is_refused") else {
        return;
    };
    let root = s.root();
    // The same content at another path: another registry's storage.
    let other = s.beside("other-root");
    tree::copy_tree(&root, &other);
    let refs = tool("reg-refs").arg(&other).run();
    refs.success();
    orphans_refuse(&root, &[], &refs.stdout, "another storage root");
    let refs = tool("reg-refs").arg("--tagged-only").arg(&other).run();
    refs.success();
    orphans_refuse(&root, &["--min-age", "0s"], &refs.stdout, "another storage root");
    s.start_and_pull();
}

#[test]
fn reference_list_from_the_same_root_by_another_path_is_accepted() {
    let Some(mut s) = aged("reference_list_from_the_same_root_by_another_path_is_accepted") else {
        return;
    };
    let root = s.root();
    let link = s.beside("root-link");
    symlink(&root, &link).unwrap();
    // How a tool is given the storage root: its arguments.
    let by_root = vec![root.clone().into_os_string()];
    let by_link = vec![link.into_os_string()];
    let by_v2 = vec![s.v2().into_os_string()];
    let by_config = vec!["--config".into(), s.reg.config_path().as_os_str().to_owned()];
    let ways = [
        ("symlinked path | root", &by_link, &by_root),
        ("root | symlinked path", &by_root, &by_link),
        ("v2 directory | root", &by_v2, &by_root),
        ("--config | root", &by_config, &by_root),
        ("root | --config", &by_root, &by_config),
    ];
    for (how, refs_root, orphans_root) in ways {
        let refs = tool("reg-refs").arg("--tagged-only").args(refs_root).run();
        refs.success();
        let orphans = tool("reg-orphans").args(orphans_root).stdin(&refs.stdout).run();
        assert_eq!(
            orphans.status.code(),
            Some(0),
            "{how}: `{}` refused a list of its own root:\n{}",
            orphans.cmd,
            orphans.stderr
        );
    }
    s.start_and_pull();
}

// 3. A hand-made blob list.

#[test]
fn fault_hand_made_blob_list_keeps_every_blob_a_revision_needs() {
    let Some(mut s) = aged("fault_hand_made_blob_list_keeps_every_blob_a_revision_needs") else {
        return;
    };
    let root = s.root();
    let blobs = tool("reg-ls").arg(&root).args(["--kind", "blob"]).run();
    blobs.success();
    let run = tool("reg-rm")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&blobs.stdout)
        .run();
    run.success();

    // Every blob a revision (tagged or not) or a live referrer needs is
    // kept, with a reason.
    let kept: BTreeSet<String> = run
        .records()
        .iter()
        .filter(|r| r["kind"] == "blob" && r["action"] == "kept" && r["reason"].is_string())
        .map(|r| r["digest"].as_str().unwrap().to_owned())
        .collect();
    let not_kept: Vec<&String> = s.p.revision_reachable.difference(&kept).collect();
    assert!(
        not_kept.is_empty(),
        "`{}`: blobs that revisions need were not printed as kept: {not_kept:#?}\n--- stdout:\n{}",
        run.cmd,
        run.stdout
    );

    // No revision link points at a missing blob.
    let stored = stored_blobs(&root);
    let revs = tool("reg-ls").arg(&root).args(["--kind", "revision"]).run();
    revs.success();
    for r in revs.records() {
        let d = r["digest"].as_str().unwrap();
        assert!(
            stored.contains(d),
            "revision {} {d} points at a deleted blob",
            r["repo"]
        );
    }

    s.start_and_pull();
    for (repo, d) in s.p.revision_list() {
        s.must_pull(
            &format!("{repo}@{d}"),
            &format!("untagged revision {repo}@{d} no longer pulls"),
        );
    }
}

// 4. The whole reg-ls listing, and untagging on purpose.

#[test]
fn fault_whole_reg_ls_listing_is_refused() {
    let Some(mut s) = aged("fault_whole_reg_ls_listing_is_refused") else {
        return;
    };
    let root = s.root();
    let listing = tool("reg-ls").arg(&root).run();
    listing.success();
    let before = snapshot(&root);
    tool("reg-rm")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&listing.stdout)
        .run()
        .expect_code(1)
        .stderr_has("--untag");
    assert_unchanged(&root, &before, "reg-ls ROOT | reg-rm ROOT");
    tool("reg-rm")
        .args(["--untag", "--min-age", "0s"])
        .arg(&root)
        .stdin(&listing.stdout)
        .run()
        .expect_code(1)
        .stderr_has("unfiltered reg-ls listing");
    assert_unchanged(&root, &before, "reg-ls ROOT | reg-rm --untag ROOT");
    s.start_and_pull();
}

/// A tag directory without `current/link` (a push or an untag under way
/// when reg-orphans looks) is an error: reg-orphans exits 1 and writes an
/// error record where its trailer would be, and reg-rm refuses the list.
#[test]
fn fault_reg_orphans_that_fails_writes_no_trailer_and_reg_rm_refuses_its_list() {
    let Some(mut s) = aged("fault_reg_orphans_that_fails_writes_no_trailer_and_reg_rm_refuses_its_list")
    else {
        return;
    };
    let root = s.root();
    let refs = tool("reg-refs").arg(&root).run();
    refs.success();
    let current = tree::tag_link(&s.v2(), "library/alpine", "3.18");
    let saved = fs::read(&current).unwrap();
    fs::remove_file(&current).unwrap();
    let orphans = tool("reg-orphans").arg(&root).stdin(&refs.stdout).run();
    orphans
        .expect_code(1)
        .stderr_has("library/alpine/_manifests/tags/3.18")
        .no_trailer();
    let recs = orphans.records();
    assert_eq!(recs.last().unwrap()["kind"], "error", "{}", orphans.stdout);
    assert_eq!(recs.last().unwrap()["tool"], "reg-orphans");
    // It still lists what it found (the unreferenced blob among them)...
    assert!(
        orphans.stdout.contains(&s.p.unreferenced_blob),
        "{}",
        orphans.stdout
    );
    // ...and reg-rm, at the end of the same pipeline, acts on none of it.
    let before = snapshot(&root);
    tool("reg-rm")
        .arg(&root)
        .stdin(&orphans.stdout)
        .run()
        .expect_code(1)
        .stderr_has("reg-orphans failed")
        .stdout_empty();
    assert_unchanged(&root, &before, "reg-orphans (failed) | reg-rm ROOT");
    fs::write(&current, saved).unwrap();
    s.start_and_pull();
}

/// `reg-ls ROOT --repo X` leaves blobs out: tags with revisions, links and
/// uploads are still a listing, not an untag decision, and untagging it
/// would take every tag and revision of X, live referrers included.
#[test]
fn fault_one_repositorys_reg_ls_listing_is_refused() {
    let Some(mut s) = aged("fault_one_repositorys_reg_ls_listing_is_refused") else {
        return;
    };
    let root = s.root();
    let listing = tool("reg-ls").arg(&root).args(["--repo", "org/team/app"]).run();
    listing.success();
    let kinds: BTreeSet<String> = listing
        .records()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains("tag") && kinds.contains("revision") && !kinds.contains("blob"),
        "{kinds:?}"
    );
    let before = snapshot(&root);
    tool("reg-rm")
        .arg("--untag")
        .arg(&root)
        .stdin(&listing.stdout)
        .run()
        .expect_code(1)
        .stderr_has("mixed with")
        .stderr_has("unfiltered reg-ls listing")
        .stdout_empty();
    assert_unchanged(
        &root,
        &before,
        "reg-ls ROOT --repo org/team/app | reg-rm --untag ROOT",
    );
    s.start_and_pull();
}

#[test]
fn untag_on_purpose_deletes_that_one_tag() {
    let Some(mut s) = aged("untag_on_purpose_deletes_that_one_tag") else {
        return;
    };
    let root = s.root();
    let tags = tool("reg-ls")
        .arg(&root)
        .args(["--kind", "tag", "--repo", "org/team/app"])
        .run();
    tags.success();
    // jq -c 'select(.tag=="v1")'
    let v1: Vec<&str> = tags
        .stdout
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["tag"] == "v1")
        .collect();
    assert_eq!(v1.len(), 1, "{}", tags.stdout);
    let run = tool("reg-rm")
        .args(["--untag", "--min-age", "0s"])
        .arg(&root)
        .stdin(format!("{}\n", v1[0]))
        .run();
    run.success();
    let deleted: Vec<Value> = run
        .records()
        .into_iter()
        .filter(|r| r["action"] == "deleted")
        .collect();
    assert!(
        deleted.len() == 1 && deleted[0]["kind"] == "tag" && deleted[0]["tag"] == "v1",
        "`{}` should delete the tag v1 and nothing else:\n{}",
        run.cmd,
        run.stdout
    );

    s.reg.restart().unwrap();
    let others: Vec<&String> = s.p.pull.iter().filter(|r| *r != "org/team/app:v1").collect();
    assert_eq!(others.len() + 1, s.p.pull.len());
    for r in others {
        s.must_pull(r, &format!("{r} no longer pulls"));
    }
    assert!(skopeo::pull_all(&s.reg.image_ref("org/team/app:v1")).is_err());
    let tags = s.reg.api().tags("org/team/app").unwrap();
    assert!(!tags.contains(&"v1".to_owned()), "{tags:?}");
}

// 5. A FIFO where a file should be.

/// Puts a FIFO in place of the file `pick` chooses (with whether reg-refs
/// reads it), runs the readers, puts the file back.
/// Which tool of the pipeline opens the file a FIFO replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// reg-refs reads it (a tag link, a manifest): it refuses.
    Refs,
    /// reg-refs does not, reg-orphans does (an upload's startedat).
    Orphans,
    /// Neither: the name says all they need (a `_layers` link of a live
    /// blob). They must finish promptly all the same; reg-ls reports it.
    Neither,
}

fn fifo_in_place_of(test: &str, pick: fn(&Aged) -> (PathBuf, Reader)) {
    let Some(mut s) = aged(test) else {
        return;
    };
    let root = s.root();
    let (path, reader) = pick(&s);
    let rel = path.strip_prefix(s.v2()).unwrap().display().to_string();
    let saved = s.beside("saved-file");
    fs::rename(&path, &saved).unwrap();
    tree::mkfifo(&path);

    let refused = |run: &Run| {
        run.expect_code(1)
            .stderr_has("not a regular file")
            .stderr_has(&rel);
    };
    refused(&tool("reg-ls").arg(&root).run());
    refused(&tool("reg-ls").arg("--verify").arg(&root).run());
    let refs = tool("reg-refs").arg(&root).run();
    match reader {
        Reader::Refs => {
            refused(&refs);
            refs.no_trailer();
        }
        Reader::Orphans => {
            refs.success();
            refused(&tool("reg-orphans").arg(&root).stdin(&refs.stdout).run());
        }
        Reader::Neither => {
            refs.success();
            // Finishes (the tool's time limit would fail the test): the
            // FIFO is never opened.
            tool("reg-orphans").arg(&root).stdin(&refs.stdout).run().success();
        }
    }

    fs::remove_file(&path).unwrap();
    fs::rename(&saved, &path).unwrap();
    s.start_and_pull();
}

#[test]
fn fault_fifo_as_a_tag_link() {
    fifo_in_place_of("fault_fifo_as_a_tag_link", |s| {
        (tree::tag_link(&s.v2(), "library/alpine", "3.18"), Reader::Refs)
    });
}

#[test]
fn fault_fifo_as_a_manifest_blob() {
    fifo_in_place_of("fault_fifo_as_a_manifest_blob", |s| {
        let d = s.tagged("library/alpine", "3.18");
        (tree::blob_data(&s.v2(), &d), Reader::Refs)
    });
}

#[test]
fn fault_fifo_as_an_upload_startedat() {
    fifo_in_place_of("fault_fifo_as_an_upload_startedat", |s| {
        let (repo, id) = &s.p.upload;
        (tree::upload_startedat(&s.v2(), repo, id), Reader::Orphans)
    });
}

#[test]
fn fault_fifo_as_a_layers_link() {
    fifo_in_place_of("fault_fifo_as_a_layers_link", |s| {
        let d = s.p.layer_links["library/alpine"].first().unwrap();
        (tree::layer_link(&s.v2(), "library/alpine", d), Reader::Neither)
    });
}

// 6. An absurd thread count.

#[test]
fn fault_absurd_thread_count_is_refused_at_once() {
    let Some(mut s) = aged("fault_absurd_thread_count_is_refused_at_once") else {
        return;
    };
    let root = s.root();
    let refs = tool("reg-refs").arg("--tagged-only").arg(&root).run();
    refs.success();
    let orphans = orphan_list(&root);
    let before = snapshot(&root);
    for (name, input) in [
        ("reg-orphans", Some(&refs.stdout)),
        ("reg-ls", None),
        ("reg-refs", None),
        ("reg-rm", Some(&orphans)),
    ] {
        let mut t = Tool::new(name)
            .timeout(Duration::from_secs(5))
            .args(["-j", "100000"])
            .arg(&root);
        if let Some(input) = input {
            t = t.stdin(input);
        }
        t.run().expect_code(2).stderr_has("256");
    }
    assert_unchanged(&root, &before, "-j 100000");
    s.start_and_pull();
}

// 7. reg-rm's stdout closed under it.

#[test]
fn fault_closed_stdout_stops_reg_rm_loudly_and_a_second_run_finishes() {
    let Some(mut s) = aged("fault_closed_stdout_stops_reg_rm_loudly_and_a_second_run_finishes") else {
        return;
    };
    let (root, v2) = (s.root(), s.v2());
    // Enough deletions to fill a pipe many times over (~200 KiB of records).
    let mut list: String = (0..2000)
        .map(|i| tree::write_blob(&v2, format!("garbage {i}\n").as_bytes()) + "\n")
        .collect();
    list.push_str(&orphan_list(&root));

    let t = Tool::new("reg-rm")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&list);
    let cmd = format!("{} | head -1", t.command_line());
    let (mut child, writer) = t.spawn();
    let stderr = reader(child.stderr.take().unwrap());
    let mut first = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
    } // the reading end is closed here
    let status = wait_limited(&mut child, LIMIT)
        .unwrap_or_else(|| panic!("`{cmd}` did not finish within {LIMIT:?} after its stdout closed"));
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    if let Some(w) = writer {
        let _ = w.join();
    }
    assert!(!first.is_empty(), "`{cmd}` printed nothing; stderr:\n{stderr}");
    let cut = Run {
        cmd,
        status,
        stdout: first,
        stderr,
    };
    cut.expect_code(1).stderr_has("stopped before");

    // Cut anywhere, the tree serves every image.
    s.start_and_pull();
    s.reg.stop().unwrap();
    let second = reg_rm(&root, &[], &list, &[]);
    second.success();
    assert_eq!(stored_blobs(&root), s.p.tagged_reachable, "after the second run");
    s.start_and_pull();
}

// 8. Symbolic links in the tree.

/// A symbolic link put in the tree: the path (relative to v2) the tools
/// must name, and how to take it out again.
struct Planted {
    rel: String,
    undo: Box<dyn FnOnce()>,
}

impl Planted {
    /// The symbolic link `link` made in `v2`; undone, it is removed.
    fn link(v2: &Path, link: PathBuf) -> Planted {
        Planted {
            rel: link.strip_prefix(v2).unwrap().display().to_string(),
            undo: Box::new(move || fs::remove_file(&link).unwrap()),
        }
    }

    /// Moves the file at `path` (in `v2`) to `keep` and puts a symbolic
    /// link to `target` in its place; undone, the file is back.
    fn instead_of_file(v2: &Path, path: PathBuf, keep: PathBuf, target: &Path) -> Planted {
        fs::rename(&path, &keep).unwrap();
        symlink(target, &path).unwrap();
        Planted {
            rel: path.strip_prefix(v2).unwrap().display().to_string(),
            undo: Box::new(move || {
                fs::remove_file(&path).unwrap();
                fs::rename(&keep, &path).unwrap();
            }),
        }
    }
}

/// Plants a symbolic link with `plant` (given the fixture and a directory
/// `outside` the root, next to it), then: reg-ls and reg-refs refuse,
/// naming it; a whole collection attempt leaves `outside` untouched; undone,
/// everything pulls.
fn symlink_in_tree(test: &str, plant: fn(&Aged, &Path) -> Planted) {
    let Some(mut s) = aged(test) else {
        return;
    };
    let root = s.root();
    let outside = s.beside("outside");
    fs::create_dir(&outside).unwrap();
    let planted = plant(&s, &outside);
    let outside_before = snapshot(&outside);

    let ls = tool("reg-ls").arg(&root).run();
    ls.expect_code(1)
        .stderr_has("symbolic link")
        .stderr_has(&planted.rel);
    let evil_listed: Vec<Value> = ls.records().into_iter().filter(|r| r["tag"] == "evil").collect();
    assert!(
        evil_listed.is_empty(),
        "`{}` listed a tag outside the root: {evil_listed:?}",
        ls.cmd
    );
    tool("reg-refs")
        .arg(&root)
        .run()
        .expect_code(1)
        .stderr_has("symbolic link")
        .stderr_has(&planted.rel)
        .no_trailer();

    // A whole collection attempt, whatever each step says.
    let refs = tool("reg-refs").arg("--tagged-only").arg(&root).run();
    let orphans = tool("reg-orphans")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&refs.stdout)
        .run();
    let rm = tool("reg-rm")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&orphans.stdout)
        .run();
    assert_unchanged(
        &outside,
        &outside_before,
        &format!("outside the root after `{}`", rm.cmd),
    );

    (planted.undo)();
    s.start_and_pull();
}

#[test]
fn fault_symlink_loop_in_repositories() {
    symlink_in_tree("fault_symlink_loop_in_repositories", |s, _| {
        let link = s.v2().join("repositories/loop");
        symlink("loop", &link).unwrap();
        let planted = Planted::link(&s.v2(), link);
        assert_eq!(planted.rel, "repositories/loop");
        planted
    });
}

#[test]
fn fault_dangling_symlink_as_a_tag_link() {
    symlink_in_tree("fault_dangling_symlink_as_a_tag_link", |s, outside| {
        let v2 = s.v2();
        let link = tree::tag_link(&v2, "library/alpine", "3.18");
        Planted::instead_of_file(&v2, link, s.beside("saved-link"), &outside.join("nowhere/link"))
    });
}

#[test]
fn fault_symlinked_blob_data() {
    symlink_in_tree("fault_symlinked_blob_data", |s, outside| {
        let v2 = s.v2();
        let data = tree::blob_data(&v2, &s.tagged("library/alpine", "3.18"));
        let moved = outside.join("data");
        Planted::instead_of_file(&v2, data, moved.clone(), &moved)
    });
}

#[test]
fn fault_tag_directory_symlinked_outside_the_root() {
    symlink_in_tree("fault_tag_directory_symlinked_outside_the_root", |s, outside| {
        let v2 = s.v2();
        // A valid-looking tag, outside the root.
        let d = s.tagged("library/alpine", "3.18");
        let hex = d.strip_prefix("sha256:").unwrap();
        let evil = outside.join("evil-tag");
        fs::create_dir_all(evil.join("current")).unwrap();
        fs::write(evil.join("current/link"), &d).unwrap();
        fs::create_dir_all(evil.join("index/sha256").join(hex)).unwrap();
        fs::write(evil.join("index/sha256").join(hex).join("link"), &d).unwrap();
        let link = v2.join("repositories/library/alpine/_manifests/tags/evil");
        symlink(&evil, &link).unwrap();
        Planted::link(&v2, link)
    });
}

// 9. --trash directories that cannot work.

/// `reg-rm --trash TRASH ROOT` with the orphan list fails saying `why`; it
/// makes no TRASH (`shown` in the message) and changes nothing.
#[track_caller]
fn trash_refused(root: &Path, trash: &Path, why: &str, shown: &str) {
    let list = orphan_list(root);
    let before = snapshot(root);
    reg_rm(root, &["--trash", trash.to_str().unwrap()], &list, &[])
        .expect_code(1)
        .stderr_has(why);
    assert!(!trash.exists(), "{} was created", trash.display());
    assert_unchanged(root, &before, &format!("reg-rm --trash {shown}"));
}

#[test]
fn fault_trash_inside_the_storage_root_is_refused() {
    let Some(mut s) = aged("fault_trash_inside_the_storage_root_is_refused") else {
        return;
    };
    let root = s.root();
    trash_refused(
        &root,
        &root.join("trash"),
        "inside the storage root",
        "ROOT/trash",
    );
    s.start_and_pull();
}

#[test]
fn fault_trash_containing_the_storage_root_is_refused() {
    let Some(mut s) = aged("fault_trash_containing_the_storage_root_is_refused") else {
        return;
    };
    let root = s.root();
    // Digests that are not stored and one that is kept: today's reg-rm
    // moves nothing with them, so a failing run leaves no /docker behind.
    let input = absent_digests(3) + &s.tagged("library/alpine", "3.18") + "\n";
    let before = snapshot(&root);
    reg_rm(&root, &["--trash", "/"], &input, &[])
        .expect_code(1)
        .stderr_has("contains the storage root");
    assert_unchanged(&root, &before, "reg-rm --trash /");
    s.start_and_pull();
}

#[test]
fn fault_trash_on_another_filesystem_is_refused() {
    let Some(mut s) = aged("fault_trash_on_another_filesystem_is_refused") else {
        return;
    };
    let root = s.root();
    let shm = Path::new("/dev/shm");
    assert_ne!(
        fs::metadata(shm).unwrap().dev(),
        fs::metadata(&root).unwrap().dev(),
        "cannot test: /dev/shm and {} are on the same filesystem",
        root.display()
    );
    let (trash, _cleanup) = s.on_shm("trash");
    trash_refused(&root, &trash, "same filesystem", "/dev/shm/…");
    s.start_and_pull();
}

#[test]
fn fault_trash_holding_an_earlier_run_is_refused_and_still_restores() {
    let Some(mut s) = aged("fault_trash_holding_an_earlier_run_is_refused_and_still_restores") else {
        return;
    };
    let (root, v2) = (s.root(), s.v2());
    let trash = s.beside("trash");
    let trash_arg = trash.to_str().unwrap();
    // The earlier run.
    reg_rm(&root, &["--trash", trash_arg], &orphan_list(&root), &[]).success();
    let trash_before = snapshot(&trash);
    assert!(!trash_before.is_empty());
    // New garbage since.
    let junk = tree::write_blob(&v2, b"garbage written after the first run\n");
    let before = snapshot(&root);
    reg_rm(&root, &["--trash", trash_arg], &(junk.clone() + "\n"), &[])
        .expect_code(1)
        .stderr_has("not empty");
    assert_unchanged(&trash, &trash_before, "the earlier run's trash");
    assert_unchanged(&root, &before, "reg-rm --trash NON-EMPTY");

    // Restoring the earlier run still works.
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", trash.display()))
        .arg(format!("{}/", v2.display()))
        .status()
        .unwrap();
    assert!(st.success());
    s.start_and_pull();
    for d in [&s.p.overwritten, &s.p.untagged] {
        s.must_pull(
            &format!("org/team/app@{d}"),
            &format!("restored org/team/app@{d} does not pull"),
        );
    }
}

// 10. Small untruths.

#[test]
fn reminder_about_the_blob_descriptor_cache_only_after_deleting() {
    let Some(mut s) = aged("reminder_about_the_blob_descriptor_cache_only_after_deleting") else {
        return;
    };
    let root = s.root();
    const REMINDER: &str = "storage.cache.blobdescriptor";
    let absent = reg_rm(&root, &[], &absent_digests(3), &[]);
    absent.success().stderr_lacks(REMINDER);
    assert_eq!(
        digests_with(&absent, "blob", "absent").len(),
        3,
        "{}",
        absent.stdout
    );
    let kept_digest = s.tagged("library/alpine", "3.18");
    let kept = reg_rm(&root, &[], &(kept_digest.clone() + "\n"), &[]);
    kept.success().stderr_lacks(REMINDER);
    assert_eq!(
        digests_with(&kept, "blob", "kept"),
        BTreeSet::from([kept_digest]),
        "{}",
        kept.stdout
    );
    let list = orphan_list(&root);
    // Stopped before its first deletion: nothing deleted, nothing to remind.
    let none = reg_rm(&root, &[], &list, &[("REG_RM_FAIL_AFTER", "0")]);
    none.expect_code(1).stderr_lacks(REMINDER);
    assert!(!none.stdout.contains(r#""action":"deleted""#), "{}", none.stdout);
    reg_rm(&root, &[], &list, &[]).success().stderr_has(REMINDER);
    s.start_and_pull();
}

#[test]
fn dry_run_counts_the_bytes_the_real_run_frees() {
    let Some(mut s) = aged("dry_run_counts_the_bytes_the_real_run_frees") else {
        return;
    };
    // On a copy of the scenario's tree.
    let copy = s.beside("copy");
    tree::copy_tree(&s.root(), &copy);
    let list = orphan_list(&copy);
    let bytes = |run: &Run, action: &str| -> u64 {
        run.records()
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["bytes"].as_u64().unwrap_or(0))
            .sum()
    };
    let dry = reg_rm(&copy, &["--dry-run"], &list, &[]);
    dry.success();
    let real = reg_rm(&copy, &[], &list, &[]);
    real.success();
    assert_eq!(
        bytes(&dry, "would-delete"),
        bytes(&real, "deleted"),
        "bytes the dry run announces vs bytes the real run frees\n--- dry run:\n{}\n--- real run:\n{}",
        dry.stdout,
        real.stdout
    );
    assert!(bytes(&real, "deleted") > 0);
    let mut on_copy = Registry::start_on(&copy).unwrap();
    everything_live_pulls(&on_copy, &s.p);
    on_copy.stop().unwrap();
    s.start_and_pull();
}

#[test]
fn mtime_in_1901_prints_as_1901() {
    let Some(mut s) = aged("mtime_in_1901_prints_as_1901") else {
        return;
    };
    // ext4 keeps no time before 1901-12-13: a copy of the tree on tmpfs.
    let (copy, _cleanup) = s.on_shm("1901");
    tree::copy_tree(&s.root(), &copy);
    let d = s.p.unreferenced_blob.clone();
    let data = tree::blob_data(&copy.join("docker/registry/v2"), &d);
    let t = tree::unix_time(-2_164_406_400); // 1901-06-01T00:00:00Z
    tree::set_mtime(&data, t);
    assert_eq!(
        fs::metadata(&data).unwrap().modified().unwrap(),
        t,
        "/dev/shm kept no 1901 mtime"
    );
    let ls = tool("reg-ls").arg(&copy).args(["--kind", "blob"]).run();
    ls.success();
    let rec = ls
        .records()
        .into_iter()
        .find(|r| r["digest"] == d.as_str())
        .unwrap_or_else(|| panic!("`{}` does not list {d}", ls.cmd));
    assert_eq!(rec["mtime"], "1901-06-01T00:00:00Z", "`{}`: {rec}", ls.cmd);
    s.start_and_pull();
}

#[test]
fn blob_from_the_future_is_not_an_orphan() {
    let Some(mut s) = aged("blob_from_the_future_is_not_an_orphan") else {
        return;
    };
    let root = s.root();
    let d = tree::write_blob(&s.v2(), b"a blob written by a machine with a broken clock\n");
    let data = tree::blob_data(&s.v2(), &d);
    let t = tree::unix_time(13_569_465_600); // 2400-01-01T00:00:00Z
    tree::set_mtime(&data, t);
    assert_eq!(
        fs::metadata(&data).unwrap().modified().unwrap(),
        t,
        "the filesystem kept no 2400 mtime"
    );
    let refs = tool("reg-refs").arg(&root).run();
    refs.success();
    let orphans = tool("reg-orphans")
        .args(["--min-age", "0s"])
        .arg(&root)
        .stdin(&refs.stdout)
        .run();
    let reported: Vec<Value> = orphans
        .records()
        .into_iter()
        .filter(|r| r["digest"] == d.as_str())
        .collect();
    assert!(
        reported.is_empty(),
        "`{}` reported a blob from the future: {reported:?}",
        orphans.cmd
    );
    orphans.stderr_has("in the future");
    s.start_and_pull();
}

/// This machine's clock behind the one that wrote the tree (an NFS
/// server's): every age looks younger, which keeps data; the tools say so.
#[test]
fn fault_a_clock_behind_the_tree_is_warned_about() {
    let Some(mut s) = aged("fault_a_clock_behind_the_tree_is_warned_about") else {
        return;
    };
    let root = s.root();
    const WARNING: &str = "ahead of this machine's clock";
    let refs = tool("reg-refs").arg(&root).run();
    refs.success().stderr_lacks(WARNING);
    let orphans = tool("reg-orphans").arg(&root).stdin(&refs.stdout).run();
    orphans.success().stderr_lacks(WARNING);
    assert!(orphans.stdout.contains(&s.p.unreferenced_blob));

    // Four days behind: the tree, written three days ago, is a day ahead.
    let behind = |name: &str| tool(name).env("REG_TEST_CLOCK_OFFSET", "-4d");
    let refs = behind("reg-refs").arg(&root).run();
    refs.success().stderr_has(WARNING);
    let orphans = behind("reg-orphans").arg(&root).stdin(&refs.stdout).run();
    orphans.success().stderr_has(WARNING);
    // Nothing looks old enough to report: what is kept is kept longer.
    assert!(
        !orphans.stdout.contains(&s.p.unreferenced_blob),
        "{}",
        orphans.stdout
    );
    // Named by hand, reg-rm keeps it too (the tree is "in the future").
    let before = snapshot(&root);
    let rm = behind("reg-rm")
        .arg(&root)
        .stdin(format!("{}\n", s.p.unreferenced_blob))
        .run();
    rm.success().stderr_has(WARNING);
    assert_eq!(rm.records()[0]["action"], "kept", "{}", rm.stdout);
    assert_unchanged(&root, &before, "reg-rm with a clock behind the tree");
    s.start_and_pull();
}

#[test]
fn config_with_two_storage_drivers_is_refused() {
    let Some(mut s) = aged("config_with_two_storage_drivers_is_refused") else {
        return;
    };
    let config = s.beside("two-drivers.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: \"{}\"\n  s3:\n    region: us-east-1\n    bucket: reg-tests\n",
            s.root().display()
        ),
    )
    .unwrap();
    tool("reg-ls")
        .arg("--config")
        .arg(&config)
        .run()
        .expect_code(1)
        .stderr_has("more than one storage driver");
    s.start_and_pull();
}

#[test]
fn fail_after_5_deletions_deletes_exactly_5() {
    let Some(mut s) = aged("fail_after_5_deletions_deletes_exactly_5") else {
        return;
    };
    let root = s.root();
    let list = orphan_list(&root);
    let cut = reg_rm(&root, &[], &list, &[("REG_RM_FAIL_AFTER", "5")]);
    cut.expect_code(1).stderr_has("after 5 deletions");
    let deleted = cut.records().iter().filter(|r| r["action"] == "deleted").count();
    assert_eq!(deleted, 5, "`{}`:\n{}", cut.cmd, cut.stdout);
    s.start_and_pull();
    s.reg.stop().unwrap();
    reg_rm(&root, &[], &list, &[]).success();
    assert_eq!(stored_blobs(&root), s.p.tagged_reachable);
    s.start_and_pull();
}
