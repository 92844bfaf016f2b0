//! One conformance suite for every [`Store`]: memory, SQLite, PostgreSQL, host stores through
//! [`SimpleAdapter`](super::SimpleAdapter), and the record cache over any of them. Each case
//! gets a fresh, empty store from the caller's factory and returns what went wrong, so a store
//! crate's test is three lines and a Python host store runs the very same cases.
//!
//! ```ignore
//! let failures = keycel::store::conformance::run(&|| Ok(Box::new(MemoryStore::new())));
//! assert!(failures.is_empty(), "{failures:#?}");
//! ```

use super::{KeyFilter, Store, StoreError};
use crate::hash::PhcHash;
use crate::record::{AccountScope, KeyKind, KeyRecord, UserRecord};
use crate::time::Timestamp;
use crate::token::ClientId;

/// A case's verdict: `Err` says what the store did wrong.
pub type Outcome = Result<(), String>;

/// Makes a fresh, empty store for one case.
pub type Factory<'a> = &'a dyn Fn() -> Result<Box<dyn Store>, String>;

/// One case: it gets a fresh, empty store.
pub type Case = fn(&dyn Store) -> Outcome;

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("round_trip", round_trip),
    ("duplicate_insert_refused", duplicate_insert_refused),
    ("ids_never_reused", ids_never_reused),
    ("optimistic_versions", optimistic_versions),
    ("list_filters_and_order", list_filters_and_order),
    ("users_put_replace_list", users_put_replace_list),
    ("remove_user_takes_tokens", remove_user_takes_tokens),
    ("remove_unknown_user", remove_unknown_user),
    ("invalid_records_refused", invalid_records_refused),
    ("shared_reads_see_changes", shared_reads_see_changes),
    ("one_writer_wins", one_writer_wins),
];

/// Runs every case on a fresh store each; returns `"case: problem"` lines (empty = conforms).
pub fn run(factory: Factory<'_>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, case) in CASES {
        let outcome = factory().and_then(|store| case(store.as_ref()));
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    failures
}

/// A well-formed PHC string (the suite never verifies secrets).
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

/// A valid key record with id `kc_000000000000000n`.
pub fn sample_key(n: u32, kind: KeyKind) -> Result<KeyRecord, String> {
    let id = ClientId::parse_any(&format!("kc_{n:016}")).map_err(|e| e.to_string())?;
    let hash = PhcHash::parse(PHC).map_err(|e| e.to_string())?;
    let t = Timestamp::from_unix(1_700_000_000).ok_or("timestamp")?;
    let mut r = KeyRecord::new(id, format!("key {n}"), kind, "admin", hash, t);
    r.scopes.insert("api.read".to_string());
    r.validate().map_err(|e| e.to_string())?;
    Ok(r)
}

fn api(n: u32) -> Result<KeyRecord, String> {
    sample_key(n, KeyKind::Api)
}

fn personal(n: u32, user: &str) -> Result<KeyRecord, String> {
    sample_key(n, KeyKind::Personal { user: user.to_string() })
}

/// A valid user record.
pub fn sample_user(id: &str) -> Result<UserRecord, String> {
    UserRecord::new(id, ["admin".to_string()], AccountScope::All).map_err(|e| e.to_string())
}

fn ok<T>(what: &str, r: Result<T, StoreError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: unexpected error {e}"))
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn ids(keys: &[KeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.id.as_str()).collect()
}

/// The next version of `r`, as the keyring writes it.
fn bumped(r: &KeyRecord, name: &str) -> KeyRecord {
    KeyRecord { name: name.to_string(), version: r.version + 1, ..r.clone() }
}

fn round_trip(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    ok("insert", s.insert_key(&k))?;
    let got = ok("get", s.get_key(k.id.as_str()))?;
    expect(got.as_ref() == Some(&k), || format!("get_key returned {got:?}"))?;
    let shared = ok("get shared", s.get_key_shared(k.id.as_str()))?;
    expect(shared.as_deref() == Some(&k), || "get_key_shared differs from the inserted record".into())?;
    let none = ok("get unknown", s.get_key("kc_9999999999999999"))?;
    expect(none.is_none(), || "unknown id found".into())?;
    let u = sample_user("u_1")?;
    ok("put user", s.put_user(&u))?;
    let got = ok("get user", s.get_user("u_1"))?;
    expect(got.as_ref() == Some(&u), || format!("get_user returned {got:?}"))?;
    let shared = ok("get user shared", s.get_user_shared("u_1"))?;
    expect(shared.as_deref() == Some(&u), || "get_user_shared differs".into())?;
    expect(ok("get unknown user", s.get_user("u_none"))?.is_none(), || "unknown user found".into())
}

fn duplicate_insert_refused(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    ok("insert", s.insert_key(&k))?;
    let again = s.insert_key(&bumped(&k, "other"));
    expect(matches!(again, Err(StoreError::AlreadyExists(ref id)) if id == k.id.as_str()), || {
        format!("second insert: {again:?}")
    })?;
    let got = ok("get", s.get_key(k.id.as_str()))?;
    expect(got.as_ref() == Some(&k), || "a refused insert changed the record".into())
}

fn ids_never_reused(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    ok("insert", s.insert_key(&k))?;
    expect(ok("delete", s.delete_key(k.id.as_str()))?, || "delete of a present key returned false".into())?;
    expect(!ok("delete again", s.delete_key(k.id.as_str()))?, || "second delete returned true".into())?;
    expect(ok("get", s.get_key(k.id.as_str()))?.is_none(), || "deleted key still found".into())?;
    let again = s.insert_key(&k);
    expect(matches!(again, Err(StoreError::AlreadyExists(_))), || format!("re-insert of a deleted id: {again:?}"))?;
    // Ids retired by remove_user are never reused either.
    let p = personal(2, "u_1")?;
    ok("insert personal", s.insert_key(&p))?;
    ok("remove user", s.remove_user("u_1"))?;
    let again = s.insert_key(&p);
    expect(matches!(again, Err(StoreError::AlreadyExists(_))), || format!("re-insert after remove_user: {again:?}"))
}

fn optimistic_versions(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    ok("insert", s.insert_key(&k))?;
    let v2 = bumped(&k, "renamed");
    ok("update from 1", s.update_key(&v2, 1))?;
    let got = ok("get", s.get_key(k.id.as_str()))?;
    expect(got.as_ref() == Some(&v2), || format!("after update: {got:?}"))?;
    let stale = s.update_key(&bumped(&k, "lost update"), 1);
    expect(matches!(stale, Err(StoreError::Conflict { expected: 1, found: 2, .. })), || {
        format!("stale update: {stale:?}")
    })?;
    let got = ok("get", s.get_key(k.id.as_str()))?;
    expect(got.as_ref() == Some(&v2), || "a conflicting update changed the record".into())?;
    let missing = s.update_key(&api(7)?, 1);
    expect(matches!(missing, Err(StoreError::NotFound(_))), || format!("update of a missing key: {missing:?}"))
}

fn list_filters_and_order(s: &dyn Store) -> Outcome {
    // Inserted out of order: listings come back ordered by id.
    let mut inactive = api(3)?;
    inactive.active = false;
    for r in [personal(4, "u_b")?, inactive, api(1)?, personal(2, "u_a")?, personal(5, "u_a")?] {
        ok("insert", s.insert_key(&r))?;
    }
    let all = ok("list", s.list_keys(&KeyFilter::default()))?;
    let want_all = [
        "kc_0000000000000001",
        "kc_0000000000000002",
        "kc_0000000000000003",
        "kc_0000000000000004",
        "kc_0000000000000005",
    ];
    expect(ids(&all) == want_all, || format!("list all: {:?}", ids(&all)))?;
    let f = KeyFilter { user: Some("u_a".into()), ..KeyFilter::default() };
    let by_user = ok("list by user", s.list_keys(&f))?;
    expect(ids(&by_user) == ["kc_0000000000000002", "kc_0000000000000005"], || {
        format!("by user: {:?}", ids(&by_user))
    })?;
    let f = KeyFilter { kind: Some("api".into()), ..KeyFilter::default() };
    let by_kind = ok("list by kind", s.list_keys(&f))?;
    expect(ids(&by_kind) == ["kc_0000000000000001", "kc_0000000000000003"], || {
        format!("by kind: {:?}", ids(&by_kind))
    })?;
    let f = KeyFilter { active: Some(false), ..KeyFilter::default() };
    let off = ok("list inactive", s.list_keys(&f))?;
    expect(ids(&off) == ["kc_0000000000000003"], || format!("inactive: {:?}", ids(&off)))?;
    let f = KeyFilter { kind: Some("api".into()), active: Some(true), user: None };
    let both = ok("list api+active", s.list_keys(&f))?;
    expect(ids(&both) == ["kc_0000000000000001"], || format!("api+active: {:?}", ids(&both)))
}

fn users_put_replace_list(s: &dyn Store) -> Outcome {
    for id in ["u_c", "u_a", "u_b"] {
        ok("put", s.put_user(&sample_user(id)?))?;
    }
    let mut changed = sample_user("u_a")?;
    changed.roles = ["viewer".to_string()].into_iter().collect();
    changed.version = 2;
    ok("replace", s.put_user(&changed))?;
    let all = ok("list", s.list_users())?;
    let names: Vec<&str> = all.iter().map(|u| u.id.as_str()).collect();
    expect(names == ["u_a", "u_b", "u_c"], || format!("list users: {names:?}"))?;
    expect(all.first() == Some(&changed), || format!("replaced user: {:?}", all.first()))
}

fn remove_user_takes_tokens(s: &dyn Store) -> Outcome {
    ok("put user", s.put_user(&sample_user("u_1")?))?;
    ok("put other", s.put_user(&sample_user("u_2")?))?;
    for r in [personal(3, "u_1")?, api(1)?, personal(2, "u_1")?, personal(4, "u_2")?] {
        ok("insert", s.insert_key(&r))?;
    }
    let gone = ok("remove", s.remove_user("u_1"))?;
    expect(gone == ["kc_0000000000000002", "kc_0000000000000003"], || format!("removed ids: {gone:?}"))?;
    expect(ok("get user", s.get_user("u_1"))?.is_none(), || "user survived".into())?;
    expect(ok("get shared user", s.get_user_shared("u_1"))?.is_none(), || "user survived (shared read)".into())?;
    for id in &gone {
        expect(ok("get", s.get_key(id))?.is_none(), || format!("token {id} survived"))?;
        expect(ok("get shared", s.get_key_shared(id))?.is_none(), || format!("token {id} survived (shared read)"))?;
    }
    let left = ok("list", s.list_keys(&KeyFilter::default()))?;
    expect(ids(&left) == ["kc_0000000000000001", "kc_0000000000000004"], || format!("left: {:?}", ids(&left)))?;
    expect(ok("get other", s.get_user("u_2"))?.is_some(), || "another user was removed".into())?;
    // Tokens whose user record is missing are still removed.
    ok("insert orphan", s.insert_key(&personal(6, "u_ghost")?))?;
    let gone = ok("remove ghost", s.remove_user("u_ghost"))?;
    expect(gone == ["kc_0000000000000006"], || format!("orphans removed: {gone:?}"))
}

fn remove_unknown_user(s: &dyn Store) -> Outcome {
    let r = s.remove_user("u_nobody");
    expect(matches!(r, Err(StoreError::NotFound(ref id)) if id == "u_nobody"), || format!("remove unknown: {r:?}"))
}

fn invalid_records_refused(s: &dyn Store) -> Outcome {
    let mut bad = api(1)?;
    bad.name = String::new();
    let r = s.insert_key(&bad);
    expect(matches!(r, Err(StoreError::Corrupt(_))), || format!("invalid insert: {r:?}"))?;
    expect(ok("get", s.get_key(bad.id.as_str()))?.is_none(), || "an invalid record was stored".into())?;
    // The refused id was never used, so it is still free.
    let k = api(1)?;
    ok("insert valid", s.insert_key(&k))?;
    let mut bad = bumped(&k, "x");
    bad.max_concurrent = Some(0);
    let r = s.update_key(&bad, 1);
    expect(matches!(r, Err(StoreError::Corrupt(_))), || format!("invalid update: {r:?}"))?;
    expect(ok("get", s.get_key(k.id.as_str()))?.as_ref() == Some(&k), || "invalid update changed the record".into())?;
    let mut u = sample_user("u_1")?;
    u.id = "has space".into();
    let r = s.put_user(&u);
    expect(matches!(r, Err(StoreError::Corrupt(_))), || format!("invalid user: {r:?}"))?;
    expect(ok("list users", s.list_users())?.is_empty(), || "an invalid user was stored".into())
}

/// What `authorize` reads must follow every change at once (the record cache's contract).
fn shared_reads_see_changes(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    let id = k.id.as_str();
    ok("insert", s.insert_key(&k))?;
    expect(ok("warm", s.get_key_shared(id))?.is_some(), || "inserted key not found".into())?;
    let mut off = bumped(&k, "off");
    off.active = false;
    ok("deactivate", s.update_key(&off, 1))?;
    let got = ok("after update", s.get_key_shared(id))?;
    expect(got.as_deref() == Some(&off), || format!("shared read after update: {got:?}"))?;
    ok("delete", s.delete_key(id))?;
    let got = ok("after delete", s.get_key_shared(id))?;
    expect(got.is_none(), || "shared read after delete still finds the key".into())?;
    let u = sample_user("u_1")?;
    ok("put user", s.put_user(&u))?;
    let p = personal(2, "u_1")?;
    ok("insert personal", s.insert_key(&p))?;
    expect(ok("warm user", s.get_user_shared("u_1"))?.is_some(), || "user not found".into())?;
    expect(ok("warm token", s.get_key_shared(p.id.as_str()))?.is_some(), || "token not found".into())?;
    let mut narrowed = u.clone();
    narrowed.accounts = AccountScope::parse_list("acct_1").map_err(|e| e.to_string())?;
    narrowed.version = 2;
    ok("narrow user", s.put_user(&narrowed))?;
    let got = ok("user after put", s.get_user_shared("u_1"))?;
    expect(got.as_deref() == Some(&narrowed), || format!("shared user after put: {got:?}"))?;
    ok("remove user", s.remove_user("u_1"))?;
    expect(ok("user after remove", s.get_user_shared("u_1"))?.is_none(), || "removed user still found".into())?;
    let got = ok("token after remove", s.get_key_shared(p.id.as_str()))?;
    expect(got.is_none(), || "removed user's token still found".into())
}

/// Several threads update from the same version: exactly one wins, the rest see `Conflict`.
fn one_writer_wins(s: &dyn Store) -> Outcome {
    let k = api(1)?;
    ok("insert", s.insert_key(&k))?;
    let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let next = bumped(&k, &format!("writer {i}"));
                scope.spawn(move || s.update_key(&next, 1))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(StoreError::Backend("panicked".into())))).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count();
    expect(wins == 1 && conflicts == 5, || format!("expected 1 win and 5 conflicts, got {results:?}"))?;
    let got = ok("get", s.get_key(k.id.as_str()))?.ok_or("key vanished")?;
    expect(got.version == 2 && got.name.starts_with("writer "), || format!("final record: {got:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::store::{Collection, MemoryStore, SimpleAdapter, SimpleStore};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[test]
    fn memory_store_conforms() {
        let failures = run(&|| Ok(Box::new(MemoryStore::new())));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// The smallest host store: a map of documents.
    #[derive(Debug, Default)]
    struct Docs(Mutex<BTreeMap<(&'static str, String), String>>);

    impl SimpleStore for Docs {
        fn get(&self, c: Collection, id: &str) -> Result<Option<String>, StoreError> {
            Ok(self.0.lock().unwrap().get(&(c.as_str(), id.to_string())).cloned())
        }
        fn put(&self, c: Collection, id: &str, json: &str) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert((c.as_str(), id.to_string()), json.to_string());
            Ok(())
        }
        fn delete(&self, c: Collection, id: &str) -> Result<bool, StoreError> {
            Ok(self.0.lock().unwrap().remove(&(c.as_str(), id.to_string())).is_some())
        }
        fn list(&self, c: Collection) -> Result<Vec<String>, StoreError> {
            Ok(self.0.lock().unwrap().iter().filter(|((cc, _), _)| *cc == c.as_str()).map(|(_, v)| v.clone()).collect())
        }
    }

    #[test]
    fn simple_adapter_conforms() {
        let failures = run(&|| Ok(Box::new(SimpleAdapter::new(Docs::default()))));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// A store that breaks a rule must fail the suite (the suite can fail).
    #[derive(Debug, Default)]
    struct Forgetful(MemoryStore);
    impl Store for Forgetful {
        fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
            self.0.get_key(id)
        }
        fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
            self.0.insert_key(record)
        }
        fn update_key(&self, record: &KeyRecord, _expected: u64) -> Result<(), StoreError> {
            let cur = self.0.get_key(record.id.as_str())?.ok_or(StoreError::NotFound(String::new()))?;
            self.0.update_key(record, cur.version)
        }
        fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
            self.0.delete_key(id)
        }
        fn list_keys(&self, f: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
            self.0.list_keys(f)
        }
        fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
            self.0.get_user(id)
        }
        fn put_user(&self, u: &UserRecord) -> Result<(), StoreError> {
            self.0.put_user(u)
        }
        fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
            self.0.remove_user(id)
        }
        fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
            self.0.list_users()
        }
    }

    #[test]
    fn a_store_without_version_checks_fails() {
        let failures = run(&|| Ok(Box::new(Forgetful::default())));
        assert!(failures.iter().any(|f| f.starts_with("optimistic_versions")), "{failures:#?}");
        assert!(failures.iter().any(|f| f.starts_with("one_writer_wins")), "{failures:#?}");
    }
}
