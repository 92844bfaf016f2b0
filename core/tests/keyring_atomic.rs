//! A store failure leaves nothing half-applied, every change bumps the version and emits one
//! audit event, and refused changes are audited too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::audit::MemoryAudit;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::store::{KeyFilter, MemoryStore, Store, StoreError};
use keycel::time::{Duration, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A memory store whose writes fail while `broken` is set.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    broken: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Backend("disk on fire".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for Flaky {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get_key(id)
    }
    fn insert_key(&self, r: &KeyRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_key(r)
    }
    fn update_key(&self, r: &KeyRecord, v: u64) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update_key(r, v)
    }
    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_key(id)
    }
    fn list_keys(&self, f: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list_keys(f)
    }
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.get_user(id)
    }
    fn put_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_user(u)
    }
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.remove_user(id)
    }
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.list_users()
    }
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap()
}

#[test]
fn store_failures_change_nothing_and_versions_bump() {
    let store = Arc::new(Flaky::default());
    let audit = Arc::new(MemoryAudit::default());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 }).unwrap())
        .unwrap()
        .with_audit(audit.clone());
    let op = Actor::Operator("t".into());
    let (rec, _) = ring.create(&op, NewKey::api("A", "reader"), now()).unwrap();
    assert_eq!(rec.version, 1);
    store.broken.store(true, Ordering::SeqCst);
    let changes = [
        Change::Rename("B".into()),
        Change::SetAccounts(AccountScope::parse_list("acc_1").unwrap()),
        Change::SetActive(false),
        Change::SetExpiry(Some(now())),
    ];
    for c in changes.clone() {
        assert!(matches!(ring.update(&op, rec.id.as_str(), c, now()), Err(KeyringError::Store(_))));
    }
    assert!(ring.rotate(&op, rec.id.as_str(), None, now()).is_err());
    assert!(ring.delete(&op, rec.id.as_str(), now()).is_err());
    assert_eq!(store.get_key(rec.id.as_str()).unwrap().unwrap(), rec, "nothing half-applied");
    store.broken.store(false, Ordering::SeqCst);
    let mut version = rec.version;
    for c in changes {
        let r = ring.update(&op, rec.id.as_str(), c, now().plus(Duration::from_secs(1))).unwrap();
        assert_eq!(r.version, version + 1);
        version = r.version;
    }
    let (rotated, _) = ring.rotate(&op, rec.id.as_str(), None, now()).unwrap();
    assert_eq!(rotated.version, version + 1);
    assert_ne!(rotated.secret_hash, rec.secret_hash);
    let ok_events = audit.events().iter().filter(|e| e.outcome == "ok").count();
    assert_eq!(ok_events, 1 + 4 + 1, "one audit event per successful change");
}

#[test]
fn invalid_values_are_refused_with_the_field_named() {
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 }).unwrap())
        .unwrap();
    let op = Actor::Operator("t".into());
    let (rec, _) = ring.create(&op, NewKey::api("A", "reader"), now()).unwrap();
    match ring.update(&op, rec.id.as_str(), Change::Rename(String::new()), now()) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "name"),
        other => panic!("{other:?}"),
    }
    match ring.update(&op, rec.id.as_str(), Change::SetMaxConcurrent(Some(0)), now()) {
        Err(KeyringError::Invalid(e)) => assert_eq!(e.field, "max_concurrent"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get_key(rec.id.as_str()).unwrap().unwrap(), rec);
    // Personal tokens need an existing user holding the role.
    assert!(matches!(ring.create(&op, NewKey::personal("p", "ghost", "reader"), now()), Err(KeyringError::Invalid(_))));
    // Deleted ids are never reused and cannot be touched.
    ring.delete(&op, rec.id.as_str(), now()).unwrap();
    assert!(matches!(ring.rename(&op, rec.id.as_str(), "x", now()), Err(KeyringError::NotFound(_))));
    assert!(matches!(store.insert_key(&rec), Err(StoreError::AlreadyExists(_))));
}
