//! Printing: tables for people, JSON for scripts. Views never carry a secret or a hash.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use keycel::keyring::authority::Authority;
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::time::{Duration, Timestamp};
use serde_json::{json, Value};

pub fn accounts_text(a: &AccountScope) -> String {
    match a {
        AccountScope::All => "all".to_string(),
        AccountScope::Only(set) if set.is_empty() => "(none)".to_string(),
        AccountScope::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(","),
    }
}

fn accounts_json(a: &AccountScope) -> Value {
    match a {
        AccountScope::All => json!("all"),
        AccountScope::Only(set) => json!(set),
    }
}

/// `active`, `inactive` or `expired` at `now`, judged like authentication judges it.
pub fn state(r: &KeyRecord, now: Timestamp, leeway: Duration) -> &'static str {
    if !r.active {
        "inactive"
    } else if r.expired(now, leeway) {
        "expired"
    } else {
        "active"
    }
}

/// A key as the CLI shows it: core's public form (everything but the hashes, the same
/// fields every binding's `to_dict()` / `toJSON()` gives) plus its `state` at `now`.
pub fn key_json(r: &KeyRecord, now: Timestamp, leeway: Duration) -> Value {
    let mut v = r.to_public_value();
    if let Some(o) = v.as_object_mut() {
        o.insert("state".into(), json!(state(r, now, leeway)));
    }
    v
}

pub fn user_json(u: &UserRecord) -> Value {
    json!({ "id": u.id, "roles": u.roles, "accounts": accounts_json(&u.accounts), "version": u.version })
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    t
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.to_rfc3339())
}

/// Keys with their *effective* scopes and accounts (role expansion, a personal token's user
/// caps: what the key can really do), `(user removed)` for an orphaned personal token.
pub fn keys_table(keys: &[KeyRecord], effective: &[Option<Authority>], now: Timestamp, leeway: Duration) -> String {
    let mut t =
        table(&["ID", "NAME", "KIND", "USER", "ROLE", "EFFECTIVE SCOPES", "EFFECTIVE ACCOUNTS", "STATE", "EXPIRES"]);
    for (r, a) in keys.iter().zip(effective) {
        let (scopes, accounts) = match a {
            Some(a) => (crate::explain::scopes_text(&a.scopes), accounts_text(&a.accounts)),
            None => ("(user removed)".to_string(), "-".to_string()),
        };
        t.add_row(vec![
            r.id.to_string(),
            r.name.clone(),
            r.kind.as_str().to_string(),
            r.kind.user().unwrap_or("-").to_string(),
            r.role.clone(),
            scopes,
            accounts,
            state(r, now, leeway).to_string(),
            opt_time(r.expires_at),
        ]);
    }
    t.to_string()
}

pub fn key_detail(r: &KeyRecord, now: Timestamp, leeway: Duration) -> String {
    let mut t = table(&["FIELD", "VALUE"]);
    let rows: Vec<(&str, String)> = vec![
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("description", if r.description.is_empty() { "-".into() } else { r.description.clone() }),
        ("kind", r.kind.as_str().to_string()),
        ("user", r.kind.user().unwrap_or("-").to_string()),
        ("role", r.role.clone()),
        (
            "scopes",
            if r.scopes.is_empty() { "-".into() } else { r.scopes.iter().cloned().collect::<Vec<_>>().join(" ") },
        ),
        ("accounts", accounts_text(&r.accounts)),
        ("state", state(r, now, leeway).to_string()),
        ("created", r.created_at.to_rfc3339()),
        ("updated", r.updated_at.to_rfc3339()),
        ("expires", opt_time(r.expires_at)),
        ("rotated", opt_time(r.rotated_at)),
        ("old secret valid until", opt_time(r.previous_secret.as_ref().map(|p| p.valid_until))),
        ("max concurrent", r.max_concurrent.map_or_else(|| "default".to_string(), |n| n.to_string())),
        (
            "metadata",
            if r.metadata.is_empty() {
                "-".into()
            } else {
                r.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
            },
        ),
        ("version", r.version.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t.to_string()
}

pub fn users_table(users: &[UserRecord]) -> String {
    let mut t = table(&["USER", "ROLES", "ACCOUNTS", "VERSION"]);
    for u in users {
        t.add_row(vec![
            u.id.clone(),
            u.roles.iter().cloned().collect::<Vec<_>>().join(" "),
            accounts_text(&u.accounts),
            u.version.to_string(),
        ]);
    }
    t.to_string()
}

pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("keycel: could not encode JSON: {e}"),
    }
}
