//! Re-hash on use: a key hashed with outdated argon2 parameters is upgraded after its first
//! successful use, at most once per key, off the request, and a failing upgrade never fails
//! the request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Authorization, Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::record::{KeyRecord, UserRecord};
use keycel::rehash::RehashError;
use keycel::store::{KeyFilter, MemoryStore, Store, StoreError};
use keycel::time::{Duration, Timestamp};
use keycel::Secret;
use std::sync::Arc;

const OLD: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
const NEW: HashParams = HashParams::EDGE;

fn engine(rehash: bool) -> Engine {
    let policy = keycel::policy::PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(NEW).unwrap();
    Engine::with_config(policy, auth, None).unwrap().rehash_on_use(rehash)
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap()
}

/// A key hashed with the old parameters, and its token.
fn old_key(store: Arc<MemoryStore>) -> (Keyring, KeyRecord, Secret) {
    let ring = Keyring::new(store).with_hash(HashPolicy::with_params(OLD).unwrap()).unwrap();
    let (record, issued) = ring.create(&Actor::Operator("t".into()), NewKey::api("old", "reader"), now()).unwrap();
    (ring, record, issued.token())
}

fn use_key(e: &Engine, store: &MemoryStore, token: &Secret) -> Authorization {
    let headers = [("authorization", format!("Bearer {}", token.expose()))];
    e.authorize(headers.iter().map(|(n, v)| (*n, v.as_str())), &Request::new("api.read"), store, now())
}

#[test]
fn off_by_default_only_reports() {
    let store = Arc::new(MemoryStore::new());
    let (_, _, token) = old_key(store.clone());
    let e = engine(false);
    assert!(!e.rehashes_on_use());
    let a = use_key(&e, store.as_ref(), &token);
    assert!(a.decision.allowed && a.authenticated.as_ref().unwrap().needs_rehash);
    assert!(a.rehash.is_none());
}

#[test]
fn first_successful_use_upgrades_the_hash_once() {
    let store = Arc::new(MemoryStore::new());
    let (_, before, token) = old_key(store.clone());
    let e = engine(true);
    let first = use_key(&e, store.as_ref(), &token);
    assert!(first.decision.allowed);
    let pending = first.rehash.expect("a pending re-hash");
    assert_eq!(pending.key_id(), &before.id);
    assert!(!format!("{pending:?}").contains(token.expose()));
    // A second use while the first upgrade is pending (a cache hit, still outdated) gets none.
    let second = use_key(&e, store.as_ref(), &token);
    assert!(second.decision.allowed && second.authenticated.as_ref().unwrap().needs_rehash);
    assert!(second.rehash.is_none(), "at most one per key");
    drop(first.lease);
    drop(second.lease);
    let after = pending.apply(store.as_ref(), now()).unwrap().expect("stored");
    assert_eq!(after.version, before.version + 1);
    assert!(after.secret_hash.as_str().starts_with("$argon2id$v=19$m=2048,t=1,p=1$"));
    assert_eq!(store.get_key(before.id.as_str()).unwrap().unwrap(), after);
    assert_eq!(KeyRecord { secret_hash: before.secret_hash.clone(), version: 1, ..after.clone() }, before);
    // The same secret now verifies against the new hash, which needs nothing more.
    e.authenticator().clear_cache();
    let third = use_key(&e, store.as_ref(), &token);
    assert!(third.decision.allowed);
    assert!(!third.authenticated.as_ref().unwrap().needs_rehash);
    assert!(third.rehash.is_none());
}

#[test]
fn a_dropped_or_failed_upgrade_frees_the_key_for_a_later_use() {
    let store = Arc::new(MemoryStore::new());
    let (_, _, token) = old_key(store.clone());
    let e = engine(true);
    drop(use_key(&e, store.as_ref(), &token).rehash.expect("pending"));
    let again = use_key(&e, store.as_ref(), &token).rehash.expect("claim freed by drop");
    let failing = FailingWrites(store.clone());
    let err = again.apply(&failing, now()).unwrap_err();
    assert!(matches!(err, RehashError::Store(StoreError::Backend(_))), "{err}");
    assert!(!err.to_string().contains(token.expose()));
    // The request that produced it was allowed regardless; a later use retries.
    let retry = use_key(&e, store.as_ref(), &token);
    assert!(retry.decision.allowed);
    assert!(retry.rehash.expect("claim freed by failure").apply(store.as_ref(), now()).unwrap().is_some());
}

#[test]
fn nothing_to_do_when_the_record_moved_on() {
    let store = Arc::new(MemoryStore::new());
    let (ring, record, token) = old_key(store.clone());
    let e = engine(true);
    let pending = use_key(&e, store.as_ref(), &token).rehash.unwrap();
    ring.rotate(&Actor::Operator("t".into()), record.id.as_str(), Some(Duration::from_secs(60)), now()).unwrap();
    let rotated = store.get_key(record.id.as_str()).unwrap().unwrap();
    assert_eq!(pending.apply(store.as_ref(), now()).unwrap(), None, "the rotated hash is not overwritten");
    assert_eq!(store.get_key(record.id.as_str()).unwrap().unwrap(), rotated);
    // The previous secret during its grace period never triggers one (fresh claims).
    let fresh = use_key(&engine(true), store.as_ref(), &token);
    assert!(fresh.decision.allowed && fresh.authenticated.as_ref().unwrap().via_previous_secret);
    assert!(fresh.rehash.is_none());
}

#[test]
fn hosts_that_store_records_themselves_get_the_new_record() {
    let store = Arc::new(MemoryStore::new());
    let (_, record, token) = old_key(store.clone());
    let e = engine(true);
    let pending = use_key(&e, store.as_ref(), &token).rehash.unwrap();
    let next = pending.rehashed_record(&record, now()).unwrap().unwrap();
    assert_eq!(next.version, record.version + 1);
    assert_ne!(next.secret_hash, record.secret_hash);
    // Claimed for good: the host stores it (the store here still has the old record).
    assert!(use_key(&e, store.as_ref(), &token).rehash.is_none());
    let other = use_key(&engine(true), store.as_ref(), &token).rehash.unwrap();
    let moved = KeyRecord { version: 9, secret_hash: next.secret_hash.clone(), ..record };
    assert_eq!(other.rehashed_record(&moved, now()).unwrap(), None);
}

/// A store whose writes fail (reads go to the inner store).
struct FailingWrites(Arc<MemoryStore>);

impl Store for FailingWrites {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get_key(id)
    }
    fn insert_key(&self, _: &KeyRecord) -> Result<(), StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }
    fn update_key(&self, _: &KeyRecord, _: u64) -> Result<(), StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }
    fn delete_key(&self, _: &str) -> Result<bool, StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }
    fn list_keys(&self, f: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.0.list_keys(f)
    }
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.0.get_user(id)
    }
    fn put_user(&self, _: &UserRecord) -> Result<(), StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }
    fn remove_user(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.0.list_users()
    }
}
