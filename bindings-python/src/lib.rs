//! Python binding of keycel (`keycel._keycel`). It converts values and maps errors; every
//! decision is made in core. The pure-Python package `keycel` wraps this module.

mod admission;
mod budget_args;
mod convert;
mod decision;
mod engine;
mod errors;
mod keyring;
mod management;
mod pending;
mod records;
mod rehash;
mod step;
mod stores;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _keycel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<records::KeyRecord>()?;
    m.add_class::<records::UserRecord>()?;
    m.add_class::<records::IssuedKey>()?;
    m.add_class::<decision::Decision>()?;
    m.add_class::<decision::Lease>()?;
    m.add_class::<stores::MemoryStore>()?;
    m.add_class::<stores::SqliteStore>()?;
    m.add_class::<stores::PostgresStore>()?;
    m.add_function(wrap_pyfunction!(stores::_store_conformance, m)?)?;
    m.add_class::<admission::RedisAdmission>()?;
    m.add_class::<keyring::Keyring>()?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<decision::Ready>()?;
    m.add_class::<pending::Pending>()?;
    m.add_class::<step::PreparedStep>()?;
    m.add_function(wrap_pyfunction!(management::management_handle, m)?)?;
    m.add_function(wrap_pyfunction!(management::management_openapi, m)?)?;
    m.add("MANAGEMENT_MAX_BODY_BYTES", management::MAX_BODY_BYTES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
