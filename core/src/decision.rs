//! The answer a host turns into an HTTP response. A decision is a value, never an error:
//! denials carry their status, code, client message, headers and an audit reason.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Client-facing texts (configurable in the policy's `[defaults.messages]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Messages {
    /// 401 when credentials are missing.
    pub missing: String,
    /// 401 for every invalid credential (one text for all reasons).
    pub unauthorized: String,
    /// 400 for ambiguous or broken requests.
    pub invalid_request: String,
    /// 403.
    pub forbidden: String,
    /// 404: the same body a host sends for a missing resource.
    pub not_found: String,
    /// 429.
    pub busy: String,
    /// 503 when the argon2 gate is saturated.
    pub overloaded: String,
    /// 429 when a client address or client id has used up its failed-authentication budget.
    pub too_many_failures: String,
    /// 429 when a key exceeded its rate limit.
    pub rate_limited: String,
    /// 429 when a key has no usage credits left for the request.
    pub usage_exceeded: String,
    /// The `realm` in `WWW-Authenticate`.
    pub realm: String,
}

impl Default for Messages {
    fn default() -> Self {
        Messages {
            missing: "Authentication required".to_string(),
            unauthorized: "Invalid username/account key".to_string(),
            invalid_request: "Invalid request".to_string(),
            forbidden: "Forbidden".to_string(),
            not_found: "Not found".to_string(),
            busy: "Too many concurrent requests for this key".to_string(),
            overloaded: "Service busy, retry shortly".to_string(),
            too_many_failures: "Too many failed authentication attempts, retry later".to_string(),
            rate_limited: "Rate limit exceeded for this key".to_string(),
            usage_exceeded: "Usage credits exhausted for this key".to_string(),
            realm: "keycel".to_string(),
        }
    }
}

/// Error codes (`code` field and RFC 6750 `error=` values).
pub mod codes {
    /// 401 invalid credentials.
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// 400 ambiguous credentials.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// 403 missing scope or forbidden by a rule.
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    /// 403 forbidden by a rule.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404.
    pub const NOT_FOUND: &str = "not_found";
    /// 429.
    pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
    /// 403 from the keyring: the user already holds the policy's `max_personal_tokens`.
    pub const TOO_MANY_PERSONAL_TOKENS: &str = "too_many_personal_tokens";
    /// 403 from the keyring: the resulting key would exceed the acting key (issue 11).
    pub const EXCEEDS_ACTOR: &str = "exceeds_actor";
    /// 503.
    pub const OVERLOADED: &str = "temporarily_unavailable";
    /// 429 failed-authentication budget used up (answered before any argon2).
    pub const TOO_MANY_FAILURES: &str = "too_many_failures";
    /// 429 the key's rate limit (issue 13).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 429 the key's usage credits are spent (issue 13).
    pub const USAGE_EXCEEDED: &str = "usage_exceeded";
}

/// Allow or deny, with everything needed to answer the client and to audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// True only when the request may proceed.
    pub allowed: bool,
    /// HTTP status: 200 when allowed, else 400/401/403/404/429/503.
    pub status: u16,
    /// Machine-readable error code, `None` when allowed or when credentials were missing.
    pub code: Option<String>,
    /// Client-facing message (never says *why* a credential failed). Borrowed for the fixed
    /// `OK` of an allowed request, so the hot path allocates nothing for it.
    pub message: Cow<'static, str>,
    /// Response headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(String, String)>,
    /// The authenticated key, when there is one.
    pub key_id: Option<String>,
    /// Rules that matched (allow rules when allowed, forbid rules when forbidden).
    pub matched_rules: Vec<String>,
    /// Internal reason for audit logs only; never send it to the client.
    pub reason: String,
}

impl Decision {
    /// Allowed.
    pub fn allow(key_id: &str, matched_rules: Vec<String>, reason: impl Into<String>) -> Self {
        Decision {
            allowed: true,
            status: 200,
            code: None,
            message: Cow::Borrowed("OK"),
            headers: Vec::new(),
            key_id: Some(key_id.to_string()),
            matched_rules,
            reason: reason.into(),
        }
    }

    /// 401 without error code: no credentials at all.
    pub fn missing(m: &Messages) -> Self {
        Self::deny(401, None, &m.missing, vec![("WWW-Authenticate".to_string(), challenge(m, None))], "no credentials")
    }

    /// 401 invalid: the one answer for every bad credential, whatever the internal reason.
    pub fn unauthorized(m: &Messages, reason: impl Into<String>) -> Self {
        Self::deny(
            401,
            Some(codes::INVALID_TOKEN),
            &m.unauthorized,
            vec![("WWW-Authenticate".to_string(), challenge(m, Some(codes::INVALID_TOKEN)))],
            reason,
        )
    }

    /// 400 invalid_request (e.g. two credential methods at once).
    pub fn invalid_request(m: &Messages, reason: impl Into<String>) -> Self {
        Self::deny(
            400,
            Some(codes::INVALID_REQUEST),
            &m.invalid_request,
            vec![("WWW-Authenticate".to_string(), challenge(m, Some(codes::INVALID_REQUEST)))],
            reason,
        )
    }

    /// 404, identical to a missing resource (use [`Decision::not_found_body`] for both).
    pub fn not_found(m: &Messages, key_id: Option<&str>, reason: impl Into<String>) -> Self {
        let mut d = Self::deny(404, Some(codes::NOT_FOUND), &m.not_found, Vec::new(), reason);
        d.key_id = key_id.map(str::to_string);
        d
    }

    /// 403 with the rules that decided it.
    pub fn forbidden(m: &Messages, key_id: &str, code: &str, rules: Vec<String>, reason: impl Into<String>) -> Self {
        let mut d = Self::deny(403, Some(code), &m.forbidden, Vec::new(), reason);
        d.key_id = Some(key_id.to_string());
        d.matched_rules = rules;
        d
    }

    /// 429 with `Retry-After`.
    pub fn busy(m: &Messages, key_id: &str, retry_after_secs: u32, limit: u32) -> Self {
        let mut d = Self::deny(
            429,
            Some(codes::TOO_MANY_REQUESTS),
            &m.busy,
            vec![("Retry-After".to_string(), retry_after_secs.to_string())],
            alloc::format!("{limit} requests already in flight for this key"),
        );
        d.key_id = Some(key_id.to_string());
        d
    }

    /// 429 `rate_limited` with `Retry-After` (whole seconds, rounded up) and the IETF
    /// `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11).
    pub fn rate_limited(
        m: &Messages,
        key_id: &str,
        policy: &crate::budget::RateLimit,
        retry_after_ms: i64,
        reset_ms: i64,
    ) -> Self {
        let status = crate::budget::RateStatus { policy: *policy, remaining: 0, reset_ms };
        let mut d = Self::deny(
            429,
            Some(codes::RATE_LIMITED),
            &m.rate_limited,
            vec![
                ("Retry-After".to_string(), crate::budget::ceil_secs(retry_after_ms, 1).to_string()),
                ("RateLimit-Policy".to_string(), policy.policy_header()),
                ("RateLimit".to_string(), status.header()),
            ],
            alloc::format!(
                "rate limit of {} per {} (burst {}) exceeded",
                policy.limit,
                crate::budget::format_duration(policy.per),
                policy.burst
            ),
        );
        d.key_id = Some(key_id.to_string());
        d
    }

    /// 429 `usage_exceeded`; `Retry-After` at the next refill when the credits have one.
    pub fn usage_exceeded(m: &Messages, key_id: &str, retry_after_secs: Option<u32>) -> Self {
        let headers = retry_after_secs.map(|s| ("Retry-After".to_string(), s.to_string())).into_iter().collect();
        let mut d = Self::deny(
            429,
            Some(codes::USAGE_EXCEEDED),
            &m.usage_exceeded,
            headers,
            "usage credits exhausted for this request's cost",
        );
        d.key_id = Some(key_id.to_string());
        d
    }

    /// 429 `too_many_failures` with `Retry-After`: the client address or client id used up
    /// its failed-authentication budget. Names no key (the id may not exist).
    pub fn too_many_failures(m: &Messages, retry_after_secs: u32, reason: impl Into<String>) -> Self {
        Self::deny(
            429,
            Some(codes::TOO_MANY_FAILURES),
            &m.too_many_failures,
            vec![("Retry-After".to_string(), retry_after_secs.to_string())],
            reason,
        )
    }

    /// 503 with `Retry-After` (argon2 gate saturated).
    pub fn overloaded(m: &Messages, reason: impl Into<String>) -> Self {
        Self::deny(
            503,
            Some(codes::OVERLOADED),
            &m.overloaded,
            vec![("Retry-After".to_string(), "1".to_string())],
            reason,
        )
    }

    fn deny(
        status: u16,
        code: Option<&str>,
        message: &str,
        headers: Vec<(String, String)>,
        reason: impl Into<String>,
    ) -> Self {
        Decision {
            allowed: false,
            status,
            code: code.map(str::to_string),
            message: Cow::Owned(message.to_string()),
            headers,
            key_id: None,
            matched_rules: Vec::new(),
            reason: reason.into(),
        }
    }

    /// The JSON body to send: `{"error":code,"message":message}` (or `{"ok":true}`).
    /// For 404 it is byte-identical to [`Decision::not_found_body`].
    pub fn body_json(&self) -> String {
        if self.allowed {
            return "{\"ok\":true}".to_string();
        }
        let v = serde_json::json!({ "error": self.code.as_deref().unwrap_or("unauthorized"), "message": self.message });
        serde_json::to_string(&v).unwrap_or_default()
    }

    /// The body a host sends for a resource that does not exist, so an out-of-scope account
    /// and a missing one cannot be told apart.
    pub fn not_found_body(m: &Messages) -> String {
        Self::not_found(m, None, "").body_json()
    }

    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn challenge(m: &Messages, error: Option<&str>) -> String {
    match error {
        None => alloc::format!("Basic realm=\"{0}\", Bearer realm=\"{0}\"", m.realm),
        Some(e) => alloc::format!("Basic realm=\"{0}\", Bearer realm=\"{0}\", error=\"{e}\"", m.realm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_missing_resource_byte_for_byte() {
        let m = Messages::default();
        let d = Decision::not_found(&m, Some("kc_x"), "account acc_9 outside key scope");
        assert_eq!(d.body_json(), Decision::not_found_body(&m));
        assert_eq!(d.body_json(), "{\"error\":\"not_found\",\"message\":\"Not found\"}");
    }

    #[test]
    fn unauthorized_has_challenge_and_fixed_text() {
        let d = Decision::unauthorized(&Messages::default(), "wrong secret");
        assert_eq!(d.status, 401);
        assert_eq!(d.message, "Invalid username/account key");
        assert!(d.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
        let missing = Decision::missing(&Messages::default());
        assert_eq!(missing.code, None);
    }
}
