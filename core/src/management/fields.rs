//! Request bodies and query parameters, declared once as data: the parser checks a body
//! against its [`Field`] list (unknown fields refused by name, types and required fields
//! checked), and the OpenAPI document is generated from the same lists.

use super::answer::{code, ApiError};
use crate::budget::{CreditGrant, RateLimit};
use crate::record::AccountScope;
use crate::time::{Duration, Timestamp};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Largest request body accepted (a key with 10 000 accounts fits).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// An integer in `min..=max`.
    Int {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// An array of strings (a set).
    Strings,
    /// `"all"` or an array of account ids.
    Accounts,
    /// An RFC 3339 instant.
    Time,
    /// A duration: `30s`, `15m`, `12h`, `90d`.
    Duration,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An object of string values.
    StringMap,
    /// `{"limit", "per", "burst"?}`.
    RateLimit,
    /// `{"remaining", "refill"?: {"amount", "interval"} | null}`.
    Credits,
}

/// One body field or query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Must be present.
    pub required: bool,
    /// May be `null` (clears the value).
    pub nullable: bool,
    /// What it means (the OpenAPI description).
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { name, ty, required: false, nullable: false, doc }
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { name, ty, required: true, nullable: false, doc }
}

const fn nullable(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { name, ty, required: false, nullable: true, doc }
}

const MAX_CONCURRENT: Ty = Ty::Int { min: 1, max: crate::record::limits::MAX_CONCURRENT as u64 };

/// `POST /keys`.
pub const CREATE_KEY: &[Field] = &[
    req("name", Ty::Str, "Human name."),
    f("description", Ty::Str, "Free text."),
    f("kind", Ty::OneOf(&["api", "personal"]), "`api` (default) or `personal`."),
    f("user", Ty::Str, "A personal token's user (default: the acting personal token's own user)."),
    req("role", Ty::Str, "A role the policy defines."),
    f("scopes", Ty::Strings, "Scopes on top of the role."),
    f("accounts", Ty::Accounts, "`all` (default, including future accounts) or a list of account ids."),
    f("expires_in", Ty::Duration, "Lifetime from now (`90d`); or give `expires_at`."),
    f("expires_at", Ty::Time, "Expiry instant; or give `expires_in`."),
    f("max_concurrent", MAX_CONCURRENT, "Per-key in-flight limit (default: the policy's)."),
    f("metadata", Ty::StringMap, "Host metadata (keys `keycel.*` are reserved)."),
    f("active", Ty::Bool, "Start active (default true)."),
    f("rate_limit", Ty::RateLimit, "Rate limit (default: the policy's, else unlimited)."),
    f("credits", Ty::Credits, "Usage credits granted from now (default: unmetered)."),
];

/// `PATCH /keys/{id}`. A new record field joins here (one entry) and in `keys::changes`.
pub const UPDATE_KEY: &[Field] = &[
    f("name", Ty::Str, "New name."),
    f("description", Ty::Str, "New description."),
    f("role", Ty::Str, "New role."),
    f("scopes", Ty::Strings, "Replaces the explicit scopes."),
    f("accounts", Ty::Accounts, "Replaces the account scope (effective on the next request)."),
    nullable("expires_at", Ty::Time, "New expiry; `null`: never."),
    nullable("max_concurrent", MAX_CONCURRENT, "New limit; `null`: the policy default."),
    f("active", Ty::Bool, "Activate or deactivate."),
    nullable("rate_limit", Ty::RateLimit, "New rate limit; `null`: the policy default."),
    nullable("credits", Ty::Credits, "A new credit grant counted from now; `null`: unmetered."),
];

/// `POST /keys/{id}/rotate`.
pub const ROTATE_KEY: &[Field] =
    &[f("grace", Ty::Duration, "How long the old secret keeps working (default: it dies at once).")];

/// `PUT /users/{id}`.
pub const PUT_USER: &[Field] = &[
    req("roles", Ty::Strings, "The user's roles (cap their personal tokens)."),
    f("accounts", Ty::Accounts, "The user's data access (default `all`)."),
];

/// `GET /keys` query parameters.
pub const LIST_KEYS: &[Field] = &[
    f("kind", Ty::OneOf(&["api", "personal"]), "Only this kind."),
    f("user", Ty::Str, "Only personal tokens of this user."),
    f("role", Ty::Str, "Only keys with this role."),
    f("active", Ty::Bool, "Only active (`true`) or inactive (`false`) keys."),
    f("account", Ty::Str, "Only keys that reach this account."),
    f("limit", Ty::Int { min: 1, max: MAX_LIMIT as u64 }, "Page size (default 50)."),
    f("cursor", Ty::Str, "`next_cursor` of the previous page."),
];

/// `GET /users` query parameters.
pub const LIST_USERS: &[Field] = &[
    f("limit", Ty::Int { min: 1, max: MAX_LIMIT as u64 }, "Page size (default 50)."),
    f("cursor", Ty::Str, "`next_cursor` of the previous page."),
];

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 500;

/// A body checked against its field list.
#[derive(Debug, Default)]
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses and checks `bytes`; an empty body is `{}`.
    pub fn parse(bytes: &[u8], fields: &[Field]) -> Result<Body, ApiError> {
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(413, code::BODY_TOO_LARGE, format!("body larger than {MAX_BODY_BYTES} bytes")));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return check(Map::new(), fields);
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => check(map, fields),
            Ok(_) => Err(ApiError::new(400, code::INVALID_JSON, "the body must be a JSON object")),
            Err(e) => Err(ApiError::new(400, code::INVALID_JSON, format!("the body is not JSON: {e}"))),
        }
    }

    /// Query parameters (`a=1&b=x`), checked against their list; values are strings here.
    pub fn query(query: &str, fields: &[Field]) -> Result<Body, ApiError> {
        let mut map = Map::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k).ok_or_else(|| bad_param(k, "is not valid percent-encoded UTF-8"))?;
            let v = percent_decode(v).ok_or_else(|| bad_param(&k, "is not valid percent-encoded UTF-8"))?;
            let Some(field) = fields.iter().find(|f| f.name == k) else {
                return Err(bad_param(&k, "is not a parameter of this endpoint"));
            };
            let value = match field.ty {
                Ty::Bool => match v.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => return Err(bad_param(&k, "must be true or false")),
                },
                Ty::Int { .. } => match v.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => return Err(bad_param(&k, "must be a whole number")),
                },
                _ => Value::String(v),
            };
            if map.insert(k.clone(), value).is_some() {
                return Err(bad_param(&k, "is given twice"));
            }
        }
        check(map, fields).map_err(|mut e| {
            e.status = 400;
            e.code = code::INVALID_PARAMETER.to_string();
            e
        })
    }

    /// True when the field is present (even as `null`).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// True when nothing was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical JSON of the body (sorted keys), for the idempotency fingerprint.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.value(name).and_then(Value::as_str)
    }

    /// A boolean field.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.value(name).and_then(Value::as_bool)
    }

    /// An integer field (range-checked against its type already).
    pub fn u32(&self, name: &str) -> Option<u32> {
        self.value(name).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
    }

    /// A string-set field.
    pub fn strings(&self, name: &str) -> Option<BTreeSet<String>> {
        let list = self.value(name)?.as_array()?;
        Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    /// A string-map field.
    pub fn string_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let map = self.value(name)?.as_object()?;
        Some(map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
    }

    /// An account-scope field.
    pub fn accounts(&self, name: &str) -> Result<Option<AccountScope>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) if s == "all" => Ok(Some(AccountScope::All)),
            Some(Value::Array(list)) => {
                let set: BTreeSet<String> = list.iter().filter_map(Value::as_str).map(str::to_string).collect();
                if set.is_empty() {
                    return Err(ApiError::invalid(name, "give \"all\" or at least one account id"));
                }
                Ok(Some(AccountScope::Only(set)))
            }
            Some(_) => Err(ApiError::invalid(name, "must be \"all\" or a list of account ids")),
        }
    }

    /// A rate-limit field (`{"limit": 100, "per": "1m", "burst": 20}`); errors name the
    /// inner field (`rate_limit.per`). Parsed by [`crate::budget::spec`], as the bindings do.
    pub fn rate_limit(&self, name: &str) -> Result<Option<RateLimit>, ApiError> {
        self.value(name).map(|v| crate::budget::spec::rate_limit(name, v).map_err(spec_error)).transpose()
    }

    /// A credits field (`{"remaining": 1000, "refill": {"amount": 1000, "interval": "1d"}}`),
    /// granted from `now` (a new count); errors name the inner field.
    pub fn credits(&self, name: &str, now: Timestamp) -> Result<Option<CreditGrant>, ApiError> {
        self.value(name).map(|v| crate::budget::spec::credits(name, v, now).map_err(spec_error)).transpose()
    }

    /// An instant field.
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => Timestamp::parse_rfc3339(s).map(Some).map_err(|e| ApiError::invalid(name, e.0)),
        }
    }

    /// A duration field.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => Duration::parse(s).map(Some).map_err(|e| ApiError::invalid(name, e.0)),
        }
    }
}

/// An object with only the `allowed` keys (an unknown one is named `outer.key`).
fn spec_error(e: crate::budget::spec::SpecError) -> ApiError {
    if e.unknown_field {
        ApiError::field(422, code::UNKNOWN_FIELD, &e.field, e.message)
    } else {
        ApiError::invalid(&e.field, e.message)
    }
}

fn bad_param(name: &str, why: &str) -> ApiError {
    ApiError::field(400, code::INVALID_PARAMETER, name, format!("query parameter `{name}` {why}"))
}

/// Checks every field of `map` against `fields`: no unknown field, every required one, types.
fn check(map: Map<String, Value>, fields: &[Field]) -> Result<Body, ApiError> {
    if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
        return Err(ApiError::field(
            422,
            code::UNKNOWN_FIELD,
            unknown,
            format!("`{unknown}` is not a field of this request"),
        ));
    }
    for field in fields {
        match map.get(field.name) {
            None if field.required => {
                return Err(ApiError::invalid(field.name, format!("`{}` is required", field.name)));
            }
            None => {}
            Some(Value::Null) if field.nullable => {}
            Some(v) => type_check(field, v)?,
        }
    }
    Ok(Body(map))
}

fn type_check(field: &Field, v: &Value) -> Result<(), ApiError> {
    let ok = match field.ty {
        Ty::Str | Ty::Time | Ty::Duration => v.is_string(),
        Ty::Bool => v.is_boolean(),
        Ty::Int { min, max } => v.as_u64().is_some_and(|n| (min..=max).contains(&n)),
        Ty::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::Accounts => v.as_str() == Some("all") || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::OneOf(options) => v.as_str().is_some_and(|s| options.contains(&s)),
        Ty::StringMap => v.as_object().is_some_and(|m| m.values().all(Value::is_string)),
        Ty::RateLimit | Ty::Credits => v.is_object(),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(field.name, format!("`{}` must be {}", field.name, describe(field.ty))))
    }
}

/// The type in words, for error messages.
pub fn describe(ty: Ty) -> String {
    match ty {
        Ty::Str => "a string".into(),
        Ty::Bool => "true or false".into(),
        Ty::Int { min, max } => format!("a whole number from {min} to {max}"),
        Ty::Strings => "a list of strings".into(),
        Ty::Accounts => "\"all\" or a list of account ids".into(),
        Ty::Time => "an RFC 3339 instant".into(),
        Ty::Duration => "a duration such as \"30s\", \"12h\" or \"90d\"".into(),
        Ty::OneOf(options) => format!("one of {}", options.join(", ")),
        Ty::StringMap => "an object of strings".into(),
        Ty::RateLimit => "an object {\"limit\", \"per\", \"burst\"}".into(),
        Ty::Credits => "an object {\"remaining\", \"refill\"}".into(),
    }
}

/// Decodes `%XX` and `+` (space); `None` for broken escapes or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn unknown_fields_are_named() {
        let e = Body::parse(br#"{"name":"x","role":"r","secret_hash":"h"}"#, CREATE_KEY).unwrap_err();
        assert_eq!((e.status, e.code.as_str(), e.field.as_deref()), (422, "unknown_field", Some("secret_hash")));
    }

    #[test]
    fn types_required_and_null_are_checked() {
        let e = Body::parse(br#"{"name":"x"}"#, CREATE_KEY).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("role"));
        let e = Body::parse(br#"{"name":"x","role":"r","max_concurrent":0}"#, CREATE_KEY).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("max_concurrent"));
        let e = Body::parse(br#"{"name":null,"role":"r"}"#, CREATE_KEY).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert!(Body::parse(br#"{"expires_at":null}"#, UPDATE_KEY).unwrap().has("expires_at"));
        let e = Body::parse(b"[1]", UPDATE_KEY).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "invalid_json"));
        let e = Body::parse(&vec![b' '; MAX_BODY_BYTES + 1], UPDATE_KEY).unwrap_err();
        assert_eq!(e.status, 413);
    }

    #[test]
    fn queries_decode_and_check() {
        let q = Body::query("kind=api&active=false&user=a%40b+c&limit=3", LIST_KEYS).unwrap();
        assert_eq!(
            (q.str("kind"), q.bool("active"), q.str("user"), q.u32("limit")),
            (Some("api"), Some(false), Some("a@b c"), Some(3))
        );
        for bad in ["limit=0", "limit=x", "active=yes", "kind=robot", "nope=1", "limit=1&limit=2", "user=%zz"] {
            let e = Body::query(bad, LIST_KEYS).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_parameter"), "{bad}");
            assert!(e.field.is_some(), "{bad}");
        }
    }
}
