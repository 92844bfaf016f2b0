//! The record cache over a SQLite file: `PRAGMA data_version` on every lookup tells whether any
//! other connection (another process's CLI, another worker) committed since the last look; if
//! so the whole cache is dropped. So a change made anywhere is seen by the next request here,
//! at the cost of one cheap pragma per lookup instead of a row read and a JSON parse.

use super::SqliteStore;
use crate::store::{CachedStore, Freshness, RecordCache, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// [`Freshness`] for SQLite: clears the cache when the file's data version moves.
#[derive(Debug)]
pub struct DataVersion {
    store: Arc<SqliteStore>,
    seen: AtomicI64,
}

impl Freshness for DataVersion {
    fn check(&self, cache: &RecordCache) -> Result<bool, StoreError> {
        let now = self.store.data_version()?;
        // Clear before publishing the new version: whoever sees it already sees an empty cache.
        if self.seen.load(Ordering::Acquire) != now {
            cache.clear();
            self.seen.store(now, Ordering::Release);
        }
        Ok(true)
    }
}

/// `store` behind a record cache invalidated by `PRAGMA data_version`. Changes made through
/// the returned store evict directly (this connection's own commits do not move its data
/// version); changes through other connections clear the cache on the next lookup.
pub fn cached(store: Arc<SqliteStore>) -> Result<CachedStore, StoreError> {
    let seen = AtomicI64::new(store.data_version()?);
    let fresh = Arc::new(DataVersion { store: store.clone(), seen });
    Ok(CachedStore::new(store, Arc::new(RecordCache::default()), fresh))
}
