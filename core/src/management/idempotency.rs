//! `Idempotency-Key` on create: a retried create never mints a second key, in any store,
//! across processes, without any idempotency table.
//!
//! The new key's client id is derived from (acting key id, Idempotency-Key), so every retry
//! names the same id and the store's insert uniqueness (ids are never reused) lets exactly one
//! insert win, however many processes race. The record keeps a fingerprint of the request body
//! in `metadata["keycel.idempotency"]`: a retry with the same body answers the existing key, a
//! retry with another body answers 422 `idempotency_mismatch`.
//!
//! A replay answers the key WITHOUT its secret, with `Idempotent-Replayed: true`: only the
//! secret's argon2 hash is stored, so the secret cannot be shown again (a client that lost the
//! first answer rotates the key). Errors are not remembered: a refused create may be retried.
//! A key created and then deleted keeps its id retired: the same Idempotency-Key then answers
//! 409 `conflict`.

use super::answer::{code, ApiError};
use crate::base62;
use crate::token::{ClientId, TokenFormat};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// The answer header on a replay.
pub const REPLAYED: &str = "Idempotent-Replayed";
/// Where the fingerprint is kept on the record.
pub const METADATA_KEY: &str = "keycel.idempotency";
/// Longest accepted Idempotency-Key.
pub const MAX_LEN: usize = 255;

/// Checks the header value: 1-255 printable ASCII characters.
pub fn check(value: &str) -> Result<&str, ApiError> {
    if value.is_empty() || value.len() > MAX_LEN || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ApiError::field(
            400,
            code::INVALID_PARAMETER,
            HEADER,
            format!("{HEADER} must be 1-{MAX_LEN} printable ASCII characters"),
        ));
    }
    Ok(value)
}

/// The client id a create with this Idempotency-Key gets: 16 base62 characters of
/// BLAKE3(domain, acting key id, key), so two actors never collide and nobody can pick it.
pub fn client_id(format: &TokenFormat, actor_id: &str, key: &str) -> Result<ClientId, ApiError> {
    let mut h = blake3::Hasher::new_derive_key("keycel management idempotency v1");
    h.update(&(actor_id.len() as u64).to_le_bytes());
    h.update(actor_id.as_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    let bytes = d.as_bytes();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        if let Some(src) = bytes.get(at..at + 8) {
            w.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    };
    let id = format!("{}_{}{}", format.prefix(), base62::encode_fixed(word(0), 8), base62::encode_fixed(word(8), 8));
    format.parse_client_id(&id).map_err(|_| ApiError::new(500, code::INTERNAL, "internal error"))
}

/// The fingerprint of a create request body (its canonical JSON).
pub fn fingerprint(canonical_body: &str) -> String {
    let d = blake3::hash(canonical_body.as_bytes());
    d.to_hex().as_str().get(..32).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_stable_per_actor_and_key() {
        let f = TokenFormat::default();
        let a = client_id(&f, "kc_actor1", "k1").unwrap();
        assert_eq!(a, client_id(&f, "kc_actor1", "k1").unwrap());
        assert_ne!(a, client_id(&f, "kc_actor2", "k1").unwrap());
        assert_ne!(a, client_id(&f, "kc_actor1", "k2").unwrap());
        assert!(a.as_str().starts_with("kc_") && a.as_str().len() == 19);
        assert!(check("").is_err() && check(&"x".repeat(256)).is_err() && check("a\u{7}").is_err());
        assert_eq!(fingerprint("{}").len(), 32);
    }
}
