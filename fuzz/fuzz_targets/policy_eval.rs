//! CEL evaluation of loaded policies. The input's first line is a rule condition; the rest is
//! a request as JSON. The condition is placed in a policy that otherwise allows, as an allow
//! rule and as a forbid rule. Properties: loading never panics; evaluation never panics;
//! a condition that errors at run time denies (fail closed); a forbid rule that holds always
//! wins over allow rules.
#![no_main]

use keycel::engine::{Engine, Request};
use keycel::policy::PolicySet;
use keycel::record::{KeyRecord, UserRecord};
use libfuzzer_sys::fuzz_target;

const TEMPLATE: &str = r#"
version = 1
[scopes]
"api.read" = "read"
"api.write" = "write"
[roles]
reader = ["api.read"]
[[rules]]
id = "fuzzed"
effect = "EFFECT"
actions = ["api.*"]
when = 'CONDITION'
[[rules]]
id = "baseline"
effect = "allow"
actions = ["*"]
when = "true"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (condition, request) = text.split_once('\n').unwrap_or((text, ""));
    if condition.contains('\'') || condition.contains('\n') {
        return; // would break out of the TOML literal string, not a CEL input
    }
    let request: Request = serde_json::from_str(request).unwrap_or_else(|_| {
        Request::new("api.read").account("acc_1").method("GET").path("/v1/x").ip("203.0.113.7")
    });
    let (key, user) = records();
    for effect in ["allow", "forbid"] {
        let src = TEMPLATE.replace("EFFECT", effect).replace("CONDITION", condition);
        let Ok(policy) = PolicySet::from_toml_str(&src, "fuzz.toml") else { continue };
        let Ok(engine) = Engine::new(policy) else { continue };
        for (k, u) in [(&key.0, None), (&key.1, Some(&user))] {
            let d = engine.decide(k, u, &request, now());
            assert!(matches!(d.status, 200 | 400 | 401 | 403 | 404), "status {}", d.status);
            assert_eq!(d.allowed, d.status == 200);
            if effect == "forbid" && d.matched_rules.iter().any(|r| r == "fuzzed") {
                assert!(!d.allowed, "a holding forbid rule was overridden");
            }
        }
    }
});

fn now() -> keycel::Timestamp {
    keycel::Timestamp::from_unix(1_800_000_000).expect("in range")
}

fn records() -> ((KeyRecord, KeyRecord), UserRecord) {
    let hash = "$argon2id$v=19$m=1024,t=1,p=1$Qgg/JmMpByVfz8x0AMXsAg$Ymwa8x6rD1fQHZRt3WzsEMnep40V2NKRaU0TdjimZvg";
    let api = format!(
        r#"{{"schema":1,"id":"kc_yAXUet7DfXtxEAMw","name":"k","description":"","kind":"api","user":null,
        "role":"reader","scopes":["api.write"],"accounts":["acc_1","acc_2"],"active":true,"created_at":"2026-11-23T12:00:00Z",
        "updated_at":"2026-11-23T12:00:00Z","expires_at":"2027-11-23T12:00:00Z","rotated_at":null,"secret_hash":"{hash}",
        "previous_secret":null,"max_concurrent":3,"metadata":{{"tier":"gold","region":"eu"}},"version":4}}"#
    );
    let personal = api.replace("\"kind\":\"api\",\"user\":null", "\"kind\":\"personal\",\"user\":\"u1\"").replace("kc_yAXUet7DfXtxEAMw", "kc_Jovg7w99WGeG8zDE");
    let user = UserRecord::new("u1", ["reader".to_string()], keycel::AccountScope::All).expect("valid user");
    (
        (KeyRecord::from_json(&api).expect("valid api key"), KeyRecord::from_json(&personal).expect("valid personal key")),
        user,
    )
}
