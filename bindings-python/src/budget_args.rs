//! `rate_limit=` and `credits=` of `Keyring.create`: Python values converted to the JSON
//! shape core's `budget::spec` parses (the management API's `POST /keys` fields), so the
//! checks and messages are core's. Durations (`per`, `refill.interval`) may be anything
//! `set_rate_limit` / `set_credits` accept: `"1m"`, a timedelta or seconds.

use crate::convert::duration;
use crate::errors::{invalid_argument, record_error};
use keycel::budget::spec::{self, SpecError};
use keycel::budget::{CreditGrant, RateLimit};
use keycel::record::RecordError;
use keycel::time::Timestamp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyMapping, PyString};
use serde_json::{Map, Value};

fn spec_error(e: SpecError) -> PyErr {
    record_error(&RecordError::new(e.field, e.message))
}

/// A Python value as JSON; keys named in `durations` are converted as durations.
fn to_json(v: &Bound<'_, PyAny>, name: &str, durations: &[&str]) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        // Negative or huge numbers pass as what they are; core names the field.
        return Ok(match v.extract::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(v.extract::<f64>().unwrap_or(-1.0)),
        });
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    let Ok(m) = v.cast::<PyMapping>() else {
        return Err(invalid_argument(name, format!("{name} must be a dict")));
    };
    let mut out = Map::new();
    for item in m.items()?.iter() {
        let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let k: String = k.extract().map_err(|_| invalid_argument(name, format!("{name} keys must be strings")))?;
        let field = format!("{name}.{k}");
        let val = if durations.contains(&k.as_str()) && !val.is_none() {
            Value::String(format!("{}s", duration(&val, &field)?.secs()))
        } else {
            to_json(&val, &field, durations)?
        };
        out.insert(k, val);
    }
    Ok(Value::Object(out))
}

/// `{"limit": 100, "per": "1m", "burst": 20}` (`burst` optional).
pub(crate) fn rate_limit(v: &Bound<'_, PyAny>) -> PyResult<RateLimit> {
    spec::rate_limit("rate_limit", &to_json(v, "rate_limit", &["per"])?).map_err(spec_error)
}

/// A whole number of credits, or `{"remaining": N, "refill": {"amount": A, "interval": "1d"}}`.
pub(crate) fn credits(v: &Bound<'_, PyAny>, now: Timestamp) -> PyResult<CreditGrant> {
    let json = if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        let mut m = Map::new();
        m.insert("remaining".to_string(), to_json(v, "credits", &[])?);
        Value::Object(m)
    } else {
        to_json(v, "credits", &["interval"])?
    };
    spec::credits("credits", &json, now).map_err(spec_error)
}
