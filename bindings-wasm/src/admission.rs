//! Admission for a Cloudflare Durable Object: the core's process-local admission
//! (concurrency, GCRA rate limit, credits; [`keycel::admission::LocalAdmission`]) handed to JS,
//! so that one Durable Object per key counts that key's budget for every isolate of a
//! deployment. Every decision is core's; this file converts values.
//!
//! The worker authenticates and decides with an `Engine` built with `admission: "external"`
//! (its `authorize` counts nothing), takes `engine.ticket(record, cost)` and asks the key's
//! Durable Object, which calls `Admission.admit(ticket, now)`; the answer carries a lease id
//! and the budget headers, or the refusal's status, body and headers. The Durable Object
//! persists each admitted credit count (`credits` of the answer) to its storage, and after an
//! eviction restores it with `restoreCredits` before admitting again: credits never come back
//! (examples/durable-admission/).

use crate::convert;
use crate::engine::Engine;
use crate::error::{Error, JsResult};
use crate::records::KeyRecord;
use keycel::admission::{Admission as _, CreditGrant, Lease, LocalAdmission, RateLimit, Ticket};
use keycel::decision::Messages;
use keycel::engine::{auth_config_for, limiter_config_for};
use keycel::limiter::LimiterConfig;
use keycel::policy::PolicySet;
use keycel::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS: &str = r#"
/** What a Durable Object's `Admission` admits: a key's effective budget and the request's cost (`engine.ticket(record, cost)`). */
export interface AdmissionTicket {
  keyId: string;
  maxConcurrent?: number | null;
  rateLimit?: { limit: number; per: string; burst?: number } | null;
  credits?: { remaining: number; refill?: { amount: number; interval: string } | null; set_at: string } | null;
  cost?: number;
}
/** A credit count to persist (Durable Object storage): grant (`setAt`, Unix seconds), refill period, credits spent. */
export interface CreditCount { setAt: number; period: number; spent: number; }
/** `Admission.admit`'s answer. `headers`: [name, value] pairs to send. */
export type AdmissionAnswer =
  | { allowed: true; status: 200; leaseId: number; keyId: string; expiresAt: number | null; headers: [string, string][];
      creditsRemaining: number | null; credits: CreditCount | null }
  | { allowed: false; status: number; error: string | null; body: string; headers: [string, string][] };
"#;

/// A ticket as JS sends it (`engine.ticket(record, cost)` makes one).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TicketJs {
    key_id: String,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    credits: Option<CreditGrant>,
    #[serde(default)]
    cost: Option<u32>,
}

impl TicketJs {
    fn ticket(&self) -> Result<Ticket<'_>, Error> {
        let cost = self.cost.unwrap_or(1);
        if cost > keycel::budget::MAX_COST {
            return Err(Error::invalid_argument(format!("ticket.cost must be at most {}", keycel::budget::MAX_COST)));
        }
        if self.key_id.is_empty() || self.key_id.len() > 128 {
            return Err(Error::invalid_argument("ticket.keyId must be 1-128 characters"));
        }
        Ok(Ticket {
            key_id: &self.key_id,
            max_concurrent: self.max_concurrent,
            rate: self.rate_limit,
            credits: self.credits,
            cost,
        })
    }
}

/// A credit count to persist: which grant (`setAt`, Unix seconds) and refill period it is
/// for and how much of it is spent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CountJs {
    set_at: i64,
    period: i64,
    spent: u64,
}

fn count_of(grant: &CreditGrant, remaining: u64, now: Timestamp) -> CountJs {
    let period = grant.period(now);
    CountJs { set_at: grant.set_at.unix(), period, spent: grant.allowance(period).saturating_sub(remaining) }
}

/// One key's (or a few keys') budget, counted in this isolate: inside a Durable Object,
/// the one place that key's requests are counted. `new Admission(policy)` takes the lease
/// settings (`[defaults] max_concurrent`, `lease_ttl`, `retry_after`) and the answer texts
/// from the policy.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Admission {
    inner: LocalAdmission,
    messages: Messages,
    leases: HashMap<u64, Lease>,
}

#[wasm_bindgen]
impl Admission {
    /// From the policy (TOML text) the workers use.
    #[wasm_bindgen(constructor)]
    pub fn new(policy: &str, origin: Option<String>) -> JsResult<Admission> {
        let set = PolicySet::from_toml_str(policy, origin.as_deref().unwrap_or("policy.toml"))
            .map_err(|e| Error::new(crate::error::codes::POLICY_ERROR, e.to_string()))?;
        let config_error =
            |e: keycel::engine::EngineError| Error::new(crate::error::codes::CONFIG_ERROR, e.to_string());
        let limits = LimiterConfig { hold_while_alive: false, ..limiter_config_for(&set).map_err(config_error)? };
        let messages = auth_config_for(&set).map_err(config_error)?.messages;
        Ok(Admission { inner: LocalAdmission::new(limits), messages, leases: HashMap::new() })
    }

    /// Admits one request, or says why not. Allowed: `{ allowed: true, status: 200, leaseId,
    /// keyId, expiresAt, headers, creditsRemaining, credits }` (`headers`: `RateLimit-Policy`
    /// and `RateLimit` for a rate-limited key; `credits`: the count to persist, or null).
    /// Refused: `{ allowed: false, status, error, body, headers }` (429 `too_many_requests`,
    /// `rate_limited` or `usage_exceeded`, with `Retry-After`).
    #[wasm_bindgen(unchecked_return_type = "AdmissionAnswer")]
    pub fn admit(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "AdmissionTicket")] ticket: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<JsValue> {
        let now = convert::timestamp(&now, "now")?;
        let t: TicketJs =
            convert::from_js(&ticket, "ticket")?.ok_or_else(|| Error::invalid_argument("ticket is required"))?;
        let ticket = t.ticket()?;
        // Lost leases (a worker that never released) are dropped here once past their deadline.
        self.leases.retain(|_, l| l.expires_at().is_none_or(|e| e > now));
        match self.inner.admit(&ticket, now) {
            Ok(lease) => {
                let budget = lease.budget().copied();
                let headers = budget.map(|b| b.headers()).unwrap_or_default();
                let remaining = budget.and_then(|b| b.credits_remaining);
                let credits = match (&ticket.credits, remaining) {
                    (Some(g), Some(r)) => convert::to_js(&count_of(g, r, now)),
                    _ => JsValue::NULL,
                };
                let out = convert::object(&[
                    ("allowed", true.into()),
                    ("status", 200.into()),
                    ("leaseId", (lease.id() as f64).into()),
                    ("keyId", lease.key_id().into()),
                    ("expiresAt", lease.expires_at().map_or(JsValue::NULL, |t| convert::millis(t).into())),
                    ("headers", convert::to_js(&headers)),
                    ("creditsRemaining", remaining.map_or(JsValue::NULL, |r| (r as f64).into())),
                    ("credits", credits),
                ]);
                self.leases.insert(lease.id(), lease);
                Ok(out)
            }
            Err(refusal) => {
                let d = refusal.decision(&self.messages, ticket.key_id);
                Ok(convert::object(&[
                    ("allowed", false.into()),
                    ("status", d.status.into()),
                    ("error", d.code.as_deref().map_or(JsValue::NULL, JsValue::from)),
                    ("body", d.body_json().into()),
                    ("headers", convert::to_js(&d.headers)),
                ]))
            }
        }
    }

    /// Releases a lease (when the response is done). False when it was unknown, already
    /// released, or reclaimed after its expiry.
    pub fn release(&mut self, lease_id: f64) -> bool {
        self.leases.remove(&(lease_id as u64)).is_some_and(Lease::release)
    }

    /// Keeps a long holder's slot (before `expiresAt`); false once released or reclaimed.
    pub fn renew(
        &mut self,
        lease_id: f64,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<bool> {
        let now = convert::timestamp(&now, "now")?;
        Ok(self.leases.get_mut(&(lease_id as u64)).is_some_and(|l| l.renew(now)))
    }

    /// Leases in flight for a key.
    #[wasm_bindgen(js_name = inFlight)]
    pub fn in_flight(&self, key_id: &str) -> u32 {
        self.inner.in_flight(key_id).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Credits left for the ticket's grant at `now`.
    pub fn usage(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AdmissionTicket")] ticket: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<Option<f64>> {
        let now = convert::timestamp(&now, "now")?;
        let t: TicketJs =
            convert::from_js(&ticket, "ticket")?.ok_or_else(|| Error::invalid_argument("ticket is required"))?;
        let Some(grant) = t.credits else { return Ok(None) };
        let left = self.inner.usage(&t.key_id, &grant, now).map_err(|e| Error::invalid_argument(e.to_string()))?;
        Ok(Some(left as f64))
    }

    /// Restores a persisted credit count (after the Durable Object was evicted) before the
    /// first admission: spends what the count says was spent, when it is for the ticket's
    /// grant and the current refill period (an older count means nothing is spent yet).
    /// Returns the credits left.
    #[wasm_bindgen(js_name = restoreCredits)]
    pub fn restore_credits(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "AdmissionTicket")] ticket: JsValue,
        #[wasm_bindgen(unchecked_param_type = "CreditCount")] count: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<Option<f64>> {
        let now = convert::timestamp(&now, "now")?;
        let t: TicketJs =
            convert::from_js(&ticket, "ticket")?.ok_or_else(|| Error::invalid_argument("ticket is required"))?;
        let Some(grant) = t.credits else { return Ok(None) };
        let Some(c) = convert::from_js::<CountJs>(&count, "count")? else {
            return self.usage(ticket, convert::millis(now).into());
        };
        if c.set_at == grant.set_at.unix() && c.period == grant.period(now) {
            // Spend through the admission itself (core counts it; no second definition here):
            // a ticket with credits only, as many times as a u32 cost needs.
            let mut owed = c.spent.min(self.inner.usage(&t.key_id, &grant, now).unwrap_or(0));
            while owed > 0 {
                let cost = u32::try_from(owed).unwrap_or(u32::MAX).min(keycel::budget::MAX_COST);
                let spend = Ticket {
                    key_id: &t.key_id,
                    max_concurrent: Some(u32::MAX),
                    rate: None,
                    credits: Some(grant),
                    cost,
                };
                match self.inner.admit(&spend, now) {
                    Ok(l) => drop(l.release()),
                    Err(_) => break,
                }
                owed -= u64::from(cost);
            }
        }
        self.usage(ticket, convert::millis(now).into())
    }
}

/// An admission that admits every allowed request without counting: for an engine whose
/// budgets are counted elsewhere (a Durable Object through [`Admission`]).
#[derive(Debug)]
pub(crate) struct External;

#[derive(Debug)]
struct Uncounted(std::sync::Arc<str>);

impl keycel::admission::SharedLease for Uncounted {
    fn id(&self) -> u64 {
        0
    }
    fn key_id(&self) -> &std::sync::Arc<str> {
        &self.0
    }
    fn expires_at(&self) -> Option<Timestamp> {
        None
    }
    fn renew(&mut self, _now: Timestamp) -> bool {
        true
    }
    fn release(&mut self) -> bool {
        true
    }
}

impl keycel::admission::Admission for External {
    fn name(&self) -> &'static str {
        "external"
    }
    fn admit(&self, ticket: &Ticket<'_>, _now: Timestamp) -> Result<Lease, keycel::admission::Refusal> {
        Ok(Lease::shared(Box::new(Uncounted(std::sync::Arc::from(ticket.key_id)))))
    }
    fn in_flight(&self, _key_id: &str) -> Result<usize, keycel::admission::AdmissionError> {
        Ok(0)
    }
    fn reclaim_expired(&self, _now: Timestamp) -> Result<usize, keycel::admission::AdmissionError> {
        Ok(0)
    }
}

#[wasm_bindgen]
impl Engine {
    /// The admission ticket for an allowed request of `record` (its effective budget: the
    /// record's rate limit, else the policy default; its credits; `max_concurrent`) with the
    /// request's `cost` (default 1), as a plain object for a Durable Object's `Admission`.
    #[wasm_bindgen(unchecked_return_type = "AdmissionTicket")]
    pub fn ticket(&self, record: &KeyRecord, cost: Option<u32>) -> JsResult<JsValue> {
        let r = record.inner();
        let t = TicketJs {
            key_id: r.id.as_str().to_string(),
            max_concurrent: r.max_concurrent,
            rate_limit: r.rate_limit.or(self.core().default_rate_limit()),
            credits: r.credits,
            cost: Some(cost.unwrap_or(1)),
        };
        t.ticket()?;
        Ok(convert::to_js(&t))
    }
}
