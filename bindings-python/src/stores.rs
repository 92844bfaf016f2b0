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

/// A key store in one SQLite file (WAL mode, atomic changes, safe across processes).
#[pyclass(frozen, module = "keycel._keycel", name = "SqliteStore")]
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pub(crate) inner: Arc<keycel::sqlite::SqliteStore>,
    path: Option<String>,
}

fn open_error(e: &keycel::sqlite::OpenError) -> PyErr {
    store_error(&StoreError::Backend(e.to_string()))
}

impl SqliteStore {
    /// The database file, when not in memory (SQLite admission shares it).
    pub(crate) fn file(&self) -> Option<std::path::PathBuf> {
        self.inner.path().map(std::path::Path::to_path_buf)
    }
}

#[pymethods]
impl SqliteStore {
    /// Opens the store at `path`; with `create=True` (default) a missing file is created.
    #[new]
    #[pyo3(signature = (path, *, create = true))]
    fn py_new(py: Python<'_>, path: std::path::PathBuf, create: bool) -> PyResult<Self> {
        let shown = path.display().to_string();
        let opened = detached(py, move || {
            if create {
                keycel::sqlite::SqliteStore::create(&path)
            } else {
                keycel::sqlite::SqliteStore::open(&path)
            }
        })?;
        let inner = opened.map_err(|e| open_error(&e))?;
        Ok(SqliteStore { inner: Arc::new(inner), path: Some(shown) })
    }

    /// A private in-memory SQLite database (tests).
    #[staticmethod]
    fn in_memory() -> PyResult<Self> {
        let inner = keycel::sqlite::SqliteStore::in_memory().map_err(|e| open_error(&e))?;
        Ok(SqliteStore { inner: Arc::new(inner), path: None })
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
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle").field("object", &self.object).finish_non_exhaustive()
    }
}

/// `None` (a new in-memory store), `MemoryStore`, `SqliteStore`, or any object implementing
/// the protocol.
pub(crate) fn store_from(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<StoreHandle> {
    let obj = match obj {
        Some(o) if !o.is_none() => o.clone(),
        _ => Bound::new(py, MemoryStore::default())?.into_any(),
    };
    let store: Arc<dyn Store> = if let Ok(m) = obj.cast::<MemoryStore>() {
        m.get().inner.clone()
    } else if let Ok(s) = obj.cast::<SqliteStore>() {
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
        Arc::new(SimpleAdapter(PyStore { obj: obj.clone().unbind() }))
    };
    Ok(StoreHandle { store, object: obj.unbind() })
}
