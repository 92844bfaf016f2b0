//! The key lifecycle (`keycel::keyring::Keyring`) for Python. Every call releases the GIL
//! while core works (argon2 on create/rotate), and maps errors onto typed exceptions.

use crate::convert::{account_scope, duration, str_set, timestamp, timestamp_of};
use crate::decision::Decision;
use crate::errors::{detached, hash_error, invalid_argument, keyring_error, store_error, token_error};
use crate::records::{IssuedKey, KeyRecord, UserRecord};
use crate::stores::{store_from, StoreHandle};
use keycel::audit::{AuditEvent, AuditSink};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, KeyringError, ManagementGuard, NewKey};
use keycel::store::KeyFilter;
use keycel::token::TokenFormat;
use keycel::KeyKind;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::Arc;

/// Sends audit events to a Python callable as dicts. A failing callable never fails the
/// change it reports on (the exception goes to `sys.unraisablehook`).
#[derive(Debug)]
struct PyAudit {
    callback: Py<PyAny>,
}

impl AuditSink for PyAudit {
    fn record(&self, event: &AuditEvent) {
        Python::attach(|py| {
            let result = serde_json::to_value(event)
                .map_err(|e| crate::errors::internal(e.to_string()))
                .and_then(|v| crate::convert::from_json(py, &v))
                .and_then(|d| self.callback.bind(py).call1((d,)).map(|_| ()));
            if let Err(e) = result {
                e.write_unraisable(py, Some(self.callback.bind(py)));
            }
        });
    }
}

/// `"owasp"` (default), `"edge"`, or `{"m_cost": KiB, "t_cost": n, "p_cost": n}`.
pub(crate) fn hash_policy(v: Option<&Bound<'_, PyAny>>) -> PyResult<HashPolicy> {
    let params = match v {
        None => return Ok(HashPolicy::default()),
        Some(v) if v.is_none() => return Ok(HashPolicy::default()),
        Some(v) => {
            if let Ok(s) = v.cast::<PyString>() {
                let name = s.to_cow()?;
                HashParams::preset(&name).ok_or_else(|| {
                    invalid_argument(
                        "hash",
                        format!("unknown hash preset {name:?} (use \"owasp\", \"edge\" or a dict)"),
                    )
                })?
            } else {
                let get = |k: &str| -> PyResult<u32> {
                    v.get_item(k)
                        .and_then(|x| x.extract::<u32>())
                        .map_err(|_| invalid_argument("hash", format!("hash parameters need an integer {k:?}")))
                };
                HashParams { m_cost: get("m_cost")?, t_cost: get("t_cost")?, p_cost: get("p_cost")? }
            }
        }
    };
    HashPolicy::with_params(params).map_err(|e| hash_error(&e, "hash"))
}

/// Key lifecycle over a store: create, get, list, rename, describe, set role / scopes /
/// accounts / active / expiry / limit / metadata, rotate, delete, users. Management calls
/// are decided by the guard (an `Engine`: its policy decides `keys.*` actions); without one
/// only the local operator may act. Safe to share across threads.
#[pyclass(frozen, module = "keycel._keycel", name = "Keyring")]
#[derive(Debug)]
pub(crate) struct Keyring {
    pub(crate) inner: keycel::keyring::Keyring,
    store: StoreHandle,
    operator: String,
    /// Header names `IssuedKey.reveal()` shows (the guard engine's, else the defaults).
    credentials: keycel::CredentialConfig,
}

impl Keyring {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        py: Python<'_>,
        store: Option<&Bound<'_, PyAny>>,
        guard: Option<Arc<dyn ManagementGuard>>,
        format: TokenFormat,
        hash: HashPolicy,
        credentials: keycel::CredentialConfig,
        operator: &str,
        audit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let store = store_from(py, store)?;
        let mut inner = keycel::keyring::Keyring::new(store.store.clone())
            .with_format(format)
            .with_hash(hash)
            .map_err(keyring_error)?;
        if let Some(g) = guard {
            inner = inner.with_guard(g);
        }
        if let Some(a) = audit.filter(|a| !a.is_none()) {
            if !a.is_callable() {
                return Err(invalid_argument("audit", "audit must be a callable taking one dict"));
            }
            inner = inner.with_audit(Arc::new(PyAudit { callback: a.clone().unbind() }));
        }
        if operator.trim().is_empty() {
            return Err(invalid_argument("operator", "operator name must not be empty"));
        }
        Ok(Keyring { inner, store, operator: operator.to_string(), credentials })
    }

    /// `None`: the operator; a `KeyRecord` or an allowed `Decision`: that key (with its user
    /// for personal tokens); a str: an operator of that name.
    fn actor(&self, py: Python<'_>, actor: Option<&Bound<'_, PyAny>>) -> PyResult<Actor> {
        let Some(a) = actor.filter(|a| !a.is_none()) else {
            return Ok(Actor::Operator(self.operator.clone()));
        };
        if let Ok(s) = a.cast::<PyString>() {
            return Ok(Actor::Operator(s.to_cow()?.into_owned()));
        }
        let key = if let Ok(k) = a.cast::<KeyRecord>() {
            k.get().inner.clone()
        } else if let Ok(d) = a.cast::<Decision>() {
            match d.get().key_record() {
                Some(k) if d.get().inner.allowed => k,
                _ => return Err(invalid_argument("actor", "only an allowed decision with a key can act")),
            }
        } else {
            return Err(invalid_argument("actor", "actor must be None, an operator name, a KeyRecord or a Decision"));
        };
        let user = match key.kind.user() {
            Some(u) => {
                let store = self.store.store.clone();
                let u = u.to_string();
                detached(py, move || store.get_user(&u))?.map_err(|e| store_error(&e))?
            }
            None => None,
        };
        Ok(Actor::Key { key: Box::new(key), user })
    }

    fn change(
        &self,
        py: Python<'_>,
        id: &str,
        change: Change,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        let r = detached(py, || self.inner.update(&actor, id, change, now))?;
        r.map(KeyRecord::new).map_err(keyring_error)
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&keycel::keyring::Keyring) -> Result<T, KeyringError> + Send,
    ) -> PyResult<T> {
        detached(py, || f(&self.inner))?.map_err(keyring_error)
    }
}

#[pymethods]
impl Keyring {
    /// A keyring over `store` (default: a new `MemoryStore`). `hash` picks argon2id
    /// parameters for new secrets: `"owasp"`, `"edge"` or a dict of `m_cost`/`t_cost`/`p_cost`;
    /// by default the guard engine's policy preset, else `"owasp"`. `audit` is called with one dict per change.
    #[new]
    #[pyo3(signature = (store = None, *, guard = None, hash = None, prefix = None, operator = "python", audit = None))]
    fn py_new(
        py: Python<'_>,
        store: Option<&Bound<'_, PyAny>>,
        guard: Option<&Bound<'_, PyAny>>,
        hash: Option<&Bound<'_, PyAny>>,
        prefix: Option<&str>,
        operator: &str,
        audit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let format = match prefix {
            Some(p) => TokenFormat::with_prefix(p).map_err(|e| token_error(&e))?,
            None => crate::engine::format_from(guard).unwrap_or_default(),
        };
        let hash = match hash.filter(|h| !h.is_none()) {
            Some(h) => hash_policy(Some(h))?,
            None => crate::engine::hash_from(guard).unwrap_or_default(),
        };
        let credentials = crate::engine::credentials_from(guard).unwrap_or_default();
        let guard_arc = crate::engine::guard_from(guard)?;
        Keyring::build(py, store, guard_arc, format, hash, credentials, operator, audit)
    }

    /// The store object this keyring writes to.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<PyAny> {
        self.store.object.clone_ref(py)
    }

    /// Creates a key; the returned `IssuedKey` shows its secret once.
    #[pyo3(signature = (name, *, role, kind = "api", user = None, description = "", scopes = None,
        accounts = None, expires_in = None, max_concurrent = None, rate_limit = None, credits = None,
        metadata = None, active = true, actor = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        py: Python<'_>,
        name: &str,
        role: &str,
        kind: &str,
        user: Option<&str>,
        description: &str,
        scopes: Option<&Bound<'_, PyAny>>,
        accounts: Option<&Bound<'_, PyAny>>,
        expires_in: Option<&Bound<'_, PyAny>>,
        max_concurrent: Option<u32>,
        rate_limit: Option<&Bound<'_, PyAny>>,
        credits: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        active: bool,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<IssuedKey> {
        let now = timestamp(now, "now")?;
        let kind = KeyKind::from_parts(kind, user.map(str::to_string))
            .map_err(|e| invalid_argument(&e.field, format!("{}: {}", e.field, e.message)))?;
        let new = NewKey {
            name: name.to_string(),
            description: description.to_string(),
            kind,
            role: role.to_string(),
            scopes: scopes.filter(|s| !s.is_none()).map(|s| str_set(s, "scopes")).transpose()?.unwrap_or_default(),
            accounts: accounts
                .filter(|a| !a.is_none())
                .map(|a| account_scope(a, "accounts"))
                .transpose()?
                .unwrap_or(keycel::AccountScope::All),
            expires_in: expires_in.filter(|e| !e.is_none()).map(|e| duration(e, "expires_in")).transpose()?,
            max_concurrent,
            rate_limit: rate_limit.filter(|r| !r.is_none()).map(crate::budget_args::rate_limit).transpose()?,
            credits: credits.filter(|c| !c.is_none()).map(|c| crate::budget_args::credits(c, now)).transpose()?,
            metadata: metadata
                .filter(|m| !m.is_none())
                .map(|m| crate::convert::metadata(m, "metadata"))
                .transpose()?
                .unwrap_or_default(),
            active,
        };
        let actor = self.actor(py, actor)?;
        let (record, issued) = self.run(py, move |k| k.create(&actor, new, now))?;
        IssuedKey::new(py, record, issued, &self.credentials)
    }

    #[pyo3(signature = (id, *, actor = None, now = None))]
    fn get(
        &self,
        py: Python<'_>,
        id: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        self.run(py, |k| k.get(&actor, id, now)).map(KeyRecord::new)
    }

    /// Keys the actor may read, by id; filter by owning user, kind and state.
    #[pyo3(signature = (*, user = None, kind = None, active = None, actor = None, now = None))]
    fn list(
        &self,
        py: Python<'_>,
        user: Option<String>,
        kind: Option<String>,
        active: Option<bool>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<KeyRecord>> {
        if let Some(k) = kind.as_deref() {
            if k != "api" && k != "personal" {
                return Err(invalid_argument("kind", "kind must be \"api\" or \"personal\""));
            }
        }
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        let filter = KeyFilter { user, kind, active };
        self.run(py, |k| k.list(&actor, &filter, now)).map(|v| v.into_iter().map(KeyRecord::new).collect())
    }

    #[pyo3(signature = (id, name, *, actor = None, now = None))]
    fn rename(
        &self,
        py: Python<'_>,
        id: &str,
        name: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::Rename(name.to_string()), actor, now)
    }

    #[pyo3(signature = (id, description, *, actor = None, now = None))]
    fn describe(
        &self,
        py: Python<'_>,
        id: &str,
        description: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::Describe(description.to_string()), actor, now)
    }

    #[pyo3(signature = (id, role, *, actor = None, now = None))]
    fn set_role(
        &self,
        py: Python<'_>,
        id: &str,
        role: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::SetRole(role.to_string()), actor, now)
    }

    #[pyo3(signature = (id, scopes, *, actor = None, now = None))]
    fn set_scopes(
        &self,
        py: Python<'_>,
        id: &str,
        scopes: &Bound<'_, PyAny>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let scopes = str_set(scopes, "scopes")?;
        self.change(py, id, Change::SetScopes(scopes), actor, now)
    }

    /// `"all"` (every account, including ones created later) or an iterable of account ids.
    /// Effective on the very next request.
    #[pyo3(signature = (id, accounts, *, actor = None, now = None))]
    fn set_accounts(
        &self,
        py: Python<'_>,
        id: &str,
        accounts: &Bound<'_, PyAny>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let accounts = account_scope(accounts, "accounts")?;
        self.change(py, id, Change::SetAccounts(accounts), actor, now)
    }

    #[pyo3(signature = (id, active, *, actor = None, now = None))]
    fn set_active(
        &self,
        py: Python<'_>,
        id: &str,
        active: bool,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::SetActive(active), actor, now)
    }

    #[pyo3(signature = (id, *, actor = None, now = None))]
    fn activate(
        &self,
        py: Python<'_>,
        id: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::SetActive(true), actor, now)
    }

    #[pyo3(signature = (id, *, actor = None, now = None))]
    fn deactivate(
        &self,
        py: Python<'_>,
        id: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::SetActive(false), actor, now)
    }

    /// New expiry (a datetime, Unix seconds or RFC 3339), or `None` for never.
    #[pyo3(signature = (id, expires_at, *, actor = None, now = None))]
    fn set_expiry(
        &self,
        py: Python<'_>,
        id: &str,
        expires_at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let e = expires_at.filter(|e| !e.is_none()).map(|e| timestamp_of(e, "expires_at")).transpose()?;
        self.change(py, id, Change::SetExpiry(e), actor, now)
    }

    #[pyo3(signature = (id, max_concurrent, *, actor = None, now = None))]
    fn set_max_concurrent(
        &self,
        py: Python<'_>,
        id: &str,
        max_concurrent: Option<u32>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        self.change(py, id, Change::SetMaxConcurrent(max_concurrent), actor, now)
    }

    /// Sets the key's rate limit: `limit` requests per `per` (`"1m"` or a timedelta), `burst`
    /// more at once; `limit=None` clears it (the policy default applies). Core validates.
    #[pyo3(signature = (id, limit = None, per = None, burst = 0, *, actor = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn set_rate_limit(
        &self,
        py: Python<'_>,
        id: &str,
        limit: Option<u32>,
        per: Option<&Bound<'_, PyAny>>,
        burst: u32,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let rl = match (limit, per.filter(|p| !p.is_none())) {
            (None, _) => None,
            (Some(limit), Some(per)) => Some(keycel::budget::RateLimit { limit, per: duration(per, "per")?, burst }),
            (Some(_), None) => return Err(invalid_argument("per", "per is required with limit")),
        };
        self.change(py, id, Change::SetRateLimit(rl), actor, now)
    }

    /// Grants `remaining` credits from now (a new count), refilled to `refill_amount` every
    /// `refill_interval`; `remaining=None` makes the key unmetered.
    #[pyo3(signature = (id, remaining = None, *, refill_amount = None, refill_interval = None, actor = None, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn set_credits(
        &self,
        py: Python<'_>,
        id: &str,
        remaining: Option<u64>,
        refill_amount: Option<u64>,
        refill_interval: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let refill = match (refill_amount, refill_interval.filter(|i| !i.is_none())) {
            (None, None) => None,
            (Some(amount), Some(i)) => {
                Some(keycel::budget::Refill { amount, interval: duration(i, "refill_interval")? })
            }
            _ => return Err(invalid_argument("refill_interval", "refill_amount and refill_interval go together")),
        };
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        let r = detached(py, || self.inner.set_credits(&actor, id, remaining, refill, now))?;
        r.map(KeyRecord::new).map_err(keyring_error)
    }

    #[pyo3(signature = (id, metadata, *, actor = None, now = None))]
    fn set_metadata(
        &self,
        py: Python<'_>,
        id: &str,
        metadata: &Bound<'_, PyAny>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<KeyRecord> {
        let m = crate::convert::metadata(metadata, "metadata")?;
        self.change(py, id, Change::SetMetadata(m), actor, now)
    }

    /// New secret (shown once); the old one dies at once, or after `grace` (timedelta,
    /// seconds or "1h"). Name, role, scopes and account scope are kept.
    #[pyo3(signature = (id, *, grace = None, actor = None, now = None))]
    fn rotate(
        &self,
        py: Python<'_>,
        id: &str,
        grace: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<IssuedKey> {
        let grace = grace.filter(|g| !g.is_none()).map(|g| duration(g, "grace")).transpose()?;
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        let (record, issued) = self.run(py, |k| k.rotate(&actor, id, grace, now))?;
        IssuedKey::new(py, record, issued, &self.credentials)
    }

    /// Deletes a key for good (its id is never reused).
    #[pyo3(signature = (id, *, actor = None, now = None))]
    fn delete(
        &self,
        py: Python<'_>,
        id: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        self.run(py, |k| k.delete(&actor, id, now))
    }

    /// Adds or replaces a user: `put_user(UserRecord(...))` or `put_user("u1", roles=[...],
    /// accounts="all")`.
    #[pyo3(signature = (user, *, roles = None, accounts = None, actor = None, now = None))]
    fn put_user(
        &self,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        roles: Option<&Bound<'_, PyAny>>,
        accounts: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<UserRecord> {
        let record = if let Ok(u) = user.cast::<UserRecord>() {
            if roles.is_some() || accounts.is_some() {
                return Err(invalid_argument("roles", "pass roles/accounts either in the UserRecord or as arguments"));
            }
            u.get().inner.clone()
        } else {
            let id: String =
                user.extract().map_err(|_| invalid_argument("user", "user must be a UserRecord or an id"))?;
            let roles = roles.map(|r| str_set(r, "roles")).transpose()?.unwrap_or_default();
            let accounts = accounts
                .filter(|a| !a.is_none())
                .map(|a| account_scope(a, "accounts"))
                .transpose()?
                .unwrap_or(keycel::AccountScope::All);
            keycel::UserRecord::new(&id, roles, accounts).map_err(|e| crate::errors::record_error(&e))?
        };
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        self.run(py, |k| k.put_user(&actor, record, now)).map(|inner| UserRecord { inner })
    }

    fn get_user(&self, py: Python<'_>, id: &str) -> PyResult<Option<UserRecord>> {
        self.run(py, |k| k.get_user(id)).map(|u| u.map(|inner| UserRecord { inner }))
    }

    fn list_users(&self, py: Python<'_>) -> PyResult<Vec<UserRecord>> {
        let store = self.store.store.clone();
        detached(py, move || store.list_users())?
            .map(|v| v.into_iter().map(|inner| UserRecord { inner }).collect())
            .map_err(|e| store_error(&e))
    }

    /// Removes a user and all their personal tokens; returns how many tokens went.
    #[pyo3(signature = (id, *, actor = None, now = None))]
    fn remove_user(
        &self,
        py: Python<'_>,
        id: &str,
        actor: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let actor = self.actor(py, actor)?;
        let now = timestamp(now, "now")?;
        self.run(py, |k| k.remove_user(&actor, id, now))
    }

    fn __repr__(&self) -> String {
        format!("Keyring(prefix={:?}, operator={:?})", self.inner.format().prefix(), self.operator)
    }
}
