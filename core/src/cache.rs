//! Verified-secret cache: after argon2 accepts a secret, remember the stored PHC string it was
//! checked against and a keyed BLAKE3 digest of (client id, secret), so the same secret
//! against the same stored hash skips argon2. Rotation changes the PHC string, so an old
//! secret misses at once. Only the *secret check* is cached, never key state (active, expiry,
//! scopes are read every time).
//!
//! The digest is BLAKE3's keyed mode (a PRF under a 32-byte key) over `len(client id) ‖
//! client id ‖ secret`. The input of a default-format token (58 bytes) fits one 64-byte block,
//! so a hit costs one 7-round compression with SIMD: about 750 instructions with the copy into
//! the buffer, where one BLAKE2b block cost 1,900 (callgrind, `core/examples/hot_paths.rs`).
//!
//! Eviction is CLOCK (second chance): a hit sets the entry's reference bit, and a full cache
//! evicts the first entry the clock hand finds without it, clearing bits on the way. Keys in
//! use stay cached however many fresh keys pass once each (random eviction pushed busy keys
//! out, each then paying argon2 again), and a hit costs one extra store, not a list splice.
//!
//! The digest key is drawn from the OS once per cache, on first use (not at construction,
//! because edge runtimes forbid randomness at module top level). If the OS RNG fails the cache
//! stays off rather than use a guessable key.

use crate::time::{Duration, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use zeroize::Zeroize;

/// Size and lifetime of cached verifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries (one per client id); 0 turns the cache off.
    pub capacity: usize,
    /// Entries older than this are verified with argon2 again (`None`: no age limit).
    pub ttl: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { capacity: 10_000, ttl: Some(Duration::from_secs(900)) }
    }
}

/// What the cache knows about a secret presented for a client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Verified before against this very stored hash, within the TTL: skip argon2.
    Hit {
        /// The stored hash uses other parameters than configured.
        needs_rehash: bool,
    },
    /// This exact secret was verified against this stored hash, but longer ago than the TTL:
    /// argon2 must run again, yet the secret is known to be the right one (only its holder
    /// can produce the keyed digest), so failure budgets need not hold it back.
    Recognised,
    /// Nothing known: an unverified secret.
    Miss,
}

struct Entry {
    phc: String,
    /// `blake3::Hash` compares in constant time.
    digest: blake3::Hash,
    verified_at: Timestamp,
    needs_rehash: bool,
}

/// One position of the clock.
struct Slot {
    id: Arc<str>,
    entry: Entry,
    /// Set by a hit, cleared by the passing hand: a second chance for entries in use.
    referenced: bool,
}

/// The entries: a ring of slots the hand sweeps, and an index from client id to slot.
#[derive(Default)]
struct Clock {
    index: HashMap<Arc<str>, usize>,
    ring: Vec<Option<Slot>>,
    hand: usize,
}

impl Clock {
    fn get_mut(&mut self, id: &str) -> Option<&mut Slot> {
        let at = *self.index.get(id)?;
        self.ring.get_mut(at)?.as_mut()
    }

    /// Where a new entry goes: a fresh slot while the ring is short of `capacity`, else the
    /// first empty or unreferenced slot the hand reaches (whose entry is evicted).
    fn free_slot(&mut self, capacity: usize) -> usize {
        if self.ring.len() < capacity {
            self.ring.push(None);
            return self.ring.len() - 1;
        }
        // Two turns at most: the first clears every reference bit it passes.
        for _ in 0..2 * self.ring.len() {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.ring.len().max(1);
            match self.ring.get_mut(at) {
                Some(Some(slot)) if slot.referenced => slot.referenced = false,
                Some(cell) => {
                    if let Some(old) = cell.take() {
                        self.index.remove(&old.id);
                    }
                    return at;
                }
                None => {}
            }
        }
        0
    }

    fn remove(&mut self, id: &str) {
        if let Some(at) = self.index.remove(id) {
            if let Some(cell) = self.ring.get_mut(at) {
                *cell = None;
            }
        }
    }
}

/// The cache. `Send + Sync`; one mutex held only for a map operation.
pub struct VerifiedCache {
    config: CacheConfig,
    key: OnceLock<Option<[u8; 32]>>,
    map: Mutex<Clock>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache").field("config", &self.config).field("len", &self.len()).finish()
    }
}

impl Drop for VerifiedCache {
    fn drop(&mut self) {
        if let Some(Some(mut k)) = self.key.take() {
            k.zeroize();
        }
    }
}

impl VerifiedCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        VerifiedCache { config, key: OnceLock::new(), map: Mutex::new(Clock::default()) }
    }

    fn digest(&self, client_id: &str, secret: &[u8]) -> Option<blake3::Hash> {
        let key = self
            .key
            .get_or_init(|| {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).ok().map(|_| k)
            })
            .as_ref()?;
        // Client ids are at most 33 bytes, so one length byte keeps the encoding unambiguous.
        let len = [u8::try_from(client_id.len()).unwrap_or(u8::MAX)];
        let parts = [&len[..], client_id.as_bytes(), secret];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // The usual token fits a stack buffer hashed in one call (no streaming state to set up).
        let mut buf = zeroize::Zeroizing::new([0u8; 80]);
        if let Some(dst) = buf.get_mut(..total) {
            let mut at = 0;
            for p in parts {
                if let Some(d) = dst.get_mut(at..at + p.len()) {
                    d.copy_from_slice(p);
                }
                at += p.len();
            }
            return Some(blake3::keyed_hash(key, dst));
        }
        let mut mac = blake3::Hasher::new_keyed(key);
        for p in parts {
            mac.update(p);
        }
        Some(mac.finalize())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self, e: &Entry, now: Timestamp) -> bool {
        match self.config.ttl {
            Some(ttl) => now >= e.verified_at && now <= e.verified_at.plus(ttl),
            None => true,
        }
    }

    /// `Some(needs_rehash)` when this exact secret was verified against this exact PHC string
    /// before (and not longer ago than the TTL); `None` on a miss.
    pub fn check(&self, client_id: &str, phc: &str, secret: &[u8], now: Timestamp) -> Option<bool> {
        match self.lookup(client_id, phc, secret, now) {
            Lookup::Hit { needs_rehash } => Some(needs_rehash),
            Lookup::Recognised | Lookup::Miss => None,
        }
    }

    /// What the cache knows about `secret` for `client_id` against the stored `phc`. A hit
    /// marks the entry as in use (it survives the next sweep of the clock).
    pub fn lookup(&self, client_id: &str, phc: &str, secret: &[u8], now: Timestamp) -> Lookup {
        if self.config.capacity == 0 {
            return Lookup::Miss;
        }
        let (stored, needs_rehash, fresh) = {
            let mut map = self.lock();
            match map.get_mut(client_id) {
                // The PHC string is not secret: a plain comparison is fine.
                Some(s) if s.entry.phc == phc => {
                    let fresh = self.fresh(&s.entry, now);
                    // Only a digest match below may use the bit, but setting it for a wrong
                    // secret too keeps the time under the lock independent of the secret.
                    s.referenced |= fresh;
                    (s.entry.digest, s.entry.needs_rehash, fresh)
                }
                _ => return Lookup::Miss,
            }
        };
        match self.digest(client_id, secret) {
            Some(d) if d == stored && fresh => Lookup::Hit { needs_rehash },
            Some(d) if d == stored => Lookup::Recognised,
            _ => Lookup::Miss,
        }
    }

    /// True when this exact secret was verified for `client_id` at some point (whatever the
    /// stored hash or the TTL now say): only its holder can produce the keyed digest. Used to
    /// let such a request past the failure-budget screen, never to skip argon2. Marks nothing.
    pub fn knows(&self, client_id: &str, secret: &[u8]) -> bool {
        if self.config.capacity == 0 {
            return false;
        }
        // The digest first, whether or not there is an entry: the same work for every id.
        let Some(d) = self.digest(client_id, secret) else { return false };
        let stored = self.lock().get_mut(client_id).map(|s| s.entry.digest);
        stored.is_some_and(|s| s == d)
    }

    /// Records a successful argon2 verification.
    pub fn insert(&self, client_id: &str, phc: &str, secret: &[u8], now: Timestamp, needs_rehash: bool) {
        if self.config.capacity == 0 {
            return;
        }
        let Some(digest) = self.digest(client_id, secret) else { return };
        let entry = Entry { phc: phc.to_string(), digest, verified_at: now, needs_rehash };
        let mut map = self.lock();
        if let Some(slot) = map.get_mut(client_id) {
            slot.entry = entry;
            slot.referenced = true;
            return;
        }
        let at = map.free_slot(self.config.capacity);
        let id: Arc<str> = Arc::from(client_id);
        let slot = Slot { id: id.clone(), entry, referenced: false };
        if let Some(old) = map.ring.get_mut(at).and_then(|cell| cell.replace(slot)) {
            map.index.remove(&old.id);
        }
        map.index.insert(id, at);
    }

    /// Drops one client id (e.g. on delete).
    pub fn forget(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// Drops everything.
    pub fn clear(&self) {
        *self.lock() = Clock::default();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    #[test]
    fn hit_only_for_same_secret_and_same_hash() {
        let c = VerifiedCache::new(CacheConfig::default());
        c.insert("kc_a", "$phc1", b"secret", t(100), true);
        assert_eq!(c.check("kc_a", "$phc1", b"secret", t(101)), Some(true));
        assert_eq!(c.check("kc_a", "$phc1", b"secreT", t(101)), None);
        assert_eq!(c.check("kc_a", "$phc2", b"secret", t(101)), None, "rotation changes the PHC string");
        assert_eq!(c.check("kc_b", "$phc1", b"secret", t(101)), None);
    }

    /// Inputs longer than the stack buffer take the streaming path and still decide exactly.
    #[test]
    fn long_inputs_hit_and_miss_like_short_ones() {
        let c = VerifiedCache::new(CacheConfig::default());
        let id = "x".repeat(33);
        let long = [7u8; 200];
        let mut other = long;
        other[199] = 8;
        c.insert(&id, "$p", &long, t(0), false);
        assert_eq!(c.check(&id, "$p", &long, t(1)), Some(false));
        assert_eq!(c.check(&id, "$p", &other, t(1)), None);
        // The length byte keeps (id, secret) boundaries apart.
        c.insert("kc_ab", "$p", b"c", t(0), false);
        assert_eq!(c.check("kc_ab", "$p", b"c", t(1)), Some(false));
        assert_ne!(c.digest("kc_ab", b"c"), c.digest("kc_a", b"bc"));
        // Both paths compute the documented construction: keyed BLAKE3 of len ‖ id ‖ secret.
        let key = c.key.get().copied().flatten().unwrap();
        let streamed = |id: &str, secret: &[u8]| {
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(&[id.len() as u8]).update(id.as_bytes()).update(secret);
            h.finalize()
        };
        assert_eq!(c.digest("kc_a", b"bc"), Some(streamed("kc_a", b"bc")));
        assert_eq!(c.digest(&id, &long), Some(streamed(&id, &long)));
    }

    #[test]
    fn ttl_and_capacity_bound_it() {
        let c = VerifiedCache::new(CacheConfig { capacity: 2, ttl: Some(Duration::from_secs(10)) });
        c.insert("kc_a", "p", b"s", t(0), false);
        assert_eq!(c.check("kc_a", "p", b"s", t(11)), None);
        c.insert("kc_b", "p", b"s", t(0), false);
        c.insert("kc_c", "p", b"s", t(0), false);
        assert!(c.len() <= 2);
        let off = VerifiedCache::new(CacheConfig { capacity: 0, ttl: None });
        off.insert("kc_a", "p", b"s", t(0), false);
        assert_eq!(off.check("kc_a", "p", b"s", t(0)), None);
    }

    /// Issue 12: random eviction pushed 3 of 20 busy keys out while 12,000 fresh valid keys
    /// passed once each (each then paid argon2 again). The busy keys are used between every
    /// 100 fresh ones; none may miss.
    #[test]
    fn busy_keys_stay_cached_while_fresh_keys_pass_once_each() {
        let c = VerifiedCache::new(CacheConfig { capacity: 10_000, ttl: None });
        let busy: Vec<String> = (0..20).map(|i| format!("kc_busy{i:02}")).collect();
        for id in &busy {
            c.insert(id, "$p", b"s", t(0), false);
        }
        let mut misses = 0;
        for n in 0..12_000 {
            c.insert(&format!("kc_fresh{n:05}"), "$p", b"s", t(0), false);
            if n % 100 == 99 {
                for id in &busy {
                    if c.check(id, "$p", b"s", t(0)).is_none() {
                        misses += 1;
                        c.insert(id, "$p", b"s", t(0), false);
                    }
                }
            }
        }
        assert_eq!(misses, 0, "busy keys were evicted and paid argon2 again");
        assert_eq!(c.len(), 10_000);
        // The fresh keys that went were the oldest unused ones.
        assert_eq!(c.check("kc_fresh00000", "$p", b"s", t(0)), None);
        assert_eq!(c.check("kc_fresh11999", "$p", b"s", t(0)), Some(false));
    }

    #[test]
    fn stale_entries_recognise_the_right_secret_only() {
        let c = VerifiedCache::new(CacheConfig { capacity: 4, ttl: Some(Duration::from_secs(10)) });
        c.insert("kc_a", "$p", b"right", t(0), false);
        assert_eq!(c.lookup("kc_a", "$p", b"right", t(5)), Lookup::Hit { needs_rehash: false });
        assert_eq!(c.lookup("kc_a", "$p", b"right", t(11)), Lookup::Recognised);
        assert_eq!(c.lookup("kc_a", "$p", b"wrong", t(11)), Lookup::Miss);
        assert_eq!(c.lookup("kc_a", "$q", b"right", t(11)), Lookup::Miss, "rotated: not recognised");
        // Re-inserting refreshes in place; forgetting frees the slot for reuse.
        c.insert("kc_a", "$p", b"right", t(11), false);
        assert_eq!(c.lookup("kc_a", "$p", b"right", t(12)), Lookup::Hit { needs_rehash: false });
        c.forget("kc_a");
        assert_eq!(c.lookup("kc_a", "$p", b"right", t(12)), Lookup::Miss);
        for id in ["kc_b", "kc_c", "kc_d", "kc_e", "kc_f"] {
            c.insert(id, "$p", b"s", t(12), false);
        }
        assert_eq!(c.len(), 4);
    }
}
