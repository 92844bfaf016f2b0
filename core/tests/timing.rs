//! Timing side channels of authentication (issue 7).
//!
//! Every authentication failure must cost one argon2 computation at the configured preset,
//! whatever the reason and whatever parameters the record was hashed with, so a caller cannot
//! tell an unknown client id from a wrong secret, or learn that a key exists but is inactive,
//! expired or orphaned (issue 12: a wrong secret for a record hashed with cheaper parameters
//! answered faster than an unknown id, so the id showed as existing; such failures are now
//! padded up to the configured cost, the `CheapRecord` class). The test measures each failure class with samples taken in
//! a shuffled, interleaved order (so drift and noise from other processes hit every class
//! alike), takes the median per class, and fails when a class's median differs from the
//! wrong-secret median by more than [`BOUND`].
//!
//! Robustness: the classes are timed in rounds (each round times every class once, shuffled),
//! and each class is compared with the wrong-secret time *of the same round*; the median of
//! those per-round ratios is the class's result. An attempt whose result exceeds the bound is
//! repeated, up to 3 attempts: a real leak fails all of them, a burst of noise does not. A
//! control (a valid key served from the verified-secret cache, which skips argon2) must stand
//! out in every attempt, which proves the measurement can see the leaks it is looking for.
//!
//! Why 25%: the test runs in CI on a shared 2-core machine, in a debug build, next to other
//! builds. Medians of interleaved samples are stable to a few percent there, while every real
//! leak we guard against is far larger: a failure that skips argon2 costs ~0% of the
//! reference (cache hit plus early return), and one that runs argon2 twice costs ~200%.
//! The benches (issue 2) hold the tight target (unknown id within 5% of a wrong secret);
//! this test holds the line in CI without flaking.
//!
//! The second test compares the 404 for an account outside the key's scope with the 404 a host
//! sends for a missing resource, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::decision::Decision;
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, NewKey};
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::token::TokenFormat;
use keycel::{AuthConfig, Authenticator, Credentials};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Largest allowed relative difference between a class's median and the reference median.
const BOUND: f64 = 0.25;
/// Rounds per attempt; each round times every class once. With m=2048 a debug-build argon2
/// takes ~35 ms, so an attempt takes ~5 s on an idle machine.
const ROUNDS: usize = 30;
/// A noisy attempt is repeated; a real leak fails every attempt.
const ATTEMPTS: usize = 3;
/// EDGE parameters: large enough that argon2 dominates everything else by two orders.
const PARAMS: HashParams = HashParams::EDGE;
/// A record hashed with half the configured work (the default floor): without padding, a
/// wrong secret for it costs half an unknown id.
const CHEAPER: HashParams = HashParams::DEFAULT_FLOOR;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_unix(s).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    WrongSecret,
    UnknownId,
    CheapRecord,
    Inactive,
    Expired,
    UserRemoved,
}

struct Case {
    creds: Credentials,
    record: Option<KeyRecord>,
    user: Option<UserRecord>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Deterministic shuffle (xorshift), so a failure can be reproduced sample order and all.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn failure_classes_are_indistinguishable_by_time() {
    let now = ts(1_800_000_000);
    let policy = HashPolicy::with_params(PARAMS).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone() as Arc<dyn Store>).with_hash(policy).unwrap();
    let op = Actor::Operator("timing".into());
    let auth = Authenticator::new(AuthConfig { hash: policy, ..AuthConfig::default() }).unwrap();
    let format = TokenFormat::default();
    let bearer = |token: &str| Credentials::from_token(&format, token, keycel::CredentialMethod::Bearer).unwrap();

    ring.put_user(&op, UserRecord::new("gone", ["member".into()], AccountScope::All).unwrap(), now).unwrap();
    let (live, live_key) = ring.create(&op, NewKey::api("live", "member"), now).unwrap();
    let (inactive, inactive_key) = ring.create(&op, NewKey::api("inactive", "member"), now).unwrap();
    let (expired, expired_key) = ring
        .create(&op, NewKey { expires_in: Some(Duration::from_secs(10)), ..NewKey::api("exp", "member") }, now)
        .unwrap();
    let (orphan, orphan_key) = ring.create(&op, NewKey::personal("pat", "gone", "member"), now).unwrap();
    // A wrong secret with a valid checksum for the live key's id; an id nobody has.
    let wrong = format.new_secret(&live.id, &mut getrandom::SysRng).unwrap();
    let unknown = format.issue(&mut getrandom::SysRng).unwrap();
    // A key hashed with cheaper parameters than the configured ones (an older policy, or a
    // tampered store within the floor), and a wrong secret for it.
    let cheap_ring =
        Keyring::new(store.clone() as Arc<dyn Store>).with_hash(HashPolicy::with_params(CHEAPER).unwrap()).unwrap();
    let (cheap, _) = cheap_ring.create(&op, NewKey::api("cheap", "member"), now).unwrap();
    let cheap_wrong = format.new_secret(&cheap.id, &mut getrandom::SysRng).unwrap();

    // Warm the cache with the correct secrets while the keys are still usable, then break them:
    // afterwards each state failure is a cache hit followed by the dummy argon2, the cheapest
    // path an attacker holding a revoked key can reach.
    let later = ts(now.unix() + 20);
    for (rec, key) in [(&inactive, &inactive_key), (&expired, &expired_key), (&orphan, &orphan_key)] {
        let user = store.get_user("gone").unwrap();
        auth.authenticate(&bearer(key.token().expose()), Some(rec), user.as_ref(), now).unwrap();
    }
    let inactive = ring.update(&op, inactive.id.as_str(), Change::SetActive(false), now).unwrap();
    ring.remove_user(&op, "gone", now).unwrap();
    // The live key is cached too, so the wrong-secret path meets a cache entry for its id.
    assert!(auth.authenticate(&bearer(live_key.token().expose()), Some(&live), None, later).is_ok());

    let cases: BTreeMap<Class, Case> = [
        (
            Class::WrongSecret,
            Case {
                creds: Credentials::from_pair(
                    &format,
                    live.id.as_str(),
                    wrong.expose(),
                    keycel::CredentialMethod::HeaderPair,
                )
                .unwrap(),
                record: Some(live.clone()),
                user: None,
            },
        ),
        (Class::UnknownId, Case { creds: bearer(unknown.token().expose()), record: None, user: None }),
        (
            Class::CheapRecord,
            Case {
                creds: Credentials::from_pair(
                    &format,
                    cheap.id.as_str(),
                    cheap_wrong.expose(),
                    keycel::CredentialMethod::HeaderPair,
                )
                .unwrap(),
                record: Some(cheap.clone()),
                user: None,
            },
        ),
        (Class::Inactive, Case { creds: bearer(inactive_key.token().expose()), record: Some(inactive), user: None }),
        (Class::Expired, Case { creds: bearer(expired_key.token().expose()), record: Some(expired), user: None }),
        // The host found no user for the personal token (the user was removed).
        (Class::UserRemoved, Case { creds: bearer(orphan_key.token().expose()), record: Some(orphan), user: None }),
    ]
    .into();

    // One untimed round so every path is warm (page faults, allocator, lazy cache key).
    for c in cases.values() {
        assert!(auth.authenticate(&c.creds, c.record.as_ref(), c.user.as_ref(), later).is_err());
    }
    let control = bearer(live_key.token().expose());
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let (ratios, control_ratio, report) = measure(&auth, &cases, (&control, &live), later, attempt);
        eprintln!("attempt {attempt}: median time / wrong-secret time per round: {report}");
        // The control proves the measurement can see a leak: a success served from the
        // verified-secret cache skips argon2 and must stand out.
        assert!(control_ratio < 1.0 - BOUND, "the measurement cannot see a skipped argon2: {report}");
        if ratios.values().all(|r| (r - 1.0).abs() <= BOUND) {
            return;
        }
        last = report;
    }
    panic!(
        "a failure class is distinguishable from a wrong secret by time in {ATTEMPTS} attempts (bound {:.0}%): {last}",
        BOUND * 100.0
    );
}

/// One measurement: `ROUNDS` rounds, each timing every class once in a shuffled order. Each
/// class's time is divided by the wrong-secret time *of the same round*, so load that changes
/// between rounds cancels out; the median of those ratios is the class's result.
fn measure(
    auth: &Authenticator,
    cases: &BTreeMap<Class, Case>,
    control: (&Credentials, &KeyRecord),
    now: Timestamp,
    attempt: usize,
) -> (BTreeMap<Class, f64>, f64, String) {
    let mut ratios: BTreeMap<Class, Vec<f64>> = BTreeMap::new();
    let mut control_ratios = Vec::new();
    let mut order: Vec<Option<Class>> = cases.keys().copied().map(Some).chain([None]).collect();
    for round in 0..ROUNDS {
        shuffle(&mut order, 0x5EED_1234_ABCD_0001 ^ ((attempt * ROUNDS + round) as u64 + 1).wrapping_mul(0x9E37_79B9));
        let mut times = BTreeMap::new();
        let mut control_time = 0.0;
        for slot in &order {
            let start = Instant::now();
            match slot {
                Some(class) => {
                    let c = &cases[class];
                    let r = auth.authenticate(&c.creds, c.record.as_ref(), c.user.as_ref(), now);
                    let elapsed = start.elapsed().as_secs_f64();
                    let failure = r.expect_err("every class fails");
                    assert_ne!(failure.reason, keycel::FailureReason::Overloaded);
                    times.insert(*class, elapsed);
                }
                None => {
                    assert!(auth.authenticate(control.0, Some(control.1), None, now).unwrap().cache_hit);
                    control_time = start.elapsed().as_secs_f64();
                }
            }
        }
        let reference = times[&Class::WrongSecret];
        for (class, t) in times {
            ratios.entry(class).or_default().push(t / reference);
        }
        control_ratios.push(control_time / reference);
    }
    let medians: BTreeMap<Class, f64> = ratios.iter_mut().map(|(c, v)| (*c, median(v))).collect();
    let control = median(&mut control_ratios);
    let mut report: Vec<String> = medians.iter().map(|(c, m)| format!("{c:?} {:+.1}%", (m - 1.0) * 100.0)).collect();
    report.push(format!("control (valid, cached) {:+.1}%", (control - 1.0) * 100.0));
    (medians, control, report.join(", "))
}

#[test]
fn out_of_scope_404_is_byte_identical_to_a_missing_resource() {
    let now = ts(1_800_000_000);
    let engine = Engine::new(PolicySet::default_policy().unwrap()).unwrap();
    let cheap = HashPolicy::with_params(HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 }).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone() as Arc<dyn Store>).with_hash(cheap).unwrap();
    let op = Actor::Operator("timing".into());
    let new = NewKey { accounts: AccountScope::Only(["acc_mine".to_string()].into()), ..NewKey::api("k", "reader") };
    let (_rec, key) = ring.create(&op, new, now).unwrap();
    let headers = [("authorization", format!("Bearer {}", key.token().expose()))];

    let inside = engine.authorize(headers.clone(), &Request::new("api.read").account("acc_mine"), store.as_ref(), now);
    assert!(inside.decision.allowed, "{:?}", inside.decision);
    drop(inside);

    let outside = engine.authorize(headers, &Request::new("api.read").account("acc_other"), store.as_ref(), now);
    let d = outside.decision;
    let missing = Decision::not_found(engine.messages(), None, "resource does not exist");
    assert_eq!(d.status, 404);
    assert!(outside.lease.is_none(), "a denied request never takes a lease");
    assert_eq!(d.body_json(), Decision::not_found_body(engine.messages()), "body differs from a missing resource");
    assert_eq!(d.body_json().as_bytes(), missing.body_json().as_bytes());
    assert_eq!(d.headers, missing.headers, "headers differ from a missing resource");
    assert_eq!((d.status, &d.code, &d.message), (missing.status, &missing.code, &missing.message));
}
