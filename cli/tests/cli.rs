//! The real `keycel` binary against temporary stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        env.cmd(&["init"]).assert().success().stdout(predicate::str::contains("Created keycel store"));
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("keys.db")
    }

    /// `keycel` with this store, cheap hashing, and no inherited KEYCEL_* settings.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("keycel").unwrap();
        c.env_remove("KEYCEL_POLICY").env_remove("KEYCEL_NOW").env("KEYCEL_DB", self.db()).env("KEYCEL_HASH", "edge");
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

    /// Creates a key and returns (client id, secret key, token).
    fn create(&self, args: &[&str]) -> (String, String, String) {
        let mut all = vec!["key", "create"];
        all.extend_from_slice(args);
        let v = self.json(&all);
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        (s("client_id"), s("secret_key"), s("token"))
    }

    fn authorize(&self, headers: &[String], extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--json".to_string(), "authorize".to_string()];
        for h in headers {
            args.push("--header".into());
            args.push(h.clone());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = self.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), v)
    }
}

fn basic(token: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!("Authorization: Basic {}", Base64::encode_string(format!("{token}:").as_bytes()))
}

fn status(v: &Value) -> u64 {
    v["decision"]["status"].as_u64().unwrap()
}

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn init_is_idempotent_and_commands_need_a_store() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success().stdout(predicate::str::contains("already a keycel store"));
    env.cmd(&["check"]).assert().success().stdout(predicate::str::contains("every record valid"));
    let elsewhere = env.dir.path().join("typo.db");
    env.cmd(&["key", "list"])
        .env("KEYCEL_DB", &elsewhere)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("keycel init"));
    assert!(!elsewhere.exists(), "a typo in --db must not create a store");
    std::fs::write(env.dir.path().join("junk.db"), "not sqlite at all, not at all, no").unwrap();
    env.cmd(&["--db", env.dir.path().join("junk.db").to_str().unwrap(), "key", "list"]).assert().code(8);
}

#[test]
fn create_prints_the_secret_once_and_never_again() {
    let env = Env::new();
    let out =
        env.cmd(&["key", "create", "--name", "Production", "--kind", "api", "--role", "integration"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("shown only now"), "warning missing: {stderr}");
    let secret_line = stdout.lines().find(|l| l.trim_start().starts_with("secret key")).unwrap();
    let secret = secret_line.split_whitespace().last().unwrap().to_string();
    assert_eq!(secret.len(), 38);
    assert!(stdout.contains("x-keycel-client-id:"));
    assert!(stdout.contains("Authorization: Basic "));
    for args in [vec!["key", "list"], vec!["key", "show", "Production"], vec!["--json", "key", "list"]] {
        let out = env.cmd(&args).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Production"));
        assert!(!text.contains(&secret), "{args:?} shows the secret");
        assert!(!text.contains("argon2"), "{args:?} shows the hash");
    }
}

#[test]
fn key_lifecycle_commands() {
    let env = Env::new();
    let (id, _, _) = env.create(&["--name", "svc", "--kind", "api", "--role", "reader", "--accounts", "acc_1,acc_2"]);
    let v = env.json(&["key", "rename", "svc", "service"]);
    assert_eq!((v["name"].as_str(), v["version"].as_u64()), (Some("service"), Some(2)));
    let v = env.json(&["key", "describe", &id, "nightly export"]);
    assert_eq!(v["description"], "nightly export");
    let v = env.json(&["key", "set-role", &id, "integration"]);
    assert_eq!(v["role"], "integration");
    let v = env.json(&["key", "set-scopes", &id, "api.write", "admin.embed.token"]);
    assert_eq!(v["scopes"], serde_json::json!(["admin.embed.token", "api.write"]));
    let v = env.json(&["key", "set-scopes", &id]);
    assert_eq!(v["scopes"], serde_json::json!([]));
    let v = env.json(&["key", "set-accounts", &id, "all"]);
    assert_eq!(v["accounts"], "all");
    let v = env.json(&["key", "set-expiry", &id, "30d"]);
    assert!(v["expires_at"].is_string());
    let v = env.json(&["key", "set-max-concurrent", &id, "2"]);
    assert_eq!(v["max_concurrent"], 2);
    let v = env.json(&["key", "deactivate", &id]);
    assert_eq!(v["state"], "inactive");
    assert_eq!(env.json(&["key", "list", "--inactive"]).as_array().unwrap().len(), 1);
    assert_eq!(env.json(&["key", "list", "--active"]).as_array().unwrap().len(), 0);
    let v = env.json(&["key", "activate", &id]);
    assert_eq!((v["state"].as_str(), v["version"].as_u64()), (Some("active"), Some(11)));
    env.cmd(&["key", "delete", "service"]).assert().success().stdout(predicate::str::contains("never be reused"));
    env.cmd(&["key", "show", &id]).assert().code(3);
    env.cmd(&["key", "delete", &id]).assert().code(3);
    env.cmd(&["check"]).assert().success().stdout(predicate::str::contains("1 retired"));
}

#[test]
fn bad_values_have_their_own_exit_codes() {
    let env = Env::new();
    let create = |extra: &[&str]| {
        let mut a = vec!["key", "create", "--name", "x"];
        a.extend_from_slice(extra);
        env.cmd(&a).assert()
    };
    create(&["--kind", "api", "--role", "no-such-role"]).code(4).stderr(predicate::str::contains("not defined"));
    create(&["--kind", "api", "--role", "reader", "--scope", "bogus.scope"]).code(4);
    create(&["--kind", "api", "--role", "reader", "--scope", "NOT A SCOPE"]).code(4);
    create(&["--kind", "api", "--role", "reader", "--expires-in", "soon"]).code(4);
    create(&["--kind", "api", "--role", "reader", "--user", "bob"]).code(4);
    create(&["--kind", "personal", "--role", "reader"]).code(4);
    create(&["--kind", "personal", "--user", "ghost", "--role", "reader"])
        .code(4)
        .stderr(predicate::str::contains("does not exist"));
    create(&["--kind", "robot", "--role", "reader"]).code(2);
    env.cmd(&["key", "show", "nothing"]).assert().code(3);
    env.create(&["--name", "twin", "--kind", "api", "--role", "reader"]);
    env.create(&["--name", "twin", "--kind", "api", "--role", "reader"]);
    env.cmd(&["key", "show", "twin"]).assert().code(4).stderr(predicate::str::contains("use the client id"));
    // --json errors are JSON on stderr with the exit code.
    let out = env.cmd(&["--json", "key", "show", "nothing"]).output().unwrap();
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!((e["error"]["kind"].as_str(), e["error"]["exit_code"].as_u64()), (Some("not_found"), Some(3)));
    env.cmd(&["demo", "--keep", env.db().to_str().unwrap()]).assert().code(5);
}

#[test]
fn authorize_allows_denies_and_explains() {
    let env = Env::new();
    let (id, secret, token) =
        env.create(&["--name", "reporting", "--kind", "api", "--role", "reader", "--accounts", "acc_1"]);
    let (code, v) = env.authorize(&[basic(&token)], &["--action", "api.read", "--account", "acc_1"]);
    assert_eq!((code, status(&v)), (0, 200));
    assert_eq!(v["method"], "basic");
    let pair = vec![format!("x-keycel-client-id: {id}"), format!("x-keycel-secret-key: {secret}")];
    let (code, v) = env.authorize(&pair, &["--action", "api.read", "--account", "acc_1", "--method", "GET"]);
    assert_eq!((code, status(&v)), (0, 200));
    let (code, v) = env.authorize(&[format!("Authorization: Bearer {token}")], &["--action", "api.write"]);
    assert_eq!((code, status(&v), v["decision"]["code"].as_str()), (1, 403, Some("insufficient_scope")));
    let (code, v) = env.authorize(&[basic(&token)], &["--action", "api.read", "--account", "acc_2"]);
    assert_eq!((code, status(&v)), (1, 404));
    assert_eq!(v["body"], "{\"error\":\"not_found\",\"message\":\"Not found\"}");
    let (code, v) = env.authorize(&[basic(&format!("{id}_{}", "A".repeat(38)))], &["--action", "api.read"]);
    assert_eq!((code, status(&v)), (1, 401));
    assert_eq!(v["decision"]["message"], "Invalid username/account key");
    let (code, v) = env.authorize(&["X-Other: 1".to_string()], &["--action", "api.read"]);
    assert_eq!((code, status(&v)), (1, 401));
    // Human output says why.
    env.cmd(&["authorize", "--header", &basic(&token), "--action", "api.write"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("DENIED 403").and(predicate::str::contains("why:")));
    env.cmd(&["authorize", "--header", "no colon here", "--action", "api.read"]).assert().code(4);
    env.cmd(&["authorize", "--header", &basic(&token), "--action", "API READ"]).assert().code(4);
}

#[test]
fn edits_rotation_expiry_and_user_removal_take_effect() {
    let env = Env::new();
    let (id, _, token) = env.create(&["--name", "svc", "--kind", "api", "--role", "reader", "--accounts", "acc_1"]);
    let read2 = ["--action", "api.read", "--account", "acc_2"];
    assert_eq!(env.authorize(&[basic(&token)], &read2).0, 1);
    env.json(&["key", "set-accounts", &id, "acc_1,acc_2"]);
    assert_eq!(env.authorize(&[basic(&token)], &read2).0, 0);
    env.json(&["key", "deactivate", &id]);
    assert_eq!(status(&env.authorize(&[basic(&token)], &read2).1), 401);
    env.json(&["key", "activate", &id]);

    // Rotation without grace: the old secret dies at once.
    let v = env.json(&["key", "rotate", &id]);
    let new_token = v["token"].as_str().unwrap().to_string();
    assert_eq!(status(&env.authorize(&[basic(&token)], &read2).1), 401);
    assert_eq!(status(&env.authorize(&[basic(&new_token)], &read2).1), 200);
    // With grace: valid until the deadline, dead after it.
    let v = env.json(&["--now", "2030-01-01T00:00:00Z", "key", "rotate", &id, "--grace", "1h"]);
    let newest = v["token"].as_str().unwrap().to_string();
    let at = |t: &str, tok: &str| {
        let mut a = vec!["--now", t];
        a.extend_from_slice(&read2);
        status(&env.authorize(&[basic(tok)], &a).1)
    };
    assert_eq!(at("2030-01-01T00:30:00Z", &new_token), 200);
    assert_eq!(at("2030-01-01T01:00:01Z", &new_token), 401);
    assert_eq!(at("2030-01-01T01:00:01Z", &newest), 200);

    // Expiry.
    let v = env.json(&[
        "--now",
        "2030-01-01T00:00:00Z",
        "key",
        "create",
        "--name",
        "trial",
        "--kind",
        "api",
        "--role",
        "reader",
        "--expires-in",
        "1d",
    ]);
    let trial = v["token"].as_str().unwrap().to_string();
    assert_eq!(at("2030-01-01T23:59:59Z", &trial), 200);
    assert_eq!(at("2030-01-02T00:00:01Z", &trial), 401);

    // Users: personal tokens go with their user.
    env.json(&["user", "add", "alice", "--role", "viewer", "--accounts", "acc_1"]);
    let (_, _, alice_tok) =
        env.create(&["--name", "laptop", "--kind", "personal", "--user", "alice", "--role", "viewer"]);
    env.create(&["--name", "ci", "--kind", "personal", "--user", "alice", "--role", "viewer"]);
    env.cmd(&["key", "create", "--name", "x", "--kind", "personal", "--user", "alice", "--role", "admin"])
        .assert()
        .code(4);
    let read1 = ["--action", "api.read", "--account", "acc_1"];
    assert_eq!(status(&env.authorize(&[basic(&alice_tok)], &read1).1), 200);
    // The token never exceeds its user's accounts.
    assert_eq!(status(&env.authorize(&[basic(&alice_tok)], &read2).1), 404);
    assert_eq!(env.json(&["key", "list", "--user", "alice"]).as_array().unwrap().len(), 2);
    let users = env.json(&["user", "list"]);
    assert_eq!(users[0]["id"], "alice");
    let v = env.json(&["user", "remove", "alice"]);
    assert_eq!(v["deleted_tokens"], 2);
    assert_eq!(env.json(&["key", "list", "--user", "alice"]).as_array().unwrap().len(), 0);
    assert_eq!(status(&env.authorize(&[basic(&alice_tok)], &read1).1), 401);
    env.cmd(&["user", "remove", "alice"]).assert().code(3);
}

#[test]
fn policy_check_reports_file_rule_and_position() {
    let env = Env::new();
    env.cmd(&["policy", "check", policies().to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("default.toml").and(predicate::str::contains("0 invalid")));
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[scopes]\n\"api.read\" = \"read\"\n[roles]\nreader = [\"api.read\"]\n\n[[rules]]\nid = \"broken\"\neffect = \"allow\"\nactions = [\"api.*\"]\nwhen = 'has_scope(\"api.read\") && nosuchvar > 1'\n",
    )
    .unwrap();
    let out = env.cmd(&["policy", "check", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bad.toml:11"), "no file:line in {text}");
    assert!(text.contains("broken"), "no rule id in {text}");
    let v: Value = serde_json::from_slice(
        &env.cmd(&["--json", "policy", "check", bad.to_str().unwrap()]).output().unwrap().stdout,
    )
    .unwrap();
    assert_eq!(v["invalid"], 1);
    assert_eq!(v["files"][0]["error"]["rule"], "broken");
    assert_eq!(v["files"][0]["error"]["line"], 11);
    // A role granting an uncatalogued scope.
    std::fs::write(&bad, "version = 1\n[scopes]\n\"api.read\" = \"read\"\n[roles]\nreader = [\"api.write\"]\n")
        .unwrap();
    env.cmd(&["policy", "check", bad.to_str().unwrap()]).assert().code(7).stdout(predicate::str::contains("api.write"));
    // A broken --policy stops every command that needs it.
    env.cmd(&["--policy", bad.to_str().unwrap(), "key", "list"]).assert().code(7);
    env.cmd(&["policy", "check", env.dir.path().join("none").to_str().unwrap()]).assert().code(3);
}

#[test]
fn policy_test_runs_the_shipped_tests_and_fails_on_a_wrong_expectation() {
    let env = Env::new();
    let out = env.cmd(&["policy", "test", policies().to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let summary = text.lines().last().unwrap();
    let passed: usize = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed > 0 && summary.ends_with(", 0 failed"), "{summary}");

    let dir = env.dir.path().join("pol");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(policies().join("default.toml"), dir.join("default.toml")).unwrap();
    std::fs::write(
        dir.join("wrong.tests.toml"),
        "policy = \"default.toml\"\nnow = \"2026-11-23T12:00:00Z\"\n[keys.reader]\nrole = \"reader\"\n\n\
         [[tests]]\nname = \"readers read\"\nkey = \"reader\"\nrequest = { action = \"api.read\" }\nexpect = { status = 200 }\n\n\
         [[tests]]\nname = \"readers write (wrong on purpose)\"\nkey = \"reader\"\nrequest = { action = \"api.write\" }\nexpect = { status = 200 }\n",
    )
    .unwrap();
    env.cmd(&["policy", "test", dir.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("1 passed, 1 failed").and(predicate::str::contains("FAIL readers write")));
    let v: Value =
        serde_json::from_slice(&env.cmd(&["--json", "policy", "test", dir.to_str().unwrap()]).output().unwrap().stdout)
            .unwrap();
    assert_eq!((v["passed"].as_u64(), v["failed"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn help_has_examples_and_exit_codes() {
    let env = Env::new();
    env.cmd(&["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:").and(predicate::str::contains("Exit codes:")));
    env.cmd(&["key", "create", "--help"]).assert().success().stdout(predicate::str::contains("--expires-in"));
    env.cmd(&["nonsense"]).assert().code(2);
}

#[test]
fn demo_walks_every_scenario_without_deviation() {
    let env = Env::new();
    let out = env.cmd(&["--json", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["deviations"], serde_json::json!([]));
    assert!(v["checks"].as_u64().unwrap() >= 40);
    let statuses: Vec<u64> =
        v["steps"].as_array().unwrap().iter().filter_map(|s| s["detail"]["decision"]["status"].as_u64()).collect();
    for s in [200, 401, 403, 404, 429] {
        assert!(statuses.contains(&s), "the demo never shows a {s}");
    }
    // A policy that breaks a seed scenario makes the demo fail (it is a test, not a show).
    let lax = env.dir.path().join("lax.toml");
    let src = std::fs::read_to_string(policies().join("default.toml"))
        .unwrap()
        .replace("max_concurrent = 5", "max_concurrent = 6");
    std::fs::write(&lax, src).unwrap();
    env.cmd(&["--policy", lax.to_str().unwrap(), "demo"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("deviation"));
}
