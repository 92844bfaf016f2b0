//! The management HTTP API ([`keycel::management`]) as an axum router: converts the request,
//! runs core's `handle` on tokio's blocking pool (argon2 and store I/O never on the runtime's
//! workers), converts the answer. Every decision is core's.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn app(engine: Arc<keycel::engine::Engine>, keyring: keycel::keyring::Keyring) -> axum::Router {
//! axum::Router::new().nest("/manage", keycel_axum::management_router(engine, keyring))
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::Router;
use keycel::engine::Engine;
use keycel::keyring::Keyring;
use keycel::management::answer::{code, ApiError};
use keycel::management::fields::MAX_BODY_BYTES;
use keycel::management::{handle, HttpRequest, HttpResponse};

/// Every path below where it is nested goes to [`keycel::management::handle`].
pub fn management_router(engine: Arc<Engine>, keyring: Keyring) -> Router {
    let shared = Arc::new((engine, keyring));
    Router::new().fallback(move |req: Request| {
        let shared = shared.clone();
        async move { serve(shared, req).await }
    })
}

async fn serve(shared: Arc<(Arc<Engine>, Keyring)>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            let e = ApiError::new(413, code::BODY_TOO_LARGE, format!("body larger than {MAX_BODY_BYTES} bytes"));
            return convert(e.into_response());
        }
    };
    // Nested routers see the path below their prefix.
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let client_ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let req = HttpRequest { method: parts.method.as_str().to_string(), path, headers, body, client_ip };
    let answer = tokio::task::spawn_blocking(move || {
        let (engine, keyring) = &*shared;
        handle(engine, keyring, &req, keycel::clock::now())
    })
    .await;
    match answer {
        Ok(a) => convert(a),
        Err(_) => convert(ApiError::new(500, code::INTERNAL, "internal error").into_response()),
    }
}

fn convert(a: HttpResponse) -> Response<Body> {
    let mut out = Response::new(Body::from(a.body));
    *out.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in a.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            out.headers_mut().append(k, v);
        }
    }
    out
}
