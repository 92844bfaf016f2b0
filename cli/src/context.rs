//! What every command shares: the time, the acting operator, the policy and engine, the
//! hash policy, the store.

use crate::args::{Global, HashPreset};
use crate::error::CliError;
use keycel::audit::{NullAudit, StderrAudit};
use keycel::credentials::CredentialConfig;
use keycel::engine::{auth_config_for, Engine};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring};
use keycel::policy::PolicySet;
use keycel::record::KeyRecord;
use keycel::store::{KeyFilter, Store};
use keycel::time::Timestamp;
use std::sync::Arc;

pub struct Ctx {
    pub global: Global,
    pub now: Timestamp,
    pub actor: Actor,
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self, CliError> {
        let now = match &global.now {
            Some(s) => Timestamp::parse_rfc3339(s).map_err(|e| CliError::invalid(format!("--now: {e}")))?,
            None => keycel::clock::now(),
        };
        let who = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "cli".to_string());
        Ok(Ctx { global, now, actor: Actor::Operator(who) })
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// The policy: --policy, or the built-in policies/default.toml.
    pub fn policy(&self) -> Result<PolicySet, CliError> {
        Ok(match &self.global.policy {
            Some(p) => PolicySet::load(p)?,
            None => PolicySet::default_policy()?,
        })
    }

    /// The engine for the policy; `--hash` overrides the policy's hash preset.
    pub fn engine(&self) -> Result<Arc<Engine>, CliError> {
        let policy = self.policy()?;
        let mut auth = auth_config_for(&policy)?;
        if let Some(preset) = self.global.hash {
            auth.hash = hash_policy(preset)?;
        }
        Ok(Arc::new(Engine::with_config(policy, auth, None)?))
    }

    /// The existing store (never creates one: a typo in --db must not yield an empty store):
    /// a SQLite file or a `postgresql://` database.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, CliError> {
        crate::stores::open(&self.db_spec(), false)
    }

    /// `--db` as given.
    pub fn db_spec(&self) -> String {
        self.global.db.to_string_lossy().into_owned()
    }

    /// A keyring over the store, guarded by the engine (the policy's catalogue and roles).
    pub fn keyring(&self, store: Arc<dyn Store>, engine: &Arc<Engine>) -> Result<Keyring, CliError> {
        let cfg = engine.authenticator().config();
        let kr = Keyring::new(store)
            .with_format(cfg.format.clone())
            .with_hash(cfg.hash)
            .map_err(CliError::from)?
            .with_guard(engine.clone());
        Ok(if self.global.audit { kr.with_audit(Arc::new(StderrAudit)) } else { kr.with_audit(Arc::new(NullAudit)) })
    }
}

/// The header names a policy's engine reads credentials from.
pub fn credential_headers(engine: &Engine) -> CredentialConfig {
    engine.authenticator().config().credentials.clone()
}

pub fn hash_policy(preset: HashPreset) -> Result<HashPolicy, CliError> {
    let params = match preset {
        HashPreset::Owasp => HashParams::OWASP,
        HashPreset::Edge => HashParams::EDGE,
    };
    HashPolicy::with_params(params).map_err(|e| CliError::invalid(format!("--hash: {e}")))
}

/// Finds a key by client id, or by name when exactly one key has it.
pub fn resolve_key(store: &dyn Store, arg: &str) -> Result<KeyRecord, CliError> {
    if let Some(r) = store.get_key(arg)? {
        return Ok(r);
    }
    let mut named: Vec<KeyRecord> =
        store.list_keys(&KeyFilter::default())?.into_iter().filter(|r| r.name == arg).collect();
    match named.len() {
        0 => Err(CliError::not_found(format!("no key with client id or name {arg:?}"))),
        1 => named.pop().ok_or_else(|| CliError::not_found(arg.to_string())),
        n => Err(CliError::invalid(format!("{n} keys are named {arg:?}; use the client id"))),
    }
}
