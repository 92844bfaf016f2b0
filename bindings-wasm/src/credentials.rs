//! `parseCredentials(headers)`: the checked client id and secret from request headers, so a
//! worker can fetch the key record (KV, a database) before it calls `authorize`.

use crate::convert;
use crate::error::{codes, Error, JsResult};
use crate::glue;
use keycel::credentials::CredentialError;
use keycel::decision::Messages;
use keycel::{CredentialConfig, TokenFormat};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

/// Checked credentials. The secret stays inside (zeroized when the handle is freed); only
/// the public client id and the method are readable.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Credentials {
    inner: keycel::Credentials,
}

impl Credentials {
    pub(crate) fn inner(&self) -> &keycel::Credentials {
        &self.inner
    }
}

#[wasm_bindgen]
impl Credentials {
    /// The public client id: the key to look up.
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.inner.client_id().as_str().to_string()
    }

    /// How the credentials arrived.
    #[wasm_bindgen(getter, unchecked_return_type = "CredentialMethod")]
    pub fn method(&self) -> String {
        self.inner.method().as_str().to_string()
    }

    /// `{ clientId, method }` (never the secret).
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "{ clientId: string; method: CredentialMethod }")]
    pub fn to_json(&self) -> JsValue {
        convert::object(&[("clientId", self.client_id().into()), ("method", self.method().into())])
    }

    /// `Credentials(<client id>, <method>)`.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_string_js(&self) -> String {
        format!("Credentials({}, {})", self.inner.client_id(), self.inner.method().as_str())
    }
}

/// Header names, size cap and token prefix for `parseCredentials`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CredentialOptions {
    prefix: Option<String>,
    client_id_header: Option<String>,
    secret_header: Option<String>,
    max_header_len: Option<usize>,
}

/// The typed error for a credential failure, carrying the decision to answer with.
pub(crate) fn credential_error(e: &CredentialError, messages: &Messages) -> Error {
    let code = match e {
        CredentialError::Missing => codes::MISSING_CREDENTIALS,
        CredentialError::Invalid(_) => codes::INVALID_CREDENTIALS,
        CredentialError::InvalidRequest(_) => codes::INVALID_REQUEST,
    };
    let d = e.decision(messages);
    Error::new(code, e.to_string()).with_extra(convert::object(&[
        ("status", d.status.into()),
        ("decision", crate::decision::to_js(&d, None, None)),
    ]))
}

/// Takes credentials from flattened headers with a given configuration.
pub(crate) fn extract(
    config: &CredentialConfig,
    format: &TokenFormat,
    messages: &Messages,
    headers: &JsValue,
) -> Result<Credentials, Error> {
    let flat = glue::flatten_headers(headers).map_err(|e| {
        let msg = js_sys::Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string());
        Error::invalid_argument(msg.unwrap_or_else(|| "headers could not be read".to_string()))
    })?;
    let pairs = flat.chunks_exact(2).filter_map(|c| match c {
        [n, v] => Some((n.as_str(), v.as_str())),
        _ => None,
    });
    config.extract(format, pairs).map(|inner| Credentials { inner }).map_err(|e| credential_error(&e, messages))
}

/// Takes credentials from request headers: `Authorization: Basic` (RFC 7617),
/// `Authorization: Bearer` (RFC 6750) or the client-id/secret header pair.
///
/// `headers` is a fetch `Headers`, a `Map`, an array of `[name, value]` pairs or a plain
/// object. Throws `KeycelError` with code `missing_credentials` (401), `invalid_credentials`
/// (401 `invalid_token`) or `invalid_request` (400); the error's `decision` is the answer to
/// send. Without options the defaults apply (prefix `kc`, `x-keycel-client-id` /
/// `x-keycel-secret-key`); an `Engine` uses its policy's settings (`engine.parseCredentials`).
#[wasm_bindgen(js_name = parseCredentials)]
pub fn parse_credentials(
    #[wasm_bindgen(unchecked_param_type = "HeadersInput")] headers: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "CredentialOptions")] options: Option<JsValue>,
) -> JsResult<Credentials> {
    let opts: CredentialOptions =
        convert::from_js(&options.unwrap_or(JsValue::UNDEFINED), "options")?.unwrap_or_default();
    let format = match &opts.prefix {
        Some(p) => TokenFormat::with_prefix(p).map_err(|e| Error::invalid_argument(format!("prefix: {e}")))?,
        None => TokenFormat::default(),
    };
    let defaults = CredentialConfig::default();
    let config = CredentialConfig {
        client_id_header: opts.client_id_header.unwrap_or(defaults.client_id_header),
        secret_header: opts.secret_header.unwrap_or(defaults.secret_header),
        max_header_len: opts.max_header_len.unwrap_or(defaults.max_header_len),
    };
    // Core's rule, under the option names this API uses.
    config.validate().map_err(|e| {
        let option = match e.setting {
            "client_id_header" => "clientIdHeader",
            "secret_header" => "secretHeader",
            _ => "maxHeaderLen",
        };
        Error::invalid_argument(format!("{option} {}", e.message))
    })?;
    Ok(extract(&config, &format, &Messages::default(), &headers)?)
}
