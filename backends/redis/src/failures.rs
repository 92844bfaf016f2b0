//! Failed-authentication budgets ([`keycel::throttle`]) in Redis, so every process of a fleet
//! charges one budget per client address and client id (with process-local budgets, each
//! worker of each machine lets an address fail its whole budget).
//!
//! One hash per subject (`{keycel:fail:<kind>:<key>}`), updated by `failures.lua` with core's
//! debt arithmetic on Redis's clock: a charge checks and writes in one atomic round trip, so
//! concurrent workers never overshoot. Only failures (and the successes that refund them)
//! reach Redis; a cached key's success never does. When Redis cannot answer, the budgets fall
//! back to this process's ([`LocalBudget`]): the flood bound then holds per process, as
//! without Redis, and no client is locked out by an outage.

use crate::Shared;
use keycel::throttle::{Exhausted, FailureBudget, LocalBudget, Subject, ThrottleConfig};
use keycel::time::Timestamp;
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

/// Budgets of one [`crate::RedisAdmission`], on its connection pool.
pub(crate) struct RedisFailures {
    shared: Arc<Shared>,
    config: ThrottleConfig,
    script: redis::Script,
    fallback: LocalBudget,
}

impl std::fmt::Debug for RedisFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFailures").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RedisFailures {
    pub(crate) fn new(shared: Arc<Shared>, config: ThrottleConfig) -> Self {
        let fallback = LocalBudget::new(config.clone());
        RedisFailures { shared, config, script: script(), fallback }
    }

    /// The script's answer for `op` (0, or the wait in ms before the next failure is allowed);
    /// `None`: no budget for this kind of subject.
    fn run(&self, op: &str, subject: Subject<'_>) -> Option<redis::RedisResult<i64>> {
        let (interval, tolerance) = self.config.rates(self.config.limit(subject)?);
        let key = key(subject);
        Some(self.shared.with(|c| self.script.key(&key).arg(op).arg(interval).arg(tolerance).invoke(c)))
    }
}

impl FailureBudget for RedisFailures {
    fn charge(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        match self.run("charge", subject) {
            None | Some(Ok(0)) => Ok(()),
            Some(Ok(wait_ms)) => Err(Exhausted::after_ms(wait_ms)),
            Some(Err(_)) => self.fallback.charge(subject, now),
        }
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        if let Some(Err(_)) = self.run("refund", subject) {
            self.fallback.refund(subject, now);
        }
    }

    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        match self.run("peek", subject)? {
            Ok(0) => None,
            Ok(wait_ms) => Some(Exhausted::after_ms(wait_ms)),
            Err(_) => self.fallback.exhausted(subject, now),
        }
    }
}
