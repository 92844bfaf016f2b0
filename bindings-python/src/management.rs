//! The management HTTP API (`keycel.management`): converts a request to core's
//! `management::handle` and its answer back. Every decision (routing, validation,
//! authorization, idempotency, answer shapes) is core's; the GIL is released while it runs.

use crate::convert::timestamp;
use crate::engine::Engine;
use crate::errors::{detached, invalid_argument};
use crate::keyring::Keyring;
use keycel::management::{self, HttpRequest};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `(status, headers, body)`.
type Answer = (u16, Vec<(String, String)>, Py<PyBytes>);

/// Handles one management request: `path` is path and query relative to the mount point
/// (`/keys?limit=10`), `headers` a list of `(name, value)` pairs. Blocking (argon2, store
/// I/O): run it off the event loop.
#[pyfunction]
#[pyo3(signature = (engine, keyring, method, path, headers, body, client_ip = None, now = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn management_handle(
    py: Python<'_>,
    engine: &Bound<'_, Engine>,
    keyring: &Bound<'_, Keyring>,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    client_ip: Option<String>,
    now: Option<&Bound<'_, PyAny>>,
) -> PyResult<Answer> {
    if body.len() > management::fields::MAX_BODY_BYTES + 1 {
        return Err(invalid_argument("body", "pass at most MAX_BODY_BYTES + 1 bytes; core answers 413"));
    }
    let now = timestamp(now, "now")?;
    let engine = engine.get().inner.clone();
    let keyring = keyring.get().inner.clone();
    let req = HttpRequest { method, path, headers, body, client_ip };
    let r = detached(py, move || management::handle(&engine, &keyring, &req, now))?;
    Ok((r.status, r.headers, PyBytes::new(py, &r.body).unbind()))
}

/// The OpenAPI 3.1 document of the management API (JSON text).
#[pyfunction]
pub(crate) fn management_openapi() -> String {
    management::openapi()
}

/// Largest body the management API accepts.
pub(crate) const MAX_BODY_BYTES: usize = management::fields::MAX_BODY_BYTES;
