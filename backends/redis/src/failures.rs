//! Failed-authentication budgets ([`keycel::throttle`]) in Redis, so every process of a fleet
//! charges one budget per client address and client id (with process-local budgets, each
//! worker of each machine lets an address fail its whole budget).
//!
//! One hash per subject (`{keycel:fail:<kind>:<key>}`), updated by `failures.lua` with core's
//! debt arithmetic on Redis's clock: a charge checks and writes in one atomic round trip, so
//! concurrent workers never overshoot. Only failures (and the successes that refund them)
//! reach Redis; a cached key's success never does, and neither does anything run on an event
//! loop: the screen answers from the refusals this process's charges got, and a shed is
//! charged to this process's own count ([`InProcess`]). When Redis cannot answer, this
//! process's count answers: the flood bound then holds per process, as without Redis, and no
//! client is locked out by an outage.

use crate::Shared;
use keycel::throttle::{Exhausted, FailureBudget, InProcess, Subject, ThrottleConfig};
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
    here: InProcess,
}

impl std::fmt::Debug for RedisFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFailures").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RedisFailures {
    pub(crate) fn new(shared: Arc<Shared>, config: ThrottleConfig) -> Self {
        let here = InProcess::new(config.clone());
        RedisFailures { shared, config, script: script(), here }
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
        self.here.charge(subject, now, || match self.run("charge", subject)? {
            Ok(0) => Some(Ok(())),
            Ok(wait_ms) => Some(Err(Exhausted::after_ms(wait_ms))),
            Err(_) => None,
        })
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        self.here.refund(subject, now, || {
            let _ = self.run("refund", subject);
        });
    }

    /// No round trip: the refusals this process saw, or its own count spent.
    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        self.here.exhausted(subject, now)
    }

    /// No round trip (a shed, on an event loop): a known refusal, else this process's count.
    fn charge_nowait(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        self.here.charge_nowait(subject, now)
    }

    fn refund_nowait(&self, subject: Subject<'_>, now: Timestamp) {
        self.here.refund_nowait(subject, now);
    }
}
