//! One line of a registry log, in any format the registry writes: the
//! access log (Apache combined), the application log (logrus text, JSON or
//! logstash), or a notification envelope or event on one line.

use serde_json::{Map, Value};
use std::borrow::Cow;

use super::events;
use super::Reference;
use crate::digest::Digest;
use crate::layout::{check_repo_name, check_tag};
use crate::time::Time;

/// Something a log says happened at a time: a pull of a repository's tag
/// or digest, or anything else (which still tells the span the log covers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub time: Time,
    pub pull: Option<(String, Reference)>,
}

/// What `line` says, or `None` when it is in no format read here. A
/// notification envelope gives one [`Seen`] per event.
pub fn parse_line(line: &str) -> Option<Vec<Seen>> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(v) = json_object(line) {
        return json_line(&v);
    }
    if line.contains("msg=") {
        if let Some(seen) = logfmt_line(line) {
            return Some(vec![seen]);
        }
    }
    combined_line(line).map(|s| vec![s])
}

/// The JSON object a line holds (after any prefix, such as journalctl's).
fn json_object(line: &str) -> Option<Map<String, Value>> {
    let start = line.find('{')?;
    if !line.trim_end().ends_with('}') {
        return None;
    }
    serde_json::from_str(&line[start..]).ok()
}

/// A JSON line: a logrus JSON (or logstash) entry, an envelope, an event.
pub(super) fn json_line(v: &Map<String, Value>) -> Option<Vec<Seen>> {
    if let Some(seen) = events::envelope(v) {
        return Some(seen);
    }
    let time = ["time", "@timestamp"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .and_then(|t| Time::parse(t).ok())?;
    let msg = ["msg", "message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))?;
    let pull = if msg.starts_with("response completed") {
        let status = match v.get("http.response.status") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let method = v.get("http.request.method").and_then(Value::as_str);
        let uri = v.get("http.request.uri").and_then(Value::as_str);
        match (method, uri, status) {
            (Some(m), Some(u), Some(s)) => request_pull(m, u, s),
            _ => None,
        }
    } else {
        None
    };
    Some(vec![Seen { time, pull }])
}

/// A logrus text line: `time="…" level=info msg="response completed" key=value…`,
/// values quoted as Go quotes them when they need it.
fn logfmt_line(line: &str) -> Option<Seen> {
    let fields = logfmt(line);
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_ref());
    let time = Time::parse(get("time")?).ok()?;
    let msg = get("msg")?;
    let pull = if msg.starts_with("response completed") {
        match (
            get("http.request.method"),
            get("http.request.uri"),
            get("http.response.status").and_then(|s| s.parse().ok()),
        ) {
            (Some(m), Some(u), Some(s)) => request_pull(m, u, s),
            _ => None,
        }
    } else {
        None
    };
    Some(Seen { time, pull })
}

/// The `key=value` pairs of a logfmt line; words without `=` (a prefix
/// such as journalctl's) are skipped.
fn logfmt(line: &str) -> Vec<(&str, Cow<'_, str>)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // A word without `=`: skip it.
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            continue;
        }
        let key = &line[start..i];
        i += 1;
        if i < b.len() && b[i] == b'"' {
            match go_unquote(&line[i..]) {
                Some((value, used)) => {
                    out.push((key, Cow::Owned(value)));
                    i += used;
                }
                // An unterminated quote: nothing after it can be trusted.
                None => break,
            }
        } else {
            let vstart = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            out.push((key, Cow::Borrowed(&line[vstart..i])));
        }
    }
    out
}

/// Reads a Go-quoted string (`strconv.Quote`) at the start of `s`: the
/// value and the bytes it took, quotes included.
fn go_unquote(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    debug_assert_eq!(b.first(), Some(&b'"'));
    let mut out: Vec<u8> = Vec::new();
    let mut i = 1;
    let hex = |digits: &[u8]| -> Option<u32> {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    while i < b.len() {
        match b[i] {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1)),
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' | b'"' | b'\'' => out.push(c),
                    b'x' => {
                        out.push(hex(b.get(i..i + 2)?)? as u8);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let ch = char::from_u32(hex(b.get(i..i + n)?)?).unwrap_or('\u{FFFD}');
                        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                        i += n;
                    }
                    b'0'..=b'7' => {
                        let oct = std::str::from_utf8(b.get(i - 1..i + 2)?).ok()?;
                        out.push(u8::from_str_radix(oct, 8).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

/// An access log line (Apache combined or common format):
/// `… [02/Dec/2026:05:06:49 +0000] "GET /v2/… HTTP/1.1" 200 …`, the
/// bracketed time anywhere in the line (the access log's host, ident and
/// user come before it). Read by hand, not by a regular expression: logs
/// run to millions of lines.
fn combined_line(line: &str) -> Option<Seen> {
    let mut from = 0;
    while let Some(at) = line[from..].find('[') {
        let start = from + at + 1;
        if let Some(seen) = combined_from(&line[start..]) {
            return Some(seen);
        }
        from = start;
    }
    None
}

/// `02/Dec/2026:05:06:49 +0000] "GET /v2/… HTTP/1.1" 200 …`
fn combined_from(s: &str) -> Option<Seen> {
    let b = s.as_bytes();
    // dd/Mon/yyyy:hh:mm:ss +zzzz] "
    if b.len() < 30 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' || &b[26..29] != b"] \""
    {
        return None;
    }
    let month = match &s[3..6] {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let zone = &s[21..26];
    if !zone.starts_with(['+', '-']) || !zone[1..].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let time = Time::parse(&format!(
        "{}-{month:02}-{}T{}{}:{}",
        &s[7..11],
        &s[0..2],
        &s[12..20],
        &zone[..3],
        &zone[3..]
    ))
    .ok()?;
    // "METHOD URI PROTOCOL" STATUS
    let rest = &s[29..];
    let (request, after) = rest.split_once('"')?;
    let mut words = request.split(' ');
    let (method, uri) = (words.next()?, words.next()?);
    let status = after.strip_prefix(' ')?.get(..3)?;
    if !status.bytes().all(|c| c.is_ascii_digit()) || after[4..].chars().next().is_some_and(|c| c != ' ') {
        return None;
    }
    Some(Seen {
        time,
        pull: request_pull(method, uri, status.parse().ok()?),
    })
}

/// The repository and reference of a successful manifest `GET` or `HEAD`.
fn request_pull(method: &str, uri: &str, status: u64) -> Option<(String, Reference)> {
    if !matches!(method, "GET" | "HEAD") || !(200..300).contains(&status) {
        return None;
    }
    manifest_uri(uri)
}

/// `/v2/<name>/manifests/<reference>` (query and fragment ignored, `%XX`
/// decoded; an absolute URI from a proxy is read by its path).
pub(super) fn manifest_uri(uri: &str) -> Option<(String, Reference)> {
    let path = uri.split(['?', '#']).next()?;
    let path = match path.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => path,
    };
    let path = percent_decode(path)?;
    let rest = path.strip_prefix("/v2/")?;
    let (name, reference) = rest.rsplit_once("/manifests/")?;
    check_repo_name(name).ok()?;
    let reference = if reference.contains(':') {
        Reference::Digest(Digest::parse(reference).ok()?)
    } else {
        check_tag(reference).ok()?;
        Reference::Tag(reference.to_string())
    };
    Some((name.to_string(), reference))
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(line: &str) -> Option<(String, Reference)> {
        let seen = parse_line(line).unwrap_or_else(|| panic!("not recognised: {line}"));
        assert_eq!(seen.len(), 1, "{line}");
        seen[0].pull.clone()
    }

    fn tag(repo: &str, t: &str) -> Option<(String, Reference)> {
        Some((repo.into(), Reference::Tag(t.into())))
    }

    const D: &str = "sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d";

    #[test]
    fn access_log_lines() {
        let l = r#"127.0.0.1 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/1.0.0 HTTP/1.1" 200 555 "" "skopeo/1.9.3""#;
        assert_eq!(pull(l), tag("team/app", "1.0.0"));
        let seen = &parse_line(l).unwrap()[0];
        assert_eq!(seen.time.to_string(), "2026-12-02T05:06:49Z");
        // Offsets are applied; HEAD counts; a digest, percent-encoded too.
        let l = format!(
            r#"10.0.0.9 - alice [02/Dec/2026:07:06:49 +0200] "HEAD /v2/a/b/c/manifests/{D} HTTP/2.0" 200 0 "-" "containerd/1.7""#
        );
        assert_eq!(
            pull(&l),
            Some(("a/b/c".into(), Reference::Digest(Digest::parse(D).unwrap())))
        );
        assert_eq!(
            parse_line(&l).unwrap()[0].time.to_string(),
            "2026-12-02T05:06:49Z"
        );
        let enc = l.replace("sha256:", "sha256%3A");
        assert_eq!(pull(&enc), pull(&l));
        // Not pulls: failures, pushes, blobs, other endpoints, bad names.
        for not in [
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/nope HTTP/1.1" 404 94 "" "curl""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/1.0 HTTP/1.1" 401 94 "" "curl""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "PUT /v2/team/app/manifests/1.0 HTTP/1.1" 201 0 "" "skopeo""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "DELETE /v2/team/app/manifests/1.0 HTTP/1.1" 202 0 "" "x""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/blobs/sha256:00 HTTP/1.1" 200 9 "" "x""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/tags/list HTTP/1.1" 200 9 "" "x""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/App/manifests/1 HTTP/1.1" 200 9 "" "x""#,
            r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/sha256:abc HTTP/1.1" 200 9 "" "x""#,
        ] {
            assert_eq!(pull(not), None, "{not}");
        }
        assert!(parse_line("hello world").is_none());
        assert!(parse_line(r#"x [32/Dec/2026:05:06:49 +0000] "GET / HTTP/1.1" 200 1"#).is_none());
    }

    #[test]
    fn query_strings_and_proxies() {
        let l = r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET /v2/team/app/manifests/1.0.0?ns=docker.io HTTP/1.1" 200 555 "" "x""#;
        assert_eq!(pull(l), tag("team/app", "1.0.0"));
        let l = r#"1.2.3.4 - - [02/Dec/2026:05:06:49 +0000] "GET http://reg:5000/v2/team/app/manifests/1.0.0 HTTP/1.1" 200 555 "" "x""#;
        assert_eq!(pull(l), tag("team/app", "1.0.0"));
        // A repository named like the route: the last /manifests/ splits.
        assert_eq!(
            manifest_uri("/v2/x/manifests/y/manifests/latest"),
            tag("x/manifests/y", "latest")
        );
    }

    #[test]
    fn logrus_text_lines() {
        // As the registry printed them (the fixture has the whole log).
        let ok = r#"time="2026-12-02T05:06:49.429925997Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5077" http.request.id=475d28f6 http.request.method=GET http.request.remoteaddr="127.0.0.1:60314" http.request.uri=/v2/team/app/manifests/1.0.0 http.request.useragent=skopeo/1.9.3 http.response.contenttype=application/vnd.oci.image.manifest.v1+json http.response.duration=2.442854ms http.response.status=200 http.response.written=555"#;
        assert_eq!(pull(ok), tag("team/app", "1.0.0"));
        assert_eq!(
            parse_line(ok).unwrap()[0].time.to_string(),
            "2026-12-02T05:06:49Z"
        );
        let quoted = format!(
            r#"time="2026-12-02T05:06:49Z" level=info msg="response completed" http.request.method=HEAD http.request.uri="/v2/team/app/manifests/{D}" http.response.status=200"#
        );
        assert_eq!(
            pull(&quoted),
            Some(("team/app".into(), Reference::Digest(Digest::parse(D).unwrap())))
        );
        let err = r#"time="2026-12-02T05:06:49.627018577Z" level=error msg="response completed with error" err.code="manifest unknown" err.message="OCI manifest found, but accept header does not support OCI manifests" http.request.method=HEAD http.request.uri=/v2/team/app/manifests/1.0.0 http.response.status=404 vars.name=team/app vars.reference=1.0.0"#;
        assert_eq!(pull(err), None);
        // Another message is a line with a time, not a pull.
        let other = r#"time="2026-12-02T05:06:22.868345114Z" level=info msg="listening on 127.0.0.1:5077" go.version=go1.19.8"#;
        assert_eq!(pull(other), None);
        // journalctl's prefix is skipped.
        let j = format!("Dec 02 05:06:49 host docker-registry[812]: {ok}");
        assert_eq!(pull(&j), tag("team/app", "1.0.0"));
    }

    #[test]
    fn go_quoting() {
        for (q, want) in [
            (r#""plain""#, "plain"),
            (r#""a \"b\" c""#, r#"a "b" c"#),
            (r#""tab\tnl\n\\""#, "tab\tnl\n\\"),
            (r#""\x41\u00e9\U0001F600\101""#, "Aé😀A"),
        ] {
            let (v, used) = go_unquote(q).unwrap();
            assert_eq!((v.as_str(), used), (want, q.len()), "{q}");
        }
        assert!(go_unquote(r#""unterminated"#).is_none());
        let f = logfmt(r#"a=1 b="x y" junk c="" d=e=f"#);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(f, [("a", "1"), ("b", "x y"), ("c", ""), ("d", "e=f")]);
    }

    #[test]
    fn logrus_json_and_logstash_lines() {
        let j = r#"{"go.version":"go1.19.8","http.request.method":"GET","http.request.uri":"/v2/team/app/manifests/2.0.0-rc1","http.response.status":200,"level":"info","msg":"response completed","time":"2026-12-02T05:06:49.737140202Z"}"#;
        assert_eq!(pull(j), tag("team/app", "2.0.0-rc1"));
        let ls = r#"{"@timestamp":"2026-12-02T05:06:49.737Z","@version":"1","http.request.method":"HEAD","http.request.uri":"/v2/team/app/manifests/2","http.response.status":"204","level":"info","message":"response completed"}"#;
        assert_eq!(pull(ls), tag("team/app", "2"));
        let no_time = r#"{"msg":"response completed","http.request.method":"GET","http.request.uri":"/v2/a/manifests/1","http.response.status":200}"#;
        assert!(parse_line(no_time).is_none());
    }
}
