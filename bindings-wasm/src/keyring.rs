//! The keyring over a host document store (issue 15): one `KeyringSession` per operation
//! runs the core `Keyring` (or the management handler) over a core `StagedStore`. The JS side
//! (`js/templates/keyring.mjs`) loads what a run missed from the host store, runs again, then
//! commits the run's plan: it reads the checked documents, `verify` asks core whether the
//! versions still match, and it applies the ops. Every decision, check and answer shape is
//! the core's; this file converts values.

use crate::convert;
use crate::engine::Engine;
use crate::error::{codes, Error, JsResult};
use crate::keys::{actor, keyring_error, user_from_value, HashChoice, KeySpec};
use keycel::audit::NullAudit;
use keycel::keyring::{Change, Keyring, KeyringError};
use keycel::management::answer::ApiError;
use keycel::management::{HttpRequest, HttpResponse};
use keycel::store::staged::{Miss, Op, StagedStore};
use keycel::store::{Collection, KeyFilter, Store, StoreError};
use keycel::{AccountScope, CredentialConfig, HashPolicy, Timestamp, TokenFormat};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Session settings (`new Keyring(engine, store, options)`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionOptions {
    #[serde(default)]
    hash: Option<HashChoice>,
    #[serde(default)]
    prefix: Option<String>,
}

/// One keyring operation (or one management request) over a staged store.
#[wasm_bindgen(skip_typescript)]
#[derive(Debug)]
pub struct KeyringSession {
    staged: Arc<StagedStore>,
    ring: Keyring,
    engine: Option<Arc<keycel::engine::Engine>>,
    credentials: CredentialConfig,
}

fn collection(name: &str) -> Result<Collection, Error> {
    match name {
        "keys" => Ok(Collection::Keys),
        "users" => Ok(Collection::Users),
        "retired" => Ok(Collection::Retired),
        other => Err(Error::invalid_argument(format!("unknown collection {other:?}"))),
    }
}

/// A store failure as the thrown error: races are `conflict`, a failing host `store_error`.
pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Conflict { id, expected, found } => Error::new(
            codes::CONFLICT,
            format!("{id} changed concurrently (expected version {expected}, found {found}); nothing was written"),
        )
        .with_extra(convert::object(&[
            ("id", id.as_str().into()),
            ("expected", (expected as f64).into()),
            ("found", (found as f64).into()),
        ])),
        StoreError::AlreadyExists(id) => {
            Error::new(codes::CONFLICT, format!("{id} is already in use; nothing was written"))
                .with_extra(convert::object(&[("id", id.as_str().into())]))
        }
        StoreError::NotFound(id) => Error::new(codes::NOT_FOUND, format!("not found: {id}")),
        StoreError::Corrupt(r) => Error::new(codes::STORE_ERROR, format!("a stored document is invalid: {r}"))
            .with_extra(convert::object(&[("field", r.field.as_str().into())])),
        StoreError::Backend(m) => Error::new(codes::STORE_ERROR, format!("document store: {m}")),
    }
}

fn ring_error(e: KeyringError) -> Error {
    match e {
        KeyringError::Store(s) => store_error(s),
        other => keyring_error(other),
    }
}

/// Arguments of one operation (camelCase JSON from `keyring.mjs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Args {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    actor: Option<Value>,
    #[serde(default)]
    spec: Option<KeySpec>,
    #[serde(default)]
    filter: Option<FilterSpec>,
    #[serde(default)]
    changes: Option<ChangeSpec>,
    #[serde(default)]
    grace: Option<convert::Span>,
    #[serde(default)]
    user: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

/// Settings to change in one write (absent: unchanged; `null` expiry or limit: none).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Option<BTreeSet<String>>,
    #[serde(default)]
    accounts: Option<AccountScope>,
    #[serde(default)]
    active: Option<bool>,
    /// Present with `null`: no expiry.
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    max_concurrent: Option<Option<u32>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    /// `{ limit, per: "1m", burst }`; present with `null`: none (the policy default).
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<keycel::budget::RateLimit>>,
    /// `{ remaining, refill: { amount, interval } | null }` granted now; `null`: unmetered.
    #[serde(default, deserialize_with = "present")]
    credits: Option<Option<Value>>,
}

/// `Some(None)` for an explicit `null`, `None` (by `default`) for an absent field.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A time given as Unix milliseconds or RFC 3339 text.
fn time_value(v: &Value, what: &str) -> Result<Timestamp, Error> {
    match v {
        Value::Number(n) => {
            let ms = n.as_f64().ok_or_else(|| Error::new(codes::INVALID_TIME, format!("{what} is not a time")))?;
            convert::timestamp(&JsValue::from(ms), what)
        }
        Value::String(s) => convert::timestamp(&JsValue::from_str(s), what),
        _ => Err(Error::new(codes::INVALID_TIME, format!("{what} must be Unix milliseconds or RFC 3339 text"))),
    }
}

impl ChangeSpec {
    fn into_changes(self, now: Timestamp) -> Result<Vec<Change>, Error> {
        let mut out = Vec::new();
        if let Some(v) = self.name {
            out.push(Change::Rename(v));
        }
        if let Some(v) = self.description {
            out.push(Change::Describe(v));
        }
        if let Some(v) = self.role {
            out.push(Change::SetRole(v));
        }
        if let Some(v) = self.scopes {
            out.push(Change::SetScopes(v));
        }
        if let Some(v) = self.accounts {
            out.push(Change::SetAccounts(v));
        }
        if let Some(v) = self.active {
            out.push(Change::SetActive(v));
        }
        if let Some(v) = self.expires_at {
            out.push(Change::SetExpiry(v.as_ref().map(|t| time_value(t, "changes.expiresAt")).transpose()?));
        }
        if let Some(v) = self.max_concurrent {
            out.push(Change::SetMaxConcurrent(v));
        }
        if let Some(v) = self.metadata {
            out.push(Change::SetMetadata(v));
        }
        if let Some(v) = self.rate_limit {
            out.push(Change::SetRateLimit(v));
        }
        if let Some(v) = self.credits {
            out.push(Change::SetCredits(v.map(|grant| credits_at(grant, now)).transpose()?));
        }
        Ok(out)
    }
}

/// A credit grant made at `now` (its epoch: setting credits again starts a new count).
fn credits_at(mut grant: Value, now: Timestamp) -> Result<keycel::budget::CreditGrant, Error> {
    let Value::Object(m) = &mut grant else {
        return Err(Error::invalid_argument("changes.credits must be { remaining, refill } or null"));
    };
    m.insert("set_at".to_string(), serde_json::to_value(now).unwrap_or(Value::Null));
    serde_json::from_value(grant).map_err(|e| Error::invalid_argument(format!("changes.credits: {e}")))
}

fn need<T>(v: Option<T>, what: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::invalid_argument(format!("{what} is missing")))
}

fn response_js(r: &HttpResponse) -> JsValue {
    let headers: Vec<Value> = r.headers.iter().map(|(k, v)| json!([k, v])).collect();
    convert::to_js(&json!({ "status": r.status, "headers": headers, "body": String::from_utf8_lossy(&r.body) }))
}

fn misses_js(misses: &[Miss]) -> JsValue {
    let list: Vec<Value> = misses.iter().map(|m| json!([m.collection().as_str(), m.id()])).collect();
    convert::to_js(&json!({ "misses": list }))
}

#[wasm_bindgen]
impl KeyringSession {
    /// A session deciding with `engine`'s policy (its token format, hash preset, credential
    /// header names and management rules).
    #[wasm_bindgen(js_name = forEngine)]
    pub fn for_engine(engine: &Engine, options: JsValue) -> JsResult<KeyringSession> {
        let issuer = engine.issuer();
        let guard = issuer.guard.clone();
        let mut s = Self::build(issuer.format, issuer.hash, issuer.credentials, &options)?;
        if let Some(g) = guard {
            s.ring = s.ring.with_guard(g);
        }
        s.engine = Some(Arc::clone(engine.core()));
        Ok(s)
    }

    /// A session without a policy: only the operator may act (the core's `OperatorOnly`).
    #[wasm_bindgen(js_name = operatorOnly)]
    pub fn operator_only(options: JsValue) -> JsResult<KeyringSession> {
        Ok(Self::build(TokenFormat::default(), HashPolicy::default(), CredentialConfig::default(), &options)?)
    }

    fn build(
        format: TokenFormat,
        hash: HashPolicy,
        credentials: CredentialConfig,
        options: &JsValue,
    ) -> Result<KeyringSession, Error> {
        let opts: SessionOptions = convert::from_js(options, "options")?.unwrap_or_default();
        let format = match &opts.prefix {
            Some(p) => TokenFormat::with_prefix(p).map_err(|e| Error::invalid_argument(format!("prefix: {e}")))?,
            None => format,
        };
        let hash = opts.hash.as_ref().map_or(Ok(hash), |h| h.policy(&hash))?;
        let staged = Arc::new(StagedStore::new());
        let store: Arc<dyn Store> = staged.clone();
        let ring = Keyring::new(store).with_format(format).with_hash(hash).map_err(keyring_error)?;
        Ok(KeyringSession { staged, ring: ring.with_audit(Arc::new(NullAudit)), engine: None, credentials })
    }

    /// Loads one document the host read (`null`: none).
    pub fn load(&self, collection_name: &str, id: &str, doc: Option<String>) -> JsResult<()> {
        let r = match collection(collection_name)? {
            Collection::Keys => self.staged.load_key(id, doc.as_deref()),
            Collection::Users => self.staged.load_user(id, doc.as_deref()),
            Collection::Retired => return Err(Error::invalid_argument("retired ids are never loaded").into()),
        };
        Ok(r.map_err(store_error)?)
    }

    /// Loads a whole collection.
    #[wasm_bindgen(js_name = loadAll)]
    pub fn load_all(&self, collection_name: &str, docs: Vec<String>) -> JsResult<()> {
        let r = match collection(collection_name)? {
            Collection::Keys => self.staged.load_all_keys(&docs),
            Collection::Users => self.staged.load_all_users(&docs),
            Collection::Retired => return Err(Error::invalid_argument("retired ids are never loaded").into()),
        };
        Ok(r.map_err(store_error)?)
    }

    /// Runs keyring operation `op`: `{ misses: [[collection, id | null], ...] }` when it
    /// needs documents not loaded yet (load them and run again), else `{ value }`; a refusal
    /// throws (`denied`, `not_found`, `invalid_record`, ...). Nothing is written here.
    pub fn run(&self, op: &str, args: JsValue, now: JsValue) -> JsResult<JsValue> {
        let now = convert::timestamp(&now, "now")?;
        let args: Args = convert::from_js(&args, "arguments")?.unwrap_or_default();
        self.staged.begin();
        let out = self.op(op, args, now);
        let misses = self.staged.misses();
        if !misses.is_empty() {
            return Ok(misses_js(&misses));
        }
        Ok(convert::to_js(&json!({ "value": out? })))
    }

    fn op(&self, op: &str, args: Args, now: Timestamp) -> Result<Value, Error> {
        let ring = &self.ring;
        let actor = actor(args.actor)?;
        let id = || need(args.id.clone(), "id");
        let view = |r: keycel::KeyRecord| r.to_public_value();
        match op {
            "create" => {
                let new = need(args.spec, "spec")?.into_new_key(now)?;
                let (record, issued) = ring.create(&actor, new, now).map_err(ring_error)?;
                Ok(self.revealed(record, issued))
            }
            "rotate" => {
                let grace = args.grace.as_ref().map(|g| g.duration("options.grace")).transpose()?;
                let (record, issued) = ring.rotate(&actor, &id()?, grace, now).map_err(ring_error)?;
                Ok(self.revealed(record, issued))
            }
            "get" => Ok(view(ring.get(&actor, &id()?, now).map_err(ring_error)?)),
            "list" => {
                let f = args.filter.unwrap_or_default();
                let filter = KeyFilter { user: f.user, kind: f.kind, active: f.active };
                let keys = ring.list(&actor, &filter, now).map_err(ring_error)?;
                Ok(Value::Array(keys.into_iter().map(view).collect()))
            }
            "update" => {
                let changes = need(args.changes, "changes")?.into_changes(now)?;
                Ok(view(ring.update_all(&actor, &id()?, changes, now).map_err(ring_error)?))
            }
            "delete" => {
                ring.delete(&actor, &id()?, now).map_err(ring_error)?;
                Ok(Value::Bool(true))
            }
            "putUser" => {
                let user = user_from_value(need(args.user, "user")?)?;
                let saved = ring.put_user(&actor, user, now).map_err(ring_error)?;
                Ok(serde_json::to_value(saved).unwrap_or(Value::Null))
            }
            "getUser" => match ring.user_as(&actor, &id()?, now) {
                Ok(u) => Ok(serde_json::to_value(u).unwrap_or(Value::Null)),
                Err(KeyringError::NotFound(_)) => Ok(Value::Null),
                Err(e) => Err(ring_error(e)),
            },
            "listUsers" => {
                let users = ring.users_as(&actor, now).map_err(ring_error)?;
                Ok(serde_json::to_value(users).unwrap_or(Value::Null))
            }
            "removeUser" => {
                let n = ring.remove_user(&actor, &id()?, now).map_err(ring_error)?;
                Ok(json!({ "removedTokens": n }))
            }
            "explain" => {
                let engine = self.engine()?;
                let record = ring.get(&actor, &id()?, now).map_err(ring_error)?;
                let user = match record.kind.user() {
                    Some(u) => self.staged.get_user(u).map_err(store_error)?,
                    None => None,
                };
                let a = engine.explain(&record, user.as_ref(), now).map_err(|e| Error::record(&e))?;
                Ok(serde_json::to_value(a).unwrap_or(Value::Null))
            }
            other => Err(Error::invalid_argument(format!("unknown keyring operation {other:?}"))),
        }
    }

    /// `{ clientId, token, secretKey, authorizationBasic, authorizationBearer, headers,
    /// record }`: the secret once, the record in its public form (the store has the hash).
    fn revealed(&self, record: keycel::KeyRecord, issued: keycel::IssuedKey) -> Value {
        let r = issued.reveal(&self.credentials);
        let headers: serde_json::Map<String, Value> =
            r.header_pair().iter().map(|(k, v)| (k.to_string(), Value::from(v.to_string()))).collect();
        json!({
            "clientId": r.client_id.as_str(),
            "token": r.token.expose(),
            "secretKey": r.secret_key.expose(),
            "authorizationBasic": r.authorization_basic.expose(),
            "authorizationBearer": r.authorization_bearer.expose(),
            "headers": headers,
            "record": record.to_public_value(),
        })
    }

    /// Runs the management API (`keycel::management::handle`) for one request: `{ misses }`
    /// as for `run`, else the answer `{ status, headers: [[name, value], ...], body }`.
    /// `headers` is flattened `[name, value, name, value, ...]`.
    #[allow(clippy::too_many_arguments)]
    pub fn http(
        &self,
        method: String,
        path: String,
        headers: Vec<String>,
        body: Vec<u8>,
        client_ip: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        let engine = self.engine()?;
        let now = convert::timestamp(&now, "now")?;
        let headers = headers.chunks_exact(2).filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone()))).collect();
        let req = HttpRequest { method, path, headers, body, client_ip };
        self.staged.begin();
        let resp = keycel::management::handle(engine, &self.ring, &req, now);
        let misses = self.staged.misses();
        if !misses.is_empty() {
            return Ok(misses_js(&misses));
        }
        Ok(response_js(&resp))
    }

    /// The management API's answer when committing failed: `conflict` (409) when core's
    /// check refuses the documents found (`found` as for `verify`), `null` when the plan
    /// applies; with `found` undefined, the host store failed (503, as core answers).
    #[wasm_bindgen(js_name = httpCommitCheck)]
    pub fn http_commit_check(&self, found: Option<Vec<JsValue>>, failure: Option<String>) -> JsResult<JsValue> {
        let engine = self.engine()?;
        let err = match found {
            Some(found) => {
                let found: Vec<Option<String>> = found.iter().map(JsValue::as_string).collect();
                match self.staged.plan().verify(&found) {
                    Ok(()) => return Ok(JsValue::NULL),
                    Err(e) => e,
                }
            }
            None => StoreError::Backend(failure.unwrap_or_default()),
        };
        Ok(response_js(&ApiError::from_store(err, engine.messages()).into_response()))
    }

    fn engine(&self) -> Result<&keycel::engine::Engine, Error> {
        self.engine
            .as_deref()
            .ok_or_else(|| Error::new(codes::CONFIG_ERROR, "this needs a keyring built with an Engine"))
    }

    /// The last complete run's writes: `{ checks: [[collection, id], ...], ops: [["put",
    /// collection, id, json] | ["delete", collection, id], ...] }`.
    pub fn plan(&self) -> JsValue {
        let plan = self.staged.plan();
        let checks: Vec<Value> = plan.checks.iter().map(|c| json!([c.collection.as_str(), c.id])).collect();
        let ops: Vec<Value> = plan
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { collection, id, json } => json!(["put", collection.as_str(), id, json]),
                Op::Delete { collection, id } => json!(["delete", collection.as_str(), id]),
            })
            .collect();
        convert::to_js(&json!({ "checks": checks, "ops": ops }))
    }

    /// Core's version checks over the documents the host read for `plan().checks` (same
    /// order; `null`: none). Throws `conflict` when the plan no longer applies.
    pub fn verify(&self, found: Vec<JsValue>) -> JsResult<()> {
        let found: Vec<Option<String>> = found.iter().map(JsValue::as_string).collect();
        Ok(self.staged.plan().verify(&found).map_err(store_error)?)
    }
}
