//! Redis admission for keycel: one budget per key across every process and machine that
//! shares a Redis server.
//!
//! - **One round trip per allowed request**: a Lua script (loaded once, run by its SHA with
//!   `EVALSHA`, reloaded when Redis answers `NOSCRIPT` after a restart) counts and takes a slot
//!   atomically, every check before any write, reclaiming the key's lost leases once its set
//!   looks full. The request is one packed write ([`wire`]) on a `TCP_NODELAY` socket.
//! - **Redis's clock** (`TIME` inside the script): worker clock skew does not matter.
//! - **Redis Cluster**: every key's state is named `{keycel:<key id>}:...` (hash-tagged: one
//!   slot per key): `:leases` (sorted set), `:rate` (GCRA time), `:credits` (hash).
//! - **Budgets** checked in this order, every check before any write: concurrency, rate
//!   (GCRA), credits. A refused request consumes nothing.
//! - **Credits durability**: see [`floor`]: a flush never hands out again what a live process
//!   has seen consumed.
//! - **Liveness**: a live process renews its leases from a background thread every third of
//!   the TTL; a crashed one stops, and its leases are reclaimed after the TTL.
//! - **Pooled connections**: a small pool of synchronous connections (redis-rs), reconnected
//!   on failure.
//! - **Failed-authentication budgets** ([`failures`]): the engine's per-address and per-client-id
//!   failure budgets live in the same Redis, so a fleet charges each once.
//! - **Fail mode** when Redis is unreachable ([`FailMode`]): deny with 503 (default) or count
//!   in this process; either way the decision says so.
//!
//! Denied requests never reach this backend: the engine asks admission only for allowed ones.

use keycel::admission::{
    Admission, AdmissionError, BudgetStatus, CreditGrant, Lease, LocalAdmission, RateStatus, Refusal, SharedLease,
    Ticket,
};
use keycel::limiter::LimiterConfig;
use keycel::throttle::{FailureBudget, ThrottleConfig};
use keycel::time::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration as StdDuration;

pub mod failures;
pub mod floor;
pub mod script;
pub mod wire;

const BACKEND: &str = "redis";
const SCRIPT: &str = include_str!("script.lua");
const POOL_MAX_IDLE: usize = 16;

/// The admission script (`src/script.lua`; its arguments: [`script`]).
pub fn script() -> redis::Script {
    redis::Script::new(SCRIPT)
}

/// The client's connection settings for `url`: `TCP_NODELAY` on (redis-rs leaves Nagle's
/// algorithm on, which can hold a request's last segment back for the peer's delayed ACK).
pub fn connection_info(url: &str) -> Result<redis::ConnectionInfo, AdmissionError> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info().map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Ok(info.set_tcp_settings(tcp))
}

/// What the engine does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Deny with 503 `temporarily_unavailable` (fail closed; the default).
    #[default]
    Deny,
    /// Count in this process's memory (the limit then holds per process, not per fleet);
    /// the decision's reason says so.
    Local,
}

impl FailMode {
    /// `"deny"` or `"local"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deny" => Some(FailMode::Deny),
            "local" => Some(FailMode::Local),
            _ => None,
        }
    }
}

/// Settings of a [`RedisAdmission`]. Its `Debug` form hides the URL's credentials.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Default limit, lease TTL, `Retry-After` (the engine's policy defaults).
    pub limits: LimiterConfig,
    /// When Redis is unreachable.
    pub fail: FailMode,
    /// Connect/read/write timeout for one round trip.
    pub timeout: StdDuration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("limits", &self.limits)
            .field("fail", &self.fail)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The URL without its userinfo (`redis://user:password@host` → `redis://***@host`).
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match (url.get(..scheme + 3), url.get(at..)) {
            (Some(head), Some(host)) => format!("{head}***{host}"),
            _ => "***".to_string(),
        },
        _ => url.to_string(),
    }
}

impl RedisConfig {
    /// Settings for `url` with the given limits, fail mode `deny`, 500 ms timeout.
    pub fn new(url: impl Into<String>, limits: LimiterConfig) -> Self {
        RedisConfig { url: url.into(), limits, fail: FailMode::Deny, timeout: StdDuration::from_millis(500) }
    }
}

struct Shared {
    client: redis::Client,
    pool: Mutex<Vec<redis::Connection>>,
    /// The script's SHA1 (hex), packed into every request.
    sha: String,
    config: RedisConfig,
    /// Leases this process holds: (key id, member), renewed by the keeper thread.
    live: Mutex<std::collections::HashMap<u64, (Arc<str>, String)>>,
    /// Process-unique prefix of lease ids (pid + random), then a counter.
    prefix: String,
    next: AtomicU64,
    fallback: LocalAdmission,
    floors: floor::Floors,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The connection itself failed (as opposed to a Redis error reply).
fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Leases counted in Redis. Cloning shares the pool and the renewal thread.
#[derive(Debug, Clone)]
pub struct RedisAdmission {
    shared: Arc<Shared>,
}

/// The key's lease set, hash-tagged so all of one key's state lives on one cluster slot.
pub fn lease_set(key_id: &str) -> String {
    format!("{{keycel:{key_id}}}:leases")
}

impl RedisAdmission {
    /// Connects lazily: a Redis that is down now is used once it is up (meanwhile the fail
    /// mode applies). Fails only for an invalid URL.
    pub fn new(config: RedisConfig) -> Result<Self, AdmissionError> {
        let client = redis::Client::open(connection_info(&config.url)?)
            .map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
        let mut seed = [0u8; 8];
        // Distinct per process even when pids repeat across machines.
        getrandom::fill(&mut seed).map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
        let prefix = format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(seed));
        let fallback = LocalAdmission::new(config.limits.clone());
        let shared = Arc::new(Shared {
            client,
            pool: Mutex::new(Vec::new()),
            sha: script().get_hash().to_string(),
            config,
            live: Mutex::new(std::collections::HashMap::new()),
            prefix,
            next: AtomicU64::new(1),
            fallback,
            floors: floor::Floors::default(),
        });
        keeper(Arc::downgrade(&shared));
        Ok(RedisAdmission { shared })
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// Renews every lease this process holds, now (the keeper thread does this on its own).
    pub fn renew_live(&self) -> Result<usize, AdmissionError> {
        self.shared.renew_live()
    }
}

impl Shared {
    fn ttl_ms(&self) -> i64 {
        self.config.limits.lease_ttl.secs().saturating_mul(1000).max(1000)
    }

    fn fresh(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(self.config.timeout)?;
        c.set_read_timeout(Some(self.config.timeout))?;
        c.set_write_timeout(Some(self.config.timeout))?;
        Ok(c)
    }

    /// Runs `f` on a pooled connection. A pooled connection that turns out dead (Redis
    /// restarted since it was pooled) is dropped and `f` retried once on a fresh one, so a
    /// restart costs no spurious fail-mode answer; a failed connection is never pooled again.
    fn with<T>(&self, f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>) -> redis::RedisResult<T> {
        let pooled = lock(&self.pool).pop();
        let (c, r) = match pooled {
            Some(mut c) => match f(&mut c) {
                Err(e) if broken(&e) => {
                    let mut c = self.fresh()?;
                    let r = f(&mut c);
                    (c, r)
                }
                r => (c, r),
            },
            None => {
                let mut c = self.fresh()?;
                let r = f(&mut c);
                (c, r)
            }
        };
        if !r.as_ref().err().is_some_and(broken) {
            let mut pool = lock(&self.pool);
            if pool.len() < POOL_MAX_IDLE {
                pool.push(c);
                return r;
            }
        }
        r
    }

    /// `EVALSHA` (one packed write, see [`wire`]), and on `NOSCRIPT` (a restarted Redis)
    /// `SCRIPT LOAD` + retry.
    fn run(&self, key_id: &str, keys: usize, argv: &[script::Arg<'_>]) -> redis::RedisResult<redis::Value> {
        let packed = wire::pack(&self.sha, key_id, keys, argv);
        self.with(|c| wire::call(c, &packed, SCRIPT))
    }

    /// A grant as the script takes it, with this process's floor for it.
    fn grant_args(&self, key_id: &str, g: &CreditGrant) -> script::GrantArgs {
        let epoch_ms = g.set_at.unix().saturating_mul(1000);
        let (floor_period, floor_used) = self.floors.get(key_id, epoch_ms);
        script::GrantArgs {
            first: g.remaining,
            amount: g.refill.map_or(0, |r| r.amount),
            interval_ms: g.refill.map_or(0, |r| r.interval.secs().saturating_mul(1000)),
            epoch_ms,
            floor_period,
            floor_used,
        }
    }

    fn renew(&self, key_id: &str, member: &str) -> bool {
        let ttl = self.ttl_ms();
        matches!(self.run(key_id, 3, &script::renew_argv(ttl, member)), Ok(redis::Value::Int(1)))
    }

    fn renew_live(&self) -> Result<usize, AdmissionError> {
        let leases: Vec<(Arc<str>, String)> = lock(&self.live).values().cloned().collect();
        let ttl = self.ttl_ms();
        let mut n = 0;
        for (key_id, member) in leases {
            let r = self
                .run(&key_id, 3, &script::renew_argv(ttl, &member))
                .map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
            if matches!(r, redis::Value::Int(1)) {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Renews the process's live leases every third of the TTL while the admission exists.
fn keeper(shared: Weak<Shared>) {
    let period = shared
        .upgrade()
        .map(|s| StdDuration::from_millis(u64::try_from(s.ttl_ms() / 3).unwrap_or(1000).max(200)))
        .unwrap_or(StdDuration::from_secs(1));
    let spawned = std::thread::Builder::new().name("keycel-redis-keeper".into()).spawn(move || loop {
        std::thread::sleep(period);
        let Some(s) = shared.upgrade() else { return };
        // Unreachable Redis: retried next tick; leases lost meanwhile are reported by `renew`.
        let _ = s.renew_live();
    });
    drop(spawned);
}

impl Admission for RedisAdmission {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn admit(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<Lease, Refusal> {
        let s = &self.shared;
        let limit = ticket.max_concurrent.unwrap_or(s.config.limits.default_limit).max(1);
        let id = s.next.fetch_add(1, Ordering::Relaxed);
        let member = format!("{}-{id}", s.prefix);
        let args = script::AdmitArgs {
            limit,
            ttl_ms: s.ttl_ms(),
            member: &member,
            cost: ticket.cost,
            rate: ticket.rate.map(|r| (r.interval_ms(), r.tolerance_ms())),
            credits: ticket.credits.map(|g| s.grant_args(ticket.key_id, &g)),
        };
        let argv = script::admit_argv(&args);
        let (keys, n) = script::admit_shape(&args);
        let reply = match s.run(ticket.key_id, keys, argv.get(..n).unwrap_or(&argv)) {
            Ok(v) => script::parse_admit(&v)
                .ok_or_else(|| Refusal::Unavailable { backend: BACKEND, detail: format!("unexpected reply {v:?}") })?,
            Err(e) => {
                return match s.config.fail {
                    FailMode::Deny => Err(Refusal::Unavailable { backend: BACKEND, detail: e.to_string() }),
                    FailMode::Local => s.fallback.admit(ticket, now).map(|l| l.fell_back(BACKEND)),
                }
            }
        };
        match reply {
            script::Reply::Admitted { rate_remaining, rate_reset_ms, credits, .. } => {
                if let Some(c) = &credits {
                    s.floors.see(ticket.key_id, c.epoch_ms, c.period, c.used);
                }
                let key_id: Arc<str> = Arc::from(ticket.key_id);
                lock(&s.live).insert(id, (Arc::clone(&key_id), member.clone()));
                let lease =
                    Lease::shared(Box::new(RedisLease { shared: Arc::clone(s), id, member: Some(member), key_id }));
                if !ticket.metered() {
                    return Ok(lease);
                }
                let rate = ticket.rate.map(|policy| RateStatus {
                    policy,
                    remaining: u32::try_from(rate_remaining.unwrap_or(0)).unwrap_or(u32::MAX),
                    reset_ms: rate_reset_ms,
                });
                Ok(lease.with_budget(Some(BudgetStatus { rate, credits_remaining: credits.map(|c| c.remaining) })))
            }
            script::Reply::Busy { .. } => {
                Err(Refusal::Busy { limit, retry_after_secs: s.config.limits.retry_after_secs })
            }
            script::Reply::RateLimited { retry_after_ms, reset_ms } => match ticket.rate {
                Some(policy) => Err(Refusal::RateLimited { policy, retry_after_ms, reset_ms }),
                None => {
                    Err(Refusal::Unavailable { backend: BACKEND, detail: "rate refusal without a rate limit".into() })
                }
            },
            script::Reply::UsageExceeded { retry_after_ms, counted } => {
                s.floors.see(ticket.key_id, counted.epoch_ms, counted.period, counted.used);
                let secs = retry_after_ms.map(|ms| u32::try_from(keycel::budget::ceil_secs(ms, 1)).unwrap_or(u32::MAX));
                Err(Refusal::UsageExceeded { retry_after_secs: secs })
            }
        }
    }

    fn usage(&self, key_id: &str, grant: &CreditGrant, _now: Timestamp) -> Result<u64, AdmissionError> {
        let args = self.shared.grant_args(key_id, grant);
        let v = self
            .shared
            .run(key_id, 3, &script::usage_argv(&args))
            .map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })?;
        let (remaining, used, period) = script::parse_usage(&v)
            .ok_or_else(|| AdmissionError { backend: BACKEND, detail: format!("unexpected reply {v:?}") })?;
        self.shared.floors.see(key_id, args.epoch_ms, period, used);
        Ok(remaining)
    }

    fn in_flight(&self, key_id: &str) -> Result<usize, AdmissionError> {
        let set = lease_set(key_id);
        self.shared
            .with(|c| {
                // Count only leases whose deadline is ahead of Redis's clock.
                let (secs, micros): (i64, i64) = redis::cmd("TIME").query(c)?;
                let now_ms = secs * 1000 + micros / 1000;
                redis::cmd("ZCOUNT").arg(&set).arg(format!("({now_ms}")).arg("+inf").query::<usize>(c)
            })
            .map_err(|e| AdmissionError { backend: BACKEND, detail: e.to_string() })
    }

    fn reclaim_expired(&self, _now: Timestamp) -> Result<usize, AdmissionError> {
        // Each key's script call reclaims its own; there is no global sweep to run.
        Ok(0)
    }

    /// Failure budgets in the same Redis: a fleet charges one per client address and id.
    fn failure_budget(&self, config: &ThrottleConfig) -> Option<Arc<dyn FailureBudget>> {
        let debts = failures::RedisDebts::new(Arc::clone(&self.shared));
        Some(Arc::new(keycel::throttle::SharedBudget::new(debts, config.clone())))
    }
}

/// A lease held in Redis; removed (`ZREM`) on release or drop.
#[derive(Debug)]
struct RedisLease {
    shared: Arc<Shared>,
    id: u64,
    /// `Some` until released.
    member: Option<String>,
    key_id: Arc<str>,
}

impl SharedLease for RedisLease {
    fn id(&self) -> u64 {
        self.id
    }
    fn key_id(&self) -> &Arc<str> {
        &self.key_id
    }
    fn expires_at(&self) -> Option<Timestamp> {
        None
    }
    fn renew(&mut self, _now: Timestamp) -> bool {
        let Some(member) = &self.member else { return false };
        self.shared.renew(&self.key_id, member)
    }
    fn release(&mut self) -> bool {
        let Some(member) = self.member.take() else { return false };
        lock(&self.shared.live).remove(&self.id);
        let set = lease_set(&self.key_id);
        // Unreachable Redis: the lease is no longer renewed and is reclaimed after the TTL.
        self.shared.with(|c| redis::cmd("ZREM").arg(&set).arg(&member).query::<i64>(c)).is_ok_and(|n| n > 0)
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.release();
    }
}
