//! The policy engine for Python: load a policy, `authorize` requests from headers, decide
//! management actions (as a keyring guard). Policy evaluation and argon2 run with the GIL
//! released; the engine is shared freely across threads.

use crate::convert::{timestamp, to_json, HeaderFilter};
use crate::decision::Decision;
use crate::errors::{detached, invalid_argument, raise};
use crate::keyring::{hash_policy, Keyring};
use crate::records::{KeyRecord, UserRecord};
use crate::stores::{store_from, StoreHandle};
use keycel::engine::{EngineError, Lookup, Request};
use keycel::keyring::ManagementGuard;
use keycel::policy::{PolicyError, PolicySet};
use keycel::store::{Store, StoreError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::collections::BTreeMap;
use std::sync::Arc;

fn policy_error(e: &PolicyError) -> PyErr {
    Python::attach(|py| {
        let opt_u32 = |v: Option<u32>| v.and_then(|v| v.into_pyobject(py).ok()).map(|o| o.into_any().unbind());
        let mut kw: Vec<(&str, Py<PyAny>)> = vec![("file", PyString::new(py, &e.file).into_any().unbind())];
        if let Some(r) = &e.rule {
            kw.push(("rule_id", PyString::new(py, r).into_any().unbind()));
        }
        if let Some(l) = opt_u32(e.line) {
            kw.push(("line", l));
        }
        if let Some(c) = opt_u32(e.column) {
            kw.push(("column", c));
        }
        raise("PolicyError", e.to_string(), &kw)
    })
}

fn engine_error(e: &EngineError, origin: &str) -> PyErr {
    match e {
        EngineError::Policy(p) => policy_error(p),
        EngineError::Config(msg) => policy_error(&PolicyError {
            file: origin.to_string(),
            rule: None,
            line: None,
            column: None,
            message: msg.clone(),
        }),
    }
}

/// `&dyn Store` as the engine's `&dyn Lookup` (a trait object cannot be re-coerced).
struct StoreLookup<'a>(&'a dyn Store);

impl Lookup for StoreLookup<'_> {
    fn key(&self, id: &str) -> Result<Option<Arc<keycel::KeyRecord>>, StoreError> {
        self.0.get_key_shared(id)
    }
    fn user(&self, id: &str) -> Result<Option<Arc<keycel::UserRecord>>, StoreError> {
        self.0.get_user_shared(id)
    }
}

/// A compiled policy with authentication, the verified-secret cache and per-key leases,
/// over a store. Build it once per process and share it.
#[pyclass(frozen, module = "keycel._keycel", name = "Engine")]
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) inner: Arc<keycel::engine::Engine>,
    store: StoreHandle,
    headers: HeaderFilter,
}

impl Engine {
    fn build(
        py: Python<'_>,
        policy: Result<PolicySet, PolicyError>,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let policy = policy.map_err(|e| policy_error(&e))?;
        let origin = policy.origin().to_string();
        let engine =
            detached(py, move || keycel::engine::Engine::new(policy))?.map_err(|e| engine_error(&e, &origin))?;
        let c = &engine.authenticator().config().credentials;
        let headers = HeaderFilter::new(["authorization", c.client_id_header.as_str(), c.secret_header.as_str()]);
        let store = store_from(py, store)?;
        let engine = match crate::admission::choose(py, admission, &store, engine.limiter().config())? {
            Some(shared) => engine.with_admission(shared),
            None => engine,
        };
        Ok(Engine { inner: Arc::new(engine), store, headers })
    }

    fn request(
        action: &str,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let attributes = match attributes.filter(|a| !a.is_none()) {
            None => BTreeMap::new(),
            Some(a) => match to_json(a, "attributes")? {
                serde_json::Value::Object(m) => m.into_iter().collect(),
                _ => return Err(invalid_argument("attributes", "attributes must be a mapping")),
            },
        };
        Ok(Request { action: action.to_string(), account, method, path, ip, attributes })
    }
}

/// The guard behind a keyring: an `Engine` (its policy decides management actions).
pub(crate) fn guard_from(guard: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<dyn ManagementGuard>>> {
    match guard {
        Some(g) if !g.is_none() => {
            let e = g.cast::<Engine>().map_err(|_| invalid_argument("guard", "guard must be an Engine"))?;
            let inner: Arc<dyn ManagementGuard> = e.get().inner.clone();
            Ok(Some(inner))
        }
        _ => Ok(None),
    }
}

/// The hash parameters of the guard engine's policy (so a keyring guarded by an engine hashes
/// like `engine.keyring()` does).
pub(crate) fn hash_from(guard: Option<&Bound<'_, PyAny>>) -> Option<keycel::hash::HashPolicy> {
    guard.and_then(|g| g.cast::<Engine>().ok()).map(|e| e.get().inner.authenticator().config().hash)
}

/// The token format of the guard engine (so keys it issues parse under its policy).
pub(crate) fn format_from(guard: Option<&Bound<'_, PyAny>>) -> Option<keycel::TokenFormat> {
    guard.and_then(|g| g.cast::<Engine>().ok()).map(|e| e.get().inner.authenticator().config().format.clone())
}

#[pymethods]
impl Engine {
    /// `policy`: a file path (str or PathLike), a dict with the policy structure, or `None`
    /// for keycel's built-in default policy. `store`: where keys live (default: a new
    /// `MemoryStore`; also `SqliteStore` or any object implementing the store protocol).
    #[new]
    #[pyo3(signature = (policy = None, *, store = None, admission = None))]
    fn py_new(
        py: Python<'_>,
        policy: Option<&Bound<'_, PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        match policy.filter(|p| !p.is_none()) {
            None => Self::build(py, PolicySet::default_policy(), store, admission),
            Some(p) if p.hasattr("items")? => Self::from_dict(py, p, "<dict>", store, admission),
            Some(p) => {
                let path: std::path::PathBuf =
                    p.extract().map_err(|_| invalid_argument("policy", "policy must be a path, a dict or None"))?;
                Self::from_file(py, path, store, admission)
            }
        }
    }

    /// Loads a TOML (or `.json`) policy file.
    #[staticmethod]
    #[pyo3(signature = (path, *, store = None, admission = None))]
    fn from_file(
        py: Python<'_>,
        path: std::path::PathBuf,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let policy = detached(py, move || PolicySet::load(&path))?;
        Self::build(py, policy, store, admission)
    }

    /// Parses a TOML policy; `origin` names it in errors.
    #[staticmethod]
    #[pyo3(signature = (source, *, origin = "<string>", store = None, admission = None))]
    fn from_toml(
        py: Python<'_>,
        source: &str,
        origin: &str,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let policy = detached(py, || PolicySet::from_toml_str(source, origin))?;
        Self::build(py, policy, store, admission)
    }

    /// Builds from a dict with the same structure as the TOML file.
    #[staticmethod]
    #[pyo3(signature = (policy, origin = "<dict>", store = None, admission = None))]
    fn from_dict(
        py: Python<'_>,
        policy: &Bound<'_, PyAny>,
        origin: &str,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let value = to_json(policy, "policy")?;
        let policy = detached(py, || PolicySet::from_json_value(value, origin))?;
        Self::build(py, policy, store, admission)
    }

    /// The store object keys are looked up in.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<PyAny> {
        self.store.object.clone_ref(py)
    }

    /// The policy's origin (file path or label).
    #[getter]
    fn origin(&self) -> &str {
        self.inner.policy().origin()
    }

    /// Credentials from `headers` (any mapping or list of pairs) → key lookup →
    /// authentication → account scope → rules → lease. Never raises for a denied request:
    /// the `Decision` carries status, headers and body. When allowed, it holds a lease:
    /// release it when the request ends (`with decision:` / `async with decision:`).
    #[pyo3(signature = (headers, action, account = None, method = None, path = None, ip = None, attributes = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &self,
        py: Python<'_>,
        headers: &Bound<'_, PyAny>,
        action: &str,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Decision> {
        let pairs = crate::convert::headers(headers, &self.headers)?;
        let request = Self::request(action, account, method, path, ip, attributes)?;
        let now = timestamp(now, "now")?;
        let engine = &self.inner;
        let store = StoreLookup(&*self.store.store);
        let a = detached(py, || engine.authorize(pairs.iter().map(|(n, v)| (n, v)), &request, &store, now))?;
        let needs_rehash = a.authenticated.as_ref().is_some_and(|x| x.needs_rehash);
        Ok(Decision::full(a.decision, a.lease, a.key, needs_rehash))
    }

    /// Policy only, for a record the host already authenticated: account scope, forbid
    /// rules, allow rules. No authentication, no lease.
    #[pyo3(signature = (key, action, account = None, method = None, path = None, ip = None, attributes = None, user = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        py: Python<'_>,
        key: &KeyRecord,
        action: &str,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
        user: Option<&UserRecord>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Decision> {
        let request = Self::request(action, account, method, path, ip, attributes)?;
        let now = timestamp(now, "now")?;
        let user = user.map(|u| &u.inner);
        let d = detached(py, || self.inner.decide(&key.inner, user, &request, now))?;
        Ok(Decision::plain(d))
    }

    /// The 404 body for a resource that does not exist, byte-identical to the body of an
    /// out-of-scope account.
    fn not_found_body(&self) -> String {
        keycel::Decision::not_found_body(self.inner.messages())
    }

    /// Requests in flight (leases held) for a key, as the engine's admission counts them
    /// (across processes with SQLite admission).
    fn in_flight(&self, py: Python<'_>, key_id: &str) -> PyResult<usize> {
        let r = detached(py, || self.inner.admission().in_flight(key_id))?;
        r.map_err(|e| crate::admission::admission_error(&e))
    }

    /// Where budgets are counted: `"local"` (this process) or `"sqlite"` (every process
    /// sharing the store's file).
    #[getter]
    fn admission(&self) -> &'static str {
        self.inner.admission().name()
    }

    /// Empties the verified-secret cache (the next request per key runs argon2 again).
    fn clear_cache(&self) {
        self.inner.authenticator().clear_cache();
    }

    /// A keyring over this engine's store, guarded by its policy, issuing tokens in its
    /// format. `hash` defaults to the policy's preset.
    #[pyo3(signature = (*, hash = None, operator = "python", audit = None))]
    fn keyring(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        hash: Option<&Bound<'_, PyAny>>,
        operator: &str,
        audit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Keyring> {
        let me = slf.get();
        let hash = match hash.filter(|h| !h.is_none()) {
            Some(h) => hash_policy(Some(h))?,
            None => me.inner.authenticator().config().hash,
        };
        let guard: Arc<dyn ManagementGuard> = me.inner.clone();
        let format = me.inner.authenticator().config().format.clone();
        Keyring::build(py, Some(me.store.object.bind(py)), Some(guard), format, hash, operator, audit)
    }

    fn __repr__(&self) -> String {
        format!("Engine(policy={:?})", self.inner.policy().origin())
    }
}
