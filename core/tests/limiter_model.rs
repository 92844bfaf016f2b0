//! Model checks of the per-key lease counter (issue 7).
//!
//! Two complementary checks:
//!
//! 1. `loom_*`: loom explores every interleaving (under its memory model) of three threads
//!    running the lease protocol: the key map lock, the per-key slot lock, the `Arc` that keeps
//!    a slot alive while a lease or an acquirer holds it, and `reclaim_expired`, which drops
//!    a slot only when nobody else holds it. `core/src/limiter.rs` uses `std::sync` directly,
//!    so loom cannot drive it; [`model`] below is a line-by-line transcription of its
//!    `acquire`, `Lease::release_inner` and `reclaim_expired` onto loom's primitives. If the
//!    limiter's locking changes, change the transcription with it (the comments name each
//!    step's original).
//! 2. `every_interleaving_of_operations_on_the_real_limiter`: the real `Limiter`, with three
//!    "threads" of operations (acquire, release, forget, reclaim, advance time) interleaved in
//!    every possible order, checked after every step against a counting model: never more
//!    than the limit in flight, a slot freed by release or reclaimed after expiry is
//!    available again, and nothing is left in flight at the end.
//!
//! Leases held across the Python and WASM boundaries (released by the host, or reclaimed after
//! expiry when lost) are tested by those packages' own suites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::limiter::{Lease, Limiter, LimiterConfig};
use keycel::time::{Duration, Timestamp};

mod model {
    //! Transcription of `core/src/limiter.rs` onto loom primitives.
    use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct Slot {
        pub held: Vec<(u64, i64)>,
    }

    #[derive(Default)]
    pub struct Inner {
        pub keys: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
        pub next_id: AtomicU64,
        /// Test instrumentation: leases granted and not yet released, changed only under the
        /// slot lock together with `held`.
        pub granted: AtomicUsize,
    }

    pub struct Lease {
        slot: Arc<Mutex<Slot>>,
        id: u64,
        inner: Arc<Inner>,
    }

    /// `Limiter::acquire`.
    pub fn acquire(inner: &Arc<Inner>, key: &str, limit: usize, now: i64, ttl: i64) -> Option<Lease> {
        // `let slot = { let mut keys = lock(&self.inner.keys); ... }`
        let slot = {
            let mut keys = inner.keys.lock().unwrap();
            match keys.get(key) {
                Some(s) => Arc::clone(s),
                None => {
                    let s = Arc::new(Mutex::new(Slot::default()));
                    keys.insert(key.to_string(), Arc::clone(&s));
                    s
                }
            }
        };
        // `let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);`
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut s = slot.lock().unwrap();
            if s.held.len() >= limit {
                s.held.retain(|(_, exp)| *exp > now);
            }
            if s.held.len() >= limit {
                return None;
            }
            s.held.push((id, now + ttl));
            // Invariant checked inside the critical section that grants the lease.
            assert!(s.held.len() <= limit, "more than the limit in flight");
            assert!(s.held.iter().filter(|(i, _)| *i == id).count() == 1, "lease id reused");
            inner.granted.fetch_add(1, Ordering::SeqCst);
        }
        Some(Lease { slot, id, inner: Arc::clone(inner) })
    }

    impl Lease {
        /// `Lease::release_inner` (also what `Drop` runs).
        pub fn release(self) -> bool {
            let mut slot = self.slot.lock().unwrap();
            let found = match slot.held.iter().position(|(id, _)| *id == self.id) {
                Some(i) => {
                    slot.held.swap_remove(i);
                    self.inner.granted.fetch_sub(1, Ordering::SeqCst);
                    true
                }
                None => false,
            };
            drop(slot);
            found
        }
    }

    /// `Limiter::reclaim_expired`.
    pub fn reclaim_expired(inner: &Inner, now: i64) -> usize {
        let mut keys = inner.keys.lock().unwrap();
        let mut reclaimed = 0;
        keys.retain(|_, slot| {
            let mut s = slot.lock().unwrap();
            let before = s.held.len();
            s.held.retain(|(_, exp)| *exp > now);
            reclaimed += before - s.held.len();
            !s.held.is_empty() || Arc::strong_count(slot) > 1
        });
        reclaimed
    }

    /// `Limiter::total_in_flight`.
    pub fn total_in_flight(inner: &Inner) -> usize {
        let slots: Vec<_> = inner.keys.lock().unwrap().values().cloned().collect();
        slots.iter().map(|s| s.lock().unwrap().held.len()).sum()
    }
}

fn loom_builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    // Two preemptions cover the known classes of lock-ordering and check-then-act races
    // (loom recommends a bound of 2-3; most bugs need two) and keep the run to seconds in a
    // debug build. `LOOM_MAX_PREEMPTIONS=3` (see fuzz/Makefile `model-deep`) searches deeper.
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(2);
    }
    b
}

/// Three threads contend for a key with limit 2: never more than 2 granted at once, and
/// nothing in flight once every lease is released.
#[test]
fn loom_three_acquirers_never_exceed_the_limit() {
    loom_builder().check(|| {
        let inner = loom::sync::Arc::new(model::Inner::default());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let inner = inner.clone();
                loom::thread::spawn(move || {
                    if let Some(lease) = model::acquire(&inner, "kc_a", 2, 0, 60) {
                        assert!(inner.granted.load(loom::sync::atomic::Ordering::SeqCst) <= 2);
                        assert!(lease.release(), "a live lease is found on release");
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        let granted = handles.into_iter().map(|h| h.join().unwrap()).filter(|g| *g).count();
        assert!(granted >= 2, "with limit 2, at least two of three acquirers get a lease");
        assert_eq!(model::total_in_flight(&inner), 0, "a lease leaked");
    });
}

/// Two acquirers and a concurrent `reclaim_expired`: reclaim never drops a slot someone is
/// about to use (a lost slot would let the next acquirer exceed the limit on a fresh slot),
/// never reclaims an unexpired lease, and the counters end at zero.
#[test]
fn loom_reclaim_races_acquire_and_release() {
    loom_builder().check(|| {
        let inner = loom::sync::Arc::new(model::Inner::default());
        let acquirers: Vec<_> = (0..2)
            .map(|_| {
                let inner = inner.clone();
                loom::thread::spawn(move || {
                    let lease = model::acquire(&inner, "kc_a", 1, 0, 60);
                    if let Some(lease) = lease {
                        // The only lease of a limit-1 key: the slot holds exactly it.
                        assert!(lease.release(), "reclaim took an unexpired lease");
                    }
                })
            })
            .collect();
        let reclaimer = {
            let inner = inner.clone();
            loom::thread::spawn(move || model::reclaim_expired(&inner, 30))
        };
        for h in acquirers {
            h.join().unwrap();
        }
        assert_eq!(reclaimer.join().unwrap(), 0, "nothing had expired at t=30");
        assert_eq!(model::total_in_flight(&inner), 0);
    });
}

/// A lease lost by its holder (never released) is reclaimed after its expiry while two other
/// threads acquire; afterwards exactly the live leases are in flight.
#[test]
fn loom_lost_lease_is_reclaimed_after_expiry() {
    loom_builder().check(|| {
        let inner = loom::sync::Arc::new(model::Inner::default());
        // Lost: the holder goes away without releasing (the model's Lease has no Drop).
        drop(model::acquire(&inner, "kc_a", 2, 0, 10).unwrap());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let inner = inner.clone();
                loom::thread::spawn(move || model::acquire(&inner, "kc_a", 2, 20, 60))
            })
            .collect();
        let reclaimer = {
            let inner = inner.clone();
            loom::thread::spawn(move || model::reclaim_expired(&inner, 20))
        };
        let leases: Vec<_> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
        let reclaimed_by_sweep = reclaimer.join().unwrap();
        // The lost lease went either to an acquirer at its limit or to the sweep; both got in.
        assert_eq!(leases.len(), 2, "the expired lease must not block a slot");
        assert!(reclaimed_by_sweep <= 1);
        assert_eq!(model::total_in_flight(&inner), 2);
        for l in leases {
            assert!(l.release());
        }
        assert_eq!(model::total_in_flight(&inner), 0);
    });
}

// ---------------------------------------------------------------------------------------
// Exhaustive interleavings of operations on the real Limiter.

#[derive(Debug, Clone, Copy)]
enum Step {
    Acquire,
    Release,
    /// Lose the lease (a host that never releases: FFI).
    Forget,
    Reclaim,
    Advance(i64),
}

const LIMIT: u32 = 2;
const TTL: i64 = 10;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix(s).unwrap()
}

/// All interleavings of the threads' step lists (each thread's order kept).
fn interleavings(threads: &[Vec<Step>]) -> Vec<Vec<(usize, Step)>> {
    fn go(
        threads: &[Vec<Step>],
        pos: &mut Vec<usize>,
        cur: &mut Vec<(usize, Step)>,
        out: &mut Vec<Vec<(usize, Step)>>,
    ) {
        let mut done = true;
        for i in 0..threads.len() {
            if pos[i] < threads[i].len() {
                done = false;
                cur.push((i, threads[i][pos[i]]));
                pos[i] += 1;
                go(threads, pos, cur, out);
                pos[i] -= 1;
                cur.pop();
            }
        }
        if done {
            out.push(cur.clone());
        }
    }
    let mut out = Vec::new();
    go(threads, &mut vec![0; threads.len()], &mut Vec::new(), &mut out);
    out
}

#[test]
fn every_interleaving_of_operations_on_the_real_limiter() {
    use Step::*;
    let threads = vec![
        vec![Acquire, Release, Acquire, Release],
        vec![Acquire, Forget, Acquire, Release],
        vec![Acquire, Advance(TTL + 1), Reclaim, Release],
    ];
    let schedules = interleavings(&threads);
    assert!(schedules.len() > 10_000, "{} schedules", schedules.len());
    for schedule in &schedules {
        let limiter = Limiter::new(LimiterConfig {
            default_limit: LIMIT,
            lease_ttl: Duration::from_secs(TTL),
            ..LimiterConfig::default()
        });
        let mut now = 0i64;
        // The sequential specification: the slot's (lease id, expiry) entries.
        let mut slot: Vec<(u64, i64)> = Vec::new();
        let mut held: Vec<Option<Lease>> = (0..threads.len()).map(|_| None).collect();
        for (n, &(thread, step)) in schedule.iter().enumerate() {
            let at = || format!("step {n} of {schedule:?}");
            match step {
                Acquire => {
                    if slot.len() >= LIMIT as usize {
                        slot.retain(|(_, e)| *e > now); // acquire at the limit reclaims expired leases
                    }
                    let free = slot.len() < LIMIT as usize;
                    match limiter.acquire("kc_a", None, t(now)) {
                        Ok(lease) => {
                            assert!(free, "granted beyond the limit at {}", at());
                            assert_eq!(lease.expires_at(), Some(t(now + TTL)));
                            slot.push((lease.id(), now + TTL));
                            held[thread] = Some(lease);
                        }
                        Err(busy) => {
                            assert!(!free, "refused with a free slot at {}", at());
                            assert_eq!(busy.limit, LIMIT);
                            held[thread] = None;
                        }
                    }
                }
                Release => {
                    if let Some(lease) = held[thread].take() {
                        let id = lease.id();
                        let was_held = slot.iter().any(|(i, _)| *i == id);
                        slot.retain(|(i, _)| *i != id);
                        assert_eq!(lease.release(), was_held, "release outcome at {}", at());
                    }
                }
                Forget => {
                    if let Some(lease) = held[thread].take() {
                        std::mem::forget(lease); // stays in the slot until it expires
                    }
                }
                Reclaim => {
                    let before = slot.len();
                    slot.retain(|(_, e)| *e > now);
                    assert_eq!(limiter.reclaim_expired(t(now)), before - slot.len(), "reclaimed at {}", at());
                }
                Advance(s) => now += s,
            }
            assert_eq!(limiter.in_flight("kc_a"), slot.len(), "in flight at {}", at());
            assert!(slot.len() <= LIMIT as usize);
        }
        drop(held);
        limiter.reclaim_expired(t(now + 2 * TTL));
        assert_eq!(limiter.total_in_flight(), 0, "leaked a slot: {schedule:?}");
    }
}
