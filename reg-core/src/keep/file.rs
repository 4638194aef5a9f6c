//! The policy file: YAML, read strictly. An unknown key, a value of the
//! wrong type or an invalid pattern is refused by name before anything
//! else is read, so a typo cannot quietly turn a rule off.
//!
//! ```yaml
//! policies:                      # in order: a repository follows the first that matches it
//!   - name: team                 # optional, shown in --explain
//!     repositories: ["team/*"]   # globs; every repository when left out
//!     tags: ["^v"]               # regexes: the tags it is for; every tag when left out
//!     keep-tags: ["^latest$"]    # regexes: always kept (keep wins)
//!     drop:                      # drop rules
//!       - tags: ["-rc"]          #   regexes (every tag when left out)
//!         older-than: 14d        #   pushed longer ago (any age when left out)
//!     keep-newest: 10            # of the rest, the 10 newest...
//!     newest-by: push            #   by push time (default) or version
//!     pushed-within: 7d          # ...and those pushed within 7 days...
//!     pulled-within: 30d         # ...and those pulled within 30 days (needs --pulls)
//!     keep-at-least: 3           # never fewer than 3 tags
//! ```

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::policy::{field, DropSpec, PolicyError, PolicySet, PolicySpec};

const POLICY_KEYS: [&str; 10] = [
    field::NAME,
    field::REPOSITORIES,
    field::TAGS,
    field::KEEP_TAGS,
    field::KEEP_NEWEST,
    field::NEWEST_BY,
    field::PUSHED_WITHIN,
    field::PULLED_WITHIN,
    field::KEEP_AT_LEAST,
    field::DROP,
];

const DROP_KEYS: [&str; 2] = [field::TAGS, field::OLDER_THAN];

/// Reads and checks the policy file at `path`; errors start with the path.
pub fn read_policy_file(path: &Path) -> Result<PolicySet, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        at: path.display().to_string(),
        why: e.to_string(),
    })?;
    parse_policy_file(&text).map_err(|e| PolicyError {
        at: if e.at.is_empty() {
            path.display().to_string()
        } else {
            format!("{}: {}", path.display(), e.at)
        },
        why: e.why,
    })
}

/// Parses and checks a policy file's text.
pub fn parse_policy_file(text: &str) -> Result<PolicySet, PolicyError> {
    let err = |at: &str, why: String| PolicyError { at: at.into(), why };
    let docs = YamlLoader::load_from_str(text).map_err(|e| err("", format!("not valid YAML: {e}")))?;
    if docs.len() > 1 {
        return Err(err("", "more than one YAML document".into()));
    }
    let Some(Yaml::Hash(top)) = docs.into_iter().next() else {
        return Err(err("", "expected a mapping with a `policies` list".into()));
    };
    let mut policies = None;
    for (k, v) in top {
        match k.as_str() {
            Some("policies") => policies = Some(v),
            _ => {
                return Err(err(
                    "",
                    format!("unknown key {} (the file holds `policies`, a list)", key_name(&k)),
                ))
            }
        }
    }
    let Some(Yaml::Array(list)) = policies else {
        return Err(err("policies", "expected a list of policies".into()));
    };
    if list.is_empty() {
        return Err(err("policies", "an empty list: no policy to apply".into()));
    }
    let mut set = PolicySet::default();
    for (i, item) in list.into_iter().enumerate() {
        let Yaml::Hash(map) = item else {
            return Err(err(&format!("policy {}", i + 1), "expected a mapping".into()));
        };
        let name = map
            .get(&Yaml::String(field::NAME.into()))
            .and_then(Yaml::as_str)
            .map(str::to_string);
        let label = match &name {
            Some(n) => format!("policy {} ({n})", i + 1),
            None => format!("policy {}", i + 1),
        };
        let mut spec = PolicySpec::default();
        for (k, v) in map {
            let at = |f: &str| format!("{label}: {f}");
            let Some(key) = k.as_str() else {
                return Err(err(&label, format!("unknown key {}", key_name(&k))));
            };
            match key {
                field::NAME => spec.name = Some(string(&v).map_err(|e| err(&at(key), e))?),
                field::REPOSITORIES => spec.repositories = strings(&v).map_err(|e| err(&at(key), e))?,
                field::TAGS => spec.tags = strings(&v).map_err(|e| err(&at(key), e))?,
                field::KEEP_TAGS => spec.keep_tags = strings(&v).map_err(|e| err(&at(key), e))?,
                field::KEEP_NEWEST => spec.keep_newest = Some(count(&v).map_err(|e| err(&at(key), e))?),
                field::NEWEST_BY => spec.newest_by = Some(string(&v).map_err(|e| err(&at(key), e))?),
                field::PUSHED_WITHIN => {
                    spec.pushed_within = Some(duration(&v).map_err(|e| err(&at(key), e))?)
                }
                field::PULLED_WITHIN => {
                    spec.pulled_within = Some(duration(&v).map_err(|e| err(&at(key), e))?)
                }
                field::KEEP_AT_LEAST => spec.keep_at_least = Some(count(&v).map_err(|e| err(&at(key), e))?),
                field::DROP => spec.drop = drop_rules(&v, &at(key))?,
                other => {
                    return Err(err(
                        &label,
                        format!("unknown key {other:?} (known: {})", POLICY_KEYS.join(", ")),
                    ))
                }
            }
        }
        set.policies.push(spec.build(&label)?);
    }
    Ok(set)
}

fn drop_rules(v: &Yaml, at: &str) -> Result<Vec<DropSpec>, PolicyError> {
    let err = |at: String, why: String| PolicyError { at, why };
    let Yaml::Array(list) = v else {
        return Err(err(
            at.into(),
            "expected a list of drop rules (- tags: …, older-than: …)".into(),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{at} rule {}", i + 1);
        let Yaml::Hash(map) = item else {
            return Err(err(at, "expected a mapping with tags and/or older-than".into()));
        };
        let mut d = DropSpec::default();
        for (k, v) in map {
            match k.as_str() {
                Some(field::TAGS) => d.tags = strings(v).map_err(|e| err(format!("{at}: tags"), e))?,
                Some(field::OLDER_THAN) => {
                    d.older_than = Some(duration(v).map_err(|e| err(format!("{at}: older-than"), e))?)
                }
                _ => {
                    return Err(err(
                        at,
                        format!("unknown key {} (known: {})", key_name(k), DROP_KEYS.join(", ")),
                    ))
                }
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn key_name(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn string(v: &Yaml) -> Result<String, String> {
    match v {
        Yaml::String(s) => Ok(s.clone()),
        _ => Err(format!("expected a string, found {}", what(v))),
    }
}

/// A string or a list of strings.
fn strings(v: &Yaml) -> Result<Vec<String>, String> {
    match v {
        Yaml::String(s) => Ok(vec![s.clone()]),
        Yaml::Array(list) => list
            .iter()
            .map(|x| match x {
                Yaml::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "expected strings, found {} (quote it: \"…\")",
                    what(other)
                )),
            })
            .collect(),
        other => Err(format!(
            "expected a string or a list of strings, found {}",
            what(other)
        )),
    }
}

fn count(v: &Yaml) -> Result<u64, String> {
    match v {
        Yaml::Integer(i) if *i >= 0 => Ok(*i as u64),
        other => Err(format!(
            "expected a whole number (0 or more), found {}",
            what(other)
        )),
    }
}

fn duration(v: &Yaml) -> Result<String, String> {
    match v {
        Yaml::String(s) => Ok(s.clone()),
        other => Err(format!(
            "expected a duration such as 30d, 2w or 12h, found {}",
            what(other)
        )),
    }
}

fn what(v: &Yaml) -> String {
    match v {
        Yaml::Real(r) => format!("the number {r}"),
        Yaml::Integer(i) => format!("the number {i}"),
        Yaml::String(s) => format!("the string {s:?}"),
        Yaml::Boolean(b) => format!("{b}"),
        Yaml::Array(_) => "a list".into(),
        Yaml::Hash(_) => "a mapping".into(),
        Yaml::Null => "nothing".into(),
        _ => "something else".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE_WHEN: &str = "\
policies:
  - name: team
    repositories: [\"team/*\"]
    keep-newest: 10
    pulled-within: 30d
    keep-at-least: 3
    drop:
      - tags: -rc
        older-than: 14d
";

    #[test]
    fn a_full_file() {
        let set = parse_policy_file(DONE_WHEN).unwrap();
        assert_eq!(set.policies.len(), 1);
        let p = &set.policies[0];
        assert_eq!(p.name.as_deref(), Some("team"));
        assert_eq!(p.keep_newest, Some(10));
        assert_eq!(p.keep_at_least, 3);
        assert_eq!(p.drop.len(), 1);
        assert_eq!(p.drop[0].older_than.as_ref().unwrap().text, "14d");
        assert!(p.drop[0].tags[0].is_match("2.0.0-rc1"));
        assert!(p.matches("team/app", "1") && !p.matches("other/app", "1") && !p.matches("team/a/b", "1"));
        assert!(set.uses_pulls());
        assert_eq!(set.for_tag("team/x", "1").unwrap().0, 0);
        assert!(set.for_tag("x", "1").is_none());
    }

    #[test]
    fn every_mistake_is_named() {
        let table: &[(&str, &str)] = &[
            ("", "expected a mapping"),
            ("policies: []", "policies: an empty list"),
            ("policy: []", "unknown key \"policy\""),
            (
                "policies: [{keep-newst: 3}]",
                "policy 1: unknown key \"keep-newst\" (known: name, repositories",
            ),
            (
                "policies: [{name: a}, {name: b, keep-tags: ['*-rc*']}]",
                "policy 2 (b): keep-tags: invalid regular expression \"*-rc*\"",
            ),
            (
                "policies: [{repositories: 'a/['}]",
                "policy 1: repositories: invalid repository glob \"a/[\"",
            ),
            (
                "policies: [{tags: '+'}]",
                "policy 1: tags: invalid regular expression \"+\"",
            ),
            (
                "policies: [{keep-newest: -1}]",
                "policy 1: keep-newest: expected a whole number",
            ),
            (
                "policies: [{keep-newest: ten}]",
                "policy 1: keep-newest: expected a whole number (0 or more), found the string \"ten\"",
            ),
            (
                "policies: [{pulled-within: 30}]",
                "policy 1: pulled-within: expected a duration such as 30d",
            ),
            (
                "policies: [{pushed-within: 30x}]",
                "policy 1: pushed-within: invalid duration \"30x\"",
            ),
            (
                "policies: [{keep-tags: [1.0]}]",
                "policy 1: keep-tags: expected strings, found the number 1.0 (quote it",
            ),
            (
                "policies: [{drop: {tags: x}}]",
                "policy 1: drop: expected a list of drop rules",
            ),
            (
                "policies: [{drop: [{tag: x}]}]",
                "policy 1: drop rule 1: unknown key \"tag\" (known: tags, older-than)",
            ),
            (
                "policies: [{drop: [{}]}]",
                "policy 1: drop rule 1: a drop rule needs tags or older-than",
            ),
            (
                "policies: [{drop: [{tags: '('}]}]",
                "policy 1: drop rule 1: tags: invalid regular expression \"(\"",
            ),
            (
                "policies: [{newest-by: size}]",
                "policy 1: newest-by: \"size\": newest-by is push or version",
            ),
            ("policies: [{keep-newest: 1, keep-newest: 2}]", "duplicated key"),
            ("policies: [x]", "policy 1: expected a mapping"),
            (
                "policies: [{name: a}]\n---\npolicies: []",
                "more than one YAML document",
            ),
        ];
        for (text, want) in table {
            let e = parse_policy_file(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}\n  gave: {e}\n  want: {want}");
        }
    }

    #[test]
    fn the_file_is_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keep.yml");
        std::fs::write(&p, "policies: [{keep-newst: 3}]").unwrap();
        let e = read_policy_file(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: policy 1: unknown key", p.display())),
            "{e}"
        );
        let e = read_policy_file(&dir.path().join("none.yml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.yml: "), "{e}");
    }
}
