//! A fixed, small registry scenario covering the cases the tools must get
//! right, pushed through the registry API, and what the test itself pushed
//! ([`Pushed`]): the expectations the tools are compared against.
//!
//! | repo | content |
//! |---|---|
//! | `library/alpine` | `3.18` (image), `latest` (amd64+arm64 index), an uploaded blob no manifest references |
//! | `org/team/app` | `v1`; `v2` overwritten once (old manifest stays untagged); cosign tag `sha256-<v1 hex>.sig`; an OCI 1.1 referrer of v1 and a referrer of that referrer (both untagged, pushed by digest); an untagged image with no subject; an unfinished upload |
//! | `a/b`, `a/b/c` | one image each (`a/b` holds `_manifests` next to child `c/`) |
//! | `deleted/img` | `1` pushed, then its manifest deleted through the API |
//!
//! One base layer is shared by alpine's images and app's (cross-repo), and
//! app:v2 shares v1's layer too.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::oci::{layer, Content, Image, ImageIndex, Platform};
use crate::registry::Registry;
use crate::skopeo;

/// What one manifest references (by digest).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ManifestInfo {
    pub media_type: String,
    pub size: u64,
    /// Index children.
    pub children: Vec<String>,
    pub config: Option<String>,
    pub layers: Vec<String>,
    /// OCI 1.1 `subject`.
    pub subject: Option<String>,
}

/// What the scenario pushed, recorded as it pushed (never read back from
/// the storage). Digests are `sha256:<hex>` strings; maps are by repo.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pushed {
    /// Every repository directory (including `deleted/img`, left with no
    /// tag and no revision).
    pub repos: BTreeSet<String>,
    /// repo → tag → manifest digest (current).
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// repo → revision link digests: every manifest pushed (index children,
    /// overwritten and untagged ones, referrers), minus deleted ones. Repos
    /// without revisions are absent.
    pub revisions: BTreeMap<String, BTreeSet<String>>,
    /// repo → `_layers` link digests (configs, layers, uploaded blobs;
    /// links stay when a manifest is deleted).
    pub layer_links: BTreeMap<String, BTreeSet<String>>,
    /// Every stored blob (manifests included) → size.
    pub blobs: BTreeMap<String, u64>,
    /// Every manifest pushed, by digest.
    pub manifests: BTreeMap<String, ManifestInfo>,
    /// repo → ids of uploads started and never finished.
    pub uploads: BTreeMap<String, BTreeSet<String>>,
    /// Blobs reachable from tags, following index children, configs,
    /// layers, and referrers whose subject is live: what a correct
    /// `--tagged-only` GC keeps.
    pub tagged_reachable: BTreeSet<String>,
    /// Blobs reachable from every revision (tags included): what a GC that
    /// treats every revision as a root keeps.
    pub revision_reachable: BTreeSet<String>,
    /// `repo:tag` references to pull afterwards, every tag of the scenario.
    pub pull: Vec<String>,
    /// `(repo, digest)` of untagged manifests that stay live with
    /// `--tagged-only` (the referrers).
    pub live_untagged: Vec<(String, String)>,

    // Notable digests.
    /// The blob uploaded to `library/alpine` that nothing references.
    pub unreferenced_blob: String,
    /// `(repo, uuid)` of the unfinished upload.
    pub upload: (String, String),
    /// The manifest `org/team/app:v2` pointed at before being overwritten.
    pub overwritten: String,
    /// An untagged image in `org/team/app` with no subject.
    pub untagged: String,
    /// The cosign-style tag in `org/team/app`.
    pub cosign_tag: String,
    /// OCI 1.1 referrer whose subject is `org/team/app:v1`.
    pub referrer: String,
    /// Referrer whose subject is `referrer`.
    pub referrer_of_referrer: String,
    /// `(repo, digest)` of the manifest deleted through the API.
    pub deleted: (String, String),
}

impl Pushed {
    /// Records `content` pushed to `repo` (under `tag`, or by digest).
    fn record(&mut self, repo: &str, tag: Option<&str>, content: &dyn Content) {
        self.repos.insert(repo.to_owned());
        for b in content.all_blobs() {
            self.blobs.insert(b.digest.clone(), b.size());
        }
        let links = self.layer_links.entry(repo.to_owned()).or_default();
        for b in content.layer_blobs() {
            links.insert(b.digest.clone());
        }
        let revs = self.revisions.entry(repo.to_owned()).or_default();
        for m in content.child_manifests() {
            revs.insert(m.digest.clone());
        }
        revs.insert(content.digest().to_owned());
        if let Some(tag) = tag {
            self.tags
                .entry(repo.to_owned())
                .or_default()
                .insert(tag.to_owned(), content.digest().to_owned());
        }
    }

    fn record_image(&mut self, img: &Image) {
        self.manifests.insert(
            img.manifest.digest.clone(),
            ManifestInfo {
                media_type: img.manifest.media_type.clone(),
                size: img.manifest.size(),
                children: Vec::new(),
                config: Some(img.config.digest.clone()),
                layers: img.layers.iter().map(|l| l.digest.clone()).collect(),
                subject: img.subject.clone(),
            },
        );
    }

    fn record_index(&mut self, idx: &ImageIndex) {
        for c in &idx.children {
            self.record_image(c);
        }
        self.manifests.insert(
            idx.index.digest.clone(),
            ManifestInfo {
                media_type: idx.index.media_type.clone(),
                size: idx.index.size(),
                children: idx.children.iter().map(|c| c.manifest.digest.clone()).collect(),
                ..ManifestInfo::default()
            },
        );
    }

    /// Records a manifest deleted through the API: its revision link and
    /// every tag pointing at it go; its blobs and `_layers` links stay.
    fn record_manifest_deleted(&mut self, repo: &str, digest: &str) {
        if let Some(revs) = self.revisions.get_mut(repo) {
            revs.remove(digest);
            if revs.is_empty() {
                self.revisions.remove(repo);
            }
        }
        if let Some(tags) = self.tags.get_mut(repo) {
            tags.retain(|_, d| d != digest);
            if tags.is_empty() {
                self.tags.remove(repo);
            }
        }
    }

    /// Manifests of `repo` reachable from `roots` through index children.
    fn manifest_closure(&self, repo: &str, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let revs = self.revisions.get(repo).cloned().unwrap_or_default();
        let mut live = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(m) = stack.pop() {
            if !revs.contains(&m) || !live.insert(m.clone()) {
                continue;
            }
            if let Some(info) = self.manifests.get(&m) {
                stack.extend(info.children.iter().cloned());
            }
        }
        live
    }

    /// Live manifests of `repo` from `roots`, then referrers of live
    /// manifests, until nothing changes.
    fn live_manifests(&self, repo: &str, roots: Vec<String>) -> BTreeSet<String> {
        let mut live = self.manifest_closure(repo, roots);
        loop {
            let referrers: Vec<String> = self
                .revisions
                .get(repo)
                .into_iter()
                .flatten()
                .filter(|r| !live.contains(*r))
                .filter(|r| {
                    self.manifests
                        .get(*r)
                        .and_then(|i| i.subject.as_ref())
                        .is_some_and(|s| live.contains(s))
                })
                .cloned()
                .collect();
            if referrers.is_empty() {
                return live;
            }
            live.extend(self.manifest_closure(repo, referrers));
        }
    }

    /// Blobs a set of live manifests keeps: themselves, configs, layers.
    fn blobs_of(&self, manifests: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for m in manifests {
            out.insert(m.clone());
            if let Some(info) = self.manifests.get(m) {
                out.extend(info.config.iter().cloned());
                out.extend(info.layers.iter().cloned());
            }
        }
        out
    }

    /// Fills in the derived sets once everything is pushed.
    fn finish(&mut self) {
        let mut tagged = BTreeSet::new();
        let mut all = BTreeSet::new();
        let mut live_untagged = Vec::new();
        for repo in &self.repos {
            let tag_roots: Vec<String> = self
                .tags
                .get(repo)
                .into_iter()
                .flat_map(|t| t.values().cloned())
                .collect();
            let live = self.live_manifests(repo, tag_roots);
            let from_tags = self.manifest_closure(
                repo,
                self.tags.get(repo).into_iter().flat_map(|t| t.values().cloned()),
            );
            for m in live.difference(&from_tags) {
                live_untagged.push((repo.clone(), m.clone()));
            }
            tagged.extend(self.blobs_of(&live));
            let revs = self.revisions.get(repo).cloned().unwrap_or_default();
            all.extend(self.blobs_of(&self.manifest_closure(repo, revs)));
        }
        self.tagged_reachable = tagged;
        self.revision_reachable = all;
        self.live_untagged = live_untagged;
        self.pull = self
            .tags
            .iter()
            .flat_map(|(repo, tags)| tags.keys().map(move |t| format!("{repo}:{t}")))
            .collect();
    }

    /// Every `(repo, tag, digest)`.
    pub fn tag_list(&self) -> Vec<(String, String, String)> {
        self.tags
            .iter()
            .flat_map(|(r, tags)| tags.iter().map(move |(t, d)| (r.clone(), t.clone(), d.clone())))
            .collect()
    }

    /// Every `(repo, revision digest)`.
    pub fn revision_list(&self) -> BTreeSet<(String, String)> {
        self.revisions
            .iter()
            .flat_map(|(r, ds)| ds.iter().map(move |d| (r.clone(), d.clone())))
            .collect()
    }

    /// The set of stored blob digests.
    pub fn blob_set(&self) -> BTreeSet<String> {
        self.blobs.keys().cloned().collect()
    }
}

/// The scenario.
pub struct Scenario;

impl Scenario {
    /// Pushes the scenario to a running registry (a few seconds).
    pub fn push(reg: &Registry) -> Result<Pushed> {
        push_scenario(reg).context("pushing the scenario")
    }
}

const ALPINE: &str = "library/alpine";
const APP: &str = "org/team/app";

fn push_scenario(reg: &Registry) -> Result<Pushed> {
    let addr = reg.addr();
    let api = reg.api();
    let mut p = Pushed::default();
    let amd64 = || Platform::linux("amd64");
    let base = layer("base-os");

    // library/alpine:3.18, single platform.
    let alpine318 = Image::build(
        "library/alpine:3.18",
        amd64(),
        vec![base.clone(), layer("alpine-3.18")],
    );
    skopeo::push_content(&addr, ALPINE, Some("3.18"), &alpine318)?;
    p.record_image(&alpine318);
    p.record(ALPINE, Some("3.18"), &alpine318);

    // library/alpine:latest, amd64 + arm64 index (children pushed by digest).
    let latest = ImageIndex::multi_arch(
        "library/alpine:latest",
        &["amd64", "arm64"],
        std::slice::from_ref(&base),
    );
    skopeo::push_content(&addr, ALPINE, Some("latest"), &latest)?;
    p.record_index(&latest);
    p.record(ALPINE, Some("latest"), &latest);

    // org/team/app:v2's predecessor, overwritten below.
    let v2_old = Image::build(
        "org/team/app:v2 (old)",
        amd64(),
        vec![base.clone(), layer("app-v2-old")],
    );
    skopeo::push_content(&addr, APP, Some("v2"), &v2_old)?;
    p.record_image(&v2_old);
    p.record(APP, Some("v2"), &v2_old);
    p.overwritten = v2_old.manifest.digest.clone();

    // org/team/app:v1 and v2, sharing the base layer with alpine.
    let v1 = Image::build("org/team/app:v1", amd64(), vec![base.clone(), layer("app-v1")]);
    skopeo::push_content(&addr, APP, Some("v1"), &v1)?;
    p.record_image(&v1);
    p.record(APP, Some("v1"), &v1);
    let v2 = Image::build(
        "org/team/app:v2",
        amd64(),
        vec![base.clone(), layer("app-v1"), layer("app-v2")],
    );
    skopeo::push_content(&addr, APP, Some("v2"), &v2)?;
    p.record_image(&v2);
    p.record(APP, Some("v2"), &v2);

    // Nested repositories side by side.
    for repo in ["a/b", "a/b/c"] {
        let img = Image::build(&format!("{repo}:1"), amd64(), vec![layer(&format!("{repo}:1"))]);
        skopeo::push_content(&addr, repo, Some("1"), &img)?;
        p.record_image(&img);
        p.record(repo, Some("1"), &img);
    }

    // deleted/img:1, then its manifest deleted through the API.
    let del = Image::build("deleted/img:1", amd64(), vec![layer("deleted/img:1")]);
    skopeo::push_content(&addr, "deleted/img", Some("1"), &del)?;
    p.record_image(&del);
    p.record("deleted/img", Some("1"), &del);
    skopeo::delete(&addr, "deleted/img", "1")?;
    p.record_manifest_deleted("deleted/img", &del.manifest.digest);
    p.deleted = ("deleted/img".into(), del.manifest.digest.clone());

    // A blob nothing references, and an upload never finished.
    let orphan = b"an uploaded blob that no manifest references\n";
    let orphan_digest = api.upload_blob(ALPINE, orphan)?;
    p.blobs.insert(orphan_digest.clone(), orphan.len() as u64);
    p.layer_links
        .entry(ALPINE.into())
        .or_default()
        .insert(orphan_digest.clone());
    p.unreferenced_blob = orphan_digest;
    let (_, uuid) = api.start_upload(APP)?;
    p.uploads.entry(APP.into()).or_default().insert(uuid.clone());
    p.upload = (APP.into(), uuid);

    // Signatures: a cosign-style tag, an OCI 1.1 referrer of v1 and a
    // referrer of that referrer, both untagged.
    let cosign_tag = format!("sha256-{}.sig", v1.manifest.hex());
    let sig = Image::cosign_signature(&format!("{addr}/{APP}"), &v1.manifest);
    api.push(APP, Some(&cosign_tag), &sig)?;
    p.record_image(&sig);
    p.record(APP, Some(&cosign_tag), &sig);
    p.cosign_tag = cosign_tag;

    let sbom = Image::artifact(
        "sbom of org/team/app:v1",
        "application/spdx+json",
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3","name":"org/team/app:v1"}"#,
        Some(&v1.manifest),
    );
    api.push(APP, None, &sbom)?;
    p.record_image(&sbom);
    p.record(APP, None, &sbom);
    p.referrer = sbom.manifest.digest.clone();

    let sbom_sig = Image::artifact(
        "signature of the sbom",
        "application/vnd.example.signature.v1+json",
        "application/vnd.example.signature.v1+json",
        br#"{"signature":"not a real one"}"#,
        Some(&sbom.manifest),
    );
    api.push(APP, None, &sbom_sig)?;
    p.record_image(&sbom_sig);
    p.record(APP, None, &sbom_sig);
    p.referrer_of_referrer = sbom_sig.manifest.digest.clone();

    // An untagged image with no subject, pushed by digest only.
    let untagged = Image::build(
        "org/team/app (untagged)",
        amd64(),
        vec![base.clone(), layer("app-untagged")],
    );
    skopeo::push_content(&addr, APP, None, &untagged)?;
    p.record_image(&untagged);
    p.record(APP, None, &untagged);
    p.untagged = untagged.manifest.digest.clone();

    p.finish();
    Ok(p)
}

/// Every tag (all platforms, signature tags included) and every untagged
/// manifest that stays live pulls from `reg`.
#[track_caller]
pub fn everything_live_pulls(reg: &Registry, p: &Pushed) {
    for r in &p.pull {
        skopeo::pull_all(&reg.image_ref(r)).unwrap_or_else(|e| {
            panic!(
                "{r} no longer pulls: {e:#}\n--- registry log:\n{}",
                reg.log_contents()
            )
        });
    }
    for (repo, d) in &p.live_untagged {
        skopeo::pull_all(&reg.image_ref(&format!("{repo}@{d}")))
            .unwrap_or_else(|e| panic!("{repo}@{d} no longer pulls: {e:#}"));
    }
}
