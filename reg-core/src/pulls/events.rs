//! The registry's notification events (`notifications.endpoints`): an
//! envelope `{"events":[…]}` as it is posted, or one event object.
//!
//! A pull event of a manifest, as Debian's 2.8.2 sends it (blob pulls are
//! events too, with a `/blobs/` URL and no tag):
//! ```text
//! {"id":"…","timestamp":"2026-12-02T05:06:49.429779599Z","action":"pull",
//!  "target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:…",
//!            "repository":"team/app","url":"http://…/v2/team/app/manifests/sha256:…","tag":"1.0.0"},
//!  "request":{"method":"GET",…},…}
//! ```
//! A pull by tag carries both the tag and the digest it resolved to; it is
//! counted as a pull of the tag, as the logs count it.

use serde_json::{Map, Value};

use super::line::{manifest_uri, Seen};
use super::Reference;
use crate::digest::Digest;
use crate::layout::{check_repo_name, check_tag};
use crate::time::Time;

/// The events of an envelope, or of a bare event; `None` if `v` is
/// neither.
pub(super) fn envelope(v: &Map<String, Value>) -> Option<Vec<Seen>> {
    if let Some(Value::Array(events)) = v.get("events") {
        return Some(
            events
                .iter()
                .filter_map(|e| e.as_object().and_then(event))
                .collect(),
        );
    }
    if v.contains_key("action") && v.contains_key("target") {
        return Some(event(v).into_iter().collect());
    }
    None
}

/// One event: a time, and a pull if it is a manifest pull.
fn event(e: &Map<String, Value>) -> Option<Seen> {
    let time = Time::parse(e.get("timestamp")?.as_str()?).ok()?;
    let pull = match e.get("action").and_then(Value::as_str) {
        Some("pull") => e.get("target").and_then(Value::as_object).and_then(manifest_pull),
        _ => None,
    };
    Some(Seen { time, pull })
}

fn manifest_pull(t: &Map<String, Value>) -> Option<(String, Reference)> {
    let s = |k: &str| t.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let is_manifest = match s("url") {
        // The URL names the route; the repository and digest are fields.
        Some(url) => manifest_uri(url).is_some(),
        None => {
            s("tag").is_some()
                || s("mediaType").is_some_and(|m| m.contains("manifest") || m.contains("index"))
        }
    };
    if !is_manifest {
        return None;
    }
    let repo = s("repository")?;
    check_repo_name(repo).ok()?;
    let reference = match s("tag") {
        Some(tag) => {
            check_tag(tag).ok()?;
            Reference::Tag(tag.to_string())
        }
        None => Reference::Digest(Digest::parse(s("digest")?).ok()?),
    };
    Some((repo.to_string(), reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    const D: &str = "sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d";

    #[test]
    fn envelopes_and_events() {
        let env = obj(&format!(
            r#"{{"events":[
              {{"timestamp":"2026-12-02T05:06:49.4Z","action":"pull","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","repository":"team/app","url":"http://r/v2/team/app/manifests/{D}","tag":"1.0.0"}}}},
              {{"timestamp":"2026-12-02T05:06:50Z","action":"pull","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","repository":"team/app","url":"http://r/v2/team/app/manifests/{D}"}}}},
              {{"timestamp":"2026-12-02T05:06:51Z","action":"pull","target":{{"mediaType":"application/octet-stream","digest":"{D}","repository":"team/app","url":"http://r/v2/team/app/blobs/{D}"}}}},
              {{"timestamp":"2026-12-02T05:06:52Z","action":"push","target":{{"digest":"{D}","repository":"team/app","url":"http://r/v2/team/app/manifests/{D}","tag":"2"}}}},
              {{"action":"pull","target":{{}}}}
            ]}}"#
        ));
        let seen = envelope(&env).unwrap();
        let pulls: Vec<_> = seen.iter().map(|s| s.pull.clone()).collect();
        let d = Digest::parse(D).unwrap();
        assert_eq!(
            pulls,
            [
                Some(("team/app".into(), Reference::Tag("1.0.0".into()))),
                Some(("team/app".into(), Reference::Digest(d))),
                None,
                None,
            ]
        );
        assert_eq!(seen[3].time.to_string(), "2026-12-02T05:06:52Z");
        // One event on its own, without a URL: told by its media type.
        let one = obj(&format!(
            r#"{{"timestamp":"2026-12-02T05:06:49Z","action":"pull","target":{{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"{D}","repository":"x"}}}}"#
        ));
        assert_eq!(
            envelope(&one).unwrap()[0].pull,
            Some(("x".into(), Reference::Digest(d)))
        );
        assert!(envelope(&obj(r#"{"msg":"response completed"}"#)).is_none());
    }
}
