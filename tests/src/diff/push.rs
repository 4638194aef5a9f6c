//! Pushing a plan through the registry's HTTP API, as a client would:
//! every blob uploaded with `?digest=` the digest its manifest names,
//! child manifests PUT by digest or uploaded as blobs, then the top
//! manifest under its tag or digest; deleted cases deleted by digest
//! once every push is done.
//! What the registry refuses is recorded with its reason, not an error.

use std::collections::HashSet;

use anyhow::{bail, Result};

use super::gen::{Case, Doc, Kind, Plan, Target};
use super::par::par_map;
use crate::http::{Answer, Api};

/// What became of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// `reason`: the step and the registry's answer, digests left out, so
    /// that refusals of one kind count together.
    Refused {
        reason: String,
    },
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        *self == Outcome::Accepted
    }
}

/// What a push of a plan did.
#[derive(Debug, Default)]
pub struct Pushed {
    /// By case number.
    pub outcomes: Vec<Outcome>,
    /// By loose blob, whether its upload was accepted.
    pub loose: Vec<bool>,
    /// Requests sent.
    pub requests: usize,
}

struct Pusher<'a> {
    api: &'a Api,
    /// `(repo, digest)` uploaded or PUT already.
    done: HashSet<(String, String)>,
    requests: usize,
}

/// Pushes every case and loose blob of `plan`, the cases of one image in
/// order (an overwritten tag before the image that overwrites it), images
/// on `threads` threads, then deletes the deleted cases. An error is a transport failure (the registry is
/// gone); refusals are outcomes.
pub fn push_plan(api: &Api, plan: &Plan, threads: usize) -> Result<Pushed> {
    let mut groups: Vec<Vec<&Case>> = Vec::new();
    for case in &plan.cases {
        match groups.last_mut() {
            Some(g) if g[0].image == case.image => g.push(case),
            _ => groups.push(vec![case]),
        }
    }
    let done = par_map(&groups, threads, |group| {
        let mut p = Pusher {
            api,
            done: HashSet::new(),
            requests: 0,
        };
        let outcomes: Result<Vec<Outcome>> = group.iter().map(|c| p.case(c)).collect();
        outcomes.map(|o| (o, p.requests))
    });
    let mut out = Pushed::default();
    for group in done {
        let (outcomes, requests) = group?;
        out.outcomes.extend(outcomes);
        out.requests += requests;
    }
    // Deletions once no push runs: the registry's DELETE reads every tag
    // link of the repository, and one being written (not atomically) by a
    // concurrent push fails it ("invalid checksum digest format").
    for case in plan.cases.iter().filter(|c| c.kind == Kind::Deleted) {
        if out.outcomes[case.n].accepted() {
            out.requests += 1;
            if let Err(e) = api.delete_manifest(&case.repo, &case.top.digest()) {
                bail!("deleting {}: {e:#}", case.describe());
            }
        }
    }
    let mut p = Pusher {
        api,
        done: HashSet::new(),
        requests: 0,
    };
    for loose in &plan.loose {
        let a = p.upload(&loose.repo, &loose.bytes, &loose.digest)?;
        out.loose.push(a.is_none());
    }
    out.requests += p.requests;
    assert_eq!(out.outcomes.len(), plan.cases.len(), "one outcome per case");
    Ok(out)
}

impl Pusher<'_> {
    fn case(&mut self, case: &Case) -> Result<Outcome> {
        if let Some(reason) = self.refs(&case.repo, &case.top)? {
            return Ok(Outcome::Refused { reason });
        }
        let reference = case.tag.clone().unwrap_or_else(|| case.top.digest());
        self.requests += 1;
        let a = self
            .api
            .try_put_manifest(&case.repo, &reference, &case.top.media_type, &case.top.bytes)?;
        if a.status != 201 {
            return Ok(Outcome::Refused {
                reason: reason("PUT of the manifest", &a),
            });
        }
        Ok(Outcome::Accepted)
    }

    /// Pushes what `doc` names, depth first; `Some(reason)` on a refusal.
    fn refs(&mut self, repo: &str, doc: &Doc) -> Result<Option<String>> {
        for r in &doc.refs {
            match &r.target {
                Target::Foreign => {}
                Target::Blob(bytes) => {
                    if let Some(a) = self.upload(repo, bytes, &r.digest)? {
                        return Ok(Some(reason(&format!("upload of a {}", r.role.name()), &a)));
                    }
                }
                Target::Manifest { doc: child, put } => {
                    if let Some(reason) = self.refs(repo, child)? {
                        return Ok(Some(reason));
                    }
                    if *put {
                        if self.done.contains(&(repo.to_owned(), r.digest.clone())) {
                            continue;
                        }
                        self.requests += 1;
                        let a =
                            self.api
                                .try_put_manifest(repo, &r.digest, &child.media_type, &child.bytes)?;
                        if a.status != 201 {
                            return Ok(Some(reason("PUT of a child manifest", &a)));
                        }
                        self.done.insert((repo.to_owned(), r.digest.clone()));
                    } else if let Some(a) = self.upload(repo, &child.bytes, &r.digest)? {
                        return Ok(Some(reason("upload of a child manifest", &a)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Uploads unless done already; `Some(answer)` when refused.
    fn upload(&mut self, repo: &str, bytes: &[u8], digest: &str) -> Result<Option<Answer>> {
        let key = (repo.to_owned(), digest.to_owned());
        if self.done.contains(&key) {
            return Ok(None);
        }
        self.requests += 2;
        let a = self.api.try_upload(repo, bytes, digest)?;
        if a.status != 201 {
            return Ok(Some(a));
        }
        self.done.insert(key);
        Ok(None)
    }
}

fn reason(step: &str, a: &Answer) -> String {
    format!("{step}: HTTP {} {}", a.status, a.errors())
}
