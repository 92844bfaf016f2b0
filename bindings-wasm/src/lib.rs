//! keycel for JavaScript (wasm-bindgen): the Rust core compiled to WebAssembly, with a thin
//! layer that converts JS values and nothing more. Every decision is made in `keycel`.
//!
//! `panic = "abort"` on wasm32 means a panic would kill the instance, so every export
//! validates its input and returns a value or throws a `KeycelError` (see `js/glue.js`)
//! with a machine-readable `code`. Nothing here reads a clock (`now` is always passed in)
//! and nothing draws random bytes until a handler asks for it (Workers forbid randomness
//! at module top level).

mod admission;
mod convert;
mod credentials;
mod decision;
mod engine;
mod error;
mod failures;
mod glue;
mod keyring;
mod keys;
mod lease;
mod records;
mod rehash;
mod types;

pub use admission::Admission;
pub use credentials::{parse_credentials, Credentials};
pub use engine::Engine;
pub use failures::FailureBudgets;
pub use keys::{issue_key, rotate_key};
pub use lease::Lease;
pub use records::{KeyRecord, UserRecord};
pub use rehash::Rehash;

use wasm_bindgen::prelude::*;

/// The keycel version this package was built from.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
