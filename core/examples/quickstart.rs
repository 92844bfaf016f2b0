//! The README's quickstart: `cargo run -p keycel --example quickstart`.
use keycel::engine::{Engine, Request};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::store::MemoryStore;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Arc::new(Engine::default_policy()?); // policies/default.toml, compiled once
    let store = Arc::new(MemoryStore::new());
    let keys = Keyring::new(store.clone()).with_guard(engine.clone());
    let now = keycel::clock::now();

    // Issue a key: the secret is shown exactly once; only its argon2id hash is stored.
    let (record, issued) = keys.create(&Actor::Operator("me".into()), NewKey::api("Production", "integration"), now)?;
    // Every form of the secret at once: token, secret key, ready Basic/Bearer values, header pair.
    let forms = issued.reveal(&engine.authenticator().config().credentials);
    println!("issued {} ({})", record.id, record.name);

    // A request arrives: Bearer, Basic (token as user) or the x-keycel-client-id/secret pair.
    let headers = [("authorization", forms.authorization_bearer.expose().to_string())];
    let request = Request::new("api.read").account("acc_1").method("GET").path("/v1/data");
    let auth = engine.authorize(headers.iter().map(|(k, v)| (*k, v.as_str())), &request, store.as_ref(), now);
    println!("{} {} via {:?}", auth.decision.status, auth.decision.reason, auth.decision.matched_rules);
    drop(auth.lease); // the in-flight slot (5 per key by default) is released here
    Ok(())
}
