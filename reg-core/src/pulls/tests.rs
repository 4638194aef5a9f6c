//! The fixtures are what Debian's docker-registry 2.8.2 wrote while skopeo
//! pushed `team/app:1.0.0` and `team/app:2.0.0-rc1` and then pulled them
//! (by tag, by digest, HEAD, with a percent-encoded digest) and curl asked
//! for manifests it could not have (404s): its access log (stdout), its
//! application log as logrus text and as JSON (stderr, `log.level: info`),
//! and the notification envelopes it posted. Each must give the same pulls.

use std::io::{Cursor, Write};
use std::path::Path;

use super::*;

const ACCESS: &str = include_str!("../../testdata/pulls/access.log");
const TEXT: &str = include_str!("../../testdata/pulls/registry-text.log");
const JSON: &str = include_str!("../../testdata/pulls/registry-json.log");
const EVENTS: &str = include_str!("../../testdata/pulls/notifications.json");

const RC_DIGEST: &str = "sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d";

fn read(text: &[u8]) -> (PullLog, LogStats) {
    let mut log = PullLog::default();
    let r = open(Cursor::new(text.to_vec())).unwrap();
    let stats = read_log(r, Path::new("fixture"), &mut log).unwrap();
    (log, stats)
}

/// `(repo, tag or digest, last pull to the second, pulls)`.
fn summary(log: &PullLog) -> Vec<(String, String, String, u64)> {
    log.records()
        .map(|r| match r {
            PullsRecord::Pull {
                repo,
                tag,
                digest,
                last_pull,
                pulls,
            } => (
                repo,
                tag.unwrap_or_else(|| digest.unwrap().to_string()),
                last_pull.to_string(),
                pulls,
            ),
            PullsRecord::End(_) => unreachable!(),
        })
        .collect()
}

fn row(r: &str, t: &str, time: &str, n: u64) -> (String, String, String, u64) {
    (r.into(), t.into(), time.into(), n)
}

#[test]
fn access_log_fixture() {
    let (log, stats) = read(ACCESS.as_bytes());
    assert_eq!(
        summary(&log),
        [
            row("team/app", "1.0.0", "2026-12-02T05:06:53Z", 2),
            row("team/app", "2.0.0-rc1", "2026-12-02T05:09:42Z", 2),
            row("team/app", RC_DIGEST, "2026-12-02T05:09:42Z", 3),
        ]
    );
    assert_eq!(stats.lines, ACCESS.lines().count() as u64);
    assert_eq!(stats.known, stats.lines, "every access log line is read");
    let end = log.end();
    assert_eq!((end.records, end.pulls), (3, 7));
    assert_eq!(end.since.unwrap().to_string(), "2026-12-02T05:06:24Z");
    assert_eq!(end.until.unwrap().to_string(), "2026-12-02T05:09:42Z");
}

#[test]
fn application_log_fixtures_text_and_json() {
    // The two registries ran side by side: the JSON one's HEAD of 1.0.0
    // came 31 ms later, past the second.
    for (name, text, head) in [
        ("text", TEXT, "2026-12-02T05:06:53Z"),
        ("json", JSON, "2026-12-02T05:06:54Z"),
    ] {
        let (log, stats) = read(text.as_bytes());
        let s = summary(&log);
        let tags: Vec<_> = s.iter().map(|r| (r.1.as_str(), r.3)).collect();
        assert_eq!(tags, [("1.0.0", 2), ("2.0.0-rc1", 2), (RC_DIGEST, 3)], "{name}");
        assert!(s.iter().all(|r| r.0 == "team/app"), "{name}");
        assert_eq!(stats.known, stats.lines, "{name}: every line is logrus");
        assert_eq!(s[0].2, head, "{name}");
        assert_eq!(s[2].2, "2026-12-02T05:09:42Z", "{name}");
    }
}

#[test]
fn notification_fixture() {
    let (log, stats) = read(EVENTS.as_bytes());
    let s = summary(&log);
    // The registry sends a pull event for the two 404s of 1.0.0 too (it
    // read the manifest, then refused it for the Accept header).
    let got: Vec<_> = s.iter().map(|r| (r.1.as_str(), r.3)).collect();
    assert_eq!(got, [("1.0.0", 4), ("2.0.0-rc1", 2), (RC_DIGEST, 3)]);
    assert_eq!(s[1].2, "2026-12-02T05:09:42Z");
    assert_eq!(stats.lines, EVENTS.lines().count() as u64);
    // Every event counts for the span, pushes and blob pulls included.
    assert!(log
        .end()
        .since
        .unwrap()
        .to_string()
        .starts_with("2026-12-02T05:06:4"));
}

#[test]
fn gzip_rotated_and_concatenated() {
    use flate2::write::GzEncoder;
    let gz = |s: &str| {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let (plain, _) = read(ACCESS.as_bytes());
    let (zipped, _) = read(&gz(ACCESS));
    assert_eq!(summary(&zipped), summary(&plain));
    // Two members one after the other (cat a.gz b.gz) are read as one.
    let half = ACCESS.len() / 2;
    let cut = ACCESS[..half].rfind('\n').unwrap() + 1;
    let mut two = gz(&ACCESS[..cut]);
    two.extend(gz(&ACCESS[cut..]));
    let (both, _) = read(&two);
    assert_eq!(summary(&both), summary(&plain));
    // A broken gzip stream is an error naming the input, not a short list.
    let mut bad = gz(ACCESS);
    bad.truncate(bad.len() / 2);
    let mut log = PullLog::default();
    let e = read_log(open(Cursor::new(bad)).unwrap(), Path::new("a.gz"), &mut log).unwrap_err();
    assert!(e.to_string().starts_with("a.gz: line "), "{e}");
}

#[test]
fn several_logs_merge_and_mixed_lines_are_read() {
    // docker logs / journalctl: the access log and the app log in one stream.
    let mixed: String = ACCESS
        .lines()
        .zip(TEXT.lines())
        .flat_map(|(a, b)| [a, b])
        .collect::<Vec<_>>()
        .join("\n");
    let (log, stats) = read(mixed.as_bytes());
    assert_eq!(stats.known, stats.lines);
    let s = summary(&log);
    assert_eq!(s.len(), 3);
    let mut two = PullLog::default();
    for text in [ACCESS, EVENTS] {
        read_log(
            open(Cursor::new(text.as_bytes().to_vec())).unwrap(),
            Path::new("x"),
            &mut two,
        )
        .unwrap();
    }
    assert_eq!(two.pulls(), 7 + 9);
}

#[test]
fn an_indented_envelope_after_other_lines_and_bad_json_after_it() {
    let text = format!("{}\n{EVENTS}", ACCESS.lines().next().unwrap());
    let (log, stats) = read(text.as_bytes());
    assert_eq!(log.pulls(), 9);
    assert_eq!(stats.lines, 1 + EVENTS.lines().count() as u64);
    let bad = format!("{EVENTS}\nnot json\n");
    let mut log = PullLog::default();
    let e = read_log(
        open(Cursor::new(bad.into_bytes())).unwrap(),
        Path::new("ev"),
        &mut log,
    )
    .unwrap_err();
    let want = format!("ev: line {}: not JSON", EVENTS.lines().count() + 2);
    assert!(e.to_string().starts_with(&want), "{e}");
}

#[test]
fn records_round_trip_and_cut_lists_are_refused() {
    let (log, _) = read(ACCESS.as_bytes());
    let mut out = Vec::new();
    for r in log.records() {
        serde_json::to_writer(&mut out, &r).unwrap();
        out.push(b'\n');
    }
    serde_json::to_writer(&mut out, &PullsRecord::End(log.end())).unwrap();
    out.push(b'\n');
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        r#"{"kind":"pull","repo":"team/app","tag":"1.0.0","digest":null,"last_pull":"2026-12-02T05:06:53Z","pulls":2}"#
    );
    let times = parse_pulls(text.as_bytes()).unwrap();
    let d = Digest::parse(RC_DIGEST).unwrap();
    assert_eq!(
        times.last_pull("team/app", "2.0.0-rc1", &d).unwrap().to_string(),
        "2026-12-02T05:09:42Z"
    );
    // Pulled by digest only: another tag on the same manifest counts it.
    assert_eq!(
        times.last_pull("team/app", "other", &d).unwrap().to_string(),
        "2026-12-02T05:09:42Z"
    );
    assert!(times
        .last_pull("team/app", "other", &Digest::sha256_of(b"x"))
        .is_none());
    assert_eq!(times.end.records, 3);

    // Cut: no trailer. Filtered: counts disagree. Concatenated. Other kinds.
    let lines: Vec<&str> = text.lines().collect();
    let e = parse_pulls(lines[..2].join("\n").as_bytes()).unwrap_err();
    assert!(e.why.contains("no reg-pulls trailer"), "{e}");
    let filtered = [lines[0], lines[3]].join("\n");
    let e = parse_pulls(filtered.as_bytes()).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.why.contains("counts 3 records, the input holds 1"), "{e}");
    let twice = format!("{text}{text}");
    let e = parse_pulls(twice.as_bytes()).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    let tag = r#"{"kind":"tag","repo":"a","tag":"1","digest":"sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d","mtime":"2026-01-01T00:00:00Z"}"#;
    let e = parse_pulls(format!("{tag}\n{}", lines[3]).as_bytes()).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.why.contains("not a reg-pulls record"), "{e}");
    let both = r#"{"kind":"pull","repo":"a","tag":"1","digest":"sha256:4eb3e06b3128bbdd2b47536076056a771a67959fe49b4f33eae668c040d0681d","last_pull":"2026-01-01T00:00:00Z","pulls":1}"#;
    let e = parse_pulls(both.as_bytes()).unwrap_err();
    assert!(e.why.contains("exactly one"), "{e}");
}

/// `--tsv`: a pull's fields in fixed columns (`tag` or `digest` empty).
#[test]
fn tsv_columns_name_every_field() {
    let rec = PullsRecord::Pull {
        repo: "team/app".into(),
        tag: Some("1.0.0".into()),
        digest: None,
        last_pull: Time::parse("2026-12-02T05:06:53Z").unwrap(),
        pulls: 2,
    };
    crate::record::assert_columns(&rec);
    assert_eq!(<PullsRecord as crate::output::Record>::columns("end"), None);
}
