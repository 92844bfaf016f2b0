//! Parsed, validated key and user records. Parse once (e.g. when the record comes out of KV)
//! and pass the handle to every call; the JSON shape is the core's stable schema.

use crate::convert;
use crate::error::{Error, JsResult};
use wasm_bindgen::prelude::*;

/// A key record (schema 1), validated. Holds the argon2id PHC string, never a secret.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct KeyRecord {
    inner: keycel::KeyRecord,
}

impl KeyRecord {
    pub(crate) fn from_core(inner: keycel::KeyRecord) -> Self {
        KeyRecord { inner }
    }

    pub(crate) fn inner(&self) -> &keycel::KeyRecord {
        &self.inner
    }

    /// From JSON text or a plain object.
    pub(crate) fn from_js(value: &JsValue) -> Result<keycel::KeyRecord, Error> {
        let text =
            convert::json_text(value, "key record")?.ok_or_else(|| Error::invalid_argument("key record is missing"))?;
        keycel::KeyRecord::from_json(&text).map_err(|e| Error::record(&e))
    }
}

#[wasm_bindgen]
impl KeyRecord {
    /// Parses and validates a record from its storage form (JSON text or a plain object, as
    /// `toStorageJsonString()` / `toStorageJSON()` give it).
    /// Throws `KeycelError` `invalid_record` (with `field`) when it is not a valid record.
    #[wasm_bindgen]
    pub fn parse(
        #[wasm_bindgen(unchecked_param_type = "string | KeyRecordJson")] value: JsValue,
    ) -> JsResult<KeyRecord> {
        Ok(KeyRecord { inner: Self::from_js(&value)? })
    }

    /// The client id (also the record id).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id.as_str().to_string()
    }

    /// Display name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// `api` or `personal`.
    #[wasm_bindgen(getter, unchecked_return_type = "'api' | 'personal'")]
    pub fn kind(&self) -> String {
        self.inner.kind.as_str().to_string()
    }

    /// The owner of a personal token.
    #[wasm_bindgen(getter)]
    pub fn user(&self) -> Option<String> {
        self.inner.kind.user().map(str::to_string)
    }

    /// Role name.
    #[wasm_bindgen(getter)]
    pub fn role(&self) -> String {
        self.inner.role.clone()
    }

    /// False when deactivated.
    #[wasm_bindgen(getter)]
    pub fn active(&self) -> bool {
        self.inner.active
    }

    /// Bumped by every change.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.inner.version as f64
    }

    /// Expiry in Unix milliseconds, if any.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.inner.expires_at.map(convert::millis)
    }

    /// Per-key in-flight limit, if set.
    #[wasm_bindgen(getter, js_name = maxConcurrent)]
    pub fn max_concurrent(&self) -> Option<u32> {
        self.inner.max_concurrent
    }

    /// The public form (plain object): every field but the hashes, so `JSON.stringify(record)`
    /// is safe to send to a client.
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "KeyRecordView")]
    pub fn to_json(&self) -> JsValue {
        convert::to_js(&self.inner.to_public_value())
    }

    /// The public form as JSON text (stable field order).
    #[wasm_bindgen(js_name = toJsonString)]
    pub fn to_json_string(&self) -> String {
        self.inner.to_public_json()
    }

    /// The storage form (plain object, schema 1, with the argon2id hashes): for stores only,
    /// never for clients. `KeyRecord.parse` reads it back.
    #[wasm_bindgen(js_name = toStorageJSON, unchecked_return_type = "KeyRecordJson")]
    pub fn to_storage_json(&self) -> JsValue {
        convert::to_js(&self.inner.to_storage_value())
    }

    /// The storage form as JSON text (stable field order): what to write to KV or a database.
    #[wasm_bindgen(js_name = toStorageJsonString)]
    pub fn to_storage_json_string(&self) -> String {
        self.inner.to_storage_json()
    }
}

/// A user record: the owner of personal tokens (their roles and data access cap the tokens).
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct UserRecord {
    inner: keycel::UserRecord,
}

impl UserRecord {
    pub(crate) fn inner(&self) -> &keycel::UserRecord {
        &self.inner
    }

    /// From JSON text or a plain object.
    pub(crate) fn from_js(value: &JsValue) -> Result<keycel::UserRecord, Error> {
        let text = convert::json_text(value, "user record")?
            .ok_or_else(|| Error::invalid_argument("user record is missing"))?;
        keycel::UserRecord::from_json(&text).map_err(|e| Error::record(&e))
    }
}

#[wasm_bindgen]
impl UserRecord {
    /// Parses and validates a user record from JSON text or a plain object.
    #[wasm_bindgen]
    pub fn parse(
        #[wasm_bindgen(unchecked_param_type = "string | UserRecordJson")] value: JsValue,
    ) -> JsResult<UserRecord> {
        Ok(UserRecord { inner: Self::from_js(&value)? })
    }

    /// User id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// Role names.
    #[wasm_bindgen(getter)]
    pub fn roles(&self) -> Vec<String> {
        self.inner.roles.iter().cloned().collect()
    }

    /// The record as stored (plain object).
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "UserRecordJson")]
    pub fn to_json(&self) -> JsValue {
        convert::to_js(&self.inner)
    }
}
