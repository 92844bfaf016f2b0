//! Value conversion between Python and core types. No decisions here.

use crate::errors::invalid_argument;
use keycel::time::{Duration, Timestamp};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deepest nesting accepted in `attributes` and record dicts.
const MAX_DEPTH: usize = 32;

/// `now`: `None` (the system clock), an aware `datetime`, Unix seconds, or an RFC 3339 string.
pub(crate) fn timestamp(v: Option<&Bound<'_, PyAny>>, argument: &str) -> PyResult<Timestamp> {
    match v {
        None => Ok(keycel::clock::now()),
        Some(v) if v.is_none() => Ok(keycel::clock::now()),
        Some(v) => timestamp_of(v, argument),
    }
}

pub(crate) fn timestamp_of(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<Timestamp> {
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_cow()?;
        return Timestamp::parse_rfc3339(&s).map_err(|e| invalid_argument(argument, e.0));
    }
    if v.is_instance_of::<PyBool>() {
        return Err(invalid_argument(argument, "expected a datetime, Unix seconds or an RFC 3339 string"));
    }
    if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        let secs: f64 = v.extract()?;
        return unix(secs, argument);
    }
    let datetime = v.py().import("datetime")?.getattr("datetime")?;
    if v.is_instance(&datetime)? {
        if v.getattr("tzinfo")?.is_none() {
            return Err(invalid_argument(
                argument,
                "naive datetime: pass an aware datetime (e.g. tzinfo=timezone.utc)",
            ));
        }
        let secs: f64 = v.call_method0("timestamp")?.extract()?;
        return unix(secs, argument);
    }
    Err(invalid_argument(argument, "expected a datetime, Unix seconds or an RFC 3339 string"))
}

fn unix(secs: f64, argument: &str) -> PyResult<Timestamp> {
    if !secs.is_finite() {
        return Err(invalid_argument(argument, "not a finite time"));
    }
    // Whole seconds, like every keycel time; the range check is Timestamp's.
    #[allow(clippy::cast_possible_truncation)]
    let whole = secs.floor() as i64;
    Timestamp::from_unix(whole).ok_or_else(|| invalid_argument(argument, "time out of range (years 1970-9999)"))
}

/// A `datetime` in UTC.
pub(crate) fn datetime(py: Python<'_>, t: Timestamp) -> PyResult<Py<PyAny>> {
    let m = py.import("datetime")?;
    let utc = m.getattr("timezone")?.getattr("utc")?;
    Ok(m.getattr("datetime")?.call_method1("fromtimestamp", (t.unix(), utc))?.unbind())
}

pub(crate) fn opt_datetime(py: Python<'_>, t: Option<Timestamp>) -> PyResult<Option<Py<PyAny>>> {
    t.map(|t| datetime(py, t)).transpose()
}

/// A duration: `timedelta`, whole seconds, or `"90d"`/`"12h"`/`"30m"`/`"45s"`/`"2w"`.
pub(crate) fn duration(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<Duration> {
    if let Ok(s) = v.cast::<PyString>() {
        return Duration::parse(&s.to_cow()?).map_err(|e| invalid_argument(argument, e.0));
    }
    if v.is_instance_of::<PyBool>() {
        return Err(invalid_argument(argument, "expected a timedelta, seconds or a string like \"90d\""));
    }
    let secs: f64 = if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        v.extract()?
    } else if v.hasattr("total_seconds")? {
        v.call_method0("total_seconds")?.extract()?
    } else {
        return Err(invalid_argument(argument, "expected a timedelta, seconds or a string like \"90d\""));
    };
    // Fractions round up to whole seconds; core owns the range.
    #[allow(clippy::cast_possible_truncation)]
    let whole = if secs.is_finite() && secs >= 0.0 && secs <= Duration::MAX_SECS as f64 {
        Some(secs.ceil() as i64)
    } else {
        None
    };
    whole.and_then(Duration::from_secs_checked).ok_or_else(|| {
        invalid_argument(
            argument,
            format!("duration must be between 0 and {} seconds (about 3,170 years)", Duration::MAX_SECS),
        )
    })
}

fn header_text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        // HTTP header bytes are Latin-1 (ASGI raw headers).
        return Ok(b.as_bytes().iter().map(|&c| char::from(c)).collect());
    }
    Err(PyTypeError::new_err("header names and values must be str or bytes"))
}

/// Which header names can matter: the character lengths of the names core's credential
/// parser reads (`authorization` and the configured client-id/secret headers). A header whose
/// name has another length cannot match them (core compares ASCII case-insensitively), so it
/// is skipped without converting its value; core would ignore it anyway.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderFilter {
    lengths: Vec<usize>,
}

impl HeaderFilter {
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut lengths: Vec<usize> = names.into_iter().map(|n| n.chars().count()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        HeaderFilter { lengths }
    }

    fn wants(&self, name: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.lengths.is_empty() {
            return Ok(true);
        }
        let len = if let Ok(s) = name.cast::<PyString>() {
            s.len()?
        } else if let Ok(b) = name.cast::<PyBytes>() {
            b.as_bytes().len()
        } else {
            return Err(PyTypeError::new_err("header names and values must be str or bytes"));
        };
        Ok(self.lengths.contains(&len))
    }
}

fn push(out: &mut Vec<(String, String)>, f: &HeaderFilter, n: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
    if f.wants(n)? {
        out.push((header_text(n)?, header_text(v)?));
    }
    Ok(())
}

fn push_pair(out: &mut Vec<(String, String)>, f: &HeaderFilter, pair: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(t) = pair.cast::<PyTuple>() {
        if t.len() == 2 {
            return push(out, f, &t.get_item(0)?, &t.get_item(1)?);
        }
    }
    if let Ok(l) = pair.cast::<PyList>() {
        if l.len() == 2 {
            return push(out, f, &l.get_item(0)?, &l.get_item(1)?);
        }
    }
    Err(PyTypeError::new_err("headers must be a mapping or (name, value) pairs"))
}

/// Headers from a dict, any mapping with `items()` (Starlette `Headers`, Django
/// `request.headers`), or an iterable of `(name, value)` pairs (str or bytes).
pub(crate) fn headers(v: &Bound<'_, PyAny>, f: &HeaderFilter) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Ok(d) = v.cast::<PyDict>() {
        for (k, val) in d.iter() {
            push(&mut out, f, &k, &val)?;
        }
        return Ok(out);
    }
    if let Ok(l) = v.cast::<PyList>() {
        for p in l.iter() {
            push_pair(&mut out, f, &p)?;
        }
        return Ok(out);
    }
    let items = if v.hasattr("items")? { v.call_method0("items")? } else { v.clone() };
    for p in items.try_iter()? {
        push_pair(&mut out, f, &p?)?;
    }
    Ok(out)
}

/// A Python value (dicts, lists, str, int, float, bool, None) as JSON.
pub(crate) fn to_json(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<serde_json::Value> {
    to_json_at(v, argument, 0)
}

fn to_json_at(v: &Bound<'_, PyAny>, argument: &str, depth: usize) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(invalid_argument(argument, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(invalid_argument(argument, "integer out of the 64-bit range"));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| invalid_argument(argument, "NaN and infinity are not JSON"));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = serde_json::Map::new();
        for (k, val) in d.iter() {
            let k = k
                .cast::<PyString>()
                .map_err(|_| invalid_argument(argument, "mapping keys must be str"))?
                .to_cow()?
                .into_owned();
            m.insert(k, to_json_at(&val, argument, depth + 1)?);
        }
        return Ok(Value::Object(m));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut a = Vec::new();
        for item in v.try_iter()? {
            a.push(to_json_at(&item?, argument, depth + 1)?);
        }
        return Ok(Value::Array(a));
    }
    if v.hasattr("items")? {
        let d = PyDict::new(v.py());
        for p in v.call_method0("items")?.try_iter()? {
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = p?.extract()?;
            d.set_item(k, val)?;
        }
        return to_json_at(d.as_any(), argument, depth);
    }
    Err(invalid_argument(argument, format!("cannot convert {} to JSON", v.get_type().name()?)))
}

/// JSON as Python values.
pub(crate) fn from_json(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any().unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(from_json(py, x)?)?;
            }
            l.into_any().unbind()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, from_json(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// A set of strings from any iterable of str (a bare str is refused: it is almost always a bug).
pub(crate) fn str_set(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<std::collections::BTreeSet<String>> {
    if v.is_instance_of::<PyString>() {
        return Err(invalid_argument(argument, "expected an iterable of str, not a str"));
    }
    let mut out = std::collections::BTreeSet::new();
    for item in v.try_iter()? {
        let item = item?;
        let s = item.cast::<PyString>().map_err(|_| invalid_argument(argument, "items must be str"))?;
        out.insert(s.to_cow()?.into_owned());
    }
    Ok(out)
}

/// Account scope: `"all"` or an iterable of account ids.
pub(crate) fn account_scope(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<keycel::AccountScope> {
    if let Ok(s) = v.cast::<PyString>() {
        if s.to_cow()? == "all" {
            return Ok(keycel::AccountScope::All);
        }
        return Err(invalid_argument(argument, "accounts must be \"all\" or an iterable of account ids"));
    }
    Ok(keycel::AccountScope::Only(str_set(v, argument)?))
}

/// `"all"` or a frozenset.
pub(crate) fn account_scope_py(py: Python<'_>, a: &keycel::AccountScope) -> PyResult<Py<PyAny>> {
    match a {
        keycel::AccountScope::All => Ok(PyString::new(py, "all").into_any().unbind()),
        keycel::AccountScope::Only(set) => Ok(pyo3::types::PyFrozenSet::new(py, set.iter())?.into_any().unbind()),
    }
}

/// String metadata.
pub(crate) fn metadata(v: &Bound<'_, PyAny>, argument: &str) -> PyResult<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let items = if v.hasattr("items")? { v.call_method0("items")? } else { v.clone() };
    for p in items.try_iter()? {
        let (k, val): (String, String) =
            p?.extract().map_err(|_| invalid_argument(argument, "metadata must map str to str"))?;
        out.insert(k, val);
    }
    Ok(out)
}
