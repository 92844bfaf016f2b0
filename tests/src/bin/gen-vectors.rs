//! Writes `tests/vectors/*.json`: the seed scenarios as language-neutral cases.
//!
//! Expectations are stated here by hand, per case; after writing, every file is run through
//! the Rust engine and the generator fails if any decision differs, so a vector never
//! records what the engine happens to do, only what the seeds say it must do.
//! Deterministic (fixed RNG seed) and cheap (argon2 m=1024,t=1,p=1).

use base64ct::{Base64, Encoding};
use keycel::engine::Request;
use keycel::hash::{HashParams, HashPolicy};
use keycel::record::{AccountScope, KeyKind, KeyRecord, PreviousSecret, UserRecord};
use keycel::test_rng::TestRng;
use keycel::time::{Duration, Timestamp};
use keycel::token::{IssuedKey, TokenFormat};
use keycel_conformance::forms::{
    budget_forms_path, check_budget_forms, check_record_forms, record_forms_path, BudgetFormCase, BudgetForms,
    RecordFormCase, RecordForms,
};
use keycel_conformance::{
    repo_root, run, Case, Expect, ManagementCase, ManagementExpect, NewKeySpec, TokenSet, Vector,
};
use std::collections::BTreeMap;

const CHEAP: HashParams = HashParams { m_cost: 1024, t_cost: 1, p_cost: 1 };
const CHALLENGE_INVALID: &str = "Basic realm=\"keycel\", Bearer realm=\"keycel\", error=\"invalid_token\"";
const CHALLENGE_MISSING: &str = "Basic realm=\"keycel\", Bearer realm=\"keycel\"";

struct Gen {
    rng: TestRng,
    hash: HashPolicy,
    now: Timestamp,
    keys: Vec<KeyRecord>,
    users: Vec<UserRecord>,
    tokens: BTreeMap<String, TokenSet>,
    ids: BTreeMap<String, String>,
    cases: Vec<Case>,
    management: Vec<ManagementCase>,
}

type R<T> = Result<T, String>;

impl Gen {
    fn new(seed: u64) -> R<Self> {
        Ok(Gen {
            rng: TestRng::new(seed),
            hash: HashPolicy::with_params(CHEAP).map_err(|e| e.to_string())?,
            now: Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").map_err(|e| e.to_string())?,
            keys: Vec::new(),
            users: Vec::new(),
            tokens: BTreeMap::new(),
            ids: BTreeMap::new(),
            cases: Vec::new(),
            management: Vec::new(),
        })
    }

    fn issue(&mut self) -> R<IssuedKey> {
        TokenFormat::default().issue(&mut self.rng).map_err(|e| e.to_string())
    }

    /// Adds a stored key and remembers its credentials under `label`.
    fn key(&mut self, label: &str, role: &str, edit: impl FnOnce(&mut KeyRecord)) -> R<()> {
        let issued = self.issue()?;
        let hash = self.hash.hash(issued.secret.expose().as_bytes(), &mut self.rng).map_err(|e| e.to_string())?;
        let mut r = KeyRecord::new(issued.client_id.clone(), label, KeyKind::Api, role, hash, self.now);
        edit(&mut r);
        r.validate().map_err(|e| e.to_string())?;
        self.remember(label, &issued);
        self.keys.push(r);
        Ok(())
    }

    fn remember(&mut self, label: &str, k: &IssuedKey) {
        self.ids.insert(label.to_string(), k.client_id.as_str().to_string());
        self.tokens.insert(
            label.to_string(),
            TokenSet {
                client_id: k.client_id.as_str().to_string(),
                secret: k.secret.expose().to_string(),
                token: k.token().expose().to_string(),
            },
        );
    }

    fn user(&mut self, id: &str, roles: &[&str], accounts: AccountScope) -> R<()> {
        let u = UserRecord::new(id, roles.iter().map(|s| s.to_string()), accounts).map_err(|e| e.to_string())?;
        self.users.push(u);
        Ok(())
    }

    fn t(&self, label: &str) -> R<&TokenSet> {
        self.tokens.get(label).ok_or_else(|| format!("no token {label}"))
    }

    fn id(&self, label: &str) -> Option<String> {
        self.ids.get(label).cloned()
    }

    fn bearer(&self, label: &str) -> R<Vec<(String, String)>> {
        Ok(vec![("Authorization".into(), format!("Bearer {}", self.t(label)?.token))])
    }

    fn basic(&self, user: &str, password: Option<&str>) -> Vec<(String, String)> {
        let raw = match password {
            Some(p) => format!("{user}:{p}"),
            None => user.to_string(),
        };
        vec![("Authorization".into(), format!("Basic {}", Base64::encode_string(raw.as_bytes())))]
    }

    fn pair(&self, label: &str) -> R<Vec<(String, String)>> {
        let t = self.t(label)?;
        Ok(vec![("X-Keycel-Client-Id".into(), t.client_id.clone()), ("X-Keycel-Secret-Key".into(), t.secret.clone())])
    }

    fn case(&mut self, name: &str, headers: Vec<(String, String)>, request: Request, expect: Expect) {
        self.cases.push(Case { name: name.to_string(), headers, request, now: None, in_flight: 0, expect });
    }

    fn case_at(
        &mut self,
        name: &str,
        headers: Vec<(String, String)>,
        request: Request,
        now: Timestamp,
        expect: Expect,
    ) {
        self.cases.push(Case { name: name.to_string(), headers, request, now: Some(now), in_flight: 0, expect });
    }

    fn finish(self, description: &str) -> Vector {
        Vector {
            description: description.to_string(),
            policy: "policies/default.toml".to_string(),
            now: self.now,
            keys: self.keys.iter().map(KeyRecord::to_value).collect(),
            users: self.users.iter().map(|u| serde_json::to_value(u).unwrap_or_default()).collect(),
            tokens: self.tokens,
            cases: self.cases,
            management: self.management,
        }
    }
}

fn expect(
    allowed: bool,
    status: u16,
    code: Option<&str>,
    message: &str,
    key_id: Option<String>,
    rules: &[&str],
) -> Expect {
    Expect {
        allowed,
        status,
        code: code.map(str::to_string),
        message: message.to_string(),
        key_id,
        matched_rules: rules.iter().map(|s| s.to_string()).collect(),
        headers: BTreeMap::new(),
    }
}

fn ok(key: Option<String>) -> Expect {
    expect(true, 200, None, "OK", key, &["scope-grants-action"])
}

fn unauthorized() -> Expect {
    let mut e = expect(false, 401, Some("invalid_token"), "Invalid username/account key", None, &[]);
    e.headers.insert("WWW-Authenticate".into(), CHALLENGE_INVALID.into());
    e
}

fn missing() -> Expect {
    let mut e = expect(false, 401, None, "Authentication required", None, &[]);
    e.headers.insert("WWW-Authenticate".into(), CHALLENGE_MISSING.into());
    e
}

fn bad_request() -> Expect {
    expect(false, 400, Some("invalid_request"), "Invalid request", None, &[])
}

fn insufficient(key: Option<String>) -> Expect {
    expect(false, 403, Some("insufficient_scope"), "Forbidden", key, &[])
}

fn not_found(key: Option<String>) -> Expect {
    expect(false, 404, Some("not_found"), "Not found", key, &[])
}

fn busy(key: Option<String>) -> Expect {
    let mut e = expect(false, 429, Some("too_many_requests"), "Too many concurrent requests for this key", key, &[]);
    e.headers.insert("Retry-After".into(), "1".into());
    e
}

fn credentials() -> R<Vector> {
    let mut g = Gen::new(1)?;
    g.key("service", "integration", |_| {})?;
    let read = || Request::new("api.read").method("GET").path("/v1/data");
    let id = g.id("service");
    let t = g.t("service")?.clone();
    g.case("header pair (Finout: client id + secret key headers)", g.pair("service")?, read(), ok(id.clone()));
    g.case(
        "Basic with the token as user and an empty password (004)",
        g.basic(&t.token, Some("")),
        read(),
        ok(id.clone()),
    );
    g.case("Basic with the token as user and no password at all", g.basic(&t.token, None), read(), ok(id.clone()));
    g.case(
        "Basic with client id as user and secret as password",
        g.basic(&t.client_id, Some(&t.secret)),
        read(),
        ok(id.clone()),
    );
    g.case("Bearer (RFC 6750)", g.bearer("service")?, read(), ok(id.clone()));
    g.case(
        "scheme names are case-insensitive",
        vec![("authorization".into(), format!("bEaReR {}", t.token))],
        read(),
        ok(id.clone()),
    );
    g.case(
        "no credentials: 401 without an error code",
        vec![("Accept".into(), "application/json".into())],
        read(),
        missing(),
    );
    g.case(
        "an Authorization scheme keycel does not use counts as none",
        vec![("Authorization".into(), "Digest username=x".into())],
        read(),
        missing(),
    );
    let mut wrong = t.secret.clone();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    g.case(
        "a typo fails the checksum: same 401 as any bad key",
        g.basic(&format!("{}_{wrong}", t.client_id), Some("")),
        read(),
        unauthorized(),
    );
    g.case("garbage as Basic user", g.basic("hello", Some("")), read(), unauthorized());
    g.case("garbage Bearer", vec![("Authorization".into(), "Bearer not-a-key!".into())], read(), unauthorized());
    g.case("half a header pair", vec![("x-keycel-client-id".into(), t.client_id.clone())], read(), unauthorized());
    g.case(
        "oversized header refused before decoding",
        vec![("Authorization".into(), format!("Bearer {}", "a".repeat(4000)))],
        read(),
        unauthorized(),
    );
    g.case("Basic that is not base64: 400", vec![("Authorization".into(), "Basic %%%".into())], read(), bad_request());
    let mut both = g.bearer("service")?;
    both.extend(g.pair("service")?);
    g.case("two methods at once: 400 invalid_request", both, read(), bad_request());
    let mut twice = g.bearer("service")?;
    twice.extend(g.bearer("service")?);
    g.case("a repeated Authorization header: 400", twice, read(), bad_request());
    Ok(g.finish("Credential forms of the three seeds (Finout header pair, 004 Basic with empty or absent password, Bearer) and every malformed shape."))
}

fn secrets() -> R<Vector> {
    let mut g = Gen::new(2)?;
    g.key("live", "integration", |_| {})?;
    g.key("inactive", "integration", |r| r.active = false)?;
    let now = g.now;
    g.key("expiring", "integration", |r| r.expires_at = Some(now.plus(Duration::from_secs(3600))))?;
    // Rotated without grace: the stored hash is the new secret's; the old token is dead.
    let old = g.issue()?;
    let new_secret = TokenFormat::default().new_secret(&old.client_id, &mut g.rng).map_err(|e| e.to_string())?;
    let new_hash = g.hash.hash(new_secret.expose().as_bytes(), &mut g.rng).map_err(|e| e.to_string())?;
    let rotated = IssuedKey { client_id: old.client_id.clone(), secret: new_secret };
    g.remember("rotated_old", &old);
    g.remember("rotated_new", &rotated);
    let mut rec = KeyRecord {
        rotated_at: Some(now),
        version: 2,
        ..KeyRecord::new(old.client_id.clone(), "rotated", KeyKind::Api, "integration", new_hash.clone(), now)
    };
    g.keys.push(rec.clone());
    // Rotated with a one-hour grace: the previous secret still works until the deadline.
    let grace_old = g.issue()?;
    let grace_new = TokenFormat::default().new_secret(&grace_old.client_id, &mut g.rng).map_err(|e| e.to_string())?;
    rec.id = grace_old.client_id.clone();
    rec.name = "rotated with grace".into();
    rec.secret_hash = g.hash.hash(grace_new.expose().as_bytes(), &mut g.rng).map_err(|e| e.to_string())?;
    rec.previous_secret = Some(PreviousSecret {
        hash: g.hash.hash(grace_old.secret.expose().as_bytes(), &mut g.rng).map_err(|e| e.to_string())?,
        valid_until: now.plus(Duration::from_secs(3600)),
    });
    g.remember("grace_old", &grace_old);
    g.remember("grace_new", &IssuedKey { client_id: grace_old.client_id.clone(), secret: grace_new });
    g.keys.push(rec);
    let read = || Request::new("api.read");
    g.case("a live key", g.bearer("live")?, read(), ok(g.id("live")));
    g.case("an inactive key answers the same 401 (004: mark inactive)", g.bearer("inactive")?, read(), unauthorized());
    g.case("before expiry", g.bearer("expiring")?, read(), ok(g.id("expiring")));
    g.case_at("after expiry", g.bearer("expiring")?, read(), now.plus(Duration::from_secs(3601)), unauthorized());
    g.case("rotation: the new secret works", g.bearer("rotated_new")?, read(), ok(g.id("rotated_new")));
    g.case("rotation: the old secret is dead at once (Finta)", g.bearer("rotated_old")?, read(), unauthorized());
    g.case("grace rotation: the new secret works", g.bearer("grace_new")?, read(), ok(g.id("grace_new")));
    g.case(
        "grace rotation: the old secret works until the deadline",
        g.bearer("grace_old")?,
        read(),
        ok(g.id("grace_old")),
    );
    g.case_at(
        "grace rotation: and not after it",
        g.bearer("grace_old")?,
        read(),
        now.plus(Duration::from_secs(3601)),
        unauthorized(),
    );
    let unknown = g.issue()?;
    g.case(
        "an unknown client id with a valid checksum",
        vec![("Authorization".into(), format!("Bearer {}", unknown.token().expose()))],
        read(),
        unauthorized(),
    );
    Ok(g.finish("Secret and state checks: live, inactive, expired, rotated (old secret dead at once), rotation grace, unknown id. All failures are the same 401."))
}

fn scopes_and_accounts() -> R<Vector> {
    let mut g = Gen::new(3)?;
    g.key("admin", "admin", |_| {})?;
    g.key("reader", "reader", |_| {})?;
    g.key("reader_plus_write", "reader", |r| {
        r.scopes.insert("api.write".into());
    })?;
    g.key("scoped", "integration", |r| {
        r.accounts = AccountScope::parse_list("acc_1,acc_2").unwrap_or(AccountScope::All);
    })?;
    let a = g.id("admin");
    g.case(
        "admin on the Administration API (004)",
        g.bearer("admin")?,
        Request::new("admin.account.create").method("POST").path("/admin/accounts"),
        ok(a.clone()),
    );
    g.case(
        "admin scopes are not honoured outside the Administration API (004)",
        g.bearer("admin")?,
        Request::new("admin.account.create").method("POST").path("/v1/accounts"),
        expect(false, 403, Some("forbidden"), "Forbidden", a.clone(), &["admin-scopes-only-on-admin-api"]),
    );
    g.case("reader reads", g.bearer("reader")?, Request::new("api.read"), ok(g.id("reader")));
    let mut e = insufficient(g.id("reader"));
    e.headers.insert(
        "WWW-Authenticate".into(),
        "Bearer realm=\"keycel\", error=\"insufficient_scope\", scope=\"api.write\"".into(),
    );
    g.case("reader does not write: 403 insufficient_scope", g.bearer("reader")?, Request::new("api.write"), e);
    g.case(
        "an explicit scope adds to the role",
        g.bearer("reader_plus_write")?,
        Request::new("api.write"),
        ok(g.id("reader_plus_write")),
    );
    g.case(
        "account inside the key's scope (Finta)",
        g.bearer("scoped")?,
        Request::new("api.read").account("acc_2"),
        ok(g.id("scoped")),
    );
    g.case(
        "account outside the key's scope: 404 like a missing resource (Finta)",
        g.bearer("scoped")?,
        Request::new("api.read").account("acc_3"),
        not_found(g.id("scoped")),
    );
    g.case(
        "all accounts includes accounts created later (Finta)",
        g.bearer("reader")?,
        Request::new("api.read").account("acc_created_tomorrow"),
        ok(g.id("reader")),
    );
    g.case(
        "an action that is not a scope name: 400",
        g.bearer("reader")?,
        Request::new("not an action"),
        bad_request(),
    );
    Ok(g.finish("Scopes, roles and account scope: 004's admin-API rule, insufficient scope, Finta's 404 for out-of-scope accounts."))
}

fn personal_tokens() -> R<Vector> {
    let mut g = Gen::new(4)?;
    g.user("alice", &["editor"], AccountScope::parse_list("acc_1").map_err(|e| e.to_string())?)?;
    g.user("bob", &["viewer"], AccountScope::All)?;
    g.key("alice_token", "editor", |r| r.kind = KeyKind::Personal { user: "alice".into() })?;
    g.key("bob_token", "editor", |r| r.kind = KeyKind::Personal { user: "bob".into() })?;
    g.key("orphan_token", "editor", |r| r.kind = KeyKind::Personal { user: "carol".into() })?;
    g.case(
        "personal token within its user's access",
        g.bearer("alice_token")?,
        Request::new("api.write").account("acc_1"),
        ok(g.id("alice_token")),
    );
    g.case(
        "capped by the user's data access (Finout)",
        g.bearer("alice_token")?,
        Request::new("api.write").account("acc_2"),
        not_found(g.id("alice_token")),
    );
    g.case(
        "capped by the user's current roles (Finout)",
        g.bearer("bob_token")?,
        Request::new("api.write"),
        insufficient(g.id("bob_token")),
    );
    g.case(
        "the user's current roles still grant what they grant",
        g.bearer("bob_token")?,
        Request::new("api.read"),
        ok(g.id("bob_token")),
    );
    g.case(
        "a removed user's token is dead (Finout)",
        g.bearer("orphan_token")?,
        Request::new("api.read"),
        unauthorized(),
    );
    Ok(g.finish(
        "Finout personal tokens: capped by the user's current roles and data access; dead once the user is removed.",
    ))
}

fn concurrency() -> R<Vector> {
    let mut g = Gen::new(5)?;
    g.key("service", "integration", |_| {})?;
    g.key("narrow", "integration", |r| r.max_concurrent = Some(2))?;
    let read = || Request::new("api.read");
    let mut c = Case {
        name: "five in flight, the fifth is fine".into(),
        headers: g.bearer("service")?,
        request: read(),
        now: None,
        in_flight: 4,
        expect: ok(g.id("service")),
    };
    g.cases.push(c.clone());
    c.name = "the sixth concurrent request gets 429 (Finout: five per key)".into();
    c.in_flight = 5;
    c.expect = busy(g.id("service"));
    g.cases.push(c.clone());
    c.name = "a key's own limit".into();
    c.headers = g.bearer("narrow")?;
    c.in_flight = 2;
    c.expect = busy(g.id("narrow"));
    g.cases.push(c.clone());
    c.name = "leases are released after each case".into();
    c.in_flight = 0;
    c.expect = ok(g.id("narrow"));
    g.cases.push(c);
    Ok(g.finish("In-flight limits: default 5 per key (Finout), per-key override, 429 with Retry-After; denied requests take no lease."))
}

fn rate_limited(key: Option<String>, retry_after: &str, rate_limit: &str) -> Expect {
    let mut e = expect(false, 429, Some("rate_limited"), "Rate limit exceeded for this key", key, &[]);
    e.headers.insert("Retry-After".into(), retry_after.into());
    e.headers.insert("RateLimit".into(), rate_limit.into());
    e
}

/// Issue 13: rate limits (GCRA) and usage credits, decided alike in every binding. Cases run
/// in order against one engine: each admitted request counts.
fn budgets() -> R<Vector> {
    let mut g = Gen::new(12)?;
    let set_at = g.now;
    g.key("limited", "integration", |r| {
        r.rate_limit = keycel::budget::RateLimit::new(2, Duration::from_secs(60), 2).ok();
    })?;
    g.key("metered", "integration", |r| {
        r.credits = Some(keycel::budget::CreditGrant { remaining: 2, refill: None, set_at });
    })?;
    g.key("refilled", "integration", |r| {
        r.credits = Some(keycel::budget::CreditGrant {
            remaining: 1,
            refill: Some(keycel::budget::Refill { amount: 1, interval: Duration::from_secs(3600) }),
            set_at,
        });
    })?;
    g.key("both", "integration", |r| {
        r.rate_limit = keycel::budget::RateLimit::new(1, Duration::from_secs(60), 1).ok();
        r.credits = Some(keycel::budget::CreditGrant { remaining: 5, refill: None, set_at });
    })?;
    let read = || Request::new("api.read");
    let with = |mut e: Expect, policy: &str, rate: &str| {
        e.headers.insert("RateLimit-Policy".into(), policy.into());
        e.headers.insert("RateLimit".into(), rate.into());
        e
    };
    let policy = "\"default\";q=2;w=60";
    g.case(
        "a rate-limited key's first request carries RateLimit",
        g.bearer("limited")?,
        read(),
        with(ok(g.id("limited")), policy, "\"default\";r=1;t=30"),
    );
    g.case(
        "the burst's second request",
        g.bearer("limited")?,
        read(),
        with(ok(g.id("limited")), policy, "\"default\";r=0;t=60"),
    );
    let mut refused = rate_limited(g.id("limited"), "30", "\"default\";r=0;t=60");
    refused.headers.insert("RateLimit-Policy".into(), policy.into());
    g.case(
        "past the burst: 429 rate_limited with Retry-After and the IETF fields",
        g.bearer("limited")?,
        read(),
        refused,
    );
    let later = g.now.plus(Duration::from_secs(30));
    g.case_at(
        "one emission interval later",
        g.bearer("limited")?,
        read(),
        later,
        with(ok(g.id("limited")), policy, "\"default\";r=0;t=60"),
    );
    g.case("credits: the first of two", g.bearer("metered")?, read(), ok(g.id("metered")));
    g.case("credits: the second of two", g.bearer("metered")?, read(), ok(g.id("metered")));
    let exhausted =
        expect(false, 429, Some("usage_exceeded"), "Usage credits exhausted for this key", g.id("metered"), &[]);
    g.case("credits spent: 429 usage_exceeded", g.bearer("metered")?, read(), exhausted);
    g.case("refilled credits: the first period's one", g.bearer("refilled")?, read(), ok(g.id("refilled")));
    let mut wait =
        expect(false, 429, Some("usage_exceeded"), "Usage credits exhausted for this key", g.id("refilled"), &[]);
    wait.headers.insert("Retry-After".into(), "3600".into());
    g.case("spent until the refill: Retry-After at the boundary", g.bearer("refilled")?, read(), wait);
    let next = g.now.plus(Duration::from_secs(3600));
    g.case_at("the refill boundary gives amount again", g.bearer("refilled")?, read(), next, ok(g.id("refilled")));
    let c = Case {
        name: "rate and credits together: the held request counted, the next is rate-limited".into(),
        headers: g.bearer("both")?,
        request: read(),
        now: None,
        in_flight: 1,
        expect: rate_limited(g.id("both"), "60", "\"default\";r=0;t=60"),
    };
    g.cases.push(c);
    for (i, secs) in [60, 120, 180, 240].into_iter().enumerate() {
        let name = format!("one per minute after the refusal ({} of the four credits left)", i + 1);
        g.case_at(&name, g.bearer("both")?, read(), g.now.plus(Duration::from_secs(secs)), ok(g.id("both")));
    }
    let both = g.id("both");
    let out = || expect(false, 429, Some("usage_exceeded"), "Usage credits exhausted for this key", both.clone(), &[]);
    let end = g.now.plus(Duration::from_secs(300));
    g.case_at(
        "all five credits spent (the rate refusal spent none): usage_exceeded",
        g.bearer("both")?,
        read(),
        end,
        out(),
    );
    g.case_at(
        "a credit refusal took no rate: usage_exceeded again, not rate_limited",
        g.bearer("both")?,
        read(),
        end,
        out(),
    );
    Ok(g.finish("Issue 13 budgets: GCRA rate limit with burst (429 rate_limited, Retry-After, RateLimit-Policy/RateLimit), usage credits with refill (429 usage_exceeded); a refusal consumes nothing."))
}

/// Records in every shape the public form must carry (or drop): API and personal, some and
/// all accounts, expiry, rotation grace (the previous hash), limits, metadata, inactive.
fn record_forms() -> R<RecordForms> {
    let mut g = Gen::new(11)?;
    let later = g.now.plus(Duration::from_secs(90 * 86_400));
    g.key("api-all", "integration", |_| {})?;
    g.key("personal-scoped", "viewer", |r| {
        r.kind = KeyKind::Personal { user: "u_alice".into() };
        r.accounts = AccountScope::Only(["acc_1".to_string(), "acc_2".to_string()].into_iter().collect());
        r.expires_at = Some(later);
        r.max_concurrent = Some(3);
        r.metadata = [("team".to_string(), "finance".to_string())].into_iter().collect();
        r.scopes = ["api.write".to_string()].into_iter().collect();
    })?;
    let old = g.hash.hash(b"the secret before rotation", &mut g.rng).map_err(|e| e.to_string())?;
    let now = g.now;
    g.key("rotated-inactive", "reader", |r| {
        r.description = "mid-rotation, switched off".into();
        r.previous_secret = Some(PreviousSecret { hash: old, valid_until: now.plus(Duration::from_secs(3600)) });
        r.rotated_at = Some(now);
        r.active = false;
        r.version = 4;
    })?;
    let cases = g
        .keys
        .iter()
        .map(|r| RecordFormCase { name: r.name.clone(), storage: r.to_storage_value(), public: r.to_public_value() })
        .collect();
    Ok(RecordForms {
        description: "A key record as stored (with its argon2id hashes) and the public form every runtime's \
            to_dict() / toJSON() / CLI shows for it: every field but the hashes."
            .to_string(),
        cases,
    })
}

/// A management case: `actor` does `op` on `target` (a label) or creates `key`.
fn mgmt(
    name: &str,
    actor: &str,
    op: &str,
    target: Option<&str>,
    key: Option<NewKeySpec>,
    change: Option<serde_json::Value>,
    expect: ManagementExpect,
) -> ManagementCase {
    ManagementCase {
        name: name.to_string(),
        actor: actor.to_string(),
        op: op.to_string(),
        target: target.map(str::to_string),
        key,
        change,
        now: None,
        expect,
    }
}

fn done() -> ManagementExpect {
    ManagementExpect { ok: true, error: None, status: None, code: None }
}

fn refused(status: u16, code: &str) -> ManagementExpect {
    ManagementExpect { ok: false, error: Some("denied".into()), status: Some(status), code: Some(code.into()) }
}

fn hidden() -> ManagementExpect {
    ManagementExpect { ok: false, error: Some("not_found".into()), status: None, code: None }
}

fn spec(kind: &str, user: Option<&str>, role: &str, accounts: AccountScope) -> NewKeySpec {
    NewKeySpec {
        kind: kind.into(),
        user: user.map(str::to_string),
        role: role.into(),
        scopes: Vec::new(),
        accounts,
        expires_in: None,
        max_concurrent: None,
    }
}

/// Issue 11: delegated management never escalates; the attacks from the issue, each refused.
fn delegation() -> R<Vector> {
    let mut g = Gen::new(6)?;
    let acc = |l: &str| AccountScope::parse_list(l).map_err(|e| e.to_string());
    let acc1 = acc("acc_1")?;
    let now = g.now;
    g.user("val", &["viewer"], AccountScope::All)?;
    g.user("root", &["admin", "reader"], AccountScope::All)?;
    let a1 = acc1.clone();
    g.key("admin_acc1", "admin", |r| r.accounts = a1)?;
    g.key("admin_all", "admin", |_| {})?;
    g.key("tight_admin", "admin", |r| r.max_concurrent = Some(1))?;
    g.key("manager", "reader", |r| {
        r.scopes = ["keys.create", "keys.update", "keys.manage_all"].iter().map(|s| s.to_string()).collect()
    })?;
    let a2 = acc("acc_2")?;
    g.key("other_acc2", "reader", |r| r.accounts = a2)?;
    let a1 = acc1.clone();
    g.key("mine_acc1", "reader", |r| r.accounts = a1)?;
    g.key("viewer_short", "viewer", |r| {
        r.kind = KeyKind::Personal { user: "val".into() };
        r.expires_at = Some(now.plus(Duration::from_secs(3600)));
    })?;
    g.key("inactive_admin", "admin", |r| r.active = false)?;
    let day_ago = Timestamp::from_unix(now.unix() - 86_400).ok_or("time")?;
    g.key("expired_admin", "admin", |r| {
        r.created_at = day_ago;
        r.updated_at = day_ago;
        r.expires_at = Some(Timestamp::from_unix(now.unix() - 60).unwrap_or(day_ago));
    })?;
    g.key("orphan_admin", "admin", |r| r.kind = KeyKind::Personal { user: "ghost".into() })?;

    let admin_path =
        expect(false, 403, Some("forbidden"), "Forbidden", g.id("admin_all"), &["admin-scopes-only-on-admin-api"]);
    g.case(
        "an omitted path does not widen admin scopes",
        g.bearer("admin_all")?,
        Request::new("admin.account.create").method("POST"),
        admin_path,
    );
    g.case(
        "admin scopes on the admin API",
        g.bearer("admin_all")?,
        Request::new("admin.account.create").method("POST").path("/admin/accounts"),
        ok(g.id("admin_all")),
    );
    g.cases.push(Case {
        name: "management checks take no data-plane slot (max_concurrent 1, 3 held)".into(),
        headers: g.bearer("tight_admin")?,
        request: Request::new("keys.create.api"),
        now: None,
        in_flight: 3,
        expect: ok(g.id("tight_admin")),
    });

    let role = |r: &str| Some(serde_json::json!({ "role": r }));
    let m = &mut g.management;
    m.push(mgmt(
        "self-promotion to admin",
        "manager",
        "update",
        Some("manager"),
        None,
        role("admin"),
        refused(403, "insufficient_scope"),
    ));
    m.push(mgmt(
        "self scopes admin.*",
        "manager",
        "update",
        Some("manager"),
        None,
        Some(serde_json::json!({ "scopes": ["admin.*", "keys.*", "users.*"] })),
        refused(403, "insufficient_scope"),
    ));
    m.push(mgmt(
        "account-limited admin creates an all-accounts key",
        "admin_acc1",
        "create",
        None,
        Some(spec("api", None, "reader", AccountScope::All)),
        None,
        refused(403, "exceeds_actor"),
    ));
    m.push(mgmt(
        "account-limited admin creates a key inside its accounts",
        "admin_acc1",
        "create",
        None,
        Some(spec("api", None, "reader", acc1.clone())),
        None,
        done(),
    ));
    m.push(mgmt(
        "account-limited admin widens itself to all",
        "admin_acc1",
        "update",
        Some("admin_acc1"),
        None,
        Some(serde_json::json!({ "accounts": "all" })),
        refused(403, "exceeds_actor"),
    ));
    for op in ["rotate", "delete", "get"] {
        m.push(mgmt(
            &format!("account-limited admin {op}s another account's key: like a missing key"),
            "admin_acc1",
            op,
            Some("other_acc2"),
            None,
            None,
            hidden(),
        ));
    }
    m.push(mgmt(
        "account-limited admin deactivates another account's key: like a missing key",
        "admin_acc1",
        "set_active",
        Some("other_acc2"),
        None,
        Some(serde_json::json!({ "active": false })),
        hidden(),
    ));
    m.push(mgmt(
        "account-limited admin rotates its own account's key",
        "admin_acc1",
        "rotate",
        Some("mine_acc1"),
        None,
        None,
        done(),
    ));
    let mut wild = spec("personal", Some("root"), "reader", AccountScope::All);
    wild.scopes = vec!["keys.create.*".into()];
    m.push(mgmt(
        "keys.create does not mint keys.create.*",
        "manager",
        "create",
        None,
        Some(wild),
        None,
        refused(403, "insufficient_scope"),
    ));
    let forever = spec("personal", Some("val"), "viewer", AccountScope::All);
    m.push(mgmt(
        "a 1 h token mints a permanent one",
        "viewer_short",
        "create",
        None,
        Some(forever.clone()),
        None,
        refused(403, "exceeds_actor"),
    ));
    let mut shorter = forever;
    shorter.expires_in = Some(1800);
    m.push(mgmt("a 1 h token mints a 30 min one", "viewer_short", "create", None, Some(shorter), None, done()));
    let reader = spec("api", None, "reader", AccountScope::All);
    for stale in ["inactive_admin", "expired_admin", "orphan_admin"] {
        m.push(mgmt(
            &format!("stale actor {stale}"),
            stale,
            "create",
            None,
            Some(reader.clone()),
            None,
            refused(401, "invalid_token"),
        ));
    }
    let mut loose = reader.clone();
    loose.max_concurrent = Some(2);
    m.push(mgmt(
        "a key looser than its actor's limit",
        "tight_admin",
        "create",
        None,
        Some(loose),
        None,
        refused(403, "exceeds_actor"),
    ));
    m.push(mgmt(
        "an admin for all accounts creates an all-accounts key",
        "admin_all",
        "create",
        None,
        Some(reader.clone()),
        None,
        done(),
    ));
    m.push(mgmt(
        "the operator is unrestricted",
        "operator",
        "create",
        None,
        Some(spec("api", None, "admin", AccountScope::All)),
        None,
        done(),
    ));
    Ok(g.finish("Issue 11: delegated key management never escalates (management cases run through every keyring)."))
}

/// Budget inputs as users send them, with the record form or field-named error each must
/// give (stated here; checked through core's parser before writing).
fn budget_forms() -> BudgetForms {
    use serde_json::json;
    const NOW: &str = "2026-11-23T12:00:00Z";
    let ok = |name: &str, input: serde_json::Value, expect: serde_json::Value| BudgetFormCase {
        name: name.to_string(),
        input,
        expect,
    };
    let bad = |name: &str, input: serde_json::Value, field: &str| BudgetFormCase {
        name: name.to_string(),
        input,
        expect: json!({ "error": { "code": "invalid_record", "field": field } }),
    };
    let cases = vec![
        ok(
            "rate limit with burst",
            json!({"rate_limit": {"limit": 100, "per": "1m", "burst": 20}}),
            json!({"rate_limit": {"limit": 100, "per": "1m", "burst": 20}}),
        ),
        ok(
            "burst defaults to 0",
            json!({"rate_limit": {"limit": 5, "per": "10s"}}),
            json!({"rate_limit": {"limit": 5, "per": "10s", "burst": 0}}),
        ),
        ok(
            "the window is shown in its largest whole unit",
            json!({"rate_limit": {"limit": 5, "per": "120s"}}),
            json!({"rate_limit": {"limit": 5, "per": "2m", "burst": 0}}),
        ),
        bad("limit 0", json!({"rate_limit": {"limit": 0, "per": "1m"}}), "rate_limit.limit"),
        bad("limit as a string", json!({"rate_limit": {"limit": "5", "per": "1m"}}), "rate_limit.limit"),
        bad("limit not whole", json!({"rate_limit": {"limit": 2.5, "per": "1m"}}), "rate_limit.limit"),
        bad("window missing", json!({"rate_limit": {"limit": 5}}), "rate_limit.per"),
        bad("window unreadable", json!({"rate_limit": {"limit": 5, "per": "soon"}}), "rate_limit.per"),
        bad("negative burst", json!({"rate_limit": {"limit": 5, "per": "1m", "burst": -1}}), "rate_limit.burst"),
        bad("unknown field", json!({"rate_limit": {"limit": 5, "per": "1m", "brust": 1}}), "rate_limit.brust"),
        bad("not an object", json!({"rate_limit": [100, "1m"]}), "rate_limit"),
        ok(
            "credits as a bare count",
            json!({"credits": 1000}),
            json!({"credits": {"remaining": 1000, "refill": null, "set_at": NOW}}),
        ),
        ok(
            "credits without refill",
            json!({"credits": {"remaining": 3}}),
            json!({"credits": {"remaining": 3, "refill": null, "set_at": NOW}}),
        ),
        ok(
            "credits with a refill",
            json!({"credits": {"remaining": 10000, "refill": {"amount": 500, "interval": "86400s"}}}),
            json!({"credits": {"remaining": 10000, "refill": {"amount": 500, "interval": "1d"}, "set_at": NOW}}),
        ),
        ok(
            "zero credits",
            json!({"credits": {"remaining": 0, "refill": null}}),
            json!({"credits": {"remaining": 0, "refill": null, "set_at": NOW}}),
        ),
        bad("negative count", json!({"credits": -1}), "credits.remaining"),
        bad("negative remaining", json!({"credits": {"remaining": -1}}), "credits.remaining"),
        bad(
            "refill of nothing",
            json!({"credits": {"remaining": 5, "refill": {"amount": 0, "interval": "1d"}}}),
            "credits.refill.amount",
        ),
        bad(
            "refill without interval",
            json!({"credits": {"remaining": 5, "refill": {"amount": 3}}}),
            "credits.refill.interval",
        ),
        bad("unknown credits field", json!({"credits": {"left": 5}}), "credits.left"),
        bad("credits as text", json!({"credits": "lots"}), "credits"),
    ];
    BudgetForms {
        description: "Issue 13: the budget input shapes (rate_limit, credits) as the management API, Python's \
            Keyring.create(rate_limit=, credits=) and the JS key spec (rateLimit, credits) take them, and the \
            record form each becomes or the field-named invalid_record error it gets, in every runtime."
            .to_string(),
        now: NOW.to_string(),
        cases,
    }
}

fn main() -> Result<(), String> {
    let budget_inputs = budget_forms();
    let failures = check_budget_forms(&budget_inputs);
    if !failures.is_empty() {
        return Err(format!("budget forms:\n{}", failures.join("\n")));
    }
    let json = serde_json::to_string_pretty(&budget_inputs).map_err(|e| e.to_string())?;
    std::fs::write(budget_forms_path(), json + "\n").map_err(|e| e.to_string())?;
    println!("tests/vectors/forms/budgets.json: {} cases", budget_inputs.cases.len());
    let forms = record_forms()?;
    let failures = check_record_forms(&forms);
    if !failures.is_empty() {
        return Err(format!("record forms:\n{}", failures.join("\n")));
    }
    let path = record_forms_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let json = serde_json::to_string_pretty(&forms).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| e.to_string())?;
    println!("tests/vectors/forms/records.json: {} cases", forms.cases.len());
    let dir = repo_root().join("tests/vectors");
    let all = [
        ("credentials", credentials()?),
        ("secrets_and_state", secrets()?),
        ("scopes_and_accounts", scopes_and_accounts()?),
        ("personal_tokens", personal_tokens()?),
        ("concurrency", concurrency()?),
        ("delegation", delegation()?),
        ("budgets", budgets()?),
    ];
    for (name, v) in &all {
        let (n, failures) = run(v)?;
        if !failures.is_empty() {
            return Err(format!("{name}: the engine disagrees with the stated expectations:\n{}", failures.join("\n")));
        }
        let json = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{name}.json")), json + "\n").map_err(|e| e.to_string())?;
        println!("tests/vectors/{name}.json: {n} cases");
    }
    Ok(())
}
