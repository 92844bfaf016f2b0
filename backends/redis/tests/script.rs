//! The admission script itself (`src/script.lua`) against a real `redis-server`: the order of
//! checks, that a refusal writes nothing, GCRA against core's, credits with refill, floors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::{conn, Redis};
use keycel_redis::script::{self, AdmitArgs, Counted, GrantArgs, Reply};

fn admit(c: &mut redis::Connection, key: &str, a: &AdmitArgs<'_>) -> Reply {
    let s = keycel_redis::script();
    let mut inv = s.prepare_invoke();
    for k in script::keys(key) {
        inv.key(k);
    }
    script::admit_args(&mut inv, a);
    let v: redis::Value = inv.invoke(c).unwrap();
    script::parse_admit(&v).unwrap_or_else(|| panic!("unexpected reply {v:?}"))
}

fn usage(c: &mut redis::Connection, key: &str, g: &GrantArgs) -> (u64, u64, i64) {
    let s = keycel_redis::script();
    let mut inv = s.prepare_invoke();
    for k in script::keys(key) {
        inv.key(k);
    }
    script::usage_args(&mut inv, g);
    script::parse_usage(&inv.invoke::<redis::Value>(c).unwrap()).unwrap()
}

/// Every byte of a key's state (DUMP of each of its keys).
fn state(c: &mut redis::Connection, key: &str) -> Vec<Option<Vec<u8>>> {
    script::keys(key).iter().map(|k| redis::cmd("DUMP").arg(k).query(c).unwrap()).collect()
}

fn redis_now_ms(c: &mut redis::Connection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query(c).unwrap();
    s * 1000 + us / 1000
}

fn grant(first: u64, epoch_ms: i64) -> GrantArgs {
    GrantArgs { first, amount: 0, interval_ms: 0, epoch_ms, floor_period: 0, floor_used: 0 }
}

fn args(member: &str) -> AdmitArgs<'_> {
    AdmitArgs { limit: 100, ttl_ms: 60_000, member, cost: 1, rate: None, credits: None }
}

#[test]
fn keys_share_one_hash_tag() {
    let k = script::keys("kc_abc");
    assert_eq!(k, ["{keycel:kc_abc}:leases", "{keycel:kc_abc}:rate", "{keycel:kc_abc}:credits"]);
}

/// Concurrency, then rate, then credits; each refusal leaves every byte of state as it was.
#[test]
fn a_refusal_of_any_kind_writes_nothing() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let key = "kc_order";
    let rate = Some((1_000, 2_000)); // 1 per second, burst 2
    let credits = Some(grant(3, 1_000));
    let full = |m| AdmitArgs { limit: 2, rate, credits, ..args(m) };
    assert!(matches!(admit(&mut c, key, &full("a")), Reply::Admitted { held: 1, .. }));
    assert!(matches!(admit(&mut c, key, &full("b")), Reply::Admitted { held: 2, .. }));
    // Busy: the two leases are held; rate and credits untouched.
    let before = state(&mut c, key);
    assert_eq!(admit(&mut c, key, &full("c")), Reply::Busy { held: 2 });
    assert_eq!(state(&mut c, key), before, "busy wrote");
    let _: i64 = redis::cmd("ZREM").arg(&script::keys(key)[0]).arg("a").arg("b").query(&mut c).unwrap();
    // Rate: the burst of two is spent.
    let before = state(&mut c, key);
    match admit(&mut c, key, &full("d")) {
        Reply::RateLimited { retry_after_ms, reset_ms } => {
            assert!(
                (900..=1_000).contains(&retry_after_ms) && (1_900..=2_000).contains(&reset_ms),
                "{retry_after_ms} {reset_ms}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state(&mut c, key), before, "a rate refusal wrote (a lease, the TAT or credits)");
    // Credits: one left of three; a cost-2 request is refused, without moving the TAT.
    let unlimited = |m, cost| AdmitArgs { cost, credits, ..args(m) };
    let before = state(&mut c, key);
    match admit(&mut c, key, &unlimited("e", 2)) {
        Reply::UsageExceeded { retry_after_ms: None, counted: Counted { used: 2, .. } } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(state(&mut c, key), before, "a credits refusal wrote");
    match admit(&mut c, key, &unlimited("f", 1)) {
        Reply::Admitted { credits: Some(Counted { remaining: 0, used: 3, period: 0, epoch_ms: 1_000 }), .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(usage(&mut c, key, &grant(3, 1_000)), (0, 3, 0));
}

/// The script's GCRA admits what core's `RateLimit::check` admits: a fresh key gets its
/// burst at once, then one per emission interval; the remaining count is core's.
#[test]
fn gcra_in_lua_matches_core() {
    use keycel::admission::rate::{RateLimit, Verdict};
    let redis = Redis::start();
    let mut c = conn(&redis);
    let rl = RateLimit::new(50, keycel::time::Duration::from_secs(10), 5).unwrap();
    let rate = Some((rl.interval_ms(), rl.tolerance_ms()));
    let now = redis_now_ms(&mut c);
    let mut tat = 0;
    let mut core_admitted = 0;
    let mut lua_admitted = 0;
    for i in 0..20 {
        if let Verdict::Allow { tat_ms, .. } = rl.check(tat, now, 1) {
            tat = tat_ms;
            core_admitted += 1;
        }
        let m = format!("m{i}");
        if let Reply::Admitted { rate_remaining, .. } = admit(&mut c, "kc_gcra", &AdmitArgs { rate, ..args(&m) }) {
            lua_admitted += 1;
            assert_eq!(rate_remaining, Some(5 - lua_admitted), "remaining after {lua_admitted}");
        }
    }
    assert_eq!((core_admitted, lua_admitted), (5, 5));
}

/// With a refill, the count restarts at each interval boundary from the grant's epoch and a
/// refusal says when the next refill comes.
#[test]
fn credits_refill_each_interval_from_the_epoch() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let now = redis_now_ms(&mut c);
    // Epoch 25 s ago, 10 s interval: period 2, 5 s until the next refill; `amount` applies.
    let g = GrantArgs {
        first: 100,
        amount: 2,
        interval_ms: 10_000,
        epoch_ms: now - 25_000,
        floor_period: 0,
        floor_used: 0,
    };
    let metered = |m| AdmitArgs { credits: Some(g), ..args(m) };
    for m in ["a", "b"] {
        assert!(matches!(
            admit(&mut c, "kc_refill", &metered(m)),
            Reply::Admitted { credits: Some(Counted { period: 2, .. }), .. }
        ));
    }
    match admit(&mut c, "kc_refill", &metered("c")) {
        Reply::UsageExceeded { retry_after_ms: Some(ms), counted: Counted { used: 2, period: 2, .. } } => {
            assert!((4_000..=5_000).contains(&ms), "{ms}");
        }
        other => panic!("{other:?}"),
    }
    let ttl: i64 = redis::cmd("PTTL").arg(&script::keys("kc_refill")[2]).query(&mut c).unwrap();
    assert!((4_000..=6_000).contains(&ttl), "a refilled count expires after its period: {ttl}");
}

/// FLUSHALL loses the count; the caller's floor (the highest count it saw) re-seeds it, so
/// the credits it saw spent are not handed out again. Without a floor they would be.
#[test]
fn a_floor_reseeds_credits_lost_in_a_flush() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let g = grant(10, 5_000);
    let mut seen = 0;
    for i in 0..7 {
        let m = format!("a{i}");
        if let Reply::Admitted { credits: Some(k), .. } =
            admit(&mut c, "kc_flush", &AdmitArgs { credits: Some(g), ..args(&m) })
        {
            seen = seen.max(k.used);
        }
    }
    assert_eq!(seen, 7);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    assert_eq!(usage(&mut c, "kc_flush", &g), (10, 0, 0), "the flush lost the count (what the floor is for)");
    let floored = GrantArgs { floor_used: seen, ..g };
    assert_eq!(usage(&mut c, "kc_flush", &floored), (3, 7, 0));
    let mut admitted = 0;
    for i in 0..10 {
        let m = format!("b{i}");
        if matches!(
            admit(&mut c, "kc_flush", &AdmitArgs { credits: Some(floored), ..args(&m) }),
            Reply::Admitted { .. }
        ) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "10 credits in all, 7 spent before the flush");
    // A floor of another period does not apply (the process sends the floor of the ticket's
    // grant; `Floors` keeps grants apart).
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let other = GrantArgs { floor_used: 9, floor_period: 1, ..g };
    assert_eq!(usage(&mut c, "kc_flush", &other), (10, 0, 0));
}

/// A process still holding an older record (older grant epoch) counts against the newest
/// grant stored in Redis: flipping grants never resets the count.
#[test]
fn the_newest_grant_wins_over_a_stale_record() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let new = grant(2, 9_000);
    let old = grant(100, 1_000);
    for m in ["a", "b"] {
        assert!(matches!(
            admit(&mut c, "kc_grant", &AdmitArgs { credits: Some(new), ..args(m) }),
            Reply::Admitted { .. }
        ));
    }
    match admit(&mut c, "kc_grant", &AdmitArgs { credits: Some(old), ..args("c") }) {
        Reply::UsageExceeded { counted: Counted { epoch_ms: 9_000, used: 2, .. }, .. } => {}
        other => panic!("the stale grant reset the count: {other:?}"),
    }
}

/// Lost leases (deadline passed) are reclaimed once the set is full, before a refusal: the
/// set never holds more than `limit` members and a full set of lost leases admits.
#[test]
fn lost_leases_are_reclaimed_when_the_set_is_full() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let key = "kc_reclaim";
    // Two lost holders: deadlines long past (a SIGKILLed process's last renewal), written
    // directly so the test does not race the set's own expiry on a loaded machine.
    let leases = &script::keys(key)[0];
    let _: () = redis::cmd("ZADD").arg(leases).arg(1).arg("a").arg(2).arg("b").query(&mut c).unwrap();
    let _: () = redis::cmd("PEXPIRE").arg(leases).arg(60_000).query(&mut c).unwrap();
    let live = |m| AdmitArgs { limit: 2, ..args(m) };
    assert!(matches!(admit(&mut c, key, &live("c")), Reply::Admitted { held: 1, .. }));
    assert!(matches!(admit(&mut c, key, &live("d")), Reply::Admitted { held: 2, .. }));
    assert_eq!(admit(&mut c, key, &live("e")), Reply::Busy { held: 2 });
    let members: usize = redis::cmd("ZCARD").arg(leases).query(&mut c).unwrap();
    assert_eq!(members, 2);
}

/// The short admit (no rate limit, unmetered: the lease set and four arguments, answered with
/// the count) and the general form of the same request write the same lease (deadline on
/// Redis's clock, the set's expiry) and refuse alike; a full set under the short form goes
/// through the general path (reclaim, then `busy`).
#[test]
fn the_short_admit_writes_what_the_general_form_writes() {
    let redis = Redis::start();
    let mut c = conn(&redis);
    let short = |m| AdmitArgs { limit: 2, ..args(m) };
    assert_eq!(script::admit_shape(&short("a")), (1, 4));
    // The general form of the same request: all thirteen arguments, three keys.
    let general = |c: &mut redis::Connection, key: &str, m: &str| -> Reply {
        let s = keycel_redis::script();
        let mut inv = s.prepare_invoke();
        for k in script::keys(key) {
            inv.key(k);
        }
        for a in script::admit_argv(&AdmitArgs { limit: 2, ..args(m) }) {
            match a {
                script::Arg::Str(s) => inv.arg(s),
                script::Arg::Int(i) => inv.arg(i),
            };
        }
        script::parse_admit(&inv.invoke::<redis::Value>(c).unwrap()).unwrap()
    };
    let before = redis_now_ms(&mut c);
    let one = admit(&mut c, "kc_short", &short("a"));
    let other = general(&mut c, "kc_general", "a");
    assert_eq!(one, other);
    assert_eq!(one, Reply::Admitted { held: 1, rate_remaining: None, rate_reset_ms: 0, credits: None });
    let after = redis_now_ms(&mut c);
    for key in ["kc_short", "kc_general"] {
        let leases = &script::keys(key)[0];
        let deadline: i64 = redis::cmd("ZSCORE").arg(leases).arg("a").query(&mut c).unwrap();
        assert!((before + 60_000..=after + 60_000).contains(&deadline), "{key}: {deadline}");
        let pttl: i64 = redis::cmd("PTTL").arg(leases).query(&mut c).unwrap();
        assert!((110_000..=120_000).contains(&pttl), "{key}: {pttl}");
        let others: i64 =
            redis::cmd("EXISTS").arg(&script::keys(key)[1]).arg(&script::keys(key)[2]).query(&mut c).unwrap();
        assert_eq!(others, 0, "{key}: an unmetered admit wrote rate or credit state");
    }
    assert!(matches!(admit(&mut c, "kc_short", &short("b")), Reply::Admitted { held: 2, .. }));
    assert!(matches!(general(&mut c, "kc_general", "b"), Reply::Admitted { held: 2, .. }));
    let before = state(&mut c, "kc_short");
    assert_eq!(admit(&mut c, "kc_short", &short("c")), Reply::Busy { held: 2 });
    assert_eq!(general(&mut c, "kc_general", "c"), Reply::Busy { held: 2 });
    assert_eq!(state(&mut c, "kc_short"), before, "a short-form refusal wrote");
}
