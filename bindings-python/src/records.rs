//! Frozen Python views of core records, and the once-readable issued key.

use crate::convert::{account_scope, account_scope_py, datetime, from_json, opt_datetime, str_set, to_json};
use crate::errors::{credential, no_panic, record_error};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet};
use std::sync::Mutex;

/// A stored API key (no secret, only its argon2id hash). Immutable; every change through the
/// keyring returns a new record with a higher `version`.
#[pyclass(frozen, module = "keycel._keycel", name = "KeyRecord")]
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    pub(crate) inner: keycel::KeyRecord,
}

impl KeyRecord {
    pub(crate) fn new(inner: keycel::KeyRecord) -> Self {
        KeyRecord { inner }
    }
}

#[pymethods]
impl KeyRecord {
    /// Parses the storage form (the one `to_storage_dict()` gives, with the hash).
    #[staticmethod]
    fn from_storage_dict(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let v = to_json(data, "data")?;
        no_panic(|| keycel::KeyRecord::from_storage_value(v))?.map(KeyRecord::new).map_err(|e| record_error(&e))
    }

    /// Parses the storage form as JSON text (the one `to_storage_json()` gives).
    #[staticmethod]
    fn from_storage_json(data: &str) -> PyResult<Self> {
        no_panic(|| keycel::KeyRecord::from_storage_json(data))?.map(KeyRecord::new).map_err(|e| record_error(&e))
    }

    /// Same as `from_storage_dict` (a record can only be rebuilt from its storage form).
    #[staticmethod]
    fn from_dict(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::from_storage_dict(data)
    }

    /// Same as `from_storage_json`.
    #[staticmethod]
    fn from_json(data: &str) -> PyResult<Self> {
        Self::from_storage_json(data)
    }

    /// The public form: every field but the hashes (safe to return from an endpoint).
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_json(py, &self.inner.to_public_value())
    }

    /// The public form as JSON text.
    fn to_json(&self) -> String {
        self.inner.to_public_json()
    }

    /// The storage form, with the argon2id hashes: for stores only, never for clients.
    fn to_storage_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_json(py, &self.inner.to_storage_value())
    }

    /// The storage form as JSON text (what the store protocol writes).
    fn to_storage_json(&self) -> String {
        self.inner.to_storage_json()
    }

    #[getter]
    fn id(&self) -> &str {
        self.inner.id.as_str()
    }
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }
    #[getter]
    fn user(&self) -> Option<&str> {
        self.inner.kind.user()
    }
    #[getter]
    fn role(&self) -> &str {
        &self.inner.role
    }
    #[getter]
    fn scopes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(py, self.inner.scopes.iter())
    }
    #[getter]
    fn accounts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        account_scope_py(py, &self.inner.accounts)
    }
    #[getter]
    fn active(&self) -> bool {
        self.inner.active
    }
    #[getter]
    fn created_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime(py, self.inner.created_at)
    }
    #[getter]
    fn updated_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime(py, self.inner.updated_at)
    }
    #[getter]
    fn expires_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        opt_datetime(py, self.inner.expires_at)
    }
    #[getter]
    fn rotated_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        opt_datetime(py, self.inner.rotated_at)
    }
    /// Until when the secret from before the last rotation still works (grace period).
    #[getter]
    fn previous_secret_valid_until(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        opt_datetime(py, self.inner.previous_secret.as_ref().map(|p| p.valid_until))
    }
    /// The argon2id PHC string (for store authors; not part of `to_dict()`).
    #[getter]
    fn secret_hash(&self) -> &str {
        self.inner.secret_hash.as_str()
    }
    #[getter]
    fn max_concurrent(&self) -> Option<u32> {
        self.inner.max_concurrent
    }
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.metadata {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<KeyRecord>().map(|o| o.get().inner == self.inner).unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.id.as_str().hash(&mut h);
        self.inner.version.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "KeyRecord(id={:?}, name={:?}, kind={:?}, role={:?}, active={}, version={})",
            self.inner.id.as_str(),
            self.inner.name,
            self.inner.kind.as_str(),
            self.inner.role,
            if self.inner.active { "True" } else { "False" },
            self.inner.version
        )
    }
}

/// A user that personal tokens belong to: their roles and data access cap those tokens.
#[pyclass(frozen, module = "keycel._keycel", name = "UserRecord")]
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub(crate) inner: keycel::UserRecord,
}

#[pymethods]
impl UserRecord {
    #[new]
    #[pyo3(signature = (id, roles, accounts = None))]
    fn py_new(id: &str, roles: &Bound<'_, PyAny>, accounts: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let roles = str_set(roles, "roles")?;
        let accounts = match accounts {
            Some(a) if !a.is_none() => account_scope(a, "accounts")?,
            _ => keycel::AccountScope::All,
        };
        keycel::UserRecord::new(id, roles, accounts).map(|inner| UserRecord { inner }).map_err(|e| record_error(&e))
    }

    #[staticmethod]
    fn from_dict(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let v = to_json(data, "data")?;
        let json = serde_json::to_string(&v).map_err(|e| crate::errors::internal(e.to_string()))?;
        Self::from_json(&json)
    }

    #[staticmethod]
    fn from_json(data: &str) -> PyResult<Self> {
        no_panic(|| keycel::UserRecord::from_json(data))?
            .map(|inner| UserRecord { inner })
            .map_err(|e| record_error(&e))
    }

    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let v = serde_json::to_value(&self.inner).map_err(|e| crate::errors::internal(e.to_string()))?;
        from_json(py, &v)
    }

    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(|e| crate::errors::internal(e.to_string()))
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[getter]
    fn roles<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(py, self.inner.roles.iter())
    }
    #[getter]
    fn accounts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        account_scope_py(py, &self.inner.accounts)
    }
    #[getter]
    fn version(&self) -> u64 {
        self.inner.version
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<UserRecord>().map(|o| o.get().inner == self.inner).unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.id.hash(&mut h);
        self.inner.version.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!("UserRecord(id={:?}, roles={:?}, version={})", self.inner.id, self.inner.roles, self.inner.version)
    }
}

/// A freshly created or rotated key. The secret can be read exactly once: `reveal()` gives
/// every form at once (token, client id + secret key, ready `Authorization` values, the header
/// pair); `token` or `secret` give one form. After that it is wiped from keycel's memory and
/// further reads raise `CredentialError`.
#[pyclass(frozen, module = "keycel._keycel", name = "IssuedKey")]
#[derive(Debug)]
pub(crate) struct IssuedKey {
    client_id: String,
    record: Py<KeyRecord>,
    secret: Mutex<Option<keycel::IssuedKey>>,
    credentials: keycel::CredentialConfig,
}

impl IssuedKey {
    pub(crate) fn new(
        py: Python<'_>,
        record: keycel::KeyRecord,
        issued: keycel::IssuedKey,
        credentials: &keycel::CredentialConfig,
    ) -> PyResult<Self> {
        Ok(IssuedKey {
            client_id: issued.client_id.as_str().to_string(),
            record: Py::new(py, KeyRecord::new(record))?,
            secret: Mutex::new(Some(issued)),
            credentials: credentials.clone(),
        })
    }

    fn take(&self) -> PyResult<keycel::IssuedKey> {
        let mut g = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        g.take().ok_or_else(|| credential("the secret of this key was already read (it is shown only once)"))
    }
}

#[pymethods]
impl IssuedKey {
    /// The public client id (also the record id).
    #[getter]
    fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The stored record as created (or rotated).
    #[getter]
    fn record(&self, py: Python<'_>) -> Py<KeyRecord> {
        self.record.clone_ref(py)
    }

    /// The full token (`kc_<id>_<secret>`). Readable once.
    #[getter]
    fn token(&self) -> PyResult<String> {
        Ok(self.take()?.token().expose().to_string())
    }

    /// The secret key alone (for the client-id/secret header pair). Readable once.
    #[getter]
    fn secret(&self) -> PyResult<String> {
        Ok(self.take()?.secret.expose().to_string())
    }

    /// Every form of the secret at once, readable once: `client_id`, `secret_key`, `token`,
    /// `authorization_basic` and `authorization_bearer` (ready `Authorization` header values),
    /// and `headers`, the header pair as `{name: value}` with the policy's header names.
    fn reveal<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.take()?.reveal(&self.credentials);
        let d = PyDict::new(py);
        d.set_item("client_id", r.client_id.as_str())?;
        d.set_item("secret_key", r.secret_key.expose())?;
        d.set_item("token", r.token.expose())?;
        d.set_item("authorization_basic", r.authorization_basic.expose())?;
        d.set_item("authorization_bearer", r.authorization_bearer.expose())?;
        let headers = PyDict::new(py);
        for (name, value) in r.header_pair() {
            headers.set_item(name, value)?;
        }
        d.set_item("headers", headers)?;
        Ok(d)
    }

    /// True until the secret was read.
    #[getter]
    fn readable(&self) -> bool {
        self.secret.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    fn __repr__(&self) -> String {
        format!("IssuedKey(client_id={:?}, secret=<redacted>)", self.client_id)
    }
}
