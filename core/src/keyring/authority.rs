//! Effective authority: what a key can actually do right now, after role expansion, its
//! explicit scopes and, for a personal token, its user's current roles and data access.
//!
//! One computation serves `explain` (what hosts and the CLI show) and the delegation rule
//! (what a key acting through management may hand out), so the two can never disagree.

use crate::budget::{CreditGrant, RateLimit};
use crate::policy::scopes;
use crate::record::{AccountScope, KeyKind, KeyRecord, RecordError, UserRecord};
use crate::time::{Duration, Timestamp};
use serde::Serialize;

/// What a key can actually do right now, after role expansion and its user's caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authority {
    /// The key's client id.
    pub key_id: String,
    /// `"api"` or `"personal"`.
    pub kind: &'static str,
    /// The owning user of a personal token.
    pub user: Option<String>,
    /// The key's role.
    pub role: String,
    /// Effective scope patterns, sorted, deduplicated: role and explicit patterns, for a
    /// personal token intersected with what its user's current roles grant.
    pub scopes: Vec<String>,
    /// Effective accounts: the key's account scope, for a personal token intersected with
    /// its user's data access.
    pub accounts: AccountScope,
    /// The instant after which authentication refuses the key (its expiry plus the engine's
    /// leeway); `None`: never.
    pub expires_at: Option<Timestamp>,
    /// In-flight request limit (the record's, else the policy default).
    pub max_concurrent: u32,
    /// Rate limit (the record's, else the policy's `[defaults.rate_limit]`); `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Usage credits as granted (the record's); `None`: unmetered.
    pub credits: Option<CreditGrant>,
    /// Usable now: active and not past `expires_at`.
    pub active: bool,
}

/// Policy-wide inputs to [`Authority::compute`].
pub struct Inputs<'p> {
    /// The scope patterns a role grants (empty for an unknown role).
    pub role_scopes: &'p dyn Fn(&str) -> &'p [String],
    /// Grace after expiry that authentication allows.
    pub leeway: Duration,
    /// Limit for keys that set none.
    pub default_max_concurrent: u32,
    /// Rate limit for keys that set none.
    pub default_rate_limit: Option<RateLimit>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("leeway", &self.leeway)
            .field("default_max_concurrent", &self.default_max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// The authority of `key` (with its user, required for a personal token) at `now`.
    pub fn compute(
        key: &KeyRecord,
        user: Option<&UserRecord>,
        inputs: &Inputs<'_>,
        now: Timestamp,
    ) -> Result<Authority, RecordError> {
        let owner = match &key.kind {
            KeyKind::Api => None,
            KeyKind::Personal { user: owner } => match user {
                Some(u) if &u.id == owner => Some(u),
                _ => return Err(RecordError::new("user", format!("personal token without its user {owner:?}"))),
            },
        };
        let granted = || (inputs.role_scopes)(&key.role).iter().chain(key.scopes.iter()).map(String::as_str);
        let mut scopes: Vec<String> = match owner {
            None => granted().map(str::to_string).collect(),
            Some(u) => {
                let caps: Vec<&str> =
                    u.roles.iter().flat_map(|r| (inputs.role_scopes)(r).iter().map(String::as_str)).collect();
                granted()
                    .flat_map(|p| caps.iter().filter_map(move |c| scopes::intersect(p, c)))
                    .map(str::to_string)
                    .collect()
            }
        };
        scopes.sort_unstable();
        scopes.dedup();
        let accounts = match owner {
            None => key.accounts.clone(),
            Some(u) => key.accounts.intersect(&u.accounts),
        };
        let expires_at = key.expires_at.map(|e| e.plus(inputs.leeway));
        Ok(Authority {
            key_id: key.id.as_str().to_string(),
            kind: key.kind.as_str(),
            user: key.kind.user().map(str::to_string),
            role: key.role.clone(),
            scopes,
            accounts,
            expires_at,
            max_concurrent: key.max_concurrent.unwrap_or(inputs.default_max_concurrent),
            rate_limit: key.rate_limit.or(inputs.default_rate_limit),
            credits: key.credits,
            active: key.active && expires_at.is_none_or(|e| now <= e),
        })
    }

    /// True when the scope patterns cover `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        scopes::any_matches(self.scopes.iter().map(String::as_str), scope)
    }
}
