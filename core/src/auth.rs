//! Authentication: is this the secret of this key, and may the key be used right now?
//!
//! Checks run in a fixed order: checksum, record exists, secret (verified-secret cache or
//! argon2, then the previous secret during a rotation grace period), active, not expired
//! (with leeway), and for a personal token that its user still exists. Every failure
//! answers the same external 401 and costs one argon2 computation (unknown ids and failures
//! after a cache hit burn a dummy one), so neither the answer nor its timing tells which
//! check failed. The reason is kept for audit logs only.

use crate::credentials::{CredentialConfig, CredentialMethod, Credentials};
use crate::decision::{Decision, Messages};
use crate::hash::{HashError, HashPolicy};
use crate::record::{KeyKind, KeyRecord, UserRecord};
use crate::time::{Duration, Timestamp};
use crate::token::{ClientId, TokenFormat};
use alloc::string::{String, ToString};
use core::fmt;

/// Everything authentication is configured with.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Token prefix.
    pub format: TokenFormat,
    /// Header names and size cap.
    pub credentials: CredentialConfig,
    /// argon2id parameters and the accepted range of stored ones.
    pub hash: HashPolicy,
    /// Grace after `expires_at` for clock skew between hosts.
    pub expiry_leeway: Duration,
    /// Client-facing texts.
    pub messages: Messages,
    /// Verified-secret cache (std).
    #[cfg(feature = "std")]
    pub cache: crate::cache::CacheConfig,
    /// argon2 computations allowed at once, and how long to wait for a slot (std).
    #[cfg(feature = "std")]
    pub gate: crate::gate::GateConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            format: TokenFormat::default(),
            credentials: CredentialConfig::default(),
            hash: HashPolicy::default(),
            expiry_leeway: Duration::from_secs(0),
            messages: Messages::default(),
            #[cfg(feature = "std")]
            cache: crate::cache::CacheConfig::default(),
            #[cfg(feature = "std")]
            gate: crate::gate::GateConfig::default(),
        }
    }
}

/// Why authentication failed (internal; the client always sees the same 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// No record for the client id.
    UnknownClientId,
    /// The record's id is not the credential's client id (host looked up the wrong record).
    RecordMismatch,
    /// The secret is wrong (or belongs to a rotated-away secret past its grace).
    WrongSecret,
    /// The stored hash was refused (algorithm, version, parameters out of range, malformed).
    StoredHashRejected(HashError),
    /// The key is deactivated.
    Inactive,
    /// The key expired.
    Expired,
    /// A personal token whose user no longer exists (or another user record was supplied).
    UserRemoved,
    /// Too many argon2 computations in flight: answer 503, not 401.
    Overloaded,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::UnknownClientId => f.write_str("unknown client id"),
            FailureReason::RecordMismatch => f.write_str("record does not belong to the client id"),
            FailureReason::WrongSecret => f.write_str("wrong secret"),
            FailureReason::StoredHashRejected(e) => write!(f, "stored hash rejected: {e}"),
            FailureReason::Inactive => f.write_str("key is inactive"),
            FailureReason::Expired => f.write_str("key has expired"),
            FailureReason::UserRemoved => f.write_str("owner of the personal token was removed"),
            FailureReason::Overloaded => f.write_str("argon2 gate saturated"),
        }
    }
}

/// A failed authentication: the reason (for audit) and the client id that was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// Internal reason.
    pub reason: FailureReason,
    /// The client id presented (public).
    pub client_id: ClientId,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authentication of {} failed: {}", self.client_id, self.reason)
    }
}

impl core::error::Error for AuthFailure {}

impl AuthFailure {
    /// The external answer: one 401 for every reason (503 when overloaded).
    pub fn decision(&self, m: &Messages) -> Decision {
        let reason = alloc::format!("{} ({})", self.reason, self.client_id);
        match self.reason {
            FailureReason::Overloaded => Decision::overloaded(m, reason),
            _ => Decision::unauthorized(m, reason),
        }
    }
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The key.
    pub key_id: ClientId,
    /// How the credentials arrived.
    pub method: CredentialMethod,
    /// The stored hash uses other parameters than configured: re-hash it now.
    pub needs_rehash: bool,
    /// The previous secret (rotation grace period) was used.
    pub via_previous_secret: bool,
    /// argon2 was skipped thanks to the verified-secret cache.
    pub cache_hit: bool,
}

/// Verifies credentials against records. Cheap to share: `Send + Sync` with `std`.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    #[cfg(feature = "std")]
    cache: crate::cache::VerifiedCache,
    #[cfg(feature = "std")]
    gate: crate::gate::HashGate,
}

impl Authenticator {
    /// Checks the configuration (hash policy) and builds the authenticator.
    pub fn new(config: AuthConfig) -> Result<Self, HashError> {
        config.hash.validate()?;
        Ok(Authenticator {
            #[cfg(feature = "std")]
            cache: crate::cache::VerifiedCache::new(config.cache.clone()),
            #[cfg(feature = "std")]
            gate: crate::gate::HashGate::new(config.gate.clone()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Takes credentials from request headers (see [`CredentialConfig::extract`]).
    pub fn credentials<I, N, V>(&self, headers: I) -> Result<Credentials, crate::credentials::CredentialError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        self.config.credentials.extract(&self.config.format, headers)
    }

    /// Authenticates `creds` against the record the host found for `creds.client_id()`
    /// (`None` when there is none) and, for personal tokens, the owner's current user record.
    pub fn authenticate(
        &self,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> Result<Authenticated, AuthFailure> {
        let fail = |reason| AuthFailure { reason, client_id: creds.client_id().clone() };
        let secret = creds.secret().expose().as_bytes();
        // 1. checksum: `Credentials` can only be built through the checked constructors
        //    (shape, length, prefix and checksum), in every binding too, so it holds here.
        // 2. record exists (and is the right one); else spend a dummy verification.
        let record = match record {
            Some(r) if r.id == *creds.client_id() => r,
            other => {
                let reason =
                    if other.is_some() { FailureReason::RecordMismatch } else { FailureReason::UnknownClientId };
                let _gate = self.enter_gate().map_err(|_| fail(FailureReason::Overloaded))?;
                self.config.hash.verify_dummy(secret);
                return Err(fail(reason));
            }
        };
        // 3. secret.
        let verified = self.verify_secret(record, creds.method(), secret, now).map_err(fail)?;
        // 4-6. state checks; a failure after a cache hit burns a dummy hash to keep timing flat.
        let state = if !record.active {
            Err(FailureReason::Inactive)
        } else if record.expired(now, self.config.expiry_leeway) {
            Err(FailureReason::Expired)
        } else if let KeyKind::Personal { user: owner } = &record.kind {
            match user {
                Some(u) if u.id == *owner => Ok(()),
                _ => Err(FailureReason::UserRemoved),
            }
        } else {
            Ok(())
        };
        match state {
            Ok(()) => Ok(verified),
            Err(reason) => {
                if verified.cache_hit {
                    let _gate = self.enter_gate().map_err(|_| fail(FailureReason::Overloaded))?;
                    self.config.hash.verify_dummy(secret);
                }
                Err(fail(reason))
            }
        }
    }

    fn verify_secret(
        &self,
        record: &KeyRecord,
        method: CredentialMethod,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<Authenticated, FailureReason> {
        let base = Authenticated {
            key_id: record.id.clone(),
            method,
            needs_rehash: false,
            via_previous_secret: false,
            cache_hit: false,
        };
        #[cfg(feature = "std")]
        if let Some(needs_rehash) = self.cache.check(record.id.as_str(), record.secret_hash.as_str(), secret, now) {
            return Ok(Authenticated { needs_rehash, cache_hit: true, ..base });
        }
        let _gate = self.enter_gate().map_err(|_| FailureReason::Overloaded)?;
        match self.config.hash.verify(secret, &record.secret_hash) {
            Ok(v) => {
                #[cfg(feature = "std")]
                self.cache.insert(record.id.as_str(), record.secret_hash.as_str(), secret, now, v.needs_rehash);
                Ok(Authenticated { needs_rehash: v.needs_rehash, ..base })
            }
            Err(HashError::Mismatch) => match &record.previous_secret {
                Some(prev) if now <= prev.valid_until => match self.config.hash.verify(secret, &prev.hash) {
                    Ok(_) => Ok(Authenticated { needs_rehash: false, via_previous_secret: true, ..base }),
                    Err(HashError::Mismatch) => Err(FailureReason::WrongSecret),
                    Err(e) => Err(FailureReason::StoredHashRejected(e)),
                },
                _ => Err(FailureReason::WrongSecret),
            },
            Err(e) => {
                // Keep the cost of a refused hash equal to a real verification.
                self.config.hash.verify_dummy(secret);
                Err(FailureReason::StoredHashRejected(e))
            }
        }
    }

    #[cfg(feature = "std")]
    fn enter_gate(&self) -> Result<crate::gate::GatePermit<'_>, crate::gate::Overloaded> {
        self.gate.enter()
    }

    #[cfg(not(feature = "std"))]
    fn enter_gate(&self) -> Result<(), core::convert::Infallible> {
        Ok(())
    }

    /// Forgets cached verifications (e.g. after a bulk key import).
    #[cfg(feature = "std")]
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Number of cached verifications.
    #[cfg(feature = "std")]
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

/// The description of an authentication outcome for logs (never contains the secret).
pub fn describe(result: &Result<Authenticated, AuthFailure>) -> String {
    match result {
        Ok(a) => alloc::format!("authenticated {} via {}", a.key_id, a.method.as_str()),
        Err(f) => f.reason.to_string(),
    }
}
