//! Stress test of the per-key lease counter with real threads (issue 7).
//!
//! Eight threads hammer three keys (limits 1, 2 and the default 5). Between acquire and
//! release a handler may panic (caught, like a server catching a handler panic), may lose its
//! lease (`mem::forget`, like a host that dropped a lease across an FFI boundary), or may
//! finish normally. While they run, nobody ever holds more leases for a key than its limit;
//! at the end, dropped and panicked leases are all back, and lost ones come back after their
//! expiry, leaving zero leases in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::limiter::{Limiter, LimiterConfig};
use keycel::time::{Duration, Timestamp};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const THREADS: usize = 8;
const ITERATIONS: usize = 20_000;
const KEYS: [(&str, Option<u32>); 3] = [("kc_one", Some(1)), ("kc_two", Some(2)), ("kc_five", None)];
const TTL: i64 = 60;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix(s).unwrap()
}

#[test]
fn panics_and_lost_leases_leave_nothing_in_flight() {
    // Panics are part of the test; keep their messages out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if !info.payload().downcast_ref::<&str>().is_some_and(|m| m.starts_with("injected")) {
            eprintln!("{info}");
        }
    }));

    let limiter = Limiter::new(LimiterConfig { lease_ttl: Duration::from_secs(TTL), ..LimiterConfig::default() });
    let holding: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    // One lost lease at most per key with a limit above 1 (so no key is blocked for good).
    let lost_per_key: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let lost = Arc::new(AtomicUsize::new(0));
    let panicked = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));

    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (limiter, holding, lost, panicked, granted, busy) =
                (limiter.clone(), holding.clone(), lost.clone(), panicked.clone(), granted.clone(), busy.clone());
            let lost_per_key = lost_per_key.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (thread as u64 + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for _ in 0..ITERATIONS {
                    let r = next();
                    let k = (r % 3) as usize;
                    let (key, limit) = KEYS[k];
                    let max = limit.unwrap_or(5) as usize;
                    // Time stays at 0 during the run: no lease expires, so the limit is strict.
                    let lease = match limiter.acquire(key, limit, t(0)) {
                        Ok(l) => l,
                        Err(b) => {
                            assert_eq!(b.limit as usize, max);
                            busy.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    granted.fetch_add(1, Ordering::Relaxed);
                    // Counted after acquire and uncounted before release: never above the limit.
                    let now_holding = holding[k].fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now_holding <= max, "{now_holding} leases held for {key} (limit {max})");
                    match (r >> 8) % 10 {
                        0 => {
                            holding[k].fetch_sub(1, Ordering::SeqCst);
                            let res = catch_unwind(AssertUnwindSafe(move || {
                                let _lease = lease;
                                std::thread::yield_now();
                                panic!("injected handler panic");
                            }));
                            assert!(res.is_err());
                            panicked.fetch_add(1, Ordering::Relaxed);
                        }
                        1 if max > 1
                            && lost_per_key[k].compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() =>
                        {
                            // Lost across an FFI boundary: never released, reclaimed after expiry.
                            // Its slot stays taken, so `holding` keeps counting it.
                            std::mem::forget(lease);
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            std::thread::yield_now();
                            holding[k].fetch_sub(1, Ordering::SeqCst);
                            drop(lease);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a worker thread failed an assertion");
    }
    std::panic::set_hook(default_hook);

    let lost = lost.load(Ordering::Relaxed);
    let (granted, busy, panicked) =
        (granted.load(Ordering::Relaxed), busy.load(Ordering::Relaxed), panicked.load(Ordering::Relaxed));
    eprintln!("granted {granted}, busy {busy}, panicked {panicked}, lost {lost}");
    assert!(panicked > 100 && granted > 1000 && busy > 0, "the run exercised too little");
    // Only lost leases remain, and never more than the limits allow.
    assert_eq!(limiter.total_in_flight(), lost, "released or panicked leases still in flight");
    assert_eq!(lost, 2, "one lost lease for each key with a limit above 1");
    // Before expiry nothing is reclaimed; after it, everything.
    assert_eq!(limiter.reclaim_expired(t(TTL - 1)), 0);
    assert_eq!(limiter.reclaim_expired(t(TTL)), lost);
    assert_eq!(limiter.total_in_flight(), 0, "leases in flight after reclaim");
    // Every key is usable up to its full limit again.
    for (key, limit) in KEYS {
        let leases: Vec<_> = (0..limit.unwrap_or(5)).map(|_| limiter.acquire(key, limit, t(TTL)).unwrap()).collect();
        assert!(limiter.acquire(key, limit, t(TTL)).is_err());
        drop(leases);
    }
    assert_eq!(limiter.total_in_flight(), 0);
}

/// Lost leases come back on their own when the key is next at its limit, without a sweep.
#[test]
fn expiry_reclaims_lost_leases_at_the_limit() {
    let limiter = Limiter::new(LimiterConfig { lease_ttl: Duration::from_secs(TTL), ..LimiterConfig::default() });
    for _ in 0..2 {
        std::mem::forget(limiter.acquire("kc_x", Some(2), t(0)).unwrap());
    }
    assert!(limiter.acquire("kc_x", Some(2), t(TTL - 1)).is_err(), "unexpired lost leases still count");
    let a = limiter.acquire("kc_x", Some(2), t(TTL)).unwrap();
    let b = limiter.acquire("kc_x", Some(2), t(TTL)).unwrap();
    assert!(limiter.acquire("kc_x", Some(2), t(TTL)).is_err());
    assert_eq!(limiter.in_flight("kc_x"), 2);
    drop((a, b));
    assert_eq!(limiter.total_in_flight(), 0);
}
