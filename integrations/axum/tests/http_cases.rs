//! The shared HTTP cases (tests/http_cases/cases.json) against the example app on a real
//! tokio/hyper server on 127.0.0.1, driven by a hyper HTTP/1.1 client over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../examples/common/app.rs"]
mod app;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use keycel::engine::Engine;
use keycel::hash::{HashParams, HashPolicy};
use keycel::keyring::{Actor, Keyring, NewKey};
use keycel::record::AccountScope;
use keycel::store::MemoryStore;
use keycel_axum::Keycel;
use serde_json::Value;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };

struct Key {
    client_id: String,
    token: String,
    secret: String,
}

fn cases() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/http_cases/cases.json");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!cases["scenarios"].as_array().unwrap().is_empty(), "{path}: no scenarios");
    cases
}

/// Starts the example app on 127.0.0.1 with the cases' keys.
async fn serve(cases: &Value) -> (SocketAddr, HashMap<String, Key>) {
    let engine = Arc::new(Engine::default_policy().unwrap());
    let store = Arc::new(MemoryStore::new());
    let ring = Keyring::new(store.clone())
        .with_hash(HashPolicy::with_params(CHEAP).unwrap())
        .unwrap()
        .with_guard(engine.clone());
    let mut keys = HashMap::new();
    for (label, spec) in cases["keys"].as_object().unwrap() {
        let mut new = NewKey::api(label, spec["role"].as_str().unwrap());
        if let Some(list) = spec["accounts"].as_array() {
            new.accounts = AccountScope::Only(list.iter().map(|a| a.as_str().unwrap().to_string()).collect());
        }
        new.max_concurrent = spec["max_concurrent"].as_u64().map(|n| n as u32);
        let (record, issued) = ring.create(&Actor::Operator("test".into()), new, keycel::clock::now()).unwrap();
        let token = issued.token().expose().to_string();
        keys.insert(
            label.clone(),
            Key { client_id: record.id.to_string(), token, secret: issued.secret.expose().to_string() },
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app::app(Keycel::new(engine, store));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (addr, keys)
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn auth_headers(auth: &Value, keys: &HashMap<String, Key>) -> Vec<(String, String)> {
    let form = auth["form"].as_str().unwrap();
    if form == "none" {
        return vec![];
    }
    if form == "raw" {
        return auth["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
    }
    let k = &keys[auth["key"].as_str().unwrap()];
    let pair = vec![
        ("x-keycel-client-id".to_string(), k.client_id.clone()),
        ("x-keycel-secret-key".to_string(), k.secret.clone()),
    ];
    let authz = |v: String| vec![("authorization".to_string(), v)];
    match form {
        "bearer" => authz(format!("Bearer {}", k.token)),
        "basic_token" => authz(basic(&k.token, "")),
        "basic_pair" => authz(basic(&k.client_id, &k.secret)),
        "header_pair" => pair,
        "wrong_secret" => {
            let i = k.token.len() - 12;
            let flipped = if &k.token[i..=i] == "x" { "y" } else { "x" };
            authz(format!("Bearer {}{}{}", &k.token[..i], flipped, &k.token[i + 1..]))
        }
        "two_methods" => [authz(format!("Bearer {}", k.token)), pair].concat(),
        other => panic!("unknown credential form {other}"),
    }
}

fn substitute(v: &Value, keys: &HashMap<String, Key>) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$key_id") => {
            Value::String(keys[m["$key_id"].as_str().unwrap()].client_id.clone())
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), substitute(v, keys))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, keys)).collect()),
        other => other.clone(),
    }
}

/// One HTTP/1.1 request on its own connection; the response body is left to the caller.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(String, String)]) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    sender.send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap()).await.unwrap()
}

struct Got {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

async fn fetch(addr: SocketAddr, method: &str, path: &str, headers: &[(String, String)]) -> Got {
    let res = send(addr, method, path, headers).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Got { status, headers, body }
}

fn check(at: &str, got: &Got, expect: &Value, keys: &HashMap<String, Key>, saved: &HashMap<String, Got>) {
    let text = String::from_utf8_lossy(&got.body);
    assert_eq!(u64::from(got.status), expect["status"].as_u64().unwrap(), "{at}: body {text}");
    if let Some(body) = expect.get("body") {
        assert_eq!(text, body.as_str().unwrap(), "{at}");
    }
    if let Some(json) = expect.get("json") {
        assert_eq!(serde_json::from_slice::<Value>(&got.body).unwrap(), substitute(json, keys), "{at}");
    }
    let header = |name: &str| got.headers.get(name).map(|v| v.to_str().unwrap().to_string());
    for (name, value) in expect.get("headers").and_then(Value::as_object).into_iter().flatten() {
        assert_eq!(header(name).as_deref(), value.as_str(), "{at}: header {name}");
    }
    for (name, part) in expect.get("header_contains").and_then(Value::as_object).into_iter().flatten() {
        assert!(
            header(name).unwrap_or_default().contains(part.as_str().unwrap()),
            "{at}: header {name}: {:?}",
            header(name)
        );
    }
    if let Some(other) = expect.get("same_as") {
        let other = &saved[other.as_str().unwrap()];
        assert_eq!(got.body, other.body, "{at}: body differs");
        assert_eq!(got.headers.get("content-type"), other.headers.get("content-type"), "{at}: content-type differs");
    }
}

async fn run(addr: SocketAddr, scenario: &Value, keys: &HashMap<String, Key>) {
    let name = scenario["name"].as_str().unwrap();
    let mut saved: HashMap<String, Got> = HashMap::new();
    let mut stream: Option<Incoming> = None;
    let mut first = Vec::new();
    for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
        let at = format!("{name} / step {i} ({})", step["do"]);
        match step["do"].as_str().unwrap() {
            "request" => {
                let got = fetch(
                    addr,
                    step["method"].as_str().unwrap(),
                    step["path"].as_str().unwrap(),
                    &auth_headers(&step["auth"], keys),
                )
                .await;
                check(&at, &got, &step["expect"], keys, &saved);
                if let Some(label) = step.get("save_as") {
                    saved.insert(label.as_str().unwrap().to_string(), got);
                }
            }
            "open_stream" => {
                let res = send(addr, "GET", step["path"].as_str().unwrap(), &auth_headers(&step["auth"], keys)).await;
                assert_eq!(res.status(), 200, "{at}");
                let mut body = res.into_body();
                let frame = body.frame().await.unwrap().unwrap();
                first = frame.into_data().unwrap().to_vec();
                stream = Some(body);
            }
            "finish_stream" => {
                let rest = stream.take().unwrap().collect().await.unwrap().to_bytes();
                first.extend_from_slice(&rest);
                assert_eq!(String::from_utf8_lossy(&first), step["body"].as_str().unwrap(), "{at}");
            }
            "abort_stream" => {
                drop(stream.take().unwrap()); // unread: hyper closes the connection
            }
            "in_flight" => {
                let id = &keys[step["key"].as_str().unwrap()].client_id;
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let got = fetch(addr, "GET", &format!("/_inflight/{id}"), &[]).await;
                    let n = serde_json::from_slice::<Value>(&got.body).unwrap()["in_flight"].as_u64().unwrap();
                    if Some(n) == step["n"].as_u64() {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{at}: {n} leases in flight, expected {}", step["n"]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            other => panic!("{at}: unknown step kind {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_http_cases_on_a_real_server() {
    let cases = cases();
    let (addr, keys) = serve(&cases).await;
    let scenarios = cases["scenarios"].as_array().unwrap();
    for scenario in scenarios {
        run(addr, scenario, &keys).await;
    }
    println!("{} scenarios passed", scenarios.len());
}

#[tokio::test]
async fn an_account_parameter_the_route_lacks_fails_closed() {
    use axum::routing::get;
    let engine = Arc::new(Engine::default_policy().unwrap());
    let keycel = Keycel::new(engine, Arc::new(MemoryStore::new()));
    let app = axum::Router::new().route(
        "/v1/{account}/data",
        get(|| async { "reached" }).route_layer(keycel.require("api.read").account_param("account_id")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let got = fetch(addr, "GET", "/v1/acc_1/data", &[]).await;
    assert_eq!(got.status, 500);
    assert_ne!(got.body, b"reached");
}

#[tokio::test]
async fn the_extractor_without_the_layer_fails_closed() {
    use axum::routing::get;
    let app =
        axum::Router::new().route("/x", get(|auth: keycel_axum::Authorized| async move { auth.key_id().to_string() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    assert_eq!(fetch(addr, "GET", "/x", &[]).await.status, 500);
}
