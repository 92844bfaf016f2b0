//! The policy engine (filled in when core's engine lands).

use keycel::keyring::ManagementGuard;
use pyo3::prelude::*;
use std::sync::Arc;

pub(crate) fn guard_from(guard: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<dyn ManagementGuard>>> {
    match guard {
        Some(g) if !g.is_none() => Err(crate::errors::invalid_argument("guard", "guard must be an Engine")),
        _ => Ok(None),
    }
}
