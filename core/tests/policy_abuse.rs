//! Policy abuse (issue 7): hostile policy documents are refused at load, without a stack
//! overflow, and what the limits allow is bounded.
//!
//! Every load runs on a thread with a 256 KiB stack (an eighth of Rust's default, smaller
//! than most host threads that embed keycel), so a parser or validator that recursed per
//! nesting level would overflow and abort the test binary instead of passing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::engine::{Engine, Request};
use keycel::policy::document::LimitsDoc;
use keycel::policy::{PolicyError, PolicySet};
use keycel::record::KeyRecord;
use keycel::time::Timestamp;
use std::time::{Duration, Instant};

const SMALL_STACK: usize = 256 << 10;
/// Evaluation runs on the host's request thread; Rust's default for spawned threads is 2 MiB.
const EVAL_STACK: usize = 2 << 20;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(SMALL_STACK).spawn(f).unwrap().join().expect("thread panicked")
}

fn policy_with(when: &str) -> String {
    format!(
        r#"version = 1
[scopes]
"api.read" = "read"
[roles]
reader = ["api.read"]
[[rules]]
id = "hostile"
effect = "allow"
actions = ["api.*"]
when = '''{when}'''
"#
    )
}

fn load_small(src: String) -> Result<(), PolicyError> {
    on_small_stack(move || PolicySet::from_toml_str(&src, "hostile.toml").map(|_| ()))
}

fn now() -> Timestamp {
    Timestamp::from_unix(1_800_000_000).unwrap()
}

fn limits() -> LimitsDoc {
    LimitsDoc::default()
}

fn key() -> KeyRecord {
    KeyRecord::from_json(
        r#"{"schema":1,"id":"kc_yAXUet7DfXtxEAMw","name":"k","description":"","kind":"api","user":null,
        "role":"reader","scopes":[],"accounts":"all","active":true,"created_at":"2026-11-23T12:00:00Z",
        "updated_at":"2026-11-23T12:00:00Z","expires_at":null,"rotated_at":null,
        "secret_hash":"$argon2id$v=19$m=1024,t=1,p=1$Qgg/JmMpByVfz8x0AMXsAg$Ymwa8x6rD1fQHZRt3WzsEMnep40V2NKRaU0TdjimZvg",
        "previous_secret":null,"max_concurrent":null,"metadata":{},"version":1}"#,
    )
    .unwrap()
}

fn assert_refused(what: &str, src: String, needle: &str) {
    let e = load_small(src).expect_err(what);
    assert_eq!(e.rule.as_deref(), Some("hostile"), "{what}: error names the rule: {e:?}");
    assert!(e.message.contains(needle), "{what}: {e:?} should mention {needle:?}");
}

#[test]
fn ten_times_the_expression_bounds_are_refused_at_load() {
    let l = limits();
    // Size: 10x the byte limit.
    let big = vec!["true"; l.max_expression_bytes * 10 / 7].join(" && ");
    assert!(big.len() >= 10 * l.max_expression_bytes);
    assert_refused("10x bytes", policy_with(&big), "bytes");
    // Bracket nesting: 10x.
    let n = 10 * l.max_nesting;
    assert_refused("10x brackets", policy_with(&format!("{}true{}", "(".repeat(n), ")".repeat(n))), "nest");
    assert_refused("10x lists", policy_with(&format!("{}1{} == 1", "[".repeat(n), "]".repeat(n))), "nest");
    // Tree depth without brackets (inside the byte limit): operator chains, selects, ternaries.
    let d = 10 * l.max_depth;
    for (what, expr) in [
        ("10x additions", format!("{}1 == 1", "1 + ".repeat(d))),
        ("10x selects", format!("request.attributes{} == 1", ".a".repeat(d))),
        ("10x ternaries", format!("{}true", "true?true:".repeat(d / 2))),
        ("10x index", format!("request.attributes{} == 1", "[\"a\"]".repeat(d / 4))),
    ] {
        assert!(expr.len() <= l.max_expression_bytes, "{what} must be inside the byte limit");
        let e = load_small(policy_with(&expr)).expect_err(what);
        assert_eq!(e.rule.as_deref(), Some("hostile"), "{what}: {e:?}");
    }
    // Chains the CEL parser folds or balances (`!!x` is `x`, `&&` chains are balanced): they
    // may load, and then must evaluate to a decision without overflowing a request thread.
    for (what, expr) in [
        ("10x negations", format!("{}true", "!".repeat(d))),
        ("10x minus", format!("{}1 == 1", "-".repeat(d))),
        ("10x ands", vec!["1"; d].join("&&") + " && true"),
        ("10x ors", vec!["0"; d].join("||") + " || true"),
    ] {
        assert!(expr.len() <= l.max_expression_bytes, "{what} must be inside the byte limit");
        let src = policy_with(&expr);
        if let Ok(policy) = on_small_stack(move || PolicySet::from_toml_str(&src, "folded.toml")) {
            let status = std::thread::Builder::new()
                .stack_size(EVAL_STACK)
                .spawn(move || {
                    Engine::new(policy).unwrap().decide(&key(), None, &Request::new("api.read"), now()).status
                })
                .unwrap()
                .join()
                .unwrap();
            assert!(matches!(status, 200 | 403), "{what}: {status}");
        }
    }
    // Comprehension nesting: 10x.
    let mut comp = "x0 > 0".to_string();
    for i in (0..10 * l.max_comprehension_nesting).rev() {
        comp = format!("[1].all(x{i}, {comp})");
    }
    assert_refused("10x comprehensions", policy_with(&comp), "comprehension");
}

#[test]
fn ten_times_the_rule_count_is_refused() {
    let n = 10 * limits().max_rules;
    let mut src = "version = 1\n[scopes]\n\"api.read\" = \"r\"\n".to_string();
    for i in 0..n {
        src.push_str(&format!(
            "[[rules]]\nid = \"r{i}\"\neffect = \"allow\"\nactions = [\"api.*\"]\nwhen = \"true\"\n"
        ));
    }
    let e = on_small_stack(move || PolicySet::from_toml_str(&src, "many.toml").map(|_| ())).unwrap_err();
    assert!(e.message.contains("rules"), "{e:?}");
}

/// The document formats themselves: deeply nested TOML and JSON are refused, not recursed into
/// until the stack runs out.
#[test]
fn deeply_nested_documents_do_not_overflow() {
    for depth in [1_000, 100_000] {
        let toml = format!("version = 1\nx = {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let r = on_small_stack(move || PolicySet::from_toml_str(&toml, "deep.toml").map(|_| ()));
        assert!(r.is_err());
        let inline = format!("version = 1\nx = {}1{}\n", "{a=".repeat(depth), "}".repeat(depth));
        let r = on_small_stack(move || PolicySet::from_toml_str(&inline, "deep.toml").map(|_| ()));
        assert!(r.is_err());
        let json = format!("{{\"version\":1,\"x\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
        let r = on_small_stack(move || PolicySet::from_json_str(&json, "deep.json").map(|_| ()));
        assert!(r.is_err());
    }
}

/// The most expensive expression the default limits allow: two nested comprehensions over
/// list literals that fill the byte limit (~500 × 500 steps). It loads, evaluates to a normal
/// decision on a default-size thread, and one more nesting level (the only way to go from quadratic
/// to cubic) is refused. Timing is reported, not asserted (speed belongs in benches); the
/// watchdog only catches a hang.
#[test]
fn the_most_expensive_allowed_policy_is_bounded() {
    let l = limits();
    let shell = "[].all(x, [].all(y, x == y || x != y))";
    let room = (l.max_expression_bytes - shell.len()) / 2;
    let list = |n: usize| vec!["0"; n].join(",");
    let mut n = room / 2;
    while list(n + 1).len() <= room {
        n += 1;
    }
    let expr = format!("[{}].all(x, [{}].all(y, x == y || x != y))", list(n), list(n));
    assert!(expr.len() <= l.max_expression_bytes);
    let src = policy_with(&expr);
    let policy = on_small_stack(move || PolicySet::from_toml_str(&src, "expensive.toml").unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(EVAL_STACK)
        .spawn(move || {
            let engine = Engine::new(policy).unwrap();
            let start = Instant::now();
            let d =
                engine.decide(&key(), None, &Request::new("api.read"), Timestamp::from_unix(1_800_000_000).unwrap());
            tx.send((d, start.elapsed())).unwrap();
        })
        .unwrap();
    let (d, took) = rx.recv_timeout(Duration::from_secs(120)).expect("evaluation of an allowed policy hung");
    eprintln!("{n} x {n} comprehension steps: decided {} in {took:?}", d.status);
    assert!(d.allowed, "{d:?}");
    let cubic = format!("[{}].all(x, [{}].all(y, [0].all(z, x == y)))", list(10), list(10));
    assert_refused("a third comprehension level", policy_with(&cubic), "comprehension");
}

/// A policy may raise its own limits, but not past hard ceilings: evaluation recurses per
/// tree level on the caller's thread, so an unbounded depth would abort the process.
#[test]
fn limits_cannot_be_raised_past_the_ceilings() {
    use keycel::policy::LIMIT_CEILINGS;
    let doc = |limits: &str, when: &str| {
        format!("version = 1\n[limits]\n{limits}\n{}", policy_with(when).replacen("version = 1\n", "", 1))
    };
    for (field, ceiling) in [
        ("max_expression_bytes", LIMIT_CEILINGS.max_expression_bytes),
        ("max_nesting", LIMIT_CEILINGS.max_nesting),
        ("max_depth", LIMIT_CEILINGS.max_depth),
        ("max_comprehension_nesting", LIMIT_CEILINGS.max_comprehension_nesting),
        ("max_rules", LIMIT_CEILINGS.max_rules),
    ] {
        let e = load_small(doc(&format!("{field} = {}", ceiling * 10), "true")).expect_err(field);
        assert!(e.message.contains(field) && e.message.contains("ceiling"), "{e:?}");
        load_small(doc(&format!("{field} = {ceiling}"), "true"))
            .unwrap_or_else(|e| panic!("{field} at the ceiling: {e}"));
    }
    // At the ceilings, the deepest expression they allow loads and evaluates on a 2 MiB thread
    // in a release build (about 2 KB of stack per level). Debug builds use ~35 KB per level, so
    // there the check runs on a thread sized for them.
    let depth = LIMIT_CEILINGS.max_depth - 4;
    let expr = format!("{}1 == 1", "1 + ".repeat(depth));
    let src = doc("max_depth = 128\nmax_expression_bytes = 65536", &expr);
    let policy = on_small_stack(move || PolicySet::from_toml_str(&src, "deepest.toml")).expect("deepest allowed loads");
    let stack = if cfg!(debug_assertions) { 64 << 20 } else { EVAL_STACK };
    let status = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || Engine::new(policy).unwrap().decide(&key(), None, &Request::new("api.read"), now()).status)
        .unwrap()
        .join()
        .unwrap();
    assert!(matches!(status, 200 | 403), "{status}");
}
