//! What the caller wants to do: the action (a scope-shaped name), the account it touches,
//! and HTTP facts policies may look at.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most request attributes accepted.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest serialized attribute value.
pub const MAX_ATTRIBUTE_BYTES: usize = 4096;

/// A request to authorize.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The action, e.g. `api.read` or `admin.account.create`.
    pub action: String,
    /// The account the request touches, if any (checked against the key's account scope).
    #[serde(default)]
    pub account: Option<String>,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP path.
    #[serde(default)]
    pub path: Option<String>,
    /// Client IP address (what policies see as `request.ip`).
    #[serde(default)]
    pub ip: Option<String>,
    /// The address the failed-authentication budget is charged to: the socket peer as the
    /// integration saw it (ASGI `scope["client"]`, the TCP peer), not a header a client can
    /// forge. When unset, `ip` is used. Not visible to policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Anything else the host wants policies to see.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// What the request costs in the key's rate limit and credits (`None`: 1). Not visible
    /// to policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
}

impl Request {
    /// A request for `action`.
    pub fn new(action: &str) -> Self {
        Request { action: action.to_string(), ..Request::default() }
    }

    /// Sets the account.
    pub fn account(mut self, account: &str) -> Self {
        self.account = Some(account.to_string());
        self
    }

    /// Sets the HTTP method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Sets the path.
    pub fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }

    /// Sets the client IP.
    pub fn ip(mut self, ip: &str) -> Self {
        self.ip = Some(ip.to_string());
        self
    }

    /// Sets the address failed authentications are charged to (see [`Request::client_ip`]).
    pub fn client_ip(mut self, ip: &str) -> Self {
        self.client_ip = Some(ip.to_string());
        self
    }

    /// The address failed authentications are charged to: `client_ip`, else `ip`.
    pub fn throttle_ip(&self) -> Option<&str> {
        self.client_ip.as_deref().or(self.ip.as_deref())
    }

    /// Sets the request's cost in rate units and credits (default 1).
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = Some(cost);
        self
    }

    /// The cost admission charges (default 1).
    pub fn effective_cost(&self) -> u32 {
        self.cost.unwrap_or(1)
    }

    /// Adds an attribute.
    pub fn attribute(mut self, name: &str, value: serde_json::Value) -> Self {
        self.attributes.insert(name.to_string(), value);
        self
    }

    /// Checks the bounds that keep policy evaluation cheap: a scope-shaped action without
    /// wildcards, at most 64 attributes of at most 4 KiB each.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::record::valid_scope(&self.action) || self.action.as_bytes().contains(&b'*') {
            return Err(format!("action {:?} is not a dotted name like api.read", self.action));
        }
        if self.cost.is_some_and(|c| c > crate::budget::MAX_COST) {
            return Err(format!("cost must be 0-{}", crate::budget::MAX_COST));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(format!("at most {MAX_ATTRIBUTES} attributes"));
        }
        for (k, v) in &self.attributes {
            if !fits_json(v, MAX_ATTRIBUTE_BYTES) {
                return Err(format!("attribute {k:?} is larger than {MAX_ATTRIBUTE_BYTES} bytes"));
            }
        }
        for s in [&self.account, &self.method, &self.path, &self.ip, &self.client_ip].into_iter().flatten() {
            if s.len() > 2048 {
                return Err("request fields are limited to 2048 bytes".to_string());
            }
        }
        Ok(())
    }
}

/// True when `v` serialized as JSON takes at most `limit` bytes; stops writing at the limit
/// instead of building the whole string.
fn fits_json(v: &serde_json::Value, limit: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self.left.checked_sub(buf.len()).ok_or_else(|| std::io::Error::other("too large"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { left: limit }, v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_size_limit_is_exact() {
        let at = |n: usize| Request::new("api.read").attribute("a", serde_json::Value::String("x".repeat(n)));
        // A string serializes with two quotes around it.
        assert!(at(MAX_ATTRIBUTE_BYTES - 2).validate().is_ok());
        assert!(at(MAX_ATTRIBUTE_BYTES - 1).validate().is_err());
        assert!(Request::new("api.*").validate().is_err());
        assert!(Request::new("api..read").validate().is_err());
    }
}
