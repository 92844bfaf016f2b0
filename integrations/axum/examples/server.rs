//! The axum example server: `cargo run -p keycel-axum --example server` (127.0.0.1:8790).
//! Keys live in memory; a demo key is issued at start and its token printed once.

#[path = "common/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use keycel::engine::Engine;
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::record::AccountScope;
use keycel::store::MemoryStore;
use keycel_axum::Keycel;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Arc::new(Engine::default_policy()?);
    let store = Arc::new(MemoryStore::new());
    let keys = Keyring::new(store.clone()).with_guard(engine.clone());
    let mut spec = NewKey::api("demo", "reader");
    spec.accounts = AccountScope::Only(["acc_1".to_string()].into());
    let (record, issued) = keys.create(&Actor::Operator("example".into()), spec, keycel::clock::now())?;
    let addr: SocketAddr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8790".into()).parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("keycel axum example on http://{addr}  (key {})", record.id);
    println!("curl -H 'Authorization: Bearer {}' http://{addr}/v1/accounts/acc_1/data", issued.token().expose());
    let app = app::app(Keycel::new(engine, store));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
