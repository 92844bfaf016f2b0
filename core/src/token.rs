//! The key format.
//!
//! ```text
//! kc_2bVq9XTnYcK4LmPa_Zr8sT1uVw2xYz3aB4cD5eF6gH7iJ8kL9mN0pq1k3Xz9
//! └┬┘ └──── id ─────┘ └────────── secret (32) ──────────┘└crc─┘
//! prefix               └──────────── secret key (38) ─────────┘
//! └──── client id ────┘
//! ```
//!
//! * `client id` = `{prefix}_{16 base62}`: public, the lookup key of the record.
//! * `secret key` = `{32 base62}{6 base62 CRC32}`: 32 random base62 characters carry
//!   190 bits from a CSPRNG; the checksum is CRC32 of `{client id}_{32 random chars}`,
//!   written as 6 base62 digits (GitHub's token scheme), so a typo or garbage is rejected
//!   before any lookup or hashing.
//! * `token` = `{client id}_{secret key}`: travels alone (Basic, Bearer) and splits back
//!   without a store lookup. Secret scanners can match it with
//!   `\b[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{16}_[0-9A-Za-z]{38}\b` (or with the prefix fixed,
//!   `\bkc_[0-9A-Za-z]{16}_[0-9A-Za-z]{38}\b`).

use crate::base62;
use crate::secret::Secret;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use core::fmt;
use rand_core::TryCryptoRng;
use serde::{Deserialize, Serialize};

/// Random characters after the prefix in a client id.
pub const ID_LEN: usize = 16;
/// Random characters in a secret.
pub const SECRET_RANDOM_LEN: usize = 32;
/// Checksum characters at the end of a secret key.
pub const CHECKSUM_LEN: usize = 6;
/// Characters in a secret key (random part and checksum).
pub const SECRET_KEY_LEN: usize = SECRET_RANDOM_LEN + CHECKSUM_LEN;
/// Longest allowed prefix.
pub const MAX_PREFIX_LEN: usize = 16;
/// Longest possible token; anything longer is refused before it is looked at.
pub const MAX_TOKEN_LEN: usize = MAX_PREFIX_LEN + 1 + ID_LEN + 1 + SECRET_KEY_LEN;

/// Why a token, client id or secret was refused. Never contains the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than any valid token.
    TooLong,
    /// Not `{prefix}_{id}_{secret}` of the right lengths and alphabet.
    Malformed,
    /// Well formed but for another prefix.
    WrongPrefix,
    /// The checksum does not match: a typo or a made-up token.
    BadChecksum,
    /// The configured prefix is not 1-16 lowercase ASCII letters and digits, starting with a letter.
    InvalidPrefix,
    /// The random generator failed.
    Rng,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::TooLong => "token is too long",
            TokenError::Malformed => "token is malformed",
            TokenError::WrongPrefix => "token has another prefix",
            TokenError::BadChecksum => "token checksum does not match",
            TokenError::InvalidPrefix => {
                "prefix must be 1-16 lowercase ASCII letters or digits, starting with a letter"
            }
            TokenError::Rng => "random number generator failed",
        })
    }
}

impl core::error::Error for TokenError {}

/// A public client id, `{prefix}_{16 base62}`. Also the record id. Shared text: the id is
/// copied into every authentication result and lease, so a clone is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the shape (any valid prefix) without a configured format.
    pub fn parse_any(s: &str) -> Result<Self, TokenError> {
        id_prefix(s)?;
        Ok(ClientId(Arc::from(s)))
    }
}

/// The prefix of a well-shaped client id (any valid prefix), checked without allocating.
fn id_prefix(s: &str) -> Result<&str, TokenError> {
    if s.len() > MAX_PREFIX_LEN + 1 + ID_LEN {
        return Err(TokenError::TooLong);
    }
    let (prefix, id) = s.split_once('_').ok_or(TokenError::Malformed)?;
    if !valid_prefix(prefix) || id.len() != ID_LEN || !base62::is_base62(id) {
        return Err(TokenError::Malformed);
    }
    Ok(prefix)
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A freshly issued key: the only moment its secret exists in the clear.
pub struct IssuedKey {
    /// The public half.
    pub client_id: ClientId,
    /// The secret key (`{32 random}{checksum}`).
    pub secret: Secret,
}

impl IssuedKey {
    /// The single-string token `{client id}_{secret key}`.
    pub fn token(&self) -> Secret {
        Secret::new(format!("{}_{}", self.client_id, self.secret.expose()))
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey").field("client_id", &self.client_id).field("secret", &self.secret).finish()
    }
}

/// The configured key format (the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: String,
}

impl Default for TokenFormat {
    fn default() -> Self {
        TokenFormat { prefix: "kc".to_string() }
    }
}

fn valid_prefix(p: &str) -> bool {
    let b = p.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_PREFIX_LEN
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn crc(client_id: &str, random: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(client_id.as_bytes());
    h.update(b"_");
    h.update(random.as_bytes());
    h.finalize()
}

fn checksum(client_id: &str, random: &str) -> String {
    base62::encode_fixed(u64::from(crc(client_id, random)), CHECKSUM_LEN)
}

/// The value of the 6 base62 checksum digits, `None` when they are not 6 base62 digits.
fn checksum_value(sum: &str) -> Option<u64> {
    if sum.len() != CHECKSUM_LEN {
        return None;
    }
    sum.bytes().try_fold(0u64, |v, b| Some(v * 62 + u64::from(base62::digit(b)?)))
}

/// True when the 6 base62 digits in `sum` encode the checksum (no allocation).
fn checksum_matches(client_id: &str, random: &str, sum: &str) -> bool {
    checksum_value(sum) == Some(u64::from(crc(client_id, random)))
}

impl TokenFormat {
    /// A format with another prefix (1-16 lowercase letters/digits, starting with a letter).
    pub fn with_prefix(prefix: &str) -> Result<Self, TokenError> {
        if !valid_prefix(prefix) {
            return Err(TokenError::InvalidPrefix);
        }
        Ok(TokenFormat { prefix: prefix.to_string() })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Issues a new client id and secret from a CSPRNG.
    pub fn issue<R: TryCryptoRng + ?Sized>(&self, rng: &mut R) -> Result<IssuedKey, TokenError> {
        let id = base62::random(rng, ID_LEN).map_err(|_| TokenError::Rng)?;
        let client_id = ClientId(Arc::from(format!("{}_{}", self.prefix, id)));
        let secret = self.new_secret(&client_id, rng)?;
        Ok(IssuedKey { client_id, secret })
    }

    /// A new secret for an existing client id (rotation).
    pub fn new_secret<R: TryCryptoRng + ?Sized>(
        &self,
        client_id: &ClientId,
        rng: &mut R,
    ) -> Result<Secret, TokenError> {
        let mut random = base62::random(rng, SECRET_RANDOM_LEN).map_err(|_| TokenError::Rng)?;
        let sum = checksum(client_id.as_str(), &random);
        random.push_str(&sum);
        Ok(Secret::new(random))
    }

    /// Checks a client id against this format.
    pub fn parse_client_id(&self, s: &str) -> Result<ClientId, TokenError> {
        if id_prefix(s)? != self.prefix {
            return Err(TokenError::WrongPrefix);
        }
        Ok(ClientId(Arc::from(s)))
    }

    /// Checks a client id and secret key that arrived separately (header pair, Basic user+password).
    pub fn check_pair(&self, client_id: &str, secret: &str) -> Result<ClientId, TokenError> {
        if secret.len() != SECRET_KEY_LEN {
            return Err(if secret.len() > SECRET_KEY_LEN { TokenError::TooLong } else { TokenError::Malformed });
        }
        let id = self.parse_client_id(client_id)?;
        if !base62::is_base62(secret) {
            return Err(TokenError::Malformed);
        }
        let (random, sum) = secret.split_at(SECRET_RANDOM_LEN);
        // The checksum is public (anyone can compute CRC32), so a plain comparison is fine.
        if !checksum_matches(id.as_str(), random, sum) {
            return Err(TokenError::BadChecksum);
        }
        Ok(id)
    }

    /// Splits a whole token into its client id and secret key, checking everything that can be
    /// checked without a store: length first, then shape, prefix and checksum.
    pub fn parse_token(&self, token: &str) -> Result<(ClientId, Secret), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        if let Some(parsed) = self.parse_token_fast(token) {
            return Ok(parsed);
        }
        // Not a well-formed token of this format: the careful path names what is wrong.
        let (client_id, secret) = token.rsplit_once('_').ok_or(TokenError::Malformed)?;
        let id = self.check_pair(client_id, secret)?;
        Ok((id, Secret::new(secret.to_string())))
    }

    /// One pass over a token of exactly this format's shape: positions are fixed by the prefix
    /// length, and `{client id}_{random}` is the token's head, so the CRC runs over one slice.
    /// `None` for anything else (the caller then classifies the error).
    fn parse_token_fast(&self, token: &str) -> Option<(ClientId, Secret)> {
        let p = self.prefix.len();
        let id_end = p + 1 + ID_LEN;
        if token.len() != id_end + 1 + SECRET_KEY_LEN {
            return None;
        }
        let b = token.as_bytes();
        let separators = b.get(p) == Some(&b'_') && b.get(id_end) == Some(&b'_');
        let id_chars = b.get(p + 1..id_end)?;
        let secret_chars = b.get(id_end + 1..)?;
        if !separators
            || !token.starts_with(self.prefix.as_str())
            || !base62::all_bytes(id_chars, |c| c.is_ascii_alphanumeric())
            || !base62::all_bytes(secret_chars, |c| c.is_ascii_alphanumeric())
        {
            return None;
        }
        let head = token.get(..token.len() - CHECKSUM_LEN)?;
        let sum = checksum_value(token.get(token.len() - CHECKSUM_LEN..)?)?;
        if sum != u64::from(crc32fast::hash(head.as_bytes())) {
            return None;
        }
        let id = ClientId(Arc::from(token.get(..id_end)?));
        Some((id, Secret::new(token.get(id_end + 1..)?.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;
    use alloc::vec;

    #[test]
    fn issue_and_parse_round_trip() {
        let fmt = TokenFormat::default();
        let key = fmt.issue(&mut TestRng::new(1)).unwrap();
        let token = key.token();
        assert_eq!(token.len(), 2 + 1 + ID_LEN + 1 + SECRET_KEY_LEN);
        let (id, secret) = fmt.parse_token(token.expose()).unwrap();
        assert_eq!(id, key.client_id);
        assert_eq!(secret.expose(), key.secret.expose());
    }

    #[test]
    fn rejects_typos_and_garbage() {
        let fmt = TokenFormat::default();
        let key = fmt.issue(&mut TestRng::new(2)).unwrap();
        let token = key.token().expose().to_string();
        let mut typo = token.clone().into_bytes();
        let last = typo.len() - 10;
        typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
        assert_eq!(fmt.parse_token(core::str::from_utf8(&typo).unwrap()).unwrap_err(), TokenError::BadChecksum);
        assert_eq!(fmt.parse_token("garbage").unwrap_err(), TokenError::Malformed);
        assert_eq!(fmt.parse_token(&"a".repeat(500)).unwrap_err(), TokenError::TooLong);
        let other = TokenFormat::with_prefix("acme").unwrap();
        assert_eq!(other.parse_token(&token).unwrap_err(), TokenError::WrongPrefix);
        assert!(TokenFormat::with_prefix("Bad_").is_err());
        assert!(TokenFormat::with_prefix("").is_err());
        assert!(TokenFormat::with_prefix("1abc").is_err());
    }

    /// The one-pass path accepts exactly what the careful path accepts, with the same result,
    /// for every single-byte change of a valid token and for other prefixes and lengths.
    #[test]
    fn fast_path_agrees_with_the_careful_path() {
        let careful = |f: &TokenFormat, t: &str| -> Result<(ClientId, String), TokenError> {
            let (client_id, secret) = t.rsplit_once('_').ok_or(TokenError::Malformed)?;
            Ok((f.check_pair(client_id, secret)?, secret.to_string()))
        };
        let mut checked = 0;
        for prefix in ["kc", "acme", "a"] {
            let f = TokenFormat::with_prefix(prefix).unwrap();
            let token = f.issue(&mut TestRng::new(9)).unwrap().token().expose().to_string();
            let mut variants = vec![token.clone(), format!("x{token}"), token[1..].to_string()];
            for i in 0..token.len() {
                for c in [b'_', b'a', b'Z', b'0', b'-', b' '] {
                    let mut b = token.clone().into_bytes();
                    b[i] = c;
                    variants.push(String::from_utf8(b).unwrap());
                }
            }
            for other in ["kc", "acme", "a"] {
                let g = TokenFormat::with_prefix(other).unwrap();
                for v in &variants {
                    let fast = g.parse_token(v).map(|(id, s)| (id, s.expose().to_string()));
                    assert_eq!(fast, careful(&g, v), "{v}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 3000);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = TokenFormat::default().issue(&mut TestRng::new(3)).unwrap();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(key.secret.expose()));
    }
}
