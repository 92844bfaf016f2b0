//! Seed scenarios end to end through the engine (Finout, Finta, the financial-data API).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64ct::{Base64, Encoding};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::record::{AccountScope, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::Secret;
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct World {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    ring: Keyring,
    now: Timestamp,
}

fn world() -> World {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    let engine = Arc::new(Engine::with_config(policy, auth, None).unwrap());
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(CHEAP).unwrap())
        .unwrap()
        .with_guard(engine.clone());
    World { engine, store, ring, now: Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap() }
}

fn op() -> Actor {
    Actor::Operator("test".into())
}

fn basic(token: &Secret) -> Vec<(String, String)> {
    vec![(
        "Authorization".into(),
        format!("Basic {}", Base64::encode_string(format!("{}:", token.expose()).as_bytes())),
    )]
}

fn bearer(token: &Secret) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {}", token.expose()))]
}

impl World {
    fn authz(&self, headers: &[(String, String)], req: &Request) -> keycel::engine::Authorization {
        self.authz_at(headers, req, self.now)
    }

    fn authz_at(&self, headers: &[(String, String)], req: &Request, now: Timestamp) -> keycel::engine::Authorization {
        self.engine.authorize(headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), req, self.store.as_ref(), now)
    }
}

#[test]
fn header_pair_basic_and_bearer_all_work() {
    let w = world();
    let (_, key) = w.ring.create(&op(), NewKey::api("Production", "integration"), w.now).unwrap();
    let pair = vec![
        ("x-keycel-client-id".to_string(), key.client_id.as_str().to_string()),
        ("x-keycel-secret-key".to_string(), key.secret.expose().to_string()),
    ];
    for h in [pair, basic(&key.token()), bearer(&key.token())] {
        let a = w.authz(&h, &Request::new("api.read").method("GET").path("/v1/data"));
        assert!(a.decision.allowed, "{:?}", a.decision);
        assert_eq!(a.decision.matched_rules, vec!["scope-grants-action"]);
        assert!(a.lease.is_some());
    }
}

#[test]
fn scopes_allow_and_deny_with_403() {
    let w = world();
    let (_, key) = w.ring.create(&op(), NewKey::api("Reader", "reader"), w.now).unwrap();
    let d = w.authz(&bearer(&key.token()), &Request::new("api.write")).decision;
    assert_eq!((d.status, d.code.as_deref()), (403, Some("insufficient_scope")));
    assert!(d.header("www-authenticate").unwrap().contains("scope=\"api.write\""));
}

#[test]
fn wrong_secret_unknown_key_and_garbage_answer_the_same_401() {
    let w = world();
    let (_, key) = w.ring.create(&op(), NewKey::api("P", "reader"), w.now).unwrap();
    let good = key.token().expose().to_string();
    let (other_rec, other) = w.ring.create(&op(), NewKey::api("Other", "reader"), w.now).unwrap();
    w.ring.delete(&op(), other_rec.id.as_str(), w.now).unwrap();
    let wrong_secret = format!("{}_{}", key.client_id, other.secret.expose());
    let unknown = other.token().expose().to_string();
    let mut answers = Vec::new();
    for t in [wrong_secret, unknown, "garbage".to_string()] {
        let d = w.authz(&basic(&Secret::new(t)), &Request::new("api.read")).decision;
        answers.push((d.status, d.code.clone(), d.message.clone(), d.headers.clone(), d.body_json()));
    }
    assert!(answers.windows(2).all(|p| p[0] == p[1]), "{answers:?}");
    assert_eq!(answers[0].2, "Invalid username/account key");
    assert!(w.authz(&basic(&Secret::new(good)), &Request::new("api.read")).decision.allowed);
}

#[test]
fn account_scope_404_is_identical_to_missing_resource_and_edits_apply_at_once() {
    let w = world();
    let mut nk = NewKey::api("Scoped", "integration");
    nk.accounts = AccountScope::parse_list("acc_1,acc_2").unwrap();
    let (rec, key) = w.ring.create(&op(), nk, w.now).unwrap();
    let t = bearer(&key.token());
    assert!(w.authz(&t, &Request::new("api.read").account("acc_1")).decision.allowed);
    let d = w.authz(&t, &Request::new("api.read").account("acc_9")).decision;
    assert_eq!(d.status, 404);
    assert_eq!(d.body_json(), keycel::decision::Decision::not_found_body(w.engine.messages()));
    w.ring.set_accounts(&op(), rec.id.as_str(), AccountScope::All, w.now).unwrap();
    assert!(
        w.authz(&t, &Request::new("api.read").account("acc_9")).decision.allowed,
        "scope edit effective on the next request"
    );
    w.ring
        .update(&op(), rec.id.as_str(), Change::SetAccounts(AccountScope::parse_list("acc_3").unwrap()), w.now)
        .unwrap();
    assert_eq!(w.authz(&t, &Request::new("api.read").account("acc_1")).decision.status, 404);
}

#[test]
fn rotation_kills_the_old_secret_and_keeps_everything_else() {
    let w = world();
    let mut nk = NewKey::api("Rotating", "integration");
    nk.accounts = AccountScope::parse_list("acc_1").unwrap();
    let (before, old) = w.ring.create(&op(), nk, w.now).unwrap();
    assert!(w.authz(&bearer(&old.token()), &Request::new("api.read")).decision.allowed);
    let (after, new) = w.ring.rotate(&op(), before.id.as_str(), None, w.now).unwrap();
    assert_eq!(
        (after.name.as_str(), &after.accounts, &after.role),
        (before.name.as_str(), &before.accounts, &before.role)
    );
    assert_eq!(
        w.authz(&bearer(&old.token()), &Request::new("api.read")).decision.status,
        401,
        "old secret dead at once (even cached)"
    );
    assert!(w.authz(&bearer(&new.token()), &Request::new("api.read")).decision.allowed);
    // With a grace period the old secret lives until the deadline.
    let (_, newer) = w.ring.rotate(&op(), before.id.as_str(), Some(Duration::from_secs(3600)), w.now).unwrap();
    assert!(w.authz(&bearer(&new.token()), &Request::new("api.read")).decision.allowed);
    assert!(w.authz(&bearer(&newer.token()), &Request::new("api.read")).decision.allowed);
    let later = w.now.plus(Duration::from_secs(3601));
    let h = bearer(&new.token());
    let d = w.authz_at(&h, &Request::new("api.read"), later);
    assert_eq!(d.decision.status, 401);
}

#[test]
fn deactivation_expiry_and_deletion() {
    let w = world();
    let mut nk = NewKey::api("Expiring", "reader");
    nk.expires_in = Some(Duration::from_secs(60));
    let (rec, key) = w.ring.create(&op(), nk, w.now).unwrap();
    let h = bearer(&key.token());
    assert!(w.authz(&h, &Request::new("api.read")).decision.allowed);
    w.ring.set_active(&op(), rec.id.as_str(), false, w.now).unwrap();
    assert_eq!(w.authz(&h, &Request::new("api.read")).decision.status, 401);
    w.ring.set_active(&op(), rec.id.as_str(), true, w.now).unwrap();
    assert!(w.authz(&h, &Request::new("api.read")).decision.allowed);
    let later = w.now.plus(Duration::from_secs(61));
    let d = w.authz_at(&h, &Request::new("api.read"), later);
    assert_eq!(d.decision.status, 401);
    w.ring.delete(&op(), rec.id.as_str(), w.now).unwrap();
    assert_eq!(w.authz(&h, &Request::new("api.read")).decision.status, 401);
    assert!(matches!(w.ring.delete(&op(), rec.id.as_str(), w.now), Err(KeyringError::NotFound(_))));
}

#[test]
fn personal_tokens_follow_their_user() {
    let w = world();
    let alice = UserRecord::new("alice", ["editor".to_string()], AccountScope::parse_list("acc_1").unwrap()).unwrap();
    w.ring.put_user(&op(), alice.clone(), w.now).unwrap();
    let (rec, key) = w.ring.create(&op(), NewKey::personal("alice laptop", "alice", "editor"), w.now).unwrap();
    let h = bearer(&key.token());
    assert!(w.authz(&h, &Request::new("api.write").account("acc_1")).decision.allowed);
    assert_eq!(
        w.authz(&h, &Request::new("api.write").account("acc_2")).decision.status,
        404,
        "user's data access caps the token"
    );
    // The user's roles shrink: the token shrinks with them on the next request.
    let mut reduced = alice.clone();
    reduced.roles = ["reader".to_string()].into_iter().collect();
    w.ring.put_user(&op(), reduced, w.now).unwrap();
    let d = w.authz(&h, &Request::new("api.write").account("acc_1")).decision;
    assert_eq!((d.status, d.code.as_deref()), (403, Some("insufficient_scope")));
    assert!(w.authz(&h, &Request::new("api.read").account("acc_1")).decision.allowed);
    // Removing the user deletes the token.
    assert_eq!(w.ring.remove_user(&op(), "alice", w.now).unwrap(), 1);
    assert!(w.store.get_key(rec.id.as_str()).unwrap().is_none());
    assert_eq!(w.authz(&h, &Request::new("api.read")).decision.status, 401);
}

#[test]
fn sixth_concurrent_request_gets_429_and_released_leases_free_slots() {
    let w = world();
    let (_, key) = w.ring.create(&op(), NewKey::api("Busy", "reader"), w.now).unwrap();
    let h = basic(&key.token());
    let held: Vec<_> = (0..5).map(|_| w.authz(&h, &Request::new("api.read"))).collect();
    assert!(held.iter().all(|a| a.decision.allowed));
    let sixth = w.authz(&h, &Request::new("api.read"));
    assert_eq!(sixth.decision.status, 429);
    assert_eq!(sixth.decision.header("retry-after"), Some("1"));
    assert!(sixth.lease.is_none());
    drop(held);
    assert!(w.authz(&h, &Request::new("api.read")).decision.allowed);
}

#[test]
fn admin_scopes_only_on_the_admin_api() {
    let w = world();
    let (_, key) = w.ring.create(&op(), NewKey::api("Admin", "admin"), w.now).unwrap();
    let h = bearer(&key.token());
    assert!(w.authz(&h, &Request::new("admin.account.create").method("POST").path("/admin/accounts")).decision.allowed);
    let d = w.authz(&h, &Request::new("admin.account.create").method("POST").path("/v1/accounts")).decision;
    assert_eq!(d.status, 403);
    assert_eq!(d.matched_rules, vec!["admin-scopes-only-on-admin-api"]);
}

#[test]
fn only_admins_create_api_tokens_and_nobody_exceeds_themselves() {
    let w = world();
    let bob = UserRecord::new("bob", ["viewer".to_string()], AccountScope::All).unwrap();
    let root = UserRecord::new("root", ["admin".to_string()], AccountScope::All).unwrap();
    w.ring.put_user(&op(), bob, w.now).unwrap();
    w.ring.put_user(&op(), root, w.now).unwrap();
    let (bob_key, _) = w.ring.create(&op(), NewKey::personal("bob", "bob", "viewer"), w.now).unwrap();
    let (admin_key, _) = w.ring.create(&op(), NewKey::personal("root", "root", "admin"), w.now).unwrap();
    let bob_actor = Actor::Key { key: Box::new(bob_key.clone()), user: w.store.get_user("bob").unwrap() };
    let admin_actor = Actor::Key { key: Box::new(admin_key), user: w.store.get_user("root").unwrap() };
    // A viewer creates a personal token for himself, but not an API token.
    assert!(w.ring.create(&bob_actor, NewKey::personal("bob 2", "bob", "viewer"), w.now).is_ok());
    match w.ring.create(&bob_actor, NewKey::api("svc", "reader"), w.now) {
        Err(KeyringError::Denied(d)) => assert_eq!(d.status, 403),
        other => panic!("{other:?}"),
    }
    // An admin creates API tokens.
    assert!(w.ring.create(&admin_actor, NewKey::api("svc", "integration"), w.now).is_ok());
    // No escalation: bob cannot give his own token the editor role.
    assert!(matches!(
        w.ring.update(&bob_actor, bob_key.id.as_str(), Change::SetRole("admin".into()), w.now),
        Err(KeyringError::Denied(_))
    ));
    // Unknown roles and uncatalogued scopes are refused even for the operator, naming the field.
    match w.ring.create(&op(), NewKey::api("x", "no-such-role"), w.now) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "role"),
        other => panic!("{other:?}"),
    }
    let mut nk = NewKey::api("x", "reader");
    nk.scopes.insert("billing.read".into());
    assert!(matches!(w.ring.create(&op(), nk, w.now), Err(KeyringError::Invalid(e)) if e.field == "scopes"));
    let ghost = UserRecord::new("ghost", ["analyst".to_string()], AccountScope::All).unwrap();
    assert!(matches!(w.ring.put_user(&op(), ghost, w.now), Err(KeyringError::Invalid(e)) if e.field == "roles"));
}
