//! The per-request view of key, user, request and time that CEL conditions read.
//!
//! It is a `VariableResolver` over borrowed records: `key.role` is answered straight from the
//! record (the `cel` crate asks for the whole dotted name first), so a request builds only
//! the few small values its rules actually touch, never a full map per variable.

use super::functions::{ACCOUNT_QUERY, SCOPE_QUERY};
use super::scopes;
use crate::record::{AccountScope, KeyRecord, UserRecord};
use crate::request::Request;
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use std::collections::HashMap;

type Boxed<'v> = Box<dyn Val + 'v>;

/// Fields of `key` (checked at load time by `expr.rs`, served here).
pub const KEY: &[&str] = &[
    "id",
    "name",
    "description",
    "kind",
    "role",
    "user",
    "scopes",
    "accounts",
    "all_accounts",
    "active",
    "metadata",
    "created_at",
    "expires_at",
];
/// Fields of `user`.
pub const USER: &[&str] = &["id", "roles", "accounts", "all_accounts"];
/// Fields of `request`.
pub const REQUEST: &[&str] = &["action", "account", "method", "path", "ip", "attributes"];

/// The fields of a variable (`None`: it has none, e.g. `now`).
pub fn fields_of(variable: &str) -> Option<&'static [&'static str]> {
    match variable {
        "key" => Some(KEY),
        "user" => Some(USER),
        "request" => Some(REQUEST),
        _ => None,
    }
}

/// Everything one evaluation may read.
#[derive(Debug)]
pub(crate) struct Facts<'a> {
    pub key: &'a KeyRecord,
    pub user: Option<&'a UserRecord>,
    pub request: &'a Request,
    pub now: i64,
    /// Scope patterns of the key's role.
    pub role_scopes: &'a [String],
    /// For personal tokens: the patterns of every current role of the user (the cap).
    /// `None` for API tokens. `Some(empty)` when the user is missing: nothing is granted.
    pub user_scopes: Option<Vec<&'a [String]>>,
}

fn s<'v>(v: &'v str) -> Boxed<'v> {
    Box::new(CelString::from(v))
}

fn opt<'v>(v: Option<&'v str>) -> Boxed<'v> {
    match v {
        Some(v) => s(v),
        None => Box::new(CelNull),
    }
}

fn list<'v>(items: impl Iterator<Item = &'v str>) -> Boxed<'v> {
    Box::new(CelList::from(items.map(s).collect::<Vec<_>>()))
}

fn accounts_list(a: &AccountScope) -> Boxed<'_> {
    match a {
        AccountScope::All => list(std::iter::empty()),
        AccountScope::Only(set) => list(set.iter().map(String::as_str)),
    }
}

fn map<'v>(entries: Vec<(&'v str, Boxed<'v>)>) -> Boxed<'v> {
    let m: HashMap<CelMapKey<'v>, Boxed<'v>> = entries.into_iter().map(|(k, v)| (CelMapKey::from(k), v)).collect();
    Box::new(CelMap::from(m))
}

/// A JSON attribute as a CEL value (sizes are bounded by `Request::validate`).
fn json(v: &serde_json::Value) -> Boxed<'_> {
    match v {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Box::new(CelInt::from(i)),
            (None, Some(u), _) => Box::new(CelUInt::from(u)),
            (_, _, f) => Box::new(CelDouble::from(f.unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(x) => s(x),
        serde_json::Value::Array(a) => Box::new(CelList::from(a.iter().map(json).collect::<Vec<_>>())),
        serde_json::Value::Object(o) => map(o.iter().map(|(k, v)| (k.as_str(), json(v))).collect()),
    }
}

impl<'a> Facts<'a> {
    /// The key's scope patterns cover `scope`, and for personal tokens so do the user's.
    pub fn has_scope(&self, scope: &str) -> bool {
        let key = scopes::any_matches(self.role_scopes.iter().map(String::as_str), scope)
            || scopes::any_matches(self.key.scopes.iter().map(String::as_str), scope);
        key && self
            .user_scopes
            .as_ref()
            .is_none_or(|caps| caps.iter().any(|c| scopes::any_matches(c.iter().map(String::as_str), scope)))
    }

    /// The key's account scope, capped by the user's data access for personal tokens.
    pub fn in_accounts(&self, account: &str) -> bool {
        self.key.accounts.contains(account)
            && match (&self.user_scopes, self.user) {
                (None, _) => true,
                (Some(_), Some(u)) => u.accounts.contains(account),
                (Some(_), None) => false,
            }
    }

    /// Effective scope patterns (for `key.scopes`): role and explicit patterns, for personal
    /// tokens intersected with what the user's roles grant (`api.*` under a user holding
    /// `api.read` is `api.read`), exactly the scopes `has_scope` answers true for.
    pub fn effective_scopes(&self) -> Vec<&'a str> {
        let granted = self.role_scopes.iter().chain(self.key.scopes.iter()).map(String::as_str);
        let mut out: Vec<&'a str> = match &self.user_scopes {
            None => granted.collect(),
            Some(caps) => granted
                .flat_map(|p| caps.iter().flat_map(|c| c.iter()).filter_map(move |c| scopes::intersect(p, c.as_str())))
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    fn key_field(&self, field: &str) -> Option<Boxed<'a>> {
        let k = self.key;
        Some(match field {
            "id" => s(k.id.as_str()),
            "name" => s(&k.name),
            "description" => s(&k.description),
            "kind" => s(k.kind.as_str()),
            "role" => s(&k.role),
            "user" => opt(k.kind.user()),
            "scopes" => list(self.effective_scopes().into_iter()),
            "accounts" => accounts_list(&k.accounts),
            "all_accounts" => Box::new(CelBool::from(k.accounts == AccountScope::All)),
            "active" => Box::new(CelBool::from(k.active)),
            "metadata" => map(k.metadata.iter().map(|(a, b)| (a.as_str(), s(b))).collect()),
            "created_at" => Box::new(CelInt::from(k.created_at.unix())),
            "expires_at" => match k.expires_at {
                Some(t) => Box::new(CelInt::from(t.unix())),
                None => Box::new(CelNull),
            },
            _ => return None,
        })
    }

    fn user_field(&self, field: &str) -> Option<Boxed<'a>> {
        let u = self.user?;
        Some(match field {
            "id" => s(&u.id),
            "roles" => list(u.roles.iter().map(String::as_str)),
            "accounts" => accounts_list(&u.accounts),
            "all_accounts" => Box::new(CelBool::from(u.accounts == AccountScope::All)),
            _ => return None,
        })
    }

    fn request_field(&self, field: &str) -> Option<Boxed<'a>> {
        let r = self.request;
        Some(match field {
            "action" => s(&r.action),
            "account" => opt(r.account.as_deref()),
            "method" => opt(r.method.as_deref()),
            "path" => opt(r.path.as_deref()),
            "ip" => opt(r.ip.as_deref()),
            "attributes" => map(r.attributes.iter().map(|(k, v)| (k.as_str(), json(v))).collect()),
            _ => return None,
        })
    }

    fn whole(&self, fields: &[&'a str], get: impl Fn(&str) -> Option<Boxed<'a>>) -> Boxed<'a> {
        map(fields.iter().filter_map(|f| get(f).map(|v| (*f, v))).collect())
    }

    fn lookup(&self, name: &str) -> Option<Boxed<'a>> {
        if let Some(scope) = name.strip_prefix(SCOPE_QUERY) {
            return Some(Box::new(CelBool::from(self.has_scope(scope))));
        }
        if let Some(account) = name.strip_prefix(ACCOUNT_QUERY) {
            return Some(Box::new(CelBool::from(self.in_accounts(account))));
        }
        match name.split_once('.') {
            None => match name {
                "now" => Some(Box::new(CelInt::from(self.now))),
                "key" => Some(self.whole(KEY, |f| self.key_field(f))),
                "user" => Some(match self.user {
                    Some(_) => self.whole(USER, |f| self.user_field(f)),
                    None => Box::new(CelNull),
                }),
                "request" => Some(self.whole(REQUEST, |f| self.request_field(f))),
                _ => None,
            },
            Some(("key", rest)) => match rest.split_once('.') {
                Some(("metadata", m)) => self.key.metadata.get(m).map(|v| s(v)),
                Some(_) => None,
                None => self.key_field(rest),
            },
            Some(("user", rest)) if !rest.contains('.') => self.user_field(rest),
            Some(("request", rest)) => match rest.split_once('.') {
                Some(("attributes", a)) => self.request.attributes.get(a).map(json),
                Some(_) => None,
                None => self.request_field(rest),
            },
            _ => None,
        }
    }
}

impl VariableResolver for Facts<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.lookup(variable).map(CowVal::Owned)
    }
}
