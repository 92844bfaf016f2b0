//! Failed-authentication budgets: a bound on the argon2 work one client address, or one client
//! id, can make the process spend on failures.
//!
//! Before an uncached secret is verified, the engine *charges* one failure to the request's
//! client address and one to the presented client id; a subject with no budget left is
//! answered at once with 429 `too_many_failures` and `Retry-After`, without hashing. A success
//! refunds both charges (so legitimate traffic never spends a budget); nothing else does: an
//! attempt shed with a 503 (the host's pool or the argon2 gate full) stays charged, or a flood
//! that saturates the host would never trip a budget. Charging before hashing, not counting
//! after, keeps the bound under concurrency: 64 parallel requests from one address run at most
//! its budget of argon2 computations, not 64.
//!
//! Who is never held back: a secret answered from the verified-secret cache (cached keys keep
//! working from a throttled address, and while an attacker hammers their client id), and a
//! secret the cache *recognises* (verified before, past the cache's TTL: only its holder can
//! produce the digest). The trade-off: a correct secret the cache has never seen (first use
//! after a restart, or after eviction) cannot be told from a guess without hashing, so while
//! its client id is over budget it gets the 429 too (with `Retry-After`, never a 401), until
//! the budget refills (one failure per `window / limit`). Failures against unknown client ids
//! count like any others, so the 429 says nothing about whether an id exists.
//!
//! Budgets are a generic cell rate (GCRA), kept as debt: each failure adds `window / limit`,
//! time pays it back, and a charge that would take the debt past `window` is refused. So a
//! subject may fail `limit` times at once, then once per `window / limit`. The debt and the
//! time it was last seen are stored per subject, so a clock that steps back (or a host
//! passing an older `now`) neither inflates nor forgives a debt. IPv6 addresses count per /64 (one host
//! owns a whole /64). The local store keeps at most `max_tracked` subjects per kind, the
//! oldest out.
//!
//! Sharing across processes: the engine only talks to [`FailureBudget`]. A shared admission
//! backend keeps the same [`Debt`] per subject in its store (SQLite: one row per subject in
//! the admission file; Redis: one hash per subject, updated by a script on Redis's clock) and
//! hands that budget to the engine with the admission (`Admission::failure_budget`), so a
//! fleet's workers charge one budget per address and client id; nothing else changes.

mod shared;

pub use shared::{DebtStore, InProcess, Refusals, SharedBudget};

use crate::time::{Duration, Timestamp};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Budget settings (`[defaults.throttle]` in a policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures per client address per `window` (0: no per-address budget).
    pub per_ip: u32,
    /// Failures per client id per `window` (0: no per-id budget).
    pub per_client_id: u32,
    /// The window the budgets refill over.
    pub window: Duration,
    /// Most subjects tracked per kind (the oldest is forgotten first).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig { per_ip: 20, per_client_id: 10, window: Duration::from_secs(60), max_tracked: 10_000 }
    }
}

impl ThrottleConfig {
    /// Checks that a budget has a window and somewhere to live.
    pub fn validate(&self) -> Result<(), String> {
        let on = self.per_ip > 0 || self.per_client_id > 0;
        if on && self.window.secs() <= 0 {
            return Err("throttle.window must be at least 1s".to_string());
        }
        if on && self.max_tracked == 0 {
            return Err("throttle.max_tracked must be at least 1".to_string());
        }
        Ok(())
    }

    /// The budget of `subject`'s kind; `None`: that kind has none (0).
    pub fn limit(&self, subject: Subject<'_>) -> Option<u32> {
        let limit = match subject {
            Subject::Ip(_) => self.per_ip,
            Subject::ClientId(_) => self.per_client_id,
        };
        (limit > 0).then_some(limit)
    }

    /// (emission interval, burst tolerance) in ms of a budget of `limit` failures per window.
    pub fn rates(&self, limit: u32) -> (i64, i64) {
        let window = self.window.secs().saturating_mul(1000).max(1);
        let interval = (window / i64::from(limit.max(1))).max(1);
        (interval, window - interval)
    }

    /// The settings a policy's `[defaults.throttle]` asks for (defaults for what it omits).
    #[cfg(feature = "policy")]
    pub fn from_doc(doc: &crate::policy::document::ThrottleDoc) -> Result<Self, String> {
        let d = ThrottleConfig::default();
        let window = match &doc.window {
            Some(w) => Duration::parse(w).map_err(|e| format!("defaults.throttle.window: {e}"))?,
            None => d.window,
        };
        let c = ThrottleConfig {
            per_ip: doc.per_ip.unwrap_or(d.per_ip),
            per_client_id: doc.per_client_id.unwrap_or(d.per_client_id),
            window,
            max_tracked: doc.max_tracked.unwrap_or(d.max_tracked),
        };
        c.validate().map_err(|e| format!("defaults.{e}"))?;
        Ok(c)
    }
}

/// Who a failure is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The client's network address (as the host saw the socket).
    Ip(&'a str),
    /// The client id presented (whether or not a key has it).
    ClientId(&'a str),
}

/// The subject has no failure left: answer 429 after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// `Retry-After` seconds (at least 1).
    pub retry_after_secs: u32,
}

impl Exhausted {
    /// A refusal whose next failure is allowed in `wait_ms` (`Retry-After`: whole seconds,
    /// rounded up, at least 1). Shared by every store of the budgets, so they answer alike.
    pub fn after_ms(wait_ms: i64) -> Self {
        Exhausted { retry_after_secs: u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX).max(1) }
    }
}

/// Where failure budgets live: this process ([`LocalBudget`]) or a store shared by every
/// process of a deployment. Both calls sit on the request path before argon2: keep them cheap.
pub trait FailureBudget: Send + Sync + fmt::Debug {
    /// Takes one failure from `subject`'s budget, or says when one will be free again.
    fn charge(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted>;
    /// Gives back a charge that turned out not to be a failure (a success).
    fn refund(&self, subject: Subject<'_>, now: Timestamp);
    /// Whether a charge to `subject` would be refused now, without charging or tracking it:
    /// what [`Engine::screen`](crate::engine::Engine::screen) asks before anything else, often
    /// on an event loop, so it must not wait on I/O. The default says "not exhausted" (a budget
    /// that cannot peek cheaply screens nothing; the step's charge still holds the bound); a
    /// shared budget answers from the refusals this process saw ([`Refusals`]).
    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        let _ = (subject, now);
        None
    }
    /// The charge of an attempt shed before the lookup ([`Engine::shed`](crate::engine::Engine::shed),
    /// on event loops while the argon2 pool is full): must not wait on I/O either. A shared
    /// budget refuses from the refusals it knows and otherwise charges this process's own
    /// count ([`InProcess::charge_nowait`]); the default is [`FailureBudget::charge`].
    fn charge_nowait(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        self.charge(subject, now)
    }
    /// Gives back a [`FailureBudget::charge_nowait`].
    fn refund_nowait(&self, subject: Subject<'_>, now: Timestamp) {
        self.refund(subject, now);
    }
}

/// Budgets held in this process: one capped map per subject kind.
#[derive(Debug)]
pub struct LocalBudget {
    config: ThrottleConfig,
    ips: Mutex<Tracked>,
    ids: Mutex<Tracked>,
}

/// A subject's debt in ms, and when it was last charged (ms): the whole state of one
/// subject's budget, wherever it is kept (this process, a SQLite row, a Redis hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Debt {
    /// Milliseconds owed at `at`.
    pub ms: i64,
    /// When the debt was last written (ms).
    pub at: i64,
}

impl Debt {
    /// The debt left at `now` (time only pays back; a step back pays nothing).
    pub fn at(self, now: i64) -> i64 {
        (self.ms - now.saturating_sub(self.at).max(0)).max(0)
    }

    /// `Some` when one more charge of `interval` would take the debt past the window.
    pub fn exhausted(self, now_ms: i64, interval: i64, tolerance: i64) -> Option<Exhausted> {
        let next = self.at(now_ms).saturating_add(interval);
        // Conforming while the debt after this charge fits the window.
        (next > tolerance + interval).then(|| Exhausted::after_ms(next - interval - tolerance))
    }

    /// The debt after one more failure, or the refusal (the debt then stays as it was).
    pub fn charged(self, now_ms: i64, interval: i64, tolerance: i64) -> Result<Debt, Exhausted> {
        match self.exhausted(now_ms, interval, tolerance) {
            Some(e) => Err(e),
            None => Ok(Debt { ms: self.at(now_ms).saturating_add(interval), at: now_ms }),
        }
    }

    /// The debt after a refund: one charge back, never below zero (a refund banks nothing).
    pub fn refunded(self, now_ms: i64, interval: i64) -> Debt {
        Debt { ms: (self.at(now_ms) - interval).max(0), at: now_ms.max(self.at) }
    }
}

/// Debts per subject, and the insertion order for eviction.
#[derive(Debug, Default)]
struct Tracked {
    debts: HashMap<Arc<str>, Debt>,
    order: VecDeque<Arc<str>>,
}

impl Tracked {
    /// Runs `f` on `key`'s arrival time, tracking the key first (oldest out) when new.
    fn update<R>(&mut self, key: &str, cap: usize, f: impl FnOnce(&mut Debt) -> R) -> R {
        if let Some(v) = self.debts.get_mut(key) {
            return f(v);
        }
        while self.order.len() >= cap.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.debts.remove(&old);
                }
                None => break,
            }
        }
        let mut v = Debt::default();
        let out = f(&mut v);
        let k: Arc<str> = Arc::from(key);
        self.order.push_back(k.clone());
        self.debts.insert(k, v);
        out
    }
}

fn lock(m: &Mutex<Tracked>) -> MutexGuard<'_, Tracked> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key an address is tracked under: IPv6 per /64 (IPv4-mapped ones as IPv4), other
/// addresses as given, at most 64 bytes.
fn ip_key(ip: &str) -> Cow<'_, str> {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string().into(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64").into()
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string().into(),
        Err(_) => {
            let mut end = ip.len().min(64);
            while !ip.is_char_boundary(end) {
                end -= 1;
            }
            ip.get(..end).unwrap_or_default().into()
        }
    }
}

impl<'a> Subject<'a> {
    /// What the subject is tracked under: an address per /64 for IPv6 (see `ip_key`), a
    /// client id as presented.
    pub fn key(self) -> Cow<'a, str> {
        match self {
            Subject::Ip(ip) => ip_key(ip),
            Subject::ClientId(id) => id.into(),
        }
    }

    /// `"ip"` or `"client_id"`: the kind's name where a shared store keeps both kinds.
    pub fn kind(self) -> &'static str {
        match self {
            Subject::Ip(_) => "ip",
            Subject::ClientId(_) => "client_id",
        }
    }
}

impl LocalBudget {
    /// Empty budgets with these limits.
    pub fn new(config: ThrottleConfig) -> Self {
        LocalBudget { config, ips: Mutex::default(), ids: Mutex::default() }
    }

    /// The limits.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn table(&self, subject: Subject<'_>) -> Option<(&Mutex<Tracked>, u32)> {
        let table = match subject {
            Subject::Ip(_) => &self.ips,
            Subject::ClientId(_) => &self.ids,
        };
        self.config.limit(subject).map(|limit| (table, limit))
    }

    fn rates(&self, limit: u32) -> (i64, i64) {
        self.config.rates(limit)
    }

    /// Subjects tracked (both kinds).
    pub fn tracked(&self) -> usize {
        lock(&self.ips).debts.len() + lock(&self.ids).debts.len()
    }
}

impl FailureBudget for LocalBudget {
    fn charge(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        let Some((table, limit)) = self.table(subject) else { return Ok(()) };
        let (interval, tolerance) = self.rates(limit);
        let now_ms = now.unix().saturating_mul(1000);
        let key = subject.key();
        let mut tracked = lock(table);
        tracked.update(&key, self.config.max_tracked, |debt| {
            *debt = debt.charged(now_ms, interval, tolerance)?;
            Ok(())
        })
    }

    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        let (table, limit) = self.table(subject)?;
        let (interval, tolerance) = self.rates(limit);
        let now_ms = now.unix().saturating_mul(1000);
        let debt = *lock(table).debts.get(subject.key().as_ref())?;
        debt.exhausted(now_ms, interval, tolerance)
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        let Some((table, limit)) = self.table(subject) else { return };
        let (interval, _) = self.rates(limit);
        let key = subject.key();
        let now_ms = now.unix().saturating_mul(1000);
        if let Some(debt) = lock(table).debts.get_mut(key.as_ref()) {
            *debt = debt.refunded(now_ms, interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    fn budget(per_ip: u32, per_id: u32) -> LocalBudget {
        LocalBudget::new(ThrottleConfig {
            per_ip,
            per_client_id: per_id,
            window: Duration::from_secs(60),
            max_tracked: 100,
        })
    }

    #[test]
    fn limit_failures_then_one_per_interval() {
        let b = budget(20, 10);
        let ip = Subject::Ip("10.0.0.1");
        for i in 0..20 {
            assert_eq!(b.charge(ip, t(0)), Ok(()), "failure {i}");
        }
        assert_eq!(b.charge(ip, t(0)), Err(Exhausted { retry_after_secs: 3 }));
        assert!(b.charge(ip, t(2)).is_err());
        assert_eq!(b.charge(ip, t(3)), Ok(()), "one slot per 60/20 s");
        assert!(b.charge(ip, t(3)).is_err());
        // Another address and the client-id kind are separate budgets.
        assert_eq!(b.charge(Subject::Ip("10.0.0.2"), t(3)), Ok(()));
        for _ in 0..10 {
            assert_eq!(b.charge(Subject::ClientId("kc_a"), t(3)), Ok(()));
        }
        assert_eq!(b.charge(Subject::ClientId("kc_a"), t(3)), Err(Exhausted { retry_after_secs: 6 }));
        // A full window later everything is back.
        for _ in 0..10 {
            assert_eq!(b.charge(Subject::ClientId("kc_a"), t(70)), Ok(()));
        }
    }

    /// A peek says what the next charge would answer, and changes nothing.
    #[test]
    fn exhausted_peeks_without_charging_or_tracking() {
        let b = budget(2, 0);
        let ip = Subject::Ip("10.0.0.9");
        assert_eq!(b.exhausted(ip, t(0)), None);
        assert_eq!(b.tracked(), 0, "a peek tracks nothing");
        assert!(b.charge(ip, t(0)).is_ok());
        assert_eq!(b.exhausted(ip, t(0)), None);
        assert!(b.charge(ip, t(0)).is_ok());
        for _ in 0..5 {
            assert_eq!(b.exhausted(ip, t(0)), Some(Exhausted { retry_after_secs: 30 }));
        }
        assert_eq!(b.charge(ip, t(0)), Err(Exhausted { retry_after_secs: 30 }), "peeks spent nothing");
        assert_eq!(b.exhausted(ip, t(30)), None);
        assert_eq!(b.exhausted(Subject::ClientId("kc_z"), t(0)), None, "a budget of 0 is off");
    }

    /// A host passing an older `now` (a clock stepping back) neither inflates nor forgives.
    #[test]
    fn time_stepping_back_keeps_the_debt_as_it_was() {
        let b = budget(0, 10);
        let id = Subject::ClientId("kc_b");
        assert!(b.charge(id, t(1000)).is_ok());
        for _ in 0..9 {
            assert!(b.charge(id, t(900)).is_ok(), "an earlier now is not a debt of 100 s");
        }
        assert!(b.charge(id, t(900)).is_err(), "nor does it forgive the ten failures");
        assert!(b.charge(id, t(906)).is_ok(), "time paid one back");
    }

    #[test]
    fn refunds_restore_a_charge_but_bank_nothing() {
        let b = budget(2, 0);
        let ip = Subject::Ip("192.0.2.7");
        for _ in 0..5 {
            b.refund(ip, t(0));
        }
        assert!(b.charge(ip, t(0)).is_ok());
        assert!(b.charge(ip, t(0)).is_ok());
        assert!(b.charge(ip, t(0)).is_err());
        b.refund(ip, t(0));
        assert!(b.charge(ip, t(0)).is_ok());
        assert!(b.charge(ip, t(0)).is_err());
        // A zero budget is no budget.
        for _ in 0..100 {
            assert!(b.charge(Subject::ClientId("kc_x"), t(0)).is_ok());
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_memory_is_capped() {
        let b = budget(1, 1);
        assert!(b.charge(Subject::Ip("2001:db8:1:2::1"), t(0)).is_ok());
        assert!(b.charge(Subject::Ip("2001:db8:1:2:ffff::9"), t(0)).is_err(), "same /64");
        assert!(b.charge(Subject::Ip("2001:db8:1:3::1"), t(0)).is_ok(), "another /64");
        assert!(b.charge(Subject::Ip("::ffff:192.0.2.1"), t(0)).is_ok());
        assert!(b.charge(Subject::Ip("192.0.2.1"), t(0)).is_err(), "v4-mapped is the v4 address");
        for i in 0..1000 {
            let _ = b.charge(Subject::ClientId(&format!("kc_{i}")), t(0));
        }
        assert!(b.tracked() <= 200, "{} subjects tracked", b.tracked());
        // The oldest were forgotten: the first id has its budget again.
        assert!(b.charge(Subject::ClientId("kc_0"), t(0)).is_ok());
        assert_eq!(ip_key(&"x".repeat(500)).len(), 64);
    }
}
