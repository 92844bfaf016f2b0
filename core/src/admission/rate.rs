//! Requests per window with a burst, by GCRA (the generic cell rate algorithm).
//!
//! Why GCRA rather than a sliding window: its whole state per key is one number (the
//! theoretical arrival time, TAT), updated in one step, so it fits one atomic Redis script or
//! one SQLite row without keeping a log of timestamps; it spreads the allowance evenly instead
//! of letting a window's whole quota through at its start; and it gives an exact
//! `Retry-After` (when the next request would conform) for free.
//!
//! `limit` requests per `per`, `burst` more at once: the emission interval is
//! `T = per / limit`; a request of cost `c` moves the TAT `c·T` ahead of `max(TAT, now)`, and
//! conforms while the new TAT is at most `max(burst, 1)·T` ahead of now. A fresh key can send
//! `max(burst, 1)` requests at once, then one per `T`: over a window of length `per` that is
//! `limit + burst` at most.

use crate::time::Duration;

/// A rate limit: `limit` requests per `per`, `burst` more at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per window (at least 1).
    pub limit: u32,
    /// The window (at least 1 s).
    pub per: Duration,
    /// Extra requests a fresh key may send at once.
    pub burst: u32,
}

/// The answer of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Conforms: store `tat_ms`; `remaining` requests could follow at once.
    Allow {
        /// The new theoretical arrival time (ms).
        tat_ms: i64,
        /// Requests of cost 1 that would still conform now.
        remaining: u32,
        /// Milliseconds until the whole allowance is back.
        reset_ms: i64,
    },
    /// Does not conform: nothing to store; retry after `retry_after_ms`.
    Deny {
        /// Milliseconds until a request of this cost would conform.
        retry_after_ms: i64,
        /// Milliseconds until the whole allowance is back.
        reset_ms: i64,
    },
}

impl RateLimit {
    /// Checks the numbers (`limit >= 1`, `per >= 1s`).
    pub fn new(limit: u32, per: Duration, burst: u32) -> Result<Self, &'static str> {
        if limit == 0 {
            return Err("rate_limit.limit must be at least 1");
        }
        if per.secs() < 1 {
            return Err("rate_limit.per must be at least 1s");
        }
        Ok(RateLimit { limit, per, burst })
    }

    /// Emission interval in ms (at least 1).
    pub fn interval_ms(&self) -> i64 {
        (self.per.secs().saturating_mul(1000) / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run (ms).
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms().saturating_mul(i64::from(self.burst.max(1)))
    }

    /// One GCRA step for a request of `cost` at `now_ms`, from the stored `tat_ms` (0: fresh).
    pub fn check(&self, tat_ms: i64, now_ms: i64, cost: u32) -> Verdict {
        let t = self.interval_ms();
        let tau = self.tolerance_ms();
        let base = tat_ms.max(now_ms);
        let new_tat = base.saturating_add(t.saturating_mul(i64::from(cost)));
        let ahead = new_tat - now_ms;
        if ahead > tau {
            return Verdict::Deny { retry_after_ms: ahead - tau, reset_ms: (base - now_ms).max(0) };
        }
        let remaining = u32::try_from((tau - ahead) / t).unwrap_or(u32::MAX);
        Verdict::Allow { tat_ms: new_tat, remaining, reset_ms: ahead }
    }

    /// The IETF `RateLimit-Policy` item: `"default";q=<limit>;w=<seconds>`.
    pub fn policy_header(&self) -> alloc::string::String {
        alloc::format!("\"default\";q={};w={}", self.limit, self.per.secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(rl: &RateLimit, arrivals_ms: impl Iterator<Item = i64>) -> usize {
        let mut tat = 0;
        let mut allowed = 0;
        for now in arrivals_ms {
            if let Verdict::Allow { tat_ms, .. } = rl.check(tat, now, 1) {
                tat = tat_ms;
                allowed += 1;
            }
        }
        allowed
    }

    #[test]
    fn fifty_per_ten_seconds_admits_fifty_plus_burst_of_two_hundred() {
        let start = 1_800_000_000_000;
        for burst in [0, 10] {
            let rl = RateLimit::new(50, Duration::from_secs(10), burst).unwrap();
            // 200 requests spread evenly over the 10 s window.
            let n = simulate(&rl, (0..200).map(|i| start + i * 50));
            assert!(n >= 50 && n <= 50 + burst as usize + 1, "burst {burst}: {n} admitted");
        }
    }

    #[test]
    fn a_burst_at_once_then_one_per_interval_with_exact_retry_after() {
        let rl = RateLimit::new(100, Duration::from_secs(60), 20).unwrap();
        assert_eq!(rl.interval_ms(), 600);
        let now = 5_000_000;
        let mut tat = 0;
        for i in 0..20 {
            match rl.check(tat, now, 1) {
                Verdict::Allow { tat_ms, remaining, .. } => {
                    tat = tat_ms;
                    assert_eq!(remaining, 19 - i);
                }
                v => panic!("request {i} denied: {v:?}"),
            }
        }
        assert_eq!(rl.check(tat, now, 1), Verdict::Deny { retry_after_ms: 600, reset_ms: 12_000 });
        assert!(matches!(rl.check(tat, now + 600, 1), Verdict::Allow { .. }));
        // A cost-5 request needs five intervals of room.
        assert_eq!(rl.check(tat, now + 600, 5), Verdict::Deny { retry_after_ms: 2_400, reset_ms: 11_400 });
        assert_eq!(rl.policy_header(), "\"default\";q=100;w=60");
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert!(RateLimit::new(0, Duration::from_secs(1), 0).is_err());
        assert!(RateLimit::new(1, Duration::from_secs(0), 0).is_err());
    }
}
