//! Admission cost per backend (issue 13), measured in one run so the ratios mean something:
//! today's lease (the limiter alone), process-local admission, SQLite admission (a file in
//! WAL mode), and the whole `authorize` (headers, cache hit, default policy) with each.
//! `cargo bench -p keycel --features sqlite --bench admission`. Redis: `backends/redis/benches`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion};
use keycel::admission::{Admission, LocalAdmission, SqliteAdmission, Ticket};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::limiter::{Limiter, LimiterConfig};
use keycel::store::MemoryStore;
use keycel::time::Timestamp;
use std::hint::black_box;
use std::sync::Arc;

fn engine() -> Engine {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(HashParams::EDGE).unwrap();
    Engine::with_config(policy, auth, None).unwrap()
}

fn benches(c: &mut Criterion) {
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let dir = std::env::temp_dir().join(format!("keycel-bench-admission-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.db");
    let sqlite = Arc::new(SqliteAdmission::open(&file, LimiterConfig::default()).unwrap());
    let local = LocalAdmission::default();
    let limiter = Limiter::default();
    let ticket = Ticket::new("kc_0123456789abcdef", None);

    let mut g = c.benchmark_group("admission_acquire_release");
    g.bench_function("lease_limiter_only", |b| {
        b.iter(|| drop(limiter.acquire_configured(black_box("kc_0123456789abcdef"), None, now).unwrap()))
    });
    g.bench_function("local", |b| b.iter(|| drop(local.admit(black_box(&ticket), now).unwrap())));
    g.bench_function("sqlite", |b| b.iter(|| drop(sqlite.admit(black_box(&ticket), now).unwrap())));
    g.finish();

    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE).unwrap()).unwrap();
    let (_, key) = ring.create(&Actor::Operator("bench".into()), NewKey::api("bench", "integration"), now).unwrap();
    let bearer = format!("Bearer {}", key.token().expose());
    let headers = [("accept", "application/json"), ("authorization", bearer.as_str())];
    let req = Request::new("api.read").account("acc_2").method("GET").path("/v1/data");
    let engines = [("local", engine()), ("sqlite", engine().with_admission(sqlite.clone()))];
    let mut g = c.benchmark_group("authorize_cached_with_admission");
    for (name, e) in &engines {
        assert!(e.authorize(headers, &req, store.as_ref(), now).decision.allowed);
        g.bench_function(*name, |b| b.iter(|| e.authorize(black_box(headers), black_box(&req), store.as_ref(), now)));
    }
    g.finish();
    drop(engines);
    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(admission, benches);
criterion_main!(admission);
