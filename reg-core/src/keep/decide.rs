//! The decision: for every tag, kept or dropped, and the rule that said so.
//!
//! Each tag follows the first policy whose repository globs match its
//! repository and whose `tags` patterns (if it has any) match it. Over the
//! tags of one repository under one policy, each step decides only the
//! tags no earlier step decided:
//!
//! 1. `keep-tags`: a tag matching one of these patterns is kept (keep wins
//!    over every drop rule).
//! 2. `drop`: a tag a drop rule selects (its patterns, its `older-than`) is
//!    dropped.
//! 3. Retention, if the policy has any of `keep-newest`, `pushed-within`,
//!    `pulled-within`: of the tags still undecided, the N newest are kept,
//!    and so is every tag pushed within D, or pulled within D (a tag pushed
//!    within that window, or whose pulls the records cannot tell because
//!    they start inside it, is kept by that rule: too young, or unknown,
//!    to judge). The rest is dropped (`no-keep-rule`).
//!    Without retention rules the rest is kept (`no-drop-rule`).
//! 4. `keep-at-least N`, the floor: if fewer than N of these tags are
//!    kept, the newest dropped ones are kept back until N are, whatever
//!    dropped them.
//!
//! A signature or attestation tag (cosign's `sha256-<hex>.sig`, `.att`,
//! `.sbom`, the referrers tag `sha256-<hex>`) goes through steps 1 and 2
//! but not 3 and 4: it neither takes a place among the newest nor counts
//! for the floor; it follows its image instead, kept while a kept tag of
//! the repository points at `sha256:<hex>` (`follows-image`).
//!
//! A tag no policy is for is kept (`no-policy`). A repository left with no
//! tag at all is reported. A dropped
//! tag on the same manifest as a kept tag loses only its name: the image
//! stays (`image_kept_by`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::input::TagRecord;
use super::policy::{Order, Policy, PolicySet, Span};
use super::version::version_cmp;
use crate::digest::Digest;
use crate::pulls::PullTimes;
use crate::time::Time;

/// The rule that decided a tag (its `rule` field in `--explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Kept: no policy is for it.
    NoPolicy,
    /// Kept: it matches a `keep-tags` pattern.
    KeepTags,
    /// Dropped by a drop rule.
    Drop,
    /// Kept: among the N newest.
    KeepNewest,
    /// Kept: pushed within the window.
    PushedWithin,
    /// Kept: pulled within the window (or too young, or unknown).
    PulledWithin,
    /// Kept back by the floor.
    KeepAtLeast,
    /// Kept: the policy has no retention rule and no drop rule selects it.
    NoDropRule,
    /// Dropped: the policy has retention rules and none keeps it.
    NoKeepRule,
    /// A signature or attestation tag (`sha256-<hex>.sig`): kept while a
    /// kept tag points at the manifest it names, dropped with it.
    FollowsImage,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::NoPolicy => "no-policy",
            Rule::KeepTags => "keep-tags",
            Rule::Drop => "drop",
            Rule::KeepNewest => "keep-newest",
            Rule::PushedWithin => "pushed-within",
            Rule::PulledWithin => "pulled-within",
            Rule::KeepAtLeast => "keep-at-least",
            Rule::NoDropRule => "no-drop-rule",
            Rule::NoKeepRule => "no-keep-rule",
            Rule::FollowsImage => "follows-image",
        }
    }
}

/// What became of one tag, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub rule: Rule,
    /// The policy (0-based), if one is for the repository.
    pub policy: Option<usize>,
    /// Why, in words: the rule and the facts it used.
    pub reason: String,
    /// The tag's last pull (by its name or its digest), when known.
    pub last_pull: Option<Time>,
    /// For a dropped tag: the kept tags of its repository on the same
    /// manifest (the image stays; only the name goes).
    pub image_kept_by: Vec<String>,
}

/// What to decide with.
pub struct Config<'a> {
    pub policies: &'a PolicySet,
    /// Pull times (`--pulls`), needed by `pulled-within`.
    pub pulls: Option<&'a PullTimes>,
    pub now: SystemTime,
}

/// Every tag's decision, and what the whole says.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One per input tag, in input order.
    pub decisions: Vec<Decision>,
    /// Repositories whose every tag would be dropped.
    pub emptied: Vec<String>,
    /// Things the user should know (pull records that do not cover a window).
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn kept(&self) -> usize {
        self.decisions.iter().filter(|d| d.keep).count()
    }

    pub fn dropped(&self) -> usize {
        self.decisions.len() - self.kept()
    }

    /// Dropped tags whose image a kept tag keeps.
    pub fn names_only(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| !d.keep && !d.image_kept_by.is_empty())
            .count()
    }
}

/// Decides every tag of `tags` (see the module header).
pub fn decide(tags: &[TagRecord], cfg: &Config<'_>) -> Outcome {
    let mut by_repo: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in tags.iter().enumerate() {
        by_repo.entry(&t.repo).or_default().push(i);
    }
    let mut decisions: Vec<Option<Decision>> = vec![None; tags.len()];
    let mut out = Outcome {
        notes: coverage_notes(cfg),
        ..Outcome::default()
    };
    for (repo, idx) in &by_repo {
        // Each tag follows the first policy for it; the steps run over the
        // tags of one repository under one policy.
        let mut groups: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
        for &i in idx {
            let p = cfg.policies.for_tag(repo, &tags[i].tag).map(|(pi, _)| pi);
            groups.entry(p).or_default().push(i);
        }
        let mut following = Vec::new();
        for (pi, group) in &groups {
            let d: Vec<Option<Decision>> = match pi {
                None => group
                    .iter()
                    .map(|_| Some(kept(Rule::NoPolicy, None, "no policy is for this tag".into())))
                    .collect(),
                Some(pi) => decide_group(tags, group, *pi, &cfg.policies.policies[*pi], cfg),
            };
            for (&i, d) in group.iter().zip(d) {
                match d {
                    Some(d) => decisions[i] = Some(d),
                    None => following.push((i, *pi)),
                }
            }
        }
        follow_images(tags, idx, &mut decisions, following);
        for &i in idx {
            if let Some(d) = decisions[i].as_mut() {
                d.last_pull = cfg
                    .pulls
                    .and_then(|p| p.last_pull(&tags[i].repo, &tags[i].tag, &tags[i].digest));
            }
        }
        let kept_here: Vec<bool> = idx
            .iter()
            .map(|&i| decisions[i].as_ref().is_some_and(|d| d.keep))
            .collect();
        if !kept_here.iter().any(|&k| k) {
            out.emptied.push(repo.to_string());
        }
        // Dropped tags whose manifest a kept tag still points at.
        for (a, &i) in idx.iter().enumerate() {
            if kept_here[a] {
                continue;
            }
            let by: Vec<String> = idx
                .iter()
                .enumerate()
                .filter(|&(b, &j)| kept_here[b] && tags[j].digest == tags[i].digest)
                .map(|(_, &j)| tags[j].tag.clone())
                .collect();
            if let Some(d) = decisions[i].as_mut() {
                d.image_kept_by = by;
            }
        }
    }
    out.decisions = decisions
        .into_iter()
        .map(|d| d.expect("every tag decided"))
        .collect();
    out
}

/// Signature tags left undecided (`following`: tag, policy) follow their
/// image: kept while a kept tag of the repository (`idx`) points at it.
fn follow_images(
    tags: &[TagRecord],
    idx: &[usize],
    decisions: &mut [Option<Decision>],
    following: Vec<(usize, Option<usize>)>,
) {
    for (i, pi) in following {
        let subject = signature_subject(&tags[i].tag).expect("only signature tags are left");
        let by: Vec<&str> = idx
            .iter()
            .filter(|&&j| decisions[j].as_ref().is_some_and(|d| d.keep) && tags[j].digest == subject)
            .map(|&j| tags[j].tag.as_str())
            .collect();
        decisions[i] = Some(if by.is_empty() {
            dropped(
                Rule::FollowsImage,
                pi,
                format!("signs or describes {subject}, which no kept tag points at"),
            )
        } else {
            kept(
                Rule::FollowsImage,
                pi,
                format!(
                    "signs or describes {subject}, which kept tag {} points at",
                    by.join(", ")
                ),
            )
        });
    }
}

fn kept(rule: Rule, policy: Option<usize>, reason: String) -> Decision {
    Decision {
        keep: true,
        rule,
        policy,
        reason,
        last_pull: None,
        image_kept_by: Vec::new(),
    }
}

fn dropped(rule: Rule, policy: Option<usize>, reason: String) -> Decision {
    Decision {
        keep: false,
        ..kept(rule, policy, reason)
    }
}

/// The tags of one repository that policy `p` is for (`idx` into `tags`).
fn decide_group(
    tags: &[TagRecord],
    idx: &[usize],
    pi: usize,
    p: &Policy,
    cfg: &Config<'_>,
) -> Vec<Option<Decision>> {
    let now = cfg.now;
    let pol = Some(pi);
    let mut d: Vec<Option<Decision>> = vec![None; idx.len()];
    // 1. keep-tags.
    for (k, &i) in idx.iter().enumerate() {
        if let Some(pat) = p.keep_tags.iter().find(|pat| pat.is_match(&tags[i].tag)) {
            d[k] = Some(kept(Rule::KeepTags, pol, format!("matches keep-tags {pat}")));
        }
    }
    // 2. drop rules.
    for (k, &i) in idx.iter().enumerate() {
        if d[k].is_some() {
            continue;
        }
        d[k] = drop_rule_match(&tags[i], p, now).map(|why| dropped(Rule::Drop, pol, why));
    }
    // 3. Retention, over the tags still undecided, newest first; a
    // signature tag is left to follow its image.
    let sig = |k: usize| signature_subject(&tags[idx[k]].tag).is_some();
    let mut rest: Vec<usize> = (0..idx.len()).filter(|&k| d[k].is_none() && !sig(k)).collect();
    rest.sort_by(|&a, &b| newer_first(&tags[idx[a]], &tags[idx[b]], p.newest_by));
    for (rank, &k) in rest.iter().enumerate() {
        let t = &tags[idx[k]];
        d[k] = Some(if p.retains() {
            retain(t, rank, p, pol, cfg)
        } else {
            kept(Rule::NoDropRule, pol, "no drop rule selects it".into())
        });
    }
    // 4. The floor, over the tags that are not signatures.
    let is = |d: &Option<Decision>, keep: bool| d.as_ref().is_some_and(|x| x.keep == keep);
    let kept_n = (0..idx.len()).filter(|&k| !sig(k) && is(&d[k], true)).count();
    if kept_n < p.keep_at_least {
        let mut gone: Vec<usize> = (0..idx.len()).filter(|&k| !sig(k) && is(&d[k], false)).collect();
        gone.sort_by(|&a, &b| newer_first(&tags[idx[a]], &tags[idx[b]], p.newest_by));
        for &k in gone.iter().take(p.keep_at_least - kept_n) {
            let before = d[k].take().map(|x| x.reason).unwrap_or_default();
            d[k] = Some(kept(
                Rule::KeepAtLeast,
                pol,
                format!(
                    "kept back by keep-at-least {} (newest by {} of the tags otherwise dropped: {before})",
                    p.keep_at_least,
                    p.newest_by.as_str()
                ),
            ));
        }
    }
    d
}

/// Why the first of `p`'s drop rules that selects `t` drops it, if one does.
fn drop_rule_match(t: &TagRecord, p: &Policy, now: SystemTime) -> Option<String> {
    let age = t.pushed.age(now);
    for (n, rule) in p.drop.iter().enumerate() {
        let pat = if rule.tags.is_empty() {
            None
        } else {
            match rule.tags.iter().find(|pat| pat.is_match(&t.tag)) {
                Some(pat) => Some(pat),
                None => continue,
            }
        };
        if rule.older_than.as_ref().is_some_and(|o| age <= o.duration) {
            continue;
        }
        let mut why = format!("drop rule {}:", n + 1);
        if let Some(pat) = pat {
            why.push_str(&format!(" matches {pat}"));
        }
        if let Some(o) = &rule.older_than {
            if pat.is_some() {
                why.push_str(" and");
            }
            why.push_str(&format!(" was pushed {} ago (older than {o})", ago(age)));
        }
        return Some(why);
    }
    None
}

/// The manifest a signature or attestation tag is about: cosign names them
/// `sha256-<hex>.sig`, `.att`, `.sbom`, and the OCI referrers tag schema
/// `sha256-<hex>`.
pub fn signature_subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = rest.split_at_checked(64)?;
    if !(suffix.is_empty() || suffix.starts_with('.') && suffix.len() > 1) {
        return None;
    }
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Step 3 for one undecided tag, `rank` in newest-first order.
fn retain(t: &TagRecord, rank: usize, p: &Policy, pol: Option<usize>, cfg: &Config<'_>) -> Decision {
    let now = cfg.now;
    let age = t.pushed.age(now);
    let mut no = Vec::new();
    if let Some(n) = p.keep_newest {
        if rank < n {
            return kept(
                Rule::KeepNewest,
                pol,
                format!(
                    "number {} by {} of the tags no earlier rule decided (keep-newest {n})",
                    rank + 1,
                    order_words(p.newest_by)
                ),
            );
        }
        no.push(if n == 1 {
            format!("not the newest by {}", order_words(p.newest_by))
        } else {
            format!("not among the {n} newest by {}", order_words(p.newest_by))
        });
    }
    if let Some(w) = &p.pushed_within {
        if age <= w.duration {
            return kept(
                Rule::PushedWithin,
                pol,
                format!("pushed {} ago (within {w})", ago(age)),
            );
        }
        no.push(format!("pushed {} ago (not within {w})", ago(age)));
    }
    if let Some(w) = &p.pulled_within {
        match pulled(t, w, cfg) {
            Ok(why) => return kept(Rule::PulledWithin, pol, why),
            Err(why) => no.push(why),
        }
    }
    dropped(
        Rule::NoKeepRule,
        pol,
        format!("no keep rule holds: {}", no.join("; ")),
    )
}

/// Whether `pulled-within w` keeps `t`: `Ok(why)` or `Err(why not)`.
fn pulled(t: &TagRecord, w: &Span, cfg: &Config<'_>) -> Result<String, String> {
    let now = cfg.now;
    let Some(pulls) = cfg.pulls else {
        return Ok(format!(
            "no pull records given: whether it was pulled within {w} is unknown"
        ));
    };
    let start = now.checked_sub(w.duration).unwrap_or(SystemTime::UNIX_EPOCH);
    let last = pulls.last_pull(&t.repo, &t.tag, &t.digest);
    if let Some(l) = last.filter(|l| l.0 >= start) {
        return Ok(format!("last pulled {l}, {} ago (within {w})", ago(l.age(now))));
    }
    let age = t.pushed.age(now);
    if age <= w.duration {
        return Ok(format!(
            "pushed {} ago, within the pulled-within {w} window: too young to judge by its pulls",
            ago(age)
        ));
    }
    match pulls.end.since {
        Some(since) if since.0 > start => {
            return Ok(format!(
                "not pulled since the pull records start ({since}, {} ago), but that is inside the \
                 pulled-within {w} window: pulls before it are unknown",
                ago(since.age(now))
            ))
        }
        None => return Ok("the pull records cover no time at all: its pulls are unknown".into()),
        Some(_) => {}
    }
    Err(match last {
        Some(l) => format!("not pulled within {w} (last pulled {l}, {} ago)", ago(l.age(now))),
        None => format!(
            "not pulled within {w} (never, in pull records from {})",
            pulls.end.since.map(|s| s.to_string()).unwrap_or_default()
        ),
    })
}

/// Warnings about pull records that do not cover a `pulled-within` window.
fn coverage_notes(cfg: &Config<'_>) -> Vec<String> {
    let Some(pulls) = cfg.pulls.filter(|_| cfg.policies.uses_pulls()) else {
        return Vec::new();
    };
    let now = cfg.now;
    let mut notes = Vec::new();
    for (i, p) in cfg.policies.policies.iter().enumerate() {
        let Some(w) = &p.pulled_within else { continue };
        let start = now.checked_sub(w.duration).unwrap_or(SystemTime::UNIX_EPOCH);
        match pulls.end.since {
            None => notes.push(format!(
                "{}: the pull records cover no time at all: pulled-within {w} keeps every tag it judges",
                p.label(i)
            )),
            Some(since) if since.0 > start => notes.push(format!(
                "{}: the pull records start at {since} ({} ago), inside the pulled-within {w} window: \
                 tags not pulled since then are kept, as unknown (give older logs, rotated ones too)",
                p.label(i),
                ago(since.age(now))
            )),
            Some(_) => {}
        }
    }
    if let Some(until) = pulls.end.until {
        let gap = until.age(now);
        if gap > Duration::from_secs(86_400) {
            notes.push(format!(
                "the pull records end at {until} ({} ago): pulls since then are not in them",
                ago(gap)
            ));
        }
    }
    notes
}

/// Newest first: by push time (then version, then name), or by version
/// (then push time, then name).
fn newer_first(a: &TagRecord, b: &TagRecord, by: Order) -> Ordering {
    let push = || b.pushed.cmp(&a.pushed);
    let version = || version_cmp(&b.tag, &a.tag);
    match by {
        Order::Push => push().then_with(version),
        Order::Version => version().then_with(push),
    }
    .then_with(|| a.tag.cmp(&b.tag))
}

fn order_words(by: Order) -> &'static str {
    match by {
        Order::Push => "push time",
        Order::Version => "version",
    }
}

/// `20d`, `5h`, `12m`, `30s`: how long, to the largest whole unit.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3600 {
        format!("{}h", s / 3600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
