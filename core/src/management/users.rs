//! The `/users` endpoints. A user record holds no secret; a user beyond the acting key's
//! reach answers like a missing one.

use super::answer::{self, ApiError};
use super::fields::{Body, LIST_USERS, PUT_USER};
use super::{page, Ctx, HttpResponse};
use crate::record::{AccountScope, UserRecord};
use serde::Serialize;

/// A page of users.
#[derive(Serialize)]
struct UserPage {
    items: Vec<UserRecord>,
    next_cursor: Option<String>,
}

/// What `DELETE /users/{id}` removed.
#[derive(Serialize)]
struct Removed<'a> {
    user: &'a str,
    removed_keys: usize,
}

/// `PUT /users/{id}`.
pub fn put(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let body = Body::parse(&ctx.req.body, PUT_USER)?;
    let roles = body.strings("roles").unwrap_or_default();
    let accounts = body.accounts("accounts")?.unwrap_or(AccountScope::All);
    let user = UserRecord::new(id, roles, accounts).map_err(|e| ApiError::invalid(&e.field, e.message))?;
    let saved = ctx.keyring.put_user(&ctx.actor, user, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::json(200, &saved))
}

/// `GET /users/{id}`.
pub fn get(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    let u = ctx.keyring.user_as(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::json(200, &u))
}

/// `GET /users`.
pub fn list(ctx: &Ctx<'_>, query: &str) -> Result<HttpResponse, ApiError> {
    let q = Body::query(query, LIST_USERS)?;
    let after = page::after(q.str("cursor"))?;
    let users = ctx.keyring.users_as(&ctx.actor, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    let matching = users.into_iter().filter(|u| after.as_deref().is_none_or(|a| u.id.as_str() > a));
    let (items, next_cursor) = page::take(matching, q.u32("limit"), |u| u.id.clone());
    Ok(answer::json(200, &UserPage { items, next_cursor }))
}

/// `DELETE /users/{id}`: the user and every personal token of theirs.
pub fn remove(ctx: &Ctx<'_>, id: &str) -> Result<HttpResponse, ApiError> {
    // Out of reach answers 404 here exactly as `GET /users/{id}` does.
    ctx.keyring.user_as(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    let n = ctx.keyring.remove_user(&ctx.actor, id, ctx.now).map_err(|e| ctx.keyring_error(e))?;
    Ok(answer::json(200, &Removed { user: id, removed_keys: n }))
}
