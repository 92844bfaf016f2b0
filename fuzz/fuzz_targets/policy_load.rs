//! Policy documents (TOML and JSON). Properties: never panics or overflows the stack on any
//! document; an accepted document builds an engine that decides a request without panicking.
#![no_main]

use keycel::engine::{Engine, Request};
use keycel::policy::PolicySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = [PolicySet::from_toml_str(text, "fuzz.toml"), PolicySet::from_json_str(text, "fuzz.json")];
    for policy in loaded.into_iter().flatten() {
        let Ok(engine) = Engine::new(policy) else { continue };
        let key = fuzz_common_key();
        for action in ["api.read", "admin.account.create", "keys.create"] {
            let d = engine.decide(&key, None, &Request::new(action).account("acc_1").method("GET").path("/v1/x"), now());
            assert!(matches!(d.status, 200 | 400 | 401 | 403 | 404), "status {}", d.status);
            assert_eq!(d.allowed, d.status == 200);
        }
    }
});

fn now() -> keycel::Timestamp {
    keycel::Timestamp::from_unix(1_800_000_000).expect("in range")
}

fn fuzz_common_key() -> keycel::KeyRecord {
    keycel::KeyRecord::from_json(
        r#"{"schema":1,"id":"kc_yAXUet7DfXtxEAMw","name":"k","description":"","kind":"api","user":null,
        "role":"admin","scopes":[],"accounts":"all","active":true,"created_at":"2026-11-23T12:00:00Z",
        "updated_at":"2026-11-23T12:00:00Z","expires_at":null,"rotated_at":null,
        "secret_hash":"$argon2id$v=19$m=1024,t=1,p=1$Qgg/JmMpByVfz8x0AMXsAg$Ymwa8x6rD1fQHZRt3WzsEMnep40V2NKRaU0TdjimZvg",
        "previous_secret":null,"max_concurrent":null,"metadata":{"tier":"gold"},"version":1}"#,
    )
    .expect("valid record")
}
