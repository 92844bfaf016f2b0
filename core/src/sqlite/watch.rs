//! The record cache over a SQLite file: every lookup first learns whether any other
//! connection (another process's CLI, the `sqlite3` shell, another worker) changed a record
//! since the last look; if so the whole cache is dropped. So a change made anywhere is seen by
//! the next request here, while commits that touch no record (SQLite admission's leases and
//! budgets, in the same file) leave the cache alone.
//!
//! How it learns, cheapest first:
//! - WAL mode (every file `SqliteStore` opens): the wal-index header at the start of the
//!   `-shm` file, read lock-free from a read-only map ([`super::shm`]). Every commit by any
//!   connection rewrites it (`iChange` is incremented), so an equal header means nothing was
//!   committed: no lock, no syscall. Any difference (or a torn read while a commit rewrites
//!   it) sends the lookup to the exact check below, as does a header not seen yet.
//! - the record generation (exact, one indexed read, ~7 µs: it starts a read transaction): a
//!   counter that triggers on the `keys` and `users` tables bump in the same transaction as
//!   the change (schema migration 2), so it moves for every record change by any writer and for
//!   nothing else. Read after a header change, and on every lookup when there is no `-shm` to
//!   map (in-memory databases), or once the `-shm` file is found replaced (checked every
//!   [`STAT_EVERY`]).
//!
//! Why an unchanged header proves nothing changed: SQLite writes the header (both copies) in
//! shared memory before a commit returns, and increments `iChange` on every commit; the store's
//! own connection stays open, holding SQLite's shared locks, so no SQLite process can
//! re-initialise the `-shm` file or take the database out of WAL mode meanwhile.

use super::shm::{self, Header, ShmHeader, WORDS};
use super::SqliteStore;
use crate::store::{CachedStore, Freshness, RecordCache, StoreError};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the `-shm` file's identity (device, inode) is re-checked. A replaced `-shm` file
/// (deleted by hand: SQLite documents that as corruption) switches the watch to
/// the exact check on every lookup for good.
pub const STAT_EVERY: Duration = Duration::from_secs(1);

/// [`Freshness`] for SQLite: clears the cache when another connection committed (see the
/// module docs for how that is learnt cheaply).
#[derive(Debug)]
pub struct DataVersion {
    store: Arc<SqliteStore>,
    /// The record generation at the last exact check.
    seen: AtomicI64,
    /// The map of the `-shm` header; None: the exact check on every lookup.
    shm: Option<ShmHeader>,
    /// The header read just before the last exact check, word by word. A mix of two checked
    /// headers (threads storing at once) can only cause an extra check: `iChange` differs
    /// between any two headers with a commit between them.
    seen_header: [AtomicU32; WORDS],
    /// `seen_header` holds a checked header.
    primed: AtomicBool,
    /// The `-shm` file was replaced: stop trusting the map.
    degraded: AtomicBool,
    base: Instant,
    next_stat_ms: AtomicU64,
    exact_checks: AtomicU64,
}

impl DataVersion {
    /// Watches `store`'s file (mapping its `-shm` header when it has one).
    pub fn new(store: Arc<SqliteStore>) -> Result<Self, StoreError> {
        // A read first: it makes the connection open (and hold) the `-shm` file in WAL mode.
        let seen = AtomicI64::new(store.record_generation()?);
        let shm = store.path().and_then(|p| ShmHeader::open(&shm::shm_path(p)));
        let watch = DataVersion {
            store,
            seen,
            shm,
            seen_header: Default::default(),
            primed: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            base: Instant::now(),
            next_stat_ms: AtomicU64::new(0),
            exact_checks: AtomicU64::new(0),
        };
        Ok(watch)
    }

    /// True when lookups are answered from the `-shm` header (false: the exact check on every
    /// lookup).
    pub fn uses_shm(&self) -> bool {
        self.shm.is_some() && !self.degraded.load(Ordering::Acquire)
    }

    /// Exact checks (record generation reads) made so far (tests, metrics: a quiet database costs none).
    pub fn exact_checks(&self) -> u64 {
        self.exact_checks.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The current header, or None when the lookup must make the exact check.
    fn header(&self) -> Option<Header> {
        let shm = self.shm.as_ref()?;
        if self.degraded.load(Ordering::Acquire) {
            return None;
        }
        let now = self.now_ms();
        if now >= self.next_stat_ms.load(Ordering::Relaxed) {
            self.next_stat_ms.store(now.saturating_add(stat_every_ms()), Ordering::Relaxed);
            if !shm.same_file() {
                self.degraded.store(true, Ordering::Release);
                return None;
            }
        }
        shm.read()
    }

    fn unchanged(&self, h: &Header) -> bool {
        self.primed.load(Ordering::Acquire)
            && self.seen_header.iter().zip(h).all(|(seen, w)| seen.load(Ordering::Acquire) == *w)
    }

    /// The exact check; `header` (read before it) becomes the reference for the next lookups.
    fn revalidate(&self, cache: &RecordCache, header: Option<Header>) -> Result<(), StoreError> {
        self.exact_checks.fetch_add(1, Ordering::AcqRel);
        let now = self.store.record_generation()?;
        // Clear before publishing the new version: whoever sees it already sees an empty cache.
        if self.seen.load(Ordering::Acquire) != now {
            cache.clear();
            self.seen.store(now, Ordering::Release);
        }
        if let Some(h) = header {
            for (seen, w) in self.seen_header.iter().zip(h) {
                seen.store(w, Ordering::Release);
            }
            self.primed.store(true, Ordering::Release);
        }
        Ok(())
    }
}

fn stat_every_ms() -> u64 {
    u64::try_from(STAT_EVERY.as_millis()).unwrap_or(u64::MAX)
}

impl Freshness for DataVersion {
    fn check(&self, cache: &RecordCache) -> Result<bool, StoreError> {
        let header = self.header();
        if header.as_ref().is_some_and(|h| self.unchanged(h)) {
            return Ok(true);
        }
        self.revalidate(cache, header)?;
        Ok(true)
    }
}

/// `store` behind a record cache invalidated as the module docs say. Changes made through
/// the returned store evict directly (this connection's own commits do not move its data
/// version); changes through other connections clear the cache on the next lookup.
pub fn cached(store: Arc<SqliteStore>) -> Result<CachedStore, StoreError> {
    let watch = Arc::new(DataVersion::new(store.clone())?);
    Ok(cached_with(store, watch))
}

/// [`cached`] with a watch the caller keeps (to read [`DataVersion::exact_checks`]).
pub fn cached_with(store: Arc<SqliteStore>, watch: Arc<DataVersion>) -> CachedStore {
    CachedStore::new(store, Arc::new(RecordCache::default()), watch)
}
