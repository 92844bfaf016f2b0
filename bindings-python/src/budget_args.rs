//! `rate_limit=` and `credits=` of `Keyring.create`: Python values converted to the JSON
//! shape core's `budget::spec` parses (the management API's `POST /keys` fields), so the
//! checks, shapes and messages are core's (`tests/vectors/forms/budgets.json`). Durations
//! (`per`, `refill.interval`) may also be a timedelta or seconds, as `set_rate_limit` /
//! `set_credits` take them; strings go to core as they are.

use crate::convert::duration;
use crate::errors::{invalid_argument, record_error};
use keycel::budget::spec::{self, SpecError};
use keycel::budget::{CreditGrant, RateLimit};
use keycel::record::RecordError;
use keycel::time::Timestamp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
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
    if v.is_instance_of::<PyFloat>() {
        // Not whole: core names the field.
        return Ok(serde_json::Number::from_f64(v.extract()?).map_or(Value::Null, Value::Number));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        // Not an object: core names the field.
        let items: Vec<Bound<'_, PyAny>> = v.extract()?;
        return items.iter().map(|i| to_json(i, name, durations)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    let Ok(m) = v.cast::<PyMapping>() else {
        return Err(invalid_argument(name, format!("{name} must be a dict")));
    };
    let mut out = Map::new();
    for item in m.items()?.iter() {
        let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let k: String = k.extract().map_err(|_| invalid_argument(name, format!("{name} keys must be strings")))?;
        let field = format!("{name}.{k}");
        let val = if durations.contains(&k.as_str()) && !val.is_none() && !val.is_instance_of::<PyString>() {
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
    spec::credits("credits", &to_json(v, "credits", &["interval"])?, now).map_err(spec_error)
}
