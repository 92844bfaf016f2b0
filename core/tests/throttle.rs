//! Failed authentications are throttled before they cost argon2 (issue 12).
//!
//! "Without hashing" is observed through the step API: a throttled request is `Decided` by
//! `authorize_step`, which never runs argon2 (and the gate counts no computation).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Authorization, Engine, Request, Step};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::policy::PolicySet;
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::{Secret, TokenFormat};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

#[cfg(feature = "sqlite")]
mod support;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    ring: Keyring,
    now: Timestamp,
}

fn world_with(policy_extra: &str) -> World {
    let src = format!(
        "version = 1\n[defaults]\nhash = \"edge\"\n{policy_extra}\n[scopes]\n\"api.read\" = \"r\"\n[roles]\nreader = [\"api.read\"]\n\
         [[rules]]\nid = \"scope\"\neffect = \"allow\"\nactions = [\"*\"]\nwhen = \"has_scope(request.action)\"\n"
    );
    let policy = PolicySet::from_toml_str(&src, "throttle.toml").unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    auth.cache.ttl = Some(Duration::from_secs(60));
    let engine = Engine::with_config(policy, auth, None).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring =
        Keyring::new(store.clone() as Arc<dyn Store>).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap();
    World { engine, store, ring, now: Timestamp::parse_rfc3339("2026-12-01T06:00:00Z").unwrap() }
}

fn world() -> World {
    world_with("")
}

fn bearer(token: &Secret) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {}", token.expose()))]
}

fn forged() -> Secret {
    TokenFormat::default().issue(&mut getrandom::SysRng).unwrap().token()
}

impl World {
    fn key(&self) -> (String, Secret) {
        let (rec, key) = self.ring.create(&Actor::Operator("t".into()), NewKey::api("k", "reader"), self.now).unwrap();
        (rec.id.as_str().to_string(), key.token())
    }
    /// A well-formed token for `id` whose secret is not the key's.
    fn wrong_secret_for(&self, id: &str) -> Secret {
        let f = TokenFormat::default();
        let secret = f.new_secret(&f.parse_client_id(id).unwrap(), &mut getrandom::SysRng).unwrap();
        Secret::new(format!("{id}_{}", secret.expose()))
    }
    /// One request: `(answer, whether argon2 ran)`.
    fn call(&self, headers: &[(String, String)], ip: Option<&str>, at: i64) -> (Authorization, bool) {
        let mut req = Request::new("api.read");
        if let Some(ip) = ip {
            req = req.client_ip(ip);
        }
        let now = Timestamp::from_unix(self.now.unix() + at).unwrap();
        match self.engine.authorize_step(
            headers.iter().map(|(a, b)| (a.as_str(), b.as_str())),
            &req,
            self.store.as_ref(),
            now,
        ) {
            Step::Decided(a) => (a, false),
            Step::NeedsHash(p) => (p.finish(&self.engine, now), true),
        }
    }
}

fn assert_throttled(a: &Authorization, hashed: bool) -> u32 {
    assert!(!hashed, "a throttled request ran argon2");
    assert_eq!(a.decision.status, 429, "{:?}", a.decision);
    assert_eq!(a.decision.code.as_deref(), Some("too_many_failures"));
    assert!(a.decision.key_id.is_none(), "a 429 must not name a key");
    a.decision.header("retry-after").unwrap().parse().unwrap()
}

#[test]
fn an_address_gets_its_budget_of_failures_then_a_cheap_429() {
    let w = world();
    for i in 0..20 {
        let (a, hashed) = w.call(&bearer(&forged()), Some("203.0.113.9"), 0);
        assert!(hashed, "failure {i} should have been verified");
        assert_eq!(a.decision.status, 401);
    }
    let (a, hashed) = w.call(&bearer(&forged()), Some("203.0.113.9"), 0);
    assert_eq!(assert_throttled(&a, hashed), 3, "20 per 60 s: one more every 3 s");
    // Other addresses are unaffected; the address recovers as its window refills.
    let (a, hashed) = w.call(&bearer(&forged()), Some("203.0.113.10"), 0);
    assert!(hashed && a.decision.status == 401);
    let (a, hashed) = w.call(&bearer(&forged()), Some("203.0.113.9"), 3);
    assert!(hashed && a.decision.status == 401);
}

#[test]
fn cached_keys_answer_from_a_throttled_address_and_under_an_attacked_id() {
    let w = world();
    let (id, token) = w.key();
    // The victim's key is used once (cached), then an attacker on the same address (NAT)
    // hammers the victim's client id with wrong secrets until both budgets are spent.
    let (a, hashed) = w.call(&bearer(&token), Some("198.51.100.1"), 0);
    assert!(a.decision.allowed && hashed);
    drop(a);
    let mut throttled = 0;
    for _ in 0..25 {
        let (a, hashed) = w.call(&bearer(&w.wrong_secret_for(&id)), Some("198.51.100.1"), 1);
        if a.decision.status == 429 {
            assert_throttled(&a, hashed);
            throttled += 1;
        }
    }
    assert_eq!(throttled, 15, "the client id's budget (10) is spent first");
    // The cached key still answers, from the same address, without argon2.
    let (a, hashed) = w.call(&bearer(&token), Some("198.51.100.1"), 2);
    assert!(a.decision.allowed && !hashed, "{:?}", a.decision);
    // Another client's failures elsewhere are not held back.
    let (a, hashed) = w.call(&bearer(&forged()), Some("192.0.2.44"), 2);
    assert!(hashed && a.decision.status == 401);
}

/// The trade-off: a correct secret the cache has never seen cannot be told from a guess
/// without hashing, so while its client id is over budget it gets the 429 (never a 401), and
/// works once the budget refills. A secret the cache recognises (verified before, past the
/// TTL) is the right one and passes at once.
#[test]
fn correct_secrets_under_an_attacked_id_uncached_wait_recognised_pass() {
    let w = world();
    let (id, token) = w.key();
    let (first, _) = w.call(&bearer(&token), None, 0);
    assert!(first.decision.allowed);
    drop(first);
    // Past the cache TTL (60 s here) the entry is stale but still recognises the secret; the
    // attack is going on right now.
    for i in 0..30 {
        let _ = w.call(&bearer(&w.wrong_secret_for(&id)), Some(&format!("10.1.0.{i}")), 61);
    }
    let (a, hashed) = w.call(&bearer(&w.wrong_secret_for(&id)), Some("10.1.1.1"), 61);
    assert_throttled(&a, hashed);
    let (a, hashed) = w.call(&bearer(&token), Some("10.9.9.9"), 61);
    assert!(a.decision.allowed && hashed, "recognised secret held back: {:?}", a.decision);
    drop(a);
    // Without any cache entry the same correct secret waits like a guess would.
    w.engine.authenticator().clear_cache();
    for i in 0..30 {
        let _ = w.call(&bearer(&w.wrong_secret_for(&id)), Some(&format!("10.2.0.{i}")), 62);
    }
    let (a, hashed) = w.call(&bearer(&token), Some("10.9.9.9"), 62);
    let retry = assert_throttled(&a, hashed);
    assert!(retry <= 60);
    let (a, _) = w.call(&bearer(&token), Some("10.9.9.9"), 62 + i64::from(retry));
    assert!(a.decision.allowed, "{:?}", a.decision);
}

/// Successes give their charge back: an address that logs in many keys never runs out.
#[test]
fn successes_refund_and_unknown_ids_are_charged_like_known_ones() {
    let w = world_with("[defaults.throttle]\nper_ip = 3\nper_client_id = 2\nwindow = \"60s\"\n");
    for _ in 0..6 {
        let (_, token) = w.key();
        let (a, hashed) = w.call(&bearer(&token), Some("192.0.2.1"), 0);
        assert!(a.decision.allowed && hashed);
    }
    // Unknown and existing ids answer alike once over budget: the 429 says nothing about
    // whether the id exists.
    let (id, _) = w.key();
    let unknown = forged();
    let mut answers = Vec::new();
    for (headers, label) in [(bearer(&w.wrong_secret_for(&id)), "known"), (bearer(&unknown), "unknown")] {
        let mut last = None;
        for n in 0..3 {
            let (a, hashed) = w.call(&headers, Some(&format!("192.0.2.{}{n}", label.len())), 0);
            assert_eq!(hashed, n < 2, "{label} #{n}");
            last = Some(a.decision);
        }
        answers.push(last.unwrap());
    }
    assert_eq!(answers[0].status, 429);
    assert_eq!(answers[0].body_json(), answers[1].body_json());
    assert_eq!(answers[0].headers, answers[1].headers);
}

/// The budget is charged before argon2, so parallel requests cannot overshoot it: 16 threads
/// of one address with a budget of 4 run at most 4 computations.
#[test]
fn concurrent_failures_cannot_overshoot_the_budget() {
    let w = Arc::new(world_with("[defaults.throttle]\nper_ip = 4\n"));
    let hashed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (w, hashed, start) = (w.clone(), hashed.clone(), start.clone());
            std::thread::spawn(move || {
                let headers = bearer(&forged());
                let req = Request::new("api.read").client_ip("2001:db8::1");
                start.wait();
                let step = w.engine.authorize_step(
                    headers.iter().map(|(a, b)| (a.as_str(), b.as_str())),
                    &req,
                    w.store.as_ref(),
                    w.now,
                );
                if let Step::NeedsHash(p) = step {
                    hashed.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(p.finish(&w.engine, w.now).decision.status, 401);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hashed.load(Ordering::SeqCst), 4);
}

/// A pending authentication the host sheds (its pool is full) stays charged, whether its id
/// exists or not: before, every shed attempt was refunded, so a flood that kept the host
/// saturated (all answers 503) never tripped a budget. Only a success gives a charge back.
#[test]
fn shed_attempts_stay_charged_for_known_and_unknown_ids_alike() {
    let w = world_with("[defaults.throttle]\nper_ip = 2\nper_client_id = 0\n");
    let (id, token) = w.key();
    let step = |headers: &[(String, String)], ip: &str| {
        let req = Request::new("api.read").client_ip(ip);
        w.engine.authorize_step(headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req, w.store.as_ref(), w.now)
    };
    let mut last = Vec::new();
    for (ip, headers) in [("192.0.2.50", bearer(&forged())), ("192.0.2.51", bearer(&w.wrong_secret_for(&id)))] {
        for i in 0..2 {
            let s = step(&headers, ip);
            assert!(s.needs_hash(), "{ip} attempt {i}");
            drop(s); // shed: no argon2 ran
        }
        match step(&headers, ip) {
            Step::Decided(a) => last.push(a.decision),
            Step::NeedsHash(_) => panic!("{ip}: two shed attempts did not spend a budget of 2"),
        }
    }
    assert_eq!(last[0].status, 429);
    assert_eq!(last[0].body_json(), last[1].body_json(), "unknown and known ids answer alike");
    assert_eq!(last[0].headers, last[1].headers);
    // A success still refunds: a key's own first uses never spend its address's budget.
    for _ in 0..4 {
        let (_, token) = w.key();
        let (a, hashed) = w.call(&bearer(&token), Some("192.0.2.52"), 0);
        assert!(a.decision.allowed && hashed);
    }
    // The gate's 503 (every slot busy past max_wait) is a shed too: it stays charged.
    let w = world_with("[defaults.throttle]\nper_ip = 1\nper_client_id = 0\n");
    let _ = token;
    let held: Vec<_> = (0..w.engine.authenticator().config().gate.max_concurrent)
        .map(|_| w.engine.authenticator().gate().enter().unwrap())
        .collect();
    let (a, hashed) = w.call(&bearer(&forged()), Some("192.0.2.60"), 0);
    assert!(hashed && a.decision.status == 503, "{:?}", a.decision);
    drop(held);
    let (a, hashed) = w.call(&bearer(&forged()), Some("192.0.2.60"), 0);
    assert_throttled(&a, hashed);
}

/// `shed` (a host's argon2 pool is full) answers what step + shedding would, without the
/// lookup: charged 503s, then the 429; cached keys and malformed credentials are left to the
/// step.
#[test]
fn shed_charges_like_the_step_and_leaves_cached_keys_alone() {
    let w = world_with("[defaults.throttle]\nper_ip = 2\nper_client_id = 0\n");
    let (id, token) = w.key();
    let (a, _) = w.call(&bearer(&token), None, 0);
    assert!(a.decision.allowed);
    drop(a);
    let req = Request::new("api.read").client_ip("192.0.2.70");
    let shed = |headers: &[(String, String)]| {
        w.engine.shed(headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req, w.now)
    };
    assert!(shed(&bearer(&token)).is_none(), "a cached key goes to the step");
    assert!(shed(&[]).is_none() && shed(&[("authorization".into(), "Bearer x".into())]).is_none());
    for headers in [bearer(&forged()), bearer(&w.wrong_secret_for(&id))] {
        let d = shed(&headers).unwrap();
        assert_eq!((d.status, d.header("retry-after")), (503, Some("1")));
    }
    let d = shed(&bearer(&forged())).unwrap();
    assert_eq!(d.status, 429, "two charged sheds spent a budget of 2");
    let (a, hashed) = w.call(&bearer(&forged()), Some("192.0.2.70"), 0);
    assert_throttled(&a, hashed);
    assert_eq!(a.decision.body_json(), d.body_json());
}

/// `screen` answers what the step would (the same 429) before any lookup, and nothing else:
/// cached keys, requests without credentials and clients with budget left pass.
#[test]
fn screen_answers_the_steps_429_before_the_lookup() {
    let w = world_with("[defaults.throttle]\nper_ip = 2\nper_client_id = 3\n");
    let (id, token) = w.key();
    let (a, _) = w.call(&bearer(&token), Some("198.51.100.7"), 0);
    assert!(a.decision.allowed);
    drop(a);
    let screen = |headers: &[(String, String)], ip: Option<&str>| {
        w.engine.screen(headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), ip, w.now)
    };
    let ip = Some("198.51.100.7");
    assert!(screen(&bearer(&forged()), ip).is_none(), "budget left");
    for _ in 0..2 {
        let (a, _) = w.call(&bearer(&forged()), ip, 0);
        assert_eq!(a.decision.status, 401);
    }
    // The address is spent: the screen answers exactly the step's 429.
    let forged_headers = bearer(&forged());
    let screened = screen(&forged_headers, ip).expect("a spent address is screened");
    let (stepped, hashed) = w.call(&forged_headers, ip, 0);
    assert_throttled(&stepped, hashed);
    assert_eq!(screened.status, 429);
    assert_eq!(screened.body_json(), stepped.decision.body_json());
    assert_eq!(screened.headers, stepped.decision.headers);
    // Never screened: the cached key from that address, no credentials, another address.
    assert!(screen(&bearer(&token), ip).is_none());
    assert!(screen(&[], ip).is_none());
    assert!(screen(&[("authorization".into(), "Bearer nonsense".into())], ip).is_none());
    assert!(screen(&bearer(&forged()), Some("198.51.100.8")).is_none());
    // A spent client id is screened from any address (and without one), unless the cache
    // knows the secret presented.
    for i in 0..3 {
        let (a, _) = w.call(&bearer(&w.wrong_secret_for(&id)), Some(&format!("10.3.0.{i}")), 0);
        assert_eq!(a.decision.status, 401);
    }
    let screened = screen(&bearer(&w.wrong_secret_for(&id)), None).expect("a spent id is screened");
    assert_eq!(screened.status, 429);
    assert!(screen(&bearer(&token), Some("10.3.1.1")).is_none(), "the holder of the cached secret passes");
    // The screen charges nothing: a fresh address still has its whole budget.
    for _ in 0..10 {
        assert!(screen(&bearer(&forged()), Some("10.4.0.1")).is_none());
    }
    for _ in 0..2 {
        let (a, _) = w.call(&bearer(&forged()), Some("10.4.0.1"), 0);
        assert_eq!(a.decision.status, 401);
    }
}

#[test]
fn policy_settings_are_checked_and_zero_turns_a_budget_off() {
    let w = world_with("[defaults.throttle]\nper_ip = 0\nper_client_id = 0\n");
    for _ in 0..40 {
        let (a, hashed) = w.call(&bearer(&forged()), Some("192.0.2.7"), 0);
        assert!(hashed && a.decision.status == 401);
    }
    for bad in ["window = \"0s\"", "window = \"soon\"", "per_ip = -1", "burst = 3"] {
        let src = format!("version = 1\n[defaults.throttle]\n{bad}\n[scopes]\n\"api.read\" = \"r\"\n");
        assert!(PolicySet::from_toml_str(&src, "p.toml").is_err(), "{bad} accepted");
    }
    let ok = "version = 1\n[defaults.throttle]\nper_ip = 5\nwindow = \"2m\"\nmax_tracked = 100\n[scopes]\n\"api.read\" = \"r\"\n";
    let cfg = keycel::engine::throttle_config_for(&PolicySet::from_toml_str(ok, "p.toml").unwrap()).unwrap();
    assert_eq!((cfg.per_ip, cfg.per_client_id, cfg.window.secs(), cfg.max_tracked), (5, 10, 120, 100));
}

/// Two engines over one SQLite admission file (as two worker processes): the failure budgets
/// live in the file with the admission, so an address and a client id get their budget once,
/// not once per worker; a success refunds in the file too, and the 429 and `Retry-After` are
/// what a single process answers.
#[cfg(feature = "sqlite")]
#[test]
fn two_workers_over_one_sqlite_file_charge_one_budget() {
    use keycel::admission::SqliteAdmission;
    use keycel::limiter::LimiterConfig;
    let dir = support::TempDir::new("throttle-sqlite");
    let file = dir.join("keys.db");
    let open = || Arc::new(SqliteAdmission::open(&file, LimiterConfig::default()).unwrap());
    let mut a = world();
    let mut b = world();
    a.engine = a.engine.with_admission(open());
    b.engine = b.engine.with_admission(open());
    b.store = a.store.clone();
    let (id, token) = a.key();
    // 20 failures per address: alternating workers, the 21st is refused by either.
    for i in 0..20 {
        let w = if i % 2 == 0 { &a } else { &b };
        let (r, hashed) = w.call(&bearer(&forged()), Some("203.0.113.9"), 0);
        assert!(hashed && r.decision.status == 401, "failure {i}: {:?}", r.decision);
    }
    for w in [&a, &b] {
        let (r, hashed) = w.call(&bearer(&forged()), Some("203.0.113.9"), 0);
        assert_eq!(assert_throttled(&r, hashed), 3, "20 per 60 s across both workers");
    }
    // The screen (no charge, no lookup) sees the shared budget too.
    assert!(b.engine.failure_budget().exhausted(keycel::throttle::Subject::Ip("203.0.113.9"), a.now).is_some());
    // A client id's budget (10) across both workers; a success refunds its charges.
    let (r, hashed) = a.call(&bearer(&token), Some("198.51.100.7"), 0);
    assert!(r.decision.allowed && hashed, "{:?}", r.decision);
    drop(r);
    for i in 0..10 {
        let w = if i % 2 == 0 { &b } else { &a };
        let (r, _) = w.call(&bearer(&a.wrong_secret_for(&id)), Some(&format!("198.51.100.{}", 20 + i)), 1);
        assert_eq!(r.decision.status, 401, "failure {i}");
    }
    let (r, hashed) = a.call(&bearer(&a.wrong_secret_for(&id)), Some("198.51.100.99"), 1);
    assert_throttled(&r, hashed);
}

/// The screen and the shed never wait on the file: while another process holds the SQLite
/// write lock and this process's admission connection waits for it inside a charge, the shared
/// budget's peek (what `Engine::screen` asks on an event loop) answers at once from the
/// refusals this process's charges got, and a shed attempt is charged to this process's own
/// budget.
#[cfg(feature = "sqlite")]
#[test]
fn the_shared_budgets_screen_and_shed_never_wait_on_the_file() {
    use keycel::admission::SqliteAdmission;
    use keycel::limiter::LimiterConfig;
    use keycel::throttle::Subject;
    let dir = support::TempDir::new("throttle-screen");
    let file = dir.join("keys.db");
    let mut w = world();
    w.engine = w.engine.with_admission(Arc::new(SqliteAdmission::open(&file, LimiterConfig::default()).unwrap()));
    let budget = w.engine.failure_budget().clone();
    let ip = Subject::Ip("203.0.113.77");
    for _ in 0..20 {
        budget.charge(ip, w.now).unwrap();
    }
    let refused = budget.charge(ip, w.now).unwrap_err();
    // Another process takes the write lock and keeps it.
    let other = rusqlite::Connection::open(&file).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let charging = {
        let budget = budget.clone();
        let now = w.now;
        std::thread::spawn(move || budget.charge(Subject::Ip("198.51.100.200"), now))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = std::time::Instant::now();
    assert_eq!(budget.exhausted(ip, w.now), Some(refused));
    assert_eq!(budget.exhausted(Subject::Ip("198.51.100.201"), w.now), None);
    // A shed (the argon2 pool full, on the loop too) is charged without waiting: 503 while
    // this process's own budget for the address lasts, then 429.
    let shed = |ip: &str| {
        let req = Request::new("api.read").client_ip(ip);
        let headers = bearer(&forged());
        w.engine.shed(headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req, w.now).unwrap()
    };
    assert_eq!(shed("203.0.113.77").status, 429, "a known refusal");
    let statuses: Vec<u16> = (0..21).map(|_| shed("198.51.100.202").status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 20, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
    let waited = start.elapsed();
    other.execute_batch("COMMIT").unwrap();
    assert!(charging.join().unwrap().is_ok());
    assert!(waited < std::time::Duration::from_secs(2), "the screen and the sheds waited {waited:?} on the file");
}

/// For a host that keeps the budgets itself (a Durable Object per subject): the subjects the
/// engine would charge, in its order, exactly when it would charge them (a cached secret of a
/// valid key is not charged; once the key is deactivated or rotated, the same cached secret is
/// charged like any failure); and the 429 it answers, the engine's own (status, body,
/// `Retry-After`).
#[test]
fn failure_subjects_and_the_429_match_the_engines_own() {
    use keycel::keyring::Actor;
    use keycel::step::throttled;
    use keycel::throttle::{Exhausted, Subject};
    let w = world();
    let (id, token) = w.key();
    let headers = bearer(&token);
    let creds = w.engine.authenticator().credentials(headers.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap();
    let req = Request::new("api.read").client_ip("2001:db8::7");
    let record = || keycel::engine::Lookup::key(w.store.as_ref(), &id).unwrap();
    let subjects = |r: Option<&keycel::record::KeyRecord>, req: &Request| {
        w.engine
            .failure_subjects(&creds, r, None, req, w.now)
            .map(|v| v.iter().map(|s| (s.kind(), s.key().into_owned())).collect::<Vec<_>>())
    };
    let both = Some(vec![("ip", "2001:db8:0:0::/64".to_string()), ("client_id", id.clone())]);
    assert_eq!(subjects(record().as_deref(), &req), both, "addresses count per /64");
    assert_eq!(subjects(None, &req), both, "an unknown id is charged like a known one");
    assert_eq!(subjects(record().as_deref(), &Request::new("api.read")), Some(vec![("client_id", id.clone())]));
    let (a, _) = w.call(&headers, None, 0);
    assert!(a.decision.allowed);
    assert_eq!(subjects(record().as_deref(), &req), None, "a secret the cache answers is never charged");
    // The key is deactivated: its cached secret now costs a (dummy) hash, and a charge.
    let op = Actor::Operator("t".into());
    w.ring.set_active(&op, &id, false, w.now).unwrap();
    assert_eq!(subjects(record().as_deref(), &req), both, "a deactivated key's cached secret is charged");
    w.ring.set_active(&op, &id, true, w.now).unwrap();
    assert_eq!(subjects(record().as_deref(), &req), None);
    w.ring.rotate(&op, &id, None, w.now).unwrap();
    assert_eq!(subjects(record().as_deref(), &req), both, "the old secret after a rotation is charged");
    // Spend an address's budget through the engine: its 429 is `throttled`'s.
    for _ in 0..20 {
        w.call(&bearer(&forged()), Some("203.0.113.50"), 0);
    }
    let (a, _) = w.call(&bearer(&forged()), Some("203.0.113.50"), 0);
    let ours = throttled(w.engine.messages(), Subject::Ip("203.0.113.50"), Exhausted { retry_after_secs: 3 });
    assert_eq!(
        (a.decision.status, a.decision.body_json(), &a.decision.headers),
        (429, ours.body_json(), &ours.headers)
    );
    assert_eq!(ours.code.as_deref(), Some("too_many_failures"));
}
