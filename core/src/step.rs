//! Two-step authorization, so a host with an event loop never runs argon2 on it.
//!
//! [`Engine::authorize_step`] does everything cheap: credentials, record lookup, the
//! verified-secret cache, the decision for a cache hit, and the failed-authentication budget
//! (a subject over budget is answered 429 here, without hashing). What is left is argon2: the
//! step returns it as a [`PendingAuth`], which owns everything it needs (`'static`, `Send`),
//! so the host can [`PendingAuth::finish`] it on a worker thread, or answer 503 itself when its
//! pool is full. Only a success gives the budget charges back: an attempt that was shed (503)
//! stays charged, so a flood that saturates the host still trips the budgets.
//! `Engine::authorize` is the two in a row, so the decision never depends on how a host
//! splits the work.
//!
//! [`Engine::screen`] is the step's 429 alone, before anything else (no record lookup): a host
//! runs it first (at the ASGI level, before routing) so a client over its budget costs a
//! budget lookup, not a request's worth of framework.

use crate::auth::{AuthFailure, AuthStep, Authenticated, HashWork};
use crate::credentials::Credentials;
use crate::decision::Decision;
use crate::engine::{Authorization, Engine, Lookup};
use crate::record::{KeyRecord, UserRecord};
use crate::request::Request;
use crate::store::StoreError;
use crate::throttle::{Exhausted, FailureBudget, Subject};
use crate::time::Timestamp;
use std::sync::Arc;

/// The outcome of [`Engine::authorize_step`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // moved once per request; boxing would allocate on every hit
pub enum Step {
    /// Decided without argon2: a cache hit, a cheap failure, or a 429 from the failure budget.
    Decided(Authorization),
    /// argon2 must run: call [`PendingAuth::finish`], off the event loop.
    NeedsHash(PendingAuth),
}

impl Step {
    /// True when argon2 is still owed.
    pub fn needs_hash(&self) -> bool {
        matches!(self, Step::NeedsHash(_))
    }
}

/// An authentication waiting for its argon2 computation. Owns the credentials, the records it
/// was looked up with and the request; never shows the secret (`Debug` is redacted).
#[derive(Debug)]
pub struct PendingAuth {
    creds: Credentials,
    record: Option<Arc<KeyRecord>>,
    user: Option<Arc<UserRecord>>,
    request: Request,
    work: HashWork,
    charges: Charges,
}

impl PendingAuth {
    /// The client id presented (public; the key may not exist).
    pub fn client_id(&self) -> &str {
        self.creds.client_id().as_str()
    }

    /// Runs the argon2 verification (through the gate: 503 `overloaded` when every slot stays
    /// busy for the gate's `max_wait`) and decides. `engine` must be the one that made the
    /// step.
    pub fn finish(self, engine: &Engine, now: Timestamp) -> Authorization {
        let PendingAuth { creds, record, user, request, work, charges } = self;
        let result = engine.auth.complete(&work, &creds, record.as_deref(), user.as_deref(), now);
        charges.settle(&result, now);
        let mut a = engine.admit(&creds, record.as_deref(), user.as_deref(), &request, result, now);
        if a.authenticated.is_some() {
            a.key = record;
            a.user = user;
        }
        a
    }
}

/// Failures charged before argon2; given back only when the authentication succeeds.
///
/// An attempt the host sheds (its pool full) or the gate turns away (503) stays charged: it
/// was an unverified secret all the same, and refunding it let a flood that saturates the
/// host never trip a budget (every attempt was shed, so none counted). Keeping the charge for
/// every kind of attempt alike (unknown id, known id with a wrong secret, a correct secret
/// not yet verified) keeps the 429 from saying whether an id exists.
#[derive(Debug)]
pub(crate) struct Charges {
    budget: Option<Arc<dyn FailureBudget>>,
    ip: Option<String>,
    client_id: Option<String>,
}

impl Charges {
    fn none() -> Self {
        Charges { budget: None, ip: None, client_id: None }
    }

    /// Refunds the charges on success; keeps them on any failure, the gate's 503 included.
    pub(crate) fn settle(mut self, result: &Result<Authenticated, AuthFailure>, now: Timestamp) {
        if result.is_ok() {
            self.refund(now);
        }
    }

    fn refund(&mut self, now: Timestamp) {
        if let Some(b) = self.budget.take() {
            if let Some(ip) = &self.ip {
                b.refund(Subject::Ip(ip), now);
            }
            if let Some(id) = &self.client_id {
                b.refund(Subject::ClientId(id), now);
            }
        }
    }
}

impl Engine {
    /// Credentials, lookup, verified-secret cache, the failed-authentication budget, and the
    /// decision for cache hits and cheap failures. Never runs argon2, never waits for the
    /// gate. A lookup failure answers 503 (fail closed).
    pub fn authorize_step<I, N, V>(&self, headers: I, request: &Request, lookup: &dyn Lookup, now: Timestamp) -> Step
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let creds = match self.auth.credentials(headers) {
            Ok(c) => c,
            Err(e) => return Step::Decided(Authorization::denied(e.decision(self.messages()))),
        };
        let unavailable = |e: StoreError| {
            Step::Decided(Authorization::denied(Decision::overloaded(self.messages(), format!("key store: {e}"))))
        };
        let record = match lookup.key(creds.client_id().as_str()) {
            Ok(r) => r,
            Err(e) => return unavailable(e),
        };
        let user = match record.as_ref().and_then(|r| r.kind.user()) {
            Some(u) => match lookup.user(u) {
                Ok(u) => u,
                Err(e) => return unavailable(e),
            },
            None => None,
        };
        self.step_credentials(creds, record, user, request, now)
    }

    /// The failed-authentication budget alone, before the record lookup and anything else a
    /// host does per request: `Some(429 too_many_failures)` when the request presents
    /// well-formed credentials that the verified-secret cache does not know and its client
    /// address (`client_ip`) or its client id has no failure left, which is exactly the answer
    /// [`Engine::authorize_step`] would give it (same status, body and `Retry-After`); `None`
    /// otherwise (go on and authorize). Never charges, never hashes, never reads the store, so
    /// a host can run it inline for every request (keycel's ASGI guard does, before routing).
    /// A secret the cache knows (a cached key, also past its TTL) is never screened out.
    pub fn screen<I, N, V>(&self, headers: I, client_ip: Option<&str>, now: Timestamp) -> Option<Decision>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let creds = self.auth.credentials(headers).ok()?;
        if self.auth.knows_secret(&creds) {
            return None;
        }
        let id = creds.client_id().as_str();
        let throttled = match client_ip.and_then(|ip| Some((ip, self.budget.exhausted(Subject::Ip(ip), now)?))) {
            Some((ip, e)) => Throttled::new(Subject::Ip(ip), e),
            None => Throttled::new(Subject::ClientId(id), self.budget.exhausted(Subject::ClientId(id), now)?),
        };
        Some(throttled.decision(self.messages()))
    }

    /// For a host whose argon2 pool is full right now: the answer authorizing this request
    /// would end in, without the record lookup. Credentials the verified-secret cache does
    /// not know always need argon2 (an unknown id, a wrong secret and an unverified correct
    /// one alike), so they are charged here exactly as the step charges them, and answered
    /// 429 when the budget is spent, else 503 `overloaded` (the charge stays, as for any shed
    /// attempt). `None` when the step may decide without argon2 (no or malformed
    /// credentials, a secret the cache knows): run the step as usual.
    pub fn shed<I, N, V>(&self, headers: I, request: &Request, now: Timestamp) -> Option<Decision>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let creds = self.auth.credentials(headers).ok()?;
        if self.auth.knows_secret(&creds) {
            return None;
        }
        let work = HashWork::Verify { recognised: false };
        Some(match self.charge(&creds, &work, request, now, Wait::No) {
            Err(t) => t.decision(self.messages()),
            // Dropped unsettled: the charges stay.
            Ok(_charges) => Decision::overloaded(self.messages(), "argon2 pool full: shed before the lookup"),
        })
    }

    /// The subjects an attempt is charged to before argon2, in the order the engine charges
    /// them (the client address, then the client id), or `None` when the engine would charge
    /// nothing: exactly [`Engine::step_credentials`]'s rule (a secret the verified-secret cache
    /// answers for a valid record, or recognises), so a cached secret of a key since revoked,
    /// expired or rotated is charged like any other failure. For a host that keeps the failure
    /// budgets outside the engine (one Durable Object per subject in a Cloudflare deployment)
    /// and gives the engine a budget that counts nothing: the host charges each subject in
    /// turn, gives the earlier ones back when one is refused (answering [`throttled`]'s 429),
    /// then authorizes, and gives them all back when the authentication succeeds. With nothing
    /// to charge it authorizes at once (nothing in between may evict the cached secret, or
    /// argon2 would run uncharged).
    pub fn failure_subjects<'a>(
        &self,
        creds: &'a Credentials,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        request: &'a Request,
        now: Timestamp,
    ) -> Option<Vec<Subject<'a>>> {
        match self.auth.begin(creds, record, user, now) {
            AuthStep::Done(_) | AuthStep::Hash(HashWork::Verify { recognised: true }) => None,
            AuthStep::Hash(_) => {
                let ip = request.throttle_ip().map(Subject::Ip);
                Some(ip.into_iter().chain([Subject::ClientId(creds.client_id().as_str())]).collect())
            }
        }
    }

    /// [`Engine::authorize_step`] for hosts that fetched the record (and user) themselves.
    pub fn step_credentials(
        &self,
        creds: Credentials,
        record: Option<Arc<KeyRecord>>,
        user: Option<Arc<UserRecord>>,
        request: &Request,
        now: Timestamp,
    ) -> Step {
        match self.auth.begin(&creds, record.as_deref(), user.as_deref(), now) {
            AuthStep::Done(a) => {
                let mut out = self.admit(&creds, record.as_deref(), user.as_deref(), request, Ok(a), now);
                out.key = record;
                out.user = user;
                Step::Decided(out)
            }
            AuthStep::Hash(work) => match self.charge(&creds, &work, request, now, Wait::Yes) {
                Err(t) => Step::Decided(Authorization::denied(t.decision(self.messages()))),
                Ok(charges) => {
                    Step::NeedsHash(PendingAuth { creds, record, user, request: request.clone(), work, charges })
                }
            },
        }
    }

    /// Charges one failure to the client address and the client id before argon2, or says
    /// which budget is spent. A secret the verified-secret cache recognises is not charged.
    /// `Wait::No` (a shed, on an event loop): the budget's charge that never waits on I/O.
    pub(crate) fn charge(
        &self,
        creds: &Credentials,
        work: &HashWork,
        request: &Request,
        now: Timestamp,
        wait: Wait,
    ) -> Result<Charges, Throttled> {
        if let HashWork::Verify { recognised: true } = work {
            return Ok(Charges::none());
        }
        let budget = self.budget.clone();
        let charge = |s: Subject<'_>| match wait {
            Wait::Yes => budget.charge(s, now),
            Wait::No => budget.charge_nowait(s, now),
        };
        let ip = request.throttle_ip();
        let id = creds.client_id().as_str();
        if let Some(ip) = ip {
            charge(Subject::Ip(ip)).map_err(|e| Throttled::new(Subject::Ip(ip), e))?;
        }
        if let Err(e) = charge(Subject::ClientId(id)) {
            if let Some(ip) = ip {
                match wait {
                    Wait::Yes => budget.refund(Subject::Ip(ip), now),
                    Wait::No => budget.refund_nowait(Subject::Ip(ip), now),
                }
            }
            return Err(Throttled::new(Subject::ClientId(id), e));
        }
        Ok(Charges { budget: Some(budget), ip: ip.map(str::to_string), client_id: Some(id.to_string()) })
    }
}

/// Whether a charge may wait on the budget's store (the step, off the event loop) or not (a
/// shed, on it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Yes,
    No,
}

/// A spent failure budget: the 429 to answer.
#[derive(Debug)]
pub(crate) struct Throttled {
    what: String,
    retry_after_secs: u32,
}

/// The 429 `too_many_failures` (with `Retry-After`) for `subject` over its failure budget:
/// what the engine answers, for a host that keeps the budgets itself
/// ([`Engine::failure_subjects`]).
pub fn throttled(m: &crate::decision::Messages, subject: Subject<'_>, e: Exhausted) -> Decision {
    Throttled::new(subject, e).decision(m)
}

impl Throttled {
    fn new(subject: Subject<'_>, e: Exhausted) -> Self {
        let what = match subject {
            Subject::Ip(ip) => format!("client address {ip:?}"),
            Subject::ClientId(id) => format!("client id {id}"),
        };
        Throttled { what, retry_after_secs: e.retry_after_secs }
    }

    pub(crate) fn decision(&self, m: &crate::decision::Messages) -> Decision {
        Decision::too_many_failures(
            m,
            self.retry_after_secs,
            format!("failed-authentication budget of {} used up", self.what),
        )
    }
}
