//! Key-side costs: token parsing, credential extraction, authentication (cache hit, cold per
//! preset, unknown id, wrong secret for a record hashed with another preset) and lease
//! acquire+release. `cargo bench -p keycel --features test-util --bench keys`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keycel::auth::{AuthConfig, Authenticator};
use keycel::cache::CacheConfig;
use keycel::hash::{HashParams, HashPolicy};
use keycel::limiter::Limiter;
use keycel::record::{KeyKind, KeyRecord};
use keycel::test_rng::TestRng;
use keycel::time::Timestamp;
use keycel::token::{IssuedKey, TokenFormat};
use std::hint::black_box;

fn record(key: &IssuedKey, params: HashParams, now: Timestamp) -> KeyRecord {
    let hash =
        HashPolicy::with_params(params).unwrap().hash(key.secret.expose().as_bytes(), &mut TestRng::new(2)).unwrap();
    KeyRecord::new(key.client_id.clone(), "bench", KeyKind::Api, "integration", hash, now)
}

fn authenticator(params: HashParams, cache: bool) -> Authenticator {
    let mut cfg = AuthConfig { hash: HashPolicy::with_params(params).unwrap(), ..AuthConfig::default() };
    if !cache {
        cfg.cache = CacheConfig { capacity: 0, ttl: None };
    }
    Authenticator::new(cfg).unwrap()
}

fn benches(c: &mut Criterion) {
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let fmt = TokenFormat::default();
    let key = fmt.issue(&mut TestRng::new(1)).unwrap();
    let token = key.token().expose().to_string();
    let bearer = format!("Bearer {token}");
    let headers = [("accept", "application/json"), ("authorization", bearer.as_str()), ("user-agent", "bench")];

    c.bench_function("token_parse", |b| b.iter(|| fmt.parse_token(black_box(&token)).unwrap()));
    let auth = authenticator(HashParams::OWASP, true);
    c.bench_function("credentials_from_headers", |b| b.iter(|| auth.credentials(black_box(headers)).unwrap()));

    let rec = record(&key, HashParams::OWASP, now);
    let creds = auth.credentials(headers).unwrap();
    auth.authenticate(&creds, Some(&rec), None, now).unwrap();
    c.bench_function("authenticate_cache_hit", |b| {
        b.iter(|| auth.authenticate(black_box(&creds), Some(&rec), None, now).unwrap())
    });

    let mut g = c.benchmark_group("argon2");
    g.sample_size(20);
    for (name, params) in [("owasp", HashParams::OWASP), ("edge", HashParams::EDGE)] {
        let cold = authenticator(params, false);
        let rec = record(&key, params, now);
        g.bench_function(format!("authenticate_cold_{name}"), |b| {
            b.iter(|| cold.authenticate(&creds, Some(&rec), None, now).unwrap())
        });
    }
    let cold = authenticator(HashParams::OWASP, false);
    let other = fmt.issue(&mut TestRng::new(3)).unwrap();
    // A well-formed secret for the same client id that is not the stored one.
    let wrong_secret = fmt.new_secret(&key.client_id, &mut TestRng::new(77)).unwrap();
    let wrong = keycel::Credentials::from_pair(
        &fmt,
        key.client_id.as_str(),
        wrong_secret.expose(),
        keycel::CredentialMethod::Bearer,
    )
    .unwrap();
    let unknown =
        keycel::Credentials::from_token(&fmt, other.token().expose(), keycel::CredentialMethod::Bearer).unwrap();
    g.bench_function("unknown_client_id_owasp", |b| {
        b.iter(|| cold.authenticate(&unknown, None, None, now).unwrap_err())
    });
    g.bench_function("known_id_wrong_secret_owasp", |b| {
        b.iter(|| cold.authenticate(&wrong, Some(&rec), None, now).unwrap_err())
    });
    // Issue 12: the same wrong secret for a record hashed with `edge` while the policy says
    // `owasp` must cost what an unknown id costs (padded to the configured preset).
    let edge_rec = record(&key, HashParams::EDGE, now);
    g.bench_function("known_id_wrong_secret_edge_record_owasp", |b| {
        b.iter(|| cold.authenticate(&wrong, Some(&edge_rec), None, now).unwrap_err())
    });
    g.finish();

    let limiter = Limiter::default();
    c.bench_function("lease_acquire_release", |b| {
        b.iter_batched(
            || (),
            |_| drop(limiter.acquire(black_box("kc_0123456789abcdef"), None, now).unwrap()),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(keys, benches);
criterion_main!(keys);
