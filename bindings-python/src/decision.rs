//! `Decision` (a value, never an exception) and `Lease` (one request in flight), both usable
//! as sync and async context managers.

use crate::convert::datetime;
use crate::records::KeyRecord;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::{Arc, Mutex};

/// An awaitable that is already done: lets `__aenter__`/`__aexit__` work without an event
/// loop dependency (nothing here ever blocks).
#[pyclass(frozen, module = "keycel._keycel")]
#[derive(Debug)]
pub(crate) struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub(crate) fn new(value: Py<PyAny>) -> Self {
        Ready { value }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }
    #[pyo3(signature = (_value = None))]
    fn send(&self, py: Python<'_>, _value: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        self.__next__(py)
    }
}

/// The state shared by a decision and the `Lease` objects handed out for it. Kept out of
/// Python objects so the hot path (authorize, release) allocates no extra Python object.
#[derive(Debug)]
pub(crate) struct LeaseCell {
    id: u64,
    key_id: Arc<str>,
    expires_at: Option<keycel::Timestamp>,
    inner: Mutex<Option<keycel::admission::Lease>>,
}

impl LeaseCell {
    fn new(lease: keycel::admission::Lease) -> Self {
        LeaseCell {
            id: lease.id(),
            key_id: lease.key_id_shared(),
            expires_at: lease.expires_at(),
            inner: Mutex::new(Some(lease)),
        }
    }

    fn release(&self) -> bool {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.is_some_and(keycel::admission::Lease::release)
    }

    fn released(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }
}

/// One request in flight for a key (the per-key concurrency limit). Release it when the
/// request ends: `with`/`async with`, `release()`, or dropping the last reference (garbage
/// collection releases it, so a Python lease cannot be lost). A live lease never expires:
/// the slot is held as long as the request holds this object (`expires_at` is None).
#[pyclass(frozen, module = "keycel._keycel", name = "Lease")]
#[derive(Debug)]
pub(crate) struct Lease {
    cell: Arc<LeaseCell>,
}

impl Lease {
    fn do_release(&self) -> bool {
        self.cell.release()
    }
}

#[pymethods]
impl Lease {
    #[getter]
    fn id(&self) -> u64 {
        self.cell.id
    }
    #[getter]
    fn key_id(&self) -> &str {
        &self.cell.key_id
    }
    #[getter]
    fn expires_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.cell.expires_at.map(|t| datetime(py, t)).transpose()
    }
    #[getter]
    fn released(&self) -> bool {
        self.cell.released()
    }
    /// Releases the slot. Returns False when it was already released (or reclaimed after
    /// expiry). Idempotent.
    fn release(&self) -> bool {
        self.do_release()
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.do_release();
        false
    }
    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> Ready {
        Ready::new(slf.into_any().clone_ref(py))
    }
    #[pyo3(signature = (*_exc))]
    fn __aexit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<Ready> {
        self.do_release();
        Ok(Ready::new(false.into_pyobject(py)?.to_owned().into_any().unbind()))
    }
    fn __repr__(&self) -> String {
        format!(
            "Lease(id={}, key_id={:?}, released={})",
            self.cell.id,
            self.cell.key_id,
            if self.released() { "True" } else { "False" }
        )
    }
}

/// Allow or deny, with everything needed to answer the client (`status`, `headers`,
/// `body_json()`) and to audit (`reason`, `matched_rules`). When allowed it holds the
/// request's `lease`; use the decision itself as a (async) context manager to release it.
#[pyclass(frozen, module = "keycel._keycel", name = "Decision")]
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) inner: keycel::Decision,
    lease: Option<Arc<LeaseCell>>,
    key: Option<Arc<keycel::KeyRecord>>,
    /// The Python view of `key`, made on first access.
    key_py: Mutex<Option<Py<KeyRecord>>>,
    needs_rehash: bool,
}

impl Decision {
    /// A decision without lease or key (management refusals).
    pub(crate) fn plain(inner: keycel::Decision) -> Self {
        Decision { inner, lease: None, key: None, key_py: Mutex::new(None), needs_rehash: false }
    }

    pub(crate) fn full(
        inner: keycel::Decision,
        lease: Option<keycel::admission::Lease>,
        key: Option<Arc<keycel::KeyRecord>>,
        needs_rehash: bool,
    ) -> Self {
        let lease = lease.map(|l| Arc::new(LeaseCell::new(l)));
        Decision { inner, lease, key, key_py: Mutex::new(None), needs_rehash }
    }

    /// The authenticated key's record, if any.
    pub(crate) fn key_record(&self) -> Option<keycel::KeyRecord> {
        self.key.as_deref().cloned()
    }

    fn release_lease(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.release())
    }
}

#[pymethods]
impl Decision {
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.allowed
    }
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }
    #[getter]
    fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }
    /// Response headers to send (`WWW-Authenticate`, `Retry-After`).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.headers {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
    }
    #[getter]
    fn matched_rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.matched_rules.iter())
    }
    /// Internal reason for audit logs; never send it to the client.
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }
    /// The authenticated key's record (when authentication succeeded).
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<Option<Py<KeyRecord>>> {
        let Some(k) = &self.key else { return Ok(None) };
        let mut cached = self.key_py.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(obj) = cached.as_ref() {
            return Ok(Some(obj.clone_ref(py)));
        }
        let obj = Py::new(py, KeyRecord::new(keycel::KeyRecord::clone(k)))?;
        *cached = Some(obj.clone_ref(py));
        Ok(Some(obj))
    }
    /// The lease held for this request (only when allowed).
    #[getter]
    fn lease(&self) -> Option<Lease> {
        self.lease.as_ref().map(|cell| Lease { cell: Arc::clone(cell) })
    }
    /// The key's stored hash uses other argon2 parameters than configured.
    #[getter]
    fn needs_rehash(&self) -> bool {
        self.needs_rehash
    }
    /// The JSON body to send (byte-identical across Rust, Python and WASM).
    fn body_json(&self) -> String {
        self.inner.body_json()
    }
    /// A header value by case-insensitive name.
    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }
    /// Releases the lease, if any. Returns False when there was none to release.
    fn release(&self) -> bool {
        self.release_lease()
    }
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let v = serde_json::to_value(&self.inner).map_err(|e| crate::errors::internal(e.to_string()))?;
        crate::convert::from_json(py, &v)
    }
    fn __bool__(&self) -> bool {
        self.inner.allowed
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.release_lease();
        false
    }
    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> Ready {
        Ready::new(slf.into_any().clone_ref(py))
    }
    #[pyo3(signature = (*_exc))]
    fn __aexit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<Ready> {
        self.release_lease();
        Ok(Ready::new(false.into_pyobject(py)?.to_owned().into_any().unbind()))
    }
    fn __repr__(&self) -> String {
        format!(
            "Decision(allowed={}, status={}, code={:?}, key_id={:?}, matched_rules={:?})",
            if self.inner.allowed { "True" } else { "False" },
            self.inner.status,
            self.inner.code,
            self.inner.key_id,
            self.inner.matched_rules
        )
    }
}
