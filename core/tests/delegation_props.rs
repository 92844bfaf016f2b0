//! Property test for issue 11: random actors (any role, scopes, accounts, expiry, limit, API
//! or personal) run random management operations on random targets through the real
//! `Keyring` + `Engine` (default policy). Every outcome is either refused or leaves the key
//! it touched within its actor's authority, judged by an oracle written here from the
//! runtime definitions (a concrete scope is granted when a key pattern and, for a personal
//! token, one of its user's role patterns match it), not from the code under test. A
//! target outside the actor's accounts always answers exactly like a missing key.
//!
//! Cases default to 64; `KEYCEL_DELEGATION_CASES=1000` runs a longer search.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::Engine;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::policy::scopes::matches;
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::store::{KeyFilter, MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
const ROLES: [&str; 5] = ["admin", "editor", "viewer", "integration", "reader"];
const EXTRA: [&str; 10] = [
    "keys.create",
    "keys.create.*",
    "keys.manage_all",
    "keys.update",
    "keys.rotate",
    "keys.*",
    "admin.*",
    "api.write",
    "users.put",
    "*",
];
const ACCOUNTS: [&str; 3] = ["acc_a", "acc_b", "acc_c"];
/// Concrete scopes the oracle probes: the catalogue plus names below every wildcard (what a
/// future catalogue entry would be).
const PROBES: [&str; 22] = [
    "admin.account.create",
    "admin.embed.token",
    "admin.future",
    "api.read",
    "api.write",
    "api.future",
    "keys.create",
    "keys.create.api",
    "keys.create.future",
    "keys.read",
    "keys.rename",
    "keys.update",
    "keys.set_active",
    "keys.rotate",
    "keys.delete",
    "keys.manage_all",
    "keys.future",
    "users.put",
    "users.remove",
    "users.future",
    "future",
    "future.x",
];
const T0: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
struct Shape {
    role: usize,
    extra: Vec<usize>,
    accounts: Option<Vec<usize>>,
    expires_in: Option<i64>,
    max_concurrent: Option<u32>,
    /// `Some(user index)`: a personal token of that user.
    personal: Option<usize>,
}

#[derive(Debug, Clone)]
struct UserShape {
    roles: Vec<usize>,
    accounts: Option<Vec<usize>>,
}

#[derive(Debug, Clone)]
enum Op {
    Create(Shape),
    SetRole(usize),
    SetScopes(Vec<usize>),
    SetAccounts(Option<Vec<usize>>),
    SetExpiry(Option<i64>),
    SetMaxConcurrent(Option<u32>),
    SetActive(bool),
    Rotate,
    Delete,
    Get,
}

#[derive(Debug, Clone)]
struct Step {
    actor: usize,
    target: usize,
    op: Op,
}

fn accounts() -> impl Strategy<Value = Option<Vec<usize>>> {
    prop_oneof![Just(None), proptest::collection::vec(0..ACCOUNTS.len(), 1..3).prop_map(Some)]
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        0..ROLES.len(),
        proptest::collection::vec(0..EXTRA.len(), 0..3),
        accounts(),
        proptest::option::of(prop_oneof![Just(600i64), Just(3600), Just(86_400)]),
        proptest::option::of(prop_oneof![Just(1u32), Just(3), Just(10)]),
        proptest::option::of(0usize..2),
    )
        .prop_map(|(role, extra, accounts, expires_in, max_concurrent, personal)| Shape {
            role,
            extra,
            accounts,
            expires_in,
            max_concurrent,
            personal,
        })
}

fn user_shape() -> impl Strategy<Value = UserShape> {
    (proptest::collection::vec(0..ROLES.len(), 1..3), accounts())
        .prop_map(|(roles, accounts)| UserShape { roles, accounts })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => shape().prop_map(Op::Create),
        2 => (0..ROLES.len()).prop_map(Op::SetRole),
        2 => proptest::collection::vec(0..EXTRA.len(), 0..3).prop_map(Op::SetScopes),
        2 => accounts().prop_map(Op::SetAccounts),
        1 => proptest::option::of(prop_oneof![Just(600i64), Just(86_400 * 30)]).prop_map(Op::SetExpiry),
        1 => proptest::option::of(prop_oneof![Just(1u32), Just(10)]).prop_map(Op::SetMaxConcurrent),
        1 => any::<bool>().prop_map(Op::SetActive),
        2 => Just(Op::Rotate),
        1 => Just(Op::Delete),
        1 => Just(Op::Get),
    ]
}

fn scope_of(list: &Option<Vec<usize>>) -> AccountScope {
    match list {
        None => AccountScope::All,
        Some(l) => AccountScope::Only(l.iter().map(|i| ACCOUNTS[*i].to_string()).collect()),
    }
}

fn extras(list: &[usize]) -> BTreeSet<String> {
    list.iter().map(|i| EXTRA[*i].to_string()).collect()
}

/// The oracle: what a stored key can do, from the runtime definition of a grant.
struct Reach {
    scopes: BTreeSet<&'static str>,
    accounts: BTreeSet<&'static str>,
    all_accounts: bool,
    expires_at: Option<Timestamp>,
    max_concurrent: u32,
}

fn reach(policy: &PolicySet, key: &KeyRecord, user: Option<&UserRecord>) -> Reach {
    let patterns: Vec<&str> =
        policy.role_scopes(&key.role).iter().chain(key.scopes.iter()).map(String::as_str).collect();
    let caps: Option<Vec<&str>> =
        user.map(|u| u.roles.iter().flat_map(|r| policy.role_scopes(r).iter().map(String::as_str)).collect());
    let grants = |s: &str| {
        patterns.iter().any(|p| matches(p, s)) && caps.as_ref().is_none_or(|c| c.iter().any(|p| matches(p, s)))
    };
    let reaches = |a: &str| key.accounts.contains(a) && user.is_none_or(|u| u.accounts.contains(a));
    Reach {
        scopes: PROBES.iter().copied().filter(|s| grants(s)).collect(),
        accounts: ACCOUNTS.iter().copied().chain(["acc_future"]).filter(|a| reaches(a)).collect(),
        all_accounts: reaches("acc_future"),
        expires_at: key.expires_at,
        max_concurrent: key.max_concurrent.unwrap_or(5),
    }
}

fn within(actor: &Reach, target: &Reach) -> Result<(), String> {
    if let Some(s) = target.scopes.difference(&actor.scopes).next() {
        return Err(format!("scope {s}"));
    }
    if !target.accounts.is_subset(&actor.accounts) || (target.all_accounts && !actor.all_accounts) {
        return Err("accounts".into());
    }
    if let Some(a) = actor.expires_at {
        if target.expires_at.is_none_or(|t| t > a) {
            return Err("expiry".into());
        }
    }
    if target.max_concurrent > actor.max_concurrent {
        return Err("max_concurrent".into());
    }
    Ok(())
}

struct World {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    ring: Keyring,
}

fn world() -> World {
    let policy = PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    let engine = Arc::new(Engine::with_config(policy, auth, None).unwrap());
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(CHEAP).unwrap())
        .unwrap()
        .with_guard(engine.clone());
    World { engine, store, ring }
}

fn new_key(s: &Shape, users: &[UserShape]) -> NewKey {
    let role = ROLES[s.role];
    let mut nk = match s.personal {
        // A personal token's role must be one its user's roles cover: use the user's first.
        Some(u) => NewKey::personal("p", &format!("u{u}"), ROLES[users[u].roles[0]]),
        None => NewKey::api("a", role),
    };
    nk.scopes = extras(&s.extra);
    nk.accounts = scope_of(&s.accounts);
    nk.expires_in = s.expires_in.map(Duration::from_secs);
    nk.max_concurrent = s.max_concurrent;
    nk
}

fn run(users: Vec<UserShape>, seeds: Vec<Shape>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let w = world();
    let now = Timestamp::from_unix(T0).unwrap();
    let operator = Actor::Operator("prop".into());
    for (i, u) in users.iter().enumerate() {
        let roles = u.roles.iter().map(|r| ROLES[*r].to_string());
        let rec = UserRecord::new(&format!("u{i}"), roles, scope_of(&u.accounts)).unwrap();
        w.ring.put_user(&operator, rec, now).unwrap();
    }
    let mut ids: Vec<String> = Vec::new();
    for s in &seeds {
        match w.ring.create(&operator, new_key(s, &users), now) {
            Ok((r, _)) => ids.push(r.id.as_str().to_string()),
            Err(e) => return Err(TestCaseError::fail(format!("seed refused: {e}"))),
        }
    }
    let policy = w.engine.policy();
    let user_of = |k: &KeyRecord| k.kind.user().and_then(|u| w.store.get_user(u).unwrap());
    for step in steps {
        let actor_id = &ids[step.actor % ids.len()];
        let target_id = ids[step.target % ids.len()].clone();
        let Some(actor_rec) = w.store.get_key(actor_id).unwrap() else { continue };
        let actor_user = user_of(&actor_rec);
        let actor = Actor::Key { key: Box::new(actor_rec.clone()), user: actor_user.clone() };
        let mine = reach(policy, &actor_rec, actor_user.as_ref());
        let usable = actor_rec.active && !actor_rec.expired(now, Duration::from_secs(0));
        let before = w.store.get_key(&target_id).unwrap();
        let hidden = before.as_ref().is_some_and(|t| {
            let theirs = reach(policy, t, user_of(t).as_ref());
            !theirs.accounts.is_subset(&mine.accounts) || (theirs.all_accounts && !mine.all_accounts)
        });
        let touched: Result<Option<KeyRecord>, KeyringError> = match &step.op {
            Op::Create(s) => w.ring.create(&actor, new_key(s, &users), now).map(|(r, _)| Some(r)),
            Op::SetRole(r) => w.ring.update(&actor, &target_id, Change::SetRole(ROLES[*r].into()), now).map(Some),
            Op::SetScopes(s) => w.ring.update(&actor, &target_id, Change::SetScopes(extras(s)), now).map(Some),
            Op::SetAccounts(a) => w.ring.set_accounts(&actor, &target_id, scope_of(a), now).map(Some),
            Op::SetExpiry(e) => w
                .ring
                .update(&actor, &target_id, Change::SetExpiry(e.map(|e| now.plus(Duration::from_secs(e)))), now)
                .map(Some),
            Op::SetMaxConcurrent(m) => w.ring.update(&actor, &target_id, Change::SetMaxConcurrent(*m), now).map(Some),
            Op::SetActive(a) => w.ring.set_active(&actor, &target_id, *a, now).map(Some),
            Op::Rotate => w.ring.rotate(&actor, &target_id, None, now).map(|(r, _)| Some(r)),
            Op::Delete => w.ring.delete(&actor, &target_id, now).map(|_| before.clone()),
            Op::Get => w.ring.get(&actor, &target_id, now).map(Some),
        };
        let on_target = !matches!(step.op, Op::Create(_));
        match touched {
            Ok(Some(r)) => {
                prop_assert!(usable, "an unusable actor acted: {:?}", step);
                prop_assert!(!(on_target && hidden), "a hidden target was reached: {:?}", step);
                let theirs = reach(policy, &r, user_of(&r).as_ref());
                if let Err(dim) = within(&mine, &theirs) {
                    return Err(TestCaseError::fail(format!(
                        "{:?} left key {} beyond its actor on {dim}: actor {actor_rec:?} target {r:?}",
                        step.op, r.id
                    )));
                }
                if let Op::Create(_) = step.op {
                    ids.push(r.id.as_str().to_string());
                }
            }
            Ok(None) => prop_assert!(false, "delete of a missing key succeeded"),
            Err(KeyringError::NotFound(id)) => {
                prop_assert!(on_target && (before.is_none() || hidden), "unexpected not found: {:?}", step);
                prop_assert_eq!(id, target_id.clone());
            }
            Err(_) => {
                // Refused. A hidden target must never be refused in a way that differs from a
                // missing key (only a stale actor, refused before any lookup, may be).
                prop_assert!(!(on_target && hidden && usable), "hidden target leaked by a refusal: {:?}", step);
            }
        }
        // Nothing changed when refused is covered by keyring_atomic; here: the list the actor
        // sees never includes a hidden key.
        if usable {
            if let Ok(seen) = w.ring.list(&actor, &KeyFilter::default(), now) {
                for k in seen {
                    let theirs = reach(policy, &k, user_of(&k).as_ref());
                    prop_assert!(theirs.accounts.is_subset(&mine.accounts), "list leaked {}", k.id);
                }
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("KEYCEL_DELEGATION_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn no_management_outcome_exceeds_its_actor(
        users in proptest::collection::vec(user_shape(), 2..=2),
        seeds in proptest::collection::vec(shape(), 2..6),
        steps in proptest::collection::vec(
            (0usize..16, 0usize..16, op()).prop_map(|(actor, target, op)| Step { actor, target, op }),
            1..16,
        ),
    ) {
        run(users, seeds, steps)?;
    }
}

/// The oracle itself can fail: a key given more than its actor is caught.
#[test]
fn the_oracle_catches_an_escalation() {
    let w = world();
    let now = Timestamp::from_unix(T0).unwrap();
    let policy = w.engine.policy();
    let op = Actor::Operator("t".into());
    let (small, _) = w.ring.create(&op, NewKey::api("s", "reader"), now).unwrap();
    let (big, _) = w.ring.create(&op, NewKey::api("b", "admin"), now).unwrap();
    assert!(within(&reach(policy, &small, None), &reach(policy, &big, None)).is_err());
    assert!(within(&reach(policy, &big, None), &reach(policy, &small, None)).is_ok());
    let mut wild = small.clone();
    wild.scopes.insert("keys.create.*".into());
    let mut narrow = small.clone();
    narrow.scopes.insert("keys.create".into());
    assert!(within(&reach(policy, &narrow, None), &reach(policy, &wild, None)).is_err());
}
