//! Policy costs: a decision for an authenticated key under the default policy, the whole
//! `authorize` from headers with a verified-secret cache hit, and a baseline that evaluates
//! the same CEL expression with a freshly built `cel` context (maps rebuilt per request), so
//! the gain of the resolver over the records is visible. `cargo bench -p keycel --bench engine`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use cel::{Context, Program};
use criterion::{criterion_group, criterion_main, Criterion};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::policy::PolicySet;
use keycel::store::MemoryStore;
use keycel::time::Timestamp;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

fn benches(c: &mut Criterion) {
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let policy = PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(HashParams::EDGE).unwrap();
    let engine = Arc::new(Engine::with_config(policy, auth, None).unwrap());
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE).unwrap()).unwrap();
    let mut nk = NewKey::api("bench", "integration");
    nk.accounts = keycel::record::AccountScope::parse_list("acc_1,acc_2,acc_3").unwrap();
    let (rec, key) = ring.create(&Actor::Operator("bench".into()), nk, now).unwrap();
    let req = Request::new("api.read").account("acc_2").method("GET").path("/v1/data").ip("203.0.113.7");

    c.bench_function("decide_default_policy", |b| {
        b.iter(|| engine.decide(black_box(&rec), None, black_box(&req), now))
    });

    let bearer = format!("Bearer {}", key.token().expose());
    let headers = [("accept", "application/json"), ("authorization", bearer.as_str())];
    assert!(engine.authorize(headers, &req, store.as_ref(), now).decision.allowed);
    c.bench_function("authorize_cached_from_headers", |b| {
        b.iter(|| {
            let a = engine.authorize(black_box(headers), black_box(&req), store.as_ref(), now);
            debug_assert!(a.decision.allowed);
            a
        })
    });

    // Baseline: the default policy's two rules as one expression over freshly built maps.
    let program = Program::compile(
        r#"!(request.action.startsWith("admin.") && request.path != null && !request.path.startsWith("/admin/")) && request.action in key.scopes"#,
    )
    .unwrap();
    c.bench_function("baseline_fresh_cel_context", |b| {
        b.iter(|| {
            let mut ctx = Context::default();
            let key: HashMap<&str, cel::Value> = HashMap::from([
                ("id", rec.id.as_str().into()),
                ("name", rec.name.as_str().into()),
                ("role", rec.role.as_str().into()),
                ("kind", "api".into()),
                ("scopes", cel::Value::List(Arc::new(vec!["api.read".into(), "api.write".into()]))),
                ("accounts", cel::Value::List(Arc::new(vec!["acc_1".into(), "acc_2".into(), "acc_3".into()]))),
            ]);
            let request: HashMap<&str, cel::Value> = HashMap::from([
                ("action", req.action.as_str().into()),
                ("account", "acc_2".into()),
                ("method", "GET".into()),
                ("path", "/v1/data".into()),
                ("ip", "203.0.113.7".into()),
            ]);
            ctx.add_variable_from_value("key", key);
            ctx.add_variable_from_value("request", request);
            ctx.add_variable_from_value("now", now.unix());
            program.execute(&ctx).unwrap()
        })
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
