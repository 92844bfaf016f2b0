//! The OpenAPI 3.1 document, generated from the route table ([`super::routes::ROUTES`]) and
//! the request field lists ([`super::fields`]); the answer schemas sit here, and a test holds
//! them to the structs they describe. Checked in as `docs/management.openapi.json`.

use super::answer::ALL_CODES;
use super::fields::{Field, Ty};
use super::idempotency;
use super::routes::{Route, ROUTES};
use crate::credentials::CredentialConfig;
use serde_json::{json, Map, Value};

/// The document as pretty JSON with a final newline (sorted keys: stable bytes).
pub fn openapi() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

/// The document as a JSON value.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        if let Value::Object(m) = item {
            m.insert(r.method.to_ascii_lowercase(), operation(r));
        }
    }
    let creds = CredentialConfig::default();
    let mut schemas = answers();
    for r in ROUTES {
        if let Some(body) = r.body {
            schemas.insert(request_name(r), object(body));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "keycel management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Key and user management, authenticated by the acting key (Bearer, Basic or the \
                            client-id/secret header pair) and decided by the same policy and delegation rules \
                            as every keyring change. Paths are relative to where the host mounts the API. \
                            No answer carries a hash; only create and rotate carry a secret, once. A key or \
                            user that is missing or outside the acting key's reach answers the same 404."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "`Bearer {token}`" },
                "basic": { "type": "http", "scheme": "basic",
                           "description": "The token as user and an empty password, or client id and secret key" },
                "clientId": { "type": "apiKey", "in": "header", "name": creds.client_id_header,
                              "description": "With `secretKey` (header names as the policy configures them)" },
                "secretKey": { "type": "apiKey", "in": "header", "name": creds.secret_header }
            }
        }
    })
}

fn request_name(r: &Route) -> String {
    let mut name = String::new();
    let mut up = true;
    for c in r.operation_id.chars() {
        name.extend(if up { c.to_uppercase().collect::<Vec<_>>() } else { vec![c] });
        up = false;
    }
    name + "Request"
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn operation(r: &Route) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(r.operation_id));
    op.insert("summary".into(), json!(r.summary));
    let mut params: Vec<Value> = Vec::new();
    if r.path.contains("{id}") {
        params.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    for q in r.query {
        params.push(json!({ "name": q.name, "in": "query", "required": q.required, "description": q.doc,
                            "schema": field_schema(q) }));
    }
    if r.operation_id == "createKey" {
        params.push(json!({ "name": idempotency::HEADER, "in": "header", "required": false,
            "description": "A retry with the same key and body answers the key already created (200, without \
                            its secret, `Idempotent-Replayed: true`); another body answers 422.",
            "schema": { "type": "string", "minLength": 1, "maxLength": idempotency::MAX_LEN } }));
    }
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if r.body.is_some() {
        op.insert(
            "requestBody".into(),
            json!({ "required": r.operation_id != "rotateKey", "content": json_content(reference(&request_name(r))) }),
        );
    }
    let mut responses = Map::new();
    let ok = match r.answer {
        Some(name) => json!({ "description": "OK", "content": json_content(reference(name)) }),
        None if r.operation_id == "openapi" => {
            json!({ "description": "This document", "content": json_content(json!({ "type": "object" })) })
        }
        None => json!({ "description": "Done, no body" }),
    };
    responses.insert(r.ok.to_string(), ok);
    if r.operation_id == "createKey" {
        responses.insert(
            "200".into(),
            json!({ "description": "Replayed: the key this Idempotency-Key created, without its secret",
                    "content": json_content(reference("CreatedKey")) }),
        );
    }
    let mut errors: Vec<u16> = r.errors.to_vec();
    if r.authenticated {
        errors.extend([401, 429, 503]);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        responses.insert(
            status.to_string(),
            json!({ "description": error_text(status), "content": json_content(reference("Error")) }),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    if !r.authenticated {
        op.insert("security".into(), json!([]));
    } else {
        op.insert("security".into(), json!([{ "bearer": [] }, { "basic": [] }, { "clientId": [], "secretKey": [] }]));
    }
    Value::Object(op)
}

fn error_text(status: u16) -> &'static str {
    match status {
        400 => "Malformed JSON, query parameter or header (`field` names it)",
        401 => "Missing or invalid credentials",
        403 => "The policy or the delegation rule refuses (`insufficient_scope`, `exceeds_actor`, ...)",
        404 => "Missing, or outside the acting key's reach (the same bytes)",
        409 => "Changed concurrently, or the id is taken",
        413 => "Body too large",
        422 => "Unknown field, invalid value (`field` names it), or `idempotency_mismatch`",
        429 => "Failed-authentication budget used up (`Retry-After`)",
        503 => "The store or the argon2 gate is unavailable (`Retry-After`)",
        _ => "Error",
    }
}

/// The schema of one field's value.
pub fn field_schema(f: &Field) -> Value {
    let s = match f.ty {
        Ty::Str => json!({ "type": "string" }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::Strings => json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }),
        Ty::Accounts => reference("Accounts"),
        Ty::Time => json!({ "type": "string", "format": "date-time" }),
        Ty::Duration => reference("Duration"),
        Ty::OneOf(options) => json!({ "type": "string", "enum": options }),
        Ty::StringMap => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        Ty::RateLimit => reference("RateLimit"),
        Ty::Credits => reference("CreditsRequest"),
    };
    if f.nullable {
        json!({ "anyOf": [s, { "type": "null" }] })
    } else {
        s
    }
}

/// A strict request object from its field list.
fn object(fields: &[Field]) -> Value {
    let mut props = Map::new();
    for f in fields {
        let mut s = field_schema(f);
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), json!(f.doc));
        }
        props.insert(f.name.to_string(), s);
    }
    let required: Vec<&str> = fields.iter().filter(|f| f.required).map(|f| f.name).collect();
    json!({ "type": "object", "additionalProperties": false, "properties": props, "required": required })
}

fn nullable(s: Value) -> Value {
    json!({ "anyOf": [s, { "type": "null" }] })
}

/// The answer schemas (and shared value schemas).
fn answers() -> Map<String, Value> {
    let string = || json!({ "type": "string" });
    let time = || json!({ "type": "string", "format": "date-time" });
    let strings = || json!({ "type": "array", "items": { "type": "string" } });
    let key_props = json!({
        "schema": { "type": "integer" }, "id": string(), "name": string(), "description": string(),
        "kind": { "type": "string", "enum": ["api", "personal"] }, "user": nullable(string()),
        "role": string(), "scopes": strings(), "accounts": reference("Accounts"), "active": { "type": "boolean" },
        "created_at": time(), "updated_at": time(), "expires_at": nullable(time()),
        "rotated_at": nullable(time()), "previous_secret_valid_until": nullable(time()),
        "max_concurrent": nullable(json!({ "type": "integer" })),
        "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
        "version": { "type": "integer" },
        "rate_limit": reference("RateLimit"), "credits": reference("Credits")
    });
    // Budgets are left out of a record that sets none.
    let optional = ["rate_limit", "credits"];
    let required_key: Vec<String> = key_props
        .as_object()
        .map(|m| m.keys().filter(|k| !optional.contains(&k.as_str())).cloned().collect())
        .unwrap_or_default();
    let key = json!({
        "type": "object",
        "description": "A key in its public form: every field but the hashes.",
        "properties": key_props,
        "required": required_key
    });
    let secret = json!({
        "type": "object",
        "description": "The new secret, shown once: keep it, it cannot be shown again.",
        "properties": { "token": string(), "client_id": string(), "secret_key": string(),
                        "client_id_header": string(), "secret_header": string() },
        "required": ["token", "client_id", "secret_key", "client_id_header", "secret_header"]
    });
    let user = json!({
        "type": "object",
        "properties": { "schema": { "type": "integer" }, "id": string(), "roles": strings(),
                        "accounts": reference("Accounts"), "version": { "type": "integer" } },
        "required": ["schema", "id", "roles", "accounts", "version"]
    });
    let authority = json!({
        "type": "object",
        "description": "What a key can actually do now.",
        "properties": {
            "key_id": string(), "kind": { "type": "string", "enum": ["api", "personal"] }, "user": nullable(string()),
            "role": string(), "scopes": strings(), "accounts": reference("Accounts"), "expires_at": nullable(time()),
            "max_concurrent": { "type": "integer" }, "active": { "type": "boolean" },
            "rate_limit": nullable(reference("RateLimit")), "credits": nullable(reference("Credits"))
        }
    });
    let page = |item: &str| {
        json!({ "type": "object", "properties": { "items": { "type": "array", "items": reference(item) },
                "next_cursor": nullable(string()) }, "required": ["items", "next_cursor"] })
    };
    let error = json!({
        "type": "object",
        "properties": { "error": { "type": "object", "properties": {
            "code": { "type": "string", "enum": ALL_CODES },
            "message": string(),
            "field": { "type": "string", "description": "The body field, query parameter or header at fault" } },
            "required": ["code", "message"] } },
        "required": ["error"]
    });
    let mut m = Map::new();
    m.insert("Key".into(), key);
    m.insert("Secret".into(), secret);
    m.insert(
        "CreatedKey".into(),
        json!({ "type": "object", "properties": { "key": reference("Key"), "secret": nullable(reference("Secret")) },
                "required": ["key", "secret"] }),
    );
    m.insert("KeyPage".into(), page("Key"));
    m.insert("User".into(), user);
    m.insert("UserPage".into(), page("User"));
    m.insert(
        "RemovedUser".into(),
        json!({ "type": "object", "properties": { "user": string(), "removed_keys": { "type": "integer" } },
                "required": ["user", "removed_keys"] }),
    );
    m.insert("Authority".into(), authority);
    m.insert("Error".into(), error);
    m.insert(
        "Accounts".into(),
        json!({ "description": "`all` (every account, including future ones) or a list of account ids",
                "anyOf": [{ "const": "all" }, { "type": "array", "items": { "type": "string" } }] }),
    );
    let refill = json!({ "type": "object", "additionalProperties": false,
        "properties": { "amount": { "type": "integer", "minimum": 1 }, "interval": reference("Duration") },
        "required": ["amount", "interval"] });
    m.insert(
        "RateLimit".into(),
        json!({ "type": "object", "additionalProperties": false,
                "description": "`limit` requests per `per`, `burst` more at once",
                "properties": { "limit": { "type": "integer", "minimum": 1 }, "per": reference("Duration"),
                                "burst": { "type": "integer", "minimum": 0 } },
                "required": ["limit", "per"] }),
    );
    m.insert(
        "CreditsRequest".into(),
        json!({ "type": "object", "additionalProperties": false,
                "description": "Credits granted from now; with a refill, `remaining` resets to `amount` each `interval`",
                "properties": { "remaining": { "type": "integer", "minimum": 0 }, "refill": nullable(refill.clone()) },
                "required": ["remaining"] }),
    );
    m.insert(
        "Credits".into(),
        json!({ "type": "object", "description": "A credit grant as stored (what was spent is the admission backend's)",
                "properties": { "remaining": { "type": "integer" }, "refill": nullable(refill), "set_at": time() },
                "required": ["remaining", "refill", "set_at"] }),
    );
    m.insert(
        "Duration".into(),
        json!({ "type": "string", "description": "A number and a unit: `30s`, `15m`, `12h`, `90d`" }),
    );
    m
}
