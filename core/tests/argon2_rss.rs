//! argon2 memory is bounded by design, seen as a real process's RSS (issue 12).
//!
//! `argon2_flood.rs` counts heap bytes with a counting allocator; that showed the gate bounds
//! argon2 memory *in use*, while a real server grew to gigabytes: each verification allocated
//! a fresh `m_cost` block and glibc kept the freed blocks in per-thread arenas. Here the test
//! binary re-runs itself as a child process (fresh RSS, default allocator, no counting), floods
//! an `Engine` from many threads with forged tokens, and reports its peak RSS (`VmHWM`) over
//! its RSS before the flood. The engine must stay within `slots × m_cost + SLACK`. A control
//! child runs the same flood the way keycel did before (one fresh argon2 allocation per
//! verification, same gate) and must exceed that bound, which shows the measurement sees
//! allocator retention at all.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Engine, Request};
use keycel::gate::GateConfig;
use keycel::hash::{HashParams, HashPolicy};
use keycel::policy::PolicySet;
use keycel::store::MemoryStore;
use keycel::time::Timestamp;
use keycel::TokenFormat;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration as StdDuration;

/// 8 MiB per computation: well above glibc's mmap threshold, like the 19 MiB default.
const PARAMS: HashParams = HashParams { m_cost: 8192, t_cost: 1, p_cost: 1 };
const SLOTS: usize = 2;
const THREADS: usize = 16;
const PER_THREAD: usize = 3;
/// Everything that is not argon2 memory: thread stacks, arenas' bookkeeping, tokens.
const SLACK_KIB: u64 = 8 * 1024;
const CHILD: &str = "KEYCEL_RSS_CHILD";
const TEST: &str = "flood_rss_stays_within_slots_times_m_cost";

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The flood, in the child: `reuse` is the engine as built; `control` verifies with a fresh
/// allocation per computation behind a gate of the same size.
fn child(mode: &str) {
    let policy = PolicySet::default_policy().unwrap();
    let mut auth = keycel::engine::auth_config_for(&policy).unwrap();
    auth.hash = HashPolicy::with_params(PARAMS).unwrap();
    auth.gate = GateConfig { max_concurrent: SLOTS, max_wait: StdDuration::from_secs(600) };
    let engine = Arc::new(Engine::with_config(policy, auth, None).unwrap());
    let store = Arc::new(MemoryStore::new());
    let format = TokenFormat::default();
    let now = Timestamp::from_unix(1_800_000_000).unwrap();
    let tokens: Vec<Vec<String>> = (0..THREADS)
        .map(|_| {
            (0..PER_THREAD).map(|_| format.issue(&mut getrandom::SysRng).unwrap().token().expose().into()).collect()
        })
        .collect();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let base = status_kib("VmRSS:");
    let threads: Vec<_> = tokens
        .into_iter()
        .map(|batch| {
            let (engine, store, start) = (engine.clone(), store.clone(), start.clone());
            let control = mode == "control";
            std::thread::spawn(move || {
                start.wait();
                for token in batch {
                    if control {
                        let _slot = engine.authenticator().gate().enter().unwrap();
                        let _ = HashPolicy::with_params(PARAMS).unwrap().verify_dummy(token.as_bytes());
                    } else {
                        let headers = [("authorization", format!("Bearer {token}"))];
                        let a = engine.authorize(headers, &Request::new("api.read"), store.as_ref(), now);
                        assert_eq!(a.decision.status, 401, "{:?}", a.decision);
                    }
                }
            })
        })
        .collect();
    start.wait();
    for t in threads {
        t.join().unwrap();
    }
    println!("KEYCEL_RSS base_kib={base} peak_kib={}", status_kib("VmHWM:"));
}

/// Runs one child and returns its peak RSS above its pre-flood RSS, in KiB.
fn run(mode: &str) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{mode} child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find_map(|l| l.strip_prefix("KEYCEL_RSS ")).expect("child printed no RSS");
    let field =
        |name: &str| -> u64 { line.split_whitespace().find_map(|kv| kv.strip_prefix(name)).unwrap().parse().unwrap() };
    field("peak_kib=").saturating_sub(field("base_kib="))
}

#[test]
fn flood_rss_stays_within_slots_times_m_cost() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let bound = SLOTS as u64 * u64::from(PARAMS.m_cost) + SLACK_KIB;
    let reuse = run("reuse");
    let control = run("control");
    eprintln!(
        "{THREADS} threads x {PER_THREAD} forged tokens, gate {SLOTS}, m={} MiB: engine peak +{:.1} MiB, \
         control (fresh allocation per verification) +{:.1} MiB, bound {:.1} MiB",
        PARAMS.m_cost / 1024,
        reuse as f64 / 1024.0,
        control as f64 / 1024.0,
        bound as f64 / 1024.0
    );
    assert!(reuse >= u64::from(PARAMS.m_cost), "the flood never touched argon2 memory: +{reuse} KiB");
    assert!(reuse <= bound, "engine RSS grew {reuse} KiB, over slots x m_cost + slack = {bound} KiB");
    assert!(control > bound, "control stayed within the bound ({control} KiB): the measurement is blind");
}
