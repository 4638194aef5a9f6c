//! Version order of tags: semantic versions (a leading `v` allowed, any
//! number of release numbers), then everything else in natural order
//! (`build-9` before `build-10`).
//!
//! A tag is a version when it reads `[v]N(.N)*` with an optional
//! `-prerelease` (`1.2.3`, `v2`, `3.18`, `1.0.0-rc.1`, `1.2.3-alpine`).
//! Versions compare as semver: release numbers one by one (a missing one
//! is 0), then a release above its prereleases, whose dot-separated parts
//! compare as numbers when both are numbers and otherwise in natural order
//! (so `rc2` < `rc10` too, where strict semver would compare text). Every
//! version ranks above every other tag (`latest`, `main`, `sha-…`); ties
//! (`1.2` and `1.2.0`) fall back to natural order, so the order is total.

use std::cmp::Ordering;

/// Orders `a` and `b` by version, lowest first.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => semver_cmp(&x, &y).then_with(|| natural_cmp(a, b)),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => natural_cmp(a, b),
    }
}

/// Whether `tag` reads as a version (see the module header).
pub fn is_version(tag: &str) -> bool {
    parse(tag).is_some()
}

struct Version<'a> {
    release: Vec<&'a str>,
    pre: Option<&'a str>,
}

fn parse(s: &str) -> Option<Version<'_>> {
    let s = match s.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => s,
    };
    let (release, pre) = match s.split_once('-') {
        Some((r, p)) => (r, Some(p)),
        None => (s, None),
    };
    let release: Vec<&str> = release.split('.').collect();
    if release
        .iter()
        .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if let Some(p) = pre {
        if p.is_empty() || p.split('.').any(str::is_empty) {
            return None;
        }
    }
    Some(Version { release, pre })
}

fn semver_cmp(a: &Version<'_>, b: &Version<'_>) -> Ordering {
    let n = a.release.len().max(b.release.len());
    for i in 0..n {
        let x = a.release.get(i).copied().unwrap_or("0");
        let y = b.release.get(i).copied().unwrap_or("0");
        match number_cmp(x, y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (a.pre, b.pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (mut xs, mut ys) = (x.split('.'), y.split('.'));
            loop {
                match (xs.next(), ys.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(p), Some(q)) => {
                        let num = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
                        let o = match (num(p), num(q)) {
                            (true, true) => number_cmp(p, q),
                            (true, false) => Ordering::Less,
                            (false, true) => Ordering::Greater,
                            (false, false) => natural_cmp(p, q),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                }
            }
        }
    }
}

/// Two strings of ASCII digits by value, of any length.
fn number_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Natural order: runs of digits compare as numbers, the rest as text;
/// equal by that, the plain text decides (`a01` before `a1`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (chunks(a), chunks(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let digits = |s: &str| s.as_bytes()[0].is_ascii_digit();
                let o = if digits(p) && digits(q) {
                    number_cmp(p, q)
                } else {
                    p.cmp(q)
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// `build-10a` → `build-`, `10`, `a`.
fn chunks(s: &str) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        let start = i;
        let d = b[i].is_ascii_digit();
        while i < b.len() && b[i].is_ascii_digit() == d {
            i += 1;
        }
        Some(&s[start..i])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each list is in ascending order; every pair must compare so.
    fn ascending(list: &[&str]) {
        for (i, a) in list.iter().enumerate() {
            for (j, b) in list.iter().enumerate() {
                assert_eq!(version_cmp(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn semver_with_v_and_short_versions() {
        ascending(&[
            "0.9",
            "v1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc1",
            "1.0.0-rc2",
            "1.0.0-rc10",
            "1.0.0",
            "v1.0.1",
            "1.2",
            "1.2.0",
            "1.10.0",
            "v2",
            "3.18",
            "3.18.1",
            "20240101",
        ]);
    }

    #[test]
    fn versions_above_other_tags_in_natural_order() {
        ascending(&["build-2", "build-10", "latest", "main", "sha256-ab.sig", "0.1"]);
        assert!(is_version("v1.2.3-alpine"));
        for not in ["latest", "v", "1.", "1..2", "1.2-", "x1.2", "1.2.3_b", "-1"] {
            assert!(!is_version(not), "{not}");
        }
        // Numbers longer than any integer type.
        assert_eq!(
            version_cmp("99999999999999999999999", "100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["a10", "a2", "a1", "b", "a01", "A"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["A", "a01", "a1", "a2", "a10", "b"]);
    }
}
