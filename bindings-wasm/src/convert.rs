//! JS value <-> Rust value conversions, each with a typed error for bad input.

use crate::error::{codes, Error};
use js_sys::{Object, Reflect, JSON};
use keycel::{Duration, Timestamp};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

/// A plain object from (name, value) pairs.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        // Defining a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

/// JSON text of a value: a string is taken as JSON text, anything else goes through
/// `JSON.stringify` (so `Date`s become RFC 3339 strings and handles use their `toJSON`).
/// `undefined` and `null` give `None`.
pub(crate) fn json_text(value: &JsValue, what: &str) -> Result<Option<String>, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if let Some(s) = value.as_string() {
        return Ok(Some(s));
    }
    if !value.is_object() {
        return Err(Error::invalid_argument(format!("{what} must be an object or a JSON string")));
    }
    let text =
        JSON::stringify(value).map_err(|_| Error::invalid_argument(format!("{what} cannot be serialized to JSON")))?;
    text.as_string().map(Some).ok_or_else(|| Error::invalid_argument(format!("{what} cannot be serialized to JSON")))
}

/// Deserializes an optional object argument (`undefined`/`null` give `None`).
pub(crate) fn from_js<T: DeserializeOwned>(value: &JsValue, what: &str) -> Result<Option<T>, Error> {
    match json_text(value, what)? {
        None => Ok(None),
        Some(text) => {
            serde_json::from_str(&text).map(Some).map_err(|e| Error::invalid_argument(format!("{what}: {e}")))
        }
    }
}

/// A serializable Rust value as a plain JS value.
pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> JsValue {
    match serde_json::to_string(value) {
        Ok(text) => JSON::parse(&text).unwrap_or(JsValue::NULL),
        Err(_) => JsValue::NULL,
    }
}

/// Largest |milliseconds| accepted for `now` (beyond year 9999 anyway).
const MAX_MILLIS: f64 = 253_402_300_799_000.0;

/// `now` from `Date.now()` milliseconds, a `Date`, or an RFC 3339 string.
pub(crate) fn timestamp(value: &JsValue, what: &str) -> Result<Timestamp, Error> {
    let millis = if let Some(n) = value.as_f64() {
        n
    } else if let Some(d) = value.dyn_ref::<js_sys::Date>() {
        d.get_time()
    } else if let Some(s) = value.as_string() {
        return Timestamp::parse_rfc3339(&s).map_err(|e| Error::new(codes::INVALID_TIME, format!("{what}: {e}")));
    } else {
        return Err(Error::new(
            codes::INVALID_TIME,
            format!("{what} must be Unix milliseconds (Date.now()), a Date or an RFC 3339 string"),
        ));
    };
    if !millis.is_finite() || millis.abs() > MAX_MILLIS {
        return Err(Error::new(codes::INVALID_TIME, format!("{what} is not a time within years 0000-9999")));
    }
    // Truncation is intended: the core counts whole seconds; the range was checked above.
    #[allow(clippy::cast_possible_truncation)]
    let secs = (millis / 1000.0).floor() as i64;
    Timestamp::from_unix(secs)
        .ok_or_else(|| Error::new(codes::INVALID_TIME, format!("{what} is not a time within years 0000-9999")))
}

/// Milliseconds since the epoch, for JS.
pub(crate) fn millis(t: Timestamp) -> f64 {
    t.unix() as f64 * 1000.0
}

/// A span given as `"90d"`-style text or whole seconds.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Span {
    Seconds(u64),
    Text(String),
}

impl Span {
    pub(crate) fn duration(&self, what: &str) -> Result<Duration, Error> {
        match self {
            Span::Seconds(s) => i64::try_from(*s).ok().and_then(Duration::from_secs_checked).ok_or_else(|| {
                Error::invalid_argument(format!("{what} is too long (at most {} s)", Duration::MAX_SECS))
            }),
            Span::Text(t) => Duration::parse(t).map_err(|e| Error::invalid_argument(format!("{what}: {e}"))),
        }
    }
}
