//! Credential extraction from arbitrary header lists (`name: value` per line).
//! Properties: never panics; accepted credentials are well-formed and re-parse to the same
//! client id and secret; `Debug` of credentials and errors never shows the secret.
#![no_main]

use keycel::{CredentialConfig, TokenFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let headers: Vec<(&str, &str)> = text
        .split('\n')
        .filter_map(|line| line.split_once(':').map(|(n, v)| (n, v.strip_prefix(' ').unwrap_or(v))))
        .collect();
    let format = TokenFormat::default();
    for config in [CredentialConfig::default(), CredentialConfig::finout()] {
        match config.extract(&format, headers.iter().copied()) {
            Ok(creds) => {
                let id = creds.client_id().as_str();
                let secret = creds.secret().expose();
                assert_eq!(secret.len(), keycel::token::SECRET_KEY_LEN);
                assert_eq!(format.check_pair(id, secret).ok().as_ref(), Some(creds.client_id()));
                let token = format!("{id}_{secret}");
                let (id2, secret2) = format.parse_token(&token).expect("accepted credentials form a token");
                assert_eq!((id2.as_str(), secret2.expose()), (id, secret));
                assert!(!format!("{creds:?}").contains(secret), "Debug shows the secret");
            }
            Err(e) => {
                // The decision for a failure is always a 400/401 and names no header value.
                let d = e.decision(&keycel::decision::Messages::default());
                assert!(d.status == 400 || d.status == 401);
                assert!(!d.allowed);
            }
        }
    }
});
