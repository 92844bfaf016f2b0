//! The policy engine for Python: load a policy, `authorize` requests from headers, decide
//! management actions (as a keyring guard). Policy evaluation and argon2 run with the GIL
//! released; the engine is shared freely across threads.

use crate::convert::{timestamp, to_json, HeaderFilter};
use crate::decision::{Decision, Ready};
use crate::errors::{detached, invalid_argument, raise};
use crate::keyring::{hash_policy, Keyring};
use crate::pending::{decision_of, Pending};
use crate::records::{KeyRecord, UserRecord};
use crate::rehash::Rehasher;
use crate::step::{Call, PreparedStep};
use crate::stores::{store_from, StoreHandle};
use keycel::engine::{EngineError, Lookup, Request, Step};
use keycel::keyring::ManagementGuard;
use keycel::policy::{PolicyError, PolicySet};
use keycel::store::{Store, StoreError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
pub(crate) struct StoreLookup<'a>(pub(crate) &'a dyn Store);

impl Lookup for StoreLookup<'_> {
    fn key(&self, id: &str) -> Result<Option<Arc<keycel::KeyRecord>>, StoreError> {
        self.0.get_key_shared(id)
    }
    fn user(&self, id: &str) -> Result<Option<Arc<keycel::UserRecord>>, StoreError> {
        self.0.get_user_shared(id)
    }
}

/// Why `Engine.usage` has no answer.
enum Usage {
    NotFound,
    Store(StoreError),
    Admission(keycel::admission::AdmissionError),
}

/// A compiled policy with authentication, the verified-secret cache and per-key leases,
/// over a store. Build it once per process and share it.
#[pyclass(frozen, module = "keycel._keycel", name = "Engine")]
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) inner: Arc<keycel::engine::Engine>,
    store: StoreHandle,
    headers: HeaderFilter,
    /// The `keycel.offload.Offload` pools of `authorize_async`, made on first use.
    offload: Mutex<Option<Py<PyAny>>>,
    /// Background hash upgrades (`rehash_on_use`), joined by `wait_for_rehashes()`.
    rehasher: Arc<Rehasher>,
}

impl Engine {
    fn build(
        py: Python<'_>,
        policy: Result<PolicySet, PolicyError>,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
        rehash_on_use: bool,
    ) -> PyResult<Self> {
        let policy = policy.map_err(|e| policy_error(&e))?;
        let origin = policy.origin().to_string();
        let engine =
            detached(py, move || keycel::engine::Engine::new(policy))?.map_err(|e| engine_error(&e, &origin))?;
        let engine = engine.rehash_on_use(rehash_on_use);
        let c = &engine.authenticator().config().credentials;
        let headers = HeaderFilter::new(["authorization", c.client_id_header.as_str(), c.secret_header.as_str()]);
        let store = store_from(py, store)?;
        let engine = match crate::admission::choose(py, admission, &store, engine.limiter().config())? {
            Some(shared) => engine.with_admission(shared),
            None => engine,
        };
        let rehasher = Rehasher::new(Arc::clone(&store.store));
        Ok(Engine { inner: Arc::new(engine), store, headers, offload: Mutex::new(None), rehasher })
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        action: &str,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
        client_ip: Option<String>,
        cost: Option<u32>,
    ) -> PyResult<Request> {
        let attributes = match attributes.filter(|a| !a.is_none()) {
            None => BTreeMap::new(),
            Some(a) => match to_json(a, "attributes")? {
                serde_json::Value::Object(m) => m.into_iter().collect(),
                _ => return Err(invalid_argument("attributes", "attributes must be a mapping")),
            },
        };
        Ok(Request { action: action.to_string(), account, method, path, ip, client_ip, attributes, cost })
    }

    /// One authorization call, owned (headers filtered and copied, request built), so it can
    /// run on a worker thread.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        headers: &Bound<'_, PyAny>,
        action: &str,
        account: Option<String>,
        method: Option<String>,
        path: Option<String>,
        ip: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        client_ip: Option<String>,
        cost: Option<u32>,
    ) -> PyResult<Call> {
        let headers = crate::convert::headers(headers, &self.headers)?;
        let request = Self::request(action, account, method, path, ip, attributes, client_ip, cost)?;
        let now = timestamp(now, "now")?;
        Ok(Call {
            engine: Arc::clone(&self.inner),
            store: Arc::clone(&self.store.store),
            rehasher: Arc::clone(&self.rehasher),
            headers,
            request,
            now,
        })
    }

    /// The engine's offload pools, made on first use. Python runs with the lock released (it
    /// may switch threads, and a thread waiting on this lock would hold the GIL): two first
    /// calls at once may both build pools, and the loser's are shut down unused.
    fn pools<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(p) = self.offload.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(p.bind(py).clone());
        }
        let built = self.new_pools(py, None, None, None, None)?;
        let winner = {
            let mut slot = self.offload.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(existing) => Some(existing.clone_ref(py)),
                None => {
                    *slot = Some(built.clone().unbind());
                    None
                }
            }
        };
        match winner {
            Some(existing) => {
                built.call_method0("shutdown")?;
                Ok(existing.into_bound(py))
            }
            None => Ok(built),
        }
    }

    /// `keycel.offload.Offload` with one argon2 thread per gate slot by default.
    fn new_pools<'py>(
        &self,
        py: Python<'py>,
        hash_threads: Option<usize>,
        hash_queue: Option<usize>,
        io_threads: Option<usize>,
        io_queue: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slots = self.inner.authenticator().config().gate.max_concurrent.max(1);
        let hash_threads = hash_threads.unwrap_or(slots);
        let args = (
            hash_threads,
            hash_queue.unwrap_or(DEFAULT_QUEUE_PER_THREAD.saturating_mul(hash_threads)),
            io_threads.unwrap_or(DEFAULT_IO_THREADS),
            io_queue.unwrap_or(DEFAULT_IO_QUEUE),
        );
        py.import("keycel.offload")?.getattr("Offload")?.call1(args)
    }
}

/// Requests waiting per argon2 thread before `authorize_async` sheds with a 503: a short
/// queue keeps an admitted first use within a few hash times.
const DEFAULT_QUEUE_PER_THREAD: usize = 2;
/// Threads running first steps against a store that does I/O.
const DEFAULT_IO_THREADS: usize = 4;
/// First steps waiting for the store before `authorize_async` sheds with a 503.
const DEFAULT_IO_QUEUE: usize = 256;

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

/// The header names of the guard engine (so `IssuedKey.reveal()` shows the ones it reads).
pub(crate) fn credentials_from(guard: Option<&Bound<'_, PyAny>>) -> Option<keycel::CredentialConfig> {
    guard.and_then(|g| g.cast::<Engine>().ok()).map(|e| e.get().inner.authenticator().config().credentials.clone())
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
    /// `rehash_on_use`: upgrade a hash made with outdated argon2 parameters through the store
    /// after its key's first successful use, on a background thread (never failing the request).
    #[new]
    #[pyo3(signature = (policy = None, *, store = None, admission = None, rehash_on_use = false))]
    fn py_new(
        py: Python<'_>,
        policy: Option<&Bound<'_, PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
        rehash_on_use: bool,
    ) -> PyResult<Self> {
        match policy.filter(|p| !p.is_none()) {
            None => Self::build(py, PolicySet::default_policy(), store, admission, rehash_on_use),
            Some(p) if p.hasattr("items")? => Self::from_dict(py, p, "<dict>", store, admission, rehash_on_use),
            Some(p) => {
                let path: std::path::PathBuf =
                    p.extract().map_err(|_| invalid_argument("policy", "policy must be a path, a dict or None"))?;
                Self::from_file(py, path, store, admission, rehash_on_use)
            }
        }
    }

    /// Loads a TOML (or `.json`) policy file.
    #[staticmethod]
    #[pyo3(signature = (path, *, store = None, admission = None, rehash_on_use = false))]
    fn from_file(
        py: Python<'_>,
        path: std::path::PathBuf,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
        rehash_on_use: bool,
    ) -> PyResult<Self> {
        let policy = detached(py, move || PolicySet::load(&path))?;
        Self::build(py, policy, store, admission, rehash_on_use)
    }

    /// Parses a TOML policy; `origin` names it in errors.
    #[staticmethod]
    #[pyo3(signature = (source, *, origin = "<string>", store = None, admission = None, rehash_on_use = false))]
    fn from_toml(
        py: Python<'_>,
        source: &str,
        origin: &str,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
        rehash_on_use: bool,
    ) -> PyResult<Self> {
        let policy = detached(py, || PolicySet::from_toml_str(source, origin))?;
        Self::build(py, policy, store, admission, rehash_on_use)
    }

    /// Builds from a dict with the same structure as the TOML file.
    #[staticmethod]
    #[pyo3(signature = (policy, origin = "<dict>", store = None, admission = None, *, rehash_on_use = false))]
    fn from_dict(
        py: Python<'_>,
        policy: &Bound<'_, PyAny>,
        origin: &str,
        store: Option<&Bound<'_, PyAny>>,
        admission: Option<&Bound<'_, PyAny>>,
        rehash_on_use: bool,
    ) -> PyResult<Self> {
        let value = to_json(policy, "policy")?;
        let policy = detached(py, || PolicySet::from_json_value(value, origin))?;
        Self::build(py, policy, store, admission, rehash_on_use)
    }

    /// True when the engine upgrades outdated hashes on use.
    #[getter]
    fn rehash_on_use(&self) -> bool {
        self.inner.rehashes_on_use()
    }

    /// Waits for the background hash upgrades started so far (tests, graceful shutdown);
    /// returns how many were waited for.
    fn wait_for_rehashes(&self, py: Python<'_>) -> PyResult<usize> {
        let jobs = self.rehasher.take();
        let n = jobs.len();
        detached(py, move || {
            for j in jobs {
                let _ = j.join();
            }
        })?;
        Ok(n)
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
    /// `client_ip`: the socket peer failed authentications are charged to (default `ip`).
    #[pyo3(signature = (headers, action, account = None, method = None, path = None, ip = None, attributes = None, now = None, client_ip = None, cost = None))]
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
        client_ip: Option<String>,
        cost: Option<u32>,
    ) -> PyResult<Decision> {
        let pairs = crate::convert::headers(headers, &self.headers)?;
        let request = Self::request(action, account, method, path, ip, attributes, client_ip, cost)?;
        let now = timestamp(now, "now")?;
        let engine = &self.inner;
        let store = StoreLookup(&*self.store.store);
        let a = detached(py, || engine.authorize(pairs.iter().map(|(n, v)| (n, v)), &request, &store, now))?;
        Ok(decision_of(a, &self.rehasher, now))
    }

    /// The cheap first half of `authorize`: credentials, lookup, verified-secret cache and
    /// failure budgets. Returns a `Decision` when that settles it (a cached key, a cheap
    /// failure, 429 `too_many_failures`), else a `Pending` whose `finish()` runs argon2 (call
    /// it off the event loop). Never runs argon2 itself.
    #[pyo3(signature = (headers, action, account = None, method = None, path = None, ip = None, attributes = None, now = None, client_ip = None, cost = None))]
    #[allow(clippy::too_many_arguments)]
    fn authorize_step(
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
        client_ip: Option<String>,
        cost: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let pairs = crate::convert::headers(headers, &self.headers)?;
        let request = Self::request(action, account, method, path, ip, attributes, client_ip, cost)?;
        let now = timestamp(now, "now")?;
        let engine = &self.inner;
        let store = StoreLookup(&*self.store.store);
        let step = detached(py, || engine.authorize_step(pairs.iter().map(|(n, v)| (n, v)), &request, &store, now))?;
        match step {
            Step::Decided(a) => Ok(Py::new(py, decision_of(a, &self.rehasher, now))?.into_any()),
            Step::NeedsHash(p) => {
                Ok(Py::new(py, Pending::new(self.inner.clone(), Arc::clone(&self.rehasher), p))?.into_any())
            }
        }
    }

    /// Core's failure-budget screen, for a host to run before anything else (keycel's ASGI
    /// guard runs it before routing): the 429 `too_many_failures` Decision that authorizing
    /// this request would answer because its client address (`client_ip`) or its client id
    /// has no failure left and the verified-secret cache does not know the secret presented;
    /// `None` otherwise (authorize as usual). No lookup, no argon2, no charge: microseconds,
    /// fine on the event loop. Cached keys are never screened out.
    #[pyo3(signature = (headers, client_ip = None, now = None))]
    fn screen(
        &self,
        headers: &Bound<'_, PyAny>,
        client_ip: Option<&str>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Decision>> {
        let pairs = crate::convert::headers(headers, &self.headers)?;
        let now = timestamp(now, "now")?;
        let d = self.inner.screen(pairs.iter().map(|(n, v)| (n, v)), client_ip, now);
        Ok(d.map(Decision::plain))
    }

    /// `authorize` for event loops: awaits a `Decision`, and never runs argon2 or store I/O on
    /// the loop. What core decides in its first step (a cached secret, a malformed token, a
    /// client over its failure budget) is answered at once when the store is in memory; a
    /// request that needs argon2 runs on a bounded thread pool, and when that pool's queue is
    /// full the answer is core's immediate 503 with `Retry-After`. With a store that does I/O
    /// (SQLite, a Python store) the first step runs on a second bounded pool. Sizes:
    /// `configure_offload`.
    #[pyo3(signature = (headers, action, account = None, method = None, path = None, ip = None, attributes = None, now = None, client_ip = None, cost = None))]
    #[allow(clippy::too_many_arguments)]
    fn authorize_async(
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
        client_ip: Option<String>,
        cost: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let call = self.call(headers, action, account, method, path, ip, attributes, now, client_ip, cost)?;
        let pools = self.pools(py)?;
        let now = now.map_or_else(|| py.None(), |n| n.clone().unbind());
        // The first step runs on the loop only when nothing in it does I/O: a memory store and
        // process-local admission (a shared admission's round trip and its failure budgets are
        // I/O, so they go to the pool like a store's lookup).
        if !self.store.in_memory || self.inner.admission().name() != "local" {
            // A client over its failure budget is answered here, not after queueing for the store.
            // So is anything that would need argon2 while its pool is full (charged like the
            // step, without queueing for the lookup first).
            let early = match call.screen() {
                Some(d) => Some(d),
                None if pools.call_method0("hash_full")?.is_truthy()? => call.shed(),
                None => None,
            };
            if let Some(d) = early {
                return Ok(Py::new(py, Ready::new(Py::new(py, d)?.into_any()))?.into_any());
            }
            let prepared = Py::new(py, PreparedStep::new(call))?;
            return Ok(pools.call_method1("step_then_finish", (prepared, now))?.unbind());
        }
        let step = call.run(py)?;
        if step.bind(py).is_instance_of::<Decision>() {
            return Ok(Py::new(py, Ready::new(step))?.into_any());
        }
        Ok(pools.call_method1("finish", (step, now))?.unbind())
    }

    /// Sizes the pools of `authorize_async`: `hash_threads` (default: the argon2 gate's
    /// slots) run verifications and `hash_queue` (default: 2 per thread) more may wait;
    /// `io_threads` (default 4) run first steps against a store doing I/O and `io_queue`
    /// (default 256) more may wait. Past a queue the answer is an immediate 503. Returns the
    /// new `keycel.offload.Offload`; the previous pools finish what they hold.
    #[pyo3(signature = (*, hash_threads = None, hash_queue = None, io_threads = None, io_queue = None))]
    fn configure_offload(
        &self,
        py: Python<'_>,
        hash_threads: Option<usize>,
        hash_queue: Option<usize>,
        io_threads: Option<usize>,
        io_queue: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let pools = self.new_pools(py, hash_threads, hash_queue, io_threads, io_queue)?.unbind();
        let old = self.offload.lock().unwrap_or_else(|p| p.into_inner()).replace(pools.clone_ref(py));
        if let Some(old) = old {
            old.bind(py).call_method0("shutdown")?;
        }
        Ok(pools)
    }

    /// The `keycel.offload.Offload` pools `authorize_async` uses.
    #[getter]
    fn offload(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.pools(py)?.unbind())
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
        let request = Self::request(action, account, method, path, ip, attributes, None, None)?;
        let now = timestamp(now, "now")?;
        let user = user.map(|u| &u.inner);
        let d = detached(py, || self.inner.decide(&key.inner, user, &request, now))?;
        Ok(Decision::plain(d))
    }

    /// What `key` can actually do now (core's `Engine::explain`): its effective scopes (role
    /// expansion, explicit scopes, a personal token's user caps), accounts, deadline
    /// (`expires_at`, leeway included), `max_concurrent` and whether it is usable, as a dict.
    /// A personal token's user is read from the engine's store unless given.
    #[pyo3(signature = (key, user = None, now = None))]
    fn explain(
        &self,
        py: Python<'_>,
        key: &KeyRecord,
        user: Option<&UserRecord>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let now = timestamp(now, "now")?;
        let owner = match (user, key.inner.kind.user()) {
            (Some(u), _) => Some(u.inner.clone()),
            (None, Some(id)) => {
                let (store, id) = (self.store.store.clone(), id.to_string());
                detached(py, move || store.get_user(&id))?.map_err(|e| crate::errors::store_error(&e))?
            }
            (None, None) => None,
        };
        let a = detached(py, || self.inner.explain(&key.inner, owner.as_ref(), now))?
            .map_err(|e| crate::errors::record_error(&e))?;
        let v = serde_json::to_value(&a).map_err(|e| crate::errors::internal(e.to_string()))?;
        crate::convert::from_json(py, &v)
    }

    /// The roles the policy defines and the scope patterns each grants: `{role: [scopes]}`.
    fn roles(&self) -> BTreeMap<String, Vec<String>> {
        self.inner.roles().into_iter().collect()
    }

    /// The policy's scope catalogue: `{scope: description}`.
    fn scopes(&self) -> BTreeMap<String, String> {
        self.inner.policy().document().scopes.clone()
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

    /// Credits the key has left now (or at `now`), as the engine's admission counts them
    /// (across processes with SQLite or Redis admission); `None` for an unmetered key.
    /// Raises `NotFoundError` for an unknown key.
    #[pyo3(signature = (key_id, *, now = None))]
    fn usage(&self, py: Python<'_>, key_id: &str, now: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
        let now = timestamp(now, "now")?;
        let (engine, store) = (&self.inner, &self.store.store);
        let r = detached(py, || match store.get_key(key_id) {
            Ok(Some(record)) => engine.credits_left(&record, now).map_err(Usage::Admission),
            Ok(None) => Err(Usage::NotFound),
            Err(e) => Err(Usage::Store(e)),
        })?;
        r.map_err(|e| match e {
            Usage::Admission(e) => crate::admission::admission_error(&e),
            Usage::Store(e) => crate::errors::store_error(&e),
            Usage::NotFound => crate::errors::not_found(key_id),
        })
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
        let credentials = me.inner.authenticator().config().credentials.clone();
        Keyring::build(py, Some(me.store.object.bind(py)), Some(guard), format, hash, credentials, operator, audit)
    }

    fn __repr__(&self) -> String {
        format!("Engine(policy={:?})", self.inner.policy().origin())
    }
}
