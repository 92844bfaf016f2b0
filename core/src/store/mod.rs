//! Where records live. [`Store`] is what the keyring needs; [`MemoryStore`] is the thread-safe
//! in-memory implementation; [`SimpleStore`] is a four-method protocol (get / put / delete /
//! list of JSON documents) that hosts can implement in any language, adapted to [`Store`] by
//! [`SimpleAdapter`] so the version checks stay here, in core.

pub mod cached;
#[cfg(any(test, feature = "test-util", feature = "store-conformance"))]
pub mod conformance;
pub mod staged;

pub use cached::{AlwaysFresh, CachedStore, Freshness, RecordCache};

use crate::record::{KeyKind, KeyRecord, RecordError, UserRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No such key or user.
    NotFound(String),
    /// The id exists already (or existed: ids are never reused).
    AlreadyExists(String),
    /// Someone else changed the record first (optimistic concurrency).
    Conflict {
        /// Record id.
        id: String,
        /// Version the writer started from.
        expected: u64,
        /// Version found.
        found: u64,
    },
    /// A stored document failed validation.
    Corrupt(RecordError),
    /// The backend failed (I/O, SQL, host callback); nothing was changed.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(id) => write!(f, "not found: {id}"),
            StoreError::AlreadyExists(id) => write!(f, "already exists: {id}"),
            StoreError::Conflict { id, expected, found } => {
                write!(f, "{id} changed concurrently (expected version {expected}, found {found})")
            }
            StoreError::Corrupt(e) => write!(f, "stored record is invalid: {e}"),
            StoreError::Backend(e) => write!(f, "store backend failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Which keys to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Only personal tokens of this user.
    pub user: Option<String>,
    /// Only `api` or `personal` keys.
    pub kind: Option<String>,
    /// Only active (true) or inactive (false) keys.
    pub active: Option<bool>,
}

impl KeyFilter {
    /// True when `r` passes the filter.
    pub fn matches(&self, r: &KeyRecord) -> bool {
        self.user.as_deref().is_none_or(|u| r.kind.user() == Some(u))
            && self.kind.as_deref().is_none_or(|k| r.kind.as_str() == k)
            && self.active.is_none_or(|a| r.active == a)
    }
}

/// Storage for keys and users. Every method is atomic: it fully happens or not at all.
pub trait Store: Send + Sync {
    /// A key by client id.
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// A key by client id, shared: what `authorize` reads on every request. Stores that keep
    /// records in memory hand out a reference count instead of a copy.
    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        Ok(self.get_key(id)?.map(Arc::new))
    }
    /// A user by id, shared (see [`Store::get_key_shared`]).
    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        Ok(self.get_user(id)?.map(Arc::new))
    }
    /// Adds a new key; `AlreadyExists` if the id is or ever was in use.
    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError>;
    /// Replaces a key if its stored version is still `expected_version`.
    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError>;
    /// Deletes a key for good; false when there was none.
    fn delete_key(&self, id: &str) -> Result<bool, StoreError>;
    /// Keys passing the filter, ordered by id.
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError>;
    /// A user by id.
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Adds or replaces a user.
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Removes a user and every personal token of theirs, atomically; returns the deleted key ids.
    /// `NotFound` when neither the user nor any of their tokens exist.
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError>;
    /// All users, ordered by id.
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
}

/// A shared store is a store (so an `Arc<dyn Store>` can be passed where a `Lookup` is taken).
impl<T: Store + ?Sized> Store for Arc<T> {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        (**self).get_key(id)
    }
    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        (**self).get_key_shared(id)
    }
    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        (**self).get_user_shared(id)
    }
    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        (**self).insert_key(record)
    }
    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        (**self).update_key(record, expected_version)
    }
    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        (**self).delete_key(id)
    }
    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).list_keys(filter)
    }
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        (**self).get_user(id)
    }
    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        (**self).put_user(user)
    }
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        (**self).remove_user(id)
    }
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        (**self).list_users()
    }
}

#[derive(Debug, Default)]
struct State {
    keys: BTreeMap<String, Arc<KeyRecord>>,
    users: BTreeMap<String, Arc<UserRecord>>,
    retired: BTreeSet<String>,
}

/// Thread-safe in-memory store (tests, demos, single-process services).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read().keys.get(id).map(|r| KeyRecord::clone(r)))
    }

    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        Ok(self.read().keys.get(id).cloned())
    }

    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        Ok(self.read().users.get(id).cloned())
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        record.validate().map_err(StoreError::Corrupt)?;
        let mut s = self.write();
        let id = record.id.as_str();
        if s.keys.contains_key(id) || s.retired.contains(id) {
            return Err(StoreError::AlreadyExists(id.to_string()));
        }
        s.keys.insert(id.to_string(), Arc::new(record.clone()));
        Ok(())
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        record.validate().map_err(StoreError::Corrupt)?;
        let mut s = self.write();
        let id = record.id.as_str();
        let cur = s.keys.get_mut(id).ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if cur.version != expected_version {
            return Err(StoreError::Conflict { id: id.to_string(), expected: expected_version, found: cur.version });
        }
        *cur = Arc::new(record.clone());
        Ok(())
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut s = self.write();
        let existed = s.keys.remove(id).is_some();
        if existed {
            s.retired.insert(id.to_string());
        }
        Ok(existed)
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.read().keys.values().filter(|r| filter.matches(r)).map(|r| KeyRecord::clone(r)).collect())
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.read().users.get(id).map(|u| UserRecord::clone(u)))
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        user.validate().map_err(StoreError::Corrupt)?;
        self.write().users.insert(user.id.clone(), Arc::new(user.clone()));
        Ok(())
    }

    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut s = self.write();
        let had_user = s.users.remove(id).is_some();
        let doomed: Vec<String> = s
            .keys
            .values()
            .filter(|r| matches!(&r.kind, KeyKind::Personal { user } if user == id))
            .map(|r| r.id.as_str().to_string())
            .collect();
        if !had_user && doomed.is_empty() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        for k in &doomed {
            s.keys.remove(k);
            s.retired.insert(k.clone());
        }
        Ok(doomed)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(self.read().users.values().map(|u| UserRecord::clone(u)).collect())
    }
}

/// Record collections in a [`SimpleStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Key records, by client id.
    Keys,
    /// User records, by user id.
    Users,
    /// Deleted key ids (`{"id": ..}` tombstones), so an id is never issued twice.
    Retired,
}

impl Collection {
    /// `"keys"` or `"users"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Keys => "keys",
            Collection::Users => "users",
            Collection::Retired => "retired",
        }
    }
}

/// The smallest store a host can write (e.g. in Python over its own database): JSON documents
/// by collection and id. Atomicity across calls is the host's; [`SimpleAdapter`] re-reads
/// versions before writing so concurrent edits are detected.
pub trait SimpleStore: Send + Sync {
    /// The document, if any.
    fn get(&self, collection: Collection, id: &str) -> Result<Option<String>, StoreError>;
    /// Writes (creates or replaces) a document.
    fn put(&self, collection: Collection, id: &str, json: &str) -> Result<(), StoreError>;
    /// Deletes a document; false when there was none.
    fn delete(&self, collection: Collection, id: &str) -> Result<bool, StoreError>;
    /// Every document of a collection.
    fn list(&self, collection: Collection) -> Result<Vec<String>, StoreError>;
}

/// Turns a [`SimpleStore`] into a [`Store`]. The four-method protocol has no compare-and-swap,
/// so the adapter serializes its own read-check-write changes: within one process a version
/// conflict is always detected (one writer of several wins). Across processes the host store
/// must make `put` conditional itself, or keep one writer.
#[derive(Debug)]
pub struct SimpleAdapter<S>(pub S, std::sync::Mutex<()>);

impl<S> SimpleAdapter<S> {
    /// Wraps a host store.
    pub fn new(store: S) -> Self {
        SimpleAdapter(store, std::sync::Mutex::new(()))
    }

    /// Held for the whole read-check-write of one change (poisoning cannot leave a half
    /// change: every write is a single `put`/`delete` of the host store).
    fn writing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.1.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn parse_key(json: &str) -> Result<KeyRecord, StoreError> {
    KeyRecord::from_json(json).map_err(StoreError::Corrupt)
}

fn parse_user(json: &str) -> Result<UserRecord, StoreError> {
    UserRecord::from_json(json).map_err(StoreError::Corrupt)
}

fn retire_simple<S: SimpleStore>(store: &S, id: &str) -> Result<(), StoreError> {
    let doc = serde_json::json!({ "id": id }).to_string();
    store.put(Collection::Retired, id, &doc)
}

impl<S: SimpleStore> Store for SimpleAdapter<S> {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(Collection::Keys, id)?.map(|j| parse_key(&j)).transpose()
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        record.validate().map_err(StoreError::Corrupt)?;
        let id = record.id.as_str();
        if self.0.get(Collection::Keys, id)?.is_some() || self.0.get(Collection::Retired, id)?.is_some() {
            return Err(StoreError::AlreadyExists(id.to_string()));
        }
        self.0.put(Collection::Keys, id, &record.to_json())
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        let _writing = self.writing();
        record.validate().map_err(StoreError::Corrupt)?;
        let id = record.id.as_str();
        let cur = self.get_key(id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        if cur.version != expected_version {
            return Err(StoreError::Conflict { id: id.to_string(), expected: expected_version, found: cur.version });
        }
        self.0.put(Collection::Keys, id, &record.to_json())
    }

    /// The tombstone goes first: if deleting then fails, the key still exists and the id is
    /// already reserved, which is safe; the other order could free the id for reuse.
    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let _writing = self.writing();
        if self.0.get(Collection::Keys, id)?.is_none() {
            return Ok(false);
        }
        retire_simple(&self.0, id)?;
        self.0.delete(Collection::Keys, id)
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut out = Vec::new();
        for j in self.0.list(Collection::Keys)? {
            let r = parse_key(&j)?;
            if filter.matches(&r) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.0.get(Collection::Users, id)?.map(|j| parse_user(&j)).transpose()
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let _writing = self.writing();
        user.validate().map_err(StoreError::Corrupt)?;
        let json = serde_json::to_string(user).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.0.put(Collection::Users, &user.id, &json)
    }

    /// Tokens first, user last: if a call fails midway the user still exists and a retry
    /// finishes the job; no token outlives a successful return.
    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let _writing = self.writing();
        let doomed = self.list_keys(&KeyFilter { user: Some(id.to_string()), ..KeyFilter::default() })?;
        let had_user = self.get_user(id)?.is_some();
        if !had_user && doomed.is_empty() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let mut ids = Vec::new();
        for r in doomed {
            retire_simple(&self.0, r.id.as_str())?;
            self.0.delete(Collection::Keys, r.id.as_str())?;
            ids.push(r.id.as_str().to_string());
        }
        if had_user {
            self.0.delete(Collection::Users, id)?;
        }
        Ok(ids)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut users = self.0.list(Collection::Users)?.iter().map(|j| parse_user(j)).collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }
}
