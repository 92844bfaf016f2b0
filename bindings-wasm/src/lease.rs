//! A concurrency lease handed to JS: one request in flight for a key.

use crate::convert;
use crate::error::JsResult;
use wasm_bindgen::prelude::*;

/// One request in flight. Call `release()` when the response is done (in a `finally`).
/// A holder that runs longer than the policy's `lease_ttl` (a stream, a WebSocket) calls
/// `renew(now)` before `expiresAt`; a lease that is neither released nor renewed (lost
/// handle, crashed handler) frees its slot once `expiresAt` has passed; freeing the handle
/// (`free()`, `using`, or garbage collection) also releases it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Lease {
    inner: Option<keycel::admission::Lease>,
    id: u64,
    key_id: String,
    expires_at: keycel::Timestamp,
}

impl Lease {
    pub(crate) fn new(lease: keycel::admission::Lease) -> Self {
        let expires_at = lease.expires_at().unwrap_or(keycel::Timestamp::saturating_from_unix(i64::MAX));
        Lease { id: lease.id(), key_id: lease.key_id().to_string(), expires_at, inner: Some(lease) }
    }
}

#[wasm_bindgen]
impl Lease {
    /// Releases the slot. True when this call released it; false when it was already
    /// released, or reclaimed after its expiry.
    pub fn release(&mut self) -> bool {
        self.inner.take().is_some_and(keycel::admission::Lease::release)
    }

    /// Keeps the slot of a live holder: moves `expiresAt` to `now + lease_ttl`. False when
    /// the lease was released or already reclaimed as lost (it no longer counts).
    pub fn renew(&mut self, #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue) -> JsResult<bool> {
        let now = convert::timestamp(&now, "now")?;
        let Some(lease) = self.inner.as_mut() else { return Ok(false) };
        let renewed = lease.renew(now);
        if let Some(t) = lease.expires_at() {
            self.expires_at = t;
        }
        Ok(renewed)
    }

    /// True once released.
    #[wasm_bindgen(getter)]
    pub fn released(&self) -> bool {
        self.inner.is_none()
    }

    /// Lease id (unique per engine).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.id as f64
    }

    /// The key holding the slot.
    #[wasm_bindgen(getter, js_name = keyId)]
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// After this instant (Unix milliseconds) the slot may be reclaimed.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> f64 {
        convert::millis(self.expires_at)
    }

    /// `{ id, keyId, expiresAt, released }`.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsValue {
        convert::object(&[
            ("id", self.id().into()),
            ("keyId", self.key_id().into()),
            ("expiresAt", self.expires_at().into()),
            ("released", self.released().into()),
        ])
    }
}
