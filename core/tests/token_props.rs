//! Property tests for the key format: round trips, checksum rejection, and no input that is
//! not an issued token is ever accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::credentials::{CredentialConfig, CredentialMethod, Credentials};
use keycel::test_rng::TestRng;
use keycel::token::{TokenError, TokenFormat};
use proptest::prelude::*;

fn prefix() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,15}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn issued_tokens_round_trip(seed in any::<u64>(), p in prefix()) {
        let f = TokenFormat::with_prefix(&p).unwrap();
        let k = f.issue(&mut TestRng::new(seed)).unwrap();
        let token = k.token();
        let (id, secret) = f.parse_token(token.expose()).unwrap();
        prop_assert_eq!(&id, &k.client_id);
        prop_assert_eq!(secret.expose(), k.secret.expose());
        prop_assert_eq!(f.check_pair(k.client_id.as_str(), k.secret.expose()).unwrap(), k.client_id.clone());
        // The token travels through every credential form unchanged.
        let c = Credentials::from_token(&f, token.expose(), CredentialMethod::Bearer).unwrap();
        prop_assert_eq!(c.client_id(), &k.client_id);
    }

    #[test]
    fn any_single_character_change_is_rejected(seed in any::<u64>(), pos in any::<prop::sample::Index>(), with in "[0-9A-Za-z_:]") {
        let f = TokenFormat::default();
        let k = f.issue(&mut TestRng::new(seed)).unwrap();
        let token = k.token().expose().to_string();
        let i = pos.index(token.len());
        let mut bytes = token.clone().into_bytes();
        let c = with.as_bytes()[0];
        prop_assume!(bytes[i] != c);
        bytes[i] = c;
        let mutated = String::from_utf8(bytes).unwrap();
        let err = f.parse_token(&mutated).unwrap_err();
        prop_assert!(matches!(err, TokenError::BadChecksum | TokenError::Malformed | TokenError::WrongPrefix | TokenError::TooLong), "{err:?}");
    }

    #[test]
    fn arbitrary_input_is_never_accepted_and_never_panics(s in ".{0,200}") {
        let f = TokenFormat::default();
        prop_assert!(f.parse_token(&s).is_err());
        let headers = [("authorization", format!("Bearer {s}")), ("x-keycel-client-id", s.clone()), ("x-keycel-secret-key", s.clone())];
        prop_assert!(CredentialConfig::default().extract(&f, headers.iter().map(|(a, b)| (*a, b.as_str()))).is_err());
    }

    #[test]
    fn random_tokens_of_the_right_shape_fail_the_checksum(id in "[0-9A-Za-z]{16}", secret in "[0-9A-Za-z]{38}") {
        // 1 in 2^32 of these would pass by chance; proptest's 512 cases make that negligible.
        let f = TokenFormat::default();
        prop_assert_eq!(f.parse_token(&format!("kc_{id}_{secret}")).unwrap_err(), TokenError::BadChecksum);
    }
}
