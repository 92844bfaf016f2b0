//! Which admission backend a Python engine counts budgets in: `admission=None` picks SQLite
//! admission in the store's file when the store is a file-backed `SqliteStore` (every worker
//! process of the machine then shares one budget per key), else process-local;
//! `admission=RedisAdmission(url)` counts in Redis, shared by every server.

use crate::errors::{detached, invalid_argument, store_error};
use crate::stores::{SqliteStore, StoreHandle};
use keycel::admission::{Admission, AdmissionError, SqliteAdmission};
use keycel::limiter::LimiterConfig;
use keycel::store::StoreError;
use pyo3::prelude::*;
use std::sync::Arc;

/// An admission error as the store error it is (the shared state lives in a store).
pub(crate) fn admission_error(e: &AdmissionError) -> PyErr {
    store_error(&StoreError::Backend(e.to_string()))
}

/// `None`: automatic; `"local"`; `"sqlite"` (needs a file-backed `SqliteStore`); a
/// `RedisAdmission`.
pub(crate) fn choose(
    py: Python<'_>,
    admission: Option<&Bound<'_, PyAny>>,
    store: &StoreHandle,
    config: &LimiterConfig,
) -> PyResult<Option<Arc<dyn Admission>>> {
    let sqlite_path = store.object.bind(py).cast::<SqliteStore>().ok().and_then(|s| s.get().file());
    if let Some(r) = admission.and_then(|a| a.cast::<RedisAdmission>().ok()) {
        let r = r.get().clone();
        let config = config.clone();
        let opened = detached(py, move || r.open(&config))?;
        let a: Arc<dyn Admission> = Arc::new(opened.map_err(|e| admission_error(&e))?);
        return Ok(Some(a));
    }
    let wanted: Option<String> = match admission.filter(|a| !a.is_none()) {
        None => None,
        Some(a) => Some(a.extract().map_err(|_| {
            invalid_argument("admission", "admission must be \"local\", \"sqlite\" or a RedisAdmission")
        })?),
    };
    let open = |path: std::path::PathBuf| -> PyResult<Option<Arc<dyn Admission>>> {
        let config = config.clone();
        let opened = detached(py, move || SqliteAdmission::open(path, config))?;
        let a: Arc<dyn Admission> = Arc::new(opened.map_err(|e| admission_error(&e))?);
        Ok(Some(a))
    };
    match (wanted.as_deref(), sqlite_path) {
        (Some("local"), _) | (None, None) => Ok(None),
        (Some("sqlite") | None, Some(path)) => open(path),
        (Some("sqlite"), None) => Err(invalid_argument(
            "admission",
            "admission=\"sqlite\" needs store=SqliteStore(path) (a file, not in memory)",
        )),
        (Some(other), _) => {
            Err(invalid_argument("admission", format!("unknown admission {other:?}: use \"local\" or \"sqlite\"")))
        }
    }
}

/// Admission counted in Redis: one budget per key across every server sharing it.
/// `fail`: what the engine answers while Redis is unreachable — `"deny"` (503, default) or
/// `"local"` (count in this process; the decision's `reason` says so).
#[pyclass(frozen, module = "keycel._keycel", name = "RedisAdmission")]
#[derive(Debug, Clone)]
pub(crate) struct RedisAdmission {
    url: String,
    fail: keycel_redis::FailMode,
    timeout_ms: u64,
}

#[pymethods]
impl RedisAdmission {
    #[new]
    #[pyo3(signature = (url, *, fail = "deny", timeout = 0.5))]
    fn py_new(url: String, fail: &str, timeout: f64) -> PyResult<Self> {
        let fail = keycel_redis::FailMode::parse(fail)
            .ok_or_else(|| invalid_argument("fail", "fail must be \"deny\" or \"local\""))?;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 60.0) {
            return Err(invalid_argument("timeout", "timeout must be between 0 and 60 seconds"));
        }
        if !(url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(invalid_argument("url", "url must start with redis:// or unix://"));
        }
        Ok(RedisAdmission { url, fail, timeout_ms: (timeout * 1000.0) as u64 })
    }

    #[getter]
    fn fail(&self) -> &'static str {
        match self.fail {
            keycel_redis::FailMode::Deny => "deny",
            keycel_redis::FailMode::Local => "local",
        }
    }

    fn __repr__(&self) -> String {
        // The URL may carry a password: never shown.
        format!("RedisAdmission(fail={:?})", self.fail())
    }
}

impl RedisAdmission {
    fn open(&self, config: &LimiterConfig) -> Result<keycel_redis::RedisAdmission, AdmissionError> {
        let mut c = keycel_redis::RedisConfig::new(self.url.clone(), config.clone());
        c.fail = self.fail;
        c.timeout = std::time::Duration::from_millis(self.timeout_ms.max(1));
        keycel_redis::RedisAdmission::new(c)
    }
}
