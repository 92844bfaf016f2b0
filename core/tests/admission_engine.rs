//! Issue 13: the engine's admission step. Denied requests never reach a backend; the host
//! swaps the backend without changing what a decision means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::admission::{Admission, AdmissionError, Lease, LocalAdmission, Refusal, Ticket};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::limiter::LimiterConfig;
use keycel::record::AccountScope;
use keycel::store::MemoryStore;
use keycel::time::Timestamp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(feature = "sqlite")]
mod support;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

/// Counts the calls that reach it, and admits through a local admission.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicUsize,
    inner: LocalAdmission,
}

impl Admission for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn admit(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<Lease, Refusal> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.admit(ticket, now)
    }
    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError> {
        self.inner.in_flight(key_id)
    }
    fn reclaim_expired(&self, now: Timestamp) -> Result<usize, AdmissionError> {
        self.inner.reclaim_expired(now)
    }
}

fn engine() -> Engine {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    Engine::with_config(policy, auth, None).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_unix(1_795_000_000).unwrap()
}

fn issue(store: &Arc<MemoryStore>, accounts: AccountScope) -> Vec<(String, String)> {
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap();
    let mut new = NewKey::api("k", "reader");
    new.accounts = accounts;
    let (_, key) = ring.create(&Actor::Operator("t".into()), new, now()).unwrap();
    vec![("Authorization".to_string(), format!("Bearer {}", key.token().expose()))]
}

fn authz(e: &Engine, s: &MemoryStore, h: &[(String, String)], req: &Request) -> keycel::engine::Authorization {
    e.authorize(h.iter().map(|(a, b)| (a.as_str(), b.as_str())), req, s, now())
}

#[test]
fn denied_requests_never_reach_admission() {
    let counting = Arc::new(Counting::default());
    let e = engine().with_admission(counting.clone());
    assert_eq!(e.admission().name(), "counting");
    let store = Arc::new(MemoryStore::new());
    let h = issue(&store, AccountScope::parse_list("acc_1").unwrap());
    let bad = vec![("Authorization".to_string(), "Bearer kc_nonsense".to_string())];
    let denied = [
        (authz(&e, &store, &[], &Request::new("api.read")), 401),
        (authz(&e, &store, &bad, &Request::new("api.read")), 401),
        (authz(&e, &store, &h, &Request::new("api.write")), 403),
        (authz(&e, &store, &h, &Request::new("api.read").account("acc_2")), 404),
    ];
    for (a, status) in &denied {
        assert_eq!(a.decision.status, *status, "{:?}", a.decision);
        assert!(a.lease.is_none());
    }
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0, "a denied request reached admission");
    let ok = authz(&e, &store, &h, &Request::new("api.read").account("acc_1"));
    assert!(ok.decision.allowed && ok.lease.is_some());
    assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
    assert_eq!(e.admission().in_flight(ok.decision.key_id.as_deref().unwrap()).unwrap(), 1);
}

/// The default is process-local admission over the engine's own limiter.
#[test]
fn the_default_admission_is_process_local() {
    let e = engine();
    assert_eq!(e.admission().name(), "local");
    let store = Arc::new(MemoryStore::new());
    let h = issue(&store, AccountScope::All);
    let held: Vec<_> = (0..5).map(|_| authz(&e, &store, &h, &Request::new("api.read"))).collect();
    assert!(held.iter().all(|a| a.decision.allowed));
    let id = held[0].decision.key_id.clone().unwrap();
    assert_eq!(e.limiter().in_flight(&id), 5);
    assert_eq!(e.admission().in_flight(&id).unwrap(), 5);
    let sixth = authz(&e, &store, &h, &Request::new("api.read"));
    assert_eq!(sixth.decision.status, 429);
    assert_eq!(sixth.decision.header("Retry-After"), Some("1"));
}

/// A shared backend that cannot answer fails closed with a 503 naming it.
#[test]
fn an_unavailable_backend_answers_503() {
    #[derive(Debug)]
    struct Down;
    impl Admission for Down {
        fn name(&self) -> &'static str {
            "down"
        }
        fn admit(&self, _: &Ticket<'_>, _: Timestamp) -> Result<Lease, Refusal> {
            Err(Refusal::Unavailable { backend: "redis", detail: "connection refused".into() })
        }
        fn in_flight(&self, _: &str) -> Result<usize, AdmissionError> {
            Err(AdmissionError { backend: "redis", detail: "connection refused".into() })
        }
        fn reclaim_expired(&self, _: Timestamp) -> Result<usize, AdmissionError> {
            Ok(0)
        }
    }
    let e = engine().with_admission(Arc::new(Down));
    let store = Arc::new(MemoryStore::new());
    let h = issue(&store, AccountScope::All);
    let a = authz(&e, &store, &h, &Request::new("api.read"));
    assert_eq!(a.decision.status, 503);
    assert_eq!(a.decision.code.as_deref(), Some("temporarily_unavailable"));
    assert!(a.decision.reason.contains("redis admission unavailable"), "{}", a.decision.reason);
    assert!(a.lease.is_none());
}

/// Two engines over one SQLite file (as two worker processes) share one budget per key.
#[cfg(feature = "sqlite")]
#[test]
fn two_engines_over_one_sqlite_file_share_the_budget() {
    use keycel::admission::SqliteAdmission;
    let dir = support::TempDir::new("adm-engine");
    let file = dir.join("keys.db");
    let store = Arc::new(MemoryStore::new());
    let h = issue(&store, AccountScope::All);
    let workers: Vec<Engine> = (0..2)
        .map(|_| engine().with_admission(Arc::new(SqliteAdmission::open(&file, LimiterConfig::default()).unwrap())))
        .collect();
    let results: Vec<_> = (0..20).map(|i| authz(&workers[i % 2], &store, &h, &Request::new("api.read"))).collect();
    let ok = results.iter().filter(|a| a.decision.allowed).count();
    assert_eq!(ok, 5);
    assert!(results.iter().filter(|a| !a.decision.allowed).all(|a| a.decision.status == 429));
    drop(results);
    let id = authz(&workers[0], &store, &h, &Request::new("api.read")).decision.key_id.unwrap();
    assert_eq!(workers[1].admission().in_flight(&id).unwrap(), 0);
}
