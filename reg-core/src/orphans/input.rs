//! Reading the input ([`read_refs`]): `reg-refs` records and bare digest
//! lines into [`LiveRefs`], refusing, naming the line, input that does not
//! prove itself complete.

use super::*;

pub use crate::input::InputError;
/// Counts of what the input held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    pub lines: u64,
    /// JSON records, the trailer included.
    pub records: u64,
    /// Bare digest lines.
    pub bare_digests: u64,
    /// Records of a kind this version does not know: every digest in them
    /// was kept (with their repository, as a live revision too).
    pub unknown: u64,
    /// Tag, revision and edge records read, to check against the trailer.
    pub tags: u64,
    pub revisions: u64,
    pub references: u64,
}

/// The fields of a record this tool reads; every other field is ignored.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    repo: Option<Cow<'a, str>>,
    #[serde(default)]
    digest: Option<Digest>,
    #[serde(default)]
    manifest: Option<Digest>,
    /// What the repository's link for `digest` names (an alias): kept too.
    #[serde(default)]
    target: Option<Digest>,
    #[serde(default, borrow)]
    tool: Option<Cow<'a, str>>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    tags: Option<u64>,
    #[serde(default)]
    revisions: Option<u64>,
    #[serde(default)]
    references: Option<u64>,
    #[serde(default, borrow)]
    root: Option<Cow<'a, str>>,
    #[serde(default)]
    excluded: Vec<String>,
}

/// Reads the whole input: `reg-refs` records ending with its trailer, and
/// bare digest lines (`sha256:<hex>`, kept as blobs and, in every
/// repository, as revisions). Blank lines are skipped. Refuses, naming the
/// line, anything that is not a record or a digest, an `error` record, a
/// record missing a field its kind needs, records after the trailer, and
/// input without a complete `reg-refs` trailer as its last record.
pub fn read_refs(input: impl BufRead) -> Result<LiveRefs, InputError> {
    let mut refs = LiveRefs::default();
    let mut lines = Lines::new(input);
    let mut n: u64 = 0;
    let mut trailer: Option<u64> = None;
    while let Some((line, text)) = lines.next_line()? {
        n = line;
        let err = |why: String| InputError::at(n, why);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(t) = trailer {
            return Err(err(format!(
                "more input after the reg-refs trailer on line {t}: concatenated or garbled input"
            )));
        }
        if !text.starts_with('{') {
            let d =
                Digest::parse(text).map_err(|e| err(format!("neither a JSON record nor a digest: {e}")))?;
            refs.blobs.insert(d);
            refs.anywhere.insert(d);
            refs.stats.bare_digests += 1;
            continue;
        }
        let rec: Line =
            serde_json::from_str(text).map_err(|e| err(format!("not a reference record: {e}")))?;
        refs.stats.records += 1;
        if rec.kind == "end" {
            check_trailer(&rec).map_err(err)?;
            check_counts(&rec, &refs.stats).map_err(err)?;
            refs.storage_root = rec.root.as_deref().unwrap_or_default().to_string();
            for r in &rec.excluded {
                check_repo_name(r).map_err(|why| err(format!("trailer \"excluded\": {why}")))?;
            }
            refs.excluded = rec.excluded.clone();
            trailer = Some(n);
            continue;
        }
        add_record(&mut refs, &rec).map_err(err)?;
    }
    refs.stats.lines = n;
    refs.finish();
    if trailer.is_none() {
        return Err(if refs.stats.records + refs.stats.bare_digests == 0 {
            InputError::at(0, "no input: pipe the output of reg-refs into reg-orphans")
        } else {
            InputError {
                line: n,
                why: "input ends without the reg-refs trailer ({\"kind\":\"end\",\"tool\":\"reg-refs\",…}): \
                      reg-refs failed or its output was cut; nothing is reported"
                    .into(),
            }
        });
    }
    Ok(refs)
}

fn check_trailer(rec: &Line) -> Result<(), String> {
    match rec.tool.as_deref() {
        Some("reg-refs") => {}
        Some(other) => {
            return Err(format!(
                "a trailer from {other:?}, not from reg-refs: reg-orphans reads the output of reg-refs"
            ))
        }
        None => return Err("a trailer without \"tool\": reg-orphans reads the output of reg-refs".into()),
    }
    if rec.root.as_deref().is_none_or(str::is_empty) {
        return Err(
            "a reg-refs trailer without \"root\": made by hand or by an older reg-refs; \
                    run reg-refs again"
                .into(),
        );
    }
    if rec.complete != Some(true) {
        return Err(
            "the reg-refs trailer does not say \"complete\":true: a list made with --repo \
                    cannot show what is unreferenced; run reg-refs on every repository"
                .into(),
        );
    }
    Ok(())
}

/// The trailer's counts must be the records read: a trailer alone, or a list
/// with lines cut out of it, names too little to prove anything orphaned.
fn check_counts(rec: &Line, read: &InputStats) -> Result<(), String> {
    for (name, said, got) in [
        ("tag", rec.tags, read.tags),
        ("revision", rec.revisions, read.revisions),
        ("reference", rec.references, read.references),
    ] {
        match said {
            Some(n) if n == got => {}
            Some(n) => {
                return Err(format!(
                    "the reg-refs trailer and the records read disagree: it counts {n} {name} records, \
                     the input holds {got}; the list was cut, filtered or made by hand"
                ))
            }
            None => return Err(format!("a reg-refs trailer without its {name:?} count")),
        }
    }
    Ok(())
}

fn add_record(refs: &mut LiveRefs, rec: &Line) -> Result<(), String> {
    let kind = rec.kind.as_ref();
    let need = |field: &str| format!("a {kind:?} record without {field:?}");
    let repo = match rec.repo.as_deref() {
        Some(r) => {
            check_repo_name(r)?;
            Some(r)
        }
        None => None,
    };
    match kind {
        "error" => return Err("an error record: the reference list is not complete".into()),
        "tag" | "revision" | "manifest" | "config" | "layer" | "referrer" | "link" => {
            let repo = repo.ok_or_else(|| need("repo"))?;
            let digest = rec.digest.ok_or_else(|| need("digest"))?;
            let id = refs.repo_id(repo);
            refs.blobs.insert(digest);
            // The blob the registry serves for `digest` in this repository
            // (an alias): kept, and a live revision there if it is one.
            if let Some(t) = rec.target {
                refs.blobs.insert(t);
                refs.pairs.insert(id, t);
            }
            match kind {
                "tag" => refs.stats.tags += 1,
                "revision" => refs.stats.revisions += 1,
                _ => refs.stats.references += 1,
            }
            match kind {
                "tag" | "revision" | "link" => refs.pairs.insert(id, digest),
                _ => {
                    let m = rec.manifest.ok_or_else(|| need("manifest"))?;
                    // The parent manifest is live in this repository; an
                    // index child or a referrer is a live revision too.
                    if refs.last_edge != Some((id, m)) {
                        refs.blobs.insert(m);
                        refs.pairs.insert(id, m);
                        refs.last_edge = Some((id, m));
                    }
                    if matches!(kind, "manifest" | "referrer") {
                        refs.pairs.insert(id, digest);
                    }
                }
            }
        }
        _ => {
            // A kind from a newer reg-refs: when in doubt, keep.
            refs.stats.unknown += 1;
            for d in rec.digest.iter().chain(rec.manifest.iter()) {
                refs.blobs.insert(*d);
                match repo {
                    Some(r) => {
                        let id = refs.repo_id(r);
                        refs.pairs.insert(id, *d);
                    }
                    None => {
                        refs.anywhere.insert(*d);
                    }
                }
            }
        }
    }
    Ok(())
}
