//! keycel for axum and any tower stack: [`KeycelLayer`] authorizes each request through the
//! engine and [`Authorized`] hands the allowed decision to handlers.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{routing::get, Router};
//! # use keycel_axum::{Authorized, Keycel};
//! # fn app(engine: Arc<keycel::engine::Engine>, store: Arc<keycel::store::MemoryStore>) -> Router {
//! let keycel = Keycel::new(engine, store);
//! Router::new()
//!     .route("/v1/accounts/{account_id}/data", get(|auth: Authorized| async move { auth.key_id().to_string() }))
//!     .route_layer(keycel.require("api.read").account_param("account_id"))
//! # }
//! ```
//!
//! The engine decides: a denial is answered with the decision's status, headers and JSON
//! body. An allowed request's lease is held until its response body has sent its last frame
//! (or the body is dropped: client gone, handler panicked). Configuration mistakes fail
//! closed with a 500: an account parameter the route lacks, an [`Authorized`] extractor on a
//! route without the layer.

mod management;

pub use management::management_router;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Request, Response, StatusCode};
use http_body::Frame;
use keycel::admission::Lease;
use keycel::decision::Decision;
use keycel::engine::{Authorization, Engine, Lookup};
use keycel::record::KeyRecord;

/// The engine and the record lookup (a `Store`, or your own [`Lookup`]), shared by layers.
#[derive(Clone)]
pub struct Keycel {
    engine: Arc<Engine>,
    lookup: Arc<dyn Lookup + Send + Sync>,
}

impl std::fmt::Debug for Keycel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keycel").finish_non_exhaustive()
    }
}

impl Keycel {
    /// An engine and where its key records come from.
    pub fn new(engine: Arc<Engine>, lookup: Arc<dyn Lookup + Send + Sync>) -> Self {
        Keycel { engine, lookup }
    }

    /// The engine (e.g. for `not_found_body`, `admission().in_flight`).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// A layer authorizing `action` on every request it wraps.
    pub fn require(&self, action: &str) -> KeycelLayer {
        KeycelLayer { keycel: self.clone(), action: Arc::from(action), account_param: None }
    }

    /// The answer to a missing resource, byte-identical to an out-of-scope account's 404.
    pub fn not_found(&self) -> Response<Body> {
        let mut res = Response::new(Body::from(Decision::not_found_body(self.engine.messages())));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

/// A tower layer authorizing one action (see [`Keycel::require`]).
#[derive(Clone, Debug)]
pub struct KeycelLayer {
    keycel: Keycel,
    action: Arc<str>,
    account_param: Option<Arc<str>>,
}

impl KeycelLayer {
    /// Takes the account from this path parameter (use with `Router::route_layer`, where the
    /// route's parameters are known). A route without it answers 500: fail closed.
    pub fn account_param(mut self, name: &str) -> Self {
        self.account_param = Some(Arc::from(name));
        self
    }
}

impl<S> tower_layer::Layer<S> for KeycelLayer {
    type Service = KeycelService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        KeycelService { layer: self.clone(), inner }
    }
}

/// The service of [`KeycelLayer`].
#[derive(Clone, Debug)]
pub struct KeycelService<S> {
    layer: KeycelLayer,
    inner: S,
}

/// The allowed decision, for handlers (an extractor; also in the request's extensions).
#[derive(Clone, Debug)]
pub struct Authorized(Arc<Allowed>);

#[derive(Debug)]
struct Allowed {
    decision: Decision,
    key: Option<Arc<KeyRecord>>,
}

impl Authorized {
    /// The decision (`matched_rules`, `reason` for audit logs).
    pub fn decision(&self) -> &Decision {
        &self.0.decision
    }
    /// The authenticated key's id.
    pub fn key_id(&self) -> &str {
        self.0.decision.key_id.as_deref().unwrap_or_default()
    }
    /// The authenticated key's record.
    pub fn key(&self) -> Option<&KeyRecord> {
        self.0.key.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authorized {
    type Rejection = (StatusCode, &'static str);
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Authorized>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "keycel: the Authorized extractor needs the keycel layer on this route",
        ))
    }
}

/// The HTTP answer to a denied decision: its status, headers and body, nothing else.
pub fn decision_response(decision: &Decision) -> Response<Body> {
    let mut res = Response::new(Body::from(decision.body_json()));
    *res.status_mut() = StatusCode::from_u16(decision.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &decision.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            _ => return misconfigured("keycel: a decision header is not valid HTTP"),
        }
    }
    res
}

fn misconfigured(message: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(message));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

/// Runs an authorization off the async worker threads (a verified-secret cache miss costs an
/// argon2 computation). The one place to swap in another offload.
async fn offload(job: impl FnOnce() -> Authorization + Send + 'static) -> Option<Authorization> {
    tokio::task::spawn_blocking(job).await.ok()
}

impl KeycelLayer {
    async fn authorize(&self, parts: &mut Parts) -> Result<(Authorized, Option<Lease>), Response<Body>> {
        let mut request =
            keycel::engine::Request::new(&self.action).method(parts.method.as_str()).path(parts.uri.path());
        if let Some(name) = &self.account_param {
            let params = RawPathParams::from_request_parts(parts, &()).await.ok();
            let account =
                params.as_ref().and_then(|p| p.iter().find(|(k, _)| *k == &**name).map(|(_, v)| v.to_string()));
            match account {
                Some(a) => request = request.account(&a),
                None => return Err(misconfigured("keycel: the route lacks the account path parameter")),
            }
        }
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            request = request.ip(&addr.ip().to_string());
        }
        // Header values that are not UTF-8 go in lossily: they can only fail authentication.
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let keycel = self.keycel.clone();
        let auth =
            offload(move || keycel.engine.authorize(headers, &request, keycel.lookup.as_ref(), keycel::clock::now()))
                .await
                .ok_or_else(|| misconfigured("keycel: the authorization task failed"))?;
        if !auth.decision.allowed {
            return Err(decision_response(&auth.decision));
        }
        Ok((Authorized(Arc::new(Allowed { decision: auth.decision, key: auth.key })), auth.lease))
    }
}

impl<S> tower_service::Service<Request<Body>> for KeycelService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The ready inner service goes with this call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (authorized, lease) = match layer.authorize(&mut parts).await {
                Ok(a) => a,
                Err(denied) => return Ok(denied),
            };
            parts.extensions.insert(authorized);
            // A panicking handler unwinds through here and drops the lease with this future.
            let res = inner.call(Request::from_parts(parts, body)).await?;
            Ok(res.map(|body| Body::new(LeaseBody { inner: body, lease })))
        })
    }
}

/// A response body that holds the request's lease until its last frame (or until dropped).
struct LeaseBody {
    inner: Body,
    lease: Option<Lease>,
}

impl http_body::Body for LeaseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
            this.lease = None; // released: the body has ended
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
