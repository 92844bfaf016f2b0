//! Failure budgets shared by processes: [`SharedBudget`] over a [`DebtStore`] (the SQLite
//! admission file, Redis), one [`FailureBudget`] whatever the store. What it keeps in this
//! process, so that nothing run on an event loop waits on the store (a SQLite write lock, a
//! Redis round trip): the refusals this process's charges got ([`Refusals`], what the screen
//! answers from) and this process's own count of every charge it made ([`InProcess`], what a
//! shed is charged to).

use super::{Exhausted, FailureBudget, LocalBudget, Subject, ThrottleConfig};
use crate::time::Timestamp;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// Where a shared budget's debts live: one [`super::Debt`] per subject, charged or refunded
/// atomically across processes with its arithmetic. `interval` and `tolerance` are the
/// subject's kind's rates ([`ThrottleConfig::rates`]); `now_ms` the caller's clock (a store
/// with a clock of its own, like Redis, uses that).
pub trait DebtStore: Send + Sync + fmt::Debug {
    /// One failure more: `Some(Ok)`, `Some(Err)` refused (nothing written), `None` when the
    /// store could not answer.
    fn charge(&self, subject: Subject<'_>, interval: i64, tolerance: i64, now_ms: i64)
        -> Option<Result<(), Exhausted>>;
    /// One failure back (never below zero); a store that cannot answer forgets it.
    fn refund(&self, subject: Subject<'_>, interval: i64, tolerance: i64, now_ms: i64);
}

/// A failure budget shared by every process over one [`DebtStore`], with this process's
/// half ([`InProcess`]) in front of it: the step's charges go to both, the shed's and the
/// screen's never leave the process.
#[derive(Debug)]
pub struct SharedBudget<S> {
    store: S,
    here: InProcess,
}

impl<S: DebtStore> SharedBudget<S> {
    /// Budgets with these limits over `store`.
    pub fn new(store: S, config: ThrottleConfig) -> Self {
        SharedBudget { store, here: InProcess::new(config) }
    }
}

impl<S: DebtStore> FailureBudget for SharedBudget<S> {
    fn charge(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        let Some(limit) = self.here.config().limit(subject) else { return Ok(()) };
        let (interval, tolerance) = self.here.config().rates(limit);
        self.here.charge(subject, now, || self.store.charge(subject, interval, tolerance, ms(now)))
    }

    fn refund(&self, subject: Subject<'_>, now: Timestamp) {
        let Some(limit) = self.here.config().limit(subject) else { return };
        let (interval, tolerance) = self.here.config().rates(limit);
        self.here.refund(subject, now, || self.store.refund(subject, interval, tolerance, ms(now)));
    }

    /// No I/O: the refusals this process saw, or its own count spent.
    fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        self.here.exhausted(subject, now)
    }

    /// No I/O (a shed, on an event loop): a known refusal, else this process's count.
    fn charge_nowait(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        self.here.charge_nowait(subject, now)
    }

    fn refund_nowait(&self, subject: Subject<'_>, now: Timestamp) {
        self.here.refund_nowait(subject, now);
    }
}

/// The refusals this process's own charges got from a shared budget, each until its
/// `Retry-After`: what a shared budget's [`FailureBudget::exhausted`] answers from, so the
/// screen (run inline on event loops, before anything else) never waits on a store or a
/// network. The step's charge stays the authority: a subject another process exhausted is
/// refused there, one step later; a refusal here is forgotten on this process's next accepted
/// charge or refund of the subject, or when its `Retry-After` passes. At most `cap` subjects.
#[derive(Debug)]
pub struct Refusals {
    until: Mutex<HashMap<String, i64>>,
    cap: usize,
}

impl Refusals {
    /// Empty, remembering at most `cap` subjects.
    pub fn new(cap: usize) -> Self {
        Refusals { until: Mutex::default(), cap: cap.max(1) }
    }

    fn name(subject: Subject<'_>) -> String {
        format!("{}:{}", subject.kind(), subject.key())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what a charge answered: a refusal is kept until its `Retry-After`, an accepted
    /// charge forgets the subject's refusal.
    pub fn note(&self, subject: Subject<'_>, now_ms: i64, answer: Result<(), Exhausted>) {
        let mut until = self.lock();
        match answer {
            Ok(()) => {
                until.remove(&Self::name(subject));
            }
            Err(e) => {
                if until.len() >= self.cap {
                    until.retain(|_, t| *t > now_ms);
                }
                if until.len() < self.cap {
                    let wait = i64::from(e.retry_after_secs).saturating_mul(1000);
                    until.insert(Self::name(subject), now_ms.saturating_add(wait));
                }
            }
        }
    }

    /// Forgets the subject's refusal (a refund gave a charge back).
    pub fn forget(&self, subject: Subject<'_>) {
        self.lock().remove(&Self::name(subject));
    }

    /// The refusal still in force for `subject` at `now_ms`, if any.
    pub fn peek(&self, subject: Subject<'_>, now_ms: i64) -> Option<Exhausted> {
        let until = *self.lock().get(&Self::name(subject))?;
        (until > now_ms).then(|| Exhausted::after_ms(until - now_ms))
    }
}

/// A shared budget's in-process half. Every charge this process makes is counted here first:
/// the step's (which then goes to the store, the authority across processes) and the shed's
/// (which never does: it runs on an event loop and never reaches argon2). So one process's
/// steps and sheds together never pass its budget, and a shed never waits: a flood that keeps
/// the argon2 pool full gets 503 while the address's budget lasts, then 429, as with
/// process-local budgets; across processes the store bounds what reaches argon2. A refusal
/// here costs no I/O (this process alone has spent the budget); a store that cannot answer
/// leaves this process's answer standing, so an outage neither locks clients out nor lifts
/// the bound (it then holds per process).
#[derive(Debug)]
pub struct InProcess {
    local: LocalBudget,
    refusals: Refusals,
    /// Charges per subject the store could not record (an outage): as many later refunds
    /// stay here, so the store never gives back a failure it did not count.
    unrecorded: Mutex<HashMap<String, u32>>,
}

impl InProcess {
    /// Empty, with the shared budget's limits.
    pub fn new(config: ThrottleConfig) -> Self {
        let refusals = Refusals::new(config.max_tracked);
        InProcess { local: LocalBudget::new(config), refusals, unrecorded: Mutex::default() }
    }

    /// The limits.
    pub fn config(&self) -> &ThrottleConfig {
        self.local.config()
    }

    /// A step's charge: this process's count, then `store` (`None`: the store could not
    /// answer). A store refusal gives this process's charge back, so the count holds only
    /// charges that were accepted.
    pub fn charge(
        &self,
        subject: Subject<'_>,
        now: Timestamp,
        store: impl FnOnce() -> Option<Result<(), Exhausted>>,
    ) -> Result<(), Exhausted> {
        let now_ms = ms(now);
        let mut answer = self.local.charge(subject, now);
        if answer.is_ok() {
            match store() {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.local.refund(subject, now);
                    answer = Err(e);
                }
                None => self.unrecorded_charge(subject),
            }
        }
        self.refusals.note(subject, now_ms, answer);
        answer
    }

    /// A step's refund (a success, or a later subject refused): this process's count, and
    /// `store` unless the store never recorded as many of the subject's charges.
    pub fn refund(&self, subject: Subject<'_>, now: Timestamp, store: impl FnOnce()) {
        self.refusals.forget(subject);
        self.local.refund(subject, now);
        if !self.take_unrecorded(subject) {
            store();
        }
    }

    fn unrecorded_lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.unrecorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a charge the store could not record (at most `max_tracked` subjects; past that,
    /// its refund may reach the store).
    fn unrecorded_charge(&self, subject: Subject<'_>) {
        let cap = self.config().max_tracked.max(1);
        let mut map = self.unrecorded_lock();
        let name = Refusals::name(subject);
        if let Some(n) = map.get_mut(&name) {
            *n = n.saturating_add(1);
        } else if map.len() < cap {
            map.insert(name, 1);
        }
    }

    /// Takes back one unrecorded charge of the subject; false when it has none.
    fn take_unrecorded(&self, subject: Subject<'_>) -> bool {
        let mut map = self.unrecorded_lock();
        let name = Refusals::name(subject);
        let Some(n) = map.get_mut(&name) else { return false };
        *n -= 1;
        if *n == 0 {
            map.remove(&name);
        }
        true
    }

    /// A shed's charge: a refusal this process knows, else this process's count; no I/O.
    pub fn charge_nowait(&self, subject: Subject<'_>, now: Timestamp) -> Result<(), Exhausted> {
        let now_ms = ms(now);
        if let Some(e) = self.refusals.peek(subject, now_ms) {
            return Err(e);
        }
        let answer = self.local.charge(subject, now);
        if answer.is_err() {
            self.refusals.note(subject, now_ms, answer);
        }
        answer
    }

    /// Gives back a [`InProcess::charge_nowait`]; no I/O.
    pub fn refund_nowait(&self, subject: Subject<'_>, now: Timestamp) {
        self.local.refund(subject, now);
    }

    /// The screen's peek: a refusal this process's charges got, or this process's own count
    /// spent; no I/O.
    pub fn exhausted(&self, subject: Subject<'_>, now: Timestamp) -> Option<Exhausted> {
        self.refusals.peek(subject, ms(now)).or_else(|| self.local.exhausted(subject, now))
    }
}

fn ms(now: Timestamp) -> i64 {
    now.unix().saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    /// A shared budget's peek: a refusal holds until its Retry-After, an accepted charge or a
    /// refund forgets it, addresses count per /64, and memory stays within the cap.
    #[test]
    fn refusals_hold_until_retry_after_and_are_capped() {
        let r = Refusals::new(2);
        let ip = Subject::Ip("2001:db8::1");
        let refused = Err(Exhausted { retry_after_secs: 3 });
        r.note(ip, 10_000, refused);
        assert_eq!(r.peek(Subject::Ip("2001:db8::ffff"), 10_500), Some(Exhausted { retry_after_secs: 3 }));
        assert_eq!(r.peek(ip, 12_100), Some(Exhausted { retry_after_secs: 1 }));
        assert_eq!(r.peek(ip, 13_000), None);
        assert_eq!(r.peek(Subject::ClientId("2001:db8::1"), 10_500), None, "kinds are apart");
        r.note(ip, 20_000, refused);
        r.note(ip, 20_000, Ok(()));
        assert_eq!(r.peek(ip, 20_001), None);
        r.note(ip, 20_000, refused);
        r.forget(ip);
        assert_eq!(r.peek(ip, 20_001), None);
        for n in 0..10 {
            r.note(Subject::ClientId(&format!("kc_{n}")), 30_000, refused);
        }
        assert!(r.lock().len() <= 2);
        // Expired entries make room again.
        r.note(Subject::ClientId("kc_late"), 40_000, refused);
        assert_eq!(r.peek(Subject::ClientId("kc_late"), 40_001), Some(Exhausted { retry_after_secs: 3 }));
    }

    /// One process's steps and sheds count in one budget: sheds after steps (and steps after
    /// sheds) stop at the limit, a store refusal is not counted, and a store that cannot
    /// answer leaves this process's answer standing.
    #[test]
    fn steps_and_sheds_of_one_process_share_its_count() {
        let config = ThrottleConfig { per_ip: 4, per_client_id: 0, window: Duration::from_secs(60), max_tracked: 10 };
        let p = InProcess::new(config);
        let ip = Subject::Ip("192.0.2.1");
        let mut store_calls = 0;
        for _ in 0..2 {
            assert_eq!(
                p.charge(ip, t(0), || {
                    store_calls += 1;
                    Some(Ok(()))
                }),
                Ok(())
            );
        }
        assert_eq!(p.charge_nowait(ip, t(0)), Ok(()));
        assert_eq!(p.charge(ip, t(0), || None), Ok(()), "an unanswering store: this process's answer");
        let spent = Err(Exhausted { retry_after_secs: 15 });
        assert_eq!(p.charge_nowait(ip, t(0)), spent, "two steps, a shed and a step: the budget of 4");
        assert_eq!(p.charge(ip, t(0), || unreachable!("refused without I/O")), spent);
        assert_eq!(p.exhausted(ip, t(0)), Some(Exhausted { retry_after_secs: 15 }));
        assert_eq!(store_calls, 2);
        // Another process spent the shared budget: the store's refusal is answered, not counted.
        let other = Subject::Ip("192.0.2.2");
        let busy = Err(Exhausted { retry_after_secs: 9 });
        assert_eq!(p.charge(other, t(0), || Some(busy)), busy);
        assert_eq!(p.charge_nowait(other, t(0)), busy, "a known refusal holds for sheds");
        assert_eq!(p.exhausted(other, t(0)), Some(Exhausted { retry_after_secs: 9 }));
        assert_eq!(p.charge_nowait(other, t(9)), Ok(()), "the refusal passed; nothing was counted");
        // A success gives a step's charge back here and in the store (the first refund
        // matches the charge the store did not record).
        let mut refunded = 0;
        p.refund(ip, t(0), || refunded += 1);
        p.refund(ip, t(0), || refunded += 1);
        assert_eq!(refunded, 1);
        assert_eq!(p.charge_nowait(ip, t(0)), Ok(()));
    }

    /// A charge the store could not record (an outage) is never given back to the store: the
    /// refund that matches it stays in the process, later ones reach the store again.
    #[test]
    fn the_store_never_refunds_a_charge_it_did_not_record() {
        let config = ThrottleConfig { per_ip: 4, per_client_id: 0, window: Duration::from_secs(60), max_tracked: 10 };
        let p = InProcess::new(config);
        let ip = Subject::Ip("192.0.2.9");
        assert_eq!(p.charge(ip, t(0), || None), Ok(()), "the store down: recorded here only");
        assert_eq!(p.charge(ip, t(0), || Some(Ok(()))), Ok(()));
        let mut store_refunds = 0;
        p.refund(ip, t(0), || store_refunds += 1);
        assert_eq!(store_refunds, 0, "matched with the unrecorded charge");
        p.refund(ip, t(0), || store_refunds += 1);
        assert_eq!(store_refunds, 1);
        p.refund(Subject::Ip("192.0.2.10"), t(0), || store_refunds += 1);
        assert_eq!(store_refunds, 2, "other subjects are unaffected");
    }
}
