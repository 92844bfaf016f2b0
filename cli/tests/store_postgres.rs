//! `--db postgresql://...` and `keycel store copy` against a real PostgreSQL (a throwaway
//! cluster from tests/servers/postgres.sh): a SQLite store grows into PostgreSQL without
//! re-issuing a key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

struct Cluster {
    dsn: String,
    dir: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/postgres.sh")
}

impl Cluster {
    fn start() -> Self {
        let out = std::process::Command::new("bash")
            .arg(script())
            .args(["start", &std::process::id().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let (dsn, dir) = line.trim_end().split_once('\t').unwrap();
        Cluster { dsn: dsn.into(), dir: dir.into() }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").arg(script()).args(["stop", &self.dir]).status();
    }
}

fn keycel(db: &str, args: &[&str]) -> (i32, Value) {
    let mut c = Command::cargo_bin("keycel").unwrap();
    c.env_remove("KEYCEL_POLICY").env_remove("KEYCEL_NOW").env("KEYCEL_DB", db).env("KEYCEL_HASH", "edge");
    c.arg("--json").args(args);
    let out = c.output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v)
}

fn ok(db: &str, args: &[&str]) -> Value {
    let (code, v) = keycel(db, args);
    assert_eq!(code, 0, "{args:?} -> {v}");
    v
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[test]
fn sqlite_store_grows_into_postgres_without_reissuing() {
    let pg = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", tmp.path().join("keys.db").display());
    ok(&sqlite, &["init"]);
    ok(&sqlite, &["user", "add", "alice", "--role", "admin"]);
    let api = ok(&sqlite, &["key", "create", "--name", "svc", "--kind", "api", "--role", "admin"]);
    let personal =
        ok(&sqlite, &["key", "create", "--name", "laptop", "--kind", "personal", "--user", "alice", "--role", "admin"]);
    let gone = ok(&sqlite, &["key", "create", "--name", "old", "--kind", "api", "--role", "admin"]);
    ok(&sqlite, &["key", "delete", gone["client_id"].as_str().unwrap()]);

    ok(&pg.dsn, &["init"]);
    let copied = ok(&pg.dsn, &["store", "copy", "--from", &sqlite, "--to", &pg.dsn]);
    assert_eq!((copied["users"].as_u64(), copied["keys"].as_u64()), (Some(1), Some(2)), "{copied}");
    // Re-running is harmless: everything is already there, identical.
    let again = ok(&pg.dsn, &["store", "copy", "--from", &sqlite, "--to", &pg.dsn]);
    assert_eq!((again["keys"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(3)), "{again}");

    // The same tokens work against PostgreSQL: nobody was re-issued a key.
    for k in [&api, &personal] {
        let token = k["token"].as_str().unwrap();
        let (code, v) = keycel(&pg.dsn, &["authorize", "--header", &bearer(token), "--action", "api.read"]);
        assert_eq!(code, 0, "{v}");
    }
    let listed = ok(&pg.dsn, &["key", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Changes through --db postgresql:// take effect.
    ok(&pg.dsn, &["user", "remove", "alice"]);
    let token = personal["token"].as_str().unwrap();
    let (code, _) = keycel(&pg.dsn, &["authorize", "--header", &bearer(token), "--action", "api.read"]);
    assert_eq!(code, 1, "a removed user's token must be refused");
    let (code, _) = keycel(&pg.dsn, &["check"]);
    assert_eq!(code, 0);
    // An unreachable database is a store failure (exit 8), not a crash.
    let (code, _) = keycel("postgresql://nobody@127.0.0.1:1/none", &["key", "list"]);
    assert_eq!(code, 8);
}
