//! Re-hash on use: upgrade a stored hash made with outdated argon2 parameters the first time
//! its key authenticates successfully, in every runtime.
//!
//! Only a successful use has the secret in hand, so the upgrade must start there; but it costs
//! one argon2 computation, so it must not slow that request. With the engine option on
//! ([`crate::engine::Engine::rehash_on_use`]), an authentication that reports `needs_rehash`
//! hands back a [`PendingRehash`]: the secret (zeroized on drop) and the hash it was verified
//! against. The host runs it after the response, on another thread or in `waitUntil`: through
//! a [`Store`] ([`PendingRehash::apply`]) or, for hosts that keep records themselves (WASM),
//! as the new record to write ([`PendingRehash::rehashed_record`]). A key gets at most one
//! pending re-hash at a time per engine ([`RehashClaims`]); one that fails or is dropped unrun
//! frees the claim so a later use can try again; failures never reach the request.

use crate::hash::{HashError, HashPolicy, PhcHash};
use crate::record::{KeyRecord, RecordError};
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;
use crate::token::ClientId;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Most keys with a claimed re-hash at once; past it, uses simply do not re-hash (safe: the
/// old hash keeps working) until claims are freed.
pub const MAX_CLAIMS: usize = 65_536;

/// The keys whose re-hash is pending or done in this engine (at most one per key).
#[derive(Debug, Default)]
pub struct RehashClaims {
    ids: Mutex<BTreeSet<String>>,
}

impl RehashClaims {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when this call took the claim for `id` (the engine, with `policy`, takes claims).
    #[cfg(feature = "policy")]
    fn claim(&self, id: &str) -> bool {
        let mut ids = self.lock();
        ids.len() < MAX_CLAIMS && ids.insert(id.to_string())
    }

    fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Keys currently claimed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a re-hash did not happen. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RehashError {
    /// Hashing failed (RNG, parameters).
    Hash(HashError),
    /// The store failed or the record changed concurrently.
    Store(StoreError),
    /// The re-hashed record did not validate.
    Invalid(RecordError),
}

impl fmt::Display for RehashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RehashError::Hash(e) => write!(f, "re-hash failed: {e}"),
            RehashError::Store(e) => write!(f, "re-hash not stored: {e}"),
            RehashError::Invalid(e) => write!(f, "re-hashed record invalid: {e}"),
        }
    }
}

impl std::error::Error for RehashError {}

/// A re-hash to run after the request: the verified secret and the hash it matched.
pub struct PendingRehash {
    key_id: ClientId,
    secret: Secret,
    verified: PhcHash,
    hash: HashPolicy,
    claims: Arc<RehashClaims>,
    keep_claim: bool,
}

impl fmt::Debug for PendingRehash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRehash").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Drop for PendingRehash {
    fn drop(&mut self) {
        if !self.keep_claim {
            self.claims.release(self.key_id.as_str());
        }
    }
}

impl PendingRehash {
    /// A pending re-hash for `record`, just authenticated with `secret`, when the claim for
    /// the key is free (else `None`: another one is pending or done).
    #[cfg(feature = "policy")]
    pub(crate) fn claim(
        claims: &Arc<RehashClaims>,
        record: &KeyRecord,
        secret: &Secret,
        hash: HashPolicy,
    ) -> Option<Self> {
        if !claims.claim(record.id.as_str()) {
            return None;
        }
        Some(PendingRehash {
            key_id: record.id.clone(),
            secret: Secret::new(secret.expose().to_string()),
            verified: record.secret_hash.clone(),
            hash,
            claims: Arc::clone(claims),
            keep_claim: false,
        })
    }

    /// The key concerned.
    pub fn key_id(&self) -> &ClientId {
        &self.key_id
    }

    /// The record with its secret re-hashed under the engine's parameters (version bumped),
    /// for the host to store (with its own version check); `Ok(None)` when `record` no longer
    /// holds the hash that was verified (rotated or re-hashed meanwhile: nothing to do).
    pub fn rehashed_record(mut self, record: &KeyRecord, now: Timestamp) -> Result<Option<KeyRecord>, RehashError> {
        let next = self.next(record, now)?;
        self.keep_claim = true;
        Ok(next)
    }

    /// Re-reads the record, re-hashes and writes it back if its version did not move;
    /// `Ok(None)` when there was nothing to do (deleted, rotated, already re-hashed).
    pub fn apply(mut self, store: &dyn Store, now: Timestamp) -> Result<Option<KeyRecord>, RehashError> {
        let Some(current) = store.get_key(self.key_id.as_str()).map_err(RehashError::Store)? else {
            self.keep_claim = true;
            return Ok(None);
        };
        let Some(next) = self.next(&current, now)? else {
            self.keep_claim = true;
            return Ok(None);
        };
        store.update_key(&next, current.version).map_err(RehashError::Store)?;
        self.keep_claim = true;
        Ok(Some(next))
    }

    fn next(&self, record: &KeyRecord, now: Timestamp) -> Result<Option<KeyRecord>, RehashError> {
        if record.id != self.key_id || record.secret_hash != self.verified {
            return Ok(None);
        }
        let mut next = record.clone();
        next.secret_hash =
            self.hash.hash(self.secret.expose().as_bytes(), &mut getrandom::SysRng).map_err(RehashError::Hash)?;
        next.version = record.version.saturating_add(1);
        next.updated_at = now.max(record.updated_at);
        next.validate().map_err(RehashError::Invalid)?;
        Ok(Some(next))
    }
}
