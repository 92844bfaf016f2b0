//! Issuing and rotating keys for admin tools. The core's `Keyring` does the work over a
//! scratch in-memory store, so validation, hashing, version bumps, grace periods and audit
//! events are exactly the core's; the caller stores the returned record wherever it keeps
//! records (KV, a database). Random bytes are drawn only here, inside the call.

use crate::convert::{self, Span};
use crate::error::{codes, Error, JsResult};
use crate::records::KeyRecord;
use keycel::audit::MemoryAudit;
use keycel::keyring::{Actor, Keyring, KeyringError, ManagementGuard, NewKey};
use keycel::store::{MemoryStore, Store};
use keycel::{AccountScope, CredentialConfig, HashParams, HashPolicy, KeyKind, RecordError, Timestamp, TokenFormat};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// What to create (camelCase JS object).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct KeySpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    user: Option<String>,
    role: String,
    #[serde(default)]
    scopes: BTreeSet<String>,
    #[serde(default)]
    accounts: Option<AccountScope>,
    #[serde(default)]
    expires_in: Option<Span>,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    active: Option<bool>,
    /// `{ limit, per: "1m", burst? }`, parsed by core's `budget::spec` (as `POST /keys`).
    #[serde(default)]
    rate_limit: Option<serde_json::Value>,
    /// `{ remaining, refill?: { amount, interval } | null }`, granted at creation.
    #[serde(default)]
    credits: Option<serde_json::Value>,
}

impl KeySpec {
    /// The key to create at `now` (its credit grant's epoch). A budget value that does not
    /// parse is an `invalid_record` error naming the field (`rate_limit.per`), before any write.
    pub(crate) fn into_new_key(self, now: Timestamp) -> Result<NewKey, Error> {
        let budget = |e: keycel::budget::spec::SpecError| Error::record(&RecordError::new(e.field, e.message));
        let rate_limit = self
            .rate_limit
            .filter(|v| !v.is_null())
            .map(|v| keycel::budget::spec::rate_limit("rate_limit", &v).map_err(budget))
            .transpose()?;
        let credits = self
            .credits
            .filter(|v| !v.is_null())
            .map(|v| keycel::budget::spec::credits("credits", &v, now).map_err(budget))
            .transpose()?;
        let kind = KeyKind::from_parts(self.kind.as_deref().unwrap_or("api"), self.user)
            .map_err(|e| Error::invalid_argument(format!("spec.{}: {}", e.field, e.message)))?;
        Ok(NewKey {
            name: self.name,
            description: self.description,
            kind,
            role: self.role,
            scopes: self.scopes,
            accounts: self.accounts.unwrap_or(AccountScope::All),
            expires_in: self.expires_in.map(|s| s.duration("spec.expiresIn")).transpose()?,
            max_concurrent: self.max_concurrent,
            rate_limit,
            credits,
            metadata: self.metadata,
            active: self.active.unwrap_or(true),
        })
    }
}

/// argon2id parameters: a preset name or explicit costs.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum HashChoice {
    Preset(String),
    Params {
        #[serde(rename = "mCost")]
        m_cost: u32,
        #[serde(rename = "tCost")]
        t_cost: u32,
        #[serde(rename = "pCost")]
        p_cost: u32,
    },
}

impl HashChoice {
    pub(crate) fn policy(&self, base: &HashPolicy) -> Result<HashPolicy, Error> {
        let params = match self {
            HashChoice::Preset(name) => HashParams::preset(name)
                .ok_or_else(|| Error::invalid_argument(format!("hash: unknown preset {name:?} (owasp, edge)")))?,
            HashChoice::Params { m_cost, t_cost, p_cost } => {
                HashParams { m_cost: *m_cost, t_cost: *t_cost, p_cost: *p_cost }
            }
        };
        let p = HashPolicy { params, ..*base };
        p.validate().map_err(|e| Error::new(codes::HASH_ERROR, e.to_string()))?;
        Ok(p)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IssueOptions {
    #[serde(default)]
    owner: Option<serde_json::Value>,
    #[serde(default)]
    hash: Option<HashChoice>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    actor: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateOptions {
    #[serde(default)]
    grace: Option<Span>,
    #[serde(default)]
    hash: Option<HashChoice>,
    #[serde(default)]
    owner: Option<serde_json::Value>,
    #[serde(default)]
    actor: Option<serde_json::Value>,
}

/// Who acts: the local operator (admin tools) or a key whose policy decides.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ActorSpec {
    Operator(String),
    Key {
        key: serde_json::Value,
        #[serde(default)]
        user: Option<serde_json::Value>,
    },
}

pub(crate) fn actor(spec: Option<serde_json::Value>) -> Result<Actor, Error> {
    let Some(v) = spec else { return Ok(Actor::Operator("admin".to_string())) };
    let spec: ActorSpec = serde_json::from_value(v)
        .map_err(|_| Error::invalid_argument("actor must be an operator name or { key, user }"))?;
    match spec {
        ActorSpec::Operator(name) if !name.is_empty() && name.len() <= 128 => Ok(Actor::Operator(name)),
        ActorSpec::Operator(_) => Err(Error::invalid_argument("actor: operator name must be 1-128 characters")),
        ActorSpec::Key { key, user } => {
            let key = keycel::KeyRecord::from_value(key).map_err(|e| Error::record(&e))?;
            let user = user.map(user_from_value).transpose()?;
            Ok(Actor::Key { key: Box::new(key), user })
        }
    }
}

/// `options` with a `KeyRecord` handle in `actor.key` replaced by its storage form: a
/// handle's `toJSON` is the public form (no hash), which is not a record. A shallow copy; the
/// caller's object is left alone.
fn with_actor_storage_form(options: &JsValue) -> JsValue {
    let get = |o: &JsValue, k: &str| js_sys::Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let actor = get(options, "actor");
    let key = get(&actor, "key");
    let Ok(storage) = get(&key, "toStorageJSON").dyn_into::<js_sys::Function>() else {
        return options.clone();
    };
    let Ok(stored) = storage.call0(&key) else { return options.clone() };
    let copy = |o: &JsValue| -> JsValue {
        js_sys::Object::assign(&js_sys::Object::new(), o.unchecked_ref::<js_sys::Object>()).into()
    };
    let (options, actor) = (copy(options), copy(&actor));
    let _ = js_sys::Reflect::set(&actor, &JsValue::from_str("key"), &stored);
    let _ = js_sys::Reflect::set(&options, &JsValue::from_str("actor"), &actor);
    options
}

pub(crate) fn user_from_value(v: serde_json::Value) -> Result<keycel::UserRecord, Error> {
    let u: keycel::UserRecord = serde_json::from_value(v)
        .map_err(|e| Error::record(&keycel::RecordError { field: "json".into(), message: e.to_string() }))?;
    u.validate().map_err(|e| Error::record(&e))?;
    Ok(u)
}

/// Maps a keyring failure to the thrown error.
pub(crate) fn keyring_error(e: KeyringError) -> Error {
    match e {
        KeyringError::Denied(d) => Error::new(codes::DENIED, format!("denied ({}): {}", d.status, d.message))
            .with_extra(convert::object(&[
                ("status", d.status.into()),
                ("decision", crate::decision::to_js(&d, None, None)),
            ])),
        KeyringError::NotFound(id) => Error::new(codes::NOT_FOUND, format!("not found: {id}")),
        KeyringError::Invalid(r) => Error::record(&r),
        KeyringError::Hash(h) => Error::new(codes::HASH_ERROR, h.to_string()),
        KeyringError::Token(keycel::TokenError::Rng) => Error::new(codes::RNG_FAILED, "random number generator failed"),
        KeyringError::Token(t) => Error::invalid_argument(t.to_string()),
        KeyringError::Store(s) => Error::invalid_argument(s.to_string()),
    }
}

/// The settings a key is issued with (the engine's, or the defaults).
pub(crate) struct Issuer {
    pub(crate) format: TokenFormat,
    pub(crate) hash: HashPolicy,
    pub(crate) guard: Option<Arc<dyn ManagementGuard>>,
    /// Header names the issued key's `headers` form uses.
    pub(crate) credentials: CredentialConfig,
}

impl Issuer {
    pub(crate) fn defaults() -> Self {
        Issuer {
            format: TokenFormat::default(),
            hash: HashPolicy::default(),
            guard: None,
            credentials: CredentialConfig::default(),
        }
    }

    fn keyring(&self, format: TokenFormat, hash: HashPolicy) -> Result<(Keyring, Arc<MemoryAudit>), Error> {
        let audit = Arc::new(MemoryAudit::default());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut ring = Keyring::new(store).with_format(format).with_hash(hash).map_err(keyring_error)?;
        ring = ring.with_audit(audit.clone());
        if let Some(g) = &self.guard {
            ring = ring.with_guard(Arc::clone(g));
        }
        Ok((ring, audit))
    }

    pub(crate) fn issue(&self, spec: &JsValue, now: &JsValue, options: &JsValue) -> Result<JsValue, Error> {
        let spec: KeySpec =
            convert::from_js(spec, "spec")?.ok_or_else(|| Error::invalid_argument("spec is missing"))?;
        let now = convert::timestamp(now, "now")?;
        let opts: IssueOptions = convert::from_js(&with_actor_storage_form(options), "options")?.unwrap_or_default();
        let format = match &opts.prefix {
            Some(p) => TokenFormat::with_prefix(p).map_err(|e| Error::invalid_argument(format!("prefix: {e}")))?,
            None => self.format.clone(),
        };
        let hash = opts.hash.as_ref().map_or(Ok(self.hash), |h| h.policy(&self.hash))?;
        let new = spec.into_new_key(now)?;
        let (ring, audit) = self.keyring(format, hash)?;
        let actor = actor(opts.actor)?;
        if let Some(owner) = opts.owner {
            let owner = user_from_value(owner)?;
            ring.store().put_user(&owner).map_err(|e| keyring_error(e.into()))?;
        }
        seed_actor(&ring, &actor, None)?;
        let (record, issued) = ring.create(&actor, new, now).map_err(keyring_error)?;
        Ok(issued_js(record, issued, &self.credentials, &audit))
    }

    pub(crate) fn rotate(&self, record: &KeyRecord, now: &JsValue, options: &JsValue) -> Result<JsValue, Error> {
        let now: Timestamp = convert::timestamp(now, "now")?;
        let opts: RotateOptions = convert::from_js(&with_actor_storage_form(options), "options")?.unwrap_or_default();
        let grace = opts.grace.as_ref().map(|g| g.duration("options.grace")).transpose()?;
        let hash = opts.hash.as_ref().map_or(Ok(self.hash), |h| h.policy(&self.hash))?;
        let (ring, audit) = self.keyring(self.format.clone(), hash)?;
        let actor = actor(opts.actor)?;
        if let Some(owner) = opts.owner {
            ring.store().put_user(&user_from_value(owner)?).map_err(|e| keyring_error(e.into()))?;
        }
        ring.store().insert_key(record.inner()).map_err(|e| keyring_error(e.into()))?;
        seed_actor(&ring, &actor, Some(record.inner()))?;
        let (record, issued) = ring.rotate(&actor, record.inner().id.as_str(), grace, now).map_err(keyring_error)?;
        Ok(issued_js(record, issued, &self.credentials, &audit))
    }
}

/// Puts an acting key (and its user) into the scratch store, where the core keyring re-reads
/// it at the moment of the change: the host passes the records as its store holds them now,
/// and an inactive, expired or orphaned actor (or one whose secret was rotated past its
/// grace) is refused by core exactly as in every other runtime. When the actor is the key
/// being rotated, the record to rotate must be that very record.
fn seed_actor(ring: &Keyring, actor: &Actor, target: Option<&keycel::KeyRecord>) -> Result<(), Error> {
    let Actor::Key { key, user } = actor else { return Ok(()) };
    if let Some(u) = user {
        if ring.store().get_user(&u.id).map_err(|e| keyring_error(e.into()))?.is_none() {
            ring.store().put_user(u).map_err(|e| keyring_error(e.into()))?;
        }
    }
    match target {
        Some(t) if t.id == key.id => {
            if t != key.as_ref() {
                return Err(Error::invalid_argument("actor.key and the record to rotate are different versions"));
            }
            Ok(())
        }
        _ => ring.store().insert_key(key).map_err(|e| keyring_error(e.into())),
    }
}

/// `{ clientId, token, secretKey, authorizationBasic, authorizationBearer, headers, record,
/// recordJson, audit }`: the only time the secret is shown, in every form the core builds
/// (`IssuedKey::reveal`). `recordJson` is the storage form, to write to the store.
fn issued_js(
    record: keycel::KeyRecord,
    issued: keycel::IssuedKey,
    credentials: &CredentialConfig,
    audit: &MemoryAudit,
) -> JsValue {
    let json = record.to_storage_json();
    let r = issued.reveal(credentials);
    let headers = convert::object(&r.header_pair().map(|(name, value)| (name, JsValue::from(value))));
    convert::object(&[
        ("clientId", r.client_id.as_str().into()),
        ("token", r.token.expose().into()),
        ("secretKey", r.secret_key.expose().into()),
        ("authorizationBasic", r.authorization_basic.expose().into()),
        ("authorizationBearer", r.authorization_bearer.expose().into()),
        ("headers", headers),
        ("record", KeyRecord::from_core(record).into()),
        ("recordJson", json.into()),
        ("audit", convert::to_js(&audit.events())),
    ])
}

/// Issues a new key (as the local operator, default format and OWASP argon2id unless
/// `options` say otherwise). Returns the record to store and the token, shown only now.
/// A personal token needs `options.owner`, the user record it belongs to.
#[wasm_bindgen(js_name = issueKey, unchecked_return_type = "IssuedKey")]
pub fn issue_key(
    #[wasm_bindgen(unchecked_param_type = "KeySpec")] spec: JsValue,
    #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "IssueOptions")] options: Option<JsValue>,
) -> JsResult<JsValue> {
    Ok(Issuer::defaults().issue(&spec, &now, &options.unwrap_or(JsValue::UNDEFINED))?)
}

/// Rotates a key's secret: the old one dies now, or at `now + options.grace`. Returns the
/// new record (version bumped) and the new token, shown only now.
#[wasm_bindgen(js_name = rotateKey, unchecked_return_type = "IssuedKey")]
pub fn rotate_key(
    record: &KeyRecord,
    #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "RotateOptions")] options: Option<JsValue>,
) -> JsResult<JsValue> {
    Ok(Issuer::defaults().rotate(record, &now, &options.unwrap_or(JsValue::UNDEFINED))?)
}
