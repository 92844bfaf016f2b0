//! Issue 13: rate limits and usage credits per key, through the engine, over process-local
//! and SQLite admission, and held to the delegation rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::admission::{Admission, CreditGrant, LocalAdmission, RateLimit, Refill, SqliteAdmission, Ticket};
use keycel::decision::codes;
use keycel::engine::{Authorization, Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::limiter::LimiterConfig;
use keycel::policy::PolicySet;
use keycel::record::KeyRecord;
use keycel::store::MemoryStore;
use keycel::time::{Duration, Timestamp};
use keycel::IssuedKey;
use std::sync::Arc;

mod support;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct World {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    ring: Keyring,
    now: Timestamp,
}

fn engine_for(policy: PolicySet) -> Engine {
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    Engine::with_config(policy, auth, None).unwrap()
}

fn world_over(engine: Engine) -> World {
    let engine = Arc::new(engine);
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(CHEAP).unwrap())
        .unwrap()
        .with_guard(engine.clone());
    World { engine, store, ring, now: Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap() }
}

fn world() -> World {
    world_over(engine_for(PolicySet::default_policy().unwrap()))
}

fn op() -> Actor {
    Actor::Operator("test".into())
}

fn rate(limit: u32, per: i64, burst: u32) -> RateLimit {
    RateLimit::new(limit, Duration::from_secs(per), burst).unwrap()
}

fn credits(remaining: u64, refill: Option<(u64, i64)>) -> CreditGrant {
    CreditGrant {
        remaining,
        refill: refill.map(|(amount, secs)| Refill { amount, interval: Duration::from_secs(secs) }),
        set_at: Timestamp::from_unix(0).unwrap(),
    }
}

impl World {
    fn key(&self, rl: Option<RateLimit>, cr: Option<CreditGrant>) -> (KeyRecord, IssuedKey) {
        let nk = NewKey { rate_limit: rl, credits: cr, ..NewKey::api("k", "admin") };
        self.ring.create(&op(), nk, self.now).unwrap()
    }

    fn call(&self, token: &IssuedKey, cost: u32, at: Timestamp) -> Authorization {
        let h = [("Authorization".to_string(), format!("Bearer {}", token.token().expose()))];
        let req = Request::new("api.read").cost(cost);
        self.engine.authorize(h.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req, self.store.as_ref(), at)
    }

    fn actor(&self, key: &KeyRecord) -> Actor {
        Actor::Key { key: Box::new(key.clone()), user: None }
    }
}

fn at(w: &World, secs: i64) -> Timestamp {
    w.now.plus(Duration::from_secs(secs))
}

fn code(a: &Authorization) -> Option<&str> {
    a.decision.code.as_deref()
}

/// Rate limit: a burst, then 429 `rate_limited` with Retry-After and the IETF fields; the
/// allowed decisions carry `RateLimit` too.
fn rate_limit_scenario(w: &World) {
    let (_, t) = w.key(Some(rate(2, 10, 2)), None); // T = 5 s, 2 at once
    let a = w.call(&t, 1, w.now);
    assert!(a.decision.allowed);
    assert_eq!(a.decision.header("RateLimit-Policy"), Some("\"default\";q=2;w=10"));
    assert_eq!(a.decision.header("RateLimit"), Some("\"default\";r=1;t=5"));
    let status = a.lease.as_ref().unwrap().budget().unwrap().rate.unwrap();
    assert_eq!(status.remaining, 1);
    drop(a);
    assert!(w.call(&t, 1, w.now).decision.allowed);
    let d = w.call(&t, 1, w.now);
    assert_eq!((d.decision.status, code(&d)), (429, Some(codes::RATE_LIMITED)));
    assert!(d.lease.is_none());
    assert_eq!(d.decision.header("Retry-After"), Some("5"));
    assert_eq!(d.decision.header("RateLimit"), Some("\"default\";r=0;t=10"));
    assert!(w.call(&t, 1, at(w, 5)).decision.allowed, "one interval later");
}

/// Credits: spent by cost, refused with `usage_exceeded` when fewer are left than the cost;
/// a refusal spends nothing, and a rate refusal spends no credits.
fn credits_scenario(w: &World) {
    let (k, t) = w.key(None, Some(credits(5, None)));
    let grant = k.credits.unwrap();
    assert!(w.call(&t, 3, w.now).decision.allowed);
    let d = w.call(&t, 3, w.now);
    assert_eq!((d.decision.status, code(&d)), (429, Some(codes::USAGE_EXCEEDED)));
    assert_eq!(d.decision.header("Retry-After"), None, "no refill: no retry time");
    assert_eq!(w.engine.admission().usage(k.id.as_str(), &grant, w.now).unwrap(), 2, "the refusal spent nothing");
    let a = w.call(&t, 2, w.now);
    assert!(a.decision.allowed);
    assert_eq!(a.lease.as_ref().unwrap().budget().unwrap().credits_remaining, Some(0));
    drop(a);
    assert_eq!(code(&w.call(&t, 1, w.now)), Some(codes::USAGE_EXCEEDED));
    assert_eq!(w.engine.admission().usage(k.id.as_str(), &grant, w.now).unwrap(), 0);

    // Both: a rate refusal consumes no credits, a credit refusal no rate.
    let (k2, t2) = w.key(Some(rate(1, 60, 1)), Some(credits(10, Some((10, 3600)))));
    let g2 = k2.credits.unwrap();
    assert!(w.call(&t2, 1, w.now).decision.allowed);
    for _ in 0..5 {
        assert_eq!(code(&w.call(&t2, 1, w.now)), Some(codes::RATE_LIMITED));
    }
    assert_eq!(w.engine.admission().usage(k2.id.as_str(), &g2, w.now).unwrap(), 9);
    let d = w.call(&t2, 20, at(w, 60));
    assert_eq!(code(&d), Some(codes::USAGE_EXCEEDED));
    assert_eq!(d.decision.header("Retry-After"), Some("3540"), "the next refill");
    assert!(w.call(&t2, 1, at(w, 60)).decision.allowed, "the credit refusal took no rate");
    // The refill: back to `amount` at the boundary.
    assert_eq!(w.engine.admission().usage(k2.id.as_str(), &g2, at(w, 3600)).unwrap(), 10);
}

/// Concurrency comes first: a busy key answers 429 `too_many_requests` and spends nothing.
fn concurrency_first_scenario(w: &World) {
    let (k, t) = w.key(None, Some(credits(3, None)));
    w.ring.update(&op(), k.id.as_str(), Change::SetMaxConcurrent(Some(1)), w.now).unwrap();
    let held = w.call(&t, 1, w.now);
    assert!(held.decision.allowed);
    assert_eq!(code(&w.call(&t, 1, w.now)), Some(codes::TOO_MANY_REQUESTS));
    drop(held);
    let k = w.ring.get(&op(), k.id.as_str(), w.now).unwrap();
    assert_eq!(w.engine.admission().usage(k.id.as_str(), &k.credits.unwrap(), w.now).unwrap(), 2);
}

#[test]
fn local_admission_rate_limits_and_credits() {
    let w = world();
    rate_limit_scenario(&w);
    credits_scenario(&w);
    concurrency_first_scenario(&w);
}

/// A fresh directory (removed when dropped) and the database file in it.
fn temp_db(name: &str) -> (support::TempDir, std::path::PathBuf) {
    let dir = support::TempDir::new(&format!("budgets-{name}"));
    let file = dir.join("keys.db");
    (dir, file)
}

#[test]
fn sqlite_admission_rate_limits_and_credits() {
    let (_dir, file) = temp_db("engine");
    let adm = SqliteAdmission::open(&file, LimiterConfig::default()).unwrap();
    let w = world_over(engine_for(PolicySet::default_policy().unwrap()).with_admission(Arc::new(adm)));
    rate_limit_scenario(&w);
    credits_scenario(&w);
    concurrency_first_scenario(&w);
}

/// The credit count lives in the file: a new process (a new admission handle) continues it.
#[test]
fn sqlite_credits_survive_a_restart() {
    let (_dir, file) = temp_db("restart");
    let grant = credits(4, None);
    let now = Timestamp::from_unix(1_000).unwrap();
    let ticket = Ticket { credits: Some(grant), cost: 3, ..Ticket::new("kc_a", None) };
    {
        let first = SqliteAdmission::open(&file, LimiterConfig::default()).unwrap();
        drop(first.admit(&ticket, now).unwrap());
        assert_eq!(first.usage("kc_a", &grant, now).unwrap(), 1);
    }
    let second = SqliteAdmission::open(&file, LimiterConfig::default()).unwrap();
    assert_eq!(second.usage("kc_a", &grant, now).unwrap(), 1);
    assert!(second.admit(&ticket, now).is_err(), "spent credits came back after a restart");
    let local = LocalAdmission::default();
    assert_eq!(local.usage("kc_a", &grant, now).unwrap(), 4, "local admission counts in memory only");
}

/// Credits never go below zero with 8 threads over two handles on one file: exactly the
/// grant is admitted.
#[test]
fn sqlite_credits_never_go_below_zero_under_contention() {
    let (_dir, file) = temp_db("race");
    let handles: Vec<_> = (0..2).map(|_| SqliteAdmission::open(&file, LimiterConfig::default()).unwrap()).collect();
    let grant = credits(100, None);
    let now = Timestamp::from_unix(1_000).unwrap();
    let admitted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..8 {
            let h = &handles[i % 2];
            let admitted = &admitted;
            s.spawn(move || {
                let ticket = Ticket { credits: Some(grant), cost: 1, ..Ticket::new("kc_race", Some(1_000)) };
                for _ in 0..40 {
                    if h.admit(&ticket, now).is_ok() {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 100);
    assert_eq!(handles[0].usage("kc_race", &grant, now).unwrap(), 0);
}

/// `[defaults.rate_limit]` applies to keys without their own; `explain` shows the effective
/// budget.
#[test]
fn policy_default_rate_limit_applies_and_is_explained() {
    let src = format!("{}\n", keycel::policy::DEFAULT_POLICY)
        .replace("[defaults]", "[defaults]\nrate_limit = { limit = 1, per = \"1m\", burst = 1 }");
    let w = world_over(engine_for(PolicySet::from_toml_str(&src, "test.toml").unwrap()));
    let (k, t) = w.key(None, None);
    assert!(w.call(&t, 1, w.now).decision.allowed);
    assert_eq!(code(&w.call(&t, 1, w.now)), Some(codes::RATE_LIMITED));
    let a = w.engine.explain(&k, None, w.now).unwrap();
    assert_eq!(a.rate_limit, Some(rate(1, 60, 1)));
    let (own, _) = w.key(Some(rate(5, 60, 5)), None);
    assert_eq!(w.engine.explain(&own, None, w.now).unwrap().rate_limit, Some(rate(5, 60, 5)));
    let bad =
        keycel::policy::DEFAULT_POLICY.replace("[defaults]", "[defaults]\nrate_limit = { limit = 0, per = \"1m\" }");
    assert!(PolicySet::from_toml_str(&bad, "bad.toml").map(engine_for).is_err());
}

fn refused(r: Result<impl std::fmt::Debug, KeyringError>) -> String {
    match r {
        Err(KeyringError::Denied(d)) => {
            assert_eq!(d.code.as_deref(), Some(codes::EXCEEDS_ACTOR), "{}", d.reason);
            d.reason
        }
        other => panic!("expected exceeds_actor, got {other:?}"),
    }
}

/// Delegation: a key never grants a looser rate limit than its own; one test per attempt.
#[test]
fn delegated_rate_limits_never_loosen() {
    let w = world();
    let (me, _) = w.key(Some(rate(100, 60, 10)), None);
    let me = w.actor(&me);
    let with = |rl: Option<RateLimit>| NewKey { rate_limit: rl, ..NewKey::api("child", "reader") };
    // No limit is looser than any limit.
    assert!(refused(w.ring.create(&me, with(None), w.now)).contains("rate limit"));
    // A higher rate per time, also in other units (2 per second > 100 per minute).
    refused(w.ring.create(&me, with(Some(rate(101, 60, 10))), w.now));
    refused(w.ring.create(&me, with(Some(rate(2, 1, 10))), w.now));
    // A larger burst.
    refused(w.ring.create(&me, with(Some(rate(100, 60, 11))), w.now));
    // Equal or tighter is fine, in any unit (1000 per hour < 100 per minute).
    let (child, _) = w.ring.create(&me, with(Some(rate(100, 60, 10))), w.now).unwrap();
    w.ring.create(&me, with(Some(rate(1000, 3600, 0))), w.now).unwrap();
    // Loosening an existing key (or itself) is refused too; nothing changes.
    refused(w.ring.set_rate_limit(&me, child.id.as_str(), None, w.now));
    refused(w.ring.set_rate_limit(&me, child.id.as_str(), Some(rate(200, 60, 10)), w.now));
    let Actor::Key { key, .. } = &me else { unreachable!() };
    refused(w.ring.set_rate_limit(&me, key.id.as_str(), Some(rate(1000, 60, 10)), w.now));
    assert_eq!(w.ring.get(&op(), child.id.as_str(), w.now).unwrap().rate_limit, Some(rate(100, 60, 10)));
    w.ring.set_rate_limit(&me, child.id.as_str(), Some(rate(10, 60, 1)), w.now).unwrap();
    // An actor without a limit may grant any.
    let (free, _) = w.key(None, None);
    w.ring.create(&w.actor(&free), with(None), w.now).unwrap();
}

/// Delegation: a key never grants looser credits than its own; one test per attempt.
#[test]
fn delegated_credits_never_loosen() {
    let w = world();
    let (me, _) = w.key(None, Some(credits(1000, Some((100, 86_400)))));
    let me = w.actor(&me);
    let with = |c: Option<CreditGrant>| NewKey { credits: c, ..NewKey::api("child", "reader") };
    // Unmetered is looser than metered.
    assert!(refused(w.ring.create(&me, with(None), w.now)).contains("credits"));
    // More credits granted.
    refused(w.ring.create(&me, with(Some(credits(1001, Some((100, 86_400))))), w.now));
    // A faster refill (more per time, also in other units: 10 per hour > 100 per day).
    refused(w.ring.create(&me, with(Some(credits(10, Some((101, 86_400))))), w.now));
    refused(w.ring.create(&me, with(Some(credits(10, Some((10, 3600))))), w.now));
    // Within: fewer credits, a slower or no refill.
    let (child, _) = w.ring.create(&me, with(Some(credits(500, Some((100, 86_400))))), w.now).unwrap();
    w.ring.create(&me, with(Some(credits(1000, None))), w.now).unwrap();
    w.ring.create(&me, with(Some(credits(1, Some((1, 86_400))))), w.now).unwrap();
    // Reshaping an existing key.
    refused(w.ring.set_credits(&me, child.id.as_str(), None, None, w.now));
    refused(w.ring.set_credits(&me, child.id.as_str(), Some(5000), None, w.now));
    w.ring.set_credits(&me, child.id.as_str(), Some(10), None, w.now).unwrap();

    // An actor whose credits do not refill cannot grant refilling ones.
    let (fixed, _) = w.key(None, Some(credits(1000, None)));
    let r = refused(w.ring.create(&w.actor(&fixed), with(Some(credits(1, Some((1, 86_400))))), w.now));
    assert!(r.contains("refill"), "{r}");
}

/// Setting credits again starts a new count, even within the same second; values are
/// validated with field-named errors.
#[test]
fn setting_credits_starts_a_new_count_and_validates() {
    let w = world();
    let (k, t) = w.key(None, Some(credits(2, None)));
    assert!(w.call(&t, 2, w.now).decision.allowed);
    assert_eq!(code(&w.call(&t, 1, w.now)), Some(codes::USAGE_EXCEEDED));
    let k2 = w.ring.set_credits(&op(), k.id.as_str(), Some(2), None, w.now).unwrap();
    assert!(k2.credits.unwrap().set_at > k.credits.unwrap().set_at);
    assert!(w.call(&t, 2, w.now).decision.allowed, "a new grant is a new count");
    let bad = Refill { amount: 0, interval: Duration::from_secs(60) };
    match w.ring.set_credits(&op(), k.id.as_str(), Some(2), Some(bad), w.now) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "credits.refill.amount"),
        other => panic!("{other:?}"),
    }
    let bad_rate = RateLimit { limit: 0, per: Duration::from_secs(60), burst: 0 };
    match w.ring.set_rate_limit(&op(), k.id.as_str(), Some(bad_rate), w.now) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "rate_limit.limit"),
        other => panic!("{other:?}"),
    }
    // Record forms carry the fields (storage and public), absent when unset.
    let k3 = w.ring.set_rate_limit(&op(), k.id.as_str(), Some(rate(100, 60, 20)), w.now).unwrap();
    let public = k3.to_public_value();
    assert_eq!(public["rate_limit"], serde_json::json!({"limit": 100, "per": "1m", "burst": 20}));
    assert_eq!(public["credits"]["remaining"], 2);
    assert_eq!(KeyRecord::from_json(&k3.to_storage_json()).unwrap(), k3);
    let (plain, _) = w.key(None, None);
    assert!(plain.to_public_value().get("rate_limit").is_none());
}
