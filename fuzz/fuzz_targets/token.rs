//! Token and client-id parsing. Properties: never panics; an accepted token is exactly
//! `{client id}_{secret}`, passes `check_pair`, and any single-character change to an
//! accepted token is refused (the checksum catches typos).
#![no_main]

use keycel::token::{ClientId, TokenFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ClientId::parse_any(text);
    for format in [TokenFormat::default(), TokenFormat::with_prefix("acme").expect("valid prefix")] {
        let _ = format.parse_client_id(text);
        if let Some((id, secret)) = text.rsplit_once('_') {
            let _ = format.check_pair(id, secret);
        }
        if let Ok((id, secret)) = format.parse_token(text) {
            assert_eq!(format!("{}_{}", id, secret.expose()), text);
            assert_eq!(format.check_pair(id.as_str(), secret.expose()).ok(), Some(id.clone()));
            // Change one character of the secret's random part: must fail.
            let pos = id.as_str().len() + 1 + (data.len() % 32);
            let mut bytes = text.as_bytes().to_vec();
            bytes[pos] = if bytes[pos] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).expect("ascii");
            assert!(format.parse_token(&typo).is_err(), "a typo passed the checksum");
        }
    }
});
