//! Per-call latency of admission (issue 13's targets are per-call medians: "SQLite <= 30 µs",
//! "Redis <= one loopback round trip + 10 µs", "process-local no slower than today's lease"),
//! every operation timed one call at a time and interleaved round by round in ONE process,
//! so the loopback round trip (`PING`) and each backend see the same machine at the same
//! moment. Criterion's `admission` bench gives the mean cost per call (throughput); this one
//! gives the distribution a request sees (p50, p90, p99).
//!
//! `cargo bench -p keycel-redis --bench latency` (rounds: `KEYCEL_LATENCY_ROUNDS`, default
//! 20,000). Starts Debian's `redis-server` on 127.0.0.1 and stops it after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{engine, Caller, Server, TempDir};
use keycel::admission::{Admission, LocalAdmission, SqliteAdmission, Ticket};
use keycel::limiter::{Limiter, LimiterConfig};
use keycel::time::Timestamp;
use keycel_redis::{RedisAdmission, RedisConfig};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const FLOOR_SCRIPT: &str = "local t = redis.call('TIME') \
    local n = redis.call('ZCARD', KEYS[1]) \
    if n >= tonumber(ARGV[1]) then return 0 end \
    redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2], ARGV[3]) \
    redis.call('PEXPIRE', KEYS[1], ARGV[2] * 2) \
    return n + 1";

/// The floor split: its reads alone (`TIME`, `ZCARD`), and its reads and one write (`ZADD`).
const READS_SCRIPT: &str = "local t = redis.call('TIME') return redis.call('ZCARD', KEYS[1]) + 1";
const ONE_WRITE_SCRIPT: &str = "local t = redis.call('TIME') \
    local n = redis.call('ZCARD', KEYS[1]) \
    if n >= tonumber(ARGV[1]) then return 0 end \
    redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2], ARGV[3]) \
    return n + 1";

/// Calls per timed batch for the sub-microsecond operations (one `Instant` pair per batch).
const BATCH: u32 = 100;

/// Nanoseconds per call of each operation, one entry per round.
#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<f64>>);

impl Samples {
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add(name, start.elapsed().as_secs_f64() * 1e9);
        out
    }

    fn add(&mut self, name: &'static str, ns: f64) {
        self.0.entry(name).or_default().push(ns);
    }

    fn sorted(&mut self) {
        for v in self.0.values_mut() {
            v.sort_by(f64::total_cmp);
        }
    }

    fn q(&self, name: &str, q: f64) -> f64 {
        let v = &self.0[name];
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// One call of a scratch script on a set of its own.
fn scratch(c: &mut redis::Connection, sha: &str) -> i64 {
    redis::cmd("EVALSHA")
        .arg(sha)
        .arg(1)
        .arg("{keycel:floor}:leases")
        .arg(5)
        .arg(60_000)
        .arg("floor-1")
        .query(c)
        .unwrap()
}

fn show(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (one run, all rows).
    let rounds: usize = std::env::var("KEYCEL_LATENCY_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let server = Server::start();
    let url = server.url();
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let dir = TempDir::new("keycel-latency");
    let sqlite = Arc::new(SqliteAdmission::open(dir.0.join("keys.db"), LimiterConfig::default()).unwrap());
    let redis = Arc::new(RedisAdmission::new(RedisConfig::new(url.clone(), LimiterConfig::default())).unwrap());
    let local = LocalAdmission::default();
    let limiter = Limiter::default();
    let key_id = "kc_0123456789abcdef";
    let t = Ticket::new(key_id, None);
    drop(redis.admit(&t, now).unwrap()); // script loaded, connection pooled
    let info = keycel_redis::connection_info(&url).unwrap();
    let mut ping = redis::Client::open(info).unwrap().get_connection().unwrap();
    let empty: String = redis::cmd("SCRIPT").arg("LOAD").arg("return 1").query(&mut ping).unwrap();

    let caller = Caller::new(now);
    let (store, headers, req) = (&caller.store, caller.headers(), &caller.request);
    let engines = [
        ("authorize/local", engine()),
        ("authorize/sqlite", engine().with_admission(sqlite.clone())),
        ("authorize/redis", engine().with_admission(redis.clone())),
    ];
    for (_, e) in &engines {
        assert!(e.authorize(headers, req, store.as_ref(), now).decision.allowed);
    }

    // The floor of any admission script that keeps the rules (Redis's clock, count
    // before write, a set that expires): `TIME`, `ZCARD`, `ZADD`, `PEXPIRE` and nothing else,
    // on a scratch set.
    let floor: String = redis::cmd("SCRIPT").arg("LOAD").arg(FLOOR_SCRIPT).query(&mut ping).unwrap();
    let reads: String = redis::cmd("SCRIPT").arg("LOAD").arg(READS_SCRIPT).query(&mut ping).unwrap();
    let one_write: String = redis::cmd("SCRIPT").arg("LOAD").arg(ONE_WRITE_SCRIPT).query(&mut ping).unwrap();

    let mut s = Samples::default();
    let warm_up = rounds / 10;
    for round in 0..warm_up + rounds {
        let mut r = Samples::default();
        // The groups run in a rotating order, so no operation always follows the same one
        // (the first call after a blocking read finds colder caches on a VM).
        for group in 0..4 {
            match (round + group) % 4 {
                0 => {
                    r.time("redis/ping", || redis::cmd("PING").query::<String>(&mut ping).unwrap());
                    r.time("redis/evalsha_empty", || scratch(&mut ping, &empty));
                    r.time("redis/evalsha_reads", || scratch(&mut ping, &reads));
                    r.time("redis/evalsha_one_write", || scratch(&mut ping, &one_write));
                    r.time("redis/evalsha_floor", || scratch(&mut ping, &floor));
                    let lease = r.time("redis/admit", || redis.admit(black_box(&t), now).unwrap());
                    r.time("redis/release", || drop(lease));
                }
                1 => {
                    let lease = r.time("sqlite/admit", || sqlite.admit(black_box(&t), now).unwrap());
                    r.time("sqlite/release", || drop(lease));
                }
                2 => {
                    r.time("local/admit_release", || {
                        for _ in 0..BATCH {
                            drop(local.admit(black_box(&t), now).unwrap());
                        }
                    });
                    r.time("lease/acquire_release", || {
                        for _ in 0..BATCH {
                            drop(limiter.acquire_configured(black_box(key_id), None, now).unwrap());
                        }
                    });
                }
                _ => {
                    for (name, e) in &engines {
                        let d = r.time(name, || e.authorize(black_box(headers), black_box(req), store.as_ref(), now));
                        drop(d);
                    }
                }
            }
        }
        if round >= warm_up {
            for (name, v) in r.0 {
                let per_call =
                    if name.starts_with("local/") || name.starts_with("lease/") { f64::from(BATCH) } else { 1.0 };
                s.add(name, v[0] / per_call);
            }
        }
    }
    // Per-round sums: what a request pays for its slot, taken and given back.
    let sums: Vec<(&'static str, f64)> = (0..rounds)
        .flat_map(|i| {
            [
                ("sqlite/admit+release", s.0["sqlite/admit"][i] + s.0["sqlite/release"][i]),
                ("redis/admit+release", s.0["redis/admit"][i] + s.0["redis/release"][i]),
            ]
        })
        .collect();
    for (name, ns) in sums {
        s.add(name, ns);
    }
    s.sorted();

    println!("per-call latency, {rounds} interleaved rounds (one call of each per round)");
    println!("{:28} {:>10} {:>10} {:>10}", "operation", "p50", "p90", "p99");
    for name in s.0.keys() {
        println!("{name:28} {:>10} {:>10} {:>10}", show(s.q(name, 0.5)), show(s.q(name, 0.9)), show(s.q(name, 0.99)));
    }
    let rtt = s.q("redis/ping", 0.5);
    let admit = s.q("redis/admit", 0.5);
    let floor = s.q("redis/evalsha_floor", 0.5);
    println!(
        "redis admit p50 {} = round trip (PING p50 {}) + {} (target: + 10 µs or less); the floor script p50 {} = round trip + {}; admit = floor + {}",
        show(admit),
        show(rtt),
        show(admit - rtt),
        show(floor),
        show(floor - rtt),
        show(admit - floor)
    );
    println!(
        "sqlite admit p50 {} (target: 30 µs or less); admit + release p50 {}",
        show(s.q("sqlite/admit", 0.5)),
        show(s.q("sqlite/admit+release", 0.5))
    );
    println!(
        "local admit+release p50 {} vs today's lease {}: {:.2}x",
        show(s.q("local/admit_release", 0.5)),
        show(s.q("lease/acquire_release", 0.5)),
        s.q("local/admit_release", 0.5) / s.q("lease/acquire_release", 0.5)
    );
    drop(engines);
}
