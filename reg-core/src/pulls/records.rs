//! Reading `reg-pulls` output back (`reg-keep --pulls FILE`): every line
//! checked, the trailer required, so that a cut or filtered list (fewer
//! pulls, so more tags that look unused) is refused.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

use super::{PullsEnd, PullsRecord, TOOL};
use crate::digest::Digest;
use crate::layout::{check_repo_name, check_tag};
use crate::time::Time;

/// The last pull of each tag and digest, as `reg-pulls` printed them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullTimes {
    pub tags: HashMap<(String, String), Time>,
    pub digests: HashMap<(String, Digest), Time>,
    /// The trailer: the span of time the logs covered.
    pub end: PullsEnd,
}

impl PullTimes {
    /// The last pull of `repo:tag`, by its name or by `digest` (the
    /// manifest it points at).
    pub fn last_pull(&self, repo: &str, tag: &str, digest: &Digest) -> Option<Time> {
        let by_tag = self.tags.get(&(repo.to_string(), tag.to_string())).copied();
        let by_digest = self.digests.get(&(repo.to_string(), *digest)).copied();
        by_tag.max(by_digest)
    }
}

/// A line of `--pulls` input that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullsInputError {
    /// 1-based; 0 when the input as a whole is wrong (no trailer).
    pub line: usize,
    pub why: String,
}

impl fmt::Display for PullsInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.why)
        } else {
            write!(f, "line {}: {}", self.line, self.why)
        }
    }
}

impl std::error::Error for PullsInputError {}

/// The line reader's refusal (unreadable, not UTF-8), said of this input.
impl From<crate::input::InputError> for PullsInputError {
    fn from(e: crate::input::InputError) -> PullsInputError {
        PullsInputError {
            line: e.line as usize,
            why: e.why,
        }
    }
}

/// Reads the complete output of `reg-pulls`: `pull` records, then its
/// trailer, whose count must match.
pub fn parse_pulls(r: impl BufRead) -> Result<PullTimes, PullsInputError> {
    let mut out = PullTimes::default();
    let mut end: Option<(usize, PullsEnd)> = None;
    let mut records = 0u64;
    let mut lines = crate::input::Lines::new(r);
    while let Some((line, text)) = lines.next_line().map_err(PullsInputError::from)? {
        let line = line as usize;
        let err = |why: String| PullsInputError { line, why };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some((l, _)) = &end {
            return Err(err(format!(
                "more input after the reg-pulls trailer on line {l}: concatenated or garbled input \
                 (give reg-pulls every log at once)"
            )));
        }
        let rec: PullsRecord = serde_json::from_str(text).map_err(|e| {
            err(format!(
                "not a reg-pulls record ({e}); --pulls reads the output of reg-pulls LOG..."
            ))
        })?;
        match rec {
            PullsRecord::End(e) => {
                if e.tool != TOOL {
                    return Err(err(format!(
                        "a trailer of {:?}, not of reg-pulls; --pulls reads the output of reg-pulls LOG...",
                        e.tool
                    )));
                }
                end = Some((line, e));
            }
            PullsRecord::Pull {
                repo,
                tag,
                digest,
                last_pull,
                ..
            } => {
                records += 1;
                out.add(repo, tag, digest, last_pull).map_err(err)?;
            }
        }
    }
    out.end = checked_end(end, records)?;
    Ok(out)
}

impl PullTimes {
    /// Counts one pull record: the later of its time and any seen before
    /// for the same tag or digest.
    fn add(
        &mut self,
        repo: String,
        tag: Option<String>,
        digest: Option<Digest>,
        last_pull: Time,
    ) -> Result<(), String> {
        check_repo_name(&repo)?;
        match (tag, digest) {
            (Some(t), None) => {
                check_tag(&t)?;
                let e = self.tags.entry((repo, t)).or_insert(last_pull);
                *e = (*e).max(last_pull);
            }
            (None, Some(d)) => {
                let e = self.digests.entry((repo, d)).or_insert(last_pull);
                *e = (*e).max(last_pull);
            }
            _ => return Err("a pull record names a tag or a digest, exactly one".into()),
        }
        Ok(())
    }
}

/// The trailer (and its line), checked: present, and counting the `records`
/// read.
fn checked_end(end: Option<(usize, PullsEnd)>, records: u64) -> Result<PullsEnd, PullsInputError> {
    let Some((l, e)) = end else {
        return Err(PullsInputError {
            line: 0,
            why: "no reg-pulls trailer: the list is cut short or filtered (fewer pulls would drop tags \
                  that are in use); give reg-keep the whole output of reg-pulls"
                .into(),
        });
    };
    if e.records != records {
        return Err(PullsInputError {
            line: l,
            why: format!(
                "the reg-pulls trailer counts {} records, the input holds {records}: the list was cut or \
                 filtered",
                e.records
            ),
        });
    }
    Ok(e)
}
