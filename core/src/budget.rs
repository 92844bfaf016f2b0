//! A key's budget values (issue 13): a rate limit and usage credits. Plain values (no_std):
//! records carry them, policies default them, and every admission backend counts them the
//! same way ([`crate::admission`]). The GCRA step lives in `admission::rate`; the credit
//! period arithmetic is here so a backend in any language (the Redis Lua script) can mirror
//! one definition.

pub mod spec;

use crate::record::RecordError;
use crate::time::{Duration, Timestamp};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest `rate_limit.limit` and `rate_limit.burst`.
pub const MAX_RATE: u32 = 1_000_000;
/// Largest credit amount (fits a signed 64-bit SQLite/Redis integer with room to spare).
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;
/// Largest request cost a host may pass.
pub const MAX_COST: u32 = 1_000_000;

/// A rate limit: `limit` requests per `per`, `burst` more at once (GCRA, see
/// `admission::rate`). Record form: `{ "limit": 100, "per": "1m", "burst": 20 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per window (at least 1).
    pub limit: u32,
    /// The window (at least 1 s).
    pub per: Duration,
    /// Extra requests a fresh key may send at once.
    pub burst: u32,
}

impl RateLimit {
    /// Checks the numbers (`limit` 1..=[`MAX_RATE`], `per >= 1s`, `burst <= MAX_RATE`); the
    /// error names the field.
    pub fn new(limit: u32, per: Duration, burst: u32) -> Result<Self, RecordError> {
        if limit == 0 || limit > MAX_RATE {
            return Err(RecordError::new("rate_limit.limit", format!("must be 1-{MAX_RATE}")));
        }
        if per.secs() < 1 || per.secs() > Duration::MAX_SECS {
            return Err(RecordError::new("rate_limit.per", "must be at least 1s"));
        }
        if burst > MAX_RATE {
            return Err(RecordError::new("rate_limit.burst", format!("must be 0-{MAX_RATE}")));
        }
        Ok(RateLimit { limit, per, burst })
    }

    /// Checks a value built field by field.
    pub fn validate(&self) -> Result<(), RecordError> {
        Self::new(self.limit, self.per, self.burst).map(|_| ())
    }

    /// The IETF `RateLimit-Policy` field value (draft-ietf-httpapi-ratelimit-headers-11 §3,
    /// a Structured Fields list of one item): `"default";q=<limit>;w=<window seconds>`.
    pub fn policy_header(&self) -> String {
        format!("\"default\";q={};w={}", self.limit, self.per.secs())
    }
}

/// A credit refill: the count goes back to `amount` at every `interval` boundary counted
/// from the grant's `set_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    /// Credits at the start of each interval (1..=[`MAX_CREDITS`]).
    pub amount: u64,
    /// The interval (at least 1 s).
    pub interval: Duration,
}

/// Usage credits granted to a key. `set_at` is the grant's epoch: setting credits again
/// starts a new count. Record form:
/// `{ "remaining": 1000, "refill": { "amount": 1000, "interval": "1d" } | null, "set_at": "…" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditGrant {
    /// Credits granted at `set_at` (what the first period starts with).
    pub remaining: u64,
    /// Optional refill.
    pub refill: Option<Refill>,
    /// When the grant was made.
    pub set_at: Timestamp,
}

/// What a backend stores per key for credits: which grant and period the count is for, and
/// how much of it was spent. A count for another grant (`set_at` differs) or an earlier
/// period counts as nothing spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditCount {
    /// The grant's `set_at` (Unix seconds).
    pub set_at: i64,
    /// The refill period the count is for (0 before the first refill or without one).
    pub period: i64,
    /// Credits spent in that period.
    pub spent: u64,
}

impl CreditGrant {
    /// Checks the numbers; errors name the field (`credits.remaining`, …).
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.remaining > MAX_CREDITS {
            return Err(RecordError::new("credits.remaining", format!("must be 0-{MAX_CREDITS}")));
        }
        if let Some(r) = &self.refill {
            if r.amount == 0 || r.amount > MAX_CREDITS {
                return Err(RecordError::new("credits.refill.amount", format!("must be 1-{MAX_CREDITS}")));
            }
            if r.interval.secs() < 1 || r.interval.secs() > Duration::MAX_SECS {
                return Err(RecordError::new("credits.refill.interval", "must be at least 1s"));
            }
        }
        Ok(())
    }

    /// The refill period `now` falls in (0 before the first boundary, without a refill, or
    /// when `now` is before `set_at`).
    pub fn period(&self, now: Timestamp) -> i64 {
        match &self.refill {
            Some(r) if r.interval.secs() > 0 => (now.unix() - self.set_at.unix()).max(0) / r.interval.secs(),
            _ => 0,
        }
    }

    /// Credits the period starts with.
    pub fn allowance(&self, period: i64) -> u64 {
        match &self.refill {
            Some(r) if period > 0 => r.amount,
            _ => self.remaining,
        }
    }

    /// Seconds from `now` to the next refill boundary, if there is a refill.
    pub fn next_refill_secs(&self, now: Timestamp) -> Option<i64> {
        let r = self.refill.as_ref()?;
        let next = self.set_at.unix().saturating_add((self.period(now) + 1).saturating_mul(r.interval.secs()));
        Some((next - now.unix()).max(1))
    }

    /// The count in force at `now` from what a backend stored (`None`: nothing yet). The
    /// period never goes back (a clock stepping backwards does not refill).
    pub fn current(&self, stored: Option<CreditCount>, now: Timestamp) -> CreditCount {
        let set_at = self.set_at.unix();
        let period = self.period(now);
        match stored {
            Some(c) if c.set_at == set_at && c.period >= period => c,
            _ => CreditCount { set_at, period, spent: 0 },
        }
    }

    /// Credits left in a count.
    pub fn left(&self, count: &CreditCount) -> u64 {
        self.allowance(count.period).saturating_sub(count.spent)
    }

    /// Spends `cost` from the count in force: the new count to store, or `Err(left)` when
    /// fewer than `cost` credits are left (nothing to store).
    pub fn spend(&self, stored: Option<CreditCount>, now: Timestamp, cost: u32) -> Result<CreditCount, u64> {
        let c = self.current(stored, now);
        let left = self.left(&c);
        if u64::from(cost) > left {
            return Err(left);
        }
        Ok(CreditCount { spent: c.spent + u64::from(cost), ..c })
    }
}

/// The budget an admitted request ran under, for response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetStatus {
    /// The rate limit in force and its state after this request.
    pub rate: Option<RateStatus>,
    /// Credits left after this request (metered keys only).
    pub credits_remaining: Option<u64>,
}

/// A rate limit's state after an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// The limit.
    pub policy: RateLimit,
    /// Requests of cost 1 that would still conform now.
    pub remaining: u32,
    /// Milliseconds until the whole allowance is back.
    pub reset_ms: i64,
}

/// Whole seconds, rounded up, at least `min`.
pub fn ceil_secs(ms: i64, min: i64) -> i64 {
    ((ms.max(0) + 999) / 1000).max(min)
}

impl RateStatus {
    /// The IETF `RateLimit` field value (draft-ietf-httpapi-ratelimit-headers-11 §4):
    /// `"default";r=<remaining>;t=<seconds until the allowance is back>`.
    pub fn header(&self) -> String {
        format!("\"default\";r={};t={}", self.remaining, ceil_secs(self.reset_ms, 0))
    }
}

impl BudgetStatus {
    /// `RateLimit-Policy` and `RateLimit` for a response (empty without a rate limit).
    pub fn headers(&self) -> Vec<(String, String)> {
        match &self.rate {
            Some(r) => {
                alloc::vec![
                    ("RateLimit-Policy".to_string(), r.policy.policy_header()),
                    ("RateLimit".to_string(), r.header())
                ]
            }
            None => Vec::new(),
        }
    }
}

/// Formats a duration in the largest unit that divides it (`1m`, `90s`, `1d`).
pub fn format_duration(d: Duration) -> String {
    let s = d.secs();
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateWire {
    limit: u32,
    per: String,
    #[serde(default)]
    burst: u32,
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RateWire { limit: self.limit, per: format_duration(self.per), burst: self.burst }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RateWire::deserialize(d)?;
        let per = Duration::parse(&w.per).map_err(|e| serde::de::Error::custom(format!("rate_limit.per: {e}")))?;
        RateLimit::new(w.limit, per, w.burst).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefillWire {
    amount: u64,
    interval: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditsWire {
    remaining: u64,
    #[serde(default)]
    refill: Option<RefillWire>,
    set_at: Timestamp,
}

impl Serialize for CreditGrant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CreditsWire {
            remaining: self.remaining,
            refill: self.refill.map(|r| RefillWire { amount: r.amount, interval: format_duration(r.interval) }),
            set_at: self.set_at,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for CreditGrant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CreditsWire::deserialize(d)?;
        let refill = match w.refill {
            Some(r) => Some(Refill {
                amount: r.amount,
                interval: Duration::parse(&r.interval)
                    .map_err(|e| serde::de::Error::custom(format!("credits.refill.interval: {e}")))?,
            }),
            None => None,
        };
        let g = CreditGrant { remaining: w.remaining, refill, set_at: w.set_at };
        g.validate().map_err(serde::de::Error::custom)?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    #[test]
    fn credits_refill_at_each_boundary_from_set_at_and_never_go_back() {
        let g = CreditGrant {
            remaining: 3,
            refill: Some(Refill { amount: 2, interval: Duration::from_secs(100) }),
            set_at: t(1000),
        };
        let mut c = None;
        for _ in 0..3 {
            c = Some(g.spend(c, t(1050), 1).unwrap());
        }
        assert_eq!(g.spend(c, t(1099), 1), Err(0));
        assert_eq!(g.next_refill_secs(t(1099)), Some(1));
        // The first boundary: back to `amount`, not to the first grant.
        let c2 = g.spend(c, t(1100), 2).unwrap();
        assert_eq!(g.left(&c2), 0);
        // The clock steps back into period 0: no refill, still nothing left.
        assert_eq!(g.spend(Some(c2), t(1050), 1), Err(0));
        // A new grant (another set_at) starts a new count.
        let again = CreditGrant { set_at: t(1200), ..g };
        assert_eq!(again.left(&again.current(Some(c2), t(1201))), 3);
    }

    #[test]
    fn cost_above_what_is_left_spends_nothing() {
        let g = CreditGrant { remaining: 5, refill: None, set_at: t(0) };
        let c = g.spend(None, t(10), 4).unwrap();
        assert_eq!(g.spend(Some(c), t(10), 2), Err(1));
        assert_eq!(g.left(&g.current(Some(c), t(10))), 1);
        assert_eq!(g.next_refill_secs(t(10)), None);
    }

    #[test]
    fn record_forms_round_trip_and_name_fields() {
        let rl: RateLimit = serde_json::from_str(r#"{"limit":100,"per":"1m","burst":20}"#).unwrap();
        assert_eq!(rl, RateLimit::new(100, Duration::from_secs(60), 20).unwrap());
        assert_eq!(serde_json::to_string(&rl).unwrap(), r#"{"limit":100,"per":"1m","burst":20}"#);
        let e = serde_json::from_str::<RateLimit>(r#"{"limit":0,"per":"1m"}"#).unwrap_err().to_string();
        assert!(e.contains("rate_limit.limit"), "{e}");
        let e = serde_json::from_str::<RateLimit>(r#"{"limit":1,"per":"0s"}"#).unwrap_err().to_string();
        assert!(e.contains("rate_limit.per"), "{e}");
        let c: CreditGrant = serde_json::from_str(
            r#"{"remaining":10,"refill":{"amount":5,"interval":"1d"},"set_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c.refill.unwrap().interval.secs(), 86_400);
        let back = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<CreditGrant>(&back).unwrap(), c);
        let e = serde_json::from_str::<CreditGrant>(
            r#"{"remaining":10,"refill":{"amount":0,"interval":"1d"},"set_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("credits.refill.amount"), "{e}");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn headers_follow_the_ietf_draft_syntax() {
        let rl = RateLimit::new(100, Duration::from_secs(60), 20).unwrap();
        let st = BudgetStatus {
            rate: Some(RateStatus { policy: rl, remaining: 7, reset_ms: 1_001 }),
            credits_remaining: Some(3),
        };
        assert_eq!(
            st.headers(),
            alloc::vec![
                ("RateLimit-Policy".to_string(), "\"default\";q=100;w=60".to_string()),
                ("RateLimit".to_string(), "\"default\";r=7;t=2".to_string()),
            ]
        );
    }
}
