//! Token and client-id parsing. Properties: never panics; an accepted token is exactly
//! `{client id}_{secret}`, passes `check_pair`, and any single-character change to an
//! accepted token is refused (the checksum catches typos); `parse_token`'s one-pass path
//! answers exactly like the careful split-then-`check_pair` path, errors included.
#![no_main]

use keycel::token::{ClientId, TokenError, TokenFormat, MAX_TOKEN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ClientId::parse_any(text);
    for format in [TokenFormat::default(), TokenFormat::with_prefix("acme").expect("valid prefix")] {
        let _ = format.parse_client_id(text);
        let careful = if text.len() > MAX_TOKEN_LEN {
            Err(TokenError::TooLong)
        } else {
            text.rsplit_once('_').ok_or(TokenError::Malformed).and_then(|(id, secret)| format.check_pair(id, secret))
        };
        assert_eq!(format.parse_token(text).map(|(id, _)| id), careful);
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
