//! `keycel key set-rate-limit`, `key set-credits`, and `key show` with credits remaining as
//! the SQLite admission backend of the same file counts them (issue 13).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use assert_cmd::Command;
use keycel::admission::{Admission, CreditGrant, SqliteAdmission, Ticket};
use keycel::limiter::LimiterConfig;
use keycel::time::Timestamp;
use serde_json::Value;
use tempfile::TempDir;

const NOW: &str = "2026-11-23T12:00:00Z";

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        assert!(env.cmd(&["init"]).output().unwrap().status.success());
        env
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("keys.db")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("keycel").unwrap();
        c.env_remove("KEYCEL_POLICY").env("KEYCEL_NOW", NOW).env("KEYCEL_DB", self.db()).env("KEYCEL_HASH", "edge");
        c.args(args);
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cmd(&all).output().unwrap();
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn set_rate_limit_and_credits_then_show_remaining() {
    let env = Env::new();
    let id = env.json(&["key", "create", "--name", "svc", "--kind", "api", "--role", "reader"])["client_id"]
        .as_str()
        .unwrap()
        .to_string();

    let v = env.json(&["key", "set-rate-limit", &id, "--limit", "100", "--per", "1m", "--burst", "20"]);
    assert_eq!(v["rate_limit"], serde_json::json!({"limit": 100, "per": "1m", "burst": 20}));
    let v =
        env.json(&["key", "set-credits", &id, "--remaining", "10", "--refill-amount", "5", "--refill-interval", "1d"]);
    assert_eq!(v["credits"]["remaining"], 10);
    assert_eq!(v["credits"]["refill"], serde_json::json!({"amount": 5, "interval": "1d"}));

    // Spend 3 through the admission backend of the same file, as a worker process would.
    let grant: CreditGrant = serde_json::from_value(v["credits"].clone()).unwrap();
    let adm = SqliteAdmission::open(env.db(), LimiterConfig::default()).unwrap();
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    drop(adm.admit(&Ticket { credits: Some(grant), cost: 3, ..Ticket::new(&id, None) }, now).unwrap());
    // A lease held now (in flight counts live leases by the wall clock, not KEYCEL_NOW).
    let held = adm.admit(&Ticket::new(&id, None), keycel::clock::now()).unwrap();

    let show = env.json(&["key", "show", &id]);
    assert_eq!(show["budget"]["credits_remaining"], 7);
    assert_eq!(show["budget"]["in_flight"], 1);
    assert_eq!(show["budget"]["rate_limit"]["limit"], 100);
    drop(held);
    let text = env.cmd(&["key", "show", &id]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("100 per 1m (burst 20)") && text.contains("7 of 10 left"), "{text}");
    let explain = env.json(&["key", "explain", &id]);
    assert_eq!(explain["credits"]["remaining"], 10);

    // Clearing both.
    let v = env.json(&["key", "set-rate-limit", &id, "--clear"]);
    assert!(v.get("rate_limit").is_none());
    let v = env.json(&["key", "set-credits", &id, "--clear"]);
    assert!(v.get("credits").is_none());
    assert_eq!(env.json(&["key", "show", &id])["budget"]["credits_remaining"], Value::Null);
}

#[test]
fn bad_budget_values_are_refused_with_the_flag_named() {
    let env = Env::new();
    let id = env.json(&["key", "create", "--name", "svc", "--kind", "api", "--role", "reader"])["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (args, needle) in [
        (vec!["key", "set-rate-limit", &id, "--limit", "0", "--per", "1m"], "--limit"),
        (vec!["key", "set-rate-limit", &id, "--limit", "5", "--per", "0s"], "--per"),
        (vec!["key", "set-rate-limit", &id, "--limit", "5", "--per", "soon"], "--per"),
        (
            vec!["key", "set-credits", &id, "--remaining", "5", "--refill-amount", "0", "--refill-interval", "1d"],
            "refill",
        ),
        (vec!["key", "set-credits", &id, "--remaining", "5", "--refill-amount", "3"], "refill-interval"),
        (vec!["key", "set-rate-limit", &id, "--clear", "--limit", "3"], "clear"),
    ] {
        let out = env.cmd(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let show = env.json(&["key", "show", &id]);
    assert!(show.get("rate_limit").is_none() && show.get("credits").is_none(), "nothing half-applied");
}

/// `key create` takes the budget with the key: one write, the same values `set-rate-limit`
/// and `set-credits` take, and `key show` counts the credits from the start.
#[test]
fn create_with_rate_limit_and_credits_in_one_step() {
    let env = Env::new();
    let v = env.json(&[
        "key",
        "create",
        "--name",
        "metered",
        "--kind",
        "api",
        "--role",
        "reader",
        "--rate-limit",
        "100/1m",
        "--burst",
        "20",
        "--credits",
        "10000",
        "--refill-amount",
        "500",
        "--refill-interval",
        "1d",
    ]);
    assert_eq!(v["key"]["rate_limit"], serde_json::json!({"limit": 100, "per": "1m", "burst": 20}));
    assert_eq!(v["key"]["credits"]["remaining"], 10000);
    assert_eq!(v["key"]["credits"]["refill"], serde_json::json!({"amount": 500, "interval": "1d"}));
    assert_eq!(v["key"]["credits"]["set_at"], NOW);
    assert_eq!(v["key"]["version"], 1, "created with its budget in one write");
    let id = v["client_id"].as_str().unwrap().to_string();

    let grant: CreditGrant = serde_json::from_value(v["key"]["credits"].clone()).unwrap();
    let adm = SqliteAdmission::open(env.db(), LimiterConfig::default()).unwrap();
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    drop(adm.admit(&Ticket { credits: Some(grant), cost: 4, ..Ticket::new(&id, None) }, now).unwrap());
    let show = env.json(&["key", "show", &id]);
    assert_eq!(show["budget"]["credits_remaining"], 9996);
    assert_eq!(show["budget"]["rate_limit"]["burst"], 20);

    // Credits alone, no refill; a rate limit alone, burst 0.
    let v = env.json(&["key", "create", "--name", "c", "--kind", "api", "--role", "reader", "--credits", "3"]);
    assert_eq!(v["key"]["credits"]["refill"], Value::Null);
    assert!(v["key"].get("rate_limit").is_none());
    let v = env.json(&["key", "create", "--name", "r", "--kind", "api", "--role", "reader", "--rate-limit", "5/10s"]);
    assert_eq!(v["key"]["rate_limit"], serde_json::json!({"limit": 5, "per": "10s", "burst": 0}));
    assert!(v["key"].get("credits").is_none());
}

#[test]
fn create_with_a_bad_budget_creates_nothing() {
    let env = Env::new();
    let base = ["key", "create", "--name", "svc", "--kind", "api", "--role", "reader"];
    for (extra, needle) in [
        (vec!["--rate-limit", "100"], "LIMIT/PER"),
        (vec!["--rate-limit", "x/1m"], "whole number"),
        (vec!["--rate-limit", "0/1m"], "--rate-limit"),
        (vec!["--rate-limit", "5/0s"], "--rate-limit"),
        (vec!["--rate-limit", "5/soon"], "--rate-limit"),
        (vec!["--rate-limit", "5/1m", "--burst", "2000000"], "--burst"),
        (vec!["--burst", "3"], "--rate-limit"),
        (vec!["--credits", "5", "--refill-amount", "0", "--refill-interval", "1d"], "refill"),
        (vec!["--credits", "5", "--refill-amount", "3"], "refill-interval"),
        (vec!["--refill-amount", "3", "--refill-interval", "1d"], "--credits"),
        (vec!["--credits", "5", "--refill-amount", "3", "--refill-interval", "1y"], "--refill-interval"),
    ] {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        let out = env.cmd(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(env.json(&["key", "list"]).as_array().map(Vec::len), Some(0), "no key without its budget");
}
