//! The record cache over PostgreSQL, kept honest by `LISTEN/NOTIFY`.
//!
//! A listener thread holds one dedicated connection. On every (re)connect it first `LISTEN`s,
//! then reconciles what the cache holds against the database (so a notification lost while
//! disconnected cannot leave a stale record), then pings every `heartbeat`. A ping's answer
//! proves that every notification committed before the ping was sent has arrived (the server
//! sends a listener's notifications before the reply to its next query) and was applied, so
//! the cache is trusted until `sent + bound`. Past that (connection broken, listener stuck)
//! lookups read through to the database; a database that is down then fails them (503).
//!
//! The revocation bound this gives: a committed change stops being honoured by every process
//! once its notification arrives (milliseconds, measured by the revocation latency test), and
//! never later than `bound` after the commit even if the listener's connection silently died.

use crate::schema::CHANNEL;
use crate::store::PostgresStore;
use keycel::record::{KeyRecord, UserRecord};
use keycel::store::{CachedStore, Freshness, KeyFilter, RecordCache, Store, StoreError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the cache learns about changes and how long it trusts itself without news.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Ping interval of the listener connection.
    pub heartbeat: Duration,
    /// How long after a successful ping was sent the cache is still trusted.
    pub bound: Duration,
    /// Keys (and users) held at most.
    pub capacity: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            heartbeat: Duration::from_millis(100),
            bound: Duration::from_millis(500),
            capacity: keycel::store::cached::DEFAULT_CAPACITY,
        }
    }
}

/// State shared by the lookups and the listener thread.
#[derive(Debug)]
struct Shared {
    base: Instant,
    /// Milliseconds since `base` until which the cache may be trusted (0: not now).
    fresh_until: AtomicU64,
    stop: AtomicBool,
    sessions: AtomicU64,
    notifications: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// [`Freshness`] from the listener's heartbeat. Dropping it stops the listener thread.
#[derive(Debug)]
struct Heartbeat {
    shared: Arc<Shared>,
}

impl Freshness for Heartbeat {
    fn check(&self, _cache: &RecordCache) -> Result<bool, StoreError> {
        Ok(self.shared.now_ms() < self.shared.fresh_until.load(Ordering::Acquire))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// A [`PostgresStore`] behind a record cache invalidated by `LISTEN/NOTIFY` (see the module
/// docs for the bound it guarantees).
pub struct CachedPostgres {
    store: CachedStore,
    shared: Arc<Shared>,
}

impl fmt::Debug for CachedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedPostgres").field("store", &self.store).field("live", &self.is_live()).finish()
    }
}

impl CachedPostgres {
    /// Starts the listener thread and returns the cached store.
    pub fn new(store: Arc<PostgresStore>, settings: CacheSettings) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            fresh_until: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            sessions: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
        });
        let cache = Arc::new(RecordCache::with_capacity(settings.capacity));
        let listener = Listener { store: store.clone(), cache: cache.clone(), shared: shared.clone(), settings };
        std::thread::Builder::new()
            .name("keycel-pg-listen".into())
            .spawn(move || listener.run())
            .map_err(|e| StoreError::Backend(format!("cannot start the listener thread: {e}")))?;
        let fresh = Arc::new(Heartbeat { shared: shared.clone() });
        Ok(CachedPostgres { store: CachedStore::new(store, cache, fresh), shared })
    }

    /// True while the cache is trusted (listener connected and heard from within the bound).
    pub fn is_live(&self) -> bool {
        self.shared.now_ms() < self.shared.fresh_until.load(Ordering::Acquire)
    }

    /// Waits until the cache is live (tests, start-up); false on timeout.
    pub fn wait_live(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.is_live() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.is_live()
    }

    /// Listener sessions started so far (1 after start-up; more after reconnects).
    pub fn sessions(&self) -> u64 {
        self.shared.sessions.load(Ordering::Acquire)
    }

    /// Change notifications received so far.
    pub fn notifications(&self) -> u64 {
        self.shared.notifications.load(Ordering::Acquire)
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<RecordCache> {
        self.store.cache()
    }
}

impl Store for CachedPostgres {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.store.get_key(id)
    }
    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.store.get_key_shared(id)
    }
    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        self.store.get_user_shared(id)
    }
    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.store.insert_key(record)
    }
    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        self.store.update_key(record, expected_version)
    }
    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete_key(id)
    }
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.list_keys(filter)
    }
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.store.get_user(id)
    }
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.store.put_user(user)
    }
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.store.remove_user(id)
    }
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.store.list_users()
    }
}

struct Listener {
    store: Arc<PostgresStore>,
    cache: Arc<RecordCache>,
    shared: Arc<Shared>,
    settings: CacheSettings,
}

/// A notification payload: `{"t": "key"|"user", "id": ..., "v": version|null}`.
#[derive(serde::Deserialize)]
struct Change {
    t: String,
    id: String,
}

impl Listener {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        let mut backoff = Duration::from_millis(20);
        while !self.stopped() {
            let before = self.shared.sessions.load(Ordering::Acquire);
            // Any error ends the session: stop trusting the cache until the next one is live.
            let _ = self.session();
            self.shared.fresh_until.store(0, Ordering::Release);
            if self.shared.sessions.load(Ordering::Acquire) != before {
                backoff = Duration::from_millis(20);
            }
            let end = Instant::now() + backoff;
            while Instant::now() < end && !self.stopped() {
                std::thread::sleep(Duration::from_millis(10));
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn apply(&self, payload: &str) {
        self.shared.notifications.fetch_add(1, Ordering::AcqRel);
        match serde_json::from_str::<Change>(payload) {
            Ok(c) if c.t == "key" => self.cache.evict_key(&c.id),
            Ok(c) if c.t == "user" => self.cache.evict_user(&c.id),
            // Unreadable: forget everything rather than guess.
            _ => self.cache.clear(),
        }
    }

    /// Applies whatever notifications have arrived, without waiting.
    fn drain(&self, client: &mut Client) -> Result<(), postgres::Error> {
        let mut notes = client.notifications();
        let mut it = notes.iter();
        while let Some(n) = it.next()? {
            self.apply(n.payload());
        }
        Ok(())
    }

    fn session(&self) -> Result<(), StoreError> {
        let mut config = self.store.config().clone();
        config.connect_timeout(self.settings.bound.max(Duration::from_secs(1)));
        let mut client = config.connect(NoTls).map_err(|e| StoreError::Backend(e.to_string()))?;
        let pg = |e: postgres::Error| StoreError::Backend(e.to_string());
        // LISTEN first, then reconcile: a change after this point is notified, one before it
        // shows in the reconciliation read.
        client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(pg)?;
        self.reconcile()?;
        self.shared.sessions.fetch_add(1, Ordering::AcqRel);
        while !self.stopped() {
            let sent = self.shared.now_ms();
            client.simple_query("SELECT 1").map_err(pg)?;
            self.drain(&mut client).map_err(pg)?;
            let bound = u64::try_from(self.settings.bound.as_millis()).unwrap_or(u64::MAX);
            self.shared.fresh_until.store(sent.saturating_add(bound), Ordering::Release);
            let end = Instant::now() + self.settings.heartbeat;
            loop {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stopped() {
                    break;
                }
                match client.notifications().timeout_iter(left).next().map_err(pg)? {
                    Some(n) => self.apply(n.payload()),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Drops every held record that differs from the database now.
    fn reconcile(&self) -> Result<(), StoreError> {
        let (keys, users) = self.cache.snapshot();
        if keys.is_empty() && users.is_empty() {
            return Ok(());
        }
        let key_ids: Vec<String> = keys.iter().map(|k| k.id.as_str().to_string()).collect();
        let user_ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let current_keys = self.store.keys_by_ids(&key_ids)?;
        let current_users = self.store.users_by_ids(&user_ids)?;
        self.cache.reconcile(&current_keys, &current_users);
        Ok(())
    }
}
