//! The record cache: `authorize` reads keys and users from process memory (shared `Arc`s, as
//! [`MemoryStore`](super::MemoryStore) does) while the records live in a shared database.
//!
//! Correctness rests on two things the backend supplies through [`Freshness`]:
//! - every change made elsewhere evicts the record here (PostgreSQL: `LISTEN/NOTIFY`; SQLite:
//!   `PRAGMA data_version` checked on every lookup clears the cache), and
//! - a bound on how long the cache may be trusted without hearing from the database; past it,
//!   lookups read through (and a database that is down answers an error: 503, fail closed).
//!
//! Changes made through this store evict before the call returns, so in this process a
//! `rotate`/`deactivate`/`delete`/`remove_user` is seen by the very next request. A fill that
//! raced with an eviction is dropped (the epoch check), so a slow read can never put back a
//! record older than an eviction that already happened.
//!
//! Only the shared lookups (`get_key_shared`, `get_user_shared`: the `authorize` path) use the
//! cache; management reads (`get_key`, `list_keys`, ...) always read the database, so
//! optimistic version checks work on current data.

use super::{KeyFilter, Store, StoreError};
use crate::record::{KeyRecord, UserRecord};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Entries kept per map before the cache starts over (bounds memory under id floods).
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct Maps {
    keys: HashMap<String, Arc<KeyRecord>>,
    users: HashMap<String, Arc<UserRecord>>,
}

/// Records held in memory, evicted by the backend's change feed. Shared between the
/// [`CachedStore`] and whatever listens for changes (e.g. a PostgreSQL listener thread).
#[derive(Debug)]
pub struct RecordCache {
    maps: RwLock<Maps>,
    /// Bumped by every eviction; a fill that started before an eviction is dropped.
    epoch: AtomicU64,
    capacity: usize,
}

impl Default for RecordCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RecordCache {
    /// An empty cache holding at most `capacity` keys and `capacity` users.
    pub fn with_capacity(capacity: usize) -> Self {
        RecordCache { maps: RwLock::new(Maps::default()), epoch: AtomicU64::new(0), capacity: capacity.max(1) }
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current epoch: take it before reading the database, pass it to a fill.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A cached key.
    pub fn key(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.read().keys.get(id).cloned()
    }

    /// A cached user.
    pub fn user(&self, id: &str) -> Option<Arc<UserRecord>> {
        self.read().users.get(id).cloned()
    }

    /// Caches `record` unless an eviction happened since `epoch` was taken.
    pub fn fill_key(&self, record: Arc<KeyRecord>, epoch: u64) {
        let mut m = self.write();
        if self.epoch() != epoch {
            return;
        }
        if m.keys.len() >= self.capacity {
            m.keys.clear();
        }
        m.keys.insert(record.id.as_str().to_string(), record);
    }

    /// Caches `user` unless an eviction happened since `epoch` was taken.
    pub fn fill_user(&self, user: Arc<UserRecord>, epoch: u64) {
        let mut m = self.write();
        if self.epoch() != epoch {
            return;
        }
        if m.users.len() >= self.capacity {
            m.users.clear();
        }
        m.users.insert(user.id.clone(), user);
    }

    /// Forgets a key (it changed or was deleted).
    pub fn evict_key(&self, id: &str) {
        let mut m = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.keys.remove(id);
    }

    /// Forgets a user (changed or removed).
    pub fn evict_user(&self, id: &str) {
        let mut m = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.users.remove(id);
    }

    /// Forgets everything (another process changed something, or the change feed was lost).
    pub fn clear(&self) {
        let mut m = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        m.keys.clear();
        m.users.clear();
    }

    /// What is held, for reconciliation after a reconnect: (key records, user records).
    pub fn snapshot(&self) -> (Vec<Arc<KeyRecord>>, Vec<Arc<UserRecord>>) {
        let m = self.read();
        (m.keys.values().cloned().collect(), m.users.values().cloned().collect())
    }

    /// Drops the held keys and users that differ from `current` (None: gone from the
    /// database). Reconciliation after a reconnect: a change whose notification was lost
    /// while disconnected cannot survive it.
    pub fn reconcile(
        &self,
        keys: &HashMap<String, Option<KeyRecord>>,
        users: &HashMap<String, Option<UserRecord>>,
    ) -> usize {
        let mut m = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let before = m.keys.len() + m.users.len();
        m.keys.retain(|id, held| matches!(keys.get(id), Some(Some(cur)) if cur == held.as_ref()));
        m.users.retain(|id, held| matches!(users.get(id), Some(Some(cur)) if cur == held.as_ref()));
        before - (m.keys.len() + m.users.len())
    }

    /// Number of cached keys and users.
    pub fn len(&self) -> (usize, usize) {
        let m = self.read();
        (m.keys.len(), m.users.len())
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

/// Whether the cache may be trusted for this lookup; supplied by the backend.
pub trait Freshness: Send + Sync + fmt::Debug {
    /// `Ok(true)`: serve from (and fill) the cache. `Ok(false)`: read through (e.g. past the
    /// heartbeat bound). `Err`: the backend is unreachable; the lookup fails (503).
    /// May evict from `cache` first (SQLite: another connection committed).
    fn check(&self, cache: &RecordCache) -> Result<bool, StoreError>;
}

/// A [`Store`] whose `authorize` lookups come from a [`RecordCache`]; every other call goes to
/// the inner store, and every change evicts what it touched before returning.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: Arc<RecordCache>,
    fresh: Arc<dyn Freshness>,
}

impl fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, u) = self.cache.len();
        f.debug_struct("CachedStore").field("cached_keys", &k).field("cached_users", &u).finish_non_exhaustive()
    }
}

impl CachedStore {
    /// Caches `inner`'s records, trusting them as `fresh` says; `cache` is shared with the
    /// backend's change listener.
    pub fn new(inner: Arc<dyn Store>, cache: Arc<RecordCache>, fresh: Arc<dyn Freshness>) -> Self {
        CachedStore { inner, cache, fresh }
    }

    /// The cache (tests, metrics).
    pub fn cache(&self) -> &Arc<RecordCache> {
        &self.cache
    }

    /// The store underneath.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Evicts `ids` whatever `result` is: a failed call may still have committed (e.g. the
    /// connection dropped after COMMIT), and evicting costs only a re-read.
    fn evicting<T>(&self, ids: &[&str], result: Result<T, StoreError>) -> Result<T, StoreError> {
        for id in ids {
            self.cache.evict_key(id);
        }
        result
    }
}

impl Store for CachedStore {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get_key(id)
    }

    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        if !self.fresh.check(&self.cache)? {
            return self.inner.get_key_shared(id);
        }
        if let Some(hit) = self.cache.key(id) {
            return Ok(Some(hit));
        }
        let epoch = self.cache.epoch();
        let found = self.inner.get_key_shared(id)?;
        if let Some(r) = &found {
            self.cache.fill_key(r.clone(), epoch);
        }
        Ok(found)
    }

    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        if !self.fresh.check(&self.cache)? {
            return self.inner.get_user_shared(id);
        }
        if let Some(hit) = self.cache.user(id) {
            return Ok(Some(hit));
        }
        let epoch = self.cache.epoch();
        let found = self.inner.get_user_shared(id)?;
        if let Some(u) = &found {
            self.cache.fill_user(u.clone(), epoch);
        }
        Ok(found)
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.evicting(&[record.id.as_str()], self.inner.insert_key(record))
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        self.evicting(&[record.id.as_str()], self.inner.update_key(record, expected_version))
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.evicting(&[id], self.inner.delete_key(id))
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list_keys(filter)
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.get_user(id)
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let r = self.inner.put_user(user);
        self.cache.evict_user(&user.id);
        r
    }

    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let r = self.inner.remove_user(id);
        self.cache.evict_user(id);
        match &r {
            Ok(gone) => gone.iter().for_each(|k| self.cache.evict_key(k)),
            // Which tokens went is unknown: forget them all.
            Err(_) => self.cache.clear(),
        }
        r
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.list_users()
    }
}

/// Trusts the cache always: for an inner store nobody else writes to (tests, one process).
#[derive(Debug, Default)]
pub struct AlwaysFresh;

impl Freshness for AlwaysFresh {
    fn check(&self, _cache: &RecordCache) -> Result<bool, StoreError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::store::conformance::{run, sample_key};
    use crate::store::MemoryStore;
    use std::sync::atomic::AtomicBool;

    fn cached(inner: Arc<dyn Store>) -> CachedStore {
        CachedStore::new(inner, Arc::new(RecordCache::default()), Arc::new(AlwaysFresh))
    }

    #[test]
    fn cached_memory_store_conforms() {
        let failures = run(&|| Ok(Box::new(cached(Arc::new(MemoryStore::new())))));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn hits_are_shared_and_writes_evict() {
        let inner = Arc::new(MemoryStore::new());
        let s = cached(inner.clone());
        let k = sample_key(1, crate::record::KeyKind::Api).unwrap();
        s.insert_key(&k).unwrap();
        let a = s.get_key_shared(k.id.as_str()).unwrap().unwrap();
        let b = s.get_key_shared(k.id.as_str()).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second lookup must come from the cache");
        // A write behind the cache's back is not seen (that is what Freshness is for) ...
        let mut off = k.clone();
        off.active = false;
        off.version = 2;
        inner.update_key(&off, 1).unwrap();
        assert!(s.get_key_shared(k.id.as_str()).unwrap().unwrap().active);
        // ... an eviction (a notification) makes it visible.
        s.cache().evict_key(k.id.as_str());
        assert!(!s.get_key_shared(k.id.as_str()).unwrap().unwrap().active);
    }

    /// A fill that started before an eviction must not put the old record back.
    #[test]
    fn a_fill_racing_an_eviction_is_dropped() {
        let c = RecordCache::default();
        let k = Arc::new(sample_key(1, crate::record::KeyKind::Api).unwrap());
        let e = c.epoch();
        c.evict_key(k.id.as_str());
        c.fill_key(k.clone(), e);
        assert!(c.key(k.id.as_str()).is_none());
        c.fill_key(k.clone(), c.epoch());
        assert!(c.key(k.id.as_str()).is_some());
    }

    #[derive(Debug, Default)]
    struct Switch(AtomicBool);
    impl Freshness for Switch {
        fn check(&self, _cache: &RecordCache) -> Result<bool, StoreError> {
            Ok(!self.0.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn past_the_bound_lookups_read_through() {
        let inner = Arc::new(MemoryStore::new());
        let stale = Arc::new(Switch::default());
        let s = CachedStore::new(inner.clone(), Arc::new(RecordCache::default()), stale.clone());
        let k = sample_key(1, crate::record::KeyKind::Api).unwrap();
        s.insert_key(&k).unwrap();
        s.get_key_shared(k.id.as_str()).unwrap();
        inner.delete_key(k.id.as_str()).unwrap();
        assert!(s.get_key_shared(k.id.as_str()).unwrap().is_some(), "fresh: served from the cache");
        stale.0.store(true, Ordering::SeqCst);
        assert!(s.get_key_shared(k.id.as_str()).unwrap().is_none(), "stale: read through");
    }

    #[test]
    fn reconcile_drops_changed_and_missing_records() {
        let c = RecordCache::default();
        let a = sample_key(1, crate::record::KeyKind::Api).unwrap();
        let b = sample_key(2, crate::record::KeyKind::Api).unwrap();
        let d = sample_key(3, crate::record::KeyKind::Api).unwrap();
        for r in [&a, &b, &d] {
            c.fill_key(Arc::new(r.clone()), c.epoch());
        }
        let mut b2 = b.clone();
        b2.version = 2;
        let now: HashMap<String, Option<KeyRecord>> = [
            (a.id.as_str().to_string(), Some(a.clone())),
            (b.id.as_str().to_string(), Some(b2)),
            (d.id.as_str().to_string(), None),
        ]
        .into_iter()
        .collect();
        assert_eq!(c.reconcile(&now, &HashMap::new()), 2);
        assert!(c.key(a.id.as_str()).is_some());
        assert!(c.key(b.id.as_str()).is_none() && c.key(d.id.as_str()).is_none());
    }
}
