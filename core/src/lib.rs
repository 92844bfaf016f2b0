//! keycel: embedded API-key authentication and CEL authorization.
//!
//! The base of the crate is `no_std` + `alloc`: key format, records, credential parsing,
//! argon2id hashing with a caller-supplied RNG, and authentication. The `std` feature adds the
//! thread-safe pieces (verified-secret cache, argon2 gate, concurrency leases, stores, keyring,
//! failed-authentication budgets); the `policy` feature adds CEL policies and the engine
//! (with its two-step `authorize_step`); `sqlite` adds the SQLite store.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod auth;
pub mod base62;
pub mod budget;
pub mod credentials;
pub mod decision;
pub mod hash;
pub mod issued;
pub mod key_view;
pub mod record;
pub mod secret;
pub mod time;
pub mod token;

#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod test_rng;

#[cfg(feature = "std")]
pub mod admission;
#[cfg(feature = "std")]
pub mod audit;
#[cfg(feature = "std")]
pub mod cache;
#[cfg(feature = "std")]
pub mod clock;
#[cfg(feature = "policy")]
pub mod engine;
#[cfg(feature = "std")]
pub mod gate;
#[cfg(feature = "std")]
pub mod keyring;
#[cfg(feature = "std")]
pub mod limiter;
#[cfg(feature = "policy")]
pub mod management;
#[cfg(feature = "policy")]
pub mod policy;
#[cfg(feature = "std")]
pub mod rehash;
#[cfg(feature = "policy")]
pub mod request;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "policy")]
pub mod step;
#[cfg(feature = "std")]
pub mod store;
#[cfg(feature = "std")]
pub mod throttle;

pub use auth::{AuthConfig, AuthFailure, AuthStep, Authenticated, Authenticator, FailureReason, HashWork};
pub use credentials::{CredentialConfig, CredentialError, CredentialMethod, Credentials};
pub use decision::Decision;
pub use hash::{HashError, HashParams, HashPolicy, PhcHash};
pub use issued::RevealedKey;
pub use key_view::KeyView;
pub use record::{AccountScope, KeyKind, KeyRecord, RecordError, UserRecord};
pub use secret::Secret;
pub use time::{Duration, Timestamp};
pub use token::{ClientId, IssuedKey, TokenError, TokenFormat};
