//! Admission cost per backend in ONE run (issue 13): today's lease, process-local, SQLite and
//! Redis admission, and the whole `authorize` (headers, cache hit, default policy) with each,
//! beside the loopback round trip (`PING`) to the same Redis, so the Redis figure can be read
//! as "round trips + overhead" (target: admit ≤ one round trip + 10 µs), and the `EVALSHA`
//! of an empty script (the floor of any script); Redis's own server-side time per call
//! (`INFO commandstats`) is printed on stderr.
//!
//! `cargo bench -p keycel-redis --bench admission`; then `backends/redis/benches/medians.py`
//! prints the medians and ratios. Starts Debian's `redis-server` on 127.0.0.1 (free port, no
//! persistence) and stops it after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{engine, Caller, Server, TempDir};

use criterion::{criterion_group, criterion_main, Criterion};
use keycel::admission::{Admission, LocalAdmission, SqliteAdmission, Ticket};
use keycel::limiter::{Limiter, LimiterConfig};
use keycel::time::Timestamp;
use keycel_redis::{RedisAdmission, RedisConfig};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ticket every backend admits (concurrency only: today's budget).
fn ticket(key_id: &str) -> Ticket<'_> {
    Ticket::new(key_id, None)
}

fn benches(c: &mut Criterion) {
    let server = Server::start();
    let url = server.url();
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let dir = TempDir::new("keycel-redis-bench");
    let sqlite = Arc::new(SqliteAdmission::open(dir.0.join("keys.db"), LimiterConfig::default()).unwrap());
    let redis = Arc::new(RedisAdmission::new(RedisConfig::new(url.clone(), LimiterConfig::default())).unwrap());
    let local = LocalAdmission::default();
    let limiter = Limiter::default();
    let t = ticket("kc_0123456789abcdef");
    drop(redis.admit(&t, now).unwrap()); // script loaded, connection pooled
    let info = keycel_redis::connection_info(&url).unwrap();
    let mut ping = redis::Client::open(info).unwrap().get_connection().unwrap();
    let empty: String = redis::cmd("SCRIPT").arg("LOAD").arg("return 1").query(&mut ping).unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut ping).unwrap();

    let mut g = c.benchmark_group("admission");
    g.bench_function("redis_ping_round_trip", |b| b.iter(|| redis::cmd("PING").query::<String>(&mut ping).unwrap()));
    // The floor of any script: `EVALSHA` of `return 1` on the same kind of connection.
    g.bench_function("redis_evalsha_empty_script", |b| {
        b.iter(|| redis::cmd("EVALSHA").arg(&empty).arg(0).query::<i64>(&mut ping).unwrap())
    });
    g.bench_function("lease_limiter_only", |b| {
        b.iter(|| drop(limiter.acquire_configured(black_box("kc_0123456789abcdef"), None, now).unwrap()))
    });
    g.bench_function("local", |b| b.iter(|| drop(local.admit(black_box(&t), now).unwrap())));
    g.bench_function("sqlite", |b| b.iter(|| drop(sqlite.admit(black_box(&t), now).unwrap())));
    // The SQLite admit alone (what a request waits for before it runs), the release outside
    // the measured time.
    g.bench_function("sqlite_admit", |b| {
        b.iter_custom(|n| {
            let mut spent = Duration::ZERO;
            for _ in 0..n {
                let start = Instant::now();
                let lease = sqlite.admit(black_box(&t), now).unwrap();
                spent += start.elapsed();
                drop(lease);
            }
            spent
        })
    });
    // The admit alone (the one round trip a request waits for before it runs), the release
    // (one `ZREM`) outside the measured time; then both.
    g.bench_function("redis_admit", |b| {
        b.iter_custom(|n| {
            let mut spent = Duration::ZERO;
            for _ in 0..n {
                let start = Instant::now();
                let lease = redis.admit(black_box(&t), now).unwrap();
                spent += start.elapsed();
                drop(lease);
            }
            spent
        })
    });
    g.bench_function("redis_admit_release", |b| b.iter(|| drop(redis.admit(black_box(&t), now).unwrap())));
    g.finish();
    // Server-side time per command (Redis's own `INFO commandstats`, both scripts together:
    // the empty one's figure comes from a RESETSTAT below).
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut ping).unwrap();
    for _ in 0..20_000 {
        let _: i64 = redis::cmd("EVALSHA").arg(&empty).arg(0).query(&mut ping).unwrap();
    }
    let empty_usec = usec_per_call(&mut ping, "evalsha");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut ping).unwrap();
    for _ in 0..20_000 {
        drop(redis.admit(&t, now).unwrap());
    }
    eprintln!(
        "server-side usec_per_call: evalsha (admit script) {}, evalsha (empty script) {empty_usec}, zrem {}, ping n/a",
        usec_per_call(&mut ping, "evalsha"),
        usec_per_call(&mut ping, "zrem"),
    );

    let caller = Caller::new(now);
    let (store, headers, req) = (&caller.store, caller.headers(), &caller.request);
    let engines = [
        ("local", engine()),
        ("sqlite", engine().with_admission(sqlite.clone())),
        ("redis", engine().with_admission(redis.clone())),
    ];
    let mut g = c.benchmark_group("authorize_cached_with_admission");
    for (name, e) in &engines {
        assert!(e.authorize(headers, req, store.as_ref(), now).decision.allowed);
        g.bench_function(*name, |b| b.iter(|| e.authorize(black_box(headers), black_box(req), store.as_ref(), now)));
    }
    g.finish();
    drop(engines);
}

/// `usec_per_call` of `command` in `INFO commandstats`.
fn usec_per_call(c: &mut redis::Connection, command: &str) -> String {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("cmdstat_{command}:"))).unwrap_or("");
    line.split(',').find_map(|f| f.strip_prefix("usec_per_call=")).unwrap_or("?").to_string()
}

criterion_group! {
    name = admission;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(admission);
