//! Pull times from the registry's own logs: what `reg-pulls` reads and
//! prints, and what `reg-keep --pulls` reads back.
//!
//! The distribution registry keeps no pull times, but it logs every request.
//! What Debian's `docker-registry` 2.8.2 writes for a manifest pull (seen by
//! running it; the fixtures under `reg-core/testdata/pulls/` are its output):
//!
//! - the **access log** on stdout (unless `log.accesslog.disabled`), Apache
//!   combined format, to the second:
//!   `127.0.0.1 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/1.0.0 HTTP/1.1" 200 555 "" "skopeo/1.9.3"`
//! - the **application log** on stderr, at `log.level: info` (the default),
//!   one `response completed` line per request, formatted by logrus as text
//!   (`log.formatter: text`, the default), `json` or `logstash`:
//!   `time="…" level=info msg="response completed" … http.request.method=GET … http.request.uri=/v2/team/app/manifests/1.0.0 … http.response.status=200 …`.
//!   A successful request carries no `vars.name` or `vars.reference` (only
//!   the `response completed with error` lines do), so the repository and
//!   reference are read from `http.request.uri`, as from the access log.
//! - **notification envelopes** (`notifications.endpoints`), JSON posted to
//!   an endpoint, indented over many lines: `{"events":[{"action":"pull",
//!   "timestamp":…,"target":{"repository":…,"tag":…,"digest":…,"url":…}}]}`.
//!   The registry sends a `pull` event for every manifest it *read*, even
//!   when the response was a 404 because the client did not accept its
//!   media type: events count a few pulls that did not happen (which only
//!   keeps more).
//!
//! A pull is a `GET` or `HEAD` of `/v2/<name>/manifests/<reference>` answered
//! with a 2xx status (a `pull` event on a `/manifests/` URL), by tag or by
//! digest. Blob requests, pushes and failures are not pulls. Each line is
//! recognised on its own, anywhere in it (so `docker logs`, `journalctl`
//! prefixes and logs mixing stdout and stderr are read too); lines in no
//! format here are counted and skipped. Inputs may be gzip-compressed
//! (rotated logs), detected by their first bytes.
//!
//! # Records ([`PullsRecord`])
//! ```text
//! {"kind":"pull","repo":"team/app","tag":"1.0.0","digest":null,"last_pull":"2026-12-02T05:06:53Z","pulls":2}
//! {"kind":"pull","repo":"team/app","tag":null,"digest":"sha256:…","last_pull":"2026-12-02T05:09:42Z","pulls":3}
//! {"kind":"end","tool":"reg-pulls","records":2,"pulls":5,"lines":46,"since":"2026-12-02T05:06:22Z","until":"2026-12-02T05:09:42Z"}
//! ```
//! One `pull` record per repository and tag (pulled by tag) or digest
//! (pulled by digest), sorted; `pulls` counts the log entries (a log holding
//! both the access log and the application log counts each request twice).
//! Both `tag` and `digest` are always there, one of them `null`, so `--tsv`
//! columns stay in place. The trailer says how many records came before it
//! and the time span the logs cover (`since` and `until`: the first and last
//! time of any line read, pull or not): `reg-keep` refuses pull records
//! without it, and keeps a tag whose last pull it cannot know because the
//! logs start inside the pull window.

mod events;
mod line;
mod read;
mod records;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::time::Time;

pub use line::{parse_line, Seen};
pub use read::{open, open_path, read_log, LogStats};
pub use records::{parse_pulls, PullTimes, PullsInputError};

/// What was pulled: a tag, or a manifest by its digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// A record printed by `reg-pulls`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PullsRecord {
    /// The last successful pull of a tag, or of a manifest by digest, in a
    /// repository.
    Pull {
        repo: String,
        #[serde(default)]
        tag: Option<String>,
        #[serde(default)]
        digest: Option<Digest>,
        last_pull: Time,
        /// Log entries recording a pull of it.
        pulls: u64,
    },
    /// The trailer.
    End(PullsEnd),
}

impl crate::output::Record for PullsRecord {
    fn columns(kind: &str) -> Option<&'static [&'static str]> {
        match kind {
            "pull" => Some(&["repo", "tag", "digest", "last_pull", "pulls"]),
            _ => None,
        }
    }
}

/// The `reg-pulls` trailer.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct PullsEnd {
    /// Always `"reg-pulls"`.
    pub tool: String,
    /// `pull` records before the trailer.
    pub records: u64,
    /// Log entries recording a pull.
    pub pulls: u64,
    /// Lines read (an envelope spread over many lines counts each).
    pub lines: u64,
    /// The earliest time of any line read: before it, nothing is known.
    pub since: Option<Time>,
    /// The latest time of any line read.
    pub until: Option<Time>,
}

/// The trailer's `tool`.
pub const TOOL: &str = "reg-pulls";

/// Pulls gathered from any number of logs: the last pull of each
/// repository and reference, and the span of time the logs cover.
#[derive(Debug, Default, Clone)]
pub struct PullLog {
    last: BTreeMap<(String, Reference), (Time, u64)>,
    since: Option<Time>,
    until: Option<Time>,
    pulls: u64,
    lines: u64,
}

impl PullLog {
    /// Adds what one line (or one event) says.
    pub fn add(&mut self, seen: Seen) {
        self.since = Some(self.since.map_or(seen.time, |t| t.min(seen.time)));
        self.until = Some(self.until.map_or(seen.time, |t| t.max(seen.time)));
        if let Some((repo, reference)) = seen.pull {
            self.pulls += 1;
            let e = self.last.entry((repo, reference)).or_insert((seen.time, 0));
            e.0 = e.0.max(seen.time);
            e.1 += 1;
        }
    }

    /// Counts lines read (for the trailer).
    pub fn count_lines(&mut self, n: u64) {
        self.lines += n;
    }

    /// Log entries that recorded a pull.
    pub fn pulls(&self) -> u64 {
        self.pulls
    }

    /// The records, sorted by repository, tags before digests.
    pub fn records(&self) -> impl Iterator<Item = PullsRecord> + '_ {
        self.last.iter().map(|((repo, r), (time, n))| {
            let (tag, digest) = match r {
                Reference::Tag(t) => (Some(t.clone()), None),
                Reference::Digest(d) => (None, Some(*d)),
            };
            PullsRecord::Pull {
                repo: repo.clone(),
                tag,
                digest,
                last_pull: *time,
                pulls: *n,
            }
        })
    }

    /// The trailer for [`PullLog::records`].
    pub fn end(&self) -> PullsEnd {
        PullsEnd {
            tool: TOOL.into(),
            records: self.last.len() as u64,
            pulls: self.pulls,
            lines: self.lines,
            since: self.since,
            until: self.until,
        }
    }

    /// Repositories, tags and digests with a pull, for a summary.
    pub fn counts(&self) -> (usize, usize, usize) {
        let repos = self
            .last
            .keys()
            .map(|(r, _)| r)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let tags = self
            .last
            .keys()
            .filter(|(_, r)| matches!(r, Reference::Tag(_)))
            .count();
        (repos, tags, self.last.len() - tags)
    }
}

#[cfg(test)]
mod tests;
