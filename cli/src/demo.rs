//! `keycel demo`: the seed scenarios end to end against a fresh SQLite store, printing each
//! request and its decision. Every step states what it expects; any deviation makes the demo
//! exit 1, so it doubles as an end-to-end test.

use crate::args::DemoArgs;
use crate::authorize::decision_lines;
use crate::context::{credential_headers, Ctx};
use crate::error::{code, CliError};
use crate::output::print_json;
use base64ct::{Base64, Encoding};
use keycel::credentials::CredentialConfig;
use keycel::decision::Decision;
use keycel::engine::{Authorization, Engine, Request};
use keycel::keyring::{Actor, Keyring, KeyringError, NewKey};
use keycel::record::{AccountScope, KeyRecord, UserRecord};
use keycel::sqlite::SqliteStore;
use keycel::store::{KeyFilter, Store};
use keycel::time::{Duration, Timestamp};
use keycel::token::IssuedKey;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How a request carries its credentials.
#[derive(Clone, Copy)]
enum Via {
    /// Client id and secret in the two configured headers.
    Pair,
    /// `Authorization: Basic base64(token ":")`: the key as user, empty password.
    BasicEmpty,
    /// `Authorization: Basic base64(token)`: no colon, absent password.
    BasicAbsent,
    /// `Authorization: Bearer token`.
    Bearer,
}

/// A key the demo holds the secret of (only ever in memory, only for this run).
struct Held {
    label: &'static str,
    issued: IssuedKey,
}

impl Held {
    fn id(&self) -> String {
        self.issued.client_id.to_string()
    }

    fn headers(&self, via: Via, names: &CredentialConfig) -> Vec<(String, String)> {
        let token = self.issued.token();
        match via {
            Via::Pair => vec![
                (names.client_id_header.clone(), self.id()),
                (names.secret_header.clone(), self.issued.secret.expose().to_string()),
            ],
            Via::BasicEmpty => vec![(
                "Authorization".into(),
                format!("Basic {}", Base64::encode_string(format!("{}:", token.expose()).as_bytes())),
            )],
            Via::BasicAbsent => {
                vec![("Authorization".into(), format!("Basic {}", Base64::encode_string(token.expose().as_bytes())))]
            }
            Via::Bearer => vec![("Authorization".into(), format!("Bearer {}", token.expose()))],
        }
    }

    /// The credentials as printed: the client id in clear, the secret masked.
    fn shown(&self, via: Via, names: &CredentialConfig) -> String {
        let id = self.id();
        match via {
            Via::Pair => format!("{}: {id} + {}: ••••", names.client_id_header, names.secret_header),
            Via::BasicEmpty => format!("Authorization: Basic base64(\"{id}_••••:\")  (key as user, empty password)"),
            Via::BasicAbsent => format!("Authorization: Basic base64(\"{id}_••••\")  (key as user, no password)"),
            Via::Bearer => format!("Authorization: Bearer {id}_••••"),
        }
    }
}

struct Demo {
    engine: Arc<Engine>,
    store: Arc<SqliteStore>,
    keyring: Keyring,
    names: CredentialConfig,
    now: Timestamp,
    json: bool,
    section: usize,
    checks: usize,
    deviations: Vec<String>,
    log: Vec<Value>,
}

/// What a step expects of a decision.
struct Expect {
    status: u16,
    code: Option<&'static str>,
}

const fn expect(status: u16) -> Expect {
    Expect { status, code: None }
}

const fn expect_code(status: u16, code: &'static str) -> Expect {
    Expect { status, code: Some(code) }
}

fn describe(req: &Request) -> String {
    let mut s = format!("{} {}", req.method.as_deref().unwrap_or("-"), req.path.as_deref().unwrap_or("-"));
    s.push_str(&format!("  action={}", req.action));
    if let Some(a) = &req.account {
        s.push_str(&format!(" account={a}"));
    }
    s
}

fn get(path: &str, action: &str) -> Request {
    Request::new(action).method("GET").path(path)
}

impl Demo {
    fn section(&mut self, title: &str) {
        self.section += 1;
        if !self.json {
            println!();
            println!("── {}. {title}", self.section);
        }
    }

    fn say(&self, line: &str) {
        if !self.json {
            println!("   {line}");
        }
    }

    fn check(&mut self, what: &str, ok: bool, detail: Value) {
        self.checks += 1;
        if !ok {
            self.deviations.push(format!("step {}: {what}", self.section));
        }
        if !self.json && !ok {
            println!("   ✗ DEVIATION: {what}");
        }
        self.log.push(json!({ "section": self.section, "check": what, "ok": ok, "detail": detail }));
    }

    fn matches(d: &Decision, e: &Expect) -> bool {
        d.status == e.status && e.code.is_none_or(|c| d.code.as_deref() == Some(c))
    }

    /// Sends one request and checks its decision; returns the authorization (holding the
    /// lease when allowed).
    fn request(&mut self, key: &Held, via: Via, req: Request, e: Expect) -> Authorization {
        let headers = key.headers(via, &self.names);
        let auth = self.engine.authorize(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &req,
            self.store.as_ref(),
            self.now,
        );
        let ok = Self::matches(&auth.decision, &e);
        let want = format!("{}{}", e.status, e.code.map(|c| format!(" {c}")).unwrap_or_default());
        if !self.json {
            println!("   → {}  [{}]", describe(&req), key.label);
            println!("     {}", key.shown(via, &self.names));
            for l in decision_lines(&auth.decision) {
                println!("     {l}");
            }
            println!("     expected {want}: {}", if ok { "✓" } else { "✗" });
        }
        let what = format!("{} [{}] expected {want}, got {}", describe(&req), key.label, auth.decision.status);
        self.check(
            &what,
            ok,
            json!({ "request": req, "credentials": key.shown(via, &self.names), "decision": auth.decision }),
        );
        auth
    }

    fn issued(&self, verb: &str, r: &KeyRecord, issued: &IssuedKey) {
        if self.json {
            return;
        }
        let token = issued.token();
        let shown_token = format!(
            "{}_{}",
            issued.client_id,
            "•".repeat(token.expose().len().saturating_sub(issued.client_id.as_str().len() + 1).min(8))
        );
        println!(
            "   {verb} {} key {:?}: client id {}, secret shown once (masked here), role {}, accounts {}",
            r.kind.as_str(),
            r.name,
            issued.client_id,
            r.role,
            crate::output::accounts_text(&r.accounts)
        );
        println!(
            "     header pair: {}: {} / {}: ••••",
            self.names.client_id_header, issued.client_id, self.names.secret_header
        );
        println!("     token:       {shown_token}");
    }

    fn create(&mut self, actor: &Actor, label: &'static str, new: NewKey) -> Result<(KeyRecord, Held), CliError> {
        let (r, issued) = self.keyring.create(actor, new, self.now)?;
        self.issued("created", &r, &issued);
        self.check(&format!("create {label}"), true, json!({ "key": r.id.as_str(), "by": actor.label() }));
        Ok((r, Held { label, issued }))
    }

    fn expect_denied<T>(&mut self, what: &str, r: Result<T, KeyringError>, status: u16) {
        let got = match &r {
            Err(KeyringError::Denied(d)) => {
                self.say(&format!("→ {what}: refused {} {} ({})", d.status, d.code.as_deref().unwrap_or(""), d.reason));
                Some(d.status)
            }
            Err(e) => {
                self.say(&format!("→ {what}: failed: {e}"));
                None
            }
            Ok(_) => {
                self.say(&format!("→ {what}: succeeded"));
                None
            }
        };
        let ok = got == Some(status);
        self.say(&format!("  expected refusal {status}: {}", if ok { "✓" } else { "✗" }));
        self.check(&format!("{what} expected refusal {status}"), ok, json!({ "status": got }));
    }

    fn actor_for(&self, key: &Held) -> Result<Actor, CliError> {
        let record = self
            .store
            .get_key(&key.id())?
            .ok_or_else(|| CliError::not_found(format!("demo key {} vanished", key.label)))?;
        let user = match record.kind.user() {
            Some(u) => self.store.get_user(u)?,
            None => None,
        };
        Ok(Actor::Key { key: Box::new(record), user })
    }
}

fn accounts(list: &[&str]) -> AccountScope {
    AccountScope::Only(list.iter().map(|s| s.to_string()).collect())
}

fn user(id: &str, roles: &[&str], acc: AccountScope) -> Result<UserRecord, CliError> {
    UserRecord::new(id, roles.iter().map(|r| r.to_string()), acc).map_err(|e| CliError::invalid(e.to_string()))
}

pub fn run(ctx: &Ctx, args: &DemoArgs) -> Result<(), CliError> {
    let tmp = tempfile::tempdir()?;
    let path = match &args.keep {
        Some(p) if p.exists() => {
            return Err(CliError::new(
                code::CONFLICT,
                "conflict",
                format!("{} exists; the demo needs a fresh store", p.display()),
            ))
        }
        Some(p) => p.clone(),
        None => tmp.path().join("demo.db"),
    };
    let store = Arc::new(SqliteStore::create(&path)?);
    let engine = ctx.engine()?;
    let keyring = ctx.keyring(store.clone(), &engine)?;
    let mut d = Demo {
        names: credential_headers(&engine),
        engine,
        store,
        keyring,
        now: ctx.now,
        json: ctx.json(),
        section: 0,
        checks: 0,
        deviations: Vec::new(),
        log: Vec::new(),
    };
    if !d.json {
        println!("keycel demo: the seed scenarios against a fresh SQLite store ({})", path.display());
        println!("policy: {}; time: {}", d.engine.policy().origin(), d.now);
    }
    let result = scenarios(&mut d);
    if let Err(e) = &result {
        d.deviations.push(format!("step {}: aborted: {e}", d.section));
    }
    let integrity = d.store.check_integrity();
    d.check(
        "store integrity after the demo",
        integrity.is_ok(),
        json!({ "integrity": integrity.map(|r| r.keys).map_err(|e| e.to_string()) }),
    );
    if d.json {
        print_json(
            &json!({ "checks": d.checks, "deviations": d.deviations, "steps": d.log, "db": path.display().to_string() }),
        );
    } else {
        println!();
        if d.deviations.is_empty() {
            println!("demo: {} checks, all as expected", d.checks);
        } else {
            println!("demo: {} checks, {} deviation(s):", d.checks, d.deviations.len());
            for x in &d.deviations {
                println!("  - {x}");
            }
        }
    }
    if d.deviations.is_empty() {
        Ok(())
    } else {
        Err(CliError::denied("demo_failed", format!("{} demo step(s) deviated", d.deviations.len())))
    }
}

fn scenarios(d: &mut Demo) -> Result<(), CliError> {
    let operator = Actor::Operator("demo".into());
    let start = d.now;

    d.section("Set-up: two users; the operator issues the admin's first (personal) token");
    d.keyring.put_user(&operator, user("ann", &["admin"], AccountScope::All)?, d.now)?;
    d.keyring.put_user(&operator, user("victor", &["viewer"], accounts(&["acc_1", "acc_2"]))?, d.now)?;
    d.say("users: ann (admin, all accounts), victor (viewer, accounts acc_1 and acc_2)");
    let (_, ann) = d.create(&operator, "ann-admin", NewKey::personal("ann admin", "ann", "admin"))?;

    d.section("An admin creates an API token (client id + secret, sent as a header pair)");
    let ann_actor = d.actor_for(&ann)?;
    let (_, prod) = d.create(&ann_actor, "Production", NewKey::api("Production", "integration"))?;
    d.request(&prod, Via::Pair, get("/v1/accounts/acc_1/transactions", "api.read").account("acc_1"), expect(200));

    d.section("A user creates a personal token; only admins create API tokens");
    let (_, victor) = d.create(&operator, "victor-laptop", NewKey::personal("victor laptop", "victor", "viewer"))?;
    let victor_actor = d.actor_for(&victor)?;
    let (_, victor_ci) = d.create(&victor_actor, "victor-ci", NewKey::personal("victor ci", "victor", "viewer"))?;
    let r = d.keyring.create(&victor_actor, NewKey::api("victor's service", "reader"), d.now);
    d.expect_denied("victor's token creates an API token", r, 403);
    let r = d.keyring.create(&victor_actor, NewKey::personal("for ann", "ann", "admin"), d.now);
    d.expect_denied("victor's token creates a token for ann", r, 403);

    d.section("HTTP Basic with the key as user and an empty or absent password; Bearer");
    d.request(&victor, Via::BasicEmpty, get("/v1/accounts/acc_1", "api.read").account("acc_1"), expect(200));
    d.request(&victor, Via::BasicAbsent, get("/v1/accounts/acc_1", "api.read").account("acc_1"), expect(200));
    d.request(&victor_ci, Via::Bearer, get("/v1/accounts/acc_2", "api.read").account("acc_2"), expect(200));
    let forged = Held {
        label: "forged secret",
        issued: IssuedKey {
            client_id: victor.issued.client_id.clone(),
            secret: d
                .keyring
                .format()
                .new_secret(&victor.issued.client_id, &mut getrandom::SysRng)
                .map_err(|e| CliError::store(format!("random secret: {e}")))?,
        },
    };
    let a =
        d.request(&forged, Via::BasicEmpty, get("/v1/accounts/acc_1", "api.read"), expect_code(401, "invalid_token"));
    let same_text = a.decision.message == d.engine.messages().unauthorized;
    d.say(&format!("401 message is the fixed text {:?}", d.engine.messages().unauthorized));
    d.check("401 carries the fixed client message", same_text, json!({}));

    d.section("Scopes allow and deny");
    d.request(
        &victor,
        Via::BasicEmpty,
        Request::new("api.write").method("POST").path("/v1/data"),
        expect_code(403, "insufficient_scope"),
    );
    d.request(&prod, Via::Pair, Request::new("api.write").method("POST").path("/v1/data"), expect(200));
    d.request(&ann, Via::BasicEmpty, get("/v1/accounts", "admin.account.list"), expect(403));
    d.request(&ann, Via::BasicEmpty, get("/admin/accounts", "admin.account.list"), expect(200));

    d.section("Account scope: outside its accounts a key gets 404, exactly like a missing resource");
    let mut reporting = NewKey::api("Reporting", "reader");
    reporting.accounts = accounts(&["acc_1"]);
    let (rep_rec, rep) = d.create(&ann_actor, "Reporting", reporting)?;
    d.request(&rep, Via::BasicEmpty, get("/v1/accounts/acc_1", "api.read").account("acc_1"), expect(200));
    let a = d.request(&rep, Via::BasicEmpty, get("/v1/accounts/acc_2", "api.read").account("acc_2"), expect(404));
    let identical = a.decision.body_json() == Decision::not_found_body(d.engine.messages());
    d.say(&format!("404 body {} is byte-identical to a missing resource's", a.decision.body_json()));
    d.check("404 body identical to a missing resource", identical, json!({ "body": a.decision.body_json() }));
    d.say(
        "a personal token never exceeds its user: victor's token (accounts: all) on acc_3, outside victor's accounts",
    );
    d.request(&victor, Via::BasicEmpty, get("/v1/accounts/acc_3", "api.read").account("acc_3"), expect(404));

    d.section("Scope edits take effect on the very next request");
    d.request(
        &rep,
        Via::BasicEmpty,
        Request::new("api.write").method("POST").path("/v1/data").account("acc_1"),
        expect(403),
    );
    let id = rep_rec.id.to_string();
    d.keyring.set_accounts(&ann_actor, &id, accounts(&["acc_1", "acc_2"]), d.now)?;
    d.keyring.update(
        &ann_actor,
        &id,
        keycel::keyring::Change::SetScopes(BTreeSet::from(["api.write".to_string()])),
        d.now,
    )?;
    d.say("ann sets Reporting's accounts to acc_1,acc_2 and adds scope api.write");
    d.request(&rep, Via::BasicEmpty, get("/v1/accounts/acc_2", "api.read").account("acc_2"), expect(200));
    d.request(
        &rep,
        Via::BasicEmpty,
        Request::new("api.write").method("POST").path("/v1/data").account("acc_1"),
        expect(200),
    );

    d.section("Rotation: a new secret; the old one dies at once (or after a grace period)");
    let prod_id = prod.id();
    let (_, new_secret) = d.keyring.rotate(&ann_actor, &prod_id, None, d.now)?;
    let prod_new = Held { label: "Production (new secret)", issued: new_secret };
    let prod_old = Held { label: "Production (old secret)", issued: prod.issued };
    d.say("ann rotates Production without grace");
    d.request(&prod_old, Via::Pair, get("/v1/data", "api.read"), expect(401));
    d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect(200));
    let (_, rep_new_secret) = d.keyring.rotate(&ann_actor, &id, Some(Duration::from_secs(3600)), d.now)?;
    let rep_new = Held { label: "Reporting (new secret)", issued: rep_new_secret };
    let rep_old = Held { label: "Reporting (old secret)", issued: rep.issued };
    d.say("ann rotates Reporting with a one-hour grace");
    d.request(&rep_old, Via::BasicEmpty, get("/v1/data", "api.read").account("acc_1"), expect(200));
    d.now = start.plus(Duration::from_secs(3601));
    d.say(&format!("time passes: now {}", d.now));
    d.request(&rep_old, Via::BasicEmpty, get("/v1/data", "api.read").account("acc_1"), expect(401));
    d.request(&rep_new, Via::BasicEmpty, get("/v1/data", "api.read").account("acc_1"), expect(200));

    d.section("Deactivation");
    d.keyring.set_active(&ann_actor, &prod_id, false, d.now)?;
    d.say("ann deactivates Production");
    d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect(401));
    d.keyring.set_active(&ann_actor, &prod_id, true, d.now)?;
    d.say("and activates it again");
    d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect(200));

    d.section("Expiry");
    let mut trial = NewKey::api("Trial", "reader");
    trial.expires_in = Some(Duration::from_secs(86_400));
    let (trial_rec, trial) = d.create(&ann_actor, "Trial", trial)?;
    d.say(&format!("Trial expires at {}", trial_rec.expires_at.map(|t| t.to_string()).unwrap_or_default()));
    d.request(&trial, Via::Bearer, get("/v1/data", "api.read"), expect(200));
    d.now = d.now.plus(Duration::from_secs(86_401));
    d.say(&format!("a day passes: now {}", d.now));
    d.request(&trial, Via::Bearer, get("/v1/data", "api.read"), expect(401));

    d.section("Removing a user deletes their personal tokens");
    let before = d.store.list_keys(&KeyFilter { user: Some("victor".into()), ..KeyFilter::default() })?.len();
    let removed = d.keyring.remove_user(&operator, "victor", d.now)?;
    d.say(&format!("operator removes victor: {removed} personal token(s) deleted"));
    d.check(
        "both of victor's tokens deleted",
        before == 2 && removed == 2,
        json!({ "before": before, "removed": removed }),
    );
    d.request(&victor, Via::BasicEmpty, get("/v1/accounts/acc_1", "api.read").account("acc_1"), expect(401));
    d.request(&victor_ci, Via::Bearer, get("/v1/accounts/acc_1", "api.read").account("acc_1"), expect(401));

    d.section("Five concurrent requests per key: the sixth gets 429");
    let mut in_flight = Vec::new();
    for _ in 0..5 {
        in_flight.push(d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect(200)));
    }
    let sixth = d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect_code(429, "too_many_requests"));
    let retry = sixth.decision.header("retry-after").is_some();
    d.check("429 carries Retry-After", retry, json!({ "headers": sixth.decision.headers }));
    let held = in_flight.iter().filter(|a| a.lease.is_some()).count();
    d.check(
        "the five allowed requests hold leases; the denied one none",
        held == 5 && sixth.lease.is_none(),
        json!({ "held": held }),
    );
    drop(in_flight.pop());
    d.say("one request finishes (its lease is dropped)");
    d.request(&prod_new, Via::Pair, get("/v1/data", "api.read"), expect(200));
    drop(in_flight);
    Ok(())
}
