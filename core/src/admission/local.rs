//! Process-local admission: this process's in-memory leases ([`crate::limiter::Limiter`]),
//! GCRA rate state and credit counts. Credits counted here live as long as the process (use
//! SQLite or Redis admission for credits that survive a restart).

use super::rate::Verdict;
use super::{Admission, AdmissionError, BudgetStatus, CreditCount, CreditGrant, Lease, RateStatus, Refusal, Ticket};
use crate::limiter::{Limiter, LimiterConfig};
use crate::time::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Admission counted in this process only: exact inside it, blind to other processes.
#[derive(Debug, Clone, Default)]
pub struct LocalAdmission {
    limiter: Limiter,
    budgets: Arc<Mutex<HashMap<Arc<str>, KeyBudget>>>,
}

/// A metered key's state: its GCRA theoretical arrival time and its credit count.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyBudget {
    pub(crate) tat_ms: i64,
    pub(crate) credits: Option<CreditCount>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rate and credit checks of one admission, without writing anything: the state to
/// store and the status to report, or the refusal. Shared by the local and SQLite backends
/// so both decide alike.
pub(crate) fn check_budget(
    ticket: &Ticket<'_>,
    state: KeyBudget,
    now: Timestamp,
) -> Result<(KeyBudget, BudgetStatus), Refusal> {
    let mut next = state;
    let mut status = BudgetStatus::default();
    if let Some(policy) = ticket.rate {
        match policy.check(state.tat_ms, now.unix().saturating_mul(1000), ticket.cost) {
            Verdict::Allow { tat_ms, remaining, reset_ms } => {
                next.tat_ms = tat_ms;
                status.rate = Some(RateStatus { policy, remaining, reset_ms });
            }
            Verdict::Deny { retry_after_ms, reset_ms } => {
                return Err(Refusal::RateLimited { policy, retry_after_ms, reset_ms })
            }
        }
    }
    if let Some(grant) = ticket.credits {
        match grant.spend(state.credits, now, ticket.cost) {
            Ok(c) => {
                status.credits_remaining = Some(grant.left(&c));
                next.credits = Some(c);
            }
            Err(_) => return Err(Refusal::usage_exceeded(&grant, now)),
        }
    }
    Ok((next, status))
}

impl LocalAdmission {
    /// With its own counters.
    pub fn new(config: LimiterConfig) -> Self {
        LocalAdmission { limiter: Limiter::new(config), budgets: Arc::default() }
    }

    /// Over an existing limiter (sharing its counters).
    pub fn over(limiter: Limiter) -> Self {
        LocalAdmission { limiter, budgets: Arc::default() }
    }

    /// The counters.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

impl Admission for LocalAdmission {
    fn name(&self) -> &'static str {
        "local"
    }

    fn admit(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<Lease, Refusal> {
        let busy = |b: crate::limiter::Busy| Refusal::Busy { limit: b.limit, retry_after_secs: b.retry_after_secs };
        if !ticket.metered() {
            return self
                .limiter
                .acquire_configured(ticket.key_id, ticket.max_concurrent, now)
                .map(Lease::from)
                .map_err(busy);
        }
        // One lock over the check and the write: concurrency, rate, credits; a refusal writes nothing.
        let mut budgets = lock(&self.budgets);
        let state = budgets.get(ticket.key_id).copied().unwrap_or_default();
        let (next, status) = match check_budget(ticket, state, now) {
            Ok(v) => v,
            Err(refusal) => {
                // Concurrency is reported first, as a shared backend's single step does.
                let limit = ticket.max_concurrent.unwrap_or(self.limiter.config().default_limit).max(1);
                if self.limiter.in_flight(ticket.key_id) >= usize::try_from(limit).unwrap_or(usize::MAX) {
                    return Err(Refusal::Busy { limit, retry_after_secs: self.limiter.config().retry_after_secs });
                }
                return Err(refusal);
            }
        };
        let lease = self.limiter.acquire_configured(ticket.key_id, ticket.max_concurrent, now).map_err(busy)?;
        budgets.insert(lease.key_id_shared(), next);
        Ok(Lease::from(lease).with_budget(Some(status)))
    }

    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError> {
        Ok(self.limiter.in_flight(key_id))
    }

    fn reclaim_expired(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        Ok(self.limiter.reclaim_expired(now))
    }

    fn usage(&self, key_id: &str, grant: &CreditGrant, now: Timestamp) -> Result<u64, AdmissionError> {
        let stored = lock(&self.budgets).get(key_id).and_then(|b| b.credits);
        Ok(grant.left(&grant.current(stored, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    #[test]
    fn local_admission_counts_like_the_limiter() {
        let a = LocalAdmission::default();
        let ticket = Ticket::new("kc_a", Some(2));
        let held: Vec<_> = (0..2).map(|_| a.admit(&ticket, t(0)).unwrap()).collect();
        assert_eq!(a.admit(&ticket, t(0)).unwrap_err(), Refusal::Busy { limit: 2, retry_after_secs: 1 });
        assert_eq!(a.in_flight("kc_a").unwrap(), 2);
        assert!(held.iter().all(|l| l.key_id() == "kc_a" && l.expires_at().is_none()));
        drop(held);
        assert_eq!(a.in_flight("kc_a").unwrap(), 0);
        let default = Ticket::new("kc_b", None);
        let five: Vec<_> = (0..5).map(|_| a.admit(&default, t(0)).unwrap()).collect();
        assert!(matches!(a.admit(&default, t(0)), Err(Refusal::Busy { limit: 5, .. })));
        drop(five);
    }
}
