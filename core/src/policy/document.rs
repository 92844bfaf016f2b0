//! The policy document as written (TOML, or the same structure as JSON), before validation.

use crate::credentials::CredentialConfig;
use crate::decision::Messages;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whole document. Unknown fields anywhere are errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Document format version (1).
    #[serde(default = "one")]
    pub version: u32,
    /// Engine-wide settings.
    #[serde(default)]
    pub defaults: DefaultsDoc,
    /// Scope catalogue: every known scope with a one-line description.
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
    /// Roles and the scope patterns they grant.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Rules, evaluated forbid-first.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    /// Run limits for expressions.
    #[serde(default)]
    pub limits: LimitsDoc,
}

fn one() -> u32 {
    1
}

/// `[defaults]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsDoc {
    /// In-flight requests per key when the key sets none (Finout: 5).
    pub max_concurrent: Option<u32>,
    /// How long a renewable lease may go unrenewed before it counts as lost (`60s`).
    pub lease_ttl: Option<String>,
    /// `Retry-After` for 429.
    pub retry_after: Option<u32>,
    /// Grace after a key's expiry for clock skew (`30s`).
    pub expiry_leeway: Option<String>,
    /// Token prefix (default `kc`).
    pub token_prefix: Option<String>,
    /// argon2id preset for new hashes: `owasp` (default) or `edge`.
    pub hash: Option<String>,
    /// Failed-authentication budgets (`[defaults.throttle]`).
    #[serde(default)]
    pub throttle: Option<ThrottleDoc>,
    /// Client-facing texts.
    #[serde(default)]
    pub messages: Option<Messages>,
    /// Header names for the client-id/secret pair.
    #[serde(default)]
    pub credentials: Option<CredentialConfig>,
    /// Most personal tokens one user may hold (default 50); creating one more is refused.
    #[serde(default)]
    pub max_personal_tokens: Option<usize>,
    /// Rate limit for keys that set none (`[defaults.rate_limit]`, e.g.
    /// `{ limit = 100, per = "1m", burst = 20 }`); none unless set.
    #[serde(default)]
    pub rate_limit: Option<crate::budget::RateLimit>,
}

/// `[defaults.throttle]`: failures allowed per client address and per client id before
/// answering 429 `too_many_failures` without hashing (0 turns a budget off).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDoc {
    /// Failures per client address per window (default 20).
    pub per_ip: Option<u32>,
    /// Failures per client id per window (default 10).
    pub per_client_id: Option<u32>,
    /// The window (default `60s`).
    pub window: Option<String>,
    /// Most addresses and most client ids tracked, each (default 10000; oldest out).
    pub max_tracked: Option<usize>,
}

/// `[[rules]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Unique id, reported in decisions.
    pub id: String,
    /// `allow` or `forbid`.
    pub effect: String,
    /// Action patterns the rule covers (`api.*`, `*`).
    pub actions: Vec<String>,
    /// CEL condition (default `true`).
    #[serde(default)]
    pub when: Option<String>,
    /// Why the rule exists.
    #[serde(default)]
    pub description: String,
    /// Error code for a forbid (default `forbidden`).
    #[serde(default)]
    pub code: Option<String>,
}

/// `[limits]`: bounds checked when the policy loads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsDoc {
    /// Longest expression source, in bytes.
    pub max_expression_bytes: usize,
    /// Deepest bracket nesting in an expression's source.
    pub max_nesting: usize,
    /// Deepest expression tree after parsing.
    pub max_depth: usize,
    /// Most nested comprehensions (`map`, `all`, ...) in one expression.
    pub max_comprehension_nesting: usize,
    /// Most rules.
    pub max_rules: usize,
}

impl Default for LimitsDoc {
    fn default() -> Self {
        LimitsDoc {
            max_expression_bytes: 4096,
            max_nesting: 24,
            // Evaluation recurses once per level: ~2 KB of stack each in release builds,
            // ~35 KB in debug builds, so 32 levels stay inside a 2 MiB thread stack either way.
            max_depth: 32,
            max_comprehension_nesting: 2,
            max_rules: 1000,
        }
    }
}
