//! Process-local admission: this process's in-memory leases ([`crate::limiter::Limiter`]).

use super::{Admission, AdmissionError, Lease, Refusal, Ticket};
use crate::limiter::{Limiter, LimiterConfig};
use crate::time::Timestamp;

/// Admission counted in this process only: exact inside it, blind to other processes.
#[derive(Debug, Clone, Default)]
pub struct LocalAdmission {
    limiter: Limiter,
}

impl LocalAdmission {
    /// With its own counters.
    pub fn new(config: LimiterConfig) -> Self {
        LocalAdmission { limiter: Limiter::new(config) }
    }

    /// Over an existing limiter (sharing its counters).
    pub fn over(limiter: Limiter) -> Self {
        LocalAdmission { limiter }
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
        match self.limiter.acquire_configured(ticket.key_id, ticket.max_concurrent, now) {
            Ok(l) => Ok(Lease::from(l)),
            Err(b) => Err(Refusal::Busy { limit: b.limit, retry_after_secs: b.retry_after_secs }),
        }
    }

    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError> {
        Ok(self.limiter.in_flight(key_id))
    }

    fn reclaim_expired(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        Ok(self.limiter.reclaim_expired(now))
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
        let ticket = Ticket { key_id: "kc_a", max_concurrent: Some(2) };
        let held: Vec<_> = (0..2).map(|_| a.admit(&ticket, t(0)).unwrap()).collect();
        assert_eq!(a.admit(&ticket, t(0)).unwrap_err(), Refusal::Busy { limit: 2, retry_after_secs: 1 });
        assert_eq!(a.in_flight("kc_a").unwrap(), 2);
        assert!(held.iter().all(|l| l.key_id() == "kc_a" && l.expires_at().is_none()));
        drop(held);
        assert_eq!(a.in_flight("kc_a").unwrap(), 0);
        let default = Ticket { key_id: "kc_b", max_concurrent: None };
        let five: Vec<_> = (0..5).map(|_| a.admit(&default, t(0)).unwrap()).collect();
        assert!(matches!(a.admit(&default, t(0)), Err(Refusal::Busy { limit: 5, .. })));
        drop(five);
    }
}
