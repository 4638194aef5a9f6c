//! The name rules: repository names as the registry's reference grammar
//! accepts them, tags and upload ids.

/// The longest repository name the registry accepts (`NameTotalLengthMax`).
pub const REPO_NAME_MAX: usize = 255;

/// A path component of a repository name, as the registry's reference
/// grammar has it (`[-]*` there: an empty separator only splits a run).
const COMPONENT_RE: &str = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";

/// Checks a repository name against the registry's reference grammar
/// (distribution's `reference` package, 2.8 and v3): an optional domain
/// followed by `/`, then path components joined by `/`, 255 characters at
/// most. A path component matches `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`;
/// the domain is `host(:port)?`, where the host is dot-separated components
/// of letters (either case), digits and inner hyphens, or (v3) an IPv6
/// literal `[a-fA-F0-9:]+` in brackets. So `Upper/app` and
/// `MyReg.example.com:5000/team/app` are names the registry serves, and a
/// lone `Upper` or `a/Upper` is not. No name can hold an empty component,
/// `.`, `..` or a leading `/`, so paths built from one stay below
/// `repositories/`.
pub fn check_repo_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty repository name".into());
    }
    if name.len() > REPO_NAME_MAX {
        return Err(format!(
            "repository name longer than {REPO_NAME_MAX} characters ({})",
            name.len()
        ));
    }
    let Some(bad) = bad_component(name) else {
        return Ok(());
    };
    // The first component may be a domain instead.
    if let Some((domain, rest)) = name.split_once('/') {
        if valid_domain(domain) {
            return match bad_component(rest) {
                None => Ok(()),
                Some(c) => Err(format!(
                    "invalid repository name {name:?}: component {c:?} must match {COMPONENT_RE}"
                )),
            };
        }
    }
    let domain_too = if name.contains('/') && bad == name.split('/').next().unwrap_or_default() {
        " (or, as the first of several components, be a domain: letters, digits, dots, inner \
         hyphens and an optional :port)"
    } else {
        ""
    };
    Err(format!(
        "invalid repository name {name:?}: component {bad:?} must match {COMPONENT_RE}{domain_too}"
    ))
}

/// The first component of the `/`-separated `path` that is not one.
fn bad_component(path: &str) -> Option<&str> {
    path.split('/').find(|c| !valid_component(c))
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alphanumeric run.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator: ".", "_", "__" or one or more "-".
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// The registry's domain: `host(:port)?`, the host being dot-separated
/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` components or (v3) an IPv6
/// literal `\[[a-fA-F0-9:]+\]`, the port `[0-9]+`.
fn valid_domain(d: &str) -> bool {
    // The port: after the last ':' outside the brackets of an IPv6 host.
    let (host, port) = match d.rfind(':') {
        Some(i) if !d[i..].contains(']') => (&d[..i], Some(&d[i + 1..])),
        _ => (d, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    })
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ))
    }
}

/// Checks an upload id (the registry uses UUIDs): letters, digits and `-`.
pub fn check_upload_id(id: &str) -> std::result::Result<(), String> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid upload id {id:?}"))
    }
}
