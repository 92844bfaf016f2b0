//! The key lifecycle over a [`Store`]: create, rename, describe, set role / scopes / account
//! scope / state / expiry, rotate, delete, remove user.
//!
//! Every change is one read-modify-validate-write with optimistic concurrency: the record is
//! validated before the single store write, so a bad value or a store failure leaves the stored
//! record untouched. Every change bumps `version` and emits an [`AuditEvent`]. Every change is
//! asked of a [`ManagementGuard`] first; the policy engine is one, and without one only the
//! local operator may act.
//!
//! A key acting through management is re-read from the store at the moment of the change
//! (whatever object the host holds), a target outside its accounts answers like a missing
//! key, and the guard judges the record as it will be after the change (issue 11; the rule
//! itself is in [`delegation`]).

#[cfg(feature = "policy")]
pub mod authority;
#[cfg(feature = "policy")]
pub mod delegation;
pub mod patch;

use crate::audit::{AuditEvent, AuditSink, NullAudit};
use crate::decision::{Decision, Messages};
use crate::hash::{HashError, HashPolicy};
use crate::record::{AccountScope, KeyKind, KeyRecord, PreviousSecret, RecordError, UserRecord};
use crate::secret::Secret;
use crate::store::{KeyFilter, Store, StoreError};
use crate::time::{Duration, Timestamp};
use crate::token::{ClientId, IssuedKey, TokenError, TokenFormat};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// Management actions, as policies see them.
pub mod actions {
    /// Create a personal token.
    pub const CREATE: &str = "keys.create";
    /// Create an account-level API token (admins only in the default policy).
    pub const CREATE_API: &str = "keys.create.api";
    /// Read or list keys.
    pub const READ: &str = "keys.read";
    /// Rename or re-describe.
    pub const RENAME: &str = "keys.rename";
    /// Change role, scopes, account scope, expiry, limit or metadata.
    pub const UPDATE: &str = "keys.update";
    /// Activate or deactivate.
    pub const SET_ACTIVE: &str = "keys.set_active";
    /// Rotate the secret.
    pub const ROTATE: &str = "keys.rotate";
    /// Delete for good.
    pub const DELETE: &str = "keys.delete";
    /// Create or change a user.
    pub const USERS_PUT: &str = "users.put";
    /// Remove a user and their personal tokens.
    pub const USERS_REMOVE: &str = "users.remove";
}

/// Who asks for a change.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The local operator (CLI, admin scripts with direct store access).
    Operator(String),
    /// An authenticated key (with its user, for personal tokens).
    Key {
        /// The acting key.
        key: Box<KeyRecord>,
        /// Its user, for personal tokens.
        user: Option<UserRecord>,
    },
}

impl Actor {
    /// Label for audit events.
    pub fn label(&self) -> String {
        match self {
            Actor::Operator(n) => format!("operator:{n}"),
            Actor::Key { key, .. } => format!("key:{}", key.id),
        }
    }
}

/// The ids an audit event is about.
#[derive(Debug, Clone, Copy)]
struct Subject<'a> {
    key: Option<&'a str>,
    user: Option<&'a str>,
    version: Option<u64>,
}

/// What a management action is about.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The key concerned, as it will be after the change (for create, the record to be
    /// created; for read, rotate and delete, the record as stored).
    pub key: Option<&'a KeyRecord>,
    /// The user concerned.
    pub user: Option<&'a str>,
    /// The user record concerned: a personal token's owner, or the user being saved or
    /// removed (`None` when there is none).
    pub owner: Option<&'a UserRecord>,
}

/// True for the actions the keyring asks a guard about. A host checking one of them before
/// calling the keyring is a management check: it takes no data-plane concurrency slot.
pub fn is_management_action(action: &str) -> bool {
    matches!(
        action,
        actions::CREATE
            | actions::CREATE_API
            | actions::READ
            | actions::RENAME
            | actions::UPDATE
            | actions::SET_ACTIVE
            | actions::ROTATE
            | actions::DELETE
            | actions::USERS_PUT
            | actions::USERS_REMOVE
    )
}

/// Decides management actions, and checks that records name only what the policy defines.
pub trait ManagementGuard: Send + Sync {
    /// Allow or deny `action` by `actor` on `target`.
    fn check(&self, actor: &Actor, action: &str, target: Target<'_>, now: Timestamp) -> Decision;

    /// Checks a key about to be stored (e.g. its role and scopes exist in the policy).
    fn validate_key(&self, _key: &KeyRecord) -> Result<(), RecordError> {
        Ok(())
    }

    /// Checks a user about to be stored (e.g. their roles exist in the policy).
    fn validate_user(&self, _user: &UserRecord) -> Result<(), RecordError> {
        Ok(())
    }

    /// Checks the role of a personal token against its user. Default: one of the user's
    /// roles; the policy engine also accepts any narrower defined role.
    fn validate_personal(&self, key: &KeyRecord, user: &UserRecord) -> Result<(), RecordError> {
        if user.roles.contains(&key.role) {
            Ok(())
        } else {
            Err(RecordError::new("role", format!("{:?} is not one of the user's roles", key.role)))
        }
    }

    /// Grace after a key's expiry that authentication allows (an acting key past it is
    /// refused).
    fn expiry_leeway(&self) -> Duration {
        Duration::from_secs(0)
    }

    /// False when `target` is outside what `actor` may even see (it then answers exactly
    /// like a missing key). Default: visible; the guard's `check` still decides.
    fn visible(&self, _actor: &Actor, _target: &KeyRecord, _owner: Option<&UserRecord>, _now: Timestamp) -> bool {
        true
    }

    /// Most personal tokens one user may hold (`None`: no cap).
    fn max_personal_tokens(&self) -> Option<usize> {
        None
    }
}

/// The guard used when none is configured: the operator may do anything, keys nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct OperatorOnly;

impl ManagementGuard for OperatorOnly {
    fn check(&self, actor: &Actor, action: &str, _target: Target<'_>, _now: Timestamp) -> Decision {
        match actor {
            Actor::Operator(n) => Decision::allow(&format!("operator:{n}"), Vec::new(), "operator"),
            Actor::Key { key, .. } => Decision::forbidden(
                &Messages::default(),
                key.id.as_str(),
                crate::decision::codes::FORBIDDEN,
                Vec::new(),
                format!("no management policy configured for {action}"),
            ),
        }
    }
}

/// A keyring failure. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// The guard refused; the decision says why (and with which status).
    Denied(Box<Decision>),
    /// No such key or user.
    NotFound(String),
    /// A field value is invalid.
    Invalid(RecordError),
    /// The store failed; nothing was changed.
    Store(StoreError),
    /// Hashing failed.
    Hash(HashError),
    /// Issuing a token failed (RNG).
    Token(TokenError),
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::Denied(d) => write!(f, "denied ({}): {}", d.status, d.reason),
            KeyringError::NotFound(id) => write!(f, "not found: {id}"),
            KeyringError::Invalid(e) => e.fmt(f),
            KeyringError::Store(e) => e.fmt(f),
            KeyringError::Hash(e) => e.fmt(f),
            KeyringError::Token(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyringError {}

impl From<StoreError> for KeyringError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => KeyringError::NotFound(id),
            other => KeyringError::Store(other),
        }
    }
}

impl From<RecordError> for KeyringError {
    fn from(e: RecordError) -> Self {
        KeyringError::Invalid(e)
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// API or personal (with its user, who must exist).
    pub kind: KeyKind,
    /// Role.
    pub role: String,
    /// Extra scopes.
    pub scopes: BTreeSet<String>,
    /// Account scope (default all, including future accounts).
    pub accounts: AccountScope,
    /// Lifetime from now.
    pub expires_in: Option<Duration>,
    /// Per-key in-flight limit.
    pub max_concurrent: Option<u32>,
    /// Rate limit (`None`: the policy default, else unlimited).
    pub rate_limit: Option<crate::budget::RateLimit>,
    /// Usage credits (`None`: unmetered); `set_at` becomes the creation time.
    pub credits: Option<crate::budget::CreditGrant>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Start active (default) or inactive.
    pub active: bool,
}

impl NewKey {
    /// An active API token with a role and access to all accounts.
    pub fn api(name: &str, role: &str) -> Self {
        NewKey {
            name: name.to_string(),
            description: String::new(),
            kind: KeyKind::Api,
            role: role.to_string(),
            scopes: BTreeSet::new(),
            accounts: AccountScope::All,
            expires_in: None,
            max_concurrent: None,
            rate_limit: None,
            credits: None,
            metadata: BTreeMap::new(),
            active: true,
        }
    }

    /// An active personal token for `user`.
    pub fn personal(name: &str, user: &str, role: &str) -> Self {
        NewKey { kind: KeyKind::Personal { user: user.to_string() }, ..Self::api(name, role) }
    }
}

/// A change to a key's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New name.
    Rename(String),
    /// New description.
    Describe(String),
    /// New role.
    SetRole(String),
    /// Replace the explicit scopes.
    SetScopes(BTreeSet<String>),
    /// Replace the account scope (effective on the very next request).
    SetAccounts(AccountScope),
    /// Activate (true) or deactivate (false).
    SetActive(bool),
    /// New expiry (`None`: never).
    SetExpiry(Option<Timestamp>),
    /// New per-key limit (`None`: the default).
    SetMaxConcurrent(Option<u32>),
    /// New rate limit (`None`: the policy default, else unlimited).
    SetRateLimit(Option<crate::budget::RateLimit>),
    /// New credit grant (`None`: unmetered). Setting credits starts a new count: give the
    /// grant `set_at = now` ([`Keyring::set_credits`] does).
    SetCredits(Option<crate::budget::CreditGrant>),
    /// Replace metadata.
    SetMetadata(BTreeMap<String, String>),
}

impl Change {
    /// The action the guard is asked about.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Rename(_) | Change::Describe(_) => actions::RENAME,
            Change::SetActive(_) => actions::SET_ACTIVE,
            _ => actions::UPDATE,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Change::Rename(_) => "rename",
            Change::Describe(_) => "describe",
            Change::SetRole(_) => "set role",
            Change::SetScopes(_) => "set scopes",
            Change::SetAccounts(_) => "set accounts",
            Change::SetActive(true) => "activate",
            Change::SetActive(false) => "deactivate",
            Change::SetExpiry(_) => "set expiry",
            Change::SetMaxConcurrent(_) => "set max concurrent",
            Change::SetRateLimit(_) => "set rate limit",
            Change::SetCredits(_) => "set credits",
            Change::SetMetadata(_) => "set metadata",
        }
    }

    fn apply(self, r: &mut KeyRecord) {
        match self {
            Change::Rename(n) => r.name = n,
            Change::Describe(d) => r.description = d,
            Change::SetRole(role) => r.role = role,
            Change::SetScopes(s) => r.scopes = s,
            Change::SetAccounts(a) => r.accounts = a,
            Change::SetActive(a) => r.active = a,
            Change::SetExpiry(e) => r.expires_at = e,
            Change::SetMaxConcurrent(m) => r.max_concurrent = m,
            Change::SetRateLimit(l) => r.rate_limit = l,
            Change::SetCredits(c) => {
                // A new grant is a new count even when made within the same second.
                let after = r.credits.map(|old| old.set_at.plus(crate::time::Duration::from_secs(1)));
                r.credits = c.map(|mut g| {
                    if let Some(a) = after.filter(|a| g.set_at < *a) {
                        g.set_at = a;
                    }
                    g
                });
            }
            Change::SetMetadata(m) => r.metadata = m,
        }
    }
}

/// Key lifecycle over a store.
#[derive(Clone)]
pub struct Keyring {
    store: Arc<dyn Store>,
    format: TokenFormat,
    hash: HashPolicy,
    guard: Arc<dyn ManagementGuard>,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("format", &self.format).field("hash", &self.hash).finish_non_exhaustive()
    }
}

fn os_rng() -> getrandom::SysRng {
    getrandom::SysRng
}

impl Keyring {
    /// A keyring with default format and hash policy, operator-only guard and no audit sink.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Keyring {
            store,
            format: TokenFormat::default(),
            hash: HashPolicy::default(),
            guard: Arc::new(OperatorOnly),
            audit: Arc::new(NullAudit),
        }
    }

    /// Sets the token format.
    pub fn with_format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the hash policy (validated).
    pub fn with_hash(mut self, hash: HashPolicy) -> Result<Self, KeyringError> {
        hash.validate().map_err(KeyringError::Hash)?;
        self.hash = hash;
        Ok(self)
    }

    /// Sets who may do what.
    pub fn with_guard(mut self, guard: Arc<dyn ManagementGuard>) -> Self {
        self.guard = guard;
        self
    }

    /// Sets the audit sink.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The token format.
    pub fn format(&self) -> &TokenFormat {
        &self.format
    }

    /// The hash policy.
    pub fn hash_policy(&self) -> &HashPolicy {
        &self.hash
    }

    fn event(&self, actor: &Actor, action: &str, now: Timestamp, what: Subject<'_>, outcome: &str, detail: String) {
        self.audit.record(&AuditEvent {
            at: now,
            actor: actor.label(),
            action: action.to_string(),
            key_id: what.key.map(str::to_string),
            user_id: what.user.map(str::to_string),
            version: what.version,
            outcome: outcome.to_string(),
            detail,
        });
    }

    /// The acting key as stored now, with its user: a deleted, deactivated, expired,
    /// orphaned or rotated-past-grace key is refused, whatever record the host passed.
    fn live_actor(&self, actor: &Actor, action: &str, now: Timestamp) -> Result<Actor, KeyringError> {
        let Actor::Key { key: held, .. } = actor else { return Ok(actor.clone()) };
        let refuse = |why: &str| {
            let d = Decision::unauthorized(&Messages::default(), format!("acting key {}: {why}", held.id));
            let subject = Subject { key: Some(held.id.as_str()), user: held.kind.user(), version: None };
            self.event(actor, action, now, subject, "denied", d.reason.clone());
            Err(KeyringError::Denied(Box::new(d)))
        };
        let Some(fresh) = self.store.get_key(held.id.as_str())? else { return refuse("no longer exists") };
        if !same_secret(held, &fresh, now) {
            return refuse("its secret was rotated and the old one is no longer valid");
        }
        if !fresh.active {
            return refuse("is inactive");
        }
        if fresh.expired(now, self.guard.expiry_leeway()) {
            return refuse("has expired");
        }
        let user = match fresh.kind.user() {
            Some(u) => match self.store.get_user(u)? {
                Some(u) => Some(u),
                None => return refuse("its user no longer exists"),
            },
            None => None,
        };
        Ok(Actor::Key { key: Box::new(fresh), user })
    }

    /// A personal token's owner, as stored.
    fn owner_of(&self, key: &KeyRecord) -> Result<Option<UserRecord>, KeyringError> {
        match key.kind.user() {
            Some(u) => Ok(self.store.get_user(u)?),
            None => Ok(None),
        }
    }

    /// The stored key `id`, as the actor may see it: a key outside the actor's reach answers
    /// exactly like a missing one.
    fn visible_key(
        &self,
        actor: &Actor,
        id: &str,
        now: Timestamp,
    ) -> Result<(KeyRecord, Option<UserRecord>), KeyringError> {
        let r = self.store.get_key(id)?.ok_or_else(|| KeyringError::NotFound(id.to_string()))?;
        let owner = self.owner_of(&r)?;
        if !self.guard.visible(actor, &r, owner.as_ref(), now) {
            return Err(KeyringError::NotFound(id.to_string()));
        }
        Ok((r, owner))
    }

    fn guard(&self, actor: &Actor, action: &str, target: Target<'_>, now: Timestamp) -> Result<(), KeyringError> {
        let d = self.guard.check(actor, action, target, now);
        if d.allowed {
            return Ok(());
        }
        let key = target.key.map(|k| k.id.as_str());
        self.event(actor, action, now, Subject { key, user: target.user, version: None }, "denied", d.reason.clone());
        Err(KeyringError::Denied(Box::new(d)))
    }

    /// Reads a key (asks the guard for `keys.read`).
    pub fn get(&self, actor: &Actor, id: &str, now: Timestamp) -> Result<KeyRecord, KeyringError> {
        let actor = &self.live_actor(actor, actions::READ, now)?;
        let (r, owner) = self.visible_key(actor, id, now)?;
        self.guard(actor, actions::READ, Target { key: Some(&r), user: r.kind.user(), owner: owner.as_ref() }, now)?;
        Ok(r)
    }

    /// Lists keys the actor may read (keys outside its reach are left out silently).
    pub fn list(&self, actor: &Actor, filter: &KeyFilter, now: Timestamp) -> Result<Vec<KeyRecord>, KeyringError> {
        let actor = &self.live_actor(actor, actions::READ, now)?;
        let all = self.store.list_keys(filter)?;
        let mut out = Vec::with_capacity(all.len());
        for r in all {
            let owner = self.owner_of(&r)?;
            let target = Target { key: Some(&r), user: r.kind.user(), owner: owner.as_ref() };
            if self.guard.visible(actor, &r, owner.as_ref(), now)
                && self.guard.check(actor, actions::READ, target, now).allowed
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Creates a key and returns it with its secret: the only time the secret is shown.
    pub fn create(&self, actor: &Actor, new: NewKey, now: Timestamp) -> Result<(KeyRecord, IssuedKey), KeyringError> {
        self.create_with_id(actor, new, None, now)
    }

    /// [`Keyring::create`] under a caller-chosen client id (`None`: a random one). The store's
    /// insert refuses an id that is or ever was in use (`Store(AlreadyExists)`), which is what
    /// makes an idempotent create (the management API's `Idempotency-Key`) safe across
    /// processes: the id is derived from the request, so a retry cannot mint a second key.
    pub fn create_with_id(
        &self,
        actor: &Actor,
        new: NewKey,
        id: Option<ClientId>,
        now: Timestamp,
    ) -> Result<(KeyRecord, IssuedKey), KeyringError> {
        let action = if matches!(new.kind, KeyKind::Api) { actions::CREATE_API } else { actions::CREATE };
        let actor = &self.live_actor(actor, action, now)?;
        let owner = match &new.kind {
            KeyKind::Personal { user } => {
                let u = self.store.get_user(user)?.ok_or_else(|| {
                    KeyringError::Invalid(RecordError::new("user", format!("user {user:?} does not exist")))
                })?;
                self.check_personal_cap(actor, action, &u, now)?;
                Some(u)
            }
            KeyKind::Api => None,
        };
        let mut rng = os_rng();
        let issued = match id {
            Some(client_id) => {
                let secret = self.format.new_secret(&client_id, &mut rng).map_err(KeyringError::Token)?;
                IssuedKey { client_id, secret }
            }
            None => self.format.issue(&mut rng).map_err(KeyringError::Token)?,
        };
        let secret_hash = self.hash.hash(issued.secret.expose().as_bytes(), &mut rng).map_err(KeyringError::Hash)?;
        let record = KeyRecord {
            description: new.description,
            scopes: new.scopes,
            accounts: new.accounts,
            active: new.active,
            expires_at: new.expires_in.map(|d| now.plus(d)),
            max_concurrent: new.max_concurrent,
            rate_limit: new.rate_limit,
            credits: new.credits.map(|g| crate::budget::CreditGrant { set_at: now, ..g }),
            metadata: new.metadata,
            ..KeyRecord::new(issued.client_id.clone(), new.name, new.kind, new.role, secret_hash, now)
        };
        record.validate()?;
        self.guard.validate_key(&record)?;
        if let Some(u) = &owner {
            self.guard.validate_personal(&record, u)?;
        }
        self.guard(actor, action, Target { key: Some(&record), user: record.kind.user(), owner: owner.as_ref() }, now)?;
        self.store.insert_key(&record)?;
        self.event(
            actor,
            action,
            now,
            Subject { key: Some(record.id.as_str()), user: record.kind.user(), version: Some(1) },
            "ok",
            format!("created {:?}", record.name),
        );
        Ok((record, issued))
    }

    /// Applies one change (validated, atomic, version-checked).
    pub fn update(&self, actor: &Actor, id: &str, change: Change, now: Timestamp) -> Result<KeyRecord, KeyringError> {
        let action = change.action();
        let label = change.label();
        self.modify(actor, id, action, now, |r| change.apply(r), |_| Ok(label.to_string()))
    }

    /// Rename (shorthand for [`Change::Rename`]).
    pub fn rename(&self, actor: &Actor, id: &str, name: &str, now: Timestamp) -> Result<KeyRecord, KeyringError> {
        self.update(actor, id, Change::Rename(name.to_string()), now)
    }

    /// Replace the account scope; the very next request sees it.
    pub fn set_accounts(
        &self,
        actor: &Actor,
        id: &str,
        accounts: AccountScope,
        now: Timestamp,
    ) -> Result<KeyRecord, KeyringError> {
        self.update(actor, id, Change::SetAccounts(accounts), now)
    }

    /// Activate or deactivate.
    pub fn set_active(&self, actor: &Actor, id: &str, active: bool, now: Timestamp) -> Result<KeyRecord, KeyringError> {
        self.update(actor, id, Change::SetActive(active), now)
    }

    /// Sets the key's rate limit (`None`: the policy default, else unlimited). Validated
    /// (field-named errors); held to the delegation rule like every change.
    pub fn set_rate_limit(
        &self,
        actor: &Actor,
        id: &str,
        limit: Option<crate::budget::RateLimit>,
        now: Timestamp,
    ) -> Result<KeyRecord, KeyringError> {
        self.update(actor, id, Change::SetRateLimit(limit), now)
    }

    /// Grants `remaining` credits from `now` (a new count: what was spent of an earlier grant
    /// no longer matters), refilled to `refill.amount` at each `refill.interval` from now;
    /// `None` makes the key unmetered.
    pub fn set_credits(
        &self,
        actor: &Actor,
        id: &str,
        remaining: Option<u64>,
        refill: Option<crate::budget::Refill>,
        now: Timestamp,
    ) -> Result<KeyRecord, KeyringError> {
        let grant = remaining.map(|remaining| crate::budget::CreditGrant { remaining, refill, set_at: now });
        self.update(actor, id, Change::SetCredits(grant), now)
    }

    /// New secret; the old one dies at once, or at `now + grace` when a grace is given.
    /// Name, role, scopes, account scope and everything else are kept.
    pub fn rotate(
        &self,
        actor: &Actor,
        id: &str,
        grace: Option<Duration>,
        now: Timestamp,
    ) -> Result<(KeyRecord, IssuedKey), KeyringError> {
        let mut rng = os_rng();
        let mut issued = None;
        let record = self.modify(
            actor,
            id,
            actions::ROTATE,
            now,
            |_| {},
            |r| {
                let secret = self.format.new_secret(&r.id, &mut rng).map_err(KeyringError::Token)?;
                let hash = self.hash.hash(secret.expose().as_bytes(), &mut rng).map_err(KeyringError::Hash)?;
                let old = std::mem::replace(&mut r.secret_hash, hash);
                r.previous_secret =
                    grace.filter(|g| g.secs() > 0).map(|g| PreviousSecret { hash: old, valid_until: now.plus(g) });
                r.rotated_at = Some(now);
                issued = Some(IssuedKey { client_id: r.id.clone(), secret });
                Ok(match grace {
                    Some(g) if g.secs() > 0 => format!("rotated, old secret valid for {}s", g.secs()),
                    _ => "rotated, old secret revoked".to_string(),
                })
            },
        )?;
        let issued = issued.ok_or_else(|| KeyringError::Store(StoreError::Backend("rotation did not run".into())))?;
        Ok((record, issued))
    }

    /// Replaces the stored hash with one made with the configured parameters, after a
    /// successful authentication reported `needs_rehash`. No guard: nothing visible changes.
    pub fn rehash(&self, id: &str, secret: &Secret, now: Timestamp) -> Result<KeyRecord, KeyringError> {
        let mut r = self.store.get_key(id)?.ok_or_else(|| KeyringError::NotFound(id.to_string()))?;
        self.hash.verify(secret.expose().as_bytes(), &r.secret_hash).map_err(KeyringError::Hash)?;
        let expected = r.version;
        r.secret_hash = self.hash.hash(secret.expose().as_bytes(), &mut os_rng()).map_err(KeyringError::Hash)?;
        r.version += 1;
        r.updated_at = now.max(r.updated_at);
        self.store.update_key(&r, expected)?;
        self.event(
            &Actor::Operator("keycel".into()),
            "keys.rehash",
            now,
            Subject { key: Some(id), user: None, version: Some(r.version) },
            "ok",
            "re-hashed with current parameters".into(),
        );
        Ok(r)
    }

    /// Deletes a key for good. Its id is never reused.
    pub fn delete(&self, actor: &Actor, id: &str, now: Timestamp) -> Result<(), KeyringError> {
        let actor = &self.live_actor(actor, actions::DELETE, now)?;
        let (r, owner) = self.visible_key(actor, id, now)?;
        self.guard(actor, actions::DELETE, Target { key: Some(&r), user: r.kind.user(), owner: owner.as_ref() }, now)?;
        if !self.store.delete_key(id)? {
            return Err(KeyringError::NotFound(id.to_string()));
        }
        self.event(
            actor,
            actions::DELETE,
            now,
            Subject { key: Some(id), user: r.kind.user(), version: Some(r.version) },
            "ok",
            "deleted".into(),
        );
        Ok(())
    }

    /// Adds or replaces a user (their roles and data access cap their personal tokens).
    pub fn put_user(&self, actor: &Actor, user: UserRecord, now: Timestamp) -> Result<UserRecord, KeyringError> {
        user.validate()?;
        self.guard.validate_user(&user)?;
        let actor = &self.live_actor(actor, actions::USERS_PUT, now)?;
        let old = self.store.get_user(&user.id)?;
        if let Some(old) = &old {
            // Reshaping an existing user is reshaping their personal tokens: the user as
            // stored must be within the actor's reach too.
            self.guard(actor, actions::USERS_PUT, Target { key: None, user: Some(&old.id), owner: Some(old) }, now)?;
        }
        self.guard(actor, actions::USERS_PUT, Target { key: None, user: Some(&user.id), owner: Some(&user) }, now)?;
        let mut user = user;
        if let Some(old) = old {
            user.version = old.version + 1;
        }
        self.store.put_user(&user)?;
        self.event(
            actor,
            actions::USERS_PUT,
            now,
            Subject { key: None, user: Some(&user.id), version: Some(user.version) },
            "ok",
            "user saved".into(),
        );
        Ok(user)
    }

    /// A user by id.
    pub fn get_user(&self, id: &str) -> Result<Option<UserRecord>, KeyringError> {
        Ok(self.store.get_user(id)?)
    }

    /// Removes a user and all their personal tokens; returns how many tokens went.
    pub fn remove_user(&self, actor: &Actor, user: &str, now: Timestamp) -> Result<usize, KeyringError> {
        let actor = &self.live_actor(actor, actions::USERS_REMOVE, now)?;
        let record = self.store.get_user(user)?;
        self.guard(actor, actions::USERS_REMOVE, Target { key: None, user: Some(user), owner: record.as_ref() }, now)?;
        let deleted = self.store.remove_user(user)?;
        self.event(
            actor,
            actions::USERS_REMOVE,
            now,
            Subject { key: None, user: Some(user), version: None },
            "ok",
            format!("removed with {} personal token(s)", deleted.len()),
        );
        Ok(deleted.len())
    }

    /// Refuses a new personal token for `user` beyond the guard's per-user cap.
    fn check_personal_cap(
        &self,
        actor: &Actor,
        action: &str,
        user: &UserRecord,
        now: Timestamp,
    ) -> Result<(), KeyringError> {
        let Some(cap) = self.guard.max_personal_tokens() else { return Ok(()) };
        let filter = KeyFilter { user: Some(user.id.clone()), ..KeyFilter::default() };
        let held = self.store.list_keys(&filter)?.len();
        if held < cap {
            return Ok(());
        }
        let label = actor.label();
        let d = Decision::forbidden(
            &Messages::default(),
            &label,
            crate::decision::codes::TOO_MANY_PERSONAL_TOKENS,
            Vec::new(),
            format!("user {:?} already holds {held} personal tokens; the policy allows {cap}", user.id),
        );
        self.event(
            actor,
            action,
            now,
            Subject { key: None, user: Some(&user.id), version: None },
            "denied",
            d.reason.clone(),
        );
        Err(KeyringError::Denied(Box::new(d)))
    }

    /// Read, reshape (`shape`, cheap: the guard judges its result), guard, then `finish`
    /// (e.g. hashing a new secret, only once allowed), validate, write.
    fn modify<S, F>(
        &self,
        actor: &Actor,
        id: &str,
        action: &str,
        now: Timestamp,
        shape: S,
        finish: F,
    ) -> Result<KeyRecord, KeyringError>
    where
        S: FnOnce(&mut KeyRecord),
        F: FnOnce(&mut KeyRecord) -> Result<String, KeyringError>,
    {
        let actor = &self.live_actor(actor, action, now)?;
        let (current, owner) = self.visible_key(actor, id, now)?;
        let mut next = current.clone();
        shape(&mut next);
        next.version = current.version + 1;
        next.updated_at = now.max(current.updated_at);
        next.validate()?;
        self.guard.validate_key(&next)?;
        self.guard(actor, action, Target { key: Some(&next), user: next.kind.user(), owner: owner.as_ref() }, now)?;
        if let (Some(u), true) = (&owner, next.role != current.role) {
            self.guard.validate_personal(&next, u)?;
        }
        let detail = finish(&mut next)?;
        next.validate()?;
        self.store.update_key(&next, current.version)?;
        self.event(
            actor,
            action,
            now,
            Subject { key: Some(id), user: next.kind.user(), version: Some(next.version) },
            "ok",
            detail,
        );
        Ok(next)
    }
}

/// True when the record the host holds carries the secret the stored key accepts now: the
/// same secret generation (a re-hash keeps it), or the previous secret while its rotation
/// grace lasts.
fn same_secret(held: &KeyRecord, stored: &KeyRecord, now: Timestamp) -> bool {
    held.secret_hash == stored.secret_hash
        || held.rotated_at == stored.rotated_at
        || stored.previous_secret.as_ref().is_some_and(|p| p.hash == held.secret_hash && now <= p.valid_until)
}
