//! Failed-authentication budgets ([`keycel::throttle`]) in Redis, so every process of a fleet
//! charges one budget per client address and client id (with process-local budgets, each
//! worker of each machine lets an address fail its whole budget).
//!
//! One hash per subject (`{keycel:fail:<kind>:<key>}`), updated by `failures.lua` with core's
//! debt arithmetic on Redis's clock: a charge checks and writes in one atomic round trip, so
//! concurrent workers never overshoot. Only failures (and the successes that refund them)
//! reach Redis; a cached key's success never does, and neither does anything run on an event
//! loop: the screen answers from the refusals this process's charges got, and a shed is
//! charged to this process's own count (the [`SharedBudget`] this store sits behind). When Redis cannot answer, this
//! process's count answers: the flood bound then holds per process, as without Redis, and no
//! client is locked out by an outage.

use crate::Shared;
use keycel::throttle::{DebtStore, Exhausted, Subject};
use std::sync::Arc;

const SCRIPT: &str = include_str!("failures.lua");

/// The budget script (`src/failures.lua`).
pub fn script() -> redis::Script {
    redis::Script::new(SCRIPT)
}

/// The Redis key of a subject's budget (hash-tagged: one Cluster slot per subject).
pub fn key(subject: Subject<'_>) -> String {
    format!("{{keycel:fail:{}:{}}}", subject.kind(), subject.key())
}

/// Debts in the Redis of one [`crate::RedisAdmission`], on its connection pool.
pub(crate) struct RedisDebts {
    shared: Arc<Shared>,
    script: redis::Script,
}

impl std::fmt::Debug for RedisDebts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDebts").finish_non_exhaustive()
    }
}

impl RedisDebts {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisDebts { shared, script: script() }
    }

    /// The script's answer for `op`: 0, or the wait in ms before the next failure is allowed.
    fn run(&self, op: &str, subject: Subject<'_>, interval: i64, tolerance: i64) -> redis::RedisResult<i64> {
        let key = key(subject);
        self.shared.with(|c| self.script.key(&key).arg(op).arg(interval).arg(tolerance).invoke(c))
    }
}

/// On Redis's clock (`now_ms` is not used).
impl DebtStore for RedisDebts {
    fn charge(
        &self,
        subject: Subject<'_>,
        interval: i64,
        tolerance: i64,
        _now_ms: i64,
    ) -> Option<Result<(), Exhausted>> {
        match self.run("charge", subject, interval, tolerance).ok()? {
            0 => Some(Ok(())),
            wait_ms => Some(Err(Exhausted::after_ms(wait_ms))),
        }
    }

    fn refund(&self, subject: Subject<'_>, interval: i64, tolerance: i64, _now_ms: i64) {
        let _ = self.run("refund", subject, interval, tolerance);
    }
}
