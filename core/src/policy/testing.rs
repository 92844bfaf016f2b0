//! Policy tests as data: `*.tests.toml` files give keys, users, requests and times, and the
//! expected status, code and rule ids. `cargo test` runs them (core/tests/policy_files.rs) and
//! so does `keycel policy test <path>`.
//!
//! ```toml
//! policy = "default.toml"            # relative to the tests file
//! now = "2026-11-23T12:00:00Z"
//! [keys.reader]
//! role = "reader"                    # kind = "api" | "personal" (+ user), scopes, accounts,
//!                                    # metadata, expires_at
//! [users.alice]
//! roles = ["editor"]
//! accounts = ["acc_1"]               # or "all"
//! [[tests]]
//! name = "readers read"
//! key = "reader"
//! request = { action = "api.read", method = "GET", path = "/v1/data" }
//! expect = { status = 200, rules = ["scope-grants-action"] }
//! ```

use super::{PolicyError, PolicySet};
use crate::decision::Decision;
use crate::engine::{Engine, Request};
use crate::hash::PhcHash;
use crate::record::{AccountScope, KeyKind, KeyRecord, UserRecord};
use crate::time::Timestamp;
use crate::token::ClientId;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsDoc {
    policy: String,
    now: Timestamp,
    #[serde(default)]
    keys: BTreeMap<String, KeyFixture>,
    #[serde(default)]
    users: BTreeMap<String, UserFixture>,
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFixture {
    role: String,
    #[serde(default = "api")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    scopes: BTreeSet<String>,
    #[serde(default = "all")]
    accounts: AccountScope,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

fn api() -> String {
    "api".to_string()
}
fn all() -> AccountScope {
    AccountScope::All
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFixture {
    roles: BTreeSet<String>,
    #[serde(default = "all")]
    accounts: AccountScope,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    key: String,
    #[serde(default)]
    user: Option<String>,
    request: Request,
    #[serde(default)]
    now: Option<Timestamp>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    rules: Option<Vec<String>>,
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// True when the decision matched.
    pub passed: bool,
    /// What differed, empty when passed.
    pub mismatch: String,
    /// The decision reached.
    pub decision: Decision,
}

/// One file's outcome.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The tests file.
    pub file: PathBuf,
    /// Every case.
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }
    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

const FIXTURE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn fixture_id(label: &str) -> Result<ClientId, String> {
    let mut h = crc32fast::Hasher::new();
    h.update(label.as_bytes());
    let sum = crate::base62::encode_fixed(u64::from(h.finalize()), 6);
    ClientId::parse_any(&format!("kc_{sum}fixture000")).map_err(|e| e.to_string())
}

/// A fixture API key with a fixed id derived from `label` and a placeholder hash (decisions
/// only: it can never authenticate).
pub fn fixture_key(label: &str, role: &str, now: Timestamp) -> Result<KeyRecord, String> {
    let f = KeyFixture {
        role: role.to_string(),
        kind: api(),
        user: None,
        scopes: BTreeSet::new(),
        accounts: AccountScope::All,
        metadata: BTreeMap::new(),
        expires_at: None,
    };
    build_key(label, &f, now)
}

fn build_key(label: &str, f: &KeyFixture, now: Timestamp) -> Result<KeyRecord, String> {
    let kind = KeyKind::from_parts(&f.kind, f.user.clone()).map_err(|e| format!("key {label}: {e}"))?;
    let hash = PhcHash::parse(FIXTURE_HASH).map_err(|e| e.to_string())?;
    let r = KeyRecord {
        scopes: f.scopes.clone(),
        accounts: f.accounts.clone(),
        expires_at: f.expires_at,
        metadata: f.metadata.clone(),
        ..KeyRecord::new(fixture_id(label)?, label, kind, f.role.clone(), hash, now)
    };
    r.validate().map_err(|e| format!("key {label}: {e}"))?;
    Ok(r)
}

/// Runs one `*.tests.toml` file.
pub fn run_file(path: &Path) -> Result<FileReport, PolicyError> {
    let origin = path.display().to_string();
    let fail = |message: String| PolicyError { file: origin.clone(), rule: None, line: None, column: None, message };
    let src = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let doc: TestsDoc = toml::from_str(&src).map_err(|e| {
        let (line, column) = e.span().map_or((None, None), |s| {
            let (l, c) = super::position(&src, s.start);
            (Some(l), Some(c))
        });
        PolicyError { file: origin.clone(), rule: None, line, column, message: e.message().to_string() }
    })?;
    let policy_path = path.parent().unwrap_or(Path::new(".")).join(&doc.policy);
    let engine = Engine::new(PolicySet::load(&policy_path)?).map_err(|e| fail(e.to_string()))?;
    let mut keys = BTreeMap::new();
    for (label, f) in &doc.keys {
        keys.insert(label.clone(), build_key(label, f, doc.now).map_err(fail)?);
    }
    let mut users = BTreeMap::new();
    for (label, u) in &doc.users {
        let user = UserRecord::new(label, u.roles.iter().cloned(), u.accounts.clone())
            .map_err(|e| fail(format!("user {label}: {e}")))?;
        users.insert(label.clone(), user);
    }
    let mut cases = Vec::new();
    for case in doc.tests {
        let key =
            keys.get(&case.key).ok_or_else(|| fail(format!("test {:?}: no key fixture {:?}", case.name, case.key)))?;
        let user_label = case.user.clone().or_else(|| key.kind.user().map(str::to_string));
        let user = user_label.as_ref().and_then(|u| users.get(u));
        let d = engine.decide(key, user, &case.request, case.now.unwrap_or(doc.now));
        let mut mismatch = Vec::new();
        if d.status != case.expect.status {
            mismatch.push(format!("status {} (expected {})", d.status, case.expect.status));
        }
        if let Some(code) = &case.expect.code {
            if d.code.as_deref() != Some(code) {
                mismatch.push(format!("code {:?} (expected {code:?})", d.code));
            }
        }
        if let Some(rules) = &case.expect.rules {
            if &d.matched_rules != rules {
                mismatch.push(format!("rules {:?} (expected {rules:?})", d.matched_rules));
            }
        }
        cases.push(CaseResult {
            name: case.name,
            passed: mismatch.is_empty(),
            mismatch: mismatch.join(", "),
            decision: d,
        });
    }
    Ok(FileReport { file: path.to_path_buf(), cases })
}

/// Every `*.tests.toml` under `path` (a file or a directory, searched recursively), sorted.
pub fn find_test_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|e| PolicyError {
                file: p.display().to_string(),
                rule: None,
                line: None,
                column: None,
                message: format!("cannot list: {e}"),
            })?;
            stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        } else if p.to_string_lossy().ends_with(".tests.toml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every tests file under `path`.
pub fn run_path(path: &Path) -> Result<Vec<FileReport>, PolicyError> {
    find_test_files(path)?.iter().map(|f| run_file(f)).collect()
}
