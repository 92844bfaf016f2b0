//! Time without a clock: the core never reads the system time; callers pass `now` in.
//!
//! Timestamps are whole seconds since the Unix epoch, serialized as RFC 3339 UTC
//! (`2026-11-23T17:43:00Z`) so records stay readable in JSON and in the SQLite store.

use alloc::format;
use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A span of whole seconds (may be zero, never negative when parsed from text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(i64);

/// Why a time string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeParseError(pub String);

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for TimeParseError {}

/// Years 0000..=9999, the range RFC 3339 can write.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    /// From Unix seconds; `None` outside years 0000..=9999.
    pub const fn from_unix(secs: i64) -> Option<Self> {
        if secs < MIN_SECS || secs > MAX_SECS {
            None
        } else {
            Some(Timestamp(secs))
        }
    }

    /// From Unix seconds, clamped to years 0000..=9999.
    pub const fn saturating_from_unix(secs: i64) -> Self {
        if secs < MIN_SECS {
            Timestamp(MIN_SECS)
        } else if secs > MAX_SECS {
            Timestamp(MAX_SECS)
        } else {
            Timestamp(secs)
        }
    }

    /// Unix seconds.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating at the representable range.
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.0).clamp(MIN_SECS, MAX_SECS))
    }

    /// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`); fractions are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeParseError> {
        let err = || TimeParseError(format!("not an RFC 3339 timestamp: {:?}", truncate(s)));
        let b = s.as_bytes();
        if b.len() < 20 || b.len() > 40 {
            return Err(err());
        }
        let num = |from: usize, to: usize| -> Result<i64, TimeParseError> {
            let part = s.get(from..to).ok_or_else(err)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            part.parse::<i64>().map_err(|_| err())
        };
        let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
        if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
            return Err(err());
        }
        let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
            return Err(err());
        }
        let mut i = 19;
        if sep(i, b".") {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return Err(err());
            }
        }
        let offset = match b.get(i) {
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
            Some(&c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
                let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                let o = oh * 3600 + om * 60;
                if c == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return Err(err()),
        };
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset;
        Timestamp::from_unix(secs).ok_or_else(err)
    }

    /// Formats as RFC 3339 UTC with a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400);
        let rem = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

impl Duration {
    /// The longest duration accepted from users (10^11 s, about 3,170 years): longer spans
    /// only reach past the year-9999 end of [`Timestamp`], so they are typos, not intent.
    pub const MAX_SECS: i64 = 100_000_000_000;

    /// From whole seconds given by a user: `None` when negative or above [`Duration::MAX_SECS`].
    pub fn from_secs_checked(secs: i64) -> Option<Self> {
        (0..=Self::MAX_SECS).contains(&secs).then_some(Duration(secs))
    }

    /// From whole seconds (negative values clamp to zero).
    pub const fn from_secs(secs: i64) -> Self {
        if secs < 0 {
            Duration(0)
        } else {
            Duration(secs)
        }
    }

    /// Whole seconds.
    pub const fn secs(self) -> i64 {
        self.0
    }

    /// Parses `90d`, `12h`, `30m`, `45s` or `2w`. A unit is required: a bare `90` is
    /// ambiguous (seconds? days?), so it is refused.
    pub fn parse(s: &str) -> Result<Self, TimeParseError> {
        let err = || TimeParseError(format!("not a duration like 90d, 12h, 30m or 45s: {:?}", truncate(s)));
        let s = s.trim();
        if s.is_empty() || s.len() > 20 {
            return Err(err());
        }
        let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => (s.get(..i).ok_or_else(err)?, s.get(i..).ok_or_else(err)?),
            None => return Err(TimeParseError(format!("{s:?} needs a unit: 90d, 12h, 30m or 45s"))),
        };
        let n: i64 = digits.parse().map_err(|_| err())?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(err()),
        };
        n.checked_mul(mult).and_then(Self::from_secs_checked).ok_or_else(|| {
            TimeParseError(format!("{:?} is longer than {} seconds (about 3,170 years)", truncate(s), Self::MAX_SECS))
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(48);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-23T17:43:00Z").unwrap();
        assert_eq!(t.unix(), 1_795_455_780);
        assert_eq!(t.to_rfc3339(), "2026-11-23T17:43:00Z");
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap().unix(), 0);
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T01:00:00+01:00").unwrap().unix(), 0);
        assert_eq!(Timestamp::parse_rfc3339("2000-02-29T00:00:00.123Z").unwrap().to_rfc3339(), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23 17:43",
            "2026-11-23T17:43:00",
            "x026-11-23T17:43:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("90d").unwrap().secs(), 90 * 86_400);
        assert_eq!(Duration::parse("1h").unwrap().secs(), 3600);
        assert!(Duration::parse("15").is_err(), "a unit is required");
        assert!(Duration::parse("1y").is_err());
        assert!(Duration::parse("-1d").is_err());
        assert!(Duration::parse("99999999999999999d").is_err());
        assert_eq!(Duration::parse("100000000000s").unwrap().secs(), Duration::MAX_SECS);
        assert!(Duration::parse("100000000001s").is_err(), "longer than the bound");
        assert!(Duration::parse("200000w").is_err());
        assert_eq!(Duration::from_secs_checked(-1), None);
        assert_eq!(Duration::from_secs_checked(Duration::MAX_SECS + 1), None);
    }
}
