//! Each rule alone, then their precedence, on tags pushed over simulated
//! days.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::policy::DropSpec;
use super::*;
use crate::pulls::{PullTimes, PullsEnd};

const DAY: u64 = 86_400;

fn now() -> SystemTime {
    Time::parse("2026-12-01T12:00:00Z").unwrap().0
}

fn days_ago(d: u64) -> Time {
    Time(now() - Duration::from_secs(d * DAY))
}

/// `(repo, tag, pushed days ago, image seed)`: tags with the same seed
/// point at the same manifest.
fn tags(list: &[(&str, &str, u64, &str)]) -> Vec<TagRecord> {
    list.iter()
        .map(|(repo, tag, age, img)| {
            let digest = Digest::sha256_of(img.as_bytes());
            let pushed = days_ago(*age);
            let text = format!(
                r#"{{"kind":"tag","repo":"{repo}","tag":"{tag}","digest":"{digest}","mtime":"{pushed}"}}"#
            );
            parse_tags(text.as_bytes()).unwrap().remove(0)
        })
        .collect()
}

fn policy(f: impl FnOnce(&mut PolicySpec)) -> PolicySet {
    let mut s = PolicySpec::default();
    f(&mut s);
    PolicySet {
        policies: vec![s.build("").unwrap()],
    }
}

fn drop_rule(tags: &[&str], older_than: Option<&str>) -> DropSpec {
    DropSpec {
        tags: tags.iter().map(|s| s.to_string()).collect(),
        older_than: older_than.map(str::to_string),
    }
}

/// Pull records: `(repo, tag or digest seed, days ago)`, covering `since`
/// days back.
fn pulls(list: &[(&str, &str, u64)], since: u64) -> PullTimes {
    let mut p = PullTimes {
        tags: HashMap::new(),
        digests: HashMap::new(),
        end: PullsEnd {
            tool: "reg-pulls".into(),
            since: Some(days_ago(since)),
            until: Some(days_ago(0)),
            ..PullsEnd::default()
        },
    };
    for (repo, what, age) in list {
        match what.strip_prefix("@") {
            Some(seed) => {
                p.digests.insert(
                    (repo.to_string(), Digest::sha256_of(seed.as_bytes())),
                    days_ago(*age),
                );
            }
            None => {
                p.tags
                    .insert((repo.to_string(), what.to_string()), days_ago(*age));
            }
        }
    }
    p
}

fn run(t: &[TagRecord], set: &PolicySet, p: Option<&PullTimes>) -> Outcome {
    decide(
        t,
        &Config {
            policies: set,
            pulls: p,
            now: now(),
        },
    )
}

/// `tag → (kept, rule)`.
fn verdicts(t: &[TagRecord], o: &Outcome) -> Vec<(String, bool, &'static str)> {
    t.iter()
        .zip(&o.decisions)
        .map(|(t, d)| (t.tag.clone(), d.keep, d.rule.name()))
        .collect()
}

fn v(list: &[(&str, bool, &'static str)]) -> Vec<(String, bool, &'static str)> {
    list.iter().map(|(t, k, r)| (t.to_string(), *k, *r)).collect()
}

const K: bool = true;
const D: bool = false;

#[test]
fn no_policy_keeps_everything() {
    let t = tags(&[("a", "1", 400, "x"), ("b/c", "2", 1, "y")]);
    let set = policy(|s| {
        s.repositories = vec!["team/*".into()];
        s.keep_newest = Some(1);
    });
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[("1", K, "no-policy"), ("2", K, "no-policy")])
    );
    assert!(o.decisions.iter().all(|d| d.policy.is_none()));
    assert!(o.emptied.is_empty());
}

#[test]
fn keep_newest_by_push_time_and_by_version() {
    let t = tags(&[
        ("r", "1.0.0", 30, "a"),
        ("r", "1.10.0", 40, "b"),
        ("r", "1.9.0", 10, "c"),
        ("r", "latest", 5, "d"),
    ]);
    let o = run(&t, &policy(|s| s.keep_newest = Some(2)), None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("1.0.0", D, "no-keep-rule"),
            ("1.10.0", D, "no-keep-rule"),
            ("1.9.0", K, "keep-newest"),
            ("latest", K, "keep-newest")
        ])
    );
    assert!(
        o.decisions[3].reason.starts_with("number 1 by push time"),
        "{}",
        o.decisions[3].reason
    );
    assert!(o.decisions[0]
        .reason
        .contains("not among the 2 newest by push time"));
    let o = run(
        &t,
        &policy(|s| {
            s.keep_newest = Some(2);
            s.newest_by = Some("version".into());
        }),
        None,
    );
    // Versions above other tags; 1.10.0 above 1.9.0.
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("1.0.0", D, "no-keep-rule"),
            ("1.10.0", K, "keep-newest"),
            ("1.9.0", K, "keep-newest"),
            ("latest", D, "no-keep-rule")
        ])
    );
}

#[test]
fn ties_in_push_time_fall_back_to_version_order() {
    // A copied tree (cp -a, touch) gives every tag the same time.
    let t = tags(&[
        ("r", "v1", 100, "a"),
        ("r", "v10", 100, "b"),
        ("r", "v2", 100, "c"),
    ]);
    let o = run(&t, &policy(|s| s.keep_newest = Some(1)), None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("v1", D, "no-keep-rule"),
            ("v10", K, "keep-newest"),
            ("v2", D, "no-keep-rule")
        ])
    );
}

#[test]
fn pushed_within() {
    let t = tags(&[("r", "old", 8, "a"), ("r", "new", 6, "b")]);
    let o = run(&t, &policy(|s| s.pushed_within = Some("7d".into())), None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[("old", D, "no-keep-rule"), ("new", K, "pushed-within")])
    );
    assert_eq!(
        o.decisions[0].reason,
        "no keep rule holds: pushed 8d ago (not within 7d)"
    );
}

#[test]
fn pulled_within_by_tag_by_digest_too_young_and_never() {
    let t = tags(&[
        ("r", "by-tag", 90, "a"),
        ("r", "by-digest", 90, "b"),
        ("r", "twin", 90, "b"),
        ("r", "young", 10, "c"),
        ("r", "stale", 90, "d"),
        ("r", "never", 90, "e"),
        ("s", "by-tag", 90, "a"),
    ]);
    let p = pulls(
        &[
            ("r", "by-tag", 2),
            ("r", "@b", 29),
            ("r", "stale", 31),
            ("r", "never", 1),
        ],
        365,
    );
    let set = policy(|s| s.pulled_within = Some("30d".into()));
    let o = run(&t, &set, Some(&p));
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("by-tag", K, "pulled-within"),
            // A pull by digest counts for every tag on that manifest.
            ("by-digest", K, "pulled-within"),
            ("twin", K, "pulled-within"),
            // Never pulled, pushed inside the window: too young to judge.
            ("young", K, "pulled-within"),
            ("stale", D, "no-keep-rule"),
            // A pull of "never" in repository r is not one in s.
            ("never", K, "pulled-within"),
            ("by-tag", D, "no-keep-rule"),
        ])
    );
    assert!(
        o.decisions[3].reason.contains("too young to judge"),
        "{}",
        o.decisions[3].reason
    );
    assert_eq!(o.decisions[4].last_pull, Some(days_ago(31)));
    assert!(
        o.decisions[4]
            .reason
            .contains("not pulled within 30d (last pulled"),
        "{}",
        o.decisions[4].reason
    );
    assert!(
        o.decisions[6].reason.contains("never, in pull records from"),
        "{}",
        o.decisions[6].reason
    );
    assert_eq!(o.decisions[1].last_pull, Some(days_ago(29)));
    assert!(o.notes.is_empty(), "{:?}", o.notes);
}

#[test]
fn pull_records_that_start_inside_the_window_keep_as_unknown() {
    let t = tags(&[("r", "a", 90, "a"), ("r", "b", 90, "b")]);
    let p = pulls(&[("r", "a", 2)], 10);
    let o = run(&t, &policy(|s| s.pulled_within = Some("30d".into())), Some(&p));
    assert_eq!(
        verdicts(&t, &o),
        v(&[("a", K, "pulled-within"), ("b", K, "pulled-within")])
    );
    assert!(
        o.decisions[1].reason.contains("pulls before it are unknown"),
        "{}",
        o.decisions[1].reason
    );
    assert_eq!(o.notes.len(), 1, "{:?}", o.notes);
    assert!(
        o.notes[0].contains("inside the pulled-within 30d window"),
        "{}",
        o.notes[0]
    );
    // Records that end long ago are noted too.
    let mut stale = pulls(&[], 100);
    stale.end.until = Some(days_ago(20));
    let o = run(
        &t,
        &policy(|s| s.pulled_within = Some("30d".into())),
        Some(&stale),
    );
    assert!(o.notes.iter().any(|n| n.contains("end at")), "{:?}", o.notes);
    assert_eq!(
        verdicts(&t, &o),
        v(&[("a", D, "no-keep-rule"), ("b", D, "no-keep-rule")])
    );
}

#[test]
fn keep_tags_win_over_drop_rules() {
    let t = tags(&[("r", "latest", 100, "a"), ("r", "1.0", 100, "b")]);
    let set = policy(|s| {
        s.keep_tags = vec!["^latest$".into()];
        s.drop = vec![drop_rule(&[], Some("30d"))];
    });
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[("latest", K, "keep-tags"), ("1.0", D, "drop")])
    );
    assert_eq!(o.decisions[0].reason, "matches keep-tags /^latest$/");
    assert_eq!(
        o.decisions[1].reason,
        "drop rule 1: was pushed 100d ago (older than 30d)"
    );
}

#[test]
fn drop_rules_come_before_retention_and_keep_newest_counts_the_rest() {
    // Newest first: 3.0-rc1 (old enough to drop), 2.0, latest (kept by
    // pattern), 1.1-rc1 (young), 1.0.
    let t = tags(&[
        ("r", "3.0-rc1", 15, "a"),
        ("r", "2.0", 20, "b"),
        ("r", "latest", 21, "b"),
        ("r", "1.1-rc1", 3, "c"),
        ("r", "1.0", 40, "d"),
        ("r", "0.9", 50, "e"),
    ]);
    let set = policy(|s| {
        s.keep_tags = vec!["^latest$".into()];
        s.drop = vec![drop_rule(&["-rc"], Some("14d"))];
        s.keep_newest = Some(2);
    });
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("3.0-rc1", D, "drop"),
            ("2.0", K, "keep-newest"),
            ("latest", K, "keep-tags"),
            // Not old enough for the drop rule: judged by retention.
            ("1.1-rc1", K, "keep-newest"),
            ("1.0", D, "no-keep-rule"),
            ("0.9", D, "no-keep-rule"),
        ])
    );
    assert_eq!(
        o.decisions[0].reason,
        "drop rule 1: matches /-rc/ and was pushed 15d ago (older than 14d)"
    );
    // 2.0 and latest share a manifest; nothing dropped shares a kept one.
    assert!(o.decisions.iter().all(|d| d.image_kept_by.is_empty()));
}

#[test]
fn only_drop_rules_keep_the_rest() {
    let t = tags(&[
        ("r", "pr-12", 10, "a"),
        ("r", "pr-13", 1, "b"),
        ("r", "main", 99, "c"),
    ]);
    let set = policy(|s| s.drop = vec![drop_rule(&["^pr-"], Some("7d"))]);
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("pr-12", D, "drop"),
            ("pr-13", K, "no-drop-rule"),
            ("main", K, "no-drop-rule")
        ])
    );
    // Several drop rules: the first that selects a tag is named.
    let set = policy(|s| s.drop = vec![drop_rule(&["^main$"], None), drop_rule(&["^pr-"], None)]);
    let o = run(&t, &set, None);
    assert_eq!(o.decisions[0].reason, "drop rule 2: matches /^pr-/");
    assert_eq!(o.decisions[2].reason, "drop rule 1: matches /^main$/");
}

#[test]
fn the_floor_keeps_back_the_newest_dropped_whatever_dropped_them() {
    let t = tags(&[
        ("r", "1-rc", 20, "a"),
        ("r", "2", 60, "b"),
        ("r", "3", 50, "c"),
        ("r", "4", 70, "d"),
    ]);
    let set = policy(|s| {
        s.drop = vec![drop_rule(&["-rc"], None)];
        s.pushed_within = Some("7d".into());
        s.keep_at_least = Some(2);
    });
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("1-rc", K, "keep-at-least"),
            ("2", D, "no-keep-rule"),
            ("3", K, "keep-at-least"),
            ("4", D, "no-keep-rule")
        ])
    );
    assert!(o.decisions[0].reason.starts_with(
        "kept back by keep-at-least 2 (newest by push of the tags otherwise dropped: drop rule 1"
    ));
    // A floor above the tag count keeps them all; one already met does nothing.
    let o = run(
        &t,
        &policy(|s| {
            s.pushed_within = Some("1d".into());
            s.keep_at_least = Some(9)
        }),
        None,
    );
    assert_eq!(o.kept(), 4);
    let o = run(
        &t,
        &policy(|s| {
            s.pushed_within = Some("30d".into());
            s.keep_at_least = Some(1)
        }),
        None,
    );
    assert_eq!(verdicts(&t, &o)[0], ("1-rc".to_string(), K, "pushed-within"));
    assert_eq!(o.kept(), 1);
}

#[test]
fn emptied_repositories_are_reported() {
    let t = tags(&[("a", "1", 100, "x"), ("a", "2", 100, "y"), ("b", "1", 1, "z")]);
    let o = run(&t, &policy(|s| s.pushed_within = Some("7d".into())), None);
    assert_eq!(o.emptied, ["a"]);
    assert_eq!((o.kept(), o.dropped()), (1, 2));
    let o = run(
        &t,
        &policy(|s| {
            s.pushed_within = Some("7d".into());
            s.keep_at_least = Some(1)
        }),
        None,
    );
    assert!(o.emptied.is_empty());
}

#[test]
fn a_dropped_tag_on_a_kept_manifest_loses_only_its_name() {
    let t = tags(&[
        ("r", "1.0", 100, "img"),
        ("r", "stable", 1, "img"),
        ("r", "0.9", 100, "old"),
        ("q", "x", 100, "img"),
    ]);
    let o = run(&t, &policy(|s| s.pushed_within = Some("7d".into())), None);
    assert_eq!(o.decisions[0].image_kept_by, ["stable"]);
    assert!(o.decisions[2].image_kept_by.is_empty());
    // Another repository's tag does not keep an image here (nor there).
    assert!(o.decisions[3].image_kept_by.is_empty());
    assert_eq!(o.names_only(), 1);
}

#[test]
fn the_first_matching_policy_applies() {
    let t = tags(&[
        ("team/app", "1", 100, "a"),
        ("prod/app", "1", 100, "b"),
        ("other", "1", 100, "c"),
    ]);
    let set = parse_policy_file(
        "policies:\n  - repositories: [prod/**]\n  - repositories: ['**']\n    pushed-within: 7d\n",
    )
    .unwrap();
    let o = run(&t, &set, None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("1", D, "no-keep-rule"),
            ("1", K, "no-drop-rule"),
            ("1", D, "no-keep-rule")
        ])
    );
    assert_eq!(o.decisions[1].policy, Some(0));
    assert_eq!(o.decisions[0].policy, Some(1));
}

/// The issue's "done when": keep the 10 newest and anything pulled in the
/// last 30 days, never fewer than 3, for team/*; drop *-rc* older than 14
/// days.
#[test]
fn the_done_when_policy() {
    let set = parse_policy_file(
        "policies:\n  - repositories: [team/*]\n    keep-newest: 10\n    pulled-within: 30d\n    keep-at-least: 3\n    drop:\n      - tags: -rc\n        older-than: 14d\n",
    )
    .unwrap();
    // team/api: 14 releases a week apart (1.13 newest), two rc tags.
    let mut list: Vec<(String, u64)> = (0..14).map(|i| (format!("1.{i}"), 7 * (14 - i as u64))).collect();
    list.push(("2.0-rc1".into(), 20));
    list.push(("2.0-rc2".into(), 3));
    let mut spec: Vec<(&str, &str, u64, &str)> = list
        .iter()
        .map(|(t, a)| ("team/api", t.as_str(), *a, t.as_str()))
        .collect();
    // team/old: three old tags, never pulled. other/app: not in team/*.
    spec.extend([
        ("team/old", "a", 300, "oa"),
        ("team/old", "b", 200, "ob"),
        ("team/old", "c", 100, "oc"),
    ]);
    spec.push(("other/app", "1-rc1", 300, "x"));
    let t = tags(&spec);
    // 1.1 was pulled last week (by digest); 1.0 and 2.0-rc1 yesterday.
    let p = pulls(
        &[
            ("team/api", "@1.1", 7),
            ("team/api", "1.0", 1),
            ("team/api", "2.0-rc1", 1),
        ],
        90,
    );
    let o = run(&t, &set, Some(&p));
    let kept: Vec<&str> = t
        .iter()
        .zip(&o.decisions)
        .filter(|(_, d)| d.keep)
        .map(|(t, _)| t.tag.as_str())
        .collect();
    assert_eq!(
        kept,
        // 2.0-rc2 and 1.5 … 1.13 are the 10 newest; 1.0 and 1.1 were
        // pulled; team/old is kept by the floor, other/app by no policy.
        // 2.0-rc1 is dropped though pulled: a drop rule decides first.
        [
            "1.0", "1.1", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.13", "2.0-rc2", "a",
            "b", "c", "1-rc1"
        ]
    );
    let rc1 = t.iter().position(|t| t.tag == "2.0-rc1").unwrap();
    assert_eq!(o.decisions[rc1].rule, Rule::Drop);
    assert!(o.emptied.is_empty());
}

/// zot's `keepTags: [{patterns: ["v2.*"], pulledWithin: 720h}]`: a
/// policy's `tags` say which tags it judges; the others follow the next.
#[test]
fn a_policy_for_some_tags_only() {
    let t = tags(&[
        ("r", "v2.1", 90, "a"),
        ("r", "v2.0", 90, "b"),
        ("r", "main", 50, "c"),
        ("r", "dev", 40, "d"),
        ("r", "v1.0", 90, "e"),
    ]);
    let set = parse_policy_file(
        "policies:\n  - tags: ['^v2\\.']\n    pulled-within: 30d\n  - tags: ['^(main|dev)$']\n    keep-newest: 1\n",
    )
    .unwrap();
    let p = pulls(&[("r", "v2.1", 3)], 365);
    let o = run(&t, &set, Some(&p));
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("v2.1", K, "pulled-within"),
            ("v2.0", D, "no-keep-rule"),
            // keep-newest counts the tags of its own policy only.
            ("main", D, "no-keep-rule"),
            ("dev", K, "keep-newest"),
            ("v1.0", K, "no-policy"),
        ])
    );
    assert_eq!(o.decisions[2].policy, Some(1));
}

/// cosign's signature and attestation tags follow the image they name:
/// they take no place among the newest and go with their image.
#[test]
fn signature_tags_follow_their_image() {
    let sig = |img: &str, suffix: &str| format!("sha256-{}{suffix}", Digest::sha256_of(img.as_bytes()).hex());
    let (s1, a1, s2, r0) = (
        sig("one", ".sig"),
        sig("one", ".att"),
        sig("two", ".sig"),
        sig("gone", ""),
    );
    let t = tags(&[
        ("r", "v1", 90, "one"),
        ("r", "v2", 80, "two"),
        ("r", &s1, 1, "sig1"),
        ("r", &a1, 1, "att1"),
        ("r", &s2, 1, "sig2"),
        ("r", &r0, 1, "ref0"),
    ]);
    // Counted as tags, the young signature tags would be the newest and
    // push v2 out; here v2 stays, and its signature with it.
    let o = run(&t, &policy(|s| s.keep_newest = Some(1)), None);
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("v1", D, "no-keep-rule"),
            ("v2", K, "keep-newest"),
            (&s1, D, "follows-image"),
            (&a1, D, "follows-image"),
            (&s2, K, "follows-image"),
            (&r0, D, "follows-image"),
        ])
    );
    assert!(
        o.decisions[4].reason.ends_with("which kept tag v2 points at"),
        "{}",
        o.decisions[4].reason
    );
    // Explicit patterns still apply to them; the floor does not count them.
    let o = run(
        &t,
        &policy(|s| {
            s.keep_tags = vec![r"\.att$".into()];
            s.drop = vec![drop_rule(&[r"\.sig$"], None)];
            s.pushed_within = Some("7d".into());
            s.keep_at_least = Some(1);
        }),
        None,
    );
    assert_eq!(
        verdicts(&t, &o),
        v(&[
            ("v1", D, "no-keep-rule"),
            ("v2", K, "keep-at-least"),
            (&s1, D, "drop"),
            (&a1, K, "keep-tags"),
            (&s2, D, "drop"),
            (&r0, D, "follows-image"),
        ])
    );
    for not in [
        "sha256-abc.sig",
        "sha256-",
        "latest",
        "",
        &format!("{r0}."),
        &format!("{r0}x"),
    ] {
        assert!(decide::signature_subject(not).is_none(), "{not}");
    }
    assert_eq!(decide::signature_subject(&s1), Some(Digest::sha256_of(b"one")));
    assert!(decide::signature_subject(&r0).is_some());
}

/// `--explain --tsv`: every field in its column; the tags to drop in
/// reg-ls's tag columns.
#[test]
fn tsv_columns_name_every_field() {
    let t = &tags(&[("team/app", "1.0", 3, "a")])[0];
    let d = Decision {
        keep: false,
        rule: Rule::Drop,
        policy: Some(0),
        reason: "why".into(),
        last_pull: Some(days_ago(1)),
        image_kept_by: vec!["2.0".into()],
    };
    crate::record::assert_columns(&Explained::new(t, &d));
    crate::record::assert_columns(&AsRead(&t.record));
}
