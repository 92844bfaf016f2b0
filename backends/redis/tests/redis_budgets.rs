//! Rate limits and credits through `RedisAdmission` (two admissions = two servers) against a
//! real `redis-server`: one budget across them, nothing below zero, and the credit bound after
//! a `FLUSHALL` or a restart without persistence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::{conn, Redis};
use keycel::admission::{Admission, CreditGrant, RateLimit, Refill, Refusal, Ticket};
use keycel::limiter::LimiterConfig;
use keycel::time::{Duration, Timestamp};
use keycel_redis::{FailMode, RedisAdmission, RedisConfig};
use std::sync::{Barrier, Mutex};

fn admission(url: &str) -> RedisAdmission {
    RedisAdmission::new(RedisConfig { fail: FailMode::Deny, ..RedisConfig::new(url, LimiterConfig::default()) })
        .unwrap()
}

fn now() -> Timestamp {
    keycel::clock::now()
}

fn grant(remaining: u64) -> CreditGrant {
    CreditGrant { remaining, refill: None, set_at: Timestamp::from_unix(now().unix() - 10).unwrap() }
}

fn metered<'a>(key_id: &'a str, rate: Option<RateLimit>, credits: Option<CreditGrant>) -> Ticket<'a> {
    Ticket { key_id, max_concurrent: Some(1000), rate, credits, cost: 1 }
}

/// 50 per 10 s with a burst of 5 across two servers: of 40 requests at once, the burst is
/// admitted (not twice the burst); allowed leases carry the `RateLimit` headers, refusals an
/// exact retry time.
#[test]
fn a_rate_limit_holds_across_two_servers() {
    let redis = Redis::start();
    let servers = [admission(&redis.url()), admission(&redis.url())];
    let rl = RateLimit::new(50, Duration::from_secs(10), 5).unwrap();
    let ticket = metered("kc_rate", Some(rl), None);
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for i in 0..40 {
        match servers[i % 2].admit(&ticket, now()) {
            Ok(l) => ok.push(l),
            Err(r) => refused.push(r),
        }
    }
    assert_eq!(ok.len(), 5, "{refused:?}");
    let headers = ok[0].budget().unwrap().headers();
    assert_eq!(headers[0], ("RateLimit-Policy".to_string(), "\"default\";q=50;w=10".to_string()));
    assert!(headers[1].1.starts_with("\"default\";r=4;t="), "{headers:?}");
    match &refused[0] {
        Refusal::RateLimited { policy, retry_after_ms, .. } => {
            assert_eq!(*policy, rl);
            assert!((1..=200).contains(retry_after_ms), "{retry_after_ms}");
        }
        other => panic!("{other:?}"),
    }
}

/// Credits never go below zero: 8 concurrent clients over two servers spend a grant of 50
/// exactly once each; every remaining count is seen once; then 429 `usage_exceeded` without
/// a refill time.
#[test]
fn credits_never_go_below_zero_under_eight_concurrent_clients() {
    let redis = Redis::start();
    let servers = [admission(&redis.url()), admission(&redis.url())];
    let g = grant(50);
    let barrier = Barrier::new(8);
    let seen = Mutex::new(Vec::new());
    let refusals = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for c in 0..8 {
            let (server, barrier, seen, refusals) = (&servers[c % 2], &barrier, &seen, &refusals);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    match server.admit(&metered("kc_credits", None, Some(g)), now()) {
                        Ok(l) => seen.lock().unwrap().push(l.budget().unwrap().credits_remaining.unwrap()),
                        Err(r) => refusals.lock().unwrap().push(r),
                    }
                }
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<u64>>());
    let refusals = refusals.into_inner().unwrap();
    assert_eq!(refusals.len(), 30);
    assert!(refusals.iter().all(|r| *r == Refusal::UsageExceeded { retry_after_secs: None }), "{refusals:?}");
    assert_eq!(servers[1].usage("kc_credits", &g, now()).unwrap(), 0);
}

fn spend(a: &RedisAdmission, key: &str, g: CreditGrant, n: usize) -> usize {
    (0..n).filter(|_| a.admit(&metered(key, None, Some(g)), now()).is_ok()).count()
}

/// FLUSHALL mid-run: the count is gone from Redis, but each server's floor (the highest count
/// it saw) re-seeds it. One server: nothing is handed out twice. Two servers alternating: at
/// most the gap between the two floors (here 1) — never the 30 already spent.
#[test]
fn flushall_mid_run_does_not_restore_spent_credits_beyond_the_bound() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let flush = |c: &mut redis::Connection| redis::cmd("FLUSHALL").query::<()>(c).unwrap();

    let one = admission(&redis.url());
    let g = grant(50);
    assert_eq!(spend(&one, "kc_flush1", g, 30), 30);
    flush(&mut c);
    assert_eq!(one.usage("kc_flush1", &g, now()).unwrap(), 20, "the floor re-seeds the count");
    assert_eq!(spend(&one, "kc_flush1", g, 40), 20, "credits handed out again after FLUSHALL");

    let servers = [admission(&redis.url()), admission(&redis.url())];
    let mut admitted = 0;
    for i in 0..30 {
        admitted += spend(&servers[i % 2], "kc_flush2", g, 1);
    }
    assert_eq!(admitted, 30);
    flush(&mut c);
    for i in 0..60 {
        admitted += spend(&servers[i % 2], "kc_flush2", g, 1);
    }
    assert!((50..=51).contains(&admitted), "{admitted} admitted of a grant of 50 across a FLUSHALL");
}

/// Redis restarted without persistence mid-run (all state lost, script cache too): no
/// crash, the fail mode while it is down, then the count resumes from the floor.
#[test]
fn a_restart_without_persistence_resumes_credits_from_the_floor() {
    let mut redis = Redis::start();
    let a = admission(&redis.url());
    let g = grant(10);
    assert_eq!(spend(&a, "kc_restart", g, 6), 6);
    redis.stop();
    assert!(matches!(
        a.admit(&metered("kc_restart", None, Some(g)), now()),
        Err(Refusal::Unavailable { backend: "redis", .. })
    ));
    redis.restart();
    assert_eq!(spend(&a, "kc_restart", g, 10), 4);
}

/// With a refill, a refusal says when the next refill comes (Redis's clock), and a new grant
/// (credits set again: another `set_at`) starts a new count.
#[test]
fn refill_time_and_a_new_grant() {
    let redis = Redis::start();
    let a = admission(&redis.url());
    let t = now().unix();
    let g = CreditGrant {
        remaining: 2,
        refill: Some(Refill { amount: 2, interval: Duration::from_secs(3600) }),
        set_at: Timestamp::from_unix(t - 60).unwrap(),
    };
    assert_eq!(spend(&a, "kc_refill", g, 5), 2);
    match a.admit(&metered("kc_refill", None, Some(g)), now()) {
        Err(Refusal::UsageExceeded { retry_after_secs: Some(s) }) => assert!((3_400..=3_541).contains(&s), "{s}"),
        other => panic!("{other:?}"),
    }
    let again = CreditGrant { remaining: 3, refill: None, set_at: Timestamp::from_unix(t).unwrap() };
    assert_eq!(spend(&a, "kc_refill", again, 5), 3);
    // A server still holding the old record counts against the newer grant.
    assert_eq!(spend(&a, "kc_refill", g, 5), 0);
}
