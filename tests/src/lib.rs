//! The shared conformance vectors (`tests/vectors/*.json`): their format and the Rust runner.
//! Python and WASM run the very same files with their own thin runners; see
//! `tests/vectors/README.md`.

use keycel::engine::{Engine, Request};
use keycel::policy::PolicySet;
use keycel::record::{KeyRecord, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
}

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
    let engine = Engine::new(policy).map_err(|e| e.to_string())?;
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
    Ok((vector.cases.len(), failures))
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
