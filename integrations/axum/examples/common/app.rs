//! The example API (the HTTP contract of tests/http_cases/), shared by the example server
//! and the tests, which run it on a real tokio server on 127.0.0.1.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keycel_axum::{Authorized, Keycel};
use tower_http::catch_panic::CatchPanicLayer;

/// The example router: `keycel` guards each route with its action.
pub fn app(keycel: Keycel) -> Router {
    let read = || keycel.require("api.read").account_param("account_id");
    let k404 = keycel.clone();
    let kflight = keycel.clone();
    Router::new()
        .route("/v1/accounts/{account_id}/data", get(data).route_layer(read()))
        .route("/v1/accounts/{account_id}/missing", get(move || async move { k404.not_found() }).route_layer(read()))
        .route("/v1/accounts/{account_id}/stream", get(stream).route_layer(read()))
        .route("/v1/accounts/{account_id}/boom", get(boom).route_layer(read()))
        .route("/admin/accounts", post(create_account).route_layer(keycel.require("admin.account.create")))
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route(
            "/_inflight/{key_id}",
            get(move |Path(key_id): Path<String>| async move {
                Json(serde_json::json!({ "in_flight": kflight.engine().limiter().in_flight(&key_id) }))
            }),
        )
        // A panicking handler answers 500 (and its lease is released as the future unwinds).
        .layer(CatchPanicLayer::new())
}

async fn data(Path(account_id): Path<String>, auth: Authorized) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "account": account_id, "key_id": auth.key_id() }))
}

async fn create_account(auth: Authorized) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "created": true, "key_id": auth.key_id() }))
}

async fn stream(Query(q): Query<HashMap<String, String>>) -> Response {
    let chunks: u64 = q.get("chunks").and_then(|v| v.parse().ok()).unwrap_or(3).min(100);
    let ms: u64 = q.get("ms").and_then(|v| v.parse().ok()).unwrap_or(0).min(5000);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                return; // the client went away
            }
        }
    });
    ([("content-type", "text/plain")], Body::new(Chunks(rx))).into_response()
}

/// A streaming body: the chunks a producer task sends.
struct Chunks(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[allow(clippy::panic)]
async fn boom() -> &'static str {
    panic!("the handler failed");
}
