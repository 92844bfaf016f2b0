//! Argon2 flood (issue 7): a burst of invalid keys cannot take more memory than the gate
//! allows, and keys already in the verified-secret cache keep answering during it.
//!
//! argon2 allocates `m_cost` KiB per computation, so memory under a flood is bounded by
//! (gate slots × m_cost) only if no computation runs outside the gate. The test binary counts
//! every heap byte with a counting global allocator (`peak_alloc`) and compares the peak
//! during a flood of 16 threads × invalid keys (unknown ids and wrong secrets) against
//! `slots × m_cost + SLACK`. A control run with as many slots as threads must exceed that same
//! bound, which shows the measurement sees argon2's memory at all.
//!
//! One `#[test]` only: the allocator is global to the binary, and parallel tests would add
//! their allocations to the peak.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::gate::GateConfig;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::store::{MemoryStore, Store};
use keycel::time::Timestamp;
use keycel::{AuthConfig, Authenticator, CredentialMethod, Credentials, FailureReason, TokenFormat};
use peak_alloc::PeakAlloc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration as StdDuration, Instant};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// 4 MiB per argon2 computation: large enough to dwarf everything else a request allocates.
const PARAMS: HashParams = HashParams { m_cost: 4096, t_cost: 1, p_cost: 1 };
const SLOTS: usize = 2;
const FLOOD_THREADS: usize = 16;
const PER_THREAD: usize = 2;
/// Everything that is not argon2 blocks: credentials, records, the cache, thread bookkeeping.
const SLACK: usize = 1 << 20;

fn now() -> Timestamp {
    Timestamp::from_unix(1_800_000_000).unwrap()
}

struct Outcome {
    peak_bytes: usize,
    overloaded: usize,
    rejected: usize,
    cache_hits: usize,
    cache_hit_worst: StdDuration,
}

/// Floods an authenticator with `slots` gate slots; a bystander keeps using a cached key.
fn flood(slots: usize, max_wait: StdDuration) -> Outcome {
    let policy = HashPolicy::with_params(PARAMS).unwrap();
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone() as Arc<dyn Store>).with_hash(policy).unwrap();
    let (record, key) = ring.create(&Actor::Operator("flood".into()), NewKey::api("ok", "member"), now()).unwrap();
    let auth = Arc::new(
        Authenticator::new(AuthConfig {
            hash: policy,
            gate: GateConfig { max_concurrent: slots, max_wait },
            ..AuthConfig::default()
        })
        .unwrap(),
    );
    let format = TokenFormat::default();
    let good = Credentials::from_token(&format, key.token().expose(), CredentialMethod::Bearer).unwrap();
    assert!(!auth.authenticate(&good, Some(&record), None, now()).unwrap().cache_hit);
    assert!(auth.authenticate(&good, Some(&record), None, now()).unwrap().cache_hit);

    // Invalid credentials prepared up front so the flood allocates only what a request does.
    let attacks: Vec<Vec<(Credentials, bool)>> = (0..FLOOD_THREADS)
        .map(|i| {
            (0..PER_THREAD)
                .map(|j| {
                    if (i + j) % 2 == 0 {
                        let other = format.issue(&mut getrandom::SysRng).unwrap();
                        (
                            Credentials::from_token(&format, other.token().expose(), CredentialMethod::Bearer).unwrap(),
                            false,
                        )
                    } else {
                        let wrong = format.new_secret(&record.id, &mut getrandom::SysRng).unwrap();
                        let c = Credentials::from_pair(
                            &format,
                            record.id.as_str(),
                            wrong.expose(),
                            CredentialMethod::Basic,
                        );
                        (c.unwrap(), true)
                    }
                })
                .collect()
        })
        .collect();

    let start = Arc::new(Barrier::new(FLOOD_THREADS + 1));
    let running = Arc::new(AtomicBool::new(true));
    HEAP.reset_peak_usage();
    let baseline = HEAP.current_usage();
    let handles: Vec<_> = attacks
        .into_iter()
        .map(|batch| {
            let (auth, record, start) = (auth.clone(), record.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (mut overloaded, mut rejected) = (0, 0);
                for (creds, known) in batch {
                    let r = auth.authenticate(&creds, if known { Some(&record) } else { None }, None, now());
                    match r.expect_err("an invalid key got in").reason {
                        FailureReason::Overloaded => overloaded += 1,
                        FailureReason::UnknownClientId | FailureReason::WrongSecret => rejected += 1,
                        other => panic!("unexpected failure {other:?}"),
                    }
                }
                (overloaded, rejected)
            })
        })
        .collect();
    // The bystander: a cached valid key, asked continuously while the flood runs.
    let bystander = {
        let (auth, record, running) = (auth.clone(), record.clone(), running.clone());
        std::thread::spawn(move || {
            let (mut hits, mut worst) = (0, StdDuration::ZERO);
            while running.load(Ordering::Acquire) {
                let t = Instant::now();
                let a = auth.authenticate(&good, Some(&record), None, now()).expect("cached key refused during flood");
                worst = worst.max(t.elapsed());
                assert!(a.cache_hit);
                hits += 1;
                std::thread::sleep(StdDuration::from_millis(2));
            }
            (hits, worst)
        })
    };
    start.wait();
    let (mut overloaded, mut rejected) = (0, 0);
    for h in handles {
        let (o, r) = h.join().unwrap();
        overloaded += o;
        rejected += r;
    }
    running.store(false, Ordering::Release);
    let (cache_hits, cache_hit_worst) = bystander.join().unwrap();
    let peak_bytes = HEAP.peak_usage().saturating_sub(baseline);
    Outcome { peak_bytes, overloaded, rejected, cache_hits, cache_hit_worst }
}

#[test]
fn flood_of_invalid_keys_is_bounded_by_the_gate() {
    let per_hash = PARAMS.m_cost as usize * 1024;
    let bound = SLOTS * per_hash + SLACK;

    // Gated: long waits, so every request eventually runs argon2 (no 503s needed to stay bounded).
    let gated = flood(SLOTS, StdDuration::from_secs(60));
    eprintln!(
        "gate {SLOTS}: peak {:.1} MiB (bound {:.1} MiB), {} rejected, {} overloaded, {} cache hits (worst {:?})",
        gated.peak_bytes as f64 / 1048576.0,
        bound as f64 / 1048576.0,
        gated.rejected,
        gated.overloaded,
        gated.cache_hits,
        gated.cache_hit_worst
    );
    assert_eq!(gated.rejected, FLOOD_THREADS * PER_THREAD, "every invalid key was refused with a 401");
    assert!(gated.peak_bytes >= per_hash, "the allocator did not see argon2's memory");
    assert!(gated.peak_bytes <= bound, "peak {} bytes exceeds gate × m_cost + slack = {bound}", gated.peak_bytes);
    assert!(gated.cache_hits >= 5, "the cached key was not served during the flood");
    // A cache hit never waits for the gate: it is answered well within one argon2 computation
    // even though the gate's queue is 14 threads deep.
    assert!(gated.cache_hit_worst < StdDuration::from_millis(500), "cache hit waited {:?}", gated.cache_hit_worst);

    // Short waits: the gate sheds load with 503 instead of queueing, still within the bound,
    // and cached keys still answer (they never enter the gate, so they are never "overloaded").
    let shed = flood(SLOTS, StdDuration::from_millis(1));
    eprintln!(
        "gate {SLOTS}, 1 ms wait: peak {:.1} MiB, {} overloaded",
        shed.peak_bytes as f64 / 1048576.0,
        shed.overloaded
    );
    assert!(shed.overloaded > 0, "a saturated gate answers 503");
    assert!(shed.peak_bytes <= bound);
    assert!(shed.cache_hits >= 1);

    // Control: as many slots as attackers. The same bound must now be exceeded, or the
    // measurement above proves nothing.
    let open = flood(FLOOD_THREADS, StdDuration::from_secs(60));
    eprintln!("gate {FLOOD_THREADS} (control): peak {:.1} MiB", open.peak_bytes as f64 / 1048576.0);
    assert!(open.peak_bytes > bound, "control flood stayed under the bound: the measurement is blind");
}
