//! The engine: credentials → lookup → authentication → account scope → rules → lease.
//!
//! Order, fixed: authentication (401) → account scope (404, byte-identical to a missing
//! resource) → forbid rules (403) → allow rules → default deny (403) → admission (429; 503 when
//! a shared backend is unreachable and fails closed). A denied request never takes a lease nor
//! reaches an admission backend. Every outcome is a [`Decision`]; a rule whose
//! evaluation fails denies and says why (fail closed).
//!
//! Compile once, evaluate many: the engine holds the compiled rules and one root CEL context
//! with keycel's functions; a request only adds a resolver over the borrowed records.

use crate::admission::{Admission, Lease, LocalAdmission, RateLimit, Ticket};
use crate::auth::{AuthConfig, AuthFailure, AuthStep, Authenticated, Authenticator};
use crate::credentials::Credentials;
use crate::decision::{codes, Decision, Messages};
use crate::hash::{HashParams, HashPolicy};
use crate::keyring::is_management_action;
use crate::limiter::{Limiter, LimiterConfig};
use crate::policy::facts::Facts;
use crate::policy::{functions, Effect, Native, PolicyError, PolicySet, Rule};
use crate::record::{KeyKind, KeyRecord, UserRecord};
use crate::rehash::{PendingRehash, RehashClaims};
use crate::store::{Store, StoreError};
use crate::throttle::{FailureBudget, LocalBudget, ThrottleConfig};
use crate::time::{Duration, Timestamp};
use crate::token::TokenFormat;
use std::fmt;
use std::sync::Arc;

mod management;

pub use crate::request::Request;
pub use crate::step::{PendingAuth, Step};

/// Where the engine finds records during `authorize`. Every [`Store`] is one. Records come
/// back shared, so a store that keeps them in memory costs a reference count per request.
pub trait Lookup {
    /// The key with this client id.
    fn key(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError>;
    /// The user with this id.
    fn user(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError>;
}

impl<T: Store + ?Sized> Lookup for T {
    fn key(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.get_key_shared(id)
    }
    fn user(&self, id: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        self.get_user_shared(id)
    }
}

/// The result of `authorize`: the decision, and when allowed the lease to hold while the
/// request runs (dropping it releases the slot).
#[derive(Debug)]
pub struct Authorization {
    /// The decision.
    pub decision: Decision,
    /// Held while the request runs; `Some` only when allowed.
    pub lease: Option<Lease>,
    /// The key record, when authentication succeeded.
    pub key: Option<Arc<KeyRecord>>,
    /// The user, for personal tokens.
    pub user: Option<Arc<UserRecord>>,
    /// Authentication details (`needs_rehash`, `cache_hit`, method).
    pub authenticated: Option<Authenticated>,
    /// With [`Engine::rehash_on_use`]: the hash upgrade to run after the response, the first
    /// time a key authenticates with outdated argon2 parameters.
    pub rehash: Option<PendingRehash>,
}

impl Authorization {
    pub(crate) fn denied(decision: Decision) -> Self {
        Authorization { decision, lease: None, key: None, user: None, authenticated: None, rehash: None }
    }
}

/// Failed to build an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The policy is invalid.
    Policy(PolicyError),
    /// The configuration is invalid (hash parameters, CEL function registration).
    Config(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Policy(e) => e.fmt(f),
            EngineError::Config(e) => write!(f, "invalid engine configuration: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<PolicyError> for EngineError {
    fn from(e: PolicyError) -> Self {
        EngineError::Policy(e)
    }
}

/// Compiled policy plus authentication and leases. `Send + Sync`; share one per process.
pub struct Engine {
    policy: PolicySet,
    root: cel::Context<'static, 'static>,
    pub(crate) auth: Authenticator,
    limiter: Limiter,
    /// The limit for keys without their own `max_concurrent` (what `authority` reports).
    default_max_concurrent: u32,
    pub(crate) budget: Arc<dyn FailureBudget>,
    /// `[defaults.throttle]`: what a shared admission's failure budgets are built with.
    throttle: ThrottleConfig,
    pub(crate) rehash: Option<Arc<RehashClaims>>,
    /// Where budgets are counted; process-local (over `limiter`) unless the host chose one.
    admission: Arc<dyn Admission>,
    /// `[defaults.rate_limit]`: for keys without their own.
    default_rate_limit: Option<RateLimit>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("policy", &self.policy.origin())
            .field("auth", &self.auth)
            .field("admission", &self.admission.name())
            .finish_non_exhaustive()
    }
}

/// The authentication settings a policy's `[defaults]` imply.
pub fn auth_config_for(policy: &PolicySet) -> Result<AuthConfig, EngineError> {
    let d = &policy.document().defaults;
    let mut cfg = AuthConfig::default();
    if let Some(m) = &d.messages {
        cfg.messages = m.clone();
    }
    if let Some(c) = &d.credentials {
        cfg.credentials = c.clone();
    }
    if let Some(p) = &d.token_prefix {
        cfg.format = TokenFormat::with_prefix(p).map_err(|e| EngineError::Config(e.to_string()))?;
    }
    if let Some(h) = &d.hash {
        let params = HashParams::preset(h).ok_or_else(|| EngineError::Config(format!("unknown hash preset {h:?}")))?;
        cfg.hash = HashPolicy { params, ..HashPolicy::default() };
    }
    if let Some(l) = &d.expiry_leeway {
        cfg.expiry_leeway = Duration::parse(l).map_err(|e| EngineError::Config(e.to_string()))?;
    }
    Ok(cfg)
}

/// The failed-authentication budgets a policy's `[defaults.throttle]` implies.
pub fn throttle_config_for(policy: &PolicySet) -> Result<ThrottleConfig, EngineError> {
    match &policy.document().defaults.throttle {
        Some(t) => ThrottleConfig::from_doc(t).map_err(EngineError::Config),
        None => Ok(ThrottleConfig::default()),
    }
}

/// The limiter settings a policy's `[defaults]` imply.
pub fn limiter_config_for(policy: &PolicySet) -> Result<LimiterConfig, EngineError> {
    let d = &policy.document().defaults;
    let mut cfg = LimiterConfig::default();
    if let Some(n) = d.max_concurrent {
        if n == 0 {
            return Err(EngineError::Config("defaults.max_concurrent must be at least 1".into()));
        }
        cfg.default_limit = n;
    }
    if let Some(t) = &d.lease_ttl {
        cfg.lease_ttl = Duration::parse(t).map_err(|e| EngineError::Config(e.to_string()))?;
    }
    if let Some(r) = d.retry_after {
        cfg.retry_after_secs = r;
    }
    Ok(cfg)
}

impl Engine {
    /// An engine with the settings the policy's `[defaults]` imply.
    pub fn new(policy: PolicySet) -> Result<Self, EngineError> {
        let auth = auth_config_for(&policy)?;
        Self::with_config(policy, auth, None)
    }

    /// An engine with explicit authentication (and optionally limiter) settings.
    pub fn with_config(
        policy: PolicySet,
        auth: AuthConfig,
        limiter: Option<LimiterConfig>,
    ) -> Result<Self, EngineError> {
        let limiter = match limiter {
            Some(l) => l,
            None => limiter_config_for(&policy)?,
        };
        auth.credentials.validate().map_err(|e| EngineError::Config(e.to_string()))?;
        let root = functions::root_context().map_err(|e| EngineError::Config(e.to_string()))?;
        let auth = Authenticator::new(auth).map_err(|e| EngineError::Config(e.to_string()))?;
        let default_max_concurrent = limiter.default_limit;
        let throttle = throttle_config_for(&policy)?;
        let budget = Arc::new(LocalBudget::new(throttle.clone()));
        let limiter = Limiter::new(limiter);
        let admission: Arc<dyn Admission> = Arc::new(LocalAdmission::over(limiter.clone()));
        let default_rate_limit = policy.document().defaults.rate_limit;
        if let Some(r) = &default_rate_limit {
            r.validate().map_err(|e| EngineError::Config(format!("defaults.{e}")))?;
        }
        Ok(Engine {
            policy,
            root,
            auth,
            limiter,
            default_max_concurrent,
            budget,
            throttle,
            rehash: None,
            admission,
            default_rate_limit,
        })
    }

    /// Keeps failed-authentication budgets elsewhere (e.g. a store shared by every process
    /// of a deployment) instead of this process's [`LocalBudget`].
    pub fn with_failure_budget(mut self, budget: Arc<dyn FailureBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Where failed-authentication budgets are kept.
    pub fn failure_budget(&self) -> &Arc<dyn FailureBudget> {
        &self.budget
    }

    /// Counts budgets in `admission` instead of this process's memory (e.g. a
    /// [`crate::admission::SqliteAdmission`] shared by a machine's worker processes). A
    /// shared backend also keeps the failed-authentication budgets (`[defaults.throttle]`),
    /// so a client's failures count once across every process sharing it
    /// ([`Admission::failure_budget`]); [`Engine::with_failure_budget`] afterwards overrides.
    #[must_use]
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        if let Some(budget) = admission.failure_budget(&self.throttle) {
            self.budget = budget;
        }
        self.admission = admission;
        self
    }

    /// Where budgets are counted.
    pub fn admission(&self) -> &Arc<dyn Admission> {
        &self.admission
    }

    /// Credits a key has left at `now`, as this engine's admission counts them (process-local,
    /// SQLite or Redis); `None` for an unmetered key. What a binding's `usage` reads.
    pub fn credits_left(
        &self,
        record: &KeyRecord,
        now: crate::time::Timestamp,
    ) -> Result<Option<u64>, crate::admission::AdmissionError> {
        record.credits.as_ref().map(|g| self.admission.usage(record.id.as_str(), g, now)).transpose()
    }

    /// The default policy with default settings.
    pub fn default_policy() -> Result<Self, EngineError> {
        Self::new(PolicySet::default_policy()?)
    }

    /// Re-hash on use (off by default): a successful authentication against a hash made with
    /// other argon2 parameters than configured hands back [`Authorization::rehash`], at most
    /// one pending per key (see [`crate::rehash`]).
    pub fn rehash_on_use(mut self, on: bool) -> Self {
        self.rehash = on.then(Arc::default);
        self
    }

    /// True when [`Engine::rehash_on_use`] is on.
    pub fn rehashes_on_use(&self) -> bool {
        self.rehash.is_some()
    }

    /// The rate limit for keys without their own (`[defaults.rate_limit]`).
    pub fn default_rate_limit(&self) -> Option<RateLimit> {
        self.default_rate_limit
    }

    /// The admission ticket of an allowed request: the key's effective budget and the cost.
    pub fn ticket<'a>(&self, record: &'a KeyRecord, request: &Request) -> Ticket<'a> {
        Ticket {
            key_id: record.id.as_str(),
            max_concurrent: record.max_concurrent,
            rate: record.rate_limit.or(self.default_rate_limit),
            credits: record.credits,
            cost: request.effective_cost(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &PolicySet {
        &self.policy
    }

    /// The authenticator (credential parsing, verified-secret cache).
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// This process's lease counters (the default admission's; a shared admission keeps its own).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Client-facing texts.
    pub fn messages(&self) -> &Messages {
        &self.auth.config().messages
    }

    /// The whole pipeline for a host: headers → credentials → lookup → authenticate → decide
    /// → lease. A lookup failure answers 503 (fail closed). [`Engine::authorize_step`] then,
    /// when argon2 is needed, [`PendingAuth::finish`].
    pub fn authorize<I, N, V>(
        &self,
        headers: I,
        request: &Request,
        lookup: &dyn Lookup,
        now: Timestamp,
    ) -> Authorization
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        match self.authorize_step(headers, request, lookup, now) {
            Step::Decided(a) => a,
            Step::NeedsHash(pending) => pending.finish(self, now),
        }
    }

    /// For hosts that fetched the record (and user) themselves, e.g. an edge worker reading
    /// KV asynchronously between [`Authenticator::credentials`] and this call. Failure
    /// budgets apply as in [`Engine::authorize`].
    pub fn authorize_credentials(
        &self,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        request: &Request,
        now: Timestamp,
    ) -> Authorization {
        match self.auth.begin(creds, record, user, now) {
            AuthStep::Done(a) => self.admit(creds, record, user, request, Ok(a), now),
            AuthStep::Hash(work) => {
                let charges = match self.charge(creds, &work, request, now, crate::step::Wait::Yes) {
                    Ok(c) => c,
                    Err(t) => return Authorization::denied(t.decision(self.messages())),
                };
                let result = self.auth.complete(&work, creds, record, user, now);
                charges.settle(&result, now);
                self.admit(creds, record, user, request, result, now)
            }
        }
    }

    /// After authentication: the decision, and the lease when allowed.
    pub(crate) fn admit(
        &self,
        creds: &Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        request: &Request,
        authenticated: Result<Authenticated, AuthFailure>,
        now: Timestamp,
    ) -> Authorization {
        let authenticated = match authenticated {
            Ok(a) => a,
            Err(f) => return Authorization::denied(f.decision(self.messages())),
        };
        let Some(record) = record else {
            return Authorization::denied(Decision::unauthorized(self.messages(), "no record"));
        };
        let decision = self.decide(record, user, request, now);
        let rehash = match &self.rehash {
            Some(claims) if authenticated.needs_rehash && !authenticated.via_previous_secret => {
                PendingRehash::claim(claims, record, creds.secret(), self.auth.config().hash)
            }
            _ => None,
        };
        let mut out =
            Authorization { decision, lease: None, key: None, user: None, authenticated: Some(authenticated), rehash };
        // A management check (the host asking before a keyring call) takes no data-plane slot:
        // management has its own bounds (the argon2 gate, the per-user token cap).
        if out.decision.allowed && !is_management_action(&request.action) {
            let ticket = self.ticket(record, request);
            match self.admission.admit(&ticket, now) {
                Ok(lease) => {
                    // Metered keys: the allowed decision carries `RateLimit-Policy`/`RateLimit`
                    // (hosts choose whether to send them on success).
                    if let Some(b) = lease.budget() {
                        out.decision.headers.extend(b.headers());
                    }
                    if let Some(backend) = lease.fallback_from() {
                        out.decision
                            .reason
                            .push_str(&format!("; {backend} admission unreachable: counted in this process only"));
                    }
                    out.lease = Some(lease)
                }
                Err(refusal) => out.decision = refusal.decision(self.messages(), record.id.as_str()),
            }
        }
        out
    }

    /// Policy only (no authentication, no lease): account scope, forbid rules, allow rules.
    pub fn decide(&self, key: &KeyRecord, user: Option<&UserRecord>, request: &Request, now: Timestamp) -> Decision {
        if let Err(why) = request.validate() {
            return Decision::invalid_request(self.messages(), why);
        }
        self.decide_valid(key, user, request, now)
    }

    /// [`Engine::decide`] for a request already known to be within bounds (management
    /// requests built here from validated records, whose target may name many accounts).
    fn decide_valid(&self, key: &KeyRecord, user: Option<&UserRecord>, request: &Request, now: Timestamp) -> Decision {
        let m = self.messages();
        let id = key.id.as_str();
        let Some(facts) = self.facts(key, user, request, now) else {
            return Decision::unauthorized(m, "personal token without its user");
        };
        if let Some(account) = &request.account {
            if !facts.in_accounts(account) {
                return Decision::not_found(
                    m,
                    Some(id),
                    format!("account {account:?} is outside the key's account scope"),
                );
            }
        }
        let root: &cel::Context<'_, '_> = &self.root;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&facts);

        let failed = |rule: &Rule, e: &str| {
            Decision::forbidden(
                m,
                id,
                codes::FORBIDDEN,
                vec![rule.id.clone()],
                format!("rule {} failed, denying: {e}", rule.id),
            )
        };
        let (forbidding, failure) = self.run_rules(Effect::Forbid, &facts, &ctx);
        if let Some((rule, e)) = failure {
            return failed(rule, &e);
        }
        if let Some(first) = forbidding.first {
            return Decision::forbidden(m, id, &first.code, forbidding.ids, format!("forbidden by {}", first.id));
        }
        let (allowing, failure) = self.run_rules(Effect::Allow, &facts, &ctx);
        if let Some((rule, e)) = failure {
            return failed(rule, &e);
        }
        if allowing.ids.is_empty() {
            let mut d = Decision::forbidden(
                m,
                id,
                codes::INSUFFICIENT_SCOPE,
                Vec::new(),
                format!("no rule allows {} for key {id}", request.action),
            );
            d.headers.push((
                "WWW-Authenticate".to_string(),
                format!("Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"", m.realm, request.action),
            ));
            return d;
        }
        let reason = joined("allowed by ", &allowing.ids);
        Decision::allow(id, allowing.ids, reason)
    }

    /// The view of one request that rules read; `None` for a personal token whose user is
    /// missing (or another user's record was supplied).
    fn facts<'a>(
        &'a self,
        key: &'a KeyRecord,
        user: Option<&'a UserRecord>,
        request: &'a Request,
        now: Timestamp,
    ) -> Option<Facts<'a>> {
        let user_scopes = match &key.kind {
            KeyKind::Api => None,
            KeyKind::Personal { user: owner } => match user {
                Some(u) if &u.id == owner => Some(u.roles.iter().map(|r| self.policy.role_scopes(r)).collect()),
                _ => return None,
            },
        };
        Some(Facts {
            key,
            user,
            request,
            now: now.unix(),
            role_scopes: self.policy.role_scopes(&key.role),
            user_scopes,
        })
    }

    /// Evaluates every rule of `effect` that covers `action`: the rules that hold, and the
    /// first evaluation failure (which denies).
    fn run_rules<'r>(
        &'r self,
        effect: Effect,
        facts: &Facts<'_>,
        ctx: &cel::Context<'_, '_>,
    ) -> (Fired<'r>, Option<(&'r Rule, String)>) {
        let mut held = Fired { first: None, ids: Vec::new() };
        for rule in self.policy.rules().iter().filter(|r| r.effect == effect && r.covers(&facts.request.action)) {
            match eval(rule, facts, ctx) {
                Ok(true) => {
                    held.first.get_or_insert(rule);
                    held.ids.push(rule.id.clone());
                }
                Ok(false) => {}
                Err(e) => return (held, Some((rule, e))),
            }
        }
        (held, None)
    }
}

/// The rules of one effect that held: the first (whose code a forbid answers with) and all ids.
struct Fired<'r> {
    first: Option<&'r Rule>,
    ids: Vec<String>,
}

/// `head` followed by the ids, comma-separated, in one allocation.
fn joined(head: &str, ids: &[String]) -> String {
    let mut out = String::with_capacity(head.len() + ids.iter().map(|i| i.len() + 2).sum::<usize>());
    out.push_str(head);
    for (n, i) in ids.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(i);
    }
    out
}

fn eval(rule: &crate::policy::Rule, facts: &Facts<'_>, ctx: &cel::Context<'_, '_>) -> Result<bool, String> {
    if let Some(Native::ScopeCoversAction) = rule.native {
        return Ok(facts.has_scope(&facts.request.action));
    }
    let Some(program) = &rule.program else { return Ok(true) };
    match program.execute(ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("condition gave {:?}, not a bool", other.type_of())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_and_sync() {
        assert_send_sync::<Engine>();
    }

    #[test]
    fn unusable_credential_settings_refuse_the_engine() {
        let src =
            "version = 1\n[defaults.credentials]\nsecret_header = \"Authorization\"\n[scopes]\n\"api.read\" = \"r\"\n";
        let policy = PolicySet::from_toml_str(src, "p.toml").unwrap();
        let e = Engine::new(policy).unwrap_err();
        assert!(matches!(&e, EngineError::Config(m) if m.contains("credentials.secret_header")), "{e}");
    }

    /// The natively compiled `has_scope(request.action)` decides exactly like the interpreter.
    #[test]
    fn native_conditions_decide_like_the_interpreter() {
        use crate::record::AccountScope;
        let native = Engine::default_policy().unwrap();
        assert!(native.policy().rules().iter().any(|r| r.native == Some(Native::ScopeCoversAction)));
        let interpreted = Engine::new(PolicySet::default_policy().unwrap().interpret_only()).unwrap();
        let now = Timestamp::from_unix(1_795_000_000).unwrap();
        let base = crate::policy::testing::fixture_key("k", "reader", now).unwrap();
        let users = [
            None,
            Some(UserRecord::new("u", ["viewer".to_string()], AccountScope::All).unwrap()),
            Some(UserRecord::new("u", ["admin".to_string()], AccountScope::parse_list("acc_1").unwrap()).unwrap()),
        ];
        let mut compared = 0;
        for role in ["reader", "editor", "admin", "integration", "viewer"] {
            for extra in [None, Some("api.write"), Some("admin.*")] {
                for (ui, user) in users.iter().enumerate() {
                    let mut key = base.clone();
                    key.role = role.to_string();
                    key.scopes = extra.map(|s| s.to_string()).into_iter().collect();
                    if ui > 0 {
                        key.kind = KeyKind::Personal { user: "u".into() };
                    }
                    for action in [
                        "api.read",
                        "api.write",
                        "admin.account.create",
                        "keys.create",
                        "users.remove",
                        "keys.create.api",
                    ] {
                        for path in [None, Some("/admin/x"), Some("/v1/x")] {
                            let mut req = Request::new(action);
                            req.path = path.map(str::to_string);
                            let a = native.decide(&key, user.as_ref(), &req, now);
                            let b = interpreted.decide(&key, user.as_ref(), &req, now);
                            assert_eq!(a, b, "{role} {extra:?} user#{ui} {action} {path:?}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 5 * 3 * 3 * 6 * 3);
    }
}
