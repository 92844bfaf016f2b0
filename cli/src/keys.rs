//! `keycel key ...` and `keycel user ...`: the key lifecycle through the core keyring.

use crate::args::{CreateArgs, KeyCommand, UserCommand};
use crate::context::{credential_headers, resolve_key, Ctx};
use crate::error::CliError;
use crate::output::{self, print_json};
use keycel::engine::Engine;
use keycel::keyring::{Change, NewKey};
use keycel::record::{AccountScope, KeyKind, KeyRecord, UserRecord};
use keycel::store::KeyFilter;
use keycel::time::{Duration, Timestamp};
use keycel::token::IssuedKey;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const SHOWN_ONCE: &str = "This secret is shown only now and cannot be retrieved later. Store it safely.";

fn parse_duration(flag: &str, s: &str) -> Result<Duration, CliError> {
    Duration::parse(s).map_err(|e| CliError::invalid(format!("{flag}: {e}")))
}

pub fn parse_accounts(s: &str) -> Result<AccountScope, CliError> {
    AccountScope::parse_list(s).map_err(|e| CliError::invalid(e.to_string()))
}

fn parse_metadata(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| CliError::invalid(format!("--meta {kv:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// Prints a freshly issued secret with the ways to send it (every form built by core's
/// `IssuedKey::reveal`), and the shown-once warning.
pub fn print_issued(
    ctx: &Ctx,
    engine: &Engine,
    verb: &str,
    record: &KeyRecord,
    issued: IssuedKey,
    extra: serde_json::Value,
) {
    let r = issued.reveal(&credential_headers(engine));
    let (id, secret, token) = (r.client_id.as_str(), r.secret_key.expose(), r.token.expose());
    if ctx.json() {
        let mut v = json!({
            "key": output::key_json(record, ctx.now, leeway(engine)),
            "client_id": id,
            "secret_key": secret,
            "token": token,
            "headers": {
                r.client_id_header.clone(): id,
                r.secret_header.clone(): secret,
            },
            "authorization_basic": r.authorization_basic.expose(),
            "authorization_bearer": r.authorization_bearer.expose(),
            "warning": SHOWN_ONCE,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        print_json(&v);
    } else {
        println!("{verb} {} key {:?} ({})", record.kind.as_str(), record.name, record.id);
        println!();
        println!("  client id   {id}");
        println!("  secret key  {secret}");
        println!("  token       {token}");
        println!();
        println!("Send it as a header pair:");
        for (name, value) in r.header_pair() {
            println!("  {name}: {value}");
        }
        println!("or as one token (Basic with an empty password, or Bearer):");
        println!("  Authorization: {}", r.authorization_basic.expose());
        println!("  Authorization: {}", r.authorization_bearer.expose());
        println!();
    }
    eprintln!("WARNING: {SHOWN_ONCE}");
}

/// The expiry leeway authentication applies, so listings call a key expired exactly when
/// it stops authenticating.
fn leeway(engine: &Engine) -> Duration {
    engine.authenticator().config().expiry_leeway
}

fn print_key(ctx: &Ctx, engine: &Engine, r: &KeyRecord, what: &str) {
    if ctx.json() {
        print_json(&output::key_json(r, ctx.now, leeway(engine)));
    } else {
        println!("{what}");
        println!("{}", output::key_detail(r, ctx.now, leeway(engine)));
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> Result<(), CliError> {
    let kind = KeyKind::from_parts(a.kind.as_str(), a.user)
        .map_err(|e| CliError::invalid(format!("--{}: {}", e.field, e.message)))?;
    let new = NewKey {
        name: a.name,
        description: a.description,
        kind,
        role: a.role,
        scopes: a.scopes.into_iter().collect(),
        accounts: parse_accounts(&a.accounts)?,
        expires_in: a.expires_in.as_deref().map(|s| parse_duration("--expires-in", s)).transpose()?,
        max_concurrent: a.max_concurrent,
        rate_limit: crate::budgets::rate_limit_flag(a.rate_limit.as_deref(), a.burst)?,
        credits: crate::budgets::credits_flag(a.credits, a.refill_amount, a.refill_interval.as_deref(), ctx.now)?,
        metadata: parse_metadata(&a.metadata)?,
        active: !a.inactive,
    };
    let engine = ctx.engine()?;
    let kr = ctx.keyring(ctx.open_store()?, &engine)?;
    let (record, issued) = kr.create(&ctx.actor, new, ctx.now)?;
    print_issued(ctx, &engine, "Created", &record, issued, json!({}));
    Ok(())
}

fn parse_expiry(ctx: &Ctx, s: &str) -> Result<Option<Timestamp>, CliError> {
    if s == "never" {
        return Ok(None);
    }
    if let Ok(d) = Duration::parse(s) {
        return Ok(Some(ctx.now.plus(d)));
    }
    Timestamp::parse_rfc3339(s)
        .map(Some)
        .map_err(|_| CliError::invalid(format!("expiry {s:?}: expected a duration (90d), an RFC 3339 time or `never`")))
}

pub fn run_key(ctx: &Ctx, cmd: KeyCommand) -> Result<(), CliError> {
    let cmd = match cmd {
        KeyCommand::Create(a) => return create(ctx, *a),
        other => other,
    };
    let engine = ctx.engine()?;
    let store = ctx.open_store()?;
    let kr = ctx.keyring(store.clone(), &engine)?;
    let id_of = |arg: &str| -> Result<String, CliError> { Ok(resolve_key(store.as_ref(), arg)?.id.to_string()) };
    let change = |arg: &str, change: Change, what: &str| -> Result<(), CliError> {
        let id = id_of(arg)?;
        let r = kr.update(&ctx.actor, &id, change, ctx.now)?;
        print_key(ctx, &engine, &r, &format!("{what} {} (version {})", r.id, r.version));
        Ok(())
    };
    match cmd {
        KeyCommand::Create(_) => Ok(()),
        KeyCommand::List { user, kind, active, inactive } => {
            let filter = KeyFilter {
                user,
                kind: kind.map(|k| k.as_str().to_string()),
                active: if active {
                    Some(true)
                } else if inactive {
                    Some(false)
                } else {
                    None
                },
            };
            let keys = kr.list(&ctx.actor, &filter, ctx.now)?;
            let effective = keys
                .iter()
                .map(|r| crate::explain::effective(&engine, store.as_ref(), r, ctx.now))
                .collect::<Result<Vec<_>, _>>()?;
            if ctx.json() {
                print_json(&json!(keys
                    .iter()
                    .zip(&effective)
                    .map(|(r, a)| {
                        let mut v = output::key_json(r, ctx.now, leeway(&engine));
                        if let Some(o) = v.as_object_mut() {
                            o.insert("effective".into(), json!(a));
                        }
                        v
                    })
                    .collect::<Vec<_>>()));
            } else if keys.is_empty() {
                println!("no keys");
            } else {
                println!("{}", output::keys_table(&keys, &effective, ctx.now, leeway(&engine)));
            }
            Ok(())
        }
        KeyCommand::Show { key } => {
            let id = id_of(&key)?;
            let r = kr.get(&ctx.actor, &id, ctx.now)?;
            let b = crate::budgets::budget(&ctx.db_spec(), &r, engine.default_rate_limit(), ctx.now)?;
            if ctx.json() {
                let mut v = output::key_json(&r, ctx.now, leeway(&engine));
                if let Some(o) = v.as_object_mut() {
                    o.insert("budget".into(), b.json(&r));
                }
                print_json(&v);
            } else {
                println!("Key {}", r.id);
                println!("{}", output::key_detail(&r, ctx.now, leeway(&engine)));
                let mut t = comfy_table::Table::new();
                t.set_header(["BUDGET", "VALUE"]);
                for (k, v) in b.rows(&r) {
                    t.add_row(vec![k.to_string(), v]);
                }
                println!("{t}");
            }
            Ok(())
        }
        KeyCommand::Explain { key } => crate::explain::explain_key(ctx, &key),
        KeyCommand::Rename { key, name } => change(&key, Change::Rename(name), "Renamed"),
        KeyCommand::Describe { key, description } => change(&key, Change::Describe(description), "Described"),
        KeyCommand::SetRole { key, role } => change(&key, Change::SetRole(role), "Role set on"),
        KeyCommand::SetScopes { key, scopes } => {
            change(&key, Change::SetScopes(scopes.into_iter().collect::<BTreeSet<_>>()), "Scopes set on")
        }
        KeyCommand::SetAccounts { key, accounts } => {
            change(&key, Change::SetAccounts(parse_accounts(&accounts)?), "Account scope set on")
        }
        KeyCommand::SetExpiry { key, expiry } => {
            change(&key, Change::SetExpiry(parse_expiry(ctx, &expiry)?), "Expiry set on")
        }
        KeyCommand::SetMaxConcurrent { key, limit } => {
            let limit = if limit == "default" {
                None
            } else {
                Some(limit.parse::<u32>().map_err(|_| {
                    CliError::invalid(format!("limit {limit:?}: expected a positive number or `default`"))
                })?)
            };
            change(&key, Change::SetMaxConcurrent(limit), "Limit set on")
        }
        KeyCommand::SetRateLimit { key, limit, per, burst, clear } => {
            let rl = crate::budgets::rate_limit(limit, per.as_deref(), burst, clear)?;
            change(&key, Change::SetRateLimit(rl), if clear { "Rate limit cleared on" } else { "Rate limit set on" })
        }
        KeyCommand::SetCredits { key, remaining, refill_amount, refill_interval, clear } => {
            let (remaining, refill) =
                crate::budgets::credits(remaining, refill_amount, refill_interval.as_deref(), clear)?;
            let id = id_of(&key)?;
            let r = kr.set_credits(&ctx.actor, &id, remaining, refill, ctx.now)?;
            print_key(
                ctx,
                &engine,
                &r,
                &format!("{} {:?}", if clear { "Credits cleared on" } else { "Credits set on" }, r.name),
            );
            Ok(())
        }
        KeyCommand::Activate { key } => change(&key, Change::SetActive(true), "Activated"),
        KeyCommand::Deactivate { key } => change(&key, Change::SetActive(false), "Deactivated"),
        KeyCommand::Rotate { key, grace } => {
            let grace = grace.as_deref().map(|g| parse_duration("--grace", g)).transpose()?;
            let id = id_of(&key)?;
            let (r, issued) = kr.rotate(&ctx.actor, &id, grace, ctx.now)?;
            let old = match &r.previous_secret {
                Some(p) => format!("the old secret stays valid until {}", p.valid_until),
                None => "the old secret no longer works".to_string(),
            };
            print_issued(ctx, &engine, "Rotated", &r, issued, json!({ "old_secret": old }));
            if !ctx.json() {
                println!("Note: {old}.");
            }
            Ok(())
        }
        KeyCommand::Delete { key } => {
            let r = resolve_key(store.as_ref(), &key)?;
            kr.delete(&ctx.actor, r.id.as_str(), ctx.now)?;
            if ctx.json() {
                print_json(&json!({ "deleted": r.id.as_str(), "name": r.name }));
            } else {
                println!("Deleted key {:?} ({}) for good; its id will never be reused.", r.name, r.id);
            }
            Ok(())
        }
    }
}

pub fn run_user(ctx: &Ctx, cmd: UserCommand) -> Result<(), CliError> {
    let engine = ctx.engine()?;
    let store = ctx.open_store()?;
    let kr = ctx.keyring(store.clone(), &engine)?;
    match cmd {
        UserCommand::Add { user, roles, accounts } => {
            let u = UserRecord::new(&user, roles, parse_accounts(&accounts)?)
                .map_err(|e| CliError::invalid(e.to_string()))?;
            let u = kr.put_user(&ctx.actor, u, ctx.now)?;
            if ctx.json() {
                print_json(&output::user_json(&u));
            } else {
                let verb = if u.version == 1 { "Added" } else { "Updated" };
                println!("{verb} user {} (version {})", u.id, u.version);
                println!("{}", output::users_table(std::slice::from_ref(&u)));
            }
            Ok(())
        }
        UserCommand::List => {
            let users = keycel::store::Store::list_users(store.as_ref())?;
            if ctx.json() {
                print_json(&json!(users.iter().map(output::user_json).collect::<Vec<_>>()));
            } else if users.is_empty() {
                println!("no users");
            } else {
                println!("{}", output::users_table(&users));
            }
            Ok(())
        }
        UserCommand::Remove { user } => {
            let n = kr.remove_user(&ctx.actor, &user, ctx.now)?;
            if ctx.json() {
                print_json(&json!({ "removed": user, "deleted_tokens": n }));
            } else {
                println!("Removed user {user}; deleted {n} personal token(s).");
            }
            Ok(())
        }
    }
}
