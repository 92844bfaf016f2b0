//! Failed-authentication budgets in Redis (`src/failures.lua`): two admissions sharing one
//! Redis (as two servers) charge one budget per subject, with core's arithmetic and answers;
//! a Redis outage falls back to this process's budgets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::Redis;
use keycel::admission::Admission;
use keycel::limiter::LimiterConfig;
use keycel::throttle::{Exhausted, FailureBudget, LocalBudget, Subject, ThrottleConfig};
use keycel::time::{Duration, Timestamp};
use keycel_redis::{RedisAdmission, RedisConfig};
use std::sync::Arc;

fn config() -> ThrottleConfig {
    ThrottleConfig { per_ip: 20, per_client_id: 10, window: Duration::from_secs(60), max_tracked: 100 }
}

fn budget(url: &str) -> Arc<dyn FailureBudget> {
    let a = RedisAdmission::new(RedisConfig::new(url, LimiterConfig::default())).unwrap();
    a.failure_budget(&config()).expect("a shared backend keeps failure budgets")
}

/// The same sequence of charges and refunds through two servers' budgets in Redis answers
/// exactly what one process-local budget answers (within one second, so Redis's clock and the
/// fixed `now` of the local budget agree to the second); peeks answer from each process's
/// refusals, without a round trip.
#[test]
fn two_servers_charge_one_budget_with_cores_answers() {
    let redis = Redis::start();
    let (a, b) = (budget(&redis.url()), budget(&redis.url()));
    let local = LocalBudget::new(config());
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let ip = Subject::Ip("2001:db8:1:2:3:4:5:6");
    let same_64 = Subject::Ip("2001:db8:1:2:ffff::1");
    for i in 0..20 {
        let side = if i % 2 == 0 { &a } else { &b };
        assert_eq!(side.charge(ip, now), local.charge(ip, now), "charge {i}");
    }
    // Spent across both servers (and the whole /64 with it): refused by either, like core.
    let refused = local.charge(same_64, now);
    assert_eq!(refused, Err(Exhausted { retry_after_secs: 3 }));
    assert_eq!(a.charge(same_64, now), refused);
    assert_eq!(b.charge(ip, now), refused);
    assert_eq!(a.exhausted(ip, now), local.exhausted(ip, now));
    // A success refunds one charge everywhere: one more failure fits, then refused again.
    // The peek (the screen, no round trip) answers from the refusals each process saw: the
    // refunding one forgets its own at once, the other keeps answering its last refusal until
    // its next accepted charge (the step's charge, shared, is the authority) or Retry-After.
    b.refund(ip, now);
    local.refund(ip, now);
    assert_eq!(b.exhausted(ip, now), None);
    assert_eq!(a.exhausted(ip, now), Some(Exhausted { retry_after_secs: 3 }));
    assert_eq!(a.charge(ip, now), local.charge(ip, now));
    assert_eq!(a.exhausted(ip, now), None);
    assert_eq!(b.charge(ip, now), local.charge(ip, now));
    assert!(b.charge(ip, now).is_err());
    // Client ids have their own budget (10); other subjects are untouched; peeks charge nothing.
    let id = Subject::ClientId("kc_0123456789abcdef");
    for _ in 0..50 {
        assert_eq!(a.exhausted(id, now), None);
    }
    for i in 0..10 {
        assert!(if i % 2 == 0 { &a } else { &b }.charge(id, now).is_ok(), "id charge {i}");
    }
    assert_eq!(b.charge(id, now), Err(Exhausted { retry_after_secs: 6 }));
    assert!(a.charge(Subject::Ip("203.0.113.1"), now).is_ok());
    // A refund of a subject never charged banks nothing.
    let fresh = Subject::Ip("203.0.113.2");
    a.refund(fresh, now);
    for _ in 0..20 {
        assert!(b.charge(fresh, now).is_ok());
    }
    assert!(a.charge(fresh, now).is_err());
}

/// Redis down: this process's own count answers (the bound holds per process; nobody is
/// locked out, and an outage forgives nothing this process spent), and the shared budgets
/// answer again when Redis is back.
#[test]
fn an_outage_falls_back_to_process_local_budgets() {
    let mut redis = Redis::start();
    let a = budget(&redis.url());
    let b = budget(&redis.url());
    let now = Timestamp::from_unix(1_795_000_000).unwrap();
    let ip = Subject::Ip("198.51.100.4");
    for _ in 0..20 {
        assert!(a.charge(ip, now).is_ok());
    }
    assert!(b.charge(ip, now).is_err(), "refused by the shared budget");
    redis.stop();
    assert!(a.charge(ip, now).is_err(), "the outage forgave this process's own failures");
    let other = Subject::Ip("198.51.100.5");
    for i in 0..20 {
        assert!(a.charge(other, now).is_ok(), "fallback charge {i}");
    }
    assert!(a.charge(other, now).is_err(), "the fallback bound holds in this process");
    assert!(b.charge(other, now).is_ok(), "and only in this process");
    // Back (without persistence: an empty Redis): the shared budget answers again.
    redis.restart();
    let third = Subject::Ip("198.51.100.6");
    for i in 0..20 {
        assert!(a.charge(third, now).is_ok(), "shared charge {i}");
    }
    assert!(b.charge(third, now).is_err(), "b never charged it: Redis refused");
}
