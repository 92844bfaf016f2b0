//! RFC 7617 Basic decoding. Properties: never panics; a decoded pair re-encodes to base64
//! that decodes to the same pair (split at the first colon).
#![no_main]

use keycel::credentials::decode_basic;
use libfuzzer_sys::fuzz_target;

fn encode(s: &str) -> String {
    // Standard padded base64, written out so the check does not trust the decoder's crate.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((user, password)) = decode_basic(text) {
        assert!(!user.contains(':'), "split must be at the first colon");
        let joined = if password.is_empty() { user.to_string() } else { format!("{}:{}", *user, *password) };
        let (u2, p2) = decode_basic(&encode(&joined)).expect("re-encoded pair decodes");
        assert_eq!((u2.as_str(), p2.as_str()), (user.as_str(), password.as_str()));
    }
    // Also through the header path, under both schemes' spellings.
    let headers = [("Authorization", format!("Basic {text}"))];
    let _ = keycel::CredentialConfig::default().extract(&keycel::TokenFormat::default(), headers.iter().map(|(n, v)| (*n, v.as_str())));
});
