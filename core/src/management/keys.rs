//! The `/keys` endpoints: request bodies to keyring calls, records to public views. Only
//! create and rotate answer a secret; every record goes out as [`crate::KeyView`] (no hash).

use super::answer::{self, code, ApiError};
use super::fields::{Body, CREATE_KEY, LIST_KEYS, ROTATE_KEY, UPDATE_KEY};
use super::{idempotency, page, Ctx, HttpResponse};
use crate::keyring::{Actor, Change, KeyringError, NewKey};
use crate::record::{AccountScope, KeyKind, KeyRecord};
use crate::store::{KeyFilter, StoreError};
use crate::time::Duration;
use crate::token::IssuedKey;
use crate::KeyView;
use serde::Serialize;

/// The create and rotate answer: the record, and its secret in every form, once.
#[derive(Serialize)]
struct Created {
    key: KeyView,
    secret: Option<SecretForms>,
}

/// A freshly issued secret (never stored, never shown again).
#[derive(Serialize)]
struct SecretForms {
    token: String,
    client_id: String,
    secret_key: String,
    client_id_header: String,
    secret_header: String,
}

fn created(ctx: &Ctx<'_>, status: u16, record: &KeyRecord, issued: IssuedKey) -> HttpResponse {
    let r = issued.reveal(&ctx.engine.authenticator().config().credentials);
    let secret = SecretForms {
        token: r.token.expose().to_string(),
        client_id: r.client_id.as_str().to_string(),
        secret_key: r.secret_key.expose().to_string(),
        client_id_header: r.client_id_header.clone(),
        secret_header: r.secret_header.clone(),
    };
    answer::json(status, &Created { key: record.public_view(), secret: Some(secret) })
}

/// `POST /keys`.
pub fn create(ctx: &Ctx<'_>) -> Result<HttpResponse, ApiError> {
    let body = Body::parse(&ctx.req.body, CREATE_KEY)?;
    let mut new = new_key(ctx, &body)?;
    let Some(idem) = ctx.header(idempotency::HEADER) else {
        let (record, issued) = ctx.keyring.create(&ctx.actor, new, ctx.now).map_err(|e| ctx.keyring_error(e))?;
        return Ok(created(ctx, 201, &record, issued));
    };
    let idem = idempotency::check(idem)?;
    let id = idempotency::client_id(ctx.keyring.format(), ctx.actor_id(), idem)?;
    let print = idempotency::fingerprint(&body.canonical());
    if let Some(replayed) = replay(ctx, id.as_str(), &print)? {
        return Ok(replayed);
    }
    new.metadata.insert(idempotency::METADATA_KEY.to_string(), print.clone());
    match ctx.keyring.create_with_id(&ctx.actor, new, Some(id.clone()), ctx.now) {
        Ok((record, issued)) => Ok(created(ctx, 201, &record, issued)),
        // Another request with the same Idempotency-Key won the insert: answer its key.
        Err(KeyringError::Store(StoreError::AlreadyExists(_))) => replay(ctx, id.as_str(), &print)?.ok_or_else(|| {
            ApiError::field(
                409,
                code::CONFLICT,
                idempotency::HEADER,
                "this Idempotency-Key created a key that has since been deleted",
            )
        }),
        Err(e) => Err(ctx.keyring_error(e)),
    }
}

/// The answer for a key this Idempotency-Key already created, if there is one.
fn replay(ctx: &Ctx<'_>, id: &str, print: &str) -> Result<Option<HttpResponse>, ApiError> {
    let stored = ctx.keyring.store().get_key(id).map_err(|e| ApiError::from_store(e, ctx.messages()))?;
    let Some(stored) = stored else { return Ok(None) };
    if stored.metadata.get(idempotency::METADATA_KEY).map(String::as_str) != Some(print) {
        return Err(ApiError::field(
            422,
            code::IDEMPOTENCY_MISMATCH,
            idempotency::HEADER,
            "this Idempotency-Key was used with another request body",
        ));
    }
    let record = ctx.keyring.get(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    let mut out = answer::json(200, &Created { key: record.public_view(), secret: None });
    out.headers.push((idempotency::REPLAYED.to_string(), "true".to_string()));
    Ok(Some(out))
}

fn new_key(ctx: &Ctx<'_>, body: &Body) -> Result<NewKey, ApiError> {
    let kind = match body.str("kind").unwrap_or("api") {
        "personal" => {
            let own = match &ctx.actor {
                Actor::Key { user: Some(u), .. } => Some(u.id.clone()),
                _ => None,
            };
            let user = body.str("user").map(str::to_string).or(own);
            let user = user.ok_or_else(|| ApiError::invalid("user", "a personal token needs its user"))?;
            KeyKind::Personal { user }
        }
        _ if body.has("user") => return Err(ApiError::invalid("user", "only personal tokens have a user")),
        _ => KeyKind::Api,
    };
    let expires_in = match (body.duration("expires_in")?, body.time("expires_at")?) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("expires_at", "give expires_in or expires_at, not both")),
        (Some(d), None) => Some(d),
        (None, Some(at)) if at > ctx.now => Some(Duration::from_secs(at.unix() - ctx.now.unix())),
        (None, Some(_)) => return Err(ApiError::invalid("expires_at", "must be in the future")),
        (None, None) => None,
    };
    let metadata = body.string_map("metadata").unwrap_or_default();
    if let Some(k) = metadata.keys().find(|k| k.starts_with("keycel.")) {
        return Err(ApiError::invalid("metadata", format!("{k:?}: keys starting with keycel. are reserved")));
    }
    Ok(NewKey {
        name: body.str("name").unwrap_or_default().to_string(),
        description: body.str("description").unwrap_or_default().to_string(),
        kind,
        role: body.str("role").unwrap_or_default().to_string(),
        scopes: body.strings("scopes").unwrap_or_default(),
        accounts: body.accounts("accounts")?.unwrap_or(AccountScope::All),
        expires_in,
        max_concurrent: body.u32("max_concurrent"),
        metadata,
        active: body.bool("active").unwrap_or(true),
        rate_limit: body.rate_limit("rate_limit")?,
        credits: body.credits("credits", ctx.now)?,
    })
}

/// A page of keys.
#[derive(Serialize)]
struct KeyPage {
    items: Vec<KeyView>,
    next_cursor: Option<String>,
}

/// `GET /keys`.
pub fn list(ctx: &Ctx<'_>, query: &str) -> Result<HttpResponse, ApiError> {
    let q = Body::query(query, LIST_KEYS)?;
    let filter = KeyFilter {
        user: q.str("user").map(str::to_string),
        kind: q.str("kind").map(str::to_string),
        active: q.bool("active"),
    };
    let after = page::after(q.str("cursor"))?;
    let keys = ctx.keyring.list(&ctx.actor, &filter, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    let role = q.str("role");
    let account = q.str("account");
    let matching = keys
        .into_iter()
        .filter(|k| role.is_none_or(|r| k.role == r))
        .filter(|k| account.is_none_or(|a| k.accounts.contains(a)))
        .filter(|k| after.as_deref().is_none_or(|a| k.id.as_str() > a));
    let (items, next_cursor) = page::take(matching, q.u32("limit"), |k| k.id.as_str().to_string());
    Ok(answer::json(200, &KeyPage { items: items.iter().map(KeyRecord::public_view).collect(), next_cursor }))
}

/// `GET /keys/{id}`.
pub fn get(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let r = ctx.keyring.get(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::json(200, &r.public_view()))
}

/// `PATCH /keys/{id}`: every field given, in one write.
pub fn update(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let body = Body::parse(&ctx.req.body, UPDATE_KEY)?;
    let changes = changes(&body, ctx.now)?;
    let r = ctx.keyring.update_all(&ctx.actor, id, changes, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::json(200, &r.public_view()))
}

/// The keyring changes a `PATCH` body asks for (one arm per field of `UPDATE_KEY`).
fn changes(body: &Body, now: crate::time::Timestamp) -> Result<Vec<Change>, ApiError> {
    let mut out = Vec::new();
    if let Some(v) = body.str("name") {
        out.push(Change::Rename(v.to_string()));
    }
    if let Some(v) = body.str("description") {
        out.push(Change::Describe(v.to_string()));
    }
    if let Some(v) = body.str("role") {
        out.push(Change::SetRole(v.to_string()));
    }
    if let Some(v) = body.strings("scopes") {
        out.push(Change::SetScopes(v));
    }
    if let Some(v) = body.accounts("accounts")? {
        out.push(Change::SetAccounts(v));
    }
    if body.has("expires_at") {
        out.push(Change::SetExpiry(body.time("expires_at")?));
    }
    if body.has("max_concurrent") {
        out.push(Change::SetMaxConcurrent(body.u32("max_concurrent")));
    }
    if let Some(v) = body.bool("active") {
        out.push(Change::SetActive(v));
    }
    if body.has("rate_limit") {
        out.push(Change::SetRateLimit(body.rate_limit("rate_limit")?));
    }
    if body.has("credits") {
        out.push(Change::SetCredits(body.credits("credits", now)?));
    }
    Ok(out)
}

/// `POST /keys/{id}/rotate`.
pub fn rotate(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let body = Body::parse(&ctx.req.body, ROTATE_KEY)?;
    let grace = body.duration("grace")?;
    let (record, issued) = ctx.keyring.rotate(&ctx.actor, id, grace, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(created(ctx, 200, &record, issued))
}

/// `DELETE /keys/{id}`.
pub fn delete(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    ctx.keyring.delete(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::no_content())
}

/// `GET /keys/{id}/explain`: readable keys only, then the engine's effective authority.
pub fn explain(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let r = ctx.keyring.get(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    let owner = match r.kind.user() {
        Some(u) => ctx.keyring.get_user(u).map_err(|e| ctx.keyring_error(e))?,
        None => None,
    };
    let a = ctx
        .engine
        .explain(&r, owner.as_ref(), ctx.now)
        .map_err(|e| ApiError::new(500, code::INTERNAL, format!("cannot explain the key: {}", e.message)))?;
    Ok(answer::json(200, &a))
}
