//! Model-based test of the key lifecycle (issue 7).
//!
//! proptest generates sequences of keyring operations (create, rename, rescope, rotate,
//! activate/deactivate, set expiry, delete, remove user, re-add user, advance time). Each
//! sequence runs against the real `Keyring` + `MemoryStore` + `Authenticator` (with its
//! verified-secret cache on) and against a small reference model written here. After every
//! operation the tokens of the keys it touched are presented the way a host would (Bearer
//! header -> store lookup -> authenticate) and must succeed exactly when the model says so;
//! after time moves and at the end of the sequence *every* token ever issued is tried.
//!
//! So: no sequence lets a rotated (past its grace), deleted, deactivated, expired or orphaned
//! (user removed) key authenticate, and every change is visible on the very next request.
//!
//! Cost: argon2 is set to the floor (m=1024, t=1) so a failed attempt is cheap; cases default
//! to 48 (about 10-15 s in a debug build). `KEYCEL_MODEL_CASES=500` runs a longer search.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::record::{AccountScope, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::{AuthConfig, Authenticator};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
const USERS: [&str; 2] = ["u0", "u1"];
const ACCOUNTS: [&str; 3] = ["acc_a", "acc_b", "acc_c"];
const T0: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
enum Op {
    CreateApi { expires_in: Option<u8>, active: bool },
    CreatePersonal { user: usize, expires_in: Option<u8> },
    Rename { key: usize },
    Rescope { key: usize, accounts: u8 },
    Rotate { key: usize, grace: Option<u8> },
    SetActive { key: usize, active: bool },
    SetExpiry { key: usize, in_secs: Option<u8> },
    Delete { key: usize },
    RemoveUser { user: usize },
    PutUser { user: usize },
    Advance { secs: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0usize..6;
    // Times come from a few round values so that requests land exactly on deadlines often
    // (off-by-one at `expires_at` / `valid_until` is the classic bug).
    let span = || prop_oneof![Just(5u8), Just(10u8)];
    let grace = || proptest::option::of(prop_oneof![Just(0u8), Just(5u8), Just(10u8)]);
    prop_oneof![
        3 => (proptest::option::of(span()), any::<bool>()).prop_map(|(expires_in, active)| Op::CreateApi { expires_in, active }),
        2 => (0..USERS.len(), proptest::option::of(span())).prop_map(|(user, expires_in)| Op::CreatePersonal { user, expires_in }),
        1 => key.clone().prop_map(|key| Op::Rename { key }),
        1 => (key.clone(), 0u8..8).prop_map(|(key, accounts)| Op::Rescope { key, accounts }),
        3 => (key.clone(), grace()).prop_map(|(key, grace)| Op::Rotate { key, grace }),
        2 => (key.clone(), any::<bool>()).prop_map(|(key, active)| Op::SetActive { key, active }),
        1 => (key.clone(), grace()).prop_map(|(key, in_secs)| Op::SetExpiry { key, in_secs }),
        2 => key.clone().prop_map(|key| Op::Delete { key }),
        1 => (0..USERS.len()).prop_map(|user| Op::RemoveUser { user }),
        1 => (0..USERS.len()).prop_map(|user| Op::PutUser { user }),
        2 => prop_oneof![Just(1u8), Just(5u8)].prop_map(|secs| Op::Advance { secs }),
    ]
}

/// The reference model of one key.
#[derive(Debug, Clone)]
struct MKey {
    id: String,
    user: Option<String>,
    current: String,
    previous: Option<(String, i64)>,
    /// Tokens that must never work again (rotated away past grace).
    dead: Vec<String>,
    active: bool,
    expires_at: Option<i64>,
    deleted: bool,
    accounts: AccountScope,
    name: String,
    version: u64,
}

struct World {
    store: Arc<MemoryStore>,
    ring: Keyring,
    auth: Authenticator,
    now: i64,
    keys: Vec<MKey>,
    users: BTreeSet<String>,
    actor: Actor,
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_unix(s).unwrap()
}

fn user_record(id: &str) -> UserRecord {
    UserRecord::new(id, ["member".to_string()], AccountScope::All).unwrap()
}

fn accounts_from_bits(bits: u8) -> AccountScope {
    if bits == 0 {
        return AccountScope::All;
    }
    AccountScope::Only(
        ACCOUNTS.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, a)| a.to_string()).collect(),
    )
}

impl World {
    fn new() -> Self {
        let policy = HashPolicy::with_params(CHEAP).unwrap();
        let store = Arc::new(MemoryStore::new());
        let ring = Keyring::new(store.clone() as Arc<dyn Store>).with_hash(policy).unwrap();
        let auth = Authenticator::new(AuthConfig { hash: policy, ..AuthConfig::default() }).unwrap();
        let actor = Actor::Operator("model".into());
        let mut w = World { store, ring, auth, now: T0, keys: Vec::new(), users: BTreeSet::new(), actor };
        for u in USERS {
            w.ring.put_user(&w.actor, user_record(u), ts(T0)).unwrap();
            w.users.insert(u.to_string());
        }
        w
    }

    fn pick(&self, key: usize) -> Option<usize> {
        if self.keys.is_empty() {
            None
        } else {
            Some(key % self.keys.len())
        }
    }

    /// What the model says a token should do now: `None` = refused, `Some(via_previous)` = accepted.
    fn expected(&self, k: &MKey, token: &str) -> Option<bool> {
        if k.deleted {
            return None;
        }
        let via_previous = if token == k.current {
            false
        } else if k.previous.as_ref().is_some_and(|(t, until)| t == token && self.now <= *until) {
            true
        } else {
            return None;
        };
        if !k.active || k.expires_at.is_some_and(|e| self.now > e) {
            return None;
        }
        if let Some(u) = &k.user {
            if !self.users.contains(u) {
                return None;
            }
        }
        Some(via_previous)
    }

    /// Presents a token as a host does: Bearer header, store lookup, user lookup, authenticate.
    fn attempt(&self, token: &str) -> Result<keycel::Authenticated, keycel::AuthFailure> {
        let creds = self.auth.credentials([("authorization", format!("Bearer {token}"))]).expect("well-formed token");
        let record = self.store.get_key(creds.client_id().as_str()).unwrap();
        let user = record.as_ref().and_then(|r| r.kind.user()).and_then(|u| self.store.get_user(u).unwrap());
        self.auth.authenticate(&creds, record.as_ref(), user.as_ref(), ts(self.now))
    }

    fn check_key(&self, i: usize, step: &str) {
        let k = &self.keys[i];
        let mut tokens: Vec<&str> = vec![k.current.as_str()];
        tokens.extend(k.previous.iter().map(|(t, _)| t.as_str()));
        tokens.extend(k.dead.iter().map(String::as_str));
        for t in tokens {
            let want = self.expected(k, t);
            let got = self.attempt(t);
            match (want, &got) {
                (None, Err(_)) => {}
                (Some(via_prev), Ok(a)) => {
                    assert_eq!(a.key_id.as_str(), k.id, "{step}: wrong key id");
                    assert_eq!(a.via_previous_secret, via_prev, "{step}: via_previous_secret for {}", k.id);
                }
                _ => panic!("{step}: key {} (model {k:?}) expected accept={} got {got:?}", k.id, want.is_some()),
            }
        }
        // The stored record is what the very next request reads: it must match the model.
        let stored = self.store.get_key(&k.id).unwrap();
        if k.deleted {
            assert!(stored.is_none(), "{step}: deleted key {} still stored", k.id);
        } else {
            let r = stored.unwrap_or_else(|| panic!("{step}: key {} vanished", k.id));
            assert_eq!(r.accounts, k.accounts, "{step}: account scope of {}", k.id);
            assert_eq!(r.name, k.name, "{step}: name of {}", k.id);
            assert_eq!(r.active, k.active, "{step}: state of {}", k.id);
            assert_eq!(r.version, k.version, "{step}: version of {}", k.id);
            assert_eq!(r.expires_at.map(|t| t.unix()), k.expires_at, "{step}: expiry of {}", k.id);
        }
    }

    fn check_all(&self, step: &str) {
        for i in 0..self.keys.len() {
            self.check_key(i, step);
        }
    }

    /// Applies one operation to both sides; returns the model keys whose tokens to re-check.
    fn apply(&mut self, op: &Op) -> Vec<usize> {
        let now = ts(self.now);
        let actor = self.actor.clone();
        match *op {
            Op::CreateApi { expires_in, active } => {
                let mut new = NewKey::api("api key", "member");
                new.expires_in = expires_in.map(|s| Duration::from_secs(i64::from(s)));
                new.active = active;
                let (rec, issued) = self.ring.create(&actor, new, now).unwrap();
                self.keys.push(MKey {
                    id: rec.id.as_str().to_string(),
                    user: None,
                    current: issued.token().expose().to_string(),
                    previous: None,
                    dead: Vec::new(),
                    active,
                    expires_at: expires_in.map(|s| self.now + i64::from(s)),
                    deleted: false,
                    accounts: AccountScope::All,
                    name: "api key".into(),
                    version: 1,
                });
                vec![self.keys.len() - 1]
            }
            Op::CreatePersonal { user, expires_in } => {
                let u = USERS[user];
                let mut new = NewKey::personal("pat", u, "member");
                new.expires_in = expires_in.map(|s| Duration::from_secs(i64::from(s)));
                let res = self.ring.create(&actor, new, now);
                if !self.users.contains(u) {
                    assert!(
                        matches!(res, Err(KeyringError::Invalid(_))),
                        "a personal token for a removed user must be refused"
                    );
                    return vec![];
                }
                let (rec, issued) = res.unwrap();
                self.keys.push(MKey {
                    id: rec.id.as_str().to_string(),
                    user: Some(u.to_string()),
                    current: issued.token().expose().to_string(),
                    previous: None,
                    dead: Vec::new(),
                    active: true,
                    expires_at: expires_in.map(|s| self.now + i64::from(s)),
                    deleted: false,
                    accounts: AccountScope::All,
                    name: "pat".into(),
                    version: 1,
                });
                vec![self.keys.len() - 1]
            }
            Op::Rename { key } => self.change(key, |k| {
                k.name = format!("{} again", k.name).chars().take(100).collect();
                Change::Rename(k.name.clone())
            }),
            Op::Rescope { key, accounts } => self.change(key, |k| {
                k.accounts = accounts_from_bits(accounts);
                Change::SetAccounts(k.accounts.clone())
            }),
            Op::SetActive { key, active } => self.change(key, |k| {
                k.active = active;
                Change::SetActive(active)
            }),
            Op::SetExpiry { key, in_secs } => {
                let now = self.now;
                self.change(key, |k| {
                    k.expires_at = in_secs.map(|s| now + i64::from(s));
                    Change::SetExpiry(k.expires_at.map(ts))
                })
            }
            Op::Rotate { key, grace } => {
                let Some(i) = self.pick(key) else { return vec![] };
                let res =
                    self.ring.rotate(&actor, &self.keys[i].id, grace.map(|g| Duration::from_secs(i64::from(g))), now);
                let now_s = self.now;
                let k = &mut self.keys[i];
                if k.deleted {
                    assert!(matches!(res, Err(KeyringError::NotFound(_))), "rotate of a deleted key: {res:?}");
                    return vec![i];
                }
                let (rec, issued) = res.unwrap();
                if let Some((old, _)) = k.previous.take() {
                    k.dead.push(old);
                }
                let old_current = std::mem::replace(&mut k.current, issued.token().expose().to_string());
                match grace {
                    Some(g) if g > 0 => k.previous = Some((old_current, now_s + i64::from(g))),
                    _ => k.dead.push(old_current),
                }
                k.version += 1;
                assert_eq!(rec.version, k.version);
                vec![i]
            }
            Op::Delete { key } => {
                let Some(i) = self.pick(key) else { return vec![] };
                let res = self.ring.delete(&actor, &self.keys[i].id, now);
                if self.keys[i].deleted {
                    assert!(matches!(res, Err(KeyringError::NotFound(_))), "double delete: {res:?}");
                } else {
                    res.unwrap();
                    self.keys[i].deleted = true;
                }
                vec![i]
            }
            Op::RemoveUser { user } => {
                let u = USERS[user];
                let res = self.ring.remove_user(&actor, u, now);
                let owned: Vec<usize> =
                    (0..self.keys.len()).filter(|&i| self.keys[i].user.as_deref() == Some(u)).collect();
                let live = owned.iter().filter(|&&i| !self.keys[i].deleted).count();
                if self.users.contains(u) || live > 0 {
                    assert_eq!(res.unwrap(), live, "remove_user deletes every live personal token");
                } else {
                    assert!(matches!(res, Err(KeyringError::NotFound(_))), "remove of an absent user: {res:?}");
                }
                self.users.remove(u);
                for &i in &owned {
                    self.keys[i].deleted = true;
                }
                owned
            }
            Op::PutUser { user } => {
                // Re-adding a removed user must not bring their deleted tokens back.
                let u = USERS[user];
                self.ring.put_user(&actor, user_record(u), now).unwrap();
                self.users.insert(u.to_string());
                (0..self.keys.len()).filter(|&i| self.keys[i].user.as_deref() == Some(u)).collect()
            }
            Op::Advance { secs } => {
                self.now += i64::from(secs);
                (0..self.keys.len()).collect()
            }
        }
    }

    /// A settings change on both sides (refused with NotFound for deleted keys).
    fn change(&mut self, key: usize, f: impl FnOnce(&mut MKey) -> Change) -> Vec<usize> {
        let Some(i) = self.pick(key) else { return vec![] };
        let mut next = self.keys[i].clone();
        let change = f(&mut next);
        let res = self.ring.update(&self.actor, &self.keys[i].id, change, ts(self.now));
        if self.keys[i].deleted {
            assert!(matches!(res, Err(KeyringError::NotFound(_))), "change of a deleted key: {res:?}");
        } else {
            let rec = res.unwrap();
            next.version += 1;
            assert_eq!(rec.version, next.version, "every change bumps the version");
            self.keys[i] = next;
        }
        vec![i]
    }
}

fn cases() -> u32 {
    std::env::var("KEYCEL_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn keyring_matches_reference_model(ops in proptest::collection::vec(op(), 1..14)) {
        let mut w = World::new();
        for (n, op) in ops.iter().enumerate() {
            let touched = w.apply(op);
            let step = format!("step {n} {op:?}");
            for i in touched {
                w.check_key(i, &step);
            }
        }
        w.check_all("end of sequence");
        // Time passes beyond every expiry and grace: only never-expiring, active, live keys work.
        w.now += 1_000;
        w.check_all("after all deadlines");
    }
}

/// A fixed sequence covering every kind of death once, so the property is exercised even if
/// the random search is cut short.
#[test]
fn every_way_to_die_in_one_sequence() {
    let mut w = World::new();
    let script = [
        Op::CreateApi { expires_in: None, active: true }, // 0: rotated without grace
        Op::CreateApi { expires_in: None, active: true }, // 1: rotated with grace
        Op::CreateApi { expires_in: None, active: true }, // 2: deleted
        Op::CreateApi { expires_in: None, active: true }, // 3: deactivated
        Op::CreateApi { expires_in: Some(5), active: true }, // 4: expires
        Op::CreatePersonal { user: 0, expires_in: None }, // 5: orphaned
        Op::Rotate { key: 0, grace: None },
        Op::Rotate { key: 1, grace: Some(10) },
        Op::Delete { key: 2 },
        Op::SetActive { key: 3, active: false },
        Op::RemoveUser { user: 0 },
        Op::PutUser { user: 0 },
        Op::Advance { secs: 6 },
        Op::Rotate { key: 1, grace: Some(3) },
        Op::Advance { secs: 5 },
        Op::SetActive { key: 3, active: true },
        Op::Rescope { key: 3, accounts: 0b101 },
    ];
    let mut accepted = BTreeMap::new();
    for (n, op) in script.iter().enumerate() {
        for i in w.apply(op) {
            w.check_key(i, &format!("step {n} {op:?}"));
        }
    }
    w.check_all("end");
    for (i, k) in w.keys.iter().enumerate() {
        accepted.insert(i, w.attempt(&k.current).is_ok());
    }
    // 0 and 1 live on with their new secrets, 2 deleted, 3 re-activated, 4 expired, 5 orphaned.
    let want: BTreeMap<usize, bool> = [(0, true), (1, true), (2, false), (3, true), (4, false), (5, false)].into();
    assert_eq!(accepted, want);
}

/// The exact instants: a grace deadline and an expiry are inclusive, one second later they are not.
#[test]
fn deadlines_are_inclusive_then_final() {
    let mut w = World::new();
    for op in [
        Op::CreateApi { expires_in: Some(10), active: true },
        Op::CreateApi { expires_in: None, active: true },
        Op::Rotate { key: 1, grace: Some(5) },
        Op::Advance { secs: 5 },
    ] {
        w.apply(&op);
    }
    let old = w.keys[1].previous.clone().unwrap().0;
    assert!(w.attempt(&old).unwrap().via_previous_secret, "old secret valid at its deadline");
    w.apply(&Op::Advance { secs: 5 });
    assert!(w.attempt(&w.keys[0].current).is_ok(), "key valid at its expiry instant");
    assert!(w.attempt(&old).is_err(), "old secret dead after its deadline");
    w.apply(&Op::Advance { secs: 1 });
    assert!(w.attempt(&w.keys[0].current).is_err(), "key dead after its expiry");
    w.check_all("end");
}
