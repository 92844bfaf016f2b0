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
    let mut shown = env.json(&["key", "show", id]);
    // `key show` adds the key's budget as its admission backend counts it; `list` does not.
    let budget = shown.as_object_mut().unwrap().remove("budget").unwrap();
    assert_eq!(budget["in_flight"], 0, "{budget}");
    assert!(!shown.to_string().contains("$argon2") && shown.get("secret_hash").is_none(), "{shown}");
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["schema"], 1);
    assert!(shown["previous_secret_valid_until"].is_string());
    let mut listed = env.json(&["key", "list"]);
    let effective = listed[0].as_object_mut().unwrap().remove("effective").unwrap();
    assert_eq!(listed[0], shown, "list gives the same public form, plus the effective authority");
    assert_eq!(effective["scopes"], serde_json::json!(["api.read"]));
    let fields: Vec<&str> = shown.as_object().unwrap().keys().map(String::as_str).collect();
    for f in ["id", "name", "kind", "user", "role", "scopes", "accounts", "active", "expires_at", "version"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[test]
fn explain_and_list_show_a_personal_tokens_effective_authority() {
    let env = Env::new();
    env.json(&["user", "add", "alice", "--role", "viewer", "--accounts", "acc_1,acc_2"]);
    let v = env.json(&[
        "key",
        "create",
        "--name",
        "laptop",
        "--kind",
        "personal",
        "--user",
        "alice",
        "--role",
        "viewer",
        "--accounts",
        "acc_2,acc_3",
    ]);
    let id = v["client_id"].as_str().unwrap().to_string();
    let a = env.json(&["key", "explain", "laptop"]);
    assert_eq!(a["key_id"], id.as_str());
    assert_eq!(a["kind"], "personal");
    assert_eq!(a["user"], "alice");
    assert_eq!(a["accounts"], serde_json::json!(["acc_2"]), "key accounts capped by the user's");
    assert!(a["scopes"].as_array().unwrap().contains(&serde_json::json!("api.read")));
    assert_eq!(a["max_concurrent"], 5);
    assert_eq!(a["active"], true);
    // The user loses the viewer role for reader: the token's effective scopes follow at once.
    env.json(&["user", "add", "alice", "--role", "reader", "--accounts", "acc_1,acc_2"]);
    let a = env.json(&["key", "explain", &id]);
    assert_eq!(a["scopes"], serde_json::json!(["api.read"]));
    let listed = env.json(&["key", "list"]);
    assert_eq!(listed[0]["role"], "viewer", "the stored role");
    assert_eq!(listed[0]["effective"], a, "list shows the effective authority");
    let table = env.cmd(&["key", "list"]).output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("EFFECTIVE SCOPES") && text.contains("acc_2"), "{text}");
    assert!(!text.contains("acc_3"), "{text}");
    let human = env.cmd(&["key", "explain", &id]).output().unwrap();
    assert!(human.status.success());
    assert!(String::from_utf8(human.stdout).unwrap().contains("effective scopes"));
}

#[test]
fn policy_roles_lists_roles_scopes_and_the_catalogue() {
    let env = Env::new();
    let v = env.json(&["policy", "roles"]);
    assert_eq!(v["roles"]["reader"], serde_json::json!(["api.read"]));
    assert!(v["roles"]["admin"].as_array().unwrap().contains(&serde_json::json!("admin.*")));
    assert!(v["scopes"]["keys.create.api"].is_string());
    let out = env.cmd(&["policy", "roles"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.contains("integration") && text.contains("keys.manage_all"), "{text}");
}
