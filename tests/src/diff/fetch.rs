//! Fetching a case completely over the registry's HTTP API, as a client
//! pulling it would: the top manifest by tag (or digest), then every child
//! manifest, config and layer by the digest its manifest names (foreign
//! layers aside), each checked byte for byte. And with skopeo, where it can.

use super::gen::{Case, Doc, Target};
use crate::http::Api;

/// `sha512:0123456789ab…`
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// One thing that does not fetch.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The reference fetched (a tag, or the digest as the manifest names it).
    pub reference: String,
    /// The request, what it was for and the answer, in one line.
    pub text: String,
}

/// What of `case` the registry no longer serves (empty: everything
/// fetches).
pub fn fetch_case(api: &Api, case: &Case) -> Vec<Problem> {
    let mut problems = Vec::new();
    let reference = case.served_as();
    manifest(
        api,
        &case.repo,
        &reference,
        &case.top,
        "the manifest",
        &mut problems,
    );
    problems
}

fn manifest(api: &Api, repo: &str, reference: &str, doc: &Doc, what: &str, problems: &mut Vec<Problem>) {
    get(
        api,
        &format!("/v2/{repo}/manifests/{reference}"),
        reference,
        what,
        "manifest",
        &doc.bytes,
        problems,
    );
    let mut layer = 0;
    let mut child = 0;
    for r in &doc.refs {
        let what = match r.role {
            super::Role::Layer | super::Role::Blob => {
                layer += 1;
                format!("{} {layer} of {}", r.role.name(), short(&doc.digest()))
            }
            super::Role::Child => {
                child += 1;
                format!("child {child} of {}", short(&doc.digest()))
            }
            super::Role::Config => format!("config of {}", short(&doc.digest())),
        };
        match &r.target {
            Target::Foreign => {}
            Target::Manifest { doc: c, .. } => manifest(api, repo, &r.digest, c, &what, problems),
            Target::Blob(bytes) => get(
                api,
                &format!("/v2/{repo}/blobs/{}", r.digest),
                &r.digest,
                &what,
                "blob",
                bytes,
                problems,
            ),
        }
    }
}

/// GETs `path`, which must answer 200 with the bytes `pushed`; else a
/// problem of `reference`, saying `what` it was for (and that it is not the
/// `noun`, manifest or blob, pushed when the bytes differ).
fn get(
    api: &Api,
    path: &str,
    reference: &str,
    what: &str,
    noun: &str,
    pushed: &[u8],
    problems: &mut Vec<Problem>,
) {
    let text = match api.try_get(path) {
        Err(e) => format!("GET {} ({what}): {e:#}", short_path(path)),
        Ok(a) if a.status != 200 => format!(
            "GET {} ({what}): HTTP {} {}",
            short_path(path),
            a.status,
            a.errors()
        ),
        Ok(a) if a.body != pushed => format!(
            "GET {} ({what}): served {} bytes that are not the {noun} pushed",
            short_path(path),
            a.body.len()
        ),
        Ok(_) => return,
    };
    problems.push(Problem {
        reference: reference.to_owned(),
        text,
    });
}

/// A path with its digest shortened.
fn short_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((head, d)) => format!("{head}/{}", short(d)),
        None => path.to_owned(),
    }
}
