//! The shared conformance vectors (`tests/vectors/*.json`): their format and the Rust runner.
//! Python and WASM run the very same files with their own thin runners; see
//! `tests/vectors/README.md`.

pub mod forms;

use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, KeyringError, NewKey};
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyKind, KeyRecord, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One vector file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    /// What the scenario shows and where it comes from.
    pub description: String,
    /// Policy path relative to the repository root.
    pub policy: String,
    /// Default time of every case.
    pub now: Timestamp,
    /// Stored key records.
    pub keys: Vec<serde_json::Value>,
    /// Stored users.
    pub users: Vec<serde_json::Value>,
    /// Clear-text test credentials by label.
    pub tokens: BTreeMap<String, TokenSet>,
    /// The cases.
    pub cases: Vec<Case>,
    /// Management operations by keys (issue 11), each on a fresh copy of `keys`/`users`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management: Vec<ManagementCase>,
}

/// One management operation by a stored key (or the operator) and its expected outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementCase {
    /// Name.
    pub name: String,
    /// Token label of the acting key, or `"operator"`.
    pub actor: String,
    /// `create`, `update`, `rotate`, `delete`, `get` or `set_active`.
    pub op: String,
    /// Token label of the target key (every op but `create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The key to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<NewKeySpec>,
    /// For `update`: exactly one of `role`, `scopes`, `accounts`, `expires_at`,
    /// `max_concurrent`; for `set_active`: `active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<serde_json::Value>,
    /// Time override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<Timestamp>,
    /// The outcome.
    pub expect: ManagementExpect,
}

/// A key to create in a management case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeySpec {
    /// `api` or `personal`.
    pub kind: String,
    /// Owner of a personal token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Role.
    pub role: String,
    /// Extra scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `"all"` or a list.
    pub accounts: AccountScope,
    /// Lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Per-key limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// The expected outcome: success, or an error kind (`denied` with status and code,
/// `not_found` exactly like a missing key, `invalid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementExpect {
    /// Succeeded?
    pub ok: bool,
    /// `denied`, `not_found` or `invalid` when refused.
    pub error: Option<String>,
    /// The denial's status.
    pub status: Option<u16>,
    /// The denial's code.
    pub code: Option<String>,
}

/// The argon2 parameters management vectors hash new secrets with (cheap: test data only).
pub const VECTOR_HASH: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

/// A test credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSet {
    /// Client id.
    pub client_id: String,
    /// Secret key.
    pub secret: String,
    /// Whole token.
    pub token: String,
}

/// One request and its expected decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Name.
    pub name: String,
    /// Ordered header pairs.
    pub headers: Vec<(String, String)>,
    /// The request.
    pub request: Request,
    /// Time override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<Timestamp>,
    /// Identical requests to make (and hold) first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_flight: u32,
    /// Expected decision.
    pub expect: Expect,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The expected decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Allowed?
    pub allowed: bool,
    /// HTTP status.
    pub status: u16,
    /// Error code.
    pub code: Option<String>,
    /// Client message.
    pub message: String,
    /// Key id.
    pub key_id: Option<String>,
    /// Matched rule ids.
    pub matched_rules: Vec<String>,
    /// Headers that must be present with these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every vector file, sorted.
pub fn vector_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs a vector; returns one line per mismatch (empty when it conforms) and the case count.
pub fn run(vector: &Vector) -> Result<(usize, Vec<String>), String> {
    run_over(vector, &MemoryStore::new())
}

/// [`run`] over a given (empty) store: the same decisions whatever holds the records.
pub fn run_over(vector: &Vector, store: &dyn Store) -> Result<(usize, Vec<String>), String> {
    let policy = PolicySet::load(repo_root().join(&vector.policy)).map_err(|e| e.to_string())?;
    let engine = Arc::new(Engine::new(policy).map_err(|e| e.to_string())?);
    let lookup = StoreLookup(store);
    for k in &vector.keys {
        let r = KeyRecord::from_value(k.clone()).map_err(|e| e.to_string())?;
        store.insert_key(&r).map_err(|e| e.to_string())?;
    }
    for u in &vector.users {
        let u: UserRecord = serde_json::from_value(u.clone()).map_err(|e| e.to_string())?;
        store.put_user(&u).map_err(|e| e.to_string())?;
    }
    let mut failures = Vec::new();
    for case in &vector.cases {
        let now = case.now.unwrap_or(vector.now);
        let call = || {
            engine.authorize(case.headers.iter().map(|(a, b)| (a.as_str(), b.as_str())), &case.request, &lookup, now)
        };
        let mut held = Vec::new();
        for i in 0..case.in_flight {
            let a = call();
            if !a.decision.allowed {
                failures.push(format!("{}: in-flight request {i} was denied: {}", case.name, a.decision.reason));
            }
            held.push(a);
        }
        let got = call().decision;
        drop(held);
        let mut diffs = Vec::new();
        let e = &case.expect;
        differ(&mut diffs, "allowed", &got.allowed, &e.allowed);
        differ(&mut diffs, "status", &got.status, &e.status);
        differ(&mut diffs, "code", &got.code, &e.code);
        differ(&mut diffs, "message", got.message.as_ref(), e.message.as_str());
        differ(&mut diffs, "key_id", &got.key_id, &e.key_id);
        differ(&mut diffs, "matched_rules", &got.matched_rules, &e.matched_rules);
        for (name, value) in &e.headers {
            if got.header(name) != Some(value.as_str()) {
                diffs.push(format!("header {name}: {:?} != {value:?}", got.header(name)));
            }
        }
        if !diffs.is_empty() {
            failures.push(format!("{}: {} (reason: {})", case.name, diffs.join("; "), got.reason));
        }
    }
    for case in &vector.management {
        if let Err(e) = run_management(vector, &engine, case) {
            failures.push(format!("management {}: {e}", case.name));
        }
    }
    Ok((vector.cases.len() + vector.management.len(), failures))
}

fn fresh_store(vector: &Vector) -> Result<Arc<MemoryStore>, String> {
    let store = Arc::new(MemoryStore::new());
    for k in &vector.keys {
        store.insert_key(&KeyRecord::from_value(k.clone()).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    for u in &vector.users {
        let u: UserRecord = serde_json::from_value(u.clone()).map_err(|e| e.to_string())?;
        store.put_user(&u).map_err(|e| e.to_string())?;
    }
    Ok(store)
}

/// The client id of a token label.
fn label_id(vector: &Vector, label: &str) -> Result<String, String> {
    vector.tokens.get(label).map(|t| t.client_id.clone()).ok_or_else(|| format!("no token {label}"))
}

/// Runs one management case through the core keyring, guarded by the vector's engine.
pub fn run_management(vector: &Vector, engine: &Arc<Engine>, case: &ManagementCase) -> Result<(), String> {
    let store = fresh_store(vector)?;
    let hash = HashPolicy::with_params(VECTOR_HASH).map_err(|e| e.to_string())?;
    let guard: Arc<dyn keycel::keyring::ManagementGuard> = engine.clone();
    let ring = Keyring::new(store.clone()).with_hash(hash).map_err(|e| e.to_string())?.with_guard(guard);
    let now = case.now.unwrap_or(vector.now);
    let actor = if case.actor == "operator" {
        Actor::Operator("vectors".into())
    } else {
        let id = label_id(vector, &case.actor)?;
        let key = store.get_key(&id).map_err(|e| e.to_string())?.ok_or("actor key not in the vector")?;
        let user = match key.kind.user() {
            Some(u) => store.get_user(u).map_err(|e| e.to_string())?,
            None => None,
        };
        Actor::Key { key: Box::new(key), user }
    };
    let target = case.target.as_deref().map(|t| label_id(vector, t)).transpose()?;
    let target = || target.clone().ok_or_else(|| "this op needs a target".to_string());
    let change = |field: &str| case.change.as_ref().and_then(|c| c.get(field)).cloned();
    let outcome: Result<(), KeyringError> = match case.op.as_str() {
        "create" => {
            let k = case.key.as_ref().ok_or("create needs a key")?;
            let kind = KeyKind::from_parts(&k.kind, k.user.clone()).map_err(|e| e.to_string())?;
            let new = NewKey {
                kind,
                scopes: k.scopes.iter().cloned().collect(),
                accounts: k.accounts.clone(),
                expires_in: k.expires_in.map(Duration::from_secs),
                max_concurrent: k.max_concurrent,
                ..NewKey::api("vector", &k.role)
            };
            ring.create(&actor, new, now).map(|_| ())
        }
        "update" => {
            let c = if let Some(v) = change("role") {
                Change::SetRole(v.as_str().ok_or("role must be a string")?.to_string())
            } else if let Some(v) = change("scopes") {
                Change::SetScopes(serde_json::from_value(v).map_err(|e| e.to_string())?)
            } else if let Some(v) = change("accounts") {
                Change::SetAccounts(serde_json::from_value(v).map_err(|e| e.to_string())?)
            } else if let Some(v) = change("expires_at") {
                Change::SetExpiry(serde_json::from_value(v).map_err(|e| e.to_string())?)
            } else if let Some(v) = change("max_concurrent") {
                Change::SetMaxConcurrent(serde_json::from_value(v).map_err(|e| e.to_string())?)
            } else {
                return Err("update needs a change".into());
            };
            ring.update(&actor, &target()?, c, now).map(|_| ())
        }
        "set_active" => {
            let a = change("active").and_then(|v| v.as_bool()).ok_or("set_active needs change.active")?;
            ring.set_active(&actor, &target()?, a, now).map(|_| ())
        }
        "rotate" => ring.rotate(&actor, &target()?, None, now).map(|_| ()),
        "delete" => ring.delete(&actor, &target()?, now),
        "get" => ring.get(&actor, &target()?, now).map(|_| ()),
        other => return Err(format!("unknown op {other:?}")),
    };
    let got = match &outcome {
        Ok(()) => ManagementExpect { ok: true, error: None, status: None, code: None },
        Err(KeyringError::Denied(d)) => {
            ManagementExpect { ok: false, error: Some("denied".into()), status: Some(d.status), code: d.code.clone() }
        }
        Err(KeyringError::NotFound(_)) => {
            ManagementExpect { ok: false, error: Some("not_found".into()), status: None, code: None }
        }
        Err(KeyringError::Invalid(_)) => {
            ManagementExpect { ok: false, error: Some("invalid".into()), status: None, code: None }
        }
        Err(e) => return Err(format!("unexpected error {e}")),
    };
    if got != case.expect {
        let why = match &outcome {
            Err(KeyringError::Denied(d)) => d.reason.clone(),
            Err(e) => e.to_string(),
            Ok(()) => "succeeded".into(),
        };
        return Err(format!("got {got:?}, want {:?} ({why})", case.expect));
    }
    Ok(())
}

/// `&dyn Store` as the engine's `Lookup` (a trait object is not itself `Sized`).
struct StoreLookup<'a>(&'a dyn Store);

impl keycel::engine::Lookup for StoreLookup<'_> {
    fn key(&self, id: &str) -> Result<Option<std::sync::Arc<KeyRecord>>, keycel::store::StoreError> {
        self.0.get_key_shared(id)
    }
    fn user(&self, id: &str) -> Result<Option<std::sync::Arc<UserRecord>>, keycel::store::StoreError> {
        self.0.get_user_shared(id)
    }
}

/// Notes `name` in `diffs` when the engine's value differs from the vector's.
fn differ<T: PartialEq + std::fmt::Debug + ?Sized>(diffs: &mut Vec<String>, name: &str, got: &T, want: &T) {
    if got != want {
        diffs.push(format!("{name} {got:?} != {want:?}"));
    }
}
