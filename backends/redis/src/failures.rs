//! Failed-authentication budgets ([`keycel::throttle`]) in Redis, so every process of a fleet
//! charges one budget per client address and client id (with process-local budgets, each
//! worker of each machine lets an address fail its whole budget).
//!
//! One hash per subject (`{keycel:fail:<kind>:<key>}`), updated by `failures.lua` with core's
//! debt arithmetic on Redis's clock: a charge checks and writes in one atomic round trip, so
//! concurrent workers never overshoot. Only failures (and the successes that refund them)
//! reach Redis; a cached key's success never does, and neither does the screen (a peek, run on
//! event loops): it answers from the refusals this process's charges got ([`Refusals`]). When Redis cannot answer, the budgets fall
//! back to this process's ([`LocalBudget`]): the flood bound then holds per process, as
//! without Redis, and no client is locked out by an outage.

use crate::Shared;
use keycel::throttle::{Exhausted, FailureBudget, LocalBudget, Refusals, Subject, ThrottleConfig};
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
    refusals: Refusals,
}

impl std::fmt::Debug for RedisFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFailures").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RedisFailures {
    pub(crate) fn new(shared: Arc<Shared>, config: ThrottleConfig) -> Self {
        let fallback = LocalBudget::new(config.clone());
        let refusals = Refusals::new(config.max_tracked);
        RedisFailures { shared, config, script: script(), fallback, refusals }
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
        let answer = match self.run("charge", subject) {
            None | Some(Ok(0)) => Ok(()),
            Some(Ok(wait_ms)) => Err(Exhausted::after_ms(wait_ms)),
            Some(Err(_)) => self.fallback.charge(subject, now),
        };
        self.refusals.note(subject, now.unix().saturating_mul(1000), answer);
        answer
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        self.refusals.forget(subject);
        if let Some(Err(_)) = self.run("refund", subject) {
            self.fallback.refund(subject, now);
        }
    }

    /// No round trip: the refusals this process saw (the fallback's during an outage).
    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        self.refusals.peek(subject, now.unix().saturating_mul(1000)).or_else(|| self.fallback.exhausted(subject, now))
    }
}
