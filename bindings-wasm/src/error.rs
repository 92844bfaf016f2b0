//! The error a call throws: becomes a `KeycelError` with a `code` in JS.

use crate::glue;
use wasm_bindgen::JsValue;

/// Error codes (the `code` field of `KeycelError`).
pub(crate) mod codes {
    /// An argument has the wrong type or shape.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// A `now` that is not a time.
    pub const INVALID_TIME: &str = "invalid_time";
    /// A key or user record failed validation.
    pub const INVALID_RECORD: &str = "invalid_record";
    /// A policy failed to load or validate.
    pub const POLICY_ERROR: &str = "policy_error";
    /// No credentials in the headers (answer 401 without error code).
    pub const MISSING_CREDENTIALS: &str = "missing_credentials";
    /// Malformed, oversized or mistyped credentials (answer 401 `invalid_token`).
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    /// Ambiguous credentials (answer 400 `invalid_request`).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// Hash policy or stored hash refused.
    pub const HASH_ERROR: &str = "hash_error";
    /// The random generator failed.
    pub const RNG_FAILED: &str = "rng_failed";
    /// A management action was refused by policy.
    pub const DENIED: &str = "denied";
    /// The key or user does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// An engine configuration was refused.
    pub const CONFIG_ERROR: &str = "config_error";
    /// A host-store write lost a race (the record changed, or the id was taken): nothing was
    /// written; read again and retry.
    pub const CONFLICT: &str = "conflict";
    /// The host document store failed or holds something that is not a record.
    pub const STORE_ERROR: &str = "store_error";
}

/// An error on its way to JS.
#[derive(Debug)]
pub(crate) struct Error {
    code: &'static str,
    message: String,
    extra: Option<JsValue>,
}

impl Error {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), extra: None }
    }

    /// Adds fields to the thrown error (an object whose own properties are copied).
    pub(crate) fn with_extra(mut self, extra: JsValue) -> Self {
        self.extra = Some(extra);
        self
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ARGUMENT, message)
    }

    pub(crate) fn record(e: &keycel::RecordError) -> Self {
        Self::new(codes::INVALID_RECORD, e.to_string())
            .with_extra(crate::convert::object(&[("field", e.field.as_str().into())]))
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        glue::make_error(e.code, &e.message, e.extra.unwrap_or(JsValue::UNDEFINED))
    }
}

/// Result of an export.
pub(crate) type JsResult<T> = Result<T, JsValue>;
