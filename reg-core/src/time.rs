//! Times as the contract writes them (RFC 3339, UTC, `Z`) and durations as
//! users type them (`1h`, `168h`, `30m`, `7d`, `0s`).

use std::fmt;
use std::time::{Duration, SystemTime};

/// A point in time that serializes as an RFC 3339 UTC string ending in `Z`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub SystemTime);

impl Time {
    pub fn now() -> Time {
        Time(SystemTime::now())
    }

    /// Parses RFC 3339 as the registry writes it (`startedat` files), with or
    /// without fractional seconds.
    pub fn parse(s: &str) -> Result<Time, String> {
        humantime::parse_rfc3339_weak(s.trim())
            .map(Time)
            .map_err(|e| format!("invalid time {s:?}: {e}"))
    }

    /// How long ago this was; zero for times in the future.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Times before 1970 cannot be formatted by humantime; clamp them.
        let t = if self.0 < SystemTime::UNIX_EPOCH {
            SystemTime::UNIX_EPOCH
        } else {
            self.0
        };
        write!(f, "{}", humantime::format_rfc3339_seconds(t))
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
}
