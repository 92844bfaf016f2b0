//! The management API (`keycel_axum::management_router`) nested in an axum app on a real
//! tokio/hyper server on 127.0.0.1: the same core handler as every runtime, reached over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use keycel::engine::Engine;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::record::AccountScope;
use keycel::store::MemoryStore;
use serde_json::Value;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

async fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = sender.send_request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_nested_in_axum() {
    let engine = Arc::new(Engine::default_policy().unwrap());
    let store = Arc::new(MemoryStore::new());
    let ring =
        Keyring::new(store).with_hash(HashPolicy::with_params(CHEAP).unwrap()).unwrap().with_guard(engine.clone());
    let op = Actor::Operator("test".into());
    let now = keycel::clock::now();
    let (_, admin) = ring.create(&op, NewKey::api("admin", "admin"), now).unwrap();
    let mut limited = NewKey::api("limited", "admin");
    limited.accounts = AccountScope::Only(["acc_1".to_string()].into());
    let (_, limited) = ring.create(&op, limited, now).unwrap();
    let mut other = NewKey::api("other", "reader");
    other.accounts = AccountScope::Only(["acc_2".to_string()].into());
    let (other, _) = ring.create(&op, other, now).unwrap();
    let admin = admin.token().expose().to_string();
    let limited = limited.token().expose().to_string();

    let app = axum::Router::new().nest("/manage", keycel_axum::management_router(engine, ring));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    let (status, body) = call(addr, "GET", "/manage/openapi.json", None, b"").await;
    assert_eq!((status, body), (200, keycel::management::openapi().into_bytes()));
    assert_eq!(call(addr, "GET", "/manage/keys", None, b"").await.0, 401);

    let new = br#"{"name":"made in axum","role":"reader","accounts":["acc_1"]}"#;
    let (status, body) = call(addr, "POST", "/manage/keys", Some(&admin), new).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let made: Value = serde_json::from_slice(&body).unwrap();
    let id = made["key"]["id"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("$argon2"));

    let (status, body) = call(addr, "GET", &format!("/manage/keys/{id}"), Some(&admin), b"").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["name"], "made in axum");

    // Out of reach and missing: the same bytes.
    let hidden = call(addr, "GET", &format!("/manage/keys/{}", other.id), Some(&limited), b"").await;
    let missing = call(addr, "GET", "/manage/keys/kc_0000000000000000", Some(&limited), b"").await;
    assert_eq!(hidden, missing);
    assert_eq!(hidden.0, 404);

    let big = vec![b' '; keycel::management::fields::MAX_BODY_BYTES + 1];
    assert_eq!(call(addr, "POST", "/manage/keys", Some(&admin), &big).await.0, 413);
}
