//! A retention policy, checked: which repositories it is for (globs), and
//! its rules (tag patterns as regular expressions, counts, durations).
//!
//! A [`PolicySpec`] is a policy as written, strings and numbers, from the
//! command line or a policy file ([`super::file`]); [`PolicySpec::build`]
//! compiles it into a [`Policy`] or says which field is wrong.

use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

/// Policies in order: a tag follows the first policy whose repository
/// globs match its repository and whose tag patterns (if any) match it; a
/// tag no policy is for is kept.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

impl PolicySet {
    /// The first policy for `repo:tag`, with its index.
    pub fn for_tag(&self, repo: &str, tag: &str) -> Option<(usize, &Policy)> {
        self.policies
            .iter()
            .enumerate()
            .find(|(_, p)| p.matches(repo, tag))
    }

    /// Whether any policy needs pull times (`pulled-within`).
    pub fn uses_pulls(&self) -> bool {
        self.policies.iter().any(|p| p.pulled_within.is_some())
    }
}

/// One policy: the repositories it is for and its rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Shown in `--explain` and in messages.
    pub name: Option<String>,
    /// The globs as written.
    pub repositories: Vec<String>,
    globs: GlobSet,
    /// The tags this policy is for (every tag when empty); the others
    /// follow the next policy (zot's `patterns`, ECR's `tagPatternList`).
    pub tags: Vec<Pattern>,
    /// Tags these match are kept, whatever else says (keep wins).
    pub keep_tags: Vec<Pattern>,
    /// Tags a drop rule selects are dropped, unless kept by `keep_tags` or
    /// the floor.
    pub drop: Vec<DropRule>,
    /// Of the tags no rule above decided, the N newest are kept.
    pub keep_newest: Option<usize>,
    /// What "newest" means for `keep_newest` and the floor.
    pub newest_by: Order,
    /// Of those tags, the ones pushed within this are kept.
    pub pushed_within: Option<Span>,
    /// Of those tags, the ones pulled within this are kept (and the ones
    /// pushed within it: too young to judge by pulls).
    pub pulled_within: Option<Span>,
    /// The floor: never fewer tags than this in a repository.
    pub keep_at_least: usize,
}

impl Policy {
    /// Whether this policy is for `repo:tag`.
    pub fn matches(&self, repo: &str, tag: &str) -> bool {
        self.globs.is_match(repo) && (self.tags.is_empty() || self.tags.iter().any(|p| p.is_match(tag)))
    }

    /// Whether the policy says which tags to keep (`keep-newest`,
    /// `pushed-within`, `pulled-within`): then a tag none of them keeps
    /// is dropped. A policy with none of them drops only what its drop
    /// rules select.
    pub fn retains(&self) -> bool {
        self.keep_newest.is_some() || self.pushed_within.is_some() || self.pulled_within.is_some()
    }

    /// `policy 2 (team)`, for messages; `index` is 0-based.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => format!("policy {} ({n})", index + 1),
            None => format!("policy {}", index + 1),
        }
    }
}

/// A drop rule: tags matching one of `tags` (every tag when empty) and
/// pushed longer ago than `older_than` (any age when `None`).
#[derive(Debug, Clone)]
pub struct DropRule {
    pub tags: Vec<Pattern>,
    pub older_than: Option<Span>,
}

/// A tag pattern: a regular expression, unanchored (`-rc` matches
/// `1.0-rc1`; `^latest$` only `latest`), and its text.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub re: Regex,
}

impl Pattern {
    pub fn is_match(&self, tag: &str) -> bool {
        self.re.is_match(tag)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.re.as_str())
    }
}

/// A duration and how it was written (`30d`), for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub duration: Duration,
    pub text: String,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What "newest" means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By push time: the tag link's modification time (reg-ls `mtime`).
    #[default]
    Push,
    /// By version order ([`super::version`]).
    Version,
}

impl Order {
    pub fn parse(s: &str) -> Result<Order, String> {
        match s {
            "push" => Ok(Order::Push),
            "version" => Ok(Order::Version),
            _ => Err(format!("{s:?}: newest-by is push or version")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Push => "push",
            Order::Version => "version",
        }
    }
}

/// A policy that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// `policy 2 (team): keep-tags`, or a flag.
    pub at: String,
    pub why: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{}: {}", self.at, self.why)
        }
    }
}

impl std::error::Error for PolicyError {}

/// A policy as written: what the command line's flags or one entry of a
/// policy file say, not yet checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: Option<String>,
    /// Globs; none means every repository (`**`).
    pub repositories: Vec<String>,
    /// Regexes: the tags the policy is for; none means every tag.
    pub tags: Vec<String>,
    pub keep_tags: Vec<String>,
    pub drop: Vec<DropSpec>,
    pub keep_newest: Option<u64>,
    pub newest_by: Option<String>,
    pub pushed_within: Option<String>,
    pub pulled_within: Option<String>,
    pub keep_at_least: Option<u64>,
}

/// A drop rule as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropSpec {
    pub tags: Vec<String>,
    pub older_than: Option<String>,
}

/// The names fields have in a policy file (and, with `--`, as flags).
pub mod field {
    pub const NAME: &str = "name";
    pub const REPOSITORIES: &str = "repositories";
    /// In a policy (the tags it is for) and in a drop rule.
    pub const TAGS: &str = "tags";
    pub const KEEP_TAGS: &str = "keep-tags";
    pub const KEEP_NEWEST: &str = "keep-newest";
    pub const NEWEST_BY: &str = "newest-by";
    pub const PUSHED_WITHIN: &str = "pushed-within";
    pub const PULLED_WITHIN: &str = "pulled-within";
    pub const KEEP_AT_LEAST: &str = "keep-at-least";
    pub const DROP: &str = "drop";
    /// In a drop rule.
    pub const OLDER_THAN: &str = "older-than";
}

impl PolicySpec {
    /// Checks and compiles the policy; errors name `label` (`policy 2`)
    /// and the field.
    pub fn build(self, label: &str) -> Result<Policy, PolicyError> {
        let err = |f: &str, why: String| field_error(label, f, why);
        let repositories = if self.repositories.is_empty() {
            vec!["**".to_string()]
        } else {
            self.repositories
        };
        let mut globs = GlobSetBuilder::new();
        for g in &repositories {
            globs.add(repo_glob(g).map_err(|e| err(field::REPOSITORIES, e))?);
        }
        let globs = globs
            .build()
            .map_err(|e| err(field::REPOSITORIES, e.to_string()))?;
        // Checked in this order: the first error found is the one said.
        let tags = patterns(label, &self.tags, field::TAGS)?;
        let keep_tags = patterns(label, &self.keep_tags, field::KEEP_TAGS)?;
        let drop = drop_rules(label, &self.drop)?;
        let keep_newest = match self.keep_newest {
            Some(0) => {
                return Err(err(
                    field::KEEP_NEWEST,
                    "0 keeps nothing: give 1 or more (or leave it out)".into(),
                ))
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let newest_by = match self.newest_by.as_deref() {
            Some(s) => Order::parse(s).map_err(|e| err(field::NEWEST_BY, e))?,
            None => Order::Push,
        };
        let dur = |v: &Option<String>, f: &str| -> Result<Option<Span>, PolicyError> {
            v.as_deref().map(span).transpose().map_err(|e| err(f, e))
        };
        Ok(Policy {
            name: self.name,
            repositories,
            globs,
            tags,
            keep_tags,
            drop,
            keep_newest,
            newest_by,
            pushed_within: dur(&self.pushed_within, field::PUSHED_WITHIN)?,
            pulled_within: dur(&self.pulled_within, field::PULLED_WITHIN)?,
            keep_at_least: self
                .keep_at_least
                .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        })
    }
}

/// An error in field `f` of the policy `label` names (`policy 2: tags`).
fn field_error(label: &str, f: &str, why: String) -> PolicyError {
    let at = if label.is_empty() {
        f.to_string()
    } else {
        format!("{label}: {f}")
    };
    PolicyError { at, why }
}

/// Field `f`'s tag patterns, compiled.
fn patterns(label: &str, list: &[String], f: &str) -> Result<Vec<Pattern>, PolicyError> {
    list.iter()
        .map(|p| tag_pattern(p).map_err(|e| field_error(label, f, e)))
        .collect()
}

/// The `drop` rules, compiled; a rule that names neither tags nor an age is
/// refused (it would drop every tag).
fn drop_rules(label: &str, specs: &[DropSpec]) -> Result<Vec<DropRule>, PolicyError> {
    let mut drop = Vec::new();
    for (i, d) in specs.iter().enumerate() {
        let f = format!("{} rule {}", field::DROP, i + 1);
        if d.tags.is_empty() && d.older_than.is_none() {
            return Err(field_error(
                label,
                &f,
                format!(
                    "a drop rule needs {} or {} (or both); a rule that drops every tag is not written by accident",
                    field::TAGS,
                    field::OLDER_THAN
                ),
            ));
        }
        drop.push(DropRule {
            tags: patterns(label, &d.tags, &format!("{f}: {}", field::TAGS))?,
            older_than: d
                .older_than
                .as_deref()
                .map(span)
                .transpose()
                .map_err(|e| field_error(label, &format!("{f}: {}", field::OLDER_THAN), e))?,
        });
    }
    Ok(drop)
}

/// A repository glob: `*` and `?` within one path component, `**` across
/// them (`team/*` is `team/app`, not `team/a/b`; `team/**` is both).
pub fn repo_glob(s: &str) -> Result<Glob, String> {
    if s.is_empty() {
        return Err("an empty repository glob".into());
    }
    GlobBuilder::new(s)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid repository glob {s:?}: {}", e.kind()))
}

/// A tag pattern: a regular expression, unanchored.
pub fn tag_pattern(s: &str) -> Result<Pattern, String> {
    if s.is_empty() {
        return Err("an empty tag pattern (it would match every tag)".into());
    }
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map(|re| Pattern { re })
        .map_err(|e| {
            let hint = if s.contains('*') {
                " (tag patterns are regular expressions, not globs: `.*-rc.*`, or simply `-rc`)"
            } else {
                ""
            };
            let e = e.to_string();
            let e = e
                .lines()
                .last()
                .unwrap_or(&e)
                .trim()
                .trim_start_matches("error: ");
            format!("invalid regular expression {s:?}: {e}{hint}")
        })
}

/// A duration as the tools take them (`30d`, `2w`, `12h`).
pub fn span(s: &str) -> Result<Span, String> {
    let duration = crate::time::parse_duration(s)?;
    Ok(Span {
        duration,
        text: s.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_by_path_component() {
        let g = |s: &str| repo_glob(s).unwrap().compile_matcher();
        assert!(g("team/*").is_match("team/app"));
        assert!(!g("team/*").is_match("team/a/b"));
        assert!(!g("team/*").is_match("team"));
        assert!(g("team/**").is_match("team/a/b"));
        assert!(g("**").is_match("a/b/c"));
        assert!(g("*/app").is_match("org/app"));
        assert!(!g("*/app").is_match("org/team/app"));
        assert!(g("{a,b}/x").is_match("b/x"));
        assert!(repo_glob("team/[").unwrap_err().contains("team/["));
        assert!(repo_glob("").is_err());
    }

    #[test]
    fn patterns_are_unanchored_regexes() {
        let p = tag_pattern("-rc").unwrap();
        assert!(p.is_match("1.0-rc1") && !p.is_match("1.0"));
        let p = tag_pattern("^latest$").unwrap();
        assert!(p.is_match("latest") && !p.is_match("latest-2"));
        let e = tag_pattern("*-rc*").unwrap_err();
        assert!(e.contains("\"*-rc*\"") && e.contains("not globs"), "{e}");
        assert!(tag_pattern("(").unwrap_err().contains("\"(\""));
        assert!(tag_pattern("").is_err());
    }

    #[test]
    fn specs_are_checked_by_field() {
        let spec = |f: fn(&mut PolicySpec)| {
            let mut s = PolicySpec::default();
            f(&mut s);
            s.build("policy 2 (team)")
        };
        let e = spec(|s| s.keep_tags = vec!["[".into()]).unwrap_err();
        assert_eq!(e.at, "policy 2 (team): keep-tags");
        let e = spec(|s| s.drop = vec![DropSpec::default()]).unwrap_err();
        assert_eq!(e.at, "policy 2 (team): drop rule 1");
        let e = spec(|s| {
            s.drop = vec![DropSpec {
                tags: vec!["x".into()],
                older_than: Some("soon".into()),
            }]
        })
        .unwrap_err();
        assert_eq!(e.at, "policy 2 (team): drop rule 1: older-than");
        assert_eq!(
            spec(|s| s.keep_newest = Some(0)).unwrap_err().at,
            "policy 2 (team): keep-newest"
        );
        assert_eq!(
            spec(|s| s.newest_by = Some("size".into())).unwrap_err().at,
            "policy 2 (team): newest-by"
        );
        assert_eq!(
            spec(|s| s.pulled_within = Some("1 fortnight".into()))
                .unwrap_err()
                .at,
            "policy 2 (team): pulled-within"
        );
        let p = spec(|s| {
            s.pulled_within = Some("30d".into());
            s.keep_at_least = Some(3);
        })
        .unwrap();
        assert!(p.matches("any/repo", "any") && p.retains());
        assert_eq!(p.pulled_within.unwrap().duration, Duration::from_secs(30 * 86400));
        assert_eq!(p.keep_at_least, 3);
        let p = spec(|s| s.tags = vec!["^v2\\.".into()]).unwrap();
        assert!(p.matches("r", "v2.1") && !p.matches("r", "v3.0"));
        assert_eq!(span("2w").unwrap().duration, Duration::from_secs(14 * 86400));
    }
}
