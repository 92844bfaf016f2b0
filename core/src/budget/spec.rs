//! The input shapes of a budget, parsed once for every way a user sets one: the management
//! API's `rate_limit` / `credits` fields, the JS keyring's `rateLimit` / `credits` options and
//! Python's `rate_limit=` / `credits=` keywords (the bindings only convert their values to
//! JSON). Errors name the inner field (`rate_limit.per`, `credits.refill.amount`), so a user
//! sees the same message whichever door they came through.

use super::{CreditGrant, RateLimit, Refill};
use crate::time::{Duration, Timestamp};
use alloc::format;
use alloc::string::{String, ToString};
use serde_json::{Map, Value};

/// A budget value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The field (`rate_limit.limit`, `credits.refill`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// True when `field` is not a field of the shape at all (the management API answers
    /// `unknown_field` for it).
    pub unknown_field: bool,
}

impl SpecError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        SpecError { field: field.to_string(), message: message.into(), unknown_field: false }
    }
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn strict_object<'v>(name: &str, v: &'v Value, allowed: &[&str]) -> Result<&'v Map<String, Value>, SpecError> {
    let o = v.as_object().ok_or_else(|| SpecError::invalid(name, format!("`{name}` must be an object")))?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        let field = format!("{name}.{k}");
        let message = format!("`{field}` is not a field of this request");
        return Err(SpecError { field, message, unknown_field: true });
    }
    Ok(o)
}

fn required<'v>(name: &str, o: &'v Map<String, Value>, key: &str) -> Result<&'v Value, SpecError> {
    o.get(key).ok_or_else(|| SpecError::invalid(&format!("{name}.{key}"), "is required"))
}

fn whole(name: &str, key: &str, v: &Value) -> Result<u64, SpecError> {
    v.as_u64().ok_or_else(|| SpecError::invalid(&format!("{name}.{key}"), "must be a whole number"))
}

fn duration(name: &str, key: &str, v: &Value) -> Result<Duration, SpecError> {
    let field = format!("{name}.{key}");
    let s = v.as_str().ok_or_else(|| SpecError::invalid(&field, "must be a string"))?;
    Duration::parse(s).map_err(|e| SpecError::invalid(&field, e.0))
}

/// `{"limit": 100, "per": "1m", "burst": 20}` (`burst` optional, default 0), checked by
/// [`RateLimit::new`]. `name` is the field's name in errors (`rate_limit`).
pub fn rate_limit(name: &str, v: &Value) -> Result<RateLimit, SpecError> {
    let o = strict_object(name, v, &["limit", "per", "burst"])?;
    let limit = whole(name, "limit", required(name, o, "limit")?)?;
    let per = duration(name, "per", required(name, o, "per")?)?;
    let burst = o.get("burst").map(|b| whole(name, "burst", b)).transpose()?.unwrap_or(0);
    let small = |n: u64, f: &str| u32::try_from(n).map_err(|_| SpecError::invalid(&format!("{name}.{f}"), "too large"));
    RateLimit::new(small(limit, "limit")?, per, small(burst, "burst")?)
        .map_err(|e| SpecError::invalid(&e.field, e.message))
}

/// `{"remaining": 1000, "refill": {"amount": 1000, "interval": "1d"} | null}`, or a bare
/// whole number (the count alone, no refill: `credits = 1000`), granted at `now` (a new
/// count), checked by [`CreditGrant::validate`].
pub fn credits(name: &str, v: &Value, now: Timestamp) -> Result<CreditGrant, SpecError> {
    if v.is_number() {
        return grant(CreditGrant { remaining: whole(name, "remaining", v)?, refill: None, set_at: now });
    }
    if !v.is_object() {
        return Err(SpecError::invalid(name, format!("`{name}` must be an object or a whole number")));
    }
    let o = strict_object(name, v, &["remaining", "refill"])?;
    let remaining = whole(name, "remaining", required(name, o, "remaining")?)?;
    let refill = match o.get("refill") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let field = format!("{name}.refill");
            let r = strict_object(&field, r, &["amount", "interval"])?;
            let amount = whole(&field, "amount", required(&field, r, "amount")?)?;
            let interval = duration(&field, "interval", required(&field, r, "interval")?)?;
            Some(Refill { amount, interval })
        }
    };
    grant(CreditGrant { remaining, refill, set_at: now })
}

fn grant(g: CreditGrant) -> Result<CreditGrant, SpecError> {
    g.validate().map_err(|e| SpecError::invalid(&e.field, e.message))?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(r: Result<impl core::fmt::Debug, SpecError>) -> (String, bool) {
        let e = r.unwrap_err();
        (e.field, e.unknown_field)
    }

    #[test]
    fn rate_limit_shapes_and_field_named_errors() {
        let rl = rate_limit("rate_limit", &json!({"limit": 100, "per": "1m"})).unwrap();
        assert_eq!(rl, RateLimit::new(100, Duration::from_secs(60), 0).unwrap());
        assert_eq!(err(rate_limit("rate_limit", &json!({"limit": 1}))), ("rate_limit.per".into(), false));
        assert_eq!(
            err(rate_limit("rate_limit", &json!({"limit": 0, "per": "1m"}))),
            ("rate_limit.limit".into(), false)
        );
        assert_eq!(
            err(rate_limit("rate_limit", &json!({"limit": 1, "per": "1m", "x": 1}))),
            ("rate_limit.x".into(), true)
        );
        assert_eq!(
            err(rate_limit("rate_limit", &json!({"limit": 5_000_000_000u64, "per": "1m"}))),
            ("rate_limit.limit".into(), false)
        );
        assert_eq!(err(rate_limit("rate_limit", &json!(5))), ("rate_limit".into(), false));
    }

    #[test]
    fn credits_shapes_and_field_named_errors() {
        let now = Timestamp::from_unix(1000).unwrap();
        let g = credits("credits", &json!({"remaining": 7, "refill": {"amount": 2, "interval": "1h"}}), now).unwrap();
        assert_eq!(g.refill, Some(Refill { amount: 2, interval: Duration::from_secs(3600) }));
        assert_eq!(g.set_at, now);
        assert_eq!(credits("credits", &json!({"remaining": 7, "refill": null}), now).unwrap().refill, None);
        let bad = json!({"remaining": 7, "refill": {"amount": 0, "interval": "1h"}});
        assert_eq!(err(credits("credits", &bad, now)), ("credits.refill.amount".into(), false));
        let bad = json!({"remaining": 7, "refill": {"amount": 1}});
        assert_eq!(err(credits("credits", &bad, now)), ("credits.refill.interval".into(), false));
        assert_eq!(err(credits("credits", &json!({"remaining": -1}), now)), ("credits.remaining".into(), false));
        assert_eq!(err(credits("credits", &json!({"left": 1}), now)), ("credits.left".into(), true));
        assert_eq!(
            credits("credits", &json!(1000), now).unwrap(),
            CreditGrant { remaining: 1000, refill: None, set_at: now }
        );
        assert_eq!(err(credits("credits", &json!(-1), now)), ("credits.remaining".into(), false));
        assert_eq!(err(credits("credits", &json!("lots"), now)), ("credits".into(), false));
    }
}
