//! Issue 12: "a lease held by a live request never expires". With `lease_ttl = 3s`, ten
//! 10-second requests ran at once on a key limited to 5: the engine reclaimed live leases.
//! Only lost leases are reclaimed; a live holder keeps its slot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Authorization, Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::limiter::LimiterConfig;
use keycel::store::MemoryStore;
use keycel::time::{Duration, Timestamp};
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

fn setup(limiter: LimiterConfig) -> (Engine, Arc<MemoryStore>, Vec<(String, String)>) {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    let engine = Engine::with_config(policy, auth, Some(limiter)).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap();
    let (_, key) = ring
        .create(&Actor::Operator("t".into()), NewKey::api("slow", "integration"), Timestamp::from_unix(0).unwrap())
        .unwrap();
    let headers = vec![("Authorization".to_string(), format!("Bearer {}", key.token().expose()))];
    (engine, store, headers)
}

fn authz(e: &Engine, s: &MemoryStore, h: &[(String, String)], at: i64) -> Authorization {
    let req = Request::new("api.read");
    e.authorize(h.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req, s, Timestamp::from_unix(at).unwrap())
}

/// Ten requests, one starting every second, each running 10 s, on a key limited to 5 with
/// `lease_ttl = 3s`: exactly 5 run at once, never more.
#[test]
fn ten_ten_second_requests_with_a_three_second_ttl_never_exceed_five() {
    let cfg = LimiterConfig { lease_ttl: Duration::from_secs(3), ..LimiterConfig::default() };
    let (engine, store, headers) = setup(cfg);
    let mut running: Vec<(i64, Authorization)> = Vec::new();
    let mut admitted = 0;
    for start in 0..10 {
        running.retain(|(s, _)| start < s + 10); // finished requests drop their lease
        let a = authz(&engine, &store, &headers, start);
        if a.decision.allowed {
            admitted += 1;
            running.push((start, a));
        } else {
            assert_eq!(a.decision.status, 429, "{:?}", a.decision);
        }
        assert!(running.len() <= 5, "{} requests running at {start}s", running.len());
    }
    assert_eq!(admitted, 5);
    assert_eq!(engine.limiter().in_flight(running[0].1.decision.key_id.as_deref().unwrap()), 5);
    drop(running);
    assert_eq!(engine.limiter().total_in_flight(), 0);
}

/// Hosts whose handles can be lost without a drop (WASM) take renewable leases: a holder
/// that renews keeps its slot, one that stops is reclaimed after `lease_ttl`.
#[test]
fn renewable_engine_leases_are_kept_by_renewal_and_lost_without_it() {
    let cfg = LimiterConfig { lease_ttl: Duration::from_secs(3), hold_while_alive: false, ..LimiterConfig::default() };
    let (engine, store, headers) = setup(cfg);
    let mut live: Vec<_> = (0..5).map(|_| authz(&engine, &store, &headers, 0).lease.unwrap()).collect();
    for s in 1..=10 {
        for l in &mut live {
            assert!(l.renew(Timestamp::from_unix(s).unwrap()));
        }
    }
    assert_eq!(authz(&engine, &store, &headers, 10).decision.status, 429, "renewed leases were reclaimed");
    let lost = live.pop().unwrap();
    std::mem::forget(lost);
    for l in &mut live {
        assert!(l.renew(Timestamp::from_unix(12).unwrap()));
    }
    assert_eq!(authz(&engine, &store, &headers, 12).decision.status, 429, "lost before its deadline (13s)");
    assert!(authz(&engine, &store, &headers, 14).decision.allowed, "the lost lease was not reclaimed");
}
