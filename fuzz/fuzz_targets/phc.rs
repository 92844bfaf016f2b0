//! Stored PHC strings. Properties: never panics; parameters outside the policy's range are
//! refused *before* argon2 runs (so a tampered record cannot ask for gigabytes); a parsed
//! string reports the parameters it contains.
#![no_main]

use keycel::hash::{HashError, HashParams, HashPolicy, PhcHash};
use libfuzzer_sys::fuzz_target;

// A tiny range so accepted strings verify in microseconds.
const SMALL: HashParams = HashParams { m_cost: 8, t_cost: 1, p_cost: 1 };
const POLICY: HashPolicy =
    HashPolicy { params: SMALL, floor: SMALL, ceiling: HashParams { m_cost: 64, t_cost: 2, p_cost: 2 } };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(phc) = PhcHash::parse(text) else { return };
    assert_eq!(phc.as_str(), text);
    let params = phc.params().expect("a parsed PHC string has parameters");
    assert!(text.contains(&format!("m={},t={},p={}", params.m_cost, params.t_cost, params.p_cost)));
    let in_range = (8..=64).contains(&params.m_cost) && (1..=2).contains(&params.t_cost) && (1..=2).contains(&params.p_cost);
    match POLICY.verify(b"secret", &phc) {
        Err(HashError::ParamsOutOfRange(p)) => assert!(!in_range && p == params),
        other => assert!(in_range, "out-of-range parameters reached argon2: {other:?}"),
    }
    // Debug never prints the hash itself (an offline-attack target).
    let dbg = format!("{phc:?}");
    if let Some(hash) = text.rsplit('$').next() {
        assert!(!dbg.contains(hash));
    }
});
