//! The CLI shows core's forms: a key's public form (no hash) and every form of an issued
//! secret, built by `IssuedKey::reveal`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use assert_cmd::Command;
use base64ct::{Base64, Encoding};
use serde_json::Value;
use tempfile::TempDir;

struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        env.json(&["init"]);
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("keycel").unwrap();
        c.env_remove("KEYCEL_POLICY")
            .env_remove("KEYCEL_NOW")
            .env("KEYCEL_DB", self.dir.path().join("keys.db"))
            .env("KEYCEL_HASH", "edge");
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
fn create_shows_every_form_of_the_secret_and_each_authenticates() {
    let env = Env::new();
    let v = env.json(&["key", "create", "--name", "svc", "--kind", "api", "--role", "reader"]);
    let (id, secret, token) =
        (v["client_id"].as_str().unwrap(), v["secret_key"].as_str().unwrap(), v["token"].as_str().unwrap());
    assert_eq!(token, format!("{id}_{secret}"));
    assert_eq!(v["authorization_bearer"], format!("Bearer {token}"));
    let basic = v["authorization_basic"].as_str().unwrap().strip_prefix("Basic ").unwrap();
    assert_eq!(Base64::decode_vec(basic).unwrap(), format!("{token}:").into_bytes());
    assert_eq!(v["headers"]["x-keycel-client-id"], id);
    assert_eq!(v["headers"]["x-keycel-secret-key"], secret);
    for header in [
        format!("Authorization: {}", v["authorization_basic"].as_str().unwrap()),
        format!("Authorization: {}", v["authorization_bearer"].as_str().unwrap()),
    ] {
        let a = env.json(&["authorize", "--header", &header, "--action", "api.read"]);
        assert_eq!(a["decision"]["status"], 200, "{a}");
    }
    let pair = env.json(&[
        "authorize",
        "--header",
        &format!("x-keycel-client-id: {id}"),
        "--header",
        &format!("x-keycel-secret-key: {secret}"),
        "--action",
        "api.read",
    ]);
    assert_eq!(pair["decision"]["status"], 200, "{pair}");
}

#[test]
fn show_and_list_give_the_public_form_with_the_state() {
    let env = Env::new();
    let v = env.json(&["key", "create", "--name", "svc", "--kind", "api", "--role", "reader", "--accounts", "acc_1"]);
    let id = v["client_id"].as_str().unwrap();
    env.json(&["key", "rotate", id, "--grace", "1h"]);
    let shown = env.json(&["key", "show", id]);
    assert!(!shown.to_string().contains("$argon2") && shown.get("secret_hash").is_none(), "{shown}");
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["schema"], 1);
    assert!(shown["previous_secret_valid_until"].is_string());
    let listed = env.json(&["key", "list"]);
    assert_eq!(listed[0], shown);
    let fields: Vec<&str> = shown.as_object().unwrap().keys().map(String::as_str).collect();
    for f in ["id", "name", "kind", "user", "role", "scopes", "accounts", "active", "expires_at", "version"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}
