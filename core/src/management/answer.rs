//! Answers: the one error shape `{"error": {"code", "message", "field"?}}` with stable codes,
//! and JSON success bodies. Every answer is `no-store` (create and rotate carry a secret).

use super::HttpResponse;
use crate::decision::{codes, Decision, Messages};
use crate::keyring::KeyringError;
use crate::store::StoreError;
use serde::Serialize;

/// Stable error codes of the management API (besides the engine's own: `invalid_token`,
/// `insufficient_scope`, `forbidden`, `exceeds_actor`, `too_many_personal_tokens`,
/// `too_many_failures`, `temporarily_unavailable`).
pub mod code {
    /// 401 without credentials.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// 404: missing, or outside the acting key's reach (the same bytes).
    pub const NOT_FOUND: &str = crate::decision::codes::NOT_FOUND;
    /// 405: the path exists, the method does not.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 409: changed concurrently, or the id is taken.
    pub const CONFLICT: &str = "conflict";
    /// 400: the body is not JSON (or not an object).
    pub const INVALID_JSON: &str = "invalid_json";
    /// 400: a query parameter or header is invalid (`field` names it).
    pub const INVALID_PARAMETER: &str = "invalid_parameter";
    /// 413: the body is larger than the limit.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// 422: a body field the endpoint does not take (`field` names it).
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    /// 422: a body field has a wrong type or value (`field` names it).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// 422: the `Idempotency-Key` was used with another request body.
    pub const IDEMPOTENCY_MISMATCH: &str = "idempotency_mismatch";
    /// 500: a stored record or the host failed in a way the client cannot fix.
    pub const INTERNAL: &str = "internal_error";
    /// 503: the store is unreachable (fail closed).
    pub const UNAVAILABLE: &str = crate::decision::codes::OVERLOADED;
}

/// Every error code the API can answer, for the OpenAPI document.
pub const ALL_CODES: &[&str] = &[
    code::UNAUTHENTICATED,
    codes::INVALID_TOKEN,
    codes::INVALID_REQUEST,
    codes::INSUFFICIENT_SCOPE,
    codes::FORBIDDEN,
    codes::EXCEEDS_ACTOR,
    codes::TOO_MANY_PERSONAL_TOKENS,
    code::NOT_FOUND,
    code::METHOD_NOT_ALLOWED,
    code::CONFLICT,
    code::INVALID_JSON,
    code::INVALID_PARAMETER,
    code::BODY_TOO_LARGE,
    code::UNKNOWN_FIELD,
    code::INVALID_FIELD,
    code::IDEMPOTENCY_MISMATCH,
    codes::TOO_MANY_FAILURES,
    code::INTERNAL,
    code::UNAVAILABLE,
];

/// An error answer. Never carries a secret, a hash or an internal reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code.
    pub code: String,
    /// Client-facing text.
    pub message: String,
    /// The body field, query parameter or header at fault.
    pub field: Option<String>,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error without field or headers.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_string(), message: message.into(), field: None, headers: Vec::new() }
    }

    /// An error about one field (body field, query parameter or header).
    pub fn field(status: u16, code: &str, field: &str, message: impl Into<String>) -> Self {
        ApiError { field: Some(field.to_string()), ..Self::new(status, code, message) }
    }

    /// 422 `invalid_field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::field(422, code::INVALID_FIELD, field, message)
    }

    /// 404, the same bytes for a missing and an out-of-reach resource.
    pub fn not_found(m: &Messages) -> Self {
        Self::new(404, code::NOT_FOUND, m.not_found.clone())
    }

    /// The engine's refusal (authentication, throttling, policy), in this API's shape.
    pub fn from_decision(d: &Decision, m: &Messages) -> Self {
        if d.status == 404 {
            return Self::not_found(m);
        }
        let code = d.code.as_deref().unwrap_or(code::UNAUTHENTICATED);
        ApiError { headers: d.headers.clone(), ..Self::new(d.status, code, d.message.to_string()) }
    }

    /// A keyring failure, in this API's shape.
    pub fn from_keyring(e: KeyringError, m: &Messages) -> Self {
        match e {
            KeyringError::Denied(d) => Self::from_decision(&d, m),
            KeyringError::NotFound(_) => Self::not_found(m),
            KeyringError::Invalid(r) => Self::invalid(&r.field, r.message),
            KeyringError::Store(s) => Self::from_store(s, m),
            KeyringError::Hash(_) | KeyringError::Token(_) => Self::new(500, code::INTERNAL, "internal error"),
        }
    }

    /// A store failure: conflicts are the client's to retry, a down store fails closed.
    pub fn from_store(e: StoreError, m: &Messages) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(m),
            StoreError::AlreadyExists(_) => Self::new(409, code::CONFLICT, "the id is already in use"),
            StoreError::Conflict { .. } => {
                Self::new(409, code::CONFLICT, "the record changed concurrently; read it again and retry")
            }
            StoreError::Corrupt(_) => Self::new(500, code::INTERNAL, "a stored record is invalid"),
            StoreError::Backend(_) => {
                let mut e = Self::new(503, code::UNAVAILABLE, m.overloaded.clone());
                e.headers.push(("Retry-After".to_string(), "1".to_string()));
                e
            }
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let b =
            ErrorBody { error: ErrorInner { code: &self.code, message: &self.message, field: self.field.as_deref() } };
        serde_json::to_vec(&b).unwrap_or_default()
    }

    /// The HTTP answer.
    pub fn into_response(self) -> HttpResponse {
        let body = self.body();
        let mut headers = base_headers();
        headers.extend(self.headers);
        HttpResponse { status: self.status, headers, body }
    }
}

/// Headers on every answer: JSON, never cached (create and rotate carry a secret).
pub fn base_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("cache-control".to_string(), "no-store".to_string()),
    ]
}

/// A JSON success answer.
pub fn json<T: Serialize>(status: u16, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => HttpResponse { status, headers: base_headers(), body },
        Err(_) => ApiError::new(500, code::INTERNAL, "internal error").into_response(),
    }
}

/// 204 without a body.
pub fn no_content() -> HttpResponse {
    let headers = vec![("cache-control".to_string(), "no-store".to_string())];
    HttpResponse { status: 204, headers, body: Vec::new() }
}
