//! Stores: the in-memory store, the SQLite store, and any Python object implementing the
//! small document protocol (`get` / `put` / `delete` / `list`), adapted by core's
//! `SimpleAdapter` so version checks and validation stay in core.

use crate::errors::{detached, store_error};
use keycel::store::{Collection, SimpleAdapter, SimpleStore, Store, StoreError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::Arc;

/// Thread-safe in-memory store (tests, demos, single-process services).
#[pyclass(frozen, module = "keycel._keycel", name = "MemoryStore")]
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    pub(crate) inner: Arc<keycel::store::MemoryStore>,
}

#[pymethods]
impl MemoryStore {
    #[new]
    fn py_new() -> Self {
        Self::default()
    }
    fn __repr__(&self) -> &'static str {
        "MemoryStore()"
    }

    /// Adds a key record as is (`StoreError(kind="already_exists")` if the id is or was used).
    fn insert_key(&self, py: Python<'_>, record: &crate::records::KeyRecord) -> PyResult<()> {
        raw::insert_key(py, self.inner.clone(), record)
    }
    /// Adds or replaces a user record as is.
    fn put_user(&self, py: Python<'_>, user: &crate::records::UserRecord) -> PyResult<()> {
        raw::put_user(py, self.inner.clone(), user)
    }
    /// A key record by client id, or None.
    fn get_key(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::KeyRecord>> {
        raw::get_key(py, self.inner.clone(), id)
    }
    /// A user record by id, or None.
    fn get_user(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::UserRecord>> {
        raw::get_user(py, self.inner.clone(), id)
    }
}

/// A key store in one SQLite file (WAL mode, atomic changes, safe across processes). With
/// `cache=True` (default) `authorize` reads records from memory and drops them when any other
/// connection or process commits: every lookup compares the file's wal-index header (`-shm`,
/// a lock-free read) and asks `PRAGMA data_version` only when it moved.
#[pyclass(frozen, module = "keycel._keycel", name = "SqliteStore")]
pub(crate) struct SqliteStore {
    pub(crate) inner: Arc<dyn Store>,
    path: Option<String>,
    /// The database file (SQLite admission shares it); `None` in memory.
    file: Option<std::path::PathBuf>,
    cached: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("cached", &self.cached).finish_non_exhaustive()
    }
}

fn sqlite_handle(store: keycel::sqlite::SqliteStore, cache: bool) -> PyResult<Arc<dyn Store>> {
    let store = Arc::new(store);
    if !cache {
        return Ok(store);
    }
    Ok(Arc::new(keycel::sqlite::cached(store).map_err(|e| store_error(&e))?))
}

fn open_error(e: &keycel::sqlite::OpenError) -> PyErr {
    store_error(&StoreError::Backend(e.to_string()))
}

impl SqliteStore {
    /// The database file, when not in memory (SQLite admission shares it).
    pub(crate) fn file(&self) -> Option<std::path::PathBuf> {
        self.file.clone()
    }
}

#[pymethods]
impl SqliteStore {
    /// Opens the store at `path`; with `create=True` (default) a missing file is created.
    #[new]
    #[pyo3(signature = (path, *, create = true, cache = true))]
    fn py_new(py: Python<'_>, path: std::path::PathBuf, create: bool, cache: bool) -> PyResult<Self> {
        let shown = path.display().to_string();
        let opened = detached(py, move || {
            if create {
                keycel::sqlite::SqliteStore::create(&path)
            } else {
                keycel::sqlite::SqliteStore::open(&path)
            }
        })?;
        let inner = opened.map_err(|e| open_error(&e))?;
        let file = inner.path().map(std::path::Path::to_path_buf);
        Ok(SqliteStore { inner: sqlite_handle(inner, cache)?, path: Some(shown), file, cached: cache })
    }

    /// A private in-memory SQLite database (tests).
    #[staticmethod]
    #[pyo3(signature = (*, cache = true))]
    fn in_memory(cache: bool) -> PyResult<Self> {
        let inner = keycel::sqlite::SqliteStore::in_memory().map_err(|e| open_error(&e))?;
        Ok(SqliteStore { inner: sqlite_handle(inner, cache)?, path: None, file: None, cached: cache })
    }

    /// True when `authorize` lookups are served from the record cache.
    #[getter]
    fn cached(&self) -> bool {
        self.cached
    }

    #[getter]
    fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Adds a key record as is (`StoreError(kind="already_exists")` if the id is or was used).
    fn insert_key(&self, py: Python<'_>, record: &crate::records::KeyRecord) -> PyResult<()> {
        raw::insert_key(py, self.inner.clone(), record)
    }
    /// Adds or replaces a user record as is.
    fn put_user(&self, py: Python<'_>, user: &crate::records::UserRecord) -> PyResult<()> {
        raw::put_user(py, self.inner.clone(), user)
    }
    /// A key record by client id, or None.
    fn get_key(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::KeyRecord>> {
        raw::get_key(py, self.inner.clone(), id)
    }
    /// A user record by id, or None.
    fn get_user(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::UserRecord>> {
        raw::get_user(py, self.inner.clone(), id)
    }

    fn __repr__(&self) -> String {
        format!("SqliteStore({:?})", self.path.as_deref().unwrap_or(":memory:"))
    }
}

/// A key store in a PostgreSQL database (tables `keycel_*`, created or migrated on connect).
/// With `cache=True` (default) `authorize` reads records from memory, kept current by
/// `LISTEN/NOTIFY`: a change committed by any process evicts the record here within
/// milliseconds; if this process has not heard from the database for `bound_ms`, lookups read
/// through (and fail closed, 503, while the database is down).
#[pyclass(frozen, module = "keycel._keycel", name = "PostgresStore")]
pub(crate) struct PostgresStore {
    pub(crate) inner: Arc<dyn Store>,
    live: Option<Arc<keycel_postgres::CachedPostgres>>,
    database: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.database).finish_non_exhaustive()
    }
}

#[pymethods]
impl PostgresStore {
    /// Connects to `dsn` (`postgresql://user[:password]@host[:port]/db`).
    #[new]
    #[pyo3(signature = (dsn, *, cache = true, heartbeat_ms = 100, bound_ms = 500))]
    fn py_new(py: Python<'_>, dsn: String, cache: bool, heartbeat_ms: u64, bound_ms: u64) -> PyResult<Self> {
        if heartbeat_ms == 0 || bound_ms <= heartbeat_ms {
            return Err(crate::errors::invalid_argument(
                "bound_ms",
                "heartbeat_ms must be positive and bound_ms larger than heartbeat_ms",
            ));
        }
        let opened = detached(py, move || keycel_postgres::PostgresStore::connect(&dsn))?;
        let store = Arc::new(opened.map_err(|e| store_error(&StoreError::from(e)))?);
        let database = store.database().to_string();
        if !cache {
            return Ok(PostgresStore { inner: store, live: None, database });
        }
        let settings = keycel_postgres::CacheSettings {
            heartbeat: std::time::Duration::from_millis(heartbeat_ms),
            bound: std::time::Duration::from_millis(bound_ms),
            ..keycel_postgres::CacheSettings::default()
        };
        let cached = Arc::new(keycel_postgres::CachedPostgres::new(store, settings).map_err(|e| store_error(&e))?);
        // Start-up: give the listener a moment so the first requests already hit the cache.
        let c = cached.clone();
        detached(py, move || c.wait_live(std::time::Duration::from_secs(2)))?;
        Ok(PostgresStore { inner: cached.clone(), live: Some(cached), database })
    }

    /// The database (without password).
    #[getter]
    fn database(&self) -> &str {
        &self.database
    }

    /// True while the record cache is trusted (always False without a cache).
    #[getter]
    fn cache_live(&self) -> bool {
        self.live.as_ref().is_some_and(|c| c.is_live())
    }

    /// Waits until the record cache is live; False on timeout (or without a cache).
    fn wait_live(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let Some(c) = self.live.clone() else { return Ok(false) };
        let t = std::time::Duration::try_from_secs_f64(timeout.max(0.0))
            .map_err(|e| crate::errors::invalid_argument("timeout", e.to_string()))?;
        detached(py, move || c.wait_live(t))
    }

    /// Adds a key record as is (`StoreError(kind="already_exists")` if the id is or was used).
    fn insert_key(&self, py: Python<'_>, record: &crate::records::KeyRecord) -> PyResult<()> {
        raw::insert_key(py, self.inner.clone(), record)
    }
    /// Adds or replaces a user record as is.
    fn put_user(&self, py: Python<'_>, user: &crate::records::UserRecord) -> PyResult<()> {
        raw::put_user(py, self.inner.clone(), user)
    }
    /// A key record by client id, or None.
    fn get_key(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::KeyRecord>> {
        raw::get_key(py, self.inner.clone(), id)
    }
    /// A user record by id, or None.
    fn get_user(&self, py: Python<'_>, id: &str) -> PyResult<Option<crate::records::UserRecord>> {
        raw::get_user(py, self.inner.clone(), id)
    }

    fn __repr__(&self) -> String {
        format!("PostgresStore({:?})", self.database)
    }
}

/// Runs core's store conformance suite: `factory()` must return a fresh, empty store
/// (`MemoryStore`, `SqliteStore`, `PostgresStore` or a protocol object) per case. Returns the
/// failures, `"case: problem"` (empty: the store conforms). For host-store authors and tests.
#[pyfunction]
pub(crate) fn _store_conformance(py: Python<'_>, factory: Py<PyAny>) -> PyResult<Vec<String>> {
    detached(py, move || {
        keycel::store::conformance::run(&|| {
            Python::attach(|py| {
                let obj = factory.bind(py).call0().map_err(|e| format!("factory raised: {e}"))?;
                let handle = store_from(py, Some(&obj)).map_err(|e| format!("not a store: {e}"))?;
                Ok(Box::new(handle.store) as Box<dyn Store>)
            })
        })
    })
}

/// Direct record access on a built-in store (import/export, fixtures). Bypasses the
/// keyring's guard and audit; records are still validated by core.
mod raw {
    use super::*;
    use crate::records::{KeyRecord, UserRecord};

    pub(super) fn insert_key(py: Python<'_>, s: Arc<dyn Store>, record: &KeyRecord) -> PyResult<()> {
        let r = record.inner.clone();
        detached(py, move || s.insert_key(&r))?.map_err(|e| store_error(&e))
    }
    pub(super) fn put_user(py: Python<'_>, s: Arc<dyn Store>, user: &UserRecord) -> PyResult<()> {
        let u = user.inner.clone();
        detached(py, move || s.put_user(&u))?.map_err(|e| store_error(&e))
    }
    pub(super) fn get_key(py: Python<'_>, s: Arc<dyn Store>, id: &str) -> PyResult<Option<KeyRecord>> {
        let id = id.to_string();
        let r = detached(py, move || s.get_key(&id))?.map_err(|e| store_error(&e))?;
        Ok(r.map(KeyRecord::new))
    }
    pub(super) fn get_user(py: Python<'_>, s: Arc<dyn Store>, id: &str) -> PyResult<Option<UserRecord>> {
        let id = id.to_string();
        let r = detached(py, move || s.get_user(&id))?.map_err(|e| store_error(&e))?;
        Ok(r.map(|inner| UserRecord { inner }))
    }
}

/// A Python object with `get(collection, id) -> str | dict | None`, `put(collection, id,
/// document: str) -> None`, `delete(collection, id) -> bool` and `list(collection) ->
/// Iterable[str | dict]`. Collections are `"keys"` and `"users"`; documents are the records'
/// stable JSON. Exceptions it raises become `StoreError(kind="backend")`.
#[derive(Debug)]
struct PyStore {
    obj: Py<PyAny>,
}

fn backend(py: Python<'_>, e: &PyErr) -> StoreError {
    let ty = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    StoreError::Backend(format!("python store raised {ty}: {}", e.value(py)))
}

fn document(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    // A dict (e.g. a JSON column): serialize it the standard way.
    let json = v.py().import("json")?;
    json.call_method1("dumps", (v,))?.extract()
}

impl SimpleStore for PyStore {
    fn get(&self, collection: Collection, id: &str) -> Result<Option<String>, StoreError> {
        Python::attach(|py| {
            let r = self.obj.bind(py).call_method1("get", (collection.as_str(), id)).map_err(|e| backend(py, &e))?;
            if r.is_none() {
                return Ok(None);
            }
            document(&r).map(Some).map_err(|e| backend(py, &e))
        })
    }

    fn put(&self, collection: Collection, id: &str, json: &str) -> Result<(), StoreError> {
        Python::attach(|py| {
            self.obj.bind(py).call_method1("put", (collection.as_str(), id, json)).map_err(|e| backend(py, &e))?;
            Ok(())
        })
    }

    fn delete(&self, collection: Collection, id: &str) -> Result<bool, StoreError> {
        Python::attach(|py| {
            let r = self.obj.bind(py).call_method1("delete", (collection.as_str(), id)).map_err(|e| backend(py, &e))?;
            r.is_truthy().map_err(|e| backend(py, &e))
        })
    }

    fn list(&self, collection: Collection) -> Result<Vec<String>, StoreError> {
        Python::attach(|py| {
            let r = self.obj.bind(py).call_method1("list", (collection.as_str(),)).map_err(|e| backend(py, &e))?;
            let mut out = Vec::new();
            for item in r.try_iter().map_err(|e| backend(py, &e))? {
                let item = item.map_err(|e| backend(py, &e))?;
                out.push(document(&item).map_err(|e| backend(py, &e))?);
            }
            Ok(out)
        })
    }
}

/// The store behind a keyring or engine, plus the Python object it came from.
pub(crate) struct StoreHandle {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) object: Py<PyAny>,
    /// Lookups touch only memory (`MemoryStore`): `authorize_async` may run them on the loop.
    pub(crate) in_memory: bool,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").field("object", &self.object).finish_non_exhaustive()
    }
}

/// `None` (a new in-memory store), `MemoryStore`, `SqliteStore`, `PostgresStore`, or any object implementing
/// the protocol.
pub(crate) fn store_from(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<StoreHandle> {
    let obj = match obj {
        Some(o) if !o.is_none() => o.clone(),
        _ => Bound::new(py, MemoryStore::default())?.into_any(),
    };
    let in_memory = obj.cast::<MemoryStore>().is_ok();
    let store: Arc<dyn Store> = if let Ok(m) = obj.cast::<MemoryStore>() {
        m.get().inner.clone()
    } else if let Ok(s) = obj.cast::<SqliteStore>() {
        s.get().inner.clone()
    } else if let Ok(s) = obj.cast::<PostgresStore>() {
        s.get().inner.clone()
    } else {
        for m in ["get", "put", "delete", "list"] {
            if !obj.getattr(m).map(|a| a.is_callable()).unwrap_or(false) {
                return Err(crate::errors::invalid_argument(
                    "store",
                    format!("a store needs callable get/put/delete/list methods; {m} is missing"),
                ));
            }
        }
        Arc::new(SimpleAdapter::new(PyStore { obj: obj.clone().unbind() }))
    };
    Ok(StoreHandle { store, object: obj.unbind(), in_memory })
}
