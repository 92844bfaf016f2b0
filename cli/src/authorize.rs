//! `keycel authorize`: one request through the engine against the store, with the decision
//! and why. Exit 0 when allowed, 1 when denied.

use crate::args::AuthorizeArgs;
use crate::context::Ctx;
use crate::error::CliError;
use crate::output::print_json;
use keycel::decision::Decision;
use keycel::engine::{Authorization, Request};
use serde_json::{json, Value};

/// `Name: value` → (name, value). The value may be empty; the name may not.
pub fn parse_header(h: &str) -> Result<(String, String), CliError> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| CliError::invalid(format!("--header {:?}: expected `Name: value`", shorten(h))))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::invalid(format!("--header {:?}: bad header name", shorten(h))));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Headers are shown with credentials masked: a CLI must not echo secrets into logs.
fn shorten(h: &str) -> String {
    let head: String = h.chars().take(24).collect();
    if h.chars().count() > 24 {
        format!("{head}…")
    } else {
        head
    }
}

fn request_of(a: &AuthorizeArgs) -> Result<Request, CliError> {
    let mut req = Request::new(&a.action);
    req.account = a.account.clone();
    req.method = a.method.clone();
    req.path = a.path.clone();
    req.ip = a.ip.clone();
    for kv in &a.attributes {
        let (k, v) =
            kv.split_once('=').ok_or_else(|| CliError::invalid(format!("--attr {kv:?}: expected KEY=JSON")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        req.attributes.insert(k.to_string(), value);
    }
    req.validate().map_err(CliError::invalid)?;
    Ok(req)
}

pub fn decision_json(auth: &Authorization) -> Value {
    let d = &auth.decision;
    json!({
        "decision": d,
        "body": d.body_json(),
        "key_name": auth.key.as_ref().map(|k| k.name.clone()),
        "method": auth.authenticated.as_ref().map(|a| a.method.as_str()),
        "needs_rehash": auth.authenticated.as_ref().map(|a| a.needs_rehash),
    })
}

/// Human lines: verdict, then the why.
pub fn decision_lines(d: &Decision) -> Vec<String> {
    let verdict = if d.allowed { "ALLOWED".to_string() } else { "DENIED".to_string() };
    let mut out = vec![format!("{verdict} {} {}", d.status, d.code.as_deref().unwrap_or("")).trim_end().to_string()];
    out.push(format!("  message: {}", d.message));
    if let Some(k) = &d.key_id {
        out.push(format!("  key:     {k}"));
    }
    out.push(format!("  why:     {}", d.reason));
    if !d.matched_rules.is_empty() {
        out.push(format!("  rules:   {}", d.matched_rules.join(", ")));
    }
    for (k, v) in &d.headers {
        out.push(format!("  header:  {k}: {v}"));
    }
    out
}

pub fn run(ctx: &Ctx, a: &AuthorizeArgs) -> Result<(), CliError> {
    let headers = a.headers.iter().map(|h| parse_header(h)).collect::<Result<Vec<_>, _>>()?;
    let req = request_of(a)?;
    let engine = ctx.engine()?;
    let store = ctx.open_store()?;
    let auth = engine.authorize(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &req, &store, ctx.now);
    if ctx.json() {
        print_json(&decision_json(&auth));
    } else {
        for l in decision_lines(&auth.decision) {
            println!("{l}");
        }
        if let Some(k) = &auth.key {
            println!("  name:    {}", k.name);
        }
    }
    if auth.decision.allowed {
        Ok(())
    } else {
        // The decision is already printed; the error line only carries the exit code.
        Err(CliError::denied("denied", format!("denied with {}", auth.decision.status)))
    }
}
