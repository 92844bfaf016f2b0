//! Credentials from HTTP headers: a client-id/secret header pair, `Authorization: Basic`
//! (RFC 7617) or `Authorization: Bearer` (RFC 6750).
//!
//! Sizes are capped before anything is decoded, and every shape is checked (including the
//! token checksum) before a store is asked, so garbage costs nothing.

use crate::decision::{Decision, Messages};
use crate::secret::Secret;
use crate::token::{ClientId, TokenError, TokenFormat};
use alloc::string::{String, ToString};
use base64ct::{Base64, Encoding};
use core::fmt;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How the credentials arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialMethod {
    /// `x-keycel-client-id` + `x-keycel-secret-key` (names configurable).
    HeaderPair,
    /// `Authorization: Basic`.
    Basic,
    /// `Authorization: Bearer`.
    Bearer,
}

impl CredentialMethod {
    /// `header_pair`, `basic` or `bearer`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialMethod::HeaderPair => "header_pair",
            CredentialMethod::Basic => "basic",
            CredentialMethod::Bearer => "bearer",
        }
    }
}

/// A checked client id and secret. Only constructible through checks (shape and checksum).
pub struct Credentials {
    client_id: ClientId,
    secret: Secret,
    method: CredentialMethod,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("method", &self.method)
            .finish()
    }
}

impl Credentials {
    /// From a separately supplied client id and secret key (checked, checksum included).
    pub fn from_pair(
        format: &TokenFormat,
        client_id: &str,
        secret: &str,
        method: CredentialMethod,
    ) -> Result<Self, CredentialError> {
        let id = format.check_pair(client_id, secret).map_err(CredentialError::Invalid)?;
        Ok(Credentials { client_id: id, secret: Secret::new(secret.to_string()), method })
    }

    /// From a whole token `{client id}_{secret key}`.
    pub fn from_token(format: &TokenFormat, token: &str, method: CredentialMethod) -> Result<Self, CredentialError> {
        let (client_id, secret) = format.parse_token(token).map_err(CredentialError::Invalid)?;
        Ok(Credentials { client_id, secret, method })
    }

    /// The client id (the record to look up).
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The secret key.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// How they arrived.
    pub fn method(&self) -> CredentialMethod {
        self.method
    }
}

/// Why no credentials could be taken from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// Nothing keycel recognises: 401 without an error code.
    Missing,
    /// Present but malformed, oversized, or failing the checksum: 401 `invalid_token`.
    Invalid(TokenError),
    /// Ambiguous (two methods, repeated headers) or undecodable: 400 `invalid_request`.
    InvalidRequest(&'static str),
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::Missing => f.write_str("no credentials"),
            CredentialError::Invalid(e) => write!(f, "invalid credentials: {e}"),
            CredentialError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl core::error::Error for CredentialError {}

impl CredentialError {
    /// The decision this failure answers with.
    pub fn decision(&self, m: &Messages) -> Decision {
        match self {
            CredentialError::Missing => Decision::missing(m),
            CredentialError::Invalid(e) => Decision::unauthorized(m, e.to_string()),
            CredentialError::InvalidRequest(why) => Decision::invalid_request(m, *why),
        }
    }
}

/// Header names and size cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialConfig {
    /// Client-id header name (case-insensitive).
    pub client_id_header: String,
    /// Secret header name (case-insensitive).
    pub secret_header: String,
    /// Longest header value looked at; longer ones are refused before decoding.
    pub max_header_len: usize,
}

impl Default for CredentialConfig {
    fn default() -> Self {
        CredentialConfig {
            client_id_header: "x-keycel-client-id".to_string(),
            secret_header: "x-keycel-secret-key".to_string(),
            max_header_len: 512,
        }
    }
}

/// Longest `max_header_len` accepted: far above any real credential, low enough that an
/// oversized value is refused before anything is decoded.
pub const MAX_HEADER_LEN_LIMIT: usize = 64 * 1024;

/// An unusable credential setting: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConfigError {
    /// The setting (`client_id_header`, `secret_header`, `max_header_len`).
    pub setting: &'static str,
    /// Why it is refused.
    pub message: String,
}

impl fmt::Display for CredentialConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credentials.{}: {}", self.setting, self.message)
    }
}

impl core::error::Error for CredentialConfigError {}

/// An RFC 9110 field name (a `token`), at most 128 bytes.
fn is_header_name(h: &str) -> bool {
    !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl CredentialConfig {
    /// Checks the settings every host applies (policies, bindings, explicit configs): header
    /// names are HTTP field names, distinct from each other and from `Authorization`, and the
    /// size cap is 1 to [`MAX_HEADER_LEN_LIMIT`].
    pub fn validate(&self) -> Result<(), CredentialConfigError> {
        let fail = |setting, message: &str| Err(CredentialConfigError { setting, message: message.to_string() });
        for (setting, name) in [("client_id_header", &self.client_id_header), ("secret_header", &self.secret_header)] {
            if !is_header_name(name) {
                return fail(setting, "must be an HTTP header name (1-128 token characters)");
            }
            if name.eq_ignore_ascii_case("authorization") {
                return fail(setting, "must not be Authorization (Basic and Bearer arrive there)");
            }
        }
        if self.client_id_header.eq_ignore_ascii_case(&self.secret_header) {
            return fail("secret_header", "must differ from client_id_header");
        }
        if self.max_header_len == 0 || self.max_header_len > MAX_HEADER_LEN_LIMIT {
            return fail("max_header_len", "must be between 1 and 65536");
        }
        Ok(())
    }

    /// Finout's header names.
    pub fn finout() -> Self {
        CredentialConfig {
            client_id_header: "x-finout-client-id".to_string(),
            secret_header: "x-finout-secret-key".to_string(),
            ..Self::default()
        }
    }

    /// Takes credentials from (name, value) header pairs; names are case-insensitive.
    pub fn extract<I, N, V>(&self, format: &TokenFormat, headers: I) -> Result<Credentials, CredentialError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut authorization: Option<V> = None;
        let mut client_id: Option<V> = None;
        let mut secret: Option<V> = None;
        for (name, value) in headers {
            let name = name.as_ref();
            let slot = if name.eq_ignore_ascii_case("authorization") {
                &mut authorization
            } else if name.eq_ignore_ascii_case(&self.client_id_header) {
                &mut client_id
            } else if name.eq_ignore_ascii_case(&self.secret_header) {
                &mut secret
            } else {
                continue;
            };
            if value.as_ref().len() > self.max_header_len {
                return Err(CredentialError::Invalid(TokenError::TooLong));
            }
            if slot.is_some() {
                return Err(CredentialError::InvalidRequest("credential header repeated"));
            }
            *slot = Some(value);
        }
        let pair = match (client_id, secret) {
            (None, None) => None,
            (Some(c), Some(s)) => Some((c, s)),
            _ => return Err(CredentialError::Invalid(TokenError::Malformed)),
        };
        let auth = match authorization.as_ref().map(|a| parse_authorization(a.as_ref())) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(a))) => Some(a),
            Some(Err(e)) => return Err(e),
        };
        match (auth, pair) {
            (Some(_), Some(_)) => Err(CredentialError::InvalidRequest("two credential methods in one request")),
            (None, None) => Err(CredentialError::Missing),
            (None, Some((c, s))) => {
                Credentials::from_pair(format, c.as_ref().trim(), s.as_ref().trim(), CredentialMethod::HeaderPair)
            }
            (Some(Auth::Bearer(t)), None) => Credentials::from_token(format, t, CredentialMethod::Bearer),
            (Some(Auth::Basic(b64)), None) => {
                let (user, password) = decode_basic(b64)?;
                if password.is_empty() {
                    Credentials::from_token(format, &user, CredentialMethod::Basic)
                } else {
                    Credentials::from_pair(format, &user, &password, CredentialMethod::Basic)
                }
            }
        }
    }
}

enum Auth<'a> {
    Basic(&'a str),
    Bearer(&'a str),
}

/// Splits `scheme SP credentials`; unknown schemes are not ours (`Ok(None)`).
fn parse_authorization(v: &str) -> Result<Option<Auth<'_>>, CredentialError> {
    let v = v.trim();
    let (scheme, rest) = match v.split_once(' ') {
        Some((s, r)) => (s, r.trim_start_matches(' ')),
        None => (v, ""),
    };
    if scheme.eq_ignore_ascii_case("basic") {
        if rest.is_empty() || rest.contains(' ') {
            return Err(CredentialError::Invalid(TokenError::Malformed));
        }
        Ok(Some(Auth::Basic(rest)))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        // RFC 6750 token68: our tokens are base62 and `_`, anything else is malformed.
        if rest.is_empty() || !crate::base62::all_bytes(rest.as_bytes(), |b| b.is_ascii_alphanumeric() | (b == b'_')) {
            return Err(CredentialError::Invalid(TokenError::Malformed));
        }
        Ok(Some(Auth::Bearer(rest)))
    } else {
        Ok(None)
    }
}

/// RFC 7617: strict, padded base64 of `user-id ":" password`, split at the *first* colon.
/// A missing colon means an absent password. Returns the user and the (possibly empty) password.
pub fn decode_basic(b64: &str) -> Result<(Zeroizing<String>, Zeroizing<String>), CredentialError> {
    let bytes = Zeroizing::new(
        Base64::decode_vec(b64)
            .map_err(|_| CredentialError::InvalidRequest("Basic credentials are not valid base64"))?,
    );
    let text =
        core::str::from_utf8(&bytes).map_err(|_| CredentialError::InvalidRequest("Basic credentials are not UTF-8"))?;
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    Ok((Zeroizing::new(user.to_string()), Zeroizing::new(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    fn b64(s: &str) -> String {
        Base64::encode_string(s.as_bytes())
    }

    #[test]
    fn rfc7617_examples() {
        let (u, p) = decode_basic("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("Aladdin", "open sesame"));
        let (u, p) = decode_basic("dGVzdDoxMjPCow==").unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("test", "123\u{a3}"));
        let (u, p) = decode_basic(&b64("user:pa:ss")).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("user", "pa:ss"));
        assert!(matches!(decode_basic("QWxhZGRpbjpvcGVuIHNlc2FtZQ"), Err(CredentialError::InvalidRequest(_))));
        assert!(matches!(decode_basic("!!!!"), Err(CredentialError::InvalidRequest(_))));
    }

    #[test]
    fn every_method() {
        let f = TokenFormat::default();
        let key = f.issue(&mut TestRng::new(5)).unwrap();
        let token = key.token().expose().to_string();
        let cfg = CredentialConfig::default();
        let id = key.client_id.as_str();
        let sec = key.secret.expose();
        let cases: [(&[(&str, String)], CredentialMethod); 5] = [
            (
                &[("Authorization", alloc::format!("Basic {}", b64(&alloc::format!("{token}:"))))],
                CredentialMethod::Basic,
            ),
            (&[("authorization", alloc::format!("basic {}", b64(&token)))], CredentialMethod::Basic),
            (
                &[("AUTHORIZATION", alloc::format!("Basic {}", b64(&alloc::format!("{id}:{sec}"))))],
                CredentialMethod::Basic,
            ),
            (&[("Authorization", alloc::format!("Bearer {token}"))], CredentialMethod::Bearer),
            (
                &[("X-Keycel-Client-Id", id.to_string()), ("x-keycel-secret-key", sec.to_string())],
                CredentialMethod::HeaderPair,
            ),
        ];
        for (headers, method) in cases {
            let c = cfg.extract(&f, headers.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
            assert_eq!(c.client_id(), &key.client_id);
            assert_eq!(c.secret().expose(), sec);
            assert_eq!(c.method(), method);
        }
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(CredentialConfig::default().validate(), Ok(()));
        assert_eq!(CredentialConfig::finout().validate(), Ok(()));
        let bad = |f: fn(&mut CredentialConfig)| {
            let mut c = CredentialConfig::default();
            f(&mut c);
            c.validate().unwrap_err().setting
        };
        assert_eq!(bad(|c| c.client_id_header = "x client".into()), "client_id_header");
        assert_eq!(bad(|c| c.client_id_header = String::new()), "client_id_header");
        assert_eq!(bad(|c| c.secret_header = "Authorization".into()), "secret_header");
        assert_eq!(bad(|c| c.secret_header = "X-Keycel-Client-Id".into()), "secret_header");
        assert_eq!(bad(|c| c.max_header_len = 0), "max_header_len");
        assert_eq!(bad(|c| c.max_header_len = MAX_HEADER_LEN_LIMIT + 1), "max_header_len");
    }

    #[test]
    fn typed_failures() {
        let f = TokenFormat::default();
        let key = f.issue(&mut TestRng::new(6)).unwrap();
        let token = key.token().expose().to_string();
        let cfg = CredentialConfig::default();
        let run = |h: &[(&str, &str)]| cfg.extract(&f, h.iter().copied());
        assert_eq!(run(&[]).unwrap_err(), CredentialError::Missing);
        assert_eq!(run(&[("Authorization", "Digest abc")]).unwrap_err(), CredentialError::Missing);
        let bearer = alloc::format!("Bearer {token}");
        let both = run(&[
            ("Authorization", &bearer),
            ("x-keycel-client-id", key.client_id.as_str()),
            ("x-keycel-secret-key", key.secret.expose()),
        ]);
        assert!(matches!(both.unwrap_err(), CredentialError::InvalidRequest(_)));
        assert!(matches!(
            run(&[("Authorization", &bearer), ("Authorization", &bearer)]).unwrap_err(),
            CredentialError::InvalidRequest(_)
        ));
        assert!(matches!(
            run(&[("x-keycel-client-id", key.client_id.as_str())]).unwrap_err(),
            CredentialError::Invalid(_)
        ));
        let huge = alloc::format!("Bearer {}", "a".repeat(10_000));
        assert_eq!(run(&[("Authorization", &huge)]).unwrap_err(), CredentialError::Invalid(TokenError::TooLong));
        assert_eq!(
            run(&[("Authorization", "Bearer kc_x")]).unwrap_err(),
            CredentialError::Invalid(TokenError::Malformed)
        );
        assert!(matches!(run(&[("Authorization", "Bearer a b")]).unwrap_err(), CredentialError::Invalid(_)));
        let mut bad = token.clone();
        bad.pop();
        bad.push(if token.ends_with('A') { 'B' } else { 'A' });
        let bad_bearer = alloc::format!("Bearer {bad}");
        assert_eq!(
            run(&[("Authorization", &bad_bearer)]).unwrap_err(),
            CredentialError::Invalid(TokenError::BadChecksum)
        );
        assert_eq!(CredentialError::Missing.decision(&Messages::default()).status, 401);
        assert_eq!(CredentialError::InvalidRequest("x").decision(&Messages::default()).status, 400);
    }
}
