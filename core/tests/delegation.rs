//! Issue 11: a key acting through management can never create, reshape or take over a key
//! that exceeds itself, on any dimension, judged on the record as it will be after the
//! change. One test per attack from the issue, plus the user-facing bullets this branch owns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::decision::codes;
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::store::{KeyFilter, MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::{IssuedKey, Secret};
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct World {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    ring: Keyring,
    now: Timestamp,
}

fn world_with(policy: PolicySet) -> World {
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

fn world() -> World {
    world_with(PolicySet::default_policy().unwrap())
}

fn op() -> Actor {
    Actor::Operator("test".into())
}

fn only(list: &[&str]) -> AccountScope {
    AccountScope::Only(list.iter().map(|s| s.to_string()).collect())
}

fn scopes(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn bearer(token: &Secret) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {}", token.expose()))]
}

impl World {
    fn api(&self, role: &str, extra: &[&str], accounts: AccountScope) -> (KeyRecord, IssuedKey) {
        let mut nk = NewKey::api("k", role);
        nk.scopes = scopes(extra);
        nk.accounts = accounts;
        self.ring.create(&op(), nk, self.now).unwrap()
    }

    fn user(&self, id: &str, roles: &[&str], accounts: AccountScope) {
        let u = UserRecord::new(id, roles.iter().map(|r| r.to_string()), accounts).unwrap();
        self.ring.put_user(&op(), u, self.now).unwrap();
    }

    fn actor(&self, key: &KeyRecord) -> Actor {
        let user = key.kind.user().and_then(|u| self.store.get_user(u).unwrap());
        Actor::Key { key: Box::new(key.clone()), user }
    }

    fn status(&self, token: &IssuedKey, req: &Request) -> u16 {
        let h = bearer(&token.token());
        self.engine
            .authorize(h.iter().map(|(a, b)| (a.as_str(), b.as_str())), req, self.store.as_ref(), self.now)
            .decision
            .status
    }
}

fn denied(r: Result<impl std::fmt::Debug, KeyringError>) -> Box<keycel::Decision> {
    match r {
        Err(KeyringError::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// Attack 1: a non-admin key with keys.update + keys.manage_all sets its own role to admin.
#[test]
fn self_promotion_to_admin_is_refused() {
    let w = world();
    let (me, token) = w.api("reader", &["keys.update", "keys.manage_all"], AccountScope::All);
    let d = denied(w.ring.update(&w.actor(&me), me.id.as_str(), Change::SetRole("admin".into()), w.now));
    assert_eq!(d.status, 403);
    assert_eq!(d.code.as_deref(), Some(codes::INSUFFICIENT_SCOPE));
    assert_eq!(w.store.get_key(me.id.as_str()).unwrap().unwrap().role, "reader");
    let admin = Request::new("admin.account.create").method("POST").path("/admin/accounts");
    assert_eq!(w.status(&token, &admin), 403);
}

/// Attack 2: the same key sets its own scopes to admin.*, keys.*, users.*.
#[test]
fn self_scopes_admin_wildcards_are_refused() {
    let w = world();
    let (me, token) = w.api("reader", &["keys.update", "keys.manage_all"], AccountScope::All);
    for grab in [&["admin.*"][..], &["keys.*"], &["users.*"], &["admin.*", "keys.*", "users.*"]] {
        let d = denied(w.ring.update(&w.actor(&me), me.id.as_str(), Change::SetScopes(scopes(grab)), w.now));
        assert_eq!(d.status, 403, "{grab:?}");
    }
    // Narrowing itself is fine.
    let narrower = scopes(&["keys.update"]);
    w.ring.update(&w.actor(&me), me.id.as_str(), Change::SetScopes(narrower), w.now).unwrap();
    assert_eq!(w.status(&token, &Request::new("admin.account.create").path("/admin/accounts")), 403);
}

/// Attack 3: an admin API key limited to acc_1 creates an `all` key that reads acc_2.
#[test]
fn account_limited_admin_cannot_create_an_all_accounts_key() {
    let w = world();
    let (admin, _) = w.api("admin", &[], only(&["acc_1"]));
    let mut nk = NewKey::api("wide", "reader");
    nk.accounts = AccountScope::All;
    let d = denied(w.ring.create(&w.actor(&admin), nk.clone(), w.now));
    assert_eq!(d.code.as_deref(), Some(codes::EXCEEDS_ACTOR));
    nk.accounts = only(&["acc_1", "acc_2"]);
    denied(w.ring.create(&w.actor(&admin), nk.clone(), w.now));
    nk.accounts = only(&["acc_1"]);
    let (_, t) = w.ring.create(&w.actor(&admin), nk, w.now).unwrap();
    assert_eq!(w.status(&t, &Request::new("api.read").account("acc_2")), 404);
    assert_eq!(w.status(&t, &Request::new("api.read").account("acc_1")), 200);
}

/// Attack 4: the same admin sets its own accounts to `all`.
#[test]
fn account_limited_admin_cannot_widen_itself() {
    let w = world();
    let (admin, token) = w.api("admin", &[], only(&["acc_1"]));
    let d = denied(w.ring.set_accounts(&w.actor(&admin), admin.id.as_str(), AccountScope::All, w.now));
    assert_eq!(d.code.as_deref(), Some(codes::EXCEEDS_ACTOR));
    assert_eq!(w.status(&token, &Request::new("api.read").account("acc_2")), 404);
}

/// Attack 5: the same admin rotates, deletes, reads or reshapes a key of acc_2: it answers
/// exactly like a missing key (no existence leak).
#[test]
fn account_limited_admin_cannot_see_another_accounts_key() {
    let w = world();
    let (admin, _) = w.api("admin", &[], only(&["acc_1"]));
    let (other, other_token) = w.api("reader", &[], only(&["acc_2"]));
    let a = w.actor(&admin);
    let id = other.id.as_str();
    let answers = |w: &World| -> Vec<String> {
        vec![
            w.ring.rotate(&a, id, None, w.now).map(|_| ()).unwrap_err().to_string(),
            w.ring.get(&a, id, w.now).map(|_| ()).unwrap_err().to_string(),
            w.ring.set_active(&a, id, false, w.now).map(|_| ()).unwrap_err().to_string(),
            w.ring.update(&a, id, Change::SetRole("admin".into()), w.now).map(|_| ()).unwrap_err().to_string(),
            w.ring.delete(&a, id, w.now).map(|_| ()).unwrap_err().to_string(),
        ]
    };
    let hidden = answers(&w);
    assert!(w.ring.list(&a, &KeyFilter::default(), w.now).unwrap().iter().all(|k| k.id != other.id));
    // Untouched: the key still works with its old secret.
    assert_eq!(w.status(&other_token, &Request::new("api.read").account("acc_2")), 200);
    // The very same answers once the key is really gone.
    w.ring.delete(&op(), id, w.now).unwrap();
    assert_eq!(hidden, answers(&w));
    assert!(hidden.iter().all(|e| e == &format!("not found: {id}")), "{hidden:?}");
    // A key inside its accounts is visible and rotatable.
    let (mine, _) = w.api("reader", &[], only(&["acc_1"]));
    w.ring.rotate(&a, mine.id.as_str(), None, w.now).unwrap();
}

/// Attack 6: a key with keys.manage_all but without keys.create.api mints keys.create.*.
#[test]
fn keys_create_wildcard_minting_is_refused() {
    assert!(!keycel::policy::scopes::covered("keys.create.*", ["keys.create"]));
    let w = world();
    w.user("u", &["admin"], AccountScope::All);
    let (me, _) = w.api("reader", &["keys.create", "keys.manage_all"], AccountScope::All);
    let mut nk = NewKey::personal("t", "u", "reader");
    nk.scopes = scopes(&["keys.create.*"]);
    let d = denied(w.ring.create(&w.actor(&me), nk.clone(), w.now));
    assert_eq!(d.code.as_deref(), Some(codes::INSUFFICIENT_SCOPE));
    // Without the wildcard, within itself: allowed.
    nk.scopes = scopes(&["keys.create"]);
    w.ring.create(&w.actor(&me), nk, w.now).unwrap();
}

/// Attack 7: a viewer's personal token expiring in 1 h creates one that never expires.
#[test]
fn short_lived_key_cannot_mint_a_longer_lived_one() {
    let w = world();
    w.user("v", &["viewer"], AccountScope::All);
    let mut nk = NewKey::personal("short", "v", "viewer");
    nk.expires_in = Some(Duration::from_secs(3600));
    let (me, _) = w.ring.create(&op(), nk, w.now).unwrap();
    let forever = NewKey::personal("forever", "v", "viewer");
    let d = denied(w.ring.create(&w.actor(&me), forever.clone(), w.now));
    assert_eq!(d.code.as_deref(), Some(codes::EXCEEDS_ACTOR));
    let mut later = forever.clone();
    later.expires_in = Some(Duration::from_secs(7200));
    denied(w.ring.create(&w.actor(&me), later, w.now));
    let mut sooner = forever;
    sooner.expires_in = Some(Duration::from_secs(1800));
    w.ring.create(&w.actor(&me), sooner, w.now).unwrap();
}

/// max_concurrent (and later limits) are held to the same rule.
#[test]
fn looser_concurrency_than_the_actor_is_refused() {
    let w = world();
    let mut nk = NewKey::api("tight", "admin");
    nk.max_concurrent = Some(2);
    let (me, _) = w.ring.create(&op(), nk, w.now).unwrap();
    let d = denied(w.ring.create(&w.actor(&me), NewKey::api("default", "reader"), w.now));
    assert_eq!(d.code.as_deref(), Some(codes::EXCEEDS_ACTOR));
    let mut ok = NewKey::api("ok", "reader");
    ok.max_concurrent = Some(2);
    w.ring.create(&w.actor(&me), ok, w.now).unwrap();
}

/// Attack 8: a stale actor (deactivated, deleted, expired, rotated past grace, orphaned)
/// keeps acting through the object the host holds.
#[test]
fn stale_actors_are_refused() {
    let w = world();
    let stale = |w: &World, held: &KeyRecord| {
        let d = denied(w.ring.create(&w.actor(held), NewKey::api("x", "reader"), w.now));
        assert_eq!(d.status, 401, "{}", d.reason);
    };
    // Deactivated.
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.create(&w.actor(&k), NewKey::api("ok", "reader"), w.now).unwrap();
    w.ring.set_active(&op(), k.id.as_str(), false, w.now).unwrap();
    stale(&w, &k);
    // Deleted.
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.delete(&op(), k.id.as_str(), w.now).unwrap();
    stale(&w, &k);
    // Expired (the held object says it never expires).
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.update(&op(), k.id.as_str(), Change::SetExpiry(Some(w.now)), w.now).unwrap();
    let later = World { now: w.now.plus(Duration::from_secs(1)), ..world_clone(&w) };
    stale(&later, &k);
    // Rotated: within the grace the old secret's record may act, after it not.
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.rotate(&op(), k.id.as_str(), Some(Duration::from_secs(60)), w.now).unwrap();
    w.ring.create(&w.actor(&k), NewKey::api("ok", "reader"), w.now).unwrap();
    let after = World { now: w.now.plus(Duration::from_secs(61)), ..world_clone(&w) };
    stale(&after, &k);
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.rotate(&op(), k.id.as_str(), None, w.now).unwrap();
    stale(&w, &k);
    // Orphaned: a personal token whose user is gone (written past the keyring).
    w.user("root", &["admin"], AccountScope::All);
    let (k, _) = w.ring.create(&op(), NewKey::personal("p", "root", "admin"), w.now).unwrap();
    let held = w.actor(&k);
    let bare = world();
    bare.store.insert_key(&k).unwrap();
    let d = denied(bare.ring.create(&held, NewKey::api("x", "reader"), w.now));
    assert_eq!(d.status, 401);
}

fn world_clone(w: &World) -> World {
    World { engine: w.engine.clone(), store: w.store.clone(), ring: w.ring.clone(), now: w.now }
}

/// The actor is re-read: a demoted key acts with its stored role, not the one it was given.
#[test]
fn the_stored_actor_decides_not_the_held_object() {
    let w = world();
    let (k, _) = w.api("admin", &[], AccountScope::All);
    w.ring.update(&op(), k.id.as_str(), Change::SetRole("reader".into()), w.now).unwrap();
    let d = denied(w.ring.create(&w.actor(&k), NewKey::api("x", "reader"), w.now));
    assert_eq!(d.status, 403);
}

/// The operator stays unrestricted.
#[test]
fn the_operator_is_unrestricted() {
    let w = world();
    let (k, _) = w.api("admin", &["keys.create.api"], AccountScope::All);
    w.ring.update(&op(), k.id.as_str(), Change::SetMaxConcurrent(Some(10_000)), w.now).unwrap();
    let (small, _) = w.api("reader", &[], only(&["acc_9"]));
    w.ring.rotate(&op(), small.id.as_str(), None, w.now).unwrap();
    w.ring.delete(&op(), small.id.as_str(), w.now).unwrap();
}

/// Users: a key cannot save a user beyond itself (whose personal tokens would then widen).
#[test]
fn users_beyond_the_actor_are_refused() {
    let w = world();
    let (admin, _) = w.api("admin", &[], only(&["acc_1"]));
    let wide = UserRecord::new("x", ["admin".to_string()], AccountScope::All).unwrap();
    denied(w.ring.put_user(&w.actor(&admin), wide, w.now));
    let fine = UserRecord::new("x", ["editor".to_string()], only(&["acc_1"])).unwrap();
    w.ring.put_user(&w.actor(&admin), fine, w.now).unwrap();
    let (editor, _) = w.api("editor", &["users.put", "keys.manage_all"], AccountScope::All);
    let promote = UserRecord::new("x", ["admin".to_string()], only(&["acc_1"])).unwrap();
    denied(w.ring.put_user(&w.actor(&editor), promote, w.now));
}

/// A personal token may be narrower than its user: any defined role the user's roles cover.
#[test]
fn personal_tokens_may_be_narrower_than_their_user() {
    let w = world();
    w.user("ed", &["editor"], AccountScope::All);
    let (k, t) = w.ring.create(&op(), NewKey::personal("ro", "ed", "reader"), w.now).unwrap();
    assert_eq!(w.status(&t, &Request::new("api.read")), 200);
    assert_eq!(w.status(&t, &Request::new("api.write")), 403);
    let a = w.engine.authority(&k, w.store.get_user("ed").unwrap().as_ref(), w.now).unwrap();
    assert_eq!(a.scopes, vec!["api.read".to_string()]);
    w.ring.create(&op(), NewKey::personal("v", "ed", "viewer"), w.now).unwrap();
    match w.ring.create(&op(), NewKey::personal("x", "ed", "admin"), w.now) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "role"),
        other => panic!("{other:?}"),
    }
    // Effective scopes stay capped by the user's current roles.
    w.user("ed", &["reader"], AccountScope::All);
    let (_, v) = w.ring.create(&op(), NewKey::personal("r2", "ed", "reader"), w.now).unwrap();
    assert_eq!(w.status(&v, &Request::new("api.read")), 200);
}

/// Management checks by a host take no data-plane concurrency slot.
#[test]
fn management_checks_take_no_lease() {
    let w = world();
    let mut nk = NewKey::api("a", "admin");
    nk.max_concurrent = Some(1);
    let (_, t) = w.ring.create(&op(), nk, w.now).unwrap();
    let h = bearer(&t.token());
    let authz = |req: &Request| {
        w.engine.authorize(h.iter().map(|(a, b)| (a.as_str(), b.as_str())), req, w.store.as_ref(), w.now)
    };
    let held: Vec<_> = (0..30).map(|_| authz(&Request::new("keys.create.api"))).collect();
    assert!(held.iter().all(|a| a.decision.allowed && a.lease.is_none()));
    let data = authz(&Request::new("api.read"));
    assert!(data.decision.allowed && data.lease.is_some());
    assert_eq!(authz(&Request::new("api.read")).decision.status, 429);
}

/// The default policy's admin rule is not widened by an omitted path.
#[test]
fn omitted_path_does_not_widen_admin_scopes() {
    let w = world();
    let (_, t) = w.api("admin", &[], AccountScope::All);
    assert_eq!(w.status(&t, &Request::new("admin.account.create")), 403);
    assert_eq!(w.status(&t, &Request::new("admin.account.create").path("/admin/accounts")), 200);
}

/// Issue 12: a per-user cap on personal tokens, refused with a typed code.
#[test]
fn personal_tokens_per_user_are_capped() {
    let src = keycel::policy::DEFAULT_POLICY.replace("max_personal_tokens = 50", "max_personal_tokens = 2");
    let w = world_with(PolicySet::from_toml_str(&src, "p.toml").unwrap());
    w.user("u", &["viewer"], AccountScope::All);
    for _ in 0..2 {
        w.ring.create(&op(), NewKey::personal("t", "u", "viewer"), w.now).unwrap();
    }
    let d = denied(w.ring.create(&op(), NewKey::personal("t", "u", "viewer"), w.now));
    assert_eq!(d.code.as_deref(), Some(codes::TOO_MANY_PERSONAL_TOKENS));
    assert_eq!(w.store.list_keys(&KeyFilter::default()).unwrap().len(), 2);
    // The default policy allows 50.
    let w = world();
    w.user("u", &["viewer"], AccountScope::All);
    for _ in 0..50 {
        w.ring.create(&op(), NewKey::personal("t", "u", "viewer"), w.now).unwrap();
    }
    denied(w.ring.create(&op(), NewKey::personal("t", "u", "viewer"), w.now));
}

/// The policy sees the resulting record: an operator's own limit (examples/management-limits).
#[test]
fn policies_see_the_resulting_record() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/examples/management-limits.toml");
    let w = world_with(PolicySet::load(path).unwrap());
    let (admin, _) = w.api("admin", &[], AccountScope::All);
    let a = w.actor(&admin);
    let d = denied(w.ring.create(&a, NewKey::api("forever", "reader"), w.now));
    assert_eq!(d.matched_rules, vec!["api-tokens-expire-within-90-days"]);
    let mut nk = NewKey::api("month", "reader");
    nk.expires_in = Some(Duration::from_secs(30 * 86400));
    let (k, _) = w.ring.create(&a, nk, w.now).unwrap();
    // Reshaping it into a writer for all accounts is refused too (judged after the change).
    let d = denied(w.ring.update(&a, k.id.as_str(), Change::SetRole("admin".into()), w.now));
    assert_eq!(d.matched_rules, vec!["write-keys-name-their-accounts"]);
    w.ring.update(&op(), k.id.as_str(), Change::SetRole("admin".into()), w.now).unwrap();
}

/// `authority`/`explain`/`roles`: effective scopes, accounts, deadline and limits.
#[test]
fn authority_reports_the_effective_view() {
    let src = keycel::policy::DEFAULT_POLICY.replace("expiry_leeway = \"0s\"", "expiry_leeway = \"30s\"");
    let w = world_with(PolicySet::from_toml_str(&src, "p.toml").unwrap());
    w.user("u", &["reader"], only(&["acc_1", "acc_2"]));
    let mut nk = NewKey::personal("t", "u", "reader");
    nk.scopes = scopes(&["api.*"]);
    nk.accounts = only(&["acc_2", "acc_3"]);
    nk.expires_in = Some(Duration::from_secs(60));
    let (k, _) = w.ring.create(&op(), nk, w.now).unwrap();
    let user = w.store.get_user("u").unwrap();
    let a = w.engine.explain(&k, user.as_ref(), w.now).unwrap();
    assert_eq!(a.kind, "personal");
    assert_eq!(a.user.as_deref(), Some("u"));
    assert_eq!(a.scopes, vec!["api.read".to_string()]);
    assert_eq!(a.accounts, only(&["acc_2"]));
    assert_eq!(a.expires_at, Some(w.now.plus(Duration::from_secs(90))));
    assert_eq!(a.max_concurrent, 5);
    assert!(a.active);
    assert!(!w.engine.authority(&k, user.as_ref(), w.now.plus(Duration::from_secs(91))).unwrap().active);
    assert!(w.engine.authority(&k, None, w.now).is_err());
    let roles = w.engine.roles();
    assert!(roles.iter().any(|(r, s)| r == "reader" && s == &vec!["api.read".to_string()]));
    assert_eq!(roles.len(), 5);
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["accounts"], serde_json::json!(["acc_2"]));
}
