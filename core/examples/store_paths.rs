//! `authorize` (verified-secret cache hit) N times over one store, for instruction counts that
//! a busy machine cannot blur (issue 14: the cached SQLite store against `MemoryStore`):
//!
//! `perf stat -e instructions:u,instructions:k target/release/examples/store_paths MODE 100000`
//! or `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' ...`
//!
//! MODE: `memory`; `sqlite_cached` (the record cache, `-shm` header check); `sqlite_dv` (the
//! record cache with `PRAGMA data_version` on every lookup, as before the header check);
//! `sqlite_uncached`.
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::sqlite::SqliteStore;
use keycel::store::{CachedStore, Freshness, MemoryStore, RecordCache, Store, StoreError};
use keycel::time::Timestamp;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The check before the `-shm` header: `PRAGMA data_version` on every lookup.
#[derive(Debug)]
struct EveryLookup {
    store: Arc<SqliteStore>,
    seen: AtomicI64,
}

impl Freshness for EveryLookup {
    fn check(&self, cache: &RecordCache) -> Result<bool, StoreError> {
        let now = self.store.data_version()?;
        if self.seen.swap(now, Ordering::AcqRel) != now {
            cache.clear();
        }
        Ok(true)
    }
}

#[inline(never)]
fn measured(
    engine: &Engine,
    headers: [(&str, &str); 2],
    req: &Request,
    store: &Arc<dyn Store>,
    now: Timestamp,
    n: usize,
) {
    for _ in 0..n {
        black_box(engine.authorize(black_box(headers), black_box(req), store, now));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("memory", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let now = Timestamp::from_unix(1_795_000_000).ok_or("time")?;
    let policy = keycel::policy::PolicySet::default_policy()?;
    let mut auth = keycel::engine::auth_config_for(&policy)?;
    auth.hash = HashPolicy::with_params(HashParams::EDGE)?;
    let engine = Engine::with_config(policy, auth, None)?;
    let dir = std::env::temp_dir().join(format!("keycel-store-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = || SqliteStore::create(dir.join("keys.db")).map(Arc::new);
    let store: Arc<dyn Store> = match mode {
        "memory" => Arc::new(MemoryStore::new()),
        "sqlite_cached" => Arc::new(keycel::sqlite::cached(file()?)?),
        "sqlite_dv" => {
            let s = file()?;
            let fresh = Arc::new(EveryLookup { seen: AtomicI64::new(s.data_version()?), store: s.clone() });
            Arc::new(CachedStore::new(s, Arc::new(RecordCache::default()), fresh))
        }
        "sqlite_uncached" => file()?,
        other => return Err(format!("unknown mode {other}").into()),
    };
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE)?)?;
    let mut nk = NewKey::api("bench", "integration");
    nk.accounts = keycel::record::AccountScope::parse_list("acc_1,acc_2,acc_3")?;
    let (_, key) = ring.create(&Actor::Operator("bench".into()), nk, now)?;
    let bearer = format!("Bearer {}", key.token().expose());
    let headers = [("accept", "application/json"), ("authorization", bearer.as_str())];
    let req = Request::new("api.read").account("acc_2").method("GET").path("/v1/data").ip("203.0.113.7");
    if !engine.authorize(headers, &req, &store, now).decision.allowed {
        return Err("the bench key was refused".into());
    }
    let t = std::time::Instant::now();
    measured(&engine, headers, &req, &store, now, n);
    let per = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    println!("{mode}: {n} calls, {per:.0} ns per call (wall clock)");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
