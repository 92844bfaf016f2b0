//! The engine as the keyring's [`ManagementGuard`], and what a key can do (`authority`,
//! `explain`, `roles`).
//!
//! A key acting through management is held to the delegation rule
//! ([`crate::keyring::delegation`]) before any policy rule runs: the record as it will be
//! after the change never exceeds the acting key, on any dimension. Then the policy decides
//! the action like any request, seeing the target's resulting record as
//! `request.attributes.target_*`, so operators can add their own limits.

use super::Engine;
use crate::decision::{codes, Decision};
use crate::keyring::authority::{Authority, Inputs};
use crate::keyring::{delegation, Actor, ManagementGuard, Target};
use crate::policy::scopes;
use crate::record::{AccountScope, KeyRecord, RecordError, UserRecord};
use crate::request::Request;
use crate::time::{Duration, Timestamp};
use serde_json::Value;

impl Engine {
    /// What `key` can actually do at `now`: role expansion, explicit scopes, its user's caps
    /// (required for a personal token), effective accounts, deadline and limits. The same
    /// computation the delegation rule compares.
    pub fn authority(
        &self,
        key: &KeyRecord,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> Result<Authority, RecordError> {
        let role_scopes = |r: &str| self.policy.role_scopes(r);
        let inputs = Inputs {
            role_scopes: &role_scopes,
            leeway: self.auth.config().expiry_leeway,
            default_max_concurrent: self.default_max_concurrent,
            default_rate_limit: self.default_rate_limit,
        };
        Authority::compute(key, user, &inputs, now)
    }

    /// `keycel key explain`: the key's effective authority, for hosts and the CLI.
    pub fn explain(
        &self,
        key: &KeyRecord,
        user: Option<&UserRecord>,
        now: Timestamp,
    ) -> Result<Authority, RecordError> {
        self.authority(key, user, now)
    }

    /// `keycel policy roles`: every role the policy defines and the scope patterns it grants.
    pub fn roles(&self) -> Vec<(String, Vec<String>)> {
        self.policy.roles().map(|(r, s)| (r.to_string(), s.to_vec())).collect()
    }

    /// The scope patterns `user`'s current roles grant together.
    fn user_scopes<'a>(&'a self, user: &'a UserRecord) -> impl Iterator<Item = &'a str> + Clone + 'a {
        user.roles.iter().flat_map(|r| self.policy.role_scopes(r).iter().map(String::as_str))
    }

    /// Asks the rules about `action` with the target's resulting record as attributes.
    fn management(
        &self,
        key: &KeyRecord,
        user: Option<&UserRecord>,
        action: &str,
        target: Target<'_>,
        resulting: Option<&Authority>,
        now: Timestamp,
    ) -> Decision {
        let mut req = Request::new(action);
        if let Some(t) = target.key {
            req = req
                .attribute("target_key", Value::String(t.id.as_str().to_string()))
                .attribute("target_kind", Value::String(t.kind.as_str().to_string()))
                .attribute("target_role", Value::String(t.role.clone()))
                .attribute("target_active", Value::Bool(t.active))
                .attribute("target_expires_at", t.expires_at.map_or(Value::Null, |e| Value::from(e.unix())));
            if let Some(a) = resulting {
                req = req
                    .attribute("target_scopes", Value::from(a.scopes.clone()))
                    .attribute("target_all_accounts", Value::Bool(a.accounts == AccountScope::All))
                    .attribute("target_accounts", accounts_value(&a.accounts))
                    .attribute("target_max_concurrent", Value::from(a.max_concurrent));
            }
        }
        if let Some(u) = target.user {
            req = req.attribute("target_user", Value::String(u.to_string()));
        }
        if let (None, Some(u)) = (target.key, target.owner) {
            req = req
                .attribute("target_user_roles", Value::from(u.roles.iter().cloned().collect::<Vec<_>>()))
                .attribute("target_all_accounts", Value::Bool(u.accounts == AccountScope::All))
                .attribute("target_accounts", accounts_value(&u.accounts));
        }
        self.decide_valid(key, user, &req, now)
    }

    /// The delegation rule for a key actor; `Err` is the refusal.
    fn delegation(
        &self,
        key: &KeyRecord,
        mine: &Authority,
        action: &str,
        target: Target<'_>,
        now: Timestamp,
    ) -> Result<Option<Authority>, Box<Decision>> {
        let m = self.messages();
        let refuse = |code: &str, why: String| Box::new(Decision::forbidden(m, key.id.as_str(), code, Vec::new(), why));
        if let Some(t) = target.key {
            let theirs = self
                .authority(t, target.owner, now)
                .map_err(|e| refuse(codes::FORBIDDEN, format!("target key {}: {}", t.id, e.message)))?;
            if let Some(x) = delegation::exceeds(mine, &theirs) {
                let code = if x.dimension == "scopes" { codes::INSUFFICIENT_SCOPE } else { codes::EXCEEDS_ACTOR };
                return Err(refuse(
                    code,
                    format!("{action} refused: key {} would exceed the acting key: {}", t.id, x.detail),
                ));
            }
            return Ok(Some(theirs));
        }
        if let Some(u) = target.owner {
            // A user's roles and data access cap their personal tokens: saving or removing a
            // user is held to the same rule as their tokens.
            let mine_scopes = || mine.scopes.iter().map(String::as_str);
            if let Some(p) = self.user_scopes(u).find(|p| !scopes::covered(p, mine_scopes())) {
                return Err(refuse(
                    codes::INSUFFICIENT_SCOPE,
                    format!("{action} refused: user {:?} would hold {p:?}, beyond the acting key's scopes", u.id),
                ));
            }
            if !delegation::accounts_within(&u.accounts, &mine.accounts) {
                return Err(refuse(
                    codes::EXCEEDS_ACTOR,
                    format!("{action} refused: user {:?} reaches accounts outside the acting key's", u.id),
                ));
            }
        }
        Ok(None)
    }
}

fn accounts_value(a: &AccountScope) -> Value {
    match a {
        AccountScope::All => Value::String("all".to_string()),
        AccountScope::Only(set) => Value::from(set.iter().cloned().collect::<Vec<_>>()),
    }
}

impl ManagementGuard for Engine {
    /// The operator may do anything the policy's catalogue allows. A key must be usable now,
    /// may never create, reshape or take over a key (or user) beyond its own authority, and
    /// is then decided by the rules like any request.
    fn check(&self, actor: &Actor, action: &str, target: Target<'_>, now: Timestamp) -> Decision {
        let m = self.messages();
        match actor {
            Actor::Operator(name) => Decision::allow(&format!("operator:{name}"), Vec::new(), "local operator"),
            Actor::Key { key, user } => {
                let mine = match self.authority(key, user.as_ref(), now) {
                    Ok(a) if a.active => a,
                    Ok(_) => return Decision::unauthorized(m, "acting key is inactive or expired"),
                    Err(_) => return Decision::unauthorized(m, "personal token without its user"),
                };
                let resulting = match self.delegation(key, &mine, action, target, now) {
                    Ok(r) => r,
                    Err(d) => return *d,
                };
                self.management(key, user.as_ref(), action, target, resulting.as_ref(), now)
            }
        }
    }

    /// A key may only name a role the policy defines and catalogued scopes.
    fn validate_key(&self, key: &KeyRecord) -> Result<(), RecordError> {
        if !self.policy.has_role(&key.role) {
            return Err(RecordError::new("role", format!("role {:?} is not defined by the policy", key.role)));
        }
        match key.scopes.iter().find(|s| !self.policy.is_catalogued(s)) {
            Some(s) => Err(RecordError::new("scopes", format!("scope {s:?} is not in the policy's catalogue"))),
            None => Ok(()),
        }
    }

    /// A user may only hold roles the policy defines.
    fn validate_user(&self, user: &UserRecord) -> Result<(), RecordError> {
        match user.roles.iter().find(|r| !self.policy.has_role(r)) {
            Some(r) => Err(RecordError::new("roles", format!("role {r:?} is not defined by the policy"))),
            None => Ok(()),
        }
    }

    /// A personal token may hold one of its user's roles, or any narrower defined role: one
    /// whose every scope pattern the user's current roles cover (a read-only token for an
    /// editor). Its effective scopes stay capped by the user's current roles either way.
    fn validate_personal(&self, key: &KeyRecord, user: &UserRecord) -> Result<(), RecordError> {
        if user.roles.contains(&key.role) {
            return Ok(());
        }
        let caps = self.user_scopes(user);
        match self.policy.role_scopes(&key.role).iter().find(|p| !scopes::covered(p, caps.clone())) {
            None if self.policy.has_role(&key.role) => Ok(()),
            None => Err(RecordError::new("role", format!("role {:?} is not defined by the policy", key.role))),
            Some(p) => Err(RecordError::new(
                "role",
                format!("{:?} grants {p:?}, which the user's roles do not cover", key.role),
            )),
        }
    }

    fn expiry_leeway(&self) -> Duration {
        self.auth.config().expiry_leeway
    }

    /// A target is visible to a key when its effective account scope is inside the key's.
    fn visible(&self, actor: &Actor, target: &KeyRecord, owner: Option<&UserRecord>, now: Timestamp) -> bool {
        let Actor::Key { key, user } = actor else { return true };
        let Ok(mine) = self.authority(key, user.as_ref(), now) else { return false };
        let theirs = match self.authority(target, owner, now) {
            Ok(t) => t.accounts,
            Err(_) => target.accounts.clone(),
        };
        delegation::visible(&mine, &theirs)
    }

    fn max_personal_tokens(&self) -> Option<usize> {
        Some(self.policy.document().defaults.max_personal_tokens.unwrap_or(DEFAULT_MAX_PERSONAL_TOKENS))
    }
}

/// Personal tokens one user may hold when the policy sets no `max_personal_tokens`.
pub const DEFAULT_MAX_PERSONAL_TOKENS: usize = 50;
