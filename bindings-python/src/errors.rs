//! Maps core errors onto the typed exceptions of `keycel.errors` (defined in Python so they
//! carry proper attributes), and keeps Rust panics from ever crossing into Python.

use keycel::hash::HashError;
use keycel::keyring::KeyringError;
use keycel::record::RecordError;
use keycel::store::StoreError;
use keycel::token::TokenError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Builds `keycel.errors.<class>(message, **kwargs)` as a `PyErr`.
pub(crate) fn raise(class: &str, message: String, kwargs: &[(&str, Py<PyAny>)]) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let cls = py.import("keycel.errors")?.getattr(class)?;
            let kw = PyDict::new(py);
            for (k, v) in kwargs {
                kw.set_item(*k, v.bind(py))?;
            }
            Ok(PyErr::from_value(cls.call((message.clone(),), Some(&kw))?))
        };
        build().unwrap_or_else(|e| e)
    })
}

fn s(py: Python<'_>, v: &str) -> Py<PyAny> {
    v.into_pyobject(py).map(|o| o.into_any().unbind()).unwrap_or_else(|_| py.None())
}

pub(crate) fn invalid_argument(argument: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| raise("InvalidArgumentError", message, &[("argument", s(py, argument))]))
}

pub(crate) fn record_error(e: &RecordError) -> PyErr {
    Python::attach(|py| raise("InvalidRecordError", e.to_string(), &[("field", s(py, &e.field))]))
}

pub(crate) fn not_found(id: &str) -> PyErr {
    Python::attach(|py| raise("NotFoundError", format!("not found: {id}"), &[("id", s(py, id))]))
}

pub(crate) fn credential(message: impl Into<String>) -> PyErr {
    raise("CredentialError", message.into(), &[])
}

pub(crate) fn internal(message: impl Into<String>) -> PyErr {
    raise("InternalError", message.into(), &[])
}

pub(crate) fn store_error(e: &StoreError) -> PyErr {
    let kind = match e {
        StoreError::NotFound(id) => return not_found(id),
        StoreError::AlreadyExists(_) => "already_exists",
        StoreError::Conflict { .. } => "conflict",
        StoreError::Corrupt(_) => "corrupt",
        StoreError::Backend(_) => "backend",
    };
    Python::attach(|py| raise("StoreError", e.to_string(), &[("kind", s(py, kind))]))
}

pub(crate) fn hash_error(e: &HashError, argument: &str) -> PyErr {
    match e {
        HashError::InvalidPolicy(_) | HashError::ParamsOutOfRange(_) => invalid_argument(argument, e.to_string()),
        HashError::Mismatch => credential(e.to_string()),
        HashError::Malformed | HashError::UnsupportedAlgorithm | HashError::UnsupportedVersion => {
            Python::attach(|py| raise("InvalidRecordError", e.to_string(), &[("field", s(py, "secret_hash"))]))
        }
        HashError::Rng | HashError::Compute => raise("KeycelError", e.to_string(), &[]),
    }
}

pub(crate) fn token_error(e: &TokenError) -> PyErr {
    match e {
        TokenError::InvalidPrefix => invalid_argument("prefix", e.to_string()),
        _ => credential(e.to_string()),
    }
}

pub(crate) fn keyring_error(e: KeyringError) -> PyErr {
    match e {
        KeyringError::Denied(d) => {
            let message = format!("denied ({}): {}", d.status, d.message);
            Python::attach(|py| match Bound::new(py, crate::decision::Decision::plain(*d)) {
                Ok(obj) => raise("DeniedError", message, &[("decision", obj.into_any().unbind())]),
                Err(e) => e,
            })
        }
        KeyringError::NotFound(id) => not_found(&id),
        KeyringError::Invalid(r) => record_error(&r),
        KeyringError::Store(s) => store_error(&s),
        KeyringError::Hash(h) => hash_error(&h, "hash"),
        KeyringError::Token(t) => token_error(&t),
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs `f` with the GIL released, turning a Rust panic (a bug: the workspace lints forbid
/// the usual sources) into `keycel.errors.InternalError` instead of letting it reach Python.
pub(crate) fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    py.detach(|| catch_unwind(AssertUnwindSafe(f)).map_err(panic_message))
        .map_err(|what| internal(format!("internal error in keycel: {what}")))
}

/// Runs `f` with the GIL held (calls too short to be worth releasing it), turning a panic
/// into `keycel.errors.InternalError` like [`detached`].
pub(crate) fn no_panic<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| internal(format!("internal error in keycel: {}", panic_message(p))))
}
