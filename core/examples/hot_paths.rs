//! Runs one hot path N times, for instruction counting under callgrind or `perf stat`
//! (noise-free where wall-clock benches on a shared machine are not):
//! `valgrind --tool=callgrind target/release/examples/hot_paths cache_hit 10000`;
//! `core/icount/check.sh` counts `authorize` alone and compares it with the recorded figure.
use keycel::auth::{AuthConfig, Authenticator};
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::store::MemoryStore;
use keycel::time::Timestamp;
use std::hint::black_box;
use std::sync::Arc;

fn getrandom_rng() -> keycel::test_rng::TestRng {
    keycel::test_rng::TestRng::new(7)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("authorize", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let now = Timestamp::from_unix(1_795_000_000).ok_or("time")?;
    let policy = keycel::policy::PolicySet::default_policy()?;
    let mut auth = keycel::engine::auth_config_for(&policy)?;
    auth.hash = HashPolicy::with_params(HashParams::EDGE)?;
    let engine = Arc::new(Engine::with_config(policy, auth, None)?);
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone()).with_hash(HashPolicy::with_params(HashParams::EDGE)?)?;
    let (rec, key) = ring.create(&Actor::Operator("bench".into()), NewKey::api("bench", "integration"), now)?;
    let bearer = format!("Bearer {}", key.token().expose());
    let headers = [("accept", "application/json"), ("authorization", bearer.as_str())];
    let req = Request::new("api.read").account("acc_2").method("GET").path("/v1/data");
    let plain =
        Authenticator::new(AuthConfig { hash: HashPolicy::with_params(HashParams::EDGE)?, ..AuthConfig::default() })?;
    let creds = plain.credentials(headers)?;
    plain.authenticate(&creds, Some(&rec), None, now)?;
    engine.authorize(headers, &req, store.as_ref(), now);
    // Failures with the default (OWASP) parameters: unknown id vs known id with a wrong secret.
    let owasp = Authenticator::new(AuthConfig::default())?;
    let owasp_rec = {
        let mut r = rec.clone();
        r.secret_hash = HashPolicy::default().hash(b"not the secret", &mut getrandom_rng())?;
        r
    };
    let run = || match what {
        "cache_hit" => drop(black_box(plain.authenticate(&creds, Some(&rec), None, now))),
        "credentials" => drop(black_box(plain.credentials(headers))),
        "decide" => drop(black_box(engine.decide(&rec, None, &req, now))),
        "unknown_id" => drop(black_box(owasp.authenticate(&creds, None, None, now))),
        "wrong_secret" => drop(black_box(owasp.authenticate(&creds, Some(&owasp_rec), None, now))),
        _ => drop(black_box(engine.authorize(headers, &req, store.as_ref(), now))),
    };
    measured(n, &run);
    Ok(())
}

/// The measured loop, a function of its own so callgrind can count it alone
/// (`--collect-atstart=no --toggle-collect='*measured*'`, see `core/icount/check.sh`).
#[inline(never)]
fn measured(n: usize, run: &dyn Fn()) {
    for _ in 0..n {
        run();
    }
}
