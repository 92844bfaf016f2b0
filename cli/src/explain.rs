//! `keycel key explain ID` (what a key can actually do now: core's `Engine::explain`) and
//! `keycel policy roles` (the roles a policy defines, their scopes, the scope catalogue). The
//! key list shows the same effective authority, so a personal token's real reach is visible.

use crate::context::{resolve_key, Ctx};
use crate::error::CliError;
use crate::output::{accounts_text, print_json};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use keycel::engine::Engine;
use keycel::keyring::authority::Authority;
use keycel::record::KeyRecord;
use keycel::store::Store;
use keycel::time::Timestamp;
use serde_json::json;

/// The key's effective authority (its user read from the store); `None` for a personal token
/// whose user is gone (it cannot authenticate at all).
pub fn effective(
    engine: &Engine,
    store: &dyn Store,
    r: &KeyRecord,
    now: Timestamp,
) -> Result<Option<Authority>, CliError> {
    let user = match r.kind.user() {
        Some(u) => match store.get_user(u)? {
            Some(u) => Some(u),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(engine.explain(r, user.as_ref(), now).ok())
}

/// Space-separated scopes, `-` for none.
pub fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "-".to_string()
    } else {
        scopes.join(" ")
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    t
}

pub fn explain_key(ctx: &Ctx, key: &str) -> Result<(), CliError> {
    let engine = ctx.engine()?;
    let store = ctx.open_store()?;
    let kr = ctx.keyring(store.clone(), &engine)?;
    let id = resolve_key(store.as_ref(), key)?.id.to_string();
    let r = kr.get(&ctx.actor, &id, ctx.now)?;
    let Some(a) = effective(&engine, store.as_ref(), &r, ctx.now)? else {
        return Err(CliError::not_found(format!(
            "personal token {} belongs to {:?}, who is no longer a user: it cannot authenticate",
            r.id,
            r.kind.user().unwrap_or("-")
        )));
    };
    if ctx.json() {
        print_json(&json!(a));
        return Ok(());
    }
    println!("What key {} ({:?}) can do now", r.id, r.name);
    let mut t = table(&["FIELD", "VALUE"]);
    let rows = [
        ("kind", a.kind.to_string()),
        ("user", a.user.clone().unwrap_or_else(|| "-".into())),
        ("role", a.role.clone()),
        ("effective scopes", scopes_text(&a.scopes)),
        ("effective accounts", accounts_text(&a.accounts)),
        ("usable until", a.expires_at.map_or_else(|| "no expiry".to_string(), |t| t.to_rfc3339())),
        ("max concurrent", a.max_concurrent.to_string()),
        (
            "rate limit",
            a.rate_limit.map_or_else(
                || "none".to_string(),
                |l| format!("{} per {} (burst {})", l.limit, keycel::budget::format_duration(l.per), l.burst),
            ),
        ),
        (
            "credits",
            a.credits.map_or_else(
                || "unmetered".to_string(),
                |c| match c.refill {
                    Some(f) => format!(
                        "{} granted, refill {} every {}",
                        c.remaining,
                        f.amount,
                        keycel::budget::format_duration(f.interval)
                    ),
                    None => format!("{} granted", c.remaining),
                },
            ),
        ),
        ("usable now", if a.active { "yes".into() } else { "no".into() }),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    println!("{t}");
    Ok(())
}

pub fn roles(ctx: &Ctx) -> Result<(), CliError> {
    let engine = ctx.engine()?;
    let roles = engine.roles();
    let catalogue = &engine.policy().document().scopes;
    if ctx.json() {
        let roles: serde_json::Map<String, serde_json::Value> = roles.into_iter().map(|(r, s)| (r, json!(s))).collect();
        print_json(&json!({ "roles": roles, "scopes": catalogue }));
        return Ok(());
    }
    let mut t = table(&["ROLE", "SCOPES"]);
    for (role, scopes) in &roles {
        t.add_row(vec![role.clone(), scopes_text(scopes)]);
    }
    println!("{t}");
    let mut c = table(&["SCOPE", "DESCRIPTION"]);
    for (scope, what) in catalogue {
        c.add_row(vec![scope.clone(), what.clone()]);
    }
    println!("{c}");
    Ok(())
}
