#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The staged store driven the way a host drives it (load misses, rerun, verify, apply), over
//! a document map standing in for the host store.

use super::*;
use crate::hash::{HashParams, HashPolicy};
use crate::keyring::{Actor, Keyring, KeyringError, NewKey};
use crate::store::conformance::{self, sample_key, sample_user};
use crate::time::Timestamp;

type Docs = BTreeMap<(&'static str, String), String>;

/// A host: a document map, one committer at a time (like a Durable Object's input gate).
#[derive(Debug, Default)]
struct Host {
    docs: Mutex<Docs>,
    commit: Mutex<()>,
}

impl Host {
    fn get(&self, c: Collection, id: &str) -> Option<String> {
        self.docs.lock().unwrap().get(&(c.as_str(), id.to_string())).cloned()
    }

    fn list(&self, c: Collection) -> Vec<String> {
        self.docs.lock().unwrap().iter().filter(|((cc, _), _)| *cc == c.as_str()).map(|(_, v)| v.clone()).collect()
    }

    fn load(&self, staged: &StagedStore, m: &Miss) -> Result<(), StoreError> {
        match m {
            Miss::Key(id) => staged.load_key(id, self.get(Collection::Keys, id).as_deref()),
            Miss::User(id) => staged.load_user(id, self.get(Collection::Users, id).as_deref()),
            Miss::Keys => staged.load_all_keys(&self.list(Collection::Keys)),
            Miss::Users => staged.load_all_users(&self.list(Collection::Users)),
        }
    }

    fn apply(&self, plan: &Plan) -> Result<(), StoreError> {
        let _one = self.commit.lock().unwrap();
        let found: Vec<Option<String>> = plan.checks.iter().map(|c| self.get(c.collection, &c.id)).collect();
        plan.verify(&found)?;
        let mut docs = self.docs.lock().unwrap();
        for op in &plan.ops {
            match op {
                Op::Put { collection, id, json } => docs.insert((collection.as_str(), id.clone()), json.clone()),
                Op::Delete { collection, id } => docs.remove(&(collection.as_str(), id.clone())),
            };
        }
        Ok(())
    }

    /// Runs `f` until it needs nothing more, then commits its writes; returns the result and
    /// how many runs it took.
    fn drive<T>(&self, staged: &StagedStore, f: impl Fn() -> Result<T, StoreError>) -> (Result<T, StoreError>, usize) {
        for round in 1..=8 {
            staged.begin();
            let r = f();
            let misses = staged.misses();
            if !misses.is_empty() {
                for m in &misses {
                    if let Err(e) = self.load(staged, m) {
                        return (Err(e), round);
                    }
                }
                continue;
            }
            if r.is_ok() {
                if let Err(e) = self.apply(&staged.plan()) {
                    return (Err(e), round);
                }
            }
            return (r, round);
        }
        panic!("more than 8 runs");
    }
}

/// The conformance suite's view of a host store: every call is one staged session.
#[derive(Debug, Default)]
struct Driven(Host);

impl Driven {
    fn run<T>(&self, f: impl Fn(&StagedStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let staged = StagedStore::new();
        self.0.drive(&staged, || f(&staged)).0
    }
}

impl Store for Driven {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.run(|s| s.get_key(id))
    }
    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.run(|s| s.insert_key(record))
    }
    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        self.run(|s| s.update_key(record, expected_version))
    }
    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        self.run(|s| s.delete_key(id))
    }
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        self.run(|s| s.list_keys(filter))
    }
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.run(|s| s.get_user(id))
    }
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.run(|s| s.put_user(user))
    }
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.run(|s| s.remove_user(id))
    }
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.run(|s| s.list_users())
    }
}

#[test]
fn staged_store_committing_to_a_document_map_conforms() {
    let failures = conformance::run(&|| Ok(Box::new(Driven::default())));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_read_not_loaded_is_a_miss_and_the_rerun_finds_it() {
    let host = Host::default();
    let k = sample_key(1, KeyKind::Api).unwrap();
    host.docs.lock().unwrap().insert(("keys", k.id.as_str().to_string()), k.to_json());
    let staged = StagedStore::new();
    staged.begin();
    assert_eq!(staged.get_key(k.id.as_str()), Err(StoreError::Backend(MISS_MESSAGE.into())));
    assert_eq!(staged.misses(), vec![Miss::Key(k.id.as_str().to_string())]);
    assert!(staged.list_keys(&KeyFilter::default()).is_err());
    assert!(staged.list_users().is_err());
    assert_eq!(staged.misses().len(), 3, "a list miss for each collection");
    assert_eq!(Miss::Keys.id(), None);
    assert_eq!(Miss::Users.collection(), Collection::Users);
    let (got, runs) = host.drive(&staged, || staged.get_key(k.id.as_str()));
    assert_eq!(got.unwrap(), Some(k));
    assert_eq!(runs, 2);
    assert!(staged.plan().is_empty(), "a read writes nothing");
}

#[test]
fn a_loaded_document_must_be_the_one_asked_for_and_valid() {
    let staged = StagedStore::new();
    let k = sample_key(1, KeyKind::Api).unwrap();
    assert!(matches!(staged.load_key("kc_0000000000000002", Some(&k.to_json())), Err(StoreError::Backend(_))));
    assert!(matches!(staged.load_key(k.id.as_str(), Some("{}")), Err(StoreError::Corrupt(_))));
    assert!(matches!(staged.load_all_users(&["not json"]), Err(StoreError::Corrupt(_))));
    let u = sample_user("u_1").unwrap();
    assert!(matches!(staged.load_user("u_2", Some(&serde_json::to_string(&u).unwrap())), Err(StoreError::Backend(_))));
}

#[test]
fn writes_wait_for_the_commit_and_carry_expected_versions() {
    let host = Host::default();
    let k = sample_key(1, KeyKind::Api).unwrap();
    let id = k.id.as_str().to_string();
    host.docs.lock().unwrap().insert(("keys", id.clone()), k.to_json());
    let staged = StagedStore::new();
    staged.load_key(&id, Some(&k.to_json())).unwrap();
    staged.begin();
    let next = KeyRecord { name: "renamed".into(), version: 2, ..k.clone() };
    staged.update_key(&next, 1).unwrap();
    assert_eq!(staged.get_key(&id).unwrap().unwrap().name, "renamed", "the run sees its own write");
    assert_eq!(host.get(Collection::Keys, &id).unwrap(), k.to_json(), "nothing written before the commit");
    let plan = staged.plan();
    assert_eq!(plan.checks, vec![Check { collection: Collection::Keys, id: id.clone(), expect: Expect::Version(1) }]);
    // Someone else commits version 2 first: the plan no longer applies.
    host.docs
        .lock()
        .unwrap()
        .insert(("keys", id.clone()), KeyRecord { name: "other".into(), ..next.clone() }.to_json());
    assert_eq!(host.apply(&plan), Err(StoreError::Conflict { id: id.clone(), expected: 1, found: 2 }));
    assert_eq!(plan.verify(&[]), Err(StoreError::Backend("commit check: 0 documents for 1 checks".into())));
    assert!(matches!(plan.verify(&[Some("[".into())]), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_new_id_must_be_free_among_live_and_retired_ids_at_commit() {
    let host = Host::default();
    let k = sample_key(1, KeyKind::Api).unwrap();
    let id = k.id.as_str().to_string();
    host.docs.lock().unwrap().insert(("retired", id.clone()), format!("{{\"id\":\"{id}\"}}"));
    let staged = StagedStore::new();
    let (r, runs) = host.drive(&staged, || staged.insert_key(&k));
    assert_eq!((r, runs), (Err(StoreError::AlreadyExists(id.clone())), 1), "no read needed; the commit refuses");
    assert!(host.get(Collection::Keys, &id).is_none());
}

#[test]
fn deleting_retires_the_id_first_and_checks_the_version() {
    let host = Host::default();
    let k = sample_key(1, KeyKind::Api).unwrap();
    let id = k.id.as_str().to_string();
    host.docs.lock().unwrap().insert(("keys", id.clone()), k.to_json());
    let staged = StagedStore::new();
    staged.load_key(&id, Some(&k.to_json())).unwrap();
    staged.begin();
    assert_eq!(staged.delete_key(&id), Ok(true));
    assert_eq!(staged.insert_key(&k), Err(StoreError::AlreadyExists(id.clone())), "retired within the run too");
    let plan = staged.plan();
    assert!(matches!(&plan.ops[0], Op::Put { collection: Collection::Retired, .. }), "{plan:?}");
    assert!(matches!(&plan.ops[1], Op::Delete { collection: Collection::Keys, .. }), "{plan:?}");
    assert_eq!(plan.checks, vec![Check { collection: Collection::Keys, id: id.clone(), expect: Expect::Version(1) }]);
    host.apply(&plan).unwrap();
    assert!(host.get(Collection::Retired, &id).is_some());
}

fn cheap_keyring(store: Arc<StagedStore>) -> Keyring {
    let hash = HashPolicy { params: HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 }, ..HashPolicy::default() };
    Keyring::new(store).with_hash(hash).unwrap()
}

/// The keyring over a staged store: one round trip per miss, then one commit; a concurrent
/// change between load and commit is a conflict and writes nothing.
#[test]
fn keyring_operations_over_a_staged_store() {
    let host = Host::default();
    let op = Actor::Operator("test".into());
    let now = Timestamp::from_unix(1_800_000_000).unwrap();
    let staged = Arc::new(StagedStore::new());
    let ring = cheap_keyring(staged.clone());
    let store_err = |e: KeyringError| match e {
        KeyringError::Store(s) => s,
        KeyringError::NotFound(id) => StoreError::NotFound(id),
        other => StoreError::Backend(other.to_string()),
    };
    let (created, runs) = host.drive(&staged, || ring.create(&op, NewKey::api("a", "admin"), now).map_err(store_err));
    let (record, _issued) = created.unwrap();
    assert_eq!(runs, 1);
    let id = record.id.as_str().to_string();
    assert!(host.get(Collection::Keys, &id).is_some());

    // Two sessions rename from version 1; the second to commit conflicts.
    let (s1, s2) = (Arc::new(StagedStore::new()), Arc::new(StagedStore::new()));
    let (r1, r2) = (cheap_keyring(s1.clone()), cheap_keyring(s2.clone()));
    for (s, r, name) in [(&s1, &r1, "one"), (&s2, &r2, "two")] {
        s.begin();
        assert!(r.rename(&op, &id, name, now).is_err());
        for m in s.misses() {
            host.load(s, &m).unwrap();
        }
        s.begin();
        r.rename(&op, &id, name, now).unwrap();
    }
    host.apply(&s1.plan()).unwrap();
    assert_eq!(host.apply(&s2.plan()), Err(StoreError::Conflict { id: id.clone(), expected: 1, found: 2 }));
    assert!(host.get(Collection::Keys, &id).unwrap().contains("\"one\""));

    // Removing a user takes their tokens (a whole-collection read) in one commit.
    let staged = Arc::new(StagedStore::new());
    let ring = cheap_keyring(staged.clone());
    let (u, _) = host.drive(&staged, || ring.put_user(&op, sample_user("u_1").unwrap(), now).map_err(store_err));
    u.unwrap();
    let staged = Arc::new(StagedStore::new());
    let ring = cheap_keyring(staged.clone());
    let (p, _) =
        host.drive(&staged, || ring.create(&op, NewKey::personal("p", "u_1", "admin"), now).map_err(store_err));
    let pid = p.unwrap().0.id.as_str().to_string();
    let staged = Arc::new(StagedStore::new());
    let ring = cheap_keyring(staged.clone());
    let (gone, runs) = host.drive(&staged, || ring.remove_user(&op, "u_1", now).map_err(store_err));
    assert_eq!(gone, Ok(1));
    assert_eq!(runs, 3, "the user, then the key collection, then the run that commits");
    assert!(host.get(Collection::Keys, &pid).is_none());
    assert!(host.get(Collection::Retired, &pid).is_some());
    assert!(host.get(Collection::Users, "u_1").is_none());
    assert_eq!(host.list(Collection::Keys).len(), 1);
}
