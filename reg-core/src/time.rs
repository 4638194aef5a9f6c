//! Times as the contract writes them (RFC 3339, UTC, `Z`) and durations as
//! users type them (`1h`, `168h`, `30m`, `7d`, `0s`).

use std::fmt;
use std::time::{Duration, SystemTime};

/// How far ahead of "now" a modification time may be before it is in the
/// future (the clocks of NFS clients and servers disagree by a little).
pub const FUTURE_SLACK: Duration = Duration::from_secs(300);

/// The one age policy of the grace periods (reg-orphans' and reg-rm's
/// `--min-age`): a modification time is young when it is less than
/// `min_age` before `now`, or in the future (more than [`FUTURE_SLACK`]
/// ahead: kept by every run until then, with a [`future_warning`]); old
/// otherwise.
#[derive(Clone, Copy, Debug)]
pub struct AgePolicy {
    pub now: SystemTime,
    pub min_age: Duration,
}

impl AgePolicy {
    /// In the future: more than [`FUTURE_SLACK`] ahead of `now`.
    pub fn future(&self, mtime: SystemTime) -> bool {
        mtime.duration_since(self.now).is_ok_and(|d| d > FUTURE_SLACK)
    }

    /// Younger than `min_age`, or in the future: kept.
    pub fn young(&self, mtime: SystemTime) -> bool {
        self.future(mtime) || Time(mtime).age(self.now) < self.min_age
    }

    /// Old enough to act on.
    pub fn old(&self, mtime: SystemTime) -> bool {
        !self.young(mtime)
    }
}

/// The warning for a file whose modification time is in the future.
pub fn future_warning(path: &std::path::Path, mtime: SystemTime) -> String {
    format!(
        "{}: modification time {} is in the future: kept, and kept by every run until then \
         (a wrong clock? set it right with touch)",
        path.display(),
        Time(mtime)
    )
}

/// A point in time that serializes as an RFC 3339 UTC string ending in `Z`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub SystemTime);

impl Time {
    pub fn now() -> Time {
        Time(SystemTime::now())
    }

    /// Parses RFC 3339 as the registry writes it (`startedat` files) and as
    /// [`Time`] prints it: `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds,
    /// then `Z`, a `+HH:MM`/`-HH:MM` offset, or nothing (UTC). A space may
    /// stand for the `T`. Years 0000 to 9999, before 1970 too.
    pub fn parse(s: &str) -> Result<Time, String> {
        parse_rfc3339(s.trim())
            .map(Time)
            .ok_or_else(|| format!("invalid time {s:?}: expected RFC 3339 such as 2024-01-02T03:04:05Z"))
    }

    /// How long ago this was; zero for times in the future.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.0).unwrap_or_default()
    }
}

/// Seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z since the epoch.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

/// Whole seconds since 1970 (floored: 1969-12-31T23:59:59.5Z is -1).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            (-s).saturating_sub(i64::from(d.subsec_nanos() > 0))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(crate) fn from_unix_secs(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nanos))
    }
}

/// Parses an HTTP date (RFC 9110's IMF-fixdate, what S3 sends in `Date`):
/// `Sun, 06 Nov 1994 08:49:37 GMT`. `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.trim();
    let (_weekday, rest) = rest.split_once(", ")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, hms, "GMT"] = f.as_slice() else {
        return None;
    };
    let num = |t: &str, len: usize| -> Option<u32> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let m = 1 + [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| x == month)? as u32;
    let (y, d) = (i64::from(num(year, 4)?), num(day, 2)?);
    let t: Vec<&str> = hms.split(':').collect();
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    let (hh, mm, ss) = (num(hh, 2)?, num(mm, 2)?, num(ss, 2)?);
    if d == 0 || d > days_in_month(y, m) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    Some(from_unix_secs(secs, 0))
}

/// Parses the RFC 3339 forms [`Time::parse`] accepts.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0u32, |n, &c| Some(n * 10 + u32::from(c - b'0')))
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        nanos *= 10u32.pow(9u32.saturating_sub((i - start) as u32));
    }
    let offset = match &b[i..] {
        b"" | b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset;
    Some(from_unix_secs(secs, nanos))
}

impl fmt::Display for Time {
    /// RFC 3339 in UTC to the second, e.g. `1901-12-13T20:45:52Z`. Times
    /// outside years 0000 to 9999, which four digits cannot say, are shown
    /// as the nearest end of that range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = unix_secs(self.0).clamp(MIN_SECS, MAX_SECS);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Time::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A duration as the flags take it: `1h`, `7days`, `1h 30m`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a duration such as `1h`, `168h`, `90m`, `1h30m`, `7d` or `0s`.
/// A bare `0` is accepted too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e} (try 1h, 30m, 7d, 0s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_policy_young_old_and_future() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let p = AgePolicy {
            now,
            min_age: Duration::from_secs(3600),
        };
        let ago = |s: u64| now - Duration::from_secs(s);
        let ahead = |s: u64| now + Duration::from_secs(s);
        // (mtime, young, future)
        for (m, young, future) in [
            (ago(3600), false, false),
            (ago(3599), true, false),
            (ago(86_400), false, false),
            (now, true, false),
            // Within the slack: young, not yet a clock problem.
            (ahead(300), true, false),
            (ahead(301), true, true),
        ] {
            assert_eq!(p.young(m), young, "{:?}", Time(m));
            assert_eq!(p.old(m), !young, "{:?}", Time(m));
            assert_eq!(p.future(m), future, "{:?}", Time(m));
        }
        // A file in the future is kept even with no grace period at all.
        let zero = AgePolicy {
            now,
            min_age: Duration::ZERO,
        };
        assert!(zero.old(now) && zero.old(ahead(300)) && zero.young(ahead(301)));
    }

    #[test]
    fn http_dates() {
        let t = |s: &str| parse_http_date(s).map(|t| Time(t).to_string());
        assert_eq!(
            t("Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
            Some("1994-11-06T08:49:37Z")
        );
        assert_eq!(
            t("Thu, 29 Feb 2024 23:59:59 GMT").as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(
            t("Thu, 01 Jan 1970 00:00:00 GMT").as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Thu, 29 Feb 2023 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        let table = [
            ("0s", 0),
            ("0", 0),
            ("1h", 3600),
            ("168h", 604800),
            ("1h30m", 5400),
            ("7d", 604800),
            ("90s", 90),
        ];
        for (s, secs) in table {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_secs(secs), "{s}");
        }
        for bad in ["", "h", "-1h", "1 fortnight", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_round_trip_to_z() {
        let t = Time::parse("2024-01-02T03:04:05.123456789Z").unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05Z");
        let t = Time::parse("2024-01-02T03:04:05Z\n").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2024-01-02T03:04:05Z\"");
        assert!(Time::parse("yesterday").is_err());
    }

    #[test]
    fn times_before_1970_and_far_ahead_round_trip() {
        let table = [
            ("0000-01-01T00:00:00Z", MIN_SECS),
            ("1901-12-13T20:45:52Z", -(1i64 << 31)),
            ("1969-12-31T23:59:59Z", -1),
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:00:00Z", 951_825_600),
            ("2038-01-19T03:14:08Z", 1i64 << 31),
            ("2400-01-01T00:00:00Z", 13_569_465_600),
            ("9999-12-31T23:59:59Z", MAX_SECS),
        ];
        for (text, secs) in table {
            let t = Time::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(unix_secs(t.0), secs, "{text}");
            assert_eq!(Time(from_unix_secs(secs, 0)).to_string(), text);
            assert_eq!(t.to_string(), text);
        }
        // Fractions are floored, before 1970 as after.
        let t = Time::parse("1969-12-31T23:59:59.5Z").unwrap();
        assert_eq!(t.to_string(), "1969-12-31T23:59:59Z");
        assert!(t < Time::parse("1970-01-01T00:00:00Z").unwrap());
        // Offsets and the weak forms the registry may write.
        assert_eq!(
            Time::parse("2024-01-02T04:04:05+01:00").unwrap().to_string(),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            Time::parse("2024-01-02 03:04:05").unwrap().to_string(),
            "2024-01-02T03:04:05Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+1:00",
            "+2024-01-02T03:04:05Z",
            "2024-01-02",
        ] {
            assert!(Time::parse(bad).is_err(), "{bad}");
        }
        // Beyond four-digit years: the nearest end.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(Time(far).to_string(), "9999-12-31T23:59:59Z");
    }
}
