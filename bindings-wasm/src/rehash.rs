//! `Rehash`: the hash upgrade an engine built with `rehashOnUse` hands back on the first
//! successful use of a key hashed with outdated argon2 parameters. The WASM engine owns no
//! store, so the host runs it after the response (e.g. in `ctx.waitUntil`) and writes the
//! record it returns; the work itself (which record, the new hash, the version bump, at most
//! one per key) is the core's `PendingRehash`.

use crate::convert;
use crate::error::{codes, Error, JsResult};
use keycel::rehash::PendingRehash;
use wasm_bindgen::prelude::*;

/// A pending hash upgrade for one key; `run(now)` once, after the response.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Rehash {
    pending: Option<PendingRehash>,
    record: keycel::KeyRecord,
}

impl Rehash {
    pub(crate) fn new(pending: PendingRehash, record: keycel::KeyRecord) -> Self {
        Rehash { pending: Some(pending), record }
    }
}

#[wasm_bindgen]
impl Rehash {
    /// The key concerned.
    #[wasm_bindgen(getter, js_name = keyId)]
    pub fn key_id(&self) -> String {
        self.record.id.as_str().to_string()
    }

    /// Re-hashes the key's secret with the engine's parameters and returns the record to
    /// store (storage JSON text, version bumped: write it if the stored version is still the
    /// one authenticated), or `null` when there is nothing to do (already run). Throws
    /// `KeycelError` `hash_error` if hashing fails; the request it came from is unaffected.
    #[wasm_bindgen(unchecked_return_type = "string | null")]
    pub fn run(&mut self, #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue) -> JsResult<JsValue> {
        let now = convert::timestamp(&now, "now")?;
        let Some(pending) = self.pending.take() else { return Ok(JsValue::NULL) };
        match pending.rehashed_record(&self.record, now) {
            Ok(next) => Ok(next.map_or(JsValue::NULL, |r| JsValue::from(r.to_storage_json()))),
            Err(e) => Err(Error::new(codes::HASH_ERROR, e.to_string()).into()),
        }
    }
}
