//! Issue 15: the management HTTP API, through `keycel::management::handle` directly.
//!
//! Runs the shared cases (tests/http_cases/management.json, also run by the Python and JS
//! runners), holds the checked-in OpenAPI document to the generated one, and races creates
//! with one Idempotency-Key across threads and across two independent engine+keyring pairs
//! (two "processes") over one store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64ct::{Base64, Encoding};
use keycel::engine::Engine;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::management::{self, HttpRequest, HttpResponse};
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyKind, UserRecord};
use keycel::store::{KeyFilter, MemoryStore, Store};
use keycel::time::Timestamp;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct World {
    engine: Arc<Engine>,
    ring: Keyring,
    now: Timestamp,
}

fn world_over(store: Arc<dyn Store>) -> World {
    let policy = PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(CHEAP).unwrap();
    let engine = Arc::new(Engine::with_config(policy, auth, None).unwrap());
    let ring =
        Keyring::new(store).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap().with_guard(engine.clone());
    World { engine, ring, now: Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap() }
}

impl World {
    fn call(&self, req: &HttpRequest) -> HttpResponse {
        let r = management::handle(&self.engine, &self.ring, req, self.now);
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains("$argon2"), "{} {}: a body carries a hash: {text}", req.method, req.path);
        r
    }
}

/// A key's credentials: client id, secret key, token.
#[derive(Clone)]
struct Cred {
    id: String,
    secret: String,
    token: String,
}

fn op() -> Actor {
    Actor::Operator("cases".into())
}

fn accounts(v: &Value) -> AccountScope {
    match v {
        Value::String(s) if s == "all" => AccountScope::All,
        Value::Array(a) => AccountScope::Only(a.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
        other => panic!("accounts {other}"),
    }
}

/// Creates the cases' users and keys as the operator.
fn seed(w: &World, cases: &Value) -> HashMap<String, Cred> {
    for (id, u) in cases["users"].as_object().unwrap() {
        let roles = u["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string());
        let user = UserRecord::new(id, roles, accounts(&u["accounts"])).unwrap();
        w.ring.put_user(&op(), user, w.now).unwrap();
    }
    let mut out = HashMap::new();
    for (label, k) in cases["keys"].as_object().unwrap() {
        let role = k["role"].as_str().unwrap();
        let mut new = NewKey::api(label, role);
        if k["kind"] == "personal" {
            new.kind = KeyKind::Personal { user: k["user"].as_str().unwrap().to_string() };
        }
        new.accounts = accounts(&k["accounts"]);
        let (_, issued) = w.ring.create(&op(), new, w.now).unwrap();
        let token = issued.token().expose().to_string();
        let cred = Cred { id: issued.client_id.to_string(), secret: issued.secret.expose().to_string(), token };
        out.insert(label.clone(), cred);
    }
    out
}

struct Saved {
    body: Vec<u8>,
    content_type: Option<String>,
    json: Value,
}

fn lookup<'a>(saved: &'a HashMap<String, Saved>, path: &str) -> &'a Value {
    let mut parts = path.split('.');
    let name = parts.next().unwrap();
    let mut v = &saved.get(name).unwrap_or_else(|| panic!("nothing saved as {name}")).json;
    for p in parts {
        v = &v[p];
    }
    v
}

/// Replaces `{id:label}` and `{saved:name.path}` in a string.
fn template(s: &str, keys: &HashMap<String, Cred>, saved: &HashMap<String, Saved>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        let inner = &rest[start + 1..start + end];
        let value = if let Some(label) = inner.strip_prefix("id:") {
            Some(keys[label].id.clone())
        } else {
            inner.strip_prefix("saved:").map(|p| lookup(saved, p).as_str().unwrap().to_string())
        };
        out.push_str(&rest[..start]);
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..=start + end]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn cred_of(auth: &Value, keys: &HashMap<String, Cred>, saved: &HashMap<String, Saved>) -> Cred {
    if let Some(label) = auth["key"].as_str() {
        return keys[label].clone();
    }
    let name = auth["saved"].as_str().unwrap();
    let s = &saved[name].json["secret"];
    Cred {
        id: s["client_id"].as_str().unwrap().to_string(),
        secret: s["secret_key"].as_str().unwrap().to_string(),
        token: s["token"].as_str().unwrap().to_string(),
    }
}

fn auth_headers(auth: &Value, keys: &HashMap<String, Cred>, saved: &HashMap<String, Saved>) -> Vec<(String, String)> {
    let form = auth["form"].as_str().unwrap();
    if form == "none" {
        return Vec::new();
    }
    let c = cred_of(auth, keys, saved);
    let basic = |u: &str, p: &str| format!("Basic {}", Base64::encode_string(format!("{u}:{p}").as_bytes()));
    let h = |v: String| vec![("Authorization".to_string(), v)];
    match form {
        "bearer" => h(format!("Bearer {}", c.token)),
        "basic_token" => h(basic(&c.token, "")),
        "basic_pair" => h(basic(&c.id, &c.secret)),
        "header_pair" => {
            vec![("X-Keycel-Client-Id".to_string(), c.id), ("X-Keycel-Secret-Key".to_string(), c.secret)]
        }
        "wrong_secret" => {
            let i = c.token.len() - 12;
            let flipped = if &c.token[i..=i] != "x" { "x" } else { "y" };
            h(format!("Bearer {}{}{}", &c.token[..i], flipped, &c.token[i + 1..]))
        }
        other => panic!("unknown credential form {other}"),
    }
}

/// `expected` is a subset of `actual`: objects by the keys given, arrays element by element,
/// `{"$key_id": label}`, `{"$saved": path}`, `{"$type": "string"}`.
fn matches(expected: &Value, actual: &Value, keys: &HashMap<String, Cred>, saved: &HashMap<String, Saved>) -> bool {
    match expected {
        Value::Object(m) if m.len() == 1 && m.contains_key("$key_id") => {
            actual.as_str() == Some(keys[m["$key_id"].as_str().unwrap()].id.as_str())
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$saved") => {
            actual == lookup(saved, m["$saved"].as_str().unwrap())
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$type") => match m["$type"].as_str().unwrap() {
            "string" => actual.is_string(),
            "number" => actual.is_number(),
            other => panic!("unknown $type {other}"),
        },
        Value::Object(m) => m.iter().all(|(k, v)| actual.get(k).is_some_and(|a| matches(v, a, keys, saved))),
        Value::Array(list) => actual
            .as_array()
            .is_some_and(|a| a.len() == list.len() && list.iter().zip(a).all(|(e, x)| matches(e, x, keys, saved))),
        other => other == actual,
    }
}

fn check(where_: &str, r: &HttpResponse, expect: &Value, keys: &HashMap<String, Cred>, saved: &HashMap<String, Saved>) {
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, expect["status"].as_u64().unwrap() as u16, "{where_}: body {text}");
    if let Some(body) = expect.get("body") {
        assert_eq!(text, body.as_str().unwrap(), "{where_}");
    }
    if let Some(j) = expect.get("json_has") {
        let actual: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(matches(j, &actual, keys, saved), "{where_}: {text} does not match {j}");
    }
    if let Some(lens) = expect.get("json_len").and_then(Value::as_object) {
        let actual: Value = serde_json::from_slice(&r.body).unwrap();
        for (k, n) in lens {
            assert_eq!(actual[k].as_array().map(Vec::len), n.as_u64().map(|n| n as usize), "{where_}: {k} in {text}");
        }
    }
    for (name, value) in expect.get("headers").and_then(Value::as_object).into_iter().flatten() {
        assert_eq!(r.header(name), value.as_str(), "{where_}: header {name}");
    }
    for (name, part) in expect.get("header_contains").and_then(Value::as_object).into_iter().flatten() {
        assert!(r.header(name).unwrap_or("").contains(part.as_str().unwrap()), "{where_}: header {name}");
    }
    for part in expect.get("body_contains").and_then(Value::as_array).into_iter().flatten() {
        let part = template(part.as_str().unwrap(), keys, saved);
        assert!(text.contains(&part), "{where_}: {part} not in {text}");
    }
    for part in expect.get("body_excludes").and_then(Value::as_array).into_iter().flatten() {
        let part = template(part.as_str().unwrap(), keys, saved);
        assert!(!text.contains(&part), "{where_}: {part} in {text}");
    }
    if let Some(name) = expect.get("same_as").and_then(Value::as_str) {
        let other = &saved[name];
        assert_eq!(text.as_bytes(), other.body.as_slice(), "{where_}: differs from {name}");
        assert_eq!(r.header("content-type").map(str::to_string), other.content_type, "{where_}");
    }
}

fn load_cases() -> Value {
    let text = std::fs::read_to_string(format!("{REPO}/tests/http_cases/management.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run_scenario(w: &World, keys: &HashMap<String, Cred>, scenario: &Value) {
    let mut saved: HashMap<String, Saved> = HashMap::new();
    for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
        let where_ = format!("{} / step {i}", scenario["name"].as_str().unwrap());
        assert_eq!(step["do"], "request", "{where_}");
        let mut req =
            HttpRequest::new(step["method"].as_str().unwrap(), &template(step["path"].as_str().unwrap(), keys, &saved));
        req.headers = auth_headers(&step["auth"], keys, &saved);
        for (k, v) in step.get("headers").and_then(Value::as_object).into_iter().flatten() {
            req.headers.push((k.clone(), v.as_str().unwrap().to_string()));
        }
        if let Some(b) = step.get("body") {
            req.body = b.to_string().into_bytes();
        }
        if let Some(b) = step.get("raw_body") {
            req.body = b.as_str().unwrap().as_bytes().to_vec();
        }
        let r = w.call(&req);
        // Saved first: an expectation may refer to its own answer (`{"$saved": "made.key.id"}`).
        if let Some(name) = step.get("save_as").and_then(Value::as_str) {
            let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let content_type = r.header("content-type").map(str::to_string);
            saved.insert(name.to_string(), Saved { body: r.body.clone(), content_type, json });
        }
        check(&where_, &r, &step["expect"], keys, &saved);
    }
}

#[test]
fn shared_cases() {
    let cases = load_cases();
    let w = world_over(Arc::new(MemoryStore::new()));
    let keys = seed(&w, &cases);
    let scenarios = cases["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 8);
    for s in scenarios {
        run_scenario(&w, &keys, s);
    }
}

/// Out of reach and missing are the same bytes, on every verb, and no answer carries a hash
/// (every answer in this file goes through `World::call`, which asserts it).
#[test]
fn out_of_reach_is_missing_and_no_answer_carries_a_hash() {
    let w = world_over(Arc::new(MemoryStore::new()));
    let cases = load_cases();
    let keys = seed(&w, &cases);
    let bearer = |label: &str| ("Authorization".to_string(), format!("Bearer {}", keys[label].token));
    let hidden = &keys["acc2_reader"].id;
    for (method, path) in [
        ("GET", format!("/keys/{hidden}")),
        ("PATCH", format!("/keys/{hidden}")),
        ("DELETE", format!("/keys/{hidden}")),
        ("POST", format!("/keys/{hidden}/rotate")),
        ("GET", format!("/keys/{hidden}/explain")),
    ] {
        let mut req = HttpRequest::new(method, &path);
        req.headers.push(bearer("acc1_admin"));
        if method == "PATCH" {
            req.body = br#"{"active":false}"#.to_vec();
        }
        let hidden_answer = w.call(&req);
        req.path = path.replace(hidden.as_str(), "kc_0000000000000000");
        let missing_answer = w.call(&req);
        assert_eq!(hidden_answer, missing_answer, "{method} {path}");
        assert_eq!(hidden_answer.status, 404);
    }
    // The hidden key is untouched.
    let stored = w.ring.store().get_key(hidden).unwrap().unwrap();
    assert_eq!((stored.version, stored.active), (1, true));
    // Every record-bearing answer an admin gets: still no hash (asserted in `call`).
    let mut req = HttpRequest::new("GET", "/keys?limit=500");
    req.headers.push(bearer("admin"));
    let all = w.call(&req);
    assert_eq!(all.status, 200);
    let v: Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), keys.len());
}

/// Many threads, and two independent engine+keyring pairs over one store (two processes'
/// worth of caches), send the same create with one Idempotency-Key: one key is minted, one
/// answer carries its secret, every other is a replay of the same id.
#[test]
fn racing_idempotent_creates_mint_one_key() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = Arc::new(world_over(store.clone()));
    let b = Arc::new(world_over(store.clone()));
    let (_, issued) = a.ring.create(&op(), NewKey::api("boss", "admin"), a.now).unwrap();
    let token = issued.token().expose().to_string();
    let body = json!({ "name": "raced", "role": "reader", "accounts": ["acc_1"] });
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let w = if i % 2 == 0 { a.clone() } else { b.clone() };
            let req = HttpRequest::new("POST", "/keys")
                .header("Authorization", &format!("Bearer {token}"))
                .header("Idempotency-Key", "race-1")
                .json(&body);
            std::thread::spawn(move || w.call(&req))
        })
        .collect();
    let answers: Vec<HttpResponse> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created: Vec<&HttpResponse> = answers.iter().filter(|r| r.status == 201).collect();
    let replayed: Vec<&HttpResponse> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!((created.len(), replayed.len()), (1, 7), "{answers:?}");
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["key"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);
    for r in &replayed {
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["secret"], Value::Null);
    }
    let raced: Vec<_> =
        store.list_keys(&KeyFilter::default()).unwrap().into_iter().filter(|k| k.name == "raced").collect();
    assert_eq!(raced.len(), 1);
    // The same Idempotency-Key from another actor is another key.
    let (_, other) = a.ring.create(&op(), NewKey::api("boss2", "admin"), a.now).unwrap();
    let req = HttpRequest::new("POST", "/keys")
        .header("Authorization", &format!("Bearer {}", other.token().expose()))
        .header("Idempotency-Key", "race-1")
        .json(&body);
    let r = a.call(&req);
    assert_eq!(r.status, 201);
    // Deleted: the Idempotency-Key cannot mint the id again.
    let id = ids.into_iter().next().unwrap();
    a.ring.delete(&op(), &id, a.now).unwrap();
    let req = HttpRequest::new("POST", "/keys")
        .header("Authorization", &format!("Bearer {token}"))
        .header("Idempotency-Key", "race-1")
        .json(&body);
    let r = b.call(&req);
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
}

/// A PATCH is all or nothing: one refused field leaves every other untouched.
#[test]
fn a_refused_patch_changes_nothing() {
    let w = world_over(Arc::new(MemoryStore::new()));
    let (_, boss) = w.ring.create(&op(), NewKey::api("boss", "admin"), w.now).unwrap();
    let mut limited = NewKey::api("limited", "admin");
    limited.accounts = AccountScope::Only(["acc_1".to_string()].into());
    let (_, lim) = w.ring.create(&op(), limited, w.now).unwrap();
    let mut target = NewKey::api("target", "reader");
    target.accounts = AccountScope::Only(["acc_1".to_string()].into());
    let (t, _) = w.ring.create(&op(), target, w.now).unwrap();
    // Renaming is fine, widening to all accounts exceeds the limited admin: nothing changes.
    let req = HttpRequest::new("PATCH", &format!("/keys/{}", t.id))
        .header("Authorization", &format!("Bearer {}", lim.token().expose()))
        .json(&json!({ "name": "renamed", "accounts": "all" }));
    let r = w.call(&req);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let stored = w.ring.store().get_key(t.id.as_str()).unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.version), ("target", 1));
    // The full admin may.
    let req = HttpRequest::new("PATCH", &format!("/keys/{}", t.id))
        .header("Authorization", &format!("Bearer {}", boss.token().expose()))
        .json(&json!({ "name": "renamed", "accounts": "all" }));
    assert_eq!(w.call(&req).status, 200);
    let stored = w.ring.store().get_key(t.id.as_str()).unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.version, stored.accounts), ("renamed", 2, AccountScope::All));
}

/// docs/management.openapi.json is the generated document (regenerate with
/// `KEYCEL_BLESS=1 cargo test -p keycel --test management_http openapi`).
#[test]
fn openapi_checked_in_matches_generated() {
    let path = format!("{REPO}/docs/management.openapi.json");
    let generated = management::openapi();
    if std::env::var_os("KEYCEL_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(checked_in == generated, "{path} differs from management::openapi(); regenerate with KEYCEL_BLESS=1");
    // Served at /openapi.json without credentials.
    let w = world_over(Arc::new(MemoryStore::new()));
    let r = w.call(&HttpRequest::new("GET", "/openapi.json"));
    assert_eq!((r.status, r.body.as_slice()), (200, generated.as_bytes()));
}

/// The answer schemas describe what the handler sends: the Key schema's properties are the
/// public view's fields, every route is documented, every request schema is strict.
#[test]
fn openapi_schemas_match_the_answers() {
    let doc = management::openapi::document();
    let w = world_over(Arc::new(MemoryStore::new()));
    // Budgets set, so the public view shows every field it can.
    let mut new = NewKey::api("k", "reader");
    new.rate_limit = Some(keycel::budget::RateLimit::new(10, keycel::time::Duration::from_secs(60), 1).unwrap());
    new.credits = Some(keycel::budget::CreditGrant { remaining: 5, refill: None, set_at: w.now });
    let (record, _) = w.ring.create(&op(), new, w.now).unwrap();
    let view = record.to_public_value();
    let mut fields: Vec<&String> = view.as_object().unwrap().keys().collect();
    let mut props: Vec<&String> =
        doc["components"]["schemas"]["Key"]["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    props.sort();
    assert_eq!(fields, props);
    let authority = serde_json::to_value(w.engine.explain(&record, None, w.now).unwrap()).unwrap();
    let mut fields: Vec<&String> = authority.as_object().unwrap().keys().collect();
    let mut props: Vec<&String> =
        doc["components"]["schemas"]["Authority"]["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    props.sort();
    assert_eq!(fields, props);
    for r in management::routes::ROUTES {
        let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
        assert_eq!(op["operationId"], r.operation_id);
    }
    assert_eq!(doc["components"]["schemas"]["CreateKeyRequest"]["additionalProperties"], false);
    assert_eq!(doc["openapi"], "3.1.0");
}
