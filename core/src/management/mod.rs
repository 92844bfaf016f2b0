//! The management HTTP API (issue 15), defined once: a framework-neutral [`handle`] that every
//! host mounts (Rust servers call it, the Python router/ASGI app and the JS fetch handler
//! convert to and from it), and the OpenAPI 3.1 document generated from the same route table.
//!
//! `handle` authenticates the acting key with the engine, from the same credential forms as
//! the data plane (Bearer, Basic, header pair; failure budgets and the argon2 gate apply), then
//! runs the keyring operation as `Actor::Key`: the keyring's visibility and delegation rules
//! decide, unchanged. Everything that decides (routing, validation, authorization,
//! idempotency, answer shapes) lives here; hosts only convert values.
//!
//! Answers: records only in their public form (never a hash); only create and rotate carry a
//! secret, once; one error shape `{"error": {"code", "message", "field"?}}` with stable
//! codes ([`answer::code`]); a key or user that is missing or outside the acting key's reach
//! answers the same 404 bytes.

pub mod answer;
pub mod fields;
pub mod idempotency;
mod keys;
pub mod openapi;
mod page;
pub mod routes;
mod users;

use crate::engine::{Engine, Request};
use crate::keyring::{actions, Actor, Keyring, KeyringError};
use crate::time::Timestamp;
use answer::ApiError;
use routes::{Matched, Op};

pub use openapi::openapi;

/// An HTTP request, as the host received it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query relative to the mount point, e.g. `/keys?limit=10`.
    pub path: String,
    /// Header names and values (names case-insensitive).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The client address failed authentications are charged to.
    pub client_ip: Option<String>,
}

impl HttpRequest {
    /// A request without headers or body.
    pub fn new(method: &str, path: &str) -> Self {
        HttpRequest { method: method.to_string(), path: path.to_string(), ..Self::default() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = body.to_string().into_bytes();
        self
    }
}

/// An HTTP answer for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (`content-type` always, `cache-control: no-store`, and e.g. `Retry-After`).
    pub headers: Vec<(String, String)>,
    /// The body (JSON, or empty for 204).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One request being handled: who acts, on what, when.
pub(crate) struct Ctx<'a> {
    engine: &'a Engine,
    keyring: &'a Keyring,
    req: &'a HttpRequest,
    actor: Actor,
    now: Timestamp,
}

impl Ctx<'_> {
    fn messages(&self) -> &crate::decision::Messages {
        self.engine.messages()
    }

    fn keyring_error(&self, e: KeyringError) -> ApiError {
        ApiError::from_keyring(e, self.messages())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn actor_id(&self) -> &str {
        match &self.actor {
            Actor::Key { key, .. } => key.id.as_str(),
            Actor::Operator(name) => name,
        }
    }
}

/// The whole API: authenticates the actor with `engine` (credentials in the headers, looked up
/// in `keyring.store()`), then runs the keyring operation as that actor. Never panics; every
/// error is one JSON shape.
pub fn handle(engine: &Engine, keyring: &Keyring, req: &HttpRequest, now: Timestamp) -> HttpResponse {
    match dispatch(engine, keyring, req, now) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn dispatch(engine: &Engine, keyring: &Keyring, req: &HttpRequest, now: Timestamp) -> Result<HttpResponse, ApiError> {
    let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    let (route, id) = match routes::find(&req.method, path) {
        Matched::Route(r, id) => (r, id),
        Matched::Method(allowed) => {
            let mut e = ApiError::new(405, answer::code::METHOD_NOT_ALLOWED, "method not allowed");
            e.headers.push(("Allow".to_string(), allowed.join(", ")));
            return Err(e);
        }
        Matched::None => return Err(ApiError::not_found(engine.messages())),
    };
    if req.body.len() > fields::MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            answer::code::BODY_TOO_LARGE,
            format!("body larger than {} bytes", fields::MAX_BODY_BYTES),
        ));
    }
    if route.op == Op::OpenApi {
        let mut r = answer::json(200, &serde_json::Value::Null);
        r.body = openapi().into_bytes();
        return Ok(r);
    }
    let actor = authenticate(engine, keyring, req, path, now)?;
    let ctx = Ctx { engine, keyring, req, actor, now };
    if route.query.is_empty() && !query.is_empty() {
        fields::Body::query(query, route.query)?;
    }
    let id = id.unwrap_or_default();
    match route.op {
        Op::CreateKey => keys::create(&ctx),
        Op::ListKeys => keys::list(&ctx, query),
        Op::GetKey => keys::get(&ctx, &id),
        Op::UpdateKey => keys::update(&ctx, &id),
        Op::RotateKey => keys::rotate(&ctx, &id),
        Op::DeleteKey => keys::delete(&ctx, &id),
        Op::ExplainKey => keys::explain(&ctx, &id),
        Op::PutUser => users::put(&ctx, &id),
        Op::GetUser => users::get(&ctx, &id),
        Op::ListUsers => users::list(&ctx, query),
        Op::DeleteUser => users::remove(&ctx, &id),
        Op::OpenApi => Err(ApiError::not_found(engine.messages())),
    }
}

/// The acting key, authenticated exactly as on the data plane (credential forms, failure
/// budgets, argon2 gate, verified-secret cache). The policy decision of this first check is
/// not used: the keyring asks the guard about the actual action and target.
fn authenticate(
    engine: &Engine,
    keyring: &Keyring,
    req: &HttpRequest,
    path: &str,
    now: Timestamp,
) -> Result<Actor, ApiError> {
    let mut request = Request::new(actions::READ).method(&req.method).path(path);
    if let Some(ip) = &req.client_ip {
        request = request.client_ip(ip);
    }
    let headers = req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let a = engine.authorize(headers, &request, keyring.store(), now);
    match (a.authenticated, a.key) {
        (Some(_), Some(key)) => Ok(Actor::Key { key: Box::new((*key).clone()), user: a.user.map(|u| (*u).clone()) }),
        _ => Err(ApiError::from_decision(&a.decision, engine.messages())),
    }
}
