//! Reading reg-keep's input: `reg-ls ROOT --kind tag` records, each line
//! checked; anything else is refused with its line number.

use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::layout::{check_repo_name, check_tag};
use crate::time::Time;

/// One tag, as reg-ls listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRecord {
    pub repo: String,
    pub tag: String,
    /// The manifest the tag points at.
    pub digest: Digest,
    /// The push time: the tag link's modification time.
    pub pushed: Time,
    /// The record as read (printed back unchanged when the tag is dropped).
    pub record: Map<String, Value>,
}

/// A line that is not a reg-ls tag record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// 1-based.
    pub line: usize,
    pub why: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

impl std::error::Error for InputError {}

/// The line reader's refusal (unreadable, not UTF-8), said of this input.
impl From<crate::input::InputError> for InputError {
    fn from(e: crate::input::InputError) -> InputError {
        InputError {
            line: e.line as usize,
            why: e.why,
        }
    }
}

const WANT: &str = "reg-keep reads tag records: reg-ls ROOT --kind tag | reg-keep …";

/// Reads every line of `r`; empty lines are skipped. A tag named twice is
/// an error (two listings concatenated).
pub fn parse_tags(r: impl BufRead) -> Result<Vec<TagRecord>, InputError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = crate::input::Lines::new(r);
    while let Some((line, text)) = lines.next_line().map_err(InputError::from)? {
        let err = |why: String| InputError {
            line: line as usize,
            why,
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let rec = parse_record(text).map_err(err)?;
        if !seen.insert((rec.repo.clone(), rec.tag.clone())) {
            return Err(err(format!(
                "tag {}:{} listed twice (two listings concatenated?)",
                rec.repo, rec.tag
            )));
        }
        out.push(rec);
    }
    Ok(out)
}

fn parse_record(text: &str) -> Result<TagRecord, String> {
    if !text.starts_with('{') {
        return Err(format!("not a JSON record; {WANT}"));
    }
    let map: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object ({e}); {WANT}"))?;
    let s = |k: &str| match map.get(k) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(format!("field {k:?} is not a string")),
        None => Err(format!("a tag record without a {k:?} field")),
    };
    match s("kind") {
        Ok("tag") => {}
        Ok(k @ ("kept" | "dropped")) => {
            return Err(format!(
                "a {k:?} record from reg-keep --explain, not a tag record; {WANT}"
            ))
        }
        Ok(k) => return Err(format!("a {k:?} record, not a tag; {WANT}")),
        Err(e) => return Err(format!("{e}; {WANT}")),
    }
    let repo = s("repo")?;
    check_repo_name(repo)?;
    let tag = s("tag")?;
    check_tag(tag)?;
    let digest = Digest::parse(s("digest")?).map_err(|e| e.to_string())?;
    let pushed = Time::parse(s("mtime")?)?;
    Ok(TagRecord {
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest,
        pushed,
        record: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d";

    fn tag(repo: &str, t: &str) -> String {
        format!(
            r#"{{"kind":"tag","repo":"{repo}","tag":"{t}","digest":"{D}","mtime":"2026-11-23T09:36:31Z"}}"#
        )
    }

    #[test]
    fn reads_tag_records_and_keeps_them_as_read() {
        let text = format!("{}\n\n{}\n", tag("a/b", "1"), tag("a/b", "2"));
        let recs = parse_tags(text.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].tag, "2");
        assert_eq!(recs[0].pushed.to_string(), "2026-11-23T09:36:31Z");
        assert_eq!(serde_json::to_string(&recs[0].record).unwrap(), tag("a/b", "1"));
    }

    #[test]
    fn refuses_anything_else_by_line() {
        let blob = format!(r#"{{"kind":"blob","digest":"{D}","size":1,"mtime":"2026-11-23T09:36:31Z"}}"#);
        let kept = tag("a", "1").replace(r#""kind":"tag""#, r#""kind":"kept""#);
        let table = [
            (blob.as_str(), r#"a "blob" record, not a tag"#),
            (kept.as_str(), "reg-keep --explain"),
            (D, "not a JSON record"),
            ("{", "not a JSON object"),
            (r#"{"repo":"a"}"#, "without a \"kind\" field"),
            (
                r#"{"kind":"tag","repo":"A","tag":"1","digest":"x","mtime":"x"}"#,
                "invalid repository name",
            ),
            (
                r#"{"kind":"tag","repo":"a","tag":".x","digest":"x","mtime":"x"}"#,
                "invalid tag",
            ),
            (
                r#"{"kind":"tag","repo":"a","tag":"x","digest":"sha256:1","mtime":"x"}"#,
                "sha256",
            ),
            (
                r#"{"kind":"tag","repo":"a","tag":"x","digest":"sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d","mtime":"now"}"#,
                "invalid time",
            ),
            (
                r#"{"kind":"tag","repo":"a","tag":"x","digest":"sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d"}"#,
                "without a \"mtime\"",
            ),
        ];
        for (bad, want) in table {
            let text = format!("{}\n{bad}\n", tag("ok", "1"));
            let e = parse_tags(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
            assert!(e.why.contains(want), "{bad}: {e}");
        }
        let twice = format!("{}\n{}\n", tag("a", "1"), tag("a", "1"));
        let e = parse_tags(twice.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.why.contains("listed twice")), (2, true), "{e}");
    }
}
