//! Hash upgrades on use (`Engine(rehash_on_use=True)`): core claims at most one upgrade per
//! key and says what to write ([`PendingRehash`]); this runs it on its own thread after the
//! request, so neither the caller nor the event loop pays for the extra argon2, and lets
//! `wait_for_rehashes()` join what was started.

use keycel::rehash::PendingRehash;
use keycel::store::Store;
use keycel::time::Timestamp;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The store upgrades are written to, and the upgrades started so far.
pub(crate) struct Rehasher {
    store: Arc<dyn Store>,
    jobs: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Rehasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rehasher").finish_non_exhaustive()
    }
}

impl Rehasher {
    pub(crate) fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Rehasher { store, jobs: Mutex::new(Vec::new()) })
    }

    fn jobs(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the upgrade core claimed, if any. A failure (store error, version conflict, a
    /// thread that cannot start) only means the old hash stays; never an error for the request.
    pub(crate) fn start(&self, pending: Option<PendingRehash>, now: Timestamp) {
        let Some(pending) = pending else { return };
        let store = Arc::clone(&self.store);
        let job = std::thread::Builder::new().name("keycel-rehash".into()).spawn(move || {
            let _ = pending.apply(store.as_ref(), now);
        });
        if let Ok(handle) = job {
            let mut jobs = self.jobs();
            jobs.retain(|j| !j.is_finished());
            jobs.push(handle);
        }
    }

    /// Takes the upgrades started so far, for the caller to join (GIL released).
    pub(crate) fn take(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.jobs())
    }
}
