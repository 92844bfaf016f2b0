//! PostgreSQL for keycel: [`PostgresStore`] (keys and users in a shared database) and
//! [`CachedPostgres`] (the same store behind a per-process record cache kept current by
//! `LISTEN/NOTIFY`).
//!
//! A crate of its own so the client library (`postgres`, which brings tokio) stays out of the
//! `no_std`/WASM core build. The client is the synchronous `postgres` crate: core's `Store` is
//! synchronous and the Python binding calls it with the GIL released, so an async client would
//! only add a runtime hop per call.

mod listen;
mod pool;
pub mod schema;
mod statements;
mod store;

pub use listen::{CacheSettings, CachedPostgres};
pub use store::{OpenError, Options, PostgresStore};

/// True when `s` names a PostgreSQL database (`postgresql://` or `postgres://`).
pub fn is_dsn(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://")
}
