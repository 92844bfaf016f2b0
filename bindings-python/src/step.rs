//! `authorize_async`'s plumbing: an authorization call owned so it can cross to a worker
//! thread (`PreparedStep`, for stores that do I/O), and core's 503 for a request the host
//! sheds. Which requests need argon2 is core's call (`authorize_step`); this module only
//! carries values across threads.

use crate::decision::Decision;
use crate::engine::StoreLookup;
use crate::errors::{detached, invalid_argument};
use crate::pending::{decision_of, Pending};
use crate::rehash::Rehasher;
use keycel::engine::{Request, Step};
use keycel::store::Store;
use keycel::time::Timestamp;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// Why a request was shed before its lookup (internal reason, audit only).
const SHED_LOOKUP: &str = "store offload queue full";

/// One authorization call, owned, so it can run on another thread.
pub(crate) struct Call {
    pub(crate) engine: Arc<keycel::engine::Engine>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) rehasher: Arc<Rehasher>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) request: Request,
    pub(crate) now: Timestamp,
}

impl Call {
    /// Core's first step (the record lookup, the verified-secret cache, failure budgets;
    /// never argon2). Call it with the GIL released.
    pub(crate) fn step(&self) -> Step {
        let lookup = StoreLookup(&*self.store);
        self.engine.authorize_step(self.headers.iter().map(|(n, v)| (n, v)), &self.request, &lookup, self.now)
    }

    /// Core's failure-budget screen (no lookup, no hash): the step's 429 for a client over
    /// its budget, so it never waits for a pool. Cheap enough to run on the event loop.
    pub(crate) fn screen(&self) -> Option<Decision> {
        let headers = self.headers.iter().map(|(n, v)| (n, v));
        self.engine.screen(headers, self.request.throttle_ip(), self.now).map(Decision::plain)
    }

    /// Core's answer for a request arriving while the argon2 pool is full (`Engine::shed`):
    /// charged 503 or 429 without the lookup, or `None` (the step may decide it without argon2).
    pub(crate) fn shed(&self) -> Option<Decision> {
        let headers = self.headers.iter().map(|(n, v)| (n, v));
        self.engine.shed(headers, &self.request, self.now).map(Decision::plain)
    }

    /// Runs the first step with the GIL released; a `Decision` or a `Pending`.
    pub(crate) fn run(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let engine = Arc::clone(&self.engine);
        let rehasher = Arc::clone(&self.rehasher);
        let now = self.now;
        let step = detached(py, move || self.step())?;
        match step {
            Step::Decided(a) => Ok(Py::new(py, decision_of(a, &rehasher, now))?.into_any()),
            Step::NeedsHash(p) => Ok(Py::new(py, Pending::new(engine, rehasher, p))?.into_any()),
        }
    }
}

/// Core's 503 `overloaded` answer (with `Retry-After`) for a request a host sheds.
pub(crate) fn overloaded(engine: &keycel::engine::Engine, reason: &str) -> Decision {
    Decision::plain(keycel::Decision::overloaded(engine.messages(), reason))
}

/// A first step to run on a worker thread (the store does I/O): `step()` returns a
/// `Decision` or a `Pending`; `overloaded()` is core's 503 for a host that sheds it. Either
/// may be called once.
#[pyclass(frozen, module = "keycel._keycel", name = "PreparedStep")]
pub(crate) struct PreparedStep {
    engine: Arc<keycel::engine::Engine>,
    call: Mutex<Option<Call>>,
}

impl std::fmt::Debug for PreparedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedStep").finish_non_exhaustive()
    }
}

impl PreparedStep {
    pub(crate) fn new(call: Call) -> Self {
        PreparedStep { engine: Arc::clone(&call.engine), call: Mutex::new(Some(call)) }
    }

    fn take(&self) -> PyResult<Call> {
        self.call
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| invalid_argument("step", "this step already ran"))
    }
}

#[pymethods]
impl PreparedStep {
    /// Core's first step, with the GIL released: a `Decision` or a `Pending`.
    fn step(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.take()?.run(py)
    }

    /// Core's 503 `overloaded` decision (with `Retry-After`), without a lookup.
    fn overloaded(&self) -> PyResult<Decision> {
        self.take()?;
        Ok(overloaded(&self.engine, SHED_LOOKUP))
    }

    fn __repr__(&self) -> &'static str {
        "PreparedStep()"
    }
}
