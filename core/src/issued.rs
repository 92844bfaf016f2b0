//! Every form of a freshly issued secret, revealed at once.
//!
//! The moment a key is created or rotated is the only time its secret exists in the clear,
//! and clients send it in several shapes: the token (Bearer), a Basic header, or the
//! client-id/secret header pair. [`IssuedKey::reveal`] consumes the issued key and gives all
//! of them together, built here once so that no binding or host does string surgery (and
//! every runtime encodes the Basic header the same way). Nothing here is `Serialize`, `Clone`
//! or printable: each value is a [`Secret`], zeroized on drop.

use crate::credentials::CredentialConfig;
use crate::secret::Secret;
use crate::token::{ClientId, IssuedKey};
use alloc::format;
use alloc::string::String;
use base64ct::{Base64, Encoding};
use core::fmt;
use zeroize::Zeroizing;

/// All the forms of one issued secret. Obtained once, from [`IssuedKey::reveal`].
pub struct RevealedKey {
    /// The public half (also the record id).
    pub client_id: ClientId,
    /// The secret key alone (the header pair's second header).
    pub secret_key: Secret,
    /// `{client id}_{secret key}`: what Bearer and Basic carry.
    pub token: Secret,
    /// The value of an `Authorization` header: `Basic base64("{token}:")` (the token as user,
    /// empty password, RFC 7617).
    pub authorization_basic: Secret,
    /// The value of an `Authorization` header: `Bearer {token}` (RFC 6750).
    pub authorization_bearer: Secret,
    /// The header pair's client-id header name (as configured).
    pub client_id_header: String,
    /// The header pair's secret header name (as configured).
    pub secret_header: String,
}

impl IssuedKey {
    /// Consumes the issued key and returns every form of its secret, with the header names of
    /// `credentials` (the engine's `[defaults.credentials]`).
    pub fn reveal(self, credentials: &CredentialConfig) -> RevealedKey {
        let token = self.token();
        let user_pass = Zeroizing::new(format!("{}:", token.expose()));
        let basic = Zeroizing::new(Base64::encode_string(user_pass.as_bytes()));
        RevealedKey {
            authorization_basic: Secret::new(format!("Basic {}", basic.as_str())),
            authorization_bearer: Secret::new(format!("Bearer {}", token.expose())),
            token,
            client_id: self.client_id,
            secret_key: self.secret,
            client_id_header: credentials.client_id_header.clone(),
            secret_header: credentials.secret_header.clone(),
        }
    }
}

impl RevealedKey {
    /// The header pair as `(name, value)` pairs: client id, then secret key.
    pub fn header_pair(&self) -> [(&str, &str); 2] {
        [
            (self.client_id_header.as_str(), self.client_id.as_str()),
            (self.secret_header.as_str(), self.secret_key.expose()),
        ]
    }
}

impl fmt::Debug for RevealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevealedKey").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;
    use crate::token::TokenFormat;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn every_form_authenticates_as_the_same_key() {
        let fmt = TokenFormat::default();
        let cfg = CredentialConfig::finout();
        let issued = fmt.issue(&mut TestRng::new(5)).unwrap();
        let id = issued.client_id.clone();
        let r = issued.reveal(&cfg);
        assert_eq!(r.token.expose(), format!("{}_{}", id, r.secret_key.expose()));
        assert_eq!(r.authorization_bearer.expose(), format!("Bearer {}", r.token.expose()));
        let b64 = r.authorization_basic.expose().strip_prefix("Basic ").unwrap();
        assert_eq!(Base64::decode_vec(b64).unwrap(), format!("{}:", r.token.expose()).into_bytes());
        let [(n1, v1), (n2, v2)] = r.header_pair();
        assert_eq!((n1, v1), ("x-finout-client-id", id.as_str()));
        assert_eq!((n2, v2), ("x-finout-secret-key", r.secret_key.expose()));
        let forms = [
            vec![("authorization".to_string(), r.authorization_basic.expose().to_string())],
            vec![("authorization".to_string(), r.authorization_bearer.expose().to_string())],
            r.header_pair().iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        ];
        for headers in forms {
            let creds = cfg.extract(&fmt, headers).unwrap();
            assert_eq!(creds.client_id(), &id);
            assert_eq!(creds.secret().expose(), r.secret_key.expose());
        }
    }

    #[test]
    fn debug_shows_only_the_client_id() {
        let issued = TokenFormat::default().issue(&mut TestRng::new(6)).unwrap();
        let secret = issued.secret.expose().to_string();
        let r = issued.reveal(&CredentialConfig::default());
        let dbg = format!("{r:?}");
        assert!(dbg.contains(r.client_id.as_str()));
        assert!(!dbg.contains(&secret) && !dbg.contains("Basic"), "{dbg}");
    }
}
