//! A [`Store`] over records an asynchronous host preloads (JavaScript over Workers KV, a
//! Durable Object's storage, D1, ...): core code is synchronous, a host store is not, so a
//! keyring operation runs against what the host has loaded so far.
//!
//! One *run* is one synchronous core call (a keyring operation, the management handler):
//! - a read of something not loaded is recorded as a [`Miss`] and fails the call with a store
//!   error; the host fetches every miss (`get`, or `list` for a whole collection) and runs the
//!   call again. Calls are deterministic apart from fresh secrets, and nothing is written
//!   until a run completes without misses, so a rerun is safe;
//! - writes go to an overlay (later reads of the same run see them) and are collected as a
//!   [`Plan`]: the checks the stored documents must pass (the versions the run started from,
//!   or absence for a new key id, also among retired ids) and the puts/deletes to apply.
//!
//! The host commits a plan by reading the checked documents, asking [`Plan::verify`] (core
//! owns the version checks), then applying [`Plan::ops`] in order. Those steps are atomic
//! only if the host makes them so (one writer, a transaction, a Durable Object's input gate);
//! a failed check is a [`StoreError::Conflict`] (or `AlreadyExists` / `NotFound`) and nothing
//! was written.

use super::{Collection, KeyFilter, Store, StoreError};
use crate::record::{KeyKind, KeyRecord, UserRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Something a run needed that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Miss {
    /// One key document, by client id (`get("keys", id)`).
    Key(String),
    /// One user document, by id (`get("users", id)`).
    User(String),
    /// The whole key collection (`list("keys")`), for listings and a user's tokens.
    Keys,
    /// The whole user collection (`list("users")`).
    Users,
}

impl Miss {
    /// The collection to read.
    pub fn collection(&self) -> Collection {
        match self {
            Miss::Key(_) | Miss::Keys => Collection::Keys,
            Miss::User(_) | Miss::Users => Collection::Users,
        }
    }

    /// The document id, or `None` for a whole collection (a "list" miss).
    pub fn id(&self) -> Option<&str> {
        match self {
            Miss::Key(id) | Miss::User(id) => Some(id),
            Miss::Keys | Miss::Users => None,
        }
    }
}

/// The message of the store error a missing read fails its call with (the host looks at
/// [`StagedStore::misses`], not at the error).
pub const MISS_MESSAGE: &str = "record not loaded yet (staged store miss)";

/// What a stored document must be for a plan to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No document with this id (a new key id: neither live nor retired).
    Absent,
    /// A document at exactly this version (the one the run read).
    Version(u64),
}

/// One check of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Collection of the document.
    pub collection: Collection,
    /// Document id.
    pub id: String,
    /// What it must be.
    pub expect: Expect,
}

/// One write of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace a document (storage form JSON).
    Put {
        /// Collection.
        collection: Collection,
        /// Document id.
        id: String,
        /// The document.
        json: String,
    },
    /// Delete a document.
    Delete {
        /// Collection.
        collection: Collection,
        /// Document id.
        id: String,
    },
}

/// A run's writes: checks first, then the ops in order (tombstones before deletions, a
/// user's tokens before the user, as [`super::SimpleAdapter`] orders them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What the stored documents must be.
    pub checks: Vec<Check>,
    /// What to write, in order.
    pub ops: Vec<Op>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks the documents the host found, one per [`Plan::checks`] entry in the same order
    /// (`None`: no document). `Ok` means the ops may be applied.
    pub fn verify(&self, found: &[Option<String>]) -> Result<(), StoreError> {
        if found.len() != self.checks.len() {
            return Err(StoreError::Backend(format!(
                "commit check: {} documents for {} checks",
                found.len(),
                self.checks.len()
            )));
        }
        for (check, doc) in self.checks.iter().zip(found) {
            let id = check.id.clone();
            match (check.expect, doc) {
                (Expect::Absent, None) => {}
                (Expect::Absent, Some(_)) => return Err(StoreError::AlreadyExists(id)),
                (Expect::Version(_), None) => return Err(StoreError::NotFound(id)),
                (Expect::Version(expected), Some(doc)) => {
                    let found = stored_version(doc)?;
                    if found != expected {
                        return Err(StoreError::Conflict { id, expected, found });
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `version` of a stored document (missing means 1, as for users).
fn stored_version(doc: &str) -> Result<u64, StoreError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(default)]
        version: Option<u64>,
    }
    let v: Versioned = serde_json::from_str(doc)
        .map_err(|e| StoreError::Corrupt(crate::record::RecordError::new("json", e.to_string())))?;
    Ok(v.version.unwrap_or(1))
}

/// A change to one document in this run's overlay: the value now (`None`: deleted) and what
/// the stored document was before the run (`None`: never read, so not checked).
#[derive(Debug, Clone)]
struct Pending<T> {
    now: Option<Arc<T>>,
    base: Option<Expect>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Loaded documents (`None`: known to be absent).
    keys: BTreeMap<String, Option<Arc<KeyRecord>>>,
    users: BTreeMap<String, Option<Arc<UserRecord>>>,
    /// True once the whole collection is loaded: an id not in the map is absent.
    all_keys: bool,
    all_users: bool,
    /// This run.
    key_writes: BTreeMap<String, Pending<KeyRecord>>,
    user_writes: BTreeMap<String, Pending<UserRecord>>,
    retire: BTreeSet<String>,
    misses: BTreeSet<Miss>,
}

/// Where a lookup stands.
enum Found<T> {
    Yes(Option<Arc<T>>),
    Missing,
}

impl Inner {
    fn key(&mut self, id: &str) -> Found<KeyRecord> {
        if let Some(p) = self.key_writes.get(id) {
            return Found::Yes(p.now.clone());
        }
        match self.keys.get(id) {
            Some(r) => Found::Yes(r.clone()),
            None if self.all_keys => Found::Yes(None),
            None => {
                self.misses.insert(Miss::Key(id.to_string()));
                Found::Missing
            }
        }
    }

    fn user(&mut self, id: &str) -> Found<UserRecord> {
        if let Some(p) = self.user_writes.get(id) {
            return Found::Yes(p.now.clone());
        }
        match self.users.get(id) {
            Some(u) => Found::Yes(u.clone()),
            None if self.all_users => Found::Yes(None),
            None => {
                self.misses.insert(Miss::User(id.to_string()));
                Found::Missing
            }
        }
    }

    /// Every key as this run sees it, or `None` (a miss) when the collection is not loaded.
    fn all_keys_now(&mut self) -> Option<Vec<Arc<KeyRecord>>> {
        if !self.all_keys {
            self.misses.insert(Miss::Keys);
            return None;
        }
        let mut out: BTreeMap<&str, Arc<KeyRecord>> =
            self.keys.iter().filter_map(|(id, r)| r.clone().map(|r| (id.as_str(), r))).collect();
        for (id, p) in &self.key_writes {
            match &p.now {
                Some(r) => out.insert(id.as_str(), r.clone()),
                None => out.remove(id.as_str()),
            };
        }
        Some(out.into_values().collect())
    }

    /// The version a document had before this run (for the first write of it).
    fn key_base(&self, id: &str) -> Option<Expect> {
        match self.keys.get(id) {
            Some(Some(r)) => Some(Expect::Version(r.version)),
            _ => Some(Expect::Absent),
        }
    }

    fn write_key(&mut self, id: &str, now: Option<Arc<KeyRecord>>) {
        let base = match self.key_writes.get(id) {
            Some(p) => p.base,
            None => self.key_base(id),
        };
        self.key_writes.insert(id.to_string(), Pending { now, base });
    }

    fn write_user(&mut self, id: &str, now: Option<Arc<UserRecord>>) {
        let base = match self.user_writes.get(id) {
            Some(p) => p.base,
            None => match self.users.get(id) {
                Some(Some(u)) => Some(Expect::Version(u.version)),
                Some(None) => Some(Expect::Absent),
                // Never read: replaced whatever is there (`put_user` is create-or-replace).
                None if self.all_users => Some(Expect::Absent),
                None => None,
            },
        };
        self.user_writes.insert(id.to_string(), Pending { now, base });
    }
}

fn miss() -> StoreError {
    StoreError::Backend(MISS_MESSAGE.to_string())
}

/// The staged store (see the module documentation). Share it as an `Arc` with a keyring;
/// between runs the host calls the `load_*` methods, [`StagedStore::begin`] before each run,
/// then [`StagedStore::misses`] and [`StagedStore::plan`] after it.
#[derive(Debug, Default)]
pub struct StagedStore {
    inner: Mutex<Inner>,
}

impl StagedStore {
    /// Nothing loaded.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads one key document as the host found it (`None`: no such document). The document
    /// is validated and must carry `id`.
    pub fn load_key(&self, id: &str, json: Option<&str>) -> Result<(), StoreError> {
        let record = json.map(parse_key).transpose()?;
        if let Some(r) = &record {
            if r.id.as_str() != id {
                return Err(StoreError::Backend(format!("document {id:?} holds key {:?}", r.id.as_str())));
            }
        }
        self.lock().keys.insert(id.to_string(), record.map(Arc::new));
        Ok(())
    }

    /// Loads one user document (`None`: no such user).
    pub fn load_user(&self, id: &str, json: Option<&str>) -> Result<(), StoreError> {
        let user = json.map(parse_user).transpose()?;
        if let Some(u) = &user {
            if u.id != id {
                return Err(StoreError::Backend(format!("document {id:?} holds user {:?}", u.id)));
            }
        }
        self.lock().users.insert(id.to_string(), user.map(Arc::new));
        Ok(())
    }

    /// Loads the whole key collection (replaces what was loaded of it).
    pub fn load_all_keys<S: AsRef<str>>(&self, docs: &[S]) -> Result<(), StoreError> {
        let mut keys = BTreeMap::new();
        for d in docs {
            let r = parse_key(d.as_ref())?;
            keys.insert(r.id.as_str().to_string(), Some(Arc::new(r)));
        }
        let mut s = self.lock();
        s.keys = keys;
        s.all_keys = true;
        Ok(())
    }

    /// Loads the whole user collection.
    pub fn load_all_users<S: AsRef<str>>(&self, docs: &[S]) -> Result<(), StoreError> {
        let mut users = BTreeMap::new();
        for d in docs {
            let u = parse_user(d.as_ref())?;
            users.insert(u.id.clone(), Some(Arc::new(u)));
        }
        let mut s = self.lock();
        s.users = users;
        s.all_users = true;
        Ok(())
    }

    /// Starts a run: forgets the previous run's writes and misses (loaded documents stay).
    pub fn begin(&self) {
        let mut s = self.lock();
        s.key_writes.clear();
        s.user_writes.clear();
        s.retire.clear();
        s.misses.clear();
    }

    /// What the run needed and did not find loaded (empty: the run is complete).
    pub fn misses(&self) -> Vec<Miss> {
        self.lock().misses.iter().cloned().collect()
    }

    /// The run's writes as a plan to commit.
    pub fn plan(&self) -> Plan {
        let s = self.lock();
        let mut plan = Plan::default();
        for id in &s.retire {
            // A deleted key's own check (at its version) is in the key writes below.
            plan.ops.push(Op::Put {
                collection: Collection::Retired,
                id: id.clone(),
                json: serde_json::json!({ "id": id }).to_string(),
            });
        }
        for (id, p) in &s.key_writes {
            if let Some(base) = p.base {
                plan.checks.push(Check { collection: Collection::Keys, id: id.clone(), expect: base });
                if base == Expect::Absent {
                    plan.checks.push(Check { collection: Collection::Retired, id: id.clone(), expect: Expect::Absent });
                }
            }
            match &p.now {
                Some(r) => plan.ops.push(Op::Put { collection: Collection::Keys, id: id.clone(), json: r.to_json() }),
                None => plan.ops.push(Op::Delete { collection: Collection::Keys, id: id.clone() }),
            }
        }
        for (id, p) in &s.user_writes {
            if let Some(base) = p.base {
                plan.checks.push(Check { collection: Collection::Users, id: id.clone(), expect: base });
            }
            match &p.now {
                Some(u) => plan.ops.push(Op::Put {
                    collection: Collection::Users,
                    id: id.clone(),
                    json: serde_json::to_string(u.as_ref()).unwrap_or_default(),
                }),
                None => plan.ops.push(Op::Delete { collection: Collection::Users, id: id.clone() }),
            }
        }
        plan
    }
}

fn parse_key(json: &str) -> Result<KeyRecord, StoreError> {
    KeyRecord::from_json(json).map_err(StoreError::Corrupt)
}

fn parse_user(json: &str) -> Result<UserRecord, StoreError> {
    UserRecord::from_json(json).map_err(StoreError::Corrupt)
}

impl Store for StagedStore {
    fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.get_key_shared(id)?.map(|r| KeyRecord::clone(&r)))
    }

    fn get_key_shared(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        match self.lock().key(id) {
            Found::Yes(r) => Ok(r),
            Found::Missing => Err(miss()),
        }
    }

    fn get_user_shared(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        match self.lock().user(id) {
            Found::Yes(u) => Ok(u),
            Found::Missing => Err(miss()),
        }
    }

    /// A new id is checked at commit (neither live nor retired), so inserting needs no read.
    fn insert_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        record.validate().map_err(StoreError::Corrupt)?;
        let mut s = self.lock();
        let id = record.id.as_str();
        // Written by this run already (created, or deleted and so retired), or loaded as live.
        if s.key_writes.contains_key(id) || matches!(s.keys.get(id), Some(Some(_))) {
            return Err(StoreError::AlreadyExists(id.to_string()));
        }
        s.write_key(id, Some(Arc::new(record.clone())));
        Ok(())
    }

    fn update_key(&self, record: &KeyRecord, expected_version: u64) -> Result<(), StoreError> {
        record.validate().map_err(StoreError::Corrupt)?;
        let mut s = self.lock();
        let id = record.id.as_str();
        let cur = match s.key(id) {
            Found::Yes(Some(cur)) => cur,
            Found::Yes(None) => return Err(StoreError::NotFound(id.to_string())),
            Found::Missing => return Err(miss()),
        };
        if cur.version != expected_version {
            return Err(StoreError::Conflict { id: id.to_string(), expected: expected_version, found: cur.version });
        }
        s.write_key(id, Some(Arc::new(record.clone())));
        Ok(())
    }

    fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        match s.key(id) {
            Found::Yes(Some(_)) => {}
            Found::Yes(None) => return Ok(false),
            Found::Missing => return Err(miss()),
        }
        s.write_key(id, None);
        s.retire.insert(id.to_string());
        Ok(true)
    }

    fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let all = self.lock().all_keys_now().ok_or_else(miss)?;
        Ok(all.iter().filter(|r| filter.matches(r)).map(|r| KeyRecord::clone(r)).collect())
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.get_user_shared(id)?.map(|u| UserRecord::clone(&u)))
    }

    fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        user.validate().map_err(StoreError::Corrupt)?;
        self.lock().write_user(&user.id, Some(Arc::new(user.clone())));
        Ok(())
    }

    fn remove_user(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut s = self.lock();
        // Both reads first, so one round loads the user and the key collection.
        let user = s.user(id);
        let all = s.all_keys_now();
        let (Found::Yes(user), Some(all)) = (user, all) else { return Err(miss()) };
        let doomed: Vec<String> = all
            .iter()
            .filter(|r| matches!(&r.kind, KeyKind::Personal { user } if user == id))
            .map(|r| r.id.as_str().to_string())
            .collect();
        if user.is_none() && doomed.is_empty() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        for k in &doomed {
            s.write_key(k, None);
            s.retire.insert(k.clone());
        }
        if user.is_some() {
            s.write_user(id, None);
        }
        Ok(doomed)
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut s = self.lock();
        if !s.all_users {
            s.misses.insert(Miss::Users);
            return Err(miss());
        }
        let mut out: BTreeMap<String, Arc<UserRecord>> =
            s.users.iter().filter_map(|(id, u)| u.clone().map(|u| (id.clone(), u))).collect();
        for (id, p) in &s.user_writes {
            match &p.now {
                Some(u) => out.insert(id.clone(), u.clone()),
                None => out.remove(id),
            };
        }
        Ok(out.into_values().map(|u| UserRecord::clone(&u)).collect())
    }
}

#[cfg(test)]
mod tests;
