//! `Engine`: a compiled policy with its authenticator (and verified-secret cache) and lease
//! counters. Build one per isolate, at module top level if you like: nothing random or
//! clock-dependent happens until a request is handled.

use crate::convert::{self, Span};
use crate::credentials::{self, Credentials};
use crate::decision;
use crate::error::{codes, Error, JsResult};
use crate::keys::Issuer;
use crate::records::{KeyRecord, UserRecord};
use crate::rehash::Rehash;
use keycel::decision::Decision;
use keycel::engine::{auth_config_for, limiter_config_for, EngineError, Request};
use keycel::keyring::ManagementGuard;
use keycel::limiter::LimiterConfig;
use keycel::policy::{PolicyError, PolicySet};
use serde::Deserialize;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Engine settings beyond the policy's `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EngineOptions {
    /// Name used in policy error messages (default `policy.toml` / `policy.json`).
    #[serde(default)]
    origin: Option<String>,
    /// Verified-secret cache entries (0 turns it off).
    #[serde(default)]
    cache_capacity: Option<usize>,
    /// Age after which a cached verification is redone with argon2.
    #[serde(default)]
    cache_ttl: Option<Span>,
    /// Hand back a `Rehash` on the first successful use of a key hashed with outdated
    /// argon2 parameters.
    #[serde(default)]
    rehash_on_use: bool,
    /// `"local"` (default): `authorize` counts budgets in this isolate; `"external"`: it
    /// counts nothing, a Durable Object does (`Admission`, `engine.ticket`).
    #[serde(default)]
    admission: Option<String>,
    /// `"local"` (default): failed-authentication budgets in this isolate; `"external"`:
    /// none here, a Durable Object per subject keeps them (`FailureBudgets`,
    /// `engine.failureSubjects`).
    #[serde(default)]
    failure_budgets: Option<String>,
}

/// Most cache entries a caller may ask for.
const MAX_CACHE_CAPACITY: usize = 1_000_000;

fn policy_error(e: &PolicyError) -> Error {
    let opt = |v: Option<u32>| v.map_or(JsValue::NULL, JsValue::from);
    Error::new(codes::POLICY_ERROR, e.to_string()).with_extra(convert::object(&[
        ("file", e.file.as_str().into()),
        ("rule", e.rule.as_deref().map_or(JsValue::NULL, JsValue::from)),
        ("line", opt(e.line)),
        ("column", opt(e.column)),
    ]))
}

fn engine_error(e: &EngineError) -> Error {
    match e {
        EngineError::Policy(p) => policy_error(p),
        EngineError::Config(c) => Error::new(codes::CONFIG_ERROR, format!("invalid engine configuration: {c}")),
    }
}

/// A request as it crosses from JS (checked for types in `js/glue.js`).
struct RequestParts {
    action: String,
    account: Option<String>,
    method: Option<String>,
    path: Option<String>,
    ip: Option<String>,
    /// JSON text of the attributes object, when there are any.
    attributes: Option<String>,
    /// The request's cost in rate units and credits (default 1).
    cost: Option<u32>,
}

impl RequestParts {
    fn into_request(self) -> Result<Request, Error> {
        let attributes = match self.attributes {
            None => Default::default(),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| Error::invalid_argument(format!("request.attributes: {e}")))?
            }
        };
        Ok(Request {
            action: self.action,
            account: self.account,
            method: self.method,
            path: self.path,
            ip: self.ip,
            client_ip: None,
            attributes,
            cost: self.cost,
        })
    }
}

/// A compiled policy with authentication, the verified-secret cache and lease counters.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Engine {
    inner: Arc<keycel::engine::Engine>,
}

#[wasm_bindgen]
impl Engine {
    /// Compiles a policy: TOML text, or the same structure as a plain object. Throws
    /// `KeycelError` `policy_error` (with `file`, `rule`, `line`, `column`) or `config_error`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string | PolicyDocument")] policy: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EngineOptions")] options: Option<JsValue>,
    ) -> JsResult<Engine> {
        let opts: EngineOptions =
            convert::from_js(&options.unwrap_or(JsValue::UNDEFINED), "options")?.unwrap_or_default();
        let set = if let Some(src) = policy.as_string() {
            PolicySet::from_toml_str(&src, opts.origin.as_deref().unwrap_or("policy.toml"))
        } else if policy.is_object() {
            let text = convert::json_text(&policy, "policy")?.unwrap_or_default();
            PolicySet::from_json_str(&text, opts.origin.as_deref().unwrap_or("policy.json"))
        } else {
            return Err(Error::invalid_argument("policy must be TOML text or a plain object").into());
        }
        .map_err(|e| policy_error(&e))?;
        let mut auth = auth_config_for(&set).map_err(|e| engine_error(&e))?;
        let limits = wasm_limiter(&set).map_err(|e| engine_error(&e))?;
        if let Some(n) = opts.cache_capacity {
            if n > MAX_CACHE_CAPACITY {
                return Err(
                    Error::invalid_argument(format!("cacheCapacity must be at most {MAX_CACHE_CAPACITY}")).into()
                );
            }
            auth.cache.capacity = n;
        }
        if let Some(ttl) = &opts.cache_ttl {
            auth.cache.ttl = Some(ttl.duration("cacheTtl")?);
        }
        let mut inner = keycel::engine::Engine::with_config(set, auth, Some(limits))
            .map_err(|e| engine_error(&e))?
            .rehash_on_use(opts.rehash_on_use);
        match opts.admission.as_deref() {
            None | Some("local") => {}
            Some("external") => inner = inner.with_admission(Arc::new(crate::admission::External)),
            Some(_) => return Err(Error::invalid_argument("admission must be \"local\" or \"external\"").into()),
        }
        match opts.failure_budgets.as_deref() {
            None | Some("local") => {}
            Some("external") => inner = inner.with_failure_budget(Arc::new(uncounted_failures())),
            Some(_) => return Err(Error::invalid_argument("failureBudgets must be \"local\" or \"external\"").into()),
        }
        Ok(Engine { inner: Arc::new(inner) })
    }

    /// The default policy shipped with keycel (`policies/default.toml`).
    #[wasm_bindgen(js_name = defaultPolicy)]
    pub fn default_policy() -> JsResult<Engine> {
        let set = PolicySet::default_policy().map_err(|e| policy_error(&e))?;
        let auth = auth_config_for(&set).map_err(|e| engine_error(&e))?;
        let limits = wasm_limiter(&set).map_err(|e| engine_error(&e))?;
        let inner = keycel::engine::Engine::with_config(set, auth, Some(limits)).map_err(|e| engine_error(&e))?;
        Ok(Engine { inner: Arc::new(inner) })
    }

    /// Takes credentials from request headers with this policy's prefix and header names.
    /// Throws like the top-level `parseCredentials`, with this policy's messages.
    #[wasm_bindgen(js_name = parseCredentials)]
    pub fn parse_credentials(
        &self,
        #[wasm_bindgen(unchecked_param_type = "HeadersInput")] headers: JsValue,
    ) -> JsResult<Credentials> {
        let cfg = self.inner.authenticator().config();
        Ok(credentials::extract(&cfg.credentials, &cfg.format, self.inner.messages(), &headers)?)
    }

    fn authorize_with(
        &self,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        credentials: &Credentials,
        request: RequestParts,
        now: &JsValue,
    ) -> JsResult<JsValue> {
        let now = convert::timestamp(now, "now")?;
        let req = request.into_request()?;
        let a = self.inner.authorize_credentials(
            credentials.inner(),
            record.map(KeyRecord::inner),
            user.map(UserRecord::inner),
            &req,
            now,
        );
        let rehash = match (a.rehash, record) {
            (Some(pending), Some(r)) => Rehash::new(pending, r.inner().clone()).into(),
            _ => JsValue::NULL,
        };
        Ok(decision::to_js_with_rehash(&a.decision, a.lease, a.authenticated.as_ref(), rehash))
    }

    fn decide_with(
        &self,
        record: &KeyRecord,
        user: Option<&UserRecord>,
        request: RequestParts,
        now: &JsValue,
    ) -> JsResult<JsValue> {
        let now = convert::timestamp(now, "now")?;
        let req = request.into_request()?;
        let d = self.inner.decide(record.inner(), user.map(UserRecord::inner), &req, now);
        Ok(decision::to_js(&d, None, None))
    }

    // `authorize(record | null, credentials, request, now, user?)` and `decide(...)` are
    // defined in `js/glue.js` (`installApi`) over the entry points below: wasm-bindgen cannot
    // borrow an optional handle, and the request crosses as separate strings (cheaper than
    // JSON), type-checked there.

    /// `authorize` for a key the lookup found.
    #[wasm_bindgen(js_name = authorizeKey, skip_typescript)]
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_key(
        &self,
        record: &KeyRecord,
        credentials: &Credentials,
        action: String,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<String>,
        now: JsValue,
        cost: Option<u32>,
    ) -> JsResult<JsValue> {
        let parts = RequestParts { action, account, method, path, ip, attributes, cost };
        self.authorize_with(Some(record), None, credentials, parts, &now)
    }

    /// `authorize` for a personal token with its owner's record.
    #[wasm_bindgen(js_name = authorizePersonal, skip_typescript)]
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_personal(
        &self,
        record: &KeyRecord,
        user: &UserRecord,
        credentials: &Credentials,
        action: String,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<String>,
        now: JsValue,
        cost: Option<u32>,
    ) -> JsResult<JsValue> {
        let parts = RequestParts { action, account, method, path, ip, attributes, cost };
        self.authorize_with(Some(record), Some(user), credentials, parts, &now)
    }

    /// `authorize` when the lookup found no record (same 401, same argon2 cost).
    #[wasm_bindgen(js_name = authorizeUnknown, skip_typescript)]
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_unknown(
        &self,
        credentials: &Credentials,
        action: String,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<String>,
        now: JsValue,
        cost: Option<u32>,
    ) -> JsResult<JsValue> {
        let parts = RequestParts { action, account, method, path, ip, attributes, cost };
        self.authorize_with(None, None, credentials, parts, &now)
    }

    /// `decide`: the policy alone for an authenticated key (no authentication, no lease).
    #[wasm_bindgen(js_name = decideKey, skip_typescript)]
    #[allow(clippy::too_many_arguments)]
    pub fn decide_key(
        &self,
        record: &KeyRecord,
        action: String,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        let parts = RequestParts { action, account, method, path, ip, attributes, cost: None };
        self.decide_with(record, None, parts, &now)
    }

    /// `decide` for a personal token with its owner's record.
    #[wasm_bindgen(js_name = decidePersonal, skip_typescript)]
    #[allow(clippy::too_many_arguments)]
    pub fn decide_personal(
        &self,
        record: &KeyRecord,
        user: &UserRecord,
        action: String,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        let parts = RequestParts { action, account, method, path, ip, attributes, cost: None };
        self.decide_with(record, Some(user), parts, &now)
    }

    fn explain_with(&self, record: &KeyRecord, user: Option<&UserRecord>, now: &JsValue) -> JsResult<JsValue> {
        let now = if now.is_undefined() || now.is_null() {
            convert::timestamp(&JsValue::from(js_sys::Date::now()), "now")?
        } else {
            convert::timestamp(now, "now")?
        };
        let a = self.inner.explain(record.inner(), user.map(UserRecord::inner), now).map_err(|e| Error::record(&e))?;
        Ok(convert::to_js(&a))
    }

    // `explain(record, user?, now?)` is defined in `js/glue.js` over these two entry points
    // (an optional handle cannot be borrowed across wasm-bindgen).

    /// `explain` for a key without a user (API tokens).
    #[wasm_bindgen(js_name = explainKey, skip_typescript)]
    pub fn explain_key(&self, record: &KeyRecord, now: JsValue) -> JsResult<JsValue> {
        self.explain_with(record, None, &now)
    }

    /// `explain` for a personal token with its owner's record.
    #[wasm_bindgen(js_name = explainPersonal, skip_typescript)]
    pub fn explain_personal(&self, record: &KeyRecord, user: &UserRecord, now: JsValue) -> JsResult<JsValue> {
        self.explain_with(record, Some(user), &now)
    }

    /// Every role the policy defines and the scope patterns it grants.
    #[wasm_bindgen(unchecked_return_type = "{ [role: string]: string[] }")]
    pub fn roles(&self) -> JsValue {
        convert::to_js(&self.inner.roles().into_iter().collect::<std::collections::BTreeMap<_, _>>())
    }

    /// The policy's scope catalogue: scope -> description.
    #[wasm_bindgen(unchecked_return_type = "{ [scope: string]: string }")]
    pub fn scopes(&self) -> JsValue {
        convert::to_js(&self.inner.policy().document().scopes)
    }

    pub(crate) fn issuer(&self) -> Issuer {
        let cfg = self.inner.authenticator().config();
        let guard: Arc<dyn ManagementGuard> = self.inner.clone();
        Issuer { format: cfg.format.clone(), hash: cfg.hash, guard: Some(guard), credentials: cfg.credentials.clone() }
    }

    /// Issues a key under this policy (its prefix and hash preset; the role and scopes must
    /// be defined by the policy). The actor defaults to the local operator; pass
    /// `options.actor = { key, user }` to have the policy decide for a key.
    #[wasm_bindgen(js_name = issueKey, unchecked_return_type = "IssuedKey")]
    pub fn issue_key(
        &self,
        #[wasm_bindgen(unchecked_param_type = "KeySpec")] spec: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "IssueOptions")] options: Option<JsValue>,
    ) -> JsResult<JsValue> {
        Ok(self.issuer().issue(&spec, &now, &options.unwrap_or(JsValue::UNDEFINED))?)
    }

    /// Rotates a key's secret under this policy (see the top-level `rotateKey`).
    #[wasm_bindgen(js_name = rotateKey, unchecked_return_type = "IssuedKey")]
    pub fn rotate_key(
        &self,
        record: &KeyRecord,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RotateOptions")] options: Option<JsValue>,
    ) -> JsResult<JsValue> {
        Ok(self.issuer().rotate(record, &now, &options.unwrap_or(JsValue::UNDEFINED))?)
    }

    /// Leases in flight for a key (expired ones included until reclaimed).
    #[wasm_bindgen(js_name = inFlight)]
    pub fn in_flight(&self, key_id: &str) -> u32 {
        u32::try_from(self.inner.limiter().in_flight(key_id)).unwrap_or(u32::MAX)
    }

    /// Frees every slot whose lease expired before `now`; returns how many.
    #[wasm_bindgen(js_name = reclaimExpiredLeases)]
    pub fn reclaim_expired_leases(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<u32> {
        let now = convert::timestamp(&now, "now")?;
        Ok(u32::try_from(self.inner.limiter().reclaim_expired(now)).unwrap_or(u32::MAX))
    }

    /// Verified secrets remembered (a warm isolate skips argon2 for them).
    #[wasm_bindgen(getter, js_name = cacheSize)]
    pub fn cache_size(&self) -> u32 {
        u32::try_from(self.inner.authenticator().cache_len()).unwrap_or(u32::MAX)
    }

    /// Forgets every verified secret.
    #[wasm_bindgen(js_name = clearCache)]
    pub fn clear_cache(&self) {
        self.inner.authenticator().clear_cache();
    }

    /// The body to send for a resource that does not exist: byte-identical to a 404
    /// decision's `body`, so an out-of-scope account and a missing one look the same.
    #[wasm_bindgen(js_name = notFoundBody)]
    pub fn not_found_body(&self) -> String {
        Decision::not_found_body(self.inner.messages())
    }

    /// Where the policy came from.
    #[wasm_bindgen(getter)]
    pub fn origin(&self) -> String {
        self.inner.policy().origin().to_string()
    }
}

impl Engine {
    /// The core engine (the management handler and keyring sessions share it).
    pub(crate) fn core(&self) -> &Arc<keycel::engine::Engine> {
        &self.inner
    }
}

/// A budget that counts nothing (every kind's limit 0): the engine's, when a Durable Object
/// keeps the budgets.
fn uncounted_failures() -> keycel::throttle::LocalBudget {
    let off = keycel::throttle::ThrottleConfig { per_ip: 0, per_client_id: 0, ..Default::default() };
    keycel::throttle::LocalBudget::new(off)
}

/// The policy's limits with renewable leases: a JS handle can be lost without being freed
/// (no finalizer runs), so a lease here is live while its holder renews it (`lease.renew`),
/// and reclaimed `lease_ttl` after the last renewal otherwise.
fn wasm_limiter(set: &PolicySet) -> Result<LimiterConfig, EngineError> {
    Ok(LimiterConfig { hold_while_alive: false, ..limiter_config_for(set)? })
}
