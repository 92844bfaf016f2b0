//! RedisAdmission against a real `redis-server` (Debian's), started on 127.0.0.1 on a free
//! port without persistence, and stopped after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::admission::{Admission, Refusal, Ticket};
use keycel::limiter::LimiterConfig;
use keycel::time::{Duration, Timestamp};
use keycel_redis::{FailMode, RedisAdmission, RedisConfig};
use std::sync::{Arc, Barrier};
use std::time::Duration as StdDuration;

mod common;
use common::Redis;

fn admission(url: &str, ttl: i64, fail: FailMode) -> RedisAdmission {
    let limits = LimiterConfig { lease_ttl: Duration::from_secs(ttl), ..LimiterConfig::default() };
    RedisAdmission::new(RedisConfig { fail, ..RedisConfig::new(url, limits) }).unwrap()
}

fn now() -> Timestamp {
    keycel::clock::now()
}

/// Two admissions (as two servers would hold) share one budget: of 20 concurrent requests
/// on a key limited to 5, exactly 5 are admitted.
#[test]
fn two_servers_sharing_redis_admit_exactly_five_of_twenty() {
    let redis = Redis::start();
    let servers = [admission(&redis.url(), 60, FailMode::Deny), admission(&redis.url(), 60, FailMode::Deny)];
    let barrier = Arc::new(Barrier::new(20));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let server = servers[i % 2].clone();
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let r = server.admit(&Ticket::new("kc_fleet", Some(5)), now());
                    // Hold while the others try.
                    std::thread::sleep(StdDuration::from_millis(300));
                    r.map(|_| ())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let busy = results.iter().filter(|r| matches!(r, Err(Refusal::Busy { limit: 5, .. }))).count();
    assert_eq!((ok, busy), (5, 15), "{results:?}");
    assert_eq!(servers[0].in_flight("kc_fleet").unwrap(), 0, "released on drop");
}

/// A live holder keeps its slot past the TTL (renewed); a lost one (its process gone: no
/// renewal, no release) is reclaimed once the TTL passes.
#[test]
fn live_leases_are_renewed_lost_ones_reclaimed_after_the_ttl() {
    let redis = Redis::start();
    let live = admission(&redis.url(), 1, FailMode::Deny);
    let ticket = Ticket::new("kc_ttl", Some(2));
    let kept = live.admit(&ticket, now()).unwrap();
    {
        // What a SIGKILLed process leaves: its lease with a deadline one TTL ahead of Redis's
        // clock, never released and never renewed again.
        let mut c = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut c).unwrap();
        let deadline = secs * 1000 + micros / 1000 + 1000;
        let _: i64 = redis::cmd("ZADD")
            .arg(keycel_redis::lease_set("kc_ttl"))
            .arg(deadline)
            .arg("dead-1")
            .query(&mut c)
            .unwrap();
    }
    assert!(matches!(live.admit(&ticket, now()), Err(Refusal::Busy { .. })));
    std::thread::sleep(StdDuration::from_millis(2_500));
    assert_eq!(live.in_flight("kc_ttl").unwrap(), 1, "the live lease was not renewed, or the lost one not reclaimed");
    let next = live.admit(&ticket, now()).unwrap();
    assert!(matches!(live.admit(&ticket, now()), Err(Refusal::Busy { .. })));
    drop((kept, next));
    assert_eq!(live.in_flight("kc_ttl").unwrap(), 0);
}

/// Redis restarted mid-run: while it is down the configured fail mode answers (deny: 503
/// `Unavailable`; local: admitted in process, marked as such); once it is back, admission
/// recovers (the script is reloaded after `NOSCRIPT`).
#[test]
fn redis_restart_mid_run_follows_the_fail_mode_then_recovers() {
    let mut redis = Redis::start();
    let deny = admission(&redis.url(), 60, FailMode::Deny);
    let local = admission(&redis.url(), 60, FailMode::Local);
    let ticket = Ticket::new("kc_restart", Some(5));
    drop(deny.admit(&ticket, now()).unwrap());
    drop(local.admit(&ticket, now()).unwrap());
    redis.stop();
    match deny.admit(&ticket, now()) {
        Err(Refusal::Unavailable { backend: "redis", .. }) => {}
        other => panic!("deny mode while Redis is down: {other:?}"),
    }
    let fallback = local.admit(&ticket, now()).unwrap();
    assert_eq!(fallback.fallback_from(), Some("redis"));
    drop(fallback);
    redis.restart(); // empty: no script cached, no leases
    let back = deny.admit(&ticket, now()).unwrap();
    assert_eq!(back.fallback_from(), None);
    let back2 = local.admit(&ticket, now()).unwrap();
    assert_eq!(back2.fallback_from(), None);
    assert_eq!(deny.in_flight("kc_restart").unwrap(), 2);
}

#[test]
fn keys_are_hash_tagged_per_key_and_debug_hides_the_password() {
    assert_eq!(keycel_redis::lease_set("kc_abc"), "{keycel:kc_abc}:leases");
    let c = RedisConfig::new("redis://app:s3cr3t@127.0.0.1:6379/0", LimiterConfig::default());
    let shown = format!("{c:?} {:?}", RedisAdmission::new(c.clone()).unwrap());
    assert!(!shown.contains("s3cr3t") && shown.contains("redis://***@127.0.0.1:6379/0"), "{shown}");
}

/// The script flushed from a live Redis (`SCRIPT FLUSH`: the pooled connection stays up) is
/// reloaded on `NOSCRIPT` and the admit answers as usual.
#[test]
fn a_flushed_script_is_reloaded_on_a_live_connection() {
    let redis = Redis::start();
    let a = admission(&redis.url(), 60, FailMode::Deny);
    let ticket = Ticket::new("kc_flush", Some(1));
    drop(a.admit(&ticket, now()).unwrap());
    let mut c = common::conn(&redis);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    let held = a.admit(&ticket, now()).unwrap();
    assert!(matches!(a.admit(&ticket, now()), Err(Refusal::Busy { limit: 1, .. })));
    drop(held);
    drop(a.admit(&ticket, now()).unwrap());
}

#[test]
fn connections_turn_nagle_off() {
    assert!(keycel_redis::connection_info("redis://127.0.0.1:6379/0").unwrap().tcp_settings().nodelay());
    assert!(keycel_redis::connection_info("not a url").is_err());
}
