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
//! The digest key is drawn from the OS once per cache, on first use (not at construction,
//! because edge runtimes forbid randomness at module top level). If the OS RNG fails the cache
//! stays off rather than use a guessable key.

use crate::time::{Duration, Timestamp};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
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

struct Entry {
    phc: String,
    /// `blake3::Hash` compares in constant time.
    digest: blake3::Hash,
    verified_at: Timestamp,
    needs_rehash: bool,
}

/// The cache. `Send + Sync`; one mutex held only for a map operation.
pub struct VerifiedCache {
    config: CacheConfig,
    key: OnceLock<Option<[u8; 32]>>,
    map: Mutex<HashMap<String, Entry>>,
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
        VerifiedCache { config, key: OnceLock::new(), map: Mutex::new(HashMap::new()) }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
        if self.config.capacity == 0 {
            return None;
        }
        let (stored, needs_rehash) = {
            let map = self.lock();
            match map.get(client_id) {
                // The PHC string is not secret: a plain comparison is fine.
                Some(e) if e.phc == phc && self.fresh(e, now) => (e.digest, e.needs_rehash),
                _ => return None,
            }
        };
        let d = self.digest(client_id, secret)?;
        (stored == d).then_some(needs_rehash)
    }

    /// Records a successful argon2 verification.
    pub fn insert(&self, client_id: &str, phc: &str, secret: &[u8], now: Timestamp, needs_rehash: bool) {
        if self.config.capacity == 0 {
            return;
        }
        let Some(digest) = self.digest(client_id, secret) else { return };
        let mut map = self.lock();
        if map.len() >= self.config.capacity && !map.contains_key(client_id) {
            map.retain(|_, e| self.config.ttl.is_none_or(|ttl| now <= e.verified_at.plus(ttl)));
            if map.len() >= self.config.capacity {
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                }
            }
        }
        map.insert(client_id.to_string(), Entry { phc: phc.to_string(), digest, verified_at: now, needs_rehash });
    }

    /// Drops one client id (e.g. on delete).
    pub fn forget(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
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
}
