//! ASCII base62 (`0-9A-Za-z`): random strings and fixed-width checksum encoding.
//!
//! Base62 has no separators, so a token can be split at `_` without ambiguity, and it
//! survives copy-paste, URLs and Basic auth (it never contains `:`).

use alloc::string::String;
use rand_core::TryCryptoRng;

/// The alphabet, in the order GitHub's token checksum uses.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Digit value of each byte (`0xFF`: not base62): decoding a checksum is one load per digit.
#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-range index fails the build
const DIGITS: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The value of one base62 digit.
pub fn digit(b: u8) -> Option<u8> {
    match DIGITS.get(usize::from(b)) {
        Some(0xFF) | None => None,
        Some(&d) => Some(d),
    }
}

/// True when every byte is a base62 character.
pub fn is_base62(s: &str) -> bool {
    all_bytes(s.as_bytes(), |b| b.is_ascii_alphanumeric())
}

/// True when `class` holds for every byte. Written without short-circuit so the compiler
/// vectorizes it: a 75-byte token is checked in a few dozen instructions, not 600.
#[inline]
pub fn all_bytes(s: &[u8], class: impl Fn(u8) -> bool) -> bool {
    s.iter().fold(true, |ok, &b| ok & class(b))
}

/// Encodes `value` in exactly `width` base62 digits, most significant first, zero-padded.
/// Six digits hold any `u32` (62^6 > 2^32).
pub fn encode_fixed(mut value: u64, width: usize) -> String {
    let mut digits = alloc::vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let idx = (value % 62) as usize;
        *slot = ALPHABET.get(idx).copied().unwrap_or(b'0');
        value /= 62;
    }
    digits.into_iter().map(char::from).collect()
}

/// Draws `len` uniformly random base62 characters from a CSPRNG (rejection sampling:
/// bytes >= 248 are discarded so every character has probability exactly 1/62).
pub fn random<R: TryCryptoRng + ?Sized>(rng: &mut R, len: usize) -> Result<String, R::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.try_fill_bytes(&mut buf)?;
        for &b in buf.iter() {
            if out.len() == len {
                break;
            }
            if b < 248 {
                if let Some(&c) = ALPHABET.get(usize::from(b % 62)) {
                    out.push(char::from(c));
                }
            }
        }
    }
    buf.iter_mut().for_each(|b| *b = 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_encoding() {
        assert_eq!(encode_fixed(0, 6), "000000");
        assert_eq!(encode_fixed(61, 6), "00000z");
        assert_eq!(encode_fixed(62, 6), "000010");
        assert_eq!(encode_fixed(u64::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn digits_decode_the_alphabet() {
        for (i, &c) in ALPHABET.iter().enumerate() {
            assert_eq!(digit(c), Some(i as u8));
        }
        let others = (0..=255u8).filter(|b| !b.is_ascii_alphanumeric());
        assert!(others.into_iter().all(|b| digit(b).is_none()));
    }

    #[test]
    fn alphabet_is_alphanumeric() {
        assert!(is_base62(core::str::from_utf8(ALPHABET).unwrap()));
        assert!(!is_base62("ab_c"));
        assert!(!is_base62("ab:c"));
    }
}
