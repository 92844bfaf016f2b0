//! Authentication: is this the secret of this key, and may the key be used right now?
//!
//! Checks run in a fixed order: checksum, record exists, secret (verified-secret cache or
//! argon2, then the previous secret during a rotation grace period), active, not expired
//! (with leeway), and for a personal token that its user still exists. Every failure
//! answers the same external 401 and costs the argon2 work of the configured preset (unknown
//! ids and failures after a cache hit burn a dummy computation; a wrong secret for a record
//! hashed with cheaper parameters is padded up to it), so neither the answer nor its timing
//! tells which check failed. The reason is kept for audit logs only.
//!
//! Authentication runs in two steps so a host can keep argon2 off its event loop:
//! [`Authenticator::begin`] does everything cheap (record match, verified-secret cache, state
//! checks after a hit) and either finishes or names the argon2 work left ([`HashWork`]);
//! [`Authenticator::complete`] does that work through the gate. [`Authenticator::authenticate`]
//! is the two in a row.

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

/// The argon2 work an authentication still needs after [`Authenticator::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashWork {
    /// Verify the secret against the record's stored hash.
    Verify {
        /// The verified-secret cache knows this exact secret for this stored hash (verified
        /// before, past its TTL): it is the right one, so failure budgets may let it through.
        recognised: bool,
    },
    /// Burn one dummy computation at the configured cost, then fail with this reason
    /// (unknown client id, or a state check that failed after a cache hit).
    Dummy(FailureReason),
}

/// The outcome of [`Authenticator::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Decided without argon2 (a verified-secret cache hit on a usable key).
    Done(Authenticated),
    /// argon2 must run: pass this to [`Authenticator::complete`].
    Hash(HashWork),
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
    /// [`Authenticator::begin`] then, when argon2 is needed, [`Authenticator::complete`].
    pub fn authenticate(
        &self,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> Result<Authenticated, AuthFailure> {
        match self.begin(creds, record, user, now) {
            AuthStep::Done(a) => Ok(a),
            AuthStep::Hash(work) => self.complete(&work, creds, record, user, now),
        }
    }

    /// The cheap part: checksum (already checked by `Credentials`), record match, the
    /// verified-secret cache and, after a hit, the state checks. Never runs argon2, never
    /// waits for the gate.
    pub fn begin(
        &self,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> AuthStep {
        // 1. checksum: `Credentials` can only be built through the checked constructors
        //    (shape, length, prefix and checksum), in every binding too, so it holds here.
        // 2. record exists (and is the right one); else a dummy verification is owed.
        let record = match record {
            Some(r) if r.id == *creds.client_id() => r,
            Some(_) => return AuthStep::Hash(HashWork::Dummy(FailureReason::RecordMismatch)),
            None => return AuthStep::Hash(HashWork::Dummy(FailureReason::UnknownClientId)),
        };
        // 3. secret, from the cache when it can be.
        #[cfg(feature = "std")]
        {
            let secret = creds.secret().expose().as_bytes();
            match self.cache.lookup(record.id.as_str(), record.secret_hash.as_str(), secret, now) {
                crate::cache::Lookup::Hit { needs_rehash } => {
                    let verified = Authenticated {
                        key_id: record.id.clone(),
                        method: creds.method(),
                        needs_rehash,
                        via_previous_secret: false,
                        cache_hit: true,
                    };
                    // 4-6. a state failure after a hit still owes a dummy hash (flat timing).
                    return match self.state(record, user, now) {
                        Ok(()) => AuthStep::Done(verified),
                        Err(reason) => AuthStep::Hash(HashWork::Dummy(reason)),
                    };
                }
                crate::cache::Lookup::Recognised => return AuthStep::Hash(HashWork::Verify { recognised: true }),
                crate::cache::Lookup::Miss => {}
            }
        }
        #[cfg(not(feature = "std"))]
        let _ = (record, user, now);
        AuthStep::Hash(HashWork::Verify { recognised: false })
    }

    /// True when the verified-secret cache has seen this exact secret for this client id
    /// verified before (see [`crate::cache::VerifiedCache::knows`]); false without `std`.
    pub fn knows_secret(&self, creds: &Credentials) -> bool {
        #[cfg(feature = "std")]
        return self.cache.knows(creds.client_id().as_str(), creds.secret().expose().as_bytes());
        #[cfg(not(feature = "std"))]
        {
            let _ = creds;
            false
        }
    }

    /// The argon2 part, through the gate (overloaded when every slot stays busy for the
    /// gate's `max_wait`). `creds`, `record` and `user` must be those given to `begin`.
    pub fn complete(
        &self,
        work: &HashWork,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> Result<Authenticated, AuthFailure> {
        let fail = |reason| AuthFailure { reason, client_id: creds.client_id().clone() };
        let secret = creds.secret().expose().as_bytes();
        #[allow(unused_mut)]
        let mut permit = self.enter_gate().map_err(|_| fail(FailureReason::Overloaded))?;
        #[cfg(feature = "std")]
        let ws = permit.workspace();
        #[cfg(not(feature = "std"))]
        let ws = {
            let () = permit;
            &mut crate::hash::Workspace::new()
        };
        let record = match (work, record) {
            (HashWork::Verify { .. }, Some(r)) if r.id == *creds.client_id() => r,
            (HashWork::Dummy(reason), _) => {
                self.config.hash.verify_dummy_in(secret, ws);
                return Err(fail(reason.clone()));
            }
            // A caller that lost its record between the steps: the same cost, the same 401.
            (HashWork::Verify { .. }, _) => {
                self.config.hash.verify_dummy_in(secret, ws);
                return Err(fail(FailureReason::UnknownClientId));
            }
        };
        // 3. secret; 4-6. state checks (argon2 already ran, nothing more to burn).
        let verified = self.verify_secret(record, creds.method(), secret, now, ws).map_err(fail)?;
        self.state(record, user, now).map(|()| verified).map_err(fail)
    }

    /// Checks 4-6: active, not expired (with leeway), a personal token's user present.
    fn state(&self, record: &KeyRecord, user: Option<&UserRecord>, now: Timestamp) -> Result<(), FailureReason> {
        if !record.active {
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
        }
    }

    /// argon2 against the current hash, then (rotation grace) the previous one. A failure is
    /// padded up to the configured preset's work, so its time does not depend on the
    /// parameters the record was hashed with.
    fn verify_secret(
        &self,
        record: &KeyRecord,
        method: CredentialMethod,
        secret: &[u8],
        now: Timestamp,
        ws: &mut crate::hash::Workspace,
    ) -> Result<Authenticated, FailureReason> {
        let base = Authenticated {
            key_id: record.id.clone(),
            method,
            needs_rehash: false,
            via_previous_secret: false,
            cache_hit: false,
        };
        let hash = &self.config.hash;
        let work = |phc: &crate::hash::PhcHash| phc.params().map(|p| p.work()).unwrap_or(0);
        match hash.verify_in(secret, &record.secret_hash, ws) {
            Ok(v) => {
                #[cfg(feature = "std")]
                self.cache.insert(record.id.as_str(), record.secret_hash.as_str(), secret, now, v.needs_rehash);
                Ok(Authenticated { needs_rehash: v.needs_rehash, ..base })
            }
            Err(HashError::Mismatch) => {
                let spent = work(&record.secret_hash);
                let result = match &record.previous_secret {
                    Some(prev) if now <= prev.valid_until => match hash.verify_in(secret, &prev.hash, ws) {
                        Ok(_) => return Ok(Authenticated { needs_rehash: false, via_previous_secret: true, ..base }),
                        Err(HashError::Mismatch) => (FailureReason::WrongSecret, spent + work(&prev.hash)),
                        Err(e) => (FailureReason::StoredHashRejected(e), spent),
                    },
                    _ => (FailureReason::WrongSecret, spent),
                };
                hash.pad_failure_in(secret, result.1, ws);
                Err(result.0)
            }
            Err(e) => {
                // Keep the cost of a refused hash equal to a real verification.
                hash.verify_dummy_in(secret, ws);
                Err(FailureReason::StoredHashRejected(e))
            }
        }
    }

    #[cfg(feature = "std")]
    fn enter_gate(&self) -> Result<crate::gate::GatePermit<'_>, crate::gate::Overloaded> {
        self.gate.enter()
    }

    /// The argon2 gate (slots, running computations, the memory its workspaces hold).
    #[cfg(feature = "std")]
    pub fn gate(&self) -> &crate::gate::HashGate {
        &self.gate
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
