//! The two-step authorize API (issue 12): `authorize_step` decides everything that needs no
//! argon2 and hands back the rest as a `PendingAuth`; `authorize` is the two in a row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Authorization, Engine, PendingAuth, Request, Step};
use keycel::gate::GateConfig;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::store::{MemoryStore, Store};
use keycel::time::Timestamp;
use keycel::Secret;
use std::sync::Arc;
use std::time::Duration as StdDuration;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    ring: Keyring,
    now: Timestamp,
}

fn world(gate: GateConfig) -> World {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    auth.gate = gate;
    let engine = Engine::with_config(policy, auth, None).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring =
        Keyring::new(store.clone() as Arc<dyn Store>).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap();
    World { engine, store, ring, now: Timestamp::parse_rfc3339("2026-12-01T06:00:00Z").unwrap() }
}

fn bearer(token: &Secret) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {}", token.expose()))]
}

impl World {
    fn step(&self, headers: &[(String, String)], req: &Request) -> Step {
        self.engine.authorize_step(
            headers.iter().map(|(a, b)| (a.as_str(), b.as_str())),
            req,
            self.store.as_ref(),
            self.now,
        )
    }
    fn key(&self) -> Secret {
        self.key_with_record().1
    }
    fn key_with_record(&self) -> (keycel::KeyRecord, Secret) {
        let (rec, key) =
            self.ring.create(&Actor::Operator("t".into()), NewKey::api("k", "integration"), self.now).unwrap();
        (rec, key.token())
    }
}

fn decided(s: Step) -> Authorization {
    match s {
        Step::Decided(a) => a,
        Step::NeedsHash(p) => panic!("argon2 was still owed for {}", p.client_id()),
    }
}

fn pending(s: Step) -> PendingAuth {
    match s {
        Step::NeedsHash(p) => p,
        Step::Decided(a) => panic!("decided without argon2: {:?}", a.decision),
    }
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn first_use_needs_a_hash_then_the_cache_decides_in_the_step() {
    let w = world(GateConfig::default());
    let token = w.key();
    let req = Request::new("api.read");
    let p = pending(w.step(&bearer(&token), &req));
    assert_send_static(&p);
    assert!(!format!("{p:?}").contains(token.expose()), "Debug shows the secret");
    let a = p.finish(&w.engine, w.now);
    assert!(a.decision.allowed, "{:?}", a.decision);
    assert!(a.lease.is_some() && a.key.is_some());
    assert!(!a.authenticated.as_ref().unwrap().cache_hit);
    drop(a);
    // Now cached: decided in the step, with its lease, never touching argon2.
    let a = decided(w.step(&bearer(&token), &req));
    assert!(a.decision.allowed && a.lease.is_some() && a.key.is_some());
    assert!(a.authenticated.unwrap().cache_hit);
    // Denials after a hit are decided there too (scope: 403).
    let a = decided(w.step(&bearer(&token), &Request::new("keys.create.api")));
    assert_eq!(a.decision.status, 403);
}

#[test]
fn cheap_failures_decide_in_the_step_and_expensive_ones_wait() {
    let w = world(GateConfig::default());
    let req = Request::new("api.read");
    // No credentials, a broken token, two methods at once: no argon2 anywhere.
    assert_eq!(decided(w.step(&[], &req)).decision.status, 401);
    let broken = vec![("authorization".to_string(), "Bearer kc_nope".to_string())];
    assert_eq!(decided(w.step(&broken, &req)).decision.status, 401);
    // An unknown id (valid checksum) owes the dummy computation: it is pending, then 401.
    let forged = keycel::TokenFormat::default().issue(&mut getrandom::SysRng).unwrap().token();
    let a = pending(w.step(&bearer(&forged), &req)).finish(&w.engine, w.now);
    assert_eq!(a.decision.status, 401);
    assert_eq!(a.decision.code.as_deref(), Some("invalid_token"));
    assert!(a.key.is_none() && a.lease.is_none());
}

/// `finish` goes through the argon2 gate: a full gate answers 503 `overloaded` (the step
/// itself never waits for it).
#[test]
fn finish_answers_503_when_the_gate_stays_full() {
    let w = world(GateConfig { max_concurrent: 1, max_wait: StdDuration::from_millis(5) });
    let token = w.key();
    let p = pending(w.step(&bearer(&token), &Request::new("api.read")));
    let held = w.engine.authenticator().gate().enter().unwrap();
    let a = p.finish(&w.engine, w.now);
    assert_eq!(a.decision.status, 503);
    assert_eq!(a.decision.header("retry-after"), Some("1"));
    drop(held);
    // The step still answers while the gate is full, and the key works once it frees.
    let a = pending(w.step(&bearer(&token), &Request::new("api.read"))).finish(&w.engine, w.now);
    assert!(a.decision.allowed);
}

/// `authorize` is exactly step + finish: the same decisions for every kind of request.
#[test]
fn authorize_equals_step_then_finish() {
    let a = world(GateConfig::default());
    let b = world(GateConfig::default());
    let (rec, token) = a.key_with_record();
    b.store.insert_key(&rec).unwrap();
    let forged = keycel::TokenFormat::default().issue(&mut getrandom::SysRng).unwrap().token();
    for headers in [bearer(&token), bearer(&token), bearer(&forged), vec![]] {
        for req in [Request::new("api.read"), Request::new("keys.create.api"), Request::new("api.read").account("acc")]
        {
            let one = a.engine.authorize(
                headers.iter().map(|(x, y)| (x.as_str(), y.as_str())),
                &req,
                a.store.as_ref(),
                a.now,
            );
            let two = match b.step(&headers, &req) {
                Step::Decided(d) => d,
                Step::NeedsHash(p) => p.finish(&b.engine, b.now),
            };
            assert_eq!(one.decision, two.decision);
            assert_eq!(one.lease.is_some(), two.lease.is_some());
            assert_eq!(one.key.is_some(), two.key.is_some());
        }
    }
}
