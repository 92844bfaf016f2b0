//! `authorize` (verified-secret cache hit) over MemoryStore, the cached SQLite store and the
//! cached PostgreSQL store, in one run so the ratios are fair. Target: cached stores within
//! 1.3x of MemoryStore. Starts its own PostgreSQL (tests/servers/postgres.sh).
//! `cargo bench -p keycel-postgres --bench cached_authorize`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::policy::PolicySet;
use keycel::store::{MemoryStore, Store};
use keycel::time::Timestamp;
use keycel_postgres::{CacheSettings, CachedPostgres, PostgresStore};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn benches(c: &mut Criterion) {
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let policy = PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(HashParams::EDGE).unwrap();
    let engine = Engine::with_config(policy, auth, None).unwrap();
    let req = Request::new("api.read").account("acc_2").method("GET").path("/v1/data").ip("203.0.113.7");

    let cluster = common::Cluster::start();
    let dsn = cluster.database();
    let dir = std::env::temp_dir().join(format!("keycel-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Arc::new(keycel::sqlite::SqliteStore::create(dir.join("keys.db")).unwrap());
    let pg = Arc::new(PostgresStore::connect(&dsn).unwrap());

    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite_uncached", sqlite.clone()),
        ("sqlite_cached", Arc::new(keycel::sqlite::cached(sqlite).unwrap())),
        ("postgres_uncached", pg.clone()),
        ("postgres_cached", {
            let c = CachedPostgres::new(pg, CacheSettings::default()).unwrap();
            assert!(c.wait_live(Duration::from_secs(10)));
            Arc::new(c)
        }),
    ];
    let mut g = c.benchmark_group("authorize_over_store");
    for (name, store) in &stores {
        let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE).unwrap()).unwrap();
        let mut nk = NewKey::api(&format!("bench {name}"), "integration");
        nk.accounts = keycel::record::AccountScope::parse_list("acc_1,acc_2,acc_3").unwrap();
        let (_, key) = ring.create(&Actor::Operator("bench".into()), nk, now).unwrap();
        let bearer = format!("Bearer {}", key.token().expose());
        let headers = [("accept", "application/json"), ("authorization", bearer.as_str())];
        assert!(engine.authorize(headers, &req, store, now).decision.allowed);
        g.bench_function(*name, |b| b.iter(|| engine.authorize(black_box(headers), black_box(&req), store, now)));
    }
    g.finish();
    drop(stores);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(cached_authorize, benches);
criterion_main!(cached_authorize);
