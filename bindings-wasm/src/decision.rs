//! Decisions as the plain objects JS sees (one fixed shape for every API).
//!
//! Every string crossing from wasm to JS costs a `TextDecoder` call (~0.5 µs), so the
//! decision's strings travel packed in one string and `js/glue.js` unpacks them: each item
//! is `<UTF-16 length>:<text>`, or `~` for null.

use crate::glue;
use crate::lease::Lease;
use keycel::decision::Decision;
use wasm_bindgen::JsValue;

/// `n` in decimal, without the `fmt` machinery (this runs several times per call).
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut n: usize) -> Self {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        while start > 0 {
            start -= 1;
            if let Some(d) = digits.get_mut(start) {
                // `n % 10` is one decimal digit.
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.digits.get(self.start..).unwrap_or(&[])).unwrap_or("0")
    }
}

fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

fn item(out: &mut String, s: Option<&str>) {
    match s {
        None => out.push('~'),
        Some(s) => {
            out.push_str(Decimal::new(utf16_len(s)).as_str());
            out.push(':');
            out.push_str(s);
        }
    }
}

fn count(out: &mut String, n: usize) {
    item(out, Some(Decimal::new(n).as_str()));
}

/// The strings of a decision, packed (see the module docs; order matches `unpack` in glue.js).
pub(crate) fn pack(d: &Decision, method: Option<&str>) -> String {
    let body = d.body_json();
    let mut out = String::with_capacity(64 + d.message.len() + d.reason.len() + body.len());
    item(&mut out, d.code.as_deref());
    item(&mut out, Some(&d.message));
    item(&mut out, d.key_id.as_deref());
    item(&mut out, Some(&d.reason));
    item(&mut out, Some(&body));
    item(&mut out, method);
    count(&mut out, d.headers.len());
    for (k, v) in &d.headers {
        item(&mut out, Some(k));
        item(&mut out, Some(v));
    }
    count(&mut out, d.matched_rules.len());
    for r in &d.matched_rules {
        item(&mut out, Some(r));
    }
    out
}

/// The decision, its response body, and (from `authorize`) the lease and authentication facts.
pub(crate) fn to_js(
    d: &Decision,
    lease: Option<keycel::admission::Lease>,
    auth: Option<&keycel::Authenticated>,
) -> JsValue {
    to_js_with_rehash(d, lease, auth, JsValue::NULL)
}

/// [`to_js`] with the pending hash upgrade (`rehashOnUse`), a `Rehash` handle or null.
pub(crate) fn to_js_with_rehash(
    d: &Decision,
    lease: Option<keycel::admission::Lease>,
    auth: Option<&keycel::Authenticated>,
    rehash: JsValue,
) -> JsValue {
    glue::make_decision(
        d.allowed,
        d.status,
        pack(d, auth.map(|a| a.method.as_str())),
        lease.map_or(JsValue::NULL, |l| Lease::new(l).into()),
        auth.is_some_and(|a| a.needs_rehash),
        auth.is_some_and(|a| a.cache_hit),
        auth.is_some_and(|a| a.via_previous_secret),
        rehash,
    )
}
