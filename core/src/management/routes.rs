//! The route table: every endpoint once, with what the router, the parsers and the OpenAPI
//! document need (method, path template, body and query fields, answers).

use super::fields::{self, Field};

/// What an endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /keys`.
    CreateKey,
    /// `GET /keys`.
    ListKeys,
    /// `GET /keys/{id}`.
    GetKey,
    /// `PATCH /keys/{id}`.
    UpdateKey,
    /// `POST /keys/{id}/rotate`.
    RotateKey,
    /// `DELETE /keys/{id}`.
    DeleteKey,
    /// `GET /keys/{id}/explain`.
    ExplainKey,
    /// `PUT /users/{id}`.
    PutUser,
    /// `GET /users/{id}`.
    GetUser,
    /// `GET /users`.
    ListUsers,
    /// `DELETE /users/{id}`.
    DeleteUser,
    /// `GET /openapi.json` (no authentication: the document holds no data).
    OpenApi,
}

/// One endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template relative to the mount point; `{id}` is the one parameter.
    pub path: &'static str,
    /// What it does.
    pub op: Op,
    /// OpenAPI operationId.
    pub operation_id: &'static str,
    /// One line for the docs.
    pub summary: &'static str,
    /// The JSON body it takes, if any.
    pub body: Option<&'static [Field]>,
    /// Query parameters.
    pub query: &'static [Field],
    /// Success status.
    pub ok: u16,
    /// Schema of the success body (`None`: no body).
    pub answer: Option<&'static str>,
    /// Error statuses it may answer besides 401/429/503 (every authenticated endpoint has those).
    pub errors: &'static [u16],
    /// Needs the acting key's credentials.
    pub authenticated: bool,
}

const fn route(method: &'static str, path: &'static str, op: Op, operation_id: &'static str) -> Route {
    Route {
        method,
        path,
        op,
        operation_id,
        summary: "",
        body: None,
        query: &[],
        ok: 200,
        answer: None,
        errors: &[],
        authenticated: true,
    }
}

/// Every endpoint, in documentation order.
pub const ROUTES: &[Route] = &[
    Route {
        summary: "Create an API token or a personal token; the answer carries its secret, once. \
                  `Idempotency-Key` makes a retry answer the same key (without the secret).",
        body: Some(fields::CREATE_KEY),
        ok: 201,
        answer: Some("CreatedKey"),
        errors: &[400, 403, 409, 413, 422],
        ..route("POST", "/keys", Op::CreateKey, "createKey")
    },
    Route {
        summary: "List the keys the acting key may read, by id, a page at a time.",
        query: fields::LIST_KEYS,
        answer: Some("KeyPage"),
        errors: &[400, 403],
        ..route("GET", "/keys", Op::ListKeys, "listKeys")
    },
    Route {
        summary: "One key (404 when missing or outside the acting key's reach).",
        answer: Some("Key"),
        errors: &[403, 404],
        ..route("GET", "/keys/{id}", Op::GetKey, "getKey")
    },
    Route {
        summary: "Change a key's settings, all or nothing.",
        body: Some(fields::UPDATE_KEY),
        answer: Some("Key"),
        errors: &[400, 403, 404, 409, 413, 422],
        ..route("PATCH", "/keys/{id}", Op::UpdateKey, "updateKey")
    },
    Route {
        summary: "New secret (answered once); the old one dies at once or after `grace`.",
        body: Some(fields::ROTATE_KEY),
        answer: Some("CreatedKey"),
        errors: &[400, 403, 404, 409, 413, 422],
        ..route("POST", "/keys/{id}/rotate", Op::RotateKey, "rotateKey")
    },
    Route {
        summary: "Delete a key for good (its id is never reused).",
        ok: 204,
        errors: &[403, 404, 409],
        ..route("DELETE", "/keys/{id}", Op::DeleteKey, "deleteKey")
    },
    Route {
        summary: "What the key can actually do now: effective scopes, accounts, deadline, limits.",
        answer: Some("Authority"),
        errors: &[403, 404],
        ..route("GET", "/keys/{id}/explain", Op::ExplainKey, "explainKey")
    },
    Route {
        summary: "List the users the acting key may see (its own, and those it may manage).",
        query: fields::LIST_USERS,
        answer: Some("UserPage"),
        errors: &[400],
        ..route("GET", "/users", Op::ListUsers, "listUsers")
    },
    Route {
        summary: "Create or replace a user (their roles and accounts cap their personal tokens).",
        body: Some(fields::PUT_USER),
        answer: Some("User"),
        errors: &[400, 403, 409, 413, 422],
        ..route("PUT", "/users/{id}", Op::PutUser, "putUser")
    },
    Route {
        summary: "One user (404 when missing or outside the acting key's reach).",
        answer: Some("User"),
        errors: &[403, 404],
        ..route("GET", "/users/{id}", Op::GetUser, "getUser")
    },
    Route {
        summary: "Remove a user and their personal tokens.",
        answer: Some("RemovedUser"),
        errors: &[403, 404],
        ..route("DELETE", "/users/{id}", Op::DeleteUser, "deleteUser")
    },
    Route { summary: "This document.", authenticated: false, ..route("GET", "/openapi.json", Op::OpenApi, "openapi") },
];

/// Where a request goes.
#[derive(Debug)]
pub enum Matched {
    /// This route, with its `{id}` (percent-decoded) when it has one.
    Route(&'static Route, Option<String>),
    /// The path exists with other methods (405 with `Allow`).
    Method(Vec<&'static str>),
    /// No such path (404).
    None,
}

/// Finds the route for `method` and `path` (without the query).
pub fn find(method: &str, path: &str) -> Matched {
    let mut allowed = Vec::new();
    for r in ROUTES {
        if let Some(id) = match_path(r.path, path) {
            if r.method.eq_ignore_ascii_case(method) {
                return Matched::Route(r, id);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        Matched::None
    } else {
        Matched::Method(allowed)
    }
}

/// `Some(id)` (or `Some(None)` for a template without `{id}`) when `path` fits `template`.
fn match_path(template: &str, path: &str) -> Option<Option<String>> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut id = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(seg)) if !seg.is_empty() => id = Some(fields::percent_decode(seg)?),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn routes_match_with_ids_and_methods() {
        match find("GET", "/keys/kc_abc") {
            Matched::Route(r, id) => assert_eq!((r.op, id.as_deref()), (Op::GetKey, Some("kc_abc"))),
            other => panic!("{other:?}"),
        }
        match find("post", "/keys/a%20b/rotate") {
            Matched::Route(r, id) => assert_eq!((r.op, id.as_deref()), (Op::RotateKey, Some("a b"))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("PUT", "/keys"), Matched::Method(m) if m == vec!["POST", "GET"]));
        for missing in ["/keys/", "/keys/x/y", "/nope", "", "/keys//rotate"] {
            assert!(matches!(find("GET", missing), Matched::None), "{missing}");
        }
    }
}
