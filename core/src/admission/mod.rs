//! Admission: after the policy allowed a request, may it run *now* under its key's budget?
//!
//! One meaning, interchangeable backends. A key's budget is `max_concurrent` (leases in
//! flight), a rate limit (GCRA, [`rate`]) and usage credits ([`CreditGrant`]); a backend
//! decides all three in one atomic step, in this order, every check before any write (a
//! refused request consumes nothing), for the place it counts in:
//! - [`LocalAdmission`]: this process's in-memory leases (one process, tests, edge isolates);
//! - shared backends (SQLite for one machine's worker processes, Redis for a fleet) implement
//!   the same trait, so the engine and every binding treat them alike.
//!
//! The host picks the backend ([`crate::engine::Engine::with_admission`]); the engine asks it
//! only for allowed requests, so a denied request (401/403/404) never reaches a backend.

pub mod local;
pub mod rate;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_failures;
#[cfg(feature = "sqlite")]
mod sqlite_leases;

pub use crate::budget::{BudgetStatus, CreditCount, CreditGrant, RateStatus, Refill};
pub use local::LocalAdmission;
pub use rate::RateLimit;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteAdmission;

use crate::throttle::{FailureBudget, ThrottleConfig};
use crate::time::Timestamp;
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use std::sync::Arc;

/// What admission needs to know about an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket<'a> {
    /// The key the budget belongs to.
    pub key_id: &'a str,
    /// The key's own in-flight limit; `None`: the backend's default (the policy's).
    pub max_concurrent: Option<u32>,
    /// The effective rate limit (the record's, else the policy default); `None`: unlimited.
    pub rate: Option<RateLimit>,
    /// The key's credits (from the record); `None`: unmetered.
    pub credits: Option<CreditGrant>,
    /// The request's cost in rate units and credits (host-supplied, default 1).
    pub cost: u32,
}

impl<'a> Ticket<'a> {
    /// A ticket with only a concurrency limit (no rate limit, unmetered, cost 1).
    pub const fn new(key_id: &'a str, max_concurrent: Option<u32>) -> Self {
        Ticket { key_id, max_concurrent, rate: None, credits: None, cost: 1 }
    }

    /// True when the ticket has a rate limit or credits to count.
    pub const fn metered(&self) -> bool {
        self.rate.is_some() || self.credits.is_some()
    }
}

/// Why a request was not admitted. Each maps to one answer ([`Refusal::decision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The key has `limit` requests in flight: 429 `too_many_requests` with `Retry-After`.
    Busy {
        /// The limit in force.
        limit: u32,
        /// Suggested `Retry-After`.
        retry_after_secs: u32,
    },
    /// The key's rate limit: 429 `rate_limited` with `Retry-After`, `RateLimit-Policy` and
    /// `RateLimit`.
    RateLimited {
        /// The limit in force.
        policy: RateLimit,
        /// Milliseconds until a request of this cost would conform.
        retry_after_ms: i64,
        /// Milliseconds until the whole allowance is back.
        reset_ms: i64,
    },
    /// Fewer credits left than the request costs: 429 `usage_exceeded`; `Retry-After` at the
    /// next refill when there is one.
    UsageExceeded {
        /// Seconds to the next refill (`None`: no refill, the key stays exhausted).
        retry_after_secs: Option<u32>,
    },
    /// A shared backend could not answer and its fail mode is to deny: 503.
    Unavailable {
        /// Which backend (`sqlite`, `redis`).
        backend: &'static str,
        /// What went wrong (operator-facing, in the decision's `reason`; never secrets).
        detail: String,
    },
}

impl Refusal {
    /// The refusal for a spent credit grant at `now`.
    pub fn usage_exceeded(grant: &CreditGrant, now: Timestamp) -> Self {
        Refusal::UsageExceeded {
            retry_after_secs: grant.next_refill_secs(now).map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        }
    }
}

impl Refusal {
    /// The answer for this refusal.
    #[cfg(feature = "policy")]
    pub fn decision(&self, m: &crate::decision::Messages, key_id: &str) -> crate::Decision {
        match self {
            Refusal::Busy { limit, retry_after_secs } => crate::Decision::busy(m, key_id, *retry_after_secs, *limit),
            Refusal::RateLimited { policy, retry_after_ms, reset_ms } => {
                crate::Decision::rate_limited(m, key_id, policy, *retry_after_ms, *reset_ms)
            }
            Refusal::UsageExceeded { retry_after_secs } => {
                crate::Decision::usage_exceeded(m, key_id, *retry_after_secs)
            }
            Refusal::Unavailable { backend, detail } => {
                let mut d = crate::Decision::overloaded(m, alloc::format!("{backend} admission unavailable: {detail}"));
                d.key_id = Some(key_id.into());
                d
            }
        }
    }
}

/// A backend could not answer a read (`in_flight`, `reclaim_expired`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionError {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for AdmissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} admission: {}", self.backend, self.detail)
    }
}

impl std::error::Error for AdmissionError {}

/// Where a key's budget is counted. `Send + Sync`: one per engine, shared by every thread.
pub trait Admission: Send + Sync + fmt::Debug {
    /// A short name for decisions and logs (`local`, `sqlite`, `redis`).
    fn name(&self) -> &'static str;

    /// Admits one request for `ticket.key_id`, or says why not. The lease returned is held
    /// while the request runs; dropping it releases the slot.
    fn admit(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<Lease, Refusal>;

    /// Requests in flight for a key, as this backend counts them.
    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError>;

    /// Reclaims lost leases whose deadline passed; how many.
    fn reclaim_expired(&self, now: Timestamp) -> Result<usize, AdmissionError>;

    /// Credits left for a key under `grant` at `now`, as this backend counts them (for
    /// `keycel key show`). A backend that does not count credits says so.
    fn usage(&self, key_id: &str, grant: &CreditGrant, now: Timestamp) -> Result<u64, AdmissionError> {
        let _ = (key_id, grant, now);
        Err(AdmissionError { backend: self.name(), detail: "this backend does not count credits".into() })
    }

    /// The failed-authentication budgets ([`crate::throttle`]) kept where this backend keeps
    /// its counts, so every process sharing it charges one budget per client address and
    /// client id (the engine installs it with the admission); `None`: process-local budgets.
    fn failure_budget(&self, config: &ThrottleConfig) -> Option<Arc<dyn FailureBudget>> {
        let _ = config;
        None
    }
}

/// A lease held in a shared backend (implemented by the SQLite and Redis backends). An
/// implementation releases its slot when dropped, like [`crate::limiter::Lease`].
pub trait SharedLease: Send + Sync + fmt::Debug {
    /// Unique per backend instance.
    fn id(&self) -> u64;
    /// The key holding it.
    fn key_id(&self) -> &Arc<str>;
    /// When it is reclaimed unless renewed; `None`: held while this value lives.
    fn expires_at(&self) -> Option<Timestamp>;
    /// Keeps the slot of a live holder; false once released or reclaimed.
    fn renew(&mut self, now: Timestamp) -> bool;
    /// Releases the slot (idempotent); false when it was already gone.
    fn release(&mut self) -> bool;
}

/// One admitted request in flight. Released on drop (also during unwinding). Carries the
/// budget status of a metered key ([`Lease::budget`]) for the host's response headers.
///
/// The budget status is boxed: it exists only for metered keys, and an unboxed one would
/// triple the size of every lease moved through `admit` (measured: local admission 1.24x the
/// bare limiter's lease with it inline).
#[derive(Debug)]
pub struct Lease(Held, Option<Box<BudgetStatus>>);

#[derive(Debug)]
enum Held {
    /// Process-local: no allocation beyond the limiter's own.
    Local(crate::limiter::Lease),
    /// Counted in this process because the named shared backend was unreachable.
    Fallback(crate::limiter::Lease, &'static str),
    Shared(Box<dyn SharedLease>),
}

impl From<crate::limiter::Lease> for Lease {
    fn from(l: crate::limiter::Lease) -> Self {
        Lease(Held::Local(l), None)
    }
}

impl Lease {
    /// A lease of a shared backend.
    pub fn shared(l: Box<dyn SharedLease>) -> Self {
        Lease(Held::Shared(l), None)
    }

    /// Marks a process-local lease as taken because `backend` was unreachable (a shared
    /// backend's `local` fail mode); the engine says so in the decision.
    #[must_use]
    pub fn fell_back(self, backend: &'static str) -> Self {
        match self.0 {
            Held::Local(l) => Lease(Held::Fallback(l, backend), self.1),
            other => Lease(other, self.1),
        }
    }

    /// Attaches the budget status the backend computed while admitting.
    #[must_use]
    pub fn with_budget(mut self, budget: Option<BudgetStatus>) -> Self {
        self.1 = budget.map(Box::new);
        self
    }

    /// The rate limit and credits state after this request (`None`: an unmetered key), so
    /// a host can send `RateLimit` on success ([`BudgetStatus::headers`]).
    pub fn budget(&self) -> Option<&BudgetStatus> {
        self.1.as_deref()
    }

    /// The shared backend this lease should have been counted in, when it was unreachable.
    pub fn fallback_from(&self) -> Option<&'static str> {
        match &self.0 {
            Held::Fallback(_, b) => Some(b),
            _ => None,
        }
    }

    /// The lease id (unique per backend).
    pub fn id(&self) -> u64 {
        match &self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.id(),
            Held::Shared(l) => l.id(),
        }
    }

    /// The key holding it.
    pub fn key_id(&self) -> &str {
        match &self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.key_id(),
            Held::Shared(l) => l.key_id(),
        }
    }

    /// The key id, shared (for hosts that keep it beyond the lease).
    pub fn key_id_shared(&self) -> Arc<str> {
        match &self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.key_id_shared(),
            Held::Shared(l) => Arc::clone(l.key_id()),
        }
    }

    /// After this instant the slot is reclaimed unless renewed; `None`: held while it lives.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match &self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.expires_at(),
            Held::Shared(l) => l.expires_at(),
        }
    }

    /// Keeps the slot of a live holder (see [`crate::limiter::Lease::renew`]).
    pub fn renew(&mut self, now: Timestamp) -> bool {
        match &mut self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.renew(now),
            Held::Shared(l) => l.renew(now),
        }
    }

    /// Releases now (same as dropping). False when the slot had already been reclaimed.
    pub fn release(self) -> bool {
        match self.0 {
            Held::Local(l) | Held::Fallback(l, _) => l.release(),
            Held::Shared(mut l) => l.release(),
        }
    }
}
