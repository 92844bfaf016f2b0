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

pub use crate::budget::RateLimit;

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
    /// Emission interval in ms (at least 1).
    pub fn interval_ms(&self) -> i64 {
        (self.per.secs().saturating_mul(1000) / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run (ms).
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms().saturating_mul(i64::from(self.burst.max(1)))
    }

    /// One GCRA step for a request of `cost` at `now_ms`, from the stored `tat_ms` (0: fresh).
    ///
    /// A request costing more than the burst allows at once conforms only against a full
    /// allowance (an idle key), so a large cost is slow rather than impossible; over any
    /// window at most `limit + max(burst, cost)` pass. A clock stepping backwards only moves
    /// the key further from conformance (the TAT is never lowered).
    pub fn check(&self, tat_ms: i64, now_ms: i64, cost: u32) -> Verdict {
        let t = self.interval_ms();
        let tau = self.tolerance_ms();
        let base = tat_ms.max(now_ms);
        let step = t.saturating_mul(i64::from(cost));
        let new_tat = base.saturating_add(step);
        let ahead = new_tat.saturating_sub(now_ms);
        let room = tau.max(step);
        if ahead > room {
            return Verdict::Deny { retry_after_ms: ahead - room, reset_ms: base.saturating_sub(now_ms).max(0) };
        }
        let remaining = u32::try_from(tau.saturating_sub(ahead).max(0) / t).unwrap_or(u32::MAX);
        Verdict::Allow { tat_ms: new_tat, remaining, reset_ms: ahead }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

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

    #[test]
    fn cost_above_the_burst_passes_only_an_idle_key_and_says_when() {
        let rl = RateLimit::new(10, Duration::from_secs(10), 2).unwrap(); // T = 1 s, room 2 s
        let now = 1_000_000;
        let Verdict::Allow { tat_ms, remaining, .. } = rl.check(0, now, 5) else { panic!("idle key refused") };
        assert_eq!((tat_ms, remaining), (now + 5_000, 0));
        // Not idle: refused until the TAT has drained, exactly.
        assert_eq!(rl.check(tat_ms, now + 1_000, 5), Verdict::Deny { retry_after_ms: 4_000, reset_ms: 4_000 });
        assert!(matches!(rl.check(tat_ms, now + 5_000, 5), Verdict::Allow { .. }));
        // A cost-1 request fits once its new TAT is within the 2 s room.
        assert!(matches!(rl.check(tat_ms, now + 3_999, 1), Verdict::Deny { retry_after_ms: 1, .. }));
        assert!(matches!(rl.check(tat_ms, now + 4_000, 1), Verdict::Allow { .. }));
        // Over 100 s of back-to-back cost-5 requests: about limit x 10 units, never more.
        let mut tat = 0;
        let mut units = 0;
        for ms in (0..100_000).step_by(100) {
            if let Verdict::Allow { tat_ms, .. } = rl.check(tat, now + ms, 5) {
                tat = tat_ms;
                units += 5;
            }
        }
        assert!(units <= 100 + 5, "{units} units in 100 s");
    }

    #[test]
    fn a_clock_going_backwards_never_admits_more() {
        let rl = RateLimit::new(1, Duration::from_secs(10), 1).unwrap();
        let now = 50_000_000;
        let Verdict::Allow { tat_ms, .. } = rl.check(0, now, 1) else { panic!() };
        // The clock steps back 1 h: still refused, and the retry is counted from the TAT.
        match rl.check(tat_ms, now - 3_600_000, 1) {
            Verdict::Deny { retry_after_ms, .. } => assert_eq!(retry_after_ms, 3_600_000 + 10_000),
            v => panic!("admitted after a backwards step: {v:?}"),
        }
        assert!(matches!(rl.check(tat_ms, now + 9_999, 1), Verdict::Deny { .. }));
        assert!(matches!(rl.check(tat_ms, now + 10_000, 1), Verdict::Allow { .. }));
    }
}
