//! Per-key in-flight limits (Finout: five concurrent requests per API key).
//!
//! A [`Lease`] is one request in flight; it releases on drop, including during unwinding.
//! Each lease also has an expiry, so a host that cannot guarantee release (a lease held across
//! an FFI boundary and lost) gets its slot back once the expiry passes: expired leases are
//! reclaimed when the key is next at its limit. Never more than the limit in flight.

use crate::time::{Duration, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The default per-key limit.
pub const DEFAULT_LIMIT: u32 = 5;

/// Limiter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Limit for keys without their own `max_concurrent`.
    pub default_limit: u32,
    /// How long a lease may be held before it can be reclaimed.
    pub lease_ttl: Duration,
    /// `Retry-After` seconds sent with a 429.
    pub retry_after_secs: u32,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig { default_limit: DEFAULT_LIMIT, lease_ttl: Duration::from_secs(60), retry_after_secs: 1 }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// (lease id, expiry) of every lease in flight.
    held: Vec<(u64, Timestamp)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key ids are shared with the leases, so taking a lease copies no string.
    keys: Mutex<HashMap<Arc<str>, Arc<Mutex<Slot>>>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The limit in force.
    pub limit: u32,
    /// Suggested `Retry-After`.
    pub retry_after_secs: u32,
}

/// Shared per-key lease counters. Cloning shares the same counters.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    config: LimiterConfig,
    inner: Arc<Inner>,
}

/// One request in flight. Released on drop.
#[derive(Debug)]
pub struct Lease {
    slot: Arc<Mutex<Slot>>,
    id: u64,
    key_id: Arc<str>,
    expires_at: Timestamp,
    released: bool,
}

impl Lease {
    /// The lease id (unique per limiter).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The key holding it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key id, shared (for hosts that keep it beyond the lease).
    pub fn key_id_shared(&self) -> Arc<str> {
        Arc::clone(&self.key_id)
    }

    /// After this instant the slot can be reclaimed even if never released.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Releases now (same as dropping). Returns false when the slot had already been
    /// reclaimed after expiry.
    pub fn release(mut self) -> bool {
        self.release_inner()
    }

    fn release_inner(&mut self) -> bool {
        if self.released {
            return false;
        }
        self.released = true;
        let mut slot = lock(&self.slot);
        match slot.held.iter().position(|(id, _)| *id == self.id) {
            Some(i) => {
                slot.held.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release_inner();
    }
}

impl Limiter {
    /// A limiter with its own counters.
    pub fn new(config: LimiterConfig) -> Self {
        Limiter { config, inner: Arc::new(Inner::default()) }
    }

    /// The settings.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Takes a slot for `key_id` under `limit` (the key's own, else the default).
    pub fn acquire(&self, key_id: &str, limit: Option<u32>, now: Timestamp) -> Result<Lease, Busy> {
        let limit = limit.unwrap_or(self.config.default_limit).max(1);
        let (name, slot) = {
            let mut keys = lock(&self.inner.keys);
            match keys.get_key_value(key_id) {
                Some((k, s)) => (Arc::clone(k), Arc::clone(s)),
                None => {
                    let k: Arc<str> = Arc::from(key_id);
                    let s = Arc::new(Mutex::new(Slot::default()));
                    keys.insert(Arc::clone(&k), Arc::clone(&s));
                    (k, s)
                }
            }
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let expires_at = now.plus(self.config.lease_ttl);
        {
            let mut s = lock(&slot);
            if s.held.len() >= limit as usize {
                s.held.retain(|(_, exp)| *exp > now);
            }
            if s.held.len() >= limit as usize {
                return Err(Busy { limit, retry_after_secs: self.config.retry_after_secs });
            }
            s.held.push((id, expires_at));
        }
        Ok(Lease { slot, id, key_id: name, expires_at, released: false })
    }

    /// Leases in flight for a key (expired ones included until reclaimed).
    pub fn in_flight(&self, key_id: &str) -> usize {
        let slot = lock(&self.inner.keys).get(key_id).cloned();
        slot.map_or(0, |s| lock(&s).held.len())
    }

    /// Leases in flight over all keys.
    pub fn total_in_flight(&self) -> usize {
        let slots: Vec<_> = lock(&self.inner.keys).values().cloned().collect();
        slots.iter().map(|s| lock(s).held.len()).sum()
    }

    /// Drops expired leases everywhere and forgets idle keys (call periodically, optional).
    pub fn reclaim_expired(&self, now: Timestamp) -> usize {
        let mut keys = lock(&self.inner.keys);
        let mut reclaimed = 0;
        keys.retain(|_, slot| {
            let mut s = lock(slot);
            let before = s.held.len();
            s.held.retain(|(_, exp)| *exp > now);
            reclaimed += before - s.held.len();
            !s.held.is_empty() || Arc::strong_count(slot) > 1
        });
        reclaimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    #[test]
    fn five_in_flight_then_busy() {
        let l = Limiter::default();
        let leases: Vec<_> = (0..5).map(|_| l.acquire("kc_a", None, t(0)).unwrap()).collect();
        let busy = l.acquire("kc_a", None, t(0)).unwrap_err();
        assert_eq!(busy.limit, 5);
        assert!(l.acquire("kc_b", None, t(0)).is_ok(), "other keys are not affected");
        drop(leases);
        assert_eq!(l.in_flight("kc_a"), 0);
        assert!(l.acquire("kc_a", Some(1), t(0)).is_ok());
    }

    #[test]
    fn released_on_panic() {
        let l = Limiter::default();
        let l2 = l.clone();
        let r = std::panic::catch_unwind(move || {
            let _lease = l2.acquire("kc_a", Some(1), t(0)).unwrap();
            panic!("handler failed");
        });
        assert!(r.is_err());
        assert_eq!(l.in_flight("kc_a"), 0);
    }

    #[test]
    fn expired_leases_are_reclaimed() {
        let l = Limiter::new(LimiterConfig { lease_ttl: Duration::from_secs(30), ..LimiterConfig::default() });
        let lost = l.acquire("kc_a", Some(1), t(0)).unwrap();
        std::mem::forget(lost);
        assert!(l.acquire("kc_a", Some(1), t(10)).is_err());
        let again = l.acquire("kc_a", Some(1), t(31)).unwrap();
        assert_eq!(l.in_flight("kc_a"), 1);
        drop(again);
        assert_eq!(l.reclaim_expired(t(100)), 0);
    }
}
