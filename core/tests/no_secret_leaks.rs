//! No secret in output (issue 7).
//!
//! Runs the key lifecycle, authentication and authorization flows with freshly generated
//! secrets, success and every kind of failure, and collects everything keycel hands back that
//! a host might print, log or store: `Debug` and `Display` of every value and error, decisions
//! and their JSON bodies and serde form, serialized records, audit events, lease and engine
//! `Debug`. None of it may contain a secret, in whole or in part (the 32 random characters,
//! the secret key with its checksum, or the whole token), nor a Basic header's base64 of it.
//! Stored records may contain the argon2 PHC string (that is what is stored), but audit
//! events and `Debug` output may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::audit::MemoryAudit;
use keycel::engine::{Engine, Request};
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Change, Keyring, NewKey};
use keycel::policy::PolicySet;
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::store::{MemoryStore, Store};
use keycel::time::{Duration, Timestamp};
use keycel::{AuthConfig, CredentialMethod, Credentials, IssuedKey, TokenFormat};
use std::sync::Arc;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

fn ts(s: i64) -> Timestamp {
    Timestamp::from_unix(s).unwrap()
}

/// Every output collected, with where it came from.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: &str, text: impl Into<String>) {
        self.0.push((what.to_string(), text.into()));
    }
    fn debug(&mut self, what: &str, v: &impl std::fmt::Debug) {
        self.add(what, format!("{v:?}"));
        self.add(what, format!("{v:#?}"));
    }
    fn display(&mut self, what: &str, v: &impl std::fmt::Display) {
        self.add(what, v.to_string());
    }
}

/// Forbidden substrings of one issued key.
fn needles(k: &IssuedKey) -> Vec<String> {
    let token = k.token().expose().to_string();
    let secret = k.secret.expose().to_string();
    let b64 = |s: &str| {
        use std::io::Write;
        let mut out = Vec::new();
        // Standard base64, as a Basic header carries it.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for chunk in s.as_bytes().chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | u32::from(c) << (16 - 8 * i));
            for i in 0..4 {
                let c = if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' };
                out.write_all(&[c]).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    };
    vec![
        secret[..32].to_string(),  // the random part alone
        secret[8..24].to_string(), // any 16-character run of it
        secret.clone(),
        token.clone(),
        b64(&token)[..40].to_string(),
        b64(&format!("{}:{}", k.client_id, secret))[..40].to_string(),
    ]
}

#[test]
fn no_flow_prints_serializes_or_audits_a_secret() {
    let now = ts(1_800_000_000);
    let cheap = HashPolicy::with_params(CHEAP).unwrap();
    let policy = PolicySet::default_policy().unwrap();
    let auth_cfg = AuthConfig { hash: cheap, ..keycel::engine::auth_config_for(&policy).unwrap() };
    let engine = Arc::new(Engine::with_config(policy, auth_cfg, None).unwrap());
    let store = Arc::new(MemoryStore::new());
    let audit = Arc::new(MemoryAudit::default());
    let ring = Keyring::new(store.clone() as Arc<dyn Store>)
        .with_hash(cheap)
        .unwrap()
        .with_guard(engine.clone())
        .with_audit(audit.clone());
    let op = Actor::Operator("leak-test".into());
    let mut out = Outputs::default();
    let mut issued: Vec<IssuedKey> = Vec::new();
    let fmt = TokenFormat::default();

    // Lifecycle: users, an admin API key, a personal token, a reader with few accounts.
    let alice =
        ring.put_user(&op, UserRecord::new("alice", ["editor".into()], AccountScope::All).unwrap(), now).unwrap();
    out.debug("user", &alice);
    let (admin, admin_key) = ring.create(&op, NewKey::api("admin", "admin"), now).unwrap();
    let (_pat, pat_key) = ring.create(&op, NewKey::personal("pat", "alice", "editor"), now).unwrap();
    let reader_new = NewKey {
        accounts: AccountScope::Only(["acc_1".to_string()].into()),
        expires_in: Some(Duration::from_secs(3600)),
        ..NewKey::api("reader", "reader")
    };
    let (reader, reader_key) = ring.create(&op, reader_new, now).unwrap();
    for k in [&admin_key, &pat_key, &reader_key] {
        out.debug("issued key", k);
    }
    let (rotated, rotated_key) = ring.rotate(&op, reader.id.as_str(), Some(Duration::from_secs(60)), now).unwrap();
    out.debug("rotated record", &rotated);
    issued.extend([admin_key, pat_key, reader_key, rotated_key]);
    let (gone, gone_key) = ring.create(&op, NewKey::api("doomed", "reader"), now).unwrap();
    ring.delete(&op, gone.id.as_str(), now).unwrap();
    issued.push(gone_key);
    let (dead, dead_key) = ring.create(&op, NewKey::api("inactive", "reader"), now).unwrap();
    ring.update(&op, dead.id.as_str(), Change::SetActive(false), now).unwrap();
    issued.push(dead_key);

    // Keyring errors: denied by policy (a reader key acting), invalid values, not found.
    let reader_actor = Actor::Key { key: Box::new(rotated.clone()), user: None };
    let errors = [
        ring.create(&reader_actor, NewKey::api("nope", "admin"), now).map(|_| ()),
        ring.rotate(&reader_actor, admin.id.as_str(), None, now).map(|_| ()),
        ring.update(&op, admin.id.as_str(), Change::SetRole("no such role".into()), now).map(|_| ()),
        ring.update(&op, "kc_AAAAAAAAAAAAAAAA", Change::Rename("x".into()), now).map(|_| ()),
        ring.create(&op, NewKey::personal("p", "nobody", "editor"), now).map(|_| ()),
    ];
    for e in errors {
        let e = e.expect_err("each of these must fail");
        out.debug("keyring error", &e);
        out.display("keyring error", &e);
    }

    // Records: every serialized and printed form.
    for r in store.list_keys(&Default::default()).unwrap() {
        out.add("record json", r.to_json());
        out.add("record value", r.to_value().to_string());
        out.add("record serde", serde_json::to_string(&r).unwrap());
        out.debug("record", &r);
    }

    // Requests through the engine: every status, every credential method, good and bad secrets.
    let requests = [
        Request::new("api.read").account("acc_1").method("GET").path("/v1/x"),
        Request::new("api.read").account("acc_9"),
        Request::new("api.write").account("acc_1"),
        Request::new("admin.account.create").path("/v1/not-admin"),
        Request::new(""),
    ];
    let mut headers: Vec<Vec<(String, String)>> = Vec::new();
    for k in &issued {
        let token = k.token().expose().to_string();
        let id = k.client_id.as_str().to_string();
        let secret = k.secret.expose().to_string();
        let mut wrong = secret.clone();
        wrong.replace_range(0..1, if wrong.starts_with('a') { "b" } else { "a" });
        headers.extend([
            vec![("Authorization".into(), format!("Bearer {token}"))],
            vec![("Authorization".into(), format!("Basic {}", b64(&format!("{token}:"))))],
            vec![("Authorization".into(), format!("Basic {}", b64(&format!("{id}:{secret}"))))],
            vec![("x-keycel-client-id".into(), id.clone()), ("x-keycel-secret-key".into(), secret.clone())],
            // Broken on purpose: typo (bad checksum), too long, wrong id, two methods.
            vec![("Authorization".into(), format!("Bearer {id}_{wrong}"))],
            vec![("Authorization".into(), format!("Bearer {token}{token}"))],
            vec![("Authorization".into(), format!("Bearer {token}!"))],
            vec![
                ("x-keycel-client-id".into(), "kc_AAAAAAAAAAAAAAAA".into()),
                ("x-keycel-secret-key".into(), secret.clone()),
            ],
            vec![("x-keycel-secret-key".into(), secret.clone())],
            vec![("Authorization".into(), format!("Bearer {token}")), ("x-keycel-client-id".into(), id.clone())],
            vec![("Authorization".into(), format!("Basic {}", b64(&format!("{token}:{secret}"))))],
            vec![("Authorization".into(), format!("Basic {token}"))],
        ]);
    }
    let mut statuses = std::collections::BTreeSet::new();
    for h in &headers {
        // Credential parsing and authentication on their own, as edge hosts call them.
        match engine.authenticator().credentials(h.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            Ok(creds) => {
                out.debug("credentials", &creds);
                let record = store.get_key(creds.client_id().as_str()).unwrap();
                let user = record.as_ref().and_then(|r| r.kind.user()).and_then(|u| store.get_user(u).unwrap());
                let res = engine.authenticator().authenticate(&creds, record.as_ref(), user.as_ref(), now);
                out.add("describe", keycel::auth::describe(&res));
                match &res {
                    Ok(a) => out.debug("authenticated", a),
                    Err(f) => {
                        out.debug("auth failure", f);
                        out.display("auth failure reason", &f.reason);
                        let d = f.decision(engine.messages());
                        out.add("failure decision body", d.body_json());
                    }
                }
            }
            Err(e) => {
                out.debug("credential error", &e);
                out.display("credential error", &e);
            }
        }
        for req in &requests {
            let a = engine.authorize(h.iter().map(|(n, v)| (n.as_str(), v.as_str())), req, store.as_ref(), now);
            statuses.insert(a.decision.status);
            out.debug("authorization", &a);
            out.add("decision body", a.decision.body_json());
            out.add("decision serde", serde_json::to_string(&a.decision).unwrap());
            out.display("decision reason", &a.decision.reason);
        }
    }
    assert!(
        [200u16, 400, 401, 403, 404].iter().all(|s| statuses.contains(s)),
        "the flows must reach every status: {statuses:?}"
    );
    // A secret that crossed an FFI boundary with a bad checksum.
    let e =
        Credentials::from_pair(&fmt, issued[0].client_id.as_str(), "x".repeat(38).as_str(), CredentialMethod::Basic)
            .unwrap_err();
    out.debug("from_pair error", &e);
    out.debug("engine", engine.as_ref());
    out.debug("keyring", &ring);

    // Audit events: printed and serialized; they carry neither secrets nor hashes.
    let events = audit.events();
    assert!(events.len() >= 8, "the flows emit audit events");
    let hashes: Vec<String> = store
        .list_keys(&Default::default())
        .unwrap()
        .iter()
        .flat_map(|r: &KeyRecord| {
            let mut h = vec![r.secret_hash.as_str().rsplit('$').next().unwrap().to_string()];
            h.extend(r.previous_secret.iter().map(|p| p.hash.as_str().rsplit('$').next().unwrap().to_string()));
            h
        })
        .collect();
    for ev in &events {
        let text = [serde_json::to_string(ev).unwrap(), format!("{ev:?}")];
        for t in &text {
            for h in &hashes {
                assert!(!t.contains(h.as_str()), "audit event shows a password hash: {t}");
            }
        }
        out.add("audit event", text.join("\n"));
    }
    // Debug output never shows the stored hash either (it is an offline-attack target).
    for (what, text) in &out.0 {
        if what.contains("json") || what.contains("serde") || what.contains("value") {
            continue;
        }
        for h in &hashes {
            assert!(!text.contains(h.as_str()), "{what} shows a password hash: {text}");
        }
    }

    // The check itself.
    let mut checked = 0;
    for k in &issued {
        for needle in needles(k) {
            for (what, text) in &out.0 {
                assert!(!text.contains(&needle), "{what} contains secret material {needle:?}:\n{text}");
                checked += 1;
            }
        }
    }
    assert!(out.0.len() > 500, "too little output collected: {}", out.0.len());
    eprintln!("{} outputs checked against {} secrets ({checked} comparisons)", out.0.len(), issued.len());
}

fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// The secret types themselves: redacted `Debug`/`Display`, and no `Serialize` (compile-time:
/// these const assertions fail the build if `Secret` or `IssuedKey` implemented it, see the trait check below).
#[test]
fn secret_types_are_redacted_and_not_serializable() {
    let k = TokenFormat::default().issue(&mut getrandom::SysRng).unwrap();
    let s = k.secret.expose().to_string();
    for text in [format!("{:?}", k.secret), format!("{}", k.secret), format!("{k:?}"), format!("{:?}", k.token())] {
        assert!(!text.contains(&s[..16]), "{text}");
    }
    trait NotSerialize {
        const IS: bool = false;
    }
    impl<T> NotSerialize for T {}
    struct Probe<T>(std::marker::PhantomData<T>);
    #[allow(dead_code)]
    impl<T: serde::Serialize> Probe<T> {
        const IS: bool = true;
    }
    const { assert!(!Probe::<keycel::Secret>::IS, "Secret must not be Serialize") };
    const { assert!(!Probe::<IssuedKey>::IS, "IssuedKey must not be Serialize") };
    const { assert!(!Probe::<Credentials>::IS, "Credentials must not be Serialize") };
    const { assert!(Probe::<KeyRecord>::IS, "the probe detects Serialize") };
}
