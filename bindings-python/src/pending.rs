//! `Pending`: an authorization waiting for its argon2 computation (from
//! `Engine.authorize_step`). `finish()` runs it with the GIL released, on whatever thread the
//! host chose (a bounded worker pool, off the event loop); dropping it unfinished gives back
//! the failure-budget charges it took.

use crate::convert::timestamp;
use crate::decision::Decision;
use crate::errors::{detached, invalid_argument};
use crate::rehash::Rehasher;
use keycel::engine::PendingAuth;
use keycel::time::Timestamp;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// Turns a core authorization into the Python `Decision`.
/// A hash upgrade core claimed (`rehash_on_use`) starts here, after the decision.
pub(crate) fn decision_of(mut a: keycel::engine::Authorization, rehasher: &Rehasher, now: Timestamp) -> Decision {
    rehasher.start(a.rehash.take(), now);
    let needs_rehash = a.authenticated.as_ref().is_some_and(|x| x.needs_rehash);
    Decision::full(a.decision, a.lease, a.key, needs_rehash)
}

/// argon2 still owed for this request. Call `finish()` once, off the event loop.
#[pyclass(frozen, module = "keycel._keycel", name = "Pending")]
#[derive(Debug)]
pub(crate) struct Pending {
    engine: Arc<keycel::engine::Engine>,
    rehasher: Arc<Rehasher>,
    client_id: String,
    inner: Mutex<Option<PendingAuth>>,
}

impl Pending {
    pub(crate) fn new(engine: Arc<keycel::engine::Engine>, rehasher: Arc<Rehasher>, pending: PendingAuth) -> Self {
        Pending { engine, rehasher, client_id: pending.client_id().to_string(), inner: Mutex::new(Some(pending)) }
    }
}

#[pymethods]
impl Pending {
    /// Runs the argon2 verification (503 `overloaded` when the engine's argon2 gate stays
    /// full) and decides, with the GIL released. Raises `InvalidArgumentError` when called a
    /// second time.
    #[pyo3(signature = (now = None))]
    fn finish(&self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<Decision> {
        let now = timestamp(now, "now")?;
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(pending) = taken else {
            return Err(invalid_argument("pending", "this pending authorization was already finished"));
        };
        let engine = &self.engine;
        let a = detached(py, move || pending.finish(engine, now))?;
        Ok(decision_of(a, &self.rehasher, now))
    }

    /// Core's 503 `overloaded` decision (with `Retry-After`) for a host that sheds this
    /// request instead of hashing it (its failure-budget charges stay: only a success gives
    /// them back). Once, like `finish()`.
    fn overloaded(&self) -> PyResult<Decision> {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if taken.is_none() {
            return Err(invalid_argument("pending", "this pending authorization was already finished"));
        }
        drop(taken);
        Ok(crate::step::overloaded(&self.engine, "argon2 offload queue full"))
    }

    /// The client id presented (public; the key may not exist).
    #[getter]
    fn client_id(&self) -> &str {
        &self.client_id
    }

    /// True once `finish()` ran.
    #[getter]
    fn finished(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    fn __repr__(&self) -> String {
        format!("Pending(client_id={:?}, finished={})", self.client_id, if self.finished() { "True" } else { "False" })
    }
}
