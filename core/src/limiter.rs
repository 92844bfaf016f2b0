//! Per-key in-flight limits (Finout: five concurrent requests per API key).
//!
//! A [`Lease`] is one request in flight; it releases on drop, including during unwinding.
//!
//! Only *lost* leases are reclaimed; a live holder keeps its slot however long it runs (a
//! download, a WebSocket). Two kinds, chosen by [`LimiterConfig::hold_while_alive`]:
//! - **held** (default for the engine): the slot is held exactly as long as the [`Lease`]
//!   value lives. Rust's drop (and a binding's garbage collector, which drops the value)
//!   releases it, so a lease cannot be lost without being released; nothing expires.
//! - **renewable** ([`Limiter::acquire`], and hosts whose handles may be lost without being
//!   dropped, e.g. JS objects across the WASM boundary): the slot carries a deadline
//!   `lease_ttl` ahead; a live holder calls [`Lease::renew`] before it passes, and a lease
//!   that stopped renewing (lost) is reclaimed after it, when the key is next at its limit.
//!
//! Never more than the limit in flight.

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
    /// How long a renewable lease may go without renewal before it counts as lost.
    pub lease_ttl: Duration,
    /// `Retry-After` seconds sent with a 429.
    pub retry_after_secs: u32,
    /// The engine's leases are held while their value lives (true: hosts that always drop
    /// what they lose, Rust and Python) or renewable with a deadline (false: hosts whose
    /// handles can be lost without a drop, e.g. WASM).
    pub hold_while_alive: bool,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            default_limit: DEFAULT_LIMIT,
            lease_ttl: Duration::from_secs(60),
            retry_after_secs: 1,
            hold_while_alive: true,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// (lease id, deadline) of every lease in flight; `None`: held while its value lives.
    held: Vec<(u64, Option<Timestamp>)>,
}

impl Slot {
    /// Drops the leases whose deadline passed (lost: they stopped renewing).
    fn reclaim(&mut self, now: Timestamp) {
        self.held.retain(|(_, deadline)| deadline.is_none_or(|d| d > now));
    }
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
    expires_at: Option<Timestamp>,
    ttl: Duration,
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

    /// After this instant the slot can be reclaimed unless renewed; `None` for a held lease
    /// (it never expires while its value lives).
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// A live holder keeps a renewable slot: moves its deadline to `now + lease_ttl`.
    /// False when the lease was already released or reclaimed (it was treated as lost: the
    /// holder no longer counts against the limit). A held lease stays held (true).
    pub fn renew(&mut self, now: Timestamp) -> bool {
        if self.released {
            return false;
        }
        if self.expires_at.is_none() {
            return true;
        }
        let deadline = now.plus(self.ttl);
        let mut slot = lock(&self.slot);
        match slot.held.iter_mut().find(|(id, _)| *id == self.id) {
            Some((_, d)) => {
                *d = Some(deadline);
                drop(slot);
                self.expires_at = Some(deadline);
                true
            }
            None => false,
        }
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

    /// Takes a renewable slot for `key_id` under `limit` (the key's own, else the default):
    /// reclaimed `lease_ttl` after `now` unless renewed.
    pub fn acquire(&self, key_id: &str, limit: Option<u32>, now: Timestamp) -> Result<Lease, Busy> {
        self.take(key_id, limit, now, false)
    }

    /// Takes a slot held while the returned value lives (never reclaimed by expiry).
    pub fn acquire_held(&self, key_id: &str, limit: Option<u32>, now: Timestamp) -> Result<Lease, Busy> {
        self.take(key_id, limit, now, true)
    }

    /// The kind of lease the configuration asks for ([`LimiterConfig::hold_while_alive`]).
    pub fn acquire_configured(&self, key_id: &str, limit: Option<u32>, now: Timestamp) -> Result<Lease, Busy> {
        self.take(key_id, limit, now, self.config.hold_while_alive)
    }

    fn take(&self, key_id: &str, limit: Option<u32>, now: Timestamp, held: bool) -> Result<Lease, Busy> {
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
        let ttl = self.config.lease_ttl;
        let expires_at = if held { None } else { Some(now.plus(ttl)) };
        {
            let mut s = lock(&slot);
            if s.held.len() >= limit as usize {
                s.reclaim(now);
            }
            if s.held.len() >= limit as usize {
                return Err(Busy { limit, retry_after_secs: self.config.retry_after_secs });
            }
            s.held.push((id, expires_at));
        }
        Ok(Lease { slot, id, key_id: name, expires_at, ttl, released: false })
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
            s.reclaim(now);
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

    fn short_ttl() -> Limiter {
        Limiter::new(LimiterConfig { lease_ttl: Duration::from_secs(3), ..LimiterConfig::default() })
    }

    /// Issue 12: with `lease_ttl = 3s`, ten 10-second requests ran at once on a key limited
    /// to 5. A held lease lives as long as its value.
    #[test]
    fn a_live_held_lease_never_expires() {
        let l = short_ttl();
        let live: Vec<_> = (0..5).map(|_| l.acquire_configured("kc_a", Some(5), t(0)).unwrap()).collect();
        assert!(live.iter().all(|x| x.expires_at().is_none()));
        for s in [3, 10, 1_000_000] {
            assert!(l.acquire_configured("kc_a", Some(5), t(s)).is_err(), "a live lease was reclaimed at {s}s");
            assert_eq!(l.reclaim_expired(t(s)), 0);
        }
        assert_eq!(l.in_flight("kc_a"), 5);
        drop(live);
        assert_eq!(l.in_flight("kc_a"), 0);
    }

    /// A renewable lease whose holder renews keeps its slot; one that stopped renewing is lost
    /// and reclaimed after its deadline; renewing it afterwards says so.
    #[test]
    fn renewing_holders_keep_their_slot_lost_ones_are_reclaimed() {
        let l = short_ttl();
        let mut live = l.acquire("kc_a", Some(2), t(0)).unwrap();
        let mut lost = l.acquire("kc_a", Some(2), t(0)).unwrap();
        for s in 1..=10 {
            assert!(live.renew(t(s)), "renewal at {s}s");
        }
        assert_eq!(live.expires_at(), Some(t(13)));
        // `lost` never renewed: its deadline (3s) passed, the live one's (13s) did not.
        let newcomer = l.acquire("kc_a", Some(2), t(10)).unwrap();
        assert!(l.acquire("kc_a", Some(2), t(10)).is_err(), "the renewed lease was reclaimed");
        assert!(!lost.renew(t(10)), "a reclaimed lease cannot be renewed");
        assert!(!lost.release_inner());
        drop((live, newcomer));
        assert_eq!(l.in_flight("kc_a"), 0);
    }

    #[test]
    fn the_engine_default_is_held_the_plain_acquire_renewable() {
        assert!(LimiterConfig::default().hold_while_alive);
        let l = short_ttl();
        assert_eq!(l.acquire("kc_a", None, t(0)).unwrap().expires_at(), Some(t(3)));
        let l = Limiter::new(LimiterConfig { hold_while_alive: false, ..LimiterConfig::default() });
        assert!(l.acquire_configured("kc_a", None, t(0)).unwrap().expires_at().is_some());
    }
}
